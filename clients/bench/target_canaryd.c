/*
 * The canaryd target: N WebSocket subscribers (canary.v1.json or
 * canary.v1.msgpack) and one canary.v1.ingest connection, all in one lws
 * client context on this thread.
 */
#include "bench.h"
#include "ws_client.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libwebsockets.h>
#include <msgpack.h>
#include <uv.h>

/* Connections opened at once while connecting. */
#define CONNECT_PARALLEL 128
/* Largest ingest message the bench builds, in bytes. */
#define INGEST_MSG_MAX (1024 * 1024)
/* Ingest batches written but not acknowledged, at most. */
#define INGEST_INFLIGHT_MAX 8
#define TICK_US 1000
/* Largest frame a subscriber reassembles. */
#define RX_MAX (1024 * 1024)

enum phase { PHASE_CONNECT, PHASE_RUN, PHASE_DRAIN, PHASE_DONE };

struct bctx;

/* The ingest connection runs on lws; subscribers on ws_client.c, whose
 * reading keeps up with the server at saturation. */
struct bconn {
	struct bctx *bc;
	struct lws *wsi;                /* the ingest connection */
	struct wsc ws;                  /* a subscriber */
	int ingest;
	unsigned index;
	int welcomed;
	int subscribed;
	int replay_done;
	char iface[16];
	char *rx;
	size_t rx_len;
	size_t rx_cap;
};

struct bctx {
	struct bench_run *r;
	struct lws_context *ctx;
	uv_loop_t *loop;
	char host[256];
	int port;
	struct bconn *subs;
	struct bconn ing;
	unsigned next_connect;
	unsigned connecting;
	unsigned subscribed;
	enum phase phase;
	int64_t phase_deadline_ns;
	uint64_t batches_sent;
	uint64_t batches_acked;
	lws_sorted_usec_list_t tick;
	char *out;                      /* LWS_PRE + INGEST_MSG_MAX */
	char close_reason[160];         /* canaryd's close of the ingest connection */
};

static const struct wsc_handlers sub_handlers;

static void conn_open(struct bctx *bc, struct bconn *c, int ingest)
{
	struct lws_client_connect_info i;

	c->bc = bc;
	c->ingest = ingest;
	if (!ingest) {
		const char *protocol = bc->r->o->msgpack ? "canary.v1.msgpack"
							 : "canary.v1.json";

		if (!strncmp(bc->host, "127.", 4))
			bench_source_address(bc->r, c->index, c->iface);
		if (wsc_connect(&c->ws, bc->loop, bc->host, bc->port,
				c->iface[0] ? c->iface : NULL, "/v1/canary/stream",
				protocol, bc->r->o->key, RX_MAX, &sub_handlers, c))
			bench_fail(bc->r, "cannot start a connection to %s:%d (give an IPv4 address)",
				   bc->host, bc->port);
		else
			bc->connecting++;
		return;
	}

	memset(&i, 0, sizeof(i));
	i.context = bc->ctx;
	i.address = bc->host;
	i.port = bc->port;
	i.host = bc->host;
	i.origin = bc->host;
	i.path = "/v1/canary/signals";
	i.protocol = "canary.v1.ingest";
	i.local_protocol_name = "bench";
	i.opaque_user_data = c;
	i.pwsi = &c->wsi;
	if (!lws_client_connect_via_info(&i))
		bench_fail(bc->r, "cannot start a connection to %s:%d", bc->host, bc->port);
}

/* ---- subscriber messages ---- */

static void sub_send_subscriptions(struct bconn *c);

static void sub_control(struct bconn *c, const char *msg, size_t len)
{
	json_t *j = json_loadb(msg, len, 0, NULL);
	const char *type = json_string_value(json_object_get(j, "type"));

	if (!type) {
		bench_fail(c->bc->r, "unexpected message from canaryd: %.*s",
			   (int)(len > 200 ? 200 : len), msg);
	} else if (!strcmp(type, "welcome")) {
		c->welcomed = 1;
		if (!c->ingest)
			sub_send_subscriptions(c);
	} else if (!strcmp(type, "subscribed")) {
		c->subscribed = 1;
		c->bc->subscribed++;
		c->bc->r->replay_start_ns = bench_now_ns();
	} else if (!strcmp(type, "replay_done")) {
		c->replay_done = 1;
		c->bc->r->replay_end_ns = bench_now_ns();
	} else if (!strcmp(type, "ack")) {
		c->bc->r->acked += (uint64_t)json_integer_value(json_object_get(j, "accepted"));
		c->bc->batches_acked++;
		lws_callback_on_writable(c->wsi);
	} else if (!strcmp(type, "error") || !strcmp(type, "gap")) {
		bench_fail(c->bc->r, "canaryd sent: %.*s", (int)(len > 300 ? 300 : len), msg);
	}
	json_decref(j);
}

/* Converts one MessagePack control map to JSON text for sub_control. */
static void sub_control_msgpack(struct bconn *c, const msgpack_object *o)
{
	char text[512];
	int n = 0;

	/* Only the type matters for the subscriber's control messages. */
	for (uint32_t i = 0; o->type == MSGPACK_OBJECT_MAP && i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];

		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 4 &&
		    !memcmp(kv->key.via.str.ptr, "type", 4) &&
		    kv->val.type == MSGPACK_OBJECT_STR) {
			n = snprintf(text, sizeof(text), "{\"type\":\"%.*s\"}",
				     (int)kv->val.via.str.size, kv->val.via.str.ptr);
			break;
		}
	}
	if (n > 0 && (size_t)n < sizeof(text))
		sub_control(c, text, (size_t)n);
	else
		bench_fail(c->bc->r, "canaryd sent a MessagePack message without a type");
}

static void sub_frame_msgpack(struct bconn *c, const char *buf, size_t len,
			      int64_t now)
{
	msgpack_unpacked res;
	size_t off = 0, start = 0;

	msgpack_unpacked_init(&res);
	while (start < len &&
	       msgpack_unpack_next(&res, buf, len, &off) == MSGPACK_UNPACK_SUCCESS) {
		const msgpack_object *o = &res.data;
		int is_signal = o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 3 &&
				o->via.map.ptr[0].val.type == MSGPACK_OBJECT_STR &&
				o->via.map.ptr[0].val.via.str.size == 6 &&
				!memcmp(o->via.map.ptr[0].val.via.str.ptr, "signal", 6);

		if (is_signal && c->bc->r->o->replay)
			c->bc->r->replayed++;
		else if (is_signal)
			bench_delivered(c->bc->r, buf + start, off - start, now);
		else
			sub_control_msgpack(c, o);
		start = off;
	}
	msgpack_unpacked_destroy(&res);
}

static void sub_frame_json(struct bconn *c, const char *buf, size_t len,
			   int64_t now)
{
	static const char signal_prefix[] = "{\"type\":\"signal\"";
	const char *p = buf, *end = buf + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);

		int is_signal = n >= sizeof(signal_prefix) - 1 &&
				!memcmp(p, signal_prefix, sizeof(signal_prefix) - 1);

		if (is_signal && c->bc->r->o->replay)
			c->bc->r->replayed++;
		else if (is_signal)
			bench_delivered(c->bc->r, p, n, now);
		else if (n)
			sub_control(c, p, n);
		p += n + 1;
	}
}

static int conn_receive(struct bconn *c, const char *in, size_t len)
{
	int binary = lws_frame_is_binary(c->wsi);
	const char *frame = in;
	size_t frame_len = len;
	int whole = lws_is_final_fragment(c->wsi) && !lws_remaining_packet_payload(c->wsi);

	/* A frame that arrives in one piece is handled in place. */
	if (c->rx_len || !whole) {
		if (c->rx_len + len > RX_MAX) {
			bench_fail(c->bc->r, "a frame from canaryd is larger than %d bytes", RX_MAX);
			return -1;
		}
		if (c->rx_len + len > c->rx_cap) {
			size_t cap = c->rx_cap ? c->rx_cap * 2 : 65536;

			while (cap < c->rx_len + len)
				cap *= 2;
			c->rx = realloc(c->rx, cap);
			if (!c->rx) {
				bench_fail(c->bc->r, "out of memory");
				return -1;
			}
			c->rx_cap = cap;
		}
		memcpy(c->rx + c->rx_len, in, len);
		c->rx_len += len;
		if (!whole)
			return 0;
		frame = c->rx;
		frame_len = c->rx_len;
	}
	if (binary)
		sub_frame_msgpack(c, frame, frame_len, bench_now_ns());
	else
		sub_frame_json(c, frame, frame_len, bench_now_ns());
	c->rx_len = 0;
	return 0;
}

/* ---- writing ---- */

/* Sends a subscriber connection's subscribe messages. */
static void sub_send_subscriptions(struct bconn *c)
{
	unsigned per_conn = c->bc->r->o->replay ? 1 : c->bc->r->o->subs_per_conn;

	for (unsigned k = 0; k < per_conn; k++) {
		char buf[256], domain[64];
		int n;

		bench_sub_domain(c->bc->r, c->index * c->bc->r->o->subs_per_conn + k, domain);
		if (c->bc->r->o->replay)
			n = snprintf(buf, sizeof(buf),
				     "{\"op\":\"subscribe\",\"id\":\"b\",\"since_seq\":0}");
		else
			n = snprintf(buf, sizeof(buf),
				     "{\"op\":\"subscribe\",\"id\":\"b%u\",\"filter\":{\"domains\":[\"%s\"]}}",
				     k, domain);
		if (n <= 0 || (size_t)n >= sizeof(buf) || wsc_send_text(&c->ws, buf, (size_t)n)) {
			bench_fail(c->bc->r, "sending a subscribe message failed");
			return;
		}
	}
}

static void sub_opened(struct wsc *w)
{
	struct bconn *c = w->user;

	c->bc->connecting--;
}

static void sub_message(struct wsc *w, int binary, const char *data, size_t len)
{
	struct bconn *c = w->user;

	if (binary)
		sub_frame_msgpack(c, data, len, bench_now_ns());
	else
		sub_frame_json(c, data, len, bench_now_ns());
}

static void sub_closed(struct wsc *w, const char *why)
{
	struct bconn *c = w->user;

	if (c->bc->phase != PHASE_DONE)
		bench_fail(c->bc->r, "a subscriber connection ended: %s", why);
}

static const struct wsc_handlers sub_handlers = { sub_opened, sub_message, sub_closed };

/* Sends one JSON array of the signals due now. */
static int ingest_write(struct bctx *bc)
{
	struct bench_run *r = bc->r;
	char *buf = bc->out + LWS_PRE;
	uint64_t due = 0;
	size_t used = 1;
	int64_t now = bench_now_ns();

	if (bc->phase != PHASE_RUN || bc->batches_sent - bc->batches_acked >= INGEST_INFLIGHT_MAX)
		return 0;
	due = bench_due(r, now);
	if (due > r->o->batch_max)
		due = r->o->batch_max;
	if (!due)
		return 0;
	buf[0] = '[';
	for (uint64_t k = 0; k < due; k++) {
		unsigned d = 0;
		size_t n = bench_signal_json(r, r->sent, now, buf + used,
					     INGEST_MSG_MAX - used - 2, &d);

		if (!n)
			break;
		used += n;
		buf[used++] = ',';
		bench_sent(r, d);
	}
	buf[used - 1] = ']';
	bc->batches_sent++;
	if (lws_write(bc->ing.wsi, (unsigned char *)buf, used, LWS_WRITE_TEXT) < (int)used) {
		bench_fail(r, "writing an ingest batch failed");
		return -1;
	}
	if (bench_due(r, now))
		lws_callback_on_writable(bc->ing.wsi);
	return 0;
}

/* ---- the lws callback ---- */

static int bench_callback(struct lws *wsi, enum lws_callback_reasons reason,
			  void *user, void *in, size_t len)
{
	struct bconn *c = lws_get_opaque_user_data(wsi);
	struct bctx *bc = c ? c->bc : NULL;

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		unsigned char **p = (unsigned char **)in, *end = (*p) + len;
		char value[300];

		snprintf(value, sizeof(value), "Bearer %s", bc->r->o->key);
		if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
						 (unsigned char *)value,
						 (int)strlen(value), p, end))
			return -1;
		return 0;
	}
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		return 0;

	case LWS_CALLBACK_CLIENT_RECEIVE:
		return conn_receive(c, in, len);

	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return ingest_write(bc);

	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		bench_fail(bc->r, "connecting to canaryd failed: %s",
			   in ? (const char *)in : "unknown error");
		c->wsi = NULL;
		return 0;

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2) {
			const unsigned char *p = in;

			snprintf(bc->close_reason, sizeof(bc->close_reason), " with %u %.*s",
				 (unsigned)(p[0] << 8 | p[1]), (int)(len - 2 > 100 ? 100 : len - 2),
				 (const char *)p + 2);
		}
		return 0;

	case LWS_CALLBACK_CLIENT_CLOSED:
		if (bc->phase != PHASE_DONE)
			bench_fail(bc->r, "canaryd closed the %s connection%s",
				   c->ingest ? "ingest" : "subscriber", bc->close_reason);
		c->wsi = NULL;
		return 0;

	default:
		return 0;
	}
}

/* Replay benchmark: the one subscriber that replays everything. */
static void open_replayer(struct bctx *bc)
{
	bc->subs[0].index = 0;
	conn_open(bc, &bc->subs[0], 0);
}

static void replay_step(struct bctx *bc, int64_t now)
{
	if (bc->subs[0].replay_done || now > bc->phase_deadline_ns) {
		if (!bc->subs[0].replay_done)
			bench_fail(bc->r, "the replay did not finish in time");
		bc->phase = PHASE_DONE;
	}
}

/* Advances the phases: connect, run, drain, done. */
static void tick(lws_sorted_usec_list_t *sul)
{
	struct bctx *bc = lws_container_of(sul, struct bctx, tick);
	struct bench_run *r = bc->r;
	int64_t now = bench_now_ns();

	switch (bc->phase) {
	case PHASE_CONNECT:
		while (!r->failed && !r->o->replay && bc->connecting < CONNECT_PARALLEL &&
		       bc->next_connect < r->o->subscribers) {
			struct bconn *c = &bc->subs[bc->next_connect];

			c->index = bc->next_connect++;
			conn_open(bc, c, 0);
		}
		if (bc->subscribed == (r->o->replay ? 0 : r->o->subscribers * r->o->subs_per_conn) &&
		    bc->ing.welcomed) {
			bench_sample_rss(r);
			r->start_ns = now;
			bc->phase = PHASE_RUN;
			bc->phase_deadline_ns = now + (int64_t)(r->o->duration_s * 1e9);
		} else if (now > bc->phase_deadline_ns) {
			bench_fail(r, "only %u of %u subscribers were subscribed in time",
				   bc->subscribed, r->o->subscribers);
		}
		break;
	case PHASE_RUN:
		if (r->o->replay && r->acked >= r->o->replay) {
			r->stop_ns = now;
			bc->phase = PHASE_DRAIN;
			bc->phase_deadline_ns = now + (int64_t)(60 + r->o->replay / 10000) * 1000000000;
			open_replayer(bc);
		} else if (r->o->replay) {
			if (bench_due(r, now) && bc->ing.wsi)
				lws_callback_on_writable(bc->ing.wsi);
		} else if (now >= bc->phase_deadline_ns) {
			r->stop_ns = now;
			bc->phase = PHASE_DRAIN;
			bc->phase_deadline_ns = now + (int64_t)(r->o->drain_s * 1e9);
		} else if (bench_due(r, now) && bc->ing.wsi) {
			lws_callback_on_writable(bc->ing.wsi);
		}
		break;
	case PHASE_DRAIN:
		if (r->o->replay) {
			replay_step(bc, now);
			break;
		}
		if ((r->received >= r->expected && r->acked >= r->sent) ||
		    now > bc->phase_deadline_ns)
			bc->phase = PHASE_DONE;
		break;
	case PHASE_DONE:
		break;
	}
	if (bc->phase != PHASE_DONE && !r->failed)
		lws_sul_schedule(bc->ctx, 0, &bc->tick, tick, TICK_US);
	else
		lws_cancel_service(bc->ctx);    /* uv_run returns at once */
}

/*
 * Destroys the context on its foreign loop: each lws_context_destroy()
 * call advances the destruction and the loop runs the closes between
 * calls; lws clears bc->ctx when done. Bounded to two seconds.
 */
static void loop_finish(struct bctx *bc, uv_loop_t *loop)
{
	for (int ms = 0; ms < 2000; ms++) {
		if (bc->ctx)
			lws_context_destroy(bc->ctx);
		if (!uv_run(loop, UV_RUN_NOWAIT) && !bc->ctx)
			break;
		usleep(1000);
	}
	if (!bc->ctx)
		uv_loop_close(loop);
}

int bench_canaryd(struct bench_run *r)
{
	static const struct lws_protocols protocols[] = {
		{ "bench", bench_callback, 0, 65536, 0, NULL, 0 },
		{ NULL, NULL, 0, 0, 0, NULL, 0 },
	};
	struct lws_context_creation_info info;
	void *foreign_loops[1];
	uv_loop_t loop;
	struct bctx bc;
	int rc = -1;

	memset(&bc, 0, sizeof(bc));
	bc.r = r;
	if (bench_parse_url(r->o->url, "ws", bc.host, &bc.port)) {
		bench_fail(r, "--url \"%s\" is invalid: use ws://HOST:PORT", r->o->url);
		return -1;
	}
	bc.subs = calloc(r->o->subscribers ? r->o->subscribers : 1, sizeof(*bc.subs));
	bc.out = malloc(LWS_PRE + INGEST_MSG_MAX);
	if (!bc.subs || !bc.out)
		goto out;

	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.fd_limit_per_thread = r->o->subscribers + 64;
	/* The client runs on a libuv loop (epoll), as canaryd does, so that
	 * its cost per wake-up does not grow with the number of subscribers.
	 * lws 4.1 unloads its libuv plugin before the loop has run the
	 * plugin's close callbacks; RTLD_NODELETE keeps the code mapped. */
	dlopen("libwebsockets-evlib_uv.so", RTLD_NOW | RTLD_NODELETE);
	if (uv_loop_init(&loop)) {
		bench_fail(r, "cannot create the event loop");
		goto out;
	}
	foreign_loops[0] = &loop;
	bc.loop = &loop;
	info.options = LWS_SERVER_OPTION_LIBUV;
	info.foreign_loops = foreign_loops;
	info.pcontext = &bc.ctx;
	bc.ctx = lws_create_context(&info);
	if (!bc.ctx) {
		bench_fail(r, "cannot create the WebSocket client context");
		loop_finish(&bc, &loop);
		goto out;
	}

	bc.phase_deadline_ns = bench_now_ns() + (int64_t)(30 + r->o->subscribers / 200) * 1000000000;
	conn_open(&bc, &bc.ing, 1);
	lws_sul_schedule(bc.ctx, 0, &bc.tick, tick, TICK_US);
	while (bc.phase != PHASE_DONE && !r->failed)
		uv_run(&loop, UV_RUN_ONCE);
	if (!r->stop_ns)
		r->stop_ns = bench_now_ns();
	rc = r->failed ? -1 : 0;
	bc.phase = PHASE_DONE;
	lws_sul_cancel(&bc.tick);
	for (unsigned i = 0; i < r->o->subscribers; i++)
		wsc_close(&bc.subs[i].ws);
	loop_finish(&bc, &loop);

out:
	for (unsigned i = 0; bc.subs && i < r->o->subscribers; i++)
		free(bc.subs[i].rx);
	free(bc.ing.rx);
	free(bc.subs);
	free(bc.out);
	return rc;
}
