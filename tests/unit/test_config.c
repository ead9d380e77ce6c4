/*  test_config - sld_config: defaults, the example file, every kind of bad
 *  input, flags over the file, print/load round trip, unit suffixes.
 *  Writes its config files under /tmp and removes them; single thread.
 *  It does not start a broker: what a setting does is other modules' tests.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sld_config.h"
#include "sluice_codes.h"

#ifndef SOURCE_ROOT
#define SOURCE_ROOT "."
#endif
#define EXAMPLE_CFG SOURCE_ROOT "/deploy/sluiced.cfg"

#define MiB (1024ull * 1024)
#define GiB (1024ull * 1024 * 1024)

/* A config file with TEXT and MODE; PATH receives its name. */
static void s_write(char *path, size_t len, const char *text, mode_t mode)
{
    snprintf(path, len, "/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t) n);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
}

static void s_assert_equal(const sld_config_t *a, const sld_config_t *b)
{
    assert_string_equal(a->data_dir, b->data_dir);
    assert_string_equal(a->listen, b->listen);
    assert_int_equal(a->sync, b->sync);
    assert_int_equal(a->heartbeat_ms, b->heartbeat_ms);
    assert_int_equal(a->session_timeout_ms, b->session_timeout_ms);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->max_message_bytes, b->max_message_bytes);
    assert_int_equal(a->max_frame_bytes, b->max_frame_bytes);
    assert_int_equal(a->max_batch, b->max_batch);
    assert_int_equal(a->commit_max_msgs, b->commit_max_msgs);
    assert_int_equal(a->commit_max_bytes, b->commit_max_bytes);
    assert_int_equal(a->max_connections, b->max_connections);
    assert_int_equal(a->max_subscriptions, b->max_subscriptions);
    assert_int_equal(a->max_inflight, b->max_inflight);
    assert_int_equal(a->max_unacked_bytes, b->max_unacked_bytes);
    assert_int_equal(a->map_size, b->map_size);
    assert_int_equal(a->map_size_max, b->map_size_max);
    assert_int_equal(a->producer_window, b->producer_window);
    assert_int_equal(a->dedup_window_ms, b->dedup_window_ms);
    assert_int_equal(a->retention_max_age_ms, b->retention_max_age_ms);
    assert_int_equal(a->retention_max_bytes, b->retention_max_bytes);
    assert_int_equal(a->trim_interval_ms, b->trim_interval_ms);
    assert_int_equal(a->trim_batch, b->trim_batch);
    assert_int_equal(a->ack_wait_ms, b->ack_wait_ms);
    assert_int_equal(a->max_deliver, b->max_deliver);
    assert_int_equal(a->deliver_batch, b->deliver_batch);
    assert_int_equal(a->handshake_timeout_ms, b->handshake_timeout_ms);
    assert_int_equal(a->audit_retention_ms, b->audit_retention_ms);
    assert_int_equal(a->audit_refusal_interval_ms, b->audit_refusal_interval_ms);
}

/* Every field different from its default (and from zero). */
static void s_scramble(sld_config_t *cfg)
{
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "/srv/it's here/data");
    snprintf(cfg->listen, sizeof cfg->listen, "ipc:///run/sluice.sock");
    cfg->sync = false;
    cfg->heartbeat_ms = 1234;
    cfg->session_timeout_ms = 61000;
    cfg->log_level = 3;
    cfg->max_frame_bytes = 3 * 1024;
    cfg->max_message_bytes = 3000;
    cfg->max_batch = 7;
    cfg->commit_max_msgs = 8;
    cfg->commit_max_bytes = 5 * GiB;
    cfg->max_connections = 9;
    cfg->max_subscriptions = 10;
    cfg->max_inflight = 11;
    cfg->max_unacked_bytes = 3 * GiB + 1;
    cfg->map_size = 2 * GiB + 4096;
    cfg->map_size_max = 1024ull * GiB;
    cfg->producer_window = 12;
    cfg->dedup_window_ms = 3 * 3600 * 1000;
    cfg->retention_max_age_ms = 7 * 24 * 3600 * 1000ull;
    cfg->retention_max_bytes = 123456789;
    cfg->trim_interval_ms = 1500;
    cfg->trim_batch = 13;
    cfg->ack_wait_ms = 45 * 60 * 1000;
    cfg->max_deliver = 14;
    cfg->deliver_batch = 15;
    cfg->handshake_timeout_ms = 750;
    cfg->audit_retention_ms = 30 * 24 * 3600 * 1000ull;
    cfg->audit_refusal_interval_ms = 10 * 1000;
}

/* Load TEXT (as a 0600 file) over defaults; ERR gets the message. */
static int s_load_text(const char *text, sld_config_t *cfg, char *err, size_t len)
{
    char path[64];
    s_write(path, sizeof path, text, 0600);
    int rc = sld_config_load(cfg, path, err, len);
    assert_int_equal(unlink(path), 0);
    return rc;
}

static void test_defaults(void **state)
{
    (void) state;
    sld_config_t c;
    memset(&c, 0xA5, sizeof c);
    sld_config_defaults(&c);
    assert_string_equal(c.data_dir, "./var/sluice");
    assert_string_equal(c.listen, "tcp://127.0.0.1:5555");
    assert_true(c.sync);
    assert_int_equal(c.heartbeat_ms, 1000);
    assert_int_equal(c.session_timeout_ms, 10000);
    assert_int_equal(c.log_level, 2);
    assert_int_equal(c.max_message_bytes, 1 * MiB);
    assert_int_equal(c.max_frame_bytes, 64 * MiB);
    assert_int_equal(c.max_batch, 10000);
    assert_int_equal(c.commit_max_msgs, 20000);
    assert_int_equal(c.commit_max_bytes, 64 * MiB);
    assert_int_equal(c.max_connections, 1024);
    assert_int_equal(c.max_subscriptions, 10000);
    assert_int_equal(c.max_inflight, 10000);
    assert_int_equal(c.max_unacked_bytes, 64 * MiB);
    assert_int_equal(c.map_size, 64 * MiB);
    assert_int_equal(c.map_size_max, 16 * GiB);
    assert_int_equal(c.producer_window, 1000000);
    assert_int_equal(c.dedup_window_ms, 120000);
    assert_int_equal(c.retention_max_age_ms, 0);
    assert_int_equal(c.retention_max_bytes, 0);
    assert_int_equal(c.trim_interval_ms, 1000);
    assert_int_equal(c.trim_batch, 10000);
    assert_int_equal(c.ack_wait_ms, 30000);
    assert_int_equal(c.max_deliver, 5);
    assert_int_equal(c.deliver_batch, 1000);
    assert_int_equal(c.handshake_timeout_ms, 5000);
    assert_int_equal(c.audit_retention_ms, 90 * 24 * 3600 * 1000ull);
    assert_int_equal(c.audit_refusal_interval_ms, 60000);
}

/* The example file names every key with its default value: loaded over a
 * config where every field differs, it must give back the defaults. */
static void test_example_file(void **state)
{
    (void) state;
    sld_config_t c, d;
    char err[512] = "";
    sld_config_defaults(&d);
    s_scramble(&c);
    int rc = sld_config_load(&c, EXAMPLE_CFG, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    s_assert_equal(&c, &d);
}

typedef struct {
    const char *text;           /* file content */
    const char *message;        /* expected in the error, after "PATH: " */
} bad_case_t;

static void test_bad_files(void **state)
{
    (void) state;
    static const bad_case_t cases[] = {
        { "limits\n    max_message_bytes = 12X\n",
          "limits/max_message_bytes: \"12X\" is not a size" },
        { "brokers\n    listen = tcp://a:1\n", "brokers: unknown section" },
        { "broker\n    listn = tcp://a:1\n", "broker/listn: unknown key" },
        { "limits\n    data_dir = x\n", "limits/data_dir: unknown key" },
        { "data_dir = x\n", "data_dir: unknown section" },
        { "broker = x\n    sync = on\n", "broker: a section takes no value" },
        { "broker\n    sync = on\n        deeper = 1\n",
          "broker/sync: a key takes no nested items" },
        { "limits\n    max_message_bytes = 0\n",
          "limits/max_message_bytes: must not be 0" },
        { "broker\n    heartbeat_ms = 0\n", "broker/heartbeat_ms: must not be 0" },
        { "delivery\n    ack_wait = 0s\n", "delivery/ack_wait: must not be 0" },
        { "delivery\n    max_deliver = 0\n", "delivery/max_deliver: must not be 0" },
        { "limits\n    max_batch = -1\n", "limits/max_batch: \"-1\" is not a number" },
        { "limits\n    max_batch = 10k\n", "limits/max_batch: \"10k\" is not a number" },
        { "limits\n    max_batch = 4294967296\n",
          "limits/max_batch: \"4294967296\" is too large" },
        { "limits\n    max_frame_bytes = 4G\n",
          "limits/max_frame_bytes: \"4G\" is too large" },
        { "storage\n    map_size = 99999999999999999999\n",
          "storage/map_size: \"99999999999999999999\" is too large" },
        { "storage\n    map_size_max = 17179869184G\n",
          "storage/map_size_max: \"17179869184G\" is too large" },
        { "storage\n    map_size = 1.5G\n",
          "storage/map_size: \"1.5G\" is not a size" },
        { "storage\n    map_size = 1 G\n", "storage/map_size: \"1 G\" is not a size" },
        { "storage\n    dedup_window = 2w\n",
          "storage/dedup_window: \"2w\" is not a duration" },
        { "delivery\n    ack_wait = 5000000h\n",
          "delivery/ack_wait: \"5000000h\" is too large" },
        { "broker\n    sync = maybe\n", "broker/sync: \"maybe\" is not a boolean" },
        { "broker\n    sync\n", "broker/sync: \"\" is not a boolean" },
        { "broker\n    log_level = 4\n", "broker/log_level: \"4\" is not a log level" },
        { "broker\n    data_dir = \"\"\n", "broker/data_dir: must not be empty" },
        { "broker\n    listen = localhost\n",
          "broker/listen: \"localhost\" is not an endpoint" },
        { "storage\n    map_size = 1G\n    map_size_max = 512M\n",
          "storage/map_size_max (536870912 bytes) is smaller than storage/map_size" },
        { "limits\n    max_message_bytes = 2M\n    max_frame_bytes = 1M\n",
          "limits/max_message_bytes (2097152 bytes) is larger than "
          "limits/max_frame_bytes" },
        { "broker\n  sync = on\n", "not valid ZPL" },
        { "broker\n    data_dir = \"unterminated\n", "not valid ZPL" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[64], err[512] = "", want[600];
        sld_config_t c, d;
        sld_config_defaults(&c);
        sld_config_defaults(&d);
        /* A valid setting first: a failed load must leave CFG untouched. */
        char text[512];
        snprintf(text, sizeof text, "delivery\n    max_deliver = 9\n%s",
                 cases[i].text);
        s_write(path, sizeof path, text, 0600);
        int rc = sld_config_load(&c, path, err, sizeof err);
        snprintf(want, sizeof want, "%s: %s", path, cases[i].message);
        assert_int_equal(unlink(path), 0);
        if (rc != SL_EINVAL || strncmp(err, want, strlen(want)) != 0)
            fail_msg("case %zu: rc %d, err \"%s\", wanted \"%s\"",
                     i, rc, err, want);
        s_assert_equal(&c, &d);
    }
}

static void test_file_access(void **state)
{
    (void) state;
    char path[64], err[512] = "";
    sld_config_t c;
    sld_config_defaults(&c);

    assert_int_equal(sld_config_load(&c, "/nonexistent/sluiced.cfg", err,
                                     sizeof err), SL_ESYS);
    assert_string_equal(err, "/nonexistent/sluiced.cfg: No such file or directory");

    s_write(path, sizeof path, "broker\n    sync = off\n", 0666);
    assert_int_equal(sld_config_load(&c, path, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "world-writable"));
    assert_true(c.sync);
    /* Group-writable is the operator's choice; only "anyone" is refused. */
    assert_int_equal(chmod(path, 0664), 0);
    assert_int_equal(sld_config_load(&c, path, err, sizeof err), 0);
    assert_false(c.sync);
    assert_int_equal(unlink(path), 0);

    assert_int_equal(sld_config_load(&c, "/tmp", err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "not a regular file"));

    /* An error with no room for the message is still an error. */
    assert_int_equal(sld_config_load(&c, "/nonexistent", NULL, 0), SL_ESYS);
}

static void test_file_details(void **state)
{
    (void) state;
    sld_config_t c;
    char err[512] = "";
    sld_config_defaults(&c);
    /* Comments, blank lines, quoting, a repeated section, bare keys. */
    int rc = s_load_text(
        "#   comment\n"
        "broker\n"
        "    # indented comment\n"
        "    data_dir = \"/var/lib/sluice # not a comment\"\n"
        "\n"
        "    listen = 'tcp://*:5555'   # a comment\n"
        "    log_level = debug\n"
        "retention\n"
        "    max_age = 7w\n", &c, err, sizeof err);
    assert_int_equal(rc, SL_EINVAL);
    assert_non_null(strstr(err, "retention/max_age: \"7w\" is not a duration"));
    assert_string_equal(c.data_dir, "./var/sluice");

    rc = s_load_text(
        "#   comment\n"
        "broker\n"
        "    # indented comment\n"
        "    data_dir = \"/var/lib/sluice # not a comment\"\n"
        "\n"
        "    listen = 'tcp://*:5555'   # a comment\n"
        "    log_level = debug\n"
        "retention\n"
        "    max_age = 168h\n"
        "broker\n"
        "    sync = no\n", &c, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_string_equal(c.data_dir, "/var/lib/sluice # not a comment");
    assert_string_equal(c.listen, "tcp://*:5555");
    assert_int_equal(c.log_level, 3);
    assert_int_equal(c.retention_max_age_ms, 168ull * 3600 * 1000);
    assert_false(c.sync);

    /* An empty file changes nothing. */
    sld_config_t d = c;
    assert_int_equal(s_load_text("", &c, err, sizeof err), 0);
    s_assert_equal(&c, &d);
}

static void test_suffixes(void **state)
{
    (void) state;
    static const struct {
        const char *key, *value;
        uint64_t want;
    } ok[] = {
        { "storage/map_size", "512", 512 },
        { "storage/map_size", "1K", 1024 },
        { "storage/map_size", "1k", 1024 },
        { "storage/map_size", "1M", 1048576 },
        { "storage/map_size", "3G", 3 * GiB },
        { "storage/map_size", "3g", 3 * GiB },
        { "map_size_max", "1024G", 1024 * GiB },
        { "limits/max_frame_bytes", "4294967295", 4294967295u },
        { "limits/max_frame_bytes", "4194303K", 4194303ull * 1024 },
        { "producer_window", "18446744073709551615", UINT64_MAX },
        { "storage/dedup_window", "250", 250 },
        { "storage/dedup_window", "250ms", 250 },
        { "storage/dedup_window", "2s", 2000 },
        { "storage/dedup_window", "2m", 120000 },
        { "storage/dedup_window", "1h", 3600000 },
        { "broker/heartbeat_ms", "2s", 2000 },
        { "retention/max_age", "0", 0 },
        { "retention/max_bytes", "0", 0 },
        { "retention/max_bytes", "10G", 10 * GiB },
        { "retention/max_age", "2d", 2 * 24 * 3600 * 1000ull },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        sld_config_t c;
        char err[256] = "";
        sld_config_defaults(&c);
        int rc = sld_config_set(&c, ok[i].key, ok[i].value, err, sizeof err);
        if (rc)
            fail_msg("%s = %s: %s", ok[i].key, ok[i].value, err);
        uint64_t got = 0;
        if (strstr(ok[i].key, "map_size_max"))
            got = c.map_size_max;
        else if (strstr(ok[i].key, "map_size"))
            got = c.map_size;
        else if (strstr(ok[i].key, "max_frame_bytes"))
            got = c.max_frame_bytes;
        else if (strstr(ok[i].key, "producer_window"))
            got = c.producer_window;
        else if (strstr(ok[i].key, "dedup_window"))
            got = c.dedup_window_ms;
        else if (strstr(ok[i].key, "heartbeat_ms"))
            got = c.heartbeat_ms;
        else if (strstr(ok[i].key, "max_age"))
            got = c.retention_max_age_ms;
        else
            got = c.retention_max_bytes;
        if (got != ok[i].want)
            fail_msg("%s = %s gave %llu", ok[i].key, ok[i].value,
                     (unsigned long long) got);
    }

    static const char *bools_on[] = { "on", "true", "yes", "1", "ON", "Yes" };
    static const char *bools_off[] = { "off", "false", "no", "0", "OFF" };
    sld_config_t c;
    char err[256] = "";
    sld_config_defaults(&c);
    for (size_t i = 0; i < sizeof bools_off / sizeof bools_off[0]; i++) {
        c.sync = true;
        assert_int_equal(sld_config_set(&c, "sync", bools_off[i], err, sizeof err), 0);
        assert_false(c.sync);
    }
    for (size_t i = 0; i < sizeof bools_on / sizeof bools_on[0]; i++) {
        c.sync = false;
        assert_int_equal(sld_config_set(&c, "broker/sync", bools_on[i], err,
                                        sizeof err), 0);
        assert_true(c.sync);
    }

    static const struct { const char *key, *value, *message; } bad[] = {
        { "storage/map_size", "1T", "storage/map_size: \"1T\" is not a size" },
        { "storage/map_size", "1KB", "\"1KB\" is not a size" },
        { "storage/map_size", "", "\"\" is not a size" },
        { "storage/map_size", " 1", "\" 1\" is not a size" },
        { "storage/map_size", "+1", "\"+1\" is not a size" },
        { "storage/map_size", "0x10", "\"0x10\" is not a size" },
        { "storage/dedup_window", "1S", "\"1S\" is not a duration" },
        { "storage/dedup_window", "1sec", "\"1sec\" is not a duration" },
        { "limits/max_frame_bytes", "4294967296",
          "limits/max_frame_bytes: \"4294967296\" is too large" },
        { "producer_window", "18446744073709551616", "is too large" },
        { "nosuch", "1", "nosuch: unknown setting" },
        { "limits/nosuch", "1", "limits/nosuch: unknown setting" },
        { "nosuch/max_batch", "1", "nosuch/max_batch: unknown setting" },
        { "", "1", "empty setting name" },
        { "broker/listen", "tcp://", "is not an endpoint" },
        { "broker/data_dir", "a\nb", "control characters" },
        { "broker/data_dir", "it's \"x\"", "both kinds of quote" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sld_config_t d;
        sld_config_defaults(&c);
        sld_config_defaults(&d);
        int rc = sld_config_set(&c, bad[i].key, bad[i].value, err, sizeof err);
        if (rc != SL_EINVAL || !strstr(err, bad[i].message))
            fail_msg("%s = \"%s\": rc %d, err \"%s\"", bad[i].key, bad[i].value,
                     rc, err);
        s_assert_equal(&c, &d);
    }

    /* Paths as long as the buffer allows, and one byte more. */
    char *long_path = malloc(PATH_MAX + 1);
    assert_non_null(long_path);
    memset(long_path, 'a', PATH_MAX);
    long_path[PATH_MAX - 1] = 0;
    assert_int_equal(sld_config_set(&c, "data_dir", long_path, err, sizeof err), 0);
    long_path[PATH_MAX - 1] = 'a';
    long_path[PATH_MAX] = 0;
    assert_int_equal(sld_config_set(&c, "data_dir", long_path, err, sizeof err),
                     SL_EINVAL);
    assert_non_null(strstr(err, "too long"));
    free(long_path);
}

/* Run sld_config_args on a NULL-terminated list. */
static int s_args(sld_config_t *cfg, sld_action_t *action, char *out_text,
                  size_t out_len, char *err, size_t err_len, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, err_len);
    argv[argc++] = (char *) "sluiced";
    for (char *a = va_arg(ap, char *); a; a = va_arg(ap, char *)) {
        assert_true(argc < 31);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    err[0] = 0;
    int rc = sld_config_args(cfg, argc, argv, action, out, err, err_len);
    assert_int_equal(fclose(out), 0);
    if (out_text)
        snprintf(out_text, out_len, "%s", buf ? buf : "");
    free(buf);
    return rc;
}

static void test_args_override_file(void **state)
{
    (void) state;
    char path[64], err[512], flag[96];
    sld_config_t c, d;
    sld_action_t action = SLD_HELP;
    s_write(path, sizeof path,
            "broker\n"
            "    listen = tcp://10.0.0.1:1\n"
            "    data_dir = /from/file\n"
            "    sync = on\n"
            "limits\n"
            "    max_batch = 77\n"
            "storage\n"
            "    map_size = 32G\n", 0600);
    /* The file alone is invalid (map_size above the 16G ceiling); a flag
     * placed before --config still fixes it, and flags win over the file
     * whichever side of --config they are on. */
    int rc = s_args(&c, &action, NULL, 0, err, sizeof err,
                    "--listen", "tcp://127.0.0.1:7000",
                    "--set", "storage/map_size_max=64G",
                    "--config", path,
                    "--sync", "off",
                    "--data-dir=/from/flag",
                    "--set=max_deliver=9", NULL);
    if (rc)
        fail_msg("%s", err);
    assert_int_equal(action, SLD_RUN);
    assert_string_equal(c.listen, "tcp://127.0.0.1:7000");
    assert_string_equal(c.data_dir, "/from/flag");
    assert_false(c.sync);
    assert_int_equal(c.max_batch, 77);
    assert_int_equal(c.map_size, 32 * GiB);
    assert_int_equal(c.map_size_max, 64 * GiB);
    assert_int_equal(c.max_deliver, 9);

    /* Same flags, --config last: same result. */
    snprintf(flag, sizeof flag, "--config=%s", path);
    rc = s_args(&d, &action, NULL, 0, err, sizeof err,
                "--listen", "tcp://127.0.0.1:7000",
                "--set", "storage/map_size_max=64G",
                "--sync", "off",
                "--data-dir=/from/flag",
                "--set=max_deliver=9", flag, NULL);
    if (rc)
        fail_msg("%s", err);
    s_assert_equal(&c, &d);

    /* Later flags override earlier ones. */
    rc = s_args(&c, &action, NULL, 0, err, sizeof err,
                "--sync=off", "--set", "broker/sync=on",
                "--listen", "tcp://a:1", "--set", "listen=tcp://b:2", NULL);
    assert_int_equal(rc, 0);
    assert_true(c.sync);
    assert_string_equal(c.listen, "tcp://b:2");

    /* Without the fixing flag the file is refused, and the message says why. */
    rc = s_args(&c, &action, NULL, 0, err, sizeof err, "--config", path, NULL);
    assert_int_equal(rc, SL_EINVAL);
    assert_non_null(strstr(err, "map_size_max"));
    assert_int_equal(unlink(path), 0);

    /* No flags at all: the defaults. */
    memset(&c, 0, sizeof c);
    sld_config_defaults(&d);
    assert_int_equal(s_args(&c, &action, NULL, 0, err, sizeof err, NULL), 0);
    assert_int_equal(action, SLD_RUN);
    s_assert_equal(&c, &d);
}

static void test_args_actions(void **state)
{
    (void) state;
    char out[8192], err[512];
    sld_config_t c;
    sld_action_t action = SLD_RUN;

    assert_int_equal(s_args(&c, &action, out, sizeof out, err, sizeof err,
                            "--check", NULL), 0);
    assert_int_equal(action, SLD_CHECK);
    assert_int_equal(s_args(&c, &action, out, sizeof out, err, sizeof err,
                            "--print-config", NULL), 0);
    assert_int_equal(action, SLD_PRINT_CONFIG);
    assert_int_equal(s_args(&c, &action, out, sizeof out, err, sizeof err,
                            "--version", NULL), 0);
    assert_int_equal(action, SLD_VERSION);
    assert_non_null(strstr(out, "sluiced "));

    static const char *help_words[] = {
        "--config FILE", "--data-dir DIR", "--listen ENDPOINT", "--sync=on|off",
        "--set KEY=VALUE", "--check", "--print-config", "--help", "-h",
        "--version", "./var/sluice", "tcp://127.0.0.1:5555", "UNSAFE",
        "lost on power failure", "limits/max_message_bytes = 1M",
        "storage/map_size_max = 16G", "delivery/ack_wait = 30s",
    };
    for (int pass = 0; pass < 2; pass++) {
        action = SLD_RUN;
        /* --help wins even over a missing config file. */
        int rc = s_args(&c, &action, out, sizeof out, err, sizeof err,
                        pass ? "-h" : "--help", "--config", "/nonexistent", NULL);
        assert_int_equal(rc, 0);
        assert_int_equal(action, SLD_HELP);
        for (size_t i = 0; i < sizeof help_words / sizeof help_words[0]; i++)
            if (!strstr(out, help_words[i]))
                fail_msg("--help lacks \"%s\"", help_words[i]);
    }

    static const struct { const char *a, *b, *message; } bad[] = {
        { "--bogus", NULL, "unknown option --bogus" },
        { "stray", NULL, "unexpected argument \"stray\"" },
        { "--listen", NULL, "--listen needs a value" },
        { "--sync", NULL, "--sync needs a value" },
        { "--sync", "maybe", "--sync: broker/sync: \"maybe\" is not a boolean" },
        { "--sync=", NULL, "is not a boolean" },
        { "--check=yes", NULL, "--check takes no value" },
        { "--set", "max_batch", "--set: \"max_batch\" is not KEY=VALUE" },
        { "--set", "=5", "is not KEY=VALUE" },
        { "--set", "nosuch=5", "nosuch: unknown setting" },
        { "--set", "limits/max_batch=0", "limits/max_batch: must not be 0" },
        { "--set", "limits/max_message_bytes=128M",
          "limits/max_message_bytes (134217728 bytes) is larger" },
        { "--data-dir", "", "broker/data_dir: must not be empty" },
        { "--listen", "nowhere", "is not an endpoint" },
        { "--check", "--print-config", "exclude each other" },
        { "--config", "/nonexistent/x.cfg",
          "/nonexistent/x.cfg: No such file or directory" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = s_args(&c, &action, out, sizeof out, err, sizeof err,
                        bad[i].a, bad[i].b, NULL);
        int want = strstr(bad[i].message, "No such file") ? SL_ESYS : SL_EINVAL;
        if (rc != want || !strstr(err, bad[i].message))
            fail_msg("%s %s: rc %d, err \"%s\"", bad[i].a,
                     bad[i].b ? bad[i].b : "", rc, err);
    }
    assert_int_equal(s_args(&c, &action, out, sizeof out, err, sizeof err,
                            "--config", "a", "--config", "b", NULL), SL_EINVAL);
    assert_non_null(strstr(err, "--config given twice"));
}

static void s_round_trip(const sld_config_t *c)
{
    char path[64], err[512] = "";
    snprintf(path, sizeof path, "/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    sld_config_print(c, f);
    assert_int_equal(fclose(f), 0);

    sld_config_t back;
    sld_config_defaults(&back);
    if (c->sync)
        back.sync = false;              /* prove sync is in the file too */
    int rc = sld_config_load(&back, path, err, sizeof err);
    assert_int_equal(unlink(path), 0);
    if (rc)
        fail_msg("%s", err);
    s_assert_equal(c, &back);
}

static void test_print_round_trip(void **state)
{
    (void) state;
    sld_config_t c;
    char err[256];
    sld_config_defaults(&c);
    s_round_trip(&c);
    s_scramble(&c);
    s_round_trip(&c);
    /* Values with no exact unit, and a quote of the other kind. */
    assert_int_equal(sld_config_set(&c, "data_dir", "/a \"b\" # c", err,
                                    sizeof err), 0);
    c.map_size = 1;
    c.map_size_max = 1025;
    c.ack_wait_ms = 1;
    c.trim_interval_ms = 61001;
    c.dedup_window_ms = UINT64_MAX;
    c.retention_max_bytes = UINT64_MAX;
    c.log_level = 0;
    s_round_trip(&c);
}

/* What SIGHUP logs: changed settings split by the table's reload flag,
 * text compared as text; and the idle-topic patterns checked. */
static void test_diff_and_patterns(void **state)
{
    (void) state;
    sld_config_t a, b;
    char reloaded[256], restart[256], err[256];
    sld_config_defaults(&a);
    sld_config_defaults(&b);
    sld_config_diff(&a, &b, reloaded, sizeof reloaded, restart, sizeof restart);
    assert_string_equal(reloaded, "");
    assert_string_equal(restart, "");
    assert_int_equal(sld_config_set(&b, "broker/log_level", "debug", err, sizeof err), 0);
    assert_int_equal(sld_config_set(&b, "alerts/topic_idle", "a.*, b.>", err, sizeof err), 0);
    assert_int_equal(sld_config_set(&b, "limits/max_batch", "5", err, sizeof err), 0);
    assert_int_equal(sld_config_set(&b, "broker/listen", "tcp://127.0.0.1:1", err,
                                    sizeof err), 0);
    sld_config_diff(&a, &b, reloaded, sizeof reloaded, restart, sizeof restart);
    assert_string_equal(reloaded, "broker/log_level, alerts/topic_idle");
    assert_string_equal(restart, "broker/listen, limits/max_batch");
    sld_config_diff(&a, &b, reloaded, 20, restart, sizeof restart);
    assert_string_equal(reloaded, "broker/log_level...");

    char pats[SLD_CONFIG_PATTERNS_MAX][SLC_TOPIC_MAX + 1];
    size_t n = 0;
    assert_int_equal(sld_config_patterns(" shop.orders, iot.>,,x ", pats,
                                         SLD_CONFIG_PATTERNS_MAX, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(pats[1], "iot.>");
    assert_string_equal(pats[2], "x");
    assert_int_equal(sld_config_patterns("ok, a..b", NULL, SLD_CONFIG_PATTERNS_MAX, &n, err,
                                         sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "\"a..b\" is not a topic pattern"));
    char path[64];
    s_write(path, sizeof path, "alerts\n    topic_idle = \"x.>.y\"\n", 0600);
    sld_config_t c;
    sld_config_defaults(&c);
    assert_int_equal(sld_config_load(&c, path, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "alerts/topic_idle"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_file_access),
        cmocka_unit_test(test_file_details),
        cmocka_unit_test(test_suffixes),
        cmocka_unit_test(test_args_override_file),
        cmocka_unit_test(test_args_actions),
        cmocka_unit_test(test_print_round_trip),
        cmocka_unit_test(test_diff_and_patterns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
