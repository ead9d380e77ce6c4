/*  slc_cert - CurveZMQ key pairs and their files (slc_cert.h).
 *
 *  The certificate is ZPL (ZeroMQ RFC 4), the text czmq's zcert writes and
 *  reads, so a czmq tool can use a sluice certificate and the other way
 *  round. Only what a certificate needs is parsed: 4-space indentation,
 *  '#' comments, `name = value` with quoted or bare values; the keys are
 *  curve/public-key and curve/secret-key. Buffers that ever held secret
 *  text or bytes are wiped with sodium_memzero before they are released.
 *  No state; any thread.  */
#include "slc_cert.h"
#include "slc.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define S_FILE_MAX 8192         /* a certificate is ~300 bytes */
#define S_DEPTH_MAX 8           /* ZPL nesting we follow */
#define S_WORD_MAX 64           /* longest ZPL name we follow */
#define S_NAME_MAX 255          /* longest certificate name */

static const char s_z85_chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyz"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

static int s_sodium(void)
{
    /* Idempotent and thread-safe: 0 first time, 1 after. */
    return sodium_init() < 0 ? SL_ESYS : 0;
}

void slc_cert_wipe(slc_cert_t *cert)
{
    if (cert)
        sodium_memzero(cert, sizeof *cert);
}

void slc_key_z85(const uint8_t key[SLC_KEY_LEN], char out[SLC_Z85_LEN + 1])
{
    /* 32 bytes is a multiple of 4, the only way zmq_z85_encode fails. */
    if (!zmq_z85_encode(out, key, SLC_KEY_LEN))
        out[0] = '\0';
}

int slc_key_decode(const char *text, uint8_t key[SLC_KEY_LEN], char *err,
                   size_t errlen)
{
    int rc = 0;
    size_t len = strnlen(text, SLC_Z85_LEN + 1);
    if (len != SLC_Z85_LEN) {
        slc_errf(err, errlen, "a Z85 key has %d characters, not %s%zu",
              SLC_Z85_LEN, len > SLC_Z85_LEN ? "more than " : "",
              len > SLC_Z85_LEN ? (size_t) SLC_Z85_LEN : len);
        rc = SL_EINVAL;
        goto fail;
    }
    for (size_t i = 0; i < len; i++)
        if (!text[i] || !strchr(s_z85_chars, text[i])) {
            slc_errf(err, errlen, "character %zu of the key ('%c') is not Z85",
                  i + 1, text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?');
            rc = SL_EINVAL;
            goto fail;
        }
    /* Valid characters can still overflow a 32-bit group. */
    if (!zmq_z85_decode(key, text)) {
        slc_errf(err, errlen, "the key is not valid Z85 (a group overflows)");
        rc = SL_EINVAL;
        goto fail;
    }
fail:
    return rc;
}

/* --------------------------------------------------------------- reading */

/* Read PATH (at most S_FILE_MAX bytes) into BUF (NUL-terminated); *mode
 * gets its permission bits. The mode comes from the descriptor that was
 * read, so a file swapped in between cannot pass with another's mode. */
static int s_read(const char *path, char buf[S_FILE_MAX + 1], size_t *len,
                  mode_t *mode, char *err, size_t errlen)
{
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        slc_errf(err, errlen, "cannot open %s: %s", path, strerror(e));
        rc = e == ENOENT || e == ENOTDIR ? SL_ENOTFOUND
           : e == EACCES || e == EPERM ? SL_EDENIED : SL_ESYS;
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        slc_errf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        slc_errf(err, errlen, "%s is not a regular file", path);
        rc = SL_EINVAL;
        goto fail;
    }
    *mode = st.st_mode & 07777;
    *len = 0;
    while (true) {
        ssize_t n = read(fd, buf + *len, S_FILE_MAX + 1 - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            slc_errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            rc = SL_ESYS;
            goto fail;
        }
        if (n == 0)
            break;
        *len += (size_t) n;
        if (*len > S_FILE_MAX) {
            slc_errf(err, errlen, "%s is too large for a certificate (over %d "
                  "bytes)", path, S_FILE_MAX);
            rc = SL_EINVAL;
            goto fail;
        }
    }
    buf[*len] = '\0';
fail:
    if (fd >= 0)
        close(fd);              /* read-only: nothing to lose */
    return rc;
}

/* What a parse found: pointers into the (writable) file text. */
typedef struct {
    const char *pub;
    const char *sec;            /* NULL or "" = no secret */
} s_found_t;

/* One ZPL value at P (after '='): quoted or bare, NUL-terminated in place.
 * *VALUE points at it; NULL when the line is malformed. */
static char *s_zpl_value(char *p, const char **value)
{
    *value = NULL;
    while (*p == ' ')
        p++;
    if (*p == '"' || *p == '\'') {
        char quote = *p++;
        char *end = strchr(p, quote);
        if (!end)
            return p;
        *end = '\0';
        *value = p;
        p = end + 1;
        while (*p == ' ')
            p++;
        if (*p && *p != '#')
            *value = NULL;      /* junk after the closing quote */
        return p;
    }
    char *start = p;
    while (*p && *p != '#')
        p++;
    char *end = p;
    while (end > start && end[-1] == ' ')
        end--;
    *end = '\0';
    *value = start;
    return p;
}

/* Parse the ZPL TEXT (modified in place). */
static int s_zpl_parse(char *text, const char *path, s_found_t *found,
                       char *err, size_t errlen)
{
    int rc = 0;
    char stack[S_DEPTH_MAX][S_WORD_MAX + 1];
    size_t depth = 0;
    unsigned lineno = 0;
    char *line = text;
    while (line && *line) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '
                         || line[n - 1] == '\t'))
            line[--n] = '\0';
        size_t indent = strspn(line, " ");
        char *p = line + indent;
        if (*p == '\0' || *p == '#') {
            line = next;
            continue;
        }
        if (*p == '\t' || indent % 4 != 0 || indent / 4 > depth
            || indent / 4 >= S_DEPTH_MAX) {
            slc_errf(err, errlen, "%s line %u: bad indentation (ZPL indents by "
                  "4 spaces)", path, lineno);
            rc = SL_EINVAL;
            goto fail;
        }
        size_t level = indent / 4;
        size_t wl = strcspn(p, " =#");
        if (wl == 0 || wl > S_WORD_MAX) {
            slc_errf(err, errlen, "%s line %u: expected a name", path, lineno);
            rc = SL_EINVAL;
            goto fail;
        }
        memcpy(stack[level], p, wl);
        stack[level][wl] = '\0';
        depth = level + 1;
        p += wl;
        while (*p == ' ')
            p++;
        if (*p == '=') {
            const char *value;
            s_zpl_value(p + 1, &value);
            if (!value) {
                slc_errf(err, errlen, "%s line %u: bad value (unclosed quote "
                      "or text after it)", path, lineno);
                rc = SL_EINVAL;
                goto fail;
            }
            if (depth == 2 && strcmp(stack[0], "curve") == 0) {
                const char **slot = strcmp(stack[1], "public-key") == 0 ? &found->pub
                                  : strcmp(stack[1], "secret-key") == 0 ? &found->sec
                                  : NULL;
                if (slot && *slot) {
                    slc_errf(err, errlen, "%s line %u: curve/%s given twice",
                          path, lineno, stack[1]);
                    rc = SL_EINVAL;
                    goto fail;
                }
                if (slot)
                    *slot = value;
            }
        }
        else if (*p && *p != '#') {
            slc_errf(err, errlen, "%s line %u: expected '=' after '%s'", path,
                  lineno, stack[level]);
            rc = SL_EINVAL;
            goto fail;
        }
        line = next;
    }
fail:
    sodium_memzero(stack, sizeof stack);
    return rc;
}

/* Parse file text: a bare Z85 key (a .pub file) or a ZPL certificate.
 * Fills CERT; PATH is for messages. */
static int s_parse(char *text, const char *path, slc_cert_t *cert, char *err,
                   size_t errlen)
{
    int rc = 0;
    char why[128] = "";
    s_found_t found = { NULL, NULL };
    memset(cert, 0, sizeof *cert);
    /* A .pub file: one token of 40 characters, no '='. */
    char *t = text + strspn(text, " \t\r\n");
    size_t tl = strcspn(t, " \t\r\n");
    if (tl == SLC_Z85_LEN && t[tl + strspn(t + tl, " \t\r\n")] == '\0') {
        t[tl] = '\0';
        rc = slc_key_decode(t, cert->public_key, why, sizeof why);
        if (rc)
            slc_errf(err, errlen, "%s: %s", path, why);
        goto fail;
    }
    rc = s_zpl_parse(text, path, &found, err, errlen);
    if (rc)
        goto fail;
    if (!found.pub) {
        slc_errf(err, errlen, "%s is not a certificate: no curve/public-key "
              "and not a 40-character Z85 key", path);
        rc = SL_EINVAL;
        goto fail;
    }
    rc = slc_key_decode(found.pub, cert->public_key, why, sizeof why);
    if (rc) {
        slc_errf(err, errlen, "%s: public-key: %s", path, why);
        goto fail;
    }
    if (found.sec && *found.sec) {
        /* No detail: the reason could quote a character of the secret. */
        rc = slc_key_decode(found.sec, cert->secret_key, NULL, 0);
        if (rc) {
            slc_errf(err, errlen, "%s: secret-key is not a key of %d Z85 "
                  "characters", path, SLC_Z85_LEN);
            goto fail;
        }
        cert->has_secret = true;
    }
fail:
    if (rc)
        slc_cert_wipe(cert);
    return rc;
}

/* The public key a secret key implies must be the one beside it: a cert
 * with mismatched halves would fail at every handshake, confusingly. */
static int s_check_pair(const slc_cert_t *cert, const char *path, char *err,
                        size_t errlen)
{
    int rc = s_sodium();
    uint8_t derived[SLC_KEY_LEN];
    if (rc) {
        slc_errf(err, errlen, "libsodium cannot be initialised");
        goto fail;
    }
    if (crypto_scalarmult_base(derived, cert->secret_key) != 0
        || sodium_memcmp(derived, cert->public_key, SLC_KEY_LEN) != 0) {
        slc_errf(err, errlen, "%s: the secret key does not belong to the "
              "public key", path);
        rc = SL_EINVAL;
        goto fail;
    }
fail:
    sodium_memzero(derived, sizeof derived);
    return rc;
}

int slc_cert_check(const slc_cert_t *cert, char *err, size_t errlen)
{
    if (!cert->has_secret) {
        slc_errf(err, errlen, "no secret key");
        return SL_EINVAL;
    }
    return s_check_pair(cert, "the key pair", err, errlen);
}

int slc_cert_load(const char *path, slc_cert_t *cert, char *err,
                  size_t errlen)
{
    int rc = 0;
    char buf[S_FILE_MAX + 1];
    size_t len = 0;
    mode_t mode = 0;
    memset(cert, 0, sizeof *cert);
    rc = s_read(path, buf, &len, &mode, err, errlen);
    if (rc)
        goto fail;
    rc = s_parse(buf, path, cert, err, errlen);
    if (rc)
        goto fail;
    if (cert->has_secret && (mode & 077)) {
        slc_errf(err, errlen, "%s is %s by group or others (mode %04o); "
              "chmod 600 %s", path, (mode & 044) ? "readable" : "accessible",
              (unsigned) mode, path);
        rc = SL_EDENIED;
        goto fail;
    }
    if (cert->has_secret)
        rc = s_check_pair(cert, path, err, errlen);
fail:
    sodium_memzero(buf, sizeof buf);
    if (rc)
        slc_cert_wipe(cert);
    return rc;
}

int slc_key_parse(const char *text_or_path, uint8_t key[SLC_KEY_LEN],
                  char *err, size_t errlen)
{
    int rc = 0;
    char buf[S_FILE_MAX + 1];
    char why[160] = "";
    size_t len = 0;
    mode_t mode = 0;
    slc_cert_t cert;
    memset(&cert, 0, sizeof cert);
    struct stat st;
    if (!text_or_path || !*text_or_path) {
        slc_errf(err, errlen, "no key given");
        rc = SL_EINVAL;
        goto fail;
    }
    if (stat(text_or_path, &st) != 0) {
        /* Not a file: it must be key text. */
        int e = errno;
        rc = slc_key_decode(text_or_path, key, why, sizeof why);
        if (rc && strnlen(text_or_path, SLC_Z85_LEN + 1) == SLC_Z85_LEN)
            slc_errf(err, errlen, "'%s' is not a Z85 key (%s) nor a file",
                  text_or_path, why);
        else if (rc)
            slc_errf(err, errlen, "'%.80s' is neither a %d-character Z85 key "
                  "nor a readable file (%s)", text_or_path, SLC_Z85_LEN,
                  strerror(e));
        goto fail;
    }
    rc = s_read(text_or_path, buf, &len, &mode, err, errlen);
    if (rc == 0)
        rc = s_parse(buf, text_or_path, &cert, err, errlen);
    if (rc) {
        rc = SL_EINVAL;
        goto fail;
    }
    memcpy(key, cert.public_key, SLC_KEY_LEN);
fail:
    sodium_memzero(buf, sizeof buf);
    slc_cert_wipe(&cert);
    return rc;
}

/* --------------------------------------------------------------- writing */

int slc_cert_generate(slc_cert_t *cert)
{
    int rc = s_sodium();
    memset(cert, 0, sizeof *cert);
    if (rc)
        goto fail;
    if (crypto_box_keypair(cert->public_key, cert->secret_key) != 0) {
        rc = SL_ESYS;
        goto fail;
    }
    cert->has_secret = true;
fail:
    if (rc)
        slc_cert_wipe(cert);
    return rc;
}

/* fsync the directory holding PATH, so the new name survives a crash. */
static int s_sync_dir(const char *path, char *err, size_t errlen)
{
    int rc = 0;
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int) (slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL)) {
        slc_errf(err, errlen, "cannot sync directory %s: %s", dir,
              strerror(errno));
        rc = SL_ESYS;
    }
    if (fd >= 0)
        close(fd);              /* read-only descriptor */
    return rc;
}

/* Move TMP to PATH unless PATH exists. */
static int s_publish(const char *tmp, const char *path, char *err,
                     size_t errlen)
{
    int rc = 0;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
        goto fail;
    /* A filesystem without RENAME_NOREPLACE: link() refuses an existing
     * name just as atomically. */
    if ((errno == EINVAL || errno == ENOSYS) && link(tmp, path) == 0) {
        if (unlink(tmp) != 0) {
            slc_errf(err, errlen, "cannot remove %s: %s", tmp, strerror(errno));
            rc = SL_ESYS;
        }
        goto fail;
    }
    int e = errno;
    if (e == EEXIST)
        slc_errf(err, errlen, "%s exists: not overwritten", path);
    else
        slc_errf(err, errlen, "cannot create %s: %s", path, strerror(e));
    rc = e == EEXIST ? SL_EEXIST : SL_ESYS;
fail:
    return rc;
}

/* Write DATA (LEN bytes) as the new file PATH with MODE: temporary file,
 * fsync, rename without replacing. */
static int s_write_new(const char *path, const void *data, size_t len,
                       mode_t mode, char *err, size_t errlen)
{
    int rc = 0;
    int fd = -1;
    char tmp[PATH_MAX];
    tmp[0] = '\0';
    for (int attempt = 0; fd < 0 && attempt < 8; attempt++) {
        int n = snprintf(tmp, sizeof tmp, "%s.tmp-%08x", path,
                         (unsigned) randombytes_random());
        if (n < 0 || (size_t) n >= sizeof tmp) {
            slc_errf(err, errlen, "path too long: %s", path);
            tmp[0] = '\0';
            rc = SL_EINVAL;
            goto fail;
        }
        fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
        if (fd < 0 && errno != EEXIST) {
            slc_errf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            tmp[0] = '\0';
            rc = SL_ESYS;
            goto fail;
        }
    }
    if (fd < 0) {
        slc_errf(err, errlen, "cannot create a temporary file for %s", path);
        tmp[0] = '\0';
        rc = SL_ESYS;
        goto fail;
    }
    /* Exactly MODE whatever the umask: 0644 for a .pub meant to be shared. */
    if (fchmod(fd, mode) != 0) {
        slc_errf(err, errlen, "cannot chmod %s: %s", tmp, strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            slc_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            rc = SL_ESYS;
            goto fail;
        }
        p += n;
        left -= (size_t) n;
    }
    if (fsync(fd) != 0) {
        slc_errf(err, errlen, "cannot sync %s: %s", path, strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    int closed = close(fd);
    fd = -1;
    if (closed != 0) {
        slc_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    rc = s_publish(tmp, path, err, errlen);
    if (rc)
        goto fail;
    tmp[0] = '\0';              /* renamed: nothing to clean up */
    rc = s_sync_dir(path, err, errlen);
fail:
    if (fd >= 0)
        close(fd);              /* failed already; the file is removed */
    if (tmp[0])
        unlink(tmp);            /* best effort: the error is reported */
    return rc;
}

static int s_name_check(const char *name, char *err, size_t errlen)
{
    size_t len = name ? strnlen(name, S_NAME_MAX + 1) : 0;
    if (len == 0 || len > S_NAME_MAX) {
        slc_errf(err, errlen, "a certificate name has 1 to %d characters",
              S_NAME_MAX);
        return SL_EINVAL;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) name[i] < 0x20 || name[i] == 0x7f
            || name[i] == '"') {
            slc_errf(err, errlen, "a certificate name may not hold control "
                  "characters or '\"'");
            return SL_EINVAL;
        }
    return 0;
}

/* 0 when nothing is at PATH, SL_EEXIST (ERR says so) when something is. */
static int s_absent(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    slc_errf(err, errlen, "%s exists: not overwritten", path);
    return SL_EEXIST;
}

int slc_cert_save(const slc_cert_t *cert, const char *name,
                  const char *cert_path, const char *pub_path,
                  char *err, size_t errlen)
{
    int rc = 0;
    bool cert_written = false;
    char text[512];
    char pub[SLC_Z85_LEN + 1], sec[SLC_Z85_LEN + 1];
    sec[0] = '\0';
    slc_key_z85(cert->public_key, pub);
    if (!cert_path && !pub_path) {
        slc_errf(err, errlen, "no file to write");
        rc = SL_EINVAL;
        goto fail;
    }
    if (cert_path) {
        if (!cert->has_secret) {
            slc_errf(err, errlen, "no secret key to write to %s", cert_path);
            rc = SL_EINVAL;
            goto fail;
        }
        rc = s_name_check(name, err, errlen);
        if (rc)
            goto fail;
    }
    /* Checked up front so that nothing is written when either exists; the
     * rename without replace still catches a file created meanwhile. */
    if (cert_path)
        rc = s_absent(cert_path, err, errlen);
    if (rc == 0 && pub_path)
        rc = s_absent(pub_path, err, errlen);
    if (rc)
        goto fail;
    if (cert_path) {
        slc_key_z85(cert->secret_key, sec);
        int n = snprintf(text, sizeof text,
            "#   sluice certificate %s: the key pair. Keep it secret "
            "(mode 0600).\n"
            "metadata\n"
            "    name = \"%s\"\n"
            "curve\n"
            "    public-key = \"%s\"\n"
            "    secret-key = \"%s\"\n", name, name, pub, sec);
        if (n < 0 || (size_t) n >= sizeof text) {
            slc_errf(err, errlen, "certificate name too long");
            rc = SL_EINVAL;
            goto fail;
        }
        rc = s_write_new(cert_path, text, (size_t) n, 0600, err, errlen);
        if (rc)
            goto fail;
        cert_written = true;
    }
    if (pub_path) {
        int n = snprintf(text, sizeof text, "%s\n", pub);
        rc = s_write_new(pub_path, text, (size_t) n, 0644, err, errlen);
        if (rc)
            goto fail;
    }
fail:
    /* All or nothing: a key pair without its .pub would make the next
     * attempt fail with "exists". */
    if (rc && cert_written)
        unlink(cert_path);      /* best effort: the first error is reported */
    sodium_memzero(text, sizeof text);
    sodium_memzero(sec, sizeof sec);
    return rc;
}
