/*  harness - start/stop a real sluiced, run commands, raw protocol client.
 *  Test thread only. Paths of built programs come from BUILD_ROOT. The
 *  broker runs under $SLUICE_TEST_WRAP when set (e.g. valgrind), and every
 *  stop checks its log for sanitizer and valgrind reports.  */
#include "harness.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *h_build_path(const char *rel, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", BUILD_ROOT, rel);
    return buf;
}

void h_broker_init(h_broker_t *b, const char *const *extra)
{
    memset(b, 0, sizeof *b);
    snprintf(b->dir, sizeof b->dir, "/tmp/sluice-it-XXXXXX");
    if (!mkdtemp(b->dir))
        abort();
    snprintf(b->log, sizeof b->log, "%s.log", b->dir);
    for (int i = 0; extra && extra[i] && i < 8; i++)
        snprintf(b->extra[b->nextra++], sizeof b->extra[0], "%s", extra[i]);
}

void h_broker_init_secure(h_broker_t *b, const char *const *extra)
{
    h_broker_init(b, extra);
    b->secure = true;
}

/* The broker logs "listening on tcp://127.0.0.1:PORT," once bound. */
static int s_find_endpoint(const h_broker_t *b, char *out, size_t len, long from)
{
    FILE *f = fopen(b->log, "r");
    if (!f)
        return -1;
    fseek(f, from, SEEK_SET);
    char line[1024];
    int rc = -1;
    while (fgets(line, sizeof line, f)) {
        /* "tcp://": not the metrics listener's "listening on ADDR:PORT". */
        char *p = strstr(line, "listening on tcp://");
        if (!p)
            continue;
        p += strlen("listening on ");
        char *e = strchr(p, ',');
        if (e && (size_t) (e - p) < len) {
            memcpy(out, p, (size_t) (e - p));
            out[e - p] = 0;
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

int h_broker_start(h_broker_t *b)
{
    char path[512];
    h_build_path("broker/sluiced", path, sizeof path);
    long from = 0;
    FILE *lf = fopen(b->log, "a");
    if (lf) {
        fseek(lf, 0, SEEK_END);
        from = ftell(lf);
        fclose(lf);
    }
    const char *listen = b->endpoint[0] ? b->endpoint : "tcp://127.0.0.1:*";
    char *argv[32];
    int n = 0;
    /* SLUICE_TEST_WRAP="valgrind --leak-check=full --error-exitcode=9" runs
     * the broker under that command (words split on spaces, at most 8). */
    char wrap[512];
    const char *w = getenv("SLUICE_TEST_WRAP");
    snprintf(wrap, sizeof wrap, "%s", w ? w : "");
    for (char *save = NULL, *word = strtok_r(wrap, " ", &save);
         word && n < 8; word = strtok_r(NULL, " ", &save))
        argv[n++] = word;
    bool wrapped = n > 0;
    argv[n++] = path;
    argv[n++] = "--data-dir";
    argv[n++] = b->dir;
    argv[n++] = "--listen";
    argv[n++] = (char *) listen;
    for (int i = 0; i < b->nextra; i++)
        argv[n++] = b->extra[i];
    if (!b->secure)
        argv[n++] = "--insecure-plaintext";
    argv[n] = NULL;
    /* A restart may race the old socket's TIME_WAIT: retry the bind. */
    for (int attempt = 0; attempt < 50; attempt++) {
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            /* A test that fails an assertion never reaches its cleanup:
             * the broker must not outlive the test process. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 2);
                dup2(fd, 1);
            }
            execvp(argv[0], argv);
            _exit(127);
        }
        b->pid = pid;
        /* 5 s to listen; a broker under valgrind starts far slower. */
        for (int i = 0; i < (wrapped ? 6000 : 500); i++) {
            char ep[64];
            if (s_find_endpoint(b, ep, sizeof ep, from) == 0) {
                snprintf(b->endpoint, sizeof b->endpoint, "%s", ep);
                return 0;
            }
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                b->pid = 0;
                break;
            }
            usleep(10000);
        }
        if (b->pid) {
            h_broker_stop(b, SIGKILL);
            return -1;
        }
        /* Only a port still held by the previous run is worth a retry;
         * any other refusal (a damaged store) is the answer. */
        char cmd[400];
        snprintf(cmd, sizeof cmd, "tail -n 3 '%s' | grep -q 'cannot listen'", b->log);
        if (system(cmd) != 0)
            return -1;
        usleep(100000);
    }
    return -1;
}

/* Reports of AddressSanitizer, LeakSanitizer, UBSan and valgrind go to
 * the broker's stderr, that is its log. Returns the offset of the first
 * one in the log, or -1 when there is none. */
static long s_find_report(const h_broker_t *b)
{
    static const char *const marks[] = {
        "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
        "Sanitizer:DEADLYSIGNAL",
    };
    FILE *f = fopen(b->log, "r");
    if (!f)
        return -1;
    char line[1024];
    long at = -1, pos = 0;
    while (at < 0 && fgets(line, sizeof line, f)) {
        for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
            if (strstr(line, marks[i]))
                at = pos;
        const char *v = strstr(line, "ERROR SUMMARY: ");
        if (v && atoi(v + strlen("ERROR SUMMARY: ")) > 0)
            at = pos;
        pos = ftell(f);
    }
    fclose(f);
    return at;
}

/* A broker that reported a memory error, a leak or undefined behaviour, or
 * that SIGTERM did not stop cleanly, fails the test program: print the
 * report and exit (the harness has no cmocka context to fail a test in). */
static void s_check_exit(const h_broker_t *b, int sig, int rc)
{
    long at = s_find_report(b);
    bool crashed = sig == SIGTERM && rc >= 128 && rc != 128 + SIGTERM;
    if (at < 0 && !crashed)
        return;
    fflush(stdout);
    fprintf(stderr, "harness: sluiced (%s) %s; its log from there:\n", b->dir,
            at >= 0 ? "reported a memory or UB error" : "died on a signal at SIGTERM");
    FILE *f = fopen(b->log, "r");
    if (f) {
        char line[1024];
        fseek(f, at >= 0 ? at : 0, SEEK_SET);
        for (int i = 0; i < 300 && fgets(line, sizeof line, f); i++)
            fputs(line, stderr);
        fclose(f);
    }
    fflush(stderr);
    _exit(1);
}

int h_broker_stop(h_broker_t *b, int sig)
{
    if (!b->pid)
        return -1;
    kill(b->pid, sig);
    int status = 0;
    /* Bounded: a broker that hangs in shutdown is killed, not waited for
     * until the test's timeout (longer under a SLUICE_TEST_WRAP tool). */
    int limit_ms = getenv("SLUICE_TEST_WRAP") ? 120000 : 30000;
    for (int waited = 0; waitpid(b->pid, &status, WNOHANG) == 0; waited += 10) {
        if (waited >= limit_ms) {
            fprintf(stderr, "harness: sluiced did not stop within %d ms of "
                    "signal %d; killing it\n", limit_ms, sig);
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &status, 0);
            break;
        }
        usleep(10000);
    }
    b->pid = 0;
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    s_check_exit(b, sig, rc);
    return rc;
}

void h_broker_destroy(h_broker_t *b)
{
    /* Graceful, so LeakSanitizer / valgrind see the broker's exit. */
    if (b->pid)
        h_broker_stop(b, SIGTERM);
    if (getenv("SLUICE_TEST_KEEP")) {
        fprintf(stderr, "harness: kept %s and %s\n", b->dir, b->log);
        return;
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", b->dir, b->log);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: could not remove %s\n", b->dir);
}

int h_run(const char *cmd, const char *in, char **out)
{
    char inpath[] = "/tmp/sluice-it-in-XXXXXX";
    char full[4096];
    int fd = -1;
    if (in) {
        fd = mkstemp(inpath);
        if (fd < 0)
            return -1;
        size_t len = strlen(in);
        if (write(fd, in, len) != (ssize_t) len) {
            close(fd);
            unlink(inpath);
            return -1;
        }
        close(fd);
    }
    snprintf(full, sizeof full, "%s < %s", cmd, in ? inpath : "/dev/null");
    FILE *p = popen(full, "r");
    if (!p)
        return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
    }
    if (buf)
        buf[n] = 0;
    int status = pclose(p);
    if (in)
        unlink(inpath);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int h_cli_v(const char *cli, const char *in, const char *suffix, char **out,
            const char *fmt, va_list ap)
{
    char args[2048], cmd[3072];
    char *got = NULL;
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "%s %s%s%s 2>&1", cli, args, suffix ? " " : "",
             suffix ? suffix : "");
    int rc = h_run(cmd, in, &got);
    printf("$ sluice %s -> %d\n%s", args, rc, got ? got : "");
    if (out)
        *out = got;
    else
        free(got);
    return rc;
}

int h_raw_open(h_raw_t *r, const char *endpoint)
{
    r->ctx = zmq_ctx_new();
    r->sock = zmq_socket(r->ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(r->sock, ZMQ_LINGER, &linger, sizeof linger);
    return zmq_connect(r->sock, endpoint) == 0 ? 0 : -1;
}

void h_raw_close(h_raw_t *r)
{
    if (r->sock)
        zmq_close(r->sock);
    if (r->ctx)
        zmq_ctx_term(r->ctx);
    r->sock = r->ctx = NULL;
}

int h_raw_send(h_raw_t *r, const Sluice__Frame *f)
{
    return slc_frame_send(r->sock, NULL, 0, f, 0) == 0 ? 0 : -1;
}

int h_raw_send_bytes(h_raw_t *r, const void *data, size_t len)
{
    return zmq_send(r->sock, data, len, 0) == (int) len ? 0 : -1;
}

Sluice__Frame *h_raw_recv(h_raw_t *r, int timeout_ms)
{
    uint64_t deadline = slc_mono_ms() + (uint64_t) timeout_ms;
    while (true) {
        uint64_t now = slc_mono_ms();
        if (now >= deadline)
            return NULL;
        zmq_pollitem_t it = { r->sock, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, (long) (deadline - now)) <= 0)
            continue;
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, r->sock, 0) < 0) {
            zmq_msg_close(&msg);
            return NULL;
        }
        Sluice__Frame *f = NULL;
        int rc = slc_frame_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &f);
        zmq_msg_close(&msg);
        if (rc)
            return NULL;
        if (f->body_case == SLUICE__FRAME__BODY_HEARTBEAT) {
            slc_frame_free(&f);
            continue;
        }
        return f;
    }
}

Sluice__Frame *h_raw_expect(h_raw_t *r, int body_case, int timeout_ms)
{
    uint64_t deadline = slc_mono_ms() + (uint64_t) timeout_ms;
    while (slc_mono_ms() < deadline) {
        Sluice__Frame *f = h_raw_recv(r, (int) (deadline - slc_mono_ms()) + 1);
        if (!f)
            return NULL;
        if ((int) f->body_case == body_case)
            return f;
        slc_frame_free(&f);
    }
    return NULL;
}

Sluice__Frame *h_raw_request(h_raw_t *r, uint64_t *corr, Sluice__Frame *f)
{
    f->corr = ++*corr;
    if (h_raw_send(r, f) != 0)
        return NULL;
    for (int i = 0; i < 200; i++) {
        Sluice__Frame *got = h_raw_recv(r, 5000);
        if (!got)
            break;
        if (got->corr == f->corr)
            return got;
        slc_frame_free(&got);
    }
    return NULL;
}

int h_raw_read_topic(const char *endpoint, const char *topic, Sluice__Envelope **out,
                     size_t max, size_t *n, char *err, size_t errlen)
{
    h_raw_t raw;
    *n = 0;
    if (h_raw_open(&raw, endpoint) != 0 || h_raw_hello(&raw) != 0) {
        snprintf(err, errlen, "no hello from %s", endpoint);
        h_raw_close(&raw);
        return -1;
    }
    Sluice__Subscribe sub = SLUICE__SUBSCRIBE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    sub.pattern = (char *) topic;
    sub.ephemeral = true;
    sub.start = SLUICE__START_KIND__START_EARLIEST;
    sub.credit = max < 10000 ? (uint32_t) max + 1 : 10000;
    f.body_case = SLUICE__FRAME__BODY_SUBSCRIBE;
    f.subscribe = &sub;
    f.corr = 7;
    int rc = h_raw_send(&raw, &f);
    if (rc)
        snprintf(err, errlen, "cannot send the subscribe");
    while (rc == 0) {
        Sluice__Frame *r = h_raw_recv(&raw, 400);
        if (!r)
            break;
        if (r->body_case == SLUICE__FRAME__BODY_ERROR) {
            snprintf(err, errlen, "subscribe %s: %s", topic, r->error->text);
            rc = -1;
        }
        if (r->body_case == SLUICE__FRAME__BODY_DELIVER)
            for (size_t i = 0; rc == 0 && i < r->deliver->n_msgs && *n < max; i++) {
                const Sluice__Delivery *d = r->deliver->msgs[i];
                if (slc_envelope_decode(d->envelope.data, d->envelope.len, &out[*n]) != 0) {
                    snprintf(err, errlen, "%s: a delivered envelope does not decode", topic);
                    rc = -1;
                }
                else
                    (*n)++;
            }
        slc_frame_free(&r);
    }
    h_raw_close(&raw);
    return rc;
}

void h_envelopes_free(Sluice__Envelope **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        slc_envelope_free(&v[i]);
}

Sluice__Frame *h_raw_admin(h_raw_t *r, uint64_t *corr, Sluice__Frame *f, char *err,
                           size_t errlen)
{
    Sluice__Frame *reply = h_raw_request(r, corr, f);
    if (!reply)
        snprintf(err, errlen, "no reply to %s", slc_frame_name(f));
    else if (reply->body_case == SLUICE__FRAME__BODY_ERROR) {
        snprintf(err, errlen, "%s refused: %u %s", slc_frame_name(f), reply->error->code,
                 reply->error->text);
        slc_frame_free(&reply);
    }
    return reply;
}

int h_raw_schema_register(h_raw_t *r, uint64_t *corr, const char *subject,
                          const char *schema, char *err, size_t errlen)
{
    Sluice__SchemaRegister sr = SLUICE__SCHEMA_REGISTER__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    sr.subject = (char *) subject;
    sr.schema = (char *) schema;
    f.body_case = SLUICE__FRAME__BODY_SCHEMA_REGISTER;
    f.schema_register = &sr;
    Sluice__Frame *reply = h_raw_admin(r, corr, &f, err, errlen);
    int rc = reply ? 0 : -1;
    slc_frame_free(&reply);
    return rc;
}

int h_raw_routes_apply(h_raw_t *r, uint64_t *corr, const char *yaml, uint32_t *version,
                       char *err, size_t errlen)
{
    Sluice__RoutesApply ra = SLUICE__ROUTES_APPLY__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    ra.yaml = (char *) yaml;
    f.body_case = SLUICE__FRAME__BODY_ROUTES_APPLY;
    f.routes_apply = &ra;
    Sluice__Frame *reply = h_raw_admin(r, corr, &f, err, errlen);
    if (!reply)
        return -1;
    int rc = 0;
    if (reply->body_case != SLUICE__FRAME__BODY_ROUTES_APPLY_REPLY) {
        snprintf(err, errlen, "RoutesApply answered with %s", slc_frame_name(reply));
        rc = -1;
    }
    else if (version)
        *version = reply->routes_apply_reply->version;
    slc_frame_free(&reply);
    return rc;
}

int h_raw_publish(h_raw_t *r, uint64_t *corr, const char *topic, const char *payload,
                  uint64_t *offset, char *err, size_t errlen)
{
    Sluice__Envelope e = SLUICE__ENVELOPE__INIT;
    Sluice__Publish p = SLUICE__PUBLISH__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    e.topic = (char *) topic;
    e.payload.data = (uint8_t *) payload;
    e.payload.len = strlen(payload);
    p.msg = &e;
    f.body_case = SLUICE__FRAME__BODY_PUBLISH;
    f.publish = &p;
    Sluice__Frame *reply = h_raw_request(r, corr, &f);
    int rc = -1;
    if (!reply)
        snprintf(err, errlen, "no confirm for a publish on %s", topic);
    else if (reply->body_case != SLUICE__FRAME__BODY_PUBLISH_ACK
             || reply->publish_ack->n_confirms != 1)
        snprintf(err, errlen, "a publish on %s answered with %s", topic,
                 slc_frame_name(reply));
    else if (reply->publish_ack->confirms[0]->code)
        snprintf(err, errlen, "publish on %s refused: %d %s", topic,
                 reply->publish_ack->confirms[0]->code, reply->publish_ack->confirms[0]->text);
    else {
        *offset = reply->publish_ack->confirms[0]->offset;
        rc = 0;
    }
    slc_frame_free(&reply);
    return rc;
}

const char *h_envelope_header(const Sluice__Envelope *e, const char *key)
{
    for (size_t i = 0; i < e->n_headers; i++)
        if (strcmp(e->headers[i]->key, key) == 0)
            return e->headers[i]->value;
    return NULL;
}

int h_raw_hello(h_raw_t *r)
{
    Sluice__Hello hello = SLUICE__HELLO__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    hello.version = SLC_PROTOCOL_VERSION;
    hello.client = "raw-test";
    f.body_case = SLUICE__FRAME__BODY_HELLO;
    f.hello = &hello;
    f.corr = 1;
    if (h_raw_send(r, &f) != 0)
        return -1;
    Sluice__Frame *ok = h_raw_expect(r, SLUICE__FRAME__BODY_HELLO_OK, 5000);
    int rc = ok ? 0 : -1;
    slc_frame_free(&ok);
    return rc;
}

typedef struct {
    const char *name;
    uint64_t value;
} h_counter_t;

static void h_counter_cb(const char *name, uint64_t value, void *arg)
{
    h_counter_t *want = arg;
    if (strcmp(name, want->name) == 0)
        want->value = value;
}

uint64_t h_counter(sl_client_t *c, const char *name)
{
    h_counter_t want = { name, UINT64_MAX };
    if (sl_counters(c, h_counter_cb, &want) != 0)
        return UINT64_MAX;
    return want.value;
}
