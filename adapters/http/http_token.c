/*  http_token - the tokens file, token lookup and `sluice-http token add`
 *  (http_token.h). A token is "sht_" and 43 base64url characters (32
 *  random bytes); the file keeps SHA-256 of the whole token in hex, so a
 *  leaked file does not give tokens away. Loaded once by the main thread;
 *  lookups are read-only (any thread).  */
#include "http_token.h"
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "http_common.h"

#define S_HASH_LEN crypto_hash_sha256_BYTES

typedef struct {
    unsigned char hash[S_HASH_LEN];
    size_t identity;            /* index into identities */
} s_entry_t;

typedef struct {
    char *name;                 /* owned */
    char *cert;                 /* owned */
} s_identity_t;

struct http_tokens {
    s_entry_t *entries;         /* owned */
    size_t nentries;
    s_identity_t *ids;          /* owned */
    size_t nids;
};

void http_tokens_destroy(http_tokens_t **self_p)
{
    http_tokens_t *self = self_p ? *self_p : NULL;
    size_t i;

    if (!self)
        return;
    for (i = 0; i < self->nids; i++) {
        free(self->ids[i].name);
        free(self->ids[i].cert);
    }
    free(self->ids);
    free(self->entries);
    free(self);
    *self_p = NULL;
}

/* The index of (NAME, CERT), added when new; SIZE_MAX when out of memory. */
static size_t s_identity(http_tokens_t *self, const char *name, const char *cert)
{
    s_identity_t *grown;
    size_t i;

    for (i = 0; i < self->nids; i++)
        if (strcmp(self->ids[i].name, name) == 0 && strcmp(self->ids[i].cert, cert) == 0)
            return i;
    grown = realloc(self->ids, (self->nids + 1) * sizeof *grown);
    if (!grown)
        return SIZE_MAX;
    self->ids = grown;
    grown[i].name = strdup(name);
    grown[i].cert = strdup(cert);
    if (!grown[i].name || !grown[i].cert) {
        free(grown[i].name);
        free(grown[i].cert);
        return SIZE_MAX;
    }
    self->nids++;
    return i;
}

static int s_add_line(http_tokens_t *self, const char *path, unsigned lineno,
                      char *line, char *err, size_t errlen)
{
    char *save = NULL, *hex, *name, *cert, *extra;
    s_entry_t *grown;
    size_t bin_len = 0, id;

    hex = strtok_r(line, " \t\r\n", &save);
    if (!hex || hex[0] == '#')
        return 0;
    name = strtok_r(NULL, " \t\r\n", &save);
    cert = strtok_r(NULL, " \t\r\n", &save);
    extra = strtok_r(NULL, " \t\r\n", &save);
    if (!name || !cert || extra) {
        snprintf(err, errlen, "%s:%u: expected `SHA256-HEX IDENTITY CERTFILE` "
                 "(three fields)", path, lineno);
        return SL_EINVAL;
    }
    grown = realloc(self->entries, (self->nentries + 1) * sizeof *grown);
    if (!grown)
        return SL_ENOMEM;
    self->entries = grown;
    if (strlen(hex) != 2 * S_HASH_LEN
        || sodium_hex2bin(grown[self->nentries].hash, S_HASH_LEN, hex, strlen(hex),
                          NULL, &bin_len, NULL) != 0
        || bin_len != S_HASH_LEN) {
        snprintf(err, errlen, "%s:%u: the first field is not a SHA-256 in hex "
                 "(64 digits); add tokens with `sluice-http token add`", path,
                 lineno);
        return SL_EINVAL;
    }
    id = s_identity(self, name, cert);
    if (id == SIZE_MAX)
        return SL_ENOMEM;
    grown[self->nentries++].identity = id;
    return 0;
}

int http_tokens_load(const char *path, http_tokens_t **out, char *err,
                     size_t errlen)
{
    http_tokens_t *self = calloc(1, sizeof *self);
    char line[8192];
    unsigned lineno = 0;
    struct stat st;
    FILE *f = NULL;
    int rc = 0;

    *out = NULL;
    if (!self || sodium_init() < 0) {
        rc = SL_ENOMEM;
        goto fail;
    }
    f = fopen(path, "r");
    if (!f || fstat(fileno(f), &st) != 0) {
        snprintf(err, errlen, "cannot read the tokens file %s: %s", path,
                 strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "the tokens file %s is readable by group or "
                 "others (mode 0%o); chmod 600 %s", path,
                 (unsigned)(st.st_mode & 0777), path);
        rc = SL_EDENIED;
        goto fail;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        rc = s_add_line(self, path, lineno, line, err, errlen);
        if (rc)
            goto fail;
    }
    if (self->nentries == 0) {
        snprintf(err, errlen, "the tokens file %s holds no token; add one with "
                 "`sluice-http token add IDENTITY --cert FILE --tokens %s`",
                 path, path);
        rc = SL_EINVAL;
        goto fail;
    }
    fclose(f);
    *out = self;
    return 0;
fail:
    if (f)
        fclose(f);
    http_tokens_destroy(&self);
    return rc;
}

int http_tokens_open(const char *prog, const char *path, const sl_connect_t *conn,
                     http_tokens_t **out)
{
    char err[1024];

    if (http_tokens_load(path, out, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return HTTP_EXIT_FAILED;
    }
    if (!conn->server_key[0]) {
        fprintf(stderr, "%s: --tokens maps tokens to broker identities, "
                "which needs the broker's key: --server-key KEY|FILE or "
                "--home DIR (not --insecure-plaintext)\n", prog);
        http_tokens_destroy(out);
        return HTTP_EXIT_USAGE;
    }
    return HTTP_EXIT_OK;
}

int http_tokens_lookup(const http_tokens_t *self, const char *token)
{
    unsigned char hash[S_HASH_LEN];
    int found = -1;
    size_t i;

    crypto_hash_sha256(hash, (const unsigned char *)token, strlen(token));
    /* Every entry is compared, in constant time each, so the time does
     * not say which line (or how much of one) matched. */
    for (i = 0; i < self->nentries; i++)
        if (sodium_memcmp(hash, self->entries[i].hash, S_HASH_LEN) == 0)
            found = (int)self->entries[i].identity;
    return found;
}

size_t http_tokens_identities(const http_tokens_t *self)
{
    return self->nids;
}

const char *http_tokens_name(const http_tokens_t *self, size_t i)
{
    return self->ids[i].name;
}

const char *http_tokens_cert(const http_tokens_t *self, size_t i)
{
    return self->ids[i].cert;
}

/* ------------------------------------------------------- token add */

/* PROG is "sluice-http" or another adapter's program sharing the format. */
static void s_usage(const char *prog)
{
    printf("Usage: %s token add IDENTITY --cert FILE --tokens FILE\n"
           "\n"
           "Make a bearer token for `%s serve` that acts as broker identity\n"
           "IDENTITY (registered with `sluice keys add`, its grants given with\n"
           "`sluice grant`). The token is printed once on stdout; the tokens file\n"
           "keeps only its SHA-256 with IDENTITY and the certificate's path\n"
           "(created mode 0600 when missing). Restart `serve` to use it.\n"
           "\n"
           "  --cert FILE     IDENTITY's certificate (from `sluice keygen`)\n"
           "  --tokens FILE   the tokens file `serve --tokens` reads\n"
           "  --help          this text\n", prog, prog);
}

int http_token_main(int argc, char **argv)
{
    return http_token_run("sluice-http", argc, argv);
}

int http_token_run(const char *program, int argc, char **argv)
{
    static const struct option options[] = {
        { "cert", required_argument, NULL, 'c' },
        { "tokens", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    char prog[96], word[96];
    const char *cert = NULL, *tokens = NULL, *name;
    unsigned char raw[32], hash[S_HASH_LEN];
    char token[64], hex[2 * S_HASH_LEN + 1], cert_abs[PATH_MAX], bad[128];
    int opt, fd;
    FILE *f;

    snprintf(prog, sizeof prog, "%s token add", program);
    snprintf(word, sizeof word, "%s token", program);
    if (argc < 2 || strcmp(argv[1], "add") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            s_usage(program);
            return HTTP_EXIT_OK;
        }
        return http_usage_error(word, "expected `token add IDENTITY "
                                "--cert FILE --tokens FILE`");
    }
    opterr = 0;
    optind = 0;
    argc--;
    argv++;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'h': s_usage(program); return HTTP_EXIT_OK;
        case 'c': cert = optarg; break;
        case 't': tokens = optarg; break;
        case ':':
            return http_usage_error(prog, "option '%s' needs a value",
                                    http_bad_option(argv, optopt, bad, sizeof bad));
        default:
            return http_usage_error(prog, "unknown option '%s'",
                                    http_bad_option(argv, optopt, bad, sizeof bad));
        }
    }
    if (optind != argc - 1)
        return http_usage_error(prog, "expected one IDENTITY");
    name = argv[optind];
    if (!cert || !tokens)
        return http_usage_error(prog, "--cert FILE and --tokens FILE are required");
    if (!name[0] || strcspn(name, " \t\r\n#") != strlen(name))
        return http_usage_error(prog, "IDENTITY must be non-empty, without blanks or '#'");
    if (!realpath(cert, cert_abs) || access(cert_abs, R_OK) != 0) {
        fprintf(stderr, "%s: cannot read the certificate %s: %s\n", prog, cert,
                strerror(errno));
        return HTTP_EXIT_FAILED;
    }
    if (strcspn(cert_abs, " \t\r\n") != strlen(cert_abs)) {
        fprintf(stderr, "%s: the certificate's path %s has a blank: the tokens "
                "file cannot hold it\n", prog, cert_abs);
        return HTTP_EXIT_FAILED;
    }
    if (sodium_init() < 0)
        return HTTP_EXIT_FAILED;
    randombytes_buf(raw, sizeof raw);
    memcpy(token, "sht_", 4);
    sodium_bin2base64(token + 4, sizeof token - 4, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    crypto_hash_sha256(hash, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
    fd = open(tokens, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    f = fd >= 0 ? fdopen(fd, "a") : NULL;
    if (!f) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, tokens, strerror(errno));
        if (fd >= 0)
            close(fd);
        return HTTP_EXIT_FAILED;
    }
    fprintf(f, "%s %s %s\n", hex, name, cert_abs);
    /* Flushed and synced before the token is shown: a token printed is
     * a token that works after a crash. */
    int failed = fflush(f) != 0 || fsync(fd) != 0;

    failed = fclose(f) != 0 || failed;
    if (failed) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, tokens, strerror(errno));
        return HTTP_EXIT_FAILED;
    }
    sodium_memzero(raw, sizeof raw);
    printf("%s\n", token);
    fprintf(stderr, "%s: token for %s stored (hashed) in %s; it is shown only "
            "this once\n", prog, name, tokens);
    return HTTP_EXIT_OK;
}
