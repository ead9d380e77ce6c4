/*  test_cli - the `sluice` command's shared helpers (cli_common.c): where
 *  the keys and the endpoint come from (flags, environment, --home, the
 *  ./var/sluice default, a plain-text broker's endpoint file), connection
 *  options typed before the command, times for --since, and the JSON field
 *  reader `audit` uses, and the offline fixture runner of `routes test`
 *  (its file format and exit codes). No broker: only what
 *  cli_parse settles before connecting. Changes the process's working
 *  directory and environment, so it runs alone in its own process.  */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"

static char s_root[64];         /* the temporary tree of this run */

static void s_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void s_path(char *buf, size_t len, const char *rel)
{
    snprintf(buf, len, "%s/%s", s_root, rel);
}

static void s_mkdir(const char *rel)
{
    char p[256];
    s_path(p, sizeof p, rel);
    assert_int_equal(mkdir(p, 0700), 0);
}

static void s_put(const char *rel, const char *text)
{
    char p[256];
    s_path(p, sizeof p, rel);
    s_file(p, text);
}

/* A tree: home/ (a keyed broker's data dir), plain/ (a plain-text one's),
 * nokey/ (server.pub, no admin.cert), empty/ (a working directory with
 * nothing) and here/ (a working directory with var/sluice in it). */
static int s_setup(void **state)
{
    (void) state;
    snprintf(s_root, sizeof s_root, "/tmp/test_cli.XXXXXX");
    if (!mkdtemp(s_root))
        return -1;
    s_mkdir("home");
    s_put("home/server.pub", "x\n");
    s_put("home/admin.cert", "x\n");
    s_put("home/endpoint", "tcp://127.0.0.1:7777\n");
    s_mkdir("plain");
    s_put("plain/endpoint", "tcp://127.0.0.1:8888\nplaintext\n");
    s_mkdir("nokey");
    s_put("nokey/server.pub", "x\n");
    s_mkdir("empty");
    s_mkdir("here");
    s_mkdir("here/var");
    s_mkdir("here/var/sluice");
    s_put("here/var/sluice/server.pub", "x\n");
    s_put("here/var/sluice/admin.cert", "x\n");
    s_put("here/var/sluice/endpoint", "tcp://127.0.0.1:9999\n");
    return 0;
}

static int s_teardown(void **state)
{
    (void) state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_root);
    return system(cmd) == 0 ? 0 : -1;
}

/* A clean environment in working directory REL. */
static void s_env(const char *rel)
{
    char p[256];
    unsetenv("SLUICE_BROKER");
    unsetenv("SLUICE_CERT");
    unsetenv("SLUICE_SERVER_KEY");
    unsetenv("SLUICE_HOME");
    s_path(p, sizeof p, rel);
    assert_int_equal(chdir(p), 0);
}

/* cli_parse of "cmd ARGS..." (NULL-terminated); the exit code it gives,
 * CLI_EXIT_OK when it says run. */
static int s_parse(cli_ctx_t *ctx, ...)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    char *argv[16] = { (char *) "cmd" };
    int argc = 1, rc = CLI_EXIT_OK;
    va_list ap;
    va_start(ap, ctx);
    for (const char *a; (a = va_arg(ap, const char *)); )
        argv[argc++] = (char *) a;
    va_end(ap);
    cli_ctx_init(ctx, "cmd", "usage\n");
    if (cli_parse(ctx, argc, argv, options, NULL, NULL, 0, 0, &rc))
        return CLI_EXIT_OK;
    assert_int_not_equal(rc, CLI_EXIT_OK);
    return rc;
}

static void s_expect(const cli_ctx_t *ctx, const char *cert,
                     const char *server_key, const char *broker)
{
    if (!cert)
        assert_null(ctx->cert);
    else
        assert_string_equal(ctx->cert, cert);
    if (!server_key)
        assert_null(ctx->server_key);
    else
        assert_string_equal(ctx->server_key, server_key);
    assert_string_equal(ctx->broker, broker);
}

static void test_no_keys(void **state)
{
    (void) state;
    cli_ctx_t ctx;
    s_env("empty");
    assert_int_equal(s_parse(&ctx, NULL), CLI_EXIT_OK);
    s_expect(&ctx, NULL, NULL, SL_DEFAULT_ENDPOINT);
    assert_false(ctx.home_auto);
    setenv("SLUICE_BROKER", "tcp://10.0.0.1:1", 1);
    assert_int_equal(s_parse(&ctx, NULL), CLI_EXIT_OK);
    s_expect(&ctx, NULL, NULL, "tcp://10.0.0.1:1");
    assert_int_equal(s_parse(&ctx, "--broker", "tcp://10.0.0.2:2", NULL),
                     CLI_EXIT_OK);
    s_expect(&ctx, NULL, NULL, "tcp://10.0.0.2:2");
}

static void test_home(void **state)
{
    (void) state;
    cli_ctx_t ctx;
    char home[200], cert[256], pub[256];
    s_path(home, sizeof home, "home");
    snprintf(cert, sizeof cert, "%s/admin.cert", home);
    snprintf(pub, sizeof pub, "%s/server.pub", home);
    s_env("empty");
    assert_int_equal(s_parse(&ctx, "--home", home, NULL), CLI_EXIT_OK);
    s_expect(&ctx, cert, pub, "tcp://127.0.0.1:7777");
    /* --broker and $SLUICE_BROKER beat the endpoint file. */
    assert_int_equal(s_parse(&ctx, "--home", home, "--broker",
                             "tcp://10.0.0.2:2", NULL), CLI_EXIT_OK);
    s_expect(&ctx, cert, pub, "tcp://10.0.0.2:2");
    setenv("SLUICE_BROKER", "tcp://10.0.0.1:1", 1);
    assert_int_equal(s_parse(&ctx, "--home", home, NULL), CLI_EXIT_OK);
    s_expect(&ctx, cert, pub, "tcp://10.0.0.1:1");
    unsetenv("SLUICE_BROKER");
    /* The same from the environment. */
    setenv("SLUICE_HOME", home, 1);
    assert_int_equal(s_parse(&ctx, NULL), CLI_EXIT_OK);
    s_expect(&ctx, cert, pub, "tcp://127.0.0.1:7777");
    /* A flag beats the home; the home's other half stays. */
    assert_int_equal(s_parse(&ctx, "--cert", "me.cert", NULL), CLI_EXIT_OK);
    s_expect(&ctx, "me.cert", pub, "tcp://127.0.0.1:7777");
}

static void test_precedence(void **state)
{
    (void) state;
    cli_ctx_t ctx;
    char home[200], cert[256], pub[256];
    s_path(home, sizeof home, "home");
    snprintf(cert, sizeof cert, "%s/admin.cert", home);
    snprintf(pub, sizeof pub, "%s/server.pub", home);
    s_env("empty");
    setenv("SLUICE_CERT", "env.cert", 1);
    setenv("SLUICE_SERVER_KEY", "env.pub", 1);
    /* Variables alone. */
    assert_int_equal(s_parse(&ctx, NULL), CLI_EXIT_OK);
    s_expect(&ctx, "env.cert", "env.pub", SL_DEFAULT_ENDPOINT);
    /* --home is a flag: it beats the variables. */
    assert_int_equal(s_parse(&ctx, "--home", home, NULL), CLI_EXIT_OK);
    s_expect(&ctx, cert, pub, "tcp://127.0.0.1:7777");
    /* $SLUICE_HOME is a variable: the specific variables beat it. */
    setenv("SLUICE_HOME", home, 1);
    assert_int_equal(s_parse(&ctx, NULL), CLI_EXIT_OK);
    s_expect(&ctx, "env.cert", "env.pub", "tcp://127.0.0.1:7777");
    /* The specific flags beat everything. */
    assert_int_equal(s_parse(&ctx, "--home", home, "--cert", "f.cert",
                             "--server-key", "f.pub", NULL), CLI_EXIT_OK);
    s_expect(&ctx, "f.cert", "f.pub", "tcp://127.0.0.1:7777");
}

static void test_default_home(void **state)
{
    (void) state;
    cli_ctx_t ctx;
    s_env("here");
    assert_int_equal(s_parse(&ctx, NULL), CLI_EXIT_OK);
    s_expect(&ctx, "./var/sluice/admin.cert", "./var/sluice/server.pub",
             "tcp://127.0.0.1:9999");
    assert_true(ctx.home_auto);
    /* --broker keeps the keys. */
    assert_int_equal(s_parse(&ctx, "--broker", "tcp://10.0.0.2:2", NULL),
                     CLI_EXIT_OK);
    s_expect(&ctx, "./var/sluice/admin.cert", "./var/sluice/server.pub",
             "tcp://10.0.0.2:2");
    /* Any key option or variable turns the default off. */
    setenv("SLUICE_CERT", "env.cert", 1);
    setenv("SLUICE_SERVER_KEY", "env.pub", 1);
    assert_int_equal(s_parse(&ctx, NULL), CLI_EXIT_OK);
    s_expect(&ctx, "env.cert", "env.pub", SL_DEFAULT_ENDPOINT);
    assert_false(ctx.home_auto);
    /* And --insecure-plaintext turns everything off. */
    assert_int_equal(s_parse(&ctx, "--insecure-plaintext", NULL), CLI_EXIT_OK);
    s_expect(&ctx, NULL, NULL, SL_DEFAULT_ENDPOINT);
    assert_int_equal(s_parse(&ctx, "--insecure-plaintext", "--cert", "x", NULL),
                     CLI_EXIT_USAGE);
}

static void test_plaintext_home(void **state)
{
    (void) state;
    cli_ctx_t ctx;
    char plain[256];
    s_path(plain, sizeof plain, "plain");
    s_env("empty");
    /* No server.pub, and the endpoint file says plain text: no keys. */
    assert_int_equal(s_parse(&ctx, "--home", plain, NULL), CLI_EXIT_OK);
    s_expect(&ctx, NULL, NULL, "tcp://127.0.0.1:8888");
}

static void test_bad_keys(void **state)
{
    (void) state;
    cli_ctx_t ctx;
    char path[256];
    s_env("empty");
    s_path(path, sizeof path, "missing");
    assert_int_equal(s_parse(&ctx, "--home", path, NULL), CLI_EXIT_USAGE);
    s_path(path, sizeof path, "nokey");
    assert_int_equal(s_parse(&ctx, "--home", path, NULL), CLI_EXIT_USAGE);
    /* ... unless a certificate comes from elsewhere. */
    assert_int_equal(s_parse(&ctx, "--home", path, "--cert", "me.cert", NULL),
                     CLI_EXIT_OK);
    assert_int_equal(s_parse(&ctx, "--server-key", "k", NULL), CLI_EXIT_USAGE);
    assert_int_equal(s_parse(&ctx, "--cert", "c", NULL), CLI_EXIT_USAGE);
    assert_int_equal(s_parse(&ctx, "--cert", "", "--server-key", "k", NULL),
                     CLI_EXIT_USAGE);
}

static void test_offline(void **state)
{
    (void) state;
    static const struct option options[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    char *argv[] = { (char *) "keygen", (char *) "alice", NULL };
    cli_ctx_t ctx;
    int rc = CLI_EXIT_OK;
    s_env("empty");
    setenv("SLUICE_HOME", "/nonexistent", 1);
    cli_ctx_init(&ctx, "keygen", "usage\n");
    ctx.offline = true;
    assert_true(cli_parse(&ctx, 2, argv, options, NULL, NULL, 1, 1, &rc));
    assert_null(ctx.cert);
    assert_null(ctx.server_key);
}

/* cli_parse_leading of "sluice ARGS..." (NULL-terminated): its exit code;
 * *FIRST and *HELP as it sets them. */
static int s_leading(int *first, bool *help, ...)
{
    char *argv[16] = { (char *) "sluice" };
    int argc = 1;
    va_list ap;
    va_start(ap, help);
    for (const char *a; (a = va_arg(ap, const char *)); )
        argv[argc++] = (char *) a;
    va_end(ap);
    *first = -1;
    return cli_parse_leading(argc, argv, first, help);
}

static void test_leading(void **state)
{
    (void) state;
    int first;
    bool help;
    /* Both forms, abbreviations, and a flag; the scan stops at the
     * command and looks at nothing after it. */
    assert_int_equal(s_leading(&first, &help, "--broker", "tcp://a:1",
                               "--timeout=3", "--insecure-plaintext", "--hom",
                               "D", "pub", "T", "--bogus", NULL), CLI_EXIT_OK);
    assert_int_equal(first, 7);
    assert_false(help);
    assert_int_equal(s_leading(&first, &help, "pub", "--bogus", NULL),
                     CLI_EXIT_OK);
    assert_int_equal(first, 1);
    /* Only options: main says a command must follow. */
    assert_int_equal(s_leading(&first, &help, "--broker", "X", NULL),
                     CLI_EXIT_OK);
    assert_int_equal(first, 3);
    /* --help and -h stop the scan wherever they are. */
    assert_int_equal(s_leading(&first, &help, "--timeout", "3", "--help",
                               "--bogus", NULL), CLI_EXIT_OK);
    assert_true(help);
    assert_int_equal(s_leading(&first, &help, "-h", NULL), CLI_EXIT_OK);
    assert_true(help);
    /* Anything but a connection option before the command is refused:
     * unknown, a command's own, a flag with a value, a missing value, a
     * "--" that would turn the command's options into positionals. */
    static const char *const bad[][3] = {
        { "--bogus", "pub", "T" }, { "--file", "x", "pub" },
        { "-x", "pub", "T" }, { "--insecure-plaintext=1", "pub", "T" },
        { "--broker", NULL, NULL }, { "--", "pub", "T" },
        { "--broker", "X", "--json" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (s_leading(&first, &help, bad[i][0], bad[i][1], bad[i][2], NULL)
            != CLI_EXIT_USAGE)
            fail_msg("'%s' was taken before the command", bad[i][0]);
    /* A value that looks like "--" is a value, not the end of options. */
    assert_int_equal(s_leading(&first, &help, "--home", "--", "stats", NULL),
                     CLI_EXIT_OK);
    assert_int_equal(first, 3);
}

/* A command's own option (--max-age): accepted, it only has to be one. */
static int s_own_option(void *self, cli_ctx_t *ctx, int opt, const char *arg)
{
    (void) self;
    (void) ctx;
    (void) arg;
    return opt == CLI_OPT_OWN ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

/* ARGV with its leading options moved behind the WORDS command words, as
 * main does (caller frees). */
static char **s_hoist(int argc, char **argv, int words)
{
    int first;
    bool help;
    assert_int_equal(cli_parse_leading(argc, argv, &first, &help), CLI_EXIT_OK);
    assert_false(help);
    return cli_leading_argv(argc, argv, first, words);
}

/* V (from s_hoist) parsed as the command does, which permutes V: the exit
 * code of cli_parse, CLI_EXIT_OK when it says run. */
static int s_parse_hoisted(cli_ctx_t *ctx, int argc, char **v, int words,
                           int npos)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "max-age", required_argument, NULL, CLI_OPT_OWN },
        { NULL, 0, NULL, 0 },
    };
    int rc = CLI_EXIT_OK;
    cli_ctx_init(ctx, "cmd", "usage\n");
    ctx->offline = true;
    if (cli_parse(ctx, argc - words, v + words, options, s_own_option, NULL,
                  npos, npos, &rc))
        return CLI_EXIT_OK;
    return rc;
}

static void test_leading_argv(void **state)
{
    (void) state;
    cli_ctx_t ctx;
    char **v;
    s_env("empty");
    /* The options go right after the command words, before the rest, so
     * the command's own positional parsing is untouched. */
    char *a1[] = { "sluice", "--broker", "tcp://a:1", "--timeout=3", "topic",
                   "create", "N", "--max-age", "1d", NULL };
    v = s_hoist(9, a1, 2);
    const char *want1[] = { "sluice", "topic", "create", "--broker",
                            "tcp://a:1", "--timeout=3", "N", "--max-age",
                            "1d" };
    for (int i = 0; i < 9; i++)
        assert_string_equal(v[i], want1[i]);
    assert_null(v[9]);
    assert_int_equal(s_parse_hoisted(&ctx, 9, v, 2, 1), CLI_EXIT_OK);
    assert_string_equal(ctx.broker, "tcp://a:1");
    assert_true(ctx.timeout_given);
    assert_true(ctx.timeout_s == 3.0);
    assert_int_equal(ctx.npos, 1);
    assert_string_equal(ctx.pos[0], "N");
    free(v);
    /* Given before and after the command, the one after wins; different
     * options before and after both apply. */
    char *a2[] = { "sluice", "--broker", "tcp://before:1", "--timeout", "3",
                   "stats", "--broker", "tcp://after:2", NULL };
    v = s_hoist(8, a2, 1);
    assert_int_equal(s_parse_hoisted(&ctx, 8, v, 1, 0), CLI_EXIT_OK);
    assert_string_equal(ctx.broker, "tcp://after:2");
    assert_true(ctx.timeout_s == 3.0);
    free(v);
    char *a3[] = { "sluice", "--timeout", "3", "sub", "T", "--timeout=7", NULL };
    v = s_hoist(6, a3, 1);
    assert_int_equal(s_parse_hoisted(&ctx, 6, v, 1, 1), CLI_EXIT_OK);
    assert_true(ctx.timeout_s == 7.0);
    assert_string_equal(ctx.pos[0], "T");
    free(v);
    /* A bad value before the command is the command's usage error. */
    char *a4[] = { "sluice", "--timeout", "abc", "stats", NULL };
    v = s_hoist(4, a4, 1);
    assert_int_equal(s_parse_hoisted(&ctx, 4, v, 1, 0), CLI_EXIT_USAGE);
    free(v);
    /* Without leading options the vector is ARGV's. */
    char *a5[] = { "sluice", "pub", "T", "--broker", "tcp://x:3", NULL };
    v = s_hoist(5, a5, 1);
    for (int i = 0; i < 6; i++)
        assert_ptr_equal(v[i], a5[i]);
    assert_int_equal(s_parse_hoisted(&ctx, 5, v, 1, 1), CLI_EXIT_OK);
    assert_string_equal(ctx.broker, "tcp://x:3");
    free(v);
}

static void test_times(void **state)
{
    (void) state;
    uint64_t t = 0, now = 1796122463000000ull;
    assert_int_equal(cli_parse_time_us("2024-05-01T12:00:00Z", now, &t), 0);
    assert_int_equal(t, 1714564800ull * 1000000);
    assert_int_equal(cli_parse_time_us("2024-05-01t12:00:00.25z", now, &t), 0);
    assert_int_equal(t, 1714564800ull * 1000000 + 250000);
    assert_int_equal(cli_parse_time_us("2024-05-01T14:00:00+02:00", now, &t), 0);
    assert_int_equal(t, 1714564800ull * 1000000);
    assert_int_equal(cli_parse_time_us("2024-05-01 12:00:00.123456Z", now, &t), 0);
    assert_int_equal(t, 1714564800ull * 1000000 + 123456);
    assert_int_equal(cli_parse_time_us("2024-05-01", now, &t), 0);
    assert_int_equal(t, 1714521600ull * 1000000);
    assert_int_equal(cli_parse_time_us("10m", now, &t), 0);
    assert_int_equal(t, now - 600ull * 1000000);
    assert_int_equal(cli_parse_time_us("2h", now, &t), 0);
    assert_int_equal(t, now - 7200ull * 1000000);
    assert_int_equal(cli_parse_time_us("@123", now, &t), 0);
    assert_int_equal(t, 123);
    assert_int_equal(cli_parse_time_us("100000d", now, &t), 0);
    assert_int_equal(t, 0);                     /* before the epoch: 0 */
    static const char *const bad[] = {
        "", "yesterday", "2024-13-01", "2024-05-01T12:00Z", "2024-05-01T12:00:00",
        "2024-05-01T12:00:00+0200", "2024-05-01T12:00:00Zjunk", "@", "@x", "-5m",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cli_parse_time_us(bad[i], now, &t) == 0)
            fail_msg("'%s' was taken for a time", bad[i]);
    char buf[64];
    cli_format_time(1714564800ull * 1000000 + 123456, buf, sizeof buf);
    assert_string_equal(buf, "2024-05-01T12:00:00.123Z");
}

static int s_field(const char *json, const char *key, char *out, size_t len,
                   bool *is_string)
{
    return cli_json_field(json, strlen(json), key, out, len, is_string);
}

static void test_json_field(void **state)
{
    (void) state;
    const char *rec = "{\"ts\":\"2026-12-01T10:44:16.123456Z\",\"ts_us\":1796121856123456,"
                      " \"identity\" : null, \"action\":\"keys.add\","
                      "\"detail\":{\"a\":[1,\"}\"]},\"target\":\"a\\\"b\\\\c\\u00e9\\n\"}";
    char out[64];
    bool str = false;
    assert_int_equal(s_field(rec, "ts", out, sizeof out, &str), 1);
    assert_true(str);
    assert_string_equal(out, "2026-12-01T10:44:16.123456Z");
    assert_int_equal(s_field(rec, "ts_us", out, sizeof out, &str), 1);
    assert_false(str);
    assert_string_equal(out, "1796121856123456");
    assert_int_equal(s_field(rec, "identity", out, sizeof out, &str), 1);
    assert_false(str);
    assert_string_equal(out, "null");
    assert_int_equal(s_field(rec, "detail", out, sizeof out, &str), 1);
    assert_string_equal(out, "{\"a\":[1,\"}\"]}");
    /* Found after a nested value; escapes decoded, é as UTF-8. */
    assert_int_equal(s_field(rec, "target", out, sizeof out, NULL), 1);
    assert_string_equal(out, "a\"b\\c\xc3\xa9\n");
    assert_int_equal(s_field(rec, "result", out, sizeof out, NULL), 0);
    /* Truncated to the buffer, still terminated. */
    assert_int_equal(s_field(rec, "ts", out, 5, NULL), 1);
    assert_string_equal(out, "2026");
    assert_int_equal(s_field("{}", "a", out, sizeof out, NULL), 0);
    static const char *const bad[] = {
        "", "[1]", "not json", "{\"a\":", "{\"a\" 1}", "{\"a\":\"x}", "{\"b\":1,}",
        "{\"b\":\"\\u12g4\",\"a\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (s_field(bad[i], "a", out, sizeof out, NULL) != -1)
            fail_msg("'%s' was taken for JSON", bad[i]);
}

/* `sluice routes test ARGS...` (NULL-terminated) with its stdout into
 * OUT (OUTLEN bytes); the exit code. */
static int s_routes_test(char *out, size_t outlen, ...)
{
    char *argv[16] = { (char *) "test" }, path[256];
    int argc = 1;
    va_list ap;
    va_start(ap, outlen);
    for (const char *a; (a = va_arg(ap, const char *)); )
        argv[argc++] = (char *) a;
    va_end(ap);
    s_path(path, sizeof path, "routes/stdout");
    fflush(stdout);
    int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, 1), 1);
    close(fd);
    int rc = cli_routes_test(argc, argv);
    fflush(stdout);
    assert_int_equal(dup2(saved, 1), 1);
    close(saved);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
    printf("routes test -> %d\n%s", rc, out);
    return rc;
}

static void test_routes_fixtures(void **state)
{
    (void) state;
    char out[8192];
    s_env("empty");
    s_mkdir("routes");
    s_put("routes/t.yaml", "routes:\n"
          "  - name: keep\n"
          "    match: {topic: \"a.b\"}\n"
          "    to: c.d\n");
    s_put("routes/ok.test.yaml", "routes: t.yaml\n"
          "cases:\n"
          "  - name: copied\n"
          "    topic: a.b\n"
          "    input: {x: 1}\n"
          "    output: {c.d: {x: 1}}\n"
          "  - name: elsewhere\n"
          "    topic: a.z\n"
          "    input: {x: 1}\n"
          "    unrouted: true\n");
    s_put("routes/bad.test.yaml", "routes: t.yaml\n"
          "cases:\n"
          "  - name: typo\n"
          "    topic: a.b\n"
          "    input: {x: 1}\n"
          "    ouput: {c.d: {x: 1}}\n"
          "  - name: expects nothing\n"
          "    topic: a.b\n"
          "    input: {x: 1}\n"
          "  - name: two payloads\n"
          "    topic: a.b\n"
          "    input: {x: 1}\n"
          "    payload: raw\n"
          "    dropped: false\n"
          "  - name: wrong value\n"
          "    topic: a.b\n"
          "    input: {x: 1}\n"
          "    output: {c.d: {x: 2}}\n"
          "  - name: wrong topic\n"
          "    topic: a.b\n"
          "    input: {x: 1}\n"
          "    output: {e.f: {x: 1}}\n"
          "    nothing_on: c.d\n");
    /* A chain t0 -> t1 -> ... -> t10: the ninth hop is refused. */
    char chain[4096] = "routes:\n", c[200];
    for (int i = 0; i < 10; i++) {
        snprintf(c, sizeof c, "  - name: hop%d\n    match: {topic: t%d}\n    to: t%d\n",
                 i, i, i + 1);
        strcat(chain, c);
    }
    s_put("routes/chain.yaml", chain);
    s_put("routes/chain.test.yaml", "routes: chain.yaml\n"
          "cases:\n"
          "  - name: eight hops and no more\n"
          "    topic: t0\n"
          "    input: {n: 1}\n"
          "    output: {t1: {n: 1}, t8: {n: 1}}\n"
          "    nothing_on: [t9, t10]\n"
          "    dead_letter: \"route hop8: routing chain longer than 8 hops\"\n");
    s_put("routes/nokey.test.yaml", "routes: t.yaml\ncase: []\n");
    s_put("routes/notable.test.yaml", "cases: []\n");

    /* Usage: 64, as every command. */
    assert_int_equal(s_routes_test(out, sizeof out, NULL), CLI_EXIT_USAGE);
    assert_int_equal(s_routes_test(out, sizeof out, "a", "b", NULL), CLI_EXIT_USAGE);
    assert_int_equal(s_routes_test(out, sizeof out, "--bogus", "x", NULL), CLI_EXIT_USAGE);
    /* Nothing could be tested: 2. */
    assert_int_equal(s_routes_test(out, sizeof out, "../routes/none.yaml", NULL),
                     CLI_EXIT_NOTRUN);
    assert_int_equal(s_routes_test(out, sizeof out, "../routes/nokey.test.yaml", NULL),
                     CLI_EXIT_NOTRUN);
    assert_int_equal(s_routes_test(out, sizeof out, "../routes/notable.test.yaml", NULL),
                     CLI_EXIT_NOTRUN);
    assert_int_equal(s_routes_test(out, sizeof out, "../routes/ok.test.yaml", "--routes",
                                   "../routes/missing.yaml", NULL), CLI_EXIT_NOTRUN);
    /* The table is found beside the fixture, not in the working directory. */
    assert_int_equal(s_routes_test(out, sizeof out, "../routes/ok.test.yaml", NULL),
                     CLI_EXIT_OK);
    assert_non_null(strstr(out, "PASS copied"));
    assert_non_null(strstr(out, "2 passed, 0 failed"));
    assert_int_equal(s_routes_test(out, sizeof out, "../routes/chain.test.yaml", NULL),
                     CLI_EXIT_OK);
    assert_non_null(strstr(out, "1 passed, 0 failed"));
    /* Every wrong case fails with a reason; the right one passes. */
    assert_int_equal(s_routes_test(out, sizeof out, "../routes/bad.test.yaml", NULL),
                     CLI_EXIT_FAILED);
    assert_non_null(strstr(out, "FAIL typo\n      unknown key 'ouput'"));
    assert_non_null(strstr(out, "FAIL expects nothing\n      the case expects nothing"));
    assert_non_null(strstr(out, "FAIL two payloads\n      the case needs one of input"));
    assert_non_null(strstr(out, "FAIL wrong value\n      c.d/x: expected 2, got 1"));
    assert_non_null(strstr(out, "e.f: expected a message, got none"));
    assert_non_null(strstr(out, "c.d: expected nothing, got 1 message"));
    assert_non_null(strstr(out, "0 passed, 5 failed"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_keys),
        cmocka_unit_test(test_home),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_default_home),
        cmocka_unit_test(test_plaintext_home),
        cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_offline),
        cmocka_unit_test(test_leading),
        cmocka_unit_test(test_leading_argv),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_json_field),
        cmocka_unit_test(test_routes_fixtures),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
