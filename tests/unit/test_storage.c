/*
 * Unit tests of the storage library against real LMDB directories under
 * CANARY_TEST_TMP (or /tmp). Corrupt values and a newer schema are
 * written with raw LMDB calls while the store is closed.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "store.h"
#include "check.h"
#include "store_raw.h"

#define MIB (UINT64_C(1) << 20)
#define KIB (UINT64_C(1) << 10)

/* 2026-01-03T00:00:00Z in microseconds. */
#define BASE_US INT64_C(1767398400000000)
#define SEC INT64_C(1000000)

static char base_dir[4096];
static int dir_count;

/* ---- helpers ---- */

static void new_dir(char *out, size_t cap)
{
	snprintf(out, cap, "%s/store%d", base_dir, dir_count++);
}

static void make_signal(struct sg_signal *s, int64_t observed_us,
			int64_t received_us)
{
	memset(s, 0, sizeof *s);
	s->observed_us = observed_us;
	s->received_us = received_us;
	s->event_type = SG_EVENT_CREDENTIAL_TESTING;
	s->confidence = SG_CONFIDENCE_HIGH;
	s->proxy_type = SG_PROXY_RESIDENTIAL;
	s->stage = SG_STAGE_ATTACK;
	s->action = SG_ACTION_BLOCK;
	s->credential_leaked = SG_BOOL_ABSENT;
	strcpy(s->region, "DE");
	strcpy(s->domain, "example.com");
	strcpy(s->sensor, "sensor-7");
}

static st_store *open_store(const char *dir, const struct st_options *opt)
{
	char err[512] = "";
	st_store *st = NULL;
	int rc = st_open(dir, opt, &st, err, sizeof err);

	if (rc != ST_OK)
		fprintf(stderr, "st_open failed: %s\n", err);
	CHECK(rc == ST_OK);
	CHECK(st != NULL);
	return st;
}

/* Appends n signals observed at observed[i] and received at base + i. */
static int append_times(st_store *st, const int64_t *observed, size_t n,
			int64_t received_base)
{
	struct sg_signal *sigs = calloc(n, sizeof *sigs);
	int rc;

	for (size_t i = 0; i < n; i++)
		make_signal(&sigs[i], observed[i], received_base + (int64_t)i);
	rc = st_append(st, sigs, n);
	free(sigs);
	return rc;
}

static void seq_key(uint8_t out[8], uint64_t seq)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)(seq & 0xff);
		seq >>= 8;
	}
}

static bool is_hex32(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (size_t i = 0; i < 32; i++) {
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	}
	return true;
}

/* Records what st_scan_time_desc visits. */
struct visit_log {
	uint64_t seqs[4096];
	int64_t times[4096];
	size_t n;
	size_t stop_after;      /* 0: never stop */
};

static int log_visit(const struct sg_signal *s, void *ctx)
{
	struct visit_log *log = ctx;

	if (log->n < sizeof log->seqs / sizeof log->seqs[0]) {
		log->seqs[log->n] = s->seq;
		log->times[log->n] = s->observed_us;
	}
	log->n++;
	return log->stop_after && log->n >= log->stop_after ? 1 : 0;
}

/* ---- seq assignment ---- */

static void test_seq_consecutive(void)
{
	char dir[4200];
	char epoch[33];
	int64_t t[3] = { BASE_US, BASE_US + SEC, BASE_US + 2 * SEC };
	struct sg_signal sigs[3];
	struct sg_signal got;
	size_t deleted = 0;
	size_t n = 0;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK(st_head_seq(st) == 0);
	CHECK(st_oldest_seq(st) == 1);
	CHECK(is_hex32(st_epoch(st)));
	snprintf(epoch, sizeof epoch, "%s", st_epoch(st));

	for (int i = 0; i < 3; i++)
		make_signal(&sigs[i], t[i], BASE_US + i);
	CHECK(st_append(st, sigs, 3) == ST_OK);
	CHECK(sigs[0].seq == 1);
	CHECK(sigs[1].seq == 2);
	CHECK(sigs[2].seq == 3);
	CHECK(st_append(st, sigs, 2) == ST_OK);
	CHECK(sigs[0].seq == 4);
	CHECK(sigs[1].seq == 5);
	CHECK(st_head_seq(st) == 5);
	CHECK(st_oldest_seq(st) == 1);

	CHECK(st_append(st, sigs, 0) == ST_OK);
	CHECK(st_append(st, NULL, 1) == ST_ERR_INVALID);
	CHECK(st_head_seq(st) == 5);

	/* seq and epoch survive a restart. */
	st_close(st);
	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK_STR(st_epoch(st), epoch);
	CHECK(st_head_seq(st) == 5);
	CHECK(st_append(st, sigs, 1) == ST_OK);
	CHECK(sigs[0].seq == 6);

	/* Deleting everything does not give a seq back. */
	CHECK(st_delete_received_before(st, INT64_MAX, 100, &deleted) == ST_OK);
	CHECK(deleted == 6);
	CHECK(st_oldest_seq(st) == 7);
	CHECK(st_get(st, 1, &got) == ST_ERR_NOT_FOUND);
	CHECK(st_read_after(st, 0, &got, 1, &n) == ST_OK);
	CHECK(n == 0);
	CHECK(st_append(st, sigs, 1) == ST_OK);
	CHECK(sigs[0].seq == 7);

	st_close(st);
	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK(st_head_seq(st) == 7);
	CHECK(st_oldest_seq(st) == 7);
	CHECK_STR(st_epoch(st), epoch);
	CHECK(st_append(st, sigs, 1) == ST_OK);
	CHECK(sigs[0].seq == 8);
	st_close(st);
}

/* ---- reads by seq ---- */

static void test_read_after(void)
{
	char dir[4200];
	struct sg_signal sigs[10];
	struct sg_signal out[8];
	size_t n = 99;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st)
		return;
	for (int i = 0; i < 10; i++) {
		make_signal(&sigs[i], BASE_US + i * SEC + 123, BASE_US + 1000 + i);
		snprintf(sigs[i].domain, sizeof sigs[i].domain, "brand%d.example", i);
	}
	sigs[3].credential_leaked = 1;
	strcpy(sigs[3].campaign_id, "camp-3");
	strcpy(sigs[3].infra_id, "infra-3");
	CHECK(st_append(st, sigs, 10) == ST_OK);

	CHECK(st_read_after(st, 0, out, 4, &n) == ST_OK);
	CHECK(n == 4);
	for (size_t i = 0; i < 4 && i < n; i++) {
		CHECK(out[i].seq == i + 1);
		CHECK(out[i].observed_us == sigs[i].observed_us);
		CHECK(out[i].received_us == sigs[i].received_us);
		CHECK_STR(out[i].domain, sigs[i].domain);
		CHECK_STR(out[i].region, "DE");
		CHECK_STR(out[i].sensor, "sensor-7");
		CHECK(out[i].confidence == SG_CONFIDENCE_HIGH);
	}
	CHECK(out[3].credential_leaked == 1);
	CHECK_STR(out[3].campaign_id, "camp-3");
	CHECK_STR(out[3].infra_id, "infra-3");
	CHECK(out[2].credential_leaked == SG_BOOL_ABSENT);

	CHECK(st_read_after(st, 4, out, 4, &n) == ST_OK);
	CHECK(n == 4);
	CHECK(out[0].seq == 5);
	CHECK(out[3].seq == 8);

	/* Fewer than max: the head was reached. */
	CHECK(st_read_after(st, 8, out, 8, &n) == ST_OK);
	CHECK(n == 2);
	CHECK(out[0].seq == 9);
	CHECK(out[1].seq == 10);

	CHECK(st_read_after(st, 10, out, 8, &n) == ST_OK);
	CHECK(n == 0);
	CHECK(st_read_after(st, 1000, out, 8, &n) == ST_OK);
	CHECK(n == 0);
	CHECK(st_read_after(st, UINT64_MAX, out, 8, &n) == ST_OK);
	CHECK(n == 0);
	CHECK(st_read_after(st, 0, out, 0, &n) == ST_OK);
	CHECK(n == 0);

	CHECK(st_get(st, 3, &out[0]) == ST_OK);
	CHECK(out[0].seq == 3);
	CHECK_STR(out[0].domain, "brand2.example");
	CHECK(st_get(st, 11, &out[0]) == ST_ERR_NOT_FOUND);
	CHECK(st_get(st, 0, &out[0]) == ST_ERR_NOT_FOUND);
	st_close(st);
}

/* ---- time index ---- */

static int cmp_desc(const void *a, const void *b)
{
	const int64_t *x = a;
	const int64_t *y = b;

	if (x[0] != y[0])
		return x[0] < y[0] ? 1 : -1;
	return x[1] < y[1] ? 1 : (x[1] > y[1] ? -1 : 0);
}

static void test_scan_small(void)
{
	char dir[4200];
	int64_t t[7] = { BASE_US + 100, BASE_US + 300, BASE_US + 200,
			 BASE_US + 300, BASE_US + 50, BASE_US + 300, -5 * SEC };
	int64_t expect[7][2];
	struct visit_log *log = calloc(1, sizeof *log);
	struct st_time_pos start;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st || !log)
		goto out;
	CHECK(append_times(st, t, 7, BASE_US) == ST_OK);

	/* Expected order: observed time descending, ties by seq descending. */
	for (int i = 0; i < 7; i++) {
		expect[i][0] = t[i];
		expect[i][1] = i + 1;
	}
	qsort(expect, 7, sizeof expect[0], cmp_desc);

	CHECK(st_scan_time_desc(st, NULL, INT64_MIN, log_visit, log) == ST_OK);
	CHECK(log->n == 7);
	for (size_t i = 0; i < 7 && i < log->n; i++) {
		CHECK(log->seqs[i] == (uint64_t)expect[i][1]);
		CHECK(log->times[i] == expect[i][0]);
	}
	/* The time before 1970 sorts last. */
	CHECK(log->seqs[6] == 7);

	/* Start strictly after the second of the three equal times. */
	memset(log, 0, sizeof *log);
	start = (struct st_time_pos){ BASE_US + 300, 4 };
	CHECK(st_scan_time_desc(st, &start, INT64_MIN, log_visit, log) == ST_OK);
	CHECK(log->n == 5);
	CHECK(log->seqs[0] == 2);
	CHECK(log->seqs[1] == 3);
	CHECK(log->seqs[2] == 1);

	/* A start position that is not in the index. */
	memset(log, 0, sizeof *log);
	start = (struct st_time_pos){ BASE_US + 250, 0 };
	CHECK(st_scan_time_desc(st, &start, INT64_MIN, log_visit, log) == ST_OK);
	CHECK(log->n == 4);
	CHECK(log->seqs[0] == 3);

	/* A start past the newest entry visits everything. */
	memset(log, 0, sizeof *log);
	start = (struct st_time_pos){ INT64_MAX, UINT64_MAX };
	CHECK(st_scan_time_desc(st, &start, INT64_MIN, log_visit, log) == ST_OK);
	CHECK(log->n == 7);

	/* min_us stops before older signals; equal to min_us is included. */
	memset(log, 0, sizeof *log);
	CHECK(st_scan_time_desc(st, NULL, BASE_US + 100, log_visit, log) == ST_OK);
	CHECK(log->n == 5);
	CHECK(log->seqs[4] == 1);

	/* The visitor stops the scan early. */
	memset(log, 0, sizeof *log);
	log->stop_after = 2;
	CHECK(st_scan_time_desc(st, NULL, INT64_MIN, log_visit, log) == ST_OK);
	CHECK(log->n == 2);
	CHECK(log->seqs[0] == 6);
	CHECK(log->seqs[1] == 4);

	CHECK(st_scan_time_desc(st, NULL, INT64_MIN, NULL, log) == ST_ERR_INVALID);

out:
	free(log);
	st_close(st);
}

/* More signals than one chunk of 512, with many equal times. */
static void test_scan_chunks(void)
{
	enum { COUNT = 1300 };
	char dir[4200];
	int64_t *t = calloc(COUNT, sizeof *t);
	struct visit_log *log = calloc(1, sizeof *log);
	bool *seen = calloc(COUNT + 1, sizeof *seen);
	bool ordered = true;
	bool unique = true;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st || !t || !log || !seen)
		goto out;
	for (int i = 0; i < COUNT; i++)
		t[i] = BASE_US + (i % 7) * SEC;
	CHECK(append_times(st, t, COUNT, BASE_US) == ST_OK);

	CHECK(st_scan_time_desc(st, NULL, INT64_MIN, log_visit, log) == ST_OK);
	CHECK(log->n == COUNT);
	for (size_t i = 0; i < log->n && i < COUNT; i++) {
		uint64_t seq = log->seqs[i];

		if (seq == 0 || seq > COUNT || seen[seq])
			unique = false;
		else
			seen[seq] = true;
		if (i > 0 && (log->times[i] > log->times[i - 1] ||
			      (log->times[i] == log->times[i - 1] &&
			       log->seqs[i] >= log->seqs[i - 1])))
			ordered = false;
	}
	CHECK(unique);
	CHECK(ordered);

	/* Stop inside the second chunk. */
	memset(log, 0, sizeof *log);
	log->stop_after = 600;
	CHECK(st_scan_time_desc(st, NULL, INT64_MIN, log_visit, log) == ST_OK);
	CHECK(log->n == 600);

out:
	free(seen);
	free(log);
	free(t);
	st_close(st);
}

static void test_first_seq_observed(void)
{
	char dir[4200];
	int64_t t[4] = { BASE_US + 100, BASE_US + 300, BASE_US + 200, BASE_US + 50 };
	uint64_t seq = 0;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK(st_first_seq_observed_since(st, 0, &seq) == ST_OK);
	CHECK(seq == 1);

	CHECK(append_times(st, t, 4, BASE_US) == ST_OK);
	CHECK(st_first_seq_observed_since(st, INT64_MIN, &seq) == ST_OK);
	CHECK(seq == 1);
	CHECK(st_first_seq_observed_since(st, BASE_US + 50, &seq) == ST_OK);
	CHECK(seq == 1);
	CHECK(st_first_seq_observed_since(st, BASE_US + 150, &seq) == ST_OK);
	CHECK(seq == 2);
	CHECK(st_first_seq_observed_since(st, BASE_US + 250, &seq) == ST_OK);
	CHECK(seq == 2);
	CHECK(st_first_seq_observed_since(st, BASE_US + 300, &seq) == ST_OK);
	CHECK(seq == 2);
	CHECK(st_first_seq_observed_since(st, BASE_US + 301, &seq) == ST_OK);
	CHECK(seq == 5);
	CHECK(st_first_seq_observed_since(st, INT64_MAX, &seq) == ST_OK);
	CHECK(seq == 5);
	st_close(st);
}

/* The smallest seq sits at the end of an index longer than one chunk. */
static void test_first_seq_chunks(void)
{
	enum { COUNT = 5000 };
	char dir[4200];
	int64_t *t = calloc(COUNT, sizeof *t);
	uint64_t seq = 0;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st || !t)
		goto out;
	for (int i = 0; i < COUNT; i++)
		t[i] = BASE_US + (COUNT - i) * SEC;
	CHECK(append_times(st, t, COUNT, BASE_US) == ST_OK);

	CHECK(st_first_seq_observed_since(st, BASE_US, &seq) == ST_OK);
	CHECK(seq == 1);
	CHECK(st_first_seq_observed_since(st, BASE_US + 4000 * SEC, &seq) == ST_OK);
	CHECK(seq == 1);
	CHECK(st_first_seq_observed_since(st, BASE_US + (COUNT - 9) * SEC, &seq) == ST_OK);
	CHECK(seq == 1);
	CHECK(st_first_seq_observed_since(st, BASE_US + (COUNT + 1) * SEC, &seq) == ST_OK);
	CHECK(seq == COUNT + 1);

out:
	free(t);
	st_close(st);
}

/* ---- fault point ---- */

static void test_fault_commit(void)
{
	char dir[4200];
	int64_t t[3] = { BASE_US, BASE_US + 1, BASE_US + 2 };
	struct sg_signal sigs[2];
	struct sg_signal got;
	size_t n = 0;
	uint64_t seq = 0;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK(append_times(st, t, 3, BASE_US) == ST_OK);
	st_close(st);

	setenv("CANARY_FAULT", "write,commit", 1);
	st = open_store(dir, NULL);
	unsetenv("CANARY_FAULT");
	if (!st)
		return;

	make_signal(&sigs[0], BASE_US + 10, BASE_US + 10);
	make_signal(&sigs[1], BASE_US + 11, BASE_US + 11);
	CHECK(st_append(st, sigs, 2) == ST_ERR_IO);
	CHECK(sigs[0].seq == 0);
	CHECK(sigs[1].seq == 0);
	CHECK(st_head_seq(st) == 3);
	CHECK(st_read_after(st, 3, &got, 1, &n) == ST_OK);
	CHECK(n == 0);
	CHECK(st_get(st, 4, &got) == ST_ERR_NOT_FOUND);
	CHECK(st_first_seq_observed_since(st, BASE_US + 10, &seq) == ST_OK);
	CHECK(seq == 4);

	/* The next append gets the seq that the failed one would have had. */
	CHECK(st_append(st, sigs, 2) == ST_OK);
	CHECK(sigs[0].seq == 4);
	CHECK(sigs[1].seq == 5);
	st_close(st);

	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK(st_head_seq(st) == 5);
	st_close(st);
}

/* ---- map growth and a full map ---- */

static int count_visit(const struct sg_signal *s, void *ctx)
{
	(void)s;
	(*(size_t *)ctx)++;
	return 0;
}

/*
 * Appends batches of batch signals until the map is full, then deletes
 * half of them, or all, and appends again.
 */
static void test_map_full(int batch, bool delete_all)
{
	enum { BATCH_MAX = 20, MAX_BATCHES = 100000 };
	char dir[4200];
	struct st_options opt = { 256 * KIB, 1 * MIB, 0, 0 };
	struct sg_signal sigs[BATCH_MAX];
	struct sg_signal got[10];
	size_t n = 0;
	size_t visited = 0;
	size_t deleted = 0;
	uint64_t head = 0;
	uint64_t keep = 0;
	int rc = ST_OK;
	int batches = 0;
	bool grew = false;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, &opt);
	if (!st)
		return;
	CHECK(st_map_size(st) == 256 * KIB);

	for (batches = 0; batches < MAX_BATCHES; batches++) {
		for (int j = 0; j < batch; j++) {
			int64_t k = (int64_t)batches * batch + j;

			make_signal(&sigs[j], BASE_US + k * SEC, BASE_US + k);
			snprintf(sigs[j].domain, sizeof sigs[j].domain,
				 "brand-%lld.example", (long long)k);
		}
		rc = st_append(st, sigs, (size_t)batch);
		if (rc != ST_OK)
			break;
		if (st_map_size(st) > 256 * KIB)
			grew = true;
	}
	CHECK(rc == ST_ERR_MAP_FULL);
	CHECK(grew);
	CHECK(st_map_size(st) <= 1 * MIB);
	CHECK(batches * batch > 200);
	CHECK(sigs[0].seq == 0);
	CHECK(sigs[batch - 1].seq == 0);

	head = st_head_seq(st);
	CHECK(head == (uint64_t)batches * (uint64_t)batch);
	CHECK(st_append(st, sigs, (size_t)batch) == ST_ERR_MAP_FULL);
	CHECK(st_head_seq(st) == head);

	/* Earlier data is intact and reads keep working. */
	CHECK(st_read_after(st, 0, got, 10, &n) == ST_OK);
	CHECK(n == 10);
	CHECK(got[0].seq == 1);
	CHECK_STR(got[0].domain, "brand-0.example");
	CHECK(st_get(st, head, &got[0]) == ST_OK);
	CHECK(got[0].seq == head);
	CHECK(st_scan_time_desc(st, NULL, INT64_MIN, count_visit, &visited) == ST_OK);
	CHECK(visited == head);

	/* A full store still opens. */
	st_close(st);
	st = open_store(dir, &opt);
	if (!st)
		return;
	CHECK(st_head_seq(st) == head);

	/*
	 * Retention frees room and appends work again. Deleting everything
	 * at once touches more pages than the reserve holds, so the store
	 * splits it into smaller transactions.
	 */
	keep = delete_all ? 0 : head / 2;
	CHECK(st_delete_received_before(st, BASE_US + (int64_t)(head - keep),
					head, &deleted) == ST_OK);
	CHECK(deleted == head - keep);
	CHECK(st_oldest_seq(st) == head - keep + 1);
	CHECK(st_map_size(st) <= 1 * MIB);
	CHECK(st_append(st, sigs, (size_t)batch) == ST_OK);
	CHECK(sigs[0].seq == head + 1);
	CHECK(st_head_seq(st) == head + (uint64_t)batch);
	st_close(st);
}

/*
 * Observed times in random order spread the deletions over every page of
 * by_time. Deleting half of a full store then needs more fresh pages than
 * the reserve holds in one transaction, so the deletion is split.
 */
static void test_map_full_scattered(void)
{
	enum { BATCH = 500, MAX_BATCHES = 1000 };
	char dir[4200];
	struct st_options opt = { 1 * MIB, 16 * MIB, 0, 0 };
	struct sg_signal *sigs = calloc(BATCH, sizeof *sigs);
	uint64_t rnd = 88172645463325252u;
	uint64_t head = 0;
	size_t deleted = 0;
	size_t visited = 0;
	int rc = ST_OK;
	int batches = 0;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, &opt);
	if (!st || !sigs)
		goto out;

	for (batches = 0; batches < MAX_BATCHES; batches++) {
		for (int j = 0; j < BATCH; j++) {
			int64_t k = (int64_t)batches * BATCH + j;

			rnd ^= rnd << 13;
			rnd ^= rnd >> 7;
			rnd ^= rnd << 17;
			make_signal(&sigs[j], BASE_US + (int64_t)(rnd % 1000000) * SEC,
				    BASE_US + k);
		}
		rc = st_append(st, sigs, BATCH);
		if (rc != ST_OK)
			break;
	}
	CHECK(rc == ST_ERR_MAP_FULL);
	head = st_head_seq(st);
	CHECK(head > 10000);

	CHECK(st_delete_received_before(st, BASE_US + (int64_t)head / 2, head,
					&deleted) == ST_OK);
	CHECK(deleted == head / 2);
	CHECK(st_map_size(st) <= 16 * MIB);
	CHECK(st_scan_time_desc(st, NULL, INT64_MIN, count_visit, &visited) == ST_OK);
	CHECK(visited == head - head / 2);
	CHECK(st_append(st, sigs, BATCH) == ST_OK);
	CHECK(sigs[0].seq == head + 1);

out:
	free(sigs);
	st_close(st);
}

/* Readers in another thread while appends grow the map. */
struct reader_ctx {
	st_store *st;
	atomic_bool stop;
	int failures;
	long rounds;
};

static void *reader_main(void *arg)
{
	struct reader_ctx *rc = arg;
	struct sg_signal *out = calloc(64, sizeof *out);

	while (out && !atomic_load(&rc->stop)) {
		size_t n = 0;
		size_t visited = 0;

		if (st_read_after(rc->st, 0, out, 64, &n) != ST_OK)
			rc->failures++;
		if (st_scan_time_desc(rc->st, NULL, BASE_US + 1000 * SEC,
				      count_visit, &visited) != ST_OK)
			rc->failures++;
		rc->rounds++;
	}
	free(out);
	return NULL;
}

static void test_growth_with_readers(void)
{
	enum { BATCH = 50 };
	char dir[4200];
	struct st_options opt = { 64 * KIB, 8 * MIB, 0, 0 };
	struct reader_ctx rctx = { NULL, false, 0, 0 };
	struct sg_signal sigs[BATCH];
	pthread_t reader;
	int failures = 0;
	int k = 0;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, &opt);
	if (!st)
		return;
	rctx.st = st;
	CHECK(pthread_create(&reader, NULL, reader_main, &rctx) == 0);

	while (st_map_size(st) < 4 * MIB && k < 200000) {
		for (int j = 0; j < BATCH; j++, k++)
			make_signal(&sigs[j], BASE_US + k * SEC, BASE_US + k);
		if (st_append(st, sigs, BATCH) != ST_OK)
			failures++;
	}
	atomic_store(&rctx.stop, true);
	pthread_join(reader, NULL);

	CHECK(failures == 0);
	CHECK(rctx.failures == 0);
	CHECK(rctx.rounds > 0);
	CHECK(st_map_size(st) >= 4 * MIB);
	CHECK(st_head_seq(st) == (uint64_t)k);
	st_close(st);
}

/* ---- API keys ---- */

static void make_key(struct st_key *k, const char *id, uint8_t hash_byte,
		     uint32_t scopes, const char *name, const char *domains)
{
	memset(k, 0, sizeof *k);
	snprintf(k->id, sizeof k->id, "%.16s", id);
	memset(k->hash, hash_byte, sizeof k->hash);
	k->scopes = scopes;
	snprintf(k->name, sizeof k->name, "%s", name);
	k->domains = (char *)domains;
	k->created_us = BASE_US;
}

struct key_log {
	char ids[256][ST_KEY_ID_LEN + 1];
	int64_t revoked[256];
	size_t n;
};

static void log_key(const struct st_key *k, void *ctx)
{
	struct key_log *log = ctx;

	if (log->n < 256) {
		memcpy(log->ids[log->n], k->id, sizeof log->ids[0]);
		log->revoked[log->n] = k->revoked_us;
	}
	log->n++;
}

static void test_keys(void)
{
	char dir[4200];
	struct st_key a;
	struct st_key b;
	struct st_key k;
	struct st_key got = { .domains = NULL };
	struct key_log *log = calloc(1, sizeof *log);
	int64_t revoked = 0;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st || !log)
		goto out;

	make_key(&a, "00000000000000b2", 0xa1, ST_SCOPE_INGEST | ST_SCOPE_READ,
		 "sensor fleet", "example.com,*.example.org");
	make_key(&b, "00000000000000a1", 0xb2, ST_SCOPE_SUBSCRIBE, "", NULL);
	CHECK(st_key_put(st, &a) == ST_OK);
	CHECK(st_key_put(st, &b) == ST_OK);

	/* Taken id or hash: nothing of the new key is stored. */
	CHECK(st_key_put(st, &a) == ST_ERR_EXISTS);
	make_key(&k, "00000000000000c3", 0xa1, ST_SCOPE_READ, "dup hash", NULL);
	CHECK(st_key_put(st, &k) == ST_ERR_EXISTS);
	CHECK(st_key_find_by_id(st, "00000000000000c3", &got) == ST_ERR_NOT_FOUND);
	make_key(&k, "00000000000000b2", 0xc3, ST_SCOPE_READ, "dup id", NULL);
	CHECK(st_key_put(st, &k) == ST_ERR_EXISTS);
	CHECK(st_key_find_by_hash(st, k.hash, &got) == ST_ERR_NOT_FOUND);

	/* Invalid keys. */
	make_key(&k, "00000000000000D4", 0xd4, ST_SCOPE_READ, "", NULL);
	CHECK(st_key_put(st, &k) == ST_ERR_INVALID);
	make_key(&k, "00000000000000d", 0xd4, ST_SCOPE_READ, "", NULL);
	CHECK(st_key_put(st, &k) == ST_ERR_INVALID);
	make_key(&k, "00000000000000d4", 0xd4, 0x100, "", NULL);
	CHECK(st_key_put(st, &k) == ST_ERR_INVALID);

	CHECK(st_key_find_by_hash(st, a.hash, &got) == ST_OK);
	CHECK_STR(got.id, a.id);
	CHECK_STR(got.name, "sensor fleet");
	CHECK_STR(got.domains, "example.com,*.example.org");
	CHECK(got.scopes == (ST_SCOPE_INGEST | ST_SCOPE_READ));
	CHECK(memcmp(got.hash, a.hash, sizeof a.hash) == 0);
	CHECK(got.created_us == BASE_US);
	CHECK(got.revoked_us == 0);
	st_key_clear(&got);
	CHECK(got.domains == NULL);

	CHECK(st_key_find_by_id(st, b.id, &got) == ST_OK);
	CHECK_STR(got.name, "");
	CHECK(got.domains == NULL);
	CHECK(got.scopes == ST_SCOPE_SUBSCRIBE);
	st_key_clear(&got);
	CHECK(st_key_find_by_id(st, "not-a-key-id", &got) == ST_ERR_INVALID);
	CHECK(st_key_find_by_id(st, "ffffffffffffffff", &got) == ST_ERR_NOT_FOUND);

	/* Listed in id order. */
	CHECK(st_key_list(st, log_key, log) == ST_OK);
	CHECK(log->n == 2);
	CHECK_STR(log->ids[0], "00000000000000a1");
	CHECK_STR(log->ids[1], "00000000000000b2");

	/* Revoked keys stay, marked with the revocation time. */
	CHECK(st_key_revoke(st, a.id) == ST_OK);
	CHECK(st_key_find_by_hash(st, a.hash, &got) == ST_OK);
	CHECK(got.revoked_us > 0);
	CHECK_STR(got.domains, "example.com,*.example.org");
	revoked = got.revoked_us;
	st_key_clear(&got);
	CHECK(st_key_revoke(st, a.id) == ST_OK);
	CHECK(st_key_find_by_id(st, a.id, &got) == ST_OK);
	CHECK(got.revoked_us == revoked);
	st_key_clear(&got);
	CHECK(st_key_revoke(st, "ffffffffffffffff") == ST_ERR_NOT_FOUND);
	CHECK(st_key_revoke(st, "x") == ST_ERR_INVALID);

	memset(log, 0, sizeof *log);
	CHECK(st_key_list(st, log_key, log) == ST_OK);
	CHECK(log->n == 2);
	CHECK(log->revoked[0] == 0);
	CHECK(log->revoked[1] == revoked);

out:
	free(log);
	st_close(st);
}

/* More keys than one list chunk, put in scrambled order. */
static void test_keys_list_chunks(void)
{
	enum { COUNT = 150 };
	char dir[4200];
	struct key_log *log = calloc(1, sizeof *log);
	bool ordered = true;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st || !log)
		goto out;
	for (int i = 0; i < COUNT; i++) {
		struct st_key k;
		char id[32];
		int scrambled = (i * 37) % COUNT;

		snprintf(id, sizeof id, "%016x", scrambled);
		make_key(&k, id, 0, ST_SCOPE_READ, "bulk", NULL);
		memcpy(k.hash, &scrambled, sizeof scrambled);
		CHECK(st_key_put(st, &k) == ST_OK);
	}
	CHECK(st_key_list(st, log_key, log) == ST_OK);
	CHECK(log->n == COUNT);
	for (size_t i = 1; i < log->n && i < COUNT; i++) {
		if (strcmp(log->ids[i - 1], log->ids[i]) >= 0)
			ordered = false;
	}
	CHECK(ordered);

out:
	free(log);
	st_close(st);
}

/* The key commands run as a separate process while the server runs. */
static void test_keys_other_process(void)
{
	char dir[4200];
	struct st_key got = { .domains = NULL };
	int64_t t[2] = { BASE_US, BASE_US + 1 };
	int wstatus = 0;
	pid_t pid;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK(append_times(st, t, 2, BASE_US) == ST_OK);

	pid = fork();
	if (pid == 0) {
		st_store *child = NULL;
		struct st_key k;
		int rc = st_open(dir, NULL, &child, NULL, 0);

		make_key(&k, "0123456789abcdef", 0x5a, ST_SCOPE_ADMIN, "admin", NULL);
		if (rc == ST_OK)
			rc = st_key_put(child, &k);
		if (rc == ST_OK && st_head_seq(child) != 2)
			rc = ST_ERR_INVALID;
		st_close(child);
		_exit(rc == ST_OK ? 0 : 1);
	}
	CHECK(pid > 0);
	CHECK(waitpid(pid, &wstatus, 0) == pid);
	CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);

	CHECK(st_key_find_by_id(st, "0123456789abcdef", &got) == ST_OK);
	CHECK(got.scopes == ST_SCOPE_ADMIN);
	st_key_clear(&got);
	CHECK(append_times(st, t, 2, BASE_US) == ST_OK);
	CHECK(st_head_seq(st) == 4);
	st_close(st);
}

/* ---- corrupt values and schema ---- */

static void test_corrupt_values(void)
{
	static const uint8_t garbage[] = { 0xc1, 'g', 'a', 'r', 'b', 'a', 'g', 'e' };
	/* A map whose member claims 2^32 - 1 array elements. */
	static const uint8_t huge[] = { 0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff };
	/* A well-formed map that is not a signal. */
	static const uint8_t not_signal[] = { 0x81, 0xa1, 'a', 0x01 };
	char dir[4200];
	int64_t t[4] = { BASE_US + 4, BASE_US + 3, BASE_US + 2, BASE_US + 1 };
	struct sg_signal out[8];
	struct st_key k;
	struct st_key got = { .domains = NULL };
	size_t visited = 0;
	size_t deleted = 0;
	size_t n = 0;
	uint8_t key[8];
	uint64_t seq = 0;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK(append_times(st, t, 4, BASE_US) == ST_OK);
	make_key(&k, "00000000000000e5", 0xe5, ST_SCOPE_READ, "", NULL);
	CHECK(st_key_put(st, &k) == ST_OK);
	st_close(st);

	seq_key(key, 2);
	CHECK(raw_put(dir, "signals", key, 8, garbage, sizeof garbage) == 0);
	seq_key(key, 3);
	CHECK(raw_put(dir, "signals", key, 8, huge, sizeof huge) == 0);
	seq_key(key, 4);
	CHECK(raw_put(dir, "signals", key, 8, not_signal, sizeof not_signal) == 0);
	CHECK(raw_put(dir, "keys", k.id, ST_KEY_ID_LEN, huge, sizeof huge) == 0);

	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK(st_get(st, 1, &out[0]) == ST_OK);
	CHECK(st_get(st, 2, &out[0]) == ST_ERR_CORRUPT);
	CHECK(st_get(st, 3, &out[0]) == ST_ERR_CORRUPT);
	CHECK(st_get(st, 4, &out[0]) == ST_ERR_CORRUPT);
	CHECK(st_read_after(st, 0, out, 8, &n) == ST_ERR_CORRUPT);
	CHECK(n == 1);
	CHECK(st_scan_time_desc(st, NULL, INT64_MIN, count_visit, &visited) == ST_ERR_CORRUPT);
	CHECK(st_key_find_by_id(st, k.id, &got) == ST_ERR_CORRUPT);
	CHECK(got.domains == NULL);
	CHECK(st_key_find_by_hash(st, k.hash, &got) == ST_ERR_CORRUPT);
	CHECK(st_key_list(st, log_key, &(struct key_log){ .n = 0 }) == ST_ERR_CORRUPT);

	/* Retention removes corrupt signals with their index entries. */
	CHECK(st_delete_received_before(st, INT64_MAX, 10, &deleted) == ST_OK);
	CHECK(deleted == 4);
	visited = 0;
	CHECK(st_scan_time_desc(st, NULL, INT64_MIN, count_visit, &visited) == ST_OK);
	CHECK(visited == 0);
	CHECK(st_first_seq_observed_since(st, INT64_MIN, &seq) == ST_OK);
	CHECK(seq == 5);
	st_close(st);
}

static void test_schema_and_meta(void)
{
	static const uint8_t schema2[4] = { 0, 0, 0, 2 };
	char dir[4200];
	char err[1024] = "";
	char version[64];
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	st_close(st);
	CHECK(raw_put(dir, "meta", "schema", 6, schema2, sizeof schema2) == 0);

	st = (st_store *)1;
	CHECK(st_open(dir, NULL, &st, err, sizeof err) == ST_ERR_SCHEMA);
	CHECK(st == NULL);
	CHECK(strstr(err, dir) != NULL);
	snprintf(version, sizeof version, "schema version 2");
	CHECK(strstr(err, version) != NULL);
	CHECK(strstr(err, "newer canaryd") != NULL);

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	st_close(st);
	CHECK(raw_put(dir, "meta", "epoch", 5, "not hex", 7) == 0);
	CHECK(st_open(dir, NULL, &st, err, sizeof err) == ST_ERR_CORRUPT);
	CHECK(st == NULL);
	CHECK(strstr(err, "\"epoch\"") != NULL);
}

static void test_open_errors(void)
{
	char file[4200];
	char sub[4300];
	char err[1024] = "";
	st_store *st = NULL;
	FILE *f = NULL;

	new_dir(file, sizeof file);
	f = fopen(file, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);

	/* The directory is a regular file. */
	CHECK(st_open(file, NULL, &st, err, sizeof err) == ST_ERR_IO);
	CHECK(st == NULL);
	CHECK(strstr(err, file) != NULL);
	CHECK(strstr(err, "writable") != NULL);

	/* Its parent is a regular file. */
	snprintf(sub, sizeof sub, "%s/store", file);
	CHECK(st_open(sub, NULL, &st, err, sizeof err) == ST_ERR_IO);
	CHECK(strstr(err, sub) != NULL);

	CHECK(st_open(NULL, NULL, &st, err, sizeof err) == ST_ERR_INVALID);
	CHECK(st_open("", NULL, &st, NULL, 0) == ST_ERR_INVALID);

	for (int code = ST_ERR_EXISTS; code <= ST_OK; code++)
		CHECK(strlen(st_strerror(code)) > 0);
	CHECK(strcmp(st_strerror(ST_ERR_MAP_FULL), st_strerror(ST_ERR_IO)) != 0);
}

static void test_exists(void)
{
	char dir[4200];
	char data[4300];
	char under_file[4400];
	char err[1024] = "";
	struct stat sb;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	snprintf(data, sizeof data, "%s/data.mdb", dir);

	/* A missing directory is reported and not created. */
	CHECK(st_exists(dir, err, sizeof err) == ST_ERR_NOT_FOUND);
	CHECK(stat(dir, &sb) != 0);
	CHECK(errno == ENOENT);

	/* An empty directory is no store, and stays empty. */
	CHECK(mkdir(dir, 0700) == 0);
	CHECK(st_exists(dir, err, sizeof err) == ST_ERR_NOT_FOUND);
	CHECK(stat(data, &sb) != 0);
	CHECK(errno == ENOENT);

	st = open_store(dir, NULL);
	st_close(st);
	CHECK(st_exists(dir, err, sizeof err) == ST_OK);
	CHECK(st_exists(dir, NULL, 0) == ST_OK);

	/* A path under a regular file is no store. */
	snprintf(under_file, sizeof under_file, "%s/store", data);
	CHECK(st_exists(under_file, err, sizeof err) == ST_ERR_NOT_FOUND);
	CHECK(st_exists("", err, sizeof err) == ST_ERR_NOT_FOUND);
	CHECK(st_exists(NULL, err, sizeof err) == ST_ERR_NOT_FOUND);
}

/* ---- the per-domain time index ---- */

/* Records the visited signals that match patterns, and counts the
 * others. */
struct match_log {
	const char *const *patterns;
	size_t npatterns;
	struct st_time_pos pos[4096];
	size_t n;
	size_t others;
	size_t stop_after;      /* matches; 0: never stop */
};

static int match_visit(const struct sg_signal *s, void *ctx)
{
	struct match_log *log = ctx;
	bool match = false;

	for (size_t i = 0; i < log->npatterns && !match; i++)
		match = domain_pattern_match(log->patterns[i], s->domain);
	if (!match) {
		log->others++;
		return 0;
	}
	if (log->n < sizeof log->pos / sizeof log->pos[0])
		log->pos[log->n] = (struct st_time_pos){ s->observed_us, s->seq };
	log->n++;
	return log->stop_after && log->n >= log->stop_after ? 1 : 0;
}

static bool same_positions(const struct match_log *a, const struct match_log *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n && i < sizeof a->pos / sizeof a->pos[0]; i++)
		if (a->pos[i].observed_us != b->pos[i].observed_us || a->pos[i].seq != b->pos[i].seq)
			return false;
	return true;
}

/*
 * Scans both ways, through by_time (filtered here) and through
 * by_domain, and checks that they list the same signals in the same
 * order. Returns whether the by_domain scan used its index.
 */
static bool check_domain_scan(st_store *st, const char *const *patterns, size_t n,
			      const struct st_time_pos *start, int64_t min_us,
			      size_t stop_after)
{
	struct match_log *want = calloc(1, sizeof *want);
	struct match_log *got = calloc(1, sizeof *got);
	bool indexed = false;

	if (!want || !got) {
		CHECK(!"out of memory");
		goto out;
	}
	want->patterns = got->patterns = patterns;
	want->npatterns = got->npatterns = n;
	want->stop_after = got->stop_after = stop_after;
	CHECK(st_scan_time_desc(st, start, min_us, match_visit, want) == ST_OK);
	CHECK(st_scan_domains_desc(st, patterns, n, start, min_us, match_visit, got,
				   &indexed) == ST_OK);
	CHECK(same_positions(want, got));
	if (!same_positions(want, got))
		fprintf(stderr, "domain scan of %s (%zu patterns): %zu signals, by_time %zu\n",
			patterns[0], n, got->n, want->n);
	if (indexed)
		CHECK(got->others == 0);

out:
	free(want);
	free(got);
	return indexed;
}

/* Pages through by_domain as the REST list does, limit signals a page,
 * and checks that the pages add up to one scan through by_time. */
static void check_domain_paging(st_store *st, const char *const *patterns, size_t n,
				int64_t min_us, size_t limit)
{
	struct match_log *want = calloc(1, sizeof *want);
	struct match_log *page = calloc(1, sizeof *page);
	struct st_time_pos cursor;
	bool have_cursor = false;
	bool same = true;
	size_t listed = 0;

	if (!want || !page) {
		CHECK(!"out of memory");
		goto out;
	}
	want->patterns = page->patterns = patterns;
	want->npatterns = page->npatterns = n;
	CHECK(st_scan_time_desc(st, NULL, min_us, match_visit, want) == ST_OK);
	for (int pages = 0; pages < 1000; pages++) {
		page->n = 0;
		page->stop_after = limit;
		CHECK(st_scan_domains_desc(st, patterns, n, have_cursor ? &cursor : NULL,
					   min_us, match_visit, page, NULL) == ST_OK);
		for (size_t i = 0; i < page->n && listed + i < want->n; i++)
			same = same && page->pos[i].seq == want->pos[listed + i].seq;
		listed += page->n;
		if (page->n < limit)
			break;
		cursor = page->pos[page->n - 1];
		have_cursor = true;
	}
	CHECK(same);
	CHECK(listed == want->n);

out:
	free(want);
	free(page);
}

static const char *const index_domains[] = {
	"bank.example", "login.bank.example", "a.login.bank.example", "xbank.example",
	"shop.example", "b.shop.example", "mail.example", "bank.example.org",
};
#define INDEX_DOMAINS (sizeof index_domains / sizeof index_domains[0])

/* Appends count signals with random domains (a few from index_domains,
 * and 70 names under many.example), random observed times from
 * base_us on with many ties, and received times from received_us on. */
static void append_domains(st_store *st, size_t count, int64_t base_us,
			   int64_t received_us, uint64_t *rnd)
{
	struct sg_signal *sigs = calloc(250, sizeof *sigs);

	for (size_t done = 0; sigs && done < count; done += 250) {
		size_t n = count - done < 250 ? count - done : 250;

		for (size_t i = 0; i < n; i++) {
			uint64_t r;

			*rnd ^= *rnd << 13;
			*rnd ^= *rnd >> 7;
			*rnd ^= *rnd << 17;
			r = *rnd;
			make_signal(&sigs[i], base_us + (int64_t)(r % 900) * SEC,
				    received_us + (int64_t)(done + i));
			if ((r >> 20) % 4 == 0)
				snprintf(sigs[i].domain, sizeof sigs[i].domain, "h%d.many.example",
					 (int)((r >> 24) % 70));
			else
				strcpy(sigs[i].domain, index_domains[(r >> 24) % INDEX_DOMAINS]);
		}
		CHECK(st_append(st, sigs, n) == ST_OK);
	}
	free(sigs);
}

static void test_domain_index(void)
{
	static const struct {
		const char *patterns[4];
		size_t n;
		bool indexed;
	} cases[] = {
		{ { "bank.example" }, 1, true },
		{ { "*.bank.example" }, 1, true },
		{ { "*.bank.example", "login.bank.example", "bank.example" }, 3, true },
		{ { "shop.example", "mail.example", "absent.example" }, 3, true },
		{ { "*.example.org", "h3.many.example" }, 2, true },
		{ { "absent.example" }, 1, true },
		{ { "*.many.example" }, 1, false },
		{ { "*.example", "bank.example" }, 2, false },
	};
	char dir[4200];
	uint64_t rnd = 2463534242u;
	st_store *st = NULL;
	size_t deleted = 0;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st)
		return;
	append_domains(st, 3000, BASE_US, BASE_US, &rnd);

	for (int round = 0; round < 2; round++) {
		for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
			const char *const *p = cases[c].patterns;
			size_t n = cases[c].n;
			struct st_time_pos mid = { BASE_US + 450 * SEC, 1500 };
			struct st_time_pos past = { BASE_US + 2000 * SEC, 0 };

			CHECK(check_domain_scan(st, p, n, NULL, INT64_MIN, 0) == cases[c].indexed);
			CHECK(check_domain_scan(st, p, n, &mid, INT64_MIN, 0) == cases[c].indexed);
			CHECK(check_domain_scan(st, p, n, &past, BASE_US + 300 * SEC, 0) ==
			      cases[c].indexed);
			CHECK(check_domain_scan(st, p, n, &mid, BASE_US + 449 * SEC, 0) ==
			      cases[c].indexed);
			CHECK(check_domain_scan(st, p, n, NULL, BASE_US + 5000 * SEC, 0) ==
			      cases[c].indexed);
			check_domain_scan(st, p, n, NULL, INT64_MIN, 1);
			check_domain_scan(st, p, n, &mid, INT64_MIN, 70);
			check_domain_paging(st, p, n, INT64_MIN, 37);
			check_domain_paging(st, p, n, BASE_US + 200 * SEC, 50);
		}

		/* Retention deletes by_domain entries with their signals. */
		if (round == 0) {
			CHECK(st_delete_received_before(st, BASE_US + 1700, 5000, &deleted) == ST_OK);
			CHECK(deleted == 1700);
		}
	}

	{
		const char *bad[] = { "bank.example" };
		bool indexed = true;

		CHECK(st_scan_domains_desc(st, bad, 0, NULL, INT64_MIN, match_visit, NULL,
					   &indexed) == ST_ERR_INVALID);
		CHECK(!indexed);
		CHECK(st_scan_domains_desc(st, bad, 1, NULL, INT64_MIN, NULL, NULL, NULL) ==
		      ST_ERR_INVALID);
	}
	st_close(st);
}

/*
 * A store that an older canaryd wrote last: signals without by_domain
 * entries. Made here by setting meta indexed_next_seq to a stale value
 * while the store is closed, as an older canaryd's appends would leave it.
 */
static void test_domain_index_legacy(void)
{
	static const char *const patterns[] = { "*.bank.example", "shop.example" };
	uint8_t stale[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
	char dir[4200];
	uint64_t rnd = 88172645463325252u;
	int64_t newest = INT64_MIN;
	int64_t unindexed = 0;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK(st_unindexed_max(st, &unindexed) == ST_OK);
	CHECK(unindexed == INT64_MIN);
	append_domains(st, 600, BASE_US, BASE_US, &rnd);
	st_close(st);

	CHECK(raw_put(dir, "meta", "indexed_next_seq", 16, stale, sizeof stale) == 0);
	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK(st_unindexed_max(st, &unindexed) == ST_OK);
	CHECK(unindexed > BASE_US);
	CHECK(unindexed < BASE_US + 900 * SEC);
	newest = unindexed;

	/* Windows that reach the older signals read by_time, with the same
	 * result; by_domain was emptied, so an indexed scan would miss them. */
	CHECK(!check_domain_scan(st, patterns, 2, NULL, INT64_MIN, 0));
	CHECK(!check_domain_scan(st, patterns, 2, NULL, newest, 0));

	/* Signals stored from now on are indexed: windows after the older
	 * signals use by_domain again, also across a reopen. */
	append_domains(st, 600, BASE_US + 1000 * SEC, BASE_US + 1000, &rnd);
	CHECK(check_domain_scan(st, patterns, 2, NULL, newest + 1, 0));
	CHECK(!check_domain_scan(st, patterns, 2, NULL, newest - SEC, 0));
	st_close(st);
	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK(st_unindexed_max(st, &unindexed) == ST_OK);
	CHECK(unindexed == newest);
	CHECK(check_domain_scan(st, patterns, 2, NULL, newest + 1, 0));
	check_domain_paging(st, patterns, 2, newest + 1, 20);
	check_domain_paging(st, patterns, 2, INT64_MIN, 20);
	st_close(st);
}

/* ---- setup ---- */

static int remove_entry(const char *path, const struct stat *sb, int flag,
			struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void test_batch_keys(void)
{
	char dir[4200];
	struct sg_signal sigs[3];
	uint64_t first = 0, last = 0;
	bool replayed = true;
	size_t deleted = 0;
	st_store *st = NULL;

	new_dir(dir, sizeof dir);
	st = open_store(dir, NULL);
	if (!st)
		return;
	for (int i = 0; i < 3; i++)
		make_signal(&sigs[i], BASE_US + i, BASE_US + i);

	CHECK(st_append_keyed(st, sigs, 3, "k-1", &first, &last, &replayed) == ST_OK);
	CHECK(!replayed);
	CHECK(first == 1);
	CHECK(last == 3);

	/* The same batch again: nothing stored, the first answer returned. */
	CHECK(st_append_keyed(st, sigs, 3, "k-1", &first, &last, &replayed) == ST_OK);
	CHECK(replayed);
	CHECK(first == 1);
	CHECK(last == 3);
	CHECK(st_head_seq(st) == 3);
	CHECK(sigs[0].seq == 0);

	CHECK(st_append_keyed(st, sigs, 2, "k-1", &first, &last, &replayed) == ST_ERR_EXISTS);
	CHECK(st_head_seq(st) == 3);
	CHECK(st_append_keyed(st, sigs, 3, "bad key", &first, &last, &replayed) == ST_ERR_INVALID);
	CHECK(st_append_keyed(st, sigs, 3, "", &first, &last, &replayed) == ST_ERR_INVALID);

	/* Keys survive a reopen. */
	st_close(st);
	st = open_store(dir, NULL);
	if (!st)
		return;
	CHECK(st_append_keyed(st, sigs, 3, "k-1", &first, &last, &replayed) == ST_OK);
	CHECK(replayed);

	/* Retention takes the key with its signals; the key is then new. */
	CHECK(st_delete_received_before(st, BASE_US + 100, 100, &deleted) == ST_OK);
	CHECK(deleted == 3);
	CHECK(st_append_keyed(st, sigs, 3, "k-1", &first, &last, &replayed) == ST_OK);
	CHECK(!replayed);
	CHECK(first == 4);
	st_close(st);
}

int main(void)
{
	const char *tmp = getenv("CANARY_TEST_TMP");

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "cannot create %s: %s\n", tmp, strerror(errno));
		return 1;
	}
	snprintf(base_dir, sizeof base_dir, "%s/test_storage.XXXXXX", tmp);
	if (!mkdtemp(base_dir)) {
		fprintf(stderr, "cannot create a directory in %s: %s\n", tmp,
			strerror(errno));
		return 1;
	}

	test_seq_consecutive();
	test_read_after();
	test_scan_small();
	test_scan_chunks();
	test_domain_index();
	test_domain_index_legacy();
	test_first_seq_observed();
	test_first_seq_chunks();
	test_fault_commit();
	test_batch_keys();
	test_map_full(20, false);
	test_map_full(1, false);
	test_map_full(1, true);
	test_map_full_scattered();
	test_growth_with_readers();
	test_keys();
	test_keys_list_chunks();
	test_keys_other_process();
	test_corrupt_values();
	test_schema_and_meta();
	test_open_errors();
	test_exists();

	if (check_failed == 0)
		nftw(base_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_summary();
}
