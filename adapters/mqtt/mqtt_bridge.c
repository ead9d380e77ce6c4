/*  mqtt_bridge - one bridge's thread: the MQTT connection (connect,
 *  backoff, loss), the loop that drives libmosquitto and libsluice, the
 *  counters. The in and out directions live in mqtt_in.c / mqtt_out.c.
 *
 *  When the MQTT ack goes out. libmosquitto 2.0.11 (Debian 12) answers an
 *  incoming QoS 1 PUBLISH with PUBACK *before* it calls on_message
 *  (lib/handle_publish.c: send__puback, then the callback), and QoS 2 with
 *  PUBREC at once and PUBCOMP before the callback too (handle_pubrel.c);
 *  it has no manual ack (mosquitto_manual_ack came later). But "send" only
 *  queues the packet (packet__queue); it is written at once only when the
 *  client is neither in a callback nor threaded. With
 *  mosquitto_threaded_set(true) and no mosquitto_loop*, packets are
 *  written only when we call mosquitto_loop_write. So this loop reads a
 *  burst of packets (each message goes to sl_publish), then stops reading
 *  and writes nothing until every message handed to libsluice is confirmed
 *  durable (in_pending == 0); then it writes what libmosquitto queued: the
 *  PUBACKs and PUBCOMPs of exactly those messages. A crash before that
 *  write leaves them unacked at the MQTT broker, which sends them again
 *  (DUP) to the persistent session; mqtt_in.c's msg-id makes the second
 *  copy a duplicate in sluice. Throughput comes from the burst: one
 *  sluice commit covers every message the MQTT broker had in flight.
 *  QoS 2's PUBREC cannot be held back that way (the message is handed
 *  over only after PUBREL, which needs the PUBREC): docs/adapters.md says
 *  what that leaves (use qos 1 in rules where a bridge crash must not lose).
 *
 *  Bridge thread only, except mqtt_bridge_stop / _stats (main thread).  */
#include "mqtt_bridge_int.h"
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "http_common.h"
#include "mqtt_topic.h"

#define S_BURST_MAX 4096            /* packets read before the commit wait */
#define S_BACKOFF_MIN_MS 100

const char *mqtt_state_name(mqtt_state_t state)
{
    switch (state) {
    case MQTT_STATE_CONNECTED: return "connected";
    case MQTT_STATE_STOPPED:   return "stopped";
    default:                   return "connecting";
    }
}

void mqtt_bridge_fail(mqtt_bridge_t *self, const char *event, const char *fmt, ...)
{
    char text[256], q[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&self->lock);
    snprintf(self->stats.last_error, sizeof self->stats.last_error, "%s", text);
    pthread_mutex_unlock(&self->lock);
    http_log(HTTP_LOG_WARN, event, "bridge=%s error=%s", self->cfg->name,
             http_log_quote(text, q, sizeof q));
}

static void s_state(mqtt_bridge_t *self, mqtt_state_t state)
{
    pthread_mutex_lock(&self->lock);
    self->stats.state = state;
    pthread_mutex_unlock(&self->lock);
}

/* ---------------------------------------------------------- connection */

static void s_on_connect(struct mosquitto *mosq, void *arg, int rc, int flags,
                         const mosquitto_property *props)
{
    mqtt_bridge_t *self = arg;

    (void) mosq;
    (void) props;
    if (rc != 0) {
        mqtt_bridge_fail(self, "mqtt_refused", "the MQTT broker refused the session "
                         "of client id %s: %s (code %d)", self->cfg->client_id,
                         mosquitto_reason_string(rc), rc);
        return;
    }
    self->session = true;
    MQTT_COUNT(self, connects, 1);
    s_state(self, MQTT_STATE_CONNECTED);
    http_log(HTTP_LOG_INFO, "mqtt_connected", "bridge=%s host=%s port=%d client_id=%s "
             "session_present=%d", self->cfg->name, self->cfg->host, self->cfg->port,
             self->cfg->client_id, flags & 1);
    mqtt_in_subscribe(self);
}

/* A session that lasted makes the next failure start the backoff anew. */
static void s_backoff_reset(mqtt_bridge_t *self)
{
    if (self->session && http_now_ms() >= self->retry_at_ms + 10000)
        self->backoff_ms = 0;
}

/* The connection is gone (or never came): close it, schedule the next
 * attempt with a doubling delay. */
static void s_lost(mqtt_bridge_t *self, int mrc)
{
    uint64_t now = http_now_ms();

    if (self->session) {
        MQTT_COUNT(self, disconnects, 1);
        mqtt_bridge_fail(self, "mqtt_disconnected", "lost the MQTT session with "
                         "%s:%d: %s", self->cfg->host, self->cfg->port,
                         mosquitto_strerror(mrc));
    }
    /* Close at once and write nothing: what is queued may hold MQTT acks
     * of messages not confirmed (the next connect discards the queue). */
    if (self->sock_open && mosquitto_socket(self->mosq) >= 0)
        shutdown(mosquitto_socket(self->mosq), SHUT_RDWR);
    self->sock_open = false;
    self->session = false;
    self->resend = false;
    mqtt_out_lost(self);
    s_state(self, MQTT_STATE_CONNECTING);
    self->backoff_ms = self->backoff_ms ? self->backoff_ms * 2 : S_BACKOFF_MIN_MS;
    if (self->backoff_ms > self->cfg->backoff_max_ms)
        self->backoff_ms = self->cfg->backoff_max_ms;
    self->retry_at_ms = now + (uint64_t) self->backoff_ms;
}

static void s_connect(mqtt_bridge_t *self)
{
    mosquitto_property *props = NULL;
    int rc;

    /* MQTT 5 needs a session expiry for the session to outlive the
     * connection (clean_session false alone ends it at disconnect). */
    mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, UINT32_MAX);
    rc = mosquitto_connect_bind_v5(self->mosq, self->cfg->host, self->cfg->port,
                                   self->cfg->keepalive, NULL, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) {
        mqtt_bridge_fail(self, "mqtt_connect_failed", "cannot connect to the MQTT "
                         "broker at %s:%d: %s", self->cfg->host, self->cfg->port,
                         rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        s_lost(self, rc);
        return;
    }
    self->sock_open = true;
}

/* ---------------------------------------------------------------- loop */

static bool s_readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

/* Read what the socket holds (at most S_BURST_MAX packets). */
static void s_read_burst(mqtt_bridge_t *self, int fd)
{
    for (int i = 0; i < S_BURST_MAX && self->sock_open; i++) {
        int rc = mosquitto_loop_read(self->mosq, 1);

        if (rc != MOSQ_ERR_SUCCESS) {
            s_lost(self, rc);
            return;
        }
        if (!s_readable(fd))
            return;
    }
}

static void s_turn(mqtt_bridge_t *self)
{
    bool ready = false;
    int fd, rc;

    /* Connect only while libsluice has a session: a message read now must
     * have somewhere to go. */
    if (!self->sock_open && http_now_ms() >= self->retry_at_ms && self->in_pending == 0
        && sl_client_connected(self->client))
        s_connect(self);
    fd = self->sock_open ? mosquitto_socket(self->mosq) : -1;
    if (self->in_pending > 0 || fd < 0) {
        /* Confirms to wait for, or no connection: only libsluice's I/O. */
        sl_poll(self->client, self->in_pending > 0 ? 5 : 50);
    } else {
        rc = sl_poll_fd(self->client, fd, mosquitto_want_write(self->mosq) ? 0 : 100,
                        &ready);
        if (rc < 0 && rc != SL_ETIMEOUT)
            ready = false;
        if (ready)
            s_read_burst(self, fd);
    }
    /* A message sluice could not take: close without writing its ack. */
    if (self->resend && self->sock_open && self->in_pending == 0)
        s_lost(self, MOSQ_ERR_CONN_LOST);
    if (self->session) {
        s_backoff_reset(self);
        mqtt_out_pump(self);
    }
    /* The gate: write only when every message read so far is durable. */
    if (self->sock_open && self->in_pending == 0 && mosquitto_want_write(self->mosq)) {
        rc = mosquitto_loop_write(self->mosq, 1);
        if (rc != MOSQ_ERR_SUCCESS)
            s_lost(self, rc);
    }
    if (self->sock_open && self->in_pending == 0) {
        rc = mosquitto_loop_misc(self->mosq);
        if (rc != MOSQ_ERR_SUCCESS)
            s_lost(self, rc);
    }
}

static void *s_run(void *arg)
{
    mqtt_bridge_t *self = arg;
    uint64_t next_open = 0;
    bool opened = self->cfg->nout == 0;

    http_log(HTTP_LOG_INFO, "bridge_start", "bridge=%s mqtt=%s:%d in=%zu out=%zu",
             self->cfg->name, self->cfg->host, self->cfg->port, self->cfg->nin,
             self->cfg->nout);
    while (!atomic_load(&self->stop)) {
        /* sl_subscribe waits for the broker: only while it is there. */
        if (!opened && http_now_ms() >= next_open && sl_client_connected(self->client)) {
            opened = mqtt_out_open(self) == 0;
            next_open = http_now_ms() + 1000;
        }
        s_turn(self);
        pthread_mutex_lock(&self->lock);
        self->stats.sluice_connected = sl_client_connected(self->client);
        self->stats.in_pending = self->in_pending;
        self->stats.out_pending = self->out_pending;
        pthread_mutex_unlock(&self->lock);
    }
    /* Stop: what sluice confirms now may still be acked to MQTT. */
    if (self->in_pending > 0)
        sl_flush(self->client, 5000);
    if (self->sock_open && self->in_pending == 0 && !self->resend) {
        mosquitto_loop_write(self->mosq, 1);
        mosquitto_disconnect(self->mosq);
        mosquitto_loop_write(self->mosq, 1);
    }
    mqtt_out_close(self);
    sl_flush(self->client, 5000);
    s_state(self, MQTT_STATE_STOPPED);
    http_log(HTTP_LOG_INFO, "bridge_stop", "bridge=%s", self->cfg->name);
    return NULL;
}

/* ------------------------------------------------------------ lifetime */

static int s_password(mqtt_bridge_t *self, char *err, size_t errlen)
{
    char line[1024];
    FILE *f = fopen(self->cfg->password_file, "r");

    if (!f)
        return mqtt_errf(SL_ESYS, err, errlen, "bridge '%s': cannot read password_file "
                         "%s: %s", self->cfg->name, self->cfg->password_file,
                         strerror(errno));
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    self->password = strdup(line);
    explicit_bzero(line, sizeof line);
    return self->password ? 0 : mqtt_errf(SL_ENOMEM, err, errlen, "out of memory");
}

int mqtt_bridge_new(const mqtt_bridge_cfg_t *cfg, const sl_options_t *opts,
                    mqtt_bridge_t **out, char *err, size_t errlen)
{
    mqtt_bridge_t *self = calloc(1, sizeof *self);
    int rc = SL_ENOMEM;

    *out = NULL;
    if (!self)
        return mqtt_errf(rc, err, errlen, "out of memory");
    self->cfg = cfg;
    self->opts = *opts;
    self->opts.producer_id_file = cfg->producer_id_file;
    pthread_mutex_init(&self->lock, NULL);
    self->slots = calloc((size_t) cfg->out_window, sizeof *self->slots);
    self->subs = calloc(cfg->nout ? cfg->nout : 1, sizeof *self->subs);
    if (!self->slots || !self->subs) {
        mqtt_errf(rc, err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->password_file && (rc = s_password(self, err, errlen)) < 0)
        goto fail;
    rc = sl_client_new(&self->opts, &self->client);
    if (rc != 0) {
        char why[512] = "";

        sl_options_check(&self->opts, why, sizeof why);
        mqtt_errf(rc, err, errlen, "bridge '%s': cannot create the sluice client "
                  "(producer id file %s): %s%s%s", cfg->name,
                  cfg->producer_id_file ? cfg->producer_id_file : "none",
                  sl_strerror(rc), why[0] ? ": " : "", why);
        if (rc == SL_EBUSY)
            mqtt_errf(rc, err, errlen, "bridge '%s': its producer id file %s is held by "
                      "another live client (is this bridge running twice?)", cfg->name,
                      cfg->producer_id_file);
        goto fail;
    }
    self->mosq = mosquitto_new(cfg->client_id, false, self);
    if (!self->mosq) {
        rc = mqtt_errf(SL_EINVAL, err, errlen, "bridge '%s': libmosquitto refused "
                       "client id '%s': %s", cfg->name, cfg->client_id, strerror(errno));
        goto fail;
    }
    mosquitto_int_option(self->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_threaded_set(self->mosq, true);       /* the write gate: see above */
    /* Receive maximum 65535: the MQTT broker's own in-flight limit rules.
     * libmosquitto's default of 20 is a protocol error against mosquitto
     * 2.0, which frees a QoS 2 slot at PUBREC and so sends a 21st. */
    mosquitto_int_option(self->mosq, MOSQ_OPT_RECEIVE_MAXIMUM, 0);
    mosquitto_max_inflight_messages_set(self->mosq, (unsigned) cfg->out_window);
    if (cfg->username)
        mosquitto_username_pw_set(self->mosq, cfg->username, self->password);
    mosquitto_connect_v5_callback_set(self->mosq, s_on_connect);
    mosquitto_message_callback_set(self->mosq, mqtt_in_on_message);
    mosquitto_subscribe_callback_set(self->mosq, mqtt_in_on_subscribe);
    mosquitto_publish_v5_callback_set(self->mosq, mqtt_out_on_publish);
    *out = self;
    return 0;
fail:
    mqtt_bridge_destroy(&self);
    return rc;
}

int mqtt_bridge_start(mqtt_bridge_t *self, char *err, size_t errlen)
{
    int rc = pthread_create(&self->thread, NULL, s_run, self);

    if (rc != 0)
        return mqtt_errf(SL_ESYS, err, errlen, "bridge '%s': cannot start its thread: %s",
                         self->cfg->name, strerror(rc));
    self->started = true;
    return 0;
}

void mqtt_bridge_stop(mqtt_bridge_t *self)
{
    atomic_store(&self->stop, true);
}

void mqtt_bridge_stats(mqtt_bridge_t *self, mqtt_stats_t *out)
{
    pthread_mutex_lock(&self->lock);
    *out = self->stats;
    pthread_mutex_unlock(&self->lock);
}

const mqtt_bridge_cfg_t *mqtt_bridge_cfg(const mqtt_bridge_t *self)
{
    return self->cfg;
}

void mqtt_bridge_destroy(mqtt_bridge_t **self_p)
{
    mqtt_bridge_t *self = self_p ? *self_p : NULL;

    if (!self)
        return;
    if (self->started) {
        mqtt_bridge_stop(self);
        pthread_join(self->thread, NULL);
    }
    if (self->mosq)
        mosquitto_destroy(self->mosq);
    sl_client_destroy(&self->client);
    if (self->password) {
        explicit_bzero(self->password, strlen(self->password));
        free(self->password);
    }
    free(self->slots);
    free(self->subs);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}
