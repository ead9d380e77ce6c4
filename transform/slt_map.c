/*  slt_map - a mapping file from YAML to a compiled, checked program, and
 *  the run of that program over one document (slt_map.h).
 *
 *  Compiling reads the YAML with libfyaml into a document tree (its depth
 *  is bounded by libfyaml), takes the keys in a fixed order (name, from and
 *  to first, so that later messages can name them), and hands each
 *  expression to the lexer, parser and checker with the place its text
 *  occupies in the file. Errors never stop the walk: each one is recorded
 *  with its line and column and all are printed at the end, sorted, as
 *  blocks with the source line and a caret. Everything a mapping keeps
 *  lives in one arena and the tables' cJSON tree (indexed by key in the
 *  arena), freed together; the objects that hold nested targets are
 *  worked out once, here.
 *
 *  Evaluating is slt_map__eval over each field in file order, after
 *  drop_if, into a fresh cJSON object that borrows nothing from the
 *  document or the mapping. The compiled mapping is never written after
 *  compile, so threads may share it.
 *
 *  Errors are recorded and rendered by slt_map_diag.c; this file says
 *  where (line and column) and what. Any thread; a compile touches only
 *  its own mapping.  */
#include "slt_map.h"
#include "slt_map_int.h"
#include "slc.h"
#include "slt_doc.h"
#include <assert.h>
#include <errno.h>
#include <libfyaml.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_CHUNK 4096                /* arena chunk, bytes */
#define S_NAME_MAX 128              /* bytes of a mapping name */

/* ---- arena */

struct slt_map_chunk {
    slt_map_chunk_t *next;
    size_t used;
    size_t cap;
    max_align_t data[];
};

void *slt_map__alloc(slt_map_arena_t *a, size_t n)
{
    const size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    slt_map_chunk_t *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > S_CHUNK ? n : S_CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *) c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *slt_map__strndup(slt_map_arena_t *a, const char *s, size_t n)
{
    char *p = slt_map__alloc(a, n + 1);
    if (p && n)
        memcpy(p, s, n);
    return p;
}

void slt_map__arena_free(slt_map_arena_t *a)
{
    while (a->head) {
        slt_map_chunk_t *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

/* ---- YAML helpers */

/* Strict UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF); returns the offset of the first bad byte, or LEN. */
static size_t s_utf8_bad(const char *s, size_t len)
{
    size_t k = 0;
    while (k < len) {
        unsigned char c = (unsigned char) s[k];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            k++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return k;
        }
        if (len - k <= n)
            return k;
        for (size_t j = 1; j <= n; j++) {
            unsigned char t = (unsigned char) s[k + j];
            if ((t & 0xC0) != 0x80)
                return k;
            cp = (cp << 6) | (t & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
            || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return k;
        k += n + 1;
    }
    return len;
}

typedef struct {
    slt_map_cc_t *cc;
    const char *yaml;
    size_t len;
} s_yaml_t;

/* Where node N starts (scalars only; others have no token), else 1:1. */
static void s_node_pos(const s_yaml_t *y, struct fy_node *n, unsigned *line, unsigned *col)
{
    struct fy_token *t = n ? fy_node_get_scalar_token(n) : NULL;
    const struct fy_mark *mk = t ? fy_token_start_mark(t) : NULL;
    *line = 1;
    *col = 1;
    if (mk)
        slt_map__text_pos(y->yaml, y->len, mk->input_pos, line, col);
}

static void s_yerr(const s_yaml_t *y, struct fy_node *at, const slt_map_field_t *f,
                   const char *hint, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void s_yerr(const s_yaml_t *y, struct fy_node *at, const slt_map_field_t *f,
                   const char *hint, const char *fmt, ...)
{
    unsigned line, col;
    char label[SLT_MAP_NAME_MAX * SLT_MAP_TARGET_DEPTH + 32];
    va_list ap;
    s_node_pos(y, at, &line, &col);
    va_start(ap, fmt);
    slt_map__diag_vadd(y->cc->diag, line, col, slt_map__label(y->cc->m, f, label, sizeof label),
                       hint, fmt, ap);
    va_end(ap);
    y->cc->errors++;
}

static const char *s_kind_text(struct fy_node *n)
{
    if (!n)
        return "nothing";
    if (fy_node_is_alias(n))
        return "an alias";
    switch (fy_node_get_type(n)) {
    case FYNT_MAPPING: return "a YAML mapping";
    case FYNT_SEQUENCE: return "a YAML sequence";
    default: return "a scalar";
    }
}

/* The text of scalar N (not NUL-terminated; may be empty), or NULL when N
 * is not a plain scalar value (reported against KEY). */
static const char *s_scalar(const s_yaml_t *y, struct fy_node *key, struct fy_node *n,
                            const char *what, size_t *len)
{
    if (!n || fy_node_is_alias(n) || fy_node_get_type(n) != FYNT_SCALAR) {
        s_yerr(y, key, NULL, n && fy_node_is_alias(n) ? "anchors and aliases are not supported" : NULL,
               "%s must be text, got %s", what, s_kind_text(n));
        return NULL;
    }
    const char *s = fy_node_get_scalar(n, len);
    if (!s) {
        s = "";
        *len = 0;
    }
    return s;
}

static bool s_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > S_NAME_MAX)
        return false;
    for (size_t k = 0; k < n; k++) {
        char c = s[k];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* SUBJECT@VERSION */
static bool s_subject_ok(const char *s, size_t n)
{
    /* A YAML escape can put a NUL in a scalar: "a\0b@1" would check as a
     * and live on as a C string without its version. */
    if (memchr(s, '\0', n))
        return false;
    const char *at = memchr(s, '@', n);
    char subj[SLC_TOPIC_MAX + 1];
    if (!at || at == s || (size_t) (at - s) > SLC_TOPIC_MAX)
        return false;
    memcpy(subj, s, (size_t) (at - s));
    subj[at - s] = '\0';
    if (slc_topic_validate(subj, false) != 0)
        return false;
    size_t vlen = n - (size_t) (at - s) - 1;
    const char *v = at + 1;
    if (vlen == 0 || vlen > 10 || v[0] == '0')
        return false;
    long long ver = 0;
    for (size_t k = 0; k < vlen; k++) {
        if (v[k] < '0' || v[k] > '9')
            return false;
        ver = ver * 10 + (v[k] - '0');
    }
    return ver <= 2147483647;
}

/* Field name, from or to. */
static int s_head(const s_yaml_t *y, struct fy_node *key, struct fy_node *val,
                  const char *what, const char **out)
{
    size_t n;
    const char *s = s_scalar(y, key, val, what, &n);
    if (!s)
        return 0;
    bool ok = strcmp(what, "name") == 0 ? s_name_ok(s, n) : s_subject_ok(s, n);
    if (!ok) {
        if (strcmp(what, "name") == 0)
            s_yerr(y, n ? val : key, NULL, "1-128 characters of A-Z a-z 0-9 _ . -",
                   "bad mapping name '%.*s'", (int) (n > 64 ? 64 : n), s);
        else
            s_yerr(y, n ? val : key, NULL, "SUBJECT@VERSION, e.g. shop-a.order@1",
                   "bad %s '%.*s'", what, (int) (n > 64 ? 64 : n), s);
        return 0;
    }
    *out = slt_map__strndup(&y->cc->m->arena, s, n);
    return *out ? 0 : SL_ENOMEM;
}

/* A table value, read with the YAML 1.2 core schema when plain. *OUT is
 * NULL (reported) when the value cannot be one. */
static int s_table_value(const s_yaml_t *y, struct fy_node *n, cJSON **out)
{
    int rc = 0;
    size_t len;
    const char *s = fy_node_get_scalar(n, &len);
    char buf[64];
    *out = NULL;
    if (!s) {
        s = "";
        len = 0;
    }
    if (memchr(s, '\0', len)) {
        s_yerr(y, n, NULL, NULL, "a table value cannot contain a NUL character");
        goto fail;
    }
    if (fy_node_get_style(n) == FYNS_PLAIN && len < sizeof buf) {
        memcpy(buf, s, len);
        buf[len] = '\0';
        if (len == 0 || !strcmp(buf, "~") || !strcmp(buf, "null") || !strcmp(buf, "Null")
            || !strcmp(buf, "NULL"))
            *out = cJSON_CreateNull();
        else if (!strcmp(buf, "true") || !strcmp(buf, "True") || !strcmp(buf, "TRUE"))
            *out = cJSON_CreateTrue();
        else if (!strcmp(buf, "false") || !strcmp(buf, "False") || !strcmp(buf, "FALSE"))
            *out = cJSON_CreateFalse();
        else {
            size_t k = buf[0] == '-' || buf[0] == '+' ? 1 : 0, d0 = k;
            while (buf[k] >= '0' && buf[k] <= '9')
                k++;
            bool ints = k > d0 && buf[k] == '\0';
            char *end = NULL;
            if (ints) {
                errno = 0;
                long long v = strtoll(buf, &end, 10);
                if (errno != 0 || v > SLT_MAP_INT_LIMIT || v < -SLT_MAP_INT_LIMIT) {
                    s_yerr(y, n, NULL, "quote it to keep it as a string: '\"...\"'",
                           "table integer %s is out of range (integers are exact up to 2^53)",
                           buf);
                    goto fail;
                }
                *out = cJSON_CreateNumber((double) v);
            } else if (strspn(buf, "+-0123456789.eE") == len && strpbrk(buf, "0123456789")) {
                double d = strtod_l(buf, &end, y->cc->m->c_locale);
                if (end && *end == '\0' && isfinite(d))
                    *out = cJSON_CreateNumber(d);
            }
        }
    }
    if (!*out) {
        /* NUL-terminated for cJSON; the file is valid UTF-8. */
        const char *z = slt_map__strndup(&y->cc->m->arena, s, len);
        *out = z ? cJSON_CreateString(z) : NULL;
    }
    if (!*out)
        rc = SL_ENOMEM;
fail:
    return rc;
}

static int s_entry_cmp(const void *a, const void *b)
{
    const slt_map_entry_t *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, m);
    return c ? c : x->len < y->len ? -1 : x->len > y->len;
}

static int s_key_cmp(const char *key, size_t len, const slt_map_entry_t *e)
{
    size_t m = len < e->len ? len : e->len;
    int c = memcmp(key, e->key, m);
    return c ? c : len < e->len ? -1 : len > e->len;
}

const cJSON *slt_map__table_get(const slt_map_table_t *t, const char *key, size_t len)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = s_key_cmp(key, len, &t->entries[mid]);
        if (c == 0)
            return t->entries[mid].value;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const slt_map_table_t *slt_map__table_find(const slt_map_t *m, const char *name, size_t len)
{
    for (size_t k = 0; k < m->ntabs; k++)
        if (m->tabs[k].namelen == len && memcmp(m->tabs[k].name, name, len) == 0)
            return &m->tabs[k];
    return NULL;
}

/* TAB's CNT entries ES (arena), sorted by key for lookups, and the types
 * of their values. The YAML reader refused duplicate keys (it compares
 * values, so 1 and "1" are the same key), so keys are unique. */
static void s_table_index(slt_map_table_t *tab, slt_map_entry_t *es, size_t cnt)
{
    if (cnt)
        qsort(es, cnt, sizeof *es, s_entry_cmp);
    for (size_t k = 0; k < cnt; k++) {
        switch (es[k].value->type & 0xFF) {
        case cJSON_String: tab->types |= SLT_MAP_T_STRING; break;
        case cJSON_Number:
            tab->types |= slt_doc_int(es[k].value, NULL) ? SLT_MAP_T_INTEGER : SLT_MAP_T_NUMBER;
            break;
        case cJSON_True: case cJSON_False: tab->types |= SLT_MAP_T_BOOLEAN; break;
        default: tab->types |= SLT_MAP_T_NULL; break;
        }
    }
    tab->entries = es;
    tab->n = cnt;
}

static int s_tables(const s_yaml_t *y, struct fy_node *key, struct fy_node *val)
{
    int rc = 0;
    slt_map_t *m = y->cc->m;
    struct fy_node_pair *p;
    void *it = NULL;
    size_t entries = 0, cnt = 0;
    cJSON *table = NULL, *v = NULL;
    slt_map_entry_t *es = NULL;
    if (!val || fy_node_is_alias(val) || fy_node_get_type(val) != FYNT_MAPPING) {
        s_yerr(y, key, NULL, "e.g. tables: {countries: {DE: Germany}}", "tables must be a YAML mapping, got %s",
               s_kind_text(val));
        goto fail;
    }
    while ((p = fy_node_mapping_iterate(val, &it))) {
        struct fy_node *tk = fy_node_pair_key(p), *tv = fy_node_pair_value(p);
        size_t n;
        const char *name = s_scalar(y, key, tk, "a table name", &n);
        if (!name)
            continue;
        bool ident = n > 0 && n <= 64 && !(name[0] >= '0' && name[0] <= '9');
        for (size_t k = 0; k < n && ident; k++)
            ident = (name[k] >= 'a' && name[k] <= 'z') || (name[k] >= 'A' && name[k] <= 'Z')
                    || (name[k] >= '0' && name[k] <= '9') || name[k] == '_';
        if (!ident) {
            s_yerr(y, tk, NULL, "1-64 characters of A-Z a-z 0-9 _, not starting with a digit",
                   "bad table name '%.*s'", (int) (n > 64 ? 64 : n), name);
            continue;
        }
        if (m->ntabs == SLT_MAP_TABLES_MAX) {
            s_yerr(y, tk, NULL, NULL, "too many tables (limit %d)", SLT_MAP_TABLES_MAX);
            break;
        }
        if (!tv || fy_node_is_alias(tv) || fy_node_get_type(tv) != FYNT_MAPPING) {
            s_yerr(y, tk, NULL, "KEY: VALUE pairs", "table '%.*s' must be a YAML mapping, got %s",
                   (int) n, name, s_kind_text(tv));
            continue;
        }
        slt_map_table_t *tab = &m->tabs[m->ntabs];
        memset(tab, 0, sizeof *tab);
        tab->name = slt_map__strndup(&m->arena, name, n);
        tab->namelen = n;
        table = cJSON_CreateObject();
        /* At most one entry per YAML pair; the arena keeps them. */
        int pairs = fy_node_mapping_item_count(tv);
        es = slt_map__alloc(&m->arena, (pairs > 0 ? (size_t) pairs : 1) * sizeof *es);
        if (!tab->name || !table || !es) {
            rc = SL_ENOMEM;
            goto fail;
        }
        cnt = 0;
        struct fy_node_pair *e;
        void *eit = NULL;
        while ((e = fy_node_mapping_iterate(tv, &eit))) {
            struct fy_node *ek = fy_node_pair_key(e), *ev = fy_node_pair_value(e);
            size_t kl;
            const char *ks = s_scalar(y, tk, ek, "a table key", &kl);
            if (!ks)
                continue;
            if (!ev || fy_node_is_alias(ev) || fy_node_get_type(ev) != FYNT_SCALAR) {
                s_yerr(y, ek, NULL, "table values are strings, numbers, booleans or null",
                       "the value of '%.*s' in table '%.*s' must be a scalar, got %s",
                       (int) (kl > 64 ? 64 : kl), ks, (int) n, name, s_kind_text(ev));
                continue;
            }
            if (memchr(ks, '\0', kl)) {
                s_yerr(y, ek, NULL, NULL, "a table key cannot contain a NUL character");
                continue;
            }
            if (++entries > SLT_MAP_ENTRIES_MAX) {
                s_yerr(y, ek, NULL, NULL, "too many table entries (limit %d)", SLT_MAP_ENTRIES_MAX);
                goto fail;
            }
            rc = s_table_value(y, ev, &v);
            if (rc != 0)
                goto fail;
            if (!v)
                continue;           /* reported */
            const char *kz = slt_map__strndup(&m->arena, ks, kl);
            if (!kz || !cJSON_AddItemToObject(table, kz, v)) {
                rc = SL_ENOMEM;
                goto fail;
            }
            es[cnt++] = (slt_map_entry_t) { kz, kl, v };
            v = NULL;
        }
        s_table_index(tab, es, cnt);
        if (!cJSON_AddItemToObject(m->tables, tab->name, table)) {
            rc = SL_ENOMEM;
            goto fail;
        }
        table = NULL;
        m->ntabs++;
    }
fail:
    cJSON_Delete(v);
    cJSON_Delete(table);
    return rc;
}

/* Where the text of scalar N sits, so that offsets in it become columns:
 * exact when the source bytes are the value's bytes (plain and quoted
 * scalars without escapes or folding) or for a literal block (each line
 * shifted by the block's indentation); otherwise the scalar's start. */
static void s_loc(const s_yaml_t *y, struct fy_node *n, const char *text, size_t tl,
                  slt_map_loc_t *loc)
{
    struct fy_token *t = fy_node_get_scalar_token(n);
    const struct fy_mark *sm = t ? fy_token_start_mark(t) : NULL;
    const struct fy_mark *em = t ? fy_token_end_mark(t) : NULL;
    memset(loc, 0, sizeof *loc);
    loc->line = loc->col = loc->col_next = 1;
    if (!sm || !em || sm->input_pos > y->len || em->input_pos > y->len)
        return;
    slt_map__text_pos(y->yaml, y->len, sm->input_pos, &loc->line, &loc->col);
    enum fy_node_style st = fy_node_get_style(n);
    if (st == FYNS_LITERAL) {
        size_t ls = sm->input_pos;
        while (ls > 0 && y->yaml[ls - 1] != '\n')
            ls--;
        size_t ind = 0;
        while (ls + ind < y->len && y->yaml[ls + ind] == ' ')
            ind++;
        loc->exact = true;
        loc->col = loc->col_next = (unsigned) ind + 1;
        return;
    }
    size_t rl = em->input_pos >= sm->input_pos ? em->input_pos - sm->input_pos : 0;
    if ((st == FYNS_PLAIN || st == FYNS_SINGLE_QUOTED || st == FYNS_DOUBLE_QUOTED)
        && rl == tl && memcmp(y->yaml + sm->input_pos, text, tl) == 0) {
        loc->exact = true;
        loc->col_next = 1;
    }
}

/* Compile the expression VAL (the value of KEY) into F. */
static int s_expr(const s_yaml_t *y, struct fy_node *key, struct fy_node *val,
                  slt_map_field_t *f, unsigned want)
{
    int rc = 0;
    slt_map_cc_t *cc = y->cc;
    size_t tl = 0;
    const char *text = NULL;
    if (!val) {
        s_yerr(y, key, f, NULL, "empty expression");
        goto fail;
    }
    if (fy_node_is_alias(val) || fy_node_get_type(val) != FYNT_SCALAR) {
        const char *hint = NULL;
        if (!fy_node_is_alias(val) && fy_node_get_type(val) == FYNT_MAPPING)
            hint = "YAML read '{' or 'key: value' as a mapping: for a nested target write "
                   "'customer.email: EXPR'; an object literal goes in quotes: '{a: 1}'";
        else if (!fy_node_is_alias(val) && fy_node_get_type(val) == FYNT_SEQUENCE)
            hint = "YAML read '[' or '- ' as a sequence: an array literal goes in quotes: '[1, 2]'";
        else if (fy_node_is_alias(val))
            hint = "anchors and aliases are not supported";
        s_yerr(y, key, f, hint, "expected an expression, got %s", s_kind_text(val));
        goto fail;
    }
    text = fy_node_get_scalar(val, &tl);
    if (!text || tl == 0 || !fy_node_get_scalar_token(val)) {
        s_yerr(y, key, f, NULL, "empty expression");
        goto fail;
    }
    if (tl > SLT_MAP_EXPR_MAX) {
        s_yerr(y, val, f, "split it over several fields", "expression too long "
               "(%zu bytes, limit %u)", tl, SLT_MAP_EXPR_MAX);
        goto fail;
    }
    f->text = slt_map__strndup(&cc->m->arena, text, tl);
    if (!f->text) {
        rc = SL_ENOMEM;
        goto fail;
    }
    f->textlen = tl;
    s_loc(y, val, text, tl, &f->loc);
    cc->field = f;
    enum fy_node_style st = fy_node_get_style(val);
    cc->quoted = st == FYNS_SINGLE_QUOTED || st == FYNS_DOUBLE_QUOTED;
    slt_map_node_t *root = NULL;
    rc = slt_map__parse(cc, f->text, tl, &root);
    if (rc == 0)
        rc = slt_map__check(cc, root, want);
    if (rc == 0)
        f->expr = root;
    if (rc == SL_EINVAL)
        rc = 0;                     /* reported; go on with the next field */
fail:
    cc->field = NULL;
    return rc;
}

/* Split target KEY into its names; report bad ones. */
static int s_target(const s_yaml_t *y, struct fy_node *key, slt_map_field_t *f)
{
    int rc = 0;
    size_t n;
    const char *s = s_scalar(y, key, key, "a target", &n);
    if (!s)
        goto fail;
    f->target = slt_map__strndup(&y->cc->m->arena, s, n);
    if (!f->target) {
        rc = SL_ENOMEM;
        goto fail;
    }
    size_t segs = 1;
    for (size_t k = 0; k < n; k++)
        segs += s[k] == '.';
    if (segs > SLT_MAP_TARGET_DEPTH) {
        s_yerr(y, key, f, NULL, "target path too deep (%zu names, limit %d)",
               segs, SLT_MAP_TARGET_DEPTH);
        goto fail;
    }
    f->segs = slt_map__alloc(&y->cc->m->arena, segs * sizeof *f->segs);
    f->seglens = slt_map__alloc(&y->cc->m->arena, segs * sizeof *f->seglens);
    if (!f->segs || !f->seglens) {
        rc = SL_ENOMEM;
        goto fail;
    }
    if (memchr(s, '\0', n)) {
        s_yerr(y, key, f, NULL, "a target cannot contain a NUL character");
        goto fail;
    }
    size_t start = 0, k = 0;
    for (size_t j = 0; j <= n; j++) {
        if (j < n && s[j] != '.')
            continue;
        if (j == start || j - start > SLT_MAP_NAME_MAX) {
            s_yerr(y, key, f, "a target is names separated by single dots: customer.email",
                   j == start ? "empty name in target '%.*s'" : "name too long in target '%.*s'",
                   (int) (n > 64 ? 64 : n), s);
            goto fail;
        }
        /* NUL-terminated: they become keys of the output. */
        f->segs[k] = slt_map__strndup(&y->cc->m->arena, s + start, j - start);
        if (!f->segs[k]) {
            rc = SL_ENOMEM;
            goto fail;
        }
        f->seglens[k] = j - start;
        k++;
        start = j + 1;
    }
    f->nsegs = k;
fail:
    return rc;
}

/* One target may not be another's parent, nor appear twice. */
static void s_conflicts(const s_yaml_t *y, struct fy_node *key, slt_map_field_t *fields, size_t n)
{
    slt_map_field_t *f = &fields[n];
    for (size_t k = 0; k < n; k++) {
        const slt_map_field_t *g = &fields[k];
        if (!g->nsegs)
            continue;
        size_t m = f->nsegs < g->nsegs ? f->nsegs : g->nsegs, j = 0;
        while (j < m && f->seglens[j] == g->seglens[j]
               && memcmp(f->segs[j], g->segs[j], f->seglens[j]) == 0)
            j++;
        if (j < m)
            continue;
        if (f->nsegs == g->nsegs)
            s_yerr(y, key, f, NULL, "target '%s' is assigned twice (line %u)",
                   f->target, g->loc.line);
        else
            s_yerr(y, key, f, "a field is either a value or an object of other fields",
                   "target '%s' conflicts with '%s' (line %u)", f->target, g->target, g->loc.line);
        f->nsegs = 0;
        return;
    }
}

/* The objects of the output that hold targets, and for each field the one
 * its value goes into. A field shares the objects of its longest common
 * prefix with an earlier field, so each is made once, and evaluation
 * never searches the output for a parent. */
static int s_groups(slt_map_t *m)
{
    int rc = 0;
    size_t cap = 1;
    for (size_t k = 0; k < m->nfields; k++)
        cap += m->fields[k].nsegs > 1 ? m->fields[k].nsegs - 1 : 0;
    m->groups = slt_map__alloc(&m->arena, cap * sizeof *m->groups);
    if (!m->groups) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (size_t k = 0; k < m->nfields; k++) {
        slt_map_field_t *f = &m->fields[k];
        const slt_map_field_t *from = NULL;
        size_t best = 0;
        f->group = -1;
        if (f->nsegs < 2)
            continue;
        f->gids = slt_map__alloc(&m->arena, (f->nsegs - 1) * sizeof *f->gids);
        if (!f->gids) {
            rc = SL_ENOMEM;
            goto fail;
        }
        for (size_t j = 0; j < k; j++) {
            const slt_map_field_t *g = &m->fields[j];
            size_t lim = g->nsegs < f->nsegs ? g->nsegs : f->nsegs, c = 0;
            lim = lim ? lim - 1 : 0;
            while (c < lim && f->seglens[c] == g->seglens[c]
                   && memcmp(f->segs[c], g->segs[c], f->seglens[c]) == 0)
                c++;
            if (c > best) {
                best = c;
                from = g;
            }
        }
        for (size_t c = 0; c + 1 < f->nsegs; c++) {
            if (c < best) {
                f->gids[c] = from->gids[c];
                continue;
            }
            m->groups[m->ngroups].key = f->segs[c];
            m->groups[m->ngroups].parent = c ? f->gids[c - 1] : -1;
            f->gids[c] = (int) m->ngroups++;
        }
        f->group = f->gids[f->nsegs - 2];
    }
fail:
    return rc;
}

static int s_map(const s_yaml_t *y, struct fy_node *key, struct fy_node *val)
{
    int rc = 0;
    slt_map_t *m = y->cc->m;
    struct fy_node_pair *p;
    void *it = NULL;
    if (!val || fy_node_is_alias(val) || fy_node_get_type(val) != FYNT_MAPPING) {
        s_yerr(y, key, NULL, "map: holds TARGET: EXPRESSION pairs", "map must be a YAML mapping, got %s",
               s_kind_text(val));
        goto fail;
    }
    int cnt = fy_node_mapping_item_count(val);
    if (cnt <= 0) {
        s_yerr(y, key, NULL, "map: holds TARGET: EXPRESSION pairs", "map has no fields");
        goto fail;
    }
    if (cnt > SLT_MAP_FIELDS_MAX) {
        s_yerr(y, key, NULL, NULL, "too many fields (%d, limit %d)", cnt, SLT_MAP_FIELDS_MAX);
        goto fail;
    }
    m->fields = slt_map__alloc(&m->arena, (size_t) cnt * sizeof *m->fields);
    if (!m->fields) {
        rc = SL_ENOMEM;
        goto fail;
    }
    while ((p = fy_node_mapping_iterate(val, &it)) && (int) m->nfields < cnt) {
        struct fy_node *tk = fy_node_pair_key(p), *tv = fy_node_pair_value(p);
        slt_map_field_t *f = &m->fields[m->nfields];
        rc = s_target(y, tk, f);
        if (rc != 0)
            goto fail;
        if (!f->target)
            continue;               /* reported */
        s_node_pos(y, tk, &f->loc.line, &f->loc.col);
        s_conflicts(y, tk, m->fields, m->nfields);
        rc = s_expr(y, tk, tv, f, SLT_MAP_T_ANY);
        if (rc != 0)
            goto fail;
        m->nfields++;
    }
    rc = s_groups(m);
fail:
    return rc;
}

/* ---- compile */

static void s_fy_quiet(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void) diag;
    (void) user;
    (void) buf;
    (void) len;
}

static const char *const s_keys[] = { "name", "from", "to", "tables", "map", "drop_if" };
enum { S_NAME, S_FROM, S_TO, S_TABLES, S_MAP, S_DROP, S_NKEYS };

/* The top-level keys into KEYS/VALS; unknown ones reported. */
static void s_top(const s_yaml_t *y, struct fy_node *root, struct fy_node **keys,
                  struct fy_node **vals)
{
    struct fy_node_pair *p;
    void *it = NULL;
    while ((p = fy_node_mapping_iterate(root, &it))) {
        struct fy_node *k = fy_node_pair_key(p);
        size_t n;
        const char *s = s_scalar(y, k, k, "a key", &n);
        if (!s)
            continue;
        size_t j = 0;
        while (j < S_NKEYS && !(strlen(s_keys[j]) == n && memcmp(s_keys[j], s, n) == 0))
            j++;
        if (j < S_NKEYS) {
            keys[j] = k;
            vals[j] = fy_node_pair_value(p);
            continue;
        }
        const char *dym = slt_map__suggest(s, n, s_keys, S_NKEYS);
        char msg[64] = "";
        if (dym)
            snprintf(msg, sizeof msg, " (did you mean '%s'?)", dym);
        s_yerr(y, k, NULL, "the keys are name, from, to, tables, map and drop_if",
               "unknown key '%.*s'%s", (int) (n > 64 ? 64 : n), s, msg);
    }
}

/* The YAML errors libfyaml collected, as ours. */
static void s_fy_errors(const s_yaml_t *y, struct fy_diag *fd)
{
    struct fy_diag_error *e;
    void *it = NULL;
    bool any = false;
    while ((e = fy_diag_errors_iterate(fd, &it))) {
        unsigned line = e->line > 0 ? (unsigned) e->line : 1;
        unsigned col = e->column > 0 ? (unsigned) e->column : 1;
        slt_map__diag_add(y->cc->diag, line, col, NULL, NULL, "YAML: %s", e->msg ? e->msg : "syntax error");
        y->cc->errors++;
        any = true;
    }
    if (!any) {
        slt_map__diag_add(y->cc->diag, 1, 1, NULL, NULL, "YAML: not a valid YAML document");
        y->cc->errors++;
    }
}

int slt_map_compile(const char *yaml, size_t len, const char *origin,
                    slt_map_types_fn *types, void *arg, slt_map_t **out,
                    char *err, size_t errlen)
{
    int rc = 0;
    slt_map_t *m = NULL;
    struct fy_diag *fd = NULL;
    struct fy_document *doc = NULL;
    slt_map_diag_t diag = { .n = 0 };
    slt_map_cc_t cc = { .types = types, .arg = arg, .diag = &diag };
    s_yaml_t y = { .cc = &cc, .yaml = yaml, .len = len };
    struct fy_node *keys[S_NKEYS] = { 0 }, *vals[S_NKEYS] = { 0 };
    assert(yaml || len == 0);
    assert(out);
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!origin)
        origin = "<mapping>";
    if (len > SLT_MAP_YAML_MAX) {
        slc_errf(err, errlen, "%s: mapping file too large (%zu bytes, limit %u)", origin, len,
                 SLT_MAP_YAML_MAX);
        rc = SL_ETOOBIG;
        goto fail;
    }
    if (sodium_init() < 0) {
        slc_errf(err, errlen, "%s: libsodium cannot start", origin);
        rc = SL_ESYS;
        goto fail;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        rc = SL_ENOMEM;
        goto fail;
    }
    m->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
    m->tables = cJSON_CreateObject();
    m->origin = slt_map__strndup(&m->arena, origin, strlen(origin));
    m->name = m->from = m->to = "";
    m->drop.target = "drop_if";
    if (!m->c_locale || !m->tables || !m->origin) {
        rc = SL_ENOMEM;
        goto fail;
    }
    cc.m = m;
    size_t bad = s_utf8_bad(yaml, len);
    if (bad < len) {
        unsigned line, col;
        slt_map__text_pos(yaml, len, bad, &line, &col);
        slt_map__diag_add(&diag, line, col, NULL, NULL, "the file is not valid UTF-8 (byte 0x%02x)",
                   (unsigned) (unsigned char) yaml[bad]);
        goto fail;
    }
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = s_fy_quiet;
    dcfg.colorize = false;
    fd = fy_diag_create(&dcfg);
    if (!fd) {
        rc = SL_ENOMEM;
        goto fail;
    }
    fy_diag_set_collect_errors(fd, true);
    struct fy_parse_cfg pcfg = {
        .flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE,
        .diag = fd,
    };
    doc = len ? fy_document_build_from_string(&pcfg, yaml, len) : NULL;
    if (!doc && len) {
        s_fy_errors(&y, fd);
        goto fail;
    }
    struct fy_node *root = doc ? fy_document_root(doc) : NULL;
    if (!root || fy_node_is_alias(root) || fy_node_get_type(root) != FYNT_MAPPING) {
        slt_map__diag_add(&diag, 1, 1, NULL, "name:, from:, to:, map: and optionally tables: and drop_if:",
                   "a mapping file is a YAML mapping, got %s", s_kind_text(root));
        goto fail;
    }
    s_top(&y, root, keys, vals);
    const char **heads[] = { &m->name, &m->from, &m->to };
    for (int k = S_NAME; k <= S_TO; k++) {
        if (!keys[k]) {
            slt_map__diag_add(&diag, 0, 0, NULL, NULL, "missing '%s:'", s_keys[k]);
            continue;
        }
        rc = s_head(&y, keys[k], vals[k], s_keys[k], heads[k]);
        if (rc != 0)
            goto fail;
    }
    if (keys[S_TABLES]) {
        rc = s_tables(&y, keys[S_TABLES], vals[S_TABLES]);
        if (rc != 0)
            goto fail;
    }
    if (!keys[S_MAP])
        slt_map__diag_add(&diag, 0, 0, NULL, "map: holds TARGET: EXPRESSION pairs", "missing 'map:'");
    else
        rc = s_map(&y, keys[S_MAP], vals[S_MAP]);
    if (rc == 0 && keys[S_DROP]) {
        s_node_pos(&y, keys[S_DROP], &m->drop.loc.line, &m->drop.loc.col);
        rc = s_expr(&y, keys[S_DROP], vals[S_DROP], &m->drop, SLT_MAP_T_BOOLEAN);
    }
fail:
    if ((rc == 0 || rc == cc.cb_rc) && cc.cb_rc != 0) {
        slc_errf(err, errlen, "%s: the source schema's types callback failed: %s", origin,
                 slc_strerror(cc.cb_rc));
        rc = cc.cb_rc;
    } else if (rc == 0 && (diag.n || diag.more || diag.oom)) {
        slt_map__render(&diag, m, yaml, len, err, errlen);
        rc = SL_EINVAL;
    } else if (rc == SL_ENOMEM) {
        slc_errf(err, errlen, "%s: out of memory", origin);
    }
    slt_map__diag_free(&diag);
    if (doc)
        fy_document_destroy(doc);
    if (fd)
        fy_diag_destroy(fd);
    if (rc == 0)
        *out = m;
    else
        slt_map_destroy(&m);
    return rc;
}

void slt_map_destroy(slt_map_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    slt_map_t *m = *self_p;
    cJSON_Delete(m->tables);
    if (m->c_locale)
        freelocale(m->c_locale);
    slt_map__arena_free(&m->arena);
    free(m);
    *self_p = NULL;
}

const char *slt_map_name(const slt_map_t *self)
{
    return self->name;
}

const char *slt_map_from(const slt_map_t *self)
{
    return self->from;
}

const char *slt_map_to(const slt_map_t *self)
{
    return self->to;
}

/* ---- evaluate */

/* Output object G (-1: RES itself), created and put into its parent when
 * the first field that goes into it is placed: keys keep the order of the
 * targets. OBJS[G] remembers it; recursion is at most SLT_MAP_TARGET_DEPTH. */
static int s_group(const slt_map_t *m, cJSON *res, cJSON **objs, int g, cJSON **out)
{
    int rc = 0;
    cJSON *parent = NULL, *o = NULL;
    *out = g < 0 ? res : objs[g];
    if (*out)
        goto fail;
    rc = s_group(m, res, objs, m->groups[g].parent, &parent);
    if (rc != 0)
        goto fail;
    o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToObject(parent, m->groups[g].key, o)) {
        rc = SL_ENOMEM;
        goto fail;
    }
    *out = objs[g] = o;
    o = NULL;
fail:
    cJSON_Delete(o);
    return rc;
}

int slt_map_eval(const slt_map_t *self, const cJSON *doc, const cJSON *meta,
                 cJSON **out, bool *dropped, char *err, size_t errlen)
{
    int rc = 0;
    cJSON *res = NULL, *j = NULL, *parent = NULL;
    cJSON *objs_small[32], **objs = objs_small;
    slt_map_val_t v = { 0 };
    slt_map_ctx_t cx;
    assert(self && doc && out && dropped);
    /* Field by field: cx.vars (3 KiB) is written by a lambda before any
     * parameter is read, and clearing it costs a tenth of a small
     * mapping's run. */
    cx.m = self;
    cx.field = NULL;
    cx.doc = doc;
    cx.meta = meta;
    cx.keep = NULL;
    cx.steps = 0;
    cx.scanned = 0;
    cx.bytes = 0;
    cx.err = err;
    cx.errlen = errlen;
    *out = NULL;
    *dropped = false;
    if (err && errlen)
        err[0] = '\0';
    if (self->drop.expr) {
        cx.field = &self->drop;
        rc = slt_map__eval(&cx, self->drop.expr, &v);
        if (rc != 0)
            goto fail;
        if (v.t == SLC_V_MISSING) {
            rc = slt_map__missing(&cx, self->drop.expr);
            goto fail;
        }
        if (v.t != SLC_V_BOOL) {
            rc = slt_map__fail(&cx, self->drop.expr, "drop_if must be a boolean, got %s %s",
                               v.t == SLC_V_ARR || v.t == SLC_V_OBJ ? "an" : "a",
                               slt_map__val_type(&v));
            goto fail;
        }
        if (v.u.b) {
            *dropped = true;
            goto fail;
        }
        slt_map__val_release(&v);
    }
    if (self->ngroups > sizeof objs_small / sizeof objs_small[0])
        objs = calloc(self->ngroups, sizeof *objs);
    else
        memset(objs, 0, self->ngroups * sizeof *objs);
    res = cJSON_CreateObject();
    if (!objs || !res) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (size_t k = 0; k < self->nfields; k++) {
        const slt_map_field_t *f = &self->fields[k];
        cx.field = f;
        rc = slt_map__eval(&cx, f->expr, &v);
        if (rc == 0)
            rc = slt_map__to_json(&cx, f->expr, &v, &j);
        slt_map__val_release(&v);
        parent = f->group < 0 ? res : objs[f->group];
        if (rc == 0 && !parent)
            rc = s_group(self, res, objs, f->group, &parent);
        if (rc != 0)
            goto fail;
        /* The compiler ruled out a target assigned twice or that is
         * another's parent: the key is new in PARENT. */
        if (!cJSON_AddItemToObject(parent, f->segs[f->nsegs - 1], j)) {
            rc = SL_ENOMEM;
            goto fail;
        }
        j = NULL;
    }
    *out = res;
    res = NULL;
fail:
    if (rc == SL_ENOMEM && err && errlen) {
        char where[320];
        slt_map__where(meta, where, sizeof where);
        slc_errf(err, errlen, "mapping '%s': out of memory%s", self->name, where);
    }
    slt_map__val_release(&v);
    cJSON_Delete(j);
    cJSON_Delete(res);
    cJSON_Delete(cx.keep);
    if (objs != objs_small)
        free(objs);
    return rc;
}
