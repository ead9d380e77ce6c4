/*  mqtt_config - what `sluice-mqtt bridge` bridges: one or more bridges,
 *  each an MQTT connection with its "in" rules (MQTT filter -> sluice
 *  prefix) and "out" rules (durable sluice subscription -> MQTT topics).
 *  Read from the YAML file of --config (libfyaml) or built from the flags
 *  of one bridge; checked in one place (mqtt_config_check). Owns its
 *  strings. Main thread only; the bridges read it, never write it.  */
#ifndef MQTT_CONFIG_H
#define MQTT_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include "sluice_codes.h"

typedef struct {
    char *filter;               /* MQTT topic filter */
    int qos;                    /* 0, 1 or 2: the subscription's QoS */
    char *prefix;               /* sluice topic prefix ("" = none) */
} mqtt_in_rule_t;

typedef struct {
    char *pattern;              /* sluice topic or pattern */
    char *subscription;         /* durable subscription name */
    int qos;                    /* 0, 1 or 2: the QoS of the MQTT publish */
    unsigned strip;             /* leading sluice words dropped */
    char *prefix;               /* MQTT topic prefix ("" = none) */
    bool retain;                /* publish with the retain flag */
    unsigned ack_wait_ms;       /* the subscription's ack wait; 0 = broker's */
} mqtt_out_rule_t;

typedef struct {
    char *name;                 /* the bridge's name (logs, status, defaults) */
    char *host;                 /* MQTT broker host */
    int port;                   /* MQTT broker port */
    char *client_id;            /* stable MQTT client id (persistent session) */
    char *username;             /* NULL = none */
    char *password_file;        /* NULL = none; first line is the password */
    int keepalive;              /* seconds */
    char *producer_id_file;     /* libsluice's producer id file */
    int out_window;             /* most out messages awaiting the MQTT ack */
    int backoff_max_ms;         /* longest wait between reconnects */
    mqtt_in_rule_t *in;
    size_t nin;
    mqtt_out_rule_t *out;
    size_t nout;
} mqtt_bridge_cfg_t;

typedef struct {
    mqtt_bridge_cfg_t *bridges;
    size_t n;
} mqtt_config_t;

/* Add a bridge named NAME with the defaults (docs/adapters.md) to SELF;
 * returns it (borrowed, valid until the next add or mqtt_config_clear),
 * or NULL when out of memory. */
mqtt_bridge_cfg_t *mqtt_config_add(mqtt_config_t *self, const char *name);

/* Add an in rule (strings copied) / an out rule to B. 0 or SL_ENOMEM. */
int mqtt_config_add_in(mqtt_bridge_cfg_t *b, const char *filter, int qos,
                       const char *prefix);
int mqtt_config_add_out(mqtt_bridge_cfg_t *b, const char *pattern,
                        const char *subscription, int qos, unsigned strip,
                        const char *prefix, bool retain, unsigned ack_wait_ms);

/* Replace *SLOT (owned) by a copy of VALUE (NULL = none). 0 or SL_ENOMEM. */
int mqtt_config_set(char **slot, const char *value);

/* Read the YAML file PATH into SELF (appending its bridges). STATE_DIR
 * gives the default producer id files (STATE_DIR/NAME.producer). 0, or
 * SL_EINVAL with the reason (file, line and what to write) in ERR, SL_ESYS
 * (unreadable file), SL_ENOMEM. */
int mqtt_config_load(mqtt_config_t *self, const char *path,
                     const char *state_dir, char *err, size_t errlen);

/* Check every bridge: at least one, unique names, client ids and
 * producer id files, each with a rule, valid QoS, filters and prefixes
 * that translate (mqtt_topic). 0, or SL_EINVAL with the reason in ERR. */
int mqtt_config_check(const mqtt_config_t *self, char *err, size_t errlen);

/* Free everything SELF holds; SELF is empty again. */
void mqtt_config_clear(mqtt_config_t *self);

#endif
