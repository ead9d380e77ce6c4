/*  slt_route_parse - read a routing table's YAML (docs/routing.md, "The
 *  file") with libfyaml into the table's routes: keys, shapes, names,
 *  patterns, targets, actions and reasons, each error with its line and
 *  column. Called by slt_route_compile on the compiling thread. It does not
 *  compile predicates, resolve mappings or check the table as a whole
 *  (slt_route_check.c).  */
#include "slt_route_int.h"
#include "slc.h"
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    slt_route_errs_t *e;
    const char *yaml;
    size_t len;
} s_p_t;

/* Where node N starts: a scalar's token; a mapping's first key; a
 * sequence's first item; else FALLBACK's position (may be NULL: 1:1). */
static void s_pos(struct fy_node *n, struct fy_node *fallback, unsigned *line, unsigned *col)
{
    *line = *col = 1;
    for (int depth = 0; n && depth < 8; depth++) {
        if (fy_node_is_alias(n))
            break;
        if (fy_node_get_type(n) == FYNT_SCALAR) {
            struct fy_token *t = fy_node_get_scalar_token(n);
            const struct fy_mark *mk = t ? fy_token_start_mark(t) : NULL;
            if (mk) {
                *line = (unsigned) mk->line + 1;
                *col = (unsigned) mk->column + 1;
                return;
            }
            break;
        }
        void *it = NULL;
        if (fy_node_get_type(n) == FYNT_MAPPING) {
            struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
            n = p ? fy_node_pair_key(p) : NULL;
        } else {
            n = fy_node_sequence_iterate(n, &it);
        }
    }
    if (fallback && fallback != n)
        s_pos(fallback, NULL, line, col);
}

static const char *s_kind(struct fy_node *n)
{
    if (!n)
        return "nothing";
    if (fy_node_is_alias(n))
        return "an alias";
    switch (fy_node_get_type(n)) {
    case FYNT_MAPPING:
        return "a mapping";
    case FYNT_SEQUENCE:
        return "a list";
    default:
        return "a scalar";
    }
}

/* The text of scalar N (NUL-terminated copy into *OUT), or an error about
 * FIELD. 0, SL_EINVAL (reported) or SL_ENOMEM. */
static int s_str(s_p_t *p, struct fy_node *n, struct fy_node *key, const slt_route_def_t *r,
                 size_t idx, const char *field, char **out)
{
    unsigned l, c;
    size_t len = 0;
    *out = NULL;
    const char *s = n && !fy_node_is_alias(n) && fy_node_get_type(n) == FYNT_SCALAR
                    ? fy_node_get_scalar(n, &len) : NULL;
    if (!s || !fy_node_get_scalar_token(n)) {
        s_pos(n, key, &l, &c);
        slt_route__err(p->e, l, c, r, idx, field, "expected a string, got %s",
                       !s && n && fy_node_get_type(n) == FYNT_SCALAR ? "nothing" : s_kind(n));
        return SL_EINVAL;
    }
    if (!slc_text_valid(s, len)) {
        s_pos(n, key, &l, &c);
        slt_route__err(p->e, l, c, r, idx, field, "not UTF-8 text");
        return SL_EINVAL;
    }
    *out = strndup(s, len);
    return *out ? 0 : SL_ENOMEM;
}

static bool s_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SLT_ROUTE_NAME_MAX)
        return false;
    for (size_t k = 0; k < n; k++) {
        char ch = s[k];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
              || ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

/* Where the where-text of N sits, and whether columns inside it are exact. */
static void s_where_loc(s_p_t *p, struct fy_node *n, slt_route_def_t *r)
{
    struct fy_token *t = fy_node_get_scalar_token(n);
    const struct fy_mark *sm = t ? fy_token_start_mark(t) : NULL;
    const struct fy_mark *em = t ? fy_token_end_mark(t) : NULL;
    s_pos(n, NULL, &r->where_line, &r->where_col);
    r->where_exact = false;
    if (!sm || !em || em->input_pos > p->len || sm->input_pos > em->input_pos)
        return;
    size_t tl = strlen(r->where);
    /* the token starts at the text (inside the quotes, if any) */
    if (sm->input_pos + tl <= p->len && memcmp(p->yaml + sm->input_pos, r->where, tl) == 0
        && !memchr(r->where, '\n', tl))
        r->where_exact = true;
}

static int s_match(s_p_t *p, struct fy_node *key, struct fy_node *val, slt_route_def_t *r,
                   size_t idx)
{
    unsigned l, c;
    int rc = 0;
    if (!val || fy_node_is_alias(val) || fy_node_get_type(val) != FYNT_MAPPING) {
        s_pos(val, key, &l, &c);
        slt_route__err(p->e, l, c, r, idx, "match", "expected a mapping { topic: PATTERN, "
                       "where: EXPRESSION }, got %s", s_kind(val));
        return 0;
    }
    bool topic = false;
    void *it = NULL;
    struct fy_node_pair *pr;
    while ((pr = fy_node_mapping_iterate(val, &it))) {
        struct fy_node *k = fy_node_pair_key(pr), *v = fy_node_pair_value(pr);
        size_t kl = 0;
        const char *ks = k && fy_node_get_type(k) == FYNT_SCALAR ? fy_node_get_scalar(k, &kl) : NULL;
        s_pos(k, val, &l, &c);
        if (ks && kl == 5 && memcmp(ks, "topic", 5) == 0) {
            topic = true;
            s_pos(v, k, &r->topic_line, &r->topic_col);
            char *s = NULL;
            rc = s_str(p, v, k, r, idx, "match.topic", &s);
            if (rc == SL_ENOMEM)
                return rc;
            if (rc != 0)
                continue;
            if (slc_pattern_validate(s) != 0) {
                slt_route__err(p->e, r->topic_line, r->topic_col, r, idx, "match.topic",
                               "'%.300s' is not a topic pattern (dot-separated words of "
                               "A-Z a-z 0-9 _ -, '*' for one word, '>' last for the rest)", s);
                free(s);
                continue;
            }
            free(r->pattern);
            r->pattern = s;
        } else if (ks && kl == 5 && memcmp(ks, "where", 5) == 0) {
            char *s = NULL;
            rc = s_str(p, v, k, r, idx, "match.where", &s);
            if (rc == SL_ENOMEM)
                return rc;
            if (rc != 0)
                continue;
            free(r->where);
            r->where = s;
            s_where_loc(p, v, r);
        } else {
            slt_route__err(p->e, l, c, r, idx, "match", "unknown key '%.*s' (the keys are "
                           "topic and where)", (int) (kl > 64 ? 64 : kl), ks ? ks : "?");
        }
    }
    if (!topic) {
        s_pos(val, key, &l, &c);
        slt_route__err(p->e, l, c, r, idx, "match.topic", "missing");
    }
    return 0;
}

static int s_targets(s_p_t *p, struct fy_node *key, struct fy_node *val, slt_route_def_t *r,
                     size_t idx)
{
    unsigned l, c;
    struct fy_node *items[SLT_ROUTE_TARGETS_MAX + 1];
    size_t n = 0;
    s_pos(val, key, &r->to_line, &r->to_col);
    if (val && !fy_node_is_alias(val) && fy_node_get_type(val) == FYNT_SEQUENCE) {
        void *it = NULL;
        struct fy_node *x;
        while ((x = fy_node_sequence_iterate(val, &it)) && n <= SLT_ROUTE_TARGETS_MAX)
            items[n++] = x;
        if (n > SLT_ROUTE_TARGETS_MAX) {
            slt_route__err(p->e, r->to_line, r->to_col, r, idx, "to", "more than %d targets",
                           SLT_ROUTE_TARGETS_MAX);
            return 0;
        }
        if (n == 0) {
            slt_route__err(p->e, r->to_line, r->to_col, r, idx, "to", "an empty list (give at "
                           "least one topic, or use action: drop)");
            return 0;
        }
    } else {
        items[n++] = val;
    }
    r->targets = calloc(n, sizeof *r->targets);
    if (!r->targets)
        return SL_ENOMEM;
    for (size_t k = 0; k < n; k++) {
        char *s = NULL;
        int rc = s_str(p, items[k], key, r, idx, "to", &s);
        if (rc == SL_ENOMEM)
            return rc;
        if (rc != 0)
            continue;
        s_pos(items[k], key, &l, &c);
        if (slc_topic_validate(s, true) != 0) {
            slt_route__err(p->e, l, c, r, idx, "to", "'%.300s' is not a topic name", s);
            free(s);
            continue;
        }
        if (s[0] == '_') {
            slt_route__err(p->e, l, c, r, idx, "to", "'%.300s' is a broker topic ('_'): routes "
                           "cannot write there (use action: dlq)", s);
            free(s);
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < r->ntargets; j++)
            dup = dup || strcmp(r->targets[j], s) == 0;
        if (dup) {
            slt_route__err(p->e, l, c, r, idx, "to", "'%.300s' is listed twice", s);
            free(s);
            continue;
        }
        r->targets[r->ntargets++] = s;
    }
    return 0;
}

static const char *const s_keys[] = { "name", "match", "action", "to", "map", "reason",
                                      "continue" };
enum { K_NAME, K_MATCH, K_ACTION, K_TO, K_MAP, K_REASON, K_CONT, K_N };

/* One route: the mapping VAL, item IDX of the list. */
static int s_route(s_p_t *p, struct fy_node *val, struct fy_node *list, slt_route_def_t *r,
                   size_t idx)
{
    int rc = 0;
    unsigned l, c;
    struct fy_node *keys[K_N] = { 0 }, *vals[K_N] = { 0 };
    r->name = strdup("");
    if (!r->name)
        return SL_ENOMEM;
    s_pos(val, list, &r->line, &r->col);
    if (!val || fy_node_is_alias(val) || fy_node_get_type(val) != FYNT_MAPPING) {
        slt_route__err(p->e, r->line, r->col, r, idx, NULL, "a route is a mapping (name:, "
                       "match:, to: or action:), got %s", s_kind(val));
        return 0;
    }
    /* the name first, so that every other error names the route */
    void *it = NULL;
    struct fy_node_pair *pr;
    while ((pr = fy_node_mapping_iterate(val, &it))) {
        struct fy_node *k = fy_node_pair_key(pr);
        size_t kl = 0;
        const char *ks = k && fy_node_get_type(k) == FYNT_SCALAR ? fy_node_get_scalar(k, &kl) : NULL;
        size_t j = 0;
        while (ks && j < K_N && !(strlen(s_keys[j]) == kl && memcmp(s_keys[j], ks, kl) == 0))
            j++;
        if (ks && j < K_N) {
            keys[j] = k;
            vals[j] = fy_node_pair_value(pr);
        }
    }
    if (keys[K_NAME]) {
        char *s = NULL;
        rc = s_str(p, vals[K_NAME], keys[K_NAME], r, idx, "name", &s);
        if (rc == SL_ENOMEM)
            return rc;
        if (rc == 0) {
            free(r->name);
            r->name = s;
            if (!s_name_ok(s)) {
                s_pos(vals[K_NAME], keys[K_NAME], &l, &c);
                slt_route__err(p->e, l, c, r, idx, "name", "1 to %d characters of A-Z a-z 0-9 "
                               "_ . -", SLT_ROUTE_NAME_MAX);
            }
        }
    } else {
        slt_route__err(p->e, r->line, r->col, r, idx, "name", "missing");
    }
    it = NULL;
    while ((pr = fy_node_mapping_iterate(val, &it))) {
        struct fy_node *k = fy_node_pair_key(pr);
        size_t kl = 0;
        const char *ks = k && fy_node_get_type(k) == FYNT_SCALAR ? fy_node_get_scalar(k, &kl) : NULL;
        size_t j = 0;
        while (ks && j < K_N && !(strlen(s_keys[j]) == kl && memcmp(s_keys[j], ks, kl) == 0))
            j++;
        if (!ks || j == K_N || keys[j] != k) {
            s_pos(k, val, &l, &c);
            slt_route__err(p->e, l, c, r, idx, NULL, ks && j < K_N ? "'%.*s' given twice"
                           : "unknown key '%.*s' (the keys are name, match, action, to, map, "
                           "reason and continue)", (int) (kl > 64 ? 64 : kl), ks ? ks : "?");
        }
    }
    if (keys[K_MATCH]) {
        rc = s_match(p, keys[K_MATCH], vals[K_MATCH], r, idx);
        if (rc != 0)
            return rc;
    } else {
        slt_route__err(p->e, r->line, r->col, r, idx, "match", "missing");
    }
    char *action = NULL;
    if (keys[K_ACTION]) {
        rc = s_str(p, vals[K_ACTION], keys[K_ACTION], r, idx, "action", &action);
        if (rc == SL_ENOMEM)
            return rc;
        if (rc == 0 && strcmp(action, "deliver") == 0)
            r->action = SLT_ROUTE_DELIVER;
        else if (rc == 0 && strcmp(action, "drop") == 0)
            r->action = SLT_ROUTE_DROP;
        else if (rc == 0 && strcmp(action, "dlq") == 0)
            r->action = SLT_ROUTE_DLQ;
        else if (rc == 0) {
            s_pos(vals[K_ACTION], keys[K_ACTION], &l, &c);
            slt_route__err(p->e, l, c, r, idx, "action", "'%.64s' is not an action (deliver, "
                           "drop or dlq)", action);
        }
        free(action);
        rc = 0;
    } else if (keys[K_TO]) {
        r->action = SLT_ROUTE_DELIVER;
    } else {
        slt_route__err(p->e, r->line, r->col, r, idx, "to", "missing (a route delivers to: "
                       "topics, or has action: drop or action: dlq)");
    }
    if (keys[K_TO]) {
        if (r->action && r->action != SLT_ROUTE_DELIVER) {
            s_pos(keys[K_TO], NULL, &l, &c);
            slt_route__err(p->e, l, c, r, idx, "to", "only with action: deliver");
        } else {
            rc = s_targets(p, keys[K_TO], vals[K_TO], r, idx);
            if (rc != 0)
                return rc;
        }
    } else if (r->action == SLT_ROUTE_DELIVER) {
        slt_route__err(p->e, r->line, r->col, r, idx, "to", "missing (action: deliver needs "
                       "target topics)");
    }
    if (keys[K_MAP]) {
        s_pos(vals[K_MAP], keys[K_MAP], &r->map_line, &r->map_col);
        rc = s_str(p, vals[K_MAP], keys[K_MAP], r, idx, "map", &r->mapping);
        if (rc == SL_ENOMEM)
            return rc;
        rc = 0;
        if (r->mapping && r->action && r->action != SLT_ROUTE_DELIVER)
            slt_route__err(p->e, r->map_line, r->map_col, r, idx, "map", "only with action: "
                           "deliver");
        else if (r->mapping && !r->mapping[0])
            slt_route__err(p->e, r->map_line, r->map_col, r, idx, "map", "empty mapping name");
    }
    if (keys[K_REASON]) {
        rc = s_str(p, vals[K_REASON], keys[K_REASON], r, idx, "reason", &r->reason);
        if (rc == SL_ENOMEM)
            return rc;
        rc = 0;
        s_pos(vals[K_REASON], keys[K_REASON], &l, &c);
        if (r->reason && r->action && r->action != SLT_ROUTE_DLQ)
            slt_route__err(p->e, l, c, r, idx, "reason", "only with action: dlq");
        else if (r->reason && (!r->reason[0] || strlen(r->reason) > SLT_ROUTE_REASON_MAX))
            slt_route__err(p->e, l, c, r, idx, "reason", "1 to %d bytes", SLT_ROUTE_REASON_MAX);
    } else if (r->action == SLT_ROUTE_DLQ) {
        slt_route__err(p->e, r->line, r->col, r, idx, "reason", "missing (action: dlq needs "
                       "the reason its dead-lettered messages carry)");
    }
    if (keys[K_CONT]) {
        size_t n = 0;
        struct fy_node *v = vals[K_CONT];
        const char *s = v && !fy_node_is_alias(v) && fy_node_get_type(v) == FYNT_SCALAR
                        && fy_node_get_style(v) == FYNS_PLAIN ? fy_node_get_scalar(v, &n) : NULL;
        s_pos(v, keys[K_CONT], &l, &c);
        if (s && n == 4 && memcmp(s, "true", 4) == 0)
            r->cont = true;
        else if (!(s && n == 5 && memcmp(s, "false", 5) == 0))
            slt_route__err(p->e, l, c, r, idx, "continue", "expected true or false");
        if (r->cont && r->action == SLT_ROUTE_DROP)
            slt_route__err(p->e, l, c, r, idx, "continue", "action: drop ends the evaluation; "
                           "continue: true has no meaning with it");
    }
    return 0;
}

static void s_quiet(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void) diag;
    (void) user;
    (void) buf;
    (void) len;
}

int slt_route__parse(slt_route_table_t *t, const char *yaml, size_t len, slt_route_errs_t *e)
{
    int rc = 0;
    s_p_t p = { .e = e, .yaml = yaml, .len = len };
    struct fy_document *doc = NULL;
    struct fy_parse_cfg pcfg = {
        .flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE,
    };
    if (!slc_text_valid(yaml, len)) {
        slt_route__err(e, 1, 1, NULL, 0, NULL, "the file is not UTF-8 text");
        return 0;
    }
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.colorize = false;
    dcfg.output_fn = s_quiet;
    struct fy_diag *fd = fy_diag_create(&dcfg);
    if (!fd)
        return SL_ENOMEM;
    fy_diag_set_collect_errors(fd, true);
    pcfg.diag = fd;
    doc = len ? fy_document_build_from_string(&pcfg, yaml, len) : NULL;
    if (!doc && len) {
        struct fy_diag_error *de;
        void *it = NULL;
        bool any = false;
        while ((de = fy_diag_errors_iterate(fd, &it))) {
            slt_route__err(e, de->line > 0 ? (unsigned) de->line : 1,
                           de->column > 0 ? (unsigned) de->column : 1, NULL, 0, NULL,
                           "YAML: %s", de->msg ? de->msg : "syntax error");
            any = true;
        }
        if (!any)
            slt_route__err(e, 1, 1, NULL, 0, NULL, "YAML: not a valid YAML document");
        goto out;
    }
    struct fy_node *root = doc ? fy_document_root(doc) : NULL;
    if (!root || fy_node_is_alias(root) || fy_node_get_type(root) != FYNT_MAPPING) {
        slt_route__err(e, 1, 1, NULL, 0, NULL, "a routing table is a YAML mapping with "
                       "'routes:', got %s", s_kind(root));
        goto out;
    }
    struct fy_node *list = NULL, *lkey = NULL;
    void *it = NULL;
    struct fy_node_pair *pr;
    while ((pr = fy_node_mapping_iterate(root, &it))) {
        struct fy_node *k = fy_node_pair_key(pr);
        size_t kl = 0;
        const char *ks = k && fy_node_get_type(k) == FYNT_SCALAR ? fy_node_get_scalar(k, &kl) : NULL;
        unsigned l, c;
        s_pos(k, root, &l, &c);
        if (ks && kl == 6 && memcmp(ks, "routes", 6) == 0) {
            lkey = k;
            list = fy_node_pair_value(pr);
        } else {
            slt_route__err(e, l, c, NULL, 0, NULL, "unknown key '%.*s' (a table has only "
                           "'routes:')", (int) (kl > 64 ? 64 : kl), ks ? ks : "?");
        }
    }
    if (!lkey) {
        slt_route__err(e, 1, 1, NULL, 0, NULL, "missing 'routes:'");
        goto out;
    }
    if (!list || fy_node_is_alias(list) || fy_node_get_type(list) != FYNT_SEQUENCE) {
        unsigned l, c;
        s_pos(list, lkey, &l, &c);
        slt_route__err(e, l, c, NULL, 0, NULL, "routes: expected a list, got %s", s_kind(list));
        goto out;
    }
    int cnt = fy_node_sequence_item_count(list);
    if (cnt > SLT_ROUTE_MAX) {
        unsigned l, c;
        s_pos(lkey, NULL, &l, &c);
        slt_route__err(e, l, c, NULL, 0, NULL, "routes: %d routes (limit %d)", cnt, SLT_ROUTE_MAX);
        goto out;
    }
    t->routes = calloc(cnt > 0 ? (size_t) cnt : 1, sizeof *t->routes);
    if (!t->routes) {
        rc = SL_ENOMEM;
        goto out;
    }
    it = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(list, &it)) && t->n < (size_t) cnt) {
        slt_route_def_t *r = &t->routes[t->n++];
        rc = s_route(&p, item, lkey, r, t->n - 1);
        if (rc != 0)
            goto out;
    }
out:
    if (doc)
        fy_document_destroy(doc);
    fy_diag_destroy(fd);
    return rc;
}
