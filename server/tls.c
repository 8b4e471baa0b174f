/*
 * TLS for the listener, through libwebsockets and OpenSSL.
 *
 * Protocol versions: TLS 1.2 and 1.3 only. The context options switch off
 * SSLv3, TLS 1.0 and 1.1, and the minimum version is set on the SSL_CTX as
 * well, so that neither an OpenSSL default nor a system configuration can
 * bring them back. TLS 1.2 offers only ECDHE key exchange with AEAD
 * ciphers; TLS 1.3 offers its three standard suites. ALPN offers
 * http/1.1 only (set in main.c), so the stream never runs over HTTP/2.
 *
 * Certificate reload: lws 4.1 hands the vhost's SSL_CTX to the first
 * protocol's callback (LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS)
 * while it creates the vhost; http.c passes it to tls_server_ctx_ready.
 * A reload reads the new certificate chain and key, checks that they
 * belong together, and only then installs them in that SSL_CTX with
 * SSL_CTX_use_cert_and_key. OpenSSL copies the context's certificate into
 * each SSL object when a handshake starts, so open connections keep the
 * certificate they began with, and new handshakes get the new one.
 */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "log.h"

/* ECDHE with AES-GCM or ChaCha20-Poly1305, for TLS 1.2 clients. */
#define TLS12_CIPHERS                                                        \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"         \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"         \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_CIPHERS                                                        \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"                     \
	"TLS_CHACHA20_POLY1305_SHA256"

/* The listener's SSL_CTX, owned by lws; NULL until the vhost exists. One
 * canaryd process has one listener, so one pointer is enough. */
static SSL_CTX *server_ctx;

void tls_configure(struct server *srv, struct lws_context_creation_info *info)
{
	if (!srv->cfg.tls_cert[0])
		return;
	info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info->ssl_cert_filepath = srv->cfg.tls_cert;
	info->ssl_private_key_filepath = srv->cfg.tls_key;
	info->ssl_cipher_list = TLS12_CIPHERS;
	info->tls1_3_plus_cipher_list = TLS13_CIPHERS;
	info->ssl_options_set = (long)(SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 |
				       SSL_OP_NO_TLSv1_1 | SSL_OP_NO_COMPRESSION |
				       SSL_OP_NO_RENEGOTIATION |
				       SSL_OP_CIPHER_SERVER_PREFERENCE);
}

int tls_server_ctx_ready(void *ssl_ctx)
{
	SSL_CTX *ctx = ssl_ctx;

	if (!ctx)
		return 0;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		log_error("tls: setting TLS 1.2 as the minimum version failed");
		return -1;
	}
	server_ctx = ctx;
	return 0;
}

/* Writes the first queued OpenSSL error into buf, or "unknown error". */
static void tls_last_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown error");
	ERR_clear_error();
}

/* Formats the certificate's serial number in hex into buf. */
static void tls_serial_text(X509 *cert, char *buf, size_t len)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	snprintf(buf, len, "%s", hex ? hex : "?");
	OPENSSL_free(hex);
	BN_free(bn);
}

/*
 * Reads the leaf certificate, the rest of the chain and the private key.
 * Returns 0 with *cert, *chain and *key set (caller frees), or -1 with
 * the reason in err.
 */
static int tls_read_files(const char *cert_path, const char *key_path,
			  X509 **cert, STACK_OF(X509) **chain, EVP_PKEY **key,
			  char *err, size_t errlen)
{
	FILE *f = NULL;
	X509 *extra = NULL;
	char detail[200];
	int rc = -1;

	*cert = NULL;
	*chain = NULL;
	*key = NULL;

	f = fopen(cert_path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot open tls_cert %.200s: %.200s", cert_path,
			 strerror(errno));
		goto out;
	}
	*cert = PEM_read_X509(f, NULL, NULL, NULL);
	if (!*cert) {
		tls_last_error(detail, sizeof(detail));
		snprintf(err, errlen, "tls_cert %.200s holds no PEM certificate: %.200s",
			 cert_path, detail);
		goto out;
	}
	*chain = sk_X509_new_null();
	if (!*chain) {
		snprintf(err, errlen, "out of memory reading %.200s", cert_path);
		goto out;
	}
	while ((extra = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(*chain, extra)) {
			X509_free(extra);
			snprintf(err, errlen, "out of memory reading %.200s", cert_path);
			goto out;
		}
	}
	/* The loop ends with "no start line" at the end of the file. */
	ERR_clear_error();
	fclose(f);

	f = fopen(key_path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot open tls_key %.200s: %.200s", key_path,
			 strerror(errno));
		goto out;
	}
	*key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	if (!*key) {
		tls_last_error(detail, sizeof(detail));
		snprintf(err, errlen, "tls_key %.200s holds no PEM private key (or one with a passphrase): %.200s",
			 key_path, detail);
		goto out;
	}
	if (X509_check_private_key(*cert, *key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "tls_key %.200s does not belong to the certificate in %.200s",
			 key_path, cert_path);
		goto out;
	}
	rc = 0;

out:
	if (f)
		fclose(f);
	if (rc) {
		X509_free(*cert);
		sk_X509_pop_free(*chain, X509_free);
		EVP_PKEY_free(*key);
		*cert = NULL;
		*chain = NULL;
		*key = NULL;
	}
	return rc;
}

int tls_reload_certificates(struct server *srv)
{
	const char *cert_path = srv->cfg.tls_cert;
	const char *key_path = srv->cfg.tls_key;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	char err[512], serial[80];
	int rc = -1;

	if (!cert_path[0])
		return 0;
	if (!server_ctx) {
		log_error("tls: reload failed: the listener's TLS context is not known; restart canaryd to use a new certificate");
		return -1;
	}
	if (tls_read_files(cert_path, key_path, &cert, &chain, &key, err,
			   sizeof(err))) {
		log_error("tls: reload failed, keeping the current certificate: %s", err);
		goto out;
	}
	/* Replaces the certificate, key and chain for this key type in one
	 * call, after the pair was checked above. */
	if (SSL_CTX_use_cert_and_key(server_ctx, cert, key, chain, 1) != 1) {
		tls_last_error(err, sizeof(err));
		log_error("tls: reload failed, keeping the current certificate: installing %s: %s",
			  cert_path, err);
		goto out;
	}
	tls_serial_text(cert, serial, sizeof(serial));
	log_info("tls: reloaded %s (serial %s, %d chain certificates); new handshakes use it",
		 cert_path, serial, sk_X509_num(chain));
	rc = 0;

out:
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	return rc;
}
