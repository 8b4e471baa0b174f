/*
 * MessagePack encoding of a signal: a map with the JSON field names.
 *
 * Values have the JSON types: strings, `seq` as an unsigned integer,
 * `credential_leaked` as a boolean and `timestamp` as the RFC 3339 string.
 * The stored form adds `received_us`, an integer of microseconds.
 * Decoding takes both that form and ingest maps; map keys must be strings
 * and may not repeat.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signal.h"
#include "signal_ingest.h"

/* Largest map an item may be; more members is a whole-item error. */
#define MSGPACK_ITEM_MAX_KEYS 4096

static int pack_key(msgpack_packer *pk, const char *key)
{
	size_t len = strlen(key);

	return msgpack_pack_str(pk, len) || msgpack_pack_str_body(pk, key, len);
}

static int pack_string(msgpack_packer *pk, const char *key, const char *value)
{
	size_t len = strlen(value);

	return pack_key(pk, key) || msgpack_pack_str(pk, len) ||
	       msgpack_pack_str_body(pk, value, len);
}

int sg_to_msgpack(const struct sg_signal *s, msgpack_packer *pk,
		  bool with_received)
{
	char id[32];
	char when[32];
	size_t entries = 10;
	int rc = 0;

	snprintf(id, sizeof(id), "sig_%llu", (unsigned long long)s->seq);
	sg_time_format(s->observed_us, when);
	entries += s->sensor[0] != '\0';
	entries += s->campaign_id[0] != '\0';
	entries += s->credential_leaked != SG_BOOL_ABSENT;
	entries += s->infra_id[0] != '\0';
	entries += with_received;

	rc = msgpack_pack_map(pk, entries) ||
	     pack_string(pk, "id", id) ||
	     pack_key(pk, "seq") || msgpack_pack_uint64(pk, s->seq) ||
	     pack_string(pk, "event_type", sg_name(sg_event_type_names, SG_EVENT_COUNT, s->event_type)) ||
	     pack_string(pk, "confidence", sg_name(sg_confidence_names, SG_CONFIDENCE_COUNT, s->confidence)) ||
	     pack_string(pk, "source_region", s->region) ||
	     pack_string(pk, "proxy_type", sg_name(sg_proxy_type_names, SG_PROXY_COUNT, s->proxy_type)) ||
	     pack_string(pk, "threat_stage", sg_name(sg_stage_names, SG_STAGE_COUNT, s->stage)) ||
	     pack_string(pk, "related_domain", s->domain) ||
	     pack_string(pk, "timestamp", when) ||
	     pack_string(pk, "recommended_action", sg_name(sg_action_names, SG_ACTION_COUNT, s->action));
	if (rc == 0 && s->sensor[0])
		rc = pack_string(pk, "sensor", s->sensor);
	if (rc == 0 && s->campaign_id[0])
		rc = pack_string(pk, "campaign_id", s->campaign_id);
	if (rc == 0 && s->credential_leaked != SG_BOOL_ABSENT)
		rc = pack_key(pk, "credential_leaked") ||
		     (s->credential_leaked ? msgpack_pack_true(pk) :
					     msgpack_pack_false(pk));
	if (rc == 0 && s->infra_id[0])
		rc = pack_string(pk, "infra_id", s->infra_id);
	if (rc == 0 && with_received)
		rc = pack_key(pk, "received_us") ||
		     msgpack_pack_int64(pk, s->received_us);
	return rc ? -1 : 0;
}

static void value_from_msgpack(const msgpack_object *o, struct sg_value *v)
{
	memset(v, 0, sizeof(*v));
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		v->kind = SG_VALUE_NULL;
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		v->kind = SG_VALUE_BOOL;
		v->boolean = o->via.boolean;
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		v->kind = SG_VALUE_INTEGER;
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		v->kind = SG_VALUE_REAL;
		break;
	case MSGPACK_OBJECT_STR:
		v->kind = SG_VALUE_STRING;
		v->str = o->via.str.ptr;
		v->len = o->via.str.size;
		break;
	case MSGPACK_OBJECT_ARRAY:
		v->kind = SG_VALUE_ARRAY;
		break;
	case MSGPACK_OBJECT_MAP:
		v->kind = SG_VALUE_OBJECT;
		break;
	default:
		v->kind = SG_VALUE_OTHER;
		break;
	}
}

static int compare_keys(const void *a, const void *b)
{
	const msgpack_object_str *x = *(const msgpack_object_str *const *)a;
	const msgpack_object_str *y = *(const msgpack_object_str *const *)b;
	size_t n = x->size < y->size ? x->size : y->size;
	int c = n ? memcmp(x->ptr, y->ptr, n) : 0;

	if (c != 0)
		return c;
	return (x->size > y->size) - (x->size < y->size);
}

/* Rejects non-string and repeated keys; sorting keeps it O(n log n). */
static int check_keys(const msgpack_object_map *map, struct sg_error *err)
{
	const msgpack_object_str **keys = NULL;
	char quoted[SG_QUOTE_MAX + 8];
	int rc = -1;

	if (map->size > MSGPACK_ITEM_MAX_KEYS) {
		sg_error_set(err, "", "the map has %u members; the limit is %d",
			     map->size, MSGPACK_ITEM_MAX_KEYS);
		goto out;
	}
	keys = calloc(map->size ? map->size : 1, sizeof(*keys));
	if (!keys) {
		sg_error_set(err, "", "out of memory while reading the map");
		goto out;
	}
	for (uint32_t i = 0; i < map->size; i++) {
		const msgpack_object *k = &map->ptr[i].key;

		if (k->type != MSGPACK_OBJECT_STR) {
			struct sg_value v;

			value_from_msgpack(k, &v);
			sg_error_set(err, "",
				     "a map key is %s; every key must be a string",
				     sg_value_kind_name(v.kind));
			goto out;
		}
		keys[i] = &k->via.str;
	}
	qsort(keys, map->size, sizeof(*keys), compare_keys);
	for (uint32_t i = 1; i < map->size; i++) {
		if (compare_keys(&keys[i - 1], &keys[i]) == 0) {
			sg_quote(keys[i]->ptr, keys[i]->size, quoted,
				 sizeof(quoted));
			sg_error_set(err, "",
				     "the key \"%s\" appears more than once; send each key once",
				     quoted);
			goto out;
		}
	}
	rc = 0;

out:
	free(keys);
	return rc;
}

static bool key_is(const msgpack_object_str *k, const char *name)
{
	return k->size == strlen(name) && memcmp(k->ptr, name, k->size) == 0;
}

int sg_from_msgpack_each(const msgpack_object *obj, struct sg_signal *s,
			 sg_problem_fn add, void *ctx)
{
	struct sg_ingest in;
	struct sg_value v;
	struct sg_error e;
	const msgpack_object_map *map = NULL;

	sg_ingest_begin(&in, s, add, ctx);
	memset(&e, 0, sizeof(e));
	if (obj->type != MSGPACK_OBJECT_MAP) {
		value_from_msgpack(obj, &v);
		sg_error_set(&e, "", "the item is %s; send a map",
			     sg_value_kind_name(v.kind));
		sg_ingest_problem(&in, &e);
		return -1;
	}
	map = &obj->via.map;
	/* Keys that are not strings, or repeated, leave nothing to read
	 * field by field. */
	if (check_keys(map, &e) != 0) {
		sg_ingest_problem(&in, &e);
		return -1;
	}

	for (uint32_t i = 0; i < map->size; i++) {
		const msgpack_object_str *k = &map->ptr[i].key.via.str;
		const msgpack_object *val = &map->ptr[i].val;

		/* The stored form's own members; other types are ignored,
		 * the same as for an unknown member. */
		if (key_is(k, "seq")) {
			if (val->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
				s->seq = val->via.u64;
			continue;
		}
		if (key_is(k, "received_us")) {
			if (val->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
			    val->via.u64 <= INT64_MAX)
				s->received_us = (int64_t)val->via.u64;
			else if (val->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
				s->received_us = val->via.i64;
			continue;
		}

		value_from_msgpack(val, &v);
		sg_ingest_member(&in, k->ptr, k->size, &v);
	}
	return sg_ingest_end(&in);
}

int sg_from_msgpack(const msgpack_object *obj, struct sg_signal *s,
		    struct sg_error *err)
{
	struct sg_first_problem first = { err, false };

	return sg_from_msgpack_each(obj, s, sg_keep_first_problem, &first);
}
