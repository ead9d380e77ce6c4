/*  sld_metrics - the broker's counters: a fixed set of named uint64 values.
 *  Owned by the server; every module gets it borrowed. Broker thread only:
 *  no atomics, readers are the stats command on the same thread. It does
 *  not export anything by itself (the stats command and the CLI do).  */
#ifndef SLD_METRICS_H
#define SLD_METRICS_H
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SLD_M_PUBLISHED,            /* messages stored */
    SLD_M_PUBLISH_BYTES,        /* payload bytes stored */
    SLD_M_DUPLICATES,           /* resends answered with the original offset */
    SLD_M_NACKED,               /* publishes refused */
    SLD_M_SCHEMA_INVALID,       /* publishes refused by their topic's schema */
    SLD_M_ROUTE_PREPARED,       /* originals routed with the evaluation sld_route_prep made */
    SLD_M_ROUTE_PREP_INLINE,    /* originals of a prepared turn routed inline instead
                                   ($meta, a failed route, a table or registry change) */
    SLD_M_TRANSIENT,            /* transient messages fanned out */
    SLD_M_COMMITS,              /* write transactions committed */
    SLD_M_COMMIT_FULL,          /* commits that hit the map ceiling */
    SLD_M_MAP_GROWN,            /* times the LMDB map grew */
    SLD_M_DELIVERED,            /* first deliveries */
    SLD_M_REDELIVERED,          /* deliveries with attempt > 1 */
    SLD_M_ACKED,                /* acks applied */
    SLD_M_ACKS_REFUSED,         /* acks refused (stale, unknown) */
    SLD_M_NACKS,                /* nacks from consumers */
    SLD_M_DEAD_LETTERED,        /* messages moved to _dlq.<sub> */
    SLD_M_UNREADABLE,           /* stored records that did not read or open (damaged,
                                   or sealed with a key the broker lacks) */
    SLD_M_EPHEMERAL_DROPPED,    /* transient messages not sent for lack of credit */
    SLD_M_TRIMMED,              /* records removed by retention */
    SLD_M_SESSIONS,             /* sessions opened */
    SLD_M_SESSIONS_EXPIRED,     /* sessions dropped after silence */
    SLD_M_FRAMES_IN,            /* frames received */
    SLD_M_AUTH_REFUSED,         /* connections refused at the handshake (ZAP) */
    SLD_M_CONN_ACCEPTED,        /* TCP/IPC connections accepted */
    SLD_M_HANDSHAKE_TIMEOUT,    /* connections closed: handshake not done in limits/handshake_timeout */
    SLD_M_HANDSHAKE_FAILED,     /* connections that ended in the handshake otherwise (peer left,
                                   protocol error); ZAP refusals are SLD_M_AUTH_REFUSED */
    SLD_M_SESSIONS_REVOKED,     /* sessions closed because their key was revoked */
    SLD_M_ALARM_RAISED,         /* storage alarms raised (map or disk; sld_alarm) */
    SLD_M_ALARM_CLEARED,        /* storage alarms cleared */
    SLD_M_ERR_MALFORMED,        /* error replies, one counter per code below */
    SLD_M_ERR_NOSESSION,
    SLD_M_ERR_COMMAND,
    SLD_M_ERR_TOOBIG,
    SLD_M_ERR_INVAL,
    SLD_M_ERR_VERSION,
    SLD_M_ERR_NOTFOUND,
    SLD_M_ERR_DENIED,
    SLD_M_ERR_AUTH,
    SLD_M_ERR_EXIST,
    SLD_M_ERR_BUSY,
    SLD_M_ERR_FULL,
    SLD_M_ERR_STORE,
    SLD_M_ERR_OTHER,
    SLD_M_COUNT
} sld_metric_t;

typedef struct sld_metrics sld_metrics_t;

/* 0 and *out (caller owns), or SL_ENOMEM. */
int sld_metrics_new(sld_metrics_t **out);
void sld_metrics_destroy(sld_metrics_t **self_p);

void sld_metrics_add(sld_metrics_t *self, sld_metric_t which, uint64_t n);
uint64_t sld_metrics_get(const sld_metrics_t *self, sld_metric_t which);

/* Count one error reply with result code CODE (negative SL_E*). */
void sld_metrics_error(sld_metrics_t *self, int code);

/* Stable dotted name of a counter ("publish.stored", "errors.malformed"). */
const char *sld_metrics_name(sld_metric_t which);

#endif
