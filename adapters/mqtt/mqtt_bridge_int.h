/*  mqtt_bridge_int - the bridge's struct, shared by its three files: the
 *  loop and the connection (mqtt_bridge.c), the in direction (mqtt_in.c)
 *  and the out direction (mqtt_out.c). Everything here belongs to the
 *  bridge's thread except `stats`, which the main thread copies under
 *  `lock`, and `stop`.  */
#ifndef MQTT_BRIDGE_INT_H
#define MQTT_BRIDGE_INT_H
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <pthread.h>
#include <stdatomic.h>
#include "mqtt_bridge.h"

/* One out message handed to libmosquitto, awaiting its MQTT ack. */
typedef struct {
    int mid;                    /* libmosquitto's message id; 0 = free slot */
    int qos;
    sl_msg_t *msg;              /* owned: acked and freed at the MQTT ack */
} mqtt_out_slot_t;

struct mqtt_bridge {
    const mqtt_bridge_cfg_t *cfg;
    sl_options_t opts;
    sl_client_t *client;
    struct mosquitto *mosq;
    char *password;             /* read from cfg->password_file */
    pthread_t thread;
    bool started;
    atomic_bool stop;

    pthread_mutex_t lock;       /* guards stats */
    mqtt_stats_t stats;

    /* connection */
    bool sock_open;             /* a TCP connection to the MQTT broker */
    bool session;               /* CONNACK accepted */
    uint64_t retry_at_ms;       /* next connect attempt */
    int backoff_ms;

    /* in: messages handed to libsluice and not confirmed yet. While it is
     * not 0 nothing is written to the MQTT broker (mqtt_bridge.c's essay). */
    uint32_t in_pending;
    bool resend;                /* a message could not be handed to libsluice:
                                   drop the connection without writing */

    /* out */
    sl_sub_t **subs;            /* one per out rule, borrowed from client */
    mqtt_out_slot_t *slots;     /* cfg->out_window slots */
    uint32_t out_pending;
};

/* Count under the stats lock: *FIELD += N. */
#define MQTT_COUNT(self, field, n)                  \
    do {                                            \
        pthread_mutex_lock(&(self)->lock);          \
        (self)->stats.field += (n);                 \
        pthread_mutex_unlock(&(self)->lock);        \
    } while (0)

/* Keep TEXT as the last error (and log it at LEVEL "warn"). */
void mqtt_bridge_fail(mqtt_bridge_t *self, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------- mqtt_in.c */

/* libmosquitto's message callback: translate, publish to sluice. */
void mqtt_in_on_message(struct mosquitto *mosq, void *arg,
                        const struct mosquitto_message *m);

/* Subscribe to every in rule's filter (after each CONNACK). */
void mqtt_in_subscribe(mqtt_bridge_t *self);

/* libmosquitto's SUBACK callback: log a refused filter. */
void mqtt_in_on_subscribe(struct mosquitto *mosq, void *arg, int mid, int n,
                          const int *granted);

/* ------------------------------------------------------ mqtt_out.c */

/* Subscribe in sluice for every out rule not subscribed yet. 0, or the
 * sl_subscribe code of the last that failed (logged; retried). */
int mqtt_out_open(mqtt_bridge_t *self);

/* Hand queued sluice messages to libmosquitto while there is room. */
void mqtt_out_pump(mqtt_bridge_t *self);

/* libmosquitto's publish callback: the MQTT ack of MID (QoS 0: written)
 * with its MQTT 5 reason code. */
void mqtt_out_on_publish(struct mosquitto *mosq, void *arg, int mid, int reason,
                         const mosquitto_property *props);

/* The connection is gone: QoS 0 messages not written are nacked back. */
void mqtt_out_lost(mqtt_bridge_t *self);

/* Give every message still held back to sluice (nack) and free the slots. */
void mqtt_out_close(mqtt_bridge_t *self);

#endif
