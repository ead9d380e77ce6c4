/*  sld_alarm - the storage alarms (RabbitMQ's model): one per resource, the
 *  store's map and the disk under the data dir. The map alarm is raised when
 *  the map's use passes storage/high_watermark percent of
 *  storage/map_size_max (or eats into the commit reserve, whichever comes
 *  first) and cleared only once it is back under storage/low_watermark
 *  percent: the gap is the hysteresis that keeps publishers from flapping.
 *  The disk alarm follows sld_disk (its ballast and margin). While either is
 *  raised publishes are refused (507, retryable); acks, deliveries and admin
 *  go on. A pure state machine: it measures nothing, logs nothing and
 *  writes nothing; the server acts on the transitions it reports (log,
 *  audit, counters, `_alerts`). Broker thread only.  */
#ifndef SLD_ALARM_H
#define SLD_ALARM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SLD_ALARM_MAP,              /* the LMDB map near storage/map_size_max */
    SLD_ALARM_DISK,             /* the disk of the data dir nearly full */
    SLD_ALARM_NKINDS
} sld_alarm_kind_t;

typedef struct sld_alarm sld_alarm_t;

/* HIGH_PCT and LOW_PCT: the watermarks in percent (1..100, LOW < HIGH;
 * sld_config checks). 0 and *out (caller owns), or SL_ENOMEM. */
int sld_alarm_new(uint32_t high_pct, uint32_t low_pct, sld_alarm_t **out);

/* NULL-safe; sets *self_p to NULL. */
void sld_alarm_destroy(sld_alarm_t **self_p);

/* New watermarks (SIGHUP); they apply from the next measure. */
void sld_alarm_set_watermarks(sld_alarm_t *self, uint32_t high_pct, uint32_t low_pct);

/* The map measured: USED bytes in use of MAX (the ceiling), RESERVE the
 * bytes commits keep for acks and admin. Returns true when the map alarm
 * changed state (then sld_alarm_raised says which way). */
bool sld_alarm_map(sld_alarm_t *self, uint64_t used, uint64_t max, uint64_t reserve);

/* The disk said FULL (sld_disk_room). True when the disk alarm changed. */
bool sld_alarm_disk(sld_alarm_t *self, bool full);

/* Is alarm KIND raised? */
bool sld_alarm_raised(const sld_alarm_t *self, sld_alarm_kind_t kind);

/* Any alarm raised? */
bool sld_alarm_any(const sld_alarm_t *self);

/* "map" or "disk": the kind's name in logs, audit, metrics and alerts. */
const char *sld_alarm_kind_name(sld_alarm_kind_t kind);

/* What a refused publish is told while an alarm is raised (the disk's
 * first), e.g. "storage full: map alarm: 1843 KiB used is above
 * storage/high_watermark (90% of storage/map_size_max 2048 KiB); publishes
 * resume below storage/low_watermark (80%, 1638 KiB); retry later". As of
 * the last measure. Borrowed, valid until the next call into SELF. */
const char *sld_alarm_text(const sld_alarm_t *self);

/* The details of KIND's last transition as JSON members without braces
 * (`"kind":"map","used_bytes":N,...`), for audit and alert records.
 * Borrowed, valid until the next call into SELF. */
const char *sld_alarm_detail(sld_alarm_t *self, sld_alarm_kind_t kind);

#endif
