/*
 * canaryd: command line, start-up, the event loop and shutdown.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <libwebsockets.h>

#include "config.h"
#include "http.h"
#include "keys.h"
#include "log.h"
#include "reload.h"
#include "server.h"
#include "stream.h"
#include "tls.h"

/* Retention runs every minute, deleting in transactions of this many. */
#define RETENTION_PERIOD_US (60ll * 1000000)
#define RETENTION_BATCH 1000
#define RETENTION_MAX_BATCHES 20
#define SHUTDOWN_GRACE_US (3ll * 1000000)

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_reload_signal(int sig)
{
	(void)sig;
	reload_requested = 1;
}

struct server *server_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: canaryd [--config FILE] [--listen HOST:PORT] [--data-dir DIR] [--set NAME=VALUE]...\n"
		"       canaryd keys create --data-dir DIR --scopes ingest,subscribe,read[,admin] [--domains D1,D2] [--name NAME]\n"
		"       canaryd keys list   --data-dir DIR\n"
		"       canaryd keys revoke --data-dir DIR KEY_ID\n"
		"\n"
		"  --config FILE       read settings from an INI file (see conf/canaryd.conf)\n"
		"  --listen HOST:PORT  address to listen on (default 127.0.0.1:8080)\n"
		"  --data-dir DIR      LMDB store directory (default ./var)\n"
		"  --set NAME=VALUE    override one setting; may be repeated\n"
		"  --version           print the version\n");
}

/* Applies the command line over the defaults and the configuration file;
 * the file is read first so that flags override it wherever they stand. */
static int parse_args(int argc, char **argv, struct cd_config *cfg)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "set", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char err[512];
	int c;

	cfg_defaults(cfg);
	for (int pass = 0; pass < 2; pass++) {
		optind = 1;
		while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
			char assignment[CFG_PATH_MAX + 32];

			if (c == 'h') {
				usage(stdout);
				exit(0);
			}
			if (c == 'V') {
				printf("canaryd %s\n", CANARY_VERSION);
				exit(0);
			}
			if (c == '?') {
				usage(stderr);
				return -1;
			}
			if (pass == 0) {
				if (c == 'c' && cfg_load_file(cfg, optarg, err, sizeof(err))) {
					fprintf(stderr, "canaryd: %s\n", err);
					return -1;
				}
				continue;
			}
			if (c == 'l')
				snprintf(assignment, sizeof(assignment), "listen=%s", optarg);
			else if (c == 'd')
				snprintf(assignment, sizeof(assignment), "data_dir=%s", optarg);
			else if (c == 's')
				snprintf(assignment, sizeof(assignment), "%s", optarg);
			else
				continue;
			if (cfg_set(cfg, assignment, err, sizeof(err))) {
				fprintf(stderr, "canaryd: %s\n", err);
				return -1;
			}
		}
	}
	if (optind < argc) {
		fprintf(stderr, "canaryd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	if (cfg_validate(cfg, err, sizeof(err))) {
		fprintf(stderr, "canaryd: %s\n", err);
		return -1;
	}
	return 0;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static struct server *retention_server;
static lws_sorted_usec_list_t retention_sul;

/* Deletes signals past retention_hours in small transactions, a bounded
 * number per run, so the event loop is never held up for long. */
static void retention_run(lws_sorted_usec_list_t *sul)
{
	struct server *srv = retention_server;
	int64_t cutoff = sg_now_us() - (int64_t)srv->cfg.retention_hours * 3600 * 1000000;
	size_t total = 0;

	for (int i = 0; i < RETENTION_MAX_BATCHES; i++) {
		size_t deleted = 0;
		int rc = st_delete_received_before(srv->st, cutoff, RETENTION_BATCH,
						   &deleted);

		if (rc != ST_OK) {
			log_error("retention: deleting old signals failed: %s; retrying in a minute",
				  st_strerror(rc));
			break;
		}
		total += deleted;
		if (deleted < RETENTION_BATCH)
			break;
	}
	if (total)
		log_info("retention: deleted %zu signals received more than %" PRIu64 " hours ago",
			 total, srv->cfg.retention_hours);
	lws_sul_schedule(srv->ctx, 0, sul, retention_run,
			 total >= RETENTION_BATCH * RETENTION_MAX_BATCHES ? 1000
									   : RETENTION_PERIOD_US);
}

static int server_open(struct server *srv)
{
	struct st_options so = { 0, srv->cfg.map_size_max_bytes, 0 };
	char err[512];

	srv->started_us = sg_now_us();
	if (st_open(srv->cfg.data_dir, &so, &srv->st, err, sizeof(err)) != ST_OK) {
		log_error("%s", err);
		return -1;
	}
	srv->subs = mt_index_new();
	srv->slog = slog_new(srv->st, stream_publish, srv);
	srv->frame = malloc(LWS_PRE + SERVER_FRAME_MAX);
	srv->replay_buf = calloc(srv->cfg.replay_chunk_signals, sizeof(struct sg_signal));
	if (!srv->subs || !srv->slog || !srv->frame || !srv->replay_buf) {
		log_error("out of memory at start");
		return -1;
	}
	return 0;
}

static void server_close(struct server *srv)
{
	free(srv->replay_buf);
	free(srv->frame);
	slog_free(srv->slog);
	mt_index_free(srv->subs);
	if (srv->st)
		st_close(srv->st);
}

static struct lws_context *create_context(struct server *srv,
					  struct lws_protocols *protocols)
{
	static const struct lws_protocol_vhost_options pvo_default = {
		NULL, NULL, "default", "1"
	};
	static const struct lws_protocol_vhost_options pvo = {
		NULL, &pvo_default, "canary.v1.json", ""
	};
	struct lws_context_creation_info info;
	char host[256], err[256];
	int port;

	if (cfg_listen_split(srv->cfg.listen, host, sizeof(host), &port, err,
			     sizeof(err))) {
		log_error("%s", err);
		return NULL;
	}

	memset(&info, 0, sizeof(info));
	info.port = port;
	info.iface = host;
	info.protocols = protocols;
	info.pvo = &pvo;
	info.user = srv;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       LWS_SERVER_OPTION_DISABLE_IPV6 * !strchr(host, ':');
	info.max_http_header_data = 8192;
	info.timeout_secs = 10;
	info.keepalive_timeout = 30;
	/* HTTP/2 and WebSocket over HTTP/2 are kept off: the stream stays on
	 * HTTP/1.1, where lws's framing is mature. */
	info.alpn = "http/1.1";
	tls_configure(srv, &info);
	return lws_create_context(&info);
}

static int run_server(struct server *srv)
{
	struct lws_protocols protocols[] = {
		{ "http", http_callback, http_session_size(), 0, 0, NULL, 0 },
		{ "canary.v1.json", stream_callback, stream_session_size(), 4096, 0,
		  NULL, 0 },
		{ NULL, NULL, 0, 0, 0, NULL, 0 },
	};
	int64_t stop_at = 0;
	int rc = 0;

	srv->ctx = create_context(srv, protocols);
	if (!srv->ctx) {
		log_error("cannot listen on %s: check that the address is free and valid%s",
			  srv->cfg.listen,
			  srv->cfg.tls_cert[0] ? ", and that tls_cert and tls_key are readable PEM files" : "");
		return 1;
	}
	log_info("canaryd %s listening on %s://%s, store %s (epoch %s, head seq %" PRIu64 ")",
		 CANARY_VERSION, srv->cfg.tls_cert[0] ? "https" : "http",
		 srv->cfg.listen, srv->cfg.data_dir, st_epoch(srv->st),
		 st_head_seq(srv->st));

	stream_start_tick(srv);
	retention_server = srv;
	lws_sul_schedule(srv->ctx, 0, &retention_sul, retention_run, 1000);

	while (rc >= 0) {
		if (stop_requested && !stop_at) {
			log_info("stop requested: closing %" PRIu64 " WebSocket connections",
				 srv->counters.ws_connections);
			stream_shutdown(srv);
			stop_at = sg_now_us() + SHUTDOWN_GRACE_US;
		}
		if (stop_at && (!srv->counters.ws_connections || sg_now_us() > stop_at))
			break;
		if (reload_requested) {
			reload_requested = 0;
			server_reload(srv);
		}
		rc = lws_service(srv->ctx, 0);
	}

	lws_sul_cancel(&retention_sul);
	lws_context_destroy(srv->ctx);
	srv->ctx = NULL;
	log_info("canaryd stopped");
	return 0;
}

int main(int argc, char **argv)
{
	struct server *srv;
	enum log_level level;
	struct sigaction sa;
	int rc;

	if (argc > 1 && !strcmp(argv[1], "keys"))
		return keys_command(argc - 1, argv + 1);

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return 1;
	if (parse_args(argc, argv, &srv->cfg)) {
		free(srv);
		return 2;
	}
	if (log_level_parse(srv->cfg.log_level, &level)) {
		fprintf(stderr, "canaryd: log_level \"%s\" is invalid: use error, warn, info or debug\n",
			srv->cfg.log_level);
		free(srv);
		return 2;
	}
	log_threshold = level;
	log_attach_lws();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_reload_signal;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();

	rc = server_open(srv) ? 1 : run_server(srv);
	server_close(srv);
	free(srv);
	return rc;
}
