/*  cli_routes_test - `sluice routes test`: runs a fixture file
 *  (docs/routing.md, "Fixtures") through a routing table OFFLINE, the way
 *  the broker would route each case's message (derived messages routed in
 *  turn, loops and hop limits as at ingest), and prints a readable
 *  difference for every case that does not give what it says. Also the
 *  check `routes apply --test` runs before it sends anything.
 *  Routes each message with cli_route_run.c (the slt engines the broker
 *  runs); this file reads the fixture, mappings and schemas from files and
 *  checks the cases. Talks to no broker. Single-threaded.  */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <libfyaml.h>
#include "cli.h"
#include "cli_route_run.h"
#include "slc.h"
#include "slt_doc.h"
#include "slt_map.h"
#include "slt_map_schema.h"
#include "slt_route.h"
#include "slt_schema.h"

enum { S_OPT_ROUTES = CLI_OPT_OWN, S_OPT_MAPPINGS, S_OPT_SCHEMAS };

#define S_FILE_MAX (4 * 1024 * 1024)
#define S_ERR_MAX 16384
#define S_DLQ_TOPIC CLI_ROUTE_DLQ_TOPIC

/* ------------------------------------------------------------ the world */

/* What a run knows: the mappings and schemas it read (cli_route_run.c),
 * where schemas are read from, the topic bindings the fixture declares,
 * and the compiled table. */
typedef struct {
    cli_route_world_t rw;
    char *schemas_dir;          /* NULL: schemas unknown (nothing validated) */
    struct fy_node *bindings;   /* fixture's `bindings:` (topic -> SUBJECT@VERSION) */
    slt_route_table_t *table;
} s_world_t;

/* PATH as given when absolute, or when RELATIVE_TO is NULL; else beside
 * RELATIVE_TO (a file). Caller frees. */
static char *s_path(const char *path, const char *relative_to)
{
    char buf[8192];
    if (path[0] == '/' || !relative_to)
        return cli_xstrdup(path);
    char *copy = cli_xstrdup(relative_to);
    snprintf(buf, sizeof buf, "%s/%s", dirname(copy), path);
    free(copy);
    return cli_xstrdup(buf);
}

/* Schema REF's text from the schemas directory (cli_route_schema_text_fn). */
static char *s_schema_text(void *arg, const char *ref, size_t *len)
{
    s_world_t *w = arg;
    char path[8192];
    if (!w->schemas_dir)
        return NULL;
    snprintf(path, sizeof path, "%s/%s.json", w->schemas_dir, ref);
    char *text = cli_read_file(path, S_FILE_MAX, len);
    if (!text)
        fprintf(stderr, "sluice %s: cannot read schema %s: %s\n", w->rw.cmd, path,
                strerror(errno));
    return text;
}

static const char *s_scalar(struct fy_node *parent, const char *key)
{
    struct fy_node *n = parent ? fy_node_mapping_lookup_by_string(parent, key, FY_NT) : NULL;
    return n && fy_node_is_scalar(n) ? fy_node_get_scalar0(n) : NULL;
}

static const char *s_binding(void *arg, const char *topic)
{
    s_world_t *w = arg;
    return s_scalar(w->bindings, topic);
}

static bool s_yaml_name(const char *name)
{
    size_t n = strlen(name);
    if (n > 10 && strcmp(name + n - 10, ".test.yaml") == 0)
        return false;           /* a mapping's fixtures, not a mapping */
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0)
           || (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

/* Compile every mapping file (*.yaml, *.yml) in DIR, checked against its
 * `from` schema when the schemas are known. One that does not compile is
 * reported and left out: a route naming it is then refused by the table's
 * compilation. 0, or -1 when DIR cannot be read. */
static int s_load_mappings(s_world_t *w, const char *dir)
{
    char path[8192];
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d) {
        fprintf(stderr, "sluice %s: cannot read mappings directory %s: %s\n", w->rw.cmd, dir,
                strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !s_yaml_name(e->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len = 0;
        char *yaml = cli_read_file(path, S_FILE_MAX, &len);
        if (!yaml) {
            fprintf(stderr, "sluice %s: cannot read %s: %s\n", w->rw.cmd, path,
                    strerror(errno));
            continue;
        }
        (void) cli_route_add_mapping(&w->rw, yaml, len, path);  /* said why when not */
        free(yaml);
    }
    closedir(d);
    return 0;
}

static void s_world_free(s_world_t *w)
{
    slt_route_destroy(&w->table);
    cli_route_world_free(&w->rw);
    free(w->schemas_dir);
}

typedef cli_route_outcome_t s_outcome_t;

/* A case's message (its strings owned). */
typedef struct {
    char *topic;
    char *payload;              /* NUL-terminated */
    size_t len;
} s_msg_t;

/* ----------------------------------------------------- checking a case */

/* NODE (YAML) as a JSON value (caller owns), or NULL with ERR set. */
static cJSON *s_json(struct fy_node *node, char *err, size_t errlen)
{
    cJSON *v = NULL;
    char *text = fy_emit_node_to_string(node, FYECF_MODE_JSON_ONELINE);
    if (!text)
        snprintf(err, errlen, "out of memory");
    else if (slt_doc_parse(text, strlen(text), &v, err, errlen) != 0)
        v = NULL;
    free(text);
    return v;
}

static char *s_text(const cJSON *v)
{
    char *text = NULL;
    return v && slt_doc_encode(v, &text, NULL) == 0 ? text : cli_xstrdup("(nothing)");
}

/* A case's failure lines gather here: printed under FAIL. */
typedef struct {
    char *buf;
    size_t len;
    int lines;
} s_report_t;

static void s_say(s_report_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_say(s_report_t *r, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    if (++r->lines > 40)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t n = strlen(line);
    r->buf = cli_xrealloc(r->buf, r->len + n + 8);
    memcpy(r->buf + r->len, "      ", 6);
    memcpy(r->buf + r->len + 6, line, n);
    r->len += n + 6;
    r->buf[r->len++] = '\n';
    r->buf[r->len] = '\0';
}

/* Where WANT and GOT differ, one line per difference under PATH. */
static void s_diff(s_report_t *r, const char *path, const cJSON *want, const cJSON *got)
{
    if (cJSON_Compare(want, got, true))
        return;
    if (cJSON_IsObject(want) && cJSON_IsObject(got)) {
        const cJSON *v;
        char sub[1024];
        cJSON_ArrayForEach(v, want) {
            snprintf(sub, sizeof sub, "%s/%s", path, v->string);
            const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, v->string);
            if (!g) {
                char *t = s_text(v);
                s_say(r, "%s: missing (expected %s)", sub, t);
                free(t);
            }
            else
                s_diff(r, sub, v, g);
        }
        cJSON_ArrayForEach(v, got)
            if (!cJSON_GetObjectItemCaseSensitive(want, v->string)) {
                char *t = s_text(v);
                s_say(r, "%s/%s: not expected (got %s)", path, v->string, t);
                free(t);
            }
        return;
    }
    char *wt = s_text(want), *gt = s_text(got);
    s_say(r, "%s: expected %s, got %s", path, wt, gt);
    free(wt);
    free(gt);
}

static size_t s_count_on(const s_outcome_t *o, const char *topic, const cJSON **first)
{
    size_t n = 0;
    for (size_t i = 0; i < o->nlegs; i++)
        if (strcmp(o->legs[i].topic, topic) == 0 && n++ == 0 && first)
            *first = o->legs[i].doc;
    return n;
}

/* The `output:` expectation: every named topic got what it says. */
static void s_check_output(s_report_t *r, const s_outcome_t *o, struct fy_node *output)
{
    void *it = NULL;
    struct fy_node_pair *p;
    char err[512];
    if (!fy_node_is_mapping(output)) {
        s_say(r, "output: a map of TOPIC: expected message");
        return;
    }
    while ((p = fy_node_mapping_iterate(output, &it)) != NULL) {
        const char *topic = fy_node_get_scalar0(fy_node_pair_key(p));
        cJSON *want = s_json(fy_node_pair_value(p), err, sizeof err);
        const cJSON *got = NULL;
        size_t n = topic ? s_count_on(o, topic, &got) : 0;
        if (!topic || !want)
            s_say(r, "output: %s", !topic ? "a topic name as key" : err);
        else if (n == 0)
            s_say(r, "%s: expected a message, got none", topic);
        else if (n == 1)
            s_diff(r, topic, want, got);
        else if (!cJSON_IsArray(want) || (size_t) cJSON_GetArraySize(want) != n)
            s_say(r, "%s: expected 1 message, got %zu (list them to expect several)", topic, n);
        else {
            /* Several messages on one topic: the list, in the order made. */
            size_t k = 0;
            char sub[600];
            for (size_t i = 0; i < o->nlegs; i++)
                if (strcmp(o->legs[i].topic, topic) == 0) {
                    snprintf(sub, sizeof sub, "%s[%zu]", topic, k);
                    s_diff(r, sub, cJSON_GetArrayItem(want, (int) k++), o->legs[i].doc);
                }
        }
        cJSON_Delete(want);
    }
}

/* One string or a list of strings: each passed to FN with ARG. */
static void s_each_string(s_report_t *r, const char *key, struct fy_node *n,
                          void (*fn)(s_report_t *, const s_outcome_t *, const char *),
                          const s_outcome_t *o)
{
    if (fy_node_is_scalar(n)) {
        fn(r, o, fy_node_get_scalar0(n));
        return;
    }
    if (!fy_node_is_sequence(n)) {
        s_say(r, "%s: a string or a list of strings", key);
        return;
    }
    void *it = NULL;
    struct fy_node *e;
    while ((e = fy_node_sequence_iterate(n, &it)) != NULL) {
        if (fy_node_is_scalar(e))
            fn(r, o, fy_node_get_scalar0(e));
        else
            s_say(r, "%s: a string or a list of strings", key);
    }
}

static void s_check_nothing_on(s_report_t *r, const s_outcome_t *o, const char *topic)
{
    const cJSON *got = NULL;
    size_t n = s_count_on(o, topic, &got);
    if (n == 0)
        return;
    if (strcmp(topic, S_DLQ_TOPIC) == 0) {
        for (size_t i = 0; i < o->nlegs; i++)
            if (o->legs[i].text)
                s_say(r, "%s: expected nothing, got a leg (%s)", topic, o->legs[i].text);
        return;
    }
    char *t = s_text(got);
    s_say(r, "%s: expected nothing, got %zu message%s (first: %s)", topic, n,
          n == 1 ? "" : "s", t);
    free(t);
}

static void s_check_dead_letter(s_report_t *r, const s_outcome_t *o, const char *want)
{
    bool any = false;
    for (size_t i = 0; i < o->nlegs; i++)
        if (o->legs[i].text) {
            any = true;
            if (strstr(o->legs[i].text, want))
                return;
        }
    s_say(r, "%s: expected a leg containing \"%s\", got %s", S_DLQ_TOPIC, want,
          any ? "only:" : "none");
    for (size_t i = 0; i < o->nlegs; i++)
        if (o->legs[i].text)
            s_say(r, "  %s", o->legs[i].text);
}

/* "true"/"false" of a YAML scalar; -1 otherwise. */
static int s_bool(struct fy_node *n)
{
    const char *v = n && fy_node_is_scalar(n) ? fy_node_get_scalar0(n) : NULL;
    if (v && strcmp(v, "true") == 0)
        return 1;
    if (v && strcmp(v, "false") == 0)
        return 0;
    return -1;
}

static const char *const s_case_keys[] = {
    "name", "topic", "input", "payload", "headers", "offset",
    "output", "nothing_on", "dropped", "dead_letter", "unrouted", NULL,
};

/* The message of case C into *M (caller frees its strings); HEADERS as
 * JSON (caller owns; may stay NULL). false after a report line. */
static bool s_message(s_report_t *r, struct fy_node *c, s_msg_t *m, cJSON **headers,
                      uint64_t *offset)
{
    char err[512];
    const char *topic = s_scalar(c, "topic");
    struct fy_node *input = fy_node_mapping_lookup_by_string(c, "input", FY_NT);
    struct fy_node *hdrs = fy_node_mapping_lookup_by_string(c, "headers", FY_NT);
    const char *payload = s_scalar(c, "payload"), *off = s_scalar(c, "offset");
    memset(m, 0, sizeof *m);
    if (!topic || slc_topic_validate(topic, false) != 0) {
        s_say(r, "topic: the case needs the topic its message is published on");
        return false;
    }
    if (!!input == !!payload) {
        s_say(r, "the case needs one of input (a JSON document) or payload (raw text)");
        return false;
    }
    if (off && cli_parse_u64(off, offset) != 0) {
        s_say(r, "offset: a number");
        return false;
    }
    if (hdrs && (!fy_node_is_mapping(hdrs) || !(*headers = s_json(hdrs, err, sizeof err)))) {
        s_say(r, "headers: a map of strings");
        return false;
    }
    if (input) {
        cJSON *doc = s_json(input, err, sizeof err);
        if (!doc) {
            s_say(r, "input: %s", err);
            return false;
        }
        if (slt_doc_encode(doc, &m->payload, &m->len) != 0)
            m->payload = NULL;
        cJSON_Delete(doc);
        if (!m->payload)
            return false;
    }
    else {
        m->payload = cli_xstrdup(payload);
        m->len = strlen(payload);
    }
    m->topic = cli_xstrdup(topic);
    return true;
}

/* Run case C; true when it passed. */
static bool s_case(s_world_t *w, struct fy_node *c, int index)
{
    s_report_t r = { 0 };
    s_outcome_t o = { 0 };
    s_msg_t m = { 0 };
    cJSON *headers = NULL;
    uint64_t offset = 0;
    char name[300];
    const char *n = s_scalar(c, "name");
    if (n)
        snprintf(name, sizeof name, "%s", n);
    else
        snprintf(name, sizeof name, "case %d", index + 1);
    if (!fy_node_is_mapping(c)) {
        s_say(&r, "a case is a map (name, topic, input, expectations)");
        goto done;
    }
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(c, &it)) != NULL) {
        const char *key = fy_node_get_scalar0(fy_node_pair_key(p));
        size_t k = 0;
        while (s_case_keys[k] && (!key || strcmp(key, s_case_keys[k]) != 0))
            k++;
        if (!s_case_keys[k])
            s_say(&r, "unknown key '%s' (%s)", key ? key : "?",
                  "name, topic, input, payload, headers, offset, output, nothing_on, "
                  "dropped, dead_letter, unrouted");
    }
    if (r.lines || !s_message(&r, c, &m, &headers, &offset))
        goto done;
    cli_route_input_t in = { m.topic, m.payload, m.len, NULL, headers, offset };
    if (cli_route_message(&w->rw, w->table, &in, &o) != 0) {
        s_say(&r, "out of memory");
        goto done;
    }
    struct fy_node *output = fy_node_mapping_lookup_by_string(c, "output", FY_NT);
    struct fy_node *nothing = fy_node_mapping_lookup_by_string(c, "nothing_on", FY_NT);
    struct fy_node *dead = fy_node_mapping_lookup_by_string(c, "dead_letter", FY_NT);
    struct fy_node *dropped = fy_node_mapping_lookup_by_string(c, "dropped", FY_NT);
    struct fy_node *unrouted = fy_node_mapping_lookup_by_string(c, "unrouted", FY_NT);
    if (!output && !nothing && !dead && !dropped && !unrouted) {
        s_say(&r, "the case expects nothing: give output, nothing_on, dropped, "
              "dead_letter or unrouted");
        goto done;
    }
    if (output)
        s_check_output(&r, &o, output);
    if (nothing)
        s_each_string(&r, "nothing_on", nothing, s_check_nothing_on, &o);
    if (dead)
        s_each_string(&r, "dead_letter", dead, s_check_dead_letter, &o);
    else
        /* A failure nobody expected is what a fixture is for. */
        for (size_t i = 0; i < o.nlegs; i++)
            if (o.legs[i].text)
                s_say(&r, "%s: not expected: %s", S_DLQ_TOPIC, o.legs[i].text);
    if (dropped) {
        int want = s_bool(dropped);
        if (want < 0)
            s_say(&r, "dropped: true or false");
        else if (want != o.dropped)
            s_say(&r, "dropped: expected %s, got %s", want ? "a drop route to fire" : "no drop",
                  o.dropped ? "a drop" : "no drop route fired");
    }
    if (unrouted) {
        int want = s_bool(unrouted);
        if (want < 0)
            s_say(&r, "unrouted: true or false");
        else if (want == o.routed)
            s_say(&r, "unrouted: expected %s", want ? "no route to fire, but one did"
                                                    : "a route to fire, none did");
    }
done:
    if (r.lines)
        printf("FAIL %s\n%s%s", name, r.buf ? r.buf : "",
               r.lines > 40 ? "      ... (more differences left out)\n" : "");
    else
        printf("PASS %s\n", name);
    bool ok = r.lines == 0;
    free(r.buf);
    cJSON_Delete(headers);
    cli_route_outcome_free(&o);
    free(m.topic);
    free(m.payload);
    return ok;
}

/* ------------------------------------------------------- the fixtures */

static const char *const s_top_keys[] = {
    "routes", "mappings", "schemas", "bindings", "cases", NULL,
};

int cli_routes_fixtures(const char *cmd, const char *file, const char *routes,
                        const char *mappings, const char *schemas)
{
    s_world_t w = { .rw = { .cmd = cmd, .schema_text = s_schema_text,
                            .binding = s_binding } };
    w.rw.arg = &w;
    char *table_path = NULL, *maps_dir = NULL, *yaml = NULL, *err = NULL;
    int rc = CLI_EXIT_NOTRUN, passed = 0, failed = 0;
    struct fy_document *doc = NULL;
    struct fy_node *root = NULL, *cases = NULL;
    char *text = cli_read_file(file, S_FILE_MAX, NULL);
    if (!text) {
        fprintf(stderr, "sluice %s: cannot read %s: %s\n", cmd, file, strerror(errno));
        goto fail;
    }
    doc = fy_document_build_from_string(NULL, text, FY_NT);
    /* Anchors and aliases (&x / *x) are resolved here: a case may reuse
     * another's input or output. */
    if (doc && fy_document_resolve(doc) != 0) {
        fprintf(stderr, "sluice %s: %s: an alias names no anchor\n", cmd, file);
        goto fail;
    }
    root = doc ? fy_document_root(doc) : NULL;
    if (!root || !fy_node_is_mapping(root)) {
        fprintf(stderr, "sluice %s: %s is not a YAML map (routes, cases, ...)\n", cmd, file);
        goto fail;
    }
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(root, &it)) != NULL) {
        const char *key = fy_node_get_scalar0(fy_node_pair_key(p));
        size_t k = 0;
        while (s_top_keys[k] && (!key || strcmp(key, s_top_keys[k]) != 0))
            k++;
        if (!s_top_keys[k]) {
            fprintf(stderr, "sluice %s: %s: unknown key '%s' (routes, mappings, schemas, "
                    "bindings, cases)\n", cmd, file, key ? key : "?");
            goto fail;
        }
    }
    cases = fy_node_mapping_lookup_by_string(root, "cases", FY_NT);
    w.bindings = fy_node_mapping_lookup_by_string(root, "bindings", FY_NT);
    if (!cases || !fy_node_is_sequence(cases)) {
        fprintf(stderr, "sluice %s: %s needs `cases:`, a list\n", cmd, file);
        goto fail;
    }
    if (w.bindings && !fy_node_is_mapping(w.bindings)) {
        fprintf(stderr, "sluice %s: %s: `bindings:` is a map TOPIC: SUBJECT@VERSION\n", cmd,
                file);
        goto fail;
    }
    /* Flags name paths from here; the fixture, paths beside itself. */
    const char *in_file = s_scalar(root, "routes");
    if (!routes && !in_file) {
        fprintf(stderr, "sluice %s: no table: give --routes FILE or `routes:` in %s\n", cmd,
                file);
        goto fail;
    }
    table_path = routes ? cli_xstrdup(routes) : s_path(in_file, file);
    in_file = s_scalar(root, "schemas");
    w.schemas_dir = schemas ? cli_xstrdup(schemas) : in_file ? s_path(in_file, file) : NULL;
    in_file = s_scalar(root, "mappings");
    maps_dir = mappings ? cli_xstrdup(mappings) : in_file ? s_path(in_file, file) : NULL;
    if (maps_dir && s_load_mappings(&w, maps_dir) != 0)
        goto fail;

    size_t len = 0;
    yaml = cli_read_file(table_path, SLT_ROUTE_YAML_MAX, &len);
    if (!yaml) {
        fprintf(stderr, "sluice %s: cannot read %s: %s\n", cmd, table_path,
                errno == EFBIG ? "larger than 4 MiB" : strerror(errno));
        goto fail;
    }
    slt_route_resolver_t resolver = cli_route_resolver(&w.rw);
    err = cli_xmalloc(S_ERR_MAX);
    err[0] = '\0';
    int crc = slt_route_compile(yaml, len, table_path, &resolver, &w.table, err, S_ERR_MAX);
    if (crc != 0) {
        fprintf(stderr, "%s%ssluice %s: %s: the table is refused (%s)\n", err,
                *err && err[strlen(err) - 1] != '\n' ? "\n" : "", cmd, table_path,
                cli_code_name(crc));
        goto fail;
    }
    void *ci = NULL;
    struct fy_node *c;
    int index = 0;
    while ((c = fy_node_sequence_iterate(cases, &ci)) != NULL) {
        if (s_case(&w, c, index++))
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed (%s against %s)\n", passed, failed, file, table_path);
    rc = failed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
fail:
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK)
        rc = CLI_EXIT_FAILED;
    s_world_free(&w);
    if (doc)
        fy_document_destroy(doc);
    free(text);
    free(yaml);
    free(err);
    free(table_path);
    free(maps_dir);
    return rc;
}

/* ------------------------------------------------------ the command */

static const char s_usage[] =
    "usage: sluice routes test FIXTURES [--routes FILE] [--mappings DIR]\n"
    "                          [--schemas DIR]\n"
    "\n"
    "Route the cases of a fixture file through a routing table the way the\n"
    "broker would, offline (no broker), and check what each case expects:\n"
    "\n"
    "  routes: shop.routes.yaml      # the table, beside this file\n"
    "  mappings: mappings            # optional: a directory of mapping files\n"
    "  schemas: schemas              # optional: SUBJECT@VERSION.json files\n"
    "  bindings: {shop.orders: shop.order@1}   # optional: topic schemas\n"
    "  cases:\n"
    "    - name: an EU order\n"
    "      topic: shop.orders\n"
    "      input: {id: A1, region: EU}\n"
    "      output: {audit.orders: {id: A1, region: EU}}\n"
    "      nothing_on: [shop.orders.us]\n"
    "    - name: test orders\n"
    "      topic: shop.orders\n"
    "      input: {id: T1, test: true}\n"
    "      dropped: true\n"
    "    - name: no id\n"
    "      topic: shop.orders\n"
    "      input: {region: EU}\n"
    "      dead_letter: order without id\n"
    "\n"
    "Prints PASS or FAIL per case with the differences (case, topic,\n"
    "expected and got). docs/routing.md, \"Fixtures\", has every key.\n"
    "\n"
    "  --routes FILE           the table to test (instead of `routes:`)\n"
    "  --mappings DIR          mapping files (instead of `mappings:`)\n"
    "  --schemas DIR           schema files (instead of `schemas:`)\n"
    "\n"
    "Exit codes: 0 every case passed, 1 a case failed, 2 nothing could be\n"
    "tested (a file unreadable or invalid, the table refused), 64 usage.\n";

typedef struct {
    const char *routes, *mappings, *schemas;
} s_opts_t;

static int s_on_option(void *self_, cli_ctx_t *ctx, int opt, const char *arg)
{
    s_opts_t *self = self_;
    switch (opt) {
    case S_OPT_ROUTES:
        self->routes = arg;
        return CLI_EXIT_OK;
    case S_OPT_MAPPINGS:
        self->mappings = arg;
        return CLI_EXIT_OK;
    case S_OPT_SCHEMAS:
        self->schemas = arg;
        return CLI_EXIT_OK;
    default:
        return cli_usage_error(ctx, "unexpected option");
    }
}

int cli_routes_test(int argc, char **argv)
{
    /* The connection options are taken (and ignored) so that a wrapper
     * that always passes --broker can run the fixtures too. */
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "routes", required_argument, NULL, S_OPT_ROUTES },
        { "mappings", required_argument, NULL, S_OPT_MAPPINGS },
        { "schemas", required_argument, NULL, S_OPT_SCHEMAS },
        { NULL, 0, NULL, 0 },
    };
    s_opts_t self = { 0 };
    cli_ctx_t ctx;
    int rc;
    cli_ctx_init(&ctx, "routes test", s_usage);
    ctx.offline = true;
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, 1, 1, &rc))
        return rc;
    return cli_routes_fixtures(ctx.cmd, ctx.pos[0], self.routes, self.mappings, self.schemas);
}
