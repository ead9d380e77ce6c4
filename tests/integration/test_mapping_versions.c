/*  test_mapping_versions - mapping versions and the routing texts that
 *  name them, against a real sluiced through `sluice` and raw frames
 *  (docs/mapping.md "Versions", docs/routing.md): `mapping add` says the
 *  version, a derived message's lineage carries the version of the mapping
 *  that made it (1, then 2 after a changed text is added), `mapping
 *  list`/`show` and `sluice trace` show it; the same text again keeps the
 *  version; removing a mapping a live route uses is refused naming the
 *  route(s) and the table version; after a removal and a restart the count
 *  goes on; a failed leg's sluice-error, its advisory and its trace step
 *  say the route once.  */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "harness.h"

/* One broker for the group; the tests run in order and build on each
 * other's state. */
typedef struct {
    h_broker_t b;
    h_raw_t raw;
    uint64_t corr;
    char mapv1[300], mapv2[300];    /* the mapping's two texts, as files */
    uint32_t table;                 /* the live table version */
} s_fx_t;

static char s_cli_path[512];

static const char s_map1[] =
    "name: mv-map\nfrom: mv.src@1\nto: mv.dst@1\nmap:\n  id: $.id\n  amount: $.total\n";
/* A changed text: the amount doubled. */
static const char s_map2[] =
    "name: mv-map\nfrom: mv.src@1\nto: mv.dst@1\nmap:\n  id: $.id\n"
    "  amount: $.total * 2\n";

static const char s_table[] =
    "routes:\n"
    "  - name: mv-mapped\n"
    "    match: { topic: \"mv.in\" }\n"
    "    map: mv-map\n"
    "    to: mv.out\n"
    "    continue: true\n"
    "  - name: mv-also\n"
    "    match: { topic: \"mv.in2\" }\n"
    "    map: mv-map\n"
    "    to: mv.out2\n";

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    h_broker_init(&fx->b, NULL);
    if (h_broker_start(&fx->b) != 0 || h_raw_open(&fx->raw, fx->b.endpoint) != 0
        || h_raw_hello(&fx->raw) != 0)
        return -1;
    fx->corr = 1000;
    snprintf(fx->mapv1, sizeof fx->mapv1, "%s/mv-map-1.yaml", fx->b.dir);
    snprintf(fx->mapv2, sizeof fx->mapv2, "%s/mv-map-2.yaml", fx->b.dir);
    s_write(fx->mapv1, s_map1);
    s_write(fx->mapv2, s_map2);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    s_fx_t *fx = *state;
    h_raw_close(&fx->raw);
    h_broker_destroy(&fx->b);
    free(fx);
    return 0;
}

static Sluice__Frame *s_request(s_fx_t *fx, Sluice__Frame *f)
{
    Sluice__Frame *r = h_raw_request(&fx->raw, &fx->corr, f);
    if (!r)
        fail_msg("no reply to %s", slc_frame_name(f));
    return r;
}

static void s_register(s_fx_t *fx, const char *subject, const char *schema)
{
    char err[1024];
    if (h_raw_schema_register(&fx->raw, &fx->corr, subject, schema, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static uint32_t s_apply(s_fx_t *fx, const char *yaml)
{
    char err[4096];
    uint32_t v = 0;
    if (h_raw_routes_apply(&fx->raw, &fx->corr, yaml, &v, err, sizeof err) != 0)
        fail_msg("%s", err);
    return v;
}

static uint64_t s_pub(s_fx_t *fx, const char *topic, const char *payload)
{
    char err[1024];
    uint64_t off = 0;
    if (h_raw_publish(&fx->raw, &fx->corr, topic, payload, &off, err, sizeof err) != 0)
        fail_msg("%s", err);
    return off;
}

static size_t s_read(s_fx_t *fx, const char *topic, Sluice__Envelope **out, size_t max)
{
    char err[512];
    size_t n = 0;
    if (h_raw_read_topic(fx->b.endpoint, topic, out, max, &n, err, sizeof err) != 0)
        fail_msg("%s", err);
    return n;
}

static bool s_payload_is(const Sluice__Envelope *e, const char *text)
{
    return e->payload.len == strlen(text) && memcmp(e->payload.data, text, e->payload.len) == 0;
}

/* Run `sluice ARGS --broker EP`, stdout and stderr into *out; the exit
 * status. */
static int s_cli(s_fx_t *fx, char **out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_cli(s_fx_t *fx, char **out, const char *fmt, ...)
{
    char suffix[512];
    snprintf(suffix, sizeof suffix, "--broker %s", fx->b.endpoint);
    va_list ap;
    va_start(ap, fmt);
    int rc = h_cli_v(s_cli_path, NULL, suffix, out, fmt, ap);
    va_end(ap);
    return rc;
}

static void s_has(const char *out, const char *what)
{
    if (!strstr(out, what))
        fail_msg("expected \"%s\" in the output", what);
}

/* Every message on TOPIC into M (caller frees the N with
 * h_envelopes_free); there must be one at OFFSET. */
static size_t s_at(s_fx_t *fx, const char *topic, uint64_t offset, Sluice__Envelope **m,
                   size_t max)
{
    size_t n = s_read(fx, topic, m, max);
    assert_true(offset < n);
    return n;
}

/* --------------------------------------------------------------- tests */

/* Version 1: `mapping add` says it, the derived message's lineage and
 * `sluice trace` carry it. */
static void test_first_version(void **state)
{
    s_fx_t *fx = *state;
    char *out = NULL;
    s_register(fx, "mv.src", "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},"
                             "\"total\":{\"type\":\"number\"}}}");
    s_register(fx, "mv.dst", "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},"
                             "\"amount\":{\"type\":\"number\"}},"
                             "\"required\":[\"id\",\"amount\"]}");
    assert_int_equal(s_cli(fx, &out, "mapping add %s", fx->mapv1), 0);
    s_has(out, "mapping mv-map version 1: mv.src@1 -> mv.dst@1");
    free(out);
    fx->table = s_apply(fx, s_table);
    s_pub(fx, "mv.in", "{\"id\":\"a\",\"total\":5}");
    Sluice__Envelope *m[16];
    size_t n = s_at(fx, "mv.out", 0, m, 16);
    assert_true(s_payload_is(m[0], "{\"id\":\"a\",\"amount\":5}"));
    assert_string_equal(m[0]->lineage->mapping, "mv-map");
    assert_int_equal(m[0]->lineage->mapping_version, 1);
    assert_int_equal(m[0]->lineage->table_version, fx->table);
    h_envelopes_free(m, n);
    assert_int_equal(s_cli(fx, &out, "trace mv.out 0"), 0);
    s_has(out, "through mapping mv-map version 1");
    free(out);
    assert_int_equal(s_cli(fx, &out, "trace mv.out 0 --json"), 0);
    s_has(out, "\"mapping\":\"mv-map\",\"mapping_version\":1,");
    free(out);
}

/* A changed text is version 2: the live table is compiled with it from
 * that commit on, and the next derived message says 2 (the earlier one
 * still says 1). The same text again changes nothing. */
static void test_next_version(void **state)
{
    s_fx_t *fx = *state;
    char *out = NULL;
    assert_int_equal(s_cli(fx, &out, "mapping add %s", fx->mapv2), 0);
    s_has(out, "mapping mv-map version 2: ");
    free(out);
    s_pub(fx, "mv.in", "{\"id\":\"b\",\"total\":5}");
    Sluice__Envelope *m[16];
    size_t n = s_at(fx, "mv.out", 1, m, 16);
    assert_int_equal(n, 2);
    assert_int_equal(m[0]->lineage->mapping_version, 1);
    assert_true(s_payload_is(m[1], "{\"id\":\"b\",\"amount\":10}"));
    assert_int_equal(m[1]->lineage->mapping_version, 2);
    h_envelopes_free(m, n);
    assert_int_equal(s_cli(fx, &out, "trace mv.out 1"), 0);
    s_has(out, "through mapping mv-map version 2");
    free(out);
    assert_int_equal(s_cli(fx, &out, "trace mv.out 0"), 0);
    s_has(out, "through mapping mv-map version 1");
    free(out);

    assert_int_equal(s_cli(fx, &out, "mapping add %s", fx->mapv2), 0);
    s_has(out, "mapping mv-map version 2: ");
    free(out);
    assert_int_equal(s_cli(fx, &out, "mapping list --json"), 0);
    s_has(out, "{\"name\":\"mv-map\",\"version\":2,\"from\":\"mv.src@1\"");
    free(out);
    assert_int_equal(s_cli(fx, &out, "mapping list"), 0);
    s_has(out, "VERSION");
    free(out);
    assert_int_equal(s_cli(fx, &out, "mapping show mv-map"), 0);
    s_has(out, "mapping mv-map version 2: mv.src@1 -> mv.dst@1");
    s_has(out, "amount: $.total * 2");
    free(out);
}

/* Removing it while live routes use it: refused (409, exit 1), and the
 * text names both routes and the live version. */
static void test_remove_names_routes(void **state)
{
    s_fx_t *fx = *state;
    char *out = NULL, want[200];
    Sluice__MappingRemove mr = SLUICE__MAPPING_REMOVE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    mr.name = "mv-map";
    f.body_case = SLUICE__FRAME__BODY_MAPPING_REMOVE;
    f.mapping_remove = &mr;
    Sluice__Frame *r = s_request(fx, &f);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, 409);
    snprintf(want, sizeof want, "mapping mv-map is used by routes mv-mapped, mv-also of the "
             "live routing table (version %u)", fx->table);
    s_has(r->error->text, want);
    slc_frame_free(&r);
    /* One route left: the singular, through the CLI. */
    fx->table = s_apply(fx, "routes:\n"
                            "  - name: mv-mapped\n"
                            "    match: { topic: \"mv.in\" }\n"
                            "    map: mv-map\n"
                            "    to: mv.out\n");
    assert_int_equal(s_cli(fx, &out, "mapping rm mv-map"), 1);
    snprintf(want, sizeof want, "mapping mv-map is used by route mv-mapped of the live "
             "routing table (version %u): apply a table without it first", fx->table);
    s_has(out, want);
    free(out);
}

/* Removed once no route uses it, then added again after a restart: its
 * versions go on from 2 (a version number always means one text). */
static void test_versions_survive_removal(void **state)
{
    s_fx_t *fx = *state;
    char *out = NULL;
    fx->table = s_apply(fx, "routes:\n"
                            "  - name: plain\n"
                            "    match: { topic: \"mv.in\" }\n"
                            "    to: mv.plain\n");
    assert_int_equal(s_cli(fx, &out, "mapping rm mv-map"), 0);
    free(out);
    h_raw_close(&fx->raw);
    assert_int_equal(h_broker_stop(&fx->b, SIGTERM), 0);
    assert_int_equal(h_broker_start(&fx->b), 0);
    assert_int_equal(h_raw_open(&fx->raw, fx->b.endpoint), 0);
    assert_int_equal(h_raw_hello(&fx->raw), 0);
    assert_int_equal(s_cli(fx, &out, "mapping list --json"), 0);
    s_has(out, "{\"mappings\":[]}");
    free(out);
    assert_int_equal(s_cli(fx, &out, "mapping add %s", fx->mapv1), 0);
    s_has(out, "mapping mv-map version 3: ");
    free(out);
    s_apply(fx, s_table);
    s_pub(fx, "mv.in", "{\"id\":\"c\",\"total\":1}");
    Sluice__Envelope *m[16];
    size_t n = s_at(fx, "mv.out", 2, m, 16);
    assert_true(s_payload_is(m[2], "{\"id\":\"c\",\"amount\":1}"));
    assert_int_equal(m[2]->lineage->mapping_version, 3);
    h_envelopes_free(m, n);
}

/* A failed leg (a predicate on a payload that is not JSON): the route is
 * in sluice-route and the advisory's "route", and the error text does not
 * say it again; nor does the trace step. */
static void test_failure_text_once(void **state)
{
    s_fx_t *fx = *state;
    char *out = NULL;
    s_apply(fx, "routes:\n"
                "  - name: mv-json-only\n"
                "    match: { topic: \"mv.bad\", where: \"$.n > 1\" }\n"
                "    to: mv.never\n");
    uint64_t off = s_pub(fx, "mv.bad", "not json at all");
    Sluice__Envelope *m[64];
    size_t n = s_read(fx, "_dlq.routes", m, 64);
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        const char *route = h_envelope_header(m[i], "sluice-route");
        if (!route || strcmp(route, "mv-json-only") != 0)
            continue;
        found++;
        const char *error = h_envelope_header(m[i], "sluice-error");
        assert_non_null(error);
        printf("sluice-error: %s\n", error);
        assert_true(strncmp(error, "where: the payload is not valid", 31) == 0);
        assert_null(strstr(error, "mv-json-only"));
    }
    assert_int_equal(found, 1);
    h_envelopes_free(m, n);
    n = s_read(fx, "_advisory.routes", m, 64);
    found = 0;
    for (size_t i = 0; i < n; i++) {
        char *text = strndup((const char *) m[i]->payload.data, m[i]->payload.len);
        if (strstr(text, "\"route\":\"mv-json-only\"")) {
            found++;
            printf("advisory: %s\n", text);
            /* The name once: in "route", not again after it ("error"). */
            assert_null(strstr(strstr(text, "\"route\":\"mv-json-only\"") + 22,
                               "mv-json-only"));
            s_has(text, "\"error\":\"where: the payload is not valid");
        }
        free(text);
    }
    assert_int_equal(found, 1);
    h_envelopes_free(m, n);
    assert_int_equal(s_cli(fx, &out, "trace mv.bad %llu", (unsigned long long) off), 0);
    s_has(out, "route mv-json-only (#0): failed: where: the payload is not valid");
    free(out);
}

int main(void)
{
    h_build_path("adapters/cli/sluice", s_cli_path, sizeof s_cli_path);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_version),
        cmocka_unit_test(test_next_version),
        cmocka_unit_test(test_remove_names_routes),
        cmocka_unit_test(test_versions_survive_removal),
        cmocka_unit_test(test_failure_text_once),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
