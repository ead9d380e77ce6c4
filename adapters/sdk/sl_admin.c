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
            snprintf(s[i].owner, sizeof s[i].owner, "%s", si->owner ? si->owner : "");
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
    const uint32_t all = SL_PERM_PUBLISH | SL_PERM_SUBSCRIBE | SL_PERM_ADMIN | SL_PERM_CONSUME;
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
                          "SL_PERM_SUBSCRIBE, SL_PERM_ADMIN and SL_PERM_CONSUME");
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

/* ------------------------------------------------------ schema registry */

int sl_schema_register(sl_client_t *self, const char *subject, const char *schema,
                       const char *compat, bool dry_run, uint32_t *version, bool *existed)
{
    int rc = 0;
    Sluice__Frame *reply = NULL;
    Sluice__SchemaRegister sr = SLUICE__SCHEMA_REGISTER__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    if (!subject || !schema)
        return SL_EINVAL;
    sr.subject = (char *) subject;
    sr.schema = (char *) schema;
    sr.compat = (char *) (compat ? compat : "");
    sr.dry_run = dry_run;
    f.body_case = SLUICE__FRAME__BODY_SCHEMA_REGISTER;
    f.schema_register = &sr;
    rc = sli_request(self, &f, true, self->opts.connect_timeout_ms, &reply);
    if (rc == 0)
        rc = s_expect(&reply, SLUICE__FRAME__BODY_SCHEMA_REGISTER_REPLY);
    if (rc == 0 && version)
        *version = reply->schema_register_reply->version;
    if (rc == 0 && existed)
        *existed = reply->schema_register_reply->existed;
    slc_frame_free(&reply);
    return rc;
}

static void s_schema_copy(const Sluice__SchemaInfo *in, sl_schema_info_t *out, char *text)
{
    memset(out, 0, sizeof *out);
    snprintf(out->subject, sizeof out->subject, "%s", in->subject ? in->subject : "");
    snprintf(out->compat, sizeof out->compat, "%s", in->compat ? in->compat : "");
    out->version = in->version;
    out->versions = in->versions;
    out->created_us = in->created_us;
    out->schema = text;
}

int sl_schema_get(sl_client_t *self, const char *subject, uint32_t version,
                  sl_schema_info_t *out)
{
    int rc = 0;
    Sluice__Frame *reply = NULL;
    Sluice__SchemaGet sg = SLUICE__SCHEMA_GET__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    if (!subject || !out)
        return SL_EINVAL;
    memset(out, 0, sizeof *out);
    sg.subject = (char *) subject;
    sg.version = version;
    f.body_case = SLUICE__FRAME__BODY_SCHEMA_GET;
    f.schema_get = &sg;
    rc = sli_request(self, &f, true, self->opts.connect_timeout_ms, &reply);
    if (rc == 0)
        rc = s_expect(&reply, SLUICE__FRAME__BODY_SCHEMA_INFO);
    if (rc == 0) {
        char *text = strdup(reply->schema_info->schema ? reply->schema_info->schema : "");
        if (!text)
            rc = SL_ENOMEM;
        else
            s_schema_copy(reply->schema_info, out, text);
    }
    slc_frame_free(&reply);
    return rc;
}

void sl_schema_info_clear(sl_schema_info_t *info)
{
    if (!info)
        return;
    free(info->schema);
    info->schema = NULL;
}

int sl_schema_list(sl_client_t *self, sl_schema_info_t **out, size_t *n)
{
    int rc = 0;
    Sluice__Frame *reply = NULL;
    Sluice__SchemaList sl = SLUICE__SCHEMA_LIST__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    if (!out || !n)
        return SL_EINVAL;
    *out = NULL;
    *n = 0;
    f.body_case = SLUICE__FRAME__BODY_SCHEMA_LIST;
    f.schema_list = &sl;
    rc = sli_request(self, &f, true, self->opts.connect_timeout_ms, &reply);
    if (rc == 0)
        rc = s_expect(&reply, SLUICE__FRAME__BODY_SCHEMA_LIST_REPLY);
    if (rc == 0) {
        const Sluice__SchemaListReply *r = reply->schema_list_reply;
        *out = calloc(r->n_subjects + 1, sizeof(sl_schema_info_t));
        if (!*out)
            rc = SL_ENOMEM;
        for (size_t i = 0; rc == 0 && i < r->n_subjects; i++)
            s_schema_copy(r->subjects[i], &(*out)[i], NULL);
        if (rc == 0)
            *n = r->n_subjects;
    }
    slc_frame_free(&reply);
    return rc;
}

void sl_schema_list_free(sl_schema_info_t *list, size_t n)
{
    (void) n;                   /* list entries own no text */
    free(list);
}

int sl_topic_set_schema(sl_client_t *self, const char *topic, const char *subject,
                        uint32_t version, const char *invalid)
{
    Sluice__TopicSet ts = SLUICE__TOPIC_SET__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    if (!topic)
        return SL_EINVAL;
    ts.topic = (char *) topic;
    ts.subject = (char *) (subject ? subject : "");
    ts.version = version;
    ts.invalid = (char *) (invalid ? invalid : "");
    f.body_case = SLUICE__FRAME__BODY_TOPIC_SET;
    f.topic_set = &ts;
    return s_request_ok(self, &f);
}

/* ------------------------------------------------------------- mappings */

static void s_mapping_copy(const Sluice__MappingInfo *in, sl_mapping_info_t *out, char *yaml)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", in->name ? in->name : "");
    snprintf(out->from, sizeof out->from, "%s", in->from ? in->from : "");
    snprintf(out->to, sizeof out->to, "%s", in->to ? in->to : "");
    out->created_us = in->created_us;
    out->yaml = yaml;
}

int sl_mapping_add(sl_client_t *self, const char *yaml, sl_mapping_info_t *out)
{
    int rc = 0;
    Sluice__Frame *reply = NULL;
    Sluice__MappingAdd ma = SLUICE__MAPPING_ADD__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    if (!yaml)
        return SL_EINVAL;
    ma.yaml = (char *) yaml;
    f.body_case = SLUICE__FRAME__BODY_MAPPING_ADD;
    f.mapping_add = &ma;
    rc = sli_request(self, &f, true, self->opts.connect_timeout_ms, &reply);
    if (rc == 0)
        rc = s_expect(&reply, SLUICE__FRAME__BODY_MAPPING_INFO);
    if (rc == 0 && out)
        s_mapping_copy(reply->mapping_info, out, NULL);
    slc_frame_free(&reply);
    return rc;
}

int sl_mapping_get(sl_client_t *self, const char *name, sl_mapping_info_t *out)
{
    int rc = 0;
    Sluice__Frame *reply = NULL;
    Sluice__MappingGet mg = SLUICE__MAPPING_GET__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    if (!name || !out)
        return SL_EINVAL;
    memset(out, 0, sizeof *out);
    mg.name = (char *) name;
    f.body_case = SLUICE__FRAME__BODY_MAPPING_GET;
    f.mapping_get = &mg;
    rc = sli_request(self, &f, true, self->opts.connect_timeout_ms, &reply);
    if (rc == 0)
        rc = s_expect(&reply, SLUICE__FRAME__BODY_MAPPING_INFO);
    if (rc == 0) {
        char *yaml = strdup(reply->mapping_info->yaml ? reply->mapping_info->yaml : "");
        if (!yaml)
            rc = SL_ENOMEM;
        else
            s_mapping_copy(reply->mapping_info, out, yaml);
    }
    slc_frame_free(&reply);
    return rc;
}

void sl_mapping_info_clear(sl_mapping_info_t *info)
{
    if (!info)
        return;
    free(info->yaml);
    info->yaml = NULL;
}

int sl_mapping_list(sl_client_t *self, sl_mapping_info_t **out, size_t *n)
{
    int rc = 0;
    Sluice__Frame *reply = NULL;
    Sluice__MappingList ml = SLUICE__MAPPING_LIST__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    if (!out || !n)
        return SL_EINVAL;
    *out = NULL;
    *n = 0;
    f.body_case = SLUICE__FRAME__BODY_MAPPING_LIST;
    f.mapping_list = &ml;
    rc = sli_request(self, &f, true, self->opts.connect_timeout_ms, &reply);
    if (rc == 0)
        rc = s_expect(&reply, SLUICE__FRAME__BODY_MAPPING_LIST_REPLY);
    if (rc == 0) {
        const Sluice__MappingListReply *r = reply->mapping_list_reply;
        *out = calloc(r->n_mappings + 1, sizeof(sl_mapping_info_t));
        if (!*out)
            rc = SL_ENOMEM;
        for (size_t i = 0; rc == 0 && i < r->n_mappings; i++)
            s_mapping_copy(r->mappings[i], &(*out)[i], NULL);
        if (rc == 0)
            *n = r->n_mappings;
    }
    slc_frame_free(&reply);
    return rc;
}

void sl_mapping_list_free(sl_mapping_info_t *list, size_t n)
{
    (void) n;                   /* list entries own no text */
    free(list);
}

int sl_mapping_remove(sl_client_t *self, const char *name)
{
    Sluice__MappingRemove mr = SLUICE__MAPPING_REMOVE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    if (!name)
        return SL_EINVAL;
    mr.name = (char *) name;
    f.body_case = SLUICE__FRAME__BODY_MAPPING_REMOVE;
    f.mapping_remove = &mr;
    return s_request_ok(self, &f);
}
