/*
 * canary-sensor's log mapping: one input is several log lines, fed one by
 * one to a mapper so that the per-source state (distinct credential
 * pairs, sessions) is exercised. FUZZ_SENSOR_FORMAT picks the format at
 * build time (one binary per format). Every signal the mapper makes must
 * pass ingest's own checks, and no reason text may quote the input.
 */
#include <stdint.h>

#include "signal/batch.h"
#include "mapping.h"
#include "fuzz_common.h"

#ifndef FUZZ_SENSOR_FORMAT
#error "define FUZZ_SENSOR_FORMAT as SM_FORMAT_COWRIE or SM_FORMAT_OPENCANARY"
#endif

static const uint8_t hmac_key[32] = "fuzz-key-0123456789abcdef-fuzz!";

static void check_signal_object(json_t *sig)
{
	char *text = json_dumps(sig, JSON_COMPACT);
	struct sg_batch batch = { NULL, 0 };
	struct sg_batch_report *rep = calloc(1, sizeof(*rep));

	FUZZ_ASSERT(text && rep);
	/* What the sensor posts, the server must accept. */
	FUZZ_ASSERT(sg_batch_parse(text, strlen(text), SG_FORMAT_JSON, 1, &batch,
				   rep) == 0);
	fuzz_check_signal(&batch.items[0]);
	FUZZ_ASSERT(!json_object_get(sig, "src_ip"));
	FUZZ_ASSERT(!json_object_get(sig, "username"));
	FUZZ_ASSERT(!json_object_get(sig, "password"));
	sg_batch_free(&batch);
	free(rep);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sm_config cfg;
	struct sm_mapper *m = NULL;
	char err[256];
	size_t pos = 0;

	memset(&cfg, 0, sizeof(cfg));
	cfg.format = FUZZ_SENSOR_FORMAT;
	cfg.domain = "bank.example";
	cfg.hmac_key = hmac_key;
	cfg.hmac_key_len = sizeof(hmac_key);
	m = sm_mapper_new(&cfg, err, sizeof(err));
	FUZZ_ASSERT(m);

	while (pos < size) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
		struct sm_output out;
		enum sm_result r;

		memset(&out, 0, sizeof(out));
		r = sm_map_line(m, (const char *)data + pos, len, &out);
		FUZZ_ASSERT(r == SM_SIGNAL || r == SM_NO_SIGNAL ||
			    r == SM_UNMAPPED || r == SM_INVALID);
		FUZZ_ASSERT((r == SM_SIGNAL) == (out.signal != NULL));
		FUZZ_ASSERT(memchr(out.reason, '\0', sizeof(out.reason)));
		if (out.signal)
			check_signal_object(out.signal);
		json_decref(out.signal);
		pos += len + 1;
	}
	sm_mapper_free(m);
	return 0;
}
