/*
 * The WebSocket stream at /v1/canary/stream: authentication, subscribe,
 * replay, live fan-out, outbound queues and liveness.
 */
#ifndef CANARY_STREAM_H
#define CANARY_STREAM_H

#include <stddef.h>

#include <libwebsockets.h>

#include "server.h"

#define STREAM_PATH "/v1/canary/stream"
#define STREAM_PROTOCOL_JSON "canary.v1.json"
#define STREAM_PROTOCOL_MSGPACK "canary.v1.msgpack"

/* The lws protocol callback for canary.v1.json and canary.v1.msgpack. */
int stream_callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len);

/* Size of the per-connection state lws allocates. */
size_t stream_session_size(void);

/* The signal log's publish hook: fans a committed batch out. */
void stream_publish(const struct sg_signal *sigs, size_t n, void *ctx);

/* Starts the once-a-second liveness, auth-timeout and revocation check. */
void stream_start_tick(struct server *srv);

/* Renews the replay budget of one event loop pass and wakes the replays
 * that waited for it; call it before each turn of the event loop. */
void stream_pass_begin(struct server *srv);

/* Applies srv->cfg.outbound_queue_bytes to every open connection's queue
 * after a reload and restarts their idle clocks; the other stream
 * settings are read where they are used. */
void stream_apply_config(struct server *srv);

/* Counts open stream connections whose key has exactly this domain list. */
uint64_t stream_count_tenant_connections(struct server *srv,
					 const char *tenant_domains);

/* Asks every connection to close with 1001 and stops the tick. */
void stream_shutdown(struct server *srv);

#endif
