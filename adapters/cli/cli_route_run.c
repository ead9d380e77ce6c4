/*  cli_route_run - route one message through a compiled table offline, as
 *  the broker's ingest does (cli_route_run.h), and the registry of
 *  mappings and schemas the run resolves. Called by `routes test`
 *  (cli_routes_test.c) and `routes diff --replay` (cli_routes_replay.c);
 *  single-threaded. It reads no files and talks to no broker: schema texts
 *  and bindings come through the caller's callbacks.  */
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "cli_route_run.h"
#include "slt_doc.h"
#include "slt_map_schema.h"

#define S_ERR_MAX 16384
#define S_HOPS_MAX 8            /* docs/routing.md, "Limits" */

/* ------------------------------------------------------------ the world */

slt_schema_t *cli_route_schema(cli_route_world_t *w, const char *ref)
{
    char err[S_ERR_MAX];
    if (!w->schema_text || !ref || !*ref)
        return NULL;
    for (size_t i = 0; i < w->nschemas; i++)
        if (strcmp(w->schemas[i].ref, ref) == 0)
            return w->schemas[i].schema;
    w->schemas = cli_xrealloc(w->schemas, (w->nschemas + 1) * sizeof *w->schemas);
    cli_route_schema_t *s = &w->schemas[w->nschemas++];
    s->ref = cli_xstrdup(ref);
    s->schema = NULL;
    size_t len = 0;
    char *text = w->schema_text(w->arg, ref, &len);
    if (text && slt_schema_compile(text, len, &s->schema, err, sizeof err) != 0)
        fprintf(stderr, "sluice %s: schema %s does not compile: %s\n", w->cmd, ref, err);
    free(text);
    return s->schema;
}

/* Whether YAML is a routing table (a top-level `routes:` line): a folder
 * of mappings may hold the domain's table beside them. */
static bool s_is_table(const char *yaml, size_t len)
{
    for (size_t i = 0; i + 7 <= len; i++)
        if ((i == 0 || yaml[i - 1] == '\n') && memcmp(yaml + i, "routes:", 7) == 0)
            return true;
    return false;
}

int cli_route_add_mapping(cli_route_world_t *w, const char *yaml, size_t len,
                          const char *origin)
{
    char err[S_ERR_MAX], from[512], to[512];
    if (s_is_table(yaml, len))
        return 0;       /* not a mapping: passed over without a word */
    slt_schema_t *src = NULL;
    if (slt_map_peek(yaml, len, from, to, sizeof from) == 0 && from[0])
        src = cli_route_schema(w, from);
    slt_map_t *map = NULL;
    if (slt_map_compile(yaml, len, origin, src ? slt_map_schema_types : NULL, src, &map, err,
                        sizeof err) != 0) {
        fprintf(stderr, "sluice %s: mapping %s left out:\n%s\n", w->cmd, origin, err);
        return -1;
    }
    w->maps = cli_xrealloc(w->maps, (w->nmaps + 1) * sizeof *w->maps);
    w->maps[w->nmaps].map = map;
    w->maps[w->nmaps].origin = cli_xstrdup(origin);
    w->nmaps++;
    return 0;
}

const slt_map_t *cli_route_find_mapping(const cli_route_world_t *w, const char *name)
{
    for (size_t i = 0; i < w->nmaps; i++)
        if (strcmp(slt_map_name(w->maps[i].map), name) == 0)
            return w->maps[i].map;
    return NULL;
}

static int s_resolve_mapping(void *arg, const char *name, const slt_map_t **map)
{
    *map = cli_route_find_mapping(arg, name);
    return *map ? 0 : SL_ENOTFOUND;
}

static int s_resolve_schema(void *arg, const char *topic, slt_map_types_fn **types,
                            void **types_arg, const char **subject)
{
    cli_route_world_t *w = arg;
    const char *ref = w->binding ? w->binding(w->arg, topic) : NULL;
    slt_schema_t *schema = cli_route_schema(w, ref);
    if (!schema)
        return SL_ENOTFOUND;
    for (size_t i = 0; i < w->nschemas; i++)
        if (w->schemas[i].schema == schema)
            *subject = w->schemas[i].ref;
    *types = slt_map_schema_types;
    *types_arg = schema;
    return 0;
}

slt_route_resolver_t cli_route_resolver(cli_route_world_t *w)
{
    slt_route_resolver_t r = { s_resolve_mapping, s_resolve_schema, w };
    return r;
}

void cli_route_world_free(cli_route_world_t *w)
{
    for (size_t i = 0; i < w->nmaps; i++) {
        slt_map_destroy(&w->maps[i].map);
        free(w->maps[i].origin);
    }
    for (size_t i = 0; i < w->nschemas; i++) {
        slt_schema_destroy(&w->schemas[i].schema);
        free(w->schemas[i].ref);
    }
    free(w->maps);
    free(w->schemas);
    w->maps = NULL;
    w->schemas = NULL;
    w->nmaps = w->nschemas = 0;
}

/* ---------------------------------------------------- routing a message */

/* A message waiting to be routed. */
typedef struct {
    char *topic;
    char *payload;              /* NUL-terminated */
    size_t len;
    const char *content_type;   /* NULL: JSON */
    cJSON *lineage;             /* NULL for the original */
    int hops;
} s_work_t;

void cli_route_outcome_free(cli_route_outcome_t *o)
{
    for (size_t i = 0; i < o->nlegs; i++) {
        free(o->legs[i].topic);
        free(o->legs[i].route);
        cJSON_Delete(o->legs[i].doc);
        free(o->legs[i].text);
    }
    for (size_t i = 0; i < o->nfired; i++)
        free(o->fired[i]);
    free(o->legs);
    free(o->fired);
    memset(o, 0, sizeof *o);
}

static cJSON *s_payload_doc(const char *payload, size_t len)
{
    cJSON *doc = NULL;
    char err[256];
    if (slt_doc_parse(payload, len, &doc, err, sizeof err) != 0)
        doc = cJSON_CreateString(payload);
    return doc;
}

static void s_leg(cli_route_outcome_t *o, const char *topic, const char *route, cJSON *doc,
                  char *text)
{
    o->legs = cli_xrealloc(o->legs, (o->nlegs + 1) * sizeof *o->legs);
    o->legs[o->nlegs].topic = cli_xstrdup(topic);
    o->legs[o->nlegs].route = cli_xstrdup(route);
    o->legs[o->nlegs].doc = doc;
    o->legs[o->nlegs].text = text;
    o->nlegs++;
}

static void s_dlq(cli_route_outcome_t *o, const char *route, const char *why)
{
    size_t n = strlen(route) + strlen(why) + 16;
    char *text = cli_xmalloc(n);
    snprintf(text, n, "route %s: %s", route, why);
    s_leg(o, CLI_ROUTE_DLQ_TOPIC, route, NULL, text);
}

static void s_fired(cli_route_outcome_t *o, const char *route)
{
    for (size_t i = 0; i < o->nfired; i++)
        if (strcmp(o->fired[i], route) == 0)
            return;
    o->fired = cli_xrealloc(o->fired, (o->nfired + 1) * sizeof *o->fired);
    o->fired[o->nfired++] = cli_xstrdup(route);
}

/* Whether TOPIC is the current one or in LINEAGE's path. */
static bool s_passed(const s_work_t *m, const char *topic)
{
    if (strcmp(m->topic, topic) == 0)
        return true;
    const cJSON *t, *path = cJSON_GetObjectItemCaseSensitive(m->lineage, "path");
    cJSON_ArrayForEach(t, path)
        if (cJSON_IsString(t) && strcmp(t->valuestring, topic) == 0)
            return true;
    return false;
}

/* The lineage of a message derived from M (at OFFSET) by ROUTE (through
 * MAPPING) onto TARGET, as the broker writes it: the parent's topic and
 * offset, and the path with TARGET last. */
static cJSON *s_lineage(const s_work_t *m, uint64_t offset, const char *route,
                        const char *mapping, const char *target)
{
    cJSON *l = cJSON_CreateObject();
    cJSON_AddStringToObject(l, "source_topic", m->topic);
    cJSON_AddNumberToObject(l, "source_offset", m->lineage ? 0 : (double) offset);
    cJSON_AddStringToObject(l, "route", route);
    cJSON_AddStringToObject(l, "mapping", mapping ? mapping : "");
    cJSON_AddNumberToObject(l, "table_version", 0);
    cJSON *path = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(m->lineage, "path"), true);
    if (!path) {
        path = cJSON_CreateArray();
        cJSON_AddItemToArray(path, cJSON_CreateString(m->topic));
    }
    cJSON_AddItemToArray(path, cJSON_CreateString(target));
    cJSON_AddItemToObject(l, "path", path);
    return l;
}

/* Validate a mapped OUTPUT against the mapping's `to` schema when it is
 * known; on failure WHY says what breaks it. */
static bool s_valid(cli_route_world_t *w, const slt_map_t *map, const cJSON *output,
                    char *why, size_t len)
{
    slt_schema_t *to = map ? cli_route_schema(w, slt_map_to(map)) : NULL;
    slt_schema_error_t errs[8];
    size_t nerrs = 0;
    if (!to || slt_schema_validate(to, output, errs, 8, &nerrs) == 0)
        return true;
    size_t k = (size_t) snprintf(why, len, "the output breaks %s: ", slt_map_to(map));
    for (size_t i = 0; i < nerrs && k < len; i++)
        k += (size_t) snprintf(why + k, len - k, "%s%s: %s", i ? "; " : "",
                               errs[i].pointer[0] ? errs[i].pointer : "/", errs[i].rule);
    return false;
}

static void s_work_free(s_work_t *m)
{
    free(m->topic);
    free(m->payload);
    cJSON_Delete(m->lineage);
}

int cli_route_message(cli_route_world_t *w, const slt_route_table_t *table,
                      const cli_route_input_t *in, cli_route_outcome_t *o)
{
    s_work_t *queue = cli_xmalloc(sizeof *queue);
    size_t head = 0, tail = 0;
    int rc = 0;
    char why[2048];
    s_work_t first = { cli_xstrdup(in->topic), cli_xmalloc(in->len + 1), in->len,
                       in->content_type, NULL, 0 };
    if (in->len)
        memcpy(first.payload, in->payload, in->len);
    first.payload[in->len] = '\0';
    queue[tail++] = first;
    /* Breadth first: the order in which the broker makes derived messages. */
    while (head < tail) {
        s_work_t m = queue[head++];
        cJSON *meta = cJSON_CreateObject();
        cJSON_AddStringToObject(meta, "topic", m.topic);
        cJSON_AddNumberToObject(meta, "offset", (double) in->offset);
        cJSON_AddItemToObject(meta, "headers", in->headers ? cJSON_Duplicate(in->headers, true)
                                                           : cJSON_CreateObject());
        if (m.lineage)
            cJSON_AddItemToObject(meta, "lineage", cJSON_Duplicate(m.lineage, true));
        slt_route_msg_t msg = { m.topic, m.payload, m.len, m.content_type, meta };
        slt_route_result_t res = { 0 };
        if (slt_route_eval(table, &msg, &res) != 0)
            rc = SL_ENOMEM;
        for (size_t i = 0; rc == 0 && i < res.nsteps; i++) {
            const slt_route_step_t *s = &res.steps[i];
            const char *route = slt_route_name(table, s->route);
            if (s->outcome == SLT_ROUTE_SKIPPED)
                continue;
            if (head == 1)
                o->routed = true;
            s_fired(o, route);
            if (s->outcome == SLT_ROUTE_FAILED) {
                s_dlq(o, route, s->reason ? slt_route_reason(s->reason, route) : "failed");
                continue;
            }
            if (s->action == SLT_ROUTE_DROP) {   /* or the mapping's drop_if */
                o->dropped = true;
                continue;
            }
            if (s->action == SLT_ROUTE_DLQ) {
                s_dlq(o, route, s->reason ? s->reason : "");
                continue;
            }
            if (s->output && !s_valid(w, s->map, s->output, why, sizeof why)) {
                s_dlq(o, route, why);
                continue;
            }
            for (size_t t = 0; t < s->ntargets; t++) {
                const char *target = s->targets[t];
                /* The broker's words (sld_route_ingest.c). */
                if (s_passed(&m, target)) {
                    snprintf(why, sizeof why, "routing loop: %s is already in the "
                             "message's path", target);
                    s_dlq(o, route, why);
                    continue;
                }
                if (m.hops + 1 > S_HOPS_MAX) {
                    snprintf(why, sizeof why, "routing chain longer than %d hops: not "
                             "routed to %s", S_HOPS_MAX, target);
                    s_dlq(o, route, why);
                    continue;
                }
                s_work_t d = { cli_xstrdup(target), NULL, 0,
                               s->output ? NULL : m.content_type,
                               s_lineage(&m, in->offset, route, s->mapping, target),
                               m.hops + 1 };
                if (s->output) {
                    if (slt_doc_encode(s->output, &d.payload, &d.len) != 0) {
                        s_work_free(&d);
                        rc = SL_ENOMEM;
                        break;
                    }
                }
                else {
                    d.payload = cli_xmalloc(m.len + 1);
                    memcpy(d.payload, m.payload, m.len);
                    d.payload[m.len] = '\0';
                    d.len = m.len;
                }
                s_leg(o, target, route, s_payload_doc(d.payload, d.len), NULL);
                queue = cli_xrealloc(queue, (tail + 1) * sizeof *queue);
                queue[tail++] = d;
            }
        }
        slt_route_result_free(&res);
        cJSON_Delete(meta);
        s_work_free(&m);
    }
    for (; head < tail; head++)
        s_work_free(&queue[head]);
    free(queue);
    return rc;
}
