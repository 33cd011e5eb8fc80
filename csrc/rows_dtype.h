/*
 * The driver for one dtype, included twice by rows.c (T = float / double, SFX = f32 / f64).
 * A row is processed in fixed blocks of FSM_BLOCK elements whose partial sums are merged in block
 * order, whether one thread walks the row or many threads share its blocks: the result is the same
 * bit for bit for any thread count.
 */
#define FN2(a, b) a##_##b
#define FN(a, b) FN2(a, b)
#define KF(name) FN(name, SFX)

/* Row statistics -> the factor (softmax) or the log-sum (log ops), following fastsoftmax.h. */
static void KF(finish_sums)(fsm_op op, T m, const fsm_acc *tot, double *hi, double *lo)
{
    if (op == FSM_SOFTMAX) {
        if (!isfinite(m)) { *hi = NAN; *lo = 0.0; return; }
        double s_hi = tot->sum + tot->sum_lo;
        double s_lo = tot->sum_lo - (s_hi - tot->sum);
        double c = 1.0 / s_hi;
        *hi = c;
        *lo = c * (-fma(c, s_hi, -1.0) - c * s_lo);
        return;
    }
    if (isnan(m) || m == -INFINITY) { *hi = NAN; *lo = 0.0; return; }  /* NaN row / all -inf */
    if (m == INFINITY) { *hi = 0.0; *lo = 0.0; return; }              /* scipy shifts by 0 */
    /* s' = sum_{x<m} e + (k - 1), then log1p(s') as a double-double. */
    double k1 = tot->n_max - 1.0;
    double a = tot->sum + k1, bp = a - tot->sum;
    double a_lo = (tot->sum - (a - bp)) + (k1 - bp) + tot->sum_lo;
    double s_hi = a + a_lo, s_lo = a_lo - (s_hi - a);
    log1p_dd(s_hi, s_lo, hi, lo);
}

static T KF(lse_value)(T m, double l_hi, double l_lo)
{
    if (!isfinite(m)) return m;
    double r = (double)m + l_hi;
    double bp = r - (double)m;
    double err = ((double)m - (r - bp)) + (l_hi - bp);
    return (T)(r + (err + l_lo));
}

static void KF(block_sums)(const fsm_kernels *k, fsm_op op, const T *x, T *y, int64_t len, T m, fsm_acc *a)
{
    a->sum = a->sum_lo = a->n_max = 0.0;
    if (op == FSM_SOFTMAX)
        k->KF(expsum_store)(x, y, len, m, a);
    else
        k->KF(expsum_exclmax)(x, len, m, a);
}

static void KF(block_finish)(const fsm_kernels *k, fsm_op op, const T *x, T *y, int64_t len, T m,
                             double hi, double lo)
{
    if (op == FSM_SOFTMAX) {
        if (isfinite(m)) {
            k->KF(scale)(y, len, hi, lo);
        } else {
            for (int64_t i = 0; i < len; i++) y[i] = (T)NAN;
        }
    } else if (op == FSM_LOG_SOFTMAX) {
        k->KF(logshift)(x, y, len, m, hi, lo);
    }
}

/* One row, on the calling thread. */
static void KF(row)(const fsm_kernels *k, fsm_op op, const T *x, T *y, int64_t n)
{
    T m = k->KF(max)(x, n);
    fsm_acc tot = {0.0, 0.0, 0.0}, a;
    if (isfinite(m)) {
        for (int64_t b = 0; b < n; b += FSM_BLOCK) {
            KF(block_sums)(k, op, x + b, y + b, n - b < FSM_BLOCK ? n - b : FSM_BLOCK, m, &a);
            acc_merge(&tot, &a);
        }
    }
    double hi, lo;
    KF(finish_sums)(op, m, &tot, &hi, &lo);
    if (op == FSM_LOGSUMEXP)
        *y = KF(lse_value)(m, hi, lo);
    else
        KF(block_finish)(k, op, x, y, n, m, hi, lo);
}

/* One long row, its blocks shared by `threads` threads; same result as KF(row). */
static int KF(row_blocks_parallel)(const fsm_kernels *k, fsm_op op, const T *x, T *y, int64_t n, int threads)
{
    int64_t nb = (n + FSM_BLOCK - 1) / FSM_BLOCK;
    T *bmax = (T *)malloc((size_t)nb * sizeof(T));
    fsm_acc *bacc = (fsm_acc *)malloc((size_t)nb * sizeof(fsm_acc));
    if (!bmax || !bacc) {
        free(bmax);
        free(bacc);
        return -1;
    }
    T m = (T)-INFINITY;
    double hi = 0.0, lo = 0.0;
    FSM_PARALLEL(threads)
    {
        FSM_FOR_STATIC
        for (int64_t b = 0; b < nb; b++) {
            int64_t len = n - b * FSM_BLOCK < FSM_BLOCK ? n - b * FSM_BLOCK : FSM_BLOCK;
            bmax[b] = k->KF(max)(x + b * FSM_BLOCK, len);
        }
        FSM_SINGLE
        {
            for (int64_t b = 0; b < nb; b++) {
                if (isnan(bmax[b])) { m = (T)NAN; break; }
                if (bmax[b] > m) m = bmax[b];
            }
        }
        if (isfinite(m)) {
            FSM_FOR_STATIC
            for (int64_t b = 0; b < nb; b++) {
                int64_t len = n - b * FSM_BLOCK < FSM_BLOCK ? n - b * FSM_BLOCK : FSM_BLOCK;
                KF(block_sums)(k, op, x + b * FSM_BLOCK, y + b * FSM_BLOCK, len, m, &bacc[b]);
            }
        }
        FSM_SINGLE
        {
            fsm_acc tot = {0.0, 0.0, 0.0};
            if (isfinite(m))
                for (int64_t b = 0; b < nb; b++) acc_merge(&tot, &bacc[b]);
            KF(finish_sums)(op, m, &tot, &hi, &lo);
        }
        if (op != FSM_LOGSUMEXP) {
            FSM_FOR_STATIC
            for (int64_t b = 0; b < nb; b++) {
                int64_t len = n - b * FSM_BLOCK < FSM_BLOCK ? n - b * FSM_BLOCK : FSM_BLOCK;
                KF(block_finish)(k, op, x + b * FSM_BLOCK, y + b * FSM_BLOCK, len, m, hi, lo);
            }
        }
    }
    if (op == FSM_LOGSUMEXP) *y = KF(lse_value)(m, hi, lo);
    free(bmax);
    free(bacc);
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
        fsm_acc a = {sum[j], sum_lo[j], nmax[j]};
        KF(finish_sums)(op, m[j], &a, &hi[j], &lo[j]);
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
        if (outer == 1 && threads > 1 && n > FSM_BLOCK)
            return KF(row_blocks_parallel)(k, op, x, y, n, threads);
        if (threads > 1 && outer < threads && n > FSM_BLOCK) {
            for (int64_t r = 0; r < outer; r++)
                if (KF(row_blocks_parallel)(k, op, x + r * n, y + r * out_n, n, threads)) return -1;
            return 0;
        }
        FSM_PARALLEL_FOR(threads)
        for (int64_t r = 0; r < outer; r++) KF(row)(k, op, x + r * n, y + r * out_n, n);
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
