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

/* Handlers in rest.c. The key has been checked for the read scope;
 * tenant_domains is the key's domain list or NULL. */
void rest_list_signals(struct http_req *req, int threat_feed,
		       const char *tenant_domains);
void rest_healthz(struct http_req *req);
void rest_metrics(struct http_req *req);

#endif
