/*  fuzz_dispatch - libFuzzer target for the broker's protocol handling: one
 *  in-process sld_server (temp data dir, sync off, a small map that grows
 *  and fills, short timers) driven with sld_server_step, and three DEALER
 *  peers that send the input's frames. The server lives across inputs (and
 *  is replaced every S_RESET_EVERY inputs, to bound its state), so a crash
 *  may need the inputs before it: see README.md.
 *
 *  SLUICE_FUZZ_RESET=1 gives every input a fresh server: slow, but a crash
 *  then reproduces from its input alone. SLUICE_FUZZ_LOG=3 shows the
 *  broker's log.
 *
 *  Input layout:
 *    byte 0   flags: bit 0 HELLO: both session peers first say a valid Hello
 *             and send the frames (frame i from peer 1 when bit 1+i is set,
 *             else peer 0); without it the frames go from a peer that has
 *             no session. bit 5 MULTI: all frames leave as ONE multipart
 *             message. bits 6-7 ACKS: after the replies, answer every
 *             Delivery received with 0 nothing, 1 Ack, 2 Nack, 3 Ack
 *             without corr.
 *    byte 1   the separator; the rest is cut at it into at most 4 frames
 *             (the last one keeps any further separators).
 *  After the frames each peer sends a Heartbeat with corr S_SENTINEL, which
 *  the broker answers whatever the session state: its answer means every
 *  frame before it was handled. No answer within S_WAIT_MS is a finding,
 *  and so is a frame over limits/max_frame_bytes that gets no Error 413.
 *  Single thread (plus ZeroMQ's I/O threads).  */
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "slc_codec.h"
#include "sld_config.h"
#include "sld_server.h"

#define S_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_dispatch: %s:%d: check failed: %s\n", \
                    __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

#define S_RESET_EVERY 5000              /* inputs per server; SLUICE_FUZZ_RESET */
#define S_FRAMES_MAX 4
#define S_WAIT_MS 5000                  /* for the sentinel answers */
#define S_SENTINEL 0x5e471ae15e471ae1ull
#define S_DELIVERIES_MAX 64             /* answered per input */
#define S_PEERS 3                       /* 0, 1: with session; 2: never Hello */
#define S_MAX_FRAME 2048                /* limits/max_frame_bytes: inputs reach it */
#define S_NOSESSION 2

#define S_F_HELLO 0x01
#define S_F_MULTI 0x20

typedef struct {
    void *sock;
    bool used;                          /* sent something this round */
    bool answered;                      /* its sentinel came back */
    int oversized;                      /* frames over S_MAX_FRAME not yet refused */
} s_peer_t;

typedef struct {
    int peer;
    uint32_t sub_id, topic_id;
    uint64_t offset, token;
} s_delivery_t;

/* libFuzzer passes no context to the callback, so the harness state is
 * file scope: one instance, set up in LLVMFuzzerInitialize. */
static struct {
    char dir[PATH_MAX];                 /* this process's temp dir */
    unsigned generation;                /* data dir and endpoint per server */
    sld_server_t *server;
    void *ctx;                          /* the peers' context (not the server's) */
    s_peer_t peers[S_PEERS];
    unsigned nosession_id;              /* peer 2 gets a new identity after a Hello */
    unsigned long inputs;
    unsigned long reset_every;
    s_delivery_t deliveries[S_DELIVERIES_MAX];
    size_t ndeliveries;
    bool nosession_helloed;
} s_fz;

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove(path);
}

static void s_peer_open(int i)
{
    char id[32];
    if (i == S_NOSESSION)
        snprintf(id, sizeof id, "fuzz-nosession-%u", s_fz.nosession_id++);
    else
        snprintf(id, sizeof id, "fuzz-session-%d", i);
    void *sock = zmq_socket(s_fz.ctx, ZMQ_DEALER);
    S_CHECK(sock);
    int zero = 0;
    S_CHECK(zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero) == 0);
    S_CHECK(zmq_setsockopt(sock, ZMQ_ROUTING_ID, id, strlen(id)) == 0);
    S_CHECK(zmq_connect(sock, sld_server_endpoint(s_fz.server)) == 0);
    s_fz.peers[i].sock = sock;
}

static void s_peer_close(int i)
{
    if (s_fz.peers[i].sock)
        zmq_close(s_fz.peers[i].sock);
    s_fz.peers[i].sock = NULL;
}

/* The broker configuration: limits small enough to be reached by a few
 * inputs, timers short enough to fire between inputs. */
static void s_config(sld_config_t *cfg, const char *data_dir, const char *listen)
{
    sld_config_defaults(cfg);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", data_dir);
    snprintf(cfg->listen, sizeof cfg->listen, "%s", listen);
    cfg->sync = false;
    cfg->insecure_plaintext = true;     /* the fuzzer's raw client has no keys */
    cfg->log_level = getenv("SLUICE_FUZZ_LOG") ? atoi(getenv("SLUICE_FUZZ_LOG")) : 0;
    cfg->heartbeat_ms = 100;
    cfg->session_timeout_ms = 2000;
    cfg->max_message_bytes = 1024;
    cfg->max_frame_bytes = S_MAX_FRAME;
    cfg->max_batch = 64;
    cfg->commit_max_msgs = 256;
    cfg->max_connections = 32;
    cfg->max_subscriptions = 32;
    cfg->max_inflight = 32;
    cfg->map_size = 1024 * 1024;
    cfg->map_size_max = 4 * 1024 * 1024;
    cfg->producer_window = 64;
    cfg->dedup_window_ms = 1000;
    cfg->retention_max_bytes = 64 * 1024;
    cfg->trim_interval_ms = 10;
    cfg->trim_batch = 100;
    cfg->ack_wait_ms = 50;
    cfg->max_deliver = 3;
    cfg->deliver_batch = 8;
}

static void s_server_stop(void)
{
    for (int i = 0; i < S_PEERS; i++)
        s_peer_close(i);
    if (s_fz.server) {
        sld_server_destroy(&s_fz.server);
        char gen[PATH_MAX + 32];
        snprintf(gen, sizeof gen, "%s/%u", s_fz.dir, s_fz.generation);
        nftw(gen, s_rm, 8, FTW_DEPTH | FTW_PHYS);
    }
}

static void s_server_start(void)
{
    char gen[PATH_MAX + 32], data[PATH_MAX + 64], listen[PATH_MAX + 64];
    s_fz.generation++;
    snprintf(gen, sizeof gen, "%s/%u", s_fz.dir, s_fz.generation);
    S_CHECK(mkdir(gen, 0700) == 0);
    snprintf(data, sizeof data, "%s/data", gen);
    /* ipc is quicker than tcp; its path has a short limit (sun_path). */
    if (strlen(gen) + 16 < 100)
        snprintf(listen, sizeof listen, "ipc://%s/sock", gen);
    else
        snprintf(listen, sizeof listen, "tcp://127.0.0.1:*");
    sld_config_t cfg;
    s_config(&cfg, data, listen);
    int rc = sld_server_new(&cfg, &s_fz.server);
    if (rc != 0) {
        fprintf(stderr, "fuzz_dispatch: sld_server_new: %s\n", slc_strerror(rc));
        exit(1);
    }
    for (int i = 0; i < S_PEERS; i++)
        s_peer_open(i);
}

static void s_cleanup(void)
{
    s_server_stop();
    if (s_fz.ctx)
        zmq_ctx_term(s_fz.ctx);
    s_fz.ctx = NULL;
    if (s_fz.dir[0])
        nftw(s_fz.dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* Send FRAME (encoded here) from peer I. */
static void s_send_frame(int i, const Sluice__Frame *frame)
{
    int rc = slc_frame_send(s_fz.peers[i].sock, NULL, 0, frame, ZMQ_DONTWAIT);
    S_CHECK(rc == 0);
    s_fz.peers[i].used = true;
}

static void s_send_bytes(int i, const uint8_t *data, size_t len, bool more)
{
    int rc = zmq_send(s_fz.peers[i].sock, data, len,
                      ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0));
    S_CHECK(rc >= 0);
    s_fz.peers[i].used = true;
}

static void s_send_hello(int i)
{
    static uint8_t producer[SLC_PRODUCER_ID_LEN] = "fuzz-producer-0";
    Sluice__Hello hello = SLUICE__HELLO__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    hello.version = SLC_PROTOCOL_VERSION;
    hello.client = (char *) "fuzz_dispatch";
    hello.producer_id.data = producer;
    hello.producer_id.len = sizeof producer;
    frame.body_case = SLUICE__FRAME__BODY_HELLO;
    frame.hello = &hello;
    frame.corr = 1;
    s_send_frame(i, &frame);
}

/* What the broker may say: every frame decodes, errors carry a code from
 * docs/protocol.md and a text. */
static void s_check_reply(int i, const Sluice__Frame *f)
{
    static const int codes[] = { 400, 401, 403, 404, 405, 407, 409, 412, 413, 422,
                                 426, 429, 500, 502, 504, 505, 507 };
    switch (f->body_case) {
    case SLUICE__FRAME__BODY_ERROR: {
        bool known = false;
        for (size_t k = 0; k < sizeof codes / sizeof codes[0]; k++)
            known = known || f->error->code == codes[k];
        if (!known)
            fprintf(stderr, "fuzz_dispatch: error code %d (%s)\n",
                    f->error->code, f->error->text);
        S_CHECK(known);
        S_CHECK(f->error->text && *f->error->text);
        if (f->error->code == 413 && s_fz.peers[i].oversized > 0)
            s_fz.peers[i].oversized--;
        break;
    }
    case SLUICE__FRAME__BODY_HELLO_OK:
        S_CHECK(f->hello_ok->version == SLC_PROTOCOL_VERSION);
        if (i == S_NOSESSION)
            s_fz.nosession_helloed = true;
        break;
    case SLUICE__FRAME__BODY_DELIVER:
        for (size_t k = 0; k < f->deliver->n_msgs; k++) {
            const Sluice__Delivery *d = f->deliver->msgs[k];
            Sluice__Envelope *e = NULL;
            /* The broker delivers what it stored: it always decodes. */
            S_CHECK(slc_envelope_decode(d->envelope.data, d->envelope.len, &e) == 0);
            S_CHECK(d->attempt >= 1);
            slc_envelope_free(&e);
            if (s_fz.ndeliveries < S_DELIVERIES_MAX)
                s_fz.deliveries[s_fz.ndeliveries++] = (s_delivery_t) {
                    i, d->sub_id, d->topic_id, d->offset, d->token };
        }
        break;
    case SLUICE__FRAME__BODY_HELLO:
    case SLUICE__FRAME__BODY_PUBLISH:
    case SLUICE__FRAME__BODY_PUBLISH_BATCH:
    case SLUICE__FRAME__BODY_SUBSCRIBE:
    case SLUICE__FRAME__BODY_CREDIT:
    case SLUICE__FRAME__BODY_ACK:
    case SLUICE__FRAME__BODY_NACK:
    case SLUICE__FRAME__BODY_UNSUBSCRIBE:
    case SLUICE__FRAME__BODY_TOPIC_CREATE:
    case SLUICE__FRAME__BODY_STATS:
    case SLUICE__FRAME__BODY_SUB_REMOVE:
    case SLUICE__FRAME__BODY_KEY_ADD:
    case SLUICE__FRAME__BODY_KEY_REVOKE:
    case SLUICE__FRAME__BODY_KEY_LIST:
    case SLUICE__FRAME__BODY_GRANT_CHANGE:
    case SLUICE__FRAME__BODY_ROTATE_KEY:
    case SLUICE__FRAME__BODY__NOT_SET:
        fprintf(stderr, "fuzz_dispatch: the broker sent a client command (%s)\n",
                slc_frame_name(f));
        abort();
    default:
        break;
    }
    if (f->corr == S_SENTINEL)
        s_fz.peers[i].answered = true;
}

/* Read everything waiting on every peer. */
static void s_drain(void)
{
    for (int i = 0; i < S_PEERS; i++) {
        while (true) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, s_fz.peers[i].sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&msg);
                break;
            }
            S_CHECK(!zmq_msg_more(&msg));   /* one frame per message */
            Sluice__Frame *f = NULL;
            S_CHECK(slc_frame_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &f) == 0);
            s_check_reply(i, f);
            slc_frame_free(&f);
            zmq_msg_close(&msg);
        }
    }
}

/* docs/protocol.md: a frame over max_frame_bytes is refused with 413. */
static void s_check_refused(int i)
{
    if (s_fz.peers[i].oversized) {
        fprintf(stderr, "fuzz_dispatch: %d frame(s) over limits/max_frame_bytes "
                "(%d) got no Error 413\n", s_fz.peers[i].oversized, S_MAX_FRAME);
        abort();
    }
}

/* Send the sentinel from every peer used since the last round, then step
 * the server until each one came back; then one more step for the
 * deliveries and timers it triggers. */
static void s_round(void)
{
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    frame.body_case = SLUICE__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &hb;
    frame.corr = S_SENTINEL;
    int waiting = 0;
    for (int i = 0; i < S_PEERS; i++) {
        s_fz.peers[i].answered = !s_fz.peers[i].used;
        if (s_fz.peers[i].used) {
            s_send_frame(i, &frame);
            waiting++;
        }
    }
    uint64_t deadline = slc_mono_ms() + S_WAIT_MS;
    while (waiting) {
        S_CHECK(sld_server_step(s_fz.server, 1) == 0);
        s_drain();
        waiting = 0;
        for (int i = 0; i < S_PEERS; i++)
            waiting += !s_fz.peers[i].answered;
        if (waiting && slc_mono_ms() > deadline) {
            for (int i = 0; i < S_PEERS; i++)
                s_check_refused(i);
            fprintf(stderr, "fuzz_dispatch: no answer to a heartbeat within "
                    "%d ms: the broker stopped serving a peer\n", S_WAIT_MS);
            abort();
        }
    }
    S_CHECK(sld_server_step(s_fz.server, 0) == 0);
    s_drain();
    for (int i = 0; i < S_PEERS; i++) {
        s_check_refused(i);
        s_fz.peers[i].used = false;
    }
}

/* Answer the deliveries of this input per MODE (flag bits 6-7). */
static void s_answer(int mode)
{
    for (size_t k = 0; k < s_fz.ndeliveries; k++) {
        const s_delivery_t *d = &s_fz.deliveries[k];
        Sluice__AckItem item = SLUICE__ACK_ITEM__INIT;
        Sluice__AckItem *items[1] = { &item };
        Sluice__Ack ack = SLUICE__ACK__INIT;
        Sluice__Nack nack = SLUICE__NACK__INIT;
        Sluice__Frame frame = SLUICE__FRAME__INIT;
        item.topic_id = d->topic_id;
        item.offset = d->offset;
        item.token = d->token;
        frame.corr = mode == 3 ? 0 : 2 + k;
        if (mode == 2) {
            nack.sub_id = d->sub_id;
            nack.n_items = 1;
            nack.items = items;
            nack.credit = 1;
            frame.body_case = SLUICE__FRAME__BODY_NACK;
            frame.nack = &nack;
        }
        else {
            ack.sub_id = d->sub_id;
            ack.n_items = 1;
            ack.items = items;
            ack.credit = 1;
            frame.body_case = SLUICE__FRAME__BODY_ACK;
            frame.ack = &ack;
        }
        s_send_frame(d->peer, &frame);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc; (void) argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(s_fz.dir, sizeof s_fz.dir, "%s/sluice-fuzz.XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s_fz.dir)) {
        perror("fuzz_dispatch: mkdtemp");
        exit(1);
    }
    const char *reset = getenv("SLUICE_FUZZ_RESET");
    s_fz.reset_every = reset && atol(reset) > 0 ? (unsigned long) atol(reset) : S_RESET_EVERY;
    s_fz.ctx = zmq_ctx_new();
    S_CHECK(s_fz.ctx);
    atexit(s_cleanup);
    s_server_start();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (s_fz.inputs++ % s_fz.reset_every == 0 && s_fz.inputs > 1) {
        s_server_stop();
        s_server_start();
    }
    uint8_t flags = data[0], sep = data[1];
    const uint8_t *frames[S_FRAMES_MAX];
    size_t lens[S_FRAMES_MAX], n = 0;
    const uint8_t *p = data + 2, *end = data + size;
    while (n < S_FRAMES_MAX) {
        const uint8_t *cut = n + 1 < S_FRAMES_MAX ? memchr(p, sep, (size_t) (end - p)) : NULL;
        frames[n] = p;
        lens[n] = cut ? (size_t) (cut - p) : (size_t) (end - p);
        n++;
        if (!cut)
            break;
        p = cut + 1;
    }

    bool hello = flags & S_F_HELLO;
    if (hello) {
        s_send_hello(0);
        s_send_hello(1);
    }
    for (size_t k = 0; k < n; k++) {
        int peer = !hello ? S_NOSESSION : (flags >> (1 + k)) & 1;
        if (flags & S_F_MULTI)
            s_send_bytes(!hello ? S_NOSESSION : 0, frames[k], lens[k], k + 1 < n);
        else {
            s_send_bytes(peer, frames[k], lens[k], false);
            s_fz.peers[peer].oversized += lens[k] > S_MAX_FRAME;
        }
    }
    s_fz.ndeliveries = 0;
    s_fz.nosession_helloed = false;
    s_round();
    int mode = flags >> 6;
    if (mode && s_fz.ndeliveries) {
        s_answer(mode);
        s_fz.ndeliveries = 0;
        s_round();
    }
    /* The peer without a session said Hello: give it a fresh identity
     * (the broker forgets the old one when its session times out). */
    if (s_fz.nosession_helloed) {
        s_peer_close(S_NOSESSION);
        s_peer_open(S_NOSESSION);
    }
    return 0;
}
