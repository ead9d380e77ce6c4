/*  slt_map_check - the second pass over a parsed expression: resolve every
 *  function, table and lambda parameter, and compute the set of types each
 *  node may have, so that wrong programs fail when the mapping is loaded
 *  instead of on the first message.
 *
 *  Types are sets (SLT_MAP_T_* bits). A literal has one type, a function
 *  its declared result, a path into the document what the caller's types
 *  callback says (ANY without one). An operation reports an error only when
 *  the set of an operand shares no type with what the operation accepts:
 *  "may be wrong" is left to the run-time checks, "is always wrong" is an
 *  error here. Paths keep their schema path (spath) so that a lambda over
 *  $.items knows its parameter is $.items[*] and x.sku can be checked too.
 *  A node in error gets ANY, which keeps one mistake from causing a chain
 *  of others. Compile time only.  */
#include "slt_map_int.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PATH_MAX 1024             /* longest schema path we ask about */
#define S_FIX_MAX 64                /* longest name we look for typos in */
#define S_NUM (SLT_MAP_T_NUMBER | SLT_MAP_T_INTEGER)

typedef struct {
    slt_map_cc_t *cc;
    const char *names[SLT_MAP_DEPTH_MAX];     /* lambda parameters in scope */
    size_t lens[SLT_MAP_DEPTH_MAX];
    unsigned types[SLT_MAP_DEPTH_MAX];
    const char *spaths[SLT_MAP_DEPTH_MAX];
    const char *srcs[SLT_MAP_DEPTH_MAX];      /* let: the value's source path, or NULL */
    size_t n;
} s_checker_t;

/* A bounded text buffer; OVER once something did not fit. */
typedef struct {
    char b[S_PATH_MAX];
    size_t n;
    bool over;
} s_buf_t;

static void s_put(s_buf_t *b, const char *s, size_t n)
{
    if (b->over || n >= sizeof b->b - b->n) {
        b->over = true;
        return;
    }
    memcpy(b->b + b->n, s, n);
    b->n += n;
    b->b[b->n] = '\0';
}

static void s_puts(s_buf_t *b, const char *s)
{
    s_put(b, s, strlen(s));
}

static bool s_ident(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t k = 1; k < n; k++) {
        char c = s[k];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* .name, or ["name"] in JSON string syntax when NAME is no identifier. */
static void s_put_member(s_buf_t *b, const char *s, size_t n)
{
    if (s_ident(s, n)) {
        s_put(b, ".", 1);
        s_put(b, s, n);
        return;
    }
    s_put(b, "[\"", 2);
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char) s[k];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char) c;
            s_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            s_put(b, esc, 6);
        } else {
            s_put(b, (const char *) &s[k], 1);
        }
    }
    s_put(b, "\"]", 2);
}

/* Step K of a path; SCHEMA writes every index as [*]. */
static void s_put_step(s_buf_t *b, const slt_map_step_t *st, bool schema)
{
    char idx[32];
    if (st->kind == SLC_STEP_MEMBER)
        s_put_member(b, st->name, st->len);
    else if (st->kind == SLC_STEP_ALL || schema)
        s_puts(b, "[*]");
    else {
        snprintf(idx, sizeof idx, "[%" PRId64 "]", st->index);
        s_puts(b, idx);
    }
}

const char *slt_map__types_text(unsigned types, char *buf, size_t len)
{
    static const struct { unsigned bit; const char *name; } names[] = {
        { SLT_MAP_T_STRING, "string" }, { S_NUM, "number" },
        { SLT_MAP_T_BOOLEAN, "boolean" }, { SLT_MAP_T_OBJECT, "object" },
        { SLT_MAP_T_ARRAY, "array" }, { SLT_MAP_T_NULL, "null" },
    };
    const char *pick[6];
    size_t cnt = 0;
    if ((types & SLT_MAP_T_ANY) == SLT_MAP_T_ANY) {
        snprintf(buf, len, "any type");
        return buf;
    }
    for (size_t k = 0; k < 6; k++)
        if (types & names[k].bit)
            pick[cnt++] = names[k].bit == S_NUM && !(types & SLT_MAP_T_NUMBER)
                              ? "integer" : names[k].name;
    buf[0] = '\0';
    size_t used = 0;
    for (size_t k = 0; k < cnt && used < len; k++) {
        const char *sep = k == 0 ? "" : k + 1 == cnt ? " or " : ", ";
        int w = snprintf(buf + used, len - used, "%s%s", sep, pick[k]);
        if (w < 0)
            break;
        used += (size_t) w;
    }
    if (cnt == 0)
        snprintf(buf, len, "nothing");
    return buf;
}

/* Damerau-Levenshtein distance (adjacent transpositions) over three
 * rolling rows; names longer than S_FIX_MAX are never close. */
static size_t s_distance(const char *a, size_t n, const char *b, size_t m)
{
    size_t rows[3][S_FIX_MAX + 1];
    size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];
    if (n > S_FIX_MAX || m > S_FIX_MAX)
        return (size_t) -1;
    for (size_t j = 0; j <= m; j++)
        prev[j] = j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t v = prev[j] + 1;
            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            if (prev[j - 1] + cost < v)
                v = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]
                && pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            cur[j] = v;
        }
        size_t *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[m];
}

const char *slt_map__suggest(const char *name, size_t len,
                             const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_d = len <= 3 ? 1 : 2;
    for (size_t k = 0; k < n; k++) {
        size_t d = s_distance(name, len, names[k], strlen(names[k]));
        if (d <= best_d && (!best || d < best_d)) {
            best = names[k];
            best_d = d;
        }
    }
    return best;
}

/* "a string", "a number or null", for what an operation accepts. */
static const char *s_a(unsigned types, char *buf, size_t len)
{
    char t[96];
    slt_map__types_text(types, t, sizeof t);
    bool vowel = strchr("aeiou", t[0]) != NULL;
    if ((types & SLT_MAP_T_ANY) == SLT_MAP_T_NULL || (types & SLT_MAP_T_ANY) == SLT_MAP_T_ANY)
        snprintf(buf, len, "%s", t);
    else
        snprintf(buf, len, "%s %s", vowel ? "an" : "a", t);
    return buf;
}

static const char *s_from(const slt_map_node_t *n, char *buf, size_t len)
{
    if (n->src && n->kind != SLC_N_STR && n->kind != SLC_N_INT && n->kind != SLC_N_REAL)
        snprintf(buf, len, " (from %s)", n->src);
    else
        buf[0] = '\0';
    return buf;
}

/* Error unless N may have one of ACCEPT; WHAT names the operation. */
static void s_want(s_checker_t *c, slt_map_node_t *n, unsigned accept,
                   const char *what, const char *hint)
{
    char a[128], g[96], f[S_PATH_MAX + 16];
    if (n->types & accept)
        return;
    slt_map__error(c->cc, n->pos, hint, "%s expects %s, got %s%s", what,
                   s_a(accept, a, sizeof a), s_a(n->types, g, sizeof g),
                   s_from(n, f, sizeof f));
    n->types = SLT_MAP_T_ANY;
}

/* Ask the types callback about PATH: 0 and *TYPES, or SL_ENOTFOUND. A
 * failure of the callback itself is kept in cc->cb_rc and ends the check. */
static int s_types_at(s_checker_t *c, const char *path, unsigned *types)
{
    unsigned t = 0;
    *types = SLT_MAP_T_ANY;
    if (!c->cc->types || c->cc->cb_rc != 0)
        return 0;
    int rc = c->cc->types(c->cc->arg, path, &t);
    if (rc == 0)
        *types = t & SLT_MAP_T_ANY ? t & SLT_MAP_T_ANY : SLT_MAP_T_ANY;
    else if (rc != SL_ENOTFOUND) {
        c->cc->cb_rc = rc;
        rc = 0;
    }
    return rc;
}

/* Candidates one edit away from NAME (transpositions first: the usual
 * typo), each tried as a member of PREFIX; the first that exists goes to
 * OUT. */
static bool s_fix_member(s_checker_t *c, const char *prefix, const char *name,
                         size_t len, char *out, size_t outlen)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz_0123456789"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ-";
    char cand[S_FIX_MAX + 2];
    unsigned t;
    if (len == 0 || len > S_FIX_MAX)
        return false;
    for (int pass = 0; pass < 4; pass++) {
        size_t lim = pass == 0 ? len - 1 : pass == 1 ? len : pass == 2 ? len * (sizeof alpha - 1)
                                                                    : (len + 1) * (sizeof alpha - 1);
        for (size_t k = 0; k < lim; k++) {
            size_t m = len;
            memcpy(cand, name, len);
            if (pass == 0) {            /* swap k, k+1 */
                if (cand[k] == cand[k + 1])
                    continue;
                char x = cand[k];
                cand[k] = cand[k + 1];
                cand[k + 1] = x;
            } else if (pass == 1) {     /* delete k */
                if (len == 1)
                    continue;
                memmove(cand + k, cand + k + 1, len - k - 1);
                m = len - 1;
            } else if (pass == 2) {     /* replace */
                size_t at = k / (sizeof alpha - 1);
                char ch = alpha[k % (sizeof alpha - 1)];
                if (cand[at] == ch)
                    continue;
                cand[at] = ch;
            } else {                    /* insert */
                size_t at = k / (sizeof alpha - 1);
                memmove(cand + at + 1, cand + at, len - at);
                cand[at] = alpha[k % (sizeof alpha - 1)];
                m = len + 1;
            }
            s_buf_t b = { .n = 0 };
            s_puts(&b, prefix);
            s_put_member(&b, cand, m);
            if (b.over)
                continue;
            if (s_types_at(c, b.b, &t) == 0 && c->cc->cb_rc == 0) {
                if (m + 1 > outlen)
                    return false;
                memcpy(out, cand, m);
                out[m] = '\0';
                return true;
            }
            if (c->cc->cb_rc != 0)
                return false;
        }
    }
    return false;
}

static const char *s_base_text(const slt_map_node_t *base)
{
    switch (base->kind) {
    case SLC_N_ROOT:
        return "$";
    case SLC_N_META:
        return "$meta";
    case SLC_N_VAR:
        return NULL;                /* its name */
    case SLC_N_CALL:
        return NULL;                /* name(...) */
    default:
        return "(...)";
    }
}

/* The path as the user wrote it (indices kept), for messages. With
 * REPLACE, step K's member name is replaced by it. */
static void s_display(const slt_map_node_t *n, size_t upto, size_t k,
                      const char *replace, s_buf_t *b)
{
    const slt_map_node_t *base = n->kids[0];
    const char *t = s_base_text(base);
    if (t)
        s_puts(b, t);
    else {
        s_put(b, base->name, base->namelen);
        if (base->kind == SLC_N_CALL)
            s_puts(b, "(...)");
    }
    for (size_t j = 0; j < upto; j++) {
        if (j == k && replace)
            s_put_member(b, replace, strlen(replace));
        else
            s_put_step(b, &n->steps[j], false);
    }
}

/* N's path does not exist: find the first step that leaves the schema,
 * say so, and suggest a name one edit away. */
static void s_path_missing(s_checker_t *c, slt_map_node_t *n, const char *from)
{
    s_buf_t pre = { .n = 0 }, shown = { .n = 0 }, prev = { .n = 0 }, fix = { .n = 0 };
    unsigned t = SLT_MAP_T_ANY, prev_t = n->kids[0]->types;
    size_t k = 0;
    s_puts(&pre, n->kids[0]->spath);
    for (k = 0; k < n->nsteps; k++) {
        s_buf_t try = pre;
        s_put_step(&try, &n->steps[k], true);
        if (try.over || s_types_at(c, try.b, &t) != 0)
            break;
        pre = try;
        prev_t = t;
    }
    if (c->cc->cb_rc != 0)
        return;
    if (k == n->nsteps)
        k = n->nsteps - 1;      /* the whole path failed but no prefix did */
    const slt_map_step_t *st = &n->steps[k];
    s_display(n, n->nsteps, (size_t) -1, NULL, &shown);
    s_display(n, k, (size_t) -1, NULL, &prev);
    char name[S_FIX_MAX + 2], hint[S_PATH_MAX + 64], tt[96];
    const char *h = NULL;
    bool fixed = false;
    if (st->kind == SLC_STEP_MEMBER && (prev_t & SLT_MAP_T_OBJECT))
        fixed = s_fix_member(c, pre.b, st->name, st->len, name, sizeof name);
    if (fixed)
        s_display(n, n->nsteps, k, name, &fix);
    if (st->kind == SLC_STEP_MEMBER && !(prev_t & SLT_MAP_T_OBJECT)) {
        snprintf(hint, sizeof hint, "%s is %s, which has no members", prev.b,
                 s_a(prev_t, tt, sizeof tt));
        h = hint;
    } else if (st->kind != SLC_STEP_MEMBER && !(prev_t & SLT_MAP_T_ARRAY)) {
        snprintf(hint, sizeof hint, "%s is %s, not an array", prev.b, s_a(prev_t, tt, sizeof tt));
        h = hint;
    }
    /* The caret goes under the name of a .name step. */
    uint32_t pos = st->pos + (c->cc->field->text[st->pos] == '.' ? 1 : 0);
    if (n->kids[0]->kind == SLC_N_VAR) {
        s_buf_t sp = pre;
        s_put_step(&sp, st, true);
        if (fixed)
            slt_map__error(c->cc, pos, h, "path %s (%s) does not exist in %s (did you mean %s?)",
                           shown.b, sp.b, from, fix.b);
        else
            slt_map__error(c->cc, pos, h, "path %s (%s) does not exist in %s", shown.b, sp.b, from);
    } else if (fixed) {
        slt_map__error(c->cc, pos, h, "path %s does not exist in %s (did you mean %s?)",
                       shown.b, from, fix.b);
    } else {
        slt_map__error(c->cc, pos, h, "path %s does not exist in %s", shown.b, from);
    }
}

static void s_meta_path(s_checker_t *c, slt_map_node_t *n)
{
    static const char *const fields[] = { "topic", "offset", "headers", "lineage" };
    const slt_map_step_t *st = &n->steps[0];
    n->types = SLT_MAP_T_ANY;
    if (st->kind != SLC_STEP_MEMBER) {
        slt_map__error(c->cc, st->pos, "$meta has topic, offset, headers and lineage",
                       "$meta is an object, not an array");
        return;
    }
    size_t f = 0;
    while (f < 4 && !(strlen(fields[f]) == st->len && memcmp(fields[f], st->name, st->len) == 0))
        f++;
    if (f == 4) {
        const char *s = slt_map__suggest(st->name, st->len, fields, 4);
        char dym[64] = "";
        if (s)
            snprintf(dym, sizeof dym, " (did you mean '%s'?)", s);
        slt_map__error(c->cc, st->pos + 1, "$meta has topic, offset, headers and lineage",
                       "unknown $meta field '%.*s'%s", (int) st->len, st->name, dym);
        return;
    }
    size_t allowed = f < 2 ? 1 : 2;
    if (n->nsteps > allowed) {
        const slt_map_step_t *x = &n->steps[allowed];
        slt_map__error(c->cc, x->pos, f < 2 ? NULL : "write $meta.headers.NAME or $meta.headers[\"NAME\"]",
                       "$meta.%s%s has no %s", fields[f], allowed == 2 ? ".NAME" : "",
                       x->kind == SLC_STEP_MEMBER ? "members" : "elements");
        return;
    }
    if (n->nsteps == 2 && n->steps[1].kind != SLC_STEP_MEMBER) {
        slt_map__error(c->cc, n->steps[1].pos, NULL, "$meta.%s is an object, not an array", fields[f]);
        return;
    }
    static const unsigned one[] = { SLT_MAP_T_STRING, SLT_MAP_T_INTEGER, SLT_MAP_T_OBJECT, SLT_MAP_T_OBJECT };
    n->types = n->nsteps == 1 ? one[f] : f == 2 ? SLT_MAP_T_STRING : SLT_MAP_T_ANY;
}

static int s_check(s_checker_t *c, slt_map_node_t *n);

static int s_path(s_checker_t *c, slt_map_node_t *n)
{
    int rc = 0;
    slt_map_node_t *base = n->kids[0];
    s_buf_t shown = { .n = 0 };
    s_display(n, n->nsteps, (size_t) -1, NULL, &shown);
    n->src = shown.over ? "(a long path)" : slt_map__strndup(&c->cc->m->arena, shown.b, shown.n);
    if (!n->src) {
        rc = SL_ENOMEM;
        goto fail;
    }
    if (base->kind == SLC_N_META) {
        s_meta_path(c, n);
        goto fail;
    }
    n->types = n->star ? SLT_MAP_T_ARRAY : SLT_MAP_T_ANY;
    if (base->spath) {
        s_buf_t sp = { .n = 0 };
        unsigned t;
        s_puts(&sp, base->spath);
        for (size_t k = 0; k < n->nsteps; k++)
            s_put_step(&sp, &n->steps[k], true);
        if (sp.over)
            goto fail;              /* too long to ask about: any type */
        if (s_types_at(c, sp.b, &t) != 0) {
            s_path_missing(c, n, c->cc->m->from);
            goto fail;
        }
        if (!n->star)
            n->types = t;
        n->spath = slt_map__strndup(&c->cc->m->arena, sp.b, sp.n);
        if (!n->spath)
            rc = SL_ENOMEM;
        goto fail;
    }
    /* A step into something that cannot have it: now().x, split(...).a */
    const slt_map_step_t *st = &n->steps[0];
    unsigned need = st->kind == SLC_STEP_MEMBER ? SLT_MAP_T_OBJECT : SLT_MAP_T_ARRAY;
    if (!(base->types & need)) {
        char tt[96];
        s_buf_t b = { .n = 0 };
        s_display(n, 0, (size_t) -1, NULL, &b);
        slt_map__error(c->cc, st->pos, NULL, "%s is %s: it has no %s", b.b,
                       s_a(base->types, tt, sizeof tt),
                       need == SLT_MAP_T_OBJECT ? "members" : "elements");
    }
fail:
    return rc;
}

static int s_var(s_checker_t *c, slt_map_node_t *n)
{
    int rc = 0;
    for (size_t k = c->n; k-- > 0;)
        if (c->lens[k] == n->namelen && memcmp(c->names[k], n->name, n->namelen) == 0) {
            n->slot = (int) k;
            n->types = c->types[k];
            n->spath = c->spaths[k];
            n->src = c->srcs[k] ? c->srcs[k]
                     : slt_map__strndup(&c->cc->m->arena, n->name, n->namelen);
            if (!n->src)
                rc = SL_ENOMEM;
            goto fail;
        }
    const char *dym = slt_map__suggest(n->name, n->namelen, c->names, c->n);
    if (slt_map__table_find(c->cc->m, n->name, n->namelen)) {
        slt_map__error(c->cc, n->pos, NULL, "'%.*s' is a table: read it with lookup(%.*s, KEY)",
                       (int) n->namelen, n->name, (int) n->namelen, n->name);
    } else if (slt_map__fn_find(n->name, n->namelen)) {
        slt_map__error(c->cc, n->pos, NULL, "'%.*s' is a function: call it as %.*s(...)",
                       (int) n->namelen, n->name, (int) n->namelen, n->name);
    } else if (dym) {
        slt_map__error(c->cc, n->pos, NULL, "unknown name '%.*s' (did you mean '%s'?)",
                       (int) n->namelen, n->name, dym);
    } else {
        char hint[160];
        if (c->cc->quoted)
            snprintf(hint, sizeof hint, "YAML removed the quotes around this value: to write "
                     "a string literal, quote it twice, e.g. '\"%.*s\"'",
                     (int) (n->namelen > 40 ? 40 : n->namelen), n->name);
        else
            snprintf(hint, sizeof hint, "document fields are written $.%.*s, strings \"%.*s\"",
                     (int) (n->namelen > 40 ? 40 : n->namelen), n->name,
                     (int) (n->namelen > 40 ? 40 : n->namelen), n->name);
        slt_map__error(c->cc, n->pos, hint, "unknown name '%.*s'", (int) n->namelen, n->name);
    }
fail:
    return rc;
}

/* let NAME = VALUE in BODY: NAME has VALUE's types and schema path in BODY. */
static int s_let(s_checker_t *c, slt_map_node_t *n)
{
    int rc = s_check(c, n->kids[0]);
    if (rc != 0)
        return rc;
    for (size_t k = 0; k < c->n; k++)
        if (c->lens[k] == n->namelen && memcmp(c->names[k], n->name, n->namelen) == 0) {
            slt_map__error(c->cc, n->pos, "give it another name",
                           "'%.*s' is already a name here", (int) n->namelen, n->name);
            return 0;
        }
    if (c->n == SLT_MAP_DEPTH_MAX) {
        slt_map__error(c->cc, n->pos, NULL, "too many names in scope");
        return 0;
    }
    n->slot = (int) c->n;
    c->names[c->n] = n->name;
    c->lens[c->n] = n->namelen;
    c->types[c->n] = n->kids[0]->types ? n->kids[0]->types : SLT_MAP_T_ANY;
    c->spaths[c->n] = n->kids[0]->spath;
    c->srcs[c->n] = n->kids[0]->kind == SLC_N_PATH ? n->kids[0]->src : NULL;
    c->n++;
    rc = s_check(c, n->kids[1]);
    c->n--;
    n->types = n->kids[1]->types;
    n->spath = n->kids[1]->spath;
    n->src = n->kids[1]->src;
    return rc;
}

static int s_table(s_checker_t *c, slt_map_node_t *call)
{
    int rc = 0;
    slt_map_node_t *a = call->kids[0];
    const char *name = a->kind == SLC_N_VAR ? a->name : a->s;
    size_t len = a->kind == SLC_N_VAR ? a->namelen : a->slen;
    if (a->kind != SLC_N_VAR && a->kind != SLC_N_STR) {
        slt_map__error(c->cc, a->pos, "e.g. lookup(countries, $.country)",
                       "lookup() takes the name of a table first");
        goto fail;
    }
    call->table = slt_map__table_find(c->cc->m, name, len);
    if (call->table)
        goto fail;
    const char *names[SLT_MAP_TABLES_MAX];
    size_t cnt = c->cc->m->ntabs;
    for (size_t k = 0; k < cnt; k++)
        names[k] = c->cc->m->tabs[k].name;
    const char *dym = slt_map__suggest(name, len, names, cnt);
    if (dym)
        slt_map__error(c->cc, a->pos, NULL, "unknown table '%.*s' (did you mean '%s'?)",
                       (int) len, name, dym);
    else
        slt_map__error(c->cc, a->pos, cnt ? NULL : "tables are declared under 'tables:' in the mapping",
                       "unknown table '%.*s'", (int) len, name);
fail:
    return rc;
}

/* map(ARRAY, x => e) and filter(ARRAY, x => cond): the parameter gets the
 * element type of the array, and its schema path when the array has one. */
static int s_lambda(s_checker_t *c, slt_map_node_t *call, bool known)
{
    int rc = 0;
    slt_map_node_t *arr = call->kids[0], *lam = call->kids[1];
    unsigned et = SLT_MAP_T_ANY;
    const char *espath = NULL;
    if (lam->kind != SLC_N_LAMBDA) {
        slt_map__error(c->cc, lam->pos, "e.g. filter($.items, x => x.qty > 0)",
                       "%.*s() takes a lambda (x => ...) as its second argument",
                       (int) call->namelen, call->name);
        goto fail;
    }
    for (size_t k = 0; k < c->n; k++)
        if (c->lens[k] == lam->namelen && memcmp(c->names[k], lam->name, lam->namelen) == 0) {
            slt_map__error(c->cc, lam->pos, "give the inner parameter another name",
                           "'%.*s' is already a parameter of an enclosing lambda",
                           (int) lam->namelen, lam->name);
            goto fail;
        }
    if (known && arr->spath) {
        s_buf_t sp = { .n = 0 };
        s_puts(&sp, arr->spath);
        if (!arr->star)
            s_puts(&sp, "[*]");
        if (!sp.over && s_types_at(c, sp.b, &et) == 0) {
            espath = slt_map__strndup(&c->cc->m->arena, sp.b, sp.n);
            if (!espath) {
                rc = SL_ENOMEM;
                goto fail;
            }
        } else {
            et = SLT_MAP_T_ANY;
        }
    } else if (known && arr->kind == SLC_N_CALL && arr->fn && strcmp(arr->fn->name, "split") == 0) {
        et = SLT_MAP_T_STRING;
    }
    lam->slot = (int) c->n;
    c->names[c->n] = lam->name;
    c->lens[c->n] = lam->namelen;
    c->types[c->n] = et;
    c->spaths[c->n] = espath;
    c->srcs[c->n] = NULL;
    c->n++;
    rc = s_check(c, lam->kids[0]);
    c->n--;
    lam->types = lam->kids[0]->types;
fail:
    return rc;
}

static int s_call(s_checker_t *c, slt_map_node_t *n)
{
    int rc = 0;
    const slt_map_fn_t *fn = slt_map__fn_find(n->name, n->namelen);
    if (!fn) {
        size_t cnt;
        const char *const *names = slt_map__fn_names(&cnt);
        const char *dym = slt_map__suggest(n->name, n->namelen, names, cnt);
        bool table = slt_map__table_find(c->cc->m, n->name, n->namelen) != NULL;
        char hint[128];
        if (table)
            snprintf(hint, sizeof hint, "to read the table, write lookup(%.*s, KEY)",
                     (int) (n->namelen > 40 ? 40 : n->namelen), n->name);
        if (dym)
            slt_map__error(c->cc, n->pos, table ? hint : NULL,
                           "unknown function '%.*s' (did you mean '%s'?)",
                           (int) n->namelen, n->name, dym);
        else
            slt_map__error(c->cc, n->pos, table ? hint : "docs/mapping.md lists the functions",
                           "unknown function '%.*s'", (int) n->namelen, n->name);
    } else if (n->nkids < fn->min || n->nkids > fn->max) {
        if (fn->min == fn->max)
            slt_map__error(c->cc, n->pos, NULL, "%s() takes %u argument%s, got %zu",
                           fn->name, fn->min, fn->min == 1 ? "" : "s", n->nkids);
        else
            slt_map__error(c->cc, n->pos, NULL, "%s() takes %u %s %u arguments, got %zu",
                           fn->name, fn->min, fn->max == fn->min + 1 ? "or" : "to", fn->max,
                           n->nkids);
        fn = NULL;
    }
    n->fn = fn;
    /* Arguments: checked even when the call is wrong, to report their
     * own mistakes in the same run. */
    for (size_t k = 0; k < n->nkids; k++) {
        slt_map_node_t *a = n->kids[k];
        if (fn && k == 0 && (fn->flags & SLC_FN_TABLE)) {
            rc = s_table(c, n);
        } else if (fn && k == 1 && (fn->flags & SLC_FN_LAMBDA)) {
            rc = s_lambda(c, n, true);
        } else if (a->kind == SLC_N_LAMBDA) {
            if (fn)
                slt_map__error(c->cc, a->pos, "e.g. map($.items, x => x.sku)",
                               "a lambda (x => ...) is only allowed as the second "
                               "argument of map() or filter()");
            else
                rc = k == 1 ? s_lambda(c, n, false) : 0;
        } else {
            rc = s_check(c, a);
            if (rc == 0 && fn) {
                char what[48];
                snprintf(what, sizeof what, "%s()", fn->name);
                s_want(c, a, fn->params[k < 2 ? k : 2], what, NULL);
            }
        }
        if (rc != 0)
            goto fail;
        if (!n->src && a->src && a->kind != SLC_N_LAMBDA)
            n->src = a->src;
    }
    if (!fn)
        goto fail;
    n->types = fn->result;
    if (strcmp(fn->name, "round") == 0 && n->nkids == 2)
        n->types = SLT_MAP_T_NUMBER;
    else if ((fn->flags & SLC_FN_LAMBDA) && n->kids[1]->kind == SLC_N_LAMBDA
             && strcmp(fn->name, "filter") == 0)
        s_want(c, n->kids[1]->kids[0], SLT_MAP_T_BOOLEAN, "the filter condition",
               "e.g. filter($.items, x => x.qty > 0)");
    else if (fn->flags & SLC_FN_TABLE) {
        n->types = n->table ? n->table->types : SLT_MAP_T_ANY;
        if (n->nkids == 3)
            n->types |= n->kids[2]->types;
        if (!n->types)
            n->types = SLT_MAP_T_ANY;
    }
fail:
    return rc;
}

static int s_check(s_checker_t *c, slt_map_node_t *n)
{
    int rc = 0;
    char what[16];
    if (c->cc->cb_rc != 0)
        return c->cc->cb_rc;
    switch (n->kind) {
    case SLC_N_NULL: n->types = SLT_MAP_T_NULL; break;
    case SLC_N_BOOL: n->types = SLT_MAP_T_BOOLEAN; break;
    case SLC_N_INT: n->types = SLT_MAP_T_INTEGER; break;
    case SLC_N_REAL: n->types = SLT_MAP_T_NUMBER; break;
    case SLC_N_STR: n->types = SLT_MAP_T_STRING; break;
    case SLC_N_ROOT:
        n->src = "$";
        n->spath = "$";
        if (s_types_at(c, "$", &n->types) != 0)
            n->types = SLT_MAP_T_ANY;
        break;
    case SLC_N_META:
        n->src = "$meta";
        n->types = SLT_MAP_T_OBJECT;
        break;
    case SLC_N_VAR:
        rc = s_var(c, n);
        break;
    case SLC_N_PATH:
        rc = s_check(c, n->kids[0]);
        if (rc == 0)
            rc = s_path(c, n);
        break;
    case SLC_N_CALL:
        rc = s_call(c, n);
        break;
    case SLC_N_LET:
        rc = s_let(c, n);
        break;
    case SLC_N_LAMBDA:
        slt_map__error(c->cc, n->pos, "e.g. map($.items, x => x.sku)",
                       "a lambda (x => ...) is only allowed as the second argument "
                       "of map() or filter()");
        break;
    default:
        for (size_t k = 0; k < n->nkids && rc == 0; k++) {
            rc = s_check(c, n->kids[k]);
            if (!n->src && n->kids[k]->src)
                n->src = n->kids[k]->src;
        }
        if (rc != 0)
            break;
        switch (n->kind) {
        case SLC_N_ARRAY: n->types = SLT_MAP_T_ARRAY; break;
        case SLC_N_OBJECT: n->types = SLT_MAP_T_OBJECT; break;
        case SLC_N_NEG:
            s_want(c, n->kids[0], S_NUM, "'-'", NULL);
            n->types = n->kids[0]->types & S_NUM ? n->kids[0]->types & S_NUM : S_NUM;
            break;
        case SLC_N_NOT:
            s_want(c, n->kids[0], SLT_MAP_T_BOOLEAN, "'not'", NULL);
            n->types = SLT_MAP_T_BOOLEAN;
            break;
        case SLC_N_AND:
        case SLC_N_OR:
            snprintf(what, sizeof what, "'%s'", n->kind == SLC_N_AND ? "and" : "or");
            s_want(c, n->kids[0], SLT_MAP_T_BOOLEAN, what, NULL);
            s_want(c, n->kids[1], SLT_MAP_T_BOOLEAN, what, NULL);
            n->types = SLT_MAP_T_BOOLEAN;
            break;
        case SLC_N_ARITH: {
            const char *op = slt_map__tok_name(n->op);
            const char *hint = n->op == SLC_TK_PLUS ? "concat() joins strings" : NULL;
            s_want(c, n->kids[0], S_NUM, op, hint);
            s_want(c, n->kids[1], S_NUM, op, hint);
            bool ints = !((n->kids[0]->types | n->kids[1]->types) & SLT_MAP_T_NUMBER);
            n->types = n->op == SLC_TK_SLASH ? SLT_MAP_T_NUMBER
                     : ints ? SLT_MAP_T_INTEGER : S_NUM;
            break;
        }
        case SLC_N_CMP: {
            n->types = SLT_MAP_T_BOOLEAN;
            if (n->op == SLC_TK_EQ || n->op == SLC_TK_NE)
                break;
            unsigned a = n->kids[0]->types, b = n->kids[1]->types;
            unsigned ok = S_NUM | SLT_MAP_T_STRING;
            char ta[96], tb[96];
            if (!(a & ok) || !(b & ok)
                || !(((a & S_NUM) && (b & S_NUM)) || ((a & b) & SLT_MAP_T_STRING)))
                slt_map__error(c->cc, n->pos, NULL, "%s compares two numbers or two strings, "
                               "got %s and %s", slt_map__tok_name(n->op),
                               s_a(a, ta, sizeof ta), s_a(b, tb, sizeof tb));
            break;
        }
        case SLC_N_COALESCE:
            n->types = (n->kids[0]->types & ~SLT_MAP_T_NULL) | n->kids[1]->types;
            break;
        case SLC_N_IF:
            s_want(c, n->kids[0], SLT_MAP_T_BOOLEAN, "'if'",
                   "compare it, e.g. if $.count > 0 then ...");
            n->types = n->kids[1]->types | n->kids[2]->types;
            break;
        default:
            break;
        }
        break;
    }
    if (rc == 0 && c->cc->cb_rc != 0)
        rc = c->cc->cb_rc;
    return rc;
}

int slt_map__check(slt_map_cc_t *cc, slt_map_node_t *root, unsigned want)
{
    s_checker_t c = { .cc = cc };
    unsigned before = cc->errors;
    int rc = s_check(&c, root);
    if (rc != 0)
        goto fail;
    if (want != SLT_MAP_T_ANY && cc->errors == before)
        s_want(&c, root, want, cc->field->target, NULL);
    if (cc->errors != before)
        rc = SL_EINVAL;
fail:
    return rc;
}
