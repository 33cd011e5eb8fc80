/*
 * Run-time dispatch: read CPUID and XCR0 once, then keep a pointer to the best kernel set that both
 * the CPU and the OS support. The list of sets and their checks comes from kernels.inc.
 */
#include <stdlib.h>
#include <string.h>
#include "fastsoftmax.h"
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define FSM_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
static void cpuid(int leaf, int sub, unsigned r[4])
{
    int v[4];
    __cpuidex(v, leaf, sub);
    for (int i = 0; i < 4; i++) r[i] = (unsigned)v[i];
}
static unsigned long long xgetbv0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void cpuid(int leaf, int sub, unsigned r[4])
{
    r[0] = r[1] = r[2] = r[3] = 0;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
static unsigned long long xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif
#endif

typedef struct { int avx2_fma, avx512f, avx512_bf16; } fsm_features;

static fsm_features detect(void)
{
    fsm_features f = {0, 0, 0};
#ifdef FSM_X86
    unsigned r[4];
    cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    if (max_leaf < 7) return f;
    cpuid(1, 0, r);
    int fma = (r[2] >> 12) & 1, osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1, f16c = (r[2] >> 29) & 1;
    if (!osxsave || !avx) return f;
    unsigned long long xcr0 = xgetbv0();
    int os_avx = (xcr0 & 0x6) == 0x6;             /* XMM and YMM state */
    int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    cpuid(7, 0, r);
    int avx2 = (r[1] >> 5) & 1, avx512f = (r[1] >> 16) & 1;
    f.avx2_fma = os_avx && avx2 && fma && f16c;  /* every AVX2 CPU has F16C; checked all the same */
    f.avx512f = f.avx2_fma && os_avx512 && avx512f;
    int avx512dq = (r[1] >> 17) & 1, avx512bw = (r[1] >> 30) & 1, max_sub = (int)r[0];
    if (f.avx512f && avx512dq && avx512bw && max_sub >= 1) {
        cpuid(7, 1, r);
        f.avx512_bf16 = (r[0] >> 5) & 1;
    }
#endif
    return f;
}

static int fsm_cpu_any(fsm_features f) { (void)f; return 1; }
static int fsm_cpu_avx2_fma(fsm_features f) { return f.avx2_fma; }
static int fsm_cpu_avx512f(fsm_features f) { return f.avx512f; }

/* One entry per line of kernels.inc, in its order: the name is the id itself, so an ISA this build
   did not compile (set NULL) is still named. */
typedef struct {
    const char *name;
    const fsm_kernels *const *set;
    int (*usable)(fsm_features);
} fsm_isa_entry;

static const fsm_isa_entry isa_table[] = {
#define FSM_ISA(id, cpu_check) {#id, &fsm_kernels_##id, cpu_check},
#include "kernels.inc"
#undef FSM_ISA
};
#define N_ISA ((int)(sizeof isa_table / sizeof isa_table[0]))

static const fsm_kernels *active;
static int detected;
static fsm_features features;

static void ensure_detected(void)
{
    if (!detected) {
        features = detect();
        detected = 1;
    }
}

static int entry_ok(const fsm_isa_entry *e)
{
    ensure_detected();
    return *e->set != 0 && e->usable(features);
}

static const fsm_isa_entry *find(const char *name)
{
    for (int i = 0; i < N_ISA; i++)
        if (strcmp(isa_table[i].name, name) == 0) return &isa_table[i];
    return 0;
}

int fsm_isa_count(void) { return N_ISA; }

const char *fsm_isa_name(int i) { return i >= 0 && i < N_ISA ? isa_table[i].name : 0; }

const fsm_kernels *fsm_isa_kernels(const char *name)
{
    const fsm_isa_entry *e = find(name);
    return e ? *e->set : 0;
}

int fsm_isa_compiled(const char *name)
{
    const fsm_isa_entry *e = find(name);
    return e && *e->set != 0;
}

int fsm_isa_supported(const char *name)
{
    const fsm_isa_entry *e = find(name);
    return e && entry_ok(e);
}

int fsm_set_isa(const char *name)
{
    if (strcmp(name, "auto") == 0) {
        for (int i = N_ISA - 1; i >= 0; i--)
            if (entry_ok(&isa_table[i])) {
                active = *isa_table[i].set;
                return 0;
            }
        return -1;
    }
    const fsm_isa_entry *e = find(name);
    if (!e || !entry_ok(e)) return -1;
    active = *e->set;
    return 0;
}

int fsm_subnormals_measured(void);

/* AVX512_BF16's conversion for the AVX-512 set's bfloat16 stores (avx512.c): on where the CPU has it
   (with AVX-512DQ, whose vfpclassps finds the subnormal lanes, and BW, which GCC's avx512bf16 implies),
   unless fsm_set_bf16cvt(-1) turned it off. */
static int bf16cvt_forced;

int fsm_bf16cvt_supported(void)
{
    ensure_detected();
    return features.avx512_bf16;
}

int fsm_bf16cvt(void) { return bf16cvt_forced >= 0 && features.avx512_bf16; }

void fsm_set_bf16cvt(int mode) { bf16cvt_forced = mode; }

const fsm_kernels *fsm_active(void)
{
    if (!active) {
        fsm_set_isa("auto");
        (void)fsm_subnormals_measured();  /* measured here, on the first (importing) thread */
    }
    return active;
}

/*
 * The last-level cache, for the out-of-cache path of the driver (rows.c): outputs larger than this
 * are written with non-temporal stores. CPUID first (AMD: leaf 0x8000001D with TOPOEXT; otherwise
 * the deterministic cache leaf 4), the largest data or unified cache level's size (ways * partitions
 * * line * sets): that is one cache instance (one CCX's L3 on AMD). Then sysconf where glibc has
 * it (under KVM it can report much more than one instance: 320 MiB measured where CPUID says 32 MiB).
 * Else FSM_LLC_DEFAULT.
 * Whether the path is on by default: not on AMD. Measured on the 2-core Zen 4 (EPYC family 25 model 17,
 * KVM), softmax float32 (4096, 32000) through the scratch and non-temporal stores took 90 ms against
 * 78 ms with plain stores at 1 thread, 48.6 against 45.4 ms at 2 threads (np.copyto 43 ms): plain stores
 * there cost no visible read-for-ownership, and the streaming copy stalls the core until its lines have
 * drained. Elsewhere (Intel, where issue 15 measured the three streams) it is on; that default is not
 * measured by this project. fsm_set_llc_bytes(b): b > 0 forces the path on with that cache size (tests
 * force it on small arrays), b < 0 forces it off, 0 restores the default.
 */
#define FSM_LLC_DEFAULT ((int64_t)32 << 20)

static int64_t llc_from_cpuid(void)
{
#ifdef FSM_X86
    unsigned r[4];
    cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    int amd = r[1] == 0x68747541u;  /* "Auth"enticAMD */
    unsigned leaf = 4;
    if (amd) {
        cpuid(0x80000000u, 0, r);
        if (r[0] < 0x8000001Du) return 0;
        cpuid(0x80000001u, 0, r);
        if (!((r[2] >> 22) & 1)) return 0;  /* no TOPOEXT: leaf 0x8000001D is not there */
        leaf = 0x8000001Du;
    } else if (max_leaf < 4) {
        return 0;
    }
    int64_t best = 0;
    int best_level = 0;
    for (int i = 0; i < 16; i++) {
        cpuid((int)leaf, i, r);
        unsigned type = r[0] & 31, level = (r[0] >> 5) & 7;
        if (type == 0) break;
        if (type == 2) continue;  /* instruction cache */
        int64_t size = (int64_t)(((r[1] >> 22) & 1023) + 1) * (((r[1] >> 12) & 1023) + 1) *
                       ((r[1] & 4095) + 1) * ((int64_t)r[2] + 1);
        if ((int)level >= best_level) best_level = (int)level, best = size;
    }
    return best;
#else
    return 0;
#endif
}

static int64_t llc_detected = -1, llc_forced;
static int stream_default = -1;

static int cpu_is_amd(void)
{
#ifdef FSM_X86
    unsigned r[4];
    cpuid(0, 0, r);
    return r[1] == 0x68747541u;
#else
    return 0;
#endif
}

int64_t fsm_llc_detected(void)
{
    if (llc_detected < 0) {
        int64_t v = llc_from_cpuid();
#if defined(_SC_LEVEL3_CACHE_SIZE)
        if (v <= 0) {
            long s = sysconf(_SC_LEVEL3_CACHE_SIZE);
            if (s > 0) v = s;
        }
#endif
        llc_detected = v > 0 ? v : FSM_LLC_DEFAULT;
    }
    return llc_detected;
}

int64_t fsm_llc_bytes(void)
{
    if (llc_forced) return llc_forced;
    if (stream_default < 0) stream_default = !cpu_is_amd();
    return stream_default ? fsm_llc_detected() : -1;
}

void fsm_set_llc_bytes(int64_t bytes) { llc_forced = bytes; }

static int64_t prefetch_forced;
int64_t fsm_prefetch_above(void) { return prefetch_forced ? prefetch_forced : fsm_llc_detected(); }
void fsm_set_prefetch_above(int64_t bytes) { prefetch_forced = bytes; }

/*
 * Subnormal arithmetic. Intel cores take a microcode assist (~100+ cycles) on every float operation
 * with a subnormal operand or result; Zen 3 measured 3.3x slower on a tenth of the outputs subnormal;
 * Zen 4 computes them at full speed (../shared/proto: 0.42 against 0.39 ns/element). Rather than a
 * table of CPU models, measure once, with the operations the answer is for: the direct scale form
 * itself (template.h scale_direct_f32, only in the AVX-512 set), y = (e*hi + e*lo) * 2^-64 over a
 * row of e with full mantissas and normal operands throughout, once with every y subnormal and once
 * with every y normal, the fastest of 9 tries of each, the two taking turns at going first. Free
 * means within 1.25x. A wrong answer costs speed only: both scale forms give the same bits.
 * Why these operands and no others: on Zen 5 (family 26, the 2-core VM, 2026-12-03) a multiply of a
 * normal number by a subnormal one (2^-140), with subnormal results, ran at full speed (1.00-1.08x,
 * with or without the FMA in front), and so did an FMA with subnormal operands, which is what this
 * probe timed before; but normal operands whose product is subnormal, as z * 2^-64 in the scale form,
 * ran 2.4-2.6x slower than with normal results. The old probe said "free", and the direct form made
 * the scale pass of uniform(-80, 80) rows 0.160 ns/element against 0.099 for the integer form
 * (bench/micro/passes.c, each form forced with fsm_set_subnormals). Timing the form's own operations
 * on its own kind of operands answers for what it runs. (A scalar/SSE loop, used before either, was no guide on the 2-core Zen 4 VM: its
 * normal-number loop ran at two speeds from one process to the next, so its ratio read 1.0 or 2.05.)
 */
#if (defined(__unix__) || defined(__APPLE__)) && defined(FSM_X86) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <time.h>
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static volatile float subnormal_sink;

/* The direct scale form over 256 floats, 64 times, with its own multiplier 2^-64 and normal operands
   throughout: every y subnormal when e_scale = 2^-70, every y normal when it is 1. */
__attribute__((target("avx512f"))) static double subnormal_loop(float e_scale)
{
    volatile float vs = 0x1p-64f;
    const __m512 s = _mm512_set1_ps(vs), hi = _mm512_set1_ps(0x1.6a09e6p-1f), lo = _mm512_set1_ps(0x1.3p-26f);
    float e[256], y[256];
    for (int i = 0; i < 256; i++) e[i] = e_scale * (1.0f + (float)(i * 149 % 256) / 256.0f + (float)i * 0x1p-22f);
    double t0 = now_s();
    for (int rep = 0; rep < 64; rep++) {
        for (int i = 0; i < 256; i += 16) {
            __m512 v = _mm512_loadu_ps(e + i);
            _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_fmadd_ps(v, hi, _mm512_mul_ps(v, lo)), s));
        }
        __asm__ volatile("" ::: "memory");  /* each repetition recomputes y */
    }
    double t = now_s() - t0;
    subnormal_sink = y[255];
    return t;
}

static int measure_subnormals_free(void)
{
    if (!fsm_isa_supported("avx512")) return 0;  /* the only set with the direct form */
    double sub = 1e30, norm = 1e30;
    for (int k = 0; k < 9; k++) {
        double a, b;
        if (k % 2) {
            b = subnormal_loop(1.0f);
            a = subnormal_loop(0x1p-70f);
        } else {
            a = subnormal_loop(0x1p-70f);
            b = subnormal_loop(1.0f);
        }
        sub = a < sub ? a : sub;
        norm = b < norm ? b : norm;
    }
    return sub <= 1.25 * norm;
}
#else
static int measure_subnormals_free(void) { return 0; }
#endif

static int subnormals_measured = -1, subnormals_forced;

int fsm_subnormals_measured(void)
{
    if (subnormals_measured < 0) subnormals_measured = measure_subnormals_free();
    return subnormals_measured;
}

int fsm_subnormals_free(void)
{
    if (subnormals_forced) return subnormals_forced > 0;
    return fsm_subnormals_measured();
}

void fsm_set_subnormals(int mode) { subnormals_forced = mode; }
