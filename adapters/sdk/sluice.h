/*  sluice.h - libsluice, the client library for the sluice broker.
 *
 *  One sl_client_t is one connection to one broker. It publishes (with
 *  batching, idempotent sequence numbers and resend after reconnect) and
 *  subscribes (credit-based, acked). The client does I/O only inside its own
 *  calls (sl_poll, sl_flush, sl_publish_sync, sl_sub_next, ...): there is
 *  no background thread, and callbacks run inside those calls on the
 *  caller's thread. A client must not be used by two threads at once; use
 *  one client per thread.
 *
 *  Inside a callback a client does no I/O of its own: sl_publish,
 *  sl_publish_transient, sl_ack, sl_nack and sl_sub_next on already
 *  received messages work; a call that would have to wait for the broker
 *  (sl_poll, sl_flush, the *_sync calls, sl_subscribe, admin calls, or
 *  sl_publish at max_unacked) returns SL_EBUSY there. A broker that refused
 *  our protocol version (426) makes every later call return SL_EVERSION.
 *
 *  Security: with sl_options_t.server_key the connection is encrypted and
 *  authenticated with CurveZMQ, and the client needs a key pair the broker
 *  has registered (sl_key_add). A broker that refuses the key makes the
 *  calls that wait for it return SL_EAUTH; sl_client_auth and
 *  sl_client_last_error say why.
 *
 *  Every int-returning function returns 0 or a negative SL_E* code from
 *  sluice_codes.h; sl_strerror() names them. Where a reason is worth
 *  having, a call without a client takes `char *err, size_t errlen` last
 *  (sl_options_check, sl_cert_create); a call on a client keeps it in
 *  sl_client_last_error, the handle's sticky form of the same rule.  */
#ifndef SLUICE_H
#define SLUICE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sluice_codes.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_DEFAULT_ENDPOINT "tcp://127.0.0.1:5555"

typedef struct sl_client sl_client_t;
typedef struct sl_sub sl_sub_t;
typedef struct sl_msg sl_msg_t;

/* Static text for a result code. Never NULL. */
const char *sl_strerror(int code);

/* ---------------------------------------------------------------- client */

typedef struct {
    const char *endpoint;       /* broker endpoint; default SL_DEFAULT_ENDPOINT */
    const char *name;           /* client name shown in broker stats; default "libsluice" */
    const char *producer_id_file;
                                /* where the producer id and next sequence are
                                   kept across runs; NULL = a fresh random
                                   producer id for this client's life */
    int linger_ms;              /* the longest a publish (or an ack) may wait to
                                   fill a batch; default 1, 0 = never wait. Smart
                                   batching: a publish leaves at once while no
                                   batch of this client awaits its confirm, else
                                   it joins the next batch, which leaves when a
                                   confirm arrives, the batch is full or this
                                   bound passes; an ack leaves once the
                                   application has taken every queued delivery.
                                   A call that blocks (sl_poll with a timeout,
                                   sl_sub_next waiting, ...) sends what waits
                                   first: nothing joins it meanwhile */
    int max_batch;              /* most messages per batch frame; default 1000 */
    size_t max_batch_bytes;     /* most payload bytes per batch frame; default 1 MiB */
    int max_unacked;            /* most publishes awaiting confirm; default 100000 */
    int block_ms;               /* how long sl_publish waits for room when max_unacked
                                   is reached before returning SL_EBUSY; default 30000,
                                   0 = return SL_EBUSY at once */
    int heartbeat_ms;           /* heartbeat interval; default 1000 */
    int dead_after_ms;          /* broker silent this long = reconnect; default 5000 */
    int connect_timeout_ms;     /* sl_client_connect gives up after this; default 30000 */
    const char *server_key;     /* the broker's public key: 40 Z85 characters, or a
                                   file holding it (the broker's DATA/server.pub);
                                   NULL = plain text, which only a broker started
                                   with --insecure-plaintext accepts */
    const char *cert;           /* this client's certificate file (from `sluice
                                   keygen`, or the broker's DATA/admin.cert); it
                                   must not be readable by group or others */
    const char *public_key;     /* instead of cert: this client's key pair as two */
    const char *secret_key;     /*   Z85 strings of 40 characters */
} sl_options_t;
/* NULL strings and 0 in max_batch, max_batch_bytes, max_unacked,
 * heartbeat_ms, dead_after_ms and connect_timeout_ms mean the default;
 * dead_after_ms must exceed heartbeat_ms. The producer_id_file holds the id
 * (32 hex digits, created mode 0600) and is locked while the client lives;
 * the broker keeps the last stored sequence of that id and tells it at
 * connect, so the first sl_publish of such a client waits for the session
 * (connect_timeout_ms) before numbering messages.
 * Keys: server_key needs a client key pair (cert, or public_key and
 * secret_key, not both), and a key pair needs server_key. sl_client_new
 * reads the files and keeps the keys, not the strings; the secret key is
 * wiped from memory when the client is destroyed. */

/* Fill OPTS with the defaults above. */
void sl_options_init(sl_options_t *opts);

/* ---- where to connect, the way `sluice` and every adapter settle it ----
 * What a user typed (flags; NULL = not given) and what the environment
 * says, settled into an endpoint and key files by one rule shared by the
 * CLI, the adapters and the Python SDK. Each of cert and server key comes
 * from the first of: its flag, the home flag, $SLUICE_CERT /
 * $SLUICE_SERVER_KEY, $SLUICE_HOME; when no flag or variable names any key,
 * from SL_DEFAULT_HOME if it holds a server.pub (the operator on the
 * broker's host types no key at all). A home (the broker's data directory)
 * gives DATA/admin.cert, DATA/server.pub and, unless the broker flag or
 * $SLUICE_BROKER did, the endpoint written in DATA/endpoint; a home whose
 * endpoint file says "plaintext" on its second line gives no keys. */
#define SL_DEFAULT_HOME "./var/sluice"

typedef struct {
    const char *broker;         /* --broker: endpoint, or NULL */
    const char *home;           /* --home: the broker's data directory, or NULL */
    const char *cert;           /* --cert FILE, or NULL */
    const char *server_key;     /* --server-key KEY|FILE, or NULL */
    bool plaintext;             /* --insecure-plaintext: no keys at all (the
                                   variables are ignored too) */
} sl_connect_args_t;

typedef struct {
    char endpoint[512];
    char cert[4096];            /* "" = none */
    char server_key[4096];      /* "" = none */
    char home[4096];            /* the home used, "" = none */
    bool home_auto;             /* home is SL_DEFAULT_HOME, found, not asked for */
    bool broker_given;          /* endpoint came from --broker or $SLUICE_BROKER */
} sl_connect_t;

/* Settle ARGS (NULL = nothing typed) and the environment into OUT.
 * Returns 0; SL_EINVAL with ERR saying what to type instead (a key without
 * the other, a home without server.pub or admin.cert, --insecure-plaintext
 * with keys); SL_ESYS when the home's endpoint file cannot be read. */
int sl_connect_resolve(const sl_connect_args_t *args, sl_connect_t *out,
                       char *err, size_t errlen);

/* Point OPTS's endpoint, cert and server_key at CONN's (borrowed: CONN
 * must outlive the sl_client_new call). */
void sl_connect_apply(const sl_connect_t *conn, sl_options_t *opts);

/* Create a client for OPTS (borrowed; strings are copied) and start to
 * connect. NULL OPTS = defaults. Returns 0 and *out (caller owns; free with
 * sl_client_destroy), SL_EINVAL for bad options (among them a bad key or
 * an unreadable, missing or unparsable key file), SL_EDENIED when the
 * certificate file is readable by group or others, SL_ESYS when the
 * producer id file or the certificate cannot be read or written,
 * SL_ENOMEM. Also SL_EBUSY when another live client holds the producer id
 * file, SL_EINVAL when it holds no id. No client, so no
 * sl_client_last_error: sl_options_check on the same OPTS tells why. */
int sl_client_new(const sl_options_t *opts, sl_client_t **out);

/* Check OPTS (borrowed; NULL = defaults) the way sl_client_new does,
 * reading the key files, without creating a client or connecting. Returns
 * 0 or the code sl_client_new would return for them (SL_EINVAL,
 * SL_EDENIED, SL_ESYS), with the reason in ERR (ERRLEN bytes, caller's
 * buffer, may be NULL; "" on 0), e.g. "/etc/app.cert is readable by group
 * or others (mode 0644); chmod 600 /etc/app.cert". An endpoint is checked
 * only when sl_client_new connects. */
int sl_options_check(const sl_options_t *opts, char *err, size_t errlen);

/* Wait until the broker has answered Hello, at most connect_timeout_ms.
 * 0, SL_ETIMEOUT, SL_EVERSION (broker speaks another protocol), SL_EBUSY
 * (the broker refused the session: limits/max_connections), SL_EAUTH (the
 * broker did not admit this client: sl_client_auth says how; returned as
 * soon as the handshake fails, not after the timeout). Optional: every
 * other call connects on demand. */
int sl_client_connect(sl_client_t *self);

/* Close the connection. Unconfirmed publishes are abandoned: call sl_flush
 * first to wait for them. NULL-safe; sets *self_p to NULL. */
void sl_client_destroy(sl_client_t **self_p);

/* Do pending I/O for up to TIMEOUT_MS (0 = do what is ready and return;
 * -1 = wait until at least one event). Runs confirm callbacks, receives
 * deliveries into subscription queues, sends heartbeats and batches,
 * reconnects and resends. Returns the number of events handled (>= 0) or a
 * negative code. Events are frames received from the broker. */
int sl_poll(sl_client_t *self, int timeout_ms);

/* sl_poll that also wakes when FD (a descriptor of the caller's: an
 * eventfd, a pipe, a socket) is readable, so one thread can sleep until
 * either a broker frame or its own work arrives. Does what is ready at
 * once; before it blocks it sends what lingers (as sl_poll with a timeout
 * does). Returns when frames were handled, FD became readable, or after
 * TIMEOUT_MS (0 = do not wait; -1 = no limit). *FD_READY says whether FD
 * was readable at return; FD is not read: the caller drains it. While the
 * client is not connected FD is looked at every millisecond. Returns the
 * number of events handled (>= 0), SL_EINVAL for a negative FD, or what
 * sl_poll returns. */
int sl_poll_fd(sl_client_t *self, int fd, int timeout_ms, bool *fd_ready);

/* True while a session with the broker is established. */
bool sl_client_connected(const sl_client_t *self);

/* How many times this client re-established its session (broker restart,
 * lost connection). */
uint64_t sl_client_reconnects(const sl_client_t *self);

/* ------------------------------------------------------------- security */

/* Why the broker did not admit the client (after SL_EAUTH). */
typedef enum {
    SL_AUTH_OK = 0,             /* admitted, or no refusal seen yet */
    SL_AUTH_REFUSED = 1,        /* the broker refused this client's key: not
                                   registered (sl_key_add), or revoked */
    SL_AUTH_HANDSHAKE = 2,      /* the CURVE handshake failed: server_key is not
                                   the broker's public key (or a plain-text
                                   broker hung up before we saw its mechanism) */
    SL_AUTH_MECHANISM = 3,      /* one side uses CURVE and the other plain text
                                   (no server_key, or a broker started with
                                   --insecure-plaintext); in plain text also
                                   a broker that hung up on two handshakes in
                                   a row */
} sl_auth_t;

/* How the last handshake ended: SL_AUTH_OK once one succeeded. A refusal
 * is not terminal: while it stands, every call that would wait for the
 * broker returns SL_EAUTH at once; the client tries again about every 5 s
 * inside its calls (sl_poll), and a successful handshake (the key was
 * registered meanwhile) clears it. */
sl_auth_t sl_client_auth(const sl_client_t *self);

/* Text of the last failure that came with a reason: the broker's Error
 * text for an admin call or a refused subscription, why the broker did not
 * admit this client (with SL_EAUTH), why sl_key_add could not read a key.
 * "" when there is none. Admin calls, sl_subscribe and sl_unsubscribe
 * clear it when they start. Borrowed: valid until the next call on SELF. */
const char *sl_client_last_error(const sl_client_t *self);

/* This client's public key as Z85 text (40 characters), the one to
 * register with sl_key_add; "" for a plain-text client. Borrowed: valid
 * while SELF lives. */
const char *sl_client_public_key(const sl_client_t *self);

/* Generate a key pair for client NAME and write it: CERT_PATH gets the
 * certificate (both keys, ZPL text czmq's zcert_load reads too, mode
 * 0600), PUB_PATH the public key in Z85 and a newline (mode 0644); either
 * may be NULL. Existing files are never replaced, and a crash leaves no
 * half-written file. On 0, PUBLIC_KEY (may be NULL; 41 bytes) holds the
 * Z85 public key. Returns 0, SL_EEXIST (a file exists: nothing written),
 * SL_EINVAL (NAME empty, over 255 bytes, or with '"' or control
 * characters), SL_ESYS (cannot write; e.g. no such directory), with the
 * reason in ERR (ERRLEN bytes, may be NULL). Needs no client. */
int sl_cert_create(const char *name, const char *cert_path,
                   const char *pub_path, char public_key[41], char *err,
                   size_t errlen);

/* --------------------------------------------------------------- publish */

typedef struct {
    const char *key;
    const char *value;
} sl_header_t;

typedef struct {
    const char *topic;          /* required */
    const void *payload;        /* LEN bytes, may be NULL when LEN is 0 */
    size_t len;
    const char *content_type;   /* NULL = none */
    const sl_header_t *headers; /* NHEADERS entries, may be NULL */
    size_t nheaders;
    const char *msg_id;         /* NULL, or an application message id: the
                                   broker stores a message with the same id on
                                   the same topic once within its dedup window
                                   (sent as header "msg-id") */
} sl_message_t;

typedef struct {
    int rc;                     /* 0 = durably stored; else the nack code */
    const char *text;           /* nack reason; borrowed, valid during the callback */
    const char *topic;          /* borrowed, valid during the callback */
    uint64_t seq;               /* this client's producer sequence */
    uint64_t offset;            /* offset in the topic when rc == 0 */
    bool duplicate;             /* stored before (a resend): offset is the original */
} sl_confirm_t;

/* Called once per message from sl_poll & co. CONFIRM is borrowed for the
 * call; ARG is the value given to sl_publish. */
typedef void (sl_confirm_fn)(const sl_confirm_t *confirm, void *arg);

/* Queue MSG (copied; the caller keeps ownership) for publishing. CB (may be
 * NULL) is called exactly once with the outcome: after the broker has
 * committed the message to disk, or with a nack that is final. Retryable
 * failures (broker restart, lost connection, SL_EBUSY from the broker) are
 * retried by the client and not reported. On 0, *seq (may be NULL) is the
 * sequence given to the message. Returns 0, SL_EINVAL (bad topic, a header
 * without key, a header, content type or msg_id that is not UTF-8),
 * SL_EDENIED (a topic starting with '_': written only by the broker),
 * SL_EBUSY (max_unacked messages await confirm for longer than block_ms).
 * A payload larger than the broker's max_message_bytes (1 MiB until the
 * broker said) is SL_ETOOBIG; the first publish with a producer_id_file
 * may return SL_ETIMEOUT (see sl_options_t). */
int sl_publish(sl_client_t *self, const sl_message_t *msg,
               sl_confirm_fn *cb, void *arg, uint64_t *seq);

/* Publish MSG and wait for its confirm, at most TIMEOUT_MS (-1 = forever).
 * On 0 or a nack, *out (may be NULL) is filled (its text/topic pointers are
 * NULL here). Returns 0, the nack code, SL_ETIMEOUT or a sl_publish code. */
int sl_publish_sync(sl_client_t *self, const sl_message_t *msg,
                    int timeout_ms, sl_confirm_t *out);

/* Publish without storage or confirm: fan-out to the topic's ephemeral
 * subscribers connected now (fire and forget). 0, SL_EINVAL, SL_EDENIED
 * (a '_' topic), SL_EBUSY. */
int sl_publish_transient(sl_client_t *self, const sl_message_t *msg);

/* Send every queued message and wait until all are confirmed, and every
 * transient batch has reached the broker, at most TIMEOUT_MS (-1 =
 * forever). 0 or SL_ETIMEOUT. Queued acks go out too. Call it before
 * sl_client_destroy: what is still in the socket then is dropped. */
int sl_flush(sl_client_t *self, int timeout_ms);

/* Messages published and not yet confirmed. */
size_t sl_unconfirmed(const sl_client_t *self);

/* The sequence the next sl_publish on SELF will give its message, into
 * *next. With a producer_id_file it first waits for the session (at most
 * connect_timeout_ms), as the first sl_publish does: the broker tells the
 * last sequence it stored for the id and numbering goes on after it, so a
 * producer that numbers its records itself (sequence = record number, as
 * `sluice-file import` does) learns where an earlier run of the same id
 * stopped. 0, SL_ETIMEOUT, SL_EVERSION, SL_EAUTH, or SL_EBUSY inside a
 * callback before the first session. */
int sl_publish_next_seq(sl_client_t *self, uint64_t *next);

/* ------------------------------------------------------------- subscribe */

typedef enum {
    SL_START_DEFAULT = 0,       /* resume the durable cursor; new: latest */
    SL_START_EARLIEST = 1,
    SL_START_LATEST = 2,
    SL_START_OFFSET = 3,        /* start_offset */
    SL_START_TIME = 4,          /* first message ingested at or after start_time_us */
} sl_start_t;

typedef struct {
    const char *name;           /* durable subscription name; NULL with ephemeral */
    const char *pattern;        /* topic or pattern ('*' one word, '>' the rest) */
    bool ephemeral;             /* no state, no acks: fan-out while connected */
    sl_start_t start;
    uint64_t start_offset;
    uint64_t start_time_us;
    uint32_t credit;            /* messages the broker may send ahead; default 1000 */
    uint32_t ack_wait_ms;       /* 0 = broker default (30 s) */
    uint32_t max_deliver;       /* 0 = broker default (5) */
} sl_sub_options_t;

/* Fill OPTS with defaults (durable, SL_START_DEFAULT, credit 1000). */
void sl_sub_options_init(sl_sub_options_t *opts);

/* Subscribe and wait for the broker's answer (connect_timeout_ms). Returns 0
 * and *out (borrowed from the client: valid until sl_unsubscribe or
 * sl_client_destroy), SL_EINVAL (bad name or pattern), SL_EEXIST (the
 * durable name exists with another pattern), SL_EDENIED (no subscribe grant
 * on the pattern, or the durable name is another identity's and no consume
 * grant covers it: docs/security.md), SL_ETIMEOUT. After a reconnect
 * the client subscribes again by itself and the broker resumes after the
 * last ack. */
int sl_subscribe(sl_client_t *self, const sl_sub_options_t *opts,
                 sl_sub_t **out);

/* Next message of SUB, waiting at most TIMEOUT_MS (-1 = forever) while
 * doing the client's I/O. Returns 0 and *out (caller owns; sl_msg_destroy),
 * SL_ETIMEOUT, or an error. A redelivery of a message this client already
 * handed out and has not acked is not handed out again. */
int sl_sub_next(sl_sub_t *sub, int timeout_ms, sl_msg_t **out);

/* Stop the subscription; with REMOVE also delete the durable subscription
 * and its cursor at the broker. Invalidates SUB. 0 or an error. */
int sl_unsubscribe(sl_sub_t **sub_p, bool remove);

/* Acknowledge MSG (borrowed): the broker will not deliver it again. Sent with
 * the next batch of acks (asynchronous). 0 or SL_EINVAL (ephemeral message,
 * already acked). */
int sl_ack(sl_msg_t *msg);

/* Acknowledge and wait until the broker has stored the ack, at most
 * TIMEOUT_MS. 0, SL_ESTALE (this attempt was superseded by a redelivery
 * to another consumer: it will be processed again), SL_ETIMEOUT. */
int sl_ack_sync(sl_msg_t *msg, int timeout_ms);

/* Negative acknowledge: redeliver MSG no sooner than DELAY_MS from now.
 * 0 or an error. The same as sl_nack_reason with no reason. */
int sl_nack(sl_msg_t *msg, uint32_t delay_ms);

#define SL_NACK_REASON_MAX 512      /* bytes of a nack's reason kept */

/* sl_nack with REASON (borrowed; NULL or "" = none): why MSG failed, for
 * the operator. If this was its last attempt (max_deliver), its
 * dead-letter copy's dlq-reason header and the _advisory.dlq event end
 * with "; last nack: REASON". At most SL_NACK_REASON_MAX bytes are kept
 * (a longer reason is cut at a UTF-8 character boundary); each control
 * character becomes a space and each byte that is not UTF-8 a '?'. The
 * broker keeps it in memory only: a broker restart forgets it. 0 or an
 * error, as sl_nack. */
int sl_nack_reason(sl_msg_t *msg, uint32_t delay_ms, const char *reason);

/* Free MSG. An un-acked durable message is simply left to redelivery.
 * NULL-safe; sets *msg_p to NULL. (Its redelivery is then handed out
 * again.) A message may outlive its subscription and its client; acking
 * it then gives SL_EINVAL. Its payload is read in place in the batch it
 * arrived in (no copy), so a message kept keeps that batch's memory too:
 * destroy messages once done with them. */
void sl_msg_destroy(sl_msg_t **msg_p);

/* Accessors. Returned pointers are borrowed, valid until sl_msg_destroy. */
const char *sl_msg_topic(const sl_msg_t *msg);
uint64_t sl_msg_offset(const sl_msg_t *msg);
const void *sl_msg_payload(const sl_msg_t *msg, size_t *len);
const char *sl_msg_content_type(const sl_msg_t *msg);     /* "" when none */
const char *sl_msg_header(const sl_msg_t *msg, const char *key); /* NULL if absent */
size_t sl_msg_header_count(const sl_msg_t *msg);
int sl_msg_header_at(const sl_msg_t *msg, size_t i,
                     const char **key, const char **value);
uint32_t sl_msg_attempt(const sl_msg_t *msg);            /* 1 = first delivery */
uint64_t sl_msg_ingest_us(const sl_msg_t *msg);
uint64_t sl_msg_seq(const sl_msg_t *msg);                /* producer sequence */
const char *sl_msg_subscription(const sl_msg_t *msg);

/* ----------------------------------------------------------------- admin */

typedef struct {
    char name[256];
    uint64_t first_offset;      /* oldest offset still stored */
    uint64_t next_offset;       /* offset the next message will get */
    uint64_t messages;
    uint64_t bytes;
    uint64_t max_age_ms;        /* retention; 0 = unlimited */
    uint64_t max_bytes;
    char schema[272];           /* bound schema SUBJECT@VERSION ("latest" when
                                   not pinned); "" when none */
    uint64_t dlq_removed;       /* _dlq. topics: dead letters removed */
} sl_topic_info_t;

typedef struct {
    char name[256];
    char pattern[256];
    bool ephemeral;
    bool attached;              /* a consumer is connected */
    uint64_t lag;               /* stored messages not yet acked */
    uint32_t in_flight;
    uint64_t delivered;
    uint64_t redelivered;
    uint64_t dead_lettered;
    uint64_t acked;
    uint64_t cursor;            /* durable: sum over its topics of the acked floor */
    uint64_t dropped;           /* ephemeral: transient messages missed for lack of credit */
    char owner[65];             /* durable: the identity that created it; "" when none */
} sl_sub_info_t;

/* Create topic NAME with retention limits (0 = broker default). Existing
 * topics get the new limits. 0, SL_EINVAL, SL_ETIMEOUT. */
int sl_topic_create(sl_client_t *self, const char *name,
                    uint64_t max_age_ms, uint64_t max_bytes);

/* Fetch topics and subscriptions. On 0, *topics / *subs (each may be NULL
 * when not wanted; caller owns; free()) hold *ntopics / *nsubs entries. */
int sl_stats(sl_client_t *self, sl_topic_info_t **topics, size_t *ntopics,
             sl_sub_info_t **subs, size_t *nsubs);

/* Fetch the broker's counters: calls CB once per counter. 0 or an error. */
int sl_counters(sl_client_t *self,
                void (*cb)(const char *name, uint64_t value, void *arg),
                void *arg);

/* Delete durable subscription NAME and its cursor. Needs to be its owner, a
 * consume grant on NAME or admin on its pattern. 0, SL_ENOTFOUND,
 * SL_EDENIED. */
int sl_sub_remove(sl_client_t *self, const char *name);

/* Identities and grants. Every call below needs the admin permission on
 * '>' at the broker and is a request like sl_topic_create: it waits at
 * most connect_timeout_ms, is resent after a reconnect, and returns 0, the
 * broker's refusal (its text in sl_client_last_error): SL_EDENIED (this
 * client is not an admin), SL_ENOTFOUND (unknown name), SL_EEXIST (name or
 * key registered already), SL_EINVAL, SL_ECOMMAND (a broker without this
 * command); or SL_ETIMEOUT, SL_EAUTH, SL_EVERSION. */

#define SL_PERM_PUBLISH   1u
#define SL_PERM_SUBSCRIBE 2u
#define SL_PERM_ADMIN     4u    /* keys, grants, topics, subscriptions, audit */
#define SL_PERM_CONSUME   8u    /* the pattern matches durable subscription NAMES:
                                   attach to, ack and remove them (not topics) */

typedef struct {
    uint32_t perms;             /* SL_PERM_* bits */
    const char *pattern;        /* topic pattern: '*' one word, '>' the rest (for
                                   SL_PERM_CONSUME, of subscription names); in
                                   a list from sl_key_list owned by the list */
} sl_grant_t;

typedef struct {
    char name[256];
    char public_key[41];        /* Z85 */
    bool revoked;               /* refused at connect; kept for the audit trail */
    uint64_t created_us;        /* registered, microseconds since the epoch */
    uint64_t revoked_us;        /* 0 unless revoked */
    uint32_t sessions;          /* sessions open now */
    sl_grant_t *grants;         /* NGRANTS entries, owned by the list */
    size_t ngrants;
} sl_identity_t;

/* Register NAME (1-255 bytes) with PUBLIC_KEY: 40 Z85 characters, or the
 * path of a file holding it on this machine (a .pub file or a certificate;
 * its public key is sent, never the secret). The new identity has no
 * grants (default deny). A key that cannot be read: SL_EINVAL with the
 * reason in sl_client_last_error, and nothing is sent. */
int sl_key_add(sl_client_t *self, const char *name, const char *public_key);

/* Revoke NAME: its key is refused from now on and its open connections are
 * closed. The identity stays listed, revoked. */
int sl_key_revoke(sl_client_t *self, const char *name);

/* List the identities. On 0, *out (caller owns; sl_identity_list_free) holds
 * *n entries (NULL when 0). */
int sl_key_list(sl_client_t *self, sl_identity_t **out, size_t *n);

/* Free a list from sl_key_list with its grants. NULL-safe. */
void sl_identity_list_free(sl_identity_t *list, size_t n);

/* Give NAME the permissions of GRANTS (N >= 1 entries, borrowed; perms a
 * non-zero set of SL_PERM_* bits, a valid pattern each), or with REVOKE take
 * those bits off its grants with exactly those patterns. */
int sl_grant(sl_client_t *self, const char *name, const sl_grant_t *grants,
             size_t n, bool revoke);

/* Have the broker seal new records with a fresh data key (encryption at
 * rest); older records stay readable. On 0, *key_id (may be NULL) is the
 * new key's id. */
int sl_rotate_key(sl_client_t *self, uint32_t *key_id);

/* ------------------------------------------------------ schema registry */
/* docs/schemas.md. Registering needs admin on '>', binding a topic admin on
 * that topic; reading needs any session. On a refusal the broker's reasons
 * (every incompatibility, with its path) are in sl_client_last_error. */

typedef struct {
    char subject[256];
    uint32_t version;           /* this version */
    uint32_t versions;          /* how many the subject has */
    char compat[16];            /* BACKWARD, FORWARD, FULL or NONE */
    uint64_t created_us;
    char *schema;               /* JSON Schema text (sl_schema_get only; owned:
                                   free with sl_schema_info_clear), else NULL */
} sl_schema_info_t;

/* Register SCHEMA (JSON text) as the next version of SUBJECT; COMPAT (NULL
 * = keep the subject's mode, BACKWARD for a new one) sets the mode. With
 * DRY_RUN only check. *version: the version it got (or would get);
 * *existed: the latest version already was this schema. 0, SL_EINVAL
 * (does not compile, or incompatible), SL_EDENIED, SL_ETIMEOUT. */
int sl_schema_register(sl_client_t *self, const char *subject, const char *schema,
                       const char *compat, bool dry_run, uint32_t *version, bool *existed);

/* SUBJECT@VERSION (0 = latest) into *out. 0, SL_ENOTFOUND, SL_ETIMEOUT. */
int sl_schema_get(sl_client_t *self, const char *subject, uint32_t version,
                  sl_schema_info_t *out);
void sl_schema_info_clear(sl_schema_info_t *info);

/* The latest version of every subject (schema NULL): *out holds *n entries
 * (caller frees with sl_schema_list_free). */
int sl_schema_list(sl_client_t *self, sl_schema_info_t **out, size_t *n);
void sl_schema_list_free(sl_schema_info_t *list, size_t n);

/* Bind TOPIC to SUBJECT@VERSION (0 = the latest at each publish); INVALID
 * "reject" (NULL) or "dlq". SUBJECT NULL or "" removes the binding. 0,
 * SL_ENOTFOUND (no such schema), SL_EINVAL, SL_EDENIED, SL_ETIMEOUT. */
int sl_topic_set_schema(sl_client_t *self, const char *topic, const char *subject,
                        uint32_t version, const char *invalid);

/* ------------------------------------------------------------- mappings */
/* docs/mapping.md. Adding compiles the mapping and checks it against its
 * `from` schema (diagnostics with line:column in sl_client_last_error);
 * needs admin on '>'. Reading needs any session. */

typedef struct {
    char name[257];
    char from[257];             /* SUBJECT@VERSION */
    char to[257];
    uint64_t created_us;
    char *yaml;                 /* sl_mapping_get only (owned: free with
                                   sl_mapping_info_clear), else NULL */
    uint32_t version;           /* 1, 2, ...: each different text added under
                                   the name is the next */
} sl_mapping_info_t;

/* Add (or replace) the mapping in YAML; *out (may be NULL) names it and
 * its version (a text equal to the current one keeps its version). 0,
 * SL_EINVAL (does not compile or check), SL_ENOTFOUND (a schema it names
 * is not registered), SL_EDENIED, SL_ETIMEOUT. */
int sl_mapping_add(sl_client_t *self, const char *yaml, sl_mapping_info_t *out);
int sl_mapping_get(sl_client_t *self, const char *name, sl_mapping_info_t *out);
void sl_mapping_info_clear(sl_mapping_info_t *info);
int sl_mapping_list(sl_client_t *self, sl_mapping_info_t **out, size_t *n);
void sl_mapping_list_free(sl_mapping_info_t *list, size_t n);
/* 0, SL_ENOTFOUND, SL_EDENIED, SL_ETIMEOUT. */
int sl_mapping_remove(sl_client_t *self, const char *name);

/* -------------------------------------------------------------- routing */
/* docs/routing.md. Applying and rolling back need admin on '>'; reading
 * needs any session. On a refusal the broker's reasons (every error of a
 * refused table, one per line: FILE:LINE:COL: route NAME: field: reason)
 * are in sl_client_last_error. EXPECT_VERSION: 0 = any; else the call is
 * refused with SL_ESTALE (409) unless the live version is this one. */

typedef struct {
    uint32_t version;
    uint64_t applied_us;        /* microseconds since the epoch */
    char identity[256];         /* who applied it */
    uint32_t routes;            /* number of routes */
    uint32_t rollback_of;       /* made by rolling back to this version; 0: no */
    char *yaml;                 /* sl_routes_get only (owned: free with
                                   sl_routes_info_clear), else NULL */
} sl_routes_info_t;

/* Apply the table in YAML (LEN bytes) as the next version; with DRY_RUN
 * only validate and diff. *version (may be NULL): the new live version (dry
 * run: the live one); *diff (may be NULL; caller frees; never NULL on 0):
 * a readable diff against the version it replaces, "(no change)" when
 * equal; *changed (may be NULL): false when the table equals the live one.
 * 0, SL_EINVAL (the table is wrong: every error in the last error),
 * SL_ETOOBIG, SL_ESTALE, SL_EDENIED, SL_ETIMEOUT. */
int sl_routes_apply(sl_client_t *self, const char *yaml, size_t len, bool dry_run,
                    uint32_t expect_version, uint32_t *version, char **diff,
                    bool *changed);

/* Version VERSION (0 = the live one) with its YAML into *out (free with
 * sl_routes_info_clear). 0, SL_ENOTFOUND (no such version, or no table
 * applied yet), SL_ETIMEOUT. */
int sl_routes_get(sl_client_t *self, uint32_t version, sl_routes_info_t *out);
void sl_routes_info_clear(sl_routes_info_t *info);

/* Every version, oldest first (yaml NULL): *out holds *n entries (caller
 * frees with sl_routes_list_free); *live (may be NULL) the live version, 0
 * when none was applied. */
int sl_routes_list(sl_client_t *self, sl_routes_info_t **out, size_t *n,
                   uint32_t *live);
void sl_routes_list_free(sl_routes_info_t *list, size_t n);

/* Make a new version whose table is VERSION's. *new_version, *diff,
 * *changed (each may be NULL) as in sl_routes_apply. 0, SL_ENOTFOUND,
 * SL_ESTALE, SL_EDENIED, SL_ETIMEOUT. */
int sl_routes_rollback(sl_client_t *self, uint32_t version, uint32_t expect_version,
                       uint32_t *new_version, char **diff, bool *changed);

typedef struct {
    char name[129];
    uint64_t matched;           /* topic and predicate matched */
    uint64_t delivered;         /* derived messages stored */
    uint64_t dropped;
    uint64_t dead_lettered;     /* legs sent to _dlq.routes (action or failure) */
    uint64_t errors;            /* predicate or mapping failures */
} sl_route_stats_t;

typedef struct {
    uint32_t version;           /* live table version; 0: none */
    uint64_t applied_us;
    uint64_t unrouted;          /* messages no route fired for, since start */
    sl_route_stats_t *routes;   /* NROUTES entries in table order (owned:
                                   free with sl_routing_stats_clear) */
    size_t nroutes;
} sl_routing_stats_t;

/* The broker's routing counters into *out (free with
 * sl_routing_stats_clear). 0 or an error. */
int sl_routing_stats(sl_client_t *self, sl_routing_stats_t *out);
void sl_routing_stats_clear(sl_routing_stats_t *stats);

/* ------------------------------------------------------------- backfill */
/* One chunk of running one route of the live table over a topic's stored
 * messages (docs/routing.md, "Backfill"). */

typedef struct {
    uint64_t from_offset;       /* where the chunk started (a time resolved) */
    uint64_t next_offset;       /* where the next chunk starts */
    uint64_t until_offset;      /* the end the chunk worked towards */
    bool done;                  /* next_offset reached until_offset */
    uint32_t table_version;     /* the live version the route is from */
    uint64_t processed;         /* stored messages looked at */
    uint64_t fired;             /* the route fired (deliver, drop or dlq) */
    uint64_t failed;            /* it failed: a _dlq.routes leg */
    uint64_t skipped;           /* predicate false, or not reached */
    uint64_t already;           /* done before (their trace shows it): nothing done */
    uint64_t delivered;         /* derived messages it stored */
} sl_backfill_t;

/* Run route ROUTE of the live table on at most MAX (0: 100; at most 1000)
 * stored messages of TOPIC from FROM_OFFSET, or, when FROM_TIME_US is not
 * 0, from the first one stored at or after it, and stop before
 * UNTIL_OFFSET (0: the topic's next offset now). Messages whose trace
 * shows the route already fired or failed are skipped, so a chunk may be
 * sent again. Call again from out->next_offset with out->until_offset
 * until out->done. Needs the admin permission on TOPIC. 0, SL_ENOTFOUND
 * (no such route or topic), SL_EINVAL (the route's pattern does not match
 * TOPIC, a bad name), SL_EDENIED, SL_ETIMEOUT. */
int sl_routes_backfill(sl_client_t *self, const char *route, const char *topic,
                       uint64_t from_offset, uint64_t from_time_us, uint64_t until_offset,
                       uint32_t max, sl_backfill_t *out);

/* ---------------------------------------------------------------- trace */
/* What routing did with one stored message (docs/routing.md, "Trace"). */

typedef struct {
    char topic[256];            /* a target topic, or _dlq.routes */
    uint64_t offset;
} sl_trace_leg_t;

typedef struct {
    uint32_t index;             /* the route's position in its table version */
    char route[129];            /* its name in that version */
    char outcome[16];           /* "fired", "skipped" (predicate false), "failed" */
    char action[16];            /* fired: "deliver", "drop" or "dlq"; else "" */
    char error[256];            /* failed: the error */
    sl_trace_leg_t *legs;       /* messages it stored, in order (owned) */
    size_t nlegs;
    uint32_t backfilled;        /* added by `routes backfill`: the table version
                                   the route (INDEX, ROUTE) is from; 0: at ingest */
} sl_trace_step_t;

typedef struct sl_trace sl_trace_t;
struct sl_trace {
    char topic[256];
    uint64_t offset;
    uint64_t ingest_us;         /* when it was stored */
    bool routed;                /* a route's topic pattern matched it: STEPS */
    uint32_t table_version;     /* the version that routed it (not routed: the
                                   one live then; 0: none) */
    sl_trace_step_t *steps;     /* NSTEPS, in evaluation order (owned) */
    size_t nsteps;
    char note[512];             /* not routed: why, in words; "" otherwise */
    bool derived;               /* made by a route: the lineage below */
    char source_topic[256];     /* derived: where it came from */
    uint64_t source_offset;
    char route[129];            /* the route that made it */
    char mapping[129];          /* its mapping, or "" */
    uint32_t lineage_version;   /* the table version that made it */
    uint32_t mapping_version;   /* MAPPING's version that made it (0: none) */
    sl_trace_t *source;         /* derived: the source's own trace (owned;
                                   NULL when not sent) */
};

/* The trace of TOPIC@OFFSET into *out (free with sl_trace_clear). Needs
 * the subscribe permission on TOPIC. 0, SL_ENOTFOUND (no such topic or no
 * message at OFFSET: the last error says which), SL_EDENIED, SL_EINVAL,
 * SL_ETIMEOUT. */
int sl_trace(sl_client_t *self, const char *topic, uint64_t offset, sl_trace_t *out);
void sl_trace_clear(sl_trace_t *trace);

/* ------------------------------------------------- cursors, dead letters */
/* docs/operations.md, "Dead letters and cursors". */

/* Move durable subscription NAME's cursor on TOPIC (NULL: every topic the
 * subscription has a cursor on) so that delivery goes on from OFFSET
 * (START = SL_START_OFFSET; an offset below the topic's first stored one
 * means its first), from the first message stored at or after TIME_US
 * (SL_START_TIME), or from the first / next offset (SL_START_EARLIEST /
 * SL_START_LATEST). Messages from there on count as not acked; messages
 * before it as acked; what is in flight is forgotten (a late ack of it is
 * refused). Works while a consumer is attached (delivery resumes from the
 * new cursor; what it had received before the seek still reaches it, and
 * messages it acked before are handed out again, not dropped as
 * duplicates). Needs to be the subscription's owner, a consume grant on
 * NAME or admin on its pattern; audited. *moved (may be NULL): topics
 * whose cursor moved. 0, SL_ENOTFOUND (no such subscription, or TOPIC is
 * not one of it), SL_EINVAL, SL_EDENIED, SL_ETIMEOUT. */
int sl_sub_seek(sl_client_t *self, const char *name, const char *topic,
                sl_start_t start, uint64_t offset, uint64_t time_us,
                uint32_t *moved);

/* The dead letters of TOPIC (a name starting "_dlq.") still there: at
 * most MAX (0: 100; at most 1000) from offset FROM on, oldest first,
 * without the ones removed (sl_dlq_remove). *out (caller frees: each with
 * sl_msg_destroy, then the array with free) holds *n messages (their
 * attempt is 0; acking them is SL_EINVAL); *next (may be NULL) the offset
 * to list from next (the topic's next offset once everything was seen);
 * *remaining (may be NULL) how many dead letters TOPIC holds that were
 * not removed. Needs the subscribe permission on TOPIC. 0, SL_ENOTFOUND,
 * SL_EINVAL (not a _dlq. topic), SL_EDENIED, SL_ETIMEOUT. */
int sl_dlq_list(sl_client_t *self, const char *topic, uint64_t from, uint32_t max,
                sl_msg_t ***out, size_t *n, uint64_t *next, uint64_t *remaining);

/* Mark dead letter TOPIC@OFFSET as removed: listing no longer shows it and
 * it no longer counts. The record stays until retention trims it (the
 * trace and the audit still find it). Needs the admin permission on TOPIC;
 * audited. Removing one already removed is 0. 0, SL_ENOTFOUND, SL_EINVAL,
 * SL_EDENIED, SL_ETIMEOUT. */
int sl_dlq_remove(sl_client_t *self, const char *topic, uint64_t offset);

/* Redrive dead letter TOPIC@OFFSET: read it (it must not be removed),
 * publish its payload, content type and headers (without the dead-letter
 * headers; with "sluice-redriven-from: TOPIC@OFFSET") to its original
 * topic (the dlq-topic header of a subscription's dead letter, TOPIC's
 * tail for _dlq.schema.TOPIC) with msg_id "redrive:TOPIC@OFFSET", wait
 * for the durable confirm, then sl_dlq_remove it. A failure between the
 * publish and the remove leaves the dead letter in place; redriving it
 * again within the broker's dedup_window stores nothing twice. _dlq.routes
 * legs are refused (SL_EINVAL: re-publishing the source would route it
 * again; use `sluice routes backfill`). *to (may be NULL, TO_LEN bytes)
 * the topic it went to, *new_offset (may be NULL) its offset there. 0,
 * the publish's or the remove's code (the reason in the last error). */
int sl_dlq_redrive(sl_client_t *self, const char *topic, uint64_t offset,
                   char *to, size_t to_len, uint64_t *new_offset);

#ifdef __cplusplus
}
#endif
#endif
