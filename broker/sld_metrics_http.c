/*  sld_metrics_http - libmicrohttpd on its own thread, answering GET/HEAD
 *  /metrics, /healthz and /readyz from a copy of the latest snapshot. Each
 *  request copies the snapshot out (sld_metrics_snap_read) and formats it;
 *  nothing here is shared with the loop but that copy. The series names
 *  and their meaning are listed in docs/operations.md, "Metrics": keep the
 *  two in step. Per-topic and per-subscription series come from the
 *  snapshot's detail rows when broker/metrics_per_object is on; the loop
 *  has already capped and sorted them.  */
#include "sld_metrics_http.h"
#include <arpa/inet.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "slc.h"
#include "sluice_codes.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"          /* meson passes the project version */
#endif

struct sld_metrics_http {
    struct MHD_Daemon *daemon;
    sld_metrics_snap_t *snap;           /* borrowed */
    uint16_t port;
};

/* ------------------------------------------------------------ formatting */

/* The counters of sld_metrics under their Prometheus names. A counter
 * without a row here is still exported, as sluice_broker_events_total
 * {name="<its dotted name>"}, so none goes missing when one is added. */
typedef struct {
    const char *name;
    const char *help;
} s_series_t;

static const s_series_t s_counters[SLD_M_COUNT] = {
    [SLD_M_PUBLISHED] = { "sluice_messages_stored_total",
        "Messages stored by publishes (committed)." },
    [SLD_M_PUBLISH_BYTES] = { "sluice_messages_stored_bytes_total",
        "Payload bytes of the messages stored by publishes." },
    [SLD_M_DUPLICATES] = { "sluice_publish_duplicates_total",
        "Publishes recognised as resends and answered with the original offset." },
    [SLD_M_NACKED] = { "sluice_publish_refused_total",
        "Messages of publishes refused (limits, permissions, schema, storage full)." },
    [SLD_M_SCHEMA_INVALID] = { "sluice_schema_rejections_total",
        "Publishes refused by their topic's schema." },
    [SLD_M_ROUTE_PREPARED] = { "sluice_route_prepared_total",
        "Published messages routed with the evaluation made ahead of the transaction." },
    [SLD_M_ROUTE_PREP_INLINE] = { "sluice_route_prep_inline_total",
        "Published messages of a prepared turn routed inline instead." },
    [SLD_M_TRANSIENT] = { "sluice_transient_messages_total",
        "Transient (not stored) messages fanned out." },
    [SLD_M_COMMITS] = { "sluice_commits_total",
        "Write transactions committed." },
    [SLD_M_COMMIT_FULL] = { "sluice_commit_map_full_total",
        "Commits that found the LMDB map full." },
    [SLD_M_MAP_GROWN] = { "sluice_map_grown_total",
        "Times the LMDB map grew." },
    [SLD_M_DELIVERED] = { "sluice_deliveries_total",
        "First deliveries of messages to subscriptions." },
    [SLD_M_REDELIVERED] = { "sluice_redeliveries_total",
        "Deliveries of a message again (attempt > 1)." },
    [SLD_M_ACKED] = { "sluice_acks_total",
        "Acks applied." },
    [SLD_M_ACKS_REFUSED] = { "sluice_acks_refused_total",
        "Acks refused (stale or unknown)." },
    [SLD_M_NACKS] = { "sluice_nacks_total",
        "Nacks from consumers." },
    [SLD_M_DEAD_LETTERED] = { "sluice_dead_letters_total",
        "Messages moved to a subscription's dead-letter topic (_dlq.<sub>)." },
    [SLD_M_UNREADABLE] = { "sluice_unreadable_records_total",
        "Stored records that could not be read or opened (damaged, or sealed with a "
        "key the broker lacks)." },
    [SLD_M_EPHEMERAL_DROPPED] = { "sluice_transient_dropped_total",
        "Transient messages not sent for lack of credit." },
    [SLD_M_TRIMMED] = { "sluice_retention_trimmed_total",
        "Records removed by retention." },
    [SLD_M_SESSIONS] = { "sluice_sessions_opened_total",
        "Client sessions opened." },
    [SLD_M_SESSIONS_EXPIRED] = { "sluice_sessions_expired_total",
        "Client sessions dropped after silence." },
    [SLD_M_FRAMES_IN] = { "sluice_frames_received_total",
        "Protocol frames received." },
    [SLD_M_AUTH_REFUSED] = { "sluice_auth_failures_total",
        "Connections refused at the handshake (unknown or revoked key)." },
    [SLD_M_CONN_ACCEPTED] = { "sluice_connections_accepted_total",
        "TCP or IPC connections accepted." },
    [SLD_M_HANDSHAKE_TIMEOUT] = { "sluice_handshake_timeouts_total",
        "Connections closed because the handshake did not finish in time." },
    [SLD_M_HANDSHAKE_FAILED] = { "sluice_handshake_failures_total",
        "Connections that ended in the handshake otherwise (peer left, protocol error)." },
    [SLD_M_SESSIONS_REVOKED] = { "sluice_sessions_revoked_total",
        "Sessions closed because their key was revoked." },
    [SLD_M_ALARM_RAISED] = { "sluice_storage_alarms_raised_total",
        "Storage alarms raised (map above storage/high_watermark, or disk nearly full)." },
    [SLD_M_ALARM_CLEARED] = { "sluice_storage_alarms_cleared_total",
        "Storage alarms cleared (map below storage/low_watermark, or disk room again)." },
};

static bool s_is_error(int i)
{
    return i >= SLD_M_ERR_MALFORMED && i <= SLD_M_ERR_OTHER;
}

static void s_head(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void s_gauge(FILE *out, const char *name, const char *help, uint64_t v)
{
    s_head(out, name, "gauge", help);
    fprintf(out, "%s %" PRIu64 "\n", name, v);
}

static void s_counter(FILE *out, const char *name, const char *help, uint64_t v)
{
    s_head(out, name, "counter", help);
    fprintf(out, "%s %" PRIu64 "\n", name, v);
}

/* A bound as Prometheus writes it ("0.005", "1", "20000"). */
static void s_bound(char *buf, size_t len, double b)
{
    snprintf(buf, len, "%.6g", b);
}

static void s_histogram(FILE *out, const char *name, const char *help, const sld_hist_t *h,
                        const double *bounds, size_t n)
{
    char le[32];
    uint64_t cum = 0;
    s_head(out, name, "histogram", help);
    for (size_t i = 0; i < n; i++) {
        cum += h->buckets[i];
        s_bound(le, sizeof le, bounds[i]);
        fprintf(out, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, le, cum);
    }
    fprintf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
    fprintf(out, "%s_sum %.9g\n", name, h->sum);
    fprintf(out, "%s_count %" PRIu64 "\n", name, h->count);
}

/* VALUE as a label value of the text format: \\, \" and \n escaped. */
static void s_label(FILE *out, const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            fputc('\\', out);
        if (*p == '\n')
            fputs("\\n", out);
        else
            fputc(*p, out);
    }
}

/* One per-object series: its head, then one sample per row. FIELD is the
 * byte offset of a uint64_t in the row; SCALE divides it (1000: ms to s). */
typedef struct {
    const char *name, *type, *help;
    size_t field;
    unsigned scale;
} s_object_series_t;

#define S_TOPIC(f) offsetof(sld_snap_topic_t, f)
#define S_SUB(f) offsetof(sld_snap_sub_t, f)
_Static_assert(S_TOPIC(name) == 0 && S_SUB(name) == 0, "s_objects reads a row's name first");

static const s_object_series_t s_topic_series[] = {
    { "sluice_topic_appended_messages_total", "counter", "Messages appended to the topic "
      "since it was created, by publishes and routes (its next offset).", S_TOPIC(appended), 1 },
    { "sluice_topic_appended_bytes_total", "counter", "Payload bytes appended to the topic "
      "by publishes and routes since the broker started.", S_TOPIC(appended_bytes), 1 },
    { "sluice_topic_stored_messages", "gauge", "Messages stored in the topic (after "
      "retention).", S_TOPIC(messages), 1 },
    { "sluice_topic_stored_bytes", "gauge", "Bytes the topic's stored records take "
      "(record header and envelope).", S_TOPIC(bytes), 1 },
    { "sluice_topic_first_offset", "gauge", "Oldest stored offset of the topic (equal to "
      "the next offset when it is empty).", S_TOPIC(first_offset), 1 },
    { "sluice_topic_next_offset", "gauge", "Offset the next message appended to the topic "
      "gets.", S_TOPIC(next_offset), 1 },
};

static const s_object_series_t s_sub_series[] = {
    { "sluice_subscription_pending_messages", "gauge", "Messages stored on the "
      "subscription's topics and not acked by it (its lag).", S_SUB(pending), 1 },
    { "sluice_subscription_unacked_messages", "gauge", "Messages delivered to the "
      "subscription and not acked (in flight, or waiting to be sent again).",
      S_SUB(unacked), 1 },
    { "sluice_subscription_oldest_unacked_age_seconds", "gauge", "How long ago the oldest "
      "delivery attempt still waiting for its ack was sent (0: none).",
      S_SUB(oldest_unacked_ms), 1000 },
    { "sluice_subscription_delivered_total", "counter", "First deliveries to the "
      "subscription since the broker started.", S_SUB(delivered), 1 },
    { "sluice_subscription_redelivered_total", "counter", "Deliveries again (attempt > 1) "
      "to the subscription since the broker started.", S_SUB(redelivered), 1 },
    { "sluice_subscription_acked_total", "counter", "Acks the subscription applied since "
      "the broker started.", S_SUB(acked), 1 },
    { "sluice_subscription_dead_lettered_total", "counter", "Messages of the subscription "
      "moved to _dlq.<subscription> since the broker started.", S_SUB(dead_lettered), 1 },
};

static void s_objects(FILE *out, const s_object_series_t *series, size_t nseries,
                      const char *label, const void *rows, size_t nrows, size_t rowsize)
{
    for (size_t s = 0; s < nseries; s++) {
        s_head(out, series[s].name, series[s].type, series[s].help);
        for (size_t i = 0; i < nrows; i++) {
            const char *row = (const char *) rows + i * rowsize;
            uint64_t val;
            memcpy(&val, row + series[s].field, sizeof val);
            fprintf(out, "%s{%s=\"", series[s].name, label);
            s_label(out, row);          /* each row starts with its name */
            if (series[s].scale == 1)
                fprintf(out, "\"} %" PRIu64 "\n", val);
            else
                fprintf(out, "\"} %.3f\n", (double) val / series[s].scale);
        }
    }
}

static void s_detail(FILE *out, const sld_metrics_detail_t *d)
{
    s_head(out, "sluice_metrics_objects_dropped", "gauge", "Topics or subscriptions left "
           "out of the per-object series over broker/metrics_max_objects (the first by "
           "name are served).");
    fprintf(out, "sluice_metrics_objects_dropped{kind=\"topic\"} %" PRIu64 "\n",
            d->dropped_topics);
    fprintf(out, "sluice_metrics_objects_dropped{kind=\"subscription\"} %" PRIu64 "\n",
            d->dropped_subs);
    s_objects(out, s_topic_series, sizeof s_topic_series / sizeof s_topic_series[0], "topic",
              d->topics, d->ntopics, sizeof d->topics[0]);
    s_objects(out, s_sub_series, sizeof s_sub_series / sizeof s_sub_series[0],
              "subscription", d->subs, d->nsubs, sizeof d->subs[0]);
}

int sld_metrics_http_format(const sld_metrics_values_t *v, const sld_metrics_detail_t *d,
                            uint64_t now_us, FILE *out)
{
    s_head(out, "sluice_build_info", "gauge", "The broker's version; always 1.");
    fprintf(out, "sluice_build_info{version=\"%s\"} 1\n", SLUICE_VERSION);
    s_gauge(out, "sluice_ready", "1 when /readyz answers 200 (store open, not shutting "
            "down, no storage alarm), else 0.", v->state == SLD_SNAP_READY);
    s_head(out, "sluice_start_time_seconds", "gauge",
           "When the broker started, in seconds since the epoch.");
    fprintf(out, "sluice_start_time_seconds %.3f\n", (double) v->start_us / 1e6);
    s_head(out, "sluice_snapshot_age_seconds", "gauge",
           "How old the numbers of this scrape are (the loop publishes them at most "
           "every 200 ms).");
    fprintf(out, "sluice_snapshot_age_seconds %.3f\n",
            v->taken_us && now_us > v->taken_us ? (double) (now_us - v->taken_us) / 1e6 : 0.0);
    for (int i = 0; i < SLD_M_COUNT; i++)
        if (s_counters[i].name)
            s_counter(out, s_counters[i].name, s_counters[i].help, v->counters[i]);
    s_head(out, "sluice_errors_total", "counter",
           "Error replies sent to clients, by result code.");
    for (int i = 0; i < SLD_M_COUNT; i++)
        if (s_is_error(i)) {
            const char *dotted = sld_metrics_name((sld_metric_t) i);
            const char *dot = strchr(dotted, '.');
            fprintf(out, "sluice_errors_total{code=\"%s\"} %" PRIu64 "\n",
                    dot ? dot + 1 : dotted, v->counters[i]);
        }
    bool others = false;
    for (int i = 0; i < SLD_M_COUNT; i++)
        if (!s_counters[i].name && !s_is_error(i)) {
            if (!others)
                s_head(out, "sluice_broker_events_total", "counter",
                       "Broker counters without a series of their own, by their "
                       "`sluice stats` name.");
            others = true;
            fprintf(out, "sluice_broker_events_total{name=\"%s\"} %" PRIu64 "\n",
                    sld_metrics_name((sld_metric_t) i), v->counters[i]);
        }
    s_gauge(out, "sluice_connections", "Client sessions open (connected clients that "
            "said Hello).", v->sessions);
    s_gauge(out, "sluice_topics", "Topics in the store.", v->topics);
    s_gauge(out, "sluice_map_used_bytes", "Bytes of the LMDB map in use (pages on the "
            "freelist not counted).", v->map_used);
    s_gauge(out, "sluice_map_size_bytes", "Current size of the LMDB map.", v->map_size);
    s_gauge(out, "sluice_map_max_bytes", "Growth ceiling of the LMDB map "
            "(storage/map_size_max).", v->map_max);
    s_head(out, "sluice_alarm", "gauge", "1 while the storage alarm of this kind is raised "
           "(publishes refused), else 0.");
    fprintf(out, "sluice_alarm{kind=\"map\"} %d\n", v->alarm_map ? 1 : 0);
    fprintf(out, "sluice_alarm{kind=\"disk\"} %d\n", v->alarm_disk ? 1 : 0);
    s_gauge(out, "sluice_subscriptions_pending_messages", "Messages stored and not yet "
            "acked, summed over the durable subscriptions (their lag).", v->subs_pending);
    s_gauge(out, "sluice_subscriptions_unacked_messages", "Messages delivered and not "
            "acked, summed over the durable subscriptions.", v->subs_unacked);
    s_head(out, "sluice_subscriptions_oldest_unacked_age_seconds", "gauge",
           "How long ago the oldest delivery attempt still waiting for its ack was sent, "
           "over every durable subscription (0: none).");
    fprintf(out, "sluice_subscriptions_oldest_unacked_age_seconds %.3f\n",
            (double) v->oldest_unacked_ms / 1000.0);
    s_counter(out, "sluice_alerts_fired_total", "Alert events that fired (state "
              "\"firing\" on _alerts), every rule together.", v->alerts_fired);
    s_gauge(out, "sluice_route_table_version", "Live routing table version (0: none).",
            v->route_version);
    s_counter(out, "sluice_route_matched_total", "Messages a route's topic and predicate "
              "matched, summed over the routes.", v->route_matched);
    s_counter(out, "sluice_route_delivered_total", "Derived messages routes stored.",
              v->route_delivered);
    s_counter(out, "sluice_route_dropped_total", "Messages routes dropped.",
              v->route_dropped);
    s_counter(out, "sluice_route_dead_lettered_total", "Legs routes sent to _dlq.routes, "
              "by action or failure.", v->route_dlq);
    s_counter(out, "sluice_route_errors_total", "Predicate or mapping failures of routes.",
              v->route_errors);
    s_counter(out, "sluice_route_unrouted_total", "Messages no route matched (while a "
              "table was live).", v->route_unrouted);
    s_histogram(out, "sluice_commit_duration_seconds", "Time of one group commit, from the "
                "start of the turn's write phase to durable (checks and routing, apply, "
                "write, fsync; map-full retries included).", &v->commit_seconds, sld_hist_seconds_bounds,
                SLD_HIST_SECONDS_N);
    s_histogram(out, "sluice_commit_batch_messages", "Messages stored by one group commit "
                "(0 for commits of acks, cursors or admin only).", &v->commit_batch,
                sld_hist_batch_bounds, SLD_HIST_BATCH_N);
    if (d)
        s_detail(out, d);
    return ferror(out) ? SL_ESYS : 0;
}

/* ------------------------------------------------------------- requests */

static enum MHD_Result s_reply(struct MHD_Connection *c, unsigned status, const char *ctype,
                               char *body, size_t len, bool owned)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (!r) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result s_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    return s_reply(c, status, "text/plain; charset=utf-8", (char *) text, strlen(text), false);
}

static const char *s_not_ready(sld_snap_state_t state)
{
    switch (state) {
    case SLD_SNAP_STARTING:
        return "not ready: starting, the store is not open yet\n";
    case SLD_SNAP_STORAGE_FULL:
        return "not ready: storage alarm (map or disk nearly full): publishes are refused\n";
    case SLD_SNAP_STOPPING:
        return "not ready: shutting down\n";
    case SLD_SNAP_READY:
        break;
    }
    return "ready\n";
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_size, void **ctx)
{
    sld_metrics_http_t *self = cls;
    (void) version;
    (void) upload_data;
    if (!*ctx) {                /* first call: headers only */
        *ctx = self;
        return MHD_YES;
    }
    if (*upload_size) {         /* a body is not wanted: drop it */
        *upload_size = 0;
        return MHD_YES;
    }
    bool known = strcmp(url, "/metrics") == 0 || strcmp(url, "/healthz") == 0
                 || strcmp(url, "/readyz") == 0;
    if (!known)
        return s_text(c, MHD_HTTP_NOT_FOUND, "not found: this listener serves /metrics, "
                      "/healthz and /readyz\n");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return s_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: GET or HEAD\n");
    if (strcmp(url, "/healthz") == 0)
        return s_text(c, MHD_HTTP_OK, "ok\n");
    sld_metrics_values_t v;
    const sld_metrics_detail_t *d = NULL;
    sld_metrics_snap_read(self->snap, &v, strcmp(url, "/metrics") == 0 ? &d : NULL);
    if (strcmp(url, "/readyz") == 0)
        return s_text(c, v.state == SLD_SNAP_READY ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                      s_not_ready(v.state));
    char *body = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&body, &len);
    int rc = out ? sld_metrics_http_format(&v, d, slc_now_us(), out) : SL_ENOMEM;
    sld_metrics_snap_release(self->snap, &d);
    if (!out)
        return s_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    if (fclose(out) != 0 || rc != 0) {
        free(body);
        return s_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    return s_reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
                   true);
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void) cls;
    fputs("sluiced: metrics listener: ", stderr);
    vfprintf(stderr, fmt, ap);
}

/* --------------------------------------------------------------- listener */

/* ADDR:PORT ("[::1]:9464" for IPv6) into SA; *loopback. */
static int s_addr(const char *text, struct sockaddr_storage *sa, bool *loopback,
                  char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(text, ':'), *h = text;
    char *end = NULL;
    struct addrinfo hints, *res = NULL;
    unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
    if (!colon || !colon[1] || *end || port > 65535 || colon[1] == '-' || colon[1] == '+') {
        slc_errf(err, errlen, "--metrics-listen \"%s\": expected ADDR:PORT, e.g. "
                 "127.0.0.1:9464 or [::1]:9464", text);
        return SL_EINVAL;
    }
    size_t hl = (size_t) (colon - text);
    if (hl >= 2 && text[0] == '[' && text[hl - 1] == ']')
        h++, hl -= 2;
    if (hl == 0 || hl >= sizeof host) {
        slc_errf(err, errlen, "--metrics-listen \"%s\": no address before the port", text);
        return SL_EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = 0;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int grc = getaddrinfo(host, NULL, &hints, &res);
    if (grc || !res) {
        slc_errf(err, errlen, "--metrics-listen \"%s\": %s", text, gai_strerror(grc));
        return SL_EINVAL;
    }
    memset(sa, 0, sizeof *sa);
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (sa->ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *) sa;
        in->sin_port = htons((uint16_t) port);
        *loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) sa;
        in6->sin6_port = htons((uint16_t) port);
        *loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)
                    || (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)
                        && in6->sin6_addr.s6_addr[12] == 127);
    }
    return 0;
}

int sld_metrics_http_new(const char *listen, bool public, sld_metrics_snap_t *snap,
                         sld_metrics_http_t **out, char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    bool loopback = false;
    int rc = s_addr(listen, &sa, &loopback, err, errlen);
    if (rc)
        return rc;
    if (!loopback && !public) {
        slc_errf(err, errlen, "--metrics-listen %s is not a loopback address: /metrics "
                 "tells whoever reaches it about the broker's traffic and has no "
                 "authentication; give --metrics-public (broker/metrics_public = on) to "
                 "serve it there, behind a firewall", listen);
        return SL_EINVAL;
    }
    sld_metrics_http_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->snap = snap;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* A scraper is one or two connections; a small cap keeps a flood of
     * connections from taking descriptors the broker needs. */
    self->daemon = MHD_start_daemon(flags, 0, NULL, NULL, s_access, self,
                                    MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, NULL,
                                    MHD_OPTION_SOCK_ADDR, &sa,
                                    MHD_OPTION_CONNECTION_LIMIT, (unsigned) 64,
                                    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 30,
                                    MHD_OPTION_END);
    if (!self->daemon) {
        slc_errf(err, errlen, "--metrics-listen %s: cannot listen there (address in use, "
                 "or not an address of this host)", listen);
        free(self);
        return SL_ESYS;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->daemon,
                                                           MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : 0;
    *out = self;
    return 0;
}

void sld_metrics_http_destroy(sld_metrics_http_t **self_p)
{
    sld_metrics_http_t *self = *self_p;
    if (!self)
        return;
    MHD_stop_daemon(self->daemon);
    free(self);
    *self_p = NULL;
}

uint16_t sld_metrics_http_port(const sld_metrics_http_t *self)
{
    return self->port;
}
