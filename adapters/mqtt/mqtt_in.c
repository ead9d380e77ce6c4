/*  mqtt_in - MQTT -> sluice: the subscriptions (QoS as configured, MQTT 5
 *  no-local so the bridge's own out messages never come back, retained
 *  messages only for a new subscription) and each message's publish to
 *  sluice. The MQTT ack waits for the confirm: mqtt_bridge.c's write gate
 *  counts in_pending, which this file raises and its confirm lowers.
 *
 *  Retransmits. A message the MQTT broker sends again after a bridge crash
 *  (DUP, same packet id) may already be stored. Its msg-id is a hash of
 *  the bridge's client id, the packet id, the MQTT topic and the payload:
 *  the same for the retransmit as for the first copy, so the broker's
 *  msg-id dedup (storage/dedup_window, 2 min) stores it once. The producer
 *  id file adds libsluice's own resends across a sluice restart. The
 *  limit: two different messages with the same topic, payload and packet
 *  id (ids repeat every 65,535 messages of the session) within the dedup
 *  window are stored once (docs/adapters.md). Bridge thread only.  */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include "http_common.h"
#include "mqtt_bridge_int.h"
#include "mqtt_topic.h"

void mqtt_in_subscribe(mqtt_bridge_t *self)
{
    for (size_t i = 0; i < self->cfg->nin; i++) {
        const mqtt_in_rule_t *r = &self->cfg->in[i];
        int opts = MQTT_SUB_OPT_NO_LOCAL | MQTT_SUB_OPT_SEND_RETAIN_NEW;
        int rc = mosquitto_subscribe_v5(self->mosq, NULL, r->filter, r->qos, opts, NULL);

        if (rc != MOSQ_ERR_SUCCESS)
            mqtt_bridge_fail(self, "mqtt_subscribe_failed", "cannot subscribe to '%s': %s",
                             r->filter, mosquitto_strerror(rc));
    }
}

void mqtt_in_on_subscribe(struct mosquitto *mosq, void *arg, int mid, int n,
                          const int *granted)
{
    mqtt_bridge_t *self = arg;

    (void) mosq;
    (void) mid;
    for (int i = 0; i < n; i++)
        if (granted[i] >= 0x80)
            mqtt_bridge_fail(self, "mqtt_subscribe_refused", "the MQTT broker refused "
                             "a subscription of client id %s (reason %d: %s): check its "
                             "ACL", self->cfg->client_id, granted[i],
                             mosquitto_reason_string(granted[i]));
}

/* The in rule whose filter matches TOPIC (first wins), or NULL. */
static const mqtt_in_rule_t *s_rule(const mqtt_bridge_t *self, const char *topic)
{
    for (size_t i = 0; i < self->cfg->nin; i++) {
        bool match = false;

        if (mosquitto_topic_matches_sub(self->cfg->in[i].filter, topic, &match)
                == MOSQ_ERR_SUCCESS && match)
            return &self->cfg->in[i];
    }
    return NULL;
}

/* "mqtt-" and 32 hex digits: BLAKE2b-128 of the message's MQTT identity. */
static void s_msg_id(const mqtt_bridge_t *self, const struct mosquitto_message *m,
                     char out[38])
{
    crypto_generichash_state st;
    unsigned char h[16];
    unsigned char mid[2] = { (unsigned char) (m->mid >> 8), (unsigned char) m->mid };

    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *) self->cfg->client_id,
                              strlen(self->cfg->client_id) + 1);
    crypto_generichash_update(&st, mid, sizeof mid);
    crypto_generichash_update(&st, (const unsigned char *) m->topic, strlen(m->topic) + 1);
    if (m->payloadlen > 0)
        crypto_generichash_update(&st, m->payload, (size_t) m->payloadlen);
    crypto_generichash_final(&st, h, sizeof h);
    memcpy(out, "mqtt-", 5);
    sodium_bin2hex(out + 5, 33, h, sizeof h);
}

static void s_on_confirm(const sl_confirm_t *c, void *arg)
{
    mqtt_bridge_t *self = arg;

    self->in_pending--;
    if (c->rc == 0 && c->duplicate) {
        MQTT_COUNT(self, in_duplicates, 1);
    } else if (c->rc == 0) {
        MQTT_COUNT(self, in_stored, 1);
    } else if (c->rc != SL_EDENIED && c->rc != SL_EINVAL && c->rc != SL_ETOOBIG
               && c->rc != SL_EMALFORMED) {
        /* The broker cannot store now (storage full, a storage error...):
         * no MQTT ack may go out, so the connection is dropped unwritten
         * once the batch is settled, and the MQTT broker sends again. */
        if (!self->resend)
            mqtt_bridge_fail(self, "in_deferred", "sluice did not store a message for "
                             "%s: %s (%s); reconnecting to MQTT so that it is sent again",
                             c->topic ? c->topic : "?", sl_strerror(c->rc),
                             c->text ? c->text : "");
        self->resend = true;
    } else {
        /* Refused for good (this message can never be stored): holding
         * its MQTT ack back would stop the bridge for ever; it is logged
         * and counted instead. */
        MQTT_COUNT(self, in_rejected, 1);
        mqtt_bridge_fail(self, "in_rejected", "sluice refused a message for %s: %s (%s); "
                         "it is acked to MQTT and not stored", c->topic ? c->topic : "?",
                         sl_strerror(c->rc), c->text ? c->text : "");
    }
}

void mqtt_in_on_message(struct mosquitto *mosq, void *arg,
                        const struct mosquitto_message *m)
{
    mqtt_bridge_t *self = arg;
    const mqtt_in_rule_t *r = s_rule(self, m->topic);
    char topic[MQTT_SLUICE_TOPIC_MAX + 1], why[300], id[38], qos[2] = { 0 };
    sl_header_t hdr[2];
    sl_message_t msg;
    int rc;

    (void) mosq;
    if (self->resend)
        return;             /* the connection is dropped after this burst */
    if (!r || mqtt_topic_to_sluice(r->prefix, m->topic, topic, sizeof topic, why,
                                   sizeof why) < 0) {
        MQTT_COUNT(self, in_untranslatable, 1);
        mqtt_bridge_fail(self, "in_untranslatable", "MQTT topic '%.100s' has no sluice "
                         "name: %s; acked to MQTT and not stored", m->topic,
                         r ? why : "no in rule matches it");
        return;
    }
    s_msg_id(self, m, id);
    qos[0] = (char) ('0' + m->qos);
    hdr[0] = (sl_header_t) { "mqtt-topic", m->topic };
    hdr[1] = (sl_header_t) { "mqtt-qos", qos };
    msg = (sl_message_t) {
        .topic = topic, .payload = m->payload, .len = (size_t) m->payloadlen,
        .headers = hdr, .nheaders = 2, .msg_id = m->qos > 0 ? id : NULL,
    };
    rc = sl_publish(self->client, &msg, s_on_confirm, self, NULL);
    if (rc == SL_ETIMEOUT || rc == SL_EBUSY || rc == SL_EAUTH || rc == SL_EVERSION) {
        /* sluice cannot take it now: no MQTT ack may go out for it, so the
         * connection is dropped unwritten and the MQTT broker sends again. */
        self->resend = true;
        mqtt_bridge_fail(self, "in_deferred", "sluice cannot take messages now (%s); "
                         "reconnecting to MQTT so that it sends them again",
                         sl_strerror(rc));
        return;
    }
    if (rc != 0) {
        /* Not taken (too big, not UTF-8...): final, like a nack. */
        MQTT_COUNT(self, in_rejected, 1);
        mqtt_bridge_fail(self, "in_rejected", "cannot publish MQTT '%.100s' to %s: %s (%s)",
                         m->topic, topic, sl_strerror(rc),
                         sl_client_last_error(self->client));
        return;
    }
    self->in_pending++;
    MQTT_COUNT(self, in_received, 1);
}
