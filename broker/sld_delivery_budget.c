/*  sld_delivery_budget - the bytes a session was sent and has not acked
 *  (max_unacked_bytes), shared by its subscriptions, and what ephemeral
 *  subscriptions owe until credit pays it back. Owns the per-session
 *  records (self->accts). Broker thread, and the helper thread during
 *  sld_delivery_pump_ahead (the broker thread then waits). It decides
 *  nothing about what to send: the pump asks it whether there is room.  */
#include "sld_delivery_int.h"
#include <stdio.h>
#include <stdlib.h>

static void s_acct_key(const sld_session_t *session, char *key, size_t len)
{
    snprintf(key, len, "%p", (const void *) session);
}

/* SUB is now attached to SESSION: share (or create) the session's record.
 * Without memory the subscription simply runs unbudgeted. */
void sld_delivery__acct_attach(sld_delivery_t *self, sld_delivery_sub_t *sub,
                               sld_session_t *session)
{
    char key[32];
    s_acct_key(session, key, sizeof key);
    sld_delivery_acct_t *a = zhashx_lookup(self->accts, key);
    if (!a) {
        a = calloc(1, sizeof(sld_delivery_acct_t));
        if (!a)
            return;
        zhashx_insert(self->accts, key, a);
    }
    a->nsubs++;
    a->bytes += sub->unacked_bytes;
    sub->acct = a;
}

/* Room was freed in A: wake the subscriptions that stopped for it. */
static void s_acct_freed(sld_delivery_t *self, sld_delivery_acct_t *a)
{
    if (!a->stalled)
        return;
    a->stalled = false;
    for (size_t i = 0; i < self->subs.n; i++)
        if (self->subs.v[i]->acct == a)
            sld_delivery__wake(self, self->subs.v[i]);
}

/* SUB leaves its session (detach, removal): its bytes leave the record. */
void sld_delivery__acct_release(sld_delivery_t *self, sld_delivery_sub_t *sub)
{
    sld_delivery_acct_t *a = sub->acct;
    if (!a)
        return;
    sub->acct = NULL;
    a->bytes -= sub->unacked_bytes;
    if (--a->nsubs == 0) {
        char key[32];
        s_acct_key(sub->session, key, sizeof key);
        zhashx_delete(self->accts, key);
        return;
    }
    if (sub->unacked_bytes)
        s_acct_freed(self, a);
}

/* Move F to STATE, counting its bytes while it is SLD_FLIGHT_SENT. */
void sld_delivery__set_state(sld_delivery_t *self, sld_delivery_sub_t *sub,
                             sld_delivery_flight_t *f, uint8_t state)
{
    bool was = f->state == SLD_FLIGHT_SENT, is = state == SLD_FLIGHT_SENT;
    f->state = state;
    if (was == is)
        return;
    if (is) {
        sub->unacked_bytes += f->len;
        if (sub->acct)
            sub->acct->bytes += f->len;
        return;
    }
    sub->unacked_bytes -= f->len;
    if (sub->acct) {
        sub->acct->bytes -= f->len;
        s_acct_freed(self, sub->acct);
    }
}

/* Drop F from SUB's table (acked, dead-lettered, trimmed). */
void sld_delivery__forget(sld_delivery_t *self, sld_delivery_sub_t *sub,
                          sld_delivery_flight_t *f)
{
    sld_delivery__set_state(self, sub, f, SLD_FLIGHT_FREE);
    sld_delivery__flight_del(&sub->flight, f);
}

/* True when sending LEN more bytes would take SUB's session over
 * max_unacked_bytes. An empty budget always takes one message, so a
 * message larger than the limit still flows, one at a time. */
bool sld_delivery__no_room(sld_delivery_t *self, sld_delivery_sub_t *sub, size_t len)
{
    sld_delivery_acct_t *a = sub->acct;
    uint64_t max = self->opts.max_unacked_bytes;
    if (!a || max == 0 || a->bytes == 0 || a->bytes + len <= max)
        return false;
    a->stalled = true;
    return true;
}

/* Ephemeral subscriptions take no acks, so what they were sent is paid
 * back by the credit their consumer grants next (the SDK grants one credit
 * for each message it took in, in steps of a quarter of its credit). Until
 * then its bytes count in the session's max_unacked_bytes like unacked
 * deliveries. A message that does not fit is not sent: a stored one waits
 * in the store, a transient one is dropped for this subscriber and
 * counted. Without this a consumer that granted a huge credit and never
 * read had the broker buffer everything in its socket. (No message count
 * like max_inflight: a transient subscriber keeping up with a fast
 * publisher pays back a quarter of a large credit at a time.) */

/* LEN bytes went to ephemeral SUB. 0 or SL_ENOMEM (nothing counted). */
int sld_delivery__eph_sent(sld_delivery_sub_t *sub, size_t len)
{
    sld_delivery_lens_t *r = &sub->owed;
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 64;
        uint32_t *nv = malloc(ncap * sizeof(uint32_t));
        if (!nv)
            return SL_ENOMEM;
        for (size_t i = 0; i < r->n; i++)
            nv[i] = r->v[(r->head + i) % r->cap];
        free(r->v);
        r->v = nv;
        r->cap = ncap;
        r->head = 0;
    }
    r->v[(r->head + r->n++) % r->cap] = (uint32_t) len;
    sub->unacked_bytes += len;
    if (sub->acct)
        sub->acct->bytes += len;
    return 0;
}

/* FREED bytes of ephemeral SUB are no longer owed. */
void sld_delivery__eph_release(sld_delivery_t *self, sld_delivery_sub_t *sub,
                               uint64_t freed)
{
    sub->unacked_bytes -= freed;
    if (sub->acct && freed) {
        sub->acct->bytes -= freed;
        s_acct_freed(self, sub->acct);
    }
}

/* N credits granted to ephemeral SUB pay back its N oldest messages. */
void sld_delivery__eph_paid(sld_delivery_t *self, sld_delivery_sub_t *sub, uint64_t n)
{
    sld_delivery_lens_t *r = &sub->owed;
    uint64_t freed = 0;
    for (; n > 0 && r->n > 0; n--, r->n--) {
        freed += r->v[r->head];
        r->head = (r->head + 1) % r->cap;
    }
    sld_delivery__eph_release(self, sub, freed);
}
