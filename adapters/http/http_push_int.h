/*  http_push_int - what the files of `sluice-http push` share: the settled
 *  command line (http_push.c parses it) and the delivery engine
 *  (http_push_deliver.c: slots of messages being POSTed, curl multi,
 *  signing, retries with backoff, ack / dead-letter). Main thread only:
 *  the engine and the sluice client are driven from the one loop in
 *  http_push.c.  */
#ifndef HTTP_PUSH_INT_H
#define HTTP_PUSH_INT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sluice.h"
#include "http_sign.h"

/* Bytes of a failed answer's body kept for the log. */
#define HTTP_PUSH_EXCERPT 200

typedef struct {
    const char *subscription;   /* durable subscription name */
    const char *url;            /* where every message is POSTed */
    const char *topic;          /* --topic: pattern to create it with; NULL =
                                   it must exist */
    sl_start_t start;           /* --from, for a new subscription */
    bool from_given;            /* --from was typed (it needs --topic) */
    uint64_t start_offset;
    uint64_t start_time_us;
    const char *secret_file;    /* --secret-file */
    const char *cacert;         /* --cacert: CA bundle for https, or NULL */
    uint32_t max_attempts;      /* POSTs per message before it is dead-lettered */
    uint64_t backoff_min_ms;    /* first retry's ceiling */
    uint64_t backoff_max_ms;    /* ceiling of every wait, Retry-After too */
    bool jitter;                /* full jitter (false: the ceiling itself) */
    uint64_t timeout_ms;        /* one POST, connect to last byte */
    uint32_t concurrency;       /* POSTs in flight; 1 = in order */
} http_push_conf_t;

typedef struct http_pusher http_pusher_t;

/* The engine for CONF (borrowed, must outlive it) signing with SIGN
 * (borrowed). Returns 0 and *out (caller owns), SL_ENOMEM, or SL_ESYS when
 * libcurl cannot start (ERR says why). */
int http_pusher_new(const http_push_conf_t *conf, const http_sign_t *sign,
                    http_pusher_t **out, char *err, size_t errlen);

/* Abandon what is held (not acked: the broker redelivers it) and free.
 * NULL-safe; sets *self_p to NULL. */
void http_pusher_destroy(http_pusher_t **self_p);

/* True when no further message can be taken now (every slot busy). */
bool http_pusher_full(const http_pusher_t *self);

/* Messages held (waiting or being POSTed). */
size_t http_pusher_held(const http_pusher_t *self);

/* Transfers in flight now. */
size_t http_pusher_active(const http_pusher_t *self);

/* Take *MSG_P (ownership, *MSG_P set to NULL): POSTed at the next
 * http_pusher_step. A message already dead-lettered once and delivered
 * again (the subscription's max_deliver is above 1) is nacked at once
 * instead. Call only when !http_pusher_full. */
void http_pusher_add(http_pusher_t *self, sl_msg_t **msg_p);

/* Start the POSTs that are due, move the transfers on without waiting and
 * settle the finished ones (ack, retry, dead-letter, 410). */
void http_pusher_step(http_pusher_t *self);

/* Wait for transfer activity at most MS milliseconds. */
void http_pusher_poll(http_pusher_t *self, int ms);

/* Milliseconds until the next held message is due (0: now), -1 when none
 * waits. */
int64_t http_pusher_next_ms(const http_pusher_t *self);

/* Stopping: let go of every message not being POSTed (no ack; the broker
 * redelivers it) and start no new POST. */
void http_pusher_stop(http_pusher_t *self);

/* True once an endpoint answered 410 Gone (the engine stopped itself). */
bool http_pusher_gone(const http_pusher_t *self);

/* Counters for the last log line. */
typedef struct {
    uint64_t delivered;         /* acked after a 2xx */
    uint64_t retries;           /* failed attempts that were retried */
    uint64_t dead_lettered;     /* nacked after the last attempt */
} http_pusher_stats_t;
void http_pusher_stats(const http_pusher_t *self, http_pusher_stats_t *out);

#endif
