/*  sluice-pgcdc - change data capture from PostgreSQL into sluice
 *  (docs/adapters.md, "sluice-pgcdc"). This file parses the options and
 *  wires the steps: state file, connections, publication and table check,
 *  slot (+ snapshot), then the stream until SIGTERM. Main thread.  */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "pgcdc_int.h"
#include "http_common.h"

#define PROG "sluice-pgcdc"

static const char s_usage[] =
    "Usage: sluice-pgcdc --dsn DSN --slot NAME --publication NAME\n"
    "                    [--tables SCHEMA.T1,SCHEMA.T2 | --all-tables]\n"
    "                    [--state-dir DIR] [--heartbeat 10s]\n"
    "                    [--status-interval 1s] [connection options]\n"
    "\n"
    "Stream a PostgreSQL database's changes into sluice, exactly once: each\n"
    "row change becomes a JSON event (application/json) on topic\n"
    "pg.<db>.<schema>.<table>, after an initial snapshot (op \"r\") of the\n"
    "published tables taken when the slot is created (docs/adapters.md,\n"
    "\"sluice-pgcdc\"). Needs wal_level=logical and a role with REPLICATION.\n"
    "\n"
    "  --dsn DSN               libpq connection string or URI of the database\n"
    "  --slot NAME             logical replication slot (created with pgoutput\n"
    "                          when missing; [a-z0-9_], at most 63): also the\n"
    "                          producer identity in sluice\n"
    "  --publication NAME      publication to stream (created when missing,\n"
    "                          from --tables or --all-tables)\n"
    "  --tables LIST           schema.table,... for a new publication\n"
    "  --all-tables            a new publication FOR ALL TABLES\n"
    "  --state-dir DIR         where NAME.state and NAME.producer are kept\n"
    "                          (default $SLUICE_PGCDC_STATE, else\n"
    "                          ./var/sluice-pgcdc)\n"
    "  --heartbeat DURATION    emit a logical message this often so an idle\n"
    "                          slot moves on (default 10s; 0 = off)\n"
    "  --status-interval DURATION\n"
    "                          send the flush position this often (default 1s)\n"
    "DURATION: NUMBER with ms, s or m (bare: seconds).\n"
    "\n"
    HTTP_CLIENT_USAGE
    "\n"
    "Exit: 0 stopped by SIGTERM/SIGINT, 1 failed, 2 broker unreachable,\n"
    "64 usage.\n";

enum {
    OPT_DSN = HTTP_OPT_OWN, OPT_SLOT, OPT_PUB, OPT_TABLES, OPT_ALL, OPT_STATE,
    OPT_HEARTBEAT, OPT_STATUS,
};

static int s_duration(const char *text, uint64_t *ms)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || text[0] == '-')
        return -1;
    uint64_t mult = 1000;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (*end && strcmp(end, "s") != 0)
        return -1;
    *ms = v * mult;
    return v > UINT64_MAX / mult ? -1 : 0;
}

static bool s_slot_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static int s_parse(pgcdc_t *c, http_client_opts_t *co, int argc, char **argv)
{
    static const struct option opts[] = {
        { "dsn", required_argument, NULL, OPT_DSN },
        { "slot", required_argument, NULL, OPT_SLOT },
        { "publication", required_argument, NULL, OPT_PUB },
        { "tables", required_argument, NULL, OPT_TABLES },
        { "all-tables", no_argument, NULL, OPT_ALL },
        { "state-dir", required_argument, NULL, OPT_STATE },
        { "heartbeat", required_argument, NULL, OPT_HEARTBEAT },
        { "status-interval", required_argument, NULL, OPT_STATUS },
        HTTP_CLIENT_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    int opt;
    c->heartbeat_ms = 10000;
    c->status_ms = 1000;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (http_client_option(co, opt, optarg))
            continue;
        switch (opt) {
        case 'h':
            fputs(s_usage, stdout);
            exit(HTTP_EXIT_OK);
        case OPT_DSN: c->dsn = optarg; break;
        case OPT_SLOT: c->slot = optarg; break;
        case OPT_PUB: c->publication = optarg; break;
        case OPT_TABLES: c->tables = optarg; break;
        case OPT_ALL: c->all_tables = true; break;
        case OPT_STATE: c->state_dir = optarg; break;
        case OPT_HEARTBEAT:
        case OPT_STATUS: {
            uint64_t *to = opt == OPT_STATUS ? &c->status_ms : &c->heartbeat_ms;
            if (s_duration(optarg, to) < 0 || (opt == OPT_STATUS && *to == 0))
                return http_usage_error(PROG, "%s: '%s' is not a duration (e.g. 500ms, 10s, 1m)",
                                        opt == OPT_STATUS ? "--status-interval" : "--heartbeat",
                                        optarg);
            break;
        }
        default:
            return http_option_error(PROG, argv, opt);
        }
    }
    if (optind < argc)
        return http_usage_error(PROG, "unexpected argument '%s'", argv[optind]);
    if (!c->dsn || !c->slot || !c->publication)
        return http_usage_error(PROG, "--dsn, --slot and --publication are required");
    if (!s_slot_ok(c->slot))
        return http_usage_error(PROG, "--slot '%s': use 1-63 of a-z, 0-9 and _", c->slot);
    if (c->tables && c->all_tables)
        return http_usage_error(PROG, "--tables and --all-tables exclude each other");
    if (!c->state_dir)
        c->state_dir = getenv("SLUICE_PGCDC_STATE");
    if (!c->state_dir)
        c->state_dir = "./var/sluice-pgcdc";
    return http_client_resolve(co);
}

/* The code's name for the log: PostgreSQL's failures are told apart
 * from the broker's (PGCDC_EPG borrows SL_EUNAVAIL's value). */
static const char *s_code(int rc)
{
    if (rc == PGCDC_EPG)
        return "postgresql";
    if (rc == PGCDC_EPROTO)
        return "pgoutput-malformed";
    return sl_strerror(rc);
}

/* Everything before the stream; *start the LSN to stream from. */
static int s_prepare(pgcdc_t *c, uint64_t *start, char *err, size_t errlen)
{
    bool have_state = false, have_slot = false;
    uint64_t confirmed = 0;
    int rc = pgcdc_state_load(c, &have_state, err, errlen);
    if (rc == 0)
        rc = pgcdc_connect(c, err, errlen);
    if (rc == 0 && !(c->rels = pgcdc_rels_new(c->db)))
        rc = SL_ENOMEM;
    if (rc == 0)
        rc = pgcdc_publication_ensure(c, err, errlen);
    if (rc == 0)
        rc = pgcdc_tables_check(c, err, errlen);
    if (rc == 0)
        rc = pgcdc_slot_lookup(c, &have_slot, &confirmed, err, errlen);
    if (rc < 0)
        return rc;
    if (have_slot && !have_state) {
        snprintf(err, errlen, "slot %s exists but %s does not: events it would send may "
                 "already be in sluice. Restore the state dir, or drop the slot "
                 "(SELECT pg_drop_replication_slot('%s')) to start over with a snapshot",
                 c->slot, c->state_path, c->slot);
        return SL_EEXIST;
    }
    if (!have_slot && have_state && c->snapshot_done) {
        snprintf(err, errlen, "slot %s is gone (dropped, or PostgreSQL was upgraded or "
                 "restored) but %s says it was streaming: changes since may be lost. "
                 "Remove %s to start over with a new snapshot",
                 c->slot, c->state_path, c->state_path);
        return SL_ENOTFOUND;
    }
    if (have_slot && have_state && c->snapshot_done && confirmed > c->flushed_lsn) {
        /* The slot is ahead of the anchor (an older state dir restored, or
         * pg_replication_slot_advance): numbering from it would give the
         * next events sequences already used, and they would be dropped. */
        char a[24], b[24];
        snprintf(err, errlen, "slot %s confirmed %s but %s says %s: the state file is older "
                 "than the slot (restored from a backup?) or the slot was advanced by hand; "
                 "the events between cannot be numbered. Drop the slot and remove %s to "
                 "start over with a snapshot", c->slot, pgcdc_lsn_text(confirmed, a, sizeof a),
                 c->state_path, pgcdc_lsn_text(c->flushed_lsn, b, sizeof b), c->state_path);
        return SL_ESTALE;
    }
    if (!have_state && (rc = pgcdc_state_save(c, err, errlen)) < 0)
        return rc;
    if ((rc = pgcdc_publish_open(c, err, errlen)) < 0)
        return rc;
    if (!have_slot) {
        char snapshot[128];
        uint64_t consistent = 0;
        rc = pgcdc_slot_create(c, snapshot, sizeof snapshot, &consistent, err, errlen);
        if (rc == 0)
            rc = pgcdc_snapshot_run(c, snapshot, consistent, err, errlen);
        confirmed = consistent;
    }
    else if (!c->snapshot_done)
        rc = pgcdc_snapshot_run(c, NULL, confirmed, err, errlen);
    if (rc < 0)
        return rc;
    if (!c->snapshot_done) {
        c->snapshot_done = true;
        if (confirmed > c->flushed_lsn)
            c->flushed_lsn = confirmed;
        if ((rc = pgcdc_state_save(c, err, errlen)) < 0)
            return rc;
    }
    *start = c->flushed_lsn > confirmed ? c->flushed_lsn : confirmed;
    return 0;
}

int main(int argc, char **argv)
{
    pgcdc_t c = { 0 };
    http_client_opts_t co = { .prog = PROG };
    int ex = s_parse(&c, &co, argc, argv);
    if (ex != HTTP_EXIT_OK)
        return ex;
    http_client_options(&co, NULL, &c.client_opts);
    c.client_opts.name = PROG;
    snprintf(c.state_path, sizeof c.state_path, "%s/%s.state", c.state_dir, c.slot);
    snprintf(c.producer_path, sizeof c.producer_path, "%s/%s.producer", c.state_dir, c.slot);
    char err[10000] = "";
    int rc = 0;
    if (mkdir(c.state_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, sizeof err, "cannot create --state-dir %s: %s", c.state_dir,
                 strerror(errno));
        rc = SL_ESYS;
    }
    http_signals_catch();
    if (rc == 0 && !(c.msg = malloc(sizeof *c.msg)))
        rc = SL_ENOMEM;
    uint64_t start = 0;
    if (rc == 0)
        rc = s_prepare(&c, &start, err, sizeof err);
    if (rc == 0)
        rc = pgcdc_stream_run(&c, start, err, sizeof err);
    char q[10100];
    for (char *nl = err; (nl = strpbrk(nl, "\n\t")) != NULL; )
        *nl = ' ';                      /* PostgreSQL's messages span lines */
    if (rc < 0 && !(http_stopping() && c.snapshot_done))
        http_log(HTTP_LOG_ERROR, "failed", "slot=%s code=%s reason=%s", c.slot ? c.slot : "",
                 s_code(rc), http_log_quote(err[0] ? err : sl_strerror(rc), q, sizeof q));
    else
        http_log(HTTP_LOG_INFO, "stopped", "slot=%s published=%" PRIu64 " skipped=%" PRIu64,
                 c.slot, c.published, c.skipped);
    pgcdc_publish_close(&c);
    pgcdc_rels_destroy(&c.rels);
    free(c.msg);
    PQfinish(c.repl);
    PQfinish(c.sql);
    if (rc < 0 && !(http_stopping() && c.snapshot_done))
        return rc == SL_ETIMEOUT ? HTTP_EXIT_UNREACHABLE : HTTP_EXIT_FAILED;
    return HTTP_EXIT_OK;
}
