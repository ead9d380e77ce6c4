/*  http_broker - the broker thread of `sluice-http serve`: it owns every
 *  libsluice client (one per identity), takes jobs from the HTTP threads
 *  through a locked queue, publishes asynchronously (many requests in
 *  flight, so the broker's group commit batches them) and answers a job
 *  only after every message's durable confirm, a final nack, or the
 *  publish timeout; it also runs pulls (long-poll), acks and nacks.
 *  A job's answer is handed back through its done callback, called once on
 *  the broker thread (or on the submitting thread when refused). Only
 *  http_broker_submit, http_broker_ready and http_broker_stop may be called
 *  from other threads.  */
#ifndef HTTP_BROKER_H
#define HTTP_BROKER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "http_parse.h"
#include "sluice.h"

typedef struct http_broker http_broker_t;
typedef struct http_job http_job_t;

typedef enum {
    HTTP_JOB_PUBLISH,
    HTTP_JOB_PULL,
    HTTP_JOB_ACK,
    HTTP_JOB_NACK,
} http_job_kind_t;

/* Called once with the answer filled in; ARG as given in the job. */
typedef void (http_job_done_fn)(http_job_t *job, void *arg);

/* A request for the broker thread. The submitter fills the "in" part and
 * owns the job: it may free it only after done was called. The broker
 * thread writes the "out" part, then calls done. */
struct http_job {
    /* in */
    http_job_kind_t kind;
    size_t client;              /* identity index (0 with --no-auth) */
    uint64_t req;               /* request number, for the log */
    char name[256];             /* topic (publish) or subscription */
    http_item_t *items;         /* publish: NITEMS messages (owned by the
                                   submitter; payloads point into its body) */
    size_t nitems;
    bool batch;                 /* publish: an NDJSON body (answers per line) */
    const char *content_type;   /* publish: borrowed, NULL = none */
    sl_header_t *headers;       /* publish: borrowed, NHEADERS entries */
    size_t nheaders;
    char pattern[256];          /* pull: topic= ("" = not given) */
    sl_start_t start;           /* pull: from= when the subscription is made */
    uint64_t start_offset;
    uint64_t start_time_us;
    uint32_t ack_wait_ms;       /* pull: ack_wait= when made (0 = broker's) */
    uint32_t max;               /* pull: most messages (1..1000) */
    uint32_t wait_ms;           /* pull: long-poll bound */
    char **tokens;              /* ack/nack: NTOKENS (borrowed) */
    size_t ntokens;
    uint32_t delay_ms;          /* nack */
    http_job_done_fn *done;
    void *done_arg;
    /* out */
    int status;                 /* HTTP status */
    char *body;                 /* JSON (owned by the job: the submitter frees) */
    size_t body_len;
    unsigned retry_after;       /* seconds; 0 = no Retry-After header */
    const char *code;           /* the error code (static), NULL on 2xx */
    char reason[160];           /* the error's reason, cut: for the log */
    /* the broker thread's */
    http_job_t *next;
    uint64_t deadline_ms;
};

typedef struct {
    const sl_options_t *clients;    /* NCLIENTS client options (borrowed for
                                       http_broker_new only) */
    const char *const *names;       /* NCLIENTS identity names, for the log */
    size_t nclients;
    uint32_t publish_timeout_ms;    /* answer 503 for what is unconfirmed then */
    uint32_t drain_ms;              /* on stop, wait this long for confirms */
} http_broker_config_t;

/* Create the clients (they connect in the background) and start the
 * thread. Returns 0 and *out (caller owns), or the sl_client_new code with
 * ERR naming the identity and the reason. */
int http_broker_new(const http_broker_config_t *config, http_broker_t **out,
                    char *err, size_t errlen);

/* Queue JOB (borrowed until done). Returns 0, or SL_EUNAVAIL when the
 * broker thread has stopped: done is then not called. Any thread. */
int http_broker_submit(http_broker_t *self, http_job_t *job);

/* True when every client has a session with the broker. Any thread. */
bool http_broker_ready(const http_broker_t *self);

/* Refuse new jobs (503), wait up to drain_ms for the confirms of those in
 * flight, answer every job still open, flush acks and stop the thread.
 * Returns when the thread has ended. Main thread. */
void http_broker_stop(http_broker_t *self);

/* Stop (when not yet stopped), destroy the clients. NULL-safe. */
void http_broker_destroy(http_broker_t **self_p);

/* Fill JOB's answer with the error object {"error":{"code":CODE,
 * "status":STATUS,"reason":REASON}} (EXTRA, when not NULL, is more members
 * of the error object, without a leading comma). */
void http_job_error(http_job_t *job, int status, const char *code,
                    const char *reason, const char *extra);

/* The HTTP status, error code and whether a Retry-After goes with it, for
 * an SDK result RC (with the broker's TEXT, may be NULL). */
int http_status_of(int rc, const char *text, const char **code, bool *retry);

#endif
