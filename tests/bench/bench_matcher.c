/*
 * Benchmark of mt_index_match: builds 100,000 subscriptions, of which only
 * a few match each signal, and prints the mean time per match as JSON.
 *
 * Two runs share the signals: "indexed" has only filters with exact domain
 * names (5 subscriptions for each of 20,000 brands, other fields random);
 * "with_scan" adds 1,000 filters that the index has to check one by one
 * (wildcard patterns and filters without domains), 1 % of the total.
 *
 * Usage: bench_matcher [matches]   (default 1,000,000)
 * The matches cycle through 4,096 distinct signals, so the signals stay in
 * cache as a freshly parsed signal would in the server.
 * Not run by ctest; build it without sanitizers for meaningful figures.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "filter.h"

#define BRANDS 20000
#define PER_BRAND 5
#define SUBSCRIPTIONS (BRANDS * PER_BRAND)
#define SCAN_FILTERS 1000
#define DISTINCT_SIGNALS 4096

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t bound)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32) % bound;
}

static mt_filter *filter_from(json_t *obj)
{
	char err[256];
	mt_filter *f = NULL;

	if (!obj || mt_filter_parse(obj, &f, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_matcher: filter rejected: %s\n",
			obj ? err : "out of memory");
		f = NULL;
	}
	json_decref(obj);
	return f;
}

static mt_filter *brand_filter(int brand)
{
	char name[64];

	snprintf(name, sizeof(name), "brand%d.example", brand);
	return filter_from(json_pack("{s:[s], s:[s], s:s}", "domains", name,
				     "event_types",
				     sg_event_type_names[rnd(SG_EVENT_COUNT)],
				     "min_confidence",
				     sg_confidence_names[rnd(SG_CONFIDENCE_COUNT)]));
}

static mt_filter *scan_filter(int i)
{
	char name[64];

	if (i % 2 == 0) {
		snprintf(name, sizeof(name), "*.brand%d.example", (int)rnd(BRANDS));
		return filter_from(json_pack("{s:[s]}", "domains", name));
	}
	return filter_from(json_pack("{s:[s], s:[s]}", "regions", "ZZ",
				     "proxy_types",
				     sg_proxy_type_names[rnd(SG_PROXY_COUNT)]));
}

static void count_found(void *owner, void *ctx)
{
	(*(uint64_t *)ctx)++;
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Runs count matches over the signals; returns ns per match. */
static double run(const mt_index *ix, const struct sg_signal *signals,
		  size_t count, uint64_t *found)
{
	double start = 0;

	/* One untimed pass over the signals warms the caches. */
	for (size_t i = 0; i < DISTINCT_SIGNALS; i++)
		mt_index_match(ix, &signals[i], count_found, found);

	*found = 0;
	start = now_ns();
	for (size_t i = 0; i < count; i++)
		mt_index_match(ix, &signals[i % DISTINCT_SIGNALS], count_found,
			       found);
	return (now_ns() - start) / (double)count;
}

int main(int argc, char **argv)
{
	size_t nmatches = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	mt_filter **filters = calloc(SUBSCRIPTIONS + SCAN_FILTERS,
				     sizeof(*filters));
	struct sg_signal *signals = calloc(DISTINCT_SIGNALS, sizeof(*signals));
	mt_index *ix = mt_index_new();
	uint64_t found_indexed = 0;
	uint64_t found_scan = 0;
	double indexed_ns = 0;
	double scan_ns = 0;
	int status = 1;

	if (!filters || !signals || !ix || nmatches == 0) {
		fprintf(stderr, "bench_matcher: out of memory or no signals\n");
		goto out;
	}

	for (int i = 0; i < SUBSCRIPTIONS; i++) {
		filters[i] = brand_filter(i / PER_BRAND);
		if (!filters[i] || mt_index_add(ix, filters[i], filters[i]) != 0)
			goto out;
	}
	for (size_t i = 0; i < DISTINCT_SIGNALS; i++) {
		struct sg_signal *s = &signals[i];

		s->event_type = (uint8_t)rnd(SG_EVENT_COUNT);
		s->confidence = (uint8_t)rnd(SG_CONFIDENCE_COUNT);
		s->proxy_type = (uint8_t)rnd(SG_PROXY_COUNT);
		s->stage = (uint8_t)rnd(SG_STAGE_COUNT);
		s->action = (uint8_t)rnd(SG_ACTION_COUNT);
		memcpy(s->region, "DE", 3);
		snprintf(s->domain, sizeof(s->domain), "%sbrand%d.example",
			 rnd(2) ? "www." : "", (int)rnd(BRANDS));
	}

	indexed_ns = run(ix, signals, nmatches, &found_indexed);

	for (int i = 0; i < SCAN_FILTERS; i++) {
		filters[SUBSCRIPTIONS + i] = scan_filter(i);
		if (!filters[SUBSCRIPTIONS + i] ||
		    mt_index_add(ix, filters[SUBSCRIPTIONS + i], NULL) != 0)
			goto out;
	}
	scan_ns = run(ix, signals, nmatches, &found_scan);

	printf("{\"subscriptions\":%d,\"matches\":%zu,"
	       "\"indexed\":{\"ns_per_match\":%.1f,\"matches_per_signal\":%.3f},"
	       "\"with_scan\":{\"scan_filters\":%d,\"ns_per_match\":%.1f,"
	       "\"matches_per_signal\":%.3f}}\n",
	       SUBSCRIPTIONS, nmatches, indexed_ns,
	       (double)found_indexed / (double)nmatches, SCAN_FILTERS, scan_ns,
	       (double)found_scan / (double)nmatches);
	status = 0;

out:
	mt_index_free(ix);
	for (int i = 0; filters && i < SUBSCRIPTIONS + SCAN_FILTERS; i++)
		mt_filter_free(filters[i]);
	free(filters);
	free(signals);
	return status;
}
