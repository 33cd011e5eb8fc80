/*
 * Threads: who runs the tasks of a call. The only file that talks to OpenMP (FSM_WITH_OPENMP).
 *
 * The problem. An OpenMP parallel region ends with a join: the caller returns only when every team
 * thread has arrived, including a thread the OS has not run yet. On a machine whose cores are busy
 * with other processes a woken worker can wait a scheduler time slice (milliseconds) before it runs,
 * and a 100 µs call then takes that long (measured on 2 cores with one busy: p99 6.8 ms against
 * 0.2 ms single-threaded).
 *
 * The policy. A call is cut by the driver into tasks whose boundaries depend on the shape only
 * (batches of short rows, fixed 16384-element blocks of long rows, column blocks), so which thread
 * runs a task never changes a bit of the result. The tasks are numbered; every participant takes
 * the next number from one atomic counter until none is left:
 *   - the calling thread participates from the start: it never waits for anyone to begin;
 *   - the other threads are an OpenMP team (so OMP_NUM_THREADS, threadpoolctl and the OpenMP
 *     runtime's binding settings keep applying), started for the call by a persistent helper
 *     thread that the caller wakes when it posts the call. A team thread that runs late finds the
 *     counter exhausted and leaves without touching the call; the caller waits only for tasks that
 *     a thread has actually started (at most one task each, a few to a few hundred µs of work);
 *   - the team's own join happens on the helper thread, after the caller has returned. While that
 *     team has not finished (a late thread has still to arrive), its helper is busy and the next
 *     caller that finds no idle helper runs its call alone: a slow team never delays a later call.
 * The helper threads run under SCHED_BATCH (Linux; normal weight, no other privilege): a woken
 * SCHED_BATCH thread never preempts a running one. Without it, when the other cores are busy the
 * scheduler places the woken helper on the caller's own core and it preempts the caller (measured
 * on the 2-core VM under load: the helper ran every task, the caller none, each call 10-20 µs
 * slower than alone); with it the helper waits its turn there and the caller, which started at
 * once, does the work. SCHED_BATCH alone also keeps a helper woken onto the caller's busy CPU there
 * while another CPU idles (milliseconds on a VM), so on Linux the helper's affinity leaves out the
 * caller's CPU (steer(), below): it starts on an idle CPU or waits behind other work, never the caller.
 * A call whose tasks come in two phases (a long row on several threads: per-block statistics, the
 * merge, then the output blocks) numbers both phases in one sequence; the thread that finishes the
 * last task of phase 0 runs the merge and opens phase 1, and a thread holding a task of a phase not
 * yet open waits for it.
 *
 * Waiting. Every wait (an idle helper for the next call, a caller for the last started tasks, a task
 * for its phase) spins for at most FSM_SPIN_NS and then sleeps on a condition variable; a waker only
 * takes the lock when someone sleeps. No thread busy-waits longer than that, so a call never takes a
 * core from the caller's other threads (or other processes) for more than a few µs after its work.
 * The OpenMP runtime's own team threads, between the helper's regions, wait as the runtime does
 * (libgomp spins a while and then sleeps: OMP_WAIT_POLICY=passive makes them sleep at once); with two
 * cores the team is the helper thread alone and no runtime thread exists.
 *
 * Concurrent callers share one budget of max(default threads, threads of the call) threads: a call
 * is granted what is left of it (at least its own calling thread, which runs in any case) and gives
 * back exactly what it was granted. Each call with more than one thread needs an idle helper; there
 * are at most budget / 2 helpers (each parallel call takes at least two threads of the budget).
 * Thread counts: threads=None is fsm_default_threads() (FASTSOFTMAX_NUM_THREADS, else
 * omp_get_max_threads() of the calling thread, which threadpoolctl sets), capped by the CPUs of the
 * process and by the work (FSM_MIN_WORK elements per thread). A call from inside an OpenMP parallel
 * region runs on its own thread.
 *
 * fork(): the child has no helper threads. A pthread_atfork handler marks them gone, resets the
 * budget and re-initialises the locks (taken across fork so none is inherited held); the child
 * creates new helpers at its first parallel call. They start their own OpenMP teams: the parent's
 * libgomp pool belongs to the parent's helper threads, which the child never uses (calling threads
 * never start an OpenMP region themselves).
 *
 * Without pthreads (MSVC) the caller starts a plain OpenMP team itself and every team thread takes
 * tasks from the same counter (mechanism "team": the join at the end is OpenMP's; those platforms have
 * no fork). -DFSM_NO_HELPERS builds that variant on Linux, to test it (there it is not fork-safe).
 * Without OpenMP everything runs on the calling thread.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* SCHED_BATCH */
#endif
#include <stdlib.h>
#include <string.h>
#include "fastsoftmax.h"
#include "threads.h"

#if defined(FSM_WITH_OPENMP) && defined(_OPENMP)
#include <omp.h>
#define FSM_HAVE_OPENMP 1
#else
#define FSM_HAVE_OPENMP 0
#endif

#if FSM_HAVE_OPENMP && (defined(__unix__) || defined(__APPLE__)) && !defined(FSM_NO_HELPERS)
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <strings.h>
#include <time.h>
#define FSM_HELPERS 1
#else
#define FSM_HELPERS 0
#endif
#if FSM_HELPERS && defined(__linux__) && defined(CPU_SET)
#define FSM_STEER 1
#else
#define FSM_STEER 0
#endif

#define FSM_MIN_WORK ((int64_t)65536) /* elements per thread below which fewer threads are used */
#define FSM_SPIN_NS 4000              /* longest busy wait before sleeping */
#define FSM_MAX_HELPERS 16

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static long add_long(volatile long *a, long v) { return _InterlockedExchangeAdd(a, v); }
#define FSM_ATOMIC_INT volatile long
#define budget_add(p, v) ((int)add_long((p), (v)))
#else
#define FSM_ATOMIC_INT int
#define budget_add(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

int fsm_openmp_enabled(void) { return FSM_HAVE_OPENMP; }

int fsm_default_threads(void)
{
    const char *env = getenv("FASTSOFTMAX_NUM_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v > 0) return v > 1024 ? 1024 : (int)v;
    }
#if FSM_HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static FSM_ATOMIC_INT threads_busy;  /* threads granted to calls now running */
static int hook_flags, hook_cpu_cap;
static unsigned hook_hold_mask;
static int64_t st_parallel, st_alone, st_tasks_caller, st_tasks_helper, st_steered;
static int st_helpers_held, st_callers_held;

#if defined(__GNUC__) || defined(__clang__)
#define LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define ADD_RELAXED(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define CAS(p, expected, v) __atomic_compare_exchange_n((p), (expected), (v), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)
#else  /* MSVC: volatile accesses of aligned ints are atomic; read-modify-writes are interlocked */
#define LOAD(p) (*(volatile int *)(p))
#define LOAD_ACQ(p) (*(volatile int *)(p))
#define STORE(p, v) (*(volatile int *)(p) = (v))
#define ADD(p, v) _InterlockedExchangeAdd64((volatile long long *)(p), (v))
#define ADD_RELAXED(p, v) _InterlockedExchangeAdd64((volatile long long *)(p), (v))
#endif

int fsm_plan_threads(int requested, int64_t work, int64_t tasks)
{
#if FSM_HAVE_OPENMP
    if (work < 2 * FSM_MIN_WORK || requested == 1 || omp_in_parallel()) return 1;
    int t = requested > 0 ? requested : fsm_default_threads();
    int procs = hook_cpu_cap > 0 ? hook_cpu_cap : omp_get_num_procs();
    if (t > procs) t = procs;  /* more threads than CPUs never helps */
    int64_t by_work = work / FSM_MIN_WORK;
    if (by_work < t) t = (int)by_work;
    if (tasks < t) t = (int)(tasks > 0 ? tasks : 1);
    return t;
#else
    (void)requested; (void)work; (void)tasks;
    return 1;
#endif
}

/* Every task in order on this thread: what any number of threads computes, bit for bit. */
static void run_alone(const fsm_work *w)
{
    void *local = NULL;
    for (int p = 0; p < w->nphases; p++) {
        for (int64_t i = 0; i < w->ntasks[p]; i++) w->task(w->ctx, p, i, &local);
        if (w->between) w->between(w->ctx, p);
    }
    free(local);
}

/* One call shared by several threads. */
typedef struct {
    fsm_work w;
    int64_t start[FSM_MAX_PHASES + 1]; /* phase p is tasks [start[p], start[p + 1]) */
    int64_t next;                      /* the next unclaimed task */
    int64_t done[FSM_MAX_PHASES];      /* finished tasks per phase */
    int finished;                      /* phases finished; phase p may run once p are; nphases: complete */
    int helper_claims;                 /* tasks claimed by helper-team threads (FSM_HOOK_WAIT_HELPER) */
} fsm_job;

static void job_init(fsm_job *j, const fsm_work *w)
{
    j->w = *w;
    j->start[0] = 0;
    for (int p = 0; p < w->nphases; p++) {
        j->start[p + 1] = j->start[p] + w->ntasks[p];
        j->done[p] = 0;
    }
    j->next = 0;
    j->finished = 0;
    j->helper_claims = 0;
}

#if FSM_HELPERS
/*
 * A helper: a persistent thread that starts an OpenMP team of `team` threads for each call posted
 * to it. state: IDLE (waiting for a call) or BUSY (claimed by a caller, or its team still running).
 */
enum { SLOT_IDLE = 0, SLOT_BUSY = 1 };
typedef struct {
    pthread_t thread;
    int state;
    unsigned seq;      /* bumped by the caller when it posts a call */
    unsigned taken;    /* the last seq the helper thread has started on */
    int team;
    int sleepers;      /* threads sleeping on cv */
    pthread_cond_t cv;
    fsm_job job;
#if FSM_STEER
    cpu_set_t allowed; /* the CPUs the helper may use (its creator's affinity) */
    int steer_ok;      /* 1: allowed was read and no OpenMP binding is asked for */
    int away_from;     /* the CPU the helper's affinity leaves out now (-1: none) */
#endif
} fsm_slot;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;  /* the sleeps, helper creation, the hooks */
static pthread_cond_t hook_cv = PTHREAD_COND_INITIALIZER;
static fsm_slot slots[FSM_MAX_HELPERS];
static int nslots, slots_busy;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wait until `cond` holds: spin for at most FSM_SPIN_NS, then sleep on s->cv (see wake()). */
#define WAIT_UNTIL(s, cond)                                                                   \
    do {                                                                                      \
        if (cond) break;                                                                      \
        int64_t t0_ = now_ns();                                                               \
        for (int k_ = 1; !(cond); k_++) {                                                     \
            cpu_relax();                                                                      \
            if ((k_ & 31) == 0 && now_ns() - t0_ > FSM_SPIN_NS) break;                        \
        }                                                                                     \
        if (cond) break;                                                                      \
        pthread_mutex_lock(&mu);                                                              \
        ADD(&(s)->sleepers, 1);                                                               \
        while (!(cond)) pthread_cond_wait(&(s)->cv, &mu);                                     \
        ADD(&(s)->sleepers, -1);                                                              \
        pthread_mutex_unlock(&mu);                                                            \
    } while (0)

/* After a change another thread may wait for (stored with seq_cst): wake s's sleepers, if any. A
   sleeper registers (seq_cst) before its last check, so either it sees the change or we see it. */
static void wake(fsm_slot *s)
{
    if (LOAD(&s->sleepers)) {
        pthread_mutex_lock(&mu);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&mu);
    }
}

static void hook_hold_helper(void)
{
    if (!(LOAD(&hook_flags) & FSM_HOOK_HOLD_HELPERS)) return;
    pthread_mutex_lock(&mu);
    st_helpers_held++;
    while (hook_flags & FSM_HOOK_HOLD_HELPERS) pthread_cond_wait(&hook_cv, &mu);
    st_helpers_held--;
    pthread_mutex_unlock(&mu);
}

static void hook_hold_caller(int got)
{
    if (got >= 32 || !(LOAD((int *)&hook_hold_mask) & (1u << got))) return;
    pthread_mutex_lock(&mu);
    st_callers_held++;
    while (hook_hold_mask & (1u << got)) pthread_cond_wait(&hook_cv, &mu);
    st_callers_held--;
    pthread_mutex_unlock(&mu);
}

/* The caller waits (bounded) until a helper-team thread has claimed a task of its call. */
static void hook_wait_helper(fsm_slot *s)
{
    if (!(LOAD(&hook_flags) & FSM_HOOK_WAIT_HELPER)) return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&mu);
    ADD(&s->sleepers, 1);
    while (!LOAD(&s->job.helper_claims) && pthread_cond_timedwait(&s->cv, &mu, &until) == 0) {}
    ADD(&s->sleepers, -1);
    pthread_mutex_unlock(&mu);
}

/* Take and run tasks of j until none is left. helper: a thread of s's team (else the caller).
   Returns 1 if this thread finished the call's last task and left the wake-up of the caller to its
   own caller (defer_wake: the helper thread of a one-thread team wakes the caller only after it has
   marked itself idle, so that the caller's next call finds it free). */
static int participate(fsm_slot *s, int helper, int defer_wake, int64_t *ran)
{
    fsm_job *j = &s->job;
    const int64_t total = j->start[j->w.nphases];
    void *local = NULL;
    int64_t mine = 0;
    int deferred = 0;
    if (helper) hook_hold_helper();
    else hook_wait_helper(s);
    for (;;) {
        int64_t i = ADD_RELAXED(&j->next, 1);
        if (i >= total) break;  /* a late thread leaves here, before touching the call's data */
        if (helper && LOAD(&hook_flags)) {
            ADD(&j->helper_claims, 1);
            wake(s);
        }
        int p = 0;
        while (i >= j->start[p + 1]) p++;
        if (LOAD_ACQ(&j->finished) < p) WAIT_UNTIL(s, LOAD_ACQ(&j->finished) >= p);
        j->w.task(j->w.ctx, p, i - j->start[p], &local);
        mine++;
        if (ADD(&j->done[p], 1) + 1 == j->w.ntasks[p]) {  /* the phase's last task: all its writes are seen */
            if (j->w.between) j->w.between(j->w.ctx, p);
            STORE(&j->finished, p + 1);
            if (defer_wake && p + 1 == j->w.nphases) deferred = 1;
            else wake(s);
        }
    }
    free(local);
    ADD_RELAXED(helper ? &st_tasks_helper : &st_tasks_caller, mine);
    if (ran) *ran = mine;
    return deferred;
}

static void *helper_main(void *arg)
{
    fsm_slot *s = (fsm_slot *)arg;
    unsigned seen = 0;
#ifdef SCHED_BATCH
    struct sched_param sp;  /* see the header comment: never preempt the caller on its own core */
    memset(&sp, 0, sizeof sp);
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
#endif
    for (;;) {
        WAIT_UNTIL(s, LOAD(&s->seq) != seen);
        seen = LOAD(&s->seq);
        STORE(&s->taken, seen);
        int team = s->team, deferred = 0;
        if (team > 1) {
#pragma omp parallel num_threads(team)
            participate(s, 1, 0, NULL);
        } else {
            deferred = participate(s, 1, 1, NULL);
        }
        ADD(&slots_busy, -1);
        STORE(&s->state, SLOT_IDLE);
        if (deferred) wake(s);
    }
    return NULL;
}

/*
 * Waking a helper costs the caller a few µs (measured under load here: a posted call that the helper
 * did not help took ~19 µs longer than one run alone), wasted when the helper does not get a core in
 * time. After k posts in a row without help, the next min(2^k - 1, 63) calls run alone without
 * posting; a call the helper helps resets it. A heuristic over timing only: results never depend on it.
 */
static int backoff_len, backoff_left;
static int backoff_skip(void)
{
    if (LOAD(&hook_flags) & FSM_HOOK_WAIT_HELPER) return 0;
    if (__atomic_load_n(&backoff_left, __ATOMIC_RELAXED) <= 0) return 0;
    __atomic_fetch_add(&backoff_left, -1, __ATOMIC_RELAXED);
    return 1;
}
static void backoff_update(int helped)
{
    int len = helped ? 0 : 2 * __atomic_load_n(&backoff_len, __ATOMIC_RELAXED) + 1;
    if (len > 63) len = 63;
    __atomic_store_n(&backoff_len, len, __ATOMIC_RELAXED);
    __atomic_store_n(&backoff_left, len, __ATOMIC_RELAXED);
}

static void atfork_prepare(void) { pthread_mutex_lock(&mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&mu); }
static void atfork_child(void)
{
    /* only the forking thread exists here: no helper, no other call in flight */
    pthread_mutex_init(&mu, NULL);
    pthread_cond_init(&hook_cv, NULL);
    memset(slots, 0, sizeof slots);
    nslots = slots_busy = 0;
    threads_busy = 0;
    hook_flags = 0;
    hook_hold_mask = 0;
    hook_cpu_cap = 0;
    backoff_len = backoff_left = 0;
    st_helpers_held = st_callers_held = 0;
}
static void register_atfork(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

#if FSM_STEER
/*
 * Steering (Linux): before a call is posted, the helper's affinity is set to its allowed CPUs less the
 * caller's current one (a system call only when the caller's CPU changed since the last post). The
 * reason, measured on the 2-core KVM guest: a woken SCHED_BATCH thread that the scheduler places on
 * the waker's busy CPU waits there for the next load balance, although the other CPU is idle (an idle
 * vCPU can look preempted to the guest, and the wake-up placement skips it). A condition-variable
 * wake-up after a gap of 1-20 ms then took 2.9-3.8 ms (median) under SCHED_BATCH, against 12-25 µs
 * under SCHED_OTHER and 25-70 µs under SCHED_BATCH with the caller's CPU left out. So every call that
 * came after a pause (a server between requests) ran alone: softmax (64, 32000) threads=2 after 5 ms
 * of sleep took 1109 µs (threads=1: 1031), back to back 441 µs; steered, after 5-20 ms pauses,
 * 803-924 µs against threads=1's 1306-1438 (alternating processes). Left out, the helper cannot be
 * placed on the caller's CPU at all, which is also what SCHED_BATCH was there for. Not done when
 * OMP_PROC_BIND, OMP_PLACES or GOMP_CPU_AFFINITY ask the OpenMP runtime to bind threads (it owns the
 * affinities then), nor when the caller's CPU is the only one allowed. The helper's OpenMP team
 * threads (more than 2 CPUs) keep the mask they were created with. Timing only: results never depend
 * on it.
 */
static int binding_requested(void)
{
    const char *b = getenv("OMP_PROC_BIND");
    if (b && *b && strcasecmp(b, "false") != 0) return 1;
    return (getenv("OMP_PLACES") && *getenv("OMP_PLACES")) || (getenv("GOMP_CPU_AFFINITY") && *getenv("GOMP_CPU_AFFINITY"));
}

static void steer_init(fsm_slot *s)
{
    CPU_ZERO(&s->allowed);
    s->steer_ok = !binding_requested() && pthread_getaffinity_np(pthread_self(), sizeof s->allowed, &s->allowed) == 0;
    s->away_from = -1;
}

static void steer(fsm_slot *s)
{
    int c = sched_getcpu();
    if (!s->steer_ok || c < 0 || c >= CPU_SETSIZE || c == s->away_from || !CPU_ISSET(c, &s->allowed)) return;
    cpu_set_t m = s->allowed;
    CPU_CLR(c, &m);
    if (CPU_COUNT(&m) == 0) return;
    if (pthread_setaffinity_np(s->thread, sizeof m, &m) == 0) {
        s->away_from = c;
        ADD_RELAXED(&st_steered, 1);
    } else {
        s->steer_ok = 0;  /* not permitted here (a seccomp filter, say): stop trying */
    }
}
#else
#define steer(s) ((void)(s))
#endif

/* An idle helper, marked busy for the caller; a new one while there are fewer than `most`; or NULL. */
static fsm_slot *claim_slot(int most)
{
    int n = LOAD(&nslots);
    for (int i = 0; i < n; i++) {
        fsm_slot *s = &slots[i];
        int idle = SLOT_IDLE;
        /* A helper that is running and whose call is complete is about to be idle (its team leaving):
           worth a short spin. One that has not started yet (its core busy) may take milliseconds. */
        if (LOAD(&s->state) != SLOT_IDLE && LOAD(&s->taken) == LOAD(&s->seq) &&
            LOAD_ACQ(&s->job.finished) == s->job.w.nphases) {
            int64_t t0 = now_ns();
            while (LOAD(&s->state) != SLOT_IDLE && now_ns() - t0 < FSM_SPIN_NS) cpu_relax();
        }
        if (LOAD(&s->state) == SLOT_IDLE && CAS(&s->state, &idle, SLOT_BUSY)) return s;
    }
    if (most > FSM_MAX_HELPERS) most = FSM_MAX_HELPERS;
    if (n >= most) return NULL;
    fsm_slot *s = NULL;
    pthread_mutex_lock(&mu);
    if (nslots < most) {
        s = &slots[nslots];
        memset(s, 0, sizeof *s);
        s->state = SLOT_BUSY;
        pthread_cond_init(&s->cv, NULL);
#if FSM_STEER
        steer_init(s);
#endif
        sigset_t all, old;  /* signals are for the interpreter's threads, not ours */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&s->thread, NULL, helper_main, s);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc == 0) {
            pthread_detach(s->thread);
            STORE(&nslots, nslots + 1);
        } else {
            pthread_cond_destroy(&s->cv);
            s = NULL;
        }
    }
    pthread_mutex_unlock(&mu);
    return s;
}
#endif /* FSM_HELPERS */

#if FSM_HAVE_OPENMP && !FSM_HELPERS
/* No pthreads: the caller's own OpenMP team takes the tasks; a phase not yet open is spun for. */
static void participate_team(fsm_job *j)
{
    const int64_t total = j->start[j->w.nphases];
    void *local = NULL;
    for (;;) {
        int64_t i = ADD_RELAXED(&j->next, 1);
        if (i >= total) break;
        int p = 0;
        while (i >= j->start[p + 1]) p++;
        while (LOAD_ACQ(&j->finished) < p) cpu_relax();
        j->w.task(j->w.ctx, p, i - j->start[p], &local);
        if (ADD(&j->done[p], 1) + 1 == j->w.ntasks[p]) {
            if (j->w.between) j->w.between(j->w.ctx, p);
            STORE(&j->finished, p + 1);
        }
    }
    free(local);
}
#endif

void fsm_run(const fsm_work *w, int threads)
{
    int64_t total = 0;
    for (int p = 0; p < w->nphases; p++) total += w->ntasks[p] > 0 ? w->ntasks[p] : 0;
    if (threads <= 1 || total < 2) {
        run_alone(w);
        return;
    }
    for (int p = 0; p < w->nphases; p++)
        if (w->ntasks[p] < 1) {  /* the shared runner needs a task in every phase to open the next */
            run_alone(w);
            return;
        }
#if FSM_HELPERS
    pthread_once(&atfork_once, register_atfork);
#endif
    int budget = fsm_default_threads();
    if (threads > budget) budget = threads;
    int busy = LOAD((int *)&threads_busy), got;
    for (;;) {  /* grant what is left of the budget, at least this thread */
        got = budget - busy < threads ? budget - busy : threads;
        if (got < 1) got = 1;
#if defined(__GNUC__) || defined(__clang__)
        if (CAS((int *)&threads_busy, &busy, busy + got)) break;
#else
        budget_add(&threads_busy, got);
        break;
#endif
    }
    ADD_RELAXED(&st_parallel, 1);
#if FSM_HELPERS
    fsm_slot *s = got > 1 && !backoff_skip() ? claim_slot(budget / 2 > 1 ? budget / 2 : 1) : NULL;
    if (!s && got > 1) {
        budget_add(&threads_busy, -(got - 1));
        got = 1;
    }
    hook_hold_caller(got);
    if (!s) {
        ADD_RELAXED(&st_alone, 1);
        run_alone(w);
        budget_add(&threads_busy, -got);
        return;
    }
    ADD(&slots_busy, 1);
    job_init(&s->job, w);
    s->team = got - 1;
    steer(s);
    STORE(&s->seq, s->seq + 1);  /* posts the call: the job is seen by whoever sees the new seq */
    wake(s);
    int64_t ran;
    participate(s, 0, 0, &ran);
    WAIT_UNTIL(s, LOAD_ACQ(&s->job.finished) == w->nphases);
    backoff_update(ran < total);
    budget_add(&threads_busy, -got);
#elif FSM_HAVE_OPENMP
    fsm_job j;
    job_init(&j, w);
#pragma omp parallel num_threads(got)
    participate_team(&j);
    budget_add(&threads_busy, -got);
#else
    run_alone(w);
    budget_add(&threads_busy, -got);
#endif
}

void fsm_thread_hooks(int flags, unsigned hold_got_mask, int cpu_cap)
{
#if FSM_HELPERS
    pthread_mutex_lock(&mu);
    hook_flags = flags;
    hook_hold_mask = hold_got_mask;
    hook_cpu_cap = cpu_cap;
    backoff_len = backoff_left = 0;
    pthread_cond_broadcast(&hook_cv);
    for (int i = 0; i < nslots; i++) pthread_cond_broadcast(&slots[i].cv);
    pthread_mutex_unlock(&mu);
#else
    hook_flags = flags;
    hook_hold_mask = hold_got_mask;
    hook_cpu_cap = cpu_cap;
#endif
}

void fsm_thread_state_get(fsm_thread_state *s)
{
    s->calls_parallel = ADD_RELAXED(&st_parallel, 0);
    s->calls_alone = ADD_RELAXED(&st_alone, 0);
    s->tasks_caller = ADD_RELAXED(&st_tasks_caller, 0);
    s->tasks_helper = ADD_RELAXED(&st_tasks_helper, 0);
    s->steered = ADD_RELAXED(&st_steered, 0);
    s->busy = LOAD((int *)&threads_busy);
#if FSM_HELPERS
    pthread_mutex_lock(&mu);
    s->helpers = nslots;
    s->helpers_busy = slots_busy;
    s->helpers_held = st_helpers_held;
    s->callers_held = st_callers_held;
    pthread_mutex_unlock(&mu);
#else
    s->helpers = s->helpers_busy = s->helpers_held = s->callers_held = 0;
#endif
}

const char *fsm_thread_mechanism(void)
{
#if FSM_HELPERS
    return "helper";
#elif FSM_HAVE_OPENMP
    return "team";
#else
    return "none";
#endif
}
