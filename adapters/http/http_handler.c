/*  http_handler - one HTTP request of `sluice-http serve`, on
 *  libmicrohttpd's thread: route, auth, the in-flight bound, size and
 *  content-type checks, reading the body, parsing it (http_parse), then a
 *  job for the broker thread while the connection is suspended; resumed,
 *  it sends the job's answer. Owns the per-request state (freed in the
 *  completion callback). Calls no libsluice function: clients belong to
 *  the broker thread.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "http_common.h"
#include "http_parse.h"
#include "http_serve_int.h"

#define S_MAX_HEADERS 32            /* Sluice-Header-* per request */
#define S_MAX_TOKENS 1000           /* per ack or nack */
#define S_MAX_PULL 1000             /* max= */
#define S_MAX_WAIT_S 30             /* wait= */

typedef struct {
    http_server_t *srv;
    struct MHD_Connection *conn;
    uint64_t id;
    http_route_t route;
    bool counted;               /* counted in srv->inflight */
    bool answered;              /* a response was queued */
    bool overflow;              /* the body passed max_body: dropped */
    bool submitted;             /* the job went to the broker thread */
    http_buf_t body;
    http_job_t job;
    http_item_t *items;         /* owned (batch) or &single */
    http_item_t single;
    sl_header_t headers[S_MAX_HEADERS];
    char keys[S_MAX_HEADERS][64];
    size_t nheaders;
    int header_error;           /* a Sluice-Header-* that is not valid */
    char **tokens;              /* owned */
} s_req_t;

/* ----------------------------------------------------------- responses */

/* Queue STATUS with BODY (LEN bytes, taken: freed by libmicrohttpd). */
static enum MHD_Result s_send(s_req_t *r, int status, char *body, size_t len,
                              unsigned retry_after, const char *allow)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char ra[16];

    if (!body) {
        body = strdup("{\"error\":{\"code\":\"adapter_out_of_memory\",\"status\":503,"
                      "\"reason\":\"out of memory\"}}\n");
        if (!body)
            return MHD_NO;
        len = strlen(body);
        status = 503;
    }
    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (retry_after) {
        snprintf(ra, sizeof ra, "%u", retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"sluice\"");
    if (atomic_load(&r->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->answered = true;
    return ret;
}

/* An error answered here (not by the broker thread), logged once. */
static enum MHD_Result s_error(s_req_t *r, int status, const char *code,
                               const char *reason, const char *extra)
{
    http_job_t tmp;
    char q[256];

    memset(&tmp, 0, sizeof tmp);
    http_job_error(&tmp, status, code, reason, extra);
    http_log(status >= 500 ? HTTP_LOG_WARN : HTTP_LOG_INFO, "refused",
             "req=%" PRIu64 " status=%d code=%s name=%s reason=%s", r->id, status,
             code, r->route.name, http_log_quote(reason, q, sizeof q));
    return s_send(r, status, tmp.body, tmp.body_len, tmp.retry_after,
                  status == 405 ? r->route.allow : NULL);
}

static const char *s_header(s_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static const char *s_arg(s_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* --------------------------------------------------------- first call */

static enum MHD_Result s_collect_header(void *cls, enum MHD_ValueKind kind,
                                        const char *key, const char *value)
{
    s_req_t *r = cls;
    char k[64];
    int is;

    (void) kind;
    is = http_header_key(key, k, sizeof k);
    if (is == 0)
        return MHD_YES;
    /* msg-id comes from Idempotency-Key (or the batch's keys) only. */
    if (is < 0 || strcmp(k, "msg-id") == 0 || r->nheaders == S_MAX_HEADERS
        || !value) {
        r->header_error = r->nheaders == S_MAX_HEADERS && is > 0 ? 2 : 1;
        return MHD_NO;
    }
    memcpy(r->keys[r->nheaders], k, sizeof k);
    r->headers[r->nheaders].key = r->keys[r->nheaders];
    r->headers[r->nheaders].value = value;  /* valid for the request */
    r->nheaders++;
    return MHD_YES;
}

/* Checks that need no body. Returns MHD_YES with nothing queued to go on
 * reading, or the result of queueing the answer. */
static enum MHD_Result s_begin(s_req_t *r, const char *url, const char *method)
{
    http_server_t *srv = r->srv;
    const char *v, *token;
    uint64_t n;
    char err[256];
    int id = 0;

    if (http_route_parse(method, url, &r->route, err, sizeof err) != 0)
        return s_error(r, 400, "bad_request", err, NULL);
    if (r->route.kind == HTTP_ROUTE_NONE)
        return s_error(r, 404, "not_found", "no such endpoint: POST "
                       "/v1/topics/{topic}, GET /v1/subscriptions/{name}/messages, "
                       "POST .../ack, POST .../nack, GET /healthz, GET /readyz", NULL);
    if (!r->route.method_ok) {
        snprintf(err, sizeof err, "%s takes %s only", url, r->route.allow);
        return s_error(r, 405, "method_not_allowed", err, NULL);
    }
    if (r->route.kind == HTTP_ROUTE_HEALTHZ) {
        char *ok = strdup("{\"status\":\"ok\"}\n");

        return s_send(r, 200, ok, ok ? strlen(ok) : 0, 0, NULL);
    }
    if (atomic_load(&srv->draining))
        return s_error(r, 503, "shutting_down", "the adapter is shutting down; "
                       "retry with the same keys", NULL);
    if (r->route.kind == HTTP_ROUTE_READYZ) {
        char *ok;

        if (!http_broker_ready(srv->broker))
            return s_error(r, 503, "broker_unavailable", "the broker is not "
                           "reachable", NULL);
        ok = strdup("{\"status\":\"ready\"}\n");
        return s_send(r, 200, ok, ok ? strlen(ok) : 0, 0, NULL);
    }
    if (srv->tokens) {
        token = http_bearer(s_header(r, MHD_HTTP_HEADER_AUTHORIZATION));
        if (!token)
            return s_error(r, 401, "unauthorized", "send Authorization: Bearer "
                           "TOKEN (from `sluice-http token add`)", NULL);
        id = http_tokens_lookup(srv->tokens, token);
        if (id < 0)
            return s_error(r, 401, "unauthorized", "the bearer token is not "
                           "known", NULL);
    }
    r->job.client = (size_t)id;
    if (atomic_fetch_add(&srv->inflight, 1) >= srv->max_inflight) {
        atomic_fetch_sub(&srv->inflight, 1);
        snprintf(err, sizeof err, "%u requests in flight, the most --max-inflight "
                 "allows; retry after the Retry-After seconds", srv->max_inflight);
        return s_error(r, 429, "too_many_requests", err, NULL);
    }
    r->counted = true;
    v = s_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (v && strcasecmp(v, "identity") != 0)
        return s_error(r, 415, "unsupported_media_type", "Content-Encoding is "
                       "not supported: send the body uncompressed", NULL);
    v = s_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (v && http_parse_u64(v, &n) == 0 && n > srv->max_body) {
        snprintf(err, sizeof err, "the body has %" PRIu64 " bytes, more than "
                 "--max-body (%" PRIu64 ")", n, srv->max_body);
        return s_error(r, 413, "too_large", err, NULL);
    }
    v = s_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (r->route.kind == HTTP_ROUTE_PUBLISH && v
        && strncasecmp(v, "multipart/", 10) == 0)
        return s_error(r, 415, "unsupported_media_type", "multipart bodies are "
                       "not taken: send one message per request, or NDJSON "
                       "(application/x-ndjson) for a batch", NULL);
    if ((r->route.kind == HTTP_ROUTE_ACK || r->route.kind == HTTP_ROUTE_NACK)
        && !http_content_type_is_json(v))
        return s_error(r, 415, "unsupported_media_type", "send the tokens as "
                       "application/json", NULL);
    return MHD_YES;
}

/* ------------------------------------------------------------ the job */

static void s_done(http_job_t *job, void *arg)
{
    s_req_t *r = arg;

    (void) job;
    MHD_resume_connection(r->conn);
}

/* The pull's query into the job. 0, or -1 after answering. */
static int s_pull_args(s_req_t *r, enum MHD_Result *ret)
{
    http_job_t *job = &r->job;
    const char *v;
    uint64_t n;

    job->max = 10;
    if ((v = s_arg(r, "max"))) {
        if (http_parse_u64(v, &n) != 0 || n < 1 || n > S_MAX_PULL) {
            *ret = s_error(r, 400, "bad_request", "max= must be a number from "
                           "1 to 1000", NULL);
            return -1;
        }
        job->max = (uint32_t)n;
    }
    if ((v = s_arg(r, "wait"))) {
        if (http_parse_u64(v, &n) != 0 || n > S_MAX_WAIT_S) {
            *ret = s_error(r, 400, "bad_request", "wait= must be whole seconds "
                           "from 0 to 30", NULL);
            return -1;
        }
        job->wait_ms = (uint32_t)n * 1000;
    }
    if ((v = s_arg(r, "ack_wait"))) {
        if (http_parse_u64(v, &n) != 0 || n < 1 || n > 43200) {
            *ret = s_error(r, 400, "bad_request", "ack_wait= must be whole "
                           "seconds from 1 to 43200", NULL);
            return -1;
        }
        job->ack_wait_ms = (uint32_t)n * 1000;
    }
    if ((v = s_arg(r, "topic"))) {
        if (!*v || strlen(v) >= sizeof job->pattern) {
            *ret = s_error(r, 400, "bad_request", "topic= must be a topic or "
                           "pattern of 1 to 255 bytes", NULL);
            return -1;
        }
        snprintf(job->pattern, sizeof job->pattern, "%s", v);
    }
    job->start = SL_START_LATEST;
    if ((v = s_arg(r, "from"))) {
        if (strcmp(v, "earliest") == 0)
            job->start = SL_START_EARLIEST;
        else if (strcmp(v, "latest") == 0)
            job->start = SL_START_LATEST;
        else if (v[0] == '@' && http_parse_u64(v + 1, &n) == 0) {
            job->start = SL_START_TIME;
            job->start_time_us = n;
        }
        else if (http_parse_u64(v, &n) == 0) {
            job->start = SL_START_OFFSET;
            job->start_offset = n;
        }
        else {
            *ret = s_error(r, 400, "bad_request", "from= must be earliest, "
                           "latest, an offset, or @MICROSECONDS since the epoch",
                           NULL);
            return -1;
        }
    }
    return 0;
}

/* The publish body into the job. 0, or -1 after answering. */
static int s_publish_args(s_req_t *r, enum MHD_Result *ret)
{
    http_job_t *job = &r->job;
    const char *ctype = s_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *idem = s_header(r, "Idempotency-Key");
    const char *key_field = s_arg(r, "key_field");
    char err[512], extra[64];
    uint32_t bad_line = 0;
    int rc;

    if (!key_field)
        key_field = s_header(r, "Sluice-Key-Field");
    if (idem && !http_idem_key_valid(idem)) {
        *ret = s_error(r, 400, "bad_idempotency_key", "Idempotency-Key must "
                       "be 1 to 200 printable ASCII characters", NULL);
        return -1;
    }
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, s_collect_header, r);
    if (r->header_error) {
        *ret = s_error(r, 400, "bad_header", r->header_error == 1
                       ? "a Sluice-Header-KEY header needs a KEY of letters, "
                         "digits, '-', '_' or '.' (at most 63), not msg-id "
                         "(send Idempotency-Key)"
                       : "more than 32 Sluice-Header-* headers", NULL);
        return -1;
    }
    job->headers = r->headers;
    job->nheaders = r->nheaders;
    job->content_type = ctype;
    if (http_content_type_is_ndjson(ctype)) {
        rc = http_ndjson_parse(r->body.data ? r->body.data : "", r->body.len,
                               key_field && *key_field ? key_field : NULL, idem,
                               r->srv->max_batch, &r->items, &job->nitems,
                               &bad_line, err, sizeof err);
        if (rc == SL_ETOOBIG) {
            *ret = s_error(r, 413, "too_large", err, NULL);
            return -1;
        }
        if (rc) {
            snprintf(extra, sizeof extra, "\"line\":%u", bad_line);
            *ret = s_error(r, rc == SL_EINVAL ? 400 : 503, rc == SL_EINVAL
                           ? "bad_ndjson" : "adapter_out_of_memory", err,
                           bad_line ? extra : NULL);
            return -1;
        }
        job->batch = true;
        job->items = r->items;
        return 0;
    }
    if (http_content_type_is_json(ctype)
        && !http_json_valid(r->body.data ? r->body.data : "", r->body.len)) {
        *ret = s_error(r, 400, "bad_json", "the body is not one JSON text, "
                       "and Content-Type says JSON", NULL);
        return -1;
    }
    r->single.data = r->body.data ? r->body.data : "";
    r->single.len = r->body.len;
    if (idem)
        snprintf(r->single.msg_id, sizeof r->single.msg_id, "%s", idem);
    job->items = &r->single;
    job->nitems = 1;
    return 0;
}

static enum MHD_Result s_submit(s_req_t *r)
{
    http_job_t *job = &r->job;
    enum MHD_Result ret = MHD_YES;
    char err[512];

    if (r->overflow) {
        snprintf(err, sizeof err, "the body is larger than --max-body (%" PRIu64
                 " bytes)", r->srv->max_body);
        return s_error(r, 413, "too_large", err, NULL);
    }
    snprintf(job->name, sizeof job->name, "%s", r->route.name);
    job->req = r->id;
    job->done = s_done;
    job->done_arg = r;
    switch (r->route.kind) {
    case HTTP_ROUTE_PUBLISH:
        job->kind = HTTP_JOB_PUBLISH;
        if (s_publish_args(r, &ret) < 0)
            return ret;
        break;
    case HTTP_ROUTE_PULL:
        job->kind = HTTP_JOB_PULL;
        if (s_pull_args(r, &ret) < 0)
            return ret;
        break;
    case HTTP_ROUTE_ACK:
    case HTTP_ROUTE_NACK: {
        int rc;

        job->kind = r->route.kind == HTTP_ROUTE_ACK ? HTTP_JOB_ACK : HTTP_JOB_NACK;
        rc = http_tokens_parse(r->body.data ? r->body.data : "", r->body.len,
                               S_MAX_TOKENS, &r->tokens, &job->ntokens,
                               &job->delay_ms, err, sizeof err);
        if (rc == SL_ETOOBIG)
            return s_error(r, 413, "too_large", err, NULL);
        if (rc)
            return s_error(r, rc == SL_EINVAL ? 400 : 503, rc == SL_EINVAL
                           ? "bad_json" : "adapter_out_of_memory", err, NULL);
        if (job->kind == HTTP_JOB_ACK && job->delay_ms)
            return s_error(r, 400, "bad_json", "an ack takes no delay_ms", NULL);
        job->tokens = r->tokens;
        break;
    }
    default:
        return s_error(r, 500, "internal", "no handler for this route", NULL);
    }
    MHD_suspend_connection(r->conn);
    r->submitted = true;
    if (http_broker_submit(r->srv->broker, job) != 0) {
        http_job_error(job, 503, "shutting_down", "the adapter is shutting "
                       "down; retry with the same keys", NULL);
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

/* ------------------------------------------------------- the callbacks */

enum MHD_Result http_handler_access(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version, const char *upload_data,
                                    size_t *upload_data_size, void **con_cls)
{
    http_server_t *srv = cls;
    s_req_t *r = *con_cls;
    char *body;

    (void) version;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->srv = srv;
        r->conn = conn;
        r->id = atomic_fetch_add(&srv->next_req, 1) + 1;
        http_buf_init(&r->body);
        *con_cls = r;
        return s_begin(r, url, method);
    }
    if (r->answered) {
        *upload_data_size = 0;          /* the rest of a refused body */
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->overflow && r->body.len + *upload_data_size <= srv->max_body)
            http_buf_add(&r->body, upload_data, *upload_data_size);
        else {
            r->overflow = true;
            http_buf_clear(&r->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->body.oom)
        return s_error(r, 503, "adapter_out_of_memory", "out of memory", NULL);
    if (!r->submitted)
        return s_submit(r);
    /* Resumed: the broker thread has answered. */
    body = r->job.body;
    r->job.body = NULL;
    return s_send(r, r->job.status, body, r->job.body_len, r->job.retry_after, NULL);
}

void http_handler_completed(void *cls, struct MHD_Connection *conn,
                            void **con_cls, enum MHD_RequestTerminationCode toe)
{
    http_server_t *srv = cls;
    s_req_t *r = *con_cls;

    (void) conn;
    if (!r)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->submitted)
        /* The job was answered before this (libmicrohttpd completes no
         * suspended request); the client went away before reading it. */
        http_log(HTTP_LOG_INFO, "client_gone", "req=%" PRIu64 " status=%d "
                 "name=%s", r->id, r->job.status, r->route.name);
    if (r->counted)
        atomic_fetch_sub(&srv->inflight, 1);
    if (r->items != &r->single)
        free(r->items);
    free(r->tokens);
    free(r->job.body);
    http_buf_clear(&r->body);
    free(r);
    *con_cls = NULL;
}
