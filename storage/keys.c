/*
 * API keys: keys[id] contains a MessagePack map of struct st_key, and
 * key_hash[SHA-256 of the secret] contains the id. Both are written in one
 * transaction. A revoked key keeps its record, with revoked_us set, so
 * that listings can show it as revoked.
 *
 * The stored map has the members id (str), hash (bin 32), scopes (uint),
 * name (str), domains (str, or nil for all domains), created_us and
 * revoked_us (int). Readers ignore members they do not know.
 */
#include <stdlib.h>
#include <string.h>

#include "store_private.h"

/* Maximum length of one key's domain list, in bytes. */
#define ST_KEY_DOMAINS_MAX 65536

/* Keys per read transaction in st_key_list. */
#define ST_KEY_LIST_CHUNK 64

#define ST_SCOPE_ALL (ST_SCOPE_INGEST | ST_SCOPE_SUBSCRIBE | ST_SCOPE_READ | \
		      ST_SCOPE_ADMIN)

/* Bits of the members seen while decoding. */
enum {
	ST_KM_ID = 1 << 0,
	ST_KM_HASH = 1 << 1,
	ST_KM_SCOPES = 1 << 2,
	ST_KM_NAME = 1 << 3,
	ST_KM_DOMAINS = 1 << 4,
	ST_KM_CREATED = 1 << 5,
	ST_KM_REVOKED = 1 << 6,
	ST_KM_REQUIRED = ST_KM_ID | ST_KM_HASH | ST_KM_SCOPES | ST_KM_CREATED |
			 ST_KM_REVOKED
};

static bool st_key_id_valid(const char *id, size_t len)
{
	if (!id || len != ST_KEY_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	}
	return true;
}

void st_key_clear(struct st_key *k)
{
	if (!k)
		return;
	free(k->domains);
	k->domains = NULL;
}

/* ---- encoding ---- */

static int st_pack_cstr(msgpack_packer *pk, const char *s)
{
	return msgpack_pack_str_with_body(pk, s, strlen(s));
}

static int st_key_encode(const struct st_key *k, msgpack_sbuffer *buf)
{
	msgpack_packer pk;
	int rc = 0;

	msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
	rc |= msgpack_pack_map(&pk, 7);
	rc |= st_pack_cstr(&pk, "id");
	rc |= st_pack_cstr(&pk, k->id);
	rc |= st_pack_cstr(&pk, "hash");
	rc |= msgpack_pack_bin_with_body(&pk, k->hash, sizeof k->hash);
	rc |= st_pack_cstr(&pk, "scopes");
	rc |= msgpack_pack_uint32(&pk, k->scopes);
	rc |= st_pack_cstr(&pk, "name");
	rc |= st_pack_cstr(&pk, k->name);
	rc |= st_pack_cstr(&pk, "domains");
	rc |= k->domains ? st_pack_cstr(&pk, k->domains) : msgpack_pack_nil(&pk);
	rc |= st_pack_cstr(&pk, "created_us");
	rc |= msgpack_pack_int64(&pk, k->created_us);
	rc |= st_pack_cstr(&pk, "revoked_us");
	rc |= msgpack_pack_int64(&pk, k->revoked_us);
	return rc == 0 ? ST_OK : ST_ERR_IO;
}

static bool st_obj_is(const msgpack_object *o, const char *name)
{
	size_t len = strlen(name);

	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == len &&
	       memcmp(o->via.str.ptr, name, len) == 0;
}

static bool st_obj_int64(const msgpack_object *o, int64_t *v)
{
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return true;
	}
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
		*v = (int64_t)o->via.u64;
		return true;
	}
	return false;
}

/* A string of at most max bytes without NUL bytes, copied into out. */
static bool st_obj_cstr(const msgpack_object *o, char *out, size_t max)
{
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size))
		return false;
	memcpy(out, o->via.str.ptr, o->via.str.size);
	out[o->via.str.size] = '\0';
	return true;
}

/* Decodes one member into out. Returns its ST_KM_* bit, 0 for unknown, -1 if bad. */
static int st_key_member(const msgpack_object_kv *kv, struct st_key *out)
{
	const msgpack_object *v = &kv->val;

	if (st_obj_is(&kv->key, "id"))
		return st_obj_cstr(v, out->id, ST_KEY_ID_LEN) &&
		       st_key_id_valid(out->id, strlen(out->id)) ? ST_KM_ID : -1;
	if (st_obj_is(&kv->key, "hash")) {
		if (v->type != MSGPACK_OBJECT_BIN || v->via.bin.size != sizeof out->hash)
			return -1;
		memcpy(out->hash, v->via.bin.ptr, sizeof out->hash);
		return ST_KM_HASH;
	}
	if (st_obj_is(&kv->key, "scopes")) {
		if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > UINT32_MAX)
			return -1;
		out->scopes = (uint32_t)v->via.u64;
		return ST_KM_SCOPES;
	}
	if (st_obj_is(&kv->key, "name"))
		return st_obj_cstr(v, out->name, ST_KEY_NAME_MAX) ? ST_KM_NAME : -1;
	if (st_obj_is(&kv->key, "domains")) {
		if (v->type == MSGPACK_OBJECT_NIL)
			return ST_KM_DOMAINS;
		if (v->type != MSGPACK_OBJECT_STR || v->via.str.size > ST_KEY_DOMAINS_MAX ||
		    memchr(v->via.str.ptr, '\0', v->via.str.size))
			return -1;
		out->domains = strndup(v->via.str.ptr, v->via.str.size);
		return out->domains ? ST_KM_DOMAINS : -1;
	}
	if (st_obj_is(&kv->key, "created_us"))
		return st_obj_int64(v, &out->created_us) ? ST_KM_CREATED : -1;
	if (st_obj_is(&kv->key, "revoked_us"))
		return st_obj_int64(v, &out->revoked_us) ? ST_KM_REVOKED : -1;
	return 0;
}

/*
 * Decodes a stored key whose record is filed under id. Overwrites out
 * without freeing it. Returns ST_OK or ST_ERR_CORRUPT with out cleared.
 */
static int st_key_decode(const MDB_val *v, const MDB_val *id,
			 struct st_key *out)
{
	msgpack_unpacked u;
	unsigned seen = 0;
	int status;

	memset(out, 0, sizeof *out);
	msgpack_unpacked_init(&u);

	status = st__value_unpack(v, &u);
	for (uint32_t i = 0; status == ST_OK && i < u.data.via.map.size; i++) {
		int bit = st_key_member(&u.data.via.map.ptr[i], out);

		/* A duplicate member is as suspect as a malformed one. */
		if (bit < 0 || (bit > 0 && (seen & (unsigned)bit)))
			status = ST_ERR_CORRUPT;
		seen |= bit > 0 ? (unsigned)bit : 0;
	}
	if (status == ST_OK && (seen & ST_KM_REQUIRED) != ST_KM_REQUIRED)
		status = ST_ERR_CORRUPT;
	if (status == ST_OK && (id->mv_size != ST_KEY_ID_LEN ||
				memcmp(id->mv_data, out->id, ST_KEY_ID_LEN) != 0))
		status = ST_ERR_CORRUPT;

	msgpack_unpacked_destroy(&u);
	if (status != ST_OK) {
		st_key_clear(out);
		memset(out, 0, sizeof *out);
	}
	return status;
}

/* ---- writes ---- */

struct st_key_put_ctx {
	const struct st_key *k;
	msgpack_sbuffer buf;
};

static int st_key_put_body(st_store *st, MDB_txn *txn, void *ctx)
{
	struct st_key_put_ctx *kp = ctx;
	MDB_val id = { ST_KEY_ID_LEN, (void *)kp->k->id };
	MDB_val hash = { sizeof kp->k->hash, (void *)kp->k->hash };
	MDB_val val = { kp->buf.size, kp->buf.data };
	int rc;

	rc = mdb_put(txn, st->dbi_keys, &id, &val, MDB_NOOVERWRITE);
	if (rc == MDB_SUCCESS)
		rc = mdb_put(txn, st->dbi_key_hash, &hash, &id, MDB_NOOVERWRITE);
	return st__status_from_mdb(rc);
}

int st_key_put(st_store *st, const struct st_key *k)
{
	struct st_key_put_ctx kp = { k, { 0 } };
	int status;

	if (!st || !k || !memchr(k->id, '\0', sizeof k->id) ||
	    !st_key_id_valid(k->id, strlen(k->id)) ||
	    !memchr(k->name, '\0', sizeof k->name) ||
	    (k->scopes & ~ST_SCOPE_ALL) != 0 ||
	    (k->domains && strnlen(k->domains, ST_KEY_DOMAINS_MAX + 1) > ST_KEY_DOMAINS_MAX))
		return ST_ERR_INVALID;

	msgpack_sbuffer_init(&kp.buf);
	status = st_key_encode(k, &kp.buf);
	if (status == ST_OK)
		status = st__write(st, ST_ROOM_APPEND, st_key_put_body, &kp);
	msgpack_sbuffer_destroy(&kp.buf);
	return status;
}

struct st_key_revoke_ctx {
	const char *id;
	int64_t now_us;
	msgpack_sbuffer buf;
};

static int st_key_revoke_body(st_store *st, MDB_txn *txn, void *ctx)
{
	struct st_key_revoke_ctx *rv = ctx;
	MDB_val id = { ST_KEY_ID_LEN, (void *)rv->id };
	MDB_val val;
	struct st_key k = { .domains = NULL };
	int status;
	int rc;

	rc = mdb_get(txn, st->dbi_keys, &id, &val);
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);
	status = st_key_decode(&val, &id, &k);
	if (status != ST_OK)
		return status;

	/* Revoking twice keeps the first revocation time. */
	if (k.revoked_us == 0)
		k.revoked_us = rv->now_us;

	msgpack_sbuffer_clear(&rv->buf);
	status = st_key_encode(&k, &rv->buf);
	if (status == ST_OK) {
		val = (MDB_val){ rv->buf.size, rv->buf.data };
		status = st__status_from_mdb(mdb_put(txn, st->dbi_keys, &id, &val, 0));
	}
	st_key_clear(&k);
	return status;
}

int st_key_revoke(st_store *st, const char *id)
{
	struct st_key_revoke_ctx rv = { id, 0, { 0 } };
	int status;

	if (!st || !id || !st_key_id_valid(id, strnlen(id, ST_KEY_ID_LEN + 1)))
		return ST_ERR_INVALID;

	rv.now_us = sg_now_us();
	msgpack_sbuffer_init(&rv.buf);
	/* Revoking must work on a full store too: it may use the reserve. */
	status = st__write(st, ST_ROOM_RESERVE, st_key_revoke_body, &rv);
	msgpack_sbuffer_destroy(&rv.buf);
	return status;
}

/* ---- reads ---- */

/* Reads keys[id] inside txn into out. */
static int st_key_get(st_store *st, MDB_txn *txn, MDB_val *id,
		      struct st_key *out)
{
	MDB_val val;
	int rc;

	rc = mdb_get(txn, st->dbi_keys, id, &val);
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);
	return st_key_decode(&val, id, out);
}

int st_key_find_by_hash(st_store *st, const uint8_t hash[32],
			struct st_key *out)
{
	MDB_txn *txn = NULL;
	MDB_val key = { 32, (void *)hash };
	MDB_val id;
	int status;
	int rc;

	if (!st || !hash || !out)
		return ST_ERR_INVALID;
	out->domains = NULL;

	status = st__txn_begin(st, MDB_RDONLY, &txn);
	if (status != ST_OK)
		return status;

	rc = mdb_get(txn, st->dbi_key_hash, &key, &id);
	if (rc != MDB_SUCCESS) {
		status = st__status_from_mdb(rc);
	} else {
		/* A hash entry whose key record is gone is an inconsistency. */
		status = st_key_get(st, txn, &id, out);
		if (status == ST_ERR_NOT_FOUND)
			status = ST_ERR_CORRUPT;
	}

	st__txn_abort(st, txn);
	return status;
}

int st_key_find_by_id(st_store *st, const char *id, struct st_key *out)
{
	MDB_txn *txn = NULL;
	MDB_val key;
	int status;

	if (!st || !id || !out || !st_key_id_valid(id, strnlen(id, ST_KEY_ID_LEN + 1)))
		return ST_ERR_INVALID;
	out->domains = NULL;

	status = st__txn_begin(st, MDB_RDONLY, &txn);
	if (status != ST_OK)
		return status;

	key = (MDB_val){ ST_KEY_ID_LEN, (void *)id };
	status = st_key_get(st, txn, &key, out);

	st__txn_abort(st, txn);
	return status;
}

/*
 * Reads up to ST_KEY_LIST_CHUNK keys with ids after resume (from the
 * first when resume is NULL) into buf. *end is set when no key follows.
 */
static int st_key_list_chunk(st_store *st, const char *resume,
			     struct st_key *buf, size_t *n, bool *end)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val key;
	MDB_val val;
	size_t count = 0;
	int status;
	int rc;

	*end = false;
	status = st__txn_begin(st, MDB_RDONLY, &txn);
	if (status != ST_OK)
		goto out;
	rc = mdb_cursor_open(txn, st->dbi_keys, &cur);
	if (rc != MDB_SUCCESS) {
		status = st__status_from_mdb(rc);
		goto out;
	}

	if (resume) {
		key = (MDB_val){ ST_KEY_ID_LEN, (void *)resume };
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		if (rc == MDB_SUCCESS && key.mv_size == ST_KEY_ID_LEN &&
		    memcmp(key.mv_data, resume, ST_KEY_ID_LEN) == 0)
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	} else {
		rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	}

	while (rc == MDB_SUCCESS && count < ST_KEY_LIST_CHUNK) {
		status = st_key_decode(&val, &key, &buf[count]);
		if (status != ST_OK)
			goto out;
		count++;
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND)
		*end = true;
	else if (rc != MDB_SUCCESS)
		status = st__status_from_mdb(rc);

out:
	if (cur)
		mdb_cursor_close(cur);
	st__txn_abort(st, txn);
	if (status != ST_OK) {
		for (size_t i = 0; i < count; i++)
			st_key_clear(&buf[i]);
		count = 0;
	}
	*n = count;
	return status;
}

int st_key_list(st_store *st, st_key_visit_fn visit, void *ctx)
{
	struct st_key *buf = NULL;
	char resume[ST_KEY_ID_LEN + 1] = "";
	bool end = false;
	size_t n = 0;
	int status = ST_OK;

	if (!st || !visit)
		return ST_ERR_INVALID;
	buf = calloc(ST_KEY_LIST_CHUNK, sizeof *buf);
	if (!buf)
		return ST_ERR_IO;

	while (!end) {
		status = st_key_list_chunk(st, resume[0] ? resume : NULL, buf, &n, &end);
		if (status != ST_OK || n == 0)
			break;

		/* The chunk's transaction is closed before any visit. */
		for (size_t i = 0; i < n; i++)
			visit(&buf[i], ctx);
		memcpy(resume, buf[n - 1].id, sizeof resume);
		for (size_t i = 0; i < n; i++)
			st_key_clear(&buf[i]);
	}

	free(buf);
	return status;
}
