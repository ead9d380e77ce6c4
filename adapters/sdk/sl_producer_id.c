/*  sl_producer_id - the producer id file: parse, create, lock; and the
 *  random bytes ids (and the session's jitter seed) are made of. Any thread;
 *  no state: the locked descriptor is handed to the caller. Reasons go to
 *  the caller's err buffer, which sl_client_new logs (the log lines are
 *  those libsluice always printed).  */
#include "sl_producer_id.h"
#include "sl_util.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

int sli_random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            SLI_LOG("getrandom failed: %s", strerror(errno));
            return SL_ESYS;
        }
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

/* ------------------------------------------------------- producer id file */

static int s_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int s_id_parse(const char *s, size_t len, uint8_t *id)
{
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'
                       || s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len != 2 * SLC_PRODUCER_ID_LEN)
        return SL_EINVAL;
    for (size_t i = 0; i < SLC_PRODUCER_ID_LEN; i++) {
        int hi = s_hex_value(s[2 * i]), lo = s_hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return SL_EINVAL;
        id[i] = (uint8_t) (hi << 4 | lo);
    }
    return 0;
}

/* Read the id from the file, or create it. The flock is held as long as the
 * descriptor stays open: two live producers with one id would have the
 * broker drop one's messages as the other's duplicates. */
int sli_producer_id_open(const char *path, uint8_t id[SLC_PRODUCER_ID_LEN],
                         int *fd_out, char *err, size_t errlen)
{
    int rc = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        slc_errf(err, errlen, "cannot open producer id file %s: %s", path,
                 strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            slc_errf(err, errlen, "producer id file %s is locked by another "
                     "client: each concurrent producer needs its own file", path);
            rc = SL_EBUSY;
        }
        else {
            slc_errf(err, errlen, "cannot lock producer id file %s: %s", path,
                     strerror(errno));
            rc = SL_ESYS;
        }
        goto fail;
    }
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n < 0) {
        slc_errf(err, errlen, "cannot read producer id file %s: %s", path,
                 strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    if (n > 0) {
        rc = s_id_parse(buf, (size_t) n, id);
        if (rc) {
            slc_errf(err, errlen, "producer id file %s does not hold a "
                     "producer id (%d hex digits)", path, 2 * SLC_PRODUCER_ID_LEN);
            goto fail;
        }
    }
    else {
        rc = sli_random_bytes(id, SLC_PRODUCER_ID_LEN);
        if (rc)
            goto fail;
        char hex[2 * SLC_PRODUCER_ID_LEN + 2];
        for (size_t i = 0; i < SLC_PRODUCER_ID_LEN; i++)
            snprintf(hex + 2 * i, 3, "%02x", id[i]);
        hex[2 * SLC_PRODUCER_ID_LEN] = '\n';
        size_t len = 2 * SLC_PRODUCER_ID_LEN + 1;
        if (pwrite(fd, hex, len, 0) != (ssize_t) len || fsync(fd) != 0) {
            slc_errf(err, errlen, "cannot write producer id file %s: %s", path,
                     strerror(errno));
            rc = SL_ESYS;
            goto fail;
        }
    }
    *fd_out = fd;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    return rc;
}
