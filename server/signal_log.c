/*
 * The signal log's writer thread and the hand-over of committed batches
 * to the event loop. The rules are in signal_log.h.
 *
 * Jobs move through two lists guarded by one mutex: `pending` (submitted,
 * waiting for the writer) and `done` (committed or failed, waiting for the
 * loop). The writer takes every pending job at once, up to
 * GROUP_MAX_SIGNALS signals, and commits them in one transaction: one
 * fsync for many batches is what lets ingest pass 100,000 signals/s. When
 * such a group fails, each batch is retried alone, so a batch stays all or
 * nothing and gets its own reply.
 *
 * Tasks (the store's other writes) move through their own two lists the
 * same way; the writer runs one after each commit.
 */
#include "signal_log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* Most signals one grouped commit takes; a larger single batch still
 * commits alone. */
#define GROUP_MAX_SIGNALS 65536

struct slog_job {
	struct slog_job *next;
	struct sg_signal *sigs;
	size_t n;
	slog_done_fn done;      /* loop thread only */
	void *owner;            /* loop thread only; NULL once detached */
	int status;             /* set by the writer */
	char batch_key[ST_BATCH_KEY_MAX + 1];   /* "" for an unnamed batch */
	bool replayed;          /* stored before under batch_key */
	uint64_t first, last;   /* the batch's seqs, once committed */
};

struct job_list {
	struct slog_job *first, *last;
};

struct slog_task {
	struct slog_task *next;
	slog_task_fn run;       /* writer thread */
	slog_task_done_fn done; /* loop thread */
	void *arg;
	int status;             /* what run returned */
};

struct task_list {
	struct slog_task *first, *last;
};

struct signal_log {
	st_store *st;
	slog_publish_fn publish;
	void *ctx;
	slog_wake_fn wake;
	void *wake_arg;
	uint64_t published_head;        /* loop thread only */

	pthread_t thread;
	bool running;
	pthread_mutex_t lock;           /* guards everything below */
	pthread_cond_t cond;
	bool stop;
	struct job_list pending;
	struct job_list done;
	struct task_list tasks;         /* waiting for the writer */
	struct task_list tasks_done;    /* run, waiting for the loop */
	struct slog_stats stats;
};

static void list_append(struct job_list *l, struct slog_job *job)
{
	job->next = NULL;
	if (l->last)
		l->last->next = job;
	else
		l->first = job;
	l->last = job;
}

static void task_list_append(struct task_list *l, struct slog_task *task)
{
	task->next = NULL;
	if (l->last)
		l->last->next = task;
	else
		l->first = task;
	l->last = task;
}

static void task_list_free(struct task_list *l)
{
	while (l->first) {
		struct slog_task *task = l->first;

		l->first = task->next;
		free(task);
	}
	l->last = NULL;
}

static void list_free(struct job_list *l)
{
	while (l->first) {
		struct slog_job *job = l->first;

		l->first = job->next;
		free(job->sigs);
		free(job);
	}
	l->last = NULL;
}

static uint64_t monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct signal_log *slog_new(st_store *st, slog_publish_fn publish, void *ctx)
{
	struct signal_log *log = calloc(1, sizeof(*log));

	if (!log)
		return NULL;
	log->st = st;
	log->publish = publish;
	log->ctx = ctx;
	log->published_head = st_head_seq(st);
	pthread_mutex_init(&log->lock, NULL);
	pthread_cond_init(&log->cond, NULL);
	return log;
}

/* ---- the writer thread ---- */

/* Commits one job, named or not, and records the timing. Called without
 * the lock. */
static int commit_job(struct signal_log *log, struct slog_job *job,
		      uint64_t *took)
{
	uint64_t started = monotonic_us();
	int rc;

	if (!job->batch_key[0]) {
		rc = st_append(log->st, job->sigs, job->n);
		if (rc == ST_OK) {
			job->first = job->sigs[0].seq;
			job->last = job->sigs[job->n - 1].seq;
		}
	} else {
		rc = st_append_keyed(log->st, job->sigs, job->n, job->batch_key,
				     &job->first, &job->last, &job->replayed);
	}
	*took = monotonic_us() - started;
	return rc;
}

/* Commits sigs and records the timing. Called without the lock. */
static int commit_signals(struct signal_log *log, struct sg_signal *sigs,
			  size_t n, uint64_t *took)
{
	uint64_t started = monotonic_us();
	int rc = st_append(log->st, sigs, n);

	*took = monotonic_us() - started;
	return rc;
}

/*
 * Commits a group of jobs in one transaction when it has more than one,
 * copying their signals into scratch and the assigned seqs back. Returns
 * 0 when the group committed, -1 when the caller must commit each job
 * alone.
 */
static int commit_group(struct signal_log *log, struct slog_job *group,
			size_t total, struct sg_signal **scratch,
			size_t *scratch_cap, uint64_t *took)
{
	size_t at = 0;

	if (total > *scratch_cap) {
		struct sg_signal *bigger = realloc(*scratch, total * sizeof(**scratch));

		if (!bigger)
			return -1;
		*scratch = bigger;
		*scratch_cap = total;
	}
	for (struct slog_job *j = group; j; j = j->next) {
		memcpy(*scratch + at, j->sigs, j->n * sizeof(*j->sigs));
		at += j->n;
	}
	if (commit_signals(log, *scratch, total, took) != ST_OK)
		return -1;

	at = 0;
	/* Copy back whole signals: the commit assigned seq and, where the
	 * sensor sent none, campaign_id, and live subscribers must see what
	 * a replay will read. */
	for (struct slog_job *j = group; j; j = j->next) {
		memcpy(j->sigs, *scratch + at, j->n * sizeof(*j->sigs));
		at += j->n;
		j->first = j->sigs[0].seq;
		j->last = j->sigs[j->n - 1].seq;
		j->status = ST_OK;
	}
	return 0;
}

/* Takes pending jobs, oldest first, up to GROUP_MAX_SIGNALS signals (at
 * least one job). A named batch commits alone, because its key decides
 * whether it is stored at all. Called with the lock held. */
static struct slog_job *take_group(struct signal_log *log, size_t *total,
				   size_t *count)
{
	struct slog_job *group = log->pending.first;
	struct slog_job *tail = group;

	*total = tail->n;
	*count = 1;
	while (!group->batch_key[0] && tail->next && !tail->next->batch_key[0] &&
	       *total + tail->next->n <= GROUP_MAX_SIGNALS) {
		tail = tail->next;
		*total += tail->n;
		(*count)++;
	}
	log->pending.first = tail->next;
	if (!log->pending.first)
		log->pending.last = NULL;
	tail->next = NULL;
	return group;
}

const uint64_t slog_commit_bounds_us[SLOG_COMMIT_BOUNDS] = {
	250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
	500000, 1000000,
};

static void record_commit(struct signal_log *log, uint64_t took)
{
	size_t slot = 0;

	while (slot < SLOG_COMMIT_BOUNDS && took > slog_commit_bounds_us[slot])
		slot++;
	log->stats.commit_hist[slot]++;
	log->stats.commits++;
	log->stats.commit_us_total += took;
	if (took > log->stats.commit_us_max)
		log->stats.commit_us_max = took;
}

/*
 * Commits the oldest pending jobs as one group and moves them to the done
 * list. Called with the lock held; releases it while committing.
 */
static void commit_pending(struct signal_log *log, struct sg_signal **scratch,
			   size_t *scratch_cap)
{
	struct slog_job *group = NULL;
	size_t total = 0, count = 0;
	uint64_t took = 0;
	int64_t now = 0;
	bool grouped = false;

	group = take_group(log, &total, &count);
	log->stats.queued -= count;
	pthread_mutex_unlock(&log->lock);

	now = sg_now_us();
	for (struct slog_job *j = group; j; j = j->next)
		for (size_t i = 0; i < j->n; i++)
			j->sigs[i].received_us = now;

	if (count > 1 &&
	    commit_group(log, group, total, scratch, scratch_cap, &took) == 0) {
		grouped = true;
		pthread_mutex_lock(&log->lock);
		record_commit(log, took);
		pthread_mutex_unlock(&log->lock);
	}
	for (struct slog_job *j = group; j && !grouped; j = j->next) {
		j->status = commit_job(log, j, &took);
		pthread_mutex_lock(&log->lock);
		record_commit(log, took);
		pthread_mutex_unlock(&log->lock);
		if (j->status != ST_OK)
			log_error("commit of a batch of %zu signals failed: %s",
				  j->n, st_strerror(j->status));
	}

	pthread_mutex_lock(&log->lock);
	while (group) {
		struct slog_job *next = group->next;

		if (group->status == ST_OK && group->replayed) {
			log->stats.replayed_batches++;
		} else if (group->status == ST_OK) {
			log->stats.batches++;
			log->stats.signals += group->n;
			for (size_t i = 0; i < group->n; i++)
				log->stats.by_event_type[group->sigs[i].event_type %
							 SG_EVENT_COUNT]++;
		} else {
			log->stats.failures++;
		}
		list_append(&log->done, group);
		group = next;
	}
}

/* Runs the oldest pending task and moves it to the done list. Called with
 * the lock held; releases it while the task runs. */
static void run_task(struct signal_log *log)
{
	struct slog_task *task = log->tasks.first;

	log->tasks.first = task->next;
	if (!log->tasks.first)
		log->tasks.last = NULL;
	pthread_mutex_unlock(&log->lock);

	task->status = task->run(log->st, task->arg);

	pthread_mutex_lock(&log->lock);
	task_list_append(&log->tasks_done, task);
}

static void *writer_main(void *arg)
{
	struct signal_log *log = arg;
	struct sg_signal *scratch = NULL;
	size_t scratch_cap = 0;

	pthread_mutex_lock(&log->lock);
	for (;;) {
		while (!log->stop && !log->pending.first && !log->tasks.first)
			pthread_cond_wait(&log->cond, &log->lock);
		/* At stop, what is queued is still committed; tasks are
		 * maintenance and are dropped. */
		if (!log->pending.first && (log->stop || !log->tasks.first))
			break;
		/* Commits go first, but one task runs after each group, so
		 * that steady ingest cannot starve maintenance. */
		if (log->pending.first)
			commit_pending(log, &scratch, &scratch_cap);
		if (log->tasks.first && !log->stop)
			run_task(log);
		/* Why outside any loop state: wake only calls
		 * lws_cancel_service(), which is safe from this thread. */
		if (log->wake)
			log->wake(log->wake_arg);
	}
	pthread_mutex_unlock(&log->lock);
	free(scratch);
	return NULL;
}

int slog_start(struct signal_log *log, slog_wake_fn wake, void *wake_arg)
{
	log->wake = wake;
	log->wake_arg = wake_arg;
	if (pthread_create(&log->thread, NULL, writer_main, log) != 0) {
		log_error("cannot start the signal log's writer thread");
		return -1;
	}
	log->running = true;
	return 0;
}

void slog_stop(struct signal_log *log)
{
	if (!log->running)
		return;
	pthread_mutex_lock(&log->lock);
	log->stop = true;
	pthread_cond_signal(&log->cond);
	pthread_mutex_unlock(&log->lock);
	pthread_join(log->thread, NULL);
	log->running = false;
}

void slog_free(struct signal_log *log)
{
	if (!log)
		return;
	slog_stop(log);
	list_free(&log->pending);
	list_free(&log->done);
	task_list_free(&log->tasks);
	task_list_free(&log->tasks_done);
	pthread_cond_destroy(&log->cond);
	pthread_mutex_destroy(&log->lock);
	free(log);
}

/* ---- the event loop side ---- */

struct slog_job *slog_submit(struct signal_log *log, struct sg_signal *sigs,
			     size_t n, slog_done_fn done, void *owner)
{
	return slog_submit_keyed(log, sigs, n, NULL, done, owner);
}

struct slog_job *slog_submit_keyed(struct signal_log *log,
				   struct sg_signal *sigs, size_t n,
				   const char *batch_key, slog_done_fn done,
				   void *owner)
{
	struct slog_job *job = calloc(1, sizeof(*job));

	if (!job || !n || (batch_key && strlen(batch_key) > ST_BATCH_KEY_MAX)) {
		free(job);
		free(sigs);
		return NULL;
	}
	if (batch_key)
		snprintf(job->batch_key, sizeof(job->batch_key), "%s", batch_key);
	job->sigs = sigs;
	job->n = n;
	job->done = done;
	job->owner = owner;

	pthread_mutex_lock(&log->lock);
	list_append(&log->pending, job);
	log->stats.queued++;
	pthread_cond_signal(&log->cond);
	pthread_mutex_unlock(&log->lock);
	return job;
}

int slog_run_task(struct signal_log *log, slog_task_fn run,
		  slog_task_done_fn done, void *arg)
{
	struct slog_task *task = calloc(1, sizeof(*task));

	if (!task)
		return -1;
	task->run = run;
	task->done = done;
	task->arg = arg;

	pthread_mutex_lock(&log->lock);
	task_list_append(&log->tasks, task);
	pthread_cond_signal(&log->cond);
	pthread_mutex_unlock(&log->lock);
	return 0;
}

void slog_job_detach(struct slog_job *job)
{
	if (job)
		job->owner = NULL;
}

void slog_deliver(struct signal_log *log)
{
	struct slog_job *job = NULL;
	struct slog_task *task = NULL;

	pthread_mutex_lock(&log->lock);
	job = log->done.first;
	log->done.first = log->done.last = NULL;
	task = log->tasks_done.first;
	log->tasks_done.first = log->tasks_done.last = NULL;
	pthread_mutex_unlock(&log->lock);

	while (task) {
		struct slog_task *next = task->next;

		if (task->done)
			task->done(task->arg, task->status);
		free(task);
		task = next;
	}

	while (job) {
		struct slog_job *next = job->next;
		uint64_t first = 0, last = 0;

		if (job->status == ST_OK && job->replayed) {
			/* Stored and published when it first came. */
			first = job->first;
			last = job->last;
		} else if (job->status == ST_OK) {
			first = job->first;
			last = job->last;
			log->published_head = last;
			/* Publish strictly after the commit, so that whatever
			 * a subscriber receives can be replayed later. */
			if (log->publish)
				log->publish(job->sigs, job->n, log->ctx);
		}
		if (job->owner && job->done)
			job->done(job->owner, job->status, first, last, job->n);
		free(job->sigs);
		free(job);
		job = next;
	}
}

uint64_t slog_published_head(const struct signal_log *log)
{
	return log->published_head;
}

void slog_get_stats(struct signal_log *log, struct slog_stats *out)
{
	pthread_mutex_lock(&log->lock);
	*out = log->stats;
	pthread_mutex_unlock(&log->lock);
}
