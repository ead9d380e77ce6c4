/*  console_api_routes - the API's routing table (docs/console.md):
 *  versions, one version's YAML, the diff of two versions and the replay
 *  and fixtures (through `sluice`, console_exec), the routing counters,
 *  and the guarded apply: the broker's validation (a dry run), then the
 *  fixtures against the broker's mappings and schemas written to a
 *  private directory, then the replay; only when all pass the real apply
 *  with expect_version. Rollback. On libmicrohttpd's threads; the client
 *  under the identity's lock, CLI runs without it.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "console_exec.h"
#include "console_int.h"
#include "console_json.h"
#include "http_common.h"

#define S_REPLAY_LAST_DEFAULT 100
#define S_REPLAY_LAST_MAX 10000

static cJSON *s_version_json(const sl_routes_info_t *v)
{
    cJSON *o = cJSON_CreateObject();

    console_add_u64(o, "version", v->version);
    console_add_u64(o, "applied_us", v->applied_us);
    cJSON_AddStringToObject(o, "identity", v->identity);
    console_add_u64(o, "routes", v->routes);
    console_add_u64(o, "rollback_of", v->rollback_of);
    return o;
}

void console_api_routes(console_req_t *r)
{
    sl_routes_info_t *list = NULL;
    size_t n = 0, i;
    uint32_t live = 0;
    cJSON *o, *arr;
    int rc = sl_routes_list(console_client(r), &list, &n, &live);

    if (rc != 0) {
        console_fail_sl(r, rc, "cannot list the routing table's versions");
        return;
    }
    o = cJSON_CreateObject();
    console_add_u64(o, "live", live);
    arr = cJSON_AddArrayToObject(o, "versions");
    for (i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, s_version_json(&list[i]));
    sl_routes_list_free(list, n);
    console_ok(r, o);
}

void console_api_routes_version(console_req_t *r)
{
    sl_routes_info_t info;
    uint64_t version;
    cJSON *o;
    int rc;

    if (http_parse_u64(r->seg[1], &version) != 0 || version > UINT32_MAX) {
        console_answer_error(r, 400, "invalid", "a routing table version is a "
                             "number (0 = the live one), not '%s'", r->seg[1]);
        return;
    }
    memset(&info, 0, sizeof info);
    rc = sl_routes_get(console_client(r), (uint32_t)version, &info);
    if (rc != 0) {
        console_fail_sl(r, rc, "cannot read the routing table");
        return;
    }
    o = s_version_json(&info);
    cJSON_AddStringToObject(o, "yaml", info.yaml ? info.yaml : "");
    sl_routes_info_clear(&info);
    console_ok(r, o);
}

void console_api_routes_stats(console_req_t *r)
{
    sl_routing_stats_t st;
    cJSON *o, *arr, *s;
    size_t i;
    int rc;

    memset(&st, 0, sizeof st);
    rc = sl_routing_stats(console_client(r), &st);
    if (rc != 0) {
        console_fail_sl(r, rc, "cannot read the routing counters");
        return;
    }
    o = cJSON_CreateObject();
    console_add_u64(o, "version", st.version);
    console_add_u64(o, "applied_us", st.applied_us);
    console_add_u64(o, "unrouted", st.unrouted);
    arr = cJSON_AddArrayToObject(o, "routes");
    for (i = 0; i < st.nroutes; i++) {
        const sl_route_stats_t *rs = &st.routes[i];

        s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "name", rs->name);
        console_add_u64(s, "matched", rs->matched);
        console_add_u64(s, "delivered", rs->delivered);
        console_add_u64(s, "dropped", rs->dropped);
        console_add_u64(s, "dead_lettered", rs->dead_lettered);
        console_add_u64(s, "errors", rs->errors);
        cJSON_AddItemToArray(arr, s);
    }
    sl_routing_stats_clear(&st);
    console_ok(r, o);
}

/* 0 when version TEXT exists at the broker; else answers and returns the
 * code (404 for a version that was never applied). */
static int s_version_exists(console_req_t *r, const char *text)
{
    sl_routes_info_t info;
    uint64_t v;
    int rc;

    if (http_parse_u64(text, &v) != 0 || v == 0 || v > UINT32_MAX) {
        console_answer_error(r, 400, "invalid", "a= and b= want two version "
                             "numbers, not '%s'", text);
        return SL_EINVAL;
    }
    memset(&info, 0, sizeof info);
    rc = sl_routes_get(console_client(r), (uint32_t)v, &info);
    sl_routes_info_clear(&info);
    if (rc != 0)
        console_fail_sl(r, rc, "no such routing table version");
    return rc;
}

void console_api_routes_diff(console_req_t *r)
{
    const char *a = console_query(r, "a"), *b = console_query(r, "b");
    const char *args[] = { "routes", "diff", a, b, NULL };
    char dir[PATH_MAX] = "", err[1024];
    console_run_t run;
    cJSON *o;
    int rc;

    memset(&run, 0, sizeof run);
    if (!a || !b) {
        console_answer_error(r, 400, "invalid", "a= and b= want two version numbers");
        return;
    }
    if (s_version_exists(r, a) != 0 || s_version_exists(r, b) != 0)
        return;
    console_release(r);
    /* An empty directory: the CLI reads "3" as a file only when one exists. */
    rc = console_tmpdir(dir, sizeof dir, err, sizeof err);
    if (rc == 0)
        rc = console_exec(r->con, r->id, dir, args, &run, err, sizeof err);
    if (rc != 0)
        console_fail_run(r, rc, err);
    else if (run.timed_out)
        console_answer_error(r, 504, "timeout", "`sluice routes diff` did not finish");
    else if (run.exit_code != 0)
        console_answer_error(r, 502, "broker", "sluice routes diff %s %s: %s", a, b,
                             run.output);
    else {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "diff", run.output);
        console_ok(r, o);
    }
    console_run_clear(&run);
    console_tmpdir_remove(dir);
}

/* ------------------------------------------------ the broker's registry */

/* Write every registered schema version as schemas/SUBJECT@V.json and
 * every mapping as mappings/NAME.yaml in DIR, for an offline run. 0 or
 * the failing call's code with ERR. */
static int s_write_registry(sl_client_t *client, const char *dir, char *err, size_t errlen)
{
    sl_schema_info_t *subjects = NULL, one;
    sl_mapping_info_t *maps = NULL, mi;
    size_t ns = 0, nm = 0, i;
    char sub[PATH_MAX], name[PATH_MAX];
    uint32_t v;
    int rc;

    snprintf(sub, sizeof sub, "%s/schemas", dir);
    mkdir(sub, 0700);
    snprintf(sub, sizeof sub, "%s/mappings", dir);
    mkdir(sub, 0700);
    rc = sl_schema_list(client, &subjects, &ns);
    for (i = 0; rc == 0 && i < ns; i++)
        for (v = 1; rc == 0 && v <= subjects[i].versions; v++) {
            memset(&one, 0, sizeof one);
            rc = sl_schema_get(client, subjects[i].subject, v, &one);
            if (rc == SL_ENOTFOUND) {
                rc = 0;         /* a version removed meanwhile */
                continue;
            }
            snprintf(name, sizeof name, "%s/schemas", dir);
            snprintf(sub, sizeof sub, "%s@%" PRIu32 ".json", one.subject, v);
            if (rc == 0 && one.schema
                && console_write_file(name, sub, one.schema, strlen(one.schema)) != 0)
                rc = SL_ESYS;
            sl_schema_info_clear(&one);
        }
    sl_schema_list_free(subjects, ns);
    if (rc == 0)
        rc = sl_mapping_list(client, &maps, &nm);
    for (i = 0; rc == 0 && i < nm; i++) {
        memset(&mi, 0, sizeof mi);
        rc = sl_mapping_get(client, maps[i].name, &mi);
        snprintf(name, sizeof name, "%s/mappings", dir);
        snprintf(sub, sizeof sub, "%s.yaml", maps[i].name);
        if (rc == 0 && mi.yaml && console_write_file(name, sub, mi.yaml, strlen(mi.yaml)) != 0)
            rc = SL_ESYS;
        sl_mapping_info_clear(&mi);
    }
    sl_mapping_list_free(maps, nm);
    if (rc != 0)
        snprintf(err, errlen, "cannot copy the broker's schemas and mappings: %s",
                 rc == SL_ESYS ? "cannot write the temporary directory"
                 : sl_client_last_error(client)[0] ? sl_client_last_error(client)
                 : sl_strerror(rc));
    return rc;
}

/* --------------------------------------------------------- the checks */

/* The outcome of the checks: what they give the answer, and why they
 * failed. */
typedef struct {
    cJSON *check;               /* the contract's check object (owned) */
    bool ok;
    bool valid;                 /* the broker accepted the table */
} s_check_t;

/* {"ran","ok","output"} (+ "changed" for a replay). */
static cJSON *s_step(bool ran, bool ok, const char *output)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddBoolToObject(o, "ran", ran);
    cJSON_AddBoolToObject(o, "ok", ok);
    cJSON_AddStringToObject(o, "output", output ? output : "");
    return o;
}

/* Run the CLI with ARGS in DIR; a step object. *EXIT: its exit code (-1
 * when it did not run or was killed). */
static cJSON *s_run_step(console_req_t *r, const char *dir, const char *const *args,
                         int *exit_code)
{
    console_run_t run;
    char err[1024];
    cJSON *step;

    *exit_code = -1;
    if (console_exec(r->con, r->id, dir, args, &run, err, sizeof err) != 0)
        return s_step(false, false, err);
    if (run.timed_out)
        step = s_step(false, false, "(stopped: it ran out of time)");
    else {
        *exit_code = run.exit_code;
        step = s_step(true, run.exit_code == 0, run.output);
    }
    console_run_clear(&run);
    return step;
}

/* The checks of a body {"yaml","fixtures","replay_topic","last"} into
 * *out. 0, or the code of a failure that is not the table's (the answer
 * is then written). */
static int s_check(console_req_t *r, s_check_t *out)
{
    const char *yaml = console_in_str(r->in, "yaml");
    const char *fixtures = console_in_str(r->in, "fixtures");
    const char *topic = console_in_str(r->in, "replay_topic");
    char dir[PATH_MAX] = "", err[1024], last[24];
    uint64_t nlast = S_REPLAY_LAST_DEFAULT;
    uint32_t live = 0;
    char *diff = NULL;
    bool changed = false, want_fx, want_replay;
    cJSON *fx = NULL, *replay = NULL;
    int rc, code;

    memset(out, 0, sizeof *out);
    if (!yaml || !*yaml) {
        console_answer_error(r, 400, "invalid", "\"yaml\" wants the routing table's text");
        return SL_EINVAL;
    }
    if (cJSON_GetObjectItemCaseSensitive(r->in, "last")
        && (console_in_u64(r->in, "last", &nlast) != 0 || nlast == 0
            || nlast > S_REPLAY_LAST_MAX)) {
        console_answer_error(r, 400, "invalid", "\"last\" wants 1 to %d",
                             S_REPLAY_LAST_MAX);
        return SL_EINVAL;
    }
    want_fx = fixtures && *fixtures;
    want_replay = topic && *topic;
    out->check = cJSON_CreateObject();
    rc = sl_routes_apply(console_client(r), yaml, strlen(yaml), true, 0, &live,
                         &diff, &changed);
    if (rc != 0 && rc != SL_EINVAL) {
        console_fail_sl(r, rc, "cannot validate the routing table");
        goto fail;
    }
    out->valid = rc == 0;
    cJSON_AddStringToObject(out->check, "errors", rc == 0 ? ""
                            : sl_client_last_error(console_client(r)));
    cJSON_AddStringToObject(out->check, "diff", diff ? diff : "");
    free(diff);
    if (out->valid && (want_fx || want_replay)) {
        rc = console_tmpdir(dir, sizeof dir, err, sizeof err);
        if (rc == 0 && console_write_file(dir, "table.yaml", yaml, strlen(yaml)) != 0) {
            snprintf(err, sizeof err, "cannot write the table in the temporary directory");
            rc = SL_ESYS;
        }
        if (rc == 0 && want_fx)
            rc = s_write_registry(console_client(r), dir, err, sizeof err);
        if (rc == 0 && want_fx
            && console_write_file(dir, "fixtures.yaml", fixtures, strlen(fixtures)) != 0) {
            snprintf(err, sizeof err, "cannot write the fixtures in the temporary directory");
            rc = SL_ESYS;
        }
        if (rc != 0) {
            console_fail_run(r, rc, err);
            goto fail;
        }
        console_release(r);
    }
    if (want_fx && out->valid) {
        const char *args[] = { "routes", "test", "fixtures.yaml", "--routes", "table.yaml",
                               "--mappings", "mappings", "--schemas", "schemas", NULL };

        fx = s_run_step(r, dir, args, &code);
    }
    else
        fx = s_step(false, !want_fx, want_fx ? "(not run: the table is not valid)" : "");
    if (want_replay && out->valid) {
        const char *args[] = { "routes", "diff", "table.yaml", "--replay", topic,
                               "--last", last, NULL };

        snprintf(last, sizeof last, "%" PRIu64, nlast);
        replay = s_run_step(r, dir, args, &code);
        /* Exit 1: it ran and some message would change. */
        cJSON_ReplaceItemInObject(replay, "ran", cJSON_CreateBool(code == 0 || code == 1));
        cJSON_ReplaceItemInObject(replay, "ok", cJSON_CreateBool(code == 0 || code == 1));
        cJSON_AddBoolToObject(replay, "changed", code == 1);
    }
    else {
        replay = s_step(false, !want_replay, want_replay ? "(not run: the table is "
                        "not valid)" : "");
        cJSON_AddBoolToObject(replay, "changed", false);
    }
    out->ok = out->valid && cJSON_IsTrue(cJSON_GetObjectItem(fx, "ok"))
           && cJSON_IsTrue(cJSON_GetObjectItem(replay, "ok"));
    cJSON_AddItemToObject(out->check, "fixtures", fx);
    cJSON_AddItemToObject(out->check, "replay", replay);
    /* "ok" first in the object, as the contract shows it. */
    cJSON_AddItemToObject(out->check, "ok", cJSON_CreateBool(out->ok));
    console_tmpdir_remove(dir);
    return 0;
fail:
    console_tmpdir_remove(dir);
    cJSON_Delete(out->check);
    out->check = NULL;
    return rc;
}

void console_api_routes_check(console_req_t *r)
{
    s_check_t c;

    if (s_check(r, &c) != 0)
        return;
    console_ok(r, c.check);
}

/* The answer of a refused change: the error, and the check beside it. */
static void s_refuse(console_req_t *r, s_check_t *c)
{
    const char *why = !c->valid ? "the broker refused the table"
                    : !cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(c->check,
                                    "fixtures"), "ok")) ? "a fixture failed"
                    : "the replay could not run";

    console_answer_error(r, c->valid ? 409 : 400, c->valid ? "conflict" : "invalid",
                         "not applied: %s (the check is in \"check\")", why);
    cJSON_AddItemToObject(r->out, "check", c->check);
    c->check = NULL;
}

/* Answer {"version","diff"} for an applied change. */
static void s_applied(console_req_t *r, uint32_t version, char *diff)
{
    cJSON *o = cJSON_CreateObject();

    console_add_u64(o, "version", version);
    cJSON_AddStringToObject(o, "diff", diff ? diff : "");
    free(diff);
    console_ok(r, o);
}

/* "expect_version": N into *out (absent: 0, any). False after 400. */
static bool s_expect(console_req_t *r, uint32_t *out)
{
    uint64_t v = 0;

    if (cJSON_GetObjectItemCaseSensitive(r->in, "expect_version")
        && (console_in_u64(r->in, "expect_version", &v) != 0 || v > UINT32_MAX)) {
        console_answer_error(r, 400, "invalid", "\"expect_version\" wants the live "
                             "version number");
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

void console_api_routes_apply(console_req_t *r)
{
    const char *yaml = console_in_str(r->in, "yaml");
    uint32_t expect, version = 0;
    char *diff = NULL;
    s_check_t c;
    int rc;

    if (!s_expect(r, &expect) || s_check(r, &c) != 0)
        return;
    if (!c.ok) {
        s_refuse(r, &c);
        return;
    }
    cJSON_Delete(c.check);
    rc = sl_routes_apply(console_client(r), yaml, strlen(yaml), false, expect,
                         &version, &diff, NULL);
    if (rc != 0) {
        console_fail_sl(r, rc, "the routing table was not applied");
        return;
    }
    s_applied(r, version, diff);
}

void console_api_routes_rollback(console_req_t *r)
{
    uint32_t expect, version = 0;
    uint64_t to;
    char *diff = NULL;
    int rc;

    if (!s_expect(r, &expect))
        return;
    if (console_in_u64(r->in, "version", &to) != 0 || to == 0 || to > UINT32_MAX) {
        console_answer_error(r, 400, "invalid", "\"version\" wants the version to "
                             "roll back to");
        return;
    }
    rc = sl_routes_rollback(console_client(r), (uint32_t)to, expect, &version, &diff, NULL);
    if (rc != 0) {
        console_fail_sl(r, rc, "the routing table was not rolled back");
        return;
    }
    s_applied(r, version, diff);
}
