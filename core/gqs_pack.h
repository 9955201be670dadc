/* gqs_pack.h — the GQS GPU device format: a re-layout of a gq_gqs (core/gqs.h) made at export time so
 * the CUDA GEMV (core/cuda/gqs_gemv.h) streams it with 16-byte loads; plus its CPU decoders, the CPU
 * emulation of the Stream-K work split, and random GQS matrices for tests and benchmarks.
 *
 * Device format (bits = 4; G = 8, 16, 32, 64 or 128; K a multiple of 8):
 *   A "unit" is 16 bytes of codes = 32 consecutive weights of one row: four 32-bit words ("quads") of
 *   8 codes each. For G <= 32 a unit holds 32/G whole groups (rows are padded with empty groups —
 *   scale 0, min 0, column 0 — to a multiple of 32/G groups, so a unit never straddles two rows); for
 *   G >= 32 a group spans G/32 consecutive units. Units are numbered in row order.
 *   row_unit  [N+1]  int32   row r owns units row_unit[r] .. row_unit[r+1]-1
 *   codes     [U*16] bytes   unit u at codes + 16u; inside quad word q (little-endian uint32), code
 *                            c = 0..7 of that quad sits at nibble (c>>1) + 4*(c&1), so that
 *                            (word >> 4s) & 0x000F000F holds codes 2s and 2s+1 in the two fp16 lanes
 *                            (the "(q | 0x6400) as half = 1024 + q" conversion in registers)
 *   col       [S]    uint16  group column (in group units) of slot i; slot = a (possibly padding) group
 *   sm        [S]    uint32  fp16 scale in the low half, fp16 min = -zero*scale in the high half:
 *                            w = q*scale + min
 *   S = U*32/G slots: slot of quad q in unit u is u*(32/G) + q/(G/8) for G <= 32, u/(G/32) for G >= 32.
 *   At W4 G16 a kept group costs 8 + 2 + 4 = 14 bytes against 32 bytes in fp16 (4.6x at S50).
 * The dense per-group W4 baseline uses the same layout with every group kept (no padding needed when
 * K % 32 == 0; its kernel ignores col and row_unit).
 *
 * Must not: call CUDA (this file is plain C and builds everywhere), or change what the GQS format means:
 * the only loss is rounding scale and min to fp16, which gq_gqs_dev_expand reproduces exactly.
 */
#ifndef GQ_GQS_PACK_H
#define GQ_GQS_PACK_H

#include "gqs.h"

typedef struct {
    int N, K, G, bits;   /* as in the source gq_gqs; bits == 4 */
    size_t nnz;          /* kept groups of the source (without padding) */
    int64_t n_units;     /* U */
    int64_t n_slots;     /* S = U*32/G */
    int32_t *row_unit;   /* [N+1] */
    uint8_t *codes;      /* [U*16] */
    uint16_t *col;       /* [S] */
    uint32_t *sm;        /* [S] fp16 scale | fp16 min << 16 */
} gq_gqs_dev;

/* Groups per unit (G <= 32) and units per group (G >= 32). */
static inline int gq_gqs_dev_groups_per_unit(int G) { return G <= 32 ? 32 / G : 1; }
static inline int gq_gqs_dev_units_per_group(int G) { return G >= 32 ? G / 32 : 1; }

/* Is (G, bits) a combination the device format supports? On 0, *why gets a static reason. */
int gq_gqs_dev_supported(int G, int bits, const char **why);

/* Re-layout g (validated first with gq_gqs_validate) into *out (arrays owned by *out, free with
 * gq_gqs_dev_free). `what` names the tensor in error messages. Returns GQ_ERR_UNSUPPORTED for a
 * (G, bits) the kernels do not implement, GQ_ERR_FORMAT for an invalid g, GQ_ERR_ARG when a count
 * overflows the format's int32/uint16 fields. */
gq_status gq_gqs_pack(const gq_gqs *g, const char *what, gq_gqs_dev *out);
void gq_gqs_dev_free(gq_gqs_dev *d);

/* Nibble position (0..7) of code c (0..7) inside its quad word (see above). */
static inline int gq_quad_nibble(int c) { return (c >> 1) + 4 * (c & 1); }
/* Real (non-padding) groups of row r: its slots row_unit[r] * 32 / G .. + this - 1, ascending columns. */
int64_t gq_gqs_dev_row_groups(const gq_gqs_dev *d, int r);

/* Code of weight (row r, column k) from the device format (-1 if its group is not kept), and the dense
 * W_hat [N, K] the GPU computes with: w = q*fp16(scale) + fp16(min) in float (pruned weights 0). */
int gq_gqs_dev_get_code(const gq_gqs_dev *d, int r, int k);
void gq_gqs_dev_expand(const gq_gqs_dev *d, float *w);

/* order [N] = the rows sorted by decreasing number of units (row_unit [N+1]), ties in row order (a
 * counting sort, O(N + longest row)). The v3 row-split kernel visits rows in this order so that the
 * longest rows start first instead of setting the tail. */
void gq_rows_by_length(const int32_t *row_unit, int N, int32_t *order);

/* ---- v4 task list: the task-centric split of core/cuda/gqs_gemv.cu (GQ_GEMV_TASK_V4) ---------------
 * The work of a matrix cut into tasks of at most `chunk` units: a row of n units becomes ceil(n / chunk)
 * tasks (an empty row one task of 0 units, so that it is written as zero). One warp takes one task, so
 * no warp does more than `chunk` units however uneven the rows are, while a row that fits one task is
 * still written directly. The tasks of a cut row each leave a partial sum in their own record
 * (row_fix[2r] + ci, row_fix[2r+1] = the row's number of tasks); the last to arrive sums the row's
 * records in chunk order (deterministic) and writes it. Tasks are ordered longest first (ties in row
 * order), so the short remnants fill the tail of the launch instead of the long chunks. */
typedef struct {
    int32_t row;  /* output row */
    int32_t lo;   /* first unit (global index) */
    int32_t n;    /* units, 0 < n <= chunk (0 only for an empty row) */
    int32_t ci;   /* chunk index inside the row, -1 when the task is the whole row */
} gq_gemv_task;

/* Units per task for a matrix of U units when about `slots` warps run at once: ceil(U / slots)
 * rounded up to a multiple of `round` (a warp's units per round of loads), at least `round`. */
int64_t gq_gqs_task_chunk(int64_t U, int64_t slots, int64_t round);
/* Build the task list of row_unit [N+1] with tasks of at most chunk (>= 1) units: *tasks (malloc'd,
 * *ntasks entries, longest first), row_fix [2N] (caller-allocated; {first record, tasks} of each row,
 * {-1, 1} for a row in one task) and *nrec records in all. GQ_ERR_ARG when a count overflows int32. */
gq_status gq_gqs_tasks(const int32_t *row_unit, int N, int64_t chunk, gq_gemv_task **tasks, int64_t *ntasks,
                       int32_t *row_fix, int64_t *nrec);
/* y [B, N] = W_hat x through the task list, processed in `order` (a permutation of 0..ntasks-1, or
 * NULL), float64, with the records + arrival counters of the kernel: a cut row is written by the last
 * of its tasks to arrive, from its records in chunk order. writes [N] counts the writes of each row.
 * GQ_ERR_INTERNAL with a message when the protocol breaks (a unit covered twice or never, a counter
 * overshooting, a row unwritten). */
gq_status gq_gqs_task_emulate(const gq_gqs_dev *d, const gq_gemv_task *tasks, int64_t ntasks, const int32_t *row_fix,
                              int64_t nrec, const int64_t *order, const float *x, int B, double *y, int *writes);

/* ---- v10 round split: the task-centric split of the pipelined kernel (core/cuda/gqs_pipe.h) ---------
 * Row r costs max(1, ceil(4 n_r / qpr)) rounds of loads (n_r units, qpr quads per round; an empty row
 * one round, so it is written as zero). With R rounds in all and W = min(workers, R) warps, warp w takes
 * rounds [floor(w R / W), floor((w + 1) R / W)) of the rows in order — equal work however uneven the
 * rows — and start[2w], start[2w + 1] = the row and the round within it of its first round; start[2W],
 * start[2W + 1] = N, 0. A row cut between warps is finished by the warp holding its round 0 (its owner),
 * which adds the partial sums of the following warps whose range starts inside the row, in warp order.
 * Returns W (>= 1 when N >= 1; 0 for N = 0), or -1 when a warp would hold more than max_rows rows or a
 * count overflows int32. start: [2 (min(workers, R) + 1)], caller-allocated (2 (workers + 1) suffice). */
int64_t gq_gqs_round_split(const int32_t *row_unit, int N, int qpr, int64_t workers, int max_rows, int32_t *start);

/* ---- v11 row stream: the single-stream layout of core/cuda/gqs_stream.h ----------------------------
 * The same codes, scale|min words and columns as above, re-laid so that a warp walking one row reads one
 * contiguous stream with three 16-byte-class loads per lane per round instead of v7's twelve 4- and
 * 2-byte loads from three arrays. A row's quads are padded with empty quads (codes 0, scale|min 0,
 * column 0) to a multiple of 32 (one "block") and stored as full rounds of 4 blocks, then 0-3 short
 * rounds of one block; the row's stream is padded to 16 bytes. Lane l of round t holds quads
 * 128 t + l + 32 i (i = 0..3; short round t': 128 nf + 32 t' + l), v7's assignment, so the kernel is
 * bit-identical to v7. With QPG = G / 8 quads per group and SPR = 32 / QPG slots per block:
 *   full round  [32 x 16 B] lane l: the code words of its quads i = 0..3
 *               [SPR x 16 B] entry e: scale|min of the round's slots e + SPR i, i = 0..3 (lane l reads e = l / QPG)
 *               [SPR x 8 B]  entry e: their columns (uint16; GQS only)
 *   short round [32 x 4 B] codes, [SPR x 4 B] scale|min, [SPR x 2 B] columns (GQS only)
 * Dense matrices (the W4 baseline) store no columns: quad j of a row is column 8 j.
 * srow [2N]: {offset of the row's stream in 16-byte units, blocks}. Cost: the padding, < 32 quads per
 * row (PERF.md "v11" gives the measured total). */
#define GQ_STREAM_SPR(G) (256 / (G))
#define GQ_STREAM_META(dense) ((dense) ? 4 : 6) /* bytes per slot: scale|min (+ column) */
#define GQ_STREAM_FULL(G, dense) (512 + 4 * GQ_STREAM_SPR(G) * GQ_STREAM_META(dense))
#define GQ_STREAM_SHORT(G, dense) (128 + GQ_STREAM_SPR(G) * GQ_STREAM_META(dense))
/* Bytes of the stream of a row of `quads` quads, padding included. */
int64_t gq_gqs_stream_row_bytes(int G, int dense, int64_t quads);
/* Fill srow [2N] and *bytes (the whole stream's size); with out != NULL (*bytes bytes, from a first call
 * with out = NULL) also write the stream. dense: d must be dense (every group kept in column order);
 * columns are then left out. GQ_ERR_ARG when an offset overflows the int32 fields. */
gq_status gq_gqs_stream_layout(const gq_gqs_dev *d, int dense, int32_t *srow, uint8_t *out, int64_t *bytes);

/* ---- v13 split of a row stream: each warp one contiguous range of it (core/cuda/gqs_stream.h) --------
 * Tokens, in stream order: every round of every row (row r: nblk / 4 full rounds, then nblk % 4 short
 * ones), and one token of 0 bytes for an empty row (so that it is written, as 0). Warp w owns tokens
 * [start_w, start_{w+1}), and copies the stream bytes between their first bytes through its ring.
 *   mode 1 (task-centric): start_w is the first token whose first byte is >= floor(w * total / W): equal
 *          bytes per warp, rows cut between warps wherever a share ends;
 *   mode 0 (row split):    start_w is round 0 of row floor(w * N / W): whole rows, equal counts;
 *   mode 2 (v16, per CTA): start_w is round 0 of the first row whose first byte is >= floor(w * total / W):
 *          whole rows, equal bytes to within one row (no row is cut).
 * wstart [4 (W + 1)]: {row, round, first byte, 0} of start_w; entry W is {N, 0, total bytes, 0}.
 * A row cut between warps is finished by the last of its parts to arrive: its first part (from round 0)
 * publishes into record 2 w + 1 of its warp w, every later part (a warp whose start lies inside the row)
 * into record 2 w; the last arriver sums them in warp order. rfix [2 N]: {first warp, parts} of a cut
 * row, {-1, 1} of a whole one. W is clamped to the number of tokens (mode 1) or rows (modes 0, 2), at least
 * 1; *W_out gets it. GQ_ERR_ARG when the stream passes 2 GB (byte offsets are int32). */
gq_status gq_gqs_stream_split(const int32_t *srow, int N, int G, int dense, int64_t W, int mode, int32_t *wstart,
                              int32_t *rfix, int64_t *W_out);

/* ---- v17: warps per row of the row-stream kernel (core/cuda/gqs_stream.h, R) -----------------------
 * v11 gives each row one warp, and a warp keeps one round of loads in flight, so a matrix with fewer rows
 * than warp slots keeps fewer bytes in flight than the GPU can (PERF.md "v17"). R warps per row multiply
 * the warps by R. The rule, in waves of `slots` resident warps: the wave efficiency of R is
 * w / ceil(w) with w = N R / slots (the last wave's idle slots); R in {1, 2, 4} with at most the mean
 * rounds per row (rounds: the matrix's total, full and short; a part with no round is a wasted warp),
 * taken when its efficiency beats the best smaller R's by more than 10% (a split costs a barrier and
 * one row-table read per part). A model to be measured (the bench's v17_r* rows), not a derivation. */
int gq_gqs_rows_split(int64_t N, int64_t rounds, int64_t slots);
/* The rounds (full + short) of a row stream's srow [2N]. */
int64_t gq_gqs_stream_rounds(const int32_t *srow, int N);

/* ---- v18 tile stream: the tensor-core small-batch layout of core/cuda/gqs_mma.h (core/gqs_tiles.c) -----
 * Tensor cores multiply a 16 x 16 weight tile by x only when the tile's 16 rows share its 16 columns; GQS
 * rows keep different groups. So rows are taken 32 at a time (tile T = rows 32 T .. 32 T + 31, the last one
 * partial; two m16 halves that share each x fragment) and each column group that any of them keeps becomes
 * one entry, computed as dense 16 x 16 tiles (mma.sync m16n8k16, rows on M, the batch on N) in which the rows
 * that pruned the group are zeros — while only the kept rows' bytes are stored and read. An entry's kept rows
 * are found from its mask by popcount, so no byte of a pruned group is stored.
 *   meta  [E]   uint32  the mask: bit i = row 32 T + i keeps the group. A tile's entries ascend by column
 *                       group and are padded with empty entries (mask 0) to a multiple of GQ_TILE_BLK.
 *   col   [E]   uint16  the entry's column group (0 for padding)
 *   data        entry e at 4 doff(e) bytes, doff the running sum of the entries' sizes in 4-byte units
 *               (gq_tile_entry_bytes: kept rows x (G/2 + 4) bytes, rounded up to max(4, G/8)):
 *                 codes  kept row i (the i-th set bit of mask) at i G/2; in it, the G/8 bytes of thread
 *                        quarter q (= lane % 4) at q G/8: for each 16-column step s < G/16 a 16-bit chunk
 *                        at 2 s, bits 0-3 / 4-7 / 8-11 / 12-15 = the codes of columns 16 s + 2q, 16 s + 2q + 8,
 *                        16 s + 2q + 1, 16 s + 2q + 9 (the A fragment's columns of that lane: gqs_mma.h)
 *                 sm     kept row i's scale|min word (as the device format's) at kept G/2 + 4 i
 *   tblk  [T+1] int32   tile T's entries are blocks tblk[T] .. tblk[T+1] - 1 (block b: entries GQ_TILE_BLK b ..)
 *   boff  [nblk] uint32 doff of block b's first entry (the unit by which a tile's entries are split
 *                       between the warps of its CTA).
 * A dense matrix (the W4 baseline) is the same with every mask full. G = 8 is not laid out (an mma step
 * covers 16 columns, two G8 groups: GQ_ERR_UNSUPPORTED). */
#define GQ_TILE_ROWS 32
#define GQ_TILE_BLK 8
typedef struct {
    int N, K, G, ntiles;
    int64_t nent, nblk, data_bytes; /* entries (padding included), blocks, data bytes */
    int64_t kept;                   /* kept (row, group) pairs: the GQS groups */
    int32_t *tblk;                  /* [ntiles + 1] */
    uint32_t *meta;                 /* [nent] row masks */
    uint16_t *col;                  /* [nent] column groups */
    uint32_t *boff;                 /* [nblk] */
    uint8_t *data;                  /* [data_bytes] */
} gq_gqs_tiles;
/* Bytes of an entry with `kept` rows at group size G. */
static inline int64_t gq_tile_entry_bytes(int G, int kept) {
    const int64_t a = G / 8 > 4 ? G / 8 : 4, b = (int64_t)kept * (G / 2 + 4);
    return (b + a - 1) / a * a;
}
/* Lay d out as a tile stream (arrays owned by *t, free with gq_gqs_tiles_free). GQ_ERR_UNSUPPORTED for
 * G < 16, GQ_ERR_ARG when a count overflows the format's fields (4 GB of data, 65536 column groups). */
gq_status gq_gqs_tiles_build(const gq_gqs_dev *d, gq_gqs_tiles *t);
void gq_gqs_tiles_free(gq_gqs_tiles *t);
/* y [B, N] (float64) = W_hat x [B, K] read from the tile stream as the kernel reads it: for every entry
 * and lane, the lane's A fragment decoded from its code chunks and scale|min words as gqs_mma.h does,
 * placed where mma.m16n8k16 puts that lane's registers, and the tile product summed in float64; the
 * tile's blocks split between S warps as the launcher splits them, their partial tiles added in warp order.
 * Weights in float (q scale + min, as gq_gqs_dev_expand), so y equals the dense product up to summation
 * order: a test of the layout and of the kernel's fragment arithmetic, not of its rounding. */
gq_status gq_gqs_tiles_emulate(const gq_gqs_tiles *t, int S, const float *x, int B, double *y);
/* Warps per tile of the v18 kernel for `slots` resident warps: the largest power of two in 1..16 with ntiles x S
 * <= slots (one wave: a grid of 1.3 waves leaves its second wave 70% idle) and no more than the mean blocks per
 * tile (a warp with no block idles); 1 when even S = 1 takes more than a wave. */
int gq_gqs_tiles_warps(const gq_gqs_tiles *t, int64_t slots);

/* Bytes the kernel must read for the weights: codes + col + sm + row_unit (dense = 1: no col, no
 * row_unit, as the dense W4 kernel reads them). */
size_t gq_gqs_dev_bytes(const gq_gqs_dev *d, int dense);

/* ---- Stream-K emulation (core/cuda/gqs_sk.h logic, run sequentially on the CPU) -------------------- */

typedef struct {
    int64_t cut_rows;      /* rows summed through the fix-up */
    int64_t records;       /* partial records written */
    int64_t max_share;     /* largest share in units (should be ceil(U/W)) */
    int64_t min_share;
} gq_sk_stats;

/* y [B, N] = W_hat x for x [B, K], float64 arithmetic, with W workers processed in the order
 * `order` (a permutation of 0..W-1, or NULL for 0..W-1): each worker walks its share exactly as the
 * kernel does, cut rows go through records + arrival counters and are written by the last arriver.
 * writes [N] (may be NULL) counts how often each row was written: every row must be written once.
 * Returns GQ_ERR_INTERNAL with a message if the protocol breaks (a counter overshoots or a row is left
 * unwritten) — the emulation checks the logic, it is not a fast path. */
gq_status gq_gqs_sk_emulate(const gq_gqs_dev *d, int64_t W, const int64_t *order, const float *x, int B, double *y,
                            int *writes, gq_sk_stats *stats);

/* The v2 flat stream (gqs_sk.h, core/cuda/gqs_flat.h): mode 1 = Stream-K (W equal unit shares),
 * mode 0 = row split (row-aligned shares of gq_flat_rows_per_worker(N, W) rows each; the number of
 * workers becomes ceil(N / rpw), and `order` must then list that many). Same contract as
 * gq_gqs_sk_emulate; it also checks that the v2 row range of every Stream-K worker equals the v1 walk's. */
gq_status gq_gqs_flat_emulate(const gq_gqs_dev *d, int mode, int64_t W, const int64_t *order, const float *x, int B,
                              double *y, int *writes, gq_sk_stats *stats);
/* Rows per worker of the v2 row split with at most W workers: ceil(N / W) (>= 1). */
static inline int64_t gq_flat_rows_per_worker(int N, int64_t W) {
    const int64_t r = ((int64_t)N + W - 1) / W;
    return r < 1 ? 1 : r;
}

/* ---- random GQS matrices (tests, benchmarks) ------------------------------------------------------ */

typedef enum {
    GQ_DENSITY_ROW = 0,   /* every row keeps the same number of groups (prune scope "row") */
    GQ_DENSITY_LAYER = 1, /* rows keep a log-normally varying number of groups (scope "layer") */
    GQ_DENSITY_UNEVEN = 2 /* a quarter of the rows, in contiguous runs of up to 64, holds 75% of the kept
                             groups (capped at full rows: at S50 they are full and hold half) */
} gq_density;
const char *gq_density_name(gq_density p);
/* Parse "row" / "layer" / "uneven"; -1 when unknown. */
int gq_density_parse(const char *s);

/* A random N x K GQS matrix with groups of G, `bits`-bit codes, the given fraction of groups pruned
 * and density pattern. dyadic = 1 makes every value a small dyadic rational (scale = 2^-k, integer
 * zeros) so that fp16 dequantization and short fp16 dot products are exact (exactness tests); dyadic =
 * 0 draws continuous scales and zeros (E2E-OQP-like). Free with gq_gqs_free. */
gq_status gq_gqs_random(gq_gqs *out, int N, int K, int G, int bits, double sparsity, gq_density pattern, int dyadic,
                        uint64_t seed);

#endif
