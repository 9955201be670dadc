/* lapack.h — the few LAPACK/BLAS Fortran entry points gqsa calls (OpenBLAS exports these symbols;
 * LAPACKE is not assumed). Column-major, arguments by pointer, as Fortran expects. A symmetric
 * row-major matrix is its own column-major transpose, so callers pass row-major symmetric data
 * with uplo "L"/"U" swapped in mind.
 * Must not: grow into a general LAPACK binding; add a prototype only when a module needs it.
 */
#ifndef GQ_LAPACK_H
#define GQ_LAPACK_H

/* Cholesky A = U^T U (uplo "U") or L L^T ("L"); info > 0: not positive definite. */
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
/* Inverse from the Cholesky factor (only the uplo triangle is written). */
extern void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);
/* Solve A X = B with the Cholesky factor. */
extern void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda, double *b,
                    const int *ldb, int *info);

#endif
