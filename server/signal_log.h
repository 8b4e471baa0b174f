/*
 * The signal log: the one place where a batch is assigned its seq values,
 * committed, and only then published to subscribers. Every ingest path
 * goes through slog_submit, so that moving sequencing to a shared log
 * (for example a NATS JetStream stream whose sequence becomes seq) changes
 * this module alone.
 *
 * Threading: a writer thread owns every append. The event loop thread
 * submits a batch and returns to serving connections at once; the writer
 * commits queued batches (several at a time in one LMDB transaction when
 * they pile up), then puts them on a done list and wakes the loop through
 * a wake function that only calls lws_cancel_service(). On the loop
 * thread, slog_deliver publishes each committed batch in seq order and
 * calls its done function. Publishing and done callbacks therefore never
 * run on the writer thread, and a signal is published only after its
 * commit. Every function here except the writer's own loop is called on
 * the event loop thread.
 *
 * The store's other write transactions (retention, pruning, periodic
 * syncs) run on the writer thread too, as tasks between commits
 * (slog_run_task), so the event loop waits for LMDB's write lock or an
 * fsync only in the final sync at stop.
 */
#ifndef CANARY_SIGNAL_LOG_H
#define CANARY_SIGNAL_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "signal/signal.h"
#include "store.h"

/* Called after a commit, on the event loop thread, with the batch in seq
 * order. */
typedef void (*slog_publish_fn)(const struct sg_signal *sigs, size_t n,
				void *ctx);

/*
 * Called on the event loop thread once a submitted batch is committed
 * (status ST_OK, first and last set) or failed (the store's error, nothing
 * stored or published). Not called for a detached job.
 */
typedef void (*slog_done_fn)(void *owner, int status, uint64_t first,
			     uint64_t last, size_t count);

/* Wakes the event loop from the writer thread; it must only call
 * lws_cancel_service() or something as thread-safe. */
typedef void (*slog_wake_fn)(void *arg);

struct signal_log;
struct slog_job;

/* Returns a log that is not yet running, or NULL when out of memory. */
struct signal_log *slog_new(st_store *st, slog_publish_fn publish,
			    void *ctx);

/* Starts the writer thread. Returns 0, or -1 when the thread could not
 * be created. */
int slog_start(struct signal_log *log, slog_wake_fn wake, void *wake_arg);

/*
 * Lets the writer commit every queued batch, stops it and joins it. The
 * batches committed then get no done call and are not published; jobs
 * stay valid (slog_job_detach may still be called) until slog_free.
 */
void slog_stop(struct signal_log *log);

/* Stops the writer if it runs and frees the log and every job. NULL is
 * allowed. */
void slog_free(struct signal_log *log);

/*
 * Queues sigs (n >= 1, malloc'd; the log takes ownership and frees it) for
 * commit. Returns the job, which stays valid until its done call or
 * slog_job_detach, or NULL when out of memory (sigs is then freed too).
 * done may be NULL.
 */
struct slog_job *slog_submit(struct signal_log *log, struct sg_signal *sigs,
			     size_t n, slog_done_fn done, void *owner);

/*
 * Like slog_submit, for a batch the client named (HTTP Idempotency-Key).
 * When a batch with this key was committed before, nothing is stored or
 * published and done receives the first commit's seqs; the same key with
 * another number of signals ends with ST_ERR_EXISTS.
 */
struct slog_job *slog_submit_keyed(struct signal_log *log,
				   struct sg_signal *sigs, size_t n,
				   const char *batch_key, slog_done_fn done,
				   void *owner);

/* Forgets the job's owner (its connection closed): the batch is still
 * committed and published, but done is not called. */
void slog_job_detach(struct slog_job *job);

/* A task's work, run on the writer thread with the store; returns a
 * status for the done function. */
typedef int (*slog_task_fn)(st_store *st, void *arg);
/* Called on the event loop thread with what the task's work returned. */
typedef void (*slog_task_done_fn)(void *arg, int status);

/*
 * Queues run(st, arg) for the writer thread, which runs it after the
 * commit in progress, then calls done(arg, status) through slog_deliver.
 * Runs one task after each commit, so a task should do a bounded amount
 * of work and be queued again for the rest. Tasks still queued at stop
 * are dropped without a done call. Returns 0, or -1 when out of memory.
 */
int slog_run_task(struct signal_log *log, slog_task_fn run,
		  slog_task_done_fn done, void *arg);

/* Publishes the batches committed since the last call and calls their
 * done functions, in seq order, and the done functions of finished tasks.
 * Call it when the wake function fired. */
void slog_deliver(struct signal_log *log);

/* The last seq published to subscribers; every seq up to it is
 * committed. Later seqs may be committed but not yet published. */
uint64_t slog_published_head(const struct signal_log *log);

/* Upper bounds of the commit duration histogram, in microseconds. */
#define SLOG_COMMIT_BOUNDS 12
extern const uint64_t slog_commit_bounds_us[SLOG_COMMIT_BOUNDS];

/* Counters since start, for /metrics and /healthz. */
struct slog_stats {
	uint64_t batches;       /* submitted batches committed */
	uint64_t replayed_batches; /* named batches found already committed */
	uint64_t signals;
	uint64_t failures;
	uint64_t commits;       /* LMDB transactions; one may hold batches */
	uint64_t commit_us_total;
	uint64_t commit_us_max;
	uint64_t queued;        /* batches waiting for the writer now */
	uint64_t by_event_type[SG_EVENT_COUNT]; /* signals committed */
	/* commits by duration: [i] counts those above the bound i - 1 and
	 * at most slog_commit_bounds_us[i]; the last slot those above all */
	uint64_t commit_hist[SLOG_COMMIT_BOUNDS + 1];
};
void slog_get_stats(struct signal_log *log, struct slog_stats *out);

#endif
