/*  sl_connect - where a program connects: the flags a user typed and the
 *  SLUICE_* variables settled into an endpoint and key files by the one
 *  rule `sluice`, the adapters and the Python SDK share (sluice.h, "where
 *  to connect"). Reads the environment and the home's endpoint file; opens
 *  no socket and checks no key (sl_options_check does). Any thread; no
 *  state, so it needs no client.  */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sluice.h"
#include "slc.h"

/* An environment variable, NULL when unset or empty. */
static const char *s_env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

/* The next line of F into BUF, without its newline and trailing blanks;
 * "" at the end of the file. */
static void s_line(FILE *f, char *buf, size_t len)
{
    size_t n;

    if (!fgets(buf, (int)len, f))
        buf[0] = '\0';
    n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
}

/* The broker's endpoint file PATH: the endpoint on line 1 into BUF, and
 * *PLAIN when line 2 says the broker runs without keys. 0, 1 when PATH
 * does not exist, -1 with errno on another failure. */
static int s_read_endpoint(const char *path, char *buf, size_t len,
                           bool *plain)
{
    FILE *f = fopen(path, "r");
    char second[64];
    int rc = 0;

    *plain = false;
    buf[0] = '\0';
    if (!f)
        return errno == ENOENT ? 1 : -1;
    s_line(f, buf, len);
    s_line(f, second, sizeof second);
    *plain = strcmp(second, "plaintext") == 0;
    if (ferror(f)) {
        errno = EIO;
        rc = -1;
    }
    fclose(f);                  /* read-only: nothing to lose */
    return rc;
}

/* Copy SRC (may be NULL: "") into DST of LEN bytes; SL_EINVAL when it does
 * not fit, so a long path is refused rather than cut. */
static int s_set(char *dst, size_t len, const char *src, const char *what,
                 char *err, size_t errlen)
{
    if (!src)
        src = "";
    if (strlen(src) >= len) {
        slc_errf(err, errlen, "%s is too long (%zu bytes, at most %zu)",
                 what, strlen(src), len - 1);
        return SL_EINVAL;
    }
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

int sl_connect_resolve(const sl_connect_args_t *args, sl_connect_t *out,
                       char *err, size_t errlen)
{
    static const sl_connect_args_t none;
    const char *env_broker = s_env("SLUICE_BROKER");
    const char *env_cert = s_env("SLUICE_CERT");
    const char *env_key = s_env("SLUICE_SERVER_KEY");
    const char *env_home = s_env("SLUICE_HOME");
    const char *home, *cert, *key, *broker;
    char home_cert[4096], home_pub[4096], path[4096], endpoint[512];
    bool home_keys = false;         /* the home gives keys */
    bool plain = false;
    int rc;

    if (!args)
        args = &none;
    memset(out, 0, sizeof *out);
    broker = args->broker ? args->broker : env_broker;
    out->broker_given = broker != NULL;
    rc = s_set(out->endpoint, sizeof out->endpoint,
               broker ? broker : SL_DEFAULT_ENDPOINT, "the broker endpoint",
               err, errlen);
    if (rc != 0)
        goto done;
    if (args->plaintext) {
        if (args->cert || args->server_key || args->home) {
            slc_errf(err, errlen, "--insecure-plaintext goes without "
                     "--cert, --server-key and --home");
            rc = SL_EINVAL;
        }
        goto done;              /* the variables are ignored too */
    }
    home = args->home ? args->home : env_home;
    if (!home && !args->cert && !args->server_key && !env_cert && !env_key
        && access(SL_DEFAULT_HOME "/server.pub", F_OK) == 0) {
        home = SL_DEFAULT_HOME;
        out->home_auto = true;
    }
    endpoint[0] = '\0';
    if (home) {
        rc = s_set(out->home, sizeof out->home, home, "the home directory",
                   err, errlen);
        if (rc != 0)
            goto done;
        /* The home fits in 4095 bytes; its file names may not. */
        if ((size_t)snprintf(home_cert, sizeof home_cert, "%s/admin.cert",
                             home) >= sizeof home_cert
            || (size_t)snprintf(home_pub, sizeof home_pub, "%s/server.pub",
                                home) >= sizeof home_pub
            || (size_t)snprintf(path, sizeof path, "%s/endpoint", home)
                   >= sizeof path) {
            slc_errf(err, errlen, "the home directory %s is too long", home);
            rc = SL_EINVAL;
            goto done;
        }
        if (s_read_endpoint(path, endpoint, sizeof endpoint, &plain) < 0) {
            slc_errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            rc = SL_ESYS;
            goto done;
        }
        home_keys = !plain;
    }
    /* A home typed as a flag beats the key variables; one from
     * $SLUICE_HOME or the default comes after them. */
    cert = args->cert ? args->cert
         : home_keys && args->home ? home_cert
         : env_cert ? env_cert
         : home_keys ? home_cert : NULL;
    key = args->server_key ? args->server_key
        : home_keys && args->home ? home_pub
        : env_key ? env_key
        : home_keys ? home_pub : NULL;
    if (key == home_pub && access(home_pub, F_OK) != 0) {
        slc_errf(err, errlen, "%s not found: is %s the broker's data "
                 "directory?", home_pub, home);
        rc = SL_EINVAL;
        goto done;
    }
    if (cert == home_cert && access(home_cert, F_OK) != 0) {
        slc_errf(err, errlen, "%s not found: give this client's certificate "
                 "with --cert FILE", home_cert);
        rc = SL_EINVAL;
        goto done;
    }
    if (key && !cert) {
        slc_errf(err, errlen, "the broker's key needs a client certificate "
                 "too: --cert FILE (from `sluice keygen NAME`)");
        rc = SL_EINVAL;
        goto done;
    }
    if (cert && !key) {
        slc_errf(err, errlen, "--cert needs the broker's public key: "
                 "--server-key KEY|FILE (the broker's DATA/server.pub)");
        rc = SL_EINVAL;
        goto done;
    }
    rc = s_set(out->cert, sizeof out->cert, cert, "the certificate path",
               err, errlen);
    if (rc == 0)
        rc = s_set(out->server_key, sizeof out->server_key, key,
                   "the server key", err, errlen);
    if (rc == 0 && home && !out->broker_given && endpoint[0])
        rc = s_set(out->endpoint, sizeof out->endpoint, endpoint,
                   "the endpoint in the home's endpoint file", err, errlen);
done:
    return rc;
}

void sl_connect_apply(const sl_connect_t *conn, sl_options_t *opts)
{
    opts->endpoint = conn->endpoint;
    opts->cert = conn->cert[0] ? conn->cert : NULL;
    opts->server_key = conn->server_key[0] ? conn->server_key : NULL;
}
