/*
 * Private to the storage library: the layout of the stats counters that
 * aggregates.c writes and stats.c reads.
 *
 * Every signal adds 1 to counters at three levels (minute, hour and day
 * buckets of its observed time). A bucket is the 8-byte time key of its
 * start (sign bit flipped, big endian, so byte order is time order).
 * Keys of the "stats" database:
 *
 *   [level][0][bucket]                          vector, every domain
 *   [level][1][bucket][dim][value]              count, every domain; dim
 *                                               is ST_DIM_REGION or
 *                                               ST_DIM_DOMAIN
 *   [level][2][reversed domain][0][bucket][0]   vector of one domain
 *   [level][2][reversed domain][0][bucket][1][region]  count (written
 *                                               by older canaryd only)
 *   [level][2][reversed domain][0][bucket][2][region]  joint counts
 *   [level][3][bucket][region]                  joint counts, every domain
 *
 * A vector is a MessagePack array of AGG_VEC_LEN unsigned integers: the
 * total, then one count per event type, confidence, stage, proxy type
 * and action, in the order of the enums in signal.h. A count is one
 * MessagePack unsigned integer. Folding the enumerated fields into one
 * value keeps a signal that is alone in its bucket at six entries per
 * level.
 *
 * Joint counts split the signals of one bucket and region by the
 * combination of event type, confidence, stage and proxy type, so that a
 * filter on several of these fields at once is a sum over combinations.
 * The value is a MessagePack map from the combination's code
 * (agg_joint_code, 0 to AGG_JOINT_LEN - 1) to its count, listing only
 * codes that occur, in ascending order. Action is not part of the code.
 * A domain's joint counts also serve as its region counts (their sum),
 * which older canaryd versions wrote as counts under [1]; a reader adds
 * both. Stores written before joint counts existed lack them for their
 * older signals, and meta "unindexed_observed_max" records the newest
 * observed time among those (store_private.h).
 *
 * Vectors of one level are contiguous, so a trend is one range scan.
 * Per-domain entries keep each domain's buckets together, so a tenant's
 * stats or a domain-filtered count reads only that domain. The domain
 * is stored with its labels reversed ("a.example.com" as
 * "com.example.a"), so the names under "*.example.com" share the prefix
 * "com.example.".
 */
#ifndef CANARY_AGGREGATES_H
#define CANARY_AGGREGATES_H

#include "store_private.h"

#define AGG_KIND_VECTOR 0
#define AGG_KIND_GLOBAL 1
#define AGG_KIND_DOMAIN 2
#define AGG_KIND_JOINT 3

#define AGG_SUB_VECTOR 0
#define AGG_SUB_REGION 1
#define AGG_SUB_JOINT 2

/* Offsets in a vector. */
#define AGG_VEC_TOTAL 0
#define AGG_VEC_EVENT 1
#define AGG_VEC_CONFIDENCE (AGG_VEC_EVENT + SG_EVENT_COUNT)
#define AGG_VEC_STAGE (AGG_VEC_CONFIDENCE + SG_CONFIDENCE_COUNT)
#define AGG_VEC_PROXY (AGG_VEC_STAGE + SG_STAGE_COUNT)
#define AGG_VEC_ACTION (AGG_VEC_PROXY + SG_PROXY_COUNT)
#define AGG_VEC_LEN (AGG_VEC_ACTION + SG_ACTION_COUNT)

/* Number of joint codes: one per combination of the four fields. */
#define AGG_JOINT_LEN (SG_EVENT_COUNT * SG_CONFIDENCE_COUNT * SG_STAGE_COUNT * \
		       SG_PROXY_COUNT)

/* Code of a combination of enum values, each below its count. */
static inline int agg_joint_code(int event_type, int confidence, int stage,
				 int proxy_type)
{
	return ((event_type * SG_CONFIDENCE_COUNT + confidence) * SG_STAGE_COUNT +
		stage) * SG_PROXY_COUNT + proxy_type;
}

/* Longest counter key: level, kind, domain, NUL, bucket, dim, value. */
#define AGG_KEY_MAX (2 + SG_DOMAIN_MAX + 2 + 8 + 1 + SG_DOMAIN_MAX + 1)

/* Length of one step of each level in microseconds. */
extern const int64_t agg_step_us[ST_LEVEL_COUNT];

/* Floor and ceiling to a multiple of step, also before 1970. */
int64_t agg_floor(int64_t us, int64_t step);
int64_t agg_ceil(int64_t us, int64_t step);

/* Writes name with its labels in reverse order; returns the length. */
size_t agg_reverse_domain(const char *name, char *out);

/* Key builders; each returns the key's length. */
size_t agg_key_vector(uint8_t *k, enum st_level level, int64_t bucket);
size_t agg_key_global(uint8_t *k, enum st_level level, int64_t bucket,
		      enum st_dim dim, const char *value);

/*
 * Per-domain key of the domain rev (reversed, revlen bytes). With
 * with_bucket false it stops after the domain's NUL: the prefix of all
 * of that domain's entries. region NULL makes the vector's key.
 */
size_t agg_key_domain(uint8_t *k, enum st_level level, const char *rev,
		      size_t revlen, bool with_bucket, int64_t bucket,
		      const char *region);

/* Joint counts' keys: every domain, and of the domain rev (revlen
 * bytes). Each returns the key's length. */
size_t agg_key_joint(uint8_t *k, enum st_level level, int64_t bucket,
		     const char *region);
size_t agg_key_domain_joint(uint8_t *k, enum st_level level, const char *rev,
			    size_t revlen, int64_t bucket, const char *region);

/* Decoders of stored values. Return ST_OK or ST_ERR_CORRUPT. */
int agg_count_decode(const MDB_val *v, msgpack_zone *zone, uint64_t *out);
int agg_vector_decode(const MDB_val *v, msgpack_zone *zone,
		      uint64_t out[AGG_VEC_LEN]);
/* Fills out[code] from a joint value, zero for codes it does not list. A
 * repeated code, a code out of range or a value that is not an unsigned
 * integer is ST_ERR_CORRUPT. */
int agg_joint_decode(const MDB_val *v, msgpack_zone *zone,
		     uint64_t out[AGG_JOINT_LEN]);

/* Position of an enumerated dim's value in a vector, or -1. */
int agg_vector_index(enum st_dim dim, const char *value);

/* Name of vector position i, and its dim. */
const char *agg_vector_name(int i, enum st_dim *dim);

/* Kind of value under an entry's key. */
enum agg_value_kind { AGG_VALUE_COUNT, AGG_VALUE_VECTOR, AGG_VALUE_JOINT };

/* One joint code and what a batch adds to it. */
struct agg_pair {
	uint32_t code;
	uint64_t count;
};

/* A hash table of byte-string keys to counts, vectors or joint counts,
 * for a batch's changes and for a query's groups. Zero-initialise before
 * use. */
struct agg_entry {
	uint8_t *key;           /* NULL for an empty slot */
	size_t len;
	uint8_t kind;           /* enum agg_value_kind */
	uint64_t add[AGG_VEC_LEN];      /* add[0] only for a count */
	struct agg_pair *pairs; /* joint counts: the codes a batch adds to,
				   owned by the table */
	uint32_t npairs, pairs_cap;
};

struct agg_table {
	struct agg_entry *slots;
	size_t cap;             /* a power of two */
	size_t used;
};

/* Returns the entry of key k, adding a zeroed one; NULL when out of
 * memory. */
struct agg_entry *agg_table_get(struct agg_table *t, const uint8_t *k,
				size_t len, enum agg_value_kind kind);
void agg_table_free(struct agg_table *t);

/* Deletes the cursor's entry and reads the one after it; MDB_NOTFOUND
 * when there is none. */
int agg_cursor_del_next(MDB_cursor *cur, MDB_val *key, MDB_val *val);

/* Reads meta "deleted_observed_max"; INT64_MIN when nothing was deleted. */
int agg_deleted_max(st_store *st, MDB_txn *txn, int64_t *out);

#endif
