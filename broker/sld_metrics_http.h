/*  sld_metrics_http - the optional HTTP listener of sluiced
 *  (--metrics-listen ADDR:PORT): /metrics in Prometheus text format 0.0.4,
 *  /healthz and /readyz. libmicrohttpd runs it on a thread of its own that
 *  reads only the snapshot it is given (sld_metrics_snap); it never
 *  touches the loop's state or the store. Create and destroy on the broker
 *  thread; the formatting function is pure and may run anywhere.  */
#ifndef SLD_METRICS_HTTP_H
#define SLD_METRICS_HTTP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "sld_metrics_snap.h"

typedef struct sld_metrics_http sld_metrics_http_t;

/* Listen on LISTEN ("127.0.0.1:9464", "[::1]:9464", "localhost:0"; port 0:
 * the kernel picks) and serve SNAP (borrowed; must outlive the listener).
 * A non-loopback address is refused unless PUBLIC. 0 and *out (caller
 * owns), or SL_EINVAL (not ADDR:PORT, or not loopback without PUBLIC),
 * SL_ESYS (cannot bind), SL_ENOMEM, with the reason in ERR. */
int sld_metrics_http_new(const char *listen, bool public, sld_metrics_snap_t *snap,
                         sld_metrics_http_t **out, char *err, size_t errlen);

/* Stop the thread and close the socket. NULL-safe; nulls *self_p. */
void sld_metrics_http_destroy(sld_metrics_http_t **self_p);

/* The port bound (the real one when LISTEN said 0). */
uint16_t sld_metrics_http_port(const sld_metrics_http_t *self);

/* Write V as Prometheus text exposition format 0.0.4 to OUT, NOW_US the
 * wall clock of the scrape, with the per-topic and per-subscription series
 * of D (borrowed; NULL: totals only). 0, or SL_ESYS when OUT failed. */
int sld_metrics_http_format(const sld_metrics_values_t *v, const sld_metrics_detail_t *d,
                            uint64_t now_us, FILE *out);

#endif
