/*  slc_map_eval - evaluate a checked expression tree on one document.
 *
 *  Values (slc_map_val_t) are mostly borrowed: a path gives a view of the
 *  document's own JSON, a string function may return a slice of its
 *  argument; only what is built (a lowered string, a mapped array) is
 *  owned, by BUF or by a held jansson reference. Inside one evaluation
 *  arrays may share elements with the document by reference; what goes to
 *  the output is copied (slc_map__to_json without SHARE), so the result
 *  never aliases the caller's document.
 *
 *  Bounds: recursion follows the tree (depth <= SLC_MAP_DEPTH_MAX, checked
 *  by the parser) and, for copies and comparisons, JSON nesting (at most
 *  SLC_MAP_JSON_DEPTH). Every node evaluated and every element produced is
 *  one step of SLC_MAP_STEPS_MAX; every byte built counts against
 *  SLC_MAP_BYTES_MAX; arrays stop at SLC_MAP_ARRAY_MAX. So a hostile
 *  document or mapping ends in an error, never in a crash or a hang.
 *  Reentrant: all state is in the slc_map_ctx_t of the call.  */
#include "slc_map_int.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void slc_map__val_release(slc_map_val_t *v)
{
    free(v->buf);
    if (v->ref)
        json_decref(v->ref);
    memset(v, 0, sizeof *v);
}

void slc_map__val_of(json_t *j, slc_map_val_t *out)
{
    memset(out, 0, sizeof *out);
    out->node = j;
    switch (j ? json_typeof(j) : JSON_NULL) {
    case JSON_OBJECT: out->t = SLC_V_OBJ; break;
    case JSON_ARRAY: out->t = SLC_V_ARR; break;
    case JSON_STRING:
        out->t = SLC_V_STR;
        out->u.s.p = json_string_value(j);
        out->u.s.n = json_string_length(j);
        break;
    case JSON_INTEGER:
        out->t = SLC_V_INT;
        out->u.i = json_integer_value(j);
        break;
    case JSON_REAL:
        out->t = SLC_V_REAL;
        out->u.d = json_real_value(j);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        out->t = SLC_V_BOOL;
        out->u.b = json_is_true(j);
        break;
    default:
        out->t = SLC_V_NULL;
        break;
    }
    if (!j)
        out->t = SLC_V_MISSING;
}

const char *slc_map__val_type(const slc_map_val_t *v)
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

static int s_vfail(slc_map_ctx_t *cx, const slc_map_node_t *n, bool src,
                   const char *fmt, va_list ap)
{
    char msg[512];
    unsigned line = 0, col = 0;
    const slc_map_field_t *f = cx->field;
    vsnprintf(msg, sizeof msg, fmt, ap);
    slc_map__position(f, n ? n->pos : 0, &line, &col);
    if (cx->err && cx->errlen) {
        bool drop = f == &cx->m->drop;
        int w = snprintf(cx->err, cx->errlen, "mapping '%s': %s%s%s (%s:%u:%u): %s",
                         cx->m->name, drop ? "" : "field '", f->target, drop ? "" : "'",
                         cx->m->origin, line, col, msg);
        if (src && n && n->src && w >= 0 && (size_t) w < cx->errlen)
            snprintf(cx->err + w, cx->errlen - (size_t) w, " (from %s)", n->src);
    }
    return SL_EINVAL;
}

int slc_map__fail(slc_map_ctx_t *cx, const slc_map_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_vfail(cx, n, true, fmt, ap);
    va_end(ap);
    return rc;
}

static int s_fail_plain(slc_map_ctx_t *cx, const slc_map_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail_plain(slc_map_ctx_t *cx, const slc_map_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_vfail(cx, n, false, fmt, ap);
    va_end(ap);
    return rc;
}

int slc_map__missing(slc_map_ctx_t *cx, const slc_map_node_t *n)
{
    if (n->src)
        return s_fail_plain(cx, n, "%s is missing (write %s ?? DEFAULT to give a default)",
                            n->src, n->src);
    return s_fail_plain(cx, n, "a value is missing");
}

/* The value of node N has the wrong type for WHAT. */
static int s_bad_type(slc_map_ctx_t *cx, const slc_map_node_t *n,
                      const slc_map_val_t *v, const char *what, const char *want)
{
    if (v->t == SLC_V_MISSING)
        return slc_map__missing(cx, n);
    return slc_map__fail(cx, n, "%s expects %s, got %s %s", what, want,
                         v->t == SLC_V_ARR || v->t == SLC_V_OBJ ? "an" : "a",
                         slc_map__val_type(v));
}

static int s_steps(slc_map_ctx_t *cx, const slc_map_node_t *n, size_t k)
{
    cx->steps += k;
    if (cx->steps > SLC_MAP_STEPS_MAX)
        return s_fail_plain(cx, n, "evaluation limit reached (%d steps for one message)",
                            SLC_MAP_STEPS_MAX);
    return 0;
}

int slc_map__charge(slc_map_ctx_t *cx, const slc_map_node_t *n, size_t len)
{
    if (len > SLC_MAP_STR_MAX)
        return s_fail_plain(cx, n, "string too long (%zu bytes, limit %u)", len, SLC_MAP_STR_MAX);
    cx->bytes += len;
    if (cx->bytes > SLC_MAP_BYTES_MAX)
        return s_fail_plain(cx, n, "output limit reached (%u bytes built for one message)",
                            SLC_MAP_BYTES_MAX);
    return 0;
}

int slc_map__str_new(slc_map_ctx_t *cx, const slc_map_node_t *n, size_t len,
                     slc_map_val_t *out)
{
    int rc = slc_map__charge(cx, n, len);
    if (rc != 0)
        goto fail;
    memset(out, 0, sizeof *out);
    out->buf = malloc(len + 1);
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

/* ---- JSON out */

static int s_array_full(slc_map_ctx_t *cx, const slc_map_node_t *n, const json_t *arr)
{
    if (json_array_size(arr) >= SLC_MAP_ARRAY_MAX)
        return s_fail_plain(cx, n, "array too long (limit %d elements)", SLC_MAP_ARRAY_MAX);
    return 0;
}

/* A copy of J that shares nothing, counted against the limits. */
static int s_copy(slc_map_ctx_t *cx, const slc_map_node_t *n, json_t *j,
                  unsigned depth, json_t **out)
{
    int rc = 0;
    json_t *c = NULL, *kid = NULL;
    *out = NULL;
    if (depth > SLC_MAP_JSON_DEPTH) {
        rc = s_fail_plain(cx, n, "value nested too deeply (limit %d levels)", SLC_MAP_JSON_DEPTH);
        goto fail;
    }
    rc = slc_map__charge(cx, n, 16);
    if (rc != 0)
        goto fail;
    if (json_is_object(j)) {
        const char *key;
        size_t klen;
        json_t *v;
        c = json_object();
        if (!c) {
            rc = SL_ENOMEM;
            goto fail;
        }
        json_object_keylen_foreach(j, key, klen, v) {
            rc = slc_map__charge(cx, n, klen);
            if (rc == 0)
                rc = s_copy(cx, n, v, depth + 1, &kid);
            if (rc != 0)
                goto fail;
            if (json_object_setn_new_nocheck(c, key, klen, kid) != 0) {
                rc = SL_ENOMEM;
                goto fail;
            }
        }
    } else if (json_is_array(j)) {
        c = json_array();
        if (!c) {
            rc = SL_ENOMEM;
            goto fail;
        }
        for (size_t k = 0; k < json_array_size(j); k++) {
            rc = s_copy(cx, n, json_array_get(j, k), depth + 1, &kid);
            if (rc != 0)
                goto fail;
            if (json_array_append_new(c, kid) != 0) {
                rc = SL_ENOMEM;
                goto fail;
            }
        }
    } else {
        if (json_is_string(j))
            rc = slc_map__charge(cx, n, json_string_length(j));
        if (rc != 0)
            goto fail;
        c = json_copy(j);
        if (!c) {
            rc = SL_ENOMEM;
            goto fail;
        }
    }
    *out = c;
    c = NULL;
fail:
    json_decref(c);
    return rc;
}

int slc_map__to_json(slc_map_ctx_t *cx, const slc_map_node_t *n,
                     const slc_map_val_t *v, bool share, json_t **out)
{
    int rc = 0;
    json_t *j = NULL;
    *out = NULL;
    switch (v->t) {
    case SLC_V_MISSING:
        rc = slc_map__missing(cx, n);
        goto fail;
    case SLC_V_NULL: j = json_null(); break;
    case SLC_V_BOOL: j = json_boolean(v->u.b); break;
    case SLC_V_INT: j = json_integer(v->u.i); break;
    case SLC_V_REAL: j = json_real(v->u.d); break;
    case SLC_V_STR:
        if (share && v->node) {
            j = json_incref(v->node);
            break;
        }
        rc = slc_map__charge(cx, n, v->u.s.n);
        if (rc != 0)
            goto fail;
        /* Every string of an evaluation is valid UTF-8: the document's
         * (jansson checked it), the mapping's (YAML and the lexer checked
         * them), and what functions build from those (they cut only at
         * ASCII bytes or at a valid separator). */
        j = json_stringn_nocheck(v->u.s.p, v->u.s.n);
        break;
    case SLC_V_ARR:
    case SLC_V_OBJ:
        if (share) {
            j = json_incref(v->node);
            break;
        }
        rc = s_copy(cx, n, v->node, 0, &j);
        if (rc != 0)
            goto fail;
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

/* ---- paths */

static json_t *s_step(json_t *j, const slc_map_step_t *st)
{
    if (st->kind == SLC_STEP_MEMBER)
        return json_is_object(j) ? json_object_getn(j, st->name, st->len) : NULL;
    return json_is_array(j) ? json_array_get(j, st->index) : NULL;
}

/* Apply steps K.. of N to J, appending what they reach to ARR; a [*]
 * applies the rest to every element (recursion: one level per [*]). */
static int s_walk(slc_map_ctx_t *cx, const slc_map_node_t *n, json_t *j,
                  size_t k, json_t *arr)
{
    int rc = 0;
    for (; k < n->nsteps && j; k++) {
        const slc_map_step_t *st = &n->steps[k];
        if (st->kind != SLC_STEP_ALL) {
            j = s_step(j, st);
            continue;
        }
        if (!json_is_array(j))
            goto fail;
        for (size_t e = 0; e < json_array_size(j) && rc == 0; e++) {
            rc = s_steps(cx, n, 1);
            if (rc == 0)
                rc = s_walk(cx, n, json_array_get(j, e), k + 1, arr);
        }
        goto fail;
    }
    if (!j)
        goto fail;
    rc = s_array_full(cx, n, arr);
    if (rc != 0)
        goto fail;
    if (json_array_append(arr, j) != 0)
        rc = SL_ENOMEM;
fail:
    return rc;
}

static int s_path(slc_map_ctx_t *cx, const slc_map_node_t *n, slc_map_val_t *out)
{
    int rc = 0;
    slc_map_val_t base = { 0 };
    const slc_map_node_t *b = n->kids[0];
    json_t *j = NULL, *arr = NULL;
    /* The document is const to the caller; jansson's getters are not, and
     * nothing below writes through these pointers (references taken on
     * them are given back before the call returns). */
    if (b->kind == SLC_N_ROOT)
        j = (json_t *) cx->doc;
    else if (b->kind == SLC_N_META)
        j = (json_t *) cx->meta;
    else if (b->kind == SLC_N_VAR)
        j = cx->vars[b->slot].node;
    else {
        rc = slc_map__eval(cx, b, &base);
        if (rc != 0)
            goto fail;
        j = base.t == SLC_V_ARR || base.t == SLC_V_OBJ ? base.node : NULL;
    }
    if (!n->star) {
        for (size_t k = 0; k < n->nsteps && j; k++)
            j = s_step(j, &n->steps[k]);
        slc_map__val_of(j, out);
        if (j && base.ref)          /* keep what we point into alive */
            out->ref = json_incref(j);
        goto fail;
    }
    arr = json_array();
    if (!arr) {
        rc = SL_ENOMEM;
        goto fail;
    }
    rc = s_walk(cx, n, j, 0, arr);
    if (rc != 0)
        goto fail;
    slc_map__val_of(arr, out);
    out->ref = arr;
    arr = NULL;
fail:
    json_decref(arr);
    slc_map__val_release(&base);
    return rc;
}

/* ---- operators */

static bool s_num(const slc_map_val_t *v)
{
    return v->t == SLC_V_INT || v->t == SLC_V_REAL;
}

/* long double holds every int64 exactly on the platforms we build for,
 * so mixed comparisons are exact. */
static long double s_ld(const slc_map_val_t *v)
{
    return v->t == SLC_V_INT ? (long double) v->u.i : (long double) v->u.d;
}

static int s_finite(slc_map_ctx_t *cx, const slc_map_node_t *n, double d,
                    slc_map_val_t *out)
{
    if (!isfinite(d))
        return slc_map__fail(cx, n, "result is not a finite number");
    out->t = SLC_V_REAL;
    out->u.d = d;
    return 0;
}

static int s_arith(slc_map_ctx_t *cx, const slc_map_node_t *n, slc_map_val_t *out)
{
    int rc = 0;
    slc_map_val_t a = { 0 }, b = { 0 };
    const char *op = slc_map__tok_name(n->op);
    rc = slc_map__eval(cx, n->kids[0], &a);
    if (rc == 0)
        rc = slc_map__eval(cx, n->kids[1], &b);
    if (rc != 0)
        goto fail;
    if (!s_num(&a) || !s_num(&b)) {
        int bad = s_num(&a) ? 1 : 0;
        rc = s_bad_type(cx, n->kids[bad], bad ? &b : &a, op, "numbers");
        goto fail;
    }
    if ((n->op == SLC_TK_SLASH || n->op == SLC_TK_PCT)
        && (b.t == SLC_V_INT ? b.u.i == 0 : b.u.d == 0.0)) {
        rc = slc_map__fail(cx, n->kids[1], "division by zero");
        goto fail;
    }
    if (a.t == SLC_V_INT && b.t == SLC_V_INT && n->op != SLC_TK_SLASH) {
        json_int_t r = 0;
        bool over = false;
        switch (n->op) {
        case SLC_TK_PLUS: over = __builtin_add_overflow(a.u.i, b.u.i, &r); break;
        case SLC_TK_MINUS: over = __builtin_sub_overflow(a.u.i, b.u.i, &r); break;
        case SLC_TK_STAR: over = __builtin_mul_overflow(a.u.i, b.u.i, &r); break;
        default: r = b.u.i == -1 ? 0 : a.u.i % b.u.i; break;   /* INT64_MIN % -1 traps */
        }
        if (over) {
            rc = slc_map__fail(cx, n, "integer overflow in %s", op);
            goto fail;
        }
        out->t = SLC_V_INT;
        out->u.i = r;
        goto fail;
    }
    double x = (double) s_ld(&a), y = (double) s_ld(&b), r;
    switch (n->op) {
    case SLC_TK_PLUS: r = x + y; break;
    case SLC_TK_MINUS: r = x - y; break;
    case SLC_TK_STAR: r = x * y; break;
    case SLC_TK_SLASH: r = x / y; break;
    default: r = fmod(x, y); break;
    }
    rc = s_finite(cx, n, r, out);
fail:
    slc_map__val_release(&a);
    slc_map__val_release(&b);
    return rc;
}

static int s_json_equal(slc_map_ctx_t *cx, const slc_map_node_t *n, json_t *x,
                        json_t *y, unsigned depth, bool *eq);

/* Deep equality; missing counts as null (so $.flag == true is false when
 * flag is absent). */
static int s_equal(slc_map_ctx_t *cx, const slc_map_node_t *n,
                   const slc_map_val_t *a, const slc_map_val_t *b, bool *eq)
{
    int ta = a->t == SLC_V_MISSING ? SLC_V_NULL : a->t;
    int tb = b->t == SLC_V_MISSING ? SLC_V_NULL : b->t;
    *eq = false;
    if (s_num(a) && s_num(b)) {
        *eq = s_ld(a) == s_ld(b);
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

static int s_json_equal(slc_map_ctx_t *cx, const slc_map_node_t *n, json_t *x,
                        json_t *y, unsigned depth, bool *eq)
{
    int rc = 0;
    slc_map_val_t a, b;
    *eq = false;
    if (depth > SLC_MAP_JSON_DEPTH) {
        rc = s_fail_plain(cx, n, "value nested too deeply to compare (limit %d levels)",
                          SLC_MAP_JSON_DEPTH);
        goto fail;
    }
    rc = s_steps(cx, n, 1);
    if (rc != 0)
        goto fail;
    slc_map__val_of(x, &a);
    slc_map__val_of(y, &b);
    if (a.t == SLC_V_ARR && b.t == SLC_V_ARR) {
        size_t len = json_array_size(x);
        if (len != json_array_size(y))
            goto fail;
        *eq = true;
        for (size_t k = 0; k < len && *eq && rc == 0; k++)
            rc = s_json_equal(cx, n, json_array_get(x, k), json_array_get(y, k), depth + 1, eq);
    } else if (a.t == SLC_V_OBJ && b.t == SLC_V_OBJ) {
        const char *key;
        size_t klen;
        json_t *v;
        if (json_object_size(x) != json_object_size(y))
            goto fail;
        *eq = true;
        json_object_keylen_foreach(x, key, klen, v) {
            json_t *w = json_object_getn(y, key, klen);
            if (!w) {
                *eq = false;
                break;
            }
            rc = s_json_equal(cx, n, v, w, depth + 1, eq);
            if (rc != 0 || !*eq)
                break;
        }
    } else {
        rc = s_equal(cx, n, &a, &b, eq);
    }
fail:
    return rc;
}

static int s_cmp(slc_map_ctx_t *cx, const slc_map_node_t *n, slc_map_val_t *out)
{
    int rc = 0;
    slc_map_val_t a = { 0 }, b = { 0 };
    bool r = false;
    rc = slc_map__eval(cx, n->kids[0], &a);
    if (rc == 0)
        rc = slc_map__eval(cx, n->kids[1], &b);
    if (rc != 0)
        goto fail;
    if (n->op == SLC_TK_EQ || n->op == SLC_TK_NE) {
        rc = s_equal(cx, n, &a, &b, &r);
        if (n->op == SLC_TK_NE)
            r = !r;
    } else if (a.t == SLC_V_MISSING || b.t == SLC_V_MISSING) {
        rc = slc_map__missing(cx, n->kids[a.t == SLC_V_MISSING ? 0 : 1]);
    } else {
        int c = 0;
        if (s_num(&a) && s_num(&b)) {
            long double x = s_ld(&a), y = s_ld(&b);
            c = x < y ? -1 : x > y ? 1 : 0;
            if (isnan(x) || isnan(y))
                c = 2;              /* never from JSON; keeps every test false */
        } else if (a.t == SLC_V_STR && b.t == SLC_V_STR) {
            size_t m = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
            c = memcmp(a.u.s.p, b.u.s.p, m);
            if (c == 0)
                c = a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n ? 1 : 0;
            c = c < 0 ? -1 : c > 0 ? 1 : 0;
        } else {
            rc = slc_map__fail(cx, n, "%s compares two numbers or two strings, got %s and %s",
                               slc_map__tok_name(n->op), slc_map__val_type(&a),
                               slc_map__val_type(&b));
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
    slc_map__val_release(&a);
    slc_map__val_release(&b);
    return rc;
}

/* The boolean value of node N for WHAT (and, or, not, if, drop_if). */
static int s_bool(slc_map_ctx_t *cx, const slc_map_node_t *n, const char *what, bool *b)
{
    slc_map_val_t v = { 0 };
    int rc = slc_map__eval(cx, n, &v);
    if (rc == 0 && v.t != SLC_V_BOOL)
        rc = s_bad_type(cx, n, &v, what, "a boolean");
    if (rc == 0)
        *b = v.u.b;
    slc_map__val_release(&v);
    return rc;
}

/* ---- builders */

/* Evaluate KID into a new JSON value *J (caller owns) for an array or
 * object literal. */
static int s_kid_json(slc_map_ctx_t *cx, const slc_map_node_t *kid, json_t **j)
{
    slc_map_val_t v = { 0 };
    int rc = slc_map__eval(cx, kid, &v);
    if (rc == 0)
        rc = slc_map__to_json(cx, kid, &v, true, j);
    slc_map__val_release(&v);
    return rc;
}

static int s_array(slc_map_ctx_t *cx, const slc_map_node_t *n, slc_map_val_t *out)
{
    int rc = 0;
    json_t *arr = json_array(), *j = NULL;
    if (!arr) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (size_t k = 0; k < n->nkids; k++) {
        rc = s_kid_json(cx, n->kids[k], &j);
        if (rc != 0)
            goto fail;
        if (json_array_append_new(arr, j) != 0) {
            rc = SL_ENOMEM;
            goto fail;
        }
    }
    slc_map__val_of(arr, out);
    out->ref = arr;
    arr = NULL;
fail:
    json_decref(arr);
    return rc;
}

static int s_object(slc_map_ctx_t *cx, const slc_map_node_t *n, slc_map_val_t *out)
{
    int rc = 0;
    json_t *obj = json_object(), *j = NULL;
    if (!obj) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (size_t k = 0; k < n->nkids; k++) {
        rc = s_kid_json(cx, n->kids[k], &j);
        if (rc != 0)
            goto fail;
        /* Member names come from the lexer: valid UTF-8. */
        if (json_object_setn_new_nocheck(obj, n->keys[k], n->keylens[k], j) != 0) {
            rc = SL_ENOMEM;
            goto fail;
        }
    }
    slc_map__val_of(obj, out);
    out->ref = obj;
    obj = NULL;
fail:
    json_decref(obj);
    return rc;
}

/* map(ARR, x => e) and filter(ARR, x => cond). */
static int s_lambda(slc_map_ctx_t *cx, const slc_map_node_t *n, slc_map_val_t *out)
{
    int rc = 0;
    slc_map_val_t arr = { 0 }, v = { 0 };
    const slc_map_node_t *lam = n->kids[1], *body = lam->kids[0];
    bool filter = n->fn->name[0] == 'f';
    json_t *res = NULL, *j = NULL;
    char what[16];
    snprintf(what, sizeof what, "%s()", n->fn->name);
    rc = slc_map__eval(cx, n->kids[0], &arr);
    if (rc != 0)
        goto fail;
    if (arr.t != SLC_V_ARR) {
        rc = s_bad_type(cx, n->kids[0], &arr, what, "an array");
        goto fail;
    }
    res = json_array();
    if (!res) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (size_t k = 0; k < json_array_size(arr.node); k++) {
        json_t *e = json_array_get(arr.node, k);
        rc = s_steps(cx, n, 1);
        if (rc != 0)
            goto fail;
        slc_map__val_of(e, &cx->vars[lam->slot]);
        if (filter) {
            bool keep = false;
            rc = s_bool(cx, body, "the filter condition", &keep);
            if (rc != 0)
                goto fail;
            if (!keep)
                continue;
            j = json_incref(e);
        } else {
            rc = slc_map__eval(cx, body, &v);
            if (rc == 0)
                rc = slc_map__to_json(cx, body, &v, true, &j);
            slc_map__val_release(&v);
            if (rc != 0)
                goto fail;
        }
        rc = s_array_full(cx, n, res);
        if (rc == 0 && json_array_append_new(res, j) != 0)
            rc = SL_ENOMEM;
        j = NULL;
        if (rc != 0)
            goto fail;
    }
    slc_map__val_of(res, out);
    out->ref = res;
    res = NULL;
fail:
    memset(&cx->vars[lam->slot], 0, sizeof cx->vars[lam->slot]);
    json_decref(j);
    json_decref(res);
    slc_map__val_release(&arr);
    return rc;
}

static int s_call(slc_map_ctx_t *cx, const slc_map_node_t *n, slc_map_val_t *out)
{
    int rc = 0;
    slc_map_val_t args[SLC_MAP_ARGS_MAX];
    size_t k = 0;
    if (!n->fn->impl)
        return s_lambda(cx, n, out);
    memset(args, 0, n->nkids * sizeof args[0]);
    for (k = 0; k < n->nkids; k++) {
        if (k == 0 && (n->fn->flags & SLC_FN_TABLE))
            continue;
        rc = slc_map__eval(cx, n->kids[k], &args[k]);
        if (rc != 0)
            goto fail;
    }
    rc = n->fn->impl(cx, n, args, out);
fail:
    for (size_t j = 0; j < n->nkids; j++)
        slc_map__val_release(&args[j]);
    return rc;
}

int slc_map__eval(slc_map_ctx_t *cx, const slc_map_node_t *n, slc_map_val_t *out)
{
    int rc = 0;
    bool b = false;
    memset(out, 0, sizeof *out);
    rc = s_steps(cx, n, 1);
    if (rc != 0)
        goto fail;
    switch (n->kind) {
    case SLC_N_NULL: out->t = SLC_V_NULL; break;
    case SLC_N_BOOL: out->t = SLC_V_BOOL; out->u.b = n->i != 0; break;
    case SLC_N_INT: out->t = SLC_V_INT; out->u.i = n->i; break;
    case SLC_N_REAL: out->t = SLC_V_REAL; out->u.d = n->d; break;
    case SLC_N_STR:
        out->t = SLC_V_STR;
        out->u.s.p = n->s;
        out->u.s.n = n->slen;
        break;
    case SLC_N_ROOT: slc_map__val_of((json_t *) cx->doc, out); break;
    case SLC_N_META: slc_map__val_of((json_t *) cx->meta, out); break;
    case SLC_N_VAR:
        *out = cx->vars[n->slot];
        out->ref = NULL;            /* a borrowed view of the parameter */
        out->buf = NULL;
        break;
    case SLC_N_PATH: rc = s_path(cx, n, out); break;
    case SLC_N_ARRAY: rc = s_array(cx, n, out); break;
    case SLC_N_OBJECT: rc = s_object(cx, n, out); break;
    case SLC_N_NEG:
        rc = slc_map__eval(cx, n->kids[0], out);
        if (rc != 0)
            break;
        if (out->t == SLC_V_INT && out->u.i != INT64_MIN)
            out->u.i = -out->u.i;
        else if (out->t == SLC_V_INT)
            rc = slc_map__fail(cx, n, "integer overflow in '-'");
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
        rc = slc_map__eval(cx, n->kids[0], out);
        if (rc == 0 && (out->t == SLC_V_MISSING || out->t == SLC_V_NULL)) {
            slc_map__val_release(out);
            rc = slc_map__eval(cx, n->kids[1], out);
        }
        break;
    case SLC_N_IF:
        rc = s_bool(cx, n->kids[0], "'if'", &b);
        if (rc == 0)
            rc = slc_map__eval(cx, n->kids[b ? 1 : 2], out);
        break;
    case SLC_N_CALL: rc = s_call(cx, n, out); break;
    default:
        rc = SL_EINTERNAL;          /* lambdas are run by s_lambda */
        break;
    }
fail:
    if (rc != 0)
        slc_map__val_release(out);
    return rc;
}
