/*  damage - the store-damage fuzzer (issue 16, point 3). It populates a
 *  store through a real sluiced (plain, and sealed at rest), then, case by
 *  case, copies data.mdb, damages the copy (cut short at a random size, a
 *  single byte flipped, a run of bytes smeared with noise, zeros or ones;
 *  in the meta pages or anywhere), runs `sluiced --check` on it, serves it
 *  with a broker and reads every topic to the end with a durable
 *  subscription and its dead-letter topic. A case passes when no process
 *  dies by a signal or reports a sanitizer error; every record is either
 *  delivered with exactly its published bytes or dead-lettered with a
 *  reason, and not both; and whenever serving meets damage (a refused
 *  start, a dead letter) `--check` reported problems too. One thread;
 *  every wait has a deadline; the seed and the case number replay a case
 *  (README.md).  */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"
#include "sluice.h"

#define D_PAGE 4096                 /* LMDB's page on the machines we build for */
#define D_READ_MS 20000             /* most reading one case's topics may take */
#define D_START_MS 15000            /* most a broker may take to listen */
#define D_STOP_MS 30000             /* ... to stop after SIGTERM */
#define D_RUN_MS 60000              /* ... a `sluiced --check` may take */
#define D_NTOPICS 3
#define D_PAYLOAD_MAX 12100

/* What the store holds: COUNT messages per topic, payloads from s_payload. */
static const struct {
    const char *name;
    int count;
    size_t min, max;                /* payload sizes */
} s_topics[D_NTOPICS] = {
    { "fz.a", 400, 16, 300 },
    { "fz.b", 40, 2000, 12000 },    /* larger than a page: overflow pages */
    { "fz.c", 400, 100, 100 },
};

typedef struct {
    uint64_t seed;
    int cases;
    int only;                       /* run just this case (-1: all) */
    const char *mode;               /* "plain", "sealed" or "both" */
    bool keep;                      /* keep the directories of failed cases */
    bool verbose;
} d_opts_t;

/* Totals over a run. */
typedef struct {
    int cases, failed, refused, check_problems, served_clean, served_damaged;
    uint64_t delivered, dead_lettered;
} d_stats_t;

/* A broker serving one case's copy. */
typedef struct {
    char dir[256];
    char log[300];
    char endpoint[64];
    pid_t pid;
} d_broker_t;

/* ------------------------------------------------------------- utilities */

static uint64_t s_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t s_next(uint64_t *r)
{
    *r = s_mix(*r);
    return *r;
}

static uint64_t s_below(uint64_t *r, uint64_t n)
{
    return n ? s_next(r) % n : 0;
}

static uint64_t s_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* The payload of message I of topic T into BUF (D_PAYLOAD_MAX bytes). */
static size_t s_payload(int t, int i, uint8_t *buf)
{
    uint64_t r = (uint64_t) t << 32 | (uint64_t) i;
    size_t len = s_topics[t].min + s_below(&r, s_topics[t].max - s_topics[t].min + 1);
    int n = snprintf((char *) buf, 32, "%s-%05d-", s_topics[t].name, i);
    for (size_t k = (size_t) n; k < len; k++)
        buf[k] = (uint8_t) s_next(&r);
    return len > (size_t) n ? len : (size_t) n;
}

static int s_topic_index(const char *name)
{
    for (int t = 0; t < D_NTOPICS; t++)
        if (name && strcmp(name, s_topics[t].name) == 0)
            return t;
    return -1;
}

static bool s_copy(const char *from, const char *to)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    return system(cmd) == 0;
}

static void s_rmrf(const char *path)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "damage: could not remove %s\n", path);
}

/* A sanitizer's report in LOG? */
static bool s_log_reports(const char *log)
{
    static const char *const marks[] = {
        "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
        "Sanitizer:DEADLYSIGNAL", "Assertion",
    };
    FILE *f = fopen(log, "r");
    char line[1024];
    bool found = false;
    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f))
        for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
            if (strstr(line, marks[i]))
                found = true;
    fclose(f);
    return found;
}

/* Run ARGV with stdout and stderr into OUT; its wait status, or -1 when it
 * did not end within D_RUN_MS (then it is killed). */
static int s_run(char *const *argv, const char *out)
{
    int status = 0;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    for (uint64_t end = s_ms() + D_RUN_MS; waitpid(pid, &status, WNOHANG) == 0;) {
        if (s_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep(5000);
    }
    return status;
}

/* ----------------------------------------------------------- populating */

/* Publish every topic's messages through the broker B, and leave a
 * durable subscription with acked messages (so subscriptions, cursors and
 * acked offsets have pages to damage too). */
static int s_fill(const h_broker_t *b)
{
    static uint8_t buf[D_PAYLOAD_MAX];
    sl_options_t o;
    sl_client_t *c = NULL;
    sl_sub_options_t so;
    sl_sub_t *sub = NULL;
    int rc;

    sl_options_init(&o);
    o.endpoint = b->endpoint;
    o.name = "damage-fill";
    rc = sl_client_new(&o, &c);
    if (rc == 0)
        rc = sl_client_connect(c);
    for (int t = 0; rc == 0 && t < D_NTOPICS; t++)
        for (int i = 0; rc == 0 && i < s_topics[t].count; i++) {
            sl_message_t m = { .topic = s_topics[t].name, .payload = buf };
            m.len = s_payload(t, i, buf);
            rc = sl_publish(c, &m, NULL, NULL, NULL);
        }
    if (rc == 0)
        rc = sl_flush(c, 30000);
    sl_sub_options_init(&so);
    so.name = "fz-old";
    so.pattern = "fz.a";
    so.start = SL_START_EARLIEST;
    if (rc == 0)
        rc = sl_subscribe(c, &so, &sub);
    for (int i = 0; rc == 0 && i < 150; i++) {
        sl_msg_t *m = NULL;
        rc = sl_sub_next(sub, 10000, &m);
        /* Every other one: acked offsets above the floor too. */
        if (rc == 0 && (i < 100 || i % 2 == 0))
            rc = sl_ack(m);
        sl_msg_destroy(&m);
    }
    if (rc == 0)
        rc = sl_flush(c, 10000);
    sl_client_destroy(&c);
    if (rc)
        fprintf(stderr, "damage: filling the store failed: %s\n", sl_strerror(rc));
    return rc;
}

/* Make the store every case copies: GOLDEN (a data.mdb path) from a broker
 * started with EXTRA (NULL-terminated). */
static int s_populate(const char *const *extra, const char *golden)
{
    h_broker_t b;
    char data[400];
    int rc = -1;
    h_broker_init(&b, extra);
    if (h_broker_start(&b) == 0 && s_fill(&b) == 0 && h_broker_stop(&b, SIGTERM) == 0) {
        snprintf(data, sizeof data, "%s/data.mdb", b.dir);
        rc = s_copy(data, golden) ? 0 : -1;
    } else {
        fprintf(stderr, "damage: could not populate a store (log: %s)\n", b.log);
    }
    h_broker_destroy(&b);
    return rc;
}

/* ---------------------------------------------------------------- damage */

/* Damage FILE as case R's draws say; *WHAT describes it. 0 or -1. */
static int s_damage(const char *file, uint64_t *r, char *what, size_t len)
{
    struct stat st;
    int fd = open(file, O_RDWR);
    int rc = -1;
    if (fd < 0 || fstat(fd, &st) != 0)
        goto fail;
    uint64_t size = (uint64_t) st.st_size;
    /* A quarter of the cases aim at the two meta pages. */
    uint64_t span = s_below(r, 4) == 0 ? 2 * D_PAGE : size;
    uint64_t at = s_below(r, span < size ? span : size);
    switch (s_below(r, 3)) {
    case 0: {
        /* Cut short: anywhere, or at a page boundary. */
        uint64_t cut = s_below(r, 2) ? at : at / D_PAGE * D_PAGE;
        snprintf(what, len, "cut to %" PRIu64 " of %" PRIu64 " bytes", cut, size);
        rc = ftruncate(fd, (off_t) cut);
        break;
    }
    case 1: {
        uint8_t b, x = (uint8_t) (1u << s_below(r, 8));
        if (s_below(r, 2))
            x = (uint8_t) (1 + s_below(r, 255));
        if (pread(fd, &b, 1, (off_t) at) != 1)
            break;
        b ^= x;
        snprintf(what, len, "byte %" PRIu64 " (page %" PRIu64 " +%" PRIu64 ") xor 0x%02x",
                 at, at / D_PAGE, at % D_PAGE, x);
        rc = pwrite(fd, &b, 1, (off_t) at) == 1 ? 0 : -1;
        break;
    }
    default: {
        uint8_t run[512];
        size_t n = 1 + (size_t) s_below(r, sizeof run);
        unsigned kind = (unsigned) s_below(r, 3);
        if (at + n > size)
            n = (size_t) (size - at);
        for (size_t i = 0; i < n; i++)
            run[i] = kind == 0 ? (uint8_t) s_next(r) : kind == 1 ? 0 : 0xff;
        snprintf(what, len, "%zu bytes of %s at %" PRIu64 " (page %" PRIu64 " +%" PRIu64
                 ")", n, kind == 0 ? "noise" : kind == 1 ? "zeros" : "ones", at,
                 at / D_PAGE, at % D_PAGE);
        rc = pwrite(fd, run, n, (off_t) at) == (ssize_t) n ? 0 : -1;
        break;
    }
    }
fail:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* --------------------------------------------------------------- serving */

/* Start sluiced on B->dir (key file KEY or NULL). 0 when it listens, 1
 * when it exited first (*status its wait status), -1 when it did neither
 * in time (killed). */
static int s_start(d_broker_t *b, const char *key, int *status)
{
    char path[512];
    char *argv[12];
    int n = 0;
    h_build_path("broker/sluiced", path, sizeof path);
    argv[n++] = path;
    argv[n++] = "--data-dir";
    argv[n++] = b->dir;
    argv[n++] = "--listen";
    argv[n++] = "tcp://127.0.0.1:*";
    argv[n++] = "--insecure-plaintext";
    if (key) {
        argv[n++] = "--encrypt-at-rest";
        argv[n++] = (char *) key;
    }
    argv[n] = NULL;
    b->pid = fork();
    if (b->pid < 0)
        return -1;
    if (b->pid == 0) {
        int fd = open(b->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    for (uint64_t end = s_ms() + D_START_MS; s_ms() < end; usleep(10000)) {
        char line[1024];
        FILE *f = fopen(b->log, "r");
        while (f && fgets(line, sizeof line, f)) {
            char *p = strstr(line, "listening on "), *e;
            if (p && (e = strchr(p += strlen("listening on "), ','))
                && (size_t) (e - p) < sizeof b->endpoint) {
                memcpy(b->endpoint, p, (size_t) (e - p));
                b->endpoint[e - p] = 0;
                fclose(f);
                return 0;
            }
        }
        if (f)
            fclose(f);
        if (waitpid(b->pid, status, WNOHANG) == b->pid) {
            b->pid = 0;
            return 1;
        }
    }
    kill(b->pid, SIGKILL);
    waitpid(b->pid, status, 0);
    b->pid = 0;
    return -1;
}

/* SIGTERM and reap: the wait status, or -1 when it hung (killed). */
static int s_stop(d_broker_t *b)
{
    int status = 0;
    if (!b->pid)
        return 0;
    kill(b->pid, SIGTERM);
    for (uint64_t end = s_ms() + D_STOP_MS; waitpid(b->pid, &status, WNOHANG) == 0;) {
        if (s_ms() > end) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &status, 0);
            b->pid = 0;
            return -1;
        }
        usleep(5000);
    }
    b->pid = 0;
    return status;
}

/* What reading one case met. */
typedef struct {
    uint8_t *got[D_NTOPICS];        /* per offset: 1 delivered, 2 dead-lettered */
    int missing;                    /* offsets neither yet */
    uint64_t delivered, dead;
} d_seen_t;

typedef struct {
    char text[2048];
    size_t len;
} d_why_t;

static void s_why(d_why_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_why(d_why_t *w, const char *fmt, ...)
{
    va_list ap;
    if (w->len + 2 >= sizeof w->text)
        return;
    if (w->len)
        w->text[w->len++] = ';', w->text[w->len++] = ' ';
    va_start(ap, fmt);
    int n = vsnprintf(w->text + w->len, sizeof w->text - w->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        w->len += (size_t) n < sizeof w->text - w->len ? (size_t) n : sizeof w->text - w->len - 1;
}

/* A delivered message: its bytes must be the published ones. */
static void s_on_msg(d_seen_t *seen, sl_msg_t *m, d_why_t *why)
{
    static uint8_t want[D_PAYLOAD_MAX];
    int t = s_topic_index(sl_msg_topic(m));
    uint64_t off = sl_msg_offset(m);
    size_t len, wlen;
    const void *p = sl_msg_payload(m, &len);
    if (t < 0 || off >= (uint64_t) s_topics[t].count) {
        s_why(why, "delivered %s/%" PRIu64 ", which was never published", sl_msg_topic(m),
              off);
        return;
    }
    wlen = s_payload(t, (int) off, want);
    if (len != wlen || memcmp(p, want, len) != 0)
        s_why(why, "delivered %s/%" PRIu64 " with other bytes than published (%zu, not %zu)",
              s_topics[t].name, off, len, wlen);
    if (seen->got[t][off] == 2)
        s_why(why, "%s/%" PRIu64 " delivered and dead-lettered", s_topics[t].name, off);
    if (seen->got[t][off] == 0)
        seen->missing--;
    if (seen->got[t][off] != 1)
        seen->delivered++;
    seen->got[t][off] = 1;
}

/* A dead letter: it names the record and says why. */
static void s_on_dead(d_seen_t *seen, sl_msg_t *m, d_why_t *why)
{
    const char *topic = sl_msg_header(m, "dlq-topic");
    const char *offset = sl_msg_header(m, "dlq-offset");
    const char *reason = sl_msg_header(m, "dlq-reason");
    int t = s_topic_index(topic);
    uint64_t off = offset ? strtoull(offset, NULL, 10) : UINT64_MAX;
    if (t < 0 || off >= (uint64_t) s_topics[t].count) {
        s_why(why, "a dead letter for %s/%s, which was never published",
              topic ? topic : "?", offset ? offset : "?");
        return;
    }
    if (!reason || !strstr(reason, "unreadable"))
        s_why(why, "the dead letter of %s/%" PRIu64 " gives no reason it was unreadable "
              "(%s)", topic, off, reason ? reason : "none");
    if (seen->got[t][off] == 1)
        s_why(why, "%s/%" PRIu64 " delivered and dead-lettered", topic, off);
    if (seen->got[t][off] == 0)
        seen->missing--;
    if (seen->got[t][off] != 2)
        seen->dead++;
    seen->got[t][off] = 2;
}

/* Read every topic through broker B to the end: each offset delivered or
 * dead-lettered. */
static void s_read_all(d_broker_t *b, d_seen_t *seen, d_why_t *why)
{
    sl_options_t o;
    sl_client_t *c = NULL;
    sl_sub_options_t so;
    sl_sub_t *sub = NULL, *dead = NULL;
    int status;

    sl_options_init(&o);
    o.endpoint = b->endpoint;
    o.name = "damage-read";
    o.connect_timeout_ms = 10000;
    if (sl_client_new(&o, &c) != 0 || sl_client_connect(c) != 0) {
        s_why(why, "could not connect to the broker");
        goto done;
    }
    sl_sub_options_init(&so);
    so.name = "dz";
    so.pattern = "fz.>";
    so.start = SL_START_EARLIEST;
    if (sl_subscribe(c, &so, &sub) != 0) {
        s_why(why, "could not subscribe");
        goto done;
    }
    so.name = "dzq";
    so.pattern = "_dlq.dz";
    if (sl_subscribe(c, &so, &dead) != 0) {
        s_why(why, "could not subscribe to the dead letters");
        goto done;
    }
    for (uint64_t end = s_ms() + D_READ_MS; seen->missing > 0 && s_ms() < end;) {
        sl_msg_t *m = NULL;
        bool got = false;
        if (sl_sub_next(sub, 0, &m) == 0) {
            s_on_msg(seen, m, why);
            sl_ack(m);
            sl_msg_destroy(&m);
            got = true;
        }
        if (sl_sub_next(dead, got ? 0 : 50, &m) == 0) {
            s_on_dead(seen, m, why);
            sl_ack(m);
            sl_msg_destroy(&m);
        }
        if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
            b->pid = 0;
            s_why(why, "the broker died while serving (%s %d)",
                  WIFSIGNALED(status) ? "signal" : "exit",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            goto done;
        }
    }
    sl_flush(c, 5000);
    if (seen->missing > 0) {
        int shown = 0;
        s_why(why, "%d records neither delivered nor dead-lettered", seen->missing);
        for (int t = 0; t < D_NTOPICS; t++)
            for (int i = 0; i < s_topics[t].count && shown < 5; i++)
                if (!seen->got[t][i] && ++shown)
                    s_why(why, "e.g. %s/%d", s_topics[t].name, i);
    }
done:
    sl_client_destroy(&c);
}

/* ----------------------------------------------------------------- cases */

/* One case: damage a copy of GOLDEN as draw R says, check it, serve it,
 * read it. True when it passed. */
static bool s_case(const d_opts_t *o, d_stats_t *stats, const char *mode, int n,
                   const char *golden, const char *key)
{
    uint64_t r = s_mix(o->seed ^ s_mix((uint64_t) n << 1 | (strcmp(mode, "sealed") == 0)));
    d_broker_t b;
    d_seen_t seen;
    d_why_t why;
    char data[300], out[320], what[200] = "", sluiced[512];
    int status = 0, check, started;
    bool check_ok = false;

    memset(&b, 0, sizeof b);
    memset(&seen, 0, sizeof seen);
    memset(&why, 0, sizeof why);
    snprintf(b.dir, sizeof b.dir, "/tmp/sluice-dmg-XXXXXX");
    if (!mkdtemp(b.dir)) {
        fprintf(stderr, "damage: mkdtemp: %s\n", strerror(errno));
        return false;
    }
    snprintf(b.log, sizeof b.log, "%s/broker.log", b.dir);
    snprintf(data, sizeof data, "%s/data.mdb", b.dir);
    snprintf(out, sizeof out, "%s/check.out", b.dir);
    if (!s_copy(golden, data) || s_damage(data, &r, what, sizeof what) != 0) {
        s_why(&why, "could not damage the copy");
        goto done;
    }

    /* The check first: it must end, by itself, and say whether it is sound. */
    h_build_path("broker/sluiced", sluiced, sizeof sluiced);
    char *argv[] = { sluiced, "--check", "--data-dir", b.dir, key ? "--encrypt-at-rest" : NULL,
                     (char *) key, NULL };
    check = s_run(argv, out);
    if (check < 0 || WIFSIGNALED(check) || s_log_reports(out)) {
        s_why(&why, "sluiced --check %s", check < 0 ? "hung"
              : WIFSIGNALED(check) ? strsignal(WTERMSIG(check)) : "reported a sanitizer error");
        goto done;
    }
    check_ok = WEXITSTATUS(check) == 0;
    if (!check_ok && WEXITSTATUS(check) != 1)
        s_why(&why, "sluiced --check exited %d", WEXITSTATUS(check));
    stats->check_problems += !check_ok;

    /* Then serve it. */
    for (int t = 0; t < D_NTOPICS; t++) {
        seen.got[t] = calloc((size_t) s_topics[t].count, 1);
        seen.missing += s_topics[t].count;
    }
    started = s_start(&b, key, &status);
    if (started < 0) {
        s_why(&why, "the broker neither listened nor exited within %d s", D_START_MS / 1000);
        goto done;
    }
    if (started == 1) {
        stats->refused++;
        if (WIFSIGNALED(status))
            s_why(&why, "the broker died at start: %s", strsignal(WTERMSIG(status)));
        else if (check_ok)
            s_why(&why, "the broker refused a store --check found sound");
        if (s_log_reports(b.log))
            s_why(&why, "a sanitizer report in the broker's log");
        goto done;
    }
    s_read_all(&b, &seen, &why);
    status = s_stop(&b);
    if (status < 0 || WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status)))
        s_why(&why, "the broker did not stop cleanly on SIGTERM (%s %d)",
              status < 0 ? "hung" : WIFSIGNALED(status) ? "signal" : "exit",
              status < 0 ? 0 : WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    if (s_log_reports(b.log))
        s_why(&why, "a sanitizer report in the broker's log");
    if (seen.dead && check_ok)
        s_why(&why, "serving dead-lettered %" PRIu64 " records of a store --check found sound",
              seen.dead);
    stats->delivered += seen.delivered;
    stats->dead_lettered += seen.dead;
    if (seen.dead)
        stats->served_damaged++;
    else
        stats->served_clean++;
done:
    stats->cases++;
    s_stop(&b);
    for (int t = 0; t < D_NTOPICS; t++)
        free(seen.got[t]);
    bool pass = why.len == 0;
    if (!pass || o->verbose)
        printf("%s case %s %d (seed %" PRIu64 "): %s; check: %s; %s%s%s\n",
               pass ? "ok" : "FAIL", mode, n, o->seed, what,
               check_ok ? "sound" : "problems",
               b.endpoint[0] ? "served" : "not served", pass ? "" : ": ", why.text);
    if (!pass) {
        stats->failed++;
        if (o->keep)
            printf("  kept %s (check output: check.out, broker log: broker.log)\n", b.dir);
    }
    if (pass || !o->keep)
        s_rmrf(b.dir);
    fflush(stdout);
    return pass;
}

/* ------------------------------------------------------------------ main */

static void s_usage(void)
{
    fprintf(stderr,
            "usage: damage [--seed N] [--cases N] [--case K] [--mode plain|sealed|both]\n"
            "              [--keep] [--verbose]\n"
            "Environment: SLUICE_DAMAGE_SEED, SLUICE_DAMAGE_CASES, SLUICE_DAMAGE_MODE\n"
            "(the options win). --case K runs case K of the seed alone.\n");
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        { "seed", required_argument, NULL, 's' }, { "cases", required_argument, NULL, 'n' },
        { "case", required_argument, NULL, 'k' }, { "mode", required_argument, NULL, 'm' },
        { "keep", no_argument, NULL, 'K' },       { "verbose", no_argument, NULL, 'v' },
        { NULL, 0, NULL, 0 },
    };
    d_opts_t o = { .seed = 1, .cases = 150, .only = -1, .mode = "both" };
    d_stats_t stats;
    char work[] = "/tmp/sluice-dmg-gold-XXXXXX", gold[2][300], key[300], cmd[1400];
    const char *env;
    int opt;

    signal(SIGPIPE, SIG_IGN);
    if ((env = getenv("SLUICE_DAMAGE_SEED")))
        o.seed = strtoull(env, NULL, 10);
    if ((env = getenv("SLUICE_DAMAGE_CASES")))
        o.cases = atoi(env);
    if ((env = getenv("SLUICE_DAMAGE_MODE")))
        o.mode = env;
    while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (opt) {
        case 's': o.seed = strtoull(optarg, NULL, 10); break;
        case 'n': o.cases = atoi(optarg); break;
        case 'k': o.only = atoi(optarg); break;
        case 'm': o.mode = optarg; break;
        case 'K': o.keep = true; break;
        case 'v': o.verbose = true; break;
        default: s_usage(); return 64;
        }
    }
    bool plain = strcmp(o.mode, "sealed") != 0, sealed = strcmp(o.mode, "plain") != 0;
    if (!plain && !sealed) {
        s_usage();
        return 64;
    }
    memset(&stats, 0, sizeof stats);
    if (!mkdtemp(work)) {
        perror("damage: mkdtemp");
        return 1;
    }
    snprintf(gold[0], sizeof gold[0], "%s/plain.mdb", work);
    snprintf(gold[1], sizeof gold[1], "%s/sealed.mdb", work);
    snprintf(key, sizeof key, "%s/at-rest.key", work);
    char sluiced[512];
    h_build_path("broker/sluiced", sluiced, sizeof sluiced);
    snprintf(cmd, sizeof cmd, "'%s' --new-key '%s' >/dev/null", sluiced, key);
    const char *sealed_args[] = { "--encrypt-at-rest", key, NULL };
    if ((plain && s_populate(NULL, gold[0]) != 0)
        || (sealed && (system(cmd) != 0 || s_populate(sealed_args, gold[1]) != 0))) {
        s_rmrf(work);
        return 1;
    }
    uint64_t t0 = s_ms();
    for (int m = 0; m < 2; m++) {
        if (!(m == 0 ? plain : sealed))
            continue;
        for (int n = 0; n < o.cases; n++)
            if (o.only < 0 || o.only == n)
                s_case(&o, &stats, m == 0 ? "plain" : "sealed", n, gold[m],
                       m == 0 ? NULL : key);
    }
    printf("damage: seed %" PRIu64 ", %d cases in %.1f s: %d refused at start, %d served "
           "with dead letters, %d served clean; --check found problems in %d; %" PRIu64
           " records delivered, %" PRIu64 " dead-lettered; %d failed\n", o.seed, stats.cases,
           (double) (s_ms() - t0) / 1000, stats.refused, stats.served_damaged,
           stats.served_clean, stats.check_problems, stats.delivered, stats.dead_lettered,
           stats.failed);
    printf("damage: %s\n", stats.failed ? "FAILED" : "PASS");
    s_rmrf(work);
    return stats.failed ? 1 : 0;
}
