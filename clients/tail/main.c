/*
 * canary-tail: subscribe to a canaryd signal stream over WebSocket and
 * print each signal as one line of compact JSON on standard output.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cursor.h"
#include "options.h"
#include "session.h"
#include "status.h"

int
main(int argc, char **argv)
{
	struct tail_options opts;
	struct tail_cursor cursor;
	const struct tail_cursor *loaded = NULL;
	char err[PATH_MAX + 512];
	int status = TAIL_EXIT_REJECTED;

	switch (tail_options_parse(argc, argv, getenv("CANARY_KEY"), &opts, err, sizeof(err))) {
	case TAIL_OPTIONS_OK:
		break;
	case TAIL_OPTIONS_HELP:
		tail_options_print_usage(stdout);
		status = TAIL_EXIT_OK;
		goto out;
	case TAIL_OPTIONS_INVALID:
		tail_error("%s", err);
		goto out;
	}
	tail_status_set_quiet(opts.quiet_status);

	/* libwebsockets only logs an unreadable CA file, then fails every handshake. */
	if (opts.cacert && access(opts.cacert, R_OK)) {
		tail_error("cannot read --cacert '%s': %s; give a readable PEM file of CA certificates",
			   opts.cacert, strerror(errno));
		goto out;
	}

	if (opts.cursor_file) {
		switch (tail_cursor_load(opts.cursor_file, &cursor, err, sizeof(err))) {
		case TAIL_CURSOR_OK:
			loaded = &cursor;
			tail_info("resuming after seq %lld of epoch %s from %s",
				  (long long)cursor.seq, cursor.epoch, opts.cursor_file);
			break;
		case TAIL_CURSOR_ABSENT:
			break;
		default:
			tail_error("%s", err);
			goto out;
		}
	}

	status = tail_session_run(&opts, loaded);

out:
	tail_options_free(&opts);
	return status;
}
