#include "status.h"

#include <stdarg.h>
#include <stdio.h>

static int status_quiet;

void
tail_status_set_quiet(int quiet)
{
	status_quiet = quiet;
}

void
tail_status(enum tail_status_level level, const char *fmt, ...)
{
	static const char *const prefix[] = {
		[TAIL_STATUS_INFO] = "",
		[TAIL_STATUS_WARN] = "warning: ",
		[TAIL_STATUS_ERROR] = "error: ",
	};
	va_list ap;

	if (level == TAIL_STATUS_INFO && status_quiet)
		return;

	fprintf(stderr, "canary-tail: %s", prefix[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
