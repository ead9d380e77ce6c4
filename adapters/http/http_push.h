/*  http_push - `sluice-http push`: the webhook sink (a subscription's
 *  messages POSTed to a URL, signed per Standard Webhooks). Called by
 *  sluice-http.c's dispatch; single-threaded unless --concurrency.  */
#ifndef HTTP_PUSH_H
#define HTTP_PUSH_H

/* Run `sluice-http push` with ARGV[0] = "push". Returns the exit code. */
int http_push_main(int argc, char **argv);

#endif
