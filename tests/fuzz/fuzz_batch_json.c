/*
 * Ingest bodies in JSON and NDJSON: sg_batch_parse must accept or reject
 * any bytes without a crash or leak, and every accepted signal must come
 * back unchanged through its JSON text (what subscribers receive).
 */
#include <stdint.h>

#include "signal/batch.h"
#include "fuzz_common.h"

#define FUZZ_MAX_ITEMS 1000

static void roundtrip_json(const struct sg_signal *s)
{
	char text[4096];
	size_t len = sg_to_json_text(s, text, sizeof(text));
	struct sg_batch again = { NULL, 0 };
	struct sg_batch_report *rep = calloc(1, sizeof(*rep));

	FUZZ_ASSERT(rep);
	FUZZ_ASSERT(len < sizeof(text));
	FUZZ_ASSERT(sg_batch_parse(text, len, SG_FORMAT_JSON, 1, &again, rep) == 0);
	FUZZ_ASSERT(again.count == 1);
	FUZZ_ASSERT(fuzz_same_signal(s, &again.items[0]));
	sg_batch_free(&again);
	free(rep);
}

static void parse_as(const uint8_t *data, size_t size, enum sg_format fmt)
{
	struct sg_batch batch = { NULL, 0 };
	struct sg_batch_report *rep = calloc(1, sizeof(*rep));

	FUZZ_ASSERT(rep);
	if (sg_batch_parse((const char *)data, size, fmt, FUZZ_MAX_ITEMS, &batch,
			   rep) == 0) {
		FUZZ_ASSERT(batch.count >= 1 && batch.count <= FUZZ_MAX_ITEMS);
		for (size_t i = 0; i < batch.count; i++) {
			fuzz_check_signal(&batch.items[i]);
			roundtrip_json(&batch.items[i]);
		}
	} else {
		FUZZ_ASSERT(batch.items == NULL && batch.count == 0);
		FUZZ_ASSERT(rep->total >= 1);
		FUZZ_ASSERT(rep->listed <= SG_BATCH_MAX_PROBLEMS);
		FUZZ_ASSERT(rep->listed <= rep->total);
		for (size_t i = 0; i < rep->listed; i++) {
			FUZZ_ASSERT(memchr(rep->problems[i].error.field, '\0',
					   sizeof(rep->problems[i].error.field)));
			FUZZ_ASSERT(memchr(rep->problems[i].error.reason, '\0',
					   sizeof(rep->problems[i].error.reason)));
		}
	}
	sg_batch_free(&batch);
	free(rep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_as(data, size, SG_FORMAT_JSON);
	parse_as(data, size, SG_FORMAT_NDJSON);
	return 0;
}
