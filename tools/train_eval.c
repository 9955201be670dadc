/* train_eval.c — one-shot vs +BQPO vs +BQPO+E2E-OQP on a real model, for the training report.
 * Not part of libgqsa (tools/ is not globbed); build by hand after `make`:
 *   cc -O2 -Icore -o build/train_eval tools/train_eval.c build/libgqsa.a $(pkg-config --libs hdf5 yaml-0.1 \
 *      sqlite3 libpcre2-8 libcjson openblas) -lm -lpthread -ldl   (add the CUDA libs if libgqsa has them)
 * Usage: build/train_eval MODEL SPARSITY BITS GROUP NCAL SEQLEN BQPO_LR BQPO_EPOCHS E2E_LR E2E_EPOCHS
 *                         EVAL_SEQLEN EVAL_LIMIT [TEXT_FIXTURE]
 * Prints WikiText-2 perplexity (GPTQ protocol, first EVAL_LIMIT windows) and the mean NLL of the text
 * fixture for FP, one-shot, +BQPO, +BQPO+E2E-OQP. Training windows: WikiText-2 (calibration sampler).
 * Must not: be linked into gqsa or run by tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib.h"
#include "compress.h"
#include "eval_ppl.h"
#include "forward.h"
#include "tokenizer.h"
#include "train.h"

static int32_t *g_text;
static size_t g_ntext;

static void report(const char *label, const gq_model *m, int seqlen, int limit, const char *extra) {
    gq_ppl_opts po = {"wikitext2", seqlen, limit, -1, NULL, NULL};
    gq_ppl_result r;
    if (gq_eval_ppl(m, &po, &r) != GQ_OK) { fprintf(stderr, "ppl: %s\n", gq_errmsg()); exit(1); }
    double nll = 0;
    if (g_text) {
        gq_fwd f;
        gq_fwd_init(&f, m, (int)g_ntext);
        float *lg = malloc(sizeof(float) * g_ntext * m->cfg.vocab_size);
        gq_forward(&f, g_text, (int)g_ntext, lg);
        int np;
        nll = gq_nll_from_logits(lg, g_text, (int)g_ntext, m->cfg.vocab_size, &np) / np;
        free(lg);
        gq_fwd_free(&f);
    }
    printf("| %-22s | %10.3f | %8.4f | %s\n", label, r.ppl, nll, extra);
    fflush(stdout);
}

static void on_step(void *ctx, const gq_train_step_info *s) {
    (void)ctx;
    if (s->step == 1 || s->step % 20 == 0) fprintf(stderr, "  %s layer %d epoch %d step %ld loss %.6g\n", s->phase, s->layer, s->epoch, s->step, s->loss);
}

int main(int argc, char **argv) {
    if (argc < 13) { fprintf(stderr, "usage: see the file header\n"); return 2; }
    gq_model *fp;
    if (gq_model_load(argv[1], NULL, &fp) != GQ_OK) { fprintf(stderr, "%s\n", gq_errmsg()); return 1; }
    double sp = atof(argv[2]), blr = atof(argv[7]), elr = atof(argv[9]);
    int bits = atoi(argv[3]), G = atoi(argv[4]), ncal = atoi(argv[5]), L = atoi(argv[6]), bep = atoi(argv[8]),
        eep = atoi(argv[10]), esl = atoi(argv[11]), lim = atoi(argv[12]);
    if (argc > 13) {
        char *txt;
        size_t len;
        if (gq_read_file(argv[13], &txt, &len) != GQ_OK) { fprintf(stderr, "%s\n", gq_errmsg()); return 1; }
        /* the fixture's first paragraph is its description: the sample starts after the first blank line */
        char *body = strstr(txt, "\n\n");
        body = body ? body + 2 : txt;
        gq_tokenizer_encode(fp->tok, body, strlen(body), 1, &g_text, &g_ntext);
        if ((int)g_ntext > fp->cfg.max_seq_len) g_ntext = (size_t)fp->cfg.max_seq_len;
        free(txt);
    }
    gq_calib_opts co;
    gq_calib_opts_default(&co);
    co.n_samples = ncal, co.seqlen = L, co.seed = 0;
    int32_t *win;
    if (gq_calib_windows(fp->tok, &co, &win) != GQ_OK) { fprintf(stderr, "%s\n", gq_errmsg()); return 1; }
    printf("model %s, W%dS%.0f G%d; train on %d WikiText-2 windows x %d tokens; eval wikitext2 seqlen %d, %d windows; "
           "text NLL on %zu tokens\n\n| model | wt2 ppl | text nll | training\n|---|---|---|---\n",
           argv[1], bits, sp * 100, G, ncal, L, esl, lim, g_ntext);
    report("FP", fp, esl, lim, "");
    gq_compress_opts o;
    gq_compress_opts_default(&o);
    o.sparsity = sp, o.bits = bits, o.group = G;
    gq_compressed c;
    gq_compressed_init(&c, gq_model_clone(fp), &o);
    if (gq_compress_run(&c, win, ncal, L, 1, 0) != GQ_OK) { fprintf(stderr, "%s\n", gq_errmsg()); return 1; }
    c.m->tok = fp->tok; /* borrowed for evaluation (a clone has none); detached before the free */
    report("one-shot GQSA", c.m, esl, lim, "");
    char extra[256];
    gq_train_opts to;
    gq_train_opts_default(&to, blr, bep);
    to.on_step = on_step;
    gq_train_result r;
    if (bep > 0) {
        if (gq_bqpo_run(&c, fp, win, ncal, L, &to, &r) != GQ_OK) { fprintf(stderr, "%s\n", gq_errmsg()); return 1; }
        double mb = 0, ma = 0;
        for (int l = 0; l < r.n_layers; l++) { mb += r.mse_before[l]; ma += r.mse_after[l]; }
        snprintf(extra, sizeof extra, "bqpo lr %g, %d epochs, %ld steps, %.1f s, %.0f tok/s; sum block MSE %.4g -> %.4g",
                 blr, bep, r.steps, r.seconds, r.tok_per_s, mb, ma);
        report("+BQPO", c.m, esl, lim, extra);
        gq_train_result_free(&r);
    }
    if (eep > 0) {
        gq_train_opts_default(&to, elr, eep);
        to.on_step = on_step;
        if (gq_e2e_oqp_run(&c, win, ncal, L, &to, &r) != GQ_OK) { fprintf(stderr, "%s\n", gq_errmsg()); return 1; }
        snprintf(extra, sizeof extra, "e2e lr %g, %d epochs, %ld steps, %.1f s, %.0f tok/s; train CE %.4f -> %.4f",
                 elr, eep, r.steps, r.seconds, r.tok_per_s, r.loss_before, r.loss_after);
        report(bep > 0 ? "+BQPO+E2E-OQP" : "+E2E-OQP", c.m, esl, lim, extra);
        gq_train_result_free(&r);
    }
    c.m->tok = NULL;
    gq_compressed_free(&c);
    gq_model_free(fp);
    free(win);
    free(g_text);
    return 0;
}
