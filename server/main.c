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
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <libwebsockets.h>

#include "config.h"
#include "http.h"
#include "ingest_ws.h"
#include "outq.h"
#include "keys.h"
#include "log.h"
#include "reload.h"
#include "server.h"
#include "stream.h"
#include "tls.h"

/* Retention runs every retention_check_s, deleting in transactions of
 * this many signals. */
#define RETENTION_BATCH 256
#define RETENTION_MAX_BATCHES 2
#define SHUTDOWN_GRACE_US (3ll * 1000000)
#define CONTEXT_DESTROY_STEPS 8

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

/* The command line, parsed again on SIGHUP. */
static int saved_argc;
static char **saved_argv;

/* The stop flag is the signal's number, which the stop log line names. */
static void on_stop_signal(int sig)
{
	stop_requested = sig;
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

/* Reports an invalid configuration: on standard error at start, and in
 * the log, with its timestamp, when a reload reads it. */
static void config_error(int reloading, const char *err)
{
	if (reloading)
		log_error("reload: %s; keeping the current settings", err);
	else
		fprintf(stderr, "canaryd: %s\n", err);
}

/* Applies the command line over the defaults and the configuration file;
 * the file is read first so that flags override it wherever they stand. */
static int parse_args(int argc, char **argv, int reloading, struct cd_config *cfg)
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
	char err[4096];
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
					config_error(reloading, err);
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
				config_error(reloading, err);
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
		config_error(reloading, err);
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
static lws_sorted_usec_list_t sync_sul;

static void retention_run(lws_sorted_usec_list_t *sul);
static void sync_run(lws_sorted_usec_list_t *sul);

/* Signals deleted by the runs of one backlog so far, logged once at its end. */
static size_t retention_backlog;

/* One retention run, for the signal log's writer thread. */
static struct retention_job {
	int64_t cutoff;         /* delete signals received before this */
	int64_t retention_us;
	size_t deleted;         /* by this run */
	int more;               /* this run stopped at its budget */
} retention_job;

/* Deletes up to RETENTION_MAX_BATCHES transactions of RETENTION_BATCH
 * signals. Runs on the writer thread, between commits. */
static int retention_delete(st_store *st, void *arg)
{
	struct retention_job *job = arg;
	int rc = ST_OK;

	job->deleted = 0;
	job->more = 0;
	for (int i = 0; i < RETENTION_MAX_BATCHES; i++) {
		size_t deleted = 0;

		rc = st_delete_received_before(st, job->cutoff, RETENTION_BATCH, &deleted);
		job->deleted += deleted;
		if (rc != ST_OK)
			break;
		job->more = deleted == RETENTION_BATCH;
		if (!job->more)
			break;
	}
	return rc;
}

/* A run that used its whole budget continues 1 ms later, so that the
 * writer commits what came in meanwhile. Any other run is followed by
 * the next one retention_check_s later. */
static void retention_done(void *arg, int status)
{
	struct retention_job *job = arg;
	struct server *srv = retention_server;

	if (srv->shutting_down)
		return;
	retention_backlog += job->deleted;
	if (status != ST_OK) {
		log_error("retention: deleting old signals failed: %s; retrying in %" PRIu64 " s",
			  st_strerror(status), srv->cfg.retention_check_s);
		job->more = 0;
	}
	if (job->more) {
		lws_sul_schedule(srv->ctx, 0, &retention_sul, retention_run, 1000);
		return;
	}
	if (retention_backlog)
		log_info("retention: deleted %zu signals received more than %" PRId64 " s ago",
			 retention_backlog, job->retention_us / 1000000);
	retention_backlog = 0;
	lws_sul_schedule(srv->ctx, 0, &retention_sul, retention_run,
			 (lws_usec_t)srv->cfg.retention_check_s * 1000000);
}

/*
 * Deletes signals received more than the retention period ago
 * (retention_s, else retention_hours). The deletions are write
 * transactions, so they run on the signal log's writer thread
 * (retention_delete), and the event loop only schedules them.
 */
static void retention_run(lws_sorted_usec_list_t *sul)
{
	struct server *srv = retention_server;
	int stale = 0;

	/* A tool that shares the store (mdb_stat, a backup) and died inside a
	 * read transaction would otherwise keep freed pages from reuse until
	 * canaryd restarts. */
	if (st_reader_check(srv->st, &stale) == ST_OK && stale)
		log_warn("cleared %d LMDB reader slots left by dead processes", stale);

	retention_job.retention_us = cfg_retention_us(&srv->cfg);
	retention_job.cutoff = sg_now_us() - retention_job.retention_us;
	if (slog_run_task(srv->slog, retention_delete, retention_done, &retention_job)) {
		log_error("retention: out of memory; retrying in %" PRIu64 " s",
			  srv->cfg.retention_check_s);
		lws_sul_schedule(srv->ctx, 0, sul, retention_run,
				 (lws_usec_t)srv->cfg.retention_check_s * 1000000);
	}
}

static int sync_store(st_store *st, void *arg)
{
	(void)arg;
	return st_sync(st);
}

static void sync_done(void *arg, int status)
{
	struct server *srv = arg;

	if (srv->shutting_down)
		return;
	if (status != ST_OK)
		log_error("flushing the store to disk failed: %s; retrying in %" PRIu64 " ms",
			  st_strerror(status), srv->cfg.sync_interval_ms);
	lws_sul_schedule(srv->ctx, 0, &sync_sul, sync_run,
			 (lws_usec_t)srv->cfg.sync_interval_ms * 1000);
}

/* Flushes commits to the disk every sync_interval_ms when durability is
 * nometasync or nosync; see docs/operations.md for what each risks. The
 * fsync runs on the writer thread. */
static void sync_run(lws_sorted_usec_list_t *sul)
{
	struct server *srv = retention_server;

	if (slog_run_task(srv->slog, sync_store, sync_done, srv)) {
		log_error("flushing the store to disk: out of memory; retrying in %" PRIu64 " ms",
			  srv->cfg.sync_interval_ms);
		lws_sul_schedule(srv->ctx, 0, sul, sync_run,
				 (lws_usec_t)srv->cfg.sync_interval_ms * 1000);
	}
}

/* The lock that keeps a second canaryd off this store; held until exit. */
static int data_dir_lock_fd = -1;

/*
 * Takes an exclusive lock on DATA_DIR/canaryd.lock and writes this
 * process's id into it. Only one server may use a store: each publishes
 * only the signals it committed itself, so a subscriber of one server would
 * never see the signals that another server on the same store committed,
 * not even on resume. The `canaryd keys` command takes no lock. The kernel
 * releases the lock when the process ends, however it ends.
 */
static int lock_data_dir(const char *dir)
{
	char path[PATH_MAX], owner[32] = "";
	ssize_t got;
	int fd;

	if (snprintf(path, sizeof(path), "%s/canaryd.lock", dir) >= (int)sizeof(path)) {
		log_error("data_dir %s is too long", dir);
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("cannot open the lock file %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK) {
			got = pread(fd, owner, sizeof(owner) - 1, 0);
			owner[got > 0 ? got : 0] = '\0';
			owner[strcspn(owner, "\n")] = '\0';
			log_error("data_dir %s is in use by another canaryd (process %s): stop that "
				  "one first, or give this one another data_dir", dir,
				  owner[0] ? owner : "unknown");
		} else {
			log_error("cannot lock %s: %s", path, strerror(errno));
		}
		close(fd);
		return -1;
	}
	if (ftruncate(fd, 0) != 0 || dprintf(fd, "%ld\n", (long)getpid()) < 0)
		log_warn("cannot write this process's id into %s: %s", path, strerror(errno));
	data_dir_lock_fd = fd;
	return 0;
}

static int server_open(struct server *srv)
{
	struct st_options so = { 0, srv->cfg.map_size_max_bytes, 0, 0 };
	int64_t unindexed = INT64_MIN;
	char err[512];

	srv->started_us = sg_now_us();
	/* cfg_validate checked the name. The store is opened here, in the
	 * process that serves: canaryd never forks, and an LMDB environment
	 * must not be used across fork(). */
	cfg_durability(&srv->cfg, &so.durability);
	if (st_open(srv->cfg.data_dir, &so, &srv->st, err, sizeof(err)) != ST_OK) {
		log_error("%s", err);
		return -1;
	}
	if (lock_data_dir(srv->cfg.data_dir))
		return -1;
	if (st_unindexed_max(srv->st, &unindexed) == ST_OK && unindexed != INT64_MIN) {
		char until[32];

		sg_time_format(unindexed, until);
		log_info("the store contains signals from an older canaryd, observed up to %s: "
			 "signal lists whose window starts at or before that time read the "
			 "global time index and count by reading every signal in the window",
			 until);
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
	outq_release_cache();
	free(srv->replay_buf);
	free(srv->frame);
	slog_free(srv->slog);
	mt_index_free(srv->subs);
	if (srv->st)
		st_close(srv->st);
	if (data_dir_lock_fd >= 0)
		close(data_dir_lock_fd);
	data_dir_lock_fd = -1;
}

/* The account named by the `user` setting; lws switches to it right after
 * it binds the listener, before the first connection is accepted. */
static struct {
	int active;
	uid_t uid;
	gid_t gid;
} drop_to;

/*
 * Resolves the `user` setting. Started as root, canaryd drops to that user
 * after binding; started as that user already, nothing changes; any other
 * start is an error, because the setting could not be honoured.
 * Returns 0, or -1 after printing why.
 */
static int privileges_prepare(const struct cd_config *cfg)
{
	struct passwd *pw = NULL;

	if (!cfg->user[0])
		return 0;
	pw = getpwnam(cfg->user);
	if (!pw) {
		log_error("user \"%s\" is not a user of this system: create it or change the user setting",
			  cfg->user);
		return -1;
	}
	if (geteuid() == pw->pw_uid)
		return 0;
	if (geteuid() != 0) {
		log_error("user = %s needs canaryd to start as root to switch users (running as uid %u); start it as root or as %s",
			  cfg->user, (unsigned)geteuid(), cfg->user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_error("user = %s is root; name an unprivileged user", cfg->user);
		return -1;
	}
	drop_to.active = 1;
	drop_to.uid = pw->pw_uid;
	drop_to.gid = pw->pw_gid;
	return 0;
}

/* Gives the data directory and the files directly in it to the user that
 * canaryd drops to, so that the store stays writable after the switch
 * and after a restart. Returns 0, or -1 after logging the failure. */
static int privileges_chown_data_dir(const char *dir)
{
	DIR *d = NULL;
	struct dirent *e;
	char path[CFG_PATH_MAX + 256];
	int rc = 0;

	if (!drop_to.active)
		return 0;
	if (chown(dir, drop_to.uid, drop_to.gid)) {
		log_error("cannot give data_dir %s to uid %u: %s", dir,
			  (unsigned)drop_to.uid, strerror(errno));
		return -1;
	}
	d = opendir(dir);
	if (!d) {
		log_error("cannot list data_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lchown(path, drop_to.uid, drop_to.gid)) {
			log_error("cannot give %s to uid %u: %s", path,
				  (unsigned)drop_to.uid, strerror(errno));
			rc = -1;
		}
	}
	closedir(d);
	return rc;
}

/* Confirms that the switch happened and cannot be undone. Returns 0 or
 * -1; canaryd must not serve as root when a user was asked for. */
static int privileges_check(const char *user)
{
	if (!drop_to.active)
		return 0;
	if (getuid() != drop_to.uid || geteuid() != drop_to.uid ||
	    getgid() != drop_to.gid || getegid() != drop_to.gid ||
	    setuid(0) == 0) {
		log_error("switching to user %s failed; stopping rather than serving as root",
			  user);
		return -1;
	}
	log_info("running as user %s (uid %u, gid %u)", user,
		 (unsigned)drop_to.uid, (unsigned)drop_to.gid);
	return 0;
}

/*
 * Binds a socket to an IP address and port of the listen setting and
 * closes it again. lws 4.1.6 accepts an address that is not on this
 * machine: it logs an error and serves nothing, while canaryd would go on
 * as if it listened. An interface name is left to lws.
 */
static int listen_address_check(const char *listen)
{
	char host[256], err[256];
	int port;
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int one = 1, fd, rc;

	if (cfg_listen_split(listen, host, sizeof(host), &port, err, sizeof(err))) {
		log_error("%s", err);
		return -1;
	}
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		len = sizeof(*v6);
	} else {
		return 0;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	rc = bind(fd, (struct sockaddr *)&ss, len);
	if (rc != 0 && errno == EADDRNOTAVAIL)
		log_error("cannot listen on %s: %s is not an address of this machine; use one of "
			  "its addresses, 127.0.0.1, or 0.0.0.0 for all of them", host, host);
	else if (rc != 0 && errno == EADDRINUSE)
		log_error("cannot listen on %s port %d: another process listens there; stop it "
			  "or choose another port", host, port);
	else if (rc != 0)
		log_error("cannot listen on %s port %d: %s", host, port, strerror(errno));
	close(fd);
	return rc != 0 ? -1 : 0;
}

static struct lws_context *create_context(struct server *srv,
					  struct lws_protocols *protocols,
					  struct ev_loop *loop)
{
	static const struct lws_protocol_vhost_options pvo_default = {
		NULL, NULL, "default", "1"
	};
	static const struct lws_protocol_vhost_options pvo = {
		NULL, &pvo_default, "canary.v1.json", ""
	};
	struct lws_context_creation_info info;
	void *foreign_loops[1] = { loop };
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
	/* lws runs on canaryd's libev loop, which waits with epoll: its cost
	 * per turn grows with the connections that have events, where lws's
	 * own poll() loop scans every open connection on every turn. */
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_LIBEV |
		       LWS_SERVER_OPTION_DISABLE_IPV6 * !strchr(host, ':');
	info.foreign_loops = foreign_loops;
	/* lws sets srv->ctx to NULL once the context is wholly destroyed. */
	info.pcontext = &srv->ctx;
	info.max_http_header_data = 8192;
	/* Each connection holds one of these header buffers until its request
	 * or WebSocket handshake is read; lws's default of 32 makes /healthz
	 * and ingest queue behind a reconnect storm's handshakes. */
	info.max_http_header_pool = 512;
	/* Bounds the TLS handshake and the wait for a complete request line
	 * and headers, so that stalled clients are dropped. */
	info.timeout_secs = (unsigned)srv->cfg.handshake_timeout_s;
	info.timeout_secs_ah_idle = (unsigned)srv->cfg.handshake_timeout_s;
	if (drop_to.active) {
		info.uid = (int)drop_to.uid;
		info.gid = (int)drop_to.gid;
	}
	info.keepalive_timeout = 30;
	/* HTTP/2 and WebSocket over HTTP/2 are kept off: the stream stays on
	 * HTTP/1.1, where lws's framing is mature. */
	info.alpn = "http/1.1";
	tls_configure(srv, &info);
	return lws_create_context(&info);
}

/* The signal log's wake function, called on its writer thread. */
static void wake_event_loop(void *ctx)
{
	lws_cancel_service(ctx);
}

/*
 * Destroys the lws context on its foreign loop. lws finishes in steps:
 * each lws_context_destroy() call advances it, and it clears srv->ctx
 * after the last. Gives up after CONTEXT_DESTROY_STEPS calls.
 */
static void context_destroy(struct server *srv, struct ev_loop *loop)
{
	for (int i = 0; srv->ctx && i < CONTEXT_DESTROY_STEPS; i++) {
		lws_context_destroy(srv->ctx);
		if (srv->ctx)
			ev_run(loop, EVRUN_NOWAIT);
	}
	if (srv->ctx)
		log_error("the lws context was not destroyed at stop");
	srv->ctx = NULL;
}

static int run_server(struct server *srv)
{
	/* The last member, tx_packet_size, is the most lws passes to one
	 * send(). Its default is the receive buffer size, which would split
	 * each batched frame into 4 KiB sends with a loop turn between them. */
	struct lws_protocols protocols[] = {
		{ "http", http_callback, http_session_size(), 0, 0, NULL,
		  SERVER_FRAME_MAX },
		{ STREAM_PROTOCOL_JSON, stream_callback, stream_session_size(), 4096,
		  0, NULL, SERVER_FRAME_MAX },
		{ STREAM_PROTOCOL_MSGPACK, stream_callback, stream_session_size(),
		  4096, 0, NULL, SERVER_FRAME_MAX },
		{ INGEST_WS_PROTOCOL, ingest_ws_callback, ingest_ws_session_size(),
		  65536, 0, NULL, 0 },
		{ NULL, NULL, 0, 0, 0, NULL, 0 },
	};
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	int64_t stop_at = 0;
	int rc = 1;

	if (!loop) {
		log_error("cannot create the event loop: out of memory or descriptors");
		return 1;
	}
	if (listen_address_check(srv->cfg.listen))
		goto out;
	srv->ctx = create_context(srv, protocols, loop);
	if (!srv->ctx) {
		log_error("cannot listen on %s: check that the address is free and valid%s",
			  srv->cfg.listen,
			  srv->cfg.tls_cert[0] ? ", and that tls_cert and tls_key are readable PEM files" : "");
		goto out;
	}
	if (privileges_check(srv->cfg.user))
		goto out;
	log_info("canaryd %s listening on %s://%s, store %s (epoch %s, head seq %" PRIu64 ")",
		 CANARY_VERSION, srv->cfg.tls_cert[0] ? "https" : "http",
		 srv->cfg.listen, srv->cfg.data_dir, st_epoch(srv->st),
		 st_head_seq(srv->st));

	if (slog_start(srv->slog, wake_event_loop, srv->ctx))
		goto out;
	stream_start_tick(srv);
	retention_server = srv;
	lws_sul_schedule(srv->ctx, 0, &retention_sul, retention_run, 1000);
	if (strcmp(srv->cfg.durability, "full"))
		lws_sul_schedule(srv->ctx, 0, &sync_sul, sync_run,
				 (lws_usec_t)srv->cfg.sync_interval_ms * 1000);

	for (;;) {
		if (stop_requested && !stop_at) {
			/*
			 * The signal log's writer commits every queued batch
			 * before it stops (slog_stop below). From now on new
			 * connections are refused at accept (http.c); open ones
			 * finish their requests until the WebSocket closes are
			 * through or the grace ends. lws_context_deprecate()
			 * would close the listener instead, but it crashes in
			 * lws 4.1.6.
			 */
			const char *name = sigabbrev_np(stop_requested);

			log_info("stop requested by SIG%s: refusing new connections, closing %" PRIu64
				 " WebSocket connections", name ? name : "?",
				 srv->counters.ws_connections);
			stream_shutdown(srv);
			stop_at = sg_now_us() + SHUTDOWN_GRACE_US;
		}
		if (stop_at && (!srv->counters.ws_connections || sg_now_us() > stop_at))
			break;
		if (reload_requested && !stop_at) {
			struct cd_config next;

			reload_requested = 0;
			if (parse_args(saved_argc, saved_argv, 1, &next))
				log_info("reload: no setting changed");
			else
				server_reload(srv, &next);
		}
		stream_pass_begin(srv);
		/* One turn; a signal ends the wait early (EINTR), so the
		 * checks above see stop and reload requests at once. */
		ev_run(loop, EVRUN_ONCE);
	}

	lws_sul_cancel(&retention_sul);
	lws_sul_cancel(&sync_sul);
	/* The writer commits what is queued and stops; its wake function
	 * uses the context, so it stops before the context goes. */
	slog_stop(srv->slog);
	/* The last commits reach the disk whatever the durability setting. */
	if (st_sync(srv->st) != ST_OK)
		log_error("flushing the store to disk at stop failed");
	rc = 0;

out:
	context_destroy(srv, loop);
	ev_loop_destroy(loop);
	if (!rc)
		log_info("canaryd stopped");
	return rc;
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
	saved_argc = argc;
	saved_argv = argv;
	if (parse_args(argc, argv, 0, &srv->cfg)) {
		free(srv);
		return 2;
	}
	/* parse_args rejected an invalid log_level (cfg_validate). */
	if (log_level_parse(srv->cfg.log_level, &level) == 0)
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

	if (privileges_prepare(&srv->cfg) || server_open(srv) ||
	    privileges_chown_data_dir(srv->cfg.data_dir))
		rc = 1;
	else
		rc = run_server(srv);
	server_close(srv);
	free(srv);
	return rc;
}
