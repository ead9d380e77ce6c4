/*  sluice-pgsink - a durable subscription applied to a PostgreSQL table,
 *  every message once (docs/adapters.md, "sluice-pgsink").
 *
 *  Messages are taken in batches (--batch N or --linger T). A batch is one
 *  SQL transaction: its rows, then per topic the highest offset in the
 *  batch into sluice_offsets, then COMMIT; only then are the messages
 *  acked. A message at or below the stored offset of its topic (applied,
 *  but the ack was lost in a crash) is acked without being applied.
 *
 *  A message that cannot apply (not JSON, no key, a column the table
 *  lacks, an SQL error on its row) is taken out and the batch run again
 *  without it (the statement that failed names the message: no savepoint
 *  per row is needed). It is recorded in sluice_rejects in the batch's
 *  transaction and nacked with the reason, so the broker delivers it again
 *  (it is tried again) until max_deliver, then dead-letters it with that
 *  reason: the stream goes on, and nothing is skipped without a trace.
 *  PostgreSQL down or in a transient state: nothing is acked; the batch is
 *  given back to the broker (unsubscribed), the sink reconnects with
 *  backoff, reads its offsets again and subscribes again. Main thread
 *  only.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "file_common.h"
#include "pgsink.h"

static const char s_usage[] =
    "Usage: sluice-pgsink SUBSCRIPTION --dsn DSN --table TABLE --key COL[,COL]\n"
    "                     --pattern TOPIC [options]\n"
    "\n"
    "Apply the messages of durable subscription SUBSCRIPTION (created on\n"
    "PATTERN when new) to a PostgreSQL table, every message once: the last\n"
    "applied offset of each topic is stored in the table sluice_offsets in\n"
    "the same transaction as the rows, and messages are acked after COMMIT.\n"
    "The table must exist, with a primary key or unique index on the --key\n"
    "columns. Runs until SIGTERM or SIGINT.\n"
    "\n"
    "  --dsn DSN               libpq connection string or URI of the target\n"
    "  --table TABLE           TABLE or SCHEMA.TABLE\n"
    "  --key COL[,COL]         the key columns: upserts and deletes by them\n"
    "  --pattern TOPIC         topic or pattern ('*' one word, '>' the rest),\n"
    "                          e.g. pg.shop.public.orders (sluice-pgcdc)\n"
    "  --mode changes|json     changes (default): sluice-pgcdc change events\n"
    "                          (c, r, u: upsert of \"after\" without its\n"
    "                          unchanged_toast columns; d: delete by \"key\");\n"
    "                          json: each message is a row object, upserted\n"
    "  --from WHERE            where a new subscription starts: earliest\n"
    "                          (default) or latest\n"
    "  --batch N               messages per transaction (default 500)\n"
    "  --linger DUR            wait at most DUR to fill a batch (default 50ms)\n"
    "  --retry-delay DUR       a refused message is delivered again after\n"
    "                          DUR (default 1s)\n"
    "  --max-deliver N         deliveries of a refused message before the\n"
    "                          broker dead-letters it (new subscription;\n"
    "                          default the broker's, 5)\n"
    HTTP_CLIENT_USAGE
    "\n"
    "Exit: 0 stopped by a signal, 1 failed (no such table, no key, another\n"
    "sink on this subscription), 2 broker unreachable, 64 usage.\n";

enum { S_OPT_DSN = HTTP_OPT_OWN, S_OPT_TABLE, S_OPT_KEY, S_OPT_PATTERN, S_OPT_MODE,
       S_OPT_FROM, S_OPT_BATCH, S_OPT_LINGER, S_OPT_RETRY, S_OPT_MAX_DELIVER };

/* What a message of the batch comes to. */
typedef enum { S_APPLY, S_SKIP, S_BAD } s_fate_t;

typedef struct {
    sl_msg_t *msg;
    s_fate_t fate;
    char reason[512];           /* S_BAD: why */
} s_item_t;

#define S_BACKOFF_MAX_MS 5000
/* Rows sent in one pipeline at most: their answers (about 20 bytes each)
 * must fit the socket buffers, since a blocking libpq connection does not
 * read while it sends. */
#define S_PIPELINE_MAX 2000

/* ---------------------------------------------------------- PostgreSQL */

/* PostgreSQL's notices as log lines; NOTICE and below (CREATE TABLE IF
 * NOT EXISTS says "already exists") are dropped. */
static void s_notice(void *arg, const PGresult *res)
{
    char q[600];
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    (void) arg;
    if (sev && msg && strcmp(sev, "WARNING") == 0)
        http_log(HTTP_LOG_WARN, "postgres", "notice=%s", http_log_quote(msg, q, sizeof q));
}

/* (Re)connect and read the table and the offsets. PGSINK_OK; PGSINK_DOWN
 * when PostgreSQL cannot be reached; PGSINK_BAD when it answers but the
 * sink cannot run (no table, no key, the lock held), with ERR. */
static pgsink_result_t s_connect(pgsink_t *s, char *err, size_t errlen)
{
    PQfinish(s->pg);
    s->pg = PQconnectdb(s->o->dsn);
    if (PQstatus(s->pg) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(s->pg));
        size_t n = strlen(err);
        while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
            err[--n] = '\0';
        return PGSINK_DOWN;
    }
    PQsetNoticeReceiver(s->pg, s_notice, NULL);
    if (pgsink_table_load(s, err, errlen) != 0 || pgsink_offsets_open(s, err, errlen) != 0)
        return PQstatus(s->pg) == CONNECTION_OK ? PGSINK_BAD : PGSINK_DOWN;
    return PGSINK_OK;
}

/* Keep the broker session alive for MS while PostgreSQL is away. */
static void s_wait(sl_client_t *client, uint64_t ms)
{
    uint64_t until = http_now_ms() + ms;
    while (!http_stopping() && http_now_ms() < until)
        sl_poll(client, (int) (until - http_now_ms()));
}

/* Connect until it works, with backoff. FIRST: a refusal other than an
 * unreachable server ends the run. PGSINK_OK, or PGSINK_BAD (logged) when
 * the sink is to stop. */
static pgsink_result_t s_reconnect(pgsink_t *s, sl_client_t *client, bool first)
{
    char err[1024], q[1100];
    uint64_t backoff = 100;
    for (;;) {
        pgsink_result_t r = s_connect(s, err, sizeof err);
        if (r == PGSINK_OK) {
            http_log(HTTP_LOG_INFO, "postgres", "table=%s topics=%zu rejects=%zu state=connected",
                     s->qtable, s->nmarks, s->nrejects);
            return PGSINK_OK;
        }
        http_log(first && r == PGSINK_BAD ? HTTP_LOG_ERROR : HTTP_LOG_WARN, "postgres",
                 "state=%s retry_ms=%" PRIu64 " reason=%s",
                 r == PGSINK_BAD ? "refused" : "down", backoff,
                 http_log_quote(err, q, sizeof q));
        if ((first && r == PGSINK_BAD) || http_stopping())
            return PGSINK_BAD;
        s_wait(client, backoff);
        backoff = backoff * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : backoff * 2;
    }
}

/* ------------------------------------------------------------- batches */

/* Each message's fate before the transaction: skip what is stored. */
static void s_classify(pgsink_t *s, s_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *topic = sl_msg_topic(items[i].msg);
        uint64_t off = sl_msg_offset(items[i].msg), stored;
        bool done = pgsink_offsets_get(s, topic, &stored) && off <= stored
                    && !pgsink_rejected(s, topic, off);
        items[i].fate = done ? S_SKIP : S_APPLY;
    }
}

/* The offsets and rejects of the batch, inside its transaction. */
static pgsink_result_t s_record(pgsink_t *s, s_item_t *items, size_t n, char *reason,
                                size_t reasonlen)
{
    pgsink_result_t r = PGSINK_OK;
    for (size_t i = 0; r == PGSINK_OK && i < n; i++) {
        const sl_msg_t *m = items[i].msg;
        const char *topic = sl_msg_topic(m);
        if (items[i].fate == S_SKIP)
            continue;
        if (items[i].fate == S_BAD)
            r = pgsink_rejects_store(s, topic, sl_msg_offset(m), sl_msg_attempt(m),
                                     items[i].reason, reason, reasonlen);
        else if (pgsink_rejected(s, topic, sl_msg_offset(m)))
            r = pgsink_rejects_store(s, topic, sl_msg_offset(m), 0, NULL, reason, reasonlen);
        /* One offset per topic: the batch's highest, at its first message. */
        bool first = true;
        uint64_t top = sl_msg_offset(m);
        for (size_t j = 0; j < n; j++) {
            if (items[j].fate == S_SKIP || strcmp(sl_msg_topic(items[j].msg), topic) != 0)
                continue;
            first = first && j >= i;
            if (sl_msg_offset(items[j].msg) > top)
                top = sl_msg_offset(items[j].msg);
        }
        if (r == PGSINK_OK && first)
            r = pgsink_offsets_store(s, topic, top, reason, reasonlen);
    }
    return r;
}

/* After COMMIT: the in-memory offsets and rejects, then acks and nacks. */
static void s_settle(pgsink_t *s, s_item_t *items, size_t n)
{
    char q[600];
    for (size_t i = 0; i < n; i++) {
        sl_msg_t *m = items[i].msg;
        const char *topic = sl_msg_topic(m);
        uint64_t off = sl_msg_offset(m);
        if (items[i].fate != S_SKIP && pgsink_offsets_note(s, topic, off) != 0)
            http_log(HTTP_LOG_WARN, "memory", "reason=\"offset not kept in memory\"");
        if (items[i].fate == S_BAD) {
            pgsink_rejects_note(s, topic, off, true);
            s->rejected++;
            http_log(HTTP_LOG_WARN, "refused", "topic=%s offset=%" PRIu64 " attempt=%" PRIu32
                     " reason=%s", topic, off, sl_msg_attempt(m),
                     http_log_quote(items[i].reason, q, sizeof q));
            sl_nack_reason(m, (uint32_t) s->o->retry_ms, items[i].reason);
            continue;
        }
        if (items[i].fate == S_APPLY) {
            pgsink_rejects_note(s, topic, off, false);
            s->applied++;
        }
        else
            s->skipped++;
        sl_ack(m);
    }
}

/* The batch in one pipeline (one round trip): BEGIN, every row, the
 * offsets, COMMIT. PGSINK_OK once committed; anything else (a message
 * refused, PostgreSQL away) leaves nothing committed and s_commit's
 * statement-by-statement path finds out which. */
static pgsink_result_t s_commit_pipelined(pgsink_t *s, s_item_t *items, size_t n,
                                          char *reason, size_t reasonlen)
{
    if (!pgsink_pipeline_begin(s))
        return PGSINK_DOWN;
    pgsink_result_t r = pgsink_exec(s, "BEGIN", 0, NULL, NULL, reason, reasonlen);
    for (size_t i = 0; r == PGSINK_OK && i < n; i++)
        if (items[i].fate == S_APPLY)
            r = pgsink_apply(s, items[i].msg, reason, reasonlen);
    if (r == PGSINK_OK)
        r = s_record(s, items, n, reason, reasonlen);
    if (r == PGSINK_OK)
        r = pgsink_exec(s, "COMMIT", 0, NULL, NULL, reason, reasonlen);
    pgsink_result_t end = pgsink_pipeline_end(s, reason, reasonlen);
    if (r == PGSINK_OK && end == PGSINK_OK
        && PQtransactionStatus(s->pg) == PQTRANS_IDLE)
        return PGSINK_OK;
    if (PQstatus(s->pg) != CONNECTION_OK)
        return PGSINK_DOWN;
    if (PQtransactionStatus(s->pg) != PQTRANS_IDLE)
        PQclear(PQexec(s->pg, "ROLLBACK"));
    return PGSINK_BAD;
}

/* One transaction for the batch, run again without each message that
 * cannot apply. PGSINK_OK once committed (or nothing to commit), else
 * PGSINK_DOWN with REASON: nothing was acked. Batches of up to
 * S_PIPELINE_MAX rows go in one pipeline first; the statement-by-statement
 * path below only runs when that one failed. */
static pgsink_result_t s_commit(pgsink_t *s, s_item_t *items, size_t n, char *reason,
                                size_t reasonlen)
{
    pgsink_result_t r;
    s_classify(s, items, n);
    size_t todo = 0;
    for (size_t i = 0; i < n; i++)
        todo += items[i].fate == S_APPLY;
    if (!todo)
        return PGSINK_OK;
    if (todo <= S_PIPELINE_MAX) {
        r = s_commit_pipelined(s, items, n, reason, reasonlen);
        if (r != PGSINK_BAD)
            return r;
    }
again:
    r = pgsink_exec(s, "BEGIN", 0, NULL, NULL, reason, reasonlen);
    for (size_t i = 0; r == PGSINK_OK && i < n; i++) {
        if (items[i].fate != S_APPLY)
            continue;
        r = pgsink_apply(s, items[i].msg, items[i].reason, sizeof items[i].reason);
        if (r == PGSINK_BAD) {
            items[i].fate = S_BAD;
            r = pgsink_exec(s, "ROLLBACK", 0, NULL, NULL, reason, reasonlen);
            if (r == PGSINK_OK)
                goto again;
        }
        else if (r == PGSINK_DOWN)
            snprintf(reason, reasonlen, "%s", items[i].reason);
    }
    if (r == PGSINK_OK)
        r = s_record(s, items, n, reason, reasonlen);
    if (r == PGSINK_OK)
        r = pgsink_exec(s, "COMMIT", 0, NULL, NULL, reason, reasonlen);
    if (r != PGSINK_OK) {
        /* An offsets row or COMMIT refused is PostgreSQL's trouble, not a
         * message's: the batch waits, never acked. */
        if (PQstatus(s->pg) == CONNECTION_OK)
            PQclear(PQexec(s->pg, "ROLLBACK"));
        return PGSINK_DOWN;
    }
    return PGSINK_OK;
}

static int s_subscribe(sl_client_t *client, const sl_sub_options_t *so, sl_sub_t **sub)
{
    int k = sl_subscribe(client, so, sub);
    if (k)
        http_log(HTTP_LOG_ERROR, "subscribe", "subscription=%s code=%d error=%s reason=\"%s\"",
                 so->name, k, sl_strerror(k), sl_client_last_error(client));
    return k;
}

/* PostgreSQL failed under a batch: give the batch back rather than hold
 * it. Held messages would come due again every ack_wait, and each time
 * count an attempt: an outage longer than ack_wait x max_deliver would
 * dead-letter messages that are fine. Unsubscribed, they wait at the
 * broker (one attempt per outage), and come back lowest offset first
 * once PostgreSQL does. */
static int s_outage(pgsink_t *s, sl_client_t *client, const sl_sub_options_t *so,
                    sl_sub_t **sub)
{
    sl_unsubscribe(sub, false);
    if (s_reconnect(s, client, false) != PGSINK_OK)
        return FILE_EXIT_OK;    /* only a stop ends it */
    return s_subscribe(client, so, sub) == 0 ? FILE_EXIT_OK : FILE_EXIT_FAILED;
}

static int s_run(pgsink_t *s, sl_client_t *client, const sl_sub_options_t *so,
                 sl_sub_t **sub)
{
    const pgsink_opts_t *o = s->o;
    s_item_t *items = calloc(o->batch, sizeof *items);
    sl_msg_t **msgs = calloc(o->batch, sizeof *msgs);
    char reason[1024], q[1100];
    int rc = FILE_EXIT_OK;
    if (!items || !msgs) {
        free(items);
        free(msgs);
        return FILE_EXIT_FAILED;
    }
    while (!http_stopping() && rc == FILE_EXIT_OK) {
        size_t n;
        if (file_receive_batch(*sub, msgs, o->batch, o->linger_ms, &n) != 0)
            rc = FILE_EXIT_FAILED;
        for (size_t i = 0; i < n; i++)
            items[i].msg = msgs[i];
        bool committed = n && rc == FILE_EXIT_OK && !http_stopping()
                         && s_commit(s, items, n, reason, sizeof reason) == PGSINK_OK;
        if (committed)
            s_settle(s, items, n);
        else if (n && rc == FILE_EXIT_OK && !http_stopping())
            http_log(HTTP_LOG_WARN, "batch", "messages=%zu state=released reason=%s", n,
                     http_log_quote(reason, q, sizeof q));
        /* Not committed (stopped, PostgreSQL away): delivered again. */
        for (size_t i = 0; i < n; i++)
            sl_msg_destroy(&items[i].msg);
        if (n && !committed && rc == FILE_EXIT_OK && !http_stopping())
            rc = s_outage(s, client, so, sub);
        else if (n)
            sl_poll(client, 0);
    }
    free(items);
    free(msgs);
    return rc;
}

/* ----------------------------------------------------------------- main */

static int s_option(int opt, const char *arg, void *ctx)
{
    pgsink_opts_t *o = ctx;
    const char *prog = o->client.prog;
    switch (opt) {
    case S_OPT_DSN: o->dsn = arg; break;
    case S_OPT_TABLE: o->table = arg; break;
    case S_OPT_KEY: o->keys = arg; break;
    case S_OPT_PATTERN: o->pattern = arg; break;
    case S_OPT_MODE:
        if (strcmp(arg, "changes") != 0 && strcmp(arg, "json") != 0)
            return http_usage_error(prog, "--mode wants changes or json");
        o->mode = strcmp(arg, "json") == 0 ? PGSINK_JSON : PGSINK_CHANGES;
        break;
    case S_OPT_FROM:
        if (strcmp(arg, "earliest") != 0 && strcmp(arg, "latest") != 0)
            return http_usage_error(prog, "--from wants earliest or latest");
        o->start = strcmp(arg, "latest") == 0 ? SL_START_LATEST : SL_START_EARLIEST;
        break;
    case S_OPT_BATCH:
        if (http_parse_u64(arg, &o->batch) != 0 || !o->batch || o->batch > 10000)
            return http_usage_error(prog, "--batch wants 1 to 10000");
        break;
    case S_OPT_LINGER:
        if (file_parse_duration(arg, &o->linger_ms) != 0)
            return http_usage_error(prog, "--linger wants a duration (50ms)");
        break;
    case S_OPT_RETRY:
        if (file_parse_duration(arg, &o->retry_ms) != 0 || o->retry_ms > 3600000)
            return http_usage_error(prog, "--retry-delay wants a duration up to 1h (1s)");
        break;
    case S_OPT_MAX_DELIVER:
        if (http_parse_u64(arg, &o->max_deliver) != 0 || !o->max_deliver
            || o->max_deliver > 1000)
            return http_usage_error(prog, "--max-deliver wants 1 to 1000");
        break;
    }
    return 0;
}

static int s_parse(int argc, char **argv, pgsink_opts_t *o)
{
    static const struct option options[] = {
        { "dsn", required_argument, NULL, S_OPT_DSN },
        { "table", required_argument, NULL, S_OPT_TABLE },
        { "key", required_argument, NULL, S_OPT_KEY },
        { "pattern", required_argument, NULL, S_OPT_PATTERN },
        { "mode", required_argument, NULL, S_OPT_MODE },
        { "from", required_argument, NULL, S_OPT_FROM },
        { "batch", required_argument, NULL, S_OPT_BATCH },
        { "linger", required_argument, NULL, S_OPT_LINGER },
        { "retry-delay", required_argument, NULL, S_OPT_RETRY },
        { "max-deliver", required_argument, NULL, S_OPT_MAX_DELIVER },
        HTTP_CLIENT_OPTIONS,
        { NULL, 0, NULL, 0 }
    };
    const char *prog = o->client.prog;
    int rc = file_options(argc, argv, options, &o->client, s_usage, s_option, o);
    if (rc)
        return rc;
    if (optind + 1 != argc)
        return http_usage_error(prog, "one SUBSCRIPTION name is required");
    o->name = argv[optind];
    if (!o->dsn || !o->table || !o->keys || !o->pattern)
        return http_usage_error(prog, "--dsn, --table, --key and --pattern are required");
    if (!*o->table || !*o->keys || strstr(o->keys, ",,") || *o->keys == ','
        || o->keys[strlen(o->keys) - 1] == ',')
        return http_usage_error(prog, "--table wants a name and --key COL[,COL]");
    size_t nkeys = 1;
    for (const char *k = o->keys; *k; k++)
        nkeys += *k == ',';
    if (nkeys > PGSINK_MAX_KEYS)
        return http_usage_error(prog, "--key takes at most %d columns", PGSINK_MAX_KEYS);
    return http_client_resolve(&o->client);
}

int main(int argc, char **argv)
{
    pgsink_opts_t o = { .client.prog = "sluice-pgsink", .mode = PGSINK_CHANGES,
                        .start = SL_START_EARLIEST, .batch = 500, .linger_ms = 50,
                        .retry_ms = 1000 };
    pgsink_t s = { .o = &o };
    sl_client_t *client = NULL;
    sl_sub_t *sub = NULL;
    int rc = s_parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? FILE_EXIT_OK : rc;
    http_signals_catch();
    rc = file_client_open(&o.client, "sluice-pgsink", NULL, &client);
    if (rc)
        goto done;
    rc = FILE_EXIT_FAILED;
    /* PostgreSQL first: a missing table is said before anything is
     * subscribed. */
    if (s_reconnect(&s, client, true) != PGSINK_OK)
        goto done;
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = o.name;
    so.pattern = o.pattern;
    so.start = o.start;
    so.max_deliver = (uint32_t) o.max_deliver;
    so.credit = (uint32_t) (o.batch * 2);
    if (s_subscribe(client, &so, &sub) != 0)
        goto done;
    http_log(HTTP_LOG_INFO, "sink", "subscription=%s pattern=%s table=%s mode=%s", o.name,
             o.pattern, s.qtable, o.mode == PGSINK_JSON ? "json" : "changes");
    rc = s_run(&s, client, &so, &sub);
    sl_flush(client, 5000);
    http_log(HTTP_LOG_INFO, "stop", "applied=%" PRIu64 " skipped=%" PRIu64
             " refused=%" PRIu64, s.applied, s.skipped, s.rejected);
done:
    if (sub)
        sl_unsubscribe(&sub, false);
    sl_client_destroy(&client);
    PQfinish(s.pg);
    pgsink_table_clear(&s);
    pgsink_offsets_clear(&s);
    free(s.sql);
    return rc;
}
