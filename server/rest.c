/*
 * REST reads: the signal list and threat feed, /healthz and /metrics.
 *
 * Lists run newest first by observed time (ties by descending seq) and
 * page with an opaque cursor that holds the last position served, so a
 * page never skips or repeats a signal while new ones arrive. total_count
 * counts every match in the time window, whatever the page.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"

#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 1000
#define QUERY_ARG_MAX 2048

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

struct list_query {
	json_t *filter;         /* filter fields, as the stream takes them */
	unsigned limit;
	int64_t since_us;
	char time_range[48];
	int has_cursor;
	struct st_time_pos cursor;
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
	const char *p = text;
	int digits = 0;

	for (; *p && *p != '.'; p++, digits++) {
		int d = (*p >= '0' && *p <= '9') ? *p - '0'
			: (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10 : -1;

		if (d < 0 || digits >= 16)
			return -1;
		t = t << 4 | (uint64_t)d;
	}
	if (digits != 16 || *p != '.' || !p[1])
		return -1;
	digits = 0;
	for (p++; *p; p++, digits++) {
		int d = (*p >= '0' && *p <= '9') ? *p - '0'
			: (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10 : -1;

		if (d < 0 || digits >= 16)
			return -1;
		s = s << 4 | (uint64_t)d;
	}
	pos->observed_us = (int64_t)(t ^ (1ull << 63));
	pos->seq = s;
	return 0;
}

static void bad_param(struct http_req *req, const char *name, const char *fix)
{
	char detail[480];

	snprintf(detail, sizeof(detail), "query parameter %s is invalid: %s", name, fix);
	http_problem(req, 400, "invalid-parameter", "Invalid query parameter", detail);
}

/* Appends value to the filter's list field, splitting on commas so that
 * both ?domain=a&domain=b and ?domain=a,b work. */
static void add_list_values(json_t *filter, const char *field, const char *value)
{
	json_t *list = json_object_get(filter, field);
	char *copy = strdup(value);
	char *save = NULL;

	if (!copy)
		return;
	if (!list) {
		list = json_array();
		json_object_set_new(filter, field, list);
	}
	for (char *tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save))
		json_array_append_new(list, json_string(tok));
	free(copy);
}

/* Reads every query parameter. Returns 0, or -1 after sending 400. */
static int parse_list_query(struct http_req *req, struct list_query *q)
{
	struct lws *wsi = http_req_wsi(req);
	struct server *srv = server_of(wsi);
	char arg[QUERY_ARG_MAX];
	int since_hours_given = 0;
	uint64_t hours = 24;

	q->filter = json_object();
	q->limit = LIST_LIMIT_DEFAULT;
	q->since_us = INT64_MIN;

	for (int i = 0;; i++) {
		int n = lws_hdr_copy_fragment(wsi, arg, sizeof(arg),
					      WSI_TOKEN_HTTP_URI_ARGS, i);
		char *value;
		uint64_t v;
		size_t k;

		if (n < 0) {
			if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0) {
				bad_param(req, "(one of them)", "a parameter is longer than 2048 bytes");
				return -1;
			}
			break;
		}
		value = strchr(arg, '=');
		if (!value) {
			bad_param(req, "(unnamed)", "expected NAME=VALUE");
			return -1;
		}
		*value++ = '\0';

		for (k = 0; k < LIST_PARAM_COUNT; k++)
			if (!strcmp(arg, list_params[k].param))
				break;
		if (k < LIST_PARAM_COUNT) {
			add_list_values(q->filter, list_params[k].field, value);
		} else if (!strcmp(arg, "min_confidence")) {
			json_object_set_new(q->filter, "min_confidence", json_string(value));
		} else if (!strcmp(arg, "threat_only")) {
			if (strcmp(value, "true") && strcmp(value, "false")) {
				bad_param(req, "threat_only", "use true or false");
				return -1;
			}
			json_object_set_new(q->filter, "threat_only",
					    json_boolean(!strcmp(value, "true")));
		} else if (!strcmp(arg, "limit")) {
			if (parse_uint(value, LIST_LIMIT_MAX, &v) || v == 0) {
				bad_param(req, "limit", "use an integer from 1 to 1000");
				return -1;
			}
			q->limit = (unsigned)v;
		} else if (!strcmp(arg, "since_hours")) {
			if (parse_uint(value, srv->cfg.retention_hours, &v) || v == 0) {
				char fix[96];

				snprintf(fix, sizeof(fix),
					 "use an integer from 1 to %" PRIu64 " (retention_hours)",
					 srv->cfg.retention_hours);
				bad_param(req, "since_hours", fix);
				return -1;
			}
			hours = v;
			since_hours_given = 1;
		} else if (!strcmp(arg, "since_time")) {
			char text[32];

			if (sg_time_parse(value, &q->since_us)) {
				bad_param(req, "since_time",
					  "use an RFC 3339 time with an offset, such as 2026-01-03T00:00:00Z");
				return -1;
			}
			sg_time_format(q->since_us, text);
			snprintf(q->time_range, sizeof(q->time_range), "since %s", text);
		} else if (!strcmp(arg, "cursor")) {
			if (cursor_parse(value, &q->cursor)) {
				bad_param(req, "cursor",
					  "pass the next_cursor of a previous page unchanged");
				return -1;
			}
			q->has_cursor = 1;
		} else {
			char fix[320];

			snprintf(fix, sizeof(fix),
				 "\"%.48s\" is not a known parameter (limit, cursor, since_hours, since_time, domain, event_type, confidence, min_confidence, stage, proxy_type, region, action, threat_only)",
				 arg);
			bad_param(req, "name", fix);
			return -1;
		}
	}

	if (q->since_us != INT64_MIN && since_hours_given) {
		bad_param(req, "since_time", "give since_time or since_hours, not both");
		return -1;
	}
	if (q->since_us == INT64_MIN) {
		q->since_us = sg_now_us() - (int64_t)hours * 3600 * 1000000;
		snprintf(q->time_range, sizeof(q->time_range), "%" PRIu64 "h", hours);
	}
	return 0;
}

/* ---- the list ---- */

struct list_scan {
	const mt_filter *filter;
	int threat_feed;
	const struct list_query *q;
	struct textbuf out;
	uint64_t total;
	unsigned listed;
	int more;
	struct st_time_pos last;
};

/* Returns true when pos comes strictly after the cursor in newest-first
 * order. */
static int after_cursor(const struct list_query *q, const struct sg_signal *s)
{
	if (!q->has_cursor)
		return 1;
	if (s->observed_us != q->cursor.observed_us)
		return s->observed_us < q->cursor.observed_us;
	return s->seq < q->cursor.seq;
}

static int list_visit(const struct sg_signal *s, void *ctxp)
{
	struct list_scan *ls = ctxp;
	char text[4096];
	size_t len;

	if (ls->threat_feed && s->confidence != SG_CONFIDENCE_HIGH)
		return 0;
	if (!mt_filter_match(ls->filter, s))
		return 0;
	ls->total++;
	if (!after_cursor(ls->q, s))
		return 0;
	if (ls->listed == ls->q->limit) {
		ls->more = 1;
		return 0;
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

void rest_list_signals(struct http_req *req, int threat_feed,
		       const char *tenant_domains)
{
	struct server *srv = server_of(http_req_wsi(req));
	struct list_query q;
	struct list_scan ls;
	mt_filter *filter = NULL;
	char err[256], tail[256], cursor[48];
	int rc;

	memset(&q, 0, sizeof(q));
	memset(&ls, 0, sizeof(ls));
	if (parse_list_query(req, &q))
		goto out;
	if (mt_filter_parse(q.filter, &filter, err, sizeof(err))) {
		char detail[320];

		snprintf(detail, sizeof(detail), "query filter is invalid: %s", err);
		http_problem(req, 400, "invalid-parameter", "Invalid query parameter",
			     detail);
		goto out;
	}
	if (tenant_domains && mt_filter_restrict(filter, tenant_domains, err, sizeof(err))) {
		http_problem(req, 500, "internal", "Internal error",
			     "the key's domain list is invalid");
		goto out;
	}

	ls.filter = filter;
	ls.threat_feed = threat_feed;
	ls.q = &q;
	tb_str(&ls.out, "{\"signals\":[");
	/* NOTE: this visits every signal in the window to count total_count,
	 * so its cost grows with the window's size. */
	rc = st_scan_time_desc(srv->st, NULL, q.since_us, list_visit, &ls);
	if (rc != ST_OK) {
		log_error("signal list scan failed: %s", st_strerror(rc));
		http_problem(req, 503, "unavailable", "Service unavailable",
			     "the store could not be read; retry later");
		goto out;
	}
	if (ls.more)
		cursor_format(&ls.last, cursor, sizeof(cursor));
	snprintf(tail, sizeof(tail),
		 "],\"total_count\":%" PRIu64 ",\"time_range\":\"%s\",\"next_cursor\":%s%s%s}",
		 ls.total, q.time_range, ls.more ? "\"" : "",
		 ls.more ? cursor : "null", ls.more ? "\"" : "");
	tb_str(&ls.out, tail);
	if (ls.out.failed) {
		http_problem(req, 503, "unavailable", "Service unavailable",
			     "out of memory; retry with a smaller limit");
		goto out;
	}
	http_respond(req, 200, "application/json", ls.out.data, ls.out.len, NULL);
	ls.out.data = NULL;
out:
	free(ls.out.data);
	mt_filter_free(filter);
	json_decref(q.filter);
}

/* ---- health and metrics ---- */

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

static const char *const close_reason_names[CLOSE_REASON_COUNT] = {
	"slow_consumer", "idle", "auth", "bad_request", "revoked", "limit",
	"shutdown", "peer",
};

void rest_metrics(struct http_req *req)
{
	struct server *srv = server_of(http_req_wsi(req));
	const struct server_counters *c = &srv->counters;
	struct textbuf tb = { 0 };
	struct slog_stats ls;
	char line[256];

	slog_get_stats(srv->slog, &ls);
#define METRIC(name, type, help, value)                                        \
	do {                                                                   \
		snprintf(line, sizeof(line),                                   \
			 "# HELP " name " " help "\n# TYPE " name " " type     \
			 "\n" name " %" PRIu64 "\n",                           \
			 (uint64_t)(value));                                   \
		tb_str(&tb, line);                                             \
	} while (0)
	METRIC("canary_signals_ingested_total", "counter", "Signals committed.", ls.signals);
	METRIC("canary_ingest_batches_total", "counter", "Batches committed.", ls.batches);
	METRIC("canary_ingest_rejected_batches_total", "counter",
	       "Batches rejected as invalid.", c->rejected_batches);
	METRIC("canary_commit_failures_total", "counter", "Commits that failed.", ls.failures);
	METRIC("canary_deliveries_total", "counter", "Signal messages queued to subscribers.",
	       c->deliveries);
	METRIC("canary_replayed_total", "counter", "Signal messages queued from replay.",
	       c->replayed);
	METRIC("canary_ws_connections", "gauge", "Open WebSocket connections.",
	       c->ws_connections);
	METRIC("canary_ws_connections_total", "counter", "WebSocket connections accepted.",
	       c->ws_connections_total);
	METRIC("canary_subscriptions", "gauge", "Open subscriptions.", c->subscriptions);
	METRIC("canary_http_responses_total", "counter", "HTTP responses sent.",
	       c->http_requests);
	METRIC("canary_head_seq", "gauge", "Last committed seq.", st_head_seq(srv->st));
#undef METRIC
	tb_str(&tb, "# HELP canary_ws_closes_total WebSocket connections closed, by reason.\n"
		    "# TYPE canary_ws_closes_total counter\n");
	for (int i = 0; i < CLOSE_REASON_COUNT; i++) {
		snprintf(line, sizeof(line), "canary_ws_closes_total{reason=\"%s\"} %" PRIu64 "\n",
			 close_reason_names[i], c->closes[i]);
		tb_str(&tb, line);
	}
	if (tb.failed) {
		free(tb.data);
		http_problem(req, 503, "unavailable", "Service unavailable", "out of memory");
		return;
	}
	http_respond(req, 200, "text/plain; version=0.0.4", tb.data, tb.len, NULL);
}
