/*
 * Address classification for canary-sensor: Tor exits, cloud provider
 * ranges, the country an address is registered in (libloc), and the
 * source network that infra_id and the credential windows are keyed on.
 *
 * A list (struct nl_set) is two sorted tables of disjoint address ranges,
 * one for IPv4 and one for IPv6. Prefixes are added at start, then
 * nl_set_finish() sorts and merges them, and every lookup is a binary
 * search. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is treated as the
 * IPv4 address it carries.
 */
#ifndef CANARY_SENSOR_NETLISTS_H
#define CANARY_SENSOR_NETLISTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum nl_error {
	NL_OK,
	NL_ERR_OPEN,            /* file missing or unreadable */
	NL_ERR_FORMAT,          /* a line or member is not an address list */
	NL_ERR_TOO_LARGE,       /* over NL_MAX_FILE_BYTES or NL_MAX_RANGES */
	NL_ERR_NOMEM
};

/* Returns a static description of err. */
const char *nl_strerror(enum nl_error err);

/* Largest list file read at start, and most ranges in one list. */
#define NL_MAX_FILE_BYTES (64u * 1024 * 1024)
#define NL_MAX_RANGES 2000000u

/* Bundled list files, relative to the data directory. */
#define NL_TOR_EXITS_FILE "tor-exits-2026-08/latest.exits.csv"
#define NL_AWS_RANGES_FILE "aws-ip-ranges-2025-07/aws-ip-ranges.json"
/* Location database installed by Debian's libloc-database package. */
#define NL_GEO_DEFAULT_PATH "/var/lib/location/database.db"

/* One address; an IPv4 address uses bytes[0..3]. */
struct nl_addr {
	int family;             /* AF_INET or AF_INET6 */
	uint8_t bytes[16];
};

/*
 * Parses an IPv4 or IPv6 address in text form. An IPv4-mapped IPv6
 * address becomes AF_INET. Returns 0, or -1 when text is not an address.
 */
int nl_addr_parse(const char *text, struct nl_addr *out);

/*
 * Returns a key for the address's source network: the /24 for IPv4, the
 * /48 for IPv6. Different networks always get different keys.
 */
uint64_t nl_network_key(const struct nl_addr *a);

/*
 * Copies the source network's bytes (3 for IPv4, 6 for IPv6) after a
 * family byte (4 or 6) into out, and returns the length (4 or 7).
 */
size_t nl_network_bytes(const struct nl_addr *a, uint8_t out[7]);

struct nl_set;

/* Returns an empty list, or NULL when out of memory. */
struct nl_set *nl_set_new(void);

void nl_set_free(struct nl_set *s);

/*
 * Adds "ADDRESS/LEN" or a bare address (a /32 or /128). Host bits below
 * the prefix length are ignored. Returns NL_OK, NL_ERR_FORMAT for text
 * that is not a prefix, NL_ERR_TOO_LARGE past NL_MAX_RANGES.
 */
enum nl_error nl_set_add_prefix(struct nl_set *s, const char *text);

/* Sorts and merges the ranges. Call after the last add, before lookups. */
void nl_set_finish(struct nl_set *s);

/* Returns true when a lies in one of the ranges. s must be finished. */
bool nl_set_contains(const struct nl_set *s, const struct nl_addr *a);

/* Returns the number of disjoint ranges (after nl_set_finish). */
size_t nl_set_count(const struct nl_set *s);

/*
 * Adds the addresses of a Tor exit list in CSV form: a header line, then
 * "fingerprint, address, port" per line. Returns NL_OK, or an error with
 * the file and line named in err (errlen bytes).
 */
enum nl_error nl_load_tor_csv(struct nl_set *s, const char *path, char *err,
			      size_t errlen);

/*
 * Adds every `prefixes[].ip_prefix` and `ipv6_prefixes[].ipv6_prefix` of
 * an AWS ip-ranges.json document. Returns NL_OK, or an error with the
 * file named in err.
 */
enum nl_error nl_load_aws_json(struct nl_set *s, const char *path, char *err,
			       size_t errlen);

struct nl_geo;

/*
 * Opens a libloc location database. Returns the handle, or NULL with the
 * reason in err. The caller closes it with nl_geo_close().
 */
struct nl_geo *nl_geo_open(const char *path, char *err, size_t errlen);

void nl_geo_close(struct nl_geo *g);

/*
 * Writes the upper-case ISO 3166-1 alpha-2 code of the country that a is
 * registered in, "EU" where the database has that code, or "ZZ" when the
 * address is not found, has a special code (anycast, satellite, user
 * assigned X*) or g is NULL.
 */
void nl_geo_region(const struct nl_geo *g, const struct nl_addr *a,
		   char out[3]);

#endif
