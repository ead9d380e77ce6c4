/*  test_kmap - the SDK's (topic id, offset) -> token map (sl_kmap.c) against
 *  a plain reference array, with keys as a subscriber sees them: runs of
 *  consecutive offsets on a few topics, put in order and removed out of
 *  order, so the probe chains of neighbouring runs overlap and deletions
 *  shift entries back across them. Single thread.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include "sl_kmap.h"

enum { TOPICS = 5, SPAN = 5000 };

/* Reference: token + 1 for each (topic, offset), 0 when absent. */
static uint64_t s_ref[TOPICS][SPAN];

static uint32_t s_rand(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static void s_check_all(const sli_kmap_t *m)
{
    size_t n = 0;
    for (uint32_t t = 0; t < TOPICS; t++)
        for (uint64_t o = 0; o < SPAN; o++) {
            const sli_kmap_slot_t *s = sli_kmap_lookup(m, t * 7 + 1, o + 1000);
            if (s_ref[t][o] == 0) {
                assert_null(s);
                continue;
            }
            n++;
            assert_non_null(s);
            assert_int_equal(s->token + 1, s_ref[t][o]);
        }
    assert_int_equal(m->n, n);
}

static void test_against_reference(void **state)
{
    (void) state;
    sli_kmap_t m = { 0 };
    uint32_t seed = 99;
    uint64_t next[TOPICS] = { 0 };
    for (int step = 0; step < 200000; step++) {
        uint32_t r = s_rand(&seed);
        uint32_t t = r % TOPICS;
        if (r % 3 != 0 && next[t] < SPAN) {
            /* In order: the next offset of topic t. */
            uint64_t o = next[t]++;
            assert_int_equal(sli_kmap_put(&m, t * 7 + 1, o + 1000, step), 0);
            s_ref[t][o] = (uint64_t) step + 1;
        }
        else {
            /* Out of order: any offset of topic t given out so far. */
            if (next[t] == 0)
                continue;
            uint64_t o = s_rand(&seed) % next[t];
            bool had = s_ref[t][o] != 0;
            assert_int_equal(sli_kmap_remove(&m, t * 7 + 1, o + 1000), had);
            s_ref[t][o] = 0;
        }
        if (step % 20000 == 0)
            s_check_all(&m);
    }
    s_check_all(&m);
    /* Updating a present key keeps one entry with the newest token. */
    for (uint64_t o = 0; o < SPAN; o++)
        if (s_ref[0][o]) {
            assert_int_equal(sli_kmap_put(&m, 1, o + 1000, 424242), 0);
            s_ref[0][o] = 424243;
        }
    s_check_all(&m);
    sli_kmap_clear(&m);
    assert_null(sli_kmap_lookup(&m, 1, 1000));
    assert_int_equal(m.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
