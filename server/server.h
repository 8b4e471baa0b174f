/*
 * State shared by canaryd's HTTP and WebSocket handlers.
 *
 * Threading model: two threads.
 *
 *   event loop   a libev loop (epoll) that main.c runs a turn at a time,
 *                with lws on it as a foreign loop. It runs every callback:
 *                HTTP, the stream, the ingest WebSocket, timers, fan-out,
 *                replay reads and retention. Everything in struct server, every
 *                wsi, the subscription index and the outbound queues
 *                belong to this thread.
 *   writer       the signal log's thread (signal_log.c) assigns seqs and
 *                commits batches to LMDB, so that an fsync never holds up
 *                delivery. Between commits it runs the store's other
 *                writes as tasks: retention, pruning of old aggregates
 *                and, unless durability is full, the periodic sync. It
 *                touches only the store and the log's own locked lists,
 *                and wakes the loop with lws_cancel_service(), the one lws
 *                call that is safe from another thread.
 *
 * The loop handles the wake in LWS_CALLBACK_EVENT_WAIT_CANCELLED (http.c)
 * by calling slog_deliver, which publishes each committed batch in seq
 * order and answers its sender. A signal is therefore published only
 * after its commit, and publishes reach subscriptions in seq order; the
 * replay/live hand-over in stream.c relies on both. LMDB readers on the
 * loop thread run beside the writer (the store opens LMDB with MDB_NOTLS).
 * The loop thread opens no write transaction, and it calls fsync only at
 * stop, after the writer has ended.
 */
#ifndef CANARY_SERVER_H
#define CANARY_SERVER_H

#include <stdint.h>

#include <libwebsockets.h>

#include "config.h"
#include "filter.h"
#include "signal_log.h"
#include "store.h"

/* Largest text frame the server writes; several messages share one. */
#define SERVER_FRAME_MAX (64 * 1024)

enum close_reason_id {
	CLOSE_SLOW_CONSUMER,
	CLOSE_IDLE,
	CLOSE_AUTH,
	CLOSE_BAD_REQUEST,
	CLOSE_REVOKED,
	CLOSE_LIMIT,
	CLOSE_SHUTDOWN,
	CLOSE_PEER,
	CLOSE_REASON_COUNT
};

/* HTTP routes, for the request counters in /metrics. */
enum http_route_id {
	ROUTE_SIGNALS_GET,
	ROUTE_SIGNALS_POST,
	ROUTE_THREAT_FEED,
	ROUTE_CAMPAIGNS,
	ROUTE_STATS,
	ROUTE_HEALTHZ,
	ROUTE_METRICS,
	ROUTE_STREAM,
	ROUTE_CONSOLE,
	ROUTE_OTHER,
	ROUTE_COUNT
};

/* Response statuses counted one by one; metrics.c lists them, and the
 * last slot counts every other status. */
#define HTTP_STATUS_SLOTS 24

struct server_counters {
	uint64_t http_requests;
	uint64_t http_responses[ROUTE_COUNT][HTTP_STATUS_SLOTS];
	uint64_t ws_ingest_rate_limited;        /* WebSocket batches */
	uint64_t ws_connections_total;
	uint64_t ws_connections;        /* open now */
	uint64_t subscriptions;         /* open now */
	uint64_t deliveries;            /* signal messages queued */
	uint64_t replayed;              /* of which from replay */
	uint64_t closes[CLOSE_REASON_COUNT];
	uint64_t rejected_batches;
};

struct server {
	struct cd_config cfg;
	st_store *st;
	struct signal_log *slog;
	mt_index *subs;
	struct lws_context *ctx;
	struct lws_dll2_owner conns;    /* every WebSocket connection */
	struct server_counters counters;
	lws_sorted_usec_list_t tick;    /* liveness and key checks */
	char *frame;                    /* LWS_PRE + SERVER_FRAME_MAX bytes */
	struct sg_signal *replay_buf;   /* cfg.replay_chunk_signals entries */
	struct rl_table *ratelimit;     /* per-key token buckets */
	lws_sorted_usec_list_t analytics_tick;  /* prunes old aggregates */
	uint64_t next_conn_id;
	int64_t started_us;
	int shutting_down;
};

/* The server of the context that wsi belongs to. */
struct server *server_of(struct lws *wsi);

#endif
