/*
 * The ops as data: each op of fastsoftmax.h's fsm_op is one row of fsm_ops below, naming the passes
 * the driver (rows_dtype.h) runs for it. The driver branches on these pass kinds, never on which op
 * it is computing; every layout (short rows in batches, long rows in blocks, columns) reads the same
 * row. Per row x of length n with maximum m:
 *   max pass     m (and the row minimum, which the float32 store-exps kernel reads: see template.h)
 *   pass 1       exp(x - m) summed per block, and stored in y (STORE_EXPS) or with the elements
 *                equal to m left out of the sum and counted (EXCLMAX)
 *   statistics   the blocks merged in order into M and one factor per row: 1/S (RECIP, needs
 *                STORE_EXPS: S includes the max elements) or log1p(S') (LOG1P, needs EXCLMAX)
 *   last pass    y = stored exps * factor (SCALE, needs RECIP), y = (x - M) - log1p(S') (LOGSHIFT,
 *                needs LOG1P), or M + log1p(S') written once per row (ROW_VALUE, needs LOG1P)
 *   outputs      n per row, or 1 (a reduction: the output has no reduced axis; goes with ROW_VALUE)
 *
 * Adding an op. An op made of the passes below is one line of FSM_OP_LIST: it makes the op's
 * enumerator of fsm_op (FSM_<NAME>), its name (fsm_op_names, which the Python plan reads) and its row
 * of fsm_ops; the Python layer then calls it. An op that needs a pass none of these
 * kinds does (softmax backward, y (g - sum(g y)), needs no max pass, a sum of products, the plain sum
 * as its statistic and an elementwise last pass) also adds: the kind's enumerator here, its kernels
 * in fsm_kernels (fastsoftmax.h) and template.h (one definition each, compiled for every ISA, a line
 * in the kernel table at its end; rerun scripts/kernel_index.py), and the kind's case where
 * rows_dtype.h reads that field (pass1_rows for the max pass and pass 1, merge for the statistics,
 * block_pass2 / rows_short / cols for the last pass). A second input, as softmax backward has, also
 * widens fsm_compute (rows.c) and the driver's functions, which carry one input pointer today.
 */
#ifndef FSM_OPS_H
#define FSM_OPS_H

typedef enum { FSM_MAX_ONLY, FSM_MAX_AND_MIN } fsm_max_pass;
typedef enum { FSM_PASS1_STORE_EXPS, FSM_PASS1_EXCLMAX } fsm_pass1;
typedef enum { FSM_STAT_RECIP, FSM_STAT_LOG1P } fsm_stat;
typedef enum { FSM_LAST_SCALE, FSM_LAST_LOGSHIFT, FSM_LAST_ROW_VALUE } fsm_last_pass;

typedef struct {
    fsm_max_pass max_pass;
    fsm_pass1 pass1;
    fsm_stat stat;
    fsm_last_pass last;
    int one_output_per_row;  /* 1: a reduction, one output per row (the row's statistic); 0: n, one per element */
} fsm_op_passes;

/* FSM_OP(NAME, name, max pass, pass 1, statistics, last pass, one output per row) */
#define FSM_OP_LIST                                                                                              \
    FSM_OP(SOFTMAX, softmax, FSM_MAX_AND_MIN, FSM_PASS1_STORE_EXPS, FSM_STAT_RECIP, FSM_LAST_SCALE, 0)          \
    FSM_OP(LOG_SOFTMAX, log_softmax, FSM_MAX_AND_MIN, FSM_PASS1_EXCLMAX, FSM_STAT_LOG1P, FSM_LAST_LOGSHIFT, 0)  \
    FSM_OP(LOGSUMEXP, logsumexp, FSM_MAX_AND_MIN, FSM_PASS1_EXCLMAX, FSM_STAT_LOG1P, FSM_LAST_ROW_VALUE, 1)

#define FSM_OP(NAME, name, mp, p1, st, lp, one) FSM_##NAME,
typedef enum { FSM_OP_LIST FSM_N_OPS } fsm_op;
#undef FSM_OP

/* The table and the names, where FSM_OPS_TABLE is defined before the include (rows.c, the Python plan). */
#ifdef FSM_OPS_TABLE
#define FSM_OP(NAME, name, mp, p1, st, lp, one) \
    [FSM_##NAME] = {.max_pass = mp, .pass1 = p1, .stat = st, .last = lp, .one_output_per_row = one},
static const fsm_op_passes fsm_ops[] = {FSM_OP_LIST};
#undef FSM_OP
#define FSM_OP(NAME, name, mp, p1, st, lp, one) [FSM_##NAME] = #name,
static const char *const fsm_op_names[] = {FSM_OP_LIST};
#undef FSM_OP
#endif

#endif
