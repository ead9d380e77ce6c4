/*  map-bench - the cost of a mapping at ingest (issue 5, point 5): a
 *  10-field, ~300-byte JSON order through a 10-field mapping, decode
 *  (slt_doc_parse) + map (slt_map_eval) + validate the output against the
 *  target schema (slt_schema_validate) + encode (slt_doc_encode), on one
 *  core: the path a mapped message takes through the broker.
 *  Also times each stage alone, so that a slow run says where the time
 *  went. Single thread; no broker. Last line:
 *  "RESULT workload=map msgs_per_s=N".
 *  Usage: map-bench [SECONDS [STAGE]]   (default 3 s per stage, every
 *  stage; STAGE decode, map, validate, encode or total alone, e.g.
 *  under perf)  */
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

typedef enum { S_ALL, S_DECODE, S_MAP, S_VALIDATE, S_ENCODE } s_stage_t;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Messages per second of STAGE over about SECS seconds; -1 on error. */
static double s_run(const slt_map_t *m, const slt_schema_t *schema, s_stage_t stage,
                    double secs, size_t *bytes)
{
    slt_schema_error_t errs[4];
    size_t nerrs = 0;
    double rate = -1, start = s_now(), now = start;
    size_t n = 0, len = strlen(s_order);
    cJSON *doc = NULL, *out = NULL;
    bool dropped;
    char err[512] = "";
    if (slt_doc_parse(s_order, len, &doc, err, sizeof err) != 0
        || slt_map_eval(m, doc, NULL, &out, &dropped, err, sizeof err) != 0) {
        fprintf(stderr, "map-bench: the mapping fails: %s\n", err);
        goto fail;
    }
    if (slt_schema_validate(schema, out, errs, 4, &nerrs) != 0) {
        fprintf(stderr, "map-bench: the output is invalid: %s: %s\n", errs[0].pointer,
                errs[0].rule);
        goto fail;
    }
    *bytes = 0;
    while (now - start < secs) {
        for (int k = 0; k < 1000; k++) {
            cJSON *d = doc, *o = out;
            char *text = NULL;
            size_t tlen = 0;
            if ((stage == S_ALL || stage == S_DECODE)
                && slt_doc_parse(s_order, len, &d, err, sizeof err) != 0)
                goto fail;
            if (stage == S_ALL || stage == S_MAP) {
                if (slt_map_eval(m, d, NULL, &o, &dropped, err, sizeof err) != 0)
                    goto fail;
            }
            if ((stage == S_ALL || stage == S_VALIDATE)
                && slt_schema_validate(schema, o, errs, 4, &nerrs) != 0)
                goto fail;
            if (stage == S_ALL || stage == S_ENCODE) {
                if (slt_doc_encode(o, &text, &tlen) != 0)
                    goto fail;
                *bytes += tlen;
            }
            free(text);
            if (o != out)
                cJSON_Delete(o);
            if (d != doc)
                cJSON_Delete(d);
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

int main(int argc, char **argv)
{
    int rc = 1;
    char err[4096];
    slt_map_t *m = NULL;
    slt_schema_t *schema = NULL;
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    const char *only = argc > 2 ? argv[2] : NULL;
    size_t bytes = 0;
    static const char *const names[] = { "total", "decode", "map", "validate", "encode" };
    if (secs <= 0 || argc > 3 || (only && strcmp(only, "decode") && strcmp(only, "map")
                                  && strcmp(only, "validate") && strcmp(only, "encode")
                                  && strcmp(only, "total"))) {
        fprintf(stderr, "usage: map-bench [SECONDS [decode|map|validate|encode|total]]\n");
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
    printf("document %zu bytes, mapping of 10 fields, %.1f s per stage\n", strlen(s_order), secs);
    for (int s = S_DECODE; s <= S_ENCODE; s++) {
        if (only && strcmp(only, names[s]) != 0)
            continue;
        double r = s_run(m, schema, (s_stage_t) s, secs, &bytes);
        if (r < 0)
            goto fail;
        printf("  %-8s %10.0f msgs/s  %6.2f us/msg\n", names[s], r, 1e6 / r);
    }
    if (only && strcmp(only, "total") != 0) {
        rc = 0;
        goto fail;
    }
    double all = s_run(m, schema, S_ALL, secs, &bytes);
    if (all < 0)
        goto fail;
    printf("  %-8s %10.0f msgs/s  %6.2f us/msg (decode + map + validate + encode)\n", "total",
           all, 1e6 / all);
    printf("RESULT workload=map msgs_per_s=%.0f\n", all);
    rc = 0;
fail:
    slt_map_destroy(&m);
    slt_schema_destroy(&schema);
    return rc;
}
