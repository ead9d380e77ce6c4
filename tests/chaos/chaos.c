/*  chaos - end-to-end exactly-once under faults (issue 3, point 1).
 *  One program, three roles. The orchestrator (default role) runs sluiced
 *  through the integration harness, re-executes itself as P producers and S
 *  consumers (--role), SIGKILLs and restarts the broker and the consumers at
 *  seeded random moments, then restarts the broker cleanly and checks the
 *  topic, the producers' confirm logs, the consumers' sinks and the broker's
 *  stats against each other. Each process is single-threaded and every wait
 *  has a deadline. Producers are never killed: their SDK must ride it out. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
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

#define CHAOS_TOPIC "chaos.t"
#define CHAOS_WINDOW 1000          /* most unconfirmed publishes per producer */
#define CHAOS_RECORD 32            /* sink slot: mark, length, payload */
#define CHAOS_MARK 0xA5            /* first byte of a written slot */
#define CHAOS_PAYLOAD_MAX (CHAOS_RECORD - 2)
#define CHAOS_MAX_DELIVER 100      /* see s_consumer_main */
#define CHAOS_ACK_BATCH 100        /* messages a consumer holds before acking */
#define CHAOS_MAX_PROCS 64
#define CHAOS_NONE UINT64_MAX
#define CHAOS_SHOW_MAX 20          /* problems printed in full */

/* One line of a consumer's seen log: every message handed to it. */
typedef struct {
    uint64_t offset;
    uint32_t attempt;          /* broker's delivery attempt */
    uint32_t life;             /* which start of this consumer */
} chaos_seen_t;

typedef struct {
    uint64_t messages;
    int producers;
    int subs;
    int broker_kills;
    int consumer_kills;
    uint64_t seed;
    int timeout_s;
    uint64_t rate;             /* messages per second, all producers; 0 = flat out */
    const char *inject;        /* a deliberate defect, to show the checks bite */
    bool keep;
    /* child roles only */
    const char *role;          /* NULL, "producer" or "consumer" */
    const char *dir;
    const char *endpoint;
    int id;
    int life;
    uint64_t count;
} chaos_opts_t;

typedef struct {
    uint64_t s;
} chaos_rng_t;

/* ------------------------------------------------------------- helpers */

static uint64_t s_rand(chaos_rng_t *r)
{
    /* splitmix64: any seed, including 0, gives a good stream. */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static uint64_t s_rand_range(chaos_rng_t *r, uint64_t lo, uint64_t hi)
{
    return hi <= lo ? lo : lo + s_rand(r) % (hi - lo + 1);
}

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

static void s_sleep_ms(uint64_t ms)
{
    struct timespec ts = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int s_left_ms(uint64_t deadline)
{
    uint64_t now = s_now_ms();
    if (now >= deadline)
        return 0;
    return deadline - now > INT_MAX ? INT_MAX : (int) (deadline - now);
}

static void s_path(char *buf, size_t len, const char *dir, const char *fmt, ...)
{
    char name[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(buf, len, "%s/%s", dir, name);
}

static int s_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

/* Parse "p<id>-<seq>" of LEN bytes. 0 or -1. */
static int s_payload_parse(const char *p, size_t len, int *id, uint64_t *seq)
{
    char buf[CHAOS_PAYLOAD_MAX + 1];
    if (len == 0 || len > CHAOS_PAYLOAD_MAX)
        return -1;
    memcpy(buf, p, len);
    buf[len] = 0;
    unsigned long long s;
    int n = 0;
    if (sscanf(buf, "p%d-%llu%n", id, &s, &n) != 2 || (size_t) n != len)
        return -1;
    *seq = s;
    return 0;
}

static bool s_injected(const chaos_opts_t *o, const char *what)
{
    return o->inject && strcmp(o->inject, what) == 0;
}

/* Wait up to TIMEOUT_MS for PID to end. 0 and *status, or -1. */
static int s_reap(pid_t pid, int timeout_ms, int *status)
{
    uint64_t deadline = s_now_ms() + (uint64_t) timeout_ms;
    while (true) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        if (s_now_ms() >= deadline)
            return -1;
        s_sleep_ms(2);
    }
}

static void s_status_text(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "signal %d", WTERMSIG(status));
    else
        snprintf(buf, len, "status 0x%x", (unsigned) status);
}

/* ------------------------------------------------------------ producer */

typedef struct chaos_producer chaos_producer_t;

typedef struct {
    chaos_producer_t *p;
    uint64_t seq;
} chaos_pub_arg_t;

struct chaos_producer {
    int id;
    FILE *log;                 /* confirm log, append only */
    bool dirty;                /* log has unflushed lines */
    uint8_t *confirms;         /* per seq: confirm callbacks seen */
    chaos_pub_arg_t *args;     /* per seq: the callback's argument */
    uint64_t confirmed;
    uint64_t duplicates;
    uint64_t nacks;
    uint64_t twice;            /* seqs whose callback ran more than once */
    bool log_failed;
};

static void s_on_confirm(const sl_confirm_t *c, void *arg)
{
    chaos_pub_arg_t *a = arg;
    chaos_producer_t *p = a->p;
    if (p->confirms[a->seq] < UINT8_MAX)
        p->confirms[a->seq]++;
    if (p->confirms[a->seq] > 1)
        p->twice++;
    int n;
    if (c->rc == 0) {
        p->confirmed++;
        p->duplicates += c->duplicate;
        n = fprintf(p->log, "p%d-%" PRIu64 " %" PRIu64 " %d\n", p->id, a->seq,
                    c->offset, c->duplicate ? 1 : 0);
    }
    else {
        p->nacks++;
        n = fprintf(p->log, "NACK p%d-%" PRIu64 " %d %s\n", p->id, a->seq,
                    c->rc, c->text ? c->text : "");
    }
    if (n < 0)
        p->log_failed = true;
    p->dirty = true;
}

static int s_producer_flush_log(chaos_producer_t *p)
{
    if (p->dirty && fflush(p->log) != 0)
        p->log_failed = true;
    p->dirty = false;
    return p->log_failed ? -1 : 0;
}

/* Publish COUNT numbered payloads, logging each confirm; exit status. */
static int s_producer_main(const chaos_opts_t *o)
{
    int rc = 1;
    sl_client_t *c = NULL;
    chaos_producer_t p = { .id = o->id };
    uint64_t deadline = s_now_ms() + (uint64_t) o->timeout_s * 1000u;
    char path[512], idfile[512], name[64];
    s_path(path, sizeof path, o->dir, "confirm%d.log", o->id);
    s_path(idfile, sizeof idfile, o->dir, "producer%d.id", o->id);
    snprintf(name, sizeof name, "chaos-producer-%d", o->id);
    p.log = fopen(path, "a");
    p.confirms = calloc(o->count ? o->count : 1, 1);
    p.args = calloc(o->count ? o->count : 1, sizeof *p.args);
    if (!p.log || !p.confirms || !p.args) {
        fprintf(stderr, "producer %d: cannot set up %s: %s\n", o->id, path,
                strerror(errno));
        goto done;
    }
    sl_options_t so;
    sl_options_init(&so);
    so.endpoint = o->endpoint;
    so.name = name;
    so.producer_id_file = idfile;
    so.max_unacked = CHAOS_WINDOW;
    so.connect_timeout_ms = 30000;
    int e = sl_client_new(&so, &c);
    if (e) {
        fprintf(stderr, "producer %d: sl_client_new: %s\n", o->id, sl_strerror(e));
        goto done;
    }
    uint64_t start = s_now_ms();
    for (uint64_t seq = 0; seq < o->count; seq++) {
        /* With a rate, message SEQ is due at start + seq / rate. */
        uint64_t due = o->rate ? start + seq * 1000u / o->rate : 0;
        while (sl_unconfirmed(c) >= CHAOS_WINDOW || s_now_ms() < due) {
            if (s_left_ms(deadline) == 0) {
                fprintf(stderr, "producer %d: timeout with %zu unconfirmed\n",
                        o->id, sl_unconfirmed(c));
                goto done;
            }
            uint64_t now = s_now_ms();
            e = sl_poll(c, now < due && due - now < 100 ? (int) (due - now) : 100);
            if (e < 0) {
                fprintf(stderr, "producer %d: sl_poll: %s\n", o->id, sl_strerror(e));
                goto done;
            }
            if (s_producer_flush_log(&p) != 0)
                goto log_fail;
        }
        char payload[CHAOS_PAYLOAD_MAX + 1];
        /* --inject swap-order: p<id>-5 and -6 trade places. */
        uint64_t label = !s_injected(o, "swap-order") ? seq
                       : seq == 5 ? 6 : seq == 6 ? 5 : seq;
        int len = snprintf(payload, sizeof payload, "p%d-%" PRIu64, o->id, label);
        sl_message_t m = { .topic = CHAOS_TOPIC, .payload = payload,
                           .len = (size_t) len };
        p.args[seq] = (chaos_pub_arg_t) { &p, seq };
        /* --inject topic-dup: p<id>-3 goes out twice, once unseen. */
        if (seq == 3 && s_injected(o, "topic-dup")
            && (e = sl_publish(c, &m, NULL, NULL, NULL)) != 0) {
            fprintf(stderr, "producer %d: sl_publish: %s\n", o->id, sl_strerror(e));
            goto done;
        }
        while ((e = sl_publish(c, &m, s_on_confirm, &p.args[seq], NULL)) != 0) {
            /* First publish waits for the session; a full queue blocks: both
             * are retried while the broker restarts. */
            if ((e != SL_ETIMEOUT && e != SL_EBUSY) || s_left_ms(deadline) == 0) {
                fprintf(stderr, "producer %d: sl_publish seq %" PRIu64 ": %s\n",
                        o->id, seq, sl_strerror(e));
                goto done;
            }
        }
        if (s_producer_flush_log(&p) != 0)
            goto log_fail;
    }
    while ((e = sl_flush(c, s_left_ms(deadline))) != 0) {
        if (e != SL_ETIMEOUT || s_left_ms(deadline) == 0) {
            fprintf(stderr, "producer %d: sl_flush: %s (%zu unconfirmed)\n",
                    o->id, sl_strerror(e), sl_unconfirmed(c));
            goto done;
        }
    }
    if (s_producer_flush_log(&p) != 0)
        goto log_fail;
    uint64_t missing = 0;
    for (uint64_t seq = 0; seq < o->count; seq++)
        missing += p.confirms[seq] == 0;
    fprintf(stderr, "producer %d: published %" PRIu64 " confirmed %" PRIu64
            " duplicates %" PRIu64 " nacks %" PRIu64 " twice %" PRIu64
            " missing %" PRIu64 " reconnects %" PRIu64 "\n", o->id, o->count,
            p.confirmed, p.duplicates, p.nacks, p.twice, missing,
            sl_client_reconnects(c));
    char sum[512];
    s_path(sum, sizeof sum, o->dir, "producer%d.sum", o->id);
    FILE *f = fopen(sum, "w");
    if (!f || fprintf(f, "%" PRIu64 "\n", sl_client_reconnects(c)) < 0) {
        if (f)
            fclose(f);
        goto log_fail;
    }
    if (fclose(f) != 0)
        goto log_fail;
    rc = (p.confirmed == o->count && p.nacks == 0 && p.twice == 0 && !missing)
       ? 0 : 1;
    goto done;
log_fail:
    fprintf(stderr, "producer %d: writing the confirm log failed\n", o->id);
done:
    sl_client_destroy(&c);
    if (p.log && fclose(p.log) != 0)
        rc = 1;
    free(p.confirms);
    free(p.args);
    return rc;
}

/* ------------------------------------------------------------ consumer */

/* Write MSG into the sink slot of its offset (idempotent) and log it. */
static int s_consume_one(int sink, int seen, sl_msg_t *m, int life, bool corrupt)
{
    size_t len;
    const char *payload = sl_msg_payload(m, &len);
    uint64_t off = sl_msg_offset(m);
    /* --inject sink-corrupt: slot 7 gets a wrong payload. */
    if (corrupt && off == 7) {
        payload = "bogus";
        len = 5;
    }
    if (len > CHAOS_PAYLOAD_MAX) {
        fprintf(stderr, "consumer: offset %" PRIu64 " payload of %zu bytes\n",
                off, len);
        return -1;
    }
    uint8_t rec[CHAOS_RECORD] = { CHAOS_MARK, (uint8_t) len };
    memcpy(rec + 2, payload, len);
    if (off > (uint64_t) (INT64_MAX / CHAOS_RECORD)
        || pwrite(sink, rec, sizeof rec, (off_t) (off * CHAOS_RECORD))
           != (ssize_t) sizeof rec)
        return -1;
    chaos_seen_t s = { off, sl_msg_attempt(m), (uint32_t) life };
    return s_write_all(seen, &s, sizeof s);
}

/* Ack and free the NHELD messages in HELD. 0 or -1. */
static int s_ack_held(sl_msg_t **held, size_t *nheld, int id)
{
    int rc = 0;
    for (size_t i = 0; i < *nheld; i++) {
        int e = sl_ack(held[i]);
        if (e && !rc) {
            fprintf(stderr, "consumer %d: sl_ack offset %" PRIu64 ": %s\n", id,
                    sl_msg_offset(held[i]), sl_strerror(e));
            rc = -1;
        }
        sl_msg_destroy(&held[i]);
    }
    *nheld = 0;
    return rc;
}

/* Consume durable subscription sub<id> until SIGTERM; exit status. Like a
 * sink that commits in batches, it acks up to CHAOS_ACK_BATCH messages at
 * once, after writing each: a kill leaves written but unacked messages,
 * which must come back and land in the same slots. */
static int s_consumer_main(const chaos_opts_t *o)
{
    int rc = 1, sink = -1, seen = -1;
    sl_client_t *c = NULL;
    sl_sub_t *sub = NULL;
    sl_msg_t *held[CHAOS_ACK_BATCH];
    size_t nheld = 0;
    uint64_t deadline = s_now_ms() + (uint64_t) o->timeout_s * 1000u;
    /* SIGTERM is the parent's "stop now": blocked (already since the
     * fork, see s_spawn) and polled, so no handler and no global flag. */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &term, NULL) != 0)
        return 1;
    char path[512], name[32], cname[64];
    snprintf(name, sizeof name, "sub%d", o->id);
    snprintf(cname, sizeof cname, "chaos-consumer-%d.%d", o->id, o->life);
    s_path(path, sizeof path, o->dir, "sink%d.dat", o->id);
    sink = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    s_path(path, sizeof path, o->dir, "seen%d.log", o->id);
    seen = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (sink < 0 || seen < 0) {
        fprintf(stderr, "consumer %d: cannot open its files: %s\n", o->id,
                strerror(errno));
        goto done;
    }
    sl_options_t so;
    sl_options_init(&so);
    so.endpoint = o->endpoint;
    so.name = cname;
    so.connect_timeout_ms = 10000;
    int e = sl_client_new(&so, &c);
    if (e) {
        fprintf(stderr, "consumer %d: sl_client_new: %s\n", o->id, sl_strerror(e));
        goto done;
    }
    sl_sub_options_t sub_o;
    sl_sub_options_init(&sub_o);
    sub_o.name = name;
    sub_o.pattern = CHAOS_TOPIC;
    sub_o.start = SL_START_EARLIEST;
    /* Every consumer kill makes the broker deliver what was in flight
     * again; the test is about loss and duplicates, not dead-lettering,
     * so redelivery must never run out (s_verify checks the DLQ is empty). */
    sub_o.max_deliver = CHAOS_MAX_DELIVER;
    while ((e = sl_subscribe(c, &sub_o, &sub)) != 0) {
        if (e != SL_ETIMEOUT || s_left_ms(deadline) == 0) {
            fprintf(stderr, "consumer %d: sl_subscribe: %s\n", o->id, sl_strerror(e));
            goto done;
        }
    }
    while (true) {
        sigset_t pending;
        if (sigpending(&pending) != 0)
            goto done;
        if (sigismember(&pending, SIGTERM))
            break;
        if (s_left_ms(deadline) == 0) {
            fprintf(stderr, "consumer %d: timeout\n", o->id);
            goto done;
        }
        sl_msg_t *m = NULL;
        e = sl_sub_next(sub, nheld ? 20 : 100, &m);
        if (e == SL_ETIMEOUT) {
            if (s_ack_held(held, &nheld, o->id) != 0)
                goto done;
            continue;
        }
        if (e) {
            fprintf(stderr, "consumer %d: sl_sub_next: %s\n", o->id, sl_strerror(e));
            goto done;
        }
        /* The effect first, then the ack: a crash in between redelivers
         * the message, whose rewrite of the same slot changes nothing. */
        held[nheld++] = m;
        if (s_consume_one(sink, seen, m, o->life,
                          s_injected(o, "sink-corrupt")) != 0) {
            fprintf(stderr, "consumer %d: sink write failed: %s\n", o->id,
                    strerror(errno));
            goto done;
        }
        if (nheld == CHAOS_ACK_BATCH && s_ack_held(held, &nheld, o->id) != 0)
            goto done;
    }
    if (s_ack_held(held, &nheld, o->id) != 0)
        goto done;
    /* Unsubscribe sends the queued acks before its request, and waits. */
    e = sl_unsubscribe(&sub, false);
    if (e) {
        fprintf(stderr, "consumer %d: sl_unsubscribe: %s\n", o->id, sl_strerror(e));
        goto done;
    }
    rc = 0;
done:
    for (size_t i = 0; i < nheld; i++)
        sl_msg_destroy(&held[i]);
    sl_client_destroy(&c);
    if (sink >= 0 && close(sink) != 0)
        rc = 1;
    if (seen >= 0 && close(seen) != 0)
        rc = 1;
    return rc;
}

/* -------------------------------------------------------- orchestrator */

typedef struct {
    uint16_t producer;
    uint64_t seq;
} chaos_msg_id_t;

typedef struct {
    chaos_opts_t o;
    chaos_rng_t rng;
    char exe[PATH_MAX];
    char work[256];            /* our files; kept when the run fails */
    h_broker_t broker;
    bool broker_ready;
    uint64_t started;
    uint64_t deadline;
    int failures;
    /* children */
    pid_t prod[CHAOS_MAX_PROCS];
    bool prod_done[CHAOS_MAX_PROCS];
    pid_t cons[CHAOS_MAX_PROCS];
    int cons_life[CHAOS_MAX_PROCS];
    /* progress */
    int conf_fd[CHAOS_MAX_PROCS];
    uint64_t conf_lines[CHAOS_MAX_PROCS];
    uint64_t *bk_at;           /* broker kill i once work >= bk_at[i] */
    uint64_t *ck_at;           /* consumer kill i once consumed >= ck_at[i] */
    int bk_done, ck_done;
    uint64_t bk_last, ck_last; /* progress at the last kill */
    uint64_t sink_filled[CHAOS_MAX_PROCS];
    /* what the producers were told */
    uint64_t per_prod[CHAOS_MAX_PROCS];
    uint64_t *conf_off[CHAOS_MAX_PROCS];   /* per seq; CHAOS_NONE = none */
    uint8_t *conf_n[CHAOS_MAX_PROCS];
    uint64_t confirmed, duplicates, nacks, reconnects;
    uint64_t expected;         /* messages the topic must hold */
    /* what the topic holds, by offset */
    chaos_msg_id_t *topic;
    bool topic_read;           /* all of it was read */
} chaos_t;

/* Count a problem; the first CHAOS_SHOW_MAX are printed. */
static void s_fail(chaos_t *self, const char *fmt, ...)
{
    if (self->failures++ >= CHAOS_SHOW_MAX) {
        if (self->failures == CHAOS_SHOW_MAX + 1)
            fprintf(stderr, "chaos: FAIL: (further problems counted, not shown)\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chaos: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static double s_elapsed(const chaos_t *self)
{
    return (double) (s_now_ms() - self->started) / 1000.0;
}

/* Fork and re-execute ourselves as a child ROLE; its stderr goes to
 * WORK/<role><id>.err. 0 and *pid, or -1. */
static int s_spawn(chaos_t *self, const char *role, int id, int life,
                   uint64_t count, pid_t *pid)
{
    char idb[16], lifeb[16], countb[32], timeoutb[16], rateb[32], errlog[512];
    snprintf(idb, sizeof idb, "%d", id);
    snprintf(lifeb, sizeof lifeb, "%d", life);
    snprintf(countb, sizeof countb, "%" PRIu64, count);
    int left_s = s_left_ms(self->deadline) / 1000 + 1;
    snprintf(timeoutb, sizeof timeoutb, "%d", left_s);
    /* Each producer takes its share of the rate (at least 1/s). */
    uint64_t share = self->o.rate / (uint64_t) self->o.producers;
    snprintf(rateb, sizeof rateb, "%" PRIu64, self->o.rate && !share ? 1 : share);
    s_path(errlog, sizeof errlog, self->work, "%s%d.err", role, id);
    char *argv[] = { self->exe, "--role", (char *) role, "--dir", self->work,
                     "--endpoint", self->broker.endpoint, "--id", idb,
                     "--life", lifeb, "--count", countb, "--timeout", timeoutb,
                     "--rate", rateb,
                     self->o.inject ? "--inject" : NULL, (char *) self->o.inject,
                     NULL };
    pid_t p = fork();
    if (p < 0)
        return -1;
    if (p == 0) {
        /* Die with the orchestrator, whatever kills it. SIGTERM (the
         * consumer's "stop") stays blocked across exec and is polled, so
         * one sent while the child starts up is not fatal. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        sigset_t term;
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        sigprocmask(SIG_BLOCK, &term, NULL);
        int fd = open(errlog, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        execv(self->exe, argv);
        _exit(127);
    }
    *pid = p;
    return 0;
}

/* Stop the broker with SIG within TIMEOUT_MS (then SIGKILL). The broker's
 * exit status, or -1 when it had to be killed or was not running. */
static int s_broker_stop(chaos_t *self, int sig, int timeout_ms)
{
    h_broker_t *b = &self->broker;
    self->broker_ready = false;
    if (!b->pid)
        return -1;
    int status = 0;
    if (kill(b->pid, sig) != 0 || s_reap(b->pid, timeout_ms, &status) != 0) {
        (void) kill(b->pid, SIGKILL);
        (void) s_reap(b->pid, 10000, &status);
        b->pid = 0;
        return -1;
    }
    b->pid = 0;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

static int s_broker_start(chaos_t *self)
{
    if (h_broker_start(&self->broker) != 0) {
        s_fail(self, "sluiced did not start (log %s)", self->broker.log);
        return -1;
    }
    self->broker_ready = true;
    return 0;
}

/* Count new lines in producer I's confirm log. */
static void s_progress_confirms(chaos_t *self, int i)
{
    if (self->conf_fd[i] < 0) {
        char path[512];
        s_path(path, sizeof path, self->work, "confirm%d.log", i);
        self->conf_fd[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (self->conf_fd[i] < 0)
            return;
    }
    char buf[65536];
    ssize_t n;
    while ((n = read(self->conf_fd[i], buf, sizeof buf)) > 0)
        for (ssize_t k = 0; k < n; k++)
            self->conf_lines[i] += buf[k] == '\n';
}

static uint64_t s_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t) st.st_size : 0;
}

/* Deliveries handed to consumers so far, all subscriptions together. */
static uint64_t s_progress_seen(const chaos_t *self)
{
    uint64_t n = 0;
    for (int i = 0; i < self->o.subs; i++) {
        char path[512];
        s_path(path, sizeof path, self->work, "seen%d.log", i);
        n += s_file_size(path) / sizeof(chaos_seen_t);
    }
    return n;
}

static uint64_t s_progress_confirmed(chaos_t *self)
{
    uint64_t n = 0;
    for (int i = 0; i < self->o.producers; i++) {
        s_progress_confirms(self, i);
        n += self->conf_lines[i];
    }
    return n;
}

/* Advance sink I's filled prefix; true when it holds EXPECTED slots. */
static bool s_sink_complete(chaos_t *self, int i, uint64_t expected)
{
    char path[512];
    s_path(path, sizeof path, self->work, "sink%d.dat", i);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return expected == 0;
    uint8_t buf[CHAOS_RECORD * 1024];
    bool gap = false;
    while (!gap && self->sink_filled[i] < expected) {
        ssize_t n = pread(fd, buf, sizeof buf,
                          (off_t) (self->sink_filled[i] * CHAOS_RECORD));
        if (n < CHAOS_RECORD)
            break;
        for (ssize_t k = 0; k + CHAOS_RECORD <= n; k += CHAOS_RECORD) {
            if (buf[k] != CHAOS_MARK || self->sink_filled[i] >= expected) {
                gap = true;
                break;
            }
            self->sink_filled[i]++;
        }
    }
    close(fd);
    return self->sink_filled[i] >= expected;
}

/* Reap children that ended by themselves. -1 when one failed. */
static int s_check_children(chaos_t *self)
{
    int rc = 0;
    for (int i = 0; i < self->o.producers; i++) {
        int status;
        if (self->prod_done[i] || waitpid(self->prod[i], &status, WNOHANG) != self->prod[i])
            continue;
        self->prod_done[i] = true;
        self->prod[i] = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char st[32];
            s_status_text(status, st, sizeof st);
            s_fail(self, "producer %d ended with %s (see %s/producer%d.err)", i,
                   st, self->work, i);
            rc = -1;
        }
    }
    for (int i = 0; i < self->o.subs; i++) {
        int status;
        if (self->cons[i] && waitpid(self->cons[i], &status, WNOHANG) == self->cons[i]) {
            char st[32];
            s_status_text(status, st, sizeof st);
            s_fail(self, "consumer %d ended by itself with %s (see %s/consumer%d.err)",
                   i, st, self->work, i);
            self->cons[i] = 0;
            rc = -1;
        }
    }
    return rc;
}

static int s_kill_broker(chaos_t *self, uint64_t work)
{
    /* A random moment within the next few ms, then a random downtime. */
    s_sleep_ms(s_rand_range(&self->rng, 0, 30));
    int st = s_broker_stop(self, SIGKILL, 10000);
    self->bk_done++;
    self->bk_last = work;
    printf("chaos: %6.1f s  broker kill %d/%d (%s)\n", s_elapsed(self),
           self->bk_done, self->o.broker_kills,
           st == 128 + SIGKILL ? "SIGKILL" : "not running?");
    fflush(stdout);
    if (st != 128 + SIGKILL) {
        s_fail(self, "broker was not running when killed (status %d)", st);
        return -1;
    }
    s_sleep_ms(s_rand_range(&self->rng, 0, 500));
    return s_broker_start(self);
}

static int s_kill_consumer(chaos_t *self, uint64_t consumed)
{
    int i = (int) s_rand_range(&self->rng, 0, (uint64_t) self->o.subs - 1);
    s_sleep_ms(s_rand_range(&self->rng, 0, 30));
    int status;
    if (kill(self->cons[i], SIGKILL) != 0
        || s_reap(self->cons[i], 10000, &status) != 0) {
        s_fail(self, "cannot kill consumer %d", i);
        return -1;
    }
    self->cons[i] = 0;
    self->ck_done++;
    self->ck_last = consumed;
    printf("chaos: %6.1f s  consumer kill %d/%d (sub%d, life %d)\n",
           s_elapsed(self), self->ck_done, self->o.consumer_kills, i,
           self->cons_life[i]);
    fflush(stdout);
    s_sleep_ms(s_rand_range(&self->rng, 0, 300));
    self->cons_life[i]++;
    if (s_spawn(self, "consumer", i, self->cons_life[i], 0, &self->cons[i]) != 0) {
        s_fail(self, "cannot restart consumer %d", i);
        return -1;
    }
    return 0;
}

/* K thresholds in [LO%, HI%] of TOTAL, ascending: one drawn at random in
 * each of K equal strata, so kills spread over the run. */
static uint64_t *s_plan(chaos_rng_t *rng, int k, uint64_t total, int lo, int hi)
{
    uint64_t *at = calloc((size_t) (k > 0 ? k : 1), sizeof *at);
    if (!at)
        return NULL;
    uint64_t from = total * (uint64_t) lo / 100, to = total * (uint64_t) hi / 100;
    uint64_t width = k > 0 ? (to - from) / (uint64_t) k : 0;
    for (int i = 0; i < k; i++)
        at[i] = s_rand_range(rng, from + width * (uint64_t) i,
                             from + width * (uint64_t) (i + 1));
    return at;
}

/* Read every confirm log into conf_off / conf_n. -1 on a violation. */
static int s_load_confirms(chaos_t *self)
{
    int rc = 0;
    uint64_t max_off = 0;
    bool any = false;
    for (int i = 0; i < self->o.producers; i++) {
        char path[512], line[256];
        s_path(path, sizeof path, self->work, "confirm%d.log", i);
        FILE *f = fopen(path, "r");
        if (!f) {
            s_fail(self, "no confirm log %s", path);
            return -1;
        }
        while (fgets(line, sizeof line, f)) {
            int id, dup;
            unsigned long long seq, off;
            if (strncmp(line, "NACK", 4) == 0) {
                self->nacks++;
                s_fail(self, "producer %d got a final nack: %s", i, line);
                rc = -1;
                continue;
            }
            if (sscanf(line, "p%d-%llu %llu %d", &id, &seq, &off, &dup) != 4
                || id != i || seq >= self->per_prod[i]) {
                s_fail(self, "bad line in %s: %s", path, line);
                rc = -1;
                continue;
            }
            self->confirmed++;
            self->duplicates += dup != 0;
            if (self->conf_n[i][seq]++ > 0) {
                s_fail(self, "p%d-%llu confirmed twice", i, seq);
                rc = -1;
            }
            self->conf_off[i][seq] = off;
            if (off != CHAOS_NONE) {
                any = true;
                max_off = off > max_off ? off : max_off;
            }
        }
        if (fclose(f) != 0)
            rc = -1;
        char sum[512];
        s_path(sum, sizeof sum, self->work, "producer%d.sum", i);
        f = fopen(sum, "r");
        unsigned long long r = 0;
        if (f) {
            if (fscanf(f, "%llu", &r) == 1)
                self->reconnects += r;
            fclose(f);
        }
        for (uint64_t s = 0; s < self->per_prod[i]; s++)
            if (self->conf_n[i][s] == 0) {
                s_fail(self, "p%d-%" PRIu64 " was published but never confirmed",
                       i, s);
                rc = -1;
                break;
            }
    }
    self->expected = self->confirmed;
    if (any && max_off + 1 != self->expected) {
        s_fail(self, "the highest confirmed offset is %" PRIu64 " but %" PRIu64
               " messages were confirmed (offsets 0..%" PRIu64 " expected)",
               max_off, self->expected, self->expected - 1);
        rc = -1;
    }
    return rc;
}

static sl_client_t *s_admin_client(chaos_t *self);

/* What the broker says right now, for a failure report. */
static void s_dump_broker(chaos_t *self)
{
    sl_client_t *c = self->broker_ready ? s_admin_client(self) : NULL;
    sl_topic_info_t *topics = NULL;
    sl_sub_info_t *subs = NULL;
    size_t nt = 0, ns = 0;
    if (!c || sl_stats(c, &topics, &nt, &subs, &ns) != 0) {
        fprintf(stderr, "chaos: no stats from the broker\n");
        goto done;
    }
    for (size_t i = 0; i < nt; i++)
        fprintf(stderr, "chaos: broker topic %s: messages %" PRIu64 " offsets %"
                PRIu64 "..%" PRIu64 "\n", topics[i].name, topics[i].messages,
                topics[i].first_offset, topics[i].next_offset);
    for (size_t i = 0; i < ns; i++)
        fprintf(stderr, "chaos: broker sub %s: attached %d lag %" PRIu64
                " in_flight %u delivered %" PRIu64 " redelivered %" PRIu64
                " acked %" PRIu64 " dead_lettered %" PRIu64 "\n", subs[i].name,
                subs[i].attached, subs[i].lag, subs[i].in_flight,
                subs[i].delivered, subs[i].redelivered, subs[i].acked,
                subs[i].dead_lettered);
done:
    free(topics);
    free(subs);
    sl_client_destroy(&c);
}

/* Publishing and consuming under kills, until everything is consumed. */
static int s_run(chaos_t *self)
{
    const chaos_opts_t *o = &self->o;
    uint64_t total = o->messages;
    self->bk_at = s_plan(&self->rng, o->broker_kills, 2 * total, 5, 95);
    self->ck_at = s_plan(&self->rng, o->consumer_kills, total, 5, 90);
    if (!self->bk_at || !self->ck_at)
        return -1;
    for (int i = 0; i < o->producers; i++) {
        self->per_prod[i] = total / (uint64_t) o->producers
                          + ((uint64_t) i < total % (uint64_t) o->producers);
        if (s_spawn(self, "producer", i, 0, self->per_prod[i], &self->prod[i]) != 0)
            return -1;
    }
    for (int i = 0; i < o->subs; i++)
        if (s_spawn(self, "consumer", i, 0, 0, &self->cons[i]) != 0)
            return -1;
    uint64_t bk_gap = 2 * total / (4 * (uint64_t) (o->broker_kills + 1)) + 1;
    uint64_t ck_gap = total / (4 * (uint64_t) (o->consumer_kills + 1)) + 1;
    bool loaded = false;
    uint64_t last_report = s_now_ms();
    while (true) {
        if (s_left_ms(self->deadline) == 0) {
            s_fail(self, "timeout after %d s: %d/%d broker kills, %d/%d consumer"
                   " kills, %" PRIu64 " confirmed, %" PRIu64 " deliveries seen",
                   o->timeout_s, self->bk_done, o->broker_kills, self->ck_done,
                   o->consumer_kills, s_progress_confirmed(self),
                   s_progress_seen(self));
            for (int i = 0; i < o->subs; i++)
                fprintf(stderr, "chaos: sink%d filled up to %" PRIu64 "\n", i,
                        self->sink_filled[i]);
            s_dump_broker(self);
            return -1;
        }
        if (s_check_children(self) != 0)
            return -1;
        uint64_t confirmed = s_progress_confirmed(self);
        uint64_t consumed = s_progress_seen(self) / (uint64_t) o->subs;
        uint64_t work = confirmed + (consumed < total ? consumed : total);
        bool producers_done = true;
        for (int i = 0; i < o->producers; i++)
            producers_done &= self->prod_done[i];
        bool caught_up = false;
        if (producers_done) {
            if (!loaded) {
                loaded = true;
                /* Problems are counted; going on lets the verification
                 * show the whole picture. */
                (void) s_load_confirms(self);
                printf("chaos: %6.1f s  producers done: %" PRIu64 " confirmed\n",
                       s_elapsed(self), self->confirmed);
                fflush(stdout);
            }
            caught_up = true;
            for (int i = 0; i < o->subs; i++)
                caught_up &= s_sink_complete(self, i, self->expected);
        }
        /* Each kill needs real progress since the last one (a quarter of
         * a stratum), so every broker and consumer life carries traffic;
         * once everything is consumed the rest are done at once. */
        if (self->bk_done < o->broker_kills
            && ((work >= self->bk_at[self->bk_done]
                 && work >= self->bk_last + bk_gap) || caught_up)) {
            if (s_kill_broker(self, work) != 0)
                return -1;
            continue;
        }
        if (self->ck_done < o->consumer_kills
            && ((consumed >= self->ck_at[self->ck_done]
                 && consumed >= self->ck_last + ck_gap) || caught_up)) {
            if (s_kill_consumer(self, consumed) != 0)
                return -1;
            continue;
        }
        if (caught_up && self->bk_done == o->broker_kills
            && self->ck_done == o->consumer_kills)
            return 0;
        if (s_now_ms() - last_report >= 5000) {
            last_report = s_now_ms();
            printf("chaos: %6.1f s  confirmed %" PRIu64 ", consumed %" PRIu64
                   " per sub\n", s_elapsed(self), confirmed, consumed);
            fflush(stdout);
        }
        s_sleep_ms(s_rand_range(&self->rng, 2, 20));
    }
}

static const sl_sub_info_t *s_sub_info(const sl_sub_info_t *subs, size_t n,
                                       const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(subs[i].name, name) == 0)
            return &subs[i];
    return NULL;
}

static const sl_topic_info_t *s_topic_info(const sl_topic_info_t *t, size_t n,
                                           const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

static sl_client_t *s_admin_client(chaos_t *self)
{
    sl_options_t so;
    sl_options_init(&so);
    so.endpoint = self->broker.endpoint;
    so.name = "chaos-check";
    so.connect_timeout_ms = 10000;
    sl_client_t *c = NULL;
    int e = sl_client_new(&so, &c);
    if (!e)
        e = sl_client_connect(c);
    if (e) {
        s_fail(self, "cannot connect to the broker: %s", sl_strerror(e));
        sl_client_destroy(&c);
    }
    return c;
}

/* Wait until the broker has every subscription's acks (lag 0, nothing in
 * flight), then stop the consumers with SIGTERM. */
static int s_drain_consumers(chaos_t *self)
{
    int rc = -1;
    sl_client_t *c = s_admin_client(self);
    if (!c)
        return -1;
    bool settled = false;
    while (!settled && s_left_ms(self->deadline) > 0) {
        sl_sub_info_t *subs = NULL;
        size_t n = 0;
        int e = sl_stats(c, NULL, NULL, &subs, &n);
        if (e == 0) {
            settled = true;
            for (int i = 0; i < self->o.subs; i++) {
                char name[32];
                snprintf(name, sizeof name, "sub%d", i);
                const sl_sub_info_t *si = s_sub_info(subs, n, name);
                settled &= si && si->lag == 0 && si->in_flight == 0;
            }
        }
        free(subs);
        if (!settled)
            s_sleep_ms(100);
    }
    sl_client_destroy(&c);
    if (!settled) {
        s_fail(self, "subscriptions did not reach lag 0 before the timeout");
        s_dump_broker(self);
        goto done;
    }
    rc = 0;
    for (int i = 0; i < self->o.subs; i++) {
        int status;
        if (!self->cons[i])
            continue;
        if (kill(self->cons[i], SIGTERM) != 0
            || s_reap(self->cons[i], 15000, &status) != 0) {
            s_fail(self, "consumer %d did not stop on SIGTERM within 15 s", i);
            (void) kill(self->cons[i], SIGKILL);
            (void) s_reap(self->cons[i], 5000, &status);
            rc = -1;
        }
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char st[32];
            s_status_text(status, st, sizeof st);
            s_fail(self, "consumer %d stopped with %s", i, st);
            rc = -1;
        }
        self->cons[i] = 0;
    }
done:
    return rc;
}

/* Read the whole topic through a fresh subscription into self->topic and
 * check it against the confirms: each confirmed payload exactly once, at
 * its confirmed offset, per-producer order kept. */
static int s_verify_topic(chaos_t *self, sl_client_t *c)
{
    int rc = 0;
    uint64_t n = self->expected;
    self->topic = calloc(n ? n : 1, sizeof *self->topic);
    uint8_t *found[CHAOS_MAX_PROCS] = { 0 };
    uint64_t last_seq[CHAOS_MAX_PROCS];
    bool have_last[CHAOS_MAX_PROCS] = { 0 };
    sl_sub_t *sub = NULL;
    if (!self->topic)
        return -1;
    for (int i = 0; i < self->o.producers; i++) {
        found[i] = calloc(self->per_prod[i] ? self->per_prod[i] : 1, 1);
        if (!found[i]) {
            rc = -1;
            goto done;
        }
    }
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = "verify";
    so.pattern = CHAOS_TOPIC;
    so.start = SL_START_EARLIEST;
    int e = sl_subscribe(c, &so, &sub);
    if (e) {
        s_fail(self, "verify subscribe: %s", sl_strerror(e));
        rc = -1;
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        sl_msg_t *m = NULL;
        e = sl_sub_next(sub, s_left_ms(self->deadline) < 10000
                                 ? s_left_ms(self->deadline) : 10000, &m);
        if (e) {
            s_fail(self, "topic read stopped at %" PRIu64 " of %" PRIu64 ": %s",
                   i, n, sl_strerror(e));
            rc = -1;
            goto done;
        }
        size_t len;
        const char *p = sl_msg_payload(m, &len);
        uint64_t off = sl_msg_offset(m);
        int id;
        uint64_t seq;
        if (off != i) {
            s_fail(self, "topic read: offset %" PRIu64 " where %" PRIu64
                   " was due", off, i);
            rc = -1;
        }
        if (off >= n)
            ;                   /* beyond the confirms: reported above */
        else if (s_payload_parse(p, len, &id, &seq) != 0 || id < 0
                 || id >= self->o.producers || seq >= self->per_prod[id]) {
            s_fail(self, "offset %" PRIu64 ": unexpected payload '%.*s'", off,
                   (int) (len < CHAOS_PAYLOAD_MAX ? len : CHAOS_PAYLOAD_MAX), p);
            rc = -1;
        }
        else {
            self->topic[off] = (chaos_msg_id_t) { (uint16_t) id, seq };
            if (found[id][seq]++ > 0) {
                s_fail(self, "p%d-%" PRIu64 " is in the topic twice (again at %"
                       PRIu64 ")", id, seq, off);
                rc = -1;
            }
            if (self->conf_off[id][seq] != off
                && self->conf_off[id][seq] != CHAOS_NONE) {
                s_fail(self, "p%d-%" PRIu64 " was confirmed at offset %" PRIu64
                       " but is at %" PRIu64, id, seq, self->conf_off[id][seq], off);
                rc = -1;
            }
            if (have_last[id] && seq <= last_seq[id]) {
                s_fail(self, "order: p%d-%" PRIu64 " at offset %" PRIu64
                       " after p%d-%" PRIu64, id, seq, off, id, last_seq[id]);
                rc = -1;
            }
            have_last[id] = true;
            last_seq[id] = seq;
        }
        e = sl_ack(m);
        sl_msg_destroy(&m);
        if (e) {
            s_fail(self, "verify ack: %s", sl_strerror(e));
            rc = -1;
            goto done;
        }
    }
    self->topic_read = true;
    sl_msg_t *extra = NULL;
    e = sl_sub_next(sub, 1000, &extra);
    if (e != SL_ETIMEOUT) {
        s_fail(self, "the topic holds more than the %" PRIu64 " confirmed messages"
               " (next: offset %" PRIu64 ")", n,
               extra ? sl_msg_offset(extra) : CHAOS_NONE);
        rc = -1;
    }
    sl_msg_destroy(&extra);
    /* The union of confirms equals the topic: nothing confirmed is missing. */
    for (int i = 0; i < self->o.producers; i++)
        for (uint64_t s = 0; s < self->per_prod[i]; s++)
            if (!found[i][s]) {
                s_fail(self, "p%d-%" PRIu64 " was confirmed (offset %" PRIu64
                       ") but is not in the topic", i, s, self->conf_off[i][s]);
                rc = -1;
            }
    e = sl_unsubscribe(&sub, true);
    if (e) {
        s_fail(self, "verify unsubscribe: %s", sl_strerror(e));
        rc = -1;
    }
done:
    for (int i = 0; i < self->o.producers; i++)
        free(found[i]);
    return rc;
}

/* Check sink I slot by slot against the topic, and count the deliveries
 * its seen log recorded. */
static int s_verify_sink(chaos_t *self, int i)
{
    int rc = 0;
    uint64_t n = self->expected;
    char path[512];
    s_path(path, sizeof path, self->work, "sink%d.dat", i);
    uint64_t size = s_file_size(path);
    if (size != n * CHAOS_RECORD) {
        s_fail(self, "sink%d holds %" PRIu64 " bytes, %" PRIu64 " slots expected",
               i, size, n);
        rc = -1;
    }
    FILE *f = fopen(path, "rb");
    uint64_t good = 0, bad = 0;
    for (uint64_t off = 0; f && off < n; off++) {
        uint8_t rec[CHAOS_RECORD];
        char want[CHAOS_PAYLOAD_MAX + 1];
        int wlen = snprintf(want, sizeof want, "p%u-%" PRIu64,
                            self->topic[off].producer, self->topic[off].seq);
        if (fread(rec, sizeof rec, 1, f) != 1)
            break;
        if (rec[0] == CHAOS_MARK && rec[1] == (uint8_t) wlen
            && memcmp(rec + 2, want, (size_t) wlen) == 0)
            good++;
        else if (bad++ < 5) {
            int shown = rec[0] != CHAOS_MARK ? 0
                      : rec[1] < CHAOS_PAYLOAD_MAX ? rec[1] : CHAOS_PAYLOAD_MAX;
            s_fail(self, "sink%d slot %" PRIu64 ": '%.*s' where '%s' was due", i,
                   off, shown, (const char *) rec + 2, want);
        }
    }
    if (f)
        fclose(f);
    if (good != n) {
        s_fail(self, "sink%d: %" PRIu64 " of %" PRIu64 " slots right", i, good, n);
        rc = -1;
    }
    /* The seen log: every offset at least once, nothing outside the topic,
     * and within one consumer life never twice (the SDK's promise). */
    s_path(path, sizeof path, self->work, "seen%d.log", i);
    uint32_t *count = calloc(n ? n : 1, sizeof *count);
    int32_t *life = malloc((n ? n : 1) * sizeof *life);
    f = fopen(path, "rb");
    uint64_t total = 0, outside = 0, same_life = 0, redelivered_attempts = 0;
    uint64_t missing = 0, redeliveries = 0;
    if (!count || !life || !f) {
        rc = -1;
        goto done;
    }
    for (uint64_t k = 0; k < n; k++)
        life[k] = -1;
    chaos_seen_t s;
    while (fread(&s, sizeof s, 1, f) == 1) {
        total++;
        if (s.offset >= n) {
            outside++;
            continue;
        }
        if (count[s.offset]++ > 0)
            redeliveries++;
        if (life[s.offset] == (int32_t) s.life)
            same_life++;
        life[s.offset] = (int32_t) s.life;
        redelivered_attempts += s.attempt > 1;
    }
    for (uint64_t k = 0; k < n; k++)
        missing += count[k] == 0;
    printf("  sub%d: sink %" PRIu64 "/%" PRIu64 " slots right; deliveries seen %"
           PRIu64 ", redeliveries %" PRIu64 " (attempt > 1: %" PRIu64
           ", within one consumer life: %" PRIu64 "), lives %d\n", i, good, n,
           total, redeliveries, redelivered_attempts, same_life,
           self->cons_life[i] + 1);
    if (outside || missing || same_life) {
        s_fail(self, "sub%d seen log: %" PRIu64 " offsets outside the topic, %"
               PRIu64 " never seen, %" PRIu64 " handed out twice in one life",
               i, outside, missing, same_life);
        rc = -1;
    }
done:
    if (f)
        fclose(f);
    free(count);
    free(life);
    return rc;
}

/* After a clean stop and a restart: broker stats, topic, sinks. */
static int s_verify(chaos_t *self)
{
    int rc = 0;
    sl_topic_info_t *topics = NULL;
    sl_sub_info_t *subs = NULL;
    size_t nt = 0, ns = 0;
    sl_client_t *c = s_admin_client(self);
    if (!c)
        return -1;
    int e = sl_stats(c, &topics, &nt, &subs, &ns);
    if (e) {
        s_fail(self, "sl_stats: %s", sl_strerror(e));
        rc = -1;
        goto done;
    }
    const sl_topic_info_t *t = s_topic_info(topics, nt, CHAOS_TOPIC);
    uint64_t stored = t ? t->messages : 0;
    printf("  broker: topic %s messages %" PRIu64 ", offsets %" PRIu64 "..%" PRIu64
           "\n", CHAOS_TOPIC, stored, t ? t->first_offset : 0,
           t ? t->next_offset : 0);
    if (!t || t->messages != self->expected || t->next_offset != self->expected
        || t->first_offset != 0) {
        s_fail(self, "broker counts %" PRIu64 " messages in %s, %" PRIu64
               " were confirmed", stored, CHAOS_TOPIC, self->expected);
        rc = -1;
    }
    for (size_t k = 0; k < nt; k++)
        if (strncmp(topics[k].name, "_dlq.", 5) == 0 && topics[k].messages) {
            s_fail(self, "%s holds %" PRIu64 " messages", topics[k].name,
                   topics[k].messages);
            rc = -1;
        }
    for (int i = 0; i < self->o.subs; i++) {
        char name[32];
        snprintf(name, sizeof name, "sub%d", i);
        const sl_sub_info_t *si = s_sub_info(subs, ns, name);
        if (!si || si->lag != 0 || si->in_flight != 0 || si->dead_lettered) {
            s_fail(self, "%s after restart: %s lag %" PRIu64 " in flight %u"
                   " dead-lettered %" PRIu64, name, si ? "" : "missing,",
                   si ? si->lag : 0, si ? si->in_flight : 0,
                   si ? si->dead_lettered : 0);
            rc = -1;
        }
    }
    if (s_verify_topic(self, c) != 0)
        rc = -1;
    for (int i = 0; self->topic_read && i < self->o.subs; i++)
        if (s_verify_sink(self, i) != 0)
            rc = -1;
done:
    free(topics);
    free(subs);
    sl_client_destroy(&c);
    return rc;
}

static void s_stop_children(chaos_t *self)
{
    int status;
    for (int i = 0; i < self->o.producers; i++)
        if (self->prod[i] && !self->prod_done[i]) {
            (void) kill(self->prod[i], SIGKILL);
            (void) s_reap(self->prod[i], 5000, &status);
            self->prod[i] = 0;
        }
    for (int i = 0; i < self->o.subs; i++)
        if (self->cons[i]) {
            (void) kill(self->cons[i], SIGKILL);
            (void) s_reap(self->cons[i], 5000, &status);
            self->cons[i] = 0;
        }
}

static void s_dump_tail(const char *path, int lines)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "tail -n %d '%s' 1>&2", lines, path);
    fprintf(stderr, "---- %s\n", path);
    if (system(cmd) != 0)
        fprintf(stderr, "(cannot show %s)\n", path);
}

static int s_orchestrate(chaos_t *self)
{
    const chaos_opts_t *o = &self->o;
    self->started = s_now_ms();
    self->deadline = self->started + (uint64_t) o->timeout_s * 1000u;
    self->rng.s = o->seed;
    for (int i = 0; i < CHAOS_MAX_PROCS; i++)
        self->conf_fd[i] = -1;
    ssize_t n = readlink("/proc/self/exe", self->exe, sizeof self->exe - 1);
    if (n <= 0)
        return 2;
    self->exe[n] = 0;
    snprintf(self->work, sizeof self->work, "/tmp/sluice-chaos-XXXXXX");
    if (!mkdtemp(self->work)) {
        perror("chaos: mkdtemp");
        return 2;
    }
    for (int i = 0; i < o->producers; i++) {
        uint64_t per = o->messages / (uint64_t) o->producers + 1;
        self->conf_off[i] = malloc(per * sizeof *self->conf_off[i]);
        self->conf_n[i] = calloc(per, 1);
        if (!self->conf_off[i] || !self->conf_n[i])
            return 2;
        for (uint64_t s = 0; s < per; s++)
            self->conf_off[i][s] = CHAOS_NONE;
    }
    printf("chaos: seed %" PRIu64 ", %" PRIu64 " messages, %d producers, %d"
           " subscriptions, %d broker kills, %d consumer kills, rate %" PRIu64
           "/s, timeout %d s\n" "chaos: files in %s\n", o->seed, o->messages,
           o->producers, o->subs, o->broker_kills, o->consumer_kills, o->rate,
           o->timeout_s, self->work);
    fflush(stdout);
    h_broker_init(&self->broker, NULL);
    if (s_broker_start(self) == 0 && s_run(self) == 0
        && s_drain_consumers(self) == 0) {
        int st = s_broker_stop(self, SIGTERM, 20000);
        if (st != 0)
            s_fail(self, "sluiced did not stop cleanly on SIGTERM (status %d)", st);
        else if (s_broker_start(self) == 0) {
            printf("chaos: %6.1f s  clean restart; verifying\n", s_elapsed(self));
            fflush(stdout);
            (void) s_verify(self);
        }
    }
    else if (!self->failures)
        s_fail(self, "orchestration error");
    s_stop_children(self);
    if (self->broker.pid && s_broker_stop(self, SIGTERM, 20000) != 0)
        s_fail(self, "sluiced did not stop cleanly at the end");
    printf("chaos: published %" PRIu64 ", confirmed %" PRIu64 ", duplicates"
           " answered %" PRIu64 ", nacks %" PRIu64 ", producer reconnects %"
           PRIu64 ", stored %" PRIu64 "\n", o->messages, self->confirmed,
           self->duplicates, self->nacks, self->reconnects, self->expected);
    printf("chaos: kills done: broker %d/%d, consumer %d/%d; %.1f s\n",
           self->bk_done, o->broker_kills, self->ck_done, o->consumer_kills,
           s_elapsed(self));
    /* A planted defect (--inject) must fail; its files are of no interest. */
    bool keep = self->failures ? !o->inject : o->keep;
    if (self->failures) {
        for (int i = 0; i < o->producers; i++) {
            char p[512];
            s_path(p, sizeof p, self->work, "producer%d.err", i);
            s_dump_tail(p, 10);
        }
        for (int i = 0; i < o->subs; i++) {
            char p[512];
            s_path(p, sizeof p, self->work, "consumer%d.err", i);
            s_dump_tail(p, 10);
        }
        s_dump_tail(self->broker.log, 30);
        printf("chaos: FAILED (%d problems); seed %" PRIu64 "\n", self->failures,
               o->seed);
    }
    else
        printf("chaos: PASS\n");
    if (keep)
        printf("chaos: files kept: %s, broker dir %s, broker log %s\n",
               self->work, self->broker.dir, self->broker.log);
    else {
        char cmd[300];
        h_broker_destroy(&self->broker);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", self->work);
        if (system(cmd) != 0)
            fprintf(stderr, "chaos: could not remove %s\n", self->work);
    }
    return self->failures ? 1 : 0;
}

static void s_chaos_free(chaos_t *self)
{
    for (int i = 0; i < CHAOS_MAX_PROCS; i++) {
        free(self->conf_off[i]);
        free(self->conf_n[i]);
        if (self->conf_fd[i] >= 0)
            close(self->conf_fd[i]);
    }
    free(self->bk_at);
    free(self->ck_at);
    free(self->topic);
}

/* ----------------------------------------------------------------- main */

static void s_usage(FILE *out)
{
    fprintf(out,
        "usage: chaos [--messages N] [--producers P] [--subscriptions S]\n"
        "             [--broker-kills K] [--consumer-kills C] [--seed X]\n"
        "             [--timeout SECONDS] [--rate MSGS_PER_S] [--keep]\n"
        "             [--inject swap-order|topic-dup|sink-corrupt]\n"
        "Publish N numbered messages from P producers to %s while sluiced is\n"
        "SIGKILLed K times and consumers C times; S durable subscriptions\n"
        "consume into idempotent sinks. Exit 0 when every confirmed message is\n"
        "stored once, in producer order, and every sink holds it once.\n"
        "--rate paces the producers (all together) so that kills land while\n"
        "they publish; --keep keeps the work dir of a passing run; --inject\n"
        "plants a defect the checks must catch (the run must then fail).\n"
        "Defaults: 20000 messages, 1 producer, 1 subscription, 5 broker kills,\n"
        "3 consumer kills, seed from the clock, timeout 600 s, no rate limit.\n",
        CHAOS_TOPIC);
}

static int s_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static int s_parse_int(const char *s, int lo, int hi, int *out)
{
    uint64_t v;
    if (s_parse_u64(s, &v) != 0 || v < (uint64_t) lo || v > (uint64_t) hi)
        return -1;
    *out = (int) v;
    return 0;
}

static int s_parse_args(int argc, char **argv, chaos_opts_t *o)
{
    static const struct option longopts[] = {
        { "messages", required_argument, NULL, 'n' },
        { "producers", required_argument, NULL, 'p' },
        { "subscriptions", required_argument, NULL, 's' },
        { "broker-kills", required_argument, NULL, 'k' },
        { "consumer-kills", required_argument, NULL, 'c' },
        { "seed", required_argument, NULL, 'x' },
        { "timeout", required_argument, NULL, 't' },
        { "rate", required_argument, NULL, 'r' },
        { "inject", required_argument, NULL, 'j' },
        { "keep", no_argument, NULL, 'K' },
        { "help", no_argument, NULL, 'h' },
        /* child roles, set by the orchestrator */
        { "role", required_argument, NULL, 'R' },
        { "dir", required_argument, NULL, 'D' },
        { "endpoint", required_argument, NULL, 'E' },
        { "id", required_argument, NULL, 'I' },
        { "life", required_argument, NULL, 'L' },
        { "count", required_argument, NULL, 'C' },
        { NULL, 0, NULL, 0 },
    };
    memset(o, 0, sizeof *o);
    o->messages = 20000;
    o->producers = 1;
    o->subs = 1;
    o->broker_kills = 5;
    o->consumer_kills = 3;
    o->seed = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
    o->timeout_s = 600;
    int ch, bad = 0;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n': bad |= s_parse_u64(optarg, &o->messages); break;
        case 'p': bad |= s_parse_int(optarg, 1, CHAOS_MAX_PROCS, &o->producers); break;
        case 's': bad |= s_parse_int(optarg, 1, CHAOS_MAX_PROCS, &o->subs); break;
        case 'k': bad |= s_parse_int(optarg, 0, 1000, &o->broker_kills); break;
        case 'c': bad |= s_parse_int(optarg, 0, 1000, &o->consumer_kills); break;
        case 'x': bad |= s_parse_u64(optarg, &o->seed); break;
        case 't': bad |= s_parse_int(optarg, 1, 86400, &o->timeout_s); break;
        case 'r': bad |= s_parse_u64(optarg, &o->rate); break;
        case 'j': o->inject = optarg; break;
        case 'K': o->keep = true; break;
        case 'h': s_usage(stdout); exit(0);
        case 'R': o->role = optarg; break;
        case 'D': o->dir = optarg; break;
        case 'E': o->endpoint = optarg; break;
        case 'I': bad |= s_parse_int(optarg, 0, CHAOS_MAX_PROCS - 1, &o->id); break;
        case 'L': bad |= s_parse_int(optarg, 0, INT_MAX, &o->life); break;
        case 'C': bad |= s_parse_u64(optarg, &o->count); break;
        default: bad = 1; break;
        }
    }
    if (optind != argc || o->messages < (uint64_t) o->producers
        || o->messages > 100000000u)
        bad = 1;
    if (o->role && (!o->dir || !o->endpoint))
        bad = 1;
    if (o->inject && strcmp(o->inject, "swap-order") != 0
        && strcmp(o->inject, "topic-dup") != 0
        && strcmp(o->inject, "sink-corrupt") != 0)
        bad = 1;
    return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    chaos_opts_t o;
    if (s_parse_args(argc, argv, &o) != 0) {
        s_usage(stderr);
        return 64;
    }
    if (o.role && strcmp(o.role, "producer") == 0)
        return s_producer_main(&o);
    if (o.role && strcmp(o.role, "consumer") == 0)
        return s_consumer_main(&o);
    if (o.role) {
        s_usage(stderr);
        return 64;
    }
    chaos_t *self = calloc(1, sizeof *self);
    if (!self)
        return 2;
    self->o = o;
    int rc = s_orchestrate(self);
    s_chaos_free(self);
    free(self);
    return rc;
}
