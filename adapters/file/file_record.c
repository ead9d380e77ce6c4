/*  file_record - CSV fields to a JSON object (cJSON), typed by the JSON
 *  Schema bound to the topic. Only top-level "properties" with a "type"
 *  (a name or an array of names) type a column; anything else (no schema,
 *  a $ref, a column the schema does not name) is a string. Numbers go out
 *  as their own text (cJSON raw) so an integer wider than a double stays
 *  exact.  */
#include "file_record.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    S_T_NULL = 1, S_T_INTEGER = 2, S_T_NUMBER = 4, S_T_BOOLEAN = 8, S_T_STRING = 16,
    S_T_ANY = 31,
};

struct file_record {
    cJSON *props;               /* the schema's "properties", or NULL (owned by root) */
    cJSON *root;                /* the parsed schema, or NULL */
    char **names;               /* header, NCOLS entries */
    unsigned *types;            /* S_T_* bits per column */
    size_t ncols;
};

static unsigned s_type_bit(const char *name)
{
    static const struct { const char *n; unsigned bit; } map[] = {
        { "null", S_T_NULL }, { "integer", S_T_INTEGER }, { "number", S_T_NUMBER },
        { "boolean", S_T_BOOLEAN }, { "string", S_T_STRING },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(name, map[i].n) == 0)
            return map[i].bit;
    return 0;                   /* object, array: not from one CSV field */
}

/* The types column NAME may have. */
static unsigned s_column_types(const file_record_t *self, const char *name)
{
    cJSON *prop = self->props ? cJSON_GetObjectItemCaseSensitive(self->props, name) : NULL;
    cJSON *type = prop ? cJSON_GetObjectItemCaseSensitive(prop, "type") : NULL;
    unsigned bits = 0;
    if (cJSON_IsString(type))
        bits = s_type_bit(type->valuestring);
    else if (cJSON_IsArray(type)) {
        cJSON *t;
        cJSON_ArrayForEach(t, type)
            if (cJSON_IsString(t))
                bits |= s_type_bit(t->valuestring);
    }
    /* "number" takes integers too. */
    if (bits & S_T_NUMBER)
        bits |= S_T_INTEGER;
    return bits ? bits : S_T_STRING;
}

file_record_t *file_record_from_schema(const char *schema)
{
    file_record_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    if (schema) {
        self->root = cJSON_Parse(schema);
        cJSON *props = self->root
                       ? cJSON_GetObjectItemCaseSensitive(self->root, "properties") : NULL;
        self->props = cJSON_IsObject(props) ? props : NULL;
    }
    return self;
}

int file_record_new(sl_client_t *client, const char *topic, file_record_t **out,
                    char *schema, size_t schema_len, char *err, size_t errlen)
{
    sl_topic_info_t *topics = NULL;
    size_t n = 0;
    sl_schema_info_t info;
    memset(&info, 0, sizeof info);
    char subject[272] = "";
    if (schema && schema_len)
        schema[0] = '\0';
    int rc = sl_stats(client, &topics, &n, NULL, NULL);
    if (rc) {
        snprintf(err, errlen, "cannot read the topic list: %s", sl_client_last_error(client));
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(topics[i].name, topic) == 0)
            snprintf(subject, sizeof subject, "%s", topics[i].schema);
    uint32_t version = 0;
    char *at = strrchr(subject, '@');
    if (at) {
        *at = '\0';
        version = (uint32_t) strtoul(at + 1, NULL, 10);    /* "latest": 0 */
    }
    if (subject[0]) {
        rc = sl_schema_get(client, subject, version, &info);
        if (rc) {
            snprintf(err, errlen, "cannot read schema %s of topic %s: %s", subject, topic,
                     sl_client_last_error(client));
            goto fail;
        }
        if (schema && schema_len)
            snprintf(schema, schema_len, "%s@%u", subject, info.version);
    }
    *out = file_record_from_schema(info.schema);
    rc = *out ? 0 : SL_ENOMEM;
fail:
    sl_schema_info_clear(&info);
    free(topics);
    return rc;
}

void file_record_destroy(file_record_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    file_record_t *self = *self_p;
    for (size_t i = 0; i < self->ncols; i++)
        free(self->names[i]);
    free(self->names);
    free(self->types);
    cJSON_Delete(self->root);
    free(self);
    *self_p = NULL;
}

int file_record_header(file_record_t *self, const file_csv_field_t *fields, size_t n,
                       char *err, size_t errlen)
{
    self->names = calloc(n, sizeof *self->names);
    self->types = calloc(n, sizeof *self->types);
    if (!self->names || !self->types) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (fields[i].len == 0 || strlen(fields[i].ptr) != fields[i].len) {
            snprintf(err, errlen, "header column %zu has no name", i + 1);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(self->names[j], fields[i].ptr) == 0) {
                snprintf(err, errlen, "header names column '%s' twice (columns %zu "
                         "and %zu)", fields[i].ptr, j + 1, i + 1);
                return -1;
            }
        self->names[i] = strdup(fields[i].ptr);
        if (!self->names[i]) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        self->ncols = i + 1;
        self->types[i] = s_column_types(self, fields[i].ptr);
    }
    return 0;
}

/* JSON's number grammar; INTEGER_ONLY: no fraction or exponent. */
static bool s_is_number(const char *s, size_t len, bool integer_only)
{
    size_t i = 0;
    if (i < len && s[i] == '-')
        i++;
    if (i >= len || !isdigit((unsigned char) s[i]))
        return false;
    if (s[i] == '0')
        i++;
    else
        while (i < len && isdigit((unsigned char) s[i]))
            i++;
    if (integer_only)
        return i == len;
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || !isdigit((unsigned char) s[i]))
            return false;
        while (i < len && isdigit((unsigned char) s[i]))
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= len || !isdigit((unsigned char) s[i]))
            return false;
        while (i < len && isdigit((unsigned char) s[i]))
            i++;
    }
    return i == len;
}

static cJSON *s_value(unsigned types, const file_csv_field_t *f)
{
    if ((types & S_T_NULL) && f->len == 0 && !f->quoted)
        return cJSON_CreateNull();
    if ((types & S_T_INTEGER) && s_is_number(f->ptr, f->len, true))
        return cJSON_CreateRaw(f->ptr);
    if ((types & S_T_NUMBER) && s_is_number(f->ptr, f->len, false))
        return cJSON_CreateRaw(f->ptr);
    if (types & S_T_BOOLEAN) {
        if (strcasecmp(f->ptr, "true") == 0)
            return cJSON_CreateTrue();
        if (strcasecmp(f->ptr, "false") == 0)
            return cJSON_CreateFalse();
    }
    /* A string even when the schema wants none: the broker's validation
     * then names the member and the rule. */
    return cJSON_CreateString(f->ptr);
}

int file_record_json(file_record_t *self, const file_csv_field_t *fields, size_t n,
                     char **json, size_t *len, char *err, size_t errlen)
{
    if (n != self->ncols) {
        snprintf(err, errlen, "%zu fields where the header has %zu", n, self->ncols);
        return -1;
    }
    cJSON *obj = cJSON_CreateObject();
    for (size_t i = 0; obj && i < n; i++) {
        cJSON *v = s_value(self->types[i], &fields[i]);
        if (!v || !cJSON_AddItemToObject(obj, self->names[i], v)) {
            cJSON_Delete(v);
            cJSON_Delete(obj);
            obj = NULL;
        }
    }
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *json = text;
    *len = strlen(text);
    return 0;
}
