/*  sld_admin - the operator's commands: topics (TopicCreate), keys and
 *  grants (KeyAdd, KeyRevoke, GrantChange, RotateKey), registry changes
 *  (SchemaRegister, TopicSet, MappingAdd, MappingRemove: refused while the
 *  live routing table names the mapping), applied in the
 *  turn's write transaction and audited; and the reads answered at once
 *  (Stats, KeyList, SchemaGet/List, MappingGet/List). Broker thread only.
 *  Permissions are checked before (sld_commands); the state itself is
 *  sld_topics', sld_auth's, sld_registry's and the store's.  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sld_commands.h"
#include "sld_server_int.h"
#include "sld_session.h"

int sld_admin_on_stats(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    Sluice__StatsReply reply = SLUICE__STATS_REPLY__INIT;
    /* The counters, then four gauges (S_GAUGES) read at the request. */
    enum { S_GAUGES = 4 };
    Sluice__Counter counters[SLD_M_COUNT + S_GAUGES];
    Sluice__Counter *cptrs[SLD_M_COUNT + S_GAUGES];
    Sluice__StatsRequest *req = f->stats;
    bool all = !req->topics && !req->subs && !req->counters;
    int rc = 0;
    char (*schemas)[SLD_SUBJECT_MAX + 16] = NULL;
    if (all || req->topics)
        rc = sld_topics_info(self->topics, &reply.topics, &reply.n_topics);
    /* The bound schema of each topic, the removed dead letters of each
     * _dlq. topic (those its messages still hold). */
    if (rc == 0 && reply.n_topics
        && !(schemas = calloc(reply.n_topics, sizeof *schemas)))
        rc = SL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < reply.n_topics; i++) {
        Sluice__TopicInfo *ti = reply.topics[i];
        sld_registry_binding(self->registry, ti->name, schemas[i], sizeof schemas[i]);
        ti->schema = schemas[i];
        if (sld_dlq_topic(ti->name))
            ti->dlq_removed = sld_dlq_count(self->dlq, ti->id, ti->first_offset);
    }
    if (rc == 0 && (all || req->subs))
        rc = sld_delivery_stats(self->delivery, &reply.subs, &reply.n_subs);
    if (rc == 0 && (all || req->counters)) {
        for (int i = 0; i < SLD_M_COUNT; i++) {
            sluice__counter__init(&counters[i]);
            counters[i].name = (char *) sld_metrics_name((sld_metric_t) i);
            counters[i].value = sld_metrics_get(self->metrics, (sld_metric_t) i);
            cptrs[i] = &counters[i];
        }
        uint64_t used = 0, size = 0;
        sld_store_usage(self->store, &used, &size);
        static const char *const gauges[S_GAUGES] = {
            "storage.used_bytes", "storage.map_bytes", "storage.map_max_bytes",
            "connections.open" };
        const uint64_t gv[S_GAUGES] = { used, size, sld_store_map_max(self->store),
                                        zhashx_size(self->sessions) };
        for (int i = 0; i < S_GAUGES; i++) {
            sluice__counter__init(&counters[SLD_M_COUNT + i]);
            counters[SLD_M_COUNT + i].name = (char *) gauges[i];
            counters[SLD_M_COUNT + i].value = gv[i];
            cptrs[SLD_M_COUNT + i] = &counters[SLD_M_COUNT + i];
        }
        reply.n_counters = SLD_M_COUNT + S_GAUGES;
        reply.counters = cptrs;
    }
    /* Each identity sees the topics it holds any topic grant on, the
     * subscriptions its subscribe or admin grants cover and the durable
     * ones it may use (its own, those its consume grants name), and the
     * counters only with admin on everything. Items not shown move to the
     * end, so the free calls below still see all of them. */
    const sld_ident_t *id = peer->session->ident;
    size_t ntopics = reply.n_topics, nsubs = reply.n_subs, k = 0;
    for (size_t i = 0; i < ntopics; i++)
        if (sld_ident_allows(id, SLD_PERM_TOPIC, reply.topics[i]->name)) {
            Sluice__TopicInfo *t = reply.topics[k];
            reply.topics[k++] = reply.topics[i];
            reply.topics[i] = t;
        }
    reply.n_topics = k;
    k = 0;
    for (size_t i = 0; i < nsubs; i++) {
        const Sluice__SubInfo *si = reply.subs[i];
        if (sld_ident_covers(id, SLD_PERM_SUBSCRIBE | SLD_PERM_ADMIN, si->pattern)
            || (!si->ephemeral && sld_ident_may_use_sub(id, si->name, si->pattern, si->owner))) {
            Sluice__SubInfo *t = reply.subs[k];
            reply.subs[k++] = reply.subs[i];
            reply.subs[i] = t;
        }
    }
    reply.n_subs = k;
    if (!sld_ident_covers(id, SLD_PERM_ADMIN, ">"))
        reply.n_counters = 0;
    /* The routing counters: any session may read the tables themselves. */
    Sluice__RoutingStats *routing = NULL;
    if (rc == 0 && (all || req->counters) && sld_routes_version(self->routes))
        rc = sld_routes_stats(self->routes, &routing);
    reply.routing = routing;
    if (rc)
        sld_session_error(self, peer, f->corr, rc, NULL);
    else {
        Sluice__Frame frame = SLUICE__FRAME__INIT;
        frame.body_case = SLUICE__FRAME__BODY_STATS_REPLY;
        frame.stats_reply = &reply;
        sld_session_reply(self, peer, f->corr, &frame);
    }
    sld_topics_info_free(&reply.topics, ntopics);
    free(schemas);
    sld_delivery_stats_free(&reply.subs, nsubs);
    sld_routes_stats_free(&routing);
    return rc;
}

/* SchemaGet and SchemaList: any session may read the registry. */
int sld_admin_on_schema_read(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    if (f->body_case == SLUICE__FRAME__BODY_SCHEMA_GET) {
        Sluice__SchemaInfo info;
        const char *subject = f->schema_get->subject;
        if (sld_registry_get(self->registry, subject, f->schema_get->version, &info) != 0) {
            char text[SLD_SUBJECT_MAX + 64];
            snprintf(text, sizeof text, "no schema %s%s%.0u", subject ? subject : "",
                     f->schema_get->version ? "@" : "", f->schema_get->version);
            return sld_session_error(self, peer, f->corr, SL_ENOTFOUND, text);
        }
        frame.body_case = SLUICE__FRAME__BODY_SCHEMA_INFO;
        frame.schema_info = &info;
        sld_session_reply(self, peer, f->corr, &frame);
        return 0;
    }
    Sluice__SchemaListReply reply = SLUICE__SCHEMA_LIST_REPLY__INIT;
    int rc = sld_registry_list(self->registry, &reply.subjects, &reply.n_subjects);
    if (rc)
        sld_session_error(self, peer, f->corr, rc, NULL);
    else {
        frame.body_case = SLUICE__FRAME__BODY_SCHEMA_LIST_REPLY;
        frame.schema_list_reply = &reply;
        sld_session_reply(self, peer, f->corr, &frame);
    }
    sld_registry_list_free(&reply.subjects, reply.n_subjects);
    return rc;
}

/* MappingGet and MappingList: any session may read them. */
int sld_admin_on_mapping_read(sld_server_t *self, const sld_peer_t *peer,
                              Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    if (f->body_case == SLUICE__FRAME__BODY_MAPPING_GET) {
        Sluice__MappingInfo info;
        if (sld_registry_map_get(self->registry, f->mapping_get->name, &info) != 0)
            return sld_session_error(self, peer, f->corr, SL_ENOTFOUND,
                                     "no mapping by that name");
        frame.body_case = SLUICE__FRAME__BODY_MAPPING_INFO;
        frame.mapping_info = &info;
        sld_session_reply(self, peer, f->corr, &frame);
        return 0;
    }
    Sluice__MappingListReply reply = SLUICE__MAPPING_LIST_REPLY__INIT;
    int rc = sld_registry_map_list(self->registry, &reply.mappings, &reply.n_mappings);
    if (rc)
        sld_session_error(self, peer, f->corr, rc, NULL);
    else {
        frame.body_case = SLUICE__FRAME__BODY_MAPPING_LIST_REPLY;
        frame.mapping_list_reply = &reply;
        sld_session_reply(self, peer, f->corr, &frame);
    }
    sld_registry_map_list_free(&reply.mappings, reply.n_mappings);
    return rc;
}

int sld_admin_on_key_list(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    Sluice__KeyListReply reply = SLUICE__KEY_LIST_REPLY__INIT;
    int rc = sld_auth_list(self->auth, &reply.identities, &reply.n_identities);
    if (rc)
        sld_session_error(self, peer, f->corr, rc, NULL);
    else {
        Sluice__Frame frame = SLUICE__FRAME__INIT;
        frame.body_case = SLUICE__FRAME__BODY_KEY_LIST_REPLY;
        frame.key_list_reply = &reply;
        sld_session_reply(self, peer, f->corr, &frame);
    }
    sld_auth_list_free(&reply.identities, reply.n_identities);
    return rc;
}

/* ------------------------------------------------------------ write phase */

void sld_admin_queue_result(sld_server_t *self, const sld_write_t *w, int rc, const char *why,
                            Sluice__Frame *ok_frame)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Ok ok = SLUICE__OK__INIT;
    Sluice__Error err = SLUICE__ERROR__INIT;
    if (rc) {
        err.code = -rc;
        err.text = (char *) (why ? why : slc_strerror(rc));
        err.retryable = slc_retryable(rc);
        frame.body_case = SLUICE__FRAME__BODY_ERROR;
        frame.error = &err;
        sld_metrics_error(self->metrics, rc);
    }
    else if (!ok_frame) {
        frame.body_case = SLUICE__FRAME__BODY_OK;
        frame.ok = &ok;
    }
    sld_session_queue(self, &self->wreplies, w->id, w->id_len, w->frame->corr,
                      rc || !ok_frame ? &frame : ok_frame);
}

int sld_admin_apply_topic_create(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                                 bool refuse, int fail)
{
    (void) refuse;
    Sluice__TopicCreate *tc = w->frame->topic_create;
    char why[160] = "";
    uint32_t id = 0;
    int rc = fail ? fail : sld_topics_create(self->topics, txn, tc->name, tc->max_age_ms,
                                             tc->max_bytes, &id, why, sizeof why);
    /* A new topic may match existing pattern subscriptions: tell delivery
     * after the commit, like an append. */
    if (rc == 0)
        rc = sld_ingest_note_appended(self, id);
    if (rc == SL_EFULL && !fail)
        return rc;
    if (rc && rc != SL_EINVAL && !fail)
        return rc;
    char detail[96];
    snprintf(detail, sizeof detail, "max_age_ms %llu, max_bytes %llu",
             (unsigned long long) tc->max_age_ms, (unsigned long long) tc->max_bytes);
    sld_audit_add(self->audit, true, w->session ? sld_ident_name(w->session->ident) : NULL,
                  "topic.create", tc->name, rc ? "failed" : "ok",
                  rc ? (why[0] ? why : slc_strerror(rc)) : detail);
    sld_admin_queue_result(self, w, rc, why[0] ? why : NULL, NULL);
    return 0;
}

void sld_admin_grants_text(const Sluice__GrantChange *gc, char *out, size_t len)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < gc->n_grants && k < len; i++) {
        static const char *const names[] = { "publish", "subscribe", "admin", "consume" };
        uint32_t p = gc->grants[i]->perms;
        char perms[48] = "";
        for (unsigned b = 0, n = 0; b < 4; b++)
            if (p & (1u << b))
                n += (unsigned) snprintf(perms + n, sizeof perms - n, "%s%s", n ? "," : "",
                                         names[b]);
        int w = snprintf(out + k, len - k, "%s%s %s", i ? "; " : "", perms,
                         gc->grants[i]->pattern ? gc->grants[i]->pattern : "");
        if (w < 0)
            break;
        k += (size_t) w;
    }
}

/* Keys, grants, key rotation. */
int sld_admin_apply_keys(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                         bool refuse, int fail)
{
    (void) refuse;
    Sluice__Frame *f = w->frame;
    const char *target = NULL;
    char why[160] = "";
    char detail[512] = "";
    uint32_t key_id = 0;
    int rc = fail;
    switch (f->body_case) {
    case SLUICE__FRAME__BODY_KEY_ADD:
        target = f->key_add->name;
        if (f->key_add->public_key.len == 32)
            zmq_z85_encode(detail, f->key_add->public_key.data, 32);
        if (!rc && f->key_add->public_key.len != 32) {
            rc = SL_EINVAL;
            slc_errf(why, sizeof why, "a public key is 32 bytes (40 characters in Z85)");
        }
        if (!rc)
            rc = sld_auth_key_add(self->auth, txn, target, f->key_add->public_key.data, why,
                                  sizeof why);
        break;
    case SLUICE__FRAME__BODY_KEY_REVOKE:
        target = f->key_revoke->name;
        if (!rc)
            rc = sld_auth_key_revoke(self->auth, txn, target, why, sizeof why);
        break;
    case SLUICE__FRAME__BODY_GRANT_CHANGE:
        target = f->grant_change->name;
        sld_admin_grants_text(f->grant_change, detail, sizeof detail);
        if (!rc)
            rc = sld_auth_grant(self->auth, txn, target, f->grant_change->grants,
                                f->grant_change->n_grants, f->grant_change->revoke, why, sizeof why);
        break;
    default:                            /* RotateKey */
        target = "at-rest data key";
        if (!rc && sld_store_seal_key_id(self->store) == 0) {
            rc = SL_EINVAL;
            slc_errf(why, sizeof why,
                     "encryption at rest is off: start sluiced with --encrypt-at-rest KEYFILE");
        }
        if (!rc)
            rc = sld_store_rotate_key(txn, &key_id);
        if (!rc)
            snprintf(detail, sizeof detail, "new data key id %u", key_id);
        break;
    }
    if (!fail && (rc == SL_EFULL || rc == SL_ESTORE || rc == SL_ENOMEM))
        return rc;
    sld_audit_add(self->audit, true, w->session ? sld_ident_name(w->session->ident) : NULL,
                  sld_command_action(w->cmd, f), target, rc ? "failed" : "ok",
                  rc ? (why[0] ? why : slc_strerror(rc)) : detail);
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__RotateKeyReply rk = SLUICE__ROTATE_KEY_REPLY__INIT;
    bool rotated = f->body_case == SLUICE__FRAME__BODY_ROTATE_KEY;
    rk.key_id = key_id;
    frame.body_case = SLUICE__FRAME__BODY_ROTATE_KEY_REPLY;
    frame.rotate_key_reply = &rk;
    sld_admin_queue_result(self, w, rc, why[0] ? why : NULL, rotated ? &frame : NULL);
    return 0;
}

/* SchemaRegister, TopicSet, MappingAdd, MappingRemove. */
int sld_admin_apply_registry(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                             bool refuse, int fail)
{
    (void) refuse;
    Sluice__Frame *f = w->frame;
    char why[2048] = "", detail[SLD_SUBJECT_MAX + 64] = "";
    const char *action, *target;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__SchemaRegisterReply reply = SLUICE__SCHEMA_REGISTER_REPLY__INIT;
    Sluice__MappingInfo mapping = SLUICE__MAPPING_INFO__INIT;
    int rc = fail;
    if (f->body_case == SLUICE__FRAME__BODY_SCHEMA_REGISTER) {
        Sluice__SchemaRegister *sr = f->schema_register;
        action = sr->dry_run ? "schema.check" : "schema.register";
        target = sr->subject;
        bool existed = false;
        if (!rc)
            rc = sld_registry_register(self->registry, txn, sr->subject, sr->schema,
                                       strlen(sr->schema), sr->compat, sr->dry_run,
                                       &reply.version, &existed, why, sizeof why);
        reply.existed = existed;
        snprintf(detail, sizeof detail, "version %u%s", reply.version,
                 reply.existed ? " (unchanged)" : "");
        frame.body_case = SLUICE__FRAME__BODY_SCHEMA_REGISTER_REPLY;
        frame.schema_register_reply = &reply;
    }
    else if (f->body_case == SLUICE__FRAME__BODY_MAPPING_ADD) {
        Sluice__MappingInfo info = SLUICE__MAPPING_INFO__INIT;
        action = "mapping.add";
        target = "(mapping)";
        if (!rc)
            rc = sld_registry_map_add(self->registry, txn, f->mapping_add->yaml,
                                      strlen(f->mapping_add->yaml), &info, why, sizeof why);
        if (!rc) {
            target = info.name;
            snprintf(detail, sizeof detail, "version %u: %s -> %s", info.version, info.from,
                     info.to);
        }
        frame.body_case = SLUICE__FRAME__BODY_MAPPING_INFO;
        mapping = info;
        mapping.yaml = "";
        frame.mapping_info = &mapping;
    }
    else if (f->body_case == SLUICE__FRAME__BODY_MAPPING_REMOVE) {
        action = "mapping.remove";
        target = f->mapping_remove->name;
        /* A mapping the live (or a staged) routing table names stays. */
        if (!rc && sld_routes_uses_mapping(self->routes, target, why, sizeof why)) {
            rc = SL_ESTALE;
            size_t k = strlen(why);
            snprintf(why + k, sizeof why - k, ": apply a table without it first");
        }
        if (!rc)
            rc = sld_registry_map_remove(self->registry, txn, target, why, sizeof why);
    }
    else {
        Sluice__TopicSet *ts = f->topic_set;
        action = "topic.set";
        target = ts->topic;
        if (!rc)
            rc = sld_registry_bind(self->registry, txn, ts->topic, ts->subject, ts->version,
                                   ts->invalid, why, sizeof why);
        snprintf(detail, sizeof detail, "schema %s@%s, invalid: %s",
                 *ts->subject ? ts->subject : "(none)",
                 ts->version ? "N" : "latest", *ts->invalid ? ts->invalid : "reject");
    }
    if (!fail && (rc == SL_EFULL || rc == SL_ESTORE || rc == SL_ENOMEM))
        return rc;
    /* A dry run changes nothing: no audit record. */
    if (strcmp(action, "schema.check") != 0)
        sld_audit_add(self->audit, true, w->session ? sld_ident_name(w->session->ident) : NULL,
                      action, target, rc ? "failed" : "ok", rc ? (why[0] ? why : slc_strerror(rc))
                                                               : detail);
    sld_admin_queue_result(self, w, rc, why[0] ? why : NULL,
                   frame.body_case != SLUICE__FRAME__BODY__NOT_SET ? &frame : NULL);
    return 0;
}
