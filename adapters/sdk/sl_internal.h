/*  sl_internal - the structures libsluice's source files share: the client
 *  (session, publish ring, transient batch), subscriptions, messages and
 *  request waiters. Private to adapters/sdk, never installed. Same thread
 *  rule as sluice.h: one thread per client. Functions here use the prefix
 *  sli_ so the version script (global: sl_*) keeps them out of the ABI.  */
#ifndef SL_INTERNAL_H
#define SL_INTERNAL_H
#include <stdio.h>
#include <stdalign.h>
#include <stddef.h>
#include "sluice.h"
#include "slc.h"
#include "slc_cert.h"
#include "slc_codec.h"
#include "sl_kmap.h"

#define SLI_LOG(...) do { fprintf(stderr, "libsluice: " __VA_ARGS__); \
                          fputc('\n', stderr); } while (0)

#define SLI_DEFAULT_MAX_MSG (1024u * 1024u)   /* until HelloOk says otherwise */
#define SLI_ACK_BATCH 1024                    /* acks that go out without waiting */
#define SLI_ACK_FRAME_MAX 8192                /* most items per Ack frame */
#define SLI_ACKED_RING 65536                  /* recently acked keys remembered */
#define SLI_DRAIN_MAX 512                     /* frames handled per turn */
#define SLI_AUTH_RETRY_MS 5000                /* after a refused handshake */
#define SLI_ERROR_MAX 256                     /* sl_client_last_error text */

/* Transient batches the broker has not yet answered, at most: this paces a
 * transient publisher to the broker's fan-out speed instead of letting it
 * outrun every subscriber's credit. */
#ifndef SLI_TRANSIENT_WINDOW
#define SLI_TRANSIENT_WINDOW 4
#define SLI_MSG_ENVBUF 384      /* a message's envelope and strings, in place */
#define SLI_MSG_POOL 64         /* destroyed messages a subscription keeps for reuse */
#endif

typedef enum {
    SLI_SESS_IDLE,              /* no socket; next attempt at attempt_at */
    SLI_SESS_HELLO,             /* Hello sent, waiting for HelloOk */
    SLI_SESS_READY,             /* session established */
    SLI_SESS_VERSION,           /* broker refused our version: terminal */
} sli_session_t;

/* ---- publish */

typedef enum {
    SLI_PEND_UNSENT,            /* waits in the outgoing batch (seq >= send_seq) */
    SLI_PEND_SENT,              /* in a frame, awaiting its Confirm */
    SLI_PEND_RETRY,             /* retryable nack: resend at retry_at */
} sli_pend_state_t;

/* One unconfirmed publish: the envelope is encoded once here and copied
 * into every frame that carries it (first send, retries, resends). */
typedef struct {
    uint64_t seq;
    uint64_t corr;              /* frame it last went out in */
    uint64_t retry_at;          /* mono ms, state RETRY */
    sl_confirm_fn *cb;
    void *arg;
    char *topic;                /* points into this allocation */
    uint32_t len;               /* bytes in enc */
    uint8_t state;              /* sli_pend_state_t */
    uint8_t retries;
    uint8_t enc[];              /* encoded Envelope, then the topic string */
} sli_pending_t;

/* ---- subscribe */

typedef enum {
    SLI_SUB_PENDING,            /* Subscribe to send or sent, no answer yet */
    SLI_SUB_ACTIVE,             /* SubscribeOk for this session */
    SLI_SUB_FAILED,             /* broker refused; rc says why */
    SLI_SUB_CLOSING,            /* sl_unsubscribe under way: no resubscribe */
} sli_sub_state_t;

/* A received Deliver frame, shared by the queued deliveries it carries and
 * by the messages handed out from it: the frame is decoded by reference,
 * so its envelopes and their payloads are bytes of RAW. */
typedef struct {
    Sluice__Frame *frame;
    zmq_msg_t raw;
    size_t refs;
} sli_dframe_t;

typedef struct {
    sli_dframe_t *df;
    Sluice__Delivery *d;        /* borrowed from df->frame */
} sli_qitem_t;

typedef struct {
    uint64_t offset;
    uint32_t topic_id;
} sli_key_t;

struct sl_sub {
    sl_client_t *client;        /* NULL once detached (unsubscribed, client gone) */
    sl_sub_t *next;             /* client's list */
    char *name;                 /* "" for ephemeral */
    char *pattern;
    sl_sub_options_t opts;      /* copy; its strings point at name/pattern */
    uint8_t state;              /* sli_sub_state_t */
    bool ok_once;               /* had a SubscribeOk: resubscribe with START_DEFAULT */
    int rc;                     /* state FAILED */
    uint32_t sub_id;            /* this session's handle */
    uint64_t corr;              /* of the Subscribe awaiting its answer */
    size_t refs;                /* 1 for the client's list + 1 per live sl_msg_t */
    /* deliveries received, not yet handed out (FIFO ring) */
    sli_qitem_t *q;
    size_t qcap, qhead, qn;
    uint32_t owed;              /* credit to give back to the broker */
    /* acks queued for the next Ack frame */
    Sluice__AckItem *acks;
    Sluice__AckItem **ackp;
    size_t nacks, ackcap;
    uint64_t ack_since;         /* mono ms of the first queued ack */
    /* dedupe: handed out and not acked -> latest token */
    sli_kmap_t out;
    /* recently acked keys: ring + membership, (topic id, offset / 64) ->
     * bitmap of the block's acked offsets (sl_sub.c, s_acked_has) */
    sli_key_t *acked;
    size_t acked_head, acked_n;
    sli_kmap_t acked_set;
    uint64_t refused;           /* acks the broker refused (unsolicited AckReply) */
    uint64_t malformed;         /* deliveries whose envelope did not decode */
    /* destroyed messages kept for the next ones: no malloc per message */
    sl_msg_t *pool[SLI_MSG_POOL];
    size_t pool_n;
};

struct sl_msg {
    sl_sub_t *sub;              /* holds a reference */
    sli_dframe_t *df;           /* holds a reference: ENV's bytes are in it */
    Sluice__Envelope *env;      /* owned */
    char *topic_own;            /* owned copy when Delivery.topic differs from env's */
    uint64_t offset;
    uint64_t token;             /* token at hand-out; sl_ack uses the latest */
    uint32_t topic_id;
    uint32_t attempt;
    bool settled;               /* acked or nacked */
    bool env_in_buf;            /* ENV lives in ENVBUF (slc_envelope_decode_in) */
    alignas(max_align_t) unsigned char envbuf[SLI_MSG_ENVBUF];
};

/* ---- request waiters (live on the waiting function's stack) */

typedef struct sli_req {
    struct sli_req *next;
    uint64_t corr;
    bool done;
    Sluice__Frame *reply;       /* owned by the waiter once done */
} sli_req_t;

/* ---- the client */

struct sl_client {
    sl_options_t opts;          /* strings point at the copies below */
    char *endpoint;
    char *name;
    char *id_file;
    int id_fd;                  /* locked producer id file, or -1 */
    uint8_t producer_id[SLC_PRODUCER_ID_LEN];
    uint64_t rng;               /* xorshift state for backoff jitter */

    void *ctx;
    void *sock;                 /* DEALER; NULL in IDLE and VERSION */
    void *mon;                  /* PAIR reading sock's monitor events, or NULL */
    unsigned mon_seq;           /* makes each monitor's inproc name unique */

    /* CURVE: the keys every session's socket gets (wiped at destroy) */
    bool curve;                 /* server_key given */
    uint8_t server_key[SLC_KEY_LEN];
    uint8_t public_key[SLC_KEY_LEN];
    uint8_t secret_key[SLC_KEY_LEN];
    char public_z85[SLC_Z85_LEN + 1];       /* "" in plain text */
    uint8_t auth;               /* sl_auth_t of the last refusal; OK once admitted */
    bool hs_pending;            /* connected, handshake not yet decided */
    unsigned hs_lost;           /* handshakes the broker cut short, in a row */
    char auth_text[SLI_ERROR_MAX];          /* why, while auth != OK */
    char last_error[SLI_ERROR_MAX];         /* sl_client_last_error */
    uint8_t state;              /* sli_session_t */
    bool ever_ready;
    int hello_refused;          /* last code the broker refused Hello with (429), or 0 */
    uint64_t gen;               /* +1 at every HelloOk */
    uint64_t reconnects;
    unsigned attempts;          /* failed attempts since the last session */
    uint64_t attempt_at;        /* IDLE: when to try again (mono ms) */
    uint64_t hello_at;          /* HELLO: when Hello went out */
    uint64_t last_recv;
    uint64_t last_send;
    uint64_t last_hb;           /* last Heartbeat sent */
    uint64_t last_io;           /* last turn; a long gap means the app was busy */
    uint64_t alive_from;        /* dead check counts silence from max(this, last_recv) */
    uint32_t max_batch;         /* effective: min(opts, HelloOk) */
    uint32_t max_msg;           /* HelloOk.max_message_bytes or the default */
    char valid_topic[SLC_TOPIC_MAX + 1];    /* last topic that passed validation */
    uint64_t corr_next;
    int cb_depth;               /* >0 while a user callback runs */

    /* unconfirmed publishes, slot = seq & (ring_cap - 1) */
    sli_pending_t **ring;
    size_t ring_cap;
    uint64_t base_seq;          /* every live seq is in [base_seq, next_seq) */
    uint64_t next_seq;
    uint64_t send_seq;          /* seqs >= this are UNSENT */
    size_t live;
    size_t unsent_n;
    size_t unsent_bytes;
    uint64_t batch_since;       /* mono ms of the oldest unsent publish */
    size_t retry_n;
    uint64_t retry_at;          /* earliest retry */
    sli_pending_t **scratch;    /* max_batch entries, to assemble a frame */

    /* transient batch: PublishBatch.msgs fields, already framed */
    uint8_t *tbuf;
    size_t tlen, tcap, tn;
    uint64_t tsince;
    uint64_t tcorr[SLI_TRANSIENT_WINDOW]; /* corrs of transient batches not yet answered */
    size_t tout;                /* how many of tcorr are in use */

    sl_sub_t *subs;
    sli_req_t *reqs;
};

/* sl_client.c */
uint64_t sli_corr(sl_client_t *self);
void sli_error_set(sl_client_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int sli_send(sl_client_t *self, const Sluice__Frame *frame);
int sli_send_msg(sl_client_t *self, zmq_msg_t *msg);
int sli_turn(sl_client_t *self, int timeout_ms);
void sli_tick(sl_client_t *self, uint64_t now);
int sli_remaining(uint64_t deadline, int timeout_ms);
int sli_wait_ready(sl_client_t *self, int timeout_ms);
int sli_request(sl_client_t *self, Sluice__Frame *req, bool resend,
                int timeout_ms, Sluice__Frame **reply);
uint64_t sli_backoff(sl_client_t *self, unsigned attempt);
uint64_t sli_min(uint64_t a, uint64_t b);

/* sl_pub.c */
int sli_pub_init(sl_client_t *self);
void sli_pub_destroy(sl_client_t *self);
void sli_pub_session_ready(sl_client_t *self, uint64_t last_seq);
void sli_pub_service(sl_client_t *self, uint64_t now, bool force);
uint64_t sli_pub_deadline(const sl_client_t *self);
void sli_pub_on_ack(sl_client_t *self, const Sluice__Frame *frame);
void sli_pub_on_error(sl_client_t *self, uint64_t corr,
                      const Sluice__Error *err);

/* sl_sub.c */
void sli_sub_destroy_all(sl_client_t *self);
void sli_sub_session_lost(sl_client_t *self);
void sli_sub_session_ready(sl_client_t *self);
void sli_sub_service(sl_client_t *self, uint64_t now, bool force);
uint64_t sli_sub_deadline(const sl_client_t *self);
/* Takes FRAME (a Deliver decoded by reference) and RAW, its bytes. */
void sli_sub_on_deliver(sl_client_t *self, Sluice__Frame *frame, zmq_msg_t *raw);
void sli_sub_on_subscribe_ok(sl_client_t *self, const Sluice__Frame *frame);
bool sli_sub_on_error(sl_client_t *self, uint64_t corr, int code);
void sli_sub_on_ack_reply(sl_client_t *self, const Sluice__Frame *frame);

#endif
