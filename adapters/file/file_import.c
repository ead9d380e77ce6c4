/*  file_import - `sluice-file import --topic TOPIC FILE...`.
 *
 *  Exactly once without a position file: each file is published by its
 *  own producer whose id is derived from the file's content (XXH3-128 of
 *  every byte), the topic, the format and --run, and record N goes out
 *  with producer sequence N. The broker keeps the last sequence it stored
 *  for an id and tells it at connect (sl_publish_next_seq), so a run that
 *  was killed, interrupted or lost its broker resumes after the last
 *  stored record: the records before it are read and skipped, the ones
 *  after it are published, and a resend of one the broker has already got
 *  is recognised by (id, sequence). A record is numbered only when it is
 *  valid here (a line that is not JSON, a CSV row with the wrong number
 *  of fields is rejected before numbering), which depends on the content
 *  alone, so the numbering is the same on every run.
 *
 *  The file is mapped, fingerprinted, then read front to back; it must not
 *  change while it is imported (a changed file is a new producer).  */
#include "file_import.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include "file_common.h"
#include "file_csv.h"
#include "file_progress.h"
#include "file_record.h"

/* Lines of the records awaiting confirm, at slot seq & S_LINES_MASK: more
 * slots than the client's max_unacked (100000) so none is reused early. */
#define S_LINES_SLOTS (1u << 18)
#define S_LINES_MASK (S_LINES_SLOTS - 1)
#define S_REJECTS_SHOWN 20

typedef enum { S_NDJSON, S_CSV, S_LINES } s_format_t;

static const char *const s_format_names[] = { "ndjson", "csv", "lines" };

typedef struct {
    http_client_opts_t client;
    const char *topic;
    int format;                 /* s_format_t, or -1: from the file name */
    char sep;
    bool strict;
    const char *rejects_path;
    const char *state_dir;
    const char *run;
    const char *progress;
    char state[PATH_MAX];
} s_opts_t;

typedef struct {
    uint64_t line;
    int code;
    char reason[200];
} s_reject_t;

/* One file's run. */
typedef struct {
    const s_opts_t *o;
    const char *path;
    FILE *rejects;              /* --rejects, or NULL */
    uint64_t *lines;            /* S_LINES_SLOTS */
    uint64_t records, stored, duplicates, skipped, rejected;
    s_reject_t shown[S_REJECTS_SHOWN];
    size_t nshown;
    bool stop;                  /* --strict saw a rejection */
} s_run_t;

static const char s_usage[] =
    "Usage: sluice-file import --topic TOPIC [options] FILE...\n"
    "\n"
    "Publish every record of each FILE to TOPIC, exactly once: a run that\n"
    "is interrupted, killed or loses its broker resumes where it stopped\n"
    "when started again with the same arguments (no duplicates, no gaps).\n"
    "A file imported completely is skipped as duplicates the next time.\n"
    "\n"
    "  --topic TOPIC           where to publish (required)\n"
    "  --format FORMAT         ndjson (one JSON value a line), csv (a header\n"
    "                          row, then one JSON object per row, typed by\n"
    "                          the topic's schema) or lines (each line as it\n"
    "                          is); default: csv for *.csv, lines for *.txt\n"
    "                          and *.log, else ndjson\n"
    "  --separator C           CSV field separator (default ',')\n"
    "  --strict                stop at the first rejected record (exit 3);\n"
    "                          without it rejected records are listed and\n"
    "                          the import goes on\n"
    "  --rejects FILE          append every rejected record to FILE as NDJSON\n"
    "                          {\"file\",\"line\",\"code\",\"reason\"}\n"
    "  --run NAME              a new import of the same content (its records\n"
    "                          are stored again); the default run is \"\"\n"
    "  --state-dir DIR         where the producer id files live (default\n"
    "                          $SLUICE_FILE_STATE, $XDG_STATE_HOME/sluice-file\n"
    "                          or ~/.local/state/sluice-file)\n"
    "  --progress MODE         auto (a bar on a terminal, a line every 5 s\n"
    "                          otherwise), bar, lines or none\n"
    HTTP_CLIENT_USAGE
    "\n"
    "Exit: 0 every record stored (or stored before), 1 failed, 2 broker\n"
    "unreachable, 3 records rejected (the summary says which lines),\n"
    "64 usage, 130 interrupted (run again to resume).\n";

enum { S_OPT_TOPIC = HTTP_OPT_OWN, S_OPT_FORMAT, S_OPT_SEP, S_OPT_STRICT,
       S_OPT_REJECTS, S_OPT_RUN, S_OPT_STATE, S_OPT_PROGRESS };

/* ------------------------------------------------------------ records */

typedef struct {
    s_format_t format;
    const char *data;
    size_t len, pos;
    uint64_t line;              /* lines/ndjson: the next line's number */
    file_csv_t *csv;
    file_record_t *rec;
    char *json;                 /* the last CSV record's JSON (owned) */
} s_src_t;

/* The next record: 1 and *P / *N / *LINE; 2 = rejected here (*LINE, ERR);
 * 0 = end. */
static int s_src_next(s_src_t *s, const char **p, size_t *n, uint64_t *line,
                      char *err, size_t errlen)
{
    if (s->format == S_CSV) {
        const file_csv_field_t *f;
        size_t nf;
        free(s->json);
        s->json = NULL;
        int rc = file_csv_next(s->csv, &f, &nf, line, &s->pos, err, errlen);
        if (rc <= 0)
            return rc < 0 ? 2 : 0;
        if (file_record_json(s->rec, f, nf, &s->json, n, err, errlen) != 0)
            return 2;
        *p = s->json;
        return 1;
    }
    for (;;) {
        if (s->pos >= s->len)
            return 0;
        const char *start = s->data + s->pos;
        const char *nl = memchr(start, '\n', s->len - s->pos);
        size_t len = nl ? (size_t) (nl - start) : s->len - s->pos;
        s->pos += len + (nl ? 1 : 0);
        *line = s->line++;
        if (len && start[len - 1] == '\r')
            len--;
        if (s->format == S_NDJSON) {
            size_t i = 0;
            while (i < len && (start[i] == ' ' || start[i] == '\t'))
                i++;
            if (i == len)
                continue;           /* a blank line is no record */
            const char *end = NULL;
            cJSON *v = cJSON_ParseWithLengthOpts(start, len, &end, false);
            cJSON_Delete(v);
            while (v && end < start + len && (*end == ' ' || *end == '\t'))
                end++;
            if (!v || end != start + len) {
                snprintf(err, errlen, "not JSON (at byte %zu of the line)",
                         (size_t) ((v ? end : cJSON_GetErrorPtr()) - start) + 1);
                return 2;
            }
        }
        *p = start;
        *n = len;
        return 1;
    }
}

/* -------------------------------------------------------------- rejects */

static void s_reject(s_run_t *r, uint64_t line, int code, const char *reason)
{
    r->rejected++;
    if (r->nshown < S_REJECTS_SHOWN) {
        s_reject_t *x = &r->shown[r->nshown++];
        x->line = line;
        x->code = code;
        snprintf(x->reason, sizeof x->reason, "%s", reason);
    }
    if (r->rejects) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", r->path);
        cJSON_AddNumberToObject(o, "line", (double) line);
        cJSON_AddNumberToObject(o, "code", code);
        cJSON_AddStringToObject(o, "reason", reason);
        char *t = cJSON_PrintUnformatted(o);
        if (t)
            fprintf(r->rejects, "%s\n", t);
        free(t);
        cJSON_Delete(o);
    }
    if (r->o->strict)
        r->stop = true;
}

static void s_on_confirm(const sl_confirm_t *c, void *arg)
{
    s_run_t *r = arg;
    if (c->rc == 0) {
        if (c->duplicate)
            r->duplicates++;
        else
            r->stored++;
        return;
    }
    char why[256];
    snprintf(why, sizeof why, "refused by the broker: %s%s%s", sl_strerror(c->rc),
             c->text && *c->text ? ": " : "", c->text ? c->text : "");
    s_reject(r, r->lines[c->seq & S_LINES_MASK], c->rc, why);
}

/* ----------------------------------------------------------- identity */

/* The producer id of this file's import, and its id file in the state
 * directory (created when missing; never replaced, so a live import's
 * locked file stays the one a second import would lock). */
static int s_identity(const s_opts_t *o, s_format_t format, const void *data, size_t len,
                      char *idfile, size_t idlen, char *hex)
{
    XXH128_hash_t h = XXH3_128bits(data, len);
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "sluice-file import 1\n%016llx%016llx\n%s\n%s\n%c\n%s",
                     (unsigned long long) h.high64, (unsigned long long) h.low64,
                     o->topic, s_format_names[format], o->sep, o->run ? o->run : "");
    if (n < 0 || (size_t) n >= sizeof buf)
        return http_usage_error("sluice-file import", "--topic or --run too long");
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(buf, (size_t) n));
    file_hex(c.digest, hex);
    if (snprintf(idfile, idlen, "%s/import-%s.id", o->state, hex) >= (int) idlen)
        return http_usage_error("sluice-file import", "--state-dir too long");
    if (access(idfile, F_OK) == 0)
        return FILE_EXIT_OK;
    char line[FILE_ID_HEX + 1], err[PATH_MAX + 128];
    snprintf(line, sizeof line, "%s\n", hex);
    if (file_write_atomic(idfile, line, strlen(line), err, sizeof err) != 0) {
        http_log(HTTP_LOG_ERROR, "state", "reason=\"%s\"", err);
        return FILE_EXIT_FAILED;
    }
    return FILE_EXIT_OK;
}

static s_format_t s_format_of(const s_opts_t *o, const char *path)
{
    if (o->format >= 0)
        return (s_format_t) o->format;
    const char *dot = strrchr(path, '.');
    if (dot && strcmp(dot, ".csv") == 0)
        return S_CSV;
    if (dot && (strcmp(dot, ".txt") == 0 || strcmp(dot, ".log") == 0))
        return S_LINES;
    return S_NDJSON;
}

/* --------------------------------------------------------------- a file */

/* Wait for every confirm; after a stop signal at most a few seconds (what
 * is not confirmed then is sent again by the next run). */
static void s_drain(sl_client_t *client)
{
    uint64_t deadline = 0;
    while (sl_unconfirmed(client) > 0) {
        if (http_stopping() && !deadline)
            deadline = http_now_ms() + 5000;
        if (deadline && http_now_ms() > deadline)
            break;
        sl_flush(client, 200);
    }
}

static int s_publish_all(s_run_t *r, sl_client_t *client, s_src_t *src, uint64_t skip,
                         file_progress_t *prog)
{
    const char *ct = src->format == S_LINES ? "text/plain" : "application/json";
    const char *p;
    size_t n;
    uint64_t line;
    char err[512];
    int k;
    while (!r->stop && !http_stopping()
           && (k = s_src_next(src, &p, &n, &line, err, sizeof err)) != 0) {
        file_progress_update(prog, r->records, src->pos);
        if (k == 2) {
            s_reject(r, line, SL_EINVAL, err);
            continue;
        }
        uint64_t num = ++r->records;
        if (num <= skip) {
            r->skipped++;
            continue;
        }
        sl_message_t m = { .topic = r->o->topic, .payload = p, .len = n,
                           .content_type = ct };
        uint64_t seq = 0;
        r->lines[num & S_LINES_MASK] = line;
        /* SL_EBUSY: max_unacked publishes waited block_ms for a broker
         * that is away; keep waiting (the client reconnects) unless told
         * to stop. */
        int rc;
        bool told = false;
        while ((rc = sl_publish(client, &m, s_on_confirm, r, &seq)) == SL_EBUSY
               && !http_stopping()) {
            if (!told)
                http_log(HTTP_LOG_WARN, "waiting", "file=%s unconfirmed=%zu reason=\"the "
                         "broker confirms nothing: waiting for it\"", r->path,
                         sl_unconfirmed(client));
            told = true;
        }
        if (rc == SL_EBUSY) {
            r->records--;
            break;
        }
        if (rc == SL_ETOOBIG) {
            /* Not a reject: numbering would then differ between a run
             * that publishes this record and one that skips past it. */
            http_log(HTTP_LOG_ERROR, "publish", "file=%s line=%" PRIu64 " bytes=%zu "
                     "reason=\"larger than the broker's max_message_bytes: split the "
                     "record or raise the limit\"", r->path, line, n);
            return FILE_EXIT_FAILED;
        }
        if (rc) {
            http_log(HTTP_LOG_ERROR, "publish", "file=%s line=%" PRIu64 " code=%d error=%s",
                     r->path, line, rc, sl_strerror(rc));
            return FILE_EXIT_FAILED;
        }
        if (seq != num) {
            http_log(HTTP_LOG_ERROR, "sequence", "file=%s record=%" PRIu64 " seq=%" PRIu64
                     " reason=\"the producer sequence is not the record number: another "
                     "producer uses this import's id file\"", r->path, num, seq);
            return FILE_EXIT_FAILED;
        }
        if ((num & 1023) == 0)
            sl_poll(client, 0);
    }
    return FILE_EXIT_OK;
}

/* STOPPED: NULL when the file was read to its end, else why not. */
static void s_summary(const s_run_t *r, const char *stopped)
{
    printf("%s: %" PRIu64 " records%s%s%s: %" PRIu64 " stored, %" PRIu64
           " duplicates skipped, %" PRIu64 " rejected\n", r->path, r->records,
           stopped ? " read (" : "", stopped ? stopped : "", stopped ? ")" : "",
           r->stored, r->skipped + r->duplicates, r->rejected);
    for (size_t i = 0; i < r->nshown; i++)
        printf("  line %" PRIu64 ": %s\n", r->shown[i].line, r->shown[i].reason);
    if (r->rejected > r->nshown)
        printf("  ... and %" PRIu64 " more%s\n", r->rejected - r->nshown,
               r->o->rejects_path ? " (all in --rejects)" : " (--rejects FILE lists all)");
    fflush(stdout);
}

static int s_import_file(const s_opts_t *o, const char *path, FILE *rejects, s_run_t *r)
{
    int rc = FILE_EXIT_FAILED, fd = -1;
    void *map = NULL;
    size_t size = 0;
    sl_client_t *client = NULL;
    file_progress_t *prog = NULL;
    s_src_t src = { .line = 1 };
    char idfile[PATH_MAX], hex[FILE_ID_HEX], err[512], schema[300] = "";
    struct stat st;

    memset(r, 0, sizeof *r);
    r->o = o;
    r->path = path;
    r->rejects = rejects;
    r->lines = calloc(S_LINES_SLOTS, sizeof *r->lines);
    src.format = s_format_of(o, path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !r->lines) {
        http_log(HTTP_LOG_ERROR, "open", "file=%s reason=\"%s\"", path, strerror(errno));
        goto done;
    }
    size = (size_t) st.st_size;
    if (size) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            http_log(HTTP_LOG_ERROR, "open", "file=%s reason=\"mmap: %s\"", path,
                     strerror(errno));
            goto done;
        }
        madvise(map, size, MADV_SEQUENTIAL);
    }
    src.data = map;
    src.len = size;
    rc = s_identity(o, src.format, map, size, idfile, sizeof idfile, hex);
    if (rc)
        goto done;
    rc = file_client_open(&o->client, "sluice-file import", idfile, &client);
    if (rc)
        goto done;
    rc = FILE_EXIT_FAILED;
    if (src.format == S_CSV) {
        const file_csv_field_t *f;
        size_t nf;
        uint64_t line;
        int k;
        if (file_record_new(client, o->topic, &src.rec, schema, sizeof schema, err,
                            sizeof err) != 0) {
            http_log(HTTP_LOG_ERROR, "schema", "file=%s reason=\"%s\"", path, err);
            goto done;
        }
        src.csv = file_csv_new(src.data, src.len, o->sep);
        if (!src.csv)
            goto done;
        k = file_csv_next(src.csv, &f, &nf, &line, &src.pos, err, sizeof err);
        if (k == 1 && file_record_header(src.rec, f, nf, err, sizeof err) != 0)
            k = -1;
        if (k < 0) {
            http_log(HTTP_LOG_ERROR, "header", "file=%s line=%" PRIu64 " reason=\"%s\"",
                     path, line, err);
            goto done;
        }
    }
    uint64_t next = 1;
    int src_rc = sl_publish_next_seq(client, &next);
    if (src_rc) {
        http_log(HTTP_LOG_ERROR, "connect", "file=%s code=%d error=%s", path, src_rc,
                 sl_strerror(src_rc));
        rc = FILE_EXIT_UNREACHABLE;
        goto done;
    }
    http_log(HTTP_LOG_INFO, "import", "file=%s topic=%s format=%s bytes=%zu producer=%s "
             "resume_after=%" PRIu64 "%s%s", path, o->topic, s_format_names[src.format],
             size, hex, next - 1, schema[0] ? " schema=" : "", schema);
    const char *base = strrchr(path, '/');
    prog = file_progress_new(base ? base + 1 : path, size, o->progress);
    if (!prog)
        goto done;
    rc = s_publish_all(r, client, &src, next - 1, prog);
    s_drain(client);
    file_progress_done(prog, r->records, src.pos);
    if (rc == FILE_EXIT_OK && r->rejected)
        rc = FILE_EXIT_REJECTED;
    if (rc == FILE_EXIT_OK && (http_stopping() || sl_unconfirmed(client) > 0))
        rc = FILE_EXIT_INTERRUPTED;
    s_summary(r, r->stop ? "stopped at the first rejected record: --strict"
                 : rc == FILE_EXIT_FAILED ? "failed: the log says why"
                 : http_stopping() || sl_unconfirmed(client) > 0
                 ? "interrupted: run again to resume" : NULL);
done:
    file_progress_destroy(&prog);
    sl_client_destroy(&client);
    file_record_destroy(&src.rec);
    file_csv_destroy(&src.csv);
    free(src.json);
    free(r->lines);
    r->lines = NULL;
    if (map)
        munmap(map, size);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ----------------------------------------------------------------- main */

static int s_option(int opt, const char *arg, void *ctx)
{
    s_opts_t *o = ctx;
    const char *prog = o->client.prog;
    switch (opt) {
    case S_OPT_TOPIC: o->topic = arg; break;
    case S_OPT_FORMAT:
        o->format = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(arg, s_format_names[i]) == 0)
                o->format = i;
        if (o->format < 0)
            return http_usage_error(prog, "--format wants ndjson, csv or lines, not '%s'",
                                    arg);
        break;
    case S_OPT_SEP:
        if (strlen(arg) != 1 || arg[0] == '"' || arg[0] == '\n' || arg[0] == '\r')
            return http_usage_error(prog, "--separator wants one character (not a "
                                    "quote or a line end)");
        o->sep = arg[0];
        break;
    case S_OPT_STRICT: o->strict = true; break;
    case S_OPT_REJECTS: o->rejects_path = arg; break;
    case S_OPT_RUN: o->run = arg; break;
    case S_OPT_STATE: o->state_dir = arg; break;
    case S_OPT_PROGRESS:
        if (strcmp(arg, "auto") && strcmp(arg, "bar") && strcmp(arg, "lines")
            && strcmp(arg, "none"))
            return http_usage_error(prog, "--progress wants auto, bar, lines or none");
        o->progress = arg;
        break;
    }
    return 0;
}

static int s_parse(int argc, char **argv, s_opts_t *o)
{
    static const struct option options[] = {
        { "topic", required_argument, NULL, S_OPT_TOPIC },
        { "format", required_argument, NULL, S_OPT_FORMAT },
        { "separator", required_argument, NULL, S_OPT_SEP },
        { "strict", no_argument, NULL, S_OPT_STRICT },
        { "rejects", required_argument, NULL, S_OPT_REJECTS },
        { "run", required_argument, NULL, S_OPT_RUN },
        { "state-dir", required_argument, NULL, S_OPT_STATE },
        { "progress", required_argument, NULL, S_OPT_PROGRESS },
        HTTP_CLIENT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    const char *prog = o->client.prog;
    int rc = file_options(argc, argv, options, &o->client, s_usage, s_option, o);
    if (rc)
        return rc;
    if (!o->topic)
        return http_usage_error(prog, "--topic TOPIC is required");
    if (optind >= argc)
        return http_usage_error(prog, "no FILE to import");
    rc = http_client_resolve(&o->client);
    if (rc)
        return rc;
    char err[PATH_MAX + 128];
    if (file_state_dir(o->state_dir, o->state, sizeof o->state, err, sizeof err) != 0)
        return http_usage_error(prog, "%s", err);
    return 0;
}

int file_import_main(int argc, char **argv)
{
    s_opts_t o = { .client.prog = "sluice-file import", .format = -1, .sep = ',' };
    int rc = s_parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? FILE_EXIT_OK : rc;
    FILE *rejects = NULL;
    if (o.rejects_path && !(rejects = fopen(o.rejects_path, "a"))) {
        http_log(HTTP_LOG_ERROR, "rejects", "file=%s reason=\"%s\"", o.rejects_path,
                 strerror(errno));
        return FILE_EXIT_FAILED;
    }
    http_signals_catch();
    s_run_t *r = malloc(sizeof *r);
    if (!r) {
        rc = FILE_EXIT_FAILED;
        goto done;
    }
    for (int i = optind; i < argc && rc != FILE_EXIT_INTERRUPTED; i++) {
        int frc = s_import_file(&o, argv[i], rejects, r);
        if (rc == FILE_EXIT_OK || frc == FILE_EXIT_INTERRUPTED)
            rc = frc;
        if (frc == FILE_EXIT_REJECTED && o.strict)
            break;
    }
done:
    free(r);
    if (rejects)
        fclose(rejects);
    return rc;
}
