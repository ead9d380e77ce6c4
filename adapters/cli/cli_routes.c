/*  cli_routes - the routing-table subcommands of `sluice` that talk to the
 *  broker: apply (optionally after the fixtures pass, cli_routes_test.c),
 *  list, show, diff (versions or files, diffed here with slt_route_diff)
 *  rollback and backfill (a request per chunk, with a progress line). One
 *  request each through the SDK, except diff, which
 *  fetches what it compares and compiles both sides without resolving
 *  mappings (a diff is about the routes, not whether their mappings exist)
 *  and, with --replay, hands both tables to cli_routes_replay.c.
 *  Single-threaded. docs/routing.md, "Commands".  */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "slc.h"
#include "slt_route.h"

enum {
    S_OPT_DRY_RUN = CLI_OPT_OWN,
    S_OPT_EXPECT,
    S_OPT_TEST,
    S_OPT_MAPPINGS,
    S_OPT_SCHEMAS,
    S_OPT_JSON,
    S_OPT_REPLAY,
    S_OPT_LAST,
    S_OPT_TOPIC,
    S_OPT_FROM,
    S_OPT_BATCH,
};

#define S_LAST_DEFAULT 100      /* diff --replay without --last */

#define S_ERR_MAX 16384

typedef struct {
    bool dry_run;
    uint32_t expect;            /* --expect-version; 0 = any */
    const char *test;           /* apply --test FIXTURES */
    const char *mappings;
    const char *schemas;
    bool json;                  /* list --json */
    const char *replay;         /* diff --replay TOPIC */
    uint64_t last;              /* diff --last N; 0 = not given */
    const char *topic;          /* backfill --topic */
    const char *from;           /* backfill --from, as given */
    uint64_t from_offset, from_time_us;         /* what it says (time 0: an offset) */
    uint64_t batch;             /* backfill --batch; 0 = the broker's default */
} s_routes_t;

/* A version number: 1 .. UINT32_MAX. */
static int s_version(const char *text, uint32_t *out)
{
    uint64_t v;
    if (cli_parse_u64(text, &v) != 0 || v == 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t) v;
    return 0;
}

static int s_on_option(void *self_, cli_ctx_t *ctx, int opt, const char *arg)
{
    s_routes_t *self = self_;
    switch (opt) {
    case S_OPT_DRY_RUN:
        self->dry_run = true;
        return CLI_EXIT_OK;
    case S_OPT_EXPECT:
        if (s_version(arg, &self->expect) != 0)
            return cli_usage_error(ctx, "--expect-version wants a version number "
                                   "(1 or more), not '%s'", arg);
        return CLI_EXIT_OK;
    case S_OPT_TEST:
        self->test = arg;
        return CLI_EXIT_OK;
    case S_OPT_MAPPINGS:
        self->mappings = arg;
        return CLI_EXIT_OK;
    case S_OPT_SCHEMAS:
        self->schemas = arg;
        return CLI_EXIT_OK;
    case S_OPT_JSON:
        self->json = true;
        return CLI_EXIT_OK;
    case S_OPT_REPLAY:
        if (slc_topic_validate(arg, true) != 0)
            return cli_usage_error(ctx, "--replay wants a topic name (no wildcards), "
                                   "not '%s'", arg);
        self->replay = arg;
        return CLI_EXIT_OK;
    case S_OPT_LAST:
        if (cli_parse_u64(arg, &self->last) != 0 || self->last == 0)
            return cli_usage_error(ctx, "--last wants a positive number, not '%s'", arg);
        return CLI_EXIT_OK;
    case S_OPT_TOPIC:
        if (slc_topic_validate(arg, true) != 0)
            return cli_usage_error(ctx, "--topic wants a topic name (no wildcards), "
                                   "not '%s'", arg);
        self->topic = arg;
        return CLI_EXIT_OK;
    case S_OPT_FROM:
        self->from = arg;
        self->from_offset = self->from_time_us = 0;
        if (strcmp(arg, "earliest") == 0 || cli_parse_u64(arg, &self->from_offset) == 0)
            return CLI_EXIT_OK;
        if (cli_parse_time_us(arg, slc_now_us(), &self->from_time_us) != 0
            || self->from_time_us == 0)
            return cli_usage_error(ctx, "--from wants an offset, earliest, an RFC 3339 time, "
                                   "a duration ago (10m) or @TIME_US, not '%s'", arg);
        return CLI_EXIT_OK;
    case S_OPT_BATCH:
        if (cli_parse_u64(arg, &self->batch) != 0 || self->batch == 0 || self->batch > 1000)
            return cli_usage_error(ctx, "--batch wants a number from 1 to 1000, not '%s'",
                                   arg);
        return CLI_EXIT_OK;
    default:
        return cli_usage_error(ctx, "unexpected option");
    }
}

/* Which positional arguments must be version numbers (checked before
 * connecting, so a typo costs no broker round trip). */
typedef enum { S_POS_ANY, S_POS_VERSIONS, S_POS_VERSIONS_OR_FILES } s_pos_t;

/* Parse, check the positional arguments, connect, run FN. */
static int s_request(const char *cmd, const char *usage, int argc, char **argv,
                     const struct option *options, s_routes_t *self, int minpos, int maxpos,
                     s_pos_t pos, cli_request_fn *fn)
{
    cli_ctx_t ctx;
    sl_client_t *client = NULL;
    struct stat st;
    uint32_t v;
    int rc;
    cli_ctx_init(&ctx, cmd, usage);
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, self, minpos, maxpos, &rc))
        return rc;
    for (int i = 0; pos != S_POS_ANY && i < ctx.npos; i++) {
        if (pos == S_POS_VERSIONS_OR_FILES && stat(ctx.pos[i], &st) == 0)
            continue;
        if (s_version(ctx.pos[i], &v) != 0)
            return cli_usage_error(&ctx, "'%s' is %s", ctx.pos[i],
                                   pos == S_POS_VERSIONS
                                       ? "not a version number (1 or more)"
                                       : "neither a file nor a version number (1 or more)");
    }
    rc = cli_connect(&ctx, NULL, &client);
    if (rc == CLI_EXIT_OK)
        rc = fn(&ctx, self, client);
    sl_client_destroy(&client);
    return rc;
}

/* A 409 for --expect-version: SL_ESTALE's own text is about delivery
 * tokens, so say what it means here, then the broker's reason. */
static int s_conflict(const cli_ctx_t *ctx, const char *what, uint32_t expect)
{
    const char *why = ctx->client ? sl_client_last_error(ctx->client) : "";
    fprintf(stderr, "sluice %s: %s: the live version is not %" PRIu32 " (someone applied "
            "in between; look with `sluice routes list`): %s (%d)%s%s\n", ctx->cmd, what,
            expect, cli_code_name(SL_ESTALE), -SL_ESTALE, *why ? ": " : "", why);
    return CLI_EXIT_FAILED;
}

static int s_finish_stdout(const cli_ctx_t *ctx)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sluice %s: cannot write to stdout\n", ctx->cmd);
        return CLI_EXIT_FAILED;
    }
    return CLI_EXIT_OK;
}

/* Print TEXT (ending it with a newline when it has none). */
static void s_print_text(const char *text)
{
    size_t n = text ? strlen(text) : 0;
    if (n == 0)
        return;
    fputs(text, stdout);
    if (text[n - 1] != '\n')
        fputc('\n', stdout);
}

/* --------------------------------------------------------------- apply */

static const char s_apply_usage[] =
    "usage: sluice routes apply FILE [--dry-run] [--expect-version V]\n"
    "                           [--test FIXTURES [--mappings DIR] [--schemas DIR]]\n"
    "                           [OPTIONS]\n"
    "\n"
    "Make the routing table in FILE (YAML, docs/routing.md) the broker's next\n"
    "version. The broker validates it whole first: a table with any error is\n"
    "refused with every error listed (FILE:LINE:COL: route NAME: field:\n"
    "reason). Prints the diff against the version it replaces, then the new\n"
    "version. Needs the admin permission.\n"
    "\n"
    "  --dry-run               validate and print the diff; change nothing\n"
    "  --expect-version V      refuse (409) unless V is the live version:\n"
    "                          nobody applied in between\n"
    "  --test FIXTURES         first run the fixture file against FILE\n"
    "                          offline (as `sluice routes test`); apply\n"
    "                          nothing unless every case passes\n"
    "  --mappings DIR, --schemas DIR  for --test, as in `routes test`\n"
    CLI_COMMON_USAGE;

static int s_apply_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_routes_t *self = self_;
    const char *file = ctx->pos[0];
    uint32_t version = 0;
    char *diff = NULL;
    bool changed = false;
    size_t len = 0;
    char *yaml = cli_read_file(file, SLT_ROUTE_YAML_MAX, &len);
    if (!yaml) {
        fprintf(stderr, "sluice %s: cannot read %s: %s\n", ctx->cmd, file,
                errno == EFBIG ? "larger than 4 MiB" : strerror(errno));
        return CLI_EXIT_FAILED;
    }
    int rc = sl_routes_apply(client, yaml, len, self->dry_run, self->expect, &version, &diff,
                             &changed);
    free(yaml);
    if (rc == SL_ESTALE) {
        char what[4200];
        snprintf(what, sizeof what, "%s not applied", file);
        rc = s_conflict(ctx, what, self->expect);
        goto fail;
    }
    if (rc != 0) {
        rc = cli_fail(ctx, rc, "%s not applied", file);
        goto fail;
    }
    s_print_text(diff);
    if (self->dry_run)
        printf("dry run: nothing applied (live version %" PRIu32 ")\n", version);
    else if (!changed)
        printf("no change: version %" PRIu32 " is live\n", version);
    else
        printf("version %" PRIu32 " is live\n", version);
    rc = s_finish_stdout(ctx);
fail:
    free(diff);
    return rc;
}

int cli_routes_apply(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "dry-run", no_argument, NULL, S_OPT_DRY_RUN },
        { "expect-version", required_argument, NULL, S_OPT_EXPECT },
        { "test", required_argument, NULL, S_OPT_TEST },
        { "mappings", required_argument, NULL, S_OPT_MAPPINGS },
        { "schemas", required_argument, NULL, S_OPT_SCHEMAS },
        { NULL, 0, NULL, 0 },
    };
    s_routes_t self = { 0 };
    cli_ctx_t ctx;
    sl_client_t *client = NULL;
    int rc;
    cli_ctx_init(&ctx, "routes apply", s_apply_usage);
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, 1, 1, &rc))
        return rc;
    if (!self.test && (self.mappings || self.schemas))
        return cli_usage_error(&ctx, "--mappings and --schemas go with --test");
    /* The fixtures run before anything is sent: a table that fails them
     * never reaches the broker. */
    if (self.test) {
        rc = cli_routes_fixtures(ctx.cmd, self.test, ctx.pos[0], self.mappings,
                                 self.schemas);
        if (rc != CLI_EXIT_OK) {
            fprintf(stderr, "sluice %s: %s %s; nothing applied\n", ctx.cmd, self.test,
                    rc == CLI_EXIT_FAILED ? "has failing cases" : "could not be run");
            return CLI_EXIT_FAILED;
        }
    }
    rc = cli_connect(&ctx, NULL, &client);
    if (rc == CLI_EXIT_OK)
        rc = s_apply_run(&ctx, &self, client);
    sl_client_destroy(&client);
    return rc;
}

/* ---------------------------------------------------------------- list */

static const char s_list_usage[] =
    "usage: sluice routes list [--json] [OPTIONS]\n"
    "\n"
    "List every version of the routing table, oldest first: version, when\n"
    "and by whom it was applied, how many routes, and what it was made from\n"
    "(a rollback). The live version is marked '*'.\n"
    "\n"
    "  --json                  one JSON object {\"live\": N, \"versions\": [...]}\n"
    CLI_COMMON_USAGE;

static int s_list_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_routes_t *self = self_;
    static const char *const headers[] = { "", "VERSION", "APPLIED", "BY", "ROUTES", "NOTE" };
    sl_routes_info_t *list = NULL;
    size_t n = 0;
    uint32_t live = 0;
    char when[40];
    int rc = sl_routes_list(client, &list, &n, &live);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot list the routing table's versions");
    if (self->json) {
        printf("{\"live\":%" PRIu32 ",\"versions\":[", live);
        for (size_t i = 0; i < n; i++) {
            cli_format_time(list[i].applied_us, when, sizeof when);
            printf("%s{\"version\":%" PRIu32 ",\"applied\":\"%s\",\"identity\":", i ? "," : "",
                   list[i].version, when);
            cli_json_string(stdout, list[i].identity);
            printf(",\"routes\":%" PRIu32 ",\"rollback_of\":%" PRIu32 "}", list[i].routes,
                   list[i].rollback_of);
        }
        fputs("]}\n", stdout);
    }
    else if (n == 0)
        fputs("no routing table applied yet (sluice routes apply FILE)\n", stdout);
    else {
        cli_table_t *table = cli_table_new(6, headers, "lrllrl");
        for (size_t i = 0; i < n; i++) {
            cli_format_time(list[i].applied_us, when, sizeof when);
            cli_table_cell(table, "%s", list[i].version == live ? "*" : "");
            cli_table_cell(table, "%" PRIu32, list[i].version);
            cli_table_cell(table, "%s", when);
            cli_table_cell(table, "%s", list[i].identity[0] ? list[i].identity : "-");
            cli_table_cell(table, "%" PRIu32, list[i].routes);
            if (list[i].rollback_of)
                cli_table_cell(table, "rollback to %" PRIu32, list[i].rollback_of);
            else
                cli_table_cell(table, "%s", "");
        }
        cli_table_print(table, stdout);
        cli_table_destroy(&table);
    }
    sl_routes_list_free(list, n);
    return s_finish_stdout(ctx);
}

int cli_routes_list(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "json", no_argument, NULL, S_OPT_JSON },
        { NULL, 0, NULL, 0 },
    };
    s_routes_t self = { 0 };
    return s_request("routes list", s_list_usage, argc, argv, options, &self, 0, 0, S_POS_ANY,
                     s_list_run);
}

/* ---------------------------------------------------------------- show */

static const char s_show_usage[] =
    "usage: sluice routes show [N] [OPTIONS]\n"
    "\n"
    "Print the YAML of routing table version N as it was applied (default:\n"
    "the live version).\n"
    CLI_COMMON_USAGE;

static int s_show_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    (void) self_;
    uint32_t version = 0;
    sl_routes_info_t info;
    if (ctx->npos == 1)
        (void) s_version(ctx->pos[0], &version);    /* checked by s_request */
    int rc = sl_routes_get(client, version, &info);
    if (rc == SL_ENOTFOUND && version == 0) {
        fprintf(stderr, "sluice %s: no routing table applied yet\n", ctx->cmd);
        return CLI_EXIT_FAILED;
    }
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot show version %" PRIu32, version);
    s_print_text(info.yaml);
    sl_routes_info_clear(&info);
    return s_finish_stdout(ctx);
}

int cli_routes_show(int argc, char **argv)
{
    static const struct option options[] = { CLI_COMMON_OPTIONS, { NULL, 0, NULL, 0 } };
    s_routes_t self = { 0 };
    return s_request("routes show", s_show_usage, argc, argv, options, &self, 0, 1,
                     S_POS_VERSIONS, s_show_run);
}

/* ---------------------------------------------------------------- diff */

static const char s_diff_usage[] =
    "usage: sluice routes diff A [B] [OPTIONS]\n"
    "\n"
    "Show what changes from routing table A to B: one line per route added\n"
    "(+ name), removed (- name), changed (~ name: field old -> new) or\n"
    "moved (~ name: position i -> j); \"(no change)\" when they are equal.\n"
    "A and B are each a version number at the broker or a table FILE; with\n"
    "only A, it is compared against the live version (live -> A), so\n"
    "`sluice routes diff new.yaml` shows what applying new.yaml would do.\n"
    "A FILE that names an existing file is read as a file, even when it is\n"
    "all digits.\n"
    "\n"
    "  --replay TOPIC          also route the last stored messages of TOPIC\n"
    "                          through both tables (offline, with the\n"
    "                          broker's mappings; nothing is written) and\n"
    "                          print each message whose route set or output\n"
    "                          would change, then a summary by route\n"
    "  --last N                how many messages --replay reads (default 100)\n"
    "\n"
    "Exit with --replay: 0 no message would change, 1 some would, 2 nothing\n"
    "could be replayed (broker, topic, a table that does not compile), 64\n"
    "usage. Without: 0, or 1 / 2 / 64 as every command.\n"
    CLI_COMMON_USAGE;

/* The YAML of the table OPERAND names into *yaml (caller frees; NULL: no
 * table, the live one when none was applied): a file when one exists by
 * that name, else a version number (NULL = live). *what describes it for
 * the header line. */
static int s_side_yaml(cli_ctx_t *ctx, sl_client_t *client, const char *operand,
                       char **yaml_out, char *what, size_t whatlen)
{
    struct stat st;
    uint32_t version = 0;
    char *yaml = NULL;
    size_t len = 0;
    *yaml_out = NULL;
    if (operand && stat(operand, &st) == 0) {
        yaml = cli_read_file(operand, SLT_ROUTE_YAML_MAX, &len);
        if (!yaml) {
            fprintf(stderr, "sluice %s: cannot read %s: %s\n", ctx->cmd, operand,
                    errno == EFBIG ? "larger than 4 MiB" : strerror(errno));
            return CLI_EXIT_FAILED;
        }
        snprintf(what, whatlen, "%s", operand);
    }
    else {
        if (operand && s_version(operand, &version) != 0)
            return cli_usage_error(ctx, "'%s' is neither a file nor a version number",
                                   operand);
        sl_routes_info_t info;
        int r = sl_routes_get(client, version, &info);
        if (r == SL_ENOTFOUND && version == 0) {
            snprintf(what, whatlen, "no table (none applied yet)");
            return CLI_EXIT_OK;
        }
        if (r != 0)
            return cli_fail(ctx, r, "cannot fetch %s%" PRIu32,
                            version ? "version " : "the live version", version);
        yaml = info.yaml;
        snprintf(what, whatlen, "version %" PRIu32 "%s", info.version,
                 version ? "" : " (live)");
    }
    *yaml_out = yaml;
    return CLI_EXIT_OK;
}

/* The table OPERAND names (as s_side_yaml), compiled into *out. */
static int s_side(cli_ctx_t *ctx, sl_client_t *client, const char *operand,
                  slt_route_table_t **out, char *what, size_t whatlen)
{
    char *yaml = NULL, *err = NULL;
    *out = NULL;
    int rc = s_side_yaml(ctx, client, operand, &yaml, what, whatlen);
    if (rc != CLI_EXIT_OK || !yaml)
        return rc;
    size_t len = strlen(yaml);
    err = cli_xmalloc(S_ERR_MAX);
    err[0] = '\0';
    slt_route_resolver_t none = { NULL, NULL, NULL };
    int crc = slt_route_compile(yaml, len, what, &none, out, err, S_ERR_MAX);
    if (crc != 0) {
        fprintf(stderr, "%s%ssluice %s: %s does not compile (%s)\n", err,
                *err && err[strlen(err) - 1] != '\n' ? "\n" : "", ctx->cmd, what,
                cli_code_name(crc));
        rc = CLI_EXIT_FAILED;
    }
    free(err);
    free(yaml);
    return rc;
}

/* diff --replay: both tables' YAML to cli_routes_replay.c. Its failures
 * before the replay are "nothing replayed" (2), not "changes" (1). */
static int s_replay_run(cli_ctx_t *ctx, const s_routes_t *self, sl_client_t *client,
                        const char *first, const char *second)
{
    char *ya = NULL, *yb = NULL, wa[4200], wb[4200];
    int rc = s_side_yaml(ctx, client, first, &ya, wa, sizeof wa);
    if (rc == CLI_EXIT_OK)
        rc = s_side_yaml(ctx, client, second, &yb, wb, sizeof wb);
    if (rc == CLI_EXIT_OK && !yb) {
        fprintf(stderr, "sluice %s: no routing table applied yet: give the table to "
                "replay as a file\n", ctx->cmd);
        rc = CLI_EXIT_NOTRUN;
    }
    if (rc == CLI_EXIT_OK)
        rc = cli_routes_replay(ctx, client, ya, wa, yb, wb, self->replay,
                               self->last ? self->last : S_LAST_DEFAULT);
    else if (rc == CLI_EXIT_FAILED)
        rc = CLI_EXIT_NOTRUN;
    free(ya);
    free(yb);
    return rc;
}

static int s_diff_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    const s_routes_t *self = self_;
    slt_route_table_t *a = NULL, *b = NULL;
    char wa[4200], wb[4200];
    /* One operand: the live version against it. */
    const char *first = ctx->npos == 2 ? ctx->pos[0] : NULL;
    const char *second = ctx->npos == 2 ? ctx->pos[1] : ctx->pos[0];
    if (self->replay)
        return s_replay_run(ctx, self, client, first, second);
    if (self->last)
        return cli_usage_error(ctx, "--last goes with --replay");
    int rc = s_side(ctx, client, first, &a, wa, sizeof wa);
    if (rc == CLI_EXIT_OK)
        rc = s_side(ctx, client, second, &b, wb, sizeof wb);
    if (rc == CLI_EXIT_OK) {
        char *diff = slt_route_diff(a, b);
        if (!diff) {
            fprintf(stderr, "sluice %s: out of memory\n", ctx->cmd);
            rc = CLI_EXIT_FAILED;
        }
        else {
            printf("--- %s\n+++ %s\n", wa, wb);
            s_print_text(diff);
            free(diff);
            rc = s_finish_stdout(ctx);
        }
    }
    slt_route_destroy(&a);
    slt_route_destroy(&b);
    return rc;
}

int cli_routes_diff(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "replay", required_argument, NULL, S_OPT_REPLAY },
        { "last", required_argument, NULL, S_OPT_LAST },
        { NULL, 0, NULL, 0 },
    };
    s_routes_t self = { 0 };
    return s_request("routes diff", s_diff_usage, argc, argv, options, &self, 1, 2,
                     S_POS_VERSIONS_OR_FILES, s_diff_run);
}

/* ------------------------------------------------------------ rollback */

static const char s_rollback_usage[] =
    "usage: sluice routes rollback N [--expect-version V] [OPTIONS]\n"
    "\n"
    "Make a new version whose table is version N's (history only grows: a\n"
    "version number always means one table). Prints the diff against the\n"
    "version it replaces and the new version. Needs the admin permission.\n"
    "\n"
    "  --expect-version V      refuse (409) unless V is the live version\n"
    CLI_COMMON_USAGE;

static int s_rollback_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_routes_t *self = self_;
    uint32_t target = 0, version = 0;
    char *diff = NULL;
    bool changed = false;
    (void) s_version(ctx->pos[0], &target);         /* checked by s_request */
    int rc = sl_routes_rollback(client, target, self->expect, &version, &diff, &changed);
    if (rc == SL_ESTALE)
        return s_conflict(ctx, "not rolled back", self->expect);
    if (rc == SL_ENOTFOUND)
        return cli_fail(ctx, rc, "no version %" PRIu32, target);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot roll back to version %" PRIu32, target);
    s_print_text(diff);
    free(diff);
    printf("version %" PRIu32 " is live (the table of version %" PRIu32 ")%s\n", version,
           target, changed ? "" : "; it equals the one it replaces");
    return s_finish_stdout(ctx);
}

int cli_routes_rollback(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "expect-version", required_argument, NULL, S_OPT_EXPECT },
        { NULL, 0, NULL, 0 },
    };
    s_routes_t self = { 0 };
    return s_request("routes rollback", s_rollback_usage, argc, argv, options, &self, 1, 1,
                     S_POS_VERSIONS, s_rollback_run);
}

/* ------------------------------------------------------------ backfill */

static const char s_backfill_usage[] =
    "usage: sluice routes backfill ROUTE --topic TOPIC --from WHERE [--batch N] [OPTIONS]\n"
    "\n"
    "Run route ROUTE of the live table over the messages TOPIC already holds\n"
    "(for a route added after they arrived), from WHERE to the topic's end as\n"
    "of the start, in chunks of N messages (default 100, at most 1000), each\n"
    "in one broker transaction; prints a line per chunk and the totals.\n"
    "Messages whose trace shows the route already fired or failed are left\n"
    "alone: running it again, or after an interruption, stores nothing twice.\n"
    "Needs the admin permission on TOPIC.\n"
    "\n"
    "  --topic TOPIC           the stored topic (ROUTE's pattern must match it)\n"
    "  --from WHERE            an offset, earliest, an RFC 3339 time, a duration\n"
    "                          ago (10m, 2h) or @TIME_US: the first message stored\n"
    "                          at or after that time\n"
    "  --batch N               messages per chunk (1..1000; default 100)\n"
    CLI_COMMON_USAGE;

static int s_backfill_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_routes_t *self = self_;
    const char *route = ctx->pos[0];
    sl_backfill_t sum, b;
    memset(&sum, 0, sizeof sum);
    uint64_t from = self->from_offset, time_us = self->from_time_us, until = 0;
    for (;;) {
        int rc = sl_routes_backfill(client, route, self->topic, from, time_us, until,
                                    (uint32_t) self->batch, &b);
        if (rc == SL_ENOTFOUND || rc == SL_EINVAL)
            return cli_fail(ctx, rc, "cannot backfill route %s on %s", route, self->topic);
        if (rc != 0)
            return cli_fail(ctx, rc, "backfill of route %s on %s stopped at offset %" PRIu64
                            " (run it again from there: nothing is done twice)", route,
                            self->topic, from);
        if (!until) {
            /* The end is the topic's as of the first chunk: messages
             * stored since are routed by the live table at ingest. */
            until = b.until_offset;
            sum.from_offset = b.from_offset;
            printf("backfilling route %s (table version %" PRIu32 ") on %s, offsets %"
                   PRIu64 "..%" PRIu64 "\n", route, b.table_version, self->topic,
                   b.from_offset, until);
        }
        sum.processed += b.processed;
        sum.fired += b.fired;
        sum.failed += b.failed;
        sum.skipped += b.skipped;
        sum.already += b.already;
        sum.delivered += b.delivered;
        if (b.processed)
            printf("  %" PRIu64 "..%" PRIu64 ": %" PRIu64 " messages, %" PRIu64 " fired, %"
                   PRIu64 " failed, %" PRIu64 " skipped, %" PRIu64 " already done, %" PRIu64
                   " derived\n", b.from_offset, b.next_offset, b.processed, b.fired,
                   b.failed, b.skipped, b.already, b.delivered);
        fflush(stdout);
        if (b.done || b.processed == 0)     /* no progress: never loop */
            break;
        from = b.next_offset;
        time_us = 0;
    }
    printf("%" PRIu64 " messages: %" PRIu64 " fired, %" PRIu64 " failed (dead-lettered), %"
           PRIu64 " skipped (predicate false or not reached), %" PRIu64 " already done; %"
           PRIu64 " derived messages stored\n", sum.processed, sum.fired, sum.failed,
           sum.skipped, sum.already, sum.delivered);
    return s_finish_stdout(ctx);
}

int cli_routes_backfill(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "topic", required_argument, NULL, S_OPT_TOPIC },
        { "from", required_argument, NULL, S_OPT_FROM },
        { "batch", required_argument, NULL, S_OPT_BATCH },
        { NULL, 0, NULL, 0 },
    };
    s_routes_t self = { 0 };
    cli_ctx_t ctx;
    int rc;
    cli_ctx_init(&ctx, "routes backfill", s_backfill_usage);
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, 1, 1, &rc))
        return rc;
    if (!self.topic || !self.from)
        return cli_usage_error(&ctx, "%s is required", !self.topic ? "--topic" : "--from");
    sl_client_t *client = NULL;
    rc = cli_connect(&ctx, NULL, &client);
    if (rc == CLI_EXIT_OK)
        rc = s_backfill_run(&ctx, &self, client);
    sl_client_destroy(&client);
    return rc;
}
