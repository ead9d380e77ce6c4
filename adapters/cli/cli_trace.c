/*  cli_trace - `sluice trace TOPIC OFFSET [--json]`: what routing did with
 *  one stored message (docs/routing.md, "Trace"): the table version that
 *  routed it, each route whose pattern matched with its outcome and the
 *  messages it stored; for a derived message where it came from and its
 *  source's own trace. One request through the SDK (sl_trace); prints,
 *  decides nothing. Single-threaded.  */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "slc.h"

enum { S_OPT_JSON = CLI_OPT_OWN };

typedef struct {
    bool json;
} s_trace_opts_t;

static const char s_usage[] =
    "usage: sluice trace TOPIC OFFSET [--json] [OPTIONS]\n"
    "\n"
    "Show what routing did with the message stored on TOPIC at OFFSET: the\n"
    "routing table version that routed it; each route whose topic pattern\n"
    "matched, in order, and whether it fired (deliver, drop, dlq), was\n"
    "skipped (its `where` was false) or failed (the error); every message\n"
    "a route stored (derived messages, _dlq.routes legs) as TOPIC@OFFSET.\n"
    "For a derived message, also where it came from (route, table version,\n"
    "source) and the source's own trace, back to the original. A message\n"
    "no route's pattern matched says why it was not routed. Needs the\n"
    "subscribe permission on TOPIC.\n"
    "\n"
    "  --json                  one JSON object (the source nested in it)\n"
    CLI_COMMON_USAGE;

static int s_on_option(void *self_, cli_ctx_t *ctx, int opt, const char *arg)
{
    s_trace_opts_t *self = self_;
    (void) arg;
    if (opt == S_OPT_JSON) {
        self->json = true;
        return CLI_EXIT_OK;
    }
    return cli_usage_error(ctx, "unexpected option");
}

/* A route step as words: "fired: deliver", "skipped (predicate false)". */
static void s_outcome(const sl_trace_step_t *s, char *out, size_t len)
{
    if (strcmp(s->outcome, "skipped") == 0)
        snprintf(out, len, "skipped (predicate false)");
    else if (strcmp(s->outcome, "failed") == 0)
        snprintf(out, len, "failed: %s", s->error);
    else if (strcmp(s->action, "drop") == 0)
        snprintf(out, len, "fired: drop (nothing stored)");
    else
        snprintf(out, len, "fired: %s", s->action);
}

static void s_print_text(const sl_trace_t *t, int depth)
{
    char when[40];
    cli_format_time(t->ingest_us, when, sizeof when);
    printf("%s@%" PRIu64, t->topic, t->offset);
    if (t->ingest_us)
        printf("  stored %s", when);
    fputc('\n', stdout);
    if (t->derived) {
        char mapping[180] = "";
        if (t->mapping[0])
            snprintf(mapping, sizeof mapping, " through mapping %s version %" PRIu32,
                     t->mapping, t->mapping_version);
        printf("  made by route %s (table version %" PRIu32 ") from %s@%" PRIu64 "%s%s\n",
               t->route, t->lineage_version, t->source_topic, t->source_offset, mapping,
               strcmp(t->topic, "_dlq.routes") == 0 ? " (a dead-letter leg)" : "");
    }
    if (t->routed) {
        printf("  routed by table version %" PRIu32 "\n", t->table_version);
        for (size_t i = 0; i < t->nsteps; i++) {
            const sl_trace_step_t *s = &t->steps[i];
            char what[400];
            s_outcome(s, what, sizeof what);
            char from[64] = "";
            if (s->backfilled)
                snprintf(from, sizeof from, " (backfilled, table version %" PRIu32 ")",
                         s->backfilled);
            printf("    route %s (#%" PRIu32 ")%s: %s\n", s->route, s->index, from, what);
            for (size_t k = 0; k < s->nlegs; k++)
                printf("      -> %s@%" PRIu64 "\n", s->legs[k].topic, s->legs[k].offset);
        }
    }
    else if (t->note[0])
        printf("  %s\n", t->note);
    if (t->source) {
        printf("source%s:\n", depth ? " of the source" : "");
        s_print_text(t->source, depth + 1);
    }
}

static void s_print_json(const sl_trace_t *t)
{
    char when[40] = "";
    if (t->ingest_us)
        cli_format_time(t->ingest_us, when, sizeof when);
    fputs("{\"topic\":", stdout);
    cli_json_string(stdout, t->topic);
    printf(",\"offset\":%" PRIu64 ",\"stored\":", t->offset);
    cli_json_string(stdout, when);
    printf(",\"routed\":%s,\"table_version\":%" PRIu32 ",\"note\":",
           t->routed ? "true" : "false", t->table_version);
    cli_json_string(stdout, t->note);
    fputs(",\"steps\":[", stdout);
    for (size_t i = 0; i < t->nsteps; i++) {
        const sl_trace_step_t *s = &t->steps[i];
        printf("%s{\"index\":%" PRIu32 ",", i ? "," : "", s->index);
        if (s->backfilled)              /* only then: older output is unchanged */
            printf("\"backfilled\":%" PRIu32 ",", s->backfilled);
        fputs("\"route\":", stdout);
        cli_json_string(stdout, s->route);
        fputs(",\"outcome\":", stdout);
        cli_json_string(stdout, s->outcome);
        fputs(",\"action\":", stdout);
        cli_json_string(stdout, s->action);
        fputs(",\"error\":", stdout);
        cli_json_string(stdout, s->error);
        fputs(",\"legs\":[", stdout);
        for (size_t k = 0; k < s->nlegs; k++) {
            fputs(k ? ",{\"topic\":" : "{\"topic\":", stdout);
            cli_json_string(stdout, s->legs[k].topic);
            printf(",\"offset\":%" PRIu64 "}", s->legs[k].offset);
        }
        fputs("]}", stdout);
    }
    fputs("],\"lineage\":", stdout);
    if (t->derived) {
        fputs("{\"source_topic\":", stdout);
        cli_json_string(stdout, t->source_topic);
        printf(",\"source_offset\":%" PRIu64 ",\"route\":", t->source_offset);
        cli_json_string(stdout, t->route);
        fputs(",\"mapping\":", stdout);
        cli_json_string(stdout, t->mapping);
        printf(",\"mapping_version\":%" PRIu32 ",\"table_version\":%" PRIu32 "}",
               t->mapping_version, t->lineage_version);
    }
    else
        fputs("null", stdout);
    fputs(",\"source\":", stdout);
    if (t->source)
        s_print_json(t->source);
    else
        fputs("null", stdout);
    fputc('}', stdout);
}

static int s_run(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_trace_opts_t *self = self_;
    const char *topic = ctx->pos[0];
    uint64_t offset;
    if (slc_topic_validate(topic, true) != 0)
        return cli_usage_error(ctx, "'%s' is not a topic name (no wildcards)", topic);
    if (cli_parse_u64(ctx->pos[1], &offset) != 0)
        return cli_usage_error(ctx, "OFFSET wants a number (0 or more), not '%s'",
                               ctx->pos[1]);
    sl_trace_t t;
    int rc = sl_trace(client, topic, offset, &t);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot trace %s@%" PRIu64, topic, offset);
    if (self->json) {
        s_print_json(&t);
        fputc('\n', stdout);
    }
    else
        s_print_text(&t, 0);
    sl_trace_clear(&t);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sluice %s: cannot write to stdout\n", ctx->cmd);
        return CLI_EXIT_FAILED;
    }
    return CLI_EXIT_OK;
}

int cli_trace(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "json", no_argument, NULL, S_OPT_JSON },
        { NULL, 0, NULL, 0 },
    };
    s_trace_opts_t self = { 0 };
    return cli_run_request("trace", s_usage, argc, argv, options, s_on_option, &self, 2, 2,
                           s_run);
}
