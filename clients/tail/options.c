#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Maximum length of one filter value, the length limit of a domain name. */
#define FILTER_VALUE_MAX 253

enum long_only_option {
	OPT_DOMAIN = 256,
	OPT_EVENT_TYPE,
	OPT_STAGE,
	OPT_PROXY_TYPE,
	OPT_REGION,
	OPT_MIN_CONFIDENCE,
	OPT_THREAT_ONLY,
	OPT_SINCE_SEQ,
	OPT_SINCE_TIME,
	OPT_CURSOR_FILE,
	OPT_FORMAT,
	OPT_CACERT,
	OPT_MAX_SIGNALS,
	OPT_QUIET_STATUS,
	OPT_URL,
	OPT_KEY,
};

static const struct option long_options[] = {
	{ "url", required_argument, NULL, OPT_URL },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "domain", required_argument, NULL, OPT_DOMAIN },
	{ "event-type", required_argument, NULL, OPT_EVENT_TYPE },
	{ "stage", required_argument, NULL, OPT_STAGE },
	{ "proxy-type", required_argument, NULL, OPT_PROXY_TYPE },
	{ "region", required_argument, NULL, OPT_REGION },
	{ "min-confidence", required_argument, NULL, OPT_MIN_CONFIDENCE },
	{ "threat-only", no_argument, NULL, OPT_THREAT_ONLY },
	{ "since-seq", required_argument, NULL, OPT_SINCE_SEQ },
	{ "since-time", required_argument, NULL, OPT_SINCE_TIME },
	{ "cursor-file", required_argument, NULL, OPT_CURSOR_FILE },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "cacert", required_argument, NULL, OPT_CACERT },
	{ "max-signals", required_argument, NULL, OPT_MAX_SIGNALS },
	{ "quiet-status", no_argument, NULL, OPT_QUIET_STATUS },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

void
tail_options_print_usage(FILE *out)
{
	fputs(
"usage: canary-tail --url ws://HOST:PORT [--key KEY] [filter options]\n"
"                   [--since-seq N | --since-time T] [--cursor-file FILE]\n"
"\n"
"Subscribe to a canaryd signal stream and print one signal per line, as\n"
"compact JSON, on standard output. Status lines go to standard error.\n"
"\n"
"Connection:\n"
"  --url URL            ws://HOST:PORT[/PATH] or wss://...; PATH defaults to\n"
"                       " TAIL_DEFAULT_PATH "\n"
"  --key KEY            API key with the subscribe scope; the environment\n"
"                       variable CANARY_KEY is used when --key is absent and\n"
"                       keeps the key out of the process list\n"
"  --cacert FILE        PEM file of CA certificates for wss:// (default: the\n"
"                       system CA store); certificates are always verified\n"
"  --format F           wire format: json (canary.v1.json, the default) or\n"
"                       msgpack (canary.v1.msgpack); output is JSON either way\n"
"\n"
"Filter (each option may be repeated; values of one option are alternatives):\n"
"  --domain D           example.com, or *.example.com for its subdomains\n"
"  --event-type T       credential_testing, account_probe, sim_recon, fraud_test\n"
"  --stage S            TESTING or ATTACK\n"
"  --proxy-type P       datacenter, residential, mobile or tor\n"
"  --region R           ISO 3166-1 alpha-2 code, EU or ZZ\n"
"  --min-confidence C   low, medium or high\n"
"  --threat-only        only signals of medium or high confidence\n"
"\n"
"Resume:\n"
"  --since-seq N        replay signals with seq greater than N (0: oldest kept)\n"
"  --since-time T       replay signals observed at or after T (RFC 3339)\n"
"  --cursor-file FILE   read the resume point from FILE at start and store the\n"
"                       last printed seq there; FILE overrides --since-*\n"
"\n"
"Other:\n"
"  --max-signals N      exit with status 0 after printing N signals\n"
"  --quiet-status       write only warnings and errors to standard error\n"
"  -h, --help           show this text\n"
"\n"
"Exit status: 0 after SIGINT, SIGTERM or --max-signals; 1 on a runtime\n"
"failure (cursor file write, output, protocol); 2 on invalid options, a\n"
"corrupt cursor file, or when the server rejects the key or the filter.\n"
"Other failures (connection lost, server restart, close codes 1001, 4008,\n"
"4429) lead to a reconnect with backoff from the last printed seq.\n",
	      out);
}

static void __attribute__((format(printf, 3, 4)))
set_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Parse a decimal integer in [min, LLONG_MAX]: digits only, no sign, no
 * spaces, so that "12abc" or "-1" cannot slip through as a cursor.
 */
static int
parse_count(const char *text, json_int_t min, json_int_t *out)
{
	unsigned long long value;
	char *end = NULL;

	if (text[0] < '0' || text[0] > '9')
		return -1;

	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno || *end || value > (unsigned long long)LLONG_MAX)
		return -1;
	if ((json_int_t)value < min)
		return -1;

	*out = (json_int_t)value;
	return 0;
}

/*
 * Check the shape of an RFC 3339 time (date, 'T', time, optional fraction,
 * then 'Z' or an offset). The server does the full validation; this check
 * catches typos before a connection is made.
 */
static int
check_rfc3339(const char *text)
{
	struct tm tm;
	const char *rest;

	memset(&tm, 0, sizeof(tm));
	rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest || strlen(text) < 20)
		return -1;

	if (*rest == '.') {
		rest++;
		if (*rest < '0' || *rest > '9')
			return -1;
		while (*rest >= '0' && *rest <= '9')
			rest++;
	}

	if (!strcmp(rest, "Z"))
		return 0;

	if ((rest[0] == '+' || rest[0] == '-') && strlen(rest) == 6 &&
	    rest[3] == ':')
		return 0;

	return -1;
}

static int
check_key(const char *key)
{
	size_t len = strlen(key);
	size_t i;

	if (len == 0 || len > TAIL_KEY_MAX)
		return -1;

	/* The key goes into an HTTP header: printable ASCII only, no spaces. */
	for (i = 0; i < len; i++)
		if (key[i] < 0x21 || key[i] > 0x7e)
			return -1;

	return 0;
}

static int
append_filter_value(json_t *filter, const char *field, const char *value)
{
	json_t *list = json_object_get(filter, field);

	if (!value[0] || strlen(value) > FILTER_VALUE_MAX)
		return -1;

	if (!list) {
		list = json_array();
		if (json_object_set_new(filter, field, list))
			return -1;
	}

	return json_array_append_new(list, json_string(value));
}

/* Split the host part, "name", "1.2.3.4" or "[::1]", with an optional port. */
static int
parse_authority(const char *start, size_t len, struct tail_url *url,
		char *err, size_t errlen)
{
	const char *host = start;
	size_t host_len;
	const char *port_text = NULL;
	size_t port_len = 0;
	int bracketed = 0;
	char digits[8];
	json_int_t port = url->tls ? 443 : 80;

	if (len && start[0] == '[') {
		const char *close = memchr(start, ']', len);

		if (!close) {
			snprintf(err, errlen, "invalid URL: missing ']' after the IPv6 address");
			return -1;
		}
		bracketed = 1;
		host = start + 1;
		host_len = (size_t)(close - host);
		if (close + 1 < start + len) {
			if (close[1] != ':') {
				snprintf(err, errlen, "invalid URL: expected ':PORT' after ']'");
				return -1;
			}
			port_text = close + 2;
			port_len = (size_t)(start + len - port_text);
		}
	} else {
		const char *colon = memchr(start, ':', len);

		host_len = colon ? (size_t)(colon - start) : len;
		if (colon) {
			port_text = colon + 1;
			port_len = (size_t)(start + len - port_text);
		}
	}

	if (host_len == 0 || host_len >= sizeof(url->host) ||
	    memchr(host, '@', host_len)) {
		snprintf(err, errlen, "invalid URL: expected a host name or address after the scheme, without user information");
		return -1;
	}
	memcpy(url->host, host, host_len);
	url->host[host_len] = '\0';

	if (port_text) {
		if (port_len == 0 || port_len >= sizeof(digits)) {
			snprintf(err, errlen, "invalid URL: the port must be a number from 1 to 65535");
			return -1;
		}
		memcpy(digits, port_text, port_len);
		digits[port_len] = '\0';
		if (parse_count(digits, 1, &port) || port > 65535) {
			snprintf(err, errlen, "invalid URL: the port must be a number from 1 to 65535");
			return -1;
		}
	}
	url->port = (int)port;

	snprintf(url->host_header, sizeof(url->host_header), "%s%s%s",
		 bracketed ? "[" : "", url->host, bracketed ? "]" : "");
	if (port_text) {
		size_t used = strlen(url->host_header);

		snprintf(url->host_header + used, sizeof(url->host_header) - used,
			 ":%d", url->port);
	}

	return 0;
}

int
tail_url_parse(const char *text, struct tail_url *url, char *err,
	       size_t errlen)
{
	const char *authority;
	const char *path;
	size_t i;

	memset(url, 0, sizeof(*url));

	if (!strncmp(text, "ws://", 5)) {
		authority = text + 5;
	} else if (!strncmp(text, "wss://", 6)) {
		url->tls = 1;
		authority = text + 6;
	} else {
		snprintf(err, errlen, "invalid URL '%.200s': use ws://HOST:PORT or wss://HOST:PORT", text);
		return -1;
	}

	for (i = 0; text[i]; i++) {
		if ((unsigned char)text[i] <= 0x20 || text[i] == 0x7f) {
			snprintf(err, errlen, "invalid URL: it contains a space or control character");
			return -1;
		}
	}

	path = strchr(authority, '/');
	if (!path)
		path = authority + strlen(authority);

	if (parse_authority(authority, (size_t)(path - authority), url, err,
			    errlen))
		return -1;

	if (!path[0] || !strcmp(path, "/"))
		path = TAIL_DEFAULT_PATH;
	if (strlen(path) >= sizeof(url->path)) {
		snprintf(err, errlen, "invalid URL: the path is longer than %zu bytes", sizeof(url->path) - 1);
		return -1;
	}
	strcpy(url->path, path);

	return 0;
}

/* Apply one option; returns -1 with err set when its value is invalid. */
static int
apply_option(int opt, const char *arg, struct tail_options *opts,
	     const char **url_text, char *err, size_t errlen)
{
	static const char *const list_field[] = {
		[OPT_DOMAIN - OPT_DOMAIN] = "domains",
		[OPT_EVENT_TYPE - OPT_DOMAIN] = "event_types",
		[OPT_STAGE - OPT_DOMAIN] = "stages",
		[OPT_PROXY_TYPE - OPT_DOMAIN] = "proxy_types",
		[OPT_REGION - OPT_DOMAIN] = "regions",
	};

	switch (opt) {
	case OPT_URL:
		*url_text = arg;
		return 0;

	case OPT_KEY:
		opts->key = arg;
		return 0;

	case OPT_DOMAIN:
	case OPT_EVENT_TYPE:
	case OPT_STAGE:
	case OPT_PROXY_TYPE:
	case OPT_REGION:
		if (append_filter_value(opts->filter, list_field[opt - OPT_DOMAIN], arg)) {
			set_error(err, errlen, "invalid filter value '%.300s': it must be 1 to 253 characters", arg);
			return -1;
		}
		return 0;

	case OPT_MIN_CONFIDENCE:
		if (strcmp(arg, "low") && strcmp(arg, "medium") && strcmp(arg, "high")) {
			set_error(err, errlen, "invalid --min-confidence '%.100s': use low, medium or high", arg);
			return -1;
		}
		json_object_set_new(opts->filter, "min_confidence", json_string(arg));
		return 0;

	case OPT_THREAT_ONLY:
		json_object_set_new(opts->filter, "threat_only", json_true());
		return 0;

	case OPT_SINCE_SEQ:
		if (parse_count(arg, 0, &opts->since_seq)) {
			set_error(err, errlen, "invalid --since-seq '%.100s': use a non-negative integer such as 0 or 12345", arg);
			return -1;
		}
		opts->has_since_seq = 1;
		return 0;

	case OPT_SINCE_TIME:
		if (check_rfc3339(arg)) {
			set_error(err, errlen, "invalid --since-time '%.100s': use RFC 3339, such as 2026-01-03T00:00:00Z", arg);
			return -1;
		}
		opts->since_time = arg;
		return 0;

	case OPT_CURSOR_FILE:
		opts->cursor_file = arg;
		return 0;

	case OPT_FORMAT:
		if (!strcmp(arg, "json") || !strcmp(arg, "msgpack")) {
			opts->msgpack = !strcmp(arg, "msgpack");
			return 0;
		}
		set_error(err, errlen, "invalid --format '%.100s': use json or msgpack", arg);
		return -1;

	case OPT_CACERT:
		opts->cacert = arg;
		return 0;

	case OPT_MAX_SIGNALS:
		if (parse_count(arg, 1, &opts->max_signals)) {
			set_error(err, errlen, "invalid --max-signals '%.100s': use a positive integer", arg);
			return -1;
		}
		return 0;

	case OPT_QUIET_STATUS:
		opts->quiet_status = 1;
		return 0;

	default:
		snprintf(err, errlen, "invalid option: run canary-tail --help for the list");
		return -1;
	}
}

/*
 * Name an unknown option, or one without its value, up to any '=' so that a
 * mistyped "--kye=SECRET" does not echo the key.
 */
static void
report_bad_option(const char *arg, char *err, size_t errlen)
{
	size_t len = strcspn(arg, "=");

	if (len > 100)
		len = 100;
	snprintf(err, errlen, "option '%.*s' is unknown or misses its value: run canary-tail --help", (int)len, arg);
}

static enum tail_options_result
check_combination(struct tail_options *opts, const char *url_text,
		  const char *env_key, char *err, size_t errlen)
{
	if (!url_text) {
		snprintf(err, errlen, "missing --url: give the stream URL, such as --url ws://127.0.0.1:8080");
		return TAIL_OPTIONS_INVALID;
	}
	if (tail_url_parse(url_text, &opts->url, err, errlen))
		return TAIL_OPTIONS_INVALID;

	if (!opts->key)
		opts->key = env_key;
	if (!opts->key) {
		snprintf(err, errlen, "missing key: set CANARY_KEY or give --key with a key that has the subscribe scope");
		return TAIL_OPTIONS_INVALID;
	}
	if (check_key(opts->key)) {
		snprintf(err, errlen, "invalid key: it must be 1 to %d printable ASCII characters without spaces", TAIL_KEY_MAX);
		return TAIL_OPTIONS_INVALID;
	}

	if (opts->has_since_seq && opts->since_time) {
		snprintf(err, errlen, "--since-seq and --since-time exclude each other: give only one");
		return TAIL_OPTIONS_INVALID;
	}
	if (opts->cacert && !opts->url.tls) {
		snprintf(err, errlen, "--cacert applies to wss:// URLs only: use wss:// or drop --cacert");
		return TAIL_OPTIONS_INVALID;
	}

	return TAIL_OPTIONS_OK;
}

enum tail_options_result
tail_options_parse(int argc, char **argv, const char *env_key,
		   struct tail_options *opts, char *err, size_t errlen)
{
	const char *url_text = NULL;
	int opt;

	memset(opts, 0, sizeof(*opts));
	opts->filter = json_object();
	err[0] = '\0';

	/* Report errors ourselves, and restart scanning for repeated calls. */
	opterr = 0;
	optind = 1;

	while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
		if (opt == 'h')
			return TAIL_OPTIONS_HELP;

		if (opt == '?') {
			report_bad_option(argv[optind - 1], err, errlen);
			return TAIL_OPTIONS_INVALID;
		}

		if (apply_option(opt, optarg, opts, &url_text, err, errlen))
			return TAIL_OPTIONS_INVALID;
	}

	if (optind < argc) {
		set_error(err, errlen, "unexpected argument '%.100s': canary-tail takes options only", argv[optind]);
		return TAIL_OPTIONS_INVALID;
	}

	return check_combination(opts, url_text, env_key, err, errlen);
}

void
tail_options_free(struct tail_options *opts)
{
	json_decref(opts->filter);
	opts->filter = NULL;
}
