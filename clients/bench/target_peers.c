/*
 * The peer brokers, driven the same way as canaryd: mosquitto (MQTT 3.1.1,
 * QoS 0, topic canary/<domain>; the publisher through libmosquitto) and
 * Redis pub/sub (channel canary.<domain>, through hiredis). Every subscriber is its own
 * client connection, and one epoll loop on this thread serves them all.
 * The publisher sends the same JSON text that canaryd ingests, one message
 * per signal, paced by bench_due.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>
#include <mosquitto.h>

#define EVENTS_MAX 1024
/* Signals published per loop turn, at most. */
#define PUBLISH_BURST 512
#define SIGNAL_TEXT_MAX 1024

enum phase { PHASE_CONNECT, PHASE_RUN, PHASE_DRAIN, PHASE_DONE };

/* The phase logic shared by both peers; returns the new phase. */
static enum phase advance(struct bench_run *r, enum phase phase,
			  unsigned ready, int64_t *deadline, int64_t now)
{
	switch (phase) {
	case PHASE_CONNECT:
		if (ready == r->o->subscribers) {
			bench_sample_rss(r);
			r->start_ns = now;
			*deadline = now + (int64_t)(r->o->duration_s * 1e9);
			return PHASE_RUN;
		}
		if (now > *deadline)
			bench_fail(r, "only %u of %u subscribers were subscribed in time",
				   ready, r->o->subscribers);
		return phase;
	case PHASE_RUN:
		if (now < *deadline)
			return phase;
		r->stop_ns = now;
		*deadline = now + (int64_t)(r->o->drain_s * 1e9);
		return PHASE_DRAIN;
	case PHASE_DRAIN:
		if ((r->received >= r->expected && r->acked >= r->sent) || now > *deadline)
			return PHASE_DONE;
		return phase;
	default:
		return phase;
	}
}

static int64_t connect_deadline(const struct bench_run *r)
{
	return bench_now_ns() + (int64_t)(30 + r->o->subscribers / 200) * 1000000000;
}

/* ---- mosquitto ---- */

/*
 * The publisher is a libmosquitto client. The subscribers are plain
 * sockets that speak the few MQTT 3.1.1 packets a QoS 0 subscriber needs
 * (CONNECT, SUBSCRIBE, and CONNACK, SUBACK and PUBLISH back), read with
 * large recv() calls, as the canaryd and Redis subscribers are.
 * libmosquitto opens a socket pair besides each connection, so 10,000 of
 * its clients needed 30,000 descriptors, over the open file limit of the
 * machines this ran on. With 1,000 subscribers both clients measured the
 * same rate, with the broker using a whole core.
 */

#define MQTT_READ_CHUNK (64 * 1024)
#define MQTT_CONNACK 2
#define MQTT_PUBLISH 3
#define MQTT_SUBACK 9
#define MQTT_PINGRESP 13

struct mq_sub {
	struct mq *mq;
	unsigned index;
	int fd;
	int subscribed;
	char *buf;
	size_t len;
	size_t cap;
};

struct mq {
	struct bench_run *r;
	int epfd;
	unsigned ready;
	struct mq_sub *subs;
	struct mosquitto *pub;
	int pub_out;                    /* EPOLLOUT registered for pub */
};

static void mq_on_disconnect(struct mosquitto *m, void *obj, int rc)
{
	struct mq *mq = obj;

	bench_fail(mq->r, "mosquitto closed the publisher's connection: %s",
		   mosquitto_strerror(rc));
}

/* Appends an MQTT string (length, then bytes) at p; returns the end. */
static uint8_t *mqtt_string(uint8_t *p, const char *str)
{
	size_t n = strlen(str);

	*p++ = (uint8_t)(n >> 8);
	*p++ = (uint8_t)n;
	memcpy(p, str, n);
	return p + n;
}

/* Appends a packet's fixed header for a body of n bytes (n < 16,384). */
static uint8_t *mqtt_header(uint8_t *p, uint8_t first, size_t n)
{
	*p++ = first;
	if (n < 128) {
		*p++ = (uint8_t)n;
	} else {
		*p++ = (uint8_t)(0x80 | (n & 0x7f));
		*p++ = (uint8_t)(n >> 7);
	}
	return p;
}

/* Connects subscriber i and sends CONNECT and SUBSCRIBE at once, which
 * MQTT permits before the CONNACK arrives. Keep-alive 0: no pings. */
static int mq_sub_open(struct mq *mq, struct mq_sub *s, unsigned i,
		       const char *host, int port)
{
	uint8_t body[256], packet[600], *p = NULL, *b = NULL;
	char source[16] = "", id[32], domain[64], topic[96];
	struct sockaddr_in to, from;
	struct epoll_event ev;
	int one = 1;

	s->mq = mq;
	s->index = i;
	memset(&to, 0, sizeof(to));
	to.sin_family = AF_INET;
	to.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &to.sin_addr) != 1) {
		bench_fail(mq->r, "--peer-url host \"%s\" is invalid: give an IPv4 address", host);
		return -1;
	}
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		goto fail;
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!strncmp(host, "127.", 4)) {
		bench_source_address(mq->r, i, source);
		memset(&from, 0, sizeof(from));
		from.sin_family = AF_INET;
		if (inet_pton(AF_INET, source, &from.sin_addr) != 1 ||
		    bind(s->fd, (struct sockaddr *)&from, sizeof(from)))
			goto fail;
	}
	if (connect(s->fd, (struct sockaddr *)&to, sizeof(to)))
		goto fail;

	snprintf(id, sizeof(id), "bench-%u", i);
	b = mqtt_string(body, "MQTT");
	*b++ = 4;                       /* protocol level 3.1.1 */
	*b++ = 0x02;                    /* clean session */
	*b++ = 0;                       /* keep-alive 0 */
	*b++ = 0;
	b = mqtt_string(b, id);
	p = mqtt_header(packet, 0x10, (size_t)(b - body));
	memcpy(p, body, (size_t)(b - body));
	p += b - body;

	bench_sub_domain(mq->r, i, domain);
	snprintf(topic, sizeof(topic), "canary/%s", domain);
	b = body;
	*b++ = 0;                       /* packet id 1 */
	*b++ = 1;
	b = mqtt_string(b, topic);
	*b++ = 0;                       /* QoS 0 */
	p = mqtt_header(p, 0x82, (size_t)(b - body));
	memcpy(p, body, (size_t)(b - body));
	p += b - body;
	if (send(s->fd, packet, (size_t)(p - packet), MSG_NOSIGNAL) != p - packet)
		goto fail;

	fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = s;
	if (epoll_ctl(mq->epfd, EPOLL_CTL_ADD, s->fd, &ev))
		goto fail;
	return 0;

fail:
	bench_fail(mq->r, "cannot connect subscriber %u to mosquitto at %s:%d: %s", i,
		   host, port, strerror(errno));
	return -1;
}

/* Handles the complete packets in the buffer; returns -1 on a failure. */
static int mq_sub_packets(struct mq_sub *s, int64_t now)
{
	size_t off = 0;

	while (s->len - off >= 2) {
		const uint8_t *h = (const uint8_t *)s->buf + off;
		size_t avail = s->len - off, rl = 0, hl = 1;
		int shift = 0;

		do {
			if (hl >= avail)
				goto partial;
			if (hl > 4) {
				bench_fail(s->mq->r, "mosquitto sent an invalid packet length");
				return -1;
			}
			rl |= (size_t)(h[hl] & 0x7f) << shift;
			shift += 7;
		} while (h[hl++] & 0x80);
		if (avail < hl + rl) {
			if (hl + rl > s->cap) {
				char *grown = realloc(s->buf, hl + rl);

				if (!grown) {
					bench_fail(s->mq->r, "out of memory");
					return -1;
				}
				s->buf = grown;
				s->cap = hl + rl;
			}
			goto partial;
		}

		const uint8_t *body = h + hl;

		switch (h[0] >> 4) {
		case MQTT_CONNACK:
			if (rl != 2 || body[1]) {
				bench_fail(s->mq->r, "mosquitto refused a connection: %s",
					   rl == 2 ? mosquitto_connack_string(body[1]) : "bad CONNACK");
				return -1;
			}
			break;
		case MQTT_SUBACK:
			if (rl < 3 || body[2] == 0x80) {
				bench_fail(s->mq->r, "mosquitto refused a subscription");
				return -1;
			}
			if (!s->subscribed) {
				s->subscribed = 1;
				s->mq->ready++;
			}
			break;
		case MQTT_PUBLISH: {
			size_t topic = rl >= 2 ? (size_t)(body[0] << 8 | body[1]) : rl;
			size_t skip = 2 + topic + (((h[0] >> 1) & 3) ? 2 : 0);

			if (skip > rl) {
				bench_fail(s->mq->r, "mosquitto sent an invalid PUBLISH");
				return -1;
			}
			bench_delivered(s->mq->r, (const char *)body + skip, rl - skip, now);
			break;
		}
		case MQTT_PINGRESP:
			break;
		default:
			bench_fail(s->mq->r, "mosquitto sent an unexpected packet type %u", h[0] >> 4);
			return -1;
		}
		off += hl + rl;
	}
partial:
	if (off) {
		memmove(s->buf, s->buf + off, s->len - off);
		s->len -= off;
	}
	return 0;
}

static void mq_sub_service(struct mq_sub *s, int64_t now)
{
	for (;;) {
		size_t want;
		ssize_t n;

		if (s->cap - s->len < MQTT_READ_CHUNK / 4) {
			size_t cap = s->cap ? s->cap * 2 : MQTT_READ_CHUNK;
			char *grown = realloc(s->buf, cap);

			if (!grown) {
				bench_fail(s->mq->r, "out of memory");
				return;
			}
			s->buf = grown;
			s->cap = cap;
		}
		want = s->cap - s->len;
		n = recv(s->fd, s->buf + s->len, want, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			bench_fail(s->mq->r, "mosquitto closed subscriber %u's connection", s->index);
			return;
		}
		s->len += (size_t)n;
		if (mq_sub_packets(s, now) || (size_t)n < want)
			return;
	}
}

/* Reads and writes what the publisher's socket allows. */
static void mq_pub_service(struct mq *mq, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		int rc = mosquitto_loop_read(mq->pub, 1);

		if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)
			bench_fail(mq->r, "reading from mosquitto failed: %s",
				   mosquitto_strerror(rc));
	}
	if (mosquitto_want_write(mq->pub))
		mosquitto_loop_write(mq->pub, 1);
}

static void mq_update_pub_out(struct mq *mq)
{
	int want = mosquitto_want_write(mq->pub);
	struct epoll_event ev;

	if (want == mq->pub_out)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
	ev.data.ptr = NULL;
	epoll_ctl(mq->epfd, EPOLL_CTL_MOD, mosquitto_socket(mq->pub), &ev);
	mq->pub_out = want;
}

static void mq_publish(struct mq *mq, int64_t now)
{
	struct bench_run *r = mq->r;
	uint64_t due = bench_due(r, now);
	char text[SIGNAL_TEXT_MAX], topic[96];

	if (due > PUBLISH_BURST)
		due = PUBLISH_BURST;
	for (uint64_t k = 0; k < due && !mosquitto_want_write(mq->pub); k++) {
		unsigned d = 0;
		size_t n = bench_signal_json(r, r->sent, now, text, sizeof(text), &d);

		snprintf(topic, sizeof(topic), "canary/bench%u.example", d);
		if (mosquitto_publish(mq->pub, NULL, topic, (int)n, text, 0, false) !=
		    MOSQ_ERR_SUCCESS) {
			bench_fail(r, "publishing to mosquitto failed");
			return;
		}
		bench_sent(r, d);
		r->acked++;
	}
	mq_update_pub_out(mq);
}

static int mq_pub_open(struct mq *mq, const char *host, int port)
{
	struct epoll_event ev;
	int rc;

	mq->pub = mosquitto_new(NULL, true, mq);
	if (!mq->pub) {
		bench_fail(mq->r, "out of memory");
		return -1;
	}
	mosquitto_disconnect_callback_set(mq->pub, mq_on_disconnect);
	rc = mosquitto_connect(mq->pub, host, port, 60);
	if (rc != MOSQ_ERR_SUCCESS) {
		bench_fail(mq->r, "cannot connect to mosquitto at %s:%d: %s", host, port,
			   rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		return -1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	return epoll_ctl(mq->epfd, EPOLL_CTL_ADD, mosquitto_socket(mq->pub), &ev);
}

int bench_mosquitto(struct bench_run *r)
{
	struct mq mq;
	char host[256];
	int port = 0;
	enum phase phase = PHASE_CONNECT;
	int64_t deadline = connect_deadline(r), last_misc = 0;
	struct epoll_event events[EVENTS_MAX];
	struct rlimit rl;

	memset(&mq, 0, sizeof(mq));
	mq.r = r;
	mq.epfd = -1;
	if (bench_parse_url(r->o->peer_url, "mqtt", host, &port)) {
		bench_fail(r, "--peer-url \"%s\" is invalid: use mqtt://HOST:PORT", r->o->peer_url);
		return -1;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)r->o->subscribers + 64) {
		bench_fail(r, "%u mosquitto subscribers need %u open files but the limit is %llu; raise ulimit -n or use fewer subscribers",
			   r->o->subscribers, r->o->subscribers + 64,
			   (unsigned long long)rl.rlim_cur);
		return -1;
	}
	mosquitto_lib_init();
	mq.epfd = epoll_create1(0);
	mq.subs = calloc(r->o->subscribers ? r->o->subscribers : 1, sizeof(*mq.subs));
	if (mq.epfd < 0 || !mq.subs) {
		bench_fail(r, "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < r->o->subscribers; i++)
		mq.subs[i].fd = -1;
	if (mq_pub_open(&mq, host, port))
		goto out;
	for (unsigned i = 0; i < r->o->subscribers && !r->failed; i++)
		mq_sub_open(&mq, &mq.subs[i], i, host, port);

	while (phase != PHASE_DONE && !r->failed) {
		int n = epoll_wait(mq.epfd, events, EVENTS_MAX, 1);
		int64_t now = bench_now_ns();

		for (int i = 0; i < n; i++) {
			if (events[i].data.ptr)
				mq_sub_service(events[i].data.ptr, now);
			else
				mq_pub_service(&mq, events[i].events);
		}
		if (phase == PHASE_RUN)
			mq_publish(&mq, now);
		if (now - last_misc > 1000000000) {
			last_misc = now;
			mosquitto_loop_misc(mq.pub);
		}
		phase = advance(r, phase, mq.ready, &deadline, now);
	}
	if (!r->stop_ns)
		r->stop_ns = bench_now_ns();

out:
	for (unsigned i = 0; mq.subs && i < r->o->subscribers; i++) {
		if (mq.subs[i].fd >= 0)
			close(mq.subs[i].fd);
		free(mq.subs[i].buf);
	}
	if (mq.pub) {
		/* The run is over: a broker's close is no longer a failure. */
		mosquitto_disconnect_callback_set(mq.pub, NULL);
		mosquitto_destroy(mq.pub);
	}
	free(mq.subs);
	if (mq.epfd >= 0)
		close(mq.epfd);
	mosquitto_lib_cleanup();
	return r->failed ? -1 : 0;
}

/* ---- Redis ---- */

struct rd {
	struct bench_run *r;
	int epfd;
	unsigned ready;
	redisContext **subs;
	redisContext *pub;
	int pub_out;
};

static void rd_handle_reply(struct rd *rd, redisContext *c, redisReply *reply,
			    int64_t now)
{
	if (c == rd->pub) {
		if (reply->type == REDIS_REPLY_INTEGER)
			rd->r->acked++;
		else
			bench_fail(rd->r, "Redis answered PUBLISH with an error: %s",
				   reply->type == REDIS_REPLY_ERROR ? reply->str : "?");
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (!strcmp(reply->element[0]->str, "message"))
		bench_delivered(rd->r, reply->element[2]->str, reply->element[2]->len, now);
	else if (!strcmp(reply->element[0]->str, "subscribe"))
		rd->ready++;
}

static void rd_flush(struct rd *rd, redisContext *c)
{
	int done = 0;

	if (redisBufferWrite(c, &done) != REDIS_OK)
		bench_fail(rd->r, "writing to Redis failed: %s", c->errstr);
	if (c == rd->pub && done == rd->pub_out) {
		struct epoll_event ev;

		/* EPOLLOUT while output is still pending. */
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | (done ? 0 : EPOLLOUT);
		ev.data.ptr = c;
		epoll_ctl(rd->epfd, EPOLL_CTL_MOD, c->fd, &ev);
		rd->pub_out = !done;
	}
}

static void rd_service(struct rd *rd, redisContext *c, uint32_t events, int64_t now)
{
	void *reply = NULL;

	if (events & EPOLLOUT)
		rd_flush(rd, c);
	if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	if (redisBufferRead(c) != REDIS_OK) {
		bench_fail(rd->r, "reading from Redis failed: %s", c->errstr);
		return;
	}
	while (redisGetReplyFromReader(c, &reply) == REDIS_OK && reply) {
		rd_handle_reply(rd, c, reply, now);
		freeReplyObject(reply);
		reply = NULL;
	}
}

static redisContext *rd_client_new(struct rd *rd, const char *host, int port,
				   const char *source)
{
	redisContext *c = source ? redisConnectBindNonBlock(host, port, source)
				 : redisConnectNonBlock(host, port);
	struct epoll_event ev;
	struct pollfd pfd;

	if (!c || c->err) {
		bench_fail(rd->r, "cannot connect to Redis at %s:%d: %s", host, port,
			   c ? c->errstr : "out of memory");
		return c;
	}
	/* The first write needs the connection: wait for it here. */
	pfd.fd = c->fd;
	pfd.events = POLLOUT;
	if (poll(&pfd, 1, 5000) != 1 || (pfd.revents & (POLLERR | POLLHUP))) {
		bench_fail(rd->r, "connecting to Redis at %s:%d failed or timed out", host, port);
		return c;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = c;
	epoll_ctl(rd->epfd, EPOLL_CTL_ADD, c->fd, &ev);
	return c;
}

static void rd_publish(struct rd *rd, int64_t now)
{
	struct bench_run *r = rd->r;
	uint64_t due = rd->pub_out ? 0 : bench_due(r, now);
	char text[SIGNAL_TEXT_MAX], channel[96];

	if (due > PUBLISH_BURST)
		due = PUBLISH_BURST;
	for (uint64_t k = 0; k < due; k++) {
		unsigned d = 0;
		size_t n = bench_signal_json(r, r->sent, now, text, sizeof(text), &d);

		snprintf(channel, sizeof(channel), "canary.bench%u.example", d);
		redisAppendCommand(rd->pub, "PUBLISH %s %b", channel, text, n);
		bench_sent(r, d);
	}
	if (due)
		rd_flush(rd, rd->pub);
}

int bench_redis(struct bench_run *r)
{
	struct rd rd;
	char host[256];
	int port = 0;
	enum phase phase = PHASE_CONNECT;
	int64_t deadline = connect_deadline(r);
	struct epoll_event events[EVENTS_MAX];

	memset(&rd, 0, sizeof(rd));
	rd.r = r;
	if (bench_parse_url(r->o->peer_url, "redis", host, &port)) {
		bench_fail(r, "--peer-url \"%s\" is invalid: use redis://HOST:PORT", r->o->peer_url);
		return -1;
	}
	rd.epfd = epoll_create1(0);
	rd.subs = calloc(r->o->subscribers ? r->o->subscribers : 1, sizeof(*rd.subs));
	if (rd.epfd < 0 || !rd.subs) {
		bench_fail(r, "out of memory");
		goto out;
	}
	rd.pub = rd_client_new(&rd, host, port, NULL);
	for (unsigned i = 0; i < r->o->subscribers && !r->failed; i++) {
		char domain[64], source[16];

		bench_source_address(r, i, source);
		rd.subs[i] = rd_client_new(&rd, host, port,
					   strncmp(host, "127.", 4) ? NULL : source);
		if (r->failed)
			break;
		bench_sub_domain(r, i, domain);
		redisAppendCommand(rd.subs[i], "SUBSCRIBE canary.%s", domain);
		rd_flush(&rd, rd.subs[i]);
	}

	while (phase != PHASE_DONE && !r->failed) {
		int n = epoll_wait(rd.epfd, events, EVENTS_MAX, 1);
		int64_t now = bench_now_ns();

		for (int i = 0; i < n; i++)
			rd_service(&rd, events[i].data.ptr, events[i].events, now);
		if (phase == PHASE_RUN)
			rd_publish(&rd, now);
		phase = advance(r, phase, rd.ready, &deadline, now);
	}
	if (!r->stop_ns)
		r->stop_ns = bench_now_ns();

out:
	for (unsigned i = 0; rd.subs && i < r->o->subscribers; i++)
		if (rd.subs[i])
			redisFree(rd.subs[i]);
	if (rd.pub)
		redisFree(rd.pub);
	free(rd.subs);
	if (rd.epfd >= 0)
		close(rd.epfd);
	return r->failed ? -1 : 0;
}
