/*
 * The scenario shared by every target: domains, payload, pacing, latency
 * histogram and the result object.
 */
#include "bench.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

static const char *const event_types[] = { "credential_testing", "account_probe",
					   "sim_recon", "fraud_test" };
static const char *const confidences[] = { "low", "medium", "high" };
static const char *const regions[] = { "JP", "US", "DE", "BR", "ZZ" };
static const char *const proxy_types[] = { "datacenter", "residential", "mobile",
					   "tor" };
static const char *const actions[] = { "monitor", "step_up", "block", "alert_soc" };

int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int bench_run_init(struct bench_run *r, const struct bench_opts *o)
{
	double d = floor(1.0 / o->match_ratio + 0.5);

	memset(r, 0, sizeof(*r));
	r->o = o;
	r->domains = d < 1 ? 1 : (unsigned)d;
	r->subs_per_domain = calloc(r->domains, sizeof(*r->subs_per_domain));
	r->hist = calloc(HIST_MAX_US + 1, sizeof(*r->hist));
	if (!r->subs_per_domain || !r->hist)
		return -1;
	/* Subscription j of connection i watches domain (i * K + j) % domains. */
	for (uint64_t i = 0; i < (uint64_t)o->subscribers * o->subs_per_conn; i++)
		r->subs_per_domain[i % r->domains]++;
	r->source_base = (unsigned)((uint64_t)bench_now_ns() / 1000 % 200);
	return 0;
}

void bench_run_free(struct bench_run *r)
{
	free(r->subs_per_domain);
	free(r->hist);
}

unsigned bench_sub_domain(const struct bench_run *r, unsigned i, char buf[64])
{
	unsigned d = i % r->domains;

	snprintf(buf, 64, "bench%u.example", d);
	return d;
}

size_t bench_signal_json(const struct bench_run *r, uint64_t idx,
			 int64_t now_ns, char *buf, size_t cap,
			 unsigned *domain)
{
	unsigned d = (unsigned)(idx % r->domains);
	int n;

	/* About 300 bytes as delivered, with id, seq and the optional
	 * fields sensor and infra_id. */
	n = snprintf(buf, cap,
		     "{\"event_type\":\"%s\",\"confidence\":\"%s\",\"source_region\":\"%s\","
		     "\"proxy_type\":\"%s\",\"threat_stage\":\"%s\",\"related_domain\":\"bench%u.example\","
		     "\"timestamp\":\"2026-01-03T04:05:06.789Z\",\"recommended_action\":\"%s\","
		     "\"sensor\":\"bench-sensor-1\",\"infra_id\":\"infra-%04u\","
		     "\"campaign_id\":\"t%" PRId64 "\"}",
		     event_types[idx % 4], confidences[idx % 3], regions[idx % 5],
		     proxy_types[idx % 4], idx % 2 ? "ATTACK" : "TESTING", d,
		     actions[idx % 4], (unsigned)(idx % 10000), now_ns);
	*domain = d;
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

void bench_sent(struct bench_run *r, unsigned d)
{
	r->sent++;
	/* A replay run has no live subscribers. */
	if (!r->o->replay)
		r->expected += r->subs_per_domain[d];
}

uint64_t bench_due(const struct bench_run *r, int64_t now_ns)
{
	uint64_t outstanding = r->expected - r->received;
	uint64_t room = 0, due = UINT64_MAX;
	double fanout = (double)r->o->subscribers * r->o->subs_per_conn / r->domains;

	if (r->o->replay)
		return r->sent < r->o->replay ? r->o->replay - r->sent : 0;

	if (outstanding >= r->o->window)
		return 0;
	room = (uint64_t)((double)(r->o->window - outstanding) / (fanout > 1 ? fanout : 1));
	if (room == 0)
		room = 1;
	if (r->o->rate > 0) {
		double elapsed = (double)(now_ns - r->start_ns) / 1e9;
		uint64_t should = (uint64_t)(elapsed * r->o->rate);

		due = should > r->sent ? should - r->sent : 0;
	}
	return due < room ? due : room;
}

/* Finds the send time after the campaign_id key, in either format. */
static int find_send_time(const char *msg, size_t len, int64_t *ns)
{
	const char *p = memmem(msg, len, "campaign_id", 11);
	const char *end = msg + len;
	int64_t v = 0;

	if (!p)
		return -1;
	p += 11;
	if (p + 4 <= end && p[0] == '"' && p[1] == ':' && p[2] == '"' && p[3] == 't')
		p += 4;                 /* JSON: "campaign_id":"t */
	else if (p + 2 <= end && ((unsigned char)p[0] & 0xe0) == 0xa0 && p[1] == 't')
		p += 2;                 /* MessagePack: fixstr header, then t */
	else
		return -1;
	if (p >= end || *p < '0' || *p > '9')
		return -1;
	for (; p < end && *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (*p - '0');
	*ns = v;
	return 0;
}

void bench_delivered(struct bench_run *r, const char *msg, size_t len,
		     int64_t now_ns)
{
	int64_t sent_ns = 0;
	uint64_t us = 0;

	if (find_send_time(msg, len, &sent_ns)) {
		r->unparsed++;
		return;
	}
	r->received++;
	r->last_rx_ns = now_ns;
	us = now_ns > sent_ns ? (uint64_t)(now_ns - sent_ns) / 1000 : 0;
	if (us > r->max_us)
		r->max_us = us;
	r->hist[us > HIST_MAX_US ? HIST_MAX_US : us]++;
}

void bench_fail(struct bench_run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failed)
		return;
	r->failed = 1;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
	fprintf(stderr, "canary-bench: %s\n", r->error);
}

void bench_sample_rss(struct bench_run *r)
{
	char path[64], line[256];
	FILE *f = NULL;

	if (!r->o->rss_pid)
		return;
	snprintf(path, sizeof(path), "/proc/%d/status", r->o->rss_pid);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmRSS:", 6))
			r->rss_kib = strtoull(line + 6, NULL, 10);
		else if (!strncmp(line, "RssAnon:", 8))
			r->rss_anon_kib = strtoull(line + 8, NULL, 10);
	}
	fclose(f);
}

static uint64_t percentile(const struct bench_run *r, double q)
{
	uint64_t want = (uint64_t)ceil(q * (double)r->received);
	uint64_t seen = 0;

	if (!r->received)
		return 0;
	if (want == 0)
		want = 1;
	for (uint64_t us = 0; us <= HIST_MAX_US; us++) {
		seen += r->hist[us];
		if (seen >= want)
			return us;
	}
	return r->max_us;
}

/* Rounds a time in seconds to whole milliseconds. */
static double round_ms(double seconds)
{
	return round(seconds * 1000) / 1000;
}

void bench_print(const struct bench_run *r, const char *target)
{
	double run_s = (double)(r->stop_ns - r->start_ns) / 1e9;
	double rx_s = (double)((r->last_rx_ns > r->stop_ns ? r->last_rx_ns : r->stop_ns) -
			       r->start_ns) / 1e9;
	json_t *out = json_object();
	char *text = NULL;

	if (run_s <= 0)
		run_s = 1e-9;
	if (rx_s <= 0)
		rx_s = 1e-9;
	json_object_set_new(out, "target", json_string(target));
	json_object_set_new(out, "format", json_string(r->o->msgpack ? "msgpack" : "json"));
	json_object_set_new(out, "subscribers", json_integer(r->o->subscribers));
	if (r->o->subs_per_conn > 1)
		json_object_set_new(out, "subscriptions_per_connection",
				    json_integer(r->o->subs_per_conn));
	json_object_set_new(out, "match_ratio", json_real(r->o->match_ratio));
	json_object_set_new(out, "rate_offered", json_real(r->o->rate));
	/* A run that failed before it started measured nothing. */
	json_object_set_new(out, "duration_s", json_real(r->start_ns ? round_ms(run_s) : 0.0));
	json_object_set_new(out, "ingested", json_integer((json_int_t)r->acked));
	json_object_set_new(out, "ingested_per_s", json_real(floor((double)r->acked / run_s)));
	json_object_set_new(out, "delivered", json_integer((json_int_t)r->received));
	json_object_set_new(out, "delivered_per_s", json_real(floor((double)r->received / rx_s)));
	json_object_set_new(out, "latency_us",
			    json_pack("{s:I, s:I, s:I, s:I}",
				      "p50", (json_int_t)percentile(r, 0.50),
				      "p99", (json_int_t)percentile(r, 0.99),
				      "p999", (json_int_t)percentile(r, 0.999),
				      "max", (json_int_t)r->max_us));
	json_object_set_new(out, "lost", json_integer((json_int_t)(r->expected > r->received
								     ? r->expected - r->received
								     : 0)));
	if (r->o->rss_pid) {
		json_object_set_new(out, "server_rss_before_kib",
				    json_integer((json_int_t)r->rss_before_kib));
		json_object_set_new(out, "server_rss_kib", json_integer((json_int_t)r->rss_kib));
		json_object_set_new(out, "server_rss_anon_kib",
				    json_integer((json_int_t)r->rss_anon_kib));
	}
	if (r->o->replay) {
		double s = (double)(r->replay_end_ns - r->replay_start_ns) / 1e9;

		json_object_set_new(out, "replayed", json_integer((json_int_t)r->replayed));
		json_object_set_new(out, "replay_s", json_real(round_ms(s)));
		json_object_set_new(out, "replay_per_s",
				    json_real(s > 0 ? floor((double)r->replayed / s) : 0));
	}
	if (r->unparsed)
		json_object_set_new(out, "unparsed", json_integer((json_int_t)r->unparsed));
	if (r->failed)
		json_object_set_new(out, "error", json_string(r->error));
	/* 15 significant digits print 0.1 as 0.1, not 0.10000000000000001,
	 * and keep whole rates below 10^15 exact. */
	text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	if (text)
		printf("%s\n", text);
	free(text);
	json_decref(out);
}

void bench_source_address(const struct bench_run *r, unsigned i, char buf[16])
{
	snprintf(buf, 16, "127.0.0.%u", 2 + (r->source_base + i / SUBS_PER_SOURCE) % 250);
}

int bench_parse_url(const char *url, const char *scheme, char host[256], int *port)
{
	size_t sl = strlen(scheme);
	const char *h = NULL, *colon = NULL, *end = NULL;
	char *stop = NULL;
	long p = 0;

	if (strncmp(url, scheme, sl) || strncmp(url + sl, "://", 3))
		return -1;
	h = url + sl + 3;
	end = h + strcspn(h, "/");
	colon = memchr(h, ':', (size_t)(end - h));
	if (!colon || colon == h || (size_t)(colon - h) >= 256)
		return -1;
	p = strtol(colon + 1, &stop, 10);
	if (stop != end || p < 1 || p > 65535)
		return -1;
	memcpy(host, h, (size_t)(colon - h));
	host[colon - h] = '\0';
	*port = (int)p;
	return 0;
}
