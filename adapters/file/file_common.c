/*  file_common - state directory, atomic files, fingerprints' hex form and
 *  the client of every `sluice-file` command. No file-scope state.  */
#include "file_common.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void file_hex(const uint8_t id[16], char hex[FILE_ID_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < 16; i++) {
        hex[2 * i] = digits[id[i] >> 4];
        hex[2 * i + 1] = digits[id[i] & 15];
    }
    hex[32] = '\0';
}

/* mkdir -p PATH with MODE for what it creates. 0 or -1 (errno). */
static int s_mkdirs(char *path, mode_t mode)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, mode);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    if (mkdir(path, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int file_state_dir(const char *dir, char *out, size_t outlen, char *err, size_t errlen)
{
    const char *env = getenv("SLUICE_FILE_STATE");
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (dir && *dir)
        n = snprintf(out, outlen, "%s", dir);
    else if (env && *env)
        n = snprintf(out, outlen, "%s", env);
    else if (xdg && *xdg)
        n = snprintf(out, outlen, "%s/sluice-file", xdg);
    else if (home && *home)
        n = snprintf(out, outlen, "%s/.local/state/sluice-file", home);
    else {
        snprintf(err, errlen, "no state directory: give --state-dir (no "
                 "$SLUICE_FILE_STATE, $XDG_STATE_HOME or $HOME)");
        return -1;
    }
    if (n < 0 || (size_t) n >= outlen) {
        snprintf(err, errlen, "state directory path too long");
        return -1;
    }
    if (s_mkdirs(out, 0700) != 0) {
        snprintf(err, errlen, "cannot create state directory %s: %s", out,
                 strerror(errno));
        return -1;
    }
    return 0;
}

int file_fsync_dir(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int file_write_atomic(const char *path, const void *data, size_t len,
                      char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    int fd = -1, rc = -1;
    const char *what = "open", *which = tmp;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int) sizeof tmp) {
        errno = ENAMETOOLONG;
        goto fail;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    what = "write";
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        p += n;
        len -= (size_t) n;
    }
    what = "fsync";
    if (fsync(fd) != 0)
        goto fail;
    what = "close";
    rc = close(fd);
    fd = -1;
    if (rc != 0) {
        rc = -1;
        goto fail;
    }
    what = "rename";
    which = path;
    if (rename(tmp, path) != 0)
        goto fail;
    what = "fsync the directory of";
    if (file_fsync_dir(path) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "cannot %s %s: %s", what, which, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

int file_client_open(const http_client_opts_t *client, const char *name,
                     const char *producer_id_file, sl_client_t **out)
{
    sl_options_t o;
    char err[512] = "";
    http_client_options(client, NULL, &o);
    o.name = name;
    o.producer_id_file = producer_id_file;
    int rc = sl_client_new(&o, out);
    if (rc) {
        sl_options_check(&o, err, sizeof err);
        http_log(HTTP_LOG_ERROR, "client", "code=%d error=%s reason=\"%s\"", rc,
                 sl_strerror(rc), err[0] ? err : sl_strerror(rc));
        return FILE_EXIT_FAILED;
    }
    rc = sl_client_connect(*out);
    if (rc) {
        http_log(HTTP_LOG_ERROR, "connect", "endpoint=%s code=%d error=%s reason=\"%s\"",
                 client->conn.endpoint, rc, sl_strerror(rc),
                 sl_client_last_error(*out));
        sl_client_destroy(out);
        return rc == SL_ETIMEOUT ? FILE_EXIT_UNREACHABLE : FILE_EXIT_FAILED;
    }
    return FILE_EXIT_OK;
}

int file_parse_duration(const char *text, uint64_t *ms)
{
    char num[32];
    size_t n = strspn(text, "0123456789");
    uint64_t v, mul = 1000;
    if (n == 0 || n >= sizeof num)
        return -1;
    memcpy(num, text, n);
    num[n] = '\0';
    if (http_parse_u64(num, &v) != 0)
        return -1;
    const char *u = text + n;
    if (strcmp(u, "ms") == 0)
        mul = 1;
    else if (strcmp(u, "s") == 0 || !*u)
        mul = 1000;
    else if (strcmp(u, "m") == 0)
        mul = 60000;
    else if (strcmp(u, "h") == 0)
        mul = 3600000;
    else if (strcmp(u, "d") == 0)
        mul = 86400000;
    else
        return -1;
    if (v > UINT64_MAX / mul)
        return -1;
    *ms = v * mul;
    return 0;
}

uint64_t file_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

int file_options(int argc, char **argv, const struct option *options,
                 http_client_opts_t *client, const char *usage,
                 file_option_fn *fn, void *ctx)
{
    int opt, rc = 0;
    optind = 1;
    while (rc == 0 && (opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        if (http_client_option(client, opt, optarg))
            continue;
        if (opt == 'h') {
            fputs(usage, stdout);
            return -1;
        }
        if (opt == '?' || opt == ':')
            return http_option_error(client->prog, argv, opt);
        rc = fn(opt, optarg, ctx);
    }
    return rc;
}

int file_lock(const char *path, const char *busy)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        return fd;
    http_log(HTTP_LOG_ERROR, "lock", "file=%s reason=\"%s\"", path,
             fd >= 0 && errno == EWOULDBLOCK ? busy : strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

cJSON *file_json_load(const char *path, bool *missing, char *err, size_t errlen)
{
    char *text = NULL;
    size_t cap = 0, len = 0, k;
    cJSON *doc = NULL;
    *missing = false;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *missing = errno == ENOENT;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    do {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *t = realloc(text, cap);
            if (!t) {
                snprintf(err, errlen, "out of memory reading %s", path);
                goto done;
            }
            text = t;
        }
        k = fread(text + len, 1, cap - len - 1, f);
        len += k;
    } while (k > 0);
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    text[len] = '\0';
    doc = cJSON_Parse(text);
    if (!doc)
        snprintf(err, errlen, "%s is not JSON", path);
done:
    free(text);
    fclose(f);
    return doc;
}

void file_json_add_u64(cJSON *o, const char *key, uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long) v);
    cJSON_AddStringToObject(o, key, b);
}

int file_json_u64(const cJSON *o, const char *key, uint64_t *v)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    char *end;
    if (!cJSON_IsString(j) || j->valuestring[0] < '0' || j->valuestring[0] > '9')
        return -1;
    errno = 0;
    *v = strtoull(j->valuestring, &end, 10);
    return errno || *end ? -1 : 0;
}

int file_receive_batch(sl_sub_t *sub, sl_msg_t **msgs, size_t max, uint64_t linger_ms,
                       size_t *n)
{
    uint64_t until = http_now_ms() + linger_ms;
    *n = 0;
    while (*n < max && !http_stopping()) {
        uint64_t now = http_now_ms();
        int wait = *n ? (now >= until ? 0 : (int) (until - now)) : 200;
        int k = sl_sub_next(sub, wait, &msgs[*n]);
        if (k == SL_ETIMEOUT)
            return 0;
        if (k) {
            http_log(HTTP_LOG_ERROR, "receive", "code=%d error=%s", k, sl_strerror(k));
            return k;
        }
        (*n)++;
    }
    return 0;
}
