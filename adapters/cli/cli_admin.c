/*  cli_admin - the operator subcommands of `sluice`: topics, stats,
 *  topic create, sub-rm. Each is one request to the broker through the SDK's
 *  admin calls, printed as an aligned table or (--json) one JSON object.
 *  Single-threaded; the broker's answer is the only truth shown.  */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

enum { S_OPT_JSON = CLI_OPT_OWN, S_OPT_MAX_AGE, S_OPT_MAX_BYTES };

typedef struct {
    bool json;                      /* --json */
    uint64_t max_age_ms;            /* topic create --max-age; 0 = broker default */
    uint64_t max_bytes;             /* topic create --max-bytes; 0 = broker default */
} s_admin_t;

static int s_on_option(void *self_, cli_ctx_t *ctx, int opt, const char *arg)
{
    s_admin_t *self = self_;

    switch (opt) {
    case S_OPT_JSON:
        self->json = true;
        return CLI_EXIT_OK;
    case S_OPT_MAX_AGE:
        if (cli_parse_duration_ms(arg, &self->max_age_ms) != 0)
            return cli_usage_error(ctx, "--max-age wants a duration like "
                                   "90s, 12h or 7d, not '%s'", arg);
        return CLI_EXIT_OK;
    case S_OPT_MAX_BYTES:
        if (cli_parse_size(arg, &self->max_bytes) != 0)
            return cli_usage_error(ctx, "--max-bytes wants a size like "
                                   "500M or 2G, not '%s'", arg);
        return CLI_EXIT_OK;
    default:
        return cli_usage_error(ctx, "unexpected option");
    }
}

static int s_topic_cmp(const void *a, const void *b)
{
    return strcmp(((const sl_topic_info_t *)a)->name,
                  ((const sl_topic_info_t *)b)->name);
}

static int s_sub_cmp(const void *a, const void *b)
{
    return strcmp(((const sl_sub_info_t *)a)->name,
                  ((const sl_sub_info_t *)b)->name);
}

/* Retention in the largest unit that divides it; "-" for unlimited. */
static void s_fmt_age(char *buf, size_t len, uint64_t ms)
{
    static const struct { const char *unit; uint64_t ms; } units[] = {
        { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 },
    };
    size_t i;

    if (ms == 0) {
        snprintf(buf, len, "-");
        return;
    }
    for (i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms % units[i].ms == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", ms / units[i].ms, units[i].unit);
            return;
        }
    }
    snprintf(buf, len, "%" PRIu64 "ms", ms);
}

static void s_fmt_size(char *buf, size_t len, uint64_t bytes)
{
    static const char units[] = "TGMK";
    int shift;
    size_t i;

    if (bytes == 0) {
        snprintf(buf, len, "-");
        return;
    }
    for (i = 0; i < 4; i++) {
        shift = 10 * (int)(4 - i);
        if (bytes % (1ull << shift) == 0) {
            snprintf(buf, len, "%" PRIu64 "%c", bytes >> shift, units[i]);
            return;
        }
    }
    snprintf(buf, len, "%" PRIu64, bytes);
}

/* ------------------------------------------------------------ output */

static void s_topics_table(const sl_topic_info_t *t, size_t n, FILE *out)
{
    static const char *const headers[] = {
        "TOPIC", "MESSAGES", "BYTES", "FIRST", "LAST", "MAX-AGE", "MAX-BYTES", "SCHEMA",
    };
    cli_table_t *table = cli_table_new(8, headers, "lrrrrrrl");
    char age[32], size[32];
    size_t i;

    for (i = 0; i < n; i++) {
        cli_table_cell(table, "%s", t[i].name);
        cli_table_cell(table, "%" PRIu64, t[i].messages);
        cli_table_cell(table, "%" PRIu64, t[i].bytes);
        /* An empty topic has no first or last message to name. */
        if (t[i].messages == 0 || t[i].next_offset == 0) {
            cli_table_cell(table, "-");
            cli_table_cell(table, "-");
        } else {
            cli_table_cell(table, "%" PRIu64, t[i].first_offset);
            cli_table_cell(table, "%" PRIu64, t[i].next_offset - 1);
        }
        s_fmt_age(age, sizeof age, t[i].max_age_ms);
        s_fmt_size(size, sizeof size, t[i].max_bytes);
        cli_table_cell(table, "%s", age);
        cli_table_cell(table, "%s", size);
        cli_table_cell(table, "%s", t[i].schema[0] ? t[i].schema : "-");
    }
    cli_table_print(table, out);
    cli_table_destroy(&table);
}

static void s_subs_table(const sl_sub_info_t *s, size_t n, FILE *out)
{
    static const char *const headers[] = {
        "SUBSCRIPTION", "PATTERN", "OWNER", "CURSOR", "LAG", "IN-FLIGHT", "DELIVERED",
        "REDELIVERED", "DEAD-LETTERED", "ACKED", "DROPPED", "ATTACHED",
    };
    cli_table_t *table = cli_table_new(12, headers, "lllrrrrrrrrl");
    size_t i;

    for (i = 0; i < n; i++) {
        cli_table_cell(table, "%s", s[i].ephemeral ? "(ephemeral)" : s[i].name);
        cli_table_cell(table, "%s", s[i].pattern);
        cli_table_cell(table, "%s", s[i].owner[0] ? s[i].owner : "-");
        if (s[i].ephemeral) {
            cli_table_cell(table, "-");     /* nothing is kept for it */
            cli_table_cell(table, "-");
        }
        else {
            cli_table_cell(table, "%" PRIu64, s[i].cursor);
            cli_table_cell(table, "%" PRIu64, s[i].lag);
        }
        cli_table_cell(table, "%" PRIu32, s[i].in_flight);
        cli_table_cell(table, "%" PRIu64, s[i].delivered);
        cli_table_cell(table, "%" PRIu64, s[i].redelivered);
        cli_table_cell(table, "%" PRIu64, s[i].dead_lettered);
        cli_table_cell(table, "%" PRIu64, s[i].acked);
        cli_table_cell(table, "%" PRIu64, s[i].dropped);
        cli_table_cell(table, "%s", s[i].attached ? "yes" : "no");
    }
    cli_table_print(table, out);
    cli_table_destroy(&table);
}

static void s_topics_json(const sl_topic_info_t *t, size_t n, FILE *out)
{
    size_t i;

    fputs("\"topics\":[", out);
    for (i = 0; i < n; i++) {
        fputs(i ? ",{\"name\":" : "{\"name\":", out);
        cli_json_string(out, t[i].name);
        fprintf(out, ",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64
                ",\"first_offset\":%" PRIu64 ",\"next_offset\":%" PRIu64
                ",\"max_age_ms\":%" PRIu64 ",\"max_bytes\":%" PRIu64 ",\"schema\":",
                t[i].messages, t[i].bytes, t[i].first_offset,
                t[i].next_offset, t[i].max_age_ms, t[i].max_bytes);
        cli_json_string(out, t[i].schema);
        fprintf(out, ",\"dlq_removed\":%" PRIu64 "}", t[i].dlq_removed);
    }
    fputs("]", out);
}

static void s_subs_json(const sl_sub_info_t *s, size_t n, FILE *out)
{
    size_t i;

    fputs("\"subscriptions\":[", out);
    for (i = 0; i < n; i++) {
        fputs(i ? ",{\"name\":" : "{\"name\":", out);
        cli_json_string(out, s[i].name);
        fputs(",\"pattern\":", out);
        cli_json_string(out, s[i].pattern);
        fputs(",\"owner\":", out);
        cli_json_string(out, s[i].owner);
        fprintf(out, ",\"ephemeral\":%s,\"attached\":%s,\"lag\":%" PRIu64
                ",\"in_flight\":%" PRIu32 ",\"delivered\":%" PRIu64
                ",\"redelivered\":%" PRIu64 ",\"dead_lettered\":%" PRIu64
                ",\"acked\":%" PRIu64 ",\"cursor\":%" PRIu64
                ",\"dropped\":%" PRIu64 "}",
                s[i].ephemeral ? "true" : "false",
                s[i].attached ? "true" : "false", s[i].lag, s[i].in_flight,
                s[i].delivered, s[i].redelivered, s[i].dead_lettered,
                s[i].acked, s[i].cursor, s[i].dropped);
    }
    fputs("]", out);
}

/* Counters arrive one callback at a time; they are gathered to be sorted. */
typedef struct {
    char *name;
    uint64_t value;
} s_counter_t;

typedef struct {
    s_counter_t *items;
    size_t n, cap;
} s_counters_t;

static void s_on_counter(const char *name, uint64_t value, void *arg)
{
    s_counters_t *c = arg;

    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 32;
        c->items = cli_xrealloc(c->items, c->cap * sizeof *c->items);
    }
    c->items[c->n].name = cli_xstrdup(name);
    c->items[c->n].value = value;
    c->n++;
}

static int s_counter_cmp(const void *a, const void *b)
{
    return strcmp(((const s_counter_t *)a)->name,
                  ((const s_counter_t *)b)->name);
}

static void s_counters_free(s_counters_t *c)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        free(c->items[i].name);
    free(c->items);
    c->items = NULL;
    c->n = c->cap = 0;
}

/* Flush stdout and say so when it failed (a full disk, a closed pipe):
 * the exit code must not claim the listing was written. */
static int s_finish_stdout(const cli_ctx_t *ctx)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sluice %s: cannot write to stdout\n", ctx->cmd);
        return CLI_EXIT_FAILED;
    }
    return CLI_EXIT_OK;
}

/* -------------------------------------------------------- subcommands */

static const char s_topics_usage[] =
    "usage: sluice topics [--json] [--broker ENDPOINT] [--timeout SECONDS]\n"
    "\n"
    "List the broker's topics: name, messages, bytes, first and last offset,\n"
    "retention (MAX-AGE, MAX-BYTES; '-' = unlimited).\n"
    "\n"
    "  --json                  one JSON object {\"topics\": [...]}\n"
    CLI_COMMON_USAGE;

int cli_topics(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "json", no_argument, NULL, S_OPT_JSON },
        { NULL, 0, NULL, 0 },
    };
    s_admin_t self = { 0 };
    cli_ctx_t ctx;
    sl_client_t *client = NULL;
    sl_topic_info_t *topics = NULL;
    size_t ntopics = 0;
    int rc;

    cli_ctx_init(&ctx, "topics", s_topics_usage);
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, 0, 0, &rc))
        return rc;
    rc = cli_connect(&ctx, NULL, &client);
    if (rc != CLI_EXIT_OK)
        goto fail;
    rc = sl_stats(client, &topics, &ntopics, NULL, NULL);
    if (rc != 0) {
        rc = cli_fail(&ctx, rc, "cannot fetch topics");
        goto fail;
    }
    if (ntopics)
        qsort(topics, ntopics, sizeof *topics, s_topic_cmp);
    if (self.json) {
        fputs("{", stdout);
        s_topics_json(topics, ntopics, stdout);
        fputs("}\n", stdout);
    } else {
        s_topics_table(topics, ntopics, stdout);
    }
    rc = s_finish_stdout(&ctx);
fail:
    free(topics);
    sl_client_destroy(&client);
    return rc;
}

/* The routing table's counters (docs/routing.md, "Counters"). */
static void s_routing_table(const sl_routing_stats_t *r, FILE *out)
{
    static const char *const headers[] = {
        "ROUTE", "MATCHED", "DELIVERED", "DROPPED", "DEAD-LETTERED", "ERRORS",
    };
    char when[40];
    if (r->version == 0) {
        fprintf(out, "routing: no table applied; unrouted %" PRIu64 "\n", r->unrouted);
        return;
    }
    cli_format_time(r->applied_us, when, sizeof when);
    fprintf(out, "routing: version %" PRIu32 " applied %s; unrouted %" PRIu64 "\n",
            r->version, when, r->unrouted);
    cli_table_t *table = cli_table_new(6, headers, "lrrrrr");
    for (size_t i = 0; i < r->nroutes; i++) {
        const sl_route_stats_t *s = &r->routes[i];
        cli_table_cell(table, "%s", s->name);
        cli_table_cell(table, "%" PRIu64, s->matched);
        cli_table_cell(table, "%" PRIu64, s->delivered);
        cli_table_cell(table, "%" PRIu64, s->dropped);
        cli_table_cell(table, "%" PRIu64, s->dead_lettered);
        cli_table_cell(table, "%" PRIu64, s->errors);
    }
    cli_table_print(table, out);
    cli_table_destroy(&table);
}

static void s_routing_json(const sl_routing_stats_t *r, FILE *out)
{
    fprintf(out, "\"routing\":{\"version\":%" PRIu32 ",\"applied_us\":%" PRIu64
            ",\"unrouted\":%" PRIu64 ",\"routes\":[", r->version, r->applied_us, r->unrouted);
    for (size_t i = 0; i < r->nroutes; i++) {
        const sl_route_stats_t *s = &r->routes[i];
        fputs(i ? ",{\"name\":" : "{\"name\":", out);
        cli_json_string(out, s->name);
        fprintf(out, ",\"matched\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"dropped\":%" PRIu64
                ",\"dead_lettered\":%" PRIu64 ",\"errors\":%" PRIu64 "}", s->matched,
                s->delivered, s->dropped, s->dead_lettered, s->errors);
    }
    fputs("]}", out);
}

static const char s_stats_usage[] =
    "usage: sluice stats [--json] [--broker ENDPOINT] [--timeout SECONDS]\n"
    "\n"
    "Show topics, subscriptions (pattern, owner, lag = stored messages not yet\n"
    "acked, cursor, in flight, delivered, redelivered, dead-lettered, acked,\n"
    "dropped, attached), the broker's counters and the routing table's (live\n"
    "version, unrouted messages; per route matched, delivered, dropped,\n"
    "dead-lettered, errors).\n"
    "\n"
    "  --json                  one JSON object {\"topics\": [...],\n"
    "                          \"subscriptions\": [...], \"counters\": {...},\n"
    "                          \"routing\": {...}}\n"
    CLI_COMMON_USAGE;

int cli_stats(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "json", no_argument, NULL, S_OPT_JSON },
        { NULL, 0, NULL, 0 },
    };
    static const char *const counter_headers[] = { "COUNTER", "VALUE" };
    s_admin_t self = { 0 };
    s_counters_t counters = { 0 };
    sl_routing_stats_t routing = { 0 };
    cli_ctx_t ctx;
    sl_client_t *client = NULL;
    sl_topic_info_t *topics = NULL;
    sl_sub_info_t *subs = NULL;
    size_t ntopics = 0, nsubs = 0, i;
    cli_table_t *table;
    int rc;

    cli_ctx_init(&ctx, "stats", s_stats_usage);
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, 0, 0, &rc))
        return rc;
    rc = cli_connect(&ctx, NULL, &client);
    if (rc != CLI_EXIT_OK)
        goto fail;
    rc = sl_stats(client, &topics, &ntopics, &subs, &nsubs);
    if (rc != 0) {
        rc = cli_fail(&ctx, rc, "cannot fetch statistics");
        goto fail;
    }
    rc = sl_counters(client, s_on_counter, &counters);
    if (rc != 0) {
        rc = cli_fail(&ctx, rc, "cannot fetch counters");
        goto fail;
    }
    rc = sl_routing_stats(client, &routing);
    if (rc != 0) {
        rc = cli_fail(&ctx, rc, "cannot fetch the routing counters");
        goto fail;
    }
    if (ntopics)
        qsort(topics, ntopics, sizeof *topics, s_topic_cmp);
    if (nsubs)
        qsort(subs, nsubs, sizeof *subs, s_sub_cmp);
    if (counters.n)
        qsort(counters.items, counters.n, sizeof *counters.items,
              s_counter_cmp);

    if (self.json) {
        fputs("{", stdout);
        s_topics_json(topics, ntopics, stdout);
        fputs(",", stdout);
        s_subs_json(subs, nsubs, stdout);
        fputs(",\"counters\":{", stdout);
        for (i = 0; i < counters.n; i++) {
            if (i)
                fputs(",", stdout);
            cli_json_string(stdout, counters.items[i].name);
            fprintf(stdout, ":%" PRIu64, counters.items[i].value);
        }
        fputs("},", stdout);
        s_routing_json(&routing, stdout);
        fputs("}\n", stdout);
    } else {
        s_topics_table(topics, ntopics, stdout);
        fputs("\n", stdout);
        s_subs_table(subs, nsubs, stdout);
        fputs("\n", stdout);
        table = cli_table_new(2, counter_headers, "lr");
        for (i = 0; i < counters.n; i++) {
            cli_table_cell(table, "%s", counters.items[i].name);
            cli_table_cell(table, "%" PRIu64, counters.items[i].value);
        }
        cli_table_print(table, stdout);
        cli_table_destroy(&table);
        fputs("\n", stdout);
        s_routing_table(&routing, stdout);
    }
    rc = s_finish_stdout(&ctx);
fail:
    sl_routing_stats_clear(&routing);
    s_counters_free(&counters);
    free(topics);
    free(subs);
    sl_client_destroy(&client);
    return rc;
}

static const char s_topic_create_usage[] =
    "usage: sluice topic create NAME [--max-age DURATION] [--max-bytes SIZE]\n"
    "                           [--broker ENDPOINT] [--timeout SECONDS]\n"
    "\n"
    "Create topic NAME, or set the retention of an existing one. Limits left\n"
    "out take the broker's default.\n"
    "\n"
    "  --max-age DURATION      drop messages older than this: 500ms, 90s, 15m,\n"
    "                          12h, 7d (a bare number is seconds)\n"
    "  --max-bytes SIZE        keep at most this many bytes: 1048576, 512K,\n"
    "                          500M, 2G, 1T (binary multiples)\n"
    CLI_COMMON_USAGE;

int cli_topic_create(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "max-age", required_argument, NULL, S_OPT_MAX_AGE },
        { "max-bytes", required_argument, NULL, S_OPT_MAX_BYTES },
        { NULL, 0, NULL, 0 },
    };
    s_admin_t self = { 0 };
    cli_ctx_t ctx;
    sl_client_t *client = NULL;
    const char *name;
    int rc;

    cli_ctx_init(&ctx, "topic create", s_topic_create_usage);
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, 1, 1, &rc))
        return rc;
    name = ctx.pos[0];
    rc = cli_connect(&ctx, NULL, &client);
    if (rc != CLI_EXIT_OK)
        goto fail;
    rc = sl_topic_create(client, name, self.max_age_ms, self.max_bytes);
    if (rc != 0) {
        rc = cli_fail(&ctx, rc, "cannot create topic '%s'", name);
        goto fail;
    }
    fprintf(stderr, "topic %s ready\n", name);
    rc = CLI_EXIT_OK;
fail:
    sl_client_destroy(&client);
    return rc;
}

static const char s_sub_rm_usage[] =
    "usage: sluice sub-rm NAME [--broker ENDPOINT] [--timeout SECONDS]\n"
    "\n"
    "Delete durable subscription NAME and its cursor. A consumer attached to\n"
    "it is detached. Needs to be its owner (the identity that created it), a\n"
    "consume grant on NAME or admin on its pattern; the removal is audited.\n"
    "\n"
    CLI_COMMON_USAGE;

int cli_sub_rm(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    cli_ctx_t ctx;
    sl_client_t *client = NULL;
    const char *name;
    int rc;

    cli_ctx_init(&ctx, "sub-rm", s_sub_rm_usage);
    if (!cli_parse(&ctx, argc, argv, options, NULL, NULL, 1, 1, &rc))
        return rc;
    name = ctx.pos[0];
    rc = cli_connect(&ctx, NULL, &client);
    if (rc != CLI_EXIT_OK)
        goto fail;
    rc = sl_sub_remove(client, name);
    if (rc == SL_ENOTFOUND) {
        fprintf(stderr, "sluice sub-rm: no subscription named '%s'\n", name);
        rc = CLI_EXIT_FAILED;
        goto fail;
    }
    if (rc != 0) {
        rc = cli_fail(&ctx, rc, "cannot remove subscription '%s'", name);
        goto fail;
    }
    fprintf(stderr, "subscription %s removed\n", name);
    rc = CLI_EXIT_OK;
fail:
    sl_client_destroy(&client);
    return rc;
}
