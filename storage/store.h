/*
 * The signal store: one LMDB environment holding signals by seq, a time
 * index, API keys and the store's metadata. Values are MessagePack.
 *
 * Nothing here knows about sockets. Every function that reads opens one
 * short read transaction and closes it before it returns, so a slow
 * caller can never pin old pages and grow the file. The environment is
 * opened with MDB_NOTLS and must not be used across fork().
 *
 * Databases (named LMDB sub-databases):
 *   meta      "epoch" -> 32 hex chars, "next_seq" -> u64 (8 bytes, big
 *             endian), "schema" -> u32
 *   signals   seq (u64 big endian) -> MessagePack map (sg_to_msgpack with
 *             received_us)
 *   by_time   observed_us (i64 big endian, sign bit flipped) + seq -> ""
 *   by_recv   received_us (same encoding) + seq -> ""
 *   keys      key id -> MessagePack map of struct st_key
 *   key_hash  SHA-256 of the secret (32 bytes) -> key id
 */
#ifndef CANARY_STORE_H
#define CANARY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../signal/signal.h"

typedef struct st_store st_store;

enum st_status {
	ST_OK = 0,
	ST_ERR_IO = -1,         /* LMDB, file system or memory failure */
	ST_ERR_MAP_FULL = -2,   /* map at map_size_max_bytes less the reserve */
	ST_ERR_NOT_FOUND = -3,
	ST_ERR_CORRUPT = -4,    /* a stored value does not decode */
	ST_ERR_INVALID = -5,    /* bad argument */
	ST_ERR_SCHEMA = -6,     /* store written by an unknown schema */
	ST_ERR_EXISTS = -7
};

/* Returns a static English description of an st_status. */
const char *st_strerror(int status);

/*
 * Map sizes: 0 picks the default. The maximum is at least 1 MiB. Appends
 * and new keys stop short of the maximum by a reserve of 1/32 of it (at
 * least 256 KiB, at most a quarter). Deletions and revocations may use
 * the reserve, so retention can still make room in a full store. The
 * initial size is at least 64 KiB and at most the maximum minus the
 * reserve.
 */
struct st_options {
	uint64_t map_size_initial;  /* bytes; 0 means 64 MiB */
	uint64_t map_size_max;      /* bytes; the map grows up to this;
				       0 means 16 GiB */
	unsigned max_readers;       /* 0 means 512 */
};

/*
 * Opens (creating if needed) the store in directory dir, which is created
 * with mode 0700 when missing. A new store gets a random epoch and
 * next_seq 1. Clears reader slots left by dead processes.
 * Returns ST_OK with *out set, or an error with *out NULL and, when
 * errbuf is not NULL, a message naming the directory.
 */
int st_open(const char *dir, const struct st_options *opt, st_store **out,
	    char *errbuf, size_t errlen);
void st_close(st_store *st);

/* The store's epoch, 32 lower-case hex characters. Valid until st_close. */
const char *st_epoch(const st_store *st);

/* The last committed seq, 0 when nothing was ever stored. */
uint64_t st_head_seq(const st_store *st);

/*
 * The smallest retained seq; head + 1 when no signal is retained; 0 when
 * the store cannot be read (0 is never a seq).
 */
uint64_t st_oldest_seq(st_store *st);

/* Current map size in bytes: what the data file may fill before it grows. */
uint64_t st_map_size(st_store *st);

/*
 * Assigns consecutive seq values to sigs[0..n-1] in order (writing
 * sigs[i].seq), stores them and their index entries in one write
 * transaction, and commits. Grows the map when it is full, up to
 * map_size_max less the reserve, and returns ST_ERR_MAP_FULL beyond. On
 * any failure nothing is stored, the seq fields are reset to 0 and no
 * seq is consumed.
 */
int st_append(st_store *st, struct sg_signal *sigs, size_t n);

/*
 * Reads up to max signals with seq > after_seq in ascending order into
 * out. *n is the number read; fewer than max means the head was reached.
 * On an error (ST_ERR_CORRUPT for a value that does not decode), *n
 * counts the signals read before it.
 */
int st_read_after(st_store *st, uint64_t after_seq, struct sg_signal *out,
		  size_t max, size_t *n);

/* Reads the signal with this seq. ST_ERR_NOT_FOUND when not retained. */
int st_get(st_store *st, uint64_t seq, struct sg_signal *out);

/*
 * Returns in *seq the smallest seq of a retained signal observed at or
 * after since_us, or head + 1 when there is none.
 */
int st_first_seq_observed_since(st_store *st, int64_t since_us,
				uint64_t *seq);

/* Position in the time index, for newest-first paging. */
struct st_time_pos {
	int64_t observed_us;
	uint64_t seq;
};

/*
 * Visits retained signals newest first by observed time (ties by
 * descending seq), starting strictly before *start (or at the newest when
 * start is NULL) and stopping at signals observed before min_us. Reads in
 * chunks of at most 512 signals, one read transaction per chunk, and
 * calls visit outside any transaction. visit returns 0 to go on, 1 to
 * stop. Returns ST_OK or an error.
 */
typedef int (*st_visit_fn)(const struct sg_signal *s, void *ctx);
int st_scan_time_desc(st_store *st, const struct st_time_pos *start,
		      int64_t min_us, st_visit_fn visit, void *ctx);

/*
 * Deletes signals received before cutoff_us, oldest received first, at
 * most max_delete of them, in one write transaction unless the map is
 * full: then in smaller ones, and *deleted counts what they committed
 * even when a later one fails. Never lowers next_seq.
 */
int st_delete_received_before(st_store *st, int64_t cutoff_us,
			      size_t max_delete, size_t *deleted);

/* ---- API keys ---- */

#define ST_SCOPE_INGEST    0x1u
#define ST_SCOPE_SUBSCRIBE 0x2u
#define ST_SCOPE_READ      0x4u
#define ST_SCOPE_ADMIN     0x8u

#define ST_KEY_ID_LEN 16        /* hex characters */
#define ST_KEY_NAME_MAX 64

struct st_key {
	char id[ST_KEY_ID_LEN + 1];
	uint8_t hash[32];           /* SHA-256 of the whole secret key */
	uint32_t scopes;            /* ST_SCOPE_* bits */
	char name[ST_KEY_NAME_MAX + 1];
	char *domains;              /* comma-separated A-labels, or NULL for
				       all domains; owned, see st_key_clear */
	int64_t created_us;
	int64_t revoked_us;         /* 0 while the key is valid */
};

/* Frees what st_key_find_by_* or st_key_list allocated inside k. */
void st_key_clear(struct st_key *k);

/*
 * Stores a new key. ST_ERR_EXISTS when the id or hash is taken, and then
 * nothing is stored. ST_ERR_INVALID unless id is 16 lower-case hex
 * characters, scopes holds only ST_SCOPE_* bits and domains is at most
 * 64 KiB.
 */
int st_key_put(st_store *st, const struct st_key *k);

/*
 * Fills out from the key whose secret hashes to hash, or with this id
 * (ST_ERR_INVALID unless 16 lower-case hex characters). out's earlier
 * contents are overwritten, not freed; release it with st_key_clear.
 */
int st_key_find_by_hash(st_store *st, const uint8_t hash[32],
			struct st_key *out);
int st_key_find_by_id(st_store *st, const char *id, struct st_key *out);

/* Calls visit for each key in id order; k is only valid during the call. */
typedef void (*st_key_visit_fn)(const struct st_key *k, void *ctx);
int st_key_list(st_store *st, st_key_visit_fn visit, void *ctx);

/* Marks the key revoked now. ST_ERR_NOT_FOUND for an unknown id. */
int st_key_revoke(st_store *st, const char *id);

/* ---- fault points for tests ---- */

/*
 * When the environment variable CANARY_FAULT names "commit", the next
 * st_append fails with ST_ERR_IO after writing and before committing, so
 * tests can check that a failed batch leaves no trace. Read at st_open.
 */

#endif
