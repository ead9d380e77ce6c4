/*  slc_doc - message bodies as JSON documents (slc_doc.h).
 *  JSON and NDJSON go through jansson; CSV (RFC 4180) and logfmt are small
 *  hand-written scanners over the borrowed bytes that keep the line and
 *  the start of the line, so every error can say where it is. Field text
 *  is unescaped into one scratch buffer reused for the whole body.
 *  No state; any thread.  */
#include "slc_doc.h"
#include "slc.h"
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { S_JSON, S_NDJSON, S_CSV, S_LOGFMT };

typedef struct {
    json_t **docs;          /* the caller's array */
    size_t max;             /* its room */
    size_t n;               /* documents in it */
    char *err;              /* the caller's ERR buffer */
    size_t errlen;          /* its size */
} s_out_t;

typedef struct {
    const char *p;          /* next byte */
    const char *end;        /* one past the last byte */
    const char *bol;        /* first byte of the current line */
    size_t line;            /* current line, from 1 */
} s_rd_t;

typedef struct {
    char *buf;              /* unescaped text, NUL after each piece */
    size_t len;             /* bytes used */
    size_t cap;             /* bytes allocated */
} s_buf_t;

typedef struct {
    size_t off;             /* text in the scratch buffer */
    size_t len;             /* its length, without the NUL */
    size_t line;            /* where the field starts */
    size_t col;             /* its byte column, from 1 */
} s_field_t;

#define S_COL(r, at) ((size_t) ((at) - (r)->bol) + 1)

/* Take DOC (owned) into the output. */
static int s_emit(s_out_t *o, json_t *doc)
{
    int rc = 0;
    if (!doc) {
        rc = SL_ENOMEM;
        goto fail;
    }
    if (o->n == o->max) {
        slc_errf(o->err, o->errlen, "more than %zu documents", o->max);
        json_decref(doc);
        rc = SL_ETOOBIG;
        goto fail;
    }
    o->docs[o->n++] = doc;
fail:
    return rc;
}

static int s_put(s_buf_t *b, char ch)
{
    int rc = slc_grow((void **) &b->buf, &b->cap, b->len + 1, 1);
    if (rc == 0)
        b->buf[b->len++] = ch;
    return rc;
}

/* Length of the prefix of S that is UTF-8 without NUL (LEN when all is):
 * no overlong forms, surrogates or code points past U+10FFFF. */
static size_t s_utf8_ok(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i], cp, min;
        size_t more;
        if (c == 0)
            return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1, min = 0x80, cp = c & 0x1F;
        }
        else if ((c & 0xF0) == 0xE0) {
            more = 2, min = 0x800, cp = c & 0x0F;
        }
        else if (c >= 0xF0 && c <= 0xF4) {
            more = 3, min = 0x10000, cp = c & 0x07;
        }
        else
            return i;
        if (len - i <= more)
            return i;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += more + 1;
    }
    return len;
}

/* Check that the scratch text at OFF (LEN bytes) is UTF-8; 0 or SL_EINVAL
 * naming LINE and COL. */
static int s_text_ok(s_out_t *o, const s_buf_t *b, size_t off, size_t len,
                     size_t line, size_t col)
{
    if (s_utf8_ok((const unsigned char *) b->buf + off, len) == len)
        return 0;
    slc_errf(o->err, o->errlen, "line %zu, column %zu: not UTF-8 text "
             "(or a NUL byte)", line, col);
    return SL_EINVAL;
}

/* The line from R's cursor: [R->p, *EOL) without a final CR. */
static const char *s_line_end(const s_rd_t *r, const char **next)
{
    const char *nl = memchr(r->p, '\n', (size_t) (r->end - r->p));
    const char *le = nl ? nl : r->end;
    *next = nl ? nl + 1 : r->end;
    if (le > r->p && le[-1] == '\r')
        le--;
    return le;
}

static bool s_blank(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r')
            return false;
    return true;
}

static int s_decode_json(s_out_t *o, const char *data, size_t len)
{
    json_error_t je;
    json_t *doc = json_loadb(data, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        slc_errf(o->err, o->errlen, "line %d, column %d: %s", je.line,
                 je.column, je.text);
        return SL_EINVAL;
    }
    return s_emit(o, doc);
}

static int s_decode_ndjson(s_out_t *o, const char *data, size_t len)
{
    int rc = 0;
    s_rd_t r = { data, data + len, data, 1 };
    while (r.p < r.end) {
        const char *next, *le = s_line_end(&r, &next);
        if (!s_blank(r.p, le)) {
            json_error_t je;
            json_t *doc = json_loadb(r.p, (size_t) (le - r.p),
                                     JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
            if (!doc) {
                slc_errf(o->err, o->errlen, "line %zu, column %d: %s", r.line,
                         je.column, je.text);
                rc = SL_EINVAL;
                goto fail;
            }
            rc = s_emit(o, doc);
            if (rc)
                goto fail;
        }
        r.p = next;
        r.line++;
    }
fail:
    return rc;
}

/* ------------------------------------------------------------------- CSV */

typedef struct {
    s_out_t *o;             /* output and ERR */
    s_rd_t r;               /* the input */
    s_buf_t text;           /* the record's unescaped fields */
    s_field_t *fields;      /* the record's fields */
    size_t nfields;         /* entries in fields */
    size_t cap;             /* allocated entries */
    size_t line;            /* where the record starts */
} s_csv_t;

static bool s_csv_eol(const s_rd_t *r)
{
    return r->p == r->end || *r->p == '\n'
        || (*r->p == '\r' && (r->p + 1 == r->end || r->p[1] == '\n'));
}

/* One field at the cursor into c->text; the cursor stops on its end. */
static int s_csv_field(s_csv_t *c, s_field_t *f)
{
    int rc = 0;
    s_rd_t *r = &c->r;
    if (r->p < r->end && *r->p == '"') {
        const char *open = r->p++;
        size_t line = r->line, col = S_COL(r, open);
        for (;;) {
            if (r->p == r->end) {
                slc_errf(c->o->err, c->o->errlen, "line %zu, column %zu: the "
                         "quoted field never ends", line, col);
                rc = SL_EINVAL;
                goto fail;
            }
            char ch = *r->p++;
            if (ch == '"') {
                if (r->p == r->end || *r->p != '"')
                    break;
                r->p++;
            }
            else if (ch == '\n') {
                r->line++;
                r->bol = r->p;
            }
            rc = s_put(&c->text, ch);
            if (rc)
                goto fail;
        }
        if (!s_csv_eol(r) && *r->p != ',') {
            slc_errf(c->o->err, c->o->errlen, "line %zu, column %zu: text after "
                     "the closing quote (a quote inside a quoted field is "
                     "written \"\")", r->line, S_COL(r, r->p));
            rc = SL_EINVAL;
            goto fail;
        }
    }
    else
        while (!s_csv_eol(r) && *r->p != ',') {
            if (*r->p == '"') {
                slc_errf(c->o->err, c->o->errlen, "line %zu, column %zu: a quote "
                         "inside an unquoted field (quote the whole field)",
                         r->line, S_COL(r, r->p));
                rc = SL_EINVAL;
                goto fail;
            }
            rc = s_put(&c->text, *r->p++);
            if (rc)
                goto fail;
        }
    f->len = c->text.len - f->off;
    rc = s_put(&c->text, '\0');
    if (rc)
        goto fail;
    rc = s_text_ok(c->o, &c->text, f->off, f->len, f->line, f->col);
fail:
    return rc;
}

/* Read the next record into c->fields: 0, 1 at the end of the input, or
 * an error. Blank lines are skipped. */
static int s_csv_record(s_csv_t *c)
{
    int rc = 0;
    s_rd_t *r = &c->r;
    c->text.len = 0;
    c->nfields = 0;
    while (r->p < r->end && s_csv_eol(r)) {
        r->p += *r->p == '\r' ? 2 : 1;
        r->line++;
        r->bol = r->p;
    }
    if (r->p >= r->end) {
        r->p = r->end;
        rc = 1;
        goto fail;
    }
    c->line = r->line;
    for (;;) {
        rc = slc_grow((void **) &c->fields, &c->cap, c->nfields + 1,
                      sizeof *c->fields);
        if (rc)
            goto fail;
        s_field_t *f = &c->fields[c->nfields];
        f->off = c->text.len;
        f->line = r->line;
        f->col = S_COL(r, r->p);
        rc = s_csv_field(c, f);
        if (rc)
            goto fail;
        c->nfields++;
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '\r')
            r->p++;
        if (r->p < r->end && *r->p == '\n')
            r->p++;
        r->line++;
        r->bol = r->p;
        break;
    }
fail:
    return rc;
}

static int s_decode_csv(s_out_t *o, const char *data, size_t len)
{
    int rc = 0;
    s_csv_t c;
    char **names = NULL;
    size_t nnames = 0;
    json_t *seen = NULL, *row = NULL;
    memset(&c, 0, sizeof c);
    c.o = o;
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3))
        data += 3, len -= 3;
    c.r = (s_rd_t) { data, data + len, data, 1 };
    rc = s_csv_record(&c);
    if (rc == 1) {
        rc = 0;         /* no header: no rows */
        goto fail;
    }
    if (rc)
        goto fail;
    names = calloc(c.nfields, sizeof *names);
    seen = json_object();
    if (!names || !seen) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (; nnames < c.nfields; nnames++) {
        const s_field_t *f = &c.fields[nnames];
        const char *name = c.text.buf + f->off;
        if (!f->len || json_object_get(seen, name)) {
            slc_errf(o->err, o->errlen, "line %zu, column %zu: %s", f->line,
                     f->col, f->len ? "this column name appears twice"
                                    : "a column without a name");
            rc = SL_EINVAL;
            goto fail;
        }
        names[nnames] = strdup(name);
        if (!names[nnames] || json_object_set_nocheck(seen, name, json_true())) {
            rc = SL_ENOMEM;
            goto fail;
        }
    }
    while ((rc = s_csv_record(&c)) == 0) {
        if (c.nfields != nnames) {
            slc_errf(o->err, o->errlen, "line %zu: %zu field%s, the header "
                     "has %zu", c.line, c.nfields, c.nfields == 1 ? "" : "s",
                     nnames);
            rc = SL_EINVAL;
            goto fail;
        }
        row = json_object();
        if (!row) {
            rc = SL_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < nnames; i++) {
            const s_field_t *f = &c.fields[i];
            if (json_object_set_new_nocheck(row, names[i],
                    json_stringn_nocheck(c.text.buf + f->off, f->len))) {
                rc = SL_ENOMEM;
                goto fail;
            }
        }
        rc = s_emit(o, row);
        row = NULL;
        if (rc)
            goto fail;
    }
    if (rc == 1)
        rc = 0;
fail:
    json_decref(row);
    json_decref(seen);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    free(c.fields);
    free(c.text.buf);
    return rc;
}

/* ---------------------------------------------------------------- logfmt */

/* A quoted logfmt value at R->p (on the quote) up to LE into B. */
static int s_logfmt_quoted(s_out_t *o, s_rd_t *r, const char *le, s_buf_t *b)
{
    int rc = 0;
    const char *open = r->p++;
    for (;;) {
        if (r->p >= le) {
            slc_errf(o->err, o->errlen, "line %zu, column %zu: the quoted value "
                     "never ends", r->line, S_COL(r, open));
            rc = SL_EINVAL;
            goto fail;
        }
        char ch = *r->p++;
        if (ch == '"')
            break;
        if (ch == '\\' && r->p < le) {
            const char *esc = r->p - 1;
            switch (*r->p++) {
            case '"':  ch = '"'; break;
            case '\\': ch = '\\'; break;
            case 'n':  ch = '\n'; break;
            case 'r':  ch = '\r'; break;
            case 't':  ch = '\t'; break;
            default:
                slc_errf(o->err, o->errlen, "line %zu, column %zu: unknown "
                         "escape (use \\\" \\\\ \\n \\r \\t)", r->line,
                         S_COL(r, esc));
                rc = SL_EINVAL;
                goto fail;
            }
        }
        rc = s_put(b, ch);
        if (rc)
            goto fail;
    }
    if (r->p < le && *r->p != ' ' && *r->p != '\t') {
        slc_errf(o->err, o->errlen, "line %zu, column %zu: text after the "
                 "closing quote", r->line, S_COL(r, r->p));
        rc = SL_EINVAL;
    }
fail:
    return rc;
}

/* One line [R->p, LE) into *OUT (NULL when it holds no pair). */
static int s_logfmt_line(s_out_t *o, s_rd_t *r, const char *le, s_buf_t *b,
                         json_t **out)
{
    int rc = 0;
    json_t *obj = NULL;
    for (;;) {
        while (r->p < le && (*r->p == ' ' || *r->p == '\t'))
            r->p++;
        if (r->p >= le)
            break;
        const char *key = r->p;
        while (r->p < le && *r->p != ' ' && *r->p != '\t' && *r->p != '='
               && *r->p != '"')
            r->p++;
        if (r->p == key || (r->p < le && *r->p == '"')) {
            slc_errf(o->err, o->errlen, "line %zu, column %zu: expected a key "
                     "(key=value)", r->line, S_COL(r, r->p));
            rc = SL_EINVAL;
            goto fail;
        }
        b->len = 0;
        for (const char *k = key; k < r->p; k++)
            if ((rc = s_put(b, *k)) != 0)
                goto fail;
        if ((rc = s_put(b, '\0')) != 0)
            goto fail;
        size_t klen = b->len - 1, vcol = 0;
        rc = s_text_ok(o, b, 0, klen, r->line, S_COL(r, key));
        if (rc)
            goto fail;
        json_t *val;
        if (r->p < le && *r->p == '=') {
            r->p++;
            vcol = S_COL(r, r->p);
            if (r->p < le && *r->p == '"')
                rc = s_logfmt_quoted(o, r, le, b);
            else
                while (r->p < le && *r->p != ' ' && *r->p != '\t') {
                    if (*r->p == '"') {
                        slc_errf(o->err, o->errlen, "line %zu, column %zu: a "
                                 "quote inside an unquoted value", r->line,
                                 S_COL(r, r->p));
                        rc = SL_EINVAL;
                        goto fail;
                    }
                    if ((rc = s_put(b, *r->p++)) != 0)
                        goto fail;
                }
            if (rc)
                goto fail;
            rc = s_text_ok(o, b, klen + 1, b->len - klen - 1, r->line, vcol);
            if (rc)
                goto fail;
            val = json_stringn_nocheck(b->buf + klen + 1, b->len - klen - 1);
        }
        else
            val = json_true();
        if (!obj)
            obj = json_object();
        if (!obj || json_object_set_new_nocheck(obj, b->buf, val)) {
            if (!obj)
                json_decref(val);
            rc = SL_ENOMEM;
            goto fail;
        }
    }
    *out = obj;
    obj = NULL;
fail:
    json_decref(obj);
    return rc;
}

static int s_decode_logfmt(s_out_t *o, const char *data, size_t len)
{
    int rc = 0;
    s_rd_t r = { data, data + len, data, 1 };
    s_buf_t b = { NULL, 0, 0 };
    while (r.p < r.end) {
        const char *next, *le = s_line_end(&r, &next);
        json_t *obj = NULL;
        rc = s_logfmt_line(o, &r, le, &b, &obj);
        if (rc)
            goto fail;
        if (obj && (rc = s_emit(o, obj)) != 0)
            goto fail;
        r.p = r.bol = next;
        r.line++;
    }
fail:
    free(b.buf);
    return rc;
}

/* ------------------------------------------------------------ public API */

static int s_format(const char *ct)
{
    static const struct { const char *name; int format; } types[] = {
        { "application/json", S_JSON },
        { "application/x-ndjson", S_NDJSON },
        { "application/ndjson", S_NDJSON },
        { "text/csv", S_CSV },
        { "text/logfmt", S_LOGFMT },
    };
    if (!ct)
        return S_JSON;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t len = strcspn(ct, ";");
    while (len && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
        len--;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strlen(types[i].name) == len && !strncasecmp(ct, types[i].name, len))
            return types[i].format;
    return S_JSON;
}

int slc_doc_decode(const char *content_type, const void *data, size_t len,
                   json_t **docs, size_t max, size_t *ndocs,
                   char *err, size_t errlen)
{
    int rc = 0;
    s_out_t o = { docs, max, 0, err, errlen };
    const char *text = data ? data : "";
    assert(ndocs && (docs || max == 0) && (data || len == 0));
    switch (s_format(content_type)) {
    case S_NDJSON: rc = s_decode_ndjson(&o, text, len); break;
    case S_CSV:    rc = s_decode_csv(&o, text, len); break;
    case S_LOGFMT: rc = s_decode_logfmt(&o, text, len); break;
    default:       rc = s_decode_json(&o, text, len); break;
    }
    if (rc == SL_ENOMEM)
        slc_errf(err, errlen, "out of memory");
    if (rc)
        while (o.n)
            json_decref(docs[--o.n]);
    *ndocs = o.n;
    return rc;
}

int slc_doc_encode(const json_t *doc, char **out, size_t *len)
{
    int rc = 0;
    assert(doc && out);
    *out = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!*out) {
        rc = SL_ENOMEM;
        goto fail;
    }
    if (len)
        *len = strlen(*out);
fail:
    return rc;
}
