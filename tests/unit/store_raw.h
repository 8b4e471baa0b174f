/*
 * Helpers shared by the storage unit tests: writing an entry behind the
 * store's back, and the matcher's rule for domain patterns.
 */
#ifndef CANARY_TEST_STORE_RAW_H
#define CANARY_TEST_STORE_RAW_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <lmdb.h>

/* Writes one raw entry into database db of the closed store in dir.
 * Returns 0, or an LMDB error code. */
static inline int raw_put(const char *dir, const char *db, const void *key,
			  size_t klen, const void *val, size_t vlen)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k = { klen, (void *)key };
	MDB_val v = { vlen, (void *)val };
	int rc;

	rc = mdb_env_create(&env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(env, 16);
	if (rc == 0)
		rc = mdb_env_set_mapsize(env, UINT64_C(64) << 20);
	if (rc == 0)
		rc = mdb_env_open(env, dir, 0, 0600);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, db, 0, &dbi);
	if (rc == 0)
		rc = mdb_put(txn, dbi, &k, &v, 0);
	if (rc == 0) {
		rc = mdb_txn_commit(txn);
		txn = NULL;
	}
	if (txn)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc;
}

/* Returns whether name matches pattern by the matcher's rule: the name
 * itself, or "*." and a suffix strictly below it. */
static inline bool domain_pattern_match(const char *pattern, const char *name)
{
	size_t n = strlen(name);
	size_t s;

	if (strncmp(pattern, "*.", 2))
		return !strcmp(pattern, name);
	pattern += 2;
	s = strlen(pattern);
	return n > s + 1 && name[n - s - 1] == '.' && !strcmp(name + n - s, pattern);
}

#endif
