/*
 * The subscription index.
 *
 * Every filter is filed in one of three ways, so that the cost of matching
 * a signal grows with the number of filters that could match it, not with
 * the number of filters:
 *
 *   named     A filter whose matches all lie in a known set of exact names
 *             (its domain field without wildcards, or its tenant list) is
 *             filed in one bucket per name of the by_name table.
 *   patterns  A filter with wildcard patterns and no tenant list is filed
 *             under each exact name in by_name and under each pattern's
 *             suffix in by_suffix ("example.com" for "*.example.com").
 *   pool      A filter without domains or tenant list gets a slot in the
 *             pool, where each value of each enumerated field and each
 *             region has a bit set over the slots.
 *
 * A signal looks up the bucket of its name, then the by_suffix bucket of
 * each proper suffix after a dot, longest first, then ANDs one bit set per
 * field of the pool; mt_filter_match_probe decides every candidate. A
 * patterns filter can sit in several buckets that fit one name
 * ("*.example.com" and "*.a.example.com" both fit "x.a.example.com"); it
 * is reported only from the first bucket visited whose key its patterns
 * contain, which needs no per-match state and so also works for a match
 * started from a callback.
 *
 * Each entry stores its position in every bucket that holds it, and the
 * buckets swap the last element into a removed slot, so removal costs one
 * step per name of the filter however many filters the index holds. A
 * pool slot is cleared in each bit set and reused.
 *
 * Callbacks may add and remove entries while mt_index_match runs: removal
 * then only marks the entry, which is skipped and unlinked once the
 * outermost match returns.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "filter_internal.h"
#include "table.h"

struct ix_entry;

/* One filing of an entry in a bucket. */
struct ix_ref {
	struct ix_entry *entry;
	size_t reg;             /* index into entry->regs */
};

struct ix_bucket {
	const char *name;       /* the key in table */
	struct mt_table *table; /* by_name or by_suffix */
	struct ix_ref *refs;
	size_t len;
	size_t cap;
};

/* Location of one filing of an entry. */
struct ix_reg {
	struct ix_bucket *bucket;
	size_t pos;             /* index into bucket->refs */
};

enum ix_kind { IX_NAMED, IX_PATTERNS, IX_POOL };

struct ix_entry {
	const mt_filter *filter;        /* NULL once removed */
	enum ix_kind kind;
	const struct mt_table *names;   /* IX_NAMED: mt_filter_required_names */
	const struct mt_table *exact;   /* IX_PATTERNS: exact names */
	const struct mt_table *wildcards; /* IX_PATTERNS: pattern suffixes */
	size_t slot;                    /* IX_POOL: bit index */
	void *owner;
	struct ix_entry *next_pending;  /* removed during a match */
	size_t nregs;
	struct ix_reg regs[];
};

/* Bit sets of the pool: one per value of each enumerated field. */
#define POOL_EVENT 0
#define POOL_STAGE (POOL_EVENT + SG_EVENT_COUNT)
#define POOL_PROXY (POOL_STAGE + SG_STAGE_COUNT)
#define POOL_ACTION (POOL_PROXY + SG_PROXY_COUNT)
#define POOL_CONFIDENCE (POOL_ACTION + SG_ACTION_COUNT)
#define POOL_VALUE_SETS (POOL_CONFIDENCE + SG_CONFIDENCE_COUNT)

struct ix_pool {
	size_t words;                   /* capacity of each bit set */
	size_t high;                    /* slots ever used */
	struct ix_entry **entries;      /* slot -> entry, NULL when free */
	size_t *free_slots;
	size_t nfree;
	uint64_t *live;
	uint64_t *values[POOL_VALUE_SETS];
	uint64_t *any_region;           /* filters without a regions field */
	uint64_t *regions[MT_REGION_BITS]; /* allocated on first use */
};

/* Match nesting depth and the entries removed while a match runs. */
struct ix_match_state {
	unsigned depth;
	struct ix_entry *pending;
};

struct mt_index {
	struct mt_table by_name;        /* domain name -> struct ix_bucket * */
	struct mt_table by_suffix;      /* pattern suffix -> struct ix_bucket * */
	struct mt_table by_filter;      /* filter pointer -> struct ix_entry * */
	struct ix_pool pool;
	size_t live;
	/* Why a pointer: mt_index_match takes a const index but must count
	 * its depth and collect removals made by callbacks. */
	struct ix_match_state *state;
};

mt_index *mt_index_new(void)
{
	mt_index *ix = calloc(1, sizeof(*ix));

	if (!ix)
		return NULL;
	ix->state = calloc(1, sizeof(*ix->state));
	if (!ix->state) {
		free(ix);
		return NULL;
	}
	mt_table_init(&ix->by_name, true);
	mt_table_init(&ix->by_suffix, true);
	mt_table_init(&ix->by_filter, false);
	return ix;
}

static void bucket_free(struct ix_bucket *b)
{
	free(b->refs);
	free(b);
}

static void pool_free(struct ix_pool *p)
{
	free(p->entries);
	free(p->free_slots);
	free(p->live);
	for (size_t i = 0; i < POOL_VALUE_SETS; i++)
		free(p->values[i]);
	free(p->any_region);
	for (size_t i = 0; i < MT_REGION_BITS; i++)
		free(p->regions[i]);
}

static void free_buckets(struct mt_table *t)
{
	struct mt_slot *slot = NULL;
	size_t pos = 0;

	while ((slot = mt_table_next(t, &pos)))
		bucket_free(slot->value);
	mt_table_clear(t);
}

void mt_index_free(mt_index *ix)
{
	struct mt_slot *slot = NULL;
	size_t pos = 0;

	if (!ix)
		return;
	free_buckets(&ix->by_name);
	free_buckets(&ix->by_suffix);
	while ((slot = mt_table_next(&ix->by_filter, &pos)))
		free(slot->value);
	while (ix->state->pending) {
		struct ix_entry *e = ix->state->pending;

		ix->state->pending = e->next_pending;
		free(e);
	}
	mt_table_clear(&ix->by_filter);
	pool_free(&ix->pool);
	free(ix->state);
	free(ix);
}

/* ---- buckets ---- */

static int bucket_append(struct ix_bucket *b, struct ix_entry *e, size_t reg)
{
	if (b->len == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4;
		struct ix_ref *refs = realloc(b->refs, cap * sizeof(*refs));

		if (!refs)
			return -1;
		b->refs = refs;
		b->cap = cap;
	}
	b->refs[b->len].entry = e;
	b->refs[b->len].reg = reg;
	e->regs[reg].bucket = b;
	e->regs[reg].pos = b->len;
	b->len++;
	return 0;
}

/* Finds or creates the bucket of name in t; NULL when out of memory. */
static struct ix_bucket *bucket_for_name(struct mt_table *t, const char *name)
{
	struct mt_slot *slot = mt_table_find(t, name);
	struct ix_bucket *b = NULL;
	const void *stored = NULL;

	if (slot)
		return slot->value;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	if (mt_table_put(t, name, b, &stored) != 0) {
		free(b);
		return NULL;
	}
	b->name = stored;
	b->table = t;
	return b;
}

/* Takes filing reg of e out of its bucket; frees a bucket left empty. */
static void unlink_reg(struct ix_entry *e, size_t reg)
{
	struct ix_bucket *b = e->regs[reg].bucket;
	size_t pos = e->regs[reg].pos;
	struct ix_ref last = b->refs[b->len - 1];

	b->refs[pos] = last;
	last.entry->regs[last.reg].pos = pos;
	b->len--;

	if (b->len == 0) {
		mt_table_remove(b->table, b->name);
		bucket_free(b);
	}
}

static void unlink_regs(struct ix_entry *e, size_t nregs)
{
	for (size_t i = 0; i < nregs; i++)
		unlink_reg(e, i);
}

/*
 * Files e under every key of keys in table t, as filings *done onwards.
 * On failure the filings made by this call are undone and -1 returned;
 * the caller undoes earlier ones.
 */
static int file_by_keys(struct mt_table *t, struct ix_entry *e,
			const struct mt_table *keys, size_t *done)
{
	struct mt_slot *slot = NULL;
	size_t pos = 0;

	while ((slot = mt_table_next(keys, &pos))) {
		struct ix_bucket *b = bucket_for_name(t, slot->key);

		if (!b || bucket_append(b, e, *done) != 0) {
			/* A bucket created just now may still be empty. */
			if (b && b->len == 0) {
				mt_table_remove(t, b->name);
				bucket_free(b);
			}
			return -1;
		}
		(*done)++;
	}
	return 0;
}

/* ---- the pool's bit sets ---- */

static void bit_set(uint64_t *set, size_t bit)
{
	set[bit / 64] |= (uint64_t)1 << (bit % 64);
}

static void bit_clear(uint64_t *set, size_t bit)
{
	if (set)
		set[bit / 64] &= ~((uint64_t)1 << (bit % 64));
}

/* Grows a bit set from old to words words, zeroing the new part. */
static int bits_grow(uint64_t **set, size_t old, size_t words)
{
	uint64_t *bigger = realloc(*set, words * sizeof(**set));

	if (!bigger)
		return -1;
	memset(bigger + old, 0, (words - old) * sizeof(*bigger));
	*set = bigger;
	return 0;
}

/* Doubles the pool's capacity. Returns 0 or -1 (the pool stays usable at
 * its old size, with some sets already larger). */
static int pool_grow(struct ix_pool *p)
{
	size_t old = p->words;
	size_t words = old ? old * 2 : 4;
	struct ix_entry **entries = NULL;
	size_t *free_slots = NULL;

	entries = realloc(p->entries, words * 64 * sizeof(*entries));
	if (!entries)
		return -1;
	p->entries = entries;
	free_slots = realloc(p->free_slots, words * 64 * sizeof(*free_slots));
	if (!free_slots)
		return -1;
	p->free_slots = free_slots;
	if (bits_grow(&p->live, old, words) || bits_grow(&p->any_region, old, words))
		return -1;
	for (size_t i = 0; i < POOL_VALUE_SETS; i++)
		if (bits_grow(&p->values[i], old, words))
			return -1;
	for (size_t i = 0; i < MT_REGION_BITS; i++)
		if (p->regions[i] && bits_grow(&p->regions[i], old, words))
			return -1;
	p->words = words;
	return 0;
}

static bool mask_has(uint32_t mask, unsigned value)
{
	return mask == UINT32_MAX || (value < 32 && (mask >> value) & 1u);
}

static void pool_set_values(struct ix_pool *p, size_t slot,
			    const struct mt_field_masks *m)
{
	static const struct {
		size_t base;
		unsigned count;
		size_t offset;
	} fields[] = {
		{ POOL_EVENT, SG_EVENT_COUNT, offsetof(struct mt_field_masks, event_types) },
		{ POOL_STAGE, SG_STAGE_COUNT, offsetof(struct mt_field_masks, stages) },
		{ POOL_PROXY, SG_PROXY_COUNT, offsetof(struct mt_field_masks, proxy_types) },
		{ POOL_ACTION, SG_ACTION_COUNT, offsetof(struct mt_field_masks, actions) },
		{ POOL_CONFIDENCE, SG_CONFIDENCE_COUNT, offsetof(struct mt_field_masks, confidences) },
	};

	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
		uint32_t mask = *(const uint32_t *)((const char *)m + fields[f].offset);

		for (unsigned v = 0; v < fields[f].count; v++)
			if (mask_has(mask, v))
				bit_set(p->values[fields[f].base + v], slot);
	}
}

/* Sets the region bits of slot; -1 when a region set could not be
 * allocated (the caller then clears the slot). */
static int pool_set_regions(struct ix_pool *p, size_t slot,
			    const struct mt_field_masks *m)
{
	if (!m->has_regions) {
		bit_set(p->any_region, slot);
		return 0;
	}
	for (size_t r = 0; r < MT_REGION_BITS; r++) {
		if (!((m->regions[r / 64] >> (r % 64)) & 1u))
			continue;
		if (!p->regions[r]) {
			p->regions[r] = calloc(p->words, sizeof(uint64_t));
			if (!p->regions[r])
				return -1;
		}
		bit_set(p->regions[r], slot);
	}
	return 0;
}

static void pool_clear_slot(struct ix_pool *p, size_t slot)
{
	bit_clear(p->live, slot);
	bit_clear(p->any_region, slot);
	for (size_t i = 0; i < POOL_VALUE_SETS; i++)
		bit_clear(p->values[i], slot);
	for (size_t i = 0; i < MT_REGION_BITS; i++)
		bit_clear(p->regions[i], slot);
	p->entries[slot] = NULL;
	p->free_slots[p->nfree++] = slot;
}

static int pool_add(struct ix_pool *p, struct ix_entry *e)
{
	struct mt_field_masks m;
	size_t slot = 0;

	if (!p->nfree && p->high == p->words * 64 && pool_grow(p) != 0)
		return -1;
	slot = p->nfree ? p->free_slots[--p->nfree] : p->high++;
	mt_filter_field_masks(e->filter, &m);
	p->entries[slot] = e;
	e->slot = slot;
	pool_set_values(p, slot, &m);
	if (pool_set_regions(p, slot, &m) != 0) {
		pool_clear_slot(p, slot);
		return -1;
	}
	bit_set(p->live, slot);
	return 0;
}

/* ---- adding and removing ---- */

static void unlink_entry(mt_index *ix, struct ix_entry *e)
{
	if (e->kind == IX_POOL)
		pool_clear_slot(&ix->pool, e->slot);
	else
		unlink_regs(e, e->nregs);
}

/* Files e by its kind; on failure nothing stays filed. */
static int file_entry(mt_index *ix, struct ix_entry *e)
{
	size_t done = 0;

	if (e->kind == IX_POOL)
		return pool_add(&ix->pool, e);
	if (e->kind == IX_NAMED) {
		if (file_by_keys(&ix->by_name, e, e->names, &done) == 0)
			return 0;
	} else if (file_by_keys(&ix->by_name, e, e->exact, &done) == 0 &&
		   file_by_keys(&ix->by_suffix, e, e->wildcards, &done) == 0) {
		return 0;
	}
	unlink_regs(e, done);
	return -1;
}

int mt_index_add(mt_index *ix, const mt_filter *f, void *owner)
{
	const struct mt_table *names = mt_filter_required_names(f);
	const struct mt_table *exact = NULL, *wildcards = NULL;
	enum ix_kind kind = IX_POOL;
	size_t nregs = 0;
	struct ix_entry *e = NULL;
	int rc = -1;

	if (mt_table_find(&ix->by_filter, f))
		goto out;
	if (names) {
		kind = IX_NAMED;
		nregs = names->count;
	} else if (mt_filter_domain_patterns(f, &exact, &wildcards)) {
		kind = IX_PATTERNS;
		nregs = exact->count + wildcards->count;
	}
	e = calloc(1, sizeof(*e) + nregs * sizeof(e->regs[0]));
	if (!e)
		goto out;
	e->filter = f;
	e->kind = kind;
	e->names = names;
	e->exact = exact;
	e->wildcards = wildcards;
	e->owner = owner;
	e->nregs = nregs;

	if (file_entry(ix, e) != 0)
		goto out;
	if (mt_table_put(&ix->by_filter, f, e, NULL) != 0) {
		unlink_entry(ix, e);
		goto out;
	}
	ix->live++;
	e = NULL;
	rc = 0;

out:
	free(e);
	return rc;
}

void mt_index_remove(mt_index *ix, const mt_filter *f)
{
	struct mt_slot *slot = mt_table_find(&ix->by_filter, f);
	struct ix_entry *e = NULL;

	if (!slot)
		return;
	e = slot->value;
	mt_table_remove(&ix->by_filter, f);
	ix->live--;

	/* Why defer: a running match may hold this entry's bucket position
	 * or pool slot, and moving either under it would skip or repeat
	 * filters. */
	if (ix->state->depth > 0) {
		e->filter = NULL;
		e->next_pending = ix->state->pending;
		ix->state->pending = e;
		return;
	}
	unlink_entry(ix, e);
	free(e);
}

size_t mt_index_size(const mt_index *ix)
{
	return ix->live;
}

/* ---- matching ---- */

/*
 * Reports the entries of the by_name bucket of the signal's domain that
 * match. A named entry's name set is known to hold the domain, so that
 * lookup is skipped.
 */
static void match_name_bucket(const struct ix_bucket *b,
			      const struct sg_signal *s,
			      const struct mt_domain_probe *probe,
			      mt_found_fn found, void *ctx)
{
	/* b->len and b->refs are read on each step: a callback may append. */
	for (size_t i = 0; i < b->len; i++) {
		const struct ix_entry *e = b->refs[i].entry;
		const struct mt_table *known = e->kind == IX_NAMED ? e->names : NULL;

		if (e->filter &&
		    mt_filter_match_probe(e->filter, s, probe, known))
			found(e->owner, ctx);
	}
}

/* True when e was already reported from the name bucket or from the
 * bucket of a longer suffix than suffix number `at`. */
static bool reported_before(const struct ix_entry *e,
			    const struct mt_domain_probe *probe, size_t at)
{
	if (mt_table_find_hashed(e->exact, probe->name, probe->hash))
		return true;
	for (size_t i = 0; i < at; i++)
		if (mt_table_find_hashed(e->wildcards, probe->suffixes[i],
					 probe->suffix_hashes[i]))
			return true;
	return false;
}

static void match_suffix_bucket(const struct ix_bucket *b, size_t at,
				const struct sg_signal *s,
				const struct mt_domain_probe *probe,
				mt_found_fn found, void *ctx)
{
	for (size_t i = 0; i < b->len; i++) {
		const struct ix_entry *e = b->refs[i].entry;

		if (e->filter && mt_filter_match_probe(e->filter, s, probe, NULL) &&
		    !reported_before(e, probe, at))
			found(e->owner, ctx);
	}
}

/* Returns the pool's bit set for value v of the field at base, or NULL
 * when v is out of range (then only a full check can decide). */
static const uint64_t *pool_value_set(const struct ix_pool *p, size_t base,
				      unsigned count, unsigned v)
{
	return v < count ? p->values[base + v] : NULL;
}

static void match_pool(const struct ix_pool *p, const struct sg_signal *s,
		       const struct mt_domain_probe *probe, mt_found_fn found,
		       void *ctx)
{
	int region = mt_region_bit(s->region);

	/* The sets are fetched again for each word: a callback may add an
	 * entry, and growing the pool moves them. */
	for (size_t w = 0; w * 64 < p->high; w++) {
		const uint64_t *sets[5] = {
			pool_value_set(p, POOL_EVENT, SG_EVENT_COUNT, s->event_type),
			pool_value_set(p, POOL_STAGE, SG_STAGE_COUNT, s->stage),
			pool_value_set(p, POOL_PROXY, SG_PROXY_COUNT, s->proxy_type),
			pool_value_set(p, POOL_ACTION, SG_ACTION_COUNT, s->action),
			pool_value_set(p, POOL_CONFIDENCE, SG_CONFIDENCE_COUNT, s->confidence),
		};
		uint64_t bits = p->live[w];

		for (size_t i = 0; i < 5; i++)
			if (sets[i])
				bits &= sets[i][w];
		bits &= p->any_region[w] |
			(region >= 0 && p->regions[region] ? p->regions[region][w] : 0);

		while (bits) {
			size_t slot = w * 64 + (size_t)__builtin_ctzll(bits);
			const struct ix_entry *e = p->entries[slot];

			bits &= bits - 1;
			if (e && e->filter &&
			    mt_filter_match_probe(e->filter, s, probe, NULL))
				found(e->owner, ctx);
		}
	}
}

/* Unlinks and frees the entries removed while a match ran. */
static void flush_pending(const mt_index *ix)
{
	mt_index *mutable_ix = (mt_index *)ix;

	while (ix->state->pending) {
		struct ix_entry *e = ix->state->pending;

		ix->state->pending = e->next_pending;
		unlink_entry(mutable_ix, e);
		free(e);
	}
}

void mt_index_match(const mt_index *ix, const struct sg_signal *s,
		    mt_found_fn found, void *ctx)
{
	struct mt_domain_probe probe;
	struct mt_slot *slot = NULL;

	ix->state->depth++;

	mt_domain_probe_init(&probe, s->domain);
	if (probe.valid) {
		slot = mt_table_find_hashed(&ix->by_name, probe.name, probe.hash);
		if (slot)
			match_name_bucket(slot->value, s, &probe, found, ctx);
		for (size_t i = 0; ix->by_suffix.count && i < probe.nsuffixes; i++) {
			slot = mt_table_find_hashed(&ix->by_suffix, probe.suffixes[i],
						    probe.suffix_hashes[i]);
			if (slot)
				match_suffix_bucket(slot->value, i, s, &probe, found, ctx);
		}
	}
	match_pool(&ix->pool, s, &probe, found, ctx);

	ix->state->depth--;
	if (ix->state->depth == 0)
		flush_pending(ix);
}
