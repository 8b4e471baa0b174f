/*
 * The canary.v1.json stream protocol as canary-tail sees it, without the
 * WebSocket transport: it splits received text into messages, reacts to
 * each message type, prints signals and keeps the resume cursor.
 *
 * Resume rules: signals are printed in seq order and any signal whose seq
 * is not above the last printed one is dropped, so a replay after a
 * reconnect never prints a signal twice. Every subscription after the
 * first resumes with since_seq = last printed seq.
 */
#ifndef CANARY_TAIL_STREAM_H
#define CANARY_TAIL_STREAM_H

#include <stddef.h>
#include <stdio.h>

#include "cursor.h"
#include "options.h"

/* Longest single JSON message accepted from the server, in bytes. */
#define TAIL_MESSAGE_MAX (1024 * 1024)

enum tail_stream_action {
	TAIL_STREAM_CONTINUE,		/* nothing to do */
	TAIL_STREAM_SEND_SUBSCRIBE,	/* welcome arrived: send the subscribe */
	TAIL_STREAM_DONE,		/* --max-signals reached: close, exit 0 */
	TAIL_STREAM_REJECTED,		/* server rejected the request: exit 2 */
	TAIL_STREAM_PROTOCOL_ERROR,	/* malformed or oversized input: exit 1 */
	TAIL_STREAM_OUTPUT_ERROR,	/* standard output failed: exit 1 */
};

struct tail_stream {
	const struct tail_options *opts;
	FILE *out;

	struct tail_cursor printed;	/* last signal written to out */
	struct tail_cursor flushed;	/* last signal flushed: what is saved */
	int cursor_dirty;		/* flushed differs from the file */
	char expected_epoch[TAIL_EPOCH_MAX + 1];	/* epoch of printed.seq */

	/* Where the next subscription starts when since_seq is known. */
	int have_resume;
	json_int_t resume_seq;

	json_int_t printed_count;

	/* Per connection. */
	int welcomed;
	int subscribed;
	char *line;			/* partial message, up to TAIL_MESSAGE_MAX */
	size_t line_len;
	size_t line_cap;
};

/*
 * Prepare stream for opts, writing signals to out. A loaded cursor (may be
 * NULL) takes precedence over --since-seq and --since-time. The caller
 * releases stream with tail_stream_free().
 */
void tail_stream_init(struct tail_stream *stream,
		      const struct tail_options *opts, FILE *out,
		      const struct tail_cursor *loaded);

void tail_stream_free(struct tail_stream *stream);

/* Forget per-connection state before a new connection starts. */
void tail_stream_connection_reset(struct tail_stream *stream);

/*
 * Feed one received piece of a text message. final is nonzero for the
 * last piece of the WebSocket message; then the last line is handled and
 * standard output is flushed. Messages are separated by '\n'.
 */
enum tail_stream_action tail_stream_receive(struct tail_stream *stream,
					    const char *data, size_t len,
					    int final);

/*
 * Feed one received piece of a binary canary.v1.msgpack message: MessagePack
 * maps back to back, with the same meaning as the JSON messages. Pieces are
 * collected until final, then every map is handled and output is flushed.
 */
enum tail_stream_action tail_stream_receive_msgpack(struct tail_stream *stream,
						    const char *data, size_t len,
						    int final);

/*
 * Build the subscribe message for this connection. Returns a string the
 * caller frees with free(), or NULL when out of memory.
 */
char *tail_stream_subscribe_message(const struct tail_stream *stream);

/* Return a short description of an action code. */
const char *tail_stream_action_text(enum tail_stream_action action);

#endif
