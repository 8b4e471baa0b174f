/*
 * Unit tests for the signal library: field rules, older names, domain and
 * time normalisation, both encodings and the batch parser with hostile
 * input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signal/batch.h"
#include "check.h"
#include "signal/signal.h"

static const char base_json[] =
	"{\"event_type\":\"credential_testing\",\"confidence\":\"high\","
	"\"source_region\":\"DE\",\"proxy_type\":\"residential\","
	"\"threat_stage\":\"ATTACK\",\"related_domain\":\"example.com\","
	"\"timestamp\":\"2026-01-03T04:05:06Z\","
	"\"recommended_action\":\"block\"}";

static json_t *base_object(void)
{
	json_error_t e;

	return json_loads(base_json, 0, &e);
}

/* Decodes the base object with key set to value (NULL removes the key). */
static int decode_with(const char *key, json_t *value, struct sg_signal *s,
		       struct sg_error *err)
{
	json_t *obj = base_object();
	int rc = 0;

	if (value)
		json_object_set_new(obj, key, value);
	else
		json_object_del(obj, key);
	memset(err, 0, sizeof(*err));
	rc = sg_from_json(obj, s, err);
	json_decref(obj);
	return rc;
}

static int decode_text(const char *text, struct sg_signal *s,
		       struct sg_error *err)
{
	json_error_t e;
	json_t *obj = json_loads(text, 0, &e);
	int rc = 0;

	memset(err, 0, sizeof(*err));
	rc = sg_from_json(obj, s, err);
	json_decref(obj);
	return rc;
}

static bool only_printable(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	}
	return true;
}

static bool signals_equal(const struct sg_signal *a, const struct sg_signal *b)
{
	return a->seq == b->seq && a->observed_us == b->observed_us &&
	       a->received_us == b->received_us &&
	       a->event_type == b->event_type &&
	       a->confidence == b->confidence &&
	       a->proxy_type == b->proxy_type && a->stage == b->stage &&
	       a->action == b->action &&
	       a->credential_leaked == b->credential_leaked &&
	       strcmp(a->region, b->region) == 0 &&
	       strcmp(a->domain, b->domain) == 0 &&
	       strcmp(a->sensor, b->sensor) == 0 &&
	       strcmp(a->campaign_id, b->campaign_id) == 0 &&
	       strcmp(a->infra_id, b->infra_id) == 0;
}

static void test_enum_lookup(void)
{
	CHECK(sg_enum_lookup(sg_confidence_names, SG_CONFIDENCE_COUNT, "low") == SG_CONFIDENCE_LOW);
	CHECK(sg_enum_lookup(sg_confidence_names, SG_CONFIDENCE_COUNT, "high") == SG_CONFIDENCE_HIGH);
	CHECK(sg_enum_lookup(sg_confidence_names, SG_CONFIDENCE_COUNT, "High") == -1);
	CHECK(sg_enum_lookup(sg_confidence_names, SG_CONFIDENCE_COUNT, NULL) == -1);
	CHECK(sg_enum_lookup(sg_stage_names, SG_STAGE_COUNT, "ATTACK") == SG_STAGE_ATTACK);
	CHECK_STR(sg_event_type_names[SG_EVENT_SIM_RECON], "sim_recon");
	CHECK_STR(sg_proxy_type_names[SG_PROXY_TOR], "tor");
	CHECK_STR(sg_action_names[SG_ACTION_ALERT_SOC], "alert_soc");
}

static void test_base_decodes(void)
{
	struct sg_signal s;
	struct sg_error err;

	CHECK(decode_with("unused", NULL, &s, &err) == 0);
	CHECK(s.event_type == SG_EVENT_CREDENTIAL_TESTING);
	CHECK(s.confidence == SG_CONFIDENCE_HIGH);
	CHECK_STR(s.region, "DE");
	CHECK(s.proxy_type == SG_PROXY_RESIDENTIAL);
	CHECK(s.stage == SG_STAGE_ATTACK);
	CHECK_STR(s.domain, "example.com");
	CHECK(s.observed_us == INT64_C(1767413106000000));
	CHECK(s.action == SG_ACTION_BLOCK);
	CHECK(s.credential_leaked == SG_BOOL_ABSENT);
	CHECK_STR(s.sensor, "");
	CHECK(s.seq == 0);
	CHECK(s.received_us == 0);
}

/* Every allowed value of one enum field decodes to its index. */
static void check_all_values(const char *field, const char *const *names,
			     int count, size_t offset)
{
	struct sg_signal s;
	struct sg_error err;

	for (int i = 0; i < count; i++) {
		CHECK(decode_with(field, json_string(names[i]), &s, &err) == 0);
		CHECK(((const uint8_t *)&s)[offset] == i);
	}
}

static void test_valid_enum_values(void)
{
	check_all_values("event_type", sg_event_type_names, SG_EVENT_COUNT,
			 offsetof(struct sg_signal, event_type));
	check_all_values("confidence", sg_confidence_names, SG_CONFIDENCE_COUNT,
			 offsetof(struct sg_signal, confidence));
	check_all_values("proxy_type", sg_proxy_type_names, SG_PROXY_COUNT,
			 offsetof(struct sg_signal, proxy_type));
	check_all_values("threat_stage", sg_stage_names, SG_STAGE_COUNT,
			 offsetof(struct sg_signal, stage));
	check_all_values("recommended_action", sg_action_names, SG_ACTION_COUNT,
			 offsetof(struct sg_signal, action));
}

static void test_invalid_enum_values(void)
{
	struct sg_signal s;
	struct sg_error err;

	CHECK(decode_with("confidence", json_string("huge"), &s, &err) == -1);
	CHECK_STR(err.field, "confidence");
	CHECK_STR(err.reason, "confidence \"huge\" is not one of low, medium, high");

	CHECK(decode_with("event_type", json_string("phishing"), &s, &err) == -1);
	CHECK_STR(err.field, "event_type");
	CHECK(strstr(err.reason, "\"phishing\"") != NULL);
	CHECK(strstr(err.reason, "credential_testing") != NULL);

	CHECK(decode_with("proxy_type", json_string("satellite"), &s, &err) == -1);
	CHECK_STR(err.field, "proxy_type");
	CHECK(decode_with("proxy_type", json_string("Tor"), &s, &err) == -1);
	CHECK(decode_with("recommended_action", json_string("panic"), &s, &err) == -1);
	CHECK_STR(err.field, "recommended_action");
	CHECK(decode_with("confidence", json_string(""), &s, &err) == -1);
	CHECK(decode_with("threat_stage", json_string("HALT"), &s, &err) == -1);
	CHECK_STR(err.field, "threat_stage");

	CHECK(decode_with("confidence", json_integer(3), &s, &err) == -1);
	CHECK_STR(err.reason, "confidence is an integer; send it as a string");
	CHECK(decode_with("event_type", json_array(), &s, &err) == -1);
	CHECK(strstr(err.reason, "an array") != NULL);
	CHECK(decode_with("timestamp", json_real(1.5), &s, &err) == -1);
	CHECK_STR(err.field, "timestamp");
}

static void test_stage_case(void)
{
	struct sg_signal s;
	struct sg_error err;

	CHECK(decode_with("threat_stage", json_string("testing"), &s, &err) == 0);
	CHECK(s.stage == SG_STAGE_TESTING);
	CHECK(decode_with("threat_stage", json_string("Attack"), &s, &err) == 0);
	CHECK(s.stage == SG_STAGE_ATTACK);
}

static void test_region(void)
{
	struct sg_signal s;
	struct sg_error err;

	CHECK(decode_with("source_region", json_string("jp"), &s, &err) == 0);
	CHECK_STR(s.region, "JP");
	CHECK(decode_with("source_region", json_string("EU"), &s, &err) == 0);
	CHECK_STR(s.region, "EU");
	CHECK(decode_with("source_region", NULL, &s, &err) == 0);
	CHECK_STR(s.region, "ZZ");
	CHECK(decode_with("source_region", json_null(), &s, &err) == 0);
	CHECK_STR(s.region, "ZZ");

	const char *bad[] = { "DEU", "D", "", "D1", "1E", "d-", ("\xc3\xa9" "a") };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(decode_with("source_region", json_string(bad[i]), &s, &err) == -1);
		CHECK_STR(err.field, "source_region");
		CHECK(only_printable(err.reason));
	}
}

static void test_required_fields(void)
{
	static const char *const required[] = {
		"event_type", "confidence", "proxy_type", "threat_stage",
		"related_domain", "timestamp", "recommended_action"
	};
	struct sg_signal s;
	struct sg_error err;

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		CHECK(decode_with(required[i], NULL, &s, &err) == -1);
		CHECK_STR(err.field, required[i]);
		CHECK(strstr(err.reason, "is missing") != NULL);
	}
	CHECK(decode_text("{}", &s, &err) == -1);
	CHECK(decode_text("[1]", &s, &err) == -1);
	CHECK_STR(err.reason, "the item is an array; send an object");
}

static void test_older_names(void)
{
	struct sg_signal s;
	struct sg_error err;
	json_t *obj = base_object();

	json_object_del(obj, "confidence");
	json_object_del(obj, "source_region");
	json_object_del(obj, "proxy_type");
	json_object_set_new(obj, "attack_confidence", json_string("medium"));
	json_object_set_new(obj, "source_country", json_string("fr"));
	json_object_set_new(obj, "infrastructure", json_string("residential-proxy"));
	json_object_set_new(obj, "recommended_action", json_string("monitor_or_step_up"));
	CHECK(sg_from_json(obj, &s, &err) == 0);
	CHECK(s.confidence == SG_CONFIDENCE_MEDIUM);
	CHECK_STR(s.region, "FR");
	CHECK(s.proxy_type == SG_PROXY_RESIDENTIAL);
	CHECK(s.action == SG_ACTION_STEP_UP);

	static const struct {
		const char *value;
		int expected;
	} infra[] = {
		{ "datacenter-proxy", SG_PROXY_DATACENTER },
		{ "mobile-proxy", SG_PROXY_MOBILE },
		{ "tor-exit", SG_PROXY_TOR },
		{ "tor", SG_PROXY_TOR },
		{ "residential", SG_PROXY_RESIDENTIAL },
		{ "satellite-proxy", -1 },
		{ "-proxy", -1 },
		{ "", -1 },
	};
	for (size_t i = 0; i < sizeof(infra) / sizeof(infra[0]); i++) {
		json_object_set_new(obj, "infrastructure", json_string(infra[i].value));
		int rc = sg_from_json(obj, &s, &err);

		CHECK(rc == (infra[i].expected < 0 ? -1 : 0));
		if (infra[i].expected >= 0)
			CHECK(s.proxy_type == infra[i].expected);
		else
			CHECK_STR(err.field, "infrastructure");
	}

	json_object_set_new(obj, "infrastructure", json_string("tor"));
	json_object_set_new(obj, "recommended_action", json_string("monitor_or_step_up_auth"));
	CHECK(sg_from_json(obj, &s, &err) == 0);
	CHECK(s.action == SG_ACTION_STEP_UP);
	json_decref(obj);
}

static void test_older_name_conflicts(void)
{
	struct sg_signal s;
	struct sg_error err;
	json_t *obj = base_object();

	/* Agreeing names are fine; lower-case region agrees after mapping. */
	json_object_set_new(obj, "attack_confidence", json_string("high"));
	json_object_set_new(obj, "source_country", json_string("de"));
	json_object_set_new(obj, "infrastructure", json_string("residential-proxy"));
	CHECK(sg_from_json(obj, &s, &err) == 0);

	json_object_set_new(obj, "attack_confidence", json_string("low"));
	CHECK(sg_from_json(obj, &s, &err) == -1);
	CHECK_STR(err.field, "confidence");
	CHECK(strstr(err.reason, "disagree") != NULL);
	json_object_set_new(obj, "attack_confidence", json_string("high"));

	json_object_set_new(obj, "source_country", json_string("US"));
	CHECK(sg_from_json(obj, &s, &err) == -1);
	CHECK_STR(err.field, "source_region");
	json_object_set_new(obj, "source_country", json_string("DE"));

	json_object_set_new(obj, "infrastructure", json_string("tor-exit"));
	CHECK(sg_from_json(obj, &s, &err) == -1);
	CHECK_STR(err.field, "proxy_type");
	json_decref(obj);
}

static void test_identifiers(void)
{
	static const char *const fields[] = { "sensor", "campaign_id", "infra_id" };
	char long_id[80];
	struct sg_signal s;
	struct sg_error err;

	memset(long_id, 'a', sizeof(long_id));
	long_id[64] = '\0';
	for (size_t i = 0; i < 3; i++) {
		CHECK(decode_with(fields[i], json_string("hp-01.fra:2_x"), &s, &err) == 0);
		CHECK(decode_with(fields[i], json_string(long_id), &s, &err) == 0);
	}
	CHECK_STR(s.infra_id, long_id);

	long_id[64] = 'a';
	long_id[65] = '\0';
	const char *bad[] = { "", "a b", "x/y", "caf\xc3\xa9", "a\"b", long_id };

	for (size_t i = 0; i < 3; i++) {
		for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			CHECK(decode_with(fields[i], json_string(bad[j]), &s, &err) == -1);
			CHECK_STR(err.field, fields[i]);
			CHECK(only_printable(err.reason));
		}
		CHECK(decode_with(fields[i], json_integer(7), &s, &err) == -1);
	}
}

static void test_identifier_addresses(void)
{
	static const char *const addresses[] = {
		"203.0.113.7", "2001:db8::1", "::1", "::ffff:198.51.100.2",
		"fe80::1:2:3:4"
	};
	struct sg_signal s;
	struct sg_error err;

	for (size_t i = 0; i < sizeof(addresses) / sizeof(addresses[0]); i++) {
		CHECK(decode_with("infra_id", json_string(addresses[i]), &s, &err) == -1);
		CHECK_STR(err.field, "infra_id");
		CHECK(strstr(err.reason, "keyed hash") != NULL);
		CHECK(strstr(err.reason, addresses[i]) == NULL);
		CHECK(decode_with("sensor", json_string(addresses[i]), &s, &err) == -1);
		CHECK_STR(err.field, "sensor");
	}
	/* Hashes and names that only look numeric stay accepted. */
	CHECK(decode_with("infra_id", json_string("h1:9f86d081884c7d65"), &s, &err) == 0);
	CHECK(decode_with("sensor", json_string("12345"), &s, &err) == 0);
	CHECK(decode_with("sensor", json_string("1.2.3"), &s, &err) == 0);
}

static void test_credential_leaked(void)
{
	struct sg_signal s;
	struct sg_error err;

	CHECK(decode_with("credential_leaked", json_true(), &s, &err) == 0);
	CHECK(s.credential_leaked == 1);
	CHECK(decode_with("credential_leaked", json_false(), &s, &err) == 0);
	CHECK(s.credential_leaked == 0);
	CHECK(decode_with("credential_leaked", json_string("true"), &s, &err) == -1);
	CHECK_STR(err.field, "credential_leaked");
	CHECK(decode_with("credential_leaked", json_integer(1), &s, &err) == -1);
}

static void test_unknown_fields_dropped(void)
{
	struct sg_signal s;
	struct sg_error err;
	char text[1024];
	json_t *obj = base_object();
	json_t *out = NULL;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;

	json_object_set_new(obj, "username", json_string("alice"));
	json_object_set_new(obj, "password", json_string("hunter2"));
	json_object_set_new(obj, "src_ip", json_string("198.51.100.23"));
	json_object_set_new(obj, "email", json_string("alice@example.org"));
	json_object_set_new(obj, "id", json_string("sig_999"));
	json_object_set_new(obj, "seq", json_integer(999));
	CHECK(sg_from_json(obj, &s, &err) == 0);
	CHECK(s.seq == 0);

	size_t n = sg_to_json_text(&s, text, sizeof(text));

	CHECK(n < sizeof(text));
	const char *planted[] = { "username", "alice", "password", "hunter2",
				  "src_ip", "198.51.100.23", "email", "999" };

	for (size_t i = 0; i < sizeof(planted) / sizeof(planted[0]); i++)
		CHECK(strstr(text, planted[i]) == NULL);

	out = sg_to_json(&s);
	CHECK(json_object_get(out, "username") == NULL);
	CHECK(json_object_get(out, "email") == NULL);
	CHECK(json_object_size(out) == 10);
	json_decref(out);

	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	CHECK(sg_to_msgpack(&s, &pk, true) == 0);
	for (size_t i = 0; i < sizeof(planted) / sizeof(planted[0]); i++)
		CHECK(memmem(sbuf.data, sbuf.size, planted[i], strlen(planted[i])) == NULL);
	msgpack_sbuffer_destroy(&sbuf);
	json_decref(obj);
}

static void test_domains(void)
{
	static const struct {
		const char *in;
		const char *out;
	} good[] = {
		{ "BÜCHER.example.", "xn--bcher-kva.example" },
		{ "\xef\xbc\xa5\xef\xbc\xb8\xef\xbc\xa1\xef\xbc\xad\xef\xbc\xb0\xef\xbc\xac\xef\xbc\xa5.com",
		  "example.com" },
		{ "Example.COM.", "example.com" },
		{ "xn--bcher-kva.example", "xn--bcher-kva.example" },
		{ "fa\xc3\x9f.de", "xn--fa-hia.de" },
		{ "a-b.c0m", "a-b.c0m" },
		{ "sub.domain.example.co.uk", "sub.domain.example.co.uk" },
		{ "XN--BCHER-KVA.Example", "xn--bcher-kva.example" },
		{ "example\xef\xbc\x8e" "com\xef\xbc\x8e", "example.com" },
		{ "example\xe3\x80\x82" "com", "example.com" },
	};
	char out[SG_DOMAIN_MAX + 1];
	char err[160];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK(sg_domain_normalize(good[i].in, false, out, err, sizeof(err)) == 0);
		CHECK_STR(out, good[i].out);
	}

	char label64[128];
	char too_long[400];

	memset(label64, 'a', 64);
	strcpy(label64 + 64, ".com");
	/* 63 + 1 + 63 + 1 + 63 + 1 + 63 = 255 bytes, over 253. */
	memset(too_long, 'b', 255);
	too_long[63] = too_long[127] = too_long[191] = '.';
	too_long[255] = '\0';
	CHECK(strlen(too_long) == 255);

	const char *bad[] = { "exa mple.com", "-a.com", "a-.com", label64, too_long,
			      "a..b", "localhost", "", ".", "example.com..",
			      "a_b.com", "1.2.3.4", "xn--zz.com", "*.example.com",
			      "caf\xc3", "a.com/x", "B\xc3\x9c" "cher.example..",
			      "example\xef\xbc\x8e" "com\xef\xbc\x8e.", "b\xc3\xbc cher.com" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = sg_domain_normalize(bad[i], false, out, err, sizeof(err));

		CHECK(rc == -1);
		if (rc == 0)
			fprintf(stderr, "  accepted bad domain \"%s\" as \"%s\"\n", bad[i], out);
		CHECK(only_printable(err));
	}
	CHECK(strstr(err, "not a valid domain name") != NULL);

	/* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 bytes is the longest name. */
	too_long[253] = '\0';
	CHECK(sg_domain_normalize(too_long, false, out, err, sizeof(err)) == 0);
	CHECK(strlen(out) == 253);
	CHECK(sg_domain_normalize(label64 + 1, false, out, err, sizeof(err)) == 0);
}

static void test_domain_wildcard(void)
{
	char out[SG_DOMAIN_MAX + 1];
	char err[160];

	CHECK(sg_domain_normalize("*.Example.COM", true, out, err, sizeof(err)) == 0);
	CHECK_STR(out, "*.example.com");
	CHECK(sg_domain_normalize("*.B\xc3\x9c" "CHER.example", true, out, err, sizeof(err)) == 0);
	CHECK_STR(out, "*.xn--bcher-kva.example");
	CHECK(sg_domain_normalize("*.com", true, out, err, sizeof(err)) == -1);
	CHECK(sg_domain_normalize("a.*.com", true, out, err, sizeof(err)) == -1);
	CHECK(sg_domain_normalize("*", true, out, err, sizeof(err)) == -1);
}

static void test_domain_in_signal(void)
{
	struct sg_signal s;
	struct sg_error err;

	CHECK(decode_with("related_domain", json_string("B\xc3\x9c" "CHER.example."), &s, &err) == 0);
	CHECK_STR(s.domain, "xn--bcher-kva.example");
	CHECK(decode_with("related_domain", json_string("exa mple.com"), &s, &err) == -1);
	CHECK_STR(err.field, "related_domain");
	CHECK(strstr(err.reason, "related_domain \"exa mple.com\"") == err.reason);
}

static void test_time_parse(void)
{
	static const struct {
		const char *text;
		int64_t us;
	} good[] = {
		{ "2026-01-03T04:05:06Z", INT64_C(1767413106000000) },
		{ "2026-01-03T13:05:06+09:00", INT64_C(1767413106000000) },
		{ "2026-01-02T23:35:06-04:30", INT64_C(1767413106000000) },
		{ "2026-01-03t04:05:06z", INT64_C(1767413106000000) },
		{ "2026-01-03T04:05:06-00:00", INT64_C(1767413106000000) },
		{ "2026-01-03T04:05:06.5Z", INT64_C(1767413106500000) },
		{ "2026-01-03T04:05:06.123Z", INT64_C(1767413106123000) },
		{ "2026-01-03T04:05:06.123456Z", INT64_C(1767413106123456) },
		{ "2026-01-03T04:05:06.123456789Z", INT64_C(1767413106123456) },
		{ "2024-02-29T00:00:00Z", INT64_C(1709164800000000) },
		{ "2000-02-29T12:00:00Z", INT64_C(951825600000000) },
		{ "1970-01-01T00:00:00Z", 0 },
		{ "1969-12-31T23:59:59.999999Z", -1 },
		/* Leap second: the last microsecond of that UTC day. */
		{ "2016-12-31T23:59:60Z", INT64_C(1483228799999999) },
		{ "2017-01-01T08:59:60+09:00", INT64_C(1483228799999999) },
	};
	static const char *const bad[] = {
		"2026-01-03T04:05:06", "2026-01-03 04:05:06Z", "2026-01-03",
		"2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
		"2026-02-30T00:00:00Z", "2026-04-31T00:00:00Z",
		"2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
		"2026-01-00T00:00:00Z", "2026-01-03T24:00:00Z",
		"2026-01-03T23:60:00Z", "2026-01-03T04:05:60Z",
		"2026-01-03T04:05:06+24:00", "2026-01-03T04:05:06+09:60",
		"2026-01-03T04:05:06+0900", "2026-01-03T04:05:06.Z",
		"2026-01-03T04:05:06.1234567890Z", "2026-01-03T04:05:06Zjunk",
		"26-01-03T04:05:06Z", "2026-1-3T4:5:6Z", "", "yesterday",
		"+2026-01-03T04:05:06Z", "0000-01-01T00:00:00+00:01",
	};
	int64_t us = 0;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int rc = sg_time_parse(good[i].text, &us);

		CHECK(rc == 0);
		CHECK(us == good[i].us);
		if (rc != 0 || us != good[i].us)
			fprintf(stderr, "  time \"%s\" -> %d %lld\n", good[i].text, rc, (long long)us);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		us = 42;
		CHECK(sg_time_parse(bad[i], &us) == -1);
		CHECK(us == 42);
	}
}

static void test_time_reasons(void)
{
	struct sg_signal s;
	struct sg_error err;

	CHECK(decode_with("timestamp", json_string("2026-01-03T04:05:06"), &s, &err) == -1);
	CHECK_STR(err.field, "timestamp");
	CHECK(strstr(err.reason, "offset") != NULL);
	CHECK(decode_with("timestamp", json_string("2026-02-30T04:05:06Z"), &s, &err) == -1);
	CHECK(strstr(err.reason, "does not exist") != NULL);
	CHECK(decode_with("timestamp", json_string("2026-01-03T04:05:06+09:00"), &s, &err) == 0);
	CHECK(s.observed_us == INT64_C(1767380706000000));
}

static void test_time_format(void)
{
	char buf[32];

	sg_time_format(INT64_C(1767413106000000), buf);
	CHECK_STR(buf, "2026-01-03T04:05:06Z");
	sg_time_format(INT64_C(1767413106500000), buf);
	CHECK_STR(buf, "2026-01-03T04:05:06.500Z");
	sg_time_format(INT64_C(1767413106000001), buf);
	CHECK_STR(buf, "2026-01-03T04:05:06.000001Z");
	sg_time_format(INT64_C(1767413106123450), buf);
	CHECK_STR(buf, "2026-01-03T04:05:06.123450Z");
	sg_time_format(0, buf);
	CHECK_STR(buf, "1970-01-01T00:00:00Z");
	sg_time_format(-1, buf);
	CHECK_STR(buf, "1969-12-31T23:59:59.999999Z");
	sg_time_format(INT64_C(951825600000000), buf);
	CHECK_STR(buf, "2000-02-29T12:00:00Z");
	sg_time_format(INT64_C(253402300799999999), buf);
	CHECK_STR(buf, "9999-12-31T23:59:59.999999Z");

	/* sg_now_us is after 2024-01-01 and before 2100-01-01. */
	CHECK(sg_now_us() > INT64_C(1704067200000000));
	CHECK(sg_now_us() < INT64_C(4102444800000000));
}

static void make_full_signal(struct sg_signal *s)
{
	struct sg_error err;
	const char *text =
		"{\"event_type\":\"sim_recon\",\"confidence\":\"medium\","
		"\"source_region\":\"jp\",\"proxy_type\":\"mobile\","
		"\"threat_stage\":\"testing\",\"related_domain\":\"B\xc3\x9c" "CHER.example.\","
		"\"timestamp\":\"2026-01-03T13:05:06.250+09:00\","
		"\"recommended_action\":\"alert_soc\",\"sensor\":\"hp-7\","
		"\"campaign_id\":\"c:42\",\"credential_leaked\":true,"
		"\"infra_id\":\"h1:abcdef\"}";

	CHECK(decode_text(text, s, &err) == 0);
	s->seq = 17;
	s->received_us = INT64_C(1767413200000000);
}

static void test_json_text(void)
{
	static const char expected[] =
		"{\"id\":\"sig_17\",\"seq\":17,\"event_type\":\"sim_recon\","
		"\"confidence\":\"medium\",\"source_region\":\"JP\","
		"\"proxy_type\":\"mobile\",\"threat_stage\":\"TESTING\","
		"\"related_domain\":\"xn--bcher-kva.example\","
		"\"timestamp\":\"2026-01-03T04:05:06.250Z\","
		"\"recommended_action\":\"alert_soc\",\"sensor\":\"hp-7\","
		"\"campaign_id\":\"c:42\",\"credential_leaked\":true,"
		"\"infra_id\":\"h1:abcdef\"}";
	struct sg_signal s;
	char buf[1024];
	char small[40];

	make_full_signal(&s);
	CHECK(sg_to_json_text(&s, buf, sizeof(buf)) == strlen(expected));
	CHECK_STR(buf, expected);

	/* Too small: returns the full length, writes cap bytes at most. */
	memset(small, 'x', sizeof(small));
	CHECK(sg_to_json_text(&s, small, 20) == strlen(expected));
	CHECK(small[19] == '\0');
	CHECK(strncmp(small, expected, 19) == 0);
	CHECK(small[20] == 'x');
	CHECK(sg_to_json_text(&s, NULL, 0) == strlen(expected));
	CHECK(sg_to_json_text(&s, buf, strlen(expected)) == strlen(expected));
	CHECK(buf[strlen(expected) - 1] == '\0');
	CHECK(sg_to_json_text(&s, buf, strlen(expected) + 1) == strlen(expected));
	CHECK_STR(buf, expected);

	/* Without optional fields the object ends after recommended_action. */
	s.sensor[0] = s.campaign_id[0] = s.infra_id[0] = '\0';
	s.credential_leaked = SG_BOOL_ABSENT;
	sg_to_json_text(&s, buf, sizeof(buf));
	CHECK(strstr(buf, "\"recommended_action\":\"alert_soc\"}") != NULL);
	s.credential_leaked = 0;
	sg_to_json_text(&s, buf, sizeof(buf));
	CHECK(strstr(buf, "\"credential_leaked\":false}") != NULL);
}

static void test_json_text_escapes(void)
{
	struct sg_signal s;
	char buf[1024];
	json_error_t e;
	json_t *parsed = NULL;

	/* Values are validated on ingest; the writer escapes anyway. */
	make_full_signal(&s);
	strcpy(s.sensor, "a\"b\\c\n\x01\x7f");
	sg_to_json_text(&s, buf, sizeof(buf));
	parsed = json_loads(buf, 0, &e);
	CHECK(parsed != NULL);
	CHECK_STR(json_string_value(json_object_get(parsed, "sensor")), "a\"b\\c\n\x01\x7f");
	json_decref(parsed);
}

static void test_json_tree_matches_text(void)
{
	struct sg_signal s;
	char buf[1024];
	json_error_t e;
	json_t *tree = NULL;
	json_t *parsed = NULL;

	make_full_signal(&s);
	tree = sg_to_json(&s);
	sg_to_json_text(&s, buf, sizeof(buf));
	parsed = json_loads(buf, 0, &e);
	CHECK(parsed != NULL);
	CHECK(json_equal(tree, parsed));
	CHECK(json_integer_value(json_object_get(tree, "seq")) == 17);
	CHECK(json_is_true(json_object_get(tree, "credential_leaked")));
	json_decref(tree);
	json_decref(parsed);
}

static void test_json_round_trip(void)
{
	struct sg_signal a;
	struct sg_signal b;
	struct sg_error err;
	char buf[1024];

	make_full_signal(&a);
	sg_to_json_text(&a, buf, sizeof(buf));
	CHECK(decode_text(buf, &b, &err) == 0);
	/* seq and received_us are not taken from JSON input. */
	CHECK(b.seq == 0);
	b.seq = a.seq;
	b.received_us = a.received_us;
	CHECK(signals_equal(&a, &b));

	/* Every fraction format survives the round trip. */
	const int64_t times[] = { INT64_C(1767413106000000), INT64_C(1767413106001000),
				  INT64_C(1767413106000001), -1 };

	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		a.observed_us = times[i];
		sg_to_json_text(&a, buf, sizeof(buf));
		CHECK(decode_text(buf, &b, &err) == 0);
		CHECK(b.observed_us == times[i]);
	}
}

static void pack_signal(const struct sg_signal *s, bool with_received,
			msgpack_sbuffer *sbuf)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sbuf);
	msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
	CHECK(sg_to_msgpack(s, &pk, with_received) == 0);
}

static int unpack_signal(const char *data, size_t len, struct sg_signal *s,
			 struct sg_error *err)
{
	msgpack_unpacked result;
	size_t off = 0;
	int rc = -1;

	msgpack_unpacked_init(&result);
	if (msgpack_unpack_next(&result, data, len, &off) == MSGPACK_UNPACK_SUCCESS) {
		memset(err, 0, sizeof(*err));
		rc = sg_from_msgpack(&result.data, s, err);
	}
	msgpack_unpacked_destroy(&result);
	return rc;
}

static void test_msgpack_round_trip(void)
{
	struct sg_signal a;
	struct sg_signal b;
	struct sg_error err;
	msgpack_sbuffer sbuf;

	make_full_signal(&a);
	pack_signal(&a, true, &sbuf);
	CHECK(unpack_signal(sbuf.data, sbuf.size, &b, &err) == 0);
	CHECK(signals_equal(&a, &b));
	msgpack_sbuffer_destroy(&sbuf);

	/* Without received_us, and without optional fields. */
	a.sensor[0] = a.campaign_id[0] = a.infra_id[0] = '\0';
	a.credential_leaked = SG_BOOL_ABSENT;
	a.observed_us = INT64_C(1767413106000001);
	pack_signal(&a, false, &sbuf);
	CHECK(unpack_signal(sbuf.data, sbuf.size, &b, &err) == 0);
	CHECK(b.received_us == 0);
	b.received_us = a.received_us;
	CHECK(signals_equal(&a, &b));
	msgpack_sbuffer_destroy(&sbuf);

	/* The map contains the JSON names: seq is a uint, timestamp a string. */
	msgpack_unpacked result;
	size_t off = 0;

	pack_signal(&a, true, &sbuf);
	msgpack_unpacked_init(&result);
	CHECK(msgpack_unpack_next(&result, sbuf.data, sbuf.size, &off) == MSGPACK_UNPACK_SUCCESS);
	CHECK(result.data.type == MSGPACK_OBJECT_MAP);
	CHECK(result.data.via.map.size == 11);
	for (uint32_t i = 0; i < result.data.via.map.size; i++) {
		const msgpack_object_kv *kv = &result.data.via.map.ptr[i];

		if (kv->key.via.str.size == 3 && memcmp(kv->key.via.str.ptr, "seq", 3) == 0) {
			CHECK(kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER);
			CHECK(kv->val.via.u64 == 17);
		}
		if (kv->key.via.str.size == 9 && memcmp(kv->key.via.str.ptr, "timestamp", 9) == 0)
			CHECK(kv->val.type == MSGPACK_OBJECT_STR);
	}
	msgpack_unpacked_destroy(&result);
	msgpack_sbuffer_destroy(&sbuf);
}

/* Packs a string map from pairs; a NULL value packs an integer 5. */
static void pack_map(msgpack_sbuffer *sbuf, const char *const *pairs,
		     size_t n)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sbuf);
	msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_str_with_body(&pk, pairs[2 * i], strlen(pairs[2 * i]));
		if (pairs[2 * i + 1])
			msgpack_pack_str_with_body(&pk, pairs[2 * i + 1], strlen(pairs[2 * i + 1]));
		else
			msgpack_pack_int(&pk, 5);
	}
}

static void test_msgpack_ingest_rules(void)
{
	const char *pairs[] = {
		"event_type", "fraud_test", "attack_confidence", "low",
		"source_country", "us", "infrastructure", "datacenter-proxy",
		"threat_stage", "attack", "related_domain", "EXAMPLE.org.",
		"timestamp", "2026-01-03T04:05:06Z",
		"recommended_action", "monitor_or_step_up_auth",
		"password", "hunter2", "seq", "77",
	};
	struct sg_signal s;
	struct sg_error err;
	msgpack_sbuffer sbuf;

	pack_map(&sbuf, pairs, 10);
	CHECK(unpack_signal(sbuf.data, sbuf.size, &s, &err) == 0);
	CHECK(s.event_type == SG_EVENT_FRAUD_TEST);
	CHECK(s.confidence == SG_CONFIDENCE_LOW);
	CHECK_STR(s.region, "US");
	CHECK(s.proxy_type == SG_PROXY_DATACENTER);
	CHECK(s.stage == SG_STAGE_ATTACK);
	CHECK_STR(s.domain, "example.org");
	CHECK(s.action == SG_ACTION_STEP_UP);
	CHECK(s.seq == 0);
	msgpack_sbuffer_destroy(&sbuf);

	/* A non-string value for a known field. */
	pairs[3] = NULL;
	pack_map(&sbuf, pairs, 10);
	CHECK(unpack_signal(sbuf.data, sbuf.size, &s, &err) == -1);
	CHECK_STR(err.field, "attack_confidence");
	CHECK_STR(err.reason, "attack_confidence is an integer; send it as a string");
	msgpack_sbuffer_destroy(&sbuf);
	pairs[3] = "low";

	/* A repeated key, even an unknown one. */
	pairs[18] = "event_type";
	pack_map(&sbuf, pairs, 10);
	CHECK(unpack_signal(sbuf.data, sbuf.size, &s, &err) == -1);
	CHECK(strstr(err.reason, "\"event_type\" appears more than once") != NULL);
	msgpack_sbuffer_destroy(&sbuf);
	pairs[18] = "password";

	/* Raw bytes in a value never reach the message. */
	pairs[3] = "\x01\xff\x1b[31m";
	pack_map(&sbuf, pairs, 10);
	CHECK(unpack_signal(sbuf.data, sbuf.size, &s, &err) == -1);
	CHECK(only_printable(err.reason));
	msgpack_sbuffer_destroy(&sbuf);
	pairs[3] = "low";

	/* A NUL byte inside a string value. */
	msgpack_packer pk;

	pack_map(&sbuf, pairs, 9);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	sbuf.data[0] = (char)0x8a;  /* fixmap of 10 */
	msgpack_pack_str_with_body(&pk, "sensor", 6);
	msgpack_pack_str_with_body(&pk, "a\0b", 3);
	CHECK(unpack_signal(sbuf.data, sbuf.size, &s, &err) == -1);
	CHECK_STR(err.field, "sensor");
	msgpack_sbuffer_destroy(&sbuf);

	/* A non-string key. */
	pack_map(&sbuf, pairs, 9);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	sbuf.data[0] = (char)0x8a;
	msgpack_pack_int(&pk, 1);
	msgpack_pack_int(&pk, 2);
	CHECK(unpack_signal(sbuf.data, sbuf.size, &s, &err) == -1);
	CHECK(strstr(err.reason, "key") != NULL);
	msgpack_sbuffer_destroy(&sbuf);
}

static int parse_body(const char *body, size_t len, enum sg_format fmt,
		      size_t max_items, struct sg_batch *b,
		      struct sg_batch_report *rep)
{
	int rc = sg_batch_parse(body, len, fmt, max_items, b, rep);

	if (rc == 0) {
		CHECK(b->count >= 1);
		CHECK(rep->total == 0);
	} else {
		CHECK(b->items == NULL);
		CHECK(b->count == 0);
		CHECK(rep->total >= 1);
		CHECK(rep->listed >= 1);
		for (size_t i = 0; i < rep->listed; i++)
			CHECK(only_printable(rep->problems[i].error.reason));
	}
	return rc;
}

static int parse_text(const char *body, enum sg_format fmt,
		      struct sg_batch *b, struct sg_batch_report *rep)
{
	return parse_body(body, strlen(body), fmt, 1000, b, rep);
}

static void test_batch_json(void)
{
	struct sg_batch b;
	struct sg_batch_report rep;
	char body[4096];

	CHECK(parse_text(base_json, SG_FORMAT_JSON, &b, &rep) == 0);
	CHECK(b.count == 1);
	CHECK_STR(b.items[0].domain, "example.com");
	sg_batch_free(&b);
	CHECK(b.items == NULL);

	snprintf(body, sizeof(body), "[%s,%s,%s]", base_json, base_json, base_json);
	CHECK(parse_text(body, SG_FORMAT_JSON, &b, &rep) == 0);
	CHECK(b.count == 3);
	sg_batch_free(&b);

	/* Bad items: each problem with its index and field, and no items at
	 * all. Item 1 has a rejected event_type and misses the other six
	 * required fields. */
	snprintf(body, sizeof(body),
		 "[%s,{\"event_type\":\"nope\"},%s,7]", base_json, base_json);
	CHECK(parse_text(body, SG_FORMAT_JSON, &b, &rep) == -1);
	CHECK(rep.total == 8);
	CHECK(rep.problems[0].index == 1);
	CHECK_STR(rep.problems[0].error.field, "event_type");
	for (int i = 1; i <= 6; i++) {
		CHECK(rep.problems[i].index == 1);
		CHECK(strstr(rep.problems[i].error.reason, "is missing") != NULL);
	}
	CHECK_STR(rep.problems[1].error.field, "confidence");
	CHECK_STR(rep.problems[6].error.field, "recommended_action");
	CHECK(rep.problems[7].index == 3);
	CHECK_STR(rep.problems[7].error.reason, "the item is an integer; send an object");

	CHECK(parse_text("[]", SG_FORMAT_JSON, &b, &rep) == -1);
	CHECK(rep.problems[0].index == SG_BATCH_WHOLE_BODY);
	CHECK(parse_text("\"text\"", SG_FORMAT_JSON, &b, &rep) == -1);
	CHECK(parse_text("  \n ", SG_FORMAT_JSON, &b, &rep) == -1);
	CHECK(strstr(rep.problems[0].error.reason, "empty") != NULL);
	CHECK(parse_body("", 0, SG_FORMAT_JSON, 10, &b, &rep) == -1);
	CHECK(rep.problems[0].index == SG_BATCH_WHOLE_BODY);
}

/* Every problem of one item is listed, in member order, then the missing
 * fields. A field sent with a rejected value, under its newer or older
 * name, is not also reported missing. */
static void test_batch_every_problem_of_item(void)
{
	struct sg_batch b;
	struct sg_batch_report rep;
	const char *body =
		"[{\"event_type\":\"credential_testing\",\"confidence\":\"huge\","
		"\"infrastructure\":\"satellite\",\"threat_stage\":\"ATTACK\","
		"\"related_domain\":\"example.com\",\"timestamp\":\"yesterday\"}]";

	CHECK(parse_text(body, SG_FORMAT_JSON, &b, &rep) == -1);
	CHECK(rep.total == 4);
	CHECK(rep.listed == 4);
	for (size_t i = 0; i < rep.listed; i++)
		CHECK(rep.problems[i].index == 0);
	CHECK_STR(rep.problems[0].error.field, "confidence");
	CHECK(strstr(rep.problems[0].error.reason, "huge") != NULL);
	CHECK_STR(rep.problems[1].error.field, "infrastructure");
	CHECK(strstr(rep.problems[1].error.reason, "satellite") != NULL);
	CHECK_STR(rep.problems[2].error.field, "timestamp");
	CHECK_STR(rep.problems[3].error.field, "recommended_action");
	CHECK(strstr(rep.problems[3].error.reason, "is missing") != NULL);
}

static void test_batch_msgpack_every_problem(void)
{
	struct sg_batch b;
	struct sg_batch_report rep;
	msgpack_sbuffer sbuf;
	msgpack_packer pk;

	/* {"event_type": 5, "confidence": "huge"}: two rejected values and
	 * five missing fields. */
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "event_type", 10);
	msgpack_pack_int(&pk, 5);
	msgpack_pack_str_with_body(&pk, "confidence", 10);
	msgpack_pack_str_with_body(&pk, "huge", 4);
	CHECK(parse_body(sbuf.data, sbuf.size, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
	CHECK(rep.total == 7);
	CHECK_STR(rep.problems[0].error.field, "event_type");
	CHECK_STR(rep.problems[1].error.field, "confidence");
	CHECK_STR(rep.problems[2].error.field, "proxy_type");
	CHECK(strstr(rep.problems[2].error.reason, "is missing") != NULL);
	msgpack_sbuffer_destroy(&sbuf);
}

static void test_batch_many_problems(void)
{
	struct sg_batch b;
	struct sg_batch_report rep;
	size_t cap = 64 * 1024;
	char *body = malloc(cap);
	size_t n = 0;

	n += (size_t)snprintf(body + n, cap - n, "[");
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(body + n, cap - n, "%s{}", i ? "," : "");
	snprintf(body + n, cap - n, "]");
	/* Each empty object misses the 7 required fields. */
	CHECK(parse_text(body, SG_FORMAT_JSON, &b, &rep) == -1);
	CHECK(rep.total == 40 * 7);
	CHECK(rep.listed == SG_BATCH_MAX_PROBLEMS);
	CHECK(rep.problems[31].index == 31 / 7);
	free(body);
}

static void test_batch_max_items(void)
{
	struct sg_batch b;
	struct sg_batch_report rep;
	char body[8192];

	snprintf(body, sizeof(body), "[%s,%s,%s]", base_json, base_json, base_json);
	CHECK(parse_body(body, strlen(body), SG_FORMAT_JSON, 2, &b, &rep) == -1);
	CHECK(rep.total == 1);
	CHECK(rep.problems[0].index == SG_BATCH_WHOLE_BODY);
	CHECK(strstr(rep.problems[0].error.reason, "limit is 2") != NULL);
	CHECK(parse_body(body, strlen(body), SG_FORMAT_JSON, 3, &b, &rep) == 0);
	sg_batch_free(&b);

	snprintf(body, sizeof(body), "%s\n%s\n%s\n", base_json, base_json, base_json);
	CHECK(parse_body(body, strlen(body), SG_FORMAT_NDJSON, 2, &b, &rep) == -1);
	CHECK(rep.problems[0].index == SG_BATCH_WHOLE_BODY);
}

static void test_batch_ndjson(void)
{
	struct sg_batch b;
	struct sg_batch_report rep;
	char body[8192];

	snprintf(body, sizeof(body), "%s\n\n  \r\n%s\r\n%s", base_json, base_json, base_json);
	CHECK(parse_text(body, SG_FORMAT_NDJSON, &b, &rep) == 0);
	CHECK(b.count == 3);
	sg_batch_free(&b);

	/* The index is the line number from 0, blank lines included. */
	snprintf(body, sizeof(body), "%s\n\n{\"confidence\":\"huge\"}\n[1]\n{bad\n", base_json);
	CHECK(parse_text(body, SG_FORMAT_NDJSON, &b, &rep) == -1);
	/* Line 2: the rejected confidence and 6 missing fields. */
	CHECK(rep.total == 9);
	CHECK(rep.problems[0].index == 2);
	CHECK_STR(rep.problems[0].error.field, "confidence");
	CHECK(rep.problems[6].index == 2);
	CHECK(rep.problems[7].index == 3);
	CHECK(rep.problems[8].index == 4);
	CHECK(strstr(rep.problems[8].error.reason, "invalid JSON") != NULL);

	CHECK(parse_text("\n\n \n", SG_FORMAT_NDJSON, &b, &rep) == -1);
	CHECK(rep.problems[0].index == SG_BATCH_WHOLE_BODY);
	/* Two objects on one line are not NDJSON. */
	snprintf(body, sizeof(body), "%s %s\n", base_json, base_json);
	CHECK(parse_text(body, SG_FORMAT_NDJSON, &b, &rep) == -1);
	CHECK(rep.problems[0].index == 0);
}

static void test_batch_hostile_json(void)
{
	static const char *const bodies[] = {
		"{\"event_type\":\"fraud_test\xff\"}",
		"{\"sensor\":\"\\uDC00\"}",
		"{\"sensor\":\"\\uD800x\"}",
		"{\"sensor\":\"a\\u0000b\"}",
		"{\"confidence\":\"low\",\"confidence\":\"high\"}",
		"{\"x\":18446744073709551616}",
		"{\"seq\":18446744073709551615}",
		"{\"event_type\":\"fraud_test\"",
		"[{\"event_type\":",
		"{\"event_type\":\"fraud_test\"} trailing",
	};
	struct sg_batch b;
	struct sg_batch_report rep;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		CHECK(parse_text(bodies[i], SG_FORMAT_JSON, &b, &rep) == -1);
		CHECK(rep.problems[0].index == SG_BATCH_WHOLE_BODY);
		CHECK(strstr(rep.problems[0].error.reason, "invalid JSON") != NULL);
		CHECK(parse_text(bodies[i], SG_FORMAT_NDJSON, &b, &rep) == -1);
	}

	/* A big double is no seq: ingest ignores seq in any form. */
	char body[4096];

	snprintf(body, sizeof(body), "[%.*s,\"seq\":1e300,\"id\":9007199254740993}]",
		 (int)strlen(base_json) - 1, base_json);
	CHECK(parse_text(body, SG_FORMAT_JSON, &b, &rep) == 0);
	CHECK(b.count == 1);
	CHECK(b.items[0].seq == 0);
	sg_batch_free(&b);
}

static char *nested(size_t depth, const char *open, const char *close,
		    const char *middle)
{
	size_t lo = strlen(open), lc = strlen(close), lm = strlen(middle);
	char *text = malloc(depth * (lo + lc) + lm + 1);
	size_t n = 0;

	for (size_t i = 0; i < depth; i++, n += lo)
		memcpy(text + n, open, lo);
	memcpy(text + n, middle, lm);
	n += lm;
	for (size_t i = 0; i < depth; i++, n += lc)
		memcpy(text + n, close, lc);
	text[n] = '\0';
	return text;
}

static void test_json_depth(void)
{
	struct sg_batch b;
	struct sg_batch_report rep;
	char err[160];
	json_t *j = NULL;
	char *text = NULL;

	text = nested(32, "[", "]", "");
	j = sg_json_parse_strict(text, strlen(text), err, sizeof(err));
	CHECK(j != NULL);
	json_decref(j);
	free(text);

	text = nested(33, "[", "]", "");
	j = sg_json_parse_strict(text, strlen(text), err, sizeof(err));
	CHECK(j == NULL);
	CHECK(strstr(err, "deeper than 32") != NULL);
	free(text);

	text = nested(33, "{\"a\":", "}", "1");
	CHECK(sg_json_parse_strict(text, strlen(text), err, sizeof(err)) == NULL);
	free(text);

	/* 100,000 levels fail fast, without a deep stack. */
	text = nested(100000, "[", "]", "");
	CHECK(parse_text(text, SG_FORMAT_JSON, &b, &rep) == -1);
	CHECK(rep.problems[0].index == SG_BATCH_WHOLE_BODY);
	CHECK(parse_text(text, SG_FORMAT_NDJSON, &b, &rep) == -1);
	text[50000] = '\0';  /* unbalanced: 50,000 opens and no close */
	CHECK(parse_text(text, SG_FORMAT_JSON, &b, &rep) == -1);
	free(text);

	/* A deep unknown member inside an item is rejected too. */
	char *inner = nested(40, "[", "]", "");
	char *body = malloc(strlen(base_json) + strlen(inner) + 16);

	sprintf(body, "%.*s,\"x\":%s}", (int)strlen(base_json) - 1, base_json, inner);
	CHECK(parse_text(body, SG_FORMAT_JSON, &b, &rep) == -1);
	free(inner);
	free(body);
}

static void test_batch_msgpack(void)
{
	struct sg_batch b;
	struct sg_batch_report rep;
	struct sg_signal s;
	msgpack_sbuffer sbuf;
	msgpack_sbuffer one;
	msgpack_packer pk;

	make_full_signal(&s);
	pack_signal(&s, true, &one);

	/* One map: seq and received_us are not taken from ingest input. */
	CHECK(parse_body(one.data, one.size, SG_FORMAT_MSGPACK, 10, &b, &rep) == 0);
	CHECK(b.count == 1);
	CHECK(b.items[0].seq == 0);
	CHECK(b.items[0].received_us == 0);
	CHECK_STR(b.items[0].domain, "xn--bcher-kva.example");
	sg_batch_free(&b);

	/* An array of three maps and one integer. */
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	for (int i = 0; i < 3; i++)
		msgpack_sbuffer_write(&sbuf, one.data, one.size);
	CHECK(parse_body(sbuf.data, sbuf.size, SG_FORMAT_MSGPACK, 10, &b, &rep) == 0);
	CHECK(b.count == 3);
	sg_batch_free(&b);
	CHECK(parse_body(sbuf.data, sbuf.size, SG_FORMAT_MSGPACK, 2, &b, &rep) == -1);
	CHECK(rep.problems[0].index == SG_BATCH_WHOLE_BODY);
	sbuf.data[0] = (char)0x94;
	msgpack_pack_int(&pk, 7);
	CHECK(parse_body(sbuf.data, sbuf.size, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
	CHECK(rep.total == 1);
	CHECK(rep.problems[0].index == 3);
	CHECK_STR(rep.problems[0].error.reason, "the item is an integer; send a map");

	/* Truncated at every length, and with trailing bytes. */
	for (size_t cut = 0; cut < sbuf.size; cut++) {
		CHECK(parse_body(sbuf.data, cut, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
		CHECK(rep.problems[0].index == SG_BATCH_WHOLE_BODY);
	}
	msgpack_sbuffer_write(&sbuf, "\xc0", 1);
	CHECK(parse_body(sbuf.data, sbuf.size, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
	CHECK(strstr(rep.problems[0].error.reason, "after its first object") != NULL);
	msgpack_sbuffer_destroy(&sbuf);
	msgpack_sbuffer_destroy(&one);

	CHECK(parse_body("", 0, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
	CHECK(parse_body("\x90", 1, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
	CHECK(parse_body("\xc1", 1, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
}

static void test_batch_msgpack_hostile(void)
{
	struct sg_batch b;
	struct sg_batch_report rep;
	char *deep = malloc(100001);

	/* Headers that declare billions of elements must not allocate. */
	CHECK(parse_body("\xdd\xff\xff\xff\xff", 5, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
	CHECK(parse_body("\xdf\xff\xff\xff\xff\xc0\xc0", 7, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
	CHECK(parse_body("\x91\xdd\x7f\xff\xff\xff", 6, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
	CHECK(parse_body("\xdb\xff\xff\xff\xff" "abc", 8, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
	CHECK(parse_body("\xc9\x00\x00\x00\x05\x01" "ab", 8, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);

	/* 100,000 nested arrays, and exactly 33. */
	memset(deep, 0x91, 100000);
	deep[100000] = (char)0xc0;
	CHECK(parse_body(deep, 100001, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
	CHECK(strstr(rep.problems[0].error.reason, "deeper than 32") != NULL);
	CHECK(parse_body(deep + 100000 - 33, 34, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
	CHECK(strstr(rep.problems[0].error.reason, "deeper than 32") != NULL);
	/* 32 levels pass the depth check and fail only as non-map items. */
	CHECK(parse_body(deep + 100000 - 32, 33, SG_FORMAT_MSGPACK, 10, &b, &rep) == -1);
	CHECK(rep.problems[0].index == 0);
	free(deep);
}

int main(void)
{
	test_enum_lookup();
	test_base_decodes();
	test_valid_enum_values();
	test_invalid_enum_values();
	test_stage_case();
	test_region();
	test_required_fields();
	test_older_names();
	test_older_name_conflicts();
	test_identifiers();
	test_identifier_addresses();
	test_credential_leaked();
	test_unknown_fields_dropped();
	test_domains();
	test_domain_wildcard();
	test_domain_in_signal();
	test_time_parse();
	test_time_reasons();
	test_time_format();
	test_json_text();
	test_json_text_escapes();
	test_json_tree_matches_text();
	test_json_round_trip();
	test_msgpack_round_trip();
	test_msgpack_ingest_rules();
	test_batch_json();
	test_batch_every_problem_of_item();
	test_batch_msgpack_every_problem();
	test_batch_many_problems();
	test_batch_max_items();
	test_batch_ndjson();
	test_batch_hostile_json();
	test_json_depth();
	test_batch_msgpack();
	test_batch_msgpack_hostile();
	return check_summary();
}
