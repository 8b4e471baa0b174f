/*
 * Campaigns: signals grouped at ingest, in st_append's transaction.
 *
 * Signals share a campaign when they target the same domain from the
 * same attacker infrastructure (infra_id when the signal has one, else
 * proxy_type and source_region) and no pause between their observed
 * times is longer than the idle gap. A pause of exactly the gap still
 * joins.
 *
 * Observed times need not arrive in order. For each pair of domain and
 * infrastructure, camp_keys stores the ids of its newest campaigns (at
 * most CAMP_RECENT_MAX, newest first). A signal joins the newest of them
 * whose span [first_seen - gap, last_seen + gap] holds its observed
 * time, widening that span; when none does, the signal starts a new
 * campaign. So a late signal from inside or next to a known campaign
 * joins it, and one from further back starts a campaign of its own.
 * Campaigns never merge, so an id, once given, names the same campaign
 * until it is pruned (stats_keep_us after its last_seen).
 *
 * A campaign's id is "camp_" followed by the seq of the signal that
 * started it. A stored signal without a campaign_id of its own gets
 * that id in its campaign_id field.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregates.h"

/* Campaigns of one domain and infrastructure that a signal may join. */
#define CAMP_RECENT_MAX 4

/* Campaign records per read transaction in st_campaign_scan. */
#define CAMP_SCAN_CHUNK 128

/* Maximum length of a camp_keys key: domain, NUL, "p:" or "i:", infra id or
 * proxy type, ":" and region. */
#define CAMP_KEY_MAX (SG_DOMAIN_MAX + 1 + 2 + SG_ID_MAX + 4)

/* The stored record: the public fields and the camp_keys key. */
struct camp_record {
	struct st_campaign c;
	char infra[2 + SG_ID_MAX + 4];
};

/* Writes the camp_keys key of s into k; returns its length. */
static size_t camp_key(const struct sg_signal *s, char *k)
{
	size_t dlen = strnlen(s->domain, SG_DOMAIN_MAX);
	int n;

	memcpy(k, s->domain, dlen);
	k[dlen] = '\0';
	if (s->infra_id[0])
		n = snprintf(k + dlen + 1, CAMP_KEY_MAX - dlen - 1, "i:%s", s->infra_id);
	else
		n = snprintf(k + dlen + 1, CAMP_KEY_MAX - dlen - 1, "p:%s:%s",
			     sg_proxy_type_names[s->proxy_type % SG_PROXY_COUNT],
			     s->region);
	return dlen + 1 + (size_t)n;
}

/* ---- the stored form: a MessagePack map ---- */

static int camp_pack_str(msgpack_packer *pk, const char *name, const char *v)
{
	size_t n = strlen(name);
	size_t vn = strlen(v);

	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, name, n) ||
	       msgpack_pack_str(pk, vn) || msgpack_pack_str_body(pk, v, vn);
}

static int camp_pack_int(msgpack_packer *pk, const char *name, int64_t v)
{
	size_t n = strlen(name);

	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, name, n) ||
	       msgpack_pack_int64(pk, v);
}

static int camp_encode(const struct camp_record *r, msgpack_sbuffer *buf)
{
	const struct st_campaign *c = &r->c;
	msgpack_packer pk;
	int rc;

	msgpack_sbuffer_clear(buf);
	msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
	rc = msgpack_pack_map(&pk, 10) ||
	     camp_pack_str(&pk, "domain", c->domain) ||
	     camp_pack_str(&pk, "infra", r->infra) ||
	     camp_pack_int(&pk, "first_us", c->first_us) ||
	     camp_pack_int(&pk, "last_us", c->last_us) ||
	     camp_pack_int(&pk, "count", (int64_t)c->signal_count) ||
	     camp_pack_int(&pk, "event_types", c->event_types) ||
	     camp_pack_int(&pk, "stages", c->stages) ||
	     camp_pack_int(&pk, "proxy_types", c->proxy_types) ||
	     camp_pack_int(&pk, "max_confidence", c->max_confidence);
	if (rc == 0)
		rc = msgpack_pack_str(&pk, 7) || msgpack_pack_str_body(&pk, "regions", 7) ||
		     msgpack_pack_array(&pk, c->nregions);
	for (size_t i = 0; i < c->nregions && rc == 0; i++)
		rc = msgpack_pack_str(&pk, 2) || msgpack_pack_str_body(&pk, c->regions[i], 2);
	return rc ? ST_ERR_IO : ST_OK;
}

static bool camp_key_is(const msgpack_object *k, const char *name)
{
	size_t n = strlen(name);

	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	       !memcmp(k->via.str.ptr, name, n);
}

static bool camp_copy_str(const msgpack_object *v, char *out, size_t cap)
{
	if (v->type != MSGPACK_OBJECT_STR || v->via.str.size >= cap)
		return false;
	memcpy(out, v->via.str.ptr, v->via.str.size);
	out[v->via.str.size] = '\0';
	return true;
}

static bool camp_get_int(const msgpack_object *v, int64_t *out)
{
	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX) {
		*out = (int64_t)v->via.u64;
		return true;
	}
	if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*out = v->via.i64;
		return true;
	}
	return false;
}

static bool camp_decode_regions(const msgpack_object *v, struct st_campaign *c)
{
	if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > ST_CAMPAIGN_REGIONS_MAX)
		return false;
	c->nregions = v->via.array.size;
	for (size_t i = 0; i < c->nregions; i++)
		if (!camp_copy_str(&v->via.array.ptr[i], c->regions[i], sizeof c->regions[i]))
			return false;
	return true;
}

/* Fills one field of r from a map entry; false when it does not fit. */
static bool camp_decode_field(const msgpack_object_kv *kv, struct camp_record *r)
{
	struct st_campaign *c = &r->c;
	int64_t v = 0;

	if (camp_key_is(&kv->key, "domain"))
		return camp_copy_str(&kv->val, c->domain, sizeof c->domain);
	if (camp_key_is(&kv->key, "infra"))
		return camp_copy_str(&kv->val, r->infra, sizeof r->infra);
	if (camp_key_is(&kv->key, "regions"))
		return camp_decode_regions(&kv->val, c);
	if (!camp_get_int(&kv->val, &v))
		return false;
	if (camp_key_is(&kv->key, "first_us"))
		c->first_us = v;
	else if (camp_key_is(&kv->key, "last_us"))
		c->last_us = v;
	else if (camp_key_is(&kv->key, "count") && v >= 0)
		c->signal_count = (uint64_t)v;
	else if (camp_key_is(&kv->key, "event_types"))
		c->event_types = (uint32_t)v;
	else if (camp_key_is(&kv->key, "stages"))
		c->stages = (uint32_t)v;
	else if (camp_key_is(&kv->key, "proxy_types"))
		c->proxy_types = (uint32_t)v;
	else if (camp_key_is(&kv->key, "max_confidence") && v >= 0 &&
		 v < SG_CONFIDENCE_COUNT)
		c->max_confidence = (uint8_t)v;
	else
		return false;
	return true;
}

static int camp_decode(const MDB_val *v, uint64_t id, struct camp_record *r)
{
	msgpack_unpacked u;
	int status;

	memset(r, 0, sizeof *r);
	r->c.id = id;
	msgpack_unpacked_init(&u);
	status = st__value_unpack(v, &u);
	if (status == ST_OK && u.data.type != MSGPACK_OBJECT_MAP)
		status = ST_ERR_CORRUPT;
	for (uint32_t i = 0; status == ST_OK && i < u.data.via.map.size; i++)
		if (!camp_decode_field(&u.data.via.map.ptr[i], r))
			status = ST_ERR_CORRUPT;
	if (status == ST_OK && (!r->c.domain[0] || !r->infra[0]))
		status = ST_ERR_CORRUPT;
	msgpack_unpacked_destroy(&u);
	return status;
}

/* ---- reading and writing inside a transaction ---- */

static int camp_get(st_store *st, MDB_txn *txn, uint64_t id, struct camp_record *r)
{
	uint8_t k[8];
	MDB_val key = { sizeof k, k };
	MDB_val val;
	int rc;

	st__put_u64(k, id);
	rc = mdb_get(txn, st->dbi_campaigns, &key, &val);
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);
	return camp_decode(&val, id, r);
}

static int camp_put(st_store *st, MDB_txn *txn, const struct camp_record *r,
		    msgpack_sbuffer *buf)
{
	uint8_t k[8];
	MDB_val key = { sizeof k, k };
	MDB_val val;
	int status = camp_encode(r, buf);

	if (status != ST_OK)
		return status;
	st__put_u64(k, r->c.id);
	val = (MDB_val){ buf->size, buf->data };
	return st__status_from_mdb(mdb_put(txn, st->dbi_campaigns, &key, &val, 0));
}

/* Puts or deletes the camp_last entry of (last_us, id). */
static int camp_last_set(st_store *st, MDB_txn *txn, int64_t last_us,
			 uint64_t id, bool present)
{
	uint8_t k[ST_TIME_KEY_LEN];
	MDB_val key = { sizeof k, k };
	MDB_val empty = { 0, NULL };
	int rc;

	st__time_key(k, last_us, id);
	if (present)
		rc = mdb_put(txn, st->dbi_camp_last, &key, &empty, 0);
	else
		rc = mdb_del(txn, st->dbi_camp_last, &key, NULL);
	return rc == MDB_NOTFOUND ? ST_OK : st__status_from_mdb(rc);
}

/* Unpacks a stored array (st__value_unpack takes maps only). */
static int camp_unpack_array(const MDB_val *v, msgpack_unpacked *u)
{
	size_t off = 0;

	if (st__value_check(v->mv_data, v->mv_size) != ST_OK ||
	    msgpack_unpack_next(u, v->mv_data, v->mv_size, &off) !=
	    MSGPACK_UNPACK_SUCCESS || off != v->mv_size)
		return ST_ERR_CORRUPT;
	return ST_OK;
}

/* Reads the camp_keys list of k; *n is 0 when there is none. */
static int camp_recent_get(st_store *st, MDB_txn *txn, MDB_val *k,
			   uint64_t ids[CAMP_RECENT_MAX], size_t *n)
{
	msgpack_unpacked u;
	MDB_val val;
	int status;
	int rc;

	*n = 0;
	rc = mdb_get(txn, st->dbi_camp_keys, k, &val);
	if (rc == MDB_NOTFOUND)
		return ST_OK;
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);

	msgpack_unpacked_init(&u);
	status = camp_unpack_array(&val, &u);
	if (status == ST_OK && (u.data.type != MSGPACK_OBJECT_ARRAY ||
				u.data.via.array.size > CAMP_RECENT_MAX))
		status = ST_ERR_CORRUPT;
	for (uint32_t i = 0; status == ST_OK && i < u.data.via.array.size; i++) {
		const msgpack_object *o = &u.data.via.array.ptr[i];

		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			status = ST_ERR_CORRUPT;
		else
			ids[(*n)++] = o->via.u64;
	}
	msgpack_unpacked_destroy(&u);
	return status;
}

/* Writes the camp_keys list of k, or deletes it when n is 0. */
static int camp_recent_put(st_store *st, MDB_txn *txn, MDB_val *k,
			   const uint64_t *ids, size_t n, msgpack_sbuffer *buf)
{
	msgpack_packer pk;
	MDB_val val;
	int rc = 0;

	if (n == 0) {
		rc = mdb_del(txn, st->dbi_camp_keys, k, NULL);
		return rc == MDB_NOTFOUND ? ST_OK : st__status_from_mdb(rc);
	}
	msgpack_sbuffer_clear(buf);
	msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
	rc = msgpack_pack_array(&pk, n);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = msgpack_pack_uint64(&pk, ids[i]);
	if (rc != 0)
		return ST_ERR_IO;
	val = (MDB_val){ buf->size, buf->data };
	return st__status_from_mdb(mdb_put(txn, st->dbi_camp_keys, k, &val, 0));
}

/* ---- assignment at ingest ---- */

static void camp_add_signal(struct st_campaign *c, const struct sg_signal *s)
{
	bool known = false;

	if (c->signal_count == 0 || s->observed_us < c->first_us)
		c->first_us = s->observed_us;
	if (c->signal_count == 0 || s->observed_us > c->last_us)
		c->last_us = s->observed_us;
	c->signal_count++;
	c->event_types |= 1u << (s->event_type % SG_EVENT_COUNT);
	c->stages |= 1u << (s->stage % SG_STAGE_COUNT);
	c->proxy_types |= 1u << (s->proxy_type % SG_PROXY_COUNT);
	if (s->confidence > c->max_confidence && s->confidence < SG_CONFIDENCE_COUNT)
		c->max_confidence = s->confidence;

	for (size_t i = 0; i < c->nregions && !known; i++)
		known = !strcmp(c->regions[i], s->region);
	if (!known && c->nregions < ST_CAMPAIGN_REGIONS_MAX)
		memcpy(c->regions[c->nregions++], s->region, 3);
}

/* Adds s to campaign r and rewrites it and its camp_last entry. */
static int camp_join(st_store *st, MDB_txn *txn, struct camp_record *r,
		     const struct sg_signal *s, msgpack_sbuffer *buf)
{
	int64_t old_last = r->c.last_us;
	bool fresh = r->c.signal_count == 0;
	int status = ST_OK;

	camp_add_signal(&r->c, s);
	if (!fresh && old_last != r->c.last_us)
		status = camp_last_set(st, txn, old_last, r->c.id, false);
	if (status == ST_OK && (fresh || old_last != r->c.last_us))
		status = camp_last_set(st, txn, r->c.last_us, r->c.id, true);
	if (status == ST_OK)
		status = camp_put(st, txn, r, buf);
	return status;
}

int st__campaign_assign(st_store *st, MDB_txn *txn, struct sg_signal *s)
{
	int64_t gap = atomic_load(&st->campaign_idle_gap_us);
	char kbuf[CAMP_KEY_MAX];
	MDB_val key = { camp_key(s, kbuf), kbuf };
	uint64_t ids[CAMP_RECENT_MAX + 1];
	struct camp_record *r = NULL;
	msgpack_sbuffer buf;
	size_t n = 0;
	int status;

	msgpack_sbuffer_init(&buf);
	r = malloc(sizeof *r);
	if (!r) {
		status = ST_ERR_IO;
		goto out;
	}
	status = camp_recent_get(st, txn, &key, ids, &n);

	for (size_t i = 0; i < n && status == ST_OK; i++) {
		status = camp_get(st, txn, ids[i], r);
		if (status == ST_ERR_NOT_FOUND) {
			/* Pruning removes ids from the list; skip a stray one. */
			status = ST_OK;
			continue;
		}
		if (status != ST_OK)
			break;
		if (s->observed_us >= r->c.first_us - gap &&
		    s->observed_us <= r->c.last_us + gap) {
			status = camp_join(st, txn, r, s, &buf);
			goto tag;
		}
	}
	if (status != ST_OK)
		goto out;

	/* No campaign within the gap: start one, newest in the list. */
	memset(r, 0, sizeof *r);
	r->c.id = s->seq;
	snprintf(r->c.domain, sizeof r->c.domain, "%s", s->domain);
	snprintf(r->infra, sizeof r->infra, "%s", kbuf + strlen(kbuf) + 1);
	status = camp_join(st, txn, r, s, &buf);
	if (status != ST_OK)
		goto out;
	memmove(ids + 1, ids, n * sizeof ids[0]);
	ids[0] = s->seq;
	n = n + 1 > CAMP_RECENT_MAX ? CAMP_RECENT_MAX : n + 1;
	status = camp_recent_put(st, txn, &key, ids, n, &buf);

tag:
	if (status == ST_OK && !s->campaign_id[0])
		snprintf(s->campaign_id, sizeof s->campaign_id, "camp_%" PRIu64, r->c.id);
out:
	free(r);
	msgpack_sbuffer_destroy(&buf);
	return status;
}

/* ---- pruning ---- */

/* Removes id from its pair's camp_keys list. */
static int camp_forget(st_store *st, MDB_txn *txn, const struct camp_record *r)
{
	char kbuf[CAMP_KEY_MAX];
	size_t dlen = strlen(r->c.domain);
	size_t ilen = strlen(r->infra);
	MDB_val key = { dlen + 1 + ilen, kbuf };
	uint64_t ids[CAMP_RECENT_MAX];
	msgpack_sbuffer buf;
	size_t n = 0, kept = 0;
	int status;

	if (dlen + 1 + ilen > sizeof kbuf)
		return ST_ERR_CORRUPT;
	memcpy(kbuf, r->c.domain, dlen);
	kbuf[dlen] = '\0';
	memcpy(kbuf + dlen + 1, r->infra, ilen);

	status = camp_recent_get(st, txn, &key, ids, &n);
	if (status != ST_OK)
		return status;
	for (size_t i = 0; i < n; i++)
		if (ids[i] != r->c.id)
			ids[kept++] = ids[i];
	if (kept == n)
		return ST_OK;
	msgpack_sbuffer_init(&buf);
	status = camp_recent_put(st, txn, &key, ids, kept, &buf);
	msgpack_sbuffer_destroy(&buf);
	return status;
}

int st__campaign_prune(st_store *st, MDB_txn *txn, int64_t cutoff_us,
		       size_t max_delete, size_t *deleted, bool *more)
{
	struct camp_record *r = malloc(sizeof *r);
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	int status = ST_OK;
	int rc;

	if (!r)
		return ST_ERR_IO;
	rc = mdb_cursor_open(txn, st->dbi_camp_last, &cur);
	if (rc == MDB_SUCCESS)
		rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	while (rc == MDB_SUCCESS) {
		int64_t last_us;
		uint64_t id;
		uint8_t k[8];
		MDB_val ckey = { sizeof k, k };

		if (!st__time_key_parse(&key, &last_us, &id)) {
			status = ST_ERR_CORRUPT;
			break;
		}
		if (last_us >= cutoff_us)
			break;
		if (*deleted >= max_delete) {
			*more = true;
			break;
		}

		/* A record that does not decode goes too, without its list. */
		status = camp_get(st, txn, id, r);
		if (status == ST_OK)
			status = camp_forget(st, txn, r);
		else if (status == ST_ERR_NOT_FOUND || status == ST_ERR_CORRUPT)
			status = ST_OK;
		if (status != ST_OK)
			break;
		st__put_u64(k, id);
		rc = mdb_del(txn, st->dbi_campaigns, &ckey, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			break;
		(*deleted)++;
		rc = agg_cursor_del_next(cur, &key, &val);
	}
	if (status == ST_OK && rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		status = st__status_from_mdb(rc);
	if (cur)
		mdb_cursor_close(cur);
	free(r);
	return status;
}

/* ---- listing ---- */

static int camp_id_cmp_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	if (x == y)
		return 0;
	return x < y ? 1 : -1;
}

/* Collects the ids of campaigns with last_seen >= since_us and id below
 * before_id. *ids is malloc'd. */
static int camp_collect_ids(st_store *st, int64_t since_us, uint64_t before_id,
			    uint64_t **ids, size_t *n)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	uint8_t k[ST_TIME_KEY_LEN];
	MDB_val key = { sizeof k, k };
	MDB_val val;
	size_t cap = 0;
	int status;
	int rc;

	*ids = NULL;
	*n = 0;
	status = st__txn_begin(st, MDB_RDONLY, &txn);
	if (status != ST_OK)
		return status;
	rc = mdb_cursor_open(txn, st->dbi_camp_last, &cur);
	st__time_key(k, since_us, 0);
	if (rc == MDB_SUCCESS)
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	while (rc == MDB_SUCCESS) {
		int64_t last_us;
		uint64_t id;

		if (!st__time_key_parse(&key, &last_us, &id)) {
			status = ST_ERR_CORRUPT;
			break;
		}
		if (id < before_id) {
			if (*n == cap) {
				size_t ncap = cap ? cap * 2 : 256;
				uint64_t *p = realloc(*ids, ncap * sizeof *p);

				if (!p) {
					status = ST_ERR_IO;
					break;
				}
				*ids = p;
				cap = ncap;
			}
			(*ids)[(*n)++] = id;
		}
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (status == ST_OK && rc != MDB_NOTFOUND)
		status = st__status_from_mdb(rc);
	if (cur)
		mdb_cursor_close(cur);
	st__txn_abort(st, txn);
	return status;
}

/* Reads campaigns ids[0..n-1] in one read transaction; skips pruned ones. */
static int camp_read_chunk(st_store *st, const uint64_t *ids, size_t n,
			   struct camp_record *out, size_t *got)
{
	MDB_txn *txn = NULL;
	int status;

	*got = 0;
	status = st__txn_begin(st, MDB_RDONLY, &txn);
	for (size_t i = 0; i < n && status == ST_OK; i++) {
		status = camp_get(st, txn, ids[i], &out[*got]);
		if (status == ST_OK)
			(*got)++;
		else if (status == ST_ERR_NOT_FOUND)
			status = ST_OK;
	}
	st__txn_abort(st, txn);
	return status;
}

int st_campaign_scan(st_store *st, int64_t since_us, uint64_t before_id,
		     st_campaign_visit_fn visit, void *ctx)
{
	struct camp_record *chunk = NULL;
	uint64_t *ids = NULL;
	size_t n = 0;
	int status;

	if (!st || !visit)
		return ST_ERR_INVALID;
	status = camp_collect_ids(st, since_us, before_id, &ids, &n);
	if (status != ST_OK || n == 0)
		goto out;
	qsort(ids, n, sizeof *ids, camp_id_cmp_desc);
	chunk = malloc(CAMP_SCAN_CHUNK * sizeof *chunk);
	if (!chunk) {
		status = ST_ERR_IO;
		goto out;
	}

	for (size_t at = 0; at < n; at += CAMP_SCAN_CHUNK) {
		size_t take = n - at < CAMP_SCAN_CHUNK ? n - at : CAMP_SCAN_CHUNK;
		size_t got = 0;

		status = camp_read_chunk(st, ids + at, take, chunk, &got);
		if (status != ST_OK)
			break;
		for (size_t i = 0; i < got; i++)
			if (visit(&chunk[i].c, ctx) != 0)
				goto out;
	}

out:
	free(chunk);
	free(ids);
	return status;
}

int st_campaign_get(st_store *st, uint64_t id, struct st_campaign *out)
{
	struct camp_record *r = NULL;
	MDB_txn *txn = NULL;
	int status;

	if (!st || !out)
		return ST_ERR_INVALID;
	r = malloc(sizeof *r);
	if (!r)
		return ST_ERR_IO;
	status = st__txn_begin(st, MDB_RDONLY, &txn);
	if (status == ST_OK)
		status = camp_get(st, txn, id, r);
	st__txn_abort(st, txn);
	if (status == ST_OK)
		*out = r->c;
	free(r);
	return status;
}
