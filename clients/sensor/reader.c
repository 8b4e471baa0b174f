/*
 * Bounded line reading with tail -F behaviour. See reader.h.
 */
#include "reader.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LR_CHUNK (64 * 1024)
#define LR_BUF_SIZE (LR_MAX_LINE + LR_CHUNK + 1)
#define LR_POLL_MS 500

struct lr_reader {
	char *path;             /* NULL for standard input */
	int fd;
	bool follow;            /* wait at the end of a regular file */
	bool regular;
	bool discarding;        /* skipping the rest of a too long line */
	uint64_t line_number;
	off_t offset;           /* bytes read from fd so far */
	struct lr_position done;        /* after the last complete line */
	char notice[320];
	size_t start;           /* unread data is buf[start..end) */
	size_t end;
	char buf[LR_BUF_SIZE];
};

/*
 * Moves a new reader to resume when it still describes the file that
 * r->fd has open (st). A changed inode or a file shorter than the saved
 * offset means the file was rotated or truncated since, so it is read
 * from 0 with a notice in r->notice.
 *
 * NOTE: after a rotation, lines that the old file got after resume was
 * saved are not read, because the reader does not look for the old file
 * under its new name.
 */
static int lr_resume(struct lr_reader *r, const struct stat *st,
		     const struct lr_position *resume, char *err, size_t errlen)
{
	if (resume->device != r->done.device || resume->inode != r->done.inode) {
		snprintf(r->notice, sizeof(r->notice), "%s has another device or "
			 "inode number than in the state file (rotated); reading it "
			 "from the start", r->path);
		return 0;
	}
	if ((uint64_t)st->st_size < resume->offset) {
		snprintf(r->notice, sizeof(r->notice), "%s is shorter (%lld bytes) "
			 "than the saved offset %llu (truncated); reading it from "
			 "the start", r->path, (long long)st->st_size,
			 (unsigned long long)resume->offset);
		return 0;
	}
	if (lseek(r->fd, (off_t)resume->offset, SEEK_SET) < 0) {
		snprintf(err, errlen, "cannot seek %s to offset %llu: %s", r->path,
			 (unsigned long long)resume->offset, strerror(errno));
		return -1;
	}
	r->offset = (off_t)resume->offset;
	r->line_number = resume->line;
	r->done.offset = resume->offset;
	r->done.line = resume->line;
	return 0;
}

struct lr_reader *lr_open(const char *path, bool follow,
			  const struct lr_position *resume, char *err,
			  size_t errlen)
{
	struct lr_reader *r = NULL;
	struct stat st;

	r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	r->fd = -1;

	if (!strcmp(path, "-")) {
		r->fd = STDIN_FILENO;
	} else {
		r->path = strdup(path);
		r->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (!r->path || r->fd < 0) {
			snprintf(err, errlen, "cannot open %s: %s", path,
				 r->path ? strerror(errno) : "out of memory");
			goto fail;
		}
	}

	if (fstat(r->fd, &st) != 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is a directory: pass log files", path);
		goto fail;
	}
	r->regular = S_ISREG(st.st_mode);
	r->follow = follow && r->regular;
	r->done.device = (uint64_t)st.st_dev;
	r->done.inode = (uint64_t)st.st_ino;
	if (resume && r->regular && r->path &&
	    lr_resume(r, &st, resume, err, errlen) != 0)
		goto fail;
	return r;

fail:
	lr_close(r);
	return NULL;
}

void lr_close(struct lr_reader *r)
{
	if (!r)
		return;
	if (r->fd > STDIN_FILENO)
		close(r->fd);
	free(r->path);
	free(r);
}

uint64_t lr_line_number(const struct lr_reader *r)
{
	return r->line_number;
}

bool lr_position(const struct lr_reader *r, struct lr_position *pos)
{
	if (!r->regular || !r->path)
		return false;
	*pos = r->done;
	return true;
}

const char *lr_notice(const struct lr_reader *r)
{
	return r->notice;
}

static void lr_restart(struct lr_reader *r)
{
	r->start = r->end = 0;
	r->offset = 0;
	r->line_number = 0;
	r->discarding = false;
	r->done.offset = 0;
	r->done.line = 0;
}

/* Records that the line just consumed from buf ended at r->start. */
static void lr_line_done(struct lr_reader *r)
{
	r->done.offset = (uint64_t)r->offset - (r->end - r->start);
	r->done.line = r->line_number;
}

/*
 * At the end of a followed file: starts over when the file shrank
 * (truncated in place) or when its name now points to another file
 * (rotated). Returns true when there may be new data to read.
 */
static bool lr_check_rotation(struct lr_reader *r)
{
	struct stat cur, named;
	int fd;

	if (fstat(r->fd, &cur) != 0)
		return false;
	if (cur.st_size < r->offset) {
		if (lseek(r->fd, 0, SEEK_SET) == 0) {
			snprintf(r->notice, sizeof(r->notice),
				 "%s was truncated; reading it again from the start", r->path);
			lr_restart(r);
			return true;
		}
	}

	if (!r->path || stat(r->path, &named) != 0)
		return false;
	if (named.st_ino == cur.st_ino && named.st_dev == cur.st_dev)
		return false;

	fd = open(r->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (fstat(fd, &named) != 0) {
		close(fd);
		return false;
	}
	close(r->fd);
	r->fd = fd;
	r->done.device = (uint64_t)named.st_dev;
	r->done.inode = (uint64_t)named.st_ino;
	snprintf(r->notice, sizeof(r->notice), "%s was rotated; reading the new "
		 "file from the start%s", r->path,
		 r->end > r->start ? " (the old file's incomplete last line was skipped)"
				   : "");
	lr_restart(r);
	return true;
}

/* Reads more input. Returns LR_LINE when data arrived, else a final status. */
static enum lr_status lr_fill(struct lr_reader *r)
{
	ssize_t got;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}

	/* Pipes and terminals are polled so that the caller can flush. */
	if (!r->regular) {
		struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
		int ready = poll(&pfd, 1, LR_POLL_MS);

		if (ready == 0 || (ready < 0 && errno == EINTR))
			return LR_WAIT;
	}

	got = read(r->fd, r->buf + r->end, LR_BUF_SIZE - 1 - r->end);
	if (got > 0) {
		r->end += (size_t)got;
		r->offset += got;
		return LR_LINE;
	}
	if (got < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return LR_WAIT;
		snprintf(r->notice, sizeof(r->notice), "cannot read %s: %s",
			 r->path ? r->path : "standard input", strerror(errno));
		return LR_ERROR;
	}

	if (r->follow)
		return lr_check_rotation(r) ? LR_LINE : LR_WAIT;
	return LR_EOF;
}

enum lr_status lr_next(struct lr_reader *r, const char **line, size_t *len)
{
	r->notice[0] = '\0';

	for (;;) {
		char *begin = r->buf + r->start;
		char *nl = memchr(begin, '\n', r->end - r->start);
		enum lr_status st;

		if (nl) {
			size_t n = (size_t)(nl - begin);

			r->start += n + 1;
			if (r->discarding) {
				/* The skipped line was counted when it was reported. */
				r->discarding = false;
				lr_line_done(r);
				continue;
			}
			r->line_number++;
			lr_line_done(r);
			if (n > LR_MAX_LINE)
				return LR_TOO_LONG;
			*nl = '\0';
			*line = begin;
			*len = n;
			return LR_LINE;
		}

		/* No newline within the limit: skip up to the next newline. */
		if (r->end - r->start > LR_MAX_LINE) {
			bool first = !r->discarding;

			r->start = r->end = 0;
			r->discarding = true;
			if (first) {
				r->line_number++;
				return LR_TOO_LONG;
			}
		}

		st = lr_fill(r);
		if (st == LR_LINE)
			continue;
		if (st != LR_EOF)
			return st;

		/* The last line of a file may lack its newline. */
		if (r->end > r->start && !r->discarding) {
			begin = r->buf + r->start;
			*len = r->end - r->start;
			begin[*len] = '\0';
			r->start = r->end;
			r->line_number++;
			lr_line_done(r);
			*line = begin;
			return LR_LINE;
		}
		return LR_EOF;
	}
}
