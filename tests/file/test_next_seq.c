/*  test_next_seq - sl_publish_next_seq (adapters/sdk/sl_pub.c) against a
 *  real sluiced: a client with a producer_id_file learns where an earlier
 *  client of the same file stopped, across a broker SIGKILL and restart
 *  too, and its next publish gets exactly that sequence; a client without
 *  a file starts at 1.  */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "harness.h"
#include "sluice.h"

static sl_client_t *s_client(h_broker_t *b, const char *id_file)
{
    sl_options_t o;
    sl_client_t *c = NULL;
    sl_options_init(&o);
    o.endpoint = b->endpoint;
    o.producer_id_file = id_file;
    o.connect_timeout_ms = 10000;
    assert_int_equal(sl_client_new(&o, &c), 0);
    return c;
}

static void s_publish(sl_client_t *c, int n, uint64_t first_seq)
{
    for (int i = 0; i < n; i++) {
        sl_message_t m = { .topic = "seq.t", .payload = "x", .len = 1 };
        sl_confirm_t conf;
        assert_int_equal(sl_publish_sync(c, &m, 10000, &conf), 0);
        assert_int_equal(conf.seq, first_seq + (uint64_t) i);
        assert_false(conf.duplicate);
    }
}

static void test_next_seq(void **state)
{
    (void) state;
    h_broker_t b;
    char id_file[300];
    uint64_t next = 0;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    snprintf(id_file, sizeof id_file, "%s/producer.id", b.dir);

    sl_client_t *c = s_client(&b, id_file);
    assert_int_equal(sl_publish_next_seq(c, &next), 0);
    assert_int_equal(next, 1);
    s_publish(c, 5, 1);
    assert_int_equal(sl_publish_next_seq(c, &next), 0);
    assert_int_equal(next, 6);
    sl_client_destroy(&c);

    /* The same id in a new client: the broker tells it 5 were stored. */
    c = s_client(&b, id_file);
    assert_int_equal(sl_publish_next_seq(c, &next), 0);
    assert_int_equal(next, 6);
    s_publish(c, 2, 6);
    sl_client_destroy(&c);

    /* And after the broker was killed and started again. */
    assert_int_equal(h_broker_stop(&b, SIGKILL), 128 + SIGKILL);
    assert_int_equal(h_broker_start(&b), 0);
    c = s_client(&b, id_file);
    assert_int_equal(sl_publish_next_seq(c, &next), 0);
    assert_int_equal(next, 8);
    sl_client_destroy(&c);

    /* A random id starts at 1, without waiting for anything. */
    c = s_client(&b, NULL);
    assert_int_equal(sl_publish_next_seq(c, &next), 0);
    assert_int_equal(next, 1);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_seq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
