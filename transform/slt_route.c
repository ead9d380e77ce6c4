/*  slt_route - the routing table API (slt_route.h): compile a table (read
 *  the YAML, index the patterns, check routes and table), its accessors
 *  and destruction, and the list of compile errors with their rendering.
 *  Compiling runs on the caller's thread; a compiled table is read-only.
 *  It does not evaluate (slt_route_eval.c) nor compare (slt_route_diff.c). */
#include "slt_route_int.h"
#include "slc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors */

void slt_route__err(slt_route_errs_t *e, unsigned line, unsigned col,
                    const slt_route_def_t *r, size_t idx, const char *field,
                    const char *fmt, ...)
{
    char msg[1024], head[SLT_ROUTE_NAME_MAX + 64] = "";
    va_list ap;
    if (e->n == SLT_ROUTE_ERRORS_MAX) {
        e->more++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t w = 0;
    if (r && r->name && r->name[0] && strlen(r->name) <= SLT_ROUTE_NAME_MAX)
        w = (size_t) snprintf(head, sizeof head, "route %s: ", r->name);
    else if (r)
        w = (size_t) snprintf(head, sizeof head, "route #%zu: ", idx + 1);
    if (field)
        snprintf(head + w, sizeof head - w, "%s: ", field);
    size_t len = strlen(head) + strlen(msg) + 1;
    char *t = malloc(len);
    if (!t) {
        e->oom = true;
        return;
    }
    snprintf(t, len, "%s%s", head, msg);
    e->items[e->n].line = line;
    e->items[e->n].col = col;
    e->items[e->n++].text = t;
}

void slt_route__errs_free(slt_route_errs_t *e)
{
    for (size_t k = 0; k < e->n; k++)
        free(e->items[k].text);
    e->n = 0;
}

static int s_err_cmp(const void *a, const void *b)
{
    const slt_route_err_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->text < y->text ? -1 : x->text > y->text;
}

void slt_route__errs_render(slt_route_errs_t *e, const char *origin, char *err, size_t errlen)
{
    size_t w = 0;
    if (!err || !errlen)
        return;
    err[0] = '\0';
    /* stable enough: equal positions keep allocation order, which is rare */
    qsort(e->items, e->n, sizeof e->items[0], s_err_cmp);
    for (size_t k = 0; k < e->n && w < errlen; k++) {
        int n = snprintf(err + w, errlen - w, "%s:%u:%u: %s\n", origin, e->items[k].line,
                         e->items[k].col, e->items[k].text);
        if (n < 0)
            break;
        w += (size_t) n;
    }
    if (e->more && w < errlen)
        w += (size_t) snprintf(err + w, errlen - w, "%s: %zu more errors not shown\n", origin,
                               e->more);
    if (e->oom && w < errlen)
        w += (size_t) snprintf(err + w, errlen - w, "%s: out of memory\n", origin);
    if (w > 0 && w < errlen && err[w - 1] == '\n')
        err[w - 1] = '\0';
}

/* ---- the table */

void slt_route__def_free(slt_route_def_t *r)
{
    free(r->name);
    free(r->pattern);
    free(r->where);
    slt_map_expr_destroy(&r->pred);
    for (size_t k = 0; k < r->ntargets; k++)
        free(r->targets[k]);
    free(r->targets);
    free(r->mapping);
    free(r->reason);
}

void slt_route_destroy(slt_route_table_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    slt_route_table_t *t = *self_p;
    for (size_t k = 0; k < t->n; k++)
        slt_route__def_free(&t->routes[k]);
    free(t->routes);
    slt_route__trie_free(t->trie);
    free(t->origin);
    free(t);
    *self_p = NULL;
}

size_t slt_route_count(const slt_route_table_t *self)
{
    return self ? self->n : 0;
}

const char *slt_route_name(const slt_route_table_t *self, size_t i)
{
    return self && i < self->n ? self->routes[i].name : NULL;
}

const char *slt_route_reason(const char *reason, const char *route)
{
    size_t n = route ? strlen(route) : 0;
    if (!reason || !n || strncmp(reason, "route '", 7) != 0
        || strncmp(reason + 7, route, n) != 0 || strncmp(reason + 7 + n, "': ", 3) != 0)
        return reason;
    return reason + 7 + n + 3;
}

const char *slt_route_mapping(const slt_route_table_t *self, size_t i)
{
    return self && i < self->n ? self->routes[i].mapping : NULL;
}

const char *slt_route_pattern(const slt_route_table_t *self, size_t i)
{
    return self && i < self->n ? self->routes[i].pattern : NULL;
}

int slt_route_compile(const char *yaml, size_t len, const char *origin,
                      const slt_route_resolver_t *resolver,
                      slt_route_table_t **out, char *err, size_t errlen)
{
    int rc = 0;
    slt_route_errs_t errs = { .n = 0 };
    slt_route_table_t *t = NULL;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!origin)
        origin = "<routes>";
    if (len > SLT_ROUTE_YAML_MAX) {
        slc_errf(err, errlen, "%s: table file too large (%zu bytes, limit %u)", origin, len,
                 SLT_ROUTE_YAML_MAX);
        return SL_ETOOBIG;
    }
    t = calloc(1, sizeof *t);
    if (!t || !(t->origin = strdup(origin))) {
        rc = SL_ENOMEM;
        goto out;
    }
    rc = slt_route__parse(t, yaml ? yaml : "", len, &errs);
    if (rc == 0)
        rc = slt_route__index(t);
    if (rc == 0)
        rc = slt_route__check(t, resolver, &errs);
    if (rc == 0 && (errs.n || errs.more || errs.oom)) {
        slt_route__errs_render(&errs, origin, err, errlen);
        rc = errs.oom && !errs.n ? SL_ENOMEM : SL_EINVAL;
    } else if (rc == SL_ENOMEM) {
        slc_errf(err, errlen, "%s: out of memory", origin);
    } else if (rc != 0) {
        slc_errf(err, errlen, "%s: the resolver failed: %s", origin, slc_strerror(rc));
    }
out:
    slt_route__errs_free(&errs);
    if (rc == 0)
        *out = t;
    else
        slt_route_destroy(&t);
    return rc;
}
