/*  slt_route_diff - compare two compiled tables route by route (by name):
 *  the readable diff `sluice routes diff` and the audit log show, and
 *  equality. Any thread; reads both tables. It does not compile or
 *  evaluate anything.  */
#include "slt_route_int.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *b;
    size_t len, cap;
    bool oom;
} s_buf_t;

static void s_put(s_buf_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_put(s_buf_t *o, const char *fmt, ...)
{
    va_list ap;
    if (o->oom)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || o->len + (size_t) n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (n >= 0 && o->len + (size_t) n + 1 > cap)
            cap *= 2;
        char *b = n < 0 ? NULL : realloc(o->b, cap);
        if (!b) {
            o->oom = true;
            return;
        }
        o->b = b;
        o->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(o->b + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    o->len += (size_t) n;
}

static const char *s_action(slt_route_action_t a)
{
    return a == SLT_ROUTE_DROP ? "drop" : a == SLT_ROUTE_DLQ ? "dlq" : "deliver";
}

/* The targets as "[a, b]" into BUF. */
static const char *s_to(const slt_route_def_t *r, char *buf, size_t len)
{
    size_t w = (size_t) snprintf(buf, len, "[");
    for (size_t k = 0; k < r->ntargets && w < len; k++)
        w += (size_t) snprintf(buf + w, len - w, "%s%s", k ? ", " : "", r->targets[k]);
    if (w < len)
        snprintf(buf + w, len - w, "]");
    return buf;
}

static bool s_streq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Field-by-field differences of A and B into O (with NAME), or just
 * whether there are any when O is NULL. */
static bool s_fields(const slt_route_def_t *a, const slt_route_def_t *b, s_buf_t *o)
{
    bool diff = false;
    char x[SLT_ROUTE_TARGETS_MAX * 260], y[SLT_ROUTE_TARGETS_MAX * 260];
#define S_STR(field, label)                                                          \
    if (!s_streq(a->field, b->field)) {                                              \
        diff = true;                                                                 \
        if (o)                                                                       \
            s_put(o, "~ %s: %s %s -> %s\n", b->name, label, a->field ? a->field : "(none)", \
                  b->field ? b->field : "(none)");                                   \
    }
    S_STR(pattern, "match.topic")
    S_STR(where, "match.where")
    if (a->action != b->action) {
        diff = true;
        if (o)
            s_put(o, "~ %s: action %s -> %s\n", b->name, s_action(a->action), s_action(b->action));
    }
    if (strcmp(s_to(a, x, sizeof x), s_to(b, y, sizeof y)) != 0) {
        diff = true;
        if (o)
            s_put(o, "~ %s: to %s -> %s\n", b->name, x, y);
    }
    S_STR(mapping, "map")
    S_STR(reason, "reason")
#undef S_STR
    if (a->cont != b->cont) {
        diff = true;
        if (o)
            s_put(o, "~ %s: continue %s -> %s\n", b->name, a->cont ? "true" : "false",
                  b->cont ? "true" : "false");
    }
    return diff;
}

static const slt_route_def_t *s_find(const slt_route_table_t *t, const char *name, size_t *at)
{
    for (size_t k = 0; t && k < t->n; k++)
        if (strcmp(t->routes[k].name, name) == 0) {
            *at = k;
            return &t->routes[k];
        }
    return NULL;
}

char *slt_route_diff(const slt_route_table_t *a, const slt_route_table_t *b)
{
    s_buf_t o = { 0 };
    size_t na = a ? a->n : 0, nb = b ? b->n : 0, at;
    for (size_t k = 0; k < na; k++)
        if (!s_find(b, a->routes[k].name, &at))
            s_put(&o, "- %s\n", a->routes[k].name);
    for (size_t k = 0; k < nb; k++) {
        const slt_route_def_t *r = &b->routes[k], *old = s_find(a, r->name, &at);
        if (!old) {
            s_put(&o, "+ %s\n", r->name);
            continue;
        }
        s_fields(old, r, &o);
        if (at != k)
            s_put(&o, "~ %s: position %zu -> %zu\n", r->name, at + 1, k + 1);
    }
    if (!o.oom && o.len == 0)
        s_put(&o, "(no change)\n");
    if (o.oom) {
        free(o.b);
        return NULL;
    }
    return o.b;
}

bool slt_route_equal(const slt_route_table_t *a, const slt_route_table_t *b)
{
    size_t na = a ? a->n : 0, nb = b ? b->n : 0;
    if (na != nb)
        return false;
    for (size_t k = 0; k < na; k++)
        if (strcmp(a->routes[k].name, b->routes[k].name) != 0
            || s_fields(&a->routes[k], &b->routes[k], NULL))
            return false;
    return true;
}
