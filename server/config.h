/*
 * canaryd's settings: defaults, the INI configuration file (read with
 * inih), and `--set NAME=VALUE` overrides, checked against one table so
 * that every setting has one name, one type and one valid range.
 */
#ifndef CANARY_CONFIG_H
#define CANARY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CFG_PATH_MAX 1024

struct cd_config {
	char listen[256];               /* HOST:PORT */
	char data_dir[CFG_PATH_MAX];
	char tls_cert[CFG_PATH_MAX];    /* "" means plain HTTP */
	char tls_key[CFG_PATH_MAX];
	char console_dir[CFG_PATH_MAX]; /* built web console; "" disables it */
	char log_level[16];
	uint64_t outbound_queue_bytes;
	uint64_t max_subscriptions;
	uint64_t max_body_bytes;
	uint64_t max_message_bytes;
	uint64_t max_batch_signals;
	uint64_t ping_interval_s;
	uint64_t idle_timeout_s;
	uint64_t auth_timeout_s;
	uint64_t retention_hours;
	uint64_t retention_s;           /* 0: retention_hours applies */
	uint64_t retention_check_s;
	char durability[16];            /* full | nometasync | nosync */
	uint64_t sync_interval_ms;      /* flush period unless full */
	uint64_t campaign_idle_gap_s;
	uint64_t max_clock_ahead_s;     /* 0: observed times unbounded */
	uint64_t stats_retention_days;  /* stats counters and campaigns */
	uint64_t map_size_max_bytes;
	uint64_t rate_limit_per_s;
	uint64_t rate_limit_burst;
	uint64_t max_connections;
	uint64_t max_connections_per_key;
	uint64_t max_filter_domains;    /* domain patterns in one filter */
	uint64_t handshake_timeout_s;   /* TLS handshake, request line, headers */
	char user[64];                  /* "" means keep the starting user */
	uint64_t replay_chunk_signals;
};

/* Fills cfg with the defaults. */
void cfg_defaults(struct cd_config *cfg);

/*
 * Reads an INI file: `name = value` lines, `#` or `;` comments, and an
 * optional [canaryd] section. Returns 0, or -1 with a message naming the
 * file, line and setting in err.
 */
int cfg_load_file(struct cd_config *cfg, const char *path, char *err,
		  size_t errlen);

/* Applies one `NAME=VALUE` override. Returns 0 or -1 with err filled. */
int cfg_set(struct cd_config *cfg, const char *assignment, char *err,
	    size_t errlen);

/* Checks settings that depend on each other. Returns 0 or -1. */
int cfg_validate(const struct cd_config *cfg, char *err, size_t errlen);

/* Returns the retention period in microseconds: retention_s when it is
 * set, else retention_hours. */
int64_t cfg_retention_us(const struct cd_config *cfg);

/* Maps durability to an st_durability value (full is 0). Returns 0, or -1
 * for an unknown name. */
int cfg_durability(const struct cd_config *cfg, unsigned *out);

/* Splits listen into host and port. Returns 0 or -1 with err filled. */
int cfg_listen_split(const char *listen, char *host, size_t hostlen,
		     int *port, char *err, size_t errlen);

#endif
