/*
 * A minimal test harness: each CHECK prints the failing expression with its
 * file and line and counts it; check_summary() prints
 * "N passed, N failed" and returns the process exit status.
 */
#ifndef CANARY_TEST_CHECK_H
#define CANARY_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed;
static int check_failed;

#define CHECK(cond)                                                        \
	do {                                                               \
		if (cond) {                                                \
			check_passed++;                                    \
		} else {                                                   \
			check_failed++;                                    \
			fprintf(stderr, "%s:%d: check failed: %s\n",       \
				__FILE__, __LINE__, #cond);                \
		}                                                          \
	} while (0)

#define CHECK_STR(actual, expected)                                        \
	do {                                                               \
		const char *check_a_ = (actual);                           \
		const char *check_e_ = (expected);                         \
		if (check_a_ && check_e_ && !strcmp(check_a_, check_e_)) { \
			check_passed++;                                    \
		} else {                                                   \
			check_failed++;                                    \
			fprintf(stderr,                                    \
				"%s:%d: %s is \"%s\", expected \"%s\"\n",  \
				__FILE__, __LINE__, #actual,               \
				check_a_ ? check_a_ : "(null)",            \
				check_e_ ? check_e_ : "(null)");           \
		}                                                          \
	} while (0)

static inline int check_summary(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}

#endif
