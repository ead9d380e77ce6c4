/*  sld_metrics_snap - the latest values behind a mutex, plus the live
 *  commit histograms. The broker thread writes (commit, publish, state);
 *  the metrics listener's thread only reads a copy. A copy of a few hundred
 *  bytes at most five times a second costs the loop nothing it would see,
 *  and the reader never waits on anything but that copy.  */
#include "sld_metrics_snap.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "sluice_codes.h"

const double sld_hist_seconds_bounds[SLD_HIST_SECONDS_N] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
};
const double sld_hist_batch_bounds[SLD_HIST_BATCH_N] = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 20000,
};

struct sld_metrics_snap {
    pthread_mutex_t lock;
    sld_metrics_values_t shown;     /* under LOCK: what readers copy */
    sld_hist_t seconds, batch;      /* broker thread: the live histograms */
    uint64_t last_ms;               /* when the last publish was (0: never) */
    sld_metrics_detail_t *detail;   /* under LOCK: the shown rows (a reference), or NULL */
};

sld_metrics_detail_t *sld_metrics_detail_new(size_t ntopics, size_t nsubs)
{
    sld_metrics_detail_t *d = calloc(1, sizeof *d);
    if (d) {
        d->topics = calloc(ntopics + 1, sizeof *d->topics);
        d->subs = calloc(nsubs + 1, sizeof *d->subs);
        d->refs = 1;
    }
    if (d && (!d->topics || !d->subs)) {
        free(d->topics);
        free(d->subs);
        free(d);
        d = NULL;
    }
    return d;
}

/* Under LOCK: drop one reference to D. */
static void s_unref(sld_metrics_detail_t *d)
{
    if (d && --d->refs == 0) {
        free(d->topics);
        free(d->subs);
        free(d);
    }
}

int sld_metrics_snap_new(sld_metrics_snap_t **out)
{
    sld_metrics_snap_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    if (pthread_mutex_init(&self->lock, NULL) != 0) {
        free(self);
        return SL_ESYS;
    }
    self->shown.state = SLD_SNAP_STARTING;
    *out = self;
    return 0;
}

void sld_metrics_snap_destroy(sld_metrics_snap_t **self_p)
{
    sld_metrics_snap_t *self = *self_p;
    if (!self)
        return;
    s_unref(self->detail);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void sld_hist_observe(sld_hist_t *h, const double *bounds, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    h->buckets[i]++;            /* i == n: +Inf */
    h->sum += v;
    h->count++;
}

void sld_metrics_snap_commit(sld_metrics_snap_t *self, double seconds, uint64_t msgs)
{
    sld_hist_observe(&self->seconds, sld_hist_seconds_bounds, SLD_HIST_SECONDS_N, seconds);
    sld_hist_observe(&self->batch, sld_hist_batch_bounds, SLD_HIST_BATCH_N, (double) msgs);
}

uint64_t sld_metrics_snap_due(const sld_metrics_snap_t *self, uint64_t now_ms, bool force)
{
    if (force || self->last_ms == 0 || now_ms >= self->last_ms + SLD_SNAP_PERIOD_MS)
        return 0;
    return self->last_ms + SLD_SNAP_PERIOD_MS - now_ms;
}

void sld_metrics_snap_publish(sld_metrics_snap_t *self, const sld_metrics_values_t *values,
                              sld_metrics_detail_t **detail, uint64_t now_ms)
{
    pthread_mutex_lock(&self->lock);
    self->shown = *values;
    self->shown.commit_seconds = self->seconds;
    self->shown.commit_batch = self->batch;
    sld_metrics_detail_t *old = self->detail;
    self->detail = detail ? *detail : NULL;
    s_unref(old);
    pthread_mutex_unlock(&self->lock);
    if (detail)
        *detail = NULL;
    self->last_ms = now_ms ? now_ms : 1;
}

void sld_metrics_snap_set_state(sld_metrics_snap_t *self, sld_snap_state_t state)
{
    pthread_mutex_lock(&self->lock);
    self->shown.state = state;
    pthread_mutex_unlock(&self->lock);
}

void sld_metrics_snap_read(sld_metrics_snap_t *self, sld_metrics_values_t *out,
                           const sld_metrics_detail_t **detail)
{
    pthread_mutex_lock(&self->lock);
    *out = self->shown;
    if (detail) {
        *detail = self->detail;
        if (self->detail)
            self->detail->refs++;
    }
    pthread_mutex_unlock(&self->lock);
}

void sld_metrics_snap_release(sld_metrics_snap_t *self, const sld_metrics_detail_t **detail)
{
    if (!detail || !*detail)
        return;
    pthread_mutex_lock(&self->lock);
    s_unref((sld_metrics_detail_t *) *detail);
    pthread_mutex_unlock(&self->lock);
    *detail = NULL;
}
