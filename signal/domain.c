/*
 * Domain name normalisation.
 *
 * Every domain the product compares or stores goes through
 * sg_domain_normalize, so that one form exists: lower case, no trailing dot,
 * internationalised labels as A-labels (`xn--...`). Names with non-ASCII
 * bytes or an `xn--` label are converted by libidn2 with UTS #46
 * non-transitional processing, and with transitional processing when that
 * fails. The result must then be a host name of at most 253 bytes, with
 * at least two labels. Each label has 1..63 letters, digits or hyphens and
 * neither starts nor ends with a hyphen. The top-level label must not be
 * all digits, so an IPv4 address is not taken for a domain.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "signal.h"
#include "signal_ingest.h"

/* Maximum input length before conversion, in bytes. */
#define DOMAIN_INPUT_MAX 1024

static bool has_non_ascii(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s >= 0x80)
			return true;
	}
	return false;
}

static bool has_a_label(const char *s)
{
	for (const char *p = s; *p; p++) {
		if ((p == s || p[-1] == '.') && strncasecmp(p, "xn--", 4) == 0)
			return true;
	}
	return false;
}

/* Converts name to an A-label form with libidn2; NULL or a reason. */
static const char *to_ascii(const char *name, char *out, size_t cap)
{
	char *converted = NULL;
	const char *why = NULL;
	int rc = idn2_to_ascii_8z(name, &converted,
				  IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);

	if (rc != IDN2_OK)
		rc = idn2_to_ascii_8z(name, &converted,
				      IDN2_NFC_INPUT | IDN2_TRANSITIONAL);
	if (rc != IDN2_OK) {
		why = idn2_strerror(rc);
		goto out;
	}
	if (strlen(converted) >= cap) {
		why = "the name is longer than 253 bytes";
		goto out;
	}
	memcpy(out, converted, strlen(converted) + 1);

out:
	idn2_free(converted);
	return why;
}

/* Checks one label of a converted name; NULL or a reason. */
static const char *check_label(const char *label, size_t len)
{
	if (len == 0)
		return "it has an empty label; remove the extra dot";
	if (len > 63)
		return "a label is longer than 63 bytes";
	if (label[0] == '-' || label[len - 1] == '-')
		return "a label starts or ends with a hyphen";
	for (size_t i = 0; i < len; i++) {
		char c = label[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return "it has a character other than a-z, 0-9, hyphen and dot";
	}
	return NULL;
}

/* Checks the whole converted name in place; NULL or a reason. */
static const char *check_host_name(const char *name)
{
	size_t labels = 0;
	const char *start = name;
	const char *last = name;
	size_t last_len = 0;

	if (strlen(name) > SG_DOMAIN_MAX)
		return "the name is longer than 253 bytes";
	for (;;) {
		const char *dot = strchr(start, '.');
		size_t len = dot ? (size_t)(dot - start) : strlen(start);
		const char *why = check_label(start, len);

		if (why)
			return why;
		labels++;
		last = start;
		last_len = len;
		if (!dot)
			break;
		start = dot + 1;
	}
	if (labels < 2)
		return "it has a single label; send a full name such as example.com";
	if (strspn(last, "0123456789") == last_len)
		return "the top-level label is all digits, which is an address, not a name";
	return NULL;
}

int sg_domain_normalize(const char *in, bool allow_wildcard, char *out,
			char *err, size_t errlen)
{
	char work[DOMAIN_INPUT_MAX + 1];
	char converted[DOMAIN_INPUT_MAX + 1];
	char quoted[SG_QUOTE_MAX + 8];
	const char *name = in;
	const char *why = NULL;
	bool wildcard = false;
	bool stripped = false;
	size_t len = 0;
	size_t prefix = 0;

	if (!in) {
		snprintf(err, errlen, "no domain name given; send a name such as example.com");
		return -1;
	}
	len = strlen(in);
	sg_quote(in, len, quoted, sizeof(quoted));
	if (len > DOMAIN_INPUT_MAX) {
		why = "the name is longer than 253 bytes";
		goto fail;
	}

	if (allow_wildcard && strncmp(name, "*.", 2) == 0) {
		wildcard = true;
		name += 2;
	}

	/* Why: libidn2 does not strip the root dot, and a trailing dot is the
	 * same name in DNS, so it goes before conversion. */
	len = strlen(name);
	memcpy(work, name, len + 1);
	if (len > 0 && work[len - 1] == '.') {
		work[--len] = '\0';
		stripped = true;
	}
	if (len == 0) {
		why = "the name is empty";
		goto fail;
	}

	if (has_non_ascii(work) || has_a_label(work)) {
		why = to_ascii(work, converted, sizeof(converted));
		if (why)
			goto fail;
		/* A full-width or ideographic dot at the end maps to '.' only
		 * now; one root dot is allowed in all. */
		len = strlen(converted);
		if (!stripped && len > 0 && converted[len - 1] == '.')
			converted[--len] = '\0';
	} else {
		for (size_t i = 0; i <= len; i++) {
			char c = work[i];

			converted[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
		}
	}

	why = check_host_name(converted);
	if (why)
		goto fail;

	prefix = wildcard ? 2 : 0;
	if (strlen(converted) + prefix > SG_DOMAIN_MAX) {
		why = "the name is longer than 253 bytes";
		goto fail;
	}
	if (wildcard)
		memcpy(out, "*.", 2);
	memcpy(out + prefix, converted, strlen(converted) + 1);
	return 0;

fail:
	if (err && errlen > 0)
		snprintf(err, errlen, "\"%s\" is not a valid domain name: %s",
			 quoted, why);
	return -1;
}
