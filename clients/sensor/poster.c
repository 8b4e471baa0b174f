/*
 * The ingest client: one reused libcurl easy handle, so that batches share
 * a keep-alive connection, and a retry loop around it. See poster.h.
 */
#include "poster.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#define PS_PATH "/v1/canary/signals"
#define PS_MAX_RESPONSE (64 * 1024)
#define PS_BACKOFF_FIRST_MS 500
#define PS_BACKOFF_CAP_MS 30000
#define PS_RETRY_AFTER_CAP_S 120
#define PS_CONNECT_TIMEOUT_S 10L
#define PS_REQUEST_TIMEOUT_S 120L

struct ps_poster {
	CURL *curl;
	struct curl_slist *headers;
	char *url;
	char *auth_header;      /* "Authorization: Bearer KEY", wiped on free */
	char *cacert;
	volatile sig_atomic_t *stop_requests;
	uint64_t retries;
	/* The response to the request in flight. */
	char response[PS_MAX_RESPONSE + 1];
	size_t response_len;
	long retry_after_s;     /* -1 when the response has none */
	char curl_error[CURL_ERROR_SIZE];
};

static size_t ps_on_body(char *data, size_t size, size_t nmemb, void *userp)
{
	struct ps_poster *p = userp;
	size_t n = size * nmemb;
	size_t room = PS_MAX_RESPONSE - p->response_len;

	/* A longer response is cut short, and the rest is read and dropped. */
	if (n < room)
		room = n;
	memcpy(p->response + p->response_len, data, room);
	p->response_len += room;
	p->response[p->response_len] = '\0';
	return n;
}

static size_t ps_on_header(char *data, size_t size, size_t nmemb, void *userp)
{
	struct ps_poster *p = userp;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:";
	char value[32];
	size_t vlen;
	char *end = NULL;
	long secs;

	if (n <= sizeof(name) - 1 || strncasecmp(data, name, sizeof(name) - 1))
		return n;

	vlen = n - (sizeof(name) - 1);
	if (vlen >= sizeof(value))
		return n;
	memcpy(value, data + sizeof(name) - 1, vlen);
	value[vlen] = '\0';

	/* Only the delta-seconds form; an HTTP date falls back to backoff. */
	errno = 0;
	secs = strtol(value, &end, 10);
	while (end && (*end == ' ' || *end == '\r' || *end == '\n'))
		end++;
	if (!errno && end && *end == '\0' && secs >= 0)
		p->retry_after_s = secs > PS_RETRY_AFTER_CAP_S ? PS_RETRY_AFTER_CAP_S : secs;
	return n;
}

/* Returns true when text is safe inside an HTTP header value. */
static bool ps_header_safe(const char *text)
{
	for (; *text; text++) {
		if ((unsigned char)*text < 0x20 || *text == 0x7f)
			return false;
	}
	return true;
}

static char *ps_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (!s)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

static const char *const ps_fixed_headers[] = {
	"Accept: application/json, application/problem+json",
	/* Without this, curl waits for "100 Continue" before large bodies. */
	"Expect:",
};

struct ps_poster *ps_poster_new(const struct ps_options *opt, char *err,
				size_t errlen)
{
	struct ps_poster *p = NULL;
	char *base = NULL;
	size_t blen;

	if (strncmp(opt->url, "http://", 7) && strncmp(opt->url, "https://", 8)) {
		snprintf(err, errlen, "--url %.200s: expected http://HOST:PORT or "
			 "https://HOST:PORT", opt->url);
		goto fail;
	}
	if (!opt->key[0] || !ps_header_safe(opt->key)) {
		snprintf(err, errlen, "the key is empty or contains control "
			 "characters: pass the key exactly as canaryd printed it");
		goto fail;
	}

	p = calloc(1, sizeof(*p));
	if (!p)
		goto nomem;
	p->stop_requests = opt->stop_requests;

	/* The base URL may end in '/'; the path is appended once. */
	base = strdup(opt->url);
	if (!base)
		goto nomem;
	blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		base[--blen] = '\0';
	p->url = ps_join(base, PS_PATH);
	p->auth_header = ps_join("Authorization: Bearer ", opt->key);
	p->cacert = opt->cacert ? strdup(opt->cacert) : NULL;
	if (!p->url || !p->auth_header || (opt->cacert && !p->cacert))
		goto nomem;

	p->headers = curl_slist_append(NULL, p->auth_header);
	if (!p->headers ||
	    !curl_slist_append(p->headers, opt->msgpack ? "Content-Type: application/msgpack"
							: "Content-Type: application/json"))
		goto nomem;
	for (size_t i = 0; i < sizeof(ps_fixed_headers) / sizeof(ps_fixed_headers[0]); i++) {
		if (!curl_slist_append(p->headers, ps_fixed_headers[i]))
			goto nomem;
	}

	p->curl = curl_easy_init();
	if (!p->curl)
		goto nomem;
	curl_easy_setopt(p->curl, CURLOPT_URL, p->url);
	curl_easy_setopt(p->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, p->headers);
	curl_easy_setopt(p->curl, CURLOPT_USERAGENT, "canary-sensor/" CANARY_VERSION);
	curl_easy_setopt(p->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(p->curl, CURLOPT_CONNECTTIMEOUT, PS_CONNECT_TIMEOUT_S);
	curl_easy_setopt(p->curl, CURLOPT_TIMEOUT, PS_REQUEST_TIMEOUT_S);
	curl_easy_setopt(p->curl, CURLOPT_WRITEFUNCTION, ps_on_body);
	curl_easy_setopt(p->curl, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(p->curl, CURLOPT_HEADERFUNCTION, ps_on_header);
	curl_easy_setopt(p->curl, CURLOPT_HEADERDATA, p);
	curl_easy_setopt(p->curl, CURLOPT_ERRORBUFFER, p->curl_error);
	if (p->cacert)
		curl_easy_setopt(p->curl, CURLOPT_CAINFO, p->cacert);

	free(base);
	return p;

nomem:
	snprintf(err, errlen, "out of memory");
fail:
	free(base);
	ps_poster_free(p);
	return NULL;
}

void ps_poster_free(struct ps_poster *p)
{
	if (!p)
		return;
	if (p->curl)
		curl_easy_cleanup(p->curl);
	curl_slist_free_all(p->headers);
	if (p->auth_header) {
		OPENSSL_cleanse(p->auth_header, strlen(p->auth_header));
		free(p->auth_header);
	}
	free(p->url);
	free(p->cacert);
	free(p);
}

uint64_t ps_retry_count(const struct ps_poster *p)
{
	return p->retries;
}

/* Copies text into out, replacing control characters with spaces. */
static void ps_copy_clean(char *out, size_t cap, const char *text)
{
	size_t i = 0;

	for (; text && text[i] && i + 1 < cap; i++)
		out[i] = (unsigned char)text[i] < 0x20 ? ' ' : text[i];
	out[i] = '\0';
}

static uint64_t ps_json_u64(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	return json_is_integer(v) && json_integer_value(v) >= 0 ?
	       (uint64_t)json_integer_value(v) : 0;
}

/* Reads {"accepted":N,"first_seq":A,"last_seq":B} when the answer has it. */
static void ps_parse_accepted(struct ps_poster *p, struct ps_result *res)
{
	json_t *doc = json_loadb(p->response, p->response_len, 0, NULL);

	if (json_is_object(doc)) {
		res->accepted = ps_json_u64(doc, "accepted");
		res->first_seq = ps_json_u64(doc, "first_seq");
		res->last_seq = ps_json_u64(doc, "last_seq");
	}
	json_decref(doc);
}

/* Reads an RFC 9457 problem document: title, detail and `errors`. */
static void ps_parse_problem(struct ps_poster *p, struct ps_result *res)
{
	json_t *doc = json_loadb(p->response, p->response_len, 0, NULL);
	const char *title = json_string_value(json_object_get(doc, "title"));
	const char *detail = json_string_value(json_object_get(doc, "detail"));
	json_t *errors = json_object_get(doc, "errors");
	json_t *item = NULL;
	size_t i;
	char joined[sizeof(res->detail)];

	if (!json_is_object(doc)) {
		snprintf(joined, sizeof(joined), "HTTP %ld without a problem document",
			 res->http_status);
		ps_copy_clean(res->detail, sizeof(res->detail), joined);
		goto out;
	}
	snprintf(joined, sizeof(joined), "%s%s%s", title ? title : "",
		 title && detail ? ": " : "", detail ? detail : "");
	ps_copy_clean(res->detail, sizeof(res->detail), joined);

	json_array_foreach(errors, i, item) {
		struct ps_problem_item *dst = NULL;
		json_t *index = json_object_get(item, "index");

		if (res->n_items == PS_MAX_PROBLEM_ITEMS) {
			res->more_items = true;
			break;
		}
		dst = &res->items[res->n_items++];
		dst->index = json_is_integer(index) ? json_integer_value(index) : -1;
		ps_copy_clean(dst->field, sizeof(dst->field),
			      json_string_value(json_object_get(item, "field")));
		ps_copy_clean(dst->reason, sizeof(dst->reason),
			      json_string_value(json_object_get(item, "reason")));
	}

out:
	json_decref(doc);
}

/* Returns true for curl failures that a retry cannot fix. */
static bool ps_curl_fatal(CURLcode rc)
{
	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_OUT_OF_MEMORY:
		return true;
	default:
		return false;
	}
}

static bool ps_status_transient(long status)
{
	return status == 408 || status == 429 || status >= 500;
}

/* Returns the wait before retry number `attempt` (from 1), in ms. */
static long ps_backoff_ms(unsigned attempt, long retry_after_s)
{
	long base = PS_BACKOFF_FIRST_MS;
	unsigned char noise[2] = { 0, 0 };
	long wait;

	for (unsigned i = 1; i < attempt && base < PS_BACKOFF_CAP_MS; i++)
		base *= 2;
	if (base > PS_BACKOFF_CAP_MS)
		base = PS_BACKOFF_CAP_MS;

	/* "Equal jitter": half fixed, half random, so that many sensors that
	 * failed together do not come back together. */
	if (RAND_bytes(noise, sizeof(noise)) != 1)
		noise[0] = noise[1] = 0x80;
	wait = base / 2 + (long)((noise[0] << 8 | noise[1]) % (unsigned)(base / 2 + 1));

	if (retry_after_s >= 0 && retry_after_s * 1000 > wait)
		wait = retry_after_s * 1000;
	return wait;
}

/* Sleeps ms milliseconds in short steps; returns -1 if asked to stop. */
static int ps_sleep_ms(struct ps_poster *p, long ms)
{
	while (ms > 0) {
		long step = ms < 100 ? ms : 100;
		struct timespec ts = { 0, step * 1000000L };

		if (p->stop_requests && *p->stop_requests >= 2)
			return -1;
		nanosleep(&ts, NULL);
		ms -= step;
	}
	return p->stop_requests && *p->stop_requests >= 2 ? -1 : 0;
}

/* Sends the request once. Returns the CURLcode; fills http_status. */
static CURLcode ps_send_once(struct ps_poster *p, const char *body, size_t len,
			     struct ps_result *res)
{
	CURLcode rc;

	p->response_len = 0;
	p->response[0] = '\0';
	p->retry_after_s = -1;
	p->curl_error[0] = '\0';
	res->http_status = 0;

	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);

	rc = curl_easy_perform(p->curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &res->http_status);
	return rc;
}

/*
 * Returns the poster's headers plus an Idempotency-Key naming this batch,
 * so that the server replies to a retry of a batch it already committed
 * with that commit's seqs instead of storing the batch twice. NULL when out of memory
 * or out of random bytes.
 */
static struct curl_slist *ps_batch_headers(const struct ps_poster *p)
{
	static const char digits[] = "0123456789abcdef";
	char line[64] = "Idempotency-Key: ";
	size_t at = strlen(line);
	unsigned char id[16];
	struct curl_slist *list = NULL;

	if (RAND_bytes(id, sizeof(id)) != 1)
		return NULL;
	for (size_t i = 0; i < sizeof(id); i++) {
		line[at++] = digits[id[i] >> 4];
		line[at++] = digits[id[i] & 15];
	}
	line[at] = '\0';
	for (const struct curl_slist *h = p->headers; h; h = h->next) {
		struct curl_slist *more = curl_slist_append(list, h->data);

		if (!more) {
			curl_slist_free_all(list);
			return NULL;
		}
		list = more;
	}
	return curl_slist_append(list, line) ? list : (curl_slist_free_all(list), NULL);
}

static enum ps_status ps_post_with_key(struct ps_poster *p, const char *body,
				       size_t len, struct ps_result *res);

enum ps_status ps_post(struct ps_poster *p, const char *body, size_t len,
		       struct ps_result *res)
{
	struct curl_slist *headers = ps_batch_headers(p);
	enum ps_status status;

	if (!headers) {
		memset(res, 0, sizeof(*res));
		ps_copy_clean(res->detail, sizeof(res->detail),
			      "out of memory or random bytes for the batch's Idempotency-Key");
		return PS_FATAL;
	}
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, headers);
	status = ps_post_with_key(p, body, len, res);
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, p->headers);
	curl_slist_free_all(headers);
	return status;
}

static enum ps_status ps_post_with_key(struct ps_poster *p, const char *body,
				       size_t len, struct ps_result *res)
{
	unsigned attempt = 0;

	for (;;) {
		CURLcode rc;
		long wait_ms;
		char why[CURL_ERROR_SIZE + sizeof(res->detail) + 32];

		memset(res, 0, sizeof(*res));
		rc = ps_send_once(p, body, len, res);

		if (rc != CURLE_OK) {
			snprintf(why, sizeof(why), "%s", p->curl_error[0] ? p->curl_error
									  : curl_easy_strerror(rc));
			if (ps_curl_fatal(rc)) {
				ps_copy_clean(res->detail, sizeof(res->detail), why);
				return PS_FATAL;
			}
		} else if (res->http_status >= 200 && res->http_status < 300) {
			ps_parse_accepted(p, res);
			return PS_ACCEPTED;
		} else if (!ps_status_transient(res->http_status)) {
			ps_parse_problem(p, res);
			switch (res->http_status) {
			case 400:
				return PS_REJECTED;
			case 401:
			case 403:
				return PS_AUTH;
			case 413:
				return PS_TOO_LARGE;
			default:
				return PS_FATAL;
			}
		} else {
			ps_parse_problem(p, res);
			snprintf(why, sizeof(why), "HTTP %ld (%s)", res->http_status,
				 res->detail);
		}

		/* The same body goes out again under the same Idempotency-Key,
		 * so a batch whose response was lost is not stored twice. */
		attempt++;
		p->retries++;
		wait_ms = ps_backoff_ms(attempt, p->retry_after_s);
		fprintf(stderr, "canary-sensor: posting a batch failed: %s; "
			"retry %u in %.1f s\n", why, attempt, wait_ms / 1000.0);
		if (ps_sleep_ms(p, wait_ms) != 0) {
			ps_copy_clean(res->detail, sizeof(res->detail), why);
			return PS_INTERRUPTED;
		}
	}
}
