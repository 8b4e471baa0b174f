/*
 * The resume cursor: the store's epoch and the seq of the last signal that
 * canary-tail printed and flushed. The cursor file holds one JSON object,
 * {"epoch":"...","seq":N}, and is replaced atomically (temporary file,
 * fsync, rename), so a crash leaves either the old or the new cursor.
 */
#ifndef CANARY_TAIL_CURSOR_H
#define CANARY_TAIL_CURSOR_H

#include <stddef.h>

#include <jansson.h>

/* Longest epoch accepted from the server or a cursor file, in bytes. */
#define TAIL_EPOCH_MAX 128

struct tail_cursor {
	char epoch[TAIL_EPOCH_MAX + 1];	/* "" when not known */
	json_int_t seq;			/* last printed seq, 0 for none */
};

enum tail_cursor_result {
	TAIL_CURSOR_OK,
	TAIL_CURSOR_ABSENT,	/* the file does not exist yet */
	TAIL_CURSOR_INVALID,	/* the file exists but is unreadable or corrupt */
	TAIL_CURSOR_IO_FAILED,	/* writing the file failed */
};

/* Return a short description of a result code. */
const char *tail_cursor_result_text(enum tail_cursor_result result);

/*
 * Check that an epoch is 1 to TAIL_EPOCH_MAX printable ASCII characters,
 * so that it can be written to a status line and a file as it is.
 */
int tail_cursor_epoch_valid(const char *epoch);

/*
 * Read the cursor file at path into cursor. Returns TAIL_CURSOR_OK,
 * TAIL_CURSOR_ABSENT (cursor left zeroed), or TAIL_CURSOR_INVALID with one
 * line in err naming the file, the fault and the fix.
 */
enum tail_cursor_result tail_cursor_load(const char *path,
					 struct tail_cursor *cursor,
					 char *err, size_t errlen);

/*
 * Replace the cursor file at path with cursor, atomically and durably.
 * Returns TAIL_CURSOR_OK or TAIL_CURSOR_IO_FAILED with the reason in err;
 * on failure the previous file is left as it was.
 */
enum tail_cursor_result tail_cursor_save(const char *path,
					 const struct tail_cursor *cursor,
					 char *err, size_t errlen);

#endif
