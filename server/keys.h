/*
 * API keys: the secret format, hashing, Bearer parsing, scope checks and
 * the `canaryd keys create|list|revoke` commands. Only the SHA-256 hash of
 * a secret is stored; the secret is printed once, at creation.
 *
 * A secret reads "ck_<16 hex id>_<64 hex random>", so that logs can name
 * a key by its id while the secret stays unknown.
 */
#ifndef CANARY_KEYS_H
#define CANARY_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Longest token accepted; a longer one is rejected, never truncated. */
#define KEY_TOKEN_MAX 128

enum auth_result {
	AUTH_OK,
	AUTH_MISSING,           /* no credentials given */
	AUTH_MALFORMED,         /* not "Bearer <token>", or token oversized */
	AUTH_UNKNOWN,           /* no such key, or revoked */
	AUTH_FORBIDDEN,         /* a valid key without the scope */
	AUTH_STORE_ERROR
};

/*
 * Extracts the token from an Authorization header value. The scheme
 * "Bearer" matches in any case. Returns AUTH_OK with token filled
 * (KEY_TOKEN_MAX + 1 bytes), AUTH_MISSING for an empty value or
 * AUTH_MALFORMED.
 */
enum auth_result auth_parse_bearer(const char *value, char *token);

/*
 * Looks the token up and checks that the key is valid and has every bit of
 * scope. On AUTH_OK and AUTH_FORBIDDEN, key is filled and must be released
 * with st_key_clear.
 */
enum auth_result auth_check_token(st_store *st, const char *token,
				  uint32_t scope, struct st_key *key);

/* Runs `canaryd keys ...`; argv[0] is "keys". Returns the exit status. */
int keys_command(int argc, char **argv);

/* Writes the scope names of bits, comma-separated, into buf. */
void keys_format_scopes(uint32_t bits, char *buf, size_t len);

#endif
