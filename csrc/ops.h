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
 * Adding an op. An op made of the passes below is one enumerator in fsm_op (fastsoftmax.h, before
 * FSM_N_OPS) and one row here; the Python layer then calls it. An op that needs a pass none of these
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

#include "fastsoftmax.h"

typedef enum { FSM_MAX_ONLY, FSM_MAX_AND_MIN } fsm_max_pass;
typedef enum { FSM_PASS1_STORE_EXPS, FSM_PASS1_EXCLMAX } fsm_pass1;
typedef enum { FSM_STAT_RECIP, FSM_STAT_LOG1P } fsm_stat;
typedef enum { FSM_LAST_SCALE, FSM_LAST_LOGSHIFT, FSM_LAST_ROW_VALUE } fsm_last_pass;

typedef struct {
    fsm_max_pass max_pass;
    fsm_pass1 pass1;
    fsm_stat stat;
    fsm_last_pass last;
    int one_output_per_row;  /* 1: one output per row (the row's statistic); 0: n, one per element */
} fsm_op_passes;

static const fsm_op_passes fsm_ops[] = {
    [FSM_SOFTMAX] = {.max_pass = FSM_MAX_AND_MIN, .pass1 = FSM_PASS1_STORE_EXPS, .stat = FSM_STAT_RECIP,
                     .last = FSM_LAST_SCALE, .one_output_per_row = 0},
    [FSM_LOG_SOFTMAX] = {.max_pass = FSM_MAX_ONLY, .pass1 = FSM_PASS1_EXCLMAX, .stat = FSM_STAT_LOG1P,
                         .last = FSM_LAST_LOGSHIFT, .one_output_per_row = 0},
    [FSM_LOGSUMEXP] = {.max_pass = FSM_MAX_ONLY, .pass1 = FSM_PASS1_EXCLMAX, .stat = FSM_STAT_LOG1P,
                       .last = FSM_LAST_ROW_VALUE, .one_output_per_row = 1},
};

/* An op appended to fsm_op without its row here fails to compile (the array would be one short). */
typedef char fsm_ops_has_every_op[sizeof fsm_ops / sizeof fsm_ops[0] == FSM_N_OPS ? 1 : -1];

#endif
