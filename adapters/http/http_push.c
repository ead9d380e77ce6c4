/*  http_push - `sluice-http push SUBSCRIPTION --url URL`: the webhook sink.
 *  Parses the command line, loads the signing secrets, connects, attaches
 *  to (or creates) the durable subscription and runs the one loop that
 *  feeds messages to the delivery engine (http_push_deliver.c) and does the
 *  client's I/O between transfers; on SIGTERM it lets the POSTs in flight
 *  finish, hands back what waits, and leaves. Main thread only; the
 *  client and the engine are used from this loop alone.  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http_common.h"
#include "http_push.h"
#include "http_push_int.h"
#include "http_sign.h"

#define S_PROG "sluice-http push"
#define S_MAX_CONCURRENCY 256
#define S_MAX_ATTEMPTS 100

enum {
    S_OPT_URL = HTTP_OPT_OWN,
    S_OPT_SECRET_FILE,
    S_OPT_TOPIC,
    S_OPT_FROM,
    S_OPT_MAX_ATTEMPTS,
    S_OPT_BACKOFF_MIN,
    S_OPT_BACKOFF_MAX,
    S_OPT_NO_JITTER,
    S_OPT_TIMEOUT,
    S_OPT_CONCURRENCY,
    S_OPT_CACERT,
};

static const char s_usage[] =
    "usage: sluice-http push SUBSCRIPTION --url URL --secret-file FILE "
    "[OPTION]...\n"
    "POST every message of the durable subscription SUBSCRIPTION to URL,\n"
    "signed per Standard Webhooks (webhook-id, webhook-timestamp,\n"
    "webhook-signature). A message is acked after a 2xx answer only; a\n"
    "failure is retried with backoff, and after the last attempt the\n"
    "message goes to the subscription's dead-letter topic _dlq.SUBSCRIPTION.\n"
    "A 410 answer stops the sink (exit 1); redirects are not followed.\n"
    "One log line per attempt on stderr. SIGTERM: the POSTs in flight\n"
    "finish, nothing else is acked, exit 0. See docs/adapters.md.\n"
    "\n"
    "  --url URL               http:// or https:// endpoint (required)\n"
    "  --secret-file FILE      signing secrets, one whsec_<base64> per line;\n"
    "                          several lines sign with each (rotation)\n"
    "                          (required)\n"
    "  --topic PATTERN         create SUBSCRIPTION on first use with this\n"
    "                          topic or pattern; without it, it must exist\n"
    "  --from WHERE            where a new subscription starts: earliest,\n"
    "                          latest (default), OFFSET, or @TIME_US\n"
    "  --max-attempts N        POSTs per message before it is dead-lettered\n"
    "                          (default 8)\n"
    "  --backoff-min DURATION  ceiling of the first retry's wait (default 1s)\n"
    "  --backoff-max DURATION  ceiling of every wait, doubling from the\n"
    "                          minimum, and of a Retry-After (default 5m)\n"
    "  --no-jitter             wait the ceiling itself, not a random time up\n"
    "                          to it (full jitter)\n"
    "  --timeout DURATION      one POST, connect to last byte (default 30s)\n"
    "  --concurrency N         POSTs in flight; 1 (default) keeps the\n"
    "                          subscription's order, N > 1 does not\n"
    "  --cacert FILE           CA certificates for an https URL\n"
    "DURATION: NUMBER[ms|s|m|h], bare = seconds.\n"
    "\n"
    HTTP_CLIENT_USAGE
    "  -h, --help              this text\n";

/* NUMBER[ms|s|m|h] (bare = seconds) into milliseconds. 0 or -1. */
static int s_parse_duration(const char *text, uint64_t *out)
{
    static const struct { const char *unit; uint64_t ms; } units[] = {
        { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
        { "h", 3600000 },
    };
    char num[24];
    size_t n = strspn(text, "0123456789");
    uint64_t v;

    if (n == 0 || n >= sizeof num)
        return -1;
    memcpy(num, text, n);
    num[n] = '\0';
    if (http_parse_u64(num, &v) != 0)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(text + n, units[i].unit) == 0) {
            if (v > UINT64_MAX / 1000 / units[i].ms)
                return -1;
            *out = v * units[i].ms;
            return 0;
        }
    }
    return -1;
}

/* A whole number from 1 to MAX. 0 or -1. */
static int s_parse_count(const char *text, uint32_t max, uint32_t *out)
{
    uint64_t v;

    if (http_parse_u64(text, &v) != 0 || v == 0 || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int s_option(http_push_conf_t *conf, int opt, const char *arg)
{
    switch (opt) {
    case S_OPT_URL:
        if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0)
            return http_usage_error(S_PROG, "--url wants an http:// or "
                                    "https:// URL, not '%s'", arg);
        conf->url = arg;
        return HTTP_EXIT_OK;
    case S_OPT_SECRET_FILE:
        conf->secret_file = arg;
        return HTTP_EXIT_OK;
    case S_OPT_TOPIC:
        if (!*arg)
            return http_usage_error(S_PROG, "--topic needs a topic or pattern");
        conf->topic = arg;
        return HTTP_EXIT_OK;
    case S_OPT_FROM:
        conf->from_given = true;
        if (strcmp(arg, "earliest") == 0)
            conf->start = SL_START_EARLIEST;
        else if (strcmp(arg, "latest") == 0)
            conf->start = SL_START_LATEST;
        else if (arg[0] == '@' && http_parse_u64(arg + 1, &conf->start_time_us) == 0)
            conf->start = SL_START_TIME;
        else if (http_parse_u64(arg, &conf->start_offset) == 0)
            conf->start = SL_START_OFFSET;
        else
            return http_usage_error(S_PROG, "--from wants earliest, latest, "
                                    "an offset or @TIME_US, not '%s'", arg);
        return HTTP_EXIT_OK;
    case S_OPT_MAX_ATTEMPTS:
        if (s_parse_count(arg, S_MAX_ATTEMPTS, &conf->max_attempts) != 0)
            return http_usage_error(S_PROG, "--max-attempts wants 1 to %d, "
                                    "not '%s'", S_MAX_ATTEMPTS, arg);
        return HTTP_EXIT_OK;
    case S_OPT_BACKOFF_MIN:
    case S_OPT_BACKOFF_MAX:
        if (s_parse_duration(arg, opt == S_OPT_BACKOFF_MIN
                             ? &conf->backoff_min_ms : &conf->backoff_max_ms) != 0)
            return http_usage_error(S_PROG, "%s wants a duration such as "
                                    "500ms, 2s or 5m, not '%s'",
                                    opt == S_OPT_BACKOFF_MIN ? "--backoff-min"
                                    : "--backoff-max", arg);
        return HTTP_EXIT_OK;
    case S_OPT_NO_JITTER:
        conf->jitter = false;
        return HTTP_EXIT_OK;
    case S_OPT_TIMEOUT:
        if (s_parse_duration(arg, &conf->timeout_ms) != 0 || conf->timeout_ms == 0
            || conf->timeout_ms > 3600000)
            return http_usage_error(S_PROG, "--timeout wants a duration from "
                                    "1ms to 1h, not '%s'", arg);
        return HTTP_EXIT_OK;
    case S_OPT_CONCURRENCY:
        if (s_parse_count(arg, S_MAX_CONCURRENCY, &conf->concurrency) != 0)
            return http_usage_error(S_PROG, "--concurrency wants 1 to %d, "
                                    "not '%s'", S_MAX_CONCURRENCY, arg);
        return HTTP_EXIT_OK;
    case S_OPT_CACERT:
        conf->cacert = arg;
        return HTTP_EXIT_OK;
    default:
        return HTTP_EXIT_USAGE;
    }
}

/* Parse ARGV into CONF and COPTS. HTTP_EXIT_OK to run; else the exit code
 * (HTTP_EXIT_OK with *HELP after --help). */
static int s_parse(int argc, char **argv, http_push_conf_t *conf,
                   http_client_opts_t *copts, bool *help)
{
    static const struct option options[] = {
        HTTP_CLIENT_OPTIONS,
        { "url", required_argument, NULL, S_OPT_URL },
        { "secret-file", required_argument, NULL, S_OPT_SECRET_FILE },
        { "topic", required_argument, NULL, S_OPT_TOPIC },
        { "from", required_argument, NULL, S_OPT_FROM },
        { "max-attempts", required_argument, NULL, S_OPT_MAX_ATTEMPTS },
        { "backoff-min", required_argument, NULL, S_OPT_BACKOFF_MIN },
        { "backoff-max", required_argument, NULL, S_OPT_BACKOFF_MAX },
        { "no-jitter", no_argument, NULL, S_OPT_NO_JITTER },
        { "timeout", required_argument, NULL, S_OPT_TIMEOUT },
        { "concurrency", required_argument, NULL, S_OPT_CONCURRENCY },
        { "cacert", required_argument, NULL, S_OPT_CACERT },
        { NULL, 0, NULL, 0 },
    };
    char bad[128];
    int opt, rc;

    *help = false;
    opterr = 0;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(s_usage, stdout);
            *help = true;
            return HTTP_EXIT_OK;
        }
        if (opt == ':')
            return http_usage_error(S_PROG, "option '%s' needs a value",
                                    http_bad_option(argv, optopt, bad, sizeof bad));
        if (opt == '?')
            return http_usage_error(S_PROG, "unknown option '%s'",
                                    http_bad_option(argv, optopt, bad, sizeof bad));
        if (optarg && !*optarg && opt != S_OPT_TOPIC)
            return http_usage_error(S_PROG, "option '%s' needs a value",
                                    http_bad_option(argv, opt, bad, sizeof bad));
        if (http_client_option(copts, opt, optarg))
            continue;
        rc = s_option(conf, opt, optarg);
        if (rc != HTTP_EXIT_OK)
            return rc;
    }
    if (argc - optind < 1)
        return http_usage_error(S_PROG, "missing SUBSCRIPTION");
    if (argc - optind > 1)
        return http_usage_error(S_PROG, "unexpected argument '%s'",
                                argv[optind + 1]);
    conf->subscription = argv[optind];
    if (!conf->url)
        return http_usage_error(S_PROG, "--url URL is required");
    if (!conf->secret_file)
        return http_usage_error(S_PROG, "--secret-file FILE is required "
                                "(lines of whsec_<base64>)");
    if (conf->from_given && !conf->topic)
        return http_usage_error(S_PROG, "--from applies to a subscription "
                                "--topic creates: give --topic too");
    if (conf->backoff_min_ms > conf->backoff_max_ms)
        return http_usage_error(S_PROG, "--backoff-min is above --backoff-max");
    return http_client_resolve(copts);
}

/* The ack_wait a subscription made here gets: twice the longest a message
 * can spend with us (every attempt timing out, every wait at its ceiling),
 * since the next one, already received, waits meanwhile; plus a minute. A
 * message whose ack_wait passes is redelivered, and with max_deliver 1
 * dead-lettered without a POST. */
static uint32_t s_ack_wait_ms(const http_push_conf_t *conf)
{
    uint64_t ms = 2 * ((uint64_t)conf->max_attempts * conf->timeout_ms
                       + (uint64_t)(conf->max_attempts - 1) * conf->backoff_max_ms)
                  + 60000;

    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

/* Connect; HTTP_EXIT_OK and *out, or the exit code after a message. */
static int s_connect(const http_client_opts_t *copts, sl_client_t **out)
{
    sl_options_t opts;
    char why[512];
    int rc;

    *out = NULL;
    http_client_options(copts, NULL, &opts);
    opts.name = "sluice-http-push";
    rc = sl_options_check(&opts, why, sizeof why);
    if (rc != 0) {
        fprintf(stderr, S_PROG ": %s\n", why);
        return rc == SL_EINVAL ? HTTP_EXIT_USAGE : HTTP_EXIT_FAILED;
    }
    rc = sl_client_new(&opts, out);
    if (rc != 0) {
        fprintf(stderr, S_PROG ": cannot create a client for %s: %s\n",
                opts.endpoint, sl_strerror(rc));
        return rc == SL_EINVAL ? HTTP_EXIT_USAGE : HTTP_EXIT_FAILED;
    }
    rc = sl_client_connect(*out);
    if (rc != 0) {
        fprintf(stderr, S_PROG ": broker %s not reachable: %s%s%s\n",
                opts.endpoint, sl_strerror(rc),
                *sl_client_last_error(*out) ? ": " : "",
                sl_client_last_error(*out));
        sl_client_destroy(out);
        return rc == SL_EAUTH ? HTTP_EXIT_FAILED : HTTP_EXIT_UNREACHABLE;
    }
    return HTTP_EXIT_OK;
}

/* Attach to CONF's subscription (creating it with --topic). */
static int s_subscribe(const http_push_conf_t *conf, sl_client_t *client,
                       sl_sub_t **out)
{
    sl_sub_options_t so;
    sl_sub_info_t *subs = NULL;
    size_t nsubs = 0;
    char pattern[256] = "";
    int rc;

    sl_sub_options_init(&so);
    so.name = conf->subscription;
    so.credit = conf->concurrency;
    if (conf->topic) {
        snprintf(pattern, sizeof pattern, "%s", conf->topic);
        so.start = conf->start;
        so.start_offset = conf->start_offset;
        so.start_time_us = conf->start_time_us;
        /* Used only when the subscription is new (see http_push_deliver). */
        so.ack_wait_ms = s_ack_wait_ms(conf);
        so.max_deliver = 1;
    }
    else {
        /* Attaching takes the stored pattern: the broker has it. */
        rc = sl_stats(client, NULL, NULL, &subs, &nsubs);
        if (rc != 0) {
            fprintf(stderr, S_PROG ": cannot list subscriptions: %s%s%s\n",
                    sl_strerror(rc), *sl_client_last_error(client) ? ": " : "",
                    sl_client_last_error(client));
            return HTTP_EXIT_FAILED;
        }
        for (size_t i = 0; i < nsubs; i++)
            if (!subs[i].ephemeral && strcmp(subs[i].name, conf->subscription) == 0)
                snprintf(pattern, sizeof pattern, "%s", subs[i].pattern);
        free(subs);
        if (!pattern[0]) {
            fprintf(stderr, S_PROG ": no durable subscription '%s': give "
                    "--topic PATTERN to create it\n", conf->subscription);
            return HTTP_EXIT_FAILED;
        }
    }
    so.pattern = pattern;
    rc = sl_subscribe(client, &so, out);
    if (rc != 0) {
        fprintf(stderr, S_PROG ": cannot subscribe %s to %s: %s%s%s\n",
                conf->subscription, pattern, sl_strerror(rc),
                *sl_client_last_error(client) ? ": " : "",
                sl_client_last_error(client));
        return HTTP_EXIT_FAILED;
    }
    http_log(HTTP_LOG_INFO, "push.start", "sub=%s pattern=%s url=%s "
             "concurrency=%u ordered=%s max_attempts=%u",
             conf->subscription, pattern, conf->url, conf->concurrency,
             conf->concurrency == 1 ? "yes" : "no", conf->max_attempts);
    return HTTP_EXIT_OK;
}

/* The loop: take messages while a slot is free, let the engine run, do
 * the client's I/O between transfers. Returns the exit code. */
static int s_run(const http_push_conf_t *conf, sl_client_t *client,
                 sl_sub_t *sub, http_pusher_t *pusher)
{
    bool stopping = false, failed = false;
    sl_msg_t *msg = NULL;
    int64_t next;
    int rc, wait;

    for (;;) {
        if (!stopping && (http_stopping() || http_pusher_gone(pusher) || failed)) {
            stopping = true;
            if (http_stopping())
                http_log(HTTP_LOG_INFO, "push.stopping", "sub=%s in_flight=%zu",
                         conf->subscription, http_pusher_active(pusher));
            http_pusher_stop(pusher);
        }
        while (!stopping && !http_pusher_full(pusher)
               && (rc = sl_sub_next(sub, 0, &msg)) == 0)
            http_pusher_add(pusher, &msg);
        http_pusher_step(pusher);
        if (stopping && http_pusher_active(pusher) == 0)
            break;
        next = http_pusher_next_ms(pusher);
        wait = next < 0 || next > 200 ? 200 : (int)next;
        if (http_pusher_active(pusher) > 0) {
            http_pusher_poll(pusher, wait < 10 ? wait : 10);
            rc = sl_poll(client, 0);
        }
        else if (!stopping && !http_pusher_full(pusher)) {
            rc = sl_sub_next(sub, wait, &msg);
            if (rc == 0)
                http_pusher_add(pusher, &msg);
        }
        else
            rc = sl_poll(client, wait);
        if (rc < 0 && rc != SL_ETIMEOUT && rc != SL_EBUSY && !stopping
            && !http_stopping()) {
            /* The client reconnects by itself; what comes here is final
             * (the subscription refused, the key revoked, a version). */
            http_log(HTTP_LOG_ERROR, "push.broker_error", "sub=%s code=%d "
                     "error=%s%s%s", conf->subscription, rc, sl_strerror(rc),
                     *sl_client_last_error(client) ? " reason=" : "",
                     sl_client_last_error(client));
            failed = true;
        }
    }
    return failed || http_pusher_gone(pusher) ? HTTP_EXIT_FAILED : HTTP_EXIT_OK;
}

int http_push_main(int argc, char **argv)
{
    http_push_conf_t conf = {
        .start = SL_START_LATEST, .max_attempts = 8, .backoff_min_ms = 1000,
        .backoff_max_ms = 300000, .jitter = true, .timeout_ms = 30000,
        .concurrency = 1,
    };
    http_client_opts_t copts = { .prog = S_PROG };
    http_sign_t *sign = NULL;
    http_pusher_t *pusher = NULL;
    sl_client_t *client = NULL;
    sl_sub_t *sub = NULL;
    http_pusher_stats_t st;
    char err[512];
    bool help;
    int rc;

    rc = s_parse(argc, argv, &conf, &copts, &help);
    if (rc != HTTP_EXIT_OK || help)
        goto done;
    if (http_sign_load(conf.secret_file, &sign, err, sizeof err) != 0) {
        fprintf(stderr, S_PROG ": %s\n", err);
        rc = HTTP_EXIT_FAILED;
        goto done;
    }
    if (http_pusher_new(&conf, sign, &pusher, err, sizeof err) != 0) {
        fprintf(stderr, S_PROG ": %s\n", err);
        rc = HTTP_EXIT_FAILED;
        goto done;
    }
    http_signals_catch();
    rc = s_connect(&copts, &client);
    if (rc == HTTP_EXIT_OK)
        rc = s_subscribe(&conf, client, &sub);
    if (rc != HTTP_EXIT_OK)
        goto done;
    rc = s_run(&conf, client, sub, pusher);
    http_pusher_stats(pusher, &st);
    /* Unsubscribing sends the acks first and waits for the broker's
     * answer, so every ack is applied before we go; what we still held
     * becomes due for the next consumer at once. */
    http_pusher_destroy(&pusher);
    if (sl_unsubscribe(&sub, false) != 0)
        http_log(HTTP_LOG_WARN, "push.unsubscribe_failed", "sub=%s: acks sent "
                 "last may be applied only after the session ends",
                 conf.subscription);
    http_log(rc == HTTP_EXIT_OK ? HTTP_LOG_INFO : HTTP_LOG_ERROR,
             "push.stopped", "sub=%s exit=%d delivered=%llu retries=%llu "
             "dead_lettered=%llu", conf.subscription, rc,
             (unsigned long long)st.delivered, (unsigned long long)st.retries,
             (unsigned long long)st.dead_lettered);
done:
    http_pusher_destroy(&pusher);
    sl_client_destroy(&client);
    http_sign_destroy(&sign);
    return rc;
}
