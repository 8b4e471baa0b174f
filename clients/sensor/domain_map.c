/*
 * The domain map: which brand domain a sensor or a destination port
 * protects. The file format is described in mapping.h.
 */
#include "mapping.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "signal/signal.h"

#define SM_MAP_MAX_ENTRIES 1024
#define SM_MAP_MAX_BYTES (1024 * 1024)

struct sm_sensor_domain {
	char sensor[SG_ID_MAX + 1];
	char domain[SG_DOMAIN_MAX + 1];
};

struct sm_port_domain {
	int port;
	char domain[SG_DOMAIN_MAX + 1];
};

struct sm_domain_map {
	struct sm_sensor_domain *sensors;
	size_t n_sensors;
	struct sm_port_domain *ports;
	size_t n_ports;
	char fallback[SG_DOMAIN_MAX + 1];   /* "default"; "" when absent */
};

int sm_domain_normalize_or_explain(const char *in, char *out, const char *where,
				   char *err, size_t errlen)
{
	char why[160];

	if (sg_domain_normalize(in, false, out, why, sizeof(why)) == 0)
		return 0;
	snprintf(err, errlen, "%s: invalid domain \"%.80s\": %s", where, in, why);
	return -1;
}

/* Returns the port that text names ("1".."65535"), or -1. */
static int sm_parse_port(const char *text)
{
	long v = 0;
	size_t n = strlen(text);

	if (n == 0 || n > 5 || strspn(text, "0123456789") != n)
		return -1;
	v = strtol(text, NULL, 10);
	return v >= 1 && v <= 65535 ? (int)v : -1;
}

static int sm_map_load_sensors(struct sm_domain_map *map, json_t *obj,
			       const char *path, char *err, size_t errlen)
{
	const char *name = NULL;
	json_t *value = NULL;

	if (!json_is_object(obj) || json_object_size(obj) > SM_MAP_MAX_ENTRIES) {
		snprintf(err, errlen, "%s: \"sensors\" must be an object of at most %d "
			 "sensor ids", path, SM_MAP_MAX_ENTRIES);
		return -1;
	}
	map->sensors = calloc(json_object_size(obj) + 1, sizeof(*map->sensors));
	if (!map->sensors) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}

	json_object_foreach(obj, name, value) {
		struct sm_sensor_domain *e = &map->sensors[map->n_sensors];

		if (!sm_sensor_id_valid(name) || !json_is_string(value)) {
			snprintf(err, errlen, "%s: sensors: each key must match "
				 "[A-Za-z0-9._:-]{1,64} and each value be a domain string",
				 path);
			return -1;
		}
		if (sm_domain_normalize_or_explain(json_string_value(value), e->domain, path,
					err, errlen) != 0)
			return -1;
		snprintf(e->sensor, sizeof(e->sensor), "%s", name);
		map->n_sensors++;
	}
	return 0;
}

static int sm_map_load_ports(struct sm_domain_map *map, json_t *obj,
			     const char *path, char *err, size_t errlen)
{
	const char *name = NULL;
	json_t *value = NULL;

	if (!json_is_object(obj) || json_object_size(obj) > SM_MAP_MAX_ENTRIES) {
		snprintf(err, errlen, "%s: \"ports\" must be an object of at most %d "
			 "ports", path, SM_MAP_MAX_ENTRIES);
		return -1;
	}
	map->ports = calloc(json_object_size(obj) + 1, sizeof(*map->ports));
	if (!map->ports) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}

	json_object_foreach(obj, name, value) {
		struct sm_port_domain *e = &map->ports[map->n_ports];

		e->port = sm_parse_port(name);
		if (e->port < 0 || !json_is_string(value)) {
			snprintf(err, errlen, "%s: ports: key \"%.16s\" must be a port "
				 "number 1-65535 and its value a domain string", path, name);
			return -1;
		}
		if (sm_domain_normalize_or_explain(json_string_value(value), e->domain, path,
					err, errlen) != 0)
			return -1;
		map->n_ports++;
	}
	return 0;
}

struct sm_domain_map *sm_domain_map_load(const char *path, char *err,
					 size_t errlen)
{
	struct sm_domain_map *map = NULL;
	json_t *root = NULL;
	json_error_t jerr;
	struct stat st;
	const char *name = NULL;
	json_t *value = NULL;
	bool ok = false;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "domain map %s: not found or not a regular file",
			 path);
		goto out;
	}
	if (st.st_size > SM_MAP_MAX_BYTES) {
		snprintf(err, errlen, "domain map %s is larger than %d bytes", path,
			 SM_MAP_MAX_BYTES);
		goto out;
	}
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(root)) {
		snprintf(err, errlen, "domain map %s line %d: %s", path, jerr.line,
			 root ? "expected a JSON object" : jerr.text);
		goto out;
	}
	map = calloc(1, sizeof(*map));
	if (!map) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}

	json_object_foreach(root, name, value) {
		int rc = 0;

		if (!strcmp(name, "sensors")) {
			rc = sm_map_load_sensors(map, value, path, err, errlen);
		} else if (!strcmp(name, "ports")) {
			rc = sm_map_load_ports(map, value, path, err, errlen);
		} else if (!strcmp(name, "default")) {
			if (!json_is_string(value)) {
				snprintf(err, errlen, "%s: \"default\" must be a domain string",
					 path);
				rc = -1;
			} else {
				rc = sm_domain_normalize_or_explain(json_string_value(value),
							 map->fallback, path, err, errlen);
			}
		} else {
			snprintf(err, errlen, "%s: unknown member \"%.40s\"; use \"sensors\", "
				 "\"ports\" or \"default\"", path, name);
			rc = -1;
		}
		if (rc != 0)
			goto out;
	}

	if (!map->n_sensors && !map->n_ports && !map->fallback[0]) {
		snprintf(err, errlen, "domain map %s maps no domain: add \"sensors\", "
			 "\"ports\" or \"default\"", path);
		goto out;
	}
	ok = true;

out:
	json_decref(root);
	if (!ok) {
		sm_domain_map_free(map);
		map = NULL;
	}
	return map;
}

void sm_domain_map_free(struct sm_domain_map *map)
{
	if (!map)
		return;
	free(map->sensors);
	free(map->ports);
	free(map);
}

const char *sm_domain_map_lookup(const struct sm_domain_map *map,
				 const char *sensor, int port)
{
	for (size_t i = 0; sensor && i < map->n_sensors; i++) {
		if (!strcmp(map->sensors[i].sensor, sensor))
			return map->sensors[i].domain;
	}
	for (size_t i = 0; port > 0 && i < map->n_ports; i++) {
		if (map->ports[i].port == port)
			return map->ports[i].domain;
	}
	return map->fallback[0] ? map->fallback : NULL;
}
