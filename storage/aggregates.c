/*
 * Stats aggregates, the writing side: counters added in st_append's
 * transaction, so that they always agree with the signals it stores, the
 * sensors' last-seen times, and pruning by age. aggregates.h describes
 * the layout; stats.c reads it.
 *
 * Retention deletes signals but not counters, which go after their own
 * ages (st_analytics_settings). Meta "deleted_observed_max" records the
 * newest observed time of a deleted signal, so st_stats_count can tell
 * when the counters still include signals that are no longer stored.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aggregates.h"

/* Sensors' last-seen entries are kept this long. */
#define AGG_SENSOR_KEEP_US (INT64_C(24) * 3600 * 1000000)

const int64_t agg_step_us[ST_LEVEL_COUNT] = {
	INT64_C(60) * 1000000,
	INT64_C(3600) * 1000000,
	INT64_C(86400) * 1000000,
};

static const MDB_val agg_meta_deleted = { 20, "deleted_observed_max" };

int64_t st_level_us(enum st_level level)
{
	return level < ST_LEVEL_COUNT ? agg_step_us[level] : 0;
}

void st__analytics_defaults(st_store *st)
{
	atomic_store(&st->campaign_idle_gap_us, INT64_C(6) * 3600 * 1000000);
	atomic_store(&st->minute_keep_us, INT64_C(30) * 86400 * 1000000);
	atomic_store(&st->stats_keep_us, INT64_C(90) * 86400 * 1000000);
}

void st_analytics_configure(st_store *st, const struct st_analytics_settings *s)
{
	if (!st || !s)
		return;
	if (s->campaign_idle_gap_us > 0)
		atomic_store(&st->campaign_idle_gap_us, s->campaign_idle_gap_us);
	if (s->minute_keep_us > 0)
		atomic_store(&st->minute_keep_us, s->minute_keep_us);
	if (s->stats_keep_us > 0)
		atomic_store(&st->stats_keep_us, s->stats_keep_us);
}

/* ---- time, keys and values ---- */

int64_t agg_floor(int64_t us, int64_t step)
{
	int64_t q = us / step;

	if (us % step != 0 && us < 0)
		q--;
	return q * step;
}

int64_t agg_ceil(int64_t us, int64_t step)
{
	int64_t f = agg_floor(us, step);

	return f == us ? us : f + step;
}

size_t agg_reverse_domain(const char *name, char *out)
{
	size_t end = strnlen(name, SG_DOMAIN_MAX);
	size_t w = 0;

	while (end > 0) {
		size_t start = end;

		while (start > 0 && name[start - 1] != '.')
			start--;
		if (w > 0)
			out[w++] = '.';
		memcpy(out + w, name + start, end - start);
		w += end - start;
		end = start > 0 ? start - 1 : 0;
	}
	out[w] = '\0';
	return w;
}

size_t agg_key_vector(uint8_t *k, enum st_level level, int64_t bucket)
{
	k[0] = (uint8_t)level;
	k[1] = AGG_KIND_VECTOR;
	st__put_u64(k + 2, st__time_to_key(bucket));
	return 10;
}

size_t agg_key_global(uint8_t *k, enum st_level level, int64_t bucket,
		      enum st_dim dim, const char *value)
{
	size_t vlen = strnlen(value, SG_DOMAIN_MAX);

	k[0] = (uint8_t)level;
	k[1] = AGG_KIND_GLOBAL;
	st__put_u64(k + 2, st__time_to_key(bucket));
	k[10] = (uint8_t)dim;
	memcpy(k + 11, value, vlen);
	return 11 + vlen;
}

size_t agg_key_domain(uint8_t *k, enum st_level level, const char *rev,
		      size_t revlen, bool with_bucket, int64_t bucket,
		      const char *region)
{
	size_t n = 0;

	k[n++] = (uint8_t)level;
	k[n++] = AGG_KIND_DOMAIN;
	memcpy(k + n, rev, revlen);
	n += revlen;
	k[n++] = 0;
	if (!with_bucket)
		return n;
	st__put_u64(k + n, st__time_to_key(bucket));
	n += 8;
	if (!region) {
		k[n++] = AGG_SUB_VECTOR;
		return n;
	}
	k[n++] = AGG_SUB_REGION;
	memcpy(k + n, region, 2);
	return n + 2;
}

size_t agg_key_joint(uint8_t *k, enum st_level level, int64_t bucket,
		     const char *region)
{
	k[0] = (uint8_t)level;
	k[1] = AGG_KIND_JOINT;
	st__put_u64(k + 2, st__time_to_key(bucket));
	memcpy(k + 10, region, 2);
	return 12;
}

size_t agg_key_domain_joint(uint8_t *k, enum st_level level, const char *rev,
			    size_t revlen, int64_t bucket, const char *region)
{
	size_t n = agg_key_domain(k, level, rev, revlen, true, bucket, region);

	/* The key ends in [sub][region]: two region bytes after the sub. */
	k[n - 3] = AGG_SUB_JOINT;
	return n;
}

int agg_count_decode(const MDB_val *v, msgpack_zone *zone, uint64_t *out)
{
	msgpack_object obj;
	size_t off = 0;

	if (v->mv_size == 0 || v->mv_size > 9)
		return ST_ERR_CORRUPT;
	if (msgpack_unpack(v->mv_data, v->mv_size, &off, zone, &obj) !=
	    MSGPACK_UNPACK_SUCCESS || off != v->mv_size ||
	    obj.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return ST_ERR_CORRUPT;
	*out = obj.via.u64;
	return ST_OK;
}

int agg_vector_decode(const MDB_val *v, msgpack_zone *zone,
		      uint64_t out[AGG_VEC_LEN])
{
	msgpack_object obj;
	size_t off = 0;

	/* st__value_check bounds what msgpack-c allocates for the array. */
	if (st__value_check(v->mv_data, v->mv_size) != ST_OK ||
	    msgpack_unpack(v->mv_data, v->mv_size, &off, zone, &obj) !=
	    MSGPACK_UNPACK_SUCCESS || off != v->mv_size ||
	    obj.type != MSGPACK_OBJECT_ARRAY || obj.via.array.size != AGG_VEC_LEN)
		return ST_ERR_CORRUPT;
	for (int i = 0; i < AGG_VEC_LEN; i++) {
		if (obj.via.array.ptr[i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return ST_ERR_CORRUPT;
		out[i] = obj.via.array.ptr[i].via.u64;
	}
	return ST_OK;
}

int agg_joint_decode(const MDB_val *v, msgpack_zone *zone,
		     uint64_t out[AGG_JOINT_LEN])
{
	msgpack_object obj;
	size_t off = 0;

	memset(out, 0, AGG_JOINT_LEN * sizeof *out);
	if (st__value_check(v->mv_data, v->mv_size) != ST_OK ||
	    msgpack_unpack(v->mv_data, v->mv_size, &off, zone, &obj) !=
	    MSGPACK_UNPACK_SUCCESS || off != v->mv_size ||
	    obj.type != MSGPACK_OBJECT_MAP || obj.via.map.size > AGG_JOINT_LEN)
		return ST_ERR_CORRUPT;
	for (uint32_t i = 0; i < obj.via.map.size; i++) {
		const msgpack_object_kv *kv = &obj.via.map.ptr[i];

		if (kv->key.type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    kv->key.via.u64 >= AGG_JOINT_LEN)
			return ST_ERR_CORRUPT;

		/* Each code is written once, so a repeated code is corruption. */
		if (out[kv->key.via.u64] != 0)
			return ST_ERR_CORRUPT;
		out[kv->key.via.u64] = kv->val.via.u64;
	}
	return ST_OK;
}

static int agg_vector_base(enum st_dim dim, int *count,
			   const char *const **names)
{
	switch (dim) {
	case ST_DIM_TOTAL:
		*count = 1;
		*names = NULL;
		return AGG_VEC_TOTAL;
	case ST_DIM_EVENT_TYPE:
		*count = SG_EVENT_COUNT;
		*names = sg_event_type_names;
		return AGG_VEC_EVENT;
	case ST_DIM_CONFIDENCE:
		*count = SG_CONFIDENCE_COUNT;
		*names = sg_confidence_names;
		return AGG_VEC_CONFIDENCE;
	case ST_DIM_STAGE:
		*count = SG_STAGE_COUNT;
		*names = sg_stage_names;
		return AGG_VEC_STAGE;
	case ST_DIM_PROXY_TYPE:
		*count = SG_PROXY_COUNT;
		*names = sg_proxy_type_names;
		return AGG_VEC_PROXY;
	case ST_DIM_ACTION:
		*count = SG_ACTION_COUNT;
		*names = sg_action_names;
		return AGG_VEC_ACTION;
	default:
		return -1;
	}
}

int agg_vector_index(enum st_dim dim, const char *value)
{
	const char *const *names = NULL;
	int count = 0;
	int base = agg_vector_base(dim, &count, &names);
	int i;

	if (base < 0 || !names)
		return base;
	i = sg_enum_lookup(names, count, value);
	return i < 0 ? -1 : base + i;
}

const char *agg_vector_name(int i, enum st_dim *dim)
{
	for (int d = ST_DIM_EVENT_TYPE; d < ST_DIM_COUNT; d++) {
		const char *const *names = NULL;
		int count = 0;
		int base = agg_vector_base(d, &count, &names);

		if (base >= 0 && names && i >= base && i < base + count) {
			*dim = d;
			return names[i - base];
		}
	}
	return NULL;
}

/* ---- a batch's changes, collected in memory ---- */

static uint64_t agg_hash(const uint8_t *k, size_t len)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (size_t i = 0; i < len; i++) {
		h ^= k[i];
		h *= UINT64_C(1099511628211);
	}
	return h;
}

void agg_table_free(struct agg_table *t)
{
	for (size_t i = 0; i < t->cap; i++) {
		free(t->slots[i].key);
		free(t->slots[i].pairs);
	}
	free(t->slots);
	memset(t, 0, sizeof *t);
}

static struct agg_entry *agg_table_slot(struct agg_entry *slots, size_t cap,
					const uint8_t *k, size_t len)
{
	size_t i = (size_t)agg_hash(k, len) & (cap - 1);

	while (slots[i].key &&
	       (slots[i].len != len || memcmp(slots[i].key, k, len) != 0))
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static int agg_table_grow(struct agg_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 256;
	struct agg_entry *slots = calloc(cap, sizeof *slots);

	if (!slots)
		return ST_ERR_IO;
	for (size_t i = 0; i < t->cap; i++) {
		struct agg_entry *e = &t->slots[i];

		if (e->key)
			*agg_table_slot(slots, cap, e->key, e->len) = *e;
	}
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
	return ST_OK;
}

struct agg_entry *agg_table_get(struct agg_table *t, const uint8_t *k,
				size_t len, enum agg_value_kind kind)
{
	struct agg_entry *e;

	if ((t->used + 1) * 2 > t->cap && agg_table_grow(t) != ST_OK)
		return NULL;
	e = agg_table_slot(t->slots, t->cap, k, len);
	if (!e->key) {
		e->key = malloc(len);
		if (!e->key)
			return NULL;
		memcpy(e->key, k, len);
		e->len = len;
		e->kind = (uint8_t)kind;
		t->used++;
	}
	return e;
}

static int agg_add_count(struct agg_table *t, const uint8_t *k, size_t len)
{
	struct agg_entry *e = agg_table_get(t, k, len, AGG_VALUE_COUNT);

	if (!e)
		return ST_ERR_IO;
	e->add[0]++;
	return ST_OK;
}

static int agg_add_vector(struct agg_table *t, const uint8_t *k, size_t len,
			  const struct sg_signal *s)
{
	struct agg_entry *e = agg_table_get(t, k, len, AGG_VALUE_VECTOR);

	if (!e)
		return ST_ERR_IO;
	e->add[AGG_VEC_TOTAL]++;
	e->add[AGG_VEC_EVENT + s->event_type % SG_EVENT_COUNT]++;
	e->add[AGG_VEC_CONFIDENCE + s->confidence % SG_CONFIDENCE_COUNT]++;
	e->add[AGG_VEC_STAGE + s->stage % SG_STAGE_COUNT]++;
	e->add[AGG_VEC_PROXY + s->proxy_type % SG_PROXY_COUNT]++;
	e->add[AGG_VEC_ACTION + s->action % SG_ACTION_COUNT]++;
	return ST_OK;
}

/*
 * Adds 1 to the signal's joint code in entry k. A batch usually adds few
 * codes to one entry, so the entry keeps a short list rather than all
 * AGG_JOINT_LEN counts.
 */
static int agg_add_joint(struct agg_table *t, const uint8_t *k, size_t len,
			 uint32_t code)
{
	struct agg_entry *e = agg_table_get(t, k, len, AGG_VALUE_JOINT);
	struct agg_pair *grown;
	uint32_t cap;

	if (!e)
		return ST_ERR_IO;
	for (uint32_t i = 0; i < e->npairs; i++) {
		if (e->pairs[i].code == code) {
			e->pairs[i].count++;
			return ST_OK;
		}
	}
	if (e->npairs == e->pairs_cap) {
		cap = e->pairs_cap ? e->pairs_cap * 2 : 2;
		grown = realloc(e->pairs, cap * sizeof *grown);
		if (!grown)
			return ST_ERR_IO;
		e->pairs = grown;
		e->pairs_cap = cap;
	}
	e->pairs[e->npairs++] = (struct agg_pair){ code, 1 };
	return ST_OK;
}

/* Adds one signal's counters at one level to the batch's table. */
static int agg_add_signal(struct agg_table *t, const struct sg_signal *s,
			  enum st_level level, const char *rev, size_t revlen)
{
	uint8_t k[AGG_KEY_MAX];
	int64_t bucket = agg_floor(s->observed_us, agg_step_us[level]);
	uint32_t code = (uint32_t)agg_joint_code(s->event_type % SG_EVENT_COUNT,
						 s->confidence % SG_CONFIDENCE_COUNT,
						 s->stage % SG_STAGE_COUNT,
						 s->proxy_type % SG_PROXY_COUNT);
	int status;

	status = agg_add_vector(t, k, agg_key_vector(k, level, bucket), s);
	if (status == ST_OK)
		status = agg_add_count(t, k, agg_key_global(k, level, bucket,
							    ST_DIM_REGION, s->region));
	if (status == ST_OK)
		status = agg_add_count(t, k, agg_key_global(k, level, bucket,
							    ST_DIM_DOMAIN, s->domain));
	if (status == ST_OK)
		status = agg_add_vector(t, k, agg_key_domain(k, level, rev, revlen,
							     true, bucket, NULL), s);
	if (status == ST_OK)
		status = agg_add_joint(t, k, agg_key_joint(k, level, bucket, s->region),
				       code);
	if (status == ST_OK)
		status = agg_add_joint(t, k, agg_key_domain_joint(k, level, rev, revlen,
								  bucket, s->region),
				       code);
	return status;
}

/* ---- applying a batch ---- */

static int agg_entry_cmp(const void *a, const void *b)
{
	const struct agg_entry *x = a;
	const struct agg_entry *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->key, y->key, n);

	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* Adds a batch's joint counts to the stored map of e's key. */
static int agg_apply_joint(st_store *st, MDB_txn *txn, const struct agg_entry *e,
			   msgpack_zone *zone, msgpack_sbuffer *buf)
{
	MDB_val key = { e->len, e->key };
	MDB_val val;
	uint64_t cur[AGG_JOINT_LEN] = { 0 };
	msgpack_packer pk;
	uint32_t used = 0;
	int status = ST_OK;
	int rc = mdb_get(txn, st->dbi_stats, &key, &val);

	if (rc == MDB_SUCCESS)
		status = agg_joint_decode(&val, zone, cur);
	else if (rc != MDB_NOTFOUND)
		status = st__status_from_mdb(rc);
	if (status != ST_OK)
		return status;

	for (uint32_t i = 0; i < e->npairs; i++)
		cur[e->pairs[i].code % AGG_JOINT_LEN] += e->pairs[i].count;
	for (int c = 0; c < AGG_JOINT_LEN; c++)
		used += cur[c] != 0;

	msgpack_sbuffer_clear(buf);
	msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
	rc = msgpack_pack_map(&pk, used);
	for (int c = 0; c < AGG_JOINT_LEN && rc == 0; c++) {
		if (cur[c] == 0)
			continue;
		rc = msgpack_pack_uint32(&pk, (uint32_t)c);
		if (rc == 0)
			rc = msgpack_pack_uint64(&pk, cur[c]);
	}
	if (rc != 0)
		return ST_ERR_IO;
	val = (MDB_val){ buf->size, buf->data };
	return st__status_from_mdb(mdb_put(txn, st->dbi_stats, &key, &val, 0));
}

/* Adds e to the stored value of its key. */
static int agg_apply_one(st_store *st, MDB_txn *txn, const struct agg_entry *e,
			 msgpack_zone *zone, msgpack_sbuffer *buf)
{
	MDB_val key = { e->len, e->key };
	MDB_val val;
	uint64_t cur[AGG_VEC_LEN] = { 0 };
	msgpack_packer pk;
	bool vector = e->kind == AGG_VALUE_VECTOR;
	int n = vector ? AGG_VEC_LEN : 1;
	int status = ST_OK;
	int rc;

	if (e->kind == AGG_VALUE_JOINT)
		return agg_apply_joint(st, txn, e, zone, buf);

	rc = mdb_get(txn, st->dbi_stats, &key, &val);
	if (rc == MDB_SUCCESS)
		status = vector ? agg_vector_decode(&val, zone, cur) :
				  agg_count_decode(&val, zone, cur);
	else if (rc != MDB_NOTFOUND)
		status = st__status_from_mdb(rc);
	if (status != ST_OK)
		return status;

	msgpack_sbuffer_clear(buf);
	msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
	rc = vector ? msgpack_pack_array(&pk, AGG_VEC_LEN) : 0;
	for (int i = 0; i < n && rc == 0; i++)
		rc = msgpack_pack_uint64(&pk, cur[i] + e->add[i]);
	if (rc != 0)
		return ST_ERR_IO;
	val = (MDB_val){ buf->size, buf->data };
	return st__status_from_mdb(mdb_put(txn, st->dbi_stats, &key, &val, 0));
}

/* Adds every entry of t to the stored counters, in key order. */
static int agg_apply(st_store *st, MDB_txn *txn, struct agg_table *t)
{
	struct agg_entry *list = NULL;
	msgpack_sbuffer buf;
	msgpack_zone zone;
	size_t n = 0;
	int status = ST_OK;

	msgpack_sbuffer_init(&buf);
	msgpack_zone_init(&zone, 1024);
	list = malloc((t->used ? t->used : 1) * sizeof *list);
	if (!list) {
		status = ST_ERR_IO;
		goto out;
	}
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].key)
			list[n++] = t->slots[i];
	qsort(list, n, sizeof *list, agg_entry_cmp);

	for (size_t i = 0; i < n && status == ST_OK; i++) {
		status = agg_apply_one(st, txn, &list[i], &zone, &buf);

		/* Decoded arrays live in the zone; drop them now and then. */
		if (i % 256 == 255)
			msgpack_zone_clear(&zone);
	}

out:
	free(list);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&buf);
	return status;
}

/* Stores each sensor's newest received time. */
static int agg_record_sensors(st_store *st, MDB_txn *txn,
			      const struct sg_signal *sigs, size_t n)
{
	msgpack_sbuffer buf;
	msgpack_packer pk;
	int status = ST_OK;

	msgpack_sbuffer_init(&buf);
	msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
	for (size_t i = 0; i < n && status == ST_OK; i++) {
		const struct sg_signal *s = &sigs[i];
		MDB_val key = { strnlen(s->sensor, SG_ID_MAX), (void *)s->sensor };
		MDB_val val;

		/* A batch usually comes from one sensor: write it once. */
		if (!s->sensor[0] || (i > 0 && !strcmp(s->sensor, sigs[i - 1].sensor)))
			continue;
		msgpack_sbuffer_clear(&buf);
		if (msgpack_pack_int64(&pk, s->received_us) != 0) {
			status = ST_ERR_IO;
			break;
		}
		val = (MDB_val){ buf.size, buf.data };
		status = st__status_from_mdb(mdb_put(txn, st->dbi_sensors, &key, &val, 0));
	}
	msgpack_sbuffer_destroy(&buf);
	return status;
}

int st__agg_record(st_store *st, MDB_txn *txn, const struct sg_signal *sigs,
		   size_t n)
{
	struct agg_table t = { NULL, 0, 0 };
	char rev[SG_DOMAIN_MAX + 2];
	int status = ST_OK;

	/* Changes collect in memory first: a batch of 10,000 signals touches
	 * a few hundred distinct counters, each read and written once. */
	for (size_t i = 0; i < n && status == ST_OK; i++) {
		size_t revlen = agg_reverse_domain(sigs[i].domain, rev);

		for (int level = 0; level < ST_LEVEL_COUNT && status == ST_OK; level++)
			status = agg_add_signal(&t, &sigs[i], level, rev, revlen);
	}
	if (status == ST_OK)
		status = agg_apply(st, txn, &t);
	if (status == ST_OK)
		status = agg_record_sensors(st, txn, sigs, n);
	agg_table_free(&t);
	return status;
}

int agg_deleted_max(st_store *st, MDB_txn *txn, int64_t *out)
{
	return st__meta_get_time(st, txn, agg_meta_deleted.mv_data, out);
}

int st__agg_note_deleted(st_store *st, MDB_txn *txn, int64_t observed_us)
{
	MDB_val key = agg_meta_deleted;
	uint8_t buf[8];
	MDB_val val = { sizeof buf, buf };
	int64_t cur = INT64_MIN;
	int status = agg_deleted_max(st, txn, &cur);

	if (status != ST_OK || observed_us <= cur)
		return status;
	st__put_u64(buf, st__time_to_key(observed_us));
	return st__status_from_mdb(mdb_put(txn, st->dbi_meta, &key, &val, 0));
}

/* ---- pruning ---- */

struct agg_prune_ctx {
	int64_t now_us;
	size_t max_delete;
	size_t deleted;
	bool more;
};

int agg_cursor_del_next(MDB_cursor *cur, MDB_val *key, MDB_val *val)
{
	int rc = mdb_cursor_del(cur, 0);

	if (rc != MDB_SUCCESS)
		return rc;
	/* Deleting the last entry of a database leaves the cursor
	 * uninitialised, and LMDB returns EINVAL instead of MDB_NOTFOUND. */
	rc = mdb_cursor_get(cur, key, val, MDB_GET_CURRENT);
	return rc == EINVAL ? MDB_NOTFOUND : rc;
}

/* Deletes vectors and global counts of level with buckets before cutoff. */
static int agg_prune_time_major(MDB_cursor *cur, enum st_level level,
				uint8_t kind, int64_t cutoff,
				struct agg_prune_ctx *pc)
{
	uint8_t k[10];
	MDB_val key = { 2, k };
	MDB_val val;
	int rc;

	k[0] = (uint8_t)level;
	k[1] = kind;
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	while (rc == MDB_SUCCESS) {
		const uint8_t *p = key.mv_data;

		if (key.mv_size < 10 || p[0] != level || p[1] != kind ||
		    st__time_from_key(st__get_u64(p + 2)) >= cutoff)
			return MDB_SUCCESS;
		if (pc->deleted == pc->max_delete) {
			pc->more = true;
			return MDB_SUCCESS;
		}
		pc->deleted++;
		rc = agg_cursor_del_next(cur, &key, &val);
	}
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* Deletes per-domain counters of level with buckets before cutoff. */
static int agg_prune_domains(MDB_cursor *cur, enum st_level level,
			     int64_t cutoff, struct agg_prune_ctx *pc)
{
	uint8_t k[AGG_KEY_MAX];
	MDB_val key = { 2, k };
	MDB_val val;
	int rc;

	k[0] = (uint8_t)level;
	k[1] = AGG_KIND_DOMAIN;
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	while (rc == MDB_SUCCESS) {
		const uint8_t *p = key.mv_data;
		const uint8_t *nul;
		size_t plen;

		if (key.mv_size < 3 || p[0] != level || p[1] != AGG_KIND_DOMAIN)
			return MDB_SUCCESS;
		nul = memchr(p + 2, 0, key.mv_size - 2);
		if (!nul)
			return MDB_CORRUPTED;
		plen = (size_t)(nul - p) + 1;
		if (key.mv_size >= plen + 8 &&
		    st__time_from_key(st__get_u64(p + plen)) < cutoff) {
			if (pc->deleted == pc->max_delete) {
				pc->more = true;
				return MDB_SUCCESS;
			}
			pc->deleted++;
			rc = agg_cursor_del_next(cur, &key, &val);
			continue;
		}

		/* This domain's older buckets are gone: go to the next domain. */
		if (plen > sizeof k)
			return MDB_CORRUPTED;
		memcpy(k, p, plen);
		k[plen - 1] = 1;
		key = (MDB_val){ plen, k };
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	}
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

static int agg_prune_sensors(st_store *st, MDB_txn *txn, struct agg_prune_ctx *pc)
{
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	msgpack_zone zone;
	int rc;

	msgpack_zone_init(&zone, 64);
	rc = mdb_cursor_open(txn, st->dbi_sensors, &cur);
	if (rc == MDB_SUCCESS)
		rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	while (rc == MDB_SUCCESS) {
		msgpack_object obj;
		size_t off = 0;
		bool old = true;

		if (val.mv_size <= 9 &&
		    msgpack_unpack(val.mv_data, val.mv_size, &off, &zone, &obj) ==
		    MSGPACK_UNPACK_SUCCESS && obj.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			old = obj.via.u64 < (uint64_t)(pc->now_us - AGG_SENSOR_KEEP_US);
		if (!old) {
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
			continue;
		}
		if (pc->deleted == pc->max_delete) {
			pc->more = true;
			break;
		}
		pc->deleted++;
		rc = agg_cursor_del_next(cur, &key, &val);
	}
	if (cur)
		mdb_cursor_close(cur);
	msgpack_zone_destroy(&zone);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

static int agg_prune_body(st_store *st, MDB_txn *txn, void *ctx)
{
	struct agg_prune_ctx *pc = ctx;
	int64_t stats_cutoff = pc->now_us - atomic_load(&st->stats_keep_us);
	MDB_cursor *cur = NULL;
	int rc;

	pc->deleted = 0;
	pc->more = false;
	rc = mdb_cursor_open(txn, st->dbi_stats, &cur);
	for (int level = 0; level < ST_LEVEL_COUNT && rc == MDB_SUCCESS; level++) {
		/* A bucket goes when all of it is past the age. */
		int64_t cutoff = (level == ST_LEVEL_MINUTE ?
				  pc->now_us - atomic_load(&st->minute_keep_us) :
				  stats_cutoff) - agg_step_us[level];

		rc = agg_prune_time_major(cur, level, AGG_KIND_VECTOR, cutoff, pc);
		if (rc == MDB_SUCCESS)
			rc = agg_prune_time_major(cur, level, AGG_KIND_GLOBAL, cutoff, pc);
		if (rc == MDB_SUCCESS)
			rc = agg_prune_time_major(cur, level, AGG_KIND_JOINT, cutoff, pc);
		if (rc == MDB_SUCCESS)
			rc = agg_prune_domains(cur, level, cutoff, pc);
	}
	if (cur)
		mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		rc = MDB_SUCCESS;
	if (rc == MDB_SUCCESS)
		rc = agg_prune_sensors(st, txn, pc);
	if (rc != MDB_SUCCESS)
		return st__status_from_mdb(rc);

	if (pc->deleted < pc->max_delete) {
		size_t n = 0;
		bool more = false;
		int status = st__campaign_prune(st, txn, stats_cutoff,
						pc->max_delete - pc->deleted, &n, &more);

		if (status != ST_OK)
			return status;
		pc->deleted += n;
		pc->more = pc->more || more;
	}

	/* Nothing to delete: abort rather than pay for an empty commit. */
	return pc->deleted ? ST_OK : ST_ERR_NOT_FOUND;
}

int st_analytics_prune(st_store *st, int64_t now_us, size_t max_delete,
		       bool *more)
{
	struct agg_prune_ctx pc = { now_us, max_delete, 0, false };
	int status;

	if (!st || !more || max_delete == 0)
		return ST_ERR_INVALID;
	*more = false;
	status = st__write(st, ST_ROOM_RESERVE, agg_prune_body, &pc);
	if (status == ST_ERR_NOT_FOUND)
		return ST_OK;
	if (status == ST_OK)
		*more = pc.more;
	return status;
}
