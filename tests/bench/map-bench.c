/*  map-bench - the cost of a mapping at ingest (issue 5, point 5): a
 *  10-field, ~300-byte JSON order through a 10-field mapping, decode
 *  (slt_doc_parse) + map (slt_map_eval) + validate the output against the
 *  target schema (slt_schema_validate) + encode (slt_doc_encode), on one
 *  core: the path a mapped message takes through the broker.
 *  Also times each stage alone, so that a slow run says where the time
 *  went, and one more: "w4schema", W4's canonical order validated against
 *  schemas/ecommerce's canonical.order@1 (three "pattern"s). Single
 *  thread; no broker. Last line:
 *  "RESULT workload=map msgs_per_s=N".
 *  Usage: map-bench [SECONDS [STAGE]]   (default 3 s per stage, every
 *  stage; STAGE decode, map, validate, encode, w4schema or total
 *  alone, e.g. under perf)  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "slt_doc.h"
#include "slt_map.h"
#include "slt_schema.h"

static const char s_mapping[] =
    "name: shop-a-to-canonical\n"
    "from: shop-a.order@1\n"
    "to: canonical.order@1\n"
    "map:\n"
    "  order_id: $.id\n"
    "  customer.email: lower(trim($.buyer.email))\n"
    "  customer.name: $.buyer.name\n"
    "  customer.country: $.buyer.country\n"
    "  amount_cents: int(round($.total * 100))\n"
    "  currency: $.currency ?? \"EUR\"\n"
    "  created_at: $.created\n"
    "  channel: upper($.channel)\n"
    "  item_count: length($.items)\n"
    "  note: $.note ?? \"\"\n"
    "drop_if: $.test == true\n";

static const char s_order[] =
    "{\"id\":\"A-1000234\",\"buyer\":{\"email\":\"  Jane.Doe@Example.COM \","
    "\"name\":\"Jane Doe\",\"country\":\"DE\"},\"total\":129.99,\"currency\":\"USD\","
    "\"test\":false,\"created\":\"2024-05-01T12:34:56Z\",\"channel\":\"web\","
    "\"items\":[{\"sku\":\"X-1\",\"qty\":2},{\"sku\":\"Y-22\",\"qty\":1}],"
    "\"note\":\"leave it at the door, please\",\"coupon\":null}";

/* The target schema the mapped order is validated against. */
static const char s_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":false,"
    "\"required\":[\"order_id\",\"customer\",\"amount_cents\",\"currency\"],"
    "\"properties\":{\"order_id\":{\"type\":\"string\",\"minLength\":1},"
    "\"customer\":{\"type\":\"object\",\"required\":[\"email\"],\"properties\":{"
    "\"email\":{\"type\":\"string\",\"format\":\"email\"},\"name\":{\"type\":\"string\"},"
    "\"country\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":2}}},"
    "\"amount_cents\":{\"type\":\"integer\",\"minimum\":0},"
    "\"currency\":{\"type\":\"string\",\"enum\":[\"EUR\",\"USD\",\"GBP\"]},"
    "\"created_at\":{\"type\":\"string\",\"format\":\"date-time\"},"
    "\"channel\":{\"type\":\"string\"},\"item_count\":{\"type\":\"integer\"},"
    "\"note\":{\"type\":\"string\",\"maxLength\":500}}}";

/* W4's mapped order (shop-a-to-canonical's output), for "w4schema". */
static const char s_canonical[] =
    "{\"order_id\":\"a-A-1000234\",\"source\":\"shop-a\",\"customer\":{\"email\":"
    "\"jane.doe@example.com\",\"name\":\"Jane Doe\"},\"amount_cents\":12999,"
    "\"currency\":\"USD\",\"lines\":[{\"sku\":\"X-1\",\"qty\":2},{\"sku\":\"Y-22\","
    "\"qty\":1}],\"placed_at\":\"2024-05-01T12:34:56Z\"}";

typedef enum { S_ALL, S_DECODE, S_MAP, S_VALIDATE, S_ENCODE, S_W4SCHEMA } s_stage_t;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


typedef struct {
    const slt_map_t *map;       /* the 10-field mapping */
    const slt_schema_t *schema; /* the mapping's target schema */
    const slt_schema_t *w4;     /* canonical.order@1, NULL: not read */
    const cJSON *canonical;     /* s_canonical parsed */
} s_bench_t;

/* One message through STAGE; DOC and OUT are the prepared input and
 * mapped output, used by the stages that do not make their own. */
static int s_one(const s_bench_t *b, s_stage_t stage, const cJSON *doc, const cJSON *out,
                 size_t *bytes, char *err, size_t errlen)
{
    slt_schema_error_t errs[4];
    size_t nerrs = 0, tlen = 0;
    cJSON *d = NULL, *o = NULL;
    char *text = NULL;
    bool dropped;
    bool all = stage == S_ALL;
    int rc = 0;
    if (stage == S_W4SCHEMA) {
        rc = slt_schema_validate(b->w4, b->canonical, errs, 4, &nerrs);
        if (rc)
            snprintf(err, errlen, "w4 schema: %s: %s", errs[0].pointer, errs[0].rule);
        return rc;
    }
    if (all || stage == S_DECODE)
        rc = slt_doc_parse(s_order, strlen(s_order), &d, err, errlen);
    if (!rc && (all || stage == S_MAP))
        rc = slt_map_eval(b->map, d ? d : doc, NULL, &o, &dropped, err, errlen);
    if (!rc && (all || stage == S_VALIDATE)
        && slt_schema_validate(b->schema, o ? o : out, errs, 4, &nerrs) != 0) {
        snprintf(err, errlen, "the output is invalid: %s: %s", errs[0].pointer,
                 errs[0].rule);
        rc = -1;
    }
    if (!rc && (all || stage == S_ENCODE)) {
        rc = slt_doc_encode(o ? o : out, &text, &tlen);
        *bytes += tlen;
    }
    free(text);
    cJSON_Delete(o);
    cJSON_Delete(d);
    return rc;
}

/* Messages per second of STAGE over about SECS seconds; -1 on error. */
static double s_run(const s_bench_t *b, s_stage_t stage, double secs, size_t *bytes)
{
    double rate = -1, start = s_now(), now = start;
    size_t n = 0;
    cJSON *doc = NULL, *out = NULL;
    bool dropped;
    char err[512] = "";
    if (slt_doc_parse(s_order, strlen(s_order), &doc, err, sizeof err) != 0
        || slt_map_eval(b->map, doc, NULL, &out, &dropped, err, sizeof err) != 0) {
        fprintf(stderr, "map-bench: the mapping fails: %s\n", err);
        goto fail;
    }
    *bytes = 0;
    while (now - start < secs) {
        int rc = 0;
        for (int k = 0; k < 1000 && !rc; k++)
            rc = s_one(b, stage, doc, out, bytes, err, sizeof err);
        if (rc) {
            fprintf(stderr, "map-bench: %s\n", err);
            goto fail;
        }
        n += 1000;
        now = s_now();
    }
    rate = (double) n / (now - start);
fail:
    cJSON_Delete(out);
    cJSON_Delete(doc);
    return rate;
}

/* Compile the schema in file PATH into *OUT; 0 or -1 (said on stderr). */
static int s_schema_file(const char *path, slt_schema_t **out)
{
    char text[16384], err[512];
    FILE *f = fopen(path, "r");
    size_t len = f ? fread(text, 1, sizeof text, f) : 0;
    if (f)
        fclose(f);
    if (!f || len == sizeof text) {
        fprintf(stderr, "map-bench: cannot read %s\n", path);
        return -1;
    }
    if (slt_schema_compile(text, len, out, err, sizeof err) != 0) {
        fprintf(stderr, "map-bench: %s: %s\n", path, err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 1;
    char err[4096];
    slt_map_t *m = NULL;
    slt_schema_t *schema = NULL, *w4 = NULL;
    cJSON *canonical = NULL;
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    const char *only = argc > 2 ? argv[2] : NULL;
    size_t bytes = 0;
    static const char *const names[] = { "total", "decode", "map", "validate", "encode",
                                         "w4schema" };
    bool known = !only;
    for (size_t i = 0; only && i < sizeof names / sizeof names[0]; i++)
        known |= strcmp(only, names[i]) == 0;
    if (secs <= 0 || argc > 3 || !known) {
        fprintf(stderr, "usage: map-bench [SECONDS [decode|map|validate|encode|w4schema|"
                "total]]\n");
        goto fail;
    }
    if (slt_schema_compile(s_schema, strlen(s_schema), &schema, err, sizeof err) != 0) {
        fprintf(stderr, "map-bench: schema: %s\n", err);
        goto fail;
    }
    if (slt_map_compile(s_mapping, strlen(s_mapping), "map-bench", NULL, NULL, &m, err,
                        sizeof err) != 0) {
        fprintf(stderr, "map-bench: %s\n", err);
        goto fail;
    }
    if (s_schema_file(SLUICE_SCHEMAS_DIR "/schemas/canonical.order@1.json", &w4) != 0)
        goto fail;
    if (slt_doc_parse(s_canonical, strlen(s_canonical), &canonical, err, sizeof err) != 0) {
        fprintf(stderr, "map-bench: %s\n", err);
        goto fail;
    }
    s_bench_t b = { .map = m, .schema = schema, .w4 = w4, .canonical = canonical };
    printf("document %zu bytes, mapping of 10 fields, %.1f s per stage\n", strlen(s_order), secs);
    for (int s = S_DECODE; s <= S_W4SCHEMA; s++) {
        if (only && strcmp(only, names[s]) != 0)
            continue;
        double r = s_run(&b, (s_stage_t) s, secs, &bytes);
        if (r < 0)
            goto fail;
        printf("  %-8s %10.0f msgs/s  %6.2f us/msg%s\n", names[s], r, 1e6 / r,
               s == S_W4SCHEMA ? " (W4's mapped order: 3 patterns)" : "");
    }
    double all = 0;
    if (!only || !strcmp(only, "total")) {
        all = s_run(&b, S_ALL, secs, &bytes);
        if (all < 0)
            goto fail;
        printf("  %-8s %10.0f msgs/s  %6.2f us/msg (decode + map + validate + encode)\n",
               "total", all, 1e6 / all);
    }
    if (all > 0)
        printf("RESULT workload=map msgs_per_s=%.0f\n", all);
    rc = 0;
fail:
    cJSON_Delete(canonical);
    slt_map_destroy(&m);
    slt_schema_destroy(&w4);
    slt_schema_destroy(&schema);
    return rc;
}
