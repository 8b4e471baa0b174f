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

/*
 * Returns true when the filter has a domain field with wildcard patterns
 * and no tenant restriction, the case mt_filter_required_names leaves
 * out, with *exact set to its exact names and *wildcards to the suffixes
 * of its patterns ("example.com" for "*.example.com"). Both stay valid
 * until the filter is freed or restricted.
 */
bool mt_filter_domain_patterns(const mt_filter *f,
			       const struct mt_table **exact,
			       const struct mt_table **wildcards);

/* Bits of the region set: (first letter - 'A') * 26 + (second - 'A'). */
#define MT_REGION_BITS (26 * 26)

/* The enumerated fields of a filter as bit masks indexed by the enum
 * value (UINT32_MAX when omitted), and its region set. */
struct mt_field_masks {
	uint32_t event_types;
	uint32_t stages;
	uint32_t proxy_types;
	uint32_t actions;
	uint32_t confidences;
	bool has_regions;
	const uint64_t *regions;        /* MT_REGION_BITS bits */
};

void mt_filter_field_masks(const mt_filter *f, struct mt_field_masks *out);

/* Returns the region bit of a two-letter code, or -1. */
int mt_region_bit(const char region[3]);

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
