/*
 * TLS for the listener: settings applied when the context is created, and
 * certificate reloads on SIGHUP.
 */
#ifndef CANARY_TLS_H
#define CANARY_TLS_H

#include <libwebsockets.h>

#include "server.h"

/* Applies tls_cert and tls_key to the context creation info. */
void tls_configure(struct server *srv, struct lws_context_creation_info *info);

/*
 * Loads tls_cert and tls_key again into the running listener, so that new
 * handshakes use them while open connections continue. Returns 0, or -1
 * (the old certificate stays in use) after logging why.
 */
int tls_reload_certificates(struct server *srv);

#endif
