/*  file_csv - the RFC 4180 reader. One pass over the borrowed input; each
 *  record's fields are unescaped into one growing buffer (every field
 *  NUL-terminated) so a caller gets C strings without a copy of its own.
 *  Lenient where RFC 4180 is silent or where real exports differ: a quote
 *  inside an unquoted field is kept as text, a lone CR is text, LF alone
 *  ends a line as CRLF does, records may have different field counts (the
 *  caller decides). Strict where guessing would change data: text after a
 *  closing quote and a quote never closed are errors.  */
#include "file_csv.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct file_csv {
    const char *data;           /* borrowed input */
    size_t len, pos;
    uint64_t line;              /* 1-based line at pos */
    char sep;
    char *buf;                  /* unescaped fields, NUL after each */
    size_t blen, bcap;
    file_csv_field_t *fields;
    size_t *offs;               /* each field's start in buf */
    size_t nfields, fcap;
};

file_csv_t *file_csv_new(const char *data, size_t len, char sep)
{
    file_csv_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->data = data;
    self->len = len;
    self->line = 1;
    self->sep = sep;
    return self;
}

void file_csv_destroy(file_csv_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    file_csv_t *self = *self_p;
    free(self->buf);
    free(self->fields);
    free(self->offs);
    free(self);
    *self_p = NULL;
}

static int s_put(file_csv_t *self, const char *p, size_t n)
{
    if (self->blen + n + 1 > self->bcap) {
        size_t cap = self->bcap ? self->bcap : 256;
        while (cap < self->blen + n + 1)
            cap *= 2;
        char *b = realloc(self->buf, cap);
        if (!b)
            return -1;
        self->buf = b;
        self->bcap = cap;
    }
    memcpy(self->buf + self->blen, p, n);
    self->blen += n;
    return 0;
}

/* Open a new field in buf. */
static int s_field_open(file_csv_t *self)
{
    if (self->nfields == self->fcap) {
        size_t cap = self->fcap ? self->fcap * 2 : 16;
        size_t *o = realloc(self->offs, cap * sizeof *o);
        if (!o)
            return -1;
        self->offs = o;
        file_csv_field_t *f = realloc(self->fields, cap * sizeof *f);
        if (!f)
            return -1;
        self->fields = f;
        self->fcap = cap;
    }
    self->offs[self->nfields] = self->blen;
    self->fields[self->nfields].quoted = 0;
    self->nfields++;
    return 0;
}

static int s_field_close(file_csv_t *self)
{
    return s_put(self, "", 1);
}

/* Skip to just past the next LF (error recovery). */
static void s_skip_line(file_csv_t *self)
{
    const char *nl = memchr(self->data + self->pos, '\n', self->len - self->pos);
    self->pos = nl ? (size_t) (nl - self->data) + 1 : self->len;
    self->line++;
}

/* At pos: a field separator, a line end or the end of input? Consumes a
 * separator (true, *eol false) or a line end (true, *eol true). */
static bool s_field_end(file_csv_t *self, bool *eol)
{
    const char *d = self->data;
    *eol = false;
    if (self->pos >= self->len) {
        *eol = true;
        return true;
    }
    if (d[self->pos] == self->sep) {
        self->pos++;
        return true;
    }
    if (d[self->pos] == '\n') {
        self->pos++;
        self->line++;
        *eol = true;
        return true;
    }
    if (d[self->pos] == '\r' && self->pos + 1 < self->len && d[self->pos + 1] == '\n') {
        self->pos += 2;
        self->line++;
        *eol = true;
        return true;
    }
    if (d[self->pos] == '\r' && self->pos + 1 == self->len) {
        self->pos++;
        *eol = true;
        return true;
    }
    return false;
}

/* A quoted field from pos (at the opening quote). 0, 1 = text after the
 * closing quote, 2 = never closed, -1 = out of memory. */
static int s_quoted(file_csv_t *self)
{
    const char *d = self->data;
    self->fields[self->nfields - 1].quoted = 1;
    self->pos++;
    for (;;) {
        const char *q = memchr(d + self->pos, '"', self->len - self->pos);
        if (!q) {
            self->pos = self->len;
            return 2;
        }
        size_t n = (size_t) (q - (d + self->pos));
        for (const char *p = d + self->pos; p < q; p++)
            self->line += *p == '\n';
        if (s_put(self, d + self->pos, n) != 0)
            return -1;
        self->pos += n + 1;
        if (self->pos < self->len && d[self->pos] == '"') {
            if (s_put(self, "\"", 1) != 0)
                return -1;
            self->pos++;
            continue;
        }
        return 0;
    }
}

/* An unquoted field from pos, up to a separator or line end (not consumed). */
static int s_plain(file_csv_t *self)
{
    const char *d = self->data;
    size_t start = self->pos;
    while (self->pos < self->len) {
        char c = d[self->pos];
        if (c == self->sep || c == '\n')
            break;
        if (c == '\r' && (self->pos + 1 == self->len || d[self->pos + 1] == '\n'))
            break;
        self->pos++;
    }
    return s_put(self, d + start, self->pos - start);
}

static void s_errf(char *err, size_t errlen, const char *fmt, uint64_t line)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, (unsigned long long) line);
}

int file_csv_next(file_csv_t *self, const file_csv_field_t **fields, size_t *n,
                  uint64_t *line, size_t *end, char *err, size_t errlen)
{
    const char *d = self->data;
    /* Blank lines are no records. */
    for (;;) {
        if (self->pos >= self->len)
            return 0;
        if (d[self->pos] == '\n') {
            self->pos++;
            self->line++;
        }
        else if (d[self->pos] == '\r' && (self->pos + 1 == self->len
                                          || d[self->pos + 1] == '\n'))
            self->pos++;
        else
            break;
    }
    uint64_t first = self->line;
    *line = first;
    self->blen = 0;
    self->nfields = 0;
    bool eol = false;
    while (!eol) {
        if (s_field_open(self) != 0)
            goto nomem;
        if (self->pos < self->len && d[self->pos] == '"') {
            int q = s_quoted(self);
            if (q < 0)
                goto nomem;
            if (q == 2) {
                s_errf(err, errlen, "a quote opened in the record of line %llu is never "
                       "closed", first);
                *end = self->pos;
                return -1;
            }
            if (!s_field_end(self, &eol)) {
                s_errf(err, errlen, "text after a closing quote in the record of line "
                       "%llu (a quote inside a quoted field is written \"\")", first);
                s_skip_line(self);
                *end = self->pos;
                return -1;
            }
        }
        else {
            if (s_plain(self) != 0)
                goto nomem;
            s_field_end(self, &eol);
        }
        if (s_field_close(self) != 0)
            goto nomem;
    }
    for (size_t i = 0; i < self->nfields; i++) {
        self->fields[i].ptr = self->buf + self->offs[i];
        self->fields[i].len = (i + 1 < self->nfields ? self->offs[i + 1] : self->blen)
                              - self->offs[i] - 1;
    }
    *fields = self->fields;
    *n = self->nfields;
    *end = self->pos;
    return 1;
nomem:
    s_errf(err, errlen, "out of memory in the record of line %llu", first);
    s_skip_line(self);
    *end = self->pos;
    return -1;
}
