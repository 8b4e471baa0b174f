/*
 * Subscription filters: parsing from JSON, tenant restriction and matching.
 * The matching rules, with examples, are at the top of filter.h.
 *
 * Each enumerated field is a bitmask indexed by the signal's enum value, so
 * those fields cost one AND each. Regions are a 26 x 26 bit set. Domain
 * patterns live in two hash sets: exact names, and the suffixes of
 * wildcard patterns ("*.example.com" is stored as "example.com"). A signal
 * costs one lookup for its name plus one for each proper suffix that starts
 * after a dot, so a 10,000-name watchlist is as cheap as a single name.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filter.h"
#include "filter_internal.h"
#include "table.h"

/* Mask value of an omitted enumerated field: every value passes. */
#define MASK_ANY UINT32_MAX

/* Most bytes of a rejected value that an error message quotes. */
#define QUOTE_MAX 40

/* Maximum length of a tenant list for mt_filter_restrict, in bytes. */
#define RESTRICT_INPUT_MAX ((size_t)MT_MAX_DOMAINS * (SG_DOMAIN_MAX + 1))

#define REGION_BITS (26 * 26)

struct mt_filter {
	uint32_t event_types;   /* bit per enum sg_event_type, or MASK_ANY */
	uint32_t stages;        /* bit per enum sg_stage, or MASK_ANY */
	uint32_t proxy_types;   /* bit per enum sg_proxy_type, or MASK_ANY */
	uint32_t actions;       /* bit per enum sg_action, or MASK_ANY */
	uint32_t confidences;   /* bit per enum sg_confidence, or MASK_ANY */

	bool has_regions;
	uint64_t regions[(REGION_BITS + 63) / 64]; /* bit (A-Z)*26 + (A-Z) */

	bool has_domains;
	struct mt_table exact;      /* "example.com" */
	struct mt_table wildcards;  /* "example.com" for "*.example.com" */

	bool has_tenant;
	struct mt_table tenant;     /* exact names from mt_filter_restrict */
};

/* Parser state: the filter being built and the caller's error buffer. */
struct parse_ctx {
	mt_filter *f;
	char *err;
	size_t errlen;
	uint32_t min_confidence;    /* mask from min_confidence */
	uint32_t threat_only;       /* mask from threat_only */
};

static void set_error(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Copies at most QUOTE_MAX bytes of in into out for an error message:
 * printable ASCII stays, any other byte and '"' or '\\' becomes '?', and a
 * cut value ends in "...". out needs QUOTE_MAX + 4 bytes.
 */
static void quote(const char *in, char out[QUOTE_MAX + 4])
{
	size_t n = 0;

	for (; in[n] && n < QUOTE_MAX; n++) {
		unsigned char c = (unsigned char)in[n];

		out[n] = (c < 0x20 || c > 0x7e || c == '"' || c == '\\') ? '?'
									: (char)c;
	}
	if (in[n]) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "a list";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "an unknown JSON type";
}

/*
 * Returns the C string of a JSON string value, or NULL with an error when
 * it is not a string, is empty or contains a NUL byte. what names the
 * value in the message, such as "filter.stages[2]".
 */
static const char *string_value(struct parse_ctx *ctx, const json_t *v,
				const char *what)
{
	const char *s = NULL;

	if (!json_is_string(v)) {
		set_error(ctx->err, ctx->errlen,
			  "%s: expected a string, got %s", what, json_kind(v));
		return NULL;
	}
	s = json_string_value(v);
	if (strlen(s) != json_string_length(v)) {
		set_error(ctx->err, ctx->errlen,
			  "%s: the value contains a NUL character; remove it",
			  what);
		return NULL;
	}
	if (s[0] == '\0') {
		set_error(ctx->err, ctx->errlen,
			  "%s: the value is an empty string; remove it or give a value",
			  what);
		return NULL;
	}
	return s;
}

/* Checks that v is a non-empty list. Returns 0 or -1 with an error. */
static int check_list(struct parse_ctx *ctx, const char *field,
		      const json_t *v)
{
	if (!json_is_array(v)) {
		set_error(ctx->err, ctx->errlen,
			  "filter.%s: expected a list of strings, got %s",
			  field, json_kind(v));
		return -1;
	}
	if (json_array_size(v) == 0) {
		set_error(ctx->err, ctx->errlen,
			  "filter.%s: an empty list matches nothing; omit the field to match all",
			  field);
		return -1;
	}
	return 0;
}

/* Finds name in names[] ignoring ASCII case; returns its index or -1. */
static int lookup_any_case(const char *const *names, int count,
			   const char *name)
{
	for (int i = 0; i < count; i++) {
		if (strcasecmp(names[i], name) == 0)
			return i;
	}
	return -1;
}

static void set_unknown_value_error(struct parse_ctx *ctx, const char *field,
				    const char *value,
				    const char *const *names, int count)
{
	char quoted[QUOTE_MAX + 4];
	char allowed[160] = "";
	size_t used = 0;

	quote(value, quoted);
	for (int i = 0; i < count && used < sizeof(allowed); i++) {
		int n = snprintf(allowed + used, sizeof(allowed) - used,
				 "%s%s", i ? ", " : "", names[i]);

		if (n < 0)
			break;
		used += (size_t)n;
	}
	set_error(ctx->err, ctx->errlen, "filter.%s: \"%s\" is not one of %s",
		  field, quoted, allowed);
}

/* Parses a list of enum names into a bitmask. Returns 0 or -1. */
static int parse_enum_list(struct parse_ctx *ctx, const char *field,
			   const json_t *v, const char *const *names,
			   int count, uint32_t *mask)
{
	char what[64];
	size_t i = 0;
	const json_t *item = NULL;

	if (check_list(ctx, field, v) != 0)
		return -1;

	*mask = 0;
	json_array_foreach(v, i, item) {
		const char *s = NULL;
		int index = 0;

		snprintf(what, sizeof(what), "filter.%s[%zu]", field, i);
		s = string_value(ctx, item, what);
		if (!s)
			return -1;
		index = lookup_any_case(names, count, s);
		if (index < 0) {
			set_unknown_value_error(ctx, field, s, names, count);
			return -1;
		}
		*mask |= 1u << index;
	}
	return 0;
}

static int parse_event_types(struct parse_ctx *ctx, const json_t *v)
{
	return parse_enum_list(ctx, "event_types", v, sg_event_type_names,
			       SG_EVENT_COUNT, &ctx->f->event_types);
}

static int parse_stages(struct parse_ctx *ctx, const json_t *v)
{
	return parse_enum_list(ctx, "stages", v, sg_stage_names,
			       SG_STAGE_COUNT, &ctx->f->stages);
}

static int parse_proxy_types(struct parse_ctx *ctx, const json_t *v)
{
	return parse_enum_list(ctx, "proxy_types", v, sg_proxy_type_names,
			       SG_PROXY_COUNT, &ctx->f->proxy_types);
}

static int parse_actions(struct parse_ctx *ctx, const json_t *v)
{
	return parse_enum_list(ctx, "actions", v, sg_action_names,
			       SG_ACTION_COUNT, &ctx->f->actions);
}

static int parse_confidences(struct parse_ctx *ctx, const json_t *v)
{
	return parse_enum_list(ctx, "confidences", v, sg_confidence_names,
			       SG_CONFIDENCE_COUNT, &ctx->f->confidences);
}

static int parse_min_confidence(struct parse_ctx *ctx, const json_t *v)
{
	const char *s = string_value(ctx, v, "filter.min_confidence");
	int level = 0;

	if (!s)
		return -1;
	level = lookup_any_case(sg_confidence_names, SG_CONFIDENCE_COUNT, s);
	if (level < 0) {
		set_unknown_value_error(ctx, "min_confidence", s,
					sg_confidence_names,
					SG_CONFIDENCE_COUNT);
		return -1;
	}

	/* Every level from this one up: the enum is ordered low to high. */
	ctx->min_confidence = ~((1u << level) - 1u);
	return 0;
}

static int parse_threat_only(struct parse_ctx *ctx, const json_t *v)
{
	if (!json_is_boolean(v)) {
		set_error(ctx->err, ctx->errlen,
			  "filter.threat_only: expected true or false, got %s",
			  json_kind(v));
		return -1;
	}
	if (json_is_true(v))
		ctx->threat_only = ~((1u << SG_CONFIDENCE_MEDIUM) - 1u);
	return 0;
}

/* Returns the bit of a two-letter region code, or -1 if not two letters. */
static int region_bit(const char *code)
{
	int hi = toupper((unsigned char)code[0]) - 'A';
	int lo = 0;

	if (hi < 0 || hi >= 26 || code[1] == '\0' || code[2] != '\0')
		return -1;
	lo = toupper((unsigned char)code[1]) - 'A';
	if (lo < 0 || lo >= 26)
		return -1;
	return hi * 26 + lo;
}

static int parse_regions(struct parse_ctx *ctx, const json_t *v)
{
	char what[64];
	char quoted[QUOTE_MAX + 4];
	size_t i = 0;
	const json_t *item = NULL;

	if (check_list(ctx, "regions", v) != 0)
		return -1;

	json_array_foreach(v, i, item) {
		const char *s = NULL;
		int bit = 0;

		snprintf(what, sizeof(what), "filter.regions[%zu]", i);
		s = string_value(ctx, item, what);
		if (!s)
			return -1;
		bit = region_bit(s);
		if (bit < 0) {
			quote(s, quoted);
			set_error(ctx->err, ctx->errlen,
				  "filter.regions: \"%s\" is not a region code; give two letters such as DE, EU or ZZ",
				  quoted);
			return -1;
		}
		ctx->f->regions[bit / 64] |= UINT64_C(1) << (bit % 64);
	}
	ctx->f->has_regions = true;
	return 0;
}

/* Rejects a '*' anywhere but as the whole first label. */
static int check_wildcard_place(struct parse_ctx *ctx, const char *s)
{
	char quoted[QUOTE_MAX + 4];
	const char *star = strchr(s, '*');

	if (!star)
		return 0;
	if (star == s && s[1] == '.' && !strchr(s + 1, '*'))
		return 0;
	quote(s, quoted);
	set_error(ctx->err, ctx->errlen,
		  "filter.domains: \"%s\" has a wildcard outside the first label; use * only as the whole first label, as in *.example.com",
		  quoted);
	return -1;
}

static int add_domain_pattern(struct parse_ctx *ctx, const char *s)
{
	char name[SG_DOMAIN_MAX + 1];
	char reason[256];
	bool wildcard = false;

	if (check_wildcard_place(ctx, s) != 0)
		return -1;
	if (sg_domain_normalize(s, true, name, reason, sizeof(reason)) != 0) {
		set_error(ctx->err, ctx->errlen, "filter.domains: %s", reason);
		return -1;
	}

	wildcard = strncmp(name, "*.", 2) == 0;
	if (wildcard ? mt_table_put(&ctx->f->wildcards, name + 2, NULL, NULL) < 0
		     : mt_table_put(&ctx->f->exact, name, NULL, NULL) < 0) {
		set_error(ctx->err, ctx->errlen,
			  "filter.domains: out of memory while storing the patterns");
		return -1;
	}
	return 0;
}

static int parse_domains(struct parse_ctx *ctx, const json_t *v)
{
	char what[64];
	size_t i = 0;
	const json_t *item = NULL;

	if (check_list(ctx, "domains", v) != 0)
		return -1;
	if (json_array_size(v) > MT_MAX_DOMAINS) {
		set_error(ctx->err, ctx->errlen,
			  "filter.domains: %zu patterns is more than the maximum of %d; split the list across several subscriptions",
			  json_array_size(v), MT_MAX_DOMAINS);
		return -1;
	}

	json_array_foreach(v, i, item) {
		const char *s = NULL;

		snprintf(what, sizeof(what), "filter.domains[%zu]", i);
		s = string_value(ctx, item, what);
		if (!s || add_domain_pattern(ctx, s) != 0)
			return -1;
	}
	ctx->f->has_domains = true;
	return 0;
}

struct member_rule {
	const char *name;
	int (*parse)(struct parse_ctx *ctx, const json_t *v);
};

static const struct member_rule member_rules[] = {
	{ "domains", parse_domains },
	{ "event_types", parse_event_types },
	{ "stages", parse_stages },
	{ "proxy_types", parse_proxy_types },
	{ "regions", parse_regions },
	{ "actions", parse_actions },
	{ "confidences", parse_confidences },
	{ "min_confidence", parse_min_confidence },
	{ "threat_only", parse_threat_only },
};

static int parse_member(struct parse_ctx *ctx, const char *key,
			const json_t *v)
{
	char quoted[QUOTE_MAX + 4];
	size_t count = sizeof(member_rules) / sizeof(member_rules[0]);

	for (size_t i = 0; i < count; i++) {
		if (strcmp(member_rules[i].name, key) == 0)
			return member_rules[i].parse(ctx, v);
	}
	quote(key, quoted);
	set_error(ctx->err, ctx->errlen,
		  "filter: unknown field \"%s\"; the fields are domains, event_types, stages, proxy_types, regions, actions, confidences, min_confidence and threat_only",
		  quoted);
	return -1;
}

/* Folds confidences, min_confidence and threat_only into one mask. */
static int combine_confidence(struct parse_ctx *ctx)
{
	const uint32_t valid = (1u << SG_CONFIDENCE_COUNT) - 1u;
	uint32_t mask = ctx->f->confidences & ctx->min_confidence &
			ctx->threat_only;

	if (mask != MASK_ANY && (mask & valid) == 0) {
		set_error(ctx->err, ctx->errlen,
			  "filter.confidences: no listed confidence reaches min_confidence or threat_only, so the filter matches nothing; drop one of these fields");
		return -1;
	}
	ctx->f->confidences = mask;
	return 0;
}

static mt_filter *filter_new(void)
{
	mt_filter *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->event_types = MASK_ANY;
	f->stages = MASK_ANY;
	f->proxy_types = MASK_ANY;
	f->actions = MASK_ANY;
	f->confidences = MASK_ANY;
	mt_table_init(&f->exact, true);
	mt_table_init(&f->wildcards, true);
	mt_table_init(&f->tenant, true);
	return f;
}

int mt_filter_parse(const json_t *obj, mt_filter **out, char *err,
		    size_t errlen)
{
	struct parse_ctx ctx = { NULL, err, errlen, MASK_ANY, MASK_ANY };
	const char *key = NULL;
	json_t *value = NULL;
	int rc = -1;

	*out = NULL;
	if (obj && !json_is_object(obj)) {
		set_error(err, errlen, "filter: expected a JSON object, got %s",
			  json_kind(obj));
		goto out;
	}
	ctx.f = filter_new();
	if (!ctx.f) {
		set_error(err, errlen, "filter: out of memory");
		goto out;
	}

	if (obj) {
		/* json_object_foreach takes a non-const object but only reads. */
		json_object_foreach((json_t *)obj, key, value) {
			if (parse_member(&ctx, key, value) != 0)
				goto out;
		}
	}
	if (combine_confidence(&ctx) != 0)
		goto out;

	*out = ctx.f;
	ctx.f = NULL;
	rc = 0;

out:
	mt_filter_free(ctx.f);
	return rc;
}

void mt_filter_free(mt_filter *f)
{
	if (!f)
		return;
	mt_table_clear(&f->exact);
	mt_table_clear(&f->wildcards);
	mt_table_clear(&f->tenant);
	free(f);
}

static bool mask_has(uint32_t mask, unsigned value)
{
	if (mask == MASK_ANY)
		return true;
	return value < 32 && (mask >> value) & 1u;
}

static bool region_matches(const mt_filter *f, const char region[3])
{
	int bit = region_bit(region);

	return bit >= 0 && (f->regions[bit / 64] >> (bit % 64)) & 1u;
}

void mt_domain_probe_init(struct mt_domain_probe *probe,
			  const char domain[SG_DOMAIN_MAX + 1])
{
	probe->valid = memchr(domain, '\0', SG_DOMAIN_MAX + 1) != NULL;
	probe->name = domain;
	probe->nsuffixes = 0;
	if (!probe->valid)
		return;
	probe->hash = mt_hash_string(domain);
	for (const char *dot = strchr(domain, '.');
	     dot && probe->nsuffixes < MT_MAX_SUFFIXES;
	     dot = strchr(dot + 1, '.')) {
		probe->suffixes[probe->nsuffixes] = dot + 1;
		probe->suffix_hashes[probe->nsuffixes] = mt_hash_string(dot + 1);
		probe->nsuffixes++;
	}
}

static bool in_set(const struct mt_table *set,
		   const struct mt_domain_probe *probe)
{
	return mt_table_find_hashed(set, probe->name, probe->hash) != NULL;
}

/* Looks up the name, then each proper suffix after a dot. */
static bool domain_matches(const mt_filter *f,
			   const struct mt_domain_probe *probe)
{
	if (in_set(&f->exact, probe))
		return true;
	for (size_t i = 0; f->wildcards.count && i < probe->nsuffixes; i++) {
		if (mt_table_find_hashed(&f->wildcards, probe->suffixes[i],
					 probe->suffix_hashes[i]))
			return true;
	}
	return false;
}

/* Checks every field except the domain-related ones. */
static bool fields_match(const mt_filter *f, const struct sg_signal *s)
{
	if (!mask_has(f->event_types, s->event_type) ||
	    !mask_has(f->stages, s->stage) ||
	    !mask_has(f->proxy_types, s->proxy_type) ||
	    !mask_has(f->actions, s->action) ||
	    !mask_has(f->confidences, s->confidence))
		return false;
	return !f->has_regions || region_matches(f, s->region);
}

bool mt_filter_match_probe(const mt_filter *f, const struct sg_signal *s,
			   const struct mt_domain_probe *probe,
			   const struct mt_table *known)
{
	if (!fields_match(f, s))
		return false;
	if (!f->has_tenant && !f->has_domains)
		return true;
	if (!probe->valid)
		return false;
	if (f->has_tenant && known != &f->tenant && !in_set(&f->tenant, probe))
		return false;
	if (f->has_domains && known != &f->exact && !domain_matches(f, probe))
		return false;
	return true;
}

bool mt_filter_match(const mt_filter *f, const struct sg_signal *s)
{
	struct mt_domain_probe probe;

	if (!fields_match(f, s))
		return false;
	if (!f->has_tenant && !f->has_domains)
		return true;
	mt_domain_probe_init(&probe, s->domain);
	return mt_filter_match_probe(f, s, &probe, NULL);
}

/*
 * Normalises one tenant name of len bytes at item and adds it to set.
 * Returns 0 or -1 with an error.
 */
static int add_tenant_name(struct mt_table *set, const char *item,
			   size_t len, char *err, size_t errlen)
{
	char raw[SG_DOMAIN_MAX + 2];
	char name[SG_DOMAIN_MAX + 1];
	char reason[256];

	if (len == 0) {
		set_error(err, errlen,
			  "tenant domains: the list has an empty name; remove the extra comma");
		return -1;
	}
	if (len >= sizeof(raw)) {
		set_error(err, errlen,
			  "tenant domains: a name is longer than %d bytes",
			  SG_DOMAIN_MAX);
		return -1;
	}
	memcpy(raw, item, len);
	raw[len] = '\0';
	if (sg_domain_normalize(raw, false, name, reason, sizeof(reason)) != 0) {
		set_error(err, errlen, "tenant domains: %s", reason);
		return -1;
	}
	if (mt_table_put(set, name, NULL, NULL) < 0) {
		set_error(err, errlen, "tenant domains: out of memory");
		return -1;
	}
	return 0;
}

/* Parses "a.com, b.org" into set. Returns 0 or -1 with an error. */
static int parse_tenant_list(const char *list, struct mt_table *set,
			     char *err, size_t errlen)
{
	const char *p = list;
	size_t names = 0;

	if (strnlen(list, RESTRICT_INPUT_MAX + 1) > RESTRICT_INPUT_MAX) {
		set_error(err, errlen,
			  "tenant domains: the list is longer than %zu bytes",
			  RESTRICT_INPUT_MAX);
		return -1;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (++names > MT_MAX_DOMAINS) {
			set_error(err, errlen,
				  "tenant domains: more than the maximum of %d names",
				  MT_MAX_DOMAINS);
			return -1;
		}
		if (add_tenant_name(set, p, (size_t)(end - p), err, errlen) != 0)
			return -1;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

int mt_filter_restrict(mt_filter *f, const char *tenant_domains, char *err,
		       size_t errlen)
{
	struct mt_table fresh;
	struct mt_slot *slot = NULL;
	size_t pos = 0;
	int rc = -1;

	mt_table_init(&fresh, true);
	if (!tenant_domains) {
		set_error(err, errlen, "tenant domains: no list given");
		goto out;
	}
	if (parse_tenant_list(tenant_domains, &fresh, err, errlen) != 0)
		goto out;

	/* A second restriction narrows further: keep names in both lists. */
	if (f->has_tenant) {
		struct mt_table both;

		mt_table_init(&both, true);
		while ((slot = mt_table_next(&fresh, &pos))) {
			if (mt_table_find(&f->tenant, slot->key) &&
			    mt_table_put(&both, slot->key, NULL, NULL) < 0) {
				mt_table_clear(&both);
				set_error(err, errlen,
					  "tenant domains: out of memory");
				goto out;
			}
		}
		mt_table_clear(&fresh);
		fresh = both;
	}

	mt_table_clear(&f->tenant);
	f->tenant = fresh;
	mt_table_init(&fresh, true);
	f->has_tenant = true;
	rc = 0;

out:
	mt_table_clear(&fresh);
	return rc;
}

bool mt_filter_domain_patterns(const mt_filter *f,
			       const struct mt_table **exact,
			       const struct mt_table **wildcards)
{
	if (f->has_tenant || !f->has_domains || f->wildcards.count == 0)
		return false;
	*exact = &f->exact;
	*wildcards = &f->wildcards;
	return true;
}

void mt_filter_field_masks(const mt_filter *f, struct mt_field_masks *out)
{
	out->event_types = f->event_types;
	out->stages = f->stages;
	out->proxy_types = f->proxy_types;
	out->actions = f->actions;
	out->confidences = f->confidences;
	out->has_regions = f->has_regions;
	out->regions = f->regions;
}

int mt_region_bit(const char region[3])
{
	return region_bit(region);
}

const struct mt_table *mt_filter_required_names(const mt_filter *f)
{
	const struct mt_table *best = NULL;

	if (f->has_tenant)
		best = &f->tenant;
	if (f->has_domains && f->wildcards.count == 0 &&
	    (!best || f->exact.count < best->count))
		best = &f->exact;
	return best;
}
