/*
 * Per-key rate limits: a token bucket for each API key, refilled at
 * rate_limit_per_s tokens a second up to rate_limit_burst. Every REST
 * read and every HTTP ingest request takes one token.
 * Each batch on the canary.v1.ingest WebSocket takes one token too, and
 * counters.ws_ingest_rate_limited counts the batches rejected there.
 *
 * Memory is bounded: the table stores at most RL_TABLE_MAX keys. When it
 * is full, a new key takes the slot of a key whose bucket has refilled
 * completely (forgetting it changes nothing), else of the key used
 * longest ago among a few looked at (that key then starts again with a
 * full bucket). Used from the event loop thread only.
 */
#ifndef CANARY_RATELIMIT_H
#define CANARY_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RL_TABLE_MAX 4096

struct rl_table;

/* The result of one request: the fields of the RateLimit headers. */
struct rl_result {
	int allowed;
	uint64_t limit;         /* RateLimit-Limit: the burst */
	uint64_t remaining;     /* RateLimit-Remaining: whole tokens left */
	uint64_t reset_s;       /* RateLimit-Reset: seconds until full */
	uint64_t retry_after_s; /* Retry-After when not allowed: seconds
				   until one token is back */
};

/* Returns an empty table for at most max_keys keys (0 means
 * RL_TABLE_MAX), or NULL when out of memory. */
struct rl_table *rl_new(uint64_t per_s, uint64_t burst, size_t max_keys);
void rl_free(struct rl_table *t);

/* Changes the rates; buckets keep their tokens, capped at the new burst. */
void rl_configure(struct rl_table *t, uint64_t per_s, uint64_t burst);

/*
 * Takes one token from key's bucket at time now_us (monotonic
 * microseconds) and fills out. A key never seen starts with a full
 * bucket.
 */
void rl_take(struct rl_table *t, const char *key, int64_t now_us,
	     struct rl_result *out);

/* Formats the RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset
 * header lines ("Name: value\r\n") into buf. Returns the length. */
size_t rl_format_headers(const struct rl_result *r, char *buf, size_t cap);

/* Returns the number of keys in the table. */
size_t rl_size(const struct rl_table *t);

#endif
