/* stage_compress.h — shared by stage_prune.c and stage_quantize.c (see stage_compress.c). */
#ifndef GQ_STAGE_COMPRESS_H
#define GQ_STAGE_COMPRESS_H

#include "stage.h"

/* Run the config's (non-gqsa) method on a clone of the FP model into ctx->cm and write it to ck. */
gq_status gq_stage_run_baseline(gq_stage_ctx *ctx, gq_ckpt *ck);
/* Read a compressed model checkpoint into ctx->cm. */
gq_status gq_stage_load_compressed(gq_stage_ctx *ctx, gq_ckpt *ck);
/* sparsity, bits_per_weight (with metadata) and bits_per_weight_nometa of ctx->cm. */
void gq_stage_compressed_metrics(gq_stage_ctx *ctx);

#endif
