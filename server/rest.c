/*
 * REST reads: the signal list and threat feed, campaigns, stats and
 * /healthz, plus the set-up they share (rest_init).
 *
 * Lists run newest first by observed time (ties by descending seq) and
 * page with an opaque cursor that contains the last position served, so a
 * page never skips or repeats a signal while new ones arrive. A page
 * stops reading at the first match past its limit.
 *
 * total_count counts every match in the time window. It comes from the
 * stats counters: domains (names or wildcards) and any conjunction of
 * event type, confidence (with min_confidence, threat_only and the threat
 * feed), stage, proxy type and region, or action alone. The counters have
 * minute buckets, so the signals between the window start and the nearer
 * minute boundary are read. Action with another field besides domains,
 * and a window that reaches back to signals that retention deleted or
 * that a canaryd without joint counters stored, count by reading every
 * signal in the window.
 *
 * A list whose filter or key names domains reads the per-domain time
 * index (st_scan_domains_desc), so a page reads only those domains'
 * signals. Other lists read the global time index.
 *
 * Campaigns page by id, newest campaign first, because last_seen moves
 * while a campaign grows and would make a cursor skip or repeat.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "stream.h"
#include "log.h"
#include "ratelimit.h"

#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 1000
#define QUERY_ARG_MAX 2048
/* Maximum since_hours of stats and campaigns: 100 years. */
#define SINCE_HOURS_MAX (UINT64_C(24) * 36525)
#define TOP_DOMAINS_DEFAULT 10
#define TOP_DOMAINS_MAX 100
#define SENSOR_ACTIVE_US (INT64_C(5) * 60 * 1000000)
#define HOUR_US (INT64_C(3600) * 1000000)
#define MINUTE_US (INT64_C(60) * 1000000)

/* Most trend points: a day of minutes, or ten years of days. */
#define TREND_MINUTE_MAX 1441
#define TREND_MAX 87661

/* Aggregates are pruned once a minute, in transactions of this many. */
#define ANALYTICS_PRUNE_PERIOD_US (INT64_C(60) * 1000000)
#define ANALYTICS_PRUNE_BATCH 10000

/* A growable text buffer for response bodies. */
struct textbuf {
	char *data;
	size_t len, cap;
	int failed;
};

static void tb_append(struct textbuf *tb, const char *s, size_t n)
{
	if (tb->failed)
		return;
	if (tb->len + n + 1 > tb->cap) {
		size_t cap = tb->cap ? tb->cap : 4096;
		char *p;

		while (tb->len + n + 1 > cap)
			cap *= 2;
		p = realloc(tb->data, cap);
		if (!p) {
			tb->failed = 1;
			return;
		}
		tb->data = p;
		tb->cap = cap;
	}
	memcpy(tb->data + tb->len, s, n);
	tb->len += n;
	tb->data[tb->len] = '\0';
}

static void tb_str(struct textbuf *tb, const char *s)
{
	tb_append(tb, s, strlen(s));
}

/* ---- query parameters ---- */

/* The endpoint of a query, since each takes its own parameters. */
enum query_kind { QUERY_LIST, QUERY_CAMPAIGNS, QUERY_STATS };

enum campaign_status { STATUS_ANY, STATUS_ACTIVE, STATUS_DORMANT };

struct rest_query {
	enum query_kind kind;
	json_t *filter;         /* filter fields, as the stream takes them */
	unsigned limit;
	int64_t since_us;
	char time_range[48];
	int has_cursor;
	struct st_time_pos cursor;      /* signal lists */
	uint64_t campaign_cursor;       /* campaigns: ids below it */
	enum campaign_status status;
	enum st_level bucket;
	unsigned top;
};

static const struct {
	const char *param;
	const char *field;
} list_params[] = {
	{ "domain", "domains" },
	{ "event_type", "event_types" },
	{ "confidence", "confidences" },
	{ "stage", "stages" },
	{ "proxy_type", "proxy_types" },
	{ "region", "regions" },
	{ "action", "actions" },
};

#define LIST_PARAM_COUNT (sizeof(list_params) / sizeof(list_params[0]))

/* Distinct parameter names one query may carry before a repeat goes
 * unnoticed; every query kind accepts fewer. */
#define QUERY_NAMES_MAX 24

static int is_list_param(const char *name)
{
	for (size_t k = 0; k < LIST_PARAM_COUNT; k++)
		if (!strcmp(name, list_params[k].param))
			return 1;
	return 0;
}

static const char *const known_params[] = {
	[QUERY_LIST] = "limit, cursor, since_hours, since_time, domain, event_type, confidence, min_confidence, stage, proxy_type, region, action, threat_only",
	[QUERY_CAMPAIGNS] = "limit, cursor, since_hours, since_time, domain, status",
	[QUERY_STATS] = "since_hours, bucket, top",
};

static int parse_uint(const char *text, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!*text || strlen(text) > 19)
		return -1;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parses 1 to 16 lower-case hex digits ending at end or at stop. */
static const char *parse_hex(const char *p, char stop, uint64_t *out)
{
	uint64_t v = 0;
	int digits = 0;

	for (; *p && *p != stop; p++, digits++) {
		int d = hex_digit(*p);

		if (d < 0 || digits >= 16)
			return NULL;
		v = v << 4 | (uint64_t)d;
	}
	if (digits == 0)
		return NULL;
	*out = v;
	return p;
}

/* The cursor is "<observed_us>.<seq>" in lower-case hex, observed_us with
 * its sign bit flipped so that the text is always unsigned. */
static void cursor_format(const struct st_time_pos *pos, char *buf, size_t len)
{
	snprintf(buf, len, "%016" PRIx64 ".%" PRIx64, (uint64_t)(
		 (uint64_t)pos->observed_us ^ (UINT64_C(1) << 63)), pos->seq);
}

static int cursor_parse(const char *text, struct st_time_pos *pos)
{
	uint64_t t = 0, s = 0;
	const char *p = parse_hex(text, '.', &t);

	if (!p || p - text != 16 || *p != '.')
		return -1;
	p = parse_hex(p + 1, '\0', &s);
	if (!p || *p)
		return -1;
	pos->observed_us = (int64_t)(t ^ (1ull << 63));
	pos->seq = s;
	return 0;
}

/* A campaign cursor is "c." and the last listed id in hex. */
static int campaign_cursor_parse(const char *text, uint64_t *id)
{
	const char *p;

	if (strncmp(text, "c.", 2))
		return -1;
	p = parse_hex(text + 2, '\0', id);
	return p && !*p ? 0 : -1;
}

/* Copies at most 64 bytes of a query value for an error message, with
 * any byte outside printable ASCII as '?', so that the message stays
 * valid UTF-8 whatever the client sent. */
static void quote_value(const char *value, char out[72])
{
	size_t n = 0;

	for (; value[n] && n < 64; n++)
		out[n] = value[n] >= 0x20 && value[n] < 0x7f && value[n] != '"' ? value[n] : '?';
	if (value[n]) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

/* Sends 400 for the parameter name, quoting the value sent when there is
 * one, with fix saying what to send instead. */
static void bad_param(struct http_req *req, const char *name, const char *value,
		      const char *fix)
{
	char detail[560], quoted[72];

	if (value) {
		quote_value(value, quoted);
		snprintf(detail, sizeof(detail), "query parameter %s=\"%s\" is invalid: %s",
			 name, quoted, fix);
	} else {
		snprintf(detail, sizeof(detail), "query parameter %s is invalid: %s", name, fix);
	}
	http_problem(req, 400, "invalid-parameter", "Invalid query parameter", detail);
}

/* Appends value to the filter's list field, splitting on commas so that
 * both ?domain=a&domain=b and ?domain=a,b work. */
static int add_list_values(json_t *filter, const char *field, const char *value)
{
	json_t *list = json_object_get(filter, field);
	char *copy = strdup(value);
	char *save = NULL;

	if (!copy)
		return -1;
	if (!list) {
		list = json_array();
		json_object_set_new(filter, field, list);
	}
	for (char *tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save))
		json_array_append_new(list, json_string(tok));
	free(copy);
	return 0;
}

/* Largest since_hours a query kind takes: signals are kept for the
 * retention period, counters and campaigns for stats_retention_days. */
static uint64_t max_since_hours(const struct server *srv, enum query_kind kind)
{
	int64_t keep_us = kind == QUERY_LIST ? cfg_retention_us(&srv->cfg) :
			  (int64_t)srv->cfg.stats_retention_days * 24 * HOUR_US;
	uint64_t hours = (uint64_t)((keep_us + HOUR_US - 1) / HOUR_US);

	return hours ? hours : 1;
}

/* Parses one parameter that every kind takes. Returns 1 when it was one
 * of them, 0 when not, -1 after sending 400. */
static int parse_common(struct http_req *req, struct rest_query *q,
			const char *name, const char *value, uint64_t *hours,
			int *hours_given)
{
	struct server *srv = server_of(http_req_wsi(req));
	uint64_t v;

	if (!strcmp(name, "since_hours")) {
		/* Stats and campaigns take a longer window than they keep and
		 * count what they kept; lists reject it. */
		uint64_t max = q->kind == QUERY_LIST ? max_since_hours(srv, q->kind) :
			       SINCE_HOURS_MAX;

		if (parse_uint(value, max, &v) || v == 0) {
			char fix[128];

			snprintf(fix, sizeof(fix),
				 "use an integer from 1 to %" PRIu64 "%s", max,
				 q->kind == QUERY_LIST ? " (the retention period)" : "");
			bad_param(req, "since_hours", value, fix);
			return -1;
		}
		*hours = v;
		*hours_given = 1;
		return 1;
	}
	if (q->kind == QUERY_STATS)
		return 0;
	if (!strcmp(name, "limit")) {
		if (parse_uint(value, LIST_LIMIT_MAX, &v) || v == 0) {
			bad_param(req, "limit", value, "use an integer from 1 to 1000");
			return -1;
		}
		q->limit = (unsigned)v;
		return 1;
	}
	if (!strcmp(name, "since_time")) {
		char text[32];

		if (sg_time_parse(value, &q->since_us)) {
			bad_param(req, "since_time", value,
				  "use an RFC 3339 time with an offset, such as 2026-01-03T00:00:00Z");
			return -1;
		}
		sg_time_format(q->since_us, text);
		snprintf(q->time_range, sizeof(q->time_range), "since %s", text);
		return 1;
	}
	if (!strcmp(name, "domain"))
		return add_list_values(q->filter, "domains", value) ? -1 : 1;
	return 0;
}

/* Parses a parameter of one kind only. Returns as parse_common. */
static int parse_specific(struct http_req *req, struct rest_query *q,
			  const char *name, const char *value)
{
	uint64_t v;
	size_t k;

	if (q->kind == QUERY_STATS && !strcmp(name, "bucket")) {
		static const char *const names[ST_LEVEL_COUNT] = { "minute", "hour", "day" };
		int i = sg_enum_lookup(names, ST_LEVEL_COUNT, value);

		if (i < 0) {
			bad_param(req, "bucket", value, "use minute, hour or day");
			return -1;
		}
		q->bucket = (enum st_level)i;
		return 1;
	}
	if (q->kind == QUERY_STATS && !strcmp(name, "top")) {
		if (parse_uint(value, TOP_DOMAINS_MAX, &v) || v == 0) {
			bad_param(req, "top", value, "use an integer from 1 to 100");
			return -1;
		}
		q->top = (unsigned)v;
		return 1;
	}
	if (q->kind == QUERY_CAMPAIGNS && !strcmp(name, "status")) {
		if (strcmp(value, "active") && strcmp(value, "dormant")) {
			bad_param(req, "status", value, "use active or dormant");
			return -1;
		}
		q->status = value[0] == 'a' ? STATUS_ACTIVE : STATUS_DORMANT;
		return 1;
	}
	if (q->kind == QUERY_CAMPAIGNS && !strcmp(name, "cursor")) {
		if (campaign_cursor_parse(value, &q->campaign_cursor)) {
			bad_param(req, "cursor", value,
				  "pass the next_cursor of a previous page unchanged");
			return -1;
		}
		q->has_cursor = 1;
		return 1;
	}
	if (q->kind != QUERY_LIST)
		return 0;

	if (!strcmp(name, "cursor")) {
		if (cursor_parse(value, &q->cursor)) {
			bad_param(req, "cursor", value,
				  "pass the next_cursor of a previous page unchanged");
			return -1;
		}
		q->has_cursor = 1;
		return 1;
	}
	if (!strcmp(name, "min_confidence")) {
		json_object_set_new(q->filter, "min_confidence", json_string(value));
		return 1;
	}
	if (!strcmp(name, "threat_only")) {
		if (strcmp(value, "true") && strcmp(value, "false")) {
			bad_param(req, "threat_only", value, "use true or false");
			return -1;
		}
		json_object_set_new(q->filter, "threat_only",
				    json_boolean(!strcmp(value, "true")));
		return 1;
	}
	for (k = 0; k < LIST_PARAM_COUNT; k++)
		if (!strcmp(name, list_params[k].param))
			return add_list_values(q->filter, list_params[k].field, value) ? -1 : 1;
	return 0;
}

/* Reads every query parameter. Returns 0, or -1 after sending 400. */
static int parse_query(struct http_req *req, enum query_kind kind,
		       struct rest_query *q)
{
	struct lws *wsi = http_req_wsi(req);
	char arg[QUERY_ARG_MAX];
	char seen[QUERY_NAMES_MAX][32];
	size_t nseen = 0;
	int hours_given = 0;
	uint64_t hours = 24;

	memset(q, 0, sizeof(*q));
	q->kind = kind;
	q->filter = json_object();
	q->limit = LIST_LIMIT_DEFAULT;
	q->since_us = INT64_MIN;
	q->campaign_cursor = UINT64_MAX;
	q->bucket = ST_LEVEL_HOUR;
	q->top = TOP_DOMAINS_DEFAULT;
	if (!q->filter) {
		http_problem(req, 503, "unavailable", "Service unavailable",
			     "out of memory; retry later");
		return -1;
	}

	for (int i = 0;; i++) {
		int n = lws_hdr_copy_fragment(wsi, arg, sizeof(arg),
					      WSI_TOKEN_HTTP_URI_ARGS, i);
		char *value;
		int rc;

		if (n < 0) {
			if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0) {
				bad_param(req, "(one of them)", NULL, "a parameter is longer than 2048 bytes");
				return -1;
			}
			break;
		}
		value = strchr(arg, '=');
		if (!value) {
			bad_param(req, "(unnamed)", arg, "expected NAME=VALUE");
			return -1;
		}
		*value++ = '\0';

		/* A list filter may repeat (domain=a&domain=b); any other
		 * parameter given twice would silently take the last value. */
		if (!is_list_param(arg) && strlen(arg) < sizeof(seen[0])) {
			size_t k = 0;

			while (k < nseen && strcmp(seen[k], arg))
				k++;
			if (k < nseen) {
				bad_param(req, arg, value, "it is given more than once; send it once");
				return -1;
			}
			if (nseen < QUERY_NAMES_MAX)
				strcpy(seen[nseen++], arg);
		}

		rc = parse_common(req, q, arg, value, &hours, &hours_given);
		if (rc == 0)
			rc = parse_specific(req, q, arg, value);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			char detail[480], quoted[72];

			quote_value(arg, quoted);
			snprintf(detail, sizeof(detail),
				 "query parameter \"%s\" is not known: use %s", quoted,
				 known_params[kind]);
			http_problem(req, 400, "invalid-parameter", "Invalid query parameter",
				     detail);
			return -1;
		}
	}

	if (q->since_us != INT64_MIN && hours_given) {
		bad_param(req, "since_time", NULL, "give since_time or since_hours, not both");
		return -1;
	}
	if (q->since_us == INT64_MIN) {
		uint64_t kept = kind == QUERY_LIST ? hours : max_since_hours(server_of(wsi), kind);

		snprintf(q->time_range, sizeof(q->time_range), "%" PRIu64 "h", hours);
		q->since_us = sg_now_us() - (int64_t)(hours < kept ? hours : kept) * HOUR_US;
	}
	return 0;
}

/* Returns the query parameter behind a matcher error that starts with
 * "filter.FIELD:", or NULL. */
static const char *filter_param_name(const char *err)
{
	static const char *const names[][2] = {
		{ "domains", "domain" }, { "event_types", "event_type" },
		{ "confidences", "confidence" }, { "min_confidence", "min_confidence" },
		{ "stages", "stage" }, { "proxy_types", "proxy_type" },
		{ "regions", "region" }, { "actions", "action" },
		{ "threat_only", "threat_only" },
	};
	const char *colon = strchr(err, ':');
	size_t len;

	if (strncmp(err, "filter.", 7) || !colon)
		return NULL;
	len = (size_t)(colon - (err + 7));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i][0]) == len && !strncmp(err + 7, names[i][0], len))
			return names[i][1];
	return NULL;
}

/* Builds the matcher filter of q, narrowed to the tenant's domains.
 * Returns 0, or -1 after sending 400 or 500. */
static int build_filter(struct http_req *req, const struct rest_query *q,
			const char *tenant_domains, mt_filter **out)
{
	char err[256];

	if (mt_filter_parse(q->filter, out, err, sizeof(err))) {
		char detail[320];
		const char *param = filter_param_name(err);

		/* The matcher names its own fields ("filter.event_types: ..."); the
		 * client sent the query parameter, so the message names that. */
		if (param)
			snprintf(detail, sizeof(detail), "query parameter %s is invalid:%s",
				 param, strchr(err, ':') + 1);
		else
			snprintf(detail, sizeof(detail), "query filter is invalid: %s", err);
		http_problem(req, 400, "invalid-parameter", "Invalid query parameter",
			     detail);
		return -1;
	}
	if (tenant_domains && mt_filter_restrict(*out, tenant_domains, err, sizeof(err))) {
		http_problem(req, 500, "internal", "Internal error",
			     "the key's domain list is invalid");
		return -1;
	}
	return 0;
}

/* ---- counting from the aggregates ---- */

/* A list filter as the counters and the per-domain index see it. */
struct count_plan {
	int countable;          /* the counters can count the filter */
	int empty;              /* nothing can match: no confidence is left,
				   or the tenant's domains and the filter's
				   share none */
	char **domains;         /* normalised names or "*." patterns; none
				   means every domain */
	size_t ndomains;
	uint32_t event_types;   /* bit 1 << enum value for each allowed one */
	uint32_t confidences;
	uint32_t stages;
	uint32_t proxy_types;
	uint32_t actions;
	char **regions;         /* upper case; none means every region */
	size_t nregions;
};

static void plan_free(struct count_plan *p)
{
	for (size_t i = 0; i < p->ndomains; i++)
		free(p->domains[i]);
	for (size_t i = 0; i < p->nregions; i++)
		free(p->regions[i]);
	free(p->domains);
	free(p->regions);
	memset(p, 0, sizeof(*p));
}

/* Adds text to a list unless it is there already. */
static int list_add_unique(char ***list, size_t *n, const char *text)
{
	char **grown;

	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*list)[i], text))
			return 0;
	grown = realloc(*list, (*n + 1) * sizeof(**list));
	if (!grown)
		return -1;
	*list = grown;
	grown[*n] = strdup(text);
	if (!grown[*n])
		return -1;
	(*n)++;
	return 0;
}

/* Sets *mask to the values that one enumerated filter field allows.
 * Values are accepted in any case, as the matcher accepts them. */
static int plan_enum_mask(const json_t *list, const char *const *names, int count,
			  uint32_t *mask)
{
	size_t i;
	json_t *v;

	*mask = 0;
	json_array_foreach(list, i, v) {
		const char *text = json_string_value(v);
		int k = -1;

		for (int j = 0; text && j < count && k < 0; j++)
			if (!strcasecmp(text, names[j]))
				k = j;
		if (k < 0)
			return -1;
		*mask |= 1u << k;
	}
	return 0;
}

static int plan_regions(struct count_plan *p, const json_t *list)
{
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v) {
		const char *text = json_string_value(v);
		char upper[3];

		if (!text || strlen(text) != 2)
			return -1;
		upper[0] = (char)(text[0] & ~0x20);
		upper[1] = (char)(text[1] & ~0x20);
		upper[2] = '\0';
		if (list_add_unique(&p->regions, &p->nregions, upper))
			return -1;
	}
	return 0;
}

/* The confidence levels the filter allows, as a bit set. */
static unsigned plan_confidences(const json_t *filter, int threat_feed)
{
	const json_t *list = json_object_get(filter, "confidences");
	const char *min = json_string_value(json_object_get(filter, "min_confidence"));
	unsigned set = (1u << SG_CONFIDENCE_COUNT) - 1;
	size_t i;
	json_t *v;

	if (list) {
		unsigned listed = 0;

		json_array_foreach(list, i, v)
			for (int j = 0; j < SG_CONFIDENCE_COUNT; j++)
				if (json_string_value(v) &&
				    !strcasecmp(json_string_value(v), sg_confidence_names[j]))
					listed |= 1u << j;
		set &= listed;
	}
	for (int j = 0; min && j < SG_CONFIDENCE_COUNT; j++)
		if (!strcasecmp(min, sg_confidence_names[j]))
			set &= ~((1u << j) - 1);
	if (json_is_true(json_object_get(filter, "threat_only")))
		set &= ~(1u << SG_CONFIDENCE_LOW);
	if (threat_feed)
		set &= 1u << SG_CONFIDENCE_HIGH;
	return set;
}

/* Returns true when the normalised name matches pattern (a name or a
 * "*." wildcard), with the matcher's rules. */
static int domain_matches(const char *pattern, const char *name)
{
	size_t n, s;

	if (strncmp(pattern, "*.", 2))
		return !strcmp(pattern, name);
	pattern += 2;
	n = strlen(name);
	s = strlen(pattern);
	return n > s + 1 && name[n - s - 1] == '.' && !strcmp(name + n - s, pattern);
}

/* Fills the plan's domains: the filter's patterns, narrowed to the
 * tenant's names. */
static int plan_domains(struct count_plan *p, const json_t *filter,
			const char *tenant_domains)
{
	const json_t *list = json_object_get(filter, "domains");
	char **patterns = NULL;
	size_t npatterns = 0;
	char *copy = NULL;
	char *save = NULL;
	size_t i;
	json_t *v;
	int rc = -1;

	json_array_foreach(list, i, v) {
		char norm[SG_DOMAIN_MAX + 1], err[160];

		if (!json_string_value(v) ||
		    sg_domain_normalize(json_string_value(v), true, norm, err, sizeof(err)) ||
		    list_add_unique(&patterns, &npatterns, norm))
			goto out;
	}
	if (!tenant_domains) {
		p->domains = patterns;
		p->ndomains = npatterns;
		patterns = NULL;
		npatterns = 0;
		rc = 0;
		goto out;
	}

	copy = strdup(tenant_domains);
	if (!copy)
		goto out;
	for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		char norm[SG_DOMAIN_MAX + 1], err[160];
		int keep = npatterns == 0;

		if (sg_domain_normalize(tok, false, norm, err, sizeof(err)))
			goto out;
		for (size_t k = 0; k < npatterns && !keep; k++)
			keep = domain_matches(patterns[k], norm);
		if (keep && list_add_unique(&p->domains, &p->ndomains, norm))
			goto out;
	}
	p->empty = p->ndomains == 0;
	rc = 0;

out:
	for (size_t k = 0; k < npatterns; k++)
		free(patterns[k]);
	free(patterns);
	free(copy);
	return rc;
}

/*
 * Translates the filter for the counters and the per-domain index. After
 * a failure the plan is zeroed: not countable, and without domains, so
 * the list reads by_time.
 */
static void plan_build(struct count_plan *p, const json_t *filter,
		       int threat_feed, const char *tenant_domains)
{
	const struct {
		const char *field;
		uint32_t *mask;
		const char *const *names;
		int count;
	} enums[] = {
		{ "event_types", &p->event_types, sg_event_type_names, SG_EVENT_COUNT },
		{ "stages", &p->stages, sg_stage_names, SG_STAGE_COUNT },
		{ "proxy_types", &p->proxy_types, sg_proxy_type_names, SG_PROXY_COUNT },
		{ "actions", &p->actions, sg_action_names, SG_ACTION_COUNT },
	};
	const json_t *regions = json_object_get(filter, "regions");

	memset(p, 0, sizeof(*p));
	p->event_types = p->stages = p->proxy_types = p->actions = ST_MASK_ALL;
	p->confidences = plan_confidences(filter, threat_feed);
	if (p->confidences == 0) {
		/* Filters that leave no confidence match nothing. */
		p->countable = 1;
		p->empty = 1;
		return;
	}
	for (size_t i = 0; i < sizeof(enums) / sizeof(enums[0]); i++) {
		const json_t *list = json_object_get(filter, enums[i].field);

		if (list && plan_enum_mask(list, enums[i].names, enums[i].count,
					   enums[i].mask))
			goto fail;
	}
	if (regions && plan_regions(p, regions))
		goto fail;
	if (plan_domains(p, filter, tenant_domains))
		goto fail;
	p->countable = 1;
	return;

fail:
	plan_free(p);
}

/* Visits signals newest first, strictly before start and observed at or
 * after min_us: through the per-domain index when the plan names
 * domains, else through by_time. */
static int plan_scan(struct server *srv, const struct count_plan *plan,
		     const struct st_time_pos *start, int64_t min_us,
		     st_visit_fn visit, void *ctx)
{
	if (plan->ndomains == 0)
		return st_scan_time_desc(srv->st, start, min_us, visit, ctx);
	return st_scan_domains_desc(srv->st, (const char *const *)plan->domains,
				    plan->ndomains, start, min_us, visit, ctx, NULL);
}

/* ---- the signal list ---- */

struct list_scan {
	const mt_filter *filter;
	int threat_feed;
	const struct rest_query *q;
	int count_all;          /* go on past the page to count every match */
	struct textbuf out;
	uint64_t total;
	unsigned listed;
	int more;
	struct st_time_pos last;
};

/* Returns true when s comes strictly after the cursor in newest-first
 * order. */
static int after_cursor(const struct rest_query *q, const struct sg_signal *s)
{
	if (!q->has_cursor)
		return 1;
	if (s->observed_us != q->cursor.observed_us)
		return s->observed_us < q->cursor.observed_us;
	return s->seq < q->cursor.seq;
}

static int signal_matches(const struct list_scan *ls, const struct sg_signal *s)
{
	if (ls->threat_feed && s->confidence != SG_CONFIDENCE_HIGH)
		return 0;
	return mt_filter_match(ls->filter, s);
}

static int list_visit(const struct sg_signal *s, void *ctxp)
{
	struct list_scan *ls = ctxp;
	char text[4096];
	size_t len;

	if (!signal_matches(ls, s))
		return 0;
	if (ls->count_all)
		ls->total++;
	if (!after_cursor(ls->q, s))
		return 0;
	if (ls->listed == ls->q->limit) {
		ls->more = 1;
		return ls->count_all ? 0 : 1;
	}
	len = sg_to_json_text(s, text, sizeof(text));
	if (len >= sizeof(text))
		return 0;
	if (ls->listed)
		tb_append(&ls->out, ",", 1);
	tb_append(&ls->out, text, len);
	ls->listed++;
	ls->last.observed_us = s->observed_us;
	ls->last.seq = s->seq;
	return 0;
}

static int count_visit(const struct sg_signal *s, void *ctxp)
{
	struct list_scan *ls = ctxp;

	if (signal_matches(ls, s))
		ls->total++;
	return 0;
}

/*
 * Counts the matches in the window from the counters. They have minute
 * buckets, so a window that starts inside a minute is counted from the
 * nearer minute boundary. The signals between that boundary and the
 * window start are read, then added when the boundary is later and
 * subtracted when it is earlier. Returns ST_OK with *done set when the
 * count is exact; *done 0 means count by scanning.
 */
static int count_from_aggregates(struct server *srv, struct list_scan *ls,
				 const struct count_plan *plan, int *done)
{
	int64_t since = ls->q->since_us;
	int64_t into_minute = ((since % MINUTE_US) + MINUTE_US) % MINUTE_US;
	int64_t from = into_minute < MINUTE_US / 2 ? since - into_minute :
		       since - into_minute + MINUTE_US;
	struct st_joint_query jq = {
		from, (const char *const *)plan->domains, plan->ndomains,
		plan->event_types, plan->confidences, plan->stages, plan->proxy_types,
		(const char *const *)plan->regions, plan->nregions, plan->actions
	};
	struct st_time_pos top = { from > since ? from : since, 0 };
	struct list_scan edge;
	uint64_t count = 0;
	bool exact = false;
	int rc;

	*done = 0;
	if (!plan->countable)
		return ST_OK;
	rc = st_stats_count_joint(srv->st, &jq, &count, &exact);
	if (rc != ST_OK || !exact)
		return rc;

	/* Signals in [since, from) or [from, since), newest first.
	 * NOTE: without domains this reads up to half a minute of every
	 * signal, so its cost grows with the ingest rate per minute. */
	edge = *ls;
	edge.total = 0;
	if (from != since)
		rc = plan_scan(srv, plan, &top, from < since ? from : since, count_visit,
			       &edge);
	if (rc != ST_OK)
		return rc;
	if (from < since) {
		/* A signal committed between the two reads could make the
		 * difference negative: then count by scanning. */
		if (edge.total > count)
			return ST_OK;
		count -= edge.total;
	} else {
		count += edge.total;
	}
	ls->total = count;
	*done = 1;
	return ST_OK;
}

static void send_list(struct http_req *req, struct list_scan *ls)
{
	char tail[256], cursor[48];

	if (ls->more)
		cursor_format(&ls->last, cursor, sizeof(cursor));
	snprintf(tail, sizeof(tail),
		 "],\"total_count\":%" PRIu64 ",\"time_range\":\"%s\",\"next_cursor\":%s%s%s}",
		 ls->total, ls->q->time_range, ls->more ? "\"" : "",
		 ls->more ? cursor : "null", ls->more ? "\"" : "");
	tb_str(&ls->out, tail);
	if (ls->out.failed) {
		http_problem(req, 503, "unavailable", "Service unavailable",
			     "out of memory; retry with a smaller limit");
		return;
	}
	http_respond(req, 200, "application/json", ls->out.data, ls->out.len, NULL);
	ls->out.data = NULL;
}

void rest_list_signals(struct http_req *req, int threat_feed,
		       const char *tenant_domains)
{
	struct server *srv = server_of(http_req_wsi(req));
	struct count_plan plan;
	struct rest_query q;
	struct list_scan ls;
	mt_filter *filter = NULL;
	int counted = 0;
	int rc = ST_OK;

	memset(&ls, 0, sizeof(ls));
	memset(&plan, 0, sizeof(plan));
	if (parse_query(req, QUERY_LIST, &q) ||
	    build_filter(req, &q, tenant_domains, &filter))
		goto out;

	ls.filter = filter;
	ls.threat_feed = threat_feed;
	ls.q = &q;
	plan_build(&plan, q.filter, threat_feed, tenant_domains);
	if (plan.empty)
		counted = 1;
	else
		rc = count_from_aggregates(srv, &ls, &plan, &counted);
	ls.count_all = !counted;

	/* With the count known, the page starts at the cursor and stops at
	 * the first match past it; otherwise one pass counts and lists. */
	tb_str(&ls.out, "{\"signals\":[");
	if (rc == ST_OK && !plan.empty)
		rc = plan_scan(srv, &plan, counted && q.has_cursor ? &q.cursor : NULL,
			       q.since_us, list_visit, &ls);
	if (rc != ST_OK) {
		log_error("signal list scan failed: %s", st_strerror(rc));
		http_problem(req, 503, "unavailable", "Service unavailable",
			     "the store could not be read; retry later");
		goto out;
	}
	send_list(req, &ls);
out:
	plan_free(&plan);
	free(ls.out.data);
	mt_filter_free(filter);
	json_decref(q.filter);
}

/* ---- campaigns ---- */

static json_t *names_of_bits(uint32_t bits, const char *const *names, int count)
{
	json_t *list = json_array();

	for (int i = 0; i < count; i++)
		if (bits & (1u << i))
			json_array_append_new(list, json_string(names[i]));
	return list;
}

static json_t *campaign_json(const struct st_campaign *c, int active)
{
	char id[32], first[32], last[32];
	json_t *regions = json_array();

	snprintf(id, sizeof(id), "camp_%" PRIu64, c->id);
	sg_time_format(c->first_us, first);
	sg_time_format(c->last_us, last);
	for (size_t i = 0; i < c->nregions; i++)
		json_array_append_new(regions, json_string(c->regions[i]));
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:s, s:s}",
			 "id", id, "related_domain", c->domain,
			 "first_seen", first, "last_seen", last,
			 "signal_count", (json_int_t)c->signal_count,
			 "event_types", names_of_bits(c->event_types, sg_event_type_names,
						      SG_EVENT_COUNT),
			 "stages", names_of_bits(c->stages, sg_stage_names, SG_STAGE_COUNT),
			 "proxy_types", names_of_bits(c->proxy_types, sg_proxy_type_names,
						      SG_PROXY_COUNT),
			 "regions", regions,
			 "max_confidence", sg_confidence_names[c->max_confidence %
							       SG_CONFIDENCE_COUNT],
			 "status", active ? "active" : "dormant");
}

struct campaign_scan {
	const mt_filter *filter;
	const struct rest_query *q;
	int64_t now_us;
	int64_t gap_us;
	json_t *list;
	uint64_t total;
	uint64_t last_id;
	int more;
};

static int campaign_visit(const struct st_campaign *c, void *ctxp)
{
	struct campaign_scan *cs = ctxp;
	struct sg_signal probe;
	int active = cs->now_us - c->last_us <= cs->gap_us;

	/* The filter contains domains only, so a signal with the campaign's
	 * domain matches exactly when the campaign does. */
	memset(&probe, 0, sizeof(probe));
	memcpy(probe.domain, c->domain, sizeof(probe.domain));
	if (!mt_filter_match(cs->filter, &probe))
		return 0;
	if ((cs->q->status == STATUS_ACTIVE && !active) ||
	    (cs->q->status == STATUS_DORMANT && active))
		return 0;
	cs->total++;
	if (c->id >= cs->q->campaign_cursor)
		return 0;
	if (json_array_size(cs->list) == cs->q->limit) {
		cs->more = 1;
		return 0;
	}
	json_array_append_new(cs->list, campaign_json(c, active));
	cs->last_id = c->id;
	return 0;
}

void rest_list_campaigns(struct http_req *req, const char *tenant_domains)
{
	struct server *srv = server_of(http_req_wsi(req));
	struct campaign_scan cs;
	struct rest_query q;
	mt_filter *filter = NULL;
	char cursor[32];
	int rc;

	memset(&cs, 0, sizeof(cs));
	if (parse_query(req, QUERY_CAMPAIGNS, &q) ||
	    build_filter(req, &q, tenant_domains, &filter))
		goto out;

	cs.filter = filter;
	cs.q = &q;
	cs.now_us = sg_now_us();
	cs.gap_us = (int64_t)srv->cfg.campaign_idle_gap_s * 1000000;
	cs.list = json_array();
	rc = st_campaign_scan(srv->st, q.since_us, UINT64_MAX, campaign_visit, &cs);
	if (rc != ST_OK) {
		log_error("campaign list scan failed: %s", st_strerror(rc));
		http_problem(req, 503, "unavailable", "Service unavailable",
			     "the store could not be read; retry later");
		goto out;
	}
	snprintf(cursor, sizeof(cursor), "c.%" PRIx64, cs.last_id);
	http_respond_json(req, 200,
			  json_pack("{s:O, s:I, s:s, s:o}", "campaigns", cs.list,
				    "total_count", (json_int_t)cs.total,
				    "time_range", q.time_range,
				    "next_cursor", cs.more ? json_string(cursor) : json_null()));
out:
	json_decref(cs.list);
	mt_filter_free(filter);
	json_decref(q.filter);
}

/* ---- stats ---- */

static int top_cmp(const void *a, const void *b)
{
	const struct st_stats_group *x = *(const struct st_stats_group *const *)a;
	const struct st_stats_group *y = *(const struct st_stats_group *const *)b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return strcmp(x->value, y->value);
}

static json_t *top_domains_json(const struct st_stats *s, unsigned top)
{
	const struct st_stats_group **list = calloc(s->ngroups + 1, sizeof(*list));
	json_t *out = json_array();
	size_t n = 0;

	if (!list)
		return out;
	for (size_t i = 0; i < s->ngroups; i++)
		if (s->groups[i].dim == ST_DIM_DOMAIN)
			list[n++] = &s->groups[i];
	qsort(list, n, sizeof(*list), top_cmp);
	for (size_t i = 0; i < n && i < top; i++)
		json_array_append_new(out, json_pack("{s:s, s:I}", "domain", list[i]->value,
						     "count", (json_int_t)list[i]->count));
	free(list);
	return out;
}

static int group_value_cmp(const void *a, const void *b)
{
	const struct st_stats_group *x = *(const struct st_stats_group *const *)a;
	const struct st_stats_group *y = *(const struct st_stats_group *const *)b;

	return strcmp(x->value, y->value);
}

/* Groups of one dim that occur, sorted by value. */
static json_t *group_json(const struct st_stats *s, enum st_dim dim)
{
	const struct st_stats_group **list = calloc(s->ngroups + 1, sizeof(*list));
	json_t *out = json_object();
	size_t n = 0;

	if (!list)
		return out;
	for (size_t i = 0; i < s->ngroups; i++)
		if (s->groups[i].dim == dim)
			list[n++] = &s->groups[i];
	qsort(list, n, sizeof(*list), group_value_cmp);
	for (size_t i = 0; i < n; i++)
		json_object_set_new(out, list[i]->value, json_integer((json_int_t)list[i]->count));
	free(list);
	return out;
}

static json_t *trend_json(const struct st_stats *s)
{
	json_t *out = json_array();

	for (size_t i = 0; i < s->ntrend; i++) {
		char bucket[32];

		json_t *by_event = json_object();

		/* Like the groups, the split lists only values that occur. */
		for (int e = 0; e < SG_EVENT_COUNT; e++)
			if (s->trend[i].by_event[e])
				json_object_set_new(by_event, sg_event_type_names[e],
						    json_integer((json_int_t)s->trend[i].by_event[e]));
		sg_time_format(s->trend[i].bucket_us, bucket);
		json_array_append_new(out, json_pack("{s:s, s:I, s:o}", "bucket", bucket,
						     "count", (json_int_t)s->trend[i].count,
						     "by_event_type", by_event));
	}
	return out;
}

/* Splits a key's domain list into normalised names. */
static int tenant_names(const char *tenant_domains, char ***names, size_t *n)
{
	char *copy = strdup(tenant_domains);
	char *save = NULL;
	int rc = 0;

	*names = NULL;
	*n = 0;
	if (!copy)
		return -1;
	for (char *tok = strtok_r(copy, ", ", &save); tok && rc == 0;
	     tok = strtok_r(NULL, ", ", &save)) {
		char norm[SG_DOMAIN_MAX + 1], err[160];

		rc = sg_domain_normalize(tok, false, norm, err, sizeof(err)) ? -1 :
		     list_add_unique(names, n, norm);
	}
	free(copy);
	return rc;
}

static json_t *stats_json(struct server *srv, const struct rest_query *q,
			  const struct st_stats *s, const char *tenant_domains)
{
	/* A tenant gets the count of its own subscribers, never other
	 * customers'. */
	uint64_t subscribers = tenant_domains
				       ? stream_count_tenant_connections(srv, tenant_domains)
				       : srv->counters.ws_connections;
	uint64_t sensors = 0;

	if (st_sensors_active(srv->st, sg_now_us() - SENSOR_ACTIVE_US, &sensors) != ST_OK)
		sensors = 0;
	return json_pack("{s:s, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:{s:I, s:I}}",
			 "time_range", q->time_range, "total", (json_int_t)s->total,
			 "by_event_type", group_json(s, ST_DIM_EVENT_TYPE),
			 "by_confidence", group_json(s, ST_DIM_CONFIDENCE),
			 "by_stage", group_json(s, ST_DIM_STAGE),
			 "by_proxy_type", group_json(s, ST_DIM_PROXY_TYPE),
			 "by_region", group_json(s, ST_DIM_REGION),
			 "top_domains", top_domains_json(s, q->top),
			 "trend", trend_json(s),
			 "network", "sensors_active", (json_int_t)sensors,
			 "subscribers_connected", (json_int_t)subscribers);
}

void rest_stats(struct http_req *req, const char *tenant_domains)
{
	struct server *srv = server_of(http_req_wsi(req));
	struct st_stats_query sq;
	struct st_stats stats;
	struct rest_query q;
	char **names = NULL;
	size_t nnames = 0;
	int64_t now = sg_now_us();
	int rc;

	memset(&stats, 0, sizeof(stats));
	if (parse_query(req, QUERY_STATS, &q))
		goto out;
	if (tenant_domains && tenant_names(tenant_domains, &names, &nnames)) {
		http_problem(req, 500, "internal", "Internal error",
			     "the key's domain list is invalid");
		goto out;
	}

	sq = (struct st_stats_query){ q.since_us, now + 1,
				      tenant_domains ? (const char *const *)names : NULL,
				      nnames, q.bucket,
				      q.bucket == ST_LEVEL_MINUTE ? TREND_MINUTE_MAX : TREND_MAX };
	rc = st_stats_read(srv->st, &sq, &stats);
	if (rc == ST_ERR_INVALID) {
		bad_param(req, "bucket", "minute",
			  "a minute trend covers at most 24 hours: lower since_hours or use bucket=hour");
		goto out;
	}
	if (rc != ST_OK) {
		log_error("stats read failed: %s", st_strerror(rc));
		http_problem(req, 503, "unavailable", "Service unavailable",
			     "the store could not be read; retry later");
		goto out;
	}
	http_respond_json(req, 200, stats_json(srv, &q, &stats, tenant_domains));
out:
	st_stats_free(&stats);
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	json_decref(q.filter);
}

/* ---- health ---- */

void rest_healthz(struct http_req *req)
{
	struct server *srv = server_of(http_req_wsi(req));
	char name[64];

	snprintf(name, sizeof(name), "canaryd/%s", CANARY_VERSION);
	http_respond_json(req, 200,
			  json_pack("{s:s, s:s, s:s, s:I, s:I}", "status", "ok",
				    "server", name, "epoch", st_epoch(srv->st),
				    "head_seq", (json_int_t)st_head_seq(srv->st),
				    "uptime_s",
				    (json_int_t)((sg_now_us() - srv->started_us) / 1000000)));
}

/* ---- set-up and the pruning timer ---- */

static void analytics_prune(lws_sorted_usec_list_t *sul);

/* Whether the last prune stopped at its budget; written on the writer
 * thread, read in analytics_pruned after the hand-over. */
static bool analytics_prune_more;

static int analytics_prune_run(st_store *st, void *arg)
{
	(void)arg;
	analytics_prune_more = false;
	return st_analytics_prune(st, sg_now_us(), ANALYTICS_PRUNE_BATCH,
				  &analytics_prune_more);
}

static void analytics_pruned(void *arg, int status)
{
	struct server *srv = arg;

	if (srv->shutting_down)
		return;
	if (status != ST_OK)
		log_error("pruning old stats counters and campaigns failed: %s; retrying in a minute",
			  st_strerror(status));
	lws_sul_schedule(srv->ctx, 0, &srv->analytics_tick, analytics_prune,
			 analytics_prune_more && status == ST_OK ? 1000 : ANALYTICS_PRUNE_PERIOD_US);
}

/* Prunes expired aggregates on the signal log's writer thread, since the
 * deletions are write transactions. */
static void analytics_prune(lws_sorted_usec_list_t *sul)
{
	struct server *srv = lws_container_of(sul, struct server, analytics_tick);

	if (slog_run_task(srv->slog, analytics_prune_run, analytics_pruned, srv)) {
		log_error("pruning old stats counters and campaigns: out of memory; retrying in a minute");
		lws_sul_schedule(srv->ctx, 0, sul, analytics_prune, ANALYTICS_PRUNE_PERIOD_US);
	}
}

int rest_init(struct server *srv, struct lws_context *ctx)
{
	int64_t retention = cfg_retention_us(&srv->cfg);
	struct st_analytics_settings as;

	if (srv->ratelimit)
		return 0;

	/* Minute counters cover at least the stored signals and two days,
	 * so that list counts and minute trends always find them. */
	as.campaign_idle_gap_us = (int64_t)srv->cfg.campaign_idle_gap_s * 1000000;
	as.minute_keep_us = (retention > 48 * HOUR_US ? retention : 48 * HOUR_US) + HOUR_US;
	as.stats_keep_us = (int64_t)srv->cfg.stats_retention_days * 24 * HOUR_US;
	st_analytics_configure(srv->st, &as);

	srv->ratelimit = rl_new(srv->cfg.rate_limit_per_s, srv->cfg.rate_limit_burst, 0);
	if (!srv->ratelimit) {
		log_error("out of memory for the rate limiter at start");
		return -1;
	}
	lws_sul_schedule(ctx, 0, &srv->analytics_tick, analytics_prune,
			 ANALYTICS_PRUNE_PERIOD_US);
	return 0;
}

void rest_destroy(struct server *srv)
{
	lws_sul_cancel(&srv->analytics_tick);
	rl_free(srv->ratelimit);
	srv->ratelimit = NULL;
}
