/*  test_trace - unit tests of sld_trace (the routing trace index) against
 *  a real store in a temp dir: a record reads back as written (steps,
 *  outcomes, errors, legs) and survives a reopen and `--check`; a long
 *  error is shortened on a character boundary; a message without a
 *  record is SL_ENOTFOUND; retention deletes the records of the offsets
 *  it trims and keeps the others; a backfilled step keeps its version.  */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "sld_store.h"
#include "sld_trace.h"

typedef struct {
    char dir[64];
    char path[96];
    sld_store_options_t opts;
    sld_store_t *store;
    uint32_t a, b;
} fixture_t;

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove(path);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    sld_txn_t *txn;
    assert_non_null(f);
    strcpy(f->dir, "/tmp/sld_trace_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/store", f->dir);
    sld_store_options_init(&f->opts);
    f->opts.dir = f->path;
    f->opts.sync = false;
    assert_int_equal(sld_store_open(&f->opts, &f->store), 0);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_ensure(txn, "a", &f->a), 0);
    assert_int_equal(sld_store_topic_ensure(txn, "b", &f->b), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    sld_store_destroy(&f->store);
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Store COUNT messages on A at times T0, T0+1s, ..., each with a record:
 * route 0 skipped, route 2 delivered to b@(10 * i) and b@(10 * i + 1). */
static void s_fill(fixture_t *f, int count, uint64_t t0)
{
    sld_txn_t *txn;
    sld_trace_t t;
    memset(&t, 0, sizeof t);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    for (int i = 0; i < count; i++) {
        uint64_t off;
        assert_int_equal(sld_store_append(txn, f->a, t0 + (uint64_t) i * 1000000, "m", 1,
                                          &off), 0);
        sld_trace_reset(&t, 3);
        assert_int_equal(sld_trace_step(&t, 0, SLD_TRACE_SKIPPED, NULL), 0);
        assert_int_equal(sld_trace_step(&t, 2, SLD_TRACE_DELIVER, NULL), 0);
        assert_int_equal(sld_trace_leg(&t, f->b, 10 * off), 0);
        assert_int_equal(sld_trace_leg(&t, f->b, 10 * off + 1), 0);
        assert_int_equal(sld_trace_put(txn, f->a, off, &t), 0);
    }
    assert_int_equal(sld_txn_commit(&txn), 0);
    sld_trace_free(&t);
}

static void test_round_trip(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    sld_trace_t t, r;
    memset(&t, 0, sizeof t);
    memset(&r, 0, sizeof r);
    char long_error[400];
    /* 'é' is two bytes: 200 bytes of them end exactly on a boundary at
     * 200, one 'x' first moves the cut inside a character. */
    long_error[0] = 'x';
    for (size_t i = 1; i + 2 < sizeof long_error; i += 2)
        memcpy(long_error + i, "\xc3\xa9", 2);
    long_error[sizeof long_error - 1] = 0;

    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    sld_trace_reset(&t, 300);
    assert_int_equal(sld_trace_step(&t, 0, SLD_TRACE_SKIPPED, "ignored"), 0);
    assert_int_equal(sld_trace_step(&t, 7, SLD_TRACE_FAILED, long_error), 0);
    assert_int_equal(sld_trace_leg(&t, 99, 1ull << 40), 0);
    assert_int_equal(sld_trace_step(&t, 9, SLD_TRACE_DELIVER, NULL), 0);
    assert_int_equal(sld_trace_leg(&t, f->b, 5), 0);
    sld_trace_fail(&t, "mapping m: its output is invalid");
    assert_int_equal(sld_trace_step(&t, 10000, SLD_TRACE_DROP, NULL), 0);
    assert_int_equal(sld_trace_put(txn, f->a, 42, &t), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);

    sld_store_destroy(&f->store);
    assert_int_equal(sld_store_open(&f->opts, &f->store), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_trace_get(txn, f->a, 42, &r), 0);
    assert_int_equal(r.version, 300);
    assert_int_equal(r.nsteps, 4);
    assert_int_equal(r.steps[0].route, 0);
    assert_int_equal(r.steps[0].outcome, SLD_TRACE_SKIPPED);
    assert_string_equal(r.steps[0].error, "");
    assert_int_equal(r.steps[1].route, 7);
    assert_int_equal(r.steps[1].outcome, SLD_TRACE_FAILED);
    assert_int_equal(strlen(r.steps[1].error), 199);    /* 'x' + 99 whole 'é' */
    assert_memory_equal(r.steps[1].error, long_error, 199);
    assert_int_equal(r.steps[1].nlegs, 1);
    assert_int_equal(r.steps[1].legs[0].topic, 99);
    assert_int_equal(r.steps[1].legs[0].offset, 1ull << 40);
    assert_int_equal(r.steps[2].outcome, SLD_TRACE_FAILED);
    assert_string_equal(r.steps[2].error, "mapping m: its output is invalid");
    assert_int_equal(r.steps[2].legs[0].topic, f->b);
    assert_int_equal(r.steps[3].route, 10000);
    assert_int_equal(r.steps[3].outcome, SLD_TRACE_DROP);
    assert_int_equal(r.steps[3].nlegs, 0);
    assert_string_equal(sld_trace_outcome_name(SLD_TRACE_DROP), "fired");
    assert_string_equal(sld_trace_action_name(SLD_TRACE_DROP), "drop");
    /* Another offset, another topic: no record. */
    assert_int_equal(sld_trace_get(txn, f->a, 43, &r), SL_ENOTFOUND);
    assert_int_equal(sld_trace_get(txn, f->b, 42, &r), SL_ENOTFOUND);
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
    sld_trace_free(&t);
    sld_trace_free(&r);
}

/* A step `routes backfill` added keeps the version its route index is
 * in; a record without one keeps format 1, byte for byte. */
static void test_backfilled_step(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    sld_trace_t t, r;
    const void *val;
    size_t vlen;
    uint8_t key[12] = { 0 };
    memset(&t, 0, sizeof t);
    memset(&r, 0, sizeof r);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    sld_trace_reset(&t, 2);
    assert_int_equal(sld_trace_step(&t, 0, SLD_TRACE_DELIVER, NULL), 0);
    assert_int_equal(sld_trace_leg(&t, f->b, 1), 0);
    assert_int_equal(sld_trace_put(txn, f->a, 7, &t), 0);
    assert_int_equal(sld_trace_step(&t, 3, SLD_TRACE_FAILED, "route 'x': where: boom"), 0);
    sld_trace_backfilled(&t, 5);
    assert_int_equal(sld_trace_leg(&t, f->b, 9), 0);
    assert_int_equal(sld_trace_put(txn, f->a, 8, &t), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);

    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    key[3] = (uint8_t) f->a;
    key[11] = 7;
    assert_int_equal(sld_table_get(txn, SLD_TABLE_TRACE, key, sizeof key, &val, &vlen), 0);
    assert_int_equal(((const uint8_t *) val)[0], 1);
    assert_int_equal(sld_trace_get(txn, f->a, 7, &r), 0);
    assert_int_equal(r.nsteps, 1);
    assert_int_equal(r.steps[0].version, 0);
    assert_int_equal(sld_trace_get(txn, f->a, 8, &r), 0);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.nsteps, 2);
    assert_int_equal(r.steps[0].version, 0);
    assert_int_equal(r.steps[0].outcome, SLD_TRACE_DELIVER);
    assert_int_equal(r.steps[1].route, 3);
    assert_int_equal(r.steps[1].version, 5);
    assert_int_equal(r.steps[1].outcome, SLD_TRACE_FAILED);
    assert_string_equal(r.steps[1].error, "route 'x': where: boom");
    assert_int_equal(r.steps[1].nlegs, 1);
    assert_int_equal(r.steps[1].legs[0].offset, 9);
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
    sld_trace_free(&t);
    sld_trace_free(&r);
}

static void test_retention_removes_records(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    size_t trimmed = 0;
    const uint64_t sec = 1000000;
    sld_trace_t r;
    memset(&r, 0, sizeof r);
    s_fill(f, 10, 100 * sec);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_set_retention(txn, f->a, 5000, 0), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    /* At 110 s, max age 5 s: offsets 0..5 go, with their records. */
    assert_int_equal(sld_store_trim(f->store, 110 * sec, 0, 1000, &trimmed), 0);
    assert_int_equal(trimmed, 6);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    for (uint64_t off = 0; off < 10; off++) {
        int rc = sld_trace_get(txn, f->a, off, &r);
        if (off < 6)
            assert_int_equal(rc, SL_ENOTFOUND);
        else {
            assert_int_equal(rc, 0);
            assert_int_equal(r.version, 3);
            assert_int_equal(r.nsteps, 2);
            assert_int_equal(r.steps[1].nlegs, 2);
            assert_int_equal(r.steps[1].legs[1].offset, 10 * off + 1);
        }
    }
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
    sld_trace_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backfilled_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_removes_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
