/*  http_pull - pull, ack and nack over HTTP on the broker thread (see
 *  http_broker_int.h). A subscription is attached through the identity's
 *  client on its first pull (created with topic= and from=, or found
 *  among the broker's subscriptions). A message handed to an HTTP client
 *  is kept here as a lease under a token "SLOT.GEN.RANDOM" until it is
 *  acked, nacked, or its ack wait passes; then it is nacked with no delay
 *  so the broker delivers it again at once (libsluice would otherwise drop
 *  the broker's redelivery of a message it still holds). Tokens live in
 *  the adapter's memory: after a restart they are unknown, and the
 *  broker redelivers the messages after their ack wait.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "http_broker_int.h"
#include "http_common.h"

#define S_DEFAULT_ACK_WAIT_MS 30000     /* the broker's default */

typedef struct {
    sl_msg_t *msg;              /* owned; NULL = free slot */
    uint32_t gen;               /* bumped when the slot is reused */
    uint64_t rand;              /* the token's secret part */
    uint64_t expires_ms;
} s_lease_t;

struct http_sub {
    http_sub_t *next;
    char name[256];
    char pattern[256];
    sl_sub_t *sub;              /* borrowed from the client */
    uint32_t ack_wait_ms;
    s_lease_t *leases;          /* NLEASES slots, owned */
    size_t nleases;
    size_t used;
    http_job_t *waiting;        /* pulls waiting for messages, FIFO */
};

static http_sub_t *s_find(http_conn_t *conn, const char *name)
{
    http_sub_t *s;

    for (s = conn->subs; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

/* A free lease slot of SUB for MSG; its index or -1 (out of memory). */
static long s_lease_add(http_sub_t *sub, sl_msg_t *msg, uint64_t now)
{
    size_t i;

    if (sub->used == sub->nleases) {
        size_t n = sub->nleases ? sub->nleases * 2 : 64;
        s_lease_t *grown = realloc(sub->leases, n * sizeof *grown);

        if (!grown)
            return -1;
        memset(grown + sub->nleases, 0, (n - sub->nleases) * sizeof *grown);
        sub->leases = grown;
        sub->nleases = n;
    }
    for (i = 0; i < sub->nleases && sub->leases[i].msg; i++)
        ;
    sub->leases[i].msg = msg;
    sub->leases[i].gen++;
    randombytes_buf(&sub->leases[i].rand, sizeof sub->leases[i].rand);
    sub->leases[i].expires_ms = now + sub->ack_wait_ms;
    sub->used++;
    return (long)i;
}

static void s_lease_drop(http_sub_t *sub, size_t i)
{
    sl_msg_destroy(&sub->leases[i].msg);
    sub->used--;
}

/* The slot TOKEN names in SUB, or -1. */
static long s_lease_find(const http_sub_t *sub, const char *token)
{
    unsigned long slot, gen;
    unsigned long long rand;
    char tail;

    if (sscanf(token, "%lx.%lx.%llx%c", &slot, &gen, &rand, &tail) != 3
        || slot >= sub->nleases || !sub->leases[slot].msg
        || sub->leases[slot].gen != gen || sub->leases[slot].rand != rand)
        return -1;
    return (long)slot;
}

/* One message as JSON into B, leased under a new token. */
static void s_msg_json(http_sub_t *sub, sl_msg_t *msg, uint64_t now, http_buf_t *b)
{
    const char *ct = sl_msg_content_type(msg), *k, *v;
    const void *payload;
    size_t len, i, nh = sl_msg_header_count(msg);
    long slot = s_lease_add(sub, msg, now);

    payload = sl_msg_payload(msg, &len);
    http_buf_str(b, "{\"topic\":");
    http_buf_json_str(b, sl_msg_topic(msg), strlen(sl_msg_topic(msg)));
    http_buf_printf(b, ",\"offset\":%" PRIu64 ",\"attempt\":%u,\"ingest_us\":%"
                    PRIu64 ",\"content_type\":", sl_msg_offset(msg),
                    sl_msg_attempt(msg), sl_msg_ingest_us(msg));
    http_buf_json_str(b, ct, strlen(ct));
    http_buf_str(b, ",\"headers\":{");
    for (i = 0; i < nh; i++) {
        if (sl_msg_header_at(msg, i, &k, &v) != 0)
            continue;
        if (i)
            http_buf_str(b, ",");
        http_buf_json_str(b, k, strlen(k));
        http_buf_str(b, ":");
        http_buf_json_str(b, v, strlen(v));
    }
    http_buf_str(b, "}");
    /* JSON stays JSON (inline); anything else is base64. */
    if (http_content_type_is_json(ct) && http_json_valid(payload, len)) {
        http_buf_str(b, ",\"payload\":");
        http_buf_add(b, payload, len);
    }
    else {
        http_buf_str(b, ",\"payload_base64\":");
        http_buf_base64(b, payload, len);
    }
    if (slot >= 0)
        http_buf_printf(b, ",\"ack_token\":\"%lx.%lx.%" PRIx64 "\"}",
                        (unsigned long)slot, (unsigned long)sub->leases[slot].gen,
                        sub->leases[slot].rand);
    else {
        /* No room to remember it: the broker redelivers it after its ack
         * wait; the client gets no token it could not use. */
        http_buf_str(b, ",\"ack_token\":null}");
        sl_msg_destroy(&msg);
    }
}

/* Take up to JOB->max messages of SUB; answer JOB when it got any, or
 * when FORCE (deadline, no wait). Returns true when answered. */
static bool s_try(http_sub_t *sub, http_job_t *job, bool force)
{
    uint64_t now = http_now_ms();
    sl_msg_t *msg;
    http_buf_t b;
    uint32_t got = 0;

    http_buf_init(&b);
    http_buf_str(&b, "{\"messages\":[");
    while (got < job->max && sl_sub_next(sub->sub, 0, &msg) == 0) {
        if (got)
            http_buf_str(&b, ",");
        s_msg_json(sub, msg, now, &b);
        got++;
    }
    if (!got && !force) {
        http_buf_clear(&b);
        return false;
    }
    http_buf_str(&b, "]}\n");
    if (b.oom) {
        http_buf_clear(&b);
        http_job_error(job, 503, "adapter_out_of_memory", "out of memory", NULL);
    }
    else {
        job->status = 200;
        job->body = http_buf_take(&b, &job->body_len);
    }
    http_broker_answer(job);
    return true;
}

/* Attach subscription JOB->name on CONN; NULL after answering JOB. */
static http_sub_t *s_attach(http_conn_t *conn, http_job_t *job)
{
    sl_sub_options_t so;
    sl_sub_info_t *subs = NULL;
    size_t nsubs = 0, i;
    http_sub_t *sub;
    const char *code;
    bool retry;
    char pattern[256] = "";
    int rc, status;

    if (!sl_client_connected(conn->client)) {
        http_job_error(job, 503, "broker_unavailable", "the broker is not "
                       "reachable; retry later", NULL);
        job->retry_after = 2;
        http_broker_answer(job);
        return NULL;
    }
    if (job->pattern[0])
        snprintf(pattern, sizeof pattern, "%s", job->pattern);
    else {
        rc = sl_stats(conn->client, NULL, NULL, &subs, &nsubs);
        for (i = 0; rc == 0 && i < nsubs; i++)
            if (!subs[i].ephemeral && strcmp(subs[i].name, job->name) == 0)
                snprintf(pattern, sizeof pattern, "%s", subs[i].pattern);
        free(subs);
        if (rc) {
            status = http_status_of(rc, NULL, &code, &retry);
            http_job_error(job, status, code, sl_client_last_error(conn->client)[0]
                           ? sl_client_last_error(conn->client) : sl_strerror(rc), NULL);
            http_broker_answer(job);
            return NULL;
        }
        if (!pattern[0]) {
            http_job_error(job, 404, "unknown_subscription", "no such "
                           "subscription; create it on the first pull with "
                           "?topic=PATTERN (and from=earliest|latest|OFFSET)", NULL);
            http_broker_answer(job);
            return NULL;
        }
    }
    sub = calloc(1, sizeof *sub);
    if (!sub) {
        http_job_error(job, 503, "adapter_out_of_memory", "out of memory", NULL);
        http_broker_answer(job);
        return NULL;
    }
    snprintf(sub->name, sizeof sub->name, "%s", job->name);
    snprintf(sub->pattern, sizeof sub->pattern, "%s", pattern);
    sub->ack_wait_ms = job->ack_wait_ms ? job->ack_wait_ms : S_DEFAULT_ACK_WAIT_MS;
    sl_sub_options_init(&so);
    so.name = sub->name;
    so.pattern = sub->pattern;
    so.start = job->pattern[0] ? job->start : SL_START_DEFAULT;
    so.start_offset = job->start_offset;
    so.start_time_us = job->start_time_us;
    so.credit = HTTP_PULL_CREDIT;
    so.ack_wait_ms = job->ack_wait_ms;
    rc = sl_subscribe(conn->client, &so, &sub->sub);
    if (rc) {
        const char *why = sl_client_last_error(conn->client);

        status = http_status_of(rc, why, &code, &retry);
        if (rc == SL_EEXIST)
            code = "subscription_conflict";
        http_job_error(job, status, code, why[0] ? why : sl_strerror(rc), NULL);
        if (retry)
            job->retry_after = 2;
        http_broker_answer(job);
        free(sub);
        return NULL;
    }
    http_log(HTTP_LOG_INFO, "subscribed", "identity=%s subscription=%s pattern=%s",
             conn->name, sub->name, sub->pattern);
    sub->next = conn->subs;
    conn->subs = sub;
    return sub;
}

void http_pull_job(http_broker_t *self, http_conn_t *conn, http_job_t *job)
{
    http_sub_t *sub = s_find(conn, job->name);
    http_job_t **pp;

    (void) self;
    if (!sub && !(sub = s_attach(conn, job)))
        return;
    if (job->pattern[0] && strcmp(job->pattern, sub->pattern) != 0) {
        http_job_error(job, 409, "subscription_conflict", "the subscription "
                       "exists with another topic pattern; leave topic= out or "
                       "give the same", NULL);
        http_broker_answer(job);
        return;
    }
    /* Earlier waiters are served first. */
    if (!sub->waiting && s_try(sub, job, job->wait_ms == 0))
        return;
    job->deadline_ms = http_now_ms() + job->wait_ms;
    for (pp = &sub->waiting; *pp; pp = &(*pp)->next)
        ;
    *pp = job;
}

void http_ack_job(http_broker_t *self, http_conn_t *conn, http_job_t *job)
{
    http_sub_t *sub = s_find(conn, job->name);
    http_buf_t acked, unknown;
    size_t i, nacked = 0, nunknown = 0;
    long slot;
    int rc;

    (void) self;
    if (!sub) {
        http_job_error(job, 404, "unknown_subscription", "no message of this "
                       "subscription was pulled through this adapter (tokens "
                       "do not outlive a restart: the broker redelivers those "
                       "messages after their ack wait)", NULL);
        http_broker_answer(job);
        return;
    }
    http_buf_init(&acked);
    http_buf_init(&unknown);
    for (i = 0; i < job->ntokens; i++) {
        slot = s_lease_find(sub, job->tokens[i]);
        rc = slot < 0 ? SL_ENOTFOUND
           : job->kind == HTTP_JOB_ACK ? sl_ack(sub->leases[slot].msg)
           : sl_nack(sub->leases[slot].msg, job->delay_ms);
        if (slot >= 0)
            s_lease_drop(sub, (size_t)slot);
        http_buf_t *b = rc ? &unknown : &acked;

        http_buf_str(b, (rc ? nunknown++ : nacked++) ? "," : "");
        http_buf_json_str(b, job->tokens[i], strlen(job->tokens[i]));
    }
    if (nunknown == 0) {
        job->status = 200;
        http_buf_t out;

        http_buf_init(&out);
        http_buf_printf(&out, "{\"%s\":%zu}\n",
                        job->kind == HTTP_JOB_ACK ? "acked" : "nacked", nacked);
        job->body = http_buf_take(&out, &job->body_len);
        http_broker_answer(job);
    }
    else {
        http_buf_t extra;

        http_buf_init(&extra);
        http_buf_printf(&extra, "\"%s\":[%s],\"unknown\":[%s]",
                        job->kind == HTTP_JOB_ACK ? "acked" : "nacked",
                        acked.data ? acked.data : "",
                        unknown.data ? unknown.data : "");
        http_job_error(job, 409, "unknown_token", "some tokens are unknown: "
                       "already settled, past their ack wait (the message is "
                       "redelivered), or from before a restart; the others "
                       "were settled", extra.oom ? NULL : extra.data);
        http_buf_clear(&extra);
        http_broker_answer(job);
    }
    http_buf_clear(&acked);
    http_buf_clear(&unknown);
}

void http_pull_service(http_broker_t *self, http_conn_t *conn, uint64_t now)
{
    bool leases = now >= self->next_lease_check;
    http_sub_t *sub;
    size_t i;

    if (leases)
        self->next_lease_check = now + 100;
    for (sub = conn->subs; sub; sub = sub->next) {
        http_job_t **pp = &sub->waiting, *job;

        while ((job = *pp)) {
            http_job_t *next = job->next;

            /* s_try answers (and gives the job back) or leaves it as is. */
            if (s_try(sub, job, now >= job->deadline_ms))
                *pp = next;
            else
                pp = &job->next;
        }
        for (i = 0; leases && i < sub->nleases; i++) {
            s_lease_t *l = &sub->leases[i];

            if (l->msg && now >= l->expires_ms) {
                sl_nack(l->msg, 0);
                s_lease_drop(sub, i);
            }
        }
    }
}

void http_pull_close(http_broker_t *self, http_conn_t *conn)
{
    http_sub_t *sub;
    size_t i;

    (void) self;
    while ((sub = conn->subs)) {
        conn->subs = sub->next;
        while (sub->waiting) {
            http_job_t *job = sub->waiting;

            sub->waiting = job->next;
            job->next = NULL;
            http_job_error(job, 503, "shutting_down", "the adapter is shutting "
                           "down; pull again", NULL);
            http_broker_answer(job);
        }
        for (i = 0; i < sub->nleases; i++)
            if (sub->leases[i].msg)
                s_lease_drop(sub, i);
        free(sub->leases);
        sl_unsubscribe(&sub->sub, false);
        free(sub);
    }
}
