/*  sld_alarm - the storage alarms' state and hysteresis; see sld_alarm.h.
 *  Broker thread only.  */
#include "sld_alarm.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include "slc.h"

struct sld_alarm {
    uint32_t high_pct, low_pct;         /* the watermarks */
    bool raised[SLD_ALARM_NKINDS];
    uint64_t used, max;                 /* the map's last measure */
    uint64_t high_b, low_b;             /* its thresholds in bytes then */
    char text[320];                     /* sld_alarm_text's */
    char detail[320];                   /* sld_alarm_detail's */
};

static void s_text(sld_alarm_t *self);

int sld_alarm_new(uint32_t high_pct, uint32_t low_pct, sld_alarm_t **out)
{
    sld_alarm_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    sld_alarm_set_watermarks(self, high_pct, low_pct);
    s_text(self);
    *out = self;
    return 0;
}

void sld_alarm_destroy(sld_alarm_t **self_p)
{
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

void sld_alarm_set_watermarks(sld_alarm_t *self, uint32_t high_pct, uint32_t low_pct)
{
    self->high_pct = high_pct;
    self->low_pct = low_pct;
}

bool sld_alarm_map(sld_alarm_t *self, uint64_t used, uint64_t max, uint64_t reserve)
{
    /* The reserve is a hard floor: a high watermark of 100% (or a tiny map)
     * must still leave acks and retention their pages. */
    uint64_t high = max / 100 * self->high_pct + max % 100 * self->high_pct / 100;
    uint64_t low = max / 100 * self->low_pct + max % 100 * self->low_pct / 100;
    uint64_t floor = max > reserve ? max - reserve : 0;
    if (high > floor)
        high = floor;
    if (low > high)
        low = high;
    self->used = used;
    self->max = max;
    self->high_b = high;
    self->low_b = low;
    bool was = self->raised[SLD_ALARM_MAP];
    bool now = was ? used >= low : used > high;
    self->raised[SLD_ALARM_MAP] = now;
    s_text(self);
    return now != was;
}

bool sld_alarm_disk(sld_alarm_t *self, bool full)
{
    bool was = self->raised[SLD_ALARM_DISK];
    self->raised[SLD_ALARM_DISK] = full;
    s_text(self);
    return full != was;
}

bool sld_alarm_raised(const sld_alarm_t *self, sld_alarm_kind_t kind)
{
    return self->raised[kind];
}

bool sld_alarm_any(const sld_alarm_t *self)
{
    return self->raised[SLD_ALARM_MAP] || self->raised[SLD_ALARM_DISK];
}

const char *sld_alarm_kind_name(sld_alarm_kind_t kind)
{
    return kind == SLD_ALARM_MAP ? "map" : "disk";
}

/* Refresh self->text after a measure. */
static void s_text(sld_alarm_t *self)
{
    if (self->raised[SLD_ALARM_DISK])
        snprintf(self->text, sizeof self->text, "storage full: disk alarm: the disk holding "
                 "the data directory is nearly full (below storage/disk_reserve and its "
                 "margin); publishes resume when it has room again; retry later");
    else if (!self->raised[SLD_ALARM_MAP])
        /* No alarm: this turn's publishes alone would eat into the reserve. */
        snprintf(self->text, sizeof self->text, "storage full: these publishes do not fit "
                 "under storage/map_size_max (%" PRIu64 " KiB) and its commit reserve "
                 "(%" PRIu64 " KiB used); retry later", self->max >> 10, self->used >> 10);
    else
        snprintf(self->text, sizeof self->text, "storage full: map alarm: %" PRIu64 " KiB "
                 "used is above storage/high_watermark (%" PRIu32 "%% of "
                 "storage/map_size_max %" PRIu64 " KiB); publishes resume below "
                 "storage/low_watermark (%" PRIu32 "%%, %" PRIu64 " KiB); retry later",
                 self->used >> 10, self->high_pct, self->max >> 10, self->low_pct,
                 self->low_b >> 10);
}

const char *sld_alarm_text(const sld_alarm_t *self)
{
    return self->text;
}

const char *sld_alarm_detail(sld_alarm_t *self, sld_alarm_kind_t kind)
{
    if (kind == SLD_ALARM_MAP)
        snprintf(self->detail, sizeof self->detail, "\"kind\":\"map\",\"used_bytes\":%" PRIu64
                 ",\"max_bytes\":%" PRIu64 ",\"high_watermark\":%" PRIu32
                 ",\"low_watermark\":%" PRIu32 ",\"high_bytes\":%" PRIu64
                 ",\"low_bytes\":%" PRIu64, self->used, self->max, self->high_pct,
                 self->low_pct, self->high_b, self->low_b);
    else
        snprintf(self->detail, sizeof self->detail, "\"kind\":\"disk\"");
    return self->detail;
}
