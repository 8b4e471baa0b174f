/*
 * canary-sensor's state file (--state-file): the position after the last
 * handled line of each input file, so that a new run continues after the
 * lines that an earlier run has handled. It is a JSON object:
 *
 *   {"version": 1,
 *    "files": [{"path": "/var/log/cowrie/cowrie.json", "device": 2049,
 *               "inode": 1835009, "offset": 104857, "line": 312}]}
 *
 * path is absolute, offset counts the bytes up to and including the
 * newline of line number line. Entries for files that a run does not read
 * are kept as they are.
 */
#ifndef CANARY_SENSOR_STATE_H
#define CANARY_SENSOR_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "reader.h"

#define SS_VERSION 1

struct ss_state;

/*
 * Loads the state file at path. A file that does not exist gives an empty
 * state (the first run). Returns NULL with the reason in err when the file
 * cannot be read or is not a valid state file.
 */
struct ss_state *ss_load(const char *path, char *err, size_t errlen);

/* Returns true when the state file did not exist when it was loaded. */
bool ss_is_new(const struct ss_state *state);

void ss_free(struct ss_state *state);

/* Returns the saved position of the input at abs_path, or NULL. */
const struct lr_position *ss_find(const struct ss_state *state,
				  const char *abs_path);

/* Stores pos as the position of abs_path. Returns 0, or -1 when out of memory. */
int ss_set(struct ss_state *state, const char *abs_path,
	   const struct lr_position *pos);

/*
 * Writes the state to its file atomically: a temporary file in the same
 * directory, fsync, rename over the file, fsync of the directory. Returns
 * 0, or -1 with the reason in err.
 */
int ss_save(const struct ss_state *state, char *err, size_t errlen);

/*
 * Checks that the state file's directory exists and is writable, so that
 * a mistake shows at start and not at the first save. Returns 0 or -1
 * with the reason in err.
 */
int ss_check_writable(const struct ss_state *state, char *err, size_t errlen);

/*
 * Stores in out the absolute form of path: path itself when it starts with
 * '/', else the working directory, '/' and path. Symbolic links are kept,
 * because a rotated log keeps its name. Returns 0, or -1 when it does not
 * fit in cap bytes or the working directory is unknown.
 */
int ss_absolute_path(const char *path, char *out, size_t cap);

#endif
