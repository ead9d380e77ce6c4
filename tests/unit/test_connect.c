/*  test_connect - sl_connect_resolve and sl_connect_apply (sl_connect.c):
 *  the one rule every program uses to settle where it connects, from the
 *  flags, the SLUICE_* variables, a home directory (the broker's data
 *  directory) and ./var/sluice. Builds a tree of homes in a temporary
 *  directory; changes the process's working directory and environment, so
 *  it runs alone in its own process. No broker.  */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sluice.h"

static char s_root[64];         /* the temporary tree of this run */

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
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

/* home/ a keyed broker's data directory, plain/ a plain-text one's, nokey/
 * (server.pub, no admin.cert), broken/ (its endpoint is a directory),
 * empty/ a working directory with nothing, here/ one with var/sluice. */
static int s_setup(void **state)
{
    (void) state;
    snprintf(s_root, sizeof s_root, "/tmp/test_connect.XXXXXX");
    if (!mkdtemp(s_root))
        return -1;
    s_mkdir("home");
    s_put("home/server.pub", "x\n");
    s_put("home/admin.cert", "x\n");
    s_put("home/endpoint", "tcp://127.0.0.1:7777 \n");
    s_mkdir("plain");
    s_put("plain/endpoint", "tcp://127.0.0.1:8888\nplaintext\n");
    s_mkdir("nokey");
    s_put("nokey/server.pub", "x\n");
    s_mkdir("broken");
    s_put("broken/server.pub", "x\n");
    s_put("broken/admin.cert", "x\n");
    s_mkdir("broken/endpoint");
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

/* Resolve ARGS; assert it succeeds with CERT, KEY ("" = none) and BROKER. */
static void s_ok(const sl_connect_args_t *args, const char *cert,
                 const char *key, const char *broker, sl_connect_t *out)
{
    char err[512] = "";
    assert_int_equal(sl_connect_resolve(args, out, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(out->cert, cert);
    assert_string_equal(out->server_key, key);
    assert_string_equal(out->endpoint, broker);
}

/* Resolve ARGS; assert it fails with RC and a reason holding WORDS. */
static void s_fails(const sl_connect_args_t *args, int rc, const char *words)
{
    sl_connect_t out;
    char err[512] = "";
    assert_int_equal(sl_connect_resolve(args, &out, err, sizeof err), rc);
    if (!strstr(err, words))
        fail_msg("reason '%s' does not say '%s'", err, words);
}

static void test_nothing(void **state)
{
    (void) state;
    sl_connect_t c;
    s_env("empty");
    s_ok(NULL, "", "", SL_DEFAULT_ENDPOINT, &c);
    assert_false(c.broker_given);
    assert_false(c.home_auto);
    assert_string_equal(c.home, "");
    setenv("SLUICE_BROKER", "tcp://10.0.0.1:1", 1);
    s_ok(NULL, "", "", "tcp://10.0.0.1:1", &c);
    assert_true(c.broker_given);
    /* An empty variable counts as unset. */
    setenv("SLUICE_BROKER", "", 1);
    s_ok(NULL, "", "", SL_DEFAULT_ENDPOINT, &c);
    assert_false(c.broker_given);
}

static void test_flags_beat_variables(void **state)
{
    (void) state;
    sl_connect_t c;
    char home[200], cert[256], pub[256];
    s_path(home, sizeof home, "home");
    snprintf(cert, sizeof cert, "%s/admin.cert", home);
    snprintf(pub, sizeof pub, "%s/server.pub", home);
    s_env("empty");
    setenv("SLUICE_BROKER", "tcp://10.0.0.1:1", 1);
    setenv("SLUICE_CERT", "env.cert", 1);
    setenv("SLUICE_SERVER_KEY", "env.pub", 1);
    s_ok(NULL, "env.cert", "env.pub", "tcp://10.0.0.1:1", &c);
    sl_connect_args_t a = { .broker = "tcp://10.0.0.2:2", .cert = "f.cert",
                            .server_key = "f.pub" };
    s_ok(&a, "f.cert", "f.pub", "tcp://10.0.0.2:2", &c);
    assert_true(c.broker_given);
    /* --home is a flag: it beats the key variables, not $SLUICE_BROKER. */
    sl_connect_args_t h = { .home = home };
    s_ok(&h, cert, pub, "tcp://10.0.0.1:1", &c);
    assert_string_equal(c.home, home);
    /* $SLUICE_HOME is a variable: the specific variables beat it, and it
     * still gives the endpoint when no broker is named. */
    unsetenv("SLUICE_BROKER");
    setenv("SLUICE_HOME", home, 1);
    s_ok(NULL, "env.cert", "env.pub", "tcp://127.0.0.1:7777", &c);
    /* One flag beats its half of the home; the other half stays. */
    unsetenv("SLUICE_CERT");
    unsetenv("SLUICE_SERVER_KEY");
    sl_connect_args_t one = { .cert = "me.cert" };
    s_ok(&one, "me.cert", pub, "tcp://127.0.0.1:7777", &c);
}

static void test_home(void **state)
{
    (void) state;
    sl_connect_t c;
    char home[200], cert[256], pub[256];
    s_path(home, sizeof home, "home");
    snprintf(cert, sizeof cert, "%s/admin.cert", home);
    snprintf(pub, sizeof pub, "%s/server.pub", home);
    s_env("empty");
    sl_connect_args_t h = { .home = home };
    /* The endpoint file's first line, trailing blanks cut. */
    s_ok(&h, cert, pub, "tcp://127.0.0.1:7777", &c);
    assert_false(c.broker_given);
    assert_false(c.home_auto);
    sl_connect_args_t hb = { .home = home, .broker = "tcp://10.0.0.2:2" };
    s_ok(&hb, cert, pub, "tcp://10.0.0.2:2", &c);
    /* ./var/sluice with a server.pub, when nothing names a key. */
    s_env("here");
    s_ok(NULL, "./var/sluice/admin.cert", "./var/sluice/server.pub",
         "tcp://127.0.0.1:9999", &c);
    assert_true(c.home_auto);
    assert_string_equal(c.home, SL_DEFAULT_HOME);
    setenv("SLUICE_CERT", "env.cert", 1);
    setenv("SLUICE_SERVER_KEY", "env.pub", 1);
    s_ok(NULL, "env.cert", "env.pub", SL_DEFAULT_ENDPOINT, &c);
    assert_false(c.home_auto);
    sl_connect_args_t p = { .plaintext = true };
    s_ok(&p, "", "", SL_DEFAULT_ENDPOINT, &c);
}

static void test_plaintext_home(void **state)
{
    (void) state;
    sl_connect_t c;
    char plain[200];
    s_path(plain, sizeof plain, "plain");
    s_env("empty");
    sl_connect_args_t h = { .home = plain };
    s_ok(&h, "", "", "tcp://127.0.0.1:8888", &c);
    setenv("SLUICE_HOME", plain, 1);
    s_ok(NULL, "", "", "tcp://127.0.0.1:8888", &c);
}

static void test_errors(void **state)
{
    (void) state;
    char path[200];
    s_env("empty");
    s_path(path, sizeof path, "missing");
    sl_connect_args_t missing = { .home = path };
    s_fails(&missing, SL_EINVAL, "server.pub not found: is ");
    s_path(path, sizeof path, "nokey");
    sl_connect_args_t nokey = { .home = path };
    s_fails(&nokey, SL_EINVAL, "admin.cert not found: give this client's "
            "certificate with --cert FILE");
    sl_connect_args_t key_only = { .server_key = "k" };
    s_fails(&key_only, SL_EINVAL, "the broker's key needs a client "
            "certificate too: --cert FILE");
    sl_connect_args_t cert_only = { .cert = "c" };
    s_fails(&cert_only, SL_EINVAL, "--cert needs the broker's public key: "
            "--server-key KEY|FILE");
    setenv("SLUICE_CERT", "env.cert", 1);
    s_fails(NULL, SL_EINVAL, "--cert needs the broker's public key");
    unsetenv("SLUICE_CERT");
    sl_connect_args_t both = { .plaintext = true, .cert = "c" };
    s_fails(&both, SL_EINVAL, "--insecure-plaintext goes without --cert, "
            "--server-key and --home");
    s_path(path, sizeof path, "broken");
    sl_connect_args_t broken = { .home = path };
    s_fails(&broken, SL_ESYS, "/broken/endpoint: ");
    s_fails(&broken, SL_ESYS, "cannot read ");
    /* A NULL buffer drops the reason, not the code. */
    sl_connect_t out;
    assert_int_equal(sl_connect_resolve(&cert_only, &out, NULL, 0), SL_EINVAL);
}

static void test_apply(void **state)
{
    (void) state;
    sl_connect_t c;
    sl_options_t o;
    char home[200];
    s_path(home, sizeof home, "home");
    s_env("empty");
    sl_connect_args_t h = { .home = home };
    assert_int_equal(sl_connect_resolve(&h, &c, NULL, 0), 0);
    sl_options_init(&o);
    sl_connect_apply(&c, &o);
    assert_ptr_equal(o.endpoint, c.endpoint);
    assert_ptr_equal(o.cert, c.cert);
    assert_ptr_equal(o.server_key, c.server_key);
    /* No keys: NULL, which is plain text to sl_client_new. */
    assert_int_equal(sl_connect_resolve(NULL, &c, NULL, 0), 0);
    sl_connect_apply(&c, &o);
    assert_string_equal(o.endpoint, SL_DEFAULT_ENDPOINT);
    assert_null(o.cert);
    assert_null(o.server_key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing),
        cmocka_unit_test(test_flags_beat_variables),
        cmocka_unit_test(test_home),
        cmocka_unit_test(test_plaintext_home),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_apply),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
