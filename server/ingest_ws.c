/*
 * The ingest WebSocket: subprotocol canary.v1.ingest on /v1/canary/signals
 * (and on /v1/canary/stream), for sensors that send many batches.
 *
 * Authentication works as on the stream: an Authorization: Bearer header
 * on the upgrade request, or a first text message
 * {"op":"auth","token":"KEY"} within auth_timeout_s. The key needs the
 * ingest scope; the server then sends {"type":"welcome",...}.
 *
 * After that each message is one batch, all or nothing, as in HTTP
 * ingest: a binary message is MessagePack (one map or an array of maps);
 * a text message whose first non-blank character is '[' is a JSON array,
 * any other text is NDJSON (one object per line, so a single object is a
 * batch of one). Messages may be up to max_body_bytes.
 *
 * Up to INGEST_INFLIGHT_MAX batches per connection wait for their commit
 * at once, so the signal log can commit a pipelining sensor's batches
 * together; at that count reading pauses (lws rx flow control) until one
 * commits. After each commit the server sends {"type":"ack","batch":K,
 * "accepted":N,"first_seq":A,"last_seq":B}, acks in the order the batches
 * were sent, and for a rejected batch at once an error message naming
 * each bad item; the connection stays open. K numbers the connection's
 * batch messages from 1, so an error that overtakes the acks of earlier
 * batches still names its batch. Replies are JSON text frames.
 *
 * A connection that sends no message for idle_timeout_s is closed (a
 * WebSocket ping does not count); a quiet sensor reconnects when it has
 * something to send. The key is checked again before each batch,
 * so a revoked key ends the connection with 4403. Each batch takes one
 * token of the key's rate limit (rate_limit_per_s), like an HTTP ingest
 * request; a batch over the limit gets a rate_limited error with
 * retry_after_s and is not stored.
 */
#include "ingest_ws.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signal/batch.h"
#include "http.h"
#include "keys.h"
#include "log.h"
#include "outq.h"
#include "ratelimit.h"

/* Replies are small; this bounds a connection that never reads. */
#define INGEST_REPLY_QUEUE_BYTES (1024 * 1024)
/* First size of the receive buffer; it doubles up to max_body_bytes. */
#define INGEST_RX_START (64 * 1024)
/* Batches of one connection waiting for their commit, at most. */
#define INGEST_INFLIGHT_MAX 16

struct ingest_conn {
	struct lws *wsi;
	struct server *srv;
	uint64_t id;
	int authed;
	int closing;
	uint16_t close_code;
	char close_reason[64];
	char key_id[ST_KEY_ID_LEN + 1];
	char *tenant_domains;           /* NULL: all domains */
	/* Batches waiting for their commit, oldest first; the log finishes
	 * them in this order. */
	struct slog_job *jobs[INGEST_INFLIGHT_MAX];
	uint64_t job_batch[INGEST_INFLIGHT_MAX];
	uint64_t batches;               /* batch messages received */
	unsigned jobs_first;
	unsigned jobs_count;
	struct outq q;                  /* replies */
	char *rx;
	size_t rx_len;
	size_t rx_cap;
	int rx_binary;
};

static uint64_t ingest_open;

size_t ingest_ws_session_size(void)
{
	return sizeof(struct ingest_conn);
}

/* Schedules a close with code and reason at the next writable callback. */
static void ic_close(struct ingest_conn *ic, uint16_t code, const char *reason,
		     enum close_reason_id why)
{
	if (ic->closing)
		return;
	ic->closing = 1;
	ic->close_code = code;
	snprintf(ic->close_reason, sizeof(ic->close_reason), "%s", reason);
	ic->srv->counters.closes[why]++;
	log_info("closing ingest connection %" PRIu64 " (key %s) with %u: %s",
		 ic->id, ic->key_id[0] ? ic->key_id : "-", code, reason);
	lws_callback_on_writable(ic->wsi);
}

/* Queues a JSON reply (reference stolen). */
static void ic_send(struct ingest_conn *ic, json_t *msg)
{
	char *text = msg ? json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	struct sbuf *b = text ? sbuf_from(text, strlen(text)) : NULL;

	json_decref(msg);
	free(text);
	if (!b)
		return;
	if (outq_push(&ic->q, "", 0, b, "", 0))
		ic_close(ic, 4008, "slow consumer: replies are not read",
			 CLOSE_SLOW_CONSUMER);
	sbuf_unref(b);
	lws_callback_on_writable(ic->wsi);
}

static void ic_send_error(struct ingest_conn *ic, uint64_t batch,
			  const char *code, const char *message)
{
	ic_send(ic, json_pack("{s:s, s:I, s:s, s:s}", "type", "error", "batch",
			      (json_int_t)batch, "code", code, "message", message));
}

/* Sends the problems of a rejected batch, as HTTP ingest's 400 lists
 * them: index (null for the whole message), field and reason. */
static void ic_send_rejection(struct ingest_conn *ic,
			      const struct sg_batch_report *rep)
{
	json_t *errors = json_array();
	char message[160], place[64];

	for (size_t i = 0; i < rep->listed; i++) {
		const struct sg_batch_problem *p = &rep->problems[i];
		json_t *index = p->index == SG_BATCH_WHOLE_BODY
					? json_null()
					: json_integer((json_int_t)p->index);

		json_array_append_new(errors,
				      json_pack("{s:o, s:s, s:s}", "index", index,
						"field", p->error.field, "reason",
						p->error.reason));
	}
	snprintf(message, sizeof(message),
		 "%zu problem%s found; nothing from this batch was stored",
		 rep->total, rep->total == 1 ? "" : "s");
	ic->srv->counters.rejected_batches++;
	log_info("ingest connection %" PRIu64 ": rejected a batch from key %s: %zu problem%s, the first in %s; nothing stored",
		 ic->id, ic->key_id, rep->total, rep->total == 1 ? "" : "s",
		 sg_batch_report_first_place(rep, place, sizeof(place)));
	ic_send(ic, json_pack("{s:s, s:I, s:s, s:s, s:o, s:I}", "type", "error",
			      "batch", (json_int_t)ic->batches, "code", "invalid_batch",
			      "message", message, "errors", errors, "error_count",
			      (json_int_t)rep->total));
}

/* ---- authentication ---- */

static void ic_authenticate(struct ingest_conn *ic, const char *token)
{
	struct st_key key;
	enum auth_result r = auth_check_token(ic->srv->st, token, ST_SCOPE_INGEST,
					      &key);
	char name[64];

	if (r == AUTH_FORBIDDEN) {
		st_key_clear(&key);
		ic_close(ic, 4403, "key lacks the ingest scope", CLOSE_AUTH);
		return;
	}
	if (r != AUTH_OK) {
		ic_close(ic, 4401, r == AUTH_STORE_ERROR ? "key check failed, retry later"
							 : "unknown or revoked key",
			 CLOSE_AUTH);
		return;
	}
	ic->authed = 1;
	snprintf(ic->key_id, sizeof(ic->key_id), "%s", key.id);
	if (key.domains)
		ic->tenant_domains = strdup(key.domains);
	st_key_clear(&key);
	lws_set_timeout(ic->wsi, PENDING_TIMEOUT_USER_OK,
			(int)ic->srv->cfg.idle_timeout_s);
	log_info("ingest connection %" PRIu64 " authenticated with key %s", ic->id,
		 ic->key_id);
	snprintf(name, sizeof(name), "canaryd/%s", CANARY_VERSION);
	ic_send(ic, json_pack("{s:s, s:s, s:s, s:I}", "type", "welcome", "server",
			      name, "epoch", st_epoch(ic->srv->st), "head_seq",
			      (json_int_t)slog_published_head(ic->srv->slog)));
}

/* Handles the first message of an unauthenticated connection. */
static void ic_handle_auth(struct ingest_conn *ic, const char *text, size_t len)
{
	char err[200];
	json_t *msg = ic->rx_binary ? NULL
				    : sg_json_parse_strict(text, len, err, sizeof(err));
	const char *op = json_string_value(json_object_get(msg, "op"));
	const char *token = json_string_value(json_object_get(msg, "token"));

	if (!op || strcmp(op, "auth") || !token)
		ic_close(ic, 4401, "authenticate first: {\"op\":\"auth\",\"token\":KEY}",
			 CLOSE_AUTH);
	else if (strlen(token) > KEY_TOKEN_MAX)
		ic_close(ic, 4401, "token is too long", CLOSE_AUTH);
	else
		ic_authenticate(ic, token);
	json_decref(msg);
}

/* Returns 0 while the key exists and is not revoked; else closes. */
static int ic_key_still_valid(struct ingest_conn *ic)
{
	struct st_key key;
	int rc = st_key_find_by_id(ic->srv->st, ic->key_id, &key);

	if (rc == ST_OK) {
		int revoked = key.revoked_us != 0;

		st_key_clear(&key);
		if (!revoked)
			return 0;
	}
	if (rc != ST_OK && rc != ST_ERR_NOT_FOUND) {
		ic_send_error(ic, ic->batches, "unavailable",
			      "the key store could not be read; send the batch again");
		return -1;
	}
	ic_close(ic, 4403, "key revoked", CLOSE_REVOKED);
	return -1;
}

/* ---- batches ---- */

/* Takes one token of the key's rate limit, as an HTTP ingest request
 * does. Returns 0 when allowed, else sends a rate_limited error. */
static int ic_rate_limited(struct ingest_conn *ic)
{
	struct rl_result r;
	char message[160];

	if (!ic->srv->ratelimit)
		return 0;
	rl_take(ic->srv->ratelimit, ic->key_id, (int64_t)lws_now_usecs(), &r);
	if (r.allowed)
		return 0;
	ic->srv->counters.ws_ingest_rate_limited++;
	snprintf(message, sizeof(message),
		 "key %s is over its rate limit; nothing from this batch was stored; send it again in %" PRIu64 " s",
		 ic->key_id, r.retry_after_s);
	ic_send(ic, json_pack("{s:s, s:I, s:s, s:s, s:I}", "type", "error", "batch",
			      (json_int_t)ic->batches, "code", "rate_limited",
			      "message", message, "retry_after_s",
			      (json_int_t)r.retry_after_s));
	return -1;
}

/* Sends the ack or the commit error; runs on the event loop thread. */
static void ic_committed(void *owner, int rc, uint64_t first, uint64_t last,
			 size_t count)
{
	struct ingest_conn *ic = owner;
	uint64_t batch = ic->job_batch[ic->jobs_first];

	ic->jobs_first = (ic->jobs_first + 1) % INGEST_INFLIGHT_MAX;
	if (ic->jobs_count-- == INGEST_INFLIGHT_MAX)
		lws_rx_flow_control(ic->wsi, 1);
	if (rc == ST_ERR_MAP_FULL) {
		ic_send_error(ic, batch, "store_full",
			      "the store reached map_size_max_bytes; nothing from this batch was stored; retry later");
		return;
	}
	if (rc != ST_OK) {
		ic_send_error(ic, batch, "commit_failed",
			      "the batch could not be committed; nothing was stored; send it again");
		return;
	}
	ic_send(ic, json_pack("{s:s, s:I, s:I, s:I, s:I}", "type", "ack", "batch",
			      (json_int_t)batch, "accepted", (json_int_t)count,
			      "first_seq", (json_int_t)first, "last_seq", (json_int_t)last));
}

static enum sg_format text_format(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' ||
		    text[i] == '\n')
			continue;
		return text[i] == '[' ? SG_FORMAT_JSON : SG_FORMAT_NDJSON;
	}
	return SG_FORMAT_NDJSON;
}

static void ic_handle_batch(struct ingest_conn *ic, const char *data, size_t len)
{
	struct server *srv = ic->srv;
	enum sg_format fmt = ic->rx_binary ? SG_FORMAT_MSGPACK : text_format(data, len);
	struct sg_batch batch = { NULL, 0 };
	struct sg_batch_report *rep = calloc(1, sizeof(*rep));
	struct slog_job *job = NULL;

	ic->batches++;
	if (!rep) {
		ic_send_error(ic, ic->batches, "unavailable", "out of memory; send the batch again");
		return;
	}
	if (ic_key_still_valid(ic) || ic_rate_limited(ic))
		goto out;
	if (sg_batch_parse(data, len, fmt, srv->cfg.max_batch_signals, &batch, rep) ||
	    http_check_clock(srv->cfg.max_clock_ahead_s, sg_now_us(), &batch, rep) ||
	    (ic->tenant_domains &&
	     http_check_tenant_domains(ic->tenant_domains, &batch, rep))) {
		ic_send_rejection(ic, rep);
		goto out;
	}

	job = slog_submit(srv->slog, batch.items, batch.count, ic_committed, ic);
	batch.items = NULL;
	batch.count = 0;
	if (!job) {
		ic_send_error(ic, ic->batches, "unavailable", "out of memory; send the batch again");
		goto out;
	}
	ic->jobs[(ic->jobs_first + ic->jobs_count) % INGEST_INFLIGHT_MAX] = job;
	ic->job_batch[(ic->jobs_first + ic->jobs_count) % INGEST_INFLIGHT_MAX] = ic->batches;
	if (++ic->jobs_count == INGEST_INFLIGHT_MAX)
		lws_rx_flow_control(ic->wsi, 0);

out:
	sg_batch_free(&batch);
	free(rep);
}

/* Collects the fragments of one message, up to max_body_bytes. */
static int ic_receive(struct ingest_conn *ic, const char *in, size_t len)
{
	size_t max = ic->srv->cfg.max_body_bytes;

	if (ic->closing)
		return 0;
	if (lws_is_first_fragment(ic->wsi)) {
		ic->rx_len = 0;
		ic->rx_binary = lws_frame_is_binary(ic->wsi);
	}
	if (ic->rx_len + len > max) {
		char reason[64];

		snprintf(reason, sizeof(reason), "batch over max_body_bytes (%zu)", max);
		ic_close(ic, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, reason,
			 CLOSE_BAD_REQUEST);
		return 0;
	}
	if (ic->rx_len + len > ic->rx_cap) {
		size_t cap = ic->rx_cap ? ic->rx_cap : INGEST_RX_START;
		char *bigger = NULL;

		while (cap < ic->rx_len + len)
			cap *= 2;
		if (cap > max)
			cap = max;
		bigger = realloc(ic->rx, cap);
		if (!bigger) {
			ic_close(ic, 1011, "out of memory", CLOSE_LIMIT);
			return 0;
		}
		ic->rx = bigger;
		ic->rx_cap = cap;
	}
	memcpy(ic->rx + ic->rx_len, in, len);
	ic->rx_len += len;

	if (!lws_is_final_fragment(ic->wsi) || lws_remaining_packet_payload(ic->wsi))
		return 0;
	if (!ic->authed)
		ic_handle_auth(ic, ic->rx, ic->rx_len);
	else
		ic_handle_batch(ic, ic->rx, ic->rx_len);
	ic->rx_len = 0;
	/* A large buffer is given back once its batch is parsed. */
	if (ic->rx_cap > INGEST_RX_START) {
		free(ic->rx);
		ic->rx = NULL;
		ic->rx_cap = 0;
	}
	return 0;
}

static int ic_writable(struct ingest_conn *ic)
{
	char *buf = ic->srv->frame + LWS_PRE;
	size_t len;

	if (ic->closing && !ic->q.first) {
		lws_close_reason(ic->wsi, (enum lws_close_status)ic->close_code,
				 (unsigned char *)ic->close_reason,
				 strlen(ic->close_reason));
		return -1;
	}
	/* One reply per frame: an ingest client reads one message at a
	 * time. */
	len = outq_first_size(&ic->q);
	if (len > SERVER_FRAME_MAX)
		return -1;
	len = outq_take_frame(&ic->q, buf, len, 1);
	if (len && lws_write(ic->wsi, (unsigned char *)buf, len, LWS_WRITE_TEXT) < (int)len)
		return -1;
	if (ic->q.first || ic->closing)
		lws_callback_on_writable(ic->wsi);
	return 0;
}

/* ---- the lws callback ---- */

static int ic_uri_allowed(struct lws *wsi)
{
	char uri[64];

	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
		return 0;
	return !strcmp(uri, INGEST_WS_PATH) || !strcmp(uri, "/v1/canary/stream");
}

static void ic_established(struct ingest_conn *ic, struct lws *wsi)
{
	struct server *srv = server_of(wsi);
	int len;

	memset(ic, 0, sizeof(*ic));
	ic->wsi = wsi;
	ic->srv = srv;
	ic->id = ++srv->next_conn_id;
	outq_init(&ic->q, INGEST_REPLY_QUEUE_BYTES);
	ingest_open++;
	srv->counters.ws_connections_total++;

	if (srv->shutting_down) {
		ic_close(ic, 1001, "server shutting down", CLOSE_SHUTDOWN);
		return;
	}
	if (srv->counters.ws_connections + ingest_open > srv->cfg.max_connections) {
		ic_close(ic, 4429, "too many connections, retry later", CLOSE_LIMIT);
		return;
	}
	len = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (len > 0) {
		char value[KEY_TOKEN_MAX + 64];
		char token[KEY_TOKEN_MAX + 1];

		if (len >= (int)sizeof(value) ||
		    lws_hdr_copy(wsi, value, sizeof(value),
				 WSI_TOKEN_HTTP_AUTHORIZATION) < 0 ||
		    auth_parse_bearer(value, token) != AUTH_OK) {
			ic_close(ic, 4401, "malformed Authorization header", CLOSE_AUTH);
			return;
		}
		ic_authenticate(ic, token);
		return;
	}
	lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, (int)srv->cfg.auth_timeout_s);
}

static void ic_closed(struct ingest_conn *ic)
{
	if (!ic->srv)
		return;
	for (unsigned i = 0; i < ic->jobs_count; i++)
		slog_job_detach(ic->jobs[(ic->jobs_first + i) % INGEST_INFLIGHT_MAX]);
	outq_clear(&ic->q);
	free(ic->rx);
	free(ic->tenant_domains);
	ingest_open--;
	log_debug("ingest connection %" PRIu64 " closed", ic->id);
	ic->srv = NULL;
}

int ingest_ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
		       void *user, void *in, size_t len)
{
	struct ingest_conn *ic = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return ic_uri_allowed(wsi) ? 0 : 1;

	case LWS_CALLBACK_ESTABLISHED:
		ic_established(ic, wsi);
		return 0;

	case LWS_CALLBACK_RECEIVE:
		if (ic->authed)
			lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK,
					(int)ic->srv->cfg.idle_timeout_s);
		return ic_receive(ic, in, len);

	case LWS_CALLBACK_RECEIVE_PONG:
		if (ic->authed)
			lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK,
					(int)ic->srv->cfg.idle_timeout_s);
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		return ic_writable(ic);

	case LWS_CALLBACK_CLOSED:
		ic_closed(ic);
		return 0;

	default:
		return 0;
	}
}
