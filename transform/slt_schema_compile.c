/*  slt_schema_compile - a schema document to a compiled schema
 *  (slt_schema_compile): one node per subschema with every check
 *  precomputed (type bits, a property table sorted by name, the bounds and
 *  their texts, a compiled regex, the enum's text), $refs resolved, and
 *  the canonical text. Any thread; builds a schema no one else sees yet.
 *  It does not validate documents or compare schemas.
 *
 *  $ref is resolved at compile time to the node it names. A chain of $refs
 *  that never reaches a real schema is refused; every other cycle goes
 *  through properties, items or additionalProperties, so each turn consumes
 *  a level of the document being validated (bounded) or, in a
 *  compatibility check, is cut by the set of node pairs already compared.
 *
 *  The canonical text is written here, not by cJSON_Print, because it
 *  needs sorted keys and a number format that slt_doc_parse reads back
 *  unchanged.  */
#include "slt_schema_int.h"
#include "slc.h"
#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ compilation */

typedef struct {
    slt_schema_node_t *node; /* the node holding the $ref */
    const char *ref;        /* its text (borrowed from slt_schema.json) */
    char *where;            /* its schema pointer (owned) */
} s_pending_t;

typedef struct {
    slt_schema_t *s;        /* the schema being built */
    char *err;              /* the caller's ERR buffer */
    size_t errlen;          /* its size */
    slt_schema_path_t where; /* pointer of the keyword being compiled */
    s_pending_t *refs;      /* $refs to resolve once all nodes exist */
    size_t nrefs;           /* entries in refs */
    size_t refcap;          /* allocated entries */
} s_cc_t;

typedef int (*s_kw_fn)(s_cc_t *c, slt_schema_node_t *n, const cJSON *v);

/* The JSON pointer of the keyword being compiled. */
#define S_WHERE(c) ((c)->where.buf)

static int s_bad(s_cc_t *c, const char *what)
{
    slc_errf(c->err, c->errlen, "%s: %s", S_WHERE(c), what);
    return SL_EINVAL;
}

static int s_compile(s_cc_t *c, const cJSON *j, slt_schema_node_t **out);

static int s_kw_text(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    (void) n;
    return cJSON_IsString(v) ? 0 : s_bad(c, "must be a string");
}

static int s_kw_flag(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    (void) n;
    return cJSON_IsBool(v) ? 0 : s_bad(c, "must be true or false");
}

static int s_kw_default(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    (void) c, (void) v;
    n->has_default = true;
    return 0;
}

static int s_kw_examples(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    (void) n;
    return cJSON_IsArray(v) ? 0 : s_bad(c, "must be an array");
}

static int s_kw_id(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    (void) n;
    /* Below the root, $id would change what "#" means for $refs inside. */
    if (c->where.len != strlen("/$id"))
        return s_bad(c, "$id is supported only at the root");
    return cJSON_IsString(v) ? 0 : s_bad(c, "must be a string");
}

static int s_kw_ref(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    int rc = 0;
    if (!cJSON_IsString(v) || v->valuestring[0] != '#') {
        rc = s_bad(c, "only a reference within the document (\"#\", "
                      "\"#/definitions/x\", \"#/$defs/x\") is supported");
        goto fail;
    }
    rc = slc_grow((void **) &c->refs, &c->refcap, c->nrefs + 1, sizeof *c->refs);
    if (rc)
        goto fail;
    /* The pointer of the node, without the "/$ref" just pushed. */
    char *where = strndup(c->where.buf, c->where.len - strlen("/$ref"));
    if (!where) {
        rc = SL_ENOMEM;
        goto fail;
    }
    c->refs[c->nrefs].node = n;
    c->refs[c->nrefs].ref = v->valuestring;
    c->refs[c->nrefs].where = where;
    c->nrefs++;
fail:
    return rc;
}

static int s_kw_defs(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    int rc = 0;
    const cJSON *sub;
    slt_schema_node_t *ignored;
    (void) n;
    if (!cJSON_IsObject(v)) {
        rc = s_bad(c, "must be an object of schemas");
        goto fail;
    }
    /* Compiled so that mistakes show now and $ref finds them. */
    cJSON_ArrayForEach(sub, v) {
        size_t mark = slt_schema__path_push(&c->where, sub->string);
        rc = s_compile(c, sub, &ignored);
        slt_schema__path_pop(&c->where, mark);
        if (rc)
            goto fail;
    }
fail:
    return rc;
}

static int s_kw_type(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    static const struct { const char *name; unsigned bits; } names[] = {
        { "string", SLC_JSON_STRING },
        { "number", SLC_JSON_NUMBER | SLC_JSON_INTEGER },
        { "integer", SLC_JSON_INTEGER },
        { "boolean", SLC_JSON_BOOLEAN },
        { "object", SLC_JSON_OBJECT },
        { "array", SLC_JSON_ARRAY },
        { "null", SLC_JSON_NULL },
    };
    int rc = 0;
    bool list = cJSON_IsArray(v);
    unsigned bits = 0;
    if (!cJSON_IsString(v) && (!list || !v->child)) {
        rc = s_bad(c, "must be a type name or a non-empty array of them");
        goto fail;
    }
    /* V itself when it is one name: its next is the schema's next key. */
    for (const cJSON *t = list ? v->child : v; t; t = list ? t->next : NULL) {
        size_t k = 0;
        while (k < sizeof names / sizeof names[0]
               && (!cJSON_IsString(t) || strcmp(t->valuestring, names[k].name)))
            k++;
        if (k == sizeof names / sizeof names[0]) {
            rc = s_bad(c, "unknown type: use string, number, integer, "
                          "boolean, object, array or null");
            goto fail;
        }
        bits |= names[k].bits;
    }
    n->types = bits;
fail:
    return rc;
}

/* Add a property entry to N (sorted and merged in s_finish_props). */
static int s_prop_add(slt_schema_node_t *n, const char *name, slt_schema_node_t *sub,
                      bool declared)
{
    int rc = slc_grow((void **) &n->props, &n->props_cap, n->nprops + 1,
                      sizeof *n->props);
    if (rc)
        goto fail;
    char *copy = strdup(name);
    if (!copy) {
        rc = SL_ENOMEM;
        goto fail;
    }
    n->props[n->nprops].name = copy;
    n->props[n->nprops].node = sub;
    n->props[n->nprops].declared = declared;
    n->props[n->nprops].required = !declared;
    n->nprops++;
fail:
    return rc;
}

static int s_kw_properties(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    int rc = 0;
    const cJSON *sub;
    if (!cJSON_IsObject(v)) {
        rc = s_bad(c, "must be an object of schemas");
        goto fail;
    }
    cJSON_ArrayForEach(sub, v) {
        slt_schema_node_t *node = NULL;
        size_t mark = slt_schema__path_push(&c->where, sub->string);
        rc = s_compile(c, sub, &node);
        slt_schema__path_pop(&c->where, mark);
        if (rc)
            goto fail;
        rc = s_prop_add(n, sub->string, node, true);
        if (rc)
            goto fail;
    }
fail:
    return rc;
}

static int s_kw_required(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    int rc = 0;
    const cJSON *name;
    if (!cJSON_IsArray(v)) {
        rc = s_bad(c, "must be an array of property names");
        goto fail;
    }
    cJSON_ArrayForEach(name, v) {
        if (!cJSON_IsString(name)) {
            rc = s_bad(c, "must be an array of property names");
            goto fail;
        }
        rc = s_prop_add(n, name->valuestring, NULL, false);
        if (rc)
            goto fail;
    }
fail:
    return rc;
}

static int s_kw_addl(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    return s_compile(c, v, &n->addl);
}

static int s_kw_items(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    if (cJSON_IsArray(v))
        return s_bad(c, "an array of schemas (tuple validation) is not supported");
    return s_compile(c, v, &n->items);
}

/* A count keyword: a non-negative whole number (1.0 is one). One beyond
 * 2^53 (1e20) is whole too: it counts as the largest size. */
static int s_count(s_cc_t *c, const cJSON *v, size_t *out)
{
    int64_t i;
    if (slt_schema__kind(v) != SLC_JSON_INTEGER || v->valuedouble < 0)
        return s_bad(c, "must be a non-negative integer");
    if (slt_doc_int(v, &i) && (uint64_t) i <= SIZE_MAX)
        *out = (size_t) i;
    else
        *out = SIZE_MAX;
    return 0;
}

static int s_kw_min_items(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    return s_count(c, v, &n->min_items);
}

static int s_kw_max_items(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    return s_count(c, v, &n->max_items);
}

static int s_kw_min_len(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    return s_count(c, v, &n->min_len);
}

static int s_kw_max_len(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    return s_count(c, v, &n->max_len);
}

/* Tighten bound B (a lower one when LOWER) with X, EXCLUSIVE or not. */
static int s_bound(s_cc_t *c, slt_schema_bound_t *b, const cJSON *v, bool lower,
                   bool exclusive)
{
    if (!cJSON_IsNumber(v))
        return s_bad(c, exclusive ? "must be a number (the draft 6+ form; "
                                    "the draft 4 boolean form is not supported)"
                                  : "must be a number");
    double x = v->valuedouble;
    bool tighter = !b->set || (lower ? x > b->value : x < b->value)
                || (x == b->value && exclusive);
    if (tighter) {
        char num[32];
        b->set = true;
        b->value = x;
        b->exclusive = exclusive;
        slt_doc_number(x, num, sizeof num);
        snprintf(b->text, sizeof b->text, "%s %s",
                 lower ? (exclusive ? ">" : ">=") : (exclusive ? "<" : "<="), num);
    }
    return 0;
}

static int s_kw_minimum(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    return s_bound(c, &n->lo, v, true, false);
}

static int s_kw_maximum(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    return s_bound(c, &n->hi, v, false, false);
}

static int s_kw_xminimum(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    return s_bound(c, &n->lo, v, true, true);
}

static int s_kw_xmaximum(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    return s_bound(c, &n->hi, v, false, true);
}

/* VALUES (an array, or one value when ONE) as "\"a\", 1, null", cut with
 * "..." near SLT_SCHEMA_LIST_MAX bytes. Caller owns the result; NULL: no memory. */
char *slt_schema__list_text(const cJSON *values, bool one)
{
    char *out = malloc(SLT_SCHEMA_LIST_MAX), *text = NULL;
    size_t len = 0, i = 0, tlen = 0;
    if (!out)
        return NULL;
    out[0] = '\0';
    /* ONE may be a member of an object: its next is not in the list. */
    for (const cJSON *v = one ? values : values->child; v;
         v = one ? NULL : v->next, i++) {
        free(text);
        text = NULL;
        if (slt_doc_encode(v, &text, &tlen) != 0) {
            /* Values come from a parsed schema: only memory can run out. */
            free(out);
            out = NULL;
            break;
        }
        size_t need = tlen + (i ? 2 : 0);
        if (len + need + 4 > SLT_SCHEMA_LIST_MAX) {
            snprintf(out + len, SLT_SCHEMA_LIST_MAX - len, "%s...", i ? ", " : "");
            break;
        }
        len += (size_t) snprintf(out + len, SLT_SCHEMA_LIST_MAX - len, "%s%s",
                                 i ? ", " : "", text);
    }
    free(text);
    return out;
}

static int s_kw_enum(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    int rc = 0;
    if (!cJSON_IsArray(v) || !v->child) {
        rc = s_bad(c, "must be a non-empty array");
        goto fail;
    }
    n->enumv = v;
    n->enum_list = slt_schema__list_text(v, false);
    if (!n->enum_list)
        rc = SL_ENOMEM;
fail:
    return rc;
}

static int s_kw_const(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    (void) c;
    n->constv = v;
    n->const_text = slt_schema__list_text(v, true);
    return n->const_text ? 0 : SL_ENOMEM;
}

static int s_kw_pattern(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    char why[SLT_SCHEMA_RULE_MAX];
    if (!cJSON_IsString(v))
        return s_bad(c, "must be a string (an ECMA-262 regular expression)");
    int rc = slt_schema__pattern_compile(n, v->valuestring, why, sizeof why);
    return rc == SL_EINVAL ? s_bad(c, why) : rc;
}

static int s_kw_format(s_cc_t *c, slt_schema_node_t *n, const cJSON *v)
{
    for (int f = SLT_SCHEMA_FMT_DATETIME; f <= SLT_SCHEMA_FMT_UUID; f++)
        if (cJSON_IsString(v) && !strcmp(v->valuestring, slt_schema__formats[f])) {
            n->format = f;
            return 0;
        }
    return s_bad(c, "unsupported format: use date-time, email or uuid");
}

static const struct {
    const char *name;       /* the keyword */
    s_kw_fn fn;             /* checks and compiles its value */
    bool constrains;        /* not an annotation: refused next to $ref */
} s_keywords[] = {
    { "$ref", s_kw_ref, false },
    { "$schema", s_kw_text, false },
    { "$id", s_kw_id, false },
    { "$comment", s_kw_text, false },
    { "title", s_kw_text, false },
    { "description", s_kw_text, false },
    { "default", s_kw_default, false },
    { "examples", s_kw_examples, false },
    { "deprecated", s_kw_flag, false },
    { "readOnly", s_kw_flag, false },
    { "writeOnly", s_kw_flag, false },
    { "definitions", s_kw_defs, false },
    { "$defs", s_kw_defs, false },
    { "type", s_kw_type, true },
    { "properties", s_kw_properties, true },
    { "required", s_kw_required, true },
    { "additionalProperties", s_kw_addl, true },
    { "items", s_kw_items, true },
    { "minItems", s_kw_min_items, true },
    { "maxItems", s_kw_max_items, true },
    { "enum", s_kw_enum, true },
    { "const", s_kw_const, true },
    { "minimum", s_kw_minimum, true },
    { "maximum", s_kw_maximum, true },
    { "exclusiveMinimum", s_kw_xminimum, true },
    { "exclusiveMaximum", s_kw_xmaximum, true },
    { "minLength", s_kw_min_len, true },
    { "maxLength", s_kw_max_len, true },
    { "pattern", s_kw_pattern, true },
    { "format", s_kw_format, true },
};

static int s_prop_cmp(const void *a, const void *b)
{
    const slt_schema_prop_t *pa = a, *pb = b;
    int c = strcmp(pa->name, pb->name);
    /* The declared entry of a name first, then its required-only one. */
    return c ? c : (int) pb->declared - (int) pa->declared;
}

/* Sort N's property entries and merge each name's declared and required
 * entries into one. */
static int s_finish_props(s_cc_t *c, slt_schema_node_t *n)
{
    int rc = 0;
    size_t out = 0;
    if (!n->nprops)
        goto fail;
    qsort(n->props, n->nprops, sizeof *n->props, s_prop_cmp);
    for (size_t i = 0; i < n->nprops; i++) {
        slt_schema_prop_t *p = &n->props[i];
        if (out && !strcmp(n->props[out - 1].name, p->name)) {
            if (n->props[out - 1].required && p->required) {
                size_t mark = slt_schema__path_push(&c->where, "required");
                char why[SLT_SCHEMA_RULE_MAX];
                snprintf(why, sizeof why, "lists \"%.100s\" twice", p->name);
                rc = s_bad(c, why);
                slt_schema__path_pop(&c->where, mark);
                /* Keep the array whole so that destroy frees every name. */
                for (size_t k = i; k < n->nprops; k++)
                    n->props[out++] = n->props[k];
                n->nprops = out;
                goto fail;
            }
            n->props[out - 1].required = true;
            free(p->name);
            continue;
        }
        n->props[out++] = *p;
    }
    n->nprops = out;
    for (size_t i = 0; i < n->nprops; i++)
        n->nrequired += n->props[i].required;
fail:
    return rc;
}

static int s_node_add(slt_schema_t *s, slt_schema_node_t *n)
{
    int rc = slc_grow((void **) &s->nodes, &s->cap, s->nnodes + 1, sizeof *s->nodes);
    if (rc == 0)
        s->nodes[s->nnodes++] = n;
    return rc;
}

/* Compile subschema J (at c->where) into a new node, *OUT. */
static int s_compile(s_cc_t *c, const cJSON *j, slt_schema_node_t **out)
{
    int rc = 0;
    const char *key, *constraint = NULL;
    const cJSON *val;
    bool has_ref = false;
    slt_schema_node_t *n = calloc(1, sizeof *n);
    if (!n) {
        rc = SL_ENOMEM;
        goto fail;
    }
    n->json = j;
    n->types = SLC_JSON_ANY;
    n->max_items = SIZE_MAX;
    n->max_len = SIZE_MAX;
    rc = s_node_add(c->s, n);
    if (rc) {
        free(n);
        goto fail;
    }
    *out = n;
    if (cJSON_IsBool(j)) {
        n->never = cJSON_IsFalse(j);
        goto fail;
    }
    if (!cJSON_IsObject(j)) {
        slc_errf(c->err, c->errlen, "%s: a schema must be an object, true or false",
                 c->where.len ? S_WHERE(c) : "/");
        rc = SL_EINVAL;
        goto fail;
    }
    cJSON_ArrayForEach(val, j) {
        size_t k = 0;
        key = val->string;
        while (k < sizeof s_keywords / sizeof s_keywords[0]
               && strcmp(key, s_keywords[k].name))
            k++;
        size_t mark = slt_schema__path_push(&c->where, key);
        if (k == sizeof s_keywords / sizeof s_keywords[0]) {
            char why[SLT_SCHEMA_RULE_MAX];
            snprintf(why, sizeof why, "unsupported keyword \"%.80s\"", key);
            rc = s_bad(c, why);
        }
        else
            rc = s_keywords[k].fn(c, n, val);
        slt_schema__path_pop(&c->where, mark);
        if (rc)
            goto fail;
        if (s_keywords[k].constrains && !constraint)
            constraint = key;
        has_ref |= !strcmp(key, "$ref");
    }
    if (has_ref && constraint) {
        /* Draft 7 ignores them, 2019-09 applies them: say so, not guess. */
        slc_errf(c->err, c->errlen, "%s/%s: keywords next to $ref are not "
                 "supported (drafts disagree on them); move them into the "
                 "referenced schema", S_WHERE(c), constraint);
        rc = SL_EINVAL;
        goto fail;
    }
    rc = s_finish_props(c, n);
    if (rc)
        goto fail;
    slt_schema__types_text(n->types, n->type_text, sizeof n->type_text);
fail:
    return rc;
}

/* The value at the URI fragment REF ("#", "#/definitions/x") of ROOT, or
 * NULL. Tokens are RFC 6901 (~0, ~1); no percent-decoding. */
static const cJSON *s_pointer_get(const cJSON *root, const char *ref)
{
    const cJSON *cur = root;
    const char *p = ref + 1;
    char tok[SLT_SCHEMA_PATH_MAX];
    if (*p && *p != '/')
        return NULL;
    while (*p && cur) {
        size_t len = 0;
        p++;
        while (*p && *p != '/') {
            char ch = *p++;
            if (ch == '~') {
                if (*p != '0' && *p != '1')
                    return NULL;
                ch = *p++ == '0' ? '~' : '/';
            }
            if (len + 1 >= sizeof tok)
                return NULL;
            tok[len++] = ch;
        }
        tok[len] = '\0';
        /* A walk of one container per token: each $ref is resolved once. */
        if (cJSON_IsObject(cur))
            cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
        else if (cJSON_IsArray(cur)) {
            char *end;
            unsigned long i = strtoul(tok, &end, 10);
            if (!len || *end || (tok[0] == '0' && len > 1) || tok[0] == '-'
                || i > INT_MAX)
                return NULL;
            cur = cJSON_GetArrayItem(cur, (int) i);
        }
        else
            return NULL;
    }
    return cur;
}

static int s_node_by_json(const void *key, const void *elem)
{
    const cJSON *j = key;
    const slt_schema_node_t *n = *(slt_schema_node_t *const *) elem;
    return j < n->json ? -1 : j > n->json;
}

static int s_node_json_cmp(const void *a, const void *b)
{
    const slt_schema_node_t *na = *(slt_schema_node_t *const *) a;
    const slt_schema_node_t *nb = *(slt_schema_node_t *const *) b;
    return na->json < nb->json ? -1 : na->json > nb->json;
}

/* Point every $ref node at the node its target was compiled into, then at
 * the first node of its chain that is not a $ref. */
static int s_resolve(s_cc_t *c)
{
    int rc = 0;
    slt_schema_t *s = c->s;
    slt_schema_node_t **byjson = NULL;
    if (!c->nrefs)
        goto fail;
    byjson = malloc(s->nnodes * sizeof *byjson);
    if (!byjson) {
        rc = SL_ENOMEM;
        goto fail;
    }
    memcpy(byjson, s->nodes, s->nnodes * sizeof *byjson);
    qsort(byjson, s->nnodes, sizeof *byjson, s_node_json_cmp);
    for (size_t i = 0; i < c->nrefs; i++) {
        slt_schema_node_t *n = c->refs[i].node;
        const char *ref = c->refs[i].ref;
        const cJSON *t = s_pointer_get(s->json, ref);
        slt_schema_node_t **hit = t ? bsearch(t, byjson, s->nnodes, sizeof *byjson,
                                     s_node_by_json) : NULL;
        if (!hit) {
            slc_errf(c->err, c->errlen, "%s/$ref: \"%.100s\" %s",
                     c->refs[i].where, ref, t ? "does not name a schema"
                                              : "does not resolve in this document");
            rc = SL_EINVAL;
            goto fail;
        }
        n->ref = *hit;
    }
    for (size_t i = 0; i < c->nrefs; i++) {
        slt_schema_node_t *n = c->refs[i].node, *t = n->ref;
        size_t hops = 0;
        while (t->ref && hops++ <= c->nrefs)
            t = t->ref;
        if (t->ref) {
            slc_errf(c->err, c->errlen, "%s/$ref: a cycle of $refs that never "
                     "reaches a schema", c->refs[i].where);
            rc = SL_EINVAL;
            goto fail;
        }
        n->target = t;
    }
fail:
    free(byjson);
    return rc;
}

/* Containers nested in J, J included ({"a":[1]} is 2); the count stops
 * once it is past LIMIT, so the walk is bounded too. */
static int s_depth(const cJSON *j, int limit)
{
    int deepest = 0;
    const cJSON *v;
    if (!cJSON_IsObject(j) && !cJSON_IsArray(j))
        return 0;
    if (limit == 0)
        return 1;
    cJSON_ArrayForEach(v, j) {
        int d = s_depth(v, limit - 1);
        deepest = d > deepest ? d : deepest;
        if (1 + deepest > limit)
            break;
    }
    return 1 + deepest;
}

/* The canonical text (slt_schema_text): keys sorted, compact, numbers as
 * slt_doc_number writes them. 0 or SL_ENOMEM: slt_doc_parse has refused
 * every number JSON text cannot hold. */
static int s_canonical(slt_schema_t *s)
{
    return slt_doc_encode_ex(s->json, SLT_DOC_SORTED, &s->text, NULL);
}

int slt_schema_compile(const char *text, size_t len, slt_schema_t **out,
                       char *err, size_t errlen)
{
    int rc = 0;
    slt_schema_t *s = NULL;
    s_cc_t c;
    char why[200];
    assert(out && (text || len == 0));
    memset(&c, 0, sizeof c);
    *out = NULL;
    if (len > SLT_SCHEMA_TEXT_MAX) {
        slc_errf(err, errlen, "the schema is %zu bytes; the limit is %d",
                 len, SLT_SCHEMA_TEXT_MAX);
        rc = SL_ETOOBIG;
        goto fail;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        rc = SL_ENOMEM;
        goto fail;
    }
    rc = slt_doc_parse(text, len, &s->json, why, sizeof why);
    if (rc == SL_EINVAL)
        slc_errf(err, errlen, "not JSON: %s", why);
    if (rc)
        goto fail;
    if (s_depth(s->json, SLT_SCHEMA_DEPTH_MAX) > SLT_SCHEMA_DEPTH_MAX) {
        slc_errf(err, errlen, "the schema nests deeper than %d levels",
                 SLT_SCHEMA_DEPTH_MAX);
        rc = SL_EINVAL;
        goto fail;
    }
    c.s = s;
    c.err = err;
    c.errlen = errlen;
    rc = s_compile(&c, s->json, &s->root);
    if (rc)
        goto fail;
    rc = s_resolve(&c);
    if (rc)
        goto fail;
    rc = s_canonical(s);
    if (rc)
        goto fail;
    *out = s;
    s = NULL;
fail:
    if (rc == SL_ENOMEM)
        slc_errf(err, errlen, "out of memory");
    for (size_t i = 0; i < c.nrefs; i++)
        free(c.refs[i].where);
    free(c.refs);
    slt_schema_destroy(&s);
    return rc;
}
