/*
 * The store's environment: opening and closing, the metadata database,
 * transactions and map growth. Signals live in signals.c, API keys in
 * keys.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "store_private.h"

#define ST_MAP_SIZE_DEFAULT (UINT64_C(64) << 20)
#define ST_MAP_SIZE_MAX_DEFAULT (UINT64_C(16) << 30)
#define ST_MAP_SIZE_FLOOR (UINT64_C(64) << 10)
#define ST_MAP_SIZE_MAX_FLOOR (UINT64_C(1) << 20)
#define ST_MAP_RESERVE_MIN (UINT64_C(256) << 10)
#define ST_MAX_READERS_DEFAULT 512u

/* Named databases; more than the store uses, for later schema versions. */
#define ST_MAX_DBS 16

/* Attempts to adopt a map that other processes keep growing. */
#define ST_RESIZE_ATTEMPTS 4

const char *st_strerror(int status)
{
	switch (status) {
	case ST_OK:
		return "success";
	case ST_ERR_IO:
		return "storage input/output error";
	case ST_ERR_MAP_FULL:
		return "store is full: the LMDB map reached map_size_max_bytes";
	case ST_ERR_NOT_FOUND:
		return "not found";
	case ST_ERR_CORRUPT:
		return "a stored value is corrupt and does not decode";
	case ST_ERR_INVALID:
		return "invalid argument";
	case ST_ERR_SCHEMA:
		return "store was written by a newer canaryd (unknown schema)";
	case ST_ERR_EXISTS:
		return "already exists";
	default:
		return "unknown storage error";
	}
}

int st__status_from_mdb(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return ST_OK;
	case MDB_NOTFOUND:
		return ST_ERR_NOT_FOUND;
	case MDB_MAP_FULL:
		return ST_ERR_MAP_FULL;
	case MDB_KEYEXIST:
		return ST_ERR_EXISTS;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
		return ST_ERR_CORRUPT;
	default:
		return ST_ERR_IO;
	}
}

/* ---- transactions and map growth ---- */

int st__txn_begin(st_store *st, unsigned flags, MDB_txn **txn)
{
	int rc = MDB_SUCCESS;

	*txn = NULL;
	for (int attempt = 0; attempt < ST_RESIZE_ATTEMPTS; attempt++) {
		pthread_rwlock_rdlock(&st->map_lock);
		rc = mdb_txn_begin(st->env, NULL, flags, txn);
		if (rc == MDB_SUCCESS)
			return ST_OK;
		pthread_rwlock_unlock(&st->map_lock);
		*txn = NULL;
		if (rc != MDB_MAP_RESIZED)
			return st__status_from_mdb(rc);

		/*
		 * Another process grew the map past this process's mapping.
		 * Size 0 adopts the size recorded in the file; that needs
		 * every transaction of this process closed.
		 */
		pthread_rwlock_wrlock(&st->map_lock);
		rc = mdb_env_set_mapsize(st->env, 0);
		pthread_rwlock_unlock(&st->map_lock);
		if (rc != MDB_SUCCESS)
			return st__status_from_mdb(rc);
	}
	return st__status_from_mdb(rc);
}

void st__txn_abort(st_store *st, MDB_txn *txn)
{
	if (!txn)
		return;
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&st->map_lock);
}

int st__txn_commit(st_store *st, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);

	pthread_rwlock_unlock(&st->map_lock);
	return rc;
}

/*
 * Doubles the map, up to limit bytes. Returns ST_ERR_MAP_FULL when the
 * map is already at the limit.
 */
static int st_map_grow(st_store *st, uint64_t limit)
{
	MDB_envinfo info;
	uint64_t size = 0;
	int status = ST_OK;

	pthread_rwlock_wrlock(&st->map_lock);

	if (mdb_env_info(st->env, &info) != MDB_SUCCESS) {
		status = ST_ERR_IO;
		goto out;
	}
	size = info.me_mapsize;
	if (size >= limit) {
		status = ST_ERR_MAP_FULL;
		goto out;
	}

	size = size > limit / 2 ? limit : size * 2;
	if (mdb_env_set_mapsize(st->env, (size_t)size) != MDB_SUCCESS)
		status = ST_ERR_IO;

out:
	pthread_rwlock_unlock(&st->map_lock);
	return status;
}

/*
 * Shrinks the map back to the append limit after a write that may have
 * used the reserve. LMDB keeps the map at least as large as the pages in
 * use, so this never cuts off data.
 */
static void st_map_shrink(st_store *st)
{
	MDB_envinfo info;

	pthread_rwlock_wrlock(&st->map_lock);
	if (mdb_env_info(st->env, &info) == MDB_SUCCESS &&
	    info.me_mapsize > st->map_size_append)
		mdb_env_set_mapsize(st->env, (size_t)st->map_size_append);
	pthread_rwlock_unlock(&st->map_lock);
}

int st__write(st_store *st, enum st_room room, st_write_fn body, void *ctx)
{
	uint64_t limit = room == ST_ROOM_RESERVE ? st->map_size_max :
						   st->map_size_append;
	bool grew = false;
	MDB_txn *txn = NULL;
	int status = ST_OK;
	int rc = MDB_SUCCESS;

	for (;;) {
		status = st__txn_begin(st, 0, &txn);
		if (status != ST_OK)
			break;

		status = body(st, txn, ctx);
		if (status == ST_OK) {
			rc = st__txn_commit(st, txn);
			status = st__status_from_mdb(rc);
		} else {
			st__txn_abort(st, txn);
		}
		txn = NULL;

		/* MDB_MAP_FULL can come from mdb_put or from the commit. */
		if (status != ST_ERR_MAP_FULL)
			break;
		status = st_map_grow(st, limit);
		if (status != ST_OK)
			break;
		grew = true;
	}

	if (grew && room == ST_ROOM_RESERVE)
		st_map_shrink(st);
	return status;
}

int st_sync(st_store *st)
{
	int rc;

	pthread_rwlock_rdlock(&st->map_lock);
	rc = mdb_env_sync(st->env, 1);
	pthread_rwlock_unlock(&st->map_lock);
	return rc == MDB_SUCCESS ? ST_OK : ST_ERR_IO;
}

int st_reader_check(st_store *st, int *cleared)
{
	int rc;

	*cleared = 0;
	rc = mdb_reader_check(st->env, cleared);
	return rc == MDB_SUCCESS ? ST_OK : ST_ERR_IO;
}

uint64_t st_map_size(st_store *st)
{
	MDB_envinfo info;
	uint64_t size = 0;

	pthread_rwlock_rdlock(&st->map_lock);
	if (mdb_env_info(st->env, &info) == MDB_SUCCESS)
		size = info.me_mapsize;
	pthread_rwlock_unlock(&st->map_lock);
	return size;
}

/* ---- metadata ---- */

static const MDB_val st_meta_schema = { 6, "schema" };
static const MDB_val st_meta_epoch = { 5, "epoch" };
static const MDB_val st_meta_next_seq = { 8, "next_seq" };
static const MDB_val st_meta_indexed_next_seq = { 16, "indexed_next_seq" };

int st__meta_next_seq(st_store *st, MDB_txn *txn, uint64_t *next_seq)
{
	MDB_val key = st_meta_next_seq;
	MDB_val val;
	uint64_t v;
	int rc;

	rc = mdb_get(txn, st->dbi_meta, &key, &val);
	if (rc != MDB_SUCCESS)
		return rc == MDB_NOTFOUND ? ST_ERR_CORRUPT : st__status_from_mdb(rc);
	if (val.mv_size != 8)
		return ST_ERR_CORRUPT;

	v = st__get_u64(val.mv_data);
	if (v == 0)
		return ST_ERR_CORRUPT;
	*next_seq = v;
	return ST_OK;
}

int st__meta_set_next_seq(st_store *st, MDB_txn *txn, uint64_t next_seq)
{
	MDB_val key = st_meta_next_seq;
	uint8_t buf[8];
	MDB_val val = { sizeof buf, buf };
	int rc;

	st__put_u64(buf, next_seq);
	rc = mdb_put(txn, st->dbi_meta, &key, &val, 0);
	if (rc == MDB_SUCCESS) {
		key = st_meta_indexed_next_seq;
		rc = mdb_put(txn, st->dbi_meta, &key, &val, 0);
	}
	return st__status_from_mdb(rc);
}

int st__meta_get_time(st_store *st, MDB_txn *txn, const char *name,
		      int64_t *out)
{
	MDB_val key = { strlen(name), (void *)name };
	MDB_val val;
	int rc = mdb_get(txn, st->dbi_meta, &key, &val);

	*out = INT64_MIN;
	if (rc == MDB_NOTFOUND)
		return ST_OK;
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);
	if (val.mv_size != 8)
		return ST_ERR_CORRUPT;
	*out = st__time_from_key(st__get_u64(val.mv_data));
	return ST_OK;
}

int st__meta_put_time(st_store *st, MDB_txn *txn, const char *name, int64_t us)
{
	MDB_val key = { strlen(name), (void *)name };
	uint8_t buf[8];
	MDB_val val = { sizeof buf, buf };

	st__put_u64(buf, st__time_to_key(us));
	return st__status_from_mdb(mdb_put(txn, st->dbi_meta, &key, &val, 0));
}

/* Returns in *out the newest observed time in by_time, INT64_MIN when
 * no signal is stored. */
static int st_newest_observed(st_store *st, MDB_txn *txn, int64_t *out)
{
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	uint64_t seq;
	int rc;

	*out = INT64_MIN;
	rc = mdb_cursor_open(txn, st->dbi_by_time, &cur);
	if (rc == MDB_SUCCESS)
		rc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
	if (cur)
		mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		return ST_OK;
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);
	return st__time_key_parse(&key, out, &seq) ? ST_OK : ST_ERR_CORRUPT;
}

int st__index_check(st_store *st, MDB_txn *txn)
{
	MDB_val key = st_meta_indexed_next_seq;
	MDB_val val;
	uint64_t next_seq = 0;
	int64_t newest = INT64_MIN;
	int64_t unindexed = INT64_MIN;
	int status;
	int rc;

	status = st__meta_next_seq(st, txn, &next_seq);
	if (status != ST_OK)
		return status;
	rc = mdb_get(txn, st->dbi_meta, &key, &val);
	if (rc == MDB_SUCCESS && val.mv_size == 8 && st__get_u64(val.mv_data) == next_seq)
		return ST_OK;
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return st__status_from_mdb(rc);

	/* An older canaryd stored signals last: what it stored has neither
	 * joint counts nor by_domain entries. */
	status = st_newest_observed(st, txn, &newest);
	if (status == ST_OK)
		status = st__meta_get_time(st, txn, ST_META_UNINDEXED_MAX, &unindexed);
	if (status == ST_OK && newest > unindexed)
		status = st__meta_put_time(st, txn, ST_META_UNINDEXED_MAX, newest);
	if (status != ST_OK)
		return status;

	rc = mdb_drop(txn, st->dbi_by_domain, 0);
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);
	return st__meta_set_next_seq(st, txn, next_seq);
}

int st_unindexed_max(st_store *st, int64_t *out)
{
	MDB_txn *txn = NULL;
	int status;

	if (!st || !out)
		return ST_ERR_INVALID;
	status = st__txn_begin(st, MDB_RDONLY, &txn);
	if (status == ST_OK)
		status = st__meta_get_time(st, txn, ST_META_UNINDEXED_MAX, out);
	st__txn_abort(st, txn);
	return status;
}

/* Fills out with 32 lower-case hex characters from getrandom(). */
static int st_epoch_generate(char out[33])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t bytes[16];
	size_t have = 0;

	while (have < sizeof bytes) {
		ssize_t got = getrandom(bytes + have, sizeof bytes - have, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return ST_ERR_IO;
		have += (size_t)got;
	}

	for (size_t i = 0; i < sizeof bytes; i++) {
		out[2 * i] = hex[bytes[i] >> 4];
		out[2 * i + 1] = hex[bytes[i] & 0xf];
	}
	out[32] = '\0';
	return ST_OK;
}

static bool st_epoch_valid(const MDB_val *v)
{
	const char *p = v->mv_data;

	if (v->mv_size != 32)
		return false;
	for (size_t i = 0; i < 32; i++) {
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	}
	return true;
}

/* Findings of st_open_body, for st_open's error message. */
struct st_open_ctx {
	uint32_t schema;        /* version found in the store */
	const char *bad_entry;  /* meta entry that does not decode */
};

static int st_dbi_open_all(st_store *st, MDB_txn *txn)
{
	static const struct {
		const char *name;
		size_t offset;
		unsigned flags;
	} dbs[] = {
		{ "meta", offsetof(st_store, dbi_meta), 0 },
		{ "signals", offsetof(st_store, dbi_signals), 0 },
		{ "by_time", offsetof(st_store, dbi_by_time), 0 },
		{ "by_recv", offsetof(st_store, dbi_by_recv), 0 },
		/* Sorted fixed-size duplicates: 16 bytes an entry, the domain
		 * stored once (domain_index.c). */
		{ "by_domain", offsetof(st_store, dbi_by_domain), MDB_DUPSORT | MDB_DUPFIXED },
		{ "keys", offsetof(st_store, dbi_keys), 0 },
		{ "key_hash", offsetof(st_store, dbi_key_hash), 0 },
		{ "stats", offsetof(st_store, dbi_stats), 0 },
		{ "sensors", offsetof(st_store, dbi_sensors), 0 },
		{ "campaigns", offsetof(st_store, dbi_campaigns), 0 },
		{ "camp_keys", offsetof(st_store, dbi_camp_keys), 0 },
		{ "camp_last", offsetof(st_store, dbi_camp_last), 0 },
		{ "batches", offsetof(st_store, dbi_batches), 0 },
		{ "batch_time", offsetof(st_store, dbi_batch_time), 0 },
	};

	for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)st + dbs[i].offset);
		int rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE | dbs[i].flags, dbi);

		if (rc != MDB_SUCCESS)
			return st__status_from_mdb(rc);
	}
	return ST_OK;
}

/* Writes the metadata of a new store: schema, a fresh epoch, next_seq 1. */
static int st_meta_create(st_store *st, MDB_txn *txn)
{
	uint8_t schema[4] = { 0, 0, 0, ST_SCHEMA_VERSION };
	MDB_val key;
	MDB_val val;
	int rc;

	if (st_epoch_generate(st->epoch) != ST_OK)
		return ST_ERR_IO;

	key = st_meta_schema;
	val = (MDB_val){ sizeof schema, schema };
	rc = mdb_put(txn, st->dbi_meta, &key, &val, 0);
	if (rc == MDB_SUCCESS) {
		key = st_meta_epoch;
		val = (MDB_val){ 32, st->epoch };
		rc = mdb_put(txn, st->dbi_meta, &key, &val, 0);
	}
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);

	atomic_store(&st->head_seq, 0);
	return st__meta_set_next_seq(st, txn, 1);
}

/* Reads and checks the metadata of an existing store. */
static int st_meta_load(st_store *st, MDB_txn *txn, const MDB_val *schema,
			struct st_open_ctx *oc)
{
	const uint8_t *p = schema->mv_data;
	MDB_val key = st_meta_epoch;
	MDB_val val;
	uint64_t next_seq = 0;
	int status;
	int rc;

	if (schema->mv_size != 4) {
		oc->bad_entry = "schema";
		return ST_ERR_CORRUPT;
	}
	oc->schema = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		     (uint32_t)p[2] << 8 | p[3];
	if (oc->schema == 0) {
		oc->bad_entry = "schema";
		return ST_ERR_CORRUPT;
	}
	if (oc->schema > ST_SCHEMA_VERSION)
		return ST_ERR_SCHEMA;

	rc = mdb_get(txn, st->dbi_meta, &key, &val);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return st__status_from_mdb(rc);
	if (rc == MDB_NOTFOUND || !st_epoch_valid(&val)) {
		oc->bad_entry = "epoch";
		return ST_ERR_CORRUPT;
	}
	memcpy(st->epoch, val.mv_data, 32);
	st->epoch[32] = '\0';

	status = st__meta_next_seq(st, txn, &next_seq);
	if (status == ST_ERR_CORRUPT)
		oc->bad_entry = "next_seq";
	if (status != ST_OK)
		return status;

	atomic_store(&st->head_seq, next_seq - 1);
	return ST_OK;
}

/* Opens the databases, then creates or checks the metadata. */
static int st_open_body(st_store *st, MDB_txn *txn, void *ctx)
{
	struct st_open_ctx *oc = ctx;
	MDB_val key = st_meta_schema;
	MDB_val val;
	int status;
	int rc;

	status = st_dbi_open_all(st, txn);
	if (status != ST_OK)
		return status;

	rc = mdb_get(txn, st->dbi_meta, &key, &val);
	if (rc == MDB_SUCCESS) {
		status = st_meta_load(st, txn, &val, oc);
		return status == ST_OK ? st__index_check(st, txn) : status;
	}
	if (rc != MDB_NOTFOUND)
		return st__status_from_mdb(rc);

	/* No schema entry: a new store, unless other metadata is present. */
	key = st_meta_epoch;
	rc = mdb_get(txn, st->dbi_meta, &key, &val);
	if (rc != MDB_NOTFOUND) {
		oc->bad_entry = "schema";
		return rc == MDB_SUCCESS ? ST_ERR_CORRUPT : st__status_from_mdb(rc);
	}
	return st_meta_create(st, txn);
}

static void st_errorf(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void st_errorf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

/* Fills in defaults and keeps the sizes in a range LMDB can work with. */
static struct st_options st_options_resolve(const struct st_options *opt)
{
	struct st_options o = { 0 };

	if (opt)
		o = *opt;
	if (o.map_size_initial == 0)
		o.map_size_initial = ST_MAP_SIZE_DEFAULT;
	if (o.map_size_max == 0)
		o.map_size_max = ST_MAP_SIZE_MAX_DEFAULT;
	if (o.map_size_max < ST_MAP_SIZE_MAX_FLOOR)
		o.map_size_max = ST_MAP_SIZE_MAX_FLOOR;
	if (o.map_size_max > SIZE_MAX)
		o.map_size_max = SIZE_MAX;
	if (o.map_size_initial < ST_MAP_SIZE_FLOOR)
		o.map_size_initial = ST_MAP_SIZE_FLOOR;
	if (o.map_size_initial > o.map_size_max)
		o.map_size_initial = o.map_size_max;
	if (o.max_readers == 0)
		o.max_readers = ST_MAX_READERS_DEFAULT;
	return o;
}

/* Bytes kept free for deletions: 1/32 of max, at least 256 KiB, at most 1/4. */
static uint64_t st_map_reserve(uint64_t max)
{
	uint64_t reserve = max / 32;

	if (reserve < ST_MAP_RESERVE_MIN)
		reserve = ST_MAP_RESERVE_MIN;
	if (reserve > max / 4)
		reserve = max / 4;
	return reserve;
}

/* Maps an st_durability to LMDB environment flags; unknown means full. */
static unsigned st_durability_flags(unsigned durability)
{
	switch (durability) {
	case ST_DURABILITY_NOMETASYNC:
		return MDB_NOMETASYNC;
	case ST_DURABILITY_NOSYNC:
		return MDB_NOSYNC;
	default:
		return 0;
	}
}

/* Creates the environment and opens it on dir. Returns an LMDB code. */
static int st_env_open(st_store *st, const char *dir,
		       const struct st_options *o)
{
	int rc;
	int dead = 0;

	rc = mdb_env_create(&st->env);
	if (rc == MDB_SUCCESS)
		rc = mdb_env_set_maxdbs(st->env, ST_MAX_DBS);
	if (rc == MDB_SUCCESS)
		rc = mdb_env_set_maxreaders(st->env, o->max_readers);
	if (rc == MDB_SUCCESS)
		rc = mdb_env_set_mapsize(st->env, (size_t)o->map_size_initial);
	if (rc == MDB_SUCCESS)
		rc = mdb_env_open(st->env, dir, MDB_NOTLS | st_durability_flags(o->durability),
				  0600);

	/* Free reader slots that killed processes left behind. */
	if (rc == MDB_SUCCESS)
		rc = mdb_reader_check(st->env, &dead);
	return rc;
}

int st_open(const char *dir, const struct st_options *opt, st_store **out,
	    char *errbuf, size_t errlen)
{
	struct st_options o = st_options_resolve(opt);
	struct st_open_ctx oc = { 0, NULL };
	pthread_rwlockattr_t attr;
	st_store *st = NULL;
	const char *fault = NULL;
	int status = ST_OK;
	int rc;

	if (out)
		*out = NULL;
	st_errorf(errbuf, errlen, "%s", "");
	if (!dir || !*dir || !out) {
		st_errorf(errbuf, errlen, "cannot open the store: no directory given");
		return ST_ERR_INVALID;
	}

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		st_errorf(errbuf, errlen,
			  "cannot create the store directory %s: %s; check that "
			  "its parent directory exists and is writable",
			  dir, strerror(errno));
		return ST_ERR_IO;
	}

	st = calloc(1, sizeof *st);
	if (!st) {
		st_errorf(errbuf, errlen, "cannot open the store in %s: out of memory", dir);
		return ST_ERR_IO;
	}
	st->map_size_max = o.map_size_max;
	st__analytics_defaults(st);
	st->map_size_append = o.map_size_max - st_map_reserve(o.map_size_max);
	if (o.map_size_initial > st->map_size_append)
		o.map_size_initial = st->map_size_append;

	/* Prefer writers so that a resize is not starved by steady reads. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rc = pthread_rwlock_init(&st->map_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc != 0) {
		free(st);
		st_errorf(errbuf, errlen, "cannot open the store in %s: %s", dir, strerror(rc));
		return ST_ERR_IO;
	}

	rc = st_env_open(st, dir, &o);
	if (rc != MDB_SUCCESS) {
		status = st__status_from_mdb(rc);
		st_errorf(errbuf, errlen,
			  "cannot open the LMDB store in %s: %s; check that the "
			  "directory is writable by this user and on a local file system",
			  dir, mdb_strerror(rc));
		goto out;
	}

	status = st__write(st, ST_ROOM_APPEND, st_open_body, &oc);
	if (status == ST_ERR_SCHEMA) {
		st_errorf(errbuf, errlen,
			  "the store in %s has schema version %u, but this canaryd "
			  "knows only version %u: a newer canaryd wrote it. Run that "
			  "version, or use another data directory",
			  dir, (unsigned)oc.schema, ST_SCHEMA_VERSION);
	} else if (status == ST_ERR_CORRUPT && oc.bad_entry) {
		st_errorf(errbuf, errlen,
			  "the store in %s has an invalid \"%s\" metadata entry; "
			  "restore the directory from a backup or move it away "
			  "to start an empty store", dir, oc.bad_entry);
	} else if (status != ST_OK) {
		st_errorf(errbuf, errlen,
			  "cannot initialise the store in %s: %s; check the free "
			  "disk space and map_size_max_bytes",
			  dir, st_strerror(status));
	}
	if (status != ST_OK)
		goto out;

	fault = getenv("CANARY_FAULT");
	st->fault_commit = fault && strstr(fault, "commit");

	*out = st;
	st = NULL;

out:
	st_close(st);
	return status;
}

int st_exists(const char *dir, char *errbuf, size_t errlen)
{
	char path[PATH_MAX];
	struct stat sb;

	st_errorf(errbuf, errlen, "%s", "");
	if (!dir || !*dir)
		return ST_ERR_NOT_FOUND;
	if ((size_t)snprintf(path, sizeof path, "%s/data.mdb", dir) >= sizeof path) {
		st_errorf(errbuf, errlen, "the store directory name is longer than %d bytes",
			  PATH_MAX - 10);
		return ST_ERR_INVALID;
	}
	if (stat(path, &sb) != 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return ST_ERR_NOT_FOUND;
		st_errorf(errbuf, errlen, "cannot read %s: %s", path, strerror(errno));
		return ST_ERR_IO;
	}
	return S_ISREG(sb.st_mode) ? ST_OK : ST_ERR_NOT_FOUND;
}

void st_close(st_store *st)
{
	if (!st)
		return;
	if (st->env)
		mdb_env_close(st->env);
	pthread_rwlock_destroy(&st->map_lock);
	free(st);
}

const char *st_epoch(const st_store *st)
{
	return st->epoch;
}

uint64_t st_head_seq(const st_store *st)
{
	return atomic_load(&st->head_seq);
}
