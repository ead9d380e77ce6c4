/*  test_security - encrypted transport, admission, grants, revocation,
 *  audit and encryption at rest, against a real sluiced started with its
 *  defaults (CurveZMQ, keys in the data dir, default deny). Clients use the
 *  SDK with the broker's DATA/server.pub and either DATA/admin.cert or a
 *  key pair made here; the CLI is driven with --home. Needs root for the
 *  loopback capture (AF_PACKET); without it that one test is skipped.  */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <lmdb.h>
#include <zmq.h>
#include "harness.h"
#include "sluice.h"

#define S_WAIT_MS 10000

typedef struct {
    char cert[300];
    char pub[300];
    char key[41];               /* public key, Z85 */
} s_keys_t;

/* A client of B with certificate CERT (NULL = none: plain text), in *OUT,
 * connected; 0 or the SDK's error (the client is then destroyed). */
static int s_open(const h_broker_t *b, const char *cert, int timeout_ms, sl_client_t **out)
{
    char server_pub[300];
    sl_options_t o;
    snprintf(server_pub, sizeof server_pub, "%s/server.pub", b->dir);
    sl_options_init(&o);
    o.endpoint = b->endpoint;
    o.name = "test-security";
    o.connect_timeout_ms = timeout_ms;
    o.dead_after_ms = 3000;
    if (cert) {
        o.server_key = server_pub;
        o.cert = cert;
    }
    *out = NULL;
    int rc = sl_client_new(&o, out);
    if (rc == 0)
        rc = sl_client_connect(*out);
    if (rc)
        sl_client_destroy(out);
    return rc;
}

static sl_client_t *s_admin(const h_broker_t *b)
{
    char cert[300];
    sl_client_t *c = NULL;
    snprintf(cert, sizeof cert, "%s/admin.cert", b->dir);
    int rc = s_open(b, cert, S_WAIT_MS, &c);
    if (rc)
        fail_msg("admin client: %s", sl_strerror(rc));
    return c;
}

/* A fresh key pair NAME in the broker's temp dir (not registered). */
static void s_keygen(const h_broker_t *b, const char *name, s_keys_t *k)
{
    char err[256];
    snprintf(k->cert, sizeof k->cert, "%s/%s.cert", b->dir, name);
    snprintf(k->pub, sizeof k->pub, "%s/%s.pub", b->dir, name);
    if (sl_cert_create(name, k->cert, k->pub, k->key, err, sizeof err) != 0)
        fail_msg("sl_cert_create: %s", err);
}

static int s_pub(sl_client_t *c, const char *topic, const char *payload)
{
    sl_message_t m = { .topic = topic, .payload = payload, .len = strlen(payload) };
    return sl_publish_sync(c, &m, S_WAIT_MS, NULL);
}

/* A publish's nack text, caught by its confirm callback. */
static void s_keep_text(const sl_confirm_t *confirm, void *arg)
{
    snprintf(arg, 256, "%d %s", confirm->rc, confirm->text ? confirm->text : "");
}

/* Publish PAYLOAD to TOPIC through C and wait: "rc text" of its confirm. */
static void s_pub_text(sl_client_t *c, const char *topic, char text[256])
{
    sl_message_t m = { .topic = topic, .payload = "x", .len = 1 };
    text[0] = 0;
    assert_int_equal(sl_publish(c, &m, s_keep_text, text, NULL), 0);
    assert_int_equal(sl_flush(c, S_WAIT_MS), 0);
}

static int s_sub(sl_client_t *c, const char *name, const char *pattern, sl_sub_t **out)
{
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = name;
    so.pattern = pattern;
    so.start = SL_START_EARLIEST;
    return sl_subscribe(c, &so, out);
}

/* The next message of SUB, which must carry WANT; the caller acks it. */
static sl_msg_t *s_next_is(sl_sub_t *sub, const char *want)
{
    sl_msg_t *m = NULL;
    assert_int_equal(sl_sub_next(sub, S_WAIT_MS, &m), 0);
    size_t n = 0;
    const char *p = sl_msg_payload(m, &n);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
    return m;
}

/* Register NAME's key with the admin client and grant it publish on
 * shop.> and subscribe on audit.*. */
static void s_register(sl_client_t *admin, const char *name, const s_keys_t *k)
{
    assert_int_equal(sl_key_add(admin, name, k->key), 0);
    sl_grant_t g[] = {
        { SL_PERM_PUBLISH, "shop.>" },
        { SL_PERM_SUBSCRIBE, "audit.*" },
    };
    assert_int_equal(sl_grant(admin, name, g, 2, false), 0);
}

/* Every record of the _audit topic, read by ADMIN, as one string of JSON
 * lines (caller frees). */
static char *s_audit(sl_client_t *admin)
{
    static int seq;
    char name[32];
    snprintf(name, sizeof name, "audit-reader-%d", ++seq);
    sl_sub_t *sub = NULL;
    assert_int_equal(s_sub(admin, name, "_audit", &sub), 0);
    size_t cap = 1 << 16, len = 0;
    char *all = calloc(1, cap);
    assert_non_null(all);
    sl_msg_t *m = NULL;
    while (sl_sub_next(sub, 1000, &m) == 0) {
        size_t n = 0;
        const char *p = sl_msg_payload(m, &n);
        while (len + n + 2 > cap) {
            cap *= 2;
            all = realloc(all, cap);
            assert_non_null(all);
        }
        memcpy(all + len, p, n);
        len += n;
        all[len++] = '\n';
        all[len] = 0;
        sl_ack(m);
        sl_msg_destroy(&m);
    }
    sl_unsubscribe(&sub, true);
    return all;
}

/* Does the audit trail hold a record with all of these fragments? */
static bool s_audit_has(const char *all, const char *a, const char *b2, const char *c)
{
    for (const char *line = all; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t) (end - line) : strlen(line);
        char buf[2048];
        snprintf(buf, sizeof buf, "%.*s", (int) (n < sizeof buf - 1 ? n : sizeof buf - 1), line);
        if (strstr(buf, a) && (!b2 || strstr(buf, b2)) && (!c || strstr(buf, c)))
            return true;
        line = end ? end + 1 : NULL;
    }
    return false;
}

/* ------------------------------------------------------------------ tests */

/* First start: keys in the data dir with safe modes; the admin key works
 * with nothing typed; a world-readable secret stops the broker. */
static void test_first_start_keys(void **state)
{
    (void) state;
    char mirror[64], mirror_arg[96];
    snprintf(mirror, sizeof mirror, "/tmp/sluice-it-audit-%d.jsonl", (int) getpid());
    snprintf(mirror_arg, sizeof mirror_arg, "--audit-file=%s", mirror);
    const char *const args[] = { mirror_arg, NULL };
    h_broker_t b;
    h_broker_init_secure(&b, args);
    assert_int_equal(h_broker_start(&b), 0);
    static const char *const secret[] = { "server.cert", "admin.cert" };
    for (int i = 0; i < 2; i++) {
        char path[300];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", b.dir, secret[i]);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
    sl_client_t *admin = s_admin(&b);
    assert_int_equal(s_pub(admin, "demo.hello", "hi"), 0);
    sl_client_destroy(&admin);

    /* The CLI with --home: no key typed. */
    char cli[512], cmd[1400];
    char *out = NULL;
    h_build_path("adapters/cli/sluice", cli, sizeof cli);
    snprintf(cmd, sizeof cmd, "%s pub demo.hello --home %s", cli, b.dir);
    assert_int_equal(h_run(cmd, "from the cli\n", NULL), 0);
    snprintf(cmd, sizeof cmd, "%s keys list --home %s", cli, b.dir);
    assert_int_equal(h_run(cmd, NULL, &out), 0);
    assert_non_null(strstr(out, "admin"));
    free(out);

    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    char path[300];
    snprintf(path, sizeof path, "%s/server.cert", b.dir);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_not_equal(h_broker_start(&b), 0);
    snprintf(cmd, sizeof cmd, "grep -q 'readable by group or others' '%s'", b.log);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(h_broker_start(&b), 0);
    h_broker_destroy(&b);

    /* The JSON-lines mirror got the records too: the local admin key and
     * both starts. */
    snprintf(cmd, sizeof cmd, "grep -c '\"action\":\"broker.start\"' '%s' | grep -qx 2 && "
             "grep -q '\"action\":\"keys.add\",\"target\":\"admin\"' '%s'", mirror, mirror);
    assert_int_equal(system(cmd), 0);
    unlink(mirror);
}

/* Plain text is refused off loopback; a plain-text client cannot use an
 * encrypted broker. */
static void test_plaintext_rules(void **state)
{
    (void) state;
    char sluiced[512], cmd[1024];
    h_build_path("broker/sluiced", sluiced, sizeof sluiced);
    snprintf(cmd, sizeof cmd, "%s --insecure-plaintext --listen tcp://0.0.0.0:0 "
             "--data-dir /tmp/sluice-never 2>&1 | grep -q 'only on loopback'", sluiced);
    assert_int_equal(system(cmd), 0);

    h_broker_t b;
    h_broker_init_secure(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = NULL;
    assert_int_not_equal(s_open(&b, NULL, 3000, &c), 0);
    assert_null(c);
    h_broker_destroy(&b);
}

/* Unknown keys are refused at the handshake (and audited); a registered
 * key has exactly its grants; admin commands need admin. */
static void test_admission_and_grants(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init_secure(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    s_keys_t alice;
    s_keygen(&b, "alice", &alice);

    sl_client_t *c = NULL;
    assert_int_equal(s_open(&b, alice.cert, 5000, &c), SL_EAUTH);
    /* Nor can such a client publish or subscribe without waiting to
     * connect first. */
    char server_pub[300];
    sl_options_t o;
    snprintf(server_pub, sizeof server_pub, "%s/server.pub", b.dir);
    sl_options_init(&o);
    o.endpoint = b.endpoint;
    o.server_key = server_pub;
    o.cert = alice.cert;
    o.connect_timeout_ms = 5000;
    assert_int_equal(sl_client_new(&o, &c), 0);
    assert_int_equal(s_pub(c, "shop.orders", "never"), SL_EAUTH);
    sl_sub_t *nosub = NULL;
    assert_int_equal(s_sub(c, "never", "audit.*", &nosub), SL_EAUTH);
    sl_client_destroy(&c);

    sl_client_t *admin = s_admin(&b);
    s_register(admin, "alice", &alice);
    assert_int_equal(s_open(&b, alice.cert, S_WAIT_MS, &c), 0);

    assert_int_equal(s_pub(c, "shop.orders", "order 1"), 0);
    assert_int_equal(s_pub(c, "hr.salaries", "secret"), SL_EDENIED);
    /* The refusal says who and what (docs/protocol.md, refusals). */
    char text[256];
    s_pub_text(c, "hr.salaries", text);
    assert_string_equal(text, "-403 identity \"alice\" may not publish to hr.salaries: "
                              "no grant covers it");
    sl_sub_t *sub = NULL;
    assert_int_equal(s_sub(c, "alice-orders", "shop.orders", &sub), SL_EDENIED);
    assert_int_equal(s_sub(c, "alice-audit", "audit.*", &sub), 0);
    /* Acks are checked too: once the subscribe grant is gone, alice may
     * no longer ack what she received. */
    assert_int_equal(s_pub(admin, "audit.x", "to ack"), 0);
    sl_msg_t *m = NULL;
    assert_int_equal(sl_sub_next(sub, S_WAIT_MS, &m), 0);
    sl_grant_t sg = { SL_PERM_SUBSCRIBE, "audit.*" };
    assert_int_equal(sl_grant(admin, "alice", &sg, 1, true), 0);
    assert_int_equal(sl_ack_sync(m, S_WAIT_MS), SL_EDENIED);
    sl_msg_destroy(&m);
    assert_int_equal(sl_grant(admin, "alice", &sg, 1, false), 0);
    sl_unsubscribe(&sub, true);
    /* Wider than the grant: refused. */
    assert_int_equal(s_sub(c, "alice-all", ">", &sub), SL_EDENIED);
    /* Admin commands. */
    s_keys_t mallory;
    s_keygen(&b, "mallory", &mallory);
    assert_int_equal(sl_key_add(c, "mallory", mallory.key), SL_EDENIED);
    assert_int_equal(sl_topic_create(c, "shop.new", 0, 0), SL_EDENIED);
    assert_int_equal(sl_schema_register(c, "shop.order", "{\"type\":\"object\"}", NULL,
                                        false, NULL, NULL), SL_EDENIED);
    assert_int_equal(sl_topic_set_schema(c, "shop.orders", "shop.order", 0, NULL), SL_EDENIED);
    /* Reading the registry needs no grant. */
    sl_schema_info_t *schemas = NULL;
    size_t nschemas = 0;
    assert_int_equal(sl_schema_list(c, &schemas, &nschemas), 0);
    sl_schema_list_free(schemas, nschemas);

    /* A revoked grant is gone at once. */
    sl_grant_t g = { SL_PERM_PUBLISH, "shop.>" };
    assert_int_equal(sl_grant(admin, "alice", &g, 1, true), 0);
    assert_int_equal(s_pub(c, "shop.orders", "order 2"), SL_EDENIED);
    sl_client_destroy(&c);

    char *audit = s_audit(admin);
    assert_true(s_audit_has(audit, "\"action\":\"connect\"", "\"result\":\"refused\"",
                            alice.key));
    assert_true(s_audit_has(audit, "\"action\":\"keys.add\"", "\"target\":\"alice\"",
                            "\"result\":\"ok\""));
    assert_true(s_audit_has(audit, "\"identity\":\"alice\"", "\"action\":\"publish\"",
                            "hr.salaries"));
    assert_true(s_audit_has(audit, "\"identity\":\"alice\"", "\"action\":\"keys.add\"",
                            "\"result\":\"denied\""));
    assert_true(s_audit_has(audit, "\"identity\":\"alice\"", "\"action\":\"topic.create\"",
                            "\"result\":\"denied\""));
    assert_true(s_audit_has(audit, "\"action\":\"grant.revoke\"", "\"target\":\"alice\"",
                            NULL));
    free(audit);
    /* The same trail through the CLI, filtered by identity. */
    char cli[512], cmd[1400];
    char *out = NULL;
    h_build_path("adapters/cli/sluice", cli, sizeof cli);
    snprintf(cmd, sizeof cmd, "%s audit --home %s --identity alice", cli, b.dir);
    assert_int_equal(h_run(cmd, NULL, &out), 0);
    assert_non_null(strstr(out, "hr.salaries"));
    assert_non_null(strstr(out, "denied"));
    assert_null(strstr(out, "broker.start"));
    free(out);
    /* _audit is not writable through the API, not even by admin. */
    assert_int_not_equal(s_pub(admin, "_audit", "forged"), 0);
    sl_client_destroy(&admin);
    h_broker_destroy(&b);
}

static void s_counter_revoked(const char *name, uint64_t value, void *arg)
{
    if (strcmp(name, "sessions.revoked") == 0)
        *(uint64_t *) arg = value;
}

/* A revoked key's open connection is closed at once and it cannot come
 * back. */
static void test_revoke_cuts_off(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init_secure(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    s_keys_t bob;
    s_keygen(&b, "bob", &bob);
    sl_client_t *admin = s_admin(&b);
    s_register(admin, "bob", &bob);
    sl_client_t *c = NULL;
    assert_int_equal(s_open(&b, bob.cert, S_WAIT_MS, &c), 0);
    assert_int_equal(s_pub(c, "shop.orders", "before"), 0);

    sl_identity_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(sl_key_list(admin, &ids, &n), 0);
    bool seen = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i].name, "bob") == 0) {
            seen = true;
            assert_int_equal(ids[i].sessions, 1);
            assert_false(ids[i].revoked);
        }
    assert_true(seen);
    sl_identity_list_free(ids, n);

    assert_int_equal(sl_key_revoke(admin, "bob"), 0);
    /* The next publish fails: the connection is gone and the key is
     * refused on reconnect. */
    int rc = s_pub(c, "shop.orders", "after");
    assert_int_not_equal(rc, 0);
    for (int i = 0; i < 50 && sl_client_auth(c) != SL_AUTH_REFUSED; i++)
        sl_poll(c, 100);
    assert_int_equal(sl_client_auth(c), SL_AUTH_REFUSED);
    sl_client_destroy(&c);
    assert_int_equal(s_open(&b, bob.cert, 5000, &c), SL_EAUTH);

    uint64_t revoked = 0;
    assert_int_equal(sl_counters(admin, s_counter_revoked, &revoked), 0);
    assert_int_equal(revoked, 1);
    sl_client_destroy(&admin);
    h_broker_destroy(&b);
}

/* ------------------------------------------------------- loopback capture */

typedef struct {
    int fd;
    atomic_bool stop;
    char *buf;                  /* every captured byte, concatenated */
    size_t len, cap;
} s_capture_t;

static void *s_capture_main(void *arg)
{
    s_capture_t *cap = arg;
    uint8_t pkt[70000];
    while (!atomic_load(&cap->stop)) {
        struct pollfd p = { cap->fd, POLLIN, 0 };
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = recv(cap->fd, pkt, sizeof pkt, 0);
        if (n <= 0)
            continue;
        if (cap->len + (size_t) n > cap->cap) {
            size_t want = (cap->cap + (size_t) n) * 2;
            char *p2 = realloc(cap->buf, want);
            if (!p2)
                break;
            cap->buf = p2;
            cap->cap = want;
        }
        memcpy(cap->buf + cap->len, pkt, (size_t) n);
        cap->len += (size_t) n;
    }
    return NULL;
}

/* Capture every packet on lo while MARKER is published by a client of B
 * (CERT NULL = plain text). Returns whether MARKER was seen in the clear;
 * -1 when capturing is not permitted. */
static int s_marker_on_wire(const h_broker_t *b, const char *cert, const char *marker)
{
    s_capture_t cap = { .fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)) };
    if (cap.fd < 0)
        return -1;
    struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = (int) if_nametoindex("lo") };
    assert_int_equal(bind(cap.fd, (struct sockaddr *) &ll, sizeof ll), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_capture_main, &cap), 0);
    sl_client_t *c = NULL;
    assert_int_equal(s_open(b, cert, S_WAIT_MS, &c), 0);
    sl_sub_t *sub = NULL;
    assert_int_equal(s_sub(c, "wire", "wire.t", &sub), 0);
    assert_int_equal(s_pub(c, "wire.t", marker), 0);
    sl_msg_t *m = NULL;
    assert_int_equal(sl_sub_next(sub, S_WAIT_MS, &m), 0);   /* it came back, too */
    sl_ack_sync(m, S_WAIT_MS);
    sl_msg_destroy(&m);
    sl_client_destroy(&c);
    usleep(200000);
    atomic_store(&cap.stop, true);
    pthread_join(t, NULL);
    close(cap.fd);
    bool seen = cap.len && memmem(cap.buf, cap.len, marker, strlen(marker)) != NULL;
    assert_true(cap.len > 0);
    free(cap.buf);
    return seen;
}

static void test_no_plaintext_on_wire(void **state)
{
    (void) state;
    const char *marker = "MARKER-7c1f-credit-card-4111111111111111";
    h_broker_t plain, secure;
    /* Control: in plain text the capture does see the marker, so the
     * capture itself works. */
    h_broker_init(&plain, NULL);
    assert_int_equal(h_broker_start(&plain), 0);
    int seen = s_marker_on_wire(&plain, NULL, marker);
    h_broker_destroy(&plain);
    if (seen < 0)
        skip();                         /* not root: no AF_PACKET */
    assert_int_equal(seen, 1);

    h_broker_init_secure(&secure, NULL);
    assert_int_equal(h_broker_start(&secure), 0);
    char cert[300];
    snprintf(cert, sizeof cert, "%s/admin.cert", secure.dir);
    assert_int_equal(s_marker_on_wire(&secure, cert, marker), 0);
    h_broker_destroy(&secure);
}

/* ------------------------------------------------------ encryption at rest */

static bool s_file_has(const char *path, const char *marker)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -q -a -F '%s' '%s'", marker, path);
    return system(cmd) == 0;
}

/* A fresh at-rest key file (sluiced --new-key) at /tmp/sluice-it-NAME-PID,
 * its path into PATH. */
static void s_new_key(const char *name, char *path, size_t len)
{
    char sluiced[512], cmd[700];
    h_build_path("broker/sluiced", sluiced, sizeof sluiced);
    snprintf(path, len, "/tmp/sluice-it-%s-%d", name, (int) getpid());
    unlink(path);
    snprintf(cmd, sizeof cmd, "%s --new-key %s >/dev/null", sluiced, path);
    assert_int_equal(system(cmd), 0);
}

/* Start B (fresh, CurveZMQ) encrypted at rest with the key file KEY;
 * returns its admin client. */
static sl_client_t *s_start_sealed(h_broker_t *b, const char *key)
{
    char extra[128];
    snprintf(extra, sizeof extra, "--encrypt-at-rest=%s", key);
    const char *const args[] = { extra, NULL };
    h_broker_init_secure(b, args);
    assert_int_equal(h_broker_start(b), 0);
    return s_admin(b);
}

/* Flip the last byte of record OFFSET of TOPIC in the stopped broker's
 * store in DIR, the way a bad sector or a stray write would: a sealed
 * record then no longer opens. */
static void s_damage_record(const char *dir, const char *topic, uint64_t offset)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi topics, msgs;
    MDB_val k = { strlen(topic), (void *) topic }, v;
    uint8_t kb[12];
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "topics", 0, &topics), 0);
    assert_int_equal(mdb_get(txn, topics, &k, &v), 0);
    memcpy(kb, (const uint8_t *) v.mv_data + 1, 4);     /* version u8, then the id */
    for (int i = 0; i < 8; i++)
        kb[4 + i] = (uint8_t) (offset >> (56 - 8 * i));
    assert_int_equal(mdb_dbi_open(txn, "msgs", 0, &msgs), 0);
    k = (MDB_val) { sizeof kb, kb };
    assert_int_equal(mdb_get(txn, msgs, &k, &v), 0);
    uint8_t *rec = malloc(v.mv_size);
    assert_non_null(rec);
    memcpy(rec, v.mv_data, v.mv_size);
    rec[v.mv_size - 1] ^= 0x5a;
    v.mv_data = rec;
    assert_int_equal(mdb_put(txn, msgs, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(rec);
}

/* A stored record that no longer opens is not skipped in silence: the
 * subscription gets the others, the damaged one goes to its dead-letter
 * topic with the reason, and deliver.unreadable counts it. */
static void test_unreadable_record_dead_lettered(void **state)
{
    (void) state;
    char key[100], cmd[700];
    s_new_key("key-damage", key, sizeof key);
    h_broker_t b;
    sl_client_t *admin = s_start_sealed(&b, key);
    const char *sent[] = { "first", "second", "third" };
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_pub(admin, "vault.d", sent[i]), 0);
    sl_client_destroy(&admin);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    s_damage_record(b.dir, "vault.d", 1);

    assert_int_equal(h_broker_start(&b), 0);
    admin = s_admin(&b);
    sl_sub_t *sub = NULL;
    assert_int_equal(s_sub(admin, "vault-d", "vault.d", &sub), 0);
    const char *want[] = { "first", "third" };
    for (int i = 0; i < 2; i++) {
        sl_msg_t *m = s_next_is(sub, want[i]);
        assert_int_equal(sl_msg_offset(m), i == 0 ? 0 : 2);
        assert_int_equal(sl_ack(m), 0);
        sl_msg_destroy(&m);
    }
    sl_sub_t *dlq = NULL;
    assert_int_equal(s_sub(admin, "vault-d-dlq", "_dlq.vault-d", &dlq), 0);
    sl_msg_t *m = NULL;
    assert_int_equal(sl_sub_next(dlq, S_WAIT_MS, &m), 0);
    size_t n = 1;
    (void) sl_msg_payload(m, &n);
    assert_int_equal(n, 0);
    assert_non_null(strstr(sl_msg_header(m, "dlq-reason"), "unreadable"));
    assert_string_equal(sl_msg_header(m, "dlq-topic"), "vault.d");
    assert_string_equal(sl_msg_header(m, "dlq-offset"), "1");
    assert_int_equal(sl_ack(m), 0);
    sl_msg_destroy(&m);
    assert_int_equal(h_counter(admin, "deliver.unreadable"), 1);
    assert_int_equal(h_counter(admin, "deliver.dead_lettered"), 1);
    snprintf(cmd, sizeof cmd, "grep -q 'record .*/1 (data key 1) does not open' '%s'", b.log);
    assert_int_equal(system(cmd), 0);
    sl_client_destroy(&admin);
    h_broker_destroy(&b);
    unlink(key);
}

static void test_encryption_at_rest(void **state)
{
    (void) state;
    const char *marker = "MARKER-at-rest-9d2e-passport-X1234567";
    char key[100], wrong[100], cmd[1400], mdb[300];
    s_new_key("key", key, sizeof key);
    s_new_key("wrong", wrong, sizeof wrong);
    h_broker_t b;
    sl_client_t *admin = s_start_sealed(&b, key);
    assert_int_equal(s_pub(admin, "vault.t", marker), 0);
    uint32_t key_id = 0;
    assert_int_equal(sl_rotate_key(admin, &key_id), 0);
    assert_int_equal(key_id, 2);
    assert_int_equal(s_pub(admin, "vault.t", "after rotation"), 0);
    sl_client_destroy(&admin);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    snprintf(mdb, sizeof mdb, "%s/data.mdb", b.dir);
    assert_false(s_file_has(mdb, marker));

    /* The wrong key: a clear refusal to start. */
    snprintf(b.extra[0], sizeof b.extra[0], "--encrypt-at-rest=%s", wrong);
    assert_int_not_equal(h_broker_start(&b), 0);
    snprintf(cmd, sizeof cmd, "grep -q 'wrong key' '%s'", b.log);
    assert_int_equal(system(cmd), 0);
    /* No key at all: refused too. */
    b.nextra = 0;
    assert_int_not_equal(h_broker_start(&b), 0);

    /* The right key: both records read back, before and after rotation. */
    snprintf(b.extra[0], sizeof b.extra[0], "--encrypt-at-rest=%s", key);
    b.nextra = 1;
    assert_int_equal(h_broker_start(&b), 0);
    admin = s_admin(&b);
    sl_sub_t *sub = NULL;
    assert_int_equal(s_sub(admin, "vault-reader", "vault.t", &sub), 0);
    const char *want[] = { marker, "after rotation" };
    for (int i = 0; i < 2; i++) {
        sl_msg_t *m = s_next_is(sub, want[i]);
        sl_ack(m);
        sl_msg_destroy(&m);
    }
    sl_client_destroy(&admin);
    h_broker_destroy(&b);

    /* Control: without encryption the marker is in the file. */
    h_broker_init_secure(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    admin = s_admin(&b);
    assert_int_equal(s_pub(admin, "vault.t", marker), 0);
    sl_client_destroy(&admin);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    snprintf(mdb, sizeof mdb, "%s/data.mdb", b.dir);
    assert_true(s_file_has(mdb, marker));
    h_broker_destroy(&b);
    unlink(key);
    unlink(wrong);
}

/* --------------------------------------------- unauthenticated clients */

/* Records of the trail ALL with every fragment given: how many, and the
 * sum of their "count" fields. */
static size_t s_audit_count(const char *all, const char *a, const char *b2, uint64_t *sum)
{
    size_t n = 0;
    *sum = 0;
    for (const char *line = all; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t) (end - line) : strlen(line);
        char buf[2048];
        snprintf(buf, sizeof buf, "%.*s", (int) (len < sizeof buf - 1 ? len : sizeof buf - 1),
                 line);
        if (strstr(buf, a) && (!b2 || strstr(buf, b2))) {
            n++;
            const char *c = strstr(buf, "\"count\":");
            *sum += c ? strtoull(c + 8, NULL, 10) : 0;
        }
        line = end ? end + 1 : NULL;
    }
    return n;
}

/* N CURVE connections to B with the unregistered key pair PUB/SEC (Z85),
 * none retried, in CTX; their sockets go to SOCKS. */
static void s_refused_burst(const h_broker_t *b, void *ctx, const char *pub, const char *sec,
                            void **socks, int n)
{
    char server[64] = "", path[300];
    snprintf(path, sizeof path, "%s/server.pub", b->dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(server, sizeof server, f));
    fclose(f);
    server[40] = 0;
    for (int i = 0; i < n; i++) {
        int zero = 0, never = -1;
        socks[i] = zmq_socket(ctx, ZMQ_DEALER);
        assert_non_null(socks[i]);
        zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(socks[i], ZMQ_RECONNECT_IVL, &never, sizeof never);
        assert_int_equal(zmq_setsockopt(socks[i], ZMQ_CURVE_SERVERKEY, server, 41), 0);
        assert_int_equal(zmq_setsockopt(socks[i], ZMQ_CURVE_PUBLICKEY, pub, 41), 0);
        assert_int_equal(zmq_setsockopt(socks[i], ZMQ_CURVE_SECRETKEY, sec, 41), 0);
        assert_int_equal(zmq_connect(socks[i], b->endpoint), 0);
    }
}

/* Wait until the broker's counter NAME reaches AT_LEAST; its value. */
static uint64_t s_counter_at_least(sl_client_t *admin, const char *name, uint64_t at_least)
{
    uint64_t v = 0;
    for (int i = 0; i < 300; i++) {
        v = h_counter(admin, name);
        if (v != UINT64_MAX && v >= at_least)
            return v;
        usleep(100000);
    }
    fail_msg("counter %s is %llu after 30 s, wanted %llu", name, (unsigned long long) v,
             (unsigned long long) at_least);
    return v;
}

/* Refused handshakes grow the trail by a bounded number of records: the
 * first refusal of a key from an address at once, then one record per
 * interval with the count; past 8 keys an address's other keys share one
 * tally. The counts add up to auth.refused, which counts every one. */
static void test_refusals_tallied(void **state)
{
    (void) state;
    const char *const args[] = { "--set=security/audit_refusal_interval=1s", NULL };
    h_broker_t b;
    h_broker_init_secure(&b, args);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *admin = s_admin(&b);
    enum { S_BURST = 300, S_KEYS = 40 };
    void *ctx = zmq_ctx_new();
    void *socks[S_BURST + S_KEYS];
    char pub[41], sec[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    uint64_t t0 = slc_mono_ms();
    s_refused_burst(&b, ctx, pub, sec, socks, S_BURST);
    s_counter_at_least(admin, "auth.refused", S_BURST);
    /* Forty more keys from the same address, one connection each. */
    for (int i = 0; i < S_KEYS; i++) {
        char p2[41], s2[41];
        assert_int_equal(zmq_curve_keypair(p2, s2), 0);
        s_refused_burst(&b, ctx, p2, s2, &socks[S_BURST + i], 1);
    }
    s_counter_at_least(admin, "auth.refused", S_BURST + S_KEYS);
    /* Intervals (1 s) the refusals spanned, with one to spare. */
    uint64_t intervals = (slc_mono_ms() - t0) / 1000 + 2;
    for (int i = 0; i < S_BURST + S_KEYS; i++)
        zmq_close(socks[i]);
    zmq_ctx_term(ctx);
    /* The last interval's summaries come within one interval (1 s). */
    usleep(2500 * 1000);
    uint64_t refused = h_counter(admin, "auth.refused");
    char *audit = s_audit(admin);
    uint64_t sum = 0, sum_key = 0;
    size_t records = s_audit_count(audit, "\"action\":\"connect\"", "\"result\":\"refused\"", &sum);
    size_t key_records = s_audit_count(audit, "\"action\":\"connect\"", pub, &sum_key);
    print_message("%llu refusals: %zu records (%zu of the first key, its counts sum to %llu)\n",
                  (unsigned long long) refused, records, key_records,
                  (unsigned long long) sum_key);
    assert_true(refused >= S_BURST + S_KEYS);
    /* Before: one record per refusal (340). Now the first key's first
     * refusal, 7 more keys, the shared tally of the others, and a summary
     * of the first key and of the shared tally per interval. */
    assert_true(records <= 9 + 2 * intervals);
    assert_true(key_records >= 2 && key_records <= 1 + intervals);
    assert_int_equal(sum, refused);
    assert_int_equal(sum_key, S_BURST);
    assert_true(s_audit_has(audit, pub, "\"count\":1", "key not registered"));
    assert_true(s_audit_has(audit, "\"target\":\"127.0.0.1\"", "summed up together", NULL));
    free(audit);
    /* The log says it once too, not 340 times. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test $(grep -c 'connection from .* refused' '%s') -le 12", b.log);
    assert_int_equal(system(cmd), 0);
    sl_client_destroy(&admin);
    h_broker_destroy(&b);
}

/* _audit's retention as TopicInfo shows it. */
static void s_audit_topic(sl_client_t *admin, sl_topic_info_t *out)
{
    sl_topic_info_t *topics = NULL;
    size_t n = 0;
    assert_int_equal(sl_stats(admin, &topics, &n, NULL, NULL), 0);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(topics[i].name, "_audit") == 0) {
            *out = topics[i];
            found = true;
        }
    free(topics);
    assert_true(found);
}

/* _audit keeps 90 days by default, by age only; security/audit_retention
 * changes it, the change is recorded, and the retention pass trims what is
 * older. */
static void test_audit_retention(void **state)
{
    (void) state;
    sl_topic_info_t t;
    h_broker_t b;
    h_broker_init_secure(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *admin = s_admin(&b);
    s_audit_topic(admin, &t);
    assert_int_equal(t.max_age_ms, 90ull * 24 * 3600 * 1000);
    assert_int_equal(t.max_bytes, 0);
    sl_client_destroy(&admin);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);

    /* One second: the start records are trimmed within a trim pass. */
    snprintf(b.extra[b.nextra++], sizeof b.extra[0], "--set=security/audit_retention=1s");
    assert_int_equal(h_broker_start(&b), 0);
    admin = s_admin(&b);
    s_audit_topic(admin, &t);
    assert_int_equal(t.max_age_ms, 1000);
    uint64_t first = t.first_offset;
    for (int i = 0; i < 40 && t.first_offset == first; i++) {
        usleep(100000);
        s_audit_topic(admin, &t);
    }
    assert_true(t.first_offset > first);
    sl_client_destroy(&admin);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);

    snprintf(b.extra[0], sizeof b.extra[0], "--set=security/audit_retention=2h");
    assert_int_equal(h_broker_start(&b), 0);
    admin = s_admin(&b);
    s_audit_topic(admin, &t);
    assert_int_equal(t.max_age_ms, 2 * 3600 * 1000);
    char *audit = s_audit(admin);
    assert_true(s_audit_has(audit, "\"action\":\"audit.retention\"", "max_age_ms 7200000",
                            "was max_age_ms 1000"));
    free(audit);
    sl_client_destroy(&admin);
    h_broker_destroy(&b);
}

/* The TCP port of endpoint tcp://127.0.0.1:PORT. */
static int s_port(const char *endpoint)
{
    const char *colon = strrchr(endpoint, ':');
    assert_non_null(colon);
    return atoi(colon + 1);
}

/* A TCP connection that never sends a greeting is closed by the broker
 * after limits/handshake_timeout, and counted. */
static void test_handshake_timeout(void **state)
{
    (void) state;
    const char *const args[] = { "--set=limits/handshake_timeout=300ms", NULL };
    h_broker_t b;
    h_broker_init_secure(&b, args);
    assert_int_equal(h_broker_start(&b), 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t) s_port(b.endpoint)) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
    uint64_t t0 = slc_mono_ms(), closed_ms = 0;
    /* The broker's greeting comes first; then nothing until it hangs up. */
    while (slc_mono_ms() - t0 < 3000) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 100) <= 0)
            continue;
        char buf[256];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            closed_ms = slc_mono_ms() - t0;
            break;
        }
    }
    close(fd);
    print_message("idle connection closed after %llu ms\n", (unsigned long long) closed_ms);
    assert_true(closed_ms >= 250 && closed_ms < 2000);
    sl_client_t *admin = s_admin(&b);
    assert_true(s_counter_at_least(admin, "handshake.timeout", 1) >= 1);
    assert_true(h_counter(admin, "connections.accepted") >= 2);
    sl_client_destroy(&admin);
    h_broker_destroy(&b);
}

/* The broker raises its soft open-file limit to the hard one, and says so. */
static void test_nofile_raised(void **state)
{
    (void) state;
    struct rlimit was, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    if (was.rlim_max != RLIM_INFINITY && was.rlim_max <= 512)
        skip();                         /* nothing to raise to */
    low = was;
    low.rlim_cur = 512;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    h_broker_t b;
    h_broker_init(&b, NULL);
    int rc = h_broker_start(&b);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
    assert_int_equal(rc, 0);
    char path[64], line[256];
    unsigned long long soft = 0, hard = 0;
    snprintf(path, sizeof path, "/proc/%d/limits", (int) b.pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Max open files", 14) == 0)
            assert_int_equal(sscanf(line + 14, "%llu %llu", &soft, &hard), 2);
    fclose(f);
    assert_true(soft > 512);
    assert_int_equal(soft, hard);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -q 'open-file limit raised from 512 to %llu' '%s'", hard,
             b.log);
    assert_int_equal(system(cmd), 0);
    h_broker_destroy(&b);
}

/* A denied command is recorded with what it asked: the command, its
 * arguments (public keys, grants, names) and its target, so granting
 * oneself admin on '>' is told apart from listing keys. */
static void test_denials_audited(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init_secure(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *admin = s_admin(&b);
    s_keys_t alice, mallory;
    s_keygen(&b, "alice", &alice);
    s_keygen(&b, "mallory", &mallory);
    s_register(admin, "alice", &alice);
    sl_sub_t *sub = NULL;
    assert_int_equal(s_sub(admin, "admin-orders", "shop.orders", &sub), 0);
    sl_unsubscribe(&sub, false);
    sl_client_t *c = NULL;
    assert_int_equal(s_open(&b, alice.cert, S_WAIT_MS, &c), 0);

    sl_grant_t all = { SL_PERM_ADMIN, ">" };
    assert_int_equal(sl_grant(c, "alice", &all, 1, false), SL_EDENIED);
    sl_grant_t pub = { SL_PERM_PUBLISH, "hr.>" };
    assert_int_equal(sl_grant(c, "alice", &pub, 1, true), SL_EDENIED);
    assert_int_equal(sl_key_add(c, "mallory", mallory.key), SL_EDENIED);
    assert_int_equal(sl_key_revoke(c, "admin"), SL_EDENIED);
    sl_identity_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(sl_key_list(c, &ids, &n), SL_EDENIED);
    uint32_t key_id = 0;
    assert_int_equal(sl_rotate_key(c, &key_id), SL_EDENIED);
    assert_int_equal(sl_sub_remove(c, "admin-orders"), SL_EDENIED);
    sl_client_destroy(&c);

    char *audit = s_audit(admin);
#define S_DENIED(action, target) \
    "\"identity\":\"alice\",\"action\":\"" action "\",\"target\":\"" target \
    "\",\"result\":\"denied\""
    assert_true(s_audit_has(audit, S_DENIED("grant.add", "alice"), "admin >", "needs admin on >"));
    assert_true(s_audit_has(audit, S_DENIED("grant.revoke", "alice"), "publish hr.>", NULL));
    assert_true(s_audit_has(audit, S_DENIED("keys.add", "mallory"), mallory.key, NULL));
    assert_true(s_audit_has(audit, S_DENIED("keys.revoke", "admin"), "identity \\\"admin\\\"",
                            NULL));
    assert_true(s_audit_has(audit, S_DENIED("keys.list", "(identities)"), NULL, NULL));
    assert_true(s_audit_has(audit, S_DENIED("rotate-key", "at-rest data key"), NULL, NULL));
    assert_true(s_audit_has(audit, S_DENIED("sub.remove", "admin-orders"), "shop.orders", NULL));
#undef S_DENIED
    /* No record of a denial says only "keys and grants". */
    assert_false(s_audit_has(audit, "\"target\":\"keys and grants\"", NULL, NULL));
    free(audit);
    sl_client_destroy(&admin);
    h_broker_destroy(&b);
}

/* ------------------------------------------------- subscription owners */

/* Register NAME's key with the admin client and grant it publish and
 * subscribe on shop.> only. */
static void s_register_shop(sl_client_t *admin, const char *name, const s_keys_t *k)
{
    assert_int_equal(sl_key_add(admin, name, k->key), 0);
    sl_grant_t g = { SL_PERM_PUBLISH | SL_PERM_SUBSCRIBE, "shop.>" };
    assert_int_equal(sl_grant(admin, name, &g, 1, false), 0);
}

/* The owner of durable subscription NAME as stats show it to C; NULL when
 * C is not shown it. Static buffer. */
static const char *s_owner_of(sl_client_t *c, const char *name)
{
    static char owner[65];
    sl_sub_info_t *subs = NULL;
    size_t n = 0;
    const char *found = NULL;
    assert_int_equal(sl_stats(c, NULL, NULL, &subs, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(subs[i].name, name) == 0) {
            snprintf(owner, sizeof owner, "%s", subs[i].owner);
            found = owner;
        }
    free(subs);
    return found;
}

/* Publish PAYLOAD to shop.orders as ADMIN; SUB must then get it next, acked
 * and stored (0) or refused (the ack's rc). */
static int s_pass_one(sl_client_t *admin, sl_sub_t *sub, const char *payload)
{
    assert_int_equal(s_pub(admin, "shop.orders", payload), 0);
    sl_msg_t *m = s_next_is(sub, payload);
    int rc = sl_ack_sync(m, S_WAIT_MS);
    sl_msg_destroy(&m);
    return rc;
}

/* A durable subscription is its creator's: another identity with the same
 * subscribe grant can neither attach to it (and so neither ack its
 * messages nor remove it through Unsubscribe) nor remove it with
 * SubRemove, until a consume grant names it; the owner removes its own;
 * every removal and denial is audited with the subscription's name. */
static void test_subscription_owner(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init_secure(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *admin = s_admin(&b);
    s_keys_t ka, kb;
    s_keygen(&b, "alice", &ka);
    s_keygen(&b, "bob", &kb);
    s_register_shop(admin, "alice", &ka);
    s_register_shop(admin, "bob", &kb);
    sl_client_t *alice = NULL, *bob = NULL;
    assert_int_equal(s_open(&b, ka.cert, S_WAIT_MS, &alice), 0);
    assert_int_equal(s_open(&b, kb.cert, S_WAIT_MS, &bob), 0);

    sl_sub_t *asub = NULL, *bsub = NULL;
    assert_int_equal(s_sub(alice, "alice.orders", "shop.orders", &asub), 0);
    assert_int_equal(s_pass_one(admin, asub, "o1"), 0);
    assert_string_equal(s_owner_of(admin, "alice.orders"), "alice");
    assert_int_equal(sl_unsubscribe(&asub, false), 0);
    assert_int_equal(s_pub(admin, "shop.orders", "o2"), 0);

    /* Bob's subscribe grant covers the topic, not alice's subscription. */
    assert_int_equal(s_sub(bob, "alice.orders", "shop.orders", &bsub), SL_EDENIED);
    assert_null(bsub);
    assert_non_null(strstr(sl_client_last_error(bob), "identity \"bob\" may not attach to "
                                                      "subscription alice.orders"));
    assert_non_null(strstr(sl_client_last_error(bob), "belongs to \"alice\""));
    assert_int_equal(sl_sub_remove(bob, "alice.orders"), SL_EDENIED);
    /* Nothing moved: alice resumes with o2. */
    assert_int_equal(s_sub(alice, "alice.orders", "shop.orders", &asub), 0);
    sl_msg_t *m = s_next_is(asub, "o2");
    assert_int_equal(sl_ack_sync(m, S_WAIT_MS), 0);
    sl_msg_destroy(&m);
    assert_int_equal(sl_unsubscribe(&asub, false), 0);

    /* A consume grant on the name (the CLI's --consume; keys list shows
     * it) lets bob attach and ack. */
    char cli[512], cmd[1400];
    char *out = NULL;
    h_build_path("adapters/cli/sluice", cli, sizeof cli);
    snprintf(cmd, sizeof cmd, "%s grant bob --consume 'alice.>' --home %s", cli, b.dir);
    assert_int_equal(h_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "%s keys list --home %s", cli, b.dir);
    assert_int_equal(h_run(cmd, NULL, &out), 0);
    assert_non_null(strstr(out, "consume alice.>"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s keys list --json --home %s", cli, b.dir);
    assert_int_equal(h_run(cmd, NULL, &out), 0);
    assert_non_null(strstr(out, "{\"pattern\":\"alice.>\",\"perms\":[\"consume\"]}"));
    free(out);
    assert_int_equal(s_sub(bob, "alice.orders", "shop.orders", &bsub), 0);
    assert_int_equal(s_pass_one(admin, bsub, "o3"), 0);
    /* Still alice's. */
    assert_string_equal(s_owner_of(bob, "alice.orders"), "alice");
    /* Revoked: bob's next ack is refused (checked on every command). */
    sl_grant_t consume = { SL_PERM_CONSUME, "alice.>" };
    assert_int_equal(sl_grant(admin, "bob", &consume, 1, true), 0);
    assert_int_equal(s_pass_one(admin, bsub, "o4"), SL_EDENIED);
    sl_unsubscribe(&bsub, false);

    /* The owner removes her own (Unsubscribe{remove}); bob, granted
     * consume again, removes another of hers with SubRemove; bob's own
     * subscription is removed by admin (admin on its pattern). */
    assert_int_equal(s_sub(alice, "alice.orders", "shop.orders", &asub), 0);
    assert_int_equal(sl_unsubscribe(&asub, true), 0);
    assert_null(s_owner_of(admin, "alice.orders"));
    assert_int_equal(s_sub(alice, "alice.second", "shop.orders", &asub), 0);
    assert_int_equal(sl_unsubscribe(&asub, false), 0);
    assert_int_equal(s_sub(bob, "bob.orders", "shop.orders", &bsub), 0);
    assert_int_equal(sl_unsubscribe(&bsub, false), 0);
    assert_int_equal(sl_sub_remove(alice, "bob.orders"), SL_EDENIED);
    assert_int_equal(sl_grant(admin, "bob", &consume, 1, false), 0);
    assert_int_equal(sl_sub_remove(bob, "alice.second"), 0);
    assert_int_equal(sl_sub_remove(admin, "bob.orders"), 0);
    assert_null(s_owner_of(admin, "alice.second"));
    assert_null(s_owner_of(admin, "bob.orders"));

    char *audit = s_audit(admin);
#define S_REC(who, action, target, result) \
    "\"identity\":\"" who "\",\"action\":\"" action "\",\"target\":\"" target \
    "\",\"result\":\"" result "\""
    assert_true(s_audit_has(audit, S_REC("bob", "subscribe", "alice.orders", "denied"),
                            "belongs to \\\"alice\\\"", "consume on alice.orders"));
    assert_true(s_audit_has(audit, S_REC("bob", "sub.remove", "alice.orders", "denied"),
                            "admin on shop.orders", NULL));
    assert_true(s_audit_has(audit, S_REC("bob", "ack", "alice.orders", "denied"), NULL, NULL));
    assert_true(s_audit_has(audit, S_REC("alice", "sub.remove", "bob.orders", "denied"), NULL,
                            NULL));
    assert_true(s_audit_has(audit, S_REC("alice", "sub.remove", "alice.orders", "ok"),
                            "Unsubscribe{remove}", "owner \\\"alice\\\""));
    assert_true(s_audit_has(audit, S_REC("bob", "sub.remove", "alice.second", "ok"),
                            "SubRemove", "owner \\\"alice\\\""));
    assert_true(s_audit_has(audit, S_REC("admin", "sub.remove", "bob.orders", "ok"),
                            "owner \\\"bob\\\"", NULL));
#undef S_REC
    free(audit);
    sl_client_destroy(&alice);
    sl_client_destroy(&bob);
    sl_client_destroy(&admin);
    h_broker_destroy(&b);
}

/* A subscription stored without an owner (made before owners were kept,
 * or in plain text) is claimed by the first identity that attaches to it
 * by its subscribe grant alone, audited and kept across a restart; an
 * admin attaching does not claim it. */
static void test_subscription_claimed(void **state)
{
    (void) state;
    h_broker_t b;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *c = NULL;
    sl_sub_t *sub = NULL;
    assert_int_equal(s_open(&b, NULL, S_WAIT_MS, &c), 0);
    assert_int_equal(s_sub(c, "legacy.orders", "shop.orders", &sub), 0);
    assert_int_equal(sl_unsubscribe(&sub, false), 0);
    assert_int_equal(s_pub(c, "shop.orders", "m1"), 0);
    sl_client_destroy(&c);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);

    b.secure = true;
    assert_int_equal(h_broker_start(&b), 0);
    sl_client_t *admin = s_admin(&b);
    assert_string_equal(s_owner_of(admin, "legacy.orders"), "");
    assert_int_equal(s_sub(admin, "legacy.orders", "shop.orders", &sub), 0);
    assert_int_equal(sl_unsubscribe(&sub, false), 0);
    assert_string_equal(s_owner_of(admin, "legacy.orders"), "");
    s_keys_t ka, kb;
    s_keygen(&b, "alice", &ka);
    s_keygen(&b, "bob", &kb);
    s_register_shop(admin, "alice", &ka);
    s_register_shop(admin, "bob", &kb);
    sl_client_t *alice = NULL, *bob = NULL;
    assert_int_equal(s_open(&b, ka.cert, S_WAIT_MS, &alice), 0);
    assert_int_equal(s_open(&b, kb.cert, S_WAIT_MS, &bob), 0);
    /* Removing is not claiming. */
    assert_int_equal(sl_sub_remove(alice, "legacy.orders"), SL_EDENIED);
    assert_int_equal(s_sub(bob, "legacy.orders", "shop.orders", &sub), 0);
    sl_msg_t *m = s_next_is(sub, "m1");
    assert_int_equal(sl_ack_sync(m, S_WAIT_MS), 0);
    sl_msg_destroy(&m);
    assert_int_equal(sl_unsubscribe(&sub, false), 0);
    assert_string_equal(s_owner_of(admin, "legacy.orders"), "bob");
    assert_int_equal(s_sub(alice, "legacy.orders", "shop.orders", &sub), SL_EDENIED);
    sl_client_destroy(&alice);
    sl_client_destroy(&bob);
    char *audit = s_audit(admin);
    assert_true(s_audit_has(audit, "\"identity\":\"bob\",\"action\":\"sub.claim\","
                            "\"target\":\"legacy.orders\",\"result\":\"ok\"", NULL, NULL));
    assert_true(s_audit_has(audit, "\"identity\":\"alice\",\"action\":\"subscribe\","
                            "\"target\":\"legacy.orders\",\"result\":\"denied\"",
                            "belongs to \\\"bob\\\"", NULL));
    free(audit);
    sl_client_destroy(&admin);

    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    assert_int_equal(h_broker_start(&b), 0);
    admin = s_admin(&b);
    assert_string_equal(s_owner_of(admin, "legacy.orders"), "bob");
    sl_client_destroy(&admin);
    h_broker_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_start_keys),
        cmocka_unit_test(test_plaintext_rules),
        cmocka_unit_test(test_admission_and_grants),
        cmocka_unit_test(test_revoke_cuts_off),
        cmocka_unit_test(test_no_plaintext_on_wire),
        cmocka_unit_test(test_encryption_at_rest),
        cmocka_unit_test(test_unreadable_record_dead_lettered),
        cmocka_unit_test(test_refusals_tallied),
        cmocka_unit_test(test_audit_retention),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_nofile_raised),
        cmocka_unit_test(test_denials_audited),
        cmocka_unit_test(test_subscription_owner),
        cmocka_unit_test(test_subscription_claimed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
