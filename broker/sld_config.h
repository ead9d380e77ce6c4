/*  sld_config - the broker's settings: defaults, the config file (ZPL, read
 *  with CZMQ's zconfig), and command-line flags, which override the file.
 *  A plain value struct owned by whoever declares it; no heap, no globals.
 *  Broker thread (start-up only). It does not validate cross-module policy
 *  beyond ranges: each module checks what it needs.  */
#ifndef SLD_CONFIG_H
#define SLD_CONFIG_H
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "slc.h"

#define SLD_DEFAULT_DATA_DIR "./var/sluice"
#define SLD_DEFAULT_LISTEN "tcp://127.0.0.1:5555"

typedef struct {
    /* [broker] */
    char data_dir[PATH_MAX];        /* data_dir, --data-dir; default ./var/sluice */
    char listen[256];               /* listen, --listen; default tcp://127.0.0.1:5555 */
    bool sync;                      /* sync, --sync=on|off; fsync every commit; default on */
    uint32_t heartbeat_ms;          /* heartbeat_ms; default 1000 */
    uint32_t session_timeout_ms;    /* session_timeout_ms: silent session is dropped; default 10000 */
    int log_level;                  /* log_level: 0 error, 1 warn, 2 info, 3 debug; default 2 */
    char log_format[8];             /* log_format, --log-format: "text" (default) or "json",
                                       one JSON object per line (sld_server_log) */
    char log_file[PATH_MAX];        /* log_file, --log-file: append the log there instead of
                                       stderr, reopened on SIGUSR1; "" = stderr */
    uint32_t route_prep_threads;    /* route_prep_threads: threads besides the loop that check
                                       and route publishes ahead of the write transaction
                                       (sld_route_prep), at most 16; 0 = all on the loop; default 1 */
    char metrics_listen[256];       /* metrics_listen, --metrics-listen ADDR:PORT: HTTP listener for
                                       /metrics, /healthz, /readyz (sld_metrics_http); "" = off */
    bool metrics_public;            /* metrics_public, --metrics-public: allow metrics_listen on a
                                       non-loopback address; default off */
    bool metrics_per_object;        /* metrics_per_object, --metrics-per-object: per-topic and
                                       per-subscription series on /metrics; default off */
    uint32_t metrics_max_objects;   /* metrics_max_objects: most topics, and most subscriptions,
                                       given series (the first by name); default 500 */
    /* [limits] */
    uint32_t max_message_bytes;     /* max_message_bytes; default 1 MiB */
    uint32_t max_frame_bytes;       /* max_frame_bytes; default 64 MiB */
    uint32_t max_batch;             /* max_batch: messages per PublishBatch; default 10000 */
    uint32_t commit_max_msgs;       /* commit_max_msgs: messages per group commit; default 20000 */
    uint64_t commit_max_bytes;      /* commit_max_bytes: bytes per group commit; default 64 MiB */
    uint32_t max_connections;       /* max_connections; default 1024 */
    uint32_t handshake_timeout_ms;  /* handshake_timeout: a connection that has not finished
                                       its ZMTP/CurveZMQ handshake by then is closed; default 5 s */
    uint32_t max_subscriptions;     /* max_subscriptions; default 10000 */
    uint32_t max_inflight;          /* max_inflight: unacked deliveries per subscription; default 10000 */
    uint64_t max_unacked_bytes;     /* max_unacked_bytes: bytes delivered, not acked, per session; default 64 MiB */
    uint32_t max_queued_frames;     /* max_queued_frames: frames waiting in one connection's send queue; default 100000 */
    /* [storage] */
    uint64_t map_size;              /* map_size; default 64 MiB */
    uint64_t map_size_max;          /* map_size_max: growth ceiling; default 16 GiB */
    uint64_t disk_reserve;          /* disk_reserve: kept on disk for acks and admin; default 32 MiB, 0 = none */
    uint32_t high_watermark;        /* high_watermark: map alarm (publishes refused) above this
                                       percent of map_size_max; default 90 */
    uint32_t low_watermark;         /* low_watermark: the map alarm clears below this percent;
                                       default 80, less than high_watermark */
    uint64_t producer_window;       /* producer_window: sequences remembered per producer; default 1000000 */
    uint64_t dedup_window_ms;       /* dedup_window: msg-id dedup window; default 2 min */
    /* [retention] */
    uint64_t retention_max_age_ms;  /* max_age: default for new topics; 0 = unlimited */
    uint64_t retention_max_bytes;   /* max_bytes: default for new topics; 0 = unlimited */
    uint32_t trim_interval_ms;      /* trim_interval: background trim period; default 1000 */
    uint32_t trim_batch;            /* trim_batch: most records removed per trim pass; default 10000 */
    /* [delivery] */
    uint32_t ack_wait_ms;           /* ack_wait: default 30 s */
    uint32_t max_deliver;           /* max_deliver: default 5 */
    uint32_t deliver_batch;         /* deliver_batch: most messages per Deliver frame; default 1000 */
    /* [security] */
    bool insecure_plaintext;        /* insecure_plaintext, --insecure-plaintext: no CurveZMQ,
                                       every client has every right; loopback/ipc only; default off */
    char encrypt_at_rest[PATH_MAX]; /* encrypt_at_rest, --encrypt-at-rest KEYFILE; "" = off */
    char audit_file[PATH_MAX];      /* audit_file, --audit-file: JSON-lines mirror of _audit; "" = none */
    uint64_t audit_retention_ms;    /* audit_retention: _audit records older than this are
                                       trimmed (by age only); 0 = keep forever; default 90 d */
    uint32_t audit_refusal_interval_ms; /* audit_refusal_interval: repeated refused handshakes
                                       are summed up in one record per this; default 1 min */
    /* [alerts] (sld_alerts: events on `_alerts`) */
    uint64_t alert_lag_max;         /* subscription_lag_max: a subscription with more messages
                                       than this not acked fires; 0 = off (default) */
    uint32_t alert_lag_for_ms;      /* subscription_lag_for: ... for this long; default 1 min */
    uint64_t alert_dlq_growth;      /* dlq_growth_max: this many dead letters or more within
                                       dlq_growth_window fire; 0 = off (default) */
    uint32_t alert_dlq_window_ms;   /* dlq_growth_window: default 5 min, at most 1 h */
    char alert_topic_idle[1024];    /* topic_idle: topic patterns, comma-separated; a matching
                                       topic without a publish for topic_idle_for fires;
                                       "" = off (default) */
    uint32_t alert_topic_idle_for_ms; /* topic_idle_for: default 5 min */
    uint64_t alert_route_errors;    /* route_errors_max: a route whose error counter grows by
                                       this much within route_errors_window fires; 0 = off */
    uint32_t alert_route_window_ms; /* route_errors_window: default 5 min, at most 1 h */
} sld_config_t;

/* True when ENDPOINT is loopback, ipc or inproc: where plain text may be
 * allowed. */
bool sld_config_loopback(const char *endpoint);

/* Fill CFG with the defaults above. */
void sld_config_defaults(sld_config_t *cfg);

/* Set one setting by its file name ("section/key", e.g. "storage/map_size",
 * or a bare key when unambiguous) from text. Sizes take K/M/G suffixes
 * (binary), durations ms/s/m/h (bare numbers are ms), booleans
 * on/off/true/false/yes/no/1/0. 0, or SL_EINVAL with a message in ERR
 * (CFG unchanged). Rules between two settings (map_size_max >= map_size,
 * max_message_bytes <= max_frame_bytes) are checked by sld_config_load and
 * sld_config_args on the finished result, not here. ERR may be NULL. */
int sld_config_set(sld_config_t *cfg, const char *key, const char *value,
                   char *err, size_t errlen);

/* Read the ZPL file PATH into CFG (settings not in the file keep their
 * values). Unknown sections or keys, bad values, a world-writable file and
 * a result that breaks a two-setting rule are SL_EINVAL; a file that cannot
 * be opened or read is SL_ESYS. 0, or the code with a message naming the
 * file and the key in ERR; on error CFG is unchanged. */
int sld_config_load(sld_config_t *cfg, const char *path,
                    char *err, size_t errlen);

/* What main() should do after sld_config_args. */
typedef enum {
    SLD_RUN = 0,                    /* start the broker */
    SLD_HELP,                       /* usage printed: exit 0 */
    SLD_VERSION,                    /* version printed: exit 0 */
    SLD_CHECK,                      /* --check: verify the store and exit */
    SLD_PRINT_CONFIG,               /* --print-config: print effective config, exit 0 */
    SLD_NEW_KEY,                    /* --new-key FILE: write an at-rest key to
                                       cfg->encrypt_at_rest and exit */
} sld_action_t;

/* Parse ARGV: defaults, then --config FILE, then every other flag over it
 * (--data-dir, --listen, --sync=on|off, --set KEY=VALUE, --check,
 * --print-config, --help, --version), in order: flags win over the file
 * wherever --config appears. Prints usage to OUT on --help, the version on
 * --version (both before loading any file). 0 and *action, or SL_EINVAL
 * (SL_ESYS when the file cannot be read) with a message in ERR. */
int sld_config_args(sld_config_t *cfg, int argc, char **argv,
                    sld_action_t *action, FILE *out, char *err, size_t errlen);

/* Split LIST ("a.b, c.>": patterns separated by commas and spaces) into
 * OUT[MAX] (may be NULL: only check); *n the count. 0, or SL_EINVAL with
 * the reason in ERR (a pattern that is not valid, more than MAX). */
#define SLD_CONFIG_PATTERNS_MAX 32
int sld_config_patterns(const char *list, char (*out)[SLC_TOPIC_MAX + 1], size_t max,
                        size_t *n, char *err, size_t errlen);

/* The settings that differ between OLD and NEW, as "section/key" names
 * separated by ", ": those SIGHUP applies into RELOADED, those that wait
 * for a restart into RESTART (each "" when none; cut short with "..." when
 * the buffer is too small). One list of settings: the config table. */
void sld_config_diff(const sld_config_t *old, const sld_config_t *new,
                     char *reloaded, size_t rlen, char *restart, size_t slen);

/* Write CFG as a ZPL file that sld_config_load reads back unchanged.
 * Write errors are left on OUT's error flag: check ferror(OUT). */
void sld_config_print(const sld_config_t *cfg, FILE *out);

#endif
