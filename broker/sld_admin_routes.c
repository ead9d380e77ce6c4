/*  sld_admin_routes - the routing table commands (docs/routing.md):
 *  RoutesApply and RoutesRollback applied in the turn's write transaction
 *  and audited with the identity, the versions and the diff; RoutesGet and
 *  RoutesList answered at once to any session; Trace (what routing did
 *  with one message, its source followed) answered at once. Broker thread
 *  only. Permissions are checked before (sld_commands); the versions and
 *  the live table are sld_routes', the trace records sld_trace's.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sld_commands.h"
#include "sld_server_int.h"
#include "sld_session.h"
#include "sld_trace.h"

int sld_admin_on_routes_read(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    if (f->body_case == SLUICE__FRAME__BODY_ROUTES_GET) {
        Sluice__RoutesInfo *info = NULL;
        uint32_t v = f->routes_get->version;
        int rc = sld_routes_get(self->routes, v, &info);
        if (rc == SL_ENOTFOUND) {
            char text[96];
            if (v)
                snprintf(text, sizeof text, "no routing table version %u (the live one is %u)",
                         v, sld_routes_version(self->routes));
            else
                snprintf(text, sizeof text, "no routing table applied yet");
            return sld_session_error(self, peer, f->corr, rc, text);
        }
        if (rc)
            return sld_session_error(self, peer, f->corr, rc, NULL);
        frame.body_case = SLUICE__FRAME__BODY_ROUTES_INFO;
        frame.routes_info = info;
        sld_session_reply(self, peer, f->corr, &frame);
        sld_routes_info_free(&info);
        return 0;
    }
    Sluice__RoutesListReply reply = SLUICE__ROUTES_LIST_REPLY__INIT;
    int rc = sld_routes_list(self->routes, &reply.versions, &reply.n_versions, &reply.live);
    if (rc)
        sld_session_error(self, peer, f->corr, rc, NULL);
    else {
        frame.body_case = SLUICE__FRAME__BODY_ROUTES_LIST_REPLY;
        frame.routes_list_reply = &reply;
        sld_session_reply(self, peer, f->corr, &frame);
    }
    sld_routes_list_free(&reply.versions, reply.n_versions);
    return rc;
}

int sld_admin_apply_routes(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                           bool refuse, int fail)
{
    (void) refuse;
    Sluice__Frame *f = w->frame;
    bool rollback = f->body_case == SLUICE__FRAME__BODY_ROUTES_ROLLBACK;
    bool dry_run = !rollback && f->routes_apply->dry_run;
    const char *who = w->session ? sld_ident_name(w->session->ident) : NULL;
    char *why = calloc(1, 16384);
    char *diff = NULL;
    uint32_t from = sld_routes_version(self->routes), version = from;
    bool changed = false;
    int rc = fail;
    if (!why)
        rc = rc ? rc : SL_ENOMEM;
    else if (!rc && rollback)
        rc = sld_routes_rollback(self->routes, txn, f->routes_rollback->version, who,
                                 f->routes_rollback->expect_version, &version, &changed,
                                 &diff, why, 16384);
    else if (!rc) {
        const char *yaml = f->routes_apply->yaml ? f->routes_apply->yaml : "";
        rc = sld_routes_apply(self->routes, txn, yaml, strlen(yaml), who,
                              f->routes_apply->expect_version, 0, dry_run, &version,
                              &changed, &diff, why, 16384);
    }
    if (!fail && (rc == SL_EFULL || rc == SL_ESTORE || rc == SL_ENOMEM)) {
        free(diff);
        free(why);
        return rc;
    }
    if (rc == SL_EINVAL && why && strncmp(why, "routing table refused", 21) != 0) {
        /* Every compile error, one per line, under one heading. */
        size_t n = strlen(why);
        static const char head[] = "routing table refused:\n";
        if (n + sizeof head < 16384) {
            memmove(why + sizeof head - 1, why, n + 1);
            memcpy(why, head, sizeof head - 1);
        }
    }
    /* A dry run and a table equal to the live one change nothing: no
     * audit record. */
    if (!dry_run && (rc || changed)) {
        char *detail = NULL;
        const char *action = rollback ? "routes.rollback" : "routes.apply";
        char target[48];
        snprintf(target, sizeof target, "routing table v%u", rc ? from + 1 : version);
        if (rc == 0 && asprintf(&detail, "version %u -> %u%s%.0u; diff:\n%s", from, version,
                                rollback ? ", the table of version " : "",
                                rollback ? f->routes_rollback->version : 0,
                                diff ? diff : "(not available)") < 0)
            detail = NULL;
        sld_audit_add(self->audit, true, who, action, target, rc ? "failed" : "ok",
                      rc ? (why && why[0] ? why : slc_strerror(rc))
                         : (detail ? detail : "applied"));
        free(detail);
    }
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__RoutesApplyReply reply = SLUICE__ROUTES_APPLY_REPLY__INIT;
    Sluice__Error err = SLUICE__ERROR__INIT;
    if (rc) {
        err.code = -rc;
        err.text = (char *) (why && why[0] ? why : slc_strerror(rc));
        err.retryable = slc_retryable(rc);
        frame.body_case = SLUICE__FRAME__BODY_ERROR;
        frame.error = &err;
        sld_metrics_error(self->metrics, rc);
    }
    else {
        reply.version = version;
        reply.diff = diff ? diff : "";
        reply.changed = changed;
        frame.body_case = SLUICE__FRAME__BODY_ROUTES_APPLY_REPLY;
        frame.routes_apply_reply = &reply;
    }
    sld_session_queue(self, &self->wreplies, w->id, w->id_len, f->corr, &frame);
    free(diff);
    free(why);
    return 0;
}

/* ---------------------------------------------------------------- trace */

/* Memory of one Trace answer, freed together. */
typedef struct {
    slc_pool_t pool;
    sld_server_t *self;
    sld_txn_t *txn;
    Sluice__RoutesInfo **versions;      /* every version, for "live at" */
    size_t nversions;
    slt_route_table_t *tables[8];       /* versions compiled for their names */
    uint32_t table_version[8];
    size_t ntables;
} s_tr_t;

#define S_TRACE_DEPTH 9         /* a derived chain is at most 8 hops */

/* The name of route IX in table version V, or "#IX" when that version is
 * gone or does not compile any more. */
static char *s_tr_route(s_tr_t *a, uint32_t v, uint32_t ix)
{
    slt_route_table_t *t = NULL;
    for (size_t i = 0; i < a->ntables; i++)
        if (a->table_version[i] == v)
            t = a->tables[i];
    if (!t && a->ntables < sizeof a->tables / sizeof a->tables[0]) {
        Sluice__RoutesInfo *info = NULL;
        if (sld_routes_get(a->self->routes, v, &info) == 0 && info->yaml)
            (void) slt_route_compile(info->yaml, strlen(info->yaml), NULL, NULL, &t, NULL, 0);
        sld_routes_info_free(&info);
        a->table_version[a->ntables] = v;
        a->tables[a->ntables++] = t;
    }
    if (t && ix < slt_route_count(t))
        return slc_pool_strdup(&a->pool, slt_route_name(t, ix));
    char text[24];
    snprintf(text, sizeof text, "#%u", ix);
    return slc_pool_strdup(&a->pool, text);
}

/* The version live when a message was stored at INGEST_US (0: none). A
 * version routes the transactions after the one that applied it. */
static uint32_t s_tr_live_at(const s_tr_t *a, uint64_t ingest_us)
{
    uint32_t v = 0;
    for (size_t i = 0; i < a->nversions; i++)
        if (a->versions[i]->applied_us < ingest_us)
            v = a->versions[i]->version;
    return v;
}

static Sluice__Lineage *s_tr_lineage(s_tr_t *a, const Sluice__Lineage *l)
{
    Sluice__Lineage *c = slc_pool_alloc(&a->pool, sizeof *c);
    char **path = slc_pool_alloc(&a->pool, (l->n_path + 1) * sizeof(char *));
    if (!c || !path)
        return NULL;
    sluice__lineage__init(c);
    c->source_topic = slc_pool_strdup(&a->pool, l->source_topic);
    c->source_offset = l->source_offset;
    c->route = slc_pool_strdup(&a->pool, l->route);
    c->mapping = slc_pool_strdup(&a->pool, l->mapping);
    c->mapping_version = l->mapping_version;
    c->table_version = l->table_version;
    for (size_t i = 0; i < l->n_path; i++)
        if (!(path[i] = slc_pool_strdup(&a->pool, l->path[i])))
            return NULL;
    c->path = path;
    c->n_path = l->n_path;
    return c->source_topic && c->route && c->mapping ? c : NULL;
}

/* The steps of trace record T into R. */
static int s_tr_steps(s_tr_t *a, const sld_trace_t *t, Sluice__TraceReply *r)
{
    r->steps = slc_pool_alloc(&a->pool, (t->nsteps + 1) * sizeof *r->steps);
    if (!r->steps)
        return SL_ENOMEM;
    for (size_t i = 0; i < t->nsteps; i++) {
        const sld_trace_step_t *st = &t->steps[i];
        Sluice__TraceStep *s = slc_pool_alloc(&a->pool, sizeof *s);
        Sluice__TraceLeg **legs = slc_pool_alloc(&a->pool, (st->nlegs + 1) * sizeof *legs);
        if (!s || !legs)
            return SL_ENOMEM;
        sluice__trace_step__init(s);
        s->index = st->route;
        s->route = s_tr_route(a, st->version ? st->version : t->version, st->route);
        s->table_version = st->version;     /* a backfilled step's own version */
        s->outcome = (char *) sld_trace_outcome_name(st->outcome);
        s->action = (char *) sld_trace_action_name(st->outcome);
        s->error = slc_pool_strdup(&a->pool, st->error);
        if (!s->route || !s->error)
            return SL_ENOMEM;
        for (size_t k = 0; k < st->nlegs; k++) {
            const sld_topic_info_t *ti = sld_store_topic_by_id(a->self->store,
                                                               st->legs[k].topic);
            Sluice__TraceLeg *l = slc_pool_alloc(&a->pool, sizeof *l);
            if (!l)
                return SL_ENOMEM;
            sluice__trace_leg__init(l);
            l->topic = slc_pool_strdup(&a->pool, ti ? ti->name : "?");
            l->offset = st->legs[k].offset;
            if (!l->topic)
                return SL_ENOMEM;
            legs[k] = l;
        }
        s->legs = legs;
        s->n_legs = st->nlegs;
        r->steps[i] = s;
    }
    r->n_steps = t->nsteps;
    return 0;
}

/* The trace of TOPIC@OFFSET into a new *OUT; DEPTH counts the sources
 * followed. SL_ENOTFOUND (with WHY) when the message is not stored. */
static int s_tr_one(s_tr_t *a, const char *topic, uint64_t offset, int depth,
                    Sluice__TraceReply **out, char *why, size_t whylen)
{
    Sluice__TraceReply *r = slc_pool_alloc(&a->pool, sizeof *r);
    if (!r)
        return SL_ENOMEM;
    sluice__trace_reply__init(r);
    r->topic = slc_pool_strdup(&a->pool, topic);
    r->offset = offset;
    r->note = "";
    if (!r->topic)
        return SL_ENOMEM;
    *out = r;
    const sld_topic_info_t *ti = sld_store_topic_by_name(a->self->store, topic);
    if (!ti) {
        slc_errf(why, whylen, "no topic %s", topic);
        return SL_ENOTFOUND;
    }
    uint32_t id = ti->id;
    const void *data;
    size_t len;
    uint64_t ingest_us = 0;
    int rc = sld_store_read(a->txn, id, offset, &data, &len, &ingest_us);
    if (rc == SL_ENOTFOUND) {
        if (ti->messages == 0)
            slc_errf(why, whylen, "no message at %s@%" PRIu64 ": the topic holds none (next "
                     "offset %" PRIu64 ")", topic, offset, ti->next_offset);
        else
            slc_errf(why, whylen, "no message at %s@%" PRIu64 ": the topic holds offsets %"
                     PRIu64 "..%" PRIu64 "%s", topic, offset, ti->first_offset,
                     ti->next_offset - 1, offset < ti->first_offset
                     ? " (older ones were removed by retention)" : "");
        return rc;
    }
    if (rc) {
        slc_errf(why, whylen, "%s@%" PRIu64 " does not read: %s", topic, offset,
                 rc == SL_ESTORE ? sld_txn_why(a->txn) : slc_strerror(rc));
        return rc;
    }
    r->ingest_us = ingest_us;
    Sluice__Envelope *env = NULL;
    rc = slc_envelope_decode(data, len, &env);
    if (rc) {
        slc_errf(why, whylen, "%s@%" PRIu64 " does not decode", topic, offset);
        return SL_ESTORE;
    }
    const Sluice__Lineage *l = env->lineage;
    bool derived = l && l->source_topic && *l->source_topic;
    if (derived && !(r->lineage = s_tr_lineage(a, l)))
        rc = SL_ENOMEM;
    slc_envelope_free(&env);
    if (rc)
        return rc;

    sld_trace_t t;
    memset(&t, 0, sizeof t);
    rc = sld_trace_get(a->txn, id, offset, &t);
    if (rc == 0) {
        r->routed = true;
        r->table_version = t.version;
        rc = s_tr_steps(a, &t, r);
    }
    else if (rc == SL_ENOTFOUND) {
        char note[SLC_TOPIC_MAX + 128];
        rc = 0;
        r->table_version = topic[0] == '_' ? 0 : s_tr_live_at(a, ingest_us);
        if (topic[0] == '_')
            snprintf(note, sizeof note, "not routed: messages on the broker's own topics "
                     "(starting with '_') are never routed");
        else if (!r->table_version)
            snprintf(note, sizeof note, "not routed: no routing table was live when it "
                     "was stored");
        else
            snprintf(note, sizeof note, "not routed%s: no route of table version %u "
                     "matches topic %s", derived ? " further" : "", r->table_version, topic);
        if (!(r->note = slc_pool_strdup(&a->pool, note)))
            rc = SL_ENOMEM;
    }
    else if (rc == SL_ESTORE)
        slc_errf(why, whylen, "the trace record of %s@%" PRIu64 " is damaged; `sluiced "
                 "--check` reports the store", topic, offset);
    sld_trace_free(&t);
    if (rc || !derived || depth + 1 >= S_TRACE_DEPTH)
        return rc;
    /* A derived message: its source's own trace, which may be gone. */
    char swhy[512];
    rc = s_tr_one(a, r->lineage->source_topic, r->lineage->source_offset, depth + 1,
                  &r->source, swhy, sizeof swhy);
    if (rc == SL_ENOTFOUND || rc == SL_ESTORE) {
        r->source->note = slc_pool_strdup(&a->pool, swhy);
        rc = r->source->note ? 0 : SL_ENOMEM;
    }
    return rc;
}

int sld_admin_on_trace(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    const char *topic = f->trace->topic ? f->trace->topic : "";
    char why[SLC_TOPIC_MAX + 256] = "";
    if (slc_topic_validate(topic, true) != 0)
        return sld_session_error(self, peer, f->corr, SL_EINVAL,
                                 "invalid topic name: dot-separated words of [A-Za-z0-9_-], "
                                 "at most 255 bytes");
    s_tr_t a;
    memset(&a, 0, sizeof a);
    a.self = self;
    uint32_t live = 0;
    Sluice__TraceReply *reply = NULL;
    int rc = sld_routes_list(self->routes, &a.versions, &a.nversions, &live);
    if (rc == 0)
        rc = sld_store_begin(self->store, false, &a.txn);
    if (rc == 0)
        rc = s_tr_one(&a, topic, f->trace->offset, 0, &reply, why, sizeof why);
    if (rc)
        sld_session_error(self, peer, f->corr, rc, why[0] ? why : NULL);
    else {
        Sluice__Frame frame = SLUICE__FRAME__INIT;
        frame.body_case = SLUICE__FRAME__BODY_TRACE_REPLY;
        frame.trace_reply = reply;
        sld_session_reply(self, peer, f->corr, &frame);
    }
    sld_txn_abort(&a.txn);
    for (size_t i = 0; i < a.ntables; i++)
        slt_route_destroy(&a.tables[i]);
    sld_routes_list_free(&a.versions, a.nversions);
    slc_pool_free(&a.pool);
    return rc;
}
