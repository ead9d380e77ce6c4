/*  test_dlq - unit tests of sld_dlq (removed dead letters) against a real
 *  store in a temp dir: a mark counts only once its transaction commits
 *  and is forgotten when it aborts; removing one twice is "already"; the
 *  marks load again after a reopen; retention deletes a mark with its
 *  message, so the count never includes a trimmed one, and `--check`
 *  finds the table clean.  */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "sld_dlq.h"
#include "sld_store.h"

typedef struct {
    char dir[64];
    char path[96];
    sld_store_options_t opts;
    sld_store_t *store;
    sld_dlq_t *dlq;
    uint32_t id;
} fixture_t;

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove(path);
}

/* Ten messages on _dlq.w, stored at 100 s + offset seconds. */
static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    sld_txn_t *txn;
    assert_non_null(f);
    strcpy(f->dir, "/tmp/sld_dlq_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/store", f->dir);
    sld_store_options_init(&f->opts);
    f->opts.dir = f->path;
    f->opts.sync = false;
    assert_int_equal(sld_store_open(&f->opts, &f->store), 0);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_ensure(txn, "_dlq.w", &f->id), 0);
    for (uint64_t i = 0; i < 10; i++) {
        uint64_t off;
        assert_int_equal(sld_store_append(txn, f->id, (100 + i) * 1000000, "x", 1, &off), 0);
    }
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_dlq_new(f->store, &f->dlq), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    sld_dlq_destroy(&f->dlq);
    assert_null(f->dlq);
    sld_store_destroy(&f->store);
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Remove OFFSETS in one transaction, committed when COMMIT. */
static void s_remove(fixture_t *f, const uint64_t *offsets, size_t n, bool commit)
{
    sld_txn_t *txn;
    bool already;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sld_dlq_remove(f->dlq, txn, f->id, offsets[i], &already), 0);
        assert_false(already);
    }
    if (commit)
        assert_int_equal(sld_txn_commit(&txn), 0);
    else
        sld_txn_abort(&txn);
    sld_dlq_committed(f->dlq, commit);
}

static void test_names(void **state)
{
    (void) state;
    assert_true(sld_dlq_topic("_dlq.worker"));
    assert_true(sld_dlq_topic("_dlq.schema.shop.orders"));
    assert_true(sld_dlq_topic("_dlq.routes"));
    assert_false(sld_dlq_topic("_dlq."));
    assert_false(sld_dlq_topic("_dlqx.a"));
    assert_false(sld_dlq_topic("shop.orders"));
    assert_false(sld_dlq_topic(NULL));
}

static void test_commit_abort_reopen(void **state)
{
    fixture_t *f = *state;
    const uint64_t aborted[] = { 1 }, kept[] = { 7, 2 };
    s_remove(f, aborted, 1, false);
    assert_false(sld_dlq_removed(f->dlq, f->id, 1));
    assert_int_equal(sld_dlq_count(f->dlq, f->id, 0), 0);
    s_remove(f, kept, 2, true);
    assert_true(sld_dlq_removed(f->dlq, f->id, 2));
    assert_true(sld_dlq_removed(f->dlq, f->id, 7));
    assert_false(sld_dlq_removed(f->dlq, f->id, 1));
    assert_int_equal(sld_dlq_count(f->dlq, f->id, 0), 2);
    assert_int_equal(sld_dlq_count(f->dlq, f->id, 3), 1);
    assert_int_equal(sld_dlq_count(f->dlq, f->id + 1, 0), 0);

    /* Twice: already, in the same transaction or after its commit. */
    sld_txn_t *txn;
    bool already = false;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_dlq_remove(f->dlq, txn, f->id, 7, &already), 0);
    assert_true(already);
    assert_int_equal(sld_dlq_remove(f->dlq, txn, f->id, 4, &already), 0);
    assert_false(already);
    assert_int_equal(sld_dlq_remove(f->dlq, txn, f->id, 4, &already), 0);
    assert_true(already);
    assert_int_equal(sld_txn_commit(&txn), 0);
    sld_dlq_committed(f->dlq, true);
    assert_int_equal(sld_dlq_count(f->dlq, f->id, 0), 3);

    /* The marks are in the store: a new instance loads them. */
    sld_dlq_destroy(&f->dlq);
    sld_store_destroy(&f->store);
    assert_int_equal(sld_store_open(&f->opts, &f->store), 0);
    assert_int_equal(sld_dlq_new(f->store, &f->dlq), 0);
    assert_int_equal(sld_dlq_count(f->dlq, f->id, 0), 3);
    assert_true(sld_dlq_removed(f->dlq, f->id, 4));
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

static void test_retention_drops_marks(void **state)
{
    fixture_t *f = *state;
    const uint64_t offs[] = { 1, 3, 8 };
    sld_txn_t *txn;
    size_t trimmed = 0;
    s_remove(f, offs, 3, true);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_set_retention(txn, f->id, 5000, 0), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    /* At 110 s, max age 5 s: offsets 0..5 go, with the marks of 1 and 3. */
    assert_int_equal(sld_store_trim(f->store, 110 * 1000000ull, 0, 1000, &trimmed), 0);
    assert_int_equal(trimmed, 6);
    const sld_topic_info_t *info = sld_store_topic_by_id(f->store, f->id);
    assert_int_equal(info->first_offset, 6);
    assert_int_equal(sld_dlq_count(f->dlq, f->id, info->first_offset), 1);
    /* The next commit drops them from memory; a reopen never sees them. */
    sld_dlq_committed(f->dlq, true);
    assert_int_equal(sld_dlq_count(f->dlq, f->id, 0), 1);
    sld_dlq_destroy(&f->dlq);
    assert_int_equal(sld_dlq_new(f->store, &f->dlq), 0);
    assert_int_equal(sld_dlq_count(f->dlq, f->id, 0), 1);
    assert_true(sld_dlq_removed(f->dlq, f->id, 8));
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_commit_abort_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_drops_marks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
