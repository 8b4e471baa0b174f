/*
 * Fan-out latency over loopback TCP with no broker in between, as a floor
 * for the brokers' figures on the same machine. One thread sends a
 * 300-byte message to each of M of N connected sockets, one send() per
 * socket. A receiver process reads them with epoll, as canary-bench's
 * subscribers do. The program prints one JSON object with the latency
 * from just before the first send of a message to its receipt, in
 * microseconds.
 *
 * The scenario has the shape of canary-bench's latency runs: message k
 * goes to the sockets i with i % (N / M) == k % (N / M), so every socket
 * gets its share and each message reaches M of them. Whatever a broker
 * adds (parsing, matching, storage, framing) comes on top of these
 * figures, so a broker's p99 cannot go below this one's on the same
 * machine.
 *
 * Usage: bench_fanout_floor [--sockets N] [--fanout M] [--rate R]
 *                           [--duration S] [--threads T]
 * (defaults 1000, 100, 500, 5, 1). With T > 1 the sends of each message
 * are split between T threads.
 * Not run by ctest; build it without sanitizers for meaningful figures.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG_BYTES 300
#define THREADS_MAX 8

struct opts {
	unsigned sockets, fanout, threads;
	double rate, duration;
};

struct shared {
	uint64_t received;
	uint64_t samples;
	int64_t lat_ns[];
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *step)
{
	fprintf(stderr, "bench_fanout_floor: %s failed: %s\n", step, strerror(errno));
	exit(1);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Reads every socket until `expected` messages have arrived, or until
 * nothing arrives for 2 s. */
static void receive(const int *fds, unsigned n, uint64_t expected,
		    struct shared *sh, uint64_t cap)
{
	int ep = epoll_create1(0);
	struct epoll_event ev[256];
	char buf[64 * 1024];
	size_t *partial = calloc(n, sizeof(*partial));
	char (*pending)[MSG_BYTES] = calloc(n, MSG_BYTES);

	if (ep < 0 || !partial || !pending)
		die("receiver setup");
	for (unsigned i = 0; i < n; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e))
			die("epoll_ctl");
	}
	while (sh->received < expected) {
		int k = epoll_wait(ep, ev, 256, 2000);

		if (k <= 0)
			break;
		for (int j = 0; j < k; j++) {
			unsigned i = ev[j].data.u32;
			ssize_t r = recv(fds[i], buf, sizeof(buf), 0);
			int64_t t = now_ns();

			for (ssize_t off = 0; off < r; off++) {
				pending[i][partial[i]++] = buf[off];
				if (partial[i] == MSG_BYTES) {
					int64_t sent;

					memcpy(&sent, pending[i], sizeof(sent));
					if (sh->samples < cap)
						sh->lat_ns[sh->samples++] = t - sent;
					sh->received++;
					partial[i] = 0;
				}
			}
		}
	}
	free(partial);
	free(pending);
}

struct sender {
	const int *fds;
	const char *msg;
	unsigned from, to, step;
};

static void send_range(const struct sender *s)
{
	for (unsigned i = s->from; i < s->to; i += s->step)
		if (send(s->fds[i], s->msg, MSG_BYTES, MSG_NOSIGNAL) != MSG_BYTES)
			die("send");
}

static void *sender_main(void *arg)
{
	send_range(arg);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_fanout_floor [--sockets N] [--fanout M] [--rate R] "
		"[--duration S] [--threads T]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o = { 1000, 100, 1, 500, 5 };
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int one = 1, lfd, *srv, *cli;
	unsigned groups;
	uint64_t messages, expected;
	struct shared *sh;
	char msg[MSG_BYTES];
	pid_t pid;
	int64_t start;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--sockets"))
			o.sockets = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--fanout"))
			o.fanout = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rate"))
			o.rate = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--duration"))
			o.duration = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			o.threads = (unsigned)atoi(argv[i + 1]);
		else
			usage();
	}
	if (argc % 2 == 0 || !o.sockets || !o.fanout || o.fanout > o.sockets ||
	    o.sockets % o.fanout || o.rate <= 0 || o.duration <= 0 ||
	    !o.threads || o.threads > THREADS_MAX)
		usage();
	groups = o.sockets / o.fanout;
	messages = (uint64_t)(o.rate * o.duration);
	expected = messages * o.fanout;

	sh = mmap(NULL, sizeof(*sh) + expected * sizeof(int64_t), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	srv = calloc(o.sockets, sizeof(int));
	cli = calloc(o.sockets, sizeof(int));
	if (sh == MAP_FAILED || !srv || !cli)
		die("memory");

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) || listen(lfd, 1024))
		die("listening on 127.0.0.1");
	for (unsigned i = 0; i < o.sockets; i++) {
		cli[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (cli[i] < 0 || connect(cli[i], (struct sockaddr *)&sa, sizeof(sa)))
			die("connect");
		srv[i] = accept(lfd, NULL, NULL);
		if (srv[i] < 0)
			die("accept");
		setsockopt(srv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}

	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		for (unsigned i = 0; i < o.sockets; i++)
			close(srv[i]);
		receive(cli, o.sockets, expected, sh, expected);
		_exit(0);
	}
	for (unsigned i = 0; i < o.sockets; i++)
		close(cli[i]);

	memset(msg, 'x', sizeof(msg));
	start = now_ns();
	for (uint64_t k = 0; k < messages; k++) {
		int64_t due = start + (int64_t)((double)k * 1e9 / o.rate);
		struct sender parts[THREADS_MAX];
		pthread_t th[THREADS_MAX];
		unsigned g = (unsigned)(k % groups);
		unsigned per = o.fanout / o.threads;

		while (now_ns() < due) {
			struct timespec ts = { 0, 50000 };

			nanosleep(&ts, NULL);
		}
		int64_t t0 = now_ns();

		memcpy(msg, &t0, sizeof(t0));
		/* The message goes to sockets g, g + groups, g + 2 * groups
		 * and so on. Thread j sends to a contiguous run of them. */
		for (unsigned j = 0; j < o.threads; j++) {
			unsigned first = j * per, last = j + 1 == o.threads ? o.fanout : first + per;

			parts[j] = (struct sender){ srv, msg, g + first * groups,
						    g + last * groups, groups };
		}
		for (unsigned j = 1; j < o.threads; j++)
			if (pthread_create(&th[j], NULL, sender_main, &parts[j]))
				die("pthread_create");
		send_range(&parts[0]);
		for (unsigned j = 1; j < o.threads; j++)
			pthread_join(th[j], NULL);
	}
	waitpid(pid, NULL, 0);

	if (sh->samples == 0) {
		fprintf(stderr, "bench_fanout_floor: no message arrived within 2 s: "
			"check that loopback TCP works\n");
		return 1;
	}
	qsort(sh->lat_ns, sh->samples, sizeof(int64_t), cmp_i64);
	printf("{\"target\":\"loopback-floor\",\"sockets\":%u,\"fanout\":%u,\"threads\":%u,"
	       "\"rate_offered\":%.1f,\"messages\":%llu,\"received\":%llu,"
	       "\"latency_us\":{\"p50\":%lld,\"p99\":%lld,\"p999\":%lld,\"max\":%lld},\"lost\":%llu}\n",
	       o.sockets, o.fanout, o.threads, o.rate, (unsigned long long)messages,
	       (unsigned long long)sh->received,
	       (long long)(sh->lat_ns[sh->samples / 2] / 1000),
	       (long long)(sh->lat_ns[sh->samples * 99 / 100] / 1000),
	       (long long)(sh->lat_ns[sh->samples * 999 / 1000] / 1000),
	       (long long)(sh->lat_ns[sh->samples - 1] / 1000),
	       (unsigned long long)(expected - sh->received));
	return 0;
}
