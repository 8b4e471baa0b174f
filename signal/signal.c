/*
 * Signal field rules shared by the JSON and MessagePack decoders.
 *
 * Each known member of an ingested object is checked here. Older names are
 * mapped to the current ones: `attack_confidence` to `confidence`,
 * `source_country` to `source_region`, `infrastructure` to `proxy_type`
 * (the part before the first '-', so `residential-proxy` is `residential`),
 * and the actions `monitor_or_step_up[_auth]` to `step_up`. When an older
 * and a newer name are both present they must agree. `threat_stage` and
 * the region are accepted in any case and stored in upper case. Members
 * with other names are ignored, so they never reach storage.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "signal.h"
#include "signal_ingest.h"

const char *const sg_event_type_names[SG_EVENT_COUNT] = {
	"credential_testing", "account_probe", "sim_recon", "fraud_test"
};
const char *const sg_confidence_names[SG_CONFIDENCE_COUNT] = {
	"low", "medium", "high"
};
const char *const sg_proxy_type_names[SG_PROXY_COUNT] = {
	"datacenter", "residential", "mobile", "tor"
};
const char *const sg_stage_names[SG_STAGE_COUNT] = { "TESTING", "ATTACK" };
const char *const sg_action_names[SG_ACTION_COUNT] = {
	"monitor", "step_up", "block", "alert_soc"
};

/* The fields an item may carry, one bit each in sg_ingest.present. */
enum sg_slot {
	SLOT_EVENT_TYPE,
	SLOT_CONFIDENCE,
	SLOT_ATTACK_CONFIDENCE,
	SLOT_SOURCE_REGION,
	SLOT_SOURCE_COUNTRY,
	SLOT_PROXY_TYPE,
	SLOT_INFRASTRUCTURE,
	SLOT_THREAT_STAGE,
	SLOT_RELATED_DOMAIN,
	SLOT_TIMESTAMP,
	SLOT_RECOMMENDED_ACTION,
	SLOT_SENSOR,
	SLOT_CAMPAIGN_ID,
	SLOT_INFRA_ID,
	SLOT_CREDENTIAL_LEAKED,
	SLOT_COUNT
};

static const char *const slot_names[SLOT_COUNT] = {
	"event_type", "confidence", "attack_confidence", "source_region",
	"source_country", "proxy_type", "infrastructure", "threat_stage",
	"related_domain", "timestamp", "recommended_action", "sensor",
	"campaign_id", "infra_id", "credential_leaked"
};

#define BIT(slot) (UINT32_C(1) << (slot))

int sg_enum_lookup(const char *const *names, int count, const char *name)
{
	if (!names || !name)
		return -1;
	for (int i = 0; i < count; i++) {
		if (strcmp(names[i], name) == 0)
			return i;
	}
	return -1;
}

const char *sg_name(const char *const *names, int count, unsigned i)
{
	return i < (unsigned)count ? names[i] : "invalid";
}

void sg_error_set(struct sg_error *err, const char *field, const char *fmt,
		  ...)
{
	va_list ap;

	if (!err)
		return;
	snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
	va_end(ap);
}

void sg_quote(const char *in, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	size_t shown = len > SG_QUOTE_MAX ? SG_QUOTE_MAX : len;

	if (cap == 0)
		return;
	for (size_t i = 0; i < shown && n + 1 < cap; i++) {
		unsigned char c = (unsigned char)in[i];

		out[n++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ?
			   (char)c : '?';
	}
	for (size_t i = 0; shown < len && i < 3 && n + 1 < cap; i++)
		out[n++] = '.';
	out[n] = '\0';
}

const char *sg_value_kind_name(enum sg_value_kind kind)
{
	switch (kind) {
	case SG_VALUE_NULL: return "null";
	case SG_VALUE_STRING: return "a string";
	case SG_VALUE_BOOL: return "a boolean";
	case SG_VALUE_INTEGER: return "an integer";
	case SG_VALUE_REAL: return "a number";
	case SG_VALUE_ARRAY: return "an array";
	case SG_VALUE_OBJECT: return "an object";
	default: return "a value of an unsupported type";
	}
}

void sg_ingest_begin(struct sg_ingest *in, struct sg_signal *s,
		     sg_problem_fn add, void *ctx)
{
	memset(in, 0, sizeof(*in));
	memset(s, 0, sizeof(*s));
	s->credential_leaked = SG_BOOL_ABSENT;
	in->s = s;
	in->add = add;
	in->add_ctx = ctx;
}

void sg_ingest_problem(struct sg_ingest *in, const struct sg_error *e)
{
	in->problems++;
	if (in->add)
		in->add(in->add_ctx, e);
}

void sg_keep_first_problem(void *ctx, const struct sg_error *e)
{
	struct sg_first_problem *first = ctx;

	if (!first->set && first->err)
		*first->err = *e;
	first->set = true;
}

static int find_slot(const char *key, size_t keylen)
{
	for (int i = 0; i < SLOT_COUNT; i++) {
		if (strlen(slot_names[i]) == keylen &&
		    memcmp(slot_names[i], key, keylen) == 0)
			return i;
	}
	return -1;
}

/* Writes "a, b or c" for a message listing the allowed values. */
static void list_names(const char *const *names, int count, char *out,
		       size_t cap)
{
	size_t n = 0;

	out[0] = '\0';
	for (int i = 0; i < count && n < cap; i++) {
		const char *sep = i == 0 ? "" : ", ";
		int w = snprintf(out + n, cap - n, "%s%s", sep, names[i]);

		if (w < 0)
			break;
		n += (size_t)w;
	}
}

static int reject_value(struct sg_error *err, const char *field,
			const char *value, const char *const *names, int count)
{
	char quoted[SG_QUOTE_MAX + 8];
	char allowed[96];

	sg_quote(value, strlen(value), quoted, sizeof(quoted));
	list_names(names, count, allowed, sizeof(allowed));
	sg_error_set(err, field, "%s \"%s\" is not one of %s", field, quoted,
		     allowed);
	return -1;
}

/* Looks value up in names; on a miss fills err and returns -1. */
static int lookup_or_reject(struct sg_error *err, const char *field,
			    const char *value, const char *const *names,
			    int count)
{
	int i = sg_enum_lookup(names, count, value);

	if (i < 0)
		return reject_value(err, field, value, names, count);
	return i;
}

static void ascii_upper(char *s)
{
	for (; *s; s++) {
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 32);
	}
}

static int parse_region(const char *field, const char *value, char out[3],
			struct sg_error *err)
{
	char quoted[SG_QUOTE_MAX + 8];
	bool letters = strlen(value) == 2;

	for (size_t i = 0; letters && i < 2; i++) {
		char c = value[i];

		letters = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
	}
	if (!letters) {
		sg_quote(value, strlen(value), quoted, sizeof(quoted));
		sg_error_set(err, field,
			     "%s \"%s\" is not a two-letter ISO 3166-1 country code; send a code such as DE, EU or ZZ for unknown",
			     field, quoted);
		return -1;
	}
	memcpy(out, value, 3);
	ascii_upper(out);
	return 0;
}

static int parse_infrastructure(const char *value, struct sg_error *err)
{
	char kind[SG_VALUE_MAX + 1];
	size_t n = strcspn(value, "-");
	int i = 0;

	memcpy(kind, value, n);
	kind[n] = '\0';
	i = sg_enum_lookup(sg_proxy_type_names, SG_PROXY_COUNT, kind);
	if (i < 0) {
		char quoted[SG_QUOTE_MAX + 8];

		sg_quote(value, strlen(value), quoted, sizeof(quoted));
		sg_error_set(err, "infrastructure",
			     "infrastructure \"%s\" is not datacenter, residential, mobile or tor, alone or followed by -proxy or -exit",
			     quoted);
	}
	return i;
}

static int parse_action(const char *value, struct sg_error *err)
{
	if (strcmp(value, "monitor_or_step_up") == 0 ||
	    strcmp(value, "monitor_or_step_up_auth") == 0)
		return SG_ACTION_STEP_UP;
	return lookup_or_reject(err, "recommended_action", value,
				sg_action_names, SG_ACTION_COUNT);
}

/* sensor, campaign_id, infra_id: 1..64 bytes of [A-Za-z0-9._:-]. */
static int parse_identifier(const char *field, const char *value,
			    bool forbid_address, char out[SG_ID_MAX + 1],
			    struct sg_error *err)
{
	static const char allowed[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-";
	char quoted[SG_QUOTE_MAX + 8];
	unsigned char addr[16];
	size_t len = strlen(value);

	if (len == 0 || len > SG_ID_MAX || strspn(value, allowed) != len) {
		sg_quote(value, len, quoted, sizeof(quoted));
		sg_error_set(err, field,
			     "%s \"%s\" is invalid; use 1 to 64 letters, digits, '.', '_', ':' or '-'",
			     field, quoted);
		return -1;
	}
	/* Why: a raw address is personal data; the field is meant to carry a
	 * keyed hash of it. Never echo the address back. */
	if (forbid_address && (inet_pton(AF_INET, value, addr) == 1 ||
			       inet_pton(AF_INET6, value, addr) == 1)) {
		sg_error_set(err, field,
			     "%s is a raw IP address, which must not be sent; send a keyed hash of it instead",
			     field);
		return -1;
	}
	memcpy(out, value, len + 1);
	return 0;
}

static int parse_domain(const char *value, char out[SG_DOMAIN_MAX + 1],
			struct sg_error *err)
{
	char why[sizeof(err->reason)];

	if (sg_domain_normalize(value, false, out, why, sizeof(why)) != 0) {
		sg_error_set(err, "related_domain", "related_domain %s", why);
		return -1;
	}
	return 0;
}

static int parse_timestamp(const char *value, size_t len, int64_t *us,
			   struct sg_error *err)
{
	char quoted[SG_QUOTE_MAX + 8];
	const char *why = sg_time_check(value, len, us);

	if (why) {
		sg_quote(value, len, quoted, sizeof(quoted));
		sg_error_set(err, "timestamp", "timestamp \"%s\" %s", quoted,
			     why);
		return -1;
	}
	return 0;
}

/* Applies a string value to a slot; value is NUL-terminated. */
static int apply_string(struct sg_ingest *in, int slot, const char *value,
			size_t len, struct sg_error *err)
{
	struct sg_signal *s = in->s;
	const char *field = slot_names[slot];
	char upper[SG_VALUE_MAX + 1];
	int i = 0;

	switch (slot) {
	case SLOT_EVENT_TYPE:
		i = lookup_or_reject(err, field, value, sg_event_type_names,
				     SG_EVENT_COUNT);
		s->event_type = (uint8_t)i;
		break;
	case SLOT_CONFIDENCE:
	case SLOT_ATTACK_CONFIDENCE:
		i = lookup_or_reject(err, field, value, sg_confidence_names,
				     SG_CONFIDENCE_COUNT);
		if (slot == SLOT_CONFIDENCE)
			in->confidence_new = (uint8_t)i;
		else
			in->confidence_old = (uint8_t)i;
		break;
	case SLOT_SOURCE_REGION:
		i = parse_region(field, value, in->region_new, err);
		break;
	case SLOT_SOURCE_COUNTRY:
		i = parse_region(field, value, in->region_old, err);
		break;
	case SLOT_PROXY_TYPE:
		i = lookup_or_reject(err, field, value, sg_proxy_type_names,
				     SG_PROXY_COUNT);
		in->proxy_new = (uint8_t)i;
		break;
	case SLOT_INFRASTRUCTURE:
		i = parse_infrastructure(value, err);
		in->proxy_old = (uint8_t)i;
		break;
	case SLOT_THREAT_STAGE:
		memcpy(upper, value, len + 1);
		ascii_upper(upper);
		i = sg_enum_lookup(sg_stage_names, SG_STAGE_COUNT, upper);
		if (i < 0)
			i = reject_value(err, field, value, sg_stage_names,
					 SG_STAGE_COUNT);
		s->stage = (uint8_t)i;
		break;
	case SLOT_RELATED_DOMAIN:
		i = parse_domain(value, s->domain, err);
		break;
	case SLOT_TIMESTAMP:
		i = parse_timestamp(value, len, &s->observed_us, err);
		break;
	case SLOT_RECOMMENDED_ACTION:
		i = parse_action(value, err);
		s->action = (uint8_t)i;
		break;
	case SLOT_SENSOR:
		i = parse_identifier(field, value, true, s->sensor, err);
		break;
	case SLOT_CAMPAIGN_ID:
		i = parse_identifier(field, value, false, s->campaign_id, err);
		break;
	case SLOT_INFRA_ID:
		i = parse_identifier(field, value, true, s->infra_id, err);
		break;
	default:
		sg_error_set(err, field, "%s must be a boolean, true or false",
			     field);
		i = -1;
		break;
	}
	return i < 0 ? -1 : 0;
}

/* Applies a member of a known field; returns -1 with err filled when it
 * is rejected. */
static int apply_member(struct sg_ingest *in, int slot, const struct sg_value *v,
			struct sg_error *err)
{
	char value[SG_VALUE_MAX + 1];
	const char *field = slot_names[slot];

	/* null means "not sent", the same as a missing member. */
	if (v->kind == SG_VALUE_NULL)
		return 0;

	if (slot == SLOT_CREDENTIAL_LEAKED) {
		if (v->kind != SG_VALUE_BOOL) {
			sg_error_set(err, field,
				     "%s is %s; send true or false", field,
				     sg_value_kind_name(v->kind));
			return -1;
		}
		in->s->credential_leaked = v->boolean ? 1 : 0;
		in->present |= BIT(slot);
		return 0;
	}

	if (v->kind != SG_VALUE_STRING) {
		sg_error_set(err, field, "%s is %s; send it as a string",
			     field, sg_value_kind_name(v->kind));
		return -1;
	}
	if (v->len > SG_VALUE_MAX) {
		sg_error_set(err, field,
			     "%s is %zu bytes long; the limit is %d bytes",
			     field, v->len, SG_VALUE_MAX);
		return -1;
	}
	if (memchr(v->str, '\0', v->len)) {
		sg_error_set(err, field,
			     "%s contains a NUL character; remove it", field);
		return -1;
	}
	memcpy(value, v->str, v->len);
	value[v->len] = '\0';

	if (apply_string(in, slot, value, v->len, err) != 0)
		return -1;
	in->present |= BIT(slot);
	return 0;
}

void sg_ingest_member(struct sg_ingest *in, const char *key, size_t keylen,
		      const struct sg_value *v)
{
	int slot = find_slot(key, keylen);
	struct sg_error e;

	if (slot < 0)
		return;
	memset(&e, 0, sizeof(e));
	if (apply_member(in, slot, v, &e) != 0) {
		in->invalid |= BIT(slot);
		sg_ingest_problem(in, &e);
	}
}

/* Reports a required field that is missing; one that was sent with a
 * rejected value has its problem already. */
static void require(struct sg_ingest *in, int slot, const char *hint)
{
	struct sg_error e;

	if ((in->present | in->invalid) & BIT(slot))
		return;
	memset(&e, 0, sizeof(e));
	sg_error_set(&e, slot_names[slot], "%s is missing; %s",
		     slot_names[slot], hint);
	sg_ingest_problem(in, &e);
}

/* Reports the newer and older names of one field when both are sent with
 * different values; the newer one's value is used. */
static void merge_names(struct sg_ingest *in, int new_slot, int old_slot,
			const char *new_value, const char *old_value)
{
	bool has_new = in->present & BIT(new_slot);
	bool has_old = in->present & BIT(old_slot);
	struct sg_error e;

	if (has_new && has_old && strcmp(new_value, old_value) != 0) {
		memset(&e, 0, sizeof(e));
		sg_error_set(&e, slot_names[new_slot],
			     "%s \"%s\" and the older %s \"%s\" disagree; send only %s",
			     slot_names[new_slot], new_value,
			     slot_names[old_slot], old_value,
			     slot_names[new_slot]);
		sg_ingest_problem(in, &e);
	}
}

int sg_ingest_end(struct sg_ingest *in)
{
	struct sg_signal *s = in->s;
	uint32_t p = in->present;

	/* sg_name: a rejected member may have left an index out of range. */
	merge_names(in, SLOT_CONFIDENCE, SLOT_ATTACK_CONFIDENCE,
		    sg_name(sg_confidence_names, SG_CONFIDENCE_COUNT, in->confidence_new),
		    sg_name(sg_confidence_names, SG_CONFIDENCE_COUNT, in->confidence_old));
	merge_names(in, SLOT_SOURCE_REGION, SLOT_SOURCE_COUNTRY,
		    in->region_new, in->region_old);
	merge_names(in, SLOT_PROXY_TYPE, SLOT_INFRASTRUCTURE,
		    sg_name(sg_proxy_type_names, SG_PROXY_COUNT, in->proxy_new),
		    sg_name(sg_proxy_type_names, SG_PROXY_COUNT, in->proxy_old));

	s->confidence = (p & BIT(SLOT_CONFIDENCE)) ? in->confidence_new :
						     in->confidence_old;
	s->proxy_type = (p & BIT(SLOT_PROXY_TYPE)) ? in->proxy_new :
						     in->proxy_old;
	if (p & BIT(SLOT_SOURCE_REGION))
		memcpy(s->region, in->region_new, sizeof(s->region));
	else if (p & BIT(SLOT_SOURCE_COUNTRY))
		memcpy(s->region, in->region_old, sizeof(s->region));
	else
		memcpy(s->region, "ZZ", sizeof(s->region));

	/* An older name counts for the newer one, sent or rejected. */
	if (p & BIT(SLOT_ATTACK_CONFIDENCE))
		p |= BIT(SLOT_CONFIDENCE);
	if (p & BIT(SLOT_INFRASTRUCTURE))
		p |= BIT(SLOT_PROXY_TYPE);
	in->present = p;
	if (in->invalid & BIT(SLOT_ATTACK_CONFIDENCE))
		in->invalid |= BIT(SLOT_CONFIDENCE);
	if (in->invalid & BIT(SLOT_INFRASTRUCTURE))
		in->invalid |= BIT(SLOT_PROXY_TYPE);

	require(in, SLOT_EVENT_TYPE, "send one of credential_testing, account_probe, sim_recon, fraud_test");
	require(in, SLOT_CONFIDENCE, "send one of low, medium, high");
	require(in, SLOT_PROXY_TYPE, "send one of datacenter, residential, mobile, tor");
	require(in, SLOT_THREAT_STAGE, "send TESTING or ATTACK");
	require(in, SLOT_RELATED_DOMAIN, "send the targeted domain, such as example.com");
	require(in, SLOT_TIMESTAMP, "send an RFC 3339 time such as 2026-01-03T04:05:06Z");
	require(in, SLOT_RECOMMENDED_ACTION, "send one of monitor, step_up, block, alert_soc");
	return in->problems ? -1 : 0;
}
