/*  slt_map_eval - evaluate a checked expression tree on one document.
 *
 *  Values (slt_map_val_t) are mostly views: a path gives a view of the
 *  document's own cJSON node, a string function may return a slice of its
 *  argument; only what is built (a lowered string, a mapped array) is
 *  owned, as string bytes or a cJSON tree. cJSON has no reference counts,
 *  so arrays and objects built inside one evaluation borrow document
 *  values through cJSON reference nodes, and a built tree that a view
 *  must outlive is parked until the evaluation ends (slt_map_int.h has
 *  the rules). What goes to the output is copied or, when it was built
 *  here and borrows nothing, moved (slt_map__to_json), so the result never
 *  aliases the caller's document, META or the mapping.
 *
 *  Bounds: recursion follows the tree (depth <= SLT_MAP_DEPTH_MAX, checked
 *  by the parser) and, for copies and comparisons, JSON nesting (at most
 *  SLT_MAP_JSON_DEPTH). Every node evaluated and every element produced is
 *  one step of SLT_MAP_STEPS_MAX, and so is every SLT_MAP_SCAN_PER_STEP
 *  members or elements walked past to find one (cJSON lists are linear);
 *  every byte built counts against SLT_MAP_BYTES_MAX; arrays stop at
 *  SLT_MAP_ARRAY_MAX. So a hostile document or mapping ends in an error,
 *  never in a crash or a hang. Reentrant: all state is in the
 *  slt_map_ctx_t of the call.  */
#include "slt_map_int.h"
#include "slt_doc.h"
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void slt_map__val_release(slt_map_val_t *v)
{
    /* Most values own nothing: no calls into the library for them. */
    if (v->buf)
        cJSON_free(v->buf);
    if (v->own)
        cJSON_Delete(v->own);
    memset(v, 0, sizeof *v);
}

void slt_map__val_of(const cJSON *j, slt_map_val_t *out)
{
    memset(out, 0, sizeof *out);
    out->node = j;
    if (!j) {
        out->t = SLC_V_MISSING;
        return;
    }
    switch (j->type & 0xFF) {
    case cJSON_Object: out->t = SLC_V_OBJ; break;
    case cJSON_Array: out->t = SLC_V_ARR; break;
    case cJSON_String:
        out->t = SLC_V_STR;
        out->u.s.p = j->valuestring ? j->valuestring : "";
        out->u.s.n = strlen(out->u.s.p);
        break;
    case cJSON_Number:
        if (slt_doc_int(j, &out->u.i)) {
            out->t = SLC_V_INT;
        } else {
            out->t = SLC_V_REAL;
            out->u.d = j->valuedouble;
        }
        break;
    case cJSON_True:
    case cJSON_False:
        out->t = SLC_V_BOOL;
        out->u.b = (j->type & 0xFF) == cJSON_True;
        break;
    default:
        out->t = SLC_V_NULL;
        break;
    }
}

const char *slt_map__val_type(const slt_map_val_t *v)
{
    static const char *const names[] = {
        [SLC_V_MISSING] = "missing", [SLC_V_NULL] = "null",
        [SLC_V_BOOL] = "boolean", [SLC_V_INT] = "number",
        [SLC_V_REAL] = "number", [SLC_V_STR] = "string",
        [SLC_V_ARR] = "array", [SLC_V_OBJ] = "object",
    };
    return names[v->t];
}

/* ---- errors */

void slt_map__where(const cJSON *meta, char *buf, size_t len)
{
    const cJSON *topic = cJSON_IsObject(meta) ? cJSON_GetObjectItemCaseSensitive(meta, "topic") : NULL;
    const cJSON *offset = cJSON_IsObject(meta) ? cJSON_GetObjectItemCaseSensitive(meta, "offset") : NULL;
    int64_t off;
    buf[0] = '\0';
    if (!cJSON_IsString(topic) || !topic->valuestring || !cJSON_IsNumber(offset))
        return;
    if (slt_doc_int(offset, &off))
        snprintf(buf, len, " (topic %.255s, offset %" PRId64 ")", topic->valuestring, off);
    else
        snprintf(buf, len, " (topic %.255s, offset %.17g)", topic->valuestring, offset->valuedouble);
}

static int s_vfail(slt_map_ctx_t *cx, const slt_map_node_t *n, bool src,
                   const char *fmt, va_list ap)
{
    char msg[512], where[320];
    unsigned line = 0, col = 0;
    const slt_map_field_t *f = cx->field;
    if (!cx->err || !cx->errlen)
        return SL_EINVAL;
    vsnprintf(msg, sizeof msg, fmt, ap);
    slt_map__position(f, n ? n->pos : 0, &line, &col);
    slt_map__where(cx->meta, where, sizeof where);
    bool drop = f == &cx->m->drop;
    char owner[SLT_MAP_NAME_MAX + 16];
    if (cx->m->owner)
        snprintf(owner, sizeof owner, "%s", cx->m->owner);
    else
        snprintf(owner, sizeof owner, "mapping '%.*s'", SLT_MAP_NAME_MAX, cx->m->name);
    snprintf(cx->err, cx->errlen, "%s: %s%s%s (%s:%u:%u): %s%s%s%s",
             owner, drop ? "" : "field '", f->target, drop ? "" : "'",
             cx->m->origin, line, col, msg, src && n && n->src ? " (from " : "",
             src && n && n->src ? n->src : "", src && n && n->src ? ")" : "");
    size_t w = strlen(cx->err);
    snprintf(cx->err + w, cx->errlen - w, "%s", where);
    return SL_EINVAL;
}

int slt_map__fail(slt_map_ctx_t *cx, const slt_map_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_vfail(cx, n, true, fmt, ap);
    va_end(ap);
    return rc;
}

static int s_fail_plain(slt_map_ctx_t *cx, const slt_map_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail_plain(slt_map_ctx_t *cx, const slt_map_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_vfail(cx, n, false, fmt, ap);
    va_end(ap);
    return rc;
}

int slt_map__missing(slt_map_ctx_t *cx, const slt_map_node_t *n)
{
    if (n->src)
        return s_fail_plain(cx, n, "%s is missing (write %s ?? DEFAULT to give a default)",
                            n->src, n->src);
    return s_fail_plain(cx, n, "a value is missing");
}

/* The value of node N has the wrong type for WHAT. */
static int s_bad_type(slt_map_ctx_t *cx, const slt_map_node_t *n,
                      const slt_map_val_t *v, const char *what, const char *want)
{
    if (v->t == SLC_V_MISSING)
        return slt_map__missing(cx, n);
    return slt_map__fail(cx, n, "%s expects %s, got %s %s", what, want,
                         v->t == SLC_V_ARR || v->t == SLC_V_OBJ ? "an" : "a",
                         slt_map__val_type(v));
}

int slt_map__steps(slt_map_ctx_t *cx, const slt_map_node_t *n, size_t k)
{
    cx->steps += k;
    if (cx->steps > SLT_MAP_STEPS_MAX)
        return s_fail_plain(cx, n, "evaluation limit reached (%d steps for one message)",
                            SLT_MAP_STEPS_MAX);
    return 0;
}

int slt_map__scan(slt_map_ctx_t *cx, const slt_map_node_t *n, size_t k)
{
    cx->scanned += k;
    if (cx->scanned < SLT_MAP_SCAN_PER_STEP)
        return 0;
    size_t steps = cx->scanned / SLT_MAP_SCAN_PER_STEP;
    cx->scanned %= SLT_MAP_SCAN_PER_STEP;
    return slt_map__steps(cx, n, steps);
}

int slt_map__charge(slt_map_ctx_t *cx, const slt_map_node_t *n, size_t len)
{
    if (len > SLT_MAP_STR_MAX)
        return s_fail_plain(cx, n, "string too long (%zu bytes, limit %u)", len, SLT_MAP_STR_MAX);
    cx->bytes += len;
    if (cx->bytes > SLT_MAP_BYTES_MAX)
        return s_fail_plain(cx, n, "output limit reached (%u bytes built for one message)",
                            SLT_MAP_BYTES_MAX);
    return 0;
}

int slt_map__str_new(slt_map_ctx_t *cx, const slt_map_node_t *n, size_t len,
                     slt_map_val_t *out)
{
    int rc = slt_map__charge(cx, n, len);
    if (rc != 0)
        goto fail;
    memset(out, 0, sizeof *out);
    /* cJSON's allocator: an output item can then take the bytes over. */
    out->buf = cJSON_malloc(len + 1);
    if (!out->buf) {
        rc = SL_ENOMEM;
        goto fail;
    }
    out->buf[len] = '\0';
    out->t = SLC_V_STR;
    out->u.s.p = out->buf;
    out->u.s.n = len;
fail:
    return rc;
}

/* ---- JSON items */

static int s_array_full(slt_map_ctx_t *cx, const slt_map_node_t *n, size_t count)
{
    if (count >= SLT_MAP_ARRAY_MAX)
        return s_fail_plain(cx, n, "array too long (limit %d elements)", SLT_MAP_ARRAY_MAX);
    return 0;
}

/* A string item that owns BUF (from cJSON_malloc, NUL-terminated), or NULL
 * (BUF is then still the caller's). cJSON has no call for this: a
 * reference item stops being one by clearing the flag, and cJSON_Delete
 * then frees the bytes with the allocator cJSON_malloc used. */
static cJSON *s_str_take(char *buf)
{
    cJSON *j = cJSON_CreateStringReference(buf);
    if (j)
        j->type &= ~cJSON_IsReference;
    return j;
}

int slt_map__str_item(slt_map_ctx_t *cx, const slt_map_node_t *n, const char *p,
                      size_t len, cJSON **out)
{
    int rc = slt_map__charge(cx, n, len);
    char *b = NULL;
    *out = NULL;
    if (rc != 0)
        goto fail;
    b = cJSON_malloc(len + 1);
    if (!b) {
        rc = SL_ENOMEM;
        goto fail;
    }
    memcpy(b, p, len);
    b[len] = '\0';
    /* Every string of an evaluation is valid UTF-8 without NUL: the
     * document's (slt_doc_parse checked it), the mapping's (YAML, the
     * lexer and the table reader checked them), and what functions build
     * from those (they cut only at code point boundaries). */
    *out = s_str_take(b);
    if (!*out) {
        rc = SL_ENOMEM;
        goto fail;
    }
    b = NULL;
fail:
    cJSON_free(b);
    return rc;
}

int slt_map__park(slt_map_ctx_t *cx, slt_map_val_t *v)
{
    int rc = 0;
    if (!v->own)
        goto fail;
    if (!cx->keep)
        cx->keep = cJSON_CreateArray();
    if (!cx->keep || !cJSON_AddItemToArray(cx->keep, v->own)) {
        rc = SL_ENOMEM;
        goto fail;
    }
    v->own = NULL;
    v->shared = false;
fail:
    return rc;
}

/* A copy of J that shares nothing, counted against the limits. */
static int s_copy(slt_map_ctx_t *cx, const slt_map_node_t *n, const cJSON *j,
                  unsigned depth, cJSON **out)
{
    int rc = 0;
    cJSON *c = NULL, *kid = NULL;
    *out = NULL;
    if (depth > SLT_MAP_JSON_DEPTH) {
        rc = s_fail_plain(cx, n, "value nested too deeply (limit %d levels)", SLT_MAP_JSON_DEPTH);
        goto fail;
    }
    rc = slt_map__charge(cx, n, 16);
    if (rc != 0)
        goto fail;
    switch (j->type & 0xFF) {
    case cJSON_Object:
    case cJSON_Array: {
        bool obj = cJSON_IsObject(j);
        c = obj ? cJSON_CreateObject() : cJSON_CreateArray();
        if (!c) {
            rc = SL_ENOMEM;
            goto fail;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, j) {
            if (obj)
                rc = slt_map__charge(cx, n, strlen(e->string));
            if (rc == 0)
                rc = s_copy(cx, n, e, depth + 1, &kid);
            if (rc != 0)
                goto fail;
            if (!(obj ? cJSON_AddItemToObject(c, e->string, kid) : cJSON_AddItemToArray(c, kid))) {
                rc = SL_ENOMEM;
                goto fail;
            }
            kid = NULL;
        }
        break;
    }
    case cJSON_String:
        rc = slt_map__str_item(cx, n, j->valuestring, strlen(j->valuestring), &c);
        if (rc != 0)
            goto fail;
        break;
    case cJSON_Number: c = cJSON_CreateNumber(j->valuedouble); break;
    case cJSON_True: c = cJSON_CreateTrue(); break;
    case cJSON_False: c = cJSON_CreateFalse(); break;
    default: c = cJSON_CreateNull(); break;
    }
    if (!c) {
        rc = SL_ENOMEM;
        goto fail;
    }
    *out = c;
    c = NULL;
fail:
    cJSON_Delete(kid);
    cJSON_Delete(c);
    return rc;
}

/* A new item for scalar V (not a string); NULL when out of memory. */
static cJSON *s_scalar_item(const slt_map_val_t *v)
{
    switch (v->t) {
    case SLC_V_BOOL: return cJSON_CreateBool(v->u.b);
    case SLC_V_INT: return cJSON_CreateNumber((double) v->u.i);    /* exact: |i| <= 2^53 */
    case SLC_V_REAL: return cJSON_CreateNumber(v->u.d);
    default: return cJSON_CreateNull();
    }
}

/* V's string as an item of its own, counted against the limits: the
 * bytes V owns are taken over when they are exactly the string, else
 * copied. */
static int s_str_own(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *v, cJSON **out)
{
    int rc = 0;
    *out = NULL;
    if (!(v->buf && v->u.s.p == v->buf && v->buf[v->u.s.n] == '\0'))
        return slt_map__str_item(cx, n, v->u.s.p, v->u.s.n, out);
    rc = slt_map__charge(cx, n, v->u.s.n);
    if (rc != 0)
        goto fail;
    *out = s_str_take(v->buf);
    if (!*out) {
        rc = SL_ENOMEM;
        goto fail;
    }
    v->buf = NULL;
fail:
    return rc;
}

/* slt_map__item (SHARED not NULL: views become reference nodes, *SHARED
 * set then) and slt_map__to_json (SHARED NULL: nothing is shared, views
 * and trees holding reference nodes are copied). */
static int s_item(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *v,
                  cJSON **out, bool *shared)
{
    int rc = 0;
    cJSON *j = NULL;
    *out = NULL;
    switch (v->t) {
    case SLC_V_MISSING:
        rc = slt_map__missing(cx, n);
        goto fail;
    case SLC_V_STR:
        /* A whole string the view borrows: referenced, not copied. */
        if (shared && !v->buf && !v->own && v->u.s.p[v->u.s.n] == '\0') {
            j = cJSON_CreateStringReference(v->u.s.p);
            *shared = true;
            break;
        }
        rc = s_str_own(cx, n, v, &j);
        if (rc != 0)
            goto fail;
        break;
    case SLC_V_ARR:
    case SLC_V_OBJ:
        if (v->own && v->node == v->own && (shared || !v->shared)) {
            j = v->own;             /* built here: moved */
            v->own = NULL;
            if (shared)
                *shared = *shared || v->shared;
            break;
        }
        if (!shared) {
            rc = s_copy(cx, n, v->node, 0, &j);
            if (rc != 0)
                goto fail;
            break;
        }
        rc = slt_map__park(cx, v);      /* a node inside a built value */
        if (rc != 0)
            goto fail;
        j = v->t == SLC_V_ARR ? cJSON_CreateArrayReference(v->node->child)
                              : cJSON_CreateObjectReference(v->node->child);
        *shared = true;
        break;
    default:
        j = s_scalar_item(v);
        break;
    }
    if (!j) {
        rc = SL_ENOMEM;
        goto fail;
    }
    *out = j;
fail:
    return rc;
}

int slt_map__item(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *v,
                  cJSON **out, bool *shared)
{
    assert(shared);
    return s_item(cx, n, v, out, shared);
}

int slt_map__to_json(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *v,
                     cJSON **out)
{
    return s_item(cx, n, v, out, NULL);
}

/* ---- paths */

/* J is of cJSON type TYPE (cJSON_Is* are calls into the library: this is
 * the hot path). */
static inline bool s_is(const cJSON *j, int type)
{
    return j && (j->type & 0xFF) == type;
}

/* Key K is NAME, whose first byte K is known to have. */
static inline bool s_key_is(const char *k, const char *name)
{
    while (*k && *k == *name) {
        k++;
        name++;
    }
    return *k == *name;
}

/* Member NAME of object J, or NULL; a linear scan, counted. */
static const cJSON *s_member(slt_map_ctx_t *cx, const slt_map_node_t *n, const cJSON *j,
                             const char *name, int *rc)
{
    const cJSON *e;
    size_t k = 0;
    cJSON_ArrayForEach(e, j) {
        k++;
        if (e->string && e->string[0] == name[0] && s_key_is(e->string, name))
            break;
    }
    *rc = slt_map__scan(cx, n, k);
    return e;
}

/* Element INDEX of array J (negative: from the end), or NULL; counted. */
static const cJSON *s_element(slt_map_ctx_t *cx, const slt_map_node_t *n, const cJSON *j,
                              int64_t index, int *rc)
{
    const cJSON *e = j->child, *lead = j->child;
    size_t k = 0;
    if (index >= 0) {
        for (; e && index > 0; index--, k++)
            e = e->next;
    } else {
        /* LEAD goes -INDEX elements ahead; E follows it to the end. */
        for (; lead && index < 0; index++, k++)
            lead = lead->next;
        if (index < 0)
            e = NULL;
        for (; e && lead; k++) {
            e = e->next;
            lead = lead->next;
        }
    }
    *rc = slt_map__scan(cx, n, k);
    return e;
}

static const cJSON *s_step(slt_map_ctx_t *cx, const slt_map_node_t *n, const cJSON *j,
                           const slt_map_step_t *st, int *rc)
{
    *rc = 0;
    if (st->kind == SLC_STEP_MEMBER)
        return s_is(j, cJSON_Object) ? s_member(cx, n, j, st->name, rc) : NULL;
    return s_is(j, cJSON_Array) ? s_element(cx, n, j, st->index, rc) : NULL;
}

/* Apply steps K.. of N to J, appending what they reach to ARR (*COUNT
 * elements so far); a [*] applies the rest to every element (recursion:
 * one level per [*]). */
static int s_walk(slt_map_ctx_t *cx, const slt_map_node_t *n, const cJSON *j,
                  size_t k, cJSON *arr, size_t *count)
{
    int rc = 0;
    cJSON *item = NULL;
    bool shared = false;
    for (; k < n->nsteps && j && rc == 0; k++) {
        const slt_map_step_t *st = &n->steps[k];
        if (st->kind != SLC_STEP_ALL) {
            j = s_step(cx, n, j, st, &rc);
            continue;
        }
        if (!s_is(j, cJSON_Array))
            goto fail;
        const cJSON *e;
        cJSON_ArrayForEach(e, j) {
            rc = slt_map__steps(cx, n, 1);
            if (rc == 0)
                rc = s_walk(cx, n, e, k + 1, arr, count);
            if (rc != 0)
                break;
        }
        goto fail;
    }
    if (rc != 0 || !j)
        goto fail;
    rc = s_array_full(cx, n, *count);
    if (rc != 0)
        goto fail;
    slt_map_val_t v;
    slt_map__val_of(j, &v);         /* a view: J lives as long as the evaluation */
    rc = slt_map__item(cx, n, &v, &item, &shared);
    if (rc != 0)
        goto fail;
    if (!cJSON_AddItemToArray(arr, item)) {
        rc = SL_ENOMEM;
        goto fail;
    }
    item = NULL;
    (*count)++;
fail:
    cJSON_Delete(item);
    return rc;
}

/* let NAME = VALUE in BODY: the value is made a view (what it owns is
 * parked until the evaluation ends) and is NAME's slot during BODY. */
static int s_let(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *out)
{
    slt_map_val_t v = { 0 }, saved = cx->vars[n->slot];
    int rc = slt_map__eval(cx, n->kids[0], &v);
    if (rc == 0 && v.buf) {
        cJSON *s = cJSON_CreateString("");
        if (!s) {
            rc = SL_ENOMEM;
        } else {
            cJSON_free(s->valuestring);
            s->valuestring = v.buf;     /* from cJSON_malloc: cJSON_Delete frees it */
            v.buf = NULL;
            v.node = s;
            v.own = s;
        }
    }
    if (rc == 0)
        rc = slt_map__park(cx, &v);
    if (rc != 0) {
        slt_map__val_release(&v);
        return rc;
    }
    cx->vars[n->slot] = v;
    rc = slt_map__eval(cx, n->kids[1], out);
    cx->vars[n->slot] = saved;
    return rc;
}

static int s_path(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *out)
{
    int rc = 0;
    slt_map_val_t base = { 0 };
    const slt_map_node_t *b = n->kids[0];
    const cJSON *j = NULL;
    cJSON *arr = NULL;
    size_t count = 0;
    if (b->kind == SLC_N_ROOT)
        j = cx->doc;
    else if (b->kind == SLC_N_META)
        j = cx->meta;
    else if (b->kind == SLC_N_VAR)
        j = cx->vars[b->slot].node;
    else {
        rc = slt_map__eval(cx, b, &base);
        if (rc != 0)
            goto fail;
        j = base.t == SLC_V_ARR || base.t == SLC_V_OBJ ? base.node : NULL;
    }
    if (!n->star) {
        for (size_t k = 0; k < n->nsteps && j && rc == 0; k++)
            j = s_step(cx, n, j, &n->steps[k], &rc);
        if (rc != 0)
            goto fail;
        slt_map__val_of(j, out);
        if (j && base.own) {        /* J is inside the base: take it along */
            out->own = base.own;
            out->shared = base.shared;
            base.own = NULL;
        }
        goto fail;
    }
    rc = slt_map__park(cx, &base);  /* the elements will point into it */
    if (rc != 0)
        goto fail;
    arr = cJSON_CreateArray();
    if (!arr) {
        rc = SL_ENOMEM;
        goto fail;
    }
    rc = s_walk(cx, n, j, 0, arr, &count);
    if (rc != 0)
        goto fail;
    slt_map__val_of(arr, out);
    out->own = arr;
    out->shared = count > 0;
    arr = NULL;
fail:
    cJSON_Delete(arr);
    slt_map__val_release(&base);
    return rc;
}

/* ---- operators */

static bool s_num(const slt_map_val_t *v)
{
    return v->t == SLC_V_INT || v->t == SLC_V_REAL;
}

/* Integers are at most 2^53 in magnitude: exact as doubles, so mixed
 * comparisons and arithmetic are exact where the double result is. */
static double s_d(const slt_map_val_t *v)
{
    return v->t == SLC_V_INT ? (double) v->u.i : v->u.d;
}

static int s_finite(slt_map_ctx_t *cx, const slt_map_node_t *n, double d,
                    slt_map_val_t *out)
{
    if (!isfinite(d))
        return slt_map__fail(cx, n, "result is not a finite number");
    out->t = SLC_V_REAL;
    out->u.d = d;
    return 0;
}

static int s_arith(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *out)
{
    int rc = 0;
    slt_map_val_t a = { 0 }, b = { 0 };
    const char *op = slt_map__tok_name(n->op);
    rc = slt_map__eval(cx, n->kids[0], &a);
    if (rc == 0)
        rc = slt_map__eval(cx, n->kids[1], &b);
    if (rc != 0)
        goto fail;
    if (!s_num(&a) || !s_num(&b)) {
        int bad = s_num(&a) ? 1 : 0;
        rc = s_bad_type(cx, n->kids[bad], bad ? &b : &a, op, "numbers");
        goto fail;
    }
    if ((n->op == SLC_TK_SLASH || n->op == SLC_TK_PCT)
        && (b.t == SLC_V_INT ? b.u.i == 0 : b.u.d == 0.0)) {
        rc = slt_map__fail(cx, n->kids[1], "division by zero");
        goto fail;
    }
    if (a.t == SLC_V_INT && b.t == SLC_V_INT && n->op != SLC_TK_SLASH) {
        int64_t r = 0;
        bool over = false;
        switch (n->op) {
        case SLC_TK_PLUS: r = a.u.i + b.u.i; break;         /* |r| <= 2^54 */
        case SLC_TK_MINUS: r = a.u.i - b.u.i; break;
        case SLC_TK_STAR: over = __builtin_mul_overflow(a.u.i, b.u.i, &r); break;
        default: r = a.u.i % b.u.i; break;
        }
        /* An integer result stays exact or is an error; it never turns
         * into a rounded float. */
        if (over || r > SLT_MAP_INT_LIMIT || r < -SLT_MAP_INT_LIMIT) {
            rc = slt_map__fail(cx, n, "integer overflow in %s (integers are exact up to 2^53)",
                               op);
            goto fail;
        }
        out->t = SLC_V_INT;
        out->u.i = r;
        goto fail;
    }
    double x = s_d(&a), y = s_d(&b), r;
    switch (n->op) {
    case SLC_TK_PLUS: r = x + y; break;
    case SLC_TK_MINUS: r = x - y; break;
    case SLC_TK_STAR: r = x * y; break;
    case SLC_TK_SLASH: r = x / y; break;
    default: r = fmod(x, y); break;
    }
    rc = s_finite(cx, n, r, out);
fail:
    slt_map__val_release(&a);
    slt_map__val_release(&b);
    return rc;
}

static int s_json_equal(slt_map_ctx_t *cx, const slt_map_node_t *n, const cJSON *x,
                        const cJSON *y, unsigned depth, bool *eq);

/* Deep equality; missing counts as null (so $.flag == true is false when
 * flag is absent). Numbers by value, exactly (not cJSON_Compare's
 * relative epsilon). */
static int s_equal(slt_map_ctx_t *cx, const slt_map_node_t *n,
                   const slt_map_val_t *a, const slt_map_val_t *b, bool *eq)
{
    int ta = a->t == SLC_V_MISSING ? SLC_V_NULL : a->t;
    int tb = b->t == SLC_V_MISSING ? SLC_V_NULL : b->t;
    *eq = false;
    if (s_num(a) && s_num(b)) {
        *eq = s_d(a) == s_d(b);
        return 0;
    }
    if (ta != tb)
        return 0;
    switch (ta) {
    case SLC_V_NULL: *eq = true; return 0;
    case SLC_V_BOOL: *eq = a->u.b == b->u.b; return 0;
    case SLC_V_STR:
        *eq = a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
        return 0;
    default:
        return s_json_equal(cx, n, a->node, b->node, 0, eq);
    }
}

/* Member KEY of object Y, trying HINT (the member at the same place)
 * first: objects compared are usually in the same order. */
static const cJSON *s_same_member(slt_map_ctx_t *cx, const slt_map_node_t *n, const cJSON *y,
                                  const cJSON *hint, const char *key, int *rc)
{
    *rc = 0;
    if (hint && hint->string && strcmp(hint->string, key) == 0)
        return hint;
    return s_member(cx, n, y, key, rc);
}

static int s_json_equal(slt_map_ctx_t *cx, const slt_map_node_t *n, const cJSON *x,
                        const cJSON *y, unsigned depth, bool *eq)
{
    int rc = 0;
    slt_map_val_t a, b;
    const cJSON *e, *f;
    *eq = false;
    if (depth > SLT_MAP_JSON_DEPTH) {
        rc = s_fail_plain(cx, n, "value nested too deeply to compare (limit %d levels)",
                          SLT_MAP_JSON_DEPTH);
        goto fail;
    }
    rc = slt_map__steps(cx, n, 1);
    if (rc != 0)
        goto fail;
    slt_map__val_of(x, &a);
    slt_map__val_of(y, &b);
    if (a.t == SLC_V_ARR && b.t == SLC_V_ARR) {
        *eq = true;
        for (e = x->child, f = y->child; e && f && *eq && rc == 0; e = e->next, f = f->next)
            rc = s_json_equal(cx, n, e, f, depth + 1, eq);
        if (rc == 0 && *eq && (e || f))
            *eq = false;            /* different lengths */
    } else if (a.t == SLC_V_OBJ && b.t == SLC_V_OBJ) {
        size_t nx = 0, ny = 0;
        cJSON_ArrayForEach(e, x)
            nx++;
        cJSON_ArrayForEach(f, y)
            ny++;
        rc = slt_map__scan(cx, n, nx + ny);
        if (rc != 0 || nx != ny)
            goto fail;
        /* Keys are unique (the parser and the builders see to it), so
         * same size and every member of X equal in Y is equality. */
        *eq = true;
        f = y->child;
        cJSON_ArrayForEach(e, x) {
            const cJSON *w = s_same_member(cx, n, y, f, e->string, &rc);
            if (rc != 0 || !w) {
                *eq = false;
                break;
            }
            rc = s_json_equal(cx, n, e, w, depth + 1, eq);
            if (rc != 0 || !*eq)
                break;
            f = f ? f->next : NULL;
        }
    } else {
        rc = s_equal(cx, n, &a, &b, eq);
    }
fail:
    return rc;
}

static int s_cmp(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *out)
{
    int rc = 0;
    slt_map_val_t a = { 0 }, b = { 0 };
    bool r = false;
    rc = slt_map__eval(cx, n->kids[0], &a);
    if (rc == 0)
        rc = slt_map__eval(cx, n->kids[1], &b);
    if (rc != 0)
        goto fail;
    if (n->op == SLC_TK_EQ || n->op == SLC_TK_NE) {
        rc = s_equal(cx, n, &a, &b, &r);
        if (n->op == SLC_TK_NE)
            r = !r;
    } else if (a.t == SLC_V_MISSING || b.t == SLC_V_MISSING) {
        rc = slt_map__missing(cx, n->kids[a.t == SLC_V_MISSING ? 0 : 1]);
    } else {
        int c = 0;
        if (s_num(&a) && s_num(&b)) {
            double x = s_d(&a), y = s_d(&b);    /* finite: never NaN */
            c = x < y ? -1 : x > y ? 1 : 0;
        } else if (a.t == SLC_V_STR && b.t == SLC_V_STR) {
            size_t m = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
            c = memcmp(a.u.s.p, b.u.s.p, m);
            if (c == 0)
                c = a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n ? 1 : 0;
            c = c < 0 ? -1 : c > 0 ? 1 : 0;
        } else {
            rc = slt_map__fail(cx, n, "%s compares two numbers or two strings, got %s and %s",
                               slt_map__tok_name(n->op), slt_map__val_type(&a),
                               slt_map__val_type(&b));
            goto fail;
        }
        switch (n->op) {
        case SLC_TK_LT: r = c == -1; break;
        case SLC_TK_LE: r = c == -1 || c == 0; break;
        case SLC_TK_GT: r = c == 1; break;
        default: r = c == 1 || c == 0; break;
        }
    }
    out->t = SLC_V_BOOL;
    out->u.b = r;
fail:
    slt_map__val_release(&a);
    slt_map__val_release(&b);
    return rc;
}

/* The boolean value of node N for WHAT (and, or, not, if, drop_if). */
static int s_bool(slt_map_ctx_t *cx, const slt_map_node_t *n, const char *what, bool *b)
{
    slt_map_val_t v = { 0 };
    int rc = slt_map__eval(cx, n, &v);
    if (rc == 0 && v.t != SLC_V_BOOL)
        rc = s_bad_type(cx, n, &v, what, "a boolean");
    if (rc == 0)
        *b = v.u.b;
    slt_map__val_release(&v);
    return rc;
}

/* ---- builders */

/* Evaluate KID into a new item *J (caller owns) for an array or object
 * literal; *SHARED is set when it borrows. */
static int s_kid_item(slt_map_ctx_t *cx, const slt_map_node_t *kid, cJSON **j, bool *shared)
{
    slt_map_val_t v = { 0 };
    int rc = slt_map__eval(cx, kid, &v);
    if (rc == 0)
        rc = slt_map__item(cx, kid, &v, j, shared);
    slt_map__val_release(&v);
    return rc;
}

/* [e, ...] and {name: e, ...}: both build in order, keys from the parser
 * (unique, valid UTF-8, NUL-terminated in the arena; cJSON copies them). */
static int s_literal(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *out)
{
    int rc = 0;
    bool obj = n->kind == SLC_N_OBJECT, shared = false;
    cJSON *c = obj ? cJSON_CreateObject() : cJSON_CreateArray(), *j = NULL;
    if (!c) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (size_t k = 0; k < n->nkids; k++) {
        rc = s_kid_item(cx, n->kids[k], &j, &shared);
        if (rc != 0)
            goto fail;
        if (!(obj ? cJSON_AddItemToObject(c, n->keys[k], j) : cJSON_AddItemToArray(c, j))) {
            rc = SL_ENOMEM;
            goto fail;
        }
        j = NULL;
    }
    slt_map__val_of(c, out);
    out->own = c;
    out->shared = shared;
    c = NULL;
fail:
    cJSON_Delete(j);
    cJSON_Delete(c);
    return rc;
}

/* map(ARR, x => e) and filter(ARR, x => cond). */
static int s_lambda(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *out)
{
    int rc = 0;
    slt_map_val_t arr = { 0 }, v = { 0 };
    const slt_map_node_t *lam = n->kids[1], *body = lam->kids[0];
    bool filter = n->fn->name[0] == 'f', shared = false;
    cJSON *res = NULL, *j = NULL;
    size_t count = 0;
    char what[16];
    snprintf(what, sizeof what, "%s()", n->fn->name);
    rc = slt_map__eval(cx, n->kids[0], &arr);
    if (rc != 0)
        goto fail;
    if (arr.t != SLC_V_ARR) {
        rc = s_bad_type(cx, n->kids[0], &arr, what, "an array");
        goto fail;
    }
    /* The parameter is a view of each element; what the body returns may
     * borrow from it, and may be kept in the result. */
    rc = slt_map__park(cx, &arr);
    if (rc != 0)
        goto fail;
    res = cJSON_CreateArray();
    if (!res) {
        rc = SL_ENOMEM;
        goto fail;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, arr.node) {
        rc = slt_map__steps(cx, n, 1);
        if (rc != 0)
            goto fail;
        slt_map__val_of(e, &cx->vars[lam->slot]);
        if (filter) {
            bool keep = false;
            rc = s_bool(cx, body, "the filter condition", &keep);
            if (rc != 0)
                goto fail;
            if (!keep)
                continue;
            v = cx->vars[lam->slot];
        } else {
            rc = slt_map__eval(cx, body, &v);
            if (rc != 0)
                goto fail;
        }
        rc = s_array_full(cx, n, count);
        if (rc == 0)
            rc = slt_map__item(cx, body, &v, &j, &shared);
        slt_map__val_release(&v);
        if (rc != 0)
            goto fail;
        if (!cJSON_AddItemToArray(res, j)) {
            rc = SL_ENOMEM;
            goto fail;
        }
        j = NULL;
        count++;
    }
    slt_map__val_of(res, out);
    out->own = res;
    out->shared = shared;
    res = NULL;
fail:
    memset(&cx->vars[lam->slot], 0, sizeof cx->vars[lam->slot]);
    slt_map__val_release(&v);
    cJSON_Delete(j);
    cJSON_Delete(res);
    slt_map__val_release(&arr);
    return rc;
}

static int s_call(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *out)
{
    int rc = 0;
    slt_map_val_t args[SLT_MAP_ARGS_MAX];
    size_t k = 0;
    if (!n->fn->impl)
        return s_lambda(cx, n, out);
    memset(args, 0, n->nkids * sizeof args[0]);
    for (k = 0; k < n->nkids; k++) {
        if (k == 0 && (n->fn->flags & SLC_FN_TABLE))
            continue;
        rc = slt_map__eval(cx, n->kids[k], &args[k]);
        if (rc != 0)
            goto fail;
    }
    rc = n->fn->impl(cx, n, args, out);
fail:
    for (size_t j = 0; j < n->nkids; j++)
        slt_map__val_release(&args[j]);
    return rc;
}

int slt_map__eval(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *out)
{
    int rc = 0;
    bool b = false;
    memset(out, 0, sizeof *out);
    rc = slt_map__steps(cx, n, 1);
    if (rc != 0)
        goto fail;
    switch (n->kind) {
    case SLC_N_NULL: out->t = SLC_V_NULL; break;
    case SLC_N_BOOL: out->t = SLC_V_BOOL; out->u.b = n->i != 0; break;
    case SLC_N_INT: out->t = SLC_V_INT; out->u.i = n->i; break;
    case SLC_N_REAL: out->t = SLC_V_REAL; out->u.d = n->d; break;
    case SLC_N_STR:
        out->t = SLC_V_STR;         /* a view of the arena, NUL-terminated */
        out->u.s.p = n->s;
        out->u.s.n = n->slen;
        break;
    case SLC_N_ROOT: slt_map__val_of(cx->doc, out); break;
    case SLC_N_META: slt_map__val_of(cx->meta, out); break;
    case SLC_N_VAR:
        *out = cx->vars[n->slot];   /* parameters are views */
        break;
    case SLC_N_PATH: rc = s_path(cx, n, out); break;
    case SLC_N_ARRAY:
    case SLC_N_OBJECT: rc = s_literal(cx, n, out); break;
    case SLC_N_NEG:
        rc = slt_map__eval(cx, n->kids[0], out);
        if (rc != 0)
            break;
        if (out->t == SLC_V_INT)
            out->u.i = -out->u.i;   /* the range is symmetric */
        else if (out->t == SLC_V_REAL)
            out->u.d = -out->u.d;
        else
            rc = s_bad_type(cx, n->kids[0], out, "'-'", "a number");
        break;
    case SLC_N_NOT:
        rc = s_bool(cx, n->kids[0], "'not'", &b);
        out->t = SLC_V_BOOL;
        out->u.b = !b;
        break;
    case SLC_N_ARITH: rc = s_arith(cx, n, out); break;
    case SLC_N_CMP: rc = s_cmp(cx, n, out); break;
    case SLC_N_AND:
    case SLC_N_OR:
        rc = s_bool(cx, n->kids[0], n->kind == SLC_N_AND ? "'and'" : "'or'", &b);
        if (rc == 0 && b == (n->kind == SLC_N_OR)) {
            out->t = SLC_V_BOOL;
            out->u.b = b;
            break;
        }
        if (rc == 0)
            rc = s_bool(cx, n->kids[1], n->kind == SLC_N_AND ? "'and'" : "'or'", &b);
        out->t = SLC_V_BOOL;
        out->u.b = b;
        break;
    case SLC_N_COALESCE:
        rc = slt_map__eval(cx, n->kids[0], out);
        if (rc == 0 && (out->t == SLC_V_MISSING || out->t == SLC_V_NULL)) {
            slt_map__val_release(out);
            rc = slt_map__eval(cx, n->kids[1], out);
        }
        break;
    case SLC_N_IF:
        rc = s_bool(cx, n->kids[0], "'if'", &b);
        if (rc == 0)
            rc = slt_map__eval(cx, n->kids[b ? 1 : 2], out);
        break;
    case SLC_N_CALL: rc = s_call(cx, n, out); break;
    case SLC_N_LET: rc = s_let(cx, n, out); break;
    default:
        rc = SL_EINTERNAL;          /* lambdas are run by s_lambda */
        break;
    }
fail:
    if (rc != 0)
        slt_map__val_release(out);
    return rc;
}
