/*  sl_admin - the request/response admin calls: topic create, stats,
 *  counters, subscription removal, identities (keys and grants) and data
 *  key rotation. Owns nothing beyond each call; results are copied out
 *  (stats arrays and identity lists are malloc'd for the caller). Client
 *  thread only. Each call waits at most connect_timeout_ms, doing the
 *  client's other I/O meanwhile (sli_request), and is resent after a
 *  reconnect; the broker's refusal text lands in sl_client_last_error.  */
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

/* ------------------------------------------------------------ identities */

static int s_name_check(sl_client_t *self, const char *name)
{
    size_t len = name ? strnlen(name, 256) : 0;
    if (len == 0 || len > 255) {
        sli_error_set(self, "an identity name has 1 to 255 bytes");
        return SL_EINVAL;
    }
    return 0;
}

/* Send F and expect Ok. */
static int s_request_ok(sl_client_t *self, Sluice__Frame *f)
{
    Sluice__Frame *reply = NULL;
    int rc = sli_request(self, f, true, self->opts.connect_timeout_ms, &reply);
    if (rc == 0)
        rc = s_expect(&reply, SLUICE__FRAME__BODY_OK);
    slc_frame_free(&reply);
    return rc;
}

int sl_key_add(sl_client_t *self, const char *name, const char *public_key)
{
    int rc = s_name_check(self, name);
    uint8_t key[SLC_KEY_LEN];
    char why[SLI_ERROR_MAX];
    if (rc)
        goto fail;
    rc = slc_key_parse(public_key, key, why, sizeof why);
    if (rc) {
        sli_error_set(self, "%s", why);
        goto fail;
    }
    Sluice__KeyAdd ka = SLUICE__KEY_ADD__INIT;
    ka.name = (char *) name;
    ka.public_key.data = key;
    ka.public_key.len = sizeof key;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_KEY_ADD;
    f.key_add = &ka;
    rc = s_request_ok(self, &f);
fail:
    return rc;
}

int sl_key_revoke(sl_client_t *self, const char *name)
{
    int rc = s_name_check(self, name);
    if (rc)
        goto fail;
    Sluice__KeyRevoke kr = SLUICE__KEY_REVOKE__INIT;
    kr.name = (char *) name;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_KEY_REVOKE;
    f.key_revoke = &kr;
    rc = s_request_ok(self, &f);
fail:
    return rc;
}

void sl_identity_list_free(sl_identity_t *list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++) {
        for (size_t g = 0; g < list[i].ngrants; g++)
            free((char *) list[i].grants[g].pattern);
        free(list[i].grants);
    }
    free(list);
}

/* Copy the wire identity ID into OUT (zeroed). */
static int s_identity_copy(const Sluice__Identity *id, sl_identity_t *out)
{
    int rc = 0;
    snprintf(out->name, sizeof out->name, "%s", id->name);
    if (id->public_key.len == SLC_KEY_LEN)
        slc_key_z85(id->public_key.data, out->public_key);
    out->revoked = id->revoked;
    out->created_us = id->created_us;
    out->revoked_us = id->revoked_us;
    out->sessions = id->sessions;
    if (id->n_grants == 0)
        goto fail;
    out->grants = calloc(id->n_grants, sizeof *out->grants);
    if (!out->grants) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (size_t g = 0; g < id->n_grants; g++) {
        char *pattern = strdup(id->grants[g]->pattern);
        if (!pattern) {
            rc = SL_ENOMEM;
            goto fail;
        }
        out->grants[g].perms = id->grants[g]->perms;
        out->grants[g].pattern = pattern;
        out->ngrants = g + 1;
    }
fail:
    return rc;
}

int sl_key_list(sl_client_t *self, sl_identity_t **out, size_t *n)
{
    int rc = 0;
    Sluice__Frame *reply = NULL;
    sl_identity_t *list = NULL;
    size_t count = 0;
    *out = NULL;
    *n = 0;
    Sluice__KeyList kl = SLUICE__KEY_LIST__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_KEY_LIST;
    f.key_list = &kl;
    rc = sli_request(self, &f, true, self->opts.connect_timeout_ms, &reply);
    if (rc == 0)
        rc = s_expect(&reply, SLUICE__FRAME__BODY_KEY_LIST_REPLY);
    if (rc)
        goto fail;
    const Sluice__KeyListReply *kr = reply->key_list_reply;
    if (kr->n_identities == 0)
        goto fail;
    list = calloc(kr->n_identities, sizeof *list);
    if (!list) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (; count < kr->n_identities; count++) {
        rc = s_identity_copy(kr->identities[count], &list[count]);
        if (rc) {
            count++;            /* its grants so far are freed with it */
            goto fail;
        }
    }
    *out = list;
    *n = count;
    list = NULL;
fail:
    sl_identity_list_free(list, count);
    slc_frame_free(&reply);
    return rc;
}

int sl_grant(sl_client_t *self, const char *name, const sl_grant_t *grants,
             size_t n, bool revoke)
{
    const uint32_t all = SL_PERM_PUBLISH | SL_PERM_SUBSCRIBE | SL_PERM_ADMIN;
    Sluice__Grant *g = NULL;
    Sluice__Grant **gp = NULL;
    int rc = s_name_check(self, name);
    if (rc)
        goto fail;
    if (!grants || n == 0) {
        sli_error_set(self, "no permission given");
        rc = SL_EINVAL;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (grants[i].perms == 0 || (grants[i].perms & ~all)) {
            sli_error_set(self, "permissions are a set of SL_PERM_PUBLISH, "
                          "SL_PERM_SUBSCRIBE and SL_PERM_ADMIN");
            rc = SL_EINVAL;
            goto fail;
        }
        if (slc_pattern_validate(grants[i].pattern) != 0) {
            sli_error_set(self, "invalid topic pattern '%s': words of "
                          "[A-Za-z0-9_-] separated by '.', '*' for one "
                          "word, '>' last for the rest",
                          grants[i].pattern ? grants[i].pattern : "");
            rc = SL_EINVAL;
            goto fail;
        }
    }
    g = calloc(n, sizeof *g);
    gp = calloc(n, sizeof *gp);
    if (!g || !gp) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        sluice__grant__init(&g[i]);
        g[i].perms = grants[i].perms;
        g[i].pattern = (char *) grants[i].pattern;
        gp[i] = &g[i];
    }
    Sluice__GrantChange gc = SLUICE__GRANT_CHANGE__INIT;
    gc.name = (char *) name;
    gc.n_grants = n;
    gc.grants = gp;
    gc.revoke = revoke;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_GRANT_CHANGE;
    f.grant_change = &gc;
    rc = s_request_ok(self, &f);
fail:
    free(g);
    free(gp);
    return rc;
}

int sl_rotate_key(sl_client_t *self, uint32_t *key_id)
{
    int rc = 0;
    Sluice__Frame *reply = NULL;
    Sluice__RotateKey rk = SLUICE__ROTATE_KEY__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_ROTATE_KEY;
    f.rotate_key = &rk;
    rc = sli_request(self, &f, true, self->opts.connect_timeout_ms, &reply);
    if (rc == 0)
        rc = s_expect(&reply, SLUICE__FRAME__BODY_ROTATE_KEY_REPLY);
    if (rc == 0 && key_id)
        *key_id = reply->rotate_key_reply->key_id;
    slc_frame_free(&reply);
    return rc;
}
