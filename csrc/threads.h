/*
 * The thread runner (threads.c): runs the tasks of one call on the calling thread plus, when the
 * budget allows, an OpenMP team started by a persistent helper thread. The driver (rows.c,
 * rows_dtype.h) cuts each call into tasks whose boundaries depend on the shape only; threads.c
 * decides who runs them. The policy and its reasoning are in threads.c's header comment.
 */
#ifndef FSM_THREADS_H
#define FSM_THREADS_H

#include <stdint.h>

#define FSM_MAX_PHASES 2

/* Task `task` (0-based within `phase`). *local is the running thread's own pointer for this call
   (NULL at its first task; the runner frees it when that thread leaves the call). */
typedef void (*fsm_task_fn)(void *ctx, int phase, int64_t task, void **local);
/* Run once, by one thread, after every task of `phase` has finished and before any task of phase + 1 starts. */
typedef void (*fsm_between_fn)(void *ctx, int phase);

typedef struct {
    fsm_task_fn task;
    fsm_between_fn between;   /* may be NULL */
    void *ctx;
    int nphases;              /* 1..FSM_MAX_PHASES */
    int64_t ntasks[FSM_MAX_PHASES];
} fsm_work;

/* The threads a call of `work` elements in `tasks` independent tasks may use (requested <= 0: the default). */
int fsm_plan_threads(int requested, int64_t work, int64_t tasks);
/* Run every task of w, phases in order, on up to `threads` threads (the result of fsm_plan_threads). */
void fsm_run(const fsm_work *w, int threads);

/* Test hooks and counters (fastsoftmax._core._thread_hooks / _thread_state; never used otherwise). */
typedef struct {
    int64_t calls_parallel;   /* calls that planned more than one thread */
    int64_t calls_alone;      /* ... of which ran on the caller alone (budget spent, or no idle helper) */
    int64_t tasks_caller;     /* tasks run by calling threads in parallel calls */
    int64_t tasks_helper;     /* tasks run by helper-team threads */
    int64_t steered;          /* times a helper's affinity was set to leave out its caller's CPU */
    int busy;                 /* threads the shared budget has handed out now */
    int helpers;              /* helper threads alive in this process */
    int helpers_busy;         /* helper threads whose team has not finished its last call */
    int helpers_held;         /* helper-team threads stopped by the hold-helpers hook */
    int callers_held;         /* calling threads stopped by the hold-callers hook */
} fsm_thread_state;

#define FSM_HOOK_HOLD_HELPERS 1   /* helper-team threads stop before their first claim until cleared */
#define FSM_HOOK_WAIT_HELPER 2    /* a caller with a helper waits (up to 10 s) until a helper has claimed a task */
/* hold_got_mask: a caller that was granted g threads stops after the grant while bit g is set. */
void fsm_thread_hooks(int flags, unsigned hold_got_mask, int cpu_cap);
void fsm_thread_state_get(fsm_thread_state *s);
const char *fsm_thread_mechanism(void);   /* "helper", "team" (no pthreads: a plain OpenMP team) or "none" */

#endif
