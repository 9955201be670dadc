/* backward_tmpl.h — the one implementation of backward.h, expanded by backward.c for R = float and
 * R = double (GEMM = cblas_sgemm / cblas_dgemm). Reductions that decide accuracy (RMS, softmax
 * normaliser, SiLU, cross-entropy) run in double for both types, as forward.c does for the RMS.
 * Must not: be included anywhere but backward.c; have an include guard.
 */
#ifndef R
#error "backward_tmpl.h is expanded by backward.c only"
#endif

/* ------------------------------------------------------------------------------------------ */
/* Buffers                                                                                      */

gq_status GQ_BW(gq_bw_acts_init)(GQ_BW(gq_bw_acts) *a, const gq_config *c, int max_T) {
    GQ_ASSERT(a && c && max_T >= 1);
    memset(a, 0, sizeof *a);
    size_t T = (size_t)max_T, D = (size_t)c->dim, H = (size_t)c->hidden_dim;
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    size_t hd2 = (size_t)c->head_dim / 2, tw = D > qd ? D : qd;
    size_t sizes[] = {T * hd2, T * hd2,                          /* rope */
                      T * D, T * D, T,                           /* x_in, xn1, rinv1 */
                      T * qd, T * kd, T * kd,                    /* q k v */
                      (size_t)c->n_heads * T * T,                /* P */
                      T * qd, T * D, T * D, T,                   /* att x_mid xn2 rinv2 */
                      T * H, T * H, T * H,                       /* g u h */
                      T * D, T * D,                              /* dxn dmid */
                      T * qd, T * kd, T * kd, T * qd,            /* dq dk dv datt */
                      T * T,                                     /* dP */
                      T * H, T * H, T * H,                       /* dg du dh */
                      T * tw};                                   /* tmp */
    R **dst[] = {&a->rope_cos, &a->rope_sin, &a->x_in, &a->xn1, &a->rinv1, &a->q, &a->k, &a->v, &a->P,
                 &a->att, &a->x_mid, &a->xn2, &a->rinv2, &a->g, &a->u, &a->h, &a->dxn, &a->dmid,
                 &a->dq, &a->dk, &a->dv, &a->datt, &a->dP, &a->dg, &a->du, &a->dh, &a->tmp};
    GQ_ASSERT(sizeof sizes / sizeof sizes[0] == sizeof dst / sizeof dst[0]);
    size_t total = 0, bytes;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    if (gq_mul_overflow(total, sizeof(R), &bytes))
        return gq_errf(GQ_ERR_ARG, "backward: activations for %d tokens overflow size_t", max_T);
    R *slab = gq_try_malloc(bytes);
    if (!slab)
        return gq_errf(GQ_ERR_NOMEM, "backward: cannot allocate %zu MB of block activations for %d tokens",
                       bytes >> 20, max_T);
    R *p = slab;
    for (size_t i = 0; i < sizeof dst / sizeof dst[0]; i++) { *dst[i] = p; p += sizes[i]; }
    a->cfg = c;
    a->max_T = max_T;
    GQ_BW(gq_bw_rope_table)(a->rope_cos, a->rope_sin, max_T, c->head_dim, c->rope_theta);
    return GQ_OK;
}

void GQ_BW(gq_bw_acts_free)(GQ_BW(gq_bw_acts) *a) {
    if (!a) return;
    free(a->rope_cos); /* the slab starts there */
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------------------------------ */
/* Ops                                                                                          */

void GQ_BW(gq_bw_rmsnorm_fwd)(R *y, R *rinv, const R *x, const R *w, int T, int D, double eps) {
    for (int t = 0; t < T; t++) {
        const R *xr = x + (size_t)t * D;
        R *yr = y + (size_t)t * D;
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        R r = (R)(1.0 / sqrt(ss / D + eps));
        rinv[t] = r;
        for (int i = 0; i < D; i++) yr[i] = xr[i] * r * w[i];
    }
}

/* y_i = x_i r w_i with r = (sum x^2 / D + eps)^-1/2, dr/dx_j = -r^3 x_j / D, so
 * dx_j = r w_j dy_j - x_j r^3 / D * sum_i dy_i w_i x_i. */
void GQ_BW(gq_bw_rmsnorm_bwd)(R *dx, R *dw, const R *dy, const R *x, const R *w, const R *rinv, int T, int D) {
    for (int t = 0; t < T; t++) {
        const R *xr = x + (size_t)t * D, *dyr = dy + (size_t)t * D;
        R *dxr = dx + (size_t)t * D;
        double r = rinv[t], dot = 0;
        for (int i = 0; i < D; i++) dot += (double)dyr[i] * w[i] * xr[i];
        double c = r * r * r * dot / D;
        for (int i = 0; i < D; i++) dxr[i] += (R)(r * w[i] * dyr[i] - xr[i] * c);
        if (dw)
            for (int i = 0; i < D; i++) dw[i] += (R)((double)dyr[i] * xr[i] * r);
    }
}

void GQ_BW(gq_bw_linear_fwd)(R *y, const R *x, const R *W, const R *bias, int T, int N, int K) {
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1, x, K, W, K, 0, y, N);
    if (bias)
        for (int t = 0; t < T; t++)
            for (int n = 0; n < N; n++) y[(size_t)t * N + n] += bias[n];
}

void GQ_BW(gq_bw_linear_bwd)(R *dx, int dx_accumulate, R *dW, const R *dy, const R *x, const R *W, int T, int N,
                             int K) {
    if (dx) GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, K, N, 1, dy, N, W, K, dx_accumulate ? 1 : 0, dx, K);
    if (dW) GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, T, 1, dy, N, x, K, 1, dW, K);
}

void GQ_BW(gq_bw_rope_table)(R *cs, R *sn, int T, int HD, double theta) {
    int hd2 = HD / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < hd2; i++) {
            double a = (double)t * pow(theta, -2.0 * (double)i / (double)HD);
            cs[(size_t)t * hd2 + i] = (R)cos(a);
            sn[(size_t)t * hd2 + i] = (R)sin(a);
        }
}

/* dir = +1: rotate by +angle (forward); -1: by -angle (the transpose, i.e. the backward). */
static void GQ_BW(bw_rope)(R *x, const R *cs, const R *sn, int T, int nh, int HD, gq_rope_style st, int dir) {
    int hd2 = HD / 2, ld = nh * HD;
    for (int t = 0; t < T; t++) {
        const R *c = cs + (size_t)t * hd2, *s = sn + (size_t)t * hd2;
        for (int h = 0; h < nh; h++) {
            R *v = x + (size_t)t * ld + (size_t)h * HD;
            for (int i = 0; i < hd2; i++) {
                int a = st == GQ_ROPE_HALF ? i : 2 * i, b = st == GQ_ROPE_HALF ? i + hd2 : 2 * i + 1;
                R x0 = v[a], x1 = v[b], si = dir > 0 ? s[i] : -s[i];
                v[a] = x0 * c[i] - x1 * si;
                v[b] = x0 * si + x1 * c[i];
            }
        }
    }
}

void GQ_BW(gq_bw_rope_fwd)(R *x, const R *cs, const R *sn, int T, int nh, int HD, gq_rope_style st) {
    GQ_BW(bw_rope)(x, cs, sn, T, nh, HD, st, +1);
}
void GQ_BW(gq_bw_rope_bwd)(R *dx, const R *cs, const R *sn, int T, int nh, int HD, gq_rope_style st) {
    GQ_BW(bw_rope)(dx, cs, sn, T, nh, HD, st, -1);
}

/* Per query head: S = Q_h K_g^T / sqrt(HD) (sgemm over all T keys; the future is masked by the
 * softmax), P = causal softmax(S), out_h = P V_g. */
void GQ_BW(gq_bw_attn_fwd)(R *out, R *P, const R *q, const R *k, const R *v, int T, int NH, int NKV, int HD) {
    int grp = NH / NKV, qd = NH * HD, kd = NKV * HD;
    R scale = (R)(1.0 / sqrt((double)HD));
    for (int h = 0; h < NH; h++) {
        R *Ph = P + (size_t)h * T * T;
        const R *kg = k + (size_t)(h / grp) * HD, *vg = v + (size_t)(h / grp) * HD;
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, scale, q + (size_t)h * HD, qd, kg, kd, 0, Ph, T);
        for (int t = 0; t < T; t++) {
            R *r = Ph + (size_t)t * T;
            double mx = r[0], sum = 0;
            for (int s = 1; s <= t; s++) if (r[s] > mx) mx = r[s];
            for (int s = 0; s <= t; s++) { double e = exp((double)r[s] - mx); r[s] = (R)e; sum += e; }
            for (int s = 0; s <= t; s++) r[s] = (R)(r[s] / sum);
            for (int s = t + 1; s < T; s++) r[s] = 0;
        }
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, 1, Ph, T, vg, kd, 0, out + (size_t)h * HD, qd);
    }
}

/* dP = dout_h V_g^T; dV_g += P^T dout_h; dS = P (dP - rowsum(P dP)) (softmax backward; masked
 * entries have P = 0 so they get dS = 0); dQ_h = scale dS K_g; dK_g += scale dS^T Q_h. */
void GQ_BW(gq_bw_attn_bwd)(R *dq, R *dk, R *dv, R *dP, const R *dout, const R *P, const R *q, const R *k,
                           const R *v, int T, int NH, int NKV, int HD) {
    int grp = NH / NKV, qd = NH * HD, kd = NKV * HD;
    R scale = (R)(1.0 / sqrt((double)HD));
    memset(dk, 0, sizeof(R) * (size_t)T * kd);
    memset(dv, 0, sizeof(R) * (size_t)T * kd);
    for (int h = 0; h < NH; h++) {
        const R *Ph = P + (size_t)h * T * T, *doh = dout + (size_t)h * HD, *qh = q + (size_t)h * HD;
        const R *kg = k + (size_t)(h / grp) * HD, *vg = v + (size_t)(h / grp) * HD;
        R *dkg = dk + (size_t)(h / grp) * HD, *dvg = dv + (size_t)(h / grp) * HD;
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HD, 1, doh, qd, vg, kd, 0, dP, T);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, T, HD, T, 1, Ph, T, doh, qd, 1, dvg, kd);
        for (int t = 0; t < T; t++) {
            const R *pr = Ph + (size_t)t * T;
            R *dr = dP + (size_t)t * T;
            double dot = 0;
            for (int s = 0; s <= t; s++) dot += (double)pr[s] * dr[s];
            for (int s = 0; s <= t; s++) dr[s] = (R)(pr[s] * (dr[s] - dot));
            for (int s = t + 1; s < T; s++) dr[s] = 0;
        }
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HD, T, scale, dP, T, kg, kd, 0, dq + (size_t)h * HD, qd);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, T, HD, T, scale, dP, T, qh, qd, 1, dkg, kd);
    }
}

void GQ_BW(gq_bw_swiglu_fwd)(R *h, const R *g, const R *u, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = g[i];
        h[i] = (R)(x / (1.0 + exp(-x)) * u[i]);
    }
}

/* silu(x) = x sig(x), silu'(x) = sig(x) (1 + x (1 - sig(x))). */
void GQ_BW(gq_bw_swiglu_bwd)(R *dg, R *du, const R *dh, const R *g, const R *u, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = g[i], sg = 1.0 / (1.0 + exp(-x));
        du[i] = (R)(dh[i] * x * sg);
        dg[i] = (R)(dh[i] * u[i] * sg * (1.0 + x * (1.0 - sg)));
    }
}

void GQ_BW(gq_bw_embed_fwd)(R *x, const R *emb, const int32_t *tokens, int T, int D) {
    for (int t = 0; t < T; t++) memcpy(x + (size_t)t * D, emb + (size_t)tokens[t] * D, sizeof(R) * (size_t)D);
}

void GQ_BW(gq_bw_embed_bwd)(R *demb, const R *dx, const int32_t *tokens, int T, int D) {
    for (int t = 0; t < T; t++) {
        R *dst = demb + (size_t)tokens[t] * D;
        const R *src = dx + (size_t)t * D;
        for (int i = 0; i < D; i++) dst[i] += src[i];
    }
}

double GQ_BW(gq_bw_xent)(R *dlogits, const R *logits, const int32_t *tokens, int T, int V) {
    GQ_ASSERT(T >= 2);
    double total = 0, inv_n = 1.0 / (double)(T - 1);
    for (int t = 0; t + 1 < T; t++) {
        const R *r = logits + (size_t)t * V;
        double mx = r[0], s = 0;
        for (int i = 1; i < V; i++) if (r[i] > mx) mx = r[i];
        for (int i = 0; i < V; i++) s += exp((double)r[i] - mx);
        int y = tokens[t + 1];
        GQ_ASSERT(y >= 0 && y < V);
        double lse = mx + log(s);
        total += lse - (double)r[y];
        if (dlogits) {
            R *d = dlogits + (size_t)t * V;
            for (int i = 0; i < V; i++) d[i] = (R)(exp((double)r[i] - lse) * inv_n);
            d[y] -= (R)inv_n;
        }
    }
    if (dlogits) memset(dlogits + (size_t)(T - 1) * V, 0, sizeof(R) * (size_t)V);
    return total * inv_n;
}

/* ------------------------------------------------------------------------------------------ */
/* Fake quantization with frozen codes (E2E-OQP)                                                */

void GQ_BW(gq_bw_oqp_expand)(const gq_gqs *g, const R *s, const R *z, R *w_hat) {
    int C = g->K / g->G;
    memset(w_hat, 0, sizeof(R) * (size_t)g->N * g->K);
    for (int r = 0; r < g->N; r++)
        for (int32_t i = g->row_index[r]; i < g->row_index[r + 1]; i++) {
            R *dst = w_hat + (size_t)r * g->K + (size_t)g->group_col[i] * g->G;
            for (int j = 0; j < g->G; j++) dst[j] = ((R)gq_gqs_get_code(g, (size_t)i, j) - z[i]) * s[i];
        }
    (void)C;
}

void GQ_BW(gq_bw_oqp_grad)(const gq_gqs *g, const R *s, const R *z, const R *dW, R *ds, R *dz) {
    for (int r = 0; r < g->N; r++)
        for (int32_t i = g->row_index[r]; i < g->row_index[r + 1]; i++) {
            const R *src = dW + (size_t)r * g->K + (size_t)g->group_col[i] * g->G;
            double a = 0, b = 0;
            for (int j = 0; j < g->G; j++) {
                a += (double)src[j] * ((double)gq_gqs_get_code(g, (size_t)i, j) - z[i]);
                b += src[j];
            }
            ds[i] += (R)a;
            dz[i] += (R)(-(double)s[i] * b);
        }
}

/* ------------------------------------------------------------------------------------------ */
/* One block                                                                                    */

void GQ_BW(gq_bw_block_fwd)(GQ_BW(gq_bw_acts) *a, const GQ_BW(gq_bw_blockw) *w, const R *x_in, R *x_out, int T) {
    const gq_config *c = a->cfg;
    GQ_ASSERT(T >= 1 && T <= a->max_T && x_out != x_in);
    int D = c->dim, H = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
    int qd = NH * HD, kd = NKV * HD;
    size_t n = (size_t)T * D;
    memcpy(a->x_in, x_in, sizeof(R) * n);
    GQ_BW(gq_bw_rmsnorm_fwd)(a->xn1, a->rinv1, x_in, w->attn_norm, T, D, c->norm_eps);
    GQ_BW(gq_bw_linear_fwd)(a->q, a->xn1, w->w[GQ_LIN_Q], w->bias[GQ_LIN_Q], T, qd, D);
    GQ_BW(gq_bw_linear_fwd)(a->k, a->xn1, w->w[GQ_LIN_K], w->bias[GQ_LIN_K], T, kd, D);
    GQ_BW(gq_bw_linear_fwd)(a->v, a->xn1, w->w[GQ_LIN_V], w->bias[GQ_LIN_V], T, kd, D);
    GQ_BW(gq_bw_rope_fwd)(a->q, a->rope_cos, a->rope_sin, T, NH, HD, c->rope_style);
    GQ_BW(gq_bw_rope_fwd)(a->k, a->rope_cos, a->rope_sin, T, NKV, HD, c->rope_style);
    GQ_BW(gq_bw_attn_fwd)(a->att, a->P, a->q, a->k, a->v, T, NH, NKV, HD);
    GQ_BW(gq_bw_linear_fwd)(a->tmp, a->att, w->w[GQ_LIN_O], w->bias[GQ_LIN_O], T, D, qd);
    for (size_t i = 0; i < n; i++) a->x_mid[i] = x_in[i] + a->tmp[i];
    GQ_BW(gq_bw_rmsnorm_fwd)(a->xn2, a->rinv2, a->x_mid, w->ffn_norm, T, D, c->norm_eps);
    GQ_BW(gq_bw_linear_fwd)(a->g, a->xn2, w->w[GQ_LIN_GATE], w->bias[GQ_LIN_GATE], T, H, D);
    GQ_BW(gq_bw_linear_fwd)(a->u, a->xn2, w->w[GQ_LIN_UP], w->bias[GQ_LIN_UP], T, H, D);
    GQ_BW(gq_bw_swiglu_fwd)(a->h, a->g, a->u, (size_t)T * H);
    GQ_BW(gq_bw_linear_fwd)(a->tmp, a->h, w->w[GQ_LIN_DOWN], w->bias[GQ_LIN_DOWN], T, D, H);
    for (size_t i = 0; i < n; i++) x_out[i] = a->x_mid[i] + a->tmp[i];
}

void GQ_BW(gq_bw_block_bwd)(GQ_BW(gq_bw_acts) *a, const GQ_BW(gq_bw_blockw) *w, const R *dy, R *dx,
                            GQ_BW(gq_bw_blockg) *g, int T) {
    const gq_config *c = a->cfg;
    GQ_ASSERT(T >= 1 && T <= a->max_T);
    int D = c->dim, H = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
    int qd = NH * HD, kd = NKV * HD;
    size_t n = (size_t)T * D;
#define GQ_BW_DW(kind) (g ? g->dw[kind] : NULL)
    /* FFN: x_out = x_mid + down(silu(gate(xn2)) * up(xn2)) */
    memcpy(a->dmid, dy, sizeof(R) * n);
    GQ_BW(gq_bw_linear_bwd)(a->dh, 0, GQ_BW_DW(GQ_LIN_DOWN), dy, a->h, w->w[GQ_LIN_DOWN], T, D, H);
    GQ_BW(gq_bw_swiglu_bwd)(a->dg, a->du, a->dh, a->g, a->u, (size_t)T * H);
    GQ_BW(gq_bw_linear_bwd)(a->dxn, 0, GQ_BW_DW(GQ_LIN_GATE), a->dg, a->xn2, w->w[GQ_LIN_GATE], T, H, D);
    GQ_BW(gq_bw_linear_bwd)(a->dxn, 1, GQ_BW_DW(GQ_LIN_UP), a->du, a->xn2, w->w[GQ_LIN_UP], T, H, D);
    GQ_BW(gq_bw_rmsnorm_bwd)(a->dmid, g ? g->dffn_norm : NULL, a->dxn, a->x_mid, w->ffn_norm, a->rinv2, T, D);
    /* attention: x_mid = x_in + o(attn(rope(q(xn1)), rope(k(xn1)), v(xn1))) */
    GQ_BW(gq_bw_linear_bwd)(a->datt, 0, GQ_BW_DW(GQ_LIN_O), a->dmid, a->att, w->w[GQ_LIN_O], T, D, qd);
    GQ_BW(gq_bw_attn_bwd)(a->dq, a->dk, a->dv, a->dP, a->datt, a->P, a->q, a->k, a->v, T, NH, NKV, HD);
    GQ_BW(gq_bw_rope_bwd)(a->dq, a->rope_cos, a->rope_sin, T, NH, HD, c->rope_style);
    GQ_BW(gq_bw_rope_bwd)(a->dk, a->rope_cos, a->rope_sin, T, NKV, HD, c->rope_style);
    GQ_BW(gq_bw_linear_bwd)(a->dxn, 0, GQ_BW_DW(GQ_LIN_Q), a->dq, a->xn1, w->w[GQ_LIN_Q], T, qd, D);
    GQ_BW(gq_bw_linear_bwd)(a->dxn, 1, GQ_BW_DW(GQ_LIN_K), a->dk, a->xn1, w->w[GQ_LIN_K], T, kd, D);
    GQ_BW(gq_bw_linear_bwd)(a->dxn, 1, GQ_BW_DW(GQ_LIN_V), a->dv, a->xn1, w->w[GQ_LIN_V], T, kd, D);
    if (dx != a->dmid) memmove(dx, a->dmid, sizeof(R) * n);
    GQ_BW(gq_bw_rmsnorm_bwd)(dx, g ? g->dattn_norm : NULL, a->dxn, a->x_in, w->attn_norm, a->rinv1, T, D);
#undef GQ_BW_DW
}

/* ------------------------------------------------------------------------------------------ */
/* Whole model                                                                                  */

gq_status GQ_BW(gq_bw_model_ws_init)(GQ_BW(gq_bw_model_ws) *ws, const gq_config *c, int max_T, int want_dw,
                                     int want_dnorm) {
    GQ_ASSERT(ws && c && max_T >= 2);
    memset(ws, 0, sizeof *ws);
    GQ_TRY(GQ_BW(gq_bw_acts_init)(&ws->acts, c, max_T));
    size_t T = (size_t)max_T, D = (size_t)c->dim, V = (size_t)c->vocab_size, L = (size_t)c->n_layers;
    size_t n = (L + 1) * T * D + T * D + T + 2 * T * V + 2 * T * D, bytes;
    R *slab = NULL;
    if (gq_mul_overflow(n, sizeof(R), &bytes) || !(slab = gq_try_malloc(bytes))) {
        GQ_BW(gq_bw_acts_free)(&ws->acts);
        return gq_errf(GQ_ERR_NOMEM, "backward: cannot allocate the model workspace for %d tokens", max_T);
    }
    ws->max_T = max_T;
    ws->xs = slab;
    ws->xf = ws->xs + (L + 1) * T * D;
    ws->rinvf = ws->xf + T * D;
    ws->logits = ws->rinvf + T;
    ws->dlogits = ws->logits + T * V;
    ws->dx = ws->dlogits + T * V;
    ws->dy = ws->dx + T * D;
    size_t gn = 0, sz[GQ_LIN_COUNT];
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim, H = (size_t)c->hidden_dim;
    sz[GQ_LIN_Q] = qd * D; sz[GQ_LIN_K] = kd * D; sz[GQ_LIN_V] = kd * D; sz[GQ_LIN_O] = D * qd;
    sz[GQ_LIN_GATE] = H * D; sz[GQ_LIN_UP] = H * D; sz[GQ_LIN_DOWN] = D * H;
    if (want_dw) for (int i = 0; i < GQ_LIN_COUNT; i++) gn += sz[i];
    if (want_dnorm) gn += 2 * D;
    if (gn) {
        ws->gslab = gq_try_malloc(gn * sizeof(R));
        if (!ws->gslab) {
            GQ_BW(gq_bw_model_ws_free)(ws);
            return gq_errf(GQ_ERR_NOMEM, "backward: cannot allocate %zu MB of block gradients", (gn * sizeof(R)) >> 20);
        }
        ws->gslab_n = gn;
        R *p = ws->gslab;
        if (want_dw) for (int i = 0; i < GQ_LIN_COUNT; i++) { ws->g.dw[i] = p; p += sz[i]; }
        if (want_dnorm) { ws->g.dattn_norm = p; ws->g.dffn_norm = p + D; }
    }
    return GQ_OK;
}

void GQ_BW(gq_bw_model_ws_free)(GQ_BW(gq_bw_model_ws) *ws) {
    if (!ws) return;
    GQ_BW(gq_bw_acts_free)(&ws->acts);
    free(ws->xs);
    free(ws->gslab);
    memset(ws, 0, sizeof *ws);
}

gq_status GQ_BW(gq_bw_model_loss)(GQ_BW(gq_bw_model_ws) *ws, const GQ_BW(gq_bw_modelw) *mw, const int32_t *tokens,
                                  int T, int backward, GQ_BW(gq_bw_block_grad_fn) cb, void *cb_ctx, R *dtok_emb,
                                  R *dlm_head, R *dfinal_norm, double *loss) {
    const gq_config *c = mw->cfg;
    GQ_ASSERT(ws->acts.cfg == c || (ws->acts.cfg->dim == c->dim && ws->acts.cfg->n_layers == c->n_layers));
    GQ_TRY(gq_bw_check_window(c, tokens, T, ws->max_T));
    int D = c->dim, V = c->vocab_size, L = c->n_layers;
    size_t n = (size_t)T * D;
    GQ_BW(gq_bw_embed_fwd)(ws->xs, mw->tok_emb, tokens, T, D);
    for (int l = 0; l < L; l++) GQ_BW(gq_bw_block_fwd)(&ws->acts, &mw->blocks[l], ws->xs + l * n, ws->xs + (l + 1) * n, T);
    const R *xL = ws->xs + (size_t)L * n;
    GQ_BW(gq_bw_rmsnorm_fwd)(ws->xf, ws->rinvf, xL, mw->final_norm, T, D, c->norm_eps);
    GQ_BW(gq_bw_linear_fwd)(ws->logits, ws->xf, mw->lm_head, NULL, T, V, D);
    double lv = GQ_BW(gq_bw_xent)(backward ? ws->dlogits : NULL, ws->logits, tokens, T, V);
    if (!isfinite(lv)) return gq_errf(GQ_ERR_NUMERIC, "training: the loss is %g (non-finite) in the forward pass", lv);
    *loss = lv;
    if (!backward) return GQ_OK;
    /* head: logits = rmsnorm(xL) E^T */
    GQ_BW(gq_bw_linear_bwd)(ws->dy, 0, dlm_head, ws->dlogits, ws->xf, mw->lm_head, T, V, D);
    memset(ws->dx, 0, sizeof(R) * n);
    GQ_BW(gq_bw_rmsnorm_bwd)(ws->dx, dfinal_norm, ws->dy, xL, mw->final_norm, ws->rinvf, T, D);
    for (int l = L - 1; l >= 0; l--) {
        R *xin = ws->xs + (size_t)l * n;
        /* recompute this block's activations from its saved input (its output is not needed) */
        GQ_BW(gq_bw_block_fwd)(&ws->acts, &mw->blocks[l], xin, ws->dy, T);
        if (ws->gslab) memset(ws->gslab, 0, sizeof(R) * ws->gslab_n);
        GQ_BW(gq_bw_block_bwd)(&ws->acts, &mw->blocks[l], ws->dx, ws->dx, ws->gslab ? &ws->g : NULL, T);
        if (cb) GQ_TRY(cb(cb_ctx, l, &ws->g));
    }
    if (dtok_emb) GQ_BW(gq_bw_embed_bwd)(dtok_emb, ws->dx, tokens, T, D);
    return GQ_OK;
}
