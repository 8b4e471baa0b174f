#include "keys.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "signal/signal.h"

static const struct {
	const char *name;
	uint32_t bit;
} scope_names[] = {
	{ "ingest", ST_SCOPE_INGEST },
	{ "subscribe", ST_SCOPE_SUBSCRIBE },
	{ "read", ST_SCOPE_READ },
	{ "admin", ST_SCOPE_ADMIN },
};

#define SCOPE_COUNT (sizeof(scope_names) / sizeof(scope_names[0]))

void keys_format_scopes(uint32_t bits, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < SCOPE_COUNT; i++) {
		if (!(bits & scope_names[i].bit))
			continue;
		used += (size_t)snprintf(buf + used, used < len ? len - used : 0,
					 "%s%s", used ? "," : "",
					 scope_names[i].name);
	}
}

static int token_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

enum auth_result auth_parse_bearer(const char *value, char *token)
{
	const char *p = value;
	size_t len;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return AUTH_MISSING;
	if (strncasecmp(p, "bearer", 6) || (p[6] != ' ' && p[6] != '\t'))
		return AUTH_MALFORMED;
	p += 6;
	while (*p == ' ' || *p == '\t')
		p++;
	len = strlen(p);
	while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (!len || len > KEY_TOKEN_MAX)
		return AUTH_MALFORMED;
	for (size_t i = 0; i < len; i++)
		if (!token_char_ok(p[i]))
			return AUTH_MALFORMED;
	memcpy(token, p, len);
	token[len] = '\0';
	return AUTH_OK;
}

enum auth_result auth_check_token(st_store *st, const char *token,
				  uint32_t scope, struct st_key *key)
{
	uint8_t hash[SHA256_DIGEST_LENGTH];
	size_t len = strlen(token);
	int rc;

	memset(key, 0, sizeof(*key));
	if (!len)
		return AUTH_MISSING;
	if (len > KEY_TOKEN_MAX)
		return AUTH_MALFORMED;
	SHA256((const unsigned char *)token, len, hash);

	rc = st_key_find_by_hash(st, hash, key);
	if (rc == ST_ERR_NOT_FOUND)
		return AUTH_UNKNOWN;
	if (rc != ST_OK)
		return AUTH_STORE_ERROR;

	/* The lookup is by hash, so a timing difference there reveals nothing
	 * about the secret; compare the full hash in constant time anyway. */
	if (CRYPTO_memcmp(hash, key->hash, sizeof(hash)) || key->revoked_us) {
		st_key_clear(key);
		return AUTH_UNKNOWN;
	}
	if ((key->scopes & scope) != scope)
		return AUTH_FORBIDDEN;
	return AUTH_OK;
}

/* ---- the `canaryd keys` commands ---- */

static int parse_scopes(const char *list, uint32_t *bits)
{
	char buf[256];
	char *save = NULL;

	if (strlen(list) >= sizeof(buf)) {
		fprintf(stderr, "canaryd keys: --scopes is too long: use ingest, subscribe, read or admin, comma-separated\n");
		return -1;
	}
	strcpy(buf, list);
	*bits = 0;
	for (char *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < SCOPE_COUNT; i++)
			if (!strcmp(tok, scope_names[i].name))
				break;
		if (i == SCOPE_COUNT) {
			fprintf(stderr,
				"canaryd keys: scope \"%.32s\" is invalid: use ingest, subscribe, read or admin\n",
				tok);
			return -1;
		}
		*bits |= scope_names[i].bit;
	}
	if (!*bits) {
		fprintf(stderr, "canaryd keys: --scopes is empty: use ingest, subscribe, read or admin, comma-separated\n");
		return -1;
	}
	return 0;
}

/* Normalises a comma-separated domain list into a new string. */
static char *normalize_domains(const char *list)
{
	size_t cap = strlen(list) * 4 + 16;
	char *copy = strdup(list);
	char *out = calloc(1, cap);
	char *save = NULL;
	size_t used = 0;

	if (!copy || !out)
		goto fail;
	for (char *tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char norm[SG_DOMAIN_MAX + 1];
		char err[160];

		if (sg_domain_normalize(tok, false, norm, err, sizeof(err))) {
			fprintf(stderr, "canaryd keys: --domains: %s\n", err);
			goto fail;
		}
		if (used + strlen(norm) + 2 > cap)
			goto fail;
		used += (size_t)snprintf(out + used, cap - used, "%s%s",
					 used ? "," : "", norm);
	}
	if (!used) {
		fprintf(stderr, "canaryd keys: --domains is empty: give D1,D2 or omit it\n");
		goto fail;
	}
	free(copy);
	return out;

fail:
	free(copy);
	free(out);
	return NULL;
}

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

struct keys_args {
	const char *data_dir;
	const char *scopes;
	const char *domains;
	const char *name;
};

static int keys_create(st_store *st, const struct keys_args *a)
{
	uint8_t id_bytes[ST_KEY_ID_LEN / 2], secret_bytes[32];
	char secret_hex[65], token[KEY_TOKEN_MAX + 1];
	struct st_key k;
	int rc;

	memset(&k, 0, sizeof(k));
	if (!a->scopes) {
		fprintf(stderr, "canaryd keys create: --scopes is required, e.g. --scopes ingest,subscribe,read\n");
		return 2;
	}
	if (parse_scopes(a->scopes, &k.scopes))
		return 2;
	if (a->name && strlen(a->name) > ST_KEY_NAME_MAX) {
		fprintf(stderr, "canaryd keys create: --name is longer than %d characters\n",
			ST_KEY_NAME_MAX);
		return 2;
	}
	if (a->domains) {
		k.domains = normalize_domains(a->domains);
		if (!k.domains)
			return 2;
	}
	if (RAND_bytes(id_bytes, sizeof(id_bytes)) != 1 ||
	    RAND_bytes(secret_bytes, sizeof(secret_bytes)) != 1) {
		fprintf(stderr, "canaryd keys create: no random bytes available\n");
		free(k.domains);
		return 1;
	}
	hex_encode(id_bytes, sizeof(id_bytes), k.id);
	hex_encode(secret_bytes, sizeof(secret_bytes), secret_hex);
	snprintf(token, sizeof(token), "ck_%s_%s", k.id, secret_hex);
	SHA256((const unsigned char *)token, strlen(token), k.hash);
	snprintf(k.name, sizeof(k.name), "%s", a->name ? a->name : "");
	k.created_us = sg_now_us();

	rc = st_key_put(st, &k);
	free(k.domains);
	OPENSSL_cleanse(secret_hex, sizeof(secret_hex));
	if (rc != ST_OK) {
		fprintf(stderr, "canaryd keys create: storing the key failed: %s\n",
			st_strerror(rc));
		return 1;
	}
	printf("%s\n", token);
	OPENSSL_cleanse(token, sizeof(token));
	fprintf(stderr, "created key %s; the secret above is shown only once\n", k.id);
	return 0;
}

static void print_key(const struct st_key *k, void *ctx)
{
	char scopes[64], created[32], revoked[32] = "-";

	(void)ctx;
	keys_format_scopes(k->scopes, scopes, sizeof(scopes));
	sg_time_format(k->created_us, created);
	if (k->revoked_us)
		sg_time_format(k->revoked_us, revoked);
	printf("%s\t%s\t%s\t%s\tcreated=%s\trevoked=%s\t%s\n", k->id,
	       k->revoked_us ? "revoked" : "active", scopes,
	       k->domains ? k->domains : "*", created, revoked,
	       k->name[0] ? k->name : "-");
}

/*
 * Checks that dir contains a store before list or revoke opens it, because
 * st_open would create an empty store in a mistyped directory. Returns 0,
 * or prints an error and returns the exit status.
 */
static int keys_require_store(const char *verb, const char *dir)
{
	char err[512];
	int rc = st_exists(dir, err, sizeof(err));

	if (rc == ST_OK)
		return 0;
	if (rc == ST_ERR_NOT_FOUND) {
		fprintf(stderr,
			"canaryd keys %s: no canaryd store in %s (its LMDB data file %s/data.mdb is missing): check --data-dir, which must name the server's data directory. To start a new store, run canaryd keys create.\n",
			verb, dir, dir);
		return 2;
	}
	fprintf(stderr, "canaryd keys %s: %s\n", verb, err);
	return 1;
}

/*
 * Prints why a KEY_ID argument is not a key id without printing a secret.
 * A whole key (ck_<id>_<secret>) is named by its id alone, and another
 * argument longer than an id is not echoed, because it may be a secret.
 */
static void print_invalid_key_id(const char *arg)
{
	size_t len = strlen(arg);

	if (!strncmp(arg, "ck_", 3) && strcspn(arg + 3, "_") == ST_KEY_ID_LEN &&
	    arg[3 + ST_KEY_ID_LEN] == '_') {
		fprintf(stderr,
			"canaryd keys revoke: the argument is a whole key (ck_%.*s_...), which contains its secret: pass only the key id, as in canaryd keys revoke %.*s\n",
			ST_KEY_ID_LEN, arg + 3, ST_KEY_ID_LEN, arg + 3);
		return;
	}
	if (len <= ST_KEY_ID_LEN) {
		fprintf(stderr,
			"canaryd keys revoke: \"%s\" is not a key id: pass the 16 lower-case hex characters after \"ck_\" in the key (see canaryd keys list)\n",
			arg);
		return;
	}
	fprintf(stderr,
		"canaryd keys revoke: the argument (%zu characters, not printed in case it is a secret) is not a key id: pass the 16 lower-case hex characters after \"ck_\" in the key (see canaryd keys list)\n",
		len);
}

static void keys_usage(FILE *out)
{
	fprintf(out,
		"usage: canaryd keys create --data-dir DIR --scopes ingest,subscribe,read[,admin] [--domains D1,D2] [--name NAME]\n"
		"       canaryd keys list   --data-dir DIR\n"
		"       canaryd keys revoke --data-dir DIR KEY_ID\n");
}

int keys_command(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "scopes", required_argument, NULL, 's' },
		{ "domains", required_argument, NULL, 'D' },
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct keys_args a = { "./var", NULL, NULL, NULL };
	struct st_options so = { 0, 1ull << 40, 0, 0 };
	const char *verb;
	st_store *st = NULL;
	char err[512];
	int c, rc = 2;

	if (argc < 2) {
		keys_usage(stderr);
		return 2;
	}
	verb = argv[1];
	if (!strcmp(verb, "--help") || !strcmp(verb, "-h") || !strcmp(verb, "help")) {
		keys_usage(stdout);
		return 0;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': a.data_dir = optarg; break;
		case 's': a.scopes = optarg; break;
		case 'D': a.domains = optarg; break;
		case 'n': a.name = optarg; break;
		default: keys_usage(c == 'h' ? stdout : stderr); return c == 'h' ? 0 : 2;
		}
	}

	if (strcmp(verb, "create") && strcmp(verb, "list") && strcmp(verb, "revoke")) {
		fprintf(stderr, "canaryd keys: unknown command \"%.32s\"\n", verb);
		keys_usage(stderr);
		return 2;
	}
	if (!strcmp(verb, "revoke") && optind != argc - 1) {
		fprintf(stderr, "canaryd keys revoke: give exactly one KEY_ID (see canaryd keys list)\n");
		return 2;
	}

	if (strcmp(verb, "create")) {
		rc = keys_require_store(verb, a.data_dir);
		if (rc)
			return rc;
	}
	if (st_open(a.data_dir, &so, &st, err, sizeof(err)) != ST_OK) {
		fprintf(stderr, "canaryd keys: %s\n", err);
		return 1;
	}
	if (!strcmp(verb, "create")) {
		rc = keys_create(st, &a);
	} else if (!strcmp(verb, "list")) {
		rc = st_key_list(st, print_key, NULL) == ST_OK ? 0 : 1;
	} else {
		int s = st_key_revoke(st, argv[optind]);

		if (s == ST_ERR_INVALID)
			print_invalid_key_id(argv[optind]);
		else if (s == ST_ERR_NOT_FOUND)
			fprintf(stderr, "canaryd keys revoke: no key with id \"%.32s\" (see canaryd keys list)\n",
				argv[optind]);
		else if (s != ST_OK)
			fprintf(stderr, "canaryd keys revoke: %s\n", st_strerror(s));
		else
			fprintf(stderr, "revoked key %s\n", argv[optind]);
		rc = s == ST_OK ? 0 : 1;
	}
	st_close(st);
	return rc;
}
