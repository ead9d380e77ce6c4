/*  test_mqtt_topic - sluice-mqtt's topic translation (adapters/mqtt/
 *  mqtt_topic.c): the table docs/adapters.md prints, each row both ways;
 *  filters; what is refused and why; the length limit. cmocka; no I/O.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "mqtt_topic.h"

/* docs/adapters.md's table: MQTT topic, sluice topic under prefix "mqtt". */
static const char *const s_rows[][2] = {
    { "sensors/cold-1/temp", "mqtt.sensors.cold-1.temp" },
    { "/sensors/temp", "mqtt._.sensors.temp" },
    { "sensors/temp/", "mqtt.sensors.temp._" },
    { "sensors//temp", "mqtt.sensors._.temp" },
    { "spBv1.0/plant1", "mqtt.spBv1_2E0.plant1" },
    { "living_room/temp", "mqtt.living__room.temp" },
    { "a b/\xc3\xa9", "mqtt.a_20b._C3_A9" },
    { "$SYS/broker", "mqtt._24SYS.broker" },
    { "/", "mqtt._._" },
};

static void test_table_both_ways(void **state)
{
    char out[300], back[300], err[300];

    (void) state;
    for (size_t i = 0; i < sizeof s_rows / sizeof *s_rows; i++) {
        assert_int_equal(mqtt_topic_to_sluice("mqtt", s_rows[i][0], out, sizeof out,
                                              err, sizeof err), 0);
        assert_string_equal(out, s_rows[i][1]);
        assert_int_equal(mqtt_topic_from_sluice(out, 1, "", back, sizeof back, err,
                                                sizeof err), 0);
        assert_string_equal(back, s_rows[i][0]);
    }
}

static void test_filters(void **state)
{
    char out[300], err[300];

    (void) state;
    assert_int_equal(mqtt_filter_to_sluice("mqtt", "sensors/+/temp", out, sizeof out,
                                           err, sizeof err), 0);
    assert_string_equal(out, "mqtt.sensors.*.temp");
    assert_int_equal(mqtt_filter_to_sluice("mqtt", "sensors/#", out, sizeof out, err,
                                           sizeof err), 0);
    assert_string_equal(out, "mqtt.sensors.>");
    assert_int_equal(mqtt_filter_to_sluice("", "#", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, ">");
    /* A wildcard inside a level, '#' not last, a wildcard in a name. */
    assert_int_equal(mqtt_filter_to_sluice("mqtt", "a+/b", out, sizeof out, err,
                                           sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "whole level"));
    assert_string_equal(out, "");
    assert_int_equal(mqtt_filter_to_sluice("mqtt", "a/#/b", out, sizeof out, err,
                                           sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "last level"));
    assert_int_equal(mqtt_topic_to_sluice("mqtt", "a/+", out, sizeof out, err,
                                          sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "wildcards belong in filters"));
}

static void test_refusals(void **state)
{
    char out[300], big[400], err[300];

    (void) state;
    assert_int_equal(mqtt_topic_to_sluice("mqtt", "", out, sizeof out, err, sizeof err),
                     SL_EINVAL);
    assert_non_null(strstr(err, "empty MQTT topic"));
    assert_int_equal(mqtt_topic_to_sluice("bad prefix", "a", out, sizeof out, err,
                                          sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "prefix 'bad prefix'"));
    memset(big, 'a', 300);
    big[300] = '\0';
    assert_int_equal(mqtt_topic_to_sluice("mqtt", big, out, sizeof out, err, sizeof err),
                     SL_EINVAL);
    assert_non_null(strstr(err, "longer than 255"));
    /* Back: only what the encoder writes ('A' needs no escape; lower-case
     * hex; '#'; an escape cut short). */
    assert_int_equal(mqtt_topic_from_sluice("a._41", 0, "", out, sizeof out, err,
                                            sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "no escaped MQTT level"));
    assert_int_equal(mqtt_topic_from_sluice("a._2e", 0, "", out, sizeof out, err,
                                            sizeof err), SL_EINVAL);
    assert_int_equal(mqtt_topic_from_sluice("a._23", 0, "", out, sizeof out, err,
                                            sizeof err), SL_EINVAL);
    assert_int_equal(mqtt_topic_from_sluice("a.b_", 0, "", out, sizeof out, err,
                                            sizeof err), SL_EINVAL);
    assert_int_equal(mqtt_topic_from_sluice("a", 1, "", out, sizeof out, err,
                                            sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "no word left"));
    assert_int_equal(mqtt_topic_from_sluice("_", 0, "", out, sizeof out, err,
                                            sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "empty MQTT topic"));
}

static void test_out_prefix_and_strip(void **state)
{
    char out[300], err[300];

    (void) state;
    assert_int_equal(mqtt_topic_from_sluice("cmd.plant-1.valve_2E3.set", 1, "devices",
                                            out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "devices/plant-1/valve.3/set");
    assert_int_equal(mqtt_topic_from_sluice("cmd._.x", 1, "", out, sizeof out, err,
                                            sizeof err), 0);
    assert_string_equal(out, "/x");
    /* Too small an output buffer is an error, never a cut topic. */
    assert_int_equal(mqtt_topic_from_sluice("abcdef", 0, "", out, 4, err, sizeof err),
                     SL_EINVAL);
    assert_non_null(strstr(err, "longer than"));
    assert_string_equal(out, "");
}

static void test_overlap(void **state)
{
    (void) state;
    assert_true(mqtt_filters_overlap("o/#", "o/+"));
    assert_true(mqtt_filters_overlap("a/+/c", "a/b/+"));
    assert_true(mqtt_filters_overlap("a/#", "a"));         /* '#' matches the parent */
    assert_true(mqtt_filters_overlap("#", "x/y"));
    assert_true(mqtt_filters_overlap("a/b", "a/b"));
    assert_false(mqtt_filters_overlap("a/b", "a/c"));
    assert_false(mqtt_filters_overlap("a/+", "a/b/c"));
    assert_false(mqtt_filters_overlap("a/+", "a"));
    assert_false(mqtt_filters_overlap("q1/#", "q2/#"));
    assert_false(mqtt_filters_overlap("a/b/#", "a/c"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_both_ways),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_out_prefix_and_strip),
        cmocka_unit_test(test_overlap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
