#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

enum log_level log_threshold = LOG_LEVEL_INFO;

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };

void log_write(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timeval tv;
	struct tm tm;
	size_t used;
	va_list ap;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	used = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	used += (size_t)snprintf(line + used, sizeof(line) - used,
				 ".%03ldZ canaryd[%ld] %s ",
				 (long)(tv.tv_usec / 1000), (long)getpid(),
				 level_names[level]);

	va_start(ap, fmt);
	vsnprintf(line + used, sizeof(line) - used, fmt, ap);
	va_end(ap);

	/* One write per line, so that lines from two processes never mix. */
	used = strlen(line);
	if (used < sizeof(line) - 1)
		line[used++] = '\n';
	else
		line[sizeof(line) - 2] = '\n';
	if (write(STDERR_FILENO, line, used) < 0)
		return;
}

int log_level_parse(const char *name, enum log_level *out)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++) {
		if (!strcmp(name, names[i])) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void log_from_lws(int lws_level, const char *text)
{
	enum log_level level = lws_level == LLL_ERR ? LOG_LEVEL_ERROR
						     : LOG_LEVEL_WARN;
	size_t len = strlen(text);

	/* lws ends its lines with a newline; ours add one. */
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	LOG_AT(level, "lws: %.*s", (int)len, text);
}

void log_attach_lws(void)
{
	lws_set_log_level(LLL_ERR | LLL_WARN, log_from_lws);
}
