#include "session.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "status.h"
#include "stream.h"

#define SUBPROTOCOL_JSON "canary.v1.json"
#define SUBPROTOCOL_MSGPACK "canary.v1.msgpack"

/* Reconnect delays: full jitter over min(cap, base * 2^attempt). */
#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 30000
/* A connection that lived this long resets the backoff. */
#define BACKOFF_RESET_US (30 * LWS_US_PER_SEC)

/* The cursor file is rewritten at most this often while signals arrive. */
#define CURSOR_SAVE_INTERVAL_US (200 * LWS_US_PER_MS)

/* How long a clean close may wait for the server's close frame. */
#define CLOSE_WAIT_US (5 * LWS_US_PER_SEC)

struct tail_session {
	const struct tail_options *opts;
	struct tail_stream stream;
	struct lws_context *context;
	struct lws *wsi;		/* the current connection, or NULL */

	lws_sorted_usec_list_t sul_connect;
	lws_sorted_usec_list_t sul_cursor;
	lws_sorted_usec_list_t sul_stop;

	unsigned attempt;		/* reconnects since the last good connection */
	lws_usec_t established_us;	/* 0 while not connected */
	lws_usec_t last_save_us;
	int save_pending;

	int send_subscribe;
	int close_requested;
	enum lws_close_status close_status;	/* the code a requested close sends */
	int stopping;			/* no more reconnects; exit when closed */
	int done;			/* leave the service loop */
	enum tail_exit exit_status;

	int close_code;			/* from the server's close frame, or 0 */
	char close_reason[124];
};

static volatile sig_atomic_t stop_signal;
static struct lws_context *signal_context;

/*
 * Have lws send a WebSocket ping 30 s after the last pong (seen in a test)
 * and hang up after 75 s without one, so a silently dead server is noticed.
 * NOTE: the hang-up is lws 4.1.6's documented policy and no test covers it.
 */
static const lws_retry_bo_t idle_policy = {
	.secs_since_valid_ping = 30,
	.secs_since_valid_hangup = 75,
};

static void
on_stop_signal(int sig)
{
	stop_signal = sig;
	/*
	 * Wake poll() so that the loop checks the flag. In lws 4.1.6 this
	 * call only writes to an eventfd or pipe.
	 */
	if (signal_context)
		lws_cancel_service(signal_context);
}

static void
emit_lws_log(int level, const char *line)
{
	size_t len = strlen(line);

	while (len && line[len - 1] == '\n')
		len--;
	tail_error("libwebsockets: %.*s", (int)len, line);
}

/* Copy text from the network for a status line: bounded, printable. */
static void
copy_printable(char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t i;

	for (i = 0; i < len && src[i] && i + 1 < dstlen; i++)
		dst[i] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f) ? '?' : src[i];
	dst[i] = '\0';
}

static int
save_cursor_now(struct tail_session *s)
{
	char err[PATH_MAX + 256];

	if (!s->opts->cursor_file || !s->stream.cursor_dirty)
		return 0;

	if (tail_cursor_save(s->opts->cursor_file, &s->stream.flushed, err,
			     sizeof(err)) != TAIL_CURSOR_OK) {
		tail_error("%s", err);
		return -1;
	}

	s->stream.cursor_dirty = 0;
	s->last_save_us = lws_now_usecs();
	return 0;
}

static void begin_stop(struct tail_session *s, enum tail_exit status,
		       enum lws_close_status close_status);

static void
on_cursor_timer(lws_sorted_usec_list_t *sul)
{
	struct tail_session *s = lws_container_of(sul, struct tail_session, sul_cursor);

	s->save_pending = 0;
	if (save_cursor_now(s))
		begin_stop(s, TAIL_EXIT_FAILURE, LWS_CLOSE_STATUS_NORMAL);
}

/* Save the cursor after a batch, or schedule the save to keep the 200 ms pace. */
static void
save_cursor_paced(struct tail_session *s)
{
	lws_usec_t since;

	if (!s->opts->cursor_file || !s->stream.cursor_dirty || s->save_pending)
		return;

	since = lws_now_usecs() - s->last_save_us;
	if (since >= CURSOR_SAVE_INTERVAL_US) {
		if (save_cursor_now(s))
			begin_stop(s, TAIL_EXIT_FAILURE, LWS_CLOSE_STATUS_NORMAL);
		return;
	}

	s->save_pending = 1;
	lws_sul_schedule(s->context, 0, &s->sul_cursor, on_cursor_timer,
			 CURSOR_SAVE_INTERVAL_US - since);
}

static void
on_stop_timeout(lws_sorted_usec_list_t *sul)
{
	struct tail_session *s = lws_container_of(sul, struct tail_session, sul_stop);

	tail_warn("the server did not answer the close within %d s: exiting",
		  (int)(CLOSE_WAIT_US / LWS_US_PER_SEC));
	s->done = 1;
}

/*
 * Stop with the given exit status: close an open connection with
 * close_status from the writable callback, or finish at once when none is
 * open. Received data is ignored from here on.
 */
static void
begin_stop(struct tail_session *s, enum tail_exit status,
	   enum lws_close_status close_status)
{
	if (s->stopping)
		return;

	s->stopping = 1;
	s->exit_status = status;

	if (!s->wsi) {
		s->done = 1;
		return;
	}

	s->close_requested = 1;
	s->close_status = close_status;
	lws_callback_on_writable(s->wsi);
	lws_sul_schedule(s->context, 0, &s->sul_stop, on_stop_timeout, CLOSE_WAIT_US);
}

static void connect_now(lws_sorted_usec_list_t *sul);

static void
schedule_reconnect(struct tail_session *s, const char *why)
{
	unsigned shift = s->attempt < 6 ? s->attempt : 6;
	uint32_t max_ms = (uint32_t)BACKOFF_BASE_MS << shift;
	uint32_t random = 0;
	uint32_t delay_ms;

	if (max_ms > BACKOFF_CAP_MS)
		max_ms = BACKOFF_CAP_MS;
	lws_get_random(s->context, &random, sizeof(random));
	delay_ms = random % (max_ms + 1);

	s->attempt++;
	tail_info("%s; reconnecting in %u.%03u s (attempt %u)", why,
		  delay_ms / 1000, delay_ms % 1000, s->attempt);
	lws_sul_schedule(s->context, 0, &s->sul_connect, connect_now,
			 (lws_usec_t)delay_ms * LWS_US_PER_MS);
}

/* Exit for close codes and HTTP statuses that a retry cannot fix. */
static int
stop_if_rejected(struct tail_session *s, int code, const char *detail)
{
	switch (code) {
	case 401:
	case 4401:
		tail_error("the server rejected the key (%d unauthenticated): check --key or CANARY_KEY", code);
		break;
	case 403:
	case 4403:
		tail_error("the server refused access (%d forbidden): the key needs the subscribe scope and access to the filtered domains", code);
		break;
	case 400:
	case 4400:
		tail_error("the server rejected the request (%d bad request)%s%s: check the options",
			   code, detail[0] ? ": " : "", detail);
		break;
	case 404:
		tail_error("the server has no stream at path %s (HTTP 404): check the --url path",
			   s->opts->url.path);
		break;
	default:
		return 0;
	}

	begin_stop(s, TAIL_EXIT_REJECTED, LWS_CLOSE_STATUS_NORMAL);
	return 1;
}

/* Decide what follows a closed or failed connection. */
static void
on_disconnected(struct tail_session *s, int code, const char *why)
{
	lws_usec_t now = lws_now_usecs();

	s->wsi = NULL;
	if (s->established_us && now - s->established_us >= BACKOFF_RESET_US)
		s->attempt = 0;
	s->established_us = 0;

	/* Keep the cursor current before waiting, so a kill loses nothing. */
	if (s->save_pending) {
		lws_sul_cancel(&s->sul_cursor);
		s->save_pending = 0;
	}
	if (save_cursor_now(s)) {
		s->stopping = 1;
		s->exit_status = TAIL_EXIT_FAILURE;
	}

	if (s->stopping) {
		lws_sul_cancel(&s->sul_stop);
		s->done = 1;
		return;
	}

	if (stop_if_rejected(s, code, s->close_reason))
		return;

	schedule_reconnect(s, why);
}

static void
connect_now(lws_sorted_usec_list_t *sul)
{
	struct tail_session *s = lws_container_of(sul, struct tail_session, sul_connect);
	const struct tail_url *url = &s->opts->url;
	struct lws_client_connect_info info;

	memset(&info, 0, sizeof(info));
	info.context = s->context;
	info.address = url->host;
	info.port = url->port;
	info.path = url->path;
	info.host = url->host_header;
	info.ssl_connection = url->tls ? LCCSCF_USE_SSL : 0;
	info.protocol = s->opts->msgpack ? SUBPROTOCOL_MSGPACK : SUBPROTOCOL_JSON;
	info.local_protocol_name = "canary-tail";
	info.retry_and_idle_policy = &idle_policy;
	info.pwsi = &s->wsi;

	s->close_code = 0;
	s->close_reason[0] = '\0';
	s->send_subscribe = 0;
	s->close_requested = 0;

	/* A failed start may already have run the connection-error callback. */
	if (!lws_client_connect_via_info(&info) && !s->done && !s->stopping &&
	    !s->sul_connect.list.owner)
		on_disconnected(s, 0, "cannot start a connection");
}

static int
write_subscribe(struct tail_session *s, struct lws *wsi)
{
	char *text = tail_stream_subscribe_message(&s->stream);
	unsigned char *buf = NULL;
	size_t len;
	int rc = -1;

	if (!text)
		goto out;

	if (s->stream.have_resume)
		tail_info("subscribing from since_seq %lld", (long long)s->stream.resume_seq);
	else if (s->opts->since_time)
		tail_info("subscribing from since_time %s", s->opts->since_time);
	else if (s->opts->has_since_seq)
		tail_info("subscribing from since_seq %lld", (long long)s->opts->since_seq);
	else
		tail_info("subscribing to live signals");

	len = strlen(text);
	buf = malloc(LWS_PRE + len);
	if (!buf)
		goto out;
	memcpy(buf + LWS_PRE, text, len);

	/* A short write is buffered by lws and is not an error. */
	if (lws_write(wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < 0)
		goto out;

	rc = 0;

out:
	if (rc)
		tail_error("cannot send the subscribe message");
	free(buf);
	free(text);
	return rc;
}

/*
 * Apply the action that the stream module returns. Stopping goes through the
 * writable callback: returning -1 from LWS_CALLBACK_CLIENT_RECEIVE in the
 * middle of a fragmented message crashed libwebsockets 4.1.6 in a test.
 */
static void
apply_action(struct tail_session *s, struct lws *wsi, enum tail_stream_action action)
{
	switch (action) {
	case TAIL_STREAM_CONTINUE:
		break;

	case TAIL_STREAM_SEND_SUBSCRIBE:
		s->send_subscribe = 1;
		lws_callback_on_writable(wsi);
		break;

	case TAIL_STREAM_DONE:
		tail_info("printed %lld signal%s: stopping", (long long)s->stream.printed_count,
			  s->stream.printed_count == 1 ? "" : "s");
		begin_stop(s, TAIL_EXIT_OK, LWS_CLOSE_STATUS_NORMAL);
		break;

	case TAIL_STREAM_REJECTED:
		begin_stop(s, TAIL_EXIT_REJECTED, LWS_CLOSE_STATUS_NORMAL);
		break;

	case TAIL_STREAM_OUTPUT_ERROR:
		tail_error("cannot write signals to standard output: stopping");
		begin_stop(s, TAIL_EXIT_FAILURE, LWS_CLOSE_STATUS_NORMAL);
		break;

	case TAIL_STREAM_PROTOCOL_ERROR:
		begin_stop(s, TAIL_EXIT_FAILURE, LWS_CLOSE_STATUS_PROTOCOL_ERR);
		break;
	}

	save_cursor_paced(s);
}

static void
record_close_frame(struct tail_session *s, const unsigned char *payload, size_t len)
{
	if (len < 2)
		return;

	s->close_code = (payload[0] << 8) | payload[1];
	copy_printable(s->close_reason, sizeof(s->close_reason),
		       (const char *)payload + 2, len - 2);
}

static void
on_connection_error(struct tail_session *s, struct lws *wsi, const char *in, size_t len)
{
	char why[200];
	char detail[128];
	int status = wsi ? (int)lws_http_client_http_response(wsi) : 0;

	copy_printable(detail, sizeof(detail), in ? in : "unknown error",
		       in ? strnlen(in, sizeof(detail)) : sizeof(detail));
	if (status)
		snprintf(why, sizeof(why), "connection failed (HTTP %d: %s)", status, detail);
	else
		snprintf(why, sizeof(why), "connection failed (%s)", detail);

	s->close_reason[0] = '\0';
	on_disconnected(s, status, why);
}

static void
on_closed(struct tail_session *s)
{
	char why[200];

	if (s->close_code)
		snprintf(why, sizeof(why), "connection closed by the server (code %d%s%s)",
			 s->close_code, s->close_reason[0] ? ": " : "", s->close_reason);
	else
		snprintf(why, sizeof(why), "connection lost (code 1006, no close frame)");

	on_disconnected(s, s->close_code, why);
}

static int
callback_tail(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	      void *in, size_t len)
{
	struct tail_session *s = wsi ? lws_context_user(lws_get_context(wsi)) : NULL;
	unsigned char **p = (unsigned char **)in;
	char header[TAIL_KEY_MAX + 16];

	if (!s || s->done)
		return lws_callback_http_dummy(wsi, reason, user, in, len);

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		snprintf(header, sizeof(header), "Bearer %s", s->opts->key);
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)"authorization:",
						(const unsigned char *)header, (int)strlen(header),
						p, *p + len)) {
			explicit_bzero(header, sizeof(header));
			return -1;
		}
		explicit_bzero(header, sizeof(header));
		return 0;

	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		s->established_us = lws_now_usecs();
		tail_stream_connection_reset(&s->stream);
		tail_info("connected to %s", s->opts->url.host_header);
		return 0;

	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (s->stopping)
			return 0;
		if (!lws_frame_is_binary(wsi) != !s->opts->msgpack) {
			tail_error("the server sent a %s frame on the %s subprotocol",
				   s->opts->msgpack ? "text" : "binary",
				   s->opts->msgpack ? SUBPROTOCOL_MSGPACK : SUBPROTOCOL_JSON);
			apply_action(s, wsi, TAIL_STREAM_PROTOCOL_ERROR);
			return 0;
		}
		if (s->opts->msgpack)
			apply_action(s, wsi, tail_stream_receive_msgpack(&s->stream, in, len,
									 lws_is_final_fragment(wsi) &&
									 !lws_remaining_packet_payload(wsi)));
		else
			apply_action(s, wsi, tail_stream_receive(&s->stream, in, len,
								 lws_is_final_fragment(wsi)));
		return 0;

	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (s->close_requested) {
			lws_close_reason(wsi, s->close_status, NULL, 0);
			return -1;
		}
		if (s->send_subscribe) {
			s->send_subscribe = 0;
			return write_subscribe(s, wsi);
		}
		return 0;

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		record_close_frame(s, in, len);
		return 0;

	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		on_connection_error(s, wsi, in, len);
		return 0;

	case LWS_CALLBACK_CLIENT_CLOSED:
		on_closed(s);
		return 0;

	default:
		break;
	}

	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
	{ "canary-tail", callback_tail, 0, 16384, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static int
install_signal_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL))
		return -1;

	/* No SA_RESTART, because poll() must return for the loop to check the flag. */
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
		return -1;
	return 0;
}

enum tail_exit
tail_session_run(const struct tail_options *opts, const struct tail_cursor *loaded)
{
	struct lws_context_creation_info info;
	struct tail_session *s = NULL;
	enum tail_exit status = TAIL_EXIT_FAILURE;

	lws_set_log_level(LLL_ERR, emit_lws_log);

	s = calloc(1, sizeof(*s));
	if (!s) {
		tail_error("out of memory");
		goto out;
	}
	s->opts = opts;
	tail_stream_init(&s->stream, opts, stdout, loaded);

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.user = s;
	info.fd_limit_per_thread = 16;
	if (opts->url.tls) {
		info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.client_ssl_ca_filepath = opts->cacert;
	}

	s->context = lws_create_context(&info);
	if (!s->context) {
		tail_error("cannot create the libwebsockets context%s",
			   opts->cacert ? ": check that --cacert names a readable PEM file" : "");
		goto out;
	}

	signal_context = s->context;
	if (install_signal_handlers()) {
		tail_error("cannot install signal handlers");
		goto out;
	}

	lws_sul_schedule(s->context, 0, &s->sul_connect, connect_now, 1);

	while (!s->done) {
		if (lws_service(s->context, 0) < 0) {
			tail_error("the libwebsockets event loop failed: stopping");
			s->exit_status = TAIL_EXIT_FAILURE;
			break;
		}
		if (stop_signal && !s->stopping) {
			/* Names the signal (SIGTERM), because "signal 15" reads
			 * like a canary signal record. */
			const char *name = sigabbrev_np((int)stop_signal);

			if (name)
				tail_info("received SIG%s: closing", name);
			else
				tail_info("received operating system signal %d: closing",
					  (int)stop_signal);
			begin_stop(s, TAIL_EXIT_OK, LWS_CLOSE_STATUS_NORMAL);
		}
	}

	status = s->exit_status;
	if (save_cursor_now(s))
		status = TAIL_EXIT_FAILURE;

out:
	if (s && s->context) {
		/* Closing a connection here must not schedule a reconnect. */
		s->done = 1;
		signal_context = NULL;
		lws_context_destroy(s->context);
	}
	if (s)
		tail_stream_free(&s->stream);
	free(s);
	return status;
}
