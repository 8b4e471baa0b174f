/*
 * Replacing a small file so that a crash leaves either the old or the new
 * contents, never a mix: canary-tail's cursor file and canary-sensor's
 * state file are written this way.
 */
#ifndef CANARY_ATOMIC_FILE_H
#define CANARY_ATOMIC_FILE_H

#include <stddef.h>

/*
 * Writes data (len bytes) to a temporary file next to path, syncs it,
 * renames it over path and syncs the directory, so that the rename
 * survives a power loss too. Returns 0, or -1 with err (errlen bytes)
 * naming the file and the failed step; the temporary file is then
 * removed.
 */
int atomic_file_write(const char *path, const char *data, size_t len,
		      char *err, size_t errlen);

#endif
