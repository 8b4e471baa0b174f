/*
 * Unit tests for the matcher library: filter parsing and errors, matching
 * rules field by field, domain patterns, tenant restriction, and the
 * subscription index, including a randomised cross-check of
 * mt_index_match against mt_filter_match on every filter.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "filter.h"

static char last_error[512];

/* Parses filter JSON text; NULL on any error, with last_error filled. */
static mt_filter *parse(const char *text)
{
	json_error_t jerr;
	json_t *obj = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	mt_filter *f = NULL;

	last_error[0] = '\0';
	if (!obj) {
		snprintf(last_error, sizeof(last_error), "bad test JSON: %s",
			 jerr.text);
		return NULL;
	}
	if (mt_filter_parse(obj, &f, last_error, sizeof(last_error)) != 0)
		f = NULL;
	json_decref(obj);
	return f;
}

/* A valid signal: example.com, credential_testing, low, DE, ... */
static struct sg_signal base_signal(void)
{
	struct sg_signal s;

	memset(&s, 0, sizeof(s));
	s.event_type = SG_EVENT_CREDENTIAL_TESTING;
	s.confidence = SG_CONFIDENCE_LOW;
	s.proxy_type = SG_PROXY_DATACENTER;
	s.stage = SG_STAGE_TESTING;
	s.action = SG_ACTION_MONITOR;
	s.credential_leaked = SG_BOOL_ABSENT;
	memcpy(s.region, "DE", 3);
	snprintf(s.domain, sizeof(s.domain), "example.com");
	return s;
}

static struct sg_signal signal_for(const char *domain)
{
	struct sg_signal s = base_signal();

	snprintf(s.domain, sizeof(s.domain), "%s", domain);
	return s;
}

/* Returns 1 on match, 0 on no match, -1 when the filter did not parse. */
static int match_text(const char *filter_text, const struct sg_signal *s)
{
	mt_filter *f = parse(filter_text);
	int result = -1;

	if (!f) {
		fprintf(stderr, "unexpected parse error for %s: %s\n",
			filter_text, last_error);
		return -1;
	}
	result = mt_filter_match(f, s) ? 1 : 0;
	mt_filter_free(f);
	return result;
}

static int match_domain(const char *filter_text, const char *domain)
{
	struct sg_signal s = signal_for(domain);

	return match_text(filter_text, &s);
}

static void test_empty_filter_matches_all(void)
{
	struct sg_signal s = base_signal();
	mt_filter *f = NULL;
	char err[128];

	CHECK(match_text("{}", &s) == 1);
	CHECK(mt_filter_parse(NULL, &f, err, sizeof(err)) == 0);
	CHECK(f != NULL);
	if (f)
		CHECK(mt_filter_match(f, &s));
	mt_filter_free(f);
}

/* Sets one enumerated field of s, selected by filter field name. */
static void set_enum_field(struct sg_signal *s, const char *field, int value)
{
	if (!strcmp(field, "event_types"))
		s->event_type = (uint8_t)value;
	else if (!strcmp(field, "stages"))
		s->stage = (uint8_t)value;
	else if (!strcmp(field, "proxy_types"))
		s->proxy_type = (uint8_t)value;
	else if (!strcmp(field, "actions"))
		s->action = (uint8_t)value;
	else if (!strcmp(field, "confidences"))
		s->confidence = (uint8_t)value;
}

static void check_enum_field_alone(const char *field,
				   const char *const *names, int count)
{
	char text[256];

	for (int wanted = 0; wanted < count; wanted++) {
		snprintf(text, sizeof(text), "{\"%s\":[\"%s\"]}", field,
			 names[wanted]);
		for (int actual = 0; actual < count; actual++) {
			struct sg_signal s = base_signal();

			set_enum_field(&s, field, actual);
			CHECK(match_text(text, &s) == (wanted == actual));
		}
	}
}

static void test_each_field_alone(void)
{
	struct sg_signal s = base_signal();

	check_enum_field_alone("event_types", sg_event_type_names,
			       SG_EVENT_COUNT);
	check_enum_field_alone("stages", sg_stage_names, SG_STAGE_COUNT);
	check_enum_field_alone("proxy_types", sg_proxy_type_names,
			       SG_PROXY_COUNT);
	check_enum_field_alone("actions", sg_action_names, SG_ACTION_COUNT);
	check_enum_field_alone("confidences", sg_confidence_names,
			       SG_CONFIDENCE_COUNT);

	CHECK(match_text("{\"regions\":[\"DE\"]}", &s) == 1);
	CHECK(match_text("{\"regions\":[\"FR\"]}", &s) == 0);
	CHECK(match_text("{\"regions\":[\"DK\"]}", &s) == 0);
	CHECK(match_text("{\"regions\":[\"ED\"]}", &s) == 0);
	memcpy(s.region, "ZZ", 3);
	CHECK(match_text("{\"regions\":[\"ZZ\"]}", &s) == 1);
	CHECK(match_text("{\"regions\":[\"DE\"]}", &s) == 0);
	memcpy(s.region, "EU", 3);
	CHECK(match_text("{\"regions\":[\"eu\"]}", &s) == 1);

	CHECK(match_domain("{\"domains\":[\"example.com\"]}", "example.com") == 1);
	CHECK(match_domain("{\"domains\":[\"example.com\"]}", "example.org") == 0);
}

static void test_or_within_field(void)
{
	struct sg_signal s = base_signal();
	const char *two_types =
		"{\"event_types\":[\"sim_recon\",\"fraud_test\"]}";

	s.event_type = SG_EVENT_SIM_RECON;
	CHECK(match_text(two_types, &s) == 1);
	s.event_type = SG_EVENT_FRAUD_TEST;
	CHECK(match_text(two_types, &s) == 1);
	s.event_type = SG_EVENT_ACCOUNT_PROBE;
	CHECK(match_text(two_types, &s) == 0);

	CHECK(match_text("{\"regions\":[\"FR\",\"DE\",\"US\"]}", &s) == 1);
	CHECK(match_text("{\"regions\":[\"FR\",\"US\"]}", &s) == 0);
	CHECK(match_domain("{\"domains\":[\"a.org\",\"example.com\"]}",
			   "example.com") == 1);
	CHECK(match_domain("{\"domains\":[\"a.org\",\"example.com\"]}",
			   "a.org") == 1);
	CHECK(match_domain("{\"domains\":[\"a.org\",\"example.com\"]}",
			   "b.org") == 0);

	/* Duplicates inside a list are accepted and change nothing. */
	CHECK(match_text("{\"stages\":[\"TESTING\",\"TESTING\"]}", &s) == 1);
	CHECK(match_domain("{\"domains\":[\"a.org\",\"A.org\"]}", "a.org") == 1);
}

static void test_and_across_fields(void)
{
	const char *filter =
		"{\"domains\":[\"*.example.com\"],\"event_types\":[\"sim_recon\"],"
		"\"stages\":[\"ATTACK\"],\"proxy_types\":[\"tor\",\"mobile\"],"
		"\"regions\":[\"FR\"],\"actions\":[\"block\"],"
		"\"min_confidence\":\"medium\"}";
	struct sg_signal good = signal_for("shop.example.com");
	struct sg_signal s;

	good.event_type = SG_EVENT_SIM_RECON;
	good.stage = SG_STAGE_ATTACK;
	good.proxy_type = SG_PROXY_TOR;
	memcpy(good.region, "FR", 3);
	good.action = SG_ACTION_BLOCK;
	good.confidence = SG_CONFIDENCE_HIGH;
	CHECK(match_text(filter, &good) == 1);

	/* Spoil one field at a time: each alone must stop the match. */
	s = good;
	snprintf(s.domain, sizeof(s.domain), "example.com");
	CHECK(match_text(filter, &s) == 0);
	s = good;
	s.event_type = SG_EVENT_FRAUD_TEST;
	CHECK(match_text(filter, &s) == 0);
	s = good;
	s.stage = SG_STAGE_TESTING;
	CHECK(match_text(filter, &s) == 0);
	s = good;
	s.proxy_type = SG_PROXY_RESIDENTIAL;
	CHECK(match_text(filter, &s) == 0);
	s = good;
	memcpy(s.region, "DE", 3);
	CHECK(match_text(filter, &s) == 0);
	s = good;
	s.action = SG_ACTION_MONITOR;
	CHECK(match_text(filter, &s) == 0);
	s = good;
	s.confidence = SG_CONFIDENCE_LOW;
	CHECK(match_text(filter, &s) == 0);
}

static void test_min_confidence_order(void)
{
	char text[128];

	for (int min = 0; min < SG_CONFIDENCE_COUNT; min++) {
		snprintf(text, sizeof(text), "{\"min_confidence\":\"%s\"}",
			 sg_confidence_names[min]);
		for (int c = 0; c < SG_CONFIDENCE_COUNT; c++) {
			struct sg_signal s = base_signal();

			s.confidence = (uint8_t)c;
			CHECK(match_text(text, &s) == (c >= min));
		}
	}

	/* min_confidence and confidences narrow each other. */
	{
		struct sg_signal s = base_signal();
		const char *both = "{\"confidences\":[\"low\",\"high\"],"
				   "\"min_confidence\":\"medium\"}";

		s.confidence = SG_CONFIDENCE_HIGH;
		CHECK(match_text(both, &s) == 1);
		s.confidence = SG_CONFIDENCE_MEDIUM;
		CHECK(match_text(both, &s) == 0);
		s.confidence = SG_CONFIDENCE_LOW;
		CHECK(match_text(both, &s) == 0);
	}
}

static void test_threat_only(void)
{
	struct sg_signal s = base_signal();

	s.confidence = SG_CONFIDENCE_LOW;
	CHECK(match_text("{\"threat_only\":true}", &s) == 0);
	CHECK(match_text("{\"threat_only\":false}", &s) == 1);
	s.confidence = SG_CONFIDENCE_MEDIUM;
	CHECK(match_text("{\"threat_only\":true}", &s) == 1);
	s.confidence = SG_CONFIDENCE_HIGH;
	CHECK(match_text("{\"threat_only\":true}", &s) == 1);
	CHECK(match_text("{\"threat_only\":true,\"min_confidence\":\"high\"}",
			 &s) == 1);
	s.confidence = SG_CONFIDENCE_MEDIUM;
	CHECK(match_text("{\"threat_only\":true,\"min_confidence\":\"high\"}",
			 &s) == 0);
}

static void test_input_case(void)
{
	struct sg_signal s = base_signal();

	s.stage = SG_STAGE_ATTACK;
	CHECK(match_text("{\"stages\":[\"attack\"]}", &s) == 1);
	CHECK(match_text("{\"stages\":[\"Attack\"]}", &s) == 1);
	CHECK(match_text("{\"stages\":[\"testing\"]}", &s) == 0);
	CHECK(match_text("{\"event_types\":[\"CREDENTIAL_TESTING\"]}", &s) == 1);
	CHECK(match_text("{\"min_confidence\":\"LOW\"}", &s) == 1);
	CHECK(match_text("{\"regions\":[\"de\"]}", &s) == 1);
	CHECK(match_text("{\"regions\":[\"dE\"]}", &s) == 1);
}

static void test_wildcard_and_boundaries(void)
{
	const char *wild = "{\"domains\":[\"*.example.com\"]}";
	const char *exact = "{\"domains\":[\"example.com\"]}";

	CHECK(match_domain(wild, "a.example.com") == 1);
	CHECK(match_domain(wild, "a.b.example.com") == 1);
	CHECK(match_domain(wild, "example.com") == 0);
	CHECK(match_domain(wild, "badexample.com") == 0);
	CHECK(match_domain(wild, "a.badexample.com") == 0);
	CHECK(match_domain(wild, "example.com.evil.org") == 0);
	CHECK(match_domain(wild, "a.example.com.evil.org") == 0);
	CHECK(match_domain(wild, "example.org") == 0);

	CHECK(match_domain(exact, "example.com") == 1);
	CHECK(match_domain(exact, "a.example.com") == 0);
	CHECK(match_domain(exact, "badexample.com") == 0);
	CHECK(match_domain(exact, "example.com.evil.org") == 0);

	/* Both forms together cover the name and everything below it. */
	CHECK(match_domain("{\"domains\":[\"example.com\",\"*.example.com\"]}",
			   "example.com") == 1);
	CHECK(match_domain("{\"domains\":[\"example.com\",\"*.example.com\"]}",
			   "a.b.example.com") == 1);

	/* A deeper wildcard does not cover the shallower name. */
	CHECK(match_domain("{\"domains\":[\"*.b.example.com\"]}",
			   "a.b.example.com") == 1);
	CHECK(match_domain("{\"domains\":[\"*.b.example.com\"]}",
			   "a.example.com") == 0);
	CHECK(match_domain("{\"domains\":[\"*.b.example.com\"]}",
			   "b.example.com") == 0);
}

static void test_domain_case_and_dots(void)
{
	CHECK(match_domain("{\"domains\":[\"Example.COM.\"]}", "example.com") == 1);
	CHECK(match_domain("{\"domains\":[\"EXAMPLE.com\"]}", "example.com") == 1);
	CHECK(match_domain("{\"domains\":[\"*.Example.COM.\"]}",
			   "shop.example.com") == 1);
	CHECK(match_domain("{\"domains\":[\"*.Example.COM.\"]}",
			   "example.com") == 0);
}

static void test_idn_patterns(void)
{
	/* U+00FC is the u with diaeresis; bücher is xn--bcher-kva. */
	CHECK(match_domain("{\"domains\":[\"*.b\\u00fccher.example\"]}",
			   "shop.xn--bcher-kva.example") == 1);
	CHECK(match_domain("{\"domains\":[\"*.b\\u00fccher.example\"]}",
			   "xn--bcher-kva.example") == 0);
	CHECK(match_domain("{\"domains\":[\"B\\u00dcCHER.example.\"]}",
			   "xn--bcher-kva.example") == 1);
	CHECK(match_domain("{\"domains\":[\"xn--bcher-kva.example\"]}",
			   "xn--bcher-kva.example") == 1);
	CHECK(match_domain("{\"domains\":[\"b\\u00fccher.example\"]}",
			   "bucher.example") == 0);
}

/* Checks that text is rejected and the message contains both parts. */
static void expect_error(const char *text, const char *part1,
			 const char *part2)
{
	mt_filter *f = parse(text);

	CHECK(f == NULL);
	mt_filter_free(f);
	if (!strstr(last_error, part1) || (part2 && !strstr(last_error, part2))) {
		fprintf(stderr, "filter %s: message \"%s\" lacks \"%s\"%s%s\n",
			text, last_error, part1, part2 ? " or " : "",
			part2 ? part2 : "");
		check_failed++;
	} else {
		check_passed++;
	}
}

static void test_invalid_filters(void)
{
	char big[400];
	mt_filter *f = NULL;
	char err[256];
	json_t *arr = json_array();

	/* The whole value and unknown members. */
	CHECK(mt_filter_parse(arr, &f, err, sizeof(err)) == -1);
	CHECK(f == NULL);
	CHECK(strstr(err, "expected a JSON object") != NULL);
	json_decref(arr);
	expect_error("{\"domain\":[\"a.com\"]}", "unknown field \"domain\"",
		     "domains");
	expect_error("{\"\\u0001x\":1}", "unknown field \"?x\"", NULL);

	/* Wrong types. */
	expect_error("{\"domains\":\"a.com\"}", "filter.domains",
		     "expected a list");
	expect_error("{\"stages\":{}}", "filter.stages", "an object");
	expect_error("{\"domains\":[1]}", "filter.domains[0]", "an integer");
	expect_error("{\"regions\":[\"DE\",null]}", "filter.regions[1]", "null");
	expect_error("{\"min_confidence\":[\"high\"]}", "filter.min_confidence",
		     "a list");
	expect_error("{\"threat_only\":\"true\"}", "filter.threat_only",
		     "a string");
	expect_error("{\"threat_only\":1}", "filter.threat_only", "an integer");

	/* Unknown values name the field, the value and the choices. */
	expect_error("{\"stages\":[\"attak\"]}",
		     "filter.stages: \"attak\" is not one of TESTING, ATTACK",
		     NULL);
	expect_error("{\"event_types\":[\"login\"]}", "filter.event_types",
		     "\"login\"");
	expect_error("{\"proxy_types\":[\"vpn\"]}", "filter.proxy_types",
		     "\"vpn\"");
	expect_error("{\"actions\":[\"allow\"]}", "filter.actions", "\"allow\"");
	expect_error("{\"confidences\":[\"sure\"]}", "filter.confidences",
		     "\"sure\"");
	expect_error("{\"min_confidence\":\"urgent\"}", "filter.min_confidence",
		     "\"urgent\"");
	expect_error("{\"actions\":[\"monitor_or_step_up\"]}", "filter.actions",
		     "monitor_or_step_up");
	expect_error("{\"regions\":[\"DEU\"]}", "filter.regions", "\"DEU\"");
	expect_error("{\"regions\":[\"D1\"]}", "filter.regions", "\"D1\"");
	expect_error("{\"regions\":[\"D\"]}", "filter.regions", "\"D\"");
	expect_error("{\"regions\":[\"\\u00c4T\"]}", "filter.regions", NULL);

	/* Empty strings and empty lists. */
	expect_error("{\"stages\":[\"\"]}", "filter.stages[0]", "empty");
	expect_error("{\"domains\":[\"\"]}", "filter.domains[0]", "empty");
	expect_error("{\"min_confidence\":\"\"}", "filter.min_confidence",
		     "empty");
	expect_error("{\"domains\":[]}", "filter.domains",
		     "omit the field to match all");
	expect_error("{\"regions\":[]}", "filter.regions", "empty list");
	expect_error("{\"domains\":[\"a\\u0000b.com\"]}", "filter.domains[0]",
		     "NUL");

	/* Malformed domains and misplaced wildcards. */
	expect_error("{\"domains\":[\"a*.b.com\"]}", "filter.domains",
		     "\"a*.b.com\"");
	expect_error("{\"domains\":[\"x.*.com\"]}", "filter.domains",
		     "\"x.*.com\"");
	expect_error("{\"domains\":[\"*\"]}", "filter.domains", "\"*\"");
	expect_error("{\"domains\":[\"*.\"]}", "filter.domains", "\"*.\"");
	expect_error("{\"domains\":[\"*.*.example.com\"]}", "filter.domains",
		     "\"*.*.example.com\"");
	expect_error("{\"domains\":[\"**.example.com\"]}", "filter.domains",
		     "\"**.example.com\"");
	expect_error("{\"domains\":[\"example.*\"]}", "filter.domains",
		     "\"example.*\"");
	expect_error("{\"domains\":[\"*.com\"]}", "filter.domains", "com");
	expect_error("{\"domains\":[\"localhost\"]}", "filter.domains",
		     "\"localhost\"");
	expect_error("{\"domains\":[\"exa mple.com\"]}", "filter.domains",
		     "\"exa mple.com\"");
	expect_error("{\"domains\":[\"-bad.com\"]}", "filter.domains",
		     "\"-bad.com\"");
	expect_error("{\"domains\":[\"a..com\"]}", "filter.domains",
		     "\"a..com\"");
	expect_error("{\"domains\":[\"10.0.0.1\"]}", "filter.domains",
		     "\"10.0.0.1\"");
	expect_error("{\"domains\":[\"ok.com\",\"bad_name.com\"]}",
		     "filter.domains", "\"bad_name.com\"");

	/* A long value is quoted in part, and the message stays bounded. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "{\"stages\":[\"", 12);
	memcpy(big + sizeof(big) - 4, "\"]}", 4);
	expect_error(big, "filter.stages: \"aaaa", "...\"");
	CHECK(strlen(last_error) < 200);

	/* Confidence fields that leave nothing to match. */
	expect_error("{\"confidences\":[\"low\"],\"threat_only\":true}",
		     "filter.confidences", "matches nothing");
	expect_error("{\"confidences\":[\"low\",\"medium\"],"
		     "\"min_confidence\":\"high\"}",
		     "filter.confidences", "min_confidence");

	/* A small error buffer is filled, cut and terminated. */
	{
		json_t *obj = json_loads("{\"stages\":[\"attak\"]}", 0, NULL);
		char small[16];

		memset(small, 'x', sizeof(small));
		CHECK(mt_filter_parse(obj, &f, small, sizeof(small)) == -1);
		CHECK(memchr(small, '\0', sizeof(small)) != NULL);
		CHECK(strncmp(small, "filter.stages", 13) == 0);
		json_decref(obj);
	}
}

/* Builds {"domains":["brand0.example", ...]} with count names. */
static char *watchlist_text(int count, const char *prefix)
{
	size_t cap = (size_t)count * 40 + 32;
	char *text = malloc(cap);
	size_t used = 0;

	if (!text)
		return NULL;
	used += (size_t)snprintf(text, cap, "{\"domains\":[");
	for (int i = 0; i < count; i++) {
		used += (size_t)snprintf(text + used, cap - used,
					 "%s\"%sbrand%d.example\"",
					 i ? "," : "", prefix, i);
	}
	snprintf(text + used, cap - used, "]}");
	return text;
}

static void test_large_watchlist(void)
{
	char *text = watchlist_text(MT_MAX_DOMAINS, "");
	char *too_many = watchlist_text(MT_MAX_DOMAINS + 1, "");
	char *wild_text = watchlist_text(MT_MAX_DOMAINS, "*.");
	mt_filter *f = NULL;
	mt_filter *wild = NULL;
	char name[64];
	int hits = 0;
	int wild_hits = 0;

	CHECK(text != NULL);
	CHECK(too_many != NULL);
	CHECK(wild_text != NULL);
	if (!text || !too_many || !wild_text)
		goto out;

	f = parse(text);
	CHECK(f != NULL);
	wild = parse(wild_text);
	CHECK(wild != NULL);
	if (!f || !wild)
		goto out;

	for (int i = 0; i < MT_MAX_DOMAINS; i++) {
		struct sg_signal s;

		snprintf(name, sizeof(name), "brand%d.example", i);
		s = signal_for(name);
		hits += mt_filter_match(f, &s);
		wild_hits += mt_filter_match(wild, &s);
		snprintf(name, sizeof(name), "www.brand%d.example", i);
		s = signal_for(name);
		hits += mt_filter_match(f, &s);
		wild_hits += mt_filter_match(wild, &s);
	}
	CHECK(hits == MT_MAX_DOMAINS);
	CHECK(wild_hits == MT_MAX_DOMAINS);

	/* Names just outside the list. */
	{
		const char *outside[] = { "brand10000.example", "brand-1.example",
					  "xbrand1.example", "brand1.example.org",
					  "brand01.example" };

		for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
			struct sg_signal s = signal_for(outside[i]);

			CHECK(!mt_filter_match(f, &s));
			CHECK(!mt_filter_match(wild, &s));
		}
	}

	expect_error(too_many, "filter.domains", "maximum of 10000");

out:
	mt_filter_free(f);
	mt_filter_free(wild);
	free(text);
	free(too_many);
	free(wild_text);
}

static void test_restrict(void)
{
	mt_filter *f = parse("{}");
	mt_filter *w = parse("{\"domains\":[\"*.a.com\"]}");
	struct sg_signal a = signal_for("a.com");
	struct sg_signal b = signal_for("b.org");
	struct sg_signal c = signal_for("c.net");
	struct sg_signal xa = signal_for("x.a.com");
	struct sg_signal ya = signal_for("y.a.com");
	char err[256];

	CHECK(f != NULL);
	CHECK(w != NULL);
	if (!f || !w)
		goto out;

	CHECK(mt_filter_restrict(f, "a.com,b.org", err, sizeof(err)) == 0);
	CHECK(mt_filter_match(f, &a));
	CHECK(mt_filter_match(f, &b));
	CHECK(!mt_filter_match(f, &c));
	CHECK(!mt_filter_match(f, &xa));

	/* The filter's own domains still apply on top of the tenant list. */
	CHECK(mt_filter_restrict(w, " X.A.COM. , b.org", err, sizeof(err)) == 0);
	CHECK(mt_filter_match(w, &xa));
	CHECK(!mt_filter_match(w, &ya));
	CHECK(!mt_filter_match(w, &b));
	CHECK(!mt_filter_match(w, &a));

	/* Malformed lists are rejected and leave the filter as it was. */
	CHECK(mt_filter_restrict(f, "a.com,,b.org", err, sizeof(err)) == -1);
	CHECK(strstr(err, "tenant domains") != NULL);
	CHECK(strstr(err, "empty name") != NULL);
	CHECK(mt_filter_restrict(f, "", err, sizeof(err)) == -1);
	CHECK(mt_filter_restrict(f, "*.a.com", err, sizeof(err)) == -1);
	CHECK(strstr(err, "*.a.com") != NULL);
	CHECK(mt_filter_restrict(f, "a.com,bad name.org", err, sizeof(err)) == -1);
	CHECK(strstr(err, "bad name.org") != NULL);
	CHECK(mt_filter_restrict(f, NULL, err, sizeof(err)) == -1);
	CHECK(mt_filter_match(f, &a));
	CHECK(mt_filter_match(f, &b));

	/* A second restriction keeps only names in both lists. */
	CHECK(mt_filter_restrict(f, "b.org,c.net", err, sizeof(err)) == 0);
	CHECK(!mt_filter_match(f, &a));
	CHECK(mt_filter_match(f, &b));
	CHECK(!mt_filter_match(f, &c));
	CHECK(mt_filter_restrict(f, "c.net", err, sizeof(err)) == 0);
	CHECK(!mt_filter_match(f, &b));
	CHECK(!mt_filter_match(f, &c));

out:
	mt_filter_free(f);
	mt_filter_free(w);
}

/* Collects owners reported by mt_index_match as counts per owner id. */
struct collect {
	int *counts;            /* indexed by owner id */
	int total;
};

static void collect_found(void *owner, void *ctx)
{
	struct collect *c = ctx;

	c->counts[(intptr_t)owner]++;
	c->total++;
}

static void test_index_many_owners(void)
{
	enum { PER_GROUP = 1000 };
	mt_filter *filters[3 * PER_GROUP] = { NULL };
	int counts[3 * PER_GROUP] = { 0 };
	struct collect c = { counts, 0 };
	mt_index *ix = mt_index_new();
	struct sg_signal shop = signal_for("shop.example");
	struct sg_signal other = signal_for("other.example");
	bool all_reported = true;

	CHECK(ix != NULL);
	if (!ix)
		return;

	/* Group 0: exact domain, group 1: tenant-restricted, group 2: scan. */
	for (int i = 0; i < 3 * PER_GROUP; i++) {
		char err[128];

		if (i < PER_GROUP)
			filters[i] = parse("{\"domains\":[\"shop.example\"]}");
		else if (i < 2 * PER_GROUP)
			filters[i] = parse("{}");
		else
			filters[i] = parse("{\"domains\":[\"*.example\"]}");
		if (!filters[i])
			goto out;
		if (i >= PER_GROUP && i < 2 * PER_GROUP)
			mt_filter_restrict(filters[i], "shop.example,x.org", err,
					   sizeof(err));
		CHECK(mt_index_add(ix, filters[i], (void *)(intptr_t)i) == 0);
	}
	CHECK(mt_index_size(ix) == 3 * PER_GROUP);

	/* The same filter cannot be added twice. */
	CHECK(mt_index_add(ix, filters[0], (void *)(intptr_t)0) == -1);
	CHECK(mt_index_size(ix) == 3 * PER_GROUP);

	mt_index_match(ix, &shop, collect_found, &c);
	CHECK(c.total == 3 * PER_GROUP);
	for (int i = 0; i < 3 * PER_GROUP; i++)
		all_reported = all_reported && counts[i] == 1;
	CHECK(all_reported);

	memset(counts, 0, sizeof(counts));
	c.total = 0;
	mt_index_match(ix, &other, collect_found, &c);
	CHECK(c.total == PER_GROUP);
	CHECK(counts[2 * PER_GROUP] == 1);
	CHECK(counts[0] == 0);
	CHECK(counts[PER_GROUP] == 0);

	/* Remove every odd entry; the even ones must still be found. */
	for (int i = 1; i < 3 * PER_GROUP; i += 2)
		mt_index_remove(ix, filters[i]);
	mt_index_remove(ix, filters[1]);
	CHECK(mt_index_size(ix) == 3 * PER_GROUP / 2);
	memset(counts, 0, sizeof(counts));
	c.total = 0;
	mt_index_match(ix, &shop, collect_found, &c);
	CHECK(c.total == 3 * PER_GROUP / 2);
	all_reported = true;
	for (int i = 0; i < 3 * PER_GROUP; i++)
		all_reported = all_reported && counts[i] == (i % 2 == 0);
	CHECK(all_reported);

	/* Removing everything leaves an empty index that matches nothing. */
	for (int i = 0; i < 3 * PER_GROUP; i += 2)
		mt_index_remove(ix, filters[i]);
	CHECK(mt_index_size(ix) == 0);
	c.total = 0;
	mt_index_match(ix, &shop, collect_found, &c);
	CHECK(c.total == 0);

out:
	mt_index_free(ix);
	for (int i = 0; i < 3 * PER_GROUP; i++)
		mt_filter_free(filters[i]);
}

/* A callback that removes and frees filters, adds one, and nests. */
struct churn {
	mt_index *ix;
	mt_filter **filters;
	int nfilters;
	mt_filter *late;        /* added from the first callback */
	int calls;
	int late_reports;       /* reports of late in the same match: 0 or 1 */
	int nested_reports;
	const struct sg_signal *signal;
};

static void count_nested(void *owner, void *ctx)
{
	struct churn *ch = ctx;

	ch->nested_reports++;
}

static void churn_found(void *owner, void *ctx)
{
	struct churn *ch = ctx;

	if ((intptr_t)owner == 999) {
		ch->late_reports++;
		return;
	}
	ch->calls++;
	if (ch->calls > 1)
		return;

	/* A nested match reports every entry that is still live. */
	mt_index_match(ch->ix, ch->signal, count_nested, ch);

	/* Remove and free every filter, this one included. */
	for (int i = 0; i < ch->nfilters; i++) {
		mt_index_remove(ch->ix, ch->filters[i]);
		mt_filter_free(ch->filters[i]);
		ch->filters[i] = NULL;
	}
	if (ch->late)
		mt_index_add(ch->ix, ch->late, (void *)(intptr_t)999);
}

static void test_index_removal_during_match(void)
{
	enum { N = 20 };
	mt_filter *filters[N] = { NULL };
	mt_index *ix = mt_index_new();
	struct sg_signal s = signal_for("shop.example");
	struct churn ch = { ix, filters, N, NULL, 0, 0, 0, &s };
	int counts[1000] = { 0 };
	struct collect c = { counts, 0 };

	CHECK(ix != NULL);
	if (!ix)
		return;
	for (int i = 0; i < N; i++) {
		filters[i] = parse(i % 2 ? "{\"domains\":[\"shop.example\"]}"
					 : "{\"stages\":[\"TESTING\"]}");
		if (!filters[i] || mt_index_add(ix, filters[i],
						(void *)(intptr_t)i) != 0)
			goto out;
	}
	ch.late = parse("{\"domains\":[\"shop.example\"]}");
	if (!ch.late)
		goto out;

	mt_index_match(ix, &s, churn_found, &ch);
	CHECK(ch.calls == 1);
	CHECK(ch.late_reports <= 1);
	CHECK(ch.nested_reports == N);
	CHECK(mt_index_size(ix) == 1);

	/* The filter added during the match is found by the next one. */
	mt_index_match(ix, &s, collect_found, &c);
	CHECK(c.total == 1);
	CHECK(counts[999] == 1);

	mt_index_remove(ix, ch.late);
	CHECK(mt_index_size(ix) == 0);

	/* Removing a filter that is not in the index does nothing. */
	mt_index_remove(ix, ch.late);
	CHECK(mt_index_size(ix) == 0);

out:
	mt_index_free(ix);
	mt_filter_free(ch.late);
	for (int i = 0; i < N; i++)
		mt_filter_free(filters[i]);
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

/* xorshift64*: a fixed seed gives the same filters on every run. */
static uint32_t rnd(uint32_t bound)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32) % bound;
}

static const char *const base_names[] = {
	"a.test", "b.test", "shop.a.test", "x.shop.a.test", "c.example",
	"www.c.example", "d.example", "mail.d.example", "e.org", "ae.org",
};
#define BASE_COUNT (sizeof(base_names) / sizeof(base_names[0]))

static const char *const region_pool[] = { "DE", "DK", "FR", "EU", "ZZ" };

/* In one call of three, appends to buf a random list of enum names. */
static void random_enum_field(char *buf, size_t cap, const char *field,
			      const char *const *names, int count)
{
	size_t used = strlen(buf);
	int n = 1 + (int)rnd((uint32_t)count);

	if (rnd(3) != 0)
		return;
	used += (size_t)snprintf(buf + used, cap - used, "%s\"%s\":[",
				 used > 1 ? "," : "", field);
	for (int i = 0; i < n; i++) {
		used += (size_t)snprintf(buf + used, cap - used, "%s\"%s\"",
					 i ? "," : "",
					 names[rnd((uint32_t)count)]);
	}
	snprintf(buf + used, cap - used, "]");
}

static void random_filter_text(char *buf, size_t cap)
{
	size_t used = 0;

	snprintf(buf, cap, "{");
	random_enum_field(buf, cap, "event_types", sg_event_type_names,
			  SG_EVENT_COUNT);
	random_enum_field(buf, cap, "stages", sg_stage_names, SG_STAGE_COUNT);
	random_enum_field(buf, cap, "proxy_types", sg_proxy_type_names,
			  SG_PROXY_COUNT);
	random_enum_field(buf, cap, "actions", sg_action_names,
			  SG_ACTION_COUNT);
	random_enum_field(buf, cap, "regions", region_pool, 5);
	used = strlen(buf);
	if (rnd(4) == 0) {
		used += (size_t)snprintf(buf + used, cap - used,
					 "%s\"min_confidence\":\"%s\"",
					 used > 1 ? "," : "",
					 sg_confidence_names[rnd(3)]);
	}
	if (rnd(2) == 0) {
		int n = 1 + (int)rnd(3);

		used += (size_t)snprintf(buf + used, cap - used,
					 "%s\"domains\":[", used > 1 ? "," : "");
		for (int i = 0; i < n; i++) {
			used += (size_t)snprintf(buf + used, cap - used,
						 "%s\"%s%s\"", i ? "," : "",
						 rnd(4) == 0 ? "*." : "",
						 base_names[rnd(BASE_COUNT)]);
		}
		used += (size_t)snprintf(buf + used, cap - used, "]");
	}
	snprintf(buf + used, cap - used, "}");
}

static struct sg_signal random_signal(void)
{
	struct sg_signal s = signal_for(base_names[rnd(BASE_COUNT)]);

	s.event_type = (uint8_t)rnd(SG_EVENT_COUNT);
	s.stage = (uint8_t)rnd(SG_STAGE_COUNT);
	s.proxy_type = (uint8_t)rnd(SG_PROXY_COUNT);
	s.action = (uint8_t)rnd(SG_ACTION_COUNT);
	s.confidence = (uint8_t)rnd(SG_CONFIDENCE_COUNT);
	memcpy(s.region, region_pool[rnd(5)], 3);
	return s;
}

/* Compares mt_index_match with mt_filter_match on every live filter. */
static int cross_check(const mt_index *ix, mt_filter *const *filters,
		       const bool *live, int n, int signals, int *matches)
{
	int *counts = calloc((size_t)n, sizeof(int));
	struct collect c = { counts, 0 };
	int mismatches = 0;

	if (!counts)
		return -1;
	for (int k = 0; k < signals; k++) {
		struct sg_signal s = random_signal();

		memset(counts, 0, (size_t)n * sizeof(int));
		mt_index_match(ix, &s, collect_found, &c);
		for (int i = 0; i < n; i++) {
			int expected = live[i] && mt_filter_match(filters[i], &s);

			*matches += expected;
			mismatches += counts[i] != expected;
		}
	}
	free(counts);
	return mismatches;
}

static void test_index_random_cross_check(void)
{
	enum { FILTERS = 1000, SIGNALS = 1000 };
	mt_filter **filters = calloc(FILTERS, sizeof(*filters));
	bool *live = calloc(FILTERS, sizeof(*live));
	mt_index *ix = mt_index_new();
	char text[1024];
	char err[256];
	int restricted = 0;
	int matches = 0;

	CHECK(filters != NULL);
	CHECK(live != NULL);
	CHECK(ix != NULL);
	if (!filters || !live || !ix)
		goto out;

	for (int i = 0; i < FILTERS; i++) {
		random_filter_text(text, sizeof(text));
		filters[i] = parse(text);
		if (!filters[i]) {
			/* Only an empty confidence combination may fail. */
			CHECK(strstr(last_error, "matches nothing") != NULL);
			filters[i] = parse("{}");
			if (!filters[i])
				goto out;
		}
		if (rnd(5) == 0) {
			const char *tenants[] = { "a.test,b.test", "shop.a.test",
						  "c.example,d.example,e.org" };

			CHECK(mt_filter_restrict(filters[i], tenants[rnd(3)],
						 err, sizeof(err)) == 0);
			restricted++;
		}
		CHECK(mt_index_add(ix, filters[i], (void *)(intptr_t)i) == 0);
		live[i] = true;
	}
	CHECK(restricted > 0);

	CHECK(cross_check(ix, filters, live, FILTERS, SIGNALS, &matches) == 0);
	CHECK(matches > 0);

	/* Remove a random third, add some back, and check again. */
	for (int i = 0; i < FILTERS; i++) {
		if (rnd(3) == 0) {
			mt_index_remove(ix, filters[i]);
			live[i] = false;
		}
	}
	for (int i = 0; i < FILTERS; i++) {
		if (!live[i] && rnd(4) == 0) {
			CHECK(mt_index_add(ix, filters[i], (void *)(intptr_t)i) == 0);
			live[i] = true;
		}
	}
	{
		size_t expected = 0;

		for (int i = 0; i < FILTERS; i++)
			expected += live[i];
		CHECK(mt_index_size(ix) == expected);
	}
	matches = 0;
	CHECK(cross_check(ix, filters, live, FILTERS, SIGNALS, &matches) == 0);
	CHECK(matches > 0);

out:
	mt_index_free(ix);
	for (int i = 0; filters && i < FILTERS; i++)
		mt_filter_free(filters[i]);
	free(filters);
	free(live);
}

int main(void)
{
	test_empty_filter_matches_all();
	test_each_field_alone();
	test_or_within_field();
	test_and_across_fields();
	test_min_confidence_order();
	test_threat_only();
	test_input_case();
	test_wildcard_and_boundaries();
	test_domain_case_and_dots();
	test_idn_patterns();
	test_invalid_filters();
	test_large_watchlist();
	test_restrict();
	test_index_many_owners();
	test_index_removal_during_match();
	test_index_random_cross_check();
	return check_summary();
}
