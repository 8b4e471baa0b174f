/*
 * TLS for the listener: settings applied when the context is created, and
 * certificate reloads on SIGHUP.
 */
#ifndef CANARY_TLS_H
#define CANARY_TLS_H

#include <libwebsockets.h>

#include "server.h"

/* Applies tls_cert and tls_key, the TLS 1.2 minimum and the cipher lists
 * to the context creation info. Does nothing when tls_cert is empty. */
void tls_configure(struct server *srv, struct lws_context_creation_info *info);

/*
 * Takes note of the listener's SSL_CTX (lws still owns it) and sets its
 * minimum protocol version. Called from the first protocol's callback on
 * LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS, with the callback's
 * user argument. Returns 0, or -1 to make lws fail the start.
 */
int tls_server_ctx_ready(void *ssl_ctx);

/*
 * Loads tls_cert and tls_key again into the running listener, so that new
 * handshakes use them while open connections continue. Returns 0, or -1
 * (the old certificate stays in use) after logging why.
 */
int tls_reload_certificates(struct server *srv);

#endif
