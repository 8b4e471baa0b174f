/*
 * canary-sensor's state file, read and written with jansson. See state.h.
 */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "atomic_file.h"

struct ss_entry {
	char *path;
	struct lr_position pos;
};

struct ss_state {
	char *file;             /* the state file's own path */
	bool is_new;            /* the file did not exist at ss_load() */
	struct ss_entry *entries;
	size_t n_entries;
	size_t cap_entries;
};

/* Appends an entry; path is copied. Returns 0, or -1 when out of memory. */
static int ss_append(struct ss_state *state, const char *path,
		     const struct lr_position *pos)
{
	char *copy = NULL;

	if (state->n_entries == state->cap_entries) {
		size_t cap = state->cap_entries ? state->cap_entries * 2 : 8;
		struct ss_entry *grown = realloc(state->entries, cap * sizeof(*grown));

		if (!grown)
			return -1;
		state->entries = grown;
		state->cap_entries = cap;
	}
	copy = strdup(path);
	if (!copy)
		return -1;
	state->entries[state->n_entries].path = copy;
	state->entries[state->n_entries].pos = *pos;
	state->n_entries++;
	return 0;
}

/*
 * Reads the entries of a parsed state file. Device and inode numbers are
 * unsigned 64-bit values stored as JSON's signed 64-bit integers, so a
 * negative one is the same bit pattern read back (ss_save writes them so).
 */
static int ss_parse(struct ss_state *state, json_t *root, char *err,
		    size_t errlen)
{
	json_error_t jerr;
	json_int_t version = 0;
	json_t *files = NULL;
	json_t *item = NULL;
	size_t i = 0;

	if (json_unpack_ex(root, &jerr, 0, "{s:I, s:o}", "version", &version,
			   "files", &files) != 0) {
		snprintf(err, errlen, "%s", jerr.text);
		return -1;
	}
	if (version != SS_VERSION) {
		snprintf(err, errlen, "\"version\" is %lld, expected %d",
			 (long long)version, SS_VERSION);
		return -1;
	}
	if (!json_is_array(files)) {
		snprintf(err, errlen, "\"files\" is not an array");
		return -1;
	}

	json_array_foreach(files, i, item) {
		const char *path = NULL;
		json_int_t device = 0, inode = 0, offset = 0, line = 0;
		struct lr_position pos;

		if (json_unpack_ex(item, &jerr, 0, "{s:s, s:I, s:I, s:I, s:I}",
				   "path", &path, "device", &device, "inode", &inode,
				   "offset", &offset, "line", &line) != 0) {
			snprintf(err, errlen, "files[%zu]: %s", i, jerr.text);
			return -1;
		}
		if (path[0] != '/') {
			snprintf(err, errlen, "files[%zu]: \"path\" is not absolute", i);
			return -1;
		}
		if (offset < 0 || line < 0) {
			snprintf(err, errlen, "files[%zu]: \"offset\" and \"line\" "
				 "must not be negative", i);
			return -1;
		}
		pos = (struct lr_position){
			.device = (uint64_t)device, .inode = (uint64_t)inode,
			.offset = (uint64_t)offset, .line = (uint64_t)line,
		};
		if (ss_append(state, path, &pos) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

struct ss_state *ss_load(const char *path, char *err, size_t errlen)
{
	struct ss_state *state = calloc(1, sizeof(*state));
	json_error_t jerr;
	json_t *root = NULL;
	struct stat st;
	char why[256];
	int fd = -1;

	if (!state || !(state->file = strdup(path))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		state->is_new = true;
		return state;
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot read state file %s: %s; give the "
			 "sensor's user read and write access to it, or pass "
			 "another --state-file", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "state file %s is not a regular file; pass "
			 "the path of a file for --state-file", path);
		goto fail;
	}

	root = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(why, sizeof(why), "%s (line %d, column %d)", jerr.text,
			 jerr.line, jerr.column);
	} else if (ss_parse(state, root, why, sizeof(why)) == 0) {
		json_decref(root);
		close(fd);
		return state;
	}
	snprintf(err, errlen, "state file %s is invalid: %s; repair it, or "
		 "delete it to read every input from the start again, which "
		 "posts every signal again", path, why);

fail:
	json_decref(root);
	if (fd >= 0)
		close(fd);
	ss_free(state);
	return NULL;
}

bool ss_is_new(const struct ss_state *state)
{
	return state->is_new;
}

void ss_free(struct ss_state *state)
{
	if (!state)
		return;
	for (size_t i = 0; i < state->n_entries; i++)
		free(state->entries[i].path);
	free(state->entries);
	free(state->file);
	free(state);
}

const struct lr_position *ss_find(const struct ss_state *state,
				  const char *abs_path)
{
	for (size_t i = 0; i < state->n_entries; i++)
		if (!strcmp(state->entries[i].path, abs_path))
			return &state->entries[i].pos;
	return NULL;
}

int ss_set(struct ss_state *state, const char *abs_path,
	   const struct lr_position *pos)
{
	for (size_t i = 0; i < state->n_entries; i++) {
		if (!strcmp(state->entries[i].path, abs_path)) {
			state->entries[i].pos = *pos;
			return 0;
		}
	}
	return ss_append(state, abs_path, pos);
}

/* Returns the state as JSON text (malloc'd), or NULL when out of memory or
 * when a path is not valid UTF-8, which JSON strings must be. */
static char *ss_dump(const struct ss_state *state)
{
	json_t *root = json_object();
	json_t *files = json_array();
	char *text = NULL;

	if (!root || !files)
		goto out;
	for (size_t i = 0; i < state->n_entries; i++) {
		const struct ss_entry *e = &state->entries[i];
		json_t *item = json_pack("{s:s, s:I, s:I, s:I, s:I}",
					 "path", e->path,
					 "device", (json_int_t)e->pos.device,
					 "inode", (json_int_t)e->pos.inode,
					 "offset", (json_int_t)e->pos.offset,
					 "line", (json_int_t)e->pos.line);

		if (!item || json_array_append_new(files, item) != 0)
			goto out;
	}
	if (json_object_set_new(root, "version", json_integer(SS_VERSION)) != 0 ||
	    json_object_set(root, "files", files) != 0)
		goto out;
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

out:
	json_decref(files);
	json_decref(root);
	return text;
}

/* Stores the directory part of path in dir ("." when there is none). */
static int ss_directory(const char *path, char *dir, size_t cap)
{
	const char *slash = strrchr(path, '/');
	size_t len = slash ? (size_t)(slash - path) : 1;

	if (slash == path)
		len = 1;
	if (len >= cap)
		return -1;
	memcpy(dir, slash ? path : ".", len);
	dir[len] = '\0';
	return 0;
}

int ss_save(const struct ss_state *state, char *err, size_t errlen)
{
	char *text = ss_dump(state);
	size_t len = 0;
	int rc;

	if (!text) {
		snprintf(err, errlen, "cannot write state file %s: out of memory, "
			 "or an input path is not valid UTF-8", state->file);
		return -1;
	}
	len = strlen(text);
	text[len++] = '\n';     /* over the NUL; text is not used as a string after this */
	rc = atomic_file_write(state->file, text, len, err, errlen);
	free(text);
	return rc;
}

int ss_check_writable(const struct ss_state *state, char *err, size_t errlen)
{
	char dir[PATH_MAX];

	if (ss_directory(state->file, dir, sizeof(dir)) != 0) {
		snprintf(err, errlen, "state file path %s is too long", state->file);
		return -1;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		snprintf(err, errlen, "cannot write state file %s: directory %s: %s; "
			 "create the directory or give the sensor's user write "
			 "access to it", state->file, dir, strerror(errno));
		return -1;
	}
	return 0;
}

int ss_absolute_path(const char *path, char *out, size_t cap)
{
	char cwd[PATH_MAX];
	int n;

	if (path[0] == '/') {
		n = snprintf(out, cap, "%s", path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return -1;
		n = snprintf(out, cap, "%s/%s", cwd, path);
	}
	return n >= 0 && (size_t)n < cap ? 0 : -1;
}
