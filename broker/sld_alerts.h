/*  sld_alerts - alert events, NATS-advisory style: one JSON document per
 *  event, {"alert":NAME,"state":"firing"|"resolved","at":RFC 3339,...},
 *  appended to the `_alerts` topic in the write transaction of the loop
 *  turn, where any client with subscribe rights on `_alerts` reads them.
 *  Owns the queue of events not yet committed and the state of the rules
 *  from the config's [alerts] (subscription lag above N for T, dead
 *  letters growing by N within T, no publish on a topic for T, a route's
 *  errors growing by N within T), which it evaluates at most once a second
 *  from the delivery's stats, the counters, the store's topics, the
 *  publish times and the routes' stats (all borrowed). The
 *  storage alarms' events are queued by the server (sld_alarm decides
 *  those). Broker thread only.  */
#ifndef SLD_ALERTS_H
#define SLD_ALERTS_H
#include <stdbool.h>
#include <stdint.h>
#include "sld_delivery.h"
#include "sld_config.h"
#include "sld_metrics.h"
#include "sld_routes.h"
#include "sld_store.h"
#include "sld_topicstats.h"

typedef struct sld_alerts sld_alerts_t;

#define SLD_ALERTS_TOPIC "_alerts"

/* `_alerts` keeps events this long (by age only; set at the first write of
 * each run). */
#define SLD_ALERTS_KEEP_MS (30ull * 24 * 60 * 60 * 1000)

/* Events waiting beyond this many are dropped and counted; the next
 * written event says how many ("dropped":N). */
#define SLD_ALERTS_QUEUE_MAX 1000

/* The rules (the config's [alerts]); 0 switches a rule off. */
typedef struct {
    uint64_t lag_max;           /* subscription_lag_max: messages not acked */
    uint64_t lag_for_ms;        /* subscription_lag_for */
    uint64_t dlq_growth;        /* dlq_growth_max: dead letters within the window */
    uint64_t dlq_window_ms;     /* dlq_growth_window, at most 1 h */
    char idle[SLD_CONFIG_PATTERNS_MAX][SLC_TOPIC_MAX + 1]; /* topic_idle's patterns */
    size_t nidle;               /* 0: the idle rule is off */
    uint64_t idle_for_ms;       /* topic_idle_for */
    uint64_t route_errors;      /* route_errors_max: errors within the window */
    uint64_t route_window_ms;   /* route_errors_window, at most 1 h */
} sld_alerts_rules_t;

/* What the rules read, all borrowed for the call. */
typedef struct {
    sld_delivery_t *delivery;           /* subscription lag */
    const sld_metrics_t *metrics;       /* dead letters */
    const sld_store_t *store;           /* topics */
    const sld_topicstats_t *tstats;     /* last publish per topic */
    sld_routes_t *routes;               /* per-route errors */
} sld_alerts_sources_t;

/* 0 and *out (caller owns), or SL_ENOMEM. */
int sld_alerts_new(sld_alerts_t **out);

/* Use RULES from now on (start, SIGHUP). A rule switched off forgets its
 * state; its firing alerts are resolved. */
void sld_alerts_set_rules(sld_alerts_t *self, const sld_alerts_rules_t *rules);

/* Evaluate the rules at NOW_MS (monotonic), at most once a second (an
 * earlier call does nothing) from SRC. Firing and resolved events are
 * queued. Returns the milliseconds until the next evaluation is due
 * (1000 when no rule is on). A topic that was never published to since
 * the start counts as idle from the first evaluation. */
long sld_alerts_tick(sld_alerts_t *self, const sld_alerts_sources_t *src, uint64_t now_ms);

/* Firing events queued since the start, every rule together
 * (sluice_alerts_fired_total). */
uint64_t sld_alerts_fired(const sld_alerts_t *self);

/* NULL-safe; nulls *self_p. Events not committed are lost. */
void sld_alerts_destroy(sld_alerts_t **self_p);

/* Queue one event at AT_US (wall clock): ALERT its name ("storage_alarm"),
 * FIRING or resolved, MEMBERS more JSON members without braces (may be
 * NULL or ""; copied; the caller makes them valid JSON). */
void sld_alerts_add(sld_alerts_t *self, uint64_t at_us, const char *alert, bool firing,
                    const char *members);

/* Anything queued? (The loop then commits.) */
bool sld_alerts_dirty(const sld_alerts_t *self);

/* Append the queued events to `_alerts` in TXN (a write txn); *topic_id
 * is the topic's id (0 when nothing was written). 0, SL_EFULL, SL_ESTORE,
 * SL_ENOMEM. */
int sld_alerts_write(sld_alerts_t *self, sld_txn_t *txn, uint32_t *topic_id);

/* After the commit. OK: forget the written events. Not OK: keep them for
 * the next commit. */
void sld_alerts_committed(sld_alerts_t *self, bool ok);

#endif
