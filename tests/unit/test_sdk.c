/*  test_sdk - libsluice against a fake broker: a ROUTER socket in its own
 *  thread that speaks docs/protocol.md just enough (Hello, heartbeats,
 *  publish confirms with offsets, subscribe, acks, admin, keys and grants)
 *  and records what it received; the test thread drives the client and
 *  injects deliveries. Optionally the ROUTER is a CURVE server whose ZAP
 *  handler (same thread) admits one client key. The fake broker's records
 *  are guarded by its mutex; the client is only touched by the test
 *  thread. Not a broker test: no storage, no routing.  */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <poll.h>
#include <stdatomic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sluice.h"
#include "slc.h"
#include "slc_cert.h"
#include "slc_codec.h"

#define FB_MAX_SEQ 8192
#define FB_MAX_LOG 4096

typedef struct {
    uint64_t offset;
    uint64_t token;
    uint64_t corr;
    uint32_t sub_id;
} fb_ack_t;

typedef struct {
    pthread_mutex_t mu;
    pthread_t thread;
    void *ctx;
    void *router;
    char endpoint[128];
    bool stop;
    /* policy */
    bool version_error;
    bool hold_confirms;         /* store nothing, answer nothing */
    bool defer_confirms;        /* store, but keep the answers until fb_release */
    uint64_t last_seq;          /* HelloOk.producer_last_seq */
    uint32_t max_batch;
    uint64_t nack_seq;          /* answer this seq with nack_code ... */
    int nack_code;
    bool nack_retryable;
    int nack_times;             /* ... this many times */
    int refuse_code;            /* AckReply refusal for acks with corr */
    /* sessions: routing ids that said Hello */
    uint8_t rids[8][64];
    size_t rid_len[8];
    size_t nrids;
    uint8_t last_rid[64];
    size_t last_rid_len;
    /* records */
    int hellos;
    uint32_t hello_version;
    char hello_client[64];
    uint8_t hello_pid[16];
    size_t hello_pid_len;
    int heartbeats;
    int errors401;
    int batches;
    int batch_size[256];
    bool batch_transient[256];
    uint64_t seqs[FB_MAX_LOG];  /* every seq received, in order */
    int nseqs;
    uint64_t offset_of[FB_MAX_SEQ];  /* 0 = not stored */
    uint64_t next_offset;
    int subscribes;
    char sub_name[64];
    char sub_pattern[64];
    uint32_t sub_credit;
    int sub_start;
    uint32_t next_sub_id;
    uint64_t credit_total;
    fb_ack_t acks[FB_MAX_LOG];
    int nacks;
    int ack_frames;
    int nack_frames;
    int unsubscribes;
    /* CURVE: server key pair and the one client key the ZAP handler admits */
    void *zap;                  /* REP on inproc://zeromq.zap.01, or NULL */
    char server_pub[41];
    uint8_t admitted[32];
    int zap_requests;
    /* keys and grants */
    char key_name[64];
    uint8_t key[32];
    int grant_changes;
    bool grant_revoke;
    size_t ngrants;
    uint32_t grant_perms[8];
    char grant_pattern[8][64];
    /* frames to send to the last session, encoded */
    void *outbox[64];
    size_t outlen[64];
    int nout;
    /* PublishAcks kept back (defer_confirms), encoded */
    void *held[64];
    size_t heldlen[64];
    int nheld;
} fb_t;

/* --------------------------------------------------------- fake broker */

static void fb_send(fb_t *fb, const void *rid, size_t len, Sluice__Frame *f)
{
    int rc = slc_frame_send(fb->router, rid, len, f, 0);
    assert_int_equal(rc, 0);
}

static void fb_error(fb_t *fb, const void *rid, size_t len, uint64_t corr,
                     int code, bool retryable)
{
    Sluice__Error e = SLUICE__ERROR__INIT;
    e.code = code;
    e.text = (char *) slc_strerror(code);
    e.retryable = retryable;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.corr = corr;
    f.body_case = SLUICE__FRAME__BODY_ERROR;
    f.error = &e;
    fb_send(fb, rid, len, &f);
}

static bool fb_known(const fb_t *fb, const uint8_t *rid, size_t len)
{
    for (size_t i = 0; i < fb->nrids; i++)
        if (fb->rid_len[i] == len && memcmp(fb->rids[i], rid, len) == 0)
            return true;
    return false;
}

static void fb_publish(fb_t *fb, const uint8_t *rid, size_t len,
                       const Sluice__Frame *f)
{
    const Sluice__PublishBatch *pb = f->publish_batch;
    if (fb->batches < 256) {
        fb->batch_size[fb->batches] = (int) pb->n_msgs;
        fb->batch_transient[fb->batches] = pb->transient;
    }
    fb->batches++;
    for (size_t i = 0; i < pb->n_msgs && fb->nseqs < FB_MAX_LOG; i++)
        fb->seqs[fb->nseqs++] = pb->msgs[i]->seq;
    if (pb->transient && f->corr && !fb->hold_confirms) {
        /* As sluiced: an empty PublishAck says the batch was fanned out. */
        Sluice__PublishAck empty = SLUICE__PUBLISH_ACK__INIT;
        Sluice__Frame r = SLUICE__FRAME__INIT;
        r.corr = f->corr;
        r.body_case = SLUICE__FRAME__BODY_PUBLISH_ACK;
        r.publish_ack = &empty;
        fb_send(fb, rid, len, &r);
    }
    if (pb->transient || fb->hold_confirms)
        return;
    Sluice__Confirm *cs = calloc(pb->n_msgs, sizeof *cs);
    Sluice__Confirm **cp = calloc(pb->n_msgs, sizeof *cp);
    assert_non_null(cs);
    assert_non_null(cp);
    for (size_t i = 0; i < pb->n_msgs; i++) {
        uint64_t seq = pb->msgs[i]->seq;
        sluice__confirm__init(&cs[i]);
        cs[i].seq = seq;
        cs[i].index = (uint32_t) i;
        cp[i] = &cs[i];
        if (seq == fb->nack_seq && fb->nack_times > 0) {
            fb->nack_times--;
            cs[i].code = fb->nack_code;
            cs[i].retryable = fb->nack_retryable;
            cs[i].text = (char *) slc_strerror(fb->nack_code);
            continue;
        }
        assert_true(seq < FB_MAX_SEQ);
        if (fb->offset_of[seq]) {
            cs[i].duplicate = true;
        }
        else
            fb->offset_of[seq] = fb->next_offset++;
        cs[i].offset = fb->offset_of[seq];
    }
    Sluice__PublishAck pa = SLUICE__PUBLISH_ACK__INIT;
    pa.n_confirms = pb->n_msgs;
    pa.confirms = cp;
    Sluice__Frame r = SLUICE__FRAME__INIT;
    r.corr = f->corr;
    r.body_case = SLUICE__FRAME__BODY_PUBLISH_ACK;
    r.publish_ack = &pa;
    if (fb->defer_confirms) {
        /* Kept for fb_release, which sends to the last session. */
        size_t n = sluice__frame__get_packed_size(&r);
        assert_true(fb->nheld < 64);
        fb->held[fb->nheld] = malloc(n ? n : 1);
        assert_non_null(fb->held[fb->nheld]);
        sluice__frame__pack(&r, fb->held[fb->nheld]);
        fb->heldlen[fb->nheld++] = n;
    }
    else
        fb_send(fb, rid, len, &r);
    free(cs);
    free(cp);
}

static void fb_stats(fb_t *fb, const uint8_t *rid, size_t len, uint64_t corr)
{
    Sluice__TopicInfo ti = SLUICE__TOPIC_INFO__INIT;
    ti.name = (char *) "orders";
    ti.next_offset = 42;
    ti.messages = 40;
    Sluice__TopicInfo *tp = &ti;
    Sluice__SubInfo si = SLUICE__SUB_INFO__INIT;
    si.name = (char *) "svc";
    si.pattern = (char *) "orders.>";
    si.lag = 3;
    si.attached = true;
    Sluice__SubInfo *sp = &si;
    Sluice__Counter c = SLUICE__COUNTER__INIT;
    c.name = (char *) "publishes";
    c.value = 9;
    Sluice__Counter *cp = &c;
    Sluice__StatsReply sr = SLUICE__STATS_REPLY__INIT;
    sr.n_topics = 1;
    sr.topics = &tp;
    sr.n_subs = 1;
    sr.subs = &sp;
    sr.n_counters = 1;
    sr.counters = &cp;
    Sluice__Frame r = SLUICE__FRAME__INIT;
    r.corr = corr;
    r.body_case = SLUICE__FRAME__BODY_STATS_REPLY;
    r.stats_reply = &sr;
    fb_send(fb, rid, len, &r);
}

/* An Error with its own TEXT (fb_error sends the code's name). */
static void fb_refuse(fb_t *fb, const void *rid, size_t len, uint64_t corr,
                      int code, const char *text)
{
    Sluice__Error e = SLUICE__ERROR__INIT;
    e.code = code;
    e.text = (char *) text;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.corr = corr;
    f.body_case = SLUICE__FRAME__BODY_ERROR;
    f.error = &e;
    fb_send(fb, rid, len, &f);
}

/* KeyAdd, KeyRevoke, GrantChange: record, then Ok; "ghost" is unknown. */
static void fb_keys(fb_t *fb, const uint8_t *rid, size_t len,
                    const Sluice__Frame *f)
{
    const char *name = f->body_case == SLUICE__FRAME__BODY_KEY_ADD ? f->key_add->name
                     : f->body_case == SLUICE__FRAME__BODY_KEY_REVOKE ? f->key_revoke->name
                     : f->grant_change->name;
    if (strcmp(name, "ghost") == 0) {
        fb_refuse(fb, rid, len, f->corr, 404, "no identity named ghost");
        return;
    }
    snprintf(fb->key_name, sizeof fb->key_name, "%s", name);
    if (f->body_case == SLUICE__FRAME__BODY_KEY_ADD
        && f->key_add->public_key.len == 32)
        memcpy(fb->key, f->key_add->public_key.data, 32);
    if (f->body_case == SLUICE__FRAME__BODY_GRANT_CHANGE) {
        const Sluice__GrantChange *gc = f->grant_change;
        fb->grant_changes++;
        fb->grant_revoke = gc->revoke;
        fb->ngrants = gc->n_grants < 8 ? gc->n_grants : 8;
        for (size_t i = 0; i < fb->ngrants; i++) {
            fb->grant_perms[i] = gc->grants[i]->perms;
            snprintf(fb->grant_pattern[i], 64, "%s", gc->grants[i]->pattern);
        }
    }
    Sluice__Ok ok = SLUICE__OK__INIT;
    Sluice__Frame r = SLUICE__FRAME__INIT;
    r.corr = f->corr;
    r.body_case = SLUICE__FRAME__BODY_OK;
    r.ok = &ok;
    fb_send(fb, rid, len, &r);
}

/* Two identities: alice (two grants, one session), bob (revoked). */
static void fb_key_list(fb_t *fb, const uint8_t *rid, size_t len,
                        uint64_t corr)
{
    uint8_t ka[32], kb[32];
    memset(ka, 1, sizeof ka);
    memset(kb, 2, sizeof kb);
    Sluice__Grant g[2] = { SLUICE__GRANT__INIT, SLUICE__GRANT__INIT };
    g[0].perms = SL_PERM_PUBLISH;
    g[0].pattern = (char *) "shop.>";
    g[1].perms = SL_PERM_SUBSCRIBE | SL_PERM_ADMIN;
    g[1].pattern = (char *) "audit.*";
    Sluice__Grant *gp[2] = { &g[0], &g[1] };
    Sluice__Identity id[2] = { SLUICE__IDENTITY__INIT, SLUICE__IDENTITY__INIT };
    id[0].name = (char *) "alice";
    id[0].public_key.data = ka;
    id[0].public_key.len = 32;
    id[0].created_us = 1000;
    id[0].sessions = 1;
    id[0].n_grants = 2;
    id[0].grants = gp;
    id[1].name = (char *) "bob";
    id[1].public_key.data = kb;
    id[1].public_key.len = 32;
    id[1].revoked = true;
    id[1].revoked_us = 2000;
    Sluice__Identity *ip[2] = { &id[0], &id[1] };
    Sluice__KeyListReply kr = SLUICE__KEY_LIST_REPLY__INIT;
    kr.n_identities = 2;
    kr.identities = ip;
    Sluice__Frame r = SLUICE__FRAME__INIT;
    r.corr = corr;
    r.body_case = SLUICE__FRAME__BODY_KEY_LIST_REPLY;
    r.key_list_reply = &kr;
    fb_send(fb, rid, len, &r);
}

/* One ZAP request (RFC 27): admit the one registered key, 400 otherwise. */
static void fb_zap(fb_t *fb)
{
    zmq_msg_t part[8];
    int n = 0;
    bool more = true;
    while (more && n < 8) {
        zmq_msg_init(&part[n]);
        if (zmq_msg_recv(&part[n], fb->zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part[n]);
            break;
        }
        more = zmq_msg_more(&part[n]);
        n++;
    }
    if (n >= 7) {
        pthread_mutex_lock(&fb->mu);
        fb->zap_requests++;
        bool ok = zmq_msg_size(&part[6]) == 32
               && memcmp(zmq_msg_data(&part[6]), fb->admitted, 32) == 0;
        pthread_mutex_unlock(&fb->mu);
        zmq_send(fb->zap, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(fb->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]),
                 ZMQ_SNDMORE);
        zmq_send(fb->zap, ok ? "200" : "400", 3, ZMQ_SNDMORE);
        zmq_send(fb->zap, ok ? "OK" : "unknown key", ok ? 2 : 11, ZMQ_SNDMORE);
        zmq_send(fb->zap, ok ? "alice" : "", ok ? 5 : 0, ZMQ_SNDMORE);
        zmq_send(fb->zap, "", 0, 0);
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

static void fb_handle(fb_t *fb, const uint8_t *rid, size_t len,
                      const Sluice__Frame *f)
{
    Sluice__Frame r = SLUICE__FRAME__INIT;
    r.corr = f->corr;
    if (f->body_case == SLUICE__FRAME__BODY_HELLO) {
        fb->hellos++;
        fb->hello_version = f->hello->version;
        snprintf(fb->hello_client, sizeof fb->hello_client, "%s",
                 f->hello->client);
        fb->hello_pid_len = f->hello->producer_id.len;
        if (fb->hello_pid_len == 16)
            memcpy(fb->hello_pid, f->hello->producer_id.data, 16);
        if (fb->version_error) {
            fb_error(fb, rid, len, f->corr, 426, false);
            return;
        }
        if (!fb_known(fb, rid, len) && fb->nrids < 8) {
            memcpy(fb->rids[fb->nrids], rid, len);
            fb->rid_len[fb->nrids++] = len;
        }
        memcpy(fb->last_rid, rid, len);
        fb->last_rid_len = len;
        Sluice__HelloOk ok = SLUICE__HELLO_OK__INIT;
        ok.version = 1;
        ok.session = 1;
        ok.max_batch = fb->max_batch ? fb->max_batch : 1000;
        ok.max_message_bytes = 1024 * 1024;
        ok.producer_last_seq = fb->last_seq;
        r.body_case = SLUICE__FRAME__BODY_HELLO_OK;
        r.hello_ok = &ok;
        fb_send(fb, rid, len, &r);
        return;
    }
    if (!fb_known(fb, rid, len)) {
        fb->errors401++;
        fb_error(fb, rid, len, f->corr, 401, true);
        return;
    }
    switch (f->body_case) {
    case SLUICE__FRAME__BODY_HEARTBEAT: {
        fb->heartbeats++;
        Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
        r.body_case = SLUICE__FRAME__BODY_HEARTBEAT;
        r.heartbeat = &hb;
        fb_send(fb, rid, len, &r);
        break;
    }
    case SLUICE__FRAME__BODY_PUBLISH_BATCH:
        fb_publish(fb, rid, len, f);
        break;
    case SLUICE__FRAME__BODY_SUBSCRIBE: {
        fb->subscribes++;
        snprintf(fb->sub_name, sizeof fb->sub_name, "%s", f->subscribe->name);
        snprintf(fb->sub_pattern, sizeof fb->sub_pattern, "%s",
                 f->subscribe->pattern);
        fb->sub_credit = f->subscribe->credit;
        fb->sub_start = f->subscribe->start;
        Sluice__SubscribeOk ok = SLUICE__SUBSCRIBE_OK__INIT;
        ok.name = f->subscribe->name;
        ok.sub_id = ++fb->next_sub_id;
        r.body_case = SLUICE__FRAME__BODY_SUBSCRIBE_OK;
        r.subscribe_ok = &ok;
        fb_send(fb, rid, len, &r);
        break;
    }
    case SLUICE__FRAME__BODY_CREDIT:
        fb->credit_total += f->credit->credit;
        break;
    case SLUICE__FRAME__BODY_ACK: {
        const Sluice__Ack *a = f->ack;
        fb->ack_frames++;
        fb->credit_total += a->credit;
        for (size_t i = 0; i < a->n_items && fb->nacks < FB_MAX_LOG; i++)
            fb->acks[fb->nacks++] = (fb_ack_t) { a->items[i]->offset,
                                                 a->items[i]->token, f->corr,
                                                 a->sub_id };
        if (!f->corr)
            break;
        Sluice__AckRefused *refs = calloc(a->n_items, sizeof *refs);
        Sluice__AckRefused **refp = calloc(a->n_items, sizeof *refp);
        assert_non_null(refs);
        assert_non_null(refp);
        Sluice__AckReply ar = SLUICE__ACK_REPLY__INIT;
        ar.sub_id = a->sub_id;
        if (fb->refuse_code) {
            for (size_t i = 0; i < a->n_items; i++) {
                sluice__ack_refused__init(&refs[i]);
                refs[i].topic_id = a->items[i]->topic_id;
                refs[i].offset = a->items[i]->offset;
                refs[i].token = a->items[i]->token;
                refs[i].code = fb->refuse_code;
                refp[i] = &refs[i];
            }
            ar.n_refused = a->n_items;
            ar.refused = refp;
        }
        r.body_case = SLUICE__FRAME__BODY_ACK_REPLY;
        r.ack_reply = &ar;
        fb_send(fb, rid, len, &r);
        free(refs);
        free(refp);
        break;
    }
    case SLUICE__FRAME__BODY_NACK:
        fb->nack_frames++;
        fb->credit_total += f->nack->credit;
        break;
    case SLUICE__FRAME__BODY_UNSUBSCRIBE:
    case SLUICE__FRAME__BODY_TOPIC_CREATE: {
        if (f->body_case == SLUICE__FRAME__BODY_UNSUBSCRIBE)
            fb->unsubscribes++;
        Sluice__Ok ok = SLUICE__OK__INIT;
        r.body_case = SLUICE__FRAME__BODY_OK;
        r.ok = &ok;
        fb_send(fb, rid, len, &r);
        break;
    }
    case SLUICE__FRAME__BODY_STATS:
        fb_stats(fb, rid, len, f->corr);
        break;
    case SLUICE__FRAME__BODY_SUB_REMOVE:
        fb_error(fb, rid, len, f->corr, 404, false);
        break;
    case SLUICE__FRAME__BODY_KEY_ADD:
    case SLUICE__FRAME__BODY_KEY_REVOKE:
    case SLUICE__FRAME__BODY_GRANT_CHANGE:
        fb_keys(fb, rid, len, f);
        break;
    case SLUICE__FRAME__BODY_KEY_LIST:
        fb_key_list(fb, rid, len, f->corr);
        break;
    case SLUICE__FRAME__BODY_ROTATE_KEY: {
        Sluice__RotateKeyReply rk = SLUICE__ROTATE_KEY_REPLY__INIT;
        rk.key_id = 7;
        r.body_case = SLUICE__FRAME__BODY_ROTATE_KEY_REPLY;
        r.rotate_key_reply = &rk;
        fb_send(fb, rid, len, &r);
        break;
    }
    default:
        fb_error(fb, rid, len, f->corr, 405, false);
        break;
    }
}

static void *fb_main(void *arg)
{
    fb_t *fb = arg;
    while (true) {
        pthread_mutex_lock(&fb->mu);
        bool stop = fb->stop;
        for (int i = 0; i < fb->nout; i++) {
            zmq_send(fb->router, fb->last_rid, fb->last_rid_len, ZMQ_SNDMORE);
            zmq_send(fb->router, fb->outbox[i], fb->outlen[i], 0);
            free(fb->outbox[i]);
        }
        fb->nout = 0;
        pthread_mutex_unlock(&fb->mu);
        if (stop)
            break;
        zmq_pollitem_t it[2] = { { fb->router, 0, ZMQ_POLLIN, 0 },
                                 { fb->zap, 0, ZMQ_POLLIN, 0 } };
        if (zmq_poll(it, fb->zap ? 2 : 1, 2) <= 0)
            continue;
        if (fb->zap && (it[1].revents & ZMQ_POLLIN))
            fb_zap(fb);
        uint8_t rid[64];
        int rlen;
        while ((rlen = zmq_recv(fb->router, rid, sizeof rid, ZMQ_DONTWAIT)) >= 0) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, fb->router, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            Sluice__Frame *f = NULL;
            int rc = slc_frame_decode(zmq_msg_data(&m), zmq_msg_size(&m), &f);
            zmq_msg_close(&m);
            if (rc) {
                fprintf(stderr, "fake broker: undecodable frame\n");
                continue;
            }
            pthread_mutex_lock(&fb->mu);
            fb_handle(fb, rid, (size_t) rlen, f);
            pthread_mutex_unlock(&fb->mu);
            slc_frame_free(&f);
        }
    }
    return NULL;
}

/* A fake broker; with SERVER (a key pair) a CURVE server admitting
 * ADMITTED (32 bytes) only. */
static fb_t *fb_new_curve(const slc_cert_t *server, const uint8_t *admitted)
{
    fb_t *fb = calloc(1, sizeof *fb);
    assert_non_null(fb);
    pthread_mutex_init(&fb->mu, NULL);
    fb->next_offset = 100;
    fb->next_sub_id = 6;
    fb->ctx = zmq_ctx_new();
    fb->router = zmq_socket(fb->ctx, ZMQ_ROUTER);
    int zero = 0, one = 1;
    zmq_setsockopt(fb->router, ZMQ_LINGER, &zero, sizeof zero);
    if (server) {
        /* The ZAP handler is bound before the ROUTER, or libzmq would let
         * every key in. */
        fb->zap = zmq_socket(fb->ctx, ZMQ_REP);
        zmq_setsockopt(fb->zap, ZMQ_LINGER, &zero, sizeof zero);
        assert_int_equal(zmq_bind(fb->zap, "inproc://zeromq.zap.01"), 0);
        memcpy(fb->admitted, admitted, 32);
        slc_key_z85(server->public_key, fb->server_pub);
        assert_int_equal(zmq_setsockopt(fb->router, ZMQ_CURVE_SERVER, &one,
                                        sizeof one), 0);
        assert_int_equal(zmq_setsockopt(fb->router, ZMQ_CURVE_SECRETKEY,
                                        server->secret_key, 32), 0);
        assert_int_equal(zmq_setsockopt(fb->router, ZMQ_ZAP_DOMAIN, "sluice",
                                        6), 0);
    }
    assert_int_equal(zmq_bind(fb->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fb->endpoint;
    assert_int_equal(zmq_getsockopt(fb->router, ZMQ_LAST_ENDPOINT,
                                    fb->endpoint, &len), 0);
    assert_int_equal(pthread_create(&fb->thread, NULL, fb_main, fb), 0);
    return fb;
}

static fb_t *fb_new(void)
{
    return fb_new_curve(NULL, NULL);
}

static void fb_destroy(fb_t **fb_p)
{
    fb_t *fb = *fb_p;
    pthread_mutex_lock(&fb->mu);
    fb->stop = true;
    pthread_mutex_unlock(&fb->mu);
    pthread_join(fb->thread, NULL);
    for (int i = 0; i < fb->nout; i++)
        free(fb->outbox[i]);
    for (int i = 0; i < fb->nheld; i++)
        free(fb->held[i]);
    zmq_close(fb->router);
    if (fb->zap)
        zmq_close(fb->zap);
    zmq_ctx_term(fb->ctx);
    pthread_mutex_destroy(&fb->mu);
    free(fb);
    *fb_p = NULL;
}

/* Forget every session, as a restarted broker does. */
static void fb_forget(fb_t *fb)
{
    pthread_mutex_lock(&fb->mu);
    fb->nrids = 0;
    pthread_mutex_unlock(&fb->mu);
}

static void fb_queue(fb_t *fb, const Sluice__Frame *f)
{
    size_t len = sluice__frame__get_packed_size(f);
    void *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    sluice__frame__pack(f, buf);
    pthread_mutex_lock(&fb->mu);
    assert_true(fb->nout < 64);
    fb->outbox[fb->nout] = buf;
    fb->outlen[fb->nout++] = len;
    pthread_mutex_unlock(&fb->mu);
}

/* Send the PublishAcks kept back so far (defer_confirms); with AND_STOP,
 * answer at once from now on. */
static void fb_release(fb_t *fb, bool and_stop)
{
    pthread_mutex_lock(&fb->mu);
    for (int i = 0; i < fb->nheld; i++) {
        assert_true(fb->nout < 64);
        fb->outbox[fb->nout] = fb->held[i];
        fb->outlen[fb->nout++] = fb->heldlen[i];
    }
    fb->nheld = 0;
    if (and_stop)
        fb->defer_confirms = false;
    pthread_mutex_unlock(&fb->mu);
}

/* Inject one Deliver of N deliveries with consecutive offsets. */
static void fb_deliver(fb_t *fb, uint32_t sub_id, uint64_t offset,
                       uint64_t token, uint32_t attempt, size_t n)
{
    Sluice__Delivery *ds = calloc(n, sizeof *ds);
    Sluice__Delivery **dp = calloc(n, sizeof *dp);
    uint8_t (*envs)[256] = calloc(n, 256);
    char (*payloads)[32] = calloc(n, 32);
    assert_true(ds && dp && envs && payloads);
    for (size_t i = 0; i < n; i++) {
        Sluice__Envelope env = SLUICE__ENVELOPE__INIT;
        env.topic = (char *) "orders.eu";
        env.seq = offset + i + 1;
        env.content_type = (char *) "text/plain";
        snprintf(payloads[i], 32, "msg-%llu", (unsigned long long) (offset + i));
        env.payload.data = (uint8_t *) payloads[i];
        env.payload.len = strlen(payloads[i]);
        size_t elen = sluice__envelope__pack(&env, envs[i]);
        sluice__delivery__init(&ds[i]);
        ds[i].sub_id = sub_id;
        ds[i].topic_id = 3;
        ds[i].topic = (char *) "orders.eu";
        ds[i].offset = offset + i;
        ds[i].token = token + i;
        ds[i].attempt = attempt;
        ds[i].envelope.data = envs[i];
        ds[i].envelope.len = elen;
        dp[i] = &ds[i];
    }
    Sluice__Deliver dv = SLUICE__DELIVER__INIT;
    dv.n_msgs = n;
    dv.msgs = dp;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_DELIVER;
    f.deliver = &dv;
    fb_queue(fb, &f);
    free(ds);
    free(dp);
    free(envs);
    free(payloads);
}

/* Run STEP until EXPR (read under the fake broker's lock) holds. */
#define WAIT_UNTIL(fb, expr, ms, step) do {                             \
        uint64_t dl_ = slc_mono_ms() + (ms);                            \
        bool ok_ = false;                                               \
        while (true) {                                                  \
            pthread_mutex_lock(&(fb)->mu);                              \
            ok_ = (expr);                                               \
            pthread_mutex_unlock(&(fb)->mu);                            \
            if (ok_ || slc_mono_ms() >= dl_)                            \
                break;                                                  \
            step;                                                       \
        }                                                               \
        assert_true(ok_);                                               \
    } while (0)

/* Poll the client until EXPR holds. */
#define WAIT_FOR(c, fb, expr, ms) WAIT_UNTIL(fb, expr, ms, sl_poll((c), 5))

/* The same without calling the client: a call that blocks would send
 * what lingers itself. */
#define WAIT_QUIET(fb, expr, ms) WAIT_UNTIL(fb, expr, ms, usleep(1000))

static sl_client_t *s_client(const fb_t *fb, sl_options_t *o)
{
    sl_options_t d;
    if (!o) {
        sl_options_init(&d);
        o = &d;
    }
    o->endpoint = fb ? fb->endpoint : "tcp://127.0.0.1:1";
    o->name = "test";
    if (!o->connect_timeout_ms || o->connect_timeout_ms == 30000)
        o->connect_timeout_ms = 3000;
    sl_client_t *c = NULL;
    assert_int_equal(sl_client_new(o, &c), 0);
    return c;
}

/* A client whose publishes and acks could linger for 10 s: only smart
 * batching or a blocking call sends them in a test's time. */
static sl_client_t *s_client_lingering(const fb_t *fb)
{
    sl_options_t o;
    sl_options_init(&o);
    o.linger_ms = 10000;
    return s_client(fb, &o);
}

typedef struct {
    int n;
    int rc[64];
    uint64_t seq[64];
    uint64_t offset[64];
    bool dup[64];
    char text[64][64];
    char topic[64][64];
} rec_t;

static void s_rec(const sl_confirm_t *c, void *arg)
{
    rec_t *r = arg;
    assert_true(r->n < 64);
    int i = r->n++;
    r->rc[i] = c->rc;
    r->seq[i] = c->seq;
    r->offset[i] = c->offset;
    r->dup[i] = c->duplicate;
    snprintf(r->text[i], sizeof r->text[i], "%s", c->text ? c->text : "");
    snprintf(r->topic[i], sizeof r->topic[i], "%s", c->topic);
}

static sl_message_t s_msg(const char *topic, const char *payload)
{
    sl_message_t m = { .topic = topic, .payload = payload,
                       .len = strlen(payload) };
    return m;
}

/* ------------------------------------------------------------- tests */

static void t_hello(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_client_t *c = s_client(fb, NULL);
    assert_int_equal(sl_client_connect(c), 0);
    assert_true(sl_client_connected(c));
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->hellos, 1);
    assert_int_equal(fb->hello_version, SLC_PROTOCOL_VERSION);
    assert_string_equal(fb->hello_client, "test");
    assert_int_equal(fb->hello_pid_len, 16);
    pthread_mutex_unlock(&fb->mu);
    /* Heartbeats flow while idle and are answered. */
    sl_client_destroy(&c);
    assert_null(c);
    sl_options_t o;
    sl_options_init(&o);
    o.heartbeat_ms = 20;
    o.dead_after_ms = 500;
    c = s_client(fb, &o);
    assert_int_equal(sl_client_connect(c), 0);
    WAIT_FOR(c, fb, fb->heartbeats >= 3, 2000);
    assert_int_equal(sl_client_reconnects(c), 0);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

static void t_version(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    fb->version_error = true;
    sl_client_t *c = s_client(fb, NULL);
    assert_int_equal(sl_client_connect(c), SL_EVERSION);
    assert_false(sl_client_connected(c));
    sl_message_t m = s_msg("orders.eu", "x");
    assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), SL_EVERSION);
    assert_int_equal(sl_poll(c, 0), SL_EVERSION);
    assert_int_equal(sl_flush(c, 100), SL_EVERSION);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

static void t_publish_confirm(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_options_t o;
    sl_options_init(&o);
    o.linger_ms = 10000;        /* only the wire or sl_flush sends */
    sl_client_t *c = s_client(fb, &o);
    assert_int_equal(sl_client_connect(c), 0);
    pthread_mutex_lock(&fb->mu);
    fb->defer_confirms = true;
    pthread_mutex_unlock(&fb->mu);
    rec_t rec = { 0 };
    sl_header_t h[] = { { "k", "v" } };
    for (int i = 0; i < 10; i++) {
        sl_message_t m = s_msg("orders.eu", "payload");
        m.headers = h;
        m.nheaders = 1;
        m.content_type = "text/plain";
        m.msg_id = i == 0 ? "id-0" : NULL;
        uint64_t seq = 0;
        assert_int_equal(sl_publish(c, &m, s_rec, &rec, &seq), 0);
        assert_int_equal(seq, (uint64_t) i + 1);
    }
    assert_int_equal(sl_unconfirmed(c), 10);
    /* Smart batching: the first left at once (nothing was on the wire);
     * the other nine gather while it is unanswered, not for the linger. */
    WAIT_QUIET(fb, fb->batches == 1, 2000);
    usleep(20 * 1000);
    sl_poll(c, 0);              /* not blocking, no answer: they keep waiting */
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->batches, 1);
    assert_int_equal(fb->batch_size[0], 1);
    pthread_mutex_unlock(&fb->mu);
    /* Its confirm arrives: the nine go together at the next turn. */
    uint64_t t0 = slc_mono_ms();
    fb_release(fb, true);
    while (rec.n < 10 && slc_mono_ms() - t0 < 2000) {
        sl_poll(c, 0);
        usleep(1000);
    }
    assert_true(slc_mono_ms() - t0 < 2000);
    assert_int_equal(sl_unconfirmed(c), 0);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->batches, 2);
    assert_int_equal(fb->batch_size[1], 9);
    assert_false(fb->batch_transient[0]);
    assert_false(fb->batch_transient[1]);
    for (int i = 0; i < 10; i++)
        assert_int_equal(fb->seqs[i], (uint64_t) i + 1);
    pthread_mutex_unlock(&fb->mu);
    assert_int_equal(rec.n, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(rec.rc[i], 0);
        assert_int_equal(rec.seq[i], (uint64_t) i + 1);
        assert_int_equal(rec.offset[i], 100 + (uint64_t) i);
        assert_false(rec.dup[i]);
        assert_string_equal(rec.topic[i], "orders.eu");
    }
    /* publish_sync */
    sl_message_t m = s_msg("orders.eu", "sync");
    sl_confirm_t out;
    assert_int_equal(sl_publish_sync(c, &m, 2000, &out), 0);
    assert_int_equal(out.seq, 11);
    assert_int_equal(out.offset, 110);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

static void t_batching(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_options_t o;
    sl_options_init(&o);
    o.linger_ms = 40;
    o.max_batch = 4;
    sl_client_t *c = s_client(fb, &o);
    assert_int_equal(sl_client_connect(c), 0);
    pthread_mutex_lock(&fb->mu);
    fb->defer_confirms = true;  /* the first batch stays unanswered */
    pthread_mutex_unlock(&fb->mu);
    /* Nothing on the wire: the first publish goes at once, alone. Then a
     * full batch goes at once, from sl_publish itself. */
    for (int i = 0; i < 5; i++) {
        sl_message_t m = s_msg("orders.eu", "b");
        assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), 0);
    }
    WAIT_QUIET(fb, fb->batches == 2, 30);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->batch_size[0], 1);
    assert_int_equal(fb->batch_size[1], 4);
    pthread_mutex_unlock(&fb->mu);
    /* With batches unanswered, a partial batch waits for linger while the
     * caller keeps busy (calls that do not block). */
    uint64_t t0 = slc_mono_ms();
    for (int i = 0; i < 3; i++) {
        sl_message_t m = s_msg("orders.eu", "l");
        assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), 0);
    }
    int sent = 0;
    while (!sent && slc_mono_ms() - t0 < 2000) {
        sl_poll(c, 0);
        usleep(1000);
        pthread_mutex_lock(&fb->mu);
        sent = fb->batches == 3;
        pthread_mutex_unlock(&fb->mu);
    }
    assert_true(sent);
    assert_true(slc_mono_ms() - t0 >= 35);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->batch_size[2], 3);
    pthread_mutex_unlock(&fb->mu);
    fb_release(fb, true);
    assert_int_equal(sl_flush(c, 2000), 0);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

/* sl_poll_fd: one wait for broker frames and the caller's descriptor. */
static void *s_write_later(void *arg)
{
    usleep(100 * 1000);
    assert_int_equal(write(*(int *) arg, "x", 1), 1);
    return NULL;
}

static void t_poll_fd(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_options_t o;
    sl_options_init(&o);
    o.linger_ms = 10000;        /* only a blocking call sends */
    sl_client_t *c = s_client(fb, &o);
    assert_int_equal(sl_client_connect(c), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    bool ready = true;
    assert_int_equal(sl_poll_fd(c, -1, 0, &ready), SL_EINVAL);
    assert_false(ready);
    /* Nothing waits on either side: it sleeps out its timeout. */
    uint64_t t0 = slc_mono_ms();
    assert_int_equal(sl_poll_fd(c, p[0], 60, &ready), 0);
    assert_false(ready);
    assert_true(slc_mono_ms() - t0 >= 60);
    /* A lingering publish leaves before the wait, and its confirm ends
     * the wait long before the timeout. */
    rec_t rec = { 0 };
    sl_message_t m = s_msg("orders.eu", "fd");
    assert_int_equal(sl_publish(c, &m, s_rec, &rec, NULL), 0);
    t0 = slc_mono_ms();
    while (rec.n == 0 && slc_mono_ms() - t0 < 5000)
        assert_true(sl_poll_fd(c, p[0], 5000, &ready) >= 0);
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.rc[0], 0);
    assert_false(ready);
    assert_true(slc_mono_ms() - t0 < 1000);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->batches, 1);
    pthread_mutex_unlock(&fb->mu);
    /* The descriptor written by another thread wakes the wait at once,
     * not at the timeout; it is left unread. */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_write_later, &p[1]), 0);
    t0 = slc_mono_ms();
    while (!ready && slc_mono_ms() - t0 < 5000)
        assert_true(sl_poll_fd(c, p[0], 5000, &ready) >= 0);
    uint64_t took = slc_mono_ms() - t0;
    pthread_join(th, NULL);
    assert_true(ready);
    assert_true(took >= 90 && took < 1000);
    assert_int_equal(sl_poll_fd(c, p[0], 1000, &ready), 0);
    assert_true(ready);
    char x;
    assert_int_equal(read(p[0], &x, 1), 1);
    close(p[0]);
    close(p[1]);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

/* A call that blocks sends what lingers first: nothing can join a batch
 * while the caller waits, so holding it would only add latency. */
static void t_blocking_sends(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_client_t *c = s_client_lingering(fb);
    assert_int_equal(sl_client_connect(c), 0);
    pthread_mutex_lock(&fb->mu);
    fb->defer_confirms = true;  /* the wire stays busy: publishes gather */
    pthread_mutex_unlock(&fb->mu);
    rec_t rec = { 0 };
    uint64_t t0 = slc_mono_ms();
    sl_message_t first = s_msg("orders.eu", "first");
    assert_int_equal(sl_publish(c, &first, s_rec, &rec, NULL), 0);
    for (int i = 0; i < 3; i++) {
        sl_message_t m = s_msg("orders.eu", "d");
        assert_int_equal(sl_publish(c, &m, s_rec, &rec, NULL), 0);
        sl_message_t t = s_msg("ticks.eu", "t");
        assert_int_equal(sl_publish_transient(c, &t), 0);
    }
    /* The first alone, then one durable and one transient batch of 3 as
     * soon as the caller blocks, long before the 10 s linger and with the
     * first still unanswered. */
    sl_poll(c, 100);
    WAIT_FOR(c, fb, fb->batches == 3, 3000);
    assert_true(slc_mono_ms() - t0 < 5000);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->batch_size[0], 1);
    assert_int_equal(fb->batch_size[1], 3);
    assert_int_equal(fb->batch_size[2], 3);
    assert_true(fb->batch_transient[1] != fb->batch_transient[2]);
    pthread_mutex_unlock(&fb->mu);
    fb_release(fb, true);
    while (rec.n < 4 && slc_mono_ms() - t0 < 3000)
        sl_poll(c, 100);
    assert_int_equal(rec.n, 4);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

static void t_nacks(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    fb->nack_seq = 2;
    fb->nack_code = 507;
    fb->nack_retryable = true;
    fb->nack_times = 2;
    sl_client_t *c = s_client(fb, NULL);
    rec_t rec = { 0 };
    for (int i = 0; i < 3; i++) {
        sl_message_t m = s_msg("orders.eu", "n");
        assert_int_equal(sl_publish(c, &m, s_rec, &rec, NULL), 0);
    }
    assert_int_equal(sl_flush(c, 3000), 0);
    assert_int_equal(rec.n, 3);
    /* seq 2 was refused twice (retryable) and stored on the third try */
    assert_int_equal(rec.seq[0], 1);
    assert_int_equal(rec.rc[0], 0);
    assert_int_equal(rec.seq[1], 3);
    assert_int_equal(rec.seq[2], 2);
    assert_int_equal(rec.rc[2], 0);
    pthread_mutex_lock(&fb->mu);
    int twos = 0;
    for (int i = 0; i < fb->nseqs; i++)
        twos += fb->seqs[i] == 2;
    assert_int_equal(twos, 3);
    /* now a final nack */
    fb->nack_seq = 4;
    fb->nack_code = 413;
    fb->nack_retryable = false;
    fb->nack_times = 1;
    pthread_mutex_unlock(&fb->mu);
    sl_message_t m = s_msg("orders.eu", "big");
    assert_int_equal(sl_publish(c, &m, s_rec, &rec, NULL), 0);
    assert_int_equal(sl_flush(c, 3000), 0);
    assert_int_equal(rec.n, 4);
    assert_int_equal(rec.seq[3], 4);
    assert_int_equal(rec.rc[3], SL_ETOOBIG);
    assert_string_equal(rec.text[3], slc_strerror(413));
    sl_confirm_t out;
    pthread_mutex_lock(&fb->mu);
    fb->nack_seq = 5;
    fb->nack_times = 1;
    pthread_mutex_unlock(&fb->mu);
    assert_int_equal(sl_publish_sync(c, &m, 2000, &out), SL_ETOOBIG);
    assert_int_equal(out.rc, SL_ETOOBIG);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

static void t_restart(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    fb->hold_confirms = true;
    sl_options_t o;
    sl_options_init(&o);
    o.heartbeat_ms = 50;
    sl_client_t *c = s_client(fb, &o);
    rec_t rec = { 0 };
    for (int i = 0; i < 5; i++) {
        sl_message_t m = s_msg("orders.eu", "r");
        assert_int_equal(sl_publish(c, &m, s_rec, &rec, NULL), 0);
    }
    WAIT_FOR(c, fb, fb->nseqs == 5, 2000);
    uint8_t pid[16];
    pthread_mutex_lock(&fb->mu);
    memcpy(pid, fb->hello_pid, 16);
    fb->hold_confirms = false;
    pthread_mutex_unlock(&fb->mu);
    fb_forget(fb);
    sl_message_t m = s_msg("orders.eu", "r6");
    assert_int_equal(sl_publish(c, &m, s_rec, &rec, NULL), 0);
    assert_int_equal(sl_flush(c, 3000), 0);
    assert_int_equal(sl_client_reconnects(c), 1);
    assert_true(sl_client_connected(c));
    assert_int_equal(rec.n, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(rec.rc[i], 0);
        assert_int_equal(rec.seq[i], (uint64_t) i + 1);
    }
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->hellos, 2);
    assert_true(fb->errors401 >= 1);
    assert_memory_equal(fb->hello_pid, pid, 16);
    /* 1..5 went twice, and after the restart everything went in order */
    int n = fb->nseqs;
    assert_true(n >= 11);
    for (int i = 0; i < 6; i++)
        assert_int_equal(fb->seqs[n - 6 + i], (uint64_t) i + 1);
    pthread_mutex_unlock(&fb->mu);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

static void t_silence(void **state)
{
    (void) state;
    /* A broker that stops answering is left after dead_after_ms. */
    fb_t *fb = fb_new();
    sl_options_t o;
    sl_options_init(&o);
    o.heartbeat_ms = 20;
    o.dead_after_ms = 150;
    sl_client_t *c = s_client(fb, &o);
    assert_int_equal(sl_client_connect(c), 0);
    fb_destroy(&fb);
    uint64_t t0 = slc_mono_ms();
    while (sl_client_connected(c) && slc_mono_ms() - t0 < 2000)
        sl_poll(c, 10);
    assert_false(sl_client_connected(c));
    assert_true(slc_mono_ms() - t0 < 1000);
    sl_client_destroy(&c);
}

static void t_id_file(void **state)
{
    (void) state;
    char dir[] = "/tmp/test_sdk.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/producer.id", dir);
    fb_t *fb = fb_new();
    sl_options_t o;
    sl_options_init(&o);
    o.producer_id_file = path;
    sl_client_t *a = s_client(fb, &o);
    assert_int_equal(sl_client_connect(a), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    uint8_t pid[16];
    pthread_mutex_lock(&fb->mu);
    memcpy(pid, fb->hello_pid, 16);
    pthread_mutex_unlock(&fb->mu);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char hex[64] = "";
    assert_non_null(fgets(hex, sizeof hex, f));
    fclose(f);
    char want[40];
    for (int i = 0; i < 16; i++)
        snprintf(want + 2 * i, 3, "%02x", pid[i]);
    assert_memory_equal(hex, want, 32);
    /* a second live client on the same file is refused */
    sl_client_t *b = NULL;
    o.endpoint = fb->endpoint;
    assert_int_equal(sl_client_new(&o, &b), SL_EBUSY);
    assert_null(b);
    sl_client_destroy(&a);
    /* the next one has the same id and continues the broker's sequence */
    pthread_mutex_lock(&fb->mu);
    fb->last_seq = 7;
    memset(fb->hello_pid, 0, 16);
    pthread_mutex_unlock(&fb->mu);
    sl_client_t *c = s_client(fb, &o);
    sl_message_t m = s_msg("orders.eu", "p");
    uint64_t seq = 0;
    assert_int_equal(sl_publish(c, &m, NULL, NULL, &seq), 0);
    assert_int_equal(seq, 8);
    pthread_mutex_lock(&fb->mu);
    assert_memory_equal(fb->hello_pid, pid, 16);
    pthread_mutex_unlock(&fb->mu);
    assert_int_equal(sl_flush(c, 2000), 0);
    sl_client_destroy(&c);
    fb_destroy(&fb);
    unlink(path);
    rmdir(dir);
}

static sl_sub_t *s_subscribe(sl_client_t *c, uint32_t credit)
{
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = "svc";
    so.pattern = "orders.>";
    so.credit = credit;
    sl_sub_t *sub = NULL;
    assert_int_equal(sl_subscribe(c, &so, &sub), 0);
    assert_non_null(sub);
    return sub;
}

static void t_subscribe(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_client_t *c = s_client(fb, NULL);
    sl_sub_t *sub = s_subscribe(c, 8);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->subscribes, 1);
    assert_string_equal(fb->sub_name, "svc");
    assert_string_equal(fb->sub_pattern, "orders.>");
    assert_int_equal(fb->sub_credit, 8);
    uint32_t sub_id = fb->next_sub_id;
    pthread_mutex_unlock(&fb->mu);
    fb_deliver(fb, sub_id, 0, 1000, 1, 6);
    for (uint64_t i = 0; i < 6; i++) {
        sl_msg_t *m = NULL;
        assert_int_equal(sl_sub_next(sub, 2000, &m), 0);
        assert_int_equal(sl_msg_offset(m), i);
        assert_string_equal(sl_msg_topic(m), "orders.eu");
        assert_string_equal(sl_msg_content_type(m), "text/plain");
        assert_string_equal(sl_msg_subscription(m), "svc");
        assert_int_equal(sl_msg_attempt(m), 1);
        assert_int_equal(sl_msg_seq(m), i + 1);
        size_t len = 0;
        const char *p = sl_msg_payload(m, &len);
        char want[32];
        snprintf(want, sizeof want, "msg-%llu", (unsigned long long) i);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(p, want, len);
        assert_null(sl_msg_header(m, "nope"));
        sl_msg_destroy(&m);
        assert_null(m);
    }
    sl_msg_t *m = NULL;
    assert_int_equal(sl_sub_next(sub, 0, &m), SL_ETIMEOUT);
    /* credit came back in steps of credit/4 = 2, not per message */
    WAIT_FOR(c, fb, fb->credit_total == 6, 1000);
    assert_int_equal(sl_unsubscribe(&sub, false), 0);
    assert_null(sub);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->unsubscribes, 1);
    pthread_mutex_unlock(&fb->mu);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

static bool s_has_ack(const fb_t *fb, uint64_t offset, uint64_t token)
{
    for (int i = 0; i < fb->nacks; i++)
        if (fb->acks[i].offset == offset && fb->acks[i].token == token)
            return true;
    return false;
}

/* Acks leave once the application has taken every queued delivery, not at
 * the linger: three deliveries in one frame give one Ack frame of three. */
static void t_ack_caught_up(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_client_t *c = s_client_lingering(fb);
    sl_sub_t *sub = s_subscribe(c, 100);
    uint32_t sub_id = fb->next_sub_id;
    fb_deliver(fb, sub_id, 10, 100, 1, 3);
    sl_msg_t *m[3] = { NULL };
    assert_int_equal(sl_sub_next(sub, 2000, &m[0]), 0);
    assert_int_equal(sl_ack(m[0]), 0);
    assert_int_equal(sl_sub_next(sub, 0, &m[1]), 0);
    assert_int_equal(sl_ack(m[1]), 0);
    /* One delivery still queued: the two acks gather. */
    usleep(30 * 1000);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->nacks, 0);
    pthread_mutex_unlock(&fb->mu);
    assert_int_equal(sl_sub_next(sub, 0, &m[2]), 0);
    assert_int_equal(sl_msg_offset(m[2]), 12);
    assert_int_equal(sl_ack(m[2]), 0);
    /* Caught up: all three leave now, in one frame. */
    WAIT_QUIET(fb, fb->nacks == 3, 1000);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->ack_frames, 1);
    assert_true(s_has_ack(fb, 10, 100) && s_has_ack(fb, 11, 101) && s_has_ack(fb, 12, 102));
    pthread_mutex_unlock(&fb->mu);
    for (int i = 0; i < 3; i++)
        sl_msg_destroy(&m[i]);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

static void t_redelivery(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_client_t *c = s_client(fb, NULL);
    sl_sub_t *sub = s_subscribe(c, 100);
    uint32_t sub_id = fb->next_sub_id;
    fb_deliver(fb, sub_id, 5, 100, 1, 1);
    sl_msg_t *m5 = NULL, *m6 = NULL, *x = NULL;
    assert_int_equal(sl_sub_next(sub, 2000, &m5), 0);
    assert_int_equal(sl_msg_offset(m5), 5);
    /* redelivery of the handed-out, unacked 5, then 6 */
    fb_deliver(fb, sub_id, 5, 200, 2, 1);
    fb_deliver(fb, sub_id, 6, 300, 1, 1);
    assert_int_equal(sl_sub_next(sub, 2000, &m6), 0);
    assert_int_equal(sl_msg_offset(m6), 6);
    assert_int_equal(sl_sub_next(sub, 50, &x), SL_ETIMEOUT);
    assert_int_equal(sl_msg_attempt(m5), 1);
    /* the ack carries the newest token */
    assert_int_equal(sl_ack(m5), 0);
    assert_int_equal(sl_ack(m5), SL_EINVAL);
    WAIT_FOR(c, fb, s_has_ack(fb, 5, 200), 1000);
    pthread_mutex_lock(&fb->mu);
    assert_false(s_has_ack(fb, 5, 100));
    pthread_mutex_unlock(&fb->mu);
    /* a redelivery of an acked message is acked again, not handed out */
    fb_deliver(fb, sub_id, 5, 400, 3, 1);
    WAIT_FOR(c, fb, s_has_ack(fb, 5, 400), 1000);
    assert_int_equal(sl_sub_next(sub, 50, &x), SL_ETIMEOUT);
    /* nack: sent, and the redelivery is handed out again */
    assert_int_equal(sl_nack(m6, 10), 0);
    WAIT_FOR(c, fb, fb->nack_frames == 1, 1000);
    fb_deliver(fb, sub_id, 6, 500, 2, 1);
    assert_int_equal(sl_sub_next(sub, 2000, &x), 0);
    assert_int_equal(sl_msg_offset(x), 6);
    assert_int_equal(sl_msg_attempt(x), 2);
    sl_msg_destroy(&x);
    /* dropped without ack: left to redelivery, handed out again */
    fb_deliver(fb, sub_id, 6, 600, 3, 1);
    assert_int_equal(sl_sub_next(sub, 2000, &x), 0);
    assert_int_equal(sl_msg_attempt(x), 3);
    /* messages outlive their subscription and client */
    assert_int_equal(sl_unsubscribe(&sub, true), 0);
    assert_int_equal(sl_ack(x), SL_EINVAL);
    sl_client_destroy(&c);
    assert_string_equal(sl_msg_topic(x), "orders.eu");
    sl_msg_destroy(&x);
    sl_msg_destroy(&m5);
    sl_msg_destroy(&m6);
    fb_destroy(&fb);
}

/* The SDK remembers the last 65,536 acked keys (in blocks of 64 offsets):
 * a redelivery of one of them is acked again and dropped, one acked
 * before that is handed out again, also inside a block that is half
 * forgotten. */
static void t_acked_window(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_client_t *c = s_client(fb, NULL);
    sl_sub_t *sub = s_subscribe(c, 100);
    uint32_t sub_id = fb->next_sub_id;
    const uint64_t total = 66000;       /* the first 464 fall out of the ring */
    for (uint64_t first = 0; first < total; first += 1000) {
        fb_deliver(fb, sub_id, first, 1000000 + first, 1, 1000);
        for (int i = 0; i < 1000; i++) {
            sl_msg_t *m = NULL;
            assert_int_equal(sl_sub_next(sub, 2000, &m), 0);
            assert_int_equal(sl_msg_offset(m), first + (uint64_t) i);
            assert_int_equal(sl_ack(m), 0);
            sl_msg_destroy(&m);
        }
    }
    assert_int_equal(sl_flush(c, 2000), 0);
    pthread_mutex_lock(&fb->mu);
    fb->nacks = 0;
    pthread_mutex_unlock(&fb->mu);
    /* 10 and 460 were forgotten (460 shares its block with 470, which was
     * not): handed out again. 470 and 65,000 are remembered: acked again. */
    const uint64_t forgotten[] = { 10, 460 }, remembered[] = { 470, 65000 };
    for (int i = 0; i < 2; i++) {
        fb_deliver(fb, sub_id, remembered[i], 7000 + (uint64_t) i, 2, 1);
        WAIT_FOR(c, fb, s_has_ack(fb, remembered[i], 7000 + (uint64_t) i), 2000);
        fb_deliver(fb, sub_id, forgotten[i], 8000 + (uint64_t) i, 2, 1);
        sl_msg_t *m = NULL;
        assert_int_equal(sl_sub_next(sub, 2000, &m), 0);
        assert_int_equal(sl_msg_offset(m), forgotten[i]);
        assert_int_equal(sl_msg_attempt(m), 2);
        assert_int_equal(sl_ack(m), 0);
        sl_msg_destroy(&m);
    }
    sl_msg_t *x = NULL;
    assert_int_equal(sl_sub_next(sub, 50, &x), SL_ETIMEOUT);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

static void t_resubscribe(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_options_t o;
    sl_options_init(&o);
    o.heartbeat_ms = 30;
    sl_client_t *c = s_client(fb, &o);
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = "svc";
    so.pattern = "orders.>";
    so.start = SL_START_EARLIEST;
    sl_sub_t *sub = NULL;
    assert_int_equal(sl_subscribe(c, &so, &sub), 0);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->sub_start, SL_START_EARLIEST);
    uint32_t old_id = fb->next_sub_id;
    pthread_mutex_unlock(&fb->mu);
    fb_deliver(fb, old_id, 0, 10, 1, 3);
    sl_msg_t *m0 = NULL, *x = NULL;
    assert_int_equal(sl_sub_next(sub, 2000, &m0), 0);
    /* broker restart: the heartbeat gets 401, the client says Hello and
     * subscribes again, resuming the stored cursor */
    fb_forget(fb);
    WAIT_FOR(c, fb, fb->subscribes == 2, 2000);
    assert_int_equal(sl_client_reconnects(c), 1);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->sub_start, SL_START_DEFAULT);
    assert_int_equal(fb->sub_credit, 1000);
    uint32_t new_id = fb->next_sub_id;
    pthread_mutex_unlock(&fb->mu);
    assert_true(new_id != old_id);
    /* offsets 1 and 2 were queued, not handed out: dropped with the
     * session, the broker will deliver them again */
    assert_int_equal(sl_sub_next(sub, 50, &x), SL_ETIMEOUT);
    /* redelivery of the handed-out 0 is absorbed; its ack uses the new
     * sub_id and the new token */
    fb_deliver(fb, new_id, 0, 20, 2, 3);
    assert_int_equal(sl_sub_next(sub, 2000, &x), 0);
    assert_int_equal(sl_msg_offset(x), 1);
    assert_int_equal(sl_ack(m0), 0);
    WAIT_FOR(c, fb, s_has_ack(fb, 0, 20), 1000);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->acks[fb->nacks - 1].sub_id, new_id);
    pthread_mutex_unlock(&fb->mu);
    sl_msg_destroy(&m0);
    sl_msg_destroy(&x);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

static void t_ack_sync(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_client_t *c = s_client(fb, NULL);
    sl_sub_t *sub = s_subscribe(c, 100);
    uint32_t sub_id = fb->next_sub_id;
    fb_deliver(fb, sub_id, 1, 10, 1, 2);
    sl_msg_t *a = NULL, *b = NULL;
    assert_int_equal(sl_sub_next(sub, 2000, &a), 0);
    assert_int_equal(sl_sub_next(sub, 2000, &b), 0);
    pthread_mutex_lock(&fb->mu);
    fb->refuse_code = 409;
    pthread_mutex_unlock(&fb->mu);
    assert_int_equal(sl_ack_sync(a, 2000), SL_ESTALE);
    pthread_mutex_lock(&fb->mu);
    fb->refuse_code = 0;
    pthread_mutex_unlock(&fb->mu);
    assert_int_equal(sl_ack_sync(b, 2000), 0);
    pthread_mutex_lock(&fb->mu);
    assert_true(s_has_ack(fb, 2, 11));
    assert_true(fb->acks[fb->nacks - 1].corr != 0);
    pthread_mutex_unlock(&fb->mu);
    sl_msg_destroy(&a);
    sl_msg_destroy(&b);
    sl_client_destroy(&c);          /* with the subscription still open */
    fb_destroy(&fb);
}

static void t_connect_timeout(void **state)
{
    (void) state;
    /* a port nobody listens on: bind one, note it, close it */
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
    char ep[128];
    size_t len = sizeof ep;
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len);
    zmq_close(s);
    zmq_ctx_term(ctx);
    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = ep;
    o.connect_timeout_ms = 300;
    sl_client_t *c = NULL;
    assert_int_equal(sl_client_new(&o, &c), 0);
    uint64_t t0 = slc_mono_ms();
    assert_int_equal(sl_client_connect(c), SL_ETIMEOUT);
    uint64_t took = slc_mono_ms() - t0;
    assert_true(took >= 290 && took < 1000);
    sl_sub_t *sub = NULL;
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = "svc";
    so.pattern = "orders";
    assert_int_equal(sl_subscribe(c, &so, &sub), SL_ETIMEOUT);
    assert_int_equal(sl_topic_create(c, "orders", 0, 0), SL_ETIMEOUT);
    sl_client_destroy(&c);
}

static void t_invalid(void **state)
{
    (void) state;
    sl_client_t *c = s_client(NULL, NULL);
    sl_message_t m = s_msg("bad..topic", "x");
    assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), SL_EINVAL);
    m.topic = "_reserved.topic";         /* the broker's own: 403 there too */
    assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), SL_EDENIED);
    assert_int_equal(sl_publish_transient(c, &m), SL_EDENIED);
    m.topic = "orders.*";
    assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), SL_EINVAL);
    assert_int_equal(sl_publish_transient(c, &m), SL_EINVAL);
    m.topic = NULL;
    assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), SL_EINVAL);
    /* The SDK remembers the last good topic: a bad one after it, and an
     * empty one, are still refused. */
    m.topic = "orders.eu";
    assert_int_equal(sl_publish_transient(c, &m), 0);
    m.topic = "orders.eu.";
    assert_int_equal(sl_publish_transient(c, &m), SL_EINVAL);
    m.topic = "";
    assert_int_equal(sl_publish_transient(c, &m), SL_EINVAL);
    m.topic = "orders.eu";
    assert_int_equal(sl_publish_transient(c, &m), 0);
    m.topic = "orders";
    m.len = 2 * 1024 * 1024;
    m.payload = calloc(1, m.len);
    assert_non_null(m.payload);
    assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), SL_ETOOBIG);
    free((void *) m.payload);
    sl_header_t h = { NULL, "v" };
    m = s_msg("orders", "x");
    m.headers = &h;
    m.nheaders = 1;
    assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), SL_EINVAL);
    /* Text that is not UTF-8 (Latin-1 here) would have the broker refuse
     * the whole batch frame: refused here, alone. UTF-8 is fine. */
    h = (sl_header_t) { "x-name", "Jos\xe9" };
    assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), SL_EINVAL);
    h.value = "Jos\xc3\xa9";
    assert_int_equal(sl_publish_transient(c, &m), 0);
    m.content_type = "text/plain; charset=\xff";
    assert_int_equal(sl_publish_transient(c, &m), SL_EINVAL);
    m.content_type = NULL;
    m.msg_id = "id-\xc0\xaf";
    assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), SL_EINVAL);
    m.msg_id = NULL;
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    sl_sub_t *sub = NULL;
    so.name = "svc";
    so.pattern = "orders.>.x";
    assert_int_equal(sl_subscribe(c, &so, &sub), SL_EINVAL);
    so.pattern = "orders";
    so.name = NULL;
    assert_int_equal(sl_subscribe(c, &so, &sub), SL_EINVAL);
    assert_int_equal(sl_topic_create(c, "a..b", 0, 0), SL_EINVAL);
    assert_int_equal(sl_unconfirmed(c), 0);
    sl_client_destroy(&c);
    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = "bogus://x";
    assert_int_equal(sl_client_new(&o, &c), SL_EINVAL);
    sl_options_init(&o);
    o.dead_after_ms = 100;
    o.heartbeat_ms = 200;
    assert_int_equal(sl_client_new(&o, &c), SL_EINVAL);
    assert_null(c);
    sl_client_destroy(NULL);
    sl_client_destroy(&c);
    assert_string_equal(sl_strerror(SL_ESTALE), slc_strerror(SL_ESTALE));
}

static void t_backpressure(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    fb->hold_confirms = true;
    sl_options_t o;
    sl_options_init(&o);
    o.max_unacked = 3;
    o.block_ms = 50;
    sl_client_t *c = s_client(fb, &o);
    sl_message_t m = s_msg("orders.eu", "x");
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), 0);
    uint64_t t0 = slc_mono_ms();
    assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), SL_EBUSY);
    assert_true(slc_mono_ms() - t0 >= 45);
    assert_int_equal(sl_flush(c, 50), SL_ETIMEOUT);
    pthread_mutex_lock(&fb->mu);
    fb->hold_confirms = false;
    pthread_mutex_unlock(&fb->mu);
    fb_forget(fb);              /* the resend after 401 gets the confirms */
    assert_int_equal(sl_flush(c, 3000), 0);
    assert_int_equal(sl_publish(c, &m, NULL, NULL, NULL), 0);
    sl_client_destroy(&c);      /* abandons one unconfirmed publish */
    fb_destroy(&fb);
}

static void t_transient(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_options_t o;
    sl_options_init(&o);
    o.linger_ms = 10000;        /* one batch, sent by sl_flush */
    sl_client_t *c = s_client(fb, &o);
    assert_int_equal(sl_client_connect(c), 0);
    for (int i = 0; i < 5; i++) {
        sl_message_t m = s_msg("ticks.eu", "t");
        assert_int_equal(sl_publish_transient(c, &m), 0);
    }
    assert_int_equal(sl_unconfirmed(c), 0);
    assert_int_equal(sl_flush(c, 1000), 0);
    WAIT_FOR(c, fb, fb->batches == 1, 1000);
    pthread_mutex_lock(&fb->mu);
    assert_true(fb->batch_transient[0]);
    assert_int_equal(fb->batch_size[0], 5);
    assert_int_equal(fb->seqs[0], 0);
    pthread_mutex_unlock(&fb->mu);
    sl_client_destroy(&c);
    /* Transient publishes get no answer: a client that only sends them
     * must still ask for signs of life rather than think the broker dead. */
    sl_options_init(&o);
    o.heartbeat_ms = 20;
    o.dead_after_ms = 150;
    c = s_client(fb, &o);
    assert_int_equal(sl_client_connect(c), 0);
    uint64_t t0 = slc_mono_ms();
    while (slc_mono_ms() - t0 < 400) {
        sl_message_t m = s_msg("ticks.eu", "t");
        assert_int_equal(sl_publish_transient(c, &m), 0);
        sl_poll(c, 1);
    }
    assert_int_equal(sl_client_reconnects(c), 0);
    assert_true(sl_client_connected(c));
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

static void s_counter(const char *name, uint64_t value, void *arg)
{
    if (strcmp(name, "publishes") == 0)
        *(uint64_t *) arg = value;
}

static void t_admin(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_client_t *c = s_client(fb, NULL);
    assert_int_equal(sl_topic_create(c, "orders", 1000, 0), 0);
    sl_topic_info_t *t = NULL;
    sl_sub_info_t *s = NULL;
    size_t nt = 0, ns = 0;
    assert_int_equal(sl_stats(c, &t, &nt, &s, &ns), 0);
    assert_int_equal(nt, 1);
    assert_int_equal(ns, 1);
    assert_string_equal(t[0].name, "orders");
    assert_int_equal(t[0].next_offset, 42);
    assert_string_equal(s[0].name, "svc");
    assert_string_equal(s[0].pattern, "orders.>");
    assert_int_equal(s[0].lag, 3);
    assert_true(s[0].attached);
    free(t);
    free(s);
    uint64_t v = 0;
    assert_int_equal(sl_counters(c, s_counter, &v), 0);
    assert_int_equal(v, 9);
    assert_int_equal(sl_sub_remove(c, "nope"), SL_ENOTFOUND);
    sl_client_destroy(&c);
    fb_destroy(&fb);
}

/* --------------------------------------------------------------- security */

/* A temporary directory for key files; removed by s_rmdir. */
static void s_tmpdir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/test_sdk.XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void s_rmdir(const char *dir, const char *const *names)
{
    char path[256];
    for (; *names; names++) {
        snprintf(path, sizeof path, "%s/%s", dir, *names);
        unlink(path);
    }
    assert_int_equal(rmdir(dir), 0);
}

static void t_credentials(void **state)
{
    (void) state;
    char dir[64], cert[128], pub[128], err[256], z85[41];
    s_tmpdir(dir, sizeof dir);
    snprintf(cert, sizeof cert, "%s/app.cert", dir);
    snprintf(pub, sizeof pub, "%s/app.pub", dir);
    assert_int_equal(sl_cert_create("app", cert, pub, z85, err, sizeof err), 0);
    assert_int_equal(strlen(z85), 40);
    assert_int_equal(sl_cert_create("app", cert, pub, NULL, err, sizeof err),
                     SL_EEXIST);
    assert_non_null(strstr(err, "exists"));

    sl_options_t o;
    sl_client_t *c = NULL;
    sl_options_init(&o);
    assert_int_equal(sl_options_check(&o, err, sizeof err), 0);
    assert_string_equal(err, "");
    /* A key pair needs the server key, and the other way round. */
    o.cert = cert;
    assert_int_equal(sl_client_new(&o, &c), SL_EINVAL);
    assert_null(c);
    assert_int_equal(sl_options_check(&o, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "needs server_key"));
    o.cert = NULL;
    o.server_key = pub;
    assert_int_equal(sl_client_new(&o, &c), SL_EINVAL);
    assert_int_equal(sl_options_check(&o, err, sizeof err), SL_EINVAL);
    assert_string_equal(err, "a client key pair is needed (cert or "
                             "public_key+secret_key)");
    /* Bad server key text. */
    o.cert = cert;
    o.server_key = "not-a-key";
    assert_int_equal(sl_client_new(&o, &c), SL_EINVAL);
    assert_int_equal(sl_options_check(&o, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "server_key: 'not-a-key' is neither"));
    /* A group-readable certificate. */
    o.server_key = z85;
    assert_int_equal(sl_options_check(&o, err, sizeof err), 0);
    assert_int_equal(chmod(cert, 0640), 0);
    assert_int_equal(sl_client_new(&o, &c), SL_EDENIED);
    assert_int_equal(sl_options_check(&o, err, sizeof err), SL_EDENIED);
    assert_non_null(strstr(err, "(mode 0640); chmod 600"));
    assert_int_equal(chmod(cert, 0600), 0);
    /* A .pub file is no client certificate; a missing file is a bad one. */
    o.cert = pub;
    assert_int_equal(sl_options_check(&o, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "holds no secret key"));
    o.cert = "/nonexistent/app.cert";
    assert_int_equal(sl_client_new(&o, &c), SL_EINVAL);
    /* Z85 strings: both halves, of one pair. */
    slc_cert_t a, b;
    char apub[41], asec[41], bsec[41];
    assert_int_equal(slc_cert_generate(&a), 0);
    assert_int_equal(slc_cert_generate(&b), 0);
    slc_key_z85(a.public_key, apub);
    slc_key_z85(a.secret_key, asec);
    slc_key_z85(b.secret_key, bsec);
    o.cert = NULL;
    o.public_key = apub;
    assert_int_equal(sl_options_check(&o, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "go together"));
    o.secret_key = bsec;
    assert_int_equal(sl_options_check(&o, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "does not belong"));
    o.secret_key = asec;
    assert_int_equal(sl_options_check(&o, err, sizeof err), 0);
    o.cert = cert;
    assert_int_equal(sl_options_check(&o, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "not both"));
    slc_cert_wipe(&a);
    slc_cert_wipe(&b);
    static const char *const names[] = { "app.cert", "app.pub", NULL };
    s_rmdir(dir, names);
}

static sl_client_t *s_curve_client(const fb_t *fb, const char *server_key,
                                   const char *pub, const char *sec)
{
    sl_options_t o;
    sl_options_init(&o);
    o.server_key = server_key;
    o.public_key = pub;
    o.secret_key = sec;
    o.connect_timeout_ms = 10000;
    return s_client(fb, &o);
}

/* A listener that accepts each TCP connection and closes it at once, as a
 * CURVE broker does with a plain-text client whose mechanism it saw first. */
typedef struct {
    int fd;
    atomic_bool stop;
    int accepted;
} s_hangup_t;

static void *s_hangup_main(void *arg)
{
    s_hangup_t *h = arg;
    while (!atomic_load(&h->stop)) {
        struct pollfd p = { h->fd, POLLIN, 0 };
        if (poll(&p, 1, 50) == 1) {
            int c = accept(h->fd, NULL, NULL);
            if (c >= 0) {
                h->accepted++;
                close(c);
            }
        }
    }
    return NULL;
}

/* Plain text, and the server hangs up during every handshake: after the
 * second the client reports the mechanism (a CURVE broker), not a
 * timeout. Which side sees a mismatch first is a race against a real
 * broker; this is the side of it where the broker wins. */
static void t_plain_hung_up(void **state)
{
    (void) state;
    s_hangup_t h = { .fd = socket(AF_INET, SOCK_STREAM, 0) };
    atomic_init(&h.stop, false);
    assert_true(h.fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    assert_int_equal(bind(h.fd, (struct sockaddr *) &a, sizeof a), 0);
    assert_int_equal(listen(h.fd, 8), 0);
    assert_int_equal(getsockname(h.fd, (struct sockaddr *) &a, &alen), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_hangup_main, &h), 0);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", (unsigned) ntohs(a.sin_port));
    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = ep;
    o.name = "test";
    o.connect_timeout_ms = 5000;
    sl_client_t *c = NULL;
    assert_int_equal(sl_client_new(&o, &c), 0);
    assert_int_equal(sl_client_connect(c), SL_EAUTH);
    assert_int_equal(sl_client_auth(c), SL_AUTH_MECHANISM);
    assert_non_null(strstr(sl_client_last_error(c), "requires CURVE"));
    sl_client_destroy(&c);
    atomic_store(&h.stop, true);
    pthread_join(t, NULL);
    close(h.fd);
    assert_true(h.accepted >= 2);
}

static void t_curve(void **state)
{
    (void) state;
    slc_cert_t srv, alice, mallory, other;
    char apub[41], asec[41], mpub[41], msec[41], opub[41];
    assert_int_equal(slc_cert_generate(&srv), 0);
    assert_int_equal(slc_cert_generate(&alice), 0);
    assert_int_equal(slc_cert_generate(&mallory), 0);
    assert_int_equal(slc_cert_generate(&other), 0);
    slc_key_z85(alice.public_key, apub);
    slc_key_z85(alice.secret_key, asec);
    slc_key_z85(mallory.public_key, mpub);
    slc_key_z85(mallory.secret_key, msec);
    slc_key_z85(other.public_key, opub);
    fb_t *fb = fb_new_curve(&srv, alice.public_key);

    /* A registered key gets in, with the server key from a .pub file. */
    char dir[64], pubfile[128];
    s_tmpdir(dir, sizeof dir);
    snprintf(pubfile, sizeof pubfile, "%s/server.pub", dir);
    FILE *f = fopen(pubfile, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", fb->server_pub);
    assert_int_equal(fclose(f), 0);
    sl_client_t *c = s_curve_client(fb, pubfile, apub, asec);
    assert_string_equal(sl_client_public_key(c), apub);
    assert_int_equal(sl_client_connect(c), 0);
    assert_int_equal(sl_client_auth(c), SL_AUTH_OK);
    assert_int_equal(sl_topic_create(c, "orders", 0, 0), 0);
    sl_client_destroy(&c);

    /* An unknown key: refused at once, not after connect_timeout_ms. */
    c = s_curve_client(fb, fb->server_pub, mpub, msec);
    uint64_t t0 = slc_mono_ms();
    assert_int_equal(sl_client_connect(c), SL_EAUTH);
    assert_true(slc_mono_ms() - t0 < 2000);
    assert_int_equal(sl_client_auth(c), SL_AUTH_REFUSED);
    assert_non_null(strstr(sl_client_last_error(c), "refused this client's key"));
    t0 = slc_mono_ms();
    assert_int_equal(sl_topic_create(c, "orders", 0, 0), SL_EAUTH);
    assert_int_equal(sl_flush(c, 5000), 0);     /* nothing to wait for */
    sl_message_t m = s_msg("orders", "x");
    assert_int_equal(sl_publish_sync(c, &m, 5000, NULL), SL_EAUTH);
    assert_true(slc_mono_ms() - t0 < 1000);
    assert_int_equal(sl_flush(c, 5000), SL_EAUTH);
    /* Registered meanwhile: the next attempt (within ~5 s) gets in, and
     * the queued message goes out. */
    pthread_mutex_lock(&fb->mu);
    memcpy(fb->admitted, mallory.public_key, 32);
    pthread_mutex_unlock(&fb->mu);
    uint64_t dl = slc_mono_ms() + 20000;     /* slow under valgrind */
    int rc = SL_EAUTH;
    while (rc != 0 && slc_mono_ms() < dl) {
        if (sl_poll(c, 100) == SL_EAUTH)
            usleep(50 * 1000);  /* refused until the retry: no busy loop */
        rc = sl_flush(c, 1000);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(sl_client_auth(c), SL_AUTH_OK);
    assert_true(sl_client_connected(c));
    sl_client_destroy(&c);

    /* The wrong server key: the broker cannot read our Hello. */
    c = s_curve_client(fb, opub, mpub, msec);
    t0 = slc_mono_ms();
    assert_int_equal(sl_client_connect(c), SL_EAUTH);
    assert_true(slc_mono_ms() - t0 < 3000);
    assert_int_equal(sl_client_auth(c), SL_AUTH_HANDSHAKE);
    assert_non_null(strstr(sl_client_last_error(c), "server_key"));
    sl_client_destroy(&c);

    /* Plain text against a CURVE broker. */
    c = s_client(fb, NULL);
    assert_int_equal(sl_client_connect(c), SL_EAUTH);
    assert_int_equal(sl_client_auth(c), SL_AUTH_MECHANISM);
    assert_non_null(strstr(sl_client_last_error(c), "requires CURVE"));
    assert_string_equal(sl_client_public_key(c), "");
    sl_client_destroy(&c);
    fb_destroy(&fb);

    /* CURVE against a plain-text broker. */
    fb = fb_new();
    c = s_curve_client(fb, opub, apub, asec);
    assert_int_equal(sl_client_connect(c), SL_EAUTH);
    /* Who notices the mismatch first is a race: we do (MECHANISM), or the
     * broker hangs up on us (HANDSHAKE). Both texts say it. */
    assert_true(sl_client_auth(c) == SL_AUTH_MECHANISM
                || sl_client_auth(c) == SL_AUTH_HANDSHAKE);
    assert_non_null(strstr(sl_client_last_error(c), "does not use CURVE"));
    sl_client_destroy(&c);
    fb_destroy(&fb);
    slc_cert_wipe(&srv);
    slc_cert_wipe(&alice);
    slc_cert_wipe(&mallory);
    static const char *const names[] = { "server.pub", NULL };
    s_rmdir(dir, names);
}

static void t_keys(void **state)
{
    (void) state;
    fb_t *fb = fb_new();
    sl_client_t *c = s_client(fb, NULL);
    char dir[64], cert[128], pub[128], err[256], z85[41];
    s_tmpdir(dir, sizeof dir);
    snprintf(cert, sizeof cert, "%s/bob.cert", dir);
    snprintf(pub, sizeof pub, "%s/bob.pub", dir);
    assert_int_equal(sl_cert_create("bob", cert, pub, z85, err, sizeof err), 0);
    uint8_t want[32];
    assert_int_equal(slc_key_decode(z85, want, NULL, 0), 0);

    /* By text, by .pub file: the same 32 bytes reach the broker. */
    assert_int_equal(sl_key_add(c, "bob", z85), 0);
    pthread_mutex_lock(&fb->mu);
    assert_string_equal(fb->key_name, "bob");
    assert_memory_equal(fb->key, want, 32);
    memset(fb->key, 0, 32);
    pthread_mutex_unlock(&fb->mu);
    assert_int_equal(sl_key_add(c, "bob", pub), 0);
    pthread_mutex_lock(&fb->mu);
    assert_memory_equal(fb->key, want, 32);
    pthread_mutex_unlock(&fb->mu);
    /* A bad key is refused here, with the reason. */
    assert_int_equal(sl_key_add(c, "bob", "nonsense"), SL_EINVAL);
    assert_non_null(strstr(sl_client_last_error(c), "'nonsense' is neither"));
    assert_int_equal(sl_key_add(c, "", z85), SL_EINVAL);
    /* The broker's refusal text is kept; a later success clears it. */
    assert_int_equal(sl_key_revoke(c, "ghost"), SL_ENOTFOUND);
    assert_string_equal(sl_client_last_error(c), "no identity named ghost");
    assert_int_equal(sl_key_revoke(c, "bob"), 0);
    assert_string_equal(sl_client_last_error(c), "");

    sl_identity_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(sl_key_list(c, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0].name, "alice");
    uint8_t ones[32];
    memset(ones, 1, sizeof ones);
    char ones_z85[41];
    slc_key_z85(ones, ones_z85);
    assert_string_equal(ids[0].public_key, ones_z85);
    assert_false(ids[0].revoked);
    assert_int_equal(ids[0].sessions, 1);
    assert_int_equal(ids[0].created_us, 1000);
    assert_int_equal(ids[0].ngrants, 2);
    assert_int_equal(ids[0].grants[0].perms, SL_PERM_PUBLISH);
    assert_string_equal(ids[0].grants[0].pattern, "shop.>");
    assert_int_equal(ids[0].grants[1].perms, SL_PERM_SUBSCRIBE | SL_PERM_ADMIN);
    assert_string_equal(ids[0].grants[1].pattern, "audit.*");
    assert_true(ids[1].revoked);
    assert_int_equal(ids[1].revoked_us, 2000);
    assert_int_equal(ids[1].ngrants, 0);
    assert_null(ids[1].grants);
    sl_identity_list_free(ids, n);
    sl_identity_list_free(NULL, 0);

    sl_grant_t g[2] = { { SL_PERM_PUBLISH | SL_PERM_SUBSCRIBE, "shop.>" },
                        { SL_PERM_ADMIN, ">" } };
    assert_int_equal(sl_grant(c, "bob", g, 2, false), 0);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->grant_changes, 1);
    assert_false(fb->grant_revoke);
    assert_int_equal(fb->ngrants, 2);
    assert_int_equal(fb->grant_perms[0], 3);
    assert_string_equal(fb->grant_pattern[0], "shop.>");
    assert_string_equal(fb->grant_pattern[1], ">");
    pthread_mutex_unlock(&fb->mu);
    assert_int_equal(sl_grant(c, "bob", g, 1, true), 0);
    pthread_mutex_lock(&fb->mu);
    assert_true(fb->grant_revoke);
    assert_int_equal(fb->ngrants, 1);
    pthread_mutex_unlock(&fb->mu);
    /* Checked before anything is sent. */
    sl_grant_t bad = { SL_PERM_PUBLISH, "shop..x" };
    assert_int_equal(sl_grant(c, "bob", &bad, 1, false), SL_EINVAL);
    assert_non_null(strstr(sl_client_last_error(c), "shop..x"));
    bad = (sl_grant_t) { 16, "shop" };          /* no such permission */
    assert_int_equal(sl_grant(c, "bob", &bad, 1, false), SL_EINVAL);
    assert_int_equal(sl_grant(c, "bob", g, 0, false), SL_EINVAL);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->grant_changes, 2);
    pthread_mutex_unlock(&fb->mu);
    assert_int_equal(sl_grant(c, "ghost", g, 1, false), SL_ENOTFOUND);
    /* Consume is a permission: its pattern names subscriptions. */
    sl_grant_t consume = { SL_PERM_CONSUME, "alice.>" };
    assert_int_equal(sl_grant(c, "bob", &consume, 1, false), 0);
    pthread_mutex_lock(&fb->mu);
    assert_int_equal(fb->grant_perms[0], 8);
    assert_string_equal(fb->grant_pattern[0], "alice.>");
    pthread_mutex_unlock(&fb->mu);

    uint32_t id = 0;
    assert_int_equal(sl_rotate_key(c, &id), 0);
    assert_int_equal(id, 7);
    sl_client_destroy(&c);
    fb_destroy(&fb);
    static const char *const names[] = { "bob.cert", "bob.pub", NULL };
    s_rmdir(dir, names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_hello),
        cmocka_unit_test(t_version),
        cmocka_unit_test(t_publish_confirm),
        cmocka_unit_test(t_batching),
        cmocka_unit_test(t_blocking_sends),
        cmocka_unit_test(t_poll_fd),
        cmocka_unit_test(t_nacks),
        cmocka_unit_test(t_restart),
        cmocka_unit_test(t_silence),
        cmocka_unit_test(t_id_file),
        cmocka_unit_test(t_subscribe),
        cmocka_unit_test(t_redelivery),
        cmocka_unit_test(t_ack_caught_up),
        cmocka_unit_test(t_acked_window),
        cmocka_unit_test(t_resubscribe),
        cmocka_unit_test(t_ack_sync),
        cmocka_unit_test(t_connect_timeout),
        cmocka_unit_test(t_invalid),
        cmocka_unit_test(t_backpressure),
        cmocka_unit_test(t_transient),
        cmocka_unit_test(t_admin),
        cmocka_unit_test(t_credentials),
        cmocka_unit_test(t_curve),
        cmocka_unit_test(t_plain_hung_up),
        cmocka_unit_test(t_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
