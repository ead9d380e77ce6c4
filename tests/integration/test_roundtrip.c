/*  test_roundtrip - sluiced driven through libsluice and the sluice command:
 *  round trip, durability across kill -9, resend without duplicates across a
 *  broker restart, redelivery handling in the SDK, resume after reconnect,
 *  transient fan-out, the CLI's connection options before the command,
 *  and the CLI's behaviour when the broker is away.
 *  Each test starts its own broker (harness.h) on a loopback port.  */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "harness.h"
#include "sluice.h"

static sl_client_t *s_client(const h_broker_t *b, const char *pid_file)
{
    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = b->endpoint;
    o.name = "roundtrip-test";
    o.producer_id_file = pid_file;
    o.connect_timeout_ms = 10000;
    sl_client_t *c = NULL;
    assert_int_equal(sl_client_new(&o, &c), 0);
    assert_int_equal(sl_client_connect(c), 0);
    return c;
}

static void s_publish_n(sl_client_t *c, const char *topic, int from, int n)
{
    char buf[64];
    for (int i = from; i < from + n; i++) {
        snprintf(buf, sizeof buf, "msg-%06d", i);
        sl_message_t m = { .topic = topic, .payload = buf, .len = strlen(buf) };
        assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), 0);
    }
    assert_int_equal(sl_flush(c, 30000), 0);
}

static sl_sub_t *s_subscribe(sl_client_t *c, const char *name, const char *pattern,
                             sl_start_t start, uint32_t ack_wait_ms)
{
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = name;
    so.pattern = pattern;
    so.start = start;
    so.ack_wait_ms = ack_wait_ms;
    sl_sub_t *sub = NULL;
    assert_int_equal(sl_subscribe(c, &so, &sub), 0);
    return sub;
}

/* Receive N messages, expecting payloads msg-FROM .. in order; ack each. */
static void s_expect_n(sl_sub_t *sub, int from, int n)
{
    char want[64];
    for (int i = from; i < from + n; i++) {
        sl_msg_t *m = NULL;
        assert_int_equal(sl_sub_next(sub, 10000, &m), 0);
        size_t len;
        const char *p = sl_msg_payload(m, &len);
        snprintf(want, sizeof want, "msg-%06d", i);
        if (len != strlen(want) || memcmp(p, want, len) != 0)
            fail_msg("expected %s, got %.*s (offset %llu)", want, (int) len, p,
                     (unsigned long long) sl_msg_offset(m));
        assert_int_equal(sl_ack(m), 0);
        sl_msg_destroy(&m);
    }
}

static const sl_topic_info_t *s_topic(sl_topic_info_t *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

static uint64_t s_topic_messages(sl_client_t *c, const char *name)
{
    sl_topic_info_t *topics = NULL;
    size_t n = 0;
    assert_int_equal(sl_stats(c, &topics, &n, NULL, NULL), 0);
    const sl_topic_info_t *t = s_topic(topics, n, name);
    uint64_t count = t ? t->messages : 0;
    free(topics);
    return count;
}

static void test_sdk_round_trip(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b, NULL);
    s_publish_n(c, "shop.orders.eu", 0, 100);
    sl_sub_t *sub = s_subscribe(c, "rt", "shop.orders.*", SL_START_EARLIEST, 0);
    s_expect_n(sub, 0, 100);
    /* Headers, content type and msg-id survive the trip. */
    sl_header_t h[] = { { "tenant", "acme" } };
    sl_message_t m = { .topic = "shop.orders.eu", .payload = "{}", .len = 2,
                       .content_type = "application/json", .headers = h,
                       .nheaders = 1, .msg_id = "order-1" };
    sl_confirm_t conf;
    assert_int_equal(sl_publish_sync(c, &m, 10000, &conf), 0);
    assert_int_equal(conf.offset, 100);
    sl_msg_t *got = NULL;
    assert_int_equal(sl_sub_next(sub, 10000, &got), 0);
    assert_string_equal(sl_msg_topic(got), "shop.orders.eu");
    assert_int_equal(sl_msg_offset(got), 100);
    assert_string_equal(sl_msg_content_type(got), "application/json");
    assert_non_null(sl_msg_header(got, "tenant"));
    assert_string_equal(sl_msg_header(got, "tenant"), "acme");
    assert_true(sl_msg_ingest_us(got) > 0);
    assert_int_equal(sl_ack_sync(got, 5000), 0);
    sl_msg_destroy(&got);
    /* The same msg-id again is a duplicate with the original offset. */
    assert_int_equal(sl_publish_sync(c, &m, 10000, &conf), 0);
    assert_true(conf.duplicate);
    assert_int_equal(conf.offset, 100);
    assert_int_equal(s_topic_messages(c, "shop.orders.eu"), 101);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

static void test_acked_survive_kill9(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b, NULL);
    s_publish_n(c, "durable.t", 0, 10000);
    /* Every message is acked: kill -9 at once, no chance to flush. */
    assert_int_equal(h_broker_stop(&b, SIGKILL), 128 + SIGKILL);
    sl_client_destroy(&c);
    assert_int_equal(h_broker_start(&b), 0);
    c = s_client(&b, NULL);
    assert_int_equal(s_topic_messages(c, "durable.t"), 10000);
    sl_sub_t *sub = s_subscribe(c, "k9", "durable.t", SL_START_EARLIEST, 0);
    s_expect_n(sub, 0, 10000);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

static void test_resend_not_stored_twice(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    char pidfile[300];
    snprintf(pidfile, sizeof pidfile, "%s/producer.id", b.dir);
    sl_client_t *c = s_client(&b, pidfile);
    /* Queue messages, let some be stored, kill the broker while the rest
     * are in flight; after the restart the client resends what it has no
     * confirm for, and the broker stores each exactly once. */
    char buf[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(buf, sizeof buf, "msg-%06d", i);
        sl_message_t m = { .topic = "resend.t", .payload = buf, .len = strlen(buf) };
        assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), 0);
        if (i == 10000)
            h_broker_stop(&b, SIGKILL);
    }
    assert_int_equal(h_broker_start(&b), 0);
    assert_int_equal(sl_flush(c, 60000), 0);
    assert_true(sl_client_reconnects(c) >= 1);
    assert_int_equal(s_topic_messages(c, "resend.t"), 20000);
    sl_sub_t *sub = s_subscribe(c, "rs", "resend.t", SL_START_EARLIEST, 0);
    s_expect_n(sub, 0, 20000);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

static void test_sdk_drops_redelivery_and_resumes(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b, NULL);
    s_publish_n(c, "redo.t", 0, 10);
    sl_sub_t *sub = s_subscribe(c, "rd", "redo.t", SL_START_EARLIEST, 1000);
    sl_msg_t *first = NULL;
    assert_int_equal(sl_sub_next(sub, 10000, &first), 0);
    assert_int_equal(sl_msg_offset(first), 0);
    /* Hold message 0 past ack_wait: the broker redelivers it, the SDK must
     * not hand it out again; the others arrive in order. */
    for (int i = 1; i < 10; i++) {
        sl_msg_t *m = NULL;
        assert_int_equal(sl_sub_next(sub, 10000, &m), 0);
        assert_int_equal(sl_msg_offset(m), (uint64_t) i);
        assert_int_equal(sl_ack(m), 0);
        sl_msg_destroy(&m);
    }
    /* One redelivery happens at ~1 s; we ack at ~1.5 s, far from the next. */
    sl_msg_t *again = NULL;
    assert_int_equal(sl_sub_next(sub, 1500, &again), SL_ETIMEOUT);
    /* Acking now uses the newest attempt's token and is accepted. */
    assert_int_equal(sl_ack_sync(first, 5000), 0);
    sl_msg_destroy(&first);
    /* The broker did redeliver (the SDK hid it), and nothing is in flight. */
    sl_sub_info_t *subs = NULL;
    size_t nsubs = 0;
    assert_int_equal(sl_stats(c, NULL, NULL, &subs, &nsubs), 0);
    assert_int_equal(nsubs, 1);
    assert_true(subs[0].redelivered >= 1);
    assert_int_equal(subs[0].in_flight, 0);
    assert_int_equal(subs[0].lag, 0);
    free(subs);
    sl_client_destroy(&c);

    /* A new consumer of the same durable subscription resumes after the
     * acks: nothing old comes back, new messages do. */
    c = s_client(&b, NULL);
    s_publish_n(c, "redo.t", 10, 5);
    sub = s_subscribe(c, "rd", "redo.t", SL_START_EARLIEST, 0);
    s_expect_n(sub, 10, 5);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

static void test_transient_fan_out(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *pub = s_client(&b, NULL);
    sl_client_t *c1 = s_client(&b, NULL);
    sl_client_t *c2 = s_client(&b, NULL);
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.ephemeral = true;
    so.pattern = "live.>";
    sl_sub_t *s1 = NULL, *s2 = NULL;
    assert_int_equal(sl_subscribe(c1, &so, &s1), 0);
    assert_int_equal(sl_subscribe(c2, &so, &s2), 0);
    sl_message_t m = { .topic = "live.prices", .payload = "42", .len = 2 };
    assert_int_equal(sl_publish_transient(pub, &m), 0);
    assert_int_equal(sl_flush(pub, 5000), 0);
    sl_sub_t *subs[2] = { s1, s2 };
    for (int i = 0; i < 2; i++) {
        sl_msg_t *got = NULL;
        assert_int_equal(sl_sub_next(subs[i], 5000, &got), 0);
        size_t len;
        assert_memory_equal(sl_msg_payload(got, &len), "42", 2);
        /* The broker leaves Delivery.topic empty: the envelope's is used. */
        assert_string_equal(sl_msg_topic(got), "live.prices");
        sl_msg_destroy(&got);
    }
    /* Not stored. */
    assert_int_equal(s_topic_messages(pub, "live.prices"), 0);
    sl_client_destroy(&pub);
    sl_client_destroy(&c1);
    sl_client_destroy(&c2);
    h_broker_destroy(&b);
}


/* sl_flush returns only when the broker has every transient batch, so a
 * client destroyed right after it loses none. Before, it returned once the
 * batches were in the socket, and closing the client could drop the last
 * ones: with the broker stopped, flush must wait (and time out). */
static void test_transient_flush_reaches_broker(void **state)
{
    (void) state;
    enum { N = 100 };
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *pub = s_client(&b, NULL);
    char buf[64];
    memset(buf, 'x', sizeof buf);
    sl_message_t m = { .topic = "live.ticks", .payload = buf, .len = sizeof buf };
    assert_int_equal(kill(b.pid, SIGSTOP), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(sl_publish_transient(pub, &m), 0);
    assert_int_equal(sl_flush(pub, 300), SL_ETIMEOUT);
    assert_int_equal(kill(b.pid, SIGCONT), 0);
    assert_int_equal(sl_flush(pub, 30000), 0);
    sl_client_destroy(&pub);
    sl_client_t *admin = s_client(&b, NULL);
    assert_int_equal(h_counter(admin, "publish.transient"), N);
    sl_client_destroy(&admin);
    h_broker_destroy(&b);
}

static const sl_topic_info_t *s_wait_topic(sl_client_t *c, sl_topic_info_t **topics,
                                           const char *name, uint64_t max_bytes,
                                           uint64_t max_messages)
{
    /* Retention runs in the background: poll for up to 10 s. */
    for (int i = 0; i < 100; i++) {
        size_t n = 0;
        free(*topics);
        *topics = NULL;
        assert_int_equal(sl_stats(c, topics, &n, NULL, NULL), 0);
        const sl_topic_info_t *t = s_topic(*topics, n, name);
        if (t && t->bytes <= max_bytes && t->messages <= max_messages)
            return t;
        usleep(100000);
    }
    return NULL;
}

static void test_retention_and_time_start(void **state)
{
    (void) state;
    const char *extra[] = { "--set", "retention/trim_interval=100ms", NULL };
    h_broker_t b;
    h_broker_init(&b, extra);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b, NULL);

    /* By size: 100 records of ~80 bytes under a 2,000-byte limit. */
    assert_int_equal(sl_topic_create(c, "ret.bytes", 0, 2000), 0);
    s_publish_n(c, "ret.bytes", 0, 100);
    sl_topic_info_t *topics = NULL;
    const sl_topic_info_t *t = s_wait_topic(c, &topics, "ret.bytes", 2000, 100);
    assert_non_null(t);
    assert_true(t->first_offset > 0);
    assert_int_equal(t->next_offset, 100);
    assert_int_equal(t->max_bytes, 2000);
    uint64_t first = t->first_offset;
    /* A subscriber from the earliest starts at the oldest kept record. */
    sl_sub_t *sub = s_subscribe(c, "rb", "ret.bytes", SL_START_EARLIEST, 0);
    sl_msg_t *m = NULL;
    assert_int_equal(sl_sub_next(sub, 5000, &m), 0);
    assert_true(sl_msg_offset(m) >= first);
    sl_msg_destroy(&m);

    /* By age: everything older than 300 ms goes. */
    assert_int_equal(sl_topic_create(c, "ret.age", 300, 0), 0);
    s_publish_n(c, "ret.age", 0, 10);
    t = s_wait_topic(c, &topics, "ret.age", 0, 0);
    assert_non_null(t);
    assert_int_equal(t->first_offset, 10);

    /* Start at a time: only what was ingested at or after it. */
    s_publish_n(c, "time.t", 0, 5);
    usleep(20000);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_us = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
    usleep(20000);
    s_publish_n(c, "time.t", 5, 5);
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = "tt";
    so.pattern = "time.t";
    so.start = SL_START_TIME;
    so.start_time_us = now_us;
    sl_sub_t *ts_sub = NULL;
    assert_int_equal(sl_subscribe(c, &so, &ts_sub), 0);
    s_expect_n(ts_sub, 5, 5);
    free(topics);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

/* ------------------------------------------------------------------ CLI */

static char *s_cli(const h_broker_t *b, const char *args, const char *in, int *status)
{
    char path[512], cmd[2048];
    h_build_path("adapters/cli/sluice", path, sizeof path);
    snprintf(cmd, sizeof cmd, "%s %s --broker %s", path, args, b->endpoint);
    char *out = NULL;
    *status = h_run(cmd, in, &out);
    return out;
}

static void test_cli_pub_sub_stats(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    int st;
    char *out = s_cli(&b, "pub cli.t", "one\ntwo\nthree\nfour\n", &st);
    assert_int_equal(st, 0);
    free(out);
    out = s_cli(&b, "sub cli.t --subscription c1 --from earliest --count 2", NULL, &st);
    assert_int_equal(st, 0);
    assert_string_equal(out, "one\ntwo\n");
    free(out);
    /* Resume after reconnect: the next run starts after the acked ones. */
    out = s_cli(&b, "sub cli.t --subscription c1 --from earliest --count 2", NULL, &st);
    assert_int_equal(st, 0);
    assert_string_equal(out, "three\nfour\n");
    free(out);
    out = s_cli(&b, "topics", NULL, &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "cli.t"));
    free(out);
    out = s_cli(&b, "stats", NULL, &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "c1"));
    assert_non_null(strstr(out, "publish.stored"));
    free(out);
    out = s_cli(&b, "pub --help", NULL, &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "usage"));
    free(out);
    h_broker_destroy(&b);
}

/* `sluice OPTIONS COMMAND ...` (ARGS printf-style); stderr joins stdout
 * in *OUT (caller frees) so messages can be checked. The exit status. */
static int s_cli_line(const char *in, char **out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_cli_line(const char *in, char **out, const char *fmt, ...)
{
    char path[512], args[1536], cmd[2200];
    va_list ap;
    h_build_path("adapters/cli/sluice", path, sizeof path);
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", path, args);
    return h_run(cmd, in, out);
}

/* The connection options before the command, as nats, git, kubectl and
 * docker users type them: they act as if typed after it, an option given
 * again after the command wins, and nothing else may come before it. */
static void test_cli_options_before_command(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    const char *ep = b.endpoint;
    char *out = NULL;
    int st = s_cli_line("one\ntwo\nthree\n", &out,
                        "--broker %s pub lead.t", ep);
    if (st != 0)
        fail_msg("sluice --broker EP pub: exit %d: %s", st, out);
    free(out);
    st = s_cli_line(NULL, &out, "--broker %s --timeout 5 sub lead.t --from "
                    "earliest --count 3", ep);
    assert_int_equal(st, 0);
    assert_string_equal(out, "one\ntwo\nthree\n");
    free(out);
    st = s_cli_line(NULL, &out, "--broker=%s --timeout=5 stats", ep);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "lead.t"));
    free(out);
    /* A command word with a second word and its own option after: the
     * positional parsing of `topic create NAME` is undisturbed. */
    st = s_cli_line(NULL, &out, "--broker %s topic create lead.u --max-age 1d",
                    ep);
    if (st != 0)
        fail_msg("sluice --broker EP topic create: exit %d: %s", st, out);
    free(out);
    st = s_cli_line(NULL, &out, "--broker %s topics", ep);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "lead.u"));
    free(out);

    /* Before and after: the one after the command wins, either way round. */
    st = s_cli_line(NULL, &out, "--broker tcp://127.0.0.1:1 --timeout 5 "
                    "topics --broker %s", ep);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "lead.t"));
    free(out);
    st = s_cli_line(NULL, &out, "--broker %s --timeout 5 topics --broker "
                    "tcp://127.0.0.1:1 --timeout 1", ep);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "tcp://127.0.0.1:1 not reachable after 1 s"));
    free(out);

    /* Anything else before the command is a usage error naming it, and
     * nothing is published. */
    st = s_cli_line("zzz\n", &out, "--bogus --broker %s pub lead.t", ep);
    assert_int_equal(st, 64);
    assert_non_null(strstr(out, "'--bogus'"));
    free(out);
    st = s_cli_line("zzz\n", &out, "--broker %s --bogus pub lead.t", ep);
    assert_int_equal(st, 64);
    assert_non_null(strstr(out, "'--bogus'"));
    free(out);
    st = s_cli_line(NULL, &out, "--broker %s --count 1 sub lead.t", ep);
    assert_int_equal(st, 64);
    assert_non_null(strstr(out, "'--count'"));
    free(out);
    sl_client_t *c = s_client(&b, NULL);
    assert_int_equal(s_topic_messages(c, "lead.t"), 3);
    sl_client_destroy(&c);

    /* Help as before, also behind connection options. */
    st = s_cli_line(NULL, &out, "--timeout 3 --help");
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "usage: sluice [CONNECTION OPTIONS] COMMAND"));
    free(out);
    st = s_cli_line(NULL, &out, "-h");
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "usage: sluice"));
    free(out);
    h_broker_destroy(&b);
}

static void test_cli_pub_survives_restart(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    /* 200,000 lines in the background; the broker is killed and restarted
     * while they flow. pub must exit 0 and every line be stored once. */
    char path[512], cmd[2048], lines[300];
    snprintf(lines, sizeof lines, "%s/lines", b.dir);
    snprintf(cmd, sizeof cmd, "seq 1 200000 > %s", lines);
    assert_int_equal(system(cmd), 0);
    h_build_path("adapters/cli/sluice", path, sizeof path);
    snprintf(cmd, sizeof cmd, "%s pub restart.t --broker %s --timeout 30 < %s 2>%s/pub.err",
             path, b.endpoint, lines, b.dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    usleep(300000);
    h_broker_stop(&b, SIGKILL);
    usleep(200000);
    assert_int_equal(h_broker_start(&b), 0);
    int status = pclose(p);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    sl_client_t *c = s_client(&b, NULL);
    assert_int_equal(s_topic_messages(c, "restart.t"), 200000);
    sl_client_destroy(&c);
    /* Each line once, in order: the subscriber's output equals the input. */
    snprintf(cmd, sizeof cmd,
             "%s sub restart.t --subscription v --from earliest --count 200000 --broker %s "
             "| cmp - %s", path, b.endpoint, lines);
    assert_int_equal(system(cmd), 0);
    h_broker_destroy(&b);
}

static void test_cli_unreachable(void **state)
{
    (void) state;
    char path[512], cmd[1024];
    h_build_path("adapters/cli/sluice", path, sizeof path);
    /* Nothing listens on port 1 of loopback. */
    snprintf(cmd, sizeof cmd, "echo x | %s pub t --broker tcp://127.0.0.1:1 --timeout 2 2>/dev/null", path);
    uint64_t t0 = slc_mono_ms();
    int status = system(cmd);
    uint64_t took = slc_mono_ms() - t0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_true(took < 10000);
    snprintf(cmd, sizeof cmd, "%s stats --broker tcp://127.0.0.1:1 --timeout 2 2>/dev/null", path);
    status = system(cmd);
    assert_int_equal(WEXITSTATUS(status), 2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdk_round_trip),
        cmocka_unit_test(test_acked_survive_kill9),
        cmocka_unit_test(test_resend_not_stored_twice),
        cmocka_unit_test(test_sdk_drops_redelivery_and_resumes),
        cmocka_unit_test(test_transient_fan_out),
        cmocka_unit_test(test_transient_flush_reaches_broker),
        cmocka_unit_test(test_retention_and_time_start),
        cmocka_unit_test(test_cli_pub_sub_stats),
        cmocka_unit_test(test_cli_options_before_command),
        cmocka_unit_test(test_cli_pub_survives_restart),
        cmocka_unit_test(test_cli_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
