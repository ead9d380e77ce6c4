/*  sld_keys - create or load the data dir's key files; write `endpoint`.
 *  The secret halves are checked for their mode by slc_cert_load, so a
 *  server.cert someone made world-readable stops the broker at start.  */
#include "sld_keys.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Load DIR/NAME.cert, or make it (with DIR/NAME.pub) when absent; make a
 * missing NAME.pub again from the certificate. */
static int s_pair(const char *dir, const char *name, slc_cert_t *cert, bool *created,
                  char *err, size_t errlen)
{
    char cpath[PATH_MAX], ppath[PATH_MAX], why[256] = "";
    struct stat st;
    int rc;
    *created = false;
    if (snprintf(cpath, sizeof cpath, "%s/%s.cert", dir, name) >= (int) sizeof cpath
        || snprintf(ppath, sizeof ppath, "%s/%s.pub", dir, name) >= (int) sizeof ppath) {
        snprintf(err, errlen, "data dir path too long");
        return SL_EINVAL;
    }
    rc = slc_cert_load(cpath, cert, why, sizeof why);
    if (rc == SL_ENOTFOUND) {
        /* A NAME.pub left from an earlier pair would name the wrong key. */
        if (unlink(ppath) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot replace %s: %s", ppath, strerror(errno));
            return SL_ESYS;
        }
        rc = slc_cert_generate(cert);
        if (rc == 0)
            rc = slc_cert_save(cert, name, cpath, ppath, why, sizeof why);
        if (rc) {
            snprintf(err, errlen, "cannot create %s: %s", cpath, why);
            return rc;
        }
        *created = true;
        return 0;
    }
    if (rc == 0 && !cert->has_secret) {
        snprintf(why, sizeof why, "it holds no secret key");
        rc = SL_EINVAL;
    }
    if (rc) {
        snprintf(err, errlen, "%s: %s", cpath, why);
        return rc;
    }
    if (stat(ppath, &st) != 0
        && slc_cert_save(cert, name, NULL, ppath, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", ppath, why);
        return SL_ESYS;
    }
    return 0;
}

int sld_keys_setup(const char *data_dir, slc_cert_t *server, slc_cert_t *admin,
                   bool *created_admin, char *err, size_t errlen)
{
    bool created_server;
    int rc = s_pair(data_dir, "server", server, &created_server, err, errlen);
    if (rc == 0)
        rc = s_pair(data_dir, "admin", admin, created_admin, err, errlen);
    return rc;
}

int sld_keys_write_endpoint(const char *data_dir, const char *endpoint,
                            bool plaintext, char *err, size_t errlen)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    if (snprintf(path, sizeof path, "%s/endpoint", data_dir) >= (int) sizeof path) {
        snprintf(err, errlen, "data dir path too long");
        return SL_EINVAL;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return SL_ESYS;
    }
    fprintf(f, "%s\n%s", endpoint, plaintext ? "plaintext\n" : "");
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return SL_ESYS;
    }
    return 0;
}
