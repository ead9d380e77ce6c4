/*  slt_route_int - what the files of the slt_route module share, and
 *  nothing outside them includes: the compiled route, the table, the
 *  topic-word trie and the list of compile errors. slt_route.c holds the
 *  API and orchestrates; slt_route_parse.c reads the YAML, slt_route_check.c
 *  checks routes against the resolver and the table as a whole,
 *  slt_route_index.c builds and walks the trie, slt_route_eval.c decides
 *  for a message, slt_route_diff.c compares tables. Names: slt_route__verb. */
#ifndef SLT_ROUTE_INT_H
#define SLT_ROUTE_INT_H
#include <stdarg.h>
#include "slt_route.h"

typedef struct {
    char *name;                     /* "" when the file gave none */
    char *pattern;                  /* match.topic (NULL: missing/invalid) */
    char *where;                    /* match.where text, or NULL */
    slt_map_expr_t *pred;           /* compiled where, or NULL */
    bool pred_doc;                  /* pred reads the payload */
    slt_route_action_t action;
    char **targets;                 /* `to`, ntargets of them */
    size_t ntargets;
    char *mapping;                  /* `map`, or NULL */
    const slt_map_t *map;           /* resolved, or NULL (unknown) */
    char *reason;                   /* dlq reason, or NULL */
    bool cont;                      /* continue */
    /* where things are in the file (1-based), for diagnostics */
    unsigned line, col;             /* the route (its first key) */
    unsigned where_line, where_col; /* the where text */
    bool where_exact;
    unsigned topic_line, topic_col, map_line, map_col, to_line, to_col;
} slt_route_def_t;

typedef struct slt_route_trie slt_route_trie_t;

struct slt_route_table {
    slt_route_def_t *routes;
    size_t n;
    slt_route_trie_t *trie;
    char *origin;
};

/* ---- compile errors: kept sorted by position when rendered */

typedef struct {
    unsigned line, col;
    char *text;                     /* "route NAME: field: reason" */
} slt_route_err_t;

typedef struct {
    slt_route_err_t items[SLT_ROUTE_ERRORS_MAX];
    size_t n, more;
    bool oom;
} slt_route_errs_t;

/* Record an error at LINE:COL about route R (may be NULL: the table) and
 * FIELD (may be NULL). */
void slt_route__err(slt_route_errs_t *e, unsigned line, unsigned col,
                    const slt_route_def_t *r, size_t idx, const char *field,
                    const char *fmt, ...) __attribute__((format(printf, 7, 8)));
void slt_route__errs_free(slt_route_errs_t *e);
/* Every error into ERR, one per line: ORIGIN:LINE:COL: text. */
void slt_route__errs_render(slt_route_errs_t *e, const char *origin, char *err, size_t errlen);

/* ---- stages */

/* Read YAML into T->routes (syntax and shapes only; names, patterns,
 * targets, actions are checked here as they are read). 0 or SL_ENOMEM;
 * errors go to E. */
int slt_route__parse(slt_route_table_t *t, const char *yaml, size_t len,
                     slt_route_errs_t *e);

/* Compile predicates, resolve mappings and schemas for each route, then the
 * table checks (duplicates, shadowing, static cycles). Needs the trie.
 * 0, SL_ENOMEM or a resolver failure; errors go to E. */
int slt_route__check(slt_route_table_t *t, const slt_route_resolver_t *res,
                     slt_route_errs_t *e);

/* The trie of T's patterns. 0 or SL_ENOMEM. */
int slt_route__index(slt_route_table_t *t);
void slt_route__trie_free(slt_route_trie_t *tr);

/* Indexes of the routes whose pattern matches TOPIC, ascending, into
 * *IDX (grown with slc_grow; *CAP its capacity), *N of them. 0 or
 * SL_ENOMEM. */
int slt_route__lookup(const slt_route_table_t *t, const char *topic,
                      size_t **idx, size_t *cap, size_t *n);

void slt_route__def_free(slt_route_def_t *r);

#endif
