/*  slt_schema_compat - may one version of a schema follow another
 *  (slt_schema_compatible), and the names of the modes.
 *
 *  Compatibility is a conservative subset test, A <= B: "every document A
 *  accepts, B accepts", proved keyword by keyword; what cannot be proved is
 *  a break. BACKWARD is old <= new, FORWARD new <= old, FULL both. A whose
 *  values are finite (enum, const, only null/boolean) is decided exactly by
 *  validating each value against B. Any thread; reads both schemas only.  */
#include "slt_schema_int.h"
#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* True when N constrains nothing. */
static bool s_open(const slt_schema_node_t *n)
{
    return !n->never && n->types == SLC_JSON_ANY && !n->nprops && !n->addl
        && !n->items && !n->min_items && n->max_items == SIZE_MAX
        && !n->enumv && !n->constv && !n->lo.set && !n->hi.set
        && !n->min_len && n->max_len == SIZE_MAX && !n->pattern
        && !n->format;
}

/* ---------------------------------------------------------- compatibility */

typedef struct {
    const slt_schema_node_t *a; /* the narrower side */
    const slt_schema_node_t *b; /* the wider side */
} s_pair_t;

typedef struct {
    slt_schema_error_t *errs;   /* where reasons go (borrowed) */
    size_t max;                 /* room in errs */
    size_t n;                   /* reasons written */
    bool broken;                /* some rule broke */
    bool backward;              /* A is the old schema (else the new one) */
    int rc;                     /* SL_ENOMEM once memory ran out */
    slt_schema_path_t path;     /* schema path being compared */
    int depth;                  /* pairs on the walk */
    s_pair_t *seen;             /* open-addressed set of pairs compared */
    size_t cap;                 /* its slots, a power of two */
    size_t used;                /* slots in use */
} s_cx_t;

static void s_brk(s_cx_t *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record a break at the current schema path: label, reason, consequence. */
static void s_brk(s_cx_t *x, const char *fmt, ...)
{
    x->broken = true;
    if (x->n >= x->max)
        return;
    slt_schema_error_t *e = &x->errs[x->n++];
    size_t used;
    va_list ap;
    memcpy(e->pointer, x->path.buf, x->path.len + 1);
    snprintf(e->rule, sizeof e->rule, "%s: ", x->backward ? "BACKWARD" : "FORWARD");
    used = strlen(e->rule);
    va_start(ap, fmt);
    vsnprintf(e->rule + used, sizeof e->rule - used, fmt, ap);
    va_end(ap);
    used = strlen(e->rule);
    snprintf(e->rule + used, sizeof e->rule - used, ": %s",
             x->backward ? "data written with the old schema would be refused"
                         : "data written with the new schema would be refused "
                           "by the old one");
}

/* "WHAT changed from OLD to NEW", given A's and B's texts. */
static void s_changed(s_cx_t *x, const char *what, const char *a, const char *b)
{
    s_brk(x, "%s changed from %s to %s", what, x->backward ? a : b,
          x->backward ? b : a);
}

static size_t s_pair_slot(const s_cx_t *x, const slt_schema_node_t *a, const slt_schema_node_t *b)
{
    uint64_t h = (uint64_t) (uintptr_t) a * 0x9E3779B97F4A7C15ull
               ^ (uint64_t) (uintptr_t) b * 0xC2B2AE3D27D4EB4Full;
    size_t i = (size_t) (h >> 17) & (x->cap - 1);
    while (x->seen[i].a && (x->seen[i].a != a || x->seen[i].b != b))
        i = (i + 1) & (x->cap - 1);
    return i;
}

/* Add the pair (A, B) to the set: true when it was already there (or
 * memory ran out: x->rc says so and the walk stops). */
static bool s_pair_seen(s_cx_t *x, const slt_schema_node_t *a, const slt_schema_node_t *b)
{
    if (x->used * 2 >= x->cap) {
        size_t ncap = x->cap ? x->cap * 2 : 64;
        s_pair_t *old = x->seen;
        size_t ocap = x->cap;
        x->seen = calloc(ncap, sizeof *x->seen);
        if (!x->seen) {
            x->seen = old;
            x->rc = SL_ENOMEM;
            return true;
        }
        x->cap = ncap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].a)
                x->seen[s_pair_slot(x, old[i].a, old[i].b)] = old[i];
        free(old);
    }
    size_t i = s_pair_slot(x, a, b);
    if (x->seen[i].a)
        return true;
    x->seen[i].a = a;
    x->seen[i].b = b;
    x->used++;
    return false;
}

static void s_subset(s_cx_t *x, const slt_schema_node_t *a, const slt_schema_node_t *b);

/* null, true and false: the values of a schema of those types only.
 * Static, never handed to cJSON to free or change. */
static const cJSON s_scalars[] = {
    { .type = cJSON_NULL }, { .type = cJSON_True }, { .type = cJSON_False },
};

/* A's values are VALUES (array) or the one value ONE: each that A accepts
 * must pass B. */
static void s_subset_values(s_cx_t *x, const slt_schema_node_t *a, const slt_schema_node_t *b,
                            const cJSON *values, const cJSON *one)
{
    /* ONE may be a member of an object: its next is not in the list. */
    for (const cJSON *v = one ? one : values->child; v && !x->rc;
         v = one ? NULL : v->next) {
        slt_schema_error_t e;
        if (!slt_schema__valid(a, v, NULL) || slt_schema__valid(b, v, &e))
            continue;
        char *t = slt_schema__list_text(v, true);
        if (!t) {
            x->rc = SL_ENOMEM;
            return;
        }
        s_brk(x, "value %.60s is refused by the %s schema (%s%s%.80s)", t,
              x->backward ? "new" : "old", e.pointer, e.pointer[0] ? ": " : "",
              e.rule);
        free(t);
    }
}

static void s_bound_text(const slt_schema_bound_t *b, char *out, size_t size)
{
    snprintf(out, size, "%s", b->set ? b->text : "none");
}

static void s_count_text(size_t v, bool upper, char *out, size_t size)
{
    if ((upper && v == SIZE_MAX) || (!upper && v == 0))
        snprintf(out, size, "none");
    else
        snprintf(out, size, "%zu", v);
}

/* True when bound A is at least as tight as B (LOWER: from below). */
static bool s_bound_within(const slt_schema_bound_t *a, const slt_schema_bound_t *b, bool lower)
{
    if (!b->set)
        return true;
    if (!a->set)
        return false;
    if (a->value != b->value)
        return lower ? a->value > b->value : a->value < b->value;
    return a->exclusive || !b->exclusive;
}

static void s_subset_counts(s_cx_t *x, const char *lo_name, size_t alo,
                            size_t blo, const char *hi_name, size_t ahi,
                            size_t bhi)
{
    char ta[32], tb[32];
    if (alo < blo) {
        s_count_text(alo, false, ta, sizeof ta);
        s_count_text(blo, false, tb, sizeof tb);
        s_changed(x, lo_name, ta, tb);
    }
    if (ahi > bhi) {
        s_count_text(ahi, true, ta, sizeof ta);
        s_count_text(bhi, true, tb, sizeof tb);
        s_changed(x, hi_name, ta, tb);
    }
}

static void s_subset_scalars(s_cx_t *x, const slt_schema_node_t *a, const slt_schema_node_t *b,
                             unsigned common)
{
    char ta[SLT_SCHEMA_RULE_MAX / 2], tb[SLT_SCHEMA_RULE_MAX / 2];
    if (common & (SLC_JSON_NUMBER | SLC_JSON_INTEGER)) {
        if (!s_bound_within(&a->lo, &b->lo, true)) {
            s_bound_text(&a->lo, ta, sizeof ta);
            s_bound_text(&b->lo, tb, sizeof tb);
            s_changed(x, "lower bound", ta, tb);
        }
        if (!s_bound_within(&a->hi, &b->hi, false)) {
            s_bound_text(&a->hi, ta, sizeof ta);
            s_bound_text(&b->hi, tb, sizeof tb);
            s_changed(x, "upper bound", ta, tb);
        }
    }
    if (common & SLC_JSON_STRING) {
        s_subset_counts(x, "minLength", a->min_len, b->min_len,
                        "maxLength", a->max_len, b->max_len);
        if (b->pattern && (!a->pattern || strcmp(a->pattern, b->pattern))) {
            /* Regex inclusion is not decidable cheaply: any change breaks. */
            if (a->pattern)
                snprintf(ta, sizeof ta, "\"%.40s\"", a->pattern);
            else
                snprintf(ta, sizeof ta, "none");
            snprintf(tb, sizeof tb, "\"%.40s\"", b->pattern);
            s_changed(x, "pattern", ta, tb);
        }
        if (b->format && a->format != b->format)
            s_changed(x, "format", a->format ? slt_schema__formats[a->format] : "none",
                      slt_schema__formats[b->format]);
    }
    if (common & SLC_JSON_ARRAY) {
        s_subset_counts(x, "minItems", a->min_items, b->min_items,
                        "maxItems", a->max_items, b->max_items);
        if (b->items) {
            size_t mark = slt_schema__path_push(&x->path, "items");
            s_subset(x, a->items, b->items);
            slt_schema__path_pop(&x->path, mark);
        }
    }
}

static bool s_never(const slt_schema_node_t *n)
{
    return n && slt_schema__res(n)->never;
}

static void s_subset_object(s_cx_t *x, const slt_schema_node_t *a, const slt_schema_node_t *b)
{
    /* Members B declares: A's schema for that name must fit in B's. */
    for (size_t i = 0; i < b->nprops && !x->rc; i++) {
        const slt_schema_prop_t *pb = &b->props[i];
        const slt_schema_prop_t *pa = slt_schema__prop_find(a, pb->name, strlen(pb->name));
        size_t mark = slt_schema__path_push(&x->path, "properties");
        slt_schema__path_push(&x->path, pb->name);
        const slt_schema_node_t *sa = pa && pa->declared ? pa->node : a->addl;
        if (pb->declared && !s_never(sa))
            s_subset(x, sa, pb->node);
        if (pb->required && !(pa && pa->required)
            && !(pb->node && (pb->node->has_default || slt_schema__res(pb->node)->has_default))) {
            if (x->backward)
                s_brk(x, "new required property \"%.60s\" has no default", pb->name);
            else
                s_brk(x, "property \"%.60s\" is required by the old schema, not "
                         "by the new one, and has no default", pb->name);
        }
        slt_schema__path_pop(&x->path, mark);
    }
    /* Members only A declares: they meet B's additionalProperties. */
    for (size_t i = 0; i < a->nprops && !x->rc; i++) {
        const slt_schema_prop_t *pa = &a->props[i];
        const slt_schema_prop_t *pb = slt_schema__prop_find(b, pa->name, strlen(pa->name));
        if (!pa->declared || (pb && pb->declared) || !b->addl || s_never(pa->node))
            continue;
        size_t mark = slt_schema__path_push(&x->path, "properties");
        slt_schema__path_push(&x->path, pa->name);
        if (s_never(b->addl)) {
            if (x->backward)
                s_brk(x, "property \"%.60s\" was removed and additional "
                         "properties are not allowed", pa->name);
            else
                s_brk(x, "property \"%.60s\" was added but the old schema does "
                         "not allow additional properties", pa->name);
        }
        else
            s_subset(x, pa->node, b->addl);
        slt_schema__path_pop(&x->path, mark);
    }
    /* Members neither declares. */
    if (b->addl && !s_never(a->addl)) {
        size_t mark = slt_schema__path_push(&x->path, "additionalProperties");
        if (s_never(b->addl))
            s_changed(x, "additionalProperties", "allowed", "false");
        else
            s_subset(x, a->addl, b->addl);
        slt_schema__path_pop(&x->path, mark);
    }
}

/* Prove that every value A accepts, B accepts; s_brk where it cannot. */
static void s_subset(s_cx_t *x, const slt_schema_node_t *a, const slt_schema_node_t *b)
{
    a = slt_schema__res(a);
    b = slt_schema__res(b);
    if (x->rc || a == b || a->never || s_open(b) || s_pair_seen(x, a, b))
        return;
    if (b->never) {
        s_brk(x, "the %s schema allows no value here",
              x->backward ? "new" : "old");
        return;
    }
    if (x->depth >= SLT_SCHEMA_COMPAT_DEPTH_MAX) {
        s_brk(x, "nested deeper than %d levels: cannot be proved",
              SLT_SCHEMA_COMPAT_DEPTH_MAX);
        return;
    }
    x->depth++;
    unsigned at = slt_schema__types_of(a);
    if (a->enumv || a->constv) {
        /* Finitely many values: decide exactly. */
        if (a->constv)
            s_subset_values(x, a, b, NULL, a->constv);
        else
            s_subset_values(x, a, b, a->enumv, NULL);
        goto done;
    }
    if (!(at & ~(SLC_JSON_NULL | SLC_JSON_BOOLEAN))) {
        for (size_t i = 0; i < 3; i++)
            s_subset_values(x, a, b, NULL, &s_scalars[i]);
        goto done;
    }
    if (b->enumv || b->constv) {
        s_changed(x, b->enumv ? "enum" : "const", "none",
                  b->enumv ? b->enum_list : b->const_text);
    }
    unsigned missing = at & ~b->types;
    if (missing) {
        char ta[80], tb[80];
        slt_schema__types_text(at, ta, sizeof ta);
        slt_schema__types_text(b->types, tb, sizeof tb);
        s_changed(x, "type", ta, tb);
    }
    unsigned common = at & b->types;
    s_subset_scalars(x, a, b, common);
    if (common & SLC_JSON_OBJECT)
        s_subset_object(x, a, b);
done:
    x->depth--;
}

int slt_schema_compatible(const slt_schema_t *older, const slt_schema_t *newer,
                          slc_compat_t mode, slt_schema_error_t *errs,
                          size_t max, size_t *nerrs)
{
    int rc = 0;
    s_cx_t x;
    assert(older && newer && (errs || max == 0));
    memset(&x, 0, sizeof x);
    x.errs = errs;
    x.max = max;
    if (mode == SLC_COMPAT_BACKWARD || mode == SLC_COMPAT_FULL) {
        x.backward = true;
        s_subset(&x, older->root, newer->root);
    }
    if (!x.rc && (mode == SLC_COMPAT_FORWARD || mode == SLC_COMPAT_FULL)) {
        /* A fresh set: the same pair means the other direction now. */
        if (x.seen)
            memset(x.seen, 0, x.cap * sizeof *x.seen);
        x.used = 0;
        x.backward = false;
        x.depth = 0;
        s_subset(&x, newer->root, older->root);
    }
    rc = x.rc ? x.rc : x.broken ? SL_EINVAL : 0;
    free(x.seen);
    if (nerrs)
        *nerrs = x.n;
    return rc;
}

const char *slc_compat_name(slc_compat_t mode)
{
    switch (mode) {
    case SLC_COMPAT_BACKWARD: return "BACKWARD";
    case SLC_COMPAT_FORWARD:  return "FORWARD";
    case SLC_COMPAT_FULL:     return "FULL";
    case SLC_COMPAT_NONE:     return "NONE";
    }
    return "?";
}

int slc_compat_parse(const char *name, slc_compat_t *mode)
{
    int rc = SL_EINVAL;
    assert(name && mode);
    for (int m = SLC_COMPAT_BACKWARD; m <= SLC_COMPAT_NONE; m++)
        if (!strcasecmp(name, slc_compat_name((slc_compat_t) m))) {
            *mode = (slc_compat_t) m;
            rc = 0;
        }
    return rc;
}
