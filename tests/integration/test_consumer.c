/*  test_consumer - the consumer side of the delivery promise, through
 *  libsluice against a real sluiced: a consumer process that is SIGKILLed
 *  after processing but before its ack gets the message again (in its next
 *  life); one killed after its ack never does; a late ack for an attempt
 *  that was redelivered elsewhere is refused; a nack with a delay comes back
 *  no sooner, also among thousands of acked deliveries (whose timers the
 *  broker sweeps out); max_deliver moves the message to _dlq.<subscription>,
 *  whose dlq-reason and advisory end with the last nack's reason (cleaned,
 *  cut at 512 bytes by the SDK and again by the broker for a raw client).
 *  Killed consumers are forked children that only touch their own client.  */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include "harness.h"
#include "sluice.h"

#define S_WAIT_MS 10000

/* A connected client NAME of broker B in *OUT; 0 or the SDK's error. */
static int s_client_open(const h_broker_t *b, const char *name, sl_client_t **out)
{
    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = b->endpoint;
    o.name = name;
    o.connect_timeout_ms = S_WAIT_MS;
    int rc = sl_client_new(&o, out);
    return rc ? rc : sl_client_connect(*out);
}

static sl_client_t *s_client(const h_broker_t *b, const char *name)
{
    sl_client_t *c = NULL;
    assert_int_equal(s_client_open(b, name, &c), 0);
    return c;
}

/* Durable subscription NAME on PATTERN from the earliest offset, in *OUT;
 * 0 or the SDK's error. 0 for ACK_WAIT_MS / MAX_DELIVER: broker defaults. */
static int s_subscribe_open(sl_client_t *c, const char *name, const char *pattern,
                            uint32_t ack_wait_ms, uint32_t max_deliver, sl_sub_t **out)
{
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = name;
    so.pattern = pattern;
    so.start = SL_START_EARLIEST;
    so.ack_wait_ms = ack_wait_ms;
    so.max_deliver = max_deliver;
    return sl_subscribe(c, &so, out);
}

static sl_sub_t *s_subscribe(sl_client_t *c, const char *name, const char *pattern,
                             uint32_t ack_wait_ms, uint32_t max_deliver)
{
    sl_sub_t *sub = NULL;
    assert_int_equal(s_subscribe_open(c, name, pattern, ack_wait_ms, max_deliver, &sub), 0);
    return sub;
}

/* Publish "m0" .. "m<N-1>" to TOPIC with the sluice command, so that this
 * process holds no ZeroMQ context when it forks a consumer. */
static void s_publish_cli(const h_broker_t *b, const char *topic, int n)
{
    char path[512], cmd[1024], in[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(in + strlen(in), sizeof in - strlen(in), "m%d\n", i);
    h_build_path("adapters/cli/sluice", path, sizeof path);
    snprintf(cmd, sizeof cmd, "%s pub %s --broker %s", path, topic, b->endpoint);
    assert_int_equal(h_run(cmd, in, NULL), 0);
}

/* Next message of SUB within S_WAIT_MS; fails the test if none. */
static sl_msg_t *s_next(sl_sub_t *sub)
{
    sl_msg_t *m = NULL;
    int rc = sl_sub_next(sub, S_WAIT_MS, &m);
    if (rc != 0)
        fail_msg("no message within %d ms: %s", S_WAIT_MS, sl_strerror(rc));
    return m;
}

static void s_expect_payload(sl_msg_t *m, const char *want)
{
    size_t len = 0;
    const char *p = sl_msg_payload(m, &len);
    if (len != strlen(want) || memcmp(p, want, len) != 0)
        fail_msg("payload '%.*s', expected '%s'", (int) len, p, want);
}

/* A consumer process: subscribes NAME on TOPIC, takes the first N messages,
 * "processes" each (reports its offset on FD), acks those whose bit is set
 * in ACK_MASK and waits for the broker to store each of those acks, then
 * reports 'R' and waits to be killed. Never returns. */
static void s_consumer_child(const h_broker_t *b, const char *name, const char *topic,
                             int n, unsigned ack_mask, int fd)
{
    sl_client_t *c = NULL;
    if (s_client_open(b, "doomed-consumer", &c) != 0)
        _exit(10);
    sl_sub_t *sub = NULL;
    if (s_subscribe_open(c, name, topic, 0, 0, &sub) != 0)
        _exit(11);
    for (int i = 0; i < n; i++) {
        sl_msg_t *m = NULL;
        if (sl_sub_next(sub, S_WAIT_MS, &m) != 0)
            _exit(12);
        char off = (char) ('0' + sl_msg_offset(m));
        if (write(fd, &off, 1) != 1)
            _exit(13);
        if ((ack_mask >> i) & 1u) {
            if (sl_ack_sync(m, S_WAIT_MS) != 0)
                _exit(14);
            sl_msg_destroy(&m);
        }
        /* else: held, processed but never acked */
    }
    if (write(fd, "R", 1) != 1)
        _exit(15);
    for (;;)
        pause();
}

/* Run s_consumer_child, wait for its 'R', SIGKILL it. Returns what it
 * processed: its offsets as digits. */
static void s_consume_and_die(const h_broker_t *b, const char *name, const char *topic,
                              int n, unsigned ack_mask, char *seen, size_t len)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        s_consumer_child(b, name, topic, n, ack_mask, fds[1]);
    }
    close(fds[1]);
    size_t got = 0;
    char ch;
    while (read(fds[0], &ch, 1) == 1 && ch != 'R')
        if (got + 1 < len)
            seen[got++] = ch;
    seen[got] = '\0';
    close(fds[0]);
    kill(pid, SIGKILL);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (ch != 'R')
        fail_msg("consumer child failed before it was killed (exit %d)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* 1. Processed, acked (ack stored), then killed: never delivered again.
 *    Processed, not acked, then killed: delivered again to the next
 *    consumer of the subscription, as a redelivery. */
static void test_crash_before_and_after_ack(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    s_publish_cli(&b, "work.q", 3);

    /* Offsets 0 and 1 are processed; only 0 is acked; then the crash. */
    char seen[16];
    s_consume_and_die(&b, "worker", "work.q", 2, 0x1u, seen, sizeof seen);
    assert_string_equal(seen, "01");

    /* The next life, with a short ack_wait so that a wrongly kept offset 0
     * would come back within the wait below. */
    sl_client_t *c = s_client(&b, "next-life");
    sl_sub_t *sub = s_subscribe(c, "worker", "work.q", 500, 0);
    sl_msg_t *m = s_next(sub);
    assert_int_equal(sl_msg_offset(m), 1);     /* crashed before its ack */
    s_expect_payload(m, "m1");
    assert_true(sl_msg_attempt(m) >= 2);
    assert_int_equal(sl_ack_sync(m, S_WAIT_MS), 0);
    sl_msg_destroy(&m);
    m = s_next(sub);
    assert_int_equal(sl_msg_offset(m), 2);     /* in the dead one's buffer only */
    assert_int_equal(sl_ack_sync(m, S_WAIT_MS), 0);
    sl_msg_destroy(&m);
    /* Offset 0 (acked before the crash) never comes back, not even after
     * several ack_waits. */
    assert_int_equal(sl_sub_next(sub, 2000, &m), SL_ETIMEOUT);

    sl_sub_info_t *subs = NULL;
    size_t nsubs = 0;
    assert_int_equal(sl_stats(c, NULL, NULL, &subs, &nsubs), 0);
    assert_int_equal(nsubs, 1);
    assert_int_equal(subs[0].in_flight, 0);
    assert_int_equal(subs[0].lag, 0);
    free(subs);

    /* And the same after a broker restart: the acks are on disk. */
    sl_client_destroy(&c);
    assert_int_equal(h_broker_stop(&b, SIGKILL), 128 + SIGKILL);
    assert_int_equal(h_broker_start(&b), 0);
    c = s_client(&b, "after-restart");
    sub = s_subscribe(c, "worker", "work.q", 500, 0);
    assert_int_equal(sl_sub_next(sub, 1500, &m), SL_ETIMEOUT);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

/* 2. A consumer's ack for an attempt that was since redelivered to another
 *    consumer is refused (SL_ESTALE) and changes nothing; the new attempt's
 *    ack is taken. */
static void test_late_ack_refused(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *a = s_client(&b, "consumer-a");
    sl_message_t pm = { .topic = "late.q", .payload = "m0", .len = 2 };
    assert_int_equal(sl_publish_sync(a, &pm, S_WAIT_MS, NULL), 0);

    sl_sub_t *sa = s_subscribe(a, "late", "late.q", 0, 0);
    sl_msg_t *ma = s_next(sa);
    assert_int_equal(sl_msg_offset(ma), 0);
    assert_int_equal(sl_msg_attempt(ma), 1);

    /* B takes the durable subscription over: the message is redelivered to
     * it at once, as attempt 2. */
    sl_client_t *bc = s_client(&b, "consumer-b");
    sl_sub_t *sb = s_subscribe(bc, "late", "late.q", 0, 0);
    sl_msg_t *mb = s_next(sb);
    assert_int_equal(sl_msg_offset(mb), 0);
    assert_int_equal(sl_msg_attempt(mb), 2);

    assert_int_equal(sl_ack_sync(ma, S_WAIT_MS), SL_ESTALE);
    sl_msg_destroy(&ma);
    sl_sub_info_t *subs = NULL;
    size_t nsubs = 0;
    assert_int_equal(sl_stats(bc, NULL, NULL, &subs, &nsubs), 0);
    assert_int_equal(subs[0].in_flight, 1);     /* the late ack changed nothing */
    free(subs);

    assert_int_equal(sl_ack_sync(mb, S_WAIT_MS), 0);
    sl_msg_destroy(&mb);
    assert_int_equal(sl_stats(bc, NULL, NULL, &subs, &nsubs), 0);
    assert_int_equal(subs[0].in_flight, 0);
    assert_int_equal(subs[0].lag, 0);
    free(subs);
    sl_client_destroy(&a);
    sl_client_destroy(&bc);
    h_broker_destroy(&b);
}

/* 3. nack with a delay: the message comes back as the next attempt, not
 *    before the delay; a message behind it is not held up. */
static void test_nack_delay(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b, "nacker");
    for (int i = 0; i < 2; i++) {
        char p[8];
        snprintf(p, sizeof p, "m%d", i);
        sl_message_t pm = { .topic = "nack.q", .payload = p, .len = strlen(p) };
        assert_int_equal(sl_publish_sync(c, &pm, S_WAIT_MS, NULL), 0);
    }
    sl_sub_t *sub = s_subscribe(c, "nk", "nack.q", 0, 0);
    sl_msg_t *m = s_next(sub);
    assert_int_equal(sl_msg_offset(m), 0);
    uint64_t nacked = slc_mono_ms();
    assert_int_equal(sl_nack(m, 1500), 0);
    sl_msg_destroy(&m);

    m = s_next(sub);
    assert_int_equal(sl_msg_offset(m), 1);     /* not held up by the nack */
    assert_int_equal(sl_ack(m), 0);
    sl_msg_destroy(&m);

    m = s_next(sub);
    uint64_t back = slc_mono_ms();
    assert_int_equal(sl_msg_offset(m), 0);
    assert_int_equal(sl_msg_attempt(m), 2);
    s_expect_payload(m, "m0");
    if (back - nacked < 1500)
        fail_msg("nacked with 1500 ms delay, back after %llu ms",
                 (unsigned long long) (back - nacked));
    assert_int_equal(sl_ack_sync(m, S_WAIT_MS), 0);
    sl_msg_destroy(&m);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

/* Timers among thousands of acked deliveries. Every delivery arms an
 * ack-wait timer that its ack leaves behind, and the broker sweeps those
 * out once they outnumber what is in flight; the timers still wanted
 * must come through every sweep: of 4,000 messages, offset 7 is left
 * unacked (back after ack_wait, 1 s) and offset 11 nacked with a 1.5 s
 * delay (back no sooner), while all others are acked at once. */
static void test_timers_among_many_acks(void **state)
{
    (void) state;
    const int n = 4000;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b, "sweeper");
    sl_sub_t *sub = s_subscribe(c, "sw", "sweep.q", 1000, 0);
    /* Offset 7 cannot have been delivered before it was published. */
    uint64_t published = slc_mono_ms();
    for (int i = 0; i < n; i++) {
        char p[16];
        snprintf(p, sizeof p, "m%d", i);
        sl_message_t pm = { .topic = "sweep.q", .payload = p, .len = strlen(p) };
        assert_int_equal(sl_publish(c, &pm, NULL, NULL, NULL), 0);
    }
    assert_int_equal(sl_flush(c, S_WAIT_MS), 0);
    uint64_t nacked = 0;
    for (int i = 0; i < n; i++) {
        sl_msg_t *m = s_next(sub);
        assert_int_equal(sl_msg_offset(m), (uint64_t) i);
        assert_int_equal(sl_msg_attempt(m), 1);
        if (i == 7)
            ;                                   /* neither acked nor nacked */
        else if (i == 11) {
            nacked = slc_mono_ms();
            assert_int_equal(sl_nack(m, 1500), 0);
        }
        else
            assert_int_equal(sl_ack(m), 0);
        sl_msg_destroy(&m);
    }
    bool got7 = false, got11 = false;
    while (!got7 || !got11) {
        sl_msg_t *m = s_next(sub);
        uint64_t off = sl_msg_offset(m), now = slc_mono_ms();
        assert_int_equal(sl_msg_attempt(m), 2);
        if (off == 7) {
            assert_false(got7);
            got7 = true;
            if (now - published < 1000)
                fail_msg("unacked with ack_wait 1000 ms, back %llu ms after its publish",
                         (unsigned long long) (now - published));
        }
        else if (off == 11) {
            assert_false(got11);
            got11 = true;
            if (now - nacked < 1500)
                fail_msg("nacked with 1500 ms delay, back after %llu ms",
                         (unsigned long long) (now - nacked));
        }
        else
            fail_msg("offset %llu came back, acked at once", (unsigned long long) off);
        assert_int_equal(sl_ack_sync(m, S_WAIT_MS), 0);
        sl_msg_destroy(&m);
    }
    sl_msg_t *none = NULL;
    assert_int_equal(sl_sub_next(sub, 1500, &none), SL_ETIMEOUT);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

/* 4. After max_deliver attempts the message moves to _dlq.<subscription>
 *    with the reason, an advisory is published, and the subscription moves
 *    on to the next message. */
static void test_max_deliver_dead_letter(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b, "poison");
    sl_message_t pm = { .topic = "pay.q", .payload = "poison", .len = 6 };
    assert_int_equal(sl_publish_sync(c, &pm, S_WAIT_MS, NULL), 0);
    pm.payload = "fine";
    pm.len = 4;
    assert_int_equal(sl_publish_sync(c, &pm, S_WAIT_MS, NULL), 0);

    /* Offset 0 is refused (nack) every time; offset 1, delivered beside
     * it, is processed. */
    sl_sub_t *sub = s_subscribe(c, "payer", "pay.q", 0, 3);
    uint32_t attempts = 0;
    bool fine = false;
    sl_msg_t *m = NULL;
    while (attempts < 3 || !fine) {
        m = s_next(sub);
        if (sl_msg_offset(m) == 0) {
            assert_int_equal(sl_msg_attempt(m), ++attempts);
            assert_int_equal(sl_nack(m, 0), 0);
        }
        else {
            assert_int_equal(sl_msg_offset(m), 1);
            assert_false(fine);
            s_expect_payload(m, "fine");
            assert_int_equal(sl_ack_sync(m, S_WAIT_MS), 0);
            fine = true;
        }
        sl_msg_destroy(&m);
    }
    /* After the third attempt the poison message leaves the subscription. */
    assert_int_equal(sl_sub_next(sub, 1500, &m), SL_ETIMEOUT);

    /* It is in the dead-letter queue, a real topic, with the reason. */
    sl_sub_t *dlq = s_subscribe(c, "dlq-reader", "_dlq.payer", 0, 0);
    m = s_next(dlq);
    s_expect_payload(m, "poison");
    assert_string_equal(sl_msg_header(m, "dlq-subscription"), "payer");
    assert_string_equal(sl_msg_header(m, "dlq-topic"), "pay.q");
    assert_string_equal(sl_msg_header(m, "dlq-offset"), "0");
    assert_string_equal(sl_msg_header(m, "dlq-attempts"), "3");
    assert_non_null(strstr(sl_msg_header(m, "dlq-reason"), "max_deliver"));
    assert_int_equal(sl_ack_sync(m, S_WAIT_MS), 0);
    sl_msg_destroy(&m);

    sl_sub_t *adv = s_subscribe(c, "adv-reader", "_advisory.dlq", 0, 0);
    m = s_next(adv);
    size_t len = 0;
    const char *json = sl_msg_payload(m, &len);
    char text[512];
    snprintf(text, sizeof text, "%.*s", (int) len, json);
    assert_non_null(strstr(text, "\"subscription\":\"payer\""));
    assert_non_null(strstr(text, "\"dlq_topic\":\"_dlq.payer\""));
    sl_msg_destroy(&m);

    sl_sub_info_t *subs = NULL;
    size_t nsubs = 0;
    assert_int_equal(sl_stats(c, NULL, NULL, &subs, &nsubs), 0);
    bool found = false;
    for (size_t i = 0; i < nsubs; i++)
        if (strcmp(subs[i].name, "payer") == 0) {
            found = true;
            assert_int_equal(subs[i].dead_lettered, 1);
            assert_int_equal(subs[i].lag, 0);
        }
    assert_true(found);
    free(subs);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

/* The dead-letter copies of subscription SUB (N of them) and their
 * advisories: for each, the dlq-reason header into REASONS[dlq-offset]
 * (caller frees), after checking that the advisory of that offset parses
 * as JSON and carries the same reason. */
static void s_dlq_reasons(sl_client_t *c, const char *sub, size_t n, char **reasons)
{
    char topic[128], rname[128], aname[128];
    snprintf(topic, sizeof topic, "_dlq.%s", sub);
    snprintf(rname, sizeof rname, "%s-dlq-reader", sub);
    snprintf(aname, sizeof aname, "%s-adv-reader", sub);
    sl_sub_t *dlq = s_subscribe(c, rname, topic, 0, 0);
    for (size_t i = 0; i < n; i++) {
        sl_msg_t *m = s_next(dlq);
        unsigned long off = strtoul(sl_msg_header(m, "dlq-offset"), NULL, 10);
        assert_true(off < n);
        assert_null(reasons[off]);
        reasons[off] = strdup(sl_msg_header(m, "dlq-reason"));
        assert_int_equal(sl_ack_sync(m, S_WAIT_MS), 0);
        sl_msg_destroy(&m);
    }
    sl_sub_t *adv = s_subscribe(c, aname, "_advisory.dlq", 0, 0);
    size_t seen = 0;
    while (seen < n) {
        sl_msg_t *m = s_next(adv);
        size_t len = 0;
        const char *json = sl_msg_payload(m, &len);
        cJSON *o = cJSON_ParseWithLength(json, len);
        if (!o)
            fail_msg("advisory is not JSON: %.*s", (int) len, json);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "subscription");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(o, "offset");
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(o, "reason");
        assert_true(cJSON_IsString(s) && cJSON_IsNumber(off) && cJSON_IsString(why));
        if (strcmp(s->valuestring, sub) == 0) {
            assert_true(off->valuedouble < (double) n);
            assert_string_equal(why->valuestring, reasons[(size_t) off->valuedouble]);
            seen++;
        }
        cJSON_Delete(o);
        assert_int_equal(sl_ack_sync(m, S_WAIT_MS), 0);
        sl_msg_destroy(&m);
    }
    assert_int_equal(sl_unsubscribe(&dlq, true), 0);
    assert_int_equal(sl_unsubscribe(&adv, true), 0);
}

/* True when TEXT ends with TAIL. */
static bool s_ends_with(const char *text, const char *tail)
{
    size_t a = strlen(text), b = strlen(tail);
    return a >= b && strcmp(text + a - b, tail) == 0;
}

/* 5. A nack can say why: with max_deliver 1 the dead-letter copy's
 *    dlq-reason and the advisory's reason end with the last nack's reason
 *    (quotes, a backslash kept; newline and control characters made
 *    spaces; valid JSON); a plain nack keeps the old text exactly; a
 *    reason over 512 bytes is cut at a character boundary. */
static void test_nack_reason_dead_letter(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b, "reasoner");
    for (int i = 0; i < 3; i++) {
        sl_message_t pm = { .topic = "why.q", .payload = "x", .len = 1 };
        assert_int_equal(sl_publish_sync(c, &pm, S_WAIT_MS, NULL), 0);
    }
    /* "x" then 300 two-byte characters: 601 bytes, 512 falls inside one. */
    char long_reason[700] = "x", cut[700] = "x";
    for (int i = 0; i < 300; i++)
        strcat(long_reason, "\xc3\xa9");
    for (int i = 0; i < 255; i++)
        strcat(cut, "\xc3\xa9");
    const char *quoted = "HTTP 500: {\"error\":\"no \\\"x\\\"\"} at C:\\tmp\nline 2\x01" "end"
                         "\xc2\x85" "C1";
    sl_sub_t *sub = s_subscribe(c, "why", "why.q", 0, 1);
    for (int i = 0; i < 3; i++) {
        sl_msg_t *m = s_next(sub);
        uint64_t off = sl_msg_offset(m);
        int rc = off == 0 ? sl_nack_reason(m, 0, quoted)
               : off == 1 ? sl_nack(m, 0)
               : sl_nack_reason(m, 0, long_reason);
        assert_int_equal(rc, 0);
        sl_msg_destroy(&m);
    }
    char *reasons[3] = { NULL, NULL, NULL };
    s_dlq_reasons(c, "why", 3, reasons);
    const char *plain = "nacked 1 times without ack (max_deliver)";
    char want[1024];
    snprintf(want, sizeof want, "%s; last nack: HTTP 500: {\"error\":\"no \\\"x\\\"\"} at "
             "C:\\tmp line 2 end C1", plain);
    assert_string_equal(reasons[0], want);
    assert_string_equal(reasons[1], plain);
    snprintf(want, sizeof want, "%s; last nack: %s", plain, cut);
    assert_string_equal(reasons[2], want);
    for (int i = 0; i < 3; i++)
        free(reasons[i]);

    /* A client that does not clean its reason: the broker cuts and cleans. */
    h_raw_t r;
    assert_int_equal(h_raw_open(&r, b.endpoint), 0);
    assert_int_equal(h_raw_hello(&r), 0);
    uint64_t corr = 0;
    Sluice__Subscribe sb = SLUICE__SUBSCRIBE__INIT;
    Sluice__Frame sf = SLUICE__FRAME__INIT;
    sb.name = "why-raw";
    sb.pattern = "why.q";
    sb.start = SLUICE__START_KIND__START_EARLIEST;
    sb.credit = 1;
    sb.max_deliver = 1;
    sf.body_case = SLUICE__FRAME__BODY_SUBSCRIBE;
    sf.subscribe = &sb;
    Sluice__Frame *ok = h_raw_request(&r, &corr, &sf);
    assert_non_null(ok);
    assert_int_equal(ok->body_case, SLUICE__FRAME__BODY_SUBSCRIBE_OK);
    uint32_t sub_id = ok->subscribe_ok->sub_id;
    slc_frame_free(&ok);
    Sluice__Frame *d = h_raw_expect(&r, SLUICE__FRAME__BODY_DELIVER, S_WAIT_MS);
    assert_non_null(d);
    Sluice__AckItem item = SLUICE__ACK_ITEM__INIT;
    item.topic_id = d->deliver->msgs[0]->topic_id;
    item.offset = d->deliver->msgs[0]->offset;
    item.token = d->deliver->msgs[0]->token;
    assert_int_equal(item.offset, 0);
    slc_frame_free(&d);
    char raw[800] = "tab\there\r\n";
    strcat(raw, long_reason);
    Sluice__AckItem *items[1] = { &item };
    Sluice__Nack nk = SLUICE__NACK__INIT;
    nk.sub_id = sub_id;
    nk.n_items = 1;
    nk.items = items;
    nk.reason = raw;
    Sluice__Frame nf = SLUICE__FRAME__INIT;
    nf.body_case = SLUICE__FRAME__BODY_NACK;
    nf.nack = &nk;
    assert_int_equal(h_raw_send(&r, &nf), 0);
    char *rawr[1] = { NULL };
    s_dlq_reasons(c, "why-raw", 1, rawr);
    /* 10 bytes of "tab here  " + "x" + 250 characters = 511 of 512. */
    char kept[700] = "tab here  x";
    for (int i = 0; i < 250; i++)
        strcat(kept, "\xc3\xa9");
    snprintf(want, sizeof want, "%s; last nack: %s", plain, kept);
    assert_string_equal(rawr[0], want);
    assert_true(s_ends_with(rawr[0], "\xc3\xa9"));
    free(rawr[0]);
    h_raw_close(&r);

    /* A later nack replaces the reason: with max_deliver 2 the second
     * one's is the dead letter's. */
    sl_sub_t *twice = s_subscribe(c, "why-twice", "why.q", 0, 2);
    for (uint32_t attempt = 1; attempt <= 2; attempt++) {
        sl_msg_t *m = NULL;
        do {
            sl_msg_destroy(&m);
            m = s_next(twice);
        } while (sl_msg_offset(m) != 0);
        assert_int_equal(sl_msg_attempt(m), attempt);
        assert_int_equal(sl_nack_reason(m, 0, attempt == 1 ? "first" : "second"), 0);
        sl_msg_destroy(&m);
    }
    char *tw[1] = { NULL };
    s_dlq_reasons(c, "why-twice", 1, tw);
    assert_string_equal(tw[0], "nacked 2 times without ack (max_deliver); last nack: second");
    free(tw[0]);

    /* Reasons still held when the broker stops (the messages wait out a
     * long delay) are freed with the subscription: the ASan build's leak
     * check of sluiced, stopped by SIGTERM, sees them. */
    sl_sub_t *held = s_subscribe(c, "why-held", "why.q", 0, 5);
    uint64_t nacks = h_counter(c, "deliver.nacks");
    for (int i = 0; i < 3; i++) {
        sl_msg_t *m = s_next(held);
        assert_int_equal(sl_nack_reason(m, 60000, "held over the stop"), 0);
        sl_msg_destroy(&m);
    }
    uint64_t until = slc_mono_ms() + S_WAIT_MS;
    while (h_counter(c, "deliver.nacks") != nacks + 3 && slc_mono_ms() < until)
        usleep(20000);
    assert_int_equal(h_counter(c, "deliver.nacks"), nacks + 3);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_before_and_after_ack),
        cmocka_unit_test(test_late_ack_refused),
        cmocka_unit_test(test_nack_delay),
        cmocka_unit_test(test_timers_among_many_acks),
        cmocka_unit_test(test_max_deliver_dead_letter),
        cmocka_unit_test(test_nack_reason_dead_letter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
