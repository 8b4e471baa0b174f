/*
 * The per-domain time index, by_domain: for each signal, its domain with
 * the labels reversed ("a.example.com" as "com.example.a", as in the
 * stats counters) as the key, and its by_time key (observed time, seq)
 * as one of the key's sorted duplicates (MDB_DUPSORT | MDB_DUPFIXED, so
 * an entry takes 16 bytes and the domain is stored once). The pair
 * (domain, duplicate) sorts like the concatenation domain, NUL, time key.
 * st_append writes the entry and retention deletes it in the transaction
 * that stores or deletes the signal. A signal without a domain has none.
 *
 * Within one domain the duplicates are in observed-time order, so a list
 * of a few domains reads only their signals: one cursor per domain,
 * merged newest first. The domains below "*.example.com" are the keys
 * that start with "com.example.", found with MDB_NEXT_NODUP.
 */
#include <stdlib.h>
#include <string.h>

#include "aggregates.h"

/* Signals per read transaction: the first chunk is small, because a page
 * usually needs a few dozen signals, and each later one twice as large. */
#define DI_CHUNK_FIRST 64
#define DI_CHUNK_MAX 512

/* Longest reversed name with room for one more byte. */
#define DI_NAME_MAX (SG_DOMAIN_MAX + 2)

/* The domains of one chunk, with a cursor and the newest unread entry of
 * each. */
struct di_merge {
	size_t n;
	char names[ST_DOMAIN_MERGE_MAX][DI_NAME_MAX];
	size_t lens[ST_DOMAIN_MERGE_MAX];
	MDB_cursor *cursors[ST_DOMAIN_MERGE_MAX];
	struct st_time_pos heads[ST_DOMAIN_MERGE_MAX];
	bool live[ST_DOMAIN_MERGE_MAX];
};

/* Fills the key (reversed domain, in rev) and the duplicate of s. Returns
 * false for a signal without a domain, which has no entry. */
static bool di_signal_entry(const struct sg_signal *s, char rev[DI_NAME_MAX],
			    uint8_t dup[ST_TIME_KEY_LEN], MDB_val *key, MDB_val *val)
{
	size_t revlen = agg_reverse_domain(s->domain, rev);

	if (revlen == 0)
		return false;
	st__time_key(dup, s->observed_us, s->seq);
	*key = (MDB_val){ revlen, rev };
	*val = (MDB_val){ ST_TIME_KEY_LEN, dup };
	return true;
}

int st__domain_index_put(st_store *st, MDB_txn *txn, const struct sg_signal *s)
{
	char rev[DI_NAME_MAX];
	uint8_t dup[ST_TIME_KEY_LEN];
	MDB_val key, val;

	if (!di_signal_entry(s, rev, dup, &key, &val))
		return ST_OK;
	return st__status_from_mdb(mdb_put(txn, st->dbi_by_domain, &key, &val, 0));
}

int st__domain_index_del(st_store *st, MDB_txn *txn, const struct sg_signal *s)
{
	char rev[DI_NAME_MAX];
	uint8_t dup[ST_TIME_KEY_LEN];
	MDB_val key, val;
	int rc;

	if (!di_signal_entry(s, rev, dup, &key, &val))
		return ST_OK;
	rc = mdb_del(txn, st->dbi_by_domain, &key, &val);
	return rc == MDB_NOTFOUND ? ST_OK : st__status_from_mdb(rc);
}

int st__domain_index_drop_seq(st_store *st, MDB_txn *txn, uint64_t seq)
{
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	int rc;

	rc = mdb_cursor_open(txn, st->dbi_by_domain, &cur);
	if (rc == MDB_SUCCESS)
		rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	while (rc == MDB_SUCCESS) {
		if (val.mv_size == ST_TIME_KEY_LEN &&
		    st__get_u64((const uint8_t *)val.mv_data + 8) == seq) {
			rc = mdb_cursor_del(cur, 0);
			break;
		}
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (cur)
		mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? ST_OK : st__status_from_mdb(rc);
}

/* ---- the domains of a scan ---- */

/* Adds a reversed name unless it is there already. Returns false when
 * the set is full. */
static bool di_add(struct di_merge *m, const void *rev, size_t len)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->lens[i] == len && !memcmp(m->names[i], rev, len))
			return true;
	if (m->n == ST_DOMAIN_MERGE_MAX || len >= DI_NAME_MAX)
		return false;
	memcpy(m->names[m->n], rev, len);
	m->names[m->n][len] = '\0';
	m->lens[m->n++] = len;
	return true;
}

/*
 * Adds every indexed domain whose reversed name starts with prefix
 * ("com.example." for "*.example.com"). Sets *full when they do not fit.
 */
static int di_expand(MDB_cursor *cur, const char *prefix, size_t plen,
		     struct di_merge *m, bool *full)
{
	MDB_val key = { plen, (void *)prefix };
	MDB_val val;
	int rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);

	while (rc == MDB_SUCCESS) {
		if (key.mv_size < plen || memcmp(key.mv_data, prefix, plen) != 0)
			break;
		if (!di_add(m, key.mv_data, key.mv_size)) {
			*full = true;
			return ST_OK;
		}
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT_NODUP);
	}
	return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? ST_OK : st__status_from_mdb(rc);
}

/* Fills m with the domains that the patterns name in this transaction.
 * Sets *full when they are more than ST_DOMAIN_MERGE_MAX. */
static int di_domains(st_store *st, MDB_txn *txn, const char *const *patterns,
		      size_t npatterns, struct di_merge *m, bool *full)
{
	MDB_cursor *cur = NULL;
	int status = ST_OK;
	int rc;

	m->n = 0;
	rc = mdb_cursor_open(txn, st->dbi_by_domain, &cur);
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);
	for (size_t i = 0; i < npatterns && status == ST_OK && !*full; i++) {
		bool wild = !strncmp(patterns[i], "*.", 2);
		char rev[DI_NAME_MAX + 1];
		size_t len = agg_reverse_domain(wild ? patterns[i] + 2 : patterns[i], rev);

		if (!wild) {
			*full = !di_add(m, rev, len);
			continue;
		}
		rev[len++] = '.';
		status = di_expand(cur, rev, len, m, full);
	}
	mdb_cursor_close(cur);
	return status;
}

/* ---- merging the domains newest first ---- */

/* Reads the cursor's current duplicate into m's head i, or marks domain
 * i done when rc is not MDB_SUCCESS. */
static void di_head(struct di_merge *m, size_t i, int rc, const MDB_val *val)
{
	m->live[i] = rc == MDB_SUCCESS &&
		     st__time_key_parse(val, &m->heads[i].observed_us, &m->heads[i].seq);
}

/* Puts cursor i on its domain's newest entry strictly before start (or
 * its newest entry when start is NULL). Returns an LMDB code other than
 * MDB_NOTFOUND on failure. */
static int di_position(struct di_merge *m, size_t i, const struct st_time_pos *start)
{
	MDB_cursor *cur = m->cursors[i];
	uint8_t dup[ST_TIME_KEY_LEN];
	MDB_val key = { m->lens[i], m->names[i] };
	MDB_val val = { sizeof dup, dup };
	int rc;

	if (start) {
		st__time_key(dup, start->observed_us, start->seq);
		rc = mdb_cursor_get(cur, &key, &val, MDB_GET_BOTH_RANGE);
		if (rc == MDB_SUCCESS) {
			rc = mdb_cursor_get(cur, &key, &val, MDB_PREV_DUP);
			di_head(m, i, rc, &val);
			return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
		}
		if (rc != MDB_NOTFOUND)
			return rc;
		/* Every entry of the domain is before start, or it has none. */
		key = (MDB_val){ m->lens[i], m->names[i] };
	}
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET_KEY);
	if (rc == MDB_SUCCESS)
		rc = mdb_cursor_get(cur, &key, &val, MDB_LAST_DUP);
	di_head(m, i, rc, &val);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* Returns the domain with the newest head, or -1 when every one is done. */
static int di_newest(const struct di_merge *m)
{
	int best = -1;

	for (size_t i = 0; i < m->n; i++) {
		const struct st_time_pos *h = &m->heads[i];

		if (!m->live[i])
			continue;
		if (best < 0 || h->observed_us > m->heads[best].observed_us ||
		    (h->observed_us == m->heads[best].observed_us &&
		     h->seq > m->heads[best].seq))
			best = (int)i;
	}
	return best;
}

/* One chunk's read: where it starts and what it found. */
struct di_chunk {
	const char *const *patterns;
	size_t npatterns;
	const struct st_time_pos *start;        /* NULL: from the newest */
	int64_t min_us;
	size_t max;                     /* signals to read at most */
	struct sg_signal *buf;
	size_t n;
	struct st_time_pos last;
	bool end;                       /* no further signal qualifies */
	bool fallback;                  /* by_domain cannot serve this scan */
};

/* Copies up to c->max signals, newest first, from the domains' cursors. */
static int di_merge_read(st_store *st, MDB_txn *txn, struct di_merge *m,
			 struct di_chunk *c)
{
	uint8_t seq_key[8];
	MDB_val skey = { sizeof seq_key, seq_key };
	MDB_val key, val;
	int status = ST_OK;
	int rc;

	while (c->n < c->max) {
		int best = di_newest(m);
		const struct st_time_pos *h;

		if (best < 0 || m->heads[best].observed_us < c->min_us) {
			c->end = true;
			break;
		}
		h = &m->heads[best];

		/* An entry without its signal breaks the one-transaction rule. */
		st__put_u64(seq_key, h->seq);
		rc = mdb_get(txn, st->dbi_signals, &skey, &val);
		if (rc != MDB_SUCCESS)
			return rc == MDB_NOTFOUND ? ST_ERR_CORRUPT : st__status_from_mdb(rc);
		status = st__signal_decode(&val, h->seq, &c->buf[c->n]);
		if (status != ST_OK)
			return status;
		c->last = *h;
		c->n++;

		rc = mdb_cursor_get(m->cursors[best], &key, &val, MDB_PREV_DUP);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return st__status_from_mdb(rc);
		di_head(m, (size_t)best, rc, &val);
	}
	return status;
}

/* Reads one chunk in one read transaction. */
static int di_read_chunk(st_store *st, struct di_merge *m, struct di_chunk *c)
{
	MDB_txn *txn = NULL;
	int64_t unindexed = INT64_MIN;
	size_t opened = 0;
	int status;
	int rc = MDB_SUCCESS;

	c->n = 0;
	c->end = false;
	status = st__txn_begin(st, MDB_RDONLY, &txn);
	if (status != ST_OK)
		goto out;

	/* Signals that an older canaryd stored have no by_domain entries. */
	status = st__meta_get_time(st, txn, ST_META_UNINDEXED_MAX, &unindexed);
	if (status != ST_OK)
		goto out;
	if (unindexed != INT64_MIN && unindexed >= c->min_us) {
		c->fallback = true;
		goto out;
	}

	/* Each chunk looks the domains up again, so a domain that gets its
	 * first signal during the scan is read like any other. */
	status = di_domains(st, txn, c->patterns, c->npatterns, m, &c->fallback);
	if (status != ST_OK || c->fallback)
		goto out;

	for (opened = 0; opened < m->n && rc == MDB_SUCCESS; opened++) {
		rc = mdb_cursor_open(txn, st->dbi_by_domain, &m->cursors[opened]);
		if (rc == MDB_SUCCESS)
			rc = di_position(m, opened, c->start);
	}
	if (rc != MDB_SUCCESS) {
		status = st__status_from_mdb(rc);
		goto out;
	}
	status = di_merge_read(st, txn, m, c);

out:
	for (size_t i = 0; i < opened; i++)
		if (m->cursors[i])
			mdb_cursor_close(m->cursors[i]);
	memset(m->cursors, 0, sizeof m->cursors);
	st__txn_abort(st, txn);
	if (status != ST_OK)
		c->n = 0;
	return status;
}

/* Returns false when a pattern is too long to be a domain name. */
static bool di_patterns_valid(const char *const *patterns, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!patterns[i] || strnlen(patterns[i], SG_DOMAIN_MAX + 3) > SG_DOMAIN_MAX + 2)
			return false;
	return true;
}

int st_scan_domains_desc(st_store *st, const char *const *patterns,
			 size_t npatterns, const struct st_time_pos *start,
			 int64_t min_us, st_visit_fn visit, void *ctx,
			 bool *indexed)
{
	struct sg_signal *buf = NULL;
	struct di_merge *m = NULL;
	struct di_chunk c;
	struct st_time_pos pos = { 0, 0 };
	bool have_pos = start != NULL;
	int status = ST_OK;

	memset(&c, 0, sizeof c);
	if (indexed)
		*indexed = false;
	if (!st || !visit || npatterns == 0 || !patterns ||
	    !di_patterns_valid(patterns, npatterns))
		return ST_ERR_INVALID;
	buf = malloc(DI_CHUNK_MAX * sizeof *buf);
	m = calloc(1, sizeof *m);
	if (!buf || !m) {
		status = ST_ERR_IO;
		goto out;
	}
	if (start)
		pos = *start;

	c.patterns = patterns;
	c.npatterns = npatterns;
	c.min_us = min_us;
	c.buf = buf;
	c.max = DI_CHUNK_FIRST;
	while (!c.end) {
		c.start = have_pos ? &pos : NULL;
		status = di_read_chunk(st, m, &c);
		if (status != ST_OK || c.fallback || c.n == 0)
			break;
		have_pos = true;
		pos = c.last;

		/* The chunk's transaction is closed: visit may take its time. */
		for (size_t i = 0; i < c.n; i++) {
			if (visit(&buf[i], ctx) != 0)
				goto out;
		}
		if (c.max < DI_CHUNK_MAX)
			c.max *= 2;
	}

out:
	free(buf);
	free(m);
	if (status == ST_OK && c.fallback)
		return st_scan_time_desc(st, have_pos ? &pos : NULL, min_us, visit, ctx);
	if (status == ST_OK && indexed)
		*indexed = true;
	return status;
}
