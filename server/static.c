/*
 * Static files of the web console.
 *
 * A request path maps to a file only when every segment is made of
 * A-Z a-z 0-9 . _ - and does not start with a dot, so "..", hidden files
 * and encoded separators never reach the file system. The file must be a
 * regular file, must not be a symbolic link, and its resolved path must
 * lie inside the resolved console directory, so a link placed in the
 * directory cannot expose other files either. Files are read per request
 * (they are small), which lets a rebuilt console show up without a
 * restart.
 */
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define STATIC_NAME_MAX 128
#define STATIC_FILE_MAX (8u << 20)

/*
 * Sent with every console file. The console loads its script, style sheet
 * and icon from this origin and talks to this origin's REST and WebSocket
 * endpoints only ('self' covers ws: and wss: on the same host in CSP
 * Level 3). form-action 'none' stops a form from ever being submitted as
 * a navigation, which would put its fields in a URL.
 */
static const char security_headers[] =
	"Content-Security-Policy: default-src 'none'; script-src 'self'; "
	"style-src 'self'; img-src 'self'; font-src 'self'; "
	"connect-src 'self'; base-uri 'none'; form-action 'none'; "
	"frame-ancestors 'none'\r\n"
	"Referrer-Policy: no-referrer\r\n"
	"X-Frame-Options: DENY\r\n"
	"Cross-Origin-Opener-Policy: same-origin\r\n"
	"Cross-Origin-Resource-Policy: same-origin\r\n"
	"Permissions-Policy: camera=(), microphone=(), geolocation=(), payment=(), usb=()\r\n";

struct mime_type {
	const char *ext;
	const char *type;
};

static const struct mime_type mime_types[] = {
	{ "html", "text/html; charset=utf-8" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" },
	{ "svg", "image/svg+xml" },
	{ "png", "image/png" },
	{ "ico", "image/x-icon" },
	{ "woff2", "font/woff2" },
	{ "json", "application/json" },
	{ "txt", "text/plain; charset=utf-8" },
};

static int name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
	       c == '/';
}

/* Checks a path relative to the console directory, such as "app.js". */
static int name_is_safe(const char *name)
{
	size_t len = strlen(name);
	int segment_start = 1;

	if (len == 0 || len > STATIC_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!name_char_ok(c))
			return 0;
		if (segment_start && (c == '.' || c == '/'))
			return 0;
		segment_start = c == '/';
	}
	return !segment_start;
}

static const char *mime_type_of(const char *name)
{
	const char *slash = strrchr(name, '/');
	const char *dot = strrchr(slash ? slash : name, '.');

	if (!dot)
		return NULL;
	for (size_t i = 0; i < sizeof(mime_types) / sizeof(mime_types[0]); i++)
		if (!strcmp(dot + 1, mime_types[i].ext))
			return mime_types[i].type;
	return NULL;
}

/* Checks that path resolves to a place inside dir (both resolved). */
static int path_inside(const char *dir, const char *path)
{
	char *real_dir = realpath(dir, NULL);
	char *real_path = realpath(path, NULL);
	size_t len;
	int inside = 0;

	if (!real_dir || !real_path)
		goto out;
	len = strlen(real_dir);
	inside = !strncmp(real_path, real_dir, len) && real_path[len] == '/';
out:
	free(real_dir);
	free(real_path);
	return inside;
}

/*
 * Reads the regular file at path into a new buffer. Returns 0 with *out
 * and *len set (the caller frees *out), or an errno value: ENOENT for a
 * missing file, ELOOP for a symbolic link, EFBIG past STATIC_FILE_MAX.
 */
static int read_file(const char *path, char **out, size_t *len)
{
	struct stat sb;
	char *buf = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int err = 0;

	if (fd < 0)
		return errno;
	if (fstat(fd, &sb)) {
		err = errno;
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		err = ENOENT;
		goto out;
	}
	if (sb.st_size > (off_t)STATIC_FILE_MAX) {
		err = EFBIG;
		goto out;
	}

	buf = malloc((size_t)sb.st_size + 1);
	if (!buf) {
		err = ENOMEM;
		goto out;
	}
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : EIO;
			goto out;
		}
		got += (size_t)n;
	}
	*out = buf;
	*len = got;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return err;
}

enum static_result static_serve(struct http_req *req, const char *uri,
				const char *dir)
{
	/* The missing console is logged once, not on every request. */
	static int warned_unbuilt;
	const char *name;
	const char *type;
	char path[CFG_PATH_MAX + STATIC_NAME_MAX + 2];
	char *body = NULL;
	size_t len = 0;
	int err;

	if (!dir[0] || uri[0] != '/' || !strncmp(uri, "/v1/", 4))
		return STATIC_NOT_MINE;
	name = uri[1] ? uri + 1 : "index.html";
	if (!name_is_safe(name))
		return STATIC_NOT_MINE;
	type = mime_type_of(name);
	if (!type)
		return STATIC_NOT_MINE;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return STATIC_NOT_MINE;

	err = read_file(path, &body, &len);
	if (!err && !path_inside(dir, path))
		err = ELOOP;
	if (err == ENOENT || err == ENOTDIR || err == ELOOP) {
		free(body);
		if (strcmp(name, "index.html"))
			return STATIC_NOT_MINE;
		if (!warned_unbuilt) {
			log_warn("console requested but %s/index.html is missing; run npm ci --ignore-scripts && npm run build in console/, or set console_dir",
				 dir);
			warned_unbuilt = 1;
		}
		http_problem(req, 503, "console-not-built", "Console not built",
			     "the web console has not been built on this server; run npm ci --ignore-scripts && npm run build in console/, or set console_dir to the built files");
		return STATIC_QUEUED;
	}
	if (err) {
		free(body);
		log_error("cannot read console file %s: %s", path, strerror(err));
		http_problem(req, 500, "internal", "Internal error",
			     "a console file could not be read; see the server log");
		return STATIC_QUEUED;
	}

	http_respond(req, 200, type, body, len, security_headers);
	return STATIC_QUEUED;
}
