/*  sld_metrics - fixed table of counters, named once here.
 *  Broker thread only; owned by the server.  */
#include "sld_metrics.h"
#include <assert.h>
#include <stdlib.h>
#include "slc.h"

struct sld_metrics {
    uint64_t value[SLD_M_COUNT];
};

static const char *const s_names[SLD_M_COUNT] = {
    [SLD_M_PUBLISHED] = "publish.stored",
    [SLD_M_PUBLISH_BYTES] = "publish.bytes",
    [SLD_M_DUPLICATES] = "publish.duplicates",
    [SLD_M_NACKED] = "publish.nacked",
    [SLD_M_SCHEMA_INVALID] = "publish.schema_invalid",
    [SLD_M_ROUTE_PREPARED] = "routing.prepared",
    [SLD_M_ROUTE_PREP_INLINE] = "routing.prep_fallback",
    [SLD_M_TRANSIENT] = "publish.transient",
    [SLD_M_COMMITS] = "store.commits",
    [SLD_M_COMMIT_FULL] = "store.full",
    [SLD_M_MAP_GROWN] = "store.map_grown",
    [SLD_M_DELIVERED] = "deliver.first",
    [SLD_M_REDELIVERED] = "deliver.redelivered",
    [SLD_M_ACKED] = "deliver.acked",
    [SLD_M_ACKS_REFUSED] = "deliver.acks_refused",
    [SLD_M_NACKS] = "deliver.nacks",
    [SLD_M_DEAD_LETTERED] = "deliver.dead_lettered",
    [SLD_M_UNREADABLE] = "deliver.unreadable",
    [SLD_M_EPHEMERAL_DROPPED] = "deliver.ephemeral_dropped",
    [SLD_M_TRIMMED] = "retention.trimmed",
    [SLD_M_SESSIONS] = "sessions.opened",
    [SLD_M_SESSIONS_EXPIRED] = "sessions.expired",
    [SLD_M_FRAMES_IN] = "frames.in",
    [SLD_M_AUTH_REFUSED] = "auth.refused",
    [SLD_M_CONN_ACCEPTED] = "connections.accepted",
    [SLD_M_HANDSHAKE_TIMEOUT] = "handshake.timeout",
    [SLD_M_HANDSHAKE_FAILED] = "handshake.failed",
    [SLD_M_SESSIONS_REVOKED] = "sessions.revoked",
    [SLD_M_ALARM_RAISED] = "alarm.raised",
    [SLD_M_ALARM_CLEARED] = "alarm.cleared",
    [SLD_M_ERR_MALFORMED] = "errors.malformed",
    [SLD_M_ERR_NOSESSION] = "errors.no_session",
    [SLD_M_ERR_COMMAND] = "errors.unknown_command",
    [SLD_M_ERR_TOOBIG] = "errors.too_big",
    [SLD_M_ERR_INVAL] = "errors.invalid",
    [SLD_M_ERR_VERSION] = "errors.version",
    [SLD_M_ERR_NOTFOUND] = "errors.not_found",
    [SLD_M_ERR_DENIED] = "errors.denied",
    [SLD_M_ERR_AUTH] = "errors.auth",
    [SLD_M_ERR_EXIST] = "errors.exists",
    [SLD_M_ERR_BUSY] = "errors.busy",
    [SLD_M_ERR_FULL] = "errors.storage_full",
    [SLD_M_ERR_STORE] = "errors.storage",
    [SLD_M_ERR_OTHER] = "errors.other",
};

int sld_metrics_new(sld_metrics_t **out)
{
    *out = calloc(1, sizeof(sld_metrics_t));
    return *out ? 0 : SL_ENOMEM;
}

void sld_metrics_destroy(sld_metrics_t **self_p)
{
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

void sld_metrics_add(sld_metrics_t *self, sld_metric_t which, uint64_t n)
{
    assert(which < SLD_M_COUNT);
    self->value[which] += n;
}

uint64_t sld_metrics_get(const sld_metrics_t *self, sld_metric_t which)
{
    assert(which < SLD_M_COUNT);
    return self->value[which];
}

void sld_metrics_error(sld_metrics_t *self, int code)
{
    sld_metric_t m;
    switch (code) {
    case SL_EMALFORMED: m = SLD_M_ERR_MALFORMED; break;
    case SL_ENOSESSION: m = SLD_M_ERR_NOSESSION; break;
    case SL_ECOMMAND:   m = SLD_M_ERR_COMMAND; break;
    case SL_ETOOBIG:    m = SLD_M_ERR_TOOBIG; break;
    case SL_EINVAL:     m = SLD_M_ERR_INVAL; break;
    case SL_EVERSION:   m = SLD_M_ERR_VERSION; break;
    case SL_ENOTFOUND:  m = SLD_M_ERR_NOTFOUND; break;
    case SL_EDENIED:    m = SLD_M_ERR_DENIED; break;
    case SL_EAUTH:      m = SLD_M_ERR_AUTH; break;
    case SL_EEXIST:     m = SLD_M_ERR_EXIST; break;
    case SL_EBUSY:      m = SLD_M_ERR_BUSY; break;
    case SL_EFULL:      m = SLD_M_ERR_FULL; break;
    case SL_ESTORE:     m = SLD_M_ERR_STORE; break;
    default:            m = SLD_M_ERR_OTHER; break;
    }
    self->value[m]++;
}

const char *sld_metrics_name(sld_metric_t which)
{
    assert(which < SLD_M_COUNT);
    return s_names[which];
}
