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

/* Pass 1 on one block. Non-finite block maxima are resolved at the merge. */
static void KF(block_pass1)(const fsm_kernels *k, fsm_op op, const T *x, T *y, int64_t len, fsm_block *b)
{
    T m = k->KF(max)(x, len);
    b->m = (double)m;
    b->acc.sum = b->acc.sum_lo = b->acc.n_max = 0.0;
    if (!isfinite(m)) return;
    if (op == FSM_SOFTMAX)
        k->KF(expsum_store)(x, y, len, m, &b->acc);
    else
        k->KF(expsum_exclmax)(x, len, m, &b->acc);
}

/* The row's statistics from its blocks: M, and the factor 1/S (softmax) or log1p(S') (log ops). */
static void KF(merge)(fsm_op op, const fsm_block *bs, int64_t nb, fsm_row *r)
{
    T M = (T)-INFINITY;
    for (int64_t b = 0; b < nb; b++) {
        if (isnan(bs[b].m)) { M = (T)NAN; break; }
        if ((T)bs[b].m > M) M = (T)bs[b].m;
    }
    r->m = (double)M;
    r->hi = r->lo = 0.0;
    if (op == FSM_SOFTMAX) {
        if (!isfinite(M)) { r->hi = NAN; return; }  /* scipy: NaN, +inf or all -inf -> NaN */
        W s = 0;
        for (int64_t b = 0; b < nb; b++)
            s += KF(block_factor)((T)bs[b].m, M) * ((W)bs[b].acc.sum + (W)bs[b].acc.sum_lo);
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
        W s = (W)bs[b].acc.sum + (W)bs[b].acc.sum_lo;
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

/* Pass 2 on one block. */
static void KF(block_pass2)(const fsm_kernels *k, fsm_op op, const T *x, T *y, int64_t len,
                            const fsm_block *b, const fsm_row *r)
{
    if (op == FSM_SOFTMAX) {
        if (isnan(r->hi)) {
            for (int64_t i = 0; i < len; i++) y[i] = (T)NAN;
        } else if ((T)b->m == (T)-INFINITY) {
            for (int64_t i = 0; i < len; i++) y[i] = (T)0;  /* an all -inf block */
        } else if ((T)b->m == (T)r->m) {
            k->KF(scale)(y, len, r->hi, r->lo);
        } else {
            W c = KF(block_factor)((T)b->m, (T)r->m) * r->wide_inv;
            double hi = (double)c;
            k->KF(scale)(y, len, hi, (double)(c - (W)hi));
        }
    } else if (op == FSM_LOG_SOFTMAX) {
        k->KF(logshift)(x, y, len, (T)r->m, r->hi, r->lo);
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

/* A row of at most FSM_BLOCK elements: one block, on the calling thread, no OpenMP. */
static void KF(row_short)(const fsm_kernels *k, fsm_op op, const T *x, T *y, int64_t n)
{
    fsm_block b;
    fsm_row r;
    KF(block_pass1)(k, op, x, y, n, &b);
    KF(merge)(op, &b, 1, &r);
    if (op == FSM_LOGSUMEXP)
        *y = KF(lse_value)((T)r.m, r.hi, r.lo);
    else
        KF(block_pass2)(k, op, x, y, n, &b, &r);
}

/* A row of any length, its blocks shared by `threads` threads (1: the calling thread). */
static int KF(row_blocks)(const fsm_kernels *k, fsm_op op, const T *x, T *y, int64_t n, int threads)
{
    const int64_t nb = (n + FSM_BLOCK - 1) / FSM_BLOCK;
    fsm_block *bs = (fsm_block *)malloc((size_t)nb * sizeof(fsm_block));
    fsm_row r;
    if (!bs) return -1;
    FSM_PARALLEL(threads)
    {
        FSM_FOR_STATIC
        for (int64_t b = 0; b < nb; b++) {
            int64_t len = n - b * FSM_BLOCK < FSM_BLOCK ? n - b * FSM_BLOCK : FSM_BLOCK;
            KF(block_pass1)(k, op, x + b * FSM_BLOCK, y + b * FSM_BLOCK, len, &bs[b]);
        }
        FSM_SINGLE
        KF(merge)(op, bs, nb, &r);
        if (op != FSM_LOGSUMEXP) {
            FSM_FOR_STATIC
            for (int64_t b = 0; b < nb; b++) {
                int64_t len = n - b * FSM_BLOCK < FSM_BLOCK ? n - b * FSM_BLOCK : FSM_BLOCK;
                KF(block_pass2)(k, op, x + b * FSM_BLOCK, y + b * FSM_BLOCK, len, &bs[b], &r);
            }
        }
    }
    if (op == FSM_LOGSUMEXP) *y = KF(lse_value)((T)r.m, r.hi, r.lo);
    free(bs);
    return 0;
}

/* Columns [j0, j0 + cols) of one outer block: rows are `inner` elements apart. */
static void KF(cols)(const fsm_kernels *k, fsm_op op, const T *x, T *y, int64_t n, int64_t inner, int64_t cols)
{
    const fsm_kernels *p = fsm_kernels_portable;
    T m[FSM_COLS];
    double sum[FSM_COLS], sum_lo[FSM_COLS], nmax[FSM_COLS], hi[FSM_COLS], lo[FSM_COLS];
    int64_t vec = cols - cols % k->KF(lanes);
    int64_t rest = cols - vec;
    k->KF(col_max)(x, n, inner, vec, m);
    if (rest) p->KF(col_max)(x + vec, n, inner, rest, m + vec);
    for (int64_t j = 0; j < cols; j++) sum[j] = sum_lo[j] = nmax[j] = 0.0;
    if (op == FSM_SOFTMAX) {
        k->KF(col_expsum_store)(x, y, n, inner, vec, m, sum, sum_lo);
        if (rest) p->KF(col_expsum_store)(x + vec, y + vec, n, inner, rest, m + vec, sum + vec, sum_lo + vec);
    } else {
        k->KF(col_expsum_exclmax)(x, n, inner, vec, m, sum, sum_lo, nmax);
        if (rest) p->KF(col_expsum_exclmax)(x + vec, n, inner, rest, m + vec, sum + vec, sum_lo + vec, nmax + vec);
    }
    for (int64_t j = 0; j < cols; j++) {
        fsm_block b = {(double)m[j], {sum[j], sum_lo[j], nmax[j]}};
        fsm_row r;
        KF(merge)(op, &b, 1, &r);
        hi[j] = r.hi;
        lo[j] = r.lo;
    }
    if (op == FSM_SOFTMAX) {
        k->KF(col_scale)(y, n, inner, vec, hi, lo);
        if (rest) p->KF(col_scale)(y + vec, n, inner, rest, hi + vec, lo + vec);
    } else if (op == FSM_LOG_SOFTMAX) {
        k->KF(col_logshift)(x, y, n, inner, vec, m, hi, lo);
        if (rest) p->KF(col_logshift)(x + vec, y + vec, n, inner, rest, m + vec, hi + vec, lo + vec);
    } else {
        for (int64_t j = 0; j < cols; j++) y[j] = KF(lse_value)(m[j], hi[j], lo[j]);
    }
}

static int KF(compute)(const fsm_kernels *k, fsm_op op, const T *x, T *y,
                       int64_t outer, int64_t n, int64_t inner, int threads)
{
    const int64_t out_n = op == FSM_LOGSUMEXP ? 1 : n;  /* outputs per row */
    if (inner == 1) {
        if (n <= FSM_BLOCK) {
            FSM_PARALLEL_FOR(threads)
            for (int64_t r = 0; r < outer; r++) KF(row_short)(k, op, x + r * n, y + r * out_n, n);
            return 0;
        }
        if (outer >= threads) {
            int failed = 0;
            FSM_PARALLEL_FOR(threads)
            for (int64_t r = 0; r < outer; r++)
                if (KF(row_blocks)(k, op, x + r * n, y + r * out_n, n, 1)) failed = 1;
            return failed ? -1 : 0;
        }
        for (int64_t r = 0; r < outer; r++)
            if (KF(row_blocks)(k, op, x + r * n, y + r * out_n, n, threads)) return -1;
        return 0;
    }
    const int64_t chunks = (inner + FSM_COLS - 1) / FSM_COLS;
    const int64_t out_stride = op == FSM_LOGSUMEXP ? inner : n * inner;
    FSM_PARALLEL_FOR(threads)
    for (int64_t t = 0; t < outer * chunks; t++) {
        int64_t o = t / chunks, j0 = (t % chunks) * FSM_COLS;
        int64_t cols = inner - j0 < FSM_COLS ? inner - j0 : FSM_COLS;
        KF(cols)(k, op, x + o * n * inner + j0, y + o * out_stride + j0, n, inner, cols);
    }
    return 0;
}

#undef KF
#undef FN
#undef FN2
