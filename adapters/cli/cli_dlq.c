/*  cli_dlq - dead letters and cursors (docs/operations.md, "Dead letters
 *  and cursors"): `sluice dlq list TOPIC`, `sluice dlq rm TOPIC OFFSET...`,
 *  `sluice dlq redrive TOPIC (OFFSET... | --all)` and `sluice sub seek
 *  NAME`. Each is SDK calls (sl_dlq_*, sl_sub_seek) and printing; the
 *  broker and the SDK decide. Single-threaded.  */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"

enum { S_OPT_FROM = CLI_OPT_OWN, S_OPT_LIMIT, S_OPT_ALL, S_OPT_OFFSET, S_OPT_TIME,
       S_OPT_EARLIEST, S_OPT_LATEST, S_OPT_TOPIC };

#define S_PAGE 1000                     /* messages asked for at a time by --all */
#define S_PAYLOAD_SHOWN 60

typedef struct {
    uint64_t from;                      /* list: --from */
    uint32_t limit;                     /* list: --limit (0: the broker's 100) */
    bool all;                           /* redrive: --all */
    sl_start_t start;                   /* seek: where to (SL_START_DEFAULT: not said) */
    int nstarts;                        /* seek: how many of the four were given */
    uint64_t offset, time_us;
    const char *topic;                  /* seek: --topic */
} s_dlq_t;

static int s_on_option(void *self_, cli_ctx_t *ctx, int opt, const char *arg)
{
    s_dlq_t *self = self_;
    uint64_t v;
    switch (opt) {
    case S_OPT_FROM:
        if (cli_parse_u64(arg, &self->from) != 0)
            return cli_usage_error(ctx, "--from wants an offset, not '%s'", arg);
        return CLI_EXIT_OK;
    case S_OPT_LIMIT:
        if (cli_parse_u64(arg, &v) != 0 || v == 0 || v > 1000)
            return cli_usage_error(ctx, "--limit wants 1 to 1000, not '%s'", arg);
        self->limit = (uint32_t) v;
        return CLI_EXIT_OK;
    case S_OPT_ALL:
        self->all = true;
        return CLI_EXIT_OK;
    case S_OPT_OFFSET:
        if (cli_parse_u64(arg, &self->offset) != 0)
            return cli_usage_error(ctx, "--offset wants an offset, not '%s'", arg);
        self->start = SL_START_OFFSET;
        break;
    case S_OPT_TIME:
        if (cli_parse_time_us(arg, (uint64_t) time(NULL) * 1000000u, &self->time_us) != 0)
            return cli_usage_error(ctx, "--time wants RFC 3339 (2024-05-01T12:00:00Z), a "
                                   "duration ago (10m, 2h) or @MICROSECONDS, not '%s'", arg);
        self->start = SL_START_TIME;
        break;
    case S_OPT_EARLIEST:
        self->start = SL_START_EARLIEST;
        break;
    case S_OPT_LATEST:
        self->start = SL_START_LATEST;
        break;
    case S_OPT_TOPIC:
        self->topic = arg;
        return CLI_EXIT_OK;
    default:
        return cli_usage_error(ctx, "unexpected option");
    }
    self->nstarts++;
    return CLI_EXIT_OK;
}

/* The offsets of positional arguments FIRST.. of CTX into a new array
 * (caller frees), or NULL after a usage message. */
static uint64_t *s_offsets(cli_ctx_t *ctx, int first)
{
    uint64_t *v = cli_xmalloc((size_t) (ctx->npos - first + 1) * sizeof *v);
    for (int i = first; i < ctx->npos; i++)
        if (cli_parse_u64(ctx->pos[i], &v[i - first]) != 0) {
            cli_usage_error(ctx, "'%s' is not an offset", ctx->pos[i]);
            free(v);
            return NULL;
        }
    return v;
}

static void s_msgs_free(sl_msg_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sl_msg_destroy(&v[i]);
    free(v);
}

/* ------------------------------------------------------------------ list */

static const char s_list_usage[] =
    "usage: sluice dlq list TOPIC [--from OFFSET] [--limit N] [OPTIONS]\n"
    "\n"
    "List the dead letters of TOPIC (_dlq.SUBSCRIPTION, _dlq.schema.TOPIC or\n"
    "_dlq.routes) that were not removed: offset, when it was dead-lettered,\n"
    "where it came from, why, and the start of its payload. The last line\n"
    "says how many remain and the --from of the next page. Needs the\n"
    "subscribe permission on TOPIC.\n"
    "\n"
    "  --from OFFSET           the first offset to look at (default 0)\n"
    "  --limit N               at most N (1 to 1000; default 100)\n"
    CLI_COMMON_USAGE;

/* Where dead letter M came from: "TOPIC@OFFSET" of a subscription's, the
 * topic of a schema dead letter, else "-". */
static void s_origin(const char *topic, const sl_msg_t *m, char *out, size_t len)
{
    const char *t = sl_msg_header(m, "dlq-topic"), *o = sl_msg_header(m, "dlq-offset");
    if (t && o)
        snprintf(out, len, "%s@%s", t, o);
    else if (strncmp(topic, "_dlq.schema.", 12) == 0)
        snprintf(out, len, "%s", topic + 12);
    else
        snprintf(out, len, "-");
}

/* The payload's first bytes, control characters as '.'. */
static void s_payload(const sl_msg_t *m, char *out, size_t len)
{
    size_t n = 0, k = 0;
    const unsigned char *p = sl_msg_payload(m, &n);
    for (; k < n && k < S_PAYLOAD_SHOWN && k + 1 < len; k++)
        out[k] = p[k] < 0x20 || p[k] == 0x7f ? '.' : (char) p[k];
    if (n > k && k + 4 < len)
        memcpy(out + k, "...", 3), k += 3;
    out[k] = 0;
}

static int s_list(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_dlq_t *self = self_;
    const char *topic = ctx->pos[0];
    sl_msg_t **msgs = NULL;
    size_t n = 0;
    uint64_t next = 0, remaining = 0;
    int rc = sl_dlq_list(client, topic, self->from, self->limit, &msgs, &n, &next, &remaining);
    if (rc)
        return cli_fail(ctx, rc, "cannot list the dead letters of %s", topic);
    static const char *const heads[] = { "OFFSET", "DEAD-LETTERED", "FROM", "REASON",
                                         "PAYLOAD" };
    cli_table_t *t = cli_table_new(5, heads, "rllll");
    for (size_t i = 0; i < n; i++) {
        char when[32], from[300], payload[S_PAYLOAD_SHOWN * 2];
        const char *why = sl_msg_header(msgs[i], "dlq-reason");
        cli_format_time(sl_msg_ingest_us(msgs[i]), when, sizeof when);
        s_origin(topic, msgs[i], from, sizeof from);
        s_payload(msgs[i], payload, sizeof payload);
        cli_table_cell(t, "%" PRIu64, sl_msg_offset(msgs[i]));
        cli_table_cell(t, "%s", when);
        cli_table_cell(t, "%s", from);
        cli_table_cell(t, "%s", why ? why : "-");
        cli_table_cell(t, "%s", payload);
    }
    cli_table_print(t, stdout);
    cli_table_destroy(&t);
    printf("%" PRIu64 " dead letter%s not removed; next page: --from %" PRIu64 "\n", remaining,
           remaining == 1 ? "" : "s", next);
    s_msgs_free(msgs, n);
    return CLI_EXIT_OK;
}

int cli_dlq_list(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "from", required_argument, NULL, S_OPT_FROM },
        { "limit", required_argument, NULL, S_OPT_LIMIT },
        { NULL, 0, NULL, 0 },
    };
    s_dlq_t self = { 0 };
    return cli_run_request("dlq list", s_list_usage, argc, argv, options, s_on_option, &self,
                           1, 1, s_list);
}

/* -------------------------------------------------------------------- rm */

static const char s_rm_usage[] =
    "usage: sluice dlq rm TOPIC OFFSET... [OPTIONS]\n"
    "\n"
    "Remove dead letters of TOPIC: listing no longer shows them and they no\n"
    "longer count. The records stay until retention trims them (trace and\n"
    "the audit still find them). One line per offset; exit 1 if any failed.\n"
    "Needs the admin permission on TOPIC; audited (dlq.remove).\n"
    "\n"
    CLI_COMMON_USAGE;

static int s_rm(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    (void) self_;
    const char *topic = ctx->pos[0];
    uint64_t *offs = s_offsets(ctx, 1);
    int rc = offs ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    for (int i = 0; offs && i < ctx->npos - 1; i++) {
        int r = sl_dlq_remove(client, topic, offs[i]);
        if (r == 0)
            printf("%s@%" PRIu64 ": removed\n", topic, offs[i]);
        else {
            int code = cli_fail(ctx, r, "%s@%" PRIu64 ": not removed", topic, offs[i]);
            if (code != CLI_EXIT_FAILED || rc == CLI_EXIT_OK)
                rc = code;
            if (code != CLI_EXIT_FAILED)
                break;                  /* unreachable, refused key: stop */
        }
    }
    free(offs);
    return rc;
}

int cli_dlq_rm(int argc, char **argv)
{
    static const struct option options[] = { CLI_COMMON_OPTIONS, { NULL, 0, NULL, 0 } };
    s_dlq_t self = { 0 };
    return cli_run_request("dlq rm", s_rm_usage, argc, argv, options, s_on_option, &self, 2,
                           INT_MAX, s_rm);
}

/* --------------------------------------------------------------- redrive */

static const char s_redrive_usage[] =
    "usage: sluice dlq redrive TOPIC (OFFSET... | --all) [OPTIONS]\n"
    "\n"
    "Publish dead letters of TOPIC back to the topic they came from (a\n"
    "subscription's: its dlq-topic header; _dlq.schema.T: T), without the\n"
    "dlq-* headers, with sluice-redriven-from: TOPIC@OFFSET and the msg id\n"
    "redrive:TOPIC@OFFSET, then remove them; one at a time, a line each;\n"
    "exit 1 if any failed. A dead letter whose publish succeeded but whose\n"
    "remove failed stays listed; redriving it again within the broker's\n"
    "dedup_window stores nothing twice. _dlq.routes legs are refused: use\n"
    "`sluice routes backfill`. Needs publish on the original topic and\n"
    "admin on TOPIC.\n"
    "\n"
    "  --all                   every dead letter TOPIC holds (not removed)\n"
    CLI_COMMON_USAGE;

/* Redrive TOPIC@OFFSET, printing a line. The exit code for it. */
static int s_redrive_one(cli_ctx_t *ctx, sl_client_t *client, const char *topic,
                         uint64_t offset)
{
    char to[300];
    uint64_t at = 0;
    int r = sl_dlq_redrive(client, topic, offset, to, sizeof to, &at);
    if (r == 0) {
        printf("%s@%" PRIu64 ": redriven to %s@%" PRIu64 "\n", topic, offset, to, at);
        return CLI_EXIT_OK;
    }
    return cli_fail(ctx, r, "%s@%" PRIu64 ": not redriven", topic, offset);
}

static int s_redrive(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_dlq_t *self = self_;
    const char *topic = ctx->pos[0];
    if (self->all == (ctx->npos > 1))
        return cli_usage_error(ctx, "give offsets or --all (not both)");
    int rc = CLI_EXIT_OK;
    uint64_t *offs = self->all ? NULL : s_offsets(ctx, 1);
    size_t noffs = self->all ? 0 : (size_t) (ctx->npos - 1);
    if (!self->all && !offs)
        return CLI_EXIT_USAGE;
    /* --all: page by page; what is redriven is removed, so each page
     * starts after the last one seen. */
    uint64_t from = 0;
    bool more = true;
    while (more && (rc == CLI_EXIT_OK || rc == CLI_EXIT_FAILED)) {
        sl_msg_t **msgs = NULL;
        size_t n = 0;
        if (self->all) {
            uint64_t next = 0;
            int r = sl_dlq_list(client, topic, from, S_PAGE, &msgs, &n, &next, NULL);
            if (r)
                return cli_fail(ctx, r, "cannot list the dead letters of %s", topic);
            offs = cli_xrealloc(offs, (n + 1) * sizeof *offs);
            for (size_t i = 0; i < n; i++)
                offs[i] = sl_msg_offset(msgs[i]);
            s_msgs_free(msgs, n);
            noffs = n;
            more = n > 0 && next > from;
            from = next;
        }
        else
            more = false;
        for (size_t i = 0; i < noffs; i++) {
            int code = s_redrive_one(ctx, client, topic, offs[i]);
            if (code != CLI_EXIT_OK && (rc == CLI_EXIT_OK || code != CLI_EXIT_FAILED))
                rc = code;
            if (code != CLI_EXIT_OK && code != CLI_EXIT_FAILED)
                break;
        }
    }
    free(offs);
    return rc;
}

int cli_dlq_redrive(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "all", no_argument, NULL, S_OPT_ALL },
        { NULL, 0, NULL, 0 },
    };
    s_dlq_t self = { 0 };
    return cli_run_request("dlq redrive", s_redrive_usage, argc, argv, options, s_on_option,
                           &self, 1, INT_MAX, s_redrive);
}

/* ------------------------------------------------------------------ seek */

static const char s_seek_usage[] =
    "usage: sluice sub seek NAME (--offset N | --time WHEN | --earliest | --latest)\n"
    "                       [--topic TOPIC] [OPTIONS]\n"
    "\n"
    "Move durable subscription NAME's cursor (on TOPIC, or on every topic it\n"
    "has one on): delivery goes on from there, messages from there on count\n"
    "as not acked and are delivered again, those before as acked; what is in\n"
    "flight is forgotten (a late ack of it is refused). Works while a\n"
    "consumer is attached. Needs to be the subscription's owner, a consume\n"
    "grant on NAME or admin on its pattern; audited (subscription.seek).\n"
    "\n"
    "  --offset N              from offset N (below the first stored: the first)\n"
    "  --time WHEN             from the first message stored at or after WHEN:\n"
    "                          RFC 3339 (2024-05-01T12:00:00Z), a duration ago\n"
    "                          (10m, 2h, 7d) or @MICROSECONDS\n"
    "  --earliest              from the first stored message\n"
    "  --latest                from the next message published (skip the rest)\n"
    "  --topic TOPIC           only the cursor on TOPIC\n"
    CLI_COMMON_USAGE;

static int s_seek(cli_ctx_t *ctx, void *self_, sl_client_t *client)
{
    s_dlq_t *self = self_;
    const char *name = ctx->pos[0];
    uint32_t moved = 0;
    int rc = sl_sub_seek(client, name, self->topic, self->start, self->offset, self->time_us,
                         &moved);
    if (rc)
        return cli_fail(ctx, rc, "cannot seek subscription %s", name);
    sl_sub_info_t *subs = NULL;
    size_t nsubs = 0;
    printf("subscription %s: cursor moved on %" PRIu32 " topic%s", name, moved,
           moved == 1 ? "" : "s");
    if (sl_stats(client, NULL, NULL, &subs, &nsubs) == 0)
        for (size_t i = 0; i < nsubs; i++)
            if (!subs[i].ephemeral && strcmp(subs[i].name, name) == 0)
                printf("; lag now %" PRIu64, subs[i].lag);
    printf("\n");
    free(subs);
    return CLI_EXIT_OK;
}

int cli_sub_seek(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "offset", required_argument, NULL, S_OPT_OFFSET },
        { "time", required_argument, NULL, S_OPT_TIME },
        { "earliest", no_argument, NULL, S_OPT_EARLIEST },
        { "latest", no_argument, NULL, S_OPT_LATEST },
        { "topic", required_argument, NULL, S_OPT_TOPIC },
        { NULL, 0, NULL, 0 },
    };
    s_dlq_t self = { 0 };
    cli_ctx_t ctx;
    int rc;
    cli_ctx_init(&ctx, "sub seek", s_seek_usage);
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, 1, 1, &rc))
        return rc;
    if (self.nstarts != 1)
        return cli_usage_error(&ctx, "say where to, once: --offset N, --time WHEN, "
                               "--earliest or --latest");
    sl_client_t *client = NULL;
    rc = cli_connect(&ctx, NULL, &client);
    if (rc == CLI_EXIT_OK)
        rc = s_seek(&ctx, &self, client);
    sl_client_destroy(&client);
    return rc;
}
