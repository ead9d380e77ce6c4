/*  slt_doc - message bodies as JSON documents (slt_doc.h).
 *  JSON and NDJSON go through cJSON, after one pass of our own over the
 *  bytes for what cJSON lets through (bad UTF-8, raw control characters,
 *  "\u0000", integers a double cannot carry) and a walk of the tree for
 *  duplicate keys and depth; CSV (RFC 4180) and logfmt are small
 *  hand-written scanners over the borrowed bytes that keep the line and
 *  the start of the line, so every error can say where it is. Field text
 *  is unescaped into one scratch buffer reused for the whole body.
 *  No state; any thread.  */
#include "slt_doc.h"
#include "slc.h"
#include <assert.h>
#include <ctype.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { S_JSON, S_NDJSON, S_CSV, S_LOGFMT };

typedef struct {
    cJSON **docs;           /* the caller's array */
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

#define S_WHY_MAX 128           /* a reason s_prescan gives, bytes */
#define S_COL(r, at) ((size_t) ((at) - (r)->bol) + 1)

/* Take DOC (owned) into the output. */
static int s_emit(s_out_t *o, cJSON *doc)
{
    int rc = 0;
    if (!doc) {
        rc = SL_ENOMEM;
        goto fail;
    }
    if (o->n == o->max) {
        slc_errf(o->err, o->errlen, "more than %zu documents", o->max);
        cJSON_Delete(doc);
        rc = SL_ETOOBIG;
        goto fail;
    }
    o->docs[o->n++] = doc;
fail:
    return rc;
}

/* Add VAL (owned, may be NULL for a failed create) to OBJ under KEY
 * (copied). False when out of memory; VAL is freed then. */
static bool s_add(cJSON *obj, const char *key, cJSON *val)
{
    if (val && cJSON_AddItemToObject(obj, key, val))
        return true;
    cJSON_Delete(val);
    return false;
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
        /* ASCII without NUL, eight bytes at a time: no high bit set, and
         * no zero byte (the usual has-zero-byte trick). */
        while (len - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull)
                || ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull))
                break;
            i += 8;
        }
        if (i == len)
            break;
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

/* ------------------------------------------------------------------ JSON */

/* Line and byte column of AT in DATA, both from 1, LINE0 being DATA's. */
static void s_where(const char *data, const char *at, size_t line0, size_t *line,
                    size_t *col)
{
    const char *bol = data;
    *line = line0;
    for (const char *p = data; p < at; p++)
        if (*p == '\n')
            (*line)++, bol = p + 1;
    *col = (size_t) (at - bol) + 1;
}

/* The first problem cJSON does not see in the LEN bytes at DATA: bytes
 * that are not UTF-8, raw control characters in strings, "\u0000", and
 * integers (no fraction, no exponent) of magnitude above 2^53. Returns 0
 * (*AT NULL) or SL_EINVAL with *AT where it is and ERR (ERRLEN bytes, may
 * be NULL) saying what. Strings are tracked so that digits inside them
 * are left alone. */
static int s_prescan(const char *data, size_t len, const char **at, char *err,
                     size_t errlen)
{
    const char *p = data, *end = data + len;
    *at = NULL;
    size_t ok = s_utf8_ok((const unsigned char *) data, len);
    if (ok < len) {
        slc_errf(err, errlen, "%s", data[ok] ? "not UTF-8 text" : "a NUL byte");
        *at = data + ok;
        return SL_EINVAL;
    }
    while (p < end) {
        unsigned char c = (unsigned char) *p;
        if (c == '"') {
            for (p++; p < end && *p != '"'; p++) {
                if ((unsigned char) *p < 0x20) {
                    slc_errf(err, errlen, "a control character inside a string (escape it)");
                    *at = p;
                    return SL_EINVAL;
                }
                if (*p != '\\' || ++p >= end)
                    continue;
                /* cJSON takes a bad \u escape ("\u12g4") for U+0000 and
                 * cuts the string there: check escapes here. */
                if (!strchr("\"\\/bfnrtu", *p) || !*p) {
                    slc_errf(err, errlen, "an unknown escape in a string");
                    *at = p - 1;
                    return SL_EINVAL;
                }
                if (*p != 'u')
                    continue;
                for (int k = 1; k <= 4; k++)
                    if (end - p <= k || !isxdigit((unsigned char) p[k])) {
                        slc_errf(err, errlen, "\\u must be followed by four hex digits");
                        *at = p - 1;
                        return SL_EINVAL;
                    }
                if (!memcmp(p + 1, "0000", 4)) {
                    slc_errf(err, errlen, "\\u0000 in a string (NUL is not allowed)");
                    *at = p - 1;
                    return SL_EINVAL;
                }
            }
            p++;
        }
        else if (c == '-' || (c >= '0' && c <= '9')) {
            const char *start = p, *digits;
            if (*p == '-')
                p++;
            digits = p;
            while (p < end && *p >= '0' && *p <= '9')
                p++;
            size_t n = (size_t) (p - digits);
            if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
                while (p < end && strchr("0123456789.eE+-", *p))
                    p++;    /* a real: a double by definition */
            else if (n > 16 || (n == 16 && memcmp(digits, "9007199254740992", 16) > 0)) {
                slc_errf(err, errlen, "an integer beyond 2^53 (9007199254740992), which "
                         "would not be kept exactly; send it as a string");
                *at = start;
                return SL_EINVAL;
            }
        }
        else
            p++;
    }
    return 0;
}

/* Where the walk is: the chain of containers from the top, so that a
 * JSON pointer is only written when there is an error to report. */
typedef struct s_frame {
    const struct s_frame *up;
    const cJSON *item;      /* the member or element */
    size_t index;           /* its index, for an array element */
    bool member;            /* a member of an object (ITEM->string) */
} s_frame_t;

/* The JSON pointer of frame F into PTR (LEN bytes), "" for the top. */
static void s_pointer(const s_frame_t *f, char *ptr, size_t len)
{
    char tail[256] = "";
    ptr[0] = '\0';
    for (; f; f = f->up) {
        char step[160], idx[24];
        const char *key = idx;
        size_t n = 0;
        if (f->member)
            key = f->item->string;
        else
            snprintf(idx, sizeof idx, "%zu", f->index);
        step[n++] = '/';
        for (; *key && n + 3 < sizeof step; key++) {
            if (*key == '~' || *key == '/') {
                step[n++] = '~';
                step[n++] = *key == '~' ? '0' : '1';
            }
            else
                step[n++] = *key;
        }
        step[n] = '\0';
        snprintf(tail, sizeof tail, "%s%s", step, ptr);
        snprintf(ptr, len, "%s", tail);
    }
}

static int s_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* The first key of object J that appears twice, or NULL. Small objects
 * are compared pairwise; larger ones sorted. *NOMEM on allocation failure. */
static const char *s_dup_key(const cJSON *j, bool *nomem)
{
    const char *dup = NULL;
    const char **keys = NULL;
    size_t n = 0;
    for (const cJSON *a = j->child; a; a = a->next)
        n++;
    if (n <= 16) {
        for (const cJSON *a = j->child; a && !dup; a = a->next)
            for (const cJSON *b = a->next; b; b = b->next)
                if (a->string[0] == b->string[0] && !strcmp(a->string, b->string)) {
                    dup = a->string;
                    break;
                }
        goto done;
    }
    keys = malloc(n * sizeof *keys);
    if (!keys) {
        *nomem = true;
        goto done;
    }
    n = 0;
    for (const cJSON *a = j->child; a; a = a->next)
        keys[n++] = a->string;
    qsort(keys, n, sizeof *keys, s_key_cmp);
    for (size_t i = 1; i < n && !dup; i++)
        if (!strcmp(keys[i - 1], keys[i]))
            dup = keys[i];
done:
    free(keys);
    return dup;
}

/* A JSON pointer for an error text ("" is the whole document). */
#define S_PTR(p) ((p)[0] ? (p) : "the top")

/* Walk J, at frame AT (NULL: the top), for duplicate keys, depth and
 * numbers out of a double's range ("1e999"). */
static int s_walk(const cJSON *j, const s_frame_t *at, int depth, char *err,
                  size_t errlen)
{
    int rc = 0;
    char ptr[256];
    bool nomem = false;
    const char *dup = NULL;
    if (cJSON_IsNumber(j) && !isfinite(j->valuedouble)) {
        s_pointer(at, ptr, sizeof ptr);
        slc_errf(err, errlen, "at %s: a number too large for a double", S_PTR(ptr));
        return SL_EINVAL;
    }
    if (!cJSON_IsObject(j) && !cJSON_IsArray(j))
        return 0;
    if (depth > SLT_DOC_DEPTH_MAX) {
        s_pointer(at, ptr, sizeof ptr);
        slc_errf(err, errlen, "at %s: nested deeper than %d", S_PTR(ptr), SLT_DOC_DEPTH_MAX);
        return SL_EINVAL;
    }
    if (cJSON_IsObject(j) && (dup = s_dup_key(j, &nomem)) != NULL) {
        s_pointer(at, ptr, sizeof ptr);
        slc_errf(err, errlen, "at %s: the key \"%s\" appears twice in one "
                 "object", S_PTR(ptr), dup);
        return SL_EINVAL;
    }
    if (nomem)
        return SL_ENOMEM;
    s_frame_t f = { at, NULL, 0, cJSON_IsObject(j) };
    for (const cJSON *c = j->child; c && rc == 0; c = c->next, f.index++) {
        if (cJSON_IsObject(c) || cJSON_IsArray(c)
            || (cJSON_IsNumber(c) && !isfinite(c->valuedouble))) {
            f.item = c;
            rc = s_walk(c, &f, depth + 1, err, errlen);
        }
    }
    return rc;
}

/* slt_doc_parse, for a text whose first line is LINE0 of its body. */
static int s_parse(const char *data, size_t len, size_t line0, cJSON **out,
                   char *err, size_t errlen)
{
    int rc = 0;
    char why[S_WHY_MAX];        /* "" when cJSON's error is at AT */
    const char *at = NULL, *end = NULL;
    size_t line, col;
    cJSON *doc = NULL;
    *out = NULL;
    why[0] = '\0';
    if (s_prescan(data, len, &at, why, sizeof why) == 0) {
        doc = cJSON_ParseWithLengthOpts(data, len, &end, false);
        if (!doc)
            at = end && end >= data && end <= data + len ? end : data;
        else {
            while (end < data + len && strchr(" \t\r\n", *end))
                end++;
            if (end < data + len) {
                at = end;
                snprintf(why, sizeof why, "text after the JSON value");
            }
        }
    }
    if (at) {
        s_where(data, at, line0, &line, &col);
        size_t near = 0;
        while (at + near < data + len && near < 16 && (unsigned char) at[near] >= 0x20)
            near++;
        if (why[0])
            slc_errf(err, errlen, "line %zu, column %zu: %s", line, col, why);
        else if (near)
            slc_errf(err, errlen, "line %zu, column %zu: not valid JSON near '%.*s'",
                     line, col, (int) near, at);
        else
            slc_errf(err, errlen, "line %zu, column %zu: not valid JSON (the text "
                     "ends too soon)", line, col);
        rc = SL_EINVAL;
        goto fail;
    }
    rc = s_walk(doc, NULL, 1, err, errlen);
    if (rc)
        goto fail;
    *out = doc;
    doc = NULL;
fail:
    cJSON_Delete(doc);
    return rc;
}

int slt_doc_parse(const char *data, size_t len, cJSON **out, char *err, size_t errlen)
{
    assert(out && (data || len == 0));
    return s_parse(data ? data : "", len, 1, out, err, errlen);
}

bool slt_doc_utf8(const char *s, size_t len)
{
    return s_utf8_ok((const unsigned char *) s, len) == len;
}

bool slt_doc_int(const cJSON *j, int64_t *v)
{
    if (!cJSON_IsNumber(j))
        return false;
    double d = j->valuedouble;
    if (!(d >= -SLT_DOC_INT_LIMIT && d <= SLT_DOC_INT_LIMIT) || d != trunc(d))
        return false;
    if (v)
        *v = (int64_t) d;
    return true;
}

static int s_decode_json(s_out_t *o, const char *data, size_t len)
{
    cJSON *doc = NULL;
    int rc = s_parse(data, len, 1, &doc, o->err, o->errlen);
    return rc ? rc : s_emit(o, doc);
}

static int s_decode_ndjson(s_out_t *o, const char *data, size_t len)
{
    int rc = 0;
    s_rd_t r = { data, data + len, data, 1 };
    while (r.p < r.end) {
        const char *next, *le = s_line_end(&r, &next);
        if (!s_blank(r.p, le)) {
            cJSON *doc = NULL;
            rc = s_parse(r.p, (size_t) (le - r.p), r.line, &doc, o->err, o->errlen);
            if (rc)
                goto fail;
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
    cJSON *row = NULL;
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
    if (!names) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (; nnames < c.nfields; nnames++) {
        const s_field_t *f = &c.fields[nnames];
        const char *name = c.text.buf + f->off;
        bool twice = false;
        for (size_t k = 0; k < nnames && !twice; k++)
            twice = !strcmp(names[k], name);
        if (!f->len || twice) {
            slc_errf(o->err, o->errlen, "line %zu, column %zu: %s", f->line,
                     f->col, f->len ? "this column name appears twice"
                                    : "a column without a name");
            rc = SL_EINVAL;
            goto fail;
        }
        names[nnames] = strdup(name);
        if (!names[nnames]) {
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
        row = cJSON_CreateObject();
        if (!row) {
            rc = SL_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < nnames; i++) {
            const s_field_t *f = &c.fields[i];
            if (!s_add(row, names[i], cJSON_CreateString(c.text.buf + f->off))) {
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
    cJSON_Delete(row);
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
                         cJSON **out)
{
    int rc = 0;
    cJSON *obj = NULL;
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
        cJSON *val;
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
            if (rc == 0)
                rc = s_put(b, '\0');
            if (rc)
                goto fail;
            val = cJSON_CreateString(b->buf + klen + 1);
        }
        else
            val = cJSON_CreateTrue();
        if (!obj)
            obj = cJSON_CreateObject();
        if (!obj) {
            cJSON_Delete(val);
            rc = SL_ENOMEM;
            goto fail;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(obj, b->buf);  /* the last wins */
        if (!s_add(obj, b->buf, val)) {
            rc = SL_ENOMEM;
            goto fail;
        }
    }
    *out = obj;
    obj = NULL;
fail:
    cJSON_Delete(obj);
    return rc;
}

static int s_decode_logfmt(s_out_t *o, const char *data, size_t len)
{
    int rc = 0;
    s_rd_t r = { data, data + len, data, 1 };
    s_buf_t b = { NULL, 0, 0 };
    while (r.p < r.end) {
        const char *next, *le = s_line_end(&r, &next);
        cJSON *obj = NULL;
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

int slt_doc_decode(const char *content_type, const void *data, size_t len,
                   cJSON **docs, size_t max, size_t *ndocs,
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
            cJSON_Delete(docs[--o.n]);
    *ndocs = o.n;
    return rc;
}

/* ---------------------------------------------------------------- encode */

/* Our own writer over cJSON trees: cJSON's printer keeps 15 significant
 * digits whenever they read back within an epsilon, so 1234567890123456
 * would leave as 1.23456789012346e+15 (and cJSON cannot sort keys, which
 * canonical schema texts need). Numbers as slt_doc_number writes them;
 * strings escape what RFC 8259 requires. */
typedef struct {
    char *buf;
    size_t len, cap;
} s_w_t;

static inline int s_w_put(s_w_t *w, const char *p, size_t n)
{
    int rc = w->len + n + 1 <= w->cap
           ? 0 : slc_grow((void **) &w->buf, &w->cap, w->len + n + 1, 1);
    if (rc == 0) {
        memcpy(w->buf + w->len, p, n);
        w->len += n;
        w->buf[w->len] = '\0';
    }
    return rc;
}

/* Bytes a string carries as they are: not below 0x20, not '"' or '\\'. */
static inline bool s_w_plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

static int s_w_string(s_w_t *w, const char *s)
{
    /* Most strings need no escape: write them with one copy. */
    size_t plain = 0;
    while (s_w_plain((unsigned char) s[plain]))
        plain++;
    if (!s[plain]) {
        size_t need = w->len + plain + 3;
        int rc = need <= w->cap ? 0 : slc_grow((void **) &w->buf, &w->cap, need, 1);
        if (rc == 0) {
            char *b = w->buf + w->len;
            b[0] = '"';
            memcpy(b + 1, s, plain);
            b[plain + 1] = '"';
            b[plain + 2] = '\0';
            w->len += plain + 2;
        }
        return rc;
    }
    int rc = s_w_put(w, "\"", 1);
    const char *run = s;
    for (s += plain; rc == 0 && *s; s++) {
        unsigned char c = (unsigned char) *s;
        if (s_w_plain(c))
            continue;
        char esc[8];
        size_t n = 2;
        esc[0] = '\\';
        switch (c) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:   n = (size_t) snprintf(esc, sizeof esc, "\\u%04x", c); break;
        }
        rc = s_w_put(w, run, (size_t) (s - run));
        if (rc == 0)
            rc = s_w_put(w, esc, n);
        run = s + 1;
    }
    if (rc == 0)
        rc = s_w_put(w, run, (size_t) (s - run));
    if (rc == 0)
        rc = s_w_put(w, "\"", 1);
    return rc;
}

void slt_doc_number(double d, char *buf, size_t len)
{
    cJSON probe = { .type = cJSON_Number, .valuedouble = d };
    int64_t v;
    assert(len >= 32);
    if (!isfinite(d)) {
        snprintf(buf, len, "null");
        return;
    }
    if (slt_doc_int(&probe, &v)) {
        char rev[24];
        uint64_t u = v < 0 ? (uint64_t) -v : (uint64_t) v;
        size_t n = 0, k = 0;
        do
            rev[n++] = (char) ('0' + u % 10);
        while (u /= 10);
        if (v < 0)
            buf[k++] = '-';
        while (n)
            buf[k++] = rev[--n];
        buf[k] = '\0';
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    /* A whole number past 2^53 in digits alone would read back as an
     * integer slt_doc_parse refuses: mark it a real. */
    if (!strpbrk(buf, ".e"))
        strcat(buf, ".0");
}

static int s_w_number(s_w_t *w, double d)
{
    char num[40];
    if (!isfinite(d))
        return SL_EINVAL;
    slt_doc_number(d, num, sizeof num);
    return s_w_put(w, num, strlen(num));
}

static int s_w_key_cmp(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *) a, *y = *(const cJSON *const *) b;
    return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}

static int s_w_value(s_w_t *w, const cJSON *j, unsigned flags, int depth)
{
    int rc = 0;
    const cJSON **sorted = NULL;
    if (depth > SLT_DOC_DEPTH_MAX)
        return SL_EINVAL;
    switch (j->type & 0xFF) {
    case cJSON_NULL:   return s_w_put(w, "null", 4);
    case cJSON_True:   return s_w_put(w, "true", 4);
    case cJSON_False:  return s_w_put(w, "false", 5);
    case cJSON_Number: return s_w_number(w, j->valuedouble);
    case cJSON_String: return s_w_string(w, j->valuestring ? j->valuestring : "");
    case cJSON_Array:
    case cJSON_Object:
        break;
    default:
        return SL_EINVAL;   /* cJSON_Raw or invalid: never built here */
    }
    bool obj = cJSON_IsObject(j);
    size_t n = 0, i = 0;
    if (obj && (flags & SLT_DOC_SORTED)) {
        for (const cJSON *c = j->child; c; c = c->next)
            n++;
        sorted = n > 1 ? malloc(n * sizeof *sorted) : NULL;
        if (n > 1 && !sorted)
            return SL_ENOMEM;
        for (const cJSON *c = j->child; sorted && c; c = c->next)
            sorted[i++] = c;
        if (sorted)
            qsort(sorted, n, sizeof *sorted, s_w_key_cmp);
    }
    rc = s_w_put(w, obj ? "{" : "[", 1);
    i = 0;
    for (const cJSON *c = j->child; rc == 0 && c; c = c->next, i++) {
        const cJSON *m = sorted ? sorted[i] : c;
        if (i)
            rc = s_w_put(w, ",", 1);
        if (rc == 0 && obj)
            rc = s_w_string(w, m->string ? m->string : "");
        if (rc == 0 && obj)
            rc = s_w_put(w, ":", 1);
        if (rc == 0)
            rc = s_w_value(w, m, flags, depth + 1);
    }
    if (rc == 0)
        rc = s_w_put(w, obj ? "}" : "]", 1);
    free(sorted);
    return rc;
}

int slt_doc_encode(const cJSON *doc, char **out, size_t *len)
{
    return slt_doc_encode_ex(doc, 0, out, len);
}

int slt_doc_encode_ex(const cJSON *doc, unsigned flags, char **out, size_t *len)
{
    s_w_t w = { NULL, 0, 0 };
    int rc = 0;
    assert(doc && out);
    *out = NULL;
    rc = slc_grow((void **) &w.buf, &w.cap, 256, 1);
    if (rc == 0)
        rc = s_w_value(&w, doc, flags, 1);
    if (rc) {
        free(w.buf);
        return rc;
    }
    *out = w.buf;
    if (len)
        *len = w.len;
    return 0;
}

/* --------------------------------------------- cJSON_PrintUnformatted's bytes */

/* cJSON 1.7's compare_double: equal within an epsilon. */
static bool s_c_same(double a, double b)
{
    double max = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= max * DBL_EPSILON;
}

/* The digits of V, without printf. */
static int s_c_int(s_w_t *w, long long v)
{
    char buf[24], *p = buf + sizeof buf;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long) v : (unsigned long long) v;
    do
        *--p = (char) ('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    return s_w_put(w, p, (size_t) (buf + sizeof buf - p));
}

/* cJSON 1.7.15's print_number, byte for byte: "null" when not finite,
 * else %1.15g, or %1.17g when that does not read back (within cJSON's
 * epsilon). An integral value under 10^15 is its digits under %1.15g
 * ("-0" for minus zero): that case, every integer of a mapped order,
 * skips printf and sscanf. */
static int s_c_number(s_w_t *w, const cJSON *j)
{
    double d = j->valuedouble;
    if (isnan(d) || isinf(d))
        return s_w_put(w, "null", 4);
    if (d == 0 && signbit(d))
        return s_w_put(w, "-0", 2);
    if (fabs(d) < 1e15 && d == (double) (long long) d)
        return s_c_int(w, (long long) d);
    char buf[32];
    double test = 0.0;
    int n = snprintf(buf, sizeof buf, "%1.15g", d);
    if (sscanf(buf, "%lg", &test) != 1 || !s_c_same(test, d))
        n = snprintf(buf, sizeof buf, "%1.17g", d);
    if (n < 0 || (size_t) n >= sizeof buf)
        return SL_EINVAL;
    char point = localeconv()->decimal_point[0];
    for (int i = 0; i < n && point != '.'; i++)
        if (buf[i] == point)
            buf[i] = '.';
    return s_w_put(w, buf, (size_t) n);
}

static int s_c_value(s_w_t *w, const cJSON *j, int depth)
{
    int rc = 0;
    if (depth > SLT_DOC_DEPTH_MAX + 1)
        return SL_EINVAL;
    switch (j->type & 0xFF) {
    case cJSON_NULL:   return s_w_put(w, "null", 4);
    case cJSON_False:  return s_w_put(w, "false", 5);
    case cJSON_True:   return s_w_put(w, "true", 4);
    case cJSON_Number: return s_c_number(w, j);
    case cJSON_Raw:
        return j->valuestring ? s_w_put(w, j->valuestring, strlen(j->valuestring)) : SL_EINVAL;
    case cJSON_String: return s_w_string(w, j->valuestring ? j->valuestring : "");
    case cJSON_Array:
    case cJSON_Object: {
        bool obj = (j->type & 0xFF) == cJSON_Object;
        rc = s_w_put(w, obj ? "{" : "[", 1);
        for (const cJSON *c = j->child; rc == 0 && c; c = c->next) {
            if (obj) {
                rc = s_w_string(w, c->string ? c->string : "");
                if (rc == 0)
                    rc = s_w_put(w, ":", 1);
            }
            if (rc == 0)
                rc = s_c_value(w, c, depth + 1);
            if (rc == 0 && c->next)
                rc = s_w_put(w, ",", 1);
        }
        return rc ? rc : s_w_put(w, obj ? "}" : "]", 1);
    }
    default:
        return SL_EINVAL;
    }
}

int slt_doc_print(const cJSON *doc, char **out, size_t *len)
{
    s_w_t w = { NULL, 0, 0 };
    assert(doc && out);
    *out = NULL;
    int rc = slc_grow((void **) &w.buf, &w.cap, 512, 1);
    if (rc == 0)
        rc = s_c_value(&w, doc, 1);
    if (rc) {
        free(w.buf);
        return rc;
    }
    *out = w.buf;
    if (len)
        *len = w.len;
    return 0;
}
