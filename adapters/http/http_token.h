/*  http_token - bearer tokens of `sluice-http serve`: the tokens file (one
 *  line per token: `SHA256-HEX IDENTITY CERTFILE`, '#' comments), the
 *  lookup of a presented token (hashed, compared in constant time), and
 *  `sluice-http token add`, which makes a token, prints it once and stores
 *  only its hash. The table is read-only once loaded: any thread may look
 *  up. Tokens are never logged.  */
#ifndef HTTP_TOKEN_H
#define HTTP_TOKEN_H
#include <stddef.h>
#include "sluice.h"

typedef struct http_tokens http_tokens_t;

/* Load PATH. Returns 0 and *out (caller owns; http_tokens_destroy), or
 * SL_ESYS (cannot read), SL_EINVAL (a bad line: ERR names it, or no token
 * at all), SL_EDENIED (the file is readable by group or others), SL_ENOMEM;
 * the reason in ERR. */
int http_tokens_load(const char *path, http_tokens_t **out, char *err,
                     size_t errlen);

/* http_tokens_load for a server PROG that maps tokens to identities,
 * which needs CONN's server key. HTTP_EXIT_OK and *out (caller owns), or
 * HTTP_EXIT_FAILED / HTTP_EXIT_USAGE after printing why. */
int http_tokens_open(const char *prog, const char *path, const sl_connect_t *conn,
                     http_tokens_t **out);

/* NULL-safe; sets *self_p to NULL. */
void http_tokens_destroy(http_tokens_t **self_p);

/* The identity index of TOKEN (0 .. http_tokens_identities - 1), or -1 when
 * no line holds its hash. */
int http_tokens_lookup(const http_tokens_t *self, const char *token);

/* How many distinct (identity, certificate) pairs the file names: the
 * adapter opens one client per pair. */
size_t http_tokens_identities(const http_tokens_t *self);

/* Identity I's name and certificate path. Borrowed, valid while SELF. */
const char *http_tokens_name(const http_tokens_t *self, size_t i);
const char *http_tokens_cert(const http_tokens_t *self, size_t i);

/* Run `sluice-http token add` with ARGV[0] = "token". Exit code. */
int http_token_main(int argc, char **argv);

/* The same for program PROGRAM ("sluice-console": the console shares the
 * tokens file's format and this code). Exit code. */
int http_token_run(const char *program, int argc, char **argv);

#endif
