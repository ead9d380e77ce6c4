/*  console_int - what the files of `sluice-console serve` share: the
 *  server (console_t, made by console_serve.c, read-only once the daemon
 *  runs), one identity per token file entry with its libsluice client
 *  under a mutex (the SDK wants one thread at a time per client), one
 *  request as a handler sees it, and the handlers of each area
 *  (console_api_*.c). Handlers run on libmicrohttpd's threads; a handler
 *  touches its identity's client only through console_client(), which
 *  takes the identity's lock until the request ends or console_release().  */
#ifndef CONSOLE_INT_H
#define CONSOLE_INT_H
#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <microhttpd.h>
#include "http_token.h"
#include "sluice.h"

#define CONSOLE_MAX_SEGS 8          /* path segments after /api/ */
#define CONSOLE_MAX_BODY (4u << 20) /* largest request body */

/* One topic's last seen next_offset, for its publish rate. */
typedef struct {
    char name[256];
    uint64_t next_offset;
} console_topic_mark_t;

/* One broker identity the console acts as. */
typedef struct {
    char name[256];             /* the identity (tokens file), for whoami */
    char cert[PATH_MAX];        /* its certificate, "" for a plain-text client */
    sl_client_t *client;        /* owned; used only under LOCK */
    pthread_mutex_t lock;
    /* The previous counters sample (overview rates), under LOCK. */
    bool have_sample;
    uint64_t sample_us;         /* CLOCK_MONOTONIC, microseconds */
    uint64_t published, delivered, acked;
    /* The previous topics sample (per-topic publish rates), under LOCK. */
    console_topic_mark_t *marks;
    size_t nmarks;
    uint64_t marks_us;
} console_id_t;

/* The server; read-only while the daemon runs. */
typedef struct {
    console_id_t *ids;          /* NIDS, owned */
    size_t nids;
    http_tokens_t *tokens;      /* owned; NULL with --no-auth */
    char web_root[PATH_MAX];    /* "" when there is none to serve */
    char sluice[PATH_MAX];      /* the `sluice` program offline checks run */
    char endpoint[512];         /* the broker, for the CLI and the overview */
    char server_key[4096];      /* "" = plain text */
    unsigned timeout_s;         /* broker calls and CLI runs */
} console_t;

/* One request as a handler sees it. */
typedef struct {
    console_t *con;
    console_id_t *id;           /* who the token maps to */
    struct MHD_Connection *conn;
    const char *method;
    char *seg[CONSOLE_MAX_SEGS];/* path segments after /api/ (borrowed) */
    size_t nseg;
    const char *body;           /* request body, NUL-terminated ("" when none) */
    size_t body_len;
    cJSON *in;                  /* BODY parsed when it is JSON, else NULL */
    bool locked;                /* this request holds ID's lock */
    unsigned status;            /* the answer: HTTP status ... */
    cJSON *out;                 /* ... and its JSON (owned; NULL = {}) */
} console_req_t;

typedef void (console_handler_fn)(console_req_t *r);

/* ---------------------------------------------------------- console_serve.c */

/* The identity's client, taking its lock for the rest of the request
 * (or until console_release). Never NULL. */
sl_client_t *console_client(console_req_t *r);

/* Let go of the identity's lock before a long wait that needs no client
 * (a CLI run). The next console_client takes it again. */
void console_release(console_req_t *r);

/* The query parameter KEY, or NULL. Borrowed for the request. */
const char *console_query(console_req_t *r, const char *key);

/* ?from=OFFSET and ?limit=N (default 20, at most 200) into *FROM (left
 * alone when absent: *FROM_SET false) and *LIMIT. False after answering
 * 400. (console_api_overview.c) */
bool console_paging(console_req_t *r, uint64_t *from, bool *from_set, uint64_t *limit);

/* ------------------------------------------------------------ answers */

/* Answer 200 with OUT (taken). */
void console_ok(console_req_t *r, cJSON *out);

/* Answer the error for SL_E* code RC (the contract's map: 403 denied, 404
 * not_found, 400 invalid, 409 conflict, 504 timeout, 502 broker) with
 * message FMT. */
void console_fail(console_req_t *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same after a failed call on the identity's client: the message is
 * WHAT, then the broker's reason (sl_client_last_error) or the code's
 * name. */
void console_fail_sl(console_req_t *r, int rc, const char *what);

/* Answer STATUS with CODE and message FMT (codes outside the SL_E* map:
 * unauthorized, failed). */
void console_answer_error(console_req_t *r, unsigned status, const char *code,
                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* 500 failed: the `sluice` program could not be run (console_exec's
 * code RC and reason ERR). */
void console_fail_run(console_req_t *r, int rc, const char *err);

/* The {"code","message"} object for RC and MESSAGE (for lists of
 * failures inside a 200 answer). Caller owns. */
cJSON *console_error_obj(int rc, const char *message);

/* ----------------------------------------------------- the handlers */

/* console_api_overview.c */
void console_api_whoami(console_req_t *r);
void console_api_overview(console_req_t *r);
void console_api_topics(console_req_t *r);
void console_api_topic_messages(console_req_t *r);
void console_api_subscriptions(console_req_t *r);
void console_api_sub_seek(console_req_t *r);

/* console_api_dlq.c */
void console_api_dlq(console_req_t *r);
void console_api_dlq_messages(console_req_t *r);
void console_api_dlq_redrive(console_req_t *r);
void console_api_dlq_remove(console_req_t *r);

/* console_api_registry.c */
void console_api_schemas(console_req_t *r);
void console_api_schema(console_req_t *r);
void console_api_mappings(console_req_t *r);
void console_api_mapping(console_req_t *r);
void console_api_mapping_test(console_req_t *r);

/* console_api_routes.c */
void console_api_routes(console_req_t *r);
void console_api_routes_version(console_req_t *r);
void console_api_routes_diff(console_req_t *r);
void console_api_routes_stats(console_req_t *r);
void console_api_routes_check(console_req_t *r);
void console_api_routes_apply(console_req_t *r);
void console_api_routes_rollback(console_req_t *r);

/* console_api_audit.c */
void console_api_audit(console_req_t *r);

#endif
