/*  http_sign - Standard Webhooks signing (see http_sign.h): secrets from a
 *  file, HMAC-SHA256 over "id.timestamp.body" and base64, both from
 *  libsodium. Keeps the decoded secrets in sodium_malloc'd memory, wiped
 *  and freed by http_sign_destroy. One object per thread.  */
#include "http_parse.h"
#include "http_sign.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "sluice.h"

#define S_KEY_MIN 24
#define S_KEY_MAX 64
#define S_PREFIX "whsec_"

typedef struct {
    unsigned char key[S_KEY_MAX];
    size_t len;
} s_secret_t;

struct http_sign {
    s_secret_t *secrets;        /* sodium_malloc'd: NSECRETS entries */
    size_t nsecrets;
};

/* LINE without its line end and the blanks around it. */
static char *s_trim(char *line)
{
    size_t n;

    while (*line == ' ' || *line == '\t')
        line++;
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'
                     || line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = '\0';
    return line;
}

/* Decode "whsec_<base64>" TEXT into SECRET. 0 or -1 with a reason in WHY. */
static int s_decode(const char *text, s_secret_t *secret, const char **why)
{
    unsigned char buf[S_KEY_MAX + 3];
    size_t len = 0;
    const char *end = NULL;

    if (strncmp(text, S_PREFIX, sizeof S_PREFIX - 1) != 0) {
        *why = "does not start with whsec_";
        return -1;
    }
    text += sizeof S_PREFIX - 1;
    if (sodium_base642bin(buf, sizeof buf, text, strlen(text), NULL, &len,
                          &end, sodium_base64_VARIANT_ORIGINAL) != 0
        || *end) {
        *why = "is not whsec_ and standard base64 (or decodes to over 64 "
               "bytes)";
        sodium_memzero(buf, sizeof buf);
        return -1;
    }
    if (len < S_KEY_MIN || len > S_KEY_MAX) {
        *why = "decodes to a key outside 24 to 64 bytes";
        sodium_memzero(buf, sizeof buf);
        return -1;
    }
    memcpy(secret->key, buf, len);
    secret->len = len;
    sodium_memzero(buf, sizeof buf);
    return 0;
}

int http_sign_load(const char *path, http_sign_t **out, char *err,
                   size_t errlen)
{
    http_sign_t *self = NULL;
    FILE *f = NULL;
    char line[512], *text;
    const char *why = NULL;
    unsigned lineno = 0;
    int rc = 0;

    *out = NULL;
    if (sodium_init() < 0) {
        http_errf(err, errlen, "libsodium cannot start");
        return SL_ESYS;
    }
    f = fopen(path, "r");
    if (!f) {
        http_errf(err, errlen, "cannot read secret file %s: %s", path,
               strerror(errno));
        return SL_ESYS;
    }
    self = calloc(1, sizeof *self);
    if (self)
        self->secrets = sodium_malloc(HTTP_SIGN_MAX_SECRETS
                                      * sizeof *self->secrets);
    if (!self || !self->secrets) {
        rc = SL_ENOMEM;
        goto fail;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            http_errf(err, errlen, "secret file %s line %u: longer than %zu "
                   "bytes: not a whsec_ secret", path, lineno,
                   sizeof line - 2);
            rc = SL_EINVAL;
            goto fail;
        }
        text = s_trim(line);
        if (!*text || *text == '#')
            continue;
        if (self->nsecrets == HTTP_SIGN_MAX_SECRETS) {
            http_errf(err, errlen, "secret file %s holds more than %d secrets",
                   path, HTTP_SIGN_MAX_SECRETS);
            rc = SL_EINVAL;
            goto fail;
        }
        if (s_decode(text, &self->secrets[self->nsecrets], &why) != 0) {
            http_errf(err, errlen, "secret file %s line %u %s", path, lineno,
                   why);
            rc = SL_EINVAL;
            goto fail;
        }
        self->nsecrets++;
    }
    if (ferror(f)) {
        http_errf(err, errlen, "cannot read secret file %s: %s", path,
               strerror(EIO));
        rc = SL_ESYS;
        goto fail;
    }
    if (self->nsecrets == 0) {
        http_errf(err, errlen, "secret file %s holds no secret (one "
               "whsec_<base64> per line)", path);
        rc = SL_EINVAL;
        goto fail;
    }
    sodium_memzero(line, sizeof line);
    fclose(f);                  /* read-only: nothing to lose */
    *out = self;
    return 0;
fail:
    sodium_memzero(line, sizeof line);
    if (f)
        fclose(f);
    http_sign_destroy(&self);
    return rc;
}

void http_sign_destroy(http_sign_t **self_p)
{
    http_sign_t *self;

    if (!self_p || !*self_p)
        return;
    self = *self_p;
    sodium_free(self->secrets);     /* wipes first; NULL-safe */
    free(self);
    *self_p = NULL;
}

size_t http_sign_count(const http_sign_t *self)
{
    return self->nsecrets;
}

int http_sign_header(const http_sign_t *self, const char *id,
                     uint64_t timestamp, const void *body, size_t len,
                     char *out, size_t outlen)
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char ts[24];
    size_t used = 0, b64len;
    int rc = 0;

    snprintf(ts, sizeof ts, "%llu", (unsigned long long)timestamp);
    b64len = sodium_base64_ENCODED_LEN(sizeof mac,
                                       sodium_base64_VARIANT_ORIGINAL);
    for (size_t i = 0; i < self->nsecrets; i++) {
        /* "v1," + base64 (b64len counts its NUL) + ' ' or the final NUL */
        if (used + 3 + b64len + (i > 0) > outlen) {
            rc = SL_ETOOBIG;
            goto done;
        }
        crypto_auth_hmacsha256_init(&st, self->secrets[i].key,
                                    self->secrets[i].len);
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)id,
                                      strlen(id));
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts,
                                      strlen(ts));
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
        if (len)
            crypto_auth_hmacsha256_update(&st, body, len);
        crypto_auth_hmacsha256_final(&st, mac);
        if (i > 0)
            out[used++] = ' ';
        memcpy(out + used, "v1,", 3);
        used += 3;
        sodium_bin2base64(out + used, b64len, mac, sizeof mac,
                          sodium_base64_VARIANT_ORIGINAL);
        used += b64len - 1;
    }
done:
    sodium_memzero(&st, sizeof st);
    if (rc == 0 && outlen > 0)
        out[used] = '\0';
    return rc;
}
