/*  http_push_deliver - the delivery engine of `sluice-http push`: each held
 *  message is POSTed (libcurl multi, at most `concurrency` at once) with
 *  its content type and the Standard Webhooks headers, and settled by the
 *  answer: a 2xx acks it; 410 stops the engine (the message stays
 *  unacked); anything else (another status, a 3xx since redirects are not
 *  followed, a timeout, no connection) is retried after a backoff with full
 *  jitter, or after the receiver's Retry-After on 429/503, until the last
 *  attempt, which nacks it into the subscription's dead-letter queue.
 *
 *  Retries happen here, not through the broker: the message stays in
 *  flight at the broker (the subscription's ack_wait covers the whole
 *  schedule) so a later message cannot overtake it, and a subscription
 *  made by `push` has max_deliver 1, so that one nack dead-letters it.
 *  The nack's reason ("HTTP <status>: <body's start>", or the transfer's
 *  error) ends the dead letter's dlq-reason; the log line has it too.
 *  Main thread only; owns its curl handles and the messages it holds.  */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <sodium.h>
#include "http_parse.h"
#include "http_common.h"
#include "http_push_int.h"

#define S_ID_MAX 300            /* "topic/offset": topics are <= 255 bytes */
#define S_DONE_MAX 256          /* dead-lettered ids remembered */
#define S_HEADER_VALUE_MAX 4096 /* longer message headers are not sent */

typedef struct {
    http_pusher_t *owner;
    sl_msg_t *msg;              /* owned; NULL = free slot */
    char id[S_ID_MAX];          /* webhook-id: topic/offset */
    uint32_t attempt;           /* POSTs started for MSG */
    uint64_t due_ms;            /* when the next POST may start (mono) */
    uint64_t start_ms;          /* when the current POST started */
    bool active;                /* its transfer is in the multi handle */
    CURL *easy;                 /* owned, reused for every attempt */
    struct curl_slist *hdrs;    /* the current attempt's request headers */
    char excerpt[HTTP_PUSH_EXCERPT + 1];    /* start of the answer's body */
    size_t excerpt_len;
    char curl_err[CURL_ERROR_SIZE];
} s_slot_t;

struct http_pusher {
    const http_push_conf_t *conf;   /* borrowed */
    const http_sign_t *sign;        /* borrowed */
    CURLM *multi;
    s_slot_t *slots;                /* CONF->concurrency entries */
    size_t nslots;
    size_t held, active;
    bool stopping;                  /* start nothing, hold nothing new */
    bool gone;                      /* a 410 was answered */
    char (*done)[S_ID_MAX];         /* ring of dead-lettered ids */
    size_t done_head, done_n;
    http_pusher_stats_t stats;
};

/* Keep the first HTTP_PUSH_EXCERPT bytes of the answer; take the rest
 * without keeping it (returning less would fail the transfer). */
static size_t s_on_body(char *data, size_t size, size_t n, void *arg)
{
    s_slot_t *slot = arg;
    size_t len = size * n;
    size_t room = HTTP_PUSH_EXCERPT - slot->excerpt_len;
    size_t take = len < room ? len : room;

    memcpy(slot->excerpt + slot->excerpt_len, data, take);
    slot->excerpt_len += take;
    slot->excerpt[slot->excerpt_len] = '\0';
    return len;
}

int http_pusher_new(const http_push_conf_t *conf, const http_sign_t *sign,
                    http_pusher_t **out, char *err, size_t errlen)
{
    http_pusher_t *self = calloc(1, sizeof *self);
    int rc = SL_ENOMEM;

    *out = NULL;
    if (!self)
        goto fail;
    self->conf = conf;
    self->sign = sign;
    self->nslots = conf->concurrency;
    self->slots = calloc(self->nslots, sizeof *self->slots);
    self->done = calloc(S_DONE_MAX, sizeof *self->done);
    if (!self->slots || !self->done)
        goto fail;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK
        || !(self->multi = curl_multi_init())) {
        http_errf(err, errlen, "libcurl cannot start");
        rc = SL_ESYS;
        goto fail;
    }
    for (size_t i = 0; i < self->nslots; i++) {
        self->slots[i].owner = self;
        self->slots[i].easy = curl_easy_init();
        if (!self->slots[i].easy) {
            http_errf(err, errlen, "libcurl cannot make a transfer handle");
            rc = SL_ESYS;
            goto fail;
        }
    }
    *out = self;
    return 0;
fail:
    http_pusher_destroy(&self);
    return rc;
}

/* Let go of SLOT's message without settling it. */
static void s_release(http_pusher_t *self, s_slot_t *slot)
{
    if (slot->active) {
        curl_multi_remove_handle(self->multi, slot->easy);
        slot->active = false;
        self->active--;
    }
    curl_slist_free_all(slot->hdrs);
    slot->hdrs = NULL;
    if (slot->msg) {
        sl_msg_destroy(&slot->msg);
        self->held--;
    }
}

void http_pusher_destroy(http_pusher_t **self_p)
{
    http_pusher_t *self;

    if (!self_p || !*self_p)
        return;
    self = *self_p;
    for (size_t i = 0; self->slots && i < self->nslots; i++) {
        s_release(self, &self->slots[i]);
        if (self->slots[i].easy)
            curl_easy_cleanup(self->slots[i].easy);
    }
    if (self->multi)
        curl_multi_cleanup(self->multi);
    free(self->slots);
    free(self->done);
    free(self);
    *self_p = NULL;
}

bool http_pusher_full(const http_pusher_t *self)
{
    return self->held == self->nslots;
}

size_t http_pusher_held(const http_pusher_t *self)
{
    return self->held;
}

size_t http_pusher_active(const http_pusher_t *self)
{
    return self->active;
}

bool http_pusher_gone(const http_pusher_t *self)
{
    return self->gone;
}

void http_pusher_stats(const http_pusher_t *self, http_pusher_stats_t *out)
{
    *out = self->stats;
}

/* ------------------------------------------------------- dead-lettered */

static bool s_done_has(const http_pusher_t *self, const char *id)
{
    for (size_t i = 0; i < self->done_n; i++)
        if (strcmp(self->done[(self->done_head + i) % S_DONE_MAX], id) == 0)
            return true;
    return false;
}

static void s_done_add(http_pusher_t *self, const char *id)
{
    size_t at;

    if (s_done_has(self, id))
        return;
    if (self->done_n == S_DONE_MAX) {
        self->done_head = (self->done_head + 1) % S_DONE_MAX;
        self->done_n--;
    }
    at = (self->done_head + self->done_n++) % S_DONE_MAX;
    snprintf(self->done[at], S_ID_MAX, "%s", id);
}

/* ------------------------------------------------------------- requests */

void http_pusher_add(http_pusher_t *self, sl_msg_t **msg_p)
{
    s_slot_t *slot = NULL;
    sl_msg_t *msg = *msg_p;
    char id[S_ID_MAX];
    int rc;

    *msg_p = NULL;
    snprintf(id, sizeof id, "%s/%llu", sl_msg_topic(msg),
             (unsigned long long)sl_msg_offset(msg));
    if (s_done_has(self, id)) {
        /* Its last attempt failed before, and the subscription gives it
         * more deliveries than one: nack until the broker dead-letters. */
        rc = sl_nack(msg, 0);
        http_log(rc ? HTTP_LOG_ERROR : HTTP_LOG_INFO, "push.dead_letter_again",
                 "sub=%s id=%s delivery=%u%s%s", self->conf->subscription, id,
                 sl_msg_attempt(msg), rc ? " nack_error=" : "",
                 rc ? sl_strerror(rc) : "");
        sl_msg_destroy(&msg);
        return;
    }
    for (size_t i = 0; i < self->nslots && !slot; i++)
        if (!self->slots[i].msg)
            slot = &self->slots[i];
    /* The caller checked http_pusher_full: a missing slot is a bug. */
    if (!slot) {
        sl_msg_destroy(&msg);
        return;
    }
    slot->msg = msg;
    snprintf(slot->id, sizeof slot->id, "%s", id);
    slot->attempt = 0;
    slot->due_ms = http_now_ms();
    self->held++;
}

/* VALUE may go out as a header value: printable, no line break. */
static bool s_header_value_ok(const char *value)
{
    size_t n = 0;

    for (; value[n]; n++)
        if (((unsigned char)value[n] < 0x20 && value[n] != '\t')
            || value[n] == 0x7f)
            return false;
    return n <= S_HEADER_VALUE_MAX;
}

/* KEY may be a header name after "Sluice-Header-". */
static bool s_header_key_ok(const char *key)
{
    size_t n = 0;

    for (; key[n]; n++) {
        char c = key[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            return false;
    }
    return n > 0 && n <= 200;
}

/* Append "NAME: VALUE" to *LIST. false when out of memory. */
static bool s_header(struct curl_slist **list, const char *name,
                     const char *value)
{
    char line[S_HEADER_VALUE_MAX + 256];
    struct curl_slist *grown;

    snprintf(line, sizeof line, "%s: %s", name, value);
    grown = curl_slist_append(*list, line);
    if (!grown)
        return false;
    *list = grown;
    return true;
}

/* The request headers of this attempt, signed at unix second NOW. */
static bool s_headers(http_pusher_t *self, s_slot_t *slot, uint64_t now,
                      const void *body, size_t len)
{
    char sig[HTTP_SIGN_HEADER_MAX], ts[24], name[256];
    const char *ct = sl_msg_content_type(slot->msg);
    const char *key, *value;
    bool ok;

    snprintf(ts, sizeof ts, "%llu", (unsigned long long)now);
    if (http_sign_header(self->sign, slot->id, now, body, len, sig,
                         sizeof sig) != 0)
        return false;
    curl_slist_free_all(slot->hdrs);
    slot->hdrs = NULL;
    ok = s_header(&slot->hdrs, "Content-Type",
                  *ct && s_header_value_ok(ct) ? ct : "application/octet-stream")
         && s_header(&slot->hdrs, "webhook-id", slot->id)
         && s_header(&slot->hdrs, "webhook-timestamp", ts)
         && s_header(&slot->hdrs, "webhook-signature", sig)
         /* No "Expect: 100-continue" round trip for large bodies. */
         && s_header(&slot->hdrs, "Expect", "");
    /* The message's own headers, as `serve` takes them in; one that
     * cannot be a header line is left out rather than mangled. */
    for (size_t i = 0; ok && i < sl_msg_header_count(slot->msg); i++) {
        if (sl_msg_header_at(slot->msg, i, &key, &value) != 0
            || !s_header_key_ok(key) || !s_header_value_ok(value))
            continue;
        snprintf(name, sizeof name, "Sluice-Header-%s", key);
        ok = s_header(&slot->hdrs, name, value);
    }
    return ok;
}

/* Start SLOT's next attempt. false when it could not start (no memory):
 * it is retried at the next step. */
static bool s_start(http_pusher_t *self, s_slot_t *slot, uint64_t now_ms)
{
    const http_push_conf_t *conf = self->conf;
    CURL *e = slot->easy;
    size_t len = 0;
    const void *body = sl_msg_payload(slot->msg, &len);

    if (!s_headers(self, slot, (uint64_t)time(NULL), body, len))
        return false;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, conf->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, len ? body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, slot->hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sluice-http-push");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)conf->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, slot);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, slot->curl_err);
    curl_easy_setopt(e, CURLOPT_PRIVATE, slot);
    if (conf->cacert)
        curl_easy_setopt(e, CURLOPT_CAINFO, conf->cacert);
    slot->curl_err[0] = '\0';
    slot->excerpt[0] = '\0';
    slot->excerpt_len = 0;
    if (curl_multi_add_handle(self->multi, e) != CURLM_OK)
        return false;
    slot->active = true;
    slot->attempt++;
    slot->start_ms = now_ms;
    self->active++;
    return true;
}

/* ------------------------------------------------------------- outcomes */

/* Milliseconds to wait after failed attempt ATTEMPT (1-based): the
 * receiver's Retry-After on 429 and 503 when it gave one, else a random
 * wait up to min(backoff_max, backoff_min * 2^(ATTEMPT-1)) (full jitter:
 * retries of many messages spread out instead of coming back together),
 * or that ceiling itself without jitter. Never above backoff_max. */
static uint64_t s_backoff(const http_push_conf_t *conf, uint32_t attempt,
                          long status, uint64_t retry_after_s)
{
    uint64_t cap = conf->backoff_min_ms;

    if ((status == 429 || status == 503) && retry_after_s > 0)
        return retry_after_s * 1000 < conf->backoff_max_ms
               ? retry_after_s * 1000 : conf->backoff_max_ms;
    for (uint32_t i = 1; i < attempt && cap < conf->backoff_max_ms; i++)
        cap *= 2;
    if (cap > conf->backoff_max_ms)
        cap = conf->backoff_max_ms;
    if (!conf->jitter || cap == 0)
        return cap;
    /* randombytes_uniform takes 32 bits: caps above ~49 days are cut. */
    return randombytes_uniform(cap < UINT32_MAX ? (uint32_t)cap + 1
                                                : UINT32_MAX);
}

/* What went wrong, for the log: the status and the body's start, or the
 * transfer's error. */
static void s_why(const s_slot_t *slot, CURLcode res, long status, char *buf,
                  size_t len)
{
    char quoted[HTTP_PUSH_EXCERPT * 2 + 8];

    if (res != CURLE_OK)
        snprintf(buf, len, "status=0 error=%s",
                 http_log_quote(slot->curl_err[0] ? slot->curl_err
                                : curl_easy_strerror(res), quoted,
                                sizeof quoted));
    else
        snprintf(buf, len, "status=%ld body=%s", status,
                 http_log_quote(slot->excerpt, quoted, sizeof quoted));
}

static void s_finish(http_pusher_t *self, s_slot_t *slot, CURLcode res)
{
    const http_push_conf_t *conf = self->conf;
    uint64_t now = http_now_ms(), wait;
    curl_off_t retry_after = 0;
    long status = 0;
    char why[HTTP_PUSH_EXCERPT * 2 + 128];
    int rc;

    curl_multi_remove_handle(self->multi, slot->easy);
    slot->active = false;
    self->active--;
    if (res == CURLE_OK) {
        curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(slot->easy, CURLINFO_RETRY_AFTER, &retry_after);
    }
    if (res == CURLE_OK && status >= 200 && status <= 299) {
        rc = sl_ack(slot->msg);
        http_log(rc ? HTTP_LOG_WARN : HTTP_LOG_INFO, "push.delivered",
                 "sub=%s id=%s attempt=%u status=%ld ms=%llu%s%s",
                 conf->subscription, slot->id, slot->attempt, status,
                 (unsigned long long)(now - slot->start_ms),
                 rc ? " ack_error=" : "", rc ? sl_strerror(rc) : "");
        self->stats.delivered++;
        s_release(self, slot);
        return;
    }
    s_why(slot, res, status, why, sizeof why);
    if (res == CURLE_OK && status == 410) {
        http_log(HTTP_LOG_ERROR, "push.gone",
                 "sub=%s id=%s attempt=%u %s url=%s: the endpoint is gone; "
                 "stopping, the message stays unacked", conf->subscription,
                 slot->id, slot->attempt, why, conf->url);
        self->gone = true;
        s_release(self, slot);
        http_pusher_stop(self);
        return;
    }
    if (slot->attempt >= conf->max_attempts) {
        char reason[HTTP_PUSH_EXCERPT + CURL_ERROR_SIZE + 32];
        if (res != CURLE_OK)
            snprintf(reason, sizeof reason, "no HTTP answer: %s", slot->curl_err[0]
                     ? slot->curl_err : curl_easy_strerror(res));
        else
            snprintf(reason, sizeof reason, "HTTP %ld: %s", status, slot->excerpt);
        rc = sl_nack_reason(slot->msg, 0, reason);
        http_log(HTTP_LOG_ERROR, "push.dead_lettered",
                 "sub=%s id=%s attempts=%u %s dlq=_dlq.%s%s%s",
                 conf->subscription, slot->id, slot->attempt, why,
                 conf->subscription, rc ? " nack_error=" : "",
                 rc ? sl_strerror(rc) : "");
        self->stats.dead_lettered++;
        s_done_add(self, slot->id);
        s_release(self, slot);
        return;
    }
    if (self->stopping) {
        http_log(HTTP_LOG_WARN, "push.failed", "sub=%s id=%s attempt=%u %s "
                 "(stopping: left unacked for redelivery)", conf->subscription,
                 slot->id, slot->attempt, why);
        s_release(self, slot);
        return;
    }
    wait = s_backoff(conf, slot->attempt, status,
                     retry_after > 0 ? (uint64_t)retry_after : 0);
    slot->due_ms = now + wait;
    self->stats.retries++;
    http_log(HTTP_LOG_WARN, "push.retry",
             "sub=%s id=%s attempt=%u %s wait_ms=%llu%s", conf->subscription,
             slot->id, slot->attempt, why, (unsigned long long)wait,
             retry_after > 0 && (status == 429 || status == 503)
             ? " retry_after=yes" : "");
}

void http_pusher_step(http_pusher_t *self)
{
    uint64_t now = http_now_ms();
    CURLMsg *m;
    int running = 0, left = 0;
    s_slot_t *slot;

    for (size_t i = 0; i < self->nslots && !self->stopping; i++) {
        slot = &self->slots[i];
        if (slot->msg && !slot->active && slot->due_ms <= now
            && !s_start(self, slot, now))
            http_log(HTTP_LOG_ERROR, "push.start_failed", "sub=%s id=%s "
                     "(out of memory?): trying again",
                     self->conf->subscription, slot->id);
    }
    curl_multi_perform(self->multi, &running);
    while ((m = curl_multi_info_read(self->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        slot = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&slot);
        /* m is invalid once its handle leaves the multi: keep the code. */
        CURLcode res = m->data.result;
        if (slot)
            s_finish(self, slot, res);
    }
}

void http_pusher_poll(http_pusher_t *self, int ms)
{
    curl_multi_poll(self->multi, NULL, 0, ms, NULL);
}

int64_t http_pusher_next_ms(const http_pusher_t *self)
{
    uint64_t now = http_now_ms();
    int64_t best = -1;

    if (self->stopping)
        return -1;
    for (size_t i = 0; i < self->nslots; i++) {
        const s_slot_t *slot = &self->slots[i];
        if (!slot->msg || slot->active)
            continue;
        int64_t d = slot->due_ms <= now ? 0 : (int64_t)(slot->due_ms - now);
        if (best < 0 || d < best)
            best = d;
    }
    return best;
}

void http_pusher_stop(http_pusher_t *self)
{
    self->stopping = true;
    for (size_t i = 0; i < self->nslots; i++)
        if (self->slots[i].msg && !self->slots[i].active)
            s_release(self, &self->slots[i]);
}
