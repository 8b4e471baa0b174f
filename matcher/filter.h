/*
 * Subscription filters and the subscription index.
 *
 * A filter is a JSON object. Every field given must match (AND), the values
 * listed within one field are alternatives (OR), and an omitted field
 * matches everything, so {} and a NULL filter match every signal.
 *
 *   domains        list of names or patterns, at most MT_MAX_DOMAINS
 *   event_types    credential_testing, account_probe, sim_recon, fraud_test
 *   stages         TESTING, ATTACK
 *   proxy_types    datacenter, residential, mobile, tor
 *   regions        two letters, stored upper case; signals carry an
 *                  ISO 3166-1 alpha-2 code, EU or ZZ
 *   actions        monitor, step_up, block, alert_soc
 *   confidences    low, medium, high
 *   min_confidence low, medium or high: that level and every higher one
 *   threat_only    true: confidence medium or high; false: no condition
 *
 * Examples:
 *
 *   {"domains":["example.com"]}            example.com only
 *   {"domains":["*.example.com"]}          a.example.com and b.a.example.com,
 *                                          but neither example.com itself
 *                                          nor badexample.com
 *   {"domains":["example.com","*.example.com"]}  the name and all below it
 *   {"event_types":["sim_recon"],"min_confidence":"medium"}
 *                                          sim_recon at medium or high
 *   {"stages":["ATTACK"],"regions":["de","FR"]}  attacks from DE or FR
 *   {"threat_only":true}                   confidence medium or high
 *
 * Values of the enumerated fields and of regions are accepted in any case,
 * as ingest accepts them: "attack" is ATTACK and "de" is DE. Signals carry
 * the names above. Duplicates within a list are harmless.
 *
 * Domains compare case-insensitively, without a trailing dot, as A-labels,
 * so "BÜCHER.example." and "xn--bcher-kva.example" are the same name, and
 * "*.bücher.example" matches "shop.xn--bcher-kva.example". A wildcard is
 * allowed only as the whole first label and stands for one or more labels
 * in front of the rest: "*.example.com" matches "a.b.example.com" but not
 * "example.com.evil.org". "*", "a*.example.com", "x.*.com" and "*.com" (a
 * single label after the wildcard) are rejected.
 *
 * confidences, min_confidence and threat_only all narrow the confidence; a
 * combination that leaves no confidence, such as {"confidences":["low"],
 * "threat_only":true}, is rejected because it could never match.
 *
 * These are errors, each reported with the field and the value:
 * an unknown field, a value of the wrong JSON type, an unknown value, an
 * empty string, an empty list (omit the field to match all), a malformed
 * domain or misplaced wildcard, and more than MT_MAX_DOMAINS patterns.
 * For example: filter.stages: "attak" is not one of TESTING, ATTACK
 *
 * Nothing here knows about LMDB or sockets.
 */
#ifndef CANARY_FILTER_H
#define CANARY_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../signal/signal.h"

typedef struct mt_filter mt_filter;

/* Most domain patterns in one filter; larger watchlists are rejected. */
#define MT_MAX_DOMAINS 10000

/*
 * Builds a filter from a JSON object with the members domains,
 * event_types, stages, proxy_types, regions, actions, confidences (lists
 * of strings), min_confidence (string) and threat_only (boolean). Any
 * other member, an unknown value, a wrong type or a malformed domain is
 * an error. NULL or an empty object makes a filter that matches all.
 * Returns 0 with *out set, or -1 with a message naming the field and value
 * in err (errlen bytes).
 */
int mt_filter_parse(const json_t *obj, mt_filter **out, char *err,
		    size_t errlen);

/* Frees f; NULL is allowed. */
void mt_filter_free(mt_filter *f);

/* Returns true when the signal passes every field of the filter. */
bool mt_filter_match(const mt_filter *f, const struct sg_signal *s);

/*
 * Narrows f to a tenant's domains (comma-separated names, normalised here
 * again, blanks around a name ignored, no wildcards): afterwards f matches
 * only signals whose domain is exactly one of the names, in addition to
 * its own fields. A second call narrows to the names in both lists.
 * Returns 0, or -1 with a message in err on a malformed list, leaving f
 * unchanged. Do not call it while f is in an index.
 */
int mt_filter_restrict(mt_filter *f, const char *tenant_domains, char *err,
		       size_t errlen);

/*
 * The subscription index: the set of live filters, each with an opaque
 * owner pointer. mt_index_match calls found(owner) once for each filter
 * that matches the signal, in no particular order.
 *
 * Filters whose domains are exact names (or that are restricted to a
 * tenant's names) are found by a hash lookup of the signal's domain,
 * wildcard patterns by a lookup of each suffix of the domain, and filters
 * without domains through one bit set per field value, so the cost of a
 * match grows with the number of candidate filters, plus one word per 64
 * filters without domains.
 *
 * An index is not thread-safe: use it, including mt_index_match, from one
 * thread. A found callback may add and remove entries. An entry removed
 * during a match is not reported afterwards. An entry added during a match
 * may or may not be reported for that signal. mt_index_free must not be
 * called from a callback.
 */
typedef struct mt_index mt_index;

/* Returns an empty index, or NULL when out of memory. */
mt_index *mt_index_new(void);

/* Frees the index and its entries, but neither filters nor owners. */
void mt_index_free(mt_index *ix);

/*
 * Adds f (not copied; it must outlive its entry and must not be restricted
 * while added). Returns 0, or -1 when f is already in the index or memory
 * ran out; the index is then unchanged.
 */
int mt_index_add(mt_index *ix, const mt_filter *f, void *owner);

/*
 * Removes the entry added with this filter; f may be freed right after.
 * Does nothing when f is not in the index. Costs one step per exact name
 * of the filter, independent of the index size.
 */
void mt_index_remove(mt_index *ix, const mt_filter *f);

/* Returns the number of entries (removed ones no longer count). */
size_t mt_index_size(const mt_index *ix);

typedef void (*mt_found_fn)(void *owner, void *ctx);

/*
 * Calls found(owner, ctx) once for each entry whose filter matches s.
 * ix is const because matching never changes which entries it holds;
 * callbacks may still add and remove entries as described above.
 */
void mt_index_match(const mt_index *ix, const struct sg_signal *s,
		    mt_found_fn found, void *ctx);

#endif
