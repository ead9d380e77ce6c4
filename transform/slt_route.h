/*  slt_route - routing tables (docs/routing.md): parse and compile a YAML
 *  table once (patterns indexed in a trie over topic words, predicates and
 *  references to mappings compiled and checked), then tell for each message
 *  which routes fire and what each does. The broker runs it at ingest, the
 *  CLI on fixtures and for diffs. A compiled table is immutable: any number
 *  of threads may evaluate the same one at once. It does not store, publish,
 *  read files or know the registry: the caller resolves mappings and
 *  schemas through callbacks and writes what the evaluation decides.  */
#ifndef SLT_ROUTE_H
#define SLT_ROUTE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "slt_map.h"
#include "sluice_codes.h"

/* Limits (docs/routing.md, "Limits"). */
#define SLT_ROUTE_YAML_MAX    (4u << 20)  /* bytes of a table file */
#define SLT_ROUTE_MAX         10000       /* routes in one table */
#define SLT_ROUTE_NAME_MAX    128         /* bytes of a route name */
#define SLT_ROUTE_TARGETS_MAX 16          /* topics in one route's `to` */
#define SLT_ROUTE_REASON_MAX  256         /* bytes of a dlq action's reason */
#define SLT_ROUTE_ERRORS_MAX  64          /* compile errors reported */

typedef struct slt_route_table slt_route_table_t;

typedef enum {
    SLT_ROUTE_DELIVER = 1,      /* to the `to` topics, through `map` if set */
    SLT_ROUTE_DROP,             /* no derived message; evaluation stops */
    SLT_ROUTE_DLQ               /* a leg to _dlq.routes with `reason` */
} slt_route_action_t;

/* What the compiler asks its caller (all optional: a NULL function means
 * "unknown, do not check"). ARG is passed to each. */
typedef struct {
    /* The mapping named NAME: 0 and *MAP (borrowed; it must outlive the
     * compiled table, or the caller must recompile the table when it
     * changes), or SL_ENOTFOUND. */
    int (*mapping)(void *arg, const char *name, const slt_map_t **map);
    /* The schema bound to topic TOPIC, as a types callback for the
     * predicate's type checker and the SUBJECT@VERSION it is (for the
     * check that a route's mapping reads what the topic carries): 0 with
     * *TYPES / *TYPES_ARG / *SUBJECT set (borrowed for the compilation),
     * or SL_ENOTFOUND when the topic has no schema. */
    int (*schema)(void *arg, const char *topic, slt_map_types_fn **types,
                  void **types_arg, const char **subject);
    void *arg;
} slt_route_resolver_t;

/* Parse and compile table YAML (LEN bytes; borrowed for the call). ORIGIN
 * (NULL: "<routes>") names the file in diagnostics. Every route is checked:
 * name (unique, 1..SLT_ROUTE_NAME_MAX of [A-Za-z0-9_.-]), topic pattern,
 * predicate (compiled, type-checked against the topic's schema when the
 * resolver knows one: only for a pattern without wildcards), mapping
 * (exists; its `from` subject equals the topic's bound schema when both
 * are known), targets (valid topic names, not '_' topics, at most
 * SLT_ROUTE_TARGETS_MAX), action, reason; then the table: a route that an
 * earlier route with `continue: false`, no predicate and a pattern that
 * covers it can never reach ("shadowed"), and target topics that a route
 * of the table would route back to where they came from (a cycle in the
 * static graph topic -> targets). On 0 *OUT is the table (caller owns).
 * Otherwise *OUT is NULL and ERR holds every error (at most
 * SLT_ROUTE_ERRORS_MAX), one per line: ORIGIN:LINE:COL: route NAME: field:
 * reason. SL_EINVAL (the table is wrong), SL_ETOOBIG, SL_ENOMEM. An empty
 * table (`routes: []`) is valid. */
int slt_route_compile(const char *yaml, size_t len, const char *origin,
                      const slt_route_resolver_t *resolver,
                      slt_route_table_t **out, char *err, size_t errlen);

void slt_route_destroy(slt_route_table_t **self_p);

/* Number of routes, and the name of route I (0-based, file order):
 * borrowed, valid until destroy. */
size_t slt_route_count(const slt_route_table_t *self);
const char *slt_route_name(const slt_route_table_t *self, size_t i);

/* The name of the mapping route I uses (`map`), or NULL: borrowed, valid
 * until destroy. For "a mapping a live route uses cannot be removed". */
const char *slt_route_mapping(const slt_route_table_t *self, size_t i);

/* REASON (a failed step's, borrowed) without the "route 'NAME': " the
 * evaluator and the compiled predicates put first for a reader of the text
 * alone, when ROUTE is NAME: for a caller that shows the route beside the
 * text (a _dlq.routes leg, its advisory, a trace step, a fixture's
 * dead-letter), so that the route is said once. */
const char *slt_route_reason(const char *reason, const char *route);

/* The topic pattern (`match.topic`) of route I, or NULL: borrowed, valid
 * until destroy. For `routes backfill`, which refuses a topic it misses. */
const char *slt_route_pattern(const slt_route_table_t *self, size_t i);

/* One route's outcome for one message. A DELIVER route whose mapping's
 * drop_if is true gives a FIRED step with action SLT_ROUTE_DROP (MAP and
 * MAPPING set, no targets, no output). FAILED steps keep the route's
 * action; REASON then starts "route 'NAME': where|map ...". */
typedef enum {
    SLT_ROUTE_FIRED = 1,        /* matched; its action applies */
    SLT_ROUTE_SKIPPED,          /* topic matched, predicate false */
    SLT_ROUTE_FAILED            /* predicate or mapping failed: a dlq leg */
} slt_route_outcome_t;

typedef struct {
    size_t route;               /* index of the route */
    slt_route_outcome_t outcome;
    slt_route_action_t action;  /* FIRED: what to do */
    const char *const *targets; /* DELIVER: topics (borrowed from the table) */
    size_t ntargets;
    const slt_map_t *map;       /* DELIVER through a mapping, or NULL */
    const char *mapping;        /* its name, or NULL */
    cJSON *output;              /* DELIVER with a mapping: the mapped
                                   document (owned by the result) */
    char *reason;               /* DLQ: the action's reason; FAILED: the
                                   error with its field path (owned) */
} slt_route_step_t;

typedef struct {
    slt_route_step_t *steps;    /* in route order: every route whose topic
                                   pattern matched, until one that fired (or
                                   failed) with continue: false */
    size_t nsteps, capsteps;
    bool decoded;               /* the payload was parsed (some route needed it) */
} slt_route_result_t;

/* What one message is, for the evaluation. PAYLOAD is parsed as JSON
 * (slt_doc, by CONTENT_TYPE) only when a matching route has a predicate or
 * a mapping; a payload that does not parse then fails those routes. META
 * is what `$meta` reads ({"topic", "offset", "headers", "lineage"}); it may
 * be NULL. Everything is borrowed for the call. */
typedef struct {
    const char *topic;
    const void *payload;
    size_t len;
    const char *content_type;   /* may be NULL: JSON */
    const cJSON *meta;
} slt_route_msg_t;

/* What a caller may give slt_route_eval_given besides the message, so
 * that nothing is done twice or for nothing. DOC, when not NULL, is the
 * payload already parsed (the one document slt_doc_decode gives for it,
 * e.g. the schema check's): used as is, never parsed again. When the
 * message's META is NULL and META_FN is set, META_FN(META_ARG) gives
 * `$meta` (NULL: out of memory), called at most once per evaluation and
 * only when a route's predicate or mapping reads `$meta` or fails (a
 * runtime error's text names the topic and offset from it): the caller
 * builds `$meta` only when it is used. Borrowed for the call. */
typedef struct {
    const cJSON *doc;
    const cJSON *(*meta_fn)(void *arg);
    void *meta_arg;
} slt_route_given_t;

/* Evaluate the table for MSG into *RES (initialise it to zeros before the
 * first call; each call clears what the last one left). Routes are tried
 * in file order among those whose pattern matches MSG->topic (the trie
 * gives them without a scan of the table). 0, or SL_ENOMEM. Runtime
 * failures are not errors of this call: they are FAILED steps. A message
 * no route fired for has no FIRED step (the caller counts it unrouted). */
int slt_route_eval(const slt_route_table_t *self, const slt_route_msg_t *msg,
                   slt_route_result_t *res);

/* slt_route_eval with GIVEN (may be NULL: as slt_route_eval); the same
 * result. */
int slt_route_eval_given(const slt_route_table_t *self, const slt_route_msg_t *msg,
                         const slt_route_given_t *given, slt_route_result_t *res);

/* Free what RES holds. NULL-safe. */
void slt_route_result_free(slt_route_result_t *res);

/* A readable diff of table A (may be NULL: empty) against B: one line per
 * route added ("+ name"), removed ("- name"), changed ("~ name: field
 * old -> new", a line per field) or moved ("~ name: position i -> j");
 * "(no change)" when equal. Caller owns the string (free). NULL only when
 * out of memory. */
char *slt_route_diff(const slt_route_table_t *a, const slt_route_table_t *b);

/* Whether A and B hold the same routes, field by field. */
bool slt_route_equal(const slt_route_table_t *a, const slt_route_table_t *b);

#endif
