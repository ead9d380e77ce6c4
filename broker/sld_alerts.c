/*  sld_alerts - the queue of alert events, their writing to `_alerts`, and
 *  the rules' state; see sld_alerts.h. Broker thread only.
 *
 *  Subscription lag: a subscription is "above" from the first evaluation
 *  that saw its lag over the max; it fires once it has been above for the
 *  whole `subscription_lag_for`, and resolves at the first evaluation that
 *  sees it at or under the max (or gone). Dead-letter growth: one sample of
 *  the dead-letter counter per evaluation; the growth is the counter now
 *  minus the oldest sample still inside the window; at the max or above it
 *  fires, under it again it resolves. A route's errors: the same, one ring
 *  per route of the live table (a counter that goes down, a new table's,
 *  starts the ring again). Topic idle: a topic that exists and matches a
 *  pattern fires once when its last publish (or the rule's start, when none
 *  since) is topic_idle_for ago, and resolves at the first evaluation after
 *  a publish. Every rule keeps its per-object state in a hash of s_state_t
 *  by name; an object gone since resolves ("removed":true).  */
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

typedef struct {
    char *json;
    size_t len;
    uint64_t at_us;
} s_event_t;

typedef struct {
    uint64_t at_ms, count;
} s_sample_t;

/* A counter's samples inside a window, oldest first (a ring). */
typedef struct {
    s_sample_t *v;
    size_t first, n, cap;
} s_growth_t;

/* One object's state under a rule (a subscription, a topic, a route). */
typedef struct {
    uint64_t seen_ms;           /* last evaluation that saw the object */
    uint64_t since_ms;          /* lag: above the max since (0: not above) */
    bool firing;
    s_growth_t g;               /* routes: the error counter's samples */
} s_state_t;

struct sld_alerts {
    sld_alerts_rules_t rules;
    uint64_t next_tick_ms;
    zhashx_t *lag;              /* subscription name -> s_state_t (owned) */
    zhashx_t *idle;             /* topic name -> s_state_t, firing ones */
    zhashx_t *route;            /* route name -> s_state_t */
    bool route_ticked;          /* the route rule ran before: a route first seen
                                   since is new, its counters started at 0 */
    uint64_t idle_since_ms;     /* the idle rule's start (0: not yet evaluated) */
    s_growth_t dlq;             /* dead-letter samples */
    bool dlq_firing;
    bool retention_set;         /* `_alerts`'s retention committed in this run */
    uint64_t fired;             /* firing events queued since the start */
    s_event_t v[SLD_ALERTS_QUEUE_MAX];
    size_t n;
    uint64_t dropped;           /* events not queued since the last one written */
    uint8_t *buf;               /* envelope packing */
    size_t capbuf;
};

static void s_state_free(void **item)
{
    s_state_t *st = *item;
    if (st)
        free(st->g.v);
    free(st);
    *item = NULL;
}

static zhashx_t *s_hash(void)
{
    zhashx_t *h = zhashx_new();
    if (h)
        zhashx_set_destructor(h, s_state_free);
    return h;
}

int sld_alerts_new(sld_alerts_t **out)
{
    sld_alerts_t *self = calloc(1, sizeof *self);
    if (self) {
        self->lag = s_hash();
        self->idle = s_hash();
        self->route = s_hash();
    }
    if (!self || !self->lag || !self->idle || !self->route) {
        sld_alerts_destroy(&self);
        return SL_ENOMEM;
    }
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
        zhashx_destroy(&(*self_p)->idle);
        zhashx_destroy(&(*self_p)->route);
        free((*self_p)->dlq.v);
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
    self->fired += firing;
    self->v[self->n++] = (s_event_t) { json, (size_t) len, at_us };
}

uint64_t sld_alerts_fired(const sld_alerts_t *self)
{
    return self->fired;
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

/* ----------------------------------------------------------------- rules */

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

static void s_idle_event(sld_alerts_t *self, const char *topic, bool firing, uint64_t idle_ms,
                         bool gone)
{
    char members[512], q[300];
    s_quote(topic, q, sizeof q);
    snprintf(members, sizeof members, "\"topic\":%s,\"idle_seconds\":%" PRIu64
             ",\"idle_for_seconds\":%" PRIu64 "%s", q, idle_ms / 1000,
             self->rules.idle_for_ms / 1000, gone ? ",\"removed\":true" : "");
    sld_alerts_add(self, slc_now_us(), "topic_idle", firing, members);
}

static void s_route_event(sld_alerts_t *self, const char *route, bool firing, uint64_t errors,
                          bool gone)
{
    char members[512], q[300];
    s_quote(route, q, sizeof q);
    snprintf(members, sizeof members, "\"route\":%s,\"errors\":%" PRIu64 ",\"errors_max\":%"
             PRIu64 ",\"window_seconds\":%" PRIu64 "%s", q, errors, self->rules.route_errors,
             self->rules.route_window_ms / 1000, gone ? ",\"removed\":true" : "");
    sld_alerts_add(self, slc_now_us(), "route_errors", firing, members);
}

typedef void s_resolve_fn(sld_alerts_t *self, const char *name, bool firing, uint64_t value,
                          bool gone);

/* Resolve every firing object of H (a rule switched off) and forget them. */
static void s_reset(sld_alerts_t *self, zhashx_t *h, s_resolve_fn *event)
{
    for (s_state_t *st = zhashx_first(h); st; st = zhashx_next(h))
        if (st->firing)
            event(self, zhashx_cursor(h), false, 0, false);
    zhashx_purge(h);
}

/* Objects of H not seen at NOW_MS are gone: resolved and forgotten. */
static void s_sweep(sld_alerts_t *self, zhashx_t *h, uint64_t now_ms, s_resolve_fn *event)
{
    zlistx_t *keys = zhashx_keys(h);
    for (const char *k = keys ? zlistx_first(keys) : NULL; k; k = zlistx_next(keys)) {
        s_state_t *st = zhashx_lookup(h, k);
        if (st && st->seen_ms != now_ms) {
            if (st->firing)
                event(self, k, false, 0, true);
            zhashx_delete(h, k);
        }
    }
    zlistx_destroy(&keys);
}

/* NAME's state in H, created when absent; NULL when out of memory. */
static s_state_t *s_state(zhashx_t *h, const char *name)
{
    s_state_t *st = zhashx_lookup(h, name);
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st || zhashx_insert(h, name, st) != 0) {
            free(st);
            return NULL;
        }
    }
    return st;
}

/* Forget G's samples. */
static void s_growth_clear(s_growth_t *g)
{
    g->first = g->n = 0;
}

/* Add the sample COUNT at NOW_MS to G (samples older than WINDOW_MS go)
 * and return the growth since the oldest sample kept. A counter that went
 * down starts again. Out of memory: 0. */
static uint64_t s_growth(s_growth_t *g, uint64_t count, uint64_t now_ms, uint64_t window_ms)
{
    if (!g->v) {
        /* One sample a second over the window (at most 1 h), and slack. */
        g->cap = (size_t) (window_ms / S_TICK_MS) + 2;
        g->v = calloc(g->cap, sizeof *g->v);
        if (!g->v)
            return 0;
    }
    if (g->n && g->v[(g->first + g->n - 1) % g->cap].count > count)
        s_growth_clear(g);
    while (g->n && g->v[g->first].at_ms + window_ms < now_ms) {
        g->first = (g->first + 1) % g->cap;
        g->n--;
    }
    if (g->n == g->cap) {
        g->first = (g->first + 1) % g->cap;
        g->n--;
    }
    g->v[(g->first + g->n) % g->cap] = (s_sample_t) { now_ms, count };
    g->n++;
    return count - g->v[g->first].count;
}

static void s_dlq_resolve(sld_alerts_t *self)
{
    if (self->dlq_firing)
        s_dlq_event(self, false, 0);
    self->dlq_firing = false;
    free(self->dlq.v);
    self->dlq = (s_growth_t) { 0 };
}

void sld_alerts_set_rules(sld_alerts_t *self, const sld_alerts_rules_t *rules)
{
    if (!rules->lag_max)
        s_reset(self, self->lag, s_lag_event);
    if (!rules->dlq_growth || rules->dlq_window_ms != self->rules.dlq_window_ms)
        s_dlq_resolve(self);
    if (!rules->nidle) {
        s_reset(self, self->idle, s_idle_event);
        self->idle_since_ms = 0;
    }
    if (!rules->route_errors || rules->route_window_ms != self->rules.route_window_ms) {
        s_reset(self, self->route, s_route_event);
        self->route_ticked = false;
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
        if (!zhashx_lookup(self->lag, si->name) && si->lag <= self->rules.lag_max)
            continue;                   /* nothing to remember */
        s_state_t *l = s_state(self->lag, si->name);
        if (!l)
            continue;
        l->seen_ms = now_ms;
        if (si->lag > self->rules.lag_max) {
            if (!l->since_ms)
                l->since_ms = now_ms;
            if (!l->firing && now_ms - l->since_ms >= self->rules.lag_for_ms) {
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
    s_sweep(self, self->lag, now_ms, s_lag_event);
}

static void s_dlq_tick(sld_alerts_t *self, uint64_t count, uint64_t now_ms)
{
    uint64_t growth = s_growth(&self->dlq, count, now_ms, self->rules.dlq_window_ms);
    bool fire = growth >= self->rules.dlq_growth;
    if (fire != self->dlq_firing)
        s_dlq_event(self, fire, growth);
    self->dlq_firing = fire;
}

static bool s_idle_watched(const sld_alerts_rules_t *rules, const char *topic)
{
    for (size_t i = 0; i < rules->nidle; i++)
        if (slc_pattern_match(rules->idle[i], topic))
            return true;
    return false;
}

static void s_idle_tick(sld_alerts_t *self, const sld_store_t *store,
                        const sld_topicstats_t *tstats, uint64_t now_ms)
{
    if (!self->idle_since_ms)
        self->idle_since_ms = now_ms;
    size_t n = sld_store_topic_count(store);
    for (size_t i = 0; i < n; i++) {
        const sld_topic_info_t *t = sld_store_topic_at(store, i);
        if (!t || !s_idle_watched(&self->rules, t->name))
            continue;
        uint64_t last = sld_topicstats_last_ms(tstats, t->id);
        if (last < self->idle_since_ms)
            last = self->idle_since_ms;
        uint64_t idle = now_ms > last ? now_ms - last : 0;
        s_state_t *st = zhashx_lookup(self->idle, t->name);
        if (idle >= self->rules.idle_for_ms && !st) {
            st = s_state(self->idle, t->name);
            if (!st)
                continue;
            st->firing = true;
            s_idle_event(self, t->name, true, idle, false);
        }
        else if (idle < self->rules.idle_for_ms && st) {
            s_idle_event(self, t->name, false, idle, false);
            zhashx_delete(self->idle, t->name);
            st = NULL;
        }
        if (st)
            st->seen_ms = now_ms;
    }
    s_sweep(self, self->idle, now_ms, s_idle_event);
}

static void s_route_tick(sld_alerts_t *self, sld_routes_t *routes, uint64_t now_ms)
{
    Sluice__RoutingStats *rs = NULL;
    if (sld_routes_stats(routes, &rs) != 0)
        return;
    for (size_t i = 0; i < rs->n_routes; i++) {
        const Sluice__RouteStats *r = rs->routes[i];
        bool known = zhashx_lookup(self->route, r->name) != NULL;
        s_state_t *st = s_state(self->route, r->name);
        if (!st)
            continue;
        st->seen_ms = now_ms;
        /* A route of a table applied since the last evaluation counted
         * from 0; at the rule's first evaluation, what was before is not
         * the window's. */
        if (!known && self->route_ticked)
            s_growth(&st->g, 0, now_ms, self->rules.route_window_ms);
        uint64_t growth = s_growth(&st->g, r->errors, now_ms, self->rules.route_window_ms);
        bool fire = growth >= self->rules.route_errors;
        if (fire != st->firing)
            s_route_event(self, r->name, fire, growth, false);
        st->firing = fire;
    }
    sld_routes_stats_free(&rs);
    self->route_ticked = true;
    s_sweep(self, self->route, now_ms, s_route_event);
}

long sld_alerts_tick(sld_alerts_t *self, const sld_alerts_sources_t *src, uint64_t now_ms)
{
    const sld_alerts_rules_t *r = &self->rules;
    if (!r->lag_max && !r->dlq_growth && !r->nidle && !r->route_errors)
        return S_TICK_MS;
    if (now_ms < self->next_tick_ms)
        return (long) (self->next_tick_ms - now_ms);
    self->next_tick_ms = now_ms + S_TICK_MS;
    if (r->lag_max)
        s_lag_tick(self, src->delivery, now_ms);
    if (r->dlq_growth)
        s_dlq_tick(self, sld_metrics_get(src->metrics, SLD_M_DEAD_LETTERED), now_ms);
    if (r->nidle)
        s_idle_tick(self, src->store, src->tstats, now_ms);
    if (r->route_errors)
        s_route_tick(self, src->routes, now_ms);
    return S_TICK_MS;
}
