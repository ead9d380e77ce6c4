/*  sld_consume - the subscription commands a consumer sends: Subscribe
 *  (with the claim of a durable name stored without owner), Credit, Ack
 *  and Nack, Unsubscribe, SubRemove; answered at once, their state written
 *  by delivery at the next commit. Broker thread only. Permissions are
 *  checked before (sld_commands); what a subscription does is
 *  sld_delivery's.  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sld_server_int.h"
#include "sld_session.h"

int sld_consume_on_subscribe(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    Sluice__SubscribeOk ok = SLUICE__SUBSCRIBE_OK__INIT;
    char why[160] = "";
    const sld_ident_t *id = peer->session->ident;
    /* Plain-text clients are all one identity: what they create has no
     * owner, so a store moved to CurveZMQ later is claimed like one made
     * before owners were kept (docs/security.md). */
    bool plain = sld_auth_plaintext(self->auth) != NULL;
    sld_sub_ref_t ref;
    bool claim = !plain && !f->subscribe->ephemeral && f->subscribe->name
        && sld_delivery_lookup(self->delivery, NULL, 0, f->subscribe->name, &ref) == 0
        && !ref.owner[0] && !sld_ident_may_use_sub(id, ref.name, ref.pattern, ref.owner);
    int rc = sld_delivery_subscribe(self->delivery, peer->session, f->subscribe,
                                    plain ? NULL : sld_ident_name(id), &ok, why,
                                    sizeof why);
    if (rc) {
        return sld_session_error(self, peer, f->corr, rc, why[0] ? why : NULL);
    }
    /* A subscription without owner is its first subscriber's when that
     * one attached by its subscribe grant alone (sld_commands: SUBSCRIBE). */
    if (claim && sld_delivery_claim(self->delivery, ok.name, sld_ident_name(id)) == 0) {
        char detail[SLC_TOPIC_MAX + 160];
        snprintf(detail, sizeof detail, "pattern %s; it had no owner (stored before owners "
                 "were kept, or made in plain text): its first subscriber owns it",
                 f->subscribe->pattern);
        sld_audit_add(self->audit, false, sld_ident_name(id), "sub.claim", ok.name, "ok",
                      detail);
        sld_server_log(self, 2, "subscription %s had no owner: %s claimed it", ok.name,
                       sld_ident_name(id));
    }
    sld_server_log(self, 2, "session %s subscribed %s to %s", peer->session->key, ok.name,
                   f->subscribe->pattern);
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    frame.body_case = SLUICE__FRAME__BODY_SUBSCRIBE_OK;
    frame.subscribe_ok = &ok;
    sld_session_reply(self, peer, f->corr, &frame);
    return 0;
}

int sld_consume_on_credit(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    if (sld_delivery_credit(self->delivery, peer->session, f->credit->sub_id,
                            f->credit->credit) != 0)
        return sld_session_error(self, peer, f->corr, SL_ENOTFOUND,
                                 "unknown subscription id in credit");
    return 0;
}

int sld_consume_on_ack(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    bool nack = f->body_case == SLUICE__FRAME__BODY_NACK;
    uint32_t sub_id = nack ? f->nack->sub_id : f->ack->sub_id;
    size_t n = nack ? f->nack->n_items : f->ack->n_items;
    Sluice__AckItem **items = nack ? f->nack->items : f->ack->items;
    uint32_t credit = nack ? f->nack->credit : f->ack->credit;
    if (slc_grow((void **) &self->refusals, &self->caprefusals, n + 1, sizeof(sld_refusal_t))) {
        return sld_session_error(self, peer, f->corr, SL_ENOMEM, NULL);
    }
    size_t nrefused = 0;
    int rc = sld_delivery_ack(self->delivery, peer->session, sub_id, items, n, nack,
                              nack ? f->nack->delay_ms : 0,
                              nack ? f->nack->reason : NULL, credit,
                              self->refusals, &nrefused);
    if (rc) {
        return sld_session_error(self, peer, f->corr, rc,
                                 "unknown subscription id: subscribe again");
    }
    if (nrefused == 0 && f->corr == 0)
        return 0;
    Sluice__AckReply reply = SLUICE__ACK_REPLY__INIT;
    Sluice__AckRefused *refused = calloc(nrefused + 1, sizeof(Sluice__AckRefused));
    Sluice__AckRefused **ptrs = calloc(nrefused + 1, sizeof(Sluice__AckRefused *));
    if (!refused || !ptrs) {
        free(refused);
        free(ptrs);
        return sld_session_error(self, peer, f->corr, SL_ENOMEM, NULL);
    }
    for (size_t i = 0; i < nrefused; i++) {
        sluice__ack_refused__init(&refused[i]);
        refused[i].topic_id = self->refusals[i].topic_id;
        refused[i].offset = self->refusals[i].offset;
        refused[i].token = self->refusals[i].token;
        refused[i].code = -self->refusals[i].code;
        refused[i].text = self->refusals[i].code == SL_ESTALE
            ? "stale token: this delivery attempt was superseded by a redelivery"
            : "offset was never delivered to this subscription";
        ptrs[i] = &refused[i];
    }
    reply.sub_id = sub_id;
    reply.n_refused = nrefused;
    reply.refused = ptrs;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    frame.body_case = SLUICE__FRAME__BODY_ACK_REPLY;
    frame.ack_reply = &reply;
    sld_session_reply(self, peer, f->corr, &frame);
    free(refused);
    free(ptrs);
    return 0;
}

/* The audit detail of a removal of REF by COMMAND into OUT. */
static void s_removal_detail(const sld_sub_ref_t *ref, const char *command, char *out,
                             size_t len)
{
    snprintf(out, len, "by %s; pattern %s, owner %s%s%s", command, ref->pattern,
             ref->owner[0] ? "\"" : "", ref->owner[0] ? ref->owner : "(none)",
             ref->owner[0] ? "\"" : "");
}

int sld_consume_on_unsubscribe(sld_server_t *self, const sld_peer_t *peer,
                               Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    sld_sub_ref_t ref;
    char name[SLC_TOPIC_MAX + 1] = "", detail[2 * SLC_TOPIC_MAX + 128] = "";
    bool removal = f->unsubscribe->remove
        && sld_delivery_lookup(self->delivery, peer->session, f->unsubscribe->sub_id, NULL,
                               &ref) == 0
        && !ref.ephemeral;
    if (removal) {
        /* REF dies with the subscription: keep what the record needs. */
        char command[64];
        snprintf(command, sizeof command, "Unsubscribe{remove} of subscription id %u",
                 f->unsubscribe->sub_id);
        snprintf(name, sizeof name, "%s", ref.name);
        s_removal_detail(&ref, command, detail, sizeof detail);
    }
    int rc = sld_delivery_unsubscribe(self->delivery, peer->session,
                                      f->unsubscribe->sub_id, f->unsubscribe->remove);
    if (rc)
        return sld_session_error(self, peer, f->corr, rc, "unknown subscription id");
    if (removal) {
        sld_audit_add(self->audit, false, sld_ident_name(peer->session->ident), "sub.remove",
                      name, "ok", detail);
        sld_server_log(self, 2, "subscription %s removed", name);
    }
    sld_session_ok(self, peer, f->corr);
    return 0;
}

int sld_consume_on_sub_remove(sld_server_t *self, const sld_peer_t *peer,
                              Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    const char *name = f->sub_remove->name ? f->sub_remove->name : "";
    sld_sub_ref_t ref;
    char detail[2 * SLC_TOPIC_MAX + 128] = "by SubRemove; no durable subscription by that name";
    if (sld_delivery_lookup(self->delivery, NULL, 0, name, &ref) == 0)
        s_removal_detail(&ref, "SubRemove", detail, sizeof detail);
    int rc = sld_delivery_remove(self->delivery, name);
    sld_audit_add(self->audit, false, sld_ident_name(peer->session->ident), "sub.remove", name,
                  rc ? "failed" : "ok", detail);
    if (rc)
        return sld_session_error(self, peer, f->corr, rc,
                                 "no durable subscription by that name");
    sld_server_log(self, 2, "subscription %s removed", name);
    sld_session_ok(self, peer, f->corr);
    return 0;
}
