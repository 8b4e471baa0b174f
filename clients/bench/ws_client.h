/*
 * A small WebSocket client for canary-bench's subscribers, on a libuv
 * loop. lws's client parses received frames a byte at a time, so at
 * several hundred thousand messages a second the benchmark measured that
 * parser instead of the server. This client reads with large recv()
 * calls and passes whole messages in place.
 *
 * It covers what the benchmark needs and nothing more: plain TCP (no
 * TLS), one upgrade request, unmasked frames from the server, masked
 * text frames and pongs to it. A connection is watched for reading only,
 * so its poll handle never changes once open.
 */
#ifndef CANARY_BENCH_WS_CLIENT_H
#define CANARY_BENCH_WS_CLIENT_H

#include <stddef.h>

#include <uv.h>

struct wsc;
struct wsc_pending;

struct wsc_handlers {
	void (*open)(struct wsc *w);
	/* One whole message; data stays valid until the call returns. */
	void (*message)(struct wsc *w, int binary, const char *data, size_t len);
	/* The connection failed or ended, for the reason in why. */
	void (*closed)(struct wsc *w, const char *why);
};

struct wsc {
	uv_poll_t poll;
	int fd;
	int state;
	const struct wsc_handlers *on;
	void *user;
	char *buf;              /* received bytes not handled yet */
	size_t len;
	size_t cap;
	size_t max_message;
	char *msg;              /* a fragmented message being joined */
	size_t msg_len;
	int msg_binary;
	struct wsc_pending *pending;    /* while connecting */
};

/*
 * Starts connecting to host:port (an IPv4 address) from source (an IPv4
 * address, or NULL), then upgrades on path with the subprotocol and the
 * bearer key. Returns 0, or -1 when the connection could not be started.
 */
int wsc_connect(struct wsc *w, uv_loop_t *loop, const char *host, int port,
		const char *source, const char *path, const char *protocol,
		const char *key, size_t max_message,
		const struct wsc_handlers *on, void *user);

/* Sends one text message, masked. Returns 0, or -1 when the socket did
 * not take it whole at once (only small messages are sent). */
int wsc_send_text(struct wsc *w, const char *data, size_t len);

/* Stops watching and closes the socket; the handle closes on the loop's
 * next turn. Safe to call twice. */
void wsc_close(struct wsc *w);

#endif
