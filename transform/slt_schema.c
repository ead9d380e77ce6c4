/*  slt_schema - a JSON Schema subset (slt_schema.h): the compiled schema
 *  as an object (its nodes' shared helpers, destroy, canonical text) and
 *  the type query the mapping checker asks (slt_schema_type_at).
 *  Compiling is slt_schema_compile.c, validating slt_schema_validate.c,
 *  string formats and patterns slt_schema_format.c, compatibility
 *  slt_schema_compat.c; slt_schema_int.h is what they share.
 *  A compiled schema is immutable: any thread may read it concurrently.
 *  It does not parse, validate or compare schemas itself.  */
#include "slt_schema_int.h"
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const slt_schema_node_t slt_schema__any = {
    .types = SLC_JSON_ANY, .max_items = SIZE_MAX, .max_len = SIZE_MAX,
};

/* ------------------------------------------------------------ small bits */

size_t slt_schema__path_push(slt_schema_path_t *p, const char *seg)
{
    size_t mark = p->len;
    const char *c = seg;
    if (p->len + 1 < sizeof p->buf)
        p->buf[p->len++] = '/';
    for (; *c && p->len + 1 < sizeof p->buf; c++) {
        if (*c == '~' || *c == '/') {
            if (p->len + 2 >= sizeof p->buf)
                break;
            p->buf[p->len++] = '~';
            p->buf[p->len++] = *c == '~' ? '0' : '1';
        }
        else
            p->buf[p->len++] = *c;
    }
    p->buf[p->len] = '\0';
    return mark;
}

void slt_schema__path_pop(slt_schema_path_t *p, size_t mark)
{
    p->len = mark;
    p->buf[mark] = '\0';
}

const char *slt_schema__kind_name(unsigned kind)
{
    switch (kind) {
    case SLC_JSON_STRING:  return "string";
    case SLC_JSON_NUMBER:  return "number";
    case SLC_JSON_INTEGER: return "integer";
    case SLC_JSON_BOOLEAN: return "boolean";
    case SLC_JSON_OBJECT:  return "object";
    case SLC_JSON_ARRAY:   return "array";
    case SLC_JSON_NULL:    return "null";
    default:               return "no JSON value";
    }
}

/* "string or null", "any" for all bits, "nothing" for none. A number that
 * allows integers is just "number". */
void slt_schema__types_text(unsigned types, char *out, size_t size)
{
    static const unsigned order[] = {
        SLC_JSON_OBJECT, SLC_JSON_ARRAY, SLC_JSON_STRING, SLC_JSON_NUMBER,
        SLC_JSON_INTEGER, SLC_JSON_BOOLEAN, SLC_JSON_NULL,
    };
    size_t len = 0, count = 0, done = 0;
    if (types == SLC_JSON_ANY) {
        snprintf(out, size, "any");
        return;
    }
    if (types & SLC_JSON_NUMBER)
        types &= ~SLC_JSON_INTEGER;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        count += (types & order[i]) != 0;
    out[0] = '\0';
    if (!count)
        snprintf(out, size, "nothing");
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (!(types & order[i]))
            continue;
        done++;
        const char *sep = done == 1 ? "" : done == count ? " or " : ", ";
        int n = snprintf(out + len, size - len, "%s%s", sep,
                         slt_schema__kind_name(order[i]));
        if (n < 0 || (size_t) n >= size - len)
            break;
        len += (size_t) n;
    }
}

/* The kinds N's values may have: its types, narrowed by enum/const. */
unsigned slt_schema__types_of(const slt_schema_node_t *n)
{
    unsigned t = n->never ? 0 : n->types;
    if (n->constv)
        t &= slt_schema__kind(n->constv);
    if (n->enumv) {
        unsigned e = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, n->enumv)
            e |= slt_schema__kind(v);
        t &= e;
    }
    /* A number's bit already says it may be whole. */
    if (t & SLC_JSON_NUMBER)
        t |= SLC_JSON_INTEGER;
    return t;
}

void slt_schema_destroy(slt_schema_t **self_p)
{
    slt_schema_t *s = self_p ? *self_p : NULL;
    if (!s)
        return;
    for (size_t i = 0; i < s->nnodes; i++) {
        slt_schema_node_t *n = s->nodes[i];
        for (size_t k = 0; k < n->nprops; k++)
            free(n->props[k].name);
        free(n->props);
        free(n->enum_list);
        free(n->const_text);
        pcre2_code_free(n->re);
        pcre2_match_context_free(n->mctx);
        free(n->pattern);
        free(n);
    }
    free(s->nodes);
    free(s->text);
    cJSON_Delete(s->json);
    free(s);
    *self_p = NULL;
}

const char *slt_schema_text(const slt_schema_t *self)
{
    assert(self);
    return self->text;
}

/* ------------------------------------------------------------- type query */

/* True when PATH is well formed: keys separated by '.', [*] or [N]. */
static bool s_path_ok(const char *path)
{
    const char *p = path;
    bool need_key = false;
    while (*p) {
        if (*p == '[') {
            if (need_key)
                return false;
            p++;
            if (*p == '*')
                p++;
            else {
                const char *start = p;
                while (*p >= '0' && *p <= '9')
                    p++;
                if (p == start)
                    return false;
            }
            if (*p++ != ']')
                return false;
            need_key = false;
            if (*p == '.') {
                p++;
                need_key = true;
            }
            else if (*p && *p != '[')
                return false;
            continue;
        }
        size_t len = strcspn(p, ".[]");
        if (!len || p[len] == ']')
            return false;
        p += len;
        need_key = false;
        if (*p == '.') {
            p++;
            need_key = true;
        }
    }
    return !need_key;
}

int slt_schema_type_at(const slt_schema_t *self, const char *path,
                       unsigned *types)
{
    int rc = 0;
    const slt_schema_node_t *n;
    const char *p = path;
    assert(self && path && types);
    *types = 0;
    if (!s_path_ok(path)) {
        rc = SL_EINVAL;
        goto fail;
    }
    n = slt_schema__res(self->root);
    while (*p && !n->never) {
        if (*p == '.')
            p++;
        if (*p == '[') {
            size_t index = 0;
            bool any = p[1] == '*';
            p++;
            while (*p >= '0' && *p <= '9') {
                size_t d = (size_t) (*p++ - '0');
                index = index > (SIZE_MAX - d) / 10 ? SIZE_MAX : index * 10 + d;
            }
            p += any ? 2 : 1;
            if (!(slt_schema__types_of(n) & SLC_JSON_ARRAY) || n->max_items == 0
                || (!any && index >= n->max_items)) {
                rc = SL_ENOTFOUND;
                goto fail;
            }
            n = slt_schema__res(n->items);
            continue;
        }
        size_t len = strcspn(p, ".[");
        if (!(slt_schema__types_of(n) & SLC_JSON_OBJECT)) {
            rc = SL_ENOTFOUND;
            goto fail;
        }
        const slt_schema_prop_t *prop = slt_schema__prop_find(n, p, len);
        p += len;
        if (prop && prop->declared)
            n = slt_schema__res(prop->node);
        else if (n->addl)
            n = slt_schema__res(n->addl);
        else {
            /* An open object: the schema says nothing below here. */
            *types = SLC_JSON_ANY;
            goto fail;
        }
    }
    *types = slt_schema__types_of(n);
    if (!*types)
        rc = SL_ENOTFOUND;
fail:
    return rc;
}
