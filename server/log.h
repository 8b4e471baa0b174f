/*
 * Logging for canaryd: one line per event on standard error,
 * "2026-01-03T04:05:06.789Z canaryd[PID] LEVEL message". The level is
 * checked before any formatting, and the format is checked by the compiler.
 * Messages name the connection or key by id, never by secret or address.
 */
#ifndef CANARY_LOG_H
#define CANARY_LOG_H

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

extern enum log_level log_threshold;

void log_write(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Parses "error", "warn", "info" or "debug". Returns 0 or -1. */
int log_level_parse(const char *name, enum log_level *out);

/* Routes libwebsockets' own messages through log_write (warnings and up). */
void log_attach_lws(void);

#define LOG_AT(level, ...)                                                 \
	do {                                                               \
		if ((level) <= log_threshold)                              \
			log_write((level), __VA_ARGS__);                   \
	} while (0)

#define log_error(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
