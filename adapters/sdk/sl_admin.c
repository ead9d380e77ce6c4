/*  sl_admin - the request/response admin calls: topic create, stats,
 *  counters, subscription removal. Owns nothing beyond each call; results
 *  are copied out (stats arrays are malloc'd for the caller). Client thread
 *  only. Each call waits at most connect_timeout_ms, doing the client's
 *  other I/O meanwhile (sli_request), and is resent after a reconnect.  */
#include "sl_internal.h"
#include <stdlib.h>
#include <string.h>

static int s_expect(Sluice__Frame **reply, Sluice__Frame__BodyCase body)
{
    int rc = (*reply)->body_case == body ? 0 : SL_EMALFORMED;
    if (rc)
        SLI_LOG("unexpected answer from the broker: %s", slc_frame_name(*reply));
    return rc;
}

int sl_topic_create(sl_client_t *self, const char *name,
                    uint64_t max_age_ms, uint64_t max_bytes)
{
    int rc = 0;
    Sluice__Frame *reply = NULL;
    if (!name || slc_topic_validate(name, false) != 0)
        return SL_EINVAL;
    Sluice__TopicCreate tc = SLUICE__TOPIC_CREATE__INIT;
    tc.name = (char *) name;
    tc.max_age_ms = max_age_ms;
    tc.max_bytes = max_bytes;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_TOPIC_CREATE;
    f.topic_create = &tc;
    rc = sli_request(self, &f, true, self->opts.connect_timeout_ms, &reply);
    if (rc)
        goto fail;
    rc = s_expect(&reply, SLUICE__FRAME__BODY_OK);
fail:
    slc_frame_free(&reply);
    return rc;
}

static int s_stats(sl_client_t *self, bool topics, bool subs, bool counters,
                   Sluice__Frame **reply)
{
    Sluice__StatsRequest sr = SLUICE__STATS_REQUEST__INIT;
    sr.topics = topics;
    sr.subs = subs;
    sr.counters = counters;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_STATS;
    f.stats = &sr;
    int rc = sli_request(self, &f, true, self->opts.connect_timeout_ms, reply);
    if (rc == 0)
        rc = s_expect(reply, SLUICE__FRAME__BODY_STATS_REPLY);
    return rc;
}

int sl_stats(sl_client_t *self, sl_topic_info_t **topics, size_t *ntopics,
             sl_sub_info_t **subs, size_t *nsubs)
{
    int rc = 0;
    Sluice__Frame *reply = NULL;
    sl_topic_info_t *t = NULL;
    sl_sub_info_t *s = NULL;
    if ((topics && !ntopics) || (subs && !nsubs))
        return SL_EINVAL;
    if (topics) {
        *topics = NULL;
        *ntopics = 0;
    }
    if (subs) {
        *subs = NULL;
        *nsubs = 0;
    }
    rc = s_stats(self, topics != NULL, subs != NULL, false, &reply);
    if (rc)
        goto fail;
    const Sluice__StatsReply *st = reply->stats_reply;
    if (topics && st->n_topics) {
        t = calloc(st->n_topics, sizeof *t);
        if (!t) {
            rc = SL_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < st->n_topics; i++) {
            const Sluice__TopicInfo *ti = st->topics[i];
            snprintf(t[i].name, sizeof t[i].name, "%s", ti->name);
            t[i].first_offset = ti->first_offset;
            t[i].next_offset = ti->next_offset;
            t[i].messages = ti->messages;
            t[i].bytes = ti->bytes;
            t[i].max_age_ms = ti->max_age_ms;
            t[i].max_bytes = ti->max_bytes;
        }
    }
    if (subs && st->n_subs) {
        s = calloc(st->n_subs, sizeof *s);
        if (!s) {
            rc = SL_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < st->n_subs; i++) {
            const Sluice__SubInfo *si = st->subs[i];
            snprintf(s[i].name, sizeof s[i].name, "%s", si->name);
            snprintf(s[i].pattern, sizeof s[i].pattern, "%s", si->pattern);
            s[i].ephemeral = si->ephemeral;
            s[i].attached = si->attached;
            s[i].lag = si->lag;
            s[i].in_flight = si->in_flight;
            s[i].delivered = si->delivered;
            s[i].redelivered = si->redelivered;
            s[i].dead_lettered = si->dead_lettered;
            s[i].acked = si->acked;
            s[i].cursor = si->cursor;
            s[i].dropped = si->dropped;
        }
    }
    if (topics) {
        *topics = t;
        *ntopics = t ? st->n_topics : 0;
        t = NULL;
    }
    if (subs) {
        *subs = s;
        *nsubs = s ? st->n_subs : 0;
        s = NULL;
    }
fail:
    free(t);
    free(s);
    slc_frame_free(&reply);
    return rc;
}

int sl_counters(sl_client_t *self,
                void (*cb)(const char *name, uint64_t value, void *arg),
                void *arg)
{
    int rc = 0;
    Sluice__Frame *reply = NULL;
    if (!cb)
        return SL_EINVAL;
    rc = s_stats(self, false, false, true, &reply);
    if (rc)
        goto fail;
    const Sluice__StatsReply *st = reply->stats_reply;
    for (size_t i = 0; i < st->n_counters; i++)
        cb(st->counters[i]->name, st->counters[i]->value, arg);
fail:
    slc_frame_free(&reply);
    return rc;
}

int sl_sub_remove(sl_client_t *self, const char *name)
{
    int rc = 0;
    Sluice__Frame *reply = NULL;
    if (!name || !*name)
        return SL_EINVAL;
    Sluice__SubRemove sr = SLUICE__SUB_REMOVE__INIT;
    sr.name = (char *) name;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_SUB_REMOVE;
    f.sub_remove = &sr;
    rc = sli_request(self, &f, true, self->opts.connect_timeout_ms, &reply);
    if (rc)
        goto fail;
    rc = s_expect(&reply, SLUICE__FRAME__BODY_OK);
fail:
    slc_frame_free(&reply);
    return rc;
}
