/*  sld_config - defaults, the ZPL config file and the command line, merged
 *  into one plain sld_config_t. One table (s_settings) names every setting
 *  once: the file parser, --set, --help and --print-config all walk it.
 *  Start-up only, any single thread; no globals, and no heap survives a call
 *  (the file text and the zconfig tree are freed before returning).
 *  It checks syntax and ranges only; what a value means is each module's.  */
#include "sld_config.h"
#include "slc.h"
#include "sluice_codes.h"
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"          /* keep equal to meson's project version */
#endif

#define S_FILE_MAX (1024 * 1024)        /* a config file larger than this is a mistake */
#define S_KIB 1024ull
#define S_MIB (1024ull * 1024)
#define S_GIB (1024ull * 1024 * 1024)
#define S_ERRBUF 512

typedef enum {
    S_PATH,         /* non-empty text, fits the buffer */
    S_OPTPATH,      /* like S_PATH, but "" means "not set" */
    S_ENDPOINT,     /* scheme://address */
    S_BOOL,         /* on/off true/false yes/no 1/0 */
    S_SIZE,         /* bytes, K/M/G binary suffixes */
    S_MS,           /* duration, printed as bare milliseconds (keys named *_ms) */
    S_DURATION,     /* duration, printed with the largest exact unit */
    S_COUNT,        /* plain decimal number */
    S_LEVEL,        /* log level 0..3 or its name */
} s_kind_t;

typedef struct {
    const char *section;
    const char *key;
    s_kind_t kind;
    size_t offset;              /* of the field in sld_config_t */
    size_t width;               /* sizeof the field (text: buffer size) */
    bool zero_ok;               /* 0 is meaningful (e.g. "unlimited") */
    bool reload;                /* SIGHUP applies it (sld_server_reload); else a change
                                   waits for a restart and is named in a warning */
} s_setting_t;

#define S_RELOAD true
#define S_RESTART false

#define S_FIELD(f) offsetof(sld_config_t, f), sizeof(((sld_config_t *) 0)->f)

/* The contract with deploy/sluiced.cfg: same sections, same keys, same order. */
static const s_setting_t s_settings[] = {
    { "broker", "data_dir", S_PATH, S_FIELD(data_dir), false, S_RESTART },
    { "broker", "listen", S_ENDPOINT, S_FIELD(listen), false, S_RESTART },
    { "broker", "sync", S_BOOL, S_FIELD(sync), true, S_RESTART },
    { "broker", "heartbeat_ms", S_MS, S_FIELD(heartbeat_ms), false, S_RESTART },
    { "broker", "session_timeout_ms", S_MS, S_FIELD(session_timeout_ms), false, S_RESTART },
    { "broker", "log_level", S_LEVEL, S_FIELD(log_level), true, S_RELOAD },
    { "broker", "log_format", S_PATH, S_FIELD(log_format), false, S_RESTART },
    { "broker", "log_file", S_OPTPATH, S_FIELD(log_file), true, S_RESTART },
    { "broker", "route_prep_threads", S_COUNT, S_FIELD(route_prep_threads), true, S_RESTART },
    { "broker", "metrics_listen", S_OPTPATH, S_FIELD(metrics_listen), true, S_RESTART },
    { "broker", "metrics_public", S_BOOL, S_FIELD(metrics_public), true, S_RESTART },
    { "broker", "metrics_per_object", S_BOOL, S_FIELD(metrics_per_object), true, S_RELOAD },
    { "broker", "metrics_max_objects", S_COUNT, S_FIELD(metrics_max_objects), false, S_RELOAD },
    { "limits", "max_message_bytes", S_SIZE, S_FIELD(max_message_bytes), false, S_RESTART },
    { "limits", "max_frame_bytes", S_SIZE, S_FIELD(max_frame_bytes), false, S_RESTART },
    { "limits", "max_batch", S_COUNT, S_FIELD(max_batch), false, S_RESTART },
    { "limits", "commit_max_msgs", S_COUNT, S_FIELD(commit_max_msgs), false, S_RESTART },
    { "limits", "commit_max_bytes", S_SIZE, S_FIELD(commit_max_bytes), false, S_RESTART },
    { "limits", "max_connections", S_COUNT, S_FIELD(max_connections), false, S_RESTART },
    { "limits", "handshake_timeout", S_DURATION, S_FIELD(handshake_timeout_ms), false, S_RESTART },
    { "limits", "max_subscriptions", S_COUNT, S_FIELD(max_subscriptions), false, S_RESTART },
    { "limits", "max_inflight", S_COUNT, S_FIELD(max_inflight), false, S_RESTART },
    { "limits", "max_unacked_bytes", S_SIZE, S_FIELD(max_unacked_bytes), false, S_RESTART },
    { "limits", "max_queued_frames", S_COUNT, S_FIELD(max_queued_frames), false, S_RESTART },
    { "storage", "map_size", S_SIZE, S_FIELD(map_size), false, S_RESTART },
    { "storage", "map_size_max", S_SIZE, S_FIELD(map_size_max), false, S_RELOAD },
    { "storage", "disk_reserve", S_SIZE, S_FIELD(disk_reserve), true, S_RESTART },
    { "storage", "high_watermark", S_COUNT, S_FIELD(high_watermark), false, S_RELOAD },
    { "storage", "low_watermark", S_COUNT, S_FIELD(low_watermark), false, S_RELOAD },
    { "storage", "producer_window", S_COUNT, S_FIELD(producer_window), false, S_RESTART },
    { "storage", "dedup_window", S_DURATION, S_FIELD(dedup_window_ms), false, S_RESTART },
    { "retention", "max_age", S_DURATION, S_FIELD(retention_max_age_ms), true, S_RESTART },
    { "retention", "max_bytes", S_SIZE, S_FIELD(retention_max_bytes), true, S_RESTART },
    { "retention", "trim_interval", S_DURATION, S_FIELD(trim_interval_ms), false, S_RESTART },
    { "retention", "trim_batch", S_COUNT, S_FIELD(trim_batch), false, S_RESTART },
    { "delivery", "ack_wait", S_DURATION, S_FIELD(ack_wait_ms), false, S_RESTART },
    { "delivery", "max_deliver", S_COUNT, S_FIELD(max_deliver), false, S_RESTART },
    { "delivery", "deliver_batch", S_COUNT, S_FIELD(deliver_batch), false, S_RESTART },
    { "security", "insecure_plaintext", S_BOOL, S_FIELD(insecure_plaintext), true, S_RESTART },
    { "security", "encrypt_at_rest", S_OPTPATH, S_FIELD(encrypt_at_rest), true, S_RESTART },
    { "security", "audit_file", S_OPTPATH, S_FIELD(audit_file), true, S_RESTART },
    { "security", "audit_retention", S_DURATION, S_FIELD(audit_retention_ms), true, S_RESTART },
    { "security", "audit_refusal_interval", S_DURATION, S_FIELD(audit_refusal_interval_ms),
      false, S_RESTART },
    { "alerts", "subscription_lag_max", S_COUNT, S_FIELD(alert_lag_max), true, S_RELOAD },
    { "alerts", "subscription_lag_for", S_DURATION, S_FIELD(alert_lag_for_ms), true, S_RELOAD },
    { "alerts", "dlq_growth_max", S_COUNT, S_FIELD(alert_dlq_growth), true, S_RELOAD },
    { "alerts", "dlq_growth_window", S_DURATION, S_FIELD(alert_dlq_window_ms), false, S_RELOAD },
    { "alerts", "topic_idle", S_OPTPATH, S_FIELD(alert_topic_idle), true, S_RELOAD },
    { "alerts", "topic_idle_for", S_DURATION, S_FIELD(alert_topic_idle_for_ms), false, S_RELOAD },
    { "alerts", "route_errors_max", S_COUNT, S_FIELD(alert_route_errors), true, S_RELOAD },
    { "alerts", "route_errors_window", S_DURATION, S_FIELD(alert_route_window_ms), false,
      S_RELOAD },
};
#define S_NSETTINGS (sizeof s_settings / sizeof s_settings[0])

static const char *s_levels[] = { "error", "warn", "info", "debug" };

void sld_config_defaults(sld_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", SLD_DEFAULT_DATA_DIR);
    snprintf(cfg->listen, sizeof cfg->listen, "%s", SLD_DEFAULT_LISTEN);
    cfg->sync = true;
    cfg->heartbeat_ms = 1000;
    cfg->session_timeout_ms = 10000;
    cfg->log_level = 2;
    snprintf(cfg->log_format, sizeof cfg->log_format, "text");
    cfg->route_prep_threads = 1;
    cfg->metrics_max_objects = 500;
    cfg->max_message_bytes = 1 * S_MIB;
    cfg->max_frame_bytes = 64 * S_MIB;
    cfg->max_batch = 10000;
    cfg->commit_max_msgs = 20000;
    cfg->commit_max_bytes = 64 * S_MIB;
    cfg->max_connections = 1024;
    cfg->handshake_timeout_ms = 5000;
    cfg->max_subscriptions = 10000;
    cfg->max_inflight = 10000;
    cfg->max_unacked_bytes = 64 * S_MIB;
    cfg->max_queued_frames = 100000;
    cfg->map_size = 64 * S_MIB;
    cfg->map_size_max = 16 * S_GIB;
    cfg->disk_reserve = 32 * S_MIB;
    cfg->high_watermark = 90;
    cfg->low_watermark = 80;
    cfg->producer_window = 1000000;
    cfg->dedup_window_ms = 2 * 60 * 1000;
    cfg->retention_max_age_ms = 0;
    cfg->retention_max_bytes = 0;
    cfg->trim_interval_ms = 1000;
    cfg->trim_batch = 10000;
    cfg->ack_wait_ms = 30 * 1000;
    cfg->max_deliver = 5;
    cfg->deliver_batch = 1000;
    cfg->audit_retention_ms = 90ull * 24 * 60 * 60 * 1000;
    cfg->audit_refusal_interval_ms = 60 * 1000;
    cfg->alert_lag_for_ms = 60 * 1000;
    cfg->alert_dlq_window_ms = 5 * 60 * 1000;
    cfg->alert_topic_idle_for_ms = 5 * 60 * 1000;
    cfg->alert_route_window_ms = 5 * 60 * 1000;
}

/* ------------------------------------------------------------ parsing */

/* Leading decimal digits of S into *v; *end after them. False when there
 * are none or the number overflows 64 bits. No sign, no spaces. */
static bool s_digits(const char *s, uint64_t *v, const char **end)
{
    uint64_t n = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned) (*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *v = n;
    *end = p;
    return p > s;
}

static bool s_scale(uint64_t n, uint64_t unit, uint64_t *v)
{
    if (unit && n > UINT64_MAX / unit)
        return false;
    *v = n * unit;
    return true;
}

/* The unit multiplier for SUFFIX in a size or duration; 0 = not a unit. */
static uint64_t s_unit(const char *suffix, bool duration)
{
    static const struct { const char *name; uint64_t mult; } sizes[] = {
        { "", 1 }, { "K", S_KIB }, { "M", S_MIB }, { "G", S_GIB },
        { "k", S_KIB }, { "m", S_MIB }, { "g", S_GIB },
    };
    static const struct { const char *name; uint64_t mult; } durs[] = {
        { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 },
        { "h", 60 * 60 * 1000 }, { "d", 24 * 60 * 60 * 1000 },
    };
    if (duration) {
        for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++)
            if (strcmp(suffix, durs[i].name) == 0)
                return durs[i].mult;
    }
    else {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            if (strcmp(suffix, sizes[i].name) == 0)
                return sizes[i].mult;
    }
    return 0;
}

static int s_parse_bool(const char *text, bool *v)
{
    static const char *yes[] = { "on", "true", "yes", "1" };
    static const char *no[] = { "off", "false", "no", "0" };
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *v = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *v = false;
            return 0;
        }
    }
    return SL_EINVAL;
}

/* Text may be written back between quotes only if it has no control
 * characters and does not hold both kinds of quote (ZPL has no escapes). */
static bool s_printable(const char *text)
{
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return !(strchr(text, '"') && strchr(text, '\''));
}

static int s_apply_text(char *field, const s_setting_t *s, const char *text,
                        char *err, size_t errlen)
{
    int rc = 0;
    size_t len = strlen(text);
    const char *sep = strstr(text, "://");
    if (len == 0 && s->kind == S_OPTPATH) {
        field[0] = 0;
        return 0;
    }
    if (len == 0) {
        slc_errf(err, errlen, "%s/%s: must not be empty", s->section, s->key);
        rc = SL_EINVAL;
        goto fail;
    }
    if (len >= s->width) {
        slc_errf(err, errlen, "%s/%s: too long (at most %zu bytes)",
              s->section, s->key, s->width - 1);
        rc = SL_EINVAL;
        goto fail;
    }
    if (!s_printable(text)) {
        slc_errf(err, errlen, "%s/%s: \"%s\" holds control characters or "
              "both kinds of quote", s->section, s->key, text);
        rc = SL_EINVAL;
        goto fail;
    }
    if (s->kind == S_ENDPOINT && (!sep || sep == text || !sep[3])) {
        slc_errf(err, errlen, "%s/%s: \"%s\" is not an endpoint "
              "(e.g. tcp://127.0.0.1:5555)", s->section, s->key, text);
        rc = SL_EINVAL;
        goto fail;
    }
    memcpy(field, text, len + 1);
    return 0;
fail:
    return rc;
}

static int s_apply_level(int *field, const s_setting_t *s, const char *text,
                         char *err, size_t errlen)
{
    int rc = 0;
    uint64_t v = 0;
    const char *end = NULL;
    for (size_t i = 0; i < sizeof s_levels / sizeof s_levels[0]; i++)
        if (strcasecmp(text, s_levels[i]) == 0) {
            *field = (int) i;
            return 0;
        }
    if (!s_digits(text, &v, &end) || *end || v > 3) {
        slc_errf(err, errlen, "%s/%s: \"%s\" is not a log level "
              "(0-3 or error, warn, info, debug)", s->section, s->key, text);
        rc = SL_EINVAL;
        goto fail;
    }
    *field = (int) v;
    return 0;
fail:
    return rc;
}

/* Sizes, durations and counts: digits, an optional unit, range checks. */
static int s_apply_number(char *field, const s_setting_t *s, const char *text,
                          char *err, size_t errlen)
{
    int rc = 0;
    uint64_t n = 0, v = 0, unit = 0;
    uint64_t max = s->width == sizeof(uint32_t) ? UINT32_MAX : UINT64_MAX;
    const char *end = NULL;
    const char *what = s->kind == S_SIZE ? "a size (bytes, or with K, M or G)"
                     : s->kind == S_COUNT ? "a number"
                     : "a duration (ms, or with ms, s, m, h or d)";
    if (!s_digits(text, &n, &end)) {
        /* Either no digits at all or more than 64 bits of them. */
        bool digits = *text >= '0' && *text <= '9';
        slc_errf(err, errlen, "%s/%s: \"%s\" is %s%s", s->section, s->key,
              text, digits ? "too large for " : "not ", what);
        rc = SL_EINVAL;
        goto fail;
    }
    if (s->kind == S_COUNT)
        unit = *end ? 0 : 1;
    else
        unit = s_unit(end, s->kind != S_SIZE);
    if (unit == 0) {
        slc_errf(err, errlen, "%s/%s: \"%s\" is not %s",
              s->section, s->key, text, what);
        rc = SL_EINVAL;
        goto fail;
    }
    if (!s_scale(n, unit, &v) || v > max) {
        slc_errf(err, errlen, "%s/%s: \"%s\" is too large (at most %llu%s)",
              s->section, s->key, text, (unsigned long long) max,
              s->kind == S_SIZE ? " bytes" : s->kind == S_COUNT ? "" : " ms");
        rc = SL_EINVAL;
        goto fail;
    }
    if (v == 0 && !s->zero_ok) {
        slc_errf(err, errlen, "%s/%s: must not be 0", s->section, s->key);
        rc = SL_EINVAL;
        goto fail;
    }
    if (s->width == sizeof(uint32_t))
        *(uint32_t *) (void *) field = (uint32_t) v;
    else
        *(uint64_t *) (void *) field = v;
    return 0;
fail:
    return rc;
}

/* Set setting S of CFG from TEXT. On error ERR says "section/key: why". */
static int s_apply(sld_config_t *cfg, const s_setting_t *s, const char *text,
                   char *err, size_t errlen)
{
    int rc = 0;
    char *field = (char *) cfg + s->offset;
    bool b = false;
    if (!text)
        text = "";                      /* "key" with no "= value" */
    switch (s->kind) {
    case S_PATH:
    case S_OPTPATH:
    case S_ENDPOINT:
        rc = s_apply_text(field, s, text, err, errlen);
        break;
    case S_BOOL:
        rc = s_parse_bool(text, &b);
        if (rc)
            slc_errf(err, errlen, "%s/%s: \"%s\" is not a boolean "
                  "(on/off, true/false, yes/no, 1/0)", s->section, s->key, text);
        else
            *(bool *) (void *) field = b;
        break;
    case S_LEVEL:
        rc = s_apply_level((int *) (void *) field, s, text, err, errlen);
        break;
    case S_SIZE:
    case S_MS:
    case S_DURATION:
    case S_COUNT:
        rc = s_apply_number(field, s, text, err, errlen);
        break;
    }
    if (rc)
        goto fail;
    return 0;
fail:
    return rc;
}

/* The setting SECTION/KEY, or NULL. */
static const s_setting_t *s_lookup(const char *section, const char *key)
{
    for (size_t i = 0; i < S_NSETTINGS; i++)
        if (strcmp(s_settings[i].section, section) == 0
            && strcmp(s_settings[i].key, key) == 0)
            return &s_settings[i];
    return NULL;
}

static bool s_section_known(const char *section)
{
    for (size_t i = 0; i < S_NSETTINGS; i++)
        if (strcmp(s_settings[i].section, section) == 0)
            return true;
    return false;
}

/* The rules that involve two settings; checked on a finished config. */
bool sld_config_loopback(const char *endpoint)
{
    static const char *const local[] = {
        "tcp://127.0.0.1:", "tcp://localhost:", "tcp://[::1]:", "ipc://", "inproc://",
    };
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        if (strncmp(endpoint, local[i], strlen(local[i])) == 0)
            return true;
    return false;
}

static int s_check(const sld_config_t *cfg, char *err, size_t errlen)
{
    int rc = 0;
    if (cfg->route_prep_threads > 16) {
        slc_errf(err, errlen, "broker/route_prep_threads: %u is too many (at most 16; 0 "
              "checks and routes publishes on the loop thread)", cfg->route_prep_threads);
        rc = SL_EINVAL;
        goto fail;
    }
    if (strcmp(cfg->log_format, "text") != 0 && strcmp(cfg->log_format, "json") != 0) {
        slc_errf(err, errlen, "broker/log_format: \"%s\" is not a log format (text or json)",
                 cfg->log_format);
        rc = SL_EINVAL;
        goto fail;
    }
    if (cfg->map_size_max < cfg->map_size) {
        slc_errf(err, errlen, "storage/map_size_max (%llu bytes) is smaller than "
              "storage/map_size (%llu bytes)",
              (unsigned long long) cfg->map_size_max,
              (unsigned long long) cfg->map_size);
        rc = SL_EINVAL;
        goto fail;
    }
    if (cfg->alert_dlq_window_ms > 3600 * 1000) {
        slc_errf(err, errlen, "alerts/dlq_growth_window: %u ms is too long (at most 1h)",
              cfg->alert_dlq_window_ms);
        rc = SL_EINVAL;
        goto fail;
    }
    if (cfg->alert_route_window_ms > 3600 * 1000) {
        slc_errf(err, errlen, "alerts/route_errors_window: %u ms is too long (at most 1h)",
              cfg->alert_route_window_ms);
        rc = SL_EINVAL;
        goto fail;
    }
    size_t npat = 0;
    rc = sld_config_patterns(cfg->alert_topic_idle, NULL, SLD_CONFIG_PATTERNS_MAX, &npat,
                             err, errlen);
    if (rc)
        goto fail;
    if (cfg->high_watermark > 100 || cfg->low_watermark >= cfg->high_watermark) {
        slc_errf(err, errlen, "storage/low_watermark (%u%%) and storage/high_watermark "
              "(%u%%): need 0 < low < high <= 100 (percent of storage/map_size_max)",
              cfg->low_watermark, cfg->high_watermark);
        rc = SL_EINVAL;
        goto fail;
    }
    if (cfg->insecure_plaintext && !sld_config_loopback(cfg->listen)) {
        slc_errf(err, errlen, "security/insecure_plaintext: refused on %s; plain text "
              "is allowed only on loopback (tcp://127.0.0.1, tcp://[::1], "
              "tcp://localhost) or ipc:// and inproc://", cfg->listen);
        rc = SL_EINVAL;
        goto fail;
    }
    if (cfg->max_message_bytes > cfg->max_frame_bytes) {
        slc_errf(err, errlen, "limits/max_message_bytes (%lu bytes) is larger "
              "than limits/max_frame_bytes (%lu bytes)",
              (unsigned long) cfg->max_message_bytes,
              (unsigned long) cfg->max_frame_bytes);
        rc = SL_EINVAL;
        goto fail;
    }
    return 0;
fail:
    return rc;
}

int sld_config_set(sld_config_t *cfg, const char *key, const char *value,
                   char *err, size_t errlen)
{
    int rc = 0;
    const s_setting_t *s = NULL;
    const char *slash = key ? strchr(key, '/') : NULL;
    if (!key || !*key) {
        slc_errf(err, errlen, "empty setting name");
        rc = SL_EINVAL;
        goto fail;
    }
    if (slash) {
        char section[32];
        size_t len = (size_t) (slash - key);
        if (len < sizeof section) {
            memcpy(section, key, len);
            section[len] = 0;
            s = s_lookup(section, slash + 1);
        }
    }
    else {
        size_t found = 0;
        for (size_t i = 0; i < S_NSETTINGS; i++)
            if (strcmp(s_settings[i].key, key) == 0) {
                s = &s_settings[i];
                found++;
            }
        if (found > 1) {
            slc_errf(err, errlen, "%s: ambiguous setting; name it as section/%s",
                  key, key);
            rc = SL_EINVAL;
            goto fail;
        }
    }
    if (!s) {
        slc_errf(err, errlen, "%s: unknown setting (sluiced --help lists them)",
              key);
        rc = SL_EINVAL;
        goto fail;
    }
    rc = s_apply(cfg, s, value, err, errlen);
    if (rc)
        goto fail;
    return 0;
fail:
    return rc;
}

/* ------------------------------------------------------------ the file */

/* Read PATH (a regular file, not world-writable) into a new string. */
static int s_read_file(const char *path, char **text_p, char *err, size_t errlen)
{
    int rc = 0;
    char *text = NULL;
    struct stat st;
    /* O_NONBLOCK: a FIFO given by mistake must not hang start-up. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        slc_errf(err, errlen, "%s: %s", path, strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    if (fstat(fd, &st) != 0) {
        slc_errf(err, errlen, "%s: %s", path, strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        slc_errf(err, errlen, "%s: not a regular file", path);
        rc = SL_EINVAL;
        goto fail;
    }
    if (st.st_mode & S_IWOTH) {
        slc_errf(err, errlen, "%s: world-writable; refusing it (chmod o-w %s)",
              path, path);
        rc = SL_EINVAL;
        goto fail;
    }
    if (st.st_size > S_FILE_MAX) {
        slc_errf(err, errlen, "%s: larger than %d bytes; not a config file",
              path, S_FILE_MAX);
        rc = SL_EINVAL;
        goto fail;
    }
    size_t size = (size_t) st.st_size, got = 0;
    text = malloc(size + 1);
    if (!text) {
        slc_errf(err, errlen, "%s: out of memory", path);
        rc = SL_ENOMEM;
        goto fail;
    }
    while (got < size) {
        ssize_t r = read(fd, text + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            slc_errf(err, errlen, "%s: %s", path, strerror(errno));
            rc = SL_ESYS;
            goto fail;
        }
        if (r == 0)
            break;                      /* shrank under us: parse what is there */
        got += (size_t) r;
    }
    text[got] = 0;
    if (memchr(text, 0, got)) {
        slc_errf(err, errlen, "%s: holds a NUL byte; not a config file", path);
        rc = SL_EINVAL;
        goto fail;
    }
    close(fd);
    *text_p = text;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(text);
    return rc;
}

/* Apply the sections of ROOT to CFG. ERR names the key, not the file. */
static int s_apply_tree(sld_config_t *cfg, zconfig_t *root,
                        char *err, size_t errlen)
{
    int rc = 0;
    for (zconfig_t *sec = zconfig_child(root); sec; sec = zconfig_next(sec)) {
        const char *sname = zconfig_name(sec);
        const char *svalue = zconfig_value(sec);
        if (!s_section_known(sname)) {
            slc_errf(err, errlen, "%s: unknown section (expected broker, limits, "
                  "storage, retention or delivery)", sname);
            rc = SL_EINVAL;
            goto fail;
        }
        if (svalue && *svalue) {
            slc_errf(err, errlen, "%s: a section takes no value (\"%s\")",
                  sname, svalue);
            rc = SL_EINVAL;
            goto fail;
        }
        for (zconfig_t *k = zconfig_child(sec); k; k = zconfig_next(k)) {
            const s_setting_t *s = s_lookup(sname, zconfig_name(k));
            if (!s) {
                slc_errf(err, errlen, "%s/%s: unknown key", sname, zconfig_name(k));
                rc = SL_EINVAL;
                goto fail;
            }
            if (zconfig_child(k)) {
                slc_errf(err, errlen, "%s/%s: a key takes no nested items",
                      sname, zconfig_name(k));
                rc = SL_EINVAL;
                goto fail;
            }
            rc = s_apply(cfg, s, zconfig_value(k), err, errlen);
            if (rc)
                goto fail;
        }
    }
    return 0;
fail:
    return rc;
}

/* Load PATH over CFG without the cross-setting checks; ERR names PATH. */
static int s_load(sld_config_t *cfg, const char *path, char *err, size_t errlen)
{
    int rc = 0;
    char *text = NULL;
    zconfig_t *root = NULL;
    char why[S_ERRBUF] = "";
    rc = s_read_file(path, &text, err, errlen);
    if (rc)
        goto fail;
    root = zconfig_str_load(text);
    if (!root) {
        /* zconfig has already logged the line and the reason on stderr. */
        slc_errf(err, errlen, "%s: not valid ZPL (indent 4 spaces per level, "
              "key = value)", path);
        rc = SL_EINVAL;
        goto fail;
    }
    rc = s_apply_tree(cfg, root, why, sizeof why);
    if (rc) {
        slc_errf(err, errlen, "%s: %s", path, why);
        goto fail;
    }
    zconfig_destroy(&root);
    free(text);
    return 0;
fail:
    zconfig_destroy(&root);
    free(text);
    return rc;
}

int sld_config_load(sld_config_t *cfg, const char *path,
                    char *err, size_t errlen)
{
    int rc = 0;
    sld_config_t tmp = *cfg;
    char why[S_ERRBUF] = "";
    rc = s_load(&tmp, path, err, errlen);
    if (rc)
        goto fail;
    rc = s_check(&tmp, why, sizeof why);
    if (rc) {
        slc_errf(err, errlen, "%s: %s", path, why);
        goto fail;
    }
    *cfg = tmp;
    return 0;
fail:
    return rc;
}

/* ------------------------------------------------------------ printing */

/* VALUE of setting S as config-file text into BUF. */
static void s_format(const s_setting_t *s, const sld_config_t *cfg,
                     char *buf, size_t len)
{
    const char *field = (const char *) cfg + s->offset;
    uint64_t v = 0;
    switch (s->kind) {
    case S_PATH:
    case S_OPTPATH:
    case S_ENDPOINT: {
        char q = strchr(field, '"') ? '\'' : '"';
        snprintf(buf, len, "%c%s%c", q, field, q);
        return;
    }
    case S_BOOL:
        snprintf(buf, len, "%s", *(const bool *) field ? "on" : "off");
        return;
    case S_LEVEL:
        snprintf(buf, len, "%d", *(const int *) field);
        return;
    default:
        break;
    }
    if (s->width == sizeof(uint32_t))
        v = *(const uint32_t *) field;
    else
        v = *(const uint64_t *) field;
    static const struct { uint64_t mult; const char *name; } sizes[] = {
        { S_GIB, "G" }, { S_MIB, "M" }, { S_KIB, "K" },
    };
    static const struct { uint64_t mult; const char *name; } durs[] = {
        { 24 * 60 * 60 * 1000, "d" }, { 60 * 60 * 1000, "h" }, { 60 * 1000, "m" },
        { 1000, "s" },
    };
    if (v != 0 && s->kind == S_SIZE) {
        for (size_t i = 0; i < 3; i++)
            if (v % sizes[i].mult == 0) {
                snprintf(buf, len, "%llu%s",
                         (unsigned long long) (v / sizes[i].mult), sizes[i].name);
                return;
            }
    }
    if (v != 0 && s->kind == S_DURATION) {
        for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++)
            if (v % durs[i].mult == 0) {
                snprintf(buf, len, "%llu%s",
                         (unsigned long long) (v / durs[i].mult), durs[i].name);
                return;
            }
        snprintf(buf, len, "%llums", (unsigned long long) v);
        return;
    }
    snprintf(buf, len, "%llu", (unsigned long long) v);
}

int sld_config_patterns(const char *list, char (*out)[SLC_TOPIC_MAX + 1], size_t max,
                        size_t *n, char *err, size_t errlen)
{
    *n = 0;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        char pat[SLC_TOPIC_MAX + 1];
        if (len > SLC_TOPIC_MAX || *n == max) {
            slc_errf(err, errlen, "alerts/topic_idle: %s%zu", len > SLC_TOPIC_MAX
                     ? "a pattern is longer than " : "more patterns than ",
                     len > SLC_TOPIC_MAX ? (size_t) SLC_TOPIC_MAX : max);
            return SL_EINVAL;
        }
        memcpy(pat, p, len);
        pat[len] = 0;
        if (slc_pattern_validate(pat) != 0) {
            slc_errf(err, errlen, "alerts/topic_idle: \"%s\" is not a topic pattern "
                     "(words separated by '.', '*' for one word, '>' for the rest)", pat);
            return SL_EINVAL;
        }
        if (out)
            memcpy(out[*n], pat, len + 1);
        (*n)++;
        p += len;
    }
    return 0;
}

/* Append SECTION/KEY to the list in BUF (LEN >= 4 bytes), ", " between;
 * when it does not fit the list ends with "..." and takes no more. */
static void s_list_add(char *buf, size_t len, const char *section, const char *key)
{
    size_t k = strlen(buf);
    if (k >= 3 && strcmp(buf + k - 3, "...") == 0)
        return;
    int n = snprintf(buf + k, len - k, "%s%s/%s", k ? ", " : "", section, key);
    if (n >= 0 && (size_t) n < len - k)
        return;
    size_t at = k + 3 < len ? k : len - 4;
    snprintf(buf + at, len - at, "...");
}

void sld_config_diff(const sld_config_t *old, const sld_config_t *new,
                     char *reloaded, size_t rlen, char *restart, size_t slen)
{
    reloaded[0] = restart[0] = 0;
    for (size_t i = 0; i < S_NSETTINGS; i++) {
        const s_setting_t *s = &s_settings[i];
        const char *a = (const char *) old + s->offset, *b = (const char *) new + s->offset;
        bool text = s->kind == S_PATH || s->kind == S_OPTPATH || s->kind == S_ENDPOINT;
        bool same = text ? strcmp(a, b) == 0 : memcmp(a, b, s->width) == 0;
        if (!same && s->reload)
            s_list_add(reloaded, rlen, s->section, s->key);
        else if (!same)
            s_list_add(restart, slen, s->section, s->key);
    }
}

void sld_config_print(const sld_config_t *cfg, FILE *out)
{
    const char *section = "";
    char value[PATH_MAX + 8];
    fprintf(out, "#   sluiced configuration (ZPL), as printed by sluiced "
            "--print-config.\n");
    for (size_t i = 0; i < S_NSETTINGS; i++) {
        const s_setting_t *s = &s_settings[i];
        if (strcmp(section, s->section) != 0) {
            section = s->section;
            fprintf(out, "%s\n", section);
        }
        s_format(s, cfg, value, sizeof value);
        fprintf(out, "    %s = %s\n", s->key, value);
    }
}

/* ------------------------------------------------------------ arguments */

typedef enum {
    S_OPT_CONFIG, S_OPT_DATA_DIR, S_OPT_LISTEN, S_OPT_SYNC, S_OPT_SET,
    S_OPT_CHECK, S_OPT_PRINT, S_OPT_HELP, S_OPT_VERSION,
    S_OPT_PLAINTEXT, S_OPT_AT_REST, S_OPT_AUDIT_FILE, S_OPT_NEW_KEY,
    S_OPT_METRICS_LISTEN, S_OPT_METRICS_PUBLIC, S_OPT_METRICS_PER_OBJECT, S_OPT_LOG_FORMAT, S_OPT_LOG_FILE,
} s_opt_id_t;

typedef struct {
    const char *name;
    const char *alias;          /* short form, or NULL */
    s_opt_id_t id;
    bool takes_value;
} s_option_t;

static const s_option_t s_options[] = {
    { "--config", NULL, S_OPT_CONFIG, true },
    { "--data-dir", NULL, S_OPT_DATA_DIR, true },
    { "--listen", NULL, S_OPT_LISTEN, true },
    { "--sync", NULL, S_OPT_SYNC, true },
    { "--set", NULL, S_OPT_SET, true },
    { "--insecure-plaintext", NULL, S_OPT_PLAINTEXT, false },
    { "--encrypt-at-rest", NULL, S_OPT_AT_REST, true },
    { "--audit-file", NULL, S_OPT_AUDIT_FILE, true },
    { "--new-key", NULL, S_OPT_NEW_KEY, true },
    { "--metrics-listen", NULL, S_OPT_METRICS_LISTEN, true },
    { "--metrics-public", NULL, S_OPT_METRICS_PUBLIC, false },
    { "--metrics-per-object", NULL, S_OPT_METRICS_PER_OBJECT, false },
    { "--log-format", NULL, S_OPT_LOG_FORMAT, true },
    { "--log-file", NULL, S_OPT_LOG_FILE, true },
    { "--check", NULL, S_OPT_CHECK, false },
    { "--print-config", NULL, S_OPT_PRINT, false },
    { "--help", "-h", S_OPT_HELP, false },
    { "--version", NULL, S_OPT_VERSION, false },
};

/* Read the option at ARGV[*i] (advancing *i past its value): *opt and
 * *value (borrowed from ARGV, NULL for flags without one). */
static int s_next_option(int argc, char **argv, int *i, const s_option_t **opt,
                         const char **value, char *err, size_t errlen)
{
    int rc = 0;
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t name_len = eq ? (size_t) (eq - arg) : strlen(arg);
    *opt = NULL;
    *value = NULL;
    for (size_t k = 0; k < sizeof s_options / sizeof s_options[0]; k++) {
        const s_option_t *o = &s_options[k];
        if ((strlen(o->name) == name_len && strncmp(o->name, arg, name_len) == 0)
            || (o->alias && strcmp(o->alias, arg) == 0)) {
            *opt = o;
            break;
        }
    }
    if (!*opt) {
        if (arg[0] == '-')
            slc_errf(err, errlen, "unknown option %s (try --help)", arg);
        else
            slc_errf(err, errlen, "unexpected argument \"%s\" (try --help)", arg);
        rc = SL_EINVAL;
        goto fail;
    }
    if (!(*opt)->takes_value) {
        if (eq) {
            slc_errf(err, errlen, "%s takes no value", (*opt)->name);
            rc = SL_EINVAL;
            goto fail;
        }
        return 0;
    }
    if (eq)
        *value = eq + 1;
    else if (*i + 1 < argc)
        *value = argv[++*i];
    else {
        slc_errf(err, errlen, "%s needs a value (try --help)", (*opt)->name);
        rc = SL_EINVAL;
        goto fail;
    }
    return 0;
fail:
    return rc;
}

static int s_usage(FILE *out, char *err, size_t errlen)
{
    int rc = 0;
    sld_config_t defaults;
    char value[PATH_MAX + 8];
    sld_config_defaults(&defaults);
    fprintf(out,
        "Usage: sluiced [OPTION]...\n"
        "Run the sluice message broker in the foreground.\n"
        "\n"
        "  --config FILE       read settings from FILE (ZPL, see "
        "deploy/sluiced.cfg);\n"
        "                      loaded first, wherever it appears; the other "
        "flags\n"
        "                      override it, later flags override earlier ones\n"
        "  --data-dir DIR      data directory (default %s)\n"
        "  --listen ENDPOINT   endpoint to bind (default %s)\n"
        "  --sync=on|off       fsync every commit (default on). --sync=off is "
        "UNSAFE:\n"
        "                      acked messages may be lost on power failure or "
        "OS crash\n"
        "  --insecure-plaintext  no encryption and no keys: every client may do\n"
        "                      everything. Only on loopback or ipc; for local\n"
        "                      development (docs/security.md)\n"
        "  --encrypt-at-rest KEYFILE  seal stored messages with the key in KEYFILE\n"
        "                      (mode 0600; make one with --new-key)\n"
        "  --audit-file FILE   also append each audit record to FILE (JSON lines)\n"
        "  --new-key FILE      write a new random at-rest key to FILE (mode 0600)\n"
        "                      and exit\n"
        "  --metrics-listen ADDR:PORT  serve /metrics (Prometheus), /healthz and\n"
        "                      /readyz over HTTP there (off by default; loopback\n"
        "                      only unless --metrics-public; docs/operations.md)\n"
        "  --metrics-public    allow --metrics-listen on a non-loopback address\n"
        "  --metrics-per-object  add per-topic and per-subscription series to\n"
        "                      /metrics (broker/metrics_max_objects caps them)\n"
        "  --log-format text|json  log lines as text (default) or one JSON object\n"
        "                      per line (time, level, module, msg, numbers with\n"
        "                      their unit in their name: silent_ms)\n"
        "  --log-file FILE     append the log to FILE instead of stderr; SIGUSR1\n"
        "                      reopens it (logrotate)\n"
        "  --set KEY=VALUE     set any setting below, as section/key or key;\n"
        "                      repeatable (e.g. --set limits/max_batch=5000)\n"
        "  --check             verify the store and exit\n"
        "  --print-config      print the effective configuration and exit\n"
        "  -h, --help          print this help and exit\n"
        "  --version           print the version and exit\n"
        "\n"
        "Settings and their defaults (section/key = default; SIGHUP reloads those\n"
        "marked, the others keep their value until a restart):\n",
        SLD_DEFAULT_DATA_DIR, SLD_DEFAULT_LISTEN);
    for (size_t i = 0; i < S_NSETTINGS; i++) {
        s_format(&s_settings[i], &defaults, value, sizeof value);
        fprintf(out, "  %s/%s = %s%s\n", s_settings[i].section,
                s_settings[i].key, value, s_settings[i].reload ? "  (SIGHUP)" : "");
    }
    fprintf(out,
        "\n"
        "Sizes are bytes or take K, M, G (binary: 1M = 1048576). Durations are\n"
        "milliseconds or take ms, s, m, h, d. Booleans: on/off, true/false, "
        "yes/no, 1/0.\n"
        "Retention max_age and max_bytes of 0 mean unlimited.\n"
        "limits/handshake_timeout: a connection that has not finished its handshake\n"
        "(ZMTP greeting, CurveZMQ, key check) by then is closed and counted.\n"
        "security/audit_retention: _audit records older than this are trimmed, by\n"
        "age only (0 = keep forever). security/audit_refusal_interval: the first\n"
        "refused handshake of a key from an address is recorded at once, repeats\n"
        "in one record per interval with their count (docs/security.md).\n");
    if (fflush(out) != 0 || ferror(out)) {
        slc_errf(err, errlen, "cannot write the usage: %s", strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    return 0;
fail:
    return rc;
}

static int s_version(FILE *out, char *err, size_t errlen)
{
    int rc = 0;
    fprintf(out, "sluiced %s\n", SLUICE_VERSION);
    if (fflush(out) != 0 || ferror(out)) {
        slc_errf(err, errlen, "cannot write the version: %s", strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    return 0;
fail:
    return rc;
}

/* Apply one non-config option (second pass). */
static int s_apply_option(sld_config_t *cfg, const s_option_t *opt,
                          const char *value, sld_action_t *action,
                          char *err, size_t errlen)
{
    int rc = 0;
    char why[S_ERRBUF] = "";
    switch (opt->id) {
    case S_OPT_DATA_DIR:
        rc = sld_config_set(cfg, "broker/data_dir", value, why, sizeof why);
        break;
    case S_OPT_LISTEN:
        rc = sld_config_set(cfg, "broker/listen", value, why, sizeof why);
        break;
    case S_OPT_SYNC:
        rc = sld_config_set(cfg, "broker/sync", value, why, sizeof why);
        break;
    case S_OPT_PLAINTEXT:
        rc = sld_config_set(cfg, "security/insecure_plaintext", "on", why, sizeof why);
        break;
    case S_OPT_AT_REST:
        rc = sld_config_set(cfg, "security/encrypt_at_rest", value, why, sizeof why);
        break;
    case S_OPT_AUDIT_FILE:
        rc = sld_config_set(cfg, "security/audit_file", value, why, sizeof why);
        break;
    case S_OPT_METRICS_LISTEN:
        rc = sld_config_set(cfg, "broker/metrics_listen", value, why, sizeof why);
        break;
    case S_OPT_METRICS_PUBLIC:
        rc = sld_config_set(cfg, "broker/metrics_public", "on", why, sizeof why);
        break;
    case S_OPT_METRICS_PER_OBJECT:
        rc = sld_config_set(cfg, "broker/metrics_per_object", "on", why, sizeof why);
        break;
    case S_OPT_LOG_FORMAT:
        rc = sld_config_set(cfg, "broker/log_format", value, why, sizeof why);
        break;
    case S_OPT_LOG_FILE:
        rc = sld_config_set(cfg, "broker/log_file", value, why, sizeof why);
        break;
    case S_OPT_NEW_KEY:
        if (*action != SLD_RUN) {
            snprintf(why, sizeof why, "--new-key excludes --check and --print-config");
            rc = SL_EINVAL;
            break;
        }
        rc = sld_config_set(cfg, "security/encrypt_at_rest", value, why, sizeof why);
        *action = SLD_NEW_KEY;
        break;
    case S_OPT_SET: {
        const char *eq = strchr(value, '=');
        char key[64];
        size_t len = eq ? (size_t) (eq - value) : 0;
        if (!eq || len == 0 || len >= sizeof key) {
            snprintf(why, sizeof why, "\"%s\" is not KEY=VALUE", value);
            rc = SL_EINVAL;
            break;
        }
        memcpy(key, value, len);
        key[len] = 0;
        rc = sld_config_set(cfg, key, eq + 1, why, sizeof why);
        break;
    }
    case S_OPT_CHECK:
    case S_OPT_PRINT: {
        sld_action_t want = opt->id == S_OPT_CHECK ? SLD_CHECK : SLD_PRINT_CONFIG;
        if (*action != SLD_RUN && *action != want) {
            snprintf(why, sizeof why, "--check, --print-config and --new-key "
                     "exclude each other");
            rc = SL_EINVAL;
            break;
        }
        *action = want;
        break;
    }
    case S_OPT_CONFIG:
    case S_OPT_HELP:
    case S_OPT_VERSION:
        break;                          /* handled in the first pass */
    }
    if (rc) {
        slc_errf(err, errlen, "%s: %s", opt->name, why);
        goto fail;
    }
    return 0;
fail:
    return rc;
}

int sld_config_args(sld_config_t *cfg, int argc, char **argv,
                    sld_action_t *action, FILE *out, char *err, size_t errlen)
{
    int rc = 0;
    sld_config_t tmp;
    sld_action_t act = SLD_RUN;
    const s_option_t *opt = NULL;
    const char *value = NULL, *config = NULL;
    bool help = false, version = false;
    char why[S_ERRBUF] = "";
    sld_config_defaults(&tmp);

    /* First pass: syntax, --help/--version, and where the file is. */
    for (int i = 1; i < argc; i++) {
        rc = s_next_option(argc, argv, &i, &opt, &value, err, errlen);
        if (rc)
            goto fail;
        if (opt->id == S_OPT_HELP)
            help = true;
        else if (opt->id == S_OPT_VERSION)
            version = true;
        else if (opt->id == S_OPT_CONFIG) {
            if (config) {
                slc_errf(err, errlen, "--config given twice (%s, %s)",
                      config, value);
                rc = SL_EINVAL;
                goto fail;
            }
            config = value;
        }
    }
    if (help || version) {
        rc = help ? s_usage(out, err, errlen) : s_version(out, err, errlen);
        if (rc)
            goto fail;
        *cfg = tmp;
        *action = help ? SLD_HELP : SLD_VERSION;
        return 0;
    }
    if (config) {
        rc = s_load(&tmp, config, err, errlen);
        if (rc)
            goto fail;
    }
    /* Second pass: every other flag in order, over the file. */
    for (int i = 1; i < argc; i++) {
        rc = s_next_option(argc, argv, &i, &opt, &value, err, errlen);
        if (rc)
            goto fail;
        rc = s_apply_option(&tmp, opt, value, &act, err, errlen);
        if (rc)
            goto fail;
    }
    rc = s_check(&tmp, why, sizeof why);
    if (rc) {
        if (config)
            slc_errf(err, errlen, "%s with flags: %s", config, why);
        else
            slc_errf(err, errlen, "%s", why);
        goto fail;
    }
    *cfg = tmp;
    *action = act;
    return 0;
fail:
    return rc;
}
