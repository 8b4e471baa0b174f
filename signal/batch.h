/*
 * Ingest bodies: one JSON object, a JSON array of objects, NDJSON, or
 * MessagePack (one map or an array of maps). A batch is all or nothing, so
 * parsing either returns every item or a report that names each bad item.
 */
#ifndef CANARY_SIGNAL_BATCH_H
#define CANARY_SIGNAL_BATCH_H

#include <stddef.h>

#include "signal.h"

enum sg_format {
	SG_FORMAT_JSON,         /* object or array */
	SG_FORMAT_NDJSON,       /* one object per line, blank lines skipped */
	SG_FORMAT_MSGPACK       /* one map, or an array of maps */
};

/* Index of a problem that concerns the whole body, not one item. */
#define SG_BATCH_WHOLE_BODY ((size_t)-1)

struct sg_batch_problem {
	size_t index;           /* item index from 0, or SG_BATCH_WHOLE_BODY */
	struct sg_error error;
};

/* The first problems of a rejected body; `total` counts all of them. */
#define SG_BATCH_MAX_PROBLEMS 32
struct sg_batch_report {
	size_t total;
	size_t listed;
	struct sg_batch_problem problems[SG_BATCH_MAX_PROBLEMS];
};

struct sg_batch {
	struct sg_signal *items;    /* malloc'd; free with sg_batch_free */
	size_t count;
};

/*
 * Parses body (len bytes, need not be NUL-terminated) in format fmt.
 * JSON input must be valid UTF-8 without lone surrogates, without
 * duplicate member names, and no deeper than 32 levels; integers must fit
 * in 64 bits. More than max_items items is a whole-body problem.
 * Returns 0 with out filled (count >= 1), or -1 with rep filled and out
 * empty. An empty body is a whole-body problem. For NDJSON a problem's
 * index is the line number from 0, so blank lines count but carry no item.
 */
int sg_batch_parse(const char *body, size_t len, enum sg_format fmt,
		   size_t max_items, struct sg_batch *out,
		   struct sg_batch_report *rep);

void sg_batch_free(struct sg_batch *b);

/* Records a problem with item index (or SG_BATCH_WHOLE_BODY) in rep: it
 * counts in total, and is listed while fewer than SG_BATCH_MAX_PROBLEMS
 * are. For checks that run after parsing. */
void sg_batch_report_add(struct sg_batch_report *rep, size_t index,
			 const struct sg_error *e);

/* Names the place of rep's first problem for a log line, such as "field
 * confidence of item 3", "item 7" or "the body"; buf (cap bytes) may hold
 * the text. */
const char *sg_batch_report_first_place(const struct sg_batch_report *rep,
					char *buf, size_t cap);

/*
 * Parses one JSON text with the same strictness as ingest (duplicate
 * member names, depth over 32 and invalid UTF-8 are errors). Returns a new
 * reference, or NULL with a message in err (errlen bytes). Used for
 * WebSocket messages too, so that every JSON input follows one rule.
 */
json_t *sg_json_parse_strict(const char *text, size_t len, char *err,
			     size_t errlen);

#endif
