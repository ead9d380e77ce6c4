/*  slt_schema_int - what the files of the slt_schema module share, and
 *  nothing outside them includes: the compiled node and its parts, the
 *  JSON pointer builder, the small helpers every stage uses (inline where
 *  validation calls them for every value) and each stage's entry points.
 *  slt_schema.c owns the object, slt_schema_compile.c builds it,
 *  slt_schema_validate.c, slt_schema_format.c and slt_schema_compat.c read
 *  it. Internal functions are named slt_schema__verb.
 *
 *  The schema document is a cJSON tree that the compiled schema owns and
 *  keeps for its lifetime: nodes borrow their subschema, enum and const
 *  values from it (cJSON has no reference counts).  */
#ifndef SLT_SCHEMA_INT_H
#define SLT_SCHEMA_INT_H
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cjson/cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "slt_doc.h"
#include "slt_schema.h"

#define SLT_SCHEMA_PATH_MAX 256     /* = sizeof slt_schema_error_t.pointer */
#define SLT_SCHEMA_RULE_MAX 200     /* = sizeof slt_schema_error_t.rule */
#define SLT_SCHEMA_LIST_MAX 160     /* enum list text kept for errors */

enum {
    SLT_SCHEMA_FMT_NONE = 0, SLT_SCHEMA_FMT_DATETIME, SLT_SCHEMA_FMT_EMAIL,
    SLT_SCHEMA_FMT_UUID
};
/* The format names by SLT_SCHEMA_FMT_* ("" for none). */
extern const char *const slt_schema__formats[];

typedef struct slt_schema_node slt_schema_node_t;

typedef struct {
    char *name;             /* property name (owned) */
    slt_schema_node_t *node; /* its schema; NULL: any value */
    bool declared;          /* listed in "properties" */
    bool required;          /* listed in "required" */
} slt_schema_prop_t;

typedef struct {
    double value;           /* the bound */
    bool set;               /* there is a bound */
    bool exclusive;         /* the bound itself is outside */
    char text[40];          /* ">= 5" or "< 1.5", for error texts */
} slt_schema_bound_t;

struct slt_schema_node {
    const cJSON *json;      /* the subschema (borrowed from slt_schema.json) */
    slt_schema_node_t *ref; /* $ref: the node it names */
    slt_schema_node_t *target; /* $ref: the first node of the chain without one */
    bool never;             /* the false schema */
    bool has_default;       /* "default" is present */
    unsigned types;         /* SLC_JSON_* bits accepted */
    char type_text[80];     /* "string or null", for "expected ..." */
    slt_schema_prop_t *props; /* properties and required names, by name */
    size_t nprops;          /* entries in props */
    size_t props_cap;       /* allocated entries of props */
    size_t nrequired;       /* entries with required set */
    slt_schema_node_t *addl; /* additionalProperties; NULL: any */
    slt_schema_node_t *items; /* items; NULL: any */
    size_t min_items;       /* minItems, 0 when absent */
    size_t max_items;       /* maxItems, SIZE_MAX when absent */
    const cJSON *enumv;     /* enum array (borrowed, as json), NULL: none */
    char *enum_list;        /* its values as JSON, comma separated */
    const cJSON *constv;    /* const value (borrowed, as json), NULL: none */
    char *const_text;       /* its JSON text */
    slt_schema_bound_t lo;  /* minimum / exclusiveMinimum, the tighter */
    slt_schema_bound_t hi;  /* maximum / exclusiveMaximum, the tighter */
    size_t min_len;         /* minLength in code points, 0 when absent */
    size_t max_len;         /* maxLength, SIZE_MAX when absent */
    char *pattern;          /* pattern text */
    pcre2_code *re;         /* the compiled pattern (JIT'd where PCRE2 can), NULL: none */
    pcre2_match_context *mctx; /* its limits for one value (read-only once made) */
    int format;             /* SLT_SCHEMA_FMT_* */
};

struct slt_schema {
    cJSON *json;            /* the parsed document (owned; nodes borrow) */
    char *text;             /* canonical compact text (owned) */
    slt_schema_node_t *root; /* the document's node */
    slt_schema_node_t **nodes; /* every node (owned) */
    size_t nnodes;          /* entries in nodes */
    size_t cap;             /* allocated entries */
};

/* The schema that accepts everything: what a missing subschema means. */
extern const slt_schema_node_t slt_schema__any;

/* ---- JSON pointers (slt_schema.c) */

typedef struct {
    char buf[SLT_SCHEMA_PATH_MAX]; /* the pointer, NUL-terminated */
    size_t len;             /* bytes in buf */
} slt_schema_path_t;

/* Append "/" and SEG (escaped per RFC 6901) to P, cutting at the buffer's
 * end. Returns the length to restore with slt_schema__path_pop. */
size_t slt_schema__path_push(slt_schema_path_t *p, const char *seg);
void slt_schema__path_pop(slt_schema_path_t *p, size_t mark);

/* ---- node helpers. Inline: validation calls them for every value. */

/* The one type bit of value V, 0 for a cJSON item that is no JSON value
 * (raw, invalid). "integer" is JSON Schema's: a number with no fraction,
 * however written (1.0 is one). Every double beyond 2^53 is whole, so
 * those are integers too, as they always were here; slt_doc_int answers
 * for the rest. The type switch is cJSON_IsX's own test, written out
 * because this runs for every value validated. */
static inline unsigned slt_schema__kind(const cJSON *v)
{
    switch (v->type & 0xFF) {
    case cJSON_Object: return SLC_JSON_OBJECT;
    case cJSON_Array:  return SLC_JSON_ARRAY;
    case cJSON_String: return SLC_JSON_STRING;
    case cJSON_True:
    case cJSON_False:  return SLC_JSON_BOOLEAN;
    case cJSON_NULL:   return SLC_JSON_NULL;
    case cJSON_Number: break;
    default:           return 0;
    }
    double m = fabs(v->valuedouble);
    if (m > SLT_DOC_INT_LIMIT)
        return m <= DBL_MAX ? SLC_JSON_INTEGER : SLC_JSON_NUMBER;
    return slt_doc_int(v, NULL) ? SLC_JSON_INTEGER : SLC_JSON_NUMBER;
}

/* N with its $ref chain followed; slt_schema__any for NULL. */
static inline const slt_schema_node_t *slt_schema__res(const slt_schema_node_t *n)
{
    if (!n)
        return &slt_schema__any;
    return n->target ? n->target : n;
}

/* N's entry for the LEN-byte KEY, NULL when it has none. */
static inline const slt_schema_prop_t *
slt_schema__prop_find(const slt_schema_node_t *n, const char *key, size_t len)
{
    size_t lo = 0, hi = n->nprops;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *name = n->props[mid].name;
        int c = strncmp(key, name, len);
        if (c == 0 && name[len])
            c = -1;
        if (c == 0)
            return &n->props[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* N's entry for the NUL-terminated KEY, NULL when it has none: as
 * slt_schema__prop_find without a strlen per key (validation looks up
 * every member of every object). */
static inline const slt_schema_prop_t *
slt_schema__prop_find_z(const slt_schema_node_t *n, const char *key)
{
    size_t lo = 0, hi = n->nprops;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, n->props[mid].name);
        if (c == 0)
            return &n->props[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* "string", "integer", ... for one SLC_JSON_* bit (slt_schema.c). */
const char *slt_schema__kind_name(unsigned kind);

/* "string or null", "any" for all bits, "nothing" for none, into OUT
 * (SIZE bytes) (slt_schema.c). */
void slt_schema__types_text(unsigned types, char *out, size_t size);

/* The kinds N's values may have: its types, narrowed by enum/const
 * (slt_schema.c). */
unsigned slt_schema__types_of(const slt_schema_node_t *n);

/* ---- compile (slt_schema_compile.c) */

/* VALUES (an array, or one value when ONE) as "\"a\", 1, null", cut with
 * "..." near SLT_SCHEMA_LIST_MAX bytes. Caller owns the result; NULL: no
 * memory. */
char *slt_schema__list_text(const cJSON *values, bool one);

/* ---- validate (slt_schema_validate.c) */

/* Validate VAL against N; on failure the first reason goes to *E (may be
 * NULL). True when valid. */
bool slt_schema__valid(const slt_schema_node_t *n, const cJSON *val,
                       slt_schema_error_t *e);

/* ---- formats and patterns (slt_schema_format.c) */

/* True when the LEN bytes at S are a valid FORMAT (SLT_SCHEMA_FMT_*; NONE
 * accepts anything). */
bool slt_schema__format_ok(int format, const char *s, size_t len);

/* Compile pattern P (an ECMA-262 regular expression) into N's re, mctx
 * and pattern, with its match limits. Returns 0, SL_ENOMEM (what was made
 * is freed by slt_schema_destroy), or SL_EINVAL when P is not one; ERR
 * (ERRLEN bytes, may be NULL) then says why, without a location. */
int slt_schema__pattern_compile(slt_schema_node_t *n, const char *p,
                                char *err, size_t errlen);

/* Match NUL-terminated S against N's pattern (N->re set). Returns 0 when S
 * contains a match, SL_EINVAL when not or when it cannot be checked within
 * the limits (or is not UTF-8); ERR (ERRLEN bytes, may be NULL) then holds
 * the reason a validation error gives. Threads may match the same N at
 * once: each uses match data of its own. */
int slt_schema__pattern_match(const slt_schema_node_t *n, const char *s,
                              char *err, size_t errlen);

#endif
