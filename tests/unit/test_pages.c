/*  test_pages - sld_pages on a file LMDB leaves shorter than its last
 *  page: pages a commit took and gave back in the same transaction are
 *  counted in the last page but never written. That is no damage when
 *  every page past the end is on the free list (a broker that refused to
 *  restart after such a commit was seen); a page past the end that is in
 *  use is (the file was cut short).  */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sld_pages.h"
#include "sluice_codes.h"

static char g_dir[64], g_file[96];
static int g_said;

static void s_problem(void *arg, const char *text)
{
    (void) arg;
    g_said++;
    fprintf(stderr, "said: %s\n", text);
}

static int s_setup(void **state)
{
    (void) state;
    snprintf(g_dir, sizeof g_dir, "/tmp/test_pages.XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    snprintf(g_file, sizeof g_file, "%s/data.mdb", g_dir);
    return 0;
}

static int s_teardown(void **state)
{
    (void) state;
    char path[128];
    snprintf(path, sizeof path, "%s/lock.mdb", g_dir);
    unlink(path);
    unlink(g_file);
    rmdir(g_dir);
    return 0;
}

/* Put or delete records KEY0 .. KEY0 + N - 1 of LEN bytes in TXN. */
static void s_records(MDB_txn *txn, MDB_dbi dbi, int key0, int n, size_t len, bool del)
{
    static char val[65536];
    char key[16];
    for (int i = key0; i < key0 + n; i++) {
        snprintf(key, sizeof key, "k%06d", i);
        MDB_val k = { strlen(key), key }, v = { len, val };
        assert_int_equal(del ? mdb_del(txn, dbi, &k, NULL) : mdb_put(txn, dbi, &k, &v, 0), 0);
    }
}

/* An environment whose last commit took pages from the free list, then
 * put large values (overflow pages from the end of the file) and deleted
 * them again: LMDB gives such pages back to its list of reusable pages
 * without writing them, so its last page lies past the end of data.mdb.
 * Returns the file size. */
static off_t s_make(void)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 64u << 20), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 2), 0);
    assert_int_equal(mdb_env_open(env, g_dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    /* A named database, as the broker's: the main one lists them. */
    assert_int_equal(mdb_dbi_open(txn, "records", MDB_CREATE, &dbi), 0);
    s_records(txn, dbi, 0, 500, 200, false);
    assert_int_equal(mdb_txn_commit(txn), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    s_records(txn, dbi, 0, 480, 200, true);             /* free pages */
    assert_int_equal(mdb_txn_commit(txn), 0);
    for (int round = 0; round < 2; round++) {           /* now reusable */
        assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
        s_records(txn, dbi, 1000 + round, 1, 200, false);
        assert_int_equal(mdb_txn_commit(txn), 0);
    }
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    s_records(txn, dbi, 2000, 1, 200, false);           /* loads the free list */
    s_records(txn, dbi, 3000, 8, 65536, false);
    s_records(txn, dbi, 3000, 8, 0, true);
    assert_int_equal(mdb_txn_commit(txn), 0);
    MDB_envinfo info;
    MDB_stat st;
    assert_int_equal(mdb_env_info(env, &info), 0);
    assert_int_equal(mdb_env_stat(env, &st), 0);
    mdb_env_close(env);
    struct stat fst;
    assert_int_equal(stat(g_file, &fst), 0);
    /* The state under test: LMDB's last page is past the file's end. */
    assert_true(((off_t) info.me_last_pgno + 1) * st.ms_psize > fst.st_size);
    return fst.st_size;
}

static void test_freed_tail_is_no_damage(void **state)
{
    (void) state;
    sld_pages_t *p = NULL;
    s_make();
    g_said = 0;
    assert_int_equal(sld_pages_open(g_file, 0, s_problem, NULL, &p), 0);
    assert_int_equal(g_said, 0);
    /* The free list walks again cleanly afterwards (sluiced --check). */
    assert_int_equal(sld_pages_walk_free(p), 0);
    sld_pages_destroy(&p);
}

static void test_used_page_past_end_is_damage(void **state)
{
    (void) state;
    sld_pages_t *p = NULL;
    off_t size = s_make();
    /* Keep the meta pages and one more: the pages in use past the new
     * end are not on the free list. */
    assert_true(size > 3 * 4096);
    assert_int_equal(truncate(g_file, 3 * 4096), 0);
    g_said = 0;
    assert_int_equal(sld_pages_open(g_file, 0, s_problem, NULL, &p), SL_ESTORE);
    assert_true(g_said > 0);
    sld_pages_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_freed_tail_is_no_damage, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_used_page_past_end_is_damage, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
