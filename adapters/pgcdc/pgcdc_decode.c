/*  pgcdc_decode - pgoutput protocol version 1 messages into pgcdc_msg_t
 *  (PostgreSQL docs, "Logical Replication Message Formats"). A cursor over
 *  the caller's buffer; every read is bounds-checked, every string must be
 *  NUL-terminated inside the buffer, and trailing bytes are an error, so
 *  a malformed message is refused rather than half-read. Pure; any thread. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "pgcdc_decode.h"

typedef struct {
    const uint8_t *p, *end;
    char *err;
    size_t errlen;
    int failed;
} s_cur_t;

uint64_t pgcdc_get64(const uint8_t *p)
{
    return ((uint64_t) pgcdc_get32(p) << 32) | pgcdc_get32(p + 4);
}

uint32_t pgcdc_get32(const uint8_t *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

void pgcdc_put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t) (v & 0xff);
}

static void s_fail(s_cur_t *c, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    if (c->err && c->errlen)
        vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
}

static const uint8_t *s_take(s_cur_t *c, size_t n, const char *what)
{
    if (c->failed)
        return NULL;
    if ((size_t) (c->end - c->p) < n) {
        s_fail(c, "truncated pgoutput message: %s needs %zu bytes, %zu left", what, n,
               (size_t) (c->end - c->p));
        return NULL;
    }
    const uint8_t *at = c->p;
    c->p += n;
    return at;
}

static uint8_t s_u8(s_cur_t *c, const char *what)
{
    const uint8_t *p = s_take(c, 1, what);
    return p ? p[0] : 0;
}

static uint16_t s_u16(s_cur_t *c, const char *what)
{
    const uint8_t *p = s_take(c, 2, what);
    return p ? (uint16_t) ((p[0] << 8) | p[1]) : 0;
}

static uint32_t s_u32(s_cur_t *c, const char *what)
{
    const uint8_t *p = s_take(c, 4, what);
    return p ? pgcdc_get32(p) : 0;
}

static uint64_t s_u64(s_cur_t *c, const char *what)
{
    const uint8_t *p = s_take(c, 8, what);
    return p ? pgcdc_get64(p) : 0;
}

static const char *s_str(s_cur_t *c, const char *what)
{
    if (c->failed)
        return "";
    const uint8_t *nul = memchr(c->p, 0, (size_t) (c->end - c->p));
    if (!nul) {
        s_fail(c, "pgoutput %s is not NUL-terminated", what);
        return "";
    }
    const char *s = (const char *) c->p;
    c->p = nul + 1;
    return s;
}

static void s_tuple(s_cur_t *c, pgcdc_tuple_t *t)
{
    t->ncols = s_u16(c, "tuple column count");
    if (t->ncols > PGCDC_MAX_COLS) {
        s_fail(c, "pgoutput tuple has %u columns (at most %d)", t->ncols, PGCDC_MAX_COLS);
        t->ncols = 0;
        return;
    }
    for (uint16_t i = 0; i < t->ncols && !c->failed; i++) {
        pgcdc_value_t *v = &t->cols[i];
        v->kind = (char) s_u8(c, "column kind");
        v->data = NULL;
        v->len = 0;
        if (v->kind == 't') {
            v->len = s_u32(c, "column length");
            const uint8_t *d = s_take(c, v->len, "column value");
            v->data = (const char *) d;
        }
        else if (v->kind != 'n' && v->kind != 'u' && !c->failed)
            s_fail(c, "pgoutput column %u has kind 0x%02x (expected n, u or t; "
                   "binary mode is not used)", i, (unsigned char) v->kind);
    }
}

static void s_relation(s_cur_t *c, pgcdc_msg_t *m)
{
    m->relid = s_u32(c, "relation id");
    m->nspname = s_str(c, "namespace");
    m->relname = s_str(c, "relation name");
    m->replident = (char) s_u8(c, "replica identity");
    m->natts = s_u16(c, "column count");
    if (m->natts > PGCDC_MAX_COLS) {
        s_fail(c, "pgoutput relation has %u columns (at most %d)", m->natts, PGCDC_MAX_COLS);
        m->natts = 0;
    }
    for (uint16_t i = 0; i < m->natts && !c->failed; i++) {
        m->atts[i].flags = s_u8(c, "column flags");
        m->atts[i].name = s_str(c, "column name");
        m->atts[i].type_oid = s_u32(c, "column type");
        m->atts[i].typmod = (int32_t) s_u32(c, "column typmod");
    }
}

static void s_old_new(s_cur_t *c, pgcdc_msg_t *m, bool is_update)
{
    m->relid = s_u32(c, "relation id");
    char k = (char) s_u8(c, "tuple tag");
    if (k == 'K' || k == 'O') {
        m->old_kind = k;
        s_tuple(c, &m->old_tuple);
        if (!is_update)
            return;
        k = (char) s_u8(c, "tuple tag");
    }
    else if (!is_update && !c->failed) {
        s_fail(c, "pgoutput delete has tuple tag 0x%02x (expected K or O)", (unsigned char) k);
        return;
    }
    if (k != 'N' && !c->failed) {
        s_fail(c, "pgoutput update has tuple tag 0x%02x (expected N)", (unsigned char) k);
        return;
    }
    m->has_new = true;
    s_tuple(c, &m->new_tuple);
}

int pgcdc_decode(const uint8_t *buf, size_t len, pgcdc_msg_t *out, char *err, size_t errlen)
{
    s_cur_t c = { buf, buf + len, err, errlen, 0 };
    out->old_kind = 0;
    out->has_new = false;
    out->old_tuple.ncols = out->new_tuple.ncols = 0;
    out->natts = 0;
    out->tag = (char) s_u8(&c, "message type");
    switch (out->tag) {
    case 'B':
        out->final_lsn = s_u64(&c, "begin LSN");
        out->commit_time = (int64_t) s_u64(&c, "commit time");
        out->xid = s_u32(&c, "xid");
        break;
    case 'C':
        (void) s_u8(&c, "commit flags");
        out->final_lsn = s_u64(&c, "commit LSN");
        out->end_lsn = s_u64(&c, "end LSN");
        out->commit_time = (int64_t) s_u64(&c, "commit time");
        break;
    case 'O':
        (void) s_u64(&c, "origin LSN");
        out->prefix = s_str(&c, "origin name");
        break;
    case 'R':
        s_relation(&c, out);
        break;
    case 'Y':
        out->relid = s_u32(&c, "type id");
        out->nspname = s_str(&c, "type namespace");
        out->relname = s_str(&c, "type name");
        break;
    case 'I': {
        out->relid = s_u32(&c, "relation id");
        char k = (char) s_u8(&c, "tuple tag");
        if (k != 'N' && !c.failed)
            s_fail(&c, "pgoutput insert has tuple tag 0x%02x (expected N)", (unsigned char) k);
        out->has_new = true;
        s_tuple(&c, &out->new_tuple);
        break;
    }
    case 'U':
        s_old_new(&c, out, true);
        break;
    case 'D':
        s_old_new(&c, out, false);
        break;
    case 'T':
        out->nrels = s_u32(&c, "relation count");
        (void) s_u8(&c, "truncate options");
        if (out->nrels > (size_t) (c.end - c.p) / 4)
            s_fail(&c, "truncated pgoutput truncate: %u relations", out->nrels);
        out->relids = s_take(&c, (size_t) out->nrels * 4, "relation ids");
        break;
    case 'M':
        out->transactional = s_u8(&c, "message flags") & 1;
        out->msg_lsn = s_u64(&c, "message LSN");
        out->prefix = s_str(&c, "message prefix");
        out->content_len = s_u32(&c, "message length");
        out->content = (const char *) s_take(&c, out->content_len, "message content");
        break;
    default:
        s_fail(&c, "unknown pgoutput message type 0x%02x", (unsigned char) out->tag);
    }
    if (!c.failed && c.p != c.end)
        s_fail(&c, "pgoutput '%c' message has %zu trailing bytes", out->tag,
               (size_t) (c.end - c.p));
    return c.failed ? -1 : 0;
}
