/*
 * Address lists as sorted tables of disjoint ranges, their loaders, and
 * the libloc country lookup. See netlists.h for the rules.
 */
#include "netlists.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <jansson.h>
#include <libloc/database.h>
#include <libloc/libloc.h>
#include <libloc/network.h>

typedef unsigned __int128 nl_u128;

struct nl_range4 {
	uint32_t first;
	uint32_t last;
};

struct nl_range6 {
	nl_u128 first;
	nl_u128 last;
};

struct nl_set {
	struct nl_range4 *v4;
	size_t n4, cap4;
	struct nl_range6 *v6;
	size_t n6, cap6;
};

struct nl_geo {
	struct loc_ctx *ctx;
	struct loc_database *db;
	FILE *file;             /* libloc maps it, so it stays open */
};

const char *nl_strerror(enum nl_error err)
{
	switch (err) {
	case NL_OK:
		return "success";
	case NL_ERR_OPEN:
		return "cannot open the file";
	case NL_ERR_FORMAT:
		return "invalid address list";
	case NL_ERR_TOO_LARGE:
		return "address list too large";
	case NL_ERR_NOMEM:
		return "out of memory";
	}
	return "unknown error";
}

static const uint8_t nl_v4_mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

int nl_addr_parse(const char *text, struct nl_addr *out)
{
	memset(out, 0, sizeof(*out));

	if (inet_pton(AF_INET, text, out->bytes) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, out->bytes) != 1)
		return -1;

	out->family = AF_INET6;
	if (!memcmp(out->bytes, nl_v4_mapped_prefix, 12)) {
		memmove(out->bytes, out->bytes + 12, 4);
		memset(out->bytes + 4, 0, 12);
		out->family = AF_INET;
	}
	return 0;
}

uint64_t nl_network_key(const struct nl_addr *a)
{
	uint64_t key = 0;
	size_t n = a->family == AF_INET ? 3 : 6;

	for (size_t i = 0; i < n; i++)
		key = key << 8 | a->bytes[i];

	/* The family in the top byte keeps IPv4 and IPv6 keys apart. */
	return key | (uint64_t)(a->family == AF_INET ? 4 : 6) << 56;
}

size_t nl_network_bytes(const struct nl_addr *a, uint8_t out[7])
{
	size_t n = a->family == AF_INET ? 3 : 6;

	out[0] = a->family == AF_INET ? 4 : 6;
	memcpy(out + 1, a->bytes, n);
	return n + 1;
}

static uint32_t nl_load_u32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | b[3];
}

static nl_u128 nl_load_u128(const uint8_t *b)
{
	nl_u128 v = 0;

	for (int i = 0; i < 16; i++)
		v = v << 8 | b[i];
	return v;
}

struct nl_set *nl_set_new(void)
{
	return calloc(1, sizeof(struct nl_set));
}

void nl_set_free(struct nl_set *s)
{
	if (!s)
		return;
	free(s->v4);
	free(s->v6);
	free(s);
}

/* Grows *items (element size elem) so that one more fits. */
static enum nl_error nl_reserve(void **items, size_t *cap, size_t count,
				size_t elem)
{
	size_t new_cap;
	void *grown = NULL;

	if (count < *cap)
		return NL_OK;
	if (count >= NL_MAX_RANGES)
		return NL_ERR_TOO_LARGE;

	new_cap = *cap ? *cap * 2 : 1024;
	if (new_cap > NL_MAX_RANGES)
		new_cap = NL_MAX_RANGES;
	grown = realloc(*items, new_cap * elem);
	if (!grown)
		return NL_ERR_NOMEM;

	*items = grown;
	*cap = new_cap;
	return NL_OK;
}

/* Splits "ADDR/LEN" into an address and a prefix length. */
static int nl_parse_prefix(const char *text, struct nl_addr *addr, int *len)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	char *end = NULL;
	long plen;
	int max;

	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, text, alen);
	buf[alen] = '\0';

	/* Prefix lists never use IPv4-mapped notation, so parse strictly. */
	memset(addr, 0, sizeof(*addr));
	if (inet_pton(AF_INET, buf, addr->bytes) == 1)
		addr->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, addr->bytes) == 1)
		addr->family = AF_INET6;
	else
		return -1;
	max = addr->family == AF_INET ? 32 : 128;

	if (!slash) {
		*len = max;
		return 0;
	}

	errno = 0;
	plen = strtol(slash + 1, &end, 10);
	if (errno || end == slash + 1 || *end != '\0' || plen < 0 || plen > max)
		return -1;
	*len = (int)plen;
	return 0;
}

enum nl_error nl_set_add_prefix(struct nl_set *s, const char *text)
{
	struct nl_addr addr;
	int len = 0;
	enum nl_error rc;

	if (nl_parse_prefix(text, &addr, &len) != 0)
		return NL_ERR_FORMAT;

	if (addr.family == AF_INET) {
		uint32_t v = nl_load_u32(addr.bytes);
		uint32_t host = len == 0 ? UINT32_MAX : (UINT32_C(1) << (32 - len)) - 1;

		rc = nl_reserve((void **)&s->v4, &s->cap4, s->n4, sizeof(*s->v4));
		if (rc != NL_OK)
			return rc;
		s->v4[s->n4].first = v & ~host;
		s->v4[s->n4].last = v | host;
		s->n4++;
		return NL_OK;
	}

	nl_u128 v = nl_load_u128(addr.bytes);
	nl_u128 host = len == 0 ? ~(nl_u128)0 : ((nl_u128)1 << (128 - len)) - 1;

	rc = nl_reserve((void **)&s->v6, &s->cap6, s->n6, sizeof(*s->v6));
	if (rc != NL_OK)
		return rc;
	s->v6[s->n6].first = v & ~host;
	s->v6[s->n6].last = v | host;
	s->n6++;
	return NL_OK;
}

static int nl_cmp4(const void *a, const void *b)
{
	const struct nl_range4 *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

static int nl_cmp6(const void *a, const void *b)
{
	const struct nl_range6 *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

void nl_set_finish(struct nl_set *s)
{
	size_t out = 0;

	/*
	 * After sorting by first address, a range that starts inside or right
	 * after the previous one is merged into it, so the table ends up
	 * disjoint and one binary search decides membership.
	 */
	if (s->n4) {
		qsort(s->v4, s->n4, sizeof(*s->v4), nl_cmp4);
		out = 0;
		for (size_t i = 1; i < s->n4; i++) {
			struct nl_range4 *prev = &s->v4[out];

			if (prev->last == UINT32_MAX || s->v4[i].first <= prev->last + 1) {
				if (s->v4[i].last > prev->last)
					prev->last = s->v4[i].last;
				continue;
			}
			s->v4[++out] = s->v4[i];
		}
		s->n4 = out + 1;
	}

	if (s->n6) {
		qsort(s->v6, s->n6, sizeof(*s->v6), nl_cmp6);
		out = 0;
		for (size_t i = 1; i < s->n6; i++) {
			struct nl_range6 *prev = &s->v6[out];

			if (prev->last == ~(nl_u128)0 || s->v6[i].first <= prev->last + 1) {
				if (s->v6[i].last > prev->last)
					prev->last = s->v6[i].last;
				continue;
			}
			s->v6[++out] = s->v6[i];
		}
		s->n6 = out + 1;
	}
}

bool nl_set_contains(const struct nl_set *s, const struct nl_addr *a)
{
	size_t lo = 0, hi;

	/* Find the last range whose first address is <= the address. */
	if (a->family == AF_INET) {
		uint32_t v = nl_load_u32(a->bytes);

		hi = s->n4;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (s->v4[mid].first <= v)
				lo = mid + 1;
			else
				hi = mid;
		}
		return lo > 0 && v <= s->v4[lo - 1].last;
	}

	nl_u128 v = nl_load_u128(a->bytes);

	hi = s->n6;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v6[mid].first <= v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && v <= s->v6[lo - 1].last;
}

size_t nl_set_count(const struct nl_set *s)
{
	return s->n4 + s->n6;
}

/* Opens path for reading after checking its size against the limit. */
static enum nl_error nl_open_bounded(const char *path, FILE **out, char *err,
				     size_t errlen)
{
	struct stat st;
	FILE *f = NULL;

	f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NL_ERR_OPEN;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		fclose(f);
		return NL_ERR_OPEN;
	}
	if ((uint64_t)st.st_size > NL_MAX_FILE_BYTES) {
		snprintf(err, errlen, "%s is larger than %u bytes", path,
			 NL_MAX_FILE_BYTES);
		fclose(f);
		return NL_ERR_TOO_LARGE;
	}
	*out = f;
	return NL_OK;
}

enum nl_error nl_load_tor_csv(struct nl_set *s, const char *path, char *err,
			      size_t errlen)
{
	enum nl_error rc = NL_OK;
	FILE *f = NULL;
	char line[512];
	unsigned long lineno = 0;

	rc = nl_open_bounded(path, &f, err, errlen);
	if (rc != NL_OK)
		goto out;

	while (fgets(line, sizeof(line), f)) {
		char *field = NULL, *end = NULL;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errlen, "%s line %lu is longer than %zu bytes",
				 path, lineno, sizeof(line) - 1);
			rc = NL_ERR_FORMAT;
			goto out;
		}
		if (lineno == 1 && !strncmp(line, "fingerprint", 11))
			continue;
		if (line[strspn(line, " \t\r\n")] == '\0')
			continue;

		/* The address is the second comma-separated field. */
		field = strchr(line, ',');
		if (!field) {
			snprintf(err, errlen, "%s line %lu has no address field",
				 path, lineno);
			rc = NL_ERR_FORMAT;
			goto out;
		}
		field += 1 + strspn(field + 1, " \t");
		end = field + strcspn(field, ", \t\r\n");
		*end = '\0';

		rc = nl_set_add_prefix(s, field);
		if (rc != NL_OK) {
			snprintf(err, errlen, "%s line %lu: %s", path, lineno,
				 rc == NL_ERR_FORMAT ? "the second field is not an IP address"
						     : nl_strerror(rc));
			goto out;
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		rc = NL_ERR_OPEN;
	}

out:
	if (f)
		fclose(f);
	return rc;
}

/* Adds member `key` of every object in array `name` of doc. */
static enum nl_error nl_add_json_prefixes(struct nl_set *s, json_t *doc,
					  const char *name, const char *key,
					  const char *path, char *err,
					  size_t errlen)
{
	json_t *list = json_object_get(doc, name);
	json_t *item = NULL;
	size_t i;

	if (!json_is_array(list)) {
		snprintf(err, errlen, "%s has no \"%s\" array", path, name);
		return NL_ERR_FORMAT;
	}

	json_array_foreach(list, i, item) {
		const char *text = json_string_value(json_object_get(item, key));
		enum nl_error rc;

		if (!text) {
			snprintf(err, errlen, "%s: %s[%zu] has no string \"%s\"",
				 path, name, i, key);
			return NL_ERR_FORMAT;
		}
		rc = nl_set_add_prefix(s, text);
		if (rc != NL_OK) {
			snprintf(err, errlen, "%s: %s[%zu].%s: %s", path, name, i,
				 key, rc == NL_ERR_FORMAT ? "not an address prefix"
							  : nl_strerror(rc));
			return rc;
		}
	}
	return NL_OK;
}

enum nl_error nl_load_aws_json(struct nl_set *s, const char *path, char *err,
			       size_t errlen)
{
	enum nl_error rc = NL_OK;
	FILE *f = NULL;
	json_t *doc = NULL;
	json_error_t jerr;

	rc = nl_open_bounded(path, &f, err, errlen);
	if (rc != NL_OK)
		goto out;

	doc = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(doc)) {
		snprintf(err, errlen, "%s line %d: %s", path, jerr.line,
			 doc ? "the top level is not an object" : jerr.text);
		rc = NL_ERR_FORMAT;
		goto out;
	}

	rc = nl_add_json_prefixes(s, doc, "prefixes", "ip_prefix", path, err,
				  errlen);
	if (rc != NL_OK)
		goto out;
	rc = nl_add_json_prefixes(s, doc, "ipv6_prefixes", "ipv6_prefix", path,
				  err, errlen);

out:
	json_decref(doc);
	if (f)
		fclose(f);
	return rc;
}

struct nl_geo *nl_geo_open(const char *path, char *err, size_t errlen)
{
	struct nl_geo *g = NULL;
	int rc;

	g = calloc(1, sizeof(*g));
	if (!g) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}

	g->file = fopen(path, "r");
	if (!g->file) {
		snprintf(err, errlen, "cannot open location database %s: %s",
			 path, strerror(errno));
		goto fail;
	}

	rc = loc_new(&g->ctx);
	if (rc != 0) {
		snprintf(err, errlen, "libloc context failed (code %d)", rc);
		goto fail;
	}
	/* Only libloc's own errors (syslog priority 3) reach stderr. */
	loc_set_log_priority(g->ctx, 3);

	rc = loc_database_new(g->ctx, &g->db, g->file);
	if (rc != 0) {
		snprintf(err, errlen,
			 "cannot load location database %s (code %d): "
			 "reinstall the libloc-database package", path, rc);
		goto fail;
	}
	return g;

fail:
	nl_geo_close(g);
	return NULL;
}

void nl_geo_close(struct nl_geo *g)
{
	if (!g)
		return;
	if (g->db)
		loc_database_unref(g->db);
	if (g->ctx)
		loc_unref(g->ctx);
	if (g->file)
		fclose(g->file);
	free(g);
}

void nl_geo_region(const struct nl_geo *g, const struct nl_addr *a,
		   char out[3])
{
	struct in6_addr in6;
	struct loc_network *net = NULL;
	const char *code = NULL;

	memcpy(out, "ZZ", 3);
	if (!g)
		return;

	/* libloc keeps IPv4 networks as IPv4-mapped IPv6. */
	if (a->family == AF_INET) {
		memcpy(in6.s6_addr, nl_v4_mapped_prefix, 12);
		memcpy(in6.s6_addr + 12, a->bytes, 4);
	} else {
		memcpy(in6.s6_addr, a->bytes, 16);
	}

	if (loc_database_lookup(g->db, &in6, &net) != 0 || !net)
		return;

	code = loc_network_get_country_code(net);

	/*
	 * libloc also uses A1-A3 (anonymous proxy, satellite, anycast) and
	 * user-assigned X* codes; none of them is a country, so they stay ZZ.
	 */
	if (code && code[0] >= 'A' && code[0] <= 'Z' && code[0] != 'X' &&
	    code[1] >= 'A' && code[1] <= 'Z' && code[2] == '\0')
		memcpy(out, code, 3);

	loc_network_unref(net);
}
