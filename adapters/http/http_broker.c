/*  http_broker - the broker thread of `sluice-http serve` (http_broker.h):
 *  the job queue, the clients and their loop, and publishing.
 *
 *  A publish request becomes one sl_publish per message with a confirm
 *  callback; the job is answered when the last confirm arrived, so many
 *  requests are in flight at once and the SDK and the broker batch them.
 *  200 only when every message has its durable ack (a duplicate counts:
 *  its offset is the original one). Otherwise the first failure's status,
 *  with one result per line of a batch. A request still unconfirmed after
 *  publish_timeout_ms (the broker went away) is answered 503 with what is
 *  known; its confirms may still come and are then only logged, and a
 *  retry with the same keys is deduplicated by the broker.
 *
 *  Waiting: http_broker_submit writes an eventfd when the queue was
 *  empty, and the thread sleeps in sl_poll_fd on its client and that
 *  descriptor at once, so a job and a broker frame each wake it at once
 *  (no naps: a request costs its round trip, not a poll interval). The
 *  clients send with linger 0 (http_serve.c): what the thread published
 *  from the jobs it took leaves before it waits again, in one batch, and
 *  the jobs that came meanwhile make the next one. With several clients
 *  (identities) the thread polls each without waiting and waits on the
 *  eventfd alone between turns, briefly while publishes are open.  */
#include "http_broker_int.h"
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "http_common.h"

/* One client: the longest sleep between turns (publish timeouts, pull
 * deadlines and leases are checked that often when nothing happens). */
#define S_WAIT_MS 10
/* Several clients: after a job or a broker event the loop stays "hot"
 * this long, waiting S_HOT_WAIT_US on the eventfd between turns (their
 * sockets are not in that wait), else S_IDLE_WAIT_US. */
#define S_HOT_MS 20
#define S_HOT_WAIT_US 50
#define S_IDLE_WAIT_US 500

/* One message's outcome. */
typedef struct {
    s_pub_t *pub;               /* back pointer for the callback */
    int rc;                     /* 0 stored; else the nack or refusal */
    bool settled;               /* confirm seen (or refused at once) */
    bool duplicate;
    uint64_t offset;
    char *text;                 /* the broker's reason (owned), or NULL */
} s_res_t;

/* A publish request with confirms to come. Outlives its job when the job
 * was answered at the timeout. */
struct s_pub {
    s_pub_t *next;              /* the connection's list */
    http_job_t *job;            /* NULL once answered */
    uint64_t req;
    size_t n;
    size_t pending;             /* results not settled */
    s_res_t *res;               /* N, owned */
    uint32_t *lines;            /* N line numbers (0 for a single message) */
};

/* --------------------------------------------------------------- answers */

int http_status_of(int rc, const char *text, const char **code, bool *retry)
{
    *retry = false;
    switch (rc) {
    case SL_EINVAL:
        *code = text && strncmp(text, "schema ", 7) == 0 ? "schema_invalid"
                                                         : "invalid";
        return 422;
    case SL_EDENIED:   *code = "forbidden"; return 403;
    case SL_ETOOBIG:   *code = "too_large"; return 413;
    case SL_ENOTFOUND: *code = "not_found"; return 404;
    case SL_EEXIST:    *code = "conflict"; return 409;
    case SL_EBUSY:     *code = "busy"; *retry = true; return 429;
    case SL_EFULL:     *code = "storage_full"; *retry = true; return 503;
    case SL_EAUTH:     *code = "broker_refused_adapter"; *retry = true; return 503;
    case SL_EUNAVAIL:
    case SL_ETIMEOUT:  *code = "broker_unavailable"; *retry = true; return 503;
    default:           *code = "broker_error"; *retry = true; return 502;
    }
}

void http_job_error(http_job_t *job, int status, const char *code,
                    const char *reason, const char *extra)
{
    http_buf_t b;

    http_buf_init(&b);
    http_buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"status\":%d,\"reason\":",
                    code, status);
    http_buf_json_str(&b, reason, strlen(reason));
    if (extra) {
        http_buf_str(&b, ",");
        http_buf_str(&b, extra);
    }
    http_buf_str(&b, "}}\n");
    free(job->body);
    job->status = status;
    job->code = code;
    snprintf(job->reason, sizeof job->reason, "%s", reason);
    job->body = http_buf_take(&b, &job->body_len);
    if (status == 429 || status == 503)
        job->retry_after = job->retry_after ? job->retry_after : 1;
}

void http_broker_answer(http_job_t *job)
{
    char q[256];

    if (job->status >= 400)
        http_log(job->status >= 500 ? HTTP_LOG_WARN : HTTP_LOG_INFO, "refused",
                 "req=%" PRIu64 " status=%d code=%s name=%s reason=%s", job->req,
                 job->status, job->code ? job->code : "-", job->name,
                 http_log_quote(job->reason, q, sizeof q));
    job->done(job, job->done_arg);
}

/* The answer of PUB from its results: 200 with the offsets, or the first
 * failure's status with per-line results. */
static void s_pub_answer(s_pub_t *pub, bool timed_out)
{
    http_job_t *job = pub->job;
    const s_res_t *first = NULL;
    http_buf_t b, extra;
    const char *code = "not_confirmed";
    bool retry = true;
    int status = 503;
    size_t i, stored = 0;

    for (i = 0; i < pub->n; i++) {
        if (pub->res[i].settled && pub->res[i].rc == 0)
            stored++;
        else if (!first && pub->res[i].settled)
            first = &pub->res[i];
    }
    http_buf_init(&b);
    if (stored == pub->n) {
        http_buf_str(&b, "{\"offsets\":[");
        for (i = 0; i < pub->n; i++)
            http_buf_printf(&b, "%s%" PRIu64, i ? "," : "", pub->res[i].offset);
        http_buf_str(&b, "]}\n");
        job->status = 200;
        job->body = http_buf_take(&b, &job->body_len);
        goto done;
    }
    if (first)
        status = http_status_of(first->rc, first->text, &code, &retry);
    http_buf_init(&extra);
    http_buf_printf(&extra, "\"stored\":%zu", stored);
    if (first && strcmp(code, "schema_invalid") == 0 && !job->batch) {
        http_buf_str(&extra, ",\"errors\":");
        http_schema_errors(first->text, &extra);
    }
    if (job->batch) {
        http_buf_str(&extra, ",\"lines\":[");
        for (i = 0; i < pub->n; i++) {
            const s_res_t *r = &pub->res[i];
            const char *c = "not_confirmed";
            bool rt;
            int st = 503;

            http_buf_printf(&extra, "%s{\"line\":%u", i ? "," : "", pub->lines[i]);
            if (r->settled && r->rc == 0) {
                http_buf_printf(&extra, ",\"offset\":%" PRIu64 "}", r->offset);
                continue;
            }
            if (r->settled)
                st = http_status_of(r->rc, r->text, &c, &rt);
            http_buf_printf(&extra, ",\"status\":%d,\"code\":\"%s\",\"reason\":", st, c);
            if (r->settled) {
                const char *t = r->text ? r->text : sl_strerror(r->rc);

                http_buf_json_str(&extra, t, strlen(t));
            }
            else
                http_buf_str(&extra, "\"no durable ack in time: retry with the "
                             "same keys\"");
            if (strcmp(c, "schema_invalid") == 0) {
                http_buf_str(&extra, ",\"errors\":");
                http_schema_errors(r->text, &extra);
            }
            http_buf_str(&extra, "}");
        }
        http_buf_str(&extra, "]");
    }
    {
        char reason[1024];

        if (first)
            snprintf(reason, sizeof reason, "%s%s%s",
                     job->batch ? "some lines were not stored: " : "",
                     first->text ? first->text : sl_strerror(first->rc),
                     job->batch ? "; see lines" : "");
        else
            snprintf(reason, sizeof reason, "%s: %zu of %zu messages have no "
                     "durable ack yet; retry with the same Idempotency-Key",
                     timed_out ? "the broker did not confirm in time" : "stopping",
                     pub->n - stored, pub->n);
        http_job_error(job, status, code, reason, extra.oom ? NULL : extra.data);
    }
    http_buf_clear(&extra);
    if (retry && !job->retry_after)
        job->retry_after = 2;
done:
    pub->job = NULL;
    http_broker_answer(job);
}

static void s_pub_free(s_pub_t *pub)
{
    size_t i;

    for (i = 0; i < pub->n; i++)
        free(pub->res[i].text);
    free(pub->res);
    free(pub->lines);
    free(pub);
}

/* Unlink and free the publishes of CONN that are answered and settled. */
static void s_pubs_reap(http_conn_t *conn)
{
    s_pub_t **pp = &conn->pubs, *p;

    while ((p = *pp)) {
        if (!p->job && p->pending == 0) {
            *pp = p->next;
            s_pub_free(p);
        }
        else
            pp = &p->next;
    }
}

static void s_on_confirm(const sl_confirm_t *c, void *arg)
{
    s_res_t *r = arg;
    s_pub_t *pub = r->pub;

    assert(!r->settled);
    r->settled = true;
    r->rc = c->rc;
    r->offset = c->offset;
    r->duplicate = c->duplicate;
    if (c->rc && c->text)
        r->text = strdup(c->text);
    pub->pending--;
    if (!pub->job)
        http_log(HTTP_LOG_INFO, "late_confirm", "req=%" PRIu64 " rc=%s offset=%"
                 PRIu64, pub->req, c->rc ? sl_strerror(c->rc) : "stored", c->offset);
    else if (pub->pending == 0)
        s_pub_answer(pub, false);
}

static void s_publish(http_broker_t *self, http_conn_t *conn, http_job_t *job)
{
    s_pub_t *pub = calloc(1, sizeof *pub);
    sl_message_t m;
    size_t i;
    int rc;

    if (!pub || !(pub->res = calloc(job->nitems, sizeof *pub->res))
        || !(pub->lines = calloc(job->nitems, sizeof *pub->lines))) {
        if (pub)
            s_pub_free(pub);
        http_job_error(job, 503, "adapter_out_of_memory", "out of memory", NULL);
        http_broker_answer(job);
        return;
    }
    pub->job = job;
    pub->req = job->req;
    pub->n = pub->pending = job->nitems;
    job->deadline_ms = http_now_ms() + self->publish_timeout_ms;
    pub->next = conn->pubs;
    conn->pubs = pub;
    for (i = 0; i < job->nitems; i++) {
        const http_item_t *it = &job->items[i];

        pub->res[i].pub = pub;
        pub->lines[i] = it->line;
        memset(&m, 0, sizeof m);
        m.topic = job->name;
        m.payload = it->data;
        m.len = it->len;
        m.content_type = job->batch ? "application/json" : job->content_type;
        m.headers = job->headers;
        m.nheaders = job->nheaders;
        m.msg_id = it->msg_id[0] ? it->msg_id : NULL;
        rc = sl_publish(conn->client, &m, s_on_confirm, &pub->res[i], NULL);
        if (rc) {
            const char *why = sl_client_last_error(conn->client);

            pub->res[i].settled = true;
            pub->res[i].rc = rc;
            pub->res[i].text = strdup(why && *why ? why : sl_strerror(rc));
            pub->pending--;
        }
    }
    /* Every message refused at once: nothing waits for a confirm. */
    if (pub->pending == 0 && pub->job)
        s_pub_answer(pub, false);
}

/* Publishes of CONN unconfirmed past their deadline (or all, STOP). */
static void s_pubs_expire(http_conn_t *conn, uint64_t now, bool stop)
{
    s_pub_t *p;

    for (p = conn->pubs; p; p = p->next)
        if (p->job && (stop || now >= p->job->deadline_ms))
            s_pub_answer(p, !stop);
}

/* ------------------------------------------------------------ the loop */

static void s_dispatch(http_broker_t *self, http_job_t *job)
{
    http_conn_t *conn;

    assert(job->client < self->nconns);
    conn = &self->conns[job->client];
    if (atomic_load(&self->stopping)) {
        http_job_error(job, 503, "shutting_down", "the adapter is shutting "
                       "down; retry with the same keys", NULL);
        http_broker_answer(job);
        return;
    }
    if (job->kind == HTTP_JOB_PUBLISH && !sl_client_connected(conn->client)) {
        /* Nothing queued: the client is told at once, not after the
         * timeout, and retries later with the same keys. */
        http_job_error(job, 503, "broker_unavailable", "the broker is not "
                       "reachable; nothing was stored; retry later with the "
                       "same keys", NULL);
        job->retry_after = 2;
        http_broker_answer(job);
        return;
    }
    switch (job->kind) {
    case HTTP_JOB_PUBLISH: s_publish(self, conn, job); break;
    case HTTP_JOB_PULL:    http_pull_job(self, conn, job); break;
    case HTTP_JOB_ACK:
    case HTTP_JOB_NACK:    http_ack_job(self, conn, job); break;
    }
}

/* Log CONN's session changes; true while it is connected. */
static bool s_conn_state(http_conn_t *c)
{
    bool up = sl_client_connected(c->client);

    if (up != c->connected) {
        c->connected = up;
        if (up)
            http_log(HTTP_LOG_INFO, "broker_connected", "identity=%s", c->name);
        else
            http_log(HTTP_LOG_WARN, "broker_lost", "identity=%s", c->name);
    }
    return up;
}

/* Wait on the eventfd alone, at most US microseconds. */
static void s_wait_wake(http_broker_t *self, long us)
{
    struct pollfd p = { .fd = self->wake_fd, .events = POLLIN };
    struct timespec ts = { 0, us * 1000 };

    (void) ppoll(&p, 1, &ts, NULL);
}

/* Do every client's I/O, then sleep until a job or a broker frame comes
 * (one client) or briefly (several, HOT: publishes are open). Returns the
 * events seen. */
static int s_poll(http_broker_t *self, bool hot)
{
    int events = 0, n;
    bool all = true, woke = false;
    size_t i;

    if (self->nconns == 1) {
        n = sl_poll_fd(self->conns[0].client, self->wake_fd, S_WAIT_MS, &woke);
        events = n > 0 ? n : 0;
        all = s_conn_state(&self->conns[0]);
    }
    else {
        for (i = 0; i < self->nconns; i++) {
            n = sl_poll(self->conns[i].client, 0);
            events += n > 0 ? n : 0;
            all = s_conn_state(&self->conns[i]) && all;
        }
        if (!events)
            s_wait_wake(self, hot ? S_HOT_WAIT_US : S_IDLE_WAIT_US);
    }
    atomic_store(&self->ready, all);
    return events;
}

/* Take the queued jobs. The eventfd is read first: a job queued after
 * the take writes it again, so the next wait wakes for it. */
static http_job_t *s_take(http_broker_t *self)
{
    http_job_t *jobs;
    uint64_t v;

    if (read(self->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        http_log(HTTP_LOG_WARN, "wake_failed", "errno=%d", errno);
    pthread_mutex_lock(&self->mu);
    jobs = self->queue;
    self->queue = self->tail = NULL;
    self->woken = false;
    pthread_mutex_unlock(&self->mu);
    return jobs;
}

/* Wake the thread (any thread). */
static void s_wake(http_broker_t *self)
{
    uint64_t one = 1;

    if (write(self->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        http_log(HTTP_LOG_WARN, "wake_failed", "errno=%d", errno);
}

static bool s_busy(const http_broker_t *self)
{
    size_t i;

    for (i = 0; i < self->nconns; i++) {
        const s_pub_t *p;

        for (p = self->conns[i].pubs; p; p = p->next)
            if (p->job)
                return true;
    }
    return false;
}

static void *s_run(void *arg)
{
    http_broker_t *self = arg;
    uint64_t stop_at = 0, now = http_now_ms(), hot_until = 0;
    http_job_t *jobs, *job;
    size_t i;

    for (;;) {
        jobs = s_take(self);
        if (jobs)
            hot_until = now + S_HOT_MS;
        while ((job = jobs)) {
            jobs = job->next;
            job->next = NULL;
            s_dispatch(self, job);
        }
        if (s_poll(self, now < hot_until) > 0)
            hot_until = now + S_HOT_MS;
        now = http_now_ms();
        for (i = 0; i < self->nconns; i++) {
            s_pubs_expire(&self->conns[i], now, false);
            s_pubs_reap(&self->conns[i]);
            http_pull_service(self, &self->conns[i], now);
        }
        if (atomic_load(&self->stopping)) {
            if (!stop_at) {
                stop_at = now + self->drain_ms;
                for (i = 0; i < self->nconns; i++)
                    http_pull_close(self, &self->conns[i]);
            }
            if (!s_busy(self) || now >= stop_at)
                break;
        }
    }
    /* Close the queue, then answer what came in meanwhile and what is
     * still unconfirmed: nothing is left unanswered. */
    pthread_mutex_lock(&self->mu);
    self->closed = true;
    jobs = self->queue;
    self->queue = self->tail = NULL;
    pthread_mutex_unlock(&self->mu);
    while ((job = jobs)) {
        jobs = job->next;
        s_dispatch(self, job);
    }
    for (i = 0; i < self->nconns; i++) {
        s_pubs_expire(&self->conns[i], now, true);
        /* Acks queued by the last requests go out before the end. */
        sl_flush(self->conns[i].client, 1000);
    }
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

int http_broker_new(const http_broker_config_t *config, http_broker_t **out,
                    char *err, size_t errlen)
{
    http_broker_t *self = calloc(1, sizeof *self);
    char why[512];
    size_t i;
    int rc = SL_ENOMEM;

    *out = NULL;
    if (!self || !(self->conns = calloc(config->nclients, sizeof *self->conns))) {
        snprintf(err, errlen, "out of memory");
        free(self);
        return SL_ENOMEM;
    }
    pthread_mutex_init(&self->mu, NULL);
    self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->wake_fd < 0) {
        snprintf(err, errlen, "cannot make the broker thread's eventfd: %s",
                 strerror(errno));
        pthread_mutex_destroy(&self->mu);
        free(self->conns);
        free(self);
        return SL_ESYS;
    }
    atomic_init(&self->stopping, false);
    atomic_init(&self->ready, false);
    self->publish_timeout_ms = config->publish_timeout_ms;
    self->drain_ms = config->drain_ms;
    for (i = 0; i < config->nclients; i++) {
        http_conn_t *c = &self->conns[i];

        snprintf(c->name, sizeof c->name, "%s", config->names[i]);
        rc = sl_client_new(&config->clients[i], &c->client);
        if (rc) {
            why[0] = '\0';
            sl_options_check(&config->clients[i], why, sizeof why);
            snprintf(err, errlen, "identity %s: %s (%s)", c->name,
                     why[0] ? why : "cannot create the client", sl_strerror(rc));
            goto fail;
        }
        self->nconns++;
    }
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) {
        snprintf(err, errlen, "cannot start the broker thread");
        rc = SL_ESYS;
        goto fail;
    }
    self->started = true;
    *out = self;
    return 0;
fail:
    http_broker_destroy(&self);
    return rc;
}

int http_broker_submit(http_broker_t *self, http_job_t *job)
{
    bool wake = false;
    int rc = 0;

    job->next = NULL;
    pthread_mutex_lock(&self->mu);
    if (self->closed)
        rc = SL_EUNAVAIL;
    else {
        if (self->tail)
            self->tail = self->tail->next = job;
        else
            self->queue = self->tail = job;
        /* One write per take: the jobs behind it ride along. */
        wake = !self->woken;
        self->woken = true;
    }
    pthread_mutex_unlock(&self->mu);
    if (wake)
        s_wake(self);
    return rc;
}

bool http_broker_ready(const http_broker_t *self)
{
    return atomic_load(&((http_broker_t *)self)->ready)
        && !atomic_load(&((http_broker_t *)self)->stopping);
}

void http_broker_stop(http_broker_t *self)
{
    if (!self->started)
        return;
    atomic_store(&self->stopping, true);
    s_wake(self);
    pthread_join(self->thread, NULL);
    self->started = false;
}

void http_broker_destroy(http_broker_t **self_p)
{
    http_broker_t *self = self_p ? *self_p : NULL;
    size_t i;

    if (!self)
        return;
    http_broker_stop(self);
    for (i = 0; i < self->nconns; i++) {
        http_conn_t *c = &self->conns[i];

        /* The client first: it calls no confirm callback once destroyed,
         * so the publish records can go after it. */
        sl_client_destroy(&c->client);
        while (c->pubs) {
            s_pub_t *p = c->pubs;

            c->pubs = p->next;
            s_pub_free(p);
        }
    }
    free(self->conns);
    close(self->wake_fd);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}
