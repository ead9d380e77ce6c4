/*  sluice-bench - throughput and latency of a real broker through the SDK.
 *  W0: transient fan-out (1 publisher, 1 ephemeral subscriber). W1: durable
 *  publish with confirms (window 1000) and an acking durable subscriber.
 *  W1-lat: W1 paced at a fixed rate, for latency. W2: 8 such producer and
 *  subscriber pairs on 8 topics at once. W4: W1's pair through a live
 *  1,000-route table (bench_w4.c): JSON orders in, mapped orders acked.
 *  Each thread owns its own client; a run's shared record is written by
 *  one thread per field and read by main after the join. About 1,200
 *  lines: the workloads share the run record and the broker start; W4's
 *  set-up already lives apart, and the next workload's should too. Starts and stops its own sluiced unless
 *  --broker is given. Last line: "RESULT broker=sluice workload=...
 *  msgs_per_s=..." as the peer drivers of tests/bench/compare print it.  */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "sluice.h"
#include "bench_w4.h"
#include "peers/peer_common.h"   /* the payload stamp: PEER_W0_STAMP_EVERY */

#ifndef SLUICED_PATH
#error "SLUICED_PATH must name the sluiced executable (meson sets it)"
#endif
#ifndef SLUICE_SCHEMAS_DIR
#error "SLUICE_SCHEMAS_DIR must name schemas/ecommerce (meson sets it)"
#endif

enum {
    S_EXIT_OK = 0,
    S_EXIT_VERIFY = 1,              /* a run lost, duplicated or nacked messages */
    S_EXIT_SETUP = 2,               /* broker could not be started or reached */
    S_EXIT_USAGE = 64,
};

/* Most durable publishes awaiting confirm (the W1 window). */
#define S_W1_WINDOW 1000
/* Credit of the W1 durable subscriber (the figure). */
#define S_W1_CREDIT 1000
/* Credit of the W0 ephemeral subscriber: transient messages beyond its
 * credit are dropped (and counted) by the broker. The publisher outruns
 * one subscriber, so a window of 100,000 dropped 16-45% of W0; the peers'
 * subscribers buffer without bound, so ours may buffer the whole run
 * (64 MB) and W0 measures delivery, not dropping. */
#define S_W0_CREDIT 1000000
/* No progress for this long ends a run as failed instead of hanging. */
#define S_IDLE_S 30.0
/* W0: once the publisher is done, a silence this long means the rest was
 * dropped. */
#define S_W0_DRAIN_S 2.0
/* Payload layout: u32 sequence, u64 CLOCK_MONOTONIC ns at publish (the
 * peer drivers' layout, tests/bench/peers/peer_common.h; W3's 12-byte
 * messages are exactly this). */
#define S_HEADER_BYTES 12
/* W2: producer/subscriber pairs, one topic each (default of --streams). */
#define S_W2_STREAMS 8
#define S_STREAMS_MAX 64

typedef enum { S_W0, S_W1, S_W1_LAT, S_W2, S_W4 } s_workload_t;

typedef struct {
    s_workload_t workload;
    const char *name;               /* "W0", "W1", "W1-lat" */
    const char *broker;             /* --broker, NULL = start our own */
    uint64_t count;                 /* messages per run */
    size_t size;                    /* payload bytes */
    uint64_t rate;                  /* W1-lat messages per second */
    int runs;                       /* --runs */
    unsigned streams;               /* W2: producer/subscriber pairs */
    int linger_ms;                  /* --linger, -1 = the SDK's default */
    int batch;                      /* --batch: producers' max_batch, 0 = SDK's */
    uint32_t credit;                /* --credit: durable subscribers' credit */
    const char *home;               /* --home: keys of the --broker's data dir */
    bool plaintext;                 /* --plaintext: our broker without CurveZMQ */
} s_config_t;

/* Credentials of one broker: its public key and the admin certificate in
 * its data dir; empty strings = plain text. */
typedef struct {
    char server_key[300];
    char cert[300];
} s_creds_t;

/* A sluiced we started. */
typedef struct {
    pid_t pid;                      /* 0 = none */
    char dir[64];                   /* mkdtemp dir: data/ and sluiced.log */
    char endpoint[64];              /* tcp://127.0.0.1:PORT */
    s_creds_t creds;                /* DATA/server.pub, DATA/admin.cert */
} s_broker_t;

/* One run. Producer fields are written only by the producer thread,
 * subscriber fields only by the subscriber thread; main reads them after
 * pthread_join. Only the flags cross threads while both run. */
typedef struct {
    const s_config_t *cfg;
    const char *endpoint;
    const s_creds_t *creds;
    uint64_t count;                 /* this pair's messages */
    uint64_t expect;                /* messages the subscriber must get (W4:
                                       the originals not dropped) */
    char topic[128];                /* the subscriber's (and W0-W2 producer's) */
    char pub_topic[128];            /* the producer's */
    char subname[128];
    pthread_barrier_t *ready;       /* main + every producer and subscriber */
    atomic_bool producer_done;
    atomic_bool abort;              /* a thread failed: the other stops */
    /* producer */
    int prod_rc;                    /* 0 or the SDK code that stopped it */
    double t_first;                 /* first publish */
    double t_prod_end;              /* last confirm (W0: last send) */
    uint64_t published;
    uint64_t confirmed;             /* acked by the broker */
    uint64_t confirm_dups;          /* acked as duplicate */
    uint64_t nacked;
    uint64_t busy_retries;          /* W0: SL_EBUSY from sl_publish_transient */
    /* subscriber */
    int sub_rc;
    double t_sub_end;               /* last message received (and acked) */
    uint64_t received;              /* distinct sequences received */
    uint64_t duplicates;            /* a sequence seen again */
    uint64_t out_of_order;          /* offset not above the previous one */
    uint64_t *lat_ns;               /* latencies of stamped messages, owned */
    uint64_t nlat;                  /* how many */
    uint8_t *seen;                  /* one byte per sequence, owned */
} s_run_t;

typedef struct {
    bool ok;                        /* verification passed */
    double msgs_per_s;
    double seconds;
    uint64_t p50_us, p99_us, p999_us;
    uint64_t lost, dups;
} s_result_t;

static double s_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);    /* cannot fail for this clock */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t s_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------- broker */

static int s_free_port(void)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    int fd, port = -1;

    /* Bind port 0 and let the kernel choose: a small race with other
     * programs until sluiced binds it, acceptable for a benchmark. */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0
        && getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

static int s_rm_entry(const char *path, const struct stat *st, int flag,
                      struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "sluice-bench: cannot remove %s: %s\n", path,
                strerror(errno));
    return 0;                       /* remove what we can */
}

/* Show the end of the broker's log: why it did not start or died. */
static void s_broker_dump_log(const s_broker_t *b)
{
    char path[96], buf[4096];
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s/sluiced.log", b->dir);
    f = fopen(path, "r");
    if (!f)
        return;
    if (fseek(f, -(long)sizeof buf, SEEK_END) != 0)
        rewind(f);                  /* shorter than the buffer */
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fprintf(stderr, "--- end of %s ---\n", path);
    fwrite(buf, 1, n, stderr);
    fprintf(stderr, "--- end of log ---\n");
}

static void s_broker_stop(s_broker_t *b)
{
    int status = 0, i;
    pid_t r = 0;

    if (b->pid > 0) {
        if (kill(b->pid, SIGTERM) != 0)
            perror("sluice-bench: kill");
        /* 10 s for a clean shutdown, then SIGKILL: never hang here. */
        for (i = 0; i < 1000; i++) {
            r = waitpid(b->pid, &status, WNOHANG);
            if (r != 0)
                break;
            usleep(10000);
        }
        if (r == 0) {
            fprintf(stderr, "sluice-bench: sluiced did not stop on SIGTERM; "
                    "killing it\n");
            kill(b->pid, SIGKILL);
            r = waitpid(b->pid, &status, 0);
        }
        if (r == b->pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)
            && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)) {
            if (WIFSIGNALED(status))
                fprintf(stderr, "sluice-bench: sluiced died of signal %d "
                        "(%s)\n", WTERMSIG(status), strsignal(WTERMSIG(status)));
            else
                fprintf(stderr, "sluice-bench: sluiced exited with %d\n",
                        WEXITSTATUS(status));
            s_broker_dump_log(b);
        }
        b->pid = 0;
    }
    if (b->dir[0]) {
        if (nftw(b->dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            fprintf(stderr, "sluice-bench: cannot remove %s\n", b->dir);
        b->dir[0] = '\0';
    }
}

/* Client options for ENDPOINT with CREDS (plain text when empty). */
static void s_client_options(sl_options_t *opts, const char *endpoint,
                             const s_creds_t *creds, const char *name, int linger_ms)
{
    sl_options_init(opts);
    if (linger_ms >= 0)
        opts->linger_ms = linger_ms;
    opts->endpoint = endpoint;
    opts->name = name;
    if (creds->server_key[0]) {
        opts->server_key = creds->server_key;
        opts->cert = creds->cert;
    }
}

/* Start SLUICED_PATH on a free loopback port with a fresh data dir and
 * wait until a client can connect. 0 or -1 (after a message; *b stopped
 * and cleaned). */
static int s_broker_start(s_broker_t *b, bool plaintext)
{
    char data[96], log[96];
    sl_options_t opts;
    sl_client_t *client = NULL;
    double deadline;
    int port, logfd = -1, rc = -1, status;

    memset(b, 0, sizeof *b);
    snprintf(b->dir, sizeof b->dir, "/tmp/sluice-bench-XXXXXX");
    if (!mkdtemp(b->dir)) {
        perror("sluice-bench: mkdtemp");
        b->dir[0] = '\0';
        goto fail;
    }
    snprintf(data, sizeof data, "%s/data", b->dir);
    snprintf(log, sizeof log, "%s/sluiced.log", b->dir);
    port = s_free_port();
    if (port < 0) {
        perror("sluice-bench: cannot find a free port");
        goto fail;
    }
    snprintf(b->endpoint, sizeof b->endpoint, "tcp://127.0.0.1:%d", port);
    logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (logfd < 0) {
        perror("sluice-bench: cannot create broker log");
        goto fail;
    }
    b->pid = fork();
    if (b->pid < 0) {
        perror("sluice-bench: fork");
        b->pid = 0;
        goto fail;
    }
    if (b->pid == 0) {
        /* Child: the log takes stdout and stderr (dup2 clears CLOEXEC). */
        if (dup2(logfd, STDOUT_FILENO) < 0 || dup2(logfd, STDERR_FILENO) < 0)
            _exit(127);
        execl(SLUICED_PATH, "sluiced", "--data-dir", data,
              "--listen", b->endpoint,
              plaintext ? "--insecure-plaintext" : (char *)NULL, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", SLUICED_PATH, strerror(errno));
        _exit(127);
    }
    close(logfd);
    logfd = -1;

    if (!plaintext) {
        snprintf(b->creds.server_key, sizeof b->creds.server_key, "%s/server.pub", data);
        snprintf(b->creds.cert, sizeof b->creds.cert, "%s/admin.cert", data);
    }
    s_client_options(&opts, b->endpoint, &b->creds, "bench-probe", -1);
    opts.connect_timeout_ms = 250;
    deadline = s_now() + 15;
    while (s_now() < deadline) {
        if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
            fprintf(stderr, "sluice-bench: sluiced exited at start "
                    "(status 0x%x)\n", (unsigned)status);
            b->pid = 0;
            s_broker_dump_log(b);
            goto fail;
        }
        /* Until the broker has written its key files, a client that
         * names them cannot be made yet. */
        if (sl_client_new(&opts, &client) != 0) {
            usleep(20000);
            continue;
        }
        rc = sl_client_connect(client);
        sl_client_destroy(&client);
        if (rc == 0)
            return 0;
        rc = -1;
    }
    fprintf(stderr, "sluice-bench: sluiced at %s not reachable after 15 s\n",
            b->endpoint);
    s_broker_dump_log(b);
fail:
    if (logfd >= 0)
        close(logfd);
    s_broker_stop(b);
    return -1;
}

/* ----------------------------------------------------------- producer */

static void s_on_confirm(const sl_confirm_t *confirm, void *arg)
{
    s_run_t *run = arg;

    if (confirm->rc != 0) {
        /* Only the first few: a nack storm must not drown the summary. */
        if (run->nacked < 5)
            fprintf(stderr, "sluice-bench: seq %" PRIu64 " nacked: %s: %s\n",
                    confirm->seq, sl_strerror(confirm->rc),
                    confirm->text ? confirm->text : "");
        run->nacked++;
        return;
    }
    run->confirmed++;
    if (confirm->duplicate)
        run->confirm_dups++;
}

static void s_fill_payload(char *buf, uint64_t seq, bool stamp)
{
    uint32_t seq32 = (uint32_t)seq;     /* count <= UINT32_MAX (s_parse) */
    uint64_t ts = stamp ? s_now_ns() : 0;

    memcpy(buf, &seq32, 4);
    memcpy(buf + 4, &ts, 8);
}

/* Wait until NS (CLOCK_MONOTONIC) while keeping the client's I/O going. */
static void s_pace_until(sl_client_t *client, uint64_t ns)
{
    uint64_t now;
    struct timespec ts;

    for (;;) {
        now = s_now_ns();
        if (now >= ns)
            return;
        if (ns - now > 2000000) {
            /* Leave a millisecond of margin: sl_poll rounds to ms. */
            if (sl_poll(client, (int)((ns - now) / 1000000) - 1) < 0)
                usleep(100);
            continue;
        }
        ts.tv_sec = 0;
        ts.tv_nsec = (long)(ns - now);
        nanosleep(&ts, NULL);       /* EINTR: the loop re-checks the time */
    }
}

static int s_producer_w0(s_run_t *run, sl_client_t *client, char *buf)
{
    const s_config_t *cfg = run->cfg;
    sl_message_t msg = { .topic = run->topic, .payload = buf, .len = cfg->size };
    double busy_since;
    uint64_t i;
    int rc = 0;

    run->t_first = s_now();
    for (i = 0; i < run->count && !atomic_load(&run->abort); i++) {
        s_fill_payload(buf, i, i % PEER_W0_STAMP_EVERY == 0);
        busy_since = 0;
        /* SL_EBUSY is the client's queue being full: backpressure, not
         * loss. Wait for room, but not for ever. */
        while ((rc = sl_publish_transient(client, &msg)) == SL_EBUSY) {
            run->busy_retries++;
            if (busy_since == 0)
                busy_since = s_now();
            else if (s_now() - busy_since > S_IDLE_S)
                goto fail;
            rc = sl_poll(client, 1);
            if (rc < 0)
                goto fail;
        }
        if (rc != 0)
            goto fail;
        run->published++;
        if (i % 1024 == 1023 && (rc = sl_poll(client, 0)) < 0)
            goto fail;
    }
    /* Transient messages have no confirm: flush just sends the batch. */
    rc = sl_flush(client, 5000);
    if (rc == SL_ETIMEOUT)
        rc = 0;
fail:
    run->t_prod_end = s_now();
    return rc;
}

static int s_producer_w1(s_run_t *run, sl_client_t *client, char *buf)
{
    const s_config_t *cfg = run->cfg;
    sl_message_t msg = { .topic = run->pub_topic, .payload = buf, .len = cfg->size };
    bool paced = cfg->workload == S_W1_LAT;
    uint64_t t0_ns, interval_ns = 0, due_ns, i, done, last_done = 0;
    double last_progress;
    int rc = 0;

    if (paced)
        interval_ns = 1000000000u / cfg->rate;
    t0_ns = s_now_ns();
    run->t_first = s_now();
    last_progress = run->t_first;
    for (i = 0; i < run->count && !atomic_load(&run->abort); i++) {
        if (paced)
            s_pace_until(client, t0_ns + i * interval_ns);
        /* The window: at most S_W1_WINDOW unconfirmed publishes. */
        while (run->published - run->confirmed - run->nacked >= S_W1_WINDOW) {
            rc = sl_poll(client, 10);
            if (rc < 0)
                goto fail;
            done = run->confirmed + run->nacked;
            if (done != last_done) {
                last_done = done;
                last_progress = s_now();
            } else if (s_now() - last_progress > S_IDLE_S) {
                rc = SL_ETIMEOUT;
                goto fail;
            }
        }
        if (cfg->workload == S_W4) {
            msg.len = peer_w4_order(buf, i, s_now_ns());
            msg.content_type = "application/json";
        } else
            s_fill_payload(buf, i, true);
        /* Paced: stamp the scheduled time, not the actual one, so a
         * producer held back by a slow broker adds that wait to the
         * latency instead of hiding it (coordinated omission). */
        if (paced) {
            due_ns = t0_ns + i * interval_ns;
            memcpy(buf + 4, &due_ns, 8);
        }
        rc = sl_publish(client, &msg, s_on_confirm, run, NULL);
        if (rc != 0)
            goto fail;
        run->published++;
        /* Paced: hand the message to the socket now rather than at the
         * next publish, so the latency is the broker's, not the pacing's. */
        if (paced && (rc = sl_poll(client, 0)) < 0)
            goto fail;
    }
    last_progress = s_now();
    while (run->confirmed + run->nacked < run->published) {
        rc = sl_flush(client, 1000);
        if (rc != 0 && rc != SL_ETIMEOUT)
            goto fail;
        done = run->confirmed + run->nacked;
        if (done != last_done) {
            last_done = done;
            last_progress = s_now();
        } else if (s_now() - last_progress > S_IDLE_S) {
            rc = SL_ETIMEOUT;
            goto fail;
        }
    }
    rc = 0;
fail:
    run->t_prod_end = s_now();
    return rc;
}

static void *s_producer(void *arg)
{
    s_run_t *run = arg;
    sl_options_t opts;
    sl_client_t *client = NULL;
    size_t size = run->cfg->workload == S_W4 ? PEER_W4_ORDER_MAX : run->cfg->size;
    char *buf = calloc(1, size);
    int rc;

    s_client_options(&opts, run->endpoint, run->creds, "bench-producer", run->cfg->linger_ms);
    if (run->cfg->batch)
        opts.max_batch = run->cfg->batch;
    rc = buf ? sl_client_new(&opts, &client) : SL_ENOMEM;
    if (rc == 0)
        rc = sl_client_connect(client);
    if (rc != 0)
        atomic_store(&run->abort, true);
    if (buf && run->cfg->workload != S_W4)
        memset(buf + S_HEADER_BYTES, 'x', run->cfg->size - S_HEADER_BYTES);
    pthread_barrier_wait(run->ready);
    if (rc == 0 && !atomic_load(&run->abort))
        rc = run->cfg->workload == S_W0 ? s_producer_w0(run, client, buf)
                                        : s_producer_w1(run, client, buf);
    if (rc != 0) {
        fprintf(stderr, "sluice-bench: producer: %s\n", sl_strerror(rc));
        atomic_store(&run->abort, true);
    }
    run->prod_rc = rc;
    atomic_store(&run->producer_done, true);
    sl_client_destroy(&client);
    free(buf);
    return NULL;
}

/* --------------------------------------------------------- subscriber */

/* Record MSG; true when it is a sequence not seen before. */
static bool s_record(s_run_t *run, const sl_msg_t *msg, uint64_t *last_offset,
                     bool *have_offset)
{
    size_t len = 0;
    const char *p = sl_msg_payload(msg, &len);
    uint32_t seq;
    uint64_t ts, now, offset = sl_msg_offset(msg), seq64;

    if (run->cfg->workload != S_W0) {
        if (*have_offset && offset <= *last_offset)
            run->out_of_order++;
        *last_offset = offset;
        *have_offset = true;
    }
    if (run->cfg->workload == S_W4) {
        /* A mapped order; a test order here means the drop route failed. */
        if (!peer_w4_parse(p, len, &seq64, &ts) || seq64 >= run->count
            || peer_w4_is_test(seq64)) {
            run->duplicates++;
            return false;
        }
        seq = (uint32_t)seq64;
    } else if (len < S_HEADER_BYTES) {
        run->duplicates++;          /* not ours: count it as an anomaly */
        return false;
    } else {
        memcpy(&seq, p, 4);
        memcpy(&ts, p + 4, 8);
    }
    if (seq >= run->count || run->seen[seq]) {
        run->duplicates++;
        return false;
    }
    run->seen[seq] = 1;
    run->received++;
    /* The clock is read for stamped messages (all but W0's unstamped
     * ones) and the last: it also ends the run's time. */
    if (ts != 0 || run->received == run->expect) {
        now = s_now_ns();
        run->t_sub_end = (double)now / 1e9;
        if (ts != 0)
            run->lat_ns[run->nlat++] = now > ts ? now - ts : 0;
    }
    return true;
}

static void *s_subscriber(void *arg)
{
    s_run_t *run = arg;
    const s_config_t *cfg = run->cfg;
    bool durable = cfg->workload != S_W0, have_offset = false, fresh, got = false;
    sl_options_t opts;
    sl_sub_options_t sopts;
    sl_client_t *client = NULL;
    sl_sub_t *sub = NULL;
    sl_msg_t *msg = NULL;
    uint64_t last_offset = 0;
    double last_msg, now;
    int rc;

    s_client_options(&opts, run->endpoint, run->creds, "bench-subscriber", run->cfg->linger_ms);
    sl_sub_options_init(&sopts);
    sopts.pattern = run->topic;
    if (durable) {
        sopts.name = run->subname;
        sopts.start = SL_START_EARLIEST;
        sopts.credit = run->cfg->credit;
    } else {
        sopts.ephemeral = true;
        sopts.credit = S_W0_CREDIT;
    }
    rc = sl_client_new(&opts, &client);
    if (rc == 0)
        rc = sl_client_connect(client);
    if (rc == 0)
        rc = sl_subscribe(client, &sopts, &sub);
    if (rc != 0)
        atomic_store(&run->abort, true);
    pthread_barrier_wait(run->ready);
    if (rc != 0 || atomic_load(&run->abort))
        goto fail;

    last_msg = s_now();
    while (run->received < run->expect) {
        rc = sl_sub_next(sub, 100, &msg);
        if (rc == SL_ETIMEOUT) {
            rc = 0;
            /* Idle time is counted in timeouts (100 ms), so the clock is
             * read here rather than at every message. */
            now = s_now();
            if (got) {
                last_msg = now;
                got = false;
            }
            if (atomic_load(&run->abort))
                break;
            /* W0 drops what exceeds the credit: once the publisher is done
             * and the stream is quiet, the rest is not coming. */
            if (!durable && atomic_load(&run->producer_done)
                && now - last_msg > S_W0_DRAIN_S)
                break;
            if (now - last_msg > S_IDLE_S) {
                fprintf(stderr, "sluice-bench: subscriber: no message for "
                        "%.0f s\n", S_IDLE_S);
                break;
            }
            continue;
        }
        if (rc != 0)
            goto fail;
        got = true;
        fresh = s_record(run, msg, &last_offset, &have_offset);
        if (durable) {
            /* The last ack is waited for: the run ends when the broker
             * has stored every ack, not when they sit in the client. */
            if (fresh && run->received == run->expect) {
                rc = sl_ack_sync(msg, (int)(S_IDLE_S * 1000));
                run->t_sub_end = s_now();
            }
            else
                rc = sl_ack(msg);
            if (rc != 0)
                goto fail;
        }
        sl_msg_destroy(&msg);
    }
    rc = 0;
fail:
    if (rc != 0) {
        fprintf(stderr, "sluice-bench: subscriber: %s\n", sl_strerror(rc));
        atomic_store(&run->abort, true);
    }
    run->sub_rc = rc;
    sl_msg_destroy(&msg);
    /* Remove the durable subscription: with --broker it would otherwise
     * stay behind after every run. */
    if (sub && sl_unsubscribe(&sub, durable) != 0)
        fprintf(stderr, "sluice-bench: could not remove subscription %s\n",
                run->subname);
    sl_client_destroy(&client);
    return NULL;
}

/* ------------------------------------------------------------ results */

static int s_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static int s_double_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile Q of the N sorted values, ns -> rounded us. */
static uint64_t s_pct_us(const uint64_t *sorted, uint64_t n, double q)
{
    uint64_t rank;

    if (n == 0)
        return 0;
    rank = (uint64_t)(q * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (sorted[rank - 1] + 500) / 1000;
}

static double s_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, s_double_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* W4 outside the timed part (bench_w4_admin): set up, or check after. */
static int s_w4_admin(const char *endpoint, const s_creds_t *creds,
                      const bench_w4_topics_t *t, bool check, uint64_t count)
{
    sl_options_t opts;

    s_client_options(&opts, endpoint, creds, "bench-w4-admin", -1);
    return bench_w4_admin(&opts, t, SLUICE_SCHEMAS_DIR, check, count);
}

/* One run against ENDPOINT; fills *res and prints its line. W2 runs
 * --streams (default S_W2_STREAMS) producer/subscriber pairs at once, each on its own topic
 * with its share of the messages; every other workload one pair. */
static int s_run(const s_config_t *cfg, const char *endpoint,
                 const s_creds_t *creds, int index, s_result_t *res)
{
    unsigned k, npairs = cfg->workload == S_W2 ? cfg->streams : 1, nthreads = 0;
    s_run_t *runs = calloc(npairs, sizeof *runs);
    pthread_t *threads = calloc(2 * (size_t)npairs, sizeof *threads);
    pthread_barrier_t ready;
    uint64_t *lat = NULL, nlat = 0, received = 0, lost = 0, dups = 0, nacked = 0,
             confirmed = 0, confirm_dups = 0, published = 0, out_of_order = 0, busy = 0;
    double first = 0, end = 0, prod_end = 0, sub_end = 0;
    int rc = S_EXIT_SETUP;
    bool failed = false;
    bench_w4_topics_t w4;
    char prefix[64];

    memset(res, 0, sizeof *res);
    /* W4's topics and route names are fresh per run and process, as W1's
     * topic is: the routing counters of one run are not another's. */
    snprintf(prefix, sizeof prefix, "w4p%ldr%d", (long)getpid(), index);
    bench_w4_topics(&w4, prefix);
    lat = malloc(cfg->count * sizeof *lat);
    if (!runs || !threads || !lat) {
        fprintf(stderr, "sluice-bench: out of memory for %" PRIu64 " messages\n",
                cfg->count);
        goto fail;
    }
    if (pthread_barrier_init(&ready, NULL, 2 * npairs + 1) != 0) {
        perror("sluice-bench: pthread_barrier_init");
        goto fail;
    }
    for (k = 0; k < npairs; k++) {
        s_run_t *run = &runs[k];
        run->cfg = cfg;
        run->endpoint = endpoint;
        run->creds = creds;
        run->ready = &ready;
        /* The first pairs take the remainder. */
        run->count = cfg->count / npairs + (k < cfg->count % npairs);
        atomic_init(&run->producer_done, false);
        atomic_init(&run->abort, false);
        /* Fresh names per run and process: offsets start clean and, against
         * a shared --broker, earlier runs cannot leak into this one. */
        snprintf(run->topic, sizeof run->topic, "bench.%s.%ld.%d.%u",
                 cfg->workload == S_W0 ? "w0" : "w1", (long)getpid(), index, k);
        snprintf(run->subname, sizeof run->subname, "bench-%ld-%d-%u",
                 (long)getpid(), index, k);
        memcpy(run->pub_topic, run->topic, sizeof run->topic);
        run->expect = run->count;
        if (cfg->workload == S_W4) {
            /* Publish orders, subscribe to the mapped ones. */
            snprintf(run->pub_topic, sizeof run->pub_topic, "%s", w4.orders);
            snprintf(run->topic, sizeof run->topic, "%s", w4.canonical);
            run->expect = peer_w4_expected(run->count);
        }
        run->lat_ns = malloc((run->count ? run->count : 1) * sizeof *run->lat_ns);
        run->seen = calloc(run->count ? run->count : 1, 1);
        if (!run->lat_ns || !run->seen) {
            fprintf(stderr, "sluice-bench: out of memory\n");
            abort();        /* threads of earlier pairs are not started yet */
        }
    }
    if (cfg->workload == S_W4 && s_w4_admin(endpoint, creds, &w4, false, 0) != 0) {
        pthread_barrier_destroy(&ready);
        goto fail;
    }
    /* Subscribers first, and all set up before the clock starts:
     * connecting and subscribing are not part of the figure. */
    for (k = 0; k < npairs; k++)
        if (pthread_create(&threads[nthreads++], NULL, s_subscriber, &runs[k]) != 0
            || pthread_create(&threads[nthreads++], NULL, s_producer, &runs[k]) != 0) {
            /* A thread that cannot start cannot reach the barrier either. */
            fprintf(stderr, "sluice-bench: cannot start threads\n");
            abort();
        }
    pthread_barrier_wait(&ready);
    for (k = 0; k < nthreads; k++)
        if (pthread_join(threads[k], NULL) != 0)
            abort();                /* only fails on a bad handle: a bug */
    pthread_barrier_destroy(&ready);

    for (k = 0; k < npairs; k++) {
        s_run_t *run = &runs[k];
        if (run->t_prod_end > prod_end)
            prod_end = run->t_prod_end;
        if (run->t_sub_end > sub_end)
            sub_end = run->t_sub_end;
        double e = run->t_sub_end > run->t_prod_end ? run->t_sub_end : run->t_prod_end;
        if (cfg->workload == S_W0)
            e = run->t_sub_end > 0 ? run->t_sub_end : run->t_prod_end;
        if (run->t_first == 0) {
            fprintf(stderr, "sluice-bench: run %d could not start (broker %s)\n",
                    index + 1, endpoint);
            goto fail;
        }
        if (first == 0 || run->t_first < first)
            first = run->t_first;
        if (e > end)
            end = e;
        memcpy(lat + nlat, run->lat_ns, run->nlat * sizeof *lat);
        nlat += run->nlat;
        received += run->received;
        lost += run->expect - run->received;
        dups += run->duplicates;
        nacked += run->nacked;
        confirmed += run->confirmed;
        confirm_dups += run->confirm_dups;
        published += run->published;
        out_of_order += run->out_of_order;
        busy += run->busy_retries;
        failed |= run->prod_rc != 0 || run->sub_rc != 0
                  || (cfg->workload != S_W0 && run->confirmed != run->count);
    }
    res->seconds = end - first;
    /* W4 counts originals (confirmed once they and every derived message
     * are stored), over the time until the last mapped one is acked too. */
    res->msgs_per_s = res->seconds <= 0 ? 0
                    : (double)(cfg->workload == S_W4 ? confirmed : received) / res->seconds;
    qsort(lat, nlat, sizeof *lat, s_u64_cmp);
    res->p50_us = s_pct_us(lat, nlat, 0.50);
    res->p99_us = s_pct_us(lat, nlat, 0.99);
    res->p999_us = s_pct_us(lat, nlat, 0.999);

    printf("run %d/%d %s: %" PRIu64 " of %" PRIu64 " messages received in "
           "%.3f s = %.0f msgs/s; latency p50 %" PRIu64 " us, p99 %" PRIu64
           " us, p99.9 %" PRIu64 " us\n", index + 1, cfg->runs, cfg->name,
           received, cfg->workload == S_W4 ? peer_w4_expected(cfg->count) : cfg->count,
           res->seconds, res->msgs_per_s,
           res->p50_us, res->p99_us, res->p999_us);
    if (cfg->workload == S_W0) {
        printf("  published %" PRIu64 " transient, lost/dropped %" PRIu64
               " (%.2f%%), duplicates %" PRIu64 ", publisher busy retries %"
               PRIu64 "\n", published, lost,
               100.0 * (double)lost / (double)cfg->count, dups, busy);
        res->ok = dups == 0 && !failed;
    } else {
        printf("  published %" PRIu64 ", confirmed %" PRIu64 " (%" PRIu64
               " as duplicate), nacked %" PRIu64 "; received %" PRIu64
               ", missing %" PRIu64 ", duplicates %" PRIu64
               ", out of order %" PRIu64 "\n", published, confirmed,
               confirm_dups, nacked, received, lost, dups, out_of_order);
        /* Which side ended the run: the last confirm or the last delivery. */
        printf("  producers done at %.3f s, subscribers at %.3f s\n",
               prod_end - first, sub_end - first);
        res->ok = lost == 0 && dups == 0 && out_of_order == 0 && nacked == 0
                  && !failed;
        if (cfg->workload == S_W4) {
            printf("  W4: %" PRIu64 " originals confirmed = %.0f originals/s; the "
                   "mapped ones above\n", confirmed, res->msgs_per_s);
            if (s_w4_admin(endpoint, creds, &w4, true, cfg->count) != 0)
                res->ok = false;
        }
    }
    res->lost = lost;
    res->dups = dups;
    if (!res->ok)
        printf("  VERIFY FAILED\n");
    fflush(stdout);
    rc = res->ok ? S_EXIT_OK : S_EXIT_VERIFY;
fail:
    for (k = 0; runs && k < npairs; k++) {
        free(runs[k].lat_ns);
        free(runs[k].seen);
    }
    free(runs);
    free(threads);
    free(lat);
    return rc;
}

/* ------------------------------------------------------------ options */

static const char s_usage[] =
    "usage: sluice-bench W0|W1|W1-lat|W2|W4 [--broker ENDPOINT [--home DIR]]\n"
    "                    [--plaintext] [--count N] [--size BYTES] [--rate R]\n"
    "                    [--runs K] [--streams K] [--linger MS]\n"
    "\n"
    "  W0      transient fan-out: 1 publisher, 1 ephemeral subscriber\n"
    "          (default 1000000 messages of 64 bytes); reports losses\n"
    "  W1      durable: publish with confirms (window 1000), a durable\n"
    "          subscriber acks each message (default 200000 x 256 bytes)\n"
    "  W1-lat  W1 paced at --rate msgs/s (default 5000) for 10 s\n"
    "  W2      --streams (8) W1 pairs on as many topics at once (default\n"
    "          400000 x 256 bytes in all); W3 is W1 with --size 1024 or 12\n"
    "  W4      W1 through a 1,000-route table: JSON orders (~300 bytes) on\n"
    "          shop.orders, 5% dropped, the rest mapped to canonical.orders\n"
    "          (acked) and copied to audit.orders; msgs/s in originals\n"
    "          (default 200000; --size ignored). With --broker it REPLACES\n"
    "          the live routing table\n"
    "\n"
    "  --broker ENDPOINT  use this broker; default: start " SLUICED_PATH "\n"
    "                     on a free port with a temporary data dir (CurveZMQ,\n"
    "                     as sluiced's default)\n"
    "  --home DIR         with --broker: connect with DIR/server.pub and\n"
    "                     DIR/admin.cert (without it: plain text)\n"
    "  --plaintext        start our broker with --insecure-plaintext, to\n"
    "                     measure what encryption costs\n"
    "  --count N          messages per run\n"
    "  --size BYTES       payload size, at least 12\n"
    "  --rate R           W1-lat messages per second\n"
    "  --runs K           repeat K times and report the median (default 1)\n"
    "  --streams K        W2: producer/subscriber pairs (default 8, at most 64)\n"
    "  --linger MS        the clients' linger_ms (default: the SDK's, 1)\n"
    "  --batch N          the producers' max_batch (default: the SDK's, 1000)\n"
    "  --credit N         W1/W2 subscribers' credit (default 1000)\n"
    "\n"
    "The last line is: RESULT broker=sluice workload=W size=B msgs_per_s=N\n"
    "p50_us=N p99_us=N p999_us=N lost=N dups=N durability=\"...\"\n"
    "Exit: 0 ok, 1 a run lost/duplicated/nacked messages, 2 broker problem,\n"
    "64 usage.\n";

static int s_u64_arg(const char *name, const char *text, uint64_t min,
                     uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(text, &end, 10);
    if (*text < '0' || *text > '9' || *end || errno != 0 || v < min) {
        fprintf(stderr, "sluice-bench: %s wants a number >= %" PRIu64
                ", not '%s'\n", name, min, text);
        return -1;
    }
    *out = v;
    return 0;
}

static int s_parse(int argc, char **argv, s_config_t *cfg, bool *help)
{
    enum { O_BROKER = 256, O_COUNT, O_SIZE, O_RATE, O_RUNS, O_HOME, O_PLAIN, O_STREAMS,
           O_LINGER, O_BATCH, O_CREDIT };
    static const struct option options[] = {
        { "broker", required_argument, NULL, O_BROKER },
        { "home", required_argument, NULL, O_HOME },
        { "plaintext", no_argument, NULL, O_PLAIN },
        { "count", required_argument, NULL, O_COUNT },
        { "size", required_argument, NULL, O_SIZE },
        { "rate", required_argument, NULL, O_RATE },
        { "runs", required_argument, NULL, O_RUNS },
        { "streams", required_argument, NULL, O_STREAMS },
        { "linger", required_argument, NULL, O_LINGER },
        { "batch", required_argument, NULL, O_BATCH },
        { "credit", required_argument, NULL, O_CREDIT },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool count_given = false, size_given = false;
    uint64_t v;
    int opt;

    memset(cfg, 0, sizeof *cfg);
    *help = false;
    cfg->rate = 5000;
    cfg->runs = 1;
    cfg->streams = S_W2_STREAMS;
    cfg->linger_ms = -1;
    cfg->credit = S_W1_CREDIT;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(s_usage, stdout);
            *help = true;
            return S_EXIT_OK;
        case O_BROKER:
            cfg->broker = optarg;
            break;
        case O_HOME:
            cfg->home = optarg;
            break;
        case O_PLAIN:
            cfg->plaintext = true;
            break;
        case O_COUNT:
            if (s_u64_arg("--count", optarg, 1, &cfg->count) != 0)
                return S_EXIT_USAGE;
            count_given = true;
            break;
        case O_SIZE:
            if (s_u64_arg("--size", optarg, S_HEADER_BYTES, &v) != 0)
                return S_EXIT_USAGE;
            cfg->size = (size_t)v;
            size_given = true;
            break;
        case O_RATE:
            if (s_u64_arg("--rate", optarg, 1, &cfg->rate) != 0)
                return S_EXIT_USAGE;
            if (cfg->rate > 1000000000u) {
                fprintf(stderr, "sluice-bench: --rate too high\n");
                return S_EXIT_USAGE;
            }
            break;
        case O_LINGER:
            if (s_u64_arg("--linger", optarg, 0, &v) != 0 || v > 1000)
                return S_EXIT_USAGE;
            cfg->linger_ms = (int)v;
            break;
        case O_BATCH:
            if (s_u64_arg("--batch", optarg, 1, &v) != 0 || v > 100000)
                return S_EXIT_USAGE;
            cfg->batch = (int)v;
            break;
        case O_CREDIT:
            if (s_u64_arg("--credit", optarg, 1, &v) != 0 || v > 10000000)
                return S_EXIT_USAGE;
            cfg->credit = (uint32_t)v;
            break;
        case O_STREAMS:
            if (s_u64_arg("--streams", optarg, 1, &v) != 0 || v > S_STREAMS_MAX) {
                fprintf(stderr, "sluice-bench: --streams takes 1 to %d\n", S_STREAMS_MAX);
                return S_EXIT_USAGE;
            }
            cfg->streams = (unsigned)v;
            break;
        case O_RUNS:
            if (s_u64_arg("--runs", optarg, 1, &v) != 0 || v > 1000)
                return S_EXIT_USAGE;
            cfg->runs = (int)v;
            break;
        case ':':
            fprintf(stderr, "sluice-bench: option '%s' needs a value\n",
                    argv[optind - 1]);
            return S_EXIT_USAGE;
        default:
            fprintf(stderr, "sluice-bench: unknown option '%s'\n%s",
                    argv[optind - 1], s_usage);
            return S_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "sluice-bench: name one workload\n%s", s_usage);
        return S_EXIT_USAGE;
    }
    cfg->name = argv[optind];
    if (strcmp(cfg->name, "W0") == 0)
        cfg->workload = S_W0;
    else if (strcmp(cfg->name, "W1") == 0)
        cfg->workload = S_W1;
    else if (strcmp(cfg->name, "W1-lat") == 0)
        cfg->workload = S_W1_LAT;
    else if (strcmp(cfg->name, "W2") == 0)
        cfg->workload = S_W2;
    else if (strcmp(cfg->name, "W4") == 0)
        cfg->workload = S_W4;
    else {
        fprintf(stderr, "sluice-bench: unknown workload '%s'\n%s", cfg->name,
                s_usage);
        return S_EXIT_USAGE;
    }
    if (!count_given)
        cfg->count = cfg->workload == S_W0 ? 1000000
                   : cfg->workload == S_W1 || cfg->workload == S_W4 ? 200000
                   : cfg->workload == S_W2 ? 400000 : cfg->rate * 10;
    if (cfg->count > UINT32_MAX) {
        fprintf(stderr, "sluice-bench: at most %" PRIu32 " messages (the "
                "sequence is 32 bits)\n", UINT32_MAX);
        return S_EXIT_USAGE;
    }
    if (!size_given)
        cfg->size = cfg->workload == S_W0 ? 64 : 256;
    if (cfg->workload == S_W4)
        cfg->size = 300;            /* the orders' size, about */
    return S_EXIT_OK;
}

int main(int argc, char **argv)
{
    s_config_t cfg;
    s_broker_t broker = { 0 };
    s_creds_t home = { "", "" };
    s_result_t *results = NULL;
    double *rates = NULL, *p50 = NULL, *p99 = NULL, *p999 = NULL;
    uint64_t lost = 0, dups = 0;
    bool help;
    int rc, run_rc, i;

    rc = s_parse(argc, argv, &cfg, &help);
    if (rc != S_EXIT_OK || help)
        return rc;
    if (cfg.home) {
        snprintf(home.server_key, sizeof home.server_key, "%s/server.pub", cfg.home);
        snprintf(home.cert, sizeof home.cert, "%s/admin.cert", cfg.home);
    }
    /* A broker killed under us must not kill the benchmark via SIGPIPE. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        perror("sluice-bench: signal");

    results = calloc((size_t)cfg.runs, sizeof *results);
    rates = calloc((size_t)cfg.runs, sizeof *rates);
    p50 = calloc((size_t)cfg.runs, sizeof *p50);
    p99 = calloc((size_t)cfg.runs, sizeof *p99);
    p999 = calloc((size_t)cfg.runs, sizeof *p999);
    if (!results || !rates || !p50 || !p99 || !p999) {
        fprintf(stderr, "sluice-bench: out of memory\n");
        rc = S_EXIT_SETUP;
        goto fail;
    }
    printf("sluice-bench %s: %" PRIu64 " messages of %zu bytes", cfg.name,
           cfg.count, cfg.size);
    if (cfg.workload == S_W1_LAT)
        printf(" at %" PRIu64 " msgs/s", cfg.rate);
    printf(", %d run%s, broker %s, %s\n", cfg.runs, cfg.runs > 1 ? "s" : "",
           cfg.broker ? cfg.broker : "started per run (" SLUICED_PATH ")",
           (cfg.broker ? cfg.home != NULL : !cfg.plaintext) ? "CurveZMQ" : "plain text");
    fflush(stdout);

    rc = S_EXIT_OK;
    for (i = 0; i < cfg.runs; i++) {
        /* Our own broker is fresh for every run: no run inherits the
         * previous one's data or page cache warmth in the store. */
        if (!cfg.broker && s_broker_start(&broker, cfg.plaintext) != 0) {
            rc = S_EXIT_SETUP;
            goto fail;
        }
        run_rc = s_run(&cfg, cfg.broker ? cfg.broker : broker.endpoint,
                       cfg.broker ? &home : &broker.creds, i, &results[i]);
        /* A run that lost or refused messages: the broker says why. */
        if (!cfg.broker && run_rc != S_EXIT_OK)
            s_broker_dump_log(&broker);
        if (!cfg.broker)
            s_broker_stop(&broker);
        if (run_rc == S_EXIT_SETUP) {
            rc = S_EXIT_SETUP;
            goto fail;
        }
        if (run_rc != S_EXIT_OK)
            rc = run_rc;
        rates[i] = results[i].msgs_per_s;
        p50[i] = (double)results[i].p50_us;
        p99[i] = (double)results[i].p99_us;
        p999[i] = (double)results[i].p999_us;
    }
    if (cfg.runs > 1)
        printf("median of %d runs: %.0f msgs/s\n", cfg.runs,
               s_median(rates, cfg.runs));
    for (i = 0; i < cfg.runs; i++)
        lost += results[i].lost, dups += results[i].dups;
    /* The peer drivers' line (tests/bench/peers/peer_common.h), so that
     * compare reads every broker the same way; lost and dups summed over
     * the runs. */
    printf("RESULT broker=sluice workload=%s size=%zu msgs_per_s=%.0f p50_us=%.0f "
           "p99_us=%.0f p999_us=%.0f lost=%" PRIu64 " dups=%" PRIu64
           " durability=\"%s\"\n", cfg.name, cfg.size, s_median(rates, cfg.runs),
           s_median(p50, cfg.runs), s_median(p99, cfg.runs), s_median(p999, cfg.runs),
           lost, dups, cfg.workload == S_W0 ? "none: transient messages"
           : cfg.workload == S_W4 ? "fsync before ack: the original and its "
             "mapped and audit copies in one transaction, fdatasync before the "
             "original's confirm; 1,000 routes, JSON mapped and schema-checked"
           : "fsync before ack: fdatasync before every confirm, group commit");
fail:
    s_broker_stop(&broker);
    free(results);
    free(rates);
    free(p50);
    free(p99);
    free(p999);
    return rc;
}
