/*
 * WebSocket client messages as canaryd reads them: the strict JSON parser
 * shared with ingest, then the members of auth and subscribe messages
 * (token, id, since_seq, since_time, filter) through the same functions
 * the stream calls (auth_parse_bearer, sg_time_parse, mt_filter_parse,
 * mt_filter_restrict). The stream's own checks of id and since_seq are
 * static in server/stream.c and are covered by the integration tests.
 */
#include <stdint.h>

#include "signal/batch.h"
#include "filter.h"
#include "server/keys.h"
#include "fuzz_common.h"

static void check_token(const char *token)
{
	char header[KEY_TOKEN_MAX + 64];
	char parsed[KEY_TOKEN_MAX + 1];
	enum auth_result r;

	if (strlen(token) > KEY_TOKEN_MAX)
		return;
	snprintf(header, sizeof(header), "Bearer %s", token);
	r = auth_parse_bearer(header, parsed);
	if (r == AUTH_OK)
		FUZZ_ASSERT(strlen(parsed) <= KEY_TOKEN_MAX && parsed[0]);
	r = auth_parse_bearer(token, parsed);
	FUZZ_ASSERT(r == AUTH_OK || r == AUTH_MISSING || r == AUTH_MALFORMED);
}

static void check_subscribe(const json_t *msg)
{
	const json_t *jtime = json_object_get(msg, "since_time");
	mt_filter *filter = NULL;
	char err[256];
	int64_t since = 0;

	if (json_is_string(jtime) &&
	    sg_time_parse(json_string_value(jtime), &since) == 0) {
		char text[32];
		int64_t again = 0;

		/* A parsed time must print and parse back to the same value. */
		sg_time_format(since, text);
		FUZZ_ASSERT(sg_time_parse(text, &again) == 0);
		FUZZ_ASSERT(again == since);
	}
	if (mt_filter_parse(json_object_get(msg, "filter"), &filter, err,
			    sizeof(err)) != 0)
		return;
	FUZZ_ASSERT(mt_filter_restrict(filter, "bank.example", err, sizeof(err)) == 0);
	mt_filter_free(filter);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[200];
	json_t *msg = sg_json_parse_strict((const char *)data, size, err, sizeof(err));
	const char *op;

	if (!msg)
		return 0;
	if (!json_is_object(msg)) {
		json_decref(msg);
		return 0;
	}
	op = json_string_value(json_object_get(msg, "op"));
	if (op && !strcmp(op, "auth") &&
	    json_is_string(json_object_get(msg, "token")))
		check_token(json_string_value(json_object_get(msg, "token")));
	else if (op && !strcmp(op, "subscribe"))
		check_subscribe(msg);
	json_decref(msg);
	return 0;
}
