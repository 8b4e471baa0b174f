/*
 * Helpers shared by the libFuzzer targets. A target aborts (through
 * FUZZ_ASSERT) when an invariant of our code breaks, so that libFuzzer
 * records the input as a crash; a rejected input is never a finding.
 */
#ifndef CANARY_FUZZ_COMMON_H
#define CANARY_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signal/signal.h"

#define FUZZ_ASSERT(cond)                                                    \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",     \
				__FILE__, __LINE__, #cond);                  \
			abort();                                             \
		}                                                            \
	} while (0)

/* Checks the fields that every accepted signal must satisfy. */
static inline void fuzz_check_signal(const struct sg_signal *s)
{
	FUZZ_ASSERT(s->event_type < SG_EVENT_COUNT);
	FUZZ_ASSERT(s->confidence < SG_CONFIDENCE_COUNT);
	FUZZ_ASSERT(s->proxy_type < SG_PROXY_COUNT);
	FUZZ_ASSERT(s->stage < SG_STAGE_COUNT);
	FUZZ_ASSERT(s->action < SG_ACTION_COUNT);
	FUZZ_ASSERT(memchr(s->domain, '\0', sizeof(s->domain)));
	FUZZ_ASSERT(s->domain[0]);
	FUZZ_ASSERT(memchr(s->region, '\0', sizeof(s->region)));
	FUZZ_ASSERT(memchr(s->sensor, '\0', sizeof(s->sensor)));
	FUZZ_ASSERT(memchr(s->campaign_id, '\0', sizeof(s->campaign_id)));
	FUZZ_ASSERT(memchr(s->infra_id, '\0', sizeof(s->infra_id)));
}

/* Compares the fields that survive the wire encodings. */
static inline int fuzz_same_signal(const struct sg_signal *a,
				   const struct sg_signal *b)
{
	return a->observed_us == b->observed_us &&
	       a->event_type == b->event_type &&
	       a->confidence == b->confidence &&
	       a->proxy_type == b->proxy_type && a->stage == b->stage &&
	       a->action == b->action &&
	       a->credential_leaked == b->credential_leaked &&
	       !strcmp(a->region, b->region) && !strcmp(a->domain, b->domain) &&
	       !strcmp(a->sensor, b->sensor) &&
	       !strcmp(a->campaign_id, b->campaign_id) &&
	       !strcmp(a->infra_id, b->infra_id);
}

#endif
