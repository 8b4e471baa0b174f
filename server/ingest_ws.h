/*
 * The canary.v1.ingest WebSocket subprotocol: authenticated batches in,
 * one ack per commit out. The message rules are at the top of ingest_ws.c
 * and in the protocol reference.
 */
#ifndef CANARY_INGEST_WS_H
#define CANARY_INGEST_WS_H

#include <stddef.h>

#include <libwebsockets.h>

#include "server.h"

#define INGEST_WS_PATH "/v1/canary/signals"
#define INGEST_WS_PROTOCOL "canary.v1.ingest"

/* The lws protocol callback for canary.v1.ingest. */
int ingest_ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
		       void *user, void *in, size_t len);

/* Size of the per-connection state lws allocates. */
size_t ingest_ws_session_size(void);

#endif
