/*
 * canary-bench: fan-out, latency and loss of canaryd or a peer broker
 * under one scenario. See bench.h for the scenario and the pacing.
 *
 *   canary-bench --url ws://HOST:PORT --key KEY --subscribers N
 *                --match-ratio F --rate R --duration S [--format json|msgpack]
 *                [--peer mosquitto|redis --peer-url mqtt://H:P|redis://H:P]
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: canary-bench --url ws://HOST:PORT --key KEY --subscribers N --match-ratio F\n"
		"                    --rate R --duration S [--format json|msgpack]\n"
		"                    [--peer mosquitto|redis --peer-url mqtt://HOST:PORT|redis://HOST:PORT]\n"
		"\n"
		"  --url URL          canaryd's WebSocket base URL\n"
		"  --key KEY          a key with the ingest and subscribe scopes (default:\n"
		"                     the environment variable CANARY_KEY, which keeps it\n"
		"                     out of the process list)\n"
		"  --subscribers N    subscriber connections, one filter each (default 100)\n"
		"  --match-ratio F    fraction of subscribers each signal matches, 0 < F <= 1 (default 0.1)\n"
		"  --rate R           signals per second; 0 sends as fast as the window allows (default 0)\n"
		"  --duration S       seconds of sending (default 5)\n"
		"  --format F         canaryd stream format: json or msgpack (default json)\n"
		"  --batch N          most signals per ingest message (default 500)\n"
		"  --window N         most deliveries outstanding (default 100000)\n"
		"  --drain S          seconds to wait for late deliveries after sending (default 10)\n"
		"  --rss-pid PID      report this process's resident memory once all subscribed\n"
		"  --subscriptions-per-connection K\n"
		"                     canaryd only: K subscriptions (K domains) per connection\n"
		"  --replay N         instead: ingest N signals, then time one subscriber's\n"
		"                     replay of all of them from since_seq 0 (canaryd only)\n"
		"  --peer NAME        run against mosquitto or redis instead of canaryd\n"
		"  --peer-url URL     the peer's address\n"
		"\n"
		"Prints one JSON object: target, subscribers, rate_offered, ingested_per_s,\n"
		"delivered_per_s, latency_us {p50,p99,p999,max} and lost. Exit status 0 when\n"
		"the run completed, 1 when it failed, 2 on a usage error.\n");
}

/*
 * Formats an option's limit in plain decimal notation with up to 6
 * decimals (1000000, 0.000001), where %g would print 1e+06 and 1e-06.
 */
static void format_limit(double limit, char buf[32])
{
	size_t len;

	if (limit == floor(limit) && fabs(limit) < 1e15) {
		snprintf(buf, 32, "%.0f", limit);
		return;
	}
	snprintf(buf, 32, "%.6f", limit);
	len = strlen(buf);
	while (len > 1 && buf[len - 1] == '0')
		buf[--len] = '\0';
	if (buf[len - 1] == '.')
		buf[len - 1] = '\0';
}

static int parse_number(const char *name, const char *text, double min,
			double max, double *out)
{
	char *end = NULL;
	double v = strtod(text, &end);

	if (!*text || *end || v < min || v > max) {
		char min_text[32], max_text[32];

		format_limit(min, min_text);
		format_limit(max, max_text);
		fprintf(stderr, "canary-bench: %s \"%s\" is invalid: give a number from %s to %s\n",
			name, text, min_text, max_text);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "key", required_argument, NULL, 'k' },
		{ "subscribers", required_argument, NULL, 'n' },
		{ "match-ratio", required_argument, NULL, 'm' },
		{ "rate", required_argument, NULL, 'r' },
		{ "duration", required_argument, NULL, 'd' },
		{ "format", required_argument, NULL, 'f' },
		{ "batch", required_argument, NULL, 'b' },
		{ "window", required_argument, NULL, 'w' },
		{ "drain", required_argument, NULL, 'D' },
		{ "rss-pid", required_argument, NULL, 'p' },
		{ "replay", required_argument, NULL, 'R' },
		{ "subscriptions-per-connection", required_argument, NULL, 'K' },
		{ "peer", required_argument, NULL, 'P' },
		{ "peer-url", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double v = 0;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'u': o->url = optarg; break;
		case 'k': o->key = optarg; break;
		case 'P': o->peer = optarg; break;
		case 'U': o->peer_url = optarg; break;
		case 'f':
			if (strcmp(optarg, "json") && strcmp(optarg, "msgpack")) {
				fprintf(stderr, "canary-bench: --format \"%s\" is invalid: use json or msgpack\n",
					optarg);
				return -1;
			}
			o->msgpack = !strcmp(optarg, "msgpack");
			break;
		case 'n':
			if (parse_number("--subscribers", optarg, 1, 1000000, &v))
				return -1;
			o->subscribers = (unsigned)v;
			break;
		case 'm':
			if (parse_number("--match-ratio", optarg, 1e-6, 1, &o->match_ratio))
				return -1;
			break;
		case 'r':
			if (parse_number("--rate", optarg, 0, 1e9, &o->rate))
				return -1;
			break;
		case 'd':
			if (parse_number("--duration", optarg, 0.1, 86400, &o->duration_s))
				return -1;
			break;
		case 'b':
			if (parse_number("--batch", optarg, 1, 2000, &v))
				return -1;
			o->batch_max = (unsigned)v;
			break;
		case 'w':
			if (parse_number("--window", optarg, 1, 1e12, &v))
				return -1;
			o->window = (uint64_t)v;
			break;
		case 'D':
			if (parse_number("--drain", optarg, 0, 3600, &o->drain_s))
				return -1;
			break;
		case 'p':
			if (parse_number("--rss-pid", optarg, 1, 1e9, &v))
				return -1;
			o->rss_pid = (int)v;
			break;
		case 'K':
			if (parse_number("--subscriptions-per-connection", optarg, 1, 16, &v))
				return -1;
			o->subs_per_conn = (unsigned)v;
			break;
		case 'R':
			if (parse_number("--replay", optarg, 1, 1e9, &v))
				return -1;
			o->replay = (uint64_t)v;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "canary-bench: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	if (o->peer && strcmp(o->peer, "mosquitto") && strcmp(o->peer, "redis")) {
		fprintf(stderr, "canary-bench: --peer \"%s\" is invalid: use mosquitto or redis\n",
			o->peer);
		return -1;
	}
	if (o->peer && !o->peer_url) {
		fprintf(stderr, "canary-bench: --peer needs --peer-url\n");
		return -1;
	}
	if (o->subs_per_conn > 1 && o->peer) {
		fprintf(stderr, "canary-bench: --subscriptions-per-connection is for canaryd only\n");
		return -1;
	}
	if (o->replay && o->peer) {
		fprintf(stderr, "canary-bench: --replay measures canaryd only; drop --peer\n");
		return -1;
	}
	if (!o->key)
		o->key = getenv("CANARY_KEY");
	if (!o->peer && (!o->url || !o->key)) {
		fprintf(stderr, "canary-bench: --url and a key (--key or CANARY_KEY) are required for canaryd\n");
		return -1;
	}
	if (!o->peer && strncmp(o->url, "ws://", 5)) {
		fprintf(stderr, "canary-bench: --url \"%s\" is invalid: use ws://HOST:PORT\n", o->url);
		return -1;
	}
	return 0;
}

/* One process holds every subscriber's socket. */
static void raise_fd_limit(unsigned subscribers)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < subscribers + 64)
		fprintf(stderr, "canary-bench: the open file limit (%llu) is below %u subscribers; raise it with ulimit -n\n",
			(unsigned long long)rl.rlim_cur, subscribers);
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.subscribers = 100, .match_ratio = 0.1, .rate = 0, .duration_s = 5,
		.batch_max = 500, .window = 100000, .drain_s = 10, .subs_per_conn = 1,
	};
	struct bench_run r;
	int rc = 0;

	if (parse_args(argc, argv, &o))
		return 2;
	raise_fd_limit(o.subscribers);
	if (bench_run_init(&r, &o)) {
		fprintf(stderr, "canary-bench: out of memory\n");
		return 1;
	}
	bench_sample_rss(&r);
	r.rss_before_kib = r.rss_kib;
	if (!o.peer)
		rc = bench_canaryd(&r);
	else if (!strcmp(o.peer, "mosquitto"))
		rc = bench_mosquitto(&r);
	else
		rc = bench_redis(&r);
	bench_print(&r, o.peer ? o.peer : "canaryd");
	bench_run_free(&r);
	return rc ? 1 : 0;
}
