/*  hostile-clients - what unauthenticated clients cost a real sluiced (issue
 *  16, item 8). Starts SLUICED_PATH (or --sluiced PATH) with CurveZMQ on a
 *  loopback port and its soft open-file limit set to --nofile (1,024, a
 *  common default), then measures two attacks:
 *    idle    N TCP connections that never send a byte (re-opened when the
 *            broker closes them, --hold: not), while a publisher and a
 *            subscriber that connected before keep a message going round
 *            (publish, confirm, delivery, ack): their time per round, the
 *            broker's CPU, how long a new client takes to connect;
 *    refuse  one process making refused CurveZMQ handshakes as fast as it
 *            can: refusals per second and the growth of `_audit` per second.
 *  A benchmark, not a test (STYLE.md rule 9). Owns its temp dir and its
 *  child processes (the broker, the attacker) and removes them. The last
 *  line of each attack is "RESULT ..." for comparisons.  */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#include "sluice.h"

#ifndef SLUICED_PATH
#error "SLUICED_PATH must name the sluiced executable (meson sets it)"
#endif

#define S_ROUNDS_MAX 100000
#define S_REFUSERS 16           /* sockets of the refusing process */

typedef struct {
    const char *sluiced;
    unsigned long nofile;       /* the broker's soft RLIMIT_NOFILE */
    int idle;                   /* idle connections */
    int rounds;                 /* rounds per phase */
    int seconds;                /* refuse: how long */
    bool hold;                  /* idle: do not re-open closed connections */
    const char *mode;           /* idle, refuse or all */
    const char **extra;         /* --set arguments for sluiced */
    int nextra;
} s_config_t;

typedef struct {
    char dir[64];
    char data[96];
    char log[96];
    char endpoint[64];
    char server_key[128];
    char cert[128];
    int port;
    pid_t pid;
} s_broker_t;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    if (fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0
        && getsockname(fd, (struct sockaddr *) &sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* CPU seconds (user + system) PID has used. */
static double s_cpu(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0;
    /* Fields after the name: state (3) ... utime (14), stime (15). */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                     &utime, &stime) != 2)
        return 0;
    return (double) (utime + stime) / (double) sysconf(_SC_CLK_TCK);
}

/* Open descriptors of PID. */
static int s_fds(pid_t pid)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "ls /proc/%d/fd 2>/dev/null | wc -l", (int) pid);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

static void s_client_options(const s_broker_t *b, sl_options_t *o, const char *name)
{
    sl_options_init(o);
    o->endpoint = b->endpoint;
    o->name = name;
    o->server_key = b->server_key;
    o->cert = b->cert;
    o->connect_timeout_ms = 30000;
}

/* A connected client of B, or NULL; *took_s how long connecting took. */
static sl_client_t *s_connect(const s_broker_t *b, const char *name, double *took_s)
{
    sl_options_t o;
    sl_client_t *c = NULL;
    s_client_options(b, &o, name);
    double t0 = s_now();
    if (sl_client_new(&o, &c) != 0)
        return NULL;
    if (sl_client_connect(c) != 0)
        sl_client_destroy(&c);
    if (took_s)
        *took_s = s_now() - t0;
    return c;
}

static void s_broker_stop(s_broker_t *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGTERM);
        waitpid(b->pid, NULL, 0);
        b->pid = 0;
    }
    if (b->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", b->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "hostile-clients: could not remove %s\n", b->dir);
    }
}

/* Start the broker with its soft open-file limit at CFG->nofile. */
static int s_broker_start(s_broker_t *b, const s_config_t *cfg)
{
    memset(b, 0, sizeof *b);
    snprintf(b->dir, sizeof b->dir, "/tmp/sluice-hostile-XXXXXX");
    if (!mkdtemp(b->dir)) {
        perror("hostile-clients: mkdtemp");
        b->dir[0] = 0;
        return -1;
    }
    snprintf(b->data, sizeof b->data, "%s/data", b->dir);
    snprintf(b->log, sizeof b->log, "%s/sluiced.log", b->dir);
    snprintf(b->server_key, sizeof b->server_key, "%s/server.pub", b->data);
    snprintf(b->cert, sizeof b->cert, "%s/admin.cert", b->data);
    b->port = s_free_port();
    snprintf(b->endpoint, sizeof b->endpoint, "tcp://127.0.0.1:%d", b->port);
    int logfd = open(b->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (b->port < 0 || logfd < 0) {
        perror("hostile-clients: port or log");
        return -1;
    }
    b->pid = fork();
    if (b->pid == 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = cfg->nofile < rl.rlim_max ? cfg->nofile : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (dup2(logfd, STDOUT_FILENO) < 0 || dup2(logfd, STDERR_FILENO) < 0)
            _exit(127);
        const char *argv[32] = { cfg->sluiced, "--data-dir", b->data, "--listen", b->endpoint };
        int n = 5;
        for (int i = 0; i < cfg->nextra && n < 30; i++) {
            argv[n++] = "--set";
            argv[n++] = cfg->extra[i];
        }
        argv[n] = NULL;
        execv(cfg->sluiced, (char *const *) argv);
        fprintf(stderr, "exec %s: %s\n", cfg->sluiced, strerror(errno));
        _exit(127);
    }
    close(logfd);
    for (int i = 0; i < 1500; i++) {
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
            b->pid = 0;
            fprintf(stderr, "hostile-clients: sluiced exited at start; see %s\n", b->log);
            return -1;
        }
        if (access(b->cert, R_OK) == 0) {
            sl_client_t *c = s_connect(b, "probe", NULL);
            if (c) {
                sl_client_destroy(&c);
                return 0;
            }
        }
        usleep(10000);
    }
    fprintf(stderr, "hostile-clients: sluiced not reachable after 15 s\n");
    return -1;
}

typedef struct {
    const char *name;
    uint64_t value;
} s_counter_t;

static void s_counter_cb(const char *name, uint64_t value, void *arg)
{
    s_counter_t *want = arg;
    if (strcmp(name, want->name) == 0)
        want->value = value;
}

static uint64_t s_counter(sl_client_t *admin, const char *name)
{
    s_counter_t want = { name, UINT64_MAX };
    if (sl_counters(admin, s_counter_cb, &want) != 0)
        return UINT64_MAX;
    return want.value;
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int n;
    double p50_ms, p99_ms, mean_ms;
} s_rounds_t;

/* ROUNDS rounds of PUB -> SUB on TOPIC: publish (confirmed), receive,
 * ack. */
static int s_rounds(sl_client_t *pub, sl_sub_t *sub, const char *topic, int rounds,
                    s_rounds_t *out)
{
    double *t = calloc((size_t) rounds, sizeof *t), sum = 0;
    if (!t)
        return -1;
    int n = 0;
    for (; n < rounds; n++) {
        char text[32];
        snprintf(text, sizeof text, "round %d", n);
        sl_message_t m = { .topic = topic, .payload = text, .len = strlen(text) };
        double t0 = s_now();
        if (sl_publish_sync(pub, &m, 30000, NULL) != 0)
            break;
        sl_msg_t *msg = NULL;
        if (sl_sub_next(sub, 30000, &msg) != 0)
            break;
        sl_ack(msg);
        sl_msg_destroy(&msg);
        t[n] = (s_now() - t0) * 1000;
        sum += t[n];
    }
    if (n > 0) {
        qsort(t, (size_t) n, sizeof *t, s_cmp);
        out->n = n;
        out->p50_ms = t[n / 2];
        out->p99_ms = t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
        out->mean_ms = sum / n;
    }
    free(t);
    return n == rounds ? 0 : -1;
}

/* The attacker: N TCP connections to PORT that never send a byte; with
 * HOLD false a connection the broker closes is opened again. At most 64
 * wait for the broker's greeting at a time (a connection the broker has
 * not accepted yet), so the listen backlog is never overrun and every
 * connection gets in as soon as the broker can take it. Runs until
 * killed. */
static void s_idle_child(int port, int n, bool hold)
{
    enum { S_PENDING_MAX = 64 };
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct pollfd *p = calloc((size_t) n, sizeof *p);
    bool *greeted = calloc((size_t) n, sizeof *greeted);
    if (!p || !greeted)
        _exit(1);
    for (int i = 0; i < n; i++)
        p[i].fd = -1;
    int opened = 0, pending = 0;
    while (true) {
        for (; opened < n && pending < S_PENDING_MAX; opened++, pending++) {
            p[opened].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            p[opened].events = POLLIN;
            connect(p[opened].fd, (struct sockaddr *) &sa, sizeof sa);
        }
        if (poll(p, (nfds_t) opened, 200) <= 0)
            continue;
        for (int i = 0; i < opened; i++) {
            if (!p[i].revents || p[i].fd < 0)
                continue;
            char buf[512];
            ssize_t r = recv(p[i].fd, buf, sizeof buf, 0);
            if (r > 0 || (r < 0 && errno == EAGAIN)) {
                if (r > 0 && !greeted[i]) {
                    greeted[i] = true;  /* accepted: the broker's greeting */
                    pending--;
                }
                continue;
            }
            close(p[i].fd);
            p[i].fd = -1;
            if (!greeted[i])
                pending--;
            greeted[i] = false;
            if (hold || pending >= S_PENDING_MAX)
                continue;
            p[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            connect(p[i].fd, (struct sockaddr *) &sa, sizeof sa);
            pending++;
        }
    }
}

static void s_print_rounds(const char *what, const s_rounds_t *r)
{
    printf("  %-34s %5d rounds  p50 %8.2f ms  p99 %8.2f ms  mean %8.2f ms\n", what, r->n,
           r->p50_ms, r->p99_ms, r->mean_ms);
}

/* A publisher and a subscriber of B, connected now, subscribed as NAME. */
typedef struct {
    sl_client_t *pub, *subc;
    sl_sub_t *sub;
    char topic[64];             /* bench.NAME: its own */
    double connect_s;           /* connecting both and subscribing */
} s_pair_t;

static int s_pair_open(const s_broker_t *b, const char *name, s_pair_t *p)
{
    memset(p, 0, sizeof *p);
    double t0 = s_now();
    p->pub = s_connect(b, "publisher", NULL);
    p->subc = p->pub ? s_connect(b, "subscriber", NULL) : NULL;
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = name;
    snprintf(p->topic, sizeof p->topic, "bench.%s", name);
    so.pattern = p->topic;
    so.start = SL_START_LATEST;
    if (!p->subc || sl_subscribe(p->subc, &so, &p->sub) != 0)
        return -1;
    p->connect_s = s_now() - t0;
    return 0;
}

static void s_pair_close(s_pair_t *p)
{
    sl_client_destroy(&p->pub);
    sl_client_destroy(&p->subc);
}

/* A new pair: connect, subscribe, ROUNDS rounds; *total_s all of it. */
static int s_new_pair(const s_broker_t *b, const char *name, int rounds, s_rounds_t *r,
                      double *connect_s, double *total_s)
{
    s_pair_t p;
    double t0 = s_now();
    int rc = s_pair_open(b, name, &p);
    *connect_s = rc == 0 ? p.connect_s : s_now() - t0;
    if (rc == 0)
        rc = s_rounds(p.pub, p.sub, p.topic, rounds, r);
    *total_s = s_now() - t0;
    s_pair_close(&p);
    return rc;
}

static int s_idle(const s_config_t *cfg)
{
    s_broker_t b;
    int rc = -1;
    pid_t child = 0;
    sl_client_t *admin = NULL;
    s_pair_t old = { 0 };
    s_rounds_t base = { 0 }, attacked = { 0 }, nbase = { 0 }, nattacked = { 0 };
    double nbase_conn = 0, nbase_total = 0, natt_conn = -1, natt_total = -1;
    if (s_broker_start(&b, cfg) != 0)
        goto done;
    admin = s_connect(&b, "admin", NULL);
    if (!admin || s_pair_open(&b, "hostile-old", &old) != 0) {
        fprintf(stderr, "hostile-clients: clients did not connect\n");
        goto done;
    }
    printf("idle: %d connections that never handshake; broker soft open-file limit set to "
           "%lu before exec\n", cfg->idle, cfg->nofile);
    /* Warm up, then the baselines: the pair connected before, and a pair
     * that connects, subscribes and runs its rounds. */
    s_rounds(old.pub, old.sub, old.topic, 50, &base);
    double c0 = s_cpu(b.pid), t0 = s_now();
    if (s_rounds(old.pub, old.sub, old.topic, cfg->rounds, &base) != 0)
        goto done;
    double base_cpu = (s_cpu(b.pid) - c0) / (s_now() - t0) * 100;
    if (s_new_pair(&b, "hostile-new-1", cfg->rounds, &nbase, &nbase_conn, &nbase_total) != 0)
        goto done;
    s_print_rounds("baseline, pair connected before", &base);
    s_print_rounds("baseline, new pair", &nbase);
    printf("  %-34s connect + subscribe %.3f s, all %.3f s\n", "", nbase_conn, nbase_total);
    child = fork();
    if (child == 0) {
        s_idle_child(b.port, cfg->idle, cfg->hold);
        _exit(0);
    }
    double attack_t0 = s_now();
    /* Wait until the broker's descriptors stop growing (or its limit is
     * hit): the attacker opens them 64 at a time. */
    int fds = 0, stable = 0;
    while (s_now() - attack_t0 < 20 && stable < 6) {
        usleep(500 * 1000);
        int now = s_fds(b.pid);
        stable = now <= fds + 5 ? stable + 1 : 0;
        fds = now > fds ? now : fds;
    }
    printf("  broker descriptors %.1f s into the attack: %d\n", s_now() - attack_t0, fds);
    c0 = s_cpu(b.pid);
    t0 = s_now();
    usleep(2000 * 1000);            /* the broker alone with them */
    double idle_cpu = (s_cpu(b.pid) - c0) / (s_now() - t0) * 100;
    c0 = s_cpu(b.pid);
    t0 = s_now();
    int arc = s_rounds(old.pub, old.sub, old.topic, cfg->rounds, &attacked);
    int nrc = s_new_pair(&b, "hostile-new-2", cfg->rounds, &nattacked, &natt_conn, &natt_total);
    double attacked_cpu = (s_cpu(b.pid) - c0) / (s_now() - t0) * 100;
    s_print_rounds("attacked, pair connected before", &attacked);
    s_print_rounds("attacked, new pair", &nattacked);
    printf("  %-34s connect + subscribe %.3f s, all %.3f s%s\n", "", natt_conn, natt_total,
           nrc ? " (FAILED)" : "");
    printf("  broker CPU: %.0f%% baseline, %.0f%% alone with the idle connections, %.0f%% "
           "during the rounds\n", base_cpu, idle_cpu, attacked_cpu);
    uint64_t timeouts = s_counter(admin, "handshake.timeout");
    uint64_t accepted = s_counter(admin, "connections.accepted");
    if (timeouts != UINT64_MAX)
        printf("  handshake.timeout %" PRIu64 ", connections.accepted %" PRIu64 "\n",
               timeouts, accepted);
    else
        printf("  (this broker has no handshake counters)\n");
    char cmd[256];
    snprintf(cmd, sizeof cmd, "grep -h 'open-file limit' '%s'", b.log);
    fflush(stdout);
    if (system(cmd) != 0)
        printf("  (the broker logged nothing about its open-file limit)\n");
    double old_p50 = base.p50_ms > 0 ? attacked.p50_ms / base.p50_ms : 0;
    double new_total = nbase_total > 0 && !nrc ? natt_total / nbase_total : 0;
    printf("RESULT idle conns=%d nofile=%lu broker_fds=%d slowdown_old_pair_p50=%.1f "
           "slowdown_new_pair_total=%.1f new_pair_connect_s=%.3f broker_cpu_idle_pct=%.0f "
           "broker_cpu_rounds_pct=%.0f rounds_ok=%d\n", cfg->idle, cfg->nofile, fds, old_p50,
           new_total, natt_conn, idle_cpu, attacked_cpu, arc == 0 && nrc == 0);
    rc = 0;
done:
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    s_pair_close(&old);
    sl_client_destroy(&admin);
    s_broker_stop(&b);
    return rc;
}

/* One refusing socket with its monitor. */
typedef struct {
    void *sock;
    void *mon;
} s_refuser_t;

static void s_refuser_open(void *ctx, s_refuser_t *r, uint64_t serial, const char *endpoint,
                           const char *server, const char *pub, const char *sec)
{
    char mon[64];
    int zero = 0, never = -1;
    /* A fresh name each time: an inproc name is free again only later. */
    snprintf(mon, sizeof mon, "inproc://refuser-%" PRIu64, serial);
    r->sock = zmq_socket(ctx, ZMQ_DEALER);
    zmq_setsockopt(r->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(r->sock, ZMQ_RECONNECT_IVL, &never, sizeof never);
    zmq_setsockopt(r->sock, ZMQ_CURVE_SERVERKEY, server, 41);
    zmq_setsockopt(r->sock, ZMQ_CURVE_PUBLICKEY, pub, 41);
    zmq_setsockopt(r->sock, ZMQ_CURVE_SECRETKEY, sec, 41);
    zmq_socket_monitor(r->sock, mon, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                       | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_DISCONNECTED);
    r->mon = zmq_socket(ctx, ZMQ_PAIR);
    zmq_setsockopt(r->mon, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(r->mon, mon);
    zmq_connect(r->sock, endpoint);
}

static void s_refuser_close(s_refuser_t *r)
{
    zmq_socket_monitor(r->sock, NULL, 0);
    zmq_close(r->mon);
    zmq_close(r->sock);
}

/* The refusing process: S_REFUSERS connections at a time with one
 * unregistered key, each replaced by a new one as soon as it is refused
 * (libzmq does not retry after a ZAP refusal), until killed. */
static void s_refuse_child(const s_broker_t *b)
{
    char server[64] = "", pub[41], sec[41];
    FILE *f = fopen(b->server_key, "r");
    if (!f || !fgets(server, sizeof server, f))
        _exit(1);
    fclose(f);
    server[40] = 0;
    zmq_curve_keypair(pub, sec);
    void *ctx = zmq_ctx_new();
    s_refuser_t r[S_REFUSERS];
    zmq_pollitem_t items[S_REFUSERS];
    uint64_t serial = 0;
    for (int i = 0; i < S_REFUSERS; i++)
        s_refuser_open(ctx, &r[i], serial++, b->endpoint, server, pub, sec);
    while (true) {
        for (int i = 0; i < S_REFUSERS; i++)
            items[i] = (zmq_pollitem_t) { r[i].mon, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(items, S_REFUSERS, 1000) <= 0)
            continue;
        for (int i = 0; i < S_REFUSERS; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            s_refuser_close(&r[i]);
            s_refuser_open(ctx, &r[i], serial++, b->endpoint, server, pub, sec);
        }
    }
}

/* Bytes and records of _audit. */
static int s_audit_size(sl_client_t *admin, uint64_t *bytes, uint64_t *messages)
{
    sl_topic_info_t *t = NULL;
    size_t n = 0;
    int rc = sl_stats(admin, &t, &n, NULL, NULL);
    *bytes = *messages = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (strcmp(t[i].name, "_audit") == 0) {
            *bytes = t[i].bytes;
            *messages = t[i].messages;
        }
    free(t);
    return rc;
}

static int s_refuse(const s_config_t *cfg)
{
    s_broker_t b;
    int rc = -1;
    pid_t child = 0;
    sl_client_t *admin = NULL;
    if (s_broker_start(&b, cfg) != 0)
        goto done;
    admin = s_connect(&b, "admin", NULL);
    if (!admin)
        goto done;
    uint64_t bytes0, msgs0, bytes1, msgs1;
    uint64_t refused0 = s_counter(admin, "auth.refused");
    s_audit_size(admin, &bytes0, &msgs0);
    double t0 = s_now(), c0 = s_cpu(b.pid);
    child = fork();
    if (child == 0)
        s_refuse_child(&b);
    sleep((unsigned) cfg->seconds);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    child = 0;
    double secs = s_now() - t0;
    double cpu = (s_cpu(b.pid) - c0) / secs * 100;
    /* Let the last interval's summaries land before measuring. */
    sleep(2);
    uint64_t refused = s_counter(admin, "auth.refused") - refused0;
    s_audit_size(admin, &bytes1, &msgs1);
    double kib_s = (double) (bytes1 - bytes0) / 1024 / secs;
    printf("refuse: one process, %d sockets with one unregistered key, %d s\n", S_REFUSERS,
           cfg->seconds);
    printf("  %" PRIu64 " refusals (%.0f/s), _audit grew by %" PRIu64 " records, %" PRIu64
           " bytes: %.2f KiB/s (%.2f GiB/day); broker CPU %.0f%%\n", refused, refused / secs,
           msgs1 - msgs0, bytes1 - bytes0, kib_s, kib_s * 86400 / 1024 / 1024, cpu);
    printf("RESULT refuse seconds=%d refusals=%" PRIu64 " refusals_per_s=%.0f audit_records=%"
           PRIu64 " audit_kib_per_s=%.2f broker_cpu_pct=%.0f\n", cfg->seconds, refused,
           refused / secs, msgs1 - msgs0, kib_s, cpu);
    rc = 0;
done:
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    sl_client_destroy(&admin);
    s_broker_stop(&b);
    return rc;
}

static void s_usage(FILE *out)
{
    fprintf(out,
        "Usage: hostile-clients [OPTION]... [idle|refuse|all]\n"
        "What unauthenticated clients cost a real sluiced (docs/security.md).\n"
        "  --sluiced PATH   broker to start (default " SLUICED_PATH ")\n"
        "  --nofile N       its soft open-file limit before it starts (default 1024)\n"
        "  --idle N         idle connections (default 1500)\n"
        "  --hold           do not re-open idle connections the broker closes\n"
        "  --rounds N       publish/deliver/ack rounds per phase (default 300)\n"
        "  --seconds N      refuse: how long (default 10)\n"
        "  --set KEY=VALUE  passed to sluiced (repeatable)\n");
}

int main(int argc, char **argv)
{
    static const char *extra[16];
    s_config_t cfg = { SLUICED_PATH, 1024, 1500, 300, 10, false, "all", extra, 0 };
    static const struct option opts[] = {
        { "sluiced", required_argument, NULL, 'b' },
        { "nofile", required_argument, NULL, 'n' },
        { "idle", required_argument, NULL, 'i' },
        { "hold", no_argument, NULL, 'H' },
        { "rounds", required_argument, NULL, 'r' },
        { "seconds", required_argument, NULL, 's' },
        { "set", required_argument, NULL, 'S' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': cfg.sluiced = optarg; break;
        case 'n': cfg.nofile = strtoul(optarg, NULL, 10); break;
        case 'i': cfg.idle = atoi(optarg); break;
        case 'H': cfg.hold = true; break;
        case 'r': cfg.rounds = atoi(optarg); break;
        case 's': cfg.seconds = atoi(optarg); break;
        case 'S':
            if (cfg.nextra < 16)
                extra[cfg.nextra++] = optarg;
            break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 64;
        }
    }
    if (optind < argc)
        cfg.mode = argv[optind];
    if (cfg.rounds < 1 || cfg.rounds > S_ROUNDS_MAX || cfg.idle < 0 || cfg.seconds < 1
        || (strcmp(cfg.mode, "idle") && strcmp(cfg.mode, "refuse") && strcmp(cfg.mode, "all"))) {
        s_usage(stderr);
        return 64;
    }
    /* Our own side of the idle connections needs descriptors too. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    printf("hostile-clients: broker %s\n", cfg.sluiced);
    fflush(stdout);
    int rc = 0;
    if (strcmp(cfg.mode, "refuse") != 0)
        rc |= s_idle(&cfg);
    if (strcmp(cfg.mode, "idle") != 0)
        rc |= s_refuse(&cfg);
    return rc ? 1 : 0;
}
