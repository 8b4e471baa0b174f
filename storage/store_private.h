/*
 * Private to the storage library: the store handle, transaction helpers
 * that cooperate with map growth, and the byte layout of LMDB keys.
 *
 * Map growth and transactions: mdb_env_set_mapsize() may only run while
 * this process has no transaction open, and the server runs transactions
 * from several threads. So every transaction holds map_lock shared from
 * begin to commit or abort, and a resize holds it exclusive.
 */
#ifndef CANARY_STORE_PRIVATE_H
#define CANARY_STORE_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <lmdb.h>
#include <msgpack.h>

#include "store.h"

/* Schema version this code writes and understands. */
#define ST_SCHEMA_VERSION 1u

/* Largest stored value, in bytes, that a read accepts; more is corrupt. */
#define ST_VALUE_MAX 65536

/* Length of an index key: 8-byte time, then 8-byte seq. */
#define ST_TIME_KEY_LEN 16

/*
 * Meta entries besides epoch, next_seq and schema:
 *
 *   "deleted_observed_max"    time key: the newest observed time of a
 *                             signal that retention deleted (aggregates.c)
 *   "unindexed_observed_max"  time key: the newest observed time of a
 *                             stored signal that may lack joint counts
 *                             and a by_domain entry, because a canaryd
 *                             older than both stored it. Absent: none.
 *   "indexed_next_seq"        u64: next_seq as of the last commit by this
 *                             code, which writes both for every signal
 *
 * st_open compares indexed_next_seq with next_seq. They differ in a store
 * from before by_domain existed and in one that an older canaryd
 * appended to since. Then st_open raises unindexed_observed_max to the
 * newest observed time in by_time and empties by_domain, because its
 * entries may point to signals that the older canaryd's retention
 * deleted.
 */
#define ST_META_UNINDEXED_MAX "unindexed_observed_max"

struct st_store {
	MDB_env *env;
	MDB_dbi dbi_meta;
	MDB_dbi dbi_signals;
	MDB_dbi dbi_by_time;
	MDB_dbi dbi_by_recv;
	MDB_dbi dbi_by_domain;      /* domain_index.c */
	MDB_dbi dbi_keys;
	MDB_dbi dbi_key_hash;
	MDB_dbi dbi_stats;          /* aggregates.c */
	MDB_dbi dbi_sensors;
	MDB_dbi dbi_campaigns;      /* campaigns.c */
	MDB_dbi dbi_camp_keys;
	MDB_dbi dbi_camp_last;
	MDB_dbi dbi_batches;
	MDB_dbi dbi_batch_time;

	/* Analytics settings, see st_analytics_configure. */
	_Atomic int64_t campaign_idle_gap_us;
	_Atomic int64_t minute_keep_us;
	_Atomic int64_t stats_keep_us;

	/* Held shared by every open transaction, exclusive to resize. */
	pthread_rwlock_t map_lock;
	uint64_t map_size_max;
	uint64_t map_size_append;   /* max minus the reserve; see st_room */

	/* Last committed seq as seen by this process. */
	_Atomic uint64_t head_seq;

	/* Fault point: the next st_append fails before commit. */
	bool fault_commit;

	char epoch[33];
};

/*
 * Begins an LMDB transaction (flags as for mdb_txn_begin) with map_lock
 * held shared. Adopts a map that another process grew. Returns an st_status.
 */
int st__txn_begin(st_store *st, unsigned flags, MDB_txn **txn);

/* Aborts txn and releases map_lock. */
void st__txn_abort(st_store *st, MDB_txn *txn);

/* Commits txn and releases map_lock. Returns the LMDB result code. */
int st__txn_commit(st_store *st, MDB_txn *txn);

/* Maps an LMDB result code other than MDB_SUCCESS to an st_status. */
int st__status_from_mdb(int rc);

/*
 * How far a write transaction may grow the map. Appends and new keys stop
 * short of map_size_max by a reserve, so that a store that is full for
 * them still has pages for the copy-on-write of deletions and key
 * revocations. LMDB reuses the pages a deletion frees only two commits
 * later, so without the reserve retention could not make room again.
 */
enum st_room {
	ST_ROOM_APPEND,         /* up to map_size_append */
	ST_ROOM_RESERVE         /* up to map_size_max, then back to append */
};

/*
 * Body of a write transaction. Returns ST_OK to commit, or an st_status;
 * ST_ERR_MAP_FULL makes st__write grow the map and run the body again,
 * so a body must not keep state from an earlier run.
 */
typedef int (*st_write_fn)(st_store *st, MDB_txn *txn, void *ctx);

/*
 * Runs body in a write transaction and commits it, growing the map and
 * retrying the whole transaction while LMDB reports MDB_MAP_FULL, up to
 * the limit of room. Returns ST_OK, the body's error, or ST_ERR_MAP_FULL.
 */
int st__write(st_store *st, enum st_room room, st_write_fn body, void *ctx);

/* Reads meta "next_seq" inside txn. Returns an st_status. */
int st__meta_next_seq(st_store *st, MDB_txn *txn, uint64_t *next_seq);

/* Writes meta "next_seq", and "indexed_next_seq" with the same value,
 * inside txn. Returns an st_status. */
int st__meta_set_next_seq(st_store *st, MDB_txn *txn, uint64_t next_seq);

/* Reads a time-key meta entry; INT64_MIN when absent. Returns an
 * st_status. */
int st__meta_get_time(st_store *st, MDB_txn *txn, const char *name,
		      int64_t *out);

/* Writes a time-key meta entry. Returns an st_status. */
int st__meta_put_time(st_store *st, MDB_txn *txn, const char *name,
		      int64_t us);

/* ---- the per-domain time index (domain_index.c) ---- */

/* Puts or deletes the by_domain entry of s (a missing entry is no error
 * for the delete). Returns an st_status. */
int st__domain_index_put(st_store *st, MDB_txn *txn, const struct sg_signal *s);
int st__domain_index_del(st_store *st, MDB_txn *txn, const struct sg_signal *s);

/* Deletes the by_domain entry of seq by walking the whole index, for a
 * stored signal that does not decode. Returns an st_status. */
int st__domain_index_drop_seq(st_store *st, MDB_txn *txn, uint64_t seq);

/* Compares indexed_next_seq with next_seq at open and, when they differ,
 * updates the store as the meta entries above describe. Runs inside the
 * open transaction after the metadata loaded. Returns an st_status. */
int st__index_check(st_store *st, MDB_txn *txn);

/*
 * Returns ST_OK when data[0..len-1] is exactly one MessagePack object
 * whose every array and map declares no more elements than bytes remain.
 * msgpack-c allocates a container's element array from the declared
 * count before it reads the elements, so an unchecked 5-byte value could
 * ask for gigabytes. Returns ST_ERR_CORRUPT otherwise.
 */
int st__value_check(const void *data, size_t len);

/*
 * Unpacks a stored value (after st__value_check) into u, which the caller
 * initialised with msgpack_unpacked_init and destroys. Returns ST_OK or
 * ST_ERR_CORRUPT.
 */
int st__value_unpack(const MDB_val *v, msgpack_unpacked *u);

/* Packs s in its stored form into buf. Returns ST_OK or ST_ERR_IO. */
int st__signal_encode(const struct sg_signal *s, msgpack_sbuffer *buf);

/* Decodes a stored signal; seq comes from its key. ST_OK or ST_ERR_CORRUPT. */
int st__signal_decode(const MDB_val *v, uint64_t seq, struct sg_signal *out);

/* ---- analytics, written inside st_append's transaction ---- */

/* Sets the analytics settings to their defaults (aggregates.c). */
void st__analytics_defaults(st_store *st);

/*
 * Puts s into a campaign (campaigns.c): joins one of the recent campaigns
 * of its domain and attacker infrastructure or starts one with id s->seq.
 * Fills s->campaign_id when it is empty. Returns an st_status.
 */
int st__campaign_assign(st_store *st, MDB_txn *txn, struct sg_signal *s);

/*
 * Adds the batch to the stats counters and the sensors' last-seen times
 * (aggregates.c). Returns an st_status.
 */
int st__agg_record(st_store *st, MDB_txn *txn, const struct sg_signal *sigs,
		   size_t n);

/*
 * Raises meta "deleted_observed_max" to observed_us: the newest observed
 * time of any signal that retention deleted. Counts from the aggregates
 * are exact only for windows that start after it.
 */
int st__agg_note_deleted(st_store *st, MDB_txn *txn, int64_t observed_us);

/*
 * Deletes campaigns whose last_seen is before cutoff_us, at most
 * max_delete of them, adding the count to *deleted and setting *more
 * when older ones remain (campaigns.c).
 */
int st__campaign_prune(st_store *st, MDB_txn *txn, int64_t cutoff_us,
		       size_t max_delete, size_t *deleted, bool *more);

/* ---- key layout: big endian, so byte order equals numeric order ---- */

static inline void st__put_u64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

static inline uint64_t st__get_u64(const uint8_t in[8])
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | in[i];
	return v;
}

/*
 * Flipping the sign bit maps INT64_MIN..INT64_MAX onto 0..UINT64_MAX in
 * order, so times before 1970 sort before later ones.
 */
static inline uint64_t st__time_to_key(int64_t us)
{
	return (uint64_t)us ^ (UINT64_C(1) << 63);
}

static inline int64_t st__time_from_key(uint64_t k)
{
	uint64_t u = k ^ (UINT64_C(1) << 63);
	int64_t us;

	memcpy(&us, &u, sizeof us);
	return us;
}

static inline void st__time_key(uint8_t out[ST_TIME_KEY_LEN], int64_t us,
				uint64_t seq)
{
	st__put_u64(out, st__time_to_key(us));
	st__put_u64(out + 8, seq);
}

/* Returns false when key is not an index key. */
static inline bool st__time_key_parse(const MDB_val *key, int64_t *us,
				      uint64_t *seq)
{
	const uint8_t *p = key->mv_data;

	if (key->mv_size != ST_TIME_KEY_LEN)
		return false;
	*us = st__time_from_key(st__get_u64(p));
	*seq = st__get_u64(p + 8);
	return true;
}

/* ---- ingest batch keys (batches.c) ---- */

struct st_batch_record {
	uint64_t first_seq;
	uint64_t last_seq;
	uint64_t count;
};

/* Finds a committed batch by key: ST_OK, or ST_ERR_NOT_FOUND. */
int st__batch_lookup(st_store *st, MDB_txn *txn, const char *batch_key,
		     struct st_batch_record *out);
/* Records a committed batch under its key, in the batch's transaction. */
int st__batch_put(st_store *st, MDB_txn *txn, const char *batch_key,
		  uint64_t first_seq, uint64_t last_seq, uint64_t count,
		  int64_t received_us);
/* Deletes up to max_delete batch keys received before cutoff_us. */
int st__batch_prune(st_store *st, MDB_txn *txn, int64_t cutoff_us,
		    size_t max_delete);

#endif
