/*  sld_groupcommit - the server's commit policy: one write transaction per
 *  loop turn holding every kept frame (each applied by its command-table
 *  row) and the participants' state (delivery, registry, routes, auth,
 *  alerts, audit, sessions, registered here in the order they must run); the
 *  storage alarms (sld_alarm's watermarks and their transitions: log,
 *  audit, counters, `_alerts`), the reserve, the disk check and the
 *  map-full retries around it. Broker thread only. The commit mechanics
 *  are the coordinator's (sld_commit); what a frame does is its command's.
 *
 *  When LMDB reports the map full the transaction is aborted, the map grows
 *  (up to map_size_max) and the kept frames are applied again; at the
 *  ceiling they are applied once more with every publish refused (507),
 *  so acks and subscriptions still commit while publishers see a clear,
 *  retryable error. Nothing is half applied: in-memory effects of writes
 *  happen only after the commit.
 *
 *  Before the first attempt, sld_route_prep does the publishes' schema
 *  checks and routing evaluations on two threads (nothing of the store);
 *  every attempt of the turn uses what is still valid of them.  */
#include <inttypes.h>
#include <time.h>
#include "sld_commands.h"
#include "sld_commit.h"
#include "sld_server_int.h"
#include "sld_session.h"

/* ------------------------------------------------------- participants */

static int s_delivery_persist(void *arg, sld_txn_t *txn)
{
    sld_server_t *self = arg;
    return sld_delivery_persist(self->delivery, txn);
}

static void s_delivery_persisted(void *arg, bool ok)
{
    sld_server_t *self = arg;
    sld_delivery_persisted(self->delivery, ok);
}

static void s_registry_committed(void *arg, bool ok)
{
    sld_server_t *self = arg;
    sld_registry_committed(self->registry, ok);
}

/* After the registry's: a mapping change makes the live table compile
 * again against the committed mappings. */
/* Removed dead-letter marks of this transaction (sld_dlq). */
static void s_dlq_committed(void *arg, bool ok)
{
    sld_server_t *self = arg;
    sld_dlq_committed(self->dlq, ok);
}

static void s_routes_committed(void *arg, bool ok)
{
    sld_server_t *self = arg;
    sld_routes_committed(self->routes, ok);
}

static void s_auth_committed(void *arg, bool ok)
{
    sld_server_t *self = arg;
    self->revoked = sld_auth_committed(self->auth, ok);
}

/* Last among the persists, so that the records of this turn's changes and
 * denials go in. */
static int s_audit_write(void *arg, sld_txn_t *txn)
{
    sld_server_t *self = arg;
    uint32_t audit_id = 0;
    int rc = sld_audit_write(self->audit, txn, &audit_id);
    if (rc == 0 && audit_id)
        rc = sld_ingest_note_appended(self, audit_id);
    return rc;
}

/* Before the audit's: alert events of this turn (storage alarms). */
static int s_alerts_write(void *arg, sld_txn_t *txn)
{
    sld_server_t *self = arg;
    uint32_t id = 0;
    int rc = sld_alerts_write(self->alerts, txn, &id);
    if (rc == 0 && id)
        rc = sld_ingest_note_appended(self, id);
    return rc;
}

static void s_alerts_committed(void *arg, bool ok)
{
    sld_server_t *self = arg;
    sld_alerts_committed(self->alerts, ok);
}

static void s_audit_committed(void *arg, bool ok)
{
    sld_server_t *self = arg;
    sld_audit_committed(self->audit, ok);
}

/* A committed change revoked an identity: its sessions end now. */
static void s_sessions_committed(void *arg, bool ok)
{
    sld_server_t *self = arg;
    (void) ok;
    if (self->revoked)
        sld_session_cut_revoked(self);
    self->revoked = false;
}

static bool s_ahead_ready(void *arg)
{
    sld_server_t *self = arg;
    return sld_delivery_awake(self->delivery);
}

static void s_ahead_run(void *arg, uint64_t now_ms)
{
    sld_server_t *self = arg;
    sld_delivery_pump_ahead(self->delivery, now_ms);
}

int sld_groupcommit_wire(sld_server_t *self)
{
    const sld_commit_ahead_t ahead = { s_ahead_ready, s_ahead_run, self };
    const sld_commit_participant_t parts[] = {
        { s_delivery_persist, s_delivery_persisted, self },
        { NULL, s_registry_committed, self },
        { NULL, s_dlq_committed, self },
        { NULL, s_routes_committed, self },
        { NULL, s_auth_committed, self },
        { s_alerts_write, s_alerts_committed, self },
        { s_audit_write, s_audit_committed, self },
        { NULL, s_sessions_committed, self },
    };
    int rc = sld_commit_new(&ahead, &self->commit);
    for (size_t i = 0; rc == 0 && i < sizeof parts / sizeof parts[0]; i++)
        rc = sld_commit_add(self->commit, &parts[i]);
    return rc;
}

/* ------------------------------------------------------------ attempts */

/* Apply every kept frame and the participants' state in TXN (NULL with
 * FAIL). */
static int s_apply(sld_server_t *self, sld_txn_t *txn, bool refuse, int fail)
{
    int rc = 0;
    sld_session_drop_queue(&self->wreplies);
    sld_audit_attempt(self->audit);
    self->nappended = 0;
    self->t_stored = self->t_bytes = self->t_dups = self->t_nacked = 0;
    sld_topicstats_attempt(self->tstats);
    self->t_prepared = self->t_prep_inline = 0;
    for (size_t i = 0; rc == 0 && i < self->nwrites; i++) {
        const sld_write_t *w = &self->writes[i];
        rc = w->cmd->apply(self, txn, w, refuse, fail);
    }
    if (rc == 0 && txn)
        rc = sld_commit_persist(self->commit, txn);
    return rc;
}

/* One attempt: begin, apply, commit. 0 or the failure. */
static int s_try(sld_server_t *self, bool refuse)
{
    sld_txn_t *txn = NULL;
    int rc = sld_store_begin(self->store, true, &txn);
    if (rc == 0)
        rc = s_apply(self, txn, refuse, 0);
    if (rc) {
        sld_commit_abort(self->commit, &txn);
        return rc;
    }
    return sld_commit_finish(self->commit, &txn, true);
}

/* Monotonic clock in seconds, for the commit-duration histogram. */
static double s_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Publishes stop while less than this is free below the ceiling, so that
 * retention, acks and subscriptions always have pages to commit with (an
 * LMDB delete needs fresh pages too) and can free space again. */
static uint64_t s_reserve(uint64_t map_max)
{
    uint64_t r = map_max / 32;
    return r < (256u << 10) ? 256u << 10 : r;
}

/* Storage alarm KIND changed state: one log line, an audit record by
 * "broker", a counter and a `_alerts` event. */
static void s_alarm_changed(sld_server_t *self, sld_alarm_kind_t kind)
{
    bool up = sld_alarm_raised(self->alarm, kind);
    const char *name = sld_alarm_kind_name(kind);
    char detail[400];
    if (kind == SLD_ALARM_MAP)
        snprintf(detail, sizeof detail, "map %" PRIu64 " KiB used of storage/map_size_max "
                 "%" PRIu64 " KiB; high_watermark %u%%, low_watermark %u%%: %s",
                 self->space_used >> 10, sld_store_map_max(self->store) >> 10,
                 self->cfg.high_watermark, self->cfg.low_watermark,
                 up ? "publishes refused until below the low watermark" : "publishes accepted");
    else
        snprintf(detail, sizeof detail, "disk of %.200s %s", self->cfg.data_dir,
                 up ? "nearly full (storage/disk_reserve released): publishes refused"
                    : "has room again: publishes accepted");
    const sld_log_field_t f[] = { { "map_used_bytes", self->space_used },
                                  { "map_max_bytes", sld_store_map_max(self->store) } };
    sld_server_log_with(self, up ? 1 : 2, f, kind == SLD_ALARM_MAP ? 2 : 0,
                        "storage alarm %s: %s", up ? "raised" : "cleared", detail);
    sld_audit_add(self->audit, false, "broker", up ? "alarm.raised" : "alarm.cleared", name,
                  "ok", detail);
    sld_metrics_add(self->metrics, up ? SLD_M_ALARM_RAISED : SLD_M_ALARM_CLEARED, 1);
    sld_alerts_add(self->alerts, slc_now_us(), "storage_alarm", up,
                   sld_alarm_detail(self->alarm, kind));
}

/* The map alarm (sld_alarm): raised above the high watermark, cleared
 * only below the low one. */
static void s_measure_space(sld_server_t *self, uint64_t now)
{
    self->next_space_ms = now + 200;
    uint64_t used, size, max = sld_store_map_max(self->store);
    sld_store_usage(self->store, &used, &size);
    self->space_used = used;
    if (sld_alarm_map(self->alarm, used, max, s_reserve(max)))
        s_alarm_changed(self, SLD_ALARM_MAP);
    self->near_full = sld_alarm_raised(self->alarm, SLD_ALARM_MAP);
}

/* The disk alarm follows sld_disk's verdict of the turn. */
static void s_disk_alarm(sld_server_t *self)
{
    if (sld_alarm_disk(self->alarm, self->disk_full))
        s_alarm_changed(self, SLD_ALARM_DISK);
}

void sld_groupcommit_watch(sld_server_t *self, uint64_t now_ms)
{
    if (sld_alarm_raised(self->alarm, SLD_ALARM_MAP) && now_ms >= self->next_space_ms)
        s_measure_space(self, now_ms);
    if (sld_alarm_raised(self->alarm, SLD_ALARM_DISK) && self->disk) {
        self->disk_full = sld_disk_room(self->disk, 0, now_ms, false) != 0;
        s_disk_alarm(self);
    }
}

/* The most this turn's publishes can take in the map: their records with
 * index entries and part-empty pages (measured: about 1.35 times a 1 KiB
 * payload, 120 bytes for a 12-byte one). */
static uint64_t s_turn_need(const sld_server_t *self)
{
    uint64_t need = 0;
    for (size_t i = 0; i < self->nwrites; i++) {
        const Sluice__Frame *f = self->writes[i].frame;
        size_t n = f->body_case == SLUICE__FRAME__BODY_PUBLISH_BATCH ? f->publish_batch->n_msgs
                 : f->body_case == SLUICE__FRAME__BODY_PUBLISH ? 1 : 0;
        if (n)
            need += zmq_msg_size((zmq_msg_t *) &self->writes[i].raw) * 3 / 2 + n * 128;
    }
    return need;
}

static void s_write_free(sld_write_t *w)
{
    slc_frame_free(&w->frame);
    zmq_msg_close(&w->raw);
}

void sld_groupcommit_drop(sld_server_t *self)
{
    for (size_t i = 0; i < self->nwrites; i++)
        s_write_free(&self->writes[i]);
    self->nwrites = 0;
}

/* The pure work of the turn's publishes (schema checks, routing), on
 * sld_route_prep's threads, before the transaction begins: every publish
 * envelope in the order s_apply applies them. The results stay valid
 * across the retries of the turn; sld_route_prep_end frees them. */
static void s_prepare(sld_server_t *self)
{
    if (sld_route_prep_begin(self->prep, self->registry, self->routes) != 0)
        return;
    for (size_t i = 0; i < self->nwrites; i++) {
        const Sluice__Frame *f = self->writes[i].frame;
        bool batch = f->body_case == SLUICE__FRAME__BODY_PUBLISH_BATCH;
        if (!batch && f->body_case != SLUICE__FRAME__BODY_PUBLISH)
            continue;
        size_t n = batch ? f->publish_batch->n_msgs : (f->publish->msg ? 1 : 0);
        Sluice__Envelope **msgs = batch ? f->publish_batch->msgs : &f->publish->msg;
        for (size_t k = 0; k < n; k++)
            sld_route_prep_add(self->prep, msgs[k], self->cfg.max_message_bytes);
    }
    sld_route_prep_run(self->prep);
}

void sld_groupcommit_run(sld_server_t *self)
{
    uint64_t now = slc_mono_ms(), max = sld_store_map_max(self->store);
    double started = s_mono_s();
    /* Publishes must never eat into the reserve, or retention could not
     * free anything: measure again when this turn could reach it. */
    uint64_t need = s_turn_need(self);
    if (now >= self->next_space_ms || self->space_used + need + s_reserve(max) > max)
        s_measure_space(self, now);
    bool refuse = self->near_full || self->space_used + need + s_reserve(max) > max;
    self->disk_full = self->disk && sld_disk_room(self->disk, need, now, false) != 0;
    s_disk_alarm(self);
    refuse = refuse || self->disk_full;
    if (self->prep && !refuse)
        s_prepare(self);
    int rc = s_try(self, refuse);
    if ((rc == SL_EFULL || rc == SL_ESTORE) && !refuse && self->disk
        && sld_disk_room(self->disk, need, now, true) != 0) {
        /* The disk filled up between two looks: LMDB says ENOSPC, or EIO
         * when a write came back short. Refuse the publishes, commit the
         * rest into the reserve. */
        self->disk_full = refuse = true;
        s_disk_alarm(self);
        rc = s_try(self, true);
    }
    if (rc == SL_EFULL) {
        sld_metrics_add(self->metrics, SLD_M_COMMIT_FULL, 1);
        while (rc == SL_EFULL && sld_store_grow(self->store) == 0) {
            uint64_t used, size;
            sld_store_usage(self->store, &used, &size);
            const sld_log_field_t f[] = { { "map_size_bytes", size },
                                          { "map_used_bytes", used } };
            sld_server_log_with(self, 2, f, 2, "storage map grown to %" PRIu64 " MiB",
                                size >> 20);
            sld_metrics_add(self->metrics, SLD_M_MAP_GROWN, 1);
            rc = s_try(self, refuse);
        }
        /* At the ceiling with room on the freelist: the pages the last
         * commit freed (a retention pass, say) are LMDB's to reuse only
         * once another commit has followed it. */
        if (rc == SL_EFULL) {
            s_measure_space(self, now);
            refuse = self->near_full;
            if (!refuse && sld_store_settle(self->store) == 0)
                rc = s_try(self, false);
        }
        if (rc == SL_EFULL) {
            refuse = true;
            rc = s_try(self, true);
        }
    }
    if (need)
        self->room_refused = refuse;
    if (rc == 0 && !refuse)
        self->space_used += need;
    if (rc == 0) {
        sld_metrics_add(self->metrics, SLD_M_COMMITS, 1);
        sld_metrics_add(self->metrics, SLD_M_PUBLISHED, self->t_stored);
        sld_metrics_add(self->metrics, SLD_M_PUBLISH_BYTES, self->t_bytes);
        sld_metrics_add(self->metrics, SLD_M_DUPLICATES, self->t_dups);
        sld_metrics_add(self->metrics, SLD_M_NACKED, self->t_nacked);
        sld_metrics_add(self->metrics, SLD_M_ROUTE_PREPARED, self->t_prepared);
        sld_metrics_add(self->metrics, SLD_M_ROUTE_PREP_INLINE, self->t_prep_inline);
        sld_metrics_snap_commit(self->msnap, s_mono_s() - started, self->t_stored);
        sld_topicstats_committed(self->tstats, slc_mono_ms());
        for (size_t i = 0; i < self->nappended; i++)
            sld_delivery_topic_appended(self->delivery, self->appended[i]);
    }
    else {
        sld_server_log(self, 0, "commit failed: %s", slc_strerror(rc));
        s_apply(self, NULL, false, rc == SL_EFULL || rc == SL_ESTORE ? rc : SL_ESTORE);
        sld_metrics_add(self->metrics, SLD_M_NACKED, self->t_nacked);
    }
    self->nappended = 0;
    if (self->prep)
        sld_route_prep_end(self->prep);
    sld_groupcommit_drop(self);
}
