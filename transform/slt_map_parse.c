/*  slt_map_parse - recursive descent from tokens to the AST of one mapping
 *  expression, one function per precedence level of the grammar in
 *  docs/mapping.md. Syntax only: names, functions and types are resolved by
 *  slt_map_check. The first syntax error ends the expression (what follows
 *  it cannot be trusted). Nesting is bounded twice: the C recursion (parens,
 *  unary chains) and the depth of the tree built (left-associative chains
 *  like a + b + c... grow the tree without recursing here, but the
 *  evaluator recurses over the tree). Nodes live in the mapping's arena.  */
#include "slt_map_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PATH_STEPS_MAX SLT_MAP_DEPTH_MAX
#define S_QUOTED_HINT "YAML removed the quotes around this value: to write a " \
    "string literal, quote it twice, e.g. '\"EUR\"'"

typedef struct {
    slt_map_cc_t *cc;
    const slt_map_tok_t *t;         /* tokens, EOF-terminated */
    size_t i;                       /* current token */
    unsigned nest;                  /* C recursion */
} s_parser_t;

static int s_expr(s_parser_t *p, slt_map_node_t **out);

static const slt_map_tok_t *s_peek(s_parser_t *p)
{
    return &p->t[p->i];
}

static bool s_accept(s_parser_t *p, int kind)
{
    if (p->t[p->i].kind != kind)
        return false;
    p->i++;
    return true;
}

static int s_unexpected(s_parser_t *p, const char *want)
{
    const slt_map_tok_t *t = s_peek(p);
    const char *hint = p->cc->quoted ? S_QUOTED_HINT : NULL;
    if (t->kind == SLC_TK_EOF)
        return slt_map__error(p->cc, t->pos, hint, "expected %s, got end of expression", want);
    return slt_map__error(p->cc, t->pos, hint, "expected %s, got %s", want,
                          slt_map__tok_name(t->kind));
}

static int s_expect(s_parser_t *p, int kind, const char *want)
{
    if (s_accept(p, kind))
        return 0;
    return s_unexpected(p, want);
}

static int s_enter(s_parser_t *p)
{
    if (++p->nest > SLT_MAP_DEPTH_MAX)
        return slt_map__error(p->cc, s_peek(p)->pos, "split it over several fields",
                              "expression nested too deeply (limit %d)", SLT_MAP_DEPTH_MAX);
    return 0;
}

static int s_node(s_parser_t *p, int kind, uint32_t pos, size_t nkids,
                  slt_map_node_t **out)
{
    int rc = 0;
    slt_map_node_t *n = slt_map__alloc(&p->cc->m->arena, sizeof *n);
    if (!n) {
        rc = SL_ENOMEM;
        goto fail;
    }
    n->kind = kind;
    n->pos = pos;
    n->depth = 1;
    n->types = SLT_MAP_T_ANY;
    if (nkids) {
        n->kids = slt_map__alloc(&p->cc->m->arena, nkids * sizeof *n->kids);
        if (!n->kids) {
            rc = SL_ENOMEM;
            goto fail;
        }
        n->nkids = nkids;
    }
    *out = n;
fail:
    return rc;
}

/* Set N's depth from its kids; the evaluator recurses this deep. */
static int s_depth(s_parser_t *p, slt_map_node_t *n)
{
    unsigned d = 0;
    for (size_t k = 0; k < n->nkids; k++)
        if (n->kids[k] && n->kids[k]->depth > d)
            d = n->kids[k]->depth;
    n->depth = d + 1;
    if (n->depth > SLT_MAP_DEPTH_MAX)
        return slt_map__error(p->cc, n->pos, "split it over several fields",
                              "expression nested too deeply (limit %d)", SLT_MAP_DEPTH_MAX);
    return 0;
}

static int s_binary(s_parser_t *p, int kind, int op, uint32_t pos,
                    slt_map_node_t *a, slt_map_node_t *b, slt_map_node_t **out)
{
    int rc = s_node(p, kind, pos, 2, out);
    if (rc != 0)
        goto fail;
    (*out)->op = op;
    (*out)->kids[0] = a;
    (*out)->kids[1] = b;
    rc = s_depth(p, *out);
fail:
    return rc;
}

/* Comma-separated items up to CLOSE, gathered in a growing array and then
 * moved into N's kids. ITEM parses one. */
typedef int (s_item_fn)(s_parser_t *p, void *ctx, size_t k,
                        slt_map_node_t **out);

static int s_list(s_parser_t *p, slt_map_node_t *n, int close,
                  const char *what, size_t max, s_item_fn *item, void *ctx)
{
    int rc = 0;
    slt_map_node_t **v = NULL;
    size_t cnt = 0, cap = 0;
    if (!s_accept(p, close)) {
        for (;;) {
            if (cnt == max) {
                rc = slt_map__error(p->cc, s_peek(p)->pos, NULL,
                                    "too many %s (limit %zu)", what, max);
                goto fail;
            }
            if (cnt == cap) {
                cap = cap ? cap * 2 : 4;
                slt_map_node_t **nv = realloc(v, cap * sizeof *nv);
                if (!nv) {
                    rc = SL_ENOMEM;
                    goto fail;
                }
                v = nv;
            }
            rc = item(p, ctx, cnt, &v[cnt]);
            if (rc != 0)
                goto fail;
            cnt++;
            if (s_accept(p, close))
                break;
            if (!s_accept(p, SLC_TK_COMMA)) {
                char want[48];
                snprintf(want, sizeof want, "',' or %s", slt_map__tok_name(close));
                rc = s_unexpected(p, want);
                goto fail;
            }
        }
    }
    if (cnt) {
        n->kids = slt_map__alloc(&p->cc->m->arena, cnt * sizeof *n->kids);
        if (!n->kids) {
            rc = SL_ENOMEM;
            goto fail;
        }
        memcpy(n->kids, v, cnt * sizeof *v);
    }
    n->nkids = cnt;
    rc = s_depth(p, n);
fail:
    free(v);
    return rc;
}

static int s_element(s_parser_t *p, void *ctx, size_t k,
                     slt_map_node_t **out)
{
    (void) ctx;
    (void) k;
    return s_expr(p, out);
}

/* name => body, allowed wherever an argument is (the checker tells where
 * a lambda belongs). */
static int s_argument(s_parser_t *p, void *ctx, size_t k,
                      slt_map_node_t **out)
{
    int rc = 0;
    (void) ctx;
    (void) k;
    const slt_map_tok_t *t = s_peek(p);
    if (t->kind == SLC_TK_NAME && p->t[p->i + 1].kind == SLC_TK_ARROW) {
        slt_map_node_t *body = NULL;
        p->i += 2;
        rc = s_expr(p, &body);
        if (rc != 0)
            goto fail;
        rc = s_node(p, SLC_N_LAMBDA, t->pos, 1, out);
        if (rc != 0)
            goto fail;
        /* NUL-terminated: the checker suggests among parameter names. */
        (*out)->name = slt_map__strndup(&p->cc->m->arena, t->s, t->n);
        (*out)->namelen = t->n;
        (*out)->kids[0] = body;
        if (!(*out)->name) {
            rc = SL_ENOMEM;
            goto fail;
        }
        rc = s_depth(p, *out);
        goto fail;
    }
    rc = s_expr(p, out);
fail:
    return rc;
}

/* Object members: the keys are kept beside the kids, grown as we go. */
typedef struct {
    const char **keys;
    size_t *lens;
    size_t cap;
} s_keys_t;

static int s_member(s_parser_t *p, void *ctx, size_t k,
                    slt_map_node_t **out)
{
    int rc = 0;
    s_keys_t *keys = ctx;
    const slt_map_tok_t *t = s_peek(p);
    if (t->kind != SLC_TK_NAME && t->kind != SLC_TK_STR
        && !(t->kind >= SLC_TK_AND && t->kind <= SLC_TK_NULL)) {
        rc = s_unexpected(p, "a member name");
        goto fail;
    }
    p->i++;
    if (k == keys->cap) {
        size_t cap = keys->cap ? keys->cap * 2 : 4;
        const char **nk = realloc(keys->keys, cap * sizeof *nk);
        if (!nk) {
            rc = SL_ENOMEM;
            goto fail;
        }
        keys->keys = nk;
        size_t *nl = realloc(keys->lens, cap * sizeof *nl);
        if (!nl) {
            rc = SL_ENOMEM;
            goto fail;
        }
        keys->lens = nl;
        keys->cap = cap;
    }
    keys->keys[k] = slt_map__strndup(&p->cc->m->arena, t->s, t->n);
    if (!keys->keys[k]) {
        rc = SL_ENOMEM;
        goto fail;
    }
    keys->lens[k] = t->n;
    for (size_t j = 0; j < k; j++)
        if (keys->lens[j] == t->n && memcmp(keys->keys[j], t->s, t->n) == 0) {
            rc = slt_map__error(p->cc, t->pos, NULL, "member '%.*s' given twice",
                                (int) t->n, t->s);
            goto fail;
        }
    rc = s_expect(p, SLC_TK_COLON, "':'");
    if (rc != 0)
        goto fail;
    rc = s_expr(p, out);
fail:
    return rc;
}

static int s_object(s_parser_t *p, uint32_t pos, slt_map_node_t **out)
{
    int rc = 0;
    s_keys_t keys = { 0 };
    rc = s_node(p, SLC_N_OBJECT, pos, 0, out);
    if (rc != 0)
        goto fail;
    rc = s_list(p, *out, SLC_TK_RBRACE, "members", SLT_MAP_ARRAY_MAX, s_member, &keys);
    if (rc != 0)
        goto fail;
    size_t n = (*out)->nkids;
    if (n) {
        (*out)->keys = slt_map__alloc(&p->cc->m->arena, n * sizeof *keys.keys);
        (*out)->keylens = slt_map__alloc(&p->cc->m->arena, n * sizeof *keys.lens);
        if (!(*out)->keys || !(*out)->keylens) {
            rc = SL_ENOMEM;
            goto fail;
        }
        memcpy((*out)->keys, keys.keys, n * sizeof *keys.keys);
        memcpy((*out)->keylens, keys.lens, n * sizeof *keys.lens);
    }
fail:
    free(keys.keys);
    free(keys.lens);
    return rc;
}

static int s_primary(s_parser_t *p, slt_map_node_t **out)
{
    int rc = 0;
    const slt_map_tok_t *t = s_peek(p);
    switch (t->kind) {
    case SLC_TK_INT:
    case SLC_TK_REAL:
    case SLC_TK_STR:
    case SLC_TK_TRUE:
    case SLC_TK_FALSE:
    case SLC_TK_NULL: {
        static const int kinds[] = {
            [SLC_TK_INT] = SLC_N_INT, [SLC_TK_REAL] = SLC_N_REAL,
            [SLC_TK_STR] = SLC_N_STR, [SLC_TK_TRUE] = SLC_N_BOOL,
            [SLC_TK_FALSE] = SLC_N_BOOL, [SLC_TK_NULL] = SLC_N_NULL,
        };
        p->i++;
        rc = s_node(p, kinds[t->kind], t->pos, 0, out);
        if (rc != 0)
            goto fail;
        (*out)->i = t->kind == SLC_TK_TRUE ? 1 : t->i;
        (*out)->d = t->d;
        (*out)->s = t->s;
        (*out)->slen = t->n;
        break;
    }
    case SLC_TK_ROOT:
    case SLC_TK_META:
        p->i++;
        rc = s_node(p, t->kind == SLC_TK_ROOT ? SLC_N_ROOT : SLC_N_META, t->pos, 0, out);
        break;
    case SLC_TK_NAME:
        p->i++;
        if (s_accept(p, SLC_TK_LPAREN)) {
            rc = s_node(p, SLC_N_CALL, t->pos, 0, out);
            if (rc != 0)
                goto fail;
            (*out)->name = t->s;
            (*out)->namelen = t->n;
            rc = s_list(p, *out, SLC_TK_RPAREN, "arguments", SLT_MAP_ARGS_MAX, s_argument, NULL);
        } else if (s_peek(p)->kind == SLC_TK_ARROW) {
            rc = slt_map__error(p->cc, t->pos, "e.g. map($.items, x => x.sku)",
                                "a lambda (x => ...) is only allowed as the second "
                                "argument of map() or filter()");
        } else {
            rc = s_node(p, SLC_N_VAR, t->pos, 0, out);
            if (rc != 0)
                goto fail;
            (*out)->name = t->s;
            (*out)->namelen = t->n;
        }
        break;
    case SLC_TK_LPAREN:
        p->i++;
        rc = s_expr(p, out);
        if (rc != 0)
            goto fail;
        rc = s_expect(p, SLC_TK_RPAREN, "')'");
        break;
    case SLC_TK_LBRACK:
        p->i++;
        rc = s_node(p, SLC_N_ARRAY, t->pos, 0, out);
        if (rc != 0)
            goto fail;
        rc = s_list(p, *out, SLC_TK_RBRACK, "elements", SLT_MAP_ARRAY_MAX, s_element, NULL);
        break;
    case SLC_TK_LBRACE:
        p->i++;
        rc = s_object(p, t->pos, out);
        break;
    default:
        rc = s_unexpected(p, "a value");
        break;
    }
fail:
    return rc;
}

/* primary { .name | [int] | [-int] | [*] | ["name"] } */
static int s_postfix(s_parser_t *p, slt_map_node_t **out)
{
    int rc = 0;
    slt_map_node_t *base = NULL, *n = NULL;
    slt_map_step_t steps[S_PATH_STEPS_MAX];
    size_t cnt = 0;
    bool star = false;
    rc = s_primary(p, &base);
    if (rc != 0)
        goto fail;
    for (;;) {
        const slt_map_tok_t *t = s_peek(p);
        if (t->kind != SLC_TK_DOT && t->kind != SLC_TK_LBRACK)
            break;
        if (cnt == S_PATH_STEPS_MAX) {
            rc = slt_map__error(p->cc, t->pos, NULL, "path too long (limit %d steps)",
                                S_PATH_STEPS_MAX);
            goto fail;
        }
        slt_map_step_t *s = &steps[cnt];
        memset(s, 0, sizeof *s);
        s->pos = t->pos;
        p->i++;
        const slt_map_tok_t *w = s_peek(p);
        if (t->kind == SLC_TK_DOT) {
            /* Keywords are fine as member names: $.if, x.null. */
            if (w->kind != SLC_TK_NAME && !(w->kind >= SLC_TK_AND && w->kind <= SLC_TK_NULL)) {
                rc = s_unexpected(p, "a member name after '.' (use [\"name\"] for other names)");
                goto fail;
            }
            s->kind = SLC_STEP_MEMBER;
            s->name = w->s;
            s->len = w->n;
            p->i++;
        } else {
            if (w->kind == SLC_TK_STAR) {
                s->kind = SLC_STEP_ALL;
                star = true;
            } else if (w->kind == SLC_TK_INT) {
                s->kind = SLC_STEP_INDEX;
                s->index = w->i;
            } else if (w->kind == SLC_TK_MINUS && p->t[p->i + 1].kind == SLC_TK_INT) {
                s->kind = SLC_STEP_INDEX;   /* from the end: [-1] is the last */
                p->i++;
                s->index = -s_peek(p)->i;
            } else if (w->kind == SLC_TK_STR) {
                s->kind = SLC_STEP_MEMBER;
                s->name = w->s;
                s->len = w->n;
            } else {
                rc = s_unexpected(p, "an index, '*' or a quoted name in [ ]");
                goto fail;
            }
            p->i++;
            rc = s_expect(p, SLC_TK_RBRACK, "']'");
            if (rc != 0)
                goto fail;
        }
        cnt++;
    }
    if (cnt == 0) {
        *out = base;
        goto fail;
    }
    rc = s_node(p, SLC_N_PATH, base->pos, 1, &n);
    if (rc != 0)
        goto fail;
    n->kids[0] = base;
    n->steps = slt_map__alloc(&p->cc->m->arena, cnt * sizeof *n->steps);
    if (!n->steps) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (size_t k = 0; k < cnt; k++) {
        n->steps[k] = steps[k];
        if (steps[k].kind == SLC_STEP_MEMBER) {
            n->steps[k].name = slt_map__strndup(&p->cc->m->arena, steps[k].name, steps[k].len);
            if (!n->steps[k].name) {
                rc = SL_ENOMEM;
                goto fail;
            }
        }
    }
    n->nsteps = cnt;
    n->star = star;
    rc = s_depth(p, n);
    if (rc != 0)
        goto fail;
    *out = n;
fail:
    return rc;
}

static int s_unary(s_parser_t *p, slt_map_node_t **out)
{
    int rc = 0;
    bool nested = false;
    slt_map_node_t *a = NULL;
    const slt_map_tok_t *t = s_peek(p);
    if (!s_accept(p, SLC_TK_MINUS)) {
        rc = s_postfix(p, out);
        goto fail;
    }
    nested = true;
    rc = s_enter(p);
    if (rc == 0)
        rc = s_unary(p, &a);
    if (rc != 0)
        goto fail;
    /* -5 is a literal, not an operation on one (the integer range is
     * symmetric). */
    if (a->kind == SLC_N_INT) {
        a->i = -a->i;
        a->pos = t->pos;
        *out = a;
        goto fail;
    }
    if (a->kind == SLC_N_REAL) {
        a->d = -a->d;
        a->pos = t->pos;
        *out = a;
        goto fail;
    }
    rc = s_node(p, SLC_N_NEG, t->pos, 1, out);
    if (rc != 0)
        goto fail;
    (*out)->kids[0] = a;
    rc = s_depth(p, *out);
fail:
    if (nested)
        p->nest--;
    return rc;
}

static int s_term(s_parser_t *p, slt_map_node_t **out)
{
    int rc = s_unary(p, out);
    while (rc == 0) {
        const slt_map_tok_t *t = s_peek(p);
        if (t->kind != SLC_TK_STAR && t->kind != SLC_TK_SLASH && t->kind != SLC_TK_PCT)
            break;
        slt_map_node_t *b = NULL;
        p->i++;
        rc = s_unary(p, &b);
        if (rc == 0)
            rc = s_binary(p, SLC_N_ARITH, t->kind, t->pos, *out, b, out);
    }
    return rc;
}

static int s_additive(s_parser_t *p, slt_map_node_t **out)
{
    int rc = s_term(p, out);
    while (rc == 0) {
        const slt_map_tok_t *t = s_peek(p);
        if (t->kind != SLC_TK_PLUS && t->kind != SLC_TK_MINUS)
            break;
        slt_map_node_t *b = NULL;
        p->i++;
        rc = s_term(p, &b);
        if (rc == 0)
            rc = s_binary(p, SLC_N_ARITH, t->kind, t->pos, *out, b, out);
    }
    return rc;
}

/* a ?? b ?? c groups to the right: the first present value wins. */
static int s_coalesce(s_parser_t *p, slt_map_node_t **out)
{
    slt_map_node_t *a = NULL, *b = NULL;
    bool nested = false;
    int rc = s_additive(p, &a);
    if (rc != 0)
        goto fail;
    const slt_map_tok_t *t = s_peek(p);
    if (!s_accept(p, SLC_TK_QQ)) {
        *out = a;
        goto fail;
    }
    nested = true;
    rc = s_enter(p);
    if (rc == 0)
        rc = s_coalesce(p, &b);
    if (rc != 0)
        goto fail;
    rc = s_binary(p, SLC_N_COALESCE, SLC_TK_QQ, t->pos, a, b, out);
fail:
    if (nested)
        p->nest--;
    return rc;
}

static bool s_is_cmp(int kind)
{
    return kind >= SLC_TK_EQ && kind <= SLC_TK_GE;
}

static int s_comparison(s_parser_t *p, slt_map_node_t **out)
{
    int rc = s_coalesce(p, out);
    slt_map_node_t *b = NULL;
    if (rc != 0)
        goto fail;
    const slt_map_tok_t *t = s_peek(p);
    if (!s_is_cmp(t->kind))
        goto fail;
    p->i++;
    rc = s_coalesce(p, &b);
    if (rc != 0)
        goto fail;
    rc = s_binary(p, SLC_N_CMP, t->kind, t->pos, *out, b, out);
    if (rc != 0)
        goto fail;
    if (s_is_cmp(s_peek(p)->kind))
        rc = slt_map__error(p->cc, s_peek(p)->pos, "write a < b and b < c",
                            "comparisons do not chain");
fail:
    return rc;
}

static int s_not(s_parser_t *p, slt_map_node_t **out)
{
    int rc = 0;
    bool nested = false;
    slt_map_node_t *a = NULL;
    const slt_map_tok_t *t = s_peek(p);
    if (!s_accept(p, SLC_TK_NOT)) {
        rc = s_comparison(p, out);
        goto fail;
    }
    nested = true;
    rc = s_enter(p);
    if (rc == 0)
        rc = s_not(p, &a);
    if (rc != 0)
        goto fail;
    rc = s_node(p, SLC_N_NOT, t->pos, 1, out);
    if (rc != 0)
        goto fail;
    (*out)->kids[0] = a;
    rc = s_depth(p, *out);
fail:
    if (nested)
        p->nest--;
    return rc;
}

static int s_and(s_parser_t *p, slt_map_node_t **out)
{
    int rc = s_not(p, out);
    while (rc == 0) {
        const slt_map_tok_t *t = s_peek(p);
        if (!s_accept(p, SLC_TK_AND))
            break;
        slt_map_node_t *b = NULL;
        rc = s_not(p, &b);
        if (rc == 0)
            rc = s_binary(p, SLC_N_AND, t->kind, t->pos, *out, b, out);
    }
    return rc;
}

static int s_or(s_parser_t *p, slt_map_node_t **out)
{
    int rc = s_and(p, out);
    while (rc == 0) {
        const slt_map_tok_t *t = s_peek(p);
        if (!s_accept(p, SLC_TK_OR))
            break;
        slt_map_node_t *b = NULL;
        rc = s_and(p, &b);
        if (rc == 0)
            rc = s_binary(p, SLC_N_OR, t->kind, t->pos, *out, b, out);
    }
    return rc;
}

static bool s_word(const slt_map_tok_t *t, const char *w)
{
    return t->kind == SLC_TK_NAME && t->n == strlen(w) && memcmp(t->s, w, t->n) == 0;
}

/* let NAME = VALUE in BODY (the lexer made '=' an ASSIGN only here). */
static int s_let(s_parser_t *p, slt_map_node_t **out)
{
    int rc = 0;
    const slt_map_tok_t *t = s_peek(p), *name = &p->t[p->i + 1];
    slt_map_node_t *val = NULL, *body = NULL;
    p->i += 3;
    rc = s_expr(p, &val);
    if (rc == 0 && !s_word(s_peek(p), "in"))
        rc = slt_map__error(p->cc, s_peek(p)->pos, "let NAME = VALUE in EXPRESSION",
                            "expected 'in', got %s", slt_map__tok_name(s_peek(p)->kind));
    if (rc != 0)
        goto fail;
    p->i++;
    rc = s_expr(p, &body);
    if (rc == 0)
        rc = s_node(p, SLC_N_LET, t->pos, 2, out);
    if (rc != 0)
        goto fail;
    (*out)->name = slt_map__strndup(&p->cc->m->arena, name->s, name->n);
    (*out)->namelen = name->n;
    (*out)->kids[0] = val;
    (*out)->kids[1] = body;
    if (!(*out)->name) {
        rc = SL_ENOMEM;
        goto fail;
    }
    rc = s_depth(p, *out);
fail:
    return rc;
}

static int s_expr(s_parser_t *p, slt_map_node_t **out)
{
    int rc = s_enter(p);
    slt_map_node_t *c = NULL, *a = NULL, *b = NULL;
    const slt_map_tok_t *t = s_peek(p);
    if (rc != 0)
        goto fail;
    if (s_word(t, "let") && p->t[p->i + 1].kind == SLC_TK_NAME
        && p->t[p->i + 2].kind == SLC_TK_ASSIGN) {
        rc = s_let(p, out);
        goto fail;
    }
    if (!s_accept(p, SLC_TK_IF)) {
        rc = s_or(p, out);
        goto fail;
    }
    rc = s_expr(p, &c);
    if (rc == 0)
        rc = s_expect(p, SLC_TK_THEN, "'then'");
    if (rc == 0)
        rc = s_expr(p, &a);
    if (rc == 0 && !s_accept(p, SLC_TK_ELSE))
        rc = slt_map__error(p->cc, s_peek(p)->pos, "every if needs an else: if C then A else B",
                            "expected 'else', got %s", slt_map__tok_name(s_peek(p)->kind));
    if (rc == 0)
        rc = s_expr(p, &b);
    if (rc == 0)
        rc = s_node(p, SLC_N_IF, t->pos, 3, out);
    if (rc != 0)
        goto fail;
    (*out)->kids[0] = c;
    (*out)->kids[1] = a;
    (*out)->kids[2] = b;
    rc = s_depth(p, *out);
fail:
    p->nest--;
    return rc;
}

int slt_map__parse(slt_map_cc_t *cc, const char *text, size_t len,
                   slt_map_node_t **out)
{
    slt_map_tok_t *toks = NULL;
    size_t ntoks = 0;
    s_parser_t p = { .cc = cc };
    *out = NULL;
    int rc = slt_map__lex(cc, text, len, &toks, &ntoks);
    if (rc != 0)
        goto fail;
    p.t = toks;
    if (toks[0].kind == SLC_TK_EOF) {
        rc = slt_map__error(cc, 0, NULL, "empty expression");
        goto fail;
    }
    rc = s_expr(&p, out);
    if (rc != 0)
        goto fail;
    if (s_peek(&p)->kind != SLC_TK_EOF) {
        const slt_map_tok_t *t = s_peek(&p);
        const char *hint = cc->quoted ? S_QUOTED_HINT : NULL;
        if (!hint && (t->kind == SLC_TK_STR || t->kind == SLC_TK_NAME || t->kind == SLC_TK_INT))
            hint = "an operator is missing before it (concat() joins strings)";
        rc = slt_map__error(cc, t->pos, hint, "unexpected %s after the expression",
                            slt_map__tok_name(t->kind));
    }
fail:
    if (rc != 0)
        *out = NULL;
    free(toks);
    return rc;
}
