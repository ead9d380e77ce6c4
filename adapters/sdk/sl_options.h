/*  sl_options - the client's options and keys, read and checked: defaults
 *  for zero fields, the CURVE key material (server key, client cert or key
 *  pair). Owns nothing past a call; the keys it reads are the caller's to
 *  wipe (sli_keys_wipe). Any thread (no state). Does not open sockets or
 *  files other than a certificate, and keeps no copy of the options.  */
#ifndef SL_OPTIONS_H
#define SL_OPTIONS_H
#include <stdbool.h>
#include <stdint.h>
#include "sluice.h"
#include "slc_cert.h"

/* The keys the options ask for, read and checked. */
typedef struct {
    bool curve;                 /* server_key given: the session does CURVE */
    uint8_t server_key[SLC_KEY_LEN];
    slc_cert_t client;          /* the client's key pair when curve */
} sli_keys_t;

/* IN (NULL: all defaults) with the defaults filled in for zero fields,
 * into OUT (its strings borrowed from IN or static). 0, or SL_EINVAL with
 * the reason in ERR (ERRLEN bytes; may be NULL/0). */
int sli_options_resolve(const sl_options_t *in, sl_options_t *out, char *err,
                        size_t errlen);

/* The keys O asks for, into K. 0 (K->curve false in plain text), or a code
 * with the reason in ERR (never quoting a secret); K is wiped on failure. */
int sli_keys_read(const sl_options_t *o, sli_keys_t *k, char *err, size_t errlen);

/* Forget K's secrets. */
void sli_keys_wipe(sli_keys_t *k);

#endif
