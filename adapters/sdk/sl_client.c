/*  sl_client - the client handle: the public sl_client_* calls, which wire
 *  the parts together. sl_client_new reads the options and keys
 *  (sl_options), the producer id (sl_producer_id), makes the session
 *  (sl_session) and the parts that register with it - publishing (sl_pub)
 *  and subscriptions (sl_sub) - then starts the session. Owns the parts and
 *  the producer id file's lock. Caller's thread only. Does no I/O of its
 *  own: every wait is the session's turn.
 *
 *  Errors: the internal calls return 0 or a negative SL_E* and, where a
 *  caller may want the reason, take `char *err, size_t errlen` last. A
 *  client handle outlives each call, so the public API keeps the reason of
 *  the last refused call in the handle instead: sl_client_last_error is the
 *  SDK's public face of the same convention (sli_error_set). A refusal
 *  before a handle exists is told by sl_options_check.
 *
 *  sl_poll_fd waits on the session's socket and a caller's descriptor at
 *  once. The session's turn waits on its socket only, so sl_poll_fd runs
 *  non-blocking turns and does the waiting itself, in slices no longer
 *  than S_FD_SLICE_MS or the parts' next deadline (linger, resend), so the
 *  session's timers run late by at most a slice.  */
#include "sl_client_int.h"
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sl_options.h"
#include "sl_producer_id.h"
#include "sl_pub.h"
#include "sl_session.h"
#include "sl_sub.h"

const char *sl_strerror(int code)
{
    return slc_strerror(code);
}

int sl_client_new(const sl_options_t *opts, sl_client_t **out)
{
    int rc = 0;
    sl_client_t *self = NULL;
    sli_keys_t k;
    uint8_t id[SLC_PRODUCER_ID_LEN];
    memset(&k, 0, sizeof k);
    *out = NULL;
    sl_options_t o;
    rc = sli_options_resolve(opts, &o, NULL, 0);
    if (rc)
        goto fail;
    /* The reason for a refusal here is what sl_options_check tells. */
    rc = sli_keys_read(&o, &k, NULL, 0);
    if (rc)
        goto fail;
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = SL_ENOMEM;
        goto fail;
    }
    self->id_fd = -1;
    if (o.producer_id_file) {
        char why[PATH_MAX + 128] = "";
        rc = sli_producer_id_open(o.producer_id_file, id, &self->id_fd, why,
                                  sizeof why);
        if (rc && why[0])
            SLI_LOG("%s", why);
    }
    else
        rc = sli_random_bytes(id, sizeof id);
    if (rc)
        goto fail;
    rc = sli_session_new(&o, &k, id, self->id_fd >= 0, &self->sess);
    if (rc)
        goto fail;
    /* Publishing registers first: its hooks run first at HelloOk and in
     * every turn, as they always did. */
    rc = sli_pub_new(self->sess, &self->pub);
    if (rc)
        goto fail;
    rc = sli_subs_new(self->sess, &self->subs);
    if (rc)
        goto fail;
    rc = sli_session_start(self->sess);
    if (rc)
        goto fail;
    *out = self;
    sli_keys_wipe(&k);
    return 0;
fail:
    sli_keys_wipe(&k);
    sl_client_destroy(&self);
    return rc;
}

int sl_client_connect(sl_client_t *self)
{
    if (self->sess->state == SLI_SESS_READY)
        return 0;
    return sli_wait_ready(self->sess, self->sess->opts.connect_timeout_ms);
}

void sl_client_destroy(sl_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sl_client_t *self = *self_p;
    sli_subs_destroy(&self->subs);
    sli_pub_destroy(&self->pub);
    sli_session_destroy(&self->sess);
    if (self->id_fd >= 0)
        close(self->id_fd);     /* releases the flock */
    free(self);
    *self_p = NULL;
}

int sl_poll(sl_client_t *self, int timeout_ms)
{
    uint64_t deadline = slc_mono_ms() + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0);
    do {
        int n = sli_turn(self->sess, sli_remaining(deadline, timeout_ms));
        if (n != 0)
            return n;
    } while (timeout_ms < 0 || slc_mono_ms() < deadline);
    return 0;
}

/* Longest wait of sl_poll_fd between two turns: heartbeats (hundreds of
 * ms and more) and the dead check may run this late. */
#define S_FD_SLICE_MS 10

static bool s_fd_readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

/* How long sl_poll_fd may wait before the session's next turn is due. */
static int s_fd_wait(const sli_session_t *s, int left)
{
    uint64_t now = slc_mono_ms(), next = now + S_FD_SLICE_MS;
    for (size_t i = 0; i < s->nparts; i++)
        if (s->part_ops[i]->deadline)
            next = sli_min(next, s->part_ops[i]->deadline(s->parts[i]));
    /* Still due after the turn means blocked (full pipe): 1 ms, no spin. */
    int wait = next > now ? (int) (next - now) : 1;
    return left >= 0 && left < wait ? left : wait;
}

int sl_poll_fd(sl_client_t *self, int fd, int timeout_ms, bool *fd_ready)
{
    sli_session_t *s = self->sess;
    uint64_t deadline = slc_mono_ms() + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0);
    int n = 0;
    *fd_ready = false;
    if (fd < 0)
        return SL_EINVAL;
    for (;;) {
        n = sli_turn(s, 0);
        *fd_ready = s_fd_readable(fd);
        if (n != 0 || *fd_ready)
            break;
        int left = sli_remaining(deadline, timeout_ms);
        if (left == 0)
            break;
        if (s->state != SLI_SESS_READY || !s->sock) {
            /* Connecting: the turn watches the handshake's monitor and
             * the reconnect timer; FD is looked at between 1 ms turns. */
            n = sli_turn(s, left < 0 || left > 1 ? 1 : left);
            if (n != 0)
                break;
            continue;
        }
        /* About to block: nothing can join a batch meanwhile. */
        sli_session_service(s, slc_mono_ms(), true);
        zmq_pollitem_t items[3] = {
            { s->sock, 0, ZMQ_POLLIN, 0 },
            { NULL, fd, ZMQ_POLLIN, 0 },
            { s->mon, 0, ZMQ_POLLIN, 0 },
        };
        int ready = zmq_poll(items, s->mon ? 3 : 2, s_fd_wait(s, left));
        if (ready < 0 && errno != EINTR) {
            n = SL_ESYS;
            break;
        }
        if (items[1].revents) {
            *fd_ready = true;
            n = sli_turn(s, 0);         /* frames that came with it */
            break;
        }
        /* A monitor event while connected (a disconnect): the turn reads
         * it after a wait that saw no frame. */
        if (!(items[0].revents & ZMQ_POLLIN) && (items[2].revents & ZMQ_POLLIN)) {
            n = sli_turn(s, 1);
            if (n != 0)
                break;
        }
    }
    return n;
}

bool sl_client_connected(const sl_client_t *self)
{
    return self->sess->state == SLI_SESS_READY;
}

uint64_t sl_client_reconnects(const sl_client_t *self)
{
    return self->sess->reconnects;
}

sl_auth_t sl_client_auth(const sl_client_t *self)
{
    return (sl_auth_t) self->sess->auth;
}

const char *sl_client_last_error(const sl_client_t *self)
{
    return self->sess->last_error;
}

const char *sl_client_public_key(const sl_client_t *self)
{
    return self->sess->public_z85;
}
