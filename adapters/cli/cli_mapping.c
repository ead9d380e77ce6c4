/*  cli_mapping - the mapping subcommands of `sluice`: add / list / show /
 *  rm (one request each through the SDK) and `mapping test`, which runs a
 *  fixture file (FILE.test.yaml) through a mapping and prints a readable
 *  difference for every case that does not give what it says.
 *
 *  `mapping test` is the one part of the command that does not talk to the
 *  broker when it need not: with --schemas DIR it compiles the mapping and
 *  reads the schemas from files, so a user's own CI can run it offline. It
 *  therefore links the shared engines (slt_map, slt_schema) directly, the
 *  same code the broker runs, rather than only sluice.h. Single-threaded.  */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include <libfyaml.h>
#include "cli.h"
#include "slc.h"
#include "slt_doc.h"
#include "slt_map.h"
#include "slt_map_schema.h"
#include "slt_schema.h"

enum { S_OPT_SCHEMAS = CLI_OPT_OWN, S_OPT_JSON };

/* Largest mapping, schema or fixture file read, bytes. */
#define S_FILE_MAX (4 * 1024 * 1024)
#define S_ERR_MAX 8192

typedef struct {
    const char *schemas;            /* mapping test --schemas DIR */
    bool json;                      /* mapping list --json */
} s_mapping_t;

static int s_on_option(void *self_, cli_ctx_t *ctx, int opt, const char *arg)
{
    s_mapping_t *self = self_;
    switch (opt) {
    case S_OPT_SCHEMAS:
        self->schemas = arg;
        return CLI_EXIT_OK;
    case S_OPT_JSON:
        self->json = true;
        return CLI_EXIT_OK;
    default:
        return cli_usage_error(ctx, "unexpected option");
    }
}

static char *s_slurp(const char *path, size_t *len)
{
    return cli_read_file(path, S_FILE_MAX, len);
}

/* Parse, connect, run FN with this file's option state. */
static int s_run(const char *cmd, const char *usage, int argc, char **argv,
                 const struct option *options, int npos, cli_request_fn *fn)
{
    s_mapping_t self = { 0 };
    return cli_run_request(cmd, usage, argc, argv, options, s_on_option, &self, npos, npos, fn);
}

/* ------------------------------------------------- add / list / show / rm */

static const char s_add_usage[] =
    "usage: sluice mapping add FILE [OPTIONS]\n"
    "\n"
    "Register the mapping in FILE (YAML, docs/mapping.md), replacing one of\n"
    "the same name as its next version (the same text again keeps its\n"
    "version). The broker compiles it and checks its paths and types\n"
    "against its `from` schema; every problem is printed with its line and\n"
    "column. Needs the admin permission.\n"
    CLI_COMMON_USAGE;

static const char s_list_usage[] =
    "usage: sluice mapping list [--json] [OPTIONS]\n"
    "\n"
    "List the registered mappings: name, version, from and to schemas.\n"
    "\n"
    "  --json                  one JSON object {\"mappings\": [...]}\n"
    CLI_COMMON_USAGE;

static const char s_show_usage[] =
    "usage: sluice mapping show NAME [OPTIONS]\n"
    "\n"
    "Print mapping NAME's YAML as it was registered (its name, version and\n"
    "schemas on stderr).\n"
    CLI_COMMON_USAGE;

static const char s_rm_usage[] =
    "usage: sluice mapping rm NAME [OPTIONS]\n"
    "\n"
    "Remove mapping NAME. Needs the admin permission.\n"
    CLI_COMMON_USAGE;

static int s_add_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_mapping_t *self = self_;
    sl_mapping_info_t info;
    (void) self;
    char *yaml = s_slurp(ctx->pos[0], NULL);
    if (!yaml) {
        fprintf(stderr, "sluice %s: cannot read %s: %s\n", ctx->cmd, ctx->pos[0],
                strerror(errno));
        return CLI_EXIT_FAILED;
    }
    int rc = sl_mapping_add(client, yaml, &info);
    free(yaml);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot add %s", ctx->pos[0]);
    printf("mapping %s version %" PRIu32 ": %s -> %s\n", info.name, info.version, info.from,
           info.to);
    return CLI_EXIT_OK;
}

static int s_list_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_mapping_t *self = self_;
    static const char *const headers[] = { "NAME", "VERSION", "FROM", "TO" };
    sl_mapping_info_t *list = NULL;
    size_t n = 0;
    int rc = sl_mapping_list(client, &list, &n);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot list mappings");
    if (self->json) {
        fputs("{\"mappings\":[", stdout);
        for (size_t i = 0; i < n; i++) {
            fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
            cli_json_string(stdout, list[i].name);
            printf(",\"version\":%" PRIu32 ",\"from\":", list[i].version);
            cli_json_string(stdout, list[i].from);
            fputs(",\"to\":", stdout);
            cli_json_string(stdout, list[i].to);
            fputs("}", stdout);
        }
        fputs("]}\n", stdout);
    }
    else {
        cli_table_t *table = cli_table_new(4, headers, "lrll");
        for (size_t i = 0; i < n; i++) {
            cli_table_cell(table, "%s", list[i].name);
            cli_table_cell(table, "%" PRIu32, list[i].version);
            cli_table_cell(table, "%s", list[i].from);
            cli_table_cell(table, "%s", list[i].to);
        }
        cli_table_print(table, stdout);
        cli_table_destroy(&table);
    }
    sl_mapping_list_free(list, n);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

static int s_show_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_mapping_t *self = self_;
    sl_mapping_info_t info;
    (void) self;
    int rc = sl_mapping_get(client, ctx->pos[0], &info);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot show mapping '%s'", ctx->pos[0]);
    /* stdout is the YAML as registered (adding it again changes nothing);
     * which version it is goes beside it. */
    fprintf(stderr, "mapping %s version %" PRIu32 ": %s -> %s\n", info.name, info.version,
            info.from, info.to);
    fputs(info.yaml, stdout);
    sl_mapping_info_clear(&info);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

static int s_rm_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_mapping_t *self = self_;
    (void) self;
    int rc = sl_mapping_remove(client, ctx->pos[0]);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot remove mapping '%s'", ctx->pos[0]);
    fprintf(stderr, "mapping %s removed\n", ctx->pos[0]);
    return CLI_EXIT_OK;
}

int cli_mapping_add(int argc, char **argv)
{
    static const struct option options[] = { CLI_COMMON_OPTIONS, { NULL, 0, NULL, 0 } };
    return s_run("mapping add", s_add_usage, argc, argv, options, 1, s_add_run);
}

int cli_mapping_list(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "json", no_argument, NULL, S_OPT_JSON },
        { NULL, 0, NULL, 0 },
    };
    return s_run("mapping list", s_list_usage, argc, argv, options, 0, s_list_run);
}

int cli_mapping_show(int argc, char **argv)
{
    static const struct option options[] = { CLI_COMMON_OPTIONS, { NULL, 0, NULL, 0 } };
    return s_run("mapping show", s_show_usage, argc, argv, options, 1, s_show_run);
}

int cli_mapping_rm(int argc, char **argv)
{
    static const struct option options[] = { CLI_COMMON_OPTIONS, { NULL, 0, NULL, 0 } };
    return s_run("mapping rm", s_rm_usage, argc, argv, options, 1, s_rm_run);
}

/* ---------------------------------------------------------------- test */

static const char s_test_usage[] =
    "usage: sluice mapping test FILE.test.yaml [--schemas DIR] [OPTIONS]\n"
    "\n"
    "Run the cases of a fixture file through a mapping:\n"
    "\n"
    "  mapping: shop-a-to-canonical.yaml   # a file (beside the fixture), or\n"
    "                                      # a mapping registered at the broker\n"
    "  cases:\n"
    "    - name: a plain order\n"
    "      input: {id: A1, total: 12.5}\n"
    "      output: {order_id: A1, amount_cents: 1250}\n"
    "    - name: no total\n"
    "      input: {id: A2}\n"
    "      error: total                    # a substring of the expected error\n"
    "    - name: test orders are dropped\n"
    "      input: {id: T1, total: 1, test: true}\n"
    "      dropped: true\n"
    "\n"
    "Each output is also validated against the mapping's `to` schema. Prints\n"
    "PASS or FAIL per case, with the differences; exit 1 when any case fails.\n"
    "\n"
    "  --schemas DIR           read SUBJECT@VERSION.json schemas from DIR and\n"
    "                          work offline (no broker); without it the\n"
    "                          schemas come from the broker\n"
    CLI_COMMON_USAGE;

/* A schema for REF (SUBJECT@VERSION): from DIR/REF.json when DIR, else from
 * the broker (connecting on first use). NULL after a message. */
typedef struct {
    cli_ctx_t *ctx;
    const char *dir;
    sl_client_t *client;
} s_source_t;

static slt_schema_t *s_schema(s_source_t *src, const char *ref)
{
    char subject[256], path[4096], err[S_ERR_MAX];
    uint32_t version;
    char *text = NULL;
    slt_schema_t *schema = NULL;
    if (slc_subject_ref(ref, subject, sizeof subject, &version) != 0) {
        fprintf(stderr, "sluice %s: \"%s\" is not SUBJECT@VERSION\n", src->ctx->cmd, ref);
        return NULL;
    }
    if (src->dir) {
        snprintf(path, sizeof path, "%s/%s.json", src->dir, ref);
        text = s_slurp(path, NULL);
        if (!text)
            fprintf(stderr, "sluice %s: cannot read schema %s: %s\n", src->ctx->cmd, path,
                    strerror(errno));
    }
    else {
        sl_schema_info_t info;
        int rc = src->client ? 0 : cli_connect(src->ctx, NULL, &src->client);
        if (rc == CLI_EXIT_OK && (rc = sl_schema_get(src->client, subject, version, &info)) == 0) {
            text = info.schema;
            info.schema = NULL;
        }
        else if (rc != CLI_EXIT_OK)
            cli_fail(src->ctx, rc, "cannot fetch schema %s (use --schemas DIR offline)", ref);
        snprintf(path, sizeof path, "%s (broker)", ref);
    }
    if (text && slt_schema_compile(text, strlen(text), &schema, err, sizeof err) != 0)
        fprintf(stderr, "sluice %s: schema %s does not compile: %s\n", src->ctx->cmd, path, err);
    free(text);
    return schema;
}

/* NODE (YAML) as a JSON value (caller owns: cJSON_Delete), or NULL when
 * NODE is NULL or its value is no JSON document (ERR says why then). */
static cJSON *s_json(struct fy_node *node, char *err, size_t errlen)
{
    cJSON *v = NULL;
    if (!node)
        return NULL;
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
    return slt_doc_encode(v, &text, NULL) == 0 ? text : NULL;
}

static const char *s_scalar(struct fy_node *parent, const char *key)
{
    struct fy_node *n = fy_node_mapping_lookup_by_string(parent, key, FY_NT);
    return n && fy_node_is_scalar(n) ? fy_node_get_scalar0(n) : NULL;
}

/* Print where GOT and WANT differ, one line per difference, under PATH. */
static void s_diff(const char *path, const cJSON *want, const cJSON *got, int *lines)
{
    if (*lines > 40 || cJSON_Compare(want, got, true))
        return;
    if (cJSON_IsObject(want) && cJSON_IsObject(got)) {
        const cJSON *v;
        char sub[1024];
        cJSON_ArrayForEach(v, want) {
            snprintf(sub, sizeof sub, "%s/%s", path, v->string);
            const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, v->string);
            if (!g) {
                char *w = s_text(v);
                printf("      %s: missing (expected %s)\n", sub, w ? w : "?");
                free(w);
                ++*lines;
            }
            else
                s_diff(sub, v, g, lines);
        }
        cJSON_ArrayForEach(v, got)
            if (!cJSON_GetObjectItemCaseSensitive(want, v->string)) {
                char *g = s_text(v);
                printf("      %s/%s: not expected (got %s)\n", path, v->string, g ? g : "?");
                free(g);
                ++*lines;
            }
        return;
    }
    char *w = s_text(want);
    char *g = s_text(got);
    printf("      %s: expected %s, got %s\n", *path ? path : "/", w ? w : "?", g ? g : "?");
    free(w);
    free(g);
    ++*lines;
}

/* Run one case; true when it passed. */
static bool s_case(const slt_map_t *map, const slt_schema_t *to, struct fy_node *c, int index)
{
    char err[S_ERR_MAX] = "", name[300];
    const char *n = s_scalar(c, "name");
    snprintf(name, sizeof name, "%s", n ? n : "");
    if (!n)
        snprintf(name, sizeof name, "case %d", index + 1);
    char ierr[256] = "", oerr[256] = "";
    cJSON *input = s_json(fy_node_mapping_lookup_by_string(c, "input", FY_NT), ierr, sizeof ierr);
    cJSON *want = s_json(fy_node_mapping_lookup_by_string(c, "output", FY_NT), oerr, sizeof oerr);
    const char *want_error = s_scalar(c, "error");
    const char *want_dropped = s_scalar(c, "dropped");
    bool dropped = false, ok = false;
    cJSON *got = NULL;
    if (!input || *oerr) {
        printf("FAIL %s\n      %s%s\n", name, *ierr ? "input: " : *oerr ? "output: "
               : "the case has no input", *ierr ? ierr : oerr);
        goto done;
    }
    int rc = slt_map_eval(map, input, NULL, &got, &dropped, err, sizeof err);
    slt_schema_error_t errs[8];
    size_t nerrs = 0;
    if (rc == 0 && !dropped && to && slt_schema_validate(to, got, errs, 8, &nerrs) != 0) {
        size_t k = (size_t) snprintf(err, sizeof err, "the output breaks %s: ",
                                     slt_map_to(map));
        for (size_t i = 0; i < nerrs && k < sizeof err; i++)
            k += (size_t) snprintf(err + k, sizeof err - k, "%s%s: %s", i ? "; " : "",
                                   errs[i].pointer[0] ? errs[i].pointer : "/", errs[i].rule);
        rc = SL_EINVAL;
    }
    if (want_error) {
        ok = rc != 0 && strstr(err, want_error) != NULL;
        if (!ok && rc == 0)
            printf("FAIL %s\n      expected an error containing \"%s\", but it %s\n", name,
                   want_error, dropped ? "was dropped" : "mapped without one");
        else if (!ok)
            printf("FAIL %s\n      expected an error containing \"%s\", got:\n%s\n", name,
                   want_error, err);
    }
    else if (rc != 0)
        printf("FAIL %s\n      %s\n", name, err);
    else if (want_dropped && strcmp(want_dropped, "true") == 0) {
        ok = dropped;
        if (!ok)
            printf("FAIL %s\n      expected drop_if to drop it; it was mapped\n", name);
    }
    else if (dropped)
        printf("FAIL %s\n      it was dropped (drop_if)\n", name);
    else if (!want)
        printf("FAIL %s\n      the case needs output, error or dropped\n", name);
    else {
        int lines = 0;
        ok = cJSON_Compare(want, got, true);
        if (!ok) {
            printf("FAIL %s\n", name);
            s_diff("", want, got, &lines);
        }
    }
    if (ok)
        printf("PASS %s\n", name);
done:
    cJSON_Delete(input);
    cJSON_Delete(want);
    cJSON_Delete(got);
    return ok;
}

static int s_test(cli_ctx_t *ctx, const char *file, const char *schemas)
{
    char dir[4096], mpath[8192], err[S_ERR_MAX] = "";
    s_source_t src = { ctx, schemas, NULL };
    slt_map_t *map = NULL;
    slt_schema_t *from = NULL, *to = NULL;
    char *yaml = NULL;
    int rc = CLI_EXIT_FAILED, passed = 0, failed = 0;
    struct fy_document *doc = fy_document_build_from_file(NULL, file);
    struct fy_node *root = doc ? fy_document_root(doc) : NULL;
    const char *mref = root ? s_scalar(root, "mapping") : NULL;
    struct fy_node *cases = root ? fy_node_mapping_lookup_by_string(root, "cases", FY_NT) : NULL;
    if (!doc) {
        fprintf(stderr, "sluice %s: cannot read %s as YAML\n", ctx->cmd, file);
        goto fail;
    }
    if (!mref || !cases || !fy_node_is_sequence(cases)) {
        fprintf(stderr, "sluice %s: %s needs `mapping:` (a file or a name) and `cases:` "
                "(a list)\n", ctx->cmd, file);
        goto fail;
    }
    /* The mapping: a file beside the fixture, else one registered. */
    snprintf(dir, sizeof dir, "%s", file);
    snprintf(mpath, sizeof mpath, "%s/%s", dirname(dir), mref);
    struct stat st;
    size_t len = 0;
    if (stat(mpath, &st) == 0)
        yaml = s_slurp(mpath, &len);
    else if (schemas) {
        fprintf(stderr, "sluice %s: no mapping file %s (offline, with --schemas, the "
                "mapping must be a file)\n", ctx->cmd, mpath);
        goto fail;
    }
    else {
        sl_mapping_info_t info;
        int r = cli_connect(ctx, NULL, &src.client);
        if (r != CLI_EXIT_OK) {
            rc = r;
            goto fail;
        }
        if ((r = sl_mapping_get(src.client, mref, &info)) != 0) {
            rc = cli_fail(ctx, r, "no mapping file %s and no mapping '%s' at the broker",
                          mpath, mref);
            goto fail;
        }
        yaml = info.yaml;
        len = strlen(yaml);
        snprintf(mpath, sizeof mpath, "%s", mref);
    }
    if (!yaml) {
        fprintf(stderr, "sluice %s: cannot read %s: %s\n", ctx->cmd, mpath, strerror(errno));
        goto fail;
    }
    /* The schemas first (named in the YAML), then one compilation against
     * the source schema, so every problem is reported together. */
    char from_ref[512], to_ref[512];
    if (slt_map_peek(yaml, len, from_ref, to_ref, sizeof from_ref) == 0 && from_ref[0]
        && to_ref[0]) {
        from = s_schema(&src, from_ref);
        to = s_schema(&src, to_ref);
        if (!from || !to)
            goto fail;
    }
    if (slt_map_compile(yaml, len, mpath, from ? slt_map_schema_types : NULL, from, &map,
                        err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        goto fail;
    }
    void *iter = NULL;
    struct fy_node *c;
    int index = 0;
    while ((c = fy_node_sequence_iterate(cases, &iter)) != NULL) {
        if (s_case(map, to, c, index++))
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed (%s)\n", passed, failed, file);
    rc = failed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
fail:
    slt_map_destroy(&map);
    slt_schema_destroy(&from);
    slt_schema_destroy(&to);
    sl_client_destroy(&src.client);
    free(yaml);
    if (doc)
        fy_document_destroy(doc);
    fflush(stdout);
    return rc;
}

int cli_mapping_test(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "schemas", required_argument, NULL, S_OPT_SCHEMAS },
        { NULL, 0, NULL, 0 },
    };
    s_mapping_t self = { 0 };
    cli_ctx_t ctx;
    int rc;
    cli_ctx_init(&ctx, "mapping test", s_test_usage);
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, 1, 1, &rc))
        return rc;
    return s_test(&ctx, ctx.pos[0], self.schemas);
}
