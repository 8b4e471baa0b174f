/*
 * Private to the matcher library: what the subscription index needs to know
 * about a filter's domains.
 */
#ifndef CANARY_FILTER_INTERNAL_H
#define CANARY_FILTER_INTERNAL_H

#include "filter.h"
#include "table.h"

/*
 * Returns the smallest set of exact names (string-keyed table) that holds
 * the domain of every signal the filter matches. Returns NULL when no such
 * set exists, because the filter has neither a domain field nor a tenant
 * restriction, or has a wildcard pattern and no tenant restriction. An
 * empty set means the filter matches no signal. The set stays valid until the filter is freed or
 * restricted again.
 */
const struct mt_table *mt_filter_required_names(const mt_filter *f);

/* Most proper suffixes of a domain name: one per dot. */
#define MT_MAX_SUFFIXES (SG_DOMAIN_MAX / 2)

/*
 * A signal's domain with the hashes of the name and of each proper suffix
 * after a dot, computed once and reused for every filter it is tried on.
 */
struct mt_domain_probe {
	bool valid;             /* false when the domain is not NUL-ended */
	const char *name;
	uint64_t hash;
	size_t nsuffixes;
	const char *suffixes[MT_MAX_SUFFIXES];
	uint64_t suffix_hashes[MT_MAX_SUFFIXES];
};

/* Fills probe from the signal's domain field (SG_DOMAIN_MAX + 1 bytes). */
void mt_domain_probe_init(struct mt_domain_probe *probe,
			  const char domain[SG_DOMAIN_MAX + 1]);

/*
 * Same result as mt_filter_match(f, s), with probe made from s->domain.
 * known is NULL or a set from mt_filter_required_names(f) that the caller
 * already found s->domain in, so that lookup is skipped.
 */
bool mt_filter_match_probe(const mt_filter *f, const struct sg_signal *s,
			   const struct mt_domain_probe *probe,
			   const struct mt_table *known);

#endif
