/*
 * SIGHUP: apply a freshly parsed configuration while connections stay
 * open.
 */
#ifndef CANARY_RELOAD_H
#define CANARY_RELOAD_H

#include "config.h"
#include "server.h"

/*
 * Applies next, which the caller parsed from the same command line as at
 * start (the configuration file, then the same --listen, --data-dir and
 * --set overrides). Settings that only take effect at start keep their
 * running values, each with a warning. The rest replace the running
 * ones: limits, liveness and retention apply to open connections from
 * their next check on. Then reloads the TLS certificate. Keys need no
 * reload because every request reads them from the store. Returns 0, or
 * -1 when the certificate reload failed (the other settings still apply).
 */
int server_reload(struct server *srv, const struct cd_config *next);

#endif
