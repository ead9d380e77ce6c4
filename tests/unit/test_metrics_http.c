/*  test_metrics_http - sld_metrics_http_format and sld_metrics_snap on
 *  their own: every broker counter reaches /metrics, HELP before TYPE
 *  before the samples of each family, histograms cumulative with +Inf,
 *  _sum and _count, bucket bounds inclusive, the snapshot hand-over.
 *  The listener itself is tested against a real broker
 *  (tests/integration/test_metrics.py).  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "sld_metrics_http.h"
#include "sld_metrics_snap.h"
#include "sluice_codes.h"

/* V formatted; caller frees. */
static char *s_format(const sld_metrics_values_t *v)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    assert_int_equal(sld_metrics_http_format(v, NULL, v->taken_us + 250000, out), 0);
    assert_int_equal(fclose(out), 0);
    return text;
}

/* Does TEXT hold LINE as a whole line? */
static bool s_has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0))
            return true;
    return false;
}

static void test_every_counter_exported(void **state)
{
    (void) state;
    sld_metrics_values_t v;
    memset(&v, 0, sizeof v);
    v.state = SLD_SNAP_READY;
    v.taken_us = 1000000;
    for (int i = 0; i < SLD_M_COUNT; i++)
        v.counters[i] = 7000 + (uint64_t) i;
    char *text = s_format(&v);
    /* Each counter's unique value ends exactly one sample line. */
    for (int i = 0; i < SLD_M_COUNT; i++) {
        char want[32];
        snprintf(want, sizeof want, " %d\n", 7000 + i);
        const char *at = strstr(text, want);
        if (!at)
            fail_msg("counter %s (%d) is not in /metrics", sld_metrics_name((sld_metric_t) i), i);
        assert_null(strstr(at + 1, want));
    }
    char line[96];
    snprintf(line, sizeof line, "sluice_acks_total %d", 7000 + SLD_M_ACKED);
    assert_true(s_has_line(text, line));
    snprintf(line, sizeof line, "sluice_errors_total{code=\"denied\"} %d", 7000 + SLD_M_ERR_DENIED);
    assert_true(s_has_line(text, line));
    assert_true(s_has_line(text, "sluice_ready 1"));
    assert_true(s_has_line(text, "sluice_snapshot_age_seconds 0.250"));
    free(text);
}

/* Every sample's family has HELP then TYPE before its first sample, once. */
static void test_help_and_type(void **state)
{
    (void) state;
    sld_metrics_values_t v;
    memset(&v, 0, sizeof v);
    char *text = s_format(&v);
    char *save = NULL, family[128] = "", typed[128] = "";
    int samples = 0;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "# HELP ", 7) == 0) {
            sscanf(l + 7, "%127s", family);
            typed[0] = 0;
        }
        else if (strncmp(l, "# TYPE ", 7) == 0) {
            char name[128], kind[32];
            assert_int_equal(sscanf(l + 7, "%127s %31s", name, kind), 2);
            assert_string_equal(name, family);
            snprintf(typed, sizeof typed, "%s", name);
        }
        else {
            size_t n = strlen(typed);
            assert_true(n > 0);
            /* The sample belongs to the family: NAME, NAME{, NAME_bucket, _sum, _count. */
            assert_int_equal(strncmp(l, typed, n), 0);
            samples++;
        }
    }
    assert_true(samples > SLD_M_COUNT);
    free(text);
}

static void test_histogram(void **state)
{
    (void) state;
    sld_metrics_snap_t *snap = NULL;
    assert_int_equal(sld_metrics_snap_new(&snap), 0);
    sld_metrics_values_t v, got;
    sld_metrics_snap_read(snap, &got, NULL);
    assert_int_equal(got.state, SLD_SNAP_STARTING);
    /* 0.0005 is a bound: it counts in le="0.0005" (bounds are inclusive). */
    sld_metrics_snap_commit(snap, 0.0005, 0);
    sld_metrics_snap_commit(snap, 0.003, 100);
    sld_metrics_snap_commit(snap, 9.0, 30000);
    memset(&v, 0, sizeof v);
    v.state = SLD_SNAP_READY;
    sld_metrics_snap_publish(snap, &v, NULL, 5);
    assert_true(sld_metrics_snap_due(snap, 100, false) > 0);
    assert_int_equal(sld_metrics_snap_due(snap, 5 + SLD_SNAP_PERIOD_MS, false), 0);
    sld_metrics_snap_read(snap, &got, NULL);
    assert_int_equal(got.state, SLD_SNAP_READY);
    assert_int_equal(got.commit_seconds.count, 3);
    char *text = s_format(&got);
    assert_true(s_has_line(text, "sluice_commit_duration_seconds_bucket{le=\"0.00025\"} 0"));
    assert_true(s_has_line(text, "sluice_commit_duration_seconds_bucket{le=\"0.0005\"} 1"));
    assert_true(s_has_line(text, "sluice_commit_duration_seconds_bucket{le=\"0.005\"} 2"));
    assert_true(s_has_line(text, "sluice_commit_duration_seconds_bucket{le=\"2.5\"} 2"));
    assert_true(s_has_line(text, "sluice_commit_duration_seconds_bucket{le=\"+Inf\"} 3"));
    assert_true(s_has_line(text, "sluice_commit_duration_seconds_count 3"));
    assert_true(s_has_line(text, "sluice_commit_duration_seconds_sum 9.0035"));
    assert_true(s_has_line(text, "sluice_commit_batch_messages_bucket{le=\"1\"} 1"));
    assert_true(s_has_line(text, "sluice_commit_batch_messages_bucket{le=\"100\"} 2"));
    assert_true(s_has_line(text, "sluice_commit_batch_messages_bucket{le=\"20000\"} 2"));
    assert_true(s_has_line(text, "sluice_commit_batch_messages_bucket{le=\"+Inf\"} 3"));
    assert_true(s_has_line(text, "sluice_commit_batch_messages_sum 30100"));
    free(text);
    sld_metrics_snap_set_state(snap, SLD_SNAP_STOPPING);
    sld_metrics_snap_read(snap, &got, NULL);
    assert_int_equal(got.state, SLD_SNAP_STOPPING);
    text = s_format(&got);
    assert_true(s_has_line(text, "sluice_ready 0"));
    free(text);
    sld_metrics_snap_destroy(&snap);
    assert_null(snap);
}

/* Bad addresses and a public one without PUBLIC are refused with a reason. */
/* Per-object rows: label values escaped, ages in seconds, the detail kept
 * alive by a reader's reference after the loop publishes the next one. */
static void test_detail(void **state)
{
    (void) state;
    sld_metrics_snap_t *snap = NULL;
    assert_int_equal(sld_metrics_snap_new(&snap), 0);
    sld_metrics_detail_t *d = sld_metrics_detail_new(1, 1);
    assert_non_null(d);
    snprintf(d->topics[0].name, sizeof d->topics[0].name, "a\"b\\c\nd");
    d->topics[0].next_offset = 7;
    d->ntopics = 1;
    snprintf(d->subs[0].name, sizeof d->subs[0].name, "s1");
    d->subs[0].oldest_unacked_ms = 2500;
    d->subs[0].pending = 3;
    d->nsubs = 1;
    d->dropped_subs = 4;
    sld_metrics_values_t v, got;
    memset(&v, 0, sizeof v);
    sld_metrics_snap_publish(snap, &v, &d, 1);
    assert_null(d);
    const sld_metrics_detail_t *held = NULL;
    sld_metrics_snap_read(snap, &got, &held);
    assert_non_null(held);
    sld_metrics_snap_publish(snap, &v, NULL, 2);       /* the loop moves on */
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    assert_int_equal(sld_metrics_http_format(&got, held, 0, out), 0);
    assert_int_equal(fclose(out), 0);
    sld_metrics_snap_release(snap, &held);
    assert_null(held);
    assert_true(s_has_line(text, "sluice_topic_next_offset{topic=\"a\\\"b\\\\c\\nd\"} 7"));
    assert_true(s_has_line(text, "sluice_subscription_oldest_unacked_age_seconds"
                           "{subscription=\"s1\"} 2.500"));
    assert_true(s_has_line(text, "sluice_subscription_pending_messages{subscription=\"s1\"} 3"));
    assert_true(s_has_line(text, "sluice_metrics_objects_dropped{kind=\"subscription\"} 4"));
    free(text);
    sld_metrics_snap_read(snap, &got, &held);
    assert_null(held);                  /* the last publish had no detail */
    sld_metrics_snap_destroy(&snap);
}

static void test_listen_refusals(void **state)
{
    (void) state;
    sld_metrics_snap_t *snap = NULL;
    sld_metrics_http_t *h = NULL;
    char err[512];
    assert_int_equal(sld_metrics_snap_new(&snap), 0);
    assert_int_equal(sld_metrics_http_new("127.0.0.1", false, snap, &h, err, sizeof err),
                     SL_EINVAL);
    assert_non_null(strstr(err, "expected ADDR:PORT"));
    assert_int_equal(sld_metrics_http_new("127.0.0.1:70000", false, snap, &h, err, sizeof err),
                     SL_EINVAL);
    assert_int_equal(sld_metrics_http_new("0.0.0.0:0", false, snap, &h, err, sizeof err),
                     SL_EINVAL);
    assert_non_null(strstr(err, "not a loopback address"));
    assert_null(h);
    assert_int_equal(sld_metrics_http_new("[::1]:0", false, snap, &h, err, sizeof err) == 0
                     || strstr(err, "cannot listen") != NULL, 1);   /* no IPv6 here: fine */
    sld_metrics_http_destroy(&h);
    assert_int_equal(sld_metrics_http_new("127.0.0.1:0", false, snap, &h, err, sizeof err), 0);
    assert_true(sld_metrics_http_port(h) > 0);
    sld_metrics_http_destroy(&h);
    assert_null(h);
    sld_metrics_snap_destroy(&snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_counter_exported),
        cmocka_unit_test(test_help_and_type),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_detail),
        cmocka_unit_test(test_listen_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
