/*  test_routes_cli - routing tables through the `sluice` command. Offline
 *  (no broker): `routes test` runs the fixtures of tests/routes/ (all pass:
 *  exit 0; wrong expectations: exit 1 with a diff per failing case; a
 *  refused table or a missing file: exit 2; usage: 64) and `routes apply
 *  --test` refuses before it contacts anyone. Against a real sluiced: apply
 *  (dry run, --expect-version, an invalid table), list, show, diff of two
 *  versions and of a file against the live one, rollback.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "harness.h"

#define S_FIXTURES SOURCE_ROOT "/tests/routes"

static char s_cli_path[512];

/* Run `sluice ARGS` with IN on stdin (may be NULL), stdout and stderr
 * into *out; the exit status. */
static int s_cli_in(const char *in, char **out, const char *fmt, va_list ap)
{
    char args[2048], cmd[3072];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", s_cli_path, args);
    int rc = h_run(cmd, in, out);
    if (out && *out)
        printf("$ sluice %s -> %d\n%s", args, rc, *out);
    return rc;
}

static int s_cli(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int s_cli(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s_cli_in(NULL, out, fmt, ap);
    va_end(ap);
    return rc;
}

static int s_pub(const char *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int s_pub(const char *in, const char *fmt, ...)
{
    char *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    int rc = s_cli_in(in, &out, fmt, ap);
    va_end(ap);
    free(out);
    return rc;
}

static void s_has(const char *out, const char *what)
{
    if (!strstr(out, what))
        fail_msg("expected \"%s\" in the output", what);
}

/* ------------------------------------------------------------- offline */

static void test_fixtures_pass(void **state)
{
    (void) state;
    char *out = NULL;
    assert_int_equal(s_cli(&out, "routes test " S_FIXTURES "/shop.test.yaml"), 0);
    s_has(out, "PASS an EU order is mapped to both targets");
    s_has(out, "PASS a payload that is not JSON");
    s_has(out, "8 passed, 0 failed");
    assert_null(strstr(out, "FAIL"));
    free(out);
}

static void test_fixtures_fail_with_a_diff(void **state)
{
    (void) state;
    char *out = NULL;
    assert_int_equal(s_cli(&out, "routes test " S_FIXTURES "/wrong.test.yaml"), 1);
    s_has(out, "PASS right about the archive");
    s_has(out, "FAIL wrong amount");
    s_has(out, "canonical.orders.eu/amount_cents: expected 999, got 1250");
    s_has(out, "FAIL wrongly thinks EU orders go nowhere");
    s_has(out, "unrouted: expected no route to fire");
    s_has(out, "FAIL expects a dead letter that does not happen");
    s_has(out, "expected a leg containing \"order without id\", got none");
    s_has(out, "1 passed, 3 failed");
    free(out);
}

static void test_fixtures_not_run(void **state)
{
    (void) state;
    char *out = NULL;
    /* A table with errors: every error, and nothing tested. */
    assert_int_equal(s_cli(&out, "routes test " S_FIXTURES "/shop.test.yaml --routes "
                           S_FIXTURES "/bad.routes.yaml"), 2);
    s_has(out, "no-target");
    s_has(out, "bad pattern");
    s_has(out, "the table is refused");
    assert_null(strstr(out, "PASS"));
    free(out);
    assert_int_equal(s_cli(&out, "routes test /nonexistent/x.test.yaml"), 2);
    s_has(out, "cannot read /nonexistent/x.test.yaml");
    free(out);
    assert_int_equal(s_cli(&out, "routes test"), 64);
    s_has(out, "missing argument");
    free(out);
    assert_int_equal(s_cli(&out, "routes test a b"), 64);
    free(out);
    assert_int_equal(s_cli(&out, "routes test --help"), 0);
    s_has(out, "usage: sluice routes test FIXTURES");
    free(out);
    assert_int_equal(s_cli(&out, "routes"), 64);
    s_has(out, "'routes' needs a subcommand");
    free(out);
}

static void test_apply_refuses_failing_fixtures(void **state)
{
    (void) state;
    char *out = NULL;
    /* Nothing listens there: a refusal that needed the broker would say
     * "not reachable" and exit 2. */
    assert_int_equal(s_cli(&out, "routes apply " S_FIXTURES "/shop.routes.yaml --test "
                           S_FIXTURES "/wrong.test.yaml --broker tcp://127.0.0.1:1 "
                           "--insecure-plaintext --timeout 1"), 1);
    s_has(out, "FAIL wrong amount");
    s_has(out, "nothing applied");
    assert_null(strstr(out, "not reachable"));
    free(out);
    assert_int_equal(s_cli(&out, "routes apply x.yaml --expect-version zero "
                           "--insecure-plaintext"), 64);
    s_has(out, "--expect-version");
    free(out);
    assert_int_equal(s_cli(&out, "routes rollback first --insecure-plaintext"), 64);
    s_has(out, "not a version number");
    free(out);
}

/* ------------------------------------------------------- with a broker */

typedef struct {
    h_broker_t b;
    char v1[400], v2[400], bad[400];
} s_fx_t;

static const char s_v1[] =
    "routes:\n"
    "  - name: archive\n"
    "    match: { topic: \"shop.orders\" }\n"
    "    to: archive.orders\n";

static const char s_v2[] =
    "routes:\n"
    "  - name: archive\n"
    "    match: { topic: \"shop.orders\" }\n"
    "    to: archive.orders\n"
    "    continue: true\n"
    "  - name: eu-copy\n"
    "    match: { topic: \"shop.orders\", where: '$.region == \"EU\"' }\n"
    "    to: eu.orders\n";

static const char s_bad[] =
    "routes:\n"
    "  - name: one\n"
    "    match: { topic: \"a..b\" }\n"
    "    to: x.y\n"
    "  - name: one\n"
    "    match: { topic: \"a.b\" }\n"
    "    to: _private\n";

static void s_write(const char *dir, const char *name, const char *text, char *path,
                    size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    h_broker_init(&fx->b, NULL);
    if (h_broker_start(&fx->b) != 0)
        return -1;
    s_write(fx->b.dir, "v1.yaml", s_v1, fx->v1, sizeof fx->v1);
    s_write(fx->b.dir, "v2.yaml", s_v2, fx->v2, sizeof fx->v2);
    s_write(fx->b.dir, "bad.yaml", s_bad, fx->bad, sizeof fx->bad);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    s_fx_t *fx = *state;
    h_broker_destroy(&fx->b);
    free(fx);
    return 0;
}

static void test_round_trip(void **state)
{
    s_fx_t *fx = *state;
    const char *ep = fx->b.endpoint;
    char *out = NULL;

    assert_int_equal(s_cli(&out, "routes list --broker %s", ep), 0);
    s_has(out, "no routing table applied yet");
    free(out);
    assert_int_equal(s_cli(&out, "routes show --broker %s", ep), 1);
    s_has(out, "no routing table applied yet");
    free(out);

    /* A dry run changes nothing. */
    assert_int_equal(s_cli(&out, "routes apply %s --dry-run --broker %s", fx->v1, ep), 0);
    s_has(out, "+ archive");
    s_has(out, "dry run: nothing applied");
    free(out);
    assert_int_equal(s_cli(&out, "routes list --broker %s", ep), 0);
    s_has(out, "no routing table applied yet");
    free(out);

    assert_int_equal(s_cli(&out, "routes apply %s --broker %s", fx->v1, ep), 0);
    s_has(out, "+ archive");
    s_has(out, "version 1 is live");
    free(out);
    /* An invalid table: refused whole, every error listed. */
    assert_int_equal(s_cli(&out, "routes apply %s --broker %s", fx->bad, ep), 1);
    s_has(out, "not applied");
    s_has(out, "SL_EINVAL");
    s_has(out, "routes.yaml:3:22: route one: match.topic");
    s_has(out, "given twice");
    s_has(out, "_private");
    free(out);
    /* Someone else's view of the live version: refused. */
    assert_int_equal(s_cli(&out, "routes apply %s --expect-version 7 --broker %s", fx->v2, ep),
                     1);
    s_has(out, "the live version is not 7");
    free(out);
    assert_int_equal(s_cli(&out, "routes apply %s --expect-version 1 --broker %s", fx->v2, ep),
                     0);
    s_has(out, "+ eu-copy");
    s_has(out, "version 2 is live");
    free(out);

    assert_int_equal(s_cli(&out, "routes list --broker %s", ep), 0);
    s_has(out, "VERSION");
    s_has(out, "*");
    free(out);
    assert_int_equal(s_cli(&out, "routes show 1 --broker %s", ep), 0);
    s_has(out, "name: archive");
    assert_null(strstr(out, "eu-copy"));
    free(out);
    assert_int_equal(s_cli(&out, "routes show --broker %s", ep), 0);
    s_has(out, "eu-copy");
    free(out);
    assert_int_equal(s_cli(&out, "routes show 9 --broker %s", ep), 1);
    free(out);

    /* Two versions; a file against the live one. */
    assert_int_equal(s_cli(&out, "routes diff 1 2 --broker %s", ep), 0);
    s_has(out, "--- version 1");
    s_has(out, "+++ version 2");
    s_has(out, "+ eu-copy");
    free(out);
    assert_int_equal(s_cli(&out, "routes diff %s --broker %s", fx->v1, ep), 0);
    s_has(out, "--- version 2 (live)");
    s_has(out, "- eu-copy");
    free(out);
    assert_int_equal(s_cli(&out, "routes diff %s --broker %s", fx->v2, ep), 0);
    s_has(out, "(no change)");
    free(out);

    /* Rollback: version 3 holds version 1's table. */
    assert_int_equal(s_cli(&out, "routes rollback 1 --expect-version 1 --broker %s", ep), 1);
    s_has(out, "the live version is not 1");
    free(out);
    assert_int_equal(s_cli(&out, "routes rollback 1 --expect-version 2 --broker %s", ep), 0);
    s_has(out, "- eu-copy");
    s_has(out, "version 3 is live (the table of version 1)");
    free(out);
    assert_int_equal(s_cli(&out, "routes list --json --broker %s", ep), 0);
    s_has(out, "\"live\":3");
    s_has(out, "\"rollback_of\":1");
    free(out);
    assert_int_equal(s_cli(&out, "routes diff 1 3 --broker %s", ep), 0);
    s_has(out, "(no change)");
    free(out);
    assert_int_equal(s_cli(&out, "routes rollback 8 --broker %s", ep), 1);
    s_has(out, "no version 8");
    free(out);

    /* The counters of the live table in `sluice stats`. */
    assert_int_equal(s_pub("{\"region\":\"EU\"}\n{\"region\":\"US\"}\n",
                           "pub shop.orders --broker %s", ep), 0);
    assert_int_equal(s_pub("{}\n", "pub other.topic --broker %s", ep), 0);
    assert_int_equal(s_cli(&out, "stats --broker %s", ep), 0);
    s_has(out, "routing: version 3 applied");
    s_has(out, "unrouted 1");
    s_has(out, "DEAD-LETTERED");
    free(out);
    assert_int_equal(s_cli(&out, "stats --json --broker %s", ep), 0);
    s_has(out, "\"routing\":{\"version\":3,");
    s_has(out, "{\"name\":\"archive\",\"matched\":2,\"delivered\":2,\"dropped\":0");
    free(out);
}

int main(void)
{
    h_build_path("adapters/cli/sluice", s_cli_path, sizeof s_cli_path);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_pass),
        cmocka_unit_test(test_fixtures_fail_with_a_diff),
        cmocka_unit_test(test_fixtures_not_run),
        cmocka_unit_test(test_apply_refuses_failing_fixtures),
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
