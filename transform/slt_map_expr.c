/*  slt_map_expr - one expression of the mapping language outside a mapping
 *  file: routing predicates (`where:`, docs/routing.md). Compiled with the
 *  module's own lexer, parser and checker into a mapping that has no
 *  fields, only the expression in the place of drop_if, and evaluated by
 *  the same evaluator. Any thread; a compiled expression is immutable. It
 *  does not read YAML: the caller gives the text and where it sits.  */
#include "slt_map_int.h"
#include "slc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct slt_map_expr {
    slt_map_t m;                    /* m.drop holds the expression */
    bool uses_doc;
    bool uses_meta;
};

/* Whether the tree N has a node of KIND ($: SLC_N_ROOT, $meta: SLC_N_META). */
static bool s_uses(const slt_map_node_t *n, int kind)
{
    if (!n)
        return false;
    if (n->kind == kind)
        return true;
    for (size_t k = 0; k < n->nkids; k++)
        if (s_uses(n->kids[k], kind))
            return true;
    return false;
}

static bool s_uses_doc(const slt_map_node_t *n)
{
    return s_uses(n, SLC_N_ROOT);
}

void slt_map_expr_destroy(slt_map_expr_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    slt_map_expr_t *e = *self_p;
    cJSON_Delete(e->m.tables);
    if (e->m.c_locale)
        freelocale(e->m.c_locale);
    slt_map__arena_free(&e->m.arena);
    free(e);
    *self_p = NULL;
}

/* The recorded errors as "ORIGIN:LINE:COL: message" lines. */
static void s_render(const slt_map_diag_t *d, const char *origin, char *err, size_t errlen)
{
    size_t w = 0;
    if (!err || !errlen)
        return;
    err[0] = '\0';
    for (size_t k = 0; k < d->n && w < errlen; k++) {
        int n = snprintf(err + w, errlen - w, "%s%s:%u:%u: %s", k ? "\n" : "", origin,
                         d->items[k].line, d->items[k].col, d->items[k].msg);
        if (n < 0)
            break;
        w += (size_t) n;
    }
    if (d->oom && w < errlen)
        snprintf(err + w, errlen - w, "%sout of memory", w ? "\n" : "");
}

int slt_map_expr_compile(const char *text, size_t len, const char *origin,
                         unsigned line, unsigned col, bool exact,
                         const char *owner, const char *label, unsigned want,
                         slt_map_types_fn *types, void *arg,
                         slt_map_expr_t **out, char *err, size_t errlen)
{
    int rc = 0;
    slt_map_diag_t diag = { .n = 0 };
    slt_map_expr_t *e = NULL;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!origin)
        origin = "<expr>";
    if (!owner)
        owner = "expression";
    if (!label)
        label = "expression";
    if (!text || len == 0) {
        slc_errf(err, errlen, "%s:%u:%u: empty expression", origin, line, col);
        return SL_EINVAL;
    }
    if (len > SLT_MAP_EXPR_MAX) {
        slc_errf(err, errlen, "%s:%u:%u: expression too long (%zu bytes, limit %u)", origin,
                 line, col, len, SLT_MAP_EXPR_MAX);
        return SL_EINVAL;
    }
    if (!slc_text_valid(text, len)) {
        slc_errf(err, errlen, "%s:%u:%u: the expression is not UTF-8 text", origin, line, col);
        return SL_EINVAL;
    }
    e = calloc(1, sizeof *e);
    if (!e)
        return SL_ENOMEM;
    slt_map_t *m = &e->m;
    m->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
    m->tables = cJSON_CreateObject();
    m->origin = slt_map__strndup(&m->arena, origin, strlen(origin));
    m->owner = slt_map__strndup(&m->arena, owner, strlen(owner));
    m->drop.target = slt_map__strndup(&m->arena, label, strlen(label));
    m->drop.text = slt_map__strndup(&m->arena, text, len);
    m->name = m->from = m->to = "";
    if (!m->c_locale || !m->tables || !m->origin || !m->owner || !m->drop.target
        || !m->drop.text) {
        rc = SL_ENOMEM;
        goto fail;
    }
    m->drop.textlen = len;
    m->drop.loc.exact = exact;
    m->drop.loc.line = line ? line : 1;
    m->drop.loc.col = col ? col : 1;
    m->drop.loc.col_next = 1;
    slt_map_cc_t cc = { .m = m, .types = types, .arg = arg, .diag = &diag,
                        .field = &m->drop };
    slt_map_node_t *root = NULL;
    rc = slt_map__parse(&cc, m->drop.text, len, &root);
    if (rc == 0)
        rc = slt_map__check(&cc, root, want);
    if (cc.cb_rc != 0 && (rc == 0 || rc == SL_EINVAL || rc == cc.cb_rc)) {
        slc_errf(err, errlen, "%s:%u:%u: the schema's types callback failed: %s", origin,
                 line, col, slc_strerror(cc.cb_rc));
        rc = cc.cb_rc;
        goto fail;
    }
    if (rc == 0 && (diag.n || diag.oom))
        rc = SL_EINVAL;
    if (rc == SL_EINVAL) {
        if (diag.n == 0 && !diag.oom)
            slc_errf(err, errlen, "%s:%u:%u: invalid expression", origin, line, col);
        else
            s_render(&diag, origin, err, errlen);
        goto fail;
    }
    if (rc != 0)
        goto fail;
    m->drop.expr = root;
    e->uses_doc = s_uses_doc(root);
    e->uses_meta = s_uses(root, SLC_N_META);
    *out = e;
    e = NULL;
fail:
    if (rc == SL_ENOMEM)
        slc_errf(err, errlen, "%s:%u:%u: out of memory", origin, line, col);
    slt_map__diag_free(&diag);
    slt_map_expr_destroy(&e);
    return rc;
}

bool slt_map_expr_uses_doc(const slt_map_expr_t *self)
{
    return self->uses_doc;
}

bool slt_map_expr_uses_meta(const slt_map_expr_t *self)
{
    return self->uses_meta;
}

bool slt_map_uses_meta(const slt_map_t *self)
{
    if (s_uses(self->drop.expr, SLC_N_META))
        return true;
    for (size_t k = 0; k < self->nfields; k++)
        if (s_uses(self->fields[k].expr, SLC_N_META))
            return true;
    return false;
}

static void s_ctx(const slt_map_expr_t *self, const cJSON *doc, const cJSON *meta,
                  slt_map_ctx_t *cx, char *err, size_t errlen)
{
    cx->m = &self->m;
    cx->field = &self->m.drop;
    cx->doc = doc;
    cx->meta = meta;
    cx->keep = NULL;
    cx->steps = 0;
    cx->scanned = 0;
    cx->bytes = 0;
    cx->err = err;
    cx->errlen = errlen;
    if (err && errlen)
        err[0] = '\0';
}

int slt_map_expr_eval_bool(const slt_map_expr_t *self, const cJSON *doc,
                           const cJSON *meta, bool *result, char *err, size_t errlen)
{
    slt_map_ctx_t cx;
    slt_map_val_t v = { 0 };
    static cJSON null_doc = { .type = cJSON_NULL };
    const slt_map_node_t *n = self->m.drop.expr;
    *result = false;
    s_ctx(self, doc ? doc : &null_doc, meta, &cx, err, errlen);
    int rc = slt_map__eval(&cx, n, &v);
    if (rc == 0 && v.t == SLC_V_MISSING)
        rc = slt_map__missing(&cx, n);
    else if (rc == 0 && v.t != SLC_V_BOOL)
        rc = slt_map__fail(&cx, n, "must be a boolean, got %s %s",
                           v.t == SLC_V_ARR || v.t == SLC_V_OBJ ? "an" : "a",
                           slt_map__val_type(&v));
    else if (rc == 0)
        *result = v.u.b;
    slt_map__val_release(&v);
    cJSON_Delete(cx.keep);
    return rc;
}

int slt_map_expr_eval(const slt_map_expr_t *self, const cJSON *doc, const cJSON *meta,
                      cJSON **out, char *err, size_t errlen)
{
    slt_map_ctx_t cx;
    slt_map_val_t v = { 0 };
    static cJSON null_doc = { .type = cJSON_NULL };
    const slt_map_node_t *n = self->m.drop.expr;
    *out = NULL;
    s_ctx(self, doc ? doc : &null_doc, meta, &cx, err, errlen);
    int rc = slt_map__eval(&cx, n, &v);
    if (rc == 0)
        rc = slt_map__to_json(&cx, n, &v, out);
    slt_map__val_release(&v);
    cJSON_Delete(cx.keep);
    return rc;
}
