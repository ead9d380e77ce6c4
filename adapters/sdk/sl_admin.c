/*  sl_admin - the request/response admin calls: topics, stats, counters,
 *  subscription removal, identities and grants, data key rotation, schema
 *  registry, mappings, routing tables, traces (cursors and dead letters:
 *  sl_dlq.c, through sli_admin_call). Owns nothing beyond each
 *  call; results are copied out (arrays malloc'd for the caller). Client thread only; knows only the
 *  session. Every call is one s_call (send, wait at most
 *  connect_timeout_ms doing the client's other I/O, resend after a
 *  reconnect, expect one reply case, copy): a new admin call is a request
 *  struct, a copy function when the reply carries data, and one s_call.  */
#include <stdlib.h>
#include <string.h>
#include "sl_client_int.h"
#include "sl_session.h"

typedef sli_admin_copy_fn s_copy_fn;

static int s_expect(Sluice__Frame **reply, Sluice__Frame__BodyCase body)
{
    int rc = (*reply)->body_case == body ? 0 : SL_EMALFORMED;
    if (rc)
        SLI_LOG("unexpected answer from the broker: %s", slc_frame_name(*reply));
    return rc;
}

/* The shape of every admin call: a request of case BODY carrying MSG
 * (borrowed), resent after a reconnect; a reply of case EXPECT, handed to
 * COPY (NULL: nothing to copy) with ARG. 0, the broker's code (its text in
 * the sticky last error, see sli_request), SL_EMALFORMED for another
 * reply, or what COPY returns. */
static int s_call(sl_client_t *client, Sluice__Frame__BodyCase body, void *msg,
                  Sluice__Frame__BodyCase expect, s_copy_fn *copy, void *arg)
{
    sli_session_t *sess = client->sess;
    Sluice__Frame *reply = NULL;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    int rc = slc_frame_set_body(&f, body, msg);
    if (rc == 0)
        rc = sli_request(sess, &f, true, sess->opts.connect_timeout_ms, &reply);
    if (rc == 0)
        rc = s_expect(&reply, expect);
    if (rc == 0 && copy)
        rc = copy(reply, arg);
    slc_frame_free(&reply);
    return rc;
}

int sli_admin_call(sl_client_t *client, int body, void *msg, int expect,
                   sli_admin_copy_fn *copy, void *arg)
{
    return s_call(client, (Sluice__Frame__BodyCase) body, msg,
                  (Sluice__Frame__BodyCase) expect, copy, arg);
}

int sl_topic_create(sl_client_t *self, const char *name,
                    uint64_t max_age_ms, uint64_t max_bytes)
{
    if (!name || slc_topic_validate(name, false) != 0)
        return SL_EINVAL;
    Sluice__TopicCreate tc = SLUICE__TOPIC_CREATE__INIT;
    tc.name = (char *) name;
    tc.max_age_ms = max_age_ms;
    tc.max_bytes = max_bytes;
    return s_call(self, SLUICE__FRAME__BODY_TOPIC_CREATE, &tc,
                  SLUICE__FRAME__BODY_OK, NULL, NULL);
}

/* ----------------------------------------------------------------- stats */

typedef struct {
    sl_topic_info_t **topics;   /* NULL: not asked for */
    size_t *ntopics;
    sl_sub_info_t **subs;       /* NULL: not asked for */
    size_t *nsubs;
} s_stats_out_t;

static int s_stats_copy(const Sluice__Frame *reply, void *arg)
{
    int rc = 0;
    s_stats_out_t *o = arg;
    sl_topic_info_t *t = NULL;
    sl_sub_info_t *s = NULL;
    const Sluice__StatsReply *st = reply->stats_reply;
    if (o->topics && st->n_topics) {
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
            snprintf(t[i].schema, sizeof t[i].schema, "%s", ti->schema ? ti->schema : "");
            t[i].dlq_removed = ti->dlq_removed;
        }
    }
    if (o->subs && st->n_subs) {
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
    if (o->topics) {
        *o->topics = t;
        *o->ntopics = t ? st->n_topics : 0;
        t = NULL;
    }
    if (o->subs) {
        *o->subs = s;
        *o->nsubs = s ? st->n_subs : 0;
        s = NULL;
    }
fail:
    free(t);
    free(s);
    return rc;
}

int sl_stats(sl_client_t *self, sl_topic_info_t **topics, size_t *ntopics,
             sl_sub_info_t **subs, size_t *nsubs)
{
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
    Sluice__StatsRequest sr = SLUICE__STATS_REQUEST__INIT;
    sr.topics = topics != NULL;
    sr.subs = subs != NULL;
    s_stats_out_t o = { topics, ntopics, subs, nsubs };
    return s_call(self, SLUICE__FRAME__BODY_STATS, &sr,
                  SLUICE__FRAME__BODY_STATS_REPLY, s_stats_copy, &o);
}

typedef struct {
    void (*cb)(const char *name, uint64_t value, void *arg);
    void *arg;
} s_counters_out_t;

static int s_counters_copy(const Sluice__Frame *reply, void *arg)
{
    const s_counters_out_t *o = arg;
    const Sluice__StatsReply *st = reply->stats_reply;
    for (size_t i = 0; i < st->n_counters; i++)
        o->cb(st->counters[i]->name, st->counters[i]->value, o->arg);
    return 0;
}

int sl_counters(sl_client_t *self,
                void (*cb)(const char *name, uint64_t value, void *arg),
                void *arg)
{
    if (!cb)
        return SL_EINVAL;
    Sluice__StatsRequest sr = SLUICE__STATS_REQUEST__INIT;
    sr.counters = true;
    s_counters_out_t o = { cb, arg };
    return s_call(self, SLUICE__FRAME__BODY_STATS, &sr,
                  SLUICE__FRAME__BODY_STATS_REPLY, s_counters_copy, &o);
}

int sl_sub_remove(sl_client_t *self, const char *name)
{
    if (!name || !*name)
        return SL_EINVAL;
    Sluice__SubRemove sr = SLUICE__SUB_REMOVE__INIT;
    sr.name = (char *) name;
    return s_call(self, SLUICE__FRAME__BODY_SUB_REMOVE, &sr,
                  SLUICE__FRAME__BODY_OK, NULL, NULL);
}

/* ------------------------------------------------------------ identities */

static int s_name_check(sl_client_t *self, const char *name)
{
    size_t len = name ? strnlen(name, 256) : 0;
    if (len == 0 || len > 255) {
        sli_error_set(self->sess, "an identity name has 1 to 255 bytes");
        return SL_EINVAL;
    }
    return 0;
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
        sli_error_set(self->sess, "%s", why);
        goto fail;
    }
    Sluice__KeyAdd ka = SLUICE__KEY_ADD__INIT;
    ka.name = (char *) name;
    ka.public_key.data = key;
    ka.public_key.len = sizeof key;
    rc = s_call(self, SLUICE__FRAME__BODY_KEY_ADD, &ka, SLUICE__FRAME__BODY_OK,
                NULL, NULL);
fail:
    return rc;
}

int sl_key_revoke(sl_client_t *self, const char *name)
{
    int rc = s_name_check(self, name);
    if (rc)
        return rc;
    Sluice__KeyRevoke kr = SLUICE__KEY_REVOKE__INIT;
    kr.name = (char *) name;
    return s_call(self, SLUICE__FRAME__BODY_KEY_REVOKE, &kr,
                  SLUICE__FRAME__BODY_OK, NULL, NULL);
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

typedef struct {
    sl_identity_t **list;
    size_t *n;
} s_identities_out_t;

static int s_identities_copy(const Sluice__Frame *reply, void *arg)
{
    int rc = 0;
    const s_identities_out_t *o = arg;
    sl_identity_t *list = NULL;
    size_t count = 0;
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
    *o->list = list;
    *o->n = count;
    list = NULL;
fail:
    sl_identity_list_free(list, count);
    return rc;
}

int sl_key_list(sl_client_t *self, sl_identity_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    Sluice__KeyList kl = SLUICE__KEY_LIST__INIT;
    s_identities_out_t o = { out, n };
    return s_call(self, SLUICE__FRAME__BODY_KEY_LIST, &kl,
                  SLUICE__FRAME__BODY_KEY_LIST_REPLY, s_identities_copy, &o);
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
        sli_error_set(self->sess, "no permission given");
        rc = SL_EINVAL;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (grants[i].perms == 0 || (grants[i].perms & ~all)) {
            sli_error_set(self->sess, "permissions are a set of SL_PERM_PUBLISH, "
                          "SL_PERM_SUBSCRIBE, SL_PERM_ADMIN and SL_PERM_CONSUME");
            rc = SL_EINVAL;
            goto fail;
        }
        if (slc_pattern_validate(grants[i].pattern) != 0) {
            sli_error_set(self->sess, "invalid topic pattern '%s': words of "
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
    rc = s_call(self, SLUICE__FRAME__BODY_GRANT_CHANGE, &gc,
                SLUICE__FRAME__BODY_OK, NULL, NULL);
fail:
    free(g);
    free(gp);
    return rc;
}

static int s_key_id_copy(const Sluice__Frame *reply, void *arg)
{
    uint32_t *key_id = arg;
    if (key_id)
        *key_id = reply->rotate_key_reply->key_id;
    return 0;
}

int sl_rotate_key(sl_client_t *self, uint32_t *key_id)
{
    Sluice__RotateKey rk = SLUICE__ROTATE_KEY__INIT;
    return s_call(self, SLUICE__FRAME__BODY_ROTATE_KEY, &rk,
                  SLUICE__FRAME__BODY_ROTATE_KEY_REPLY, s_key_id_copy, key_id);
}

/* ------------------------------------------------------ schema registry */

typedef struct {
    uint32_t *version;
    bool *existed;
} s_registered_out_t;

static int s_registered_copy(const Sluice__Frame *reply, void *arg)
{
    const s_registered_out_t *o = arg;
    if (o->version)
        *o->version = reply->schema_register_reply->version;
    if (o->existed)
        *o->existed = reply->schema_register_reply->existed;
    return 0;
}

int sl_schema_register(sl_client_t *self, const char *subject, const char *schema,
                       const char *compat, bool dry_run, uint32_t *version, bool *existed)
{
    if (!subject || !schema)
        return SL_EINVAL;
    Sluice__SchemaRegister sr = SLUICE__SCHEMA_REGISTER__INIT;
    sr.subject = (char *) subject;
    sr.schema = (char *) schema;
    sr.compat = (char *) (compat ? compat : "");
    sr.dry_run = dry_run;
    s_registered_out_t o = { version, existed };
    return s_call(self, SLUICE__FRAME__BODY_SCHEMA_REGISTER, &sr,
                  SLUICE__FRAME__BODY_SCHEMA_REGISTER_REPLY, s_registered_copy, &o);
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

static int s_schema_info_copy(const Sluice__Frame *reply, void *arg)
{
    const Sluice__SchemaInfo *si = reply->schema_info;
    char *text = strdup(si->schema ? si->schema : "");
    if (!text)
        return SL_ENOMEM;
    s_schema_copy(si, arg, text);
    return 0;
}

int sl_schema_get(sl_client_t *self, const char *subject, uint32_t version,
                  sl_schema_info_t *out)
{
    if (!subject || !out)
        return SL_EINVAL;
    memset(out, 0, sizeof *out);
    Sluice__SchemaGet sg = SLUICE__SCHEMA_GET__INIT;
    sg.subject = (char *) subject;
    sg.version = version;
    return s_call(self, SLUICE__FRAME__BODY_SCHEMA_GET, &sg,
                  SLUICE__FRAME__BODY_SCHEMA_INFO, s_schema_info_copy, out);
}

void sl_schema_info_clear(sl_schema_info_t *info)
{
    if (!info)
        return;
    free(info->schema);
    info->schema = NULL;
}

typedef struct {
    sl_schema_info_t **list;
    size_t *n;
} s_schemas_out_t;

static int s_schemas_copy(const Sluice__Frame *reply, void *arg)
{
    const s_schemas_out_t *o = arg;
    const Sluice__SchemaListReply *r = reply->schema_list_reply;
    *o->list = calloc(r->n_subjects + 1, sizeof(sl_schema_info_t));
    if (!*o->list)
        return SL_ENOMEM;
    for (size_t i = 0; i < r->n_subjects; i++)
        s_schema_copy(r->subjects[i], &(*o->list)[i], NULL);
    *o->n = r->n_subjects;
    return 0;
}

int sl_schema_list(sl_client_t *self, sl_schema_info_t **out, size_t *n)
{
    if (!out || !n)
        return SL_EINVAL;
    *out = NULL;
    *n = 0;
    Sluice__SchemaList sl = SLUICE__SCHEMA_LIST__INIT;
    s_schemas_out_t o = { out, n };
    return s_call(self, SLUICE__FRAME__BODY_SCHEMA_LIST, &sl,
                  SLUICE__FRAME__BODY_SCHEMA_LIST_REPLY, s_schemas_copy, &o);
}

void sl_schema_list_free(sl_schema_info_t *list, size_t n)
{
    (void) n;                   /* list entries own no text */
    free(list);
}

int sl_topic_set_schema(sl_client_t *self, const char *topic, const char *subject,
                        uint32_t version, const char *invalid)
{
    if (!topic)
        return SL_EINVAL;
    Sluice__TopicSet ts = SLUICE__TOPIC_SET__INIT;
    ts.topic = (char *) topic;
    ts.subject = (char *) (subject ? subject : "");
    ts.version = version;
    ts.invalid = (char *) (invalid ? invalid : "");
    return s_call(self, SLUICE__FRAME__BODY_TOPIC_SET, &ts,
                  SLUICE__FRAME__BODY_OK, NULL, NULL);
}

/* ------------------------------------------------------------- mappings */

static void s_mapping_copy(const Sluice__MappingInfo *in, sl_mapping_info_t *out, char *yaml)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", in->name ? in->name : "");
    snprintf(out->from, sizeof out->from, "%s", in->from ? in->from : "");
    snprintf(out->to, sizeof out->to, "%s", in->to ? in->to : "");
    out->created_us = in->created_us;
    out->version = in->version;
    out->yaml = yaml;
}

/* A MappingInfo into ARG (NULL: not wanted), without its YAML. */
static int s_mapping_head_copy(const Sluice__Frame *reply, void *arg)
{
    if (arg)
        s_mapping_copy(reply->mapping_info, arg, NULL);
    return 0;
}

/* A MappingInfo into ARG with its YAML (caller frees, sl_mapping_info_clear). */
static int s_mapping_info_copy(const Sluice__Frame *reply, void *arg)
{
    const Sluice__MappingInfo *mi = reply->mapping_info;
    char *yaml = strdup(mi->yaml ? mi->yaml : "");
    if (!yaml)
        return SL_ENOMEM;
    s_mapping_copy(mi, arg, yaml);
    return 0;
}

int sl_mapping_add(sl_client_t *self, const char *yaml, sl_mapping_info_t *out)
{
    if (!yaml)
        return SL_EINVAL;
    Sluice__MappingAdd ma = SLUICE__MAPPING_ADD__INIT;
    ma.yaml = (char *) yaml;
    return s_call(self, SLUICE__FRAME__BODY_MAPPING_ADD, &ma,
                  SLUICE__FRAME__BODY_MAPPING_INFO, s_mapping_head_copy, out);
}

int sl_mapping_get(sl_client_t *self, const char *name, sl_mapping_info_t *out)
{
    if (!name || !out)
        return SL_EINVAL;
    memset(out, 0, sizeof *out);
    Sluice__MappingGet mg = SLUICE__MAPPING_GET__INIT;
    mg.name = (char *) name;
    return s_call(self, SLUICE__FRAME__BODY_MAPPING_GET, &mg,
                  SLUICE__FRAME__BODY_MAPPING_INFO, s_mapping_info_copy, out);
}

void sl_mapping_info_clear(sl_mapping_info_t *info)
{
    if (!info)
        return;
    free(info->yaml);
    info->yaml = NULL;
}

typedef struct {
    sl_mapping_info_t **list;
    size_t *n;
} s_mappings_out_t;

static int s_mappings_copy(const Sluice__Frame *reply, void *arg)
{
    const s_mappings_out_t *o = arg;
    const Sluice__MappingListReply *r = reply->mapping_list_reply;
    *o->list = calloc(r->n_mappings + 1, sizeof(sl_mapping_info_t));
    if (!*o->list)
        return SL_ENOMEM;
    for (size_t i = 0; i < r->n_mappings; i++)
        s_mapping_copy(r->mappings[i], &(*o->list)[i], NULL);
    *o->n = r->n_mappings;
    return 0;
}

int sl_mapping_list(sl_client_t *self, sl_mapping_info_t **out, size_t *n)
{
    if (!out || !n)
        return SL_EINVAL;
    *out = NULL;
    *n = 0;
    Sluice__MappingList ml = SLUICE__MAPPING_LIST__INIT;
    s_mappings_out_t o = { out, n };
    return s_call(self, SLUICE__FRAME__BODY_MAPPING_LIST, &ml,
                  SLUICE__FRAME__BODY_MAPPING_LIST_REPLY, s_mappings_copy, &o);
}

void sl_mapping_list_free(sl_mapping_info_t *list, size_t n)
{
    (void) n;                   /* list entries own no text */
    free(list);
}

int sl_mapping_remove(sl_client_t *self, const char *name)
{
    if (!name)
        return SL_EINVAL;
    Sluice__MappingRemove mr = SLUICE__MAPPING_REMOVE__INIT;
    mr.name = (char *) name;
    return s_call(self, SLUICE__FRAME__BODY_MAPPING_REMOVE, &mr,
                  SLUICE__FRAME__BODY_OK, NULL, NULL);
}

/* -------------------------------------------------------------- routing */

static void s_routes_copy(const Sluice__RoutesInfo *in, sl_routes_info_t *out, char *yaml)
{
    memset(out, 0, sizeof *out);
    out->version = in->version;
    out->applied_us = in->applied_us;
    snprintf(out->identity, sizeof out->identity, "%s", in->identity ? in->identity : "");
    out->routes = in->routes;
    out->rollback_of = in->rollback_of;
    out->yaml = yaml;
}

typedef struct {
    uint32_t *version;
    char **diff;
    bool *changed;
} s_applied_out_t;

static int s_applied_copy(const Sluice__Frame *reply, void *arg)
{
    const s_applied_out_t *o = arg;
    const Sluice__RoutesApplyReply *r = reply->routes_apply_reply;
    if (o->diff) {
        *o->diff = strdup(r->diff ? r->diff : "");
        if (!*o->diff)
            return SL_ENOMEM;
    }
    if (o->version)
        *o->version = r->version;
    if (o->changed)
        *o->changed = r->changed;
    return 0;
}

int sl_routes_apply(sl_client_t *self, const char *yaml, size_t len, bool dry_run,
                    uint32_t expect_version, uint32_t *version, char **diff,
                    bool *changed)
{
    if (diff)
        *diff = NULL;
    if (!yaml)
        return SL_EINVAL;
    /* The wire carries a string: the table must be LEN bytes of text. */
    if (memchr(yaml, '\0', len)) {
        sli_error_set(self->sess, "the routing table holds a NUL byte");
        return SL_EINVAL;
    }
    char *text = malloc(len + 1);
    if (!text)
        return SL_ENOMEM;
    memcpy(text, yaml, len);
    text[len] = '\0';
    Sluice__RoutesApply ra = SLUICE__ROUTES_APPLY__INIT;
    ra.yaml = text;
    ra.dry_run = dry_run;
    ra.expect_version = expect_version;
    s_applied_out_t o = { version, diff, changed };
    int rc = s_call(self, SLUICE__FRAME__BODY_ROUTES_APPLY, &ra,
                    SLUICE__FRAME__BODY_ROUTES_APPLY_REPLY, s_applied_copy, &o);
    free(text);
    return rc;
}

int sl_routes_rollback(sl_client_t *self, uint32_t version, uint32_t expect_version,
                       uint32_t *new_version, char **diff, bool *changed)
{
    if (diff)
        *diff = NULL;
    if (version == 0) {
        sli_error_set(self->sess, "versions are numbered from 1");
        return SL_EINVAL;
    }
    Sluice__RoutesRollback rr = SLUICE__ROUTES_ROLLBACK__INIT;
    rr.version = version;
    rr.expect_version = expect_version;
    s_applied_out_t o = { new_version, diff, changed };
    return s_call(self, SLUICE__FRAME__BODY_ROUTES_ROLLBACK, &rr,
                  SLUICE__FRAME__BODY_ROUTES_APPLY_REPLY, s_applied_copy, &o);
}

static int s_routes_info_copy(const Sluice__Frame *reply, void *arg)
{
    const Sluice__RoutesInfo *ri = reply->routes_info;
    char *yaml = strdup(ri->yaml ? ri->yaml : "");
    if (!yaml)
        return SL_ENOMEM;
    s_routes_copy(ri, arg, yaml);
    return 0;
}

int sl_routes_get(sl_client_t *self, uint32_t version, sl_routes_info_t *out)
{
    if (!out)
        return SL_EINVAL;
    memset(out, 0, sizeof *out);
    Sluice__RoutesGet rg = SLUICE__ROUTES_GET__INIT;
    rg.version = version;
    return s_call(self, SLUICE__FRAME__BODY_ROUTES_GET, &rg,
                  SLUICE__FRAME__BODY_ROUTES_INFO, s_routes_info_copy, out);
}

void sl_routes_info_clear(sl_routes_info_t *info)
{
    if (!info)
        return;
    free(info->yaml);
    info->yaml = NULL;
}

typedef struct {
    sl_routes_info_t **list;
    size_t *n;
    uint32_t *live;
} s_routes_out_t;

static int s_routes_list_copy(const Sluice__Frame *reply, void *arg)
{
    const s_routes_out_t *o = arg;
    const Sluice__RoutesListReply *r = reply->routes_list_reply;
    *o->list = calloc(r->n_versions + 1, sizeof(sl_routes_info_t));
    if (!*o->list)
        return SL_ENOMEM;
    for (size_t i = 0; i < r->n_versions; i++)
        s_routes_copy(r->versions[i], &(*o->list)[i], NULL);
    *o->n = r->n_versions;
    if (o->live)
        *o->live = r->live;
    return 0;
}

int sl_routes_list(sl_client_t *self, sl_routes_info_t **out, size_t *n,
                   uint32_t *live)
{
    if (!out || !n)
        return SL_EINVAL;
    *out = NULL;
    *n = 0;
    if (live)
        *live = 0;
    Sluice__RoutesList rl = SLUICE__ROUTES_LIST__INIT;
    s_routes_out_t o = { out, n, live };
    return s_call(self, SLUICE__FRAME__BODY_ROUTES_LIST, &rl,
                  SLUICE__FRAME__BODY_ROUTES_LIST_REPLY, s_routes_list_copy, &o);
}

void sl_routes_list_free(sl_routes_info_t *list, size_t n)
{
    (void) n;                   /* list entries own no text */
    free(list);
}

static int s_routing_copy(const Sluice__Frame *reply, void *arg)
{
    sl_routing_stats_t *out = arg;
    const Sluice__RoutingStats *r = reply->stats_reply->routing;
    if (!r)
        return 0;               /* a broker without routing: zeros */
    out->version = r->version;
    out->applied_us = r->applied_us;
    out->unrouted = r->unrouted;
    if (r->n_routes == 0)
        return 0;
    out->routes = calloc(r->n_routes, sizeof *out->routes);
    if (!out->routes)
        return SL_ENOMEM;
    for (size_t i = 0; i < r->n_routes; i++) {
        const Sluice__RouteStats *rs = r->routes[i];
        sl_route_stats_t *s = &out->routes[i];
        snprintf(s->name, sizeof s->name, "%s", rs->name ? rs->name : "");
        s->matched = rs->matched;
        s->delivered = rs->delivered;
        s->dropped = rs->dropped;
        s->dead_lettered = rs->dead_lettered;
        s->errors = rs->errors;
    }
    out->nroutes = r->n_routes;
    return 0;
}

static int s_backfill_copy(const Sluice__Frame *reply, void *arg)
{
    const Sluice__RoutesBackfillReply *r = reply->routes_backfill_reply;
    sl_backfill_t *out = arg;
    out->from_offset = r->from_offset;
    out->next_offset = r->next_offset;
    out->until_offset = r->until_offset;
    out->done = r->done;
    out->table_version = r->table_version;
    out->processed = r->processed;
    out->fired = r->fired;
    out->failed = r->failed;
    out->skipped = r->skipped;
    out->already = r->already;
    out->delivered = r->delivered;
    return 0;
}

int sl_routes_backfill(sl_client_t *self, const char *route, const char *topic,
                       uint64_t from_offset, uint64_t from_time_us, uint64_t until_offset,
                       uint32_t max, sl_backfill_t *out)
{
    if (!route || !topic || !out)
        return SL_EINVAL;
    memset(out, 0, sizeof *out);
    Sluice__RoutesBackfill rb = SLUICE__ROUTES_BACKFILL__INIT;
    rb.route = (char *) route;
    rb.topic = (char *) topic;
    rb.from_offset = from_offset;
    rb.from_time_us = from_time_us;
    rb.until_offset = until_offset;
    rb.max = max;
    return s_call(self, SLUICE__FRAME__BODY_ROUTES_BACKFILL, &rb,
                  SLUICE__FRAME__BODY_ROUTES_BACKFILL_REPLY, s_backfill_copy, out);
}

int sl_routing_stats(sl_client_t *self, sl_routing_stats_t *out)
{
    if (!out)
        return SL_EINVAL;
    memset(out, 0, sizeof *out);
    /* Routing comes with every Stats reply; asking for the counters alone
     * keeps the reply small. */
    Sluice__StatsRequest sr = SLUICE__STATS_REQUEST__INIT;
    sr.counters = true;
    return s_call(self, SLUICE__FRAME__BODY_STATS, &sr,
                  SLUICE__FRAME__BODY_STATS_REPLY, s_routing_copy, out);
}

void sl_routing_stats_clear(sl_routing_stats_t *stats)
{
    if (!stats)
        return;
    free(stats->routes);
    stats->routes = NULL;
    stats->nroutes = 0;
}

/* ---------------------------------------------------------------- trace */

static int s_trace_copy_one(const Sluice__TraceReply *r, sl_trace_t *out, int depth)
{
    snprintf(out->topic, sizeof out->topic, "%s", r->topic ? r->topic : "");
    out->offset = r->offset;
    out->ingest_us = r->ingest_us;
    out->routed = r->routed;
    out->table_version = r->table_version;
    snprintf(out->note, sizeof out->note, "%s", r->note ? r->note : "");
    const Sluice__Lineage *l = r->lineage;
    if (l && l->source_topic && *l->source_topic) {
        out->derived = true;
        snprintf(out->source_topic, sizeof out->source_topic, "%s", l->source_topic);
        out->source_offset = l->source_offset;
        snprintf(out->route, sizeof out->route, "%s", l->route ? l->route : "");
        snprintf(out->mapping, sizeof out->mapping, "%s", l->mapping ? l->mapping : "");
        out->lineage_version = l->table_version;
        out->mapping_version = l->mapping_version;
    }
    if (r->n_steps) {
        out->steps = calloc(r->n_steps, sizeof *out->steps);
        if (!out->steps)
            return SL_ENOMEM;
        out->nsteps = r->n_steps;
    }
    for (size_t i = 0; i < r->n_steps; i++) {
        const Sluice__TraceStep *st = r->steps[i];
        sl_trace_step_t *s = &out->steps[i];
        s->index = st->index;
        snprintf(s->route, sizeof s->route, "%s", st->route ? st->route : "");
        snprintf(s->outcome, sizeof s->outcome, "%s", st->outcome ? st->outcome : "");
        snprintf(s->action, sizeof s->action, "%s", st->action ? st->action : "");
        snprintf(s->error, sizeof s->error, "%s", st->error ? st->error : "");
        s->backfilled = st->table_version;
        if (st->n_legs) {
            s->legs = calloc(st->n_legs, sizeof *s->legs);
            if (!s->legs)
                return SL_ENOMEM;
            s->nlegs = st->n_legs;
        }
        for (size_t k = 0; k < st->n_legs; k++) {
            snprintf(s->legs[k].topic, sizeof s->legs[k].topic, "%s",
                     st->legs[k]->topic ? st->legs[k]->topic : "");
            s->legs[k].offset = st->legs[k]->offset;
        }
    }
    if (r->source && depth < 16) {
        out->source = calloc(1, sizeof *out->source);
        if (!out->source)
            return SL_ENOMEM;
        return s_trace_copy_one(r->source, out->source, depth + 1);
    }
    return 0;
}

static int s_trace_copy(const Sluice__Frame *reply, void *arg)
{
    int rc = s_trace_copy_one(reply->trace_reply, arg, 0);
    if (rc)
        sl_trace_clear(arg);
    return rc;
}

int sl_trace(sl_client_t *self, const char *topic, uint64_t offset, sl_trace_t *out)
{
    if (!out)
        return SL_EINVAL;
    memset(out, 0, sizeof *out);
    if (!topic || slc_topic_validate(topic, true) != 0)
        return SL_EINVAL;
    Sluice__Trace tr = SLUICE__TRACE__INIT;
    tr.topic = (char *) topic;
    tr.offset = offset;
    return s_call(self, SLUICE__FRAME__BODY_TRACE, &tr,
                  SLUICE__FRAME__BODY_TRACE_REPLY, s_trace_copy, out);
}

void sl_trace_clear(sl_trace_t *trace)
{
    if (!trace)
        return;
    for (size_t i = 0; i < trace->nsteps; i++)
        free(trace->steps[i].legs);
    free(trace->steps);
    trace->steps = NULL;
    trace->nsteps = 0;
    if (trace->source) {
        sl_trace_clear(trace->source);
        free(trace->source);
        trace->source = NULL;
    }
}
