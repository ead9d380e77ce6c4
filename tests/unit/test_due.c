/*  test_due - sld_due hands out due redeliveries lowest (topic, offset)
 *  first, whatever order they became due in: the orders issue 15 saw
 *  (0,1,6,7,2,3,4,5 after one nack of eight; 0,9,8,...,1) cannot happen.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include "sld_due.h"

/* Take everything out of DUE into OUT (topic * 1000 + offset). */
static size_t s_drain(sld_due_t *due, uint64_t *out)
{
    size_t n = 0;
    while (sld_due_size(due)) {
        sld_due_key_t k = sld_due_first(due);
        out[n++] = (uint64_t) k.topic_id * 1000 + k.offset;
    }
    return n;
}

static void test_any_order_comes_out_sorted(void **state)
{
    (void) state;
    /* The orders a heap of equal deadlines and a FIFO ring produced. */
    static const uint64_t seen[][10] = {
        { 0, 1, 6, 7, 2, 3, 4, 5 },
        { 0, 5, 6, 7, 3, 4, 1, 2 },
        { 0, 9, 8, 7, 6, 5, 4, 3, 2, 1 },
    };
    static const size_t lens[] = { 8, 8, 10 };
    for (size_t t = 0; t < 3; t++) {
        sld_due_t due = { 0 };
        for (size_t i = 0; i < lens[t]; i++)
            assert_int_equal(sld_due_add(&due, 1, seen[t][i]), 0);
        uint64_t out[16];
        assert_int_equal(s_drain(&due, out), lens[t]);
        for (size_t i = 0; i < lens[t]; i++)
            assert_int_equal(out[i], 1000 + i);
        sld_due_clear(&due);
    }
}

static void test_random_and_topics(void **state)
{
    (void) state;
    sld_due_t due = { 0 };
    enum { N = 5000 };
    uint64_t *out = malloc(N * sizeof *out);
    srand(15);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(sld_due_add(&due, (uint32_t) (rand() % 3), (uint64_t) (rand() % 900)), 0);
    assert_int_equal(sld_due_size(&due), N);
    assert_int_equal(s_drain(&due, out), N);
    for (size_t i = 1; i < N; i++)
        assert_true(out[i - 1] <= out[i]);
    free(out);
    sld_due_clear(&due);
}

/* A key taken and given back (no credit, no room) is first again; a
 * short credit takes the lowest ones, never skipping one. */
static void test_give_back_and_short_credit(void **state)
{
    (void) state;
    sld_due_t due = { 0 };
    assert_int_equal(sld_due_add(&due, 7, 2), 0);
    assert_int_equal(sld_due_add(&due, 7, 0), 0);
    assert_int_equal(sld_due_add(&due, 7, 1), 0);
    sld_due_key_t k = sld_due_first(&due);
    assert_int_equal(k.offset, 0);
    assert_int_equal(sld_due_add(&due, k.topic_id, k.offset), 0);
    assert_int_equal(sld_due_first(&due).offset, 0);    /* credit 2 */
    assert_int_equal(sld_due_first(&due).offset, 1);
    assert_int_equal(sld_due_size(&due), 1);
    /* A later expiry below what is left goes first. */
    assert_int_equal(sld_due_add(&due, 7, 0), 0);
    assert_int_equal(sld_due_first(&due).offset, 0);
    assert_int_equal(sld_due_first(&due).offset, 2);
    assert_int_equal(sld_due_size(&due), 0);
    sld_due_clear(&due);
    sld_due_clear(&due);        /* clearing twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any_order_comes_out_sorted),
        cmocka_unit_test(test_random_and_topics),
        cmocka_unit_test(test_give_back_and_short_credit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
