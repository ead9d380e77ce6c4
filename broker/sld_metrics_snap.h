/*  sld_metrics_snap - the hand-over of the broker's numbers to the metrics
 *  listener's thread: the loop thread fills an sld_metrics_values_t and
 *  publishes it (a copy under a mutex, at most every SLD_SNAP_PERIOD_MS);
 *  the listener's thread copies the latest one out. Also keeps the live
 *  commit histograms (broker thread). Owns its mutex and the two copies;
 *  it reads no module itself (sld_server gathers the values). With
 *  broker/metrics_per_object, the per-topic and per-subscription rows ride
 *  along in an immutable, reference-counted sld_metrics_detail_t: the
 *  reader holds a reference while it formats, the loop never waits on it. */
#ifndef SLD_METRICS_SNAP_H
#define SLD_METRICS_SNAP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "slc.h"
#include "sld_metrics.h"

/* Publish at most this often (a turn that comes sooner publishes nothing). */
#define SLD_SNAP_PERIOD_MS 200

/* Fixed bucket bounds: commit duration in seconds, commit batch in messages. */
#define SLD_HIST_SECONDS_N 14
#define SLD_HIST_BATCH_N 12
#define SLD_HIST_MAX 14
extern const double sld_hist_seconds_bounds[SLD_HIST_SECONDS_N];
extern const double sld_hist_batch_bounds[SLD_HIST_BATCH_N];

/* One histogram: per-bucket (not cumulative) counts, the last one +Inf. */
typedef struct {
    uint64_t buckets[SLD_HIST_MAX + 1];
    double sum;
    uint64_t count;
} sld_hist_t;

/* Why the broker is not ready (SLD_SNAP_READY: it is). */
typedef enum {
    SLD_SNAP_STARTING,          /* the store is not open yet */
    SLD_SNAP_READY,
    SLD_SNAP_STORAGE_FULL,      /* map or disk alarm: publishes are refused */
    SLD_SNAP_STOPPING,          /* shutting down */
} sld_snap_state_t;

/* Everything /metrics shows: a plain value, copied whole. */
typedef struct {
    sld_snap_state_t state;
    uint64_t taken_us;                  /* wall clock when the loop filled it */
    uint64_t start_us;                  /* when the broker started */
    uint64_t counters[SLD_M_COUNT];     /* sld_metrics, as `sluice stats` */
    uint64_t sessions;                  /* sessions open */
    uint64_t topics;                    /* topics in the store */
    uint64_t map_used, map_size, map_max;   /* bytes */
    bool alarm_map, alarm_disk;         /* storage alarms raised (sluice_alarm{kind}) */
    uint32_t route_version;             /* live routing table (0: none) */
    uint64_t route_matched, route_delivered, route_dropped, route_dlq, route_errors;
    uint64_t route_unrouted;
    uint64_t subs_pending;              /* durable subscriptions: stored, not acked */
    uint64_t subs_unacked;              /* durable subscriptions: delivered, not acked */
    uint64_t oldest_unacked_ms;         /* the oldest unacked attempt's age, over them */
    uint64_t alerts_fired;              /* firing alert events queued (sld_alerts) */
    sld_hist_t commit_seconds;          /* bounds sld_hist_seconds_bounds */
    sld_hist_t commit_batch;            /* bounds sld_hist_batch_bounds */
} sld_metrics_values_t;

/* One topic's row of the per-object series. */
typedef struct {
    char name[SLC_TOPIC_MAX + 1];
    uint64_t appended;                  /* next offset: messages ever appended */
    uint64_t appended_bytes;            /* payload bytes appended since the start */
    uint64_t messages, bytes;           /* stored now */
    uint64_t first_offset, next_offset;
} sld_snap_topic_t;

/* One durable subscription's row. */
typedef struct {
    char name[SLC_TOPIC_MAX + 1];
    uint64_t pending, unacked, oldest_unacked_ms;
    uint64_t delivered, redelivered, acked, dead_lettered;
} sld_snap_sub_t;

/* The per-object rows of one snapshot, the first max_objects of each kind
 * by name; immutable once published. */
typedef struct {
    sld_snap_topic_t *topics;
    size_t ntopics;
    sld_snap_sub_t *subs;
    size_t nsubs;
    uint64_t dropped_topics, dropped_subs;  /* left out over the cap */
    unsigned refs;                      /* under the snapshot's mutex */
} sld_metrics_detail_t;

/* A detail with room for NTOPICS and NSUBS rows (counts 0, refs 1), or
 * NULL when out of memory. */
sld_metrics_detail_t *sld_metrics_detail_new(size_t ntopics, size_t nsubs);

typedef struct sld_metrics_snap sld_metrics_snap_t;

/* 0 and *out (caller owns; state STARTING), SL_ENOMEM or SL_ESYS. */
int sld_metrics_snap_new(sld_metrics_snap_t **out);
/* NULL-safe; nulls *self_p. No reader may be running (stop the listener first). */
void sld_metrics_snap_destroy(sld_metrics_snap_t **self_p);

/* Broker thread: count one commit that took SECONDS and stored MSGS messages. */
void sld_metrics_snap_commit(sld_metrics_snap_t *self, double seconds, uint64_t msgs);

/* Broker thread: milliseconds until a publish is due at NOW_MS (monotonic);
 * 0: due now. FORCE: always 0. */
uint64_t sld_metrics_snap_due(const sld_metrics_snap_t *self, uint64_t now_ms, bool force);

/* Broker thread: publish VALUES (its histograms are replaced by the live
 * ones) at NOW_MS, with DETAIL (taken whatever happens, may be NULL: no
 * per-object rows). */
void sld_metrics_snap_publish(sld_metrics_snap_t *self, const sld_metrics_values_t *values,
                              sld_metrics_detail_t **detail, uint64_t now_ms);

/* Broker thread: only the state changes (start, stop), published at once. */
void sld_metrics_snap_set_state(sld_metrics_snap_t *self, sld_snap_state_t state);

/* Any thread: the latest published values into *out; with DETAIL, a
 * reference to their per-object rows (NULL when none; give it back with
 * sld_metrics_snap_release). */
void sld_metrics_snap_read(sld_metrics_snap_t *self, sld_metrics_values_t *out,
                           const sld_metrics_detail_t **detail);

/* Any thread: give back a reference sld_metrics_snap_read handed out.
 * NULL-safe; nulls *detail. */
void sld_metrics_snap_release(sld_metrics_snap_t *self, const sld_metrics_detail_t **detail);

/* Add one observation V to H with bounds BOUNDS[N]. */
void sld_hist_observe(sld_hist_t *h, const double *bounds, size_t n, double v);

#endif
