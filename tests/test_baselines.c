/* test_baselines.c — the baselines (stages/baselines) against plain float64 references written here.
 *
 * GPTQ and SparseGPT are checked against the TEXTBOOK OBS loop: no Cholesky trick, no lazy batches:
 * after column i is quantized/pruned its error (w - q) / [H_i^-1]_ii is propagated with row i of the
 * current inverse H_i^-1, which is then downdated by Gaussian elimination of row/column i. The inverse
 * itself comes from a Gauss-Jordan inversion written here (no LAPACK). Equality of this loop with the
 * Cholesky-row/lazy-batch form is the GPTQ paper's Sec. 4 argument; the test checks it numerically.
 * The scalar quantizer (core/quant.h: gq_quant_params/gq_quant_code) is shared by both sides on
 * purpose: it is the primitive under test in test_quant.c, and here only the OBS algorithm is.
 * Selection rules (Wanda per row, magnitude per layer, N:M, group scores) are checked by brute force.
 * The inputs X are correlated (X = Z A) and one input is dead (never fires), as in real layers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../stages/baselines/baselines.h"

/* W_hat of implementation and reference: both run in float64 and round identically except within
 * ~1e-12 of a rounding boundary (probability ~1e-10 per weight at these sizes); the implementation
 * stores float32, so the tolerance is float32 rounding of values of size <= ~10. */
#define TOL_ABS 2e-5
#define TOL_REL 2e-6

enum { NN = 24, KK = 64, TT = 256, DEAD_COL = 13 };

typedef struct {
    float w0[NN * KK];   /* original weights */
    double X[TT * KK];   /* calibration inputs */
    double H[KK * KK];   /* 2 X^T X / T */
    double sumsq[KK];
    gq_hessian h;
} fixture;

static void make_fixture(fixture *f, uint64_t seed) {
    gq_rng r;
    gq_rng_seed(&r, seed);
    for (int i = 0; i < NN * KK; i++) f->w0[i] = (float)(gq_rng_normal(&r) * 0.5);
    /* a few outlier weights, as real layers have */
    for (int i = 0; i < 6; i++) f->w0[gq_rng_below(&r, NN * KK)] *= 6;
    double A[KK * KK];
    for (int i = 0; i < KK * KK; i++) A[i] = gq_rng_normal(&r) / sqrt(KK);
    for (int i = 0; i < KK; i++) A[i * KK + i] += 1.0;
    for (int t = 0; t < TT; t++) {
        double z[KK];
        for (int j = 0; j < KK; j++) z[j] = gq_rng_normal(&r) * (1.0 + 3.0 * (j % 7 == 0));
        for (int j = 0; j < KK; j++) {
            double acc = 0;
            for (int k = 0; k < KK; k++) acc += z[k] * A[k * KK + j];
            f->X[t * KK + j] = j == DEAD_COL ? 0.0 : acc;
        }
    }
    memset(f->H, 0, sizeof f->H);
    memset(f->sumsq, 0, sizeof f->sumsq);
    for (int t = 0; t < TT; t++)
        for (int a = 0; a < KK; a++) {
            f->sumsq[a] += f->X[t * KK + a] * f->X[t * KK + a];
            for (int b = 0; b < KK; b++) f->H[a * KK + b] += 2.0 * f->X[t * KK + a] * f->X[t * KK + b] / TT;
        }
    f->h = (gq_hessian){.K = KK, .n_tok = TT, .H = f->H, .sumsq = f->sumsq};
}

/* run a method on a copy of the fixture's weights; out [NN*KK] */
static gq_status run_method(const fixture *f, gq_compress_fn fn, const gq_compress_opts *o, float *out,
                            gq_compress_result *res) {
    memcpy(out, f->w0, sizeof f->w0);
    gq_linear lin = {.out = NN, .in = KK, .w = out, .bias = NULL};
    gq_compress_job job;
    memset(&job, 0, sizeof job);
    snprintf(job.name, sizeof job.name, "test.layer");
    job.lin = &lin;
    job.h = &f->h;
    memset(res, 0, sizeof *res);
    return fn(&job, o, res);
}

/* ||(W - W_hat) X^T||_F^2: the layer-output error every method minimises (or should not lose to) */
static double out_err(const fixture *f, const float *wh) {
    double e = 0;
    for (int r = 0; r < NN; r++)
        for (int t = 0; t < TT; t++) {
            double acc = 0;
            for (int k = 0; k < KK; k++) acc += ((double)f->w0[r * KK + k] - wh[r * KK + k]) * f->X[t * KK + k];
            e += acc * acc;
        }
    return e;
}

static void assert_close(const float *got, const double *ref, int n, const char *what) {
    int bad = 0;
    double maxe = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(got[i] - ref[i]);
        if (e > maxe) maxe = e;
        if (e > TOL_ABS + TOL_REL * fabs(ref[i])) {
            if (bad < 5) print_error("%s: [%d,%d] got %.9g ref %.9g\n", what, i / KK, i % KK, got[i], ref[i]);
            bad++;
        }
    }
    if (bad) print_error("%s: %d mismatches, max abs error %g\n", what, bad, maxe);
    assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* float64 references */

/* Gauss-Jordan inverse with partial pivoting of the damped H (dead inputs: H_jj = 1, as GPTQ) */
static void ref_hinv(const double *H, double damp, double *inv, int *dead) {
    static double a[KK * 2 * KK];
    double mean = 0;
    for (int j = 0; j < KK; j++) {
        dead[j] = H[j * KK + j] == 0;
        mean += dead[j] ? 1.0 : H[j * KK + j];
    }
    mean /= KK;
    for (int i = 0; i < KK; i++)
        for (int j = 0; j < 2 * KK; j++) {
            double v = j < KK ? H[i * KK + j] : (j - KK == i);
            if (j == i) v = (dead[i] ? 1.0 : v) + damp * mean;
            a[i * 2 * KK + j] = v;
        }
    for (int c = 0; c < KK; c++) {
        int p = c;
        for (int i = c + 1; i < KK; i++)
            if (fabs(a[i * 2 * KK + c]) > fabs(a[p * 2 * KK + c])) p = i;
        for (int j = 0; j < 2 * KK; j++) {
            double t = a[c * 2 * KK + j];
            a[c * 2 * KK + j] = a[p * 2 * KK + j];
            a[p * 2 * KK + j] = t;
        }
        double d = a[c * 2 * KK + c];
        for (int j = 0; j < 2 * KK; j++) a[c * 2 * KK + j] /= d;
        for (int i = 0; i < KK; i++)
            if (i != c) {
                double m = a[i * 2 * KK + c];
                for (int j = 0; j < 2 * KK; j++) a[i * 2 * KK + j] -= m * a[c * 2 * KK + j];
            }
    }
    for (int i = 0; i < KK; i++)
        for (int j = 0; j < KK; j++) inv[i * KK + j] = a[i * 2 * KK + KK + j];
}

/* remove column/row i from the inverse (OBS): Hinv -= Hinv[:, i] Hinv[i, :] / Hinv[i, i] */
static void ref_downdate(double *Hi, int i) {
    double d = Hi[i * KK + i];
    double row[KK];
    for (int j = 0; j < KK; j++) row[j] = Hi[i * KK + j];
    for (int a = 0; a < KK; a++)
        for (int b = 0; b < KK; b++) Hi[a * KK + b] -= row[a] * row[b] / d;
}

/* brute-force exact-count selection: element i is removed iff fewer than n_remove elements rank below
 * it (lower score, or equal score and lower index) */
static void ref_select(const double *s, int n, int n_remove, int *pruned) {
    for (int i = 0; i < n; i++) {
        int below = 0;
        for (int j = 0; j < n; j++) below += s[j] < s[i] || (s[j] == s[i] && j < i);
        pruned[i] = below < n_remove;
    }
}

typedef struct {
    int bits, group;       /* bits 0 = no quantization */
    gq_qmode mode;
    double sparsity;       /* unstructured, per column block */
    int nm_n, nm_m;
    int block;             /* mask block of unstructured SparseGPT */
    int act_order;         /* static groups */
} ref_opts;

/* The textbook OBS loop (GPTQ when no pruning, SparseGPT otherwise). out [NN*KK] double. */
static void ref_obs(const fixture *f, const ref_opts *ro, double *out, double damp) {
    static double Hp[KK * KK], Hi[KK * KK], W[NN * KK];
    int perm[KK], dead[KK], pdead[KK];
    for (int j = 0; j < KK; j++) perm[j] = j;
    if (ro->act_order) /* descending diag(H), ties by index: insertion sort */
        for (int a = 1; a < KK; a++)
            for (int b = a; b > 0; b--) {
                double d0 = f->H[perm[b - 1] * KK + perm[b - 1]], d1 = f->H[perm[b] * KK + perm[b]];
                if (d1 > d0 || (d1 == d0 && perm[b] < perm[b - 1])) {
                    int t = perm[b];
                    perm[b] = perm[b - 1];
                    perm[b - 1] = t;
                } else break;
            }
    for (int a = 0; a < KK; a++)
        for (int b = 0; b < KK; b++) Hp[a * KK + b] = f->H[perm[a] * KK + perm[b]];
    ref_hinv(Hp, damp, Hi, pdead);
    for (int j = 0; j < KK; j++) dead[perm[j]] = pdead[j];
    for (int r = 0; r < NN; r++)
        for (int c = 0; c < KK; c++) W[r * KK + c] = pdead[c] ? 0.0 : f->w0[r * KK + perm[c]];
    const int G = ro->group > 0 ? ro->group : KK, C = (KK + G - 1) / G;
    gq_qspec spec = {.bits = ro->bits, .mode = ro->mode, .fp16_scale = 0};
    float st_s[NN * 8], st_z[NN * 8], cur_s[NN], cur_z[NN], gv[KK];
    if (ro->act_order && ro->bits) {
        GQ_ASSERT(C <= 8);
        for (int r = 0; r < NN; r++)
            for (int g = 0; g < C; g++) {
                int e = (g + 1) * G < KK ? (g + 1) * G : KK;
                for (int c = g * G; c < e; c++) gv[c - g * G] = dead[c] ? 0.0f : f->w0[r * KK + c];
                gq_quant_params(gv, e - g * G, &spec, &st_s[r * C + g], &st_z[r * C + g]);
            }
    }
    /* the diagonal each column will see when it is processed (independent of W): for mask scores */
    double dseq[KK];
    {
        static double T[KK * KK];
        memcpy(T, Hi, sizeof T);
        for (int i = 0; i < KK; i++) dseq[i] = T[i * KK + i], ref_downdate(T, i);
    }
    static int pruned[NN * KK];
    memset(pruned, 0, sizeof pruned);
    for (int i = 0; i < KK; i++) {
        if (ro->sparsity > 0 && i % ro->block == 0) {
            int e = i + ro->block < KK ? i + ro->block : KK, cnt = e - i;
            static double s[NN * KK];
            static int pr[NN * KK];
            for (int r = 0; r < NN; r++)
                for (int c = 0; c < cnt; c++) {
                    double w = W[r * KK + i + c];
                    s[r * cnt + c] = w * w / dseq[i + c];
                }
            ref_select(s, NN * cnt, (int)llround(ro->sparsity * NN * cnt), pr);
            for (int r = 0; r < NN; r++)
                for (int c = 0; c < cnt; c++) pruned[r * KK + i + c] = pr[r * cnt + c];
        }
        if (ro->nm_m && i % ro->nm_m == 0)
            for (int r = 0; r < NN; r++) {
                double s[64];
                int pr[64];
                for (int c = 0; c < ro->nm_m; c++) {
                    double w = W[r * KK + i + c];
                    s[c] = w * w / dseq[i + c];
                }
                ref_select(s, ro->nm_m, ro->nm_m - ro->nm_n, pr); /* N:M keeps N of M */
                for (int c = 0; c < ro->nm_m; c++) pruned[r * KK + i + c] = pr[c];
            }
        if (ro->bits && !ro->act_order && i % G == 0) {
            int e = i + G < KK ? i + G : KK;
            for (int r = 0; r < NN; r++) {
                for (int c = i; c < e; c++) gv[c - i] = (float)W[r * KK + c];
                gq_quant_params(gv, e - i, &spec, &cur_s[r], &cur_z[r]);
            }
        }
        const double d = Hi[i * KK + i];
        for (int r = 0; r < NN; r++) {
            double w = W[r * KK + i], q = w;
            if (pruned[r * KK + i]) q = 0;
            else if (ro->bits) {
                float s = ro->act_order ? st_s[r * C + perm[i] / G] : cur_s[r];
                float z = ro->act_order ? st_z[r * C + perm[i] / G] : cur_z[r];
                q = gq_quant_dequant(gq_quant_code((float)w, s, z, ro->bits), s, z);
            }
            double e = (w - q) / d;
            W[r * KK + i] = q;
            for (int j = i + 1; j < KK; j++) W[r * KK + j] -= e * Hi[i * KK + j];
        }
        ref_downdate(Hi, i);
    }
    for (int r = 0; r < NN; r++)
        for (int c = 0; c < KK; c++) out[r * KK + perm[c]] = W[r * KK + c];
}

/* ------------------------------------------------------------------------------------------ */

static void count_24(const float *w, int strict_two) {
    for (int r = 0; r < NN; r++)
        for (int c = 0; c < KK; c += 4) {
            int z = 0;
            for (int j = 0; j < 4; j++) z += w[r * KK + c + j] == 0.0f;
            if (strict_two) assert_true(z >= 2);
        }
}

static void test_gptq_matches_textbook(void **st) {
    (void)st;
    static fixture f;
    make_fixture(&f, 1);
    static float got[NN * KK], rtn[NN * KK];
    static double ref[NN * KK];
    const struct { int bits, group, block; gq_qmode mode; int act; } cases[] = {
        {4, 8, 16, GQ_QMODE_ASYM, 0},  /* groups inside lazy blocks */
        {3, 24, 16, GQ_QMODE_ASYM, 0}, /* groups straddling lazy blocks (the catch-up of late columns) */
        {2, 16, 128, GQ_QMODE_SYM, 0},
        {4, 0, 32, GQ_QMODE_ASYM, 0},  /* one quantizer per row */
        {4, 16, 16, GQ_QMODE_ASYM, 1}, /* act-order with static groups */
        {8, 8, 16, GQ_QMODE_ASYM, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        gq_compress_opts o;
        gq_compress_opts_default(&o);
        o.method = "gptq";
        o.bits = cases[k].bits;
        o.group = cases[k].group;
        o.blocksize = cases[k].block;
        o.qmode = cases[k].mode;
        o.act_order = cases[k].act;
        gq_compress_result res;
        assert_int_equal(run_method(&f, gq_bl_gptq, &o, got, &res), GQ_OK);
        ref_opts ro = {.bits = o.bits, .group = o.group, .mode = o.qmode, .act_order = o.act_order};
        ref_obs(&f, &ro, ref, o.damp);
        char what[64];
        snprintf(what, sizeof what, "gptq case %zu", k);
        assert_close(got, ref, NN * KK, what);
        for (int r = 0; r < NN; r++) assert_true(got[r * KK + DEAD_COL] == 0.0f);
        /* GQS arrays when the format holds the result */
        if (o.group == 8 || o.group == 16) {
            assert_non_null(res.gqs.row_index);
            static float ex[NN * KK];
            gq_gqs_expand(&res.gqs, ex);
            for (int i = 0; i < NN * KK; i++) assert_true(ex[i] == got[i]);
        }
        gq_gqs_free(&res.gqs);
        /* GPTQ never loses to RTN on the layer output */
        assert_int_equal(run_method(&f, gq_bl_rtn, &o, rtn, &res), GQ_OK);
        gq_gqs_free(&res.gqs);
        double eg = out_err(&f, got), er = out_err(&f, rtn);
        if (!(eg <= er)) print_error("%s: gptq err %g > rtn err %g\n", what, eg, er);
        assert_true(eg <= er);
    }
}

static void test_sparsegpt_matches_textbook(void **st) {
    (void)st;
    static fixture f;
    make_fixture(&f, 2);
    static float got[NN * KK], mag[NN * KK];
    static double ref[NN * KK];
    const struct { double s; int n, m, bits, group, block; } cases[] = {
        {0.5, 0, 0, 0, 0, 16},  {0.3, 0, 0, 0, 0, 128}, {0.5, 2, 4, 0, 0, 16},
        {0.5, 2, 4, 4, 8, 16},  {0.5, 2, 4, 4, 24, 32}, {0.6, 0, 0, 3, 16, 16}, {0.75, 1, 4, 0, 0, 16},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        gq_compress_opts o;
        gq_compress_opts_default(&o);
        o.method = "sparsegpt";
        o.sparsity = cases[k].s;
        o.nm_n = cases[k].n;
        o.nm_m = cases[k].m;
        o.bits = cases[k].bits;
        o.group = cases[k].group;
        o.blocksize = cases[k].block;
        gq_compress_result res;
        assert_int_equal(run_method(&f, gq_bl_sparsegpt, &o, got, &res), GQ_OK);
        assert_null(res.gqs.row_index);
        ref_opts ro = {.bits = o.bits, .group = o.group, .mode = o.qmode, .sparsity = o.nm_m ? 0 : o.sparsity,
                       .nm_n = o.nm_n, .nm_m = o.nm_m, .block = o.blocksize};
        ref_obs(&f, &ro, ref, o.damp);
        char what[64];
        snprintf(what, sizeof what, "sparsegpt case %zu", k);
        assert_close(got, ref, NN * KK, what);
        /* exact sparsity: every column block removes exactly round(s * N * cnt) weights (N:M: n of m) */
        long expect = 0;
        if (o.nm_m) expect = (long)NN * KK * (o.nm_m - o.nm_n) / o.nm_m;
        else
            for (int i1 = 0; i1 < KK; i1 += o.blocksize) {
                int cnt = i1 + o.blocksize < KK ? o.blocksize : KK - i1;
                expect += llround(o.sparsity * NN * cnt);
            }
        int zeros = 0;
        for (int i = 0; i < NN * KK; i++) zeros += got[i] == 0.0f;
        assert_true(zeros >= expect);
        assert_true(fabs(res.sparsity - (double)expect / (NN * KK)) < 1e-12);
        if (o.nm_m) count_24(got, 1);
        /* never worse than magnitude pruning (+ the same RTN) at the same setting */
        assert_int_equal(run_method(&f, gq_bl_magnitude, &o, mag, &res), GQ_OK);
        double es = out_err(&f, got), em = out_err(&f, mag);
        if (!(es <= em)) print_error("%s: sparsegpt err %g > magnitude err %g\n", what, es, em);
        assert_true(es <= em);
    }
}

static void test_24_masks(void **st) {
    (void)st;
    static fixture f;
    make_fixture(&f, 3);
    static float got[NN * KK];
    const char *names[] = {"sparsegpt24", "wanda24", "magnitude24", "joint-w4-24"};
    gq_baselines_register();
    gq_baselines_register(); /* idempotent */
    for (int k = 0; k < 4; k++) {
        const gq_compress_method *m = gq_compress_find(names[k]);
        assert_non_null(m);
        gq_compress_opts o;
        gq_compress_opts_default(&o);
        o.bits = k == 3 ? 4 : 0;
        o.group = 0;
        gq_compress_result res;
        assert_int_equal(run_method(&f, m->fn, &o, got, &res), GQ_OK);
        count_24(got, 1);
        assert_true(fabs(res.sparsity - 0.5) < 1e-12);
        gq_gqs_free(&res.gqs);
    }
    /* joint W4 2:4 with group 0 means g128 > K: one quantizer per row -> at most 16 levels per row */
    for (int r = 0; r < NN; r++) {
        float lv[KK];
        int nl = 0;
        for (int c = 0; c < KK; c++) {
            int seen = 0;
            for (int j = 0; j < nl; j++) seen |= lv[j] == got[r * KK + c];
            if (!seen) lv[nl++] = got[r * KK + c];
        }
        assert_true(nl <= 16);
    }
}

static void test_wanda_magnitude_bruteforce(void **st) {
    (void)st;
    static fixture f;
    make_fixture(&f, 4);
    static float got[NN * KK];
    static double s[NN * KK];
    static int pr[NN * KK];
    const double sps[] = {0.5, 0.3, 0.71};
    for (int k = 0; k < 3; k++) {
        gq_compress_opts o;
        gq_compress_opts_default(&o);
        o.sparsity = sps[k];
        o.bits = 0;
        gq_compress_result res;
        /* wanda: per output row, |W| * ||X_j||_2 */
        assert_int_equal(run_method(&f, gq_bl_wanda, &o, got, &res), GQ_OK);
        int per_row = (int)llround(o.sparsity * KK);
        for (int r = 0; r < NN; r++) {
            for (int c = 0; c < KK; c++) s[c] = fabs((double)f.w0[r * KK + c]) * sqrt(f.sumsq[c]);
            ref_select(s, KK, per_row, pr);
            for (int c = 0; c < KK; c++)
                assert_true(pr[c] ? got[r * KK + c] == 0.0f : got[r * KK + c] == f.w0[r * KK + c]);
        }
        assert_true(fabs(res.sparsity - (double)per_row / KK) < 1e-12);
        /* magnitude: whole layer */
        assert_int_equal(run_method(&f, gq_bl_magnitude, &o, got, &res), GQ_OK);
        for (int i = 0; i < NN * KK; i++) s[i] = fabs((double)f.w0[i]);
        int n_rm = (int)llround(o.sparsity * NN * KK);
        ref_select(s, NN * KK, n_rm, pr);
        for (int i = 0; i < NN * KK; i++) assert_true(pr[i] ? got[i] == 0.0f : got[i] == f.w0[i]);
        assert_true(fabs(res.sparsity - (double)n_rm / (NN * KK)) < 1e-12);
    }
    /* wanda + bits: pruned stay exactly zero, kept ones are quantized (few distinct levels per group) */
    gq_compress_opts o;
    gq_compress_opts_default(&o);
    o.sparsity = 0.5;
    o.bits = 2;
    o.group = 16;
    gq_compress_result res;
    assert_int_equal(run_method(&f, gq_bl_wanda, &o, got, &res), GQ_OK);
    int zeros = 0;
    for (int i = 0; i < NN * KK; i++) zeros += got[i] == 0.0f;
    assert_true(zeros >= NN * KK / 2);
}

static void test_group_controls(void **st) {
    (void)st;
    static fixture f;
    make_fixture(&f, 5);
    static float got[NN * KK];
    const int G = 8, C = KK / G;
    static double sc[NN * KK];
    static int pr[NN * KK];
    for (int meth = 0; meth < 2; meth++)
        for (int scope = 0; scope < 2; scope++) {
            gq_compress_opts o;
            gq_compress_opts_default(&o);
            o.sparsity = 0.375;
            o.group = G;
            o.bits = 0;
            o.scope = scope ? GQ_SCOPE_ROW : GQ_SCOPE_LAYER;
            gq_compress_result res;
            assert_int_equal(run_method(&f, meth ? gq_bl_group_wanda : gq_bl_group_magnitude, &o, got, &res), GQ_OK);
            for (int r = 0; r < NN; r++)
                for (int c = 0; c < C; c++) {
                    double acc = 0;
                    for (int g = 0; g < G; g++) {
                        double v = fabs((double)f.w0[r * KK + c * G + g]);
                        if (meth) v *= sqrt(f.sumsq[c * G + g]);
                        acc += v * v;
                    }
                    sc[r * C + c] = acc / G;
                }
            if (scope)
                for (int r = 0; r < NN; r++) ref_select(sc + r * C, C, (int)llround(o.sparsity * C), pr + r * C);
            else ref_select(sc, NN * C, (int)llround(o.sparsity * NN * C), pr);
            for (int r = 0; r < NN; r++)
                for (int c = 0; c < C; c++)
                    for (int g = 0; g < G; g++) {
                        int i = r * KK + c * G + g;
                        assert_true(pr[r * C + c] ? got[i] == 0.0f : got[i] == f.w0[i]);
                    }
            assert_true(fabs(res.sparsity - 0.375) < 1e-12);
        }
    /* with bits: GQS-shaped, and the GQS arrays expand to the dense result */
    gq_compress_opts o;
    gq_compress_opts_default(&o);
    o.sparsity = 0.5;
    o.group = G;
    o.bits = 4;
    gq_compress_result res;
    assert_int_equal(run_method(&f, gq_bl_group_wanda, &o, got, &res), GQ_OK);
    assert_non_null(res.gqs.row_index);
    static float ex[NN * KK];
    gq_gqs_expand(&res.gqs, ex);
    for (int i = 0; i < NN * KK; i++) assert_true(ex[i] == got[i]);
    gq_gqs_free(&res.gqs);
}

/* gqsa-obs: exactly GQSA's group mask, and the OBS update can only lower the layer-output error */
static void test_gqsa_obs(void **st) {
    (void)st;
    static fixture f;
    make_fixture(&f, 8);
    static float g[NN * KK], go[NN * KK];
    for (int scope = 0; scope < 2; scope++) {
        gq_compress_opts o;
        gq_compress_opts_default(&o);
        o.sparsity = 0.5;
        o.group = 8;
        o.bits = 0;
        o.scope = scope ? GQ_SCOPE_ROW : GQ_SCOPE_LAYER;
        gq_compress_result res;
        assert_int_equal(run_method(&f, gq_compress_gqsa, &o, g, &res), GQ_OK);
        assert_int_equal(run_method(&f, gq_bl_gqsa_obs, &o, go, &res), GQ_OK);
        for (int i = 0; i < NN * KK; i++)
            if (i % KK != DEAD_COL) assert_int_equal(g[i] == 0.0f, go[i] == 0.0f);
        assert_true(out_err(&f, go) < out_err(&f, g));
    }
}

static void test_rtn_reference(void **st) {
    (void)st;
    static fixture f;
    make_fixture(&f, 6);
    static float got[NN * KK];
    const int bitss[] = {2, 3, 4, 8};
    for (int b = 0; b < 4; b++)
        for (int sym = 0; sym < 2; sym++) {
            gq_compress_opts o;
            gq_compress_opts_default(&o);
            o.bits = bitss[b];
            o.group = 16;
            o.qmode = sym ? GQ_QMODE_SYM : GQ_QMODE_ASYM;
            gq_compress_result res;
            assert_int_equal(run_method(&f, gq_bl_rtn, &o, got, &res), GQ_OK);
            const double maxq = (1 << o.bits) - 1;
            for (int r = 0; r < NN; r++)
                for (int g = 0; g < KK / 16; g++) {
                    const float *w = f.w0 + r * KK + g * 16;
                    double mn = 0, mx = 0, amax = 0;
                    for (int j = 0; j < 16; j++) {
                        mn = fmin(mn, w[j]);
                        mx = fmax(mx, w[j]);
                        amax = fmax(amax, fabs(w[j]));
                    }
                    /* float32 arithmetic as the reference (torch, fp32) does it: in SYM mode the largest
                     * weight sits exactly on a rounding tie (amax / s = 2^(b-1) - 0.5), which float64
                     * would resolve differently */
                    float s = sym ? 2.0f * (float)amax / (float)maxq : ((float)mx - (float)mn) / (float)maxq;
                    float z = sym ? (float)(1 << (o.bits - 1)) : -roundf((float)mn / s);
                    for (int j = 0; j < 16; j++) {
                        double q = fmin(fmax(roundf(w[j] / s) + z, 0), maxq), ref = (q - z) * s;
                        if (!(fabs(got[r * KK + g * 16 + j] - ref) <= 1e-5 * s + 1e-7))
                            print_error("rtn b%d sym%d [%d,%d]: got %.9g ref %.9g (w %.9g s %.9g z %g)\n", o.bits, sym, r,
                                        g * 16 + j, got[r * KK + g * 16 + j], ref, w[j], s, z);
                        assert_true(fabs(got[r * KK + g * 16 + j] - ref) <= 1e-5 * s + 1e-7);
                    }
                }
            assert_non_null(res.gqs.row_index);
            gq_gqs_free(&res.gqs);
        }
}

static void test_errors(void **st) {
    (void)st;
    static fixture f;
    make_fixture(&f, 7);
    static float got[NN * KK];
    gq_compress_opts o;
    gq_compress_opts_default(&o);
    gq_compress_result res;
    o.bits = 0;
    assert_int_equal(run_method(&f, gq_bl_rtn, &o, got, &res), GQ_ERR_ARG);
    assert_non_null(strstr(gq_errmsg(), "test.layer"));
    assert_int_equal(run_method(&f, gq_bl_gptq, &o, got, &res), GQ_ERR_ARG);
    o.group = 24; /* does not divide 64 */
    assert_int_equal(run_method(&f, gq_bl_group_magnitude, &o, got, &res), GQ_ERR_ARG);
    o.nm_n = 2;
    o.nm_m = 3; /* does not divide 64 */
    assert_int_equal(run_method(&f, gq_bl_wanda, &o, got, &res), GQ_ERR_ARG);
    o.nm_n = o.nm_m = 0;
    o.sparsity = 0;
    assert_int_equal(run_method(&f, gq_bl_sparsegpt, &o, got, &res), GQ_ERR_ARG);
    /* no statistics */
    memcpy(got, f.w0, sizeof got);
    gq_linear lin = {.out = NN, .in = KK, .w = got};
    gq_compress_job job;
    memset(&job, 0, sizeof job);
    snprintf(job.name, sizeof job.name, "nostats");
    job.lin = &lin;
    o.sparsity = 0.5;
    assert_int_equal(gq_bl_wanda(&job, &o, &res), GQ_ERR_ARG);
    assert_non_null(strstr(gq_errmsg(), "nostats"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gptq_matches_textbook),
        cmocka_unit_test(test_sparsegpt_matches_textbook),
        cmocka_unit_test(test_24_masks),
        cmocka_unit_test(test_wanda_magnitude_bruteforce),
        cmocka_unit_test(test_group_controls),
        cmocka_unit_test(test_gqsa_obs),
        cmocka_unit_test(test_rtn_reference),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
