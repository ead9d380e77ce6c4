/*  sld_topics - topic policy: publishable names, default retention, trim
 *  schedule, listings. Owns only its options and the next trim time;
 *  borrows store and metrics. Broker thread only. It keeps no records:
 *  the store does (see sld_topics.h).  */
#include "sld_topics.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sld_topics {
    sld_store_t *store;
    sld_metrics_t *metrics;
    sld_topics_options_t opts;
    uint64_t next_trim_ms;
};

int sld_topics_new(sld_store_t *store, sld_metrics_t *metrics,
                   const sld_topics_options_t *opts, sld_topics_t **out)
{
    sld_topics_t *self = calloc(1, sizeof(sld_topics_t));
    if (!self)
        return SL_ENOMEM;
    self->store = store;
    self->metrics = metrics;
    self->opts = *opts;
    if (self->opts.trim_interval_ms == 0)
        self->opts.trim_interval_ms = 1000;
    if (self->opts.trim_batch == 0)
        self->opts.trim_batch = 10000;
    *out = self;
    return 0;
}

void sld_topics_destroy(sld_topics_t **self_p)
{
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

/* Find or create NAME; a topic new to the committed state gets the default
 * retention unless SET gives explicit limits. */
static int s_ensure(sld_topics_t *self, sld_txn_t *txn, const char *name,
                    uint64_t max_age_ms, uint64_t max_bytes, bool set,
                    uint32_t *id)
{
    bool known = sld_store_topic_by_name(self->store, name) != NULL;
    int rc = sld_store_topic_ensure(txn, name, id);
    if (rc == 0 && (set || !known))
        rc = sld_store_topic_set_retention(txn, *id,
                max_age_ms ? max_age_ms : self->opts.max_age_ms,
                max_bytes ? max_bytes : self->opts.max_bytes);
    return rc;
}

int sld_topics_resolve(sld_topics_t *self, sld_txn_t *txn, const char *name,
                       uint32_t *id, char *err, size_t errlen)
{
    /* A stored topic was validated when it was created; the broker's own
     * (a leading '_') are stored too, and refused below. */
    const sld_topic_info_t *info = name ? sld_store_topic_by_name(self->store, name) : NULL;
    if (info && name[0] != '_') {
        *id = info->id;
        return 0;
    }
    if (!name || slc_topic_validate(name, false) != 0) {
        slc_errf(err, errlen, "%s", name && name[0] == '_'
             ? "topic names starting with '_' belong to the broker"
             : "invalid topic name: dot-separated words of [A-Za-z0-9_-], at most 255 bytes");
        return SL_EINVAL;
    }
    return s_ensure(self, txn, name, 0, 0, false, id);
}

int sld_topics_create(sld_topics_t *self, sld_txn_t *txn, const char *name,
                      uint64_t max_age_ms, uint64_t max_bytes, uint32_t *id,
                      char *err, size_t errlen)
{
    if (!name || slc_topic_validate(name, false) != 0) {
        slc_errf(err, errlen,
                 "invalid topic name: dot-separated words of [A-Za-z0-9_-], not starting with '_'");
        return SL_EINVAL;
    }
    return s_ensure(self, txn, name, max_age_ms, max_bytes, true, id);
}

uint64_t sld_topics_dedup_window_us(const sld_topics_t *self)
{
    return self->opts.dedup_window_ms * 1000u;
}

int sld_topics_trim(sld_topics_t *self, uint64_t now_ms)
{
    if (now_ms < self->next_trim_ms)
        return (int) (self->next_trim_ms - now_ms);
    size_t trimmed = 0;
    int rc = sld_store_trim(self->store, slc_now_us(), sld_topics_dedup_window_us(self),
                            self->opts.trim_batch, &trimmed);
    if (rc)
        fprintf(stderr, "sluiced: retention pass failed: %s\n", slc_strerror(rc));
    sld_metrics_add(self->metrics, SLD_M_TRIMMED, trimmed);
    /* A full pass means more is waiting: come back soon, not in a second. */
    uint32_t wait = trimmed >= self->opts.trim_batch ? 10 : self->opts.trim_interval_ms;
    self->next_trim_ms = now_ms + wait;
    return (int) wait;
}

int sld_topics_info(sld_topics_t *self, Sluice__TopicInfo ***out, size_t *n)
{
    size_t count = sld_store_topic_count(self->store);
    *n = 0;
    *out = calloc(count + 1, sizeof(Sluice__TopicInfo *));
    if (!*out)
        return SL_ENOMEM;
    for (size_t i = 0; i < count; i++) {
        const sld_topic_info_t *t = sld_store_topic_at(self->store, i);
        Sluice__TopicInfo *ti = calloc(1, sizeof(Sluice__TopicInfo));
        if (!ti) {
            sld_topics_info_free(out, *n);
            return SL_ENOMEM;
        }
        sluice__topic_info__init(ti);
        ti->name = (char *) t->name;
        ti->id = t->id;
        ti->first_offset = t->first_offset;
        ti->next_offset = t->next_offset;
        ti->messages = t->messages;
        ti->bytes = t->bytes;
        ti->max_age_ms = t->max_age_ms;
        ti->max_bytes = t->max_bytes;
        (*out)[(*n)++] = ti;
    }
    return 0;
}

void sld_topics_info_free(Sluice__TopicInfo ***out, size_t n)
{
    if (!out || !*out)
        return;
    for (size_t i = 0; i < n; i++)
        free((*out)[i]);
    free(*out);
    *out = NULL;
}
