/*  sld_keys - the key files in the data dir: the broker's CurveZMQ key
 *  pair (server.cert, secret, mode 0600; server.pub), the local operators'
 *  admin key pair (admin.cert, admin.pub), and the `endpoint` file that
 *  tells `sluice --home` where the broker listens. Owns nothing after a
 *  call returns. Broker thread, start-up only.  */
#ifndef SLD_KEYS_H
#define SLD_KEYS_H
#include <stdbool.h>
#include <stddef.h>
#include "slc_cert.h"

/* Load the server and admin key pairs of DATA_DIR, creating each on first
 * start. A secret file readable by group or others, or one that does not
 * parse, is refused (the broker must not start). *created_admin says the
 * admin pair was made now. 0, or SL_EDENIED / SL_EINVAL / SL_ESYS with
 * the reason in ERR. Wipe both certs (slc_cert_wipe) when done. */
int sld_keys_setup(const char *data_dir, slc_cert_t *server, slc_cert_t *admin,
                   bool *created_admin, char *err, size_t errlen);

/* Write DATA_DIR/endpoint: ENDPOINT on the first line and, when PLAINTEXT,
 * "plaintext" on the second (clients then connect without keys). Replaced
 * atomically. 0 or SL_ESYS with the reason in ERR. */
int sld_keys_write_endpoint(const char *data_dir, const char *endpoint,
                            bool plaintext, char *err, size_t errlen);

#endif
