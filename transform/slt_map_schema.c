/*  slt_map_schema - mapping paths answered from a compiled schema.  */
#include "slt_map_schema.h"
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slc.h"

int slt_map_schema_types(void *arg, const char *path, unsigned *types)
{
    const slt_schema_t *schema = arg;
    unsigned t = 0;
    /* "$" alone is the document; "$." starts the schema's dotted path. */
    if (strcmp(path, "$") == 0)
        path = "";
    else if (strncmp(path, "$.", 2) == 0)
        path += 2;
    else if (strncmp(path, "$[", 2) == 0)
        path += 1;
    /* ["name"] steps become .name where the schema's dotted paths can
     * spell the name (no '.', '[', ']', no escapes); else the schema is not
     * asked and the value may be anything. */
    char dotted[1024];
    size_t k = 0;
    for (const char *p = path; *p; ) {
        if (p[0] == '[' && p[1] == '"') {
            const char *end = strstr(p + 2, "\"]");
            size_t n = end ? (size_t) (end - (p + 2)) : 0;
            if (!end || memchr(p + 2, '\\', n) || memchr(p + 2, '.', n) || memchr(p + 2, '[', n)
                || memchr(p + 2, ']', n) || k + n + 2 >= sizeof dotted) {
                *types = SLT_MAP_T_ANY;
                return 0;
            }
            if (k)
                dotted[k++] = '.';
            memcpy(dotted + k, p + 2, n);
            k += n;
            p = end + 2;
            continue;
        }
        if (k + 2 >= sizeof dotted) {
            *types = SLT_MAP_T_ANY;
            return 0;
        }
        dotted[k++] = *p++;
    }
    dotted[k] = 0;
    int rc = slt_schema_type_at(schema, dotted, &t);
    if (rc == SL_EINVAL) {
        *types = SLT_MAP_T_ANY;         /* a name the schema's paths cannot spell */
        return 0;
    }
    if (rc)
        return rc;
    /* Same bit layout (string, number, integer, boolean, object, array,
     * null); spelled out so that a change of either is caught here. */
    *types = ((t & SLC_JSON_STRING) ? SLT_MAP_T_STRING : 0)
           | ((t & SLC_JSON_NUMBER) ? SLT_MAP_T_NUMBER : 0)
           | ((t & SLC_JSON_INTEGER) ? SLT_MAP_T_INTEGER : 0)
           | ((t & SLC_JSON_BOOLEAN) ? SLT_MAP_T_BOOLEAN : 0)
           | ((t & SLC_JSON_OBJECT) ? SLT_MAP_T_OBJECT : 0)
           | ((t & SLC_JSON_ARRAY) ? SLT_MAP_T_ARRAY : 0)
           | ((t & SLC_JSON_NULL) ? SLT_MAP_T_NULL : 0);
    return 0;
}

int slc_subject_ref(const char *ref, char *subject, size_t len, uint32_t *version)
{
    const char *at = ref ? strrchr(ref, '@') : NULL;
    size_t n = ref ? (at ? (size_t) (at - ref) : strlen(ref)) : 0;
    *version = 0;
    if (n == 0 || n >= len)
        return SL_EINVAL;
    if (at) {
        char *end = NULL;
        unsigned long v = strtoul(at + 1, &end, 10);
        if (!at[1] || *end || v == 0 || v > UINT32_MAX)
            return SL_EINVAL;
        *version = (uint32_t) v;
    }
    memcpy(subject, ref, n);
    subject[n] = 0;
    return 0;
}

static void s_peek_one(struct fy_node *root, const char *key, char *out, size_t len)
{
    struct fy_node *n = fy_node_mapping_lookup_by_string(root, key, FY_NT);
    const char *v = n && fy_node_is_scalar(n) ? fy_node_get_scalar0(n) : NULL;
    snprintf(out, len, "%s", v ? v : "");
}

int slt_map_peek(const char *yaml, size_t len, char *from, char *to, size_t reflen)
{
    /* Quiet: the compiler reports YAML errors with their position. */
    struct fy_parse_cfg cfg = { .flags = FYPCF_QUIET };
    struct fy_document *doc = fy_document_build_from_string(&cfg, yaml, len);
    struct fy_node *root = doc ? fy_document_root(doc) : NULL;
    from[0] = to[0] = 0;
    if (!root || !fy_node_is_mapping(root)) {
        if (doc)
            fy_document_destroy(doc);
        return SL_EINVAL;
    }
    s_peek_one(root, "from", from, reflen);
    s_peek_one(root, "to", to, reflen);
    fy_document_destroy(doc);
    return 0;
}
