/*  mqtt_out - sluice -> MQTT: one durable sluice subscription per out
 *  rule; each message is published to MQTT at the rule's QoS (with the
 *  MQTT 5 user property sluice-id = TOPIC@OFFSET, a key for consumers
 *  that drop repeats) and acked in sluice only at the MQTT broker's
 *  PUBACK / PUBCOMP (QoS 0: once written). At most out_window messages
 *  wait for their MQTT ack; libmosquitto resends QoS 1 and 2 ones after a
 *  reconnect. A refused or untranslatable message is nacked with the
 *  reason, so after max_deliver it is a dead letter, never dropped.
 *  At least once: a bridge crash between the PUBACK and sluice storing
 *  the ack sends that message to MQTT again. Bridge thread only.  */
#include <stdio.h>
#include <string.h>
#include "http_common.h"
#include "mqtt_bridge_int.h"
#include "mqtt_topic.h"

#define S_MQTT_TOPIC_MAX 1024

int mqtt_out_open(mqtt_bridge_t *self)
{
    int rc = 0;

    for (size_t i = 0; i < self->cfg->nout; i++) {
        const mqtt_out_rule_t *r = &self->cfg->out[i];
        sl_sub_options_t so;
        int src;

        if (self->subs[i])
            continue;
        sl_sub_options_init(&so);
        so.name = r->subscription;
        so.pattern = r->pattern;
        so.credit = (uint32_t) self->cfg->out_window;
        so.ack_wait_ms = r->ack_wait_ms;
        src = sl_subscribe(self->client, &so, &self->subs[i]);
        if (src != 0) {
            mqtt_bridge_fail(self, "out_subscribe_failed", "cannot subscribe '%s' to %s "
                             "in sluice: %s %s (retrying every second)", r->subscription,
                             r->pattern, sl_strerror(src),
                             sl_client_last_error(self->client));
            self->subs[i] = NULL;
            rc = src;
            continue;
        }
        http_log(HTTP_LOG_INFO, "out_subscribed", "bridge=%s subscription=%s pattern=%s "
                 "qos=%d", self->cfg->name, r->subscription, r->pattern, r->qos);
    }
    return rc;
}

/* Give MSG back to sluice with WHY (logged) and free it. */
static void s_nack(mqtt_bridge_t *self, sl_msg_t **msg, uint32_t delay_ms, const char *why)
{
    if (why) {
        MQTT_COUNT(self, out_failed, 1);
        mqtt_bridge_fail(self, "out_failed", "%s@%llu: %s", sl_msg_topic(*msg),
                         (unsigned long long) sl_msg_offset(*msg), why);
    }
    sl_nack_reason(*msg, delay_ms, why);
    sl_msg_destroy(msg);
}

static mqtt_out_slot_t *s_slot(mqtt_bridge_t *self, int mid)
{
    for (int i = 0; i < self->cfg->out_window; i++)
        if (self->slots[i].mid == mid && (mid != 0 || !self->slots[i].msg))
            return &self->slots[i];
    return NULL;
}

/* Publish MSG (taken) for rule R; false when it could not be handed over. */
static bool s_publish(mqtt_bridge_t *self, const mqtt_out_rule_t *r, sl_msg_t *msg)
{
    char topic[S_MQTT_TOPIC_MAX], why[300], id[300];
    mosquitto_property *props = NULL;
    mqtt_out_slot_t *slot = s_slot(self, 0);
    const void *payload;
    size_t len;
    int mid = 0, rc;

    if (mqtt_topic_from_sluice(sl_msg_topic(msg), r->strip, r->prefix, topic, sizeof topic,
                               why, sizeof why) < 0) {
        s_nack(self, &msg, 0, why);
        return true;
    }
    payload = sl_msg_payload(msg, &len);
    snprintf(id, sizeof id, "%s@%llu", sl_msg_topic(msg),
             (unsigned long long) sl_msg_offset(msg));
    mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "sluice-id", id);
    rc = mosquitto_publish_v5(self->mosq, &mid, topic, (int) len, payload, r->qos,
                              r->retain, props);
    mosquitto_property_free_all(&props);
    if (rc == MOSQ_ERR_OVERSIZE_PACKET || rc == MOSQ_ERR_PAYLOAD_SIZE
        || rc == MOSQ_ERR_QOS_NOT_SUPPORTED || rc == MOSQ_ERR_RETAIN_NOT_SUPPORTED) {
        snprintf(why, sizeof why, "the MQTT broker cannot take it: %s",
                 mosquitto_strerror(rc));
        s_nack(self, &msg, 0, why);
        return true;
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        s_nack(self, &msg, 1000, NULL);         /* the connection: later */
        return false;
    }
    slot->mid = mid;
    slot->qos = r->qos;
    slot->msg = msg;
    self->out_pending++;
    MQTT_COUNT(self, out_published, 1);
    return true;
}

void mqtt_out_pump(mqtt_bridge_t *self)
{
    for (size_t i = 0; i < self->cfg->nout; i++) {
        sl_msg_t *msg = NULL;

        while (self->subs[i] && self->out_pending < (uint32_t) self->cfg->out_window
               && sl_sub_next(self->subs[i], 0, &msg) == 0) {
            if (!s_publish(self, &self->cfg->out[i], msg))
                return;
        }
    }
}

static void s_on_publish(mqtt_bridge_t *self, int mid, int reason)
{
    mqtt_out_slot_t *slot = mid ? s_slot(self, mid) : NULL;
    char why[200];

    if (!slot)
        return;
    if (reason >= 0x80) {
        snprintf(why, sizeof why, "the MQTT broker refused it: %s (reason %d)",
                 mosquitto_reason_string(reason), reason);
        s_nack(self, &slot->msg, 0, why);
    } else {
        sl_ack(slot->msg);
        sl_msg_destroy(&slot->msg);
        MQTT_COUNT(self, out_acked, 1);
    }
    slot->mid = 0;
    self->out_pending--;
}

void mqtt_out_on_publish(struct mosquitto *mosq, void *arg, int mid, int reason,
                         const mosquitto_property *props)
{
    (void) mosq;
    (void) props;
    s_on_publish(arg, mid, reason);
}

/* Nack and free the slots QOS_MAX or below hold (-1: none, 2: all). */
static void s_release(mqtt_bridge_t *self, int qos_max)
{
    for (int i = 0; i < self->cfg->out_window; i++) {
        mqtt_out_slot_t *slot = &self->slots[i];

        if (!slot->msg || slot->qos > qos_max)
            continue;
        s_nack(self, &slot->msg, 0, NULL);
        slot->mid = 0;
        self->out_pending--;
    }
}

void mqtt_out_lost(mqtt_bridge_t *self)
{
    s_release(self, 0);         /* QoS 0 is not resent by libmosquitto */
}

void mqtt_out_close(mqtt_bridge_t *self)
{
    s_release(self, 2);
}
