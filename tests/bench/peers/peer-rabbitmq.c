/*  peer-rabbitmq - RabbitMQ driver of tests/bench/compare (rabbitmq-c, AMQP
 *  0-9-1). Per stream a producer and a consumer thread, each owning its own
 *  connection; main declares the queues (deleted first) before the threads
 *  start and prints the RESULT line after joining them; only the latency
 *  record is shared (locked). Does not start the server (rabbitmq.sh does).
 *  W0: transient, exclusive queue, auto-ack. Others: persistent, durable
 *  queue, confirms (at most --window unconfirmed), batched multiple acks.
 *  W4 (issue 18, routing): as W1, but the JSON orders go to a topic exchange
 *  with 1,000 bindings, 2 of which take each order into durable queues (the
 *  consumed one and an audit queue); RabbitMQ cannot map or drop by the
 *  body, so the consumer gets every order unchanged.
 *  Env: PEER_RABBITMQ_QUEUE=classic|quorum (durable queue type, default
 *  classic); PEER_RABBITMQ_PREFETCH=N (consumer prefetch, default --window).  */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* rabbitmq-c 0.12 moved its headers to rabbitmq-c/; Debian 12's 0.11
 * installs them at the top of the include path. */
#if defined(__has_include)
#if __has_include(<rabbitmq-c/amqp.h>)
#define S_RMQ_SUBDIR 1
#endif
#endif
#ifdef S_RMQ_SUBDIR
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

#include "peer_common.h"

enum {
    S_EXIT_OK = 0,
    S_EXIT_VERIFY = 1,              /* lost, duplicated, nacked or foreign messages */
    S_EXIT_SETUP = 2,               /* server not reachable, or refused the setup */
    S_EXIT_USAGE = 64,
};

#define S_DRIVER "peer-rabbitmq"
#define S_DEFAULT_SERVER "127.0.0.1:5672"
#define S_CHANNEL 1
#define S_FRAME_MAX 131072
/* No progress for this long ends a run as failed instead of hanging. */
#define S_IDLE_NS (30 * 1000000000ull)
/* W0: once the publisher is done, a silence this long means the rest is
 * not coming (RabbitMQ does not drop transient messages, but a broken run
 * must not hang). */
#define S_W0_DRAIN_NS (2 * 1000000000ull)
/* Consumer wake-up to check the clock when nothing arrives. */
#define S_POLL_US 100000

static const char *const S_DURABILITY_W0 =
    "none: transient msgs, non-durable exclusive queue, no confirms, auto-ack";
/* RabbitMQ confirms a persistent message on a durable classic queue once
 * the queue index / message store has fsync'd it; those fsyncs are batched
 * (a timer of a few hundred ms, or when the queue is idle), and a message
 * the consumer acks before that is confirmed without waiting for any fsync
 * (confirms.html, "When Will Published Messages Be Confirmed"; "Introducing
 * Publisher Confirms": "persisted to disk or consumed on every queue"). */
static const char *const S_DURABILITY_CLASSIC =
    "fsync before confirm unless consumed first: classic durable queue, persistent msgs; confirm after fsync (batched), "
    "or after the consumer's ack if that comes first";
/* Quorum queues write every operation to the Raft WAL and fsync it before
 * the command commits; with one node the quorum is this node. */
static const char *const S_DURABILITY_QUORUM =
    "fsync before confirm: quorum queue (1 node), persistent msgs; confirm after Raft WAL fsync (batched)";

/* W4: the topic exchange, the bindings in all, the orders' routing key. */
#define S_W4_EXCHANGE "sluicebench.w4"
#define S_W4_BINDINGS 1000
#define S_W4_KEY "shop.orders"
static const char *const S_DURABILITY_W4 =
    "fsync before confirm unless consumed first: as W1 (classic durable queues, persistent msgs), "
    "the order stored in 2 queues; a topic exchange with 1,000 bindings routes each order to "
    "the consumed queue and an audit queue. No transformation possible: RabbitMQ cannot map "
    "the order to the canonical one nor drop test orders by a predicate on the body, so the "
    "consumer gets every order unchanged";

typedef enum { S_CLASSIC, S_QUORUM } s_qtype_t;

/* Where the server is: INFO's strings point into URL. */
typedef struct {
    char *url;                          /* owned */
    struct amqp_connection_info info;
} s_server_t;

/* What all streams of one run share. */
typedef struct {
    const peer_opts_t *o;
    bool durable;                       /* W1, W1-lat, W2 */
    bool paced;                         /* W1-lat */
    bool w4;                            /* W4: JSON orders through the exchange */
    s_qtype_t qtype;
    uint16_t prefetch;                  /* durable consumers' basic.qos */
    uint16_t ack_batch;                 /* most deliveries one ack covers */
    peer_lat_t *lat;                    /* every delivery; under lat_lock */
    pthread_mutex_t lat_lock;
    atomic_bool abort;                  /* a thread failed: the others stop */
} s_run_t;

/* One producer/consumer pair on one queue. Before the threads start main
 * owns everything; then PUB and the producer fields belong to the producer
 * thread, SUB and the consumer fields to the consumer thread, until main
 * joins them. */
typedef struct {
    s_run_t *run;
    char queue[64];
    uint64_t count;                     /* messages of this stream */
    amqp_connection_state_t pub, sub;
    pthread_t prod_thread, cons_thread;
    bool prod_started, cons_started;
    /* producer */
    uint8_t *settled;                   /* [count + 1] by publish seq: 0 open, 1 acked, 2 nacked */
    uint64_t published, acked, nacked;
    uint64_t low;                       /* lowest seq not yet settled */
    uint64_t t_first;                   /* ns: first publish */
    int prod_rc;
    atomic_bool producer_done;
    /* consumer */
    peer_seen_t *seen;
    uint64_t foreign;                   /* deliveries that carry no stamp of ours */
    uint64_t t_last;                    /* ns: last delivery handled (acked, and the
                                         * last ack followed by a round trip) */
    int cons_rc;
} s_stream_t;

/* ------------------------------------------------------------ helpers */

/* 0 when REPLY is normal, else -1 after saying what WHAT ran into. */
static int s_reply_check(amqp_rpc_reply_t reply, const char *what)
{
    int rc = -1;

    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        rc = 0;
        break;
    case AMQP_RESPONSE_NONE:
        fprintf(stderr, S_DRIVER ": %s: no reply from the server\n", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        fprintf(stderr, S_DRIVER ": %s: %s\n", what, amqp_error_string2(reply.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = reply.reply.decoded;
            fprintf(stderr, S_DRIVER ": %s: connection closed: %u %.*s\n", what,
                    m->reply_code, (int) m->reply_text.len, (const char *) m->reply_text.bytes);
        } else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = reply.reply.decoded;
            fprintf(stderr, S_DRIVER ": %s: channel closed: %u %.*s\n", what,
                    m->reply_code, (int) m->reply_text.len, (const char *) m->reply_text.bytes);
        } else {
            fprintf(stderr, S_DRIVER ": %s: server method 0x%08x\n", what, reply.reply.id);
        }
        break;
    }
    return rc;
}

/* 0 when STATUS is AMQP_STATUS_OK, else -1 after saying so. */
static int s_status_check(int status, const char *what)
{
    int rc = 0;

    if (status != AMQP_STATUS_OK) {
        fprintf(stderr, S_DRIVER ": %s: %s\n", what, amqp_error_string2(status));
        rc = -1;
    }
    return rc;
}

static struct timeval s_tv_ns(uint64_t ns)
{
    struct timeval tv = { .tv_sec = (time_t) (ns / 1000000000u),
                          .tv_usec = (suseconds_t) (ns % 1000000000u / 1000) };
    return tv;
}

/* Parse --server into *SRV: host[:port] or an amqp:// URL; guest/guest and
 * vhost / unless the URL says otherwise. 0, or -1 said. */
static int s_server_parse(const char *server, s_server_t *srv)
{
    const char *scheme = strstr(server, "://") ? "" : "amqp://";
    size_t n = strlen(scheme) + strlen(server) + 1;
    int rc = -1;

    srv->url = malloc(n);
    if (!srv->url) {
        fprintf(stderr, S_DRIVER ": out of memory\n");
        goto fail;
    }
    snprintf(srv->url, n, "%s%s", scheme, server);
    amqp_default_connection_info(&srv->info);
    if (amqp_parse_url(srv->url, &srv->info) != AMQP_STATUS_OK) {
        fprintf(stderr, S_DRIVER ": --server '%s' is not host[:port] or an amqp:// URL\n",
                server);
        goto fail;
    }
    if (srv->info.ssl) {
        fprintf(stderr, S_DRIVER ": amqps:// is not supported\n");
        goto fail;
    }
    rc = 0;
fail:
    return rc;
}

/* Connect, log in and open channel 1. 0 and *OUT (caller owns), or -1. */
static int s_connect(const s_server_t *srv, amqp_connection_state_t *out)
{
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = conn ? amqp_tcp_socket_new(conn) : NULL;
    char what[300];
    int rc = -1;

    if (!sock) {
        fprintf(stderr, S_DRIVER ": out of memory\n");
        goto fail;
    }
    snprintf(what, sizeof what, "connect to %s:%d", srv->info.host, srv->info.port);
    if (s_status_check(amqp_socket_open(sock, srv->info.host, srv->info.port), what))
        goto fail;
    if (s_reply_check(amqp_login(conn, srv->info.vhost, 0, S_FRAME_MAX, 0,
                                 AMQP_SASL_METHOD_PLAIN, srv->info.user,
                                 srv->info.password), "login"))
        goto fail;
    amqp_channel_open(conn, S_CHANNEL);
    if (s_reply_check(amqp_get_rpc_reply(conn), "channel.open"))
        goto fail;
    *out = conn;
    conn = NULL;
    rc = 0;
fail:
    if (conn)
        amqp_destroy_connection(conn);
    return rc;
}

/* Close (politely when it still works) and free *CONN; NULL-safe. A
 * failure here is only reported: the run is over. */
static void s_disconnect(amqp_connection_state_t *conn, bool polite)
{
    if (!*conn)
        return;
    if (polite)
        s_reply_check(amqp_connection_close(*conn, AMQP_REPLY_SUCCESS), "connection.close");
    s_status_check(amqp_destroy_connection(*conn), "close socket");
    *conn = NULL;
}

/* ------------------------------------------------------------ producer */

/* Mark publish seqs up to TAG (only TAG unless MULTIPLE) as KIND (1 acked,
 * 2 nacked). 0, or -1 for a tag never published. */
static int s_settle(s_stream_t *s, uint64_t tag, bool multiple, uint8_t kind)
{
    uint64_t t;
    int rc = -1;

    if (tag == 0 || tag > s->published) {
        fprintf(stderr, S_DRIVER ": %s: confirm for unknown seq %" PRIu64 "\n", s->queue, tag);
        goto fail;
    }
    for (t = multiple ? s->low : tag; t <= tag; t++) {
        if (s->settled[t])
            continue;
        s->settled[t] = kind;
        if (kind == 1)
            s->acked++;
        else
            s->nacked++;
    }
    while (s->low <= s->published && s->settled[s->low])
        s->low++;
    rc = 0;
fail:
    return rc;
}

/* Wait up to TV (NULL: for ever) for a frame on the producer's connection,
 * then take every frame already buffered: confirms settle publishes, a
 * close fails. 0 (also on timeout), or -1. */
static int s_confirms_read(s_stream_t *s, const struct timeval *tv)
{
    static const struct timeval zero = { 0, 0 };
    amqp_frame_t f;
    int rc = 0, st;

    for (;;) {
        st = amqp_simple_wait_frame_noblock(s->pub, &f, tv);
        if (st == AMQP_STATUS_TIMEOUT)
            break;
        if ((rc = s_status_check(st, "read confirms")) != 0)
            goto fail;
        if (f.frame_type == AMQP_FRAME_METHOD) {
            switch (f.payload.method.id) {
            case AMQP_BASIC_ACK_METHOD: {
                const amqp_basic_ack_t *m = f.payload.method.decoded;
                rc = s_settle(s, m->delivery_tag, m->multiple, 1);
                break;
            }
            case AMQP_BASIC_NACK_METHOD: {
                const amqp_basic_nack_t *m = f.payload.method.decoded;
                rc = s_settle(s, m->delivery_tag, m->multiple, 2);
                break;
            }
            case AMQP_CHANNEL_CLOSE_METHOD:
            case AMQP_CONNECTION_CLOSE_METHOD: {
                amqp_rpc_reply_t r = { .reply_type = AMQP_RESPONSE_SERVER_EXCEPTION,
                                       .reply = f.payload.method };
                s_reply_check(r, "producer");
                rc = -1;
                break;
            }
            default:
                break;
            }
            if (rc)
                goto fail;
        }
        if (!amqp_frames_enqueued(s->pub) && !amqp_data_in_buffer(s->pub))
            break;
        tv = &zero;
    }
    amqp_maybe_release_buffers(s->pub);
fail:
    return rc;
}

/* Block until fewer than LIMIT publishes are unsettled; fail after
 * S_IDLE_NS without a confirm. 0, or -1. */
static int s_confirms_wait(s_stream_t *s, uint64_t limit)
{
    struct timeval tv = s_tv_ns(S_POLL_US * 1000ull);
    uint64_t done = s->acked + s->nacked, since = peer_now_ns();
    int rc = 0;

    while (s->published - s->acked - s->nacked > limit - 1 && !rc) {
        if ((rc = s_confirms_read(s, &tv)) != 0)
            break;
        if (s->acked + s->nacked != done) {
            done = s->acked + s->nacked;
            since = peer_now_ns();
        } else if (peer_now_ns() - since > S_IDLE_NS) {
            fprintf(stderr, S_DRIVER ": %s: no confirm for 30 s\n", s->queue);
            rc = -1;
        } else if (atomic_load(&s->run->abort)) {
            rc = -1;
        }
    }
    return rc;
}

static int s_produce(s_stream_t *s)
{
    const s_run_t *run = s->run;
    const peer_opts_t *o = run->o;
    static const struct timeval zero = { 0, 0 };
    amqp_basic_properties_t props = {
        ._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
        .delivery_mode = run->durable ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT,
    };
    uint8_t *buf = malloc(run->w4 ? PEER_W4_ORDER_MAX : o->size);
    amqp_bytes_t exchange = run->w4 ? amqp_cstring_bytes(S_W4_EXCHANGE) : amqp_empty_bytes;
    amqp_bytes_t key = amqp_cstring_bytes(run->w4 ? S_W4_KEY : s->queue);
    size_t len = o->size;
    uint64_t i, due = 0;
    int rc = -1;

    if (run->w4) {
        props._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props.content_type = amqp_cstring_bytes("application/json");
    }
    if (!buf) {
        fprintf(stderr, S_DRIVER ": out of memory\n");
        goto fail;
    }
    s->t_first = peer_now_ns();
    for (i = 0; i < s->count; i++) {
        if (atomic_load(&s->run->abort))
            goto fail;
        if (run->paced) {
            /* Take confirms that came in, then sleep to the slot. */
            if (s_confirms_read(s, &zero))
                goto fail;
            due = peer_due_ns(s->t_first, i, o->rate);
            if (peer_sleep_until(due) != 0)
                goto fail;
        }
        if (run->durable && s_confirms_wait(s, o->window))
            goto fail;
        if (run->w4)
            len = peer_w4_order((char *) buf, i, peer_now_ns());
        else if (run->paced)
            peer_stamp_at(buf, o->size, i, due);    /* the slot (peer_common.h) */
        else if (!run->durable)
            peer_stamp_w0(buf, o->size, i);
        else
            peer_stamp(buf, o->size, i);
        if (s_status_check(amqp_basic_publish(s->pub, S_CHANNEL, exchange, key, 0, 0, &props,
                                              (amqp_bytes_t) { .len = len, .bytes = buf }),
                           "basic.publish"))
            goto fail;
        s->published++;
    }
    if (run->durable && s_confirms_wait(s, 1))
        goto fail;
    rc = 0;
fail:
    free(buf);
    return rc;
}

static void *s_producer(void *arg)
{
    s_stream_t *s = arg;

    s->prod_rc = s_produce(s);
    if (s->prod_rc)
        atomic_store(&s->run->abort, true);
    atomic_store(&s->producer_done, true);
    return NULL;
}

/* ------------------------------------------------------------ consumer */

/* Record one delivery at NOW: seen-set and latency. */
static void s_record(s_stream_t *s, const amqp_bytes_t *body, uint64_t now)
{
    uint64_t seq, sent;
    int e;

    bool ok = s->run->w4 ? peer_w4_parse(body->bytes, body->len, &seq, &sent)
                         : peer_unstamp(body->bytes, body->len, &seq, &sent);

    if (!ok || seq >= s->count) {
        s->foreign++;
    } else if (peer_seen_add(s->seen, seq)) {
        /* A default mutex fails only when misused: asserts. */
        e = pthread_mutex_lock(&s->run->lat_lock);
        assert(e == 0);
        peer_lat_add(s->run->lat, sent, now);
        e = pthread_mutex_unlock(&s->run->lat_lock);
        assert(e == 0);
        (void) e;
    }
}

/* A frame other than a delivery is next: read it. 0 for a harmless one,
 * -1 for a close or a broken connection. */
static int s_consume_other(s_stream_t *s)
{
    amqp_frame_t f;
    int rc = -1;

    if (s_status_check(amqp_simple_wait_frame(s->sub, &f), "consumer read"))
        goto fail;
    if (f.frame_type == AMQP_FRAME_METHOD &&
        (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
         f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
        amqp_rpc_reply_t r = { .reply_type = AMQP_RESPONSE_SERVER_EXCEPTION,
                               .reply = f.payload.method };
        s_reply_check(r, "consumer");
        goto fail;
    }
    rc = 0;
fail:
    return rc;
}

static int s_consume(s_stream_t *s)
{
    s_run_t *run = s->run;
    struct timeval tv = s_tv_ns(S_POLL_US * 1000ull);
    amqp_envelope_t env;
    amqp_rpc_reply_t r;
    uint64_t now, last_msg = peer_now_ns(), last_tag = 0;
    unsigned unacked = 0;
    bool done;
    int rc = -1;

    while (peer_seen_unique(s->seen) < s->count) {
        amqp_maybe_release_buffers(s->sub);
        r = amqp_consume_message(s->sub, &env, &tv, 0);
        now = peer_now_ns();
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT) {
            if (atomic_load(&run->abort))
                goto fail;
            if (!run->durable && atomic_load(&s->producer_done) &&
                now - last_msg > S_W0_DRAIN_NS)
                break;
            if (now - last_msg > S_IDLE_NS) {
                fprintf(stderr, S_DRIVER ": %s: no message for 30 s\n", s->queue);
                break;
            }
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            if (s_consume_other(s))
                goto fail;
            continue;
        }
        if (s_reply_check(r, "basic.consume"))
            goto fail;
        last_msg = now;
        s_record(s, &env.message.body, now);
        last_tag = env.delivery_tag;
        amqp_destroy_envelope(&env);
        done = peer_seen_unique(s->seen) == s->count;
        /* One ack with multiple=true per batch ("Manual acknowledgements
         * can be batched to reduce network traffic", confirms.html), and
         * always before we could block (nothing buffered), so the
         * prefetch never runs dry. */
        if (run->durable && (++unacked >= run->ack_batch || done ||
                             (!amqp_frames_enqueued(s->sub) && !amqp_data_in_buffer(s->sub)))) {
            if (s_status_check(amqp_basic_ack(s->sub, S_CHANNEL, last_tag, 1), "basic.ack"))
                goto fail;
            unacked = 0;
        }
        if (done && run->durable) {
            /* A round trip after the last ack: basic.qos-ok comes back
             * once the channel has taken every ack before it. */
            amqp_basic_qos(s->sub, S_CHANNEL, 0, run->prefetch, 0);
            if (s_reply_check(amqp_get_rpc_reply(s->sub), "basic.qos"))
                goto fail;
        }
        s->t_last = peer_now_ns();
    }
    rc = 0;
fail:
    return rc;
}

static void *s_consumer(void *arg)
{
    s_stream_t *s = arg;

    s->cons_rc = s_consume(s);
    if (s->cons_rc)
        atomic_store(&s->run->abort, true);
    return NULL;
}

/* ------------------------------------------------------------ setup */

/* W4: the topic exchange and S's queue bound to S_W4_KEY, a durable audit
 * queue bound to it too, and S_W4_BINDINGS - 2 filler bindings (patterns
 * that never match S_W4_KEY) into a durable filler queue; queues deleted
 * first. The audit and filler queues are not consumed. 0, or -1. */
static int s_w4_declare(s_stream_t *s)
{
    amqp_bytes_t ex = amqp_cstring_bytes(S_W4_EXCHANGE), key = amqp_cstring_bytes(S_W4_KEY);
    char audit[96], filler[96], pattern[64];
    int i;

    snprintf(audit, sizeof audit, "%s.audit", s->queue);
    snprintf(filler, sizeof filler, "%s.filler", s->queue);
    amqp_exchange_declare(s->sub, S_CHANNEL, ex, amqp_cstring_bytes("topic"), 0, 1, 0, 0,
                          amqp_empty_table);
    if (s_reply_check(amqp_get_rpc_reply(s->sub), "exchange.declare"))
        return -1;
    for (i = 0; i < 2; i++) {
        amqp_bytes_t q = amqp_cstring_bytes(i ? filler : audit);
        amqp_queue_delete(s->sub, S_CHANNEL, q, 0, 0);
        if (s_reply_check(amqp_get_rpc_reply(s->sub), "queue.delete"))
            return -1;
        amqp_queue_declare(s->sub, S_CHANNEL, q, 0, 1, 0, 0, amqp_empty_table);
        if (s_reply_check(amqp_get_rpc_reply(s->sub), "queue.declare"))
            return -1;
    }
    amqp_queue_bind(s->sub, S_CHANNEL, amqp_cstring_bytes(s->queue), ex, key, amqp_empty_table);
    amqp_queue_bind(s->sub, S_CHANNEL, amqp_cstring_bytes(audit), ex, key, amqp_empty_table);
    for (i = 0; i < S_W4_BINDINGS - 2; i++) {
        /* The shapes of sluice-bench's filler routes (bench_w4.c). */
        switch (i % 5) {
        case 0: snprintf(pattern, sizeof pattern, "shop.orders.v%d", i); break;
        case 1: snprintf(pattern, sizeof pattern, "tenant%d.orders", i); break;
        case 2: snprintf(pattern, sizeof pattern, "shop.*.r%d", i); break;
        case 3: snprintf(pattern, sizeof pattern, "region%d.#", i); break;
        default: snprintf(pattern, sizeof pattern, "shop.returns%d", i); break;
        }
        amqp_queue_bind(s->sub, S_CHANNEL, amqp_cstring_bytes(filler), ex,
                        amqp_cstring_bytes(pattern), amqp_empty_table);
    }
    return s_reply_check(amqp_get_rpc_reply(s->sub), "queue.bind");
}

/* Open both connections of S and declare its queue fresh (delete first),
 * consumer subscribed, producer in confirm mode. 0, or -1. */
static int s_stream_open(s_stream_t *s, const s_server_t *srv)
{
    const s_run_t *run = s->run;
    amqp_table_entry_t qtype = {
        .key = amqp_cstring_bytes("x-queue-type"),
        .value = { .kind = AMQP_FIELD_KIND_UTF8,
                   .value.bytes = amqp_cstring_bytes("quorum") },
    };
    amqp_table_t args = amqp_empty_table;
    amqp_bytes_t q = amqp_cstring_bytes(s->queue);
    int rc = -1;

    if (run->durable && run->qtype == S_QUORUM)
        args = (amqp_table_t) { .num_entries = 1, .entries = &qtype };
    if (s_connect(srv, &s->sub) || s_connect(srv, &s->pub))
        goto fail;
    amqp_queue_delete(s->sub, S_CHANNEL, q, 0, 0);
    if (s_reply_check(amqp_get_rpc_reply(s->sub), "queue.delete"))
        goto fail;
    /* W0: non-durable, exclusive to the consumer's connection, gone with
     * it. Durable runs: durable, shared, deleted by us at the end. */
    amqp_queue_declare(s->sub, S_CHANNEL, q, 0, run->durable, !run->durable, !run->durable,
                       args);
    if (s_reply_check(amqp_get_rpc_reply(s->sub), "queue.declare"))
        goto fail;
    if (run->w4 && s_w4_declare(s))
        goto fail;
    /* W0 consumes with no-ack, where RabbitMQ ignores basic.qos (a
     * message counts as acked when sent): no prefetch to set. */
    if (run->durable) {
        amqp_basic_qos(s->sub, S_CHANNEL, 0, run->prefetch, 0);
        if (s_reply_check(amqp_get_rpc_reply(s->sub), "basic.qos"))
            goto fail;
    }
    amqp_basic_consume(s->sub, S_CHANNEL, q, amqp_empty_bytes, 0, !run->durable, 0,
                       amqp_empty_table);
    if (s_reply_check(amqp_get_rpc_reply(s->sub), "basic.consume"))
        goto fail;
    if (run->durable) {
        amqp_confirm_select(s->pub, S_CHANNEL);
        if (s_reply_check(amqp_get_rpc_reply(s->pub), "confirm.select"))
            goto fail;
    }
    rc = 0;
fail:
    return rc;
}

/* Delete the durable queue (best effort) and close both connections. */
static void s_stream_close(s_stream_t *s)
{
    bool sub_ok = s->sub && !s->cons_rc, pub_ok = s->pub && !s->prod_rc;

    if (sub_ok && s->run->durable) {
        amqp_queue_delete(s->sub, S_CHANNEL, amqp_cstring_bytes(s->queue), 0, 0);
        sub_ok = !s_reply_check(amqp_get_rpc_reply(s->sub), "queue.delete (cleanup)");
    }
    if (sub_ok && s->run->w4) {
        char q[96];
        for (int i = 0; i < 2 && sub_ok; i++) {
            snprintf(q, sizeof q, "%s.%s", s->queue, i ? "filler" : "audit");
            amqp_queue_delete(s->sub, S_CHANNEL, amqp_cstring_bytes(q), 0, 0);
            sub_ok = !s_reply_check(amqp_get_rpc_reply(s->sub), "queue.delete (cleanup)");
        }
    }
    s_disconnect(&s->sub, sub_ok);
    s_disconnect(&s->pub, pub_ok);
}

/* PEER_RABBITMQ_QUEUE and PEER_RABBITMQ_PREFETCH into RUN. 0, or -1. */
static int s_env_parse(s_run_t *run)
{
    const char *qt = getenv("PEER_RABBITMQ_QUEUE"), *pf = getenv("PEER_RABBITMQ_PREFETCH");
    unsigned long prefetch = run->o->window;
    char *end;
    int rc = -1;

    run->qtype = S_CLASSIC;
    if (qt && *qt) {
        if (!strcmp(qt, "quorum"))
            run->qtype = S_QUORUM;
        else if (strcmp(qt, "classic")) {
            fprintf(stderr, S_DRIVER ": PEER_RABBITMQ_QUEUE is classic or quorum\n");
            goto fail;
        }
    }
    if (pf && *pf) {
        errno = 0;
        prefetch = strtoul(pf, &end, 10);
        if (*end || errno || prefetch == 0) {
            fprintf(stderr, S_DRIVER ": PEER_RABBITMQ_PREFETCH wants a number > 0\n");
            goto fail;
        }
    }
    run->prefetch = (uint16_t) (prefetch > 65535 ? 65535 : prefetch);
    run->ack_batch = run->prefetch / 4 ? run->prefetch / 4 : 1;
    rc = 0;
fail:
    return rc;
}

int main(int argc, char **argv)
{
    peer_opts_t o;
    s_server_t srv = { 0 };
    s_run_t run = { .o = &o };
    s_stream_t *streams = NULL;
    uint64_t unique = 0, dups = 0, foreign = 0, nacked = 0, first = UINT64_MAX, last = 0;
    unsigned k, n;
    bool lock_made = false, failed = false;
    double secs, rate;
    const char *durability;
    int rc = S_EXIT_USAGE;

    switch (peer_opts_parse(argc, argv, S_DRIVER, S_DEFAULT_SERVER, &o)) {
    case 0: break;
    case 1: rc = S_EXIT_OK; goto fail;
    default: goto fail;
    }
    run.durable = o.workload != PEER_W0;
    run.paced = o.workload == PEER_W1_LAT;
    run.w4 = o.workload == PEER_W4;
    if (s_env_parse(&run) || s_server_parse(o.server, &srv))
        goto fail;
    rc = S_EXIT_SETUP;
    n = o.streams ? o.streams : 1;
    streams = calloc(n, sizeof *streams);
    run.lat = peer_lat_new(o.count);
    if (!streams || !run.lat || pthread_mutex_init(&run.lat_lock, NULL)) {
        fprintf(stderr, S_DRIVER ": out of memory\n");
        goto fail;
    }
    lock_made = true;
    for (k = 0; k < n; k++) {
        s_stream_t *s = &streams[k];
        s->run = &run;
        s->count = o.count / n + (k < o.count % n);
        s->low = 1;
        if (n > 1)
            snprintf(s->queue, sizeof s->queue, "sluicebench.%s.%u", o.name, k);
        else
            snprintf(s->queue, sizeof s->queue, "sluicebench.%s", o.name);
        s->seen = peer_seen_new(s->count);
        s->settled = calloc(s->count + 1, 1);
        if (!s->seen || !s->settled) {
            fprintf(stderr, S_DRIVER ": out of memory\n");
            goto fail;
        }
        if (s_stream_open(s, &srv))
            goto fail;
    }
    /* Every consumer is subscribed: start them, then the producers. */
    rc = S_EXIT_VERIFY;
    for (k = 0; k < n; k++) {
        if (pthread_create(&streams[k].cons_thread, NULL, s_consumer, &streams[k])) {
            fprintf(stderr, S_DRIVER ": cannot start a thread\n");
            atomic_store(&run.abort, true);
            break;
        }
        streams[k].cons_started = true;
    }
    for (k = 0; k < n && !atomic_load(&run.abort); k++) {
        if (pthread_create(&streams[k].prod_thread, NULL, s_producer, &streams[k])) {
            fprintf(stderr, S_DRIVER ": cannot start a thread\n");
            atomic_store(&run.abort, true);
            break;
        }
        streams[k].prod_started = true;
    }
    for (k = 0; k < n; k++) {
        s_stream_t *s = &streams[k];
        int e = 0;
        /* pthread_join fails only on misuse (a bad or detached thread). */
        if (s->prod_started)
            e = pthread_join(s->prod_thread, NULL);
        else
            atomic_store(&s->producer_done, true);
        assert(e == 0);
        if (s->cons_started)
            e = pthread_join(s->cons_thread, NULL);
        assert(e == 0);
        (void) e;
        failed |= !s->prod_started || !s->cons_started || s->prod_rc || s->cons_rc;
        unique += peer_seen_unique(s->seen);
        dups += peer_seen_dups(s->seen);
        foreign += s->foreign;
        nacked += s->nacked;
        if (s->prod_started && s->t_first < first)
            first = s->t_first;
        if (s->t_last > last)
            last = s->t_last;
        if (s->nacked || s->foreign || s->published != s->count)
            fprintf(stderr, S_DRIVER ": %s: published %" PRIu64 "/%" PRIu64 ", acked %"
                    PRIu64 ", nacked %" PRIu64 ", foreign %" PRIu64 "\n", s->queue,
                    s->published, s->count, s->acked, s->nacked, s->foreign);
    }
    /* Throughput: messages received, over the time from the first publish
     * to the last message received and acked (W0: received). */
    secs = last > first ? (double) (last - first) / 1e9 : 0;
    rate = secs > 0 ? (double) unique / secs : 0;
    durability = !run.durable ? S_DURABILITY_W0 : run.w4 ? S_DURABILITY_W4
               : run.qtype == S_QUORUM ? S_DURABILITY_QUORUM : S_DURABILITY_CLASSIC;
    fprintf(stderr, S_DRIVER ": %s, %s queue, prefetch %u: %" PRIu64 " of %" PRIu64
            " in %.3f s\n", o.name,
            !run.durable ? "transient" : run.qtype == S_QUORUM ? "quorum" : "classic",
            run.durable ? run.prefetch : 0, unique, o.count, secs);
    peer_result(&o, "rabbitmq", rate, run.lat, o.count - unique, dups, durability);
    if (!failed && unique == o.count && !dups && !foreign && !nacked)
        rc = S_EXIT_OK;
fail:
    if (streams) {
        for (k = 0; k < n; k++) {
            s_stream_close(&streams[k]);
            peer_seen_destroy(&streams[k].seen);
            free(streams[k].settled);
        }
    }
    free(streams);
    if (lock_made)
        pthread_mutex_destroy(&run.lat_lock);
    peer_lat_destroy(&run.lat);
    free(srv.url);
    return rc;
}
