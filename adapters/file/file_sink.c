/*  file_sink - `sluice-file sink SUBSCRIPTION --pattern P --dir D`.
 *
 *  Exactly once into files: messages are taken in batches; a batch is
 *  appended to the current file and fsync'd, then the side record
 *  D/.sink-SUBSCRIPTION.json is replaced atomically (the current file's
 *  name and its durable size, and per topic the last offset written),
 *  and only then are the messages acked. After a crash the current file
 *  is cut back to the recorded size (a batch written but not recorded is
 *  removed: it was not acked, so it is delivered again) and a message at
 *  or below the recorded offset of its topic (written, but its ack was
 *  lost) is acked without being written. Files rotate by size and age;
 *  each name carries a counter so a crash at a rotation reuses the name.
 *
 *  Main thread only. Delivery per topic is in offset order, which the
 *  offset record relies on: one sink per subscription (the side record
 *  is locked).  */
#include "file_sink.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "file_common.h"

#define S_MAX_TOPICS 4096

typedef struct {
    http_client_opts_t client;
    const char *name, *pattern, *dir, *prefix;
    bool raw;
    sl_start_t start;
    uint64_t max_bytes, max_age_ms, batch, linger_ms;
} s_opts_t;

typedef struct {
    char topic[256];
    uint64_t offset;            /* next offset to write: below it is written */
} s_mark_t;

/* The side record, as on disk. */
typedef struct {
    uint64_t counter;           /* current file's number */
    uint64_t size;              /* its durable size */
    uint64_t created_us;        /* when it was started */
    s_mark_t *marks;
    size_t nmarks;
} s_state_t;

typedef struct {
    const s_opts_t *o;
    s_state_t st;
    char state_path[PATH_MAX], file_path[PATH_MAX];
    int fd;
    char *buf;                  /* the batch's bytes */
    size_t blen, bcap;
    uint64_t written, skipped;
} s_sink_t;

static const char s_usage[] =
    "Usage: sluice-file sink SUBSCRIPTION --pattern PATTERN --dir DIR [options]\n"
    "\n"
    "Write the messages of durable subscription SUBSCRIPTION (created on\n"
    "PATTERN when new) to files in DIR, every message once: across a crash\n"
    "or kill of the sink at any point, what was written is not written\n"
    "again and what was not is. One line per message: NDJSON\n"
    "{\"topic\",\"offset\",\"ingest_us\",\"payload\"} (a JSON payload as JSON, any\n"
    "other as a string), or with --raw the payload itself. Files are\n"
    "DIR/PREFIX-NNNNNNNN.ndjson (.txt with --raw); DIR/.sink-SUBSCRIPTION.json\n"
    "records the current file and the offsets written. Runs until SIGTERM\n"
    "or SIGINT.\n"
    "\n"
    "  --pattern PATTERN       topic or pattern ('*' one word, '>' the rest)\n"
    "  --dir DIR               where the files go (created if missing)\n"
    "  --prefix NAME           file name prefix (default SUBSCRIPTION)\n"
    "  --raw                   each payload as it is, one a line\n"
    "  --from WHERE            where a new subscription starts: earliest\n"
    "                          (default) or latest\n"
    "  --max-bytes SIZE        start a new file past SIZE (default 64MiB)\n"
    "  --max-age DUR           start a new file after DUR (default 1h)\n"
    "  --batch N               messages per write, fsync and ack (default 1000)\n"
    "  --linger DUR            wait at most DUR to fill a batch (default 100ms)\n"
    HTTP_CLIENT_USAGE
    "\n"
    "Exit: 0 stopped by a signal, 1 failed, 2 broker unreachable, 64 usage.\n";

enum { S_OPT_PATTERN = HTTP_OPT_OWN, S_OPT_DIR, S_OPT_PREFIX, S_OPT_RAW, S_OPT_FROM,
       S_OPT_MAX_BYTES, S_OPT_MAX_AGE, S_OPT_BATCH, S_OPT_LINGER };

/* --------------------------------------------------------- side record */

static int s_state_save(s_sink_t *s, char *err, size_t errlen)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *topics = cJSON_AddObjectToObject(root, "topics");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(root, "subscription", s->o->name);
    file_json_add_u64(root, "counter", s->st.counter);
    cJSON_AddStringToObject(root, "file", strrchr(s->file_path, '/') + 1);
    file_json_add_u64(root, "size", s->st.size);
    file_json_add_u64(root, "created_us", s->st.created_us);
    for (size_t i = 0; topics && i < s->st.nmarks; i++)
        file_json_add_u64(topics, s->st.marks[i].topic, s->st.marks[i].offset);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = file_write_atomic(s->state_path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}

/* Read the side record (none: a fresh start). 0 or -1 with ERR. */
static int s_state_load(s_sink_t *s, char *err, size_t errlen)
{
    bool missing;
    int rc = -1;
    cJSON *root = file_json_load(s->state_path, &missing, err, errlen), *t;
    if (!root)
        return missing ? 0 : -1;
    cJSON *topics = cJSON_GetObjectItemCaseSensitive(root, "topics");
    if (!cJSON_IsObject(topics) || file_json_u64(root, "counter", &s->st.counter)
        || file_json_u64(root, "size", &s->st.size)
        || file_json_u64(root, "created_us", &s->st.created_us)) {
        snprintf(err, errlen, "%s is damaged: move it away only if DIR's files are "
                 "to be written again from the subscription's cursor", s->state_path);
        goto done;
    }
    size_t n = (size_t) cJSON_GetArraySize(topics);
    s->st.marks = calloc(n ? n : 1, sizeof *s->st.marks);
    if (!s->st.marks)
        goto done;
    cJSON_ArrayForEach(t, topics) {
        s_mark_t *m = &s->st.marks[s->st.nmarks];
        if (file_json_u64(topics, t->string, &m->offset) != 0) {
            snprintf(err, errlen, "%s: the offset of topic %s is damaged", s->state_path,
                     t->string);
            goto done;
        }
        snprintf(m->topic, sizeof m->topic, "%s", t->string);
        s->st.nmarks++;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

static s_mark_t *s_mark(s_sink_t *s, const char *topic, bool add)
{
    for (size_t i = 0; i < s->st.nmarks; i++)
        if (strcmp(s->st.marks[i].topic, topic) == 0)
            return &s->st.marks[i];
    if (!add || s->st.nmarks >= S_MAX_TOPICS)
        return NULL;
    s_mark_t *v = realloc(s->st.marks, (s->st.nmarks + 1) * sizeof *v);
    if (!v)
        return NULL;
    s->st.marks = v;
    s_mark_t *m = &v[s->st.nmarks++];
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    m->offset = 0;
    return m;
}

/* --------------------------------------------------------------- files */

static int s_open_file(s_sink_t *s, bool fresh)
{
    snprintf(s->file_path, sizeof s->file_path, "%s/%s-%08" PRIu64 ".%s", s->o->dir,
             s->o->prefix, s->st.counter, s->o->raw ? "txt" : "ndjson");
    s->fd = open(s->file_path, O_WRONLY | O_CREAT | O_CLOEXEC | (fresh ? O_TRUNC : 0), 0644);
    struct stat sb;
    if (s->fd >= 0 && !fresh && fstat(s->fd, &sb) == 0 && (uint64_t) sb.st_size < s->st.size) {
        /* Cutting back is for a batch written but not recorded; a file
         * shorter than recorded was moved or cut by someone else. */
        http_log(HTTP_LOG_ERROR, "file", "file=%s size=%" PRIu64 " recorded=%" PRIu64
                 " reason=\"shorter than the side record says: moved or cut by hand? "
                 "put it back, or move the side record away to go on in a new file "
                 "from the subscription's cursor\"",
                 s->file_path, (uint64_t) sb.st_size, s->st.size);
        return -1;
    }
    if (s->fd < 0 || ftruncate(s->fd, (off_t) s->st.size) != 0
        || lseek(s->fd, 0, SEEK_END) < 0) {
        http_log(HTTP_LOG_ERROR, "file", "file=%s reason=\"%s\"", s->file_path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* The highest file number in DIR (0: none), so that a start without a
 * side record never writes over an earlier run's files. */
static uint64_t s_last_number(const s_opts_t *o)
{
    uint64_t last = 0;
    size_t plen = strlen(o->prefix);
    DIR *d = opendir(o->dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        char *end;
        if (strncmp(n, o->prefix, plen) != 0 || n[plen] != '-'
            || n[plen + 1] < '0' || n[plen + 1] > '9')
            continue;
        uint64_t v = strtoull(n + plen + 1, &end, 10);
        if (*end == '.' && v > last)
            last = v;
    }
    if (d)
        closedir(d);
    return last;
}

/* A new file for the next batch: its name and size 0 are recorded with
 * that batch, so a crash before then reuses the name. */
static int s_rotate(s_sink_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    http_log(HTTP_LOG_INFO, "rotate", "file=%s bytes=%" PRIu64, s->file_path, s->st.size);
    s->st.counter++;
    s->st.size = 0;
    s->st.created_us = file_now_us();
    return s_open_file(s, true);
}

static int s_put(s_sink_t *s, const void *p, size_t n)
{
    if (s->blen + n > s->bcap) {
        size_t cap = s->bcap ? s->bcap : 65536;
        while (cap < s->blen + n)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b)
            return -1;
        s->buf = b;
        s->bcap = cap;
    }
    memcpy(s->buf + s->blen, p, n);
    s->blen += n;
    return 0;
}

/* MSG's line into the batch. */
static int s_format(s_sink_t *s, const sl_msg_t *msg)
{
    size_t len;
    const char *p = sl_msg_payload(msg, &len);
    if (s->o->raw)
        return s_put(s, p, len) || s_put(s, "\n", 1) ? -1 : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "topic", sl_msg_topic(msg));
    cJSON_AddNumberToObject(o, "offset", (double) sl_msg_offset(msg));
    cJSON_AddNumberToObject(o, "ingest_us", (double) sl_msg_ingest_us(msg));
    cJSON *v = len ? cJSON_ParseWithLength(p, len) : NULL;
    if (!v) {
        char *t = malloc(len + 1);
        if (t) {
            memcpy(t, p, len);
            t[len] = '\0';
            v = cJSON_CreateString(t);
            free(t);
        }
    }
    cJSON_AddItemToObject(o, "payload", v);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int rc = text && s_put(s, text, strlen(text)) == 0 && s_put(s, "\n", 1) == 0 ? 0 : -1;
    free(text);
    return rc;
}

/* ------------------------------------------------------------ batches */

/* Write, fsync, record, ack: the order that makes it exactly once. */
static int s_commit(s_sink_t *s, sl_msg_t **msgs, size_t n)
{
    char err[PATH_MAX + 128];
    s->blen = 0;
    size_t fresh = 0;
    for (size_t i = 0; i < n; i++) {
        s_mark_t *m = s_mark(s, sl_msg_topic(msgs[i]), true);
        uint64_t off = sl_msg_offset(msgs[i]);
        if (!m) {
            http_log(HTTP_LOG_ERROR, "topics", "reason=\"more than %d topics\"", S_MAX_TOPICS);
            return -1;
        }
        if (off < m->offset) {
            s->skipped++;
            continue;
        }
        if (s_format(s, msgs[i]) != 0)
            return -1;
        m->offset = off + 1;
        fresh++;
    }
    if (s->blen) {
        const char *p = s->buf;
        size_t left = s->blen;
        while (left) {
            ssize_t w = write(s->fd, p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                http_log(HTTP_LOG_ERROR, "write", "file=%s reason=\"%s\"", s->file_path,
                         strerror(errno));
                return -1;
            }
            p += w;
            left -= (size_t) w;
        }
        if (fdatasync(s->fd) != 0) {
            http_log(HTTP_LOG_ERROR, "fsync", "file=%s reason=\"%s\"", s->file_path,
                     strerror(errno));
            return -1;
        }
        s->st.size += s->blen;
        if (s_state_save(s, err, sizeof err) != 0) {
            http_log(HTTP_LOG_ERROR, "state", "reason=\"%s\"", err);
            return -1;
        }
    }
    s->written += fresh;
    for (size_t i = 0; i < n; i++)
        sl_ack(msgs[i]);
    return 0;
}

static int s_run(s_sink_t *s, sl_client_t *client, sl_sub_t *sub)
{
    const s_opts_t *o = s->o;
    sl_msg_t **msgs = calloc(o->batch, sizeof *msgs);
    int rc = 0;
    if (!msgs)
        return FILE_EXIT_FAILED;
    while (!http_stopping() && rc == 0) {
        size_t n;
        if (file_receive_batch(sub, msgs, o->batch, o->linger_ms, &n) != 0)
            rc = FILE_EXIT_FAILED;
        uint64_t age_ms = (file_now_us() - s->st.created_us) / 1000;
        if (rc == 0 && s->st.size > 0 && (s->st.size >= o->max_bytes || age_ms >= o->max_age_ms)
            && s_rotate(s) != 0)
            rc = FILE_EXIT_FAILED;
        if (rc == 0 && n && s_commit(s, msgs, n) != 0)
            rc = FILE_EXIT_FAILED;
        for (size_t i = 0; i < n; i++)
            sl_msg_destroy(&msgs[i]);
        if (n)
            sl_poll(client, 0);
    }
    free(msgs);
    return rc;
}

/* ----------------------------------------------------------------- main */

static int s_option(int opt, const char *arg, void *ctx)
{
    s_opts_t *o = ctx;
    const char *prog = o->client.prog;
    switch (opt) {
    case S_OPT_PATTERN: o->pattern = arg; break;
    case S_OPT_DIR: o->dir = arg; break;
    case S_OPT_PREFIX: o->prefix = arg; break;
    case S_OPT_RAW: o->raw = true; break;
    case S_OPT_FROM:
        if (strcmp(arg, "earliest") == 0)
            o->start = SL_START_EARLIEST;
        else if (strcmp(arg, "latest") == 0)
            o->start = SL_START_LATEST;
        else
            return http_usage_error(prog, "--from wants earliest or latest");
        break;
    case S_OPT_MAX_BYTES:
        if (http_parse_size(arg, &o->max_bytes) != 0 || !o->max_bytes)
            return http_usage_error(prog, "--max-bytes wants a size (64MiB)");
        break;
    case S_OPT_MAX_AGE:
        if (file_parse_duration(arg, &o->max_age_ms) != 0 || !o->max_age_ms)
            return http_usage_error(prog, "--max-age wants a duration (1h)");
        break;
    case S_OPT_BATCH:
        if (http_parse_u64(arg, &o->batch) != 0 || !o->batch || o->batch > 100000)
            return http_usage_error(prog, "--batch wants 1 to 100000");
        break;
    case S_OPT_LINGER:
        if (file_parse_duration(arg, &o->linger_ms) != 0)
            return http_usage_error(prog, "--linger wants a duration (100ms)");
        break;
    }
    return 0;
}

static int s_parse(int argc, char **argv, s_opts_t *o)
{
    static const struct option options[] = {
        { "pattern", required_argument, NULL, S_OPT_PATTERN },
        { "dir", required_argument, NULL, S_OPT_DIR },
        { "prefix", required_argument, NULL, S_OPT_PREFIX },
        { "raw", no_argument, NULL, S_OPT_RAW },
        { "from", required_argument, NULL, S_OPT_FROM },
        { "max-bytes", required_argument, NULL, S_OPT_MAX_BYTES },
        { "max-age", required_argument, NULL, S_OPT_MAX_AGE },
        { "batch", required_argument, NULL, S_OPT_BATCH },
        { "linger", required_argument, NULL, S_OPT_LINGER },
        HTTP_CLIENT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    const char *prog = o->client.prog;
    int rc = file_options(argc, argv, options, &o->client, s_usage, s_option, o);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return http_usage_error(prog, "one SUBSCRIPTION name is required");
    o->name = argv[optind];
    if (!o->pattern || !o->dir)
        return http_usage_error(prog, "--pattern and --dir are required");
    if (strchr(o->name, '/'))
        return http_usage_error(prog, "SUBSCRIPTION must not hold '/'");
    if (!o->prefix)
        o->prefix = o->name;
    return http_client_resolve(&o->client);
}

int file_sink_main(int argc, char **argv)
{
    s_opts_t o = { .client.prog = "sluice-file sink", .start = SL_START_EARLIEST,
                   .max_bytes = 64u << 20, .max_age_ms = 3600000, .batch = 1000,
                   .linger_ms = 100 };
    s_sink_t s = { .o = &o, .fd = -1 };
    sl_client_t *client = NULL;
    sl_sub_t *sub = NULL;
    char err[PATH_MAX + 256] = "", lock[PATH_MAX + 8];
    int lock_fd = -1;
    int rc = s_parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? FILE_EXIT_OK : rc;
    rc = FILE_EXIT_FAILED;
    /* file_state_dir makes DIR (0700) as it makes a state directory. */
    if (file_state_dir(o.dir, s.state_path, sizeof s.state_path, err, sizeof err) != 0) {
        http_log(HTTP_LOG_ERROR, "dir", "reason=\"%s\"", err);
        goto done;
    }
    snprintf(s.state_path, sizeof s.state_path, "%s/.sink-%s.json", o.dir, o.name);
    snprintf(lock, sizeof lock, "%s.lock", s.state_path);
    lock_fd = file_lock(lock, "another sink writes this subscription here");
    if (lock_fd < 0)
        goto done;
    if (s_state_load(&s, err, sizeof err) != 0) {
        http_log(HTTP_LOG_ERROR, "state", "reason=\"%s\"", err);
        goto done;
    }
    bool fresh = s.st.counter == 0;
    if (fresh) {
        s.st.counter = s_last_number(&o) + 1;
        s.st.created_us = file_now_us();
    }
    if (s_open_file(&s, fresh) != 0)
        goto done;
    rc = file_client_open(&o.client, "sluice-file sink", NULL, &client);
    if (rc)
        goto done;
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = o.name;
    so.pattern = o.pattern;
    so.start = o.start;
    so.credit = (uint32_t) (o.batch * 2 > 100000 ? 100000 : o.batch * 2);
    int k = sl_subscribe(client, &so, &sub);
    if (k) {
        http_log(HTTP_LOG_ERROR, "subscribe", "subscription=%s code=%d error=%s reason=\"%s\"",
                 o.name, k, sl_strerror(k), sl_client_last_error(client));
        rc = FILE_EXIT_FAILED;
        goto done;
    }
    http_signals_catch();
    http_log(HTTP_LOG_INFO, "sink", "subscription=%s file=%s size=%" PRIu64, o.name,
             s.file_path, s.st.size);
    rc = s_run(&s, client, sub);
    sl_flush(client, 5000);
    http_log(HTTP_LOG_INFO, "stop", "written=%" PRIu64 " skipped=%" PRIu64, s.written,
             s.skipped);
done:
    if (sub)
        sl_unsubscribe(&sub, false);
    sl_client_destroy(&client);
    if (s.fd >= 0)
        close(s.fd);
    free(s.buf);
    free(s.st.marks);
    if (lock_fd >= 0)
        close(lock_fd);
    return rc;
}
