/*  sld_admin_routes - the routing table commands (docs/routing.md):
 *  RoutesApply and RoutesRollback applied in the turn's write transaction
 *  and audited with the identity, the versions and the diff; RoutesGet and
 *  RoutesList answered at once to any session. Broker thread only.
 *  Permissions are checked before (sld_commands); the versions and the
 *  live table are sld_routes'.  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sld_commands.h"
#include "sld_server_int.h"
#include "sld_session.h"

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
