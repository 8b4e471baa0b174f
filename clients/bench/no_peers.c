/*
 * Stand-ins for the peer targets when canary-bench is built without
 * libmosquitto and hiredis (Debian: libmosquitto-dev, libhiredis-dev).
 */
#include "bench.h"

int bench_mosquitto(struct bench_run *r)
{
	bench_fail(r, "this canary-bench was built without libmosquitto; install libmosquitto-dev and rebuild");
	return -1;
}

int bench_redis(struct bench_run *r)
{
	bench_fail(r, "this canary-bench was built without hiredis; install libhiredis-dev and rebuild");
	return -1;
}
