#include "reload.h"

#include "log.h"
#include "tls.h"

int server_reload(struct server *srv)
{
	/* Keys need no reload: every request and the periodic stream check
	 * read them from the store. */
	log_info("reload requested");
	return tls_reload_certificates(srv);
}
