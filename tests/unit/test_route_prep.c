/*  test_route_prep - sld_route_prep against the inline path it stands in
 *  for: a store in a temp dir with a registry (schemas, a binding, a
 *  mapping) and a live routing table, a turn's envelopes prepared on a
 *  worker and this thread; each prepared result must equal what the
 *  inline calls give (schema verdict and text, evaluation steps, mapped
 *  outputs' verdicts and bytes), $meta readers and failed routes must be
 *  left to the transaction, and a result must stop being offered once the
 *  registry or the live table changed (the generations). Fewer envelopes
 *  than the threshold: nothing prepared. No broker.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "sld_registry.h"
#include "sld_route_prep.h"
#include "sld_routes.h"
#include "sld_store.h"
#include "slt_doc.h"
#include "sluice_codes.h"

#define S_SRC "{\"type\":\"object\",\"required\":[\"id\"],\"properties\":{" \
    "\"id\":{\"type\":\"string\",\"pattern\":\"^[A-Z][0-9]+$\"},\"total\":{\"type\":\"number\"}}}"
#define S_DST "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"}," \
    "\"amount\":{\"type\":\"number\",\"minimum\":0}}}"
#define S_MAP "name: up-map\nfrom: up.src@1\nto: up.dst@1\nmap:\n  id: $.id\n" \
    "  amount: $.total\n"
#define S_TABLE "routes:\n" \
    "  - name: big\n" \
    "    match: { topic: \"up.orders\", where: \"$.total > 100\" }\n" \
    "    action: dlq\n" \
    "    reason: big\n" \
    "  - name: canon\n" \
    "    match: { topic: \"up.orders\" }\n" \
    "    map: up-map\n" \
    "    to: up.canon\n" \
    "    continue: true\n" \
    "  - name: copy\n" \
    "    match: { topic: \"up.orders\" }\n" \
    "    to: [up.a, up.b]\n" \
    "  - name: meta\n" \
    "    match: { topic: \"up.meta\", where: '$meta.topic == \"up.meta\"' }\n" \
    "    to: up.meta.out\n" \
    "  - name: raw\n" \
    "    match: { topic: \"up.raw\", where: \"$.a == 1\" }\n" \
    "    to: up.raw.out\n"

#define S_N 24

typedef struct {
    char dir[64];
    sld_store_options_t opts;
    sld_store_t *store;
    sld_registry_t *reg;
    sld_routes_t *routes;
    sld_route_prep_t *prep;
    Sluice__Envelope env[S_N];
    char topics[S_N][32], payloads[S_N][96];
    char why[4096];
} s_fx_t;

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove(path);
}

static sld_txn_t *s_begin(s_fx_t *f)
{
    sld_txn_t *txn = NULL;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    return txn;
}

static void s_commit(s_fx_t *f, sld_txn_t *txn, int rc)
{
    if (rc)
        fail_msg("refused: %s", f->why);
    assert_int_equal(sld_txn_commit(&txn), 0);
    sld_registry_committed(f->reg, true);
    sld_routes_committed(f->routes, true);
}

static void s_register(s_fx_t *f, const char *subject, const char *text)
{
    uint32_t v;
    bool existed;
    sld_txn_t *txn = s_begin(f);
    s_commit(f, txn, sld_registry_register(f->reg, txn, subject, text, strlen(text), NULL,
                                           false, &v, &existed, f->why, sizeof f->why));
}

static void s_bind(s_fx_t *f, const char *topic, const char *subject)
{
    sld_txn_t *txn = s_begin(f);
    s_commit(f, txn, sld_registry_bind(f->reg, txn, topic, subject, 0, "reject", f->why,
                                       sizeof f->why));
}

static void s_map(s_fx_t *f, const char *yaml)
{
    Sluice__MappingInfo info;
    sld_txn_t *txn = s_begin(f);
    s_commit(f, txn, sld_registry_map_add(f->reg, txn, yaml, strlen(yaml), &info, f->why,
                                          sizeof f->why));
}

static void s_apply(s_fx_t *f, const char *yaml)
{
    uint32_t v;
    bool changed;
    char *diff = NULL;
    sld_txn_t *txn = s_begin(f);
    int rc = sld_routes_apply(f->routes, txn, yaml, strlen(yaml), "test", 0, 0, false, &v,
                              &changed, &diff, f->why, sizeof f->why);
    free(diff);
    s_commit(f, txn, rc);
}

/* Message I: valid, invalid, mapped output refused, $meta, not JSON... */
static void s_envelopes(s_fx_t *f)
{
    for (int i = 0; i < S_N; i++) {
        Sluice__Envelope *e = &f->env[i];
        sluice__envelope__init(e);
        const char *topic = "up.orders";
        switch (i % 6) {
        case 0: snprintf(f->payloads[i], 96, "{\"id\":\"A%d\",\"total\":%d.5}", i, i); break;
        case 1: snprintf(f->payloads[i], 96, "{\"id\":\"bad\",\"total\":1}"); break;
        case 2: snprintf(f->payloads[i], 96, "{\"id\":\"N%d\",\"total\":-1}", i); break;
        case 3: snprintf(f->payloads[i], 96, "{\"id\":\"B%d\",\"total\":500}", i); break;
        case 4: topic = "up.meta"; snprintf(f->payloads[i], 96, "{\"k\":%d}", i); break;
        default: topic = "up.raw"; snprintf(f->payloads[i], 96, (i / 6) % 2 ? "{\"a\":1}" : "nope");
        }
        snprintf(f->topics[i], 32, "%s", topic);
        e->topic = f->topics[i];
        e->payload.data = (uint8_t *) f->payloads[i];
        e->payload.len = strlen(f->payloads[i]);
    }
}

static int setup(void **state)
{
    s_fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/sld_route_prep_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    sld_store_options_init(&f->opts);
    f->opts.dir = f->dir;
    f->opts.sync = false;
    assert_int_equal(sld_store_open(&f->opts, &f->store), 0);
    assert_int_equal(sld_registry_new(f->store, &f->reg), 0);
    assert_int_equal(sld_routes_new(f->store, f->reg, &f->routes), 0);
    assert_int_equal(sld_route_prep_new(1, &f->prep), 0);
    s_register(f, "up.src", S_SRC);
    s_register(f, "up.dst", S_DST);
    s_bind(f, "up.orders", "up.src");
    s_map(f, S_MAP);
    s_apply(f, S_TABLE);
    assert_non_null(sld_routes_live(f->routes));
    s_envelopes(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    s_fx_t *f = *state;
    sld_route_prep_destroy(&f->prep);
    assert_null(f->prep);
    sld_routes_destroy(&f->routes);
    sld_registry_destroy(&f->reg);
    sld_store_destroy(&f->store);
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* A turn of the first N envelopes: begin, add, run. */
static void s_turn(s_fx_t *f, size_t n)
{
    assert_int_equal(sld_route_prep_begin(f->prep, f->reg, f->routes), 0);
    for (size_t i = 0; i < n; i++)
        sld_route_prep_add(f->prep, &f->env[i], 1u << 20);
    sld_route_prep_run(f->prep);
}

/* $meta for the inline evaluation, into *ARG (the caller frees it). */
static const cJSON *s_meta(void *arg)
{
    cJSON **m = arg;
    *m = cJSON_CreateObject();
    cJSON_AddStringToObject(*m, "topic", "up.meta");
    cJSON_AddNumberToObject(*m, "offset", 0);
    return *m;
}

/* Every prepared result equals the inline calls' answer. */
static void test_same_as_inline(void **state)
{
    s_fx_t *f = *state;
    s_turn(f, S_N);
    assert_true(sld_route_prep_active(f->prep));
    const slt_route_table_t *table = sld_routes_live(f->routes);
    size_t nrouted = 0, ninline = 0;
    for (int i = 0; i < S_N; i++) {
        const Sluice__Envelope *e = &f->env[i];
        bool routed = true;
        const sld_route_prepared_t *p = sld_route_prep_take(f->prep, f->reg, f->routes, e,
                                                            &routed);
        assert_non_null(p);
        /* The schema check, inline. */
        bool dlq = true;
        cJSON *doc = NULL;
        char why[SLD_ROUTE_PREP_WHY_MAX];
        int rc = sld_registry_check_doc(f->reg, e->topic, NULL, e->payload.data,
                                        e->payload.len, &dlq, &doc, why, sizeof why);
        assert_int_equal(p->check, rc);
        if (rc) {
            assert_string_equal(p->why, why);
            assert_false(routed);
            cJSON_Delete(doc);
            continue;
        }
        /* The evaluation, inline ($meta given, as the transaction does). */
        slt_route_result_t res = { 0 };
        slt_route_msg_t msg = { e->topic, e->payload.data, e->payload.len, NULL, NULL };
        cJSON *meta = NULL;
        slt_route_given_t given = { doc, s_meta, &meta };
        assert_int_equal(slt_route_eval_given(table, &msg, &given, &res), 0);
        bool failed = false;
        for (size_t k = 0; k < res.nsteps; k++)
            failed = failed || res.steps[k].outcome == SLT_ROUTE_FAILED;
        if (i % 6 == 4 || failed) {
            /* $meta read, or a route failed: left to the transaction. */
            assert_false(routed);
            ninline++;
        }
        else {
            assert_true(routed);
            nrouted++;
            assert_null(p->doc);
            assert_int_equal(p->res.nsteps, res.nsteps);
            for (size_t k = 0; k < res.nsteps; k++) {
                const slt_route_step_t *a = &p->res.steps[k], *b = &res.steps[k];
                assert_int_equal(a->route, b->route);
                assert_int_equal(a->outcome, b->outcome);
                assert_int_equal(a->action, b->action);
                assert_int_equal(a->ntargets, b->ntargets);
                if (b->reason)
                    assert_string_equal(a->reason, b->reason);
                assert_int_equal(p->outs[k].mapped, b->output != NULL);
                if (!b->output)
                    continue;
                char vwhy[SLD_ROUTE_PREP_OUT_WHY_MAX];
                int vrc = sld_registry_validate_ref(f->reg, slt_map_to(b->map), b->output,
                                                    vwhy, sizeof vwhy);
                assert_int_equal(p->outs[k].rc, vrc);
                if (vrc) {
                    assert_string_equal(p->outs[k].why, vwhy);
                    continue;
                }
                char *json = NULL;
                size_t len = 0;
                assert_int_equal(slt_doc_print(b->output, &json, &len), 0);
                assert_int_equal(p->outs[k].len, len);
                assert_memory_equal(p->outs[k].json, json, len);
                free(json);
            }
        }
        slt_route_result_free(&res);
        cJSON_Delete(meta);
        cJSON_Delete(doc);
    }
    /* Each kind is there: mapped (valid and refused), dlq action, copies;
     * $meta and not JSON inline. */
    assert_true(nrouted >= 12);
    assert_true(ninline >= 5);
    /* A retry of the turn takes the same results again. */
    bool routed;
    const sld_route_prepared_t *first = sld_route_prep_take(f->prep, f->reg, f->routes,
                                                            &f->env[0], &routed);
    assert_non_null(first);
    assert_true(routed);
    sld_route_prep_end(f->prep);
    assert_false(sld_route_prep_active(f->prep));
    assert_null(sld_route_prep_take(f->prep, f->reg, f->routes, &f->env[0], &routed));
}

/* A committed registry change: nothing prepared before it is offered. A
 * new routing version (or the table compiled again after a mapping
 * change): the checks are, the evaluations are not. */
static void test_stale(void **state)
{
    s_fx_t *f = *state;
    bool routed;
    s_turn(f, S_N);
    assert_non_null(sld_route_prep_take(f->prep, f->reg, f->routes, &f->env[0], &routed));
    assert_true(routed);
    s_bind(f, "up.other", "up.src");
    assert_null(sld_route_prep_take(f->prep, f->reg, f->routes, &f->env[0], &routed));
    assert_false(routed);

    s_turn(f, S_N);
    assert_non_null(sld_route_prep_take(f->prep, f->reg, f->routes, &f->env[0], &routed));
    assert_true(routed);
    s_apply(f, "routes:\n  - name: other\n    match: { topic: \"up.orders\" }\n"
               "    to: up.x\n");
    const sld_route_prepared_t *p = sld_route_prep_take(f->prep, f->reg, f->routes,
                                                        &f->env[0], &routed);
    assert_non_null(p);
    assert_int_equal(p->check, 0);
    assert_false(routed);

    s_apply(f, S_TABLE);
    s_turn(f, S_N);
    assert_non_null(sld_route_prep_take(f->prep, f->reg, f->routes, &f->env[0], &routed));
    assert_true(routed);
    /* The mapping replaced (a changed text: its version 2; the same text
     * again would change nothing): the live table is compiled again,
     * same table version. */
    s_map(f, S_MAP "  # changed\n");
    assert_null(sld_route_prep_take(f->prep, f->reg, f->routes, &f->env[0], &routed));
    assert_false(routed);
    sld_route_prep_end(f->prep);
}

/* Fewer envelopes than SLD_ROUTE_PREP_MIN: all inline. */
static void test_threshold(void **state)
{
    s_fx_t *f = *state;
    bool routed;
    s_turn(f, SLD_ROUTE_PREP_MIN - 1);
    assert_false(sld_route_prep_active(f->prep));
    assert_null(sld_route_prep_take(f->prep, f->reg, f->routes, &f->env[0], &routed));
    sld_route_prep_end(f->prep);
    s_turn(f, SLD_ROUTE_PREP_MIN);
    assert_true(sld_route_prep_active(f->prep));
    sld_route_prep_end(f->prep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_as_inline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threshold, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
