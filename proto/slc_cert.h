/*  slc_cert - CurveZMQ key pairs and the files that hold them: generate,
 *  save (a ZPL certificate czmq's zcert_load also reads, plus a .pub file
 *  with the Z85 public key), load, and parse a key given as text or file.
 *  Shared by the broker (its server key, admin.cert) and the SDK (client
 *  credentials). Pure functions on caller memory; any thread. It does not
 *  decide who may connect: that is the broker's key registry.  */
#ifndef SLC_CERT_H
#define SLC_CERT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sluice_codes.h"

#define SLC_KEY_LEN 32          /* bytes of a Curve25519 key */
#define SLC_Z85_LEN 40          /* characters of its Z85 text */

/* A key pair, or a public key alone (has_secret false, secret_key zero).
 * Holds a secret: wipe it with slc_cert_wipe when done. */
typedef struct {
    uint8_t public_key[SLC_KEY_LEN];
    uint8_t secret_key[SLC_KEY_LEN];
    bool has_secret;
} slc_cert_t;

/* Fill CERT with a fresh key pair. 0, or SL_ESYS when libsodium cannot be
 * initialised. */
int slc_cert_generate(slc_cert_t *cert);

/* Write CERT (which must hold a secret) for NAME (copied into the file's
 * metadata; 1-255 printable bytes without '"'). CERT_PATH gets both keys
 * in ZPL text, mode 0600; PUB_PATH the Z85 public key and a newline, mode
 * 0644. Either path may be NULL to skip that file. Each file is written to
 * a temporary file (O_CREAT|O_EXCL) in the same directory, fsynced, and
 * renamed into place without replacing anything, so a crash leaves either
 * no file or the whole file. If the second file fails, the first is
 * removed again. Returns 0, SL_EEXIST (a target already exists: nothing
 * written), SL_EINVAL (bad NAME, no secret, both paths NULL), SL_ESYS (I/O
 * error). On failure ERR (ERRLEN bytes, may be NULL) says why. */
int slc_cert_save(const slc_cert_t *cert, const char *name,
                  const char *cert_path, const char *pub_path,
                  char *err, size_t errlen);

/* Read the certificate at PATH into *CERT: a ZPL certificate (curve/
 * public-key, optionally curve/secret-key), or a file holding only a Z85
 * public key (a .pub file). has_secret tells which. A secret key must
 * belong to the public key. Returns 0, SL_ENOTFOUND (no such file),
 * SL_EDENIED (the file holds a secret key and is readable by group or
 * others, or cannot be opened for lack of permission), SL_EINVAL (not a
 * certificate), SL_ESYS (I/O error). On failure *CERT is wiped and ERR
 * (may be NULL) says why, naming PATH. */
int slc_cert_load(const char *path, slc_cert_t *cert, char *err,
                  size_t errlen);

/* Check that CERT's secret key belongs to its public key. 0, SL_EINVAL
 * (they do not match, or there is no secret), SL_ESYS (libsodium cannot be
 * initialised); ERR (may be NULL) says why. */
int slc_cert_check(const slc_cert_t *cert, char *err, size_t errlen);

/* Parse TEXT_OR_PATH as a public key: a 40-character Z85 key, or the path
 * of a file holding one (a .pub file, or a certificate: its public key; a
 * secret in it is not read into KEY and its mode is not checked). An
 * existing file wins over key text. Returns 0 and KEY, or SL_EINVAL with
 * the reason in ERR (may be NULL). */
int slc_key_parse(const char *text_or_path, uint8_t key[SLC_KEY_LEN],
                  char *err, size_t errlen);

/* Decode exactly SLC_Z85_LEN characters of Z85 TEXT into KEY. 0 or
 * SL_EINVAL with the reason in ERR (may be NULL). */
int slc_key_decode(const char *text, uint8_t key[SLC_KEY_LEN], char *err,
                   size_t errlen);

/* Z85 text of KEY into OUT (SLC_Z85_LEN characters and a NUL). */
void slc_key_z85(const uint8_t key[SLC_KEY_LEN], char out[SLC_Z85_LEN + 1]);

/* Overwrite the whole of CERT with zeros (sodium_memzero). NULL-safe. */
void slc_cert_wipe(slc_cert_t *cert);

#endif
