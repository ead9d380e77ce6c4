/*  sld_trace - the routing trace index's record (see sld_trace.h).
 *
 *  Key: topic id u32 BE + offset u64 BE (the message's own key, so
 *  retention deletes both at once). Value, varints (protobuf base-128):
 *    format (1 byte, 1), table version, number of steps, then per step:
 *    route index, outcome (1 byte, sld_trace_outcome_t), for FAILED the
 *    error's length and bytes, number of legs, then per leg topic id and
 *    offset. Format 2 (a record a backfill added to): an outcome byte
 *    with bit 0x80 is followed by the varint table version its step's
 *    route index belongs to.
 *  A typical record (one route, one target) is under 10 bytes.  */
#include "sld_trace.h"
#include <stdlib.h>
#include <string.h>
#include "slc.h"
#include "slc_codec.h"

#define S_FORMAT 1
#define S_FORMAT_BACKFILLED 2

void sld_trace_reset(sld_trace_t *t, uint32_t version)
{
    for (size_t i = 0; i < t->nsteps; i++)
        t->steps[i].nlegs = 0;
    t->nsteps = 0;
    t->version = version;
}

void sld_trace_free(sld_trace_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->capsteps; i++)
        free(t->steps[i].legs);
    free(t->steps);
    free(t->buf);
    memset(t, 0, sizeof *t);
}

/* ERROR shortened to fit OUT (SLD_TRACE_ERROR_MAX bytes), never inside a
 * UTF-8 sequence. */
static void s_error(char out[SLD_TRACE_ERROR_MAX + 1], const char *error, size_t len)
{
    if (len > SLD_TRACE_ERROR_MAX) {
        len = SLD_TRACE_ERROR_MAX;
        while (len > 0 && ((unsigned char) error[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(out, error, len);
    out[len] = 0;
}

int sld_trace_step(sld_trace_t *t, uint32_t route, sld_trace_outcome_t outcome,
                   const char *error)
{
    if (t->nsteps == t->capsteps) {
        /* From 4, not slc_grow's 8: a step holds its error text, and 8 of
         * them (2 KiB) were a large allocation for every message routed. */
        size_t old = t->capsteps, cap = old ? 2 * old : 4;
        sld_trace_step_t *v = realloc(t->steps, cap * sizeof *v);
        if (!v)
            return SL_ENOMEM;
        t->steps = v;
        t->capsteps = cap;
        memset(t->steps + old, 0, (t->capsteps - old) * sizeof *t->steps);
    }
    sld_trace_step_t *s = &t->steps[t->nsteps++];
    s->route = route;
    s->version = 0;
    s->outcome = outcome;
    s->nlegs = 0;
    s->error[0] = 0;
    if (outcome == SLD_TRACE_FAILED && error)
        s_error(s->error, error, strlen(error));
    return 0;
}

void sld_trace_backfilled(sld_trace_t *t, uint32_t version)
{
    if (t->nsteps)
        t->steps[t->nsteps - 1].version = version;
}

void sld_trace_fail(sld_trace_t *t, const char *error)
{
    if (!t->nsteps)
        return;
    sld_trace_step_t *s = &t->steps[t->nsteps - 1];
    s->outcome = SLD_TRACE_FAILED;
    s_error(s->error, error ? error : "", error ? strlen(error) : 0);
}

int sld_trace_leg(sld_trace_t *t, uint32_t topic, uint64_t offset)
{
    if (!t->nsteps)
        return 0;
    sld_trace_step_t *s = &t->steps[t->nsteps - 1];
    if (slc_grow((void **) &s->legs, &s->caplegs, s->nlegs + 1, sizeof *s->legs) != 0)
        return SL_ENOMEM;
    s->legs[s->nlegs].topic = topic;
    s->legs[s->nlegs].offset = offset;
    s->nlegs++;
    return 0;
}

int sld_trace_put(sld_txn_t *txn, uint32_t topic, uint64_t offset, sld_trace_t *t)
{
    size_t max = 1 + 10 + 10;
    for (size_t i = 0; i < t->nsteps; i++)      /* route, outcome, version, legs */
        max += 10 + 1 + 10 + 10 + t->steps[i].nlegs * 20
             + (t->steps[i].outcome == SLD_TRACE_FAILED ? 10 + strlen(t->steps[i].error) : 0);
    if (slc_grow((void **) &t->buf, &t->capbuf, max, 1) != 0)
        return SL_ENOMEM;
    uint8_t *p = t->buf;
    bool backfilled = false;
    for (size_t i = 0; i < t->nsteps; i++)
        backfilled |= t->steps[i].version != 0;
    *p++ = backfilled ? S_FORMAT_BACKFILLED : S_FORMAT;
    p = slc_varint_put(p, t->version);
    p = slc_varint_put(p, t->nsteps);
    for (size_t i = 0; i < t->nsteps; i++) {
        const sld_trace_step_t *s = &t->steps[i];
        p = slc_varint_put(p, s->route);
        *p++ = (uint8_t) (s->outcome | (s->version ? 0x80 : 0));
        if (s->version)
            p = slc_varint_put(p, s->version);
        if (s->outcome == SLD_TRACE_FAILED) {
            size_t n = strlen(s->error);
            p = slc_varint_put(p, n);
            memcpy(p, s->error, n);
            p += n;
        }
        p = slc_varint_put(p, s->nlegs);
        for (size_t k = 0; k < s->nlegs; k++) {
            p = slc_varint_put(p, s->legs[k].topic);
            p = slc_varint_put(p, s->legs[k].offset);
        }
    }
    uint8_t key[12];
    slc_put_be32(key, topic);
    slc_put_be64(key + 4, offset);
    return sld_table_put(txn, SLD_TABLE_TRACE, key, sizeof key, t->buf, (size_t) (p - t->buf));
}

/* ------------------------------------------------------------- reading */

typedef struct {
    const uint8_t *p, *end;
    bool bad;
} s_rd_t;

static uint64_t s_varint(s_rd_t *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            break;
        uint8_t b = *r->p++;
        v |= (uint64_t) (b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

int sld_trace_get(sld_txn_t *txn, uint32_t topic, uint64_t offset, sld_trace_t *t)
{
    uint8_t key[12];
    const void *val;
    size_t vlen;
    slc_put_be32(key, topic);
    slc_put_be64(key + 4, offset);
    sld_trace_reset(t, 0);
    int rc = sld_table_get(txn, SLD_TABLE_TRACE, key, sizeof key, &val, &vlen);
    if (rc)
        return rc;
    s_rd_t r = { val, (const uint8_t *) val + vlen, false };
    uint8_t format = vlen ? *r.p++ : 0;
    if (format != S_FORMAT && format != S_FORMAT_BACKFILLED)
        return SL_ESTORE;
    t->version = (uint32_t) s_varint(&r);
    uint64_t nsteps = s_varint(&r);
    for (uint64_t i = 0; i < nsteps && !r.bad; i++) {
        uint32_t route = (uint32_t) s_varint(&r);
        if (r.p >= r.end) {
            r.bad = true;
            break;
        }
        uint8_t outcome = *r.p++;
        uint32_t version = 0;
        if ((outcome & 0x80) && format == S_FORMAT_BACKFILLED) {
            outcome &= 0x7f;
            version = (uint32_t) s_varint(&r);
        }
        if (outcome < SLD_TRACE_DELIVER || outcome > SLD_TRACE_FAILED) {
            r.bad = true;
            break;
        }
        if (sld_trace_step(t, route, (sld_trace_outcome_t) outcome, NULL) != 0)
            return SL_ENOMEM;
        t->steps[t->nsteps - 1].version = version;
        if (outcome == SLD_TRACE_FAILED) {
            uint64_t n = s_varint(&r);
            if (r.bad || n > (uint64_t) (r.end - r.p) || n > SLD_TRACE_ERROR_MAX) {
                r.bad = true;
                break;
            }
            memcpy(t->steps[t->nsteps - 1].error, r.p, (size_t) n);
            t->steps[t->nsteps - 1].error[n] = 0;
            r.p += n;
        }
        uint64_t nlegs = s_varint(&r);
        if (nlegs > (uint64_t) (r.end - r.p)) {
            r.bad = true;
            break;
        }
        for (uint64_t k = 0; k < nlegs && !r.bad; k++) {
            uint32_t id = (uint32_t) s_varint(&r);
            uint64_t off = s_varint(&r);
            if (!r.bad && sld_trace_leg(t, id, off) != 0)
                return SL_ENOMEM;
        }
    }
    return r.bad || r.p != r.end ? SL_ESTORE : 0;
}

const char *sld_trace_outcome_name(sld_trace_outcome_t outcome)
{
    return outcome == SLD_TRACE_SKIPPED ? "skipped"
         : outcome == SLD_TRACE_FAILED ? "failed" : "fired";
}

const char *sld_trace_action_name(sld_trace_outcome_t outcome)
{
    switch (outcome) {
    case SLD_TRACE_DELIVER: return "deliver";
    case SLD_TRACE_DROP: return "drop";
    case SLD_TRACE_DLQ: return "dlq";
    default: return "";
    }
}
