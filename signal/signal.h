/*
 * The signal model: one observed piece of attacker behaviour.
 *
 * This library owns every rule about a signal's fields: the allowed values,
 * the older field names that ingest still accepts, domain normalisation
 * (lower case, no trailing dot, internationalised names as A-labels),
 * RFC 3339 timestamps, and the two encodings (JSON for the wire and REST,
 * MessagePack for storage and the binary wire format).
 *
 * Only the fields declared in struct sg_signal exist. Parsing drops every
 * other member of an ingested object, so personal data such as user names,
 * passwords or raw addresses can never be stored or forwarded.
 */
#ifndef CANARY_SIGNAL_H
#define CANARY_SIGNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <msgpack.h>

enum sg_event_type {
	SG_EVENT_CREDENTIAL_TESTING,
	SG_EVENT_ACCOUNT_PROBE,
	SG_EVENT_SIM_RECON,
	SG_EVENT_FRAUD_TEST,
	SG_EVENT_COUNT
};

/* Ordered: a larger value is a higher confidence. */
enum sg_confidence {
	SG_CONFIDENCE_LOW,
	SG_CONFIDENCE_MEDIUM,
	SG_CONFIDENCE_HIGH,
	SG_CONFIDENCE_COUNT
};

enum sg_proxy_type {
	SG_PROXY_DATACENTER,
	SG_PROXY_RESIDENTIAL,
	SG_PROXY_MOBILE,
	SG_PROXY_TOR,
	SG_PROXY_COUNT
};

enum sg_stage {
	SG_STAGE_TESTING,
	SG_STAGE_ATTACK,
	SG_STAGE_COUNT
};

enum sg_action {
	SG_ACTION_MONITOR,
	SG_ACTION_STEP_UP,
	SG_ACTION_BLOCK,
	SG_ACTION_ALERT_SOC,
	SG_ACTION_COUNT
};

/* Longest domain name in presentation form, without the trailing dot. */
#define SG_DOMAIN_MAX 253
/* Longest optional identifier (sensor, campaign_id, infra_id). */
#define SG_ID_MAX 64

/* sg_signal.credential_leaked when the field is absent. */
#define SG_BOOL_ABSENT (-1)

struct sg_signal {
	uint64_t seq;           /* 0 until the store assigns one */
	int64_t observed_us;    /* `timestamp`: microseconds since 1970, UTC */
	int64_t received_us;    /* set by the server at ingest; not on the wire */
	uint8_t event_type;     /* enum sg_event_type */
	uint8_t confidence;     /* enum sg_confidence */
	uint8_t proxy_type;     /* enum sg_proxy_type */
	uint8_t stage;          /* enum sg_stage */
	uint8_t action;         /* enum sg_action */
	int8_t credential_leaked; /* 0, 1 or SG_BOOL_ABSENT */
	char region[3];         /* ISO 3166-1 alpha-2, "EU" or "ZZ" */
	char domain[SG_DOMAIN_MAX + 1];      /* A-label form, lower case */
	char sensor[SG_ID_MAX + 1];          /* "" when absent */
	char campaign_id[SG_ID_MAX + 1];     /* "" when absent */
	char infra_id[SG_ID_MAX + 1];        /* "" when absent */
};

/* The field and reason of one rejected item. */
struct sg_error {
	char field[32];         /* the JSON member name, or "" for the item */
	char reason[160];       /* a sentence naming the value and the fix */
};

/* Names on the wire, indexed by the enums above. */
extern const char *const sg_event_type_names[SG_EVENT_COUNT];
extern const char *const sg_confidence_names[SG_CONFIDENCE_COUNT];
extern const char *const sg_proxy_type_names[SG_PROXY_COUNT];
extern const char *const sg_stage_names[SG_STAGE_COUNT];
extern const char *const sg_action_names[SG_ACTION_COUNT];

/* Most bytes of a rejected value that an error message quotes. */
#define SG_QUOTE_MAX 40

/*
 * Copies at most SG_QUOTE_MAX bytes of in into out (cap bytes, NUL-ended)
 * for an error message: printable ASCII is kept, every other byte as well
 * as '"' and '\\' becomes '?', and a cut value ends in "...".
 */
void sg_quote(const char *in, size_t len, char *out, size_t cap);

/* Receives one problem of a rejected item; the decoders below call it for
 * each problem they find, in the order found. */
typedef void (*sg_problem_fn)(void *ctx, const struct sg_error *e);

/* Returns the index of name in names[0..count-1], or -1. Case-sensitive. */
int sg_enum_lookup(const char *const *names, int count, const char *name);

/*
 * Fills s from one ingested JSON object. Accepts the older names
 * `attack_confidence`, `source_country` and `infrastructure` and the
 * combined actions `monitor_or_step_up[_auth]`; ignores unknown members,
 * `id` and `seq`. Returns 0, or -1 with err holding the item's first
 * problem; s is then undefined.
 * seq and received_us are left 0.
 */
int sg_from_json(const json_t *obj, struct sg_signal *s, struct sg_error *err);

/* Like sg_from_json, passing every problem of the item to add. */
int sg_from_json_each(const json_t *obj, struct sg_signal *s,
		      sg_problem_fn add, void *ctx);

/* Returns a new JSON object with every present field, `id` and `seq`. */
json_t *sg_to_json(const struct sg_signal *s);

/*
 * Writes the signal as compact JSON, fields in a fixed order, into buf.
 * Returns the length, or the length it needs when it is cap or more
 * (like snprintf). Never writes more than cap bytes.
 */
size_t sg_to_json_text(const struct sg_signal *s, char *buf, size_t cap);

/*
 * Packs the signal as a MessagePack map with the JSON field names and JSON
 * types, plus `received_us` when with_received is true (the stored form).
 * `seq` is an unsigned integer, `timestamp` the same RFC 3339 string as in
 * JSON, `credential_leaked` a boolean, `received_us` a signed integer.
 * Returns 0, or -1 when the packer's writer failed.
 */
int sg_to_msgpack(const struct sg_signal *s, msgpack_packer *pk,
		  bool with_received);

/*
 * Fills s from a MessagePack map, with the same rules as sg_from_json
 * (stored records and `application/msgpack` ingest). Field values must be
 * strings (a boolean for `credential_leaked`); map keys must be strings and
 * unique. Unlike sg_from_json it also reads `seq` (unsigned integer) and
 * `received_us` (integer) when present, so stored records come back whole;
 * ingest callers overwrite both. Returns 0, or -1 with err holding the
 * item's first problem.
 */
int sg_from_msgpack(const msgpack_object *obj, struct sg_signal *s,
		    struct sg_error *err);

/* Like sg_from_msgpack, passing every problem of the item to add. */
int sg_from_msgpack_each(const msgpack_object *obj, struct sg_signal *s,
			 sg_problem_fn add, void *ctx);

/*
 * Normalises a domain name into out (SG_DOMAIN_MAX + 1 bytes): lower case,
 * trailing dot removed, U-labels converted to A-labels (IDNA 2008 with
 * UTS #46 mapping through libidn2), each label 1..63 letters, digits or
 * hyphens, not starting or ending with a hyphen, at least two labels.
 * With allow_wildcard, a leading "*." is kept. Returns 0, or -1 with a
 * reason in err (errlen bytes).
 */
int sg_domain_normalize(const char *in, bool allow_wildcard, char *out,
			char *err, size_t errlen);

/*
 * Parses an RFC 3339 date-time with a `Z` or a numeric offset (a time
 * without one is rejected, never read as local time) into microseconds
 * since 1970 UTC. Rejects impossible dates. Fraction digits past the sixth
 * are cut (at most 9). A leap second is accepted only at 23:59:60 UTC and
 * stored as 23:59:59.999999. Returns 0, or -1 with *us unchanged.
 */
int sg_time_parse(const char *text, int64_t *us);

/*
 * Formats microseconds as RFC 3339 UTC with `Z`; buf needs 32 bytes. The
 * fraction is omitted for whole seconds, 3 digits for whole milliseconds,
 * else 6 digits.
 */
void sg_time_format(int64_t us, char buf[32]);

/* Returns the current wall-clock time in microseconds since 1970. */
int64_t sg_now_us(void);

#endif
