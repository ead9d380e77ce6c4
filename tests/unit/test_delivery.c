/*  test_delivery - what sld_delivery keeps of a durable subscription's
 *  owner: set by the broker at creation (a client's Subscribe.owner is
 *  ignored), persisted with its config and loaded back, empty for a config
 *  stored before owners were kept, claimed once, shown in stats. A store in
 *  a temp dir, no sockets (the send callback drops frames). Single thread.  */
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
#include "sld_delivery.h"
#include "sld_metrics.h"
#include "sld_store.h"
#include "sld_subrec.h"
#include "sluice_codes.h"

typedef struct {
    char dir[64];
    sld_store_t *store;
    sld_metrics_t *metrics;
    sld_delivery_t *delivery;
} s_fixture_t;

/* Stands for a session: the module only compares the pointer. */
static char s_session_a, s_session_b;

static int s_drop(void *arg, sld_session_t *session, const Sluice__Frame *frame)
{
    (void) arg; (void) session; (void) frame;
    return 0;
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove(path);
}

/* (Re)load the subscriptions from the store. */
static void s_load(s_fixture_t *f)
{
    sld_delivery_options_t o = { .ack_wait_ms = 30000, .max_deliver = 5, .max_inflight = 100,
                                 .deliver_batch = 10, .max_subscriptions = 100,
                                 .max_message_bytes = 1 << 20 };
    sld_delivery_destroy(&f->delivery);
    assert_int_equal(sld_delivery_new(f->store, f->metrics, &o, &(sld_outbox_t) { s_drop, NULL }, &f->delivery), 0);
}

/* Write what the delivery module has pending, in one committed txn. */
static void s_persist(s_fixture_t *f)
{
    sld_txn_t *txn = NULL;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_delivery_persist(f->delivery, txn), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    sld_delivery_persisted(f->delivery, true);
}

static int setup(void **state)
{
    s_fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/sld_delivery_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    sld_store_options_t opts;
    sld_store_options_init(&opts);
    opts.dir = f->dir;
    opts.sync = false;
    assert_int_equal(sld_store_open(&opts, &f->store), 0);
    assert_int_equal(sld_metrics_new(&f->metrics), 0);
    s_load(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    s_fixture_t *f = *state;
    sld_delivery_destroy(&f->delivery);
    sld_metrics_destroy(&f->metrics);
    sld_store_destroy(&f->store);
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void s_subscribe(s_fixture_t *f, void *session, const char *name, const char *owner,
                        const char *sent_owner)
{
    Sluice__Subscribe req = SLUICE__SUBSCRIBE__INIT;
    Sluice__SubscribeOk ok = SLUICE__SUBSCRIBE_OK__INIT;
    char why[160] = "";
    req.name = (char *) name;
    req.pattern = "shop.orders";
    req.owner = (char *) sent_owner;
    assert_int_equal(sld_delivery_subscribe(f->delivery, session, &req, owner, &ok, why, sizeof why), 0);
}

static const char *s_owner(s_fixture_t *f, const char *name)
{
    sld_sub_ref_t ref;
    assert_int_equal(sld_delivery_lookup(f->delivery, NULL, 0, name, &ref), 0);
    assert_string_equal(ref.name, name);
    assert_string_equal(ref.pattern, "shop.orders");
    assert_false(ref.ephemeral);
    return ref.owner;
}

/* The creator owns it; a client cannot name an owner; a second subscriber
 * (a take-over) does not change it; it survives a restart. */
static void test_owner_persisted(void **state)
{
    s_fixture_t *f = *state;
    s_subscribe(f, &s_session_a, "alice.orders", "alice", "mallory");
    assert_string_equal(s_owner(f, "alice.orders"), "alice");
    s_subscribe(f, &s_session_b, "alice.orders", "bob", NULL);
    assert_string_equal(s_owner(f, "alice.orders"), "alice");
    /* Plain text records none. */
    s_subscribe(f, &s_session_a, "plain.orders", NULL, "mallory");
    assert_string_equal(s_owner(f, "plain.orders"), "");
    s_persist(f);
    s_load(f);
    assert_string_equal(s_owner(f, "alice.orders"), "alice");
    assert_string_equal(s_owner(f, "plain.orders"), "");

    Sluice__SubInfo **subs = NULL;
    size_t n = 0;
    assert_int_equal(sld_delivery_stats(f->delivery, &subs, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(subs[i]->owner,
                            strcmp(subs[i]->name, "alice.orders") == 0 ? "alice" : "");
    sld_delivery_stats_free(&subs, n);
    assert_int_equal(sld_delivery_lookup(f->delivery, NULL, 0, "nobody", &(sld_sub_ref_t) { 0 }),
                     SL_ENOTFOUND);
}

/* A config stored before owners were kept loads without one; it is
 * claimed once, and the claim is persisted. */
static void test_legacy_claimed(void **state)
{
    s_fixture_t *f = *state;
    Sluice__Subscribe cfg = SLUICE__SUBSCRIBE__INIT;
    cfg.name = "legacy";
    cfg.pattern = "shop.orders";
    cfg.ack_wait_ms = 30000;
    cfg.max_deliver = 5;
    uint8_t buf[256];
    size_t len = sluice__subscribe__pack(&cfg, buf);
    sld_txn_t *txn = NULL;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_subrec_put(txn, "legacy", buf, len), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    s_load(f);
    assert_string_equal(s_owner(f, "legacy"), "");
    assert_int_equal(sld_delivery_claim(f->delivery, "legacy", "bob"), 0);
    assert_int_equal(sld_delivery_claim(f->delivery, "legacy", "alice"), SL_EEXIST);
    assert_int_equal(sld_delivery_claim(f->delivery, "nobody", "alice"), SL_ENOTFOUND);
    assert_true(sld_delivery_dirty(f->delivery));
    s_persist(f);
    s_load(f);
    assert_string_equal(s_owner(f, "legacy"), "bob");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_owner_persisted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_claimed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
