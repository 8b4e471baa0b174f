/*
 * Status lines of canary-tail. Standard output carries signals only, so
 * every other line (progress, warnings, errors) goes to standard error,
 * one line each, prefixed with the program name. No line may contain the
 * API key.
 */
#ifndef CANARY_TAIL_STATUS_H
#define CANARY_TAIL_STATUS_H

enum tail_status_level {
	TAIL_STATUS_INFO,	/* progress: connected, subscribed, reconnecting */
	TAIL_STATUS_WARN,	/* data may be missing or replayed: gaps, epochs */
	TAIL_STATUS_ERROR,	/* the program stops or a step failed */
};

/*
 * Set whether informational lines are suppressed (--quiet-status).
 * Warnings and errors are always written.
 */
void tail_status_set_quiet(int quiet);

/* Write one status line to standard error at the given level. */
void tail_status(enum tail_status_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define tail_info(...) tail_status(TAIL_STATUS_INFO, __VA_ARGS__)
#define tail_warn(...) tail_status(TAIL_STATUS_WARN, __VA_ARGS__)
#define tail_error(...) tail_status(TAIL_STATUS_ERROR, __VA_ARGS__)

#endif
