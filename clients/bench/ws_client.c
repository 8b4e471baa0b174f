/*
 * The benchmark's WebSocket client: see ws_client.h.
 */
#include "ws_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A zeroed struct wsc is closed. */
enum { WSC_CLOSED, WSC_CONNECTING, WSC_UPGRADING, WSC_OPEN };

/* Bytes requested of recv() at once, and the maximum size of the upgrade
 * response headers. */
#define WSC_READ_CHUNK (256 * 1024)
#define WSC_HEADERS_MAX 4096

#define OP_CONTINUATION 0x0
#define OP_TEXT 0x1
#define OP_BINARY 0x2
#define OP_CLOSE 0x8
#define OP_PING 0x9
#define OP_PONG 0xa

static void wsc_fail(struct wsc *w, const char *why)
{
	if (w->state == WSC_CLOSED)
		return;
	wsc_close(w);
	if (w->on->closed)
		w->on->closed(w, why);
}

/* Writes one masked frame. The mask is fixed: a server cannot tell it
 * from a random one, and the benchmark has nothing to hide. */
static int wsc_send_frame(struct wsc *w, int opcode, const char *data, size_t len)
{
	static const uint8_t mask[4] = { 0x5a, 0x17, 0xc3, 0x81 };
	uint8_t frame[14 + 1024];
	size_t off = 0;
	ssize_t n;

	if (len > 1024 || w->state != WSC_OPEN)
		return -1;
	frame[off++] = (uint8_t)(0x80 | opcode);
	if (len < 126) {
		frame[off++] = (uint8_t)(0x80 | len);
	} else {
		frame[off++] = 0x80 | 126;
		frame[off++] = (uint8_t)(len >> 8);
		frame[off++] = (uint8_t)len;
	}
	memcpy(frame + off, mask, 4);
	off += 4;
	for (size_t i = 0; i < len; i++)
		frame[off + i] = (uint8_t)data[i] ^ mask[i & 3];
	off += len;
	n = send(w->fd, frame, off, MSG_NOSIGNAL);
	return n == (ssize_t)off ? 0 : -1;
}

int wsc_send_text(struct wsc *w, const char *data, size_t len)
{
	return wsc_send_frame(w, OP_TEXT, data, len);
}

static int wsc_reserve(struct wsc *w, size_t need)
{
	size_t cap = w->cap ? w->cap : WSC_READ_CHUNK;
	char *p = NULL;

	if (need <= w->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	p = realloc(w->buf, cap);
	if (!p)
		return -1;
	w->buf = p;
	w->cap = cap;
	return 0;
}

/* Handles one complete frame; returns -1 when the connection ended. */
static int wsc_frame(struct wsc *w, int fin, int opcode, const char *payload,
		     size_t len)
{
	char *joined = NULL;

	switch (opcode) {
	case OP_PING:
		if (wsc_send_frame(w, OP_PONG, payload, len)) {
			wsc_fail(w, "cannot answer a ping");
			return -1;
		}
		return 0;
	case OP_PONG:
		return 0;
	case OP_CLOSE: {
		char why[160];
		unsigned code = 1005;
		int reason_len = 0;

		if (len >= 2)
			code = (uint8_t)payload[0] << 8 | (uint8_t)payload[1];
		if (len > 2)
			reason_len = len - 2 > 100 ? 100 : (int)(len - 2);
		snprintf(why, sizeof(why), "closed by the server with %u %.*s", code,
			 reason_len, len > 2 ? payload + 2 : "");
		wsc_fail(w, why);
		return -1;
	}
	case OP_TEXT:
	case OP_BINARY:
		if (w->msg_len || w->msg) {
			wsc_fail(w, "a new message began inside a fragmented one");
			return -1;
		}
		if (fin) {
			w->on->message(w, opcode == OP_BINARY, payload, len);
			return w->state == WSC_OPEN ? 0 : -1;
		}
		w->msg_binary = opcode == OP_BINARY;
		break;
	case OP_CONTINUATION:
		if (!w->msg) {
			wsc_fail(w, "a continuation frame without a message");
			return -1;
		}
		break;
	default:
		wsc_fail(w, "a frame with an unknown opcode");
		return -1;
	}

	/* A fragment: joined until the final one arrives. */
	if (w->msg_len + len > w->max_message) {
		wsc_fail(w, "a message larger than the limit");
		return -1;
	}
	joined = realloc(w->msg, w->msg_len + len + 1);
	if (!joined) {
		wsc_fail(w, "out of memory");
		return -1;
	}
	w->msg = joined;
	memcpy(w->msg + w->msg_len, payload, len);
	w->msg_len += len;
	if (!fin)
		return 0;
	w->on->message(w, w->msg_binary, w->msg, w->msg_len);
	free(w->msg);
	w->msg = NULL;
	w->msg_len = 0;
	return w->state == WSC_OPEN ? 0 : -1;
}

/* Handles every complete frame in the buffer and keeps the rest. */
static void wsc_frames(struct wsc *w)
{
	size_t off = 0;

	while (w->len - off >= 2) {
		const uint8_t *h = (const uint8_t *)w->buf + off;
		size_t avail = w->len - off, hlen = 2;
		uint64_t plen = h[1] & 0x7f;

		if (h[1] & 0x80) {
			wsc_fail(w, "the server sent a masked frame");
			return;
		}
		if (plen == 126) {
			if (avail < 4)
				break;
			plen = (uint64_t)h[2] << 8 | h[3];
			hlen = 4;
		} else if (plen == 127) {
			if (avail < 10)
				break;
			plen = 0;
			for (int i = 0; i < 8; i++)
				plen = plen << 8 | h[2 + i];
			hlen = 10;
		}
		if (plen > w->max_message) {
			wsc_fail(w, "a frame larger than the limit");
			return;
		}
		if (avail < hlen + plen) {
			if (wsc_reserve(w, hlen + (size_t)plen)) {
				wsc_fail(w, "out of memory");
				return;
			}
			break;
		}
		if (wsc_frame(w, h[0] & 0x80, h[0] & 0x0f, (const char *)h + hlen,
			      (size_t)plen))
			return;
		off += hlen + (size_t)plen;
	}
	if (off) {
		memmove(w->buf, w->buf + off, w->len - off);
		w->len -= off;
	}
}

/* Reads the upgrade response; returns 1 when the connection is open, 0
 * while more bytes are needed, -1 when it failed. */
static int wsc_upgraded(struct wsc *w)
{
	char *end = NULL;
	size_t hlen;

	if (w->len < 12)
		return 0;
	if (memcmp(w->buf, "HTTP/1.1 101", 12)) {
		char why[160];
		char *eol = memchr(w->buf, '\r', w->len);
		size_t status_len = eol ? (size_t)(eol - w->buf) : w->len;

		snprintf(why, sizeof(why), "the upgrade was rejected: %.*s",
			 (int)(status_len > 100 ? 100 : status_len), w->buf);
		wsc_fail(w, why);
		return -1;
	}
	end = memmem(w->buf, w->len, "\r\n\r\n", 4);
	if (!end) {
		if (w->len >= WSC_HEADERS_MAX)
			wsc_fail(w, "the upgrade response headers are too long");
		return w->len >= WSC_HEADERS_MAX ? -1 : 0;
	}
	hlen = (size_t)(end - w->buf) + 4;
	memmove(w->buf, w->buf + hlen, w->len - hlen);
	w->len -= hlen;
	w->state = WSC_OPEN;
	if (w->on->open)
		w->on->open(w);
	return w->state == WSC_OPEN ? 1 : -1;
}

static void wsc_readable(struct wsc *w)
{
	for (;;) {
		size_t want;
		ssize_t n;

		if (wsc_reserve(w, w->len + WSC_READ_CHUNK / 4)) {
			wsc_fail(w, "out of memory");
			return;
		}
		want = w->cap - w->len;
		n = recv(w->fd, w->buf + w->len, want, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			wsc_fail(w, n ? "reading failed" : "the server closed the connection");
			return;
		}
		w->len += (size_t)n;
		if (w->state == WSC_UPGRADING && wsc_upgraded(w) <= 0)
			return;
		wsc_frames(w);
		/* A short read means the socket is drained for now. */
		if (w->state != WSC_OPEN || (size_t)n < want)
			return;
	}
}

static int wsc_send_upgrade(struct wsc *w, const char *host, int port,
			    const char *path, const char *protocol, const char *key)
{
	char req[1024];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Key: Y2FuYXJ5LWJlbmNoLWtleQ==\r\n"
			 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n"
			 "Authorization: Bearer %s\r\n\r\n",
			 path, host, port, protocol, key);

	if (n <= 0 || (size_t)n >= sizeof(req))
		return -1;
	return send(w->fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* The upgrade request's fields, kept until the connect completes. */
struct wsc_pending {
	char host[64];
	int port;
	char path[64];
	char protocol[64];
	char key[256];
};

static void wsc_on_poll(uv_poll_t *h, int status, int events)
{
	struct wsc *w = h->data;

	if (w->state == WSC_CLOSED)
		return;
	if (status < 0) {
		wsc_fail(w, uv_strerror(status));
		return;
	}
	if (w->state == WSC_CONNECTING && (events & UV_WRITABLE)) {
		struct wsc_pending *p = w->pending;
		int err = 0;
		socklen_t elen = sizeof(err);

		getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
		if (err || wsc_send_upgrade(w, p->host, p->port, p->path, p->protocol,
					    p->key)) {
			wsc_fail(w, err ? strerror(err) : "cannot send the upgrade request");
			return;
		}
		free(w->pending);
		w->pending = NULL;
		w->state = WSC_UPGRADING;
		uv_poll_start(&w->poll, UV_READABLE, wsc_on_poll);
		return;
	}
	if (events & UV_READABLE)
		wsc_readable(w);
}

int wsc_connect(struct wsc *w, uv_loop_t *loop, const char *host, int port,
		const char *source, const char *path, const char *protocol,
		const char *key, size_t max_message,
		const struct wsc_handlers *on, void *user)
{
	struct sockaddr_in to, from;
	struct wsc_pending *p = NULL;
	int one = 1;

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->state = WSC_CLOSED;
	w->on = on;
	w->user = user;
	w->max_message = max_message;

	memset(&to, 0, sizeof(to));
	to.sin_family = AF_INET;
	to.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &to.sin_addr) != 1)
		return -1;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -1;
	snprintf(p->host, sizeof(p->host), "%s", host);
	p->port = port;
	snprintf(p->path, sizeof(p->path), "%s", path);
	snprintf(p->protocol, sizeof(p->protocol), "%s", protocol);
	snprintf(p->key, sizeof(p->key), "%s", key);

	w->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (w->fd < 0)
		goto fail;
	setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (source) {
		memset(&from, 0, sizeof(from));
		from.sin_family = AF_INET;
		if (inet_pton(AF_INET, source, &from.sin_addr) != 1 ||
		    bind(w->fd, (struct sockaddr *)&from, sizeof(from)))
			goto fail;
	}
	if (connect(w->fd, (struct sockaddr *)&to, sizeof(to)) && errno != EINPROGRESS)
		goto fail;
	if (uv_poll_init(loop, &w->poll, w->fd))
		goto fail;
	w->poll.data = w;
	w->pending = p;
	p = NULL;
	w->state = WSC_CONNECTING;
	uv_poll_start(&w->poll, UV_WRITABLE, wsc_on_poll);
	return 0;

fail:
	free(p);
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	return -1;
}

static void wsc_handle_closed(uv_handle_t *h)
{
	struct wsc *w = h->data;

	free(w->buf);
	free(w->msg);
	free(w->pending);
	w->buf = NULL;
	w->msg = NULL;
	w->pending = NULL;
	w->len = w->cap = w->msg_len = 0;
}

void wsc_close(struct wsc *w)
{
	static const char normal[2] = { 0x03, (char)0xe8 };    /* 1000 */

	if (w->state == WSC_CLOSED || w->fd < 0)
		return;
	/* A close frame, so that the server logs a normal close. The socket
	 * closes without waiting for the server's reply. */
	if (w->state == WSC_OPEN)
		wsc_send_frame(w, OP_CLOSE, normal, sizeof(normal));
	w->state = WSC_CLOSED;
	uv_poll_stop(&w->poll);
	uv_close((uv_handle_t *)&w->poll, wsc_handle_closed);
	close(w->fd);
	w->fd = -1;
}
