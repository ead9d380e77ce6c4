/*  console_api_dlq - the API's dead letters (docs/console.md): the _dlq.
 *  topics with what remains in each, one topic's dead letters with their
 *  reason and original topic, redrive and remove. Redrive is one by one
 *  in the order asked, each sl_dlq_redrive (read, publish to the original
 *  topic, wait for the durable confirm, then remove), so an answer lost
 *  half way loses no message: what was not redriven is still listed. On
 *  libmicrohttpd's threads, under the identity's lock.  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "console_int.h"
#include "console_json.h"
#include "console_read.h"

#define S_PREFIX "_dlq."
#define S_SCHEMA_PREFIX "_dlq.schema."
#define S_MAX_OFFSETS 1000          /* offsets in one redrive or remove */

static bool s_is_dlq(console_req_t *r, const char *topic)
{
    if (strncmp(topic, S_PREFIX, strlen(S_PREFIX)) == 0)
        return true;
    console_answer_error(r, 400, "invalid", "%s is not a dead-letter topic (their "
                         "names start with %s)", topic, S_PREFIX);
    return false;
}

void console_api_dlq(console_req_t *r)
{
    sl_client_t *client = console_client(r);
    sl_topic_info_t *topics = NULL;
    sl_msg_t **msgs = NULL;
    size_t n = 0, i, k;
    uint64_t next, remaining;
    cJSON *o, *arr, *t;
    int rc = sl_stats(client, &topics, &n, NULL, NULL);

    if (rc != 0) {
        console_fail_sl(r, rc, "cannot list the topics");
        return;
    }
    o = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(o, "topics");
    for (i = 0; i < n; i++) {
        if (strncmp(topics[i].name, S_PREFIX, strlen(S_PREFIX)) != 0)
            continue;
        /* remaining from the broker's own count (removed marks of trimmed
         * messages do not count); one listed message is the cheapest ask. */
        k = 0;
        remaining = 0;
        rc = sl_dlq_list(client, topics[i].name, 0, 1, &msgs, &k, &next, &remaining);
        console_read_free(msgs, k);
        msgs = NULL;
        if (rc != 0)
            remaining = topics[i].messages > topics[i].dlq_removed
                      ? topics[i].messages - topics[i].dlq_removed : 0;
        t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", topics[i].name);
        console_add_u64(t, "remaining", remaining);
        console_add_u64(t, "removed", topics[i].dlq_removed);
        console_add_u64(t, "next_offset", topics[i].next_offset);
        cJSON_AddItemToArray(arr, t);
    }
    free(topics);
    console_ok(r, o);
}

/* Why MSG was dead-lettered: the header its kind of dead letter has. */
static const char *s_reason(const sl_msg_t *msg)
{
    static const char *const keys[] = { "dlq-reason", "schema-error", "sluice-error",
                                        "sluice-reason" };
    const char *v;
    size_t i;

    for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if ((v = sl_msg_header(msg, keys[i])) != NULL)
            return v;
    return "";
}

void console_api_dlq_messages(console_req_t *r)
{
    const char *topic = r->seg[1], *orig;
    sl_client_t *client;
    sl_msg_t **msgs = NULL;
    uint64_t from = 0, limit, next = 0, remaining = 0;
    bool from_set;
    size_t n = 0, i;
    cJSON *o, *arr, *m;
    int rc;

    if (!s_is_dlq(r, topic) || !console_paging(r, &from, &from_set, &limit))
        return;
    client = console_client(r);
    rc = sl_dlq_list(client, topic, from, (uint32_t)limit, &msgs, &n, &next, &remaining);
    if (rc != 0) {
        console_fail_sl(r, rc, "cannot list the dead letters");
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "topic", topic);
    console_add_u64(o, "next", next);
    console_add_u64(o, "remaining", remaining);
    arr = cJSON_AddArrayToObject(o, "messages");
    for (i = 0; i < n; i++) {
        m = console_msg_json(msgs[i]);
        cJSON_ReplaceItemInObject(m, "lineage",
                                  console_lineage(client, topic, sl_msg_offset(msgs[i])));
        cJSON_AddStringToObject(m, "reason", s_reason(msgs[i]));
        orig = sl_msg_header(msgs[i], "dlq-topic");
        if (!orig && strncmp(topic, S_SCHEMA_PREFIX, strlen(S_SCHEMA_PREFIX)) == 0)
            orig = topic + strlen(S_SCHEMA_PREFIX);
        if (orig)
            cJSON_AddStringToObject(m, "original_topic", orig);
        else
            cJSON_AddNullToObject(m, "original_topic");
        cJSON_AddItemToArray(arr, m);
    }
    console_read_free(msgs, n);
    console_ok(r, o);
}

/* The body's "offsets": a non-empty list of offsets into *out (caller
 * frees) and *n. False after answering 400. */
static bool s_offsets(console_req_t *r, uint64_t **out, size_t *n)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r->in, "offsets"), *it;
    uint64_t *offs;
    size_t k = 0;

    *out = NULL;
    *n = 0;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > S_MAX_OFFSETS) {
        console_answer_error(r, 400, "invalid", "\"offsets\" wants a list of at most "
                             "%d dead letters' offsets", S_MAX_OFFSETS);
        return false;
    }
    offs = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *offs);
    if (!offs) {
        console_answer_error(r, 500, "failed", "out of memory");
        return false;
    }
    cJSON_ArrayForEach(it, list) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0
            || it->valuedouble != (double)(uint64_t)it->valuedouble) {
            free(offs);
            console_answer_error(r, 400, "invalid", "\"offsets\" holds something "
                                 "that is not an offset");
            return false;
        }
        offs[k++] = (uint64_t)it->valuedouble;
    }
    *out = offs;
    *n = k;
    return true;
}

void console_api_dlq_redrive(console_req_t *r)
{
    const char *topic = r->seg[1];
    sl_client_t *client;
    uint64_t *offs = NULL, new_offset;
    size_t n = 0, i, ok = 0, denied = 0;
    char to[256], why[2048];
    int rc, first_rc = 0;
    cJSON *o, *done, *failed, *it;

    if (!s_is_dlq(r, topic) || !s_offsets(r, &offs, &n))
        return;
    client = console_client(r);
    o = cJSON_CreateObject();
    done = cJSON_AddArrayToObject(o, "redriven");
    failed = cJSON_AddArrayToObject(o, "failed");
    for (i = 0; i < n; i++) {
        to[0] = '\0';
        new_offset = 0;
        rc = sl_dlq_redrive(client, topic, offs[i], to, sizeof to, &new_offset);
        it = cJSON_CreateObject();
        console_add_u64(it, "offset", offs[i]);
        if (rc == 0) {
            ok++;
            cJSON_AddStringToObject(it, "to", to);
            console_add_u64(it, "new_offset", new_offset);
            cJSON_AddItemToArray(done, it);
            continue;
        }
        denied += rc == SL_EDENIED;
        if (!first_rc)
            first_rc = rc;
        snprintf(why, sizeof why, "%s", sl_client_last_error(client)[0]
                 ? sl_client_last_error(client) : sl_strerror(rc));
        cJSON_AddItemToObject(it, "error", console_error_obj(rc, why));
        cJSON_AddItemToArray(failed, it);
    }
    free(offs);
    /* Some went (or none was asked): 200, the failures listed. None went:
     * the first failure's status (403 when every one was denied), the
     * lists beside the error. */
    if (ok == 0 && n > 0) {
        const cJSON *first = cJSON_GetObjectItem(cJSON_GetArrayItem(failed, 0), "error");

        console_fail(r, denied == n ? SL_EDENIED : first_rc, "no dead letter was "
                     "redriven: %s", console_in_str(first, "message"));
        cJSON_AddItemToObject(r->out, "redriven", cJSON_DetachItemFromObject(o, "redriven"));
        cJSON_AddItemToObject(r->out, "failed", cJSON_DetachItemFromObject(o, "failed"));
        cJSON_Delete(o);
        return;
    }
    console_ok(r, o);
}

void console_api_dlq_remove(console_req_t *r)
{
    const char *topic = r->seg[1];
    sl_client_t *client;
    uint64_t *offs = NULL;
    size_t n = 0, i;
    char what[128];
    cJSON *o;
    int rc = 0;

    if (!s_is_dlq(r, topic) || !s_offsets(r, &offs, &n))
        return;
    client = console_client(r);
    for (i = 0; i < n && rc == 0; i++)
        rc = sl_dlq_remove(client, topic, offs[i]);
    if (rc != 0) {
        snprintf(what, sizeof what, "removed %zu, then offset %llu failed", i - 1,
                 (unsigned long long)offs[i - 1]);
        free(offs);
        console_fail_sl(r, rc, what);
        return;
    }
    free(offs);
    o = cJSON_CreateObject();
    console_add_u64(o, "removed", n);
    console_ok(r, o);
}
