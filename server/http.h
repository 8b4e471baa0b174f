/*
 * HTTP routes: ingest, the REST lists, /healthz and /metrics, with
 * problem+json (RFC 9457) errors and Bearer key checks.
 */
#ifndef CANARY_HTTP_H
#define CANARY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "server.h"

/* The lws protocol callback for plain HTTP. */
int http_callback(struct lws *wsi, enum lws_callback_reasons reason,
		  void *user, void *in, size_t len);

size_t http_session_size(void);

/* ---- used by the route handlers in rest.c ---- */

struct http_req;

/*
 * Sends a response with a body that the request takes ownership of
 * (malloc'd). extra_headers holds "Name: value\r\n" lines or is NULL.
 */
void http_respond(struct http_req *req, unsigned status, const char *ctype,
		  char *body, size_t len, const char *extra_headers);

/* Sends a problem document; detail is copied. */
void http_problem(struct http_req *req, unsigned status, const char *type_slug,
		  const char *title, const char *detail);

/* Sends a JSON value (reference stolen) with the given status. */
void http_respond_json(struct http_req *req, unsigned status, json_t *value);

struct lws *http_req_wsi(struct http_req *req);

/* Lists in rep each item of b observed more than max_ahead_s after
 * now_us (no limit when max_ahead_s is 0). Returns 0 when every item
 * passes, else -1. */
struct sg_batch;
struct sg_batch_report;
int http_check_clock(uint64_t max_ahead_s, int64_t now_us,
		     const struct sg_batch *b, struct sg_batch_report *rep);

/* Lists in rep each item of b whose domain is not in domains (a key's
 * comma-separated list). Returns 0 when every item passes, else -1. */
int http_check_tenant_domains(const char *domains, const struct sg_batch *b,
			      struct sg_batch_report *rep);

/* Handlers in rest.c. The key has been checked for the read scope;
 * tenant_domains is the key's domain list or NULL. */
void rest_list_signals(struct http_req *req, int threat_feed,
		       const char *tenant_domains);
void rest_list_campaigns(struct http_req *req, const char *tenant_domains);
void rest_stats(struct http_req *req, const char *tenant_domains);
void rest_healthz(struct http_req *req);

/*
 * Sets up what the REST reads and the rate limits need: the store's
 * analytics settings from the configuration, the rate limiter and a
 * timer that prunes old aggregates. Returns 0, or -1 when out of memory.
 * rest_destroy undoes it; both are called once, on the event loop
 * thread.
 */
int rest_init(struct server *srv, struct lws_context *ctx);
void rest_destroy(struct server *srv);

#endif
