/*
 * Ingest batch keys: a client may name a batch (HTTP Idempotency-Key), and
 * a batch posted again under the same key, for example after its reply was
 * lost, is answered with the first commit's seqs instead of being stored
 * twice. Keys are written in the batch's own transaction.
 *
 *   batches     key -> first seq, last seq, count, received_us (4 x u64,
 *               big endian)
 *   batch_time  received_us (time key) + key -> "", for pruning in
 *               receive order with the signals' retention
 */
#include <string.h>

#include "store_private.h"

#define BATCH_VALUE_LEN 32

int st__batch_lookup(st_store *st, MDB_txn *txn, const char *batch_key,
		     struct st_batch_record *out)
{
	MDB_val key = { strlen(batch_key), (void *)batch_key };
	MDB_val val;
	const uint8_t *p;
	int rc = mdb_get(txn, st->dbi_batches, &key, &val);

	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);
	if (val.mv_size != BATCH_VALUE_LEN)
		return ST_ERR_CORRUPT;
	p = val.mv_data;
	out->first_seq = st__get_u64(p);
	out->last_seq = st__get_u64(p + 8);
	out->count = st__get_u64(p + 16);
	return ST_OK;
}

int st__batch_put(st_store *st, MDB_txn *txn, const char *batch_key,
		  uint64_t first_seq, uint64_t last_seq, uint64_t count,
		  int64_t received_us)
{
	size_t klen = strlen(batch_key);
	uint8_t value[BATCH_VALUE_LEN];
	uint8_t time_key[ST_TIME_KEY_LEN + ST_BATCH_KEY_MAX];
	MDB_val key = { klen, (void *)batch_key };
	MDB_val val = { sizeof value, value };
	MDB_val empty = { 0, NULL };
	int rc;

	st__put_u64(value, first_seq);
	st__put_u64(value + 8, last_seq);
	st__put_u64(value + 16, count);
	st__put_u64(value + 24, (uint64_t)received_us);
	rc = mdb_put(txn, st->dbi_batches, &key, &val, MDB_NOOVERWRITE);
	if (rc != MDB_SUCCESS)
		return rc == MDB_KEYEXIST ? ST_ERR_EXISTS : st__status_from_mdb(rc);

	/* The time key's seq part is unused here; the batch key follows it. */
	st__time_key(time_key, received_us, 0);
	memcpy(time_key + ST_TIME_KEY_LEN, batch_key, klen);
	key = (MDB_val){ ST_TIME_KEY_LEN + klen, time_key };
	return st__status_from_mdb(mdb_put(txn, st->dbi_batch_time, &key, &empty, 0));
}

int st__batch_prune(st_store *st, MDB_txn *txn, int64_t cutoff_us,
		    size_t max_delete)
{
	uint8_t copy[ST_TIME_KEY_LEN + ST_BATCH_KEY_MAX];
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	size_t deleted = 0;
	int status = ST_OK;
	int rc;

	rc = mdb_cursor_open(txn, st->dbi_batch_time, &cur);
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);

	while (deleted < max_delete) {
		size_t klen;

		rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
		if (rc != MDB_SUCCESS)
			break;
		if (key.mv_size <= ST_TIME_KEY_LEN || key.mv_size > sizeof copy) {
			status = ST_ERR_CORRUPT;
			goto out;
		}
		if (st__time_from_key(st__get_u64(key.mv_data)) >= cutoff_us)
			break;

		/* Copy the key: it points into a page that the deletes change. */
		klen = key.mv_size - ST_TIME_KEY_LEN;
		memcpy(copy, key.mv_data, key.mv_size);
		key = (MDB_val){ klen, copy + ST_TIME_KEY_LEN };
		rc = mdb_del(txn, st->dbi_batches, &key, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			break;
		key = (MDB_val){ ST_TIME_KEY_LEN + klen, copy };
		rc = mdb_del(txn, st->dbi_batch_time, &key, NULL);
		if (rc != MDB_SUCCESS)
			break;
		deleted++;
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		status = st__status_from_mdb(rc);
out:
	mdb_cursor_close(cur);
	return status;
}
