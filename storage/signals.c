/*
 * Signals: appending with seq assignment, reads by seq, the time index
 * scans and retention.
 *
 * Every signal has four entries, always written and deleted together in
 * one transaction: signals[seq], by_time[observed_us, seq],
 * by_recv[received_us, seq] and, unless its domain is empty, by_domain
 * (domain_index.c). Reads copy what they need and close their read
 * transaction before calling back, so no caller can pin old pages.
 */
#include <stdlib.h>
#include <string.h>

#include "store_private.h"

/* Signals per read transaction in st_scan_time_desc. */
#define ST_SCAN_CHUNK 512

/* Index entries per read transaction in st_first_seq_observed_since. */
#define ST_INDEX_CHUNK 4096

/* Raises the cached head to seq; never lowers it. */
static void st_head_raise(st_store *st, uint64_t seq)
{
	uint64_t cur = atomic_load(&st->head_seq);

	while (cur < seq && !atomic_compare_exchange_weak(&st->head_seq, &cur, seq))
		;
}

/*
 * Sets key to the next 16-byte index key after it. Returns false when key
 * was the largest possible one.
 */
static bool st_time_key_next(uint8_t key[ST_TIME_KEY_LEN])
{
	for (int i = ST_TIME_KEY_LEN - 1; i >= 0; i--) {
		if (++key[i] != 0)
			return true;
	}
	return false;
}

/* ---- append ---- */

struct st_append_ctx {
	struct sg_signal *sigs;
	size_t n;
	uint64_t next_seq;      /* next_seq after the batch, once committed */
	msgpack_sbuffer buf;    /* reused for each packed signal */
	bool *tagged;           /* campaign_id is the store's, not the sensor's */
	const char *batch_key;  /* NULL: an unnamed batch */
	struct st_batch_record earlier; /* filled when batch_key was seen */
	bool replayed;
};

/* Puts one signal and its three index entries. */
static int st_put_signal(st_store *st, MDB_txn *txn, const struct sg_signal *s,
			 msgpack_sbuffer *buf)
{
	uint8_t seq_key[8];
	uint8_t time_key[ST_TIME_KEY_LEN];
	uint8_t recv_key[ST_TIME_KEY_LEN];
	MDB_val key = { sizeof seq_key, seq_key };
	MDB_val val;
	MDB_val empty = { 0, NULL };
	int rc;

	msgpack_sbuffer_clear(buf);
	if (st__signal_encode(s, buf) != ST_OK)
		return ST_ERR_IO;

	/* A seq that is already taken means next_seq went backwards. */
	st__put_u64(seq_key, s->seq);
	val = (MDB_val){ buf->size, buf->data };
	rc = mdb_put(txn, st->dbi_signals, &key, &val, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST)
		return ST_ERR_CORRUPT;
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);

	st__time_key(time_key, s->observed_us, s->seq);
	key = (MDB_val){ sizeof time_key, time_key };
	rc = mdb_put(txn, st->dbi_by_time, &key, &empty, 0);
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);

	st__time_key(recv_key, s->received_us, s->seq);
	key = (MDB_val){ sizeof recv_key, recv_key };
	rc = mdb_put(txn, st->dbi_by_recv, &key, &empty, 0);
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);
	return st__domain_index_put(st, txn, s);
}

static int st_append_body(st_store *st, MDB_txn *txn, void *ctx)
{
	struct st_append_ctx *ac = ctx;
	uint64_t next_seq = 0;
	int status;

	if (ac->batch_key) {
		status = st__batch_lookup(st, txn, ac->batch_key, &ac->earlier);
		if (status == ST_OK) {
			/* Stored before: this transaction writes nothing. */
			ac->replayed = true;
			return ac->earlier.count == ac->n ? ST_OK : ST_ERR_EXISTS;
		}
		if (status != ST_ERR_NOT_FOUND)
			return status;
		ac->replayed = false;
	}

	status = st__meta_next_seq(st, txn, &next_seq);
	if (status != ST_OK)
		return status;
	if (ac->n > UINT64_MAX - next_seq)
		return ST_ERR_CORRUPT;

	/* Campaigns and counters change in this transaction too, so they
	 * always agree with the stored signals. A body that runs again after
	 * the map grew starts from the sensor's campaign_id values. */
	for (size_t i = 0; i < ac->n; i++) {
		ac->sigs[i].seq = next_seq + i;
		if (ac->tagged[i])
			ac->sigs[i].campaign_id[0] = '\0';
		ac->tagged[i] = ac->sigs[i].campaign_id[0] == '\0';
		status = st__campaign_assign(st, txn, &ac->sigs[i]);
		if (status == ST_OK)
			status = st_put_signal(st, txn, &ac->sigs[i], &ac->buf);
		if (status != ST_OK)
			return status;
	}
	status = st__agg_record(st, txn, ac->sigs, ac->n);
	if (status != ST_OK)
		return status;
	if (ac->batch_key) {
		status = st__batch_put(st, txn, ac->batch_key, next_seq,
				       next_seq + ac->n - 1, ac->n,
				       ac->sigs[0].received_us);
		if (status != ST_OK)
			return status;
	}

	/* In the same transaction, so a committed seq is never handed out again. */
	status = st__meta_set_next_seq(st, txn, next_seq + ac->n);
	if (status != ST_OK)
		return status;

	if (st->fault_commit) {
		st->fault_commit = false;
		return ST_ERR_IO;
	}
	ac->next_seq = next_seq + ac->n;
	return ST_OK;
}

static int st_append_with(st_store *st, struct sg_signal *sigs, size_t n,
			  struct st_append_ctx *ctx);

int st_append(st_store *st, struct sg_signal *sigs, size_t n)
{
	struct st_append_ctx ac = { sigs, n, 0, { 0 }, NULL, NULL, { 0, 0, 0 }, false };

	return st_append_with(st, sigs, n, &ac);
}

static bool batch_key_valid(const char *key)
{
	size_t len = strlen(key);

	if (len == 0 || len > ST_BATCH_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = key[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == ':' || c == '-'))
			return false;
	}
	return true;
}

int st_append_keyed(st_store *st, struct sg_signal *sigs, size_t n,
		    const char *batch_key, uint64_t *first, uint64_t *last,
		    bool *replayed)
{
	struct st_append_ctx ac = { sigs, n, 0, { 0 }, NULL, batch_key, { 0, 0, 0 }, false };
	int status;

	if (!batch_key || !batch_key_valid(batch_key) || !first || !last || !replayed)
		return ST_ERR_INVALID;
	status = st_append_with(st, sigs, n, &ac);
	*replayed = ac.replayed;
	if (status == ST_OK && ac.replayed) {
		*first = ac.earlier.first_seq;
		*last = ac.earlier.last_seq;
	} else if (status == ST_OK) {
		*first = sigs[0].seq;
		*last = sigs[n - 1].seq;
	}
	return status;
}

static int st_append_with(st_store *st, struct sg_signal *sigs, size_t n,
			  struct st_append_ctx *ctx)
{
	struct st_append_ctx ac = *ctx;
	int status;

	if (!st || (!sigs && n > 0))
		return ST_ERR_INVALID;
	if (n == 0)
		return ST_OK;
	ac.tagged = calloc(n, sizeof *ac.tagged);
	if (!ac.tagged)
		return ST_ERR_IO;

	msgpack_sbuffer_init(&ac.buf);
	status = st__write(st, ST_ROOM_APPEND, st_append_body, &ac);
	msgpack_sbuffer_destroy(&ac.buf);

	ctx->replayed = ac.replayed;
	ctx->earlier = ac.earlier;
	if (status == ST_OK && ac.replayed) {
		for (size_t i = 0; i < n; i++)
			sigs[i].seq = 0;
	} else if (status == ST_OK) {
		st_head_raise(st, ac.next_seq - 1);
	} else {
		for (size_t i = 0; i < n; i++) {
			sigs[i].seq = 0;
			if (ac.tagged[i])
				sigs[i].campaign_id[0] = '\0';
		}
	}
	free(ac.tagged);
	return status;
}

/* ---- reads by seq ---- */

int st_read_after(st_store *st, uint64_t after_seq, struct sg_signal *out,
		  size_t max, size_t *n)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	uint8_t seq_key[8];
	MDB_val key = { sizeof seq_key, seq_key };
	MDB_val val;
	size_t count = 0;
	int status = ST_OK;
	int rc;

	if (!st || !n || (!out && max > 0))
		return ST_ERR_INVALID;
	*n = 0;
	if (max == 0 || after_seq == UINT64_MAX)
		return ST_OK;

	status = st__txn_begin(st, MDB_RDONLY, &txn);
	if (status != ST_OK)
		goto out;
	rc = mdb_cursor_open(txn, st->dbi_signals, &cur);
	if (rc != MDB_SUCCESS) {
		status = st__status_from_mdb(rc);
		goto out;
	}

	st__put_u64(seq_key, after_seq + 1);
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	while (rc == MDB_SUCCESS && count < max) {
		if (key.mv_size != 8) {
			status = ST_ERR_CORRUPT;
			goto out;
		}
		status = st__signal_decode(&val, st__get_u64(key.mv_data), &out[count]);
		if (status != ST_OK)
			goto out;
		count++;
		if (count < max)
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		status = st__status_from_mdb(rc);

out:
	if (cur)
		mdb_cursor_close(cur);
	st__txn_abort(st, txn);
	*n = count;
	return status;
}

int st_get(st_store *st, uint64_t seq, struct sg_signal *out)
{
	MDB_txn *txn = NULL;
	uint8_t seq_key[8];
	MDB_val key = { sizeof seq_key, seq_key };
	MDB_val val;
	int status;
	int rc;

	if (!st || !out)
		return ST_ERR_INVALID;

	status = st__txn_begin(st, MDB_RDONLY, &txn);
	if (status != ST_OK)
		return status;

	st__put_u64(seq_key, seq);
	rc = mdb_get(txn, st->dbi_signals, &key, &val);
	if (rc == MDB_SUCCESS)
		status = st__signal_decode(&val, seq, out);
	else
		status = st__status_from_mdb(rc);

	st__txn_abort(st, txn);
	return status;
}

uint64_t st_oldest_seq(st_store *st)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val key;
	MDB_val val;
	uint64_t oldest = 0;
	int rc;

	if (st__txn_begin(st, MDB_RDONLY, &txn) != ST_OK)
		return 0;

	rc = mdb_cursor_open(txn, st->dbi_signals, &cur);
	if (rc == MDB_SUCCESS)
		rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	if (rc == MDB_SUCCESS && key.mv_size == 8)
		oldest = st__get_u64(key.mv_data);
	else if (rc == MDB_NOTFOUND && st__meta_next_seq(st, txn, &oldest) != ST_OK)
		oldest = 0;

	if (cur)
		mdb_cursor_close(cur);
	st__txn_abort(st, txn);
	return oldest;
}

/* ---- time index ---- */

/*
 * Reads up to ST_INDEX_CHUNK index entries from *pos on, lowering *best to
 * the smallest seq seen and moving *pos past the last entry. *next_seq,
 * when not NULL, receives meta next_seq from the same transaction.
 */
static int st_min_seq_chunk(st_store *st, uint8_t pos[ST_TIME_KEY_LEN],
			    uint64_t *best, bool *done, uint64_t *next_seq)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val key = { ST_TIME_KEY_LEN, pos };
	MDB_val val;
	size_t count = 0;
	int status;
	int rc;

	*done = true;
	status = st__txn_begin(st, MDB_RDONLY, &txn);
	if (status != ST_OK)
		goto out;
	if (next_seq) {
		status = st__meta_next_seq(st, txn, next_seq);
		if (status != ST_OK)
			goto out;
	}
	rc = mdb_cursor_open(txn, st->dbi_by_time, &cur);
	if (rc != MDB_SUCCESS) {
		status = st__status_from_mdb(rc);
		goto out;
	}

	rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	while (rc == MDB_SUCCESS && count < ST_INDEX_CHUNK) {
		int64_t us;
		uint64_t seq;

		if (!st__time_key_parse(&key, &us, &seq)) {
			status = ST_ERR_CORRUPT;
			goto out;
		}
		if (seq < *best)
			*best = seq;
		memcpy(pos, key.mv_data, ST_TIME_KEY_LEN);
		count++;
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		status = st__status_from_mdb(rc);
		goto out;
	}

	/* More entries remain: resume just after the last one read. */
	if (rc == MDB_SUCCESS)
		*done = !st_time_key_next(pos);

out:
	if (cur)
		mdb_cursor_close(cur);
	st__txn_abort(st, txn);
	return status;
}

/*
 * NOTE: observed times need not follow seq order, so this visits every
 * index entry observed at or after since_us: the cost grows with the
 * number of signals in that window, in chunks of ST_INDEX_CHUNK entries.
 */
int st_first_seq_observed_since(st_store *st, int64_t since_us,
				uint64_t *seq)
{
	uint8_t pos[ST_TIME_KEY_LEN];
	uint64_t best = UINT64_MAX;
	uint64_t next_seq = 0;
	bool done = false;
	int status;

	if (!st || !seq)
		return ST_ERR_INVALID;

	/*
	 * next_seq comes from the first chunk's transaction. Signals that
	 * commit later get a seq at or above it, so the minimum with it
	 * covers them too.
	 */
	st__time_key(pos, since_us, 0);
	status = st_min_seq_chunk(st, pos, &best, &done, &next_seq);
	while (status == ST_OK && !done)
		status = st_min_seq_chunk(st, pos, &best, &done, NULL);

	if (status == ST_OK)
		*seq = best < next_seq ? best : next_seq;
	return status;
}

/* Puts the cursor on the newest index entry strictly before start. */
static int st_scan_position(MDB_cursor *cur, const struct st_time_pos *start,
			    MDB_val *key)
{
	uint8_t start_key[ST_TIME_KEY_LEN];
	MDB_val val;
	int rc;

	if (!start)
		return mdb_cursor_get(cur, key, &val, MDB_LAST);

	st__time_key(start_key, start->observed_us, start->seq);
	*key = (MDB_val){ sizeof start_key, start_key };
	rc = mdb_cursor_get(cur, key, &val, MDB_SET_RANGE);
	if (rc == MDB_SUCCESS)
		return mdb_cursor_get(cur, key, &val, MDB_PREV);
	if (rc == MDB_NOTFOUND)
		return mdb_cursor_get(cur, key, &val, MDB_LAST);
	return rc;
}

/*
 * Reads up to ST_SCAN_CHUNK signals newest first, strictly before start
 * (or from the newest) and observed at or after min_us, into buf. *last
 * is the index position of the last one read; *end is set when no further
 * signal qualifies.
 */
static int st_scan_chunk(st_store *st, const struct st_time_pos *start,
			 int64_t min_us, struct sg_signal *buf, size_t *n,
			 struct st_time_pos *last, bool *end)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	uint8_t seq_key[8];
	MDB_val key;
	MDB_val skey = { sizeof seq_key, seq_key };
	MDB_val val;
	size_t count = 0;
	int status;
	int rc;

	*end = false;
	status = st__txn_begin(st, MDB_RDONLY, &txn);
	if (status != ST_OK)
		goto out;
	rc = mdb_cursor_open(txn, st->dbi_by_time, &cur);
	if (rc != MDB_SUCCESS) {
		status = st__status_from_mdb(rc);
		goto out;
	}

	rc = st_scan_position(cur, start, &key);
	while (rc == MDB_SUCCESS && count < ST_SCAN_CHUNK) {
		int64_t us;
		uint64_t seq;

		if (!st__time_key_parse(&key, &us, &seq)) {
			status = ST_ERR_CORRUPT;
			goto out;
		}
		if (us < min_us) {
			*end = true;
			break;
		}

		/* An index entry without its signal breaks the one-transaction rule. */
		st__put_u64(seq_key, seq);
		rc = mdb_get(txn, st->dbi_signals, &skey, &val);
		if (rc != MDB_SUCCESS) {
			status = rc == MDB_NOTFOUND ? ST_ERR_CORRUPT : st__status_from_mdb(rc);
			goto out;
		}
		status = st__signal_decode(&val, seq, &buf[count]);
		if (status != ST_OK)
			goto out;
		*last = (struct st_time_pos){ us, seq };
		count++;
		rc = mdb_cursor_get(cur, &key, &val, MDB_PREV);
	}
	if (rc == MDB_NOTFOUND)
		*end = true;
	else if (rc != MDB_SUCCESS)
		status = st__status_from_mdb(rc);

out:
	if (cur)
		mdb_cursor_close(cur);
	st__txn_abort(st, txn);
	*n = status == ST_OK ? count : 0;
	return status;
}

int st_scan_time_desc(st_store *st, const struct st_time_pos *start,
		      int64_t min_us, st_visit_fn visit, void *ctx)
{
	struct sg_signal *buf = NULL;
	struct st_time_pos pos;
	bool have_pos = start != NULL;
	bool end = false;
	size_t n = 0;
	int status = ST_OK;

	if (!st || !visit)
		return ST_ERR_INVALID;
	buf = malloc(ST_SCAN_CHUNK * sizeof *buf);
	if (!buf)
		return ST_ERR_IO;
	if (start)
		pos = *start;

	while (!end) {
		status = st_scan_chunk(st, have_pos ? &pos : NULL, min_us, buf,
				       &n, &pos, &end);
		if (status != ST_OK || n == 0)
			break;
		have_pos = true;

		/* The chunk's transaction is closed: visit may take its time. */
		for (size_t i = 0; i < n; i++) {
			if (visit(&buf[i], ctx) != 0)
				goto out;
		}
	}

out:
	free(buf);
	return status;
}

/* ---- retention ---- */

/*
 * Deletes the by_time entry of seq by walking the whole index. Only used
 * for a stored value that does not decode, whose observed time is unknown.
 */
static int st_time_index_drop(st_store *st, MDB_txn *txn, uint64_t seq)
{
	MDB_cursor *cur = NULL;
	MDB_val key;
	MDB_val val;
	int rc;

	rc = mdb_cursor_open(txn, st->dbi_by_time, &cur);
	if (rc == MDB_SUCCESS)
		rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	while (rc == MDB_SUCCESS) {
		int64_t us;
		uint64_t entry_seq;

		if (st__time_key_parse(&key, &us, &entry_seq) && entry_seq == seq) {
			rc = mdb_cursor_del(cur, 0);
			break;
		}
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (cur)
		mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? ST_OK : st__status_from_mdb(rc);
}

/* Deletes signals[seq] and its by_time and by_domain entries; by_recv is
 * the caller's. */
static int st_delete_signal(st_store *st, MDB_txn *txn, uint64_t seq)
{
	uint8_t seq_key[8];
	uint8_t time_key[ST_TIME_KEY_LEN];
	MDB_val key = { sizeof seq_key, seq_key };
	MDB_val tkey = { sizeof time_key, time_key };
	MDB_val val;
	struct sg_signal s;
	bool decoded;
	int status;
	int rc;

	st__put_u64(seq_key, seq);
	rc = mdb_get(txn, st->dbi_signals, &key, &val);
	if (rc == MDB_NOTFOUND)
		return ST_OK;
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);

	/*
	 * A corrupt value must not block retention for good: delete it and
	 * find its time entry the slow way.
	 */
	decoded = st__signal_decode(&val, seq, &s) == ST_OK;
	if (decoded) {
		/* NOTE: a value that does not decode leaves no mark, so counts
		 * from the aggregates may still include that one signal. */
		status = st__agg_note_deleted(st, txn, s.observed_us);
		if (status != ST_OK)
			return status;
		status = st__domain_index_del(st, txn, &s);
		if (status != ST_OK)
			return status;
		st__time_key(time_key, s.observed_us, seq);
		rc = mdb_del(txn, st->dbi_by_time, &tkey, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return st__status_from_mdb(rc);
	}
	if (!decoded) {
		status = st__domain_index_drop_seq(st, txn, seq);
		if (status != ST_OK)
			return status;
	}
	if (!decoded || rc == MDB_NOTFOUND) {
		status = st_time_index_drop(st, txn, seq);
		if (status != ST_OK)
			return status;
	}

	rc = mdb_del(txn, st->dbi_signals, &key, NULL);
	return st__status_from_mdb(rc);
}

struct st_delete_ctx {
	int64_t cutoff_us;
	size_t max_delete;
	size_t deleted;
};

static int st_delete_body(st_store *st, MDB_txn *txn, void *ctx)
{
	struct st_delete_ctx *dc = ctx;
	MDB_cursor *cur = NULL;
	uint8_t recv_key[ST_TIME_KEY_LEN];
	MDB_val key;
	MDB_val val;
	int status = ST_OK;
	int rc;

	dc->deleted = 0;
	rc = mdb_cursor_open(txn, st->dbi_by_recv, &cur);
	if (rc != MDB_SUCCESS) {
		status = st__status_from_mdb(rc);
		goto out;
	}

	while (dc->deleted < dc->max_delete) {
		int64_t us;
		uint64_t seq;

		rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
		if (rc != MDB_SUCCESS)
			break;
		if (!st__time_key_parse(&key, &us, &seq)) {
			status = ST_ERR_CORRUPT;
			goto out;
		}
		if (us >= dc->cutoff_us)
			break;

		/* Copy the key: it points into a page that the deletes change. */
		memcpy(recv_key, key.mv_data, sizeof recv_key);
		status = st_delete_signal(st, txn, seq);
		if (status != ST_OK)
			goto out;
		key = (MDB_val){ sizeof recv_key, recv_key };
		rc = mdb_del(txn, st->dbi_by_recv, &key, NULL);
		if (rc != MDB_SUCCESS)
			break;
		dc->deleted++;
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		status = st__status_from_mdb(rc);
	/* Batch keys go with the signals of their receive time. */
	if (status == ST_OK)
		status = st__batch_prune(st, txn, dc->cutoff_us, dc->max_delete);

out:
	if (cur)
		mdb_cursor_close(cur);
	return status;
}

/* Rewrites meta next_seq unchanged: a commit that changes nothing else. */
static int st_touch_body(st_store *st, MDB_txn *txn, void *ctx)
{
	uint64_t next_seq = 0;
	int status;

	(void)ctx;
	status = st__meta_next_seq(st, txn, &next_seq);
	if (status == ST_OK)
		status = st__meta_set_next_seq(st, txn, next_seq);
	return status;
}

int st_delete_received_before(st_store *st, int64_t cutoff_us,
			      size_t max_delete, size_t *deleted)
{
	struct st_delete_ctx dc = { cutoff_us, 0, 0 };
	size_t step = max_delete;
	size_t left = max_delete;
	int status = ST_OK;

	if (!st || !deleted)
		return ST_ERR_INVALID;
	*deleted = 0;

	/*
	 * One transaction normally. On a full map, each page a deletion
	 * touches needs a fresh page for copy-on-write, so a large batch may
	 * not fit even in the reserve: halve it until it fits, and let later
	 * transactions reuse the pages the earlier ones freed.
	 * NOTE: the unit tests do not reach the halving. Pages that earlier
	 * appends freed covered every full-map deletion they tried.
	 */
	while (left > 0) {
		dc.max_delete = step < left ? step : left;
		status = st__write(st, ST_ROOM_RESERVE, st_delete_body, &dc);
		if (status == ST_ERR_MAP_FULL && dc.max_delete > 1) {
			step = dc.max_delete / 2;
			continue;
		}
		if (status != ST_OK)
			break;

		*deleted += dc.deleted;
		left -= dc.deleted;
		if (dc.deleted < dc.max_delete)
			break;
		if (step < left)
			step = step > left / 2 ? left : step * 2;
	}

	/*
	 * LMDB reuses the pages that transaction N freed only from
	 * transaction N + 2 on, and a failed append commits nothing. One
	 * more commit here lets the very next append use the freed pages.
	 */
	if (*deleted > 0 && status == ST_OK)
		status = st__write(st, ST_ROOM_RESERVE, st_touch_body, NULL);
	return status;
}
