/*
 * Line reader for canary-sensor's inputs: a file, or standard input for
 * "-", read in bounded pieces. With follow set, a regular file is read as
 * it grows, like `tail -F`. When the file is truncated, it is read again
 * from the start. When it is replaced (log rotation), the reader finishes
 * the old file and then opens the new one under the same name.
 */
#ifndef CANARY_SENSOR_READER_H
#define CANARY_SENSOR_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Maximum line length; longer lines are reported and skipped. */
#define LR_MAX_LINE (64 * 1024)

enum lr_status {
	LR_LINE,        /* *line is the next line, without its newline */
	LR_TOO_LONG,    /* a line over LR_MAX_LINE bytes was skipped */
	LR_WAIT,        /* no complete line yet: try again later */
	LR_EOF,         /* end of input (never with follow on a regular file) */
	LR_ERROR        /* read failed; lr_notice() gives the reason */
};

struct lr_reader;

/* Position in a regular file after the last complete line handed out. */
struct lr_position {
	uint64_t device;        /* st_dev and st_ino of the file */
	uint64_t inode;
	uint64_t offset;        /* bytes up to and including that line's newline */
	uint64_t line;          /* that line's number, from 1; 0 before any line */
};

/*
 * Opens path ("-" for standard input). With resume, reading starts at
 * resume's offset and line when the file at path has resume's device and
 * inode and is at least offset bytes long. Otherwise it starts at 0, and
 * lr_notice() returns a message that the file was rotated or truncated.
 * Returns NULL
 * with the reason in err (errlen bytes).
 */
struct lr_reader *lr_open(const char *path, bool follow,
			  const struct lr_position *resume, char *err,
			  size_t errlen);

void lr_close(struct lr_reader *r);

/*
 * Returns the next event. A line stays valid until the next call and is
 * NUL-terminated at line[len]. On a pipe or terminal, LR_WAIT comes after
 * about half a second without data, so that the caller can flush.
 */
enum lr_status lr_next(struct lr_reader *r, const char **line, size_t *len);

/* Returns the number of the line last returned, from 1 in each file, or
 * continuing the saved number after a resume. */
uint64_t lr_line_number(const struct lr_reader *r);

/*
 * Stores in pos the position after the last complete line: bytes that
 * were read but not yet returned as a line, and a skipped line that has
 * not ended yet, are not counted. Returns false for standard input and
 * other inputs that are not regular files.
 */
bool lr_position(const struct lr_reader *r, struct lr_position *pos);

/* Returns a message for the last LR_ERROR or the last rotation notice,
 * or "" when there is none; lr_next() clears it. */
const char *lr_notice(const struct lr_reader *r);

#endif
