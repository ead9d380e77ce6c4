/*  test_limits - the broker's resource limits against a real sluiced: a
 *  stalled subscriber while 1,000,000 messages are published (broker RSS
 *  stays bounded, every publish is confirmed, in-flight stays at credit),
 *  limits/max_connections, limits/max_subscriptions, the per-session
 *  limits/max_unacked_bytes, and the SDK's own max_unacked / block_ms
 *  backpressure against a SIGSTOPped broker. Each test starts its own
 *  broker (harness.h); the stalled and byte-budget consumers are raw
 *  protocol clients so that they read and ack exactly what the test says.  */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "harness.h"
#include "sluice.h"

/* Under AddressSanitizer or a SLUICE_TEST_WRAP tool (valgrind) the broker's
 * memory is mostly the tool's: the stalled-subscriber test then only
 * reports the RSS. */
#if defined(__SANITIZE_ADDRESS__)
#define S_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_SANITIZED 1
#endif
#endif
#ifndef S_SANITIZED
#define S_SANITIZED 0
#endif

#define S_RSS_BOUND_MIB 256
#define S_ANON_GROWTH_MIB 8
/* A greedy ephemeral subscriber may hold the broker's max_unacked_bytes
 * (64 MiB) in its queue, plus the frames' own overhead. */
#define S_GREEDY_GROWTH_MIB 96

/* ------------------------------------------------------------ helpers */

static sl_client_t *s_client(const h_broker_t *b, const char *name)
{
    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = b->endpoint;
    o.name = name;
    o.connect_timeout_ms = 10000;
    sl_client_t *c = NULL;
    assert_int_equal(sl_client_new(&o, &c), 0);
    assert_int_equal(sl_client_connect(c), 0);
    return c;
}

static const sl_sub_info_t *s_sub_info(const sl_sub_info_t *subs, size_t n,
                                       const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(subs[i].name, name) == 0)
            return &subs[i];
    return NULL;
}

/* In-flight count of subscription NAME, read through C's stats. */
static uint32_t s_in_flight(sl_client_t *c, const char *name)
{
    sl_sub_info_t *subs = NULL;
    size_t n = 0;
    assert_int_equal(sl_stats(c, NULL, NULL, &subs, &n), 0);
    const sl_sub_info_t *s = s_sub_info(subs, n, name);
    assert_non_null(s);
    uint32_t v = s->in_flight;
    free(subs);
    return v;
}

typedef struct {
    uint64_t ok;
    uint64_t nacked;
    int last_nack;
} s_confirms_t;

static void s_on_confirm(const sl_confirm_t *confirm, void *arg)
{
    s_confirms_t *c = arg;
    if (confirm->rc == 0)
        c->ok++;
    else {
        c->nacked++;
        c->last_nack = confirm->rc;
    }
}

/* ------------------------------------------------------------ raw client */

typedef struct {
    uint32_t sub_id;
    uint32_t topic_id;
    uint64_t offset;
    uint64_t token;
    size_t len;                 /* envelope bytes */
} s_got_t;

/* A raw protocol client that records every delivery it reads. */
typedef struct {
    h_raw_t h;
    uint64_t corr;
    s_got_t *got;
    size_t ngot, capgot;
} s_raw_t;

static void s_raw_open(s_raw_t *r, const char *endpoint)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(h_raw_open(&r->h, endpoint), 0);
    assert_int_equal(h_raw_hello(&r->h), 0);
    r->corr = 100;
}

static void s_raw_close(s_raw_t *r)
{
    h_raw_close(&r->h);
    free(r->got);
    r->got = NULL;
}

/* Keep deliveries of F; false when F is no Deliver. */
static bool s_raw_keep(s_raw_t *r, const Sluice__Frame *f)
{
    if (f->body_case != SLUICE__FRAME__BODY_DELIVER)
        return false;
    for (size_t i = 0; i < f->deliver->n_msgs; i++) {
        const Sluice__Delivery *d = f->deliver->msgs[i];
        if (r->ngot == r->capgot) {
            r->capgot = r->capgot ? 2 * r->capgot : 256;
            r->got = realloc(r->got, r->capgot * sizeof(s_got_t));
            assert_non_null(r->got);
        }
        r->got[r->ngot++] = (s_got_t) { d->sub_id, d->topic_id, d->offset,
                                        d->token, d->envelope.len };
    }
    return true;
}

/* Send F and return the reply carrying its corr (caller frees); the
 * deliveries read meanwhile are kept. */
static Sluice__Frame *s_raw_call(s_raw_t *r, Sluice__Frame *f)
{
    f->corr = ++r->corr;
    assert_int_equal(h_raw_send(&r->h, f), 0);
    uint64_t deadline = slc_mono_ms() + 10000;
    while (slc_mono_ms() < deadline) {
        Sluice__Frame *got = h_raw_recv(&r->h, 500);
        if (!got)
            continue;
        if (got->corr == f->corr)
            return got;
        s_raw_keep(r, got);
        slc_frame_free(&got);
    }
    fail_msg("no reply to %s within 10 s", slc_frame_name(f));
    return NULL;
}

/* Read (and keep) deliveries for MS milliseconds. */
static void s_raw_drain(s_raw_t *r, int ms)
{
    uint64_t deadline = slc_mono_ms() + (uint64_t) ms;
    while (slc_mono_ms() < deadline) {
        Sluice__Frame *f = h_raw_recv(&r->h, (int) (deadline - slc_mono_ms()) + 1);
        if (!f)
            continue;
        s_raw_keep(r, f);
        slc_frame_free(&f);
    }
}

/* Subscribe durable NAME to PATTERN from the earliest offset. Returns the
 * sub_id, or 0 with the broker's wire error code in *code. */
static uint32_t s_raw_subscribe(s_raw_t *r, const char *name, const char *pattern,
                                uint32_t credit, int *code)
{
    Sluice__Subscribe sub = SLUICE__SUBSCRIBE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    sub.name = (char *) name;
    sub.pattern = (char *) pattern;
    sub.start = SLUICE__START_KIND__START_EARLIEST;
    sub.credit = credit;
    f.body_case = SLUICE__FRAME__BODY_SUBSCRIBE;
    f.subscribe = &sub;
    Sluice__Frame *reply = s_raw_call(r, &f);
    uint32_t id = 0;
    *code = 0;
    if (reply->body_case == SLUICE__FRAME__BODY_SUBSCRIBE_OK)
        id = reply->subscribe_ok->sub_id;
    else if (reply->body_case == SLUICE__FRAME__BODY_ERROR)
        *code = reply->error->code;
    else
        fail_msg("subscribe %s: got %s", name, slc_frame_name(reply));
    slc_frame_free(&reply);
    return id;
}

/* Heartbeat without reading: keeps a stalled session alive. */
static void s_raw_heartbeat(s_raw_t *r)
{
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_HEARTBEAT;
    f.heartbeat = &hb;
    assert_int_equal(h_raw_send(&r->h, &f), 0);
}

/* Ack every kept delivery from index *FROM on, per subscription; corr 0:
 * the broker answers only refusals. */
static void s_raw_ack_from(s_raw_t *r, size_t *from)
{
    for (size_t i = *from; i < r->ngot; i++) {
        Sluice__AckItem item = SLUICE__ACK_ITEM__INIT;
        Sluice__AckItem *items[1] = { &item };
        Sluice__Ack ack = SLUICE__ACK__INIT;
        Sluice__Frame f = SLUICE__FRAME__INIT;
        item.topic_id = r->got[i].topic_id;
        item.offset = r->got[i].offset;
        item.token = r->got[i].token;
        ack.sub_id = r->got[i].sub_id;
        ack.items = items;
        ack.n_items = 1;
        f.body_case = SLUICE__FRAME__BODY_ACK;
        f.ack = &ack;
        assert_int_equal(h_raw_send(&r->h, &f), 0);
    }
    *from = r->ngot;
}

/* ------------------------------------------------------------ RSS sampler */

typedef struct {
    pid_t pid;
    const char *field;          /* /proc/PID/status line; NULL = "VmRSS:" */
    atomic_bool stop;
    uint64_t peak_kib;
    size_t samples;
} s_rss_t;

static uint64_t s_rss_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    uint64_t kib = 0;
    size_t flen = strlen(field);
    snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, flen) == 0) {
            kib = strtoull(line + flen, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

static void *s_rss_run(void *arg)
{
    s_rss_t *s = arg;
    while (!atomic_load(&s->stop)) {
        uint64_t kib = s_rss_kib(s->pid, s->field ? s->field : "VmRSS:");
        if (kib) {
            s->samples++;
            if (kib > s->peak_kib)
                s->peak_kib = kib;
        }
        usleep(100 * 1000);
    }
    return NULL;
}

/* ------------------------------------------------------------ the tests */

/* A durable subscriber takes credit 1000 and then neither reads nor acks
 * while one producer publishes N 256-byte messages. The broker must keep
 * at most the credit in flight, confirm every publish, and stay within
 * S_RSS_BOUND_MIB of resident memory. */
static void test_stalled_subscriber_bounded(void **state)
{
    (void) state;
    bool tool = S_SANITIZED || getenv("SLUICE_TEST_WRAP");
    const uint64_t n = 1000000;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);

    s_raw_t stalled;
    int code = 0;
    s_raw_open(&stalled, b.endpoint);
    assert_true(s_raw_subscribe(&stalled, "stalled", "flood", 1000, &code) != 0);

    s_rss_t rss = { .pid = b.pid };
    atomic_init(&rss.stop, false);
    pthread_t sampler;
    assert_int_equal(pthread_create(&sampler, NULL, s_rss_run, &rss), 0);

    sl_client_t *c = s_client(&b, "flood-producer");
    s_confirms_t conf = { 0 };
    char payload[256];
    memset(payload, 'x', sizeof payload);
    uint64_t t0 = slc_mono_ms(), last_hb = t0;
    for (uint64_t i = 0; i < n; i++) {
        snprintf(payload, sizeof payload, "%010llu", (unsigned long long) i);
        payload[10] = '.';              /* distinct, still 256 bytes */
        sl_message_t m = { .topic = "flood", .payload = payload, .len = sizeof payload };
        int rc = sl_publish(c, &m, s_on_confirm, &conf, NULL);
        if (rc)
            fail_msg("publish %llu: %s", (unsigned long long) i, sl_strerror(rc));
        if ((i & 1023) == 0 && slc_mono_ms() - last_hb >= 1000) {
            s_raw_heartbeat(&stalled);
            last_hb = slc_mono_ms();
        }
    }
    /* Flush in slices, heartbeating the stalled session in between. */
    uint64_t deadline = slc_mono_ms() + 300000;
    while (sl_unconfirmed(c) > 0 && slc_mono_ms() < deadline) {
        (void) sl_flush(c, 1000);
        s_raw_heartbeat(&stalled);
    }
    double secs = (double) (slc_mono_ms() - t0) / 1000.0;
    atomic_store(&rss.stop, true);
    pthread_join(sampler, NULL);

    sl_topic_info_t *topics = NULL;
    sl_sub_info_t *subs = NULL;
    size_t ntopics = 0, nsubs = 0;
    assert_int_equal(sl_stats(c, &topics, &ntopics, &subs, &nsubs), 0);
    const sl_sub_info_t *s = s_sub_info(subs, nsubs, "stalled");
    uint64_t stored = 0;
    for (size_t i = 0; i < ntopics; i++)
        if (strcmp(topics[i].name, "flood") == 0)
            stored = topics[i].messages;
    printf("limits: %llu messages of 256 B published in %.1f s, %llu confirmed, "
           "%llu nacked; broker RSS peak %.1f MiB over %zu samples (bound %d MiB%s); "
           "stalled subscription in_flight %u, attached %d\n",
           (unsigned long long) n, secs, (unsigned long long) conf.ok,
           (unsigned long long) conf.nacked, (double) rss.peak_kib / 1024.0,
           rss.samples, S_RSS_BOUND_MIB, tool ? ", not asserted under a memory tool" : "",
           s ? s->in_flight : 0, s ? (int) s->attached : -1);
    assert_int_equal(conf.ok, n);
    assert_int_equal(conf.nacked, 0);
    assert_int_equal(stored, n);
    assert_non_null(s);
    assert_true(s->attached);
    /* Credit bounds it (1000), and max_inflight (10000) above that. */
    assert_true(s->in_flight <= 1000);
    assert_true(s->in_flight > 0);
    assert_true(rss.samples >= 3);
    if (!tool)
        assert_true(rss.peak_kib < (uint64_t) S_RSS_BOUND_MIB * 1024);
    free(topics);
    free(subs);
    sl_client_destroy(&c);
    s_raw_close(&stalled);
    h_broker_destroy(&b);
}

/* Issue 16: an ephemeral subscriber that grants a huge credit and never
 * reads. The broker sends it at most limits/max_unacked_bytes that its
 * credit has not paid back (then stored messages wait and transient ones
 * are dropped for it, counted), and queues at most max_queued_frames for
 * its connection: 1,000,000 stored and 200,000 transient messages of
 * 256 B keep the broker's memory within that budget of the same load
 * without it (before: 588 MiB in all, in the run), and once
 * the subscriber has gone the broker's anonymous memory is back near what
 * the same load took without it. */
static void test_greedy_ephemeral_bounded(void **state)
{
    (void) state;
    bool tool = S_SANITIZED || getenv("SLUICE_TEST_WRAP");
    const uint64_t n = 1000000, nt = 200000;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b, "greedy-producer");
    char payload[256];
    memset(payload, 'g', sizeof payload);
    /* The same load without the subscriber first: the baseline. */
    s_confirms_t warm = { 0 };
    for (uint64_t i = 0; i < n + nt; i++) {
        sl_message_t m = { .topic = "warm", .payload = payload, .len = sizeof payload };
        int rc = i < n ? sl_publish(c, &m, s_on_confirm, &warm, NULL)
                       : sl_publish_transient(c, &m);
        if (rc)
            fail_msg("warm-up publish %llu: %s", (unsigned long long) i, sl_strerror(rc));
    }
    while (sl_unconfirmed(c) > 0 || sl_flush(c, 1000) != 0)
        (void) sl_flush(c, 1000);
    uint64_t base_kib = s_rss_kib(b.pid, "RssAnon:");

    s_raw_t greedy;
    s_raw_open(&greedy, b.endpoint);
    Sluice__Subscribe sub = SLUICE__SUBSCRIBE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    sub.pattern = "greedy";
    sub.ephemeral = true;
    sub.credit = 4000000000u;
    f.body_case = SLUICE__FRAME__BODY_SUBSCRIBE;
    f.subscribe = &sub;
    Sluice__Frame *reply = s_raw_call(&greedy, &f);
    assert_int_equal(reply->body_case, SLUICE__FRAME__BODY_SUBSCRIBE_OK);
    slc_frame_free(&reply);

    s_rss_t rss = { .pid = b.pid, .field = "RssAnon:" };
    atomic_init(&rss.stop, false);
    pthread_t sampler;
    assert_int_equal(pthread_create(&sampler, NULL, s_rss_run, &rss), 0);
    s_confirms_t conf = { 0 };
    uint64_t last_hb = slc_mono_ms();
    for (uint64_t i = 0; i < n + nt; i++) {
        sl_message_t m = { .topic = "greedy", .payload = payload, .len = sizeof payload };
        int rc = i < n ? sl_publish(c, &m, s_on_confirm, &conf, NULL)
                       : sl_publish_transient(c, &m);
        if (rc)
            fail_msg("publish %llu: %s", (unsigned long long) i, sl_strerror(rc));
        if ((i & 1023) == 0 && slc_mono_ms() - last_hb >= 1000) {
            s_raw_heartbeat(&greedy);
            last_hb = slc_mono_ms();
        }
    }
    uint64_t deadline = slc_mono_ms() + 300000;
    while ((sl_unconfirmed(c) > 0 || sl_flush(c, 1000) != 0) && slc_mono_ms() < deadline) {
        (void) sl_flush(c, 1000);
        s_raw_heartbeat(&greedy);
    }
    atomic_store(&rss.stop, true);
    pthread_join(sampler, NULL);

    sl_topic_info_t *topics = NULL;
    sl_sub_info_t *subs = NULL;
    size_t ntopics = 0, nsubs = 0;
    assert_int_equal(sl_stats(c, &topics, &ntopics, &subs, &nsubs), 0);
    assert_int_equal(nsubs, 1);
    uint64_t dropped = subs[0].dropped, delivered = subs[0].delivered;
    free(topics);
    free(subs);

    s_raw_close(&greedy);
    /* Its session ends at the first send that finds it gone, or by its
     * timeout (10 s); then its queue and its budget are freed. */
    uint64_t end_kib = 0;
    for (int i = 0; i < 150; i++) {
        usleep(100000);
        assert_int_equal(sl_stats(c, &topics, &ntopics, &subs, &nsubs), 0);
        free(topics);
        free(subs);
        end_kib = s_rss_kib(b.pid, "RssAnon:");
        if (nsubs == 0 && end_kib < base_kib + 16 * 1024)
            break;
    }
    printf("limits: greedy ephemeral subscriber: %llu stored + %llu transient messages of "
           "256 B, %llu confirmed; sent to it %llu, dropped for it %llu; broker anonymous "
           "memory peak %.1f MiB (bound: %d MiB over the %.1f MiB the same load took without "
           "it%s), %.1f MiB after it left (%u subscriptions left)\n",
           (unsigned long long) n, (unsigned long long) nt, (unsigned long long) conf.ok,
           (unsigned long long) delivered, (unsigned long long) dropped,
           (double) rss.peak_kib / 1024.0, S_GREEDY_GROWTH_MIB, (double) base_kib / 1024.0,
           tool ? "; not asserted under a memory tool" : "",
           (double) end_kib / 1024.0, (unsigned) nsubs);
    assert_int_equal(conf.ok, n);
    /* Nothing it did not pay back beyond max_unacked_bytes (64 MiB: fewer
     * than 262,144 envelopes of more than 256 B); the rest of the stored
     * messages wait, transient ones that did not fit were dropped. */
    assert_true(delivered > 0);
    assert_true(delivered < 64u * 1024 * 1024 / 256);
    assert_true(dropped > 0);
    assert_int_equal(nsubs, 0);
    if (!tool) {
        assert_true(rss.peak_kib < base_kib + (uint64_t) S_GREEDY_GROWTH_MIB * 1024);
        assert_true(end_kib < base_kib + 16 * 1024);
    }
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

/* A durable subscriber that keeps up, acking each message at once (ack
 * wait 30 s, the default), while N 256-byte messages pass through. Each
 * delivery arms a timer that its ack leaves behind; the broker must not
 * keep one for every message acked in the last 30 s, so its anonymous
 * memory after the first WARM messages must stay flat. */
static void test_consumer_memory_flat(void **state)
{
    (void) state;
    bool tool = S_SANITIZED || getenv("SLUICE_TEST_WRAP");
    const uint64_t n = 600000, warm = 100000, chunk = 1000;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *prod = s_client(&b, "steady-producer");
    sl_client_t *cons = s_client(&b, "steady-consumer");
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = "steady";
    so.pattern = "steady";
    sl_sub_t *sub = NULL;
    assert_int_equal(sl_subscribe(cons, &so, &sub), 0);

    s_rss_t anon = { .pid = b.pid, .field = "RssAnon:" };
    atomic_init(&anon.stop, false);
    pthread_t sampler;
    bool sampling = false;
    uint64_t base_kib = 0, got = 0;
    s_confirms_t conf = { 0 };
    char payload[256];
    memset(payload, 'x', sizeof payload);
    uint64_t t0 = slc_mono_ms();
    for (uint64_t i = 0; i < n; i += chunk) {
        for (uint64_t j = i; j < i + chunk; j++) {
            snprintf(payload, sizeof payload, "%010llu", (unsigned long long) j);
            payload[10] = '.';
            sl_message_t m = { .topic = "steady", .payload = payload, .len = sizeof payload };
            int rc = sl_publish(prod, &m, s_on_confirm, &conf, NULL);
            if (rc)
                fail_msg("publish %llu: %s", (unsigned long long) j, sl_strerror(rc));
        }
        assert_int_equal(sl_flush(prod, 30000), 0);
        while (got < i + chunk) {
            sl_msg_t *msg = NULL;
            int rc = sl_sub_next(sub, 10000, &msg);
            if (rc)
                fail_msg("message %llu: %s", (unsigned long long) got, sl_strerror(rc));
            if (sl_msg_offset(msg) != got)
                fail_msg("message %llu came at offset %llu", (unsigned long long) got,
                         (unsigned long long) sl_msg_offset(msg));
            assert_int_equal(sl_ack(msg), 0);
            sl_msg_destroy(&msg);
            got++;
        }
        if (!sampling && got >= warm) {
            base_kib = s_rss_kib(b.pid, "RssAnon:");
            assert_int_equal(pthread_create(&sampler, NULL, s_rss_run, &anon), 0);
            sampling = true;
        }
    }
    assert_int_equal(sl_flush(prod, 30000), 0);
    atomic_store(&anon.stop, true);
    pthread_join(sampler, NULL);
    uint64_t end_kib = s_rss_kib(b.pid, "RssAnon:");
    if (end_kib > anon.peak_kib)
        anon.peak_kib = end_kib;
    uint64_t growth = anon.peak_kib > base_kib ? anon.peak_kib - base_kib : 0;
    printf("limits: %llu messages of 256 B consumed and acked in %.1f s; broker anonymous "
           "memory %.1f MiB after %llu, peak %.1f MiB over %zu samples (growth %.1f MiB, "
           "bound %d MiB%s)\n",
           (unsigned long long) got, (double) (slc_mono_ms() - t0) / 1000.0,
           (double) base_kib / 1024.0, (unsigned long long) warm,
           (double) anon.peak_kib / 1024.0, anon.samples, (double) growth / 1024.0,
           S_ANON_GROWTH_MIB, tool ? ", not asserted under a memory tool" : "");
    assert_int_equal(conf.ok, n);
    assert_int_equal(got, n);
    assert_true(base_kib > 0);
    if (!tool)
        assert_true(growth < (uint64_t) S_ANON_GROWTH_MIB * 1024);
    sl_client_destroy(&cons);
    sl_client_destroy(&prod);
    h_broker_destroy(&b);
}

/* limits/max_connections=3: three clients work, a fourth Hello gets 429
 * busy (retryable) and the SDK's connect fails; once a session ends the
 * fourth gets in. */
static void test_max_connections(void **state)
{
    (void) state;
    h_broker_t b;
    const char *extra[] = { "--set=limits/max_connections=3",
                            "--set=broker/session_timeout_ms=3000", NULL };
    h_broker_init(&b, extra);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = s_client(&b, "conn");
        sl_message_t m = { .topic = "conn.t", .payload = "hi", .len = 2 };
        assert_int_equal(sl_publish_sync(c[i], &m, 10000, NULL), 0);
    }

    h_raw_t raw;
    assert_int_equal(h_raw_open(&raw, b.endpoint), 0);
    Sluice__Hello hello = SLUICE__HELLO__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    hello.version = SLC_PROTOCOL_VERSION;
    hello.client = "fourth";
    f.body_case = SLUICE__FRAME__BODY_HELLO;
    f.hello = &hello;
    f.corr = 7;
    assert_int_equal(h_raw_send(&raw, &f), 0);
    Sluice__Frame *r = h_raw_recv(&raw, 5000);
    assert_non_null(r);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, -SL_EBUSY);
    assert_true(r->error->retryable);
    printf("limits: 4th hello refused: %d %s\n", r->error->code, r->error->text);
    slc_frame_free(&r);
    h_raw_close(&raw);

    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = b.endpoint;
    o.name = "fourth-sdk";
    o.connect_timeout_ms = 1000;
    o.heartbeat_ms = 300;
    o.dead_after_ms = 1000;
    sl_client_t *fourth = NULL;
    assert_int_equal(sl_client_new(&o, &fourth), 0);
    int rc = sl_client_connect(fourth);
    printf("limits: 4th SDK client: sl_client_connect = %d (%s)\n", rc, sl_strerror(rc));
    assert_int_equal(rc, SL_EBUSY);
    for (int i = 0; i < 3; i++)
        assert_true(sl_poll(c[i], 0) >= 0);

    /* One session ends (its client goes silent): the fourth gets in. */
    sl_client_destroy(&c[0]);
    uint64_t deadline = slc_mono_ms() + 20000;
    while ((rc = sl_client_connect(fourth)) != 0 && slc_mono_ms() < deadline)
        for (int i = 1; i < 3; i++)
            (void) sl_poll(c[i], 0);
    assert_int_equal(rc, 0);
    sl_message_t m = { .topic = "conn.t", .payload = "in", .len = 2 };
    assert_int_equal(sl_publish_sync(fourth, &m, 10000, NULL), 0);
    sl_client_destroy(&fourth);
    for (int i = 1; i < 3; i++)
        sl_client_destroy(&c[i]);
    h_broker_destroy(&b);
}

/* limits/max_subscriptions=2: the third subscribe is SL_EBUSY until one
 * subscription is removed. */
static void test_max_subscriptions(void **state)
{
    (void) state;
    h_broker_t b;
    const char *extra[] = { "--set=limits/max_subscriptions=2", NULL };
    h_broker_init(&b, extra);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b, "subs");
    const char *names[] = { "s1", "s2", "s3" };
    sl_sub_t *sub[3] = { NULL };
    for (int i = 0; i < 3; i++) {
        sl_sub_options_t so;
        sl_sub_options_init(&so);
        so.name = names[i];
        so.pattern = "subs.>";
        int rc = sl_subscribe(c, &so, &sub[i]);
        assert_int_equal(rc, i < 2 ? 0 : SL_EBUSY);
    }
    /* The wire says so too, to a raw client. */
    s_raw_t raw;
    int code = 0;
    s_raw_open(&raw, b.endpoint);
    assert_int_equal(s_raw_subscribe(&raw, "s4", "subs.>", 10, &code), 0);
    assert_int_equal(code, -SL_EBUSY);
    s_raw_close(&raw);

    assert_int_equal(sl_unsubscribe(&sub[0], true), 0);
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = names[2];
    so.pattern = "subs.>";
    assert_int_equal(sl_subscribe(c, &so, &sub[2]), 0);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

/* limits/max_unacked_bytes=100000, 1 KiB messages, credit 1000: a consumer
 * that does not ack holds at most ~100 messages, and a second subscription
 * of the same session gets nothing while the budget is full. Acks free
 * room; in the end each subscription has every message exactly once. */
static void test_max_unacked_bytes(void **state)
{
    (void) state;
    const int n = 300;
    h_broker_t b;
    const char *extra[] = { "--set=limits/max_unacked_bytes=100000", NULL };
    h_broker_init(&b, extra);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b, "bytes-producer");
    char payload[1024];
    for (int i = 0; i < n; i++) {
        memset(payload, 'a' + i % 26, sizeof payload);
        sl_message_t m = { .topic = "kib", .payload = payload, .len = sizeof payload };
        assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), 0);
    }
    assert_int_equal(sl_flush(c, 30000), 0);

    s_raw_t r;
    int code = 0;
    s_raw_open(&r, b.endpoint);
    uint32_t a = s_raw_subscribe(&r, "budget-a", "kib", 1000, &code);
    assert_true(a != 0);
    s_raw_drain(&r, 1000);
    size_t first = r.ngot, bytes = 0;
    for (size_t i = 0; i < r.ngot; i++)
        bytes += r.got[i].len;
    uint32_t in_flight = s_in_flight(c, "budget-a");
    printf("limits: max_unacked_bytes=100000: %zu messages (%zu envelope bytes) "
           "delivered unacked, in_flight %u\n", first, bytes, in_flight);
    assert_true(first >= 50 && first <= 100);
    assert_true(bytes <= 100000);
    assert_int_equal(in_flight, first);

    /* Same session, second subscription: the budget is the session's. */
    uint32_t bsub = s_raw_subscribe(&r, "budget-b", "kib", 1000, &code);
    assert_true(bsub != 0);
    s_raw_drain(&r, 500);
    assert_int_equal(r.ngot, first);
    assert_int_equal(s_in_flight(c, "budget-b"), 0);

    /* Ack as we go: everything arrives, the budget holds all along. */
    size_t acked = 0;
    uint64_t deadline = slc_mono_ms() + 30000;
    while (r.ngot < 2 * (size_t) n && slc_mono_ms() < deadline) {
        s_raw_ack_from(&r, &acked);
        s_raw_drain(&r, 100);
        size_t unacked = 0;
        for (size_t i = acked; i < r.ngot; i++)
            unacked += r.got[i].len;
        if (unacked > 100000)
            fail_msg("%zu unacked envelope bytes > max_unacked_bytes", unacked);
    }
    s_raw_ack_from(&r, &acked);
    assert_int_equal(r.ngot, 2 * (size_t) n);
    bool *seen = calloc(2 * (size_t) n, sizeof(bool));
    assert_non_null(seen);
    for (size_t i = 0; i < r.ngot; i++) {
        assert_true(r.got[i].sub_id == a || r.got[i].sub_id == bsub);
        assert_true(r.got[i].offset < (uint64_t) n);
        size_t k = (r.got[i].sub_id == a ? 0 : (size_t) n) + r.got[i].offset;
        assert_false(seen[k]);
        seen[k] = true;
    }
    free(seen);
    s_raw_close(&r);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

/* The SDK's unconfirmed queue is bounded: against a stopped broker the
 * 101st publish with max_unacked=100 waits block_ms (500) and returns
 * SL_EBUSY; after SIGCONT everything is confirmed, nothing twice. */
static void test_sdk_max_unacked_blocks(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = b.endpoint;
    o.name = "bounded-producer";
    o.max_unacked = 100;
    o.block_ms = 500;
    sl_client_t *c = NULL;
    assert_int_equal(sl_client_new(&o, &c), 0);
    assert_int_equal(sl_client_connect(c), 0);

    assert_int_equal(kill(b.pid, SIGSTOP), 0);
    s_confirms_t conf = { 0 };
    char buf[32];
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "m%03d", i);
        sl_message_t m = { .topic = "bounded", .payload = buf, .len = strlen(buf) };
        assert_int_equal(sl_publish(c, &m, s_on_confirm, &conf, NULL), 0);
    }
    assert_int_equal(sl_unconfirmed(c), 100);
    sl_message_t last = { .topic = "bounded", .payload = "m100", .len = 4 };
    uint64_t t0 = slc_mono_ms();
    int rc = sl_publish(c, &last, s_on_confirm, &conf, NULL);
    uint64_t waited = slc_mono_ms() - t0;
    printf("limits: 101st publish against a stopped broker: %d (%s) after %llu ms\n",
           rc, sl_strerror(rc), (unsigned long long) waited);
    assert_int_equal(rc, SL_EBUSY);
    assert_true(waited >= 450 && waited < 3000);
    assert_int_equal(sl_unconfirmed(c), 100);

    assert_int_equal(kill(b.pid, SIGCONT), 0);
    assert_int_equal(sl_flush(c, 30000), 0);
    assert_int_equal(conf.ok, 100);
    assert_int_equal(sl_publish(c, &last, s_on_confirm, &conf, NULL), 0);
    assert_int_equal(sl_flush(c, 30000), 0);
    assert_int_equal(conf.ok, 101);
    assert_int_equal(conf.nacked, 0);
    sl_topic_info_t *topics = NULL;
    size_t nt = 0;
    assert_int_equal(sl_stats(c, &topics, &nt, NULL, NULL), 0);
    uint64_t stored = 0;
    for (size_t i = 0; i < nt; i++)
        if (strcmp(topics[i].name, "bounded") == 0)
            stored = topics[i].messages;
    free(topics);
    assert_int_equal(stored, 101);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_max_subscriptions),
        cmocka_unit_test(test_max_unacked_bytes),
        cmocka_unit_test(test_sdk_max_unacked_blocks),
        cmocka_unit_test(test_stalled_subscriber_bounded),
        cmocka_unit_test(test_greedy_ephemeral_bounded),
        cmocka_unit_test(test_consumer_memory_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
