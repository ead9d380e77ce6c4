/*  cli_schema - the schema registry subcommands of `sluice`: schema
 *  register / check / list / show, and topic set (bind a topic to a
 *  schema). One request each through the SDK; the broker compiles the
 *  schema, checks compatibility and lists every reason a version is
 *  refused, which this file prints as it came. Single-threaded.  */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

enum { S_OPT_COMPAT = CLI_OPT_OWN, S_OPT_SCHEMA, S_OPT_INVALID, S_OPT_NO_SCHEMA, S_OPT_JSON };

/* The largest schema file read, bytes (the broker takes 1 MiB). */
#define S_SCHEMA_FILE_MAX (1024 * 1024)

typedef struct {
    const char *compat;             /* --compat */
    const char *schema;             /* topic set --schema SUBJECT[@N] */
    const char *invalid;            /* topic set --invalid */
    bool no_schema;                 /* topic set --no-schema */
    bool json;                      /* schema list --json */
} s_schema_t;

static int s_on_option(void *self_, cli_ctx_t *ctx, int opt, const char *arg)
{
    s_schema_t *self = self_;
    switch (opt) {
    case S_OPT_COMPAT:
        self->compat = arg;
        return CLI_EXIT_OK;
    case S_OPT_SCHEMA:
        self->schema = arg;
        return CLI_EXIT_OK;
    case S_OPT_INVALID:
        if (strcmp(arg, "reject") != 0 && strcmp(arg, "dlq") != 0)
            return cli_usage_error(ctx, "--invalid is reject or dlq");
        self->invalid = arg;
        return CLI_EXIT_OK;
    case S_OPT_NO_SCHEMA:
        self->no_schema = true;
        return CLI_EXIT_OK;
    case S_OPT_JSON:
        self->json = true;
        return CLI_EXIT_OK;
    default:
        return cli_usage_error(ctx, "unexpected option");
    }
}

/* SUBJECT[@N] into SUBJECT (LEN bytes) and *version (0 = latest). */
static int s_subject_ref(const cli_ctx_t *ctx, const char *text, char *subject, size_t len,
                         uint32_t *version)
{
    const char *at = strrchr(text, '@');
    uint64_t v = 0;
    size_t n = at ? (size_t) (at - text) : strlen(text);
    if (n == 0 || n >= len || (at && (cli_parse_u64(at + 1, &v) != 0 || v == 0 || v > UINT32_MAX)))
        return cli_usage_error(ctx, "'%s' is not SUBJECT or SUBJECT@VERSION", text);
    memcpy(subject, text, n);
    subject[n] = 0;
    *version = (uint32_t) v;
    return CLI_EXIT_OK;
}

/* The whole of FILE ("-" = stdin), or NULL after a message. */
static char *s_read_file(const cli_ctx_t *ctx, const char *path)
{
    char *text = cli_read_file(path, S_SCHEMA_FILE_MAX, NULL);
    if (!text)
        fprintf(stderr, "sluice %s: cannot read %s: %s\n", ctx->cmd, path,
                errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
    return text;
}

/* Parse, connect, run FN with this file's option state. */
static int s_run(const char *cmd, const char *usage, int argc, char **argv,
                 const struct option *options, int minpos, int maxpos, cli_request_fn *fn)
{
    s_schema_t self = { 0 };
    return cli_run_request(cmd, usage, argc, argv, options, s_on_option, &self, minpos,
                           maxpos, fn);
}

/* ---------------------------------------------------- register / check */

static const char s_register_usage[] =
    "usage: sluice schema register SUBJECT FILE [--compat MODE] [OPTIONS]\n"
    "\n"
    "Register the JSON Schema in FILE ('-' = stdin) as the next version of\n"
    "SUBJECT. The broker refuses a schema outside the supported subset and a\n"
    "version that breaks the subject's compatibility mode, listing every\n"
    "reason (docs/schemas.md). A schema equal to the latest version is not\n"
    "registered again. Needs the admin permission.\n"
    "\n"
    "  --compat MODE           BACKWARD (default for a new subject), FORWARD,\n"
    "                          FULL or NONE; sets the subject's mode\n"
    CLI_COMMON_USAGE;

static const char s_check_usage[] =
    "usage: sluice schema check SUBJECT FILE [--compat MODE] [OPTIONS]\n"
    "\n"
    "Would the JSON Schema in FILE be accepted as the next version of\n"
    "SUBJECT? Prints the version it would get, or every reason it would be\n"
    "refused. Registers nothing. Exit 0 when it would be accepted, 1 if not.\n"
    "\n"
    "  --compat MODE           check under this mode instead of the subject's\n"
    CLI_COMMON_USAGE;

static int s_register(cli_ctx_t *ctx, s_schema_t *self, sl_client_t *client, bool dry_run)
{
    const char *subject = ctx->pos[0];
    uint32_t version = 0;
    bool existed = false;
    char *text = s_read_file(ctx, ctx->pos[1]);
    if (!text)
        return CLI_EXIT_FAILED;
    int rc = sl_schema_register(client, subject, text, self->compat, dry_run, &version, &existed);
    free(text);
    if (rc != 0)
        return cli_fail(ctx, rc, dry_run ? "%s would be refused" : "cannot register %s", subject);
    if (existed)
        printf("%s@%" PRIu32 " is already this schema%s\n", subject, version,
               dry_run ? "" : ": nothing registered");
    else
        printf("%s %s@%" PRIu32 "\n", dry_run ? "compatible: it would be" : "registered",
               subject, version);
    return CLI_EXIT_OK;
}

static int s_register_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_schema_t *self = self_;
    return s_register(ctx, self, client, false);
}

static int s_check_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_schema_t *self = self_;
    return s_register(ctx, self, client, true);
}

static const struct option s_register_options[] = {
    CLI_COMMON_OPTIONS,
    { "compat", required_argument, NULL, S_OPT_COMPAT },
    { NULL, 0, NULL, 0 },
};

int cli_schema_register(int argc, char **argv)
{
    return s_run("schema register", s_register_usage, argc, argv, s_register_options, 2, 2,
                 s_register_run);
}

int cli_schema_check(int argc, char **argv)
{
    return s_run("schema check", s_check_usage, argc, argv, s_register_options, 2, 2,
                 s_check_run);
}

/* ---------------------------------------------------------- list / show */

static const char s_list_usage[] =
    "usage: sluice schema list [--json] [OPTIONS]\n"
    "\n"
    "List the subjects: latest version, number of versions, compatibility\n"
    "mode, when the latest was registered.\n"
    "\n"
    "  --json                  one JSON object {\"subjects\": [...]}\n"
    CLI_COMMON_USAGE;

static const char s_show_usage[] =
    "usage: sluice schema show SUBJECT[@VERSION] [OPTIONS]\n"
    "\n"
    "Print one version of SUBJECT's schema (default: the latest) as JSON.\n"
    CLI_COMMON_USAGE;

static int s_list_cmp(const void *a, const void *b)
{
    return strcmp(((const sl_schema_info_t *) a)->subject,
                  ((const sl_schema_info_t *) b)->subject);
}

static int s_list_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_schema_t *self = self_;
    static const char *const headers[] = { "SUBJECT", "LATEST", "VERSIONS", "COMPAT", "REGISTERED" };
    sl_schema_info_t *list = NULL;
    size_t n = 0;
    char when[64];
    int rc = sl_schema_list(client, &list, &n);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot list schemas");
    if (n)
        qsort(list, n, sizeof *list, s_list_cmp);
    if (self->json) {
        fputs("{\"subjects\":[", stdout);
        for (size_t i = 0; i < n; i++) {
            fputs(i ? ",{\"subject\":" : "{\"subject\":", stdout);
            cli_json_string(stdout, list[i].subject);
            printf(",\"latest\":%" PRIu32 ",\"versions\":%" PRIu32 ",\"compat\":",
                   list[i].version, list[i].versions);
            cli_json_string(stdout, list[i].compat);
            printf(",\"created_us\":%" PRIu64 "}", list[i].created_us);
        }
        fputs("]}\n", stdout);
    }
    else {
        cli_table_t *table = cli_table_new(5, headers, "lrrll");
        for (size_t i = 0; i < n; i++) {
            cli_format_time(list[i].created_us, when, sizeof when);
            cli_table_cell(table, "%s", list[i].subject);
            cli_table_cell(table, "%" PRIu32, list[i].version);
            cli_table_cell(table, "%" PRIu32, list[i].versions);
            cli_table_cell(table, "%s", list[i].compat);
            cli_table_cell(table, "%s", when);
        }
        cli_table_print(table, stdout);
        cli_table_destroy(&table);
    }
    sl_schema_list_free(list, n);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

static int s_show_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_schema_t *self = self_;
    char subject[256];
    uint32_t version = 0;
    sl_schema_info_t info;
    (void) self;
    int rc = s_subject_ref(ctx, ctx->pos[0], subject, sizeof subject, &version);
    if (rc != CLI_EXIT_OK)
        return rc;
    rc = sl_schema_get(client, subject, version, &info);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot show %s", ctx->pos[0]);
    printf("%s\n", info.schema);
    fprintf(stderr, "%s@%" PRIu32 " (of %" PRIu32 ", %s)\n", info.subject, info.version,
            info.versions, info.compat);
    sl_schema_info_clear(&info);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

int cli_schema_list(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "json", no_argument, NULL, S_OPT_JSON },
        { NULL, 0, NULL, 0 },
    };
    return s_run("schema list", s_list_usage, argc, argv, options, 0, 0, s_list_run);
}

int cli_schema_show(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    return s_run("schema show", s_show_usage, argc, argv, options, 1, 1, s_show_run);
}

/* ----------------------------------------------------------- topic set */

static const char s_topic_set_usage[] =
    "usage: sluice topic set TOPIC --schema SUBJECT[@VERSION] [--invalid=reject|dlq]\n"
    "       sluice topic set TOPIC --no-schema\n"
    "\n"
    "Bind TOPIC to a schema: every publish to it is validated when it is\n"
    "stored, against SUBJECT@VERSION (without @VERSION: the latest version at\n"
    "each publish). An invalid message is refused with the JSON pointers of\n"
    "its first failures; with --invalid=dlq it is also kept, with the\n"
    "reasons, in _dlq.schema.TOPIC. Needs the admin permission on TOPIC.\n"
    "\n"
    "  --schema SUBJECT[@N]    the schema to validate against\n"
    "  --invalid=reject|dlq    what happens to an invalid message (reject)\n"
    "  --no-schema             remove the binding\n"
    CLI_COMMON_USAGE;

static int s_topic_set_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_schema_t *self = self_;
    char subject[256] = "";
    uint32_t version = 0;
    const char *topic = ctx->pos[0];
    int rc;
    if (!self->schema == !self->no_schema)
        return cli_usage_error(ctx, "give either --schema SUBJECT[@N] or --no-schema");
    if (self->schema) {
        rc = s_subject_ref(ctx, self->schema, subject, sizeof subject, &version);
        if (rc != CLI_EXIT_OK)
            return rc;
    }
    rc = sl_topic_set_schema(client, topic, subject, version, self->invalid);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot set %s", topic);
    if (self->no_schema)
        fprintf(stderr, "%s: no schema; publishes are no longer validated\n", topic);
    else
        fprintf(stderr, "%s: publishes validated against %s@%s; invalid ones %s\n", topic,
                subject, version ? strchr(self->schema, '@') + 1 : "latest",
                self->invalid && strcmp(self->invalid, "dlq") == 0
                    ? "refused and kept in _dlq.schema.<topic>" : "refused");
    return CLI_EXIT_OK;
}

int cli_topic_set(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "schema", required_argument, NULL, S_OPT_SCHEMA },
        { "invalid", required_argument, NULL, S_OPT_INVALID },
        { "no-schema", no_argument, NULL, S_OPT_NO_SCHEMA },
        { NULL, 0, NULL, 0 },
    };
    return s_run("topic set", s_topic_set_usage, argc, argv, options, 1, 1, s_topic_set_run);
}
