/*
 * Stats aggregates, the reading side: st_stats_read for the stats
 * endpoint, st_stats_count and st_stats_count_joint for list totals,
 * st_sensors_active. The cost
 * of a read grows with the number of buckets and distinct values in the
 * window, never with the number of stored signals.
 *
 * A window [a, b) is read as at most five runs of buckets: minutes up to
 * the first full hour, hours up to the first full day, days, then hours
 * and minutes up to b. An open end (b = INT64_MAX) ends in days, so
 * signals observed in the future count too.
 */
#include <stdlib.h>
#include <string.h>

#include "aggregates.h"

#define AGG_SEGMENTS_MAX 5

/* ---- windows as runs of buckets ---- */

struct agg_segment {
	enum st_level level;
	int64_t from, to;       /* bucket starts in [from, to); INT64_MAX: open */
};

static void agg_segment_add(struct agg_segment *out, size_t *n,
			    enum st_level level, int64_t from, int64_t to)
{
	if (from < to && *n < AGG_SEGMENTS_MAX)
		out[(*n)++] = (struct agg_segment){ level, from, to };
}

/*
 * Splits [a, b) into runs of whole buckets, coarsest in the middle. a and
 * b must be minute aligned, or b INT64_MAX for an open end.
 */
static size_t agg_segments(int64_t a, int64_t b, struct agg_segment *out)
{
	const int64_t hour = agg_step_us[ST_LEVEL_HOUR];
	const int64_t day = agg_step_us[ST_LEVEL_DAY];
	bool open = b == INT64_MAX;
	int64_t hour_b = open ? INT64_MAX : agg_floor(b, hour);
	int64_t day_b = open ? INT64_MAX : agg_floor(b, day);
	int64_t t = a;
	int64_t next;
	size_t n = 0;

	if (a >= b)
		return 0;

	next = agg_ceil(t, hour);
	if (next > b)
		next = b;
	agg_segment_add(out, &n, ST_LEVEL_MINUTE, t, next);
	t = next;

	next = agg_ceil(t, day);
	if (next > hour_b)
		next = hour_b;
	if (next > t) {
		agg_segment_add(out, &n, ST_LEVEL_HOUR, t, next);
		t = next;
	}

	if (day_b > t) {
		agg_segment_add(out, &n, ST_LEVEL_DAY, t, day_b);
		t = day_b;
	}
	if (open)
		return n;

	if (hour_b > t) {
		agg_segment_add(out, &n, ST_LEVEL_HOUR, t, hour_b);
		t = hour_b;
	}
	agg_segment_add(out, &n, ST_LEVEL_MINUTE, t, b);
	return n;
}

/* ---- the reader ---- */

/* One read: what it counts and where the results go. */
struct agg_reader {
	st_store *st;
	MDB_txn *txn;
	MDB_cursor *cur;
	msgpack_zone zone;

	/* Three modes. Groups mode adds every value into groups. Joint mode
	 * counts the codes in joint_pick of the regions in regions[], or of
	 * every region when nregions is 0. Otherwise r counts the vector
	 * positions in pick, or the regions in regions[]. */
	struct agg_table *groups;
	const char *domain_name;        /* the domain group's value */
	bool pick[AGG_VEC_LEN];
	bool by_region;
	bool joint;
	bool joint_pick[AGG_JOINT_LEN];
	const char *const *regions;
	size_t nregions;

	uint64_t sum;
	struct st_trend_point *trend;   /* adds vector totals, or NULL */
	size_t ntrend;
	int64_t trend_step;
};

static int agg_group_add(struct agg_reader *r, enum st_dim dim,
			 const void *value, size_t vlen, uint64_t count)
{
	uint8_t k[1 + SG_DOMAIN_MAX];
	struct agg_entry *e;

	if (count == 0 || vlen > SG_DOMAIN_MAX)
		return ST_OK;
	k[0] = (uint8_t)dim;
	memcpy(k + 1, value, vlen);
	e = agg_table_get(r->groups, k, vlen + 1, AGG_VALUE_COUNT);
	if (!e)
		return ST_ERR_IO;
	e->add[0] += count;
	return ST_OK;
}

static void agg_trend_add(struct agg_reader *r, int64_t bucket,
			  const uint64_t v[AGG_VEC_LEN])
{
	struct st_trend_point *point;
	int64_t idx;

	if (!r->trend || bucket < r->trend[0].bucket_us)
		return;
	idx = (bucket - r->trend[0].bucket_us) / r->trend_step;
	if (idx >= (int64_t)r->ntrend)
		return;
	point = &r->trend[idx];
	point->count += v[AGG_VEC_TOTAL];
	for (int e = 0; e < SG_EVENT_COUNT; e++)
		point->by_event[e] += v[AGG_VEC_EVENT + e];
}

static int agg_take_vector(struct agg_reader *r, int64_t bucket,
			   const MDB_val *val)
{
	uint64_t v[AGG_VEC_LEN];
	int status = agg_vector_decode(val, &r->zone, v);

	msgpack_zone_clear(&r->zone);
	if (status != ST_OK)
		return status;
	agg_trend_add(r, bucket, v);
	if (!r->groups) {
		for (int i = 0; i < AGG_VEC_LEN; i++)
			if (r->pick[i])
				r->sum += v[i];
		return ST_OK;
	}

	r->sum += v[AGG_VEC_TOTAL];
	for (int i = AGG_VEC_TOTAL + 1; i < AGG_VEC_LEN && status == ST_OK; i++) {
		enum st_dim dim = ST_DIM_TOTAL;
		const char *name = agg_vector_name(i, &dim);

		if (name)
			status = agg_group_add(r, dim, name, strlen(name), v[i]);
	}
	if (status == ST_OK && r->domain_name)
		status = agg_group_add(r, ST_DIM_DOMAIN, r->domain_name,
				       strlen(r->domain_name), v[AGG_VEC_TOTAL]);
	return status;
}

/*
 * Adds a stored count of dim's value, or with joint set the sum of a
 * joint value (the count of its region), when r counts that value.
 */
static int agg_take_count(struct agg_reader *r, enum st_dim dim,
			  const uint8_t *value, size_t vlen, const MDB_val *val,
			  bool joint)
{
	uint64_t counts[AGG_JOINT_LEN];
	uint64_t count = 0;
	bool wanted = r->groups != NULL;
	int status;

	for (size_t i = 0; !wanted && r->by_region && i < r->nregions; i++)
		wanted = dim == ST_DIM_REGION && strlen(r->regions[i]) == vlen &&
			 !memcmp(r->regions[i], value, vlen);
	if (!wanted)
		return ST_OK;
	if (!joint) {
		status = agg_count_decode(val, &r->zone, &count);
	} else {
		status = agg_joint_decode(val, &r->zone, counts);
		msgpack_zone_clear(&r->zone);
		for (int c = 0; c < AGG_JOINT_LEN; c++)
			count += counts[c];
	}
	if (status != ST_OK)
		return status;
	if (!r->groups) {
		r->sum += count;
		return ST_OK;
	}
	return agg_group_add(r, dim, value, vlen, count);
}

/* Returns true when region (vlen bytes) is one that a joint read counts. */
static bool agg_joint_region_wanted(const struct agg_reader *r,
				    const uint8_t *region, size_t vlen)
{
	if (r->nregions == 0)
		return true;
	for (size_t i = 0; i < r->nregions; i++)
		if (strlen(r->regions[i]) == vlen && !memcmp(r->regions[i], region, vlen))
			return true;
	return false;
}

/* Adds the picked codes of one joint value to r->sum. */
static int agg_take_joint(struct agg_reader *r, const MDB_val *val)
{
	uint64_t counts[AGG_JOINT_LEN];
	int status = agg_joint_decode(val, &r->zone, counts);

	msgpack_zone_clear(&r->zone);
	if (status != ST_OK)
		return status;
	for (int c = 0; c < AGG_JOINT_LEN; c++)
		if (r->joint_pick[c])
			r->sum += counts[c];
	return ST_OK;
}

static int agg_seek(struct agg_reader *r, const uint8_t *k, size_t len,
		    MDB_val *key, MDB_val *val)
{
	*key = (MDB_val){ len, (void *)k };
	return mdb_cursor_get(r->cur, key, val, MDB_SET_RANGE);
}

static int agg_scan_end(int status, int rc)
{
	if (status == ST_OK && rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return st__status_from_mdb(rc);
	return status;
}

/* Reads the global vectors of level with buckets in [from, to). */
static int agg_read_vectors(struct agg_reader *r, enum st_level level,
			    int64_t from, int64_t to)
{
	uint8_t k[10];
	MDB_val key, val;
	int status = ST_OK;
	int rc;

	rc = agg_seek(r, k, agg_key_vector(k, level, from), &key, &val);
	while (rc == MDB_SUCCESS && status == ST_OK) {
		const uint8_t *p = key.mv_data;
		int64_t bucket;

		if (key.mv_size != 10 || p[0] != level || p[1] != AGG_KIND_VECTOR)
			break;
		bucket = st__time_from_key(st__get_u64(p + 2));
		if (bucket >= to)
			break;
		status = agg_take_vector(r, bucket, &val);
		rc = mdb_cursor_get(r->cur, &key, &val, MDB_NEXT);
	}
	return agg_scan_end(status, rc);
}

/* Reads the global region and domain counts of the buckets of seg. */
static int agg_read_global(struct agg_reader *r, const struct agg_segment *seg)
{
	uint8_t k[10];
	MDB_val key, val;
	int status = ST_OK;
	int rc;

	k[0] = (uint8_t)seg->level;
	k[1] = AGG_KIND_GLOBAL;
	st__put_u64(k + 2, st__time_to_key(seg->from));
	rc = agg_seek(r, k, sizeof k, &key, &val);
	while (rc == MDB_SUCCESS && status == ST_OK) {
		const uint8_t *p = key.mv_data;

		if (key.mv_size < 11 || p[0] != seg->level || p[1] != AGG_KIND_GLOBAL ||
		    st__time_from_key(st__get_u64(p + 2)) >= seg->to)
			break;
		status = agg_take_count(r, p[10], p + 11, key.mv_size - 11, &val, false);
		rc = mdb_cursor_get(r->cur, &key, &val, MDB_NEXT);
	}
	return agg_scan_end(status, rc);
}

/* Reads the joint counts of every domain in the buckets of seg. */
static int agg_read_global_joint(struct agg_reader *r,
				 const struct agg_segment *seg)
{
	uint8_t k[10];
	MDB_val key, val;
	int status = ST_OK;
	int rc;

	k[0] = (uint8_t)seg->level;
	k[1] = AGG_KIND_JOINT;
	st__put_u64(k + 2, st__time_to_key(seg->from));
	rc = agg_seek(r, k, sizeof k, &key, &val);
	while (rc == MDB_SUCCESS && status == ST_OK) {
		const uint8_t *p = key.mv_data;

		if (key.mv_size < 10 || p[0] != seg->level || p[1] != AGG_KIND_JOINT ||
		    st__time_from_key(st__get_u64(p + 2)) >= seg->to)
			break;
		if (agg_joint_region_wanted(r, p + 10, key.mv_size - 10))
			status = agg_take_joint(r, &val);
		rc = mdb_cursor_get(r->cur, &key, &val, MDB_NEXT);
	}
	return agg_scan_end(status, rc);
}

/*
 * Counts the wanted regions in the buckets of seg: the vectors name the
 * buckets that hold data, and one lookup per region and bucket skips
 * the domains of the bucket.
 */
static int agg_read_global_regions(struct agg_reader *r,
				   const struct agg_segment *seg)
{
	uint8_t k[AGG_KEY_MAX];
	MDB_val key, val;
	int64_t bucket = seg->from;
	int status = ST_OK;
	int rc;

	for (;;) {
		const uint8_t *p;

		rc = agg_seek(r, k, agg_key_vector(k, seg->level, bucket), &key, &val);
		if (rc != MDB_SUCCESS)
			break;
		p = key.mv_data;
		if (key.mv_size != 10 || p[0] != seg->level || p[1] != AGG_KIND_VECTOR)
			break;
		bucket = st__time_from_key(st__get_u64(p + 2));
		if (bucket >= seg->to)
			break;

		for (size_t i = 0; i < r->nregions && status == ST_OK; i++) {
			MDB_val gkey = { agg_key_global(k, seg->level, bucket,
							ST_DIM_REGION, r->regions[i]), k };
			MDB_val gval;

			rc = mdb_get(r->txn, r->st->dbi_stats, &gkey, &gval);
			if (rc == MDB_SUCCESS)
				status = agg_take_count(r, ST_DIM_REGION, k + 11,
							gkey.mv_size - 11, &gval, false);
			else if (rc != MDB_NOTFOUND)
				status = st__status_from_mdb(rc);
		}
		if (status != ST_OK)
			return status;
		bucket += agg_step_us[seg->level];
	}
	return agg_scan_end(status, rc);
}

/* Reads one domain's entries (rev, revlen bytes) in the buckets of seg. */
static int agg_read_domain(struct agg_reader *r, const struct agg_segment *seg,
			   const char *rev, size_t revlen)
{
	uint8_t k[AGG_KEY_MAX];
	size_t plen = agg_key_domain(k, seg->level, rev, revlen, false, 0, NULL);
	MDB_val key, val;
	int status = ST_OK;
	int rc;

	st__put_u64(k + plen, st__time_to_key(seg->from));
	rc = agg_seek(r, k, plen + 8, &key, &val);
	while (rc == MDB_SUCCESS && status == ST_OK) {
		const uint8_t *p = key.mv_data;
		int64_t bucket;

		if (key.mv_size < plen + 9 || memcmp(p, k, plen) != 0)
			break;
		bucket = st__time_from_key(st__get_u64(p + plen));
		if (bucket >= seg->to)
			break;
		if (r->joint) {
			if (p[plen + 8] == AGG_SUB_JOINT &&
			    agg_joint_region_wanted(r, p + plen + 9, key.mv_size - plen - 9))
				status = agg_take_joint(r, &val);
		} else if (p[plen + 8] == AGG_SUB_VECTOR && !r->by_region) {
			status = agg_take_vector(r, bucket, &val);
		} else if ((p[plen + 8] == AGG_SUB_REGION || p[plen + 8] == AGG_SUB_JOINT) &&
			   !r->trend) {
			/* Region counts of one domain: a count from an older
			 * canaryd, the sum of a joint value from this one. */
			status = agg_take_count(r, ST_DIM_REGION, p + plen + 9,
						key.mv_size - plen - 9, &val,
						p[plen + 8] == AGG_SUB_JOINT);
		}
		rc = mdb_cursor_get(r->cur, &key, &val, MDB_NEXT);
	}
	return agg_scan_end(status, rc);
}

/* Reads every domain whose reversed name starts with prefix ("com.example."
 * for "*.example.com"), one domain after the other. */
static int agg_read_domains_under(struct agg_reader *r,
				  const struct agg_segment *seg,
				  const char *prefix, size_t plen)
{
	uint8_t k[AGG_KEY_MAX];
	char rev[SG_DOMAIN_MAX + 2];
	MDB_val key, val;
	size_t klen;
	int status = ST_OK;
	int rc;

	k[0] = (uint8_t)seg->level;
	k[1] = AGG_KIND_DOMAIN;
	memcpy(k + 2, prefix, plen);
	rc = agg_seek(r, k, 2 + plen, &key, &val);
	while (rc == MDB_SUCCESS && status == ST_OK) {
		const uint8_t *p = key.mv_data;
		const uint8_t *nul;
		size_t revlen;

		if (key.mv_size < 2 + plen || p[0] != seg->level ||
		    p[1] != AGG_KIND_DOMAIN || memcmp(p + 2, prefix, plen) != 0)
			break;
		nul = memchr(p + 2, 0, key.mv_size - 2);
		if (!nul || (size_t)(nul - p - 2) > SG_DOMAIN_MAX)
			return ST_ERR_CORRUPT;
		revlen = (size_t)(nul - p - 2);
		memcpy(rev, p + 2, revlen);
		rev[revlen] = '\0';

		status = agg_read_domain(r, seg, rev, revlen);

		/* The next domain starts after every key of this one. */
		klen = agg_key_domain(k, seg->level, rev, revlen, false, 0, NULL);
		k[klen - 1] = 1;
		if (status == ST_OK)
			rc = agg_seek(r, k, klen, &key, &val);
	}
	return agg_scan_end(status, rc);
}

static int agg_reader_open(st_store *st, struct agg_reader *r)
{
	int status;

	msgpack_zone_init(&r->zone, 512);
	r->st = st;
	status = st__txn_begin(st, MDB_RDONLY, &r->txn);
	if (status != ST_OK)
		return status;
	return st__status_from_mdb(mdb_cursor_open(r->txn, st->dbi_stats, &r->cur));
}

static void agg_reader_close(struct agg_reader *r)
{
	if (r->cur)
		mdb_cursor_close(r->cur);
	if (r->txn)
		st__txn_abort(r->st, r->txn);
	if (r->st)
		msgpack_zone_destroy(&r->zone);
	r->cur = NULL;
	r->txn = NULL;
	r->st = NULL;
}

/* ---- st_stats_read ---- */

/* Adds the totals of [a, b) to r->sum: globally, or for each name. */
static int agg_count_range(struct agg_reader *r, int64_t a, int64_t b,
			   const char *const *domains, size_t ndomains)
{
	struct agg_segment segs[AGG_SEGMENTS_MAX];
	size_t nsegs = agg_segments(a, b, segs);
	char rev[SG_DOMAIN_MAX + 2];
	int status = ST_OK;

	for (size_t i = 0; i < nsegs && status == ST_OK; i++) {
		if (!domains) {
			status = agg_read_vectors(r, segs[i].level, segs[i].from,
						  segs[i].to);
			continue;
		}
		for (size_t d = 0; d < ndomains && status == ST_OK; d++)
			status = agg_read_domain(r, &segs[i], rev,
						 agg_reverse_domain(domains[d], rev));
	}
	return status;
}

/* Counts [a, b) through finer buckets, leaving r's sum and trend alone. */
static int agg_count_edge(struct agg_reader *r, const struct st_stats_query *q,
			  int64_t a, int64_t b, uint64_t *out)
{
	struct st_trend_point *trend = r->trend;
	uint64_t sum = r->sum;
	int status;

	r->trend = NULL;
	r->sum = 0;
	status = agg_count_range(r, a, b, q->domains, q->ndomains);
	*out = r->sum;
	r->trend = trend;
	r->sum = sum;
	return status;
}

/* Adds the part [a, b) of one trend point: its total and, one count
 * each, its split by event type. */
static int agg_add_edge(struct agg_reader *r, const struct st_stats_query *q,
			int64_t a, int64_t b, struct st_trend_point *point)
{
	bool saved[AGG_VEC_LEN];
	uint64_t edge = 0;
	int status;

	memcpy(saved, r->pick, sizeof saved);
	memset(r->pick, 0, sizeof r->pick);
	r->pick[AGG_VEC_TOTAL] = true;
	status = agg_count_edge(r, q, a, b, &edge);
	point->count += edge;
	for (int e = 0; e < SG_EVENT_COUNT && status == ST_OK; e++) {
		memset(r->pick, 0, sizeof r->pick);
		r->pick[AGG_VEC_EVENT + e] = true;
		edge = 0;
		status = agg_count_edge(r, q, a, b, &edge);
		point->by_event[e] += edge;
	}
	memcpy(r->pick, saved, sizeof saved);
	return status;
}

/*
 * Fills the trend points. A point that the window covers only in part
 * counts that part, so the points add up to the total.
 */
static int agg_read_trend(struct agg_reader *r, const struct st_stats_query *q,
			  int64_t a, int64_t b)
{
	int64_t step = agg_step_us[q->trend_level];
	int64_t first = agg_floor(a, step);
	int64_t last = agg_floor(b - 1, step);
	int64_t lo = a;
	int64_t hi = last + step;
	int status = ST_OK;

	if (first == last)
		return agg_add_edge(r, q, a, b, &r->trend[0]);
	if (a > first) {
		lo = first + step;
		status = agg_add_edge(r, q, a, lo, &r->trend[0]);
	}
	if (status == ST_OK && b < hi) {
		hi = last;
		status = agg_add_edge(r, q, last, b, &r->trend[r->ntrend - 1]);
	}
	if (status != ST_OK || lo >= hi)
		return status;

	/* Whole steps: one range scan of the level's vectors. */
	if (!q->domains)
		return agg_read_vectors(r, q->trend_level, lo, hi);
	for (size_t d = 0; d < q->ndomains && status == ST_OK; d++) {
		struct agg_segment seg = { q->trend_level, lo, hi };
		char rev[SG_DOMAIN_MAX + 2];

		status = agg_read_domain(r, &seg, rev,
					 agg_reverse_domain(q->domains[d], rev));
	}
	return status;
}

/* Reads totals and groups of [a, b) into r->sum and r->groups. */
static int agg_read_groups(struct agg_reader *r, const struct st_stats_query *q,
			   int64_t a, int64_t b)
{
	struct agg_segment segs[AGG_SEGMENTS_MAX];
	size_t nsegs = agg_segments(a, b, segs);
	char rev[SG_DOMAIN_MAX + 2];
	int status = ST_OK;

	for (size_t i = 0; i < nsegs && status == ST_OK; i++) {
		if (!q->domains) {
			status = agg_read_vectors(r, segs[i].level, segs[i].from,
						  segs[i].to);
			if (status == ST_OK)
				status = agg_read_global(r, &segs[i]);
			continue;
		}
		for (size_t d = 0; d < q->ndomains && status == ST_OK; d++) {
			r->domain_name = q->domains[d];
			status = agg_read_domain(r, &segs[i], rev,
						 agg_reverse_domain(q->domains[d], rev));
		}
	}
	r->domain_name = NULL;
	return status;
}

static int agg_groups_export(const struct agg_table *t, struct st_stats *out)
{
	out->groups = calloc(t->used ? t->used : 1, sizeof *out->groups);
	if (!out->groups)
		return ST_ERR_IO;
	for (size_t i = 0; i < t->cap; i++) {
		const struct agg_entry *e = &t->slots[i];
		struct st_stats_group *g;

		if (!e->key || e->add[0] == 0)
			continue;
		g = &out->groups[out->ngroups++];
		g->dim = e->key[0];
		memcpy(g->value, e->key + 1, e->len - 1);
		g->value[e->len - 1] = '\0';
		g->count = e->add[0];
	}
	return ST_OK;
}

/* Rounds a window start down to its minute, or to its hour where the
 * minute counters may be pruned already. */
static int64_t agg_window_start(st_store *st, int64_t since_us)
{
	int64_t horizon = sg_now_us() - atomic_load(&st->minute_keep_us) +
			  agg_step_us[ST_LEVEL_HOUR];

	if (since_us < horizon)
		return agg_floor(since_us, agg_step_us[ST_LEVEL_HOUR]);
	return agg_floor(since_us, agg_step_us[ST_LEVEL_MINUTE]);
}

/* Copies the distinct names of a list, so that no domain counts twice. */
static const char **agg_unique_names(const char *const *names, size_t n,
				     size_t *nout)
{
	const char **out = calloc(n ? n : 1, sizeof *out);
	size_t k = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		for (size_t j = 0; j < k && !seen; j++)
			seen = !strcmp(out[j], names[i]);
		if (!seen)
			out[k++] = names[i];
	}
	*nout = k;
	return out;
}

/* Allocates the trend points of [a, b) at the query's step. */
static int agg_trend_alloc(const struct st_stats_query *q, int64_t a, int64_t b,
			   struct st_stats *out)
{
	int64_t step = agg_step_us[q->trend_level];
	int64_t first = agg_floor(a, step);
	uint64_t npoints = (uint64_t)((agg_floor(b - 1, step) - first) / step) + 1;

	if (npoints > q->trend_max)
		return ST_ERR_INVALID;
	out->trend = calloc((size_t)npoints, sizeof *out->trend);
	if (!out->trend)
		return ST_ERR_IO;
	out->ntrend = (size_t)npoints;
	for (size_t i = 0; i < out->ntrend; i++)
		out->trend[i].bucket_us = first + (int64_t)i * step;
	return ST_OK;
}

int st_stats_read(st_store *st, const struct st_stats_query *q,
		  struct st_stats *out)
{
	struct agg_reader r;
	struct agg_table groups = { NULL, 0, 0 };
	struct st_stats_query uq;
	const char **names = NULL;
	int64_t a, b;
	int status;

	if (!st || !q || !out || q->trend_level >= ST_LEVEL_COUNT ||
	    q->until_us <= q->since_us)
		return ST_ERR_INVALID;
	memset(out, 0, sizeof *out);
	memset(&r, 0, sizeof r);

	a = agg_window_start(st, q->since_us);
	b = agg_ceil(q->until_us, agg_step_us[ST_LEVEL_MINUTE]);
	status = agg_trend_alloc(q, a, b, out);
	if (status != ST_OK)
		goto out;

	uq = *q;
	if (q->domains) {
		names = agg_unique_names(q->domains, q->ndomains, &uq.ndomains);
		if (!names) {
			status = ST_ERR_IO;
			goto out;
		}
		uq.domains = names;
	}

	status = agg_reader_open(st, &r);
	if (status != ST_OK)
		goto out;

	/* One read transaction for the trend and the groups, so they agree. */
	r.pick[AGG_VEC_TOTAL] = true;
	r.trend = out->trend;
	r.ntrend = out->ntrend;
	r.trend_step = agg_step_us[q->trend_level];
	status = agg_read_trend(&r, &uq, a, b);
	if (status != ST_OK)
		goto out;

	r.trend = NULL;
	r.sum = 0;
	r.groups = &groups;
	status = agg_read_groups(&r, &uq, a, b);
	if (status != ST_OK)
		goto out;
	out->total = r.sum;
	status = agg_groups_export(&groups, out);

out:
	agg_reader_close(&r);
	agg_table_free(&groups);
	free(names);
	if (status != ST_OK)
		st_stats_free(out);
	return status;
}

void st_stats_free(struct st_stats *s)
{
	if (!s)
		return;
	free(s->groups);
	free(s->trend);
	memset(s, 0, sizeof *s);
}

/* ---- st_stats_count ---- */

/* Returns true when name lies below suffix ("a.example.com" below
 * "example.com"). */
static bool agg_name_under(const char *name, const char *suffix)
{
	size_t n = strlen(name);
	size_t s = strlen(suffix);

	return n > s + 1 && name[n - s - 1] == '.' && !strcmp(name + n - s, suffix);
}

/*
 * Drops patterns that another pattern covers (duplicates, names under a
 * wildcard, narrower wildcards), so that the rest match disjoint sets of
 * domains and no signal counts twice.
 */
static size_t agg_patterns_disjoint(const char *const *in, size_t n,
				    const char **out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		bool wild_i = !strncmp(in[i], "*.", 2);
		const char *name_i = wild_i ? in[i] + 2 : in[i];
		bool covered = false;

		for (size_t j = 0; j < n && !covered; j++) {
			bool wild_j = !strncmp(in[j], "*.", 2);

			if (j == i)
				continue;
			if (!strcmp(in[i], in[j]))
				covered = j < i;
			else if (wild_j)
				covered = agg_name_under(name_i, in[j] + 2);
		}
		if (!covered)
			out[k++] = in[i];
	}
	return k;
}

/* Sets what r counts for q. Returns false for a dim it cannot count. */
static bool agg_count_setup(struct agg_reader *r, const struct st_count_query *q)
{
	if (q->dim == ST_DIM_TOTAL) {
		r->pick[AGG_VEC_TOTAL] = true;
		return true;
	}
	if (q->dim == ST_DIM_REGION) {
		r->by_region = true;
		r->regions = q->values;
		r->nregions = q->nvalues;
		return true;
	}
	for (size_t i = 0; i < q->nvalues; i++) {
		int at = agg_vector_index(q->dim, q->values[i]);

		if (at < 0)
			return false;
		r->pick[at] = true;
	}
	return true;
}

/* Counts one run of buckets for every pattern. */
static int agg_count_segment(struct agg_reader *r, const struct agg_segment *seg,
			     const char **patterns, size_t npatterns)
{
	int status = ST_OK;

	if (npatterns == 0 && r->joint)
		return agg_read_global_joint(r, seg);
	if (npatterns == 0)
		return r->by_region ? agg_read_global_regions(r, seg) :
				      agg_read_vectors(r, seg->level, seg->from, seg->to);

	for (size_t p = 0; p < npatterns && status == ST_OK; p++) {
		char rev[SG_DOMAIN_MAX + 2];
		bool wild = !strncmp(patterns[p], "*.", 2);
		size_t revlen = agg_reverse_domain(wild ? patterns[p] + 2 : patterns[p],
						   rev);

		if (!wild) {
			status = agg_read_domain(r, seg, rev, revlen);
			continue;
		}
		rev[revlen++] = '.';
		status = agg_read_domains_under(r, seg, rev, revlen);
	}
	return status;
}

/* Reads meta "unindexed_observed_max" (store_private.h) into *out. */
static int agg_unindexed_max(st_store *st, MDB_txn *txn, int64_t *out)
{
	return st__meta_get_time(st, txn, ST_META_UNINDEXED_MAX, out);
}

/*
 * Sums, from the counters, what r is set up to count in the window from
 * since_us (rounded up to its minute) on, for the domains matching
 * domains[0..ndomains-1]. With joint set, windows that reach signals
 * without joint counts are not exact either. r must be zeroed except
 * for what it counts.
 */
static int agg_count_window(st_store *st, struct agg_reader *r, int64_t since_us,
			    const char *const *domains, size_t ndomains,
			    uint64_t *count, bool *exact)
{
	struct agg_segment segs[AGG_SEGMENTS_MAX];
	const char **patterns = NULL;
	size_t npatterns = 0;
	int64_t deleted_max = INT64_MIN;
	int64_t unindexed_max = INT64_MIN;
	int64_t horizon;
	int64_t a;
	size_t nsegs;
	int status;

	a = agg_ceil(since_us, agg_step_us[ST_LEVEL_MINUTE]);
	horizon = sg_now_us() - atomic_load(&st->minute_keep_us) +
		  agg_step_us[ST_LEVEL_HOUR];
	if (a < horizon)
		return ST_OK;

	if (ndomains) {
		patterns = calloc(ndomains, sizeof *patterns);
		if (!patterns)
			return ST_ERR_IO;
		npatterns = agg_patterns_disjoint(domains, ndomains, patterns);
	}

	status = agg_reader_open(st, r);
	if (status == ST_OK)
		status = agg_deleted_max(st, r->txn, &deleted_max);
	if (status == ST_OK && r->joint)
		status = agg_unindexed_max(st, r->txn, &unindexed_max);
	if (status != ST_OK || deleted_max >= a ||
	    (unindexed_max != INT64_MIN && unindexed_max >= a))
		goto out;

	nsegs = agg_segments(a, INT64_MAX, segs);
	for (size_t i = 0; i < nsegs && status == ST_OK; i++)
		status = agg_count_segment(r, &segs[i], patterns, npatterns);
	if (status == ST_OK) {
		*count = r->sum;
		*exact = true;
	}

out:
	agg_reader_close(r);
	free(patterns);
	return status;
}

int st_stats_count(st_store *st, const struct st_count_query *q,
		   uint64_t *count, bool *exact)
{
	struct agg_reader r;

	if (!st || !q || !count || !exact || q->dim >= ST_DIM_DOMAIN ||
	    (q->dim != ST_DIM_TOTAL && q->nvalues == 0))
		return ST_ERR_INVALID;
	*count = 0;
	*exact = false;
	memset(&r, 0, sizeof r);
	if (!agg_count_setup(&r, q))
		return ST_OK;
	return agg_count_window(st, &r, q->since_us, q->domains, q->ndomains,
				count, exact);
}

/* One enumerated field of a joint query. */
struct agg_joint_field {
	enum st_dim dim;
	uint32_t mask;                  /* only bits below count */
	uint32_t all;
	int count;
	const char *const *names;
};

/*
 * Counts a joint query that narrows at most one field with st_stats_count,
 * which reads the smaller vectors and counts. field is that field, or
 * NULL for none.
 */
static int agg_count_one_field(st_store *st, const struct st_joint_query *q,
			       const struct agg_joint_field *field,
			       uint64_t *count, bool *exact)
{
	struct st_count_query cq = { q->since_us, q->domains, q->ndomains,
				     ST_DIM_TOTAL, NULL, 0 };
	const char *values[32];
	size_t n = 0;

	if (q->nregions) {
		cq.dim = ST_DIM_REGION;
		cq.values = q->regions;
		cq.nvalues = q->nregions;
	} else if (field) {
		for (int i = 0; i < field->count; i++)
			if (field->mask & (1u << i))
				values[n++] = field->names[i];
		cq.dim = field->dim;
		cq.values = values;
		cq.nvalues = n;
	}
	return st_stats_count(st, &cq, count, exact);
}

int st_stats_count_joint(st_store *st, const struct st_joint_query *q,
			 uint64_t *count, bool *exact)
{
	struct agg_joint_field fields[] = {
		{ ST_DIM_EVENT_TYPE, 0, 0, SG_EVENT_COUNT, sg_event_type_names },
		{ ST_DIM_CONFIDENCE, 0, 0, SG_CONFIDENCE_COUNT, sg_confidence_names },
		{ ST_DIM_STAGE, 0, 0, SG_STAGE_COUNT, sg_stage_names },
		{ ST_DIM_PROXY_TYPE, 0, 0, SG_PROXY_COUNT, sg_proxy_type_names },
		{ ST_DIM_ACTION, 0, 0, SG_ACTION_COUNT, sg_action_names },
	};
	const struct agg_joint_field *actions = &fields[4];
	const struct agg_joint_field *narrowed = NULL;
	struct agg_reader r;
	size_t nnarrowed = q && q->nregions ? 1 : 0;

	if (!st || !q || !count || !exact || (q->nregions && !q->regions) ||
	    (q->ndomains && !q->domains))
		return ST_ERR_INVALID;
	*count = 0;
	*exact = false;

	fields[0].mask = q->event_types;
	fields[1].mask = q->confidences;
	fields[2].mask = q->stages;
	fields[3].mask = q->proxy_types;
	fields[4].mask = q->actions;
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		fields[i].all = (1u << fields[i].count) - 1;
		fields[i].mask &= fields[i].all;

		/* A field that allows no value matches nothing, exactly. */
		if (fields[i].mask == 0) {
			*exact = true;
			return ST_OK;
		}
		if (fields[i].mask != fields[i].all) {
			narrowed = &fields[i];
			nnarrowed++;
		}
	}
	if (nnarrowed <= 1)
		return agg_count_one_field(st, q, narrowed, count, exact);

	/* Joint counts do not split by action: the caller counts by reading. */
	if (actions->mask != actions->all)
		return ST_OK;

	memset(&r, 0, sizeof r);
	r.joint = true;
	r.regions = q->regions;
	r.nregions = q->nregions;
	for (int e = 0; e < SG_EVENT_COUNT; e++)
		for (int c = 0; c < SG_CONFIDENCE_COUNT; c++)
			for (int g = 0; g < SG_STAGE_COUNT; g++)
				for (int p = 0; p < SG_PROXY_COUNT; p++)
					r.joint_pick[agg_joint_code(e, c, g, p)] =
						(fields[0].mask & (1u << e)) &&
						(fields[1].mask & (1u << c)) &&
						(fields[2].mask & (1u << g)) &&
						(fields[3].mask & (1u << p));
	return agg_count_window(st, &r, q->since_us, q->domains, q->ndomains,
				count, exact);
}

/* ---- sensors ---- */

int st_sensors_active(st_store *st, int64_t since_us, uint64_t *count)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	msgpack_zone zone;
	int status;
	int rc = MDB_SUCCESS;

	if (!st || !count)
		return ST_ERR_INVALID;
	*count = 0;
	msgpack_zone_init(&zone, 256);
	status = st__txn_begin(st, MDB_RDONLY, &txn);
	if (status != ST_OK)
		goto out;
	rc = mdb_cursor_open(txn, st->dbi_sensors, &cur);
	if (rc == MDB_SUCCESS)
		rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	while (rc == MDB_SUCCESS) {
		msgpack_object obj;
		size_t off = 0;

		if (val.mv_size > 9 ||
		    msgpack_unpack(val.mv_data, val.mv_size, &off, &zone, &obj) !=
		    MSGPACK_UNPACK_SUCCESS) {
			status = ST_ERR_CORRUPT;
			goto out;
		}
		if (obj.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    obj.via.u64 <= INT64_MAX && (int64_t)obj.via.u64 >= since_us)
			(*count)++;
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	status = agg_scan_end(status, rc);

out:
	if (cur)
		mdb_cursor_close(cur);
	st__txn_abort(st, txn);
	msgpack_zone_destroy(&zone);
	return status;
}
