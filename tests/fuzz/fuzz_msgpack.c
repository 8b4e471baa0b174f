/*
 * MessagePack: ingest bodies (application/msgpack) through sg_batch_parse,
 * and stored records through the store's decoder (st__value_check, then
 * msgpack-c, then sg_from_msgpack). Accepted signals must survive a
 * MessagePack round trip.
 */
#include <stdint.h>

#include <msgpack.h>

#include "signal/batch.h"
#include "store_private.h"
#include "fuzz_common.h"

#define FUZZ_MAX_ITEMS 1000

static void roundtrip_msgpack(const struct sg_signal *s)
{
	msgpack_sbuffer buf;
	msgpack_packer pk;
	msgpack_unpacked u;
	struct sg_signal back;
	struct sg_error err;
	size_t off = 0;

	msgpack_sbuffer_init(&buf);
	msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
	FUZZ_ASSERT(sg_to_msgpack(s, &pk, true) == 0);
	msgpack_unpacked_init(&u);
	FUZZ_ASSERT(msgpack_unpack_next(&u, buf.data, buf.size, &off) ==
		    MSGPACK_UNPACK_SUCCESS);
	memset(&back, 0, sizeof(back));
	FUZZ_ASSERT(sg_from_msgpack(&u.data, &back, &err) == 0);
	FUZZ_ASSERT(fuzz_same_signal(s, &back));
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&buf);
}

static void parse_ingest(const uint8_t *data, size_t size)
{
	struct sg_batch batch = { NULL, 0 };
	struct sg_batch_report *rep = calloc(1, sizeof(*rep));

	FUZZ_ASSERT(rep);
	if (sg_batch_parse((const char *)data, size, SG_FORMAT_MSGPACK,
			   FUZZ_MAX_ITEMS, &batch, rep) == 0) {
		FUZZ_ASSERT(batch.count >= 1 && batch.count <= FUZZ_MAX_ITEMS);
		for (size_t i = 0; i < batch.count; i++) {
			fuzz_check_signal(&batch.items[i]);
			roundtrip_msgpack(&batch.items[i]);
		}
	} else {
		FUZZ_ASSERT(batch.count == 0 && rep->total >= 1);
		FUZZ_ASSERT(rep->listed <= rep->total);
	}
	sg_batch_free(&batch);
	free(rep);
}

static void decode_stored(const uint8_t *data, size_t size)
{
	MDB_val v = { size, (void *)data };
	struct sg_signal s;

	memset(&s, 0, sizeof(s));
	if (st__signal_decode(&v, 42, &s) == ST_OK) {
		FUZZ_ASSERT(s.seq == 42);
		fuzz_check_signal(&s);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_ingest(data, size);
	decode_stored(data, size);
	return 0;
}
