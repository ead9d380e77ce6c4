/*  test_faults - the broker under faults an operator meets: the storage
 *  ceiling reached (publishes wait, reads go on, raising the ceiling with
 *  SIGHUP or freeing space with retention resumes them without a restart),
 *  a damaged data file (refused at start, never reset), `sluiced --check`,
 *  and a broker frozen by SIGSTOP for 10 s. Each test runs its own broker.  */
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
#include "harness.h"
#include "sluice.h"

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

static void test_damaged_store_refused(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = s_client(&b);
    for (int i = 0; i < 100; i++) {
        sl_message_t m = { .topic = "check.t", .payload = "payload", .len = 7 };
        assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), 0);
    }
    assert_int_equal(sl_flush(c, 10000), 0);
    sl_client_destroy(&c);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);

    char sluiced[512], cmd[1024];
    h_build_path("broker/sluiced", sluiced, sizeof sluiced);
    snprintf(cmd, sizeof cmd, "%s --check --data-dir %s", sluiced, b.dir);
    char *out = NULL;
    assert_int_equal(h_run(cmd, NULL, &out), 0);
    /* 100 messages and the _audit record of the one start. */
    assert_non_null(strstr(out, "101 records"));
    assert_non_null(strstr(out, "0 problems"));
    free(out);

    /* Garbage over the meta pages: the broker must refuse, saying why, and
     * must not start over with an empty store. */
    char data[400];
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
    snprintf(cmd, sizeof cmd, "%s --check --data-dir %s 2>/dev/null", sluiced, b.dir);
    assert_int_not_equal(h_run(cmd, NULL, NULL), 0);

    /* A truncated file is refused too. */
    snprintf(cmd, sizeof cmd, "truncate -s 5000 %s", data);
    assert_int_equal(system(cmd), 0);
    assert_int_not_equal(h_broker_start(&b), 0);
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
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_storage_full_resumes),
        cmocka_unit_test(test_damaged_store_refused),
        cmocka_unit_test(test_second_broker_refused),
        cmocka_unit_test(test_sigstop_10s),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
