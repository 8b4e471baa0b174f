#include "tls.h"

#include "log.h"

void tls_configure(struct server *srv, struct lws_context_creation_info *info)
{
	if (!srv->cfg.tls_cert[0])
		return;
	info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info->ssl_cert_filepath = srv->cfg.tls_cert;
	info->ssl_private_key_filepath = srv->cfg.tls_key;
}

int tls_reload_certificates(struct server *srv)
{
	if (!srv->cfg.tls_cert[0])
		return 0;
	/* TODO: load the new certificate into the running listener. */
	log_warn("tls: certificate reload is not implemented; restart to use a new certificate");
	return -1;
}
