/*
 * HTTP request handling: routing, Bearer checks, request bodies and
 * responses. A response is written in two steps, the headers in one
 * writable callback and the body in chunks in the following ones, because
 * lws allows one write per writable callback.
 */
#include "http.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signal/batch.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "static.h"
#include "tls.h"

#define HTTP_URI_MAX 256
#define HTTP_CHUNK (32 * 1024)

enum http_method { METHOD_OTHER, METHOD_GET, METHOD_POST };

struct http_req {
	struct lws *wsi;
	struct server *srv;
	enum http_method method;
	char uri[HTTP_URI_MAX];
	/* request body, for POST */
	int expect_body;
	char *body;
	size_t body_len;
	enum sg_format format;
	char key_id[ST_KEY_ID_LEN + 1];
	char *tenant_domains;
	enum http_route_id route;
	char ratelimit_headers[160];    /* RateLimit-* lines, or "" */
	struct slog_job *job;   /* batch waiting for its commit */
	char batch_key[ST_BATCH_KEY_MAX + 1];   /* Idempotency-Key, or "" */
	/* response */
	int responded;
	int headers_sent;
	int close_after;
	unsigned status;
	char ctype[48];
	char *extra;
	char *resp;
	size_t resp_len;
	size_t resp_sent;
};

size_t http_session_size(void)
{
	return sizeof(struct http_req);
}

struct lws *http_req_wsi(struct http_req *req)
{
	return req->wsi;
}

static void req_reset(struct http_req *req)
{
	slog_job_detach(req->job);
	free(req->body);
	free(req->resp);
	free(req->extra);
	free(req->tenant_domains);
	memset(req, 0, sizeof(*req));
}

void http_respond(struct http_req *req, unsigned status, const char *ctype,
		  char *body, size_t len, const char *extra_headers)
{
	if (req->responded) {
		free(body);
		return;
	}
	req->responded = 1;
	req->status = status;
	snprintf(req->ctype, sizeof(req->ctype), "%s", ctype);
	req->resp = body;
	req->resp_len = body ? len : 0;
	req->extra = extra_headers ? strdup(extra_headers) : NULL;
	req->srv->counters.http_requests++;
	metrics_count_response(req->srv, req->route, status);
	lws_callback_on_writable(req->wsi);
}

void http_respond_json(struct http_req *req, unsigned status, json_t *value)
{
	char *text = value ? json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER)
			   : NULL;

	json_decref(value);
	if (!text) {
		http_problem(req, 500, "internal", "Internal error",
			     "the response could not be encoded");
		return;
	}
	http_respond(req, status, "application/json", text, strlen(text), NULL);
}

static void problem_with(struct http_req *req, unsigned status,
			 const char *slug, const char *title,
			 const char *detail, json_t *extra_members,
			 const char *extra_headers)
{
	json_t *doc = json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank",
				"title", title, "status", (int)status,
				"detail", detail);
	char type[96];
	char *text;

	snprintf(type, sizeof(type), "urn:canary:problem:%s", slug);
	if (doc)
		json_object_set_new(doc, "type", json_string(type));
	if (doc && extra_members)
		json_object_update(doc, extra_members);
	json_decref(extra_members);
	text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(doc);
	if (!text) {
		text = strdup("{\"title\":\"Internal error\",\"status\":500}");
		status = 500;
	}
	http_respond(req, status, "application/problem+json", text,
		     text ? strlen(text) : 0, extra_headers);
}

void http_problem(struct http_req *req, unsigned status, const char *slug,
		  const char *title, const char *detail)
{
	problem_with(req, status, slug, title, detail, NULL, NULL);
}

/* ---- writing the response ---- */

/* Adds "Name: value\r\n" lines from text to the header block. */
static int add_extra_headers(struct http_req *req, const char *text,
			     unsigned char **p, unsigned char *end)
{
	const char *line = text;

	while (line && *line) {
		const char *eol = strstr(line, "\r\n");
		const char *colon = strchr(line, ':');
		char name[64];
		const char *value;
		size_t nlen;

		if (!eol || !colon || colon > eol)
			return -1;
		nlen = (size_t)(colon - line) + 1;
		if (nlen >= sizeof(name))
			return -1;
		memcpy(name, line, nlen);
		name[nlen] = '\0';
		for (size_t i = 0; i < nlen; i++)
			name[i] = (char)tolower((unsigned char)name[i]);
		value = colon + 1;
		while (*value == ' ')
			value++;
		if (lws_add_http_header_by_name(req->wsi, (unsigned char *)name,
						(const unsigned char *)value,
						(int)(eol - value), p, end))
			return -1;
		line = eol + 2;
	}
	return 0;
}

static int write_headers(struct http_req *req)
{
	static const char nosniff[] = "nosniff";
	static const char no_store[] = "no-store";
	unsigned char *start = (unsigned char *)req->srv->frame + LWS_PRE;
	unsigned char *p = start, *end = start + SERVER_FRAME_MAX;

	if (lws_add_http_common_headers(req->wsi, req->status, req->ctype,
					req->resp_len, &p, end) ||
	    lws_add_http_header_by_name(req->wsi,
					(unsigned char *)"x-content-type-options:",
					(const unsigned char *)nosniff,
					sizeof(nosniff) - 1, &p, end) ||
	    lws_add_http_header_by_name(req->wsi,
					(unsigned char *)"cache-control:",
					(const unsigned char *)no_store,
					sizeof(no_store) - 1, &p, end) ||
	    add_extra_headers(req, req->extra, &p, end) ||
	    add_extra_headers(req, req->ratelimit_headers, &p, end))
		return -1;
	if (req->close_after &&
	    lws_add_http_header_by_token(req->wsi, WSI_TOKEN_CONNECTION,
					 (const unsigned char *)"close", 5, &p, end))
		return -1;
	if (lws_finalize_write_http_header(req->wsi, start, &p, end))
		return -1;
	req->headers_sent = 1;
	return 0;
}

/* Finishes the transaction. Returns -1 when the connection must close. */
static int finish_response(struct http_req *req)
{
	int close_after = req->close_after;
	struct server *srv = req->srv;
	struct lws *wsi = req->wsi;

	req_reset(req);
	req->wsi = wsi;
	req->srv = srv;
	if (close_after)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_writable(struct http_req *req)
{
	unsigned char *buf = (unsigned char *)req->srv->frame + LWS_PRE;
	size_t n;
	int final;

	if (!req->responded)
		return 0;
	if (!req->headers_sent) {
		if (write_headers(req))
			return -1;
		if (!req->resp_len)
			return finish_response(req);
		lws_callback_on_writable(req->wsi);
		return 0;
	}

	n = req->resp_len - req->resp_sent;
	if (n > HTTP_CHUNK)
		n = HTTP_CHUNK;
	final = req->resp_sent + n == req->resp_len;
	memcpy(buf, req->resp + req->resp_sent, n);
	if (lws_write(req->wsi, buf, n, final ? LWS_WRITE_HTTP_FINAL
					      : LWS_WRITE_HTTP) < (int)n)
		return -1;
	req->resp_sent += n;
	if (final)
		return finish_response(req);
	lws_callback_on_writable(req->wsi);
	return 0;
}

/* ---- authentication ---- */

/*
 * Checks the Authorization header for scope. Returns 0 with the key's id
 * and domain list stored in req, or -1 after sending 401, 403 or 503.
 */
static int require_key(struct http_req *req, uint32_t scope)
{
	static const char challenge[] = "WWW-Authenticate: Bearer realm=\"canaryd\"\r\n";
	static const char challenge_invalid[] =
		"WWW-Authenticate: Bearer realm=\"canaryd\", error=\"invalid_token\"\r\n";
	int len = lws_hdr_total_length(req->wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	char value[KEY_TOKEN_MAX + 64];
	char token[KEY_TOKEN_MAX + 1];
	struct st_key key;
	enum auth_result r;

	if (len <= 0) {
		problem_with(req, 401, "unauthenticated", "Unauthenticated",
			     "missing Authorization header: send Authorization: Bearer KEY",
			     NULL, challenge);
		return -1;
	}
	/* An oversized header is refused, never treated as absent. */
	if (len >= (int)sizeof(value) ||
	    lws_hdr_copy(req->wsi, value, sizeof(value),
			 WSI_TOKEN_HTTP_AUTHORIZATION) < 0 ||
	    auth_parse_bearer(value, token) != AUTH_OK) {
		problem_with(req, 401, "unauthenticated", "Unauthenticated",
			     "malformed Authorization header: expected \"Bearer KEY\" with a key of at most 128 characters",
			     NULL, challenge_invalid);
		return -1;
	}

	r = auth_check_token(req->srv->st, token, scope, &key);
	if (r == AUTH_FORBIDDEN) {
		char scopes[64], detail[160];

		keys_format_scopes(scope, scopes, sizeof(scopes));
		snprintf(detail, sizeof(detail),
			 "key %s lacks the %s scope; create a key with it", key.id,
			 scopes);
		st_key_clear(&key);
		http_problem(req, 403, "forbidden", "Forbidden", detail);
		return -1;
	}
	if (r == AUTH_STORE_ERROR) {
		http_problem(req, 503, "unavailable", "Service unavailable",
			     "the key store could not be read; retry later");
		return -1;
	}
	if (r != AUTH_OK) {
		problem_with(req, 401, "unauthenticated", "Unauthenticated",
			     "unknown or revoked key", NULL, challenge_invalid);
		return -1;
	}
	snprintf(req->key_id, sizeof(req->key_id), "%s", key.id);
	if (key.domains)
		req->tenant_domains = strdup(key.domains);
	st_key_clear(&key);
	return 0;
}

/* ---- rate limits ---- */

/*
 * Takes one token from the key's bucket (the key is checked already).
 * Returns 0, or -1 after sending 429. Either way the response carries
 * the RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset headers.
 */
static int check_rate(struct http_req *req)
{
	struct rl_result r;
	char retry[48];
	char detail[200];

	if (!req->srv->ratelimit)
		return 0;
	rl_take(req->srv->ratelimit, req->key_id, (int64_t)lws_now_usecs(), &r);
	rl_format_headers(&r, req->ratelimit_headers, sizeof(req->ratelimit_headers));
	if (r.allowed)
		return 0;

	snprintf(retry, sizeof(retry), "Retry-After: %" PRIu64 "\r\n", r.retry_after_s);
	snprintf(detail, sizeof(detail),
		 "key %s sent more than rate_limit_per_s (%" PRIu64
		 ") requests a second beyond a burst of %" PRIu64
		 "; retry after %" PRIu64 " s",
		 req->key_id, req->srv->cfg.rate_limit_per_s, r.limit,
		 r.retry_after_s);
	problem_with(req, 429, "rate-limited", "Too many requests", detail,
		     NULL, retry);
	return -1;
}

/* ---- ingest ---- */

static int content_type_format(struct http_req *req, enum sg_format *fmt)
{
	char ctype[128], detail[256];
	char *semi;
	size_t len;

	if (lws_hdr_copy(req->wsi, ctype, sizeof(ctype),
			 WSI_TOKEN_HTTP_CONTENT_TYPE) <= 0)
		ctype[0] = '\0';
	semi = strchr(ctype, ';');
	if (semi)
		*semi = '\0';
	len = strlen(ctype);
	while (len && ctype[len - 1] == ' ')
		ctype[--len] = '\0';
	for (size_t i = 0; i < len; i++)
		ctype[i] = (char)tolower((unsigned char)ctype[i]);

	if (!strcmp(ctype, "application/json")) {
		*fmt = SG_FORMAT_JSON;
		return 0;
	}
	if (!strcmp(ctype, "application/x-ndjson") ||
	    !strcmp(ctype, "application/ndjson")) {
		*fmt = SG_FORMAT_NDJSON;
		return 0;
	}
	if (!strcmp(ctype, "application/msgpack") ||
	    !strcmp(ctype, "application/x-msgpack") ||
	    !strcmp(ctype, "application/vnd.msgpack")) {
		*fmt = SG_FORMAT_MSGPACK;
		return 0;
	}
	snprintf(detail, sizeof(detail),
		 "Content-Type \"%.64s\" is not supported: use application/json, application/x-ndjson or application/msgpack",
		 ctype);
	req->close_after = 1;
	http_problem(req, 415, "unsupported-media-type", "Unsupported media type",
		     detail);
	return -1;
}

static void reject_body_too_large(struct http_req *req)
{
	char detail[160];

	snprintf(detail, sizeof(detail),
		 "request body is larger than max_body_bytes (%" PRIu64
		 " bytes); send smaller batches",
		 req->srv->cfg.max_body_bytes);
	req->close_after = 1;
	http_problem(req, 413, "body-too-large", "Payload too large", detail);
}

/*
 * Reads the optional Idempotency-Key header: a client that retries a batch
 * under the same key gets the first commit's response, and the batch is
 * stored once. Returns 0, or -1 after sending 400.
 */
static int read_batch_key(struct http_req *req)
{
	static const char name[] = "idempotency-key:";
	int len = lws_hdr_custom_length(req->wsi, name, (int)sizeof(name) - 1);
	int ok = len > 0 && len <= ST_BATCH_KEY_MAX;

	req->batch_key[0] = '\0';
	if (len <= 0)
		return 0;
	if (ok && lws_hdr_custom_copy(req->wsi, req->batch_key,
				      (int)sizeof(req->batch_key), name,
				      (int)sizeof(name) - 1) < 0)
		ok = 0;
	for (int i = 0; ok && req->batch_key[i]; i++) {
		char c = req->batch_key[i];

		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		     (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
		     c == '-';
	}
	if (ok)
		return 0;
	req->batch_key[0] = '\0';
	http_problem(req, 400, "invalid-idempotency-key", "Invalid Idempotency-Key",
		     "the Idempotency-Key header must be 1 to 64 characters from A-Z a-z 0-9 . _ : -, for example a random hex string per batch");
	return -1;
}

static void start_ingest(struct http_req *req)
{
	char clen[32];

	if (require_key(req, ST_SCOPE_INGEST) || check_rate(req) ||
	    content_type_format(req, &req->format)) {
		req->close_after = 1;
		return;
	}
	if (lws_hdr_copy(req->wsi, clen, sizeof(clen),
			 WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
	    strtoull(clen, NULL, 10) > req->srv->cfg.max_body_bytes) {
		reject_body_too_large(req);
		return;
	}
	if (read_batch_key(req)) {
		req->close_after = 1;
		return;
	}
	req->expect_body = 1;
}

static int receive_body(struct http_req *req, const char *in, size_t len)
{
	uint64_t max = req->srv->cfg.max_body_bytes;

	if (req->responded || !req->expect_body || !len)
		return 0;
	if (req->body_len + len > max) {
		reject_body_too_large(req);
		return 0;
	}
	if (!req->body) {
		req->body = malloc(max);
		if (!req->body) {
			req->close_after = 1;
			http_problem(req, 503, "unavailable", "Service unavailable",
				     "out of memory; retry later");
			return 0;
		}
	}
	memcpy(req->body + req->body_len, in, len);
	req->body_len += len;
	return 0;
}

int http_check_clock(uint64_t max_ahead_s, int64_t now_us,
		     const struct sg_batch *b, struct sg_batch_report *rep)
{
	struct sg_error e;

	memset(rep, 0, sizeof(*rep));
	for (size_t i = 0; max_ahead_s && i < b->count; i++) {
		int64_t ahead_s = (b->items[i].observed_us - now_us) / 1000000;
		char when[32];

		if (ahead_s <= (int64_t)max_ahead_s)
			continue;
		sg_time_format(b->items[i].observed_us, when);
		snprintf(e.field, sizeof(e.field), "timestamp");
		snprintf(e.reason, sizeof(e.reason),
			 "timestamp \"%s\" is %" PRId64 " s ahead of the server's clock; correct the sensor's clock or raise max_clock_ahead_s",
			 when, ahead_s);
		sg_batch_report_add(rep, i, &e);
	}
	return rep->total ? -1 : 0;
}

int http_check_tenant_domains(const char *domains, const struct sg_batch *b,
			      struct sg_batch_report *rep)
{
	struct sg_error e;

	memset(rep, 0, sizeof(*rep));
	for (size_t i = 0; i < b->count; i++) {
		const char *d = b->items[i].domain;
		size_t dl = strlen(d);
		const char *p = domains;
		int found = 0;

		while (*p && !found) {
			const char *comma = strchr(p, ',');
			size_t l = comma ? (size_t)(comma - p) : strlen(p);

			found = l == dl && !memcmp(p, d, l);
			p += l + (comma ? 1 : 0);
		}
		if (found)
			continue;
		snprintf(e.field, sizeof(e.field), "related_domain");
		snprintf(e.reason, sizeof(e.reason),
			 "domain \"%.100s\" is not in this key's domain list", d);
		sg_batch_report_add(rep, i, &e);
	}
	return rep->total ? -1 : 0;
}

static void reject_batch(struct http_req *req, const struct sg_batch_report *rep)
{
	json_t *errors = json_array();
	char detail[160], place[64];

	for (size_t i = 0; i < rep->listed; i++) {
		const struct sg_batch_problem *p = &rep->problems[i];
		json_t *e = json_object();

		if (p->index == SG_BATCH_WHOLE_BODY)
			json_object_set_new(e, "index", json_null());
		else
			json_object_set_new(e, "index", json_integer((json_int_t)p->index));
		json_object_set_new(e, "field", json_string(p->error.field));
		json_object_set_new(e, "reason", json_string(p->error.reason));
		json_array_append_new(errors, e);
	}
	snprintf(detail, sizeof(detail),
		 "%zu problem%s found; nothing from this batch was stored",
		 rep->total, rep->total == 1 ? "" : "s");
	req->srv->counters.rejected_batches++;
	log_info("rejected a batch from key %s: %zu problem%s, the first in %s; nothing stored",
		 req->key_id, rep->total, rep->total == 1 ? "" : "s",
		 sg_batch_report_first_place(rep, place, sizeof(place)));
	problem_with(req, 400, "invalid-batch", "Invalid signal batch", detail,
		     json_pack("{s:o, s:I}", "errors", errors, "error_count",
			       (json_int_t)rep->total),
		     NULL);
}

/* Sends the response for a batch once the signal log's writer committed
 * it or failed. Runs on the event loop thread. */
static void ingest_committed(void *owner, int rc, uint64_t first,
			     uint64_t last, size_t count)
{
	struct http_req *req = owner;

	req->job = NULL;
	if (rc == ST_ERR_EXISTS) {
		log_info("key %s: Idempotency-Key reused for a batch of another size",
			 req->key_id);
		http_problem(req, 422, "idempotency-key-reused", "Idempotency-Key reused",
			     "a batch with another number of signals was stored under this Idempotency-Key; use a new key for each batch");
		return;
	}
	if (rc == ST_ERR_MAP_FULL) {
		http_problem(req, 507, "store-full", "Insufficient storage",
			     "the store reached map_size_max_bytes; nothing from this batch was stored; retry after retention frees room or raise the limit");
		return;
	}
	if (rc != ST_OK) {
		problem_with(req, 503, "commit-failed", "Service unavailable",
			     "the batch could not be committed; nothing was stored; retry",
			     NULL, "Retry-After: 1\r\n");
		return;
	}
	log_debug("key %s: stored %zu signals, seq %" PRIu64 " to %" PRIu64,
		  req->key_id, count, first, last);
	http_respond_json(req, 202, json_pack("{s:I, s:I, s:I}", "accepted",
					      (json_int_t)count, "first_seq",
					      (json_int_t)first, "last_seq",
					      (json_int_t)last));
}

static void finish_ingest(struct http_req *req)
{
	struct sg_batch batch = { NULL, 0 };
	struct sg_batch_report *rep = NULL;

	if (req->responded || !req->expect_body)
		return;
	rep = calloc(1, sizeof(*rep));
	if (!rep) {
		http_problem(req, 503, "unavailable", "Service unavailable",
			     "out of memory; retry later");
		return;
	}
	if (sg_batch_parse(req->body ? req->body : "", req->body_len, req->format,
			   req->srv->cfg.max_batch_signals, &batch, rep)) {
		reject_batch(req, rep);
		goto out;
	}
	if (http_check_clock(req->srv->cfg.max_clock_ahead_s, sg_now_us(), &batch, rep) ||
	    (req->tenant_domains &&
	     http_check_tenant_domains(req->tenant_domains, &batch, rep))) {
		reject_batch(req, rep);
		goto out;
	}

	/* The 202 goes out from ingest_committed, after the commit; the
	 * log owns the items from here on. */
	req->job = slog_submit_keyed(req->srv->slog, batch.items, batch.count,
				     req->batch_key[0] ? req->batch_key : NULL,
				     ingest_committed, req);
	batch.items = NULL;
	batch.count = 0;
	if (!req->job)
		http_problem(req, 503, "unavailable", "Service unavailable",
			     "out of memory; retry later");
out:
	sg_batch_free(&batch);
	free(rep);
}

/* ---- routing ---- */

/* The route of a URI, for the request counters. */
static enum http_route_id route_of(const char *u, enum http_method method)
{
	static const struct {
		const char *uri;
		enum http_route_id id;
	} routes[] = {
		{ "/v1/canary/threat-feed", ROUTE_THREAT_FEED },
		{ "/v1/canary/campaigns", ROUTE_CAMPAIGNS },
		{ "/v1/canary/stats", ROUTE_STATS },
		{ "/v1/canary/stream", ROUTE_STREAM },
		{ "/healthz", ROUTE_HEALTHZ },
		{ "/metrics", ROUTE_METRICS },
	};

	if (!strcmp(u, "/v1/canary/signals"))
		return method == METHOD_POST ? ROUTE_SIGNALS_POST : ROUTE_SIGNALS_GET;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(u, routes[i].uri))
			return routes[i].id;
	return strncmp(u, "/v1/", 4) && method == METHOD_GET ? ROUTE_CONSOLE
							      : ROUTE_OTHER;
}

/* Runs a GET /v1/ read after the key and rate checks. */
static void route_read(struct http_req *req)
{
	if (require_key(req, ST_SCOPE_READ) || check_rate(req))
		return;
	switch (req->route) {
	case ROUTE_CAMPAIGNS:
		rest_list_campaigns(req, req->tenant_domains);
		break;
	case ROUTE_STATS:
		rest_stats(req, req->tenant_domains);
		break;
	default:
		rest_list_signals(req, req->route == ROUTE_THREAT_FEED,
				  req->tenant_domains);
		break;
	}
}

static void route(struct http_req *req)
{
	const char *u = req->uri;
	int is_signals = !strcmp(u, "/v1/canary/signals");

	req->route = route_of(u, req->method);
	if (req->route == ROUTE_HEALTHZ || req->route == ROUTE_METRICS) {
		if (req->method != METHOD_GET) {
			http_problem(req, 405, "method-not-allowed", "Method not allowed",
				     "use GET");
			return;
		}
		if (req->route == ROUTE_HEALTHZ)
			rest_healthz(req);
		else
			metrics_respond(req);
		return;
	}
	if (is_signals && req->method == METHOD_POST) {
		start_ingest(req);
		return;
	}
	if (req->route == ROUTE_SIGNALS_GET || req->route == ROUTE_THREAT_FEED ||
	    req->route == ROUTE_CAMPAIGNS || req->route == ROUTE_STATS) {
		if (req->method == METHOD_GET) {
			route_read(req);
			return;
		}
		req->close_after = 1;
		http_problem(req, 405, "method-not-allowed", "Method not allowed",
			     is_signals ? "use GET to list signals or POST to ingest"
					: "use GET");
		return;
	}
	if (req->route == ROUTE_STREAM) {
		http_problem(req, 426, "upgrade-required", "Upgrade required",
			     "this URL speaks WebSocket: connect with a WebSocket client and the subprotocol canary.v1.json");
		return;
	}
	if (req->method == METHOD_GET &&
	    static_serve(req, u, req->srv->cfg.console_dir) == STATIC_QUEUED)
		return;
	/* A path under /v1/ without canary/ is a likely slip for the API.
	 * The suggestion repeats the rest of the path only when it is short
	 * and plain. */
	if (!strncmp(u, "/v1/", 4) && strncmp(u, "/v1/canary/", 11)) {
		size_t rest = strspn(u + 4, "abcdefghijklmnopqrstuvwxyz0123456789-_/");
		const char *example = u + 4;
		char hint[200];

		if (u[4 + rest] || !rest || rest > 60) {
			example = "signals";
			rest = strlen(example);
		}
		snprintf(hint, sizeof(hint),
			 "no such endpoint; the API's paths start with /v1/canary/, as in "
			 "/v1/canary/%.*s", (int)rest, example);
		http_problem(req, 404, "not-found", "Not found", hint);
		return;
	}
	http_problem(req, 404, "not-found", "Not found",
		     "no such endpoint; see the API documentation for the routes");
}

static void http_start(struct http_req *req, struct lws *wsi, const char *uri)
{
	req_reset(req);
	req->wsi = wsi;
	req->srv = server_of(wsi);
	snprintf(req->uri, sizeof(req->uri), "%s", uri ? uri : "");

	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
		req->method = METHOD_GET;
	else if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
		req->method = METHOD_POST;
	else
		req->method = METHOD_OTHER;
	if (req->method == METHOD_OTHER)
		req->close_after = 1;
	route(req);
}

int http_callback(struct lws *wsi, enum lws_callback_reasons reason,
		  void *user, void *in, size_t len)
{
	struct http_req *req = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
		/* A stopping server refuses new connections at accept. */
		return server_of(wsi)->shutting_down ? 1 : 0;

	case LWS_CALLBACK_PROTOCOL_INIT:
		/* Once per vhost, before the first connection. */
		return rest_init(lws_context_user(lws_get_context(wsi)),
				 lws_get_context(wsi));

	case LWS_CALLBACK_PROTOCOL_DESTROY:
		rest_destroy(lws_context_user(lws_get_context(wsi)));
		return 0;

	case LWS_CALLBACK_HTTP:
		http_start(req, wsi, in);
		return 0;

	case LWS_CALLBACK_HTTP_BODY:
		return receive_body(req, in, len);

	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		finish_ingest(req);
		return 0;

	case LWS_CALLBACK_HTTP_WRITEABLE:
		return http_writable(req);

	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		/* lws_cancel_service() from the signal log's writer thread:
		 * every protocol gets this, and only this one acts on it. */
		slog_deliver(server_of(wsi)->slog);
		return 0;

	case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
		/* lws hands over the listener's SSL_CTX, for reloads. */
		return tls_server_ctx_ready(user);

	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (req)
			req_reset(req);
		return 0;

	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}
