/*  slt_route_eval - what a compiled table decides for one message: the
 *  routes whose pattern matches its topic (the trie), in file order, each
 *  skipped, fired or failed, until one with continue: false fires or
 *  fails. The payload is parsed once, and only when a route needs it (a
 *  predicate that reads $, or a mapping), unless the caller gives it
 *  parsed; $meta is asked of the caller only when a route reads it or
 *  fails. Any thread, on a shared table; the result belongs to the
 *  caller. It stores and publishes nothing.  */
#include "slt_route_int.h"
#include "slt_doc.h"
#include "slc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ERR_MAX 1024

void slt_route_result_free(slt_route_result_t *res)
{
    if (!res)
        return;
    for (size_t k = 0; k < res->nsteps; k++) {
        cJSON_Delete(res->steps[k].output);
        free(res->steps[k].reason);
    }
    free(res->steps);
    memset(res, 0, sizeof *res);
}

static void s_clear(slt_route_result_t *res)
{
    for (size_t k = 0; k < res->nsteps; k++) {
        cJSON_Delete(res->steps[k].output);
        free(res->steps[k].reason);
    }
    res->nsteps = 0;
    res->decoded = false;
}

typedef struct {
    const slt_route_msg_t *msg;
    const slt_route_given_t *given; /* never NULL */
    slt_route_result_t *res;
    const cJSON *doc;               /* parsed payload, or NULL */
    cJSON *own;                     /* DOC when parsed here (freed at the end) */
    bool tried;                     /* parse attempted */
    char docerr[512];               /* why it did not parse */
    const cJSON *meta;              /* $meta, once asked for (or given) */
    bool meta_tried;
} s_ev_t;

/* $meta: the caller's, built on first use. 0, or SL_ENOMEM. */
static int s_meta(s_ev_t *ev, const cJSON **meta)
{
    if (!ev->meta_tried) {
        ev->meta_tried = true;
        ev->meta = ev->msg->meta ? ev->msg->meta
                 : ev->given->meta_fn ? ev->given->meta_fn(ev->given->meta_arg) : NULL;
        if (!ev->meta && !ev->msg->meta && ev->given->meta_fn)
            return SL_ENOMEM;
    }
    *meta = ev->meta;
    return 0;
}

/* $meta for an expression that reads it when USES, else NULL (a failure
 * then evaluates again with it, for the same error text). */
static int s_meta_if(s_ev_t *ev, bool uses, const cJSON **meta)
{
    *meta = NULL;
    if (ev->msg->meta || uses)
        return s_meta(ev, meta);
    return 0;
}

/* The payload as one JSON document: 0 with ev->doc, or SL_EINVAL with the
 * reason in ev->docerr, or SL_ENOMEM. */
static int s_doc(s_ev_t *ev)
{
    if (ev->tried)
        return ev->doc ? 0 : SL_EINVAL;
    ev->tried = true;
    ev->res->decoded = true;
    if (ev->given->doc) {
        ev->doc = ev->given->doc;
        return 0;
    }
    cJSON *docs[1] = { NULL };
    size_t n = 0;
    char err[400] = "";
    const char *ct = ev->msg->content_type && ev->msg->content_type[0]
                     ? ev->msg->content_type : "application/json";
    int rc = slt_doc_decode(ev->msg->content_type, ev->msg->payload ? ev->msg->payload : "",
                            ev->msg->len, docs, 1, &n, err, sizeof err);
    if (rc == SL_ENOMEM)
        return rc;
    if (rc == SL_ETOOBIG)
        snprintf(ev->docerr, sizeof ev->docerr, "the payload (%.64s) holds more than one "
                 "document", ct);
    else if (rc != 0)
        snprintf(ev->docerr, sizeof ev->docerr, "the payload is not valid %.64s: %s", ct, err);
    else if (n != 1)
        snprintf(ev->docerr, sizeof ev->docerr, "the payload (%.64s) holds no document", ct);
    else
        ev->doc = ev->own = docs[0];
    return ev->doc ? 0 : SL_EINVAL;
}

/* Decide route R (index IDX) into step ST. */
static int s_route(s_ev_t *ev, const slt_route_def_t *r, slt_route_step_t *st)
{
    char err[S_ERR_MAX];
    const cJSON *meta;
    int rc;
    if (r->pred) {
        bool yes = false;
        if (r->pred_doc && (rc = s_doc(ev)) != 0) {
            if (rc == SL_ENOMEM)
                return rc;
            snprintf(err, sizeof err, "route '%s': where: %s", r->name, ev->docerr);
            goto failed;
        }
        if ((rc = s_meta_if(ev, slt_map_expr_uses_meta(r->pred), &meta)) != 0)
            return rc;
        rc = slt_map_expr_eval_bool(r->pred, ev->doc, meta, &yes, err, sizeof err);
        if (rc == SL_EINVAL && !meta && ev->given->meta_fn) {
            /* The same failure, with the topic and offset $meta gives. */
            if ((rc = s_meta(ev, &meta)) != 0)
                return rc;
            rc = slt_map_expr_eval_bool(r->pred, ev->doc, meta, &yes, err, sizeof err);
        }
        if (rc == SL_ENOMEM)
            return rc;
        if (rc != 0)
            goto failed;
        if (!yes) {
            st->outcome = SLT_ROUTE_SKIPPED;
            return 0;
        }
    }
    st->outcome = SLT_ROUTE_FIRED;
    st->action = r->action;
    if (r->action == SLT_ROUTE_DLQ) {
        st->reason = strdup(r->reason ? r->reason : "");
        return st->reason ? 0 : SL_ENOMEM;
    }
    if (r->action != SLT_ROUTE_DELIVER)
        return 0;
    st->targets = (const char *const *) r->targets;
    st->ntargets = r->ntargets;
    st->mapping = r->mapping;
    st->map = r->map;
    if (!r->mapping)
        return 0;
    if (!r->map) {
        snprintf(err, sizeof err, "route '%s': map: mapping '%.256s' is not available",
                 r->name, r->mapping);
        goto failed;
    }
    if ((rc = s_doc(ev)) != 0) {
        if (rc == SL_ENOMEM)
            return rc;
        snprintf(err, sizeof err, "route '%s': map: %s", r->name, ev->docerr);
        goto failed;
    }
    bool dropped = false;
    char merr[S_ERR_MAX - 160];
    if ((rc = s_meta_if(ev, slt_map_uses_meta(r->map), &meta)) != 0)
        return rc;
    rc = slt_map_eval(r->map, ev->doc, meta, &st->output, &dropped, merr, sizeof merr);
    if (rc == SL_EINVAL && !meta && ev->given->meta_fn) {
        if ((rc = s_meta(ev, &meta)) != 0)
            return rc;
        rc = slt_map_eval(r->map, ev->doc, meta, &st->output, &dropped, merr, sizeof merr);
    }
    if (rc == SL_ENOMEM)
        return rc;
    if (rc != 0) {
        snprintf(err, sizeof err, "route '%.128s': map: %s", r->name, merr);
        goto failed;
    }
    if (dropped) {
        st->action = SLT_ROUTE_DROP;    /* the mapping's drop_if: the route drops */
        st->targets = NULL;
        st->ntargets = 0;
    }
    return 0;
failed:
    st->outcome = SLT_ROUTE_FAILED;
    st->action = r->action;
    st->targets = NULL;
    st->ntargets = 0;
    cJSON_Delete(st->output);
    st->output = NULL;
    st->reason = strdup(err);
    return st->reason ? 0 : SL_ENOMEM;
}

int slt_route_eval(const slt_route_table_t *self, const slt_route_msg_t *msg,
                   slt_route_result_t *res)
{
    return slt_route_eval_given(self, msg, NULL, res);
}

int slt_route_eval_given(const slt_route_table_t *self, const slt_route_msg_t *msg,
                         const slt_route_given_t *given, slt_route_result_t *res)
{
    static const slt_route_given_t none = { NULL, NULL, NULL };
    size_t *idx = NULL, cap = 0, n = 0;
    s_ev_t ev = { .msg = msg, .given = given ? given : &none, .res = res };
    s_clear(res);
    int rc = slt_route__lookup(self, msg->topic, &idx, &cap, &n);
    for (size_t k = 0; rc == 0 && k < n; k++) {
        const slt_route_def_t *r = &self->routes[idx[k]];
        if (slc_grow((void **) &res->steps, &res->capsteps, res->nsteps + 1,
                     sizeof *res->steps) != 0) {
            rc = SL_ENOMEM;
            break;
        }
        slt_route_step_t *st = &res->steps[res->nsteps++];
        memset(st, 0, sizeof *st);
        st->route = idx[k];
        rc = s_route(&ev, r, st);
        if (rc == 0 && st->outcome != SLT_ROUTE_SKIPPED && !r->cont)
            break;
    }
    free(idx);
    cJSON_Delete(ev.own);
    return rc;
}
