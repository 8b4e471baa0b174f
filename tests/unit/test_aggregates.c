/*
 * Unit tests of the stats counters and campaigns against real LMDB
 * directories under CANARY_TEST_TMP (or /tmp): every result is compared
 * with a recount of the signals the test appended.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "store.h"
#include "aggregates.h"
#include "check.h"
#include "store_raw.h"

#define SEC INT64_C(1000000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static char base_dir[4096];
static int dir_count;
static uint64_t rnd_state = 88172645463325252u;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static const char *const domains[] = {
	"bank.example", "login.bank.example", "a.login.bank.example",
	"shop.example", "xbank.example", "mail.example",
};
#define NDOMAINS (sizeof domains / sizeof domains[0])
static const char *const regions[] = { "DE", "US", "JP", "ZZ", "EU" };

static st_store *open_new(void)
{
	char dir[4200];
	char err[512] = "";
	st_store *st = NULL;

	snprintf(dir, sizeof dir, "%s/agg%d-%d", base_dir, (int)getpid(), dir_count++);
	if (st_open(dir, NULL, &st, err, sizeof err) != ST_OK)
		fprintf(stderr, "st_open failed: %s\n", err);
	CHECK(st != NULL);
	return st;
}

static void random_signal(struct sg_signal *s, int64_t observed_us)
{
	memset(s, 0, sizeof *s);
	s->observed_us = observed_us;
	s->received_us = sg_now_us();
	s->event_type = (uint8_t)(rnd() % SG_EVENT_COUNT);
	s->confidence = (uint8_t)(rnd() % SG_CONFIDENCE_COUNT);
	s->proxy_type = (uint8_t)(rnd() % SG_PROXY_COUNT);
	s->stage = (uint8_t)(rnd() % SG_STAGE_COUNT);
	s->action = (uint8_t)(rnd() % SG_ACTION_COUNT);
	s->credential_leaked = SG_BOOL_ABSENT;
	strcpy(s->region, regions[rnd() % 5]);
	strcpy(s->domain, domains[rnd() % NDOMAINS]);
	snprintf(s->sensor, sizeof s->sensor, "sensor-%d", (int)(rnd() % 3));
}

static const char *dim_value(const struct sg_signal *s, enum st_dim dim)
{
	switch (dim) {
	case ST_DIM_EVENT_TYPE: return sg_event_type_names[s->event_type];
	case ST_DIM_CONFIDENCE: return sg_confidence_names[s->confidence];
	case ST_DIM_STAGE: return sg_stage_names[s->stage];
	case ST_DIM_PROXY_TYPE: return sg_proxy_type_names[s->proxy_type];
	case ST_DIM_REGION: return s->region;
	case ST_DIM_ACTION: return sg_action_names[s->action];
	case ST_DIM_DOMAIN: return s->domain;
	default: return "";
	}
}

static int64_t floor_to(int64_t us, int64_t step)
{
	int64_t q = us / step;

	if (us % step && us < 0)
		q--;
	return q * step;
}

/* ---- stats ---- */

#define NSIG 3000

static struct sg_signal sigs[NSIG];

static uint64_t group_count(const struct st_stats *s, enum st_dim dim, const char *value)
{
	for (size_t i = 0; i < s->ngroups; i++)
		if (s->groups[i].dim == dim && !strcmp(s->groups[i].value, value))
			return s->groups[i].count;
	return 0;
}

/* Compares one st_stats_read result with a recount of sigs. */
static void check_stats(st_store *st, int64_t since, int64_t until, enum st_level level,
			const char *const *names, size_t nnames)
{
	struct st_stats_query q = { since, until, names, nnames, level, 100000 };
	struct st_stats out;
	int64_t a = floor_to(since, MIN);
	int64_t b = floor_to(until + MIN - 1, MIN);
	uint64_t total = 0, trend_sum = 0;
	size_t mismatches = 0;

	CHECK(st_stats_read(st, &q, &out) == ST_OK);
	for (size_t i = 0; i < NSIG; i++) {
		const struct sg_signal *s = &sigs[i];
		int mine = !names;

		for (size_t k = 0; k < nnames; k++)
			mine |= !strcmp(names[k], s->domain);
		if (mine && s->observed_us >= a && s->observed_us < b)
			total++;
	}
	CHECK(out.total == total);
	for (size_t i = 0; i < out.ntrend; i++)
		trend_sum += out.trend[i].count;
	CHECK(trend_sum == total);
	CHECK(out.ntrend > 0);
	CHECK(out.ntrend == 0 || out.trend[0].bucket_us == floor_to(a, st_level_us(level)));

	/* Every group equals its recount, and only values that occur appear. */
	for (size_t g = 0; g < out.ngroups; g++) {
		uint64_t want = 0;

		for (size_t i = 0; i < NSIG; i++) {
			const struct sg_signal *s = &sigs[i];
			int mine = !names;

			for (size_t k = 0; k < nnames; k++)
				mine |= !strcmp(names[k], s->domain);
			if (mine && s->observed_us >= a && s->observed_us < b &&
			    !strcmp(dim_value(s, out.groups[g].dim), out.groups[g].value))
				want++;
		}
		mismatches += want != out.groups[g].count || want == 0;
	}
	CHECK(mismatches == 0);
	CHECK(!names || group_count(&out, ST_DIM_DOMAIN, "mail.example") == 0);
	st_stats_free(&out);
}

static void test_stats_recount(void)
{
	st_store *st = open_new();
	int64_t now = sg_now_us();
	const char *tenant[] = { "shop.example", "bank.example", "shop.example" };

	if (!st)
		return;
	for (size_t i = 0; i < NSIG; i++)
		random_signal(&sigs[i], now - (int64_t)(rnd() % (uint64_t)(3 * DAY)));
	for (size_t i = 0; i < NSIG; i += 500)
		CHECK(st_append(st, &sigs[i], 500) == ST_OK);

	/* Windows that start inside a minute, an hour and a day. */
	check_stats(st, now - 2 * DAY - 17 * MIN - 5 * SEC, now + 1, ST_LEVEL_HOUR, NULL, 0);
	check_stats(st, now - 24 * HOUR, now + 1, ST_LEVEL_MINUTE, NULL, 0);
	check_stats(st, now - 3 * DAY, now + 1, ST_LEVEL_DAY, NULL, 0);
	check_stats(st, now - 30 * HOUR - 7 * MIN, now - 5 * HOUR - 3 * MIN, ST_LEVEL_HOUR, NULL, 0);
	check_stats(st, now - 90 * MIN, now - 80 * MIN, ST_LEVEL_MINUTE, NULL, 0);
	check_stats(st, now - 2 * DAY, now + 1, ST_LEVEL_HOUR, tenant, 3);
	check_stats(st, now - 20 * HOUR, now + 1, ST_LEVEL_MINUTE, tenant + 1, 1);

	{
		struct st_stats_query q = { now - 2 * DAY, now, NULL, 0, ST_LEVEL_MINUTE, 1441 };
		struct st_stats out;

		CHECK(st_stats_read(st, &q, &out) == ST_ERR_INVALID);
	}
	st_close(st);
}

/* Counts by brute force what st_stats_count should count. */
static uint64_t recount(int64_t since, const char *const *pats, size_t npats,
			enum st_dim dim, const char *const *values, size_t nvalues)
{
	uint64_t n = 0;

	for (size_t i = 0; i < NSIG; i++) {
		const struct sg_signal *s = &sigs[i];
		int dom = npats == 0;
		int val = dim == ST_DIM_TOTAL;

		for (size_t k = 0; k < npats; k++)
			dom |= domain_pattern_match(pats[k], s->domain);
		for (size_t k = 0; k < nvalues; k++)
			val |= !strcmp(dim_value(s, dim), values[k]);
		n += s->observed_us >= since && dom && val;
	}
	return n;
}

static void test_count(void)
{
	static const struct {
		const char *pats[3];
		size_t npats;
		enum st_dim dim;
		const char *values[3];
		size_t nvalues;
	} cases[] = {
		{ { NULL }, 0, ST_DIM_TOTAL, { NULL }, 0 },
		{ { "bank.example" }, 1, ST_DIM_TOTAL, { NULL }, 0 },
		{ { "*.bank.example" }, 1, ST_DIM_TOTAL, { NULL }, 0 },
		{ { "*.bank.example", "login.bank.example", "*.login.bank.example" }, 3,
		  ST_DIM_TOTAL, { NULL }, 0 },
		{ { "bank.example", "bank.example" }, 2, ST_DIM_STAGE, { "ATTACK" }, 1 },
		{ { NULL }, 0, ST_DIM_REGION, { "DE", "JP" }, 2 },
		{ { "*.example" }, 1, ST_DIM_REGION, { "EU" }, 1 },
		{ { NULL }, 0, ST_DIM_CONFIDENCE, { "medium", "high" }, 2 },
		{ { "shop.example", "*.bank.example" }, 2, ST_DIM_EVENT_TYPE, { "sim_recon" }, 1 },
		{ { NULL }, 0, ST_DIM_ACTION, { "block", "monitor", "step_up" }, 3 },
	};
	st_store *st = open_new();
	int64_t now = sg_now_us();

	if (!st)
		return;
	for (size_t i = 0; i < NSIG; i++)
		random_signal(&sigs[i], now - (int64_t)(rnd() % (uint64_t)(2 * DAY)) +
			      (i % 50 == 0 ? HOUR : 0));
	CHECK(st_append(st, sigs, NSIG) == ST_OK);

	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		int64_t since = floor_to(now - 25 * HOUR - 13 * MIN, MIN);
		struct st_count_query q = { since, cases[c].pats, cases[c].npats, cases[c].dim,
					    cases[c].values, cases[c].nvalues };
		uint64_t n = 0;
		bool exact = false;

		CHECK(st_stats_count(st, &q, &n, &exact) == ST_OK);
		CHECK(exact);
		if (n != recount(since, cases[c].pats, cases[c].npats, cases[c].dim,
				 cases[c].values, cases[c].nvalues))
			fprintf(stderr, "count case %zu: %" PRIu64 " vs %" PRIu64 "\n", c, n,
				recount(since, cases[c].pats, cases[c].npats, cases[c].dim,
					cases[c].values, cases[c].nvalues));
		CHECK(n == recount(since, cases[c].pats, cases[c].npats, cases[c].dim,
				   cases[c].values, cases[c].nvalues));
	}

	/* After retention deletes a signal observed in the window, the
	 * counters no longer equal the stored signals: not exact. */
	{
		struct st_count_query q = { now - 3 * DAY, NULL, 0, ST_DIM_TOTAL, NULL, 0 };
		size_t deleted = 0;
		uint64_t n = 0;
		bool exact = true;

		CHECK(st_delete_received_before(st, sg_now_us() + SEC, 10, &deleted) == ST_OK);
		CHECK(deleted == 10);
		CHECK(st_stats_count(st, &q, &n, &exact) == ST_OK);
		CHECK(!exact);
	}
	st_close(st);
}

/* ---- joint counts ---- */

/* The fields of one st_stats_count_joint query. */
struct joint_case {
	const char *pats[3];
	size_t npats;
	uint32_t masks[5];      /* event, confidence, stage, proxy, action */
	const char *regions[3];
	size_t nregions;
};

static uint64_t joint_recount(int64_t since, const struct joint_case *c)
{
	uint64_t n = 0;

	for (size_t i = 0; i < NSIG; i++) {
		const struct sg_signal *s = &sigs[i];
		int dom = c->npats == 0;
		int reg = c->nregions == 0;

		for (size_t k = 0; k < c->npats; k++)
			dom |= domain_pattern_match(c->pats[k], s->domain);
		for (size_t k = 0; k < c->nregions; k++)
			reg |= !strcmp(c->regions[k], s->region);
		n += s->observed_us >= since && dom && reg &&
		     (c->masks[0] >> s->event_type & 1) && (c->masks[1] >> s->confidence & 1) &&
		     (c->masks[2] >> s->stage & 1) && (c->masks[3] >> s->proxy_type & 1) &&
		     (c->masks[4] >> s->action & 1);
	}
	return n;
}

/* A random mask of count values: often every value, sometimes none. */
static uint32_t random_mask(int count)
{
	uint64_t r = rnd() % 8;

	if (r < 3)
		return ST_MASK_ALL;
	if (r == 3)
		return 0;
	return (uint32_t)(rnd() % ((1u << count) - 1)) + 1;
}

static void random_joint_case(struct joint_case *c)
{
	static const char *const pats[] = {
		"bank.example", "*.bank.example", "login.bank.example",
		"*.login.bank.example", "shop.example", "xbank.example", "*.example",
	};
	static const int counts[5] = { SG_EVENT_COUNT, SG_CONFIDENCE_COUNT, SG_STAGE_COUNT,
				       SG_PROXY_COUNT, SG_ACTION_COUNT };

	memset(c, 0, sizeof *c);
	c->npats = rnd() % 4;
	for (size_t k = 0; k < c->npats; k++)
		c->pats[k] = pats[rnd() % (sizeof pats / sizeof pats[0])];
	for (int f = 0; f < 4; f++)
		c->masks[f] = random_mask(counts[f]);
	c->masks[4] = rnd() % 6 == 0 ? random_mask(SG_ACTION_COUNT) : ST_MASK_ALL;
	c->nregions = rnd() % 3 == 0 ? rnd() % 4 : 0;
	for (size_t k = 0; k < c->nregions; k++)
		c->regions[k] = regions[rnd() % 5];
}

/* Returns how many fields a case narrows (a region list is one). */
static int narrowed_fields(const struct joint_case *c, bool *actions)
{
	static const int counts[5] = { SG_EVENT_COUNT, SG_CONFIDENCE_COUNT, SG_STAGE_COUNT,
				       SG_PROXY_COUNT, SG_ACTION_COUNT };
	int n = c->nregions > 0;

	*actions = false;
	for (int f = 0; f < 5; f++) {
		uint32_t all = (1u << counts[f]) - 1;

		if ((c->masks[f] & all) != all) {
			n++;
			*actions = *actions || f == 4;
		}
	}
	return n;
}

static void check_joint_case(st_store *st, int64_t since, const struct joint_case *c,
			     size_t label)
{
	struct st_joint_query q = { since, c->pats, c->npats, c->masks[0], c->masks[1],
				    c->masks[2], c->masks[3], c->regions, c->nregions,
				    c->masks[4] };
	uint64_t want = joint_recount(floor_to(since + MIN - 1, MIN), c);
	uint64_t n = 0;
	bool exact = false;
	bool actions = false;
	int fields = narrowed_fields(c, &actions);
	bool empty = false;

	for (int f = 0; f < 5; f++)
		empty = empty || c->masks[f] == 0;
	CHECK(st_stats_count_joint(st, &q, &n, &exact) == ST_OK);

	/* Actions together with another field cannot be counted. */
	if (actions && fields > 1 && !empty) {
		CHECK(!exact);
		return;
	}
	CHECK(exact);
	if (n != want)
		fprintf(stderr, "joint case %zu: %" PRIu64 ", recount %" PRIu64 "\n", label, n,
			want);
	CHECK(n == want);
}

static void test_count_joint(void)
{
	static const struct joint_case fixed[] = {
		/* event_type and stage, the list page the counters once missed */
		{ { NULL }, 0, { 1u << SG_EVENT_SIM_RECON, ST_MASK_ALL, 1u << SG_STAGE_ATTACK,
				 ST_MASK_ALL, ST_MASK_ALL }, { NULL }, 0 },
		/* threat_only, a wildcard and a region */
		{ { "*.bank.example" }, 1,
		  { ST_MASK_ALL, (1u << SG_CONFIDENCE_MEDIUM) | (1u << SG_CONFIDENCE_HIGH),
		    ST_MASK_ALL, ST_MASK_ALL, ST_MASK_ALL }, { "DE", "JP" }, 2 },
		/* every field narrowed, overlapping patterns */
		{ { "bank.example", "*.bank.example", "*.login.bank.example" }, 3,
		  { 0x5, 0x6, 0x1, 0xa, ST_MASK_ALL }, { "EU", "ZZ", "US" }, 3 },
		/* action alone with a domain, and action with a region */
		{ { "shop.example" }, 1, { ST_MASK_ALL, ST_MASK_ALL, ST_MASK_ALL, ST_MASK_ALL,
					   1u << SG_ACTION_BLOCK }, { NULL }, 0 },
		{ { NULL }, 0, { ST_MASK_ALL, ST_MASK_ALL, ST_MASK_ALL, ST_MASK_ALL,
				 1u << SG_ACTION_BLOCK }, { "DE" }, 1 },
		/* a field that allows nothing */
		{ { NULL }, 0, { 0, ST_MASK_ALL, 0x1, ST_MASK_ALL, ST_MASK_ALL }, { NULL }, 0 },
	};
	st_store *st = open_new();
	int64_t now = sg_now_us();

	if (!st)
		return;
	for (size_t i = 0; i < NSIG; i++)
		random_signal(&sigs[i], now - (int64_t)(rnd() % (uint64_t)(50 * HOUR)) +
			      (i % 40 == 0 ? 2 * HOUR : 0));
	for (size_t i = 0; i < NSIG; i += 300)
		CHECK(st_append(st, &sigs[i], 300) == ST_OK);

	for (size_t c = 0; c < sizeof fixed / sizeof fixed[0]; c++) {
		check_joint_case(st, now - 25 * HOUR - 13 * MIN - 7 * SEC, &fixed[c], c);
		check_joint_case(st, floor_to(now - 3 * HOUR, HOUR), &fixed[c], c);
	}

	/* Random conjunctions over random windows: some start inside a
	 * minute, some in the future. */
	for (size_t c = 0; c < 400; c++) {
		struct joint_case jc;
		int64_t since = now - (int64_t)(rnd() % (uint64_t)(52 * HOUR)) + 30 * MIN;

		random_joint_case(&jc);
		if (rnd() % 3 == 0)
			since = floor_to(since, MIN);
		check_joint_case(st, since, &jc, 100 + c);
	}

	{
		struct st_joint_query q = { now, NULL, 3, ST_MASK_ALL, ST_MASK_ALL, ST_MASK_ALL,
					    ST_MASK_ALL, NULL, 0, ST_MASK_ALL };
		uint64_t n = 0;
		bool exact = false;

		CHECK(st_stats_count_joint(st, &q, &n, &exact) == ST_ERR_INVALID);
		CHECK(st_stats_count_joint(st, NULL, &n, &exact) == ST_ERR_INVALID);
	}

	/* After retention deletes a signal observed in the window, joint
	 * counts are not exact either. */
	{
		struct st_joint_query q = { now - 60 * HOUR, NULL, 0, 0x3, ST_MASK_ALL, 0x1,
					    ST_MASK_ALL, NULL, 0, ST_MASK_ALL };
		size_t deleted = 0;
		uint64_t n = 0;
		bool exact = true;

		CHECK(st_delete_received_before(st, sg_now_us() + SEC, 10, &deleted) == ST_OK);
		CHECK(deleted == 10);
		CHECK(st_stats_count_joint(st, &q, &n, &exact) == ST_OK);
		CHECK(!exact);
	}
	st_close(st);
}

/* Joint values that do not decode make reads fail cleanly. */
static void test_joint_corrupt(void)
{
	static const struct {
		const char *bytes;
		size_t len;
	} bad[] = {
		{ "\x81\xcc\xc8\x01", 4 },              /* code 200 */
		{ "\x82\x01\x01\x01\x02", 5 },          /* code 1 twice */
		{ "\x92\x01\x01", 3 },                  /* an array */
		{ "\xdf\xff\xff\xff\xff\x01", 6 },      /* 4 billion pairs declared */
		{ "\x81\x01\xa1x", 4 },                 /* a string count */
		{ "\x81\x01", 2 },                      /* truncated */
	};
	const char *tenant[] = { "bank.example" };
	int64_t now = sg_now_us();
	int64_t minute = floor_to(now, MIN);

	for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
		char dir[4200];
		struct sg_signal s;
		uint8_t k[AGG_KEY_MAX];
		char rev[SG_DOMAIN_MAX + 2];
		size_t revlen = agg_reverse_domain("bank.example", rev);
		st_store *st = open_new();
		struct st_joint_query q = { minute, NULL, 0, 0x3, ST_MASK_ALL, 0x1,
					    ST_MASK_ALL, NULL, 0, ST_MASK_ALL };
		struct st_stats_query sq = { now - HOUR, now + MIN, tenant, 1, ST_LEVEL_MINUTE, 100 };
		struct st_stats out;
		uint64_t n = 0;
		bool exact = false;

		if (!st)
			return;
		random_signal(&s, now);
		strcpy(s.domain, "bank.example");
		strcpy(s.region, "DE");
		CHECK(st_append(st, &s, 1) == ST_OK);
		st_close(st);

		snprintf(dir, sizeof dir, "%s/agg%d-%d", base_dir, (int)getpid(), dir_count - 1);
		/* Every level's bucket, because a window that ends in the next
		 * hour reads this minute from the hour's counters. */
		for (int level = ST_LEVEL_MINUTE; level < ST_LEVEL_COUNT; level++) {
			int64_t bucket = agg_floor(now, agg_step_us[level]);

			CHECK(raw_put(dir, "stats", k, agg_key_joint(k, level, bucket, "DE"),
				      bad[b].bytes, bad[b].len) == 0);
			CHECK(raw_put(dir, "stats", k,
				      agg_key_domain_joint(k, level, rev, revlen, bucket, "DE"),
				      bad[b].bytes, bad[b].len) == 0);
		}
		st = NULL;
		CHECK(st_open(dir, NULL, &st, NULL, 0) == ST_OK);
		if (!st)
			return;
		CHECK(st_stats_count_joint(st, &q, &n, &exact) == ST_ERR_CORRUPT);
		CHECK(!exact);
		CHECK(st_stats_read(st, &sq, &out) == ST_ERR_CORRUPT);
		CHECK(st_append(st, &s, 1) == ST_ERR_CORRUPT);
		st_close(st);
	}
}

/* ---- campaigns ---- */

static void camp_signal(struct sg_signal *s, int64_t t, const char *domain,
			const char *infra)
{
	random_signal(s, t);
	strcpy(s->domain, domain);
	strcpy(s->infra_id, infra);
}

struct camp_list {
	struct st_campaign c[16];
	size_t n;
};

static int camp_collect(const struct st_campaign *c, void *ctx)
{
	struct camp_list *l = ctx;

	if (l->n < 16)
		l->c[l->n++] = *c;
	return 0;
}

static void test_campaigns(void)
{
	const int64_t gap = 10 * MIN;
	struct st_analytics_settings as = { gap, 0, 0 };
	int64_t t0 = sg_now_us() - 2 * HOUR;
	struct sg_signal s[8];
	struct camp_list l = { .n = 0 };
	struct st_campaign c;
	char want[32];
	st_store *st = open_new();

	if (!st)
		return;
	st_analytics_configure(st, &as);

	camp_signal(&s[0], t0, "bank.example", "asn-1");
	camp_signal(&s[1], t0 + gap, "bank.example", "asn-1");               /* the gap: joins */
	camp_signal(&s[2], t0 + 2 * gap + 1, "bank.example", "asn-1");       /* just over */
	camp_signal(&s[3], t0 + 3 * gap, "bank.example", "asn-1");           /* just under */
	camp_signal(&s[4], t0 - gap, "bank.example", "asn-1");               /* late, joins */
	camp_signal(&s[5], t0, "bank.example", "asn-2");
	camp_signal(&s[6], t0, "shop.example", "asn-1");
	camp_signal(&s[7], t0, "shop.example", "asn-1");
	strcpy(s[7].campaign_id, "sensor-own");
	for (int i = 0; i < 8; i++)
		CHECK(st_append(st, &s[i], 1) == ST_OK);

	CHECK_STR(s[1].campaign_id, "camp_1");
	CHECK_STR(s[2].campaign_id, "camp_3");
	CHECK_STR(s[3].campaign_id, "camp_3");
	CHECK_STR(s[4].campaign_id, "camp_1");
	CHECK_STR(s[5].campaign_id, "camp_6");
	CHECK_STR(s[7].campaign_id, "sensor-own");

	CHECK(st_campaign_get(st, 1, &c) == ST_OK);
	CHECK(c.signal_count == 3);
	CHECK(c.first_us == t0 - gap);
	CHECK(c.last_us == t0 + gap);
	CHECK(st_campaign_get(st, 3, &c) == ST_OK);
	CHECK(c.signal_count == 2);
	CHECK(st_campaign_get(st, 7, &c) == ST_OK);
	CHECK(c.signal_count == 2);     /* the sensor's own id still counts */
	CHECK(st_campaign_get(st, 2, &c) == ST_ERR_NOT_FOUND);

	CHECK(st_campaign_scan(st, INT64_MIN, UINT64_MAX, camp_collect, &l) == ST_OK);
	CHECK(l.n == 4);
	for (size_t i = 1; i < l.n; i++)
		CHECK(l.c[i - 1].id > l.c[i].id);
	l.n = 0;
	CHECK(st_campaign_scan(st, t0 + 2 * gap, UINT64_MAX, camp_collect, &l) == ST_OK);
	CHECK(l.n == 1);
	CHECK(l.c[0].id == 3);
	l.n = 0;
	CHECK(st_campaign_scan(st, INT64_MIN, 6, camp_collect, &l) == ST_OK);
	CHECK(l.n == 2);

	/* A batch whose signals share a campaign. */
	camp_signal(&s[0], t0 + 4 * gap, "bank.example", "asn-1");
	camp_signal(&s[1], t0 + 4 * gap + 5 * SEC, "bank.example", "asn-1");
	CHECK(st_append(st, s, 2) == ST_OK);
	snprintf(want, sizeof want, "camp_%d", 3);
	CHECK_STR(s[0].campaign_id, want);
	CHECK_STR(s[1].campaign_id, want);

	/* Pruning by age removes campaigns and counters; a new signal of the
	 * pruned campaign's pair starts a new one. */
	{
		bool more = true;
		struct st_analytics_settings keep = { gap, HOUR, HOUR };

		st_analytics_configure(st, &keep);
		int prc = st_analytics_prune(st, sg_now_us(), 100000, &more);

		if (prc != ST_OK)
			fprintf(stderr, "prune: %s\n", st_strerror(prc));
		CHECK(prc == ST_OK);
		CHECK(!more);
		CHECK(st_campaign_get(st, 1, &c) == ST_ERR_NOT_FOUND);
		l.n = 0;
		CHECK(st_campaign_scan(st, INT64_MIN, UINT64_MAX, camp_collect, &l) == ST_OK);
		CHECK(l.n == 0);
		camp_signal(&s[0], t0 + gap, "bank.example", "asn-1");
		CHECK(st_append(st, s, 1) == ST_OK);
		snprintf(want, sizeof want, "camp_%" PRIu64, s[0].seq);
		CHECK_STR(s[0].campaign_id, want);
	}
	st_close(st);
}

/* Map growth reruns the append transaction: campaign ids must not leak
 * from the failed run into the retried one. */
static void test_campaigns_across_map_growth(void)
{
	char dir[4200];
	char err[256];
	struct st_options opt = { 64 * 1024, 64 * 1024 * 1024, 0, 0 };
	struct sg_signal *batch = calloc(2000, sizeof *batch);
	st_store *st = NULL;
	int64_t t = sg_now_us() - HOUR;
	size_t wrong = 0;

	snprintf(dir, sizeof dir, "%s/agg-grow%d", base_dir, (int)getpid());
	CHECK(st_open(dir, &opt, &st, err, sizeof err) == ST_OK);
	if (!st || !batch)
		goto out;
	for (int i = 0; i < 2000; i++) {
		camp_signal(&batch[i], t + i * SEC, domains[i % NDOMAINS], "asn-9");
		if (i == 1)
			strcpy(batch[i].campaign_id, "given");
	}
	CHECK(st_append(st, batch, 2000) == ST_OK);
	CHECK(st_map_size(st) > 64 * 1024);
	CHECK_STR(batch[1].campaign_id, "given");
	for (int i = 0; i < 2000; i++) {
		char want[32];

		if (i == 1)
			continue;
		/* Each domain's first signal (seq i + 1) started its campaign. */
		snprintf(want, sizeof want, "camp_%d", (int)(i % NDOMAINS) + 1);
		wrong += strcmp(batch[i].campaign_id, want) != 0;
	}
	CHECK(wrong == 0);
out:
	free(batch);
	st_close(st);
}

static void test_sensors(void)
{
	struct sg_signal s[3];
	uint64_t n = 0;
	st_store *st = open_new();

	if (!st)
		return;
	for (int i = 0; i < 3; i++)
		random_signal(&s[i], sg_now_us());
	strcpy(s[0].sensor, "a");
	strcpy(s[1].sensor, "b");
	s[2].sensor[0] = '\0';
	CHECK(st_append(st, s, 3) == ST_OK);
	CHECK(st_sensors_active(st, sg_now_us() - 5 * MIN, &n) == ST_OK);
	CHECK(n == 2);
	CHECK(st_sensors_active(st, sg_now_us() + MIN, &n) == ST_OK);
	CHECK(n == 0);
	st_close(st);
}

int main(void)
{
	const char *tmp = getenv("CANARY_TEST_TMP");

	snprintf(base_dir, sizeof base_dir, "%s", tmp && *tmp ? tmp : "/tmp");
	mkdir(base_dir, 0700);

	test_stats_recount();
	test_count();
	test_count_joint();
	test_joint_corrupt();
	test_campaigns();
	test_campaigns_across_map_growth();
	test_sensors();
	return check_summary();
}
