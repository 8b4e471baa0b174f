/*
 * The peer brokers, driven the same way as canaryd: mosquitto (MQTT 3.1.1,
 * QoS 0, topic canary/<domain>, through libmosquitto) and Redis pub/sub
 * (channel canary.<domain>, through hiredis). Every subscriber is its own
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

#include <hiredis/hiredis.h>
#include <mosquitto.h>

#define EVENTS_MAX 1024
/* Packets read from one mosquitto socket per readiness event. */
#define MQTT_READS_PER_EVENT 256
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

struct mq {
	struct bench_run *r;
	int epfd;
	unsigned ready;
	struct mosquitto **subs;
	struct mosquitto *pub;
	int pub_out;                    /* EPOLLOUT registered for pub */
};

struct mq_client {
	struct mq *mq;
	unsigned index;
};

static void mq_on_message(struct mosquitto *m, void *obj,
			  const struct mosquitto_message *msg)
{
	struct mq_client *cl = obj;

	bench_delivered(cl->mq->r, msg->payload, (size_t)msg->payloadlen,
			bench_now_ns());
}

static void mq_on_subscribe(struct mosquitto *m, void *obj, int mid, int n,
			    const int *granted)
{
	struct mq_client *cl = obj;

	cl->mq->ready++;
}

static void mq_on_connect(struct mosquitto *m, void *obj, int rc)
{
	struct mq_client *cl = obj;
	char domain[64], topic[96];

	if (rc) {
		bench_fail(cl->mq->r, "mosquitto refused a connection: %s",
			   mosquitto_connack_string(rc));
		return;
	}
	bench_sub_domain(cl->mq->r, cl->index, domain);
	snprintf(topic, sizeof(topic), "canary/%s", domain);
	mosquitto_subscribe(m, NULL, topic, 0);
}

static void mq_on_disconnect(struct mosquitto *m, void *obj, int rc)
{
	struct mq_client *cl = obj;

	bench_fail(cl->mq->r, "mosquitto closed a connection: %s", mosquitto_strerror(rc));
}

static struct mosquitto *mq_client_new(struct mq *mq, unsigned index,
				       const char *host, int port, int sub)
{
	struct mq_client *cl = calloc(1, sizeof(*cl));
	struct mosquitto *m = NULL;
	struct epoll_event ev;
	char source[16] = "";
	int rc;

	if (!cl)
		return NULL;
	cl->mq = mq;
	cl->index = index;
	m = mosquitto_new(NULL, true, cl);
	if (!m) {
		free(cl);
		return NULL;
	}
	if (sub) {
		mosquitto_connect_callback_set(m, mq_on_connect);
		mosquitto_subscribe_callback_set(m, mq_on_subscribe);
		mosquitto_message_callback_set(m, mq_on_message);
	}
	mosquitto_disconnect_callback_set(m, mq_on_disconnect);
	if (sub && !strncmp(host, "127.", 4))
		bench_source_address(mq->r, index, source);
	rc = mosquitto_connect_bind(m, host, port, 60, source[0] ? source : NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		bench_fail(mq->r, "cannot connect to mosquitto at %s:%d: %s", host, port,
			   rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		return m;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = m;
	epoll_ctl(mq->epfd, EPOLL_CTL_ADD, mosquitto_socket(m), &ev);
	return m;
}

/* Reads what the socket holds, then writes what the client queued. */
static void mq_service(struct mq *mq, struct mosquitto *m, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		for (int k = 0; k < MQTT_READS_PER_EVENT; k++) {
			int rc;

			errno = 0;
			rc = mosquitto_loop_read(m, 1);
			if (rc != MOSQ_ERR_SUCCESS) {
				if (rc != MOSQ_ERR_NO_CONN)
					bench_fail(mq->r, "reading from mosquitto failed: %s",
						   mosquitto_strerror(rc));
				break;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
		}
	}
	if (mosquitto_want_write(m))
		mosquitto_loop_write(m, 1);
}

static void mq_update_pub_out(struct mq *mq)
{
	int want = mosquitto_want_write(mq->pub);
	struct epoll_event ev;

	if (want == mq->pub_out)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
	ev.data.ptr = mq->pub;
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
	if (bench_parse_url(r->o->peer_url, "mqtt", host, &port)) {
		bench_fail(r, "--peer-url \"%s\" is invalid: use mqtt://HOST:PORT", r->o->peer_url);
		return -1;
	}
	/* libmosquitto opens a socket pair besides each connection's socket. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)r->o->subscribers * 3 + 64) {
		bench_fail(r, "%u mosquitto subscribers need %u open files (3 each) but the limit is %llu; raise ulimit -n or use fewer subscribers",
			   r->o->subscribers, r->o->subscribers * 3 + 64,
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
	mq.pub = mq_client_new(&mq, 0, host, port, 0);
	for (unsigned i = 0; i < r->o->subscribers && !r->failed; i++) {
		mq.subs[i] = mq_client_new(&mq, i, host, port, 1);
		if (!mq.subs[i])
			bench_fail(r, "out of memory");
	}

	while (phase != PHASE_DONE && !r->failed) {
		int n = epoll_wait(mq.epfd, events, EVENTS_MAX, 1);
		int64_t now = bench_now_ns();

		for (int i = 0; i < n; i++)
			mq_service(&mq, events[i].data.ptr, events[i].events);
		if (phase == PHASE_RUN)
			mq_publish(&mq, now);
		if (now - last_misc > 1000000000) {
			last_misc = now;
			mosquitto_loop_misc(mq.pub);
			for (unsigned i = 0; i < r->o->subscribers; i++)
				if (mq.subs[i])
					mosquitto_loop_misc(mq.subs[i]);
		}
		phase = advance(r, phase, mq.ready, &deadline, now);
	}
	if (!r->stop_ns)
		r->stop_ns = bench_now_ns();

out:
	/* The run is over: a broker's close is no longer a failure. */
	for (unsigned i = 0; mq.subs && i < r->o->subscribers; i++) {
		if (!mq.subs[i])
			continue;
		mosquitto_disconnect_callback_set(mq.subs[i], NULL);
		free(mosquitto_userdata(mq.subs[i]));
		mosquitto_destroy(mq.subs[i]);
	}
	if (mq.pub) {
		mosquitto_disconnect_callback_set(mq.pub, NULL);
		free(mosquitto_userdata(mq.pub));
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
