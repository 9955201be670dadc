/* gqs_ws.h — v16: the batch-1 GEMV over the v11 row stream, warp-specialised. Each CTA owns one contiguous
 * range of whole rows (gqs_pack.h "v13 split", mode 2: equal bytes to within one row, so no row is cut and
 * there is no fix-up); one producer warp streams the range through a CTA-wide shared-memory ring with bulk
 * copies (cp.async.bulk, gq_v16_config.pieces per slot, one per producer lane), and the other warps (the consumers) take the range's rows
 * one at a time from a shared counter and compute each with v11's loads (from the ring), lanes, quad order
 * and arithmetic, so every result is bit-identical to v11 and v3. CUDA C++ only; launched by
 * gq_gemv_launch_v16 (gqs_gemv_v16.cu).
 *
 * Why (PERF.md "v16"): v11 is held by its loads' latency with one round in flight per warp (57 KB per SM;
 * Nsight Compute: 78% of stalls on L1TEX data, issued IPC 1.63), and the per-warp rings that put more bytes
 * in flight (v8, v12, v13, v14) bought them with warps: 8-28 KB of ring per warp leaves 8-28 warps per SM,
 * too few to hide the arithmetic. Here the ring belongs to the CTA: its size (~192 KB per SM) and the
 * number of consumer warps (31) are independent, the copies hold no registers, and a consumer's loads come
 * from shared memory (tens of cycles, not ~1 us).
 * Measured 2.1x slower than v11 (8192^2 S50 G16: 25.7-27.8 us vs 12.5; PERF.md "v16 measured"): the ring alone
 * moved 1.5 TB/s, ~0.45 us per slot per CTA, and the 31 consumers' issue did not hide under it. Since then (not
 * yet run on the GPU): slot cursors instead of divisions by NS, no proxy fence per release. Kept as kinds for
 * the record and the study (gq_gqs_gpu_set_v16).
 *
 * Protocol. The range's bytes [0, len) are cut into slots of SB bytes (a power of two); slot k goes to ring
 * buffer k mod NS (NS = RB / SB), whose `full` mbarrier completes its phase floor(k / NS) when the copy has
 * landed, and whose `empty` mbarrier (count: the consumers) completes the same phase when every consumer
 * has released slot k. The producer fills slot k >= NS after waiting for slot k - NS to be released. Every
 * consumer releases every slot exactly once and in order, and only after it has seen the slot's fill (so
 * its arrival counts toward that slot's phase, never an earlier one): it releases the slots before the
 * slot of the round it is about to read, and at the end all of them, each as soon as its fill is seen
 * (waiting for all the fills up to a row far ahead before releasing any deadlocked the first build: those
 * fills wait for this warp's own releases). A consumer's rows come in increasing
 * order (the counter only grows), so its reads move forward through the range. No deadlock while a row's
 * stream fits in RB - SB bytes (the consumer holding the oldest slot can then always get the rest of its
 * row): the launcher checks it.
 * Must not: read x before gq_pdl_wait() (weights and the row table may be read before it) nor with
 * ld.global.nc; exit a consumer before it has seen every slot's fill (no copy may land in a CTA that has
 * left the SM); call __syncthreads after the roles split.
 */
#ifndef GQ_CUDA_GQS_WS_H
#define GQ_CUDA_GQS_WS_H

#include "gqs_stream.h"

/* Where a round's bytes are in a ring of rb bytes (a multiple of 16): ring + (o + off) mod rb, with o < rb
 * and off < rb (a 16-byte field at a 16-byte offset never straddles the end). */
struct gq_at_wrap {
    const char *ring;
    int o, rb;
    __device__ __forceinline__ const char *operator()(int off) const {
        const int x = o + off;
        return ring + (x >= rb ? x - rb : x);
    }
};

/* A position in the ring's sequence of slots: slot k's buffer k mod NS and the parity of its fill (k / NS) & 1,
 * advanced one slot at a time, so no loop divides by NS (runs 9-12 divided three times per slot per warp, each
 * a ~20-instruction sequence: by the SASS, roughly a third of the 12.8 M instructions Nsight Compute counted
 * for the copy engine; inferred, not profiled). */
struct gq_ws_cursor {
    int i = 0;
    uint32_t ph = 0;
    __device__ __forceinline__ void next(int ns) {
        if (++i == ns) i = 0, ph ^= 1u;
    }
};

/* Shared memory of a v16 CTA: [x (XS: gq_flat_kc(K) swizzled 16-byte chunks)] [ring] [NS full, NS empty
 * mbarriers] [the row counter]. */
__host__ __device__ inline size_t gq_ws_smem(int K, int ring, int slot, bool xs) {
    return (xs ? (size_t)gq_flat_kc(K) * 16 : 0) + (size_t)ring + 16 * (size_t)(ring / slot) + 16;
}

/* COPY_ONLY: the ring and its protocol without the arithmetic (the bench's walk_ws ceiling). XS: x staged
 * once per CTA in shared memory (after the wait, coherent loads). a.ws_ring: RB; a.ws_slot_log: log2 SB. */
template <int G, bool DENSE, bool XS = false, bool COPY_ONLY = false>
__global__ void __launch_bounds__(1024, 1) gq_gemv_ws_kernel(const gq_gemv_args a) {
    constexpr int FULL = GQ_STREAM_FULL(G, DENSE), SHORT = GQ_STREAM_SHORT(G, DENSE);
    extern __shared__ uint4 gq_wss[];
    const int RB = a.ws_ring, SL = a.ws_slot_log, SB = 1 << SL, NS = RB >> SL;
    const int lane = threadIdx.x & 31, wi = threadIdx.x >> 5, C = (int)(blockDim.x >> 5) - 1;
    const int kc = XS ? gq_flat_kc(a.K) : 0;
    char *ring = reinterpret_cast<char *>(gq_wss) + kc * 16;
    uint64_t *full = reinterpret_cast<uint64_t *>(ring + RB), *empty = full + NS;
    int *next = reinterpret_cast<int *>(empty + NS);
    const int4 s = a.wstart[blockIdx.x], e = a.wstart[blockIdx.x + 1];
    const int len = e.z - s.z, nsl = (len + SB - 1) >> SL;
    const char *g = reinterpret_cast<const char *>(a.stream) + s.z;
    if (threadIdx.x == 0) {
        for (int k = 0; k < NS; k++) gq_mbar_init(&full[k], 1), gq_mbar_init(&empty[k], (uint32_t)C);
        *next = s.x;
        gq_mbar_init_fence();
    }
    __syncthreads();
    const bool producer = wi == C;
    /* slot k, by the producer warp: lane 0 sets the slot's byte count, lanes 0..P-1 each copy one piece
     * (P = a.ws_pieces; 16-byte multiples, the last piece takes the rest) */
    const int P = a.ws_pieces, piece = ((SB / P) + 15) & ~15;
    const auto issue = [&](int k, int i) { /* slot k into buffer i */
        const int b = len - (k << SL) < SB ? len - (k << SL) : SB;
        if (lane == 0) gq_mbar_expect_tx(&full[i], (uint32_t)b);
        __syncwarp();
        const int p0 = lane * piece, p1 = p0 + piece < b ? p0 + piece : b;
        if (lane < P && p0 < b)
            gq_bulk_g2s(ring + (i << SL) + p0, g + ((size_t)k << SL) + p0, (uint32_t)(p1 - p0), &full[i]);
    };
    gq_ws_cursor pc; /* the producer's next slot */
    if (producer)
        for (int k = 0; k < nsl && k < NS; k++) issue(k, pc.i), pc.next(NS); /* weights only: before the wait */
    gq_pdl_wait();
    gq_pdl_trigger();
    if constexpr (XS) {
        gq_stage_x_b1(gq_wss, a);
        __syncthreads();
    }
    if (producer) {
        for (int k = NS; k < nsl; k++, pc.next(NS)) { /* slot k - NS, in the same buffer, released one fill earlier */
            if (!a.ws_lane0_wait || lane == 0) gq_mbar_wait_ns(&empty[pc.i], pc.ph ^ 1u, a.ws_wait);
            __syncwarp();
            issue(k, pc.i);
        }
        return; /* the consumers see every fill before the CTA ends */
    }
    int ready = -1, rel = 0; /* slots whose fill this warp has seen: [0, ready]; released: [0, rel) */
    gq_ws_cursor rc, lc;     /* slots ready + 1 and rel */
    /* every lane waits (as measured: 31 x 32 threads poll one barrier), or (a.ws_lane0_wait; not yet run on the
     * GPU) lane 0 waits and the warp follows it through __syncwarp (memory ordering among the warp's lanes) */
    const auto wait_to = [&](int k) {
        for (; ready < k; ready++, rc.next(NS)) {
            if (!a.ws_lane0_wait || lane == 0) gq_mbar_wait_ns(&full[rc.i], rc.ph, a.ws_wait);
            __syncwarp();
        }
    };
    /* One slot at a time: the fill of a slot far ahead may wait for this warp's release of an earlier one.
     * No proxy fence before the arrival (as CUTLASS's consumer release): every read of a released slot has
     * returned its value, used by arithmetic issued before this in the warp's in-order stream; runs 9-12 had
     * gq_fence_proxy_async here, a MEMBAR.ALL.CTA in SASS that waits for the lane's x loads in flight. */
    const auto release_below = [&](int k) {
        for (; rel < k; rel++, lc.next(NS)) {
            wait_to(rel);
            __syncwarp(); /* every lane past its reads of the slot */
            if (lane == 0) gq_mbar_arrive(&empty[lc.i]);
        }
    };
    const auto grab = [&]() {
        int r = 0;
        if (lane == 0) r = atomicAdd(next, 1);
        return __shfl_sync(0xFFFFFFFFu, r, 0);
    };
    const int kq = (lane % (G / 8)) * 8;
    const uint32_t n = (uint32_t)(a.K / 8);
    int rn = grab(); /* the next row and its table entry, one row ahead */
    int2 sn = rn < e.x ? a.srow[rn] : make_int2(0, 0);
    while (rn < e.x) {
        const int r = rn;
        const int2 sr = sn;
        rn = grab();
        if (rn < e.x) sn = a.srow[rn];
        const int o0 = 16 * sr.x - s.z, nf = sr.y >> 2, nr = nf + (sr.y & 3);
        int ro = o0 % RB;
        float acc[1] = {0.f};
        for (int t = 0; t < nr; t++) {
            const bool fr = t < nf;
            const int o = o0 + (fr ? t * FULL : nf * FULL + (t - nf) * SHORT), sz = fr ? FULL : SHORT;
            release_below(o >> SL);
            wait_to((o + sz - 1) >> SL);
            gq_stream_round_smem<G, DENSE, XS, COPY_ONLY>(a, gq_at_wrap{ring, ro, RB}, lane, t, nf, n, kq, acc, gq_wss, kc);
            ro += sz;
            if (ro >= RB) ro -= RB;
        }
        gq_warp_sum<1>(acc);
        gq_store_row<1>(a, r, lane, acc); /* an empty row: 0 */
    }
    release_below(nsl); /* every fill seen (and released) before the warp leaves */
}

#endif
