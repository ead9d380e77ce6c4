/*  sld_monitor - the ROUTER's connection events, read from libzmq's socket
 *  monitor: counts connections accepted, handshakes closed by the handshake
 *  timeout and handshakes that failed otherwise. Owns the PAIR socket the
 *  events arrive on. Broker thread only. It closes nothing itself: libzmq
 *  closes a connection whose handshake outlives ZMQ_HANDSHAKE_IVL, and ZAP
 *  refusals are counted where they are answered (sld_auth).  */
#ifndef SLD_MONITOR_H
#define SLD_MONITOR_H
#include <stdint.h>
#include "sld_metrics.h"

typedef struct sld_monitor sld_monitor_t;

/* Watch ROUTER (borrowed; must outlive the monitor, and the monitor must be
 * destroyed before ROUTER is closed) of context ZCTX. HANDSHAKE_TIMEOUT_MS
 * is the ROUTER's ZMQ_HANDSHAKE_IVL: a handshake that failed this long
 * after its accept, and not because the peer hung up, is counted as timed
 * out. METRICS borrowed. 0 and *out (caller owns), SL_ESYS, SL_ENOMEM. */
int sld_monitor_new(void *zctx, void *router, sld_metrics_t *metrics,
                    uint32_t handshake_timeout_ms, sld_monitor_t **out);

/* Stop monitoring and close the PAIR socket. NULL-safe; nulls *self_p. */
void sld_monitor_destroy(sld_monitor_t **self_p);

/* The socket to poll for ZMQ_POLLIN (borrowed). */
void *sld_monitor_socket(const sld_monitor_t *self);

/* Count the events waiting (at most a few thousand per call, so a flood of
 * connections cannot hold the loop). Never blocks. */
void sld_monitor_handle(sld_monitor_t *self);

#endif
