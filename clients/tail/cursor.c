#include "cursor.h"
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A cursor is under 200 bytes; anything much larger is not a cursor file. */
#define CURSOR_FILE_MAX 4096

const char *
tail_cursor_result_text(enum tail_cursor_result result)
{
	switch (result) {
	case TAIL_CURSOR_OK:
		return "ok";
	case TAIL_CURSOR_ABSENT:
		return "cursor file absent";
	case TAIL_CURSOR_INVALID:
		return "cursor file invalid";
	case TAIL_CURSOR_IO_FAILED:
		return "cursor file write failed";
	}
	return "unknown cursor result";
}

int
tail_cursor_epoch_valid(const char *epoch)
{
	size_t len = strlen(epoch);
	size_t i;

	if (len == 0 || len > TAIL_EPOCH_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (epoch[i] < 0x20 || epoch[i] > 0x7e)
			return 0;
	return 1;
}

/* Read at most CURSOR_FILE_MAX bytes of fd into buf; returns the length or -1. */
static ssize_t
read_small_file(int fd, char *buf)
{
	size_t used = 0;

	for (;;) {
		ssize_t got = read(fd, buf + used, CURSOR_FILE_MAX + 1 - used);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -1;
		if (got == 0)
			return (ssize_t)used;
		used += (size_t)got;
		if (used > CURSOR_FILE_MAX) {
			errno = EFBIG;
			return -1;
		}
	}
}

static const char *
check_cursor_json(const json_t *root, struct tail_cursor *cursor)
{
	const json_t *epoch = json_object_get(root, "epoch");
	const json_t *seq = json_object_get(root, "seq");

	if (!json_is_object(root))
		return "it is not a JSON object";
	if (!json_is_string(epoch) || !tail_cursor_epoch_valid(json_string_value(epoch)))
		return "\"epoch\" is missing or not a string of 1 to 128 printable characters";
	if (!json_is_integer(seq) || json_integer_value(seq) < 0)
		return "\"seq\" is missing or not a non-negative integer";

	strcpy(cursor->epoch, json_string_value(epoch));
	cursor->seq = json_integer_value(seq);
	return NULL;
}

enum tail_cursor_result
tail_cursor_load(const char *path, struct tail_cursor *cursor, char *err,
		 size_t errlen)
{
	enum tail_cursor_result result = TAIL_CURSOR_INVALID;
	char *buf = NULL;
	json_t *root = NULL;
	json_error_t jerr;
	const char *fault = NULL;
	ssize_t len;
	int fd = -1;

	memset(cursor, 0, sizeof(*cursor));

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		result = TAIL_CURSOR_ABSENT;
		goto out;
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot read cursor file '%s': %s; fix its permissions or choose another --cursor-file",
			 path, strerror(errno));
		goto out;
	}

	buf = malloc(CURSOR_FILE_MAX + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory reading cursor file '%s'", path);
		goto out;
	}
	len = read_small_file(fd, buf);
	if (len < 0) {
		snprintf(err, errlen, "cannot read cursor file '%s': %s; it must be a small JSON file written by canary-tail",
			 path, strerror(errno));
		goto out;
	}

	root = json_loadb(buf, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		fault = "it is not valid JSON";
	else
		fault = check_cursor_json(root, cursor);
	if (fault) {
		memset(cursor, 0, sizeof(*cursor));
		snprintf(err, errlen, "cursor file '%s' is corrupt (%s): restore it, or delete it to start from --since-seq/--since-time (signals may then be skipped or printed twice)",
			 path, fault);
		goto out;
	}

	result = TAIL_CURSOR_OK;

out:
	json_decref(root);
	free(buf);
	if (fd >= 0)
		close(fd);
	return result;
}

enum tail_cursor_result
tail_cursor_save(const char *path, const struct tail_cursor *cursor,
		 char *err, size_t errlen)
{
	enum tail_cursor_result result = TAIL_CURSOR_IO_FAILED;
	json_t *root = json_pack("{s:s, s:I}", "epoch", cursor->epoch, "seq", cursor->seq);
	char *text = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	char *line = text ? malloc(strlen(text) + 2) : NULL;
	char why[PATH_MAX + 256];

	if (!line) {
		snprintf(err, errlen, "out of memory writing cursor file '%s'", path);
		goto out;
	}
	sprintf(line, "%s\n", text);
	if (atomic_file_write(path, line, strlen(line), why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s (the file given with --cursor-file)", why);
		goto out;
	}
	result = TAIL_CURSOR_OK;

out:
	free(line);
	free(text);
	json_decref(root);
	return result;
}
