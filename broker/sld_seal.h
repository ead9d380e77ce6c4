/*  sld_seal - the cryptography of encryption at rest, on libsodium only:
 *  the master key file, XChaCha20-Poly1305 sealing with associated data,
 *  subkey derivation and keyed hashing. Owns nothing: every key and buffer
 *  is the caller's. Any thread (no state at all). It knows nothing of LMDB,
 *  records or key rotation: sld_store decides what is sealed and how.  */
#ifndef SLD_SEAL_H
#define SLD_SEAL_H
#include <stddef.h>
#include <stdint.h>
#include "slc.h"

/* Bytes of a key (master, data key, derived subkey). */
#define SLD_SEAL_KEY_LEN 32
/* Bytes of a nonce; random nonces of this size never repeat in practice. */
#define SLD_SEAL_NONCE_LEN 24
/* Bytes sld_seal_encrypt adds to the plaintext (the Poly1305 tag). */
#define SLD_SEAL_TAG_LEN 16
/* Bytes of a sld_seal_hash digest. */
#define SLD_SEAL_HASH_LEN 32
/* Longest key file sld_seal_key_load reads, bytes (longer: SL_EINVAL). */
#define SLD_SEAL_KEYFILE_MAX 4096

/* Initialise libsodium (idempotent, may be called any number of times).
 * Every other function here calls it when it needs to. 0 or SL_EINTERNAL. */
int sld_seal_init(void);

/* Read the master key from KEYFILE PATH into KEY (caller's buffer; wipe it
 * with sodium_memzero when done). The file holds the key as 64 hex
 * characters on one line; a trailing newline, blank lines and lines
 * starting with '#' are allowed. Every intermediate copy is wiped.
 * 0; SL_ENOTFOUND (no such file); SL_EDENIED (group or others have any
 * access bit, or the file cannot be read by us); SL_EINVAL (not a regular
 * file, too long, no key line, more than one, or not 64 hex characters);
 * SL_ESYS (another I/O failure). On failure ERR (ERRLEN bytes, may be
 * NULL) says why, naming PATH; KEY is left zeroed. */
int sld_seal_key_load(const char *path, uint8_t key[SLD_SEAL_KEY_LEN],
                      char *err, size_t errlen);

/* Write a fresh random master key to a new KEYFILE PATH (mode 0600, in the
 * format sld_seal_key_load reads, after a comment line), synced to disk.
 * Never overwrites: an existing PATH is SL_EEXIST. 0, SL_EEXIST, SL_EDENIED
 * (no permission), SL_ENOTFOUND (no such directory), SL_ESYS (a partial
 * file is removed), SL_EINTERNAL (libsodium would not start). ERR as
 * above. */
int sld_seal_key_create(const char *path, char *err, size_t errlen);

/* Fill BUF with LEN random bytes (libsodium's CSPRNG). Cannot fail once
 * sld_seal_init returned 0. */
void sld_seal_random(void *buf, size_t len);

/* Seal LEN bytes of PLAIN with KEY and NONCE, authenticating AD (ADLEN
 * bytes, may be NULL when 0) too: OUT receives LEN + SLD_SEAL_TAG_LEN
 * bytes (ciphertext then tag). OUT may be PLAIN (in place) or a buffer
 * that does not overlap it. Every argument is borrowed. A NONCE must never
 * be used twice with one KEY: draw it with sld_seal_random. 0, or
 * SL_EINTERNAL when libsodium refuses (LEN beyond its limit). */
int sld_seal_encrypt(uint8_t *out, const void *plain, size_t len,
                     const void *ad, size_t adlen,
                     const uint8_t nonce[SLD_SEAL_NONCE_LEN],
                     const uint8_t key[SLD_SEAL_KEY_LEN]);

/* Open LEN bytes of SEALED (ciphertext then tag) made by sld_seal_encrypt
 * with the same KEY, NONCE and AD: OUT receives LEN - SLD_SEAL_TAG_LEN
 * bytes. OUT may be SEALED or not overlap it. 0, or SL_EINVAL when LEN is
 * shorter than the tag or the data does not authenticate (wrong key,
 * nonce or AD, or changed bytes); OUT's contents are then unspecified. */
int sld_seal_decrypt(uint8_t *out, const uint8_t *sealed, size_t len,
                     const void *ad, size_t adlen,
                     const uint8_t nonce[SLD_SEAL_NONCE_LEN],
                     const uint8_t key[SLD_SEAL_KEY_LEN]);

/* Derive subkey number ID of MASTER for purpose CTX (exactly 8 characters,
 * e.g. "sldmsgid") into OUT: the same inputs always give the same subkey,
 * different ID or CTX unrelated ones. 0 or SL_EINTERNAL. */
int sld_seal_derive(uint8_t out[SLD_SEAL_KEY_LEN], uint64_t id, const char ctx[8],
                    const uint8_t master[SLD_SEAL_KEY_LEN]);

/* Keyed hash (BLAKE2b) of LEN bytes of IN under KEY into OUT: without the
 * key the digest tells nothing about IN. 0 or SL_EINTERNAL. */
int sld_seal_hash(uint8_t out[SLD_SEAL_HASH_LEN], const void *in, size_t len,
                  const uint8_t key[SLD_SEAL_KEY_LEN]);

#endif
