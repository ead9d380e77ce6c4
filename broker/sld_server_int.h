/*  sld_server_int - private to the server's files: the broker struct they
 *  share, the peer, reply queue and kept-frame types, and the stages'
 *  functions (loop, ingest, subscription commands, admin). The public API
 *  is sld_server.h; sessions, commands and commit have headers of their
 *  own (they include this one). Broker thread only, like everything it
 *  declares. For the server's files (sld_server*.c, sld_loop, sld_session,
 *  sld_commands, sld_ingest, sld_route_ingest, sld_consume, sld_admin*,
 *  sld_groupcommit) and
 *  the unit test of the command table; no other module includes it.  */
#ifndef SLD_SERVER_INT_H
#define SLD_SERVER_INT_H
#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "slc_codec.h"
#include "sld_alarm.h"
#include "sld_alerts.h"
#include "sld_audit.h"
#include "sld_auth.h"
#include "sld_config.h"
#include "sld_delivery.h"
#include "sld_disk.h"
#include "sld_dlq.h"
#include "sld_metrics.h"
#include "sld_metrics_http.h"
#include "sld_metrics_snap.h"
#include "sld_monitor.h"
#include "sld_registry.h"
#include "sld_route_prep.h"
#include "sld_routes.h"
#include "sld_server.h"
#include "sld_store.h"
#include "sld_topics.h"
#include "sld_topicstats.h"
#include "sld_trace.h"

typedef struct sld_commit sld_commit_t;
typedef struct sld_command sld_command_t;

/* Longest ZeroMQ routing id. */
#define SLD_ID_MAX 255

/* The peer a frame came from: always an id, a session once it said Hello. */
typedef struct {
    const uint8_t *id;
    size_t id_len;
    sld_session_t *session;
    zmq_msg_t *raw;             /* the frame's encoding while it is handled, or NULL */
} sld_peer_t;

typedef struct {
    uint8_t id[SLD_ID_MAX];
    size_t id_len;
    zmq_msg_t msg;
} sld_reply_t;

typedef struct {
    sld_reply_t *v;
    size_t n, cap;
} sld_replies_t;

/* A frame kept for the write phase. */
typedef struct {
    uint8_t id[SLD_ID_MAX];
    size_t id_len;
    sld_session_t *session;
    Sluice__Frame *frame;
    const sld_command_t *cmd;   /* FRAME's row in the command table */
    zmq_msg_t raw;              /* FRAME's encoding: stored envelopes are cut from it */
} sld_write_t;

struct sld_server {
    sld_config_t cfg;
    char endpoint[256];
    void *zctx;
    void *router;
    sld_metrics_t *metrics;
    sld_metrics_snap_t *msnap;  /* the numbers handed to the metrics listener; commit histograms */
    sld_metrics_http_t *mhttp;  /* --metrics-listen (NULL: off) */
    uint64_t route_base[SLD_ROUTE_NCOUNTERS + 1], route_last[SLD_ROUTE_NCOUNTERS + 1];
                                /* keep the exported route totals monotonic when
                                   a new table drops routes (sld_server_metrics_tick) */
    sld_store_t *store;
    sld_disk_t *disk;           /* room on the disk ahead of the store's writes */
    bool disk_full;             /* this turn's publishes refused for want of disk */
    sld_topics_t *topics;
    sld_delivery_t *delivery;
    sld_auth_t *auth;
    sld_audit_t *audit;
    sld_monitor_t *monitor;     /* the ROUTER's connection events */
    sld_registry_t *registry;
    sld_dlq_t *dlq;             /* dead letters removed (DlqRemove) */
    sld_routes_t *routes;       /* routing tables: versions, the live one */
    sld_commit_t *commit;       /* the commit coordinator and its helper thread */
    sld_route_prep_t *prep;     /* checks and routing ahead of the transaction (NULL:
                                   route_prep_threads = 0) */
    char **texts;               /* nack texts of the frame being applied (owned) */
    size_t ntexts, captexts;
    zhashx_t *sessions;         /* key -> sld_session_t (owned) */
    uint64_t epoch;
    char instance[33];
    sld_write_t *writes;        /* frames of this turn that write */
    size_t nwrites, capwrites;
    sld_replies_t replies;      /* replies of this turn, sent after commit */
    sld_replies_t wreplies;     /* replies of the write phase (redone on retry) */
    bool turn_committed;        /* the last turn committed: its pump may wait */
    bool revoked;               /* the commit under way revoked an identity */
    uint32_t *appended;         /* topics appended to in the open txn */
    size_t nappended, capappended;
    uint8_t *scratch;           /* envelope packing */
    size_t capscratch;
    Sluice__Confirm *confirms;
    Sluice__Confirm **confirm_ptrs;
    size_t capconfirms;
    slc_span_t *spans;          /* where a kept frame's envelopes lie in its encoding */
    size_t capspans;
    sld_refusal_t *refusals;
    size_t caprefusals;
    sld_session_t **gone;
    size_t ngone, capgone;
    uint64_t next_expiry_ms;
    uint64_t trim_at_ms;        /* give freed heap back to the system then (0: no) */
    uint64_t next_space_ms;     /* when to measure free space again */
    uint64_t space_used;        /* map bytes in use as measured, plus what
                                 * publishes may have taken since */
    bool near_full;             /* the map alarm is raised (sld_alarm): refuse publishes */
    sld_alarm_t *alarm;         /* storage alarms: watermarks and their hysteresis */
    sld_alerts_t *alerts;       /* alert events waiting for `_alerts` */
    sld_topicstats_t *tstats;   /* per topic: published bytes, last publish (metrics, alerts) */
    bool detail_dropped_logged; /* metrics_max_objects was hit once: logged */
    bool room_refused;          /* the last turn with publishes refused them for want of
                                   room (map or disk): /readyz says 503 until one is taken */
    uint64_t t_stored, t_bytes, t_dups, t_nacked; /* this attempt's publishes */
    uint64_t t_prepared, t_prep_inline;     /* this attempt's originals routed with a
                                               prepared result / inline in a prepared turn */
};

/* Log FMT at LEVEL (0 error, 1 warn, 2 info, 3 debug) when cfg.log_level
 * lets it through (sld_server_log.c). */
void sld_server_log(const sld_server_t *self, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One number a log line carries: NAME says its unit when it has one
 * (silent_ms, map_size_bytes, used_percent; a plain count is a noun:
 * topics). */
typedef struct {
    const char *name;
    uint64_t value;
} sld_log_field_t;

/* As sld_server_log, with FIELDS[N]: a JSON line carries each as a number
 * member after msg (docs/operations.md, "Logs"); a text line says only
 * its msg, which names the same numbers. */
void sld_server_log_with(const sld_server_t *self, int level, const sld_log_field_t *fields,
                         size_t n, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Publish the numbers of /metrics when SLD_SNAP_PERIOD_MS passed since the
 * last time (sld_server.c; the loop calls it once per turn; NOW_MS 0: at
 * once). Returns how long the loop may sleep before the next is due: the
 * rest of the period when this turn's numbers were held back, else 1000. */
long sld_server_metrics_tick(sld_server_t *self, uint64_t now_ms);

/* The alert rules of CFG's [alerts] into self->alerts and self->cfg
 * (sld_server.c; start and SIGHUP). */
void sld_server_alert_rules(sld_server_t *self, const sld_config_t *cfg);

/* ------------------------------------------------------- sld_loop.c */

/* ZAP refused a connection (sld_auth_zap_handle's callback). */
void sld_loop_refused(void *arg, const char *name, const char *key, const char *address,
                      const char *why);

/* ------------------------------------------------ sld_groupcommit.c */

/* Create self->commit and register the participants. 0 or a code. */
int sld_groupcommit_wire(sld_server_t *self);

/* Commit the turn: the kept frames and the participants' state in one
 * transaction (with the reserve and map-full retries); their replies wait
 * in self->wreplies. The kept frames are freed. */
void sld_groupcommit_run(sld_server_t *self);

/* Free the kept frames unapplied (destroy). */
void sld_groupcommit_drop(sld_server_t *self);

/* Between turns: while a storage alarm is raised, look again (at most
 * every 200 ms) so that it clears below the low watermark without waiting
 * for a publish; the transition's audit record and alert make the loop
 * commit. */
void sld_groupcommit_watch(sld_server_t *self, uint64_t now_ms);

/* ----------------------------------------------------- sld_ingest.c */

/* Publish and PublishBatch as they arrive: limits, transient fan-out; a
 * durable publish is kept for the write phase (*f_p taken). */
int sld_ingest_on_publish(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);

/* Apply kept publish W in TXN; queue its PublishAck. REFUSE: every message
 * is nacked "storage full"; FAIL != 0: nacked with that code (no TXN).
 * 0 or a failure that dooms the transaction. */
int sld_ingest_apply(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w, bool refuse,
                     int fail);

/* Remember that topic ID was appended to in the open transaction (delivery
 * hears of it after the commit). 0 or SL_ENOMEM. */
int sld_ingest_note_appended(sld_server_t *self, uint32_t id);

/* Free the nack texts of the frame being applied. */
void sld_ingest_texts_free(sld_server_t *self);

/* ------------------------------------------------ sld_route_ingest.c */

/* Route message E, just stored at OFFSET of its topic with SOURCE (the
 * stored source) at NOW, through live TABLE in TXN: derived messages,
 * dead-lettered legs and advisories, chains. Runtime failures of routes
 * are legs, not errors. 0 or a store failure that dooms TXN. */
int sld_route_ingest(sld_server_t *self, sld_txn_t *txn, const slt_route_table_t *table,
                     const Sluice__Envelope *e, const char *source, uint64_t offset,
                     uint64_t now);

/* sld_route_ingest with what the caller knows already: DOC (borrowed;
 * NULL: parsed when a route needs it), the one document slt_doc_decode
 * gives for E's payload (sld_registry_check_doc's), TOPIC_ID (NULL:
 * looked up), the id of E's topic, and PRE (NULL: evaluate here), E's
 * evaluation by TABLE made ahead of the transaction (sld_route_prep_take
 * said it may be used): its steps and mapped outputs are used as they
 * are; what derives from E is evaluated here. */
int sld_route_ingest_doc(sld_server_t *self, sld_txn_t *txn, const slt_route_table_t *table,
                         const Sluice__Envelope *e, const char *source, uint64_t offset,
                         uint64_t now, const cJSON *doc, const uint32_t *topic_id,
                         const sld_route_prepared_t *pre);

/* Backfill (sld_route_backfill.c): run route ROUTE (an index of live
 * TABLE) on message E stored at OFFSET of topic ID, as ingest would have:
 * the whole table is evaluated so the route acts only where it would be
 * reached, and only ROUTE acts (legs, derived messages with the live
 * version in their lineage, which the whole table then routes in turn).
 * REC is the message's trace record (empty: none; the caller owns it):
 * when the route fired or failed it gains the step, marked backfilled,
 * and is written back. *OUTCOME what the route did; *DELIVERED the derived
 * messages it stored. 0 or a store failure that dooms TXN. */
typedef enum {
    SLD_BACKFILL_SKIPPED,       /* predicate false, or not reached */
    SLD_BACKFILL_FIRED,
    SLD_BACKFILL_FAILED         /* a _dlq.routes leg */
} sld_backfill_outcome_t;
int sld_route_backfill(sld_server_t *self, sld_txn_t *txn, const slt_route_table_t *table,
                       size_t route, const Sluice__Envelope *e, uint32_t id, uint64_t offset,
                       uint64_t now, sld_trace_t *rec, sld_backfill_outcome_t *outcome,
                       uint64_t *delivered);

/* RoutesBackfill in the write phase (audited); admin on the topic. */
int sld_route_backfill_apply(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                             bool refuse, int fail);

/* ---------------------------------------------------- sld_consume.c */

int sld_consume_on_subscribe(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);
int sld_consume_on_credit(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);
int sld_consume_on_ack(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);
int sld_consume_on_unsubscribe(sld_server_t *self, const sld_peer_t *peer,
                               Sluice__Frame **f_p);
int sld_consume_on_sub_remove(sld_server_t *self, const sld_peer_t *peer,
                              Sluice__Frame **f_p);

/* ------------------------------------------------------ sld_admin.c */

/* Immediate reads: any session (stats filtered by its grants; key list
 * needs admin, checked by the command table). */
int sld_admin_on_stats(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);
int sld_admin_on_schema_read(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);
int sld_admin_on_mapping_read(sld_server_t *self, const sld_peer_t *peer,
                              Sluice__Frame **f_p);
int sld_admin_on_key_list(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);

/* Queue the reply to kept frame W: Error{RC, WHY} (WHY NULL: RC's name)
 * when RC, else OK_FRAME (NULL: Ok). */
void sld_admin_queue_result(sld_server_t *self, const sld_write_t *w, int rc, const char *why,
                            Sluice__Frame *ok_frame);
/* Write phase: apply kept admin frame W in TXN, queue its reply and audit
 * it. Errors of the request are answered; failures of the transaction are
 * returned (unless FAIL: then the request fails with it). REFUSE unused. */
int sld_admin_apply_topic_create(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                                 bool refuse, int fail);
int sld_admin_apply_keys(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                         bool refuse, int fail);
int sld_admin_apply_registry(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                             bool refuse, int fail);

/* ----------------------------------------------- sld_admin_routes.c */

/* RoutesGet and RoutesList: any session. */
int sld_admin_on_routes_read(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);

/* RoutesApply and RoutesRollback in the write phase (audited). */
int sld_admin_apply_routes(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                           bool refuse, int fail);

/* Trace: what routing did with one stored message (sld_trace's records,
 * the stored envelope's lineage). Subscribe permission on the topic. */
int sld_admin_on_trace(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);

/* ------------------------------------------------- sld_admin_dlq.c */
/* DlqList: the dead letters of a _dlq. topic not removed; subscribe
 * permission on the topic (checked by the command table). */
int sld_admin_on_dlq_list(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);
/* DlqRemove (admin on the topic) and SubSeek (the subscription's owner, a
 * consume grant on it or admin on its pattern) in the write phase,
 * audited. */
int sld_admin_apply_dlq_remove(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                               bool refuse, int fail);
int sld_admin_apply_sub_seek(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                             bool refuse, int fail);
/* GRANTS of a GrantChange as audit text: "publish,subscribe shop.> ...". */
void sld_admin_grants_text(const Sluice__GrantChange *gc, char *out, size_t len);

#endif
