/*  slt_route_check - what slt_route_compile checks after the YAML is read:
 *  each route's predicate (compiled, typed against the topic's schema),
 *  its mapping (known, reads what the topic carries), then the table as a
 *  whole: duplicate names, shadowed routes and cycles of the static graph
 *  pattern -> targets (through the trie). Runs on the compiling thread.
 *  It does not read YAML or evaluate messages.  */
#include "slt_route_int.h"
#include "slc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ERR_MAX 4096

/* Move the "ORIGIN:LINE:COL: msg" lines of the expression compiler into E. */
static void s_expr_errs(slt_route_errs_t *e, const slt_route_table_t *t,
                        const slt_route_def_t *r, size_t idx, const char *text)
{
    size_t ol = strlen(t->origin);
    while (text && *text) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t) (nl - text) : strlen(text);
        unsigned l = r->where_line, c = r->where_col;
        const char *msg = text;
        int used = 0;
        if (len > ol + 1 && memcmp(text, t->origin, ol) == 0 && text[ol] == ':'
            && sscanf(text + ol + 1, "%u:%u: %n", &l, &c, &used) == 2 && used > 0)
            msg = text + ol + 1 + used;
        slt_route__err(e, l, c, r, idx, "match.where", "%.*s", (int) (len - (size_t) (msg - text)),
                       msg);
        text = nl ? nl + 1 : NULL;
    }
}

/* Compile R's predicate and resolve its mapping. */
static int s_route(slt_route_table_t *t, slt_route_def_t *r, size_t idx,
                   const slt_route_resolver_t *res, slt_route_errs_t *e)
{
    int rc = 0;
    slt_map_types_fn *types = NULL;
    void *targ = NULL;
    const char *subject = NULL;
    if (res && res->schema && r->pattern && slc_pattern_is_literal(r->pattern)) {
        rc = res->schema(res->arg, r->pattern, &types, &targ, &subject);
        if (rc == SL_ENOTFOUND) {
            types = NULL;
            targ = NULL;
            subject = NULL;
            rc = 0;
        } else if (rc != 0) {
            return rc;
        }
    }
    if (r->where) {
        char owner[SLT_ROUTE_NAME_MAX + 16], *err = malloc(S_ERR_MAX);
        if (!err)
            return SL_ENOMEM;
        snprintf(owner, sizeof owner, "route '%s'", r->name[0] ? r->name : "?");
        rc = slt_map_expr_compile(r->where, strlen(r->where), t->origin, r->where_line,
                                  r->where_col, r->where_exact, owner, "where",
                                  SLT_MAP_T_BOOLEAN, types, targ, &r->pred, err, S_ERR_MAX);
        if (rc == SL_EINVAL)
            s_expr_errs(e, t, r, idx, err);
        free(err);
        if (rc != 0 && rc != SL_EINVAL)
            return rc;
        rc = 0;
        r->pred_doc = r->pred && slt_map_expr_uses_doc(r->pred);
    }
    if (r->mapping && r->mapping[0] && res && res->mapping) {
        rc = res->mapping(res->arg, r->mapping, &r->map);
        if (rc == SL_ENOTFOUND) {
            r->map = NULL;
            slt_route__err(e, r->map_line, r->map_col, r, idx, "map", "no mapping '%.256s' is "
                           "registered (sluice mapping add)", r->mapping);
            rc = 0;
        } else if (rc != 0) {
            return rc;
        } else if (r->map && subject && strcmp(slt_map_from(r->map), subject) != 0) {
            slt_route__err(e, r->map_line, r->map_col, r, idx, "map", "mapping '%.256s' reads "
                           "%.256s, but topic %s carries %.256s", r->mapping,
                           slt_map_from(r->map), r->pattern, subject);
        }
    }
    return 0;
}

static int s_name_cmp(const void *a, const void *b)
{
    const slt_route_def_t *x = *(const slt_route_def_t *const *) a;
    const slt_route_def_t *y = *(const slt_route_def_t *const *) b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x < y ? -1 : x > y);    /* same array: file order */
}

static int s_duplicates(const slt_route_table_t *t, slt_route_errs_t *e)
{
    const slt_route_def_t **ix = calloc(t->n ? t->n : 1, sizeof *ix);
    if (!ix)
        return SL_ENOMEM;
    for (size_t k = 0; k < t->n; k++)
        ix[k] = &t->routes[k];
    qsort(ix, t->n, sizeof *ix, s_name_cmp);
    for (size_t k = 1; k < t->n; k++) {
        const slt_route_def_t *a = ix[k - 1], *b = ix[k];
        if (b->name[0] && strcmp(a->name, b->name) == 0)
            slt_route__err(e, b->line, b->col, b, (size_t) (b - t->routes), "name",
                           "given twice (first at line %u)", a->line);
    }
    free(ix);
    return 0;
}

static void s_shadowed(const slt_route_table_t *t, slt_route_errs_t *e)
{
    for (size_t j = 0; j < t->n; j++) {
        const slt_route_def_t *b = &t->routes[j];
        if (!b->pattern)
            continue;
        for (size_t i = 0; i < j; i++) {
            const slt_route_def_t *a = &t->routes[i];
            if (!a->pattern || a->where || a->cont || !slc_pattern_covers(a->pattern, b->pattern))
                continue;
            slt_route__err(e, b->line, b->col, b, j, "match.topic", "never reached: route "
                           "'%.128s' (line %u) takes every topic of '%s' first, without a "
                           "where, and ends the evaluation", a->name, a->line, b->pattern);
            break;
        }
    }
}

/* Cycles of the static graph: route R -> every route a target of R reaches. */
static int s_cycles(const slt_route_table_t *t, slt_route_errs_t *e)
{
    int rc = 0;
    size_t n = t->n;
    unsigned char *color = calloc(n ? n : 1, 1);
    size_t **adj = calloc(n ? n : 1, sizeof *adj), *nadj = calloc(n ? n : 1, sizeof *nadj);
    size_t *stack = calloc(n ? n : 1, sizeof *stack), *pos = calloc(n ? n : 1, sizeof *pos);
    size_t *buf = NULL, cap = 0, cnt = 0;
    if (!color || !adj || !nadj || !stack || !pos) {
        rc = SL_ENOMEM;
        goto out;
    }
    for (size_t r = 0; r < n; r++) {
        const slt_route_def_t *d = &t->routes[r];
        if (d->action != SLT_ROUTE_DELIVER)
            continue;
        for (size_t k = 0; k < d->ntargets; k++) {
            rc = slt_route__lookup(t, d->targets[k], &buf, &cap, &cnt);
            if (rc != 0)
                goto out;
            if (cnt == 0)
                continue;
            size_t *a = realloc(adj[r], (nadj[r] + cnt) * sizeof *a);
            if (!a) {
                rc = SL_ENOMEM;
                goto out;
            }
            memcpy(a + nadj[r], buf, cnt * sizeof *a);
            adj[r] = a;
            nadj[r] += cnt;
        }
    }
    size_t reported = 0;
    for (size_t s = 0; s < n && reported < 8; s++) {
        if (color[s])
            continue;
        size_t sp = 0;
        stack[sp] = s;
        pos[sp++] = 0;
        color[s] = 1;
        while (sp > 0) {
            size_t r = stack[sp - 1];
            if (pos[sp - 1] == nadj[r]) {
                color[r] = 2;
                sp--;
                continue;
            }
            size_t x = adj[r][pos[sp - 1]++];
            if (color[x] == 0) {
                color[x] = 1;
                stack[sp] = x;
                pos[sp++] = 0;
            } else if (color[x] == 1 && reported < 8) {
                char path[1024];
                size_t w = 0, from = sp;
                while (from > 0 && stack[from - 1] != x)
                    from--;
                from = from ? from - 1 : 0;
                for (size_t k = from; k < sp && w < sizeof path - 1; k++)
                    w += (size_t) snprintf(path + w, sizeof path - w, "%s -> ",
                                           t->routes[stack[k]].name);
                if (w < sizeof path - 1)
                    snprintf(path + w, sizeof path - w, "%s", t->routes[x].name);
                const slt_route_def_t *d = &t->routes[r];
                slt_route__err(e, d->to_line ? d->to_line : d->line, d->to_line ? d->to_col : d->col,
                               d, r, "to", "its targets are routed back to it: a cycle (%s)",
                               path);
                reported++;
            }
        }
    }
out:
    if (adj)
        for (size_t r = 0; r < n; r++)
            free(adj[r]);
    free(adj);
    free(nadj);
    free(color);
    free(stack);
    free(pos);
    free(buf);
    return rc;
}

int slt_route__check(slt_route_table_t *t, const slt_route_resolver_t *res,
                     slt_route_errs_t *e)
{
    int rc = 0;
    for (size_t k = 0; k < t->n && rc == 0; k++)
        rc = s_route(t, &t->routes[k], k, res, e);
    if (rc == 0)
        rc = s_duplicates(t, e);
    if (rc == 0)
        s_shadowed(t, e);
    if (rc == 0)
        rc = s_cycles(t, e);
    return rc;
}
