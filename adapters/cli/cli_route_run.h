/*  cli_route_run - route one message through a compiled table OFFLINE the
 *  way the broker's ingest does (derived messages routed in turn, loops and
 *  the hop limit as in sld_route_ingest.c, mapped outputs validated against
 *  the mapping's `to` schema), and the mappings and schemas such a run
 *  resolves. Shared by `routes test` (files) and `routes diff --replay`
 *  (the broker's registry): the caller says where schema texts and topic
 *  bindings come from. Single-threaded; talks to no broker itself.  */
#ifndef CLI_ROUTE_RUN_H
#define CLI_ROUTE_RUN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "slt_map.h"
#include "slt_route.h"
#include "slt_schema.h"

#define CLI_ROUTE_DLQ_TOPIC "_dlq.routes"

/* The JSON Schema text of REF (SUBJECT@VERSION): malloc'd, *LEN set; or
 * NULL after saying why on stderr. */
typedef char *cli_route_schema_text_fn(void *arg, const char *ref, size_t *len);
/* The SUBJECT@VERSION topic TOPIC is bound to, or NULL (borrowed). */
typedef const char *cli_route_binding_fn(void *arg, const char *topic);

typedef struct {
    char *ref;                  /* SUBJECT@VERSION */
    slt_schema_t *schema;       /* NULL: could not be read (said once) */
} cli_route_schema_t;

typedef struct {
    slt_map_t *map;
    char *origin;               /* a file, or where it came from */
} cli_route_mapping_t;

/* What a run knows. Set CMD and the callbacks (each may be NULL: schemas
 * unknown, nothing validated; no bindings), zero the rest. */
typedef struct {
    const char *cmd;            /* "routes test": for messages */
    cli_route_schema_text_fn *schema_text;
    cli_route_binding_fn *binding;
    void *arg;                  /* passed to both */
    cli_route_schema_t *schemas;
    size_t nschemas;
    cli_route_mapping_t *maps;
    size_t nmaps;
} cli_route_world_t;

/* Schema REF, read once through schema_text; NULL when unknown. */
slt_schema_t *cli_route_schema(cli_route_world_t *w, const char *ref);

/* Compile the mapping YAML (LEN bytes) from ORIGIN, checked against its
 * `from` schema when that is known, and keep it. 0, or -1 after saying on
 * stderr that it is left out (a route naming it is then refused). */
int cli_route_add_mapping(cli_route_world_t *w, const char *yaml, size_t len,
                          const char *origin);

/* The mapping named NAME, or NULL. */
const slt_map_t *cli_route_find_mapping(const cli_route_world_t *w, const char *name);

/* A resolver for slt_route_compile over W's mappings and bindings. */
slt_route_resolver_t cli_route_resolver(cli_route_world_t *w);

void cli_route_world_free(cli_route_world_t *w);

/* A derived message on a topic, or a leg on _dlq.routes. */
typedef struct {
    char *topic;
    char *route;                /* the route that made it */
    cJSON *doc;                 /* the payload as JSON, a string when it is not
                                   JSON; NULL for a dlq leg */
    char *text;                 /* dlq: "route NAME: reason" */
} cli_route_leg_t;

/* What the routing of one message did. */
typedef struct {
    cli_route_leg_t *legs;      /* derived messages and dlq legs, in order */
    size_t nlegs;
    char **fired;               /* routes that fired or failed anywhere in the
                                   chain, first time each, in order */
    size_t nfired;
    bool dropped;               /* a drop route (or a drop_if) fired */
    bool routed;                /* a route fired or failed for the original */
} cli_route_outcome_t;

/* The original message (borrowed for the call). */
typedef struct {
    const char *topic;
    const void *payload;
    size_t len;
    const char *content_type;   /* NULL: JSON */
    const cJSON *headers;       /* $meta.headers; NULL: {} */
    uint64_t offset;            /* $meta.offset */
} cli_route_input_t;

/* Route IN and everything derived from it through TABLE into *O (zeroed
 * by the caller; free with cli_route_outcome_free). 0 or SL_ENOMEM. */
int cli_route_message(cli_route_world_t *w, const slt_route_table_t *table,
                      const cli_route_input_t *in, cli_route_outcome_t *o);

void cli_route_outcome_free(cli_route_outcome_t *o);

#endif
