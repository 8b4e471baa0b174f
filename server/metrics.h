/*
 * GET /metrics: counters and gauges in the Prometheus text exposition
 * format (version 0.0.4), every name prefixed canary_. Labels take only
 * values from fixed lists (event types, routes, statuses, reasons), never
 * a key, a domain or an address, so the number of series is bounded.
 */
#ifndef CANARY_METRICS_H
#define CANARY_METRICS_H

#include "http.h"

/* Sends the metrics page. */
void metrics_respond(struct http_req *req);

/* Returns the counter slot of an HTTP status (HTTP_STATUS_SLOTS - 1 for
 * statuses without a slot of their own). */
unsigned metrics_status_slot(unsigned status);

/* Counts a response on route with status. */
void metrics_count_response(struct server *srv, enum http_route_id route,
			    unsigned status);

#endif
