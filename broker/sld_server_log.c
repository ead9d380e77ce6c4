/*  sld_server_log - the broker's log lines and where they go. A line is
 *  text ("TIME sluiced LEVEL: msg", the default) or one JSON object per
 *  line (time RFC 3339 UTC with ms, level, module, msg, and the numbers
 *  a line carries as members whose names say their unit: silent_ms,
 *  map_size_bytes) with broker/log_format json; it goes to stderr, which --log-file points at a
 *  file that SIGUSR1 reopens. In json mode stderr is a pipe: a reader
 *  thread wraps every line that is not JSON already (modules and libraries
 *  that fprintf to stderr) so the destination holds JSON only. Lines are
 *  written with one write() each so threads do not interleave. The
 *  sld_log_t is main()'s; sld_server_log is any server file's (broker
 *  thread). It does not count or audit anything.  */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "slc.h"
#include "sluice_codes.h"
#include "sld_server_int.h"
#include "sld_server_log.h"

#define S_LINE_MAX 4096         /* longer lines are cut: a pipe write up to
                                   PIPE_BUF (4096 on Linux) is atomic */

struct sld_log {
    char path[PATH_MAX];        /* log_file, "" = stderr */
    bool json;                  /* log_format json */
    int out_fd;                 /* json: where the reader thread writes; -1 in text */
    int pipe_r;                 /* json: the pipe's read end; -1 in text */
    pthread_t reader;
    bool reading;               /* the reader thread runs */
};

static const char *const s_levels[] = { "error", "warn", "info", "debug" };

static const char *s_level_name(int level)
{
    return s_levels[level < 0 ? 0 : level > 3 ? 3 : level];
}

/* Append S to BUF (at *n, capacity CAP) as a JSON string body. Stops short
 * rather than overflow, keeping 16 bytes for what follows (at most the
 * 9 bytes between module and msg, then the 3 that close the line). */
static void s_json_text(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
    for (size_t i = 0; i < len && *n + 16 < cap; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c == '"' || c == '\\') {
            buf[(*n)++] = '\\';
            buf[(*n)++] = (char) c;
        }
        else if (c == '\n' || c == '\t' || c == '\r') {
            buf[(*n)++] = '\\';
            buf[(*n)++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
        }
        else if (c < 0x20 || c == 0x7f) {
            if (*n + 22 >= cap)
                break;
            *n += (size_t) snprintf(buf + *n, cap - *n, "\\u%04x", c);
        }
        else
            buf[(*n)++] = (char) c;
    }
}

/* One complete line, '\n' included, into BUF; returns its length. JSON
 * lines end with FIELDS[NF] as number members. */
static size_t s_format(char *buf, size_t cap, bool json, int level, const char *module,
                       const char *msg, size_t msg_len, const sld_log_field_t *fields,
                       size_t nf)
{
    struct timespec ts;
    struct tm tm;
    char when[32];
    size_t n = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", gmtime_r(&ts.tv_sec, &tm));
    if (!json) {
        int w = snprintf(buf, cap, "%sZ sluiced %s: %.*s", when, s_level_name(level),
                         (int) msg_len, msg);
        n = w < 0 ? 0 : (size_t) w >= cap - 1 ? cap - 2 : (size_t) w;
        buf[n++] = '\n';
        return n;
    }
    n = (size_t) snprintf(buf, cap, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"module\":\"",
                          when, ts.tv_nsec / 1000000, s_level_name(level));
    s_json_text(buf, cap, &n, module, strlen(module));
    memcpy(buf + n, "\",\"msg\":\"", 9);
    n += 9;
    s_json_text(buf, cap, &n, msg, msg_len);
    buf[n++] = '"';
    /* A field name is a C identifier of ours: no escaping. Room for the
     * closing "}\n" is kept; a field that does not fit is left out. */
    for (size_t i = 0; i < nf; i++) {
        char member[96];
        int w = snprintf(member, sizeof member, ",\"%s\":%" PRIu64, fields[i].name,
                         fields[i].value);
        if (w > 0 && (size_t) w < sizeof member && n + (size_t) w + 3 < cap) {
            memcpy(buf + n, member, (size_t) w);
            n += (size_t) w;
        }
    }
    memcpy(buf + n, "}\n", 2);
    return n + 2;
}

static void s_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;                     /* nowhere left to say so */
        buf += w;
        len -= (size_t) w;
    }
}

static void s_vlog(bool json, int level, const char *module, const sld_log_field_t *fields,
                   size_t nf, const char *fmt, va_list ap)
{
    char msg[S_LINE_MAX], line[S_LINE_MAX];
    int len = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t mlen = len < 0 ? 0 : (size_t) len >= sizeof msg ? sizeof msg - 1 : (size_t) len;
    size_t n = s_format(line, sizeof line, json, level, module, msg, mlen, fields, nf);
    s_write_all(STDERR_FILENO, line, n);
}

void sld_server_log(const sld_server_t *self, int level, const char *fmt, ...)
{
    if (level > self->cfg.log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    s_vlog(strcmp(self->cfg.log_format, "json") == 0, level, "broker", NULL, 0, fmt, ap);
    va_end(ap);
}

void sld_server_log_with(const sld_server_t *self, int level, const sld_log_field_t *fields,
                         size_t n, const char *fmt, ...)
{
    if (level > self->cfg.log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    s_vlog(strcmp(self->cfg.log_format, "json") == 0, level, "broker", fields, n, fmt, ap);
    va_end(ap);
}

void sld_log_line(const sld_log_t *self, int level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vlog(self && self->json, level, module, NULL, 0, fmt, ap);
    va_end(ap);
}

/* A line someone wrote to stderr in json mode, as JSON on OUT_FD. Lines
 * that are JSON already (sld_server_log's) pass as they are. The others
 * read "sluiced: [module: ]text" by house habit: the module is that word
 * when there is one; the level is a guess from the words, as the writer
 * did not say one. */
static void s_wrap(int out_fd, const char *text, size_t len)
{
    char line[S_LINE_MAX + 512], module[32] = "sluiced";
    if (len > 0 && text[0] == '{') {
        s_write_all(out_fd, text, len);
        s_write_all(out_fd, "\n", 1);
        return;
    }
    if (len >= 9 && strncmp(text, "sluiced: ", 9) == 0) {
        text += 9;
        len -= 9;
    }
    size_t w = 0;
    while (w < len && w < sizeof module - 1
           && ((text[w] >= 'a' && text[w] <= 'z') || text[w] == '_'))
        w++;
    if (w > 0 && w + 1 < len && text[w] == ':' && text[w + 1] == ' ') {
        memcpy(module, text, w);
        module[w] = 0;
    }
    char probe[S_LINE_MAX + 1];
    snprintf(probe, sizeof probe, "%.*s", (int) (len < S_LINE_MAX ? len : S_LINE_MAX), text);
    int level = 2;
    if (strstr(probe, "warning") || strstr(probe, "UNSAFE"))
        level = 1;
    else if (strstr(probe, "cannot") || strstr(probe, "failed") || strstr(probe, "error")
             || strstr(probe, "DAMAGED") || strstr(probe, "damaged") || strstr(probe, "refus"))
        level = 0;
    size_t n = s_format(line, sizeof line, true, level, module, text, len, NULL, 0);
    s_write_all(out_fd, line, n);
}

/* The json reader: whole lines from the pipe to OUT_FD until every write
 * end is closed (sld_log_destroy). */
static void *s_reader(void *arg)
{
    sld_log_t *self = arg;
    char buf[S_LINE_MAX];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(self->pipe_r, buf + have, sizeof buf - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t) r;
        size_t start = 0;
        for (size_t i = 0; i < have; i++)
            if (buf[i] == '\n') {
                s_wrap(self->out_fd, buf + start, i - start);
                start = i + 1;
            }
        if (start == 0 && have == sizeof buf) {
            s_wrap(self->out_fd, buf, have);    /* a line too long: cut */
            have = 0;
        }
        else {
            memmove(buf, buf + start, have - start);
            have -= start;
        }
    }
    if (have > 0)
        s_wrap(self->out_fd, buf, have);
    return NULL;
}

static int s_open_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        slc_errf(err, errlen, "cannot open the log file %s: %s (SL_ESYS)", path,
                 strerror(errno));
    return fd;
}

int sld_log_open(const sld_config_t *cfg, sld_log_t **out, char *err, size_t errlen)
{
    int rc = 0, fd = -1, p[2] = { -1, -1 };
    sld_log_t *self = calloc(1, sizeof *self);
    if (!self) {
        slc_errf(err, errlen, "out of memory opening the log (SL_ENOMEM)");
        return SL_ENOMEM;
    }
    snprintf(self->path, sizeof self->path, "%s", cfg->log_file);
    self->json = strcmp(cfg->log_format, "json") == 0;
    self->out_fd = self->pipe_r = -1;
    if (self->path[0]) {
        fd = s_open_file(self->path, err, errlen);
        if (fd < 0) {
            rc = SL_ESYS;
            goto fail;
        }
    }
    if (!self->json) {
        if (fd >= 0 && dup2(fd, STDERR_FILENO) < 0) {
            slc_errf(err, errlen, "cannot log to %s: dup2: %s (SL_ESYS)", self->path,
                     strerror(errno));
            rc = SL_ESYS;
            goto fail;
        }
        if (fd >= 0)
            close(fd);
        *out = self;
        return 0;
    }
    if (fd < 0)
        fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    if (fd < 0 || pipe2(p, O_CLOEXEC) != 0) {
        slc_errf(err, errlen, "cannot set up the json log: %s (SL_ESYS)", strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    self->out_fd = fd;
    self->pipe_r = p[0];
    fd = -1;
    if (pthread_create(&self->reader, NULL, s_reader, self) != 0) {
        slc_errf(err, errlen, "cannot start the json log thread (SL_ESYS)");
        rc = SL_ESYS;
        goto fail;
    }
    self->reading = true;
    if (dup2(p[1], STDERR_FILENO) < 0) {
        slc_errf(err, errlen, "cannot log through the pipe: dup2: %s (SL_ESYS)",
                 strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    close(p[1]);
    *out = self;
    return 0;
fail:
    if (p[1] >= 0)
        close(p[1]);                    /* the reader, if started, sees EOF */
    if (self->reading)
        pthread_join(self->reader, NULL);
    if (self->pipe_r >= 0)
        close(self->pipe_r);
    if (self->out_fd >= 0)
        close(self->out_fd);
    if (fd >= 0)
        close(fd);
    free(self);
    return rc;
}

int sld_log_reopen(sld_log_t *self, char *err, size_t errlen)
{
    int rc = 0;
    if (!self->path[0]) {
        sld_log_line(self, 1, "log", "SIGUSR1: no --log-file, nothing to reopen");
        return SL_EINVAL;
    }
    int fd = s_open_file(self->path, err, errlen);
    if (fd < 0) {
        rc = SL_ESYS;
        goto fail;
    }
    /* dup2 swaps the file under the descriptor in one step: a line written
     * meanwhile lands whole in the old file or in the new one. */
    if (dup2(fd, self->json ? self->out_fd : STDERR_FILENO) < 0) {
        slc_errf(err, errlen, "cannot reopen the log file %s: dup2: %s (SL_ESYS)",
                 self->path, strerror(errno));
        close(fd);
        rc = SL_ESYS;
        goto fail;
    }
    close(fd);
    sld_log_line(self, 2, "log", "log file %s reopened (SIGUSR1)", self->path);
    return 0;
fail:
    return rc;
}

void sld_log_destroy(sld_log_t **self_p)
{
    sld_log_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    if (self->reading) {
        /* stderr was the pipe's last write end: pointing it back at the
         * destination closes the pipe, the reader drains it and ends. */
        fflush(stderr);
        dup2(self->out_fd, STDERR_FILENO);
        pthread_join(self->reader, NULL);
    }
    if (self->pipe_r >= 0)
        close(self->pipe_r);
    if (self->out_fd >= 0)
        close(self->out_fd);
    free(self);
    *self_p = NULL;
}
