/*  http_sign - Standard Webhooks signatures for `sluice-http push`: the
 *  secrets of a --secret-file (lines of whsec_<base64>, several during a
 *  rotation) and the webhook-signature value "v1,<base64 HMAC-SHA256 of
 *  ID.TIMESTAMP.BODY>" with one signature per secret, space separated.
 *  Owns the decoded secrets (wiped when destroyed). No state besides the
 *  object; any thread, one object per thread. Sends nothing.  */
#ifndef HTTP_SIGN_H
#define HTTP_SIGN_H
#include <stddef.h>
#include <stdint.h>

typedef struct http_sign http_sign_t;

/* The most secrets one file may hold. */
#define HTTP_SIGN_MAX_SECRETS 8

/* Load the secrets of PATH: one "whsec_<base64>" per line (standard
 * base64, 24 to 64 bytes once decoded, as the convention asks); blank
 * lines and lines starting with '#' are skipped. Returns 0 and *out (caller owns;
 * http_sign_destroy), SL_EINVAL with ERR naming the line when a line is
 * not a secret or the file holds none or too many, SL_ESYS when PATH
 * cannot be read, SL_ENOMEM. */
int http_sign_load(const char *path, http_sign_t **out, char *err,
                   size_t errlen);

/* Wipe and free. NULL-safe; sets *self_p to NULL. */
void http_sign_destroy(http_sign_t **self_p);

/* How many secrets SELF holds (>= 1). */
size_t http_sign_count(const http_sign_t *self);

/* The webhook-signature value for message ID sent at unix second
 * TIMESTAMP with BODY (LEN bytes, may be NULL when LEN is 0) into OUT
 * (OUTLEN bytes): "v1,SIG" per secret in file order, space separated.
 * Returns 0, or SL_ETOOBIG when OUT is too small (HTTP_SIGN_HEADER_MAX
 * always suffices). */
int http_sign_header(const http_sign_t *self, const char *id,
                     uint64_t timestamp, const void *body, size_t len,
                     char *out, size_t outlen);

/* Room for any header http_sign_header makes: "v1," + 44 base64 + ' '. */
#define HTTP_SIGN_HEADER_MAX (HTTP_SIGN_MAX_SECRETS * 48 + 1)

#endif
