/*  test_store - unit tests of sld_store (its named tables, the commit in
 *  steps), sld_subrec and sld_seal's key files against a real LMDB in a
 *  temp dir. Each test makes its own directory under /tmp
 *  and removes it at the end. Asserts what a user of the broker would
 *  notice: offsets, durability across reopen, duplicates, retention, map
 *  growth, refusal of bad data, no plaintext on disk when encrypted.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sld_seal.h"
#include "sld_store.h"
#include "sld_subrec.h"

#define MIB ((size_t) 1 << 20)

typedef struct {
    char dir[64];               /* temp dir, removed in teardown */
    char path[96];              /* the store dir inside it (not yet created) */
    sld_store_options_t opts;
    sld_store_t *store;
} fixture_t;

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove(path);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/sld_store_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    /* A nested path also proves open creates missing parents. */
    snprintf(f->path, sizeof f->path, "%s/data/store", f->dir);
    sld_store_options_init(&f->opts);
    f->opts.dir = f->path;
    f->opts.sync = false;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    sld_store_destroy(&f->store);
    assert_null(f->store);
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void s_open(fixture_t *f)
{
    assert_int_equal(sld_store_open(&f->opts, &f->store), 0);
}

static void s_reopen(fixture_t *f)
{
    sld_store_destroy(&f->store);
    s_open(f);
}

static uint32_t s_topic(fixture_t *f, const char *name)
{
    sld_txn_t *txn;
    uint32_t id;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_ensure(txn, name, &id), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    return id;
}

/* Append COUNT records "NAME-i" at times T0 + i*STEP, one txn. */
static void s_fill(fixture_t *f, uint32_t id, int count, uint64_t t0, uint64_t step,
                   size_t pad)
{
    sld_txn_t *txn;
    char buf[4096];
    assert_true(pad < sizeof buf);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    for (int i = 0; i < count; i++) {
        uint64_t off;
        memset(buf, 'x', sizeof buf);
        int n = snprintf(buf, sizeof buf, "msg-%d", i);
        size_t len = pad > (size_t) n ? pad : (size_t) n;
        assert_int_equal(sld_store_append(txn, id, t0 + (uint64_t) i * step, buf, len, &off), 0);
    }
    assert_int_equal(sld_txn_commit(&txn), 0);
}

static void s_expect_record(sld_txn_t *txn, uint32_t id, uint64_t off, const char *text,
                            uint64_t time)
{
    const void *env;
    size_t len;
    uint64_t t;
    assert_int_equal(sld_store_read(txn, id, off, &env, &len, &t), 0);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(env, text, len);
    assert_int_equal(t, time);
}

/* ----------------------------------------------------------------- tests */

static void test_append_read_roundtrip(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t id, id2;
    uint64_t off;
    const char *texts[] = { "alpha", "beta", "gamma" };
    s_open(f);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_ensure(txn, "shop.orders", &id), 0);
    assert_int_equal(sld_store_topic_ensure(txn, "shop.orders", &id2), 0);
    assert_int_equal(id, id2);
    assert_int_not_equal(id, 0);
    assert_int_equal(sld_store_topic_ensure(txn, "bad..name", &id2), SL_EINVAL);
    assert_int_equal(sld_store_topic_ensure(txn, "_dlq.x", &id2), 0);
    assert_int_not_equal(id2, id);
    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(sld_store_topic_next_offset(txn, id), i);
        assert_int_equal(sld_store_append(txn, id, 1000 + i, texts[i], strlen(texts[i]), &off), 0);
        assert_int_equal(off, i);
    }
    /* Not visible as committed state before commit. */
    assert_null(sld_store_topic_by_name(f->store, "shop.orders"));
    assert_int_equal(sld_store_append(txn, 999, 0, "x", 1, &off), SL_ENOTFOUND);
    assert_int_equal(sld_txn_commit(&txn), 0);

    const sld_topic_info_t *t = sld_store_topic_by_name(f->store, "shop.orders");
    assert_non_null(t);
    assert_ptr_equal(t, sld_store_topic_by_id(f->store, id));
    assert_int_equal(t->first_offset, 0);
    assert_int_equal(t->next_offset, 3);
    assert_int_equal(t->messages, 3);
    assert_int_equal(t->bytes, 3 * (SLD_RECORD_HEADER + SLD_RECORD_SUM_OVERHEAD) + 5 + 4 + 5);
    assert_int_equal(sld_store_topic_count(f->store), 2);
    assert_int_equal(sld_store_topic_at(f->store, 0)->id, id);
    assert_null(sld_store_topic_at(f->store, 2));

    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    for (uint64_t i = 0; i < 3; i++)
        s_expect_record(txn, id, i, texts[i], 1000 + i);
    const void *env;
    size_t len;
    assert_int_equal(sld_store_read(txn, id, 3, &env, &len, NULL), SL_ENOTFOUND);
    assert_int_equal(sld_store_read(txn, id2, 0, &env, &len, NULL), SL_ENOTFOUND);
    assert_int_equal(sld_store_seek(txn, id, 1), 1);
    assert_int_equal(sld_store_seek(txn, id, 3), SLD_OFFSET_NONE);
    assert_int_equal(sld_store_seek(txn, id2, 0), SLD_OFFSET_NONE);
    sld_txn_abort(&txn);
    assert_null(txn);
}

/* Reads in a read transaction step a cursor when they ask for the next
 * offset: in order, after a jump, at a topic's end (the next key belongs to
 * another topic) and after a miss, each read returns the right record. */
static void test_read_in_order_and_not(void **state)
{
    fixture_t *f = *state;
    s_open(f);
    uint32_t a = s_topic(f, "a"), b = s_topic(f, "b");
    s_fill(f, a, 10, 100, 1, 0);
    s_fill(f, b, 3, 500, 1, 0);
    sld_txn_t *txn;
    const void *env;
    size_t len;
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    s_expect_record(txn, a, 0, "msg-0", 100);
    s_expect_record(txn, a, 1, "msg-1", 101);
    s_expect_record(txn, a, 2, "msg-2", 102);
    s_expect_record(txn, a, 7, "msg-7", 107);  /* a jump */
    s_expect_record(txn, a, 8, "msg-8", 108);
    s_expect_record(txn, a, 9, "msg-9", 109);
    /* The key after a/9 is b/0: a/10 does not exist. */
    assert_int_equal(sld_store_read(txn, a, 10, &env, &len, NULL), SL_ENOTFOUND);
    assert_int_equal(sld_store_read(txn, a, 11, &env, &len, NULL), SL_ENOTFOUND);
    s_expect_record(txn, b, 0, "msg-0", 500);
    s_expect_record(txn, b, 1, "msg-1", 501);
    s_expect_record(txn, a, 3, "msg-3", 103);  /* back */
    s_expect_record(txn, b, 2, "msg-2", 502);
    assert_int_equal(sld_store_read(txn, b, 3, &env, &len, NULL), SL_ENOTFOUND);
    s_expect_record(txn, a, 4, "msg-4", 104);
    sld_txn_abort(&txn);
}

static void test_reopen_keeps_everything(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    char hex[33], hex2[33];
    uint32_t a, b;
    uint64_t off;
    s_open(f);
    sld_store_instance_id(f->store, hex);
    assert_int_equal(strlen(hex), 32);
    a = s_topic(f, "a.one");
    b = s_topic(f, "b.two");
    s_fill(f, a, 5, 100, 1, 0);
    s_fill(f, b, 2, 200, 1, 0);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_set_retention(txn, b, 60000, 1 << 20), 0);
    assert_int_equal(sld_store_topic_set_retention(txn, 4242, 1, 1), SL_ENOTFOUND);
    assert_int_equal(sld_txn_commit(&txn), 0);

    s_reopen(f);
    sld_store_instance_id(f->store, hex2);
    assert_string_equal(hex, hex2);
    const sld_topic_info_t *ta = sld_store_topic_by_name(f->store, "a.one");
    const sld_topic_info_t *tb = sld_store_topic_by_id(f->store, b);
    assert_non_null(ta);
    assert_non_null(tb);
    assert_int_equal(ta->id, a);
    assert_int_equal(ta->next_offset, 5);
    assert_int_equal(ta->messages, 5);
    assert_string_equal(tb->name, "b.two");
    assert_int_equal(tb->next_offset, 2);
    assert_int_equal(tb->max_age_ms, 60000);
    assert_int_equal(tb->max_bytes, 1 << 20);

    /* Appends continue where they stopped; new topics get fresh ids. */
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_append(txn, a, 300, "z", 1, &off), 0);
    assert_int_equal(off, 5);
    uint32_t c;
    assert_int_equal(sld_store_topic_ensure(txn, "c.three", &c), 0);
    assert_true(c != a && c != b);
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    s_expect_record(txn, a, 4, "msg-4", 104);
    s_expect_record(txn, a, 5, "z", 300);
    s_expect_record(txn, b, 0, "msg-0", 200);
    sld_txn_abort(&txn);
}

static void test_abort_leaves_no_trace(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, ghost;
    uint64_t off;
    uint8_t pid[16] = { 7 };
    s_open(f);
    a = s_topic(f, "a");
    s_fill(f, a, 2, 0, 1, 0);

    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_append(txn, a, 5, "gone", 4, &off), 0);
    assert_int_equal(off, 2);
    assert_int_equal(sld_store_topic_set_retention(txn, a, 1, 1), 0);
    assert_int_equal(sld_store_topic_ensure(txn, "ghost", &ghost), 0);
    assert_int_equal(sld_store_append(txn, ghost, 5, "boo", 3, &off), 0);
    assert_int_equal(sld_store_producer_record(txn, pid, 10, a, 2), 0);
    assert_int_equal(sld_subrec_put(txn, "s1", "cfg", 3), 0);
    sld_txn_abort(&txn);
    assert_null(txn);

    const sld_topic_info_t *t = sld_store_topic_by_id(f->store, a);
    assert_int_equal(t->next_offset, 2);
    assert_int_equal(t->messages, 2);
    assert_int_equal(t->max_bytes, 0);
    assert_null(sld_store_topic_by_name(f->store, "ghost"));
    assert_int_equal(sld_store_topic_count(f->store), 1);
    assert_int_equal(sld_store_producer_last_seq(f->store, pid), 0);

    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    const void *env;
    size_t len;
    uint32_t tid;
    assert_int_equal(sld_store_read(txn, a, 2, &env, &len, NULL), SL_ENOTFOUND);
    assert_int_equal(sld_store_producer_check(txn, pid, 10, &tid, &off), 0);
    /* The aborted topic's id is handed out again, to the next new topic. */
    assert_int_equal(sld_store_topic_ensure(txn, "real", &tid), 0);
    assert_int_equal(tid, ghost);
    assert_int_equal(sld_store_append(txn, a, 6, "kept", 4, &off), 0);
    assert_int_equal(off, 2);
    assert_int_equal(sld_txn_commit(&txn), 0);

    s_reopen(f);
    assert_null(sld_store_topic_by_name(f->store, "ghost"));
    assert_int_equal(sld_store_topic_by_id(f->store, a)->next_offset, 3);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

static void test_producer_duplicates(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, tid;
    uint64_t off;
    uint8_t p1[16], p2[16];
    memset(p1, 1, sizeof p1);
    memset(p2, 2, sizeof p2);
    s_open(f);
    a = s_topic(f, "a");

    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        assert_int_equal(sld_store_producer_check(txn, p1, seq, &tid, &off), 0);
        assert_int_equal(sld_store_append(txn, a, seq, "m", 1, &off), 0);
        assert_int_equal(sld_store_producer_record(txn, p1, seq, a, off), 0);
    }
    /* A resend inside the same txn is already a duplicate. */
    assert_int_equal(sld_store_producer_check(txn, p1, 2, &tid, &off), 1);
    assert_int_equal(tid, a);
    assert_int_equal(off, 1);
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_producer_last_seq(f->store, p1), 3);
    assert_int_equal(sld_store_producer_last_seq(f->store, p2), 0);

    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_producer_check(txn, p1, 3, &tid, &off), 1);
    assert_int_equal(off, 2);
    assert_int_equal(sld_store_producer_check(txn, p1, 4, &tid, &off), 0);
    assert_int_equal(sld_store_producer_check(txn, p2, 1, &tid, &off), 0);
    sld_txn_abort(&txn);

    s_reopen(f);
    assert_int_equal(sld_store_producer_last_seq(f->store, p1), 3);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_producer_check(txn, p1, 1, &tid, &off), 1);
    assert_int_equal(tid, a);
    assert_int_equal(off, 0);
    assert_int_equal(sld_store_producer_check(txn, p1, 4, &tid, &off), 0);
    /* A gap (seq 5 refused, 6 stored): 5 is new when resent. */
    assert_int_equal(sld_store_append(txn, a, 9, "m", 1, &off), 0);
    assert_int_equal(sld_store_producer_record(txn, p1, 6, a, off), 0);
    assert_int_equal(sld_store_producer_check(txn, p1, 5, &tid, &off), 0);
    assert_int_equal(sld_store_producer_check(txn, p1, 6, &tid, &off), 1);
    assert_int_equal(off, 3);
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_producer_last_seq(f->store, p1), 6);
}

/* Producer index entries are appended while they ascend and put in place
 * otherwise: interleaved producers (the lower id after the higher), an
 * aborted append (the bound stays high) and a reopen (the bound is read
 * back) all keep every seq -> offset entry right. */
static void test_producer_index_order(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, tid;
    uint64_t off, want[2][9];
    uint8_t pid[2][16];
    memset(pid[0], 0x10, 16);          /* sorts first */
    memset(pid[1], 0xf0, 16);
    s_open(f);
    a = s_topic(f, "a");

    for (int round = 0; round < 3; round++) {
        assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
        for (uint64_t seq = 1 + 3 * (uint64_t) round; seq <= 3 + 3 * (uint64_t) round; seq++)
            for (int p = 1; p >= 0; p--) {  /* the higher id first */
                assert_int_equal(sld_store_producer_check(txn, pid[p], seq, &tid, &off), 0);
                assert_int_equal(sld_store_append(txn, a, seq, "m", 1, &off), 0);
                assert_int_equal(sld_store_producer_record(txn, pid[p], seq, a, off), 0);
                want[p][seq - 1] = off;
            }
        if (round == 1) {
            /* An append that is rolled back leaves the bound above the
             * last stored key. */
            sld_txn_t *t2;
            assert_int_equal(sld_txn_commit(&txn), 0);
            assert_int_equal(sld_store_begin(f->store, true, &t2), 0);
            assert_int_equal(sld_store_append(t2, a, 99, "x", 1, &off), 0);
            assert_int_equal(sld_store_producer_record(t2, pid[1], 100, a, off), 0);
            sld_txn_abort(&t2);
            continue;
        }
        assert_int_equal(sld_txn_commit(&txn), 0);
        if (round == 0)
            s_reopen(f);
    }
    s_reopen(f);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    for (int p = 0; p < 2; p++)
        for (uint64_t seq = 1; seq <= 9; seq++) {
            assert_int_equal(sld_store_producer_check(txn, pid[p], seq, &tid, &off), 1);
            assert_int_equal(tid, a);
            assert_int_equal(off, want[p][seq - 1]);
        }
    assert_int_equal(sld_store_producer_check(txn, pid[1], 10, &tid, &off), 0);
    assert_int_equal(sld_store_producer_check(txn, pid[1], 100, &tid, &off), 0);
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_producer_last_seq(f->store, pid[1]), 9);
}

/* The producer index keeps runs: a run ends at another topic, at a gap in
 * the sequence, at an offset that does not follow (a msg-id duplicate
 * points back at an older message), and at the end of the transaction.
 * Every seq answers with its own offset, in the transaction and after. */
static void test_producer_runs(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t tid;
    uint64_t off, want_off[20] = { 0 };
    uint32_t want_topic[20] = { 0 };
    uint8_t p[16];
    memset(p, 7, sizeof p);
    s_open(f);
    uint32_t a = s_topic(f, "a"), b = s_topic(f, "b");
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    for (uint64_t seq = 1; seq <= 12; seq++) {
        if (seq == 8)
            continue;                           /* a gap: seq 8 was refused */
        uint32_t t = seq >= 4 && seq <= 5 ? b : a;  /* 4, 5 to another topic */
        if (seq == 10) {
            off = want_off[2];                  /* points back at seq 2's message */
        } else
            assert_int_equal(sld_store_append(txn, t, seq, "m", 1, &off), 0);
        assert_int_equal(sld_store_producer_record(txn, p, seq, t, off), 0);
        want_off[seq] = off;
        want_topic[seq] = t;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t seq = 1; seq <= 12; seq++) {
            int rc = sld_store_producer_check(txn, p, seq, &tid, &off);
            if (seq == 8) {
                assert_int_equal(rc, 0);        /* the gap is new */
                continue;
            }
            if (rc != 1 || tid != want_topic[seq] || off != want_off[seq])
                fail_msg("pass %d seq %llu: rc %d topic %u offset %llu, want %u/%llu",
                         pass, (unsigned long long) seq, rc, tid,
                         (unsigned long long) off, want_topic[seq],
                         (unsigned long long) want_off[seq]);
        }
        assert_int_equal(sld_store_producer_check(txn, p, 13, &tid, &off), 0);
        if (pass == 0) {
            assert_int_equal(sld_txn_commit(&txn), 0);
            s_reopen(f);
            assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
        }
    }
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

static void test_producer_window_trim(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, tid;
    uint64_t off;
    uint8_t p[16] = { 0xAA, 0xBB };
    size_t trimmed = 99;
    f->opts.producer_window = 10;
    s_open(f);
    a = s_topic(f, "a");
    /* Six commits of five: six runs in the index, 1-5 .. 26-30. Trim drops
     * a run once its last seq is out of the window (a run that straddles
     * the window's edge is kept whole). */
    for (uint64_t seq = 1; seq <= 30; seq++) {
        if (seq % 5 == 1)
            assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
        assert_int_equal(sld_store_append(txn, a, seq, "m", 1, &off), 0);
        assert_int_equal(sld_store_producer_record(txn, p, seq, a, off), 0);
        if (seq % 5 == 0)
            assert_int_equal(sld_txn_commit(&txn), 0);
    }

    /* Before the trim the old entry still answers with its offset. */
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_producer_check(txn, p, 5, &tid, &off), 1);
    assert_int_equal(off, 4);
    sld_txn_abort(&txn);

    assert_int_equal(sld_store_trim(f->store, 1000, 0, 1000, &trimmed), 0);
    assert_int_equal(trimmed, 0);   /* no message records removed */
    s_reopen(f);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_producer_check(txn, p, 5, &tid, &off), 1);
    assert_int_equal(tid, 0);
    assert_int_equal(off, SLD_OFFSET_NONE);
    assert_int_equal(sld_store_producer_check(txn, p, 20, &tid, &off), 1);
    assert_int_equal(off, SLD_OFFSET_NONE);
    assert_int_equal(sld_store_producer_check(txn, p, 21, &tid, &off), 1);
    assert_int_equal(tid, a);
    assert_int_equal(off, 20);
    assert_int_equal(sld_store_producer_check(txn, p, 31, &tid, &off), 0);
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

static void test_dedup_window(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, b;
    uint64_t off = 0;
    const uint64_t win = 60 * 1000000ull, t0 = 1000000000ull;
    s_open(f);
    a = s_topic(f, "a");
    b = s_topic(f, "b");
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_dedup_check(txn, a, "key-1", 5, t0, win, &off), 0);
    assert_int_equal(sld_store_dedup_record(txn, a, "key-1", 5, t0, 41), 0);
    assert_int_equal(sld_store_dedup_record(txn, a, "key-2", 5, t0 + win / 2, 42), 0);
    assert_int_equal(sld_store_dedup_check(txn, a, "key-1", 0, t0, win, &off), SL_EINVAL);
    char big[SLD_MSG_ID_MAX + 1] = { 0 };
    assert_int_equal(sld_store_dedup_record(txn, a, big, sizeof big, t0, 1), SL_EINVAL);
    assert_int_equal(sld_txn_commit(&txn), 0);

    s_reopen(f);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_dedup_check(txn, a, "key-1", 5, t0 + 1000, win, &off), 1);
    assert_int_equal(off, 41);
    /* Same id on another topic is a different message. */
    assert_int_equal(sld_store_dedup_check(txn, b, "key-1", 5, t0 + 1000, win, &off), 0);
    /* Beyond the window it no longer counts, even before trim. */
    assert_int_equal(sld_store_dedup_check(txn, a, "key-1", 5, t0 + win, win, &off), 0);
    sld_txn_abort(&txn);

    /* Trim at t0 + win drops key-1 only; key-2 is still inside. */
    assert_int_equal(sld_store_trim(f->store, t0 + win, win, 100, NULL), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_dedup_check(txn, a, "key-1", 5, t0, UINT64_MAX, &off), 0);
    assert_int_equal(sld_store_dedup_check(txn, a, "key-2", 5, t0 + win, win, &off), 1);
    assert_int_equal(off, 42);
    sld_txn_abort(&txn);

    /* Re-recorded later: the old expiry entry must not remove the new one. */
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_dedup_record(txn, a, "key-2", 5, t0 + 2 * win, 43), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_trim(f->store, t0 + 2 * win, win, 100, NULL), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_dedup_check(txn, a, "key-2", 5, t0 + 2 * win, win, &off), 1);
    assert_int_equal(off, 43);
    sld_txn_abort(&txn);
}

typedef struct {
    char names[8][32];
    char configs[8][32];
    int count;
} sub_list_t;

static int s_collect_sub(const char *name, const void *config, size_t len, void *arg)
{
    sub_list_t *l = arg;
    assert_true(l->count < 8 && len < 32);
    strcpy(l->names[l->count], name);
    memcpy(l->configs[l->count], config, len);
    l->configs[l->count][len] = 0;
    l->count++;
    return 0;
}

static int s_stop_sub(const char *name, const void *config, size_t len, void *arg)
{
    (void) name; (void) config; (void) len; (void) arg;
    return 7;
}

typedef struct {
    uint64_t offsets[16];
    int count;
} off_list_t;

static int s_collect_off(uint64_t offset, void *arg)
{
    off_list_t *l = arg;
    assert_true(l->count < 16);
    l->offsets[l->count++] = offset;
    return 0;
}

static void test_subscriptions(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, b;
    uint64_t floor;
    sub_list_t subs;
    off_list_t offs;
    s_open(f);
    a = s_topic(f, "a");
    b = s_topic(f, "b");
    s_fill(f, a, 20, 0, 1, 0);
    s_fill(f, b, 20, 0, 1, 0);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_subrec_put(txn, "billing", "cfg-b", 5), 0);
    assert_int_equal(sld_subrec_put(txn, "audit", "cfg-a", 5), 0);
    /* "bill" is a prefix of "billing": deleting one must spare the other. */
    assert_int_equal(sld_subrec_put(txn, "bill", "cfg-x", 5), 0);
    assert_int_equal(sld_subrec_put(txn, "", "x", 1), SL_EINVAL);
    assert_int_equal(sld_subrec_cursor_get(txn, "billing", a, &floor), SL_ENOTFOUND);
    assert_int_equal(sld_subrec_cursor_put(txn, "billing", a, 5), 0);
    assert_int_equal(sld_subrec_cursor_put(txn, "billing", b, 2), 0);
    assert_int_equal(sld_subrec_cursor_put(txn, "bill", a, 9), 0);
    assert_int_equal(sld_subrec_acked_put(txn, "billing", a, 7), 0);
    assert_int_equal(sld_subrec_acked_put(txn, "billing", a, 12), 0);
    assert_int_equal(sld_subrec_acked_put(txn, "billing", a, 9), 0);
    assert_int_equal(sld_subrec_acked_put(txn, "billing", b, 3), 0);
    assert_int_equal(sld_subrec_acked_put(txn, "bill", a, 10), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);

    s_reopen(f);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    memset(&subs, 0, sizeof subs);
    assert_int_equal(sld_subrec_foreach(txn, s_collect_sub, &subs), 0);
    assert_int_equal(subs.count, 3);
    assert_string_equal(subs.names[0], "audit");
    assert_string_equal(subs.configs[0], "cfg-a");
    assert_string_equal(subs.names[1], "bill");
    assert_string_equal(subs.names[2], "billing");
    assert_int_equal(sld_subrec_foreach(txn, s_stop_sub, NULL), 7);
    assert_int_equal(sld_subrec_cursor_get(txn, "billing", a, &floor), 0);
    assert_int_equal(floor, 5);
    assert_int_equal(sld_subrec_cursor_get(txn, "billing", b, &floor), 0);
    assert_int_equal(floor, 2);
    assert_int_equal(sld_subrec_acked_test(txn, "billing", a, 7), 1);
    assert_int_equal(sld_subrec_acked_test(txn, "billing", a, 8), 0);
    assert_int_equal(sld_subrec_acked_test(txn, "billing", b, 7), 0);
    memset(&offs, 0, sizeof offs);
    assert_int_equal(sld_subrec_acked_foreach(txn, "billing", a, 8, s_collect_off, &offs), 0);
    assert_int_equal(offs.count, 2);
    assert_int_equal(offs.offsets[0], 9);
    assert_int_equal(offs.offsets[1], 12);
    assert_int_equal(sld_subrec_acked_del(txn, "billing", a, 9), 0);
    assert_int_equal(sld_subrec_acked_del(txn, "billing", a, 9), 0);
    assert_int_equal(sld_subrec_acked_test(txn, "billing", a, 9), 0);

    assert_int_equal(sld_subrec_delete(txn, "billing"), 0);
    assert_int_equal(sld_subrec_delete(txn, "billing"), SL_ENOTFOUND);
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    memset(&subs, 0, sizeof subs);
    assert_int_equal(sld_subrec_foreach(txn, s_collect_sub, &subs), 0);
    assert_int_equal(subs.count, 2);
    assert_int_equal(sld_subrec_cursor_get(txn, "billing", a, &floor), SL_ENOTFOUND);
    assert_int_equal(sld_subrec_cursor_get(txn, "billing", b, &floor), SL_ENOTFOUND);
    assert_int_equal(sld_subrec_acked_test(txn, "billing", a, 7), 0);
    assert_int_equal(sld_subrec_acked_test(txn, "billing", b, 3), 0);
    memset(&offs, 0, sizeof offs);
    assert_int_equal(sld_subrec_acked_foreach(txn, "billing", a, 0, s_collect_off, &offs), 0);
    assert_int_equal(offs.count, 0);
    assert_int_equal(sld_subrec_cursor_get(txn, "bill", a, &floor), 0);
    assert_int_equal(floor, 9);
    assert_int_equal(sld_subrec_acked_test(txn, "bill", a, 10), 1);
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

static void test_retention_by_bytes(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, other;
    size_t trimmed;
    const uint64_t rec = SLD_RECORD_HEADER + SLD_RECORD_SUM_OVERHEAD + 100;
    s_open(f);
    a = s_topic(f, "a");
    other = s_topic(f, "other");
    s_fill(f, a, 10, 1, 1, 100);
    s_fill(f, other, 10, 1, 1, 100);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_set_retention(txn, a, 0, 4 * rec), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);

    /* The budget bounds the work: 3 now, the rest next call. */
    assert_int_equal(sld_store_trim(f->store, 100, 0, 3, &trimmed), 0);
    assert_int_equal(trimmed, 3);
    assert_int_equal(sld_store_topic_by_id(f->store, a)->first_offset, 3);
    assert_int_equal(sld_store_trim(f->store, 100, 0, 100, &trimmed), 0);
    assert_int_equal(trimmed, 3);
    assert_int_equal(sld_store_trim(f->store, 100, 0, 100, &trimmed), 0);
    assert_int_equal(trimmed, 0);

    const sld_topic_info_t *t = sld_store_topic_by_id(f->store, a);
    assert_int_equal(t->first_offset, 6);
    assert_int_equal(t->next_offset, 10);
    assert_int_equal(t->messages, 4);
    assert_int_equal(t->bytes, 4 * rec);
    assert_int_equal(sld_store_topic_by_id(f->store, other)->messages, 10);

    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    const void *env;
    size_t len;
    assert_int_equal(sld_store_read(txn, a, 5, &env, &len, NULL), SL_ENOTFOUND);
    assert_int_equal(sld_store_read(txn, a, 6, &env, &len, NULL), 0);
    assert_int_equal(sld_store_seek(txn, a, 0), 6);
    assert_int_equal(sld_store_seek(txn, a, 8), 8);
    assert_int_equal(sld_store_seek(txn, other, 0), 0);
    sld_txn_abort(&txn);
    s_reopen(f);
    assert_int_equal(sld_store_topic_by_id(f->store, a)->first_offset, 6);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

static void test_retention_by_age(void **state)
{
    fixture_t *f = *state;
    uint32_t a;
    size_t trimmed;
    sld_txn_t *txn;
    const uint64_t sec = 1000000;
    s_open(f);
    a = s_topic(f, "a");
    s_fill(f, a, 10, 100 * sec, sec, 0);   /* times 100 s .. 109 s */
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_set_retention(txn, a, 5000, 0), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);

    /* At 110 s with max_age 5 s, records of 100..105 s are old enough. */
    assert_int_equal(sld_store_trim(f->store, 110 * sec, 0, 1000, &trimmed), 0);
    assert_int_equal(trimmed, 6);
    const sld_topic_info_t *t = sld_store_topic_by_id(f->store, a);
    assert_int_equal(t->first_offset, 6);
    assert_int_equal(t->messages, 4);
    /* Trimming everything leaves an empty topic whose next offset stays. */
    assert_int_equal(sld_store_trim(f->store, 1000 * sec, 0, 1000, &trimmed), 0);
    assert_int_equal(trimmed, 4);
    t = sld_store_topic_by_id(f->store, a);
    assert_int_equal(t->messages, 0);
    assert_int_equal(t->bytes, 0);
    assert_int_equal(t->first_offset, 10);
    assert_int_equal(t->next_offset, 10);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_seek(txn, a, 0), SLD_OFFSET_NONE);
    assert_int_equal(sld_store_offset_at_time(txn, a, 0), 10);
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

static void test_offset_at_time(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a;
    uint64_t off;
    const uint64_t times[] = { 100, 200, 200, 200, 300, 400 };
    s_open(f);
    a = s_topic(f, "a");
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(sld_store_append(txn, a, times[i], "m", 1, &off), 0);
    /* The txn sees its own appends. */
    assert_int_equal(sld_store_offset_at_time(txn, a, 250), 4);
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_offset_at_time(txn, a, 0), 0);
    assert_int_equal(sld_store_offset_at_time(txn, a, 100), 0);
    assert_int_equal(sld_store_offset_at_time(txn, a, 101), 1);
    assert_int_equal(sld_store_offset_at_time(txn, a, 200), 1);
    assert_int_equal(sld_store_offset_at_time(txn, a, 201), 4);
    assert_int_equal(sld_store_offset_at_time(txn, a, 400), 5);
    assert_int_equal(sld_store_offset_at_time(txn, a, 401), 6);
    assert_int_equal(sld_store_offset_at_time(txn, 77, 0), SLD_OFFSET_NONE);
    sld_txn_abort(&txn);
}

/* Append 1 KiB records in txns of 10 until the map is full; returns how
 * many were committed. */
static uint64_t s_fill_until_full(fixture_t *f, uint32_t id)
{
    char buf[1024];
    uint64_t committed = 0, off;
    memset(buf, 'q', sizeof buf);
    for (;;) {
        sld_txn_t *txn;
        int rc = 0;
        assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
        for (int i = 0; i < 10 && rc == 0; i++)
            rc = sld_store_append(txn, id, 1, buf, sizeof buf, &off);
        if (rc == SL_EFULL) {
            /* The txn is dead: later calls on it report the same. */
            assert_int_equal(sld_store_append(txn, id, 1, buf, 1, &off), SL_EFULL);
            sld_txn_abort(&txn);
            return committed;
        }
        assert_int_equal(rc, 0);
        rc = sld_txn_commit(&txn);
        if (rc == SL_EFULL)
            return committed;
        assert_int_equal(rc, 0);
        committed += 10;
        assert_true(committed < 100000);
    }
}

/* ----------------------------------------------------------- named tables */

typedef struct {
    char keys[8][16];
    char vals[8][16];
    int count;
    int stop_at;                /* return 5 at this call (1-based); 0: never */
} rec_list_t;

static int s_collect_rec(const void *key, size_t klen, const void *val, size_t vlen,
                         void *arg)
{
    rec_list_t *l = arg;
    size_t kshown = klen < 15 ? klen : 15;      /* a long key: its start */
    assert_true(l->count < 8 && vlen < 16);
    memcpy(l->keys[l->count], key, kshown);
    l->keys[l->count][kshown] = 0;
    memcpy(l->vals[l->count], val, vlen);
    l->vals[l->count][vlen] = 0;
    l->count++;
    return l->count == l->stop_at ? 5 : 0;
}

static void s_expect_value(sld_txn_t *txn, sld_table_t table, const char *key,
                           const char *val)
{
    const void *v;
    size_t vlen;
    assert_int_equal(sld_table_get(txn, table, key, strlen(key), &v, &vlen), 0);
    assert_int_equal(vlen, strlen(val));
    assert_memory_equal(v, val, vlen);
}

/* put / get / del / del_prefix / foreach by prefix and from a key, each
 * table on its own, values across a reopen, an abort discarding it all. */
static void test_table(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    rec_list_t l;
    const void *v;
    size_t vlen;
    static char big[SLD_TABLE_KEY_MAX + 1];
    memset(big, 'k', sizeof big);
    s_open(f);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_table_put(txn, SLD_TABLE_REGISTRY, "b/1", 3, "one", 3), 0);
    assert_int_equal(sld_table_put(txn, SLD_TABLE_REGISTRY, "c/1", 3, "three", 5), 0);
    assert_int_equal(sld_table_put(txn, SLD_TABLE_REGISTRY, "b/2", 3, "two", 3), 0);
    assert_int_equal(sld_table_put(txn, SLD_TABLE_REGISTRY, "b", 1, NULL, 0), 0);
    assert_int_equal(sld_table_put(txn, SLD_TABLE_REGISTRY, "b/2", 3, "TWO", 3), 0);
    assert_int_equal(sld_table_put(txn, SLD_TABLE_IDENTS, "b/1", 3, "ident", 5), 0);
    assert_int_equal(sld_table_put(txn, SLD_TABLE_REGISTRY, "", 0, "x", 1), SL_EINVAL);
    assert_int_equal(sld_table_put(txn, SLD_TABLE_REGISTRY, big, sizeof big, "x", 1),
                     SL_EINVAL);
    assert_int_equal(sld_table_put(txn, SLD_TABLE_REGISTRY, big, sizeof big - 1, "x", 1), 0);
    /* The write txn sees its own writes. */
    s_expect_value(txn, SLD_TABLE_REGISTRY, "b/1", "one");
    assert_int_equal(sld_txn_commit(&txn), 0);

    s_reopen(f);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    s_expect_value(txn, SLD_TABLE_REGISTRY, "b/2", "TWO");
    s_expect_value(txn, SLD_TABLE_REGISTRY, "b", "");
    s_expect_value(txn, SLD_TABLE_IDENTS, "b/1", "ident");     /* tables apart */
    assert_int_equal(sld_table_get(txn, SLD_TABLE_SUBS, "b/1", 3, &v, &vlen), SL_ENOTFOUND);
    assert_int_equal(sld_table_get(txn, SLD_TABLE_REGISTRY, "b/3", 3, &v, &vlen),
                     SL_ENOTFOUND);
    memset(&l, 0, sizeof l);
    assert_int_equal(sld_table_foreach(txn, SLD_TABLE_REGISTRY, "b/", 2, s_collect_rec, &l), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.keys[0], "b/1");
    assert_string_equal(l.vals[0], "one");
    assert_string_equal(l.keys[1], "b/2");
    assert_string_equal(l.vals[1], "TWO");
    memset(&l, 0, sizeof l);
    assert_int_equal(sld_table_foreach_from(txn, SLD_TABLE_REGISTRY, "b/15", 4, 2,
                                            s_collect_rec, &l), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.keys[0], "b/2");
    memset(&l, 0, sizeof l);
    l.stop_at = 2;
    assert_int_equal(sld_table_foreach(txn, SLD_TABLE_REGISTRY, NULL, 0, s_collect_rec, &l),
                     5);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.keys[0], "b");
    assert_string_equal(l.keys[1], "b/1");
    sld_txn_abort(&txn);

    /* An abort discards puts and deletes alike. */
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_table_del(txn, SLD_TABLE_REGISTRY, "b/1", 3), 0);
    assert_int_equal(sld_table_del(txn, SLD_TABLE_REGISTRY, "b/1", 3), SL_ENOTFOUND);
    assert_int_equal(sld_table_del_prefix(txn, SLD_TABLE_REGISTRY, "c/", 2), 0);
    assert_int_equal(sld_table_put(txn, SLD_TABLE_REGISTRY, "d", 1, "new", 3), 0);
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    s_expect_value(txn, SLD_TABLE_REGISTRY, "b/1", "one");
    s_expect_value(txn, SLD_TABLE_REGISTRY, "c/1", "three");
    assert_int_equal(sld_table_get(txn, SLD_TABLE_REGISTRY, "d", 1, &v, &vlen), SL_ENOTFOUND);
    sld_txn_abort(&txn);

    /* del_prefix takes the prefix's keys and nothing else. */
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_table_del_prefix(txn, SLD_TABLE_REGISTRY, "b/", 2), 0);
    assert_int_equal(sld_table_del_prefix(txn, SLD_TABLE_REGISTRY, "x/", 2), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    memset(&l, 0, sizeof l);
    assert_int_equal(sld_table_foreach(txn, SLD_TABLE_REGISTRY, NULL, 0, s_collect_rec, &l), 0);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.keys[0], "b");
    assert_string_equal(l.keys[1], "c/1");
    assert_int_equal(l.keys[2][0], 'k');
    s_expect_value(txn, SLD_TABLE_IDENTS, "b/1", "ident");
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

/* ----------------------------------------------------- commit in two steps */

/* flush then sync is a commit: nothing of it is visible before sync (the
 * committed state neither, between sync_lmdb and sync_apply), all of it
 * after, in memory and to a new read txn. */
static void test_flush_sync(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn, *rd;
    uint32_t a, b;
    uint64_t off;
    const void *env;
    size_t len;
    s_open(f);
    a = s_topic(f, "a");
    s_fill(f, a, 3, 100, 1, 0);

    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_ensure(txn, "b", &b), 0);
    assert_int_equal(sld_store_append(txn, b, 7, "b-0", 3, &off), 0);
    assert_int_equal(sld_store_append(txn, a, 8, "a-3", 3, &off), 0);
    assert_int_equal(off, 3);
    assert_int_equal(sld_txn_flush(txn), 0);
    assert_null(sld_store_topic_by_name(f->store, "b"));
    assert_int_equal(sld_store_topic_by_id(f->store, a)->next_offset, 3);
    assert_int_equal(sld_store_begin(f->store, false, &rd), 0);
    assert_int_equal(sld_store_read(rd, a, 3, &env, &len, NULL), SL_ENOTFOUND);
    sld_txn_abort(&rd);
    assert_int_equal(sld_txn_sync(&txn), 0);
    assert_null(txn);
    assert_int_equal(sld_store_topic_by_id(f->store, a)->next_offset, 4);
    assert_non_null(sld_store_topic_by_name(f->store, "b"));
    assert_int_equal(sld_store_topic_by_name(f->store, "b")->messages, 1);
    assert_int_equal(sld_store_begin(f->store, false, &rd), 0);
    s_expect_record(rd, a, 3, "a-3", 8);
    s_expect_record(rd, b, 0, "b-0", 7);
    sld_txn_abort(&rd);

    /* The two halves of sync: LMDB has it, memory takes it at apply. */
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_append(txn, a, 9, "a-4", 3, &off), 0);
    assert_int_equal(sld_txn_flush(txn), 0);
    assert_int_equal(sld_txn_sync_lmdb(txn), 0);
    assert_int_equal(sld_store_topic_by_id(f->store, a)->next_offset, 4);
    assert_int_equal(sld_txn_sync_apply(&txn), 0);
    assert_null(txn);
    assert_int_equal(sld_store_topic_by_id(f->store, a)->next_offset, 5);

    /* A read txn commits as it aborts. */
    assert_int_equal(sld_store_begin(f->store, false, &rd), 0);
    assert_int_equal(sld_txn_flush(rd), 0);
    assert_int_equal(sld_txn_sync(&rd), 0);
    assert_null(rd);
    s_reopen(f);
    assert_int_equal(sld_store_topic_by_id(f->store, a)->next_offset, 5);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

/* A write that failed makes flush fail with it; the abort that follows
 * leaves nothing: no topic, no record, no producer seq, on disk or in
 * memory. */
static void test_flush_error_aborts(void **state)
{
    fixture_t *f = *state;
    uint8_t producer[16] = { 9 };
    char buf[1024];
    sld_txn_t *txn;
    uint32_t a, fresh;
    uint64_t off, next;
    int rc = 0;
    memset(buf, 'z', sizeof buf);
    f->opts.map_size = 1 * MIB;
    f->opts.map_size_max = 1 * MIB;
    s_open(f);
    a = s_topic(f, "a");
    (void) s_fill_until_full(f, a);
    next = sld_store_topic_by_id(f->store, a)->next_offset;

    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_ensure(txn, "fresh", &fresh), 0);
    assert_int_equal(sld_store_producer_record(txn, producer, 1, a, next), 0);
    for (int i = 0; i < 1000 && rc == 0; i++)
        rc = sld_store_append(txn, a, 1, buf, sizeof buf, &off);
    assert_int_equal(rc, SL_EFULL);
    assert_int_equal(sld_txn_flush(txn), SL_EFULL);
    sld_txn_abort(&txn);
    assert_null(txn);

    assert_null(sld_store_topic_by_name(f->store, "fresh"));
    assert_int_equal(sld_store_topic_by_id(f->store, a)->next_offset, next);
    assert_int_equal(sld_store_producer_last_seq(f->store, producer), 0);
    s_reopen(f);
    assert_null(sld_store_topic_by_name(f->store, "fresh"));
    assert_int_equal(sld_store_topic_by_id(f->store, a)->next_offset, next);
    assert_int_equal(sld_store_producer_last_seq(f->store, producer), 0);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

/* A full map is SL_EFULL wherever in the transaction it strikes: in an
 * append, or in the topic and producer records written at commit. Once,
 * the topic record's put failed unnoticed at commit and the producer put
 * after it reported LMDB's MDB_BAD_TXN instead: a storage error, which the
 * broker does not answer by growing the map. With the map just full,
 * appends of every size from large to small find the sizes whose append
 * still fits and whose commit does not. */
static void test_map_full_anywhere_is_full(void **state)
{
    fixture_t *f = *state;
    uint8_t producer[16] = { 7 };
    static char buf[8192];
    int at_commit = 0;
    uint64_t seq = 0, off;
    memset(buf, 'f', sizeof buf);
    f->opts.map_size = 1 * MIB;
    f->opts.map_size_max = 1 * MIB;
    s_open(f);
    uint32_t a = s_topic(f, "a");
    (void) s_fill_until_full(f, a);
    for (size_t size = sizeof buf; size > 0; size -= size > 64 ? 7 : 1) {
        sld_txn_t *txn;
        assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
        int rc = sld_store_append(txn, a, 1, buf, size, &off);
        if (rc == 0)
            rc = sld_store_producer_record(txn, producer, seq + 1, a, off);
        if (rc) {
            sld_txn_abort(&txn);
        } else {
            rc = sld_txn_commit(&txn);
            at_commit += rc != 0;
            seq += rc == 0;
        }
        assert_true(rc == 0 || rc == SL_EFULL);
    }
    assert_true(at_commit > 0);     /* the case this test is for was reached */
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

/* Append COUNT 1 KiB records to topic ID in one transaction. 0 or the
 * first failure (SL_EFULL). */
static int s_append_kib(fixture_t *f, uint32_t id, int count)
{
    char buf[1024];
    uint64_t off;
    sld_txn_t *txn;
    int rc = sld_store_begin(f->store, true, &txn);
    memset(buf, 'r', sizeof buf);
    for (int i = 0; i < count && rc == 0; i++)
        rc = sld_store_append(txn, id, 1, buf, sizeof buf, &off);
    rc = rc ? rc : sld_txn_commit(&txn);
    sld_txn_abort(&txn);
    return rc;
}

/* A retention pass on a full map frees pages that LMDB hands out only after
 * one more commit: until then a write larger than the room left at the
 * map's end fails with the map full though most of it is free, and a broker
 * whose producers only retried stayed refused for good (test_faults caught
 * it one run in seven). sld_store_settle makes that one more commit. */
static void test_trim_on_full_map_settles(void **state)
{
    fixture_t *f = *state;
    uint64_t used, map;
    size_t trimmed;
    sld_txn_t *txn;
    f->opts.map_size = 1 * MIB;
    f->opts.map_size_max = 1 * MIB;
    s_open(f);
    uint32_t a = s_topic(f, "a");
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_set_retention(txn, a, 0, 64 * 1024), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    int n = 0;
    while (s_append_kib(f, a, 1) == 0)
        n++;
    assert_true(n > 300);
    /* Some room at the end again, as the broker keeps for retention. */
    sld_store_set_map_max(f->store, 1 * MIB + 128 * 1024);
    assert_int_equal(sld_store_grow(f->store), 0);
    assert_int_equal(sld_store_trim(f->store, 1, 0, 100000, &trimmed), 0);
    assert_true(trimmed > (size_t) n / 2);
    sld_store_usage(f->store, &used, &map);
    assert_true(used < map / 2);
    /* Larger than the end's room: the freed pages are not reusable yet. */
    assert_int_equal(s_append_kib(f, a, 256), SL_EFULL);
    assert_int_equal(sld_store_settle(f->store), 0);
    assert_int_equal(s_append_kib(f, a, 256), 0);
    assert_int_equal(s_append_kib(f, a, 256), 0);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

static void test_map_full_and_grow(void **state)
{
    fixture_t *f = *state;
    uint32_t a;
    uint64_t n1, n2, used, map;
    sld_txn_t *txn;
    f->opts.map_size = 1 * MIB;
    f->opts.map_size_max = 2 * MIB;
    s_open(f);
    a = s_topic(f, "a");
    n1 = s_fill_until_full(f, a);
    assert_true(n1 > 100);
    assert_int_equal(sld_store_topic_by_id(f->store, a)->messages, n1);
    sld_store_usage(f->store, &used, &map);
    assert_int_equal(map, 1 * MIB);
    assert_true(used > 0 && used <= map);

    assert_int_equal(sld_store_grow(f->store), 0);
    sld_store_usage(f->store, NULL, &map);
    assert_int_equal(map, 2 * MIB);
    n2 = s_fill_until_full(f, a);
    assert_true(n2 > 100);
    assert_int_equal(sld_store_grow(f->store), SL_EFULL);

    /* Everything committed before is still there and readable. */
    assert_int_equal(sld_store_topic_by_id(f->store, a)->messages, n1 + n2);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    for (uint64_t i = 0; i < n1 + n2; i++) {
        const void *env;
        size_t len;
        assert_int_equal(sld_store_read(txn, a, i, &env, &len, NULL), 0);
        assert_int_equal(len, 1024);
        assert_int_equal(((const char *) env)[1023], 'q');
    }
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);

    /* Raising the ceiling lets appends resume. */
    sld_store_set_map_max(f->store, 4 * MIB);
    assert_int_equal(sld_store_grow(f->store), 0);
    s_fill(f, a, 10, 1, 1, 1024);
    assert_int_equal(sld_store_topic_by_id(f->store, a)->messages, n1 + n2 + 10);

    /* Reopening with the small configured map still sees all the data. */
    s_reopen(f);
    assert_int_equal(sld_store_topic_by_id(f->store, a)->messages, n1 + n2 + 10);
    sld_store_usage(f->store, &used, &map);
    assert_true(map >= used);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

static int s_verify_no_bad(const void *env, size_t len)
{
    return len >= 3 && memcmp(env, "bad", 3) == 0 ? -1 : 0;
}

static void test_check(void **state)
{
    fixture_t *f = *state;
    char *text = NULL;
    size_t size = 0;
    FILE *out;
    sld_txn_t *txn;
    uint32_t a;
    uint64_t off;
    s_open(f);
    a = s_topic(f, "a");
    s_fill(f, a, 5, 1, 1, 0);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_subrec_put(txn, "s", "c", 1), 0);
    assert_int_equal(sld_subrec_cursor_put(txn, "s", a, 3), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);

    out = open_memstream(&text, &size);
    assert_non_null(out);
    assert_int_equal(sld_store_check(f->store, s_verify_no_bad, out), 0);
    fclose(out);
    assert_non_null(strstr(text, "store check: 1 topics, 5 records, 1 subscriptions, 0 problems"));
    free(text);

    /* A record the verifier rejects and a cursor past the end are found. */
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_append(txn, a, 9, "bad!", 4, &off), 0);
    assert_int_equal(sld_subrec_cursor_put(txn, "s", a, 1000), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    out = open_memstream(&text, &size);
    assert_non_null(out);
    assert_int_equal(sld_store_check(f->store, s_verify_no_bad, out), SL_ESTORE);
    fclose(out);
    assert_non_null(strstr(text, "2 problems"));
    assert_non_null(strstr(text, "record 5"));
    free(text);
}

static void test_refuses_garbage(void **state)
{
    fixture_t *f = *state;
    char file[160];
    uint8_t junk[65536], back[sizeof junk];
    int fd;
    s_open(f);
    s_topic(f, "a");
    sld_store_destroy(&f->store);
    snprintf(file, sizeof file, "%s/data.mdb", f->path);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t) (i * 7 + 3);
    fd = open(file, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t) sizeof junk);
    close(fd);
    assert_int_equal(sld_store_open(&f->opts, &f->store), SL_ESTORE);
    assert_null(f->store);
    /* Never reset: the file is exactly as we left it. */
    fd = open(file, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, back, sizeof back), (ssize_t) sizeof back);
    close(fd);
    assert_memory_equal(junk, back, sizeof junk);
}

static void s_raw_put(const char *dir, const char *db, const char *key,
                      const void *val, size_t len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = { strlen(key), (void *) key }, v = { len, (void *) val };
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_refuses_other_format(void **state)
{
    fixture_t *f = *state;
    /* Format 1 (one producer index entry per seq), 3 and 5 (encrypted)
     * with no data keys, and a future 6. */
    static const uint8_t formats[4][4] = { { 0, 0, 0, 1 }, { 0, 0, 0, 3 }, { 0, 0, 0, 5 },
                                           { 0, 0, 0, 6 } };
    for (int i = 0; i < 4; i++) {
        s_open(f);
        sld_store_destroy(&f->store);
        s_raw_put(f->path, "meta", "format", formats[i], sizeof formats[i]);
        assert_int_equal(sld_store_open(&f->opts, &f->store), SL_ESTORE);
        assert_null(f->store);
        s_raw_put(f->path, "meta", "format", (const uint8_t[4]) { 0, 0, 0, 4 }, 4);
    }
}

static void test_refuses_foreign_lmdb(void **state)
{
    fixture_t *f = *state;
    /* Some other program's LMDB environment: data but no sluice meta. */
    char parent[96];
    snprintf(parent, sizeof parent, "%s/data", f->dir);
    assert_int_equal(mkdir(parent, 0700), 0);
    assert_int_equal(mkdir(f->path, 0700), 0);
    s_raw_put(f->path, "accounts", "alice", "1", 1);
    assert_int_equal(sld_store_open(&f->opts, &f->store), SL_ESTORE);
    assert_null(f->store);
}

static void test_many_appends_one_txn(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, b;
    uint64_t off;
    char buf[100];
    memset(buf, 'm', sizeof buf);
    s_open(f);
    a = s_topic(f, "a");
    b = s_topic(f, "b");
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    for (uint64_t i = 0; i < 100000; i++) {
        /* Interleave a lower-id topic so both append paths are used. */
        uint32_t id = i % 10 == 0 ? a : b;
        assert_int_equal(sld_store_append(txn, id, i, buf, sizeof buf, &off), 0);
    }
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_topic_by_id(f->store, a)->messages, 10000);
    assert_int_equal(sld_store_topic_by_id(f->store, b)->messages, 90000);
    assert_int_equal(sld_store_topic_by_id(f->store, b)->next_offset, 90000);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

/* ----------------------------------------------------- encryption at rest */

static const uint8_t s_key[SLD_SEAL_KEY_LEN] = {
    0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed,
    0xfe, 0x0f, 0x01, 0x12, 0x23, 0x34, 0x45, 0x56, 0x67, 0x78, 0x89, 0x9a, 0xab, 0xbc,
    0xcd, 0xde, 0xef, 0xf0,
};

/* Open with master key KEY (NULL: without); returns sld_store_open's code. */
static int s_open_key(fixture_t *f, const uint8_t *key)
{
    uint8_t copy[SLD_SEAL_KEY_LEN];
    int rc;
    if (key)
        memcpy(copy, key, sizeof copy);
    f->opts.seal_key = key ? copy : NULL;
    rc = sld_store_open(&f->opts, &f->store);
    /* The key is borrowed for the open only: the store must not need it. */
    memset(copy, 0, sizeof copy);
    f->opts.seal_key = NULL;
    return rc;
}

static void s_raw_msg_key(uint8_t k[12], uint32_t id, uint64_t off)
{
    for (int i = 0; i < 4; i++)
        k[i] = (uint8_t) (id >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        k[4 + i] = (uint8_t) (off >> (56 - 8 * i));
}

/* Read msgs (ID, OFF) of the closed store in DIR into OUT; returns its size. */
static size_t s_raw_msg_get(const char *dir, uint32_t id, uint64_t off, uint8_t *out,
                            size_t cap)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t kb[12];
    MDB_val k = { sizeof kb, kb }, v;
    s_raw_msg_key(kb, id, off);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "msgs", 0, &dbi), 0);
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    assert_true(v.mv_size <= cap);
    memcpy(out, v.mv_data, v.mv_size);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return v.mv_size;
}

static void s_raw_msg_put(const char *dir, uint32_t id, uint64_t off, const void *val,
                          size_t len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t kb[12];
    MDB_val k = { sizeof kb, kb }, v = { len, (void *) val };
    s_raw_msg_key(kb, id, off);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "msgs", 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* Data key id a sealed raw record names (0 when the record is plain). */
static uint32_t s_raw_key_id(const uint8_t *rec, size_t len)
{
    if (len <= SLD_RECORD_HEADER || rec[SLD_RECORD_HEADER] != 0)
        return 0;
    return (uint32_t) rec[9] << 24 | (uint32_t) rec[10] << 16 | (uint32_t) rec[11] << 8
           | rec[12];
}

/* Does the file DIR/data.mdb contain TEXT anywhere? */
static bool s_file_has(const char *dir, const char *text)
{
    char file[160];
    struct stat st;
    char *buf;
    int fd;
    bool found;
    snprintf(file, sizeof file, "%s/data.mdb", dir);
    fd = open(file, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    buf = malloc((size_t) st.st_size);
    assert_non_null(buf);
    assert_int_equal(read(fd, buf, (size_t) st.st_size), st.st_size);
    close(fd);
    found = memmem(buf, (size_t) st.st_size, text, strlen(text)) != NULL;
    free(buf);
    return found;
}

/* sld_store_check's report (caller frees); asserts its result is EXPECT. */
static char *s_check_text(fixture_t *f, int expect)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert_non_null(out);
    assert_int_equal(sld_store_check(f->store, NULL, out), expect);
    fclose(out);
    return text;
}

static void test_seal_roundtrip(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, kid;
    uint64_t off;
    enum { N = 300 };
    const void *envs[N];
    size_t lens[N];
    char buf[1000];
    assert_int_equal(s_open_key(f, s_key), 0);
    assert_int_equal(sld_store_seal_key_id(f->store), 1);
    a = s_topic(f, "a");
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    for (int i = 0; i < N; i++) {
        /* 1000-byte records: the opened copies span several arena chunks. */
        memset(buf, 'a' + i % 26, sizeof buf);
        snprintf(buf, sizeof buf, "record-%d", i);
        size_t len = i == 7 ? 0 : sizeof buf;
        assert_int_equal(sld_store_append(txn, a, 100 + (uint64_t) i, buf, len, &off), 0);
        assert_int_equal(off, (uint64_t) i);
    }
    /* The write txn reads its own sealed appends. */
    s_expect_record(txn, a, 7, "", 107);
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_topic_by_id(f->store, a)->bytes,
                     N * (SLD_RECORD_HEADER + SLD_RECORD_SEAL_OVERHEAD)
                     + (N - 1) * sizeof buf);

    /* Every envelope of one read txn stays valid while the others are read. */
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    for (int i = 0; i < N; i++) {
        uint64_t t;
        assert_int_equal(sld_store_read(txn, a, (uint64_t) i, &envs[i], &lens[i], &t), 0);
        assert_int_equal(t, 100 + (uint64_t) i);
    }
    for (int i = 0; i < N; i++) {
        char want[32];
        int n = snprintf(want, sizeof want, "record-%d", i);
        if (i == 7) {
            assert_int_equal(lens[i], 0);
            continue;
        }
        assert_int_equal(lens[i], sizeof buf);
        assert_memory_equal(envs[i], want, (size_t) n + 1);
        assert_int_equal(((const char *) envs[i])[sizeof buf - 1], 'a' + i % 26);
    }
    /* Time seeks use the plain header. */
    assert_int_equal(sld_store_offset_at_time(txn, a, 150), 50);
    sld_txn_abort(&txn);

    char *text = s_check_text(f, 0);
    assert_non_null(strstr(text, "300 records (0 plain, 300 sealed; data key 1 current)"));
    free(text);

    /* A store opened without a key: nothing to rotate. */
    sld_store_destroy(&f->store);
    strcat(f->path, "-plain");
    s_open(f);
    assert_int_equal(sld_store_seal_key_id(f->store), 0);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_rotate_key(txn, &kid), SL_EINVAL);
    sld_txn_abort(&txn);
}

static void test_seal_no_plaintext_on_disk(void **state)
{
    fixture_t *f = *state;
    const char *payload = "payload PLAINTEXT-MARKER-5e1d in the body";
    const char *msg_id = "MSGID-MARKER-90ab";
    sld_txn_t *txn;
    uint32_t a;
    uint64_t off;
    const void *env;
    size_t len;
    /* Encrypted first, then the same without a key: the markers must be
     * found there, or this test could not fail. */
    for (int keyed = 1; keyed >= 0; keyed--) {
        assert_int_equal(s_open_key(f, keyed ? s_key : NULL), 0);
        a = s_topic(f, "orders");
        assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
        for (int i = 0; i < 50; i++)
            assert_int_equal(sld_store_append(txn, a, 1, payload, strlen(payload), &off), 0);
        assert_int_equal(sld_store_dedup_record(txn, a, msg_id, strlen(msg_id), 1, 0), 0);
        assert_int_equal(sld_txn_commit(&txn), 0);
        /* Reads in between: opened plaintext must not reach the file. */
        assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
        assert_int_equal(sld_store_read(txn, a, 3, &env, &len, NULL), 0);
        assert_int_equal(len, strlen(payload));
        assert_memory_equal(env, payload, len);
        sld_txn_abort(&txn);
        s_fill(f, a, 20, 2, 1, 0);
        sld_store_destroy(&f->store);
        assert_int_equal(s_file_has(f->path, "PLAINTEXT-MARKER-5e1d"), !keyed);
        assert_int_equal(s_file_has(f->path, "MSGID-MARKER-90ab"), !keyed);
        /* Topic names are not sealed (and prove the search works). */
        assert_true(s_file_has(f->path, "orders"));
        strcat(f->path, "-plain");
    }
}

static void test_seal_reopen_keys(void **state)
{
    fixture_t *f = *state;
    uint8_t wrong[SLD_SEAL_KEY_LEN];
    sld_txn_t *txn;
    uint32_t a;
    assert_int_equal(s_open_key(f, s_key), 0);
    a = s_topic(f, "a");
    s_fill(f, a, 3, 10, 1, 0);
    sld_store_destroy(&f->store);

    memcpy(wrong, s_key, sizeof wrong);
    wrong[31] ^= 1;
    assert_int_equal(s_open_key(f, wrong), SL_ESTORE);
    assert_null(f->store);
    assert_int_equal(s_open_key(f, NULL), SL_ESTORE);
    assert_null(f->store);

    assert_int_equal(s_open_key(f, s_key), 0);
    assert_int_equal(sld_store_seal_key_id(f->store), 1);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    s_expect_record(txn, a, 0, "msg-0", 10);
    s_expect_record(txn, a, 2, "msg-2", 12);
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_check(f->store, NULL, NULL), 0);
}

static void test_seal_rotation(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, kid;
    uint64_t off;
    uint8_t rec[256];
    size_t len;
    assert_int_equal(s_open_key(f, s_key), 0);
    a = s_topic(f, "a");
    s_fill(f, a, 1, 10, 1, 0);                  /* msg-0: key 1 */
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_rotate_key(txn, &kid), 0);
    assert_int_equal(kid, 2);
    /* Pending: the committed current key is still 1. */
    assert_int_equal(sld_store_seal_key_id(f->store), 1);
    assert_int_equal(sld_store_append(txn, a, 11, "after", 5, &off), 0);  /* key 2 */
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_seal_key_id(f->store), 2);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_append(txn, a, 12, "later", 5, &off), 0);  /* key 2 */
    assert_int_equal(sld_txn_commit(&txn), 0);

    /* An aborted rotation leaves key 2 current, in memory and on disk. */
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_rotate_key(txn, &kid), 0);
    assert_int_equal(kid, 3);
    assert_int_equal(sld_store_append(txn, a, 13, "gone", 4, &off), 0);
    sld_txn_abort(&txn);
    assert_int_equal(sld_store_seal_key_id(f->store), 2);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_append(txn, a, 14, "last", 4, &off), 0);   /* key 2 */
    assert_int_equal(off, 3);
    assert_int_equal(sld_txn_commit(&txn), 0);

    sld_store_destroy(&f->store);
    assert_int_equal(s_open_key(f, s_key), 0);
    assert_int_equal(sld_store_seal_key_id(f->store), 2);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    s_expect_record(txn, a, 0, "msg-0", 10);
    s_expect_record(txn, a, 1, "after", 11);
    s_expect_record(txn, a, 2, "later", 12);
    s_expect_record(txn, a, 3, "last", 14);
    sld_txn_abort(&txn);
    char *text = s_check_text(f, 0);
    assert_non_null(strstr(text, "4 records (0 plain, 4 sealed; data key 2 current)"));
    free(text);
    sld_store_destroy(&f->store);

    /* The raw values name the key that sealed them. */
    len = s_raw_msg_get(f->path, a, 0, rec, sizeof rec);
    assert_int_equal(s_raw_key_id(rec, len), 1);
    len = s_raw_msg_get(f->path, a, 1, rec, sizeof rec);
    assert_int_equal(s_raw_key_id(rec, len), 2);
    assert_int_equal(len, SLD_RECORD_HEADER + SLD_RECORD_SEAL_OVERHEAD + 5);
    len = s_raw_msg_get(f->path, a, 3, rec, sizeof rec);
    assert_int_equal(s_raw_key_id(rec, len), 2);

    /* The next rotation, after the reopen, makes key 3. */
    assert_int_equal(s_open_key(f, s_key), 0);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_rotate_key(txn, &kid), 0);
    assert_int_equal(kid, 3);
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_seal_key_id(f->store), 3);
    s_fill(f, a, 1, 20, 1, 0);
    sld_store_destroy(&f->store);
    len = s_raw_msg_get(f->path, a, 4, rec, sizeof rec);
    assert_int_equal(s_raw_key_id(rec, len), 3);
}

static void test_seal_moved_record(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, b;
    uint8_t rec[256];
    size_t len;
    const void *env;
    uint64_t off;
    assert_int_equal(s_open_key(f, s_key), 0);
    a = s_topic(f, "a");
    b = s_topic(f, "b");
    s_fill(f, a, 5, 10, 1, 0);
    s_fill(f, b, 1, 10, 1, 0);
    sld_store_destroy(&f->store);

    len = s_raw_msg_get(f->path, a, 0, rec, sizeof rec);
    s_raw_msg_put(f->path, a, 1, rec, len);     /* another offset */
    s_raw_msg_put(f->path, b, 0, rec, len);     /* another topic, same offset */
    len = s_raw_msg_get(f->path, a, 2, rec, sizeof rec);
    rec[7] ^= 1;                                /* its time changed */
    s_raw_msg_put(f->path, a, 2, rec, len);
    len = s_raw_msg_get(f->path, a, 3, rec, sizeof rec);
    rec[len - 1] ^= 0x80;                       /* a flipped bit */
    s_raw_msg_put(f->path, a, 3, rec, len);
    /* A forged plain record where only sealed ones were written. */
    memset(rec, 0, SLD_RECORD_HEADER);
    memcpy(rec + SLD_RECORD_HEADER, "forged", 6);
    s_raw_msg_put(f->path, a, 4, rec, SLD_RECORD_HEADER + 6);

    assert_int_equal(s_open_key(f, s_key), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    s_expect_record(txn, a, 0, "msg-0", 10);
    assert_int_equal(sld_store_read(txn, a, 1, &env, &len, NULL), SL_ESTORE);
    assert_int_equal(sld_store_read(txn, b, 0, &env, &len, NULL), SL_ESTORE);
    assert_int_equal(sld_store_read(txn, a, 2, &env, &len, NULL), SL_ESTORE);
    assert_int_equal(sld_store_read(txn, a, 3, &env, &len, NULL), SL_ESTORE);
    assert_int_equal(sld_store_read(txn, a, 4, &env, &len, NULL), SL_ESTORE);
    sld_txn_abort(&txn);
    char *text = s_check_text(f, SL_ESTORE);
    assert_non_null(strstr(text, "topic a: record 1 (data key 1) does not open"));
    assert_non_null(strstr(text, "topic a: record 2 (data key 1) does not open"));
    assert_non_null(strstr(text, "topic a: record 3 (data key 1) does not open"));
    assert_non_null(strstr(text, "topic b: record 0 (data key 1) does not open"));
    assert_non_null(strstr(text, "topic a: record 4 is not sealed"));
    free(text);
    /* The store goes on: appends still work and read back. */
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_append(txn, a, 30, "fine", 4, &off), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    s_expect_record(txn, a, off, "fine", 30);
    sld_txn_abort(&txn);
}

static void test_seal_plain_store_upgrade(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, c;
    uint8_t rec[256];
    size_t len;
    uint64_t off;
    s_open(f);
    a = s_topic(f, "a");
    s_fill(f, a, 2, 10, 1, 0);
    sld_store_destroy(&f->store);

    assert_int_equal(s_open_key(f, s_key), 0);
    assert_int_equal(sld_store_seal_key_id(f->store), 1);
    c = s_topic(f, "c");
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_append(txn, a, 12, "new", 3, &off), 0);
    assert_int_equal(off, 2);
    assert_int_equal(sld_store_append(txn, c, 13, "new-c", 5, &off), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    sld_store_destroy(&f->store);

    /* Now encrypted: without the key it is refused. */
    assert_int_equal(s_open_key(f, NULL), SL_ESTORE);
    len = s_raw_msg_get(f->path, a, 1, rec, sizeof rec);
    assert_int_equal(s_raw_key_id(rec, len), 0);
    len = s_raw_msg_get(f->path, a, 2, rec, sizeof rec);
    assert_int_equal(s_raw_key_id(rec, len), 1);

    assert_int_equal(s_open_key(f, s_key), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    s_expect_record(txn, a, 0, "msg-0", 10);
    s_expect_record(txn, a, 1, "msg-1", 11);
    s_expect_record(txn, a, 2, "new", 12);
    s_expect_record(txn, c, 0, "new-c", 13);
    sld_txn_abort(&txn);
    char *text = s_check_text(f, 0);
    assert_non_null(strstr(text, "4 records (2 plain, 2 sealed; data key 1 current)"));
    free(text);
}

static void test_seal_dedup(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    uint32_t a, b, kid;
    uint64_t off = 0;
    const uint64_t win = 60 * 1000000ull, t0 = 1000000000ull;
    assert_int_equal(s_open_key(f, s_key), 0);
    a = s_topic(f, "a");
    b = s_topic(f, "b");
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_dedup_check(txn, a, "order-17", 8, t0, win, &off), 0);
    assert_int_equal(sld_store_dedup_record(txn, a, "order-17", 8, t0, 41), 0);
    assert_int_equal(sld_store_dedup_check(txn, a, "order-17", 8, t0, win, &off), 1);
    assert_int_equal(off, 41);
    assert_int_equal(sld_store_dedup_check(txn, a, "order-17", 0, t0, win, &off), SL_EINVAL);
    assert_int_equal(sld_txn_commit(&txn), 0);
    /* A rotation does not change how a msg id is found. */
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_rotate_key(txn, &kid), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    sld_store_destroy(&f->store);

    assert_int_equal(s_open_key(f, s_key), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    off = 0;
    assert_int_equal(sld_store_dedup_check(txn, a, "order-17", 8, t0 + 1000, win, &off), 1);
    assert_int_equal(off, 41);
    assert_int_equal(sld_store_dedup_check(txn, a, "order-18", 8, t0 + 1000, win, &off), 0);
    assert_int_equal(sld_store_dedup_check(txn, b, "order-17", 8, t0 + 1000, win, &off), 0);
    sld_txn_abort(&txn);
    /* Expiry through dedup_exp works on the hashed keys too. */
    assert_int_equal(sld_store_trim(f->store, t0 + win, win, 100, NULL), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_dedup_check(txn, a, "order-17", 8, t0, UINT64_MAX, &off), 0);
    sld_txn_abort(&txn);
}

static void s_write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void test_seal_keyfile(void **state)
{
    fixture_t *f = *state;
    char path[128], other[128], err[256];
    uint8_t key[SLD_SEAL_KEY_LEN], again[SLD_SEAL_KEY_LEN], zero[SLD_SEAL_KEY_LEN] = { 0 };
    struct stat st;
    snprintf(path, sizeof path, "%s/master.key", f->dir);
    snprintf(other, sizeof other, "%s/other.key", f->dir);

    assert_int_equal(sld_seal_key_create(path, err, sizeof err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(sld_seal_key_load(path, key, err, sizeof err), 0);
    assert_int_equal(sld_seal_key_load(path, again, err, sizeof err), 0);
    assert_memory_equal(key, again, sizeof key);
    assert_memory_not_equal(key, zero, sizeof key);
    /* Never overwritten. */
    assert_int_equal(sld_seal_key_create(path, err, sizeof err), SL_EEXIST);
    assert_int_equal(sld_seal_key_load(path, again, err, sizeof err), 0);
    assert_memory_equal(key, again, sizeof key);
    /* A second key file holds another key. */
    assert_int_equal(sld_seal_key_create(other, err, sizeof err), 0);
    assert_int_equal(sld_seal_key_load(other, again, err, sizeof err), 0);
    assert_memory_not_equal(key, again, sizeof key);

    /* The loaded key opens a store, as the broker will use it. */
    assert_int_equal(s_open_key(f, key), 0);
    assert_int_equal(sld_store_seal_key_id(f->store), 1);
    sld_store_destroy(&f->store);
    assert_int_equal(s_open_key(f, again), SL_ESTORE);

    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(sld_seal_key_load(path, again, err, sizeof err), SL_EDENIED);
    assert_non_null(strstr(err, "is readable by group or others (mode 0644): chmod 600"));
    assert_memory_equal(again, zero, sizeof again);
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(sld_seal_key_load(path, again, err, sizeof err), SL_EDENIED);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(sld_seal_key_load(path, again, err, sizeof err), 0);
    assert_memory_equal(key, again, sizeof key);

    /* The format: comments, blank lines, spaces, CRLF; exactly one key. */
    s_write_file(other, "# a comment\n\n  00112233445566778899aabbccddeeff"
                 "00112233445566778899AABBCCDDEEFF \r\n# end\n", 0600);
    assert_int_equal(sld_seal_key_load(other, key, err, sizeof err), 0);
    assert_int_equal(key[0], 0x00);
    assert_int_equal(key[1], 0x11);
    assert_int_equal(key[31], 0xff);
    s_write_file(other, "0011223344556677889900112233445566778899001122334455667788990011",
                 0600);     /* no newline at all */
    assert_int_equal(sld_seal_key_load(other, key, err, sizeof err), 0);
    s_write_file(other, "hello, world\n", 0600);
    assert_int_equal(sld_seal_key_load(other, key, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "64 hex characters"));
    assert_memory_equal(key, zero, sizeof key);
    s_write_file(other, "zz11223344556677889900112233445566778899001122334455667788990011\n",
                 0600);
    assert_int_equal(sld_seal_key_load(other, key, err, sizeof err), SL_EINVAL);
    s_write_file(other, "00112233445566778899001122334455667788990011223344556677889900\n",
                 0600);     /* 31 bytes */
    assert_int_equal(sld_seal_key_load(other, key, err, sizeof err), SL_EINVAL);
    s_write_file(other, "# only a comment\n", 0600);
    assert_int_equal(sld_seal_key_load(other, key, err, sizeof err), SL_EINVAL);
    s_write_file(other, "0011223344556677889900112233445566778899001122334455667788990011\n"
                 "0011223344556677889900112233445566778899001122334455667788990011\n",
                 0600);
    assert_int_equal(sld_seal_key_load(other, key, err, sizeof err), SL_EINVAL);
    snprintf(other, sizeof other, "%s/missing.key", f->dir);
    assert_int_equal(sld_seal_key_load(other, key, err, sizeof err), SL_ENOTFOUND);
    assert_int_equal(sld_seal_key_load(f->dir, key, err, sizeof err), SL_EINVAL);
}

/* ---------------------------------------------------------------- damage */

#define S_PG 4096
#define S_F_DUPDATA 0x04

static void s_data_path(const fixture_t *f, char *buf, size_t len)
{
    snprintf(buf, len, "%s/data.mdb", f->path);
}

static uint16_t s_le16(const uint8_t *b)
{
    return (uint16_t) (b[0] | b[1] << 8);
}

/* The whole of FILE (caller frees); *len its size. */
static uint8_t *s_slurp(const char *file, size_t *len)
{
    struct stat st;
    int fd = open(file, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t) st.st_size);
    assert_non_null(buf);
    assert_int_equal(read(fd, buf, (size_t) st.st_size), st.st_size);
    close(fd);
    *len = (size_t) st.st_size;
    return buf;
}

/* The page of FILE holding KEY (12 bytes) in a leaf, and *node the file
 * offset of its node; or, with BRANCH, a branch page whose keys carry
 * KEY's topic id. -1 when none. */
static long s_find_page(const char *file, const uint8_t key[12], bool branch, long *node)
{
    size_t len;
    uint8_t *buf = s_slurp(file, &len);
    long found = -1;
    for (size_t i = 2; found < 0 && (i + 1) * S_PG <= len; i++) {
        const uint8_t *p = buf + i * S_PG;
        unsigned flags = s_le16(p + 10), n = (s_le16(p + 12) - 16) / 2;
        if (flags != (branch ? 0x01u : 0x02u))
            continue;
        for (unsigned j = branch ? 1 : 0; j < n && found < 0; j++) {
            unsigned off = s_le16(p + 16 + 2 * j);
            if (off + 8 + 12 > S_PG || s_le16(p + off + 6) != 12)
                continue;
            if (memcmp(p + off + 8, key, branch ? 4 : 12) == 0) {
                found = (long) i;
                if (node)
                    *node = (long) (i * S_PG + off);
            }
        }
    }
    free(buf);
    return found;
}

static void s_poke(const char *file, long at, const void *bytes, size_t n)
{
    int fd = open(file, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, n, at), (ssize_t) n);
    close(fd);
}

static void s_raw_msg_del(const char *dir, uint32_t id, uint64_t off)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t kb[12];
    MDB_val k = { sizeof kb, kb };
    s_raw_msg_key(kb, id, off);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "msgs", 0, &dbi), 0);
    assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* A flipped byte in a plain record is found by its checksum: the record
 * is refused (SL_ESTORE, saying why), its neighbours read, and the check
 * names it. Before checksums it was handed out as if valid. */
static void test_damage_checksum(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    const void *env;
    size_t len, n;
    uint8_t rec[200];
    uint32_t a;
    s_open(f);
    a = s_topic(f, "a");
    s_fill(f, a, 3, 1, 1, 50);
    sld_store_destroy(&f->store);
    n = s_raw_msg_get(f->path, a, 1, rec, sizeof rec);
    assert_int_equal(n, SLD_RECORD_HEADER + SLD_RECORD_SUM_OVERHEAD + 50);
    rec[SLD_RECORD_HEADER + 1 + 20] ^= 0x01;
    s_raw_msg_put(f->path, a, 1, rec, n);
    s_open(f);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_read(txn, a, 0, &env, &len, NULL), 0);
    assert_true(sld_txn_verified(txn));
    assert_int_equal(sld_store_read(txn, a, 1, &env, &len, NULL), SL_ESTORE);
    assert_non_null(strstr(sld_txn_why(txn), "checksum"));
    assert_int_equal(sld_store_read(txn, a, 2, &env, &len, NULL), 0);
    assert_int_equal(len, 50);
    sld_txn_abort(&txn);
    char *text = s_check_text(f, SL_ESTORE);
    assert_non_null(strstr(text, "topic a: record 1 fails its checksum"));
    assert_non_null(strstr(text, ", 1 problems"));
    free(text);

    /* The last record damaged too: the start check says so. */
    sld_store_destroy(&f->store);
    n = s_raw_msg_get(f->path, a, 2, rec, sizeof rec);
    rec[n - 1] ^= 0x80;
    s_raw_msg_put(f->path, a, 2, rec, n);
    s_open(f);
    assert_int_equal(sld_store_damage(f->store), 1);
}

/* A store an older build left (format 2: topic records and message
 * records without checksums) still reads, read-only without a change,
 * and moves to format 4 at its first writable open: old records read
 * unverified, new ones carry a checksum, and a record without one above
 * the old ones is damage. */
static void test_damage_legacy_records(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    const void *env;
    size_t len;
    uint32_t a;
    uint64_t off;
    uint8_t topic[53] = { 1 }, rec[32];
    char *text;
    s_open(f);
    a = s_topic(f, "old");
    sld_store_destroy(&f->store);
    for (int i = 0; i < 4; i++)
        topic[1 + i] = (uint8_t) (a >> (24 - 8 * i));
    topic[20] = 3;                                  /* next offset */
    topic[28] = 3;                                  /* messages */
    topic[36] = 3 * (SLD_RECORD_HEADER + 5);        /* bytes */
    s_raw_put(f->path, "topics", "old", topic, sizeof topic);
    s_raw_put(f->path, "meta", "format", (const uint8_t[4]) { 0, 0, 0, 2 }, 4);
    for (uint64_t i = 0; i < 3; i++) {
        memset(rec, 0, SLD_RECORD_HEADER);
        rec[7] = (uint8_t) (i + 1);
        snprintf((char *) rec + SLD_RECORD_HEADER, sizeof rec - SLD_RECORD_HEADER,
                 "old-%d", (int) i);
        s_raw_msg_put(f->path, a, i, rec, SLD_RECORD_HEADER + 5);
    }

    /* Read-only (sluiced --check): reads it, changes nothing. */
    f->opts.read_only = true;
    s_open(f);
    assert_int_equal(sld_store_begin(f->store, true, &txn), SL_EINVAL);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_read(txn, a, 1, &env, &len, NULL), 0);
    assert_false(sld_txn_verified(txn));
    assert_memory_equal(env, "old-1", 5);
    sld_txn_abort(&txn);
    text = s_check_text(f, 0);
    assert_non_null(strstr(text, "3 plain records stored before checksums"));
    free(text);
    sld_store_destroy(&f->store);
    f->opts.read_only = false;
    assert_int_equal(s_raw_msg_get(f->path, a, 0, rec, sizeof rec), SLD_RECORD_HEADER + 5);

    /* Writable: moves to format 4. */
    s_open(f);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_append(txn, a, 9, "new-3", 5, &off), 0);
    assert_int_equal(off, 3);
    assert_int_equal(sld_txn_commit(&txn), 0);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    for (uint64_t i = 0; i < 4; i++) {
        assert_int_equal(sld_store_read(txn, a, i, &env, &len, NULL), 0);
        assert_int_equal(sld_txn_verified(txn), i == 3);
    }
    sld_txn_abort(&txn);
    text = s_check_text(f, 0);
    assert_non_null(strstr(text, "0 problems; 3 plain records stored before checksums"));
    free(text);
    sld_store_destroy(&f->store);
    assert_int_equal(s_raw_msg_get(f->path, a, 3, rec, sizeof rec),
                     SLD_RECORD_HEADER + SLD_RECORD_SUM_OVERHEAD + 5);

    /* A record without a checksum where only new ones were written. */
    memcpy(rec + SLD_RECORD_HEADER, "fake!", 5);
    s_raw_msg_put(f->path, a, 3, rec, SLD_RECORD_HEADER + 5);
    s_open(f);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_read(txn, a, 3, &env, &len, NULL), SL_ESTORE);
    assert_non_null(strstr(sld_txn_why(txn), "no checksum"));
    sld_txn_abort(&txn);
}

/* data.mdb cut to half its size, or to nothing: refused at open, the
 * read-only open (--check) too, never a SIGBUS, nothing changed. Before,
 * the half-size file killed the process on the first read past its end,
 * and the empty one was taken for a new store. */
static void test_damage_truncated(void **state)
{
    fixture_t *f = *state;
    char file[160];
    struct stat st;
    s_open(f);
    uint32_t a = s_topic(f, "a");
    s_fill(f, a, 3000, 1, 1, 200);
    sld_store_destroy(&f->store);
    s_data_path(f, file, sizeof file);
    assert_int_equal(stat(file, &st), 0);
    for (int round = 0; round < 2; round++) {
        off_t size = round == 0 ? st.st_size / 2 : 0;
        assert_int_equal(truncate(file, size), 0);
        assert_int_equal(sld_store_open(&f->opts, &f->store), SL_ESTORE);
        f->opts.read_only = true;
        assert_int_equal(sld_store_open(&f->opts, &f->store), SL_ESTORE);
        f->opts.read_only = false;
        struct stat after;
        assert_int_equal(stat(file, &after), 0);
        assert_int_equal(after.st_size, size);
    }
}

/* 64 bytes of garbage over a branch page of the log: the open refuses
 * (a writer would go through it), and so does the check's. Before, the
 * broker opened it and its reads failed, one MDB_BAD_TXN after another. */
static void test_damage_branch_page(void **state)
{
    fixture_t *f = *state;
    char file[160];
    uint8_t key[12], junk[64];
    s_open(f);
    uint32_t a = s_topic(f, "a");
    s_fill(f, a, 3000, 1, 1, 200);
    sld_store_destroy(&f->store);
    s_data_path(f, file, sizeof file);
    s_raw_msg_key(key, a, 0);
    long page = s_find_page(file, key, true, NULL);
    assert_true(page >= 2);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t) (i * 37 + 11);
    s_poke(file, page * S_PG + 3000, junk, sizeof junk);
    assert_int_equal(sld_store_open(&f->opts, &f->store), SL_ESTORE);
    f->opts.read_only = true;
    assert_int_equal(sld_store_open(&f->opts, &f->store), SL_ESTORE);
}

/* A leaf inside the log with a node flag LMDB follows into a NULL
 * pointer (F_DUPDATA on a database without duplicates): the store opens
 * (that leaf is only read), that record's read fails and says why, the
 * same read transaction goes on with the others, and the check names the
 * page. Before, the first read of it was a SIGSEGV. */
static void test_damage_leaf_guarded(void **state)
{
    fixture_t *f = *state;
    char file[160];
    uint8_t key[12], flags[2];
    long node;
    sld_txn_t *txn;
    const void *env;
    size_t len;
    int bad = 0;
    s_open(f);
    uint32_t a = s_topic(f, "a");
    s_fill(f, a, 2000, 1, 1, 100);
    sld_store_destroy(&f->store);
    s_data_path(f, file, sizeof file);
    s_raw_msg_key(key, a, 1000);
    assert_true(s_find_page(file, key, false, &node) >= 2);
    int fd = open(file, O_RDONLY);
    assert_int_equal(pread(fd, flags, 2, node + 4), 2);
    close(fd);
    flags[0] |= S_F_DUPDATA;
    s_poke(file, node + 4, flags, 2);

    s_open(f);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    /* In order (the cursor steps) and out of order (searches). */
    for (uint64_t i = 950; i < 1050; i++) {
        int rc = sld_store_read(txn, a, i, &env, &len, NULL);
        if (i == 1000) {
            assert_int_equal(rc, SL_ESTORE);
            assert_non_null(strstr(sld_txn_why(txn), "fault"));
            bad++;
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(len, 100);
        }
    }
    assert_int_equal(sld_store_read(txn, a, 1000, &env, &len, NULL), SL_ESTORE);
    assert_int_equal(sld_store_read(txn, a, 1500, &env, &len, NULL), 0);
    sld_txn_abort(&txn);
    assert_int_equal(bad, 1);
    char *text = s_check_text(f, SL_ESTORE);
    assert_non_null(strstr(text, "flags 0x4"));
    free(text);
}

/* Damage that appears while the store is open (a leaf's header made not
 * a leaf): LMDB fails the read (MDB_CORRUPTED) and would refuse its
 * transaction from then on; the store's read transaction goes on in a
 * fresh one, so only the records of that leaf fail. Before, every read
 * after the first failure failed too (MDB_BAD_TXN). Retention stops at
 * such a head instead of deleting through it. */
static void test_damage_read_txn_goes_on(void **state)
{
    fixture_t *f = *state;
    char file[160];
    uint8_t key[12], zero[2] = { 0, 0 };
    sld_txn_t *txn;
    const void *env;
    size_t len, trimmed;
    int failed = 0;
    s_open(f);
    uint32_t a = s_topic(f, "a");
    s_fill(f, a, 2000, 1, 1, 100);
    s_data_path(f, file, sizeof file);
    s_raw_msg_key(key, a, 1000);
    long page = s_find_page(file, key, false, NULL);
    assert_true(page >= 2);
    s_poke(file, page * S_PG + 10, zero, 2);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    for (uint64_t i = 900; i < 1100; i++) {
        int rc = sld_store_read(txn, a, i, &env, &len, NULL);
        if (rc == SL_EBUSY) {
            /* Damage wore this transaction out (each failure costs LMDB
             * one): a new one, as the pump does. */
            sld_txn_abort(&txn);
            assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
            rc = sld_store_read(txn, a, i, &env, &len, NULL);
        }
        assert_true(rc == 0 || rc == SL_ESTORE);
        failed += rc != 0;
    }
    assert_int_equal(sld_store_read(txn, a, 1000, &env, &len, NULL), SL_ESTORE);
    assert_int_equal(sld_store_read(txn, a, 1999, &env, &len, NULL), 0);
    sld_txn_abort(&txn);
    assert_true(failed > 0 && failed < 100);

    /* The head's leaf damaged: retention does not delete through it. */
    s_raw_msg_key(key, a, 0);
    page = s_find_page(file, key, false, NULL);
    assert_true(page >= 2);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_set_retention(txn, a, 1, 0), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    page = s_find_page(file, key, false, NULL);
    assert_true(page >= 2);
    s_poke(file, page * S_PG + 10, zero, 2);
    assert_int_equal(sld_store_trim(f->store, 1000000000, 0, 100, &trimmed), 0);
    assert_int_equal(trimmed, 0);
    assert_int_equal(sld_store_topic_by_id(f->store, a)->first_offset, 0);
}

/* A record that should be there and is not (its key gone from the
 * B-tree) is damage, not "trimmed": only offsets below the topic's first
 * are. */
static void test_damage_missing_record(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    const void *env;
    size_t len;
    s_open(f);
    uint32_t a = s_topic(f, "a");
    s_fill(f, a, 10, 1, 1, 0);
    sld_store_destroy(&f->store);
    s_raw_msg_del(f->path, a, 5);
    s_open(f);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_read(txn, a, 4, &env, &len, NULL), 0);
    assert_int_equal(sld_store_read(txn, a, 5, &env, &len, NULL), SL_ESTORE);
    assert_non_null(strstr(sld_txn_why(txn), "missing"));
    assert_int_equal(sld_store_read(txn, a, 6, &env, &len, NULL), 0);
    assert_int_equal(sld_store_read(txn, a, 10, &env, &len, NULL), SL_ENOTFOUND);
    sld_txn_abort(&txn);
    char *text = s_check_text(f, SL_ESTORE);
    assert_non_null(strstr(text, "offsets 5..5 missing"));
    free(text);
}

/* Topic records, subscription configurations, cursors, identities and
 * registry records carry checksums too: a damaged topic record refuses
 * the open (its counters decide what is served and what retention
 * deletes), a damaged subscription is refused to whoever lists it, and
 * the check names both. A meta page whose transaction id was damaged is
 * refused. */
static void test_damage_metadata(void **state)
{
    fixture_t *f = *state;
    sld_txn_t *txn;
    char file[160];
    uint8_t v[128];
    s_open(f);
    uint32_t a = s_topic(f, "a");
    s_fill(f, a, 5, 1, 1, 0);
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_subrec_put(txn, "s", "config", 6), 0);
    assert_int_equal(sld_subrec_cursor_put(txn, "s", a, 2), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    sld_store_destroy(&f->store);

    /* The subscription's configuration. */
    memcpy(v, "cinfig", 6);
    memcpy(v + 6, "12345678", 8);
    s_raw_put(f->path, "subs", "s", v, 14);
    s_open(f);
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    sub_list_t list = { 0 };
    assert_int_equal(sld_subrec_foreach(txn, s_collect_sub, &list), SL_ESTORE);
    assert_int_equal(list.count, 0);
    sld_txn_abort(&txn);
    char *text = s_check_text(f, SL_ESTORE);
    assert_non_null(strstr(text, "subs: the record 's' fails its checksum"));
    free(text);
    sld_store_destroy(&f->store);

    /* The topic record: next offset 5 -> 4 would hide record 4. */
    MDB_env *env;
    MDB_txn *mt;
    MDB_dbi dbi;
    MDB_val k = { 1, "a" }, val;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->path, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &mt), 0);
    assert_int_equal(mdb_dbi_open(mt, "topics", 0, &dbi), 0);
    assert_int_equal(mdb_get(mt, dbi, &k, &val), 0);
    assert_true(val.mv_size <= sizeof v);
    memcpy(v, val.mv_data, val.mv_size);
    v[20] = 4;
    val.mv_data = v;
    assert_int_equal(mdb_put(mt, dbi, &k, &val, 0), 0);
    assert_int_equal(mdb_txn_commit(mt), 0);
    mdb_env_close(env);
    assert_int_equal(sld_store_open(&f->opts, &f->store), SL_ESTORE);

    /* Meta page 1's transaction id. */
    s_data_path(f, file, sizeof file);
    uint8_t txnid[8] = { 0x3f, 0x42, 0x0f };
    s_poke(file, S_PG + 16 + 128, txnid, sizeof txnid);
    assert_int_equal(sld_store_open(&f->opts, &f->store), SL_ESTORE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_read_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_in_order_and_not, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_leaves_no_trace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_index_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_window_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_error_aborts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_at_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full_and_grow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full_anywhere_is_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_on_full_map_settles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_other_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_foreign_lmdb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_appends_one_txn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_no_plaintext_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_reopen_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_moved_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_plain_store_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_keyfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_checksum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_legacy_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_branch_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_leaf_guarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_read_txn_goes_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_missing_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damage_metadata, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
