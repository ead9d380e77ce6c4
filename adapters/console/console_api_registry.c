/*  console_api_registry - the API's schemas and mappings (docs/console.md):
 *  lists, one schema version with its JSON Schema, one mapping with its
 *  YAML, and running a mapping's fixtures through `sluice mapping test`
 *  (console_exec). On libmicrohttpd's threads; the client under the
 *  identity's lock, the CLI run without it.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "console_exec.h"
#include "console_int.h"
#include "console_json.h"
#include "http_common.h"

void console_api_schemas(console_req_t *r)
{
    sl_schema_info_t *list = NULL;
    size_t n = 0, i;
    uint32_t v;
    cJSON *o, *arr, *s, *vs;
    int rc = sl_schema_list(console_client(r), &list, &n);

    if (rc != 0) {
        console_fail_sl(r, rc, "cannot list the schemas");
        return;
    }
    o = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(o, "schemas");
    for (i = 0; i < n; i++) {
        s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "subject", list[i].subject);
        console_add_u64(s, "latest", list[i].version);
        vs = cJSON_AddArrayToObject(s, "versions");
        for (v = 1; v <= list[i].versions; v++)
            cJSON_AddItemToArray(vs, cJSON_CreateNumber(v));
        cJSON_AddStringToObject(s, "compatibility", list[i].compat);
        console_add_u64(s, "created_us", list[i].created_us);
        cJSON_AddItemToArray(arr, s);
    }
    sl_schema_list_free(list, n);
    console_ok(r, o);
}

/* ?version=N (absent: 0, the latest). False after answering 400. */
static bool s_version_arg(console_req_t *r, uint32_t *version)
{
    const char *v = console_query(r, "version");
    uint64_t n = 0;

    if (v && (http_parse_u64(v, &n) != 0 || n > UINT32_MAX)) {
        console_answer_error(r, 400, "invalid", "version= wants a number, not '%s'", v);
        return false;
    }
    *version = (uint32_t)n;
    return true;
}

void console_api_schema(console_req_t *r)
{
    sl_schema_info_t info;
    uint32_t version;
    cJSON *o, *schema;
    int rc;

    if (!s_version_arg(r, &version))
        return;
    memset(&info, 0, sizeof info);
    rc = sl_schema_get(console_client(r), r->seg[1], version, &info);
    if (rc != 0) {
        console_fail_sl(r, rc, "cannot read the schema");
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "subject", info.subject);
    console_add_u64(o, "version", info.version);
    console_add_u64(o, "versions", info.versions);
    schema = info.schema ? cJSON_Parse(info.schema) : NULL;
    cJSON_AddItemToObject(o, "schema", schema ? schema : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "compatibility", info.compat);
    console_add_u64(o, "created_us", info.created_us);
    sl_schema_info_clear(&info);
    console_ok(r, o);
}

void console_api_mappings(console_req_t *r)
{
    sl_mapping_info_t *list = NULL;
    size_t n = 0, i;
    cJSON *o, *arr, *m;
    int rc = sl_mapping_list(console_client(r), &list, &n);

    if (rc != 0) {
        console_fail_sl(r, rc, "cannot list the mappings");
        return;
    }
    o = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(o, "mappings");
    for (i = 0; i < n; i++) {
        m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "name", list[i].name);
        console_add_u64(m, "version", list[i].version);
        cJSON_AddStringToObject(m, "from", list[i].from);
        cJSON_AddStringToObject(m, "to", list[i].to);
        console_add_u64(m, "created_us", list[i].created_us);
        cJSON_AddItemToArray(arr, m);
    }
    sl_mapping_list_free(list, n);
    console_ok(r, o);
}

void console_api_mapping(console_req_t *r)
{
    sl_mapping_info_t info;
    cJSON *o;
    int rc;

    memset(&info, 0, sizeof info);
    rc = sl_mapping_get(console_client(r), r->seg[1], &info);
    if (rc != 0) {
        console_fail_sl(r, rc, "cannot read the mapping");
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", info.name);
    console_add_u64(o, "version", info.version);
    cJSON_AddStringToObject(o, "from", info.from);
    cJSON_AddStringToObject(o, "to", info.to);
    console_add_u64(o, "created_us", info.created_us);
    cJSON_AddStringToObject(o, "yaml", info.yaml ? info.yaml : "");
    sl_mapping_info_clear(&info);
    console_ok(r, o);
}

/* "N passed, M failed" in OUTPUT (the CLI's last line). */
static void s_counts(const char *output, unsigned *passed, unsigned *failed)
{
    const char *p = output, *hit = NULL;

    while ((p = strstr(p, " passed, ")) != NULL)
        hit = p++;
    *passed = *failed = 0;
    if (!hit)
        return;
    while (hit > output && hit[-1] >= '0' && hit[-1] <= '9')
        hit--;
    if (sscanf(hit, "%u passed, %u failed", passed, failed) != 2)
        *passed = *failed = 0;
}

void console_api_mapping_test(console_req_t *r)
{
    const char *fixtures = console_in_str(r->in, "fixtures");
    const char *args[] = { "mapping", "test", "mapping.test.yaml", NULL };
    char dir[PATH_MAX], err[1024], *name_json = NULL, *file = NULL;
    console_run_t run;
    unsigned passed, failed;
    size_t len;
    cJSON *name, *o;
    int rc;

    memset(&run, 0, sizeof run);
    dir[0] = '\0';
    if (!fixtures) {
        console_answer_error(r, 400, "invalid", "\"fixtures\" wants the YAML text "
                             "of a mapping fixture file (its cases:, without "
                             "mapping:)");
        return;
    }
    /* The mapping is the broker's: `mapping: NAME` names no file in the
     * empty directory, so the CLI fetches it (and its schemas). */
    name = cJSON_CreateString(r->seg[1]);
    name_json = name ? cJSON_PrintUnformatted(name) : NULL;
    cJSON_Delete(name);
    len = strlen(fixtures) + (name_json ? strlen(name_json) : 0) + 16;
    file = malloc(len);
    if (!name_json || !file) {
        console_answer_error(r, 500, "failed", "out of memory");
        goto done;
    }
    snprintf(file, len, "mapping: %s\n%s\n", name_json, fixtures);
    rc = console_tmpdir(dir, sizeof dir, err, sizeof err);
    if (rc == 0 && console_write_file(dir, "mapping.test.yaml", file, strlen(file)) != 0) {
        snprintf(err, sizeof err, "cannot write the fixtures in the temporary directory");
        rc = SL_ESYS;
    }
    if (rc == 0) {
        console_release(r);
        rc = console_exec(r->con, r->id, dir, args, &run, err, sizeof err);
    }
    if (rc != 0) {
        console_fail_run(r, rc, err);
        goto done;
    }
    if (run.timed_out) {
        console_answer_error(r, 504, "timeout", "`sluice mapping test` did not "
                             "finish in time: %s", run.output);
        goto done;
    }
    s_counts(run.output, &passed, &failed);
    o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", run.exit_code == 0);
    cJSON_AddStringToObject(o, "output", run.output);
    console_add_u64(o, "passed", passed);
    console_add_u64(o, "failed", failed);
    console_ok(r, o);
done:
    console_run_clear(&run);
    console_tmpdir_remove(dir);
    free(name_json);
    free(file);
}
