/*  sld_monitor - connection events of the ROUTER.
 *
 *  libzmq reports them on an inproc PAIR socket it binds
 *  (zmq_socket_monitor); we connect ours with ZMQ_RCVHWM 0, which makes the
 *  pipe between them unbounded: libzmq's I/O thread sends events without
 *  ZMQ_DONTWAIT, so a bounded pipe that the broker thread is slow to drain
 *  (a long commit) would stall every connection's I/O. The loop drains it
 *  each turn; an event is a few dozen bytes.
 *
 *  An event carries one value: the file descriptor for ACCEPTED and
 *  DISCONNECTED, an errno or code for the HANDSHAKE_FAILED ones, which name
 *  no connection. libzmq emits HANDSHAKE_FAILED_NO_DETAIL and then, at
 *  once and from the same I/O thread (the broker's context has one),
 *  DISCONNECTED with the descriptor, so the pair is read together. A
 *  handshake closed by ZMQ_HANDSHAKE_IVL and one whose peer left look alike
 *  but for the errno (a peer that left reads EPIPE or ECONNRESET) and the
 *  time since accept, which is at least the timeout for a timed-out one.  */
#include "sld_monitor.h"
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#include "slc.h"
#include "sluice_codes.h"

#define S_EVENTS (ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED \
                  | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
#define S_PER_CALL 4096         /* events handled per sld_monitor_handle */
#define S_FD_MAX (1 << 24)      /* accept times kept for descriptors below this */

struct sld_monitor {
    void *router;               /* borrowed */
    void *pair;                 /* our end of the monitor pipe */
    sld_metrics_t *metrics;     /* borrowed */
    uint64_t timeout_ms;        /* the ROUTER's handshake timeout */
    uint64_t *accepted_ms;      /* by descriptor: when it was accepted (mono ms) */
    size_t capaccepted;
    bool failed;                /* a HANDSHAKE_FAILED_NO_DETAIL awaits its DISCONNECTED */
    int failed_errno;
};

int sld_monitor_new(void *zctx, void *router, sld_metrics_t *metrics,
                    uint32_t handshake_timeout_ms, sld_monitor_t **out)
{
    int rc = SL_ESYS, zero = 0;
    char endpoint[64];
    sld_monitor_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->router = router;
    self->metrics = metrics;
    self->timeout_ms = handshake_timeout_ms;
    /* Unique per broker: tests run two in one process. */
    snprintf(endpoint, sizeof endpoint, "inproc://sluiced-monitor-%p", (void *) self);
    if (zmq_socket_monitor(router, endpoint, S_EVENTS) != 0)
        goto fail;
    self->pair = zmq_socket(zctx, ZMQ_PAIR);
    if (!self->pair
        || zmq_setsockopt(self->pair, ZMQ_RCVHWM, &zero, sizeof zero) != 0
        || zmq_setsockopt(self->pair, ZMQ_LINGER, &zero, sizeof zero) != 0
        || zmq_connect(self->pair, endpoint) != 0)
        goto fail;
    *out = self;
    return 0;
fail:
    fprintf(stderr, "sluiced: cannot monitor connections: %s\n", zmq_strerror(zmq_errno()));
    sld_monitor_destroy(&self);
    return rc;
}

void sld_monitor_destroy(sld_monitor_t **self_p)
{
    sld_monitor_t *self = *self_p;
    if (!self)
        return;
    zmq_socket_monitor(self->router, NULL, 0);
    if (self->pair)
        zmq_close(self->pair);
    free(self->accepted_ms);
    free(self);
    *self_p = NULL;
}

void *sld_monitor_socket(const sld_monitor_t *self)
{
    return self->pair;
}

static void s_accepted(sld_monitor_t *self, uint32_t fd)
{
    sld_metrics_add(self->metrics, SLD_M_CONN_ACCEPTED, 1);
    if (fd >= S_FD_MAX)
        return;
    if (fd >= self->capaccepted) {
        size_t cap = self->capaccepted;
        if (slc_grow((void **) &self->accepted_ms, &cap, (size_t) fd + 1,
                     sizeof(uint64_t)) != 0)
            return;
        memset(self->accepted_ms + self->capaccepted, 0,
               (cap - self->capaccepted) * sizeof(uint64_t));
        self->capaccepted = cap;
    }
    self->accepted_ms[fd] = slc_mono_ms();
}

static void s_disconnected(sld_monitor_t *self, uint32_t fd)
{
    if (!self->failed)
        return;                 /* after a handshake, or counted already */
    self->failed = false;
    uint64_t since = fd < self->capaccepted ? self->accepted_ms[fd] : 0;
    bool hung_up = self->failed_errno == EPIPE || self->failed_errno == ECONNRESET;
    bool late = since && slc_mono_ms() - since + 10 >= self->timeout_ms;
    sld_metrics_add(self->metrics, !hung_up && late ? SLD_M_HANDSHAKE_TIMEOUT
                                                    : SLD_M_HANDSHAKE_FAILED, 1);
}

void sld_monitor_handle(sld_monitor_t *self)
{
    for (int i = 0; i < S_PER_CALL; i++) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, self->pair, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        /* The second part (the endpoint) follows the first at once. */
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, self->pair, 0);
        zmq_msg_close(&addr);
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) == sizeof event + sizeof value) {
            memcpy(&event, zmq_msg_data(&ev), sizeof event);
            memcpy(&value, (const uint8_t *) zmq_msg_data(&ev) + sizeof event, sizeof value);
        }
        zmq_msg_close(&ev);
        switch (event) {
        case ZMQ_EVENT_ACCEPTED:
            s_accepted(self, value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            self->failed = true;
            self->failed_errno = (int) value;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            sld_metrics_add(self->metrics, SLD_M_HANDSHAKE_FAILED, 1);
            break;
        case ZMQ_EVENT_DISCONNECTED:
            s_disconnected(self, value);
            break;
        default:
            break;
        }
    }
}
