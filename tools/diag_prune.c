/* diag_prune.c — diagnosis harness for one-shot pruning on a real model: calibrate ONCE (non-sequential:
 * every block sees full-precision inputs, so all methods share the same H and sumsq), then apply each
 * requested method to a fresh copy of the model and print its perplexity. Also evaluates .h5 checkpoints.
 * Not part of libgqsa (tools/ is not globbed); `make build/diag_prune`, or by hand after `make`:
 *   cc -O2 -o build/diag_prune tools/diag_prune.c build/libgqsa.a $(pkg-config --libs hdf5 yaml-0.1 sqlite3 \
 *      libpcre2-8 libcjson openblas) -lm -lpthread -ldl [-L/usr/local/cuda/lib64 -lcublas -lcudart_static -lrt -lstdc++]
 * Usage:
 *   diag_prune MODEL NSAMPLES SEQLEN HESS.h5 METHOD:SPARSITY:GROUP:BITS[:SCOPE[:KINDS]] ...
 *     (METHOD "fp" = no change; KINDS = letters of the linears kept compressed, e.g. "qkvo"; the
 *      sparsity printed is then that of all linears before the others were restored)
 *   diag_prune --h5 CKPT.h5 ...                                                      (evaluate checkpoints)
 * HESS.h5 caches the Hessians (written on the first run, read afterwards). Perplexity: wikitext2 test,
 * seqlen 512, first 4 windows (a quick check, NOT the published protocol).
 * Must not: be linked into the library or the tests.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/calib.h"
#include "../core/ckpt.h"
#include "../core/compress.h"
#include "../core/eval_ppl.h"
#include "../stages/baselines/baselines.h"

#define PPL_SEQLEN 512
#define PPL_LIMIT 4

static double ppl_of(const gq_model *m, const int32_t *ids, size_t n) {
    gq_ppl_result r;
    memset(&r, 0, sizeof r);
    if (gq_eval_ppl_tokens(m, ids, n, PPL_SEQLEN, PPL_LIMIT, &r) != GQ_OK) {
        fprintf(stderr, "ppl failed: %s\n", gq_errmsg());
        return -1;
    }
    return r.ppl;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "--h5")) {
        for (int i = 2; i < argc; i++) {
            gq_model *m = NULL;
            if (gq_ckpt_load_model(argv[i], &m) != GQ_OK || !m->tok) {
                fprintf(stderr, "%s: %s\n", argv[i], m ? "no tokenizer" : gq_errmsg());
                return 1;
            }
            int32_t *ids;
            size_t n;
            char note[256];
            if (gq_ppl_dataset_ids(m, "wikitext2", PPL_SEQLEN, -1, &ids, &n, note, sizeof note) != GQ_OK) return 1;
            printf("%-40s ppl %.3f\n", argv[i], ppl_of(m, ids, n));
            fflush(stdout);
            free(ids);
            gq_model_free(m);
        }
        return 0;
    }
    if (argc < 6) {
        fprintf(stderr, "usage: see the header of tools/diag_prune.c\n");
        return 2;
    }
    gq_baselines_register();
    gq_model *m = NULL;
    if (gq_model_load(argv[1], NULL, &m) != GQ_OK) {
        fprintf(stderr, "%s\n", gq_errmsg());
        return 1;
    }
    int nsamp = atoi(argv[2]), seqlen = atoi(argv[3]);
    int32_t *ids;
    size_t n;
    char note[256];
    if (gq_ppl_dataset_ids(m, "wikitext2", PPL_SEQLEN, -1, &ids, &n, note, sizeof note) != GQ_OK) {
        fprintf(stderr, "%s\n", gq_errmsg());
        return 1;
    }
    gq_hessians hs;
    gq_hessians_init(&hs, m);
    gq_ckpt *ck = NULL;
    if (gq_file_exists(argv[4]) && gq_ckpt_open(argv[4], &ck) == GQ_OK) {
        if (gq_ckpt_read_hessians(ck, &hs, m) != GQ_OK) {
            fprintf(stderr, "%s\n", gq_errmsg());
            return 1;
        }
        gq_ckpt_close(ck);
        fprintf(stderr, "read Hessians from %s\n", argv[4]);
    } else {
        gq_calib_opts co;
        gq_calib_opts_default(&co);
        co.n_samples = nsamp;
        co.seqlen = seqlen;
        int32_t *win;
        if (gq_calib_windows(m->tok, &co, &win) != GQ_OK) {
            fprintf(stderr, "%s\n", gq_errmsg());
            return 1;
        }
        gq_calib_run_opts ro = {.sequential = 0, .keep_all = 1, .progress = 1};
        double t0 = gq_now();
        if (gq_calibrate(m, win, nsamp, seqlen, &ro, &hs, NULL, NULL) != GQ_OK) {
            fprintf(stderr, "%s\n", gq_errmsg());
            return 1;
        }
        fprintf(stderr, "calibrated %d x %d in %.1f s\n", nsamp, seqlen, gq_now() - t0);
        free(win);
        if (gq_ckpt_create(argv[4], &ck) == GQ_OK && gq_ckpt_write_hessians(ck, &hs) == GQ_OK) gq_ckpt_commit(ck);
        else fprintf(stderr, "could not cache Hessians: %s\n", gq_errmsg());
    }
    for (int a = 5; a < argc; a++) {
        char spec[256];
        snprintf(spec, sizeof spec, "%s", argv[a]);
        char *f[6] = {0};
        int nf = 0;
        for (char *t = strtok(spec, ":"); t && nf < 6; t = strtok(NULL, ":")) f[nf++] = t;
        if (nf < 4) {
            fprintf(stderr, "bad spec %s\n", argv[a]);
            return 2;
        }
        gq_model *mc = gq_model_clone(m);
        double t0 = gq_now();
        double sp = 0;
        if (strcmp(f[0], "fp")) {
            gq_compress_opts o;
            gq_compress_opts_default(&o);
            o.method = f[0];
            o.sparsity = atof(f[1]);
            o.group = atoi(f[2]);
            o.bits = atoi(f[3]);
            if (nf == 5) gq_prune_scope_parse(f[4], &o.scope);
            gq_compressed c;
            gq_compressed_init(&c, mc, &o);
            if (gq_compress_model(&c, &hs) != GQ_OK) {
                fprintf(stderr, "%s: %s\n", argv[a], gq_errmsg());
                gq_compressed_free(&c);
                continue;
            }
            sp = gq_compressed_total_sparsity(&c);
            mc = gq_compressed_take_model(&c);
            if (nf == 6) /* only the linears named by letters (q k v o g u d) stay compressed */
                for (int l = 0; l < m->cfg.n_layers; l++)
                    for (int k = 0; k < GQ_LIN_COUNT; k++)
                        if (!strchr(f[5], "qkvogud"[k]))
                            memcpy(mc->blocks[l].lin[k].w, m->blocks[l].lin[k].w,
                                   sizeof(float) * m->blocks[l].lin[k].out * m->blocks[l].lin[k].in);
            gq_compressed_free(&c);
        }
        double tc = gq_now() - t0;
        printf("%-36s sparsity %.4f  ppl %10.3f   (compress %.1f s)\n", argv[a], sp, ppl_of(mc, ids, n), tc);
        fflush(stdout);
        gq_model_free(mc);
    }
    free(ids);
    gq_hessians_free(&hs);
    gq_model_free(m);
    return 0;
}
