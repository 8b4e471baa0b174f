/*
 * Stored values: the size check that runs before msgpack-c unpacks a value,
 * and the stored form of a signal (sg_to_msgpack with received_us, which
 * sg_from_msgpack reads back).
 */
#include <stdint.h>

#include "store_private.h"

enum st_mp_kind {
	ST_MP_BAD,      /* 0xc1, never used */
	ST_MP_BYTES,    /* a length field, then that many bytes plus extra */
	ST_MP_ARRAY,    /* a count field, then count objects */
	ST_MP_MAP       /* a count field, then 2 * count objects */
};

/* Header of the types 0xc0..0xdf: count or length field width, and kind. */
struct st_mp_head {
	uint8_t width;  /* bytes of the big-endian length or count field */
	uint8_t extra;  /* bytes that follow besides the counted ones */
	uint8_t kind;   /* enum st_mp_kind */
};

static const struct st_mp_head st_mp_heads[0x20] = {
	[0x00] = { 0, 0, ST_MP_BYTES },         /* nil */
	[0x01] = { 0, 0, ST_MP_BAD },
	[0x02] = { 0, 0, ST_MP_BYTES },         /* false */
	[0x03] = { 0, 0, ST_MP_BYTES },         /* true */
	[0x04] = { 1, 0, ST_MP_BYTES },         /* bin 8 */
	[0x05] = { 2, 0, ST_MP_BYTES },
	[0x06] = { 4, 0, ST_MP_BYTES },
	[0x07] = { 1, 1, ST_MP_BYTES },         /* ext 8: type byte, data */
	[0x08] = { 2, 1, ST_MP_BYTES },
	[0x09] = { 4, 1, ST_MP_BYTES },
	[0x0a] = { 0, 4, ST_MP_BYTES },         /* float 32 */
	[0x0b] = { 0, 8, ST_MP_BYTES },
	[0x0c] = { 0, 1, ST_MP_BYTES },         /* uint 8 */
	[0x0d] = { 0, 2, ST_MP_BYTES },
	[0x0e] = { 0, 4, ST_MP_BYTES },
	[0x0f] = { 0, 8, ST_MP_BYTES },
	[0x10] = { 0, 1, ST_MP_BYTES },         /* int 8 */
	[0x11] = { 0, 2, ST_MP_BYTES },
	[0x12] = { 0, 4, ST_MP_BYTES },
	[0x13] = { 0, 8, ST_MP_BYTES },
	[0x14] = { 0, 2, ST_MP_BYTES },         /* fixext 1: type byte, data */
	[0x15] = { 0, 3, ST_MP_BYTES },
	[0x16] = { 0, 5, ST_MP_BYTES },
	[0x17] = { 0, 9, ST_MP_BYTES },
	[0x18] = { 0, 17, ST_MP_BYTES },
	[0x19] = { 1, 0, ST_MP_BYTES },         /* str 8 */
	[0x1a] = { 2, 0, ST_MP_BYTES },
	[0x1b] = { 4, 0, ST_MP_BYTES },
	[0x1c] = { 2, 0, ST_MP_ARRAY },         /* array 16 */
	[0x1d] = { 4, 0, ST_MP_ARRAY },
	[0x1e] = { 2, 0, ST_MP_MAP },           /* map 16 */
	[0x1f] = { 4, 0, ST_MP_MAP },
};

/* Describes the header whose type byte is b. */
static struct st_mp_head st_mp_head_of(uint8_t b, uint64_t *inline_n)
{
	*inline_n = 0;
	if (b <= 0x7f || b >= 0xe0)
		return (struct st_mp_head){ 0, 0, ST_MP_BYTES };   /* fixint */
	if (b >= 0xc0)
		return st_mp_heads[b - 0xc0];

	*inline_n = b & 0x0f;
	if (b <= 0x8f)
		return (struct st_mp_head){ 0, 0, ST_MP_MAP };
	if (b <= 0x9f)
		return (struct st_mp_head){ 0, 0, ST_MP_ARRAY };
	*inline_n = b & 0x1f;
	return (struct st_mp_head){ 0, 0, ST_MP_BYTES };           /* fixstr */
}

int st__value_check(const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t pos = 0;
	uint64_t pending = 1;   /* objects still to walk over */

	if (!data || len == 0 || len > ST_VALUE_MAX)
		return ST_ERR_CORRUPT;

	/*
	 * Each pending object takes at least one byte, so a count larger
	 * than the bytes left is a lie. Checking that keeps pending below
	 * len, and msgpack-c's allocations below a small multiple of len.
	 */
	while (pending > 0) {
		struct st_mp_head h;
		uint64_t n = 0;
		uint64_t objects = 0;

		if (pos >= len)
			return ST_ERR_CORRUPT;
		h = st_mp_head_of(p[pos], &n);
		pos++;
		pending--;
		if (h.kind == ST_MP_BAD || len - pos < h.width)
			return ST_ERR_CORRUPT;
		for (unsigned i = 0; i < h.width; i++)
			n = (n << 8) | p[pos + i];
		pos += h.width;

		if (h.kind == ST_MP_BYTES) {
			if (n + h.extra > len - pos)
				return ST_ERR_CORRUPT;
			pos += (size_t)(n + h.extra);
			continue;
		}
		objects = h.kind == ST_MP_MAP ? 2 * n : n;
		if (objects > len - pos)
			return ST_ERR_CORRUPT;
		pending += objects;
	}
	return pos == len ? ST_OK : ST_ERR_CORRUPT;
}

int st__value_unpack(const MDB_val *v, msgpack_unpacked *u)
{
	size_t off = 0;
	msgpack_unpack_return ret;

	if (st__value_check(v->mv_data, v->mv_size) != ST_OK)
		return ST_ERR_CORRUPT;
	ret = msgpack_unpack_next(u, v->mv_data, v->mv_size, &off);
	if (ret != MSGPACK_UNPACK_SUCCESS || off != v->mv_size)
		return ST_ERR_CORRUPT;
	if (u->data.type != MSGPACK_OBJECT_MAP)
		return ST_ERR_CORRUPT;
	return ST_OK;
}

int st__signal_encode(const struct sg_signal *s, msgpack_sbuffer *buf)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
	return sg_to_msgpack(s, &pk, true) == 0 ? ST_OK : ST_ERR_IO;
}

int st__signal_decode(const MDB_val *v, uint64_t seq, struct sg_signal *out)
{
	msgpack_unpacked u;
	struct sg_error err;
	int status;

	msgpack_unpacked_init(&u);

	status = st__value_unpack(v, &u);
	if (status == ST_OK && sg_from_msgpack(&u.data, out, &err) != 0)
		status = ST_ERR_CORRUPT;
	if (status == ST_OK)
		out->seq = seq;

	msgpack_unpacked_destroy(&u);
	return status;
}
