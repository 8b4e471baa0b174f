/*
 * Token buckets in fixed-point micro-tokens: one token is 1,000,000, so
 * one microsecond at per_s tokens a second refills exactly per_s
 * micro-tokens and no rounding builds up.
 *
 * The table is an array of slots with a chained hash index over it. The
 * chains hold slot numbers, so no slot ever moves and eviction unlinks
 * one slot from one chain.
 */
#include "ratelimit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RL_KEY_MAX 32
#define RL_TOKEN UINT64_C(1000000)
#define RL_NONE UINT32_MAX
/* Slots looked at when a full table needs one. */
#define RL_EVICT_SAMPLE 8

struct rl_slot {
	char key[RL_KEY_MAX + 1];       /* "" for a free slot */
	uint64_t tokens;                /* micro-tokens */
	int64_t updated_us;             /* time of the last refill */
	uint32_t next;                  /* next slot in the chain */
};

struct rl_table {
	uint64_t per_s;
	uint64_t burst;
	struct rl_slot *slots;
	uint32_t *heads;                /* chain heads, nbuckets of them */
	size_t nslots;
	size_t nbuckets;                /* a power of two */
	size_t used;
	size_t hand;                    /* where the eviction sample starts */
};

static uint64_t rl_hash(const char *key)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= UINT64_C(1099511628211);
	}
	return h;
}

struct rl_table *rl_new(uint64_t per_s, uint64_t burst, size_t max_keys)
{
	struct rl_table *t = calloc(1, sizeof *t);

	if (!t)
		return NULL;
	t->nslots = max_keys ? max_keys : RL_TABLE_MAX;
	t->nbuckets = 1;
	while (t->nbuckets < t->nslots)
		t->nbuckets *= 2;
	t->slots = calloc(t->nslots, sizeof *t->slots);
	t->heads = malloc(t->nbuckets * sizeof *t->heads);
	if (!t->slots || !t->heads) {
		rl_free(t);
		return NULL;
	}
	for (size_t i = 0; i < t->nbuckets; i++)
		t->heads[i] = RL_NONE;
	rl_configure(t, per_s, burst);
	return t;
}

void rl_free(struct rl_table *t)
{
	if (!t)
		return;
	free(t->slots);
	free(t->heads);
	free(t);
}

void rl_configure(struct rl_table *t, uint64_t per_s, uint64_t burst)
{
	t->per_s = per_s ? per_s : 1;
	t->burst = burst ? burst : 1;
	for (size_t i = 0; i < t->nslots; i++)
		if (t->slots[i].tokens > t->burst * RL_TOKEN)
			t->slots[i].tokens = t->burst * RL_TOKEN;
}

size_t rl_size(const struct rl_table *t)
{
	return t->used;
}

/* Brings the slot's tokens up to now. */
static void rl_refill(const struct rl_table *t, struct rl_slot *s, int64_t now_us)
{
	uint64_t cap = t->burst * RL_TOKEN;
	uint64_t elapsed;

	if (now_us <= s->updated_us)
		return;
	elapsed = (uint64_t)(now_us - s->updated_us);
	s->updated_us = now_us;

	/* Past the time a full refill takes, the bucket is full: this cap
	 * also keeps elapsed * per_s from overflowing. */
	if (elapsed >= cap / t->per_s + 1)
		s->tokens = cap;
	else
		s->tokens = s->tokens + elapsed * t->per_s > cap ?
			    cap : s->tokens + elapsed * t->per_s;
}

static void rl_unlink(struct rl_table *t, uint32_t idx)
{
	uint32_t *link = &t->heads[rl_hash(t->slots[idx].key) & (t->nbuckets - 1)];

	while (*link != RL_NONE && *link != idx)
		link = &t->slots[*link].next;
	if (*link == idx)
		*link = t->slots[idx].next;
	t->slots[idx].key[0] = '\0';
	t->used--;
}

/* Picks a slot for a new key: a free one, else an evicted one. */
static uint32_t rl_free_slot(struct rl_table *t, int64_t now_us)
{
	uint32_t victim = RL_NONE;

	if (t->used < t->nslots) {
		for (size_t i = 0; i < t->nslots; i++) {
			size_t at = (t->hand + i) % t->nslots;

			if (!t->slots[at].key[0]) {
				t->hand = at + 1;
				return (uint32_t)at;
			}
		}
	}

	for (size_t i = 0; i < RL_EVICT_SAMPLE; i++) {
		uint32_t at = (uint32_t)((t->hand + i) % t->nslots);
		struct rl_slot *s = &t->slots[at];

		rl_refill(t, s, now_us);
		if (s->tokens == t->burst * RL_TOKEN) {
			victim = at;
			break;
		}
		if (victim == RL_NONE || s->updated_us < t->slots[victim].updated_us)
			victim = at;
	}
	t->hand = (t->hand + RL_EVICT_SAMPLE) % t->nslots;
	rl_unlink(t, victim);
	return victim;
}

static struct rl_slot *rl_lookup(struct rl_table *t, const char *key,
				 int64_t now_us)
{
	size_t b = rl_hash(key) & (t->nbuckets - 1);
	uint32_t idx = t->heads[b];
	struct rl_slot *s;

	while (idx != RL_NONE && strcmp(t->slots[idx].key, key))
		idx = t->slots[idx].next;
	if (idx != RL_NONE)
		return &t->slots[idx];

	idx = rl_free_slot(t, now_us);
	s = &t->slots[idx];
	snprintf(s->key, sizeof s->key, "%s", key);
	s->tokens = t->burst * RL_TOKEN;
	s->updated_us = now_us;
	s->next = t->heads[b];
	t->heads[b] = idx;
	t->used++;
	return s;
}

void rl_take(struct rl_table *t, const char *key, int64_t now_us,
	     struct rl_result *out)
{
	struct rl_slot *s = rl_lookup(t, key, now_us);
	uint64_t cap = t->burst * RL_TOKEN;

	rl_refill(t, s, now_us);
	out->allowed = s->tokens >= RL_TOKEN;
	if (out->allowed)
		s->tokens -= RL_TOKEN;
	out->limit = t->burst;
	out->remaining = s->tokens / RL_TOKEN;
	/* Seconds, rounded up, until the bucket is full, or contains one token. */
	out->reset_s = ((cap - s->tokens) / t->per_s + 999999) / 1000000;
	out->retry_after_s = out->allowed ? 0 :
		((RL_TOKEN - s->tokens) / t->per_s + 999999) / 1000000;
	if (!out->allowed && out->retry_after_s == 0)
		out->retry_after_s = 1;
}

size_t rl_format_headers(const struct rl_result *r, char *buf, size_t cap)
{
	int n = snprintf(buf, cap,
			 "RateLimit-Limit: %" PRIu64 "\r\n"
			 "RateLimit-Remaining: %" PRIu64 "\r\n"
			 "RateLimit-Reset: %" PRIu64 "\r\n",
			 r->limit, r->remaining, r->reset_s);

	return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}
