/*  test_alarm - the storage alarm with watermarks (issue 20 point 2): a
 *  small map filled past storage/high_watermark refuses publishes with a
 *  retryable 507 that names the watermark, while acks and admin go on;
 *  trimmed to between the watermarks it stays raised (the hysteresis);
 *  trimmed below storage/low_watermark publishes resume by themselves. Both
 *  transitions are in the broker's log, in `_audit` (identity "broker"),
 *  in the alarm.raised / alarm.cleared counters and, as JSON events, in
 *  `_alerts`. A real sluiced; raw publishes, so every confirm is seen as it
 *  is, and the SDK for the consumer and the counters. The alert rules of
 *  [alerts] (subscription lag, dead-letter growth, an idle topic, a
 *  route's errors) each triggered and resolved. Single thread.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "harness.h"
#include "slc.h"
#include "sluice.h"

#define S_WAIT_MS 15000
#define S_PAYLOAD 1000

static sl_client_t *s_client(const h_broker_t *b)
{
    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = b->endpoint;
    o.name = "alarm-test";
    o.connect_timeout_ms = 10000;
    sl_client_t *c = NULL;
    assert_int_equal(sl_client_new(&o, &c), 0);
    assert_int_equal(sl_client_connect(c), 0);
    return c;
}

/* Publish TEXT on TOPIC: 0 when stored, else the confirm's code (ERR has
 * "publish on T refused: CODE TEXT"). */
static int s_publish(h_raw_t *r, uint64_t *corr, const char *topic, const char *text,
                     char *err, size_t errlen)
{
    uint64_t offset;
    err[0] = 0;
    if (h_raw_publish(r, corr, topic, text, &offset, err, errlen) == 0)
        return 0;
    int code = 0;
    if (sscanf(err, "publish on %*s refused: %d", &code) != 1)
        fail_msg("%s", err);
    return code;
}

/* The whole broker log (caller frees). */
static char *s_log(const h_broker_t *b)
{
    FILE *f = fopen(b->log, "r");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strdup(buf);
}

/* How many stored messages of TOPIC contain every one of the NULL-ended
 * NEEDLES in their payload. NEEDLES { "", NULL }: all, each printed. */
static size_t s_count_records(const h_broker_t *b, const char *topic, const char *const *needles)
{
    Sluice__Envelope *v[512];
    size_t n = 0, hits = 0;
    char err[256];
    if (h_raw_read_topic(b->endpoint, topic, v, 512, &n, err, sizeof err) != 0)
        fail_msg("reading %s: %s", topic, err);
    for (size_t i = 0; i < n; i++) {
        char *p = strndup((const char *) v[i]->payload.data, v[i]->payload.len);
        bool all = true;
        for (size_t k = 0; needles[k]; k++)
            all = all && strstr(p, needles[k]);
        hits += all;
        if (!needles[0][0])
            fprintf(stderr, "%s: %s\n", topic, p);
        free(p);
    }
    h_envelopes_free(v, n);
    return hits;
}

/* The value of sample SERIES (e.g. `sluice_alarm{kind="map"}`) on B's
 * /metrics (its port from the log), or -1. */
static long s_metric(const h_broker_t *b, const char *series)
{
    char *log = s_log(b), cmd[256], *out = NULL;
    const char *at = strstr(log, "metrics listening on ");
    const char *port = at ? strstr(at, ", port ") : NULL;
    long v = -1;
    if (port) {
        snprintf(cmd, sizeof cmd, "curl -s http://127.0.0.1:%d/metrics", atoi(port + 7));
        if (h_run(cmd, NULL, &out) == 0 && out) {
            char needle[200];
            snprintf(needle, sizeof needle, "\n%s ", series);    /* the sample, not # HELP */
            const char *line = strstr(out, needle);
            if (line)
                v = strtol(line + strlen(needle), NULL, 10);
        }
    }
    free(out);
    free(log);
    return v;
}

/* The harness may take the metrics listener's "listening on" line for the
 * broker's: set B's endpoint from the broker's own line, "listening on
 * tcp://...,", once it is logged. */
static void s_fix_endpoint(h_broker_t *b)
{
    uint64_t deadline = slc_mono_ms() + S_WAIT_MS;
    do {
        char *log = s_log(b);
        const char *p = strstr(log, "listening on tcp://");
        const char *e = p ? strchr(p, ',') : NULL;
        p = p ? p + strlen("listening on ") : NULL;
        if (p && e && (size_t) (e - p) < sizeof b->endpoint) {
            memcpy(b->endpoint, p, (size_t) (e - p));
            b->endpoint[e - p] = 0;
            free(log);
            return;
        }
        free(log);
        usleep(50000);
    } while (slc_mono_ms() < deadline);
    fail_msg("the broker never logged its endpoint");
}

/* Wait until S_METRIC(SERIES) is WANT (the snapshot is at most 200 ms
 * old); its last value. */
static long s_metric_await(const h_broker_t *b, const char *series, long want)
{
    uint64_t deadline = slc_mono_ms() + S_WAIT_MS;
    long v;
    while ((v = s_metric(b, series)) != want && slc_mono_ms() < deadline)
        usleep(100000);
    return v;
}

/* Raised above the high watermark, cleared only below the low one. */
static void test_watermarks(void **state)
{
    (void) state;
    /* map_size_max 4 MiB: high 50% = 2 MiB, low 20% = 819 KiB (the reserve
     * is 256 KiB, far from both). */
    const char *extra[] = { "--set=storage/map_size=1M", "--set=storage/map_size_max=4M",
                            "--set=storage/high_watermark=50",
                            "--set=storage/low_watermark=20",
                            "--set=retention/trim_interval=100ms", "--sync=off",
                            "--metrics-listen=127.0.0.1:0", NULL };
    h_broker_t b;
    h_broker_init(&b, extra);
    assert_int_equal(h_broker_start(&b), 0);
    s_fix_endpoint(&b);
    sl_client_t *c = s_client(&b);
    h_raw_t pub;
    uint64_t corr = 0;
    char err[512];
    assert_int_equal(h_raw_open(&pub, b.endpoint), 0);
    assert_int_equal(h_raw_hello(&pub), 0);

    /* A consumer holds three deliveries, not yet acked. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_publish(&pub, &corr, "work", "job", err, sizeof err), 0);
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = "worker";
    so.pattern = "work";
    so.start = SL_START_EARLIEST;
    sl_sub_t *sub = NULL;
    assert_int_equal(sl_subscribe(c, &so, &sub), 0);
    sl_msg_t *held[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_sub_next(sub, S_WAIT_MS, &held[i]), 0);

    /* Fill past the high watermark. */
    static char payload[S_PAYLOAD + 1];
    memset(payload, 'x', S_PAYLOAD);
    int stored = 0, code = 0;
    while ((code = s_publish(&pub, &corr, "fill", payload, err, sizeof err)) == 0)
        if (++stored > 20000)
            fail_msg("no alarm after 20000 messages of 1000 bytes with map_size_max=4M");
    assert_int_equal(code, 507);
    /* Well past the low watermark's worth, short of the ceiling's. */
    assert_true(stored > 1000 && stored < 4000);
    if (!strstr(err, "storage full: map alarm") || !strstr(err, "storage/high_watermark (50%")
        || !strstr(err, "storage/low_watermark (20%") || !strstr(err, "retry later"))
        fail_msg("refusal does not name the watermarks: %s", err);
    assert_int_equal(h_counter(c, "alarm.raised"), 1);
    assert_int_equal(h_counter(c, "alarm.cleared"), 0);
    assert_int_equal(s_metric_await(&b, "sluice_alarm{kind=\"map\"}", 1), 1);
    assert_int_equal(s_metric(&b, "sluice_alarm{kind=\"disk\"}"), 0);
    assert_int_equal(s_metric(&b, "sluice_storage_alarms_raised_total"), 1);

    /* Acks still commit. */
    uint64_t acked = h_counter(c, "deliver.acked");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sl_ack_sync(held[i], S_WAIT_MS), 0);
        sl_msg_destroy(&held[i]);
    }
    assert_int_equal(h_counter(c, "deliver.acked"), acked + 3);

    /* Admin still commits: cap `fill` so that retention trims it to 1 MB
     * of payload, between the watermarks. Still refused: the alarm clears
     * only below the low one. */
    assert_int_equal(sl_topic_create(c, "fill", 0, 1000 * 1000), 0);
    uint64_t deadline = slc_mono_ms() + S_WAIT_MS;
    sl_topic_info_t *t = NULL;
    size_t nt = 0;
    uint64_t left = 0;
    do {
        usleep(100000);
        assert_int_equal(sl_stats(c, &t, &nt, NULL, NULL), 0);
        for (size_t i = 0; i < nt; i++)
            if (strcmp(t[i].name, "fill") == 0)
                left = t[i].messages;
        free(t);
    } while (left > 1000 && slc_mono_ms() < deadline);
    assert_true(left <= 1000);
    usleep(500000);                     /* the alarm is looked at every 200 ms */
    long used = s_metric(&b, "sluice_map_used_bytes");
    if (used <= 4L * 1048576 / 5 || used >= 2L * 1048576)
        fail_msg("map use %ld is not between the watermarks: the test proves nothing", used);
    assert_int_equal(s_publish(&pub, &corr, "fill", payload, err, sizeof err), 507);
    assert_int_equal(h_counter(c, "alarm.cleared"), 0);

    /* Below the low watermark: publishes resume by themselves. */
    assert_int_equal(sl_topic_create(c, "fill", 0, 100 * 1000), 0);
    deadline = slc_mono_ms() + S_WAIT_MS;
    do {
        usleep(100000);
        code = s_publish(&pub, &corr, "fill", payload, err, sizeof err);
    } while (code != 0 && slc_mono_ms() < deadline);
    if (code != 0)
        fail_msg("publishes did not resume below the low watermark: %s", err);
    assert_int_equal(h_counter(c, "alarm.raised"), 1);
    assert_int_equal(h_counter(c, "alarm.cleared"), 1);
    assert_int_equal(s_metric_await(&b, "sluice_alarm{kind=\"map\"}", 0), 0);
    assert_int_equal(s_metric(&b, "sluice_storage_alarms_cleared_total"), 1);

    /* Both transitions: one log line each, an audit record by "broker" and
     * an alert event each. */
    char *log = s_log(&b);
    char *up = strstr(log, "storage alarm raised: map");
    char *down = strstr(log, "storage alarm cleared: map");
    if (!up || !down || down < up)
        fail_msg("log lacks the transitions:\n%s", log);
    assert_null(strstr(up + 1, "storage alarm raised"));
    assert_null(strstr(down + 1, "storage alarm cleared"));
    free(log);
    const char *raised[] = { "\"identity\":\"broker\"", "\"action\":\"alarm.raised\"",
                             "\"target\":\"map\"", NULL };
    const char *cleared[] = { "\"identity\":\"broker\"", "\"action\":\"alarm.cleared\"",
                              "\"target\":\"map\"", NULL };
    assert_int_equal(s_count_records(&b, "_audit", raised), 1);
    assert_int_equal(s_count_records(&b, "_audit", cleared), 1);
    const char *firing[] = { "{\"alert\":\"storage_alarm\",\"state\":\"firing\",\"at\":\"20",
                             "\"kind\":\"map\"", "\"high_watermark\":50", NULL };
    const char *resolved[] = { "{\"alert\":\"storage_alarm\",\"state\":\"resolved\",\"at\":\"20",
                               "\"kind\":\"map\"", "\"low_watermark\":20", NULL };
    assert_int_equal(s_count_records(&b, "_alerts", firing), 1);
    assert_int_equal(s_count_records(&b, "_alerts", resolved), 1);

    h_raw_close(&pub);
    assert_int_equal(sl_unsubscribe(&sub, false), 0);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

/* Watermarks that make no sense are refused at start with a clear text. */
static void test_watermarks_checked(void **state)
{
    (void) state;
    char sluiced[512], cmd[1024];
    h_build_path("broker/sluiced", sluiced, sizeof sluiced);
    snprintf(cmd, sizeof cmd, "%s --set storage/high_watermark=70 --set "
             "storage/low_watermark=80 --data-dir /nonexistent-alarm 2>&1", sluiced);
    char *out = NULL;
    assert_int_not_equal(h_run(cmd, NULL, &out), 0);
    if (!out || !strstr(out, "storage/low_watermark (80%) and storage/high_watermark (70%)"))
        fail_msg("sluiced said: %s", out ? out : "(nothing)");
    free(out);
}

/* Wait until `_alerts` holds exactly N events with every one of NEEDLES,
 * at most S_WAIT_MS; fail saying which otherwise. */
static void s_await_alerts(const h_broker_t *b, const char *const *needles, size_t n)
{
    uint64_t deadline = slc_mono_ms() + S_WAIT_MS;
    size_t got;
    while ((got = s_count_records(b, "_alerts", needles)) != n && slc_mono_ms() < deadline)
        usleep(200000);
    if (got != n) {
        const char *all[] = { "", NULL };
        s_count_records(b, "_alerts", all);     /* prints them (s_dump) */
        fail_msg("_alerts has %zu events with %s %s, not %zu", got, needles[0], needles[1], n);
    }
}

/* Publish N messages of "job" on TOPIC through the SDK. */
static void s_publish_n(sl_client_t *c, const char *topic, int n)
{
    sl_message_t m = { .topic = topic, .payload = "job", .len = 3 };
    for (int i = 0; i < n; i++)
        assert_int_equal(sl_publish_sync(c, &m, S_WAIT_MS, NULL), 0);
}

/* Take N messages of SUB and ack them (the last one synchronously). */
static void s_ack_n(sl_sub_t *sub, int n)
{
    for (int i = 0; i < n; i++) {
        sl_msg_t *m = NULL;
        assert_int_equal(sl_sub_next(sub, S_WAIT_MS, &m), 0);
        assert_int_equal(i + 1 < n ? sl_ack(m) : sl_ack_sync(m, S_WAIT_MS), 0);
        sl_msg_destroy(&m);
    }
}

/* alerts/subscription_lag_max 5 for 1 s: a durable subscription 10 behind
 * fires after a second, not before; one that catches up within the second
 * never fires; acked down to the max it resolves; removed while firing it
 * resolves too. */
static void test_lag_rule(void **state)
{
    (void) state;
    const char *extra[] = { "--set=alerts/subscription_lag_max=5",
                            "--set=alerts/subscription_lag_for=1s", NULL };
    h_broker_t b;
    h_broker_init(&b, extra);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b);
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = "slow";
    so.pattern = "orders";
    so.start = SL_START_EARLIEST;
    sl_sub_t *slow = NULL, *quick = NULL;
    assert_int_equal(sl_subscribe(c, &so, &slow), 0);
    so.name = "quick";
    assert_int_equal(sl_subscribe(c, &so, &quick), 0);
    uint64_t t0 = slc_mono_ms();
    s_publish_n(c, "orders", 10);
    s_ack_n(quick, 10);                 /* caught up within the second */
    const char *firing[] = { "{\"alert\":\"subscription_lag\",\"state\":\"firing\"",
                             "\"subscription\":\"slow\"", "\"lag\":10", "\"lag_max\":5",
                             "\"for_seconds\":1", NULL };
    s_await_alerts(&b, firing, 1);
    /* Not before it had been above for the whole second. */
    assert_true(slc_mono_ms() - t0 >= 1000);
    const char *quick_any[] = { "\"subscription\":\"quick\"", NULL };
    assert_int_equal(s_count_records(&b, "_alerts", quick_any), 0);

    s_ack_n(slow, 5);                   /* 5 behind: not above the max */
    const char *resolved[] = { "{\"alert\":\"subscription_lag\",\"state\":\"resolved\"",
                               "\"subscription\":\"slow\"", "\"lag\":5", NULL };
    s_await_alerts(&b, resolved, 1);

    /* Above again, then removed while firing: resolved, "removed". */
    s_publish_n(c, "orders", 3);
    s_ack_n(quick, 3);
    const char *again[] = { "\"state\":\"firing\"", "\"subscription\":\"slow\"",
                            "\"lag\":8", NULL };
    s_await_alerts(&b, again, 1);
    assert_int_equal(sl_unsubscribe(&slow, true), 0);
    const char *gone[] = { "\"state\":\"resolved\"", "\"subscription\":\"slow\"",
                           "\"removed\":true", NULL };
    s_await_alerts(&b, gone, 1);
    assert_int_equal(s_count_records(&b, "_alerts", quick_any), 0);
    assert_int_equal(sl_unsubscribe(&quick, false), 0);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

/* alerts/dlq_growth_max 3 in 5 s: two dead letters do not fire, a third
 * within the window does; five seconds without more resolve it. */
static void test_dlq_rule(void **state)
{
    (void) state;
    const char *extra[] = { "--set=alerts/dlq_growth_max=3",
                            "--set=alerts/dlq_growth_window=5s",
                            "--set=delivery/max_deliver=1", NULL };
    h_broker_t b;
    h_broker_init(&b, extra);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b);
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = "picky";
    so.pattern = "jobs";
    so.start = SL_START_EARLIEST;
    sl_sub_t *sub = NULL;
    assert_int_equal(sl_subscribe(c, &so, &sub), 0);
    s_publish_n(c, "jobs", 3);
    /* Two dead letters: under the max. */
    for (int i = 0; i < 2; i++) {
        sl_msg_t *m = NULL;
        assert_int_equal(sl_sub_next(sub, S_WAIT_MS, &m), 0);
        assert_int_equal(sl_nack(m, 0), 0);
        sl_msg_destroy(&m);
    }
    uint64_t deadline = slc_mono_ms() + S_WAIT_MS;
    while (h_counter(c, "deliver.dead_lettered") < 2 && slc_mono_ms() < deadline)
        usleep(100000);
    assert_int_equal(h_counter(c, "deliver.dead_lettered"), 2);
    usleep(1200000);                    /* one evaluation at least */
    const char *any[] = { "\"alert\":\"dlq_growth\"", NULL };
    assert_int_equal(s_count_records(&b, "_alerts", any), 0);
    /* The third, within the window: fires. */
    sl_msg_t *m = NULL;
    assert_int_equal(sl_sub_next(sub, S_WAIT_MS, &m), 0);
    assert_int_equal(sl_nack(m, 0), 0);
    sl_msg_destroy(&m);
    const char *firing[] = { "{\"alert\":\"dlq_growth\",\"state\":\"firing\"",
                             "\"dead_lettered\":3", "\"growth_max\":3",
                             "\"window_seconds\":5", NULL };
    s_await_alerts(&b, firing, 1);
    /* Quiet for the window: resolved. */
    const char *resolved[] = { "{\"alert\":\"dlq_growth\",\"state\":\"resolved\"", NULL };
    s_await_alerts(&b, resolved, 1);
    assert_int_equal(s_count_records(&b, "_alerts", any), 2);
    assert_int_equal(sl_unsubscribe(&sub, false), 0);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

/* alerts/topic_idle "idle.*, other" for 1 s: idle.a, published once, fires
 * once after a second without a publish (busy.b, not matched, never);
 * published again it resolves. */
static void test_idle_rule(void **state)
{
    (void) state;
    const char *extra[] = { "--set=alerts/topic_idle=idle.*, other",
                            "--set=alerts/topic_idle_for=1s", NULL };
    h_broker_t b;
    h_broker_init(&b, extra);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b);
    s_publish_n(c, "idle.a", 1);
    s_publish_n(c, "busy.b", 1);
    const char *firing[] = { "{\"alert\":\"topic_idle\",\"state\":\"firing\"",
                             "\"topic\":\"idle.a\"", "\"idle_for_seconds\":1", NULL };
    s_await_alerts(&b, firing, 1);
    usleep(2200000);                    /* still idle: it does not fire again */
    const char *any_firing[] = { "\"alert\":\"topic_idle\",\"state\":\"firing\"", NULL };
    assert_int_equal(s_count_records(&b, "_alerts", any_firing), 1);
    const char *busy[] = { "\"topic\":\"busy.b\"", NULL };
    assert_int_equal(s_count_records(&b, "_alerts", busy), 0);
    s_publish_n(c, "idle.a", 1);
    const char *resolved[] = { "{\"alert\":\"topic_idle\",\"state\":\"resolved\"",
                               "\"topic\":\"idle.a\"", NULL };
    s_await_alerts(&b, resolved, 1);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

/* alerts/route_errors_max 2 in 3 s: a route whose `where` meets a payload
 * that is not JSON fails; one failure does not fire, a second within the
 * window does; three seconds without another resolve it. */
static void test_route_rule(void **state)
{
    (void) state;
    const char *extra[] = { "--set=alerts/route_errors_max=2",
                            "--set=alerts/route_errors_window=3s", NULL };
    h_broker_t b;
    h_broker_init(&b, extra);
    assert_int_equal(h_broker_start(&b), 0);
    h_raw_t raw;
    uint64_t corr = 0, off;
    char err[512];
    assert_int_equal(h_raw_open(&raw, b.endpoint), 0);
    assert_int_equal(h_raw_hello(&raw), 0);
    if (h_raw_routes_apply(&raw, &corr, "routes:\n"
                           "  - name: strict\n"
                           "    match: { topic: \"feed\", where: \"$.ok == true\" }\n"
                           "    to: feed.out\n", NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(h_raw_publish(&raw, &corr, "feed", "not json", &off, err, sizeof err), 0);
    usleep(1200000);                    /* one evaluation at least */
    const char *any[] = { "\"alert\":\"route_errors\"", NULL };
    assert_int_equal(s_count_records(&b, "_alerts", any), 0);
    assert_int_equal(h_raw_publish(&raw, &corr, "feed", "nor this", &off, err, sizeof err), 0);
    const char *firing[] = { "{\"alert\":\"route_errors\",\"state\":\"firing\"",
                             "\"route\":\"strict\"", "\"errors\":2", "\"errors_max\":2",
                             "\"window_seconds\":3", NULL };
    s_await_alerts(&b, firing, 1);
    const char *resolved[] = { "{\"alert\":\"route_errors\",\"state\":\"resolved\"",
                               "\"route\":\"strict\"", NULL };
    s_await_alerts(&b, resolved, 1);
    assert_int_equal(s_count_records(&b, "_alerts", any), 2);
    h_raw_close(&raw);
    h_broker_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watermarks),
        cmocka_unit_test(test_watermarks_checked),
        cmocka_unit_test(test_lag_rule),
        cmocka_unit_test(test_dlq_rule),
        cmocka_unit_test(test_idle_rule),
        cmocka_unit_test(test_route_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
