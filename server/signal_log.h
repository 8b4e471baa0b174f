/*
 * The signal log: the one place where a batch is assigned its seq values,
 * committed, and only then published to subscribers. Every ingest path
 * goes through slog_append, so that moving sequencing to a shared log
 * (for example a NATS JetStream stream whose sequence becomes seq) changes
 * this module alone.
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

struct signal_log;

struct signal_log *slog_new(st_store *st, slog_publish_fn publish,
			    void *ctx);
void slog_free(struct signal_log *log);

/*
 * Stamps received_us, assigns consecutive seq values, commits durably and
 * then publishes. Returns ST_OK with *first and *last set, or the store's
 * error with nothing stored and nothing published.
 */
int slog_append(struct signal_log *log, struct sg_signal *sigs, size_t n,
		uint64_t *first, uint64_t *last);

/* Counters since start, for /metrics and /healthz. */
struct slog_stats {
	uint64_t batches;
	uint64_t signals;
	uint64_t failures;
	uint64_t commit_us_total;
	uint64_t commit_us_max;
};
void slog_get_stats(const struct signal_log *log, struct slog_stats *out);

#endif
