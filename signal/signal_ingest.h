/*
 * Private to the signal library: the field rules that both decoders share.
 *
 * sg_from_json and sg_from_msgpack turn each member of an ingested object
 * into a struct sg_value and hand it to sg_ingest_member, so that JSON and
 * MessagePack input follow one set of rules. sg_ingest_end then checks the
 * required fields and the agreement between older and newer field names.
 */
#ifndef CANARY_SIGNAL_INGEST_H
#define CANARY_SIGNAL_INGEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "signal.h"

/* Maximum length of a string value for any field, in bytes. */
#define SG_VALUE_MAX 1024

enum sg_value_kind {
	SG_VALUE_NULL,
	SG_VALUE_STRING,
	SG_VALUE_BOOL,
	SG_VALUE_INTEGER,
	SG_VALUE_REAL,
	SG_VALUE_ARRAY,
	SG_VALUE_OBJECT,
	SG_VALUE_OTHER
};

/* One member value of an ingested object, independent of its encoding. */
struct sg_value {
	enum sg_value_kind kind;
	const char *str;        /* SG_VALUE_STRING: bytes, not NUL-terminated */
	size_t len;             /* SG_VALUE_STRING: length in bytes */
	bool boolean;           /* SG_VALUE_BOOL */
};

/* Decoder state for one item: which fields were seen, under which name. */
struct sg_ingest {
	struct sg_signal *s;
	sg_problem_fn add;      /* receives each problem */
	void *add_ctx;
	unsigned problems;      /* passed to add so far */
	uint32_t present;       /* bit per enum sg_slot */
	uint32_t invalid;       /* bit per enum sg_slot: sent, but rejected */
	uint8_t confidence_new, confidence_old;
	uint8_t proxy_new, proxy_old;
	char region_new[3], region_old[3];
};

/* Clears s and starts collecting its fields; add receives each problem. */
void sg_ingest_begin(struct sg_ingest *in, struct sg_signal *s,
		     sg_problem_fn add, void *ctx);

/* Passes a problem of the item to the ingest's add function. */
void sg_ingest_problem(struct sg_ingest *in, const struct sg_error *e);

/* The add function of the one-error decoders: keeps the first problem. */
struct sg_first_problem {
	struct sg_error *err;
	bool set;
};
void sg_keep_first_problem(void *ctx, const struct sg_error *e);

/*
 * Applies one member. Unknown keys are ignored. A known field with a wrong
 * type or an invalid value is a problem for add. The decoder then goes on
 * with the next member, so one pass finds every problem of the item.
 */
void sg_ingest_member(struct sg_ingest *in, const char *key, size_t keylen,
		      const struct sg_value *v);

/* Checks required fields (other than those sent and rejected) and
 * older/newer name conflicts. Returns 0 when the item had no problem at
 * all, else -1. */
int sg_ingest_end(struct sg_ingest *in);

/* Fills err with field and a printf-style reason, truncated to fit. */
void sg_error_set(struct sg_error *err, const char *field, const char *fmt,
		  ...) __attribute__((format(printf, 3, 4)));

/* Returns names[i], or "invalid" when i is out of range. */
const char *sg_name(const char *const *names, int count, unsigned i);

/* Returns the name of a value kind for messages, such as "an integer". */
const char *sg_value_kind_name(enum sg_value_kind kind);

/*
 * Parses an RFC 3339 date-time like sg_time_parse. Returns NULL, or a
 * static sentence saying what is wrong (no offset, impossible date, ...).
 */
const char *sg_time_check(const char *text, size_t len, int64_t *us);

#endif
