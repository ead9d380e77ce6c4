/*  test_auth - sld_auth's grants as permission checks see them: the consume
 *  permission (its patterns match subscription names, not topics), who may
 *  use a durable subscription (owner, consume grant on its name, admin on
 *  its pattern), and that the new bit survives a reload from the store.
 *  No ZAP socket, no broker: a store in a temp dir. Single thread.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "sld_auth.h"
#include "sld_store.h"
#include "sluice_codes.h"

typedef struct {
    char dir[64];
    sld_store_options_t opts;
    sld_store_t *store;
    sld_auth_t *auth;
} s_fixture_t;

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove(path);
}

static void s_load(s_fixture_t *f)
{
    sld_auth_destroy(&f->auth);
    assert_int_equal(sld_auth_new(f->store, false, &f->auth), 0);
}

static int setup(void **state)
{
    s_fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/sld_auth_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    sld_store_options_init(&f->opts);
    f->opts.dir = f->dir;
    f->opts.sync = false;
    assert_int_equal(sld_store_open(&f->opts, &f->store), 0);
    s_load(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    s_fixture_t *f = *state;
    sld_auth_destroy(&f->auth);
    sld_store_destroy(&f->store);
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Register NAME (a key made of BYTE) and give it PERMS on PATTERN, both
 * committed. */
static void s_ident(s_fixture_t *f, const char *name, uint8_t byte, uint32_t perms,
                    const char *pattern)
{
    uint8_t key[32];
    const char *why = NULL;
    sld_txn_t *txn = NULL;
    memset(key, byte, sizeof key);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_auth_key_add(f->auth, txn, name, key, &why), 0);
    if (perms) {
        Sluice__Grant g = SLUICE__GRANT__INIT;
        Sluice__Grant *gp = &g;
        g.perms = perms;
        g.pattern = (char *) pattern;
        assert_int_equal(sld_auth_grant(f->auth, txn, name, &gp, 1, false, &why), 0);
    }
    assert_int_equal(sld_txn_commit(&txn), 0);
    sld_auth_committed(f->auth, true);
}

/* Change NAME's grant of PERMS on PATTERN (REVOKE: take it away): the rc. */
static int s_grant(s_fixture_t *f, const char *name, uint32_t perms, const char *pattern,
                   bool revoke)
{
    const char *why = NULL;
    sld_txn_t *txn = NULL;
    Sluice__Grant g = SLUICE__GRANT__INIT;
    Sluice__Grant *gp = &g;
    g.perms = perms;
    g.pattern = (char *) pattern;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    int rc = sld_auth_grant(f->auth, txn, name, &gp, 1, revoke, &why);
    if (rc == 0)
        assert_int_equal(sld_txn_commit(&txn), 0);
    else {
        assert_non_null(why);
        sld_txn_abort(&txn);
    }
    sld_auth_committed(f->auth, rc == 0);
    return rc;
}

/* Owner, consume grant on the name, admin on the pattern: nobody else. */
static void test_may_use_sub(void **state)
{
    s_fixture_t *f = *state;
    s_ident(f, "alice", 1, SLD_PERM_SUBSCRIBE, "shop.>");
    s_ident(f, "bob", 2, SLD_PERM_SUBSCRIBE, "shop.>");
    s_ident(f, "carol", 3, SLD_PERM_ADMIN, "shop.>");
    sld_ident_t *alice = sld_auth_lookup(f->auth, "alice");
    sld_ident_t *bob = sld_auth_lookup(f->auth, "bob");
    sld_ident_t *carol = sld_auth_lookup(f->auth, "carol");
    assert_non_null(alice);
    assert_non_null(bob);
    assert_non_null(carol);

    assert_true(sld_ident_may_use_sub(alice, "alice.orders", "shop.orders", "alice"));
    /* A subscribe grant on the topics is not the subscription. */
    assert_false(sld_ident_may_use_sub(bob, "alice.orders", "shop.orders", "alice"));
    /* Nor does "no owner" make it anyone's: claiming is the server's call. */
    assert_false(sld_ident_may_use_sub(bob, "legacy", "shop.orders", ""));
    /* Admin on the pattern may (it may remove it anyway); on another not. */
    assert_true(sld_ident_may_use_sub(carol, "alice.orders", "shop.orders", "alice"));
    assert_true(sld_ident_may_use_sub(carol, "legacy", "shop.>", ""));
    assert_false(sld_ident_may_use_sub(carol, "alice.hr", "hr.salaries", "alice"));

    /* Consume matches names, not topics. */
    assert_int_equal(s_grant(f, "bob", SLD_PERM_CONSUME, "alice.>", false), 0);
    assert_true(sld_ident_may_use_sub(bob, "alice.orders", "shop.orders", "alice"));
    assert_true(sld_ident_may_use_sub(bob, "alice.hr", "hr.salaries", "alice"));
    assert_false(sld_ident_may_use_sub(bob, "dave.orders", "shop.orders", "dave"));
    assert_false(sld_ident_may_use_sub(bob, "alice", "shop.orders", "alice"));
    assert_false(sld_ident_allows(bob, SLD_PERM_SUBSCRIBE, "alice.orders"));
    assert_false(sld_ident_allows(bob, SLD_PERM_TOPIC, "alice.orders"));
    assert_true(sld_ident_allows(bob, SLD_PERM_CONSUME, "alice.orders"));

    /* Revoked at once; and a revoked identity may use nothing, its own
     * subscriptions included. */
    assert_int_equal(s_grant(f, "bob", SLD_PERM_CONSUME, "alice.>", true), 0);
    assert_false(sld_ident_may_use_sub(bob, "alice.orders", "shop.orders", "alice"));
    const char *why = NULL;
    sld_txn_t *txn = NULL;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_auth_key_revoke(f->auth, txn, "alice", &why), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    sld_auth_committed(f->auth, true);
    assert_false(sld_ident_may_use_sub(alice, "alice.orders", "shop.orders", "alice"));
}

/* The consume bit is a grant like the others: validated, stored, loaded. */
static void test_consume_grant_stored(void **state)
{
    s_fixture_t *f = *state;
    s_ident(f, "bob", 2, SLD_PERM_SUBSCRIBE | SLD_PERM_CONSUME, "alice.>");
    assert_int_equal(s_grant(f, "bob", 16, "x", false), SL_EINVAL);
    assert_int_equal(s_grant(f, "bob", SLD_PERM_CONSUME, "alice..x", false), SL_EINVAL);
    s_load(f);
    sld_ident_t *bob = sld_auth_lookup(f->auth, "bob");
    assert_non_null(bob);
    assert_true(sld_ident_allows(bob, SLD_PERM_CONSUME, "alice.orders"));
    Sluice__Identity **ids = NULL;
    size_t n = 0;
    assert_int_equal(sld_auth_list(f->auth, &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0]->n_grants, 1);
    assert_int_equal(ids[0]->grants[0]->perms, SLD_PERM_SUBSCRIBE | SLD_PERM_CONSUME);
    sld_auth_list_free(&ids, n);
}

/* The local admin keeps its grants (no consume bit added to an existing
 * store) and may use every subscription to client topics through admin
 * on '>'; plain-text sessions may use everything. */
static void test_admin_and_plaintext(void **state)
{
    s_fixture_t *f = *state;
    uint8_t key[32];
    bool changed = false;
    sld_txn_t *txn = NULL;
    memset(key, 9, sizeof key);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_auth_ensure_admin(f->auth, txn, key, &changed), 0);
    assert_true(changed);
    assert_int_equal(sld_txn_commit(&txn), 0);
    sld_auth_committed(f->auth, true);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_auth_ensure_admin(f->auth, txn, key, &changed), 0);
    assert_false(changed);
    sld_txn_abort(&txn);
    sld_auth_committed(f->auth, false);
    sld_ident_t *admin = sld_auth_lookup(f->auth, SLD_AUTH_ADMIN);
    assert_non_null(admin);
    assert_false(sld_ident_allows(admin, SLD_PERM_CONSUME, "alice.orders"));
    assert_true(sld_ident_may_use_sub(admin, "alice.orders", "shop.orders", "alice"));
    assert_true(sld_ident_may_use_sub(admin, "audit-reader", "_audit", "alice"));

    sld_auth_t *plain = NULL;
    assert_int_equal(sld_auth_new(f->store, true, &plain), 0);
    sld_ident_t *p = sld_auth_plaintext(plain);
    assert_non_null(p);
    assert_true(sld_ident_may_use_sub(p, "alice.orders", "shop.orders", "alice"));
    assert_true(sld_ident_may_use_sub(p, "legacy", ">", ""));
    sld_auth_destroy(&plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_may_use_sub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consume_grant_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_and_plaintext, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
