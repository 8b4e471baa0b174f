/*
 * Outbound queues of WebSocket messages.
 *
 * A signal is encoded once per wire format into a reference-counted
 * buffer (struct sbuf); each subscriber's queue entry points at that
 * buffer and adds only its own small prefix (the message envelope with
 * the subscription id), so fan-out copies nothing per subscriber until
 * the bytes are written. Every queue has a byte limit set at creation;
 * a push over the limit fails, and the caller closes the connection.
 */
#ifndef CANARY_OUTQ_H
#define CANARY_OUTQ_H

#include <stddef.h>
#include <stdint.h>

struct sbuf {
	uint32_t refs;
	size_t len;
	char data[];
};

/* Returns a buffer with one reference and room for len bytes. */
struct sbuf *sbuf_new(size_t len);
/* Returns a buffer holding a copy of text. */
struct sbuf *sbuf_from(const char *text, size_t len);
void sbuf_ref(struct sbuf *b);
void sbuf_unref(struct sbuf *b);

/* Longest envelope prefix and suffix of one queued message. */
#define OUTQ_HEAD_MAX 120
#define OUTQ_TAIL_MAX 4

struct outq_item;

struct outq {
	struct outq_item *first, *last;
	size_t bytes;           /* bytes of every queued message */
	size_t limit;
	size_t count;
};

void outq_init(struct outq *q, size_t limit);
void outq_clear(struct outq *q);

/*
 * Queues head + body + tail as one message; body may be NULL and is
 * referenced, not copied. Returns 0, or -1 (nothing queued) when the
 * queue would pass its limit or memory ran out.
 */
int outq_push(struct outq *q, const char *head, size_t head_len,
	      struct sbuf *body, const char *tail, size_t tail_len);

/*
 * Moves whole messages from the front of q into buf (cap bytes) and
 * returns the bytes written. With newline, messages are separated by
 * '\n' (JSON text frames); without, they follow each other directly
 * (MessagePack maps in a binary frame). A message larger than cap is never
 * split: it stays queued and 0 is returned only when q is empty or its
 * first message is larger than cap.
 */
size_t outq_take_frame(struct outq *q, char *buf, size_t cap, int newline);

/* Returns the bytes queued in all queues together. */
uint64_t outq_bytes_total(void);

/* Frees the items kept for reuse; call it at exit, after every queue is
 * cleared. */
void outq_release_cache(void);

/* Returns the size of the first queued message, or 0 when empty. */
size_t outq_first_size(const struct outq *q);

#endif
