/*
 * Configuration reload on SIGHUP.
 *
 * What a reload changes:
 *   - at once, for open and new connections: outbound_queue_bytes (an open
 *     queue already above a lowered limit is closed with 4008 at its next
 *     push), ping_interval_s, idle_timeout_s, auth_timeout_s, log_level,
 *     and every setting read per request or per subscribe
 *     (max_subscriptions, max_batch_signals, rate limits, connection
 *     limits, campaign_idle_gap_s);
 *   - from the next retention run: retention_hours, retention_s,
 *     retention_check_s;
 *   - the certificate and key files, through tls_reload_certificates.
 * What needs a restart (the running value is kept, with a warning):
 * listen, data_dir, map_size_max_bytes, durability, sync_interval_ms,
 * max_body_bytes, max_message_bytes (receive buffers are sized by them),
 * replay_chunk_signals (the replay buffer is), and switching TLS on or
 * off.
 */
#include "reload.h"

#include <inttypes.h>
#include <string.h>

#include "log.h"
#include "stream.h"
#include "tls.h"

/* Keeps the running value of a setting that needs a restart, and warns
 * when the new configuration asks for another one. */
#define KEEP_TEXT(name)                                                        \
	do {                                                                   \
		if (strcmp(cur->name, next->name))                             \
			log_warn("reload: %s changed to \"%s\" but needs a restart; keeping \"%s\"", \
				 #name, next->name, cur->name);                \
		memcpy(applied.name, cur->name, sizeof(applied.name));         \
	} while (0)

#define KEEP_U64(name)                                                         \
	do {                                                                   \
		if (cur->name != next->name)                                   \
			log_warn("reload: %s changed to %" PRIu64              \
				 " but needs a restart; keeping %" PRIu64,     \
				 #name, next->name, cur->name);                \
		applied.name = cur->name;                                      \
	} while (0)

int server_reload(struct server *srv, const struct cd_config *next)
{
	const struct cd_config *cur = &srv->cfg;
	struct cd_config applied = *next;
	enum log_level level;

	log_info("reload: applying the configuration");

	KEEP_TEXT(listen);
	KEEP_TEXT(data_dir);
	KEEP_TEXT(durability);
	KEEP_U64(map_size_max_bytes);
	KEEP_U64(sync_interval_ms);
	KEEP_U64(max_body_bytes);
	KEEP_U64(max_message_bytes);
	KEEP_U64(replay_chunk_signals);
	if (!cur->tls_cert[0] != !next->tls_cert[0]) {
		log_warn("reload: switching TLS %s needs a restart; keeping it %s",
			 next->tls_cert[0] ? "on" : "off", cur->tls_cert[0] ? "on" : "off");
		memcpy(applied.tls_cert, cur->tls_cert, sizeof(applied.tls_cert));
		memcpy(applied.tls_key, cur->tls_key, sizeof(applied.tls_key));
	}

	/* cfg_validate accepted the name, as it rejects a whole file with an
	 * invalid one. */
	if (log_level_parse(applied.log_level, &level) == 0)
		log_threshold = level;

	srv->cfg = applied;
	stream_apply_config(srv);
	log_info("reload: outbound_queue_bytes %" PRIu64 ", max_subscriptions %" PRIu64
		 ", ping_interval_s %" PRIu64 ", idle_timeout_s %" PRIu64
		 ", retention %" PRId64 " s",
		 srv->cfg.outbound_queue_bytes, srv->cfg.max_subscriptions,
		 srv->cfg.ping_interval_s, srv->cfg.idle_timeout_s,
		 cfg_retention_us(&srv->cfg) / 1000000);

	return tls_reload_certificates(srv);
}
