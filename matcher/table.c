/*
 * Open-addressing hash table for the matcher; the rules are in table.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "table.h"

#define TABLE_MIN_CAP 8

static uint64_t hash_seed;
static pthread_once_t hash_seed_once = PTHREAD_ONCE_INIT;

/* Final mixing step of MurmurHash3 (fmix64): spreads every input bit. */
static uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static void seed_init(void)
{
	uint64_t seed = 0;
	struct timespec now;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed)) {
		/* Why: early in boot the pool may not be ready; a time-based
		 * seed still differs between runs. */
		clock_gettime(CLOCK_REALTIME, &now);
		seed = (uint64_t)now.tv_sec * 1000000007ULL ^
		       (uint64_t)now.tv_nsec;
	}
	hash_seed = mix64(seed ^ 0x9e3779b97f4a7c15ULL);
}

static uint64_t seed_get(void)
{
	pthread_once(&hash_seed_once, seed_init);
	return hash_seed;
}

uint64_t mt_hash_string(const char *s)
{
	/* FNV-1a over the bytes, started from the seed, then mixed. */
	uint64_t h = seed_get() ^ 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return mix64(h);
}

static uint64_t hash_key(const struct mt_table *t, const void *key)
{
	if (t->string_keys)
		return mt_hash_string(key);
	return mix64((uint64_t)(uintptr_t)key ^ seed_get());
}

static bool keys_equal(const struct mt_table *t, const struct mt_slot *slot,
		       const void *key, uint64_t hash)
{
	if (slot->hash != hash)
		return false;
	if (t->string_keys)
		return strcmp(slot->key, key) == 0;
	return slot->key == key;
}

void mt_table_init(struct mt_table *t, bool string_keys)
{
	memset(t, 0, sizeof(*t));
	t->string_keys = string_keys;
}

void mt_table_clear(struct mt_table *t)
{
	if (t->string_keys) {
		for (size_t i = 0; i < t->cap; i++)
			free((void *)t->slots[i].key);
	}
	free(t->slots);
	t->slots = NULL;
	t->cap = 0;
	t->count = 0;
}

/* Places a slot known to be absent into slots (no copy, no count). */
static void place(struct mt_slot *slots, size_t cap, const struct mt_slot *s)
{
	size_t mask = cap - 1;
	size_t i = (size_t)s->hash & mask;

	while (slots[i].key)
		i = (i + 1) & mask;
	slots[i] = *s;
}

static int grow(struct mt_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : TABLE_MIN_CAP;
	struct mt_slot *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -1;
	for (size_t i = 0; i < t->cap; i++) {
		if (t->slots[i].key)
			place(slots, cap, &t->slots[i]);
	}
	free(t->slots);
	t->slots = slots;
	t->cap = cap;
	return 0;
}

static struct mt_slot *find_with_hash(const struct mt_table *t,
				      const void *key, uint64_t hash)
{
	size_t mask = t->cap - 1;

	for (size_t i = (size_t)hash & mask; t->slots[i].key;
	     i = (i + 1) & mask) {
		if (keys_equal(t, &t->slots[i], key, hash))
			return &t->slots[i];
	}
	return NULL;
}

struct mt_slot *mt_table_find(const struct mt_table *t, const void *key)
{
	if (t->count == 0)
		return NULL;
	return find_with_hash(t, key, hash_key(t, key));
}

struct mt_slot *mt_table_find_hashed(const struct mt_table *t,
				     const char *key, uint64_t hash)
{
	if (t->count == 0)
		return NULL;
	return find_with_hash(t, key, hash);
}

int mt_table_put(struct mt_table *t, const void *key, void *value,
		 const void **stored_key)
{
	struct mt_slot *found = mt_table_find(t, key);
	struct mt_slot slot = { NULL, value, 0 };

	if (found) {
		if (stored_key)
			*stored_key = found->key;
		return 1;
	}

	/* Keep the load at or under 3/4 so probe chains stay short. */
	if ((t->count + 1) * 4 > t->cap * 3 && grow(t) != 0)
		return -1;

	slot.hash = hash_key(t, key);
	slot.key = t->string_keys ? strdup(key) : key;
	if (!slot.key)
		return -1;
	place(t->slots, t->cap, &slot);
	t->count++;
	if (stored_key)
		*stored_key = slot.key;
	return 0;
}

bool mt_table_remove(struct mt_table *t, const void *key)
{
	struct mt_slot *found = mt_table_find(t, key);
	size_t mask = t->cap - 1;
	size_t hole = 0;
	size_t j = 0;

	if (!found)
		return false;
	if (t->string_keys)
		free((void *)found->key);
	hole = (size_t)(found - t->slots);

	/*
	 * Backward-shift deletion: walk the probe chain after the hole and
	 * move back every entry whose home slot is not in (hole, j], so no
	 * lookup ever stops early at the new gap.
	 */
	for (j = (hole + 1) & mask; t->slots[j].key; j = (j + 1) & mask) {
		size_t home = (size_t)t->slots[j].hash & mask;
		bool stays = hole <= j ? (hole < home && home <= j)
				       : (hole < home || home <= j);

		if (stays)
			continue;
		t->slots[hole] = t->slots[j];
		hole = j;
	}
	t->slots[hole].key = NULL;
	t->slots[hole].value = NULL;
	t->count--;
	return true;
}

struct mt_slot *mt_table_next(const struct mt_table *t, size_t *pos)
{
	while (*pos < t->cap) {
		struct mt_slot *s = &t->slots[(*pos)++];

		if (s->key)
			return s;
	}
	return NULL;
}
