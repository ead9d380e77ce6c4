/*  pgcdc_publish - events into sluice, exactly once, and the flush
 *  position that follows from the broker's durable confirms.
 *
 *  Numbering: the stream's producer id is the slot's (a producer_id_file
 *  in the state dir). Logical decoding replays the transactions after the
 *  slot's confirmed position identically (same order, same changes), so
 *  an event's sequence is a function of (commit LSN, index in the
 *  transaction) given one anchor: the state file's (flushed_lsn,
 *  flushed_seq), "every transaction ending at or before flushed_lsn is
 *  stored and its last event has sequence flushed_seq". The k-th event
 *  after it has sequence flushed_seq + k; at start the broker says the
 *  last sequence it stored for the id, and events numbered at or below it
 *  are skipped (already stored), the rest published in order, so the SDK's
 *  own numbering (last + 1) gives each exactly that sequence (checked).
 *  The anchor moves (and the file is written and fsynced) before the
 *  position is sent to PostgreSQL, and only over transactions whose every
 *  event the broker confirmed as durable.  Main thread.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pgcdc_int.h"
#include "http_common.h"

static void s_fatal(pgcdc_t *self, int rc, const char *fmt, const char *a, const char *b)
{
    if (self->fatal)
        return;
    self->fatal = rc ? rc : SL_EINTERNAL;
    snprintf(self->fatal_msg, sizeof self->fatal_msg, fmt, a ? a : "", b ? b : "");
}

static void s_on_confirm(const sl_confirm_t *c, void *arg)
{
    pgcdc_t *self = arg;
    if (c->rc != 0) {
        s_fatal(self, c->rc, "the broker refused an event on %s: %s", c->topic,
                c->text ? c->text : sl_strerror(c->rc));
        return;
    }
    if (c->seq <= self->acked_upto)
        return;
    if (c->seq - self->acked_upto >= PGCDC_RING) {
        s_fatal(self, SL_EINTERNAL, "confirm far ahead of the stored sequence on %s%s", c->topic, "");
        return;
    }
    self->ring[c->seq % PGCDC_RING] = 1;
    while (self->ring[(self->acked_upto + 1) % PGCDC_RING]) {
        self->ring[(self->acked_upto + 1) % PGCDC_RING] = 0;
        self->acked_upto++;
    }
}

/* Snapshot events are not numbered: only their outcome matters. */
static void s_on_snapshot_confirm(const sl_confirm_t *c, void *arg)
{
    if (c->rc != 0)
        s_fatal(arg, c->rc, "the broker refused a snapshot event on %s: %s", c->topic,
                c->text ? c->text : sl_strerror(c->rc));
}

int pgcdc_publish_open(pgcdc_t *self, char *err, size_t errlen)
{
    sl_options_t o = self->client_opts;
    o.producer_id_file = self->producer_path;
    o.max_unacked = PGCDC_RING / 2;
    int rc = sl_client_new(&o, &self->client);
    if (rc < 0) {
        char why[512] = "";
        sl_options_check(&o, why, sizeof why);
        snprintf(err, errlen, "cannot create the client (%s): %s", sl_strerror(rc),
                 rc == SL_EBUSY ? "another sluice-pgcdc runs for this slot" : why);
        return rc;
    }
    if (!(self->ring = calloc(PGCDC_RING, 1)))
        return SL_ENOMEM;
    uint64_t next = 0;
    if ((rc = sl_publish_next_seq(self->client, &next)) < 0) {
        snprintf(err, errlen, "the broker did not answer (%s)", sl_strerror(rc));
        return rc;
    }
    self->broker_last = next - 1;
    if (self->broker_last < self->flushed_seq) {
        snprintf(err, errlen, "the broker stored events up to sequence %" PRIu64 " for slot "
                 "%s but %s says %" PRIu64 " were stored: the broker's data or %s was lost "
                 "(docs/adapters.md, \"When the slot or the state is lost\")",
                 self->broker_last, self->slot, self->state_path, self->flushed_seq,
                 self->producer_path);
        return SL_ESTALE;
    }
    self->numbered = self->flushed_seq;
    self->acked_upto = self->broker_last;
    return 0;
}

void pgcdc_publish_close(pgcdc_t *self)
{
    sl_client_destroy(&self->client);
    free(self->ring);
    self->ring = NULL;
    free(self->commits);
    self->commits = NULL;
}

int pgcdc_relation(pgcdc_t *self, sl_client_t *client, uint32_t relid, const char *nsp,
                   const char *relname, int natts, const pgcdc_column_t *atts,
                   pgcdc_rel_t **out, char *err, size_t errlen)
{
    bool changed = false;
    int rc = pgcdc_rels_put(self->rels, relid, nsp, relname, natts, atts, out, &changed,
                            err, errlen);
    if (rc < 0 || !changed)
        return rc;
    pgcdc_rel_t *rel = *out;
    char *schema = pgcdc_event_schema(rel);
    if (!schema)
        return SL_ENOMEM;
    uint32_t version = 0;
    bool existed = false;
    /* Compatibility NONE: the database, not the registry, decides what a
     * table looks like (a column type may change); each shape is a version. */
    rc = sl_schema_register(client, rel->topic, schema, "NONE", false, &version, &existed);
    free(schema);
    if (rc == 0)
        rc = sl_topic_set_schema(client, rel->topic, rel->topic, 0, NULL);
    char q[300];
    if (rc < 0) {
        /* Events still flow: the registry is for routes and mappings. */
        http_log(HTTP_LOG_WARN, "schema_not_registered", "subject=%s code=%s reason=%s",
                 rel->topic, sl_strerror(rc),
                 http_log_quote(sl_client_last_error(client), q, sizeof q));
        return 0;
    }
    if (!existed || rel->version != version)
        http_log(HTTP_LOG_INFO, "schema_registered", "subject=%s version=%u columns=%d",
                 rel->topic, version, rel->ncols);
    rel->version = version;
    return 0;
}

int pgcdc_publish_event(pgcdc_t *self, sl_client_t *client, const pgcdc_rel_t *rel,
                        char op, uint64_t lsn, char *event, bool numbered,
                        char *err, size_t errlen)
{
    if (!event) {
        snprintf(err, errlen, "cannot build an event of %s (column count differs from "
                 "its relation, or out of memory)", rel->qualified);
        return SL_EINVAL;
    }
    if (numbered && ++self->numbered <= self->broker_last) {
        self->skipped++;
        free(event);
        return 0;
    }
    if (numbered && self->skipped && self->numbered == self->broker_last + 1)
        http_log(HTTP_LOG_INFO, "resumed", "slot=%s skipped=%" PRIu64 " (stored before "
                 "the restart) next_seq=%" PRIu64, self->slot, self->skipped, self->numbered);
    char ops[2] = { op, 0 }, lsn_text[24];
    sl_header_t headers[] = {
        { "pg-op", ops },
        { "pg-table", rel->qualified },
        { "pg-lsn", pgcdc_lsn_text(lsn, lsn_text, sizeof lsn_text) },
    };
    sl_message_t m = {
        .topic = rel->topic, .payload = event, .len = strlen(event),
        .content_type = "application/json", .headers = headers, .nheaders = 3,
    };
    uint64_t seq = 0;
    int rc;
    /* A broker down for longer than block_ms with max_unacked events in
     * flight: wait for it rather than fail (the message was not queued). */
    while ((rc = sl_publish(client, &m, numbered ? s_on_confirm : s_on_snapshot_confirm, self,
                            &seq)) == SL_EBUSY && !http_stopping()) {
        http_log(HTTP_LOG_WARN, "broker_busy", "slot=%s unconfirmed=%zu", self->slot,
                 sl_unconfirmed(client));
        (void) sl_poll(client, 1000);
    }
    free(event);
    if (rc < 0) {
        snprintf(err, errlen, "cannot publish to %s: %s", rel->topic, sl_strerror(rc));
        return rc;
    }
    if (numbered && seq != self->numbered) {
        snprintf(err, errlen, "event of %s got sequence %" PRIu64 ", expected %" PRIu64
                 " (another producer uses %s?)", rel->qualified, seq, self->numbered,
                 self->producer_path);
        return SL_ESTALE;
    }
    self->published++;
    return 0;
}

int pgcdc_publish_commit(pgcdc_t *self, uint64_t end_lsn, char *err, size_t errlen)
{
    if (self->ncommits == self->capcommits) {
        size_t cap = self->capcommits ? self->capcommits * 2 : 1024;
        pgcdc_commit_t *v = realloc(self->commits, cap * sizeof *v);
        if (!v) {
            snprintf(err, errlen, "out of memory");
            return SL_ENOMEM;
        }
        self->commits = v;
        self->capcommits = cap;
    }
    self->commits[self->ncommits++] = (pgcdc_commit_t) { end_lsn, self->numbered };
    return 0;
}

int pgcdc_publish_flushable(pgcdc_t *self, uint64_t idle_lsn, char *err, size_t errlen)
{
    if (self->fatal) {
        snprintf(err, errlen, "%s", self->fatal_msg);
        return self->fatal;
    }
    uint64_t lsn = self->flushed_lsn, seq = self->flushed_seq;
    size_t done = 0;
    while (done < self->ncommits && self->commits[done].last_seq <= self->acked_upto) {
        lsn = self->commits[done].end_lsn;
        seq = self->commits[done].last_seq;
        done++;
    }
    if (done) {
        memmove(self->commits, self->commits + done,
                (self->ncommits - done) * sizeof *self->commits);
        self->ncommits -= done;
    }
    /* Idle: nothing in flight, so everything PostgreSQL decoded up to
     * IDLE_LSN (a keepalive's or a heartbeat's position) is in sluice. */
    if (!self->in_txn && self->ncommits == 0 && self->acked_upto >= self->numbered
        && idle_lsn > lsn) {
        lsn = idle_lsn;
        seq = self->numbered;
    }
    if (lsn <= self->flushed_lsn)
        return 0;
    self->flushed_lsn = lsn;
    self->flushed_seq = seq;
    return pgcdc_state_save(self, err, errlen);
}
