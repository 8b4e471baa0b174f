/*
 * SIGHUP: re-read the configuration file and apply what can change while
 * connections stay open.
 */
#ifndef CANARY_RELOAD_H
#define CANARY_RELOAD_H

#include "server.h"

/* Re-reads the configuration (file, then the same --set overrides) and
 * applies it. Returns 0, or -1 with the old settings kept. */
int server_reload(struct server *srv);

#endif
