/*
 * Honeypot events to signals. The rules are listed in mapping.h and
 * tabulated in docs/sensor-mapping.md.
 *
 * Two bounded tables carry state between lines:
 *  - per source network (/24 or /48), the keyed hashes of the last
 *    SM_PAIRS_PER_NET distinct credential pairs and when each was last
 *    tried, which gives the credential-testing confidence;
 *  - per Cowrie session, the destination port (for the domain map) and
 *    whether the session already produced its post-login signal.
 * When a table fills up, entries that fell out of their window are
 * dropped; if that is not enough, the table starts over empty.
 */
#include "mapping.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "signal/batch.h"
#include "signal/signal.h"

#define SM_PAIRS_PER_NET 16
#define SM_NET_SLOTS 8192u
#define SM_SESSION_SLOTS 16384u
#define SM_SESSION_ID_MAX 32
#define SM_SESSION_IDLE_US (6LL * 3600 * 1000000)
#define SM_HMAC_KEY_MAX 64

struct sm_pair_seen {
	uint64_t hash;
	int64_t seen_us;
};

struct sm_net_window {
	uint64_t key;           /* nl_network_key(); 0 marks a free slot */
	int64_t last_us;
	unsigned count;
	struct sm_pair_seen pairs[SM_PAIRS_PER_NET];
};

struct sm_session {
	char id[SM_SESSION_ID_MAX + 1];     /* "" marks a free slot */
	bool closed;
	bool activity_signalled;
	int dst_port;                       /* -1 when unknown */
	int64_t last_us;
};

struct sm_mapper {
	enum sm_format format;
	char domain[SG_DOMAIN_MAX + 1];     /* "" when the map decides */
	const struct sm_domain_map *map;
	uint8_t key[SM_HMAC_KEY_MAX];
	size_t key_len;
	const struct nl_set *tor_exits;
	const struct nl_set *cloud;
	const struct nl_geo *geo;
	struct sm_net_window *nets;         /* SM_NET_SLOTS */
	size_t n_nets;
	struct sm_session *sessions;        /* SM_SESSION_SLOTS */
	size_t n_sessions;
};

/* Source address, time, sensor and port of an event. */
struct sm_source {
	struct nl_addr addr;
	int64_t observed_us;
	const char *sensor;     /* NULL when absent or not a valid id */
	int dst_port;           /* -1 when unknown */
};

int sm_format_parse(const char *name, enum sm_format *out)
{
	if (!strcmp(name, "cowrie"))
		*out = SM_FORMAT_COWRIE;
	else if (!strcmp(name, "opencanary"))
		*out = SM_FORMAT_OPENCANARY;
	else if (!strcmp(name, "signals"))
		*out = SM_FORMAT_SIGNALS;
	else
		return -1;
	return 0;
}

bool sm_sensor_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > SG_ID_MAX)
		return false;
	return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789._:-") == n;
}

/* Returns the domain for an event, or NULL when nothing matches. */
static const char *sm_domain_for(const struct sm_mapper *m, const char *sensor,
				 int port)
{
	if (m->domain[0])
		return m->domain;
	return sm_domain_map_lookup(m->map, sensor, port);
}

struct sm_mapper *sm_mapper_new(const struct sm_config *cfg, char *err,
				size_t errlen)
{
	struct sm_mapper *m = NULL;
	bool needs_domain = cfg->format != SM_FORMAT_SIGNALS;

	if (cfg->hmac_key_len < SM_HMAC_KEY_MIN || cfg->hmac_key_len > SM_HMAC_KEY_MAX) {
		snprintf(err, errlen, "the HMAC key must be %d to %d bytes, not %zu",
			 SM_HMAC_KEY_MIN, SM_HMAC_KEY_MAX, cfg->hmac_key_len);
		goto fail;
	}
	if (needs_domain && !cfg->domain == !cfg->domain_map) {
		snprintf(err, errlen, "pass either --domain DOMAIN or --domain-map FILE "
			 "(exactly one) so that each signal names the targeted brand");
		goto fail;
	}

	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	m->format = cfg->format;
	m->map = cfg->domain_map;
	m->tor_exits = cfg->tor_exits;
	m->cloud = cfg->cloud;
	m->geo = cfg->geo;
	memcpy(m->key, cfg->hmac_key, cfg->hmac_key_len);
	m->key_len = cfg->hmac_key_len;

	if (needs_domain && cfg->domain &&
	    sm_domain_normalize_or_explain(cfg->domain, m->domain, "--domain", err,
					   errlen) != 0)
		goto fail;

	m->nets = calloc(SM_NET_SLOTS, sizeof(*m->nets));
	m->sessions = calloc(SM_SESSION_SLOTS, sizeof(*m->sessions));
	if (!m->nets || !m->sessions) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return m;

fail:
	sm_mapper_free(m);
	return NULL;
}

void sm_mapper_free(struct sm_mapper *m)
{
	if (!m)
		return;
	OPENSSL_cleanse(m->key, sizeof(m->key));
	free(m->nets);
	free(m->sessions);
	free(m);
}

static size_t sm_net_slot(uint64_t key)
{
	return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 51) & (SM_NET_SLOTS - 1);
}

/* Drops windows idle for longer than the window; clears all if still full. */
static void sm_nets_prune(struct sm_mapper *m, int64_t now_us)
{
	struct sm_net_window *old = m->nets;
	struct sm_net_window *fresh = calloc(SM_NET_SLOTS, sizeof(*fresh));

	if (!fresh) {
		memset(m->nets, 0, SM_NET_SLOTS * sizeof(*m->nets));
		m->n_nets = 0;
		return;
	}

	m->nets = fresh;
	m->n_nets = 0;
	for (size_t i = 0; i < SM_NET_SLOTS; i++) {
		size_t slot;

		if (!old[i].key || old[i].last_us < now_us - SM_WINDOW_US)
			continue;
		slot = sm_net_slot(old[i].key);
		while (fresh[slot].key)
			slot = (slot + 1) & (SM_NET_SLOTS - 1);
		fresh[slot] = old[i];
		m->n_nets++;
	}
	free(old);

	/*
	 * NOTE: with more than 3/4 of the slots active inside one window, the
	 * table starts over, so those networks' confidence restarts at low.
	 */
	if (m->n_nets >= SM_NET_SLOTS * 3 / 4) {
		memset(m->nets, 0, SM_NET_SLOTS * sizeof(*m->nets));
		m->n_nets = 0;
	}
}

static struct sm_net_window *sm_net_get(struct sm_mapper *m, uint64_t key,
					int64_t now_us)
{
	size_t slot;

	if (m->n_nets >= SM_NET_SLOTS * 3 / 4)
		sm_nets_prune(m, now_us);

	slot = sm_net_slot(key);
	while (m->nets[slot].key && m->nets[slot].key != key)
		slot = (slot + 1) & (SM_NET_SLOTS - 1);

	if (!m->nets[slot].key) {
		m->nets[slot].key = key;
		m->nets[slot].last_us = now_us;
		m->n_nets++;
	}
	return &m->nets[slot];
}

/*
 * Records that the network tried credential pair `pair` at now_us and
 * returns how many distinct pairs it tried within the window up to now.
 */
static unsigned sm_window_note(struct sm_mapper *m, uint64_t net, uint64_t pair,
			       int64_t now_us)
{
	struct sm_net_window *w = sm_net_get(m, net, now_us);
	unsigned distinct = 0;
	unsigned slot = w->count;

	if (now_us > w->last_us)
		w->last_us = now_us;

	for (unsigned i = 0; i < w->count; i++) {
		if (w->pairs[i].hash == pair) {
			slot = i;
			break;
		}
	}

	/* A new pair on a full list replaces the pair tried longest ago. */
	if (slot == w->count && w->count == SM_PAIRS_PER_NET) {
		slot = 0;
		for (unsigned i = 1; i < w->count; i++) {
			if (w->pairs[i].seen_us < w->pairs[slot].seen_us)
				slot = i;
		}
		w->pairs[slot].seen_us = INT64_MIN;
	}
	if (slot == w->count) {
		w->count++;
		w->pairs[slot].seen_us = INT64_MIN;
	}
	w->pairs[slot].hash = pair;
	if (now_us > w->pairs[slot].seen_us)
		w->pairs[slot].seen_us = now_us;

	for (unsigned i = 0; i < w->count; i++) {
		if (w->pairs[i].seen_us >= now_us - SM_WINDOW_US)
			distinct++;
	}
	return distinct;
}

static size_t sm_session_slot(const char *id)
{
	uint64_t h = UINT64_C(1469598103934665603);

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * UINT64_C(1099511628211);
	return (size_t)(h >> 20) & (SM_SESSION_SLOTS - 1);
}

/* Drops closed and idle sessions; clears all if the table is still full. */
static void sm_sessions_prune(struct sm_mapper *m, int64_t now_us)
{
	struct sm_session *old = m->sessions;
	struct sm_session *fresh = calloc(SM_SESSION_SLOTS, sizeof(*fresh));

	if (!fresh) {
		memset(m->sessions, 0, SM_SESSION_SLOTS * sizeof(*m->sessions));
		m->n_sessions = 0;
		return;
	}

	m->sessions = fresh;
	m->n_sessions = 0;
	for (size_t i = 0; i < SM_SESSION_SLOTS; i++) {
		size_t slot;

		if (!old[i].id[0] || old[i].closed ||
		    old[i].last_us < now_us - SM_SESSION_IDLE_US)
			continue;
		slot = sm_session_slot(old[i].id);
		while (fresh[slot].id[0])
			slot = (slot + 1) & (SM_SESSION_SLOTS - 1);
		fresh[slot] = old[i];
		m->n_sessions++;
	}
	free(old);

	/* NOTE: a cleared session may post its post-login signal a second time. */
	if (m->n_sessions >= SM_SESSION_SLOTS * 3 / 4) {
		memset(m->sessions, 0, SM_SESSION_SLOTS * sizeof(*m->sessions));
		m->n_sessions = 0;
	}
}

/* Returns the session, creating it when create is set; NULL if absent. */
static struct sm_session *sm_session_get(struct sm_mapper *m, const char *id,
					 bool create, int64_t now_us)
{
	size_t slot;

	if (!id || !id[0] || strlen(id) > SM_SESSION_ID_MAX)
		return NULL;
	if (create && m->n_sessions >= SM_SESSION_SLOTS * 3 / 4)
		sm_sessions_prune(m, now_us);

	slot = sm_session_slot(id);
	while (m->sessions[slot].id[0] && strcmp(m->sessions[slot].id, id))
		slot = (slot + 1) & (SM_SESSION_SLOTS - 1);

	if (!m->sessions[slot].id[0]) {
		if (!create)
			return NULL;
		snprintf(m->sessions[slot].id, sizeof(m->sessions[slot].id), "%s", id);
		m->sessions[slot].dst_port = -1;
		m->n_sessions++;
	}
	if (now_us > m->sessions[slot].last_us)
		m->sessions[slot].last_us = now_us;
	return &m->sessions[slot];
}

void sm_infra_id(const uint8_t *key, size_t key_len, const struct nl_addr *a,
		 char out[21])
{
	uint8_t net[7];
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	size_t n = nl_network_bytes(a, net);

	HMAC(EVP_sha256(), key, (int)key_len, net, n, md, &md_len);
	memcpy(out, "inf_", 4);
	for (int i = 0; i < 8; i++)
		snprintf(out + 4 + 2 * i, 3, "%02x", md[i]);
}

/*
 * Returns a keyed 64-bit hash of the credential values in `creds` (a JSON
 * array), so that distinct pairs can be counted without keeping them.
 */
static uint64_t sm_credential_hash(const struct sm_mapper *m, json_t *creds)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	uint64_t h = 0;
	char *text = json_dumps(creds, JSON_COMPACT | JSON_ENCODE_ANY);

	if (!text)
		return 0;
	HMAC(EVP_sha256(), m->key, (int)m->key_len, (const uint8_t *)text,
	     strlen(text), md, &md_len);
	OPENSSL_cleanse(text, strlen(text));
	free(text);

	for (int i = 0; i < 8; i++)
		h = h << 8 | md[i];
	return h;
}

static enum sg_action sm_action_for(enum sg_confidence c, enum sg_stage stage)
{
	if (stage == SG_STAGE_ATTACK)
		return SG_ACTION_ALERT_SOC;
	if (c == SG_CONFIDENCE_HIGH)
		return SG_ACTION_BLOCK;
	if (c == SG_CONFIDENCE_MEDIUM)
		return SG_ACTION_STEP_UP;
	return SG_ACTION_MONITOR;
}

static enum sg_confidence sm_confidence_for(unsigned distinct_pairs)
{
	if (distinct_pairs >= SM_HIGH_PAIRS)
		return SG_CONFIDENCE_HIGH;
	if (distinct_pairs >= SM_MEDIUM_PAIRS)
		return SG_CONFIDENCE_MEDIUM;
	return SG_CONFIDENCE_LOW;
}

/* Sets the event type, confidence, stage and the action that follows. */
static void sm_classify(struct sg_signal *s, enum sg_event_type type,
			enum sg_confidence c, enum sg_stage stage)
{
	s->event_type = type;
	s->confidence = c;
	s->stage = stage;
	s->action = sm_action_for(c, stage);
}

/*
 * Reads the source address and the time of an event. time_text must
 * already be RFC 3339. Returns 0, or -1 with a reason in out.
 */
static int sm_read_source(json_t *ev, const char *addr_member,
			  const char *time_text, const char *sensor,
			  struct sm_source *src, struct sm_output *out)
{
	const char *addr = json_string_value(json_object_get(ev, addr_member));

	if (!addr || nl_addr_parse(addr, &src->addr) != 0) {
		snprintf(out->reason, sizeof(out->reason),
			 "missing or invalid \"%s\": expected an IP address", addr_member);
		return -1;
	}
	if (!time_text || sg_time_parse(time_text, &src->observed_us) != 0) {
		snprintf(out->reason, sizeof(out->reason),
			 "missing or invalid event time: expected a UTC date and time");
		return -1;
	}
	src->sensor = sensor && sm_sensor_id_valid(sensor) ? sensor : NULL;
	out->observed_us = src->observed_us;
	return 0;
}

/* Fills the fields that come from the source and emits the signal. */
static enum sm_result sm_emit(struct sm_mapper *m, struct sg_signal *s,
			      const struct sm_source *src, struct sm_output *out)
{
	const char *domain = sm_domain_for(m, src->sensor, src->dst_port);
	json_t *obj = NULL;

	if (!domain) {
		snprintf(out->reason, sizeof(out->reason),
			 "the domain map has no domain for sensor %s or port %d: add one "
			 "or a \"default\"", src->sensor ? src->sensor : "(none)",
			 src->dst_port);
		return SM_UNMAPPED;
	}
	snprintf(s->domain, sizeof(s->domain), "%s", domain);

	if (m->tor_exits && nl_set_contains(m->tor_exits, &src->addr))
		s->proxy_type = SG_PROXY_TOR;
	else if (m->cloud && nl_set_contains(m->cloud, &src->addr))
		s->proxy_type = SG_PROXY_DATACENTER;
	else
		s->proxy_type = SG_PROXY_RESIDENTIAL;

	nl_geo_region(m->geo, &src->addr, s->region);
	sm_infra_id(m->key, m->key_len, &src->addr, s->infra_id);
	if (src->sensor)
		snprintf(s->sensor, sizeof(s->sensor), "%s", src->sensor);
	s->observed_us = src->observed_us;

	obj = sg_to_json(s);
	if (!obj) {
		snprintf(out->reason, sizeof(out->reason), "out of memory");
		return SM_INVALID;
	}
	json_object_del(obj, "id");
	json_object_del(obj, "seq");
	out->signal = obj;
	return SM_SIGNAL;
}

static void sm_signal_init(struct sg_signal *s)
{
	memset(s, 0, sizeof(*s));
	s->credential_leaked = SG_BOOL_ABSENT;
}

enum sm_cowrie_kind {
	SM_COWRIE_OTHER,
	SM_COWRIE_CONNECT,
	SM_COWRIE_CLOSED,
	SM_COWRIE_LOGIN_FAILED,
	SM_COWRIE_LOGIN_SUCCESS,
	SM_COWRIE_ACTIVITY      /* something an intruder does after login */
};

static enum sm_cowrie_kind sm_cowrie_kind(const char *eventid)
{
	static const struct {
		const char *id;
		enum sm_cowrie_kind kind;
	} table[] = {
		{ "cowrie.session.connect", SM_COWRIE_CONNECT },
		{ "cowrie.session.closed", SM_COWRIE_CLOSED },
		{ "cowrie.login.failed", SM_COWRIE_LOGIN_FAILED },
		{ "cowrie.login.success", SM_COWRIE_LOGIN_SUCCESS },
		{ "cowrie.command.input", SM_COWRIE_ACTIVITY },
		{ "cowrie.session.file_download", SM_COWRIE_ACTIVITY },
		{ "cowrie.session.file_upload", SM_COWRIE_ACTIVITY },
		{ "cowrie.direct-tcpip.request", SM_COWRIE_ACTIVITY },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (!strcmp(table[i].id, eventid))
			return table[i].kind;
	}
	return SM_COWRIE_OTHER;
}

static json_t *sm_member_or_null(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	return v ? v : json_null();
}

static enum sm_result sm_map_cowrie(struct sm_mapper *m, json_t *ev,
				    struct sm_output *out)
{
	const char *eventid = json_string_value(json_object_get(ev, "eventid"));
	const char *session_id = json_string_value(json_object_get(ev, "session"));
	enum sm_cowrie_kind kind;
	struct sm_source src = { .dst_port = -1 };
	struct sm_session *session = NULL;
	struct sg_signal s;
	json_t *port = NULL;

	if (!eventid) {
		snprintf(out->reason, sizeof(out->reason),
			 "missing \"eventid\": not a Cowrie event");
		return SM_INVALID;
	}
	kind = sm_cowrie_kind(eventid);
	if (kind == SM_COWRIE_OTHER)
		return SM_NO_SIGNAL;

	if (sm_read_source(ev, "src_ip",
			   json_string_value(json_object_get(ev, "timestamp")),
			   json_string_value(json_object_get(ev, "sensor")),
			   &src, out) != 0)
		return SM_INVALID;

	sm_signal_init(&s);
	switch (kind) {
	case SM_COWRIE_CONNECT:
		session = sm_session_get(m, session_id, true, src.observed_us);
		port = json_object_get(ev, "dst_port");
		if (session && json_is_integer(port) && json_integer_value(port) > 0 &&
		    json_integer_value(port) <= 65535)
			session->dst_port = (int)json_integer_value(port);
		return SM_NO_SIGNAL;

	case SM_COWRIE_CLOSED:
		session = sm_session_get(m, session_id, false, src.observed_us);
		if (session)
			session->closed = true;
		return SM_NO_SIGNAL;

	case SM_COWRIE_LOGIN_FAILED:
	case SM_COWRIE_LOGIN_SUCCESS: {
		json_t *creds = json_array();
		uint64_t pair = 0;
		unsigned distinct = 0;

		json_array_append(creds, sm_member_or_null(ev, "username"));
		json_array_append(creds, sm_member_or_null(ev, "password"));
		pair = sm_credential_hash(m, creds);
		distinct = sm_window_note(m, nl_network_key(&src.addr), pair,
					  src.observed_us);

		json_decref(creds);
		if (kind == SM_COWRIE_LOGIN_SUCCESS) {
			sm_classify(&s, SG_EVENT_CREDENTIAL_TESTING, SG_CONFIDENCE_HIGH,
				    SG_STAGE_ATTACK);
			s.credential_leaked = 1;
		} else {
			sm_classify(&s, SG_EVENT_CREDENTIAL_TESTING,
				    sm_confidence_for(distinct), SG_STAGE_TESTING);
		}
		session = sm_session_get(m, session_id, false, src.observed_us);
		break;
	}

	case SM_COWRIE_ACTIVITY:
		/* One signal per session: the first thing done after login. */
		session = sm_session_get(m, session_id, true, src.observed_us);
		if (session && session->activity_signalled)
			return SM_NO_SIGNAL;
		if (session)
			session->activity_signalled = true;
		sm_classify(&s, SG_EVENT_ACCOUNT_PROBE, SG_CONFIDENCE_HIGH,
			    SG_STAGE_ATTACK);
		break;

	case SM_COWRIE_OTHER:
		return SM_NO_SIGNAL;
	}

	src.dst_port = session ? session->dst_port : -1;
	return sm_emit(m, &s, &src, out);
}

/* OpenCanary log types (opencanary/logger.py) that are login attempts. */
static bool sm_opencanary_is_login(json_int_t logtype)
{
	switch (logtype) {
	case 2000:      /* FTP login attempt */
	case 3001:      /* HTTP POST login attempt */
	case 4002:      /* SSH login attempt */
	case 6001:      /* Telnet login attempt */
	case 7001:      /* HTTP proxy login attempt */
	case 8001:      /* MySQL login attempt */
	case 9001:      /* MSSQL SQL authentication */
	case 9002:      /* MSSQL Windows authentication */
	case 12001:     /* VNC authentication */
	case 14001:     /* RDP connection with a user name */
		return true;
	default:
		return false;
	}
}

/* OpenCanary's log type for a file opened on a decoy SMB share. */
#define SM_OPENCANARY_SMB_FILE_OPEN 5000

/*
 * Collects the credential members of OpenCanary's logdata: those whose
 * name contains "user" or "pass" in any case, in name order. Without
 * any, the whole logdata stands for the attempt.
 */
static int sm_compare_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_t *sm_opencanary_credentials(json_t *logdata)
{
	json_t *creds = json_array();
	const char *names[64];
	size_t n = 0;
	const char *name = NULL;
	json_t *value = NULL;

	if (!creds || !json_is_object(logdata))
		return creds;

	/* jansson keeps insertion order, so the names are sorted first. */
	json_object_foreach(logdata, name, value) {
		if (n < sizeof(names) / sizeof(names[0]) &&
		    (strcasestr(name, "user") || strcasestr(name, "pass")))
			names[n++] = name;
	}
	qsort(names, n, sizeof(names[0]), sm_compare_names);

	for (size_t i = 0; i < n; i++) {
		json_array_append_new(creds, json_string(names[i]));
		json_array_append(creds, json_object_get(logdata, names[i]));
	}
	if (n == 0)
		json_array_append(creds, logdata);
	return creds;
}

/*
 * Rewrites OpenCanary's "YYYY-MM-DD HH:MM:SS[.ffffff]" (UTC) as RFC 3339.
 * Returns buf, or NULL when text does not have that shape.
 */
static const char *sm_opencanary_time(const char *text, char buf[40])
{
	size_t n = text ? strlen(text) : 0;

	if (n < 19 || n > 32 || text[10] != ' ')
		return NULL;
	memcpy(buf, text, n);
	buf[10] = 'T';
	buf[n] = 'Z';
	buf[n + 1] = '\0';
	return buf;
}

static enum sm_result sm_map_opencanary(struct sm_mapper *m, json_t *ev,
					struct sm_output *out)
{
	json_t *logtype = json_object_get(ev, "logtype");
	json_t *port = json_object_get(ev, "dst_port");
	const char *when = json_string_value(json_object_get(ev, "utc_time"));
	struct sm_source src = { .dst_port = -1 };
	struct sg_signal s;
	char time_buf[40];
	json_int_t type;

	if (!json_is_integer(logtype)) {
		snprintf(out->reason, sizeof(out->reason),
			 "missing or non-integer \"logtype\": not an OpenCanary event");
		return SM_INVALID;
	}
	type = json_integer_value(logtype);
	if (!sm_opencanary_is_login(type) && type != SM_OPENCANARY_SMB_FILE_OPEN)
		return SM_NO_SIGNAL;

	/* OpenCanary writes local_time in UTC too; older versions lack utc_time. */
	if (!when)
		when = json_string_value(json_object_get(ev, "local_time"));
	if (sm_read_source(ev, "src_host", sm_opencanary_time(when, time_buf),
			   json_string_value(json_object_get(ev, "node_id")),
			   &src, out) != 0)
		return SM_INVALID;
	if (json_is_integer(port) && json_integer_value(port) > 0 &&
	    json_integer_value(port) <= 65535)
		src.dst_port = (int)json_integer_value(port);

	sm_signal_init(&s);
	if (type == SM_OPENCANARY_SMB_FILE_OPEN) {
		sm_classify(&s, SG_EVENT_ACCOUNT_PROBE, SG_CONFIDENCE_HIGH,
			    SG_STAGE_ATTACK);
	} else {
		json_t *creds = sm_opencanary_credentials(json_object_get(ev, "logdata"));
		uint64_t pair = sm_credential_hash(m, creds);
		unsigned distinct = sm_window_note(m, nl_network_key(&src.addr), pair,
						   src.observed_us);

		json_decref(creds);
		sm_classify(&s, SG_EVENT_CREDENTIAL_TESTING,
			    sm_confidence_for(distinct), SG_STAGE_TESTING);
	}
	return sm_emit(m, &s, &src, out);
}

/* A line in the service's own format goes on unchanged; the server checks it. */
static enum sm_result sm_map_signal(json_t *ev, struct sm_output *out)
{
	const char *when = json_string_value(json_object_get(ev, "timestamp"));
	int64_t us = 0;

	if (when && sg_time_parse(when, &us) == 0)
		out->observed_us = us;
	out->signal = json_incref(ev);
	return SM_SIGNAL;
}

static bool sm_is_blank(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return false;
	}
	return true;
}

enum sm_result sm_map_line(struct sm_mapper *m, const char *line, size_t len,
			   struct sm_output *out)
{
	enum sm_result rc = SM_INVALID;
	json_t *ev = NULL;
	json_error_t jerr;
	char why[160];

	memset(out, 0, sizeof(*out));

	if (len > SM_MAX_LINE) {
		snprintf(out->reason, sizeof(out->reason),
			 "line longer than %d bytes", SM_MAX_LINE);
		goto out;
	}
	if (sm_is_blank(line, len)) {
		rc = SM_NO_SIGNAL;
		goto out;
	}

	/*
	 * Signal lines follow the server's strict rule. Honeypot logs quote
	 * attacker bytes, and Cowrie writes a NUL byte as \u0000, so those
	 * lines also accept NUL inside strings. Parser messages may quote the
	 * input, so only the column is reported.
	 */
	if (m->format == SM_FORMAT_SIGNALS) {
		ev = sg_json_parse_strict(line, len, why, sizeof(why));
		jerr.column = 0;
	} else {
		ev = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	}
	if (!ev) {
		if (jerr.column > 0)
			snprintf(out->reason, sizeof(out->reason),
				 "invalid JSON at column %d", jerr.column);
		else
			snprintf(out->reason, sizeof(out->reason), "invalid JSON");
		goto out;
	}
	if (!json_is_object(ev)) {
		snprintf(out->reason, sizeof(out->reason), "not a JSON object");
		goto out;
	}

	switch (m->format) {
	case SM_FORMAT_COWRIE:
		rc = sm_map_cowrie(m, ev, out);
		break;
	case SM_FORMAT_OPENCANARY:
		rc = sm_map_opencanary(m, ev, out);
		break;
	case SM_FORMAT_SIGNALS:
		rc = sm_map_signal(ev, out);
		break;
	}

out:
	json_decref(ev);
	return rc;
}
