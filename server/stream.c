/*
 * The WebSocket stream.
 *
 * Each connection holds up to max_subscriptions subscriptions. A
 * subscription is either replaying (reading the store in chunks after its
 * cursor) or live (receiving fan-out from stream_publish). Its cursor is
 * the last seq it has passed, delivered or not, and nothing with a seq at
 * or below the cursor is ever queued for it again.
 *
 * Hand-over from replay to live: while a subscription replays, live
 * publishes skip it, because every published signal is already committed
 * and the replay will read it. When a replay chunk comes back short, the
 * replay has read everything committed at that moment. Commits happen on
 * the signal log's writer thread, but publishes run on this thread, and a
 * batch is published only after its commit, so every seq up to the
 * published head was visible to that read. The cursor moves to the last
 * seq read (at least the published head) and the subscription turns live:
 * a batch committed during or after the read is either published later
 * with larger seqs, which are delivered, or was already read by the
 * replay, and its publish is dropped by the `seq <= cursor` check. The
 * cursor is never moved to the store's committed head, which can be ahead
 * of what the replay read.
 *
 * Wire formats: canary.v1.json sends JSON text frames, several messages
 * separated by '\n'; canary.v1.msgpack sends the same messages as
 * MessagePack maps, back to back in binary frames. A signal is encoded
 * once per format per publish, and the bytes are shared by every queue.
 * Clients of either protocol may send their messages as JSON text, and
 * msgpack clients also as MessagePack maps in binary frames.
 *
 * Replay is flow-controlled: a chunk is read only while the outbound queue
 * is under half its limit. Live fan-out is not: a live subscriber whose
 * queue would pass outbound_queue_bytes is closed with 4008 and resumes
 * from its cursor.
 */
#include "stream.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "signal/batch.h"
#include "keys.h"
#include "log.h"
#include "outq.h"

#define SUB_ID_MAX 64
/* Deepest nesting of a client's MessagePack message, as for JSON input. */
#define MESSAGE_DEPTH_MAX 32
/* Chunks one writable callback may scan for a sparse filter. */
#define REPLAY_CHUNKS_PER_WRITE 8
/* Replay reads a chunk only while the queue holds less than this (or half
 * of outbound_queue_bytes, if smaller). Thousands of clients replaying
 * at once after a restart then use about two frames of memory each, not
 * megabytes. */
#define REPLAY_QUEUE_MARK (2 * SERVER_FRAME_MAX)
/*
 * Signals that all replays together may read in one pass of the event
 * loop. lws serves every ready socket in one pass, so without a cap a
 * storm of thousands of replaying clients makes each pass take seconds,
 * and /healthz or ingest wait that long for each of their steps.
 * TODO: a storm decodes and encodes the same signals once per client. A
 * shared cache of encoded signals by seq would divide that cost by the
 * number of clients.
 */
#define REPLAY_SIGNALS_PER_PASS 4096

static size_t replay_pass_budget = REPLAY_SIGNALS_PER_PASS;

/* Connections whose replay found the pass budget spent, in arrival order;
 * stream_pass_begin wakes as many as the next pass can serve. */
static struct lws_dll2_owner replay_waiters;
/* Connections that stream_publish queued signals for, written at its end. */
static struct lws_dll2_owner flush_waiters;
#define KEY_RECHECK_US (2 * 1000000)
/* The liveness check visits every connection once a second, a slice of
 * them at a time: one pass over 10,000 connections held up delivery for
 * about 2 ms (release build, 2-core VM). */
#define TICK_SLICES 10
#define TICK_US (1000000 / TICK_SLICES)
/* The next connection the liveness check visits; NULL: the list's head. */
static struct lws_dll2 *tick_cursor;

enum sub_state { SUB_REPLAY, SUB_LIVE };

struct conn;

struct sub {
	struct sub *next;
	struct conn *conn;
	mt_filter *filter;
	enum sub_state state;
	uint64_t cursor;
	int64_t min_observed_us;        /* since_time, else INT64_MIN */
	char id[SUB_ID_MAX + 1];
	/* The envelope in front of the shared signal bytes:
	 * {"type":"signal","sub":"ID","signal": for JSON, or the map header
	 * and the first two pairs for MessagePack. */
	char head[OUTQ_HEAD_MAX];
	size_t head_len;
};

struct conn {
	struct lws *wsi;
	struct server *srv;
	struct lws_dll2 node;
	uint64_t id;
	int authed;
	int key_counted;                /* counted in key_counts */
	int binary;                     /* canary.v1.msgpack */
	int rx_binary;                  /* the message being received */
	int closing;
	int drain_before_close;         /* write the queue, then the close */
	int close_counted;              /* its reason is in counters.closes */
	int replay_starved;             /* the pass budget ran out */
	struct lws_dll2 replay_wait;    /* in replay_waiters while starved */
	struct lws_dll2 flush_wait;     /* in flush_waiters during a publish */
	int want_ping;
	uint16_t close_code;
	char close_reason[64];
	char key_id[ST_KEY_ID_LEN + 1];
	char *tenant_domains;           /* NULL: all domains */
	struct outq q;
	struct sub *subs;
	unsigned nsubs;
	char *rx;
	size_t rx_len;
	int64_t connected_us;
	int64_t last_rx_us;
	int64_t last_ping_us;
	int64_t key_checked_us;
};

size_t stream_session_size(void)
{
	return sizeof(struct conn);
}

/* ---- queueing and closing ---- */

/* Asks for the connection to close with code and reason at its next
 * writable callback; used where the close is decided outside the
 * connection's own callback. */
static void conn_close_later(struct conn *c, uint16_t code, const char *reason,
			     enum close_reason_id why)
{
	if (c->closing)
		return;
	c->closing = 1;
	/* A client that sent a bad message still gets the replies to its
	 * earlier messages, which are queued ahead of the close. */
	c->drain_before_close = why == CLOSE_BAD_REQUEST;
	c->close_code = code;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	c->srv->counters.closes[why]++;
	c->close_counted = 1;
	log_info("closing connection %" PRIu64 " (key %s) with %u: %s", c->id,
		 c->key_id[0] ? c->key_id : "-", code, reason);
	/* The liveness check skips closing connections, and a peer that no
	 * longer reads never makes the socket writable for the close frame:
	 * lws drops such a connection after idle_timeout_s. */
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, (int)c->srv->cfg.idle_timeout_s);
	lws_callback_on_writable(c->wsi);
}

/* Schedules the close like conn_close_later and returns 0, for use as the
 * return value of the connection's own callback. Returning -1 from a
 * receive callback in the middle of a fragmented message is unsafe in
 * lws 4.1, so every close goes through the writable callback. */
static int conn_close_soon(struct conn *c, uint16_t code, const char *reason,
			   enum close_reason_id why)
{
	conn_close_later(c, code, reason, why);
	return 0;
}

/* ---- MessagePack forms of the control messages ---- */

/* Control messages are built as JSON values; msgpack connections get
 * them packed with the same member names and types. */
static int pack_json(msgpack_packer *pk, const json_t *v, int depth)
{
	const char *key = NULL;
	json_t *member = NULL;
	size_t i = 0;

	if (depth > MESSAGE_DEPTH_MAX)
		return -1;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		msgpack_pack_map(pk, json_object_size(v));
		json_object_foreach((json_t *)v, key, member) {
			msgpack_pack_str_with_body(pk, key, strlen(key));
			if (pack_json(pk, member, depth + 1))
				return -1;
		}
		return 0;
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(v));
		json_array_foreach(v, i, member)
			if (pack_json(pk, member, depth + 1))
				return -1;
		return 0;
	case JSON_STRING:
		return msgpack_pack_str_with_body(pk, json_string_value(v),
						  json_string_length(v));
	case JSON_INTEGER:
		return msgpack_pack_int64(pk, json_integer_value(v));
	case JSON_REAL:
		return msgpack_pack_double(pk, json_real_value(v));
	case JSON_TRUE:
		return msgpack_pack_true(pk);
	case JSON_FALSE:
		return msgpack_pack_false(pk);
	case JSON_NULL:
		return msgpack_pack_nil(pk);
	}
	return -1;
}

/* Returns msg in the connection's wire format as a new shared buffer. */
static struct sbuf *encode_control(const struct conn *c, const json_t *msg)
{
	struct sbuf *b = NULL;
	char *text = NULL;

	if (c->binary) {
		msgpack_sbuffer sb;
		msgpack_packer pk;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		if (!pack_json(&pk, msg, 0))
			b = sbuf_from(sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		return b;
	}
	text = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text)
		b = sbuf_from(text, strlen(text));
	free(text);
	return b;
}

/* Returns a new JSON object from a MessagePack map whose keys are unique
 * strings without NUL, or NULL. */
static json_t *json_from_msgpack(const msgpack_object *o, int depth);

static json_t *json_object_from_msgpack(const msgpack_object *o, int depth)
{
	json_t *out = json_object();

	for (uint32_t i = 0; out && i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];
		char key[64];
		json_t *val = NULL;

		if (kv->key.type != MSGPACK_OBJECT_STR ||
		    kv->key.via.str.size >= sizeof(key))
			goto fail;
		memcpy(key, kv->key.via.str.ptr, kv->key.via.str.size);
		key[kv->key.via.str.size] = '\0';
		/* Duplicate keys are rejected, as in JSON input. */
		if (strlen(key) != kv->key.via.str.size || json_object_get(out, key))
			goto fail;
		val = json_from_msgpack(&kv->val, depth + 1);
		if (!val || json_object_set_new(out, key, val))
			goto fail;
	}
	return out;

fail:
	json_decref(out);
	return NULL;
}

/*
 * Turns a MessagePack value from a client into a JSON value, so that both
 * formats go through one message handler. Strings must be valid UTF-8 and
 * integers within int64. Returns a new reference or NULL.
 */
static json_t *json_from_msgpack(const msgpack_object *o, int depth)
{
	json_t *out = NULL;

	if (depth > MESSAGE_DEPTH_MAX)
		return NULL;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return o->via.u64 > INT64_MAX ? NULL
					      : json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR:
		/* json_stringn rejects invalid UTF-8 and returns NULL. */
		return json_stringn(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_ARRAY:
		out = json_array();
		for (uint32_t i = 0; out && i < o->via.array.size; i++) {
			json_t *item = json_from_msgpack(&o->via.array.ptr[i], depth + 1);

			if (!item || json_array_append_new(out, item)) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	case MSGPACK_OBJECT_MAP:
		return json_object_from_msgpack(o, depth);
	default:
		return NULL;
	}
}

/* Parses one binary message: exactly one MessagePack value. Returns a new
 * reference or NULL. */
static json_t *parse_msgpack_message(const char *data, size_t len)
{
	msgpack_unpacked result;
	size_t off = 0;
	json_t *msg = NULL;

	msgpack_unpacked_init(&result);
	if (msgpack_unpack_next(&result, data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
	    off == len)
		msg = json_from_msgpack(&result.data, 0);
	msgpack_unpacked_destroy(&result);
	return msg;
}

/* Queues a control message given as a JSON object (reference stolen). */
static void conn_send_json(struct conn *c, json_t *msg)
{
	struct sbuf *b;

	if (!msg)
		return;
	b = encode_control(c, msg);
	json_decref(msg);
	if (!b)
		return;
	if (outq_push(&c->q, "", 0, b, "", 0))
		conn_close_later(c, 4008, "slow consumer", CLOSE_SLOW_CONSUMER);
	sbuf_unref(b);
	lws_callback_on_writable(c->wsi);
}

static void conn_send_error(struct conn *c, const char *code,
			    const char *message, const char *ref)
{
	json_t *msg = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code,
				"message", message);

	if (msg && ref)
		json_object_set_new(msg, "ref", json_string(ref));
	log_debug("connection %" PRIu64 ": %s: %s", c->id, code, message);
	conn_send_json(c, msg);
}

/* Encodes one signal's JSON text, or its MessagePack map when binary,
 * into a shared buffer. */
static struct sbuf *encode_signal(const struct sg_signal *s, int binary)
{
	char text[4096];
	size_t len = 0;

	if (binary) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		struct sbuf *b = NULL;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		if (!sg_to_msgpack(s, &pk, false))
			b = sbuf_from(sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		return b;
	}
	len = sg_to_json_text(s, text, sizeof(text));
	if (len >= sizeof(text))
		return NULL;
	return sbuf_from(text, len);
}

/* Writes the envelope that goes in front of each signal of sub. */
static void sub_make_head(struct sub *sub, int binary)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (!binary) {
		sub->head_len = (size_t)snprintf(sub->head, sizeof(sub->head),
						 "{\"type\":\"signal\",\"sub\":\"%s\",\"signal\":",
						 sub->id);
		return;
	}
	/* {"type":"signal","sub":ID,"signal":<the shared map>}; at most
	 * 1 + 5 + 7 + 4 + 2 + 64 + 7 bytes, within OUTQ_HEAD_MAX. */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "type", 4);
	msgpack_pack_str_with_body(&pk, "signal", 6);
	msgpack_pack_str_with_body(&pk, "sub", 3);
	msgpack_pack_str_with_body(&pk, sub->id, strlen(sub->id));
	msgpack_pack_str_with_body(&pk, "signal", 6);
	memcpy(sub->head, sb.data, sb.size);
	sub->head_len = sb.size;
	msgpack_sbuffer_destroy(&sb);
}

/* Queues a signal for one subscription. Returns 0, or -1 when the queue
 * is over its limit (the connection is then closing). */
static int sub_push(struct sub *sub, struct sbuf *body)
{
	struct conn *c = sub->conn;
	int binary = c->binary;

	if (outq_push(&c->q, sub->head, sub->head_len, body, binary ? "" : "}",
		      binary ? 0 : 1)) {
		conn_close_later(c, 4008, "slow consumer", CLOSE_SLOW_CONSUMER);
		return -1;
	}
	c->srv->counters.deliveries++;
	return 0;
}

/* ---- subscriptions ---- */

static struct sub *sub_find(struct conn *c, const char *id)
{
	for (struct sub *s = c->subs; s; s = s->next)
		if (!strcmp(s->id, id))
			return s;
	return NULL;
}

static void sub_free(struct server *srv, struct sub *s)
{
	mt_index_remove(srv->subs, s->filter);
	mt_filter_free(s->filter);
	free(s);
	srv->counters.subscriptions--;
}

static int sub_id_valid(const char *id)
{
	size_t len = strlen(id);

	if (!len || len > SUB_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = id[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
		      ch == '.' || ch == ':'))
			return 0;
	}
	return 1;
}

/* Reads since_seq, given as a JSON integer or a string of decimal digits
 * (clients whose numbers are doubles cannot send every u64 exactly). */
static int parse_since_seq(const json_t *v, uint64_t *out)
{
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);

		if (n < 0)
			return -1;
		*out = (uint64_t)n;
		return 0;
	}
	if (json_is_string(v)) {
		const char *t = json_string_value(v);
		uint64_t n = 0;

		if (!*t || strlen(t) > 20)
			return -1;
		for (; *t; t++) {
			if (*t < '0' || *t > '9')
				return -1;
			if (n > (UINT64_MAX - (uint64_t)(*t - '0')) / 10)
				return -1;
			n = n * 10 + (uint64_t)(*t - '0');
		}
		*out = n;
		return 0;
	}
	return -1;
}

static void send_gap(struct conn *c, const char *sub, uint64_t from,
		     uint64_t to, const char *reason)
{
	conn_send_json(c, json_pack("{s:s, s:s, s:I, s:I, s:s}", "type", "gap",
				    "sub", sub, "from", (json_int_t)from, "to",
				    (json_int_t)to, "reason", reason));
}

/*
 * Decides where a replay starts. Sends a gap first when the cursor comes
 * from another store (reason epoch: the whole of this store follows) or
 * points into deleted history (reason retention).
 */
static void sub_start_replay(struct conn *c, struct sub *sub,
			     const json_t *msg, uint64_t since_seq,
			     int has_seq, int64_t since_time)
{
	struct server *srv = c->srv;
	uint64_t head = st_head_seq(srv->st);
	uint64_t oldest = st_oldest_seq(srv->st);
	const json_t *epoch = json_object_get(msg, "epoch");

	sub->state = SUB_REPLAY;
	if (!has_seq) {
		uint64_t first = head + 1;

		if (st_first_seq_observed_since(srv->st, since_time, &first) != ST_OK)
			first = oldest;
		sub->cursor = first ? first - 1 : 0;
		sub->min_observed_us = since_time;
		return;
	}

	if ((json_is_string(epoch) &&
	     strcmp(json_string_value(epoch), st_epoch(srv->st))) ||
	    since_seq > head) {
		send_gap(c, sub->id, 1, since_seq, "epoch");
		sub->cursor = oldest ? oldest - 1 : 0;
		return;
	}
	if (since_seq != 0 && since_seq + 1 < oldest)
		send_gap(c, sub->id, since_seq + 1, oldest - 1, "retention");
	sub->cursor = since_seq + 1 < oldest ? oldest - 1 : since_seq;
}

static void handle_subscribe(struct conn *c, const json_t *msg)
{
	struct server *srv = c->srv;
	const json_t *jid = json_object_get(msg, "id");
	const json_t *jseq = json_object_get(msg, "since_seq");
	const json_t *jtime = json_object_get(msg, "since_time");
	const char *id;
	struct sub *sub = NULL;
	mt_filter *filter = NULL;
	uint64_t since_seq = 0;
	int64_t since_time = 0;
	char err[256];

	if (!json_is_string(jid) || !sub_id_valid(json_string_value(jid))) {
		conn_send_error(c, "invalid_request",
				"subscribe needs an \"id\": 1 to 64 characters from A-Z a-z 0-9 . _ : -",
				NULL);
		return;
	}
	id = json_string_value(jid);
	if (sub_find(c, id)) {
		conn_send_error(c, "duplicate_subscription",
				"a subscription with this id is open; unsubscribe it first or pick another id",
				id);
		return;
	}
	if (c->nsubs >= srv->cfg.max_subscriptions) {
		snprintf(err, sizeof(err),
			 "this connection already holds %u subscriptions, the maximum; unsubscribe one first",
			 c->nsubs);
		conn_send_error(c, "too_many_subscriptions", err, id);
		return;
	}
	if (jseq && jtime) {
		conn_send_error(c, "invalid_request",
				"give since_seq or since_time, not both", id);
		return;
	}
	if (jseq && parse_since_seq(jseq, &since_seq)) {
		conn_send_error(c, "invalid_request",
				"since_seq must be a non-negative integer below 2^64 (a JSON integer or a string of digits)",
				id);
		return;
	}
	if (jtime && (!json_is_string(jtime) ||
		      sg_time_parse(json_string_value(jtime), &since_time))) {
		conn_send_error(c, "invalid_request",
				"since_time must be an RFC 3339 time with an offset, such as 2026-01-03T00:00:00Z",
				id);
		return;
	}
	if (json_array_size(json_object_get(json_object_get(msg, "filter"), "domains")) >
	    srv->cfg.max_filter_domains) {
		snprintf(err, sizeof(err),
			 "filter.domains lists %zu domains, more than max_filter_domains (%" PRIu64
			 "); split the watchlist over several subscriptions",
			 json_array_size(json_object_get(json_object_get(msg, "filter"), "domains")),
			 srv->cfg.max_filter_domains);
		conn_send_error(c, "invalid_filter", err, id);
		return;
	}
	if (mt_filter_parse(json_object_get(msg, "filter"), &filter, err,
			    sizeof(err))) {
		conn_send_error(c, "invalid_filter", err, id);
		return;
	}
	if (c->tenant_domains &&
	    mt_filter_restrict(filter, c->tenant_domains, err, sizeof(err))) {
		mt_filter_free(filter);
		conn_send_error(c, "internal_error", "the key's domain list is invalid", id);
		return;
	}

	sub = calloc(1, sizeof(*sub));
	if (!sub || mt_index_add(srv->subs, filter, sub)) {
		free(sub);
		mt_filter_free(filter);
		conn_send_error(c, "internal_error", "out of memory", id);
		return;
	}
	sub->conn = c;
	sub->filter = filter;
	sub->min_observed_us = INT64_MIN;
	snprintf(sub->id, sizeof(sub->id), "%s", id);
	sub_make_head(sub, c->binary);
	sub->next = c->subs;
	c->subs = sub;
	c->nsubs++;
	srv->counters.subscriptions++;

	conn_send_json(c, json_pack("{s:s, s:s, s:I}", "type", "subscribed", "id",
				    sub->id, "head_seq",
				    (json_int_t)slog_published_head(srv->slog)));
	if (jseq || jtime) {
		sub_start_replay(c, sub, msg, since_seq, jseq != NULL, since_time);
	} else {
		/* Live from the published head: a batch committed but not yet
		 * published has larger seqs and is delivered when published. */
		sub->state = SUB_LIVE;
		sub->cursor = slog_published_head(srv->slog);
	}
	log_debug("connection %" PRIu64 ": subscription %s open, cursor %" PRIu64,
		  c->id, sub->id, sub->cursor);
}

static void handle_unsubscribe(struct conn *c, const json_t *msg)
{
	const json_t *jid = json_object_get(msg, "id");
	struct sub **pp;

	if (!json_is_string(jid)) {
		conn_send_error(c, "invalid_request", "unsubscribe needs the subscription's \"id\"",
				NULL);
		return;
	}
	for (pp = &c->subs; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->id, json_string_value(jid))) {
			struct sub *gone = *pp;

			*pp = gone->next;
			c->nsubs--;
			sub_free(c->srv, gone);
			conn_send_json(c, json_pack("{s:s, s:s}", "type",
						    "unsubscribed", "id",
						    json_string_value(jid)));
			return;
		}
	}
	conn_send_error(c, "unknown_subscription", "no subscription with this id is open",
			sub_id_valid(json_string_value(jid)) ? json_string_value(jid) : NULL);
}

/* ---- authentication ---- */

static void conn_welcome(struct conn *c)
{
	struct server *srv = c->srv;
	char name[64];

	snprintf(name, sizeof(name), "canaryd/%s", CANARY_VERSION);
	conn_send_json(c, json_pack("{s:s, s:s, s:s, s:I}", "type", "welcome",
				    "server", name, "epoch", st_epoch(srv->st),
				    "head_seq",
				    (json_int_t)slog_published_head(srv->slog)));
}

/* ---- connections per key ---- */

/*
 * Authenticated stream connections per key id, for max_connections_per_key.
 * Only keys with open connections have an entry, so the table stays as
 * small as the number of keys in use. One event-loop thread uses it.
 * NOTE: ingest WebSockets (ingest_ws.c) count toward max_connections but
 * not toward this table.
 */
#define KEY_COUNT_BUCKETS 256

struct key_count {
	struct key_count *next;
	uint64_t open;
	char id[ST_KEY_ID_LEN + 1];
};

static struct key_count *key_counts[KEY_COUNT_BUCKETS];

static struct key_count **key_count_find(const char *id)
{
	uint32_t h = 2166136261u;
	struct key_count **pp;

	for (const char *p = id; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	pp = &key_counts[h % KEY_COUNT_BUCKETS];
	while (*pp && strcmp((*pp)->id, id))
		pp = &(*pp)->next;
	return pp;
}

/* Counts one more connection of key id. Returns 0, or -1 when the key
 * already has max open connections or memory ran out. */
static int key_count_acquire(const char *id, uint64_t max)
{
	struct key_count **pp = key_count_find(id);

	if (!*pp) {
		*pp = calloc(1, sizeof(**pp));
		if (!*pp)
			return -1;
		snprintf((*pp)->id, sizeof((*pp)->id), "%s", id);
	}
	if ((*pp)->open >= max)
		return -1;
	(*pp)->open++;
	return 0;
}

static void key_count_release(const char *id)
{
	struct key_count **pp = key_count_find(id);
	struct key_count *gone = *pp;

	if (!gone)
		return;
	if (--gone->open == 0) {
		*pp = gone->next;
		free(gone);
	}
}

/* Checks a token for the subscribe scope. Returns 0 when the connection is
 * now authenticated, or -1 with the close status set. */
static int conn_authenticate(struct conn *c, const char *token)
{
	struct st_key key;
	enum auth_result r = auth_check_token(c->srv->st, token,
					      ST_SCOPE_SUBSCRIBE, &key);

	if (r == AUTH_FORBIDDEN) {
		log_info("connection %" PRIu64 ": key %s lacks the subscribe scope",
			 c->id, key.id);
		st_key_clear(&key);
		return conn_close_soon(c, 4403, "key lacks the subscribe scope",
				      CLOSE_AUTH);
	}
	if (r != AUTH_OK)
		return conn_close_soon(c, 4401,
				      r == AUTH_STORE_ERROR ? "key check failed, retry later"
							    : "unknown or revoked key",
				      CLOSE_AUTH);

	if (key_count_acquire(key.id, c->srv->cfg.max_connections_per_key)) {
		log_info("connection %" PRIu64 ": key %s is at max_connections_per_key (%" PRIu64 ")",
			 c->id, key.id, c->srv->cfg.max_connections_per_key);
		st_key_clear(&key);
		return conn_close_soon(c, 4429, "too many connections for this key, retry later",
				      CLOSE_LIMIT);
	}
	c->key_counted = 1;
	c->authed = 1;
	snprintf(c->key_id, sizeof(c->key_id), "%s", key.id);
	if (key.domains)
		c->tenant_domains = strdup(key.domains);
	c->key_checked_us = sg_now_us();
	st_key_clear(&key);
	log_info("connection %" PRIu64 " authenticated with key %s", c->id, c->key_id);
	conn_welcome(c);
	return 0;
}

/* ---- incoming messages ---- */

/* Handles one complete text message. Returns -1 to close the connection
 * (close status already set). */
static int conn_handle_message(struct conn *c, const char *text, size_t len,
			       int binary)
{
	char err[200];
	json_t *msg = binary ? parse_msgpack_message(text, len)
			     : sg_json_parse_strict(text, len, err, sizeof(err));
	const char *op;
	int rc = 0;

	if (!msg || !json_is_object(msg)) {
		json_decref(msg);
		return conn_close_soon(c, 4400,
				      binary ? "message is not one MessagePack map with string keys"
					     : "message is not a JSON object",
				      CLOSE_BAD_REQUEST);
	}
	op = json_string_value(json_object_get(msg, "op"));

	if (!c->authed) {
		const char *token = json_string_value(json_object_get(msg, "token"));

		if (!op || strcmp(op, "auth") || !token)
			rc = conn_close_soon(c, 4401,
					    "authenticate first: {\"op\":\"auth\",\"token\":KEY}",
					    CLOSE_AUTH);
		else if (strlen(token) > KEY_TOKEN_MAX)
			rc = conn_close_soon(c, 4401, "token is too long", CLOSE_AUTH);
		else
			rc = conn_authenticate(c, token);
	} else if (!op) {
		conn_send_error(c, "invalid_request", "message has no \"op\" string", NULL);
	} else if (!strcmp(op, "subscribe")) {
		handle_subscribe(c, msg);
	} else if (!strcmp(op, "unsubscribe")) {
		handle_unsubscribe(c, msg);
	} else if (!strcmp(op, "ping")) {
		conn_send_json(c, json_pack("{s:s}", "type", "pong"));
	} else if (!strcmp(op, "auth")) {
		conn_send_error(c, "invalid_request", "this connection is already authenticated",
				NULL);
	} else {
		char quoted[SG_QUOTE_MAX + 8], message[SG_QUOTE_MAX + 80];
		const char *ref;

		sg_quote(op, strlen(op), quoted, sizeof(quoted));
		snprintf(message, sizeof(message),
			 "op \"%s\" is unknown: use subscribe, unsubscribe or ping", quoted);
		ref = json_string_value(json_object_get(msg, "id"));
		conn_send_error(c, "unknown_op", message,
				ref && sub_id_valid(ref) ? ref : NULL);
	}
	json_decref(msg);
	return rc;
}

/* Collects the fragments of one message. Returns -1 to close. */
static int conn_receive(struct conn *c, const char *in, size_t len)
{
	size_t max = c->srv->cfg.max_message_bytes;
	int rc;

	/* Once a close is decided, the rest of the input is ignored. */
	if (c->closing)
		return 0;
	if (lws_is_first_fragment(c->wsi)) {
		c->rx_len = 0;
		c->rx_binary = lws_frame_is_binary(c->wsi);
	}
	if (c->rx_binary && !c->binary) {
		conn_close_later(c, 4400, "binary frames are not accepted on canary.v1.json",
				 CLOSE_BAD_REQUEST);
		return 0;
	}
	if (c->rx_len + len > max) {
		conn_close_later(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
				 "message too large", CLOSE_BAD_REQUEST);
		return 0;
	}
	if (!c->rx) {
		c->rx = malloc(max);
		if (!c->rx) {
			conn_close_later(c, 1011, "out of memory", CLOSE_LIMIT);
			return 0;
		}
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;

	if (!lws_is_final_fragment(c->wsi) || lws_remaining_packet_payload(c->wsi))
		return 0;
	rc = conn_handle_message(c, c->rx, c->rx_len, c->rx_binary);
	c->rx_len = 0;
	/* Small buffers are kept; a large one is given back at once. */
	if (max > 65536) {
		free(c->rx);
		c->rx = NULL;
	}
	return rc;
}

/* ---- replay and writing ---- */

/*
 * Sends a gap with reason retention when retention deleted signals after
 * the cursor while the subscription replayed, and moves the cursor past
 * them. first_read is the first seq the chunk read, 0 when it read none;
 * head is the committed head taken before the read. Seq values are
 * consecutive, commits happen in seq order and a failed commit consumes
 * none, so a seq missing below one the read saw, or at or below head, can
 * only be a deleted one.
 */
static void replay_check_gap(struct conn *c, struct sub *sub,
			     uint64_t first_read, uint64_t head)
{
	uint64_t missing_to = first_read ? first_read - 1 : head;

	if (missing_to <= sub->cursor)
		return;
	log_info("connection %" PRIu64 ": subscription %s lost seq %" PRIu64
		 " to %" PRIu64 " to retention during replay",
		 c->id, sub->id, sub->cursor + 1, missing_to);
	send_gap(c, sub->id, sub->cursor + 1, missing_to, "retention");
	sub->cursor = missing_to;
}

/* Reads replay chunks for the first replaying subscription until the queue
 * holds enough to write or the scan budget is spent. Returns 1 while any
 * subscription still replays. */
static int conn_replay_step(struct conn *c)
{
	struct server *srv = c->srv;
	size_t chunk = srv->cfg.replay_chunk_signals;
	size_t room_mark = c->q.limit / 2 < REPLAY_QUEUE_MARK ? c->q.limit / 2
							       : REPLAY_QUEUE_MARK;
	struct sub *sub = NULL;

	for (struct sub *s = c->subs; s; s = s->next)
		if (s->state == SUB_REPLAY) {
			sub = s;
			break;
		}
	if (!sub)
		return 0;

	c->replay_starved = 0;
	for (int round = 0; round < REPLAY_CHUNKS_PER_WRITE; round++) {
		uint64_t head;
		size_t n = 0, i;

		if (!replay_pass_budget)
			c->replay_starved = 1;
		if (c->q.bytes >= room_mark || c->closing || c->replay_starved)
			return 1;
		head = st_head_seq(srv->st);
		if (st_read_after(srv->st, sub->cursor, srv->replay_buf, chunk,
				  &n) != ST_OK) {
			log_error("connection %" PRIu64 ": replay read after seq %" PRIu64
				  " failed; retrying", c->id, sub->cursor);
			return 1;
		}
		replay_check_gap(c, sub, n ? srv->replay_buf[0].seq : 0, head);
		replay_pass_budget -= n < replay_pass_budget ? n : replay_pass_budget;
		for (i = 0; i < n && c->q.bytes < c->q.limit * 3 / 4; i++) {
			const struct sg_signal *s = &srv->replay_buf[i];
			struct sbuf *body;

			sub->cursor = s->seq;
			if (s->observed_us < sub->min_observed_us ||
			    !mt_filter_match(sub->filter, s))
				continue;
			body = encode_signal(s, c->binary);
			if (!body)
				continue;
			if (!sub_push(sub, body))
				srv->counters.replayed++;
			sbuf_unref(body);
		}
		if (i == n && n < chunk) {
			/* The read saw every published seq (see the file top);
			 * the committed head may be further and must not be
			 * skipped. */
			uint64_t published = slog_published_head(srv->slog);

			if (sub->cursor < published)
				sub->cursor = published;
			sub->state = SUB_LIVE;
			conn_send_json(c, json_pack("{s:s, s:s, s:I}", "type",
						    "replay_done", "sub", sub->id,
						    "seq", (json_int_t)sub->cursor));
			break;
		}
	}
	for (struct sub *s = c->subs; s; s = s->next)
		if (s->state == SUB_REPLAY)
			return 1;
	return 0;
}

/* Takes the next frame of the connection's queue and writes it. Sets
 * *len to the frame's length, 0 when none was taken. Returns -1 when the
 * socket failed. */
static int conn_write_frame(struct conn *c, size_t *len)
{
	char *buf = c->srv->frame + LWS_PRE;

	*len = outq_take_frame(&c->q, buf, SERVER_FRAME_MAX, !c->binary);
	if (*len && lws_write(c->wsi, (unsigned char *)buf, *len,
			      c->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int)*len)
		return -1;
	return 0;
}

static int conn_writable(struct conn *c)
{
	struct server *srv = c->srv;
	char *buf = srv->frame + LWS_PRE;
	int replaying;
	size_t len;

	if (c->closing && c->drain_before_close && c->q.first) {
		if (conn_write_frame(c, &len))
			return -1;
		if (len) {
			lws_callback_on_writable(c->wsi);
			return 0;
		}
	}
	if (c->closing) {
		lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
				 (unsigned char *)c->close_reason,
				 strlen(c->close_reason));
		return -1;
	}
	if (c->want_ping) {
		c->want_ping = 0;
		/* lws 4.1 does not report an empty pong, so the ping carries
		 * a payload for the peer to echo. */
		memcpy(buf, "canary", 6);
		if (lws_write(c->wsi, (unsigned char *)buf, 6, LWS_WRITE_PING) < 6)
			return -1;
		lws_callback_on_writable(c->wsi);
		return 0;
	}

	replaying = conn_replay_step(c);
	if (c->closing) {
		lws_callback_on_writable(c->wsi);
		return 0;
	}
	if (conn_write_frame(c, &len))
		return -1;
	if (!len && c->q.first) {
		/* Cannot happen with max_message_bytes below the frame size,
		 * but a message that never fits must not wedge the queue. */
		return conn_close_soon(c, 1011, "message larger than the frame buffer",
				      CLOSE_LIMIT);
	}
	if (c->replay_starved && !c->q.first) {
		/* Nothing to write until a later pass has budget for it. */
		if (lws_dll2_is_detached(&c->replay_wait))
			lws_dll2_add_tail(&c->replay_wait, &replay_waiters);
		return 0;
	}
	if (c->q.first || replaying)
		lws_callback_on_writable(c->wsi);
	return 0;
}

/* ---- fan-out ---- */

/* One signal being fanned out; each body is encoded on first use. */
struct publish_ctx {
	const struct sg_signal *sig;
	struct sbuf *body[2];           /* JSON, MessagePack */
};

static void publish_to_sub(void *owner, void *ctxp)
{
	struct sub *sub = owner;
	struct publish_ctx *ctx = ctxp;
	struct conn *c = sub->conn;

	if (c->closing || sub->state != SUB_LIVE || ctx->sig->seq <= sub->cursor)
		return;
	sub->cursor = ctx->sig->seq;
	if (!ctx->body[c->binary]) {
		ctx->body[c->binary] = encode_signal(ctx->sig, c->binary);
		if (!ctx->body[c->binary])
			return;
	}
	if (!sub_push(sub, ctx->body[c->binary]) && lws_dll2_is_detached(&c->flush_wait))
		lws_dll2_add_tail(&c->flush_wait, &flush_waiters);
}

static int conn_replaying(const struct conn *c)
{
	for (const struct sub *s = c->subs; s; s = s->next)
		if (s->state == SUB_REPLAY)
			return 1;
	return 0;
}

/*
 * Writes the connection's queue now, outside its writable callback, so
 * that live signals leave in the loop turn that committed them. Waiting
 * for the writable callback costs a turn and two epoll_ctl calls per
 * connection. lws 4.1.6 accepts a write outside the callback: a part the
 * socket does not take stays in lws's buffer and goes out first on the
 * next writable event, and later writes queue behind it. A pending ping,
 * close, replay or partial frame leaves the work to the writable
 * callback, which handles them in order.
 */
static void conn_flush_now(struct conn *c)
{
	size_t len;

	if (c->closing || c->want_ping || c->replay_starved ||
	    lws_partial_buffered(c->wsi) || conn_replaying(c)) {
		lws_callback_on_writable(c->wsi);
		return;
	}
	if (conn_write_frame(c, &len)) {
		/* The socket failed: lws closes it after this turn. */
		log_info("connection %" PRIu64 " (key %s): writing failed, dropping it",
			 c->id, c->key_id[0] ? c->key_id : "-");
		c->srv->counters.closes[CLOSE_PEER]++;
		c->close_counted = 1;
		c->closing = 1;
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		return;
	}
	if (c->q.first)
		lws_callback_on_writable(c->wsi);
}

void stream_publish(const struct sg_signal *sigs, size_t n, void *ctxp)
{
	struct server *srv = ctxp;

	for (size_t i = 0; i < n; i++) {
		struct publish_ctx ctx = { &sigs[i], { NULL, NULL } };

		mt_index_match(srv->subs, &sigs[i], publish_to_sub, &ctx);
		sbuf_unref(ctx.body[0]);
		sbuf_unref(ctx.body[1]);
	}
	while (flush_waiters.head) {
		struct conn *c = lws_container_of(flush_waiters.head, struct conn,
						  flush_wait);

		lws_dll2_remove(&c->flush_wait);
		conn_flush_now(c);
	}
}

/* ---- liveness, auth timeout and revocation ---- */

/* Revocation results of one tick. Thousands of connections often share a
 * few keys, so they share one store lookup per key and tick instead of
 * holding up the loop with one lookup each. */
#define KEY_CHECK_SLOTS 64

struct key_check {
	char id[ST_KEY_ID_LEN + 1];     /* empty: a free slot */
	int revoked;
};

static unsigned hash_key_id(const char *id)
{
	unsigned h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h;
}

/* Returns 1 when the key is revoked or gone, 0 when it is valid, -1 when
 * the store could not be read. */
static int key_revoked(struct server *srv, struct key_check *checks,
		       const char *key_id)
{
	struct key_check *slot = &checks[hash_key_id(key_id) % KEY_CHECK_SLOTS];
	struct st_key key;
	int rc;

	if (!strcmp(slot->id, key_id))
		return slot->revoked;
	rc = st_key_find_by_id(srv->st, key_id, &key);
	if (rc != ST_OK && rc != ST_ERR_NOT_FOUND)
		return -1;
	snprintf(slot->id, sizeof(slot->id), "%s", key_id);
	slot->revoked = rc == ST_ERR_NOT_FOUND || key.revoked_us;
	if (rc == ST_OK)
		st_key_clear(&key);
	return slot->revoked;
}

static void conn_tick(struct conn *c, int64_t now, struct key_check *checks)
{
	struct server *srv = c->srv;
	int64_t idle = now - c->last_rx_us;

	if (c->closing)
		return;
	if (idle > (int64_t)srv->cfg.idle_timeout_s * 1000000) {
		srv->counters.closes[CLOSE_IDLE]++;
		c->close_counted = 1;
		c->closing = 1;
		log_info("dropping connection %" PRIu64 " (key %s): silent for %" PRId64 " s",
			 c->id, c->key_id[0] ? c->key_id : "-", idle / 1000000);
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		return;
	}
	if (!c->authed &&
	    now - c->connected_us > (int64_t)srv->cfg.auth_timeout_s * 1000000) {
		conn_close_later(c, 4401, "authentication timed out", CLOSE_AUTH);
		return;
	}
	if (c->authed && now - c->key_checked_us > KEY_RECHECK_US) {
		c->key_checked_us = now;
		if (key_revoked(srv, checks, c->key_id) == 1) {
			conn_close_later(c, 4403, "key revoked", CLOSE_REVOKED);
			return;
		}
	}
	if (idle > (int64_t)srv->cfg.ping_interval_s * 1000000 &&
	    now - c->last_ping_us > (int64_t)srv->cfg.ping_interval_s * 1000000) {
		c->last_ping_us = now;
		c->want_ping = 1;
		lws_callback_on_writable(c->wsi);
	}
}

static void stream_tick(lws_sorted_usec_list_t *sul)
{
	struct server *srv = lws_container_of(sul, struct server, tick);
	struct key_check checks[KEY_CHECK_SLOTS];
	int64_t now = sg_now_us();
	struct lws_dll2 *d = tick_cursor ? tick_cursor : lws_dll2_get_head(&srv->conns);
	size_t budget = (size_t)(srv->conns.count + TICK_SLICES - 1) / TICK_SLICES;

	memset(checks, 0, sizeof(checks));
	while (d && budget--) {
		struct lws_dll2 *next = d->next;

		conn_tick(lws_container_of(d, struct conn, node), now, checks);
		d = next;
	}
	tick_cursor = d;

	if (!srv->shutting_down)
		lws_sul_schedule(srv->ctx, 0, &srv->tick, stream_tick, TICK_US);
}

void stream_start_tick(struct server *srv)
{
	lws_sul_schedule(srv->ctx, 0, &srv->tick, stream_tick, TICK_US);
}

void stream_pass_begin(struct server *srv)
{
	size_t wake = REPLAY_SIGNALS_PER_PASS / srv->cfg.replay_chunk_signals + 1;

	replay_pass_budget = REPLAY_SIGNALS_PER_PASS;
	while (wake-- && replay_waiters.head) {
		struct conn *c = lws_container_of(replay_waiters.head, struct conn,
						  replay_wait);

		lws_dll2_remove(&c->replay_wait);
		c->replay_starved = 0;
		lws_callback_on_writable(c->wsi);
	}
}

void stream_apply_config(struct server *srv)
{
	int64_t now = sg_now_us();

	lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&srv->conns)) {
		struct conn *c = lws_container_of(d, struct conn, node);

		c->q.limit = srv->cfg.outbound_queue_bytes;
		/* A shorter idle_timeout_s must not drop a connection that was
		 * never pinged under the old ping_interval_s: its silence
		 * counts from the reload. */
		c->last_rx_us = now;
	} lws_end_foreach_dll(d);
}

uint64_t stream_count_tenant_connections(struct server *srv,
					 const char *tenant_domains)
{
	uint64_t n = 0;

	lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&srv->conns)) {
		const struct conn *c = lws_container_of(d, struct conn, node);

		if (c->tenant_domains && !strcmp(c->tenant_domains, tenant_domains))
			n++;
	} lws_end_foreach_dll(d);
	return n;
}

void stream_shutdown(struct server *srv)
{
	srv->shutting_down = 1;
	lws_sul_cancel(&srv->tick);
	lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&srv->conns)) {
		struct conn *c = lws_container_of(d, struct conn, node);

		conn_close_later(c, 1001, "server shutting down", CLOSE_SHUTDOWN);
	} lws_end_foreach_dll(d);
}

/* ---- the lws callback ---- */

static int conn_uri_is_stream(struct lws *wsi)
{
	char uri[64];

	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
		return 0;
	return !strcmp(uri, STREAM_PATH);
}

static int conn_established(struct conn *c, struct lws *wsi)
{
	struct server *srv = server_of(wsi);
	int len;

	memset(c, 0, sizeof(*c));
	c->wsi = wsi;
	c->srv = srv;
	c->binary = !strcmp(lws_get_protocol(wsi)->name, STREAM_PROTOCOL_MSGPACK);
	c->id = ++srv->next_conn_id;
	c->connected_us = c->last_rx_us = sg_now_us();
	outq_init(&c->q, srv->cfg.outbound_queue_bytes);
	lws_dll2_add_tail(&c->node, &srv->conns);
	srv->counters.ws_connections++;
	srv->counters.ws_connections_total++;

	if (srv->shutting_down)
		return conn_close_soon(c, 1001, "server shutting down", CLOSE_SHUTDOWN);
	if (srv->counters.ws_connections > srv->cfg.max_connections)
		return conn_close_soon(c, 4429, "too many connections, retry later",
				      CLOSE_LIMIT);

	len = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (len > 0) {
		char value[KEY_TOKEN_MAX + 64];
		char token[KEY_TOKEN_MAX + 1];

		/* An oversized header is refused, never treated as absent. */
		if (len >= (int)sizeof(value) ||
		    lws_hdr_copy(wsi, value, sizeof(value),
				 WSI_TOKEN_HTTP_AUTHORIZATION) < 0 ||
		    auth_parse_bearer(value, token) != AUTH_OK)
			return conn_close_soon(c, 4401, "malformed Authorization header",
					      CLOSE_AUTH);
		return conn_authenticate(c, token);
	}
	log_debug("connection %" PRIu64 " open, waiting for an auth message", c->id);
	return 0;
}

static void conn_closed(struct conn *c)
{
	struct server *srv = c->srv;

	if (!srv)
		return;
	while (c->subs) {
		struct sub *next = c->subs->next;

		sub_free(srv, c->subs);
		c->subs = next;
	}
	outq_clear(&c->q);
	free(c->rx);
	free(c->tenant_domains);
	if (c->key_counted)
		key_count_release(c->key_id);
	if (tick_cursor == &c->node)
		tick_cursor = c->node.next;
	lws_dll2_remove(&c->node);
	if (!lws_dll2_is_detached(&c->replay_wait))
		lws_dll2_remove(&c->replay_wait);
	if (!lws_dll2_is_detached(&c->flush_wait))
		lws_dll2_remove(&c->flush_wait);
	srv->counters.ws_connections--;
	/* A peer that vanished without a close frame counts as a peer close. */
	if (!c->close_counted) {
		srv->counters.closes[CLOSE_PEER]++;
		log_info("connection %" PRIu64 " (key %s) lost: the peer went away without a close frame",
			 c->id, c->key_id[0] ? c->key_id : "-");
	}
	log_debug("connection %" PRIu64 " closed", c->id);
	c->srv = NULL;
}

int stream_callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct conn *c = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* Only the stream URL upgrades; anything else is refused. */
		return conn_uri_is_stream(wsi) ? 0 : 1;

	case LWS_CALLBACK_ESTABLISHED:
		return conn_established(c, wsi);

	case LWS_CALLBACK_RECEIVE:
		c->last_rx_us = sg_now_us();
		return conn_receive(c, in, len);

	case LWS_CALLBACK_RECEIVE_PONG:
		c->last_rx_us = sg_now_us();
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		return conn_writable(c);

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (!c->close_counted) {
			c->close_counted = 1;
			c->srv->counters.closes[CLOSE_PEER]++;
			log_info("connection %" PRIu64 " (key %s) closed by the peer", c->id,
				 c->key_id[0] ? c->key_id : "-");
		}
		return 0;

	case LWS_CALLBACK_CLOSED:
		conn_closed(c);
		return 0;

	default:
		return 0;
	}
}
