/*  sld_route_ingest - the routing stage of the publish path: after a
 *  message is stored, evaluate the live routing table (slt_route) and, in
 *  the same write transaction, store each derived message on its targets
 *  (with its lineage), each dead-lettered leg on _dlq.routes (and an
 *  advisory on _advisory.routes for failures), then route the derived
 *  messages in turn (a work queue, at most SLD_ROUTE_HOPS hops, a target
 *  already in the path is a `routing loop` leg), and the trace record of
 *  each message a route's pattern matched (sld_trace); and the same for
 *  one route run on a stored message (sld_route_backfill, for
 *  sld_route_backfill.c). Broker thread only, called by sld_ingest. An
 *  original's evaluation may come made (sld_route_prep, before the
 *  transaction): its steps and mapped outputs are then used as they are,
 *  with the same effects byte for byte. The table's versions and counters are
 *  sld_routes'; what routes do is docs/routing.md.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "sld_routes.h"
#include "sld_server_int.h"
#include "sld_trace.h"
#include "slt_doc.h"

#define SLD_ROUTE_HOPS 8
#define S_DLQ_TOPIC "_dlq.routes"
#define S_ADVISORY_TOPIC "_advisory.routes"


/* A message to route: stored on env.topic at OFFSET. */
typedef struct {
    Sluice__Envelope env;       /* shallow; strings in the arena or the frame */
    Sluice__Lineage lin;
    uint64_t offset;
    uint32_t id;                /* topic id (an original's: looked up when needed) */
    bool has_id;                /* ID is known */
    bool original;
    const cJSON *doc;           /* the payload parsed (borrowed), or NULL */
    cJSON *meta;                /* $meta, built when a route reads it */
} s_item_t;

typedef struct {
    sld_server_t *self;
    sld_txn_t *txn;
    uint64_t now;
    uint32_t version;
    slc_pool_t arena;
    s_item_t **q;
    size_t nq, capq;
    sld_trace_t trace;          /* the record of the message being routed */
} s_pass_t;

/* Pack ENV into the server's scratch buffer and append it on topic ID.
 * 0 and *offset, or a store failure. */
static int s_store(s_pass_t *p, uint32_t id, const Sluice__Envelope *env, uint64_t *offset)
{
    sld_server_t *self = p->self;
    size_t len = slc_envelope_size(env);
    if (slc_grow((void **) &self->scratch, &self->capscratch, len + 1, 1) != 0)
        return SL_ENOMEM;
    slc_envelope_pack(env, self->scratch);
    int rc = sld_store_append(p->txn, id, p->now, self->scratch, len, offset);
    /* What sld_ingest_note_appended does, without calling back into
     * sld_ingest (which calls this stage): no call cycle. */
    if (rc == 0)
        rc = slc_idset_add(&self->appended, &self->nappended, &self->capappended, id);
    if (rc == 0)
        rc = sld_topicstats_add(self->tstats, id, env->payload.len);
    return rc;
}

/* $meta of IT: {topic, offset, headers, lineage}. NULL when out of memory. */
static cJSON *s_meta(const s_item_t *it)
{
    cJSON *m = cJSON_CreateObject(), *h = cJSON_CreateObject();
    if (!m || !h) {
        cJSON_Delete(m);
        cJSON_Delete(h);
        return NULL;
    }
    cJSON_AddStringToObject(m, "topic", it->env.topic);
    cJSON_AddNumberToObject(m, "offset", (double) it->offset);
    for (size_t i = 0; i < it->env.n_headers; i++)
        if (it->env.headers[i]->key)
            cJSON_AddStringToObject(h, it->env.headers[i]->key,
                                    it->env.headers[i]->value ? it->env.headers[i]->value : "");
    cJSON_AddItemToObject(m, "headers", h);
    const Sluice__Lineage *l = it->env.lineage;
    if (l && l->source_topic && *l->source_topic) {
        cJSON *lj = cJSON_CreateObject(), *path = cJSON_CreateArray();
        if (lj && path) {
            cJSON_AddStringToObject(lj, "source_topic", l->source_topic);
            cJSON_AddNumberToObject(lj, "source_offset", (double) l->source_offset);
            cJSON_AddStringToObject(lj, "route", l->route ? l->route : "");
            cJSON_AddStringToObject(lj, "mapping", l->mapping ? l->mapping : "");
            cJSON_AddNumberToObject(lj, "table_version", l->table_version);
            for (size_t i = 0; i < l->n_path; i++)
                cJSON_AddItemToArray(path, cJSON_CreateString(l->path[i]));
            cJSON_AddItemToObject(lj, "path", path);
            cJSON_AddItemToObject(m, "lineage", lj);
        }
        else {
            cJSON_Delete(lj);
            cJSON_Delete(path);
        }
    }
    else
        cJSON_AddNullToObject(m, "lineage");
    return m;
}

/* The topics IT passed through: a derived message's lineage path; an
 * original's own topic (a lineage a producer sent is not trusted). */
static void s_path(const s_item_t *it, char *const **path, size_t *n, const char **self_topic)
{
    bool derived = !it->original && it->env.lineage;
    *path = derived ? it->env.lineage->path : NULL;
    *n = derived ? it->env.lineage->n_path : 0;
    *self_topic = *n ? NULL : it->env.topic;
}

static bool s_passed(const s_item_t *it, const char *topic)
{
    char *const *path;
    size_t n;
    const char *own;
    s_path(it, &path, &n, &own);
    if (own && strcmp(own, topic) == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (strcmp(path[i], topic) == 0)
            return true;
    return false;
}

/* IT's lineage for a message made from it by ROUTE (MAPPING may be NULL;
 * MAPPING_VERSION its registry version), with TARGET (NULL: none) added to
 * the path. NULL when out of memory. */
static Sluice__Lineage *s_lineage(s_pass_t *p, const s_item_t *it, const char *route,
                                  const char *mapping, uint32_t mapping_version,
                                  const char *target)
{
    char *const *path;
    size_t n;
    const char *own;
    s_path(it, &path, &n, &own);
    Sluice__Lineage *l = slc_pool_alloc(&p->arena, sizeof *l);
    char **np = slc_pool_alloc(&p->arena, (n + 2) * sizeof(char *));
    if (!l || !np)
        return NULL;
    sluice__lineage__init(l);
    size_t k = 0;
    if (own)
        np[k++] = (char *) own;
    for (size_t i = 0; i < n; i++)
        np[k++] = path[i];
    if (target)
        np[k++] = (char *) target;
    l->source_topic = (char *) it->env.topic;
    l->source_offset = it->offset;
    l->route = (char *) route;
    l->mapping = (char *) (mapping ? mapping : "");
    l->mapping_version = mapping ? mapping_version : 0;
    l->table_version = p->version;
    l->path = np;
    l->n_path = k;
    return l;
}

/* An advisory on _advisory.routes for a failed leg of IT. */
static int s_advisory(s_pass_t *p, const s_item_t *it, const char *route, const char *error,
                      uint64_t dlq_offset)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return SL_ENOMEM;
    cJSON_AddStringToObject(j, "event", "route.failed");
    cJSON_AddStringToObject(j, "route", route);
    cJSON_AddStringToObject(j, "topic", it->env.topic);
    cJSON_AddNumberToObject(j, "offset", (double) it->offset);
    cJSON_AddStringToObject(j, "error", error);
    cJSON_AddNumberToObject(j, "table_version", p->version);
    cJSON_AddNumberToObject(j, "dlq_offset", (double) dlq_offset);
    char *text = slc_pool_keep(&p->arena, cJSON_PrintUnformatted(j));
    cJSON_Delete(j);
    if (!text)
        return SL_ENOMEM;
    Sluice__Envelope env = SLUICE__ENVELOPE__INIT;
    env.topic = S_ADVISORY_TOPIC;
    env.content_type = "application/json";
    env.payload.data = (uint8_t *) text;
    env.payload.len = strlen(text);
    env.ingest_ts_us = p->now;
    env.source = "sluiced";
    uint32_t id;
    uint64_t off;
    int rc = sld_store_topic_ensure(p->txn, S_ADVISORY_TOPIC, &id);
    return rc ? rc : s_store(p, id, &env, &off);
}

/* A leg of IT to _dlq.routes by ROUTE: KEY is "sluice-error" (a failure:
 * an advisory too) or "sluice-reason" (a dlq action). */
static int s_dlq(s_pass_t *p, const s_item_t *it, size_t route_ix, const char *route,
                 const char *key, const char *text)
{
    char off[24], ver[16];
    snprintf(off, sizeof off, "%" PRIu64, it->offset);
    snprintf(ver, sizeof ver, "%u", p->version);
    const char *const add[][2] = {
        { "sluice-route", route }, { key, text ? text : "" },
        { "sluice-source-topic", it->env.topic }, { "sluice-source-offset", off },
        { "sluice-table-version", ver },
    };
    size_t nadd = sizeof add / sizeof add[0], n = it->env.n_headers;
    Sluice__Header **hp = slc_pool_alloc(&p->arena, (n + nadd) * sizeof *hp);
    Sluice__Header *hs = slc_pool_alloc(&p->arena, nadd * sizeof *hs);
    if (!hp || !hs)
        return SL_ENOMEM;
    for (size_t i = 0; i < n; i++)
        hp[i] = it->env.headers[i];
    for (size_t i = 0; i < nadd; i++) {
        sluice__header__init(&hs[i]);
        hs[i].key = slc_pool_strdup(&p->arena, add[i][0]);
        hs[i].value = slc_pool_strdup(&p->arena, add[i][1]);
        if (!hs[i].key || !hs[i].value)
            return SL_ENOMEM;
        hp[n + i] = &hs[i];
    }
    Sluice__Envelope env = it->env;
    env.topic = S_DLQ_TOPIC;
    env.seq = 0;
    env.headers = hp;
    env.n_headers = n + nadd;
    env.ingest_ts_us = p->now;
    env.lineage = s_lineage(p, it, route, NULL, 0, NULL);
    if (!env.lineage)
        return SL_ENOMEM;
    uint32_t id;
    uint64_t dlq_off = 0;
    int rc = sld_store_topic_ensure(p->txn, S_DLQ_TOPIC, &id);
    if (rc == 0)
        rc = s_store(p, id, &env, &dlq_off);
    if (rc == 0)
        rc = sld_trace_leg(&p->trace, id, dlq_off);
    if (rc)
        return rc;
    sld_routes_count(p->self->routes, route_ix, SLD_ROUTE_DLQ, 1);
    if (strcmp(key, "sluice-error") == 0) {
        sld_routes_count(p->self->routes, route_ix, SLD_ROUTE_ERRORS, 1);
        rc = s_advisory(p, it, route, text ? text : "", dlq_off);
    }
    return rc;
}

/* Store IT's derived message on TARGET by ROUTE (through MAPPING, NULL:
 * none, of version MAPPING_VERSION): PAYLOAD (LEN bytes) with
 * CONTENT_TYPE; queue it to be routed in turn. */
static int s_derive(s_pass_t *p, const s_item_t *it, size_t route_ix, const char *route,
                    const char *mapping, uint32_t mapping_version, const char *target,
                    const void *payload, size_t len, const char *content_type)
{
    char why[256];
    uint32_t id;
    if (s_passed(it, target)) {
        char text[SLC_TOPIC_MAX + 64];
        snprintf(text, sizeof text, "routing loop: %s is already in the message's path",
                 target);
        return s_dlq(p, it, route_ix, route, "sluice-error", text);
    }
    if (!it->original && it->env.lineage && it->env.lineage->n_path > SLD_ROUTE_HOPS) {
        char text[SLC_TOPIC_MAX + 96];
        snprintf(text, sizeof text, "routing chain longer than %d hops: not routed to %s",
                 SLD_ROUTE_HOPS, target);
        return s_dlq(p, it, route_ix, route, "sluice-error", text);
    }
    int rc = sld_topics_resolve(p->self->topics, p->txn, target, &id, why, sizeof why);
    if (rc == SL_EINVAL)
        return s_dlq(p, it, route_ix, route, "sluice-error", why);
    if (rc)
        return rc;
    s_item_t *d = slc_pool_alloc(&p->arena, sizeof *d);
    if (!d)
        return SL_ENOMEM;
    d->env = it->env;
    d->env.topic = (char *) target;
    d->env.seq = 0;
    d->env.content_type = (char *) content_type;
    d->env.payload.data = (uint8_t *) payload;
    d->env.payload.len = len;
    d->env.ingest_ts_us = p->now;
    d->env.lineage = s_lineage(p, it, route, mapping, mapping_version, target);
    if (!d->env.lineage)
        return SL_ENOMEM;
    d->id = id;
    rc = s_store(p, id, &d->env, &d->offset);
    if (rc == 0)
        rc = sld_trace_leg(&p->trace, id, d->offset);
    if (rc)
        return rc;
    sld_routes_count(p->self->routes, route_ix, SLD_ROUTE_DELIVERED, 1);
    if (slc_grow((void **) &p->q, &p->capq, p->nq + 1, sizeof(s_item_t *)) != 0)
        return SL_ENOMEM;
    p->q[p->nq++] = d;
    return 0;
}

/* A fired deliver STEP of IT; OUT (NULL: done here) its mapped output
 * validated and printed ahead of the transaction. */
static int s_deliver(s_pass_t *p, const s_item_t *it, const slt_route_step_t *step,
                     const char *route, const sld_route_prep_out_t *out)
{
    const void *payload = it->env.payload.data;
    size_t len = it->env.payload.len;
    const char *ct = it->env.content_type;
    bool mapped = out ? out->mapped : step->output != NULL;
    if (mapped) {
        char buf[SLD_ROUTE_PREP_OUT_WHY_MAX];
        const char *why = buf;
        const char *to = step->map ? slt_map_to(step->map) : NULL;
        int rc = out ? out->rc
               : to ? sld_registry_validate_ref(p->self->registry, to, step->output, buf,
                                                sizeof buf) : 0;
        if (rc) {
            char text[1200];
            if (out)
                why = out->why;
            snprintf(text, sizeof text, "mapping %s: its output is invalid: %s",
                     step->mapping ? step->mapping : "", why);
            sld_trace_fail(&p->trace, text);
            return s_dlq(p, it, step->route, route, "sluice-error", text);
        }
        if (out) {
            payload = out->json;        /* the prep's, until the turn ends */
            len = out->len;
        }
        else {
            /* cJSON_PrintUnformatted's bytes, without its printf round trips. */
            char *json = NULL;
            int prc = slt_doc_print(step->output, &json, &len);
            if (prc)
                return prc;
            if (!slc_pool_keep(&p->arena, json))
                return SL_ENOMEM;
            payload = json;
        }
        ct = "application/json";
    }
    /* The version of the registry's mapping the live table was compiled
     * with (sld_routes keeps it beside its copy). */
    uint32_t mv = mapped ? sld_routes_mapping_version(p->self->routes, step->map) : 0;
    for (size_t t = 0; t < step->ntargets; t++) {
        int rc = s_derive(p, it, step->route, route, mapped ? step->mapping : NULL, mv,
                          step->targets[t], payload, len, ct);
        if (rc)
            return rc;
    }
    return 0;
}

/* slt_route_msg_t's meta_fn: IT's $meta, built on first use. */
static const cJSON *s_meta_fn(void *arg)
{
    s_item_t *it = arg;
    if (!it->meta)
        it->meta = s_meta(it);
    return it->meta;
}

/* What fired or failed STEP is in the trace record. */
static sld_trace_outcome_t s_outcome(const slt_route_step_t *st)
{
    return st->outcome == SLT_ROUTE_SKIPPED ? SLD_TRACE_SKIPPED
         : st->outcome == SLT_ROUTE_FAILED ? SLD_TRACE_FAILED
         : st->action == SLT_ROUTE_DROP ? SLD_TRACE_DROP
         : st->action == SLT_ROUTE_DLQ ? SLD_TRACE_DLQ : SLD_TRACE_DELIVER;
}

/* Do what fired or failed step ST of route NAME says for IT (its trace
 * step is already added): a leg, a drop, derived messages. OUT: ST's
 * prepared output, or NULL. */
static int s_act(s_pass_t *p, const s_item_t *it, const slt_route_step_t *st,
                 const char *name, const sld_route_prep_out_t *out)
{
    if (st->outcome == SLT_ROUTE_FAILED)
        return s_dlq(p, it, st->route, name, "sluice-error", slt_route_reason(st->reason, name));
    sld_routes_count(p->self->routes, st->route, SLD_ROUTE_MATCHED, 1);
    if (st->action == SLT_ROUTE_DROP) {
        sld_routes_count(p->self->routes, st->route, SLD_ROUTE_DROPPED, 1);
        return 0;
    }
    if (st->action == SLT_ROUTE_DLQ)
        return s_dlq(p, it, st->route, name, "sluice-reason", st->reason);
    return s_deliver(p, it, st, name, out);
}

/* Evaluate TABLE for IT (into RES; or take PRE's evaluation) and do what
 * its steps say. */
static int s_route_one(s_pass_t *p, const slt_route_table_t *table, s_item_t *it,
                       slt_route_result_t *res, const sld_route_prepared_t *pre)
{
    int rc = 0;
    const slt_route_result_t *r = pre ? &pre->res : res;
    if (!pre) {
        slt_route_msg_t msg = { it->env.topic, it->env.payload.data, it->env.payload.len,
                                it->env.content_type && *it->env.content_type
                                    ? it->env.content_type : NULL, NULL };
        slt_route_given_t given = { it->doc, s_meta_fn, it };
        rc = slt_route_eval_given(table, &msg, &given, res);
    }
    bool fired = false;
    sld_trace_reset(&p->trace, p->version);
    for (size_t i = 0; rc == 0 && i < r->nsteps; i++) {
        const slt_route_step_t *st = &r->steps[i];
        const char *name = slt_route_name(table, st->route);
        rc = sld_trace_step(&p->trace, (uint32_t) st->route, s_outcome(st),
                            st->outcome == SLT_ROUTE_FAILED ? slt_route_reason(st->reason, name)
                                                            : st->reason);
        if (rc || st->outcome == SLT_ROUTE_SKIPPED)
            continue;
        fired = true;
        rc = s_act(p, it, st, name, pre ? &pre->outs[i] : NULL);
    }
    if (rc == 0 && !fired && it->original)
        sld_routes_count_unrouted(p->self->routes);
    /* The trace record: only when some route's pattern matched. */
    uint32_t id = it->id;
    if (rc == 0 && r->nsteps > 0 && it->original && !it->has_id)
        rc = sld_store_topic_ensure(p->txn, it->env.topic, &id);
    if (rc == 0 && r->nsteps > 0)
        rc = sld_trace_put(p->txn, id, it->offset, &p->trace);
    cJSON_Delete(it->meta);
    it->meta = NULL;
    return rc;
}

int sld_route_ingest(sld_server_t *self, sld_txn_t *txn, const slt_route_table_t *table,
                     const Sluice__Envelope *e, const char *source, uint64_t offset,
                     uint64_t now)
{
    return sld_route_ingest_doc(self, txn, table, e, source, offset, now, NULL, NULL, NULL);
}

int sld_route_ingest_doc(sld_server_t *self, sld_txn_t *txn, const slt_route_table_t *table,
                         const Sluice__Envelope *e, const char *source, uint64_t offset,
                         uint64_t now, const cJSON *doc, const uint32_t *topic_id,
                         const sld_route_prepared_t *pre)
{
    s_pass_t p;
    memset(&p, 0, sizeof p);
    p.self = self;
    p.txn = txn;
    p.now = now;
    p.version = sld_routes_version(self->routes);
    s_item_t orig;
    memset(&orig, 0, sizeof orig);
    orig.env = *e;
    orig.env.source = (char *) (source ? source : e->source);
    orig.env.ingest_ts_us = now;
    orig.offset = offset;
    orig.original = true;
    orig.doc = doc;
    if (topic_id) {
        orig.id = *topic_id;
        orig.has_id = true;
    }
    slt_route_result_t res;
    memset(&res, 0, sizeof res);
    int rc = s_route_one(&p, table, &orig, &res, pre);
    /* Derived messages in the order they were made (breadth first); the
     * queue grows while it is walked. */
    for (size_t i = 0; rc == 0 && i < p.nq; i++)
        rc = s_route_one(&p, table, p.q[i], &res, NULL);
    slt_route_result_free(&res);
    sld_trace_free(&p.trace);
    free(p.q);
    slc_pool_free(&p.arena);
    return rc;
}

/* ------------------------------------------------------------ backfill */

int sld_route_backfill(sld_server_t *self, sld_txn_t *txn, const slt_route_table_t *table,
                       size_t route, const Sluice__Envelope *e, uint32_t id, uint64_t offset,
                       uint64_t now, sld_trace_t *rec, sld_backfill_outcome_t *outcome,
                       uint64_t *delivered)
{
    s_pass_t p;
    memset(&p, 0, sizeof p);
    p.self = self;
    p.txn = txn;
    p.now = now;
    p.version = sld_routes_version(self->routes);
    *outcome = SLD_BACKFILL_SKIPPED;
    *delivered = 0;
    s_item_t src;
    memset(&src, 0, sizeof src);
    src.env = *e;
    src.offset = offset;
    src.id = id;
    /* A stored derived message keeps the path it passed through (loops,
     * hops); anything else is an original, as at ingest. */
    src.original = !(e->lineage && e->lineage->source_topic && *e->lineage->source_topic);
    slt_route_result_t res;
    memset(&res, 0, sizeof res);
    cJSON *meta = s_meta(&src);
    int rc = meta ? 0 : SL_ENOMEM;
    slt_route_msg_t msg = { src.env.topic, src.env.payload.data, src.env.payload.len,
                            src.env.content_type && *src.env.content_type
                                ? src.env.content_type : NULL, meta };
    /* The whole table decides, so that the route is reached only where
     * ingest would have reached it; only the named route acts. */
    if (rc == 0)
        rc = slt_route_eval(table, &msg, &res);
    const slt_route_step_t *st = NULL;
    for (size_t i = 0; rc == 0 && i < res.nsteps; i++)
        if (res.steps[i].route == route)
            st = &res.steps[i];
    if (rc == 0 && st && st->outcome != SLT_ROUTE_SKIPPED) {
        /* The message's record gains the step (a new record when it had
         * none), marked with the live version its index belongs to. */
        p.trace = *rec;
        if (!p.trace.version && !p.trace.nsteps)
            p.trace.version = p.version;
        const char *name = slt_route_name(table, route);
        rc = sld_trace_step(&p.trace, (uint32_t) route, s_outcome(st),
                            st->outcome == SLT_ROUTE_FAILED ? slt_route_reason(st->reason, name)
                                                            : st->reason);
        if (rc == 0) {
            sld_trace_backfilled(&p.trace, p.version);
            rc = s_act(&p, &src, st, name, NULL);
        }
        if (rc == 0)
            rc = sld_trace_put(txn, id, offset, &p.trace);
        *rec = p.trace;                 /* its memory goes back to the caller */
        memset(&p.trace, 0, sizeof p.trace);
        *delivered = p.nq;
        /* A mapped output its schema refused turned the step FAILED. */
        *outcome = rc == 0 && rec->steps[rec->nsteps - 1].outcome == SLD_TRACE_FAILED
                   ? SLD_BACKFILL_FAILED : SLD_BACKFILL_FIRED;
    }
    /* What the route made is routed in turn, by the whole live table. */
    for (size_t i = 0; rc == 0 && i < p.nq; i++)
        rc = s_route_one(&p, table, p.q[i], &res, NULL);
    cJSON_Delete(meta);
    slt_route_result_free(&res);
    sld_trace_free(&p.trace);
    free(p.q);
    slc_pool_free(&p.arena);
    return rc;
}
