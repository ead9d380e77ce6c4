/*  peer-nats - the NATS driver of tests/bench/compare: one workload
 *  (peer_common.h) against a running nats-server, one RESULT line. W0 is
 *  core NATS; W1, W1-lat, W2 use a fresh JetStream file stream per producer
 *  (SLBENCH_<i>, subject slbench.js.<i>), js_PublishAsync with at most
 *  `window` unacked, and a durable pull consumer acking every message. Each
 *  producer and consumer is a thread with its own connection, owning its
 *  lane's half; nothing global. Exit: 0 verified, 1 lost/duplicated or
 *  failed run, 2 server unreachable or without JetStream, 64 usage.  */
#include "peer_common.h"
#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PN_DEFAULT_SERVER "nats://127.0.0.1:4222"
#define PN_DURABLE "slbench"
/* Pull batch. Large enough that a fetch round trip per batch costs little,
 * well under the consumer's MaxAckPending. */
#define PN_FETCH_BATCH 512
#define PN_MAX_ACK_PENDING (4 * PN_FETCH_BATCH)
#define PN_NOWAIT_EXPIRES_NS 1000000000LL  /* client wait for a no-wait fetch */
#define PN_WAIT_EXPIRES_NS 200000000LL     /* long poll when nothing is stored */
#define PN_POLL_MS 200                     /* core subscriber's poll */
#define PN_IDLE_NS 5000000000ULL           /* give up this long after producers end */
#define PN_STALL_MS 500                    /* one js_PublishAsync wait for window room */
#define PN_STALL_NS 60000000000ULL         /* giving up on room or on the last acks */
#define PN_FLUSH_MS 120000                 /* core publisher's final flush */

/* Internal result codes; main turns them into exit codes. */
#define PN_EFAIL (-1)    /* the run failed */
#define PN_EUNREACH (-2) /* no server, or no JetStream */

static const char *const PN_DURABILITY_CORE =
    "none: core NATS is at-most-once and keeps nothing";
static const char *const PN_DURABILITY_JS =
    "no fsync per message: JetStream file store, 1 replica; a publish is acked once written to the "
    "OS page cache; fsync only every 2 min (nats-server 2.9.10 default, no "
    "sync_interval option): survives a broker crash, not an OS crash or power loss";

/* One producer and its consumer, on one stream (JetStream) or subject. */
typedef struct {
    const peer_opts_t *o;
    unsigned index;
    uint64_t base, n;               /* this lane's sequences: base .. base+n-1 */
    char subject[32], stream[32];
    bool stream_made;               /* this run created the stream */
    atomic_bool *producers_done;    /* borrowed from the run */
    atomic_uint async_errors;       /* connection errors reported by the library */
    /* producer half: producer thread only (acked/nacked: pub-ack thread) */
    natsConnection *pnc;
    jsCtx *pjs;
    uint64_t first_pub_ns;
    uint64_t published;
    atomic_uint_fast64_t acked, nacked;
    int prod_rc;
    /* consumer half: consumer thread only once it runs */
    natsConnection *cnc;
    jsCtx *cjs;
    natsSubscription *sub;
    peer_seen_t *seen;
    peer_lat_t *lat;                /* W1-lat only, borrowed from the run */
    uint64_t foreign;               /* not a stamp of this lane */
    uint64_t last_rx_ns;
    int cons_rc;
} pn_lane_t;

typedef struct {
    peer_opts_t o;
    bool js;                        /* JetStream workload */
    natsConnection *anc;            /* admin: streams and consumers */
    jsCtx *ajs;
    pn_lane_t *lanes;
    unsigned nlanes;
    atomic_bool producers_done;
    peer_lat_t *lat;
} pn_run_t;

/* Log a failed NATS call with the library's detail; 0 for NATS_OK. */
static int s_nats(natsStatus s, jsErrCode jerr, const char *what, const char *name)
{
    const char *detail;
    if (s == NATS_OK)
        return 0;
    detail = nats_GetLastError(NULL);
    fprintf(stderr, "peer-nats: %s%s%s: %s", what, name ? " " : "", name ? name : "",
            natsStatus_GetText(s));
    if (jerr)
        fprintf(stderr, " (JetStream error %d)", (int) jerr);
    if (detail && *detail)
        fprintf(stderr, ": %s", detail);
    fputc('\n', stderr);
    return PN_EFAIL;
}

static void s_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err,
                          void *closure)
{
    atomic_uint *errors = closure;
    (void) nc;
    (void) sub;
    if (atomic_fetch_add(errors, 1) == 0)
        fprintf(stderr, "peer-nats: asynchronous error: %s\n", natsStatus_GetText(err));
}

/* Connect to the run's server; PN_EUNREACH when nothing answers there. */
static int s_connect(const peer_opts_t *o, atomic_uint *errors, natsConnection **nc)
{
    int rc = PN_EFAIL;
    natsOptions *opts = NULL;
    natsStatus s;
    if ((s = natsOptions_Create(&opts)) != NATS_OK
        || (s = natsOptions_SetURL(opts, o->server)) != NATS_OK
        /* A reconnect would hide a server that died mid-run. */
        || (s = natsOptions_SetAllowReconnect(opts, false)) != NATS_OK
        || (s = natsOptions_SetErrorHandler(opts, s_async_error, errors)) != NATS_OK) {
        s_nats(s, 0, "connection options", NULL);
        goto fail;
    }
    s = natsConnection_Connect(nc, opts);
    if (s != NATS_OK) {
        s_nats(s, 0, "connect to", o->server);
        if (s == NATS_NO_SERVER)
            rc = PN_EUNREACH;
        goto fail;
    }
    rc = 0;
fail:
    natsOptions_Destroy(opts);
    return rc;
}

/* Delete the lane's stream if it exists and create it empty. */
static int s_stream_reset(pn_run_t *r, pn_lane_t *l)
{
    int rc = PN_EFAIL;
    jsErrCode jerr = 0;
    jsStreamInfo *si = NULL;
    jsConsumerInfo *ci = NULL;
    jsStreamConfig sc;
    jsConsumerConfig cc;
    const char *subjects[1] = { l->subject };
    natsStatus s = js_DeleteStream(r->ajs, l->stream, NULL, &jerr);
    if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
        s_nats(s, jerr, "delete stream", l->stream);
        goto fail;
    }
    if ((s = jsStreamConfig_Init(&sc)) != NATS_OK) {
        s_nats(s, 0, "stream config", NULL);
        goto fail;
    }
    sc.Name = l->stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Retention = js_LimitsPolicy;
    sc.Replicas = 1;
    jerr = 0;
    if ((s = js_AddStream(&si, r->ajs, &sc, NULL, &jerr)) != NATS_OK) {
        s_nats(s, jerr, "create stream", l->stream);
        goto fail;
    }
    l->stream_made = true;
    if ((s = jsConsumerConfig_Init(&cc)) != NATS_OK) {
        s_nats(s, 0, "consumer config", NULL);
        goto fail;
    }
    cc.Durable = PN_DURABLE;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckPolicy = js_AckExplicit;
    cc.MaxAckPending = PN_MAX_ACK_PENDING;
    if ((s = js_AddConsumer(&ci, r->ajs, l->stream, &cc, NULL, &jerr)) != NATS_OK) {
        s_nats(s, jerr, "create durable consumer on", l->stream);
        goto fail;
    }
    rc = 0;
fail:
    jsConsumerInfo_Destroy(ci);
    jsStreamInfo_Destroy(si);
    return rc;
}

static int s_subscribe_core(pn_lane_t *l)
{
    int rc = PN_EFAIL;
    natsStatus s;
    if ((s = natsConnection_SubscribeSync(&l->sub, l->cnc, l->subject)) != NATS_OK
        /* As nats bench does: the library buffers all it reads, so neither
         * it nor the server drops messages for a slow reader. */
        || (s = natsSubscription_SetPendingLimits(l->sub, -1, -1)) != NATS_OK
        /* The server has the subscription once it answers the PING. */
        || (s = natsConnection_Flush(l->cnc)) != NATS_OK) {
        s_nats(s, 0, "subscribe to", l->subject);
        goto fail;
    }
    rc = 0;
fail:
    return rc;
}

static int s_subscribe_js(pn_run_t *r, pn_lane_t *l)
{
    int rc = PN_EFAIL;
    jsErrCode jerr = 0;
    jsOptions jo;
    jsSubOptions so;
    natsStatus s;
    if ((rc = s_stream_reset(r, l)) != 0)
        goto fail;
    rc = PN_EFAIL;
    if ((s = jsOptions_Init(&jo)) != NATS_OK
        || (s = natsConnection_JetStream(&l->cjs, l->cnc, &jo)) != NATS_OK
        || (s = jsSubOptions_Init(&so)) != NATS_OK) {
        s_nats(s, 0, "consumer JetStream context", NULL);
        goto fail;
    }
    so.Stream = l->stream;
    so.Consumer = PN_DURABLE;
    if ((s = js_PullSubscribe(&l->sub, l->cjs, l->subject, PN_DURABLE, NULL, &so, &jerr))
        != NATS_OK) {
        s_nats(s, jerr, "pull subscribe to", l->stream);
        goto fail;
    }
    rc = 0;
fail:
    return rc;
}

/* Connect both halves of lane L and subscribe its consumer, so it is ready
 * before anything is published. */
static int s_lane_open(pn_run_t *r, pn_lane_t *l)
{
    int rc = PN_EFAIL;
    if (!(l->seen = peer_seen_new(l->n))) {
        fprintf(stderr, "peer-nats: out of memory\n");
        goto fail;
    }
    if ((rc = s_connect(&r->o, &l->async_errors, &l->cnc)) != 0
        || (rc = s_connect(&r->o, &l->async_errors, &l->pnc)) != 0)
        goto fail;
    rc = r->js ? s_subscribe_js(r, l) : s_subscribe_core(l);
fail:
    return rc;
}

static void s_lane_close(pn_lane_t *l)
{
    natsSubscription_Destroy(l->sub);
    l->sub = NULL;
    jsCtx_Destroy(l->cjs);
    l->cjs = NULL;
    jsCtx_Destroy(l->pjs);
    l->pjs = NULL;
    natsConnection_Destroy(l->cnc);
    l->cnc = NULL;
    natsConnection_Destroy(l->pnc);
    l->pnc = NULL;
    peer_seen_destroy(&l->seen);
}

static int s_produce_core(pn_lane_t *l)
{
    int rc = PN_EFAIL;
    size_t size = l->o->size;
    uint8_t *buf = malloc(size);
    natsStatus s;
    if (!buf) {
        fprintf(stderr, "peer-nats: out of memory\n");
        goto fail;
    }
    l->first_pub_ns = peer_now_ns();
    for (uint64_t i = 0; i < l->n; i++) {
        peer_stamp_w0(buf, size, l->base + i);
        if ((s = natsConnection_Publish(l->pnc, l->subject, buf, (int) size)) != NATS_OK) {
            s_nats(s, 0, "publish to", l->subject);
            goto fail;
        }
        l->published++;
    }
    if ((s = natsConnection_FlushTimeout(l->pnc, PN_FLUSH_MS)) != NATS_OK) {
        s_nats(s, 0, "flush", l->subject);
        goto fail;
    }
    rc = 0;
fail:
    free(buf);
    return rc;
}

/* Runs on the library's reply thread, once per async publish. */
static void s_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    pn_lane_t *l = closure;
    (void) js;
    if (pa)
        atomic_fetch_add(&l->acked, 1);
    else if (atomic_fetch_add(&l->nacked, 1) == 0 && pae)
        fprintf(stderr, "peer-nats: publish to %s not stored: %s%s%s\n", l->stream,
                natsStatus_GetText(pae->Err), pae->ErrText ? ": " : "",
                pae->ErrText ? pae->ErrText : "");
    natsMsg_Destroy(msg);
}

/* Publish one message once the window has room. js_PublishAsync waits up
 * to PN_STALL_MS for room and sends nothing when it times out; waiting in
 * short steps notices a dead connection. */
static natsStatus s_publish_js(pn_lane_t *l, const uint8_t *buf, size_t size)
{
    uint64_t deadline = peer_now_ns() + PN_STALL_NS;
    natsStatus s;
    while ((s = js_PublishAsync(l->pjs, l->subject, buf, (int) size, NULL)) == NATS_TIMEOUT
           && !natsConnection_IsClosed(l->pnc) && peer_now_ns() < deadline)
        ;
    return s;
}

/* Wait for the acks of all publishes in flight, in the same short steps. */
static natsStatus s_publish_js_complete(pn_lane_t *l)
{
    uint64_t deadline = peer_now_ns() + PN_STALL_NS;
    jsPubOptions po;
    natsStatus s = jsPubOptions_Init(&po);
    po.MaxWait = PN_STALL_MS;
    while (s == NATS_OK
           && (s = js_PublishAsyncComplete(l->pjs, &po)) == NATS_TIMEOUT
           && !natsConnection_IsClosed(l->pnc) && peer_now_ns() < deadline)
        s = NATS_OK;
    return s;
}

static int s_produce_js(pn_lane_t *l)
{
    int rc = PN_EFAIL;
    size_t size = l->o->size;
    bool paced = l->o->workload == PEER_W1_LAT;
    uint8_t *buf = malloc(size);
    jsOptions jo;
    natsStatus s;
    if (!buf) {
        fprintf(stderr, "peer-nats: out of memory\n");
        goto fail;
    }
    if ((s = jsOptions_Init(&jo)) != NATS_OK) {
        s_nats(s, 0, "JetStream options", NULL);
        goto fail;
    }
    jo.PublishAsync.MaxPending = l->o->window;
    jo.PublishAsync.StallWait = PN_STALL_MS;
    jo.PublishAsync.AckHandler = s_pub_ack;
    jo.PublishAsync.AckHandlerClosure = l;
    if ((s = natsConnection_JetStream(&l->pjs, l->pnc, &jo)) != NATS_OK) {
        s_nats(s, 0, "producer JetStream context", NULL);
        goto fail;
    }
    l->first_pub_ns = peer_now_ns();
    for (uint64_t i = 0; i < l->n; i++) {
        uint64_t due = paced ? peer_due_ns(l->first_pub_ns, i, l->o->rate) : 0;
        rc = PN_EFAIL;
        if (paced && peer_sleep_until(due) != 0)
            goto fail;
        if (paced)
            peer_stamp_at(buf, size, l->base + i, due);
        else
            peer_stamp(buf, size, l->base + i);
        if ((s = s_publish_js(l, buf, size)) != NATS_OK) {
            s_nats(s, 0, "publish to", l->stream);
            goto fail;
        }
        l->published++;
    }
    if ((s = s_publish_js_complete(l)) != NATS_OK) {
        s_nats(s, 0, "wait for publish acks on", l->stream);
        goto fail;
    }
    rc = 0;
fail:
    free(buf);
    return rc;
}

static void *s_producer(void *arg)
{
    pn_lane_t *l = arg;
    l->prod_rc = l->o->workload == PEER_W0 ? s_produce_core(l) : s_produce_js(l);
    return NULL;
}

/* Check MSG's stamp against the lane and record it, received at *NOW; with
 * *NOW 0 (W0) the clock is read only for a stamped message or the last
 * (peer_rx_ns), into *NOW. True if it is new. */
static bool s_record(pn_lane_t *l, natsMsg *msg, uint64_t *now)
{
    uint64_t seq, sent;
    if (!peer_unstamp((const uint8_t *) natsMsg_GetData(msg),
                      (size_t) natsMsg_GetDataLength(msg), &seq, &sent)
        || seq < l->base || seq - l->base >= l->n) {
        l->foreign++;
        return false;
    }
    if (!*now)
        *now = peer_rx_ns(sent, peer_seen_unique(l->seen) + 1 >= l->n);
    if (*now) {
        if (l->lat)
            peer_lat_add(l->lat, sent, *now);
        l->last_rx_ns = *now;
    }
    return peer_seen_add(l->seen, seq - l->base);
}

/* True when the producers are done and nothing came for PN_IDLE_NS. */
static bool s_idle(pn_lane_t *l, uint64_t *idle_since)
{
    uint64_t now = peer_now_ns();
    if (!atomic_load(l->producers_done)) {
        *idle_since = now;
        return false;
    }
    return now - *idle_since > PN_IDLE_NS;
}

static int s_consume_core(pn_lane_t *l)
{
    int rc = PN_EFAIL;
    uint64_t idle_since = peer_now_ns();
    int64_t dropped = 0;
    natsMsg *msg = NULL;
    natsStatus s;
    while (peer_seen_unique(l->seen) < l->n) {
        s = natsSubscription_NextMsg(&msg, l->sub, PN_POLL_MS);
        if (s == NATS_TIMEOUT) {
            if (s_idle(l, &idle_since))
                break;
            continue;
        }
        if (s != NATS_OK) {
            s_nats(s, 0, "receive from", l->subject);
            goto fail;
        }
        uint64_t now = 0;
        s_record(l, msg, &now);
        if (now)
            idle_since = now;
        natsMsg_Destroy(msg);
        msg = NULL;
    }
    if ((s = natsSubscription_GetDropped(l->sub, &dropped)) != NATS_OK) {
        s_nats(s, 0, "dropped count of", l->subject);
        goto fail;
    }
    if (dropped)
        fprintf(stderr, "peer-nats: the client dropped %" PRId64 " messages (slow consumer)\n",
                dropped);
    rc = 0;
fail:
    natsMsg_Destroy(msg);
    return rc;
}

/* Fetch what is stored, up to a batch, without waiting; if nothing is, wait
 * for the first message alone, so a paced run is not held back to fill a
 * batch (natsSubscription_Fetch would wait for a full one). Leaves LIST
 * empty after a quiet long poll. */
static int s_fetch(pn_lane_t *l, natsMsgList *list)
{
    int rc = PN_EFAIL;
    jsFetchRequest req;
    natsStatus s = jsFetchRequest_Init(&req);
    if (s == NATS_OK) {
        req.Batch = PN_FETCH_BATCH;
        req.NoWait = true;
        req.Expires = PN_NOWAIT_EXPIRES_NS;
        s = natsSubscription_FetchRequest(list, l->sub, &req);
    }
    if (s == NATS_NOT_FOUND || s == NATS_TIMEOUT) {
        s = jsFetchRequest_Init(&req);
        if (s == NATS_OK) {
            req.Batch = 1;
            req.Expires = PN_WAIT_EXPIRES_NS;
            s = natsSubscription_FetchRequest(list, l->sub, &req);
        }
        if (s == NATS_NOT_FOUND || s == NATS_TIMEOUT)
            s = NATS_OK;
    }
    if (s_nats(s, 0, "fetch from", l->stream))
        goto fail;
    rc = 0;
fail:
    return rc;
}

static int s_consume_js(pn_lane_t *l)
{
    int rc = PN_EFAIL;
    uint64_t idle_since = peer_now_ns();
    natsMsgList list = { 0 };
    jsErrCode jerr = 0;
    natsStatus s;
    while (peer_seen_unique(l->seen) < l->n) {
        if ((rc = s_fetch(l, &list)) != 0)
            goto fail;
        rc = PN_EFAIL;
        if (list.Count == 0 && s_idle(l, &idle_since))
            break;
        for (int i = 0; i < list.Count; i++) {
            natsMsg *msg = list.Msgs[i];
            idle_since = peer_now_ns();
            if (s_record(l, msg, &idle_since) && peer_seen_unique(l->seen) == l->n) {
                /* The last one: wait until the server has taken the ack
                 * (and, on this connection, every ack before it). */
                s = natsMsg_AckSync(msg, NULL, &jerr);
                l->last_rx_ns = peer_now_ns();
            } else {
                s = natsMsg_Ack(msg, NULL);
            }
            if (s != NATS_OK) {
                s_nats(s, jerr, "ack on", l->stream);
                goto fail;
            }
        }
        natsMsgList_Destroy(&list);
    }
    rc = 0;
fail:
    natsMsgList_Destroy(&list);
    return rc;
}

static void *s_consumer(void *arg)
{
    pn_lane_t *l = arg;
    l->cons_rc = l->o->workload == PEER_W0 ? s_consume_core(l) : s_consume_js(l);
    return NULL;
}

/* Connect, reset the streams, ready every consumer. */
static int s_run_open(pn_run_t *r)
{
    int rc = PN_EFAIL;
    jsErrCode jerr = 0;
    jsAccountInfo *ai = NULL;
    jsOptions jo;
    natsStatus s;
    unsigned k = r->o.streams;
    r->js = r->o.workload != PEER_W0;
    atomic_init(&r->producers_done, false);
    if (!(r->lanes = calloc(k, sizeof *r->lanes))) {
        fprintf(stderr, "peer-nats: out of memory\n");
        goto fail;
    }
    r->nlanes = k;
    if (r->o.workload == PEER_W1_LAT && !(r->lat = peer_lat_new(2 * r->o.count))) {
        fprintf(stderr, "peer-nats: out of memory\n");
        goto fail;
    }
    for (uint64_t i = 0, base = 0; i < k; i++) {
        pn_lane_t *l = &r->lanes[i];
        l->o = &r->o;
        l->index = (unsigned) i;
        l->n = r->o.count / k + (i < r->o.count % k);
        l->base = base;
        base += l->n;
        /* Core subjects apart from the streams' own: a stream left by a
         * killed run would otherwise store W0's messages too. */
        snprintf(l->subject, sizeof l->subject, "slbench.%s.%u", r->js ? "js" : "core",
                 l->index);
        snprintf(l->stream, sizeof l->stream, "SLBENCH_%u", l->index);
        l->producers_done = &r->producers_done;
        l->lat = r->lat;
        atomic_init(&l->async_errors, 0);
        atomic_init(&l->acked, 0);
        atomic_init(&l->nacked, 0);
    }
    if ((rc = s_connect(&r->o, &r->lanes[0].async_errors, &r->anc)) != 0)
        goto fail;
    rc = PN_EFAIL;
    if (r->js) {
        if ((s = jsOptions_Init(&jo)) != NATS_OK
            || (s = natsConnection_JetStream(&r->ajs, r->anc, &jo)) != NATS_OK) {
            s_nats(s, 0, "admin JetStream context", NULL);
            goto fail;
        }
        s = js_GetAccountInfo(&ai, r->ajs, NULL, &jerr);
        if (s != NATS_OK) {
            s_nats(s, jerr, "JetStream account info from", r->o.server);
            if (s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT) {
                fprintf(stderr, "peer-nats: is JetStream enabled (nats-server -js)?\n");
                rc = PN_EUNREACH;
            }
            goto fail;
        }
    }
    for (unsigned i = 0; i < k; i++)
        if ((rc = s_lane_open(r, &r->lanes[i])) != 0)
            goto fail;
    rc = 0;
fail:
    jsAccountInfo_Destroy(ai);
    return rc;
}

/* Start the consumers, then the producers; wait for all of them. */
static int s_run_go(pn_run_t *r)
{
    int rc = PN_EFAIL, err;
    unsigned k = r->nlanes, cons = 0, prod = 0;
    pthread_t *threads = calloc(2 * (size_t) k, sizeof *threads);
    if (!threads) {
        fprintf(stderr, "peer-nats: out of memory\n");
        goto fail;
    }
    for (; cons < k; cons++)
        if ((err = pthread_create(&threads[cons], NULL, s_consumer, &r->lanes[cons])) != 0) {
            fprintf(stderr, "peer-nats: pthread_create: %s\n", strerror(err));
            goto fail;
        }
    for (; prod < k; prod++)
        if ((err = pthread_create(&threads[k + prod], NULL, s_producer, &r->lanes[prod])) != 0) {
            fprintf(stderr, "peer-nats: pthread_create: %s\n", strerror(err));
            goto fail;
        }
    rc = 0;
fail:
    /* On failure the threads already started still run to their end. */
    for (unsigned i = 0; i < prod; i++)
        if ((err = pthread_join(threads[k + i], NULL)) != 0) {
            fprintf(stderr, "peer-nats: pthread_join: %s\n", strerror(err));
            rc = PN_EFAIL;
        }
    atomic_store(&r->producers_done, true);
    for (unsigned i = 0; i < cons; i++)
        if ((err = pthread_join(threads[i], NULL)) != 0) {
            fprintf(stderr, "peer-nats: pthread_join: %s\n", strerror(err));
            rc = PN_EFAIL;
        }
    free(threads);
    return rc;
}

/* Sum the lanes, print the RESULT line; PN_EFAIL when the run lost or
 * duplicated anything or a thread failed. */
static int s_run_report(pn_run_t *r)
{
    int rc = 0;
    uint64_t unique = 0, dups = 0, lost = 0, start = UINT64_MAX, end = 0;
    double rate = 0;
    for (unsigned i = 0; i < r->nlanes; i++) {
        pn_lane_t *l = &r->lanes[i];
        uint64_t u = peer_seen_unique(l->seen);
        unique += u;
        lost += l->n - u;
        dups += peer_seen_dups(l->seen) + l->foreign;
        if (l->published && l->first_pub_ns < start)
            start = l->first_pub_ns;
        if (l->last_rx_ns > end)
            end = l->last_rx_ns;
        if (r->js && (atomic_load(&l->acked) != l->n || atomic_load(&l->nacked)))
            fprintf(stderr, "peer-nats: %s: %" PRIu64 " of %" PRIu64 " publishes acked as "
                    "stored, %" PRIu64 " refused\n", l->stream, (uint64_t) atomic_load(&l->acked),
                    l->n, (uint64_t) atomic_load(&l->nacked));
        if (l->prod_rc || l->cons_rc || atomic_load(&l->async_errors))
            rc = PN_EFAIL;
    }
    if (unique && end > start)
        rate = (double) unique / ((double) (end - start) / 1e9);
    peer_result(&r->o, "nats", rate, r->lat, lost, dups,
                r->js ? PN_DURABILITY_JS : PN_DURABILITY_CORE);
    if (lost || dups) {
        fprintf(stderr, "peer-nats: %s: %" PRIu64 " lost, %" PRIu64 " duplicated or foreign\n",
                r->o.name, lost, dups);
        rc = PN_EFAIL;
    }
    return rc;
}

/* Close everything; the streams go too, so runs leave no data behind. */
static void s_run_close(pn_run_t *r)
{
    jsErrCode jerr = 0;
    natsStatus s;
    for (unsigned i = 0; i < r->nlanes; i++)
        s_lane_close(&r->lanes[i]);
    for (unsigned i = 0; i < r->nlanes; i++) {
        if (!r->lanes[i].stream_made)
            continue;
        s = js_DeleteStream(r->ajs, r->lanes[i].stream, NULL, &jerr);
        if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
            s_nats(s, jerr, "delete stream", r->lanes[i].stream);
    }
    jsCtx_Destroy(r->ajs);
    r->ajs = NULL;
    natsConnection_Destroy(r->anc);
    r->anc = NULL;
    free(r->lanes);
    r->lanes = NULL;
    peer_lat_destroy(&r->lat);
}

int main(int argc, char **argv)
{
    pn_run_t run;
    int rc;
    memset(&run, 0, sizeof run);
    rc = peer_opts_parse(argc, argv, "peer-nats", PN_DEFAULT_SERVER, &run.o);
    if (rc)
        return rc > 0 ? 0 : 64;
    if ((rc = s_run_open(&run)) == 0 && (rc = s_run_go(&run)) == 0)
        rc = s_run_report(&run);
    s_run_close(&run);
    /* Let the library's threads end, so leak checkers see a clean exit. */
    if (nats_CloseAndWait(5000) != NATS_OK)
        fprintf(stderr, "peer-nats: the NATS library did not shut down in 5 s\n");
    return rc == 0 ? 0 : rc == PN_EUNREACH ? 2 : 1;
}
