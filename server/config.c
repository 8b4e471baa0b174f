#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <net/if.h>

#include <ini.h>

#include "log.h"

enum setting_type { SETTING_TEXT, SETTING_U64 };

struct setting {
	const char *name;
	enum setting_type type;
	size_t offset;
	size_t size;            /* buffer size for SETTING_TEXT */
	uint64_t min, max;      /* inclusive range for SETTING_U64 */
	const char *unit;
};

#define TEXT(field) SETTING_TEXT, offsetof(struct cd_config, field), \
	sizeof(((struct cd_config *)0)->field), 0, 0
#define U64(field, lo, hi) SETTING_U64, offsetof(struct cd_config, field), \
	0, (lo), (hi)

static const struct setting settings[] = {
	{ "listen", TEXT(listen), "HOST:PORT" },
	{ "data_dir", TEXT(data_dir), "directory" },
	{ "tls_cert", TEXT(tls_cert), "PEM file" },
	{ "tls_key", TEXT(tls_key), "PEM file" },
	{ "console_dir", TEXT(console_dir), "directory of the built web console, empty to disable it" },
	{ "log_level", TEXT(log_level), "error|warn|info|debug" },
	{ "outbound_queue_bytes", U64(outbound_queue_bytes, 65536, 1ull << 32), "bytes" },
	{ "max_subscriptions", U64(max_subscriptions, 1, 1024), "per connection" },
	{ "max_body_bytes", U64(max_body_bytes, 1024, 1ull << 30), "bytes" },
	{ "max_message_bytes", U64(max_message_bytes, 1024, 64ull << 20), "bytes" },
	{ "max_batch_signals", U64(max_batch_signals, 1, 1000000), "signals" },
	{ "max_clock_ahead_s", U64(max_clock_ahead_s, 0, 86400ull * 365), "seconds (0: no limit)" },
	{ "ping_interval_s", U64(ping_interval_s, 1, 3600), "seconds" },
	{ "idle_timeout_s", U64(idle_timeout_s, 2, 7200), "seconds" },
	{ "auth_timeout_s", U64(auth_timeout_s, 1, 600), "seconds" },
	{ "retention_hours", U64(retention_hours, 1, 24ull * 3650), "hours" },
	{ "retention_s", U64(retention_s, 0, 3600ull * 24 * 3650), "seconds (0: use retention_hours)" },
	{ "retention_check_s", U64(retention_check_s, 1, 86400), "seconds" },
	{ "durability", TEXT(durability), "full|nometasync|nosync" },
	{ "sync_interval_ms", U64(sync_interval_ms, 10, 60000), "milliseconds" },
	{ "campaign_idle_gap_s", U64(campaign_idle_gap_s, 1, 86400ull * 365), "seconds" },
	{ "stats_retention_days", U64(stats_retention_days, 1, 3650), "days" },
	{ "map_size_max_bytes", U64(map_size_max_bytes, 1ull << 20, 1ull << 44), "bytes" },
	{ "rate_limit_per_s", U64(rate_limit_per_s, 1, 10000000), "requests per second" },
	{ "rate_limit_burst", U64(rate_limit_burst, 1, 10000000), "requests" },
	{ "max_connections", U64(max_connections, 1, 1000000), "connections" },
	{ "max_connections_per_key", U64(max_connections_per_key, 1, 1000000), "connections" },
	{ "max_filter_domains", U64(max_filter_domains, 1, 10000), "domains per filter" },
	{ "handshake_timeout_s", U64(handshake_timeout_s, 1, 300), "seconds" },
	{ "user", TEXT(user), "user name" },
	{ "replay_chunk_signals", U64(replay_chunk_signals, 1, 4096), "signals" },
};

#define SETTING_COUNT (sizeof(settings) / sizeof(settings[0]))

void cfg_defaults(struct cd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->listen, "127.0.0.1:8080");
	strcpy(cfg->data_dir, "./var");
	strcpy(cfg->log_level, "info");
	/* The build passes the source tree's console/dist; packagers set
	 * CANARY_CONSOLE_DIR to the installed copy. */
	snprintf(cfg->console_dir, sizeof(cfg->console_dir), "%s", CANARY_CONSOLE_DIR);
	cfg->outbound_queue_bytes = 8ull << 20;
	cfg->max_subscriptions = 16;
	cfg->max_body_bytes = 8ull << 20;
	cfg->max_message_bytes = 1ull << 20;
	cfg->max_batch_signals = 10000;
	cfg->ping_interval_s = 30;
	cfg->idle_timeout_s = 75;
	cfg->auth_timeout_s = 10;
	cfg->retention_hours = 24 * 30;
	cfg->retention_check_s = 60;
	strcpy(cfg->durability, "full");
	cfg->sync_interval_ms = 1000;
	cfg->campaign_idle_gap_s = 6 * 3600;
	cfg->max_clock_ahead_s = 3600;
	cfg->stats_retention_days = 90;
	cfg->map_size_max_bytes = 16ull << 30;
	cfg->rate_limit_per_s = 1000;
	cfg->rate_limit_burst = 5000;
	cfg->max_connections = 20000;
	cfg->max_connections_per_key = 10000;
	cfg->max_filter_domains = 10000;
	cfg->handshake_timeout_s = 10;
	cfg->replay_chunk_signals = 256;
}

static const struct setting *setting_find(const char *name)
{
	for (size_t i = 0; i < SETTING_COUNT; i++)
		if (!strcmp(settings[i].name, name))
			return &settings[i];
	return NULL;
}

/* Accepts a decimal integer with an optional K, M, G or T suffix (powers
 * of 1024), so that sizes can be written as "8M". */
static int parse_u64(const char *text, uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;
	unsigned shift = 0;

	if (*text < '0' || *text > '9')
		return -1;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	default: break;
	}
	if (*end)
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int setting_apply(struct cd_config *cfg, const char *name,
			 const char *value, char *err, size_t errlen)
{
	const struct setting *s = setting_find(name);
	char *base = (char *)cfg;
	uint64_t v;

	if (!s) {
		snprintf(err, errlen,
			 "unknown setting \"%.64s\"; see conf/canaryd.conf for the list",
			 name);
		return -1;
	}
	if (s->type == SETTING_TEXT) {
		if (strlen(value) >= s->size) {
			snprintf(err, errlen, "setting %s is longer than %zu bytes",
				 name, s->size - 1);
			return -1;
		}
		strcpy(base + s->offset, value);
		return 0;
	}
	if (parse_u64(value, &v) || v < s->min || v > s->max) {
		snprintf(err, errlen,
			 "setting %s = \"%.64s\" is invalid: expected an integer from %" PRIu64
			 " to %" PRIu64 " (%s%s)",
			 name, value, s->min, s->max, s->unit,
			 strcmp(s->unit, "bytes") ? "" : "; K, M, G, T suffixes allowed");
		return -1;
	}
	memcpy(base + s->offset, &v, sizeof(v));
	return 0;
}

int cfg_set(struct cd_config *cfg, const char *assignment, char *err,
	    size_t errlen)
{
	const char *eq = strchr(assignment, '=');
	char name[64];
	size_t len;

	if (!eq || eq == assignment) {
		snprintf(err, errlen,
			 "--set \"%.64s\" is invalid: expected NAME=VALUE",
			 assignment);
		return -1;
	}
	len = (size_t)(eq - assignment);
	if (len >= sizeof(name)) {
		snprintf(err, errlen, "--set: setting name is too long");
		return -1;
	}
	memcpy(name, assignment, len);
	name[len] = '\0';
	return setting_apply(cfg, name, eq + 1, err, errlen);
}

/* Problems one configuration file may list; later ones are counted. */
#define FILE_PROBLEMS_MAX 16

struct file_problem {
	int line;
	char text[200];
};

struct ini_state {
	struct cd_config *cfg;
	FILE *file;
	int line;               /* the line inih is parsing */
	size_t problems;        /* all found, also past FILE_PROBLEMS_MAX */
	struct file_problem problem[FILE_PROBLEMS_MAX];
	int first_pass;         /* the pass that applies the settings */
};

static int is_syntax_line(const struct ini_state *st, int line)
{
	for (size_t i = 0; i < st->problems && i < FILE_PROBLEMS_MAX; i++)
		if (st->problem[i].line == line && st->problem[i].text[0] == '\0')
			return 1;
	return 0;
}

/* Records a problem; an empty text marks a line inih could not parse. */
static void add_problem(struct ini_state *st, int line, const char *text)
{
	if (st->problems < FILE_PROBLEMS_MAX) {
		st->problem[st->problems].line = line;
		snprintf(st->problem[st->problems].text,
			 sizeof(st->problem[0].text), "%s", text);
	}
	st->problems++;
}

/* Reads one line for inih and counts it, so that the handler can record
 * the line of each setting; inih counts lines the same way. A
 * line already found unparsable reads as empty, so that inih reports
 * the next one. */
static char *ini_read_line(char *str, int num, void *stream)
{
	struct ini_state *st = stream;
	char *line = fgets(str, num, st->file);
	size_t len;
	int c;

	if (!line)
		return NULL;
	st->line++;
	len = strlen(str);
	/* inih would read the rest of a line longer than its buffer as
	 * further lines and take the first part as a whole setting. Such a
	 * line is skipped here and reported once, so that line numbers stay
	 * right. */
	if (len && str[len - 1] != '\n' && !feof(st->file)) {
		while ((c = fgetc(st->file)) != EOF && c != '\n')
			;
		if (st->first_pass) {
			char detail[80];

			snprintf(detail, sizeof(detail),
				 "the line is longer than %d characters; shorten it", num - 2);
			add_problem(st, st->line, detail);
		}
		strcpy(str, "\n");
		return line;
	}
	if (is_syntax_line(st, st->line))
		strcpy(str, "\n");
	return line;
}


/* Applies one setting; a bad one is recorded and parsing goes on, so
 * that one run lists every bad setting of the file. */
static int ini_on_setting(void *user, const char *section, const char *name,
			  const char *value)
{
	struct ini_state *st = user;
	char detail[200];

	if (section[0] && strcmp(section, "canaryd")) {
		snprintf(detail, sizeof(detail),
			 "unknown section [%.64s]; settings go before any section or under [canaryd]",
			 section);
		add_problem(st, st->line, detail);
		return 1;
	}
	if (setting_apply(st->cfg, name, value, detail, sizeof(detail)))
		add_problem(st, st->line, detail);
	/* Success for inih either way: its error line is then always a
	 * syntax error. */
	return 1;
}

static int ini_accept(void *user, const char *section, const char *name,
		      const char *value)
{
	(void)user;
	(void)section;
	(void)name;
	(void)value;
	return 1;
}

/* Parses the file once; returns inih's result, or -1 when it cannot be
 * opened. */
static int ini_pass(struct ini_state *st, const char *path, ini_handler handler)
{
	int rc;

	st->file = fopen(path, "r");
	if (!st->file)
		return -1;
	st->line = 0;
	rc = ini_parse_stream(ini_read_line, st, handler, st);
	fclose(st->file);
	st->file = NULL;
	return rc;
}

static int problem_line_cmp(const void *a, const void *b)
{
	const struct file_problem *x = a, *y = b;

	return (x->line > y->line) - (x->line < y->line);
}

int cfg_load_file(struct cd_config *cfg, const char *path, char *err,
		  size_t errlen)
{
	struct ini_state st;
	size_t listed, used;
	int truncated = 0;
	int rc;

	memset(&st, 0, sizeof(st));
	st.cfg = cfg;
	st.first_pass = 1;
	/* The shipped file comments with '#', so a '#' after a value and a
	 * space starts a comment too, not only inih's default ';'. Debian's
	 * libinih reads this variable at run time. */
	ini_inline_comment_prefixes = ";#";
	rc = ini_pass(&st, path, ini_on_setting);
	/* inih returns the first line it could not parse. Each later pass
	 * reads the lines found so far as empty and applies nothing, so it
	 * returns the next such line. */
	st.first_pass = 0;
	while (rc > 0 && st.problems < FILE_PROBLEMS_MAX) {
		add_problem(&st, rc, "");
		rc = ini_pass(&st, path, ini_accept);
	}
	if (rc > 0) {
		/* More unparsable lines than the list takes. */
		truncated = 1;
		rc = 0;
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot open configuration file %s: %s",
			 path, strerror(errno));
		return -1;
	}
	if (!st.problems)
		return 0;

	listed = st.problems < FILE_PROBLEMS_MAX ? st.problems : FILE_PROBLEMS_MAX;
	for (size_t i = 0; i < listed; i++)
		if (!st.problem[i].text[0])
			snprintf(st.problem[i].text, sizeof(st.problem[i].text),
				 "syntax error (expected name = value)");
	qsort(st.problem, listed, sizeof(st.problem[0]), problem_line_cmp);

	if (st.problems == 1) {
		snprintf(err, errlen, "configuration file %s, line %d: %s", path,
			 st.problem[0].line, st.problem[0].text);
		return -1;
	}
	/* One line, so that a reload logs it as one log line. */
	used = (size_t)snprintf(err, errlen, "configuration file %s has %s%zu errors", path,
				truncated ? "more than " : "", st.problems);
	for (size_t i = 0; i < listed && used < errlen; i++)
		used += (size_t)snprintf(err + used, errlen - used, "%s line %d: %s",
					 i ? ";" : ":", st.problem[i].line, st.problem[i].text);
	if (st.problems > listed && used < errlen)
		snprintf(err + used, errlen - used, "; and %zu more", st.problems - listed);
	return -1;
}

int cfg_listen_split(const char *listen, char *host, size_t hostlen,
		     int *port, char *err, size_t errlen)
{
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	size_t len;
	char *end = NULL;
	long p;

	if (!colon)
		goto invalid;
	len = (size_t)(colon - listen);
	/* "[::1]:8080" names an IPv6 address. */
	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		h++;
		len -= 2;
	}
	if (len == 0 || len >= hostlen)
		goto invalid;
	p = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || p < 0 || p > 65535)
		goto invalid;
	memcpy(host, h, len);
	host[len] = '\0';
	*port = (int)p;

	/* libwebsockets takes an address or an interface name and, given
	 * anything else, starts without a listener; so reject it here. */
	if (!strcmp(host, "localhost"))
		snprintf(host, hostlen, "127.0.0.1");
	{
		unsigned char addr[sizeof(struct in6_addr)];

		if (inet_pton(AF_INET, host, addr) == 1 ||
		    inet_pton(AF_INET6, host, addr) == 1 || if_nametoindex(host))
			return 0;
	}
	snprintf(err, errlen,
		 "listen address \"%.128s\" is invalid: \"%.64s\" is neither an IP address nor a network interface; use e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080",
		 listen, host);
	return -1;

invalid:
	snprintf(err, errlen,
		 "listen address \"%.128s\" is invalid: expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080",
		 listen);
	return -1;
}

int64_t cfg_retention_us(const struct cd_config *cfg)
{
	if (cfg->retention_s)
		return (int64_t)cfg->retention_s * 1000000;
	return (int64_t)cfg->retention_hours * 3600 * 1000000;
}

int cfg_durability(const struct cd_config *cfg, unsigned *out)
{
	static const char *const names[] = { "full", "nometasync", "nosync" };

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(cfg->durability, names[i])) {
			*out = i;
			return 0;
		}
	}
	return -1;
}

int cfg_validate(const struct cd_config *cfg, char *err, size_t errlen)
{
	char host[256];
	unsigned durability;
	enum log_level level;
	int port;

	if (cfg_listen_split(cfg->listen, host, sizeof(host), &port, err, errlen))
		return -1;
	if (!cfg->data_dir[0]) {
		snprintf(err, errlen, "data_dir is empty: set it to a directory");
		return -1;
	}
	if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
		snprintf(err, errlen,
			 "tls_cert and tls_key must be set together (one is empty)");
		return -1;
	}
	if (log_level_parse(cfg->log_level, &level)) {
		snprintf(err, errlen,
			 "log_level \"%.32s\" is invalid: use error, warn, info or debug",
			 cfg->log_level);
		return -1;
	}
	if (cfg_durability(cfg, &durability)) {
		snprintf(err, errlen,
			 "durability \"%.32s\" is invalid: use full, nometasync or nosync",
			 cfg->durability);
		return -1;
	}
	/* Stats must cover every stored signal, so they outlive retention. */
	if ((int64_t)cfg->stats_retention_days * 86400 * 1000000 < cfg_retention_us(cfg)) {
		snprintf(err, errlen,
			 "stats_retention_days (%llu) is shorter than the signal retention (retention_hours or retention_s): raise it",
			 (unsigned long long)cfg->stats_retention_days);
		return -1;
	}
	if (cfg->idle_timeout_s <= cfg->ping_interval_s) {
		snprintf(err, errlen,
			 "idle_timeout_s (%llu) must be larger than ping_interval_s (%llu)",
			 (unsigned long long)cfg->idle_timeout_s,
			 (unsigned long long)cfg->ping_interval_s);
		return -1;
	}
	return 0;
}
