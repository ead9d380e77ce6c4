/*  cli_sub - `sluice sub TOPIC`: print each message's payload on its own
 *  line of stdout and, with --subscription, ack it only after it has been
 *  written and flushed, so a message is never acked unseen. Without
 *  --subscription it uses an ephemeral subscription (no acks, no state).
 *  Single-threaded; the SDK reconnects and resubscribes by itself.  */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include "cli.h"

/* How long one sl_sub_next call may wait: short, so SIGINT and the
 * timeouts are noticed quickly. */
#define S_WAIT_MS 200

enum { S_OPT_SUBSCRIPTION = CLI_OPT_OWN, S_OPT_FROM, S_OPT_COUNT, S_OPT_FOLLOW };

typedef struct {
    const char *subscription;       /* --subscription, NULL = ephemeral */
    bool from_given;                /* --from was on the command line */
    sl_start_t start;               /* from --from */
    uint64_t start_offset;
    uint64_t start_time_us;
    uint64_t count;                 /* --count, 0 = no limit */
    bool follow;                    /* --follow: idle is not an end */
} s_sub_t;

static int s_on_option(void *self_, cli_ctx_t *ctx, int opt, const char *arg)
{
    s_sub_t *self = self_;

    switch (opt) {
    case S_OPT_SUBSCRIPTION:
        if (!*arg)
            return cli_usage_error(ctx, "--subscription needs a name");
        self->subscription = arg;
        return CLI_EXIT_OK;
    case S_OPT_FROM:
        self->from_given = true;
        if (strcmp(arg, "earliest") == 0)
            self->start = SL_START_EARLIEST;
        else if (strcmp(arg, "latest") == 0)
            self->start = SL_START_LATEST;
        else if (arg[0] == '@'
                 && cli_parse_u64(arg + 1, &self->start_time_us) == 0)
            self->start = SL_START_TIME;
        else if (cli_parse_u64(arg, &self->start_offset) == 0)
            self->start = SL_START_OFFSET;
        else
            return cli_usage_error(ctx, "--from wants earliest, latest, an "
                                   "offset or @TIME_US, not '%s'", arg);
        return CLI_EXIT_OK;
    case S_OPT_COUNT:
        if (cli_parse_u64(arg, &self->count) != 0 || self->count == 0)
            return cli_usage_error(ctx, "--count wants a positive number, "
                                   "not '%s'", arg);
        return CLI_EXIT_OK;
    case S_OPT_FOLLOW:
        self->follow = true;
        return CLI_EXIT_OK;
    default:
        return cli_usage_error(ctx, "unexpected option");
    }
}

/* Write MSG's payload and a newline, flushed. 0, or -1 with errno. */
static int s_write(const sl_msg_t *msg)
{
    size_t len = 0;
    const void *payload = sl_msg_payload(msg, &len);

    if (len > 0 && fwrite(payload, 1, len, stdout) != len)
        return -1;
    if (fputc('\n', stdout) == EOF || fflush(stdout) != 0)
        return -1;
    return 0;
}

static const char s_usage[] =
    "usage: sluice sub TOPIC [--subscription NAME] [--from WHERE] [--count N]\n"
    "                  [--follow] [--broker ENDPOINT] [--timeout SECONDS]\n"
    "\n"
    "Print the payload of each message on TOPIC (or pattern: '*' one word,\n"
    "'>' the rest) on its own line of stdout. With --subscription each\n"
    "message is acked after it was written; without, an ephemeral\n"
    "subscription sees only what is published while it runs, and acks\n"
    "nothing.\n"
    "\n"
    "  --subscription NAME     durable subscription: created on first use,\n"
    "                          resumed after the last ack later\n"
    "  --from WHERE            where a new subscription starts: earliest,\n"
    "                          latest (default), OFFSET, or @TIME_US (first\n"
    "                          message ingested at or after that time, in\n"
    "                          microseconds since the epoch)\n"
    "  --count N               exit 0 after N messages\n"
    "  --follow                wait for messages for ever (the timeout then\n"
    "                          only applies to an unreachable broker)\n"
    "  --broker ENDPOINT       default $SLUICE_BROKER, else the --home\n"
    "                          directory's endpoint file, else\n"
    "                          " SL_DEFAULT_ENDPOINT "\n"
    "  --timeout SECONDS       exit when no message came for this long: 0\n"
    "                          without --count, 2 when --count is not reached;\n"
    "                          2 when the broker is unreachable this long\n"
    "                          (default 30)\n"
    CLI_KEY_USAGE
    "\n"
    "Exit: 0 ok, 1 error, 2 broker unreachable or --count not reached in\n"
    "time, 3 key refused, 64 usage, 130 interrupted.\n";

int cli_sub(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "subscription", required_argument, NULL, S_OPT_SUBSCRIPTION },
        { "from", required_argument, NULL, S_OPT_FROM },
        { "count", required_argument, NULL, S_OPT_COUNT },
        { "follow", no_argument, NULL, S_OPT_FOLLOW },
        { NULL, 0, NULL, 0 },
    };
    s_sub_t self = { 0 };
    cli_ctx_t ctx;
    sl_client_t *client = NULL;
    sl_sub_options_t sopts;
    sl_sub_t *sub = NULL;
    sl_msg_t *msg = NULL;
    uint64_t got = 0, offset;
    double now, last_msg, last_connected;
    bool last;
    int rc;

    cli_ctx_init(&ctx, "sub", s_usage);
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, 1, 1, &rc))
        return rc;
    rc = cli_connect(&ctx, NULL, &client);
    if (rc != CLI_EXIT_OK)
        goto fail;

    sl_sub_options_init(&sopts);
    sopts.pattern = ctx.pos[0];
    sopts.name = self.subscription;
    sopts.ephemeral = self.subscription == NULL;
    if (self.from_given) {
        sopts.start = self.start;
        sopts.start_offset = self.start_offset;
        sopts.start_time_us = self.start_time_us;
    }
    rc = sl_subscribe(client, &sopts, &sub);
    if (rc == SL_EEXIST) {
        fprintf(stderr, "sluice sub: subscription '%s' exists with another "
                "pattern (sluice stats shows it; sluice sub-rm removes it)\n",
                self.subscription);
        rc = CLI_EXIT_FAILED;
        goto fail;
    }
    if (rc != 0) {
        rc = cli_fail(&ctx, rc, "cannot subscribe to '%s'", ctx.pos[0]);
        goto fail;
    }
    cli_catch_sigint();

    last_msg = last_connected = cli_now();
    while (self.count == 0 || got < self.count) {
        if (cli_interrupted()) {
            rc = CLI_EXIT_INTERRUPTED;
            goto done;
        }
        rc = sl_sub_next(sub, S_WAIT_MS, &msg);
        now = cli_now();
        if (sl_client_connected(client))
            last_connected = now;
        /* Broker away: the SDK reconnects and resubscribes by itself;
         * such a call may return at once, so wait here rather than spin. */
        if (rc == SL_EUNAVAIL || rc == SL_ENOSESSION) {
            poll(NULL, 0, S_WAIT_MS);
            rc = SL_ETIMEOUT;
        }
        if (rc == SL_ETIMEOUT || (rc != 0 && cli_interrupted())) {
            if (now - last_connected >= ctx.timeout_s) {
                rc = cli_unreachable(&ctx, NULL);
                goto done;
            }
            if (!self.follow && now - last_msg >= ctx.timeout_s) {
                if (self.count == 0) {
                    rc = CLI_EXIT_OK;       /* drained: everything printed */
                    goto done;
                }
                fprintf(stderr, "sluice sub: no message for %g s: got %"
                        PRIu64 " of %" PRIu64 "\n", ctx.timeout_s, got,
                        self.count);
                rc = CLI_EXIT_UNREACHABLE;
                goto done;
            }
            continue;
        }
        if (rc != 0) {
            rc = cli_fail(&ctx, rc, "cannot receive");
            goto done;
        }
        last_msg = now;
        offset = sl_msg_offset(msg);
        if (s_write(msg) != 0) {
            /* Not acked: the broker delivers it again next time. */
            fprintf(stderr, "sluice sub: cannot write to stdout (%s); "
                    "message at offset %" PRIu64 " not acked\n",
                    strerror(errno), offset);
            rc = CLI_EXIT_FAILED;
            goto done;
        }
        got++;
        if (self.subscription) {
            /* The last ack waits for the broker's commit: the process is
             * about to exit, and the next run must not see it again. */
            last = self.count != 0 && got == self.count;
            rc = last ? sl_ack_sync(msg, cli_timeout_ms(&ctx)) : sl_ack(msg);
            if (rc == SL_ESTALE) {
                fprintf(stderr, "sluice sub: ack of offset %" PRIu64 " came "
                        "too late (redelivered meanwhile): it will be "
                        "delivered again\n", offset);
                rc = CLI_EXIT_FAILED;
                goto done;
            }
            if (rc != 0) {
                rc = cli_fail(&ctx, rc, "cannot ack offset %" PRIu64, offset);
                goto done;
            }
        }
        sl_msg_destroy(&msg);
    }
    rc = CLI_EXIT_OK;
done:
    sl_msg_destroy(&msg);
    /* Keep the durable cursor (remove = false). Unsubscribing also pushes
     * out acks still queued in the client; if the broker is gone they are
     * redelivered later, which is the at-least-once promise anyway. */
    if (sub && sl_unsubscribe(&sub, false) != 0 && rc == CLI_EXIT_OK
        && self.subscription)
        fputs("sluice sub: warning: could not close the subscription cleanly; "
              "some acks may be lost and the messages delivered again\n",
              stderr);
fail:
    sl_client_destroy(&client);
    return rc;
}
