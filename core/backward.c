/* backward.c — expands backward_tmpl.h for float (training) and double (gradient checks).
 * Must not: hold any code of its own beyond the two expansions (one implementation for both types).
 */
#include "backward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define R float
#define SFX _f32
#define GEMM cblas_sgemm
#include "backward_tmpl.h"
#undef R
#undef SFX
#undef GEMM

#define R double
#define SFX _f64
#define GEMM cblas_dgemm
#include "backward_tmpl.h"
#undef R
#undef SFX
#undef GEMM
