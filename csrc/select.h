/*
 * Selection over rows of logits (select.c): the k largest softmax probabilities of a row, and one
 * draw per row from a filtered (top-k, top-p, min-p) softmax distribution, each in O(n) per row.
 * Rows are `rows` rows of n contiguous float32 (FSM_F32) or float64 (FSM_F64) elements. Both calls run
 * on up to `threads` threads (<= 0: the default), by threads.c's policy; results never depend on it.
 */
#ifndef FSM_SELECT_H
#define FSM_SELECT_H

#include <stdint.h>
#include "fastsoftmax.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Each row's max and log(sum exp(x - max)) as l_hi + l_lo (rows.c, from the softmax op's passes).
   Returns 0, -1 if scratch memory ran out, -2 for a dtype other than float32/float64. */
int fsm_row_stats(fsm_dtype dtype, const void *x, int64_t rows, int64_t n, double *m, double *l_hi, double *l_lo);

/* What a selection call found wrong with a row (its index goes to *bad_row). */
enum { FSM_SEL_OK = 0, FSM_SEL_NOMEM = -1, FSM_SEL_NAN = -2, FSM_SEL_ALL_NEG_INF = -3, FSM_SEL_POS_INF = -4 };

/*
 * Per row of z: the k largest elements (1 <= k <= n), ties by the lower index, in descending order:
 * their indices to idx (rows * k) and their softmax probabilities exp(z_i - logsumexp(z)) to probs
 * (rows * k, z's dtype), each within 1 ulp. The full softmax is never formed. Returns FSM_SEL_OK, or
 * an error with *bad_row set for a row holding NaN or +inf or only -inf; FSM_SEL_NOMEM.
 */
int fsm_topk_softmax(fsm_dtype dtype, const void *z, int64_t rows, int64_t n, int64_t k, void *probs,
                     int64_t *idx, int64_t *bad_row, int threads);

/*
 * Per row of probabilities p (a softmax, so no NaN and at least one p > 0): one index drawn with
 * probability p_i / (sum of the kept p) over the kept elements, u[r] in [0, 1) being the row's
 * uniform variate. Kept: the elements that pass, in this order, top_k (0: off; the elements >= the
 * k-th largest, ties kept), top_p (>= 1: off; the smallest set of the largest kept p whose mass
 * reaches top_p of the kept mass, ties at the cut kept) and min_p (<= 0: off; p >= min_p * max p).
 * Returns FSM_SEL_OK or FSM_SEL_NOMEM.
 */
int fsm_sample(fsm_dtype dtype, const void *p, int64_t rows, int64_t n, int64_t top_k, double top_p, double min_p,
               const double *u, int64_t *out, int threads);

#ifdef __cplusplus
}
#endif
#endif
