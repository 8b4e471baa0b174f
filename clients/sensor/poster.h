/*
 * Posting signal batches to canaryd's ingest endpoint with libcurl.
 *
 * One POST carries one JSON array to URL + /v1/canary/signals. Transient
 * failures (connection errors, 408, 429, 5xx including 507) are retried
 * with the same body, with exponential backoff and jitter capped at
 * 30 seconds, and a Retry-After header is honoured up to 120 seconds.
 * Every other response is returned to the caller, which decides what to
 * drop.
 *
 * Each batch carries a random Idempotency-Key that its retries repeat, so
 * a batch the server committed but whose 202 answer was lost (connection
 * reset, timeout) is answered from that commit and stored once. The
 * server keeps batch keys as long as the batch's signals.
 */
#ifndef CANARY_SENSOR_POSTER_H
#define CANARY_SENSOR_POSTER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ps_status {
	PS_ACCEPTED,            /* 2xx: the batch is stored */
	PS_REJECTED,            /* 400: the problem document is in the result */
	PS_TOO_LARGE,           /* 413: split the batch */
	PS_AUTH,                /* 401 or 403: the key is wrong or lacks scope */
	PS_FATAL,               /* retrying cannot help (404, TLS failure, ...) */
	PS_INTERRUPTED          /* the caller asked to stop while retrying */
};

/* Items of a 400 problem document that are copied into the result. */
#define PS_MAX_PROBLEM_ITEMS 64

struct ps_problem_item {
	long long index;        /* item index from 0; -1 when absent */
	char field[48];
	char reason[200];
};

struct ps_result {
	long http_status;       /* 0 when no response was received */
	uint64_t accepted;      /* 202: members of the response */
	uint64_t first_seq;
	uint64_t last_seq;
	char detail[320];       /* error text, control characters removed */
	size_t n_items;
	struct ps_problem_item items[PS_MAX_PROBLEM_ITEMS];
	bool more_items;        /* the document listed more than n_items */
};

struct ps_options {
	const char *url;        /* http:// or https:// base URL */
	const char *key;        /* bearer key */
	const char *cacert;     /* PEM bundle, or NULL for the system store */
	bool msgpack;           /* bodies are application/msgpack, not JSON */
	/* Incremented by the caller's signal handler; the poster stops
	 * retrying once it reaches 2 (a second SIGINT or SIGTERM). */
	volatile sig_atomic_t *stop_requests;
};

struct ps_poster;

/*
 * Creates a poster. curl_global_init() must have been called. The options'
 * strings are copied. Returns NULL with the reason in err (errlen bytes).
 */
struct ps_poster *ps_poster_new(const struct ps_options *opt, char *err,
				size_t errlen);

/* Frees the poster and wipes its copy of the key. */
void ps_poster_free(struct ps_poster *p);

/*
 * Posts body (len bytes of a JSON array, or of a MessagePack array of maps
 * when the options ask for MessagePack), retrying transient failures as
 * described above, and fills res. Returns the final status.
 */
enum ps_status ps_post(struct ps_poster *p, const char *body, size_t len,
		       struct ps_result *res);

/* Returns how many retries ps_post has made so far. */
uint64_t ps_retry_count(const struct ps_poster *p);

#endif
