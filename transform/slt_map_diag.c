/*  slt_map_diag - where a mapping's compile errors point and how they
 *  read: line and column of a byte of the file or of an expression, the
 *  list of recorded errors (slt_map__error for the expression stages,
 *  slt_map__diag_add for the YAML reader) and their rendering, sorted, as
 *  blocks with the source line and a caret. Called by the thread compiling
 *  one mapping; the list belongs to that compile. It does not decide what
 *  is an error, and runtime errors (slt_map_eval) are not rendered here.  */
#include "slt_map_int.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LINE_SHOW 160             /* characters of a source line shown */

/* ---- positions */

/* Characters (UTF-8 lead bytes) in S[0..N). */
static unsigned s_chars(const char *s, size_t n)
{
    unsigned c = 0;
    for (size_t k = 0; k < n; k++)
        if (((unsigned char) s[k] & 0xC0) != 0x80)
            c++;
    return c;
}

void slt_map__position(const slt_map_field_t *f, uint32_t pos,
                       unsigned *line, unsigned *col)
{
    *line = f->loc.line;
    *col = f->loc.col;
    if (!f->loc.exact || !f->text)
        return;
    size_t start = 0;
    if (pos > f->textlen)
        pos = (uint32_t) f->textlen;
    for (size_t k = 0; k < pos; k++)
        if (f->text[k] == '\n') {
            (*line)++;
            start = k + 1;
        }
    *col = (start ? f->loc.col_next : f->loc.col) + s_chars(f->text + start, pos - start);
}

/* 1-based line and column of byte POS of the YAML text. */
void slt_map__text_pos(const char *yaml, size_t len, size_t pos, unsigned *line, unsigned *col)
{
    size_t ls = 0;
    unsigned l = 1;
    if (pos > len)
        pos = len;
    for (size_t k = 0; k < pos; k++)
        if (yaml[k] == '\n') {
            l++;
            ls = k + 1;
        }
    *line = l;
    *col = 1 + s_chars(yaml + ls, pos - ls);
}

/* ---- diagnostics */

/* How diagnostics name field F (NULL: none) into BUF. */
const char *slt_map__label(const slt_map_t *m, const slt_map_field_t *f, char *buf, size_t len)
{
    if (!f || !f->target)
        return NULL;
    if (f == &m->drop)
        return "drop_if";
    snprintf(buf, len, "field '%s'", f->target);
    return buf;
}

void slt_map__diag_vadd(slt_map_diag_t *d, unsigned line, unsigned col, const char *field,
                        const char *hint, const char *fmt, va_list ap)
{
    char msg[1024];
    if (d->n == SLT_MAP_ERRORS_MAX) {
        d->more++;
        return;
    }
    vsnprintf(msg, sizeof msg, fmt, ap);
    slt_map_diag_item_t *it = &d->items[d->n];
    it->line = line;
    it->col = col;
    it->msg = strdup(msg);
    it->hint = hint ? strdup(hint) : NULL;
    it->field = field ? strdup(field) : NULL;
    if (!it->msg || (hint && !it->hint) || (field && !it->field)) {
        free(it->msg);
        free(it->hint);
        free(it->field);
        d->oom = true;
        return;
    }
    d->n++;
}

void slt_map__diag_add(slt_map_diag_t *d, unsigned line, unsigned col, const char *field,
                       const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    slt_map__diag_vadd(d, line, col, field, hint, fmt, ap);
    va_end(ap);
}

int slt_map__error(slt_map_cc_t *cc, uint32_t pos, const char *hint, const char *fmt, ...)
{
    unsigned line, col;
    char label[SLT_MAP_NAME_MAX * SLT_MAP_TARGET_DEPTH + 32];
    va_list ap;
    slt_map__position(cc->field, pos, &line, &col);
    va_start(ap, fmt);
    slt_map__diag_vadd(cc->diag, line, col,
                       slt_map__label(cc->m, cc->field, label, sizeof label), hint, fmt, ap);
    va_end(ap);
    cc->errors++;
    return SL_EINVAL;
}

void slt_map__diag_free(slt_map_diag_t *d)
{
    for (size_t k = 0; k < d->n; k++) {
        free(d->items[k].msg);
        free(d->items[k].hint);
        free(d->items[k].field);
    }
    d->n = 0;
}

/* snprintf that appends to ERR and never overflows it. */
typedef struct {
    char *b;
    size_t cap, len;
} s_out_t;

static void s_outf(s_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_outf(s_out_t *o, const char *fmt, ...)
{
    va_list ap;
    if (!o->b || o->len + 1 >= o->cap)
        return;
    va_start(ap, fmt);
    int w = vsnprintf(o->b + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (w > 0)
        o->len = (size_t) w >= o->cap - o->len ? o->cap - 1 : o->len + (size_t) w;
}

/* Line LINE of the YAML with a caret under column COL. Long lines show a
 * window around the column; control characters show as '?'. */
static void s_show_line(s_out_t *o, const char *yaml, size_t len, unsigned line, unsigned col)
{
    size_t ls = 0, k = 0;
    unsigned l = 1;
    while (l < line && k < len) {
        if (yaml[k++] == '\n') {
            l++;
            ls = k;
        }
    }
    if (l != line)
        return;
    size_t le = ls;
    while (le < len && yaml[le] != '\n' && yaml[le] != '\r')
        le++;
    unsigned total = s_chars(yaml + ls, le - ls), first = 1;
    if (total > S_LINE_SHOW && col > S_LINE_SHOW / 2)
        first = col - S_LINE_SHOW / 2;
    char num[16];
    int w = snprintf(num, sizeof num, "%4u", line);
    char text[S_LINE_SHOW * 4 + 8], caret[S_LINE_SHOW + 8];
    size_t tn = 0, cn = 0;
    unsigned c = 0;
    if (first > 1) {
        memcpy(text, "...", 3);
        memcpy(caret, "   ", 3);
        tn = cn = 3;
    }
    for (size_t b = ls; b < le; b++) {
        unsigned char ch = (unsigned char) yaml[b];
        if ((ch & 0xC0) != 0x80)
            c++;
        if (c < first)
            continue;
        if (c >= first + S_LINE_SHOW) {
            memcpy(text + tn, "...", 3);
            tn += 3;
            break;
        }
        text[tn++] = ch < 0x20 && ch != '\t' ? '?' : ch == 0x7F ? '?' : (char) ch;
        if ((ch & 0xC0) != 0x80 && c < col)
            caret[cn++] = ch == '\t' ? '\t' : ' ';
    }
    text[tn] = '\0';
    caret[cn] = '\0';
    s_outf(o, "%s | %s\n%*s | %s^\n", num, text, w, "", caret);
}

/* Every recorded error, in file order, into ERR. */
void slt_map__render(slt_map_diag_t *d, const slt_map_t *m, const char *yaml, size_t len,
                     char *err, size_t errlen)
{
    s_out_t o = { .b = err, .cap = errlen };
    /* Insertion sort keeps errors at one place in the order found. */
    for (size_t k = 1; k < d->n; k++) {
        slt_map_diag_item_t it = d->items[k];
        size_t j = k;
        while (j > 0 && (d->items[j - 1].line > it.line
                         || (d->items[j - 1].line == it.line && d->items[j - 1].col > it.col))) {
            d->items[j] = d->items[j - 1];
            j--;
        }
        d->items[j] = it;
    }
    for (size_t k = 0; k < d->n; k++) {
        const slt_map_diag_item_t *it = &d->items[k];
        if (it->line == 0) {        /* about the whole file */
            s_outf(&o, "%s: error: %s\n", m->origin, it->msg);
            if (it->hint)
                s_outf(&o, "  hint: %s\n", it->hint);
            continue;
        }
        s_outf(&o, "%s:%u:%u: error: %s\n", m->origin, it->line, it->col, it->msg);
        if (m->name[0] && it->field)
            s_outf(&o, "  in mapping '%s', %s\n", m->name, it->field);
        else if (m->name[0])
            s_outf(&o, "  in mapping '%s'\n", m->name);
        else if (it->field)
            s_outf(&o, "  in %s\n", it->field);
        s_show_line(&o, yaml, len, it->line, it->col);
        if (it->hint)
            s_outf(&o, "  hint: %s\n", it->hint);
    }
    if (d->more)
        s_outf(&o, "%s: %zu more error%s not shown\n", m->origin, d->more, d->more == 1 ? "" : "s");
    if (d->oom)
        s_outf(&o, "%s: out of memory while reporting errors\n", m->origin);
    if (o.b && o.len > 0 && o.b[o.len - 1] == '\n')
        o.b[--o.len] = '\0';
}
