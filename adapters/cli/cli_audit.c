/*  cli_audit - `sluice audit`: print the broker's _audit topic, one line
 *  per record, and stop at the end of what was there when it started. The
 *  end is the topic's next_offset from sl_stats, taken before an ephemeral
 *  subscription reads the topic from its start; --since and --identity
 *  filter on this side; cli_json_field reads the records' fields.
 *  Single-threaded.  */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"

#define S_TOPIC "_audit"
#define S_WAIT_MS 200               /* one sl_sub_next wait: notices SIGINT */
#define S_FIELD_MAX 1024            /* longest field shown */

enum { S_OPT_JSON = CLI_OPT_OWN, S_OPT_SINCE, S_OPT_IDENTITY };

typedef struct {
    bool json;                      /* --json: the records as they are */
    bool since_given;
    uint64_t since_us;              /* --since, microseconds since the epoch */
    const char *identity;           /* --identity, NULL = all */
} s_audit_t;

static int s_on_option(void *self_, cli_ctx_t *ctx, int opt, const char *arg)
{
    s_audit_t *self = self_;

    switch (opt) {
    case S_OPT_JSON:
        self->json = true;
        return CLI_EXIT_OK;
    case S_OPT_SINCE:
        if (cli_parse_time_us(arg, (uint64_t)time(NULL) * 1000000u,
                              &self->since_us) != 0)
            return cli_usage_error(ctx, "--since wants a time like "
                                   "2024-05-01T12:00:00Z, a duration ago like "
                                   "10m, 2h or 7d, or @MICROSECONDS, not '%s'",
                                   arg);
        self->since_given = true;
        return CLI_EXIT_OK;
    case S_OPT_IDENTITY:
        if (!*arg)
            return cli_usage_error(ctx, "--identity needs a name");
        self->identity = arg;
        return CLI_EXIT_OK;
    default:
        return cli_usage_error(ctx, "unexpected option");
    }
}

/* ------------------------------------------------------------ output */

/* The record's time: "ts" in microseconds (or ms, or s, told apart by
 * size) or as text; the broker's ingest time when there is none. */
static void s_time(const char *json, size_t len, uint64_t ingest_us,
                   char *buf, size_t buflen)
{
    char ts[64];
    bool is_string = false;
    double v;
    char *end;

    if (cli_json_field(json, len, "ts", ts, sizeof ts, &is_string) == 1) {
        if (is_string) {
            snprintf(buf, buflen, "%s", ts);
            return;
        }
        v = strtod(ts, &end);
        if (end != ts && *end == '\0' && v > 0) {
            ingest_us = v > 1e14 ? (uint64_t)v
                      : v > 1e11 ? (uint64_t)(v * 1e3) : (uint64_t)(v * 1e6);
        }
    }
    cli_format_time(ingest_us, buf, buflen);
}

/* Print field KEY of the record, "-" when absent or empty. Control
 * characters become ' ' so one record stays one line. */
static void s_print_field(const char *json, size_t len, const char *key,
                          int width, bool last)
{
    char value[S_FIELD_MAX];
    bool is_string = false;
    char *c;

    /* null: the broker's own records and unknown keys have no identity */
    if (cli_json_field(json, len, key, value, sizeof value, &is_string) != 1
        || !*value || (!is_string && strcmp(value, "null") == 0))
        snprintf(value, sizeof value, "-");
    for (c = value; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
    if (last)
        printf("%s\n", value);
    else
        printf("%-*s  ", width, value);
}

/* Print MSG unless a filter drops it. 0, or -1 when stdout failed. */
static int s_print(const s_audit_t *self, const sl_msg_t *msg)
{
    char when[64], identity[256];
    size_t len = 0;
    const char *json = sl_msg_payload(msg, &len);

    if (self->since_given && sl_msg_ingest_us(msg) < self->since_us)
        return 0;
    if (self->identity
        && (cli_json_field(json, len, "identity", identity, sizeof identity, NULL) != 1
            || strcmp(identity, self->identity) != 0))
        return 0;
    if (self->json) {
        if (len > 0 && fwrite(json, 1, len, stdout) != len)
            return -1;
        if (fputc('\n', stdout) == EOF)
            return -1;
        return 0;
    }
    if (cli_json_field(json, len, "ts", when, sizeof when, NULL) < 0) {
        /* Not ours to judge; show it rather than hide it. */
        cli_format_time(sl_msg_ingest_us(msg), when, sizeof when);
        printf("%-24s  (not a JSON object) %.*s\n", when, (int)len, json);
        return ferror(stdout) ? -1 : 0;
    }
    s_time(json, len, sl_msg_ingest_us(msg), when, sizeof when);
    printf("%-24s  ", when);
    s_print_field(json, len, "identity", 12, false);
    s_print_field(json, len, "action", 14, false);
    s_print_field(json, len, "target", 20, false);
    s_print_field(json, len, "result", 6, false);
    s_print_field(json, len, "detail", 0, true);
    return ferror(stdout) ? -1 : 0;
}

/* ------------------------------------------------------------ command */

static const char s_usage[] =
    "usage: sluice audit [--since TIME] [--identity NAME] [--json] [OPTIONS]\n"
    "\n"
    "Print the broker's audit trail (topic _audit) up to now, one record per\n"
    "line: time, identity, action, target, result, detail. Needs the admin\n"
    "permission.\n"
    "\n"
    "  --since TIME            only records from TIME on: 2024-05-01T12:00:00Z\n"
    "                          (RFC 3339), a duration ago (10m, 2h, 7d), or\n"
    "                          @MICROSECONDS since the epoch\n"
    "  --identity NAME         only records of identity NAME\n"
    "  --json                  print each record's JSON object as it is\n"
    CLI_COMMON_USAGE;

/* next_offset of the audit topic, 0 when it holds nothing. The broker
 * lists a topic only to an identity with a grant on it. */
static int s_end(cli_ctx_t *ctx, sl_client_t *client, uint64_t *end)
{
    sl_topic_info_t *topics = NULL;
    size_t n = 0, i;
    bool seen = false;
    int rc;

    *end = 0;
    rc = sl_stats(client, &topics, &n, NULL, NULL);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot read the audit topic's size");
    for (i = 0; i < n; i++)
        if (strcmp(topics[i].name, S_TOPIC) == 0) {
            seen = true;
            if (topics[i].messages > 0)
                *end = topics[i].next_offset;
        }
    free(topics);
    if (!seen) {
        fprintf(stderr, "sluice audit: the broker shows no %s topic to this "
                "identity: reading it takes a subscribe grant that names %s\n",
                S_TOPIC, S_TOPIC);
        return CLI_EXIT_FAILED;
    }
    return CLI_EXIT_OK;
}

int cli_audit(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "json", no_argument, NULL, S_OPT_JSON },
        { "since", required_argument, NULL, S_OPT_SINCE },
        { "identity", required_argument, NULL, S_OPT_IDENTITY },
        { NULL, 0, NULL, 0 },
    };
    s_audit_t self = { 0 };
    cli_ctx_t ctx;
    sl_client_t *client = NULL;
    sl_sub_options_t sopts;
    sl_sub_t *sub = NULL;
    sl_msg_t *msg = NULL;
    uint64_t end, offset;
    double last_msg;
    int rc;

    cli_ctx_init(&ctx, "audit", s_usage);
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, 0, 0, &rc))
        return rc;
    rc = cli_connect(&ctx, NULL, &client);
    if (rc != CLI_EXIT_OK)
        goto fail;
    rc = s_end(&ctx, client, &end);
    if (rc != CLI_EXIT_OK || end == 0)
        goto fail;              /* nothing audited yet: nothing to print */

    /* From the start, not from --since: a start past the last record would
     * deliver nothing, and nothing is not an end one can wait for. */
    sl_sub_options_init(&sopts);
    sopts.pattern = S_TOPIC;
    sopts.ephemeral = true;
    sopts.start = SL_START_EARLIEST;
    rc = sl_subscribe(client, &sopts, &sub);
    if (rc != 0) {
        rc = cli_fail(&ctx, rc, "cannot read %s", S_TOPIC);
        goto fail;
    }
    cli_catch_sigint();
    last_msg = cli_now();
    while (true) {
        if (cli_interrupted()) {
            rc = CLI_EXIT_INTERRUPTED;
            goto done;
        }
        rc = sl_sub_next(sub, S_WAIT_MS, &msg);
        if (rc == SL_ETIMEOUT || rc == SL_EUNAVAIL || rc == SL_ENOSESSION) {
            if (cli_now() - last_msg >= ctx.timeout_s) {
                rc = cli_unreachable(&ctx, "(the audit trail stopped before "
                                     "its end)");
                goto done;
            }
            continue;
        }
        if (rc != 0) {
            rc = cli_fail(&ctx, rc, "cannot read %s", S_TOPIC);
            goto done;
        }
        last_msg = cli_now();
        offset = sl_msg_offset(msg);
        if (offset >= end)
            break;              /* newer than the end we set out to reach */
        if (s_print(&self, msg) != 0) {
            fprintf(stderr, "sluice audit: cannot write to stdout\n");
            rc = CLI_EXIT_FAILED;
            goto done;
        }
        sl_msg_destroy(&msg);
        if (offset + 1 >= end)
            break;
    }
    rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
    if (rc != CLI_EXIT_OK)
        fprintf(stderr, "sluice audit: cannot write to stdout\n");
done:
    sl_msg_destroy(&msg);
    /* Ephemeral: no cursor to keep, so a close that fails loses nothing. */
    if (sub)
        (void)sl_unsubscribe(&sub, false);
fail:
    sl_client_destroy(&client);
    return rc;
}
