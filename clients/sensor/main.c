/*
 * canary-sensor: reads Cowrie, OpenCanary or signal JSON-lines logs, maps
 * each notable event to one signal (mapping.c) and posts the signals in
 * batches to canaryd (poster.c).
 *
 * Exit status: 0 when every input was read and every signal was posted or
 * deliberately dropped, 1 on any other failure, 2 when the server rejects
 * the key (401 or 403).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <msgpack.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "mapping.h"
#include "netlists.h"
#include "poster.h"
#include "reader.h"
#include "signal/signal.h"
#include "state.h"

#define SENSOR_DEFAULT_BATCH 500
#define SENSOR_MAX_BATCH 10000
#define SENSOR_PROGRESS_US (5 * 1000000LL)
#define SENSOR_MAX_BATCH_AGE_US 1000000LL
#define SENSOR_MAX_PRINTED_INVALID 20
#define SENSOR_FOLLOW_SLEEP_MS 250
#define SENSOR_FOLLOW_SLICE 1000
#define SENSOR_HMAC_KEY_BYTES 32

enum sensor_exit {
	SENSOR_EXIT_OK = 0,
	SENSOR_EXIT_FAILURE = 1,
	SENSOR_EXIT_AUTH = 2
};

struct sensor_options {
	const char *url;
	const char *key;
	const char *domain;
	const char *domain_map;
	const char *cacert;
	const char *hmac_key_file;
	const char *data_dir;
	const char *state_file;
	enum sm_format format;
	bool follow;
	bool replay;
	double speed;
	long batch;
	bool msgpack_body;      /* --body msgpack */
	char **inputs;          /* "-" is standard input */
	int n_inputs;
};

/*
 * Position of one input for the state file. abs_path is NULL for standard
 * input, and known is false until the input was opened as a regular file.
 */
struct sensor_position {
	char *abs_path;
	struct lr_position pos;
	bool known;
};

/* A mapped signal waiting for the next POST, and where it came from. */
struct sensor_item {
	json_t *signal;
	int input;
	uint64_t line;
};

struct sensor {
	struct sensor_options opt;
	struct sm_mapper *mapper;
	struct ps_poster *poster;
	struct sensor_item *items;
	size_t n_items;
	int64_t first_item_us;          /* monotonic time of items[0] */
	uint64_t lines;
	uint64_t signals_sent;
	uint64_t batches;
	uint64_t invalid;
	uint64_t unmapped;
	uint64_t dropped;
	int64_t started_us;
	int64_t last_progress_us;
	bool replay_anchored;
	int64_t replay_log0_us;         /* first event's time in the log */
	int64_t replay_wall0_us;        /* when it was replayed */
	bool failed;                    /* stop reading; exit_code gives the reason */
	int exit_code;
	struct ss_state *state;         /* NULL without --state-file */
	struct sensor_position *positions;      /* one per input */
	bool positions_moved;           /* since the last save of the state file */
	bool flushed;                   /* a batch was posted since the last save */
	bool save_failed;               /* the last save of the state file failed */
};

static volatile sig_atomic_t sensor_stop_requests;

static void sensor_on_signal(int signo)
{
	(void)signo;
	if (sensor_stop_requests < 100)
		sensor_stop_requests++;
}

static int64_t sensor_monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sleeps in short steps; returns early once a stop was requested. */
static void sensor_sleep_us(int64_t us)
{
	while (us > 0 && !sensor_stop_requests) {
		int64_t step = us < 100000 ? us : 100000;
		struct timespec ts = { 0, (long)step * 1000 };

		nanosleep(&ts, NULL);
		us -= step;
	}
}

static const char *sensor_input_name(const struct sensor *s, int input)
{
	const char *name = s->opt.inputs[input];

	return strcmp(name, "-") ? name : "standard input";
}

static void sensor_usage(FILE *out)
{
	fprintf(out,
"Usage: canary-sensor --url http://HOST:PORT --key KEY\n"
"                     --format cowrie|opencanary|signals\n"
"                     [--domain DOMAIN | --domain-map FILE] [--follow] [FILE...]\n"
"\n"
"Reads honeypot logs (JSON lines), turns each notable event into a signal\n"
"and posts the signals in batches to URL/v1/canary/signals.\n"
"Without FILE, or with \"-\", reads standard input.\n"
"\n"
"  --url URL             canaryd base URL, http:// or https://\n"
"  --key KEY             ingest key; the environment variable CANARY_KEY is\n"
"                        used when the option is absent, and is preferable\n"
"                        because other local users can see options in ps\n"
"  --format NAME         cowrie, opencanary, or signals (lines that already\n"
"                        are signals; they are posted unchanged)\n"
"  --domain DOMAIN       targeted brand domain for every signal\n"
"  --domain-map FILE     JSON file mapping sensor ids and destination ports\n"
"                        to domains (see docs/sensor-mapping.md)\n"
"  --follow              keep reading files as they grow, across truncation\n"
"                        and rotation, until SIGINT or SIGTERM\n"
"  --batch N             signals per POST, 1-%d (default %d)\n"
"  --body json|msgpack   POST body format: a JSON array (default) or a\n"
"                        MessagePack array of maps (application/msgpack)\n"
"  --cacert FILE         PEM CA bundle for https:// instead of the system one\n"
"  --hmac-key-file FILE  secret for infra_id, hex; created with a random key\n"
"                        when missing. Without it, a key is generated for\n"
"                        this run only and infra_id changes between runs\n"
"  --data-dir DIR        directory with the Tor exit and cloud range lists\n"
"                        (default " CANARY_DATA_DIR ")\n"
"  --state-file FILE     JSON file that records how far each input file was\n"
"                        handled, so that a new run continues there instead\n"
"                        of posting the whole log again. Written after each\n"
"                        accepted batch, when all inputs wait, and at exit.\n"
"                        Signals are posted at least once, not exactly once:\n"
"                        a sensor stopped after the server stored a batch\n"
"                        but before this file was written posts that batch\n"
"                        again on its next start\n"
"  --replay              re-time events to now, keeping their original pace\n"
"  --speed X             with --replay, play X times faster (implies --replay)\n"
"  -h, --help            show this help\n"
"\n"
"Exit status: 0 success, 1 failure, 2 key rejected by the server.\n",
		SENSOR_MAX_BATCH, SENSOR_DEFAULT_BATCH);
}

static int sensor_parse_options(int argc, char **argv, struct sensor_options *o)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "key", required_argument, NULL, 'k' },
		{ "format", required_argument, NULL, 'f' },
		{ "domain", required_argument, NULL, 'd' },
		{ "domain-map", required_argument, NULL, 'm' },
		{ "follow", no_argument, NULL, 'F' },
		{ "cacert", required_argument, NULL, 'c' },
		{ "batch", required_argument, NULL, 'b' },
		{ "replay", no_argument, NULL, 'r' },
		{ "speed", required_argument, NULL, 's' },
		{ "hmac-key-file", required_argument, NULL, 'H' },
		{ "data-dir", required_argument, NULL, 'D' },
		{ "body", required_argument, NULL, 'B' },
		{ "state-file", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *format = NULL;
	char *end = NULL;
	int c;

	memset(o, 0, sizeof(*o));
	o->batch = SENSOR_DEFAULT_BATCH;
	o->speed = 1.0;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': o->url = optarg; break;
		case 'k': o->key = optarg; break;
		case 'f': format = optarg; break;
		case 'd': o->domain = optarg; break;
		case 'm': o->domain_map = optarg; break;
		case 'F': o->follow = true; break;
		case 'c': o->cacert = optarg; break;
		case 'r': o->replay = true; break;
		case 'H': o->hmac_key_file = optarg; break;
		case 'D': o->data_dir = optarg; break;
		case 'S': o->state_file = optarg; break;
		case 'B':
			if (strcmp(optarg, "json") && strcmp(optarg, "msgpack")) {
				fprintf(stderr, "canary-sensor: --body %s: expected json or msgpack\n",
					optarg);
				return -1;
			}
			o->msgpack_body = !strcmp(optarg, "msgpack");
			break;
		case 'b':
			errno = 0;
			o->batch = strtol(optarg, &end, 10);
			if (errno || *end || o->batch < 1 || o->batch > SENSOR_MAX_BATCH) {
				fprintf(stderr, "canary-sensor: --batch %s: expected a "
					"number from 1 to %d\n", optarg, SENSOR_MAX_BATCH);
				return -1;
			}
			break;
		case 's':
			errno = 0;
			o->speed = strtod(optarg, &end);
			if (errno || *end || !(o->speed > 0.0 && o->speed <= 1e6)) {
				fprintf(stderr, "canary-sensor: --speed %s: expected a "
					"factor above 0, such as 1, 10 or 0.5\n", optarg);
				return -1;
			}
			o->replay = true;
			break;
		case 'h':
			sensor_usage(stdout);
			exit(SENSOR_EXIT_OK);
		default:
			sensor_usage(stderr);
			return -1;
		}
	}

	if (!o->key)
		o->key = getenv("CANARY_KEY");
	if (!o->url) {
		fprintf(stderr, "canary-sensor: missing --url; see --help\n");
		return -1;
	}
	if (!o->key) {
		fprintf(stderr, "canary-sensor: missing --key or CANARY_KEY; see --help\n");
		return -1;
	}
	if (!format) {
		fprintf(stderr, "canary-sensor: missing --format; see --help\n");
		return -1;
	}
	if (sm_format_parse(format, &o->format) != 0) {
		fprintf(stderr, "canary-sensor: --format %s: expected cowrie, "
			"opencanary or signals\n", format);
		return -1;
	}
	if (o->format != SM_FORMAT_SIGNALS && !o->domain == !o->domain_map) {
		fprintf(stderr, "canary-sensor: pass either --domain DOMAIN or "
			"--domain-map FILE (exactly one) so that each signal names "
			"the targeted brand\n");
		return -1;
	}
	o->inputs = argv + optind;
	o->n_inputs = argc - optind;
	return 0;
}

/* Decodes hex text (whitespace around it ignored) into key. */
static int sensor_decode_key(const char *text, uint8_t *key, size_t *len)
{
	size_t n = 0;

	while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
		text++;
	while (n < SENSOR_HMAC_KEY_BYTES && text[0] && text[1] &&
	       strchr("0123456789abcdefABCDEF", text[0]) &&
	       strchr("0123456789abcdefABCDEF", text[1])) {
		char pair[3] = { text[0], text[1], '\0' };

		key[n++] = (uint8_t)strtoul(pair, NULL, 16);
		text += 2;
	}
	while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
		text++;
	*len = n;
	return *text == '\0' && n >= SM_HMAC_KEY_MIN ? 0 : -1;
}

/* Writes a new random key to path, readable by its owner only. */
static int sensor_create_key_file(const char *path, uint8_t *key, size_t *len)
{
	char hex[SENSOR_HMAC_KEY_BYTES * 2 + 2];
	int fd = -1;
	int rc = -1;

	if (RAND_bytes(key, SENSOR_HMAC_KEY_BYTES) != 1) {
		fprintf(stderr, "canary-sensor: the random generator failed; "
			"cannot create %s\n", path);
		goto out;
	}
	for (int i = 0; i < SENSOR_HMAC_KEY_BYTES; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	hex[SENSOR_HMAC_KEY_BYTES * 2] = '\n';

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, hex, SENSOR_HMAC_KEY_BYTES * 2 + 1) !=
		      SENSOR_HMAC_KEY_BYTES * 2 + 1 || fsync(fd) != 0) {
		fprintf(stderr, "canary-sensor: cannot create HMAC key file %s: %s\n",
			path, strerror(errno));
		goto out;
	}
	*len = SENSOR_HMAC_KEY_BYTES;
	fprintf(stderr, "canary-sensor: created a new HMAC key in %s; keep it "
		"so that infra_id values stay the same across runs\n", path);
	rc = 0;

out:
	OPENSSL_cleanse(hex, sizeof(hex));
	if (fd >= 0)
		close(fd);
	return rc;
}

/*
 * Loads the infra_id secret from path (hex, 16-32 bytes), creates the
 * file with a random key when it does not exist, or makes a key for this
 * run when path is NULL. Returns 0 or -1 after printing why.
 */
static int sensor_load_hmac_key(const char *path, uint8_t *key, size_t *len)
{
	char text[SENSOR_HMAC_KEY_BYTES * 2 + 64];
	struct stat st;
	ssize_t got;
	int fd = -1;
	int rc = -1;

	if (!path) {
		fprintf(stderr, "canary-sensor: no --hmac-key-file; infra_id values "
			"of this run will not match other runs\n");
		*len = SENSOR_HMAC_KEY_BYTES;
		return RAND_bytes(key, SENSOR_HMAC_KEY_BYTES) == 1 ? 0 : -1;
	}

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return sensor_create_key_file(path, key, len);
	if (fd < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "canary-sensor: cannot read HMAC key file %s: %s\n",
			path, strerror(errno));
		goto out;
	}
	if (st.st_mode & 077)
		fprintf(stderr, "canary-sensor: warning: %s is accessible to other "
			"users; run chmod 600 %s\n", path, path);

	got = read(fd, text, sizeof(text) - 1);
	text[got > 0 ? got : 0] = '\0';
	if (got <= 0 || sensor_decode_key(text, key, len) != 0) {
		fprintf(stderr, "canary-sensor: HMAC key file %s must hold %d to %d "
			"hex digits (for example from: openssl rand -hex 32)\n", path,
			SM_HMAC_KEY_MIN * 2, SENSOR_HMAC_KEY_BYTES * 2);
		goto out;
	}
	rc = 0;

out:
	OPENSSL_cleanse(text, sizeof(text));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Returns the singular noun for a count of 1 and the plural otherwise. */
static const char *noun_for(uint64_t count, const char *singular, const char *plural)
{
	return count == 1 ? singular : plural;
}

static void sensor_progress(struct sensor *s, bool final)
{
	double secs = (sensor_monotonic_us() - s->started_us) / 1e6;
	uint64_t retries = s->poster ? ps_retry_count(s->poster) : 0;

	if (!final) {
		fprintf(stderr, "canary-sensor: %llu %s read, %llu %s sent in "
			"%llu %s, %llu %s\n",
			(unsigned long long)s->lines, noun_for(s->lines, "line", "lines"),
			(unsigned long long)s->signals_sent,
			noun_for(s->signals_sent, "signal", "signals"),
			(unsigned long long)s->batches, noun_for(s->batches, "batch", "batches"),
			(unsigned long long)retries, noun_for(retries, "retry", "retries"));
		return;
	}
	fprintf(stderr, "canary-sensor: finished: %llu %s read, %llu %s "
		"sent in %llu %s in %.1f s (%.1f signals/s), %llu %s, "
		"%llu invalid %s, %llu %s dropped, %llu %s without a "
		"domain\n",
		(unsigned long long)s->lines, noun_for(s->lines, "line", "lines"),
		(unsigned long long)s->signals_sent,
		noun_for(s->signals_sent, "signal", "signals"),
		(unsigned long long)s->batches, noun_for(s->batches, "batch", "batches"),
		secs, secs > 0 ? s->signals_sent / secs : 0.0,
		(unsigned long long)retries, noun_for(retries, "retry", "retries"),
		(unsigned long long)s->invalid, noun_for(s->invalid, "line", "lines"),
		(unsigned long long)s->dropped, noun_for(s->dropped, "signal", "signals"),
		(unsigned long long)s->unmapped, noun_for(s->unmapped, "event", "events"));
}

/* Writes "FILE lines A-B" for each input that items come from. */
static void sensor_describe_lines(const struct sensor *s,
				  const struct sensor_item *items, size_t n,
				  char *buf, size_t cap)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && used < cap;) {
		size_t j = i;
		uint64_t first = items[i].line, last = items[i].line;

		while (j < n && items[j].input == items[i].input) {
			if (items[j].line < first)
				first = items[j].line;
			if (items[j].line > last)
				last = items[j].line;
			j++;
		}
		used += (size_t)snprintf(buf + used, cap - used, "%s%s lines %llu-%llu",
					 used ? "; " : "",
					 sensor_input_name(s, items[i].input),
					 (unsigned long long)first,
					 (unsigned long long)last);
		i = j;
	}
}

static void sensor_release(struct sensor_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_decref(items[i].signal);
		items[i].signal = NULL;
	}
}

static void sensor_drop_all(struct sensor *s, struct sensor_item *items,
			    size_t n, const char *why)
{
	char where[512];

	sensor_describe_lines(s, items, n, where, sizeof(where));
	fprintf(stderr, "canary-sensor: dropped %zu signals (%s): %s\n", n, where,
		why);
	s->dropped += n;
	sensor_release(items, n);
}

/*
 * Handles a 400 response: drops the items the problem document names and
 * moves the others to the front. Returns how many remain to be posted.
 */
static size_t sensor_drop_rejected(struct sensor *s, struct sensor_item *items,
				   size_t n, const struct ps_result *res)
{
	bool *bad = calloc(n, sizeof(*bad));
	size_t kept = 0, named = 0;

	fprintf(stderr, "canary-sensor: the server rejected a batch of %zu signals "
		"(HTTP 400): %s\n", n, res->detail[0] ? res->detail : "no detail");

	for (size_t i = 0; bad && i < res->n_items; i++) {
		const struct ps_problem_item *p = &res->items[i];

		if (p->index < 0 || (size_t)p->index >= n || bad[p->index])
			continue;
		bad[p->index] = true;
		named++;
		fprintf(stderr, "canary-sensor: %s line %llu: field \"%s\": %s; "
			"signal dropped\n", sensor_input_name(s, items[p->index].input),
			(unsigned long long)items[p->index].line, p->field, p->reason);
	}

	/* Without item indexes the whole batch is at fault. */
	if (named == 0) {
		sensor_drop_all(s, items, n, "the server named no single item");
		free(bad);
		return 0;
	}

	for (size_t i = 0; i < n; i++) {
		if (bad[i]) {
			json_decref(items[i].signal);
			s->dropped++;
		} else {
			items[kept++] = items[i];
		}
	}
	free(bad);
	if (kept)
		fprintf(stderr, "canary-sensor: posting the other %zu signals of the "
			"batch again\n", kept);
	return kept;
}

/* Packs one mapped signal (an object of strings and booleans) as a map. */
static int sensor_pack_signal(msgpack_packer *pk, const json_t *signal)
{
	const char *key = NULL;
	json_t *value = NULL;

	msgpack_pack_map(pk, json_object_size(signal));
	json_object_foreach((json_t *)signal, key, value) {
		msgpack_pack_str_with_body(pk, key, strlen(key));
		if (json_is_string(value))
			msgpack_pack_str_with_body(pk, json_string_value(value),
						   json_string_length(value));
		else if (json_is_boolean(value))
			json_is_true(value) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
		else if (json_is_integer(value))
			msgpack_pack_int64(pk, json_integer_value(value));
		else
			return -1;
	}
	return 0;
}

/* Returns the POST body of items[0..n) (malloc'd, *len bytes), a JSON
 * array or a MessagePack array of maps, or NULL when out of memory. */
static char *sensor_build_body(const struct sensor_item *items, size_t n,
			       bool msgpack, size_t *len)
{
	json_t *array = NULL;
	char *body = NULL;

	if (msgpack) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		int rc = 0;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, n);
		for (size_t i = 0; i < n && !rc; i++)
			rc = sensor_pack_signal(&pk, items[i].signal);
		if (!rc && sb.data) {
			body = sb.data;         /* the sbuffer's malloc'd data */
			*len = sb.size;
		} else {
			msgpack_sbuffer_destroy(&sb);
		}
		return body;
	}
	array = json_array();
	if (!array)
		return NULL;
	for (size_t i = 0; i < n; i++)
		json_array_append(array, items[i].signal);
	body = json_dumps(array, JSON_COMPACT);
	json_decref(array);
	if (body)
		*len = strlen(body);
	return body;
}

/*
 * Posts items[0..n), splitting on 413 and dropping rejected items on 400.
 * Releases every item. Returns 0, or -1 when reading must stop.
 */
static int sensor_post_items(struct sensor *s, struct sensor_item *items,
			     size_t n)
{
	while (n > 0) {
		struct ps_result res;
		enum ps_status st;
		size_t body_len = 0;
		char *body = sensor_build_body(items, n, s->opt.msgpack_body, &body_len);
		char where[512];

		if (!body) {
			sensor_drop_all(s, items, n, "out of memory");
			s->exit_code = SENSOR_EXIT_FAILURE;
			return -1;
		}
		st = ps_post(s->poster, body, body_len, &res);
		free(body);

		switch (st) {
		case PS_ACCEPTED:
			s->signals_sent += n;
			s->batches++;
			sensor_release(items, n);
			return 0;

		case PS_TOO_LARGE:
			if (n == 1) {
				sensor_drop_all(s, items, n, "one signal exceeds the server's "
						"body size limit (HTTP 413)");
				return 0;
			}
			if (sensor_post_items(s, items, n / 2) != 0) {
				sensor_release(items + n / 2, n - n / 2);
				return -1;
			}
			items += n / 2;
			n -= n / 2;
			break;

		case PS_REJECTED:
			n = sensor_drop_rejected(s, items, n, &res);
			break;

		case PS_AUTH:
			fprintf(stderr, "canary-sensor: the server rejected the key (HTTP "
				"%ld: %s): check --key or CANARY_KEY and that the key has "
				"the ingest scope\n", res.http_status, res.detail);
			s->exit_code = SENSOR_EXIT_AUTH;
			sensor_release(items, n);
			return -1;

		case PS_FATAL:
		case PS_INTERRUPTED:
			sensor_describe_lines(s, items, n, where, sizeof(where));
			fprintf(stderr, "canary-sensor: %zu signals were not sent (%s): %s%s%s\n",
				n, where, st == PS_INTERRUPTED ? "interrupted while retrying: " : "",
				res.http_status ? "HTTP error: " : "", res.detail);
			if (st == PS_FATAL)
				fprintf(stderr, "canary-sensor: check --url %s (the path "
					"/v1/canary/signals is appended) and --cacert\n",
					s->opt.url);
			s->exit_code = SENSOR_EXIT_FAILURE;
			sensor_release(items, n);
			return -1;
		}
	}
	return 0;
}

static int sensor_flush(struct sensor *s)
{
	size_t n = s->n_items;

	s->n_items = 0;
	if (n == 0)
		return 0;
	if (sensor_post_items(s, s->items, n) != 0) {
		s->failed = true;
		return -1;
	}
	s->flushed = true;
	return 0;
}

/* Moves the signal to now (replay mode), sleeping to keep the log's pace. */
static void sensor_replay(struct sensor *s, json_t *signal, int64_t observed_us)
{
	int64_t target, wait;
	char stamp[32];

	if (!s->replay_anchored) {
		s->replay_anchored = true;
		s->replay_log0_us = observed_us;
		s->replay_wall0_us = sg_now_us();
	}
	target = s->replay_wall0_us +
		 (int64_t)((double)(observed_us - s->replay_log0_us) / s->opt.speed);

	wait = target - sg_now_us();
	if (wait > 250000)
		sensor_flush(s);
	sensor_sleep_us(wait);

	sg_time_format(target, stamp);
	json_object_set_new(signal, "timestamp", json_string(stamp));
}

static void sensor_report_invalid(struct sensor *s, int input, uint64_t line,
				  const char *reason)
{
	s->invalid++;
	if (s->invalid <= SENSOR_MAX_PRINTED_INVALID)
		fprintf(stderr, "canary-sensor: %s line %llu skipped: %s\n",
			sensor_input_name(s, input), (unsigned long long)line, reason);
	if (s->invalid == SENSOR_MAX_PRINTED_INVALID)
		fprintf(stderr, "canary-sensor: further invalid lines are counted "
			"but not printed\n");
}

static void sensor_handle_line(struct sensor *s, int input, uint64_t line_no,
			       const char *line, size_t len)
{
	struct sm_output out;
	enum sm_result rc = sm_map_line(s->mapper, line, len, &out);

	switch (rc) {
	case SM_NO_SIGNAL:
		return;
	case SM_INVALID:
		sensor_report_invalid(s, input, line_no, out.reason);
		return;
	case SM_UNMAPPED:
		if (s->unmapped++ == 0)
			fprintf(stderr, "canary-sensor: %s line %llu: %s; such events "
				"are counted but not sent\n", sensor_input_name(s, input),
				(unsigned long long)line_no, out.reason);
		return;
	case SM_SIGNAL:
		break;
	}

	if (s->opt.replay && out.observed_us)
		sensor_replay(s, out.signal, out.observed_us);

	if (s->n_items == 0)
		s->first_item_us = sensor_monotonic_us();
	s->items[s->n_items].signal = out.signal;
	s->items[s->n_items].input = input;
	s->items[s->n_items].line = line_no;
	s->n_items++;
	if (s->n_items == (size_t)s->opt.batch)
		sensor_flush(s);
}

/* Copies the reader's position in input to s->positions. */
static void sensor_note_position(struct sensor *s, int input,
				 const struct lr_reader *r)
{
	struct sensor_position *p = &s->positions[input];
	struct lr_position pos;

	if (!s->state || !p->abs_path || !lr_position(r, &pos))
		return;
	if (p->known && p->pos.device == pos.device && p->pos.inode == pos.inode &&
	    p->pos.offset == pos.offset && p->pos.line == pos.line)
		return;
	p->pos = pos;
	p->known = true;
	s->positions_moved = true;
}

/*
 * Writes the state file when reading moved on and every line read so far
 * is handled, which means that no signal waits to be posted. Without
 * force it writes only after a batch was posted, and with force also for
 * lines that gave no signal.
 *
 * Signals are posted at least once, not exactly once: when the sensor
 * stops after canaryd committed a batch but before this write, the next
 * run reads those lines again and posts that batch a second time.
 */
static void sensor_save_state(struct sensor *s, bool force)
{
	char err[PATH_MAX + 256];

	if (!s->state || s->failed || s->n_items > 0 || !s->positions_moved)
		return;
	if (!force && !s->flushed)
		return;

	for (int i = 0; i < s->opt.n_inputs; i++) {
		const struct sensor_position *p = &s->positions[i];

		if (p->known && ss_set(s->state, p->abs_path, &p->pos) != 0) {
			snprintf(err, sizeof(err), "cannot update state file %s: "
				 "out of memory", s->opt.state_file);
			goto failed;
		}
	}
	if (ss_save(s->state, err, sizeof(err)) != 0)
		goto failed;

	if (s->save_failed)
		fprintf(stderr, "canary-sensor: state file %s written again\n",
			s->opt.state_file);
	s->save_failed = false;
	s->positions_moved = false;
	s->flushed = false;
	return;

failed:
	/* Reported once until a write succeeds. The write is retried after
	 * the next batch, when all inputs wait, and at exit. */
	s->flushed = false;
	if (!s->save_failed)
		fprintf(stderr, "canary-sensor: %s; until the state file is written, "
			"a restart posts the signals since the last write again\n",
			err);
	s->save_failed = true;
}

/* Prints progress and posts a partial batch that waited too long. */
static void sensor_tick(struct sensor *s)
{
	int64_t now = sensor_monotonic_us();

	if (s->n_items && now - s->first_item_us >= SENSOR_MAX_BATCH_AGE_US)
		sensor_flush(s);
	if (now - s->last_progress_us >= SENSOR_PROGRESS_US) {
		s->last_progress_us = now;
		sensor_progress(s, false);
		sensor_save_state(s, true);
	}
	sensor_save_state(s, false);
}

/*
 * Reads every input. Without --follow, inputs are read one after the
 * other; with it, they take turns, SENSOR_FOLLOW_SLICE lines at a time.
 */
static void sensor_read_inputs(struct sensor *s)
{
	struct lr_reader **readers = calloc((size_t)s->opt.n_inputs, sizeof(*readers));
	int active = 0, cur = 0, waiting = 0, slice = 0;
	char err[512];

	for (int i = 0; readers && i < s->opt.n_inputs; i++) {
		const struct lr_position *resume = NULL;

		if (s->state && s->positions[i].abs_path)
			resume = ss_find(s->state, s->positions[i].abs_path);
		readers[i] = lr_open(s->opt.inputs[i], s->opt.follow, resume, err,
				     sizeof(err));
		if (!readers[i]) {
			fprintf(stderr, "canary-sensor: %s\n", err);
			s->exit_code = SENSOR_EXIT_FAILURE;
			continue;
		}
		if (lr_notice(readers[i])[0])
			fprintf(stderr, "canary-sensor: %s\n", lr_notice(readers[i]));
		else if (resume)
			fprintf(stderr, "canary-sensor: %s: continuing after line %llu "
				"(byte %llu) from the state file\n", sensor_input_name(s, i),
				(unsigned long long)resume->line,
				(unsigned long long)resume->offset);
		sensor_note_position(s, i, readers[i]);
		active++;
	}

	while (active > 0 && !s->failed && !sensor_stop_requests) {
		const char *line = NULL;
		size_t len = 0;
		enum lr_status st;
		bool next = false;

		if (!readers[cur]) {
			cur = (cur + 1) % s->opt.n_inputs;
			continue;
		}
		st = lr_next(readers[cur], &line, &len);
		if (lr_notice(readers[cur])[0])
			fprintf(stderr, "canary-sensor: %s\n", lr_notice(readers[cur]));
		/* Lines count as handled in the state file only once no signal
		 * waits to be posted (sensor_save_state), so noting the
		 * position before handling the line is safe. */
		sensor_note_position(s, cur, readers[cur]);

		switch (st) {
		case LR_LINE:
		case LR_TOO_LONG:
			s->lines++;
			waiting = 0;
			if (st == LR_TOO_LONG)
				sensor_report_invalid(s, cur, lr_line_number(readers[cur]),
						      "line longer than 65536 bytes");
			else
				sensor_handle_line(s, cur, lr_line_number(readers[cur]),
						   line, len);
			next = s->opt.follow && ++slice >= SENSOR_FOLLOW_SLICE;
			break;
		case LR_WAIT:
			next = s->opt.follow;
			if (++waiting >= active) {
				waiting = 0;
				sensor_flush(s);
				sensor_save_state(s, true);
				if (s->opt.follow)
					sensor_sleep_us(SENSOR_FOLLOW_SLEEP_MS * 1000LL);
			}
			break;
		case LR_ERROR:
			s->exit_code = SENSOR_EXIT_FAILURE;
			/* fall through */
		case LR_EOF:
			lr_close(readers[cur]);
			readers[cur] = NULL;
			active--;
			next = true;
			break;
		}
		if (next) {
			slice = 0;
			cur = (cur + 1) % s->opt.n_inputs;
		}
		sensor_tick(s);
	}

	for (int i = 0; readers && i < s->opt.n_inputs; i++)
		lr_close(readers[i]);
	free(readers);
}

/* Loads the address lists and the location database. */
static int sensor_load_lists(const struct sensor_options *o, struct nl_set **tor,
			     struct nl_set **cloud, struct nl_geo **geo)
{
	const char *dir = o->data_dir ? o->data_dir : CANARY_DATA_DIR;
	char path[PATH_MAX];
	char err[512];

	*tor = nl_set_new();
	*cloud = nl_set_new();
	if (!*tor || !*cloud)
		return -1;

	snprintf(path, sizeof(path), "%s/%s", dir, NL_TOR_EXITS_FILE);
	if (nl_load_tor_csv(*tor, path, err, sizeof(err)) != NL_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/%s", dir, NL_AWS_RANGES_FILE);
	if (nl_load_aws_json(*cloud, path, err, sizeof(err)) != NL_OK)
		goto fail;
	nl_set_finish(*tor);
	nl_set_finish(*cloud);

	*geo = nl_geo_open(NL_GEO_DEFAULT_PATH, err, sizeof(err));
	if (!*geo)
		fprintf(stderr, "canary-sensor: warning: %s; every source_region "
			"will be ZZ\n", err);
	return 0;

fail:
	fprintf(stderr, "canary-sensor: %s (pass --data-dir DIR with the "
		"bundled data directory)\n", err);
	return -1;
}

/*
 * Loads --state-file and finds each input's absolute path, under which
 * the state file records it. Returns 0, or -1 after printing why.
 */
static int sensor_open_state(struct sensor *s)
{
	char path[PATH_MAX];
	char err[PATH_MAX + 512];
	bool any_file = false;

	s->state = ss_load(s->opt.state_file, err, sizeof(err));
	if (!s->state || ss_check_writable(s->state, err, sizeof(err)) != 0) {
		fprintf(stderr, "canary-sensor: %s\n", err);
		return -1;
	}
	if (ss_is_new(s->state))
		fprintf(stderr, "canary-sensor: state file %s does not exist yet; "
			"reading every input from the start\n", s->opt.state_file);
	s->positions = calloc((size_t)s->opt.n_inputs, sizeof(*s->positions));
	if (!s->positions) {
		fprintf(stderr, "canary-sensor: out of memory\n");
		return -1;
	}

	for (int i = 0; i < s->opt.n_inputs; i++) {
		if (!strcmp(s->opt.inputs[i], "-"))
			continue;
		errno = 0;
		if (ss_absolute_path(s->opt.inputs[i], path, sizeof(path)) != 0) {
			fprintf(stderr, "canary-sensor: cannot make %s an absolute "
				"path: %s\n", s->opt.inputs[i],
				errno ? strerror(errno) : "too long");
			return -1;
		}
		for (int j = 0; j < i; j++) {
			if (s->positions[j].abs_path &&
			    !strcmp(s->positions[j].abs_path, path)) {
				fprintf(stderr, "canary-sensor: %s is given twice; pass "
					"each file once\n", s->opt.inputs[i]);
				return -1;
			}
		}
		s->positions[i].abs_path = strdup(path);
		if (!s->positions[i].abs_path) {
			fprintf(stderr, "canary-sensor: out of memory\n");
			return -1;
		}
		any_file = true;
	}
	if (!any_file)
		fprintf(stderr, "canary-sensor: warning: --state-file %s has no "
			"effect because it records positions in files, and standard "
			"input is the only input\n", s->opt.state_file);
	return 0;
}

static void sensor_close_state(struct sensor *s)
{
	for (int i = 0; s->positions && i < s->opt.n_inputs; i++)
		free(s->positions[i].abs_path);
	free(s->positions);
	ss_free(s->state);
}

int main(int argc, char **argv)
{
	static char *stdin_only[] = { "-" };
	struct sensor s = { .exit_code = SENSOR_EXIT_OK };
	struct sm_domain_map *map = NULL;
	struct nl_set *tor = NULL, *cloud = NULL;
	struct nl_geo *geo = NULL;
	uint8_t key[SENSOR_HMAC_KEY_BYTES];
	size_t key_len = 0;
	struct sm_config cfg;
	struct ps_options popt;
	struct sigaction sa;
	char err[512];

	if (sensor_parse_options(argc, argv, &s.opt) != 0)
		return SENSOR_EXIT_FAILURE;
	if (s.opt.n_inputs == 0) {
		s.opt.inputs = stdin_only;
		s.opt.n_inputs = 1;
	}
	s.exit_code = SENSOR_EXIT_FAILURE;

	if (s.opt.state_file && sensor_open_state(&s) != 0)
		goto out;
	if (s.opt.domain_map) {
		map = sm_domain_map_load(s.opt.domain_map, err, sizeof(err));
		if (!map) {
			fprintf(stderr, "canary-sensor: %s\n", err);
			goto out;
		}
	}
	/* Signal lines are passed on as they are, so they need no secret. */
	if (s.opt.format == SM_FORMAT_SIGNALS) {
		key_len = sizeof(key);
		if (RAND_bytes(key, (int)key_len) != 1)
			goto out;
	} else if (sensor_load_hmac_key(s.opt.hmac_key_file, key, &key_len) != 0) {
		goto out;
	}
	if (s.opt.format != SM_FORMAT_SIGNALS &&
	    sensor_load_lists(&s.opt, &tor, &cloud, &geo) != 0)
		goto out;

	cfg = (struct sm_config){
		.format = s.opt.format, .domain = s.opt.domain, .domain_map = map,
		.hmac_key = key, .hmac_key_len = key_len,
		.tor_exits = tor, .cloud = cloud, .geo = geo,
	};
	s.mapper = sm_mapper_new(&cfg, err, sizeof(err));
	if (!s.mapper) {
		fprintf(stderr, "canary-sensor: %s\n", err);
		goto out;
	}

	curl_global_init(CURL_GLOBAL_DEFAULT);
	popt = (struct ps_options){
		.url = s.opt.url, .key = s.opt.key, .cacert = s.opt.cacert,
		.msgpack = s.opt.msgpack_body, .stop_requests = &sensor_stop_requests,
	};
	s.poster = ps_poster_new(&popt, err, sizeof(err));
	s.items = calloc((size_t)s.opt.batch, sizeof(*s.items));
	if (!s.poster || !s.items) {
		fprintf(stderr, "canary-sensor: %s\n", s.poster ? "out of memory" : err);
		goto out;
	}

	/* No SA_RESTART: a signal must cut short poll() and sleeps. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sensor_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	s.exit_code = SENSOR_EXIT_OK;
	s.started_us = s.last_progress_us = sensor_monotonic_us();
	sensor_read_inputs(&s);

	/* After a first SIGINT or SIGTERM the held signals are still posted;
	 * a second one abandons the retries. */
	if (!s.failed)
		sensor_flush(&s);
	sensor_save_state(&s, true);
	if (s.save_failed)
		s.exit_code = SENSOR_EXIT_FAILURE;
	sensor_progress(&s, true);

out:
	if (s.items) {
		sensor_release(s.items, s.n_items);
		free(s.items);
	}
	ps_poster_free(s.poster);
	curl_global_cleanup();
	sm_mapper_free(s.mapper);
	sm_domain_map_free(map);
	nl_set_free(tor);
	nl_set_free(cloud);
	nl_geo_close(geo);
	sensor_close_state(&s);
	OPENSSL_cleanse(key, sizeof(key));
	return s.exit_code;
}
