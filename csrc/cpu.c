/*
 * Run-time dispatch: read CPUID and XCR0 once, then keep a pointer to the best kernel set that both
 * the CPU and the OS support. The list of sets and their checks comes from kernels.inc.
 */
#include <string.h>
#include "fastsoftmax.h"

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

typedef struct { int avx2_fma, avx512f; } fsm_features;

static fsm_features detect(void)
{
    fsm_features f = {0, 0};
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

static int entry_ok(const fsm_isa_entry *e)
{
    if (!detected) {
        features = detect();
        detected = 1;
    }
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

const fsm_kernels *fsm_active(void)
{
    if (!active) fsm_set_isa("auto");
    return active;
}
