/*
 * canary-bench: one fan-out scenario run against canaryd or a peer broker
 * (mosquitto, Redis pub/sub), with the same subscribers, filters, payload
 * and pacing, printing one JSON object of results.
 *
 * Scenario: `domains` = round(1 / match_ratio) brand domains
 * bench0.example ... ; subscriber i watches domain i % domains, and signal
 * k targets domain k % domains, so each signal matches the given fraction
 * of subscribers. Each signal carries its send time (CLOCK_MONOTONIC
 * nanoseconds of this process) in campaign_id as "t<ns>", and a
 * subscriber's latency is the receipt time minus that.
 *
 * Pacing: every millisecond the sender sends what the rate makes due
 * (everything, when the rate is 0), but never lets the deliveries still
 * expected pass `window`. The window keeps a saturation run from
 * overflowing any broker's queues, so every target is measured at the
 * highest rate its subscribers keep up with.
 */
#ifndef CANARY_BENCH_H
#define CANARY_BENCH_H

#include <stddef.h>
#include <stdint.h>

struct bench_opts {
	const char *url;                /* ws://HOST:PORT */
	const char *key;
	const char *peer;               /* NULL, "mosquitto" or "redis" */
	const char *peer_url;           /* mqtt://HOST:PORT, redis://HOST:PORT */
	int msgpack;                    /* --format msgpack */
	unsigned subscribers;
	double match_ratio;
	double rate;                    /* signals/s, 0: as fast as possible */
	double duration_s;
	unsigned batch_max;             /* signals per ingest message */
	uint64_t window;                /* deliveries outstanding at most */
	double drain_s;                 /* wait for the rest after the run */
	int rss_pid;                    /* 0, or a process whose RSS to report */
	uint64_t replay;                /* > 0: replay benchmark of this many */
	unsigned subs_per_conn;         /* canaryd: subscriptions per connection */
};

/* Latency histogram: one bucket per microsecond up to HIST_MAX_US. */
#define HIST_MAX_US 2000000

struct bench_run {
	const struct bench_opts *o;
	unsigned domains;
	uint64_t *subs_per_domain;      /* subscribers watching each domain */
	uint64_t sent;                  /* signals sent */
	uint64_t acked;                 /* signals the target confirmed */
	uint64_t expected;              /* deliveries due for what was sent */
	uint64_t received;              /* deliveries received */
	uint64_t unparsed;              /* messages without a send time */
	int64_t start_ns, stop_ns, last_rx_ns;
	uint32_t *hist;                 /* HIST_MAX_US + 1 buckets */
	uint64_t max_us;
	uint64_t rss_kib;               /* VmRSS of rss_pid once subscribed */
	uint64_t rss_anon_kib;          /* RssAnon: without mapped store pages */
	uint64_t rss_before_kib;        /* VmRSS before the first connection */
	uint64_t replayed;              /* replay: signals received */
	int64_t replay_start_ns, replay_end_ns;
	unsigned source_base;           /* per-run offset of source addresses */
	int failed;
	char error[256];
};

int64_t bench_now_ns(void);

/* Sets up domains and counters for o. Returns 0 or -1 (out of memory). */
int bench_run_init(struct bench_run *r, const struct bench_opts *o);
void bench_run_free(struct bench_run *r);

/* The domain subscriber i watches, as "benchK.example" in buf (64 bytes). */
unsigned bench_sub_domain(const struct bench_run *r, unsigned i, char buf[64]);

/*
 * Writes signal number idx as an ingest JSON object (the field names of
 * the product's signal) with send time now_ns into buf; returns its length
 * (0 when cap is too small) and the domain index in *domain.
 */
size_t bench_signal_json(const struct bench_run *r, uint64_t idx,
			 int64_t now_ns, char *buf, size_t cap,
			 unsigned *domain);

/* Records the sending of signal idx to domain d. */
void bench_sent(struct bench_run *r, unsigned d);

/* Returns how many signals may be sent now under the rate and window. */
uint64_t bench_due(const struct bench_run *r, int64_t now_ns);

/* Records one delivered message whose text holds "campaign_id":"t<ns>"
 * (JSON) or the same key and string packed as MessagePack. */
void bench_delivered(struct bench_run *r, const char *msg, size_t len,
		     int64_t now_ns);

/* Records the failure; the run stops. */
void bench_fail(struct bench_run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Reads VmRSS and RssAnon of r->o->rss_pid into r->rss_kib and
 * r->rss_anon_kib when a pid is given. */
void bench_sample_rss(struct bench_run *r);

/* Prints the result object on standard output. */
void bench_print(const struct bench_run *r, const char *target);

/* The targets: each connects, subscribes, runs and drains. 0 or -1. */
int bench_canaryd(struct bench_run *r);
int bench_mosquitto(struct bench_run *r);
int bench_redis(struct bench_run *r);

/*
 * Writes the loopback source address for subscriber i into buf (16 bytes):
 * 127.0.0.X with X changing every SUBS_PER_SOURCE subscribers and starting
 * at a per-run offset. One source address has about 28,000 ephemeral ports
 * towards one server port, and the sockets of the previous run still hold
 * theirs in TIME_WAIT, so runs must not share addresses.
 */
#define SUBS_PER_SOURCE 10000
void bench_source_address(const struct bench_run *r, unsigned i, char buf[16]);

/* Splits "scheme://HOST:PORT[/...]" into host (256 bytes) and port. */
int bench_parse_url(const char *url, const char *scheme, char host[256],
		    int *port);

#endif
