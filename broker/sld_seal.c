/*  sld_seal - the cryptography of encryption at rest (see sld_seal.h):
 *  key files, XChaCha20-Poly1305 with associated data, subkeys, keyed
 *  hashes. Thin on purpose: every primitive is libsodium's, this file only
 *  fixes the choices and turns libsodium's results into SL_E* codes.
 *  No state; any thread. Secrets on our stack are wiped before return.  */
#include "sld_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_HEX_LEN (2 * SLD_SEAL_KEY_LEN)

_Static_assert(SLD_SEAL_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES
               && SLD_SEAL_KEY_LEN == crypto_kdf_KEYBYTES, "key size");
_Static_assert(SLD_SEAL_NONCE_LEN == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce");
_Static_assert(SLD_SEAL_TAG_LEN == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag");
_Static_assert(crypto_kdf_CONTEXTBYTES == 8, "kdf context");

/* An errno of open() as a code: what the operator has to fix differs. */
static int s_errno_code(int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
        return SL_ENOTFOUND;
    case EACCES:
    case EPERM:
        return SL_EDENIED;
    case EEXIST:
        return SL_EEXIST;
    default:
        return SL_ESYS;
    }
}

int sld_seal_init(void)
{
    /* 0 the first time, 1 when already done, -1 on failure. */
    return sodium_init() < 0 ? SL_EINTERNAL : 0;
}

void sld_seal_random(void *buf, size_t len)
{
    randombytes_buf(buf, len);
}

/* Find the one key line in TEXT (LEN bytes) and decode it into KEY. */
static int s_parse_key(const char *path, char *text, size_t len,
                       uint8_t key[SLD_SEAL_KEY_LEN], char *err, size_t errlen)
{
    int rc = 0;
    size_t lineno = 0, bin_len = 0;
    const char *hex_end = NULL;
    bool found = false;
    char *line = text, *end = text + len;

    while (line < end) {
        char *nl = memchr(line, '\n', (size_t) (end - line));
        char *stop = nl ? nl : end, *next = nl ? nl + 1 : end;
        lineno++;
        while (line < stop && (*line == ' ' || *line == '\t'))
            line++;
        while (stop > line && (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\r'))
            stop--;
        if (line == stop || *line == '#') {
            line = next;
            continue;
        }
        if (found) {
            slc_errf(err, errlen, "%s: line %zu: a second key line (one key per file)",
                  path, lineno);
            rc = SL_EINVAL;
            goto fail;
        }
        /* The line's content is never echoed: it may be most of a key. */
        if (stop - line != S_HEX_LEN) {
            slc_errf(err, errlen, "%s: line %zu: expected the key as %d hex characters, "
                  "found %zu characters", path, lineno, S_HEX_LEN, (size_t) (stop - line));
            rc = SL_EINVAL;
            goto fail;
        }
        if (sodium_hex2bin(key, SLD_SEAL_KEY_LEN, line, S_HEX_LEN, NULL, &bin_len,
                           &hex_end) != 0
            || bin_len != SLD_SEAL_KEY_LEN || hex_end != stop) {
            slc_errf(err, errlen, "%s: line %zu: the key is not hexadecimal", path, lineno);
            rc = SL_EINVAL;
            goto fail;
        }
        found = true;
        line = next;
    }
    if (!found) {
        slc_errf(err, errlen, "%s: no key in the file (expected %d hex characters)",
              path, S_HEX_LEN);
        rc = SL_EINVAL;
    }
fail:
    return rc;
}

int sld_seal_key_load(const char *path, uint8_t key[SLD_SEAL_KEY_LEN],
                      char *err, size_t errlen)
{
    int rc = 0, fd = -1;
    struct stat st;
    char buf[SLD_SEAL_KEYFILE_MAX + 1];
    size_t got = 0;

    sodium_memzero(key, SLD_SEAL_KEY_LEN);
    rc = sld_seal_init();
    if (rc) {
        slc_errf(err, errlen, "libsodium failed to initialise");
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = s_errno_code(errno);
        slc_errf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0) {
        rc = SL_ESYS;
        slc_errf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = SL_EINVAL;
        slc_errf(err, errlen, "%s is not a regular file", path);
        goto fail;
    }
    if (st.st_mode & 077) {
        rc = SL_EDENIED;
        slc_errf(err, errlen, "%s is readable by group or others (mode %04o): chmod 600 %s",
              path, (unsigned) (st.st_mode & 07777), path);
        goto fail;
    }
    while (got < sizeof buf) {
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = SL_ESYS;
            slc_errf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        got += (size_t) n;
    }
    if (got > SLD_SEAL_KEYFILE_MAX) {
        rc = SL_EINVAL;
        slc_errf(err, errlen, "%s is longer than %d bytes: not a key file", path,
              SLD_SEAL_KEYFILE_MAX);
        goto fail;
    }
    rc = s_parse_key(path, buf, got, key, err, errlen);
fail:
    sodium_memzero(buf, sizeof buf);
    if (rc)
        sodium_memzero(key, SLD_SEAL_KEY_LEN);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* fsync the directory holding PATH, so the new file's name survives a
 * crash: a store sealed under a key whose file vanished is lost. */
static int s_sync_dir(const char *path)
{
    int rc = 0, fd = -1;
    char *copy = strdup(path);
    if (!copy) {
        rc = SL_ENOMEM;
        goto fail;
    }
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        rc = SL_ESYS;
fail:
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

int sld_seal_key_create(const char *path, char *err, size_t errlen)
{
    static const char comment[] =
        "# sluiced --encrypt-at-rest master key. Keep it secret and keep a copy:\n"
        "# without it nothing stored under it can be read.\n";
    int rc = 0, fd = -1;
    bool created = false;
    uint8_t key[SLD_SEAL_KEY_LEN];
    char text[sizeof comment + S_HEX_LEN + 1];
    size_t len, done = 0;

    rc = sld_seal_init();
    if (rc) {
        slc_errf(err, errlen, "libsodium failed to initialise");
        goto fail;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        rc = s_errno_code(errno);
        if (rc == SL_EEXIST)
            slc_errf(err, errlen, "%s exists: a key file is never overwritten", path);
        else
            slc_errf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    created = true;
    /* The umask may only have taken bits away; make it exactly 0600. */
    if (fchmod(fd, 0600) != 0) {
        rc = SL_ESYS;
        slc_errf(err, errlen, "%s: chmod: %s", path, strerror(errno));
        goto fail;
    }
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    memcpy(text, comment, sizeof comment - 1);
    len = sizeof comment - 1;
    sodium_bin2hex(text + len, S_HEX_LEN + 1, key, sizeof key);
    len += S_HEX_LEN;
    text[len++] = '\n';
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = SL_ESYS;
            slc_errf(err, errlen, "%s: write: %s", path, strerror(errno));
            goto fail;
        }
        done += (size_t) n;
    }
    if (fsync(fd) != 0) {
        rc = SL_ESYS;
        slc_errf(err, errlen, "%s: fsync: %s", path, strerror(errno));
        goto fail;
    }
    rc = close(fd) == 0 ? 0 : SL_ESYS;
    fd = -1;
    if (rc == 0)
        rc = s_sync_dir(path);
    if (rc)
        slc_errf(err, errlen, "%s: could not make the file durable: %s", path,
              strerror(errno));
fail:
    sodium_memzero(key, sizeof key);
    sodium_memzero(text, sizeof text);
    if (fd >= 0)
        close(fd);
    if (rc && created)
        unlink(path);
    return rc;
}

int sld_seal_encrypt(uint8_t *out, const void *plain, size_t len,
                     const void *ad, size_t adlen,
                     const uint8_t nonce[SLD_SEAL_NONCE_LEN],
                     const uint8_t key[SLD_SEAL_KEY_LEN])
{
    int rc = 0;
    if (len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX
        || crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, plain, len, ad, adlen,
                                                      NULL, nonce, key) != 0)
        rc = SL_EINTERNAL;
    return rc;
}

int sld_seal_decrypt(uint8_t *out, const uint8_t *sealed, size_t len,
                     const void *ad, size_t adlen,
                     const uint8_t nonce[SLD_SEAL_NONCE_LEN],
                     const uint8_t key[SLD_SEAL_KEY_LEN])
{
    int rc = 0;
    if (len < SLD_SEAL_TAG_LEN
        || crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, sealed, len, ad,
                                                      adlen, nonce, key) != 0)
        rc = SL_EINVAL;
    return rc;
}

int sld_seal_derive(uint8_t out[SLD_SEAL_KEY_LEN], uint64_t id, const char ctx[8],
                    const uint8_t master[SLD_SEAL_KEY_LEN])
{
    return crypto_kdf_derive_from_key(out, SLD_SEAL_KEY_LEN, id, ctx, master) == 0
           ? 0 : SL_EINTERNAL;
}

int sld_seal_hash(uint8_t out[SLD_SEAL_HASH_LEN], const void *in, size_t len,
                  const uint8_t key[SLD_SEAL_KEY_LEN])
{
    return crypto_generichash(out, SLD_SEAL_HASH_LEN, in, len, key, SLD_SEAL_KEY_LEN) == 0
           ? 0 : SL_EINTERNAL;
}
