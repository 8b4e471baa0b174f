/*
 * Private to the matcher library: an open-addressing hash table with
 * linear probing, used for domain sets, the index's domain buckets and the
 * index's filter-to-entry map.
 *
 * A table has either string keys, which it copies and frees, or pointer
 * keys, which it compares by address and never dereferences. Removal shifts
 * later entries back instead of leaving tombstones, so many inserts and
 * removals never fill a table with dead slots.
 *
 * Hashes are seeded once per process from getrandom(), so that a client
 * cannot prepare domain lists that all land in one probe chain.
 * NOTE: the hash is not a keyed PRF like SipHash; the seed only stops
 * collisions computed offline.
 */
#ifndef CANARY_MATCHER_TABLE_H
#define CANARY_MATCHER_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mt_slot {
	const void *key;        /* NULL marks an empty slot */
	void *value;
	uint64_t hash;
};

struct mt_table {
	struct mt_slot *slots;
	size_t cap;             /* 0 or a power of two */
	size_t count;
	bool string_keys;
};

/* Starts an empty table; it allocates nothing until the first insert. */
void mt_table_init(struct mt_table *t, bool string_keys);

/* Frees the slots and the copied keys; values are the caller's. */
void mt_table_clear(struct mt_table *t);

/*
 * Inserts key with value. Returns 1 when the key was already present (its
 * value is kept), 0 when inserted, -1 when out of memory. When stored_key
 * is not NULL it receives the table's own copy of the key, which stays
 * valid until the key is removed.
 */
int mt_table_put(struct mt_table *t, const void *key, void *value,
		 const void **stored_key);

/* Returns the slot holding key, or NULL. */
struct mt_slot *mt_table_find(const struct mt_table *t, const void *key);

/*
 * Like mt_table_find for a string table, with hash already computed by
 * mt_hash_string(key), so one name can be looked up in many tables.
 */
struct mt_slot *mt_table_find_hashed(const struct mt_table *t,
				     const char *key, uint64_t hash);

/* Removes key and frees its copy. Returns true when it was present. */
bool mt_table_remove(struct mt_table *t, const void *key);

/*
 * Iterates: starts with *pos = 0 and returns each filled slot once, then
 * NULL. The table must not change during the walk.
 */
struct mt_slot *mt_table_next(const struct mt_table *t, size_t *pos);

/* Hashes a NUL-terminated string with the process seed. */
uint64_t mt_hash_string(const char *s);

#endif
