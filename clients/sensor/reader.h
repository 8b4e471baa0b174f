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

/*
 * Opens path ("-" for standard input). Returns NULL with the reason in
 * err (errlen bytes).
 */
struct lr_reader *lr_open(const char *path, bool follow, char *err,
			  size_t errlen);

void lr_close(struct lr_reader *r);

/*
 * Returns the next event. A line stays valid until the next call and is
 * NUL-terminated at line[len]. On a pipe or terminal, LR_WAIT comes after
 * about half a second without data, so that the caller can flush.
 */
enum lr_status lr_next(struct lr_reader *r, const char **line, size_t *len);

/* Returns the number of the line last returned, from 1 in each file. */
uint64_t lr_line_number(const struct lr_reader *r);

/* Returns a message for the last LR_ERROR or the last rotation notice,
 * or "" when there is none; lr_next() clears it. */
const char *lr_notice(const struct lr_reader *r);

#endif
