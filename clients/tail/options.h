/*
 * Command line of canary-tail: the server URL, the key, the subscription
 * filter and where to resume.
 */
#ifndef CANARY_TAIL_OPTIONS_H
#define CANARY_TAIL_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define TAIL_DEFAULT_PATH "/v1/canary/stream"
#define TAIL_KEY_MAX 512

struct tail_url {
	int tls;		/* 1 for wss:// */
	char host[256];		/* address to connect to, IPv6 without brackets */
	char host_header[272];	/* Host header: host, brackets, port if not default */
	int port;
	char path[1024];	/* starts with '/' */
};

struct tail_options {
	struct tail_url url;
	const char *key;	/* from --key or CANARY_KEY; never printed */
	json_t *filter;		/* owned JSON object, only the fields given */
	int has_since_seq;
	json_int_t since_seq;
	const char *since_time;	/* RFC 3339 string, or NULL */
	const char *cursor_file;
	const char *cacert;
	json_int_t max_signals;	/* 0 means no limit */
	int msgpack;		/* --format msgpack: canary.v1.msgpack */
	int quiet_status;
};

enum tail_options_result {
	TAIL_OPTIONS_OK,
	TAIL_OPTIONS_HELP,	/* -h/--help: usage was requested */
	TAIL_OPTIONS_INVALID,	/* err holds the reason and the fix */
};

/*
 * Parse argv into opts. env_key is the value of CANARY_KEY or NULL; --key
 * takes precedence. Strings in opts point into argv or env_key, which must
 * outlive opts. On TAIL_OPTIONS_INVALID, err holds one line naming the
 * value and the fix. The caller frees opts with tail_options_free() on
 * every result.
 */
enum tail_options_result tail_options_parse(int argc, char **argv,
					    const char *env_key,
					    struct tail_options *opts,
					    char *err, size_t errlen);

/* Release what tail_options_parse() allocated. Safe on a zeroed struct. */
void tail_options_free(struct tail_options *opts);

/* Write the usage text to out. */
void tail_options_print_usage(FILE *out);

/*
 * Split a ws:// or wss:// URL into url. The path defaults to
 * TAIL_DEFAULT_PATH when the URL has none (or only "/"). Returns 0, or -1
 * with the reason in err.
 */
int tail_url_parse(const char *text, struct tail_url *url, char *err,
		   size_t errlen);

#endif
