/*  sld_server - the wiring: creates and owns the modules (metrics, audit,
 *  store, disk, auth, registry, removed dead letters (sld_dlq), routes, topics,
 *  delivery, the commit coordinator,
 *  monitor, the metrics snapshot and listener), the ZeroMQ context and the
 *  ROUTER socket; the first transaction (bootstrap), reload, the endpoint,
 *  the numbers /metrics shows (sld_server_metrics_tick). Broker thread only. The
 *  loop is sld_loop, sessions sld_session, the protocol sld_commands with
 *  one file per concern (sld_ingest, sld_route_ingest, sld_consume,
 *  sld_admin, sld_admin_routes, sld_admin_dlq), the commit
 *  sld_groupcommit over sld_commit. It handles no frame itself.  */
#include "sld_server.h"
#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "slc_cert.h"
#include "sld_commit.h"
#include "sld_keys.h"
#include "sld_seal.h"
#include "sld_server_int.h"
#include "sld_session.h"

/* First transaction: the local admin identity holds DATA/admin.cert's key
 * (ADMIN_KEY, NULL in plain text) and the start is audited. */
static int s_bootstrap(sld_server_t *self, const uint8_t *admin_key)
{
    sld_txn_t *txn = NULL;
    bool changed = false;
    uint32_t audit_id;
    char detail[384];
    int rc = sld_store_begin(self->store, true, &txn);
    if (rc == 0 && admin_key)
        rc = sld_auth_ensure_admin(self->auth, txn, admin_key, &changed);
    if (rc == 0 && changed) {
        char z85[41];
        zmq_z85_encode(z85, admin_key, 32);
        sld_audit_add(self->audit, true, NULL, "keys.add", SLD_AUTH_ADMIN, "ok", z85);
    }
    snprintf(detail, sizeof detail, "%s; listening on %s; at rest: %s",
             admin_key ? "CurveZMQ" : "PLAIN TEXT (--insecure-plaintext)", self->endpoint,
             sld_store_seal_key_id(self->store) ? "sealed" : "plain");
    sld_audit_add(self->audit, true, NULL, "broker.start", self->instance, "ok", detail);
    /* _audit keeps security/audit_retention by age and nothing by size, so
     * no record inside the window is ever trimmed. A change is recorded. */
    const sld_topic_info_t *audit = sld_store_topic_by_name(self->store, SLD_AUDIT_TOPIC);
    uint64_t keep = self->cfg.audit_retention_ms;
    bool retain = !audit || audit->max_age_ms != keep || audit->max_bytes != 0;
    if (retain) {
        char was[64] = "a new topic";
        if (audit)
            snprintf(was, sizeof was, "max_age_ms %" PRIu64 ", max_bytes %" PRIu64,
                     audit->max_age_ms, audit->max_bytes);
        snprintf(detail, sizeof detail, "max_age_ms %" PRIu64 "%s, max_bytes 0 "
                 "(security/audit_retention); was %s", keep, keep ? "" : " (keep forever)", was);
        sld_audit_add(self->audit, true, NULL, "audit.retention", SLD_AUDIT_TOPIC, "ok", detail);
    }
    if (rc == 0)
        rc = sld_audit_write(self->audit, txn, &audit_id);
    if (rc == 0 && retain)
        rc = sld_store_topic_set_retention(txn, audit_id, keep, 0);
    if (rc) {
        sld_txn_abort(&txn);
        sld_auth_committed(self->auth, false);
        sld_audit_committed(self->audit, false);
        return rc;
    }
    rc = sld_txn_commit(&txn);
    sld_auth_committed(self->auth, rc == 0);
    sld_audit_committed(self->audit, rc == 0);
    return rc;
}

/* Open the store, with the at-rest key when one is configured. */
static int s_open_store(sld_server_t *self, const sld_config_t *cfg)
{
    sld_store_options_t so;
    uint8_t *key = NULL;
    char why[512];
    int rc = 0;
    sld_store_options_init(&so);
    so.dir = cfg->data_dir;
    so.map_size = cfg->map_size;
    so.map_size_max = cfg->map_size_max;
    so.sync = cfg->sync;
    so.producer_window = cfg->producer_window;
    so.exclusive = true;
    if (cfg->encrypt_at_rest[0]) {
        /* sodium_malloc needs libsodium initialised. */
        key = sld_seal_init() == 0 ? sodium_malloc(SLD_SEAL_KEY_LEN) : NULL;
        if (!key)
            return SL_ENOMEM;
        rc = sld_seal_key_load(cfg->encrypt_at_rest, key, why, sizeof why);
        if (rc) {
            fprintf(stderr, "sluiced: --encrypt-at-rest: %s\n", why);
            goto fail;
        }
        so.seal_key = key;
    }
    rc = sld_store_open(&so, &self->store);
    if (rc == 0)
        rc = sld_disk_new(cfg->data_dir, cfg->disk_reserve, &self->disk);
fail:
    sodium_free(key);
    return rc;
}

/* CurveZMQ server on ROUTER with the key pair of the data dir (made on
 * first start); the ZAP handler first, so no handshake runs without it. */
static int s_secure(sld_server_t *self, uint8_t admin_key[32])
{
    slc_cert_t server, admin;
    bool created_admin = false;
    char why[512];
    int one = 1, rc = sld_keys_setup(self->cfg.data_dir, &server, &admin, &created_admin,
                                     why, sizeof why);
    if (rc) {
        fprintf(stderr, "sluiced: %s\n", why);
        return rc;
    }
    memcpy(admin_key, admin.public_key, 32);
    rc = sld_auth_zap_bind(self->auth, self->zctx);
    if (rc == 0
        && (zmq_setsockopt(self->router, ZMQ_CURVE_SERVER, &one, sizeof one) != 0
            || zmq_setsockopt(self->router, ZMQ_CURVE_SECRETKEY, server.secret_key, 32) != 0
            || zmq_setsockopt(self->router, ZMQ_ZAP_DOMAIN, "sluice", 6) != 0)) {
        fprintf(stderr, "sluiced: cannot enable CurveZMQ: %s\n", zmq_strerror(errno));
        rc = SL_ESYS;
    }
    if (rc == 0) {
        char z85[41];
        slc_key_z85(server.public_key, z85);
        sld_server_log(self, 2, "CurveZMQ on: server public key %s (%s/server.pub); local admin key "
              "%s/admin.cert%s", z85, self->cfg.data_dir, self->cfg.data_dir,
              created_admin ? " (new)" : "");
    }
    slc_cert_wipe(&server);
    slc_cert_wipe(&admin);
    return rc;
}

void sld_server_alert_rules(sld_server_t *self, const sld_config_t *cfg)
{
    sld_alerts_rules_t rules = {
        .lag_max = cfg->alert_lag_max,
        .lag_for_ms = cfg->alert_lag_for_ms,
        .dlq_growth = cfg->alert_dlq_growth,
        .dlq_window_ms = cfg->alert_dlq_window_ms,
        .idle_for_ms = cfg->alert_topic_idle_for_ms,
        .route_errors = cfg->alert_route_errors,
        .route_window_ms = cfg->alert_route_window_ms,
    };
    if (sld_config_patterns(cfg->alert_topic_idle, rules.idle, SLD_CONFIG_PATTERNS_MAX,
                            &rules.nidle, NULL, 0) != 0)
        rules.nidle = 0;                   /* sld_config_load checked them: not reached */
    sld_alerts_set_rules(self->alerts, &rules);
    snprintf(self->cfg.alert_topic_idle, sizeof self->cfg.alert_topic_idle, "%s",
             cfg->alert_topic_idle);
    self->cfg.alert_topic_idle_for_ms = cfg->alert_topic_idle_for_ms;
    self->cfg.alert_route_errors = cfg->alert_route_errors;
    self->cfg.alert_route_window_ms = cfg->alert_route_window_ms;
    self->cfg.alert_lag_max = cfg->alert_lag_max;
    self->cfg.alert_lag_for_ms = cfg->alert_lag_for_ms;
    self->cfg.alert_dlq_growth = cfg->alert_dlq_growth;
    self->cfg.alert_dlq_window_ms = cfg->alert_dlq_window_ms;
}

int sld_server_new(const sld_config_t *cfg, sld_server_t **out)
{
    int rc = SL_ENOMEM;
    sld_server_t *self = calloc(1, sizeof(sld_server_t));
    if (!self)
        return SL_ENOMEM;
    self->cfg = *cfg;
    self->epoch = slc_now_us();
    uint8_t admin_key[32];
    char why[512];
    rc = sld_metrics_new(&self->metrics);
    if (rc == 0)
        rc = sld_metrics_snap_new(&self->msnap);
    /* The listener first, so /healthz answers and /readyz says "starting"
     * while the store opens (its checks at open may take a while). */
    if (rc == 0 && cfg->metrics_listen[0]) {
        rc = sld_metrics_http_new(cfg->metrics_listen, cfg->metrics_public, self->msnap,
                                  &self->mhttp, why, sizeof why);
        if (rc) {
            fprintf(stderr, "sluiced: %s\n", why);
            goto fail;
        }
        sld_server_log(self, 2, "metrics listening on %s, port %u: /metrics, /healthz, /readyz",
                       cfg->metrics_listen, (unsigned) sld_metrics_http_port(self->mhttp));
    }
    if (rc == 0)
        rc = sld_alarm_new(cfg->high_watermark, cfg->low_watermark, &self->alarm);
    if (rc == 0)
        rc = sld_alerts_new(&self->alerts);
    if (rc == 0)
        rc = sld_topicstats_new(&self->tstats);
    if (rc == 0)
        sld_server_alert_rules(self, cfg);
    if (rc == 0)
        rc = sld_audit_new(cfg->audit_file[0] ? cfg->audit_file : NULL,
                           cfg->audit_refusal_interval_ms, &self->audit);
    if (rc == 0)
        rc = s_open_store(self, cfg);
    if (rc == 0)
        rc = sld_auth_new(self->store, cfg->insecure_plaintext, &self->auth);
    if (rc == 0)
        rc = sld_registry_new(self->store, &self->registry);
    if (rc == 0)
        rc = sld_dlq_new(self->store, &self->dlq);
    if (rc == 0)
        rc = sld_routes_new(self->store, self->registry, &self->routes);
    if (rc == 0 && cfg->route_prep_threads)
        rc = sld_route_prep_new(cfg->route_prep_threads, &self->prep);
    if (rc)
        goto fail;
    sld_store_instance_id(self->store, self->instance);
    sld_topics_options_t to = {
        .max_age_ms = cfg->retention_max_age_ms,
        .max_bytes = cfg->retention_max_bytes,
        .trim_interval_ms = cfg->trim_interval_ms,
        .trim_batch = cfg->trim_batch,
        .dedup_window_ms = cfg->dedup_window_ms,
    };
    rc = sld_topics_new(self->store, self->metrics, &to, &self->topics);
    if (rc)
        goto fail;
    sld_delivery_options_t dopts = {
        .ack_wait_ms = cfg->ack_wait_ms,
        .max_deliver = cfg->max_deliver,
        .max_inflight = cfg->max_inflight,
        .max_unacked_bytes = cfg->max_unacked_bytes,
        .deliver_batch = cfg->deliver_batch,
        .max_subscriptions = cfg->max_subscriptions,
        .max_message_bytes = cfg->max_message_bytes,
    };
    sld_outbox_t outbox = { sld_session_outbox_send, self };
    rc = sld_delivery_new(self->store, self->metrics, &dopts, &outbox,
                          &self->delivery);
    if (rc == 0)
        rc = sld_groupcommit_wire(self);
    if (rc)
        goto fail;
    rc = SL_ENOMEM;
    self->sessions = zhashx_new();
    if (!self->sessions)
        goto fail;
    zhashx_set_destructor(self->sessions, sld_session_free);
    rc = SL_ESYS;
    self->zctx = zmq_ctx_new();
    if (!self->zctx)
        goto fail;
    self->router = zmq_socket(self->zctx, ZMQ_ROUTER);
    if (!self->router)
        goto fail;
    int one = 1, linger = 2000;
    /* The transport drops the connection of a peer whose frame passes
     * ZMQ_MAXMSGSIZE, without a word: that bound only keeps one frame from
     * taking unbounded memory. It sits at twice the protocol's limit, so a
     * frame a little too big still reaches us and gets its 413. */
    int64_t maxmsg = 2 * (int64_t) cfg->max_frame_bytes;
    zmq_setsockopt(self->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    /* Credit and the unacked-bytes budget bound what deliveries queue per
     * connection; the high-water mark is the backstop for everything else
     * (replies to a client that does not read): past it a send fails with
     * EAGAIN (ROUTER_MANDATORY), never queues more. */
    int hwm = cfg->max_queued_frames > INT32_MAX ? INT32_MAX : (int) cfg->max_queued_frames;
    zmq_setsockopt(self->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    /* A connection that has not finished its handshake (greeting, CurveZMQ,
     * the ZAP answer) within limits/handshake_timeout is closed by libzmq:
     * an idle or stalled socket holds a descriptor that long, not forever
     * (libzmq's default is 30 s). sld_monitor counts them. */
    int ivl = cfg->handshake_timeout_ms > INT32_MAX ? INT32_MAX : (int) cfg->handshake_timeout_ms;
    zmq_setsockopt(self->router, ZMQ_HANDSHAKE_IVL, &ivl, sizeof ivl);
    rc = sld_monitor_new(self->zctx, self->router, self->metrics, cfg->handshake_timeout_ms,
                         &self->monitor);
    if (rc)
        goto fail;
    rc = SL_ESYS;
    if (!cfg->insecure_plaintext) {
        rc = s_secure(self, admin_key);
        if (rc)
            goto fail;
        rc = SL_ESYS;
    }
    if (zmq_bind(self->router, cfg->listen) != 0) {
        fprintf(stderr, "sluiced: cannot listen on %s: %s\n", cfg->listen, zmq_strerror(errno));
        goto fail;
    }
    size_t elen = sizeof self->endpoint;
    if (zmq_getsockopt(self->router, ZMQ_LAST_ENDPOINT, self->endpoint, &elen) != 0)
        snprintf(self->endpoint, sizeof self->endpoint, "%s", cfg->listen);
    rc = sld_keys_write_endpoint(cfg->data_dir, self->endpoint, cfg->insecure_plaintext,
                                 why, sizeof why);
    if (rc == 0)
        rc = s_bootstrap(self, cfg->insecure_plaintext ? NULL : admin_key);
    sodium_memzero(admin_key, sizeof admin_key);
    if (rc) {
        fprintf(stderr, "sluiced: %s\n", rc == SL_ESYS ? why : "cannot record the start");
        goto fail;
    }
    if (cfg->insecure_plaintext)
        sld_server_log(self, 1, "PLAIN TEXT (--insecure-plaintext): no encryption, no keys, every "
              "client may do everything; for local development only");
    sld_server_metrics_tick(self, 0);      /* ready: the first numbers */
    /* Last: scripts and tests wait for this line before connecting. */
    const sld_log_field_t f[] = { { "topics", sld_store_topic_count(self->store) } };
    sld_server_log_with(self, 2, f, 1, "listening on %s, data in %s (sync %s), %zu topics",
                        self->endpoint, cfg->data_dir, cfg->sync ? "on" : "OFF (unsafe)",
                        sld_store_topic_count(self->store));
    *out = self;
    return 0;
fail:
    sld_server_destroy(&self);
    return rc;
}

void sld_server_destroy(sld_server_t **self_p)
{
    sld_server_t *self = *self_p;
    if (!self)
        return;
    if (self->msnap)            /* /readyz says so while the rest closes */
        sld_metrics_snap_set_state(self->msnap, SLD_SNAP_STOPPING);
    sld_session_drop_queue(&self->replies);
    sld_session_drop_queue(&self->wreplies);
    sld_commit_destroy(&self->commit);      /* joins the helper thread */
    sld_route_prep_destroy(&self->prep);    /* joins its workers */
    free(self->replies.v);
    free(self->wreplies.v);
    sld_groupcommit_drop(self);
    free(self->writes);
    sld_monitor_destroy(&self->monitor);    /* before the socket it watches */
    if (self->router)
        zmq_close(self->router);
    sld_auth_destroy(&self->auth);          /* closes the ZAP socket */
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    sld_delivery_destroy(&self->delivery);
    zhashx_destroy(&self->sessions);
    sld_audit_destroy(&self->audit);
    sld_alerts_destroy(&self->alerts);
    sld_topicstats_destroy(&self->tstats);
    sld_alarm_destroy(&self->alarm);
    sld_routes_destroy(&self->routes);     /* holds copies of the registry's mappings */
    sld_registry_destroy(&self->registry);
    sld_dlq_destroy(&self->dlq);
    sld_ingest_texts_free(self);
    free(self->texts);
    sld_topics_destroy(&self->topics);
    sld_disk_destroy(&self->disk);
    sld_store_destroy(&self->store);
    sld_metrics_http_destroy(&self->mhttp);     /* joins its thread: before the snapshot */
    sld_metrics_snap_destroy(&self->msnap);
    sld_metrics_destroy(&self->metrics);
    free(self->appended);
    free(self->scratch);
    free(self->confirms);
    free(self->confirm_ptrs);
    free(self->spans);
    free(self->refusals);
    free(self->gone);
    free(self);
    *self_p = NULL;
}

/* Route totals over the live table's routes, kept monotonic: when a new
 * table drops a route (a sum goes down) its count stays in the base. */
static void s_route_totals(sld_server_t *self, sld_metrics_values_t *v)
{
    uint64_t now[SLD_ROUTE_NCOUNTERS + 1] = { 0 }, out[SLD_ROUTE_NCOUNTERS + 1];
    Sluice__RoutingStats *rs = NULL;
    if (sld_routes_stats(self->routes, &rs) != 0)
        return;                 /* out of memory: these numbers wait a turn */
    for (size_t i = 0; i < rs->n_routes; i++) {
        now[SLD_ROUTE_MATCHED] += rs->routes[i]->matched;
        now[SLD_ROUTE_DELIVERED] += rs->routes[i]->delivered;
        now[SLD_ROUTE_DROPPED] += rs->routes[i]->dropped;
        now[SLD_ROUTE_DLQ] += rs->routes[i]->dead_lettered;
        now[SLD_ROUTE_ERRORS] += rs->routes[i]->errors;
    }
    now[SLD_ROUTE_NCOUNTERS] = rs->unrouted;
    v->route_version = rs->version;
    sld_routes_stats_free(&rs);
    for (int k = 0; k <= SLD_ROUTE_NCOUNTERS; k++) {
        if (now[k] < self->route_last[k])
            self->route_base[k] += self->route_last[k] - now[k];
        self->route_last[k] = now[k];
        out[k] = self->route_base[k] + now[k];
    }
    v->route_matched = out[SLD_ROUTE_MATCHED];
    v->route_delivered = out[SLD_ROUTE_DELIVERED];
    v->route_dropped = out[SLD_ROUTE_DROPPED];
    v->route_dlq = out[SLD_ROUTE_DLQ];
    v->route_errors = out[SLD_ROUTE_ERRORS];
    v->route_unrouted = out[SLD_ROUTE_NCOUNTERS];
}

/* A topic, or a subscription with its oldest unacked age, to sort by
 * name. */
typedef struct {
    const char *name;
    const sld_topic_info_t *topic;
    const Sluice__SubInfo *sub;
    uint64_t age_ms;
} s_named_t;

static int s_by_name(const void *a, const void *b)
{
    return strcmp(((const s_named_t *) a)->name, ((const s_named_t *) b)->name);
}

/* The per-object rows: the first cfg.metrics_max_objects topics and durable
 * subscriptions by name (SUBS[N] from sld_delivery_stats, AGES[N] their
 * oldest unacked attempts). NULL when out of memory (totals only). */
static sld_metrics_detail_t *s_detail(sld_server_t *self, Sluice__SubInfo **subs,
                                      const uint64_t *ages, size_t n)
{
    size_t ntopics = sld_store_topic_count(self->store), cap = self->cfg.metrics_max_objects;
    s_named_t *tv = calloc(ntopics + 1, sizeof *tv), *sv = calloc(n + 1, sizeof *sv);
    sld_metrics_detail_t *d = NULL;
    size_t nt = 0, ns = 0;
    if (!tv || !sv)
        goto done;
    for (size_t i = 0; i < ntopics; i++) {
        const sld_topic_info_t *t = sld_store_topic_at(self->store, i);
        if (t)
            tv[nt++] = (s_named_t) { .name = t->name, .topic = t };
    }
    for (size_t i = 0; i < n; i++)
        if (!subs[i]->ephemeral)
            sv[ns++] = (s_named_t) { .name = subs[i]->name, .sub = subs[i], .age_ms = ages[i] };
    qsort(tv, nt, sizeof *tv, s_by_name);
    qsort(sv, ns, sizeof *sv, s_by_name);
    d = sld_metrics_detail_new(nt < cap ? nt : cap, ns < cap ? ns : cap);
    if (!d)
        goto done;
    d->dropped_topics = nt > cap ? nt - cap : 0;
    d->dropped_subs = ns > cap ? ns - cap : 0;
    for (size_t i = 0; i < nt && i < cap; i++) {
        const sld_topic_info_t *ti = tv[i].topic;
        sld_snap_topic_t *t = &d->topics[d->ntopics++];
        snprintf(t->name, sizeof t->name, "%s", ti->name);
        t->appended = ti->next_offset;
        t->appended_bytes = sld_topicstats_bytes(self->tstats, ti->id);
        t->messages = ti->messages;
        t->bytes = ti->bytes;
        t->first_offset = ti->first_offset;
        t->next_offset = ti->next_offset;
    }
    for (size_t i = 0; i < ns && i < cap; i++) {
        const Sluice__SubInfo *si = sv[i].sub;
        sld_snap_sub_t *s = &d->subs[d->nsubs++];
        snprintf(s->name, sizeof s->name, "%s", si->name);
        s->pending = si->lag;
        s->unacked = si->in_flight;
        s->oldest_unacked_ms = sv[i].age_ms;
        s->delivered = si->delivered;
        s->redelivered = si->redelivered;
        s->acked = si->acked;
        s->dead_lettered = si->dead_lettered;
    }
    if ((d->dropped_topics || d->dropped_subs) && !self->detail_dropped_logged) {
        self->detail_dropped_logged = true;
        const sld_log_field_t f[] = { { "topics_dropped", d->dropped_topics },
                                      { "subscriptions_dropped", d->dropped_subs } };
        sld_server_log_with(self, 1, f, 2, "metrics: %" PRIu64 " topics and %" PRIu64
                            " subscriptions over broker/metrics_max_objects = %zu are left "
                            "out of the per-object series (sluice_metrics_objects_dropped); "
                            "the first by name are served", d->dropped_topics,
                            d->dropped_subs, cap);
    }
done:
    free(tv);
    free(sv);
    return d;
}

/* The subscription totals into V and, with metrics_per_object, *DETAIL. */
static void s_subs(sld_server_t *self, uint64_t now_ms, sld_metrics_values_t *v,
                   sld_metrics_detail_t **detail)
{
    Sluice__SubInfo **subs = NULL;
    size_t n = 0;
    *detail = NULL;
    if (sld_delivery_stats(self->delivery, &subs, &n) != 0)
        return;                 /* out of memory: these numbers wait a turn */
    uint64_t *ages = calloc(n + 1, sizeof *ages);
    if (ages) {
        sld_delivery_unacked_ages(self->delivery, now_ms, ages, n);
        for (size_t i = 0; i < n; i++) {
            if (subs[i]->ephemeral)
                continue;
            v->subs_pending += subs[i]->lag;
            v->subs_unacked += subs[i]->in_flight;
            if (ages[i] > v->oldest_unacked_ms)
                v->oldest_unacked_ms = ages[i];
        }
        if (self->cfg.metrics_per_object)
            *detail = s_detail(self, subs, ages, n);
    }
    free(ages);
    sld_delivery_stats_free(&subs, n);
}

long sld_server_metrics_tick(sld_server_t *self, uint64_t now_ms)
{
    /* Without a listener nobody reads the snapshot: skip the work. */
    if (!self->mhttp)
        return 1000;
    uint64_t wait = sld_metrics_snap_due(self->msnap, now_ms, now_ms == 0);
    if (wait)
        return (long) wait;
    sld_metrics_values_t v;
    memset(&v, 0, sizeof v);
    v.state = self->near_full || self->disk_full || self->room_refused ? SLD_SNAP_STORAGE_FULL
            : SLD_SNAP_READY;
    v.taken_us = slc_now_us();
    v.start_us = self->epoch;
    for (int i = 0; i < SLD_M_COUNT; i++)
        v.counters[i] = sld_metrics_get(self->metrics, (sld_metric_t) i);
    v.sessions = zhashx_size(self->sessions);
    v.topics = sld_store_topic_count(self->store);
    /* sld_store_usage walks LMDB's freelist: fine at most five times a
     * second, as groupcommit's own measure does. */
    uint64_t used, size;
    sld_store_usage(self->store, &used, &size);
    v.map_used = used;
    v.map_size = size;
    v.map_max = sld_store_map_max(self->store);
    v.alarm_map = sld_alarm_raised(self->alarm, SLD_ALARM_MAP);
    v.alarm_disk = sld_alarm_raised(self->alarm, SLD_ALARM_DISK);
    v.alerts_fired = sld_alerts_fired(self->alerts);
    s_route_totals(self, &v);
    uint64_t now = now_ms ? now_ms : slc_mono_ms();
    sld_metrics_detail_t *detail = NULL;
    s_subs(self, now, &v, &detail);
    sld_metrics_snap_publish(self->msnap, &v, &detail, now);
    return 1000;
}

const char *sld_server_endpoint(const sld_server_t *self)
{
    return self->endpoint;
}

void sld_server_reload(sld_server_t *self, const sld_config_t *cfg)
{
    char reloaded[1024], restart[1024];
    sld_config_diff(&self->cfg, cfg, reloaded, sizeof reloaded, restart, sizeof restart);
    if (cfg->map_size_max != self->cfg.map_size_max)
        sld_store_set_map_max(self->store, cfg->map_size_max);
    self->cfg.map_size_max = cfg->map_size_max;
    sld_alarm_set_watermarks(self->alarm, cfg->high_watermark, cfg->low_watermark);
    sld_server_alert_rules(self, cfg);
    self->cfg.high_watermark = cfg->high_watermark;
    self->cfg.low_watermark = cfg->low_watermark;
    self->cfg.log_level = cfg->log_level;
    self->cfg.metrics_per_object = cfg->metrics_per_object;
    self->cfg.metrics_max_objects = cfg->metrics_max_objects;
#ifndef NDEBUG
    /* Every setting the table calls reloadable was applied above. */
    char left[1024], ignored[1024];
    sld_config_diff(&self->cfg, cfg, left, sizeof left, ignored, sizeof ignored);
    assert(left[0] == 0);
#endif
    sld_server_log(self, 2, "configuration reloaded: %s", reloaded[0] ? reloaded
                   : "no reloadable setting changed");
    if (restart[0])
        sld_server_log(self, 1, "configuration: %s changed, but keep their running values "
                       "until a restart", restart);
}
