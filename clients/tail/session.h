/*
 * The WebSocket side of canary-tail: one libwebsockets client connection at
 * a time, reconnected with exponential backoff and full jitter, all on one
 * thread driven by lws_service().
 */
#ifndef CANARY_TAIL_SESSION_H
#define CANARY_TAIL_SESSION_H

#include "cursor.h"
#include "options.h"

/* Process exit statuses of canary-tail. */
enum tail_exit {
	TAIL_EXIT_OK = 0,	/* stopped by a signal or --max-signals */
	TAIL_EXIT_FAILURE = 1,	/* cursor file, output or protocol failure */
	TAIL_EXIT_REJECTED = 2,	/* invalid options, key or filter */
};

/*
 * Stream signals from the server until SIGINT or SIGTERM, --max-signals,
 * or a failure that retrying cannot fix. loaded is the cursor read from
 * --cursor-file, or NULL. Returns the process exit status.
 */
enum tail_exit tail_session_run(const struct tail_options *opts,
				const struct tail_cursor *loaded);

#endif
