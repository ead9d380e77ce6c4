/*  test_dlq - dead letters and cursors against a real sluiced (docs/
 *  operations.md, "Dead letters and cursors"): a subscription with
 *  max_deliver 1 whose consumer nacks fills _dlq.NAME; listing shows the
 *  dead letters with their reasons, redriving puts each back on its topic
 *  (a consumer gets it with sluice-redriven-from and without the dlq-*
 *  headers) and removes it, a second redrive of it is refused and stores
 *  nothing; rm hides one; _dlq.routes legs are refused; a schema dead
 *  letter whose redrive the schema refuses again stays listed. Seek:
 *  after 10 acked, seek to 3 delivers 3..9 again to the attached consumer;
 *  by time; --latest; the cursor survives a restart. Permissions (CurveZMQ):
 *  another identity may not seek, remove or list. The `sluice dlq` and
 *  `sluice sub seek` commands on the way.  */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>
#include "harness.h"
#include "sluice.h"

#define S_WAIT_MS 10000

static char s_cli_path[512];

typedef struct {
    h_broker_t b;
    sl_client_t *c;
} s_fx_t;

static int s_client_open(const h_broker_t *b, const char *cert, sl_client_t **out)
{
    char server_pub[300];
    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = b->endpoint;
    o.name = "test-dlq";
    o.connect_timeout_ms = S_WAIT_MS;
    snprintf(server_pub, sizeof server_pub, "%s/server.pub", b->dir);
    if (cert) {
        o.server_key = server_pub;
        o.cert = cert;
    }
    int rc = sl_client_new(&o, out);
    if (rc == 0)
        rc = sl_client_connect(*out);
    if (rc)
        sl_client_destroy(out);
    return rc;
}

static sl_client_t *s_client(const h_broker_t *b, const char *cert)
{
    sl_client_t *c = NULL;
    int rc = s_client_open(b, cert, &c);
    if (rc)
        fail_msg("client: %s", sl_strerror(rc));
    return c;
}

static int s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    h_broker_init(&fx->b, NULL);
    if (h_broker_start(&fx->b) != 0)
        return -1;
    fx->c = s_client(&fx->b, NULL);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    s_fx_t *fx = *state;
    sl_client_destroy(&fx->c);
    h_broker_destroy(&fx->b);
    free(fx);
    return 0;
}

static int s_cli(const s_fx_t *fx, char **out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_cli(const s_fx_t *fx, char **out, const char *fmt, ...)
{
    char suffix[128];
    va_list ap;
    snprintf(suffix, sizeof suffix, "--broker %s", fx->b.endpoint);
    va_start(ap, fmt);
    int rc = h_cli_v(s_cli_path, NULL, suffix, out, fmt, ap);
    va_end(ap);
    return rc;
}

static void s_has(const char *out, const char *what)
{
    if (!out || !strstr(out, what))
        fail_msg("expected \"%s\" in the output", what);
}

static uint64_t s_pub(sl_client_t *c, const char *topic, const char *payload)
{
    sl_header_t h = { "h1", "v1" };
    sl_message_t m = { .topic = topic, .payload = payload, .len = strlen(payload),
                       .content_type = "text/plain", .headers = &h, .nheaders = 1 };
    sl_confirm_t conf;
    int rc = sl_publish_sync(c, &m, S_WAIT_MS, &conf);
    if (rc)
        fail_msg("publish to %s: %s (%s)", topic, sl_strerror(rc), sl_client_last_error(c));
    return conf.offset;
}

static sl_sub_t *s_subscribe(sl_client_t *c, const char *name, const char *pattern,
                             sl_start_t start, uint32_t max_deliver)
{
    sl_sub_options_t so;
    sl_sub_t *sub = NULL;
    sl_sub_options_init(&so);
    so.name = name;
    so.pattern = pattern;
    so.start = start;
    so.max_deliver = max_deliver;
    so.ack_wait_ms = 2000;
    int rc = sl_subscribe(c, &so, &sub);
    if (rc)
        fail_msg("subscribe %s: %s", name, sl_strerror(rc));
    return sub;
}

static sl_msg_t *s_next(sl_sub_t *sub)
{
    sl_msg_t *m = NULL;
    int rc = sl_sub_next(sub, S_WAIT_MS, &m);
    if (rc)
        fail_msg("no message within %d ms: %s", S_WAIT_MS, sl_strerror(rc));
    return m;
}

/* Receive the next message of SUB, check its offset and payload
 * ("m<offset>"), ack it (waiting for the broker on LAST_SYNC). */
static void s_take(sl_sub_t *sub, uint64_t offset, bool sync)
{
    char want[32];
    size_t len = 0;
    sl_msg_t *m = s_next(sub);
    snprintf(want, sizeof want, "m%llu", (unsigned long long) offset);
    const char *p = sl_msg_payload(m, &len);
    if (sl_msg_offset(m) != offset || len != strlen(want) || memcmp(p, want, len) != 0)
        fail_msg("got offset %llu '%.*s', expected offset %llu '%s'",
                 (unsigned long long) sl_msg_offset(m), (int) len, p,
                 (unsigned long long) offset, want);
    assert_int_equal(sync ? sl_ack_sync(m, S_WAIT_MS) : sl_ack(m), 0);
    sl_msg_destroy(&m);
}

/* No message on SUB for 400 ms. */
static void s_none(sl_sub_t *sub)
{
    sl_msg_t *m = NULL;
    int rc = sl_sub_next(sub, 400, &m);
    if (rc == 0)
        fail_msg("unexpected message at offset %llu", (unsigned long long) sl_msg_offset(m));
}

/* The dead letters of TOPIC from 0 (at most 100) once there are WANT of
 * them, within S_WAIT_MS; *remaining. */
static sl_msg_t **s_list_wait(sl_client_t *c, const char *topic, size_t want, size_t *n,
                              uint64_t *remaining)
{
    sl_msg_t **v = NULL;
    for (int i = 0; i < S_WAIT_MS / 50; i++) {
        int rc = sl_dlq_list(c, topic, 0, 0, &v, n, NULL, remaining);
        if (rc == 0 && *n >= want)
            return v;
        for (size_t k = 0; rc == 0 && k < *n; k++)
            sl_msg_destroy(&v[k]);
        free(v);
        v = NULL;
        usleep(50 * 1000);
    }
    fail_msg("%s never held %zu dead letters", topic, want);
    return NULL;
}

static void s_msgs_free(sl_msg_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sl_msg_destroy(&v[i]);
    free(v);
}

static uint64_t s_topic_messages(sl_client_t *c, const char *topic, uint64_t *removed)
{
    sl_topic_info_t *t = NULL;
    size_t n = 0;
    uint64_t got = UINT64_MAX;
    assert_int_equal(sl_stats(c, &t, &n, NULL, NULL), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, topic) == 0) {
            got = t[i].messages;
            if (removed)
                *removed = t[i].dlq_removed;
        }
    free(t);
    return got;
}

/* ---------------------------------------------------------- dead letters */

static void test_dead_letters(void **state)
{
    s_fx_t *fx = *state;
    sl_client_t *c = fx->c;
    sl_sub_t *worker = s_subscribe(c, "worker", "orders.dl", SL_START_EARLIEST, 1);
    for (int i = 0; i < 3; i++) {
        char p[16];
        snprintf(p, sizeof p, "order-%d", i);
        assert_int_equal(s_pub(c, "orders.dl", p), (uint64_t) i);
    }
    for (int i = 0; i < 3; i++) {
        char why[32];
        sl_msg_t *m = s_next(worker);
        snprintf(why, sizeof why, "bad order %d", i);
        assert_int_equal(sl_nack_reason(m, 0, why), 0);
        sl_msg_destroy(&m);
    }
    size_t n = 0;
    uint64_t remaining = 0;
    sl_msg_t **v = s_list_wait(c, "_dlq.worker", 3, &n, &remaining);
    assert_int_equal(n, 3);
    assert_int_equal(remaining, 3);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        size_t len = 0;
        snprintf(want, sizeof want, "bad order %zu", i);
        s_has(sl_msg_header(v[i], "dlq-reason"), want);
        assert_string_equal(sl_msg_header(v[i], "dlq-topic"), "orders.dl");
        assert_string_equal(sl_msg_header(v[i], "h1"), "v1");
        assert_string_equal(sl_msg_topic(v[i]), "_dlq.worker");
        assert_int_equal(sl_msg_attempt(v[i]), 0);
        assert_int_equal(sl_ack(v[i]), SL_EINVAL);
        snprintf(want, sizeof want, "order-%zu", i);
        const char *p = sl_msg_payload(v[i], &len);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(p, want, len);
    }
    uint64_t first = sl_msg_offset(v[0]), second = sl_msg_offset(v[1]);
    s_msgs_free(v, n);
    /* The worker would dead-letter the redriven message again. */
    assert_int_equal(sl_unsubscribe(&worker, true), 0);

    /* Redrive: back on orders.dl, as the original, marked. */
    sl_sub_t *checker = s_subscribe(c, "checker", "orders.dl", SL_START_LATEST, 0);
    char to[300];
    uint64_t at = 0;
    assert_int_equal(sl_dlq_redrive(c, "_dlq.worker", first, to, sizeof to, &at), 0);
    assert_string_equal(to, "orders.dl");
    assert_int_equal(at, 3);
    sl_msg_t *m = s_next(checker);
    char from[64];
    snprintf(from, sizeof from, "_dlq.worker@%llu", (unsigned long long) first);
    assert_int_equal(sl_msg_offset(m), 3);
    assert_string_equal(sl_msg_header(m, "sluice-redriven-from"), from);
    assert_string_equal(sl_msg_header(m, "h1"), "v1");
    assert_null(sl_msg_header(m, "dlq-reason"));
    assert_null(sl_msg_header(m, "dlq-topic"));
    assert_string_equal(sl_msg_content_type(m), "text/plain");
    assert_int_equal(sl_ack_sync(m, S_WAIT_MS), 0);
    sl_msg_destroy(&m);

    /* Listed no more; a second redrive is refused and stores nothing. */
    v = s_list_wait(c, "_dlq.worker", 2, &n, &remaining);
    assert_int_equal(n, 2);
    assert_int_equal(remaining, 2);
    assert_int_equal(sl_msg_offset(v[0]), second);
    s_msgs_free(v, n);
    assert_int_equal(sl_dlq_redrive(c, "_dlq.worker", first, NULL, 0, NULL), SL_ENOTFOUND);
    s_has(sl_client_last_error(c), "removed");
    assert_int_equal(s_topic_messages(c, "orders.dl", NULL), 4);
    s_none(checker);

    /* Remove: hidden, counted, idempotent; refusals. */
    assert_int_equal(sl_dlq_remove(c, "_dlq.worker", second), 0);
    assert_int_equal(sl_dlq_remove(c, "_dlq.worker", second), 0);
    v = s_list_wait(c, "_dlq.worker", 1, &n, &remaining);
    assert_int_equal(n, 1);
    assert_int_equal(remaining, 1);
    s_msgs_free(v, n);
    uint64_t removed = 0;
    assert_int_equal(s_topic_messages(c, "_dlq.worker", &removed), 3);
    assert_int_equal(removed, 2);
    assert_int_equal(sl_dlq_remove(c, "_dlq.worker", 99), SL_ENOTFOUND);
    assert_int_equal(sl_dlq_remove(c, "orders.dl", 0), SL_EINVAL);
    assert_int_equal(sl_dlq_list(c, "orders.dl", 0, 0, &v, &n, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_dlq_list(c, "_dlq.nobody", 0, 0, &v, &n, NULL, NULL), SL_ENOTFOUND);

    /* The commands: list shows the reason; redrive the last one; rm. */
    char *out = NULL;
    assert_int_equal(s_cli(fx, &out, "dlq list _dlq.worker"), 0);
    s_has(out, "bad order 2");
    s_has(out, "orders.dl@2");
    s_has(out, "1 dead letter not removed");
    free(out);
    assert_int_equal(s_cli(fx, &out, "dlq redrive _dlq.worker --all"), 0);
    s_has(out, "_dlq.worker@2: redriven to orders.dl@4");
    free(out);
    m = s_next(checker);
    assert_int_equal(sl_msg_offset(m), 4);
    sl_msg_destroy(&m);
    assert_int_equal(s_cli(fx, &out, "dlq redrive _dlq.worker 2"), 1);
    s_has(out, "not redriven");
    free(out);
    assert_int_equal(s_cli(fx, &out, "dlq rm _dlq.worker 0 77"), 1);
    s_has(out, "_dlq.worker@0: removed");
    s_has(out, "_dlq.worker@77: not removed");
    free(out);
    assert_int_equal(s_cli(fx, &out, "dlq list _dlq.worker"), 0);
    s_has(out, "0 dead letters not removed");
    free(out);
    assert_int_equal(s_cli(fx, &out, "topics"), 0);
    s_has(out, "SCHEMA");
    free(out);
    assert_int_equal(sl_unsubscribe(&checker, true), 0);
}

static void test_routes_and_schema_refused(void **state)
{
    s_fx_t *fx = *state;
    sl_client_t *c = fx->c;
    static const char routes[] =
        "routes:\n"
        "  - name: reject-all\n"
        "    match: { topic: \"rt.in\" }\n"
        "    action: dlq\n"
        "    reason: \"not wanted\"\n";
    assert_int_equal(sl_routes_apply(c, routes, strlen(routes), false, 0, NULL, NULL, NULL),
                     0);
    s_pub(c, "rt.in", "{}");
    size_t n = 0;
    sl_msg_t **v = s_list_wait(c, "_dlq.routes", 1, &n, NULL);
    uint64_t off = sl_msg_offset(v[0]);
    s_msgs_free(v, n);
    assert_int_equal(sl_dlq_redrive(c, "_dlq.routes", off, NULL, 0, NULL), SL_EINVAL);
    s_has(sl_client_last_error(c), "routes backfill");
    v = s_list_wait(c, "_dlq.routes", 1, &n, NULL);
    s_msgs_free(v, n);

    /* A schema dead letter the schema refuses again: the publish fails,
     * the dead letter stays. */
    static const char schema[] = "{\"type\":\"object\",\"required\":[\"id\"]}";
    uint32_t version = 0;
    assert_int_equal(sl_schema_register(c, "sc.order", schema, NULL, false, &version, NULL), 0);
    assert_int_equal(sl_topic_set_schema(c, "sc.in", "sc.order", 0, "dlq"), 0);
    sl_message_t bad = { .topic = "sc.in", .payload = "{}", .len = 2,
                         .content_type = "application/json" };
    assert_int_not_equal(sl_publish_sync(c, &bad, S_WAIT_MS, NULL), 0);
    v = s_list_wait(c, "_dlq.schema.sc.in", 1, &n, NULL);
    off = sl_msg_offset(v[0]);
    s_msgs_free(v, n);
    assert_int_not_equal(sl_dlq_redrive(c, "_dlq.schema.sc.in", off, NULL, 0, NULL), 0);
    s_has(sl_client_last_error(c), "redrive of _dlq.schema.sc.in");
    v = s_list_wait(c, "_dlq.schema.sc.in", 1, &n, NULL);
    s_msgs_free(v, n);
    char *out = NULL;
    assert_int_equal(s_cli(fx, &out, "topics"), 0);
    s_has(out, "sc.order@latest");
    free(out);
}

/* ------------------------------------------------------------------ seek */

static uint64_t s_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t) tv.tv_sec * 1000000u + (uint64_t) tv.tv_usec;
}

static void s_pub_range(sl_client_t *c, const char *topic, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++) {
        char p[32];
        snprintf(p, sizeof p, "m%llu", (unsigned long long) i);
        assert_int_equal(s_pub(c, topic, p), i);
    }
}

static void test_seek(void **state)
{
    s_fx_t *fx = *state;
    sl_client_t *c = fx->c;
    sl_sub_t *r = s_subscribe(c, "reader", "seek.t", SL_START_EARLIEST, 0);
    s_pub_range(c, "seek.t", 0, 10);
    for (uint64_t i = 0; i < 10; i++)
        s_take(r, i, i == 9);
    s_none(r);

    /* Back to 3 while attached: 3..9 again. */
    uint32_t moved = 0;
    assert_int_equal(sl_sub_seek(c, "reader", NULL, SL_START_OFFSET, 3, 0, &moved), 0);
    assert_int_equal(moved, 1);
    for (uint64_t i = 3; i < 10; i++)
        s_take(r, i, i == 9);
    s_none(r);

    /* By time: what was published after T. */
    usleep(20 * 1000);
    uint64_t t = s_now_us();
    usleep(20 * 1000);
    s_pub_range(c, "seek.t", 10, 13);
    for (uint64_t i = 10; i < 13; i++)
        s_take(r, i, i == 12);
    assert_int_equal(sl_sub_seek(c, "reader", "seek.t", SL_START_TIME, 0, t, &moved), 0);
    for (uint64_t i = 10; i < 13; i++)
        s_take(r, i, i == 12);
    s_none(r);

    /* Earliest, then latest: nothing of the old ones after latest (what
     * the client had received before a seek still reaches it). */
    char *out = NULL;
    assert_int_equal(s_cli(fx, &out, "sub seek reader --earliest"), 0);
    s_has(out, "subscription reader: cursor moved on 1 topic");
    free(out);
    for (uint64_t i = 0; i < 13; i++)
        s_take(r, i, i == 12);
    assert_int_equal(s_cli(fx, &out, "sub seek reader --latest --topic seek.t"), 0);
    free(out);
    s_pub_range(c, "seek.t", 13, 14);
    s_take(r, 13, true);
    s_none(r);
    assert_int_equal(s_cli(fx, &out, "sub seek reader"), 64);
    free(out);
    assert_int_equal(s_cli(fx, &out, "sub seek nobody --earliest"), 1);
    s_has(out, "no durable subscription nobody");
    free(out);
    assert_int_equal(sl_sub_seek(c, "reader", "other.t", SL_START_EARLIEST, 0, 0, NULL),
                     SL_ENOTFOUND);
    assert_int_equal(sl_sub_seek(c, "reader", NULL, SL_START_DEFAULT, 0, 0, NULL), SL_EINVAL);

    /* Persisted: seek to 5 detached, restart, resume from 5. */
    assert_int_equal(sl_unsubscribe(&r, false), 0);
    assert_int_equal(sl_sub_seek(c, "reader", NULL, SL_START_OFFSET, 5, 0, NULL), 0);
    sl_client_destroy(&fx->c);
    assert_int_equal(h_broker_stop(&fx->b, SIGTERM), 0);
    assert_int_equal(h_broker_start(&fx->b), 0);
    fx->c = c = s_client(&fx->b, NULL);
    r = s_subscribe(c, "reader", "seek.t", SL_START_DEFAULT, 0);
    for (uint64_t i = 5; i < 14; i++)
        s_take(r, i, i == 13);
    s_none(r);
    assert_int_equal(sl_unsubscribe(&r, false), 0);
}

/* ----------------------------------------------------------- permissions */

static void test_permissions(void **state)
{
    (void) state;
    h_broker_t b;
    char cert[300], bob_cert[300], bob_pub[300], bob_key[41], err[256];
    h_broker_init_secure(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    snprintf(cert, sizeof cert, "%s/admin.cert", b.dir);
    sl_client_t *admin = s_client(&b, cert);
    sl_sub_t *owned = s_subscribe(admin, "owned", "perm.>", SL_START_EARLIEST, 1);
    s_pub(admin, "perm.a", "x");
    sl_msg_t *m = s_next(owned);
    assert_int_equal(sl_nack(m, 0), 0);
    sl_msg_destroy(&m);
    size_t n = 0;
    sl_msg_t **v = s_list_wait(admin, "_dlq.owned", 1, &n, NULL);
    s_msgs_free(v, n);

    snprintf(bob_cert, sizeof bob_cert, "%s/bob.cert", b.dir);
    snprintf(bob_pub, sizeof bob_pub, "%s/bob.pub", b.dir);
    assert_int_equal(sl_cert_create("bob", bob_cert, bob_pub, bob_key, err, sizeof err), 0);
    assert_int_equal(sl_key_add(admin, "bob", bob_key), 0);
    sl_grant_t g[] = { { SL_PERM_SUBSCRIBE | SL_PERM_PUBLISH, "perm.>" },
                       { SL_PERM_SUBSCRIBE, "_dlq.owned" } };
    assert_int_equal(sl_grant(admin, "bob", g, 2, false), 0);
    sl_client_t *bob = s_client(&b, bob_cert);
    assert_int_equal(sl_sub_seek(bob, "owned", NULL, SL_START_EARLIEST, 0, 0, NULL),
                     SL_EDENIED);
    s_has(sl_client_last_error(bob), "may not seek subscription owned");
    assert_int_equal(sl_dlq_remove(bob, "_dlq.owned", 0), SL_EDENIED);
    /* Bob may publish the redrive but not remove the dead letter: refused,
     * and it stays listed. */
    assert_int_equal(sl_dlq_redrive(bob, "_dlq.owned", 0, NULL, 0, NULL), SL_EDENIED);
    /* Listing needs subscribe on the topic: bob has it, not on another. */
    assert_int_equal(sl_dlq_list(bob, "_dlq.owned", 0, 0, &v, &n, NULL, NULL), 0);
    assert_int_equal(n, 1);
    s_msgs_free(v, n);
    assert_int_equal(sl_dlq_list(bob, "_dlq.other", 0, 0, &v, &n, NULL, NULL), SL_EDENIED);
    /* Admin may; the seek is audited. */
    assert_int_equal(sl_sub_seek(admin, "owned", NULL, SL_START_EARLIEST, 0, 0, NULL), 0);
    assert_int_equal(sl_dlq_remove(admin, "_dlq.owned", 0), 0);
    sl_client_destroy(&bob);
    sl_client_destroy(&admin);
    char *out = NULL, args[400];
    snprintf(args, sizeof args, "--home %s audit --json", b.dir);
    char cmd[1536];
    snprintf(cmd, sizeof cmd, "%s %s --broker %s", s_cli_path, args, b.endpoint);
    assert_int_equal(h_run(cmd, NULL, &out), 0);
    s_has(out, "\"subscription.seek\"");
    s_has(out, "\"dlq.remove\"");
    s_has(out, "start earliest: topic perm.a");
    s_has(out, "\"denied\"");
    free(out);
    h_broker_destroy(&b);
}

int main(void)
{
    h_build_path("adapters/cli/sluice", s_cli_path, sizeof s_cli_path);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dead_letters, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_routes_and_schema_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_seek, s_setup, s_teardown),
        cmocka_unit_test(test_permissions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
