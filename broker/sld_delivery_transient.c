/*  sld_delivery_transient - fan transient (never stored) messages out to
 *  the matching ephemeral subscriptions at once, within their credit and
 *  the session's byte budget; what does not fit is dropped and counted.
 *  Broker thread only. Owns only the packing scratch buffer; stores
 *  nothing and keeps nothing in flight.  */
#include "sld_delivery_int.h"
#include <string.h>

/* Does SUB's pattern match the topic of MSGS[I]? A batch mostly holds one
 * topic: *LAST (start with NULL) and *HIT carry the previous answer. */
static bool s_transient_match(const sld_delivery_sub_t *sub,
                              Sluice__Envelope *const *msgs, size_t i,
                              const char **last, bool *hit)
{
    const char *topic = msgs[i]->topic;
    if (!*last || strcmp(*last, topic) != 0) {
        *hit = slc_pattern_match(sub->pattern, topic);
        *last = topic;
    }
    return *hit;
}

void sld_delivery_transient(sld_delivery_t *self,
                            Sluice__Envelope *const *msgs, size_t n)
{
    for (size_t s = 0; s < self->subs.n; s++) {
        sld_delivery_sub_t *sub = self->subs.v[s];
        if (!sub->ephemeral || !sub->session)
            continue;
        size_t k = 0, bytes = 0, need = 0;
        const char *last = NULL;
        bool hit = false;
        for (size_t i = 0; i < n; i++)
            if (s_transient_match(sub, msgs, i, &last, &hit))
                need += slc_envelope_size(msgs[i]);
        if (need == 0)
            continue;
        if (slc_grow((void **) &self->scratch, &self->scratch_cap, need, 1) != 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (!s_transient_match(sub, msgs, i, &last, &hit))
                continue;
            size_t len = slc_envelope_size(msgs[i]);
            if (sub->credit == 0 || sld_delivery__no_room(self, sub, len)
                || sld_delivery__eph_sent(sub, len) != 0) {
                sub->dropped++;
                sld_metrics_add(self->metrics, SLD_M_EPHEMERAL_DROPPED, 1);
                continue;
            }
            /* Delivery.topic stays empty: it is the envelope's own (a
             * fifth of each transient delivery's bytes, all encrypted). */
            slc_envelope_pack(msgs[i], self->scratch + bytes);
            sld_delivery__item(self, k++, sub, 0, "", 0, 0, 1, self->scratch + bytes, len);
            bytes += len;
            sub->credit--;
            sub->delivered++;
            if (k == self->opts.deliver_batch) {
                sld_delivery__send_items(self, sub, k);
                k = 0;
                bytes = 0;
            }
        }
        if (k)
            sld_delivery__send_items(self, sub, k);
    }
    sld_metrics_add(self->metrics, SLD_M_TRANSIENT, n);
}
