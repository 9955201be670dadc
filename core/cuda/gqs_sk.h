/* gqs_sk.h — the Stream-K (task-centric) partition of a GQS matrix's work, shared verbatim by the CUDA
 * kernel (core/cuda/gqs_gemv.cu) and its CPU emulation (core/gqs_pack.c), so the logic unit-tested on
 * the CPU is the logic that runs on the GPU.
 *
 * Work items are the device format's 16-byte units (gqs_pack.h), numbered 0..U-1 in row order;
 * row r owns units row_unit[r] .. row_unit[r+1]-1 (rows may own none). The W workers (warps) get equal
 * contiguous shares [gq_sk_begin(w), gq_sk_begin(w+1)). A worker walks the rows its share touches:
 *   - a row lying wholly inside the share ("complete") is written directly;
 *   - a row cut by a share boundary ("cut") leaves a partial sum in a record slot of the worker:
 *     slot 0 when the row contains the share's first unit (row_unit[r] <= begin), else slot 1; the
 *     workers touching a cut row are exactly gq_sk_worker_of(row_unit[r]) .. gq_sk_worker_of(row_unit[r+1]-1)
 *     and whichever finishes last sums their records in worker order (deterministic) and writes the row;
 *   - an empty row is owned by the worker whose share contains its position row_unit[r] (the last worker
 *     owns empty rows at position U), and written as zero.
 * Must not: touch memory other than row_unit, or depend on anything but (U, W, row_unit, N).
 */
#ifndef GQ_CUDA_GQS_SK_H
#define GQ_CUDA_GQS_SK_H

#include <stdint.h>

#ifdef __CUDACC__
#define GQ_SK_HD __host__ __device__ __forceinline__
#else
#define GQ_SK_HD static inline
#endif

/* First unit of worker w's share (w in 0..W; gq_sk_begin(W) == U). 64-bit: U * W stays far below 2^63. */
GQ_SK_HD int64_t gq_sk_begin(int64_t U, int64_t W, int64_t w) { return (U * w) / W; }

/* The worker whose (non-empty) share holds unit p, 0 <= p < U: the largest w with begin(w) <= p,
 * i.e. w < (p+1)W/U, hence floor(((p+1)W - 1) / U). */
GQ_SK_HD int64_t gq_sk_worker_of(int64_t U, int64_t W, int64_t p) {
    int64_t w = ((p + 1) * W - 1) / U;
    return w < W - 1 ? w : W - 1;
}

/* The non-empty row holding unit p (0 <= p < U): the first r with row_unit[r+1] > p. */
GQ_SK_HD int gq_sk_row_of(const int32_t *row_unit, int N, int64_t p) {
    int lo = 0, hi = N - 1; /* invariant: the answer is in [lo, hi] */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if ((int64_t)row_unit[mid + 1] > p) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* The first row worker w processes: the row holding its first unit, preceded by the empty rows that
 * sit exactly at its first unit (they are its to write). s = gq_sk_begin(w). */
GQ_SK_HD int gq_sk_first_row(const int32_t *row_unit, int N, int64_t U, int64_t s) {
    int r = s < U ? gq_sk_row_of(row_unit, N, s) : N;
    if ((int64_t)row_unit[r] == s)
        while (r > 0 && (int64_t)row_unit[r - 1] == s) r--;
    return r;
}

/* Does worker [s, e) (the last worker when is_last) process row r (r >= its first row)? Rows are
 * visited in order, so the walk stops at the first r for which this is false. */
GQ_SK_HD int gq_sk_visits(const int32_t *row_unit, int N, int64_t U, int64_t e, int is_last, int r) {
    if (r >= N) return 0;
    return (int64_t)row_unit[r] < e || (is_last && (int64_t)row_unit[r] == U);
}

/* A visited row is complete (written directly) when all of its units lie in [s, e). */
GQ_SK_HD int gq_sk_complete(const int32_t *row_unit, int r, int64_t s, int64_t e) {
    return (int64_t)row_unit[r] >= s && (int64_t)row_unit[r + 1] <= e;
}

/* Record slot of a cut row r in the share starting at s. */
GQ_SK_HD int gq_sk_slot(const int32_t *row_unit, int r, int64_t s) { return (int64_t)row_unit[r] <= s ? 0 : 1; }

/* ---- v2: the flat (segmented) stream ----------------------------------------------------------------
 * A worker owns units [s, e) and the rows [rA, rB) it visits (the same rows the v1 walk above visits).
 * Lanes take units s + lane + 32 i regardless of rows; each lane keeps a row cursor (the row holding
 * its unit), every "round" of 32 consecutive units is reduced per row with a segmented warp sum, and a
 * row's partial is carried across rounds while it continues. A row is flushed when it ends within the
 * round or the share ends there: complete rows (all units in [s, e)) are written, cut rows go through
 * the v1 records/counters unchanged. Empty rows never hold a unit: the worker writes the visited empty
 * rows as zero in a separate pass (every visited empty row is complete), and a worker with an empty
 * share (s == e, more workers than units) records 0 for the cut row it visits.
 * Row split v2 uses the same stream with row-aligned shares: worker w takes rows [w*rpw, (w+1)*rpw)
 * (rpw rows per worker), so every row is complete. */

/* Does row r (visited, units [rs, re)) finish in the round whose last unit is rend - 1 (rend =
 * min(round base + 32, e))? Yes when its last unit is there or the share ends there. */
GQ_SK_HD int gq_sk_round_flushes(int64_t re, int64_t rend, int64_t e) { return re <= rend || rend >= e; }

/* One step of the warp's 32-ary search for A = #{i in [lo, hi): arr[i] <= p} (arr ascending; start
 * lo = 0, hi = n; repeat while lo < hi). Lane j probes index gq_sk_probe(lo, hi, j) (pred = index < hi
 * && arr[index] <= p), c = number of true preds (they are a prefix), then gq_sk_narrow shrinks [lo, hi]
 * to width < step: 3 steps for n = 8192 instead of 13 dependent loads of a plain binary search. */
GQ_SK_HD int64_t gq_sk_step(int64_t lo, int64_t hi) { return (hi - lo + 31) / 32; }
GQ_SK_HD int64_t gq_sk_probe(int64_t lo, int64_t hi, int j) { return lo + gq_sk_step(lo, hi) * (j + 1) - 1; }
GQ_SK_HD void gq_sk_narrow(int64_t *lo, int64_t *hi, int c) {
    const int64_t st = gq_sk_step(*lo, *hi), nlo = *lo + st * c, nhi = *lo + st * (c + 1) - 1;
    *lo = nlo;
    *hi = nhi < *hi ? nhi : *hi;
}

/* The same search run sequentially (the CPU emulation; the kernel runs the 32 probes as lanes). */
GQ_SK_HD int64_t gq_sk_count_le32(const int32_t *arr, int64_t n, int64_t p) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int c = 0;
        for (int j = 0; j < 32; j++) {
            const int64_t i = gq_sk_probe(lo, hi, j);
            c += i < hi && (int64_t)arr[i] <= p;
        }
        gq_sk_narrow(&lo, &hi, c);
    }
    return lo;
}

/* rA (= gq_sk_first_row(s)) from L = #{r in [0, N]: row_unit[r] < s} (s <= U): when row_unit[L] == s
 * rows L.. start at s (empty ones first), else row L-1 holds s. */
GQ_SK_HD int gq_sk_first_row_from(const int32_t *row_unit, int64_t L, int64_t s) {
    return (int64_t)row_unit[L] == s ? (int)L : (int)L - 1;
}
/* rB: the first row not visited: N for the last worker, else #{r in [0, N): row_unit[r] < e}, at least rA. */
GQ_SK_HD int gq_sk_row_end_from(int64_t Le, int N, int is_last, int rA) {
    int r = is_last ? N : (int)(Le < N ? Le : N);
    return r > rA ? r : rA;
}

#endif
