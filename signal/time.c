/*
 * RFC 3339 timestamps.
 *
 * Accepted: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), with `t` and
 * `z` in lower case too. A time without an offset is rejected, never read as
 * local time. Fractions keep microseconds; further digits (at most 9 in all)
 * are cut, not rounded. Impossible dates (February 30, hour 24, minute 60)
 * are rejected.
 *
 * Leap seconds: a second of 60 is accepted only when the time is 23:59 in
 * UTC after the offset is applied. Because Unix time has no leap seconds,
 * it is stored as 23:59:59.999999 of that day, which keeps the order of
 * events around it. The year must stay within 0000..9999 in UTC.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "signal.h"
#include "signal_ingest.h"

#define US_PER_SECOND INT64_C(1000000)
#define SECONDS_PER_DAY INT64_C(86400)

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (int64_t)doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool is_leap_year(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int year, int month)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30,
				      31, 31, 30, 31, 30, 31 };

	if (month == 2 && is_leap_year(year))
		return 29;
	return days[month - 1];
}

/* Reads exactly n digits at text[*pos]; returns false when one is missing. */
static bool read_digits(const char *text, size_t len, size_t *pos, int n,
			int *value)
{
	int v = 0;

	if (*pos + (size_t)n > len)
		return false;
	for (int i = 0; i < n; i++) {
		char c = text[*pos + (size_t)i];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*pos += (size_t)n;
	*value = v;
	return true;
}

static bool expect_char(const char *text, size_t len, size_t *pos, char c)
{
	if (*pos >= len || text[*pos] != c)
		return false;
	(*pos)++;
	return true;
}

/* Reads ".digits" if present into microseconds; NULL or a reason. */
static const char *read_fraction(const char *text, size_t len, size_t *pos,
				 int64_t *frac_us)
{
	int digits = 0;
	int64_t value = 0;

	*frac_us = 0;
	if (*pos >= len || text[*pos] != '.')
		return NULL;
	(*pos)++;
	while (*pos < len && text[*pos] >= '0' && text[*pos] <= '9') {
		if (digits < 6)
			value = value * 10 + (text[*pos] - '0');
		digits++;
		(*pos)++;
	}
	if (digits == 0)
		return "has a '.' without fraction digits after the seconds";
	if (digits > 9)
		return "has more than 9 fraction digits; send at most microseconds";
	for (int i = digits; i < 6; i++)
		value *= 10;
	*frac_us = value;
	return NULL;
}

/* Reads Z or +HH:MM / -HH:MM into seconds east of UTC; NULL or a reason. */
static const char *read_offset(const char *text, size_t len, size_t *pos,
			       int *offset_s)
{
	int sign = 0;
	int hh = 0;
	int mm = 0;

	if (*pos >= len)
		return "has no UTC offset; append Z or an offset like +02:00";
	if (text[*pos] == 'Z' || text[*pos] == 'z') {
		(*pos)++;
		*offset_s = 0;
		return NULL;
	}
	if (text[*pos] == '+')
		sign = 1;
	else if (text[*pos] == '-')
		sign = -1;
	else
		return "has no valid UTC offset; append Z or an offset like +02:00";
	(*pos)++;
	if (!read_digits(text, len, pos, 2, &hh) ||
	    !expect_char(text, len, pos, ':') ||
	    !read_digits(text, len, pos, 2, &mm))
		return "has a malformed UTC offset; write it as +HH:MM or -HH:MM";
	if (hh > 23 || mm > 59)
		return "has a UTC offset out of range; use -23:59 to +23:59";
	*offset_s = sign * (hh * 3600 + mm * 60);
	return NULL;
}

const char *sg_time_check(const char *text, size_t len, int64_t *us)
{
	size_t pos = 0;
	int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
	int offset_s = 0;
	int64_t frac_us = 0;
	const char *why = NULL;

	if (!read_digits(text, len, &pos, 4, &year) ||
	    !expect_char(text, len, &pos, '-') ||
	    !read_digits(text, len, &pos, 2, &month) ||
	    !expect_char(text, len, &pos, '-') ||
	    !read_digits(text, len, &pos, 2, &day))
		return "is not an RFC 3339 date-time; write it like 2026-01-03T04:05:06Z";
	if (pos >= len || (text[pos] != 'T' && text[pos] != 't'))
		return "has no time part; write it like 2026-01-03T04:05:06Z";
	pos++;
	if (!read_digits(text, len, &pos, 2, &hour) ||
	    !expect_char(text, len, &pos, ':') ||
	    !read_digits(text, len, &pos, 2, &minute) ||
	    !expect_char(text, len, &pos, ':') ||
	    !read_digits(text, len, &pos, 2, &second))
		return "has a malformed time; write it as HH:MM:SS";

	why = read_fraction(text, len, &pos, &frac_us);
	if (why)
		return why;
	why = read_offset(text, len, &pos, &offset_s);
	if (why)
		return why;
	if (pos != len)
		return "has extra characters after the UTC offset; remove them";

	if (month < 1 || month > 12)
		return "has a month out of range 01..12";
	if (day < 1 || day > days_in_month(year, month))
		return "is a date that does not exist; check the day of the month";
	if (hour > 23 || minute > 59 || second > 60)
		return "has a time out of range; use 00:00:00 to 23:59:59";

	int64_t days = days_from_civil(year, (unsigned)month, (unsigned)day);
	int64_t local_s = hour * 3600 + minute * 60;
	int64_t utc_s = days * SECONDS_PER_DAY + local_s - offset_s;
	int64_t result = 0;

	/* Why: Unix time has no leap second, so 23:59:60 UTC becomes the last
	 * microsecond of that day instead of the first of the next. */
	if (second == 60) {
		int64_t utc_of_day = ((utc_s % SECONDS_PER_DAY) + SECONDS_PER_DAY) %
				     SECONDS_PER_DAY;

		if (utc_of_day != 23 * 3600 + 59 * 60)
			return "has second 60, which is valid only at 23:59:60 UTC";
		result = (utc_s + 60) * US_PER_SECOND - 1;
	} else {
		result = (utc_s + second) * US_PER_SECOND + frac_us;
	}

	if (result < days_from_civil(0, 1, 1) * SECONDS_PER_DAY * US_PER_SECOND ||
	    result >= days_from_civil(10000, 1, 1) * SECONDS_PER_DAY * US_PER_SECOND)
		return "is outside the years 0000 to 9999 in UTC";
	*us = result;
	return NULL;
}

int sg_time_parse(const char *text, int64_t *us)
{
	if (!text || !us)
		return -1;
	return sg_time_check(text, strlen(text), us) ? -1 : 0;
}

void sg_time_format(int64_t us, char buf[32])
{
	int64_t seconds = us / US_PER_SECOND;
	int64_t frac = us % US_PER_SECOND;

	if (frac < 0) {
		frac += US_PER_SECOND;
		seconds--;
	}

	int64_t days = seconds / SECONDS_PER_DAY;
	int64_t of_day = seconds % SECONDS_PER_DAY;

	if (of_day < 0) {
		of_day += SECONDS_PER_DAY;
		days--;
	}

	int64_t year = 0;
	unsigned month = 0, day = 0;

	civil_from_days(days, &year, &month, &day);

	int n = snprintf(buf, 32, "%04lld-%02u-%02uT%02d:%02d:%02d",
			 (long long)year, month, day, (int)(of_day / 3600),
			 (int)(of_day / 60 % 60), (int)(of_day % 60));

	if (n < 0 || n >= 32)
		n = 0;
	if (frac == 0)
		snprintf(buf + n, 32 - (size_t)n, "Z");
	else if (frac % 1000 == 0)
		snprintf(buf + n, 32 - (size_t)n, ".%03dZ", (int)(frac / 1000));
	else
		snprintf(buf + n, 32 - (size_t)n, ".%06dZ", (int)frac);
}

int64_t sg_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * US_PER_SECOND + ts.tv_nsec / 1000;
}
