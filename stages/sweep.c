/* sweep.c — expand a sweep file into validated run configs (contract in sweep.h).
 * Must not: touch the store or run stages.
 */
#include "sweep.h"

#include <stdlib.h>
#include <string.h>

#define SWEEP_MAX_POINTS 10000

/* Short axis names apply to scalar values only: `method: {name: fp}` replaces the whole section. */
static const char *axis_path(const char *k, const gq_ynode *v) {
    if (v->kind != GQ_YNODE_SCALAR) return k;
    static const char *const alias[][2] = {{"sparsity", "method.sparsity"}, {"group", "method.group"},
                                           {"bits", "method.bits"},         {"method", "method.name"},
                                           {"scope", "method.scope"},       {"damp", "method.damp"}};
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (!strcmp(k, alias[i][0])) return alias[i][1];
    return k;
}

static void label_add(char *label, size_t cap, const char *k, const gq_ynode *v) {
    size_t len = strlen(label);
    snprintf(label + len, cap - len, "%s%s=%s", len ? "," : "", k, v->kind == GQ_YNODE_SCALAR ? v->scalar : "{...}");
}

static gq_status finish_point(gq_ynode *tree, const char *sweep_name, const char *label, gq_sweep_point *p) {
    GQ_TRY(gq_runcfg_from_tree(tree, &p->cfg));
    snprintf(p->label, sizeof p->label, "%s", label);
    char name[128];
    snprintf(name, sizeof name, "%.60s/%.60s", sweep_name, label);
    snprintf(p->cfg.name, sizeof p->cfg.name, "%s", name);
    gq_runcfg_hash(&p->cfg, p->hash);
    return GQ_OK;
}

gq_status gq_sweep_load(const char *path, gq_sweep_point **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    gq_ynode *sw;
    GQ_TRY(gq_yaml_load(path, &sw));
    gq_status st = GQ_OK;
    gq_ynode *base = NULL;
    gq_sweep_point *pts = NULL;
    int n = 0;
    if (sw->kind != GQ_YNODE_MAP) {
        st = gq_errf(GQ_ERR_ARG, "%s:%d: a sweep file is a mapping (base, axes, points)", path, sw->line);
        goto done;
    }
    for (size_t i = 0; i < sw->n; i++)
        if (strcmp(sw->keys[i], "base") && strcmp(sw->keys[i], "axes") && strcmp(sw->keys[i], "points") &&
            strcmp(sw->keys[i], "name")) {
            st = gq_errf(GQ_ERR_ARG, "%s:%d: %s: unknown key (allowed here: name, base, axes, points)", path, sw->key_lines[i],
                         sw->keys[i]);
            goto done;
        }
    char sweep_name[128];
    const gq_ynode *nm = gq_ynode_get(sw, "name");
    if (nm && nm->kind == GQ_YNODE_SCALAR) snprintf(sweep_name, sizeof sweep_name, "%s", nm->scalar);
    else {
        const char *b = strrchr(path, '/');
        snprintf(sweep_name, sizeof sweep_name, "%s", b ? b + 1 : path);
        char *dot = strrchr(sweep_name, '.');
        if (dot) *dot = 0;
    }
    const gq_ynode *b = gq_ynode_get(sw, "base");
    if (!b) {
        st = gq_errf(GQ_ERR_ARG, "%s:%d: base: required (a run file or an inline mapping)", path, sw->line);
        goto done;
    }
    if (b->kind == GQ_YNODE_SCALAR) {
        char bp[2048];
        const char *sl = strrchr(path, '/');
        if (b->scalar[0] == '/' || !sl) snprintf(bp, sizeof bp, "%s", b->scalar);
        else snprintf(bp, sizeof bp, "%.*s/%s", (int)(sl - path), path, b->scalar);
        st = gq_yaml_load(bp, &base);
        if (st != GQ_OK) {
            gq_err_prefix(st, "%s:%d: base: ", path, b->line);
            goto done;
        }
    } else if (b->kind == GQ_YNODE_MAP) {
        base = gq_ynode_clone(b);
    } else {
        st = gq_errf(GQ_ERR_ARG, "%s:%d: base: expected a file name or a mapping, got a list", path, b->line);
        goto done;
    }
    const gq_ynode *axes = gq_ynode_get(sw, "axes"), *points = gq_ynode_get(sw, "points");
    if (!axes && !points) {
        st = gq_errf(GQ_ERR_ARG, "%s:%d: a sweep needs axes and/or points", path, sw->line);
        goto done;
    }
    size_t total = 0;
    if (axes) {
        if (axes->kind != GQ_YNODE_MAP || !axes->n) {
            st = gq_errf(GQ_ERR_ARG, "%s:%d: axes: expected a non-empty mapping of key: [values]", path, axes->line);
            goto done;
        }
        total = 1;
        for (size_t a = 0; a < axes->n; a++) {
            const gq_ynode *v = axes->items[a];
            if (v->kind != GQ_YNODE_SEQ || !v->n) {
                st = gq_errf(GQ_ERR_ARG, "%s:%d: axes.%s: expected a non-empty list of values", path, axes->key_lines[a],
                             axes->keys[a]);
                goto done;
            }
            total *= v->n;
            if (total > SWEEP_MAX_POINTS) break;
        }
    }
    if (points) {
        if (points->kind != GQ_YNODE_SEQ) {
            st = gq_errf(GQ_ERR_ARG, "%s:%d: points: expected a list of mappings", path, points->line);
            goto done;
        }
        total += points->n;
    }
    if (total > SWEEP_MAX_POINTS) {
        st = gq_errf(GQ_ERR_ARG, "%s: more than %d points", path, SWEEP_MAX_POINTS);
        goto done;
    }
    pts = gq_calloc(total ? total : 1, sizeof *pts);
    if (axes) {
        size_t grid = total - (points ? points->n : 0);
        for (size_t g = 0; g < grid && st == GQ_OK; g++) {
            gq_ynode *t = gq_ynode_clone(base);
            char label[256] = "";
            size_t rem = g, stride = grid;
            for (size_t a = 0; a < axes->n && st == GQ_OK; a++) {
                const gq_ynode *v = axes->items[a];
                stride /= v->n;
                const gq_ynode *val = v->items[rem / stride];
                rem %= stride;
                st = gq_ynode_set(t, axis_path(axes->keys[a], val), val);
                label_add(label, sizeof label, axes->keys[a], val);
            }
            if (st == GQ_OK) st = finish_point(t, sweep_name, label, &pts[n]);
            if (st == GQ_OK) n++;
            else gq_err_prefix(st, "%s: point %s: ", path, label);
            gq_ynode_free(t);
        }
    }
    for (size_t p = 0; points && p < points->n && st == GQ_OK; p++) {
        const gq_ynode *ov = points->items[p];
        if (ov->kind != GQ_YNODE_MAP) {
            st = gq_errf(GQ_ERR_ARG, "%s:%d: points: each point is a mapping of overrides", path, ov->line);
            break;
        }
        gq_ynode *t = gq_ynode_clone(base);
        char label[256] = "";
        for (size_t k = 0; k < ov->n && st == GQ_OK; k++) {
            if (!strcmp(ov->keys[k], "label")) continue;
            st = gq_ynode_set(t, axis_path(ov->keys[k], ov->items[k]), ov->items[k]);
            label_add(label, sizeof label, ov->keys[k], ov->items[k]);
        }
        const gq_ynode *lb = gq_ynode_get(ov, "label");
        if (lb && lb->kind == GQ_YNODE_SCALAR) snprintf(label, sizeof label, "%s", lb->scalar);
        if (st == GQ_OK) st = finish_point(t, sweep_name, label, &pts[n]);
        if (st == GQ_OK) n++;
        gq_ynode_free(t);
    }
    /* two points with one hash would be one run twice: almost certainly a typo in the sweep */
    for (int i = 0; i < n && st == GQ_OK; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(pts[i].hash, pts[j].hash)) {
                st = gq_errf(GQ_ERR_ARG, "%s: points '%s' and '%s' are the same run (same config hash)", path, pts[j].label,
                             pts[i].label);
                break;
            }
done:
    gq_ynode_free(base);
    gq_ynode_free(sw);
    if (st != GQ_OK) {
        free(pts);
        return st;
    }
    *out = pts;
    *n_out = n;
    return GQ_OK;
}
