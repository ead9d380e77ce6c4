/*  sl_session - the client's connection to the broker: the DEALER socket,
 *  CURVE, the handshake monitor, the session state machine, the I/O turn
 *  every blocking call runs, request waiters, and a registry the other
 *  parts plug into: a frame handler per body case they consume and a
 *  part's hooks (session ready / lost, service, deadline). It never calls
 *  publishing, subscriptions or admin by name. Owns the ZeroMQ context and
 *  socket, the option strings' copies and the keys. Client thread only.
 *  Does not batch, subscribe or copy results: the parts do.  */
#ifndef SL_SESSION_H
#define SL_SESSION_H
#include <stdbool.h>
#include <stdint.h>
#include "sluice.h"
#include "slc.h"
#include "slc_cert.h"
#include "slc_codec.h"
#include "sl_options.h"
#include "sl_util.h"

#define SLI_DEFAULT_MAX_MSG (1024u * 1024u)   /* until HelloOk says otherwise */
#define SLI_DRAIN_MAX 512                     /* frames handled per turn */
#define SLI_AUTH_RETRY_MS 5000                /* after a refused handshake */
#define SLI_HANDLERS_MAX 16                   /* frame handlers registered */
#define SLI_PARTS_MAX 4                       /* parts registered */

typedef enum {
    SLI_SESS_IDLE,              /* no socket; next attempt at attempt_at */
    SLI_SESS_HELLO,             /* Hello sent, waiting for HelloOk */
    SLI_SESS_READY,             /* session established */
    SLI_SESS_VERSION,           /* broker refused our version: terminal */
} sli_sess_state_t;

/* A request waiter; lives on the waiting function's stack. */
typedef struct sli_req {
    struct sli_req *next;
    uint64_t corr;
    bool done;
    Sluice__Frame *reply;       /* owned by the waiter once done */
} sli_req_t;

/* A handler for frames of one body case that no waiter claimed. Returns
 * true when it handled FRAME (borrowed: freed after the call); false
 * offers it to the next handler of the case. */
typedef bool sli_frame_fn(void *arg, const Sluice__Frame *frame);

/* A handler that takes FRAME, decoded by reference, and RAW, the received
 * bytes it points into (both owned by the handler from the call on). */
typedef void sli_frame_take_fn(void *arg, Sluice__Frame *frame, zmq_msg_t *raw);

/* What a part (publishing, subscriptions) does at the session's events.
 * Each hook may be NULL. */
typedef struct {
    /* A session began (HelloOk OK); the parts are told in registration order. */
    void (*ready)(void *part, const Sluice__HelloOk *ok);
    /* The session ended (lost, refused or version-failed). */
    void (*lost)(void *part);
    /* READY, from the turn: send what is due; FORCE sends what lingers. */
    void (*service)(void *part, uint64_t now, bool force);
    /* When service next has something due (mono ms), UINT64_MAX for never. */
    uint64_t (*deadline)(const void *part);
} sli_part_ops_t;

typedef struct {
    Sluice__Frame__BodyCase body;
    sli_frame_fn *fn;           /* one of fn and take */
    sli_frame_take_fn *take;
    void *arg;
} sli_handler_t;

typedef struct sli_session sli_session_t;

/* The session's state. The parts read these fields (one thread, the hot
 * paths read them without a call); only sl_session.c writes them, except
 * cb_depth, which a part raises around a user callback. */
struct sli_session {
    sl_options_t opts;          /* strings point at the copies below */
    char *endpoint;
    char *name;
    uint8_t producer_id[SLC_PRODUCER_ID_LEN];
    bool id_file;               /* the id is persistent (a producer id file) */
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
    char last_error[16384];     /* sl_client_last_error: large, since a refused
                                   routing table or mapping lists every error */
    uint8_t state;              /* sli_sess_state_t */
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
    uint64_t corr_next;
    int cb_depth;               /* >0 while a user callback runs */

    sli_req_t *reqs;            /* waiting requests */
    sli_handler_t handlers[SLI_HANDLERS_MAX];
    size_t nhandlers;
    const sli_part_ops_t *part_ops[SLI_PARTS_MAX];
    void *parts[SLI_PARTS_MAX];
    size_t nparts;
};

/* A session for the resolved options O (strings copied) and keys K (copied;
 * the caller wipes its own), with producer id ID (ID_FILE: it is
 * persistent). No socket yet: register the parts, then sli_session_start.
 * 0 and *out (caller owns, sli_session_destroy), SL_ENOMEM or SL_ESYS. */
int sli_session_new(const sl_options_t *o, const sli_keys_t *k,
                    const uint8_t id[SLC_PRODUCER_ID_LEN], bool id_file,
                    sli_session_t **out);

/* Close the socket, end the context, wipe the keys. NULL-safe; sets
 * *self_p to NULL. The parts are destroyed before. */
void sli_session_destroy(sli_session_t **self_p);

/* The first attempt: context, socket, Hello. 0 or a code (bad endpoint:
 * SL_EINVAL). */
int sli_session_start(sli_session_t *self);

/* Register FN (or, with sli_session_take, TAKE) for frames of body case
 * BODY; handlers of one case are offered a frame in registration order.
 * 0, or SL_ENOMEM when the registry is full (a programming error). */
int sli_session_on(sli_session_t *self, Sluice__Frame__BodyCase body,
                   sli_frame_fn *fn, void *arg);
int sli_session_take(sli_session_t *self, Sluice__Frame__BodyCase body,
                     sli_frame_take_fn *take, void *arg);

/* Register a part: OPS (static) with PART (borrowed, outlives the session
 * or is unregistered by destroying the session first). */
int sli_session_part_add(sli_session_t *self, const sli_part_ops_t *ops,
                         void *part);

/* Run every part's service hook now (sl_flush, blocking waits). */
void sli_session_service(sli_session_t *self, uint64_t now, bool force);

/* A fresh correlation id. */
uint64_t sli_corr(sli_session_t *self);

/* The sticky last error (sl_client_last_error): the SDK's public face of
 * the err/errlen convention, since a handle outlives each call. */
void sli_error_set(sli_session_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sli_error_clear(sli_session_t *self);

/* Backoff for the ATTEMPT-th retry: 100 ms doubling to 2 s, jittered. */
uint64_t sli_backoff(sli_session_t *self, unsigned attempt);

/* Send FRAME / the encoded MSG (always consumed) without blocking: 0,
 * SL_EBUSY (full pipe), SL_EUNAVAIL (no socket), SL_ENOMEM. */
int sli_send(sli_session_t *self, const Sluice__Frame *frame);
int sli_send_msg(sli_session_t *self, zmq_msg_t *msg);

/* One I/O turn of at most TIMEOUT_MS (-1: until something happens):
 * timers, frames, monitor events. Frames handled (>= 0) or a code. */
int sli_turn(sli_session_t *self, int timeout_ms);

/* A non-blocking turn at most once per millisecond, from the hot calls. */
void sli_tick(sli_session_t *self, uint64_t now);

/* Turn until READY: 0, SL_ETIMEOUT (or the broker's refusal), SL_EVERSION,
 * SL_EAUTH. */
int sli_wait_ready(sli_session_t *self, int timeout_ms);

/* Add / remove a waiter for the reply with W->corr (sl_ack_sync builds its
 * own frames; sli_request does all of it). */
void sli_session_wait_add(sli_session_t *self, sli_req_t *w);
void sli_session_wait_remove(sli_session_t *self, sli_req_t *w);

/* Send REQ (its corr set here) and wait for its reply: 0 and *reply
 * (caller owns), or an Error's code with its text in the last error, or
 * SL_ETIMEOUT, SL_EVERSION, SL_EAUTH, SL_EBUSY (inside a callback);
 * SL_EUNAVAIL when its session ended and RESEND is false. */
int sli_request(sli_session_t *self, Sluice__Frame *req, bool resend,
                int timeout_ms, Sluice__Frame **reply);

#endif
