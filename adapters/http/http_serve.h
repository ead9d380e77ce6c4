/*  http_serve - `sluice-http serve`: HTTP ingest and pull on
 *  libmicrohttpd (docs/adapters.md, "sluice-http serve"). Called by
 *  sluice-http.c's dispatch on the main thread; it starts the HTTP
 *  thread(s) and the broker thread (http_broker.h) and waits for SIGTERM.  */
#ifndef HTTP_SERVE_H
#define HTTP_SERVE_H

/* Run `sluice-http serve` with ARGV[0] = "serve". Returns the exit code. */
int http_serve_main(int argc, char **argv);

#endif
