/*
 * The subscription index.
 *
 * A filter whose matches all lie in a known set of exact domain names (its
 * domain field without wildcards, or its tenant list) is filed in one
 * bucket per name, keyed by the name. Every other filter goes to the scan
 * list. A signal is checked against the bucket of its own domain and
 * against the scan list, with mt_filter_match deciding each candidate.
 *
 * NOTE: the cost of a match grows with the number of filters in the scan
 * list, which contains filters without a domain field and filters with a
 * wildcard pattern but no tenant restriction. Indexing wildcard suffixes
 * too would need a way to report a filter only once when several of its
 * patterns fit one name.
 *
 * Each entry stores its position in every bucket that holds it, and the
 * buckets swap the last element into a removed slot, so removal costs one
 * step per name of the filter however many filters the index holds.
 *
 * Callbacks may add and remove entries while mt_index_match runs: removal
 * then only marks the entry, which is skipped and unlinked once the
 * outermost match returns.
 */
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
	const char *name;       /* the by_name table's key; NULL for scan */
	struct ix_ref *refs;
	size_t len;
	size_t cap;
};

/* Location of one filing of an entry. */
struct ix_reg {
	struct ix_bucket *bucket;
	size_t pos;             /* index into bucket->refs */
};

struct ix_entry {
	const mt_filter *filter;        /* NULL once removed */
	const struct mt_table *names;   /* from mt_filter_required_names */
	void *owner;
	struct ix_entry *next_pending;  /* removed during a match */
	size_t nregs;
	struct ix_reg regs[];
};

/* Match nesting depth and the entries removed while a match runs. */
struct ix_match_state {
	unsigned depth;
	struct ix_entry *pending;
};

struct mt_index {
	struct mt_table by_name;        /* domain name -> struct ix_bucket * */
	struct mt_table by_filter;      /* filter pointer -> struct ix_entry * */
	struct ix_bucket scan;
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
	mt_table_init(&ix->by_filter, false);
	return ix;
}

static void bucket_free(struct ix_bucket *b)
{
	free(b->refs);
	free(b);
}

void mt_index_free(mt_index *ix)
{
	struct mt_slot *slot = NULL;
	size_t pos = 0;

	if (!ix)
		return;
	while ((slot = mt_table_next(&ix->by_name, &pos)))
		bucket_free(slot->value);
	pos = 0;
	while ((slot = mt_table_next(&ix->by_filter, &pos)))
		free(slot->value);
	while (ix->state->pending) {
		struct ix_entry *e = ix->state->pending;

		ix->state->pending = e->next_pending;
		free(e);
	}
	mt_table_clear(&ix->by_name);
	mt_table_clear(&ix->by_filter);
	free(ix->scan.refs);
	free(ix->state);
	free(ix);
}

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

/* Finds or creates the bucket of name; NULL when out of memory. */
static struct ix_bucket *bucket_for_name(mt_index *ix, const char *name)
{
	struct mt_slot *slot = mt_table_find(&ix->by_name, name);
	struct ix_bucket *b = NULL;
	const void *stored = NULL;

	if (slot)
		return slot->value;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	if (mt_table_put(&ix->by_name, name, b, &stored) != 0) {
		free(b);
		return NULL;
	}
	b->name = stored;
	return b;
}

/* Takes filing reg of e out of its bucket; frees a named bucket left empty. */
static void unlink_reg(mt_index *ix, struct ix_entry *e, size_t reg)
{
	struct ix_bucket *b = e->regs[reg].bucket;
	size_t pos = e->regs[reg].pos;
	struct ix_ref last = b->refs[b->len - 1];

	b->refs[pos] = last;
	last.entry->regs[last.reg].pos = pos;
	b->len--;

	if (b->len == 0 && b != &ix->scan) {
		mt_table_remove(&ix->by_name, b->name);
		bucket_free(b);
	}
}

static void unlink_entry(mt_index *ix, struct ix_entry *e, size_t nregs)
{
	for (size_t i = 0; i < nregs; i++)
		unlink_reg(ix, e, i);
}

/* Files e under every name of names; on failure nothing stays filed. */
static int file_by_names(mt_index *ix, struct ix_entry *e,
			 const struct mt_table *names)
{
	struct mt_slot *slot = NULL;
	size_t pos = 0;
	size_t done = 0;

	while ((slot = mt_table_next(names, &pos))) {
		struct ix_bucket *b = bucket_for_name(ix, slot->key);

		if (!b || bucket_append(b, e, done) != 0) {
			/* A bucket created just now may still be empty. */
			if (b && b->len == 0) {
				mt_table_remove(&ix->by_name, b->name);
				bucket_free(b);
			}
			unlink_entry(ix, e, done);
			return -1;
		}
		done++;
	}
	return 0;
}

int mt_index_add(mt_index *ix, const mt_filter *f, void *owner)
{
	const struct mt_table *names = mt_filter_required_names(f);
	size_t nregs = names ? names->count : 1;
	struct ix_entry *e = NULL;
	int rc = -1;

	if (mt_table_find(&ix->by_filter, f))
		goto out;
	e = calloc(1, sizeof(*e) + nregs * sizeof(e->regs[0]));
	if (!e)
		goto out;
	e->filter = f;
	e->names = names;
	e->owner = owner;
	e->nregs = nregs;

	if (names ? file_by_names(ix, e, names) != 0
		  : bucket_append(&ix->scan, e, 0) != 0)
		goto out;
	if (mt_table_put(&ix->by_filter, f, e, NULL) != 0) {
		unlink_entry(ix, e, nregs);
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

	/* Why defer: a running match may hold this entry's bucket position,
	 * and moving refs under it would skip or repeat filters. */
	if (ix->state->depth > 0) {
		e->filter = NULL;
		e->next_pending = ix->state->pending;
		ix->state->pending = e;
		return;
	}
	unlink_entry(ix, e, e->nregs);
	free(e);
}

size_t mt_index_size(const mt_index *ix)
{
	return ix->live;
}

/*
 * Reports the entries of b that match. In a named bucket the signal's
 * domain is known to be in each entry's name set, so that lookup is
 * skipped.
 */
static void match_bucket(const struct ix_bucket *b, const struct sg_signal *s,
			 const struct mt_domain_probe *probe,
			 mt_found_fn found, void *ctx)
{
	/* b->len and b->refs are read on each step: a callback may append. */
	for (size_t i = 0; i < b->len; i++) {
		const struct ix_entry *e = b->refs[i].entry;
		const struct mt_table *known = b->name ? e->names : NULL;

		if (e->filter &&
		    mt_filter_match_probe(e->filter, s, probe, known))
			found(e->owner, ctx);
	}
}

/* Unlinks and frees the entries removed while a match ran. */
static void flush_pending(const mt_index *ix)
{
	mt_index *mutable_ix = (mt_index *)ix;

	while (ix->state->pending) {
		struct ix_entry *e = ix->state->pending;

		ix->state->pending = e->next_pending;
		unlink_entry(mutable_ix, e, e->nregs);
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
		slot = mt_table_find_hashed(&ix->by_name, probe.name,
					    probe.hash);
		if (slot)
			match_bucket(slot->value, s, &probe, found, ctx);
	}
	match_bucket(&ix->scan, s, &probe, found, ctx);

	ix->state->depth--;
	if (ix->state->depth == 0)
		flush_pending(ix);
}
