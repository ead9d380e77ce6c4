/*  sld_delivery - subscription lifecycle: create the module and load the
 *  durable subscriptions from the store, subscribe (create, take over),
 *  match new topics, detach, unsubscribe and remove, lookup and claim,
 *  credit, a session's end, and the SubInfo listing. Owns every
 *  subscription (sld_delivery_int.h says how the module's files share
 *  them). Broker thread only. It sends nothing and writes nothing to the
 *  store: the pump sends (sld_delivery_pump.c), persist writes
 *  (sld_delivery_persist.c).  */
#include "sld_delivery_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DEFAULT_CREDIT 1000

static int s_subvec_add(sld_delivery_subvec_t *vec, sld_delivery_sub_t *sub)
{
    int rc = slc_grow((void **) &vec->v, &vec->cap, vec->n + 1, sizeof(sld_delivery_sub_t *));
    if (rc == 0)
        vec->v[vec->n++] = sub;
    return rc;
}

static void s_subvec_remove(sld_delivery_subvec_t *vec, sld_delivery_sub_t *sub)
{
    for (size_t i = 0; i < vec->n; i++)
        if (vec->v[i] == sub) {
            vec->v[i] = vec->v[--vec->n];
            return;
        }
}

static void s_sub_free(sld_delivery_sub_t **sub_p)
{
    sld_delivery_sub_t *sub = *sub_p;
    if (!sub)
        return;
    for (size_t i = 0; i < sub->ntopics; i++) {
        free(sub->topics[i].acked.v);
        free(sub->topics[i].fresh);
    }
    free(sub->topics);
    for (size_t i = 0; i < sub->flight.cap; i++)
        if (sub->flight.slot[i].state != SLD_FLIGHT_FREE)
            free(sub->flight.slot[i].reason);
    free(sub->flight.slot);
    free(sub->timers.v);
    sld_due_clear(&sub->ready);
    free(sub->owed.v);
    free(sub);
    *sub_p = NULL;
}

static int s_sub_new(sld_delivery_t *self, sld_delivery_sub_t **out)
{
    sld_delivery_sub_t *sub = calloc(1, sizeof(sld_delivery_sub_t));
    if (!sub)
        return SL_ENOMEM;
    size_t cap = 16;
    while (cap < 2 * (size_t) self->opts.max_inflight + 2)
        cap *= 2;
    sub->flight.cap = cap;
    sub->flight.slot = calloc(cap, sizeof(sld_delivery_flight_t));
    if (!sub->flight.slot) {
        free(sub);
        return SL_ENOMEM;
    }
    *out = sub;
    return 0;
}

sld_delivery_subtopic_t *sld_delivery__subtopic_find(sld_delivery_sub_t *sub,
                                                     uint32_t topic_id)
{
    for (size_t i = 0; i < sub->ntopics; i++)
        if (sub->topics[i].topic_id == topic_id)
            return &sub->topics[i];
    return NULL;
}

void sld_delivery__mark_dirty(sld_delivery_t *self, sld_delivery_sub_t *sub)
{
    if (!sub->dirty && !sub->ephemeral && s_subvec_add(&self->dirty, sub) == 0)
        sub->dirty = true;
}

void sld_delivery__wake(sld_delivery_t *self, sld_delivery_sub_t *sub)
{
    if (!sub->awake && sub->session && s_subvec_add(&self->awake, sub) == 0)
        sub->awake = true;
}

static void s_retired_free(void **item)
{
    free(*item);
    *item = NULL;
}

static void s_acct_free(void **item)
{
    free(*item);
    *item = NULL;
}

static sld_delivery_subvec_t *s_topic_subs(sld_delivery_t *self, uint32_t id)
{
    if (id >= self->ntopic_subs) {
        size_t n = (size_t) id + 1;
        sld_delivery_subvec_t *nv = realloc(self->topic_subs,
                                            n * sizeof(sld_delivery_subvec_t));
        if (!nv)
            return NULL;
        memset(nv + self->ntopic_subs, 0,
               (n - self->ntopic_subs) * sizeof(sld_delivery_subvec_t));
        self->topic_subs = nv;
        self->ntopic_subs = (uint32_t) n;
    }
    return &self->topic_subs[id];
}

/* Add topic INFO to SUB with its starting floor. FROM_START says the topic
 * appeared after the subscription, so every message of it is new to SUB. */
static int s_sub_add_topic(sld_delivery_t *self, sld_delivery_sub_t *sub,
                           const sld_topic_info_t *info, uint64_t floor)
{
    int rc = slc_grow((void **) &sub->topics, &sub->captopics, sub->ntopics + 1,
                    sizeof(sld_delivery_subtopic_t));
    if (rc)
        return rc;
    sld_delivery_subvec_t *vec = s_topic_subs(self, info->id);
    if (!vec)
        return SL_ENOMEM;
    rc = s_subvec_add(vec, sub);
    if (rc)
        return rc;
    sld_delivery_subtopic_t *st = &sub->topics[sub->ntopics++];
    memset(st, 0, sizeof(*st));
    st->topic_id = info->id;
    st->floor = floor;
    st->next = floor;
    st->persisted_floor = floor;
    return 0;
}

/* Where a new subscription starts on an existing topic. */
static uint64_t s_start_floor(sld_delivery_t *self, const sld_delivery_sub_t *sub,
                              const sld_topic_info_t *info)
{
    switch (sub->start) {
    case SLUICE__START_KIND__START_EARLIEST:
        return info->first_offset;
    case SLUICE__START_KIND__START_OFFSET:
        return sub->start_offset < info->first_offset ? info->first_offset
             : sub->start_offset > info->next_offset ? info->next_offset
             : sub->start_offset;
    case SLUICE__START_KIND__START_TIME: {
        sld_txn_t *txn = NULL;
        uint64_t off = info->next_offset;
        if (sld_store_begin(self->store, false, &txn) == 0) {
            off = sld_store_offset_at_time(txn, info->id, sub->start_time_us);
            sld_txn_abort(&txn);
        }
        return off;
    }
    default:
        return info->next_offset;
    }
}

/* Durable names become part of the dead-letter topic `_dlq.<name>`, so they
 * follow the topic-name rules (and may not start with '_'). */
static bool s_valid_sub_name(const char *name)
{
    return strnlen(name, 201) <= 200 && slc_topic_validate(name, false) == 0;
}

/* Match SUB against every topic the store knows; new subscriptions start
 * per their start position, loaded ones at their stored cursor. */
static int s_sub_match_all(sld_delivery_t *self, sld_delivery_sub_t *sub, sld_txn_t *txn)
{
    size_t n = sld_store_topic_count(self->store);
    for (size_t i = 0; i < n; i++) {
        const sld_topic_info_t *info = sld_store_topic_at(self->store, i);
        if (!slc_pattern_match(sub->pattern, info->name))
            continue;
        uint64_t floor = 0;
        int rc = SL_ENOTFOUND;
        if (txn)
            rc = sld_subrec_cursor_get(txn, sub->name, info->id, &floor);
        if (rc == SL_ENOTFOUND)
            floor = txn ? info->first_offset : s_start_floor(self, sub, info);
        else if (rc)
            return rc;
        if (floor < info->first_offset)
            floor = info->first_offset;
        rc = s_sub_add_topic(self, sub, info, floor);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_load_acked(uint64_t offset, void *arg)
{
    sld_delivery_subtopic_t *st = arg;
    st->persisted_acked++;
    return sld_delivery__oset_add(&st->acked, offset);
}

static int s_register(sld_delivery_t *self, sld_delivery_sub_t *sub)
{
    int rc = s_subvec_add(&self->subs, sub);
    if (rc)
        return rc;
    sub->sub_id = ++self->next_sub_id;
    char key[16];
    snprintf(key, sizeof key, "%u", sub->sub_id);
    zhashx_insert(self->by_id, key, sub);
    if (!sub->ephemeral)
        zhashx_insert(self->by_name, sub->name, sub);
    return 0;
}

static void s_unregister(sld_delivery_t *self, sld_delivery_sub_t *sub)
{
    char key[16];
    snprintf(key, sizeof key, "%u", sub->sub_id);
    zhashx_delete(self->by_id, key);
    if (!sub->ephemeral && zhashx_lookup(self->by_name, sub->name) == sub)
        zhashx_delete(self->by_name, sub->name);
    s_subvec_remove(&self->subs, sub);
    sld_delivery__acct_release(self, sub);
    s_subvec_remove(&self->awake, sub);
    s_subvec_remove(&self->dirty, sub);
    for (size_t i = 0; i < sub->ntopics; i++)
        if (sub->topics[i].topic_id < self->ntopic_subs)
            s_subvec_remove(&self->topic_subs[sub->topics[i].topic_id], sub);
}

static int s_sub_load(const char *name, const void *config, size_t len, void *arg)
{
    void **ctx = arg;
    sld_delivery_t *self = ctx[0];
    sld_txn_t *txn = ctx[1];
    Sluice__Subscribe *cfg = sluice__subscribe__unpack(NULL, len, config);
    if (!cfg) {
        fprintf(stderr, "sluiced: subscription %s: stored config does not decode\n", name);
        return SL_ESTORE;
    }
    sld_delivery_sub_t *sub = NULL;
    int rc = s_sub_new(self, &sub);
    if (rc)
        goto fail;
    snprintf(sub->name, sizeof sub->name, "%s", name);
    snprintf(sub->pattern, sizeof sub->pattern, "%s", cfg->pattern);
    snprintf(sub->owner, sizeof sub->owner, "%s", cfg->owner ? cfg->owner : "");
    sub->ack_wait_ms = cfg->ack_wait_ms;
    sub->max_deliver = cfg->max_deliver;
    sub->start = cfg->start;
    rc = s_sub_match_all(self, sub, txn);
    for (size_t i = 0; rc == 0 && i < sub->ntopics; i++) {
        sld_delivery_subtopic_t *st = &sub->topics[i];
        rc = sld_subrec_acked_foreach(txn, sub->name, st->topic_id, st->floor,
                                      s_load_acked, st);
    }
    if (rc == 0)
        rc = s_register(self, sub);
    if (rc)
        goto fail;
    sluice__subscribe__free_unpacked(cfg, NULL);
    return 0;
fail:
    s_sub_free(&sub);
    sluice__subscribe__free_unpacked(cfg, NULL);
    return rc;
}

int sld_delivery_new(sld_store_t *store, sld_metrics_t *metrics,
                     const sld_delivery_options_t *opts,
                     const sld_outbox_t *outbox, sld_delivery_t **out)
{
    int rc = SL_ENOMEM;
    sld_txn_t *txn = NULL;
    sld_delivery_t *self = calloc(1, sizeof(sld_delivery_t));
    if (!self)
        return SL_ENOMEM;
    self->store = store;
    self->metrics = metrics;
    self->opts = *opts;
    if (self->opts.deliver_batch == 0)
        self->opts.deliver_batch = 1000;
    if (self->opts.max_inflight == 0)
        self->opts.max_inflight = 10000;
    self->outbox = *outbox;
    self->next_token = slc_now_us();
    self->by_name = zhashx_new();
    self->by_id = zhashx_new();
    self->accts = zhashx_new();
    self->retired = zhashx_new();
    self->items = calloc(self->opts.deliver_batch, sizeof(Sluice__Delivery));
    self->item_ptrs = calloc(self->opts.deliver_batch, sizeof(Sluice__Delivery *));
    if (!self->by_name || !self->by_id || !self->accts || !self->retired
        || !self->items || !self->item_ptrs)
        goto fail;
    zhashx_set_destructor(self->accts, s_acct_free);
    zhashx_set_destructor(self->retired, s_retired_free);
    for (uint32_t i = 0; i < self->opts.deliver_batch; i++)
        self->item_ptrs[i] = &self->items[i];
    rc = sld_store_begin(store, false, &txn);
    if (rc)
        goto fail;
    void *ctx[2] = { self, txn };
    rc = sld_subrec_foreach(txn, s_sub_load, ctx);
    sld_txn_abort(&txn);
    if (rc)
        goto fail;
    /* Every stored topic was matched against every loaded subscription. */
    for (size_t i = 0; i < sld_store_topic_count(store); i++) {
        sld_delivery_subvec_t *vec = s_topic_subs(self, sld_store_topic_at(store, i)->id);
        if (!vec)
            goto fail;
        vec->known = true;
    }
    *out = self;
    return 0;
fail:
    sld_delivery_destroy(&self);
    return rc ? rc : SL_ENOMEM;
}

void sld_delivery_destroy(sld_delivery_t **self_p)
{
    sld_delivery_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->subs.n; i++)
        s_sub_free(&self->subs.v[i]);
    free(self->subs.v);
    for (uint32_t i = 0; i < self->ntopic_subs; i++)
        free(self->topic_subs[i].v);
    free(self->topic_subs);
    free(self->awake.v);
    free(self->dirty.v);
    for (size_t i = 0; i < self->nremoved; i++)
        free(self->removed[i]);
    free(self->removed);
    sld_delivery__dlq_clear(self);
    free(self->dlq);
    free(self->seeks);
    free(self->appended);
    free(self->items);
    free(self->item_ptrs);
    free(self->scratch);
    zhashx_destroy(&self->by_name);
    zhashx_destroy(&self->by_id);
    zhashx_destroy(&self->accts);
    zhashx_destroy(&self->retired);
    free(self);
    *self_p = NULL;
}

/* Topics the store knows but we have not matched yet (created since). */
static void s_discover(sld_delivery_t *self, uint32_t id)
{
    if (id < self->ntopic_subs && self->topic_subs[id].known)
        return;
    const sld_topic_info_t *info = sld_store_topic_by_id(self->store, id);
    sld_delivery_subvec_t *vec = info ? s_topic_subs(self, id) : NULL;
    if (!vec)
        return;
    vec->known = true;
    for (size_t i = 0; i < self->subs.n; i++) {
        sld_delivery_sub_t *sub = self->subs.v[i];
        if (!slc_pattern_match(sub->pattern, info->name))
            continue;
        /* The topic is younger than the subscription: all of it is new. */
        if (s_sub_add_topic(self, sub, info, info->first_offset) == 0) {
            sub->topics[sub->ntopics - 1].dirty = true;
            sld_delivery__mark_dirty(self, sub);
        }
    }
}

sld_delivery_sub_t *sld_delivery__by_id(sld_delivery_t *self, sld_session_t *session,
                                        uint32_t sub_id)
{
    char key[16];
    snprintf(key, sizeof key, "%u", sub_id);
    sld_delivery_sub_t *sub = zhashx_lookup(self->by_id, key);
    return sub && sub->session == session ? sub : NULL;
}

/* Every in-flight attempt of SUB becomes due for redelivery now; the due
 * heap hands them to the next consumer in offset order. */
static void s_detach(sld_delivery_t *self, sld_delivery_sub_t *sub)
{
    sld_delivery__acct_release(self, sub);
    for (size_t i = 0; i < sub->flight.cap; i++) {
        sld_delivery_flight_t *f = &sub->flight.slot[i];
        /* Without memory for the key it stays SENT and comes back through
         * its ack_wait deadline: later, never lost. */
        if ((f->state == SLD_FLIGHT_SENT || f->state == SLD_FLIGHT_DELAYED)
            && sld_due_add(&sub->ready, f->topic_id, f->offset) == 0)
            sld_delivery__set_state(self, sub, f, SLD_FLIGHT_READY);
    }
    sub->session = NULL;
    sub->credit = 0;
}

/* Give SUB a new id; the old one, if a consumer still holds it, is kept in
 * retired. 0 or SL_ENOMEM. */
static int s_rekey(sld_delivery_t *self, sld_delivery_sub_t *sub)
{
    char key[16];
    snprintf(key, sizeof key, "%u", sub->sub_id);
    if (sub->session) {
        sld_delivery_retired_t *r = calloc(1, sizeof *r);
        if (!r)
            return SL_ENOMEM;
        r->session = sub->session;
        snprintf(r->name, sizeof r->name, "%s", sub->name);
        zhashx_update(self->retired, key, r);
    }
    zhashx_delete(self->by_id, key);
    sub->sub_id = ++self->next_sub_id;
    snprintf(key, sizeof key, "%u", sub->sub_id);
    zhashx_insert(self->by_id, key, sub);
    return 0;
}

int sld_delivery_subscribe(sld_delivery_t *self, sld_session_t *session,
                           const Sluice__Subscribe *req, const char *owner,
                           Sluice__SubscribeOk *reply, char *err, size_t errlen)
{
    int rc = 0;
    sld_delivery_sub_t *sub = NULL;
    if (!req->pattern || slc_pattern_validate(req->pattern) != 0) {
        slc_errf(err, errlen,
                 "invalid topic pattern: words of [A-Za-z0-9_-] separated by '.', '*' for one word, '>' last for the rest");
        return SL_EINVAL;
    }
    if (!req->ephemeral && (!req->name || !s_valid_sub_name(req->name))) {
        slc_errf(err, errlen,
                 "invalid subscription name: 1-200 characters of [A-Za-z0-9_.-], not starting with '_' or '.'");
        return SL_EINVAL;
    }
    if (req->start > SLUICE__START_KIND__START_TIME) {
        slc_errf(err, errlen, "unknown start position");
        return SL_EINVAL;
    }
    if (!req->ephemeral)
        sub = zhashx_lookup(self->by_name, req->name);
    if (sub) {
        if (strcmp(sub->pattern, req->pattern) != 0) {
            slc_errf(err, errlen,
                     "a durable subscription with this name exists with another pattern");
            return SL_EEXIST;
        }
        /* Take-over: the newest consumer wins; what the previous one had
         * in flight is delivered again to this one. */
        rc = s_rekey(self, sub);
        if (rc)
            return rc;
        if (sub->session)
            s_detach(self, sub);
    }
    else {
        if (self->subs.n >= self->opts.max_subscriptions) {
            slc_errf(err, errlen, "too many subscriptions (limits/max_subscriptions)");
            return SL_EBUSY;
        }
        rc = s_sub_new(self, &sub);
        if (rc)
            return rc;
        sub->ephemeral = req->ephemeral;
        if (sub->ephemeral)
            snprintf(sub->name, sizeof sub->name, "_ephemeral.%u", self->next_sub_id + 1);
        else
            snprintf(sub->name, sizeof sub->name, "%s", req->name);
        snprintf(sub->pattern, sizeof sub->pattern, "%s", req->pattern);
        /* The owner is the broker's to set: req->owner is ignored. */
        if (!sub->ephemeral)
            snprintf(sub->owner, sizeof sub->owner, "%s", owner ? owner : "");
        sub->ack_wait_ms = req->ack_wait_ms ? req->ack_wait_ms : self->opts.ack_wait_ms;
        sub->max_deliver = req->max_deliver ? req->max_deliver : self->opts.max_deliver;
        sub->start = req->start;
        sub->start_offset = req->start_offset;
        sub->start_time_us = req->start_time_us;
        rc = s_sub_match_all(self, sub, NULL);
        if (rc == 0)
            rc = s_register(self, sub);
        if (rc) {
            s_sub_free(&sub);
            return rc;
        }
        if (!sub->ephemeral) {
            sub->config_dirty = true;
            for (size_t i = 0; i < sub->ntopics; i++)
                sub->topics[i].dirty = true;
            sld_delivery__mark_dirty(self, sub);
        }
    }
    sub->session = session;
    sub->subscribed_at = self->replies_sent;
    sld_delivery__acct_attach(self, sub, session);
    sub->credit = req->credit ? req->credit : S_DEFAULT_CREDIT;
    sld_delivery__wake(self, sub);
    reply->name = sub->name;
    reply->sub_id = sub->sub_id;
    reply->ack_wait_ms = sub->ack_wait_ms;
    reply->max_deliver = sub->max_deliver;
    return 0;
}

static int s_remove_sub(sld_delivery_t *self, sld_delivery_sub_t *sub)
{
    if (!sub->ephemeral) {
        int rc = slc_grow((void **) &self->removed, &self->capremoved,
                        self->nremoved + 1, sizeof(char *));
        char *name = rc ? NULL : strdup(sub->name);
        if (!name)
            return SL_ENOMEM;
        self->removed[self->nremoved++] = name;
    }
    s_unregister(self, sub);
    s_sub_free(&sub);
    return 0;
}

int sld_delivery_unsubscribe(sld_delivery_t *self, sld_session_t *session,
                             uint32_t sub_id, bool remove)
{
    sld_delivery_sub_t *sub = sld_delivery__by_id(self, session, sub_id);
    if (!sub)
        return SL_ENOTFOUND;
    if (remove || sub->ephemeral)
        return s_remove_sub(self, sub);
    s_detach(self, sub);
    return 0;
}

int sld_delivery_remove(sld_delivery_t *self, const char *name)
{
    sld_delivery_sub_t *sub = zhashx_lookup(self->by_name, name);
    return sub ? s_remove_sub(self, sub) : SL_ENOTFOUND;
}

int sld_delivery_lookup(sld_delivery_t *self, sld_session_t *session, uint32_t sub_id,
                        const char *name, sld_sub_ref_t *out)
{
    sld_delivery_sub_t *sub = name ? zhashx_lookup(self->by_name, name)
                                   : sld_delivery__by_id(self, session, sub_id);
    if (!sub)
        return SL_ENOTFOUND;
    out->name = sub->name;
    out->pattern = sub->pattern;
    out->owner = sub->owner;
    out->ephemeral = sub->ephemeral;
    return 0;
}

int sld_delivery_claim(sld_delivery_t *self, const char *name, const char *owner)
{
    sld_delivery_sub_t *sub = zhashx_lookup(self->by_name, name);
    if (!sub)
        return SL_ENOTFOUND;
    if (sub->owner[0])
        return SL_EEXIST;
    sld_delivery__mark_dirty(self, sub);
    if (!sub->dirty)
        return SL_ENOMEM;
    snprintf(sub->owner, sizeof sub->owner, "%s", owner);
    sub->config_dirty = true;
    return 0;
}

int sld_delivery_credit(sld_delivery_t *self, sld_session_t *session,
                        uint32_t sub_id, uint32_t credit)
{
    sld_delivery_sub_t *sub = sld_delivery__by_id(self, session, sub_id);
    if (!sub)
        return SL_ENOTFOUND;
    sub->credit += credit;
    if (sub->ephemeral)
        sld_delivery__eph_paid(self, sub, credit);
    sld_delivery__wake(self, sub);
    return 0;
}

void sld_delivery_session_gone(sld_delivery_t *self, sld_session_t *session)
{
    /* Its retired ids go with it (deleting restarts the walk). */
    bool again = true;
    while (again) {
        again = false;
        for (sld_delivery_retired_t *r = zhashx_first(self->retired); r;
             r = zhashx_next(self->retired))
            if (r->session == session) {
                zhashx_delete(self->retired, zhashx_cursor(self->retired));
                again = true;
                break;
            }
    }
    for (size_t i = 0; i < self->subs.n;) {
        sld_delivery_sub_t *sub = self->subs.v[i];
        if (sub->session != session) {
            i++;
            continue;
        }
        if (sub->ephemeral) {
            s_unregister(self, sub);    /* swaps the last into slot i */
            s_sub_free(&sub);
            continue;
        }
        s_detach(self, sub);
        i++;
    }
}

void sld_delivery_topic_appended(sld_delivery_t *self, uint32_t id)
{
    s_discover(self, id);
    if (id >= self->ntopic_subs || !self->topic_subs[id].known)
        return;
    sld_delivery_subvec_t *vec = &self->topic_subs[id];
    for (size_t i = 0; i < vec->n; i++)
        sld_delivery__wake(self, vec->v[i]);
}

int sld_delivery_stats(sld_delivery_t *self, Sluice__SubInfo ***subs, size_t *n)
{
    *n = 0;
    *subs = calloc(self->subs.n + 1, sizeof(Sluice__SubInfo *));
    if (!*subs)
        return SL_ENOMEM;
    for (size_t i = 0; i < self->subs.n; i++) {
        sld_delivery_sub_t *sub = self->subs.v[i];
        Sluice__SubInfo *si = calloc(1, sizeof(Sluice__SubInfo));
        if (!si) {
            sld_delivery_stats_free(subs, *n);
            return SL_ENOMEM;
        }
        sluice__sub_info__init(si);
        si->name = sub->name;
        si->pattern = sub->pattern;
        si->owner = sub->owner;
        si->ephemeral = sub->ephemeral;
        si->attached = sub->session != NULL;
        for (size_t k = 0; k < sub->ntopics; k++) {
            const sld_delivery_subtopic_t *st = &sub->topics[k];
            const sld_topic_info_t *info = sld_store_topic_by_id(self->store, st->topic_id);
            si->cursor += st->floor;
            if (info && !sub->ephemeral && info->next_offset > st->floor)
                si->lag += info->next_offset - st->floor - st->acked.n;
            else if (info && sub->ephemeral && info->next_offset > st->next)
                si->lag += info->next_offset - st->next;
        }
        si->in_flight = (uint32_t) sub->flight.count;
        si->delivered = sub->delivered;
        si->redelivered = sub->redelivered;
        si->dead_lettered = sub->dead_lettered;
        si->acked = sub->acked;
        si->dropped = sub->dropped;
        (*subs)[(*n)++] = si;
    }
    return 0;
}

void sld_delivery_stats_free(Sluice__SubInfo ***subs, size_t n)
{
    if (!subs || !*subs)
        return;
    for (size_t i = 0; i < n; i++)
        free((*subs)[i]);
    free(*subs);
    *subs = NULL;
}
