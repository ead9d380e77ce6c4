/*  console_api_audit - the API's audit trail (docs/console.md): the last
 *  records of the broker's _audit topic, newest first, each as
 *  {"offset","at","identity","action","target","outcome","detail"}.
 *  Reading _audit takes a subscribe grant that names it (admins have
 *  one). On libmicrohttpd's threads, under the identity's lock.  */
#include <stdio.h>
#include <string.h>
#include "console_int.h"
#include "console_json.h"
#include "console_read.h"
#include "http_common.h"

#define S_TOPIC "_audit"
#define S_DEFAULT_LIMIT 100
#define S_MAX_LIMIT 1000
#define S_READ_IDLE_MS 2000

/* The record's time as RFC 3339: its "ts" (text, or a number of
 * microseconds, milliseconds or seconds told apart by size), else the
 * message's ingest time. */
static void s_at(const cJSON *rec, uint64_t ingest_us, char *buf, size_t len)
{
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(rec, "ts");
    double v;

    if (cJSON_IsString(ts)) {
        snprintf(buf, len, "%s", ts->valuestring);
        return;
    }
    if (cJSON_IsNumber(ts) && (v = ts->valuedouble) > 0)
        ingest_us = v > 1e14 ? (uint64_t)v
                  : v > 1e11 ? (uint64_t)(v * 1e3) : (uint64_t)(v * 1e6);
    console_time_format(ingest_us, buf, len);
}

/* Field KEY of REC as text ("" when absent or null). */
static void s_field(cJSON *o, const char *name, const cJSON *rec, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    char *text;

    if (cJSON_IsString(v))
        cJSON_AddStringToObject(o, name, v->valuestring);
    else if (v && !cJSON_IsNull(v) && (text = cJSON_PrintUnformatted(v))) {
        cJSON_AddStringToObject(o, name, text);
        cJSON_free(text);
    }
    else
        cJSON_AddStringToObject(o, name, "");
}

void console_api_audit(console_req_t *r)
{
    const char *l = console_query(r, "limit");
    uint64_t limit = S_DEFAULT_LIMIT, from;
    console_topic_pos_t pos;
    sl_client_t *client;
    sl_msg_t **msgs = NULL;
    size_t n = 0, i, len;
    char at[64];
    cJSON *o, *list, *rec, *item;
    int rc;

    if (l && (http_parse_u64(l, &limit) != 0 || limit == 0 || limit > S_MAX_LIMIT)) {
        console_answer_error(r, 400, "invalid", "limit= wants 1 to %d, not '%s'",
                             S_MAX_LIMIT, l);
        return;
    }
    client = console_client(r);
    rc = console_topic_pos(client, S_TOPIC, &pos);
    if (rc == SL_ENOTFOUND) {
        console_fail(r, SL_EDENIED, "the broker shows no %s topic to identity %s: "
                     "reading it takes a subscribe grant that names %s",
                     S_TOPIC, r->id->name, S_TOPIC);
        return;
    }
    if (rc != 0) {
        console_fail_sl(r, rc, "cannot read the topic list");
        return;
    }
    from = pos.next_offset > limit ? pos.next_offset - limit : 0;
    if (from < pos.first_offset)
        from = pos.first_offset;
    rc = console_read(client, S_TOPIC, from, pos.next_offset, (size_t)limit,
                      S_READ_IDLE_MS, &msgs, &n);
    if (rc != 0) {
        console_fail_sl(r, rc, "cannot read the audit trail");
        return;
    }
    o = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(o, "records");
    for (i = n; i-- > 0;) {
        const char *payload = sl_msg_payload(msgs[i], &len);

        rec = cJSON_ParseWithLength(payload, len);
        item = cJSON_CreateObject();
        console_add_u64(item, "offset", sl_msg_offset(msgs[i]));
        s_at(rec, sl_msg_ingest_us(msgs[i]), at, sizeof at);
        cJSON_AddStringToObject(item, "at", at);
        s_field(item, "identity", rec, "identity");
        s_field(item, "action", rec, "action");
        s_field(item, "target", rec, "target");
        s_field(item, "outcome", rec, "result");
        s_field(item, "detail", rec, "detail");
        cJSON_AddItemToArray(list, item);
        cJSON_Delete(rec);
    }
    console_read_free(msgs, n);
    console_ok(r, o);
}
