/*
 * State shared by canaryd's HTTP and WebSocket handlers.
 *
 * Threading model: one thread. libwebsockets' event loop runs every
 * callback, LMDB commits happen inside the ingest callback, and the
 * commit's publish step fans out to subscriber queues before the
 * callback returns. A subscription therefore sees commits and live
 * publishes in one order, which is what makes the hand-over from replay
 * to live exact.
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

struct server_counters {
	uint64_t http_requests;
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
	uint64_t next_conn_id;
	int64_t started_us;
	int shutting_down;
};

/* The server of the context that wsi belongs to. */
struct server *server_of(struct lws *wsi);

#endif
