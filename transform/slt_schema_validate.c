/*  slt_schema_validate - check a document against a compiled schema
 *  (slt_schema_validate) and the one-reason check the compatibility test
 *  uses on enum and const values (slt_schema__valid).
 *
 *  Validation is a walk over the document that allocates nothing (a
 *  pattern's match data is the thread's, made once) and builds a JSON
 *  pointer only when it reports (from a stack of keys and indexes). Any
 *  thread; reads the schema only. Formats and patterns are matched by
 *  slt_schema_format.c.  */
#include "slt_schema_int.h"
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define S_SEEN_MAX 4096         /* property entries s_check_required marks */

/* Member KEY of object OBJ, or NULL; HINT (a member of OBJ, or NULL) is
 * tried first. */
static const cJSON *s_member(const cJSON *obj, const cJSON *hint,
                             const char *key)
{
    if (hint && !strcmp(hint->string, key))
        return hint;
    for (const cJSON *m = obj->child; m; m = m->next)
        if (!strcmp(m->string, key))
            return m;
    return NULL;
}

/* JSON equality where 1 and 1.0 are the same number (JSON Schema's rule);
 * numbers are equal only when their doubles are. A is the schema's value
 * (enum, const), whose keys are unique (slt_doc_parse refuses duplicates):
 * so B with as many members, each of A's found in B and equal, is equal.
 * Not cJSON_Compare: it compares every pair of object members twice, so
 * its time doubles with each level of nesting, and it takes numbers one
 * rounding error apart for equal. Here each member of A is compared once,
 * found at once when B lists the keys in A's order, else by a walk of B,
 * which has only as many members as A: time is bounded by A, the
 * schema's, whatever B is. */
static bool s_equal(const cJSON *a, const cJSON *b)
{
    unsigned ka = slt_schema__kind(a), kb = slt_schema__kind(b);
    const unsigned num = SLC_JSON_INTEGER | SLC_JSON_NUMBER;
    const cJSON *x, *y;
    if ((ka & num) && (kb & num))
        return a->valuedouble == b->valuedouble;
    if (ka != kb)
        return false;
    switch (ka) {
    case SLC_JSON_STRING:
        return strcmp(a->valuestring, b->valuestring) == 0;
    case SLC_JSON_BOOLEAN:
        return (a->type & 0xFF) == (b->type & 0xFF);
    case SLC_JSON_ARRAY:
        for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
            if (!s_equal(x, y))
                return false;
        return !x && !y;
    case SLC_JSON_OBJECT:
        for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
            ;
        if (x || y)
            return false;
        y = b->child;
        cJSON_ArrayForEach(x, a) {
            y = s_member(b, y, x->string);
            if (!y || !s_equal(x, y))
                return false;
            y = y->next;
        }
        return true;
    default:
        return ka == SLC_JSON_NULL;
    }
}

static size_t s_utf8_count(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char) s[i] & 0xC0) != 0x80;
    return n;
}

/* ------------------------------------------------------------- validation */

typedef struct {
    const char *key;        /* member name, or NULL for an array element */
    size_t index;           /* the element's index */
} s_frame_t;

typedef struct {
    slt_schema_error_t *errs;   /* where reasons go (borrowed) */
    size_t max;                 /* room in errs */
    size_t n;                   /* reasons written */
    bool failed;                /* some check failed */
    bool stop;                  /* enough: unwind */
    size_t depth;               /* frames in use */
    s_frame_t frames[SLT_SCHEMA_DOC_DEPTH_MAX]; /* the path to the value */
} s_vc_t;

static void s_verr(s_vc_t *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record a reason at the current value. */
static void s_verr(s_vc_t *v, const char *fmt, ...)
{
    v->failed = true;
    if (v->n < v->max) {
        slt_schema_error_t *e = &v->errs[v->n++];
        slt_schema_path_t p;
        char idx[24];
        p.len = 0;
        p.buf[0] = '\0';
        for (size_t i = 0; i < v->depth; i++) {
            if (v->frames[i].key)
                slt_schema__path_push(&p, v->frames[i].key);
            else {
                snprintf(idx, sizeof idx, "%zu", v->frames[i].index);
                slt_schema__path_push(&p, idx);
            }
        }
        memcpy(e->pointer, p.buf, p.len + 1);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->rule, sizeof e->rule, fmt, ap);
        va_end(ap);
    }
    if (v->n >= v->max)
        v->stop = true;
}

static void s_check(s_vc_t *v, const slt_schema_node_t *n, const cJSON *val);

/* Make member KEY (or element INDEX when KEY is NULL) the current value;
 * the caller pops it (depth--). False, reported, when the document is too
 * deep. */
static bool s_push(s_vc_t *v, const char *key, size_t index)
{
    if (v->depth == SLT_SCHEMA_DOC_DEPTH_MAX) {
        s_verr(v, "nested deeper than %d levels", SLT_SCHEMA_DOC_DEPTH_MAX);
        return false;
    }
    v->frames[v->depth].key = key;
    v->frames[v->depth].index = index;
    v->depth++;
    return true;
}

/* Does S contain a match of N's pattern? A value the pattern cannot be
 * checked on within its limits (or not UTF-8) fails, saying why. */
static void s_check_pattern(s_vc_t *v, const slt_schema_node_t *n, const char *s)
{
    char why[SLT_SCHEMA_RULE_MAX];
    if (slt_schema__pattern_match(n, s, why, sizeof why))
        s_verr(v, "%s", why);
}

static void s_check_string(s_vc_t *v, const slt_schema_node_t *n, const cJSON *val)
{
    const char *s = val->valuestring;
    bool counted = n->min_len || n->max_len != SIZE_MAX;
    size_t len = counted || n->format ? strlen(s) : 0;
    if (counted) {
        size_t cps = s_utf8_count(s, len);
        if (cps < n->min_len)
            s_verr(v, "must be at least %zu character%s long", n->min_len,
                   n->min_len == 1 ? "" : "s");
        else if (cps > n->max_len)
            s_verr(v, "must be at most %zu character%s long", n->max_len,
                   n->max_len == 1 ? "" : "s");
        if (v->stop)
            return;
    }
    if (n->re) {
        s_check_pattern(v, n, s);
        if (v->stop)
            return;
    }
    if (n->format && !slt_schema__format_ok(n->format, s, len))
        s_verr(v, "is not a valid %s%s", slt_schema__formats[n->format],
               n->format == SLT_SCHEMA_FMT_DATETIME ? " (RFC 3339)" : "");
}

static void s_check_number(s_vc_t *v, const slt_schema_node_t *n, double x)
{
    if (n->lo.set && (x < n->lo.value || (n->lo.exclusive && x == n->lo.value))) {
        s_verr(v, "must be %s", n->lo.text);
        if (v->stop)
            return;
    }
    if (n->hi.set && (x > n->hi.value || (n->hi.exclusive && x == n->hi.value)))
        s_verr(v, "must be %s", n->hi.text);
}

static void s_check_array(s_vc_t *v, const slt_schema_node_t *n, const cJSON *arr)
{
    const cJSON *el;
    size_t i = 0;
    if (n->min_items || n->max_items != SIZE_MAX) {
        /* cJSON keeps no size: count, once, only when there are bounds. */
        size_t size = 0;
        for (el = arr->child; el; el = el->next)
            size++;
        if (size < n->min_items)
            s_verr(v, "must have at least %zu item%s", n->min_items,
                   n->min_items == 1 ? "" : "s");
        else if (size > n->max_items)
            s_verr(v, "must have at most %zu item%s", n->max_items,
                   n->max_items == 1 ? "" : "s");
    }
    if (!n->items)
        return;
    for (el = arr->child; el && !v->stop; el = el->next, i++)
        if (s_push(v, NULL, i)) {
            s_check(v, n->items, el);
            v->depth--;
        }
}

/* Report the required properties of N that OBJ lacks, in name order.
 * cJSON finds a member by walking the object, so one walk over OBJ marks
 * the entries it has in a bitmap on the stack instead of a walk per
 * required name. A node with more than S_SEEN_MAX entries does walk per
 * name (time: its required names times OBJ's members). Never inlined, so
 * that the bitmap is not on the stack of every level of s_check. */
static __attribute__((noinline)) void
s_check_required(s_vc_t *v, const slt_schema_node_t *n, const cJSON *obj)
{
    uint64_t seen[S_SEEN_MAX / 64];
    const cJSON *m;
    size_t found = 0;
    if (n->nprops > S_SEEN_MAX) {
        for (size_t i = 0; i < n->nprops && !v->stop; i++)
            if (n->props[i].required
                && !cJSON_GetObjectItemCaseSensitive(obj, n->props[i].name))
                s_verr(v, "required property \"%s\" is missing", n->props[i].name);
        return;
    }
    memset(seen, 0, (n->nprops + 63) / 64 * sizeof seen[0]);
    cJSON_ArrayForEach(m, obj) {
        const slt_schema_prop_t *p = slt_schema__prop_find_z(n, m->string);
        if (p && p->required) {
            size_t k = (size_t) (p - n->props);
            uint64_t bit = (uint64_t) 1 << (k % 64);
            found += !(seen[k / 64] & bit);
            seen[k / 64] |= bit;
        }
    }
    for (size_t i = 0; found < n->nrequired && i < n->nprops && !v->stop; i++)
        if (n->props[i].required && !(seen[i / 64] >> (i % 64) & 1))
            s_verr(v, "required property \"%s\" is missing", n->props[i].name);
}

static void s_check_object(s_vc_t *v, const slt_schema_node_t *n, const cJSON *obj)
{
    const cJSON *val;
    if (n->nrequired)
        s_check_required(v, n, obj);
    if ((!n->nprops && !n->addl) || v->stop)
        return;
    cJSON_ArrayForEach(val, obj) {
        const char *key = val->string;
        const slt_schema_prop_t *p = n->nprops ? slt_schema__prop_find_z(n, key) : NULL;
        const slt_schema_node_t *sub = p && p->declared ? p->node : n->addl;
        if (sub && s_push(v, key, 0)) {
            if (sub == n->addl && slt_schema__res(sub)->never)
                s_verr(v, "additional property \"%s\" is not allowed", key);
            else
                s_check(v, sub, val);
            v->depth--;
        }
        if (v->stop)
            return;
    }
}

static void s_check(s_vc_t *v, const slt_schema_node_t *n, const cJSON *val)
{
    if (!n)
        return;
    n = slt_schema__res(n);
    if (n->never) {
        s_verr(v, "no value is allowed here");
        return;
    }
    unsigned kind = slt_schema__kind(val);
    if (!(n->types & kind)) {
        s_verr(v, "expected %s, got %s", n->type_text, slt_schema__kind_name(kind));
        return;
    }
    if (n->constv && !s_equal(n->constv, val)) {
        s_verr(v, "must be equal to %s", n->const_text);
        if (v->stop)
            return;
    }
    if (n->enumv) {
        bool found = false;
        for (const cJSON *e = n->enumv->child; !found && e; e = e->next)
            found = s_equal(e, val);
        if (!found) {
            s_verr(v, "must be one of: %s", n->enum_list);
            if (v->stop)
                return;
        }
    }
    switch (kind) {
    case SLC_JSON_STRING:
        s_check_string(v, n, val);
        break;
    case SLC_JSON_INTEGER:
    case SLC_JSON_NUMBER:
        s_check_number(v, n, val->valuedouble);
        break;
    case SLC_JSON_ARRAY:
        s_check_array(v, n, val);
        break;
    case SLC_JSON_OBJECT:
        s_check_object(v, n, val);
        break;
    default:
        break;
    }
}

/* Validate VAL against N; on failure the first reason goes to *E. */
bool slt_schema__valid(const slt_schema_node_t *n, const cJSON *val,
                       slt_schema_error_t *e)
{
    s_vc_t v;
    v.errs = e;
    v.max = e ? 1 : 0;
    v.n = 0;
    v.failed = false;
    v.stop = false;
    v.depth = 0;
    s_check(&v, n, val);
    return !v.failed;
}

int slt_schema_validate(const slt_schema_t *self, const cJSON *doc,
                        slt_schema_error_t *errs, size_t max, size_t *nerrs)
{
    /* Not "= {0}": that would clear the frame stack on every call. */
    s_vc_t v;
    assert(self && doc && (errs || max == 0));
    v.errs = errs;
    v.max = max;
    v.n = 0;
    v.failed = false;
    v.stop = false;
    v.depth = 0;
    s_check(&v, self->root, doc);
    if (nerrs)
        *nerrs = v.n;
    return v.failed ? SL_EINVAL : 0;
}
