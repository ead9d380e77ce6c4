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
 *  before a handle exists is told by sl_options_check.  */
#include "sl_client_int.h"
#include <errno.h>
#include <limits.h>
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
