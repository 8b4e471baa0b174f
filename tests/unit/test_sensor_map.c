/*
 * canary-sensor's mapping rules and address lists, checked against the
 * bundled Cowrie capture, the OpenCanary sample, the Tor exit and AWS
 * lists, and the installed libloc database. Expected counts are derived
 * here from the raw lines, not taken from the mapper.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "check.h"
#include "mapping.h"
#include "netlists.h"
#include "signal/signal.h"

#define COWRIE_FILE CANARY_DATA_DIR "/tpot-cowrie-gcp-2025-10/cowrie.json"
#define OPENCANARY_FILE CANARY_DATA_DIR "/opencanary-sample/opencanary.json"
#define TOR_FILE CANARY_DATA_DIR "/" NL_TOR_EXITS_FILE
#define AWS_FILE CANARY_DATA_DIR "/" NL_AWS_RANGES_FILE
#define WINDOW_S 3600

static const uint8_t test_key[32] = "0123456789abcdef0123456789abcde";
static const uint8_t other_key[32] = "fedcba9876543210fedcba987654321";

static struct nl_set *tor_exits;
static struct nl_set *cloud;
static struct nl_geo *geo;

/* A list of strings that grows as needed. */
struct strings {
	char **items;
	size_t n, cap;
};

/* Adds text unless the list already has it. */
static void strings_add(struct strings *s, const char *text)
{
	for (size_t i = 0; i < s->n; i++) {
		if (!strcmp(s->items[i], text))
			return;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->items = realloc(s->items, s->cap * sizeof(*s->items));
	}
	s->items[s->n++] = strdup(text);
}

static void strings_free(struct strings *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->items[i]);
	free(s->items);
	memset(s, 0, sizeof(*s));
}

static struct sm_mapper *new_mapper(enum sm_format format, const char *domain,
				    const struct sm_domain_map *map,
				    const uint8_t *key)
{
	struct sm_config cfg = {
		.format = format, .domain = domain, .domain_map = map,
		.hmac_key = key, .hmac_key_len = 32,
		.tor_exits = tor_exits, .cloud = cloud, .geo = geo,
	};
	char err[256] = "";

	return sm_mapper_new(&cfg, err, sizeof(err));
}

/* Maps one line; returns the result and keeps the signal in *sig. */
static enum sm_result map_text(struct sm_mapper *m, const char *line,
			       json_t **sig)
{
	struct sm_output out;
	enum sm_result rc = sm_map_line(m, line, strlen(line), &out);

	if (sig)
		*sig = out.signal;
	else
		json_decref(out.signal);
	return rc;
}

static const char *member(json_t *sig, const char *name)
{
	return json_string_value(json_object_get(sig, name));
}

static void cowrie_login_line(char *buf, size_t cap, const char *src,
			      const char *user, const char *pass,
			      const char *time)
{
	snprintf(buf, cap, "{\"eventid\":\"cowrie.login.failed\",\"src_ip\":\"%s\","
		 "\"username\":\"%s\",\"password\":\"%s\",\"session\":\"s1\","
		 "\"sensor\":\"hp-1\",\"timestamp\":\"%s\"}", src, user, pass, time);
}

/* Maps one failed login and returns its confidence ("" when none). */
static const char *login_confidence(struct sm_mapper *m, const char *src,
				    const char *user, const char *pass,
				    const char *time)
{
	static char conf[16];
	char line[512];
	json_t *sig = NULL;

	cowrie_login_line(line, sizeof(line), src, user, pass, time);
	conf[0] = '\0';
	if (map_text(m, line, &sig) == SM_SIGNAL)
		snprintf(conf, sizeof(conf), "%s", member(sig, "confidence"));
	json_decref(sig);
	return conf;
}

static void test_prefix_table(void)
{
	struct nl_set *s = nl_set_new();
	struct nl_addr a;
	static const char *inside[] = {
		"10.0.0.0", "10.255.255.255", "192.168.1.0", "192.168.1.255",
		"172.16.5.5", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
		"::ffff:10.1.2.3", "fe80::1"
	};
	static const char *outside[] = {
		"9.255.255.255", "11.0.0.0", "192.168.0.255", "192.168.2.0",
		"172.16.5.4", "172.16.5.6", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
		"2001:db9::", "::1", "0.0.0.0", "255.255.255.255"
	};

	CHECK(nl_set_add_prefix(s, "10.0.0.0/8") == NL_OK);
	CHECK(nl_set_add_prefix(s, "10.1.0.0/16") == NL_OK);      /* inside the /8 */
	CHECK(nl_set_add_prefix(s, "192.168.1.77/24") == NL_OK);  /* host bits set */
	CHECK(nl_set_add_prefix(s, "172.16.5.5") == NL_OK);
	CHECK(nl_set_add_prefix(s, "2001:db8::/32") == NL_OK);
	CHECK(nl_set_add_prefix(s, "fe80::/10") == NL_OK);
	CHECK(nl_set_add_prefix(s, "10.0.0.0/33") == NL_ERR_FORMAT);
	CHECK(nl_set_add_prefix(s, "2001:db8::/129") == NL_ERR_FORMAT);
	CHECK(nl_set_add_prefix(s, "10.0.0.0/") == NL_ERR_FORMAT);
	CHECK(nl_set_add_prefix(s, "example.com/8") == NL_ERR_FORMAT);
	CHECK(nl_set_add_prefix(s, "") == NL_ERR_FORMAT);
	nl_set_finish(s);
	CHECK(nl_set_count(s) == 5);

	for (size_t i = 0; i < sizeof(inside) / sizeof(inside[0]); i++) {
		CHECK(nl_addr_parse(inside[i], &a) == 0);
		if (!nl_set_contains(s, &a))
			fprintf(stderr, "expected %s in the table\n", inside[i]);
		CHECK(nl_set_contains(s, &a));
	}
	for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
		CHECK(nl_addr_parse(outside[i], &a) == 0);
		if (nl_set_contains(s, &a))
			fprintf(stderr, "expected %s outside the table\n", outside[i]);
		CHECK(!nl_set_contains(s, &a));
	}
	CHECK(nl_addr_parse("::ffff:10.1.2.3", &a) == 0);
	CHECK(a.family == AF_INET);
	CHECK(nl_addr_parse("10.1.2", &a) != 0);
	CHECK(nl_addr_parse("", &a) != 0);
	nl_set_free(s);

	/* /0 covers everything without an overflow. */
	s = nl_set_new();
	CHECK(nl_set_add_prefix(s, "0.0.0.0/0") == NL_OK);
	CHECK(nl_set_add_prefix(s, "::/0") == NL_OK);
	nl_set_finish(s);
	CHECK(nl_addr_parse("255.255.255.255", &a) == 0);
	CHECK(nl_set_contains(s, &a));
	CHECK(nl_addr_parse("ffff::1", &a) == 0);
	CHECK(nl_set_contains(s, &a));
	nl_set_free(s);
}

static const char *tmp_dir(void)
{
	const char *dir = getenv("CANARY_TEST_TMP");

	if (!dir)
		dir = P_tmpdir;
	mkdir(dir, 0700);
	return dir;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

static void test_list_loaders_reject_bad_files(void)
{
	char path[512], err[512];
	struct nl_set *s = nl_set_new();

	snprintf(path, sizeof(path), "%s/sensor-bad-tor.csv", tmp_dir());
	write_file(path, "fingerprint, ipaddr, port\nABC, 192.0.2.1, 443\nABC, not-an-ip, 443\n");
	CHECK(nl_load_tor_csv(s, path, err, sizeof(err)) == NL_ERR_FORMAT);
	CHECK(strstr(err, "line 3") != NULL);

	snprintf(path, sizeof(path), "%s/sensor-bad-aws.json", tmp_dir());
	write_file(path, "{\"prefixes\":[{\"ip_prefix\":\"192.0.2.0/24\"}]}");
	CHECK(nl_load_aws_json(s, path, err, sizeof(err)) == NL_ERR_FORMAT);
	CHECK(strstr(err, "ipv6_prefixes") != NULL);

	write_file(path, "{\"prefixes\":[{\"ip_prefix\":\"192.0.2.0/24\"}],"
		   "\"prefixes\":[]}");
	CHECK(nl_load_aws_json(s, path, err, sizeof(err)) == NL_ERR_FORMAT);

	CHECK(nl_load_tor_csv(s, "/nonexistent/tor.csv", err, sizeof(err)) == NL_ERR_OPEN);
	nl_set_free(s);
}

/* Returns the first address of the given family in the Tor CSV. */
static int first_tor_address(int family, char *out, size_t cap)
{
	FILE *f = fopen(TOR_FILE, "r");
	char line[512];
	int rc = -1;

	while (f && fgets(line, sizeof(line), f)) {
		char *addr = strchr(line, ',');
		struct in6_addr tmp;

		if (!addr)
			continue;
		addr += 2;
		addr[strcspn(addr, ",")] = '\0';
		if (inet_pton(family, addr, &tmp) == 1) {
			snprintf(out, cap, "%s", addr);
			rc = 0;
			break;
		}
	}
	if (f)
		fclose(f);
	return rc;
}

/* Returns the address one above the network of the first AWS prefix. */
static int first_aws_address(const char *list, const char *member_name,
			     char *out, size_t cap)
{
	json_t *doc = json_load_file(AWS_FILE, 0, NULL);
	const char *prefix = json_string_value(json_object_get(
		json_array_get(json_object_get(doc, list), 0), member_name));
	char base[64];
	uint8_t bytes[16];
	int family = strcmp(list, "prefixes") ? AF_INET6 : AF_INET;
	int rc = -1;

	if (prefix && strlen(prefix) < sizeof(base)) {
		snprintf(base, sizeof(base), "%s", prefix);
		base[strcspn(base, "/")] = '\0';
		if (inet_pton(family, base, bytes) == 1) {
			bytes[family == AF_INET ? 3 : 15] |= 1;
			inet_ntop(family, bytes, out, (socklen_t)cap);
			rc = 0;
		}
	}
	json_decref(doc);
	return rc;
}

static const char *proxy_of(struct sm_mapper *m, const char *src)
{
	static char proxy[32];
	char line[512];
	json_t *sig = NULL;

	proxy[0] = '\0';
	cowrie_login_line(line, sizeof(line), src, "u", "p", "2025-10-24T00:00:00Z");
	if (map_text(m, line, &sig) == SM_SIGNAL)
		snprintf(proxy, sizeof(proxy), "%s", member(sig, "proxy_type"));
	json_decref(sig);
	return proxy;
}

static void test_proxy_type(void)
{
	struct sm_mapper *m = new_mapper(SM_FORMAT_COWRIE, "bank.example.com", NULL,
					 test_key);
	char tor4[64], tor6[64], aws4[64], aws6[64];
	struct nl_addr a;

	CHECK(first_tor_address(AF_INET, tor4, sizeof(tor4)) == 0);
	CHECK(first_tor_address(AF_INET6, tor6, sizeof(tor6)) == 0);
	CHECK(first_aws_address("prefixes", "ip_prefix", aws4, sizeof(aws4)) == 0);
	CHECK(first_aws_address("ipv6_prefixes", "ipv6_prefix", aws6, sizeof(aws6)) == 0);

	CHECK(nl_addr_parse(tor4, &a) == 0);
	CHECK(nl_set_contains(tor_exits, &a));
	CHECK(nl_addr_parse(tor6, &a) == 0);
	CHECK(nl_set_contains(tor_exits, &a));
	CHECK(nl_addr_parse(aws4, &a) == 0);
	CHECK(nl_set_contains(cloud, &a));
	CHECK(nl_addr_parse(aws6, &a) == 0);
	CHECK(nl_set_contains(cloud, &a));
	CHECK(nl_addr_parse("192.0.2.1", &a) == 0);
	CHECK(!nl_set_contains(tor_exits, &a));
	CHECK(!nl_set_contains(cloud, &a));

	CHECK_STR(proxy_of(m, tor4), "tor");
	CHECK_STR(proxy_of(m, tor6), "tor");
	CHECK_STR(proxy_of(m, aws4), "datacenter");
	CHECK_STR(proxy_of(m, aws6), "datacenter");
	CHECK_STR(proxy_of(m, "192.0.2.1"), "residential");
	CHECK_STR(proxy_of(m, "2001:db8::1"), "residential");
	sm_mapper_free(m);
}

static void test_region_from_libloc(void)
{
	struct nl_addr a;
	char region[3];
	char line[512];
	json_t *sig = NULL;
	struct sm_mapper *m = new_mapper(SM_FORMAT_COWRIE, "bank.example.com", NULL,
					 test_key);

	CHECK(geo != NULL);
	CHECK(nl_addr_parse("8.8.8.8", &a) == 0);
	nl_geo_region(geo, &a, region);
	CHECK_STR(region, "US");
	CHECK(nl_addr_parse("2001:4860:4860::8888", &a) == 0);
	nl_geo_region(geo, &a, region);
	CHECK_STR(region, "US");

	/* Documentation and private ranges are in no country. */
	CHECK(nl_addr_parse("192.0.2.1", &a) == 0);
	nl_geo_region(geo, &a, region);
	CHECK_STR(region, "ZZ");
	CHECK(nl_addr_parse("10.1.2.3", &a) == 0);
	nl_geo_region(geo, &a, region);
	CHECK_STR(region, "ZZ");
	nl_geo_region(NULL, &a, region);
	CHECK_STR(region, "ZZ");

	cowrie_login_line(line, sizeof(line), "8.8.8.8", "u", "p", "2025-10-24T00:00:00Z");
	CHECK(map_text(m, line, &sig) == SM_SIGNAL);
	CHECK_STR(member(sig, "source_region"), "US");
	json_decref(sig);
	sm_mapper_free(m);
}

static void test_infra_id(void)
{
	struct nl_addr a, b;
	char ia[21], ib[21];

	CHECK(nl_addr_parse("203.0.113.5", &a) == 0);
	CHECK(nl_addr_parse("203.0.113.77", &b) == 0);
	sm_infra_id(test_key, 32, &a, ia);
	sm_infra_id(test_key, 32, &b, ib);
	CHECK_STR(ia, ib);
	CHECK(strlen(ia) == 20);
	CHECK(!strncmp(ia, "inf_", 4));
	CHECK(strspn(ia + 4, "0123456789abcdef") == 16);

	CHECK(nl_addr_parse("203.0.114.5", &b) == 0);
	sm_infra_id(test_key, 32, &b, ib);
	CHECK(strcmp(ia, ib) != 0);

	sm_infra_id(other_key, 32, &a, ib);
	CHECK(strcmp(ia, ib) != 0);

	CHECK(nl_addr_parse("2001:db8:1:aaaa::1", &a) == 0);
	CHECK(nl_addr_parse("2001:db8:1:bbbb::2", &b) == 0);
	sm_infra_id(test_key, 32, &a, ia);
	sm_infra_id(test_key, 32, &b, ib);
	CHECK_STR(ia, ib);
	CHECK(nl_addr_parse("2001:db8:2::1", &b) == 0);
	sm_infra_id(test_key, 32, &b, ib);
	CHECK(strcmp(ia, ib) != 0);

	/* An IPv4-mapped address is the IPv4 address. */
	CHECK(nl_addr_parse("203.0.113.5", &a) == 0);
	CHECK(nl_addr_parse("::ffff:203.0.113.9", &b) == 0);
	sm_infra_id(test_key, 32, &a, ia);
	sm_infra_id(test_key, 32, &b, ib);
	CHECK_STR(ia, ib);
}

static void test_confidence_progression(void)
{
	struct sm_mapper *m = new_mapper(SM_FORMAT_COWRIE, "bank.example.com", NULL,
					 test_key);
	static const char *expected[12] = {
		"low", "low", "medium", "medium", "medium", "medium", "medium",
		"medium", "medium", "high", "high", "high"
	};
	char user[16], time[32];

	/* A repeated pair does not count twice. */
	CHECK_STR(login_confidence(m, "203.0.113.10", "root", "pw0", "2025-10-24T01:00:00Z"), "low");
	CHECK_STR(login_confidence(m, "203.0.113.10", "root", "pw0", "2025-10-24T01:00:01Z"), "low");
	CHECK_STR(login_confidence(m, "203.0.113.10", "root", "pw0", "2025-10-24T01:00:02Z"), "low");

	/* Hosts of one /24 within a minute: the first pair again, then
	 * eleven new ones. */
	for (int i = 0; i < 12; i++) {
		snprintf(user, sizeof(user), i ? "user%d" : "root", i);
		snprintf(time, sizeof(time), "2025-10-24T01:00:%02dZ", 10 + i);
		CHECK_STR(login_confidence(m, i % 2 ? "203.0.113.10" : "203.0.113.200",
					   user, i ? "pw" : "pw0", time),
			  expected[i]);
	}

	/* Another /24 starts low; the first /24 is still high. */
	CHECK_STR(login_confidence(m, "203.0.114.10", "user0", "pw0", "2025-10-24T01:01:00Z"), "low");
	CHECK_STR(login_confidence(m, "203.0.113.99", "user99", "pw", "2025-10-24T01:01:00Z"), "high");

	/* More than an hour later, the window is empty again. */
	CHECK_STR(login_confidence(m, "203.0.113.10", "user100", "pw", "2025-10-24T02:02:00Z"), "low");

	/* IPv6 sources are grouped by /48. */
	for (int i = 0; i < 10; i++) {
		char src[64];

		snprintf(src, sizeof(src), "2001:db8:7:%x::1", i);
		snprintf(user, sizeof(user), "v6user%d", i);
		snprintf(time, sizeof(time), "2025-10-24T03:00:%02dZ", i);
		CHECK_STR(login_confidence(m, src, user, "pw", time), expected[i]);
	}
	CHECK_STR(login_confidence(m, "2001:db8:8::1", "v6user0", "pw", "2025-10-24T03:00:30Z"), "low");
	sm_mapper_free(m);
}

/* What the test reads from one raw Cowrie line, without the mapper. */
struct raw_event {
	char network[32];       /* hex of the /24 or /48 */
	char pair[1024];        /* username and password as JSON */
	int64_t time_us;
};

static void network_of(const char *src, char *out, size_t cap)
{
	uint8_t b[16];
	int n = 0;

	out[0] = '\0';
	if (inet_pton(AF_INET, src, b) == 1)
		n = 3;
	else if (inet_pton(AF_INET6, src, b) == 1)
		n = 6;
	for (int i = 0; i < n && (size_t)(2 * i + 3) < cap; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	if (n == 3)
		strncat(out, "/24", cap - strlen(out) - 1);
	else if (n == 6)
		strncat(out, "/48", cap - strlen(out) - 1);
}

static void add_json_strings(json_t *value, struct strings *out)
{
	const char *key = NULL;
	json_t *child = NULL;
	size_t i;

	if (json_is_string(value) && json_string_length(value) > 0)
		strings_add(out, json_string_value(value));
	json_object_foreach(value, key, child)
		add_json_strings(child, out);
	json_array_foreach(value, i, child)
		add_json_strings(child, out);
}

/* Returns true when some string value of sig equals a secret. */
static bool has_equal_value(json_t *sig, const struct strings *secrets)
{
	const char *key = NULL;
	json_t *value = NULL;

	json_object_foreach(sig, key, value) {
		const char *text = json_string_value(value);

		for (size_t i = 0; text && i < secrets->n; i++) {
			if (!strcmp(text, secrets->items[i]))
				return true;
		}
	}
	return false;
}

/*
 * Returns the first secret of at least min_len bytes inside text, or NULL.
 * Short credentials such as "1" or "test" occur by chance inside
 * timestamps and field names, so those are only compared as whole values
 * (has_equal_value).
 */
static const char *find_leak(const char *text, const struct strings *secrets,
			     size_t min_len)
{
	for (size_t i = 0; i < secrets->n; i++) {
		if (strlen(secrets->items[i]) >= min_len &&
		    strstr(text, secrets->items[i]))
			return secrets->items[i];
	}
	return NULL;
}

static void test_cowrie_capture(void)
{
	struct sm_mapper *m = NULL;
	FILE *f = fopen(COWRIE_FILE, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	struct raw_event *attempts = calloc(4096, sizeof(*attempts));
	size_t n_attempts = 0;
	struct strings activity_sessions = { 0 };
	struct strings addresses = { 0 }, credentials = { 0 }, texts = { 0 };
	size_t lines = 0, failed = 0, success = 0, activity = 0;
	size_t max_attempts = 4096;
	size_t sig_failed = 0, sig_success = 0, sig_probe = 0, sig_total = 0;
	size_t conf_mismatch = 0, leaked = 0, wrong_domain = 0;

	CHECK(f != NULL);
	while (f && (len = getline(&line, &cap, f)) > 0) {
		json_t *ev = json_loadb(line, (size_t)len, JSON_ALLOW_NUL, NULL);
		const char *eventid = json_string_value(json_object_get(ev, "eventid"));
		const char *src = json_string_value(json_object_get(ev, "src_ip"));
		const char *session = json_string_value(json_object_get(ev, "session"));

		lines++;
		CHECK(ev != NULL);
		if (!ev)
			continue;

		/* Everything personal in the line: addresses, names, passwords,
		 * commands, and the free-text message that repeats them. */
		if (src)
			strings_add(&addresses, src);
		if (json_string_value(json_object_get(ev, "dst_ip")))
			strings_add(&addresses, json_string_value(json_object_get(ev, "dst_ip")));
		add_json_strings(json_object_get(ev, "username"), &credentials);
		add_json_strings(json_object_get(ev, "password"), &credentials);
		add_json_strings(json_object_get(ev, "input"), &texts);
		add_json_strings(json_object_get(ev, "message"), &texts);

		if (eventid && !strcmp(eventid, "cowrie.login.failed"))
			failed++;
		if (eventid && !strcmp(eventid, "cowrie.login.success"))
			success++;
		if (eventid && (!strcmp(eventid, "cowrie.command.input") ||
				!strcmp(eventid, "cowrie.session.file_download") ||
				!strcmp(eventid, "cowrie.session.file_upload") ||
				!strcmp(eventid, "cowrie.direct-tcpip.request"))) {
			bool seen = false;

			for (size_t i = 0; i < activity_sessions.n; i++)
				seen = seen || !strcmp(activity_sessions.items[i], session);
			if (!seen) {
				strings_add(&activity_sessions, session);
				activity++;
			}
		}

		json_decref(ev);
	}
	free(line);
	if (f)
		fclose(f);

	/* The raw counts published with the capture. */
	CHECK(lines == 2057);
	CHECK(failed == 339);
	CHECK(success == 9);

	/* Second pass: map every line and compare with the raw counts. */
	m = new_mapper(SM_FORMAT_COWRIE, "bank.example.com", NULL, test_key);
	f = fopen(COWRIE_FILE, "r");
	line = NULL;
	cap = 0;
	while (f && (len = getline(&line, &cap, f)) > 0) {
		json_t *ev = json_loadb(line, (size_t)len, JSON_ALLOW_NUL, NULL);
		const char *eventid = json_string_value(json_object_get(ev, "eventid"));
		struct sm_output out;
		enum sm_result rc = sm_map_line(m, line, (size_t)len, &out);
		char *text = NULL;

		if (rc == SM_SIGNAL) {
			const char *type = member(out.signal, "event_type");
			const char *stage = member(out.signal, "threat_stage");

			sig_total++;
			if (!strcmp(type, "credential_testing") && !strcmp(stage, "TESTING"))
				sig_failed++;
			if (!strcmp(type, "credential_testing") && !strcmp(stage, "ATTACK"))
				sig_success++;
			if (!strcmp(type, "account_probe") && !strcmp(stage, "ATTACK"))
				sig_probe++;
			if (json_is_true(json_object_get(out.signal, "credential_leaked")))
				leaked++;
			if (strcmp(member(out.signal, "related_domain"), "bank.example.com"))
				wrong_domain++;

			/* Privacy: no address, credential, command or message, as a
			 * whole value or inside one. */
			text = json_dumps(out.signal, JSON_COMPACT);
			CHECK(find_leak(text, &addresses, 1) == NULL);
			CHECK(find_leak(text, &credentials, 6) == NULL);
			CHECK(find_leak(text, &texts, 6) == NULL);
			CHECK(!has_equal_value(out.signal, &addresses));
			CHECK(!has_equal_value(out.signal, &credentials));
			CHECK(!has_equal_value(out.signal, &texts));
			CHECK(json_object_get(out.signal, "src_ip") == NULL);
			CHECK(json_object_get(out.signal, "id") == NULL);
			free(text);
		}

		/* The expected confidence of a login, from the raw attempts. */
		if (eventid && strstr(eventid, "cowrie.login.") == eventid &&
		    (!strcmp(eventid + 13, "failed") || !strcmp(eventid + 13, "success"))) {
			struct raw_event *e = &attempts[n_attempts < max_attempts - 1 ?
							  n_attempts : max_attempts - 1];
			char *u = json_dumps(json_object_get(ev, "username"), JSON_ENCODE_ANY);
			char *p = json_dumps(json_object_get(ev, "password"), JSON_ENCODE_ANY);
			size_t distinct = 0;
			const char *want;

			network_of(json_string_value(json_object_get(ev, "src_ip")),
				   e->network, sizeof(e->network));
			snprintf(e->pair, sizeof(e->pair), "%s\x1f%s", u ? u : "", p ? p : "");
			sg_time_parse(json_string_value(json_object_get(ev, "timestamp")),
				      &e->time_us);
			free(u);
			free(p);
			n_attempts++;

			for (size_t i = 0; i < n_attempts; i++) {
				bool earlier_copy = false;

				if (strcmp(attempts[i].network, e->network) ||
				    attempts[i].time_us < e->time_us - WINDOW_S * 1000000LL)
					continue;
				for (size_t j = i + 1; j < n_attempts; j++) {
					if (!strcmp(attempts[j].network, e->network) &&
					    !strcmp(attempts[j].pair, attempts[i].pair))
						earlier_copy = true;
				}
				if (!earlier_copy)
					distinct++;
			}
			if (!strcmp(eventid + 13, "success") || distinct >= 10)
				want = "high";
			else if (distinct >= 3)
				want = "medium";
			else
				want = "low";
			if (rc != SM_SIGNAL || strcmp(member(out.signal, "confidence"), want)) {
				conf_mismatch++;
				fprintf(stderr, "login %zu: confidence %s, expected %s\n",
					n_attempts, rc == SM_SIGNAL ?
					member(out.signal, "confidence") : "(none)", want);
			}
		}
		json_decref(out.signal);
		json_decref(ev);
	}
	free(line);
	if (f)
		fclose(f);

	CHECK(sig_failed == failed);
	CHECK(sig_success == success);
	CHECK(sig_probe == activity);
	CHECK(activity > 0);
	CHECK(sig_total == failed + success + activity);
	CHECK(leaked == success);
	CHECK(wrong_domain == 0);
	CHECK(conf_mismatch == 0);
	CHECK(addresses.n > 0);
	CHECK(credentials.n > 0);

	sm_mapper_free(m);
	free(attempts);
	strings_free(&activity_sessions);
	strings_free(&addresses);
	strings_free(&credentials);
	strings_free(&texts);
}

static void test_opencanary_sample(void)
{
	struct sm_mapper *m = new_mapper(SM_FORMAT_OPENCANARY, "bank.example.com",
					 NULL, test_key);
	FILE *f = fopen(OPENCANARY_FILE, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	size_t logins = 0, smb = 0, ignored = 0, invalid = 0;
	size_t sig_cred = 0, sig_probe = 0, got_invalid = 0, got_none = 0;
	char confidences[32][8];
	size_t n_conf = 0;

	CHECK(f != NULL);
	while (f && (len = getline(&line, &cap, f)) > 0) {
		json_t *ev = json_loadb(line, (size_t)len, 0, NULL);
		json_int_t type = json_integer_value(json_object_get(ev, "logtype"));
		const char *src = json_string_value(json_object_get(ev, "src_host"));
		struct nl_addr a;
		struct sm_output out;
		enum sm_result rc = sm_map_line(m, line, (size_t)len, &out);
		bool login = type == 2000 || type == 3001 || type == 4002 ||
			     type == 6001 || type == 7001 || type == 8001 ||
			     type == 9001 || type == 9002 || type == 12001 ||
			     type == 14001;

		if ((login || type == 5000) && (!src || nl_addr_parse(src, &a) != 0))
			invalid++;
		else if (login)
			logins++;
		else if (type == 5000)
			smb++;
		else
			ignored++;

		if (rc == SM_SIGNAL) {
			if (!strcmp(member(out.signal, "event_type"), "credential_testing")) {
				sig_cred++;
				if (n_conf < 32)
					snprintf(confidences[n_conf++], sizeof(confidences[0]),
						 "%s", member(out.signal, "confidence"));
				CHECK_STR(member(out.signal, "threat_stage"), "TESTING");
			} else {
				sig_probe++;
				CHECK_STR(member(out.signal, "event_type"), "account_probe");
				CHECK_STR(member(out.signal, "threat_stage"), "ATTACK");
				CHECK_STR(member(out.signal, "recommended_action"), "alert_soc");
				CHECK_STR(member(out.signal, "sensor"), "opencanary-2");
			}
			CHECK(strncmp(member(out.signal, "timestamp"), "2025-11-02T10:", 14) == 0);
		} else if (rc == SM_INVALID) {
			got_invalid++;
		} else {
			got_none++;
		}
		json_decref(out.signal);
		json_decref(ev);
	}
	free(line);
	if (f)
		fclose(f);

	CHECK(sig_cred == logins);
	CHECK(sig_probe == smb);
	CHECK(got_invalid == invalid);
	CHECK(got_none == ignored);
	CHECK(logins == 16);
	CHECK(smb == 1);
	CHECK(invalid == 1);

	/* SSH: ten distinct pairs from one /24, then a repeat; then FTP and
	 * HTTP from other networks; Telnet, MySQL and MSSQL from one /48. */
	static const char *want[] = {
		"low", "low", "medium", "medium", "medium", "medium", "medium",
		"medium", "medium", "high", "high", "low", "low", "low", "low",
		"medium"
	};
	CHECK(n_conf == sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n_conf && i < sizeof(want) / sizeof(want[0]); i++)
		CHECK_STR(confidences[i], want[i]);
	sm_mapper_free(m);
}

static void test_domain_map(void)
{
	char path[512], err[512];
	struct sm_domain_map *map = NULL;
	struct sm_mapper *m = NULL;
	json_t *sig = NULL;

	snprintf(path, sizeof(path), "%s/sensor-domains.json", tmp_dir());
	write_file(path, "{\"sensors\":{\"hp-1\":\"Bank.Example.COM.\"},"
		   "\"ports\":{\"22\":\"ssh.example.org\",\"23\":\"b\\u00fccher.example\"}}");
	map = sm_domain_map_load(path, err, sizeof(err));
	CHECK(map != NULL);
	m = new_mapper(SM_FORMAT_COWRIE, NULL, map, test_key);
	CHECK(m != NULL);

	/* A sensor match wins; its domain is normalised. */
	CHECK(map_text(m, "{\"eventid\":\"cowrie.session.connect\",\"src_ip\":\"192.0.2.1\","
		       "\"dst_port\":23,\"session\":\"aa\",\"timestamp\":\"2025-10-24T00:00:00Z\"}",
		       NULL) == SM_NO_SIGNAL);
	CHECK(map_text(m, "{\"eventid\":\"cowrie.login.failed\",\"src_ip\":\"192.0.2.1\","
		       "\"session\":\"aa\",\"sensor\":\"hp-1\",\"username\":\"u\","
		       "\"password\":\"p\",\"timestamp\":\"2025-10-24T00:00:01Z\"}",
		       &sig) == SM_SIGNAL);
	CHECK_STR(member(sig, "related_domain"), "bank.example.com");
	json_decref(sig);

	/* Another sensor: the session's port decides (an A-label). */
	CHECK(map_text(m, "{\"eventid\":\"cowrie.login.failed\",\"src_ip\":\"192.0.2.1\","
		       "\"session\":\"aa\",\"sensor\":\"hp-2\",\"username\":\"u\","
		       "\"password\":\"p\",\"timestamp\":\"2025-10-24T00:00:02Z\"}",
		       &sig) == SM_SIGNAL);
	CHECK_STR(member(sig, "related_domain"), "xn--bcher-kva.example");
	CHECK_STR(member(sig, "sensor"), "hp-2");
	json_decref(sig);

	/* No sensor, port or default match: no signal, but reported. */
	CHECK(map_text(m, "{\"eventid\":\"cowrie.login.failed\",\"src_ip\":\"192.0.2.1\","
		       "\"session\":\"zz\",\"sensor\":\"hp-2\",\"username\":\"u\","
		       "\"password\":\"p\",\"timestamp\":\"2025-10-24T00:00:03Z\"}",
		       NULL) == SM_UNMAPPED);
	sm_mapper_free(m);
	sm_domain_map_free(map);

	write_file(path, "{\"sensor\":{\"hp-1\":\"bank.example.com\"}}");
	CHECK(sm_domain_map_load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "unknown member") != NULL);
	write_file(path, "{\"ports\":{\"99999\":\"bank.example.com\"}}");
	CHECK(sm_domain_map_load(path, err, sizeof(err)) == NULL);
	write_file(path, "{\"default\":\"not a domain\"}");
	CHECK(sm_domain_map_load(path, err, sizeof(err)) == NULL);
	write_file(path, "{}");
	CHECK(sm_domain_map_load(path, err, sizeof(err)) == NULL);
	write_file(path, "{\"default\":\"a.example\",\"default\":\"b.example\"}");
	CHECK(sm_domain_map_load(path, err, sizeof(err)) == NULL);

	/* Without --domain or --domain-map the mapper is not created. */
	CHECK(new_mapper(SM_FORMAT_COWRIE, NULL, NULL, test_key) == NULL);
	CHECK(new_mapper(SM_FORMAT_COWRIE, "bad domain", NULL, test_key) == NULL);
}

static void test_hostile_lines(void)
{
	struct sm_mapper *m = new_mapper(SM_FORMAT_COWRIE, "bank.example.com", NULL,
					 test_key);
	static const char *invalid[] = {
		"{", "null", "[1,2]", "\"text\"", "{\"eventid\":5}",
		"{\"eventid\":\"cowrie.login.failed\",\"src_ip\":\"999.1.1.1\","
		"\"timestamp\":\"2025-10-24T00:00:00Z\"}",
		"{\"eventid\":\"cowrie.login.failed\",\"src_ip\":\"192.0.2.1\","
		"\"timestamp\":\"2025-10-24T00:00:00\"}",
		"{\"eventid\":\"cowrie.login.failed\",\"src_ip\":\"192.0.2.1\","
		"\"timestamp\":\"2025-02-30T00:00:00Z\"}",
		"{\"eventid\":\"cowrie.login.failed\",\"src_ip\":\"192.0.2.1\"}",
		"{\"eventid\":\"cowrie.login.failed\",\"eventid\":\"cowrie.login.failed\","
		"\"src_ip\":\"192.0.2.1\",\"timestamp\":\"2025-10-24T00:00:00Z\"}",
		"{\"eventid\":\"cowrie.login.failed\",\"src_ip\":\"192.0.2.1\","
		"\"timestamp\":\"2025-10-24T00:00:00Z\",\"password\":\"\xff\xfe\"}",
	};
	struct sm_output out;
	char *huge = malloc(SM_MAX_LINE + 2);
	json_t *sig = NULL;

	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		enum sm_result rc = sm_map_line(m, invalid[i], strlen(invalid[i]), &out);

		if (rc != SM_INVALID)
			fprintf(stderr, "hostile line %zu was accepted\n", i);
		CHECK(rc == SM_INVALID);
		CHECK(out.signal == NULL);
		CHECK(out.reason[0] != '\0');
		/* The reason never repeats input. */
		CHECK(strstr(out.reason, "192.0.2.1") == NULL);
	}

	memset(huge, ' ', SM_MAX_LINE + 1);
	huge[SM_MAX_LINE + 1] = '\0';
	CHECK(sm_map_line(m, huge, SM_MAX_LINE + 1, &out) == SM_INVALID);
	free(huge);
	CHECK(sm_map_line(m, "", 0, &out) == SM_NO_SIGNAL);
	CHECK(sm_map_line(m, " \r", 2, &out) == SM_NO_SIGNAL);

	/* A NUL byte inside a string (attacker input) is accepted. */
	CHECK(map_text(m, "{\"eventid\":\"cowrie.login.failed\",\"src_ip\":\"192.0.2.1\","
		       "\"username\":\"a\\u0000b\",\"password\":\"p\",\"sensor\":\"bad sensor!\","
		       "\"timestamp\":\"2025-10-24T02:00:00+02:00\"}", &sig) == SM_SIGNAL);
	/* The offset is honoured; a malformed sensor id is left out. */
	CHECK_STR(member(sig, "timestamp"), "2025-10-24T00:00:00Z");
	CHECK(json_object_get(sig, "sensor") == NULL);
	json_decref(sig);

	/* Unknown and uninteresting events give no signal. */
	CHECK(map_text(m, "{\"eventid\":\"cowrie.client.kex\",\"src_ip\":\"192.0.2.1\"}",
		       NULL) == SM_NO_SIGNAL);
	CHECK(map_text(m, "{\"eventid\":\"cowrie.session.connect\",\"src_ip\":\"192.0.2.1\","
		       "\"session\":\"c1\",\"timestamp\":\"2025-10-24T00:00:00Z\"}",
		       NULL) == SM_NO_SIGNAL);

	/* Post-login activity gives one signal per session. */
	CHECK(map_text(m, "{\"eventid\":\"cowrie.command.input\",\"src_ip\":\"192.0.2.1\","
		       "\"session\":\"c1\",\"input\":\"uname -a\",\"timestamp\":\"2025-10-24T00:00:01Z\"}",
		       NULL) == SM_SIGNAL);
	CHECK(map_text(m, "{\"eventid\":\"cowrie.command.input\",\"src_ip\":\"192.0.2.1\","
		       "\"session\":\"c1\",\"input\":\"id\",\"timestamp\":\"2025-10-24T00:00:02Z\"}",
		       NULL) == SM_NO_SIGNAL);
	sm_mapper_free(m);
}

static void test_signals_pass_through(void)
{
	struct sm_mapper *m = new_mapper(SM_FORMAT_SIGNALS, NULL, NULL, test_key);
	const char *line = "{\"event_type\":\"fraud_test\",\"confidence\":\"high\","
			   "\"source_region\":\"DE\",\"proxy_type\":\"mobile\","
			   "\"threat_stage\":\"ATTACK\",\"related_domain\":\"shop.example\","
			   "\"timestamp\":\"2026-01-03T04:00:00Z\",\"recommended_action\":\"block\","
			   "\"extra\":[1,{\"x\":null}]}";
	json_t *want = json_loads(line, 0, NULL);
	struct sm_output out;

	CHECK(m != NULL);
	CHECK(sm_map_line(m, line, strlen(line), &out) == SM_SIGNAL);
	CHECK(json_equal(out.signal, want));
	CHECK(out.observed_us > 0);
	json_decref(out.signal);
	json_decref(want);

	CHECK(sm_map_line(m, "[{}]", 4, &out) == SM_INVALID);
	CHECK(sm_map_line(m, "{\"a\":1,\"a\":2}", 13, &out) == SM_INVALID);
	sm_mapper_free(m);
}

int main(void)
{
	char err[512];
	time_t started = time(NULL);

	tor_exits = nl_set_new();
	cloud = nl_set_new();
	CHECK(nl_load_tor_csv(tor_exits, TOR_FILE, err, sizeof(err)) == NL_OK);
	CHECK(nl_load_aws_json(cloud, AWS_FILE, err, sizeof(err)) == NL_OK);
	nl_set_finish(tor_exits);
	nl_set_finish(cloud);
	CHECK(nl_set_count(tor_exits) > 1000);
	CHECK(nl_set_count(cloud) > 1000);
	geo = nl_geo_open(NL_GEO_DEFAULT_PATH, err, sizeof(err));
	if (!geo)
		fprintf(stderr, "libloc: %s\n", err);

	test_prefix_table();
	test_list_loaders_reject_bad_files();
	test_proxy_type();
	test_region_from_libloc();
	test_infra_id();
	test_confidence_progression();
	test_cowrie_capture();
	test_opencanary_sample();
	test_domain_map();
	test_hostile_lines();
	test_signals_pass_through();

	nl_set_free(tor_exits);
	nl_set_free(cloud);
	nl_geo_close(geo);
	CHECK(time(NULL) - started < 20);
	return check_summary();
}
