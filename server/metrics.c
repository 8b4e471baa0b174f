#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "outq.h"
#include "ratelimit.h"

/* Statuses with a counter slot of their own; the slot after them counts
 * the rest as status "other". */
static const unsigned status_codes[HTTP_STATUS_SLOTS - 1] = {
	200, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 408,
	413, 415, 416, 426, 429, 431, 500, 503, 507, 501,
};

static const char *const route_names[ROUTE_COUNT] = {
	"signals_get", "signals_post", "threat_feed", "campaigns", "stats",
	"healthz", "metrics", "stream", "console", "other",
};

static const char *const close_reason_names[CLOSE_REASON_COUNT] = {
	"slow_consumer", "idle", "auth", "bad_request", "revoked", "limit",
	"shutdown", "peer",
};

/* Reasons of the error statuses of POST /v1/canary/signals. */
static const struct {
	unsigned status;
	const char *reason;
} ingest_rejections[] = {
	{ 400, "invalid" },
	{ 401, "unauthenticated" },
	{ 403, "forbidden" },
	{ 413, "too_large" },
	{ 415, "unsupported_media_type" },
	{ 429, "rate_limited" },
	{ 503, "commit_failed" },
	{ 507, "store_full" },
};

unsigned metrics_status_slot(unsigned status)
{
	for (unsigned i = 0; i < HTTP_STATUS_SLOTS - 1; i++)
		if (status_codes[i] == status)
			return i;
	return HTTP_STATUS_SLOTS - 1;
}

void metrics_count_response(struct server *srv, enum http_route_id route,
			    unsigned status)
{
	if (route >= ROUTE_COUNT)
		route = ROUTE_OTHER;
	srv->counters.http_responses[route][metrics_status_slot(status)]++;
}

static void metric_head(FILE *f, const char *name, const char *type,
			const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_one(FILE *f, const char *name, const char *type,
		       const char *help, uint64_t value)
{
	metric_head(f, name, type, help);
	fprintf(f, "%s %" PRIu64 "\n", name, value);
}

static void write_ingest(FILE *f, const struct server *srv,
			 const struct slog_stats *ls)
{
	const uint64_t *post = srv->counters.http_responses[ROUTE_SIGNALS_POST];
	uint64_t cumulative = 0;

	metric_head(f, "canary_signals_ingested_total", "counter",
		    "Signals committed, by event type.");
	for (int i = 0; i < SG_EVENT_COUNT; i++)
		fprintf(f, "canary_signals_ingested_total{event_type=\"%s\"} %" PRIu64 "\n",
			sg_event_type_names[i], ls->by_event_type[i]);
	metric_one(f, "canary_ingest_batches_total", "counter",
		   "Batches committed.", ls->batches);
	metric_one(f, "canary_ingest_queued_batches", "gauge",
		   "Batches waiting for the writer thread.", ls->queued);
	metric_one(f, "canary_commits_total", "counter",
		   "LMDB write transactions of the signal log.", ls->commits);
	metric_one(f, "canary_commit_failures_total", "counter",
		   "Batches whose commit failed.", ls->failures);
	metric_one(f, "canary_ingest_rejected_batches_total", "counter",
		   "Batches rejected as invalid.", srv->counters.rejected_batches);

	metric_head(f, "canary_ingest_rejected_total", "counter",
		    "HTTP ingest requests answered with an error, by reason.");
	for (size_t i = 0; i < sizeof ingest_rejections / sizeof ingest_rejections[0]; i++)
		fprintf(f, "canary_ingest_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
			ingest_rejections[i].reason,
			post[metrics_status_slot(ingest_rejections[i].status)]);
	metric_one(f, "canary_ws_ingest_rate_limited_total", "counter",
		   "WebSocket ingest batches rejected by the rate limit.",
		   srv->counters.ws_ingest_rate_limited);

	metric_head(f, "canary_commit_duration_seconds", "histogram",
		    "Time of one LMDB commit of the signal log.");
	for (int i = 0; i <= SLOG_COMMIT_BOUNDS; i++) {
		cumulative += ls->commit_hist[i];
		if (i < SLOG_COMMIT_BOUNDS)
			fprintf(f, "canary_commit_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
				(double)slog_commit_bounds_us[i] / 1e6, cumulative);
		else
			fprintf(f, "canary_commit_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
				cumulative);
	}
	fprintf(f, "canary_commit_duration_seconds_sum %.6f\n",
		(double)ls->commit_us_total / 1e6);
	fprintf(f, "canary_commit_duration_seconds_count %" PRIu64 "\n", cumulative);
}

static void write_stream(FILE *f, const struct server *srv)
{
	const struct server_counters *c = &srv->counters;

	metric_one(f, "canary_deliveries_total", "counter",
		   "Signal messages queued to subscribers.", c->deliveries);
	metric_one(f, "canary_replayed_total", "counter",
		   "Signal messages queued from replay.", c->replayed);
	metric_one(f, "canary_ws_connections", "gauge",
		   "Open WebSocket connections.", c->ws_connections);
	metric_one(f, "canary_ws_connections_total", "counter",
		   "WebSocket connections accepted.", c->ws_connections_total);
	metric_one(f, "canary_subscriptions", "gauge", "Open subscriptions.",
		   c->subscriptions);
	metric_one(f, "canary_outbound_queue_bytes", "gauge",
		   "Bytes waiting in the outbound queues of all connections.",
		   outq_bytes_total());

	metric_head(f, "canary_ws_closes_total", "counter",
		    "WebSocket connections closed, by reason.");
	for (int i = 0; i < CLOSE_REASON_COUNT; i++)
		fprintf(f, "canary_ws_closes_total{reason=\"%s\"} %" PRIu64 "\n",
			close_reason_names[i], c->closes[i]);
}

static void write_http(FILE *f, const struct server *srv)
{
	metric_one(f, "canary_http_responses_total", "counter",
		   "HTTP responses sent.", srv->counters.http_requests);
	metric_head(f, "canary_http_requests_total", "counter",
		    "HTTP requests answered, by route and status.");
	for (int r = 0; r < ROUTE_COUNT; r++) {
		for (unsigned s = 0; s < HTTP_STATUS_SLOTS; s++) {
			uint64_t n = srv->counters.http_responses[r][s];
			char status[8];

			if (n == 0)
				continue;
			if (s < HTTP_STATUS_SLOTS - 1)
				snprintf(status, sizeof status, "%u", status_codes[s]);
			else
				snprintf(status, sizeof status, "other");
			fprintf(f, "canary_http_requests_total{route=\"%s\",status=\"%s\"} %" PRIu64 "\n",
				route_names[r], status, n);
		}
	}
	metric_one(f, "canary_rate_limit_keys", "gauge",
		   "Keys with a token bucket in the rate limiter's table.",
		   srv->ratelimit ? rl_size(srv->ratelimit) : 0);
}

void metrics_respond(struct http_req *req)
{
	struct server *srv = server_of(http_req_wsi(req));
	struct slog_stats ls;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f) {
		http_problem(req, 503, "unavailable", "Service unavailable",
			     "out of memory; retry later");
		return;
	}
	slog_get_stats(srv->slog, &ls);
	write_ingest(f, srv, &ls);
	write_stream(f, srv);
	write_http(f, srv);
	metric_one(f, "canary_head_seq", "gauge", "Last committed seq.",
		   st_head_seq(srv->st));
	if (fclose(f) != 0 || !text) {
		free(text);
		http_problem(req, 503, "unavailable", "Service unavailable",
			     "out of memory; retry later");
		return;
	}
	http_respond(req, 200, "text/plain; version=0.0.4", text, len, NULL);
}
