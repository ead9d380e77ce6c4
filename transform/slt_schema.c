/*  slt_schema - a JSON Schema subset (slt_schema.h).
 *
 *  Compiling turns the schema document into one s_node_t per subschema with
 *  every check precomputed: type bits, a property table sorted by name, the
 *  bounds and their texts, a compiled regex, the enum's text. Validation is
 *  then a walk over the document that allocates nothing but a pattern's
 *  match data (PCRE2's API) and builds a JSON pointer only when it reports
 *  (from a stack of keys and indexes). A pattern is compiled by PCRE2 and
 *  matched with a step and a memory limit, so no pattern and no value can
 *  hold the caller's thread for long.
 *
 *  $ref is resolved at compile time to the node it names. A chain of $refs
 *  that never reaches a real schema is refused; every other cycle goes
 *  through properties, items or additionalProperties, so each turn consumes
 *  a level of the document being validated (bounded) or, in a
 *  compatibility check, is cut by the set of node pairs already compared.
 *
 *  Compatibility is a conservative subset test, A <= B: "every document A
 *  accepts, B accepts", proved keyword by keyword; what cannot be proved is
 *  a break. BACKWARD is old <= new, FORWARD new <= old, FULL both. A whose
 *  values are finite (enum, const, only null/boolean) is decided exactly by
 *  validating each value against B.
 *
 *  The schema document is a cJSON tree that the compiled schema owns and
 *  keeps for its lifetime: nodes borrow their subschema, enum and const
 *  values from it (cJSON has no reference counts). The canonical text is
 *  written here, not by cJSON_Print, because it needs sorted keys and a
 *  number format that slt_doc_parse reads back unchanged.  */
#include "slt_schema.h"
#include "slc.h"
#include "slt_doc.h"
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <assert.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_PATH_MAX 256          /* = sizeof slt_schema_error_t.pointer */
#define S_RULE_MAX 200          /* = sizeof slt_schema_error_t.rule */
#define S_LIST_MAX 160          /* enum list text kept for errors */
#define S_RE_NEST_MAX 32        /* nested ( ) in a pattern */
#define S_RE_MATCH_LIMIT 1000000 /* pcre2_match steps for one value */
#define S_RE_HEAP_KIB 8192      /* pcre2_match's backtracking memory, KiB */
/* ECMA-262's reading: code points of UTF-8, $ only at the very end, \uhhhh. */
#define S_RE_OPTIONS (PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX \
                      | PCRE2_NEVER_BACKSLASH_C | PCRE2_NO_AUTO_CAPTURE)
#define S_SEEN_MAX 4096         /* property entries s_check_required marks */

enum { S_FMT_NONE = 0, S_FMT_DATETIME, S_FMT_EMAIL, S_FMT_UUID };
static const char *const s_formats[] = { "", "date-time", "email", "uuid" };

typedef struct s_node s_node_t;

typedef struct {
    char *name;             /* property name (owned) */
    s_node_t *node;         /* its schema; NULL: any value */
    bool declared;          /* listed in "properties" */
    bool required;          /* listed in "required" */
} s_prop_t;

typedef struct {
    double value;           /* the bound */
    bool set;               /* there is a bound */
    bool exclusive;         /* the bound itself is outside */
    char text[40];          /* ">= 5" or "< 1.5", for error texts */
} s_bound_t;

struct s_node {
    const cJSON *json;      /* the subschema (borrowed from slt_schema.json) */
    s_node_t *ref;          /* $ref: the node it names */
    s_node_t *target;       /* $ref: the first node of the chain without one */
    bool never;             /* the false schema */
    bool has_default;       /* "default" is present */
    unsigned types;         /* SLC_JSON_* bits accepted */
    char type_text[80];     /* "string or null", for "expected ..." */
    s_prop_t *props;        /* properties and required names, by name */
    size_t nprops;          /* entries in props */
    size_t props_cap;       /* allocated entries of props */
    size_t nrequired;       /* entries with required set */
    s_node_t *addl;         /* additionalProperties; NULL: any */
    s_node_t *items;        /* items; NULL: any */
    size_t min_items;       /* minItems, 0 when absent */
    size_t max_items;       /* maxItems, SIZE_MAX when absent */
    const cJSON *enumv;     /* enum array (borrowed, as json), NULL: none */
    char *enum_list;        /* its values as JSON, comma separated */
    const cJSON *constv;    /* const value (borrowed, as json), NULL: none */
    char *const_text;       /* its JSON text */
    s_bound_t lo;           /* minimum / exclusiveMinimum, the tighter */
    s_bound_t hi;           /* maximum / exclusiveMaximum, the tighter */
    size_t min_len;         /* minLength in code points, 0 when absent */
    size_t max_len;         /* maxLength, SIZE_MAX when absent */
    char *pattern;          /* pattern text */
    pcre2_code *re;         /* the compiled pattern, NULL: none */
    pcre2_match_context *mctx; /* its limits for one value */
    int format;             /* S_FMT_* */
};

struct slt_schema {
    cJSON *json;            /* the parsed document (owned; nodes borrow) */
    char *text;             /* canonical compact text (owned) */
    s_node_t *root;         /* the document's node */
    s_node_t **nodes;       /* every node (owned) */
    size_t nnodes;          /* entries in nodes */
    size_t cap;             /* allocated entries */
};

/* The schema that accepts everything: what a missing subschema means. */
static const s_node_t s_any = {
    .types = SLC_JSON_ANY, .max_items = SIZE_MAX, .max_len = SIZE_MAX,
};

/* ------------------------------------------------------------ small bits */

typedef struct {
    char buf[S_PATH_MAX];   /* the pointer, NUL-terminated */
    size_t len;             /* bytes in buf */
} s_path_t;

/* Append "/" and SEG (escaped per RFC 6901) to P, cutting at the buffer's
 * end. Returns the length to restore with s_path_pop. */
static size_t s_path_push(s_path_t *p, const char *seg)
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

static void s_path_pop(s_path_t *p, size_t mark)
{
    p->len = mark;
    p->buf[mark] = '\0';
}

/* The one type bit of value V, 0 for a cJSON item that is no JSON value
 * (raw, invalid). "integer" is JSON Schema's: a number with no fraction,
 * however written (1.0 is one). Every double beyond 2^53 is whole, so
 * those are integers too, as they always were here; slt_doc_int answers
 * for the rest. The type switch is cJSON_IsX's own test, written out
 * because this runs for every value validated. */
static unsigned s_kind(const cJSON *v)
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

static const char *s_kind_name(unsigned kind)
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
static void s_types_text(unsigned types, char *out, size_t size)
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
                         s_kind_name(order[i]));
        if (n < 0 || (size_t) n >= size - len)
            break;
        len += (size_t) n;
    }
}

/* Member KEY of object OBJ, or NULL; HINT (a member of OBJ, or NULL) is
 * tried first. */
static const cJSON *s_member(const cJSON *obj, const cJSON *hint,
                             const char *key)
{
    if (hint && !strcmp(hint->string, key))
        return hint;
    for (const cJSON *m = obj->child; m; m = m->next)
        if (!strcmp(m->string, key))
            return m;
    return NULL;
}

/* JSON equality where 1 and 1.0 are the same number (JSON Schema's rule);
 * numbers are equal only when their doubles are. A is the schema's value
 * (enum, const), whose keys are unique (slt_doc_parse refuses duplicates):
 * so B with as many members, each of A's found in B and equal, is equal.
 * Not cJSON_Compare: it compares every pair of object members twice, so
 * its time doubles with each level of nesting, and it takes numbers one
 * rounding error apart for equal. Here each member of A is compared once,
 * found at once when B lists the keys in A's order, else by a walk of B,
 * which has only as many members as A: time is bounded by A, the
 * schema's, whatever B is. */
static bool s_equal(const cJSON *a, const cJSON *b)
{
    unsigned ka = s_kind(a), kb = s_kind(b);
    const unsigned num = SLC_JSON_INTEGER | SLC_JSON_NUMBER;
    const cJSON *x, *y;
    if ((ka & num) && (kb & num))
        return a->valuedouble == b->valuedouble;
    if (ka != kb)
        return false;
    switch (ka) {
    case SLC_JSON_STRING:
        return strcmp(a->valuestring, b->valuestring) == 0;
    case SLC_JSON_BOOLEAN:
        return (a->type & 0xFF) == (b->type & 0xFF);
    case SLC_JSON_ARRAY:
        for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
            if (!s_equal(x, y))
                return false;
        return !x && !y;
    case SLC_JSON_OBJECT:
        for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
            ;
        if (x || y)
            return false;
        y = b->child;
        cJSON_ArrayForEach(x, a) {
            y = s_member(b, y, x->string);
            if (!y || !s_equal(x, y))
                return false;
            y = y->next;
        }
        return true;
    default:
        return ka == SLC_JSON_NULL;
    }
}

static const s_node_t *s_res(const s_node_t *n)
{
    if (!n)
        return &s_any;
    return n->target ? n->target : n;
}

/* The kinds N's values may have: its types, narrowed by enum/const. */
static unsigned s_types_of(const s_node_t *n)
{
    unsigned t = n->never ? 0 : n->types;
    if (n->constv)
        t &= s_kind(n->constv);
    if (n->enumv) {
        unsigned e = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, n->enumv)
            e |= s_kind(v);
        t &= e;
    }
    /* A number's bit already says it may be whole. */
    if (t & SLC_JSON_NUMBER)
        t |= SLC_JSON_INTEGER;
    return t;
}

/* True when N constrains nothing. */
static bool s_open(const s_node_t *n)
{
    return !n->never && n->types == SLC_JSON_ANY && !n->nprops && !n->addl
        && !n->items && !n->min_items && n->max_items == SIZE_MAX
        && !n->enumv && !n->constv && !n->lo.set && !n->hi.set
        && !n->min_len && n->max_len == SIZE_MAX && !n->pattern
        && !n->format;
}

static int s_prop_cmp(const void *a, const void *b)
{
    const s_prop_t *pa = a, *pb = b;
    int c = strcmp(pa->name, pb->name);
    /* The declared entry of a name first, then its required-only one. */
    return c ? c : (int) pb->declared - (int) pa->declared;
}

/* N's entry for the LEN-byte KEY, NULL when it has none. */
static const s_prop_t *s_prop_find(const s_node_t *n, const char *key,
                                   size_t len)
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

static size_t s_utf8_count(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char) s[i] & 0xC0) != 0x80;
    return n;
}

/* ---------------------------------------------------------------- formats */

static bool s_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* RFC 3339 date-time: 2024-02-29T23:59:60.5+01:00 (T/Z in either case). */
static bool s_is_datetime(const char *s, size_t len)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y, mo, d, h, mi, se, oh, om;
    size_t i = 19;
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't')
        || s[13] != ':' || s[16] != ':')
        return false;
    if (!s_digits(s, 4, &y) || !s_digits(s + 5, 2, &mo) || !s_digits(s + 8, 2, &d)
        || !s_digits(s + 11, 2, &h) || !s_digits(s + 14, 2, &mi)
        || !s_digits(s + 17, 2, &se))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        return false;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return false;
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z'))
        return i + 1 == len;
    if (i + 6 != len || (s[i] != '+' && s[i] != '-') || s[i + 3] != ':')
        return false;
    if (!s_digits(s + i + 1, 2, &oh) || !s_digits(s + i + 4, 2, &om))
        return false;
    return oh <= 23 && om <= 59;
}

/* A pragmatic address check: dot-atom local part @ a host name. No quoted
 * local parts, no [IP] literals, ASCII only. */
static bool s_is_email(const char *s, size_t len)
{
    static const char atext[] = "!#$%&'*+-/=?^_`{|}~";
    const char *at = memchr(s, '@', len);
    if (!at || at == s || at - s > 64 || (size_t) (at - s) + 1 >= len)
        return false;
    for (const char *c = s; c < at; c++) {
        bool alnum = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
                  || (*c >= '0' && *c <= '9');
        if (*c == '.') {
            if (c == s || c + 1 == at || c[1] == '.')
                return false;
        }
        else if (!alnum && (!*c || !strchr(atext, *c)))
            return false;
    }
    const char *host = at + 1, *end = s + len;
    if (end - host > 253)
        return false;
    size_t label = 0;
    for (const char *c = host; c <= end; c++) {
        if (c == end || *c == '.') {
            if (label == 0 || label > 63 || c[-1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool alnum = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
                  || (*c >= '0' && *c <= '9');
        if (!alnum && (*c != '-' || label == 0))
            return false;
        label++;
    }
    return true;
}

/* 8-4-4-4-12 hexadecimal digits, any version, either case. */
static bool s_is_uuid(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        }
        else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')
                   || (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------- validation */

typedef struct {
    const char *key;        /* member name, or NULL for an array element */
    size_t index;           /* the element's index */
} s_frame_t;

typedef struct {
    slt_schema_error_t *errs;   /* where reasons go (borrowed) */
    size_t max;                 /* room in errs */
    size_t n;                   /* reasons written */
    bool failed;                /* some check failed */
    bool stop;                  /* enough: unwind */
    size_t depth;               /* frames in use */
    s_frame_t frames[SLT_SCHEMA_DOC_DEPTH_MAX]; /* the path to the value */
} s_vc_t;

static void s_verr(s_vc_t *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record a reason at the current value. */
static void s_verr(s_vc_t *v, const char *fmt, ...)
{
    v->failed = true;
    if (v->n < v->max) {
        slt_schema_error_t *e = &v->errs[v->n++];
        s_path_t p;
        char idx[24];
        p.len = 0;
        p.buf[0] = '\0';
        for (size_t i = 0; i < v->depth; i++) {
            if (v->frames[i].key)
                s_path_push(&p, v->frames[i].key);
            else {
                snprintf(idx, sizeof idx, "%zu", v->frames[i].index);
                s_path_push(&p, idx);
            }
        }
        memcpy(e->pointer, p.buf, p.len + 1);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->rule, sizeof e->rule, fmt, ap);
        va_end(ap);
    }
    if (v->n >= v->max)
        v->stop = true;
}

static void s_check(s_vc_t *v, const s_node_t *n, const cJSON *val);

/* Make member KEY (or element INDEX when KEY is NULL) the current value;
 * the caller pops it (depth--). False, reported, when the document is too
 * deep. */
static bool s_push(s_vc_t *v, const char *key, size_t index)
{
    if (v->depth == SLT_SCHEMA_DOC_DEPTH_MAX) {
        s_verr(v, "nested deeper than %d levels", SLT_SCHEMA_DOC_DEPTH_MAX);
        return false;
    }
    v->frames[v->depth].key = key;
    v->frames[v->depth].index = index;
    v->depth++;
    return true;
}

/* Does S contain a match of N's pattern? A value the pattern cannot be
 * checked on within its limits (or not UTF-8) fails, saying why. */
static void s_check_pattern(s_vc_t *v, const s_node_t *n, const char *s)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int rc = md ? pcre2_match(n->re, (PCRE2_SPTR) s, PCRE2_ZERO_TERMINATED, 0, 0, md,
                              n->mctx)
                : PCRE2_ERROR_NOMEMORY;
    pcre2_match_data_free(md);
    if (rc >= 0)
        return;
    if (rc == PCRE2_ERROR_NOMATCH) {
        s_verr(v, "does not match pattern %s", n->pattern);
        return;
    }
    PCRE2_UCHAR msg[100];
    /* The reason names the limits; the words must follow the numbers. */
    _Static_assert(S_RE_MATCH_LIMIT == 1000000, "the reason says a million steps");
    if (rc == PCRE2_ERROR_MATCHLIMIT)
        snprintf((char *) msg, sizeof msg, "too costly to match (over a million steps)");
    else if (rc == PCRE2_ERROR_HEAPLIMIT)
        snprintf((char *) msg, sizeof msg, "too costly to match (over %d MiB)",
                 S_RE_HEAP_KIB / 1024);
    else if (pcre2_get_error_message(rc, msg, sizeof msg) < 0)
        snprintf((char *) msg, sizeof msg, "error %d", rc);
    s_verr(v, "cannot be checked against pattern %s: %s", n->pattern, (const char *) msg);
}

static void s_check_string(s_vc_t *v, const s_node_t *n, const cJSON *val)
{
    const char *s = val->valuestring;
    bool counted = n->min_len || n->max_len != SIZE_MAX;
    size_t len = counted || n->format ? strlen(s) : 0;
    if (counted) {
        size_t cps = s_utf8_count(s, len);
        if (cps < n->min_len)
            s_verr(v, "must be at least %zu character%s long", n->min_len,
                   n->min_len == 1 ? "" : "s");
        else if (cps > n->max_len)
            s_verr(v, "must be at most %zu character%s long", n->max_len,
                   n->max_len == 1 ? "" : "s");
        if (v->stop)
            return;
    }
    if (n->re) {
        s_check_pattern(v, n, s);
        if (v->stop)
            return;
    }
    bool ok = true;
    switch (n->format) {
    case S_FMT_DATETIME: ok = s_is_datetime(s, len); break;
    case S_FMT_EMAIL:    ok = s_is_email(s, len); break;
    case S_FMT_UUID:     ok = s_is_uuid(s, len); break;
    default:             break;
    }
    if (!ok)
        s_verr(v, "is not a valid %s%s", s_formats[n->format],
               n->format == S_FMT_DATETIME ? " (RFC 3339)" : "");
}

static void s_check_number(s_vc_t *v, const s_node_t *n, double x)
{
    if (n->lo.set && (x < n->lo.value || (n->lo.exclusive && x == n->lo.value))) {
        s_verr(v, "must be %s", n->lo.text);
        if (v->stop)
            return;
    }
    if (n->hi.set && (x > n->hi.value || (n->hi.exclusive && x == n->hi.value)))
        s_verr(v, "must be %s", n->hi.text);
}

static void s_check_array(s_vc_t *v, const s_node_t *n, const cJSON *arr)
{
    const cJSON *el;
    size_t i = 0;
    if (n->min_items || n->max_items != SIZE_MAX) {
        /* cJSON keeps no size: count, once, only when there are bounds. */
        size_t size = 0;
        for (el = arr->child; el; el = el->next)
            size++;
        if (size < n->min_items)
            s_verr(v, "must have at least %zu item%s", n->min_items,
                   n->min_items == 1 ? "" : "s");
        else if (size > n->max_items)
            s_verr(v, "must have at most %zu item%s", n->max_items,
                   n->max_items == 1 ? "" : "s");
    }
    if (!n->items)
        return;
    for (el = arr->child; el && !v->stop; el = el->next, i++)
        if (s_push(v, NULL, i)) {
            s_check(v, n->items, el);
            v->depth--;
        }
}

/* Report the required properties of N that OBJ lacks, in name order.
 * cJSON finds a member by walking the object, so one walk over OBJ marks
 * the entries it has in a bitmap on the stack instead of a walk per
 * required name. A node with more than S_SEEN_MAX entries does walk per
 * name (time: its required names times OBJ's members). Never inlined, so
 * that the bitmap is not on the stack of every level of s_check. */
static __attribute__((noinline)) void
s_check_required(s_vc_t *v, const s_node_t *n, const cJSON *obj)
{
    uint64_t seen[S_SEEN_MAX / 64];
    const cJSON *m;
    size_t found = 0;
    if (n->nprops > S_SEEN_MAX) {
        for (size_t i = 0; i < n->nprops && !v->stop; i++)
            if (n->props[i].required
                && !cJSON_GetObjectItemCaseSensitive(obj, n->props[i].name))
                s_verr(v, "required property \"%s\" is missing", n->props[i].name);
        return;
    }
    memset(seen, 0, (n->nprops + 63) / 64 * sizeof seen[0]);
    cJSON_ArrayForEach(m, obj) {
        const s_prop_t *p = s_prop_find(n, m->string, strlen(m->string));
        if (p && p->required) {
            size_t k = (size_t) (p - n->props);
            uint64_t bit = (uint64_t) 1 << (k % 64);
            found += !(seen[k / 64] & bit);
            seen[k / 64] |= bit;
        }
    }
    for (size_t i = 0; found < n->nrequired && i < n->nprops && !v->stop; i++)
        if (n->props[i].required && !(seen[i / 64] >> (i % 64) & 1))
            s_verr(v, "required property \"%s\" is missing", n->props[i].name);
}

static void s_check_object(s_vc_t *v, const s_node_t *n, const cJSON *obj)
{
    const cJSON *val;
    if (n->nrequired)
        s_check_required(v, n, obj);
    if ((!n->nprops && !n->addl) || v->stop)
        return;
    cJSON_ArrayForEach(val, obj) {
        const char *key = val->string;
        const s_prop_t *p = n->nprops ? s_prop_find(n, key, strlen(key)) : NULL;
        const s_node_t *sub = p && p->declared ? p->node : n->addl;
        if (sub && s_push(v, key, 0)) {
            if (sub == n->addl && s_res(sub)->never)
                s_verr(v, "additional property \"%s\" is not allowed", key);
            else
                s_check(v, sub, val);
            v->depth--;
        }
        if (v->stop)
            return;
    }
}

static void s_check(s_vc_t *v, const s_node_t *n, const cJSON *val)
{
    if (!n)
        return;
    n = s_res(n);
    if (n->never) {
        s_verr(v, "no value is allowed here");
        return;
    }
    unsigned kind = s_kind(val);
    if (!(n->types & kind)) {
        s_verr(v, "expected %s, got %s", n->type_text, s_kind_name(kind));
        return;
    }
    if (n->constv && !s_equal(n->constv, val)) {
        s_verr(v, "must be equal to %s", n->const_text);
        if (v->stop)
            return;
    }
    if (n->enumv) {
        bool found = false;
        for (const cJSON *e = n->enumv->child; !found && e; e = e->next)
            found = s_equal(e, val);
        if (!found) {
            s_verr(v, "must be one of: %s", n->enum_list);
            if (v->stop)
                return;
        }
    }
    switch (kind) {
    case SLC_JSON_STRING:
        s_check_string(v, n, val);
        break;
    case SLC_JSON_INTEGER:
    case SLC_JSON_NUMBER:
        s_check_number(v, n, val->valuedouble);
        break;
    case SLC_JSON_ARRAY:
        s_check_array(v, n, val);
        break;
    case SLC_JSON_OBJECT:
        s_check_object(v, n, val);
        break;
    default:
        break;
    }
}

/* Validate VAL against N; on failure the first reason goes to *E. */
static bool s_valid(const s_node_t *n, const cJSON *val, slt_schema_error_t *e)
{
    s_vc_t v;
    v.errs = e;
    v.max = e ? 1 : 0;
    v.n = 0;
    v.failed = false;
    v.stop = false;
    v.depth = 0;
    s_check(&v, n, val);
    return !v.failed;
}

int slt_schema_validate(const slt_schema_t *self, const cJSON *doc,
                        slt_schema_error_t *errs, size_t max, size_t *nerrs)
{
    /* Not "= {0}": that would clear the frame stack on every call. */
    s_vc_t v;
    assert(self && doc && (errs || max == 0));
    v.errs = errs;
    v.max = max;
    v.n = 0;
    v.failed = false;
    v.stop = false;
    v.depth = 0;
    s_check(&v, self->root, doc);
    if (nerrs)
        *nerrs = v.n;
    return v.failed ? SL_EINVAL : 0;
}

/* ------------------------------------------------------------ compilation */

typedef struct {
    s_node_t *node;         /* the node holding the $ref */
    const char *ref;        /* its text (borrowed from slt_schema.json) */
    char *where;            /* its schema pointer (owned) */
} s_pending_t;

typedef struct {
    slt_schema_t *s;        /* the schema being built */
    char *err;              /* the caller's ERR buffer */
    size_t errlen;          /* its size */
    s_path_t where;         /* pointer of the keyword being compiled */
    s_pending_t *refs;      /* $refs to resolve once all nodes exist */
    size_t nrefs;           /* entries in refs */
    size_t refcap;          /* allocated entries */
} s_cc_t;

typedef int (*s_kw_fn)(s_cc_t *c, s_node_t *n, const cJSON *v);

/* The JSON pointer of the keyword being compiled. */
#define S_WHERE(c) ((c)->where.buf)

static int s_bad(s_cc_t *c, const char *what)
{
    slc_errf(c->err, c->errlen, "%s: %s", S_WHERE(c), what);
    return SL_EINVAL;
}

static int s_compile(s_cc_t *c, const cJSON *j, s_node_t **out);

static int s_kw_text(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    (void) n;
    return cJSON_IsString(v) ? 0 : s_bad(c, "must be a string");
}

static int s_kw_flag(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    (void) n;
    return cJSON_IsBool(v) ? 0 : s_bad(c, "must be true or false");
}

static int s_kw_default(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    (void) c, (void) v;
    n->has_default = true;
    return 0;
}

static int s_kw_examples(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    (void) n;
    return cJSON_IsArray(v) ? 0 : s_bad(c, "must be an array");
}

static int s_kw_id(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    (void) n;
    /* Below the root, $id would change what "#" means for $refs inside. */
    if (c->where.len != strlen("/$id"))
        return s_bad(c, "$id is supported only at the root");
    return cJSON_IsString(v) ? 0 : s_bad(c, "must be a string");
}

static int s_kw_ref(s_cc_t *c, s_node_t *n, const cJSON *v)
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

static int s_kw_defs(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    int rc = 0;
    const cJSON *sub;
    s_node_t *ignored;
    (void) n;
    if (!cJSON_IsObject(v)) {
        rc = s_bad(c, "must be an object of schemas");
        goto fail;
    }
    /* Compiled so that mistakes show now and $ref finds them. */
    cJSON_ArrayForEach(sub, v) {
        size_t mark = s_path_push(&c->where, sub->string);
        rc = s_compile(c, sub, &ignored);
        s_path_pop(&c->where, mark);
        if (rc)
            goto fail;
    }
fail:
    return rc;
}

static int s_kw_type(s_cc_t *c, s_node_t *n, const cJSON *v)
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
static int s_prop_add(s_node_t *n, const char *name, s_node_t *sub,
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

static int s_kw_properties(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    int rc = 0;
    const cJSON *sub;
    if (!cJSON_IsObject(v)) {
        rc = s_bad(c, "must be an object of schemas");
        goto fail;
    }
    cJSON_ArrayForEach(sub, v) {
        s_node_t *node = NULL;
        size_t mark = s_path_push(&c->where, sub->string);
        rc = s_compile(c, sub, &node);
        s_path_pop(&c->where, mark);
        if (rc)
            goto fail;
        rc = s_prop_add(n, sub->string, node, true);
        if (rc)
            goto fail;
    }
fail:
    return rc;
}

static int s_kw_required(s_cc_t *c, s_node_t *n, const cJSON *v)
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

static int s_kw_addl(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    return s_compile(c, v, &n->addl);
}

static int s_kw_items(s_cc_t *c, s_node_t *n, const cJSON *v)
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
    if (s_kind(v) != SLC_JSON_INTEGER || v->valuedouble < 0)
        return s_bad(c, "must be a non-negative integer");
    if (slt_doc_int(v, &i) && (uint64_t) i <= SIZE_MAX)
        *out = (size_t) i;
    else
        *out = SIZE_MAX;
    return 0;
}

static int s_kw_min_items(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    return s_count(c, v, &n->min_items);
}

static int s_kw_max_items(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    return s_count(c, v, &n->max_items);
}

static int s_kw_min_len(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    return s_count(c, v, &n->min_len);
}

static int s_kw_max_len(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    return s_count(c, v, &n->max_len);
}

/* Tighten bound B (a lower one when LOWER) with X, EXCLUSIVE or not. */
static int s_bound(s_cc_t *c, s_bound_t *b, const cJSON *v, bool lower,
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

static int s_kw_minimum(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    return s_bound(c, &n->lo, v, true, false);
}

static int s_kw_maximum(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    return s_bound(c, &n->hi, v, false, false);
}

static int s_kw_xminimum(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    return s_bound(c, &n->lo, v, true, true);
}

static int s_kw_xmaximum(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    return s_bound(c, &n->hi, v, false, true);
}

/* VALUES (an array, or one value when ONE) as "\"a\", 1, null", cut with
 * "..." near S_LIST_MAX bytes. Caller owns the result; NULL: no memory. */
static char *s_list_text(const cJSON *values, bool one)
{
    char *out = malloc(S_LIST_MAX), *text = NULL;
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
        if (len + need + 4 > S_LIST_MAX) {
            snprintf(out + len, S_LIST_MAX - len, "%s...", i ? ", " : "");
            break;
        }
        len += (size_t) snprintf(out + len, S_LIST_MAX - len, "%s%s",
                                 i ? ", " : "", text);
    }
    free(text);
    return out;
}

static int s_kw_enum(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    int rc = 0;
    if (!cJSON_IsArray(v) || !v->child) {
        rc = s_bad(c, "must be a non-empty array");
        goto fail;
    }
    n->enumv = v;
    n->enum_list = s_list_text(v, false);
    if (!n->enum_list)
        rc = SL_ENOMEM;
fail:
    return rc;
}

static int s_kw_const(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    (void) c;
    n->constv = v;
    n->const_text = s_list_text(v, true);
    return n->const_text ? 0 : SL_ENOMEM;
}

/* Where P holds "{,m}" outside an escape: glibc read it as {0,m}, ECMA-262
 * and PCRE2 read it as literal text. NULL when nowhere. */
static const char *s_pattern_open_count(const char *p)
{
    for (const char *q = strstr(p, "{,"); q; q = strstr(q + 1, "{,")) {
        size_t digits = strspn(q + 2, "0123456789");
        if (digits && q[2 + digits] == '}' && !(q > p && q[-1] == '\\'))
            return q;
    }
    return NULL;
}

static int s_kw_pattern(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    char why[S_RULE_MAX];
    if (!cJSON_IsString(v))
        return s_bad(c, "must be a string (an ECMA-262 regular expression)");
    const char *p = v->valuestring;
    /* Stored schemas from before PCRE2 may hold it with the other meaning:
     * refuse rather than change what they accept. */
    if (s_pattern_open_count(p))
        return s_bad(c, "{,m} is literal text in ECMA-262: write {0,m}");
    pcre2_compile_context *cctx = pcre2_compile_context_create(NULL);
    if (!cctx)
        return SL_ENOMEM;
    pcre2_set_parens_nest_limit(cctx, S_RE_NEST_MAX);
    int e;
    PCRE2_SIZE at;
    n->re = pcre2_compile((PCRE2_SPTR) p, PCRE2_ZERO_TERMINATED, S_RE_OPTIONS, &e, &at,
                          cctx);
    pcre2_compile_context_free(cctx);
    if (!n->re) {
        if (e == PCRE2_ERROR_HEAP_FAILED)
            return SL_ENOMEM;
        PCRE2_UCHAR msg[120];
        if (pcre2_get_error_message(e, msg, sizeof msg) < 0)
            snprintf((char *) msg, sizeof msg, "error %d", e);
        snprintf(why, sizeof why, "not a regular expression: %s at offset %zu",
                 (const char *) msg, (size_t) at);
        return s_bad(c, why);
    }
    n->mctx = pcre2_match_context_create(NULL);
    n->pattern = strdup(p);
    if (!n->mctx || !n->pattern)
        return SL_ENOMEM;       /* slt_schema_destroy frees what was made */
    pcre2_set_match_limit(n->mctx, S_RE_MATCH_LIMIT);
    pcre2_set_heap_limit(n->mctx, S_RE_HEAP_KIB);
    return 0;
}

static int s_kw_format(s_cc_t *c, s_node_t *n, const cJSON *v)
{
    for (int f = S_FMT_DATETIME; f <= S_FMT_UUID; f++)
        if (cJSON_IsString(v) && !strcmp(v->valuestring, s_formats[f])) {
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

/* Sort N's property entries and merge each name's declared and required
 * entries into one. */
static int s_finish_props(s_cc_t *c, s_node_t *n)
{
    int rc = 0;
    size_t out = 0;
    if (!n->nprops)
        goto fail;
    qsort(n->props, n->nprops, sizeof *n->props, s_prop_cmp);
    for (size_t i = 0; i < n->nprops; i++) {
        s_prop_t *p = &n->props[i];
        if (out && !strcmp(n->props[out - 1].name, p->name)) {
            if (n->props[out - 1].required && p->required) {
                size_t mark = s_path_push(&c->where, "required");
                char why[S_RULE_MAX];
                snprintf(why, sizeof why, "lists \"%.100s\" twice", p->name);
                rc = s_bad(c, why);
                s_path_pop(&c->where, mark);
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

static int s_node_add(slt_schema_t *s, s_node_t *n)
{
    int rc = slc_grow((void **) &s->nodes, &s->cap, s->nnodes + 1, sizeof *s->nodes);
    if (rc == 0)
        s->nodes[s->nnodes++] = n;
    return rc;
}

/* Compile subschema J (at c->where) into a new node, *OUT. */
static int s_compile(s_cc_t *c, const cJSON *j, s_node_t **out)
{
    int rc = 0;
    const char *key, *constraint = NULL;
    const cJSON *val;
    bool has_ref = false;
    s_node_t *n = calloc(1, sizeof *n);
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
        size_t mark = s_path_push(&c->where, key);
        if (k == sizeof s_keywords / sizeof s_keywords[0]) {
            char why[S_RULE_MAX];
            snprintf(why, sizeof why, "unsupported keyword \"%.80s\"", key);
            rc = s_bad(c, why);
        }
        else
            rc = s_keywords[k].fn(c, n, val);
        s_path_pop(&c->where, mark);
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
    s_types_text(n->types, n->type_text, sizeof n->type_text);
fail:
    return rc;
}

/* The value at the URI fragment REF ("#", "#/definitions/x") of ROOT, or
 * NULL. Tokens are RFC 6901 (~0, ~1); no percent-decoding. */
static const cJSON *s_pointer_get(const cJSON *root, const char *ref)
{
    const cJSON *cur = root;
    const char *p = ref + 1;
    char tok[S_PATH_MAX];
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
    const s_node_t *n = *(s_node_t *const *) elem;
    return j < n->json ? -1 : j > n->json;
}

static int s_node_json_cmp(const void *a, const void *b)
{
    const s_node_t *na = *(s_node_t *const *) a, *nb = *(s_node_t *const *) b;
    return na->json < nb->json ? -1 : na->json > nb->json;
}

/* Point every $ref node at the node its target was compiled into, then at
 * the first node of its chain that is not a $ref. */
static int s_resolve(s_cc_t *c)
{
    int rc = 0;
    slt_schema_t *s = c->s;
    s_node_t **byjson = NULL;
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
        s_node_t *n = c->refs[i].node;
        const char *ref = c->refs[i].ref;
        const cJSON *t = s_pointer_get(s->json, ref);
        s_node_t **hit = t ? bsearch(t, byjson, s->nnodes, sizeof *byjson,
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
        s_node_t *n = c->refs[i].node, *t = n->ref;
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

void slt_schema_destroy(slt_schema_t **self_p)
{
    slt_schema_t *s = self_p ? *self_p : NULL;
    if (!s)
        return;
    for (size_t i = 0; i < s->nnodes; i++) {
        s_node_t *n = s->nodes[i];
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

/* ---------------------------------------------------------- compatibility */

typedef struct {
    const s_node_t *a;      /* the narrower side */
    const s_node_t *b;      /* the wider side */
} s_pair_t;

typedef struct {
    slt_schema_error_t *errs;   /* where reasons go (borrowed) */
    size_t max;                 /* room in errs */
    size_t n;                   /* reasons written */
    bool broken;                /* some rule broke */
    bool backward;              /* A is the old schema (else the new one) */
    int rc;                     /* SL_ENOMEM once memory ran out */
    s_path_t path;              /* schema path being compared */
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

static size_t s_pair_slot(const s_cx_t *x, const s_node_t *a, const s_node_t *b)
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
static bool s_pair_seen(s_cx_t *x, const s_node_t *a, const s_node_t *b)
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

static void s_subset(s_cx_t *x, const s_node_t *a, const s_node_t *b);

/* null, true and false: the values of a schema of those types only.
 * Static, never handed to cJSON to free or change. */
static const cJSON s_scalars[] = {
    { .type = cJSON_NULL }, { .type = cJSON_True }, { .type = cJSON_False },
};

/* A's values are VALUES (array) or the one value ONE: each that A accepts
 * must pass B. */
static void s_subset_values(s_cx_t *x, const s_node_t *a, const s_node_t *b,
                            const cJSON *values, const cJSON *one)
{
    /* ONE may be a member of an object: its next is not in the list. */
    for (const cJSON *v = one ? one : values->child; v && !x->rc;
         v = one ? NULL : v->next) {
        slt_schema_error_t e;
        if (!s_valid(a, v, NULL) || s_valid(b, v, &e))
            continue;
        char *t = s_list_text(v, true);
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

static void s_bound_text(const s_bound_t *b, char *out, size_t size)
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
static bool s_bound_within(const s_bound_t *a, const s_bound_t *b, bool lower)
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

static void s_subset_scalars(s_cx_t *x, const s_node_t *a, const s_node_t *b,
                             unsigned common)
{
    char ta[S_RULE_MAX / 2], tb[S_RULE_MAX / 2];
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
            s_changed(x, "format", a->format ? s_formats[a->format] : "none",
                      s_formats[b->format]);
    }
    if (common & SLC_JSON_ARRAY) {
        s_subset_counts(x, "minItems", a->min_items, b->min_items,
                        "maxItems", a->max_items, b->max_items);
        if (b->items) {
            size_t mark = s_path_push(&x->path, "items");
            s_subset(x, a->items, b->items);
            s_path_pop(&x->path, mark);
        }
    }
}

static bool s_never(const s_node_t *n)
{
    return n && s_res(n)->never;
}

static void s_subset_object(s_cx_t *x, const s_node_t *a, const s_node_t *b)
{
    /* Members B declares: A's schema for that name must fit in B's. */
    for (size_t i = 0; i < b->nprops && !x->rc; i++) {
        const s_prop_t *pb = &b->props[i];
        const s_prop_t *pa = s_prop_find(a, pb->name, strlen(pb->name));
        size_t mark = s_path_push(&x->path, "properties");
        s_path_push(&x->path, pb->name);
        const s_node_t *sa = pa && pa->declared ? pa->node : a->addl;
        if (pb->declared && !s_never(sa))
            s_subset(x, sa, pb->node);
        if (pb->required && !(pa && pa->required)
            && !(pb->node && (pb->node->has_default || s_res(pb->node)->has_default))) {
            if (x->backward)
                s_brk(x, "new required property \"%.60s\" has no default", pb->name);
            else
                s_brk(x, "property \"%.60s\" is required by the old schema, not "
                         "by the new one, and has no default", pb->name);
        }
        s_path_pop(&x->path, mark);
    }
    /* Members only A declares: they meet B's additionalProperties. */
    for (size_t i = 0; i < a->nprops && !x->rc; i++) {
        const s_prop_t *pa = &a->props[i];
        const s_prop_t *pb = s_prop_find(b, pa->name, strlen(pa->name));
        if (!pa->declared || (pb && pb->declared) || !b->addl || s_never(pa->node))
            continue;
        size_t mark = s_path_push(&x->path, "properties");
        s_path_push(&x->path, pa->name);
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
        s_path_pop(&x->path, mark);
    }
    /* Members neither declares. */
    if (b->addl && !s_never(a->addl)) {
        size_t mark = s_path_push(&x->path, "additionalProperties");
        if (s_never(b->addl))
            s_changed(x, "additionalProperties", "allowed", "false");
        else
            s_subset(x, a->addl, b->addl);
        s_path_pop(&x->path, mark);
    }
}

/* Prove that every value A accepts, B accepts; s_brk where it cannot. */
static void s_subset(s_cx_t *x, const s_node_t *a, const s_node_t *b)
{
    a = s_res(a);
    b = s_res(b);
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
    unsigned at = s_types_of(a);
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
        s_types_text(at, ta, sizeof ta);
        s_types_text(b->types, tb, sizeof tb);
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
    const s_node_t *n;
    const char *p = path;
    assert(self && path && types);
    *types = 0;
    if (!s_path_ok(path)) {
        rc = SL_EINVAL;
        goto fail;
    }
    n = s_res(self->root);
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
            if (!(s_types_of(n) & SLC_JSON_ARRAY) || n->max_items == 0
                || (!any && index >= n->max_items)) {
                rc = SL_ENOTFOUND;
                goto fail;
            }
            n = s_res(n->items);
            continue;
        }
        size_t len = strcspn(p, ".[");
        if (!(s_types_of(n) & SLC_JSON_OBJECT)) {
            rc = SL_ENOTFOUND;
            goto fail;
        }
        const s_prop_t *prop = s_prop_find(n, p, len);
        p += len;
        if (prop && prop->declared)
            n = s_res(prop->node);
        else if (n->addl)
            n = s_res(n->addl);
        else {
            /* An open object: the schema says nothing below here. */
            *types = SLC_JSON_ANY;
            goto fail;
        }
    }
    *types = s_types_of(n);
    if (!*types)
        rc = SL_ENOTFOUND;
fail:
    return rc;
}
