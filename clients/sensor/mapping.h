/*
 * Honeypot events to signals: the rules canary-sensor applies to each line
 * of a Cowrie or OpenCanary JSON-lines log. The rules are tabulated in
 * docs/sensor-mapping.md; in short:
 *
 *   Cowrie login.failed      credential_testing, TESTING, confidence from the
 *                            distinct user/password pairs that the source
 *                            network tried in the last hour
 *   Cowrie login.success     credential_testing, ATTACK, high, leaked
 *   Cowrie first command, file transfer or TCP forward of a session
 *                            account_probe, ATTACK, high
 *   OpenCanary login attempts (FTP, HTTP, SSH, Telnet, proxy, MySQL,
 *                            MSSQL, VNC, RDP) as Cowrie login.failed
 *   OpenCanary SMB file open account_probe, ATTACK, high
 *
 * Everything else yields no signal. The mapping depends only on the input
 * lines and the configuration, never on the wall clock, so a test can
 * check its output exactly.
 *
 * Privacy: user names and passwords are reduced in memory to a keyed
 * 64-bit hash, which serves only to count distinct pairs. Addresses become
 * a country, a proxy type and an HMAC of the source network (infra_id).
 * None of them is stored or sent.
 */
#ifndef CANARY_SENSOR_MAPPING_H
#define CANARY_SENSOR_MAPPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "netlists.h"

enum sm_format {
	SM_FORMAT_COWRIE,
	SM_FORMAT_OPENCANARY,
	SM_FORMAT_SIGNALS       /* the service's own signal JSON, passed on */
};

/* Returns 0 and sets *out for "cowrie", "opencanary" or "signals", else -1. */
int sm_format_parse(const char *name, enum sm_format *out);

/* Maximum length of a mapped line; longer lines are invalid. */
#define SM_MAX_LINE (64 * 1024)

/* Sliding window and thresholds for credential-testing confidence. */
#define SM_WINDOW_US (3600LL * 1000000)
#define SM_MEDIUM_PAIRS 3
#define SM_HIGH_PAIRS 10

/* Shortest accepted HMAC key, in bytes. */
#define SM_HMAC_KEY_MIN 16

/*
 * Targeted domain per sensor id and per destination port, from a JSON file:
 *
 *   {"sensors": {"37e2115ebaeb": "bank.example"},
 *    "ports": {"22": "ssh.bank.example", "443": "shop.example"},
 *    "default": "bank.example"}
 *
 * Every member is optional; a sensor match wins over a port match, and
 * "default" applies when neither matches.
 */
struct sm_domain_map;

/*
 * Loads and validates a domain map (domains are normalised to A-labels).
 * Returns the map, or NULL with the reason in err (errlen bytes).
 */
struct sm_domain_map *sm_domain_map_load(const char *path, char *err,
					 size_t errlen);

void sm_domain_map_free(struct sm_domain_map *map);

/*
 * Returns the domain for an event from sensor (or NULL) on port (or -1):
 * the sensor's entry, else the port's, else "default", else NULL.
 */
const char *sm_domain_map_lookup(const struct sm_domain_map *map,
				 const char *sensor, int port);

/*
 * Normalises a domain (sg_domain_normalize, no wildcard) into out. On
 * failure returns -1 with a message naming `where` and the value in err.
 */
int sm_domain_normalize_or_explain(const char *in, char *out, const char *where,
				   char *err, size_t errlen);

/* Returns true when id is a usable sensor id: [A-Za-z0-9._:-]{1,64}. */
bool sm_sensor_id_valid(const char *id);

struct sm_config {
	enum sm_format format;
	const char *domain;                     /* for every event, or NULL */
	const struct sm_domain_map *domain_map; /* used when domain is NULL */
	const uint8_t *hmac_key;                /* infra_id and pair hashes */
	size_t hmac_key_len;                    /* SM_HMAC_KEY_MIN or more */
	const struct nl_set *tor_exits;         /* NULL: no source is tor */
	const struct nl_set *cloud;             /* NULL: none is datacenter */
	const struct nl_geo *geo;               /* NULL: every region is ZZ */
};

struct sm_mapper;

/*
 * Creates a mapper. cfg's pointers must stay valid while it is used; the
 * key is copied. For cowrie and opencanary, exactly one of domain and
 * domain_map must be set. Returns NULL with the reason in err.
 */
struct sm_mapper *sm_mapper_new(const struct sm_config *cfg, char *err,
				size_t errlen);

void sm_mapper_free(struct sm_mapper *m);

enum sm_result {
	SM_SIGNAL,      /* out->signal is a new signal object */
	SM_NO_SIGNAL,   /* a valid event that is not notable */
	SM_UNMAPPED,    /* notable, but the domain map has no domain for it */
	SM_INVALID      /* not a usable event; out->reason gives the reason */
};

struct sm_output {
	json_t *signal;         /* new reference with SM_SIGNAL, else NULL */
	int64_t observed_us;    /* event time, 0 when a signal line has none */
	char reason[160];       /* SM_INVALID and SM_UNMAPPED; no log content */
};

/*
 * Maps one log line (len bytes, no newline needed). The signal has no
 * `id` or `seq`; the server assigns them. The caller owns out->signal.
 * Reasons never quote the line, so they are safe to print.
 */
enum sm_result sm_map_line(struct sm_mapper *m, const char *line, size_t len,
			   struct sm_output *out);

/*
 * Computes the infra_id for an address: "inf_" and the first 16 hex
 * digits of HMAC-SHA256(key, family byte + /24 or /48 network bytes).
 * out needs 21 bytes.
 */
void sm_infra_id(const uint8_t *key, size_t key_len, const struct nl_addr *a,
		 char out[21]);

#endif
