/*
 * The web console: the built files of console/ served at `/` and beside
 * it, with a strict Content-Security-Policy and the other security
 * headers. Only regular files inside the console directory are served.
 */
#ifndef CANARY_STATIC_H
#define CANARY_STATIC_H

#include "http.h"

enum static_result {
	STATIC_NOT_MINE,        /* not a console path: the caller routes on */
	STATIC_QUEUED           /* a response (file or problem) is queued */
};

/*
 * Serves GET uri from the console directory dir: `/` is index.html, and
 * `/NAME` or `/DIR/NAME` is a file with a known extension. Returns
 * STATIC_NOT_MINE when dir is empty (console disabled), when uri is under
 * /v1/, or when no such file exists; the caller then answers 404.
 */
enum static_result static_serve(struct http_req *req, const char *uri,
				const char *dir);

#endif
