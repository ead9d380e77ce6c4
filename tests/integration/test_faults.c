/*  test_faults - the broker under faults an operator meets: the storage
 *  ceiling reached (publishes wait, reads go on, raising the ceiling with
 *  SIGHUP or freeing space with retention resumes them without a restart),
 *  a damaged data file (refused at start when a writer would touch the
 *  damage, never reset, never a crash; served around when the damage is
 *  inside a topic's log: what reads is delivered, what does not is
 *  dead-lettered with the reason), `sluiced --check` agreeing with the
 *  broker, and a broker frozen by SIGSTOP for 10 s. Each test runs its
 *  own broker.  */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <fcntl.h>
#include <lmdb.h>
#include "harness.h"
#include "sluice.h"

#define S_PG 4096

static sl_client_t *s_client(const h_broker_t *b)
{
    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = b->endpoint;
    o.name = "faults-test";
    o.connect_timeout_ms = 10000;
    sl_client_t *c = NULL;
    assert_int_equal(sl_client_new(&o, &c), 0);
    assert_int_equal(sl_client_connect(c), 0);
    return c;
}

static uint64_t s_messages(sl_client_t *c, const char *topic)
{
    sl_topic_info_t *t = NULL;
    size_t n = 0;
    uint64_t count = 0;
    assert_int_equal(sl_stats(c, &t, &n, NULL, NULL), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, topic) == 0)
            count = t[i].messages;
    free(t);
    return count;
}

static void s_write_cfg(const char *path, const char *max)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "storage\n    map_size = 1M\n    map_size_max = %s\n", max);
    fclose(f);
    chmod(path, 0600);
}

/* Publish 1000-byte messages until confirms stop coming for 2 s (the store
 * is full: the SDK keeps retrying the 507 nacks). Returns how many were
 * sent. Records stay below LMDB's page size: larger ones need runs of
 * contiguous free pages, which a fragmented freelist may not have. */
/* A publish settled with an error, or confirmed as a duplicate of one the
 * broker already had: none may be (storage full is retried until there is
 * room, and a refused publish was not stored, so its retry is new). */
static void s_on_confirm(const sl_confirm_t *confirm, void *arg)
{
    int *nacked = arg;
    if ((confirm->rc != 0 || confirm->duplicate) && (*nacked)++ == 0)
        fprintf(stderr, "publish %llu settled with %s%s: %s\n",
                (unsigned long long) confirm->seq, sl_strerror(confirm->rc),
                confirm->duplicate ? " as a duplicate" : "",
                confirm->text ? confirm->text : "");
}

/* NACKED counts publishes settled with an error (s_on_confirm). */
static int s_fill(sl_client_t *c, const char *topic, int *nacked)
{
    static char payload[1000];
    memset(payload, 'x', sizeof payload);
    sl_message_t m = { .topic = topic, .payload = payload, .len = sizeof payload };
    int sent = 0;
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 100; i++, sent++)
            assert_int_equal(sl_publish(c, &m, s_on_confirm, nacked, NULL), 0);
        if (sl_flush(c, 2000) == SL_ETIMEOUT)
            return sent;
    }
    fail_msg("the store never filled up");
    return sent;
}

static void test_storage_full_resumes(void **state)
{
    (void) state;
    char cfg[300];
    h_broker_t b;
    snprintf(cfg, sizeof cfg, "/tmp/sluice-faults-%d.cfg", (int) getpid());
    s_write_cfg(cfg, "2M");
    const char *extra[] = { "--config", cfg, "--set", "retention/trim_interval=100ms", NULL };
    h_broker_init(&b, extra);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b);
    int nacked = 0, sent = s_fill(c, "full.t", &nacked);
    assert_true(sl_unconfirmed(c) > 0);
    uint64_t stored = s_messages(c, "full.t");
    assert_true(stored > 0 && stored < (uint64_t) sent);
    /* Refused with a clear, counted error while reads still work. */
    uint64_t full = h_counter(c, "errors.storage_full"), refused = h_counter(c, "publish.nacked"),
             commits_full = h_counter(c, "store.full");
    assert_true(full != UINT64_MAX && refused != UINT64_MAX && full + refused > 0);
    assert_true(commits_full != UINT64_MAX && commits_full > 0);
    sl_client_t *reader = s_client(&b);
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = "r";
    so.pattern = "full.t";
    so.start = SL_START_EARLIEST;
    sl_sub_t *sub = NULL;
    assert_int_equal(sl_subscribe(reader, &so, &sub), 0);
    for (uint64_t i = 0; i < stored; i++) {
        sl_msg_t *m = NULL;
        assert_int_equal(sl_sub_next(sub, 10000, &m), 0);
        assert_int_equal(sl_msg_offset(m), i);
        assert_int_equal(sl_ack(m), 0);
        sl_msg_destroy(&m);
    }

    /* The operator raises the ceiling: no restart, the queued publishes
     * go through. */
    s_write_cfg(cfg, "4M");
    kill(b.pid, SIGHUP);
    assert_int_equal(sl_flush(c, 30000), 0);
    assert_int_equal(nacked, 0);
    assert_int_equal(s_messages(c, "full.t"), (uint64_t) sent);

    /* Full again at the new ceiling; this time retention frees the space:
     * capping the topic's size trims it, and the pages are reused. */
    int more = s_fill(c, "full.t", &nacked);
    assert_true(more > 0);
    assert_true(sl_unconfirmed(c) > 0);
    assert_int_equal(sl_topic_create(reader, "full.t", 0, 1 << 20), 0);
    assert_int_equal(sl_flush(c, 30000), 0);
    assert_int_equal(sl_unconfirmed(c), 0);
    assert_int_equal(nacked, 0);
    sl_client_destroy(&reader);
    sl_client_destroy(&c);
    h_broker_destroy(&b);
    unlink(cfg);
}

/* A second sluiced on a data dir a broker already uses is refused with a
 * clear message (two brokers would each trust their own offsets), and the
 * first goes on serving. */
static void test_second_broker_refused(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    char path[512], cmd[1024];
    h_build_path("broker/sluiced", path, sizeof path);
    snprintf(cmd, sizeof cmd, "%s --data-dir %s --listen tcp://127.0.0.1:0 2>&1",
             path, b.dir);
    char *out = NULL;
    int st = h_run(cmd, NULL, &out);
    assert_int_not_equal(st, 0);
    if (!out || !strstr(out, "in use by another sluiced"))
        fail_msg("second broker said: %s", out ? out : "(nothing)");
    free(out);

    sl_client_t *c = s_client(&b);
    sl_message_t m = { .topic = "still.here", .payload = "x", .len = 1 };
    assert_int_equal(sl_publish_sync(c, &m, 10000, NULL), 0);
    sl_client_destroy(&c);
    /* After the first one stops, the dir is free again. */
    assert_int_equal(h_broker_stop(&b, SIGKILL), 128 + SIGKILL);
    assert_int_equal(h_broker_start(&b), 0);
    h_broker_destroy(&b);
}

/* `sluiced --check` on DIR: its exit code (never a signal), its stdout in
 * *OUT when OUT is not NULL. */
static int s_check(const h_broker_t *b, char **out)
{
    char sluiced[512], cmd[1024];
    h_build_path("broker/sluiced", sluiced, sizeof sluiced);
    snprintf(cmd, sizeof cmd, "%s --check --data-dir %s 2>/dev/null", sluiced, b->dir);
    int rc = h_run(cmd, NULL, out);
    /* h_run says -1 for a death by signal: that is what must never be. */
    assert_int_not_equal(rc, -1);
    return rc;
}

/* Start B on its damaged store, expecting a refusal that names data.mdb
 * and WHY (text in its log), never a crash. */
static void s_expect_refusal(h_broker_t *b, const char *why)
{
    char cmd[700];
    assert_int_not_equal(h_broker_start(b), 0);
    snprintf(cmd, sizeof cmd, "grep -q 'data.mdb.*%s' %s", why, b->log);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "tail -n 5 %s >&2", b->log);
        (void) system(cmd);
        fail_msg("the broker's refusal does not say '%s'", why);
    }
    snprintf(cmd, sizeof cmd, "grep -q 'Segmentation\\|Bus error\\|Aborted\\|double free' %s",
             b->log);
    assert_int_not_equal(system(cmd), 0);
}

/* Publish COUNT messages "<i>" (padded to PAD bytes with '.') to TOPIC. */
static void s_publish_numbered(const h_broker_t *b, const char *topic, int count, size_t pad)
{
    char buf[1024];
    sl_client_t *c = s_client(b);
    assert_true(pad < sizeof buf);
    for (int i = 0; i < count; i++) {
        memset(buf, '.', sizeof buf);
        int n = snprintf(buf, sizeof buf, "%d", i);
        buf[n] = '.';
        sl_message_t m = { .topic = topic, .payload = buf, .len = pad > (size_t) n ? pad : (size_t) n };
        assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), 0);
    }
    assert_int_equal(sl_flush(c, 30000), 0);
    sl_client_destroy(&c);
}

static uint64_t s_le(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* In LMDB page PG, the node with key K (KLEN bytes): a leaf's exact one,
 * or the branch node whose child holds K. Its offset, or 0. */
static unsigned s_node(const uint8_t *pg, const uint8_t *k, size_t klen)
{
    unsigned n = (unsigned) (s_le(pg + 12, 2) - 16) / 2, found = 0;
    bool branch = s_le(pg + 10, 2) == 1;
    for (unsigned j = 0; j < n; j++) {
        unsigned off = (unsigned) s_le(pg + 16 + 2 * j, 2);
        size_t ks = (size_t) s_le(pg + off + 6, 2);
        size_t m = ks < klen ? ks : klen;
        int c = memcmp(pg + off + 8, k, m);
        if (c == 0)
            c = (ks > klen) - (ks < klen);
        if (branch && (j == 0 || c <= 0))
            found = off;
        else if (!branch && c == 0)
            return off;
    }
    return found;
}

/* The file offset of the live page of the log (`msgs`, found from the
 * newest meta page down, not a stale copy in a free page) on the way to
 * record OFFSET of topic ID: its leaf (LEVEL -1; *NODE the node's offset
 * in the file), or the branch page LEVEL steps below the root. -1 when
 * there is none. */
static long s_find_page(const char *file, uint32_t id, uint64_t offset, int level, long *node)
{
    uint8_t key[12], *buf;
    struct stat st;
    long found = -1;
    int fd = open(file, O_RDONLY);
    assert_true(fd >= 0 && fstat(fd, &st) == 0);
    buf = malloc((size_t) st.st_size);
    assert_non_null(buf);
    assert_int_equal(read(fd, buf, (size_t) st.st_size), st.st_size);
    close(fd);
    for (int i = 0; i < 4; i++)
        key[i] = (uint8_t) (id >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        key[4 + i] = (uint8_t) (offset >> (56 - 8 * i));
    /* Meta: txnid at 16 + 128, the main database's root at 16 + 72 + 40. */
    const uint8_t *meta = buf + (s_le(buf + S_PG + 144, 8) > s_le(buf + 144, 8) ? S_PG : 0);
    const uint8_t *main_root = buf + s_le(meta + 16 + 72 + 40, 8) * S_PG;
    unsigned off = s_node(main_root, (const uint8_t *) "msgs", 4);
    assert_true(off > 0 || s_le(main_root + off + 6, 2) == 4);
    uint64_t pgno = s_le(main_root + off + 8 + 4 + 40, 8);
    for (int depth = 0; depth < 8 && found < 0; depth++) {
        const uint8_t *pg = buf + pgno * S_PG;
        if (s_le(pg + 10, 2) == 1 && depth == level) {
            found = (long) pgno * S_PG;
            break;
        }
        off = s_node(pg, key, sizeof key);
        if (s_le(pg + 10, 2) == 2) {
            if (off) {
                found = (long) pgno * S_PG;
                if (node)
                    *node = found + off;
            }
            break;
        }
        pgno = s_le(pg + off, 4) | s_le(pg + off + 4, 2) << 32;
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

/* Topic NAME's id, read from the closed store in DIR. */
static uint32_t s_topic_id(const char *dir, const char *name)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = { strlen(name), (void *) name }, v;
    uint32_t id;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "topics", 0, &dbi), 0);
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    const uint8_t *r = v.mv_data;
    id = (uint32_t) r[1] << 24 | (uint32_t) r[2] << 16 | (uint32_t) r[3] << 8 | r[4];
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return id;
}

/* Read TOPIC to the end through durable subscription NAME and its dead
 * letters: every one of COUNT messages must arrive with the payload
 * s_publish_numbered gave it (PAD bytes), or be dead-lettered with a
 * reason holding WHY. Returns how many were dead-lettered. */
static int s_read_around(const h_broker_t *b, const char *topic, const char *name, int count,
                         size_t pad, const char *why)
{
    char dlq[300], want[1024];
    uint8_t *seen = calloc((size_t) count, 1);
    int left = count, dead = 0;
    sl_client_t *c = s_client(b);
    sl_sub_options_t so;
    sl_sub_t *sub = NULL, *dsub = NULL;
    assert_non_null(seen);
    sl_sub_options_init(&so);
    so.name = name;
    so.pattern = topic;
    so.start = SL_START_EARLIEST;
    assert_int_equal(sl_subscribe(c, &so, &sub), 0);
    snprintf(dlq, sizeof dlq, "_dlq.%s", name);
    so.name = "dead-reader";
    so.pattern = dlq;
    assert_int_equal(sl_subscribe(c, &so, &dsub), 0);
    for (uint64_t end = slc_mono_ms() + 30000; left > 0 && slc_mono_ms() < end;) {
        sl_msg_t *m = NULL;
        bool got = false;
        if (sl_sub_next(sub, 0, &m) == 0) {
            uint64_t off = sl_msg_offset(m);
            size_t len;
            const char *p = sl_msg_payload(m, &len);
            assert_true(off < (uint64_t) count && !seen[off]);
            memset(want, '.', sizeof want);
            int n = snprintf(want, sizeof want, "%d", (int) off);
            want[n] = '.';
            size_t wlen = pad > (size_t) n ? pad : (size_t) n;
            if (len != wlen || memcmp(p, want, len) != 0)
                fail_msg("offset %d delivered with other bytes than published", (int) off);
            seen[off] = 1;
            left--;
            assert_int_equal(sl_ack(m), 0);
            sl_msg_destroy(&m);
            got = true;
        }
        if (sl_sub_next(dsub, got ? 0 : 50, &m) == 0) {
            const char *reason = sl_msg_header(m, "dlq-reason");
            uint64_t off = strtoull(sl_msg_header(m, "dlq-offset"), NULL, 10);
            assert_string_equal(sl_msg_header(m, "dlq-topic"), topic);
            assert_true(off < (uint64_t) count && !seen[off]);
            if (!reason || !strstr(reason, "unreadable") || !strstr(reason, why))
                fail_msg("dead letter of %d: reason '%s', wanted '%s'", (int) off,
                         reason ? reason : "(none)", why);
            seen[off] = 2;
            left--;
            dead++;
            assert_int_equal(sl_ack(m), 0);
            sl_msg_destroy(&m);
        }
    }
    if (left)
        fail_msg("%d messages of %s neither delivered nor dead-lettered", left, topic);
    assert_int_equal(h_counter(c, "deliver.unreadable"), (uint64_t) dead);
    sl_client_destroy(&c);
    free(seen);
    return dead;
}

static void test_damaged_store_refused(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    s_publish_numbered(&b, "check.t", 100, 7);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);

    char *out = NULL;
    assert_int_equal(s_check(&b, &out), 0);
    /* check.t and _audit (its records: the start, and what the audit
     * module adds, so not counted here). */
    if (!strstr(out, "store check: 2 topics, ") || !strstr(out, ", 0 problems"))
        fail_msg("sluiced --check said: %s", out);
    free(out);

    /* Garbage over the meta pages: the broker must refuse, saying why, and
     * must not start over with an empty store. */
    char data[400], cmd[1024];
    snprintf(data, sizeof data, "%s/data.mdb", b.dir);
    struct stat before;
    assert_int_equal(stat(data, &before), 0);
    snprintf(cmd, sizeof cmd, "dd if=/dev/urandom of=%s bs=4096 count=2 conv=notrunc 2>/dev/null", data);
    assert_int_equal(system(cmd), 0);
    assert_int_not_equal(h_broker_start(&b), 0);
    snprintf(cmd, sizeof cmd, "grep -q 'data.mdb' %s", b.log);
    assert_int_equal(system(cmd), 0);
    struct stat after;
    assert_int_equal(stat(data, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    assert_int_equal(s_check(&b, NULL), 1);

    /* A truncated file is refused too. */
    snprintf(cmd, sizeof cmd, "truncate -s 5000 %s", data);
    assert_int_equal(system(cmd), 0);
    assert_int_not_equal(h_broker_start(&b), 0);
    h_broker_destroy(&b);
}

/* data.mdb cut to half its size: before, `sluiced --check` and `sluiced`
 * both died of SIGBUS reading past the end of the file. */
static void test_half_truncated_store(void **state)
{
    (void) state;
    h_broker_t b;
    char data[400], cmd[700], *out = NULL;
    struct stat st;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    s_publish_numbered(&b, "half.t", 5000, 200);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    snprintf(data, sizeof data, "%s/data.mdb", b.dir);
    assert_int_equal(stat(data, &st), 0);
    snprintf(cmd, sizeof cmd, "truncate -s %lld %s", (long long) st.st_size / 2, data);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(s_check(&b, &out), 1);
    assert_non_null(strstr(out, "store check: the store does not open"));
    free(out);
    s_expect_refusal(&b, "cut short");
    assert_int_equal(stat(data, &st), 0);
    h_broker_destroy(&b);
}

/* 64 bytes of garbage over a branch page of a topic's log, one below the
 * root and in the middle of the log (of 10,000 records, three levels
 * deep: no write at start goes through it). Before, the
 * broker started, logged `read record: MDB_BAD_TXN` and aborted with
 * "double free or corruption (out)" while serving a subscription, or the
 * subscription stopped silently part way. Now it refuses to start (a
 * writer may go through that page), and --check reports the page. */
static void test_damaged_branch_page(void **state)
{
    (void) state;
    h_broker_t b;
    char data[400];
    uint8_t junk[64];
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    s_publish_numbered(&b, "branch.t", 10000, 200);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    snprintf(data, sizeof data, "%s/data.mdb", b.dir);
    long page = s_find_page(data, s_topic_id(b.dir, "branch.t"), 5000, 1, NULL);
    assert_true(page > 0);
    /* Over the page's second node and on (its first is found through the
     * offsets after the page header). */
    uint8_t ptr[2];
    int fd = open(data, O_RDONLY);
    assert_int_equal(pread(fd, ptr, 2, page + 18), 2);
    close(fd);
    memset(junk, 0xff, sizeof junk);
    long at = ptr[0] | ptr[1] << 8;
    s_poke(data, page + (at < S_PG - 64 ? at : S_PG - 64), junk, sizeof junk);
    s_expect_refusal(&b, "refusing to open it");
    assert_int_equal(s_check(&b, NULL), 1);
    h_broker_destroy(&b);
}

/* A leaf inside a topic's log damaged (its page header no longer says
 * leaf). Before: the first read failed with MDB_CORRUPTED (or LMDB
 * aborted on an assertion when a cursor stepped into it), every later
 * read in that transaction with MDB_BAD_TXN, those records were queued
 * as unreadable, and the dead-letter copy of one that read fine in the
 * write transaction freed a calloc'd envelope as a decoded one: "double
 * free or corruption (out)". Now the broker serves around it: every
 * other record is delivered, exactly; the leaf's records are
 * dead-lettered with the reason and counted; --check names the page. */
static void test_damaged_leaf_served_around(void **state)
{
    (void) state;
    h_broker_t b;
    char data[400], *out = NULL;
    uint8_t zero[2] = { 0, 0 };
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    s_publish_numbered(&b, "leaf.t", 5000, 100);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    snprintf(data, sizeof data, "%s/data.mdb", b.dir);
    long page = s_find_page(data, s_topic_id(b.dir, "leaf.t"), 2500, -1, NULL);
    assert_true(page > 0);
    s_poke(data, page + 10, zero, sizeof zero);
    assert_int_equal(s_check(&b, &out), 1);
    assert_non_null(strstr(out, "not the leaf page its parent expects"));
    free(out);

    assert_int_equal(h_broker_start(&b), 0);
    int dead = s_read_around(&b, "leaf.t", "leaf-reader", 5000, 100, "damaged page");
    assert_true(dead > 0 && dead < 100);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    h_broker_destroy(&b);
}

/* One flipped payload byte in a plain store. Before: delivered as if
 * valid, and --check reported 0 problems. Now its checksum fails: it is
 * dead-lettered with that reason, the others are delivered, and --check
 * names it. */
static void test_flipped_byte_dead_lettered(void **state)
{
    (void) state;
    h_broker_t b;
    char data[400], *out = NULL;
    long node;
    uint8_t byte;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    s_publish_numbered(&b, "flip.t", 50, 40);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    snprintf(data, sizeof data, "%s/data.mdb", b.dir);
    assert_true(s_find_page(data, s_topic_id(b.dir, "flip.t"), 17, -1, &node) > 0);
    /* Node header (8), key (12), record header (8) and marker (1), then
     * the envelope: a byte near its end is the payload's. */
    int fd = open(data, O_RDONLY);
    long at = node + 8 + 12 + 8 + 1 + 30;
    assert_int_equal(pread(fd, &byte, 1, at), 1);
    close(fd);
    byte ^= 0x04;
    s_poke(data, at, &byte, 1);
    assert_int_equal(s_check(&b, &out), 1);
    assert_non_null(strstr(out, "record 17 fails its checksum"));
    assert_non_null(strstr(out, ", 1 problems"));
    free(out);

    assert_int_equal(h_broker_start(&b), 0);
    assert_int_equal(s_read_around(&b, "flip.t", "flip-reader", 50, 40, "checksum"), 1);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    h_broker_destroy(&b);
}

/* A store an older build wrote (format 2: no checksums) with a record
 * whose envelope does not decode. Before: it was delivered, the SDK
 * dropped it without acking, and the subscription stuck there. Now the
 * store moves to format 4, the old records are delivered, and the one
 * that does not decode is dead-lettered at once, saying so. */
static void test_legacy_undecodable_dead_lettered(void **state)
{
    (void) state;
    h_broker_t b;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi topics, msgs, meta;
    MDB_cursor *cur;
    MDB_val k, v;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    s_publish_numbered(&b, "legacy.t", 3, 10);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    uint32_t id = s_topic_id(b.dir, "legacy.t");

    /* Back to what format 2 wrote: topic records of version 1 (the same
     * 53 bytes, no checksum), records of legacy.t without marker and
     * checksum, and record 1's envelope one that does not decode. */
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, b.dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "topics", 0, &topics), 0);
    assert_int_equal(mdb_dbi_open(txn, "msgs", 0, &msgs), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    k = (MDB_val) { 6, "format" };
    v = (MDB_val) { 4, (uint8_t[4]) { 0, 0, 0, 2 } };
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    assert_int_equal(mdb_cursor_open(txn, topics, &cur), 0);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        /* Copies: the put moves what the cursor points into. */
        uint8_t old[53], name[256];
        memcpy(old, v.mv_data, sizeof old);
        old[0] = 1;
        assert_true(k.mv_size <= sizeof name);
        memcpy(name, k.mv_data, k.mv_size);
        MDB_val nk = { k.mv_size, name }, nv = { sizeof old, old };
        assert_int_equal(mdb_cursor_put(cur, &nk, &nv, MDB_CURRENT), 0);
    }
    mdb_cursor_close(cur);
    for (uint64_t off = 0; off < 3; off++) {
        uint8_t key[12], rec[256];
        for (int i = 0; i < 4; i++)
            key[i] = (uint8_t) (id >> (24 - 8 * i));
        for (int i = 0; i < 8; i++)
            key[4 + i] = (uint8_t) (off >> (56 - 8 * i));
        k = (MDB_val) { sizeof key, key };
        assert_int_equal(mdb_get(txn, msgs, &k, &v), 0);
        assert_true(v.mv_size <= sizeof rec && v.mv_size > 17);
        size_t n = v.mv_size - 9;
        memcpy(rec, v.mv_data, 8);
        memcpy(rec + 8, (const uint8_t *) v.mv_data + 9, n - 8);
        if (off == 1) {
            /* Field 1, length-delimited, longer than what follows. */
            rec[8] = 0x0a;
            rec[9] = 0x7f;
        }
        v = (MDB_val) { n, rec };
        assert_int_equal(mdb_put(txn, msgs, &k, &v, 0), 0);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    char cmd[700];
    if (h_broker_start(&b) != 0) {
        snprintf(cmd, sizeof cmd, "tail -n 5 %s >&2", b.log);
        (void) system(cmd);
        fail_msg("the broker did not start on the format-2 store");
    }
    sl_client_t *c = s_client(&b);
    sl_sub_options_t so;
    sl_sub_t *sub = NULL, *dsub = NULL;
    sl_sub_options_init(&so);
    so.name = "legacy-reader";
    so.pattern = "legacy.t";
    so.start = SL_START_EARLIEST;
    assert_int_equal(sl_subscribe(c, &so, &sub), 0);
    so.name = "legacy-dead";
    so.pattern = "_dlq.legacy-reader";
    assert_int_equal(sl_subscribe(c, &so, &dsub), 0);
    for (uint64_t want = 0; want < 3; want += 2) {
        sl_msg_t *m = NULL;
        assert_int_equal(sl_sub_next(sub, 10000, &m), 0);
        assert_int_equal(sl_msg_offset(m), want);
        assert_int_equal(sl_ack(m), 0);
        sl_msg_destroy(&m);
    }
    sl_msg_t *m = NULL;
    assert_int_equal(sl_sub_next(dsub, 10000, &m), 0);
    assert_string_equal(sl_msg_header(m, "dlq-offset"), "1");
    assert_non_null(strstr(sl_msg_header(m, "dlq-reason"), "does not decode"));
    assert_int_equal(sl_ack(m), 0);
    sl_msg_destroy(&m);
    sl_client_destroy(&c);
    snprintf(cmd, sizeof cmd, "grep -q 'records now carry checksums (format 4)' %s", b.log);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    h_broker_destroy(&b);
}

static void test_sigstop_10s(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *pub = s_client(&b);
    sl_client_t *con = s_client(&b);
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = "frozen";
    so.pattern = "stop.t";
    so.start = SL_START_EARLIEST;
    sl_sub_t *sub = NULL;
    assert_int_equal(sl_subscribe(con, &so, &sub), 0);
    char buf[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(buf, sizeof buf, "%d", i);
        sl_message_t m = { .topic = "stop.t", .payload = buf, .len = strlen(buf) };
        assert_int_equal(sl_publish(pub, &m, NULL, NULL, NULL), 0);
        if (i == 5000) {
            assert_int_equal(sl_flush(pub, 10000), 0);
            /* Freeze the broker for 10 s; a child thaws it. */
            kill(b.pid, SIGSTOP);
            pid_t thaw = fork();
            if (thaw == 0) {
                sleep(10);
                kill(b.pid, SIGCONT);
                _exit(0);
            }
        }
    }
    /* Both clients notice the silence (heartbeats), reconnect when the
     * broker is back, resend; nothing is lost or doubled. */
    assert_int_equal(sl_flush(pub, 60000), 0);
    int status;
    while (waitpid(-1, &status, WNOHANG) > 0)
        ;
    assert_true(sl_client_reconnects(pub) >= 1);
    assert_int_equal(s_messages(pub, "stop.t"), 10000);
    char want[32];
    for (int i = 0; i < 10000; i++) {
        sl_msg_t *m = NULL;
        assert_int_equal(sl_sub_next(sub, 30000, &m), 0);
        size_t len;
        const char *p = sl_msg_payload(m, &len);
        snprintf(want, sizeof want, "%d", i);
        if (len != strlen(want) || memcmp(p, want, len) != 0)
            fail_msg("expected %s at %d, got %.*s", want, i, (int) len, p);
        assert_int_equal(sl_ack(m), 0);
        sl_msg_destroy(&m);
    }
    sl_msg_t *extra = NULL;
    assert_int_equal(sl_sub_next(sub, 1000, &extra), SL_ETIMEOUT);
    sl_client_destroy(&pub);
    sl_client_destroy(&con);
    h_broker_destroy(&b);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* SLUICE_TEST_FILTER=test_damaged_* runs those alone. */
    if (getenv("SLUICE_TEST_FILTER"))
        cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_storage_full_resumes),
        cmocka_unit_test(test_damaged_store_refused),
        cmocka_unit_test(test_half_truncated_store),
        cmocka_unit_test(test_damaged_branch_page),
        cmocka_unit_test(test_damaged_leaf_served_around),
        cmocka_unit_test(test_flipped_byte_dead_lettered),
        cmocka_unit_test(test_legacy_undecodable_dead_lettered),
        cmocka_unit_test(test_second_broker_refused),
        cmocka_unit_test(test_sigstop_10s),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
