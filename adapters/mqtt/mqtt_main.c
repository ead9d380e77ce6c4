/*  sluice-mqtt - the MQTT bridge's program: the command line (`bridge`
 *  with flags for one bridge or --config for several; `topic` to show the
 *  topic translation), starting one thread per bridge, and what the
 *  operator watches: a stats line per bridge on stderr and --status-file,
 *  a JSON file rewritten every second (connection state and counters).
 *  SIGTERM / SIGINT stop every bridge after what sluice confirmed is acked
 *  to MQTT. Main thread only; the bridges run on their own threads.  */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "http_common.h"
#include "mqtt_bridge.h"
#include "mqtt_config.h"
#include "mqtt_topic.h"

#define S_PROG "sluice-mqtt bridge"
#define S_DEFAULT_STATE_DIR "./var/sluice-mqtt"

static const char s_usage[] =
    "Usage: sluice-mqtt bridge [OPTIONS]        bridge MQTT and sluice\n"
    "       sluice-mqtt topic [--prefix P] MQTT_TOPIC...    show the sluice names\n"
    "       sluice-mqtt topic --reverse [--strip N] [--prefix P] SLUICE_TOPIC...\n"
    "\n"
    "Bridges topic filters of an MQTT broker (MQTT 5, persistent session) into\n"
    "sluice topics, and durable sluice subscriptions back to MQTT. An MQTT\n"
    "message is acked to its broker only after sluice stored it durably.\n"
    "docs/adapters.md, \"sluice-mqtt\", has the guarantees and the topic rule.\n"
    "\n"
    "Several bridges:\n"
    "  --config FILE           YAML: bridges: [ {name, host, port, in, out, ...} ]\n"
    "One bridge from flags:\n"
    "  --name NAME             the bridge's name (default mqtt)\n"
    "  --mqtt HOST[:PORT]      the MQTT broker (default 127.0.0.1:1883)\n"
    "  --client-id ID          stable MQTT client id (default sluice-NAME)\n"
    "  --username USER         MQTT user name\n"
    "  --password-file FILE    its password (first line)\n"
    "  --keepalive SECONDS     MQTT keepalive (default 60)\n"
    "  --in FILTER             MQTT filter to bridge into sluice (repeatable)\n"
    "  --in-qos 0|1|2          QoS of the --in subscriptions (default 1)\n"
    "  --prefix WORDS          sluice topic prefix of --in (default mqtt)\n"
    "  --out PATTERN           sluice pattern to publish to MQTT (repeatable)\n"
    "  --subscription NAME     durable subscription of --out (default mqtt-NAME;\n"
    "                          NAME-2, NAME-3... for further --out)\n"
    "  --out-qos 0|1|2         QoS of the MQTT publishes (default 1)\n"
    "  --out-strip N           leading sluice words dropped (default 0)\n"
    "  --out-prefix TOPIC      MQTT topic prefix of --out (default none)\n"
    "  --out-retain            publish with the retain flag\n"
    "  --out-window N          most messages awaiting the MQTT ack (default 100)\n"
    "  --out-ack-wait MS       the subscription's ack wait: redelivery after a\n"
    "                          bridge crash (default the broker's, 30 s)\n"
    "  --producer-id-file F    default STATE_DIR/NAME.producer\n"
    "Both:\n"
    "  --state-dir DIR         producer id files (default " S_DEFAULT_STATE_DIR ")\n"
    "  --status-file FILE      JSON state and counters, rewritten every second\n"
    "  --stats-interval SEC    a stats line per bridge on stderr (default 10;\n"
    "                          0 = none)\n"
    "  --check                 check the configuration, print it, exit\n"
    HTTP_CLIENT_USAGE;

enum {
    O_CONFIG = HTTP_OPT_OWN, O_NAME, O_MQTT, O_CLIENT_ID, O_USERNAME, O_PASSWORD_FILE,
    O_KEEPALIVE, O_IN, O_IN_QOS, O_PREFIX, O_OUT, O_SUBSCRIPTION, O_OUT_QOS,
    O_OUT_STRIP, O_OUT_PREFIX, O_OUT_RETAIN, O_OUT_WINDOW, O_OUT_ACK_WAIT,
    O_PRODUCER_ID_FILE,
    O_STATE_DIR, O_STATUS_FILE, O_STATS_INTERVAL, O_CHECK,
};

/* The flags of one bridge, before they become a mqtt_bridge_cfg_t. */
typedef struct {
    const char *name, *mqtt, *client_id, *username, *password_file, *prefix;
    const char *subscription, *out_prefix, *producer_id_file;
    const char *in[64], *out[64];
    int nin, nout, in_qos, out_qos, keepalive, out_window;
    long out_ack_wait;
    unsigned out_strip;
    bool out_retain, any;
} s_flags_t;

static int s_number(const char *opt, const char *text, long lo, long hi, long *out)
{
    uint64_t v;

    if (http_parse_u64(text, &v) < 0 || (long) v < lo || v > (uint64_t) hi)
        return http_usage_error(S_PROG, "%s wants a number from %ld to %ld, not '%s'",
                                opt, lo, hi, text);
    *out = (long) v;
    return 0;
}

/* One bridge from the flags into CFG. 0 or an exit code. */
static int s_flags_bridge(const s_flags_t *f, const char *state_dir, mqtt_config_t *cfg)
{
    mqtt_bridge_cfg_t *b = mqtt_config_add(cfg, f->name);
    char buf[4096], host[1024];
    const char *colon;

    if (!b)
        return http_usage_error(S_PROG, "out of memory");
    if (f->mqtt) {
        colon = strrchr(f->mqtt, ':');
        snprintf(host, sizeof host, "%.*s", colon ? (int) (colon - f->mqtt)
                                                  : (int) strlen(f->mqtt), f->mqtt);
        if (colon) {
            long port;

            if (s_number("--mqtt's port", colon + 1, 1, 65535, &port) != 0)
                return HTTP_EXIT_USAGE;
            b->port = (int) port;
        }
        if (mqtt_config_set(&b->host, host) < 0)
            return http_usage_error(S_PROG, "out of memory");
    }
    if (f->client_id && mqtt_config_set(&b->client_id, f->client_id) < 0)
        return http_usage_error(S_PROG, "out of memory");
    snprintf(buf, sizeof buf, "%s/%s.producer", state_dir, f->name);
    if (mqtt_config_set(&b->producer_id_file,
                        f->producer_id_file ? f->producer_id_file : buf) < 0
        || mqtt_config_set(&b->username, f->username) < 0
        || mqtt_config_set(&b->password_file, f->password_file) < 0)
        return http_usage_error(S_PROG, "out of memory");
    if (f->keepalive)
        b->keepalive = f->keepalive;
    if (f->out_window)
        b->out_window = f->out_window;
    for (int i = 0; i < f->nin; i++)
        if (mqtt_config_add_in(b, f->in[i], f->in_qos, f->prefix) < 0)
            return http_usage_error(S_PROG, "out of memory");
    for (int i = 0; i < f->nout; i++) {
        if (f->subscription && i == 0)
            snprintf(buf, sizeof buf, "%s", f->subscription);
        else if (f->subscription)
            snprintf(buf, sizeof buf, "%s-%d", f->subscription, i + 1);
        else
            snprintf(buf, sizeof buf, i ? "mqtt-%s-%d" : "mqtt-%s", f->name, i + 1);
        if (mqtt_config_add_out(b, f->out[i], buf, f->out_qos, f->out_strip,
                                f->out_prefix, f->out_retain,
                                (unsigned) f->out_ack_wait) < 0)
            return http_usage_error(S_PROG, "out of memory");
    }
    return 0;
}

/* --------------------------------------------------------- status file */

static cJSON *s_bridge_json(mqtt_bridge_t *b)
{
    const mqtt_bridge_cfg_t *c = mqtt_bridge_cfg(b);
    cJSON *o = cJSON_CreateObject();
    mqtt_stats_t st;

    mqtt_bridge_stats(b, &st);
    const struct { const char *k; uint64_t v; } nums[] = {
        { "connects", st.connects }, { "disconnects", st.disconnects },
        { "in_received", st.in_received }, { "in_stored", st.in_stored },
        { "in_duplicates", st.in_duplicates }, { "in_rejected", st.in_rejected },
        { "in_untranslatable", st.in_untranslatable }, { "in_pending", st.in_pending },
        { "out_published", st.out_published }, { "out_acked", st.out_acked },
        { "out_failed", st.out_failed }, { "out_pending", st.out_pending },
    };
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "state", mqtt_state_name(st.state));
    cJSON_AddBoolToObject(o, "sluice_connected", st.sluice_connected);
    cJSON_AddStringToObject(o, "mqtt", c->host);
    cJSON_AddNumberToObject(o, "port", c->port);
    cJSON_AddStringToObject(o, "client_id", c->client_id);
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++)
        cJSON_AddNumberToObject(o, nums[i].k, (double) nums[i].v);
    cJSON_AddStringToObject(o, "last_error", st.last_error);
    return o;
}

/* Write the status of every bridge to PATH atomically (tmp + rename).
 * Returns 0, or the errno of the failure (the caller logs a change). */
static int s_status_write(const char *path, mqtt_bridge_t **bridges, size_t n)
{
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "bridges");
    char tmp[4200], *text;
    int rc = ENOMEM;
    FILE *f;

    cJSON_AddNumberToObject(root, "time", (double) time(NULL));
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, s_bridge_json(bridges[i]));
    text = cJSON_Print(root);
    cJSON_Delete(root);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = text ? fopen(tmp, "w") : NULL;
    if (f) {
        bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;

        rc = fclose(f) == 0 && ok && rename(tmp, path) == 0 ? 0 : errno;
    } else if (text) {
        rc = errno;
    }
    free(text);
    return rc;
}

static void s_stats_line(mqtt_bridge_t *b)
{
    mqtt_stats_t st;

    mqtt_bridge_stats(b, &st);
    http_log(HTTP_LOG_INFO, "stats", "bridge=%s state=%s sluice=%s in_received=%llu "
             "in_stored=%llu in_duplicates=%llu in_rejected=%llu in_pending=%u "
             "out_published=%llu out_acked=%llu out_failed=%llu out_pending=%u "
             "connects=%llu disconnects=%llu", mqtt_bridge_cfg(b)->name,
             mqtt_state_name(st.state), st.sluice_connected ? "up" : "down",
             (unsigned long long) st.in_received, (unsigned long long) st.in_stored,
             (unsigned long long) st.in_duplicates, (unsigned long long) st.in_rejected,
             st.in_pending, (unsigned long long) st.out_published,
             (unsigned long long) st.out_acked, (unsigned long long) st.out_failed,
             st.out_pending, (unsigned long long) st.connects,
             (unsigned long long) st.disconnects);
}

/* ---------------------------------------------------------------- run */

static void s_print(const mqtt_config_t *cfg)
{
    char s[MQTT_SLUICE_TOPIC_MAX + 1];

    for (size_t i = 0; i < cfg->n; i++) {
        const mqtt_bridge_cfg_t *b = &cfg->bridges[i];

        printf("bridge %s: mqtt %s:%d client_id %s producer_id_file %s\n", b->name,
               b->host, b->port, b->client_id, b->producer_id_file);
        for (size_t j = 0; j < b->nin; j++) {
            mqtt_filter_to_sluice(b->in[j].prefix, b->in[j].filter, s, sizeof s, NULL, 0);
            printf("  in  %s (qos %d) -> %s\n", b->in[j].filter, b->in[j].qos, s);
        }
        for (size_t j = 0; j < b->nout; j++)
            printf("  out %s (subscription %s) -> qos %d, strip %u, prefix '%s'%s\n",
                   b->out[j].pattern, b->out[j].subscription, b->out[j].qos,
                   b->out[j].strip, b->out[j].prefix, b->out[j].retain ? ", retain" : "");
    }
}

static int s_run(const mqtt_config_t *cfg, const sl_options_t *opts,
                 const char *status_file, long stats_interval)
{
    mqtt_bridge_t **bridges = calloc(cfg->n, sizeof *bridges);
    char err[1024];
    int rc = HTTP_EXIT_OK;
    uint64_t next_stats, next_status = 0;
    int status_rc = 0;

    if (!bridges)
        return HTTP_EXIT_FAILED;
    for (size_t i = 0; i < cfg->n && rc == HTTP_EXIT_OK; i++)
        if (mqtt_bridge_new(&cfg->bridges[i], opts, &bridges[i], err, sizeof err) < 0
            || mqtt_bridge_start(bridges[i], err, sizeof err) < 0) {
            fprintf(stderr, "%s: %s\n", S_PROG, err);
            rc = HTTP_EXIT_FAILED;
        }
    next_stats = http_now_ms() + (uint64_t) stats_interval * 1000;
    while (rc == HTTP_EXIT_OK && !http_stopping()) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        uint64_t now = http_now_ms();

        if (status_file && now >= next_status) {
            int src = s_status_write(status_file, bridges, cfg->n);

            if (src != status_rc)       /* log a failure once, and its end */
                http_log(src ? HTTP_LOG_WARN : HTTP_LOG_INFO, "status_file",
                         "path=%s error=%s", status_file, src ? strerror(src) : "none");
            status_rc = src;
            next_status = now + 1000;
        }
        if (stats_interval > 0 && now >= next_stats) {
            for (size_t i = 0; i < cfg->n; i++)
                s_stats_line(bridges[i]);
            next_stats = now + (uint64_t) stats_interval * 1000;
        }
        nanosleep(&ts, NULL);
    }
    for (size_t i = 0; i < cfg->n; i++)
        if (bridges[i])
            mqtt_bridge_stop(bridges[i]);
    for (size_t i = 0; i < cfg->n; i++)
        mqtt_bridge_destroy(&bridges[i]);
    free(bridges);
    return rc;
}

/* mkdir -p PATH (mode 0700 for what it creates). 0 or -1 with errno. */
static int s_mkdirs(const char *path)
{
    char buf[4096];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof buf)
        return errno = EINVAL, -1;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;

            *p = '\0';
            if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (!c)
                return 0;
        }
    }
}

/* `sluice-mqtt topic`: the translation, one line per argument. */
static int s_topic_cmd(int argc, char **argv)
{
    const char *prefix = NULL;
    bool reverse = false;
    long strip = 0;
    int rc = HTTP_EXIT_OK;

    for (int i = 1; i < argc; i++) {
        char out[4096], err[512];

        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(s_usage, stdout);
            return HTTP_EXIT_OK;
        }
        if (strcmp(argv[i], "--reverse") == 0) {
            reverse = true;
            continue;
        }
        if ((strcmp(argv[i], "--prefix") == 0 || strcmp(argv[i], "--strip") == 0)
            && i + 1 < argc) {
            if (argv[i][2] == 'p')
                prefix = argv[++i];
            else if (s_number("--strip", argv[++i], 0, 64, &strip) != 0)
                return HTTP_EXIT_USAGE;
            continue;
        }
        if (reverse ? mqtt_topic_from_sluice(argv[i], (unsigned) strip,
                                             prefix ? prefix : "", out, sizeof out, err,
                                             sizeof err)
                    : mqtt_filter_to_sluice(prefix ? prefix : "mqtt", argv[i], out,
                                            sizeof out, err, sizeof err)) {
            fprintf(stderr, "sluice-mqtt topic: %s\n", err);
            rc = HTTP_EXIT_FAILED;
            continue;
        }
        printf("%s\n", out);
    }
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        HTTP_CLIENT_OPTIONS,
        { "config", required_argument, NULL, O_CONFIG },
        { "name", required_argument, NULL, O_NAME },
        { "mqtt", required_argument, NULL, O_MQTT },
        { "client-id", required_argument, NULL, O_CLIENT_ID },
        { "username", required_argument, NULL, O_USERNAME },
        { "password-file", required_argument, NULL, O_PASSWORD_FILE },
        { "keepalive", required_argument, NULL, O_KEEPALIVE },
        { "in", required_argument, NULL, O_IN },
        { "in-qos", required_argument, NULL, O_IN_QOS },
        { "prefix", required_argument, NULL, O_PREFIX },
        { "out", required_argument, NULL, O_OUT },
        { "subscription", required_argument, NULL, O_SUBSCRIPTION },
        { "out-qos", required_argument, NULL, O_OUT_QOS },
        { "out-strip", required_argument, NULL, O_OUT_STRIP },
        { "out-prefix", required_argument, NULL, O_OUT_PREFIX },
        { "out-retain", no_argument, NULL, O_OUT_RETAIN },
        { "out-window", required_argument, NULL, O_OUT_WINDOW },
        { "out-ack-wait", required_argument, NULL, O_OUT_ACK_WAIT },
        { "producer-id-file", required_argument, NULL, O_PRODUCER_ID_FILE },
        { "state-dir", required_argument, NULL, O_STATE_DIR },
        { "status-file", required_argument, NULL, O_STATUS_FILE },
        { "stats-interval", required_argument, NULL, O_STATS_INTERVAL },
        { "check", no_argument, NULL, O_CHECK },
        { NULL, 0, NULL, 0 },
    };
    http_client_opts_t client = { .prog = S_PROG };
    s_flags_t f = { .name = "mqtt", .prefix = "mqtt", .out_prefix = "", .in_qos = 1,
                    .out_qos = 1 };
    const char *config = NULL, *state_dir = S_DEFAULT_STATE_DIR, *status_file = NULL;
    long stats_interval = 10, n;
    bool check = false;
    mqtt_config_t cfg = { 0 };
    sl_options_t so;
    char err[1024];
    int opt, rc;

    if (argc >= 2 && strcmp(argv[1], "topic") == 0)
        return s_topic_cmd(argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(s_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? HTTP_EXIT_USAGE : HTTP_EXIT_OK;
    }
    if (strcmp(argv[1], "bridge") != 0)
        return http_usage_error("sluice-mqtt", "unknown command '%s' (bridge or topic)",
                                argv[1]);
    argc--;
    argv++;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        bool one = true;        /* a flag of the one flags-bridge */

        if (http_client_option(&client, opt, optarg))
            continue;
        switch (opt) {
        case 'h':
            fputs(s_usage, stdout);
            return HTTP_EXIT_OK;
        case O_CONFIG:          config = optarg; one = false; break;
        case O_STATE_DIR:       state_dir = optarg; one = false; break;
        case O_STATUS_FILE:     status_file = optarg; one = false; break;
        case O_CHECK:           check = true; one = false; break;
        case O_STATS_INTERVAL:
            if (s_number("--stats-interval", optarg, 0, 86400, &stats_interval))
                return HTTP_EXIT_USAGE;
            one = false;
            break;
        case O_NAME:            f.name = optarg; break;
        case O_MQTT:            f.mqtt = optarg; break;
        case O_CLIENT_ID:       f.client_id = optarg; break;
        case O_USERNAME:        f.username = optarg; break;
        case O_PASSWORD_FILE:   f.password_file = optarg; break;
        case O_PREFIX:          f.prefix = optarg; break;
        case O_SUBSCRIPTION:    f.subscription = optarg; break;
        case O_OUT_PREFIX:      f.out_prefix = optarg; break;
        case O_OUT_RETAIN:      f.out_retain = true; break;
        case O_PRODUCER_ID_FILE: f.producer_id_file = optarg; break;
        case O_OUT_ACK_WAIT:
            if (s_number("--out-ack-wait", optarg, 0, 3600000, &f.out_ack_wait))
                return HTTP_EXIT_USAGE;
            break;
        case O_IN:
        case O_OUT:
            if ((opt == O_IN ? f.nin : f.nout) >= 64)
                return http_usage_error(S_PROG, "at most 64 --in and --out each; use "
                                        "--config");
            if (opt == O_IN)
                f.in[f.nin++] = optarg;
            else
                f.out[f.nout++] = optarg;
            break;
        case O_IN_QOS:
        case O_OUT_QOS:
            if (s_number(opt == O_IN_QOS ? "--in-qos" : "--out-qos", optarg, 0, 2, &n))
                return HTTP_EXIT_USAGE;
            *(opt == O_IN_QOS ? &f.in_qos : &f.out_qos) = (int) n;
            break;
        case O_KEEPALIVE:
        case O_OUT_WINDOW:
        case O_OUT_STRIP:
            if (s_number(opt == O_KEEPALIVE ? "--keepalive" : opt == O_OUT_WINDOW
                         ? "--out-window" : "--out-strip", optarg,
                         opt == O_KEEPALIVE ? 5 : opt == O_OUT_STRIP ? 0 : 1,
                         opt == O_OUT_STRIP ? 64 : 65535, &n))
                return HTTP_EXIT_USAGE;
            if (opt == O_KEEPALIVE)
                f.keepalive = (int) n;
            else if (opt == O_OUT_WINDOW)
                f.out_window = (int) n;
            else
                f.out_strip = (unsigned) n;
            break;
        default:                /* '?' and ':' */
            return http_option_error(S_PROG, argv, opt);
        }
        f.any |= one;
    }
    if (optind < argc)
        return http_usage_error(S_PROG, "unexpected argument '%s'", argv[optind]);
    if (config && f.any)
        return http_usage_error(S_PROG, "--config and the flags of one bridge (--in, "
                                "--out, --mqtt...) exclude each other");
    if (config && mqtt_config_load(&cfg, config, state_dir, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", S_PROG, err);
        mqtt_config_clear(&cfg);
        return HTTP_EXIT_USAGE;
    }
    if (!config && (rc = s_flags_bridge(&f, state_dir, &cfg)) != 0) {
        mqtt_config_clear(&cfg);
        return rc;
    }
    if (mqtt_config_check(&cfg, err, sizeof err) < 0) {
        mqtt_config_clear(&cfg);
        return http_usage_error(S_PROG, "%s", err);
    }
    if (check) {
        s_print(&cfg);
        mqtt_config_clear(&cfg);
        return HTTP_EXIT_OK;
    }
    if ((rc = http_client_resolve(&client)) != HTTP_EXIT_OK) {
        mqtt_config_clear(&cfg);
        return rc;
    }
    if (s_mkdirs(state_dir) < 0)
        fprintf(stderr, "%s: cannot create --state-dir %s: %s\n", S_PROG, state_dir,
                strerror(errno));
    http_client_options(&client, NULL, &so);
    so.name = "sluice-mqtt";
    http_signals_catch();
    mosquitto_lib_init();
    rc = s_run(&cfg, &so, status_file, stats_interval);
    mosquitto_lib_cleanup();
    mqtt_config_clear(&cfg);
    return rc;
}
