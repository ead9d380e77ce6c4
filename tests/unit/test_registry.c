/*  test_registry - sld_registry as an operator and a publisher see it:
 *  subjects with numbered versions (a compatible new version is accepted,
 *  an incompatible one refused with its reasons), topics bound to a
 *  subject so that a publish is validated (a readable reason when not),
 *  mappings added, read, listed and removed (each different text under a
 *  name its next version, kept across a removal and for records stored
 *  before versions existed), a rolled-back transaction
 *  that leaves nothing, and all of it read back after reopening the store.
 *  No broker: a store in a temp dir. Single thread.  */
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
#include "sld_store.h"
#include "sluice_codes.h"

/* An order: id required, nothing else allowed. */
#define S_ORDER_V1 "{\"type\": \"object\", \"required\": [\"id\"], " \
    "\"additionalProperties\": false, " \
    "\"properties\": {\"id\": {\"type\": \"string\", \"minLength\": 1}}}"
/* V1 plus an optional note: every v1 order is still valid (BACKWARD), a
 * v2 order with a note is not a v1 one (not FORWARD). */
#define S_ORDER_V2 "{\"type\": \"object\", \"required\": [\"id\"], " \
    "\"additionalProperties\": false, " \
    "\"properties\": {\"id\": {\"type\": \"string\", \"minLength\": 1}, " \
    "\"note\": {\"type\": \"string\"}}}"
/* V2 plus a required total without a default: v2 orders would be refused. */
#define S_ORDER_V3_BAD "{\"type\": \"object\", \"required\": [\"id\", \"total\"], " \
    "\"additionalProperties\": false, " \
    "\"properties\": {\"id\": {\"type\": \"string\", \"minLength\": 1}, " \
    "\"note\": {\"type\": \"string\"}, \"total\": {\"type\": \"number\"}}}"
/* A closed target for mappings. */
#define S_CANON "{\"type\": \"object\", \"additionalProperties\": false, " \
    "\"properties\": {\"order_id\": {\"type\": \"string\"}}}"

#define S_MAP_YAML "name: order-to-canon\n" \
    "from: order@1\n" \
    "to: canon@1\n" \
    "map:\n" \
    "  order_id: concat(\"a-\", $.id)\n"

typedef struct {
    char dir[64];
    sld_store_options_t opts;
    sld_store_t *store;
    sld_registry_t *reg;
    char why[2048];
} s_fixture_t;

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove(path);
}

static void s_open(s_fixture_t *f)
{
    assert_int_equal(sld_store_open(&f->opts, &f->store), 0);
    assert_int_equal(sld_registry_new(f->store, &f->reg), 0);
}

/* Close registry and store, then open both again from the files. */
static void s_reopen(s_fixture_t *f)
{
    sld_registry_destroy(&f->reg);
    assert_null(f->reg);
    sld_store_destroy(&f->store);
    s_open(f);
}

static int setup(void **state)
{
    s_fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/sld_registry_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    sld_store_options_init(&f->opts);
    f->opts.dir = f->dir;
    f->opts.sync = false;
    s_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    s_fixture_t *f = *state;
    sld_registry_destroy(&f->reg);
    sld_store_destroy(&f->store);
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static sld_txn_t *s_begin(s_fixture_t *f)
{
    sld_txn_t *txn = NULL;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    f->why[0] = '\0';
    return txn;
}

/* Commit TXN when RC is 0, else roll it back; tell the registry. */
static int s_end(s_fixture_t *f, sld_txn_t *txn, int rc)
{
    if (rc == 0)
        assert_int_equal(sld_txn_commit(&txn), 0);
    else
        sld_txn_abort(&txn);
    sld_registry_committed(f->reg, rc == 0);
    return rc;
}

/* Register TEXT under SUBJECT in its own transaction: the rc, *VERSION. */
static int s_register(s_fixture_t *f, const char *subject, const char *text,
                      const char *compat, uint32_t *version, bool *existed)
{
    sld_txn_t *txn = s_begin(f);
    int rc = sld_registry_register(f->reg, txn, subject, text, strlen(text), compat,
                                   false, version, existed, f->why, sizeof f->why);
    return s_end(f, txn, rc);
}

static int s_bind(s_fixture_t *f, const char *topic, const char *subject,
                  uint32_t version, const char *invalid)
{
    sld_txn_t *txn = s_begin(f);
    int rc = sld_registry_bind(f->reg, txn, topic, subject, version, invalid,
                               f->why, sizeof f->why);
    return s_end(f, txn, rc);
}

static int s_map_add(s_fixture_t *f, const char *yaml)
{
    Sluice__MappingInfo info = SLUICE__MAPPING_INFO__INIT;
    sld_txn_t *txn = s_begin(f);
    int rc = sld_registry_map_add(f->reg, txn, yaml, strlen(yaml), &info,
                                  f->why, sizeof f->why);
    if (rc == 0) {
        assert_string_equal(info.name, "order-to-canon");
        assert_string_equal(info.from, "order@1");
    }
    return s_end(f, txn, rc);
}

/* A publish of PAYLOAD (JSON) to TOPIC: the rc; *DLQ. */
static int s_check(s_fixture_t *f, const char *topic, const char *payload, bool *dlq)
{
    *dlq = false;
    f->why[0] = '\0';
    return sld_registry_check(f->reg, topic, "application/json", payload, strlen(payload),
                              dlq, f->why, sizeof f->why);
}

/* Versions count up; the same text again is no new version; a compatible
 * change is accepted, an incompatible one refused with the property and
 * the rule, a dry run writes nothing, and the mode can be relaxed. */
static void test_versions(void **state)
{
    s_fixture_t *f = *state;
    uint32_t v = 0;
    bool existed = true;
    Sluice__SchemaInfo info = SLUICE__SCHEMA_INFO__INIT;

    assert_int_equal(sld_registry_get(f->reg, "order", 0, &info), SL_ENOTFOUND);
    assert_int_equal(s_register(f, "order", S_ORDER_V1, NULL, &v, &existed), 0);
    assert_int_equal(v, 1);
    assert_false(existed);
    assert_int_equal(s_register(f, "order", S_ORDER_V1, NULL, &v, &existed), 0);
    assert_int_equal(v, 1);
    assert_true(existed);
    assert_int_equal(s_register(f, "order", S_ORDER_V2, NULL, &v, &existed), 0);
    assert_int_equal(v, 2);
    assert_false(existed);

    assert_int_equal(sld_registry_get(f->reg, "order", 0, &info), 0);
    assert_int_equal(info.version, 2);
    assert_int_equal(info.versions, 2);
    assert_string_equal(info.compat, "BACKWARD");
    assert_non_null(strstr(info.schema, "\"note\""));
    assert_int_equal(sld_registry_get(f->reg, "order", 1, &info), 0);
    assert_int_equal(info.version, 1);
    assert_null(strstr(info.schema, "\"note\""));
    assert_int_equal(sld_registry_get(f->reg, "order", 3, &info), SL_ENOTFOUND);

    /* A new required property without a default breaks BACKWARD. */
    assert_int_equal(s_register(f, "order", S_ORDER_V3_BAD, NULL, &v, &existed), SL_EINVAL);
    assert_non_null(strstr(f->why, "incompatible with order@2"));
    assert_non_null(strstr(f->why, "BACKWARD"));
    assert_non_null(strstr(f->why, "total"));
    assert_int_equal(sld_registry_get(f->reg, "order", 0, &info), 0);
    assert_int_equal(info.version, 2);

    /* Not a schema, a bad name, an unknown mode: refused with a reason. */
    assert_int_equal(s_register(f, "order", "{\"type\": \"strin\"}", NULL, &v, &existed),
                     SL_EINVAL);
    assert_non_null(strstr(f->why, "does not compile"));
    assert_int_equal(s_register(f, "bad name", S_ORDER_V1, NULL, &v, &existed), SL_EINVAL);
    assert_int_equal(s_register(f, "order", S_ORDER_V2, "SIDEWAYS", &v, &existed),
                     SL_EINVAL);
    assert_non_null(strstr(f->why, "SIDEWAYS"));

    /* Dry run: the answer, nothing written. */
    sld_txn_t *txn = s_begin(f);
    assert_int_equal(sld_registry_register(f->reg, txn, "order", S_ORDER_V3_BAD,
                                           strlen(S_ORDER_V3_BAD), "NONE", true, &v,
                                           &existed, f->why, sizeof f->why), 0);
    assert_int_equal(v, 3);
    s_end(f, txn, 0);
    assert_int_equal(sld_registry_get(f->reg, "order", 0, &info), 0);
    assert_int_equal(info.version, 2);
    assert_string_equal(info.compat, "BACKWARD");

    /* With the mode relaxed to NONE it is accepted, and the mode kept. */
    assert_int_equal(s_register(f, "order", S_ORDER_V3_BAD, "none", &v, &existed), 0);
    assert_int_equal(v, 3);
    assert_int_equal(sld_registry_get(f->reg, "order", 0, &info), 0);
    assert_int_equal(info.version, 3);
    assert_string_equal(info.compat, "NONE");

    /* The list has the latest version of each subject, no text. */
    assert_int_equal(s_register(f, "canon", S_CANON, NULL, &v, &existed), 0);
    Sluice__SchemaInfo **list = NULL;
    size_t n = 0;
    assert_int_equal(sld_registry_list(f->reg, &list, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_true(!list[i]->schema || !list[i]->schema[0]);
        if (strcmp(list[i]->subject, "order") == 0)
            assert_int_equal(list[i]->version, 3);
        else {
            assert_string_equal(list[i]->subject, "canon");
            assert_int_equal(list[i]->version, 1);
        }
    }
    sld_registry_list_free(&list, n);
    assert_null(list);
}

/* A bound topic accepts valid messages and refuses invalid ones naming
 * the property and the rule; a pinned version is the one used; "dlq" asks
 * for the dead-letter topic; unbinding stops validation. */
static void test_bind_check(void **state)
{
    s_fixture_t *f = *state;
    uint32_t v = 0;
    bool existed = false, dlq = true;
    assert_int_equal(s_register(f, "order", S_ORDER_V1, NULL, &v, &existed), 0);

    assert_false(sld_registry_any(f->reg));
    assert_int_equal(s_check(f, "shop.orders", "{}", &dlq), 0);
    assert_int_equal(s_bind(f, "shop.orders", "nosuch", 0, NULL), SL_ENOTFOUND);
    assert_int_equal(s_bind(f, "shop.orders", "order", 2, NULL), SL_ENOTFOUND);
    assert_int_equal(s_bind(f, "shop.orders", "order", 0, "drop"), SL_EINVAL);
    assert_int_equal(s_bind(f, "shop..orders", "order", 0, NULL), SL_EINVAL);
    assert_false(sld_registry_any(f->reg));

    assert_int_equal(s_bind(f, "shop.orders", "order", 0, "reject"), 0);
    assert_true(sld_registry_any(f->reg));
    assert_int_equal(s_check(f, "shop.orders", "{\"id\": \"A-1\"}", &dlq), 0);
    assert_int_equal(s_check(f, "shop.orders", "{\"ID\": \"A-1\"}", &dlq), SL_EINVAL);
    assert_false(dlq);
    assert_non_null(strstr(f->why, "order@1"));
    assert_non_null(strstr(f->why, "required property \"id\" is missing"));
    assert_int_equal(s_check(f, "shop.orders", "{\"id\": 7}", &dlq), SL_EINVAL);
    assert_non_null(strstr(f->why, "/id: expected string, got integer"));
    assert_int_equal(s_check(f, "shop.orders", "{\"id\": ", &dlq), SL_EINVAL);
    assert_non_null(strstr(f->why, "does not decode"));
    /* Other topics are not checked. */
    assert_int_equal(s_check(f, "shop.returns", "{\"x\": 1}", &dlq), 0);

    /* Bound to the latest (0): v2 applies as soon as it is registered.
     * Pinned to v1: v1 still decides. */
    assert_int_equal(s_check(f, "shop.orders", "{\"id\": \"A-1\", \"note\": \"x\"}", &dlq),
                     SL_EINVAL);
    assert_int_equal(s_register(f, "order", S_ORDER_V2, NULL, &v, &existed), 0);
    assert_int_equal(s_check(f, "shop.orders", "{\"id\": \"A-1\", \"note\": \"x\"}", &dlq),
                     0);
    assert_int_equal(s_check(f, "shop.orders", "{\"id\": \"A-1\", \"note\": 5}", &dlq),
                     SL_EINVAL);
    assert_non_null(strstr(f->why, "order@2"));
    assert_non_null(strstr(f->why, "/note: expected string"));
    assert_int_equal(s_bind(f, "shop.orders", "order", 1, NULL), 0);
    assert_int_equal(s_check(f, "shop.orders", "{\"id\": \"A-1\", \"note\": \"x\"}", &dlq),
                     SL_EINVAL);
    assert_non_null(strstr(f->why, "additional property \"note\" is not allowed"));

    /* dlq: still refused, and the caller is told where it goes. */
    assert_int_equal(s_bind(f, "shop.orders", "order", 0, "dlq"), 0);
    assert_int_equal(s_check(f, "shop.orders", "{}", &dlq), SL_EINVAL);
    assert_true(dlq);

    /* A staged binding does not validate before its commit. */
    sld_txn_t *txn = s_begin(f);
    assert_int_equal(sld_registry_bind(f->reg, txn, "shop.returns", "order", 0, NULL,
                                       f->why, sizeof f->why), 0);
    assert_int_equal(s_check(f, "shop.returns", "{}", &dlq), 0);
    s_end(f, txn, 0);
    assert_int_equal(s_check(f, "shop.returns", "{}", &dlq), SL_EINVAL);

    /* Unbinding both: nothing is validated any more. */
    assert_int_equal(s_bind(f, "shop.orders", "", 0, NULL), 0);
    assert_int_equal(s_bind(f, "shop.returns", NULL, 0, NULL), 0);
    assert_false(sld_registry_any(f->reg));
    assert_int_equal(s_check(f, "shop.orders", "{}", &dlq), 0);
}

/* Mappings: checked against their schemas when added, then read back,
 * listed and removed. */
static void test_mappings(void **state)
{
    s_fixture_t *f = *state;
    uint32_t v = 0;
    bool existed = false;
    Sluice__MappingInfo info = SLUICE__MAPPING_INFO__INIT;

    /* The schemas it names must be registered first. */
    assert_int_equal(s_map_add(f, S_MAP_YAML), SL_ENOTFOUND);
    assert_non_null(strstr(f->why, "order@1"));
    assert_int_equal(s_register(f, "order", S_ORDER_V1, NULL, &v, &existed), 0);
    assert_int_equal(s_map_add(f, S_MAP_YAML), SL_ENOTFOUND);
    assert_non_null(strstr(f->why, "canon@1"));
    assert_int_equal(s_register(f, "canon", S_CANON, NULL, &v, &existed), 0);

    /* An expression that does not compile: the line and a caret. */
    assert_int_equal(s_map_add(f, "name: order-to-canon\nfrom: order@1\nto: canon@1\n"
                                  "map:\n  order_id: concat(\"a-\", $.id\n"), SL_EINVAL);
    assert_non_null(strstr(f->why, ":5:"));
    assert_non_null(strstr(f->why, "^"));
    assert_int_equal(sld_registry_map_get(f->reg, "order-to-canon", &info), SL_ENOTFOUND);

    assert_int_equal(s_map_add(f, S_MAP_YAML), 0);
    assert_int_equal(sld_registry_map_get(f->reg, "order-to-canon", &info), 0);
    assert_string_equal(info.name, "order-to-canon");
    assert_string_equal(info.from, "order@1");
    assert_string_equal(info.to, "canon@1");
    assert_string_equal(info.yaml, S_MAP_YAML);

    Sluice__MappingInfo **list = NULL;
    size_t n = 0;
    assert_int_equal(sld_registry_map_list(f->reg, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0]->name, "order-to-canon");
    assert_true(!list[0]->yaml || !list[0]->yaml[0]);
    sld_registry_map_list_free(&list, n);
    assert_null(list);

    sld_txn_t *txn = s_begin(f);
    assert_int_equal(sld_registry_map_remove(f->reg, txn, "order-to-canon",
                                             f->why, sizeof f->why), 0);
    s_end(f, txn, 0);
    assert_int_equal(sld_registry_map_get(f->reg, "order-to-canon", &info), SL_ENOTFOUND);
    assert_int_equal(sld_registry_map_list(f->reg, &list, &n), 0);
    assert_int_equal(n, 0);
    sld_registry_map_list_free(&list, n);
    txn = s_begin(f);
    assert_int_equal(sld_registry_map_remove(f->reg, txn, "order-to-canon",
                                             f->why, sizeof f->why), SL_ENOTFOUND);
    assert_non_null(strstr(f->why, "order-to-canon"));
    s_end(f, txn, SL_ENOTFOUND);
}

/* Add YAML in its own transaction: the rc and the version *info names. */
static int s_map_add_v(s_fixture_t *f, const char *yaml, uint32_t *version)
{
    Sluice__MappingInfo info = SLUICE__MAPPING_INFO__INIT;
    sld_txn_t *txn = s_begin(f);
    int rc = sld_registry_map_add(f->reg, txn, yaml, strlen(yaml), &info,
                                  f->why, sizeof f->why);
    *version = rc == 0 ? info.version : 0;
    return s_end(f, txn, rc);
}

static uint32_t s_map_version(s_fixture_t *f, const char *name)
{
    Sluice__MappingInfo info = SLUICE__MAPPING_INFO__INIT;
    assert_int_equal(sld_registry_map_get(f->reg, name, &info), 0);
    return info.version;
}

/* A mapping's versions: 1 when new; a different text under the name is
 * the next (two in one transaction too); the same text again is no new
 * version; list and get say it; a removal keeps the count, across a
 * reopen; a record stored before versions existed reads as version 1. */
static void test_mapping_versions(void **state)
{
    s_fixture_t *f = *state;
    uint32_t v = 0;
    bool existed = false;
    static const char other[] = S_MAP_YAML "  # changed\n";
    static const char third[] = S_MAP_YAML "  # changed again\n";
    assert_int_equal(s_register(f, "order", S_ORDER_V1, NULL, &v, &existed), 0);
    assert_int_equal(s_register(f, "canon", S_CANON, NULL, &v, &existed), 0);

    assert_int_equal(s_map_add_v(f, S_MAP_YAML, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(s_map_add_v(f, S_MAP_YAML, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(s_map_add_v(f, other, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(s_map_version(f, "order-to-canon"), 2);
    Sluice__MappingInfo **list = NULL;
    size_t n = 0;
    assert_int_equal(sld_registry_map_list(f->reg, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0]->version, 2);
    sld_registry_map_list_free(&list, n);

    /* Two in one transaction: 3 then 4 (the staged one counts). */
    Sluice__MappingInfo info = SLUICE__MAPPING_INFO__INIT;
    sld_txn_t *txn = s_begin(f);
    assert_int_equal(sld_registry_map_add(f->reg, txn, third, strlen(third), &info,
                                          f->why, sizeof f->why), 0);
    assert_int_equal(info.version, 3);
    assert_int_equal(sld_registry_map_add(f->reg, txn, S_MAP_YAML, strlen(S_MAP_YAML), &info,
                                          f->why, sizeof f->why), 0);
    assert_int_equal(info.version, 4);
    s_end(f, txn, 0);
    assert_int_equal(s_map_version(f, "order-to-canon"), 4);

    /* Removed, reopened, added again: the count goes on. */
    txn = s_begin(f);
    assert_int_equal(sld_registry_map_remove(f->reg, txn, "order-to-canon",
                                             f->why, sizeof f->why), 0);
    s_end(f, txn, 0);
    s_reopen(f);
    assert_int_equal(sld_registry_map_get(f->reg, "order-to-canon", &info), SL_ENOTFOUND);
    assert_int_equal(sld_registry_map_list(f->reg, &list, &n), 0);
    assert_int_equal(n, 0);
    sld_registry_map_list_free(&list, n);
    assert_int_equal(s_map_add_v(f, S_MAP_YAML, &v), 0);
    assert_int_equal(v, 5);
    s_reopen(f);
    assert_int_equal(s_map_version(f, "order-to-canon"), 5);

    /* A record as brokers before versions wrote it (no version field). */
    Sluice__MappingInfo old = SLUICE__MAPPING_INFO__INIT;
    old.name = "order-to-canon";
    old.from = "order@1";
    old.to = "canon@1";
    old.yaml = (char *) S_MAP_YAML;
    old.created_us = 1;
    uint8_t buf[1024], key[64];
    size_t len = sluice__mapping_info__pack(&old, buf);
    key[0] = 'm';
    memcpy(key + 1, old.name, strlen(old.name));
    txn = s_begin(f);
    assert_int_equal(sld_table_put(txn, SLD_TABLE_REGISTRY, key, 1 + strlen(old.name), buf,
                                   len), 0);
    assert_int_equal(sld_txn_commit(&txn), 0);
    s_reopen(f);
    assert_int_equal(s_map_version(f, "order-to-canon"), 1);
    assert_int_equal(s_map_add_v(f, other, &v), 0);
    assert_int_equal(v, 2);
}

/* Everything written in a transaction that is rolled back is gone: in
 * memory and after reopening. */
static void test_abort(void **state)
{
    s_fixture_t *f = *state;
    uint32_t v = 0;
    bool existed = false, dlq = false;
    Sluice__SchemaInfo info = SLUICE__SCHEMA_INFO__INIT;
    Sluice__MappingInfo minfo = SLUICE__MAPPING_INFO__INIT;

    sld_txn_t *txn = s_begin(f);
    assert_int_equal(sld_registry_register(f->reg, txn, "order", S_ORDER_V1,
                                           strlen(S_ORDER_V1), NULL, false, &v, &existed,
                                           f->why, sizeof f->why), 0);
    assert_int_equal(sld_registry_register(f->reg, txn, "canon", S_CANON, strlen(S_CANON),
                                           NULL, false, &v, &existed,
                                           f->why, sizeof f->why), 0);
    assert_int_equal(sld_registry_bind(f->reg, txn, "shop.orders", "order", 0, NULL,
                                       f->why, sizeof f->why), 0);
    assert_int_equal(sld_registry_map_add(f->reg, txn, S_MAP_YAML, strlen(S_MAP_YAML),
                                          &minfo, f->why, sizeof f->why), 0);
    s_end(f, txn, SL_EINVAL);

    assert_int_equal(sld_registry_get(f->reg, "order", 0, &info), SL_ENOTFOUND);
    assert_false(sld_registry_any(f->reg));
    assert_int_equal(s_check(f, "shop.orders", "{}", &dlq), 0);
    assert_int_equal(sld_registry_map_get(f->reg, "order-to-canon", &minfo), SL_ENOTFOUND);
    Sluice__SchemaInfo **list = NULL;
    size_t n = 1;
    assert_int_equal(sld_registry_list(f->reg, &list, &n), 0);
    assert_int_equal(n, 0);
    sld_registry_list_free(&list, n);

    s_reopen(f);
    assert_int_equal(sld_registry_get(f->reg, "order", 0, &info), SL_ENOTFOUND);
    assert_false(sld_registry_any(f->reg));
    assert_int_equal(sld_registry_map_get(f->reg, "order-to-canon", &minfo), SL_ENOTFOUND);

    /* The next version after a rolled-back one is still 1. */
    assert_int_equal(s_register(f, "order", S_ORDER_V1, NULL, &v, &existed), 0);
    assert_int_equal(v, 1);
}

/* Versions, modes, bindings and mappings are read back from the store. */
static void test_reopen(void **state)
{
    s_fixture_t *f = *state;
    uint32_t v = 0;
    bool existed = false, dlq = false;
    Sluice__SchemaInfo info = SLUICE__SCHEMA_INFO__INIT;
    Sluice__MappingInfo minfo = SLUICE__MAPPING_INFO__INIT;
    assert_int_equal(s_register(f, "order", S_ORDER_V1, NULL, &v, &existed), 0);
    assert_int_equal(s_register(f, "order", S_ORDER_V2, NULL, &v, &existed), 0);
    /* The same text again with another mode changes only the mode. */
    assert_int_equal(s_register(f, "order", S_ORDER_V2, "FULL", &v, &existed), 0);
    assert_true(existed);
    assert_int_equal(v, 2);
    assert_int_equal(s_register(f, "canon", S_CANON, NULL, &v, &existed), 0);
    assert_int_equal(s_bind(f, "shop.orders", "order", 0, "dlq"), 0);
    assert_int_equal(s_bind(f, "shop.returns", "order", 1, NULL), 0);
    assert_int_equal(s_map_add(f, S_MAP_YAML), 0);
    assert_int_equal(sld_registry_get(f->reg, "order", 0, &info), 0);
    char text_v2[1024];
    snprintf(text_v2, sizeof text_v2, "%s", info.schema);

    s_reopen(f);
    assert_int_equal(sld_registry_get(f->reg, "order", 0, &info), 0);
    assert_int_equal(info.version, 2);
    assert_int_equal(info.versions, 2);
    assert_string_equal(info.compat, "FULL");
    assert_string_equal(info.schema, text_v2);
    assert_int_equal(sld_registry_get(f->reg, "order", 1, &info), 0);
    assert_int_equal(info.version, 1);

    assert_true(sld_registry_any(f->reg));
    assert_int_equal(s_check(f, "shop.orders", "{\"id\": \"A-1\", \"note\": \"x\"}", &dlq),
                     0);
    assert_int_equal(s_check(f, "shop.orders", "{\"id\": \"A-1\", \"note\": 5}", &dlq),
                     SL_EINVAL);
    assert_true(dlq);
    /* Pinned to v1, which has no note. */
    assert_int_equal(s_check(f, "shop.returns", "{\"id\": \"A-1\"}", &dlq), 0);
    assert_int_equal(s_check(f, "shop.returns", "{\"id\": \"A-1\", \"note\": \"x\"}", &dlq),
                     SL_EINVAL);
    assert_false(dlq);

    assert_int_equal(sld_registry_map_get(f->reg, "order-to-canon", &minfo), 0);
    assert_string_equal(minfo.yaml, S_MAP_YAML);

    /* The next version continues the count; the mode still applies. */
    assert_int_equal(s_register(f, "order", S_ORDER_V3_BAD, NULL, &v, &existed), SL_EINVAL);
    assert_non_null(strstr(f->why, "FULL"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mappings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
