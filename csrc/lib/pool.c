/* The sleeping worker pool (contract in pool.h).
 *
 * Why POSIX threads asleep on a condition variable rather than an OpenMP region: OpenMP workers
 * spin after a region (GOMP_SPINCOUNT) and OpenBLAS workers spin after a GEMM; the LSTM driver
 * alternates its team with BLAS calls, so on two cores each pool's spinning thread stole the
 * core the other pool's working thread needed (2-thread runs 5-10x slower than 1-thread ones).
 * Waking a sleeping worker costs ~15 us on the 2-core VM against ~45 us to start and join a
 * thread, and an LSTM backward runs two teams per chunk of steps, so the workers are kept.
 */
#include <stdint.h>

#include <pthread.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#else
#include <fenv.h>
#endif

#include "lib/pool.h"

struct fs_pool_share {
    fs_pool_job_fn fn;
    void *arg;
    int tid, nt;
};

static void *fs_pool_share_main(void *p)
{
    struct fs_pool_share *s = (struct fs_pool_share *)p;
    s->fn(s->arg, s->tid, s->nt);
    return NULL;
}

/* fn(arg, tid, nt) for tid in [0, nt) on threads started for this call: tid 0 on the caller. If a
 * thread cannot be started, the caller runs that share itself (same result: shares are
 * independent). Used when the pool is busy. A thread started here inherits its creator's
 * floating-point mode. */
static void fs_pool_run_new_threads(int nt, fs_pool_job_fn fn, void *arg)
{
    pthread_t threads[FS_POOL_MAX_TEAM];
    struct fs_pool_share shares[FS_POOL_MAX_TEAM];
    int started[FS_POOL_MAX_TEAM];
    for (int t = 1; t < nt; ++t) {
        shares[t].fn = fn;
        shares[t].arg = arg;
        shares[t].tid = t;
        shares[t].nt = nt;
        started[t] = pthread_create(&threads[t], NULL, fs_pool_share_main, &shares[t]) == 0;
    }
    fn(arg, 0, nt);
    for (int t = 1; t < nt; ++t) {
        if (started[t])
            pthread_join(threads[t], NULL);
        else
            fn(arg, t, nt);
    }
}

/* A thread's floating-point mode (rounding, flush-to-zero / denormals-are-zero): a pool worker
 * takes the caller's with each job, so a team computes every row as the caller would
 * (bit-identical to a 1-thread call). */
#if defined(__x86_64__) || defined(__i386__)
struct fs_fpmode {
    unsigned int csr;   /* MXCSR: all SSE/AVX arithmetic state */
};
static void fs_fpmode_get(struct fs_fpmode *m) { m->csr = _mm_getcsr(); }
static void fs_fpmode_set(const struct fs_fpmode *m)
{
    if (_mm_getcsr() != m->csr)
        _mm_setcsr(m->csr);
}
#else
struct fs_fpmode {
    fenv_t env;
};
static void fs_fpmode_get(struct fs_fpmode *m) { fegetenv(&m->env); }
static void fs_fpmode_set(const struct fs_fpmode *m) { fesetenv(&m->env); }
#endif

/* The workers: started on first use and kept, each asleep on `wake` between jobs. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    int nworkers;          /* workers started; worker w runs share tid = w + 1 */
    int busy;              /* a call owns the pool */
    long gen;              /* job number, bumped per call */
    int pending;           /* shares of the current job not finished */
    fs_pool_job_fn fn;
    void *arg;
    int nt;
    struct fs_fpmode fp;                /* the caller's floating-point mode, for the workers */
    long first_gen[FS_POOL_MAX_TEAM];   /* the job a worker was started for (set under mu) */
} fs_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
             0, 0, 0, 0, NULL, NULL, 0, {0}, {0}};
static pthread_once_t fs_pool_once = PTHREAD_ONCE_INIT;

static void fs_pool_prepare(void) { pthread_mutex_lock(&fs_pool.mu); }
static void fs_pool_parent(void) { pthread_mutex_unlock(&fs_pool.mu); }
static void fs_pool_child(void)
{
    /* the workers do not exist in the child: forget them (the mutex was locked by prepare) */
    pthread_mutex_init(&fs_pool.mu, NULL);
    pthread_cond_init(&fs_pool.wake, NULL);
    pthread_cond_init(&fs_pool.done, NULL);
    fs_pool.nworkers = 0;
    fs_pool.busy = 0;
    fs_pool.pending = 0;
}
static void fs_pool_init(void) { pthread_atfork(fs_pool_prepare, fs_pool_parent, fs_pool_child); }

static void *fs_pool_worker(void *p)
{
    const int tid = (int)(intptr_t)p;
    pthread_mutex_lock(&fs_pool.mu);
    long seen = fs_pool.first_gen[tid] - 1;   /* so that it joins the job it was started for */
    for (;;) {
        while (fs_pool.gen == seen)
            pthread_cond_wait(&fs_pool.wake, &fs_pool.mu);
        seen = fs_pool.gen;
        if (tid >= fs_pool.nt)
            continue;                      /* a smaller team this time */
        const fs_pool_job_fn fn = fs_pool.fn;
        void *const arg = fs_pool.arg;
        const int nt = fs_pool.nt;
        const struct fs_fpmode fp = fs_pool.fp;
        pthread_mutex_unlock(&fs_pool.mu);
        fs_fpmode_set(&fp);
        fn(arg, tid, nt);
        pthread_mutex_lock(&fs_pool.mu);
        if (--fs_pool.pending == 0)
            pthread_cond_signal(&fs_pool.done);
    }
    return NULL;
}

void fs_pool_run(int nt, fs_pool_job_fn fn, void *arg)
{
    if (nt > FS_POOL_MAX_TEAM)
        nt = FS_POOL_MAX_TEAM;
    if (nt <= 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_once(&fs_pool_once, fs_pool_init);
    pthread_mutex_lock(&fs_pool.mu);
    if (fs_pool.busy) {
        pthread_mutex_unlock(&fs_pool.mu);
        fs_pool_run_new_threads(nt, fn, arg);
        return;
    }
    while (fs_pool.nworkers < nt - 1) {
        fs_pool.first_gen[fs_pool.nworkers + 1] = fs_pool.gen + 1;   /* this call's job */
        pthread_t th;
        pthread_attr_t attr;
        if (pthread_attr_init(&attr) != 0)
            break;
        int ok = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0;
        ok = ok && pthread_create(&th, &attr, fs_pool_worker,
                                  (void *)(intptr_t)(fs_pool.nworkers + 1)) == 0;
        pthread_attr_destroy(&attr);   /* after pthread_create, which reads it */
        if (!ok)
            break;
        ++fs_pool.nworkers;
    }
    if (nt > fs_pool.nworkers + 1)
        nt = fs_pool.nworkers + 1;
    fs_pool.busy = 1;
    fs_pool.fn = fn;
    fs_pool.arg = arg;
    fs_pool.nt = nt;
    fs_fpmode_get(&fs_pool.fp);
    fs_pool.pending = nt - 1;
    ++fs_pool.gen;
    pthread_cond_broadcast(&fs_pool.wake);
    pthread_mutex_unlock(&fs_pool.mu);
    fn(arg, 0, nt);
    pthread_mutex_lock(&fs_pool.mu);
    while (fs_pool.pending > 0)
        pthread_cond_wait(&fs_pool.done, &fs_pool.mu);
    fs_pool.busy = 0;
    pthread_mutex_unlock(&fs_pool.mu);
}
