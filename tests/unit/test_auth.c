/*  test_auth - sld_auth's grants as permission checks see them: topics
 *  and patterns a grant allows and covers (exact, '*', '>', reserved
 *  topics), the consume permission (its patterns match subscription names,
 *  not topics), who may use a durable subscription (owner, consume grant
 *  on its name, admin on its pattern), revocation (what a revoked identity
 *  may still do, that an aborted revoke changes nothing) and that all of it
 *  survives a reload from the store.
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
    char why[160] = "";
    sld_txn_t *txn = NULL;
    memset(key, byte, sizeof key);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_auth_key_add(f->auth, txn, name, key, why, sizeof why), 0);
    if (perms) {
        Sluice__Grant g = SLUICE__GRANT__INIT;
        Sluice__Grant *gp = &g;
        g.perms = perms;
        g.pattern = (char *) pattern;
        assert_int_equal(sld_auth_grant(f->auth, txn, name, &gp, 1, false, why, sizeof why), 0);
    }
    assert_int_equal(sld_txn_commit(&txn), 0);
    sld_auth_committed(f->auth, true);
}

/* Change NAME's grant of PERMS on PATTERN (REVOKE: take it away): the rc. */
static int s_grant(s_fixture_t *f, const char *name, uint32_t perms, const char *pattern,
                   bool revoke)
{
    char why[160] = "";
    sld_txn_t *txn = NULL;
    Sluice__Grant g = SLUICE__GRANT__INIT;
    Sluice__Grant *gp = &g;
    g.perms = perms;
    g.pattern = (char *) pattern;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    int rc = sld_auth_grant(f->auth, txn, name, &gp, 1, revoke, why, sizeof why);
    if (rc == 0)
        assert_int_equal(sld_txn_commit(&txn), 0);
    else {
        assert_true(why[0] != '\0');
        sld_txn_abort(&txn);
    }
    sld_auth_committed(f->auth, rc == 0);
    return rc;
}

/* Revoke NAME in one transaction, committed when COMMIT, else aborted.
 * Returns the revoke's rc; *NEWLY gets what sld_auth_committed answered. */
static int s_revoke(s_fixture_t *f, const char *name, bool commit, bool *newly)
{
    char why[160] = "";
    sld_txn_t *txn = NULL;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    int rc = sld_auth_key_revoke(f->auth, txn, name, why, sizeof why);
    if (rc)
        assert_true(why[0] != '\0');
    if (rc == 0 && commit)
        assert_int_equal(sld_txn_commit(&txn), 0);
    else
        sld_txn_abort(&txn);
    *newly = sld_auth_committed(f->auth, rc == 0 && commit);
    return rc;
}

/* A grant on an exact topic allows that topic only; '*' is one word, '>'
 * one or more; each permission bit is its own; a wildcard first word never
 * reaches the broker's reserved ('_') topics. */
static void test_grants_allow(void **state)
{
    s_fixture_t *f = *state;
    s_ident(f, "alice", 1, SLD_PERM_PUBLISH, "shop.orders");
    assert_int_equal(s_grant(f, "alice", SLD_PERM_SUBSCRIBE, "shop.*", false), 0);
    assert_int_equal(s_grant(f, "alice", SLD_PERM_ADMIN, "ops.>", false), 0);
    s_ident(f, "bob", 2, SLD_PERM_SUBSCRIBE, ">");
    s_ident(f, "nobody", 3, 0, NULL);
    sld_ident_t *alice = sld_auth_lookup(f->auth, "alice");
    sld_ident_t *bob = sld_auth_lookup(f->auth, "bob");
    sld_ident_t *nobody = sld_auth_lookup(f->auth, "nobody");
    assert_non_null(alice);
    assert_non_null(bob);
    assert_non_null(nobody);
    assert_null(sld_auth_lookup(f->auth, "carol"));
    assert_string_equal(sld_ident_name(alice), "alice");
    assert_false(sld_ident_revoked(alice));

    /* Exact. */
    assert_true(sld_ident_allows(alice, SLD_PERM_PUBLISH, "shop.orders"));
    assert_false(sld_ident_allows(alice, SLD_PERM_PUBLISH, "shop.returns"));
    assert_false(sld_ident_allows(alice, SLD_PERM_PUBLISH, "shop.orders.eu"));
    assert_false(sld_ident_allows(alice, SLD_PERM_PUBLISH, "shop"));
    /* '*': exactly one word. */
    assert_true(sld_ident_allows(alice, SLD_PERM_SUBSCRIBE, "shop.orders"));
    assert_true(sld_ident_allows(alice, SLD_PERM_SUBSCRIBE, "shop.returns"));
    assert_false(sld_ident_allows(alice, SLD_PERM_SUBSCRIBE, "shop.orders.eu"));
    assert_false(sld_ident_allows(alice, SLD_PERM_SUBSCRIBE, "shop"));
    /* '>': one word or more, never none. */
    assert_true(sld_ident_allows(alice, SLD_PERM_ADMIN, "ops.a"));
    assert_true(sld_ident_allows(alice, SLD_PERM_ADMIN, "ops.a.b.c"));
    assert_false(sld_ident_allows(alice, SLD_PERM_ADMIN, "ops"));
    assert_false(sld_ident_allows(alice, SLD_PERM_ADMIN, "opsx.a"));
    /* One permission does not give another. */
    assert_false(sld_ident_allows(alice, SLD_PERM_PUBLISH, "shop.returns"));
    assert_false(sld_ident_allows(alice, SLD_PERM_SUBSCRIBE, "ops.a"));
    assert_false(sld_ident_allows(alice, SLD_PERM_CONSUME, "shop.orders"));
    /* '>' alone: every client topic, no reserved one. */
    assert_true(sld_ident_allows(bob, SLD_PERM_SUBSCRIBE, "shop.orders"));
    assert_true(sld_ident_allows(bob, SLD_PERM_SUBSCRIBE, "x"));
    assert_false(sld_ident_allows(bob, SLD_PERM_SUBSCRIBE, "_audit"));
    assert_false(sld_ident_allows(bob, SLD_PERM_SUBSCRIBE, "_dlq.shop.orders"));
    assert_false(sld_ident_allows(bob, SLD_PERM_PUBLISH, "shop.orders"));
    /* No grants: default deny. */
    assert_false(sld_ident_allows(nobody, SLD_PERM_SUBSCRIBE, "shop.orders"));
    assert_false(sld_ident_covers(nobody, SLD_PERM_SUBSCRIBE, "shop.orders"));

    /* Taking a grant away takes exactly it. */
    assert_int_equal(s_grant(f, "alice", SLD_PERM_SUBSCRIBE, "shop.*", true), 0);
    assert_false(sld_ident_allows(alice, SLD_PERM_SUBSCRIBE, "shop.returns"));
    assert_true(sld_ident_allows(alice, SLD_PERM_PUBLISH, "shop.orders"));
    assert_true(sld_ident_allows(alice, SLD_PERM_ADMIN, "ops.a"));
    /* A grant for someone unknown is refused, with a reason. */
    assert_int_equal(s_grant(f, "carol", SLD_PERM_SUBSCRIBE, "shop.*", false), SL_ENOTFOUND);
}

/* A grant covers a subscription pattern when every topic the pattern can
 * match is one the grant matches: narrower patterns yes, wider or
 * overlapping ones no. */
static void test_grants_cover(void **state)
{
    s_fixture_t *f = *state;
    s_ident(f, "alice", 1, SLD_PERM_SUBSCRIBE, "shop.*");
    assert_int_equal(s_grant(f, "alice", SLD_PERM_ADMIN, "ops.>", false), 0);
    assert_int_equal(s_grant(f, "alice", SLD_PERM_PUBLISH, "shop.orders", false), 0);
    s_ident(f, "bob", 2, SLD_PERM_SUBSCRIBE, ">");
    sld_ident_t *alice = sld_auth_lookup(f->auth, "alice");
    sld_ident_t *bob = sld_auth_lookup(f->auth, "bob");
    assert_non_null(alice);
    assert_non_null(bob);

    /* "shop.*" covers itself and each topic it matches ... */
    assert_true(sld_ident_covers(alice, SLD_PERM_SUBSCRIBE, "shop.*"));
    assert_true(sld_ident_covers(alice, SLD_PERM_SUBSCRIBE, "shop.orders"));
    /* ... not what reaches deeper, wider, or outside. */
    assert_false(sld_ident_covers(alice, SLD_PERM_SUBSCRIBE, "shop.>"));
    assert_false(sld_ident_covers(alice, SLD_PERM_SUBSCRIBE, "shop.*.eu"));
    assert_false(sld_ident_covers(alice, SLD_PERM_SUBSCRIBE, "*.orders"));
    assert_false(sld_ident_covers(alice, SLD_PERM_SUBSCRIBE, "shop"));
    /* "ops.>" covers every narrower pattern below ops. */
    assert_true(sld_ident_covers(alice, SLD_PERM_ADMIN, "ops.>"));
    assert_true(sld_ident_covers(alice, SLD_PERM_ADMIN, "ops.*"));
    assert_true(sld_ident_covers(alice, SLD_PERM_ADMIN, "ops.*.x.>"));
    assert_true(sld_ident_covers(alice, SLD_PERM_ADMIN, "ops.a.b"));
    assert_false(sld_ident_covers(alice, SLD_PERM_ADMIN, "ops"));
    assert_false(sld_ident_covers(alice, SLD_PERM_ADMIN, ">"));
    assert_false(sld_ident_covers(alice, SLD_PERM_ADMIN, "*.a"));
    /* An exact grant covers only that topic; per permission bit. */
    assert_true(sld_ident_covers(alice, SLD_PERM_PUBLISH, "shop.orders"));
    assert_false(sld_ident_covers(alice, SLD_PERM_PUBLISH, "shop.*"));
    assert_false(sld_ident_covers(alice, SLD_PERM_PUBLISH, "ops.a"));
    /* '>' covers every client pattern, no reserved one. */
    assert_true(sld_ident_covers(bob, SLD_PERM_SUBSCRIBE, ">"));
    assert_true(sld_ident_covers(bob, SLD_PERM_SUBSCRIBE, "*.orders"));
    assert_false(sld_ident_covers(bob, SLD_PERM_SUBSCRIBE, "_audit"));
    assert_false(sld_ident_covers(bob, SLD_PERM_SUBSCRIBE, "_dlq.>"));

    /* Subscriptions: a consume grant with '*' matches names of one more
     * word; admin covering a narrower pattern may use it, not a wider. */
    assert_int_equal(s_grant(f, "bob", SLD_PERM_CONSUME, "team.*", false), 0);
    assert_true(sld_ident_may_use_sub(bob, "team.a", "x.y", "carol"));
    assert_false(sld_ident_may_use_sub(bob, "team.a.b", "x.y", "carol"));
    assert_false(sld_ident_may_use_sub(bob, "team", "x.y", "carol"));
    assert_true(sld_ident_may_use_sub(alice, "s1", "ops.*.eu", ""));
    assert_true(sld_ident_may_use_sub(alice, "s1", "ops.a", "carol"));
    assert_false(sld_ident_may_use_sub(alice, "s1", "ops", "carol"));
    assert_false(sld_ident_may_use_sub(alice, "s1", "*.a", "carol"));
    /* A subscribe grant covering the pattern is not admin over it. */
    assert_false(sld_ident_may_use_sub(alice, "s1", "shop.orders", "carol"));

    /* The same answers after reloading the identities from the store. */
    s_load(f);
    alice = sld_auth_lookup(f->auth, "alice");
    bob = sld_auth_lookup(f->auth, "bob");
    assert_non_null(alice);
    assert_non_null(bob);
    assert_true(sld_ident_covers(alice, SLD_PERM_SUBSCRIBE, "shop.orders"));
    assert_false(sld_ident_covers(alice, SLD_PERM_SUBSCRIBE, "shop.>"));
    assert_true(sld_ident_covers(alice, SLD_PERM_ADMIN, "ops.*"));
    assert_true(sld_ident_may_use_sub(bob, "team.a", "x.y", "carol"));
    assert_false(sld_ident_covers(bob, SLD_PERM_SUBSCRIBE, "_audit"));
}

/* A revoke takes effect when its transaction commits, and only then; a
 * revoked identity may do nothing, stays listed, and cannot come back
 * under its name or its key. */
static void test_revoke(void **state)
{
    s_fixture_t *f = *state;
    bool newly = true;
    s_ident(f, "alice", 1, SLD_PERM_PUBLISH | SLD_PERM_SUBSCRIBE, "shop.>");
    assert_int_equal(s_grant(f, "alice", SLD_PERM_ADMIN | SLD_PERM_CONSUME, "shop.>",
                             false), 0);
    s_ident(f, "bob", 2, SLD_PERM_PUBLISH, "shop.>");
    sld_ident_t *alice = sld_auth_lookup(f->auth, "alice");
    sld_ident_t *bob = sld_auth_lookup(f->auth, "bob");
    assert_non_null(alice);
    assert_non_null(bob);

    /* Aborted: nothing changes, in memory or in the store. */
    assert_int_equal(s_revoke(f, "alice", false, &newly), 0);
    assert_false(newly);
    assert_false(sld_ident_revoked(alice));
    assert_true(sld_ident_allows(alice, SLD_PERM_PUBLISH, "shop.orders"));
    assert_true(sld_ident_may_use_sub(alice, "alice.s", "shop.orders", "alice"));
    s_load(f);
    alice = sld_auth_lookup(f->auth, "alice");
    bob = sld_auth_lookup(f->auth, "bob");
    assert_non_null(alice);
    assert_false(sld_ident_revoked(alice));
    assert_true(sld_ident_allows(alice, SLD_PERM_PUBLISH, "shop.orders"));

    /* Staged but not yet committed: lookups still see the old state. */
    char why[160] = "";
    sld_txn_t *txn = NULL;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_auth_key_revoke(f->auth, txn, "alice", why, sizeof why), 0);
    assert_false(sld_ident_revoked(alice));
    assert_true(sld_ident_allows(alice, SLD_PERM_PUBLISH, "shop.orders"));
    assert_int_equal(sld_txn_commit(&txn), 0);
    /* Committed: the answer says an identity was revoked (the server then
     * closes its sessions). */
    assert_true(sld_auth_committed(f->auth, true));
    assert_true(sld_ident_revoked(alice));
    assert_false(sld_ident_allows(alice, SLD_PERM_PUBLISH, "shop.orders"));
    assert_false(sld_ident_allows(alice, SLD_PERM_SUBSCRIBE, "shop.orders"));
    assert_false(sld_ident_covers(alice, SLD_PERM_SUBSCRIBE, "shop.orders"));
    assert_false(sld_ident_covers(alice, SLD_PERM_ADMIN, "shop.*"));
    assert_false(sld_ident_may_use_sub(alice, "alice.s", "shop.orders", "alice"));
    assert_false(sld_ident_may_use_sub(alice, "shop.s", "shop.orders", "bob"));
    /* Others keep their rights. */
    assert_false(sld_ident_revoked(bob));
    assert_true(sld_ident_allows(bob, SLD_PERM_PUBLISH, "shop.orders"));

    /* Again: not an error, and nothing newly revoked. */
    assert_int_equal(s_revoke(f, "alice", true, &newly), 0);
    assert_false(newly);
    /* Unknown name: refused with a reason. */
    assert_int_equal(s_revoke(f, "carol", true, &newly), SL_ENOTFOUND);
    assert_false(newly);

    /* Neither the name nor the key can be registered again. */
    uint8_t key[32];
    memset(key, 1, sizeof key);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_auth_key_add(f->auth, txn, "alice", key, why, sizeof why), SL_EEXIST);
    assert_true(why[0] != '\0');
    why[0] = '\0';
    assert_int_equal(sld_auth_key_add(f->auth, txn, "alice2", key, why, sizeof why), SL_EEXIST);
    assert_true(why[0] != '\0');
    sld_txn_abort(&txn);
    sld_auth_committed(f->auth, false);

    /* Kept (for the audit trail) and still revoked after a reload. */
    s_load(f);
    alice = sld_auth_lookup(f->auth, "alice");
    assert_non_null(alice);
    assert_true(sld_ident_revoked(alice));
    assert_false(sld_ident_allows(alice, SLD_PERM_PUBLISH, "shop.orders"));
    assert_true(sld_ident_allows(sld_auth_lookup(f->auth, "bob"), SLD_PERM_PUBLISH,
                                 "shop.orders"));
    Sluice__Identity **ids = NULL;
    size_t n = 0, seen = 0;
    assert_int_equal(sld_auth_list(f->auth, &ids, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ids[i]->name, "alice") == 0) {
            assert_true(ids[i]->revoked);
            assert_true(ids[i]->revoked_us > 0);
            seen++;
        }
        else
            assert_false(ids[i]->revoked);
    }
    assert_int_equal(seen, 1);
    sld_auth_list_free(&ids, n);
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
    char why[160] = "";
    sld_txn_t *txn = NULL;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_auth_key_revoke(f->auth, txn, "alice", why, sizeof why), 0);
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
        cmocka_unit_test_setup_teardown(test_grants_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grants_cover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_may_use_sub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consume_grant_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_and_plaintext, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
