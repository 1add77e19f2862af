/* A team of POSIX worker threads that sleep between jobs.
 *
 * fs_pool_run(nt, fn, arg) runs fn(arg, tid, nt') for tid in [0, nt'): tid 0 on the calling
 * thread, the others on the pool's workers, and returns when every share has finished. Shares
 * must be independent (no share waits for another), so the caller can also run one itself.
 *
 * Properties the kernels rely on:
 *  - idle workers sleep on a condition variable (a glibc condition wait does not spin), so they
 *    never compete for a core with BLAS's or OpenMP's spinning workers;
 *  - one call at a time owns the pool; a concurrent call (another Python thread) runs on threads
 *    started for it alone, and a thread that cannot be started has its share run by the caller;
 *  - each worker takes the caller's floating-point mode (MXCSR on x86) with each job, so a team
 *    computes every share as the caller would;
 *  - after fork() the child starts with an empty pool (pthread_atfork).
 * nt' = nt unless workers could not be started (then as many as there are); every share of one
 * job sees the same nt'.
 */
#ifndef FS_POOL_H
#define FS_POOL_H

/* Largest team (workers + the caller). */
#define FS_POOL_MAX_TEAM 64

typedef void (*fs_pool_job_fn)(void *arg, int tid, int nt);

void fs_pool_run(int nt, fs_pool_job_fn fn, void *arg);

#endif /* FS_POOL_H */
