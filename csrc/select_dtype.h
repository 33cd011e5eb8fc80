/*
 * Selection for one dtype, included twice by select.c: T = float / double, K = its key type
 * (uint32_t / uint64_t), SFX = f32 / f64, KEY(v) = the monotone key of v, WIDE / WIDE_EXP = the type
 * and exp of the top-k probabilities, FSM_DTYPE, FSM_NEXTUP. select.c's header comment has the reasoning.
 */
#define FN2(a, b) a##_##b
#define FN(a, b) FN2(a, b)
#define KF(name) FN(name, SFX)

/* The key of v: KEY (monotone for any non-NaN value) for logits, the bits (monotone for v >= 0) for
   probabilities. */
static inline K KF(key_of)(T v, int sgn)
{
    if (sgn) return KEY(v);
    K u;
    memcpy(&u, &v, sizeof u);
    return u;
}

/* Sort cand[0 .. nc) by key, largest first (insertion sort: nc <= FSM_SEL_SMALL). */
static void KF(sort_small)(const T *v, int sgn, int64_t *cand, int64_t nc)
{
    for (int64_t a = 1; a < nc; a++) {
        int64_t i = cand[a];
        K key = KF(key_of)(v[i], sgn);
        int64_t b = a;
        for (; b > 0 && KF(key_of)(v[cand[b - 1]], sgn) < key; b--) cand[b] = cand[b - 1];
        cand[b] = i;
    }
}

/*
 * The cut of a radix selection: over the elements (all n, or list[0 .. nl) when list is not NULL),
 * the largest key t such that W(key >= t) >= target, W counting elements (w == NULL) or summing w_i.
 * With frac > 0 the target is frac * W(all of them). When no key reaches the target (the weights
 * summed in another order fall a rounding short of it), the smallest key of the last candidate set
 * is returned: all of it is kept. cand: scratch for n indices.
 *
 * The top digit of every key is histogrammed in one pass over the row (four interleaved histograms,
 * so that runs of equal digits do not serialise on one bucket); the digit where W crosses the target
 * is kept and its elements are collected as candidates (a second pass). The next digits are
 * histogrammed over the candidates only (digits of about log2 of their count, 4 to 11 bits), until
 * the key is complete or at most FSM_SEL_SMALL candidates are left, which are sorted and walked
 * directly. Rows shorter than FSM_SEL_FULL_HIST start from that loop with every element as a
 * candidate (zeroing the four full histograms would cost more than such a row). Probability keys
 * (v in [0, 1]) have their top bit clear: the top digit then starts one bit lower and resolves 1/16
 * of an octave (float32). Logit keys use the full width.
 */
static K KF(radix_cut)(const T *v, const T *w, int64_t n, const int64_t *list, int64_t nl, int sgn, double target,
                       double frac, int64_t *cand)
{
    const int kb = (int)(8 * sizeof(K));
    int shift = sgn ? kb - 11 : kb - 13;  /* the top digit: key >> shift < 2048 (probabilities < 2) */
    int64_t nc = 0;
    double above = 0.0;  /* W of the elements above every candidate */
    double h[2048];
    if (list || n < FSM_SEL_FULL_HIST) {
        double total = 0.0;
        if (list) {
            for (int64_t a = 0; a < nl; a++) total += w ? (double)w[list[a]] : 1.0;
            memmove(cand, list, (size_t)nl * sizeof(int64_t));  /* the list may lie inside cand */
            nc = nl;
        } else {
            for (int64_t i = 0; i < n; i++) {
                total += w ? (double)w[i] : 1.0;
                cand[i] = i;
            }
            nc = n;
        }
        if (frac > 0) target = frac * total;
        shift += 11;  /* the loop below starts with the top digit */
    } else {
        double hs[4][2048];
        memset(hs, 0, sizeof hs);
        int64_t i = 0;
        if (w) {
            for (; i + 4 <= n; i += 4)
                for (int j = 0; j < 4; j++) hs[j][KF(key_of)(v[i + j], sgn) >> shift] += (double)w[i + j];
            for (; i < n; i++) hs[0][KF(key_of)(v[i], sgn) >> shift] += (double)w[i];
        } else {
            for (; i + 4 <= n; i += 4)
                for (int j = 0; j < 4; j++) hs[j][KF(key_of)(v[i + j], sgn) >> shift] += 1.0;
            for (; i < n; i++) hs[0][KF(key_of)(v[i], sgn) >> shift] += 1.0;
        }
        double total = 0.0;
        for (int d = 0; d < 2048; d++) {
            h[d] = ((hs[0][d] + hs[1][d]) + hs[2][d]) + hs[3][d];
            total += h[d];
        }
        if (frac > 0) target = frac * total;
        int d = 2047;
        for (; d >= 0; d--) {
            if (above + h[d] >= target && h[d] > 0) break;
            above += h[d];
        }
        if (d < 0) return 0;  /* a rounding short: keep the whole row */
        if (sgn) {
            for (int64_t j = 0; j < n; j++) {
                cand[nc] = j;
                nc += (KF(key_of)(v[j], sgn) >> shift) == (K)d;
            }
        } else {  /* probabilities: the digit's keys are the values in [lo, hi) */
            K klo = (K)d << shift, khi = (K)(d + 1) << shift;
            T lo, hi;
            memcpy(&lo, &klo, sizeof lo);
            memcpy(&hi, &khi, sizeof hi);
            nc = FN(collect_range, SFX)(v, n, lo, hi, cand);
        }
    }
    /* the digits below `shift` (or, from a list, the top digit first), over the candidates */
    while (nc > FSM_SEL_SMALL && shift > 0) {
        int bits = 4;  /* digits of about log2(candidates) bits (4 to 11): the histogram stays small */
        while (bits < 11 && ((int64_t)1 << bits) < nc) bits++;
        bits = shift < bits ? shift : bits;
        shift -= bits;
        const int nb = 1 << bits;
        const K mask = (K)(nb - 1);
        memset(h, 0, (size_t)nb * sizeof(double));
        for (int64_t a = 0; a < nc; a++)
            h[(KF(key_of)(v[cand[a]], sgn) >> shift) & mask] += w ? (double)w[cand[a]] : 1.0;
        int d = nb - 1;
        for (; d >= 0; d--) {
            if (above + h[d] >= target && h[d] > 0) break;
            above += h[d];
        }
        if (d < 0) {  /* a rounding short of the target: keep the whole candidate set */
            K lo = KF(key_of)(v[cand[0]], sgn);
            for (int64_t a = 1; a < nc; a++)
                if (KF(key_of)(v[cand[a]], sgn) < lo) lo = KF(key_of)(v[cand[a]], sgn);
            return lo;
        }
        int64_t kept = 0;
        for (int64_t a = 0; a < nc; a++) {
            cand[kept] = cand[a];
            kept += ((KF(key_of)(v[cand[a]], sgn) >> shift) & mask) == (K)d;
        }
        nc = kept;
    }
    if (nc == 0) return 0;
    if (nc > FSM_SEL_SMALL) return KF(key_of)(v[cand[0]], sgn);  /* the key is complete: all have it */
    KF(sort_small)(v, sgn, cand, nc);
    for (int64_t a = 0; a < nc;) {
        K key = KF(key_of)(v[cand[a]], sgn);
        double g = 0.0;
        for (; a < nc && KF(key_of)(v[cand[a]], sgn) == key; a++) g += w ? (double)w[cand[a]] : 1.0;
        if (above + g >= target && g > 0) return key;
        above += g;
    }
    return KF(key_of)(v[cand[nc - 1]], sgn);
}

/* ---- top-k ------------------------------------------------------------------------------------ */

typedef struct { T v; int64_t i; } KF(pair);

/* a before b: larger value first, then the lower index */
static int KF(pair_cmp)(const void *pa, const void *pb)
{
    const KF(pair) *a = (const KF(pair) *)pa, *b = (const KF(pair) *)pb;
    K ka = KEY(a->v), kb = KEY(b->v);
    if (ka != kb) return ka > kb ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* Insert (v, i) into the sorted buf[0 .. len) (len + 1 slots); i is above every index in it. */
static void KF(insert)(KF(pair) *buf, int64_t len, T v, int64_t i)
{
    int64_t b = len;
    for (; b > 0 && buf[b - 1].v < v; b--) buf[b] = buf[b - 1];
    buf[b].v = v;
    buf[b].i = i;
}

/* The k largest of z[0 .. n) (k <= n, no NaN; ties: lower index) into buf, sorted. A sorted buffer of
   k for k <= FSM_SEL_SMALL_K, fed only by the chunks of 16 that hold an element above its last
   entry (one vector compare a chunk); above that k, the radix cut of the k-th largest key, then the
   elements above it and, in index order, as many of those equal to it as make k; sorted (k log k). */
static void KF(topk)(const T *z, int64_t n, int64_t k, KF(pair) *buf, int64_t *cand)
{
    if (k <= FSM_SEL_SMALL_K) {
        int64_t len = 0, i = 0;
        for (; i < n && len < k; i++) KF(insert)(buf, len++, z[i], i);
        T thr = buf[k - 1].v;
        for (; i + 16 <= n; i += 16) {
            for (unsigned m = FN(above16, SFX)(z + i, thr); m; m &= m - 1) {  /* the elements above, in order */
                int j = lowest_bit(m);
                if (z[i + j] > thr) {
                    KF(insert)(buf, k - 1, z[i + j], i + j);
                    thr = buf[k - 1].v;
                }
            }
        }
        for (; i < n; i++)
            if (z[i] > thr) {
                KF(insert)(buf, k - 1, z[i], i);
                thr = buf[k - 1].v;
            }
        return;
    }
    K t = KF(radix_cut)(z, NULL, n, NULL, 0, 1, (double)k, 0.0, cand);
    int64_t above = 0;
    for (int64_t i = 0; i < n; i++) above += KEY(z[i]) > t;
    int64_t len = 0, ties = k - above;
    for (int64_t i = 0; i < n && len < k; i++) {
        K key = KEY(z[i]);
        if (key > t || (key == t && ties > 0)) {
            ties -= key == t;
            buf[len].v = z[i];
            buf[len++].i = i;
        }
    }
    qsort(buf, (size_t)len, sizeof(KF(pair)), KF(pair_cmp));
}

/* exp((z - m) - (l_hi + l_lo)), with z - m and its difference from l_hi carried exactly (TwoSum),
   the exp and the product in WIDE (long double for float64 where that is the x87 format) */
static double KF(prob)(T z, double m, double l_hi, double l_lo)
{
    if (z == (T)-INFINITY) return 0.0;
    double a = (double)z - m;
    double bb = a - (double)z;
    double a_lo = ((double)z - (a - bb)) + (-m - bb);
    double d = a - l_hi;
    double bd = d - a;
    double d_lo = (a - (d - bd)) + (-l_hi - bd);
    return (double)(WIDE_EXP((WIDE)d) * ((WIDE)1 + (WIDE)((d_lo + a_lo) - l_lo)));
}

/* Rows [r0, r1) of a top-k call (one task of select.c's runner): their statistics, then each row's k
   largest and their probabilities; status[r] says whether row r has a softmax (FSM_SEL_OK) or why not.
   scratch: 3 (r1 - r0) doubles, k pairs and, above FSM_SEL_SMALL_K, n indices. */
static int KF(topk_rows)(const T *z, int64_t r0, int64_t r1, int64_t n, int64_t k, T *probs, int64_t *idx,
                         signed char *status, void *scratch)
{
    const int64_t rows = r1 - r0;
    double *st = (double *)scratch;
    KF(pair) *buf = (KF(pair) *)(st + 3 * rows);
    int64_t *cand = (int64_t *)(buf + k);
    if (fsm_row_stats(FSM_DTYPE, z + r0 * n, rows, n, st, st + rows, st + 2 * rows) != 0) return FSM_SEL_NOMEM;
    for (int64_t j = 0; j < rows; j++) {
        const int64_t r = r0 + j;
        double m = st[j];
        if (isnan(m) || isinf(m)) {
            status[r] = (signed char)(isnan(m) ? FSM_SEL_NAN : m > 0 ? FSM_SEL_POS_INF : FSM_SEL_ALL_NEG_INF);
            continue;
        }
        status[r] = FSM_SEL_OK;
        KF(topk)(z + r * n, n, k, buf, cand);
        for (int64_t i = 0; i < k; i++) {
            idx[r * k + i] = buf[i].i;
            probs[r * k + i] = (T)KF(prob)(buf[i].v, m, st[rows + j], st[2 * rows + j]);
        }
    }
    return FSM_SEL_OK;
}

static size_t KF(topk_scratch)(int64_t rows_per_task, int64_t n, int64_t k)
{
    return (size_t)(3 * rows_per_task) * sizeof(double) + (size_t)k * sizeof(KF(pair)) +
           (k > FSM_SEL_SMALL_K ? (size_t)n * sizeof(int64_t) : 0);
}

/* ---- sampling --------------------------------------------------------------------------------- */

/* One draw from row p (n probabilities) under the filters. cand: n indices; blk: n / FSM_SEL_DRAW_BLOCK + 1
   doubles; buf: FSM_SEL_SMALL_K pairs. */
static int64_t KF(sample_row)(const T *p, int64_t n, int64_t top_k, double top_p, double min_p, double u,
                              int64_t *cand, double *blk, KF(pair) *buf)
{
    T tv = 0;  /* kept: p >= tv */
    if (top_k > 0 && top_k < n) {
        if (top_k <= FSM_SEL_SMALL_K) {
            KF(topk)(p, n, top_k, buf, cand);
            tv = buf[top_k - 1].v;
        } else {
            K t = KF(radix_cut)(p, NULL, n, NULL, 0, 0, (double)top_k, 0.0, cand);
            memcpy(&tv, &t, sizeof tv);
        }
    }
    if (top_p < 1.0) {
        K t;
        if (tv > 0) {  /* top_p over what top_k kept */
            int64_t nl = FN(collect_range, SFX)(p, n, tv, (T)INFINITY, cand);
            int64_t *list = cand + (n - nl);  /* move the list out of the way of radix_cut's candidates */
            memmove(list, cand, (size_t)nl * sizeof(int64_t));
            t = KF(radix_cut)(p, p, n, list, nl, 0, 0.0, top_p, cand);
        } else {
            t = KF(radix_cut)(p, p, n, NULL, 0, 0, 0.0, top_p, cand);
        }
        T v;
        memcpy(&v, &t, sizeof v);
        if (v > tv) tv = v;
    }
    if (min_p > 0.0) {
        T pmax = FN(max_of, SFX)(p, n);
        double thr = min_p * (double)pmax;
        T c = (T)thr;  /* the smallest T value that is >= thr */
        if ((double)c < thr) c = FSM_NEXTUP(c);
        if (c > tv) tv = c;
    }
    /* the kept mass per block of the row, then the draw in index order: the block where u * mass is
       crossed, and the element inside it */
    const int64_t bl = FSM_SEL_DRAW_BLOCK, nblk = (n + bl - 1) / bl;
    double total = 0.0;
    for (int64_t b = 0; b < nblk; b++) {
        int64_t i0 = b * bl;
        blk[b] = FN(kept_sum, SFX)(p + i0, (i0 + bl < n ? bl : n - i0), tv);
        total += blk[b];
    }
    const double target = u * total;
    double acc = 0.0;
    for (int64_t b = 0; b < nblk; b++) {
        if (blk[b] <= 0.0) continue;
        if (acc + blk[b] > target) {
            int64_t i0 = b * bl, i1 = i0 + bl < n ? i0 + bl : n, last = -1;
            for (int64_t i = i0; i < i1; i++)
                if (p[i] >= tv && p[i] > 0) {
                    acc += (double)p[i];
                    last = i;
                    if (acc > target) return i;
                }
            return last;  /* the in-block sum fell a rounding short of the block's */
        }
        acc += blk[b];
    }
    for (int64_t i = n - 1; i >= 0; i--)  /* u * total fell a rounding short of the blocks' sum */
        if (p[i] >= tv && p[i] > 0) return i;
    return 0;  /* not reached: the row's max is kept and positive */
}

/* Rows [r0, r1) of a sampling call (one task). scratch: KF(sample_scratch)(n) bytes. */
static void KF(sample_rows)(const T *p, int64_t r0, int64_t r1, int64_t n, int64_t top_k, double top_p,
                            double min_p, const double *u, int64_t *out, void *scratch)
{
    KF(pair) *buf = (KF(pair) *)scratch;
    int64_t *cand = (int64_t *)(buf + FSM_SEL_SMALL_K);
    double *blk = (double *)(cand + n);
    for (int64_t r = r0; r < r1; r++) out[r] = KF(sample_row)(p + r * n, n, top_k, top_p, min_p, u[r], cand, blk, buf);
}

static size_t KF(sample_scratch)(int64_t n)
{
    return FSM_SEL_SMALL_K * sizeof(KF(pair)) + (size_t)n * sizeof(int64_t) +
           (size_t)(n / FSM_SEL_DRAW_BLOCK + 1) * sizeof(double);
}

#undef KF
#undef FN
#undef FN2
