/*
 * Ingest bodies: JSON, NDJSON and MessagePack batches.
 *
 * A batch is all or nothing, so every item is decoded even after a failure
 * and each problem is reported with its item index. Problems that concern
 * the whole body (not parseable, empty, too many items) carry
 * SG_BATCH_WHOLE_BODY. For NDJSON the index is the line number from 0;
 * blank lines count as lines but carry no item.
 *
 * Both encodings share one depth limit: a container nested in 32 others is
 * too deep. MessagePack input is checked before msgpack-c unpacks it,
 * because msgpack-c allocates room for a container's declared element count
 * up front, and a five-byte header may declare four billion elements. The
 * check walks the headers only: each declared element must fit in the bytes
 * that remain, the body must hold exactly one object, and nesting must stay
 * within the limit.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "signal_ingest.h"

/* Maximum nesting depth of containers, in JSON and MessagePack. */
#define SG_MAX_DEPTH 32

static void report_reset(struct sg_batch_report *rep)
{
	rep->total = 0;
	rep->listed = 0;
}

void sg_batch_report_add(struct sg_batch_report *rep, size_t index,
			 const struct sg_error *e)
{
	if (rep->listed < SG_BATCH_MAX_PROBLEMS) {
		rep->problems[rep->listed].index = index;
		rep->problems[rep->listed].error = *e;
		rep->listed++;
	}
	rep->total++;
}

const char *sg_batch_report_first_place(const struct sg_batch_report *rep,
					char *buf, size_t cap)
{
	const struct sg_batch_problem *p = &rep->problems[0];

	if (!rep->listed)
		return "no listed problem";
	if (p->index == SG_BATCH_WHOLE_BODY)
		return "the body";
	if (p->error.field[0])
		snprintf(buf, cap, "field %s of item %zu", p->error.field, p->index);
	else
		snprintf(buf, cap, "item %zu", p->index);
	return buf;
}

static void report_body(struct sg_batch_report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void report_body(struct sg_batch_report *rep, const char *fmt, ...)
{
	struct sg_error e;
	va_list ap;

	memset(&e, 0, sizeof(e));
	va_start(ap, fmt);
	vsnprintf(e.reason, sizeof(e.reason), fmt, ap);
	va_end(ap);
	sg_batch_report_add(rep, SG_BATCH_WHOLE_BODY, &e);
}

/* Copies text into out as printable ASCII, other bytes as '?'. */
static void printable(const char *text, char *out, size_t cap)
{
	size_t n = 0;

	for (; *text && n + 1 < cap; text++) {
		unsigned char c = (unsigned char)*text;

		out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (cap > 0)
		out[n] = '\0';
}

static bool is_blank(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			return false;
	}
	return true;
}

/* True when j has a container nested deeper than SG_MAX_DEPTH; the
 * recursion stops at that depth, so the stack stays small. */
static bool json_too_deep(json_t *j, int depth)
{
	const char *key = NULL;
	json_t *value = NULL;
	size_t i = 0;

	if (!json_is_object(j) && !json_is_array(j))
		return false;
	if (depth > SG_MAX_DEPTH)
		return true;
	if (json_is_array(j)) {
		json_array_foreach(j, i, value) {
			if (json_too_deep(value, depth + 1))
				return true;
		}
		return false;
	}
	json_object_foreach(j, key, value) {
		if (json_too_deep(value, depth + 1))
			return true;
	}
	return false;
}

json_t *sg_json_parse_strict(const char *text, size_t len, char *err,
			     size_t errlen)
{
	json_error_t jerr;
	char why[sizeof(jerr.text)];
	json_t *root = NULL;

	if (!text || is_blank(text, len)) {
		snprintf(err, errlen, "the JSON text is empty; send an object");
		return NULL;
	}

	/* jansson rejects invalid UTF-8, lone surrogates, \u0000, integers
	 * past 64 bits and nesting past 2048 itself. */
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		printable(jerr.text, why, sizeof(why));
		snprintf(err, errlen, "invalid JSON at line %d, column %d: %s",
			 jerr.line, jerr.column, why);
		return NULL;
	}
	if (json_too_deep(root, 1)) {
		snprintf(err, errlen,
			 "the JSON text nests deeper than %d levels; flatten it",
			 SG_MAX_DEPTH);
		json_decref(root);
		return NULL;
	}
	return root;
}

/* The destination of one item's problems: the batch's report, under the
 * item's index. */
struct item_problems {
	struct sg_batch_report *rep;
	size_t index;
};

static void add_item_problem(void *ctx, const struct sg_error *e)
{
	struct item_problems *ip = ctx;

	sg_batch_report_add(ip->rep, ip->index, e);
}

/* Decodes one JSON item into slot, recording each problem at index. */
static void take_json_item(json_t *item, size_t index, struct sg_signal *slot,
			   struct sg_batch_report *rep)
{
	struct item_problems ip = { rep, index };

	sg_from_json_each(item, slot, add_item_problem, &ip);
}

static int alloc_items(struct sg_batch *out, size_t count,
		       struct sg_batch_report *rep)
{
	out->items = calloc(count, sizeof(*out->items));
	if (!out->items) {
		report_body(rep, "out of memory for %zu items; send a smaller batch",
			    count);
		return -1;
	}
	out->count = count;
	return 0;
}

static int check_count(size_t count, size_t max_items,
		       struct sg_batch_report *rep)
{
	if (count == 0) {
		report_body(rep, "the body holds no items; send at least one signal");
		return -1;
	}
	if (count > max_items) {
		report_body(rep, "the body holds %zu items; the limit is %zu, so split it",
			    count, max_items);
		return -1;
	}
	return 0;
}

static void parse_json(const char *body, size_t len, size_t max_items,
		       struct sg_batch *out, struct sg_batch_report *rep)
{
	char why[sizeof(rep->problems[0].error.reason)];
	json_t *root = sg_json_parse_strict(body, len, why, sizeof(why));
	size_t count = 0;

	if (!root) {
		report_body(rep, "%s", why);
		goto out;
	}
	count = json_is_array(root) ? json_array_size(root) : 1;
	if (check_count(count, max_items, rep) != 0 ||
	    alloc_items(out, count, rep) != 0)
		goto out;

	if (!json_is_array(root)) {
		take_json_item(root, 0, &out->items[0], rep);
		goto out;
	}
	for (size_t i = 0; i < count; i++)
		take_json_item(json_array_get(root, i), i, &out->items[i], rep);

out:
	json_decref(root);
}

/* Returns the length of the line at p, without its '\n' or "\r\n". */
static size_t line_length(const char *p, const char *end, const char **next)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	const char *stop = nl ? nl : end;

	*next = nl ? nl + 1 : end;
	if (stop > p && stop[-1] == '\r')
		stop--;
	return (size_t)(stop - p);
}

static void parse_ndjson(const char *body, size_t len, size_t max_items,
			 struct sg_batch *out, struct sg_batch_report *rep)
{
	const char *end = body + len;
	const char *next = NULL;
	size_t count = 0;
	size_t filled = 0;
	size_t line = 0;

	/* Count first, so an oversized body is rejected before any parsing. */
	for (const char *p = body; p < end; p = next) {
		size_t n = line_length(p, end, &next);

		count += !is_blank(p, n);
	}
	if (check_count(count, max_items, rep) != 0 ||
	    alloc_items(out, count, rep) != 0)
		return;

	for (const char *p = body; p < end; p = next, line++) {
		char why[sizeof(rep->problems[0].error.reason)];
		struct sg_error e;
		size_t n = line_length(p, end, &next);
		json_t *item = NULL;

		if (is_blank(p, n))
			continue;
		memset(&e, 0, sizeof(e));
		item = sg_json_parse_strict(p, n, why, sizeof(why));
		if (!item) {
			snprintf(e.reason, sizeof(e.reason), "%s", why);
			sg_batch_report_add(rep, line, &e);
		} else {
			take_json_item(item, line, &out->items[filled], rep);
		}
		filled++;
		json_decref(item);
	}
}

/*
 * Reads the MessagePack header at p (avail bytes): the header length, the
 * payload bytes to skip, and for a container the element count (maps count
 * keys and values). Returns false for the never-used byte 0xc1.
 */
static bool msgpack_header(const unsigned char *p, size_t avail, size_t *head,
			   uint64_t *skip, uint64_t *elements, bool *container)
{
	static const unsigned char fixed_payload[0x20] = {
		/* c0..cf: nil, never used, false, true, bin8/16/32, ext8/16/32
		 * (their payload follows from the length), float32, float64,
		 * uint8/16/32/64 */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 8, 1, 2, 4, 8,
		/* d0..df: int8/16/32/64, fixext 1/2/4/8/16, str8/16/32,
		 * array16/32, map16/32 */
		1, 2, 4, 8, 2, 3, 5, 9, 17, 0, 0, 0, 0, 0, 0, 0
	};
	static const unsigned char length_bytes[0x20] = {
		0, 0, 0, 0, 1, 2, 4, 1, 2, 4, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 2, 4, 2, 4
	};
	unsigned char b = p[0];
	uint64_t n = 0;
	size_t width = 0;

	*head = 1;
	*skip = 0;
	*elements = 0;
	*container = false;
	if (b <= 0x7f || b >= 0xe0)
		return true;
	if (b <= 0x8f || (b >= 0x90 && b <= 0x9f)) {
		*container = true;
		*elements = (uint64_t)(b & 0x0f) * (b <= 0x8f ? 2 : 1);
		return true;
	}
	if (b <= 0xbf) {
		*skip = b & 0x1f;
		return true;
	}
	if (b == 0xc1)
		return false;

	width = length_bytes[b - 0xc0];
	*skip = fixed_payload[b - 0xc0];
	if (width == 0)
		return true;
	if (avail < 1 + width) {
		*head = 1 + width;  /* the caller reports the truncation */
		return true;
	}
	for (size_t i = 0; i < width; i++)
		n = (n << 8) | p[1 + i];
	*head = 1 + width;
	if (b >= 0xdc) {
		*container = true;
		*elements = b >= 0xde ? n * 2 : n;
	} else {
		/* ext types carry a one-byte type after the length. */
		*skip = n + ((b >= 0xc7 && b <= 0xc9) ? 1 : 0);
	}
	return true;
}

/* Checks the structure of one MessagePack object; NULL or a reason. */
static const char *msgpack_check(const unsigned char *p, size_t len)
{
	uint64_t left[SG_MAX_DEPTH + 1];
	uint64_t pending = 1;
	size_t pos = 0;
	int depth = 0;

	left[0] = 1;
	while (depth >= 0) {
		size_t head = 0;
		uint64_t skip = 0, elements = 0;
		bool container = false;

		if (left[depth] == 0) {
			depth--;
			continue;
		}
		left[depth]--;
		pending--;
		if (pos >= len)
			return "the MessagePack body is truncated";
		if (!msgpack_header(p + pos, len - pos, &head, &skip, &elements,
				    &container))
			return "the MessagePack body contains the never-used byte 0xc1";
		if (head > len - pos || skip > len - pos - head)
			return "the MessagePack body is truncated";
		pos += head + (size_t)skip;
		if (!container)
			continue;
		if (depth + 1 > SG_MAX_DEPTH)
			return "the MessagePack body nests deeper than 32 levels; flatten it";
		pending += elements;
		if (pending > len - pos)
			return "the MessagePack body is truncated: a container declares more elements than the body holds";
		left[++depth] = elements;
	}
	if (pos != len)
		return "the MessagePack body has bytes after its first object; send one map or one array";
	return NULL;
}

static void parse_msgpack(const char *body, size_t len, size_t max_items,
			  struct sg_batch *out, struct sg_batch_report *rep)
{
	msgpack_unpacked result;
	const msgpack_object *root = NULL;
	const char *why = msgpack_check((const unsigned char *)body, len);
	size_t off = 0;
	size_t count = 0;

	msgpack_unpacked_init(&result);
	if (why) {
		report_body(rep, "%s", why);
		goto out;
	}
	if (msgpack_unpack_next(&result, body, len, &off) !=
		    MSGPACK_UNPACK_SUCCESS || off != len) {
		report_body(rep, "the MessagePack body is invalid; send one map or one array of maps");
		goto out;
	}
	root = &result.data;
	count = root->type == MSGPACK_OBJECT_ARRAY ? root->via.array.size : 1;
	if (check_count(count, max_items, rep) != 0 ||
	    alloc_items(out, count, rep) != 0)
		goto out;

	for (size_t i = 0; i < count; i++) {
		const msgpack_object *item = root->type == MSGPACK_OBJECT_ARRAY ?
					     &root->via.array.ptr[i] : root;
		struct item_problems ip = { rep, i };

		sg_from_msgpack_each(item, &out->items[i], add_item_problem, &ip);
		/* Ingest assigns these; a sensor cannot choose them. */
		out->items[i].seq = 0;
		out->items[i].received_us = 0;
	}

out:
	msgpack_unpacked_destroy(&result);
}

int sg_batch_parse(const char *body, size_t len, enum sg_format fmt,
		   size_t max_items, struct sg_batch *out,
		   struct sg_batch_report *rep)
{
	out->items = NULL;
	out->count = 0;
	report_reset(rep);

	if (!body || len == 0) {
		report_body(rep, "the body is empty; send at least one signal");
		return -1;
	}
	switch (fmt) {
	case SG_FORMAT_JSON:
		parse_json(body, len, max_items, out, rep);
		break;
	case SG_FORMAT_NDJSON:
		parse_ndjson(body, len, max_items, out, rep);
		break;
	case SG_FORMAT_MSGPACK:
		parse_msgpack(body, len, max_items, out, rep);
		break;
	default:
		report_body(rep, "unknown body format %d", (int)fmt);
		break;
	}

	if (rep->total == 0)
		return 0;
	sg_batch_free(out);
	return -1;
}

void sg_batch_free(struct sg_batch *b)
{
	if (!b)
		return;
	free(b->items);
	b->items = NULL;
	b->count = 0;
}
