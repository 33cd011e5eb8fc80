/*
 * The driver for one dtype, included twice by rows.c (T = float / double, SFX = f32 / f64,
 * W = the wide type for per-row scalars: double for float32, fsm_wide for float64).
 *
 * A row is cut into fixed blocks of FSM_BLOCK elements. Pass 1, per block (one read, the block
 * then stays in cache): m_b = max, and e = exp(x - m_b) summed (and stored, for softmax). The block
 * statistics are merged with the online rule
 *     (m1, s1) (+) (m2, s2) = (M, s1 e^(m1-M) + s2 e^(m2-M)),   M = max(m1, m2),
 * always in block order. Pass 2, per block: softmax scales its stored exps by e^(m_b-M)/S,
 * log_softmax writes (x - M) - log(S). logsumexp needs pass 1 only. One thread or many run the same
 * code on the same blocks, so the result is the same bit for bit for any thread count.
 * For the log ops the k elements equal to M are left out of the sums and counted instead, so
 * S' = S - 1 is formed without cancellation and log1p(S') keeps full relative accuracy.
 * Which passes run comes from the op's row of ops.h (p below): the code branches on pass kinds only.
 */
#define FN2(a, b) a##_##b
#define FN(a, b) FN2(a, b)
#define KF(name) FN(name, SFX)

/* e^(m_b - M) in W precision; m_b - M carried exactly with TwoSum. */
static W KF(block_factor)(T m_b, T M)
{
    if (m_b == M) return (W)1;
    if (m_b == (T)-INFINITY) return (W)0;
    double d = (double)m_b - (double)M;
    double z = d - (double)m_b;
    double err = ((double)m_b - (d - z)) + (-(double)M - z);
    return FSM_EXPW((W)d) * ((W)1 + (W)err);
}

/* The unit of a block's stored exps, exp(x - m_b) * unit (a double-double for float64). */
static W KF(block_unit)(const fsm_acc *a)
{
    return (W)a->unit + (W)a->unit_lo;
}

/* The block's sum of exp(x - m_b). */
static W KF(block_sum)(const fsm_acc *a)
{
    return ((W)a->sum + (W)a->sum_lo) / KF(block_unit)(a);
}

/* The max pass and pass 1 over `rows` rows of n contiguous elements: m, mn (when the op takes the
   minima), and each row's acc; the store-exps pass writes its exps to y. ahead: the kernels' prefetch
   distance (0: none; else x[i + ahead] must exist for every element i of the rows). */
static void KF(pass1_rows)(const fsm_kernels *k, const fsm_op_passes *p, const T *x, T *y, int64_t rows, int64_t n,
                           T *m, T *mn, fsm_acc *acc, int64_t ahead)
{
    k->KF(max_rows)(x, rows, n, m, p->max_pass == FSM_MAX_AND_MIN ? mn : NULL);
    if (p->pass1 == FSM_PASS1_STORE_EXPS)
        k->KF(expsum_store_rows)(x, y, rows, n, m, mn, acc, ahead);
    else
        k->KF(expsum_exclmax_rows)(x, rows, n, m, p->max_pass == FSM_MAX_AND_MIN ? mn : NULL, acc, ahead);
}

/* Pass 1 on one block. Non-finite block maxima are resolved at the merge. prefetch: the len elements
   after the block exist and are what this thread reads next (the next block of the row, or the next
   row): its exp pass prefetches them (out of cache, rows_dtype.h's compute()). */
static void KF(block_pass1)(const fsm_kernels *k, const fsm_op_passes *p, const T *x, T *y, int64_t len,
                            fsm_block *b, int prefetch)
{
    T m, mn;
    KF(pass1_rows)(k, p, x, y, 1, len, &m, &mn, &b->acc, prefetch ? len : 0);
    b->m = (double)m;
}

/* The row's statistics from its blocks: M, and the factor 1/S (RECIP) or log1p(S') (LOG1P). */
static void KF(merge)(const fsm_op_passes *p, const fsm_block *bs, int64_t nb, fsm_row *r)
{
    T M = (T)-INFINITY;
    for (int64_t b = 0; b < nb; b++) {
        if (isnan(bs[b].m)) { M = (T)NAN; break; }
        if ((T)bs[b].m > M) M = (T)bs[b].m;
    }
    r->m = (double)M;
    r->hi = r->lo = 0.0;
    if (p->stat == FSM_STAT_RECIP) {
        if (!isfinite(M)) { r->hi = NAN; return; }  /* scipy: NaN, +inf or all -inf -> NaN */
        W s = 0;
        for (int64_t b = 0; b < nb; b++)
            s += KF(block_factor)((T)bs[b].m, M) * KF(block_sum)(&bs[b].acc);
        W c = (W)1 / s;
        r->hi = (double)c;
        r->lo = (double)(c - (W)r->hi);
        r->wide_inv = c;
        return;
    }
    if (isnan(M) || M == (T)-INFINITY) { r->hi = NAN; return; }  /* NaN row / all -inf */
    if (M == (T)INFINITY) return;                                 /* scipy shifts by 0 */
    W rest = 0, k = 0;
    for (int64_t b = 0; b < nb; b++) {
        W f = KF(block_factor)((T)bs[b].m, M);
        W s = KF(block_sum)(&bs[b].acc);
        if ((T)bs[b].m == M) {
            rest += s;
            k += (W)bs[b].acc.n_max;
        } else {
            rest += f * (s + (W)bs[b].acc.n_max);
        }
    }
    W l = FSM_LOG1PW(rest + (k - 1));
    r->hi = (double)l;
    r->lo = (double)(l - (W)r->hi);
}

/* Pass 2 on one block (a ROW_VALUE op has none: its output is written after the merge). */
static void KF(block_pass2)(const fsm_kernels *k, const fsm_op_passes *p, const T *x, T *y, int64_t len,
                            const fsm_block *b, const fsm_row *r)
{
    if (p->last == FSM_LAST_SCALE) {
        if (isnan(r->hi)) {
            for (int64_t i = 0; i < len; i++) y[i] = (T)NAN;
        } else if ((T)b->m == (T)-INFINITY) {
            for (int64_t i = 0; i < len; i++) y[i] = (T)0;  /* an all -inf block */
        } else {
            W c = KF(block_factor)((T)b->m, (T)r->m) * r->wide_inv / KF(block_unit)(&b->acc);
            double hi = (double)c, lo = (double)(c - (W)hi);
            k->KF(scale_rows)(y, 1, len, &hi, &lo, &b->acc);
        }
    } else if (p->last == FSM_LAST_LOGSHIFT) {
        T m = (T)r->m;
        k->KF(logshift_rows)(x, y, 1, len, &m, &r->hi, &r->lo);
    }
}

static T KF(lse_value)(T m, double l_hi, double l_lo)
{
    if (!isfinite(m)) return m;
    double s = (double)m + l_hi;
    double bp = s - (double)m;
    double err = ((double)m - (s - bp)) + (l_hi - bp);
    return (T)(s + (err + l_lo));
}

/* What the last pass of a one-block row applies: SCALE 1/S in the stored exps' units; else log1p(S'). */
static void KF(row_factor)(const fsm_op_passes *p, const fsm_row *st, const fsm_acc *a, double *hi, double *lo)
{
    if (p->last == FSM_LAST_SCALE && !isnan(st->hi)) {
        W c = st->wide_inv / KF(block_unit)(a);
        *hi = (double)c;
        *lo = (double)(c - (W)*hi);
    } else {
        *hi = st->hi;
        *lo = st->lo;
    }
}

/*
 * logsumexp of short rows whose result is far from 0: through softmax's exp pass, not the log ops'.
 * The log ops' exp pass keeps every exp unrounded (a residual per element, 29 vector operations per
 * 16 elements against 18, 1.6x the time) because log1p(S') must keep full relative accuracy when the
 * result is near 0 (log-probabilities in, 1e-20 out). Away from 0 it need not. Softmax's pass gives
 * S = sum exp(x - m) with the max elements unrounded and every other exp within 0.9 ulp (float32;
 * 0.68 for float64) of its value, so |S~ - S| <= 0.9 u S' with u = 2^-23 / 2^-52 (the dtype's spacing
 * at 1), S' = S - (count of max) <= S, plus the sum's own 2^-30 (float32) / 2^-80 and the exps it clamps
 * to 0 (below e^-120 / e^-707 of the max's, n of them at most); log S~ is then within
 * 0.9 u + 2^-30 (absolute) of log S, and the result m + log S within 0.9 u / 2^e of its ulp when
 * |m + log S| >= 2^e. Rows with m >= FSM_LSE_FAR or m + log n <= -FSM_LSE_FAR (so that |result| >=
 * FSM_LSE_FAR = 2^3, from the max alone: m <= result <= m + log n) take this pass: 0.9/8 = 0.11 ulp
 * more than the exact pass at most (float64: 0.09), below 2 ulp with the final rounding's 0.5 and
 * the log1p's.
 * The choice depends on the row alone (its max and n): a row's result never depends on its batch.
 * Rows of FSM_LANES_N + 1 to FSM_LSE_SCRATCH elements: shorter ones are the lanes of the column
 * kernels on the SIMD ISAs (and keep the log ops' pass on every ISA, so that the portable kernels
 * give the same results as there); the exps go to a stack scratch that stays in L1.
 * (256, 1000), 1 thread, Ice Lake, alternating processes: float32 154 -> 104-106 us (torch ÷ fastsoftmax
 * 1.39-1.57 -> 1.96-1.98), float64 299-302 -> 270-272 us; the accuracy table's logsumexp columns
 * move by at most 0.003 ulp (normal*3 float32 0.500 -> 0.503, float64 0.499 -> 0.501).
 */
#define FSM_LSE_FAR 8.0
#define FSM_LSE_SCRATCH 2048
static int KF(lse_far)(T m, double logn)
{
    return isfinite(m) && ((double)m >= FSM_LSE_FAR || (double)m + logn <= -FSM_LSE_FAR);
}

static void KF(lse_rows_short)(const fsm_kernels *k, const fsm_op_passes *p, const T *x, T *y, int64_t rows,
                               int64_t n, int64_t ahead)
{
    T m[FSM_BATCH], mn[FSM_BATCH];
    fsm_acc acc[FSM_BATCH];
    _Alignas(64) T e[FSM_LSE_SCRATCH];
    const double logn = log((double)n);
    const int64_t chunk = FSM_LSE_SCRATCH / n;
    k->KF(max_rows)(x, rows, n, m, mn);
    for (int64_t r0 = 0, r1; r0 < rows; r0 = r1) {
        const int far = KF(lse_far)(m[r0], logn);
        /* a run of rows of one kind (at most `chunk` of the far kind) */
        for (r1 = r0 + 1; r1 < rows && (!far || r1 - r0 < chunk) && KF(lse_far)(m[r1], logn) == far; r1++) {}
        if (far) k->KF(expsum_store_rows)(x + r0 * n, e, r1 - r0, n, m + r0, mn + r0, acc + r0, ahead);
        else k->KF(expsum_exclmax_rows)(x + r0 * n, r1 - r0, n, m + r0, mn + r0, acc + r0, ahead);
        for (int64_t r = r0; r < r1; r++) {
            fsm_row st;
            if (far) {
                W l = FSM_LOG1PW(KF(block_sum)(&acc[r]) - (W)1);
                st.hi = (double)l;
                st.lo = (double)(l - (W)st.hi);
            } else {
                fsm_block b = {(double)m[r], acc[r]};
                KF(merge)(p, &b, 1, &st);
            }
            y[r] = KF(lse_value)(m[r], st.hi, st.lo);
        }
    }
}

/*
 * Rows of at most FSM_BLOCK elements (one block each), on the calling thread, in batches of up to
 * FSM_BATCH rows so that each kernel call covers many short rows. Each row is computed exactly as
 * a one-block row_blocks() would, except float32 softmax: its fused kernel (softmax_rows_f32) forms
 * 1/S in one division where the merge takes three; and logsumexp of rows of FSM_LANES_N + 1 to
 * FSM_LSE_SCRATCH elements, whose rows far from 0 take softmax's exp pass (lse_rows_short).
 * after >= 0: the fused kernel prefetches as it goes, into these rows and the `after` rows of x that
 * follow them, the other passes the next batch; < 0: no prefetch.
 */
static void KF(rows_short)(const fsm_kernels *k, const fsm_op_passes *p, const T *x, T *y, int64_t rows, int64_t n,
                           int64_t after)
{
    T m[FSM_BATCH], mn[FSM_BATCH];
    fsm_acc acc[FSM_BATCH];
    double hi[FSM_BATCH], lo[FSM_BATCH];
#if FSM_COL_FUSED
    if (p->pass1 == FSM_PASS1_STORE_EXPS && p->last == FSM_LAST_SCALE ) {
        k->softmax_rows_f32(x, y, rows, n, after);
        return;
    }
#endif
    if (p->last == FSM_LAST_ROW_VALUE && n > FSM_LANES_N && n <= FSM_LSE_SCRATCH) {
        KF(lse_rows_short)(k, p, x, y, rows, n, after >= rows ? rows * n : 0);
        return;
    }
    /* out of cache, the other passes' exp pass prefetches the next batch (when a whole one follows) */
    KF(pass1_rows)(k, p, x, y, rows, n, m, mn, acc, after >= rows ? rows * n : 0);
    for (int64_t r = 0; r < rows; r++) {
        fsm_block b = {(double)m[r], acc[r]};
        fsm_row st;
        KF(merge)(p, &b, 1, &st);
        KF(row_factor)(p, &st, &acc[r], &hi[r], &lo[r]);
        if (p->last == FSM_LAST_ROW_VALUE) y[r] = KF(lse_value)(m[r], st.hi, st.lo);
    }
    if (p->last == FSM_LAST_SCALE) {
        k->KF(scale_rows)(y, rows, n, hi, lo, acc);
        for (int64_t r = 0; r < rows; r++)  /* pass 1 skipped these rows: y held no exps, only memory */
            if (isnan(hi[r]))
                for (int64_t i = 0; i < n; i++) y[r * n + i] = (T)NAN;
    } else if (p->last == FSM_LAST_LOGSHIFT) {
        k->KF(logshift_rows)(x, y, rows, n, m, hi, lo);
    }
}

/*
 * Each row's max M and L = log(sum exp(x - M)) as l_hi + l_lo, for callers that need more than a
 * rounded logsumexp (select.c). The softmax op's passes, with its exps stored in a scratch that stays
 * in cache (one batch of short rows, one block of a long row): its exp-and-sum pass is the cheaper
 * one, and its sum is exact to ~2^-30 (a compensated sum from a start above every term), which is
 * what probabilities exp(x - M - L) need (the log ops' careful log1p matters only for outputs near
 * 0). L = log1p(S - 1) with S = 1 / (1/S) in W. One thread; short rows in rows_short's batches,
 * long rows in row_blocks' fixed blocks. Non-finite maxima come back in m (L is then undefined).
 */
static int KF(row_stats)(const fsm_kernels *k, const T *x, int64_t rows, int64_t n, double *m_out, double *l_hi,
                         double *l_lo)
{
    const fsm_op_passes *p = &fsm_ops[FSM_SOFTMAX];
    const int64_t nb = n <= FSM_BLOCK ? 1 : (n + FSM_BLOCK - 1) / FSM_BLOCK;
    const int64_t scratch = n <= FSM_BLOCK ? (FSM_BATCH_ELEMS > n ? FSM_BATCH_ELEMS : n) : FSM_BLOCK;
    T *y = (T *)malloc((size_t)scratch * sizeof(T));
    fsm_block *bs = (fsm_block *)malloc((size_t)nb * sizeof(fsm_block));
    if (!y || !bs) {
        free(y);
        free(bs);
        return -1;
    }
    int64_t batch = n <= FSM_BLOCK ? FSM_BATCH_ELEMS / n : 1;
    batch = batch < 1 ? 1 : batch > FSM_BATCH ? FSM_BATCH : batch;
    for (int64_t r0 = 0; r0 < rows; r0 += batch) {
        int64_t nr = rows - r0 < batch ? rows - r0 : batch;
        T m[FSM_BATCH], mn[FSM_BATCH];
        fsm_acc acc[FSM_BATCH];
        if (n <= FSM_BLOCK) KF(pass1_rows)(k, p, x + r0 * n, y, nr, n, m, mn, acc, 0);
        for (int64_t r = 0; r < nr; r++) {
            fsm_row st;
            if (n <= FSM_BLOCK) {
                bs[0].m = (double)m[r];
                bs[0].acc = acc[r];
            } else {
                for (int64_t b = 0; b < nb; b++) {
                    int64_t len = n - b * FSM_BLOCK < FSM_BLOCK ? n - b * FSM_BLOCK : FSM_BLOCK;
                    KF(block_pass1)(k, p, x + (r0 + r) * n + b * FSM_BLOCK, y, len, &bs[b], 0);
                }
            }
            KF(merge)(p, bs, nb, &st);
            m_out[r0 + r] = st.m;
            if (isnan(st.hi)) {
                l_hi[r0 + r] = l_lo[r0 + r] = NAN;
                continue;
            }
            W l = FSM_LOG1PW((W)1 / st.wide_inv - (W)1);
            l_hi[r0 + r] = (double)l;
            l_lo[r0 + r] = (double)(l - (W)l_hi[r0 + r]);
        }
    }
    free(y);
    free(bs);
    return 0;
}

/* A row of any length on the calling thread: pass 1 block by block, the merge, pass 2. prefetch
   (FSM_PF_*): whether each block's pass 1 prefetches the row's next block, and the last block the
   next row (x + n, which then exists). */
static int KF(row_blocks)(const fsm_kernels *k, const fsm_op_passes *p, const T *x, T *y, int64_t n, int prefetch)
{
    const int64_t nb = (n + FSM_BLOCK - 1) / FSM_BLOCK;
    fsm_block *bs = (fsm_block *)calloc((size_t)nb, sizeof(fsm_block));
    fsm_row r;
    if (!bs) return -1;
    for (int64_t b = 0; b < nb; b++)
        KF(block_pass1)(k, p, x + b * FSM_BLOCK, y + b * FSM_BLOCK, FSM_BLOCK_LEN(n, b), &bs[b],
                        b + 1 < nb ? prefetch & FSM_PF_BLOCKS : prefetch & FSM_PF_NEXT_ROW);
    KF(merge)(p, bs, nb, &r);
    if (p->last != FSM_LAST_ROW_VALUE)
        for (int64_t b = 0; b < nb; b++)
            KF(block_pass2)(k, p, x + b * FSM_BLOCK, y + b * FSM_BLOCK, FSM_BLOCK_LEN(n, b), &bs[b], &r);
    else
        *y = KF(lse_value)((T)r.m, r.hi, r.lo);
    free(bs);
    return 0;
}

/*
 * Columns [j0, j0 + cols) of one outer block: x's rows are `inner` elements apart. The store-exps
 * pass keeps its exps in x's layout at y (which may be x itself); the last pass writes the result to
 * out, whose rows are ld_out apart (ROW_VALUE: one value per column at out).
 */
static void KF(cols_passes)(const fsm_kernels *k, const fsm_op_passes *p, const T *x, T *y, int64_t n, int64_t inner,
                            int64_t cols, T *out, int64_t ld_out)
{
    const fsm_kernels *tail = fsm_kernels_portable;
    T m[FSM_COLS];
    fsm_acc acc[FSM_COLS];
    double hi[FSM_COLS], lo[FSM_COLS];
    int64_t vec = cols - cols % k->KF(lanes);
    int64_t rest = cols - vec;
    k->KF(col_max)(x, n, inner, vec, m);
    if (rest) tail->KF(col_max)(x + vec, n, inner, rest, m + vec);
    if (p->pass1 == FSM_PASS1_STORE_EXPS) {
        k->KF(col_expsum_store)(x, y, n, inner, vec, m, acc);
        if (rest) tail->KF(col_expsum_store)(x + vec, y + vec, n, inner, rest, m + vec, acc + vec);
    } else {
        k->KF(col_expsum_exclmax)(x, n, inner, vec, m, acc);
        if (rest) tail->KF(col_expsum_exclmax)(x + vec, n, inner, rest, m + vec, acc + vec);
    }
    for (int64_t j = 0; j < cols; j++) {
        if (p->last == FSM_LAST_SCALE && isfinite(m[j])) {  /* merge() and row_factor() of one block, inlined */
            W c = (W)1 / ((W)acc[j].sum + (W)acc[j].sum_lo);
            hi[j] = (double)c;
            lo[j] = (double)(c - (W)hi[j]);
            continue;
        }
        fsm_block b = {(double)m[j], acc[j]};
        fsm_row r;
        KF(merge)(p, &b, 1, &r);
        hi[j] = r.hi;
        lo[j] = r.lo;
    }
    if (p->last == FSM_LAST_SCALE) {
        k->KF(col_scale)(y, out, n, inner, ld_out, vec, hi, lo, acc);
        if (rest) tail->KF(col_scale)(y + vec, out + vec, n, inner, ld_out, rest, hi + vec, lo + vec, acc + vec);
    } else if (p->last == FSM_LAST_LOGSHIFT) {
        k->KF(col_logshift)(x, out, n, inner, ld_out, vec, m, hi, lo);
        if (rest) tail->KF(col_logshift)(x + vec, out + vec, n, inner, ld_out, rest, m + vec, hi + vec, lo + vec);
    } else {
        for (int64_t j = 0; j < cols; j++) out[j] = KF(lse_value)(m[j], hi[j], lo[j]);
    }
}

static void KF(cols)(const fsm_kernels *k, const fsm_op_passes *p, const T *x, T *y, int64_t n, int64_t inner,
                     int64_t cols, T *out, int64_t ld_out)
{
#if FSM_COL_FUSED
    const int64_t lanes = k->KF(lanes), vec = cols - cols % lanes;
    if (p->pass1 == FSM_PASS1_STORE_EXPS && p->last == FSM_LAST_SCALE && vec > 0) {
        /* softmax: the one-sweep kernel; vectors with a non-finite max and the tail take the passes */
        unsigned char skipped[FSM_COLS];
        k->col_softmax_f32(x, y, n, inner, vec, out, ld_out, skipped);
        for (int64_t j = 0; j < vec; j += lanes)
            if (skipped[j / lanes]) KF(cols_passes)(k, p, x + j, y + j, n, inner, lanes, out + j, ld_out);
        if (cols > vec) KF(cols_passes)(k, p, x + vec, y + vec, n, inner, cols - vec, out + vec, ld_out);
        return;
    }
#endif
    KF(cols_passes)(k, p, x, y, n, inner, cols, out, ld_out);
}

static int KF(lanes_wanted)(const fsm_kernels *k, const fsm_op_passes *p, int64_t n)
{
    return k->KF(lanes) > 1 && n <= (p->last == FSM_LAST_ROW_VALUE ? FSM_LANES_N : FSM_LANES_N_ELEMENTWISE);
}

/*
 * Short rows as the lanes of a column tile: each group of one vector's worth of rows is transposed
 * into a tile (row i of the tile holds element i of every row of the group), computed by the column
 * path (KF(cols): the fused float32 softmax, or the general passes) and transposed back (4 shuffles
 * a vector each way). The row kernels pay a fixed cost per row (the horizontal max, min and sum,
 * the per-row constants, 1/S, partial vectors), which dominates rows of a few vectors; in the tile
 * all of it is vertical, one vector for a group of rows. Measured on Zen 4 (one thread, in L2,
 * ns/element, row path -> tile): float32 softmax n = 8: 3.6-4.6 -> 1.6, n = 16: 2.5 -> 0.9-1.1,
 * n = 32: 1.4 -> 0.7-0.9, n = 64: 0.68-0.73 -> 0.68-0.69 (the crossover, also for float64 and the
 * log ops, a little later for logsumexp, which needs no transpose back). Each lane is computed alone,
 * so a row's result depends only on the row and n, never on its neighbours, its position or the
 * thread count: it is the column path's result for that row (tests/test_short_rows.py), within the
 * same error bound as the row kernels'.
 */
static void KF(rows_lanes)(const fsm_kernels *k, const fsm_op_passes *p, const T *x, T *y, int64_t rows, int64_t n)
{
    const int64_t L = k->KF(lanes);
    T tile[FSM_LANES_N * 64 / sizeof(T)];  /* n rows of at most 64 bytes */
    T val[64 / sizeof(T)];
    for (int64_t r0 = 0; r0 < rows; r0 += L) {
        const int64_t nr = rows - r0 < L ? rows - r0 : L;
        /* the next group, which the transposed loads would otherwise read in an order the hardware
           prefetchers do not follow (one line of each of L rows at a time) */
        const int64_t ahead = rows - r0 - nr < L ? rows - r0 - nr : L;
        for (int64_t e = 0; e < ahead * n; e += 64 / (int64_t)sizeof(T)) FSM_PREFETCH(x + (r0 + nr) * n + e, 0);
        k->KF(tile_in)(x + r0 * n, nr, n, tile);
        if (p->last == FSM_LAST_ROW_VALUE) {
            KF(cols)(k, p, tile, tile, n, L, L, val, 1);
            memcpy(y + r0, val, (size_t)nr * sizeof(T));
        } else {
            KF(cols)(k, p, tile, tile, n, L, L, tile, L);
            k->KF(tile_out)(tile, nr, n, y + r0 * n);
        }
    }
}

/* Rows of at most FSM_BLOCK elements: as tile lanes where that is faster (FSM_LANES_N*), else rows_short. */
static void KF(rows_short_any)(const fsm_kernels *k, const fsm_op_passes *p, const T *x, T *y, int64_t rows,
                               int64_t n, int64_t after)
{
    if (KF(lanes_wanted)(k, p, n)) KF(rows_lanes)(k, p, x, y, rows, n);
    else KF(rows_short)(k, p, x, y, rows, n, after);
}

/* Prefetch n rows of `cols` elements, rows `ld` apart (l2: into L2 only, not L1). */
static void KF(prefetch_cols)(const T *x, int64_t n, int64_t ld, int64_t cols, int write, int l2)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j += 64 / (int64_t)sizeof(T)) {
            if (l2) {
                if (write) FSM_PREFETCH_L2(x + i * ld + j, 1);
                else FSM_PREFETCH_L2(x + i * ld + j, 0);
            } else if (write) {
                FSM_PREFETCH(x + i * ld + j, 1);
            } else {
                FSM_PREFETCH(x + i * ld + j, 0);
            }
        }
}

/*
 * Columns through a scratch block: with a power-of-two distance between rows (NCHW: 256 KiB) every
 * row of a column block falls into the same cache sets, so x and y evict each other between the
 * passes. Copying the block into a per-thread scratch whose row pitch is padded by 64 bytes keeps
 * the passes in L1/L2. The last pass writes straight to y: the data is read once and written once.
 */
static void KF(cols_scratch)(const fsm_kernels *k, const fsm_op_passes *p, const T *x, T *y, int64_t n,
                             int64_t inner, int64_t cols, T *scratch, int64_t pitch, const T *nx, T *ny, int64_t ncols)
{
    for (int64_t i = 0; i < n; i++) memcpy(scratch + i * pitch, x + i * inner, (size_t)cols * sizeof(T));
    /* The next block (nx, ny: its x and y, ncols columns; NULL: none) is prefetched into L2 a slice
       at a time, after each slice of this block is computed: the requests spread over the compute
       instead of stalling the task's start, and the block's 2 x 63 KB (n = 21) does not pass through
       L1, which this block's scratch fills. Columns are independent: the slices give the same bits.
       (8, 21, 256, 256) axis=1, 1 thread, Zen 4: 12.1-12.4 ms with the whole next block prefetched
       into L1 at the task's start, 12.0 with no prefetch, 10.2-10.6 like this.) */
    const int64_t slice = FSM_COLS_PREFETCH_SLICE;
    for (int64_t a = 0; a < cols; a += slice) {
        int64_t w = cols - a < slice ? cols - a : slice;
        KF(cols)(k, p, scratch + a, scratch + a, n, pitch, w, y + a, inner);
        if (nx && a < ncols) {
            int64_t pw = ncols - a < slice ? ncols - a : slice;
            KF(prefetch_cols)(nx + a, n, inner, pw, 0, 1);
            if (ny) KF(prefetch_cols)(ny + a, n, inner, pw, 1, 1);
        }
    }
}

/*
 * One call as tasks for the runner (threads.c). Task boundaries depend on the shape only, never on
 * the thread count: batches of short rows, whole long rows (each on one thread) when there are at
 * least as many rows as threads, else the blocks of the long rows in two phases (pass 1 of every
 * block; the merge of each row; pass 2 of every block), or blocks of columns. A long row gives the
 * same bits as a whole-row task or as blocks: the same blocks, merged in the same order.
 */
typedef struct {
    const fsm_kernels *k;
    const fsm_op_passes *p;
    const T *x;
    T *y;
    int64_t n, inner, out_n;  /* out_n: outputs per row */
    int64_t batch;            /* short rows: rows per task */
    int64_t outer, nb;        /* long rows in blocks: nb blocks a row ... */
    fsm_block *bs;            /* ... their pass-1 statistics, row after row */
    fsm_row *rs;              /* ... and each row's merged statistics */
    int64_t width, chunks, pad;
    int use_scratch;          /* columns: each thread copies its blocks into a padded scratch */
    int prefetch;             /* long rows: x and y exceed the cache, pass 1 prefetches the next block;
                                 short rows: the fused float32 softmax prefetches the next group */
    int failed;
} KF(call);

static void KF(task_short)(void *ctx, int phase, int64_t b, void **local)
{
    KF(call) *c = (KF(call) *)ctx;
    int64_t r0 = b * c->batch, rows = c->outer - r0 < c->batch ? c->outer - r0 : c->batch;
    (void)phase; (void)local;
    KF(rows_short_any)(c->k, c->p, c->x + r0 * c->n, c->y + r0 * c->out_n, rows, c->n, c->prefetch ? c->outer - r0 - rows : -1);
}

/* row_blocks' prefetch for row r of a call (the next row is x's next n elements: inner == 1). */
static int KF(row_prefetch)(const KF(call) *c, int64_t r)
{
    if (!c->prefetch) return FSM_PF_NONE;
    return r + 1 < c->outer ? FSM_PF_BLOCKS | FSM_PF_NEXT_ROW : FSM_PF_BLOCKS;
}

static void KF(task_row)(void *ctx, int phase, int64_t r, void **local)
{
    KF(call) *c = (KF(call) *)ctx;
    (void)phase; (void)local;
    if (KF(row_blocks)(c->k, c->p, c->x + r * c->n, c->y + r * c->out_n, c->n, KF(row_prefetch)(c, r))) c->failed = 1;
}

static void KF(task_block)(void *ctx, int phase, int64_t i, void **local)
{
    KF(call) *c = (KF(call) *)ctx;
    int64_t r = i / c->nb, b = i % c->nb, len = FSM_BLOCK_LEN(c->n, b);
    const T *x = c->x + r * c->n + b * FSM_BLOCK;
    T *y = c->y + r * c->out_n + b * FSM_BLOCK;
    (void)local;
    if (phase == 0) KF(block_pass1)(c->k, c->p, x, y, len, &c->bs[i], 0);
    else KF(block_pass2)(c->k, c->p, x, y, len, &c->bs[i], &c->rs[r]);
}

static void KF(merge_rows)(void *ctx, int phase)
{
    KF(call) *c = (KF(call) *)ctx;
    (void)phase;
    for (int64_t r = 0; r < c->outer; r++) {
        KF(merge)(c->p, c->bs + r * c->nb, c->nb, &c->rs[r]);
        if (c->p->last == FSM_LAST_ROW_VALUE) c->y[r] = KF(lse_value)((T)c->rs[r].m, c->rs[r].hi, c->rs[r].lo);
    }
}

static void KF(task_cols)(void *ctx, int phase, int64_t t, void **local)
{
    KF(call) *c = (KF(call) *)ctx;
    const int64_t n = c->n, inner = c->inner, width = c->width, chunks = c->chunks;
    const int64_t out_stride = c->out_n * inner, tasks = c->outer * chunks;
    (void)phase;
    if (c->use_scratch && !*local) {  /* 64 bytes more: the scratch starts at a line (below) */
        *local = malloc((size_t)(n * (width + c->pad)) * sizeof(T) + 64);
        if (!*local) c->failed = 1;
    }
    int64_t o = t / chunks, j0 = (t % chunks) * width;
    int64_t cols = inner - j0 < width ? inner - j0 : width;
    const T *xb = c->x + o * n * inner + j0;
    T *yb = c->y + o * out_stride + j0;
    const T *nx = NULL;
    T *ny = NULL;
    int64_t c1 = 0;
    if (t + 1 < tasks) {  /* the next block's rows start to arrive while this one computes */
        int64_t o1 = (t + 1) / chunks, j1 = ((t + 1) % chunks) * width;
        c1 = inner - j1 < width ? inner - j1 : width;
        nx = c->x + o1 * n * inner + j1;
        ny = c->p->one_output_per_row ? NULL : c->y + o1 * out_stride + j1;
    }
    if (*local) {
        /* At a line, with a pitch of whole lines (fsm_col_pitch), every vector the column kernels load
           from or store to the scratch lies in one line: malloc's 16-byte alignment split each of them
           across two (bench/micro/cols.c, S_OFF=0 against 16). */
        T *scratch = (T *)(void *)fsm_align64(*local);
        KF(cols_scratch)(c->k, c->p, xb, yb, n, inner, cols, scratch, width + c->pad, nx, ny, c1);
    } else {
        if (nx) KF(prefetch_cols)(nx, n, inner, c1, 0, 0);
        if (ny) KF(prefetch_cols)(ny, n, inner, c1, 1, 0);
        KF(cols)(c->k, c->p, xb, yb, n, inner, cols, yb, inner);
    }
}

/* ---- the out-of-cache path (issue 15) ---- */

/* Whether whole long rows prefetch as they go (row_blocks): when x and y together exceed the threshold
   (fsm_prefetch_above: the detected last-level cache), so that the next block comes from memory. Each
   block's exp pass then prefetches the block after it (the row's next block, or the next row): it
   arrives while this block computes, and the next max pass reads it from cache instead of waiting
   on memory. Measured on Zen 5 (softmax float32 (4096, 32000), bench/micro/ooc_prefetch.py, ms,
   without -> with): 1 thread 51.2 -> 41.0 (np.copyto 28.0: 1.83x -> 1.47x), 2 threads 34.4 -> 31.0
   (1.23x -> 1.11x); log_softmax 69.6 -> 58.6 and 41.2 -> 37.0. In cache the prefetches would cost
   up to a few % of the exp pass, hence the threshold. part: the share of it that counts (1, or 1/8
   for short rows, below). */
static int KF(prefetch_wanted)(int64_t outer, int64_t n, int64_t out_n, double part)
{
    const int64_t above = fsm_prefetch_above();
    const double bytes = (double)outer * (double)(n + out_n) * (double)sizeof(T);
    return above > 0 && bytes > (double)above * part;
}

/* Short rows (the fused float32 softmax, softmax_rows_f32), from an eighth of the
   threshold: its exp pass prefetches the next group of rows (4 KiB at n = 128 on AVX2), which the
   next max pass would otherwise wait for. Measured on Zen 3 (AVX2, bench/micro/short.sh, old / new
   ns/element): n = 128 with 25 MB of x and y 1.44 -> 1.19 (18-21 %), with 8 MB 8-16 % faster, n = 1000
   with 65 MB 19 %; with 4 MB (n = 128 and 1000) -1.5 % to 0, with 1-2 MB 2-5 % slower in the slower of
   the VM's two states (4 % faster in the other), hence the threshold: 4 MB for a 32 MB cache. The other
   short-row passes (log ops, float64) prefetch the next batch in their exp pass from the same threshold
   (rows_short): log_softmax and logsumexp of (8192, 1000) float32 measured 5-25 % faster, rows of 128
   and 256 from 5 % slower to 25 % faster, in alternating processes on this noisy VM. */
#define FSM_SHORT_PREFETCH_PART 0.125

/* Rows (or batches of short rows) per task of the out-of-cache path, and whether a call takes it: an
   elementwise output (softmax, log_softmax) of contiguous rows larger than the last-level cache, with a
   per-thread scratch (one batch or one long row) that stays well inside the detected cache, and, for
   long rows, at least one row per thread (a row shared by threads takes the in-cache path). */
static int64_t KF(stream_batch)(int64_t n)
{
    if (n > FSM_BLOCK) return 1;
    int64_t batch = FSM_BATCH_ELEMS / n;
    return batch < 1 ? 1 : batch > FSM_BATCH ? FSM_BATCH : batch;
}

static int KF(stream_wanted)(const fsm_op_passes *p, int64_t outer, int64_t n, int threads)
{
    if (p->one_output_per_row || outer <= 0 || n <= 0) return 0;
    if (n > FSM_BLOCK && outer < threads) return 0;
    const int64_t llc = fsm_llc_bytes();
    const double out_bytes = (double)outer * (double)n * (double)sizeof(T);
    const double scratch_bytes = (double)KF(stream_batch)(n) * (double)n * (double)sizeof(T) * (double)threads;
    return llc > 0 && out_bytes > (double)llc && scratch_bytes <= (double)fsm_llc_detected() / 4;
}

/*
 * Rows whose output does not fit in the last-level cache: each task (a batch of short rows or one long
 * row) is computed exactly as the in-cache path computes it (rows_short / row_blocks, the same kernels
 * on the same blocks in the same order: the same bits), but into a per-thread scratch that stays in
 * cache, which is then copied to y with non-temporal stores. A plain store of a line that is not in
 * cache first reads it (read-for-ownership): y would cost three streams (read x, read and write y)
 * instead of two.
 */
static void KF(task_stream)(void *ctx, int phase, int64_t t, void **local)
{
    KF(call) *c = (KF(call) *)ctx;
    const int64_t n = c->n;
    int64_t r0 = t * c->batch, rows = c->outer - r0 < c->batch ? c->outer - r0 : c->batch;
    (void)phase;
    if (!*local) {  /* this thread's scratch: one task's output */
        *local = malloc((size_t)(c->batch * n) * sizeof(T));
        if (!*local) {
            c->failed = 1;
            return;
        }
    }
    T *s = (T *)*local;
    if (n <= FSM_BLOCK)
        KF(rows_short_any)(c->k, c->p, c->x + r0 * n, s, rows, n, c->prefetch ? c->outer - r0 - rows : -1);
    else if (KF(row_blocks)(c->k, c->p, c->x + r0 * n, s, n, KF(row_prefetch)(c, r0)))
        c->failed = 1;
    c->k->KF(stream)(s, c->y + r0 * n, rows * n);
}

static int KF(compute)(const fsm_kernels *k, const fsm_op_passes *p, const T *x, T *y,
                       int64_t outer, int64_t n, int64_t inner, int threads)
{
    KF(call) c;
    fsm_work w = {0};
    memset(&c, 0, sizeof c);
    c.k = k;
    c.p = p;
    c.x = x;
    c.y = y;
    c.n = n;
    c.inner = inner;
    c.outer = outer;
    c.out_n = p->one_output_per_row ? 1 : n;
    w.ctx = &c;
    w.nphases = 1;
    if (inner == 1 && n > FSM_BLOCK && outer >= threads && KF(prefetch_wanted)(outer, n, c.out_n, 1.0)) {
        fsm_prefetch_calls_add();
        c.prefetch = 1;
    }
    if (inner == 1 && n <= FSM_BLOCK && KF(prefetch_wanted)(outer, n, c.out_n, FSM_SHORT_PREFETCH_PART)) {
        fsm_prefetch_calls_add();
        c.prefetch = 1;
    }
    if (inner == 1 && KF(stream_wanted)(p, outer, n, threads)) {
        fsm_stream_calls_add();
        c.batch = KF(stream_batch)(n);
        w.task = KF(task_stream);
        w.ntasks[0] = (outer + c.batch - 1) / c.batch;
    } else if (inner == 1 && n <= FSM_BLOCK) {
        int64_t batch = FSM_BATCH_ELEMS / n;
        c.batch = batch < 1 ? 1 : batch > FSM_BATCH ? FSM_BATCH : batch;
        w.task = KF(task_short);
        w.ntasks[0] = (outer + c.batch - 1) / c.batch;
    } else if (inner == 1 && outer >= threads) {
        w.task = KF(task_row);
        w.ntasks[0] = outer;
    } else if (inner == 1) {
        c.nb = (n + FSM_BLOCK - 1) / FSM_BLOCK;
        c.bs = (fsm_block *)malloc((size_t)(outer * c.nb) * sizeof(fsm_block));
        c.rs = (fsm_row *)malloc((size_t)outer * sizeof(fsm_row));
        if (!c.bs || !c.rs) {
            free(c.bs);
            free(c.rs);
            return -1;
        }
        w.task = KF(task_block);
        w.between = KF(merge_rows);
        w.nphases = p->last == FSM_LAST_ROW_VALUE ? 1 : 2;
        w.ntasks[0] = w.ntasks[1] = outer * c.nb;
    } else {
        /* column block width: FSM_COLS, or what fits the scratch; 0 = no scratch (very long columns) */
        int64_t width = FSM_SCRATCH_BYTES / (int64_t)sizeof(T) / n - 128 / (int64_t)sizeof(T);
        width = width >= FSM_COLS ? FSM_COLS : width - width % 16;
        if (width > inner) width = inner;
        c.use_scratch = width >= 16 || (width == inner && width > 0);
        if (!c.use_scratch) width = FSM_COLS < inner ? FSM_COLS : inner;
        c.width = width;
        c.pad = fsm_col_pitch(width, (int64_t)sizeof(T)) - width;
        c.chunks = (inner + width - 1) / width;
        w.task = KF(task_cols);
        w.ntasks[0] = outer * c.chunks;
    }
    fsm_run(&w, threads);
    free(c.bs);
    free(c.rs);
    return c.failed ? -1 : 0;
}

/* ---- weighted logsumexp (b=): the parts of the fallback's _lse_parts, for fastsoftmax._core ---- */

/*
 * Per row of a with weights b (both rows x n, C-contiguous), as _fallback._lse_parts defines them:
 * M = the max of a over the elements whose weight is not zero, k = the sum of the weights of the
 * elements equal to M, rest = the sum of b * exp(a - M) over the others. The row is cut into the
 * fixed blocks of FSM_BLOCK elements (short rows: batches of whole rows, FSM_WBATCH_BYTES of a at
 * most), each done in a per-thread scratch s that stays in cache:
 *   the softmax op's max pass and exp pass (template.h) on a: m_b and s = exp(a - m_b) * unit
 *   one pass over (a, b, s): k_b = sum b where a == m_b, rest_b = sum b * s / unit elsewhere, each
 *   product in double (exact for float32) summed in 8 lanes whose partials of 64 elements go into
 *   TwoSum accumulators (wsum below);
 *   where m_b is not finite or k_b is 0 (a NaN or inf, or the max elements' weights are zero or
 *   cancel), the block again on s = where(b != 0, a, -inf): the max over the weighted elements.
 * A zero weight removes its element either way (an element of weight 0 adds 0 to k and to rest).
 * Blocks merge in order: M = max m_b, k = sum of k_b over the blocks with m_b = M, rest = the
 * other blocks' (k_b + rest_b) e^(m_b - M) plus the rest_b of those with m_b = M, in W. Nothing here
 * depends on the thread count or the ISA (the 8 lanes are the source's, not the vector's). A row whose
 * M is not finite has only M set: the caller recomputes it with the fallback.
 */
typedef struct { double m, k, rest; } KF(wpart);

#ifdef FSM_WSUM_SSE2
/*
 * The groups of 8 elements of one chunk of wsum (len <= 64 elements, lane l of p and kk takes element
 * 8 g + l): the plain C loop's operations (the build without SSE2), two lanes (SSE2) or four (AVX2) at
 * a time, so all three give the same bits. Returns the elements done.
 */
static inline __m128d KF(load2)(const T *x)
{
    if (sizeof(T) == 4) return _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(const void *)x)));
    return _mm_loadu_pd((const double *)(const void *)x);
}

static int64_t KF(wchunk_sse2)(const T *a, const T *b, const T *e, int64_t len, double mm, double *p, double *kk)
{
    const __m128d vm = _mm_set1_pd(mm);
    __m128d vp[4], vk[4];
    int64_t j = 0;
    for (int q = 0; q < 4; q++) {
        vp[q] = _mm_loadu_pd(p + 2 * q);
        vk[q] = _mm_loadu_pd(kk + 2 * q);
    }
    for (; j + 8 <= len; j += 8)
        for (int q = 0; q < 4; q++) {
            const int64_t o = j + 2 * q;
            const __m128d bv = KF(load2)(b + o), w = _mm_mul_pd(bv, KF(load2)(e + o));
            const __m128d top = _mm_cmpeq_pd(KF(load2)(a + o), vm);
            vp[q] = _mm_add_pd(vp[q], _mm_andnot_pd(top, w));
            vk[q] = _mm_add_pd(vk[q], _mm_and_pd(top, bv));
        }
    for (int q = 0; q < 4; q++) {
        _mm_storeu_pd(p + 2 * q, vp[q]);
        _mm_storeu_pd(kk + 2 * q, vk[q]);
    }
    return j;
}

FSM_WSUM_AVX2 static inline __m256d KF(load4)(const T *x)
{
    if (sizeof(T) == 4) return _mm256_cvtps_pd(_mm_loadu_ps((const float *)(const void *)x));
    return _mm256_loadu_pd((const double *)(const void *)x);
}

FSM_WSUM_AVX2 static int64_t KF(wchunk_avx2)(const T *a, const T *b, const T *e, int64_t len, double mm, double *p,
                                             double *kk)
{
    const __m256d vm = _mm256_set1_pd(mm);
    __m256d vp[2], vk[2];
    int64_t j = 0;
    for (int q = 0; q < 2; q++) {
        vp[q] = _mm256_loadu_pd(p + 4 * q);
        vk[q] = _mm256_loadu_pd(kk + 4 * q);
    }
    for (; j + 8 <= len; j += 8)
        for (int q = 0; q < 2; q++) {
            const int64_t o = j + 4 * q;
            const __m256d bv = KF(load4)(b + o), w = _mm256_mul_pd(bv, KF(load4)(e + o));
            const __m256d top = _mm256_cmp_pd(KF(load4)(a + o), vm, _CMP_EQ_OQ);
            vp[q] = _mm256_add_pd(vp[q], _mm256_andnot_pd(top, w));
            vk[q] = _mm256_add_pd(vk[q], _mm256_and_pd(top, bv));
        }
    for (int q = 0; q < 2; q++) {
        _mm256_storeu_pd(p + 4 * q, vp[q]);
        _mm256_storeu_pd(kk + 4 * q, vk[q]);
    }
    return j;
}
#endif

/* The last r < 8 elements of a chunk as a whole group: padded with weight 0, exp 0 and a NaN (never m). */
static inline void KF(wpad)(const T *a, const T *b, const T *e, int64_t r, T ta[8], T tb[8], T te[8])
{
    for (int l = 0; l < 8; l++) {
        ta[l] = (T)NAN;
        tb[l] = te[l] = (T)0;
    }
    memcpy(ta, a, (size_t)r * sizeof(T));
    memcpy(tb, b, (size_t)r * sizeof(T));
    memcpy(te, e, (size_t)r * sizeof(T));
}

/* wsum's result from its 8 lanes: the TwoSum pairs (s, c) and the weights at the max kk, added in lane order in W. */
static void KF(wsum_finish)(const double *s, const double *c, const double *kk, W unit, KF(wpart) *o)
{
    W rs = 0, rc = 0, k = 0;
    for (int l = 0; l < 8; l++) {
        rs += (W)s[l];
        rc += (W)c[l];
        k += (W)kk[l];
    }
    o->k = (double)k;
    o->rest = (double)((rs + rc) / unit);
}

#ifdef FSM_WSUM_AVX512
FSM_WSUM_AVX512 static inline __m512d KF(load8)(const T *x)
{
    if (sizeof(T) == 4) return _mm512_cvtps_pd(_mm256_loadu_ps((const float *)(const void *)x));
    return _mm512_loadu_pd((const double *)(const void *)x);
}

/* One group of 8 elements into p (lane l: element l) and kk, as a group of wchunk_avx2. */
FSM_WSUM_AVX512 static inline void KF(wgroup_avx512)(const T *a, const T *b, const T *e, __m512d vm, __m512d *p,
                                                     __m512d *kk)
{
    const __m512d bv = KF(load8)(b), w = _mm512_mul_pd(bv, KF(load8)(e));
    const __mmask8 top = _mm512_cmp_pd_mask(KF(load8)(a), vm, _CMP_EQ_OQ);
    *p = _mm512_add_pd(*p, _mm512_mask_mov_pd(w, top, _mm512_setzero_pd()));  /* +0 where top, as andnot */
    *kk = _mm512_add_pd(*kk, _mm512_maskz_mov_pd(top, bv));                   /* +0 elsewhere, as and */
}

/*
 * wsum with its 8 lanes as one AVX-512 vector: the partials of each 64-element chunk, the padded last
 * group, and the TwoSum of the partials into (s, c) are the same operations lane by lane as the scalar
 * loops and wchunk_sse2/avx2, so the same bits; the chunk's partials and the TwoSum stay in registers
 * (the other forms pass them through memory and do the TwoSum in scalar code, 6 operations per lane
 * per chunk).
 */
FSM_WSUM_AVX512 static void KF(wsum_avx512)(const T *a, const T *b, const T *e, int64_t n, T m, W unit, KF(wpart) *o)
{
    const __m512d vm = _mm512_set1_pd((double)m);
    __m512d s = _mm512_setzero_pd(), c = s, kk = s;
    for (int64_t i = 0; i < n; i += 64) {
        const int64_t len = n - i < 64 ? n - i : 64;
        __m512d p = _mm512_setzero_pd();
        int64_t j = 0;
        for (; j + 8 <= len; j += 8) KF(wgroup_avx512)(a + i + j, b + i + j, e + i + j, vm, &p, &kk);
        if (j < len) {  /* padded as in wsum */
            T ta[8], tb[8], te[8];
            KF(wpad)(a + i + j, b + i + j, e + i + j, len - j, ta, tb, te);
            KF(wgroup_avx512)(ta, tb, te, vm, &p, &kk);
        }
        const __m512d t = _mm512_add_pd(s, p), bp = _mm512_sub_pd(t, s);
        c = _mm512_add_pd(c, _mm512_add_pd(_mm512_sub_pd(s, _mm512_sub_pd(t, bp)), _mm512_sub_pd(p, bp)));
        s = t;
    }
    double sv[8], cv[8], kv[8];
    _mm512_storeu_pd(sv, s);
    _mm512_storeu_pd(cv, c);
    _mm512_storeu_pd(kv, kk);
    KF(wsum_finish)(sv, cv, kv, unit, o);
}
#endif

/* k and rest of one block (or short row) whose exps are in e; m finite. Element i of a 64-element
   chunk goes to lane i % 8 (the vector groups, the padded last group and the plain C loop alike). */
static void KF(wsum)(const T *a, const T *b, const T *e, int64_t n, T m, W unit, int lanes, KF(wpart) *o)
{
#ifdef FSM_WSUM_AVX512
    if (lanes >= 8) {
        KF(wsum_avx512)(a, b, e, n, m, unit, o);
        return;
    }
#endif
    const int avx2 = lanes >= 4;
    (void)avx2;  /* unused by the plain C loop */
    double s[8] = {0}, c[8] = {0}, kk[8] = {0}, p[8];
    const double mm = (double)m;
    for (int64_t i = 0; i < n; i += 64) {
        const int64_t len = n - i < 64 ? n - i : 64;
        for (int l = 0; l < 8; l++) p[l] = 0.0;
#ifdef FSM_WSUM_SSE2
        const int64_t j = avx2 ? KF(wchunk_avx2)(a + i, b + i, e + i, len, mm, p, kk)
                               : KF(wchunk_sse2)(a + i, b + i, e + i, len, mm, p, kk);
        if (j < len) {  /* the last len - j < 8 elements, padded */
            T ta[8], tb[8], te[8];
            KF(wpad)(a + i + j, b + i + j, e + i + j, len - j, ta, tb, te);
            if (avx2) KF(wchunk_avx2)(ta, tb, te, 8, mm, p, kk);
            else KF(wchunk_sse2)(ta, tb, te, 8, mm, p, kk);
        }
#else
        for (int64_t j = 0; j < len; j++) {
            const double bb = (double)b[i + j], w = bb * (double)e[i + j];
            const int top = (double)a[i + j] == mm;
            p[j & 7] += top ? 0.0 : w;
            kk[j & 7] += top ? bb : 0.0;
        }
#endif
        for (int l = 0; l < 8; l++) {  /* TwoSum: s + c is the exact sum of the partials */
            const double t = s[l] + p[l], bp = t - s[l];
            c[l] += (s[l] - (t - bp)) + (p[l] - bp);
            s[l] = t;
        }
    }
    KF(wsum_finish)(s, c, kk, unit, o);
}

/* m, k and rest of `rows` rows of n elements (rows * n <= FSM_BLOCK), s a scratch of rows * n elements. */
FSM_WSMALL static void KF(wparts_rows)(const fsm_kernels *k, const T *a, const T *b, T *s, int64_t rows, int64_t n,
                            KF(wpart) *out)
{
    const fsm_op_passes *p = &fsm_ops[FSM_SOFTMAX];
    T m[FSM_BATCH], mn[FSM_BATCH];
    fsm_acc acc[FSM_BATCH];
    const int lanes = k->lanes_f64;  /* wsum's form: AVX-512, AVX2, SSE2 (the same bits) */
    KF(pass1_rows)(k, p, a, s, rows, n, m, mn, acc, 0);
    for (int64_t r = 0; r < rows; r++) {
        const T *ar = a + r * n, *br = b + r * n;
        T *sr = s + r * n;
        out[r].m = (double)m[r];
        out[r].k = out[r].rest = 0.0;
        if (isfinite(m[r])) KF(wsum)(ar, br, sr, n, m[r], KF(block_unit)(&acc[r]), lanes, &out[r]);
        if (isfinite(m[r]) && out[r].k != 0.0) continue;
        for (int64_t i = 0; i < n; i++) sr[i] = br[i] != (T)0 ? ar[i] : (T)-INFINITY;  /* the weighted max */
        KF(pass1_rows)(k, p, sr, sr, 1, n, &m[r], &mn[r], &acc[r], 0);
        out[r].m = (double)m[r];
        if (isfinite(m[r])) KF(wsum)(ar, br, sr, n, m[r], KF(block_unit)(&acc[r]), lanes, &out[r]);
    }
}

typedef struct {
    const fsm_kernels *k;
    const T *a, *b;
    int64_t rows, n, batch, nb;
    KF(wpart) *parts;  /* rows * nb: a short row's one part, or a long row's blocks */
    int failed;
} KF(wcall);

FSM_WSMALL static void KF(task_weighted)(void *ctx, int phase, int64_t t, void **local)
{
    KF(wcall) *c = (KF(wcall) *)ctx;
    (void)phase;
    if (!*local && !(*local = malloc((size_t)FSM_BLOCK * sizeof(T)))) {
        c->failed = 1;
        return;
    }
    if (c->nb == 1) {
        int64_t r0 = t * c->batch, rows = c->rows - r0 < c->batch ? c->rows - r0 : c->batch;
        KF(wparts_rows)(c->k, c->a + r0 * c->n, c->b + r0 * c->n, (T *)*local, rows, c->n, c->parts + r0);
    } else {
        int64_t r = t / c->nb, blk = t % c->nb, off = r * c->n + blk * FSM_BLOCK;
        KF(wparts_rows)(c->k, c->a + off, c->b + off, (T *)*local, 1, FSM_BLOCK_LEN(c->n, blk), c->parts + t);
    }
}

/*
 * A row's result from its parts, as _fallback.lse_combine forms it where that is finite:
 * s = rest / k, sign = sign(s + 1) sign(k), s reflected to -s - 2 below -1, and
 * log|sum| = M + (log1p(s) + log|k|), formed in W and added to M with TwoSum, rounded once.
 * Returns 1 (and sets nothing) for a row the fallback recomputes: M not finite, k zero, k or rest
 * beyond T's range (where the fallback's own sums overflow), a zero sum, a result that is not
 * finite, or without return_sign a negative sum (whose value is the fallback's direct sum's log).
 */
FSM_WSMALL static int KF(wfinish)(T M, W k, W rest, int return_sign, T *out, T *sgn)
{
    const W big = (W)(sizeof(T) == 4 ? FLT_MAX : DBL_MAX);
    if (!isfinite(M) || k == 0 || !(k <= big && k >= -big) || !(rest <= big && rest >= -big)) return 1;
    W s = rest == 0 ? (W)0 : rest / k;
    const W s1 = s + 1;
    const int sg = (s1 > 0 ? 1 : s1 < 0 ? -1 : 0) * (k > 0 ? 1 : -1);
    if (sg == 0 || (sg < 0 && !return_sign)) return 1;
    if (s < -1) s = -s - 2;
    const W l = FSM_LOG1PW(s) + FSM_LOGW(k > 0 ? k : -k);
    const double l_hi = (double)l;
    const T v = KF(lse_value)(M, l_hi, (double)(l - (W)l_hi));
    if (!isfinite(v)) return 1;
    *out = v;
    *sgn = (T)sg;
    return 0;
}

/* out, sgn of each row (see above), redo[r] = 1 for the rows left to the fallback. Returns how many
   those are, or -1 if memory ran out. */
FSM_WSMALL static int64_t KF(lse_weighted)(const fsm_kernels *k, const T *a, const T *b, int64_t rows, int64_t n, T *out,
                                T *sgn, uint8_t *redo, int return_sign, int threads)
{
    KF(wcall) c;
    fsm_work w = {0};
    int64_t nredo = 0;
    memset(&c, 0, sizeof c);
    c.k = k;
    c.a = a;
    c.b = b;
    c.rows = rows;
    c.n = n;
    c.nb = n <= FSM_BLOCK ? 1 : (n + FSM_BLOCK - 1) / FSM_BLOCK;
    c.batch = n <= FSM_BLOCK ? FSM_WBATCH_BYTES / (int64_t)sizeof(T) / n : 1;
    c.batch = c.batch < 1 ? 1 : c.batch > FSM_BATCH ? FSM_BATCH : c.batch;
    c.parts = (KF(wpart) *)malloc((size_t)(rows * c.nb) * sizeof(KF(wpart)));
    if (!c.parts) return -1;
    w.ctx = &c;
    w.nphases = 1;
    w.task = KF(task_weighted);
    w.ntasks[0] = c.nb == 1 ? (rows + c.batch - 1) / c.batch : rows * c.nb;
    fsm_run(&w, threads);
    for (int64_t r = 0; r < rows && !c.failed; r++) {
        const KF(wpart) *p = c.parts + r * c.nb;
        T M = (T)-INFINITY;
        for (int64_t blk = 0; blk < c.nb; blk++) {
            if (isnan(p[blk].m)) { M = (T)NAN; break; }
            if ((T)p[blk].m > M) M = (T)p[blk].m;
        }
        W kk = 0, rs = 0;
        if (isfinite(M))
            for (int64_t blk = 0; blk < c.nb; blk++) {
                if ((T)p[blk].m == M) {
                    kk += (W)p[blk].k;
                    rs += (W)p[blk].rest;
                } else {
                    rs += KF(block_factor)((T)p[blk].m, M) * ((W)p[blk].k + (W)p[blk].rest);
                }
            }
        redo[r] = (uint8_t)KF(wfinish)(M, kk, rs, return_sign, &out[r], &sgn[r]);
        nredo += redo[r];
    }
    free(c.parts);
    return c.failed ? -1 : nredo;
}

#undef KF
#undef FN
#undef FN2
