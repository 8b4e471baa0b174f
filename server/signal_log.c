#include "signal_log.h"

#include <stdlib.h>
#include <time.h>

#include "log.h"

struct signal_log {
	st_store *st;
	slog_publish_fn publish;
	void *ctx;
	struct slog_stats stats;
};

struct signal_log *slog_new(st_store *st, slog_publish_fn publish, void *ctx)
{
	struct signal_log *log = calloc(1, sizeof(*log));

	if (!log)
		return NULL;
	log->st = st;
	log->publish = publish;
	log->ctx = ctx;
	return log;
}

void slog_free(struct signal_log *log)
{
	free(log);
}

static uint64_t monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int slog_append(struct signal_log *log, struct sg_signal *sigs, size_t n,
		uint64_t *first, uint64_t *last)
{
	int64_t now = sg_now_us();
	uint64_t started, took;
	int rc;

	for (size_t i = 0; i < n; i++)
		sigs[i].received_us = now;

	started = monotonic_us();
	rc = st_append(log->st, sigs, n);
	took = monotonic_us() - started;
	if (rc != ST_OK) {
		log->stats.failures++;
		log_error("commit of a batch of %zu signals failed: %s", n,
			  st_strerror(rc));
		return rc;
	}

	log->stats.batches++;
	log->stats.signals += n;
	log->stats.commit_us_total += took;
	if (took > log->stats.commit_us_max)
		log->stats.commit_us_max = took;
	*first = sigs[0].seq;
	*last = sigs[n - 1].seq;

	/* Publish strictly after the commit, so that whatever a subscriber
	 * receives can be replayed from the store later. */
	if (log->publish)
		log->publish(sigs, n, log->ctx);
	return ST_OK;
}

void slog_get_stats(const struct signal_log *log, struct slog_stats *out)
{
	*out = log->stats;
}
