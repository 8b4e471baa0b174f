#include "stream.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "status.h"

/* The one subscription id canary-tail uses on each connection. */
#define SUB_ID "s1"

/* Maximum length of server text (an error message) copied to stderr. */
#define SERVER_TEXT_MAX 300

const char *
tail_stream_action_text(enum tail_stream_action action)
{
	switch (action) {
	case TAIL_STREAM_CONTINUE:
		return "continue";
	case TAIL_STREAM_SEND_SUBSCRIBE:
		return "send subscribe";
	case TAIL_STREAM_DONE:
		return "signal limit reached";
	case TAIL_STREAM_REJECTED:
		return "rejected by the server";
	case TAIL_STREAM_PROTOCOL_ERROR:
		return "protocol error";
	case TAIL_STREAM_OUTPUT_ERROR:
		return "output error";
	}
	return "unknown action";
}

void
tail_stream_init(struct tail_stream *stream, const struct tail_options *opts,
		 FILE *out, const struct tail_cursor *loaded)
{
	memset(stream, 0, sizeof(*stream));
	stream->opts = opts;
	stream->out = out;

	if (loaded) {
		stream->printed = *loaded;
		stream->flushed = *loaded;
		strcpy(stream->expected_epoch, loaded->epoch);
		stream->have_resume = 1;
		stream->resume_seq = loaded->seq;
	}
}

void
tail_stream_free(struct tail_stream *stream)
{
	free(stream->line);
	stream->line = NULL;
	stream->line_len = 0;
	stream->line_cap = 0;
}

void
tail_stream_connection_reset(struct tail_stream *stream)
{
	stream->welcomed = 0;
	stream->subscribed = 0;
	stream->line_len = 0;
}

/*
 * Copy server-supplied text for a status line: bounded, and with control
 * characters replaced so that the server cannot drive the terminal.
 */
static void
copy_server_text(char *dst, size_t dstlen, const char *src)
{
	size_t i;

	for (i = 0; src && src[i] && i + 1 < dstlen; i++)
		dst[i] = ((unsigned char)src[i] < 0x20 || src[i] == 0x7f) ? '?' : src[i];
	dst[i] = '\0';
}

static int
field_equals(const json_t *obj, const char *field, const char *expected)
{
	const char *value = json_string_value(json_object_get(obj, field));

	return value && !strcmp(value, expected);
}

static json_int_t
get_seq(const json_t *obj, const char *field)
{
	const json_t *value = json_object_get(obj, field);

	if (!json_is_integer(value) || json_integer_value(value) < 0)
		return -1;
	return json_integer_value(value);
}

static enum tail_stream_action
handle_welcome(struct tail_stream *stream, const json_t *msg)
{
	const char *epoch = json_string_value(json_object_get(msg, "epoch"));
	char server[64];

	if (stream->welcomed)
		return TAIL_STREAM_CONTINUE;

	if (!epoch || !tail_cursor_epoch_valid(epoch)) {
		tail_error("the server's welcome has no valid \"epoch\" (1 to %d printable characters)",
			   TAIL_EPOCH_MAX);
		return TAIL_STREAM_PROTOCOL_ERROR;
	}

	copy_server_text(server, sizeof(server),
			 json_string_value(json_object_get(msg, "server")));
	tail_info("welcome from %s, head_seq %lld", server[0] ? server : "unknown server",
		  (long long)get_seq(msg, "head_seq"));

	/* A seq from another store means nothing here: start from its oldest. */
	if (stream->expected_epoch[0] && strcmp(stream->expected_epoch, epoch)) {
		tail_warn("the server's store epoch '%s' differs from the cursor's epoch '%s': the store was replaced, resuming from since_seq 0",
			  epoch, stream->expected_epoch);
		stream->have_resume = 1;
		stream->resume_seq = 0;
		stream->printed.seq = 0;
	}

	strcpy(stream->expected_epoch, epoch);
	strcpy(stream->printed.epoch, epoch);
	stream->welcomed = 1;
	return TAIL_STREAM_SEND_SUBSCRIBE;
}

static enum tail_stream_action
handle_subscribed(struct tail_stream *stream, const json_t *msg)
{
	json_int_t head_seq = get_seq(msg, "head_seq");

	if (!field_equals(msg, "id", SUB_ID))
		return TAIL_STREAM_CONTINUE;

	stream->subscribed = 1;
	tail_info("subscribed, head_seq %lld", (long long)head_seq);

	/*
	 * A live-only subscription starts after head_seq. Remember it, so that
	 * a reconnect before the first signal resumes there and loses nothing.
	 * NOTE: this assumes the server delivers every matching signal with a
	 * seq above the head_seq it reports in "subscribed".
	 */
	if (!stream->have_resume && !stream->opts->has_since_seq &&
	    !stream->opts->since_time && head_seq >= 0) {
		stream->have_resume = 1;
		stream->resume_seq = head_seq;
	}

	return TAIL_STREAM_CONTINUE;
}

static enum tail_stream_action
handle_signal(struct tail_stream *stream, const json_t *msg)
{
	const json_t *signal = json_object_get(msg, "signal");
	json_int_t seq = get_seq(signal, "seq");
	char *text = NULL;

	if (!field_equals(msg, "sub", SUB_ID))
		return TAIL_STREAM_CONTINUE;

	if (!json_is_object(signal) || seq <= 0) {
		tail_error("the server sent a signal without an object \"signal\" holding a positive integer \"seq\"");
		return TAIL_STREAM_PROTOCOL_ERROR;
	}

	/* Replays overlap what was printed before a reconnect: skip those. */
	if (seq <= stream->printed.seq)
		return TAIL_STREAM_CONTINUE;

	text = json_dumps(signal, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text) {
		tail_error("cannot serialise signal seq %lld: out of memory", (long long)seq);
		return TAIL_STREAM_OUTPUT_ERROR;
	}
	if (fputs(text, stream->out) == EOF || fputc('\n', stream->out) == EOF) {
		free(text);
		return TAIL_STREAM_OUTPUT_ERROR;
	}
	free(text);

	stream->printed.seq = seq;
	stream->have_resume = 1;
	stream->resume_seq = seq;
	stream->printed_count++;

	if (stream->opts->max_signals && stream->printed_count >= stream->opts->max_signals)
		return TAIL_STREAM_DONE;
	return TAIL_STREAM_CONTINUE;
}

static enum tail_stream_action
handle_gap(struct tail_stream *stream, const json_t *msg)
{
	char reason[64];

	copy_server_text(reason, sizeof(reason),
			 json_string_value(json_object_get(msg, "reason")));

	if (!strcmp(reason, "epoch")) {
		tail_warn("the server does not know the cursor's store (gap reason epoch): printing from its oldest signal");
		stream->printed.seq = 0;
		stream->have_resume = 1;
		stream->resume_seq = 0;
		return TAIL_STREAM_CONTINUE;
	}

	tail_warn("signals %lld to %lld are missing on the server (gap reason %s)",
		  (long long)get_seq(msg, "from"), (long long)get_seq(msg, "to"),
		  reason[0] ? reason : "unknown");
	return TAIL_STREAM_CONTINUE;
}

static enum tail_stream_action
handle_error(struct tail_stream *stream, const json_t *msg)
{
	const char *code = json_string_value(json_object_get(msg, "code"));
	const char *ref = json_string_value(json_object_get(msg, "ref"));
	char code_text[64];
	char message[SERVER_TEXT_MAX];

	copy_server_text(code_text, sizeof(code_text), code);
	copy_server_text(message, sizeof(message),
			 json_string_value(json_object_get(msg, "message")));

	/*
	 * An error about our subscription before it was confirmed means the
	 * request itself is wrong, and sending it again cannot help.
	 */
	if ((code && !strcmp(code, "invalid_filter")) ||
	    (ref && !strcmp(ref, SUB_ID) && !stream->subscribed)) {
		tail_error("the server rejected the subscription (%s): %s; fix the filter or resume options",
			   code_text[0] ? code_text : "no code", message);
		return TAIL_STREAM_REJECTED;
	}

	tail_warn("server error %s: %s", code_text[0] ? code_text : "without code", message);
	return TAIL_STREAM_CONTINUE;
}

static enum tail_stream_action
handle_message(struct tail_stream *stream, const json_t *msg)
{
	const char *type = json_string_value(json_object_get(msg, "type"));

	if (!type) {
		tail_error("the server sent a message without a string \"type\"");
		return TAIL_STREAM_PROTOCOL_ERROR;
	}

	if (!strcmp(type, "signal"))
		return handle_signal(stream, msg);
	if (!strcmp(type, "welcome"))
		return handle_welcome(stream, msg);
	if (!strcmp(type, "subscribed"))
		return handle_subscribed(stream, msg);
	if (!strcmp(type, "replay_done")) {
		tail_info("replay done up to seq %lld", (long long)get_seq(msg, "seq"));
		return TAIL_STREAM_CONTINUE;
	}
	if (!strcmp(type, "gap"))
		return handle_gap(stream, msg);
	if (!strcmp(type, "error"))
		return handle_error(stream, msg);

	/* "pong" and types added by newer servers need no action. */
	return TAIL_STREAM_CONTINUE;
}

static enum tail_stream_action
handle_line(struct tail_stream *stream, const char *line, size_t len)
{
	enum tail_stream_action action;
	json_error_t jerr;
	json_t *msg = NULL;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return TAIL_STREAM_CONTINUE;

	msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(msg)) {
		tail_error("the server sent a message that is not a JSON object (%s at byte %d)",
			   msg ? "wrong type" : jerr.text, msg ? 0 : jerr.position);
		json_decref(msg);
		return TAIL_STREAM_PROTOCOL_ERROR;
	}

	action = handle_message(stream, msg);
	json_decref(msg);
	return action;
}

/* Append to the partial line, growing the buffer up to TAIL_MESSAGE_MAX. */
static int
append_partial(struct tail_stream *stream, const char *data, size_t len)
{
	size_t need = stream->line_len + len;

	if (need > TAIL_MESSAGE_MAX)
		return -1;

	if (need > stream->line_cap) {
		size_t cap = stream->line_cap ? stream->line_cap : 16384;
		char *grown;

		while (cap < need)
			cap *= 2;
		if (cap > TAIL_MESSAGE_MAX)
			cap = TAIL_MESSAGE_MAX;
		grown = realloc(stream->line, cap);
		if (!grown)
			return -1;
		stream->line = grown;
		stream->line_cap = cap;
	}

	memcpy(stream->line + stream->line_len, data, len);
	stream->line_len = need;
	return 0;
}

/* Handle one complete line, taking the buffered prefix into account. */
static enum tail_stream_action
complete_line(struct tail_stream *stream, const char *data, size_t len)
{
	enum tail_stream_action action;

	if (!stream->line_len) {
		if (len > TAIL_MESSAGE_MAX)
			goto too_big;
		return handle_line(stream, data, len);
	}

	if (append_partial(stream, data, len))
		goto too_big;
	action = handle_line(stream, stream->line, stream->line_len);
	stream->line_len = 0;
	return action;

too_big:
	tail_error("the server sent a message over %d bytes, the most canary-tail accepts",
		   TAIL_MESSAGE_MAX);
	return TAIL_STREAM_PROTOCOL_ERROR;
}

static enum tail_stream_action
flush_batch(struct tail_stream *stream)
{
	if (fflush(stream->out) == EOF)
		return TAIL_STREAM_OUTPUT_ERROR;

	if (stream->flushed.seq != stream->printed.seq ||
	    strcmp(stream->flushed.epoch, stream->printed.epoch)) {
		stream->flushed = stream->printed;
		stream->cursor_dirty = 1;
	}
	return TAIL_STREAM_CONTINUE;
}

enum tail_stream_action
tail_stream_receive(struct tail_stream *stream, const char *data, size_t len,
		    int final)
{
	enum tail_stream_action action = TAIL_STREAM_CONTINUE;
	const char *newline;

	while (action == TAIL_STREAM_CONTINUE || action == TAIL_STREAM_SEND_SUBSCRIBE) {
		enum tail_stream_action step;

		newline = memchr(data, '\n', len);
		if (!newline)
			break;

		step = complete_line(stream, data, (size_t)(newline - data));
		if (step != TAIL_STREAM_CONTINUE)
			action = step;
		len -= (size_t)(newline - data) + 1;
		data = newline + 1;
	}

	if (action != TAIL_STREAM_CONTINUE && action != TAIL_STREAM_SEND_SUBSCRIBE)
		goto flush;

	if (final) {
		enum tail_stream_action step = complete_line(stream, data, len);

		if (step != TAIL_STREAM_CONTINUE)
			action = step;
	} else if (len && append_partial(stream, data, len)) {
		tail_error("the server sent a message over %d bytes, the most canary-tail accepts",
			   TAIL_MESSAGE_MAX);
		action = TAIL_STREAM_PROTOCOL_ERROR;
	}

flush:
	/* Flush at the end of each WebSocket message, and before stopping. */
	if (final || (action != TAIL_STREAM_CONTINUE && action != TAIL_STREAM_SEND_SUBSCRIBE)) {
		if (flush_batch(stream) == TAIL_STREAM_OUTPUT_ERROR)
			action = TAIL_STREAM_OUTPUT_ERROR;
	}
	return action;
}

/* Deepest nesting accepted in a MessagePack message from the server. */
#define MSGPACK_DEPTH_MAX 32

/*
 * Returns the JSON value of a MessagePack object from the server, or NULL
 * when it contains something JSON cannot carry the same way: a non-string or
 * duplicate map key, invalid UTF-8, an integer past int64, binary data.
 */
static json_t *
json_from_msgpack(const msgpack_object *o, int depth)
{
	json_t *out = NULL;

	if (depth > MSGPACK_DEPTH_MAX)
		return NULL;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return o->via.u64 > INT64_MAX ? NULL : json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return json_stringn(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_ARRAY:
		out = json_array();
		for (uint32_t i = 0; out && i < o->via.array.size; i++) {
			json_t *item = json_from_msgpack(&o->via.array.ptr[i], depth + 1);

			if (!item || json_array_append_new(out, item)) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	case MSGPACK_OBJECT_MAP:
		out = json_object();
		for (uint32_t i = 0; out && i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			json_t *key = NULL, *val = NULL;

			if (kv->key.type == MSGPACK_OBJECT_STR)
				key = json_stringn(kv->key.via.str.ptr, kv->key.via.str.size);
			if (key && strlen(json_string_value(key)) == json_string_length(key) &&
			    !json_object_get(out, json_string_value(key)))
				val = json_from_msgpack(&kv->val, depth + 1);
			if (!val || json_object_set_new(out, json_string_value(key), val)) {
				json_decref(key);
				json_decref(out);
				return NULL;
			}
			json_decref(key);
		}
		return out;
	default:
		return NULL;
	}
}

/* Handles every map of one complete binary message. */
static enum tail_stream_action
handle_msgpack_message(struct tail_stream *stream, const char *data, size_t len)
{
	enum tail_stream_action action = TAIL_STREAM_CONTINUE;
	msgpack_unpacked result;
	size_t off = 0;

	msgpack_unpacked_init(&result);
	while (off < len && (action == TAIL_STREAM_CONTINUE ||
			     action == TAIL_STREAM_SEND_SUBSCRIBE)) {
		enum tail_stream_action step;
		json_t *msg = NULL;

		if (msgpack_unpack_next(&result, data, len, &off) != MSGPACK_UNPACK_SUCCESS) {
			tail_error("the server sent a binary message that is not whole MessagePack maps");
			action = TAIL_STREAM_PROTOCOL_ERROR;
			break;
		}
		msg = json_from_msgpack(&result.data, 0);
		if (!json_is_object(msg)) {
			tail_error("the server sent a MessagePack value that is not a map with unique string keys");
			json_decref(msg);
			action = TAIL_STREAM_PROTOCOL_ERROR;
			break;
		}
		step = handle_message(stream, msg);
		json_decref(msg);
		if (step != TAIL_STREAM_CONTINUE)
			action = step;
	}
	msgpack_unpacked_destroy(&result);
	return action;
}

enum tail_stream_action
tail_stream_receive_msgpack(struct tail_stream *stream, const char *data,
			    size_t len, int final)
{
	enum tail_stream_action action = TAIL_STREAM_CONTINUE;

	if (append_partial(stream, data, len)) {
		tail_error("the server sent a message over %d bytes, the most canary-tail accepts",
			   TAIL_MESSAGE_MAX);
		return TAIL_STREAM_PROTOCOL_ERROR;
	}
	if (!final)
		return TAIL_STREAM_CONTINUE;
	action = handle_msgpack_message(stream, stream->line, stream->line_len);
	stream->line_len = 0;
	if (flush_batch(stream) == TAIL_STREAM_OUTPUT_ERROR)
		action = TAIL_STREAM_OUTPUT_ERROR;
	return action;
}

char *
tail_stream_subscribe_message(const struct tail_stream *stream)
{
	const struct tail_options *opts = stream->opts;
	json_t *msg = NULL;
	char *text = NULL;

	msg = json_pack("{s:s, s:s, s:O}", "op", "subscribe", "id", SUB_ID,
			"filter", opts->filter);
	if (!msg)
		goto out;

	if (stream->have_resume)
		json_object_set_new(msg, "since_seq", json_integer(stream->resume_seq));
	else if (opts->since_time)
		json_object_set_new(msg, "since_time", json_string(opts->since_time));
	else if (opts->has_since_seq)
		json_object_set_new(msg, "since_seq", json_integer(opts->since_seq));

	text = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);

out:
	json_decref(msg);
	return text;
}
