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
 *             endian), "schema" -> u32, and the entries that
 *             store_private.h lists
 *   signals   seq (u64 big endian) -> MessagePack map (sg_to_msgpack with
 *             received_us)
 *   by_time   observed_us (i64 big endian, sign bit flipped) + seq -> ""
 *   by_recv   received_us (same encoding) + seq -> ""
 *   by_domain reversed related_domain ("com.example.a") -> sorted
 *             duplicates of observed_us + seq (as in by_time keys)
 *   keys      key id -> MessagePack map of struct st_key
 *   key_hash  SHA-256 of the secret (32 bytes) -> key id
 *   stats     counter key -> MessagePack unsigned integer (aggregates.c
 *             describes the key layout)
 *   sensors   sensor id -> MessagePack integer: last received_us
 *   campaigns campaign id (u64 big endian) -> MessagePack map
 *   camp_keys domain "\0" infrastructure -> MessagePack array of the
 *             newest campaign ids of that pair (campaigns.c)
 *   camp_last last_seen (time key) + campaign id -> ""
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
	unsigned durability;        /* enum st_durability; 0 is full */
};

/*
 * When a commit reaches the disk. A commit is always written to the file
 * before st_append returns, so a crash of this process alone loses
 * nothing in any mode. The modes differ on an operating system crash or
 * a power loss.
 */
enum st_durability {
	/* fsync at every commit: a committed batch survives anything. */
	ST_DURABILITY_FULL = 0,
	/* LMDB's MDB_NOMETASYNC: data pages are synced at every commit, the
	 * meta page only at the next one, so a system crash may undo the
	 * last committed transaction. */
	ST_DURABILITY_NOMETASYNC = 1,
	/* LMDB's MDB_NOSYNC: nothing is synced until st_sync. A system crash
	 * may lose every commit since then, and LMDB does not promise that
	 * the file is intact afterwards. */
	ST_DURABILITY_NOSYNC = 2
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

/*
 * Checks whether directory dir contains a store, which is an LMDB data
 * file named data.mdb, without creating anything. Returns ST_OK, or
 * ST_ERR_NOT_FOUND when dir or its data file is missing. On ST_ERR_IO
 * (stat failed for another reason) and ST_ERR_INVALID (the path is
 * longer than PATH_MAX), errbuf, when not NULL, gets a message.
 */
int st_exists(const char *dir, char *errbuf, size_t errlen);

/* The store's epoch, 32 lower-case hex characters. Valid until st_close. */
const char *st_epoch(const st_store *st);

/* The last committed seq, 0 when nothing was ever stored. */
uint64_t st_head_seq(const st_store *st);

/*
 * The smallest retained seq; head + 1 when no signal is retained; 0 when
 * the store cannot be read (0 is never a seq).
 */
uint64_t st_oldest_seq(st_store *st);

/*
 * Flushes every commit to the disk (mdb_env_sync with force). Needed only
 * with ST_DURABILITY_NOMETASYNC or NOSYNC. Returns ST_OK or ST_ERR_IO.
 */
int st_sync(st_store *st);

/*
 * Frees the reader slots of processes that died with a read transaction
 * open (mdb_reader_check). Such a slot pins every page freed after its
 * transaction began until it is cleared, and LMDB resets the reader table
 * only when no process has the environment open. Sets *cleared to the
 * number of slots freed. Returns ST_OK or ST_ERR_IO.
 */
int st_reader_check(st_store *st, int *cleared);

/*
 * Sets *out to the newest observed time of a stored signal that an older
 * canaryd stored without joint counts and by_domain entries, INT64_MIN
 * when there is none. List counts and domain scans whose window reaches
 * that time read the global time index instead. Returns an st_status.
 */
int st_unindexed_max(st_store *st, int64_t *out);

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

/* Maximum length of an ingest batch key, whose characters come from
 * A-Z a-z 0-9 . _ : - */
#define ST_BATCH_KEY_MAX 64

/*
 * Appends like st_append, for a batch the client named with batch_key.
 * When a batch with this key was committed before and retention has not
 * deleted it yet, nothing is stored, *replayed is set, and *first and
 * *last are that batch's seqs. The same key with another number of
 * signals is ST_ERR_EXISTS. Otherwise the batch is appended and its key
 * recorded in the same transaction.
 */
int st_append_keyed(st_store *st, struct sg_signal *sigs, size_t n,
		    const char *batch_key, uint64_t *first, uint64_t *last,
		    bool *replayed);

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

/* Maximum number of domains that st_scan_domains_desc merges through
 * by_domain. */
#define ST_DOMAIN_MERGE_MAX 64

/*
 * Visits, like st_scan_time_desc, retained signals newest first, starting
 * strictly before *start (or at the newest) and stopping before min_us,
 * with the same chunks, transactions and visit contract. patterns are
 * normalised names or "*.suffix" wildcards (npatterns > 0); the scan
 * visits at least every signal whose domain matches one of them.
 *
 * It reads the per-domain index (by_domain) and merges one cursor per
 * domain. A wildcard is every indexed domain below its suffix, looked up
 * again in each chunk's transaction. It reads the global time
 * index instead, and then visits other domains' signals too, when the
 * patterns name more than ST_DOMAIN_MERGE_MAX domains or when the window
 * reaches signals that an older canaryd stored without by_domain entries.
 * So visit must still check each signal's domain. *indexed (may be NULL)
 * is set when the whole scan used by_domain. Returns ST_OK or an error.
 */
int st_scan_domains_desc(st_store *st, const char *const *patterns,
			 size_t npatterns, const struct st_time_pos *start,
			 int64_t min_us, st_visit_fn visit, void *ctx,
			 bool *indexed);

/*
 * Deletes signals received before cutoff_us, oldest received first, at
 * most max_delete of them, in one write transaction unless the map is
 * full: then in smaller ones, and *deleted counts what they committed
 * even when a later one fails. Never lowers next_seq.
 */
int st_delete_received_before(st_store *st, int64_t cutoff_us,
			      size_t max_delete, size_t *deleted);

/* ---- analytics: stats aggregates, sensors and campaigns ---- */

/*
 * Settings of the aggregates and campaigns. Defaults: campaign idle gap
 * 6 hours, minute counters kept 30 days, hour and day counters and
 * campaigns kept 90 days. Safe to call from any thread at any time;
 * later appends and prunes use the new values.
 */
struct st_analytics_settings {
	int64_t campaign_idle_gap_us;   /* longest pause inside a campaign */
	int64_t minute_keep_us;         /* age after which minute counters go */
	int64_t stats_keep_us;          /* age after which hour and day
					   counters and campaigns go */
};
void st_analytics_configure(st_store *st,
			    const struct st_analytics_settings *s);

/* Counter dimensions. ST_DIM_DOMAIN exists only in the global counters. */
enum st_dim {
	ST_DIM_TOTAL = 0,
	ST_DIM_EVENT_TYPE,
	ST_DIM_CONFIDENCE,
	ST_DIM_STAGE,
	ST_DIM_PROXY_TYPE,
	ST_DIM_REGION,
	ST_DIM_ACTION,
	ST_DIM_DOMAIN,
	ST_DIM_COUNT
};

/* Trend steps. */
enum st_level { ST_LEVEL_MINUTE, ST_LEVEL_HOUR, ST_LEVEL_DAY, ST_LEVEL_COUNT };

/* Length of one step of a level in microseconds. */
int64_t st_level_us(enum st_level level);

/*
 * A stats query over observed times [since_us, until_us). since_us is
 * rounded down to its minute, or to its hour when minute counters of
 * that time were already pruned; until_us is rounded up to its minute.
 * domains: NULL for every domain, else ndomains exact names (a tenant's
 * list) whose counters alone are summed.
 */
struct st_stats_query {
	int64_t since_us;
	int64_t until_us;
	const char *const *domains;
	size_t ndomains;
	enum st_level trend_level;
	size_t trend_max;               /* most trend points; more is
					   ST_ERR_INVALID */
};

struct st_stats_group {
	enum st_dim dim;
	char value[SG_DOMAIN_MAX + 1];
	uint64_t count;
};

struct st_trend_point {
	int64_t bucket_us;              /* start of the step */
	uint64_t count;
	uint64_t by_event[SG_EVENT_COUNT];      /* count split by event_type */
};

/* Result of st_stats_read; release with st_stats_free. */
struct st_stats {
	uint64_t total;
	struct st_stats_group *groups;  /* only values that occur, any order */
	size_t ngroups;
	struct st_trend_point *trend;   /* every step from since to until,
					   zeros included; sums to total */
	size_t ntrend;
};

/*
 * Reads totals, groups and trend from the counters. Its cost grows with
 * the number of distinct values in the window's buckets (at most about
 * 60 minute, 46 hour and a few day buckets plus the trend steps), never
 * with the number of signals. Returns ST_OK with *out filled, or an
 * error with *out empty.
 */
int st_stats_read(st_store *st, const struct st_stats_query *q,
		  struct st_stats *out);
void st_stats_free(struct st_stats *s);

/*
 * Counts signals observed at or after since_us (rounded up to the next
 * minute boundary: the caller counts the part before it) whose domain
 * is one of domains (exact names or "*.suffix" patterns; ndomains 0 for
 * all) and, unless dim is ST_DIM_TOTAL, whose dim value is one of
 * values. Sets *exact to false, and *count to 0, when the counters
 * cannot give the exact number of stored signals: retention already
 * deleted a signal observed in the window, or its minute counters were
 * pruned. Then the caller must count by scanning.
 */
struct st_count_query {
	int64_t since_us;
	const char *const *domains;
	size_t ndomains;
	enum st_dim dim;
	const char *const *values;
	size_t nvalues;
};
int st_stats_count(st_store *st, const struct st_count_query *q,
		   uint64_t *count, bool *exact);

/*
 * Counts like st_stats_count, for a conjunction of filter fields: the
 * signals observed at or after since_us (rounded up to the next minute,
 * as there) whose domain matches one of domains (ndomains 0 for all),
 * whose event type, confidence, stage, proxy type and action have their
 * bit (1 << enum value) set in the masks, and whose region is one of
 * regions (nregions 0 for all). ST_MASK_ALL allows every value.
 *
 * A query that narrows one field at most reads the vectors and counts;
 * more fields read the joint counts, which do not split by action. Its
 * cost grows with the buckets and distinct values in the window, never
 * with the number of signals. *exact is false as in st_stats_count, when
 * actions are narrowed together with another field, and when the window
 * reaches signals that an older canaryd stored without joint counts.
 */
#define ST_MASK_ALL UINT32_MAX

struct st_joint_query {
	int64_t since_us;
	const char *const *domains;
	size_t ndomains;
	uint32_t event_types;
	uint32_t confidences;
	uint32_t stages;
	uint32_t proxy_types;
	const char *const *regions;     /* two upper-case letters each */
	size_t nregions;
	uint32_t actions;
};
int st_stats_count_joint(st_store *st, const struct st_joint_query *q,
			 uint64_t *count, bool *exact);

/* Counts sensors (the signal field `sensor`) whose last signal was
 * received at or after since_us. */
int st_sensors_active(st_store *st, int64_t since_us, uint64_t *count);

/*
 * Deletes counters, campaigns and sensor entries older than the settings
 * keep, at most max_delete entries in one write transaction. *more is
 * set when entries past their age remain. Returns an st_status.
 */
int st_analytics_prune(st_store *st, int64_t now_us, size_t max_delete,
		       bool *more);

#define ST_CAMPAIGN_REGIONS_MAX 256

/*
 * A campaign: signals of one domain from one attacker infrastructure
 * (infra_id, else proxy_type and source_region) with no pause between
 * observed times longer than the idle gap. Its id is "camp_<id>", where
 * id is the seq of the signal that started it, and never changes.
 */
struct st_campaign {
	uint64_t id;
	char domain[SG_DOMAIN_MAX + 1];
	int64_t first_us, last_us;      /* observed times */
	uint64_t signal_count;
	uint32_t event_types;           /* bit 1 << enum sg_event_type */
	uint32_t stages;                /* bit 1 << enum sg_stage */
	uint32_t proxy_types;           /* bit 1 << enum sg_proxy_type */
	uint8_t max_confidence;         /* enum sg_confidence */
	size_t nregions;
	char regions[ST_CAMPAIGN_REGIONS_MAX][3];
};

/*
 * Visits campaigns whose last_seen is at or after since_us and whose id
 * is below before_id, in descending id order (newest first), one read
 * transaction per chunk and visit called outside any transaction. visit
 * returns 0 to go on, 1 to stop. Cost grows with the number of campaigns
 * seen in the window.
 */
typedef int (*st_campaign_visit_fn)(const struct st_campaign *c, void *ctx);
int st_campaign_scan(st_store *st, int64_t since_us, uint64_t before_id,
		     st_campaign_visit_fn visit, void *ctx);

/* Reads one campaign. ST_ERR_NOT_FOUND when there is none. */
int st_campaign_get(st_store *st, uint64_t id, struct st_campaign *out);

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
