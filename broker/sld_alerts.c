/*  sld_alerts - the queue of alert events, their writing to `_alerts`, and
 *  the rules' state; see sld_alerts.h. Broker thread only.
 *
 *  Subscription lag: a subscription is "above" from the first evaluation
 *  that saw its lag over the max; it fires once it has been above for the
 *  whole `subscription_lag_for`, and resolves at the first evaluation that
 *  sees it at or under the max (or gone). Dead-letter growth: one sample of
 *  the dead-letter counter per evaluation; the growth is the counter now
 *  minus the oldest sample still inside the window; at the max or above it
 *  fires, under it again it resolves.  */
#include "sld_alerts.h"
#include "sld_event.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <czmq.h>
#include <cjson/cJSON.h>
#include "slc.h"
#include "slc_codec.h"

#define S_TICK_MS 1000
#define S_DLQ_SAMPLES 3700              /* a 1 h window at one sample a second */

typedef struct {
    char *json;
    size_t len;
    uint64_t at_us;
} s_event_t;

/* One subscription's lag rule. */
typedef struct {
    uint64_t above_since_ms;    /* 0: at or under the max */
    uint64_t seen_ms;           /* last evaluation that saw it */
    bool firing;
} s_lag_t;

typedef struct {
    uint64_t at_ms, count;
} s_sample_t;

struct sld_alerts {
    sld_alerts_rules_t rules;
    uint64_t next_tick_ms;
    zhashx_t *lag;              /* subscription name -> s_lag_t (owned) */
    s_sample_t *dlq;            /* ring of dead-letter samples */
    size_t dlq_first, dlq_n;
    bool dlq_firing;
    bool retention_set;         /* `_alerts`'s retention committed in this run */
    s_event_t v[SLD_ALERTS_QUEUE_MAX];
    size_t n;
    uint64_t dropped;           /* events not queued since the last one written */
    uint8_t *buf;               /* envelope packing */
    size_t capbuf;
};

static void s_lag_free(void **item)
{
    free(*item);
    *item = NULL;
}

int sld_alerts_new(sld_alerts_t **out)
{
    sld_alerts_t *self = calloc(1, sizeof *self);
    if (self) {
        self->lag = zhashx_new();
        self->dlq = calloc(S_DLQ_SAMPLES, sizeof *self->dlq);
    }
    if (!self || !self->lag || !self->dlq) {
        sld_alerts_destroy(&self);
        return SL_ENOMEM;
    }
    zhashx_set_destructor(self->lag, s_lag_free);
    *out = self;
    return 0;
}

static void s_forget(sld_alerts_t *self)
{
    for (size_t i = 0; i < self->n; i++)
        free(self->v[i].json);
    self->n = 0;
}

void sld_alerts_destroy(sld_alerts_t **self_p)
{
    if (self_p && *self_p) {
        s_forget(*self_p);
        zhashx_destroy(&(*self_p)->lag);
        free((*self_p)->dlq);
        free((*self_p)->buf);
        free(*self_p);
        *self_p = NULL;
    }
}

/* AT_US as RFC 3339 UTC with milliseconds into WHEN (40 bytes). */
static void s_when(uint64_t at_us, char when[40])
{
    time_t secs = (time_t) (at_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t k = strftime(when, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + k, 40 - k, ".%03" PRIu64 "Z", at_us / 1000 % 1000);
}

void sld_alerts_add(sld_alerts_t *self, uint64_t at_us, const char *alert, bool firing,
                    const char *members)
{
    if (self->n == SLD_ALERTS_QUEUE_MAX) {
        self->dropped++;
        return;
    }
    char when[40], dropped[48] = "";
    s_when(at_us, when);
    if (self->dropped)
        snprintf(dropped, sizeof dropped, ",\"dropped\":%" PRIu64, self->dropped);
    bool more = members && members[0];
    char *json = NULL;
    int len = asprintf(&json, "{\"alert\":\"%s\",\"state\":\"%s\",\"at\":\"%s\"%s%s%s}",
                       alert, firing ? "firing" : "resolved", when, more ? "," : "",
                       more ? members : "", dropped);
    if (len < 0) {
        self->dropped++;
        return;
    }
    self->dropped = 0;
    self->v[self->n++] = (s_event_t) { json, (size_t) len, at_us };
}

bool sld_alerts_dirty(const sld_alerts_t *self)
{
    return self->n > 0;
}

int sld_alerts_write(sld_alerts_t *self, sld_txn_t *txn, uint32_t *topic_id)
{
    int rc = 0;
    uint32_t id = 0;
    *topic_id = 0;
    if (self->n == 0)
        return 0;
    rc = sld_store_topic_ensure(txn, SLD_ALERTS_TOPIC, &id);
    /* Once a run: keep SLD_ALERTS_KEEP_MS of events, by age only. */
    if (rc == 0 && !self->retention_set)
        rc = sld_store_topic_set_retention(txn, id, SLD_ALERTS_KEEP_MS, 0);
    for (size_t i = 0; rc == 0 && i < self->n; i++)
        rc = sld_event_append(txn, id, SLD_ALERTS_TOPIC, self->v[i].json, self->v[i].len,
                              self->v[i].at_us, &self->buf, &self->capbuf);
    if (rc == 0)
        *topic_id = id;
    return rc;
}

void sld_alerts_committed(sld_alerts_t *self, bool ok)
{
    if (ok && self->n)
        self->retention_set = true;
    if (ok)
        s_forget(self);
}

/* NAME as a JSON string into OUT (with its quotes). */
static void s_quote(const char *name, char *out, size_t len)
{
    char *q = NULL;
    cJSON *j = cJSON_CreateString(name);
    if (j)
        q = cJSON_PrintUnformatted(j);
    snprintf(out, len, "%s", q ? q : "\"\"");
    cJSON_free(q);
    cJSON_Delete(j);
}

static void s_lag_event(sld_alerts_t *self, const char *name, bool firing, uint64_t lag,
                        bool gone)
{
    char members[512], q[300];
    s_quote(name, q, sizeof q);
    snprintf(members, sizeof members, "\"subscription\":%s,\"lag\":%" PRIu64
             ",\"lag_max\":%" PRIu64 ",\"for_seconds\":%" PRIu64 "%s", q, lag,
             self->rules.lag_max, self->rules.lag_for_ms / 1000,
             gone ? ",\"removed\":true" : "");
    sld_alerts_add(self, slc_now_us(), "subscription_lag", firing, members);
}

static void s_dlq_event(sld_alerts_t *self, bool firing, uint64_t growth)
{
    char members[200];
    snprintf(members, sizeof members, "\"dead_lettered\":%" PRIu64 ",\"growth_max\":%" PRIu64
             ",\"window_seconds\":%" PRIu64, growth, self->rules.dlq_growth,
             self->rules.dlq_window_ms / 1000);
    sld_alerts_add(self, slc_now_us(), "dlq_growth", firing, members);
}

/* Resolve every firing lag alert and forget them all (rule off). */
static void s_lag_reset(sld_alerts_t *self)
{
    for (s_lag_t *l = zhashx_first(self->lag); l; l = zhashx_next(self->lag))
        if (l->firing)
            s_lag_event(self, zhashx_cursor(self->lag), false, 0, false);
    zhashx_purge(self->lag);
}

void sld_alerts_set_rules(sld_alerts_t *self, const sld_alerts_rules_t *rules)
{
    if (!rules->lag_max)
        s_lag_reset(self);
    if (!rules->dlq_growth || rules->dlq_window_ms != self->rules.dlq_window_ms) {
        if (self->dlq_firing)
            s_dlq_event(self, false, 0);
        self->dlq_firing = false;
        self->dlq_n = self->dlq_first = 0;
    }
    self->rules = *rules;
}

static void s_lag_tick(sld_alerts_t *self, sld_delivery_t *delivery, uint64_t now_ms)
{
    Sluice__SubInfo **subs = NULL;
    size_t n = 0;
    if (sld_delivery_stats(delivery, &subs, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const Sluice__SubInfo *si = subs[i];
        if (si->ephemeral)
            continue;
        s_lag_t *l = zhashx_lookup(self->lag, si->name);
        if (!l && si->lag <= self->rules.lag_max)
            continue;                   /* nothing to remember */
        if (!l) {
            l = calloc(1, sizeof *l);
            if (!l || zhashx_insert(self->lag, si->name, l) != 0) {
                free(l);
                continue;
            }
        }
        l->seen_ms = now_ms;
        if (si->lag > self->rules.lag_max) {
            if (!l->above_since_ms)
                l->above_since_ms = now_ms;
            if (!l->firing && now_ms - l->above_since_ms >= self->rules.lag_for_ms) {
                l->firing = true;
                s_lag_event(self, si->name, true, si->lag, false);
            }
        }
        else {
            if (l->firing)
                s_lag_event(self, si->name, false, si->lag, false);
            zhashx_delete(self->lag, si->name);
        }
    }
    sld_delivery_stats_free(&subs, n);
    /* Subscriptions removed since: resolved. */
    zlistx_t *keys = zhashx_keys(self->lag);
    for (const char *k = keys ? zlistx_first(keys) : NULL; k; k = zlistx_next(keys)) {
        s_lag_t *l = zhashx_lookup(self->lag, k);
        if (l && l->seen_ms != now_ms) {
            if (l->firing)
                s_lag_event(self, k, false, 0, true);
            zhashx_delete(self->lag, k);
        }
    }
    zlistx_destroy(&keys);
}

static void s_dlq_tick(sld_alerts_t *self, uint64_t count, uint64_t now_ms)
{
    /* Drop the samples that left the window, keep the rest in the ring. */
    while (self->dlq_n
           && self->dlq[self->dlq_first].at_ms + self->rules.dlq_window_ms < now_ms) {
        self->dlq_first = (self->dlq_first + 1) % S_DLQ_SAMPLES;
        self->dlq_n--;
    }
    if (self->dlq_n == S_DLQ_SAMPLES) {
        self->dlq_first = (self->dlq_first + 1) % S_DLQ_SAMPLES;
        self->dlq_n--;
    }
    self->dlq[(self->dlq_first + self->dlq_n) % S_DLQ_SAMPLES] = (s_sample_t) { now_ms, count };
    self->dlq_n++;
    uint64_t growth = count - self->dlq[self->dlq_first].count;
    bool fire = growth >= self->rules.dlq_growth;
    if (fire != self->dlq_firing)
        s_dlq_event(self, fire, growth);
    self->dlq_firing = fire;
}

long sld_alerts_tick(sld_alerts_t *self, sld_delivery_t *delivery,
                     const sld_metrics_t *metrics, uint64_t now_ms)
{
    if (!self->rules.lag_max && !self->rules.dlq_growth)
        return S_TICK_MS;
    if (now_ms < self->next_tick_ms)
        return (long) (self->next_tick_ms - now_ms);
    self->next_tick_ms = now_ms + S_TICK_MS;
    if (self->rules.lag_max)
        s_lag_tick(self, delivery, now_ms);
    if (self->rules.dlq_growth)
        s_dlq_tick(self, sld_metrics_get(metrics, SLD_M_DEAD_LETTERED), now_ms);
    return S_TICK_MS;
}
