/*  file_tail - `sluice-file tail --topic TOPIC PATH|GLOB...`.
 *
 *  Every file followed has an entry (file_tail_state): a producer id made
 *  when the file was first seen and saved before its first line is sent,
 *  and the offset and record count the broker has durably acked. Record N
 *  of a file goes out with sequence N of its id, so after a restart of
 *  the tailer the broker's last stored sequence (sl_publish_next_seq)
 *  tells which records past the saved offset were stored already: they
 *  are read and skipped, never sent twice, and nothing after the saved
 *  offset is skipped unsent. One client (one connection) per open file.
 *
 *  Files are recognised by a fingerprint of their first bytes, the inode
 *  being a hint: an open file stays bound to its descriptor, so a file
 *  renamed away (rename+create rotation) is read to its end, its partial
 *  last line then flushed, and let go; a file whose size falls below what
 *  was read, or whose first bytes change, was truncated (copytruncate):
 *  its entry lets go of it, the new content becomes a new entry from
 *  offset 0, and the copy, when a pattern matches it, is recognised by the
 *  fingerprint and read on from the saved offset. A line without its
 *  newline is held until it is complete.
 *
 *  Main thread only; the loop polls (--poll-interval) rather than using
 *  inotify, which misses renames across directories and NFS.  */
#include "file_tail.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "file_common.h"
#include "file_tail_state.h"

#define S_SLOTS (1u << 16)      /* records in flight per file, at most */
#define S_MASK (S_SLOTS - 1)
#define S_CHUNK (256u * 1024)
#define S_MAX_EXCLUDES 32

typedef struct {
    http_client_opts_t client;
    const char *topic;
    const char *state_arg, *state_dir;
    char state_path[PATH_MAX], lock_path[PATH_MAX + 8], dir[PATH_MAX];
    uint32_t fp_bytes;
    uint64_t poll_ms, scan_ms, save_ms, rotated_wait_ms, inactive_ms, forget_ms;
    uint64_t multiline_ms;
    size_t max_line;
    const char *excludes[S_MAX_EXCLUDES];
    size_t nexcludes;
    const char *multiline;      /* --multiline-start */
    pcre2_code *start_re;       /* it compiled, or NULL */
    bool excludes_given;        /* the first --exclude drops the defaults */
    char **patterns;
    int npatterns;
} s_opts_t;

typedef struct s_file s_file_t;

typedef struct {
    s_opts_t *o;
    s_file_t **files;
    size_t nfiles, cap;
    bool dirty;                 /* an acked position moved: save when due */
    uint64_t last_save, last_scan;
    pcre2_match_data *md;
    char *chunk;                /* CHUNK_LEN bytes */
    size_t chunk_len;           /* at least --max-line + 1 */
    int exit_code;
} s_tail_t;

struct s_file {
    file_tail_entry_t st;       /* acked position: what the state file keeps */
    s_tail_t *t;
    int fd;                     /* -1: not open */
    sl_client_t *client;
    bool seen;                  /* matched by the last scan */
    bool rotated;               /* no pattern matches it any more, or deleted */
    bool waiting_logged;
    uint64_t read_off;          /* next byte to read (start of a held line) */
    uint64_t next_rec;          /* records numbered so far */
    uint64_t skip_until;        /* the broker's last stored seq at bind */
    uint64_t last_size, grew_ms;
    uint64_t *ends;             /* S_SLOTS: end offset of each record in flight */
    uint8_t *done;              /* S_SLOTS: its confirm came */
    char *mbuf;                 /* multi-line record being joined */
    size_t mlen, mcap;
    uint64_t mend;              /* offset just past its last line */
    uint64_t mlast_ms;
};

static const char s_usage[] =
    "Usage: sluice-file tail --topic TOPIC [options] PATH|GLOB...\n"
    "\n"
    "Follow growing log files and publish each line (or each multi-line\n"
    "event) to TOPIC, once: across restarts of the tailer and the broker,\n"
    "and across rotation by rename+create and by copytruncate. Quote globs\n"
    "so the shell leaves them to sluice-file, which looks again every\n"
    "--scan-interval. Give a pattern that also matches the rotated names\n"
    "(app.log*) so a copytruncate copy and a file renamed while the tailer\n"
    "was down are read to their end. Runs until SIGTERM or SIGINT.\n"
    "\n"
    "  --topic TOPIC           where to publish (required)\n"
    "  --state FILE            positions, atomically replaced (default\n"
    "                          STATE-DIR/tail-TOPIC.json; one tailer per file)\n"
    "  --state-dir DIR         default $SLUICE_FILE_STATE, $XDG_STATE_HOME/\n"
    "                          sluice-file or ~/.local/state/sluice-file\n"
    "  --exclude GLOB          skip names matching GLOB (repeatable; default\n"
    "                          *.gz *.bz2 *.xz *.zst *.zip)\n"
    "  --multiline-start REGEX a line matching REGEX (PCRE2) starts an event;\n"
    "                          other lines join the event before them\n"
    "  --multiline-timeout DUR an event with no new line for DUR is sent\n"
    "                          (default 1s)\n"
    "  --fingerprint-bytes N   bytes that identify a file (default 1024;\n"
    "                          a shorter file is identified by what it has\n"
    "                          and re-keyed as it grows)\n"
    "  --max-line BYTES        a longer line is cut into records of BYTES\n"
    "                          (default 1MiB, at most the broker's limit)\n"
    "  --poll-interval DUR     how often open files are read (default 100ms)\n"
    "  --scan-interval DUR     how often patterns are expanded again (1s)\n"
    "  --rotated-wait DUR      a file renamed away or deleted is let go DUR\n"
    "                          after its last growth (default 5s)\n"
    "  --close-inactive DUR    close a file that did not grow for DUR; it is\n"
    "                          opened again when it grows (default 5m)\n"
    "  --forget-after DUR      drop the entry of a file not seen for DUR\n"
    "                          (default 7d)\n"
    HTTP_CLIENT_USAGE
    "\n"
    "Exit: 0 stopped by a signal, 1 failed, 2 broker unreachable, 64 usage.\n";

enum { S_OPT_TOPIC = HTTP_OPT_OWN, S_OPT_STATE, S_OPT_STATE_DIR, S_OPT_EXCLUDE,
       S_OPT_ML_START, S_OPT_ML_TIMEOUT, S_OPT_FP, S_OPT_MAX_LINE, S_OPT_POLL,
       S_OPT_SCAN, S_OPT_ROTATED, S_OPT_INACTIVE, S_OPT_FORGET };

/* ---------------------------------------------------------------- state */

static void s_save(s_tail_t *t, bool force)
{
    uint64_t now = http_now_ms();
    if (!force && (!t->dirty || now - t->last_save < t->o->save_ms))
        return;
    const file_tail_entry_t **v = malloc((t->nfiles + 1) * sizeof *v);
    char err[PATH_MAX + 128];
    if (!v)
        return;
    for (size_t i = 0; i < t->nfiles; i++)
        v[i] = &t->files[i]->st;
    if (file_tail_state_save(t->o->state_path, t->o->topic, v, t->nfiles, err,
                             sizeof err) != 0)
        http_log(HTTP_LOG_ERROR, "state", "reason=\"%s\"", err);
    else {
        t->dirty = false;
        t->last_save = now;
    }
    free(v);
}

static s_file_t *s_file_add(s_tail_t *t, const file_tail_entry_t *st)
{
    if (t->nfiles == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        s_file_t **v = realloc(t->files, cap * sizeof *v);
        if (!v)
            return NULL;
        t->files = v;
        t->cap = cap;
    }
    s_file_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->st = *st;
    f->t = t;
    f->fd = -1;
    t->files[t->nfiles++] = f;
    return f;
}

/* ------------------------------------------------------------- records */

static void s_on_confirm(const sl_confirm_t *c, void *arg)
{
    s_file_t *f = arg;
    if (c->rc != 0)
        http_log(HTTP_LOG_WARN, "rejected", "file=%s record=%" PRIu64 " code=%d "
                 "reason=\"%s\"", f->st.path, c->seq, c->rc, c->text ? c->text : "");
    if (c->seq <= f->st.records || c->seq > f->next_rec)
        return;
    f->done[c->seq & S_MASK] = 1;
    while (f->st.records < f->next_rec && f->done[(f->st.records + 1) & S_MASK]) {
        uint64_t s = ++f->st.records;
        f->done[s & S_MASK] = 0;
        f->st.offset = f->ends[s & S_MASK];
        f->t->dirty = true;
    }
}

/* Record P (N bytes) ends at offset END. 0 or -1 (fatal: logged). */
static int s_emit(s_file_t *f, const char *p, size_t n, uint64_t end)
{
    uint64_t rec = ++f->next_rec;
    if (rec <= f->skip_until) {
        /* Stored before the restart: the broker told so. */
        f->st.records = rec;
        f->st.offset = end;
        f->t->dirty = true;
        return 0;
    }
    f->ends[rec & S_MASK] = end;
    f->done[rec & S_MASK] = 0;
    sl_message_t m = { .topic = f->t->o->topic, .payload = p, .len = n,
                       .content_type = "text/plain" };
    uint64_t seq = 0;
    int rc = sl_publish(f->client, &m, s_on_confirm, f, &seq);
    if (rc == 0 && seq != rec) {
        http_log(HTTP_LOG_ERROR, "sequence", "file=%s record=%" PRIu64 " seq=%" PRIu64
                 " reason=\"another producer uses this file's id\"", f->st.path, rec, seq);
        return -1;
    }
    if (rc) {
        http_log(HTTP_LOG_ERROR, "publish", "file=%s record=%" PRIu64 " code=%d error=%s",
                 f->st.path, rec, rc, sl_strerror(rc));
        return -1;
    }
    return 0;
}

static int s_ml_flush(s_file_t *f)
{
    if (!f->mlen && !f->mend)
        return 0;
    int rc = s_emit(f, f->mbuf, f->mlen, f->mend);
    f->mlen = 0;
    f->mend = 0;
    return rc;
}

/* One complete line P (N bytes, no newline) that ends at offset END. */
static int s_line(s_file_t *f, const char *p, size_t n, uint64_t end)
{
    const s_opts_t *o = f->t->o;
    if (n && p[n - 1] == '\r')
        n--;
    if (!o->start_re)
        return s_emit(f, p, n, end);
    bool starts = pcre2_match(o->start_re, (PCRE2_SPTR) p, n, 0, 0, f->t->md, NULL) >= 0;
    int rc = 0;
    if (starts && f->mend)
        rc = s_ml_flush(f);
    size_t need = f->mlen + n + 1;
    if (need > o->max_line) {
        /* An event longer than a message may be goes out in pieces. */
        rc = rc ? rc : s_ml_flush(f);
        need = n + 1;
    }
    if (need > f->mcap) {
        size_t cap = f->mcap ? f->mcap : 4096;
        while (cap < need)
            cap *= 2;
        char *b = realloc(f->mbuf, cap);
        if (!b)
            return -1;
        f->mbuf = b;
        f->mcap = cap;
    }
    if (f->mend)
        f->mbuf[f->mlen++] = '\n';
    memcpy(f->mbuf + f->mlen, p, n);
    f->mlen += n;
    f->mend = end;
    f->mlast_ms = http_now_ms();
    return rc;
}

/* Read what is there; true when something was read. -1 on a fatal error. */
static int s_read(s_file_t *f, uint64_t size)
{
    const s_opts_t *o = f->t->o;
    char *buf = f->t->chunk;
    int got = 0;
    while (f->read_off < size && f->next_rec - f->st.records < S_SLOTS - 1) {
        size_t cl = f->t->chunk_len;
        size_t want = size - f->read_off < cl ? (size_t) (size - f->read_off) : cl;
        ssize_t n = pread(f->fd, buf, want, (off_t) f->read_off);
        if (n <= 0)
            break;
        const char *p = buf, *endp = buf + n;
        while (p < endp && f->next_rec - f->st.records < S_SLOTS - 1) {
            const char *nl = memchr(p, '\n', (size_t) (endp - p));
            size_t len = nl ? (size_t) (nl - p) : (size_t) (endp - p);
            if (!nl && len < o->max_line)
                break;          /* held until its newline comes */
            if (len > o->max_line)
                len = o->max_line;
            uint64_t end = f->read_off + (uint64_t) (p - buf) + len + (nl && p + len == nl);
            if (s_line(f, p, len, end) != 0)
                return -1;
            p += len + (nl && p + len == nl);
            got = 1;
        }
        if (p == buf)
            break;
        f->read_off += (uint64_t) (p - buf);
    }
    return got;
}

/* The held partial line of a file that will not grow: sent as it is. */
static int s_flush_partial(s_file_t *f, uint64_t size)
{
    int rc = 0;
    if (f->read_off < size) {
        size_t len = size - f->read_off < f->t->o->max_line
                     ? (size_t) (size - f->read_off) : f->t->o->max_line;
        ssize_t n = pread(f->fd, f->t->chunk, len, (off_t) f->read_off);
        if (n == (ssize_t) len) {
            rc = s_line(f, f->t->chunk, len, f->read_off + len);
            f->read_off += len;
        }
    }
    return rc ? rc : s_ml_flush(f);
}

/* ------------------------------------------------------------ binding */

static void s_unbind(s_file_t *f, int flush_ms)
{
    if (f->client && flush_ms)
        sl_flush(f->client, flush_ms);
    sl_client_destroy(&f->client);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    free(f->ends);
    free(f->done);
    f->ends = NULL;
    f->done = NULL;
    f->mlen = f->mend = 0;
}

/* F's producer id in hex and its id file in the state directory. */
static void s_idfile(const s_file_t *f, char hex[FILE_ID_HEX], char *path, size_t len)
{
    file_hex(f->st.id, hex);
    snprintf(path, len, "%s/tail-%s.id", f->t->o->dir, hex);
}

/* Open F's client on FD (taken) and start reading at its acked offset. */
static int s_bind(s_file_t *f, int fd, const char *path, const struct stat *sb)
{
    s_tail_t *t = f->t;
    char hex[FILE_ID_HEX], idfile[PATH_MAX + 64], err[PATH_MAX + 128];
    f->fd = fd;
    snprintf(f->st.path, sizeof f->st.path, "%s", path);
    f->st.dev = (uint64_t) sb->st_dev;
    f->st.ino = (uint64_t) sb->st_ino;
    f->st.seen_us = file_now_us();
    f->ends = calloc(S_SLOTS, sizeof *f->ends);
    f->done = calloc(S_SLOTS, sizeof *f->done);
    s_idfile(f, hex, idfile, sizeof idfile);
    if (!f->ends || !f->done)
        goto fail;
    if (access(idfile, F_OK) != 0) {
        char line[FILE_ID_HEX + 1];
        snprintf(line, sizeof line, "%s\n", hex);
        if (file_write_atomic(idfile, line, strlen(line), err, sizeof err) != 0) {
            http_log(HTTP_LOG_ERROR, "state", "reason=\"%s\"", err);
            goto fail;
        }
    }
    /* A broker that cannot be reached now is tried again at the next
     * scan; options it refuses end the run. */
    int rc = file_client_open(&t->o->client, "sluice-file tail", idfile, &f->client);
    if (rc) {
        if (rc != FILE_EXIT_UNREACHABLE)
            t->exit_code = rc;
        goto fail;
    }
    uint64_t next = 1;
    rc = sl_publish_next_seq(f->client, &next);
    if (rc) {
        http_log(HTTP_LOG_ERROR, "connect", "file=%s code=%d error=%s", path, rc,
                 sl_strerror(rc));
        goto fail;
    }
    f->skip_until = next - 1;
    f->read_off = f->st.offset;
    f->next_rec = f->st.records;
    f->last_size = (uint64_t) sb->st_size;
    f->grew_ms = http_now_ms();
    f->seen = true;
    f->rotated = false;
    f->waiting_logged = false;
    http_log(HTTP_LOG_INFO, "open", "file=%s producer=%s offset=%" PRIu64 " records=%"
             PRIu64 " stored_through=%" PRIu64, path, hex, f->st.offset, f->st.records,
             f->skip_until);
    return 0;
fail:
    s_unbind(f, 0);
    return -1;
}

/* ----------------------------------------------------------------- scan */

static bool s_excluded(const s_opts_t *o, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < o->nexcludes; i++)
        if (fnmatch(o->excludes[i], base, 0) == 0 || fnmatch(o->excludes[i], path, 0) == 0)
            return true;
    return false;
}

/* Does F's fingerprint match FD (SIZE bytes)? */
static bool s_fp_matches(const s_file_t *f, int fd, uint64_t size)
{
    uint64_t fp;
    return f->st.fp_len <= size && file_tail_fingerprint(fd, f->st.fp_len, &fp) == 0
           && fp == f->st.fp;
}

/* PATH (stat SB) is not open: find its entry, or make one. */
static void s_scan_path(s_tail_t *t, const char *path, const struct stat *sb)
{
    const s_opts_t *o = t->o;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    uint64_t size = (uint64_t) sb->st_size;
    s_file_t *best = NULL;
    int best_score = -1;
    for (size_t i = 0; i < t->nfiles; i++) {
        s_file_t *f = t->files[i];
        if (!s_fp_matches(f, fd, size))
            continue;
        if (f->fd >= 0) {
            /* Same first bytes as a file being read: a copy being made by
             * copytruncate (the original is truncated next, then the copy
             * takes its entry over), or a twin: wait. */
            if (!f->waiting_logged)
                http_log(HTTP_LOG_INFO, "wait", "file=%s reason=\"same first bytes as %s, "
                         "which is being read\"", path, f->st.path);
            f->waiting_logged = true;
            close(fd);
            return;
        }
        int score = (f->st.dev == (uint64_t) sb->st_dev && f->st.ino == (uint64_t) sb->st_ino) * 2
                    + (strcmp(f->st.path, path) == 0);
        if (score > best_score || (score == best_score && f->st.seen_us > best->st.seen_us)) {
            best = f;
            best_score = score;
        }
    }
    if (best) {
        best->st.seen_us = file_now_us();
        best->seen = true;
        if (strcmp(best->st.path, path) != 0 || best->st.ino != (uint64_t) sb->st_ino) {
            snprintf(best->st.path, sizeof best->st.path, "%s", path);
            best->st.dev = (uint64_t) sb->st_dev;
            best->st.ino = (uint64_t) sb->st_ino;
            t->dirty = true;
        }
        if (size <= best->st.offset) {
            close(fd);          /* nothing new: open it when it grows */
            return;
        }
        s_bind(best, fd, path, sb);
        return;
    }
    if (size == 0) {
        close(fd);
        return;
    }
    file_tail_entry_t st;
    memset(&st, 0, sizeof st);
    st.fp_len = size < o->fp_bytes ? (uint32_t) size : o->fp_bytes;
    if (file_tail_fingerprint(fd, st.fp_len, &st.fp) != 0
        || getrandom(st.id, sizeof st.id, 0) != (ssize_t) sizeof st.id) {
        close(fd);
        return;
    }
    snprintf(st.path, sizeof st.path, "%s", path);
    st.dev = (uint64_t) sb->st_dev;
    st.ino = (uint64_t) sb->st_ino;
    st.seen_us = file_now_us();
    s_file_t *f = s_file_add(t, &st);
    if (!f) {
        close(fd);
        return;
    }
    /* The id is saved before any record goes out under it. */
    s_save(t, true);
    s_bind(f, fd, path, sb);
}

static void s_scan(s_tail_t *t)
{
    const s_opts_t *o = t->o;
    glob_t g;
    memset(&g, 0, sizeof g);
    for (int i = 0; i < o->npatterns; i++)
        glob(o->patterns[i], (i ? GLOB_APPEND : 0) | GLOB_NOCHECK, NULL, &g);
    for (size_t i = 0; i < t->nfiles; i++)
        t->files[i]->seen = false;
    for (size_t k = 0; k < g.gl_pathc; k++) {
        const char *path = g.gl_pathv[k];
        struct stat sb;
        if (s_excluded(o, path) || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        s_file_t *open_f = NULL;
        for (size_t i = 0; i < t->nfiles && !open_f; i++) {
            s_file_t *f = t->files[i];
            if (f->fd >= 0 && f->st.dev == (uint64_t) sb.st_dev
                && f->st.ino == (uint64_t) sb.st_ino)
                open_f = f;
        }
        if (open_f) {
            open_f->seen = true;
            if (strcmp(open_f->st.path, path) != 0) {
                snprintf(open_f->st.path, sizeof open_f->st.path, "%s", path);
                t->dirty = true;
            }
            continue;
        }
        s_scan_path(t, path, &sb);
    }
    globfree(&g);
    for (size_t i = 0; i < t->nfiles; i++) {
        s_file_t *f = t->files[i];
        if (f->fd >= 0 && !f->seen && !f->rotated) {
            f->rotated = true;
            http_log(HTTP_LOG_INFO, "rotated", "file=%s reason=\"renamed away or deleted: "
                     "read to its end\"", f->st.path);
        }
    }
}

/* At start only: an entry no pattern matched may be a file renamed while
 * the tailer was down (rename rotation to a name the patterns miss). Its
 * inode, in the directory it was in, with its fingerprint and bytes past
 * the acked offset, is read to its end; the next scan finds it unmatched
 * and lets it go as rotated. */
static void s_find_moved(s_tail_t *t)
{
    for (size_t i = 0; i < t->nfiles; i++) {
        s_file_t *f = t->files[i];
        char dir[PATH_MAX], path[PATH_MAX + 256];
        if (f->fd >= 0 || f->seen)
            continue;
        snprintf(dir, sizeof dir, "%s", f->st.path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && f->fd < 0 && (de = readdir(d)) != NULL) {
            struct stat sb;
            if ((uint64_t) de->d_ino != f->st.ino)
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)
                || (uint64_t) sb.st_dev != f->st.dev || (uint64_t) sb.st_size <= f->st.offset)
                continue;
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            if (!s_fp_matches(f, fd, (uint64_t) sb.st_size)) {
                close(fd);
                continue;
            }
            http_log(HTTP_LOG_INFO, "moved", "file=%s was=%s reason=\"renamed while the "
                     "tailer was down: read to its end\"", path, f->st.path);
            s_bind(f, fd, path, &sb);
        }
        if (d)
            closedir(d);
    }
}

/* ------------------------------------------------------------- a file */

/* Re-key a file shorter than --fingerprint-bytes when it grew: the same
 * first bytes, more of them. */
static void s_rekey(s_file_t *f, uint64_t size)
{
    uint32_t want = size < f->t->o->fp_bytes ? (uint32_t) size : f->t->o->fp_bytes;
    uint64_t fp;
    if (want > f->st.fp_len && file_tail_fingerprint(f->fd, want, &fp) == 0) {
        f->st.fp = fp;
        f->st.fp_len = want;
        f->t->dirty = true;
    }
}

static void s_truncated(s_file_t *f, uint64_t size, const char *why)
{
    http_log(HTTP_LOG_WARN, "truncated", "file=%s size=%" PRIu64 " read=%" PRIu64
             " acked=%" PRIu64 " reason=\"%s: the new content is a new file; the rest of "
             "the old one is read from its copy if a pattern matches it\"",
             f->st.path, size, f->read_off, f->st.offset, why);
    s_unbind(f, 0);
    f->t->dirty = true;
}

static int s_service(s_file_t *f)
{
    const s_opts_t *o = f->t->o;
    struct stat sb;
    uint64_t now = http_now_ms();
    if (fstat(f->fd, &sb) != 0)
        return 0;
    uint64_t size = (uint64_t) sb.st_size;
    if (size < f->read_off || size < f->st.offset) {
        s_truncated(f, size, "size below the position");
        return 0;
    }
    if (size != f->last_size) {
        /* Truncated and written past our position since the last look:
         * only the first bytes tell. One small pread per growth. */
        uint64_t fp;
        if (file_tail_fingerprint(f->fd, f->st.fp_len, &fp) != 0 || fp != f->st.fp) {
            s_truncated(f, size, "first bytes changed");
            return 0;
        }
        if (f->st.fp_len < o->fp_bytes)
            s_rekey(f, size);
        f->last_size = size;
        f->grew_ms = now;
    }
    int got = s_read(f, size);
    if (got < 0)
        return -1;
    if (o->start_re && f->mend && now - f->mlast_ms >= o->multiline_ms && s_ml_flush(f) != 0)
        return -1;
    bool gone = f->rotated || sb.st_nlink == 0;
    if (gone && now - f->grew_ms >= o->rotated_wait_ms) {
        if (s_flush_partial(f, size) != 0)
            return -1;
        if (sl_flush(f->client, 0) == 0 && f->st.records == f->next_rec) {
            http_log(HTTP_LOG_INFO, "done", "file=%s records=%" PRIu64 " offset=%" PRIu64,
                     f->st.path, f->st.records, f->st.offset);
            s_unbind(f, 0);
        }
    }
    else if (!gone && now - f->grew_ms >= o->inactive_ms && f->st.records == f->next_rec
             && !f->mend)
        s_unbind(f, 1000);
    return got;
}

/* ----------------------------------------------------------------- main */

static int s_parse_dur(const char *prog, const char *name, const char *arg, uint64_t *ms)
{
    if (file_parse_duration(arg, ms) != 0)
        return http_usage_error(prog, "%s wants a duration (500ms, 5s, 2m, 1h, 7d), not "
                                "'%s'", name, arg);
    return 0;
}

static int s_option(int opt, const char *arg, void *ctx)
{
    s_opts_t *o = ctx;
    const char *prog = o->client.prog;
    uint64_t v;
    switch (opt) {
    case S_OPT_TOPIC: o->topic = arg; break;
    case S_OPT_STATE: o->state_arg = arg; break;
    case S_OPT_STATE_DIR: o->state_dir = arg; break;
    case S_OPT_EXCLUDE:
        if (!o->excludes_given)
            o->nexcludes = 0;
        o->excludes_given = true;
        if (o->nexcludes == S_MAX_EXCLUDES)
            return http_usage_error(prog, "at most %d --exclude", S_MAX_EXCLUDES);
        o->excludes[o->nexcludes++] = arg;
        break;
    case S_OPT_ML_START: o->multiline = arg; break;
    case S_OPT_ML_TIMEOUT:
        return s_parse_dur(prog, "--multiline-timeout", arg, &o->multiline_ms);
    case S_OPT_FP:
        if (http_parse_u64(arg, &v) != 0 || v < 1 || v > 65536)
            return http_usage_error(prog, "--fingerprint-bytes wants 1 to 65536");
        o->fp_bytes = (uint32_t) v;
        break;
    case S_OPT_MAX_LINE:
        if (http_parse_size(arg, &v) != 0 || v < 16 || v > (64u << 20))
            return http_usage_error(prog, "--max-line wants a size from 16 bytes to 64MiB");
        o->max_line = (size_t) v;
        break;
    case S_OPT_POLL: return s_parse_dur(prog, "--poll-interval", arg, &o->poll_ms);
    case S_OPT_SCAN: return s_parse_dur(prog, "--scan-interval", arg, &o->scan_ms);
    case S_OPT_ROTATED: return s_parse_dur(prog, "--rotated-wait", arg, &o->rotated_wait_ms);
    case S_OPT_INACTIVE: return s_parse_dur(prog, "--close-inactive", arg, &o->inactive_ms);
    case S_OPT_FORGET: return s_parse_dur(prog, "--forget-after", arg, &o->forget_ms);
    }
    return 0;
}

static int s_parse(int argc, char **argv, s_opts_t *o)
{
    static const struct option options[] = {
        { "topic", required_argument, NULL, S_OPT_TOPIC },
        { "state", required_argument, NULL, S_OPT_STATE },
        { "state-dir", required_argument, NULL, S_OPT_STATE_DIR },
        { "exclude", required_argument, NULL, S_OPT_EXCLUDE },
        { "multiline-start", required_argument, NULL, S_OPT_ML_START },
        { "multiline-timeout", required_argument, NULL, S_OPT_ML_TIMEOUT },
        { "fingerprint-bytes", required_argument, NULL, S_OPT_FP },
        { "max-line", required_argument, NULL, S_OPT_MAX_LINE },
        { "poll-interval", required_argument, NULL, S_OPT_POLL },
        { "scan-interval", required_argument, NULL, S_OPT_SCAN },
        { "rotated-wait", required_argument, NULL, S_OPT_ROTATED },
        { "close-inactive", required_argument, NULL, S_OPT_INACTIVE },
        { "forget-after", required_argument, NULL, S_OPT_FORGET },
        HTTP_CLIENT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    const char *prog = o->client.prog, *ml;
    int rc = file_options(argc, argv, options, &o->client, s_usage, s_option, o);
    if (rc)
        return rc;
    if (!o->topic)
        return http_usage_error(prog, "--topic TOPIC is required");
    if (optind >= argc)
        return http_usage_error(prog, "no PATH or GLOB to follow");
    o->patterns = argv + optind;
    o->npatterns = argc - optind;
    ml = o->multiline;
    if (ml) {
        int ec;
        PCRE2_SIZE off;
        o->start_re = pcre2_compile((PCRE2_SPTR) ml, PCRE2_ZERO_TERMINATED, 0, &ec, &off, NULL);
        if (!o->start_re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return http_usage_error(prog, "--multiline-start: %s at offset %zu", msg,
                                    (size_t) off);
        }
    }
    rc = http_client_resolve(&o->client);
    if (rc)
        return rc;
    char err[PATH_MAX + 128];
    if (file_state_dir(o->state_dir, o->dir, sizeof o->dir, err, sizeof err) != 0)
        return http_usage_error(prog, "%s", err);
    int n = o->state_arg ? snprintf(o->state_path, sizeof o->state_path, "%s", o->state_arg)
                         : snprintf(o->state_path, sizeof o->state_path, "%s/tail-%s.json",
                                    o->dir, o->topic);
    if (n < 0 || (size_t) n >= sizeof o->state_path)
        return http_usage_error(prog, "--state path too long");
    snprintf(o->lock_path, sizeof o->lock_path, "%s.lock", o->state_path);
    return 0;
}

/* Entries not seen for --forget-after go (never one that is open). */
static void s_forget(s_tail_t *t)
{
    uint64_t now = file_now_us();
    size_t k = 0;
    for (size_t i = 0; i < t->nfiles; i++) {
        s_file_t *f = t->files[i];
        if (f->fd < 0 && now - f->st.seen_us > t->o->forget_ms * 1000) {
            char hex[FILE_ID_HEX], idfile[PATH_MAX + 64];
            s_idfile(f, hex, idfile, sizeof idfile);
            unlink(idfile);
            free(f->mbuf);
            free(f);
            t->dirty = true;
        }
        else
            t->files[k++] = f;
    }
    t->nfiles = k;
}

static int s_run(s_tail_t *t)
{
    const s_opts_t *o = t->o;
    while (!http_stopping() && t->exit_code == 0) {
        uint64_t now = http_now_ms();
        if (now - t->last_scan >= o->scan_ms) {
            bool first = t->last_scan == 0;
            t->last_scan = now;
            s_scan(t);
            if (first)
                s_find_moved(t);
            s_forget(t);
        }
        int busy = 0;
        for (size_t i = 0; i < t->nfiles; i++) {
            s_file_t *f = t->files[i];
            if (f->fd < 0)
                continue;
            int got = s_service(f);
            if (got < 0)
                return FILE_EXIT_FAILED;
            busy |= got;
            if (f->client)
                sl_poll(f->client, 0);
        }
        s_save(t, false);
        if (!busy)
            usleep((useconds_t) (o->poll_ms * 1000));
    }
    return t->exit_code;
}

int file_tail_main(int argc, char **argv)
{
    s_opts_t o = { .client.prog = "sluice-file tail", .fp_bytes = 1024,
                   .poll_ms = 100, .scan_ms = 1000, .save_ms = 500,
                   .rotated_wait_ms = 5000, .inactive_ms = 300000,
                   .forget_ms = 7ull * 86400000, .multiline_ms = 1000,
                   .max_line = 1u << 20,
                   .excludes = { "*.gz", "*.bz2", "*.xz", "*.zst", "*.zip" },
                   .nexcludes = 5 };
    s_tail_t t = { .o = &o };
    file_tail_entry_t *loaded = NULL;
    size_t nloaded = 0;
    char err[PATH_MAX + 256] = "";
    int lock_fd = -1;
    int rc = s_parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? FILE_EXIT_OK : rc;
    rc = FILE_EXIT_FAILED;
    lock_fd = file_lock(o.lock_path, "another sluice-file tail uses this state file");
    if (lock_fd < 0)
        goto done;
    if (file_tail_state_load(o.state_path, o.topic, &loaded, &nloaded, err, sizeof err) != 0) {
        http_log(HTTP_LOG_ERROR, "state", "reason=\"%s\"", err);
        goto done;
    }
    for (size_t i = 0; i < nloaded; i++)
        if (!s_file_add(&t, &loaded[i]))
            goto done;
    t.md = o.start_re ? pcre2_match_data_create_from_pattern(o.start_re, NULL) : NULL;
    t.chunk_len = o.max_line + 1 > S_CHUNK ? o.max_line + 1 : S_CHUNK;
    t.chunk = malloc(t.chunk_len);
    if (!t.chunk || (o.start_re && !t.md))
        goto done;
    http_signals_catch();
    http_log(HTTP_LOG_INFO, "tail", "topic=%s state=%s files_known=%zu", o.topic,
             o.state_path, nloaded);
    rc = s_run(&t);
    for (size_t i = 0; i < t.nfiles; i++)
        if (t.files[i]->client)
            sl_flush(t.files[i]->client, 5000);
    s_save(&t, true);
done:
    for (size_t i = 0; i < t.nfiles; i++) {
        s_unbind(t.files[i], 0);
        free(t.files[i]->mbuf);
        free(t.files[i]);
    }
    free(t.files);
    free(loaded);
    free(t.chunk);
    pcre2_match_data_free(t.md);
    pcre2_code_free(o.start_re);
    if (lock_fd >= 0)
        close(lock_fd);
    return rc;
}
