/*  fuzz_routes - libFuzzer target for slt_route. Input: TABLE "\n---\n"
 *  TOPIC "\n" PAYLOAD. The table is compiled with a resolver that knows
 *  one mapping and gives topics a made-up schema (a hash of each path
 *  decides its types); when it compiles, the message is evaluated as JSON
 *  and as CSV. Checks: ERR NUL-terminated inside its length and empty
 *  exactly on success, documented codes, steps in route order naming
 *  routes of the table, outcomes and what they carry consistent, a table
 *  equal to itself with an empty diff. One thread.  */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "slt_route.h"

#define S_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_routes: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

#define S_ERR 4096
#define S_GUARD 64

static slt_map_t *s_map;

static int s_types(void *arg, const char *path, unsigned *types)
{
    uint32_t h = 2166136261u;
    (void) arg;
    for (const char *p = path; *p; p++)
        h = (h ^ (uint8_t) *p) * 16777619u;
    if (strcmp(path, "$") != 0 && h % 4 == 0)
        return SL_ENOTFOUND;
    *types = (h >> 8) & SLT_MAP_T_ANY;
    return 0;
}

static int s_mapping(void *arg, const char *name, const slt_map_t **map)
{
    (void) arg;
    if (s_map && strcmp(name, "m") == 0) {
        *map = s_map;
        return 0;
    }
    return SL_ENOTFOUND;
}

static int s_schema(void *arg, const char *topic, slt_map_types_fn **types, void **targ,
                    const char **subject)
{
    (void) arg;
    if (strncmp(topic, "s.", 2) != 0)
        return SL_ENOTFOUND;
    *types = s_types;
    *targ = NULL;
    *subject = topic[2] == 'a' ? "a.order@1" : "b.order@1";
    return 0;
}

static void s_check_result(const slt_route_table_t *t, const slt_route_result_t *res)
{
    size_t n = slt_route_count(t);
    for (size_t k = 0; k < res->nsteps; k++) {
        const slt_route_step_t *st = &res->steps[k];
        S_CHECK(st->route < n);
        S_CHECK(k == 0 || res->steps[k - 1].route < st->route);
        switch (st->outcome) {
        case SLT_ROUTE_FAILED:
            S_CHECK(st->reason && st->reason[0] && !st->output);
            break;
        case SLT_ROUTE_SKIPPED:
            S_CHECK(!st->reason && !st->output);
            break;
        case SLT_ROUTE_FIRED:
            if (st->action == SLT_ROUTE_DLQ)
                S_CHECK(st->reason != NULL);
            if (st->action == SLT_ROUTE_DELIVER) {
                S_CHECK(st->ntargets > 0 && st->targets);
                S_CHECK(!st->mapping == !st->output);
                S_CHECK(!st->output || cJSON_IsObject(st->output));
            }
            break;
        default:
            S_CHECK(0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char map_yaml[] = "name: m\nfrom: a.order@1\nto: c.order@1\n"
                                   "drop_if: $.test == true\nmap:\n  id: $.id\n";
    if (!s_map)
        S_CHECK(slt_map_compile(map_yaml, sizeof map_yaml - 1, "m.yaml", NULL, NULL, &s_map,
                                NULL, 0) == 0);
    const char *text = (const char *) data;
    size_t ylen = size;
    for (size_t k = 0; k + 5 <= size; k++)
        if (memcmp(text + k, "\n---\n", 5) == 0) {
            ylen = k;
            break;
        }
    char topic[300] = "s.a";
    const char *payload = "{}";
    size_t plen = 2;
    if (ylen < size) {
        const char *rest = text + ylen + 5, *end = text + size;
        const char *nl = memchr(rest, '\n', (size_t) (end - rest));
        size_t tl = (size_t) ((nl ? nl : end) - rest);
        if (tl < sizeof topic && !memchr(rest, '\0', tl)) {
            memcpy(topic, rest, tl);
            topic[tl] = '\0';
        }
        payload = nl ? nl + 1 : end;
        plen = (size_t) (end - payload);
    }
    slt_route_resolver_t res = { s_mapping, s_schema, NULL };
    char err[S_ERR + S_GUARD];
    memset(err, 0xA5, sizeof err);
    slt_route_table_t *t = (slt_route_table_t *) 1;
    int rc = slt_route_compile(text, ylen, "fuzz.yaml", &res, &t, err, S_ERR);
    S_CHECK(rc == 0 || rc == SL_EINVAL || rc == SL_ETOOBIG || rc == SL_ENOMEM);
    S_CHECK(memchr(err, '\0', S_ERR) != NULL);
    for (int k = 0; k < S_GUARD; k++)
        S_CHECK((unsigned char) err[S_ERR + k] == 0xA5);
    S_CHECK((rc == 0) == (err[0] == '\0'));
    if (rc != 0) {
        S_CHECK(t == NULL);
        return 0;
    }
    S_CHECK(t != NULL);
    for (size_t k = 0; k < slt_route_count(t); k++)
        S_CHECK(slt_route_name(t, k) != NULL);
    cJSON *meta = cJSON_CreateObject();
    S_CHECK(meta && cJSON_AddStringToObject(meta, "topic", topic)
            && cJSON_AddNumberToObject(meta, "offset", 7));
    slt_route_result_t out = { 0 };
    static const char *const cts[] = { NULL, "text/csv", "text/logfmt" };
    for (size_t c = 0; c < 3; c++) {
        slt_route_msg_t msg = { .topic = topic, .payload = payload, .len = plen,
                                .content_type = cts[c], .meta = meta };
        rc = slt_route_eval(t, &msg, &out);
        S_CHECK(rc == 0 || rc == SL_ENOMEM);
        if (rc == 0)
            s_check_result(t, &out);
    }
    slt_route_result_free(&out);
    cJSON_Delete(meta);
    char *d = slt_route_diff(t, t);
    S_CHECK(d && strcmp(d, "(no change)\n") == 0);
    free(d);
    S_CHECK(slt_route_equal(t, t));
    d = slt_route_diff(NULL, t);
    S_CHECK(d != NULL);
    free(d);
    slt_route_destroy(&t);
    S_CHECK(t == NULL);
    return 0;
}
