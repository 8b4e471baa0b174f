/*
 * JSON encoding of a signal.
 *
 * sg_to_json_text is on the fan-out path, so it writes straight into the
 * caller's buffer in a fixed member order instead of building a jansson
 * tree: id, seq, event_type, confidence, source_region, proxy_type,
 * threat_stage, related_domain, timestamp, recommended_action, then the
 * optional sensor, campaign_id, credential_leaked and infra_id when present.
 */
#include <stdio.h>
#include <string.h>

#include "signal.h"
#include "signal_ingest.h"

static void value_from_json(const json_t *j, struct sg_value *v)
{
	memset(v, 0, sizeof(*v));
	switch (json_typeof(j)) {
	case JSON_NULL:
		v->kind = SG_VALUE_NULL;
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		v->kind = SG_VALUE_BOOL;
		v->boolean = json_is_true(j);
		break;
	case JSON_INTEGER:
		v->kind = SG_VALUE_INTEGER;
		break;
	case JSON_REAL:
		v->kind = SG_VALUE_REAL;
		break;
	case JSON_STRING:
		v->kind = SG_VALUE_STRING;
		v->str = json_string_value(j);
		v->len = json_string_length(j);
		break;
	case JSON_ARRAY:
		v->kind = SG_VALUE_ARRAY;
		break;
	case JSON_OBJECT:
		v->kind = SG_VALUE_OBJECT;
		break;
	default:
		v->kind = SG_VALUE_OTHER;
		break;
	}
}

int sg_from_json_each(const json_t *obj, struct sg_signal *s,
		      sg_problem_fn add, void *ctx)
{
	struct sg_ingest in;
	struct sg_value v;
	const char *key = NULL;
	size_t key_len = 0;
	json_t *value = NULL;

	sg_ingest_begin(&in, s, add, ctx);
	if (!json_is_object(obj)) {
		struct sg_error e;

		memset(&e, 0, sizeof(e));
		if (obj)
			value_from_json(obj, &v);
		sg_error_set(&e, "", "the item is %s; send an object",
			     obj ? sg_value_kind_name(v.kind) : "missing");
		sg_ingest_problem(&in, &e);
		return -1;
	}

	/* The macro takes a non-const object but only reads it. */
	json_object_keylen_foreach((json_t *)obj, key, key_len, value) {
		value_from_json(value, &v);
		sg_ingest_member(&in, key, key_len, &v);
	}
	return sg_ingest_end(&in);
}

int sg_from_json(const json_t *obj, struct sg_signal *s, struct sg_error *err)
{
	struct sg_first_problem first = { err, false };

	return sg_from_json_each(obj, s, sg_keep_first_problem, &first);
}

json_t *sg_to_json(const struct sg_signal *s)
{
	char id[32];
	char when[32];
	json_t *obj = json_object();

	if (!obj)
		return NULL;
	snprintf(id, sizeof(id), "sig_%llu", (unsigned long long)s->seq);
	sg_time_format(s->observed_us, when);

	/* json_integer is signed, so a seq past INT64_MAX cannot be exact;
	 * the store assigns seq from 1 upwards and never gets there. */
	json_object_set_new(obj, "id", json_string(id));
	json_object_set_new(obj, "seq", json_integer((json_int_t)s->seq));
	json_object_set_new(obj, "event_type",
			    json_string(sg_name(sg_event_type_names, SG_EVENT_COUNT, s->event_type)));
	json_object_set_new(obj, "confidence",
			    json_string(sg_name(sg_confidence_names, SG_CONFIDENCE_COUNT, s->confidence)));
	json_object_set_new(obj, "source_region", json_string(s->region));
	json_object_set_new(obj, "proxy_type",
			    json_string(sg_name(sg_proxy_type_names, SG_PROXY_COUNT, s->proxy_type)));
	json_object_set_new(obj, "threat_stage",
			    json_string(sg_name(sg_stage_names, SG_STAGE_COUNT, s->stage)));
	json_object_set_new(obj, "related_domain", json_string(s->domain));
	json_object_set_new(obj, "timestamp", json_string(when));
	json_object_set_new(obj, "recommended_action",
			    json_string(sg_name(sg_action_names, SG_ACTION_COUNT, s->action)));
	if (s->sensor[0])
		json_object_set_new(obj, "sensor", json_string(s->sensor));
	if (s->campaign_id[0])
		json_object_set_new(obj, "campaign_id",
				    json_string(s->campaign_id));
	if (s->credential_leaked != SG_BOOL_ABSENT)
		json_object_set_new(obj, "credential_leaked",
				    json_boolean(s->credential_leaked));
	if (s->infra_id[0])
		json_object_set_new(obj, "infra_id", json_string(s->infra_id));
	return obj;
}

/* A bounded writer that counts what it would need, like snprintf. */
struct text_out {
	char *buf;
	size_t cap;
	size_t len;
};

static void put_bytes(struct text_out *t, const char *p, size_t n)
{
	if (t->len < t->cap) {
		size_t room = t->cap - t->len;

		memcpy(t->buf + t->len, p, n < room ? n : room);
	}
	t->len += n;
}

static void put_raw(struct text_out *t, const char *s)
{
	put_bytes(t, s, strlen(s));
}

/* Writes s as a JSON string; control bytes, '"' and '\\' are escaped. */
static void put_string(struct text_out *t, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;

	put_bytes(t, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
			continue;
		put_bytes(t, run, (size_t)(s - run));
		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			put_bytes(t, esc, 2);
		} else {
			put_bytes(t, esc, 6);
		}
		run = s + 1;
	}
	put_bytes(t, run, (size_t)(s - run));
	put_bytes(t, "\"", 1);
}

static void put_member(struct text_out *t, const char *key, const char *value)
{
	put_raw(t, ",\"");
	put_raw(t, key);
	put_raw(t, "\":");
	put_string(t, value);
}

size_t sg_to_json_text(const struct sg_signal *s, char *buf, size_t cap)
{
	struct text_out t = { buf, cap, 0 };
	char head[80];
	char when[32];

	snprintf(head, sizeof(head), "{\"id\":\"sig_%llu\",\"seq\":%llu",
		 (unsigned long long)s->seq, (unsigned long long)s->seq);
	sg_time_format(s->observed_us, when);

	put_raw(&t, head);
	put_member(&t, "event_type", sg_name(sg_event_type_names, SG_EVENT_COUNT, s->event_type));
	put_member(&t, "confidence", sg_name(sg_confidence_names, SG_CONFIDENCE_COUNT, s->confidence));
	put_member(&t, "source_region", s->region);
	put_member(&t, "proxy_type", sg_name(sg_proxy_type_names, SG_PROXY_COUNT, s->proxy_type));
	put_member(&t, "threat_stage", sg_name(sg_stage_names, SG_STAGE_COUNT, s->stage));
	put_member(&t, "related_domain", s->domain);
	put_member(&t, "timestamp", when);
	put_member(&t, "recommended_action", sg_name(sg_action_names, SG_ACTION_COUNT, s->action));
	if (s->sensor[0])
		put_member(&t, "sensor", s->sensor);
	if (s->campaign_id[0])
		put_member(&t, "campaign_id", s->campaign_id);
	if (s->credential_leaked != SG_BOOL_ABSENT)
		put_raw(&t, s->credential_leaked ? ",\"credential_leaked\":true" :
						   ",\"credential_leaked\":false");
	if (s->infra_id[0])
		put_member(&t, "infra_id", s->infra_id);
	put_raw(&t, "}");

	/* Terminate like snprintf: always, when there is any room. */
	if (cap > 0)
		buf[t.len < cap ? t.len : cap - 1] = '\0';
	return t.len;
}
