/*  slt_map_fn - the builtin functions of the mapping language: their table
 *  (names, arity, argument and result types, for the checker) and their
 *  run-time bodies (docs/mapping.md, "Functions"). map and filter are in
 *  the table but run by the evaluator, which owns lambda parameters.
 *  Numbers and times are read and written in the C locale whatever the
 *  process's LC_* say; times are milliseconds since the epoch, UTC.
 *  Reentrant: no state outside the call's context.  */
#include "slt_map_int.h"
#include "slc.h"
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_NUM (SLT_MAP_T_NUMBER | SLT_MAP_T_INTEGER)
#define S_SCALAR (SLT_MAP_T_STRING | S_NUM | SLT_MAP_T_BOOLEAN)
#define S_TIME_TEXT_MAX 256         /* bytes of a time or format given to libc */

/* Run-time kinds an argument may have, as bits of SLC_V_*. */
#define S_K(t) (1u << (t))
#define S_K_NUM (S_K(SLC_V_INT) | S_K(SLC_V_REAL))
#define S_K_SCALAR (S_K(SLC_V_STR) | S_K_NUM | S_K(SLC_V_BOOL))

/* Argument K of CALL must be of one of KINDS (WANT says which in words). */
static int s_arg(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                 size_t k, unsigned kinds, const char *want)
{
    const slt_map_val_t *v = &args[k];
    if (kinds & S_K(v->t))
        return 0;
    if (v->t == SLC_V_MISSING)
        return slt_map__missing(cx, call->kids[k]);
    return slt_map__fail(cx, call->kids[k], "%s() expects %s, got %s %s", call->fn->name,
                         want, v->t == SLC_V_ARR || v->t == SLC_V_OBJ ? "an" : "a",
                         slt_map__val_type(v));
}

/* Hand argument K over to OUT (it keeps what K owned). */
static void s_move(slt_map_val_t *args, size_t k, slt_map_val_t *out)
{
    *out = args[k];
    memset(&args[k], 0, sizeof args[k]);
}

bool slt_map__scalar_text(slt_map_ctx_t *cx, const slt_map_val_t *v,
                          char *buf, size_t len, const char **p, size_t *n)
{
    int w = -1;
    switch (v->t) {
    case SLC_V_STR:
        *p = v->u.s.p;
        *n = v->u.s.n;
        return true;
    case SLC_V_BOOL:
        *p = v->u.b ? "true" : "false";
        *n = strlen(*p);
        return true;
    case SLC_V_INT:
        w = snprintf(buf, len, "%lld", (long long) v->u.i);
        break;
    case SLC_V_REAL:
        /* The shortest of 15, 16 or 17 digits that reads back the same. */
        for (int prec = 15; prec <= 17; prec++) {
            w = snprintf(buf, len, "%.*g", prec, v->u.d);
            for (int k = 0; k < w; k++)
                if (buf[k] == ',')      /* a decimal comma from LC_NUMERIC */
                    buf[k] = '.';
            if (strtod_l(buf, NULL, cx->m->c_locale) == v->u.d)
                break;
        }
        break;
    default:
        return false;
    }
    if (w < 0 || (size_t) w >= len)
        return false;
    *p = buf;
    *n = (size_t) w;
    return true;
}

static int s_real(slt_map_ctx_t *cx, const slt_map_node_t *call, double d,
                  slt_map_val_t *out)
{
    if (!isfinite(d))
        return slt_map__fail(cx, call, "%s() result is not a finite number", call->fn->name);
    out->t = SLC_V_REAL;
    out->u.d = d;
    return 0;
}

static bool s_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ---- strings */

static int s_case(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                  slt_map_val_t *out, bool up)
{
    int rc = s_arg(cx, call, args, 0, S_K(SLC_V_STR), "a string");
    const char *p = args[0].u.s.p;
    size_t n = args[0].u.s.n, k = 0;
    if (rc != 0)
        goto fail;
    char lo = up ? 'a' : 'A', hi = up ? 'z' : 'Z';
    while (k < n && !(p[k] >= lo && p[k] <= hi))
        k++;
    if (k == n) {                   /* nothing to change: no copy */
        s_move(args, 0, out);
        goto fail;
    }
    rc = slt_map__str_new(cx, call, n, out);
    if (rc != 0)
        goto fail;
    for (k = 0; k < n; k++) {
        char c = p[k];
        out->buf[k] = c >= lo && c <= hi ? (char) (c ^ 0x20) : c;
    }
fail:
    return rc;
}

static int s_lower(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                   slt_map_val_t *out)
{
    return s_case(cx, call, args, out, false);
}

static int s_upper(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                   slt_map_val_t *out)
{
    return s_case(cx, call, args, out, true);
}

/* *OUT = bytes [A, B) of the string argument 0, taking what it holds: a
 * slice kept alive by that, no longer the whole JSON string (unless it is
 * all of it). */
static void s_slice(slt_map_val_t *args, slt_map_val_t *out, size_t a, size_t b)
{
    const char *p = args[0].u.s.p;
    size_t n = args[0].u.s.n;
    s_move(args, 0, out);
    if (a == 0 && b == n)
        return;
    out->node = NULL;
    out->u.s.p = p + a;
    out->u.s.n = b - a;
}

static int s_trim(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                  slt_map_val_t *out)
{
    int rc = s_arg(cx, call, args, 0, S_K(SLC_V_STR), "a string");
    if (rc != 0)
        goto fail;
    const char *p = args[0].u.s.p;
    size_t a = 0, b = args[0].u.s.n;
    while (a < b && s_space(p[a]))
        a++;
    while (b > a && s_space(p[b - 1]))
        b--;
    s_slice(args, out, a, b);
fail:
    return rc;
}

static int s_concat(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                    slt_map_val_t *out)
{
    int rc = 0;
    char bufs[SLT_MAP_ARGS_MAX][32];
    const char *p[SLT_MAP_ARGS_MAX];
    size_t n[SLT_MAP_ARGS_MAX], total = 0;
    for (size_t k = 0; k < call->nkids; k++) {
        rc = s_arg(cx, call, args, k, S_K_SCALAR, "strings, numbers or booleans");
        if (rc != 0)
            goto fail;
        if (!slt_map__scalar_text(cx, &args[k], bufs[k], sizeof bufs[k], &p[k], &n[k])) {
            rc = SL_EINTERNAL;      /* s_arg let only scalars through */
            goto fail;
        }
        total += n[k];
    }
    rc = slt_map__str_new(cx, call, total, out);
    if (rc != 0)
        goto fail;
    total = 0;
    for (size_t k = 0; k < call->nkids; k++) {
        memcpy(out->buf + total, p[k], n[k]);
        total += n[k];
    }
fail:
    return rc;
}

static int s_split(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                   slt_map_val_t *out)
{
    int rc = s_arg(cx, call, args, 0, S_K(SLC_V_STR), "a string");
    cJSON *arr = NULL, *j = NULL;
    size_t count = 0;
    if (rc == 0)
        rc = s_arg(cx, call, args, 1, S_K(SLC_V_STR), "a string");
    if (rc != 0)
        goto fail;
    const char *s = args[0].u.s.p, *sep = args[1].u.s.p;
    size_t n = args[0].u.s.n, m = args[1].u.s.n;
    if (m == 0) {
        rc = slt_map__fail(cx, call->kids[1], "split() needs a separator that is not empty");
        goto fail;
    }
    arr = cJSON_CreateArray();
    if (!arr) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (;;) {
        const char *hit = memmem(s, n, sep, m);
        size_t len = hit ? (size_t) (hit - s) : n;
        if (count >= SLT_MAP_ARRAY_MAX) {
            rc = slt_map__fail(cx, call, "split() gives more than %d parts", SLT_MAP_ARRAY_MAX);
            goto fail;
        }
        rc = slt_map__charge(cx, call, 16);
        /* A valid UTF-8 separator never matches inside a character. */
        if (rc == 0)
            rc = slt_map__str_item(cx, call, s, len, &j);
        if (rc != 0)
            goto fail;
        if (!cJSON_AddItemToArray(arr, j)) {
            rc = SL_ENOMEM;
            goto fail;
        }
        j = NULL;
        count++;
        if (!hit)
            break;
        s = hit + m;
        n -= len + m;
    }
    slt_map__val_of(arr, out);      /* parts are copies: nothing borrowed */
    out->own = arr;
    arr = NULL;
fail:
    cJSON_Delete(j);
    cJSON_Delete(arr);
    return rc;
}

static int s_join(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                  slt_map_val_t *out)
{
    int rc = s_arg(cx, call, args, 0, S_K(SLC_V_ARR), "an array");
    char num[32];
    const char *p;
    size_t n, total = 0;
    slt_map_val_t e;
    if (rc == 0)
        rc = s_arg(cx, call, args, 1, S_K(SLC_V_STR), "a string");
    if (rc != 0)
        goto fail;
    const cJSON *arr = args[0].node, *j;
    size_t k = 0, m = args[1].u.s.n;
    cJSON_ArrayForEach(j, arr) {
        slt_map__val_of(j, &e);
        if (!slt_map__scalar_text(cx, &e, num, sizeof num, &p, &n)) {
            rc = slt_map__fail(cx, call->kids[0], "join() expects strings, numbers or booleans, "
                               "got %s%s at index %zu", e.t == SLC_V_NULL ? "" : "an ",
                               slt_map__val_type(&e), k);
            goto fail;
        }
        total += n + (k ? m : 0);
        k++;
        if (total > SLT_MAP_STR_MAX)
            break;              /* str_new says why */
    }
    rc = slt_map__str_new(cx, call, total, out);
    if (rc != 0)
        goto fail;
    total = 0;
    k = 0;
    cJSON_ArrayForEach(j, arr) {
        slt_map__val_of(j, &e);
        if (!slt_map__scalar_text(cx, &e, num, sizeof num, &p, &n)) {
            rc = SL_EINTERNAL;      /* the first pass checked every element */
            goto fail;
        }
        if (k) {
            memcpy(out->buf + total, args[1].u.s.p, m);
            total += m;
        }
        memcpy(out->buf + total, p, n);
        total += n;
        k++;
    }
fail:
    return rc;
}

/* replace(s, old, new): every occurrence of OLD, left to right, without
 * overlaps. A valid UTF-8 OLD only matches whole characters. */
static int s_replace(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                     slt_map_val_t *out)
{
    int rc = 0;
    for (size_t k = 0; k < 3 && rc == 0; k++)
        rc = s_arg(cx, call, args, k, S_K(SLC_V_STR), "a string");
    if (rc != 0)
        goto fail;
    const char *s = args[0].u.s.p, *old = args[1].u.s.p, *rep = args[2].u.s.p, *hit;
    size_t n = args[0].u.s.n, m = args[1].u.s.n, r = args[2].u.s.n, hits = 0, k = 0;
    if (m == 0) {
        rc = slt_map__fail(cx, call->kids[1], "replace() needs a string to replace that is not empty");
        goto fail;
    }
    while ((hit = memmem(s + k, n - k, old, m))) {
        hits++;
        k = (size_t) (hit - s) + m;
    }
    if (hits == 0) {                /* nothing to change: no copy */
        s_move(args, 0, out);
        goto fail;
    }
    /* n, r <= SLT_MAP_STR_MAX and hits <= n: no overflow; str_new refuses
     * a result past the limit. */
    rc = slt_map__str_new(cx, call, n - hits * m + hits * r, out);
    if (rc != 0)
        goto fail;
    size_t w = 0;
    k = 0;
    while ((hit = memmem(s + k, n - k, old, m))) {
        size_t len = (size_t) (hit - s) - k;
        memcpy(out->buf + w, s + k, len);
        memcpy(out->buf + w + len, rep, r);
        w += len + r;
        k += len + m;
    }
    memcpy(out->buf + w, s + k, n - k);
fail:
    return rc;
}

/* Byte offset of code point CP (at most the string's count) in P. */
static size_t s_cp_offset(const char *p, size_t n, int64_t cp)
{
    size_t k = 0;
    for (; k < n; k++)
        if (((unsigned char) p[k] & 0xC0) != 0x80 && cp-- == 0)
            break;
    return k;
}

/* substring(s, start[, length]) in code points: a negative START counts
 * from the end; START and LENGTH are clamped to the string. A slice of
 * the argument, not a copy. */
static int s_substring(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                       slt_map_val_t *out)
{
    int rc = s_arg(cx, call, args, 0, S_K(SLC_V_STR), "a string");
    if (rc == 0)
        rc = s_arg(cx, call, args, 1, S_K(SLC_V_INT), "an integer start");
    if (rc == 0 && call->nkids == 3)
        rc = s_arg(cx, call, args, 2, S_K(SLC_V_INT), "an integer length");
    if (rc != 0)
        goto fail;
    const char *p = args[0].u.s.p;
    size_t n = args[0].u.s.n;
    int64_t total = 0, start = args[1].u.i, len;
    for (size_t k = 0; k < n; k++)
        if (((unsigned char) p[k] & 0xC0) != 0x80)
            total++;
    if (start < 0)
        start += total;
    start = start < 0 ? 0 : start > total ? total : start;
    len = call->nkids == 3 ? args[2].u.i : total - start;
    len = len < 0 ? 0 : len > total - start ? total - start : len;
    size_t a = s_cp_offset(p, n, start);
    size_t b = a + s_cp_offset(p + a, n - a, len);
    s_slice(args, out, a, b);
fail:
    return rc;
}

/* starts_with, ends_with and contains: WHERE is -1, 1 or 0. */
static int s_has(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                 slt_map_val_t *out, int where)
{
    int rc = s_arg(cx, call, args, 0, S_K(SLC_V_STR), "a string");
    if (rc == 0)
        rc = s_arg(cx, call, args, 1, S_K(SLC_V_STR), "a string");
    if (rc != 0)
        goto fail;
    const char *s = args[0].u.s.p, *x = args[1].u.s.p;
    size_t n = args[0].u.s.n, m = args[1].u.s.n;
    out->t = SLC_V_BOOL;
    if (m > n)
        out->u.b = false;
    else if (where < 0)
        out->u.b = memcmp(s, x, m) == 0;
    else if (where > 0)
        out->u.b = memcmp(s + n - m, x, m) == 0;
    else
        out->u.b = m == 0 || memmem(s, n, x, m) != NULL;
fail:
    return rc;
}

static int s_starts_with(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                         slt_map_val_t *out)
{
    return s_has(cx, call, args, out, -1);
}

static int s_ends_with(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                       slt_map_val_t *out)
{
    return s_has(cx, call, args, out, 1);
}

static int s_contains(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                      slt_map_val_t *out)
{
    return s_has(cx, call, args, out, 0);
}

static int s_length(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                    slt_map_val_t *out)
{
    int rc = s_arg(cx, call, args, 0, S_K(SLC_V_STR) | S_K(SLC_V_ARR) | S_K(SLC_V_OBJ),
                   "a string, an array or an object");
    size_t len = 0;
    if (rc != 0)
        goto fail;
    if (args[0].t == SLC_V_STR) {
        for (size_t k = 0; k < args[0].u.s.n; k++)
            if (((unsigned char) args[0].u.s.p[k] & 0xC0) != 0x80)
                len++;
    } else {
        const cJSON *e;
        cJSON_ArrayForEach(e, args[0].node)
            len++;
        rc = slt_map__scan(cx, call, len);
        if (rc != 0)
            goto fail;
    }
    out->t = SLC_V_INT;
    out->u.i = (int64_t) len;
fail:
    return rc;
}

/* ---- conversions */

/* A NUL-terminated copy of string argument K into BUF, for libc. */
static int s_cstr(slt_map_ctx_t *cx, const slt_map_node_t *call, const slt_map_val_t *v,
                  size_t k, char *buf, size_t len)
{
    if (v->u.s.n >= len)
        return slt_map__fail(cx, call->kids[k], "%s() argument too long (limit %zu bytes)",
                             call->fn->name, len - 1);
    if (memchr(v->u.s.p, '\0', v->u.s.n))
        return slt_map__fail(cx, call->kids[k], "%s() argument contains a NUL character",
                             call->fn->name);
    memcpy(buf, v->u.s.p, v->u.s.n);
    buf[v->u.s.n] = '\0';
    return 0;
}

/* JSON's number syntax, whole string: what float() accepts. */
static bool s_json_number(const char *s, size_t n)
{
    size_t k = 0;
    if (k < n && s[k] == '-')
        k++;
    if (k == n || s[k] < '0' || s[k] > '9')
        return false;
    if (s[k] == '0')
        k++;
    else
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
    if (k < n && s[k] == '.') {
        k++;
        if (k == n || s[k] < '0' || s[k] > '9')
            return false;
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        if (k == n || s[k] < '0' || s[k] > '9')
            return false;
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
    }
    return k == n;
}

static int s_int(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                 slt_map_val_t *out)
{
    int rc = s_arg(cx, call, args, 0, S_K_SCALAR, "a number, a string or a boolean");
    const slt_map_val_t *v = &args[0];
    char buf[32];
    if (rc != 0)
        goto fail;
    out->t = SLC_V_INT;
    switch (v->t) {
    case SLC_V_INT:
        out->u.i = v->u.i;
        break;
    case SLC_V_BOOL:
        out->u.i = v->u.b;
        break;
    case SLC_V_REAL: {
        double t = trunc(v->u.d);
        if (!(t >= (double) -SLT_MAP_INT_LIMIT && t <= (double) SLT_MAP_INT_LIMIT)) {
            rc = slt_map__fail(cx, call->kids[0], "int() of a number out of the integer "
                               "range (-2^53 to 2^53)");
            goto fail;
        }
        out->u.i = (int64_t) t;
        break;
    }
    default: {
        size_t n = v->u.s.n, k = n && v->u.s.p[0] == '-' ? 1 : 0;
        bool ok = n > k && n < sizeof buf;
        for (; ok && k < n; k++)
            ok = v->u.s.p[k] >= '0' && v->u.s.p[k] <= '9';
        if (ok) {
            memcpy(buf, v->u.s.p, n);
            buf[n] = '\0';
            errno = 0;
            out->u.i = strtoll(buf, NULL, 10);
            ok = errno == 0;
        }
        if (!ok)
            rc = slt_map__fail(cx, call->kids[0], "int() expects a decimal integer in the string");
        else if (out->u.i > SLT_MAP_INT_LIMIT || out->u.i < -SLT_MAP_INT_LIMIT)
            rc = slt_map__fail(cx, call->kids[0], "int() of a number out of the integer "
                               "range (-2^53 to 2^53)");
        break;
    }
    }
fail:
    return rc;
}

static int s_float(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                   slt_map_val_t *out)
{
    int rc = s_arg(cx, call, args, 0, S_K_SCALAR, "a number, a string or a boolean");
    const slt_map_val_t *v = &args[0];
    char buf[S_TIME_TEXT_MAX];
    double d = 0;
    if (rc != 0)
        goto fail;
    switch (v->t) {
    case SLC_V_INT: d = (double) v->u.i; break;
    case SLC_V_REAL: d = v->u.d; break;
    case SLC_V_BOOL: d = v->u.b ? 1.0 : 0.0; break;
    default:
        if (!s_json_number(v->u.s.p, v->u.s.n) || v->u.s.n >= sizeof buf) {
            rc = slt_map__fail(cx, call->kids[0], "float() expects a number in the string");
            goto fail;
        }
        memcpy(buf, v->u.s.p, v->u.s.n);
        buf[v->u.s.n] = '\0';
        d = strtod_l(buf, NULL, cx->m->c_locale);
        break;
    }
    rc = s_real(cx, call, d, out);
fail:
    return rc;
}

/* string() of an array or object: compact JSON into a buffer from
 * cJSON_malloc (so that an output item can take it over) that refuses to
 * grow past SLT_MAP_STR_MAX, so a huge value (one shared many times
 * inside an array) stops early. Numbers as string() writes them. */
typedef struct {
    char *buf;
    size_t len, cap;
} s_dump_t;

static int s_dump_put(slt_map_ctx_t *cx, const slt_map_node_t *call, s_dump_t *d,
                      const char *p, size_t n)
{
    int rc = 0;
    if (n > SLT_MAP_STR_MAX - d->len) {
        rc = slt_map__fail(cx, call, "string() result longer than %u bytes", SLT_MAP_STR_MAX);
        goto fail;
    }
    if (d->len + n + 1 > d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        while (cap < d->len + n + 1)
            cap *= 2;
        char *nb = cJSON_malloc(cap);
        if (!nb) {
            rc = SL_ENOMEM;
            goto fail;
        }
        if (d->len)
            memcpy(nb, d->buf, d->len);
        cJSON_free(d->buf);
        d->buf = nb;
        d->cap = cap;
    }
    memcpy(d->buf + d->len, p, n);
    d->len += n;
    d->buf[d->len] = '\0';
fail:
    return rc;
}

/* S (NUL-terminated) as a JSON string: RFC 8259's escapes only. */
static int s_dump_str(slt_map_ctx_t *cx, const slt_map_node_t *call, s_dump_t *d, const char *s)
{
    int rc = s_dump_put(cx, call, d, "\"", 1);
    const char *run = s;
    for (; rc == 0 && *s; s++) {
        unsigned char c = (unsigned char) *s;
        char esc[8];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        const char *simple = c ? strchr("\"\\\b\f\n\r\t", c) : NULL;
        if (simple) {
            esc[0] = '\\';
            esc[1] = "\"\\bfnrt"[simple - "\"\\\b\f\n\r\t"];
        } else {
            snprintf(esc, sizeof esc, "\\u%04x", c);
        }
        rc = s_dump_put(cx, call, d, run, (size_t) (s - run));
        if (rc == 0)
            rc = s_dump_put(cx, call, d, esc, simple ? 2 : 6);
        run = s + 1;
    }
    if (rc == 0)
        rc = s_dump_put(cx, call, d, run, (size_t) (s - run));
    if (rc == 0)
        rc = s_dump_put(cx, call, d, "\"", 1);
    return rc;
}

static int s_dump(slt_map_ctx_t *cx, const slt_map_node_t *call, s_dump_t *d, const cJSON *j,
                  unsigned depth)
{
    int rc = 0;
    slt_map_val_t v;
    char num[32];
    const char *p;
    size_t n;
    if (depth > SLT_MAP_JSON_DEPTH) {
        rc = slt_map__fail(cx, call, "value nested too deeply (limit %d levels)",
                           SLT_MAP_JSON_DEPTH);
        goto fail;
    }
    slt_map__val_of(j, &v);
    if (v.t == SLC_V_ARR || v.t == SLC_V_OBJ) {
        bool obj = v.t == SLC_V_OBJ;
        const cJSON *e;
        rc = s_dump_put(cx, call, d, obj ? "{" : "[", 1);
        cJSON_ArrayForEach(e, j) {
            if (rc == 0 && e != j->child)
                rc = s_dump_put(cx, call, d, ",", 1);
            if (rc == 0 && obj)
                rc = s_dump_str(cx, call, d, e->string);
            if (rc == 0 && obj)
                rc = s_dump_put(cx, call, d, ":", 1);
            if (rc == 0)
                rc = s_dump(cx, call, d, e, depth + 1);
            if (rc != 0)
                goto fail;
        }
        rc = s_dump_put(cx, call, d, obj ? "}" : "]", 1);
    } else if (v.t == SLC_V_STR) {
        rc = s_dump_str(cx, call, d, v.u.s.p);
    } else if (v.t == SLC_V_NULL) {
        rc = s_dump_put(cx, call, d, "null", 4);
    } else if (slt_map__scalar_text(cx, &v, num, sizeof num, &p, &n)) {
        rc = s_dump_put(cx, call, d, p, n);
    } else {
        rc = SL_EINTERNAL;          /* every JSON value is one of the above */
    }
fail:
    return rc;
}

static int s_string(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                    slt_map_val_t *out)
{
    int rc = 0;
    const slt_map_val_t *v = &args[0];
    char buf[32];
    const char *p;
    size_t n;
    s_dump_t d = { 0 };
    if (v->t == SLC_V_MISSING) {
        rc = s_arg(cx, call, args, 0, 0, "a value");
        goto fail;
    }
    if (v->t == SLC_V_STR) {
        s_move(args, 0, out);
        goto fail;
    }
    if (v->t == SLC_V_NULL || slt_map__scalar_text(cx, v, buf, sizeof buf, &p, &n)) {
        if (v->t == SLC_V_NULL) {
            p = "null";
            n = 4;
        }
        rc = slt_map__str_new(cx, call, n, out);
        if (rc == 0)
            memcpy(out->buf, p, n);
        goto fail;
    }
    rc = s_dump(cx, call, &d, v->node, 0);
    if (rc == 0)
        rc = slt_map__charge(cx, call, d.len);
    if (rc != 0)
        goto fail;
    memset(out, 0, sizeof *out);
    out->t = SLC_V_STR;
    out->buf = d.buf;               /* never NULL: at least "[]" was written */
    out->u.s.p = out->buf;
    out->u.s.n = d.len;
    d.buf = NULL;
fail:
    cJSON_free(d.buf);
    return rc;
}

static int s_bool(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                  slt_map_val_t *out)
{
    int rc = s_arg(cx, call, args, 0, S_K_SCALAR, "a boolean, a number or a string");
    const slt_map_val_t *v = &args[0];
    if (rc != 0)
        goto fail;
    out->t = SLC_V_BOOL;
    switch (v->t) {
    case SLC_V_BOOL: out->u.b = v->u.b; break;
    case SLC_V_INT: out->u.b = v->u.i != 0; break;
    case SLC_V_REAL: out->u.b = v->u.d != 0.0; break;
    default:
        if (v->u.s.n == 4 && memcmp(v->u.s.p, "true", 4) == 0)
            out->u.b = true;
        else if (v->u.s.n == 5 && memcmp(v->u.s.p, "false", 5) == 0)
            out->u.b = false;
        else
            rc = slt_map__fail(cx, call->kids[0], "bool() expects \"true\" or \"false\" in the string");
        break;
    }
fail:
    return rc;
}

static int s_round(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                   slt_map_val_t *out)
{
    static const double pow10[] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    };
    int rc = s_arg(cx, call, args, 0, S_K_NUM, "a number");
    const slt_map_val_t *v = &args[0];
    if (rc != 0)
        goto fail;
    if (call->nkids == 1) {
        out->t = SLC_V_INT;
        if (v->t == SLC_V_INT) {
            out->u.i = v->u.i;
            goto fail;
        }
        double r = round(v->u.d);
        if (!(r >= (double) -SLT_MAP_INT_LIMIT && r <= (double) SLT_MAP_INT_LIMIT)) {
            rc = slt_map__fail(cx, call->kids[0], "round() of a number out of the integer "
                               "range (-2^53 to 2^53)");
            goto fail;
        }
        out->u.i = (int64_t) r;
        goto fail;
    }
    rc = s_arg(cx, call, args, 1, S_K(SLC_V_INT), "an integer number of digits");
    if (rc != 0)
        goto fail;
    int64_t d = args[1].u.i;
    if (d < -15 || d > 15) {
        rc = slt_map__fail(cx, call->kids[1], "round() takes -15 to 15 digits");
        goto fail;
    }
    double x = v->t == SLC_V_INT ? (double) v->u.i : v->u.d;
    double p = pow10[d < 0 ? -d : d];
    rc = s_real(cx, call, d >= 0 ? round(x * p) / p : round(x / p) * p, out);
fail:
    return rc;
}

/* ---- time: milliseconds since 1970-01-01T00:00:00Z */

/* Days from 1970-01-01 to Y-M-D in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil), without libc's time_t limits. */
static int64_t s_days(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned) (y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t) doe - 719468;
}

/* The inverse: Y-M-D of day Z. */
static void s_civil(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned) (z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t) yoe + era * 400 + (*m <= 2);
}

static bool s_digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t k = 0; k < n; k++) {
        if (s[k] < '0' || s[k] > '9')
            return false;
        v = v * 10 + (unsigned) (s[k] - '0');
    }
    *out = v;
    return true;
}

static bool s_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* RFC 3339 date-time (or a full-date alone) into *MS. */
static bool s_rfc3339(const char *s, size_t n, int64_t *ms)
{
    static const unsigned mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    unsigned y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, oh = 0, om = 0;
    int sign = 0;
    size_t k = 10;
    if (n < 10 || !s_digits(s, 4, &y) || s[4] != '-' || !s_digits(s + 5, 2, &mo)
        || s[7] != '-' || !s_digits(s + 8, 2, &d))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && s_leap(y)))
        return false;
    if (n > 10) {
        if (n < 20 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
            || !s_digits(s + 11, 2, &h) || s[13] != ':' || !s_digits(s + 14, 2, &mi)
            || s[16] != ':' || !s_digits(s + 17, 2, &sec) || h > 23 || mi > 59 || sec > 60)
            return false;
        k = 19;
        if (s[k] == '.') {
            size_t f = ++k;
            unsigned scale = 100;
            while (k < n && s[k] >= '0' && s[k] <= '9') {
                frac += (unsigned) (s[k] - '0') * scale;   /* digits past ms are cut */
                scale /= 10;
                k++;
            }
            if (k == f)
                return false;
        }
        if (k < n && (s[k] == 'Z' || s[k] == 'z')) {
            k++;
        } else if (k + 6 == n && (s[k] == '+' || s[k] == '-') && s_digits(s + k + 1, 2, &oh)
                   && s[k + 3] == ':' && s_digits(s + k + 4, 2, &om) && oh <= 23 && om <= 59) {
            sign = s[k] == '+' ? 1 : -1;
            k += 6;
        } else {
            return false;
        }
    }
    if (k != n)
        return false;
    int64_t secs = s_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec
                   - sign * (int64_t) (oh * 3600 + om * 60);
    *ms = secs * 1000 + frac;
    return true;
}

static int s_now(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                 slt_map_val_t *out)
{
    (void) cx;
    (void) call;
    (void) args;
    out->t = SLC_V_INT;
    out->u.i = (int64_t) (slc_now_us() / 1000);
    return 0;
}

static int s_parse_time(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                        slt_map_val_t *out)
{
    int rc = s_arg(cx, call, args, 0, S_K(SLC_V_STR), "a string");
    char s[S_TIME_TEXT_MAX], fmt[S_TIME_TEXT_MAX];
    int64_t ms = 0;
    if (rc == 0 && call->nkids == 2)
        rc = s_arg(cx, call, args, 1, S_K(SLC_V_STR), "a format string");
    if (rc != 0)
        goto fail;
    if (call->nkids == 1) {
        if (!s_rfc3339(args[0].u.s.p, args[0].u.s.n, &ms)) {
            rc = slt_map__fail(cx, call->kids[0], "parse_time() expects an RFC 3339 time "
                               "such as 2024-05-01T12:34:56Z");
            goto fail;
        }
    } else {
        rc = s_cstr(cx, call, &args[0], 0, s, sizeof s);
        if (rc == 0)
            rc = s_cstr(cx, call, &args[1], 1, fmt, sizeof fmt);
        if (rc != 0)
            goto fail;
        struct tm tm = { .tm_year = 70, .tm_mday = 1 };
        const char *end = strptime_l(s, fmt, &tm, cx->m->c_locale);
        if (!end || *end) {
            rc = slt_map__fail(cx, call->kids[0], "parse_time() input does not match the format");
            goto fail;
        }
        /* By hand rather than timegm: no time_t range to worry about, and
         * a %z offset (tm_gmtoff) is applied. */
        int64_t y = (int64_t) tm.tm_year + 1900 + tm.tm_mon / 12;
        int mon = tm.tm_mon % 12;
        if (mon < 0) {
            mon += 12;
            y--;
        }
        int64_t days = s_days(y, (unsigned) mon + 1, 1) + tm.tm_mday - 1;
        /* %Y takes any int: bound the days before multiplying. */
        const int64_t days_max = SLT_MAP_INT_LIMIT / 86400000 + 1;
        if (days <= days_max && days >= -days_max)
            ms = ((days * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec)
                  - tm.tm_gmtoff) * 1000;
        if (days > days_max || days < -days_max || ms > SLT_MAP_INT_LIMIT
            || ms < -SLT_MAP_INT_LIMIT) {
            rc = slt_map__fail(cx, call->kids[0], "parse_time() of a time out of the integer "
                               "range (-2^53 to 2^53 ms)");
            goto fail;
        }
    }
    out->t = SLC_V_INT;
    out->u.i = ms;
fail:
    return rc;
}

static int s_format_time(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                         slt_map_val_t *out)
{
    int rc = s_arg(cx, call, args, 0, S_K_NUM, "a time in milliseconds");
    char fmt[S_TIME_TEXT_MAX], buf[S_TIME_TEXT_MAX];
    size_t n = 0;
    if (rc == 0 && call->nkids == 2)
        rc = s_arg(cx, call, args, 1, S_K(SLC_V_STR), "a format string");
    if (rc != 0)
        goto fail;
    /* Years 0..9999 in ms: RFC 3339 has four year digits. */
    const double lo = -62167219200000.0, hi = 253402300800000.0;
    double t = args[0].t == SLC_V_INT ? (double) args[0].u.i : floor(args[0].u.d);
    if (!(t >= lo && t < hi)) {
        rc = slt_map__fail(cx, call->kids[0], "format_time() of a time outside the years 0-9999");
        goto fail;
    }
    int64_t ms = (int64_t) t, secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    unsigned msr = (unsigned) (ms - secs * 1000), sod = (unsigned) (secs - days * 86400), mo, d;
    int64_t y;
    s_civil(days, &y, &mo, &d);
    if (call->nkids == 1) {
        int w = msr ? snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ", (int) y, mo, d,
                               sod / 3600, sod / 60 % 60, sod % 60, msr)
                    : snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02u:%02u:%02uZ", (int) y, mo, d,
                               sod / 3600, sod / 60 % 60, sod % 60);
        n = w > 0 ? (size_t) w : 0;
    } else {
        rc = s_cstr(cx, call, &args[1], 1, fmt, sizeof fmt);
        if (rc != 0)
            goto fail;
        struct tm tm = {
            .tm_year = (int) (y - 1900), .tm_mon = (int) mo - 1, .tm_mday = (int) d,
            .tm_hour = (int) (sod / 3600), .tm_min = (int) (sod / 60 % 60),
            .tm_sec = (int) (sod % 60),
            .tm_wday = (int) (((days % 7) + 11) % 7),    /* 1970-01-01 was a Thursday */
            .tm_yday = (int) (days - s_days(y, 1, 1)),
        };
        n = fmt[0] ? strftime_l(buf, sizeof buf, fmt, &tm, cx->m->c_locale) : 0;
        if (fmt[0] && n == 0) {
            rc = slt_map__fail(cx, call->kids[1], "format_time() result is empty or longer "
                               "than %d bytes", S_TIME_TEXT_MAX - 1);
            goto fail;
        }
    }
    rc = slt_map__str_new(cx, call, n, out);
    if (rc == 0)
        memcpy(out->buf, buf, n);
fail:
    return rc;
}

/* ---- hashing and identifiers */

static int s_sha256(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                    slt_map_val_t *out)
{
    int rc = s_arg(cx, call, args, 0, S_K(SLC_V_STR), "a string");
    unsigned char h[crypto_hash_sha256_BYTES];
    if (rc != 0)
        goto fail;
    crypto_hash_sha256(h, (const unsigned char *) args[0].u.s.p, args[0].u.s.n);
    rc = slt_map__str_new(cx, call, 2 * sizeof h, out);
    if (rc == 0)
        sodium_bin2hex(out->buf, 2 * sizeof h + 1, h, sizeof h);
fail:
    return rc;
}

static int s_uuid(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                  slt_map_val_t *out)
{
    unsigned char b[16];
    char hex[33];
    (void) args;
    int rc = slt_map__str_new(cx, call, 36, out);
    if (rc != 0)
        goto fail;
    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char) ((b[6] & 0x0F) | 0x40);      /* version 4 */
    b[8] = (unsigned char) ((b[8] & 0x3F) | 0x80);      /* RFC 4122 variant */
    sodium_bin2hex(hex, sizeof hex, b, sizeof b);
    snprintf(out->buf, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
fail:
    return rc;
}

/* ---- tables */

static int s_lookup(slt_map_ctx_t *cx, const slt_map_node_t *call, slt_map_val_t *args,
                    slt_map_val_t *out)
{
    int rc = s_arg(cx, call, args, 1, S_K_SCALAR, "a string, a number or a boolean key");
    char buf[32];
    const char *p;
    size_t n;
    if (rc != 0)
        goto fail;
    if (!slt_map__scalar_text(cx, &args[1], buf, sizeof buf, &p, &n)) {
        rc = SL_EINTERNAL;          /* s_arg let only scalars through */
        goto fail;
    }
    const cJSON *v = slt_map__table_get(call->table, p, n);
    if (v) {
        slt_map__val_of(v, out);    /* the table outlives the evaluation */
        goto fail;
    }
    if (call->nkids == 3) {
        s_move(args, 2, out);
        goto fail;
    }
    const slt_map_node_t *t = call->kids[0];
    rc = slt_map__fail(cx, call->kids[1], "key '%.*s%s' is not in table '%.*s' (give "
                       "lookup() a third argument as the default)", (int) (n > 64 ? 64 : n), p,
                       n > 64 ? "..." : "", (int) (t->kind == SLC_N_VAR ? t->namelen : t->slen),
                       t->kind == SLC_N_VAR ? t->name : t->s);
fail:
    return rc;
}

/* ---- the table of functions */

static const slt_map_fn_t s_fns[] = {
    { "lower", 1, 1, 0, { SLT_MAP_T_STRING }, SLT_MAP_T_STRING, s_lower },
    { "upper", 1, 1, 0, { SLT_MAP_T_STRING }, SLT_MAP_T_STRING, s_upper },
    { "trim", 1, 1, 0, { SLT_MAP_T_STRING }, SLT_MAP_T_STRING, s_trim },
    { "concat", 1, SLT_MAP_ARGS_MAX, 0, { S_SCALAR, S_SCALAR, S_SCALAR }, SLT_MAP_T_STRING, s_concat },
    { "split", 2, 2, 0, { SLT_MAP_T_STRING, SLT_MAP_T_STRING }, SLT_MAP_T_ARRAY, s_split },
    { "join", 2, 2, 0, { SLT_MAP_T_ARRAY, SLT_MAP_T_STRING }, SLT_MAP_T_STRING, s_join },
    { "replace", 3, 3, 0, { SLT_MAP_T_STRING, SLT_MAP_T_STRING, SLT_MAP_T_STRING },
      SLT_MAP_T_STRING, s_replace },
    { "substring", 2, 3, 0, { SLT_MAP_T_STRING, SLT_MAP_T_INTEGER, SLT_MAP_T_INTEGER },
      SLT_MAP_T_STRING, s_substring },
    { "starts_with", 2, 2, 0, { SLT_MAP_T_STRING, SLT_MAP_T_STRING }, SLT_MAP_T_BOOLEAN, s_starts_with },
    { "ends_with", 2, 2, 0, { SLT_MAP_T_STRING, SLT_MAP_T_STRING }, SLT_MAP_T_BOOLEAN, s_ends_with },
    { "contains", 2, 2, 0, { SLT_MAP_T_STRING, SLT_MAP_T_STRING }, SLT_MAP_T_BOOLEAN, s_contains },
    { "length", 1, 1, 0, { SLT_MAP_T_STRING | SLT_MAP_T_ARRAY | SLT_MAP_T_OBJECT },
      SLT_MAP_T_INTEGER, s_length },
    { "int", 1, 1, 0, { S_SCALAR }, SLT_MAP_T_INTEGER, s_int },
    { "float", 1, 1, 0, { S_SCALAR }, SLT_MAP_T_NUMBER, s_float },
    { "string", 1, 1, 0, { SLT_MAP_T_ANY }, SLT_MAP_T_STRING, s_string },
    { "bool", 1, 1, 0, { S_SCALAR }, SLT_MAP_T_BOOLEAN, s_bool },
    { "round", 1, 2, 0, { S_NUM, SLT_MAP_T_INTEGER }, SLT_MAP_T_INTEGER, s_round },
    { "now", 0, 0, 0, { 0 }, SLT_MAP_T_INTEGER, s_now },
    { "parse_time", 1, 2, 0, { SLT_MAP_T_STRING, SLT_MAP_T_STRING }, SLT_MAP_T_INTEGER, s_parse_time },
    { "format_time", 1, 2, 0, { S_NUM, SLT_MAP_T_STRING }, SLT_MAP_T_STRING, s_format_time },
    { "sha256", 1, 1, 0, { SLT_MAP_T_STRING }, SLT_MAP_T_STRING, s_sha256 },
    { "uuid", 0, 0, 0, { 0 }, SLT_MAP_T_STRING, s_uuid },
    { "lookup", 2, 3, SLC_FN_TABLE, { 0, S_SCALAR, SLT_MAP_T_ANY }, SLT_MAP_T_ANY, s_lookup },
    { "map", 2, 2, SLC_FN_LAMBDA, { SLT_MAP_T_ARRAY }, SLT_MAP_T_ARRAY, NULL },
    { "filter", 2, 2, SLC_FN_LAMBDA, { SLT_MAP_T_ARRAY }, SLT_MAP_T_ARRAY, NULL },
};

static const char *const s_names[] = {
    "lower", "upper", "trim", "concat", "split", "join", "replace", "substring",
    "starts_with", "ends_with", "contains", "length", "int", "float",
    "string", "bool", "round", "now", "parse_time", "format_time", "sha256", "uuid",
    "lookup", "map", "filter",
};

_Static_assert(sizeof s_names / sizeof s_names[0] == sizeof s_fns / sizeof s_fns[0],
               "every function has its name in s_names");

const slt_map_fn_t *slt_map__fn_find(const char *name, size_t len)
{
    for (size_t k = 0; k < sizeof s_fns / sizeof s_fns[0]; k++)
        if (strlen(s_fns[k].name) == len && memcmp(s_fns[k].name, name, len) == 0)
            return &s_fns[k];
    return NULL;
}

const char *const *slt_map__fn_names(size_t *n)
{
    *n = sizeof s_names / sizeof s_names[0];
    return s_names;
}
