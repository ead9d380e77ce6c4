/*  mqtt_bridge - one bridge between an MQTT broker and sluice, on a thread
 *  of its own: one libmosquitto connection (MQTT 5, persistent session)
 *  and one libsluice client, driven by one loop (mqtt_bridge.c); the in
 *  direction in mqtt_in.c, the out direction in mqtt_out.c. The main
 *  thread creates, starts, reads the counters of and stops bridges; the
 *  counters are the only state both threads touch (under a mutex).  */
#ifndef MQTT_BRIDGE_H
#define MQTT_BRIDGE_H
#include <stdint.h>
#include "mqtt_config.h"
#include "sluice.h"

typedef struct mqtt_bridge mqtt_bridge_t;

typedef enum {
    MQTT_STATE_CONNECTING = 0,  /* no MQTT session yet, or waiting to retry */
    MQTT_STATE_CONNECTED = 1,   /* CONNACK accepted, subscriptions sent */
    MQTT_STATE_STOPPED = 2,     /* the thread ended */
} mqtt_state_t;

typedef struct {
    mqtt_state_t state;
    bool sluice_connected;      /* libsluice has a session */
    uint64_t connects;          /* MQTT sessions established */
    uint64_t disconnects;       /* MQTT sessions lost */
    uint64_t in_received;       /* MQTT messages handed to libsluice */
    uint64_t in_stored;         /* confirmed durable, first time */
    uint64_t in_duplicates;     /* confirmed as stored before (a retransmit) */
    uint64_t in_rejected;       /* refused by sluice for good (logged) */
    uint64_t in_untranslatable; /* MQTT topics with no sluice name (logged) */
    uint64_t out_published;     /* handed to libmosquitto */
    uint64_t out_acked;         /* MQTT ack seen, acked in sluice */
    uint64_t out_failed;        /* nacked back to sluice (no MQTT name, refused) */
    uint32_t in_pending;        /* awaiting sluice's confirm */
    uint32_t out_pending;       /* awaiting the MQTT broker's ack */
    char last_error[256];       /* the last failure's text, "" = none */
} mqtt_stats_t;

/* A bridge for CFG (borrowed: must outlive the bridge) over client
 * options OPTS (copied; its strings borrowed likewise). Returns 0 and
 * *out (caller owns; mqtt_bridge_destroy), or with the reason in ERR:
 * SL_ENOMEM, SL_ESYS (the password file), SL_EINVAL (libmosquitto refuses
 * the client id), or what sl_client_new returns (SL_EBUSY: the producer id
 * file is held by a live client). Starts nothing. */
int mqtt_bridge_new(const mqtt_bridge_cfg_t *cfg, const sl_options_t *opts,
                    mqtt_bridge_t **out, char *err, size_t errlen);

/* Start SELF's thread. 0, or SL_ESYS with the reason in ERR. */
int mqtt_bridge_start(mqtt_bridge_t *self, char *err, size_t errlen);

/* Ask SELF's thread to stop (any thread, async-signal-unsafe but cheap). */
void mqtt_bridge_stop(mqtt_bridge_t *self);

/* SELF's counters into *out (main thread; a consistent copy). */
void mqtt_bridge_stats(mqtt_bridge_t *self, mqtt_stats_t *out);

/* The bridge's configuration (borrowed). */
const mqtt_bridge_cfg_t *mqtt_bridge_cfg(const mqtt_bridge_t *self);

/* Stop (when started), join and free. NULL-safe; sets *self_p to NULL. */
void mqtt_bridge_destroy(mqtt_bridge_t **self_p);

/* The state's name for logs and the status file. */
const char *mqtt_state_name(mqtt_state_t state);

#endif
