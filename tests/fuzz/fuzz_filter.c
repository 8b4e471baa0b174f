/*
 * Subscription filters: the JSON text goes through the same strict parser
 * as every WebSocket message, then mt_filter_parse. An accepted filter is
 * narrowed to a tenant's domains, added to and removed from an index, and
 * matched against a few signals; a narrowed filter must never match a
 * domain outside the tenant's list.
 */
#include <stdint.h>

#include "signal/batch.h"
#include "filter.h"
#include "fuzz_common.h"

static const char tenant[] = "bank.example,xn--bcher-kva.example";

static void sample_signal(struct sg_signal *s, const char *domain, int i)
{
	memset(s, 0, sizeof(*s));
	s->seq = (uint64_t)i + 1;
	s->observed_us = 1767225600000000LL;
	s->event_type = (uint8_t)(i % SG_EVENT_COUNT);
	s->confidence = (uint8_t)(i % SG_CONFIDENCE_COUNT);
	s->proxy_type = (uint8_t)(i % SG_PROXY_COUNT);
	s->stage = (uint8_t)(i % SG_STAGE_COUNT);
	s->action = (uint8_t)(i % SG_ACTION_COUNT);
	s->credential_leaked = SG_BOOL_ABSENT;
	snprintf(s->region, sizeof(s->region), "%s", i % 2 ? "DE" : "ZZ");
	snprintf(s->domain, sizeof(s->domain), "%s", domain);
}

static void count_match(void *owner, void *ctx)
{
	(void)owner;
	(*(int *)ctx)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const domains[] = {
		"bank.example", "login.bank.example", "shop.example",
		"xn--bcher-kva.example", "badbank.example",
	};
	char err[256];
	json_t *obj = sg_json_parse_strict((const char *)data, size, err, sizeof(err));
	mt_filter *f = NULL;
	mt_index *ix = NULL;
	int owner = 0;

	if (!obj)
		return 0;
	if (mt_filter_parse(obj, &f, err, sizeof(err)) != 0) {
		FUZZ_ASSERT(memchr(err, '\0', sizeof(err)));
		json_decref(obj);
		return 0;
	}
	FUZZ_ASSERT(f);
	FUZZ_ASSERT(mt_filter_restrict(f, tenant, err, sizeof(err)) == 0);

	ix = mt_index_new();
	FUZZ_ASSERT(ix);
	FUZZ_ASSERT(mt_index_add(ix, f, &owner) == 0);
	for (int i = 0; i < 10; i++) {
		struct sg_signal s;
		const char *d = domains[i % 5];
		int in_tenant = !strcmp(d, "bank.example") ||
				!strcmp(d, "xn--bcher-kva.example");
		int found = 0;
		bool direct;

		sample_signal(&s, d, i);
		direct = mt_filter_match(f, &s);
		mt_index_match(ix, &s, count_match, &found);
		FUZZ_ASSERT(found == (direct ? 1 : 0));
		FUZZ_ASSERT(!direct || in_tenant);
	}
	mt_index_remove(ix, f);
	FUZZ_ASSERT(mt_index_size(ix) == 0);
	mt_index_free(ix);
	mt_filter_free(f);
	json_decref(obj);
	return 0;
}
