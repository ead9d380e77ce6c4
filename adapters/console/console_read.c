/*  console_read - stored messages through an ephemeral subscription, and
 *  lineage from the trace (console_read.h). The subscription starts at an
 *  offset with a credit of the messages wanted, so the broker sends no
 *  more than asked; it is closed before the call returns. Thread: the one
 *  holding the client's lock.  */
#include "console_read.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "console_json.h"

int console_topic_pos(sl_client_t *client, const char *topic, console_topic_pos_t *out)
{
    sl_topic_info_t *topics = NULL;
    size_t n = 0, i;
    int rc = sl_stats(client, &topics, &n, NULL, NULL);

    if (rc != 0)
        return rc;
    rc = SL_ENOTFOUND;
    for (i = 0; i < n; i++)
        if (strcmp(topics[i].name, topic) == 0) {
            out->first_offset = topics[i].first_offset;
            out->next_offset = topics[i].next_offset;
            out->messages = topics[i].messages;
            rc = 0;
        }
    free(topics);
    return rc;
}

static uint64_t s_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void console_read_free(sl_msg_t **msgs, size_t n)
{
    size_t i;

    for (i = 0; msgs && i < n; i++)
        sl_msg_destroy(&msgs[i]);
    free(msgs);
}

int console_read(sl_client_t *client, const char *topic, uint64_t from,
                 uint64_t end, size_t max, int timeout_ms, sl_msg_t ***out,
                 size_t *n)
{
    sl_sub_options_t so;
    sl_sub_t *sub = NULL;
    sl_msg_t **msgs = NULL, *msg = NULL;
    uint64_t last = s_now_ms();
    size_t got = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (from >= end || max == 0)
        return 0;
    msgs = calloc(max, sizeof *msgs);
    if (!msgs)
        return SL_ENOMEM;
    sl_sub_options_init(&so);
    so.pattern = topic;
    so.ephemeral = true;
    so.start = SL_START_OFFSET;
    so.start_offset = from;
    so.credit = max > 1000 ? 1000 : (uint32_t)max;
    rc = sl_subscribe(client, &so, &sub);
    if (rc != 0)
        goto fail;
    while (got < max && s_now_ms() - last < (uint64_t)timeout_ms) {
        rc = sl_sub_next(sub, 100, &msg);
        if (rc == SL_ETIMEOUT || rc == SL_EUNAVAIL || rc == SL_ENOSESSION)
            continue;
        if (rc != 0)
            break;
        last = s_now_ms();
        if (sl_msg_offset(msg) < from || sl_msg_offset(msg) >= end) {
            bool past = sl_msg_offset(msg) >= end;

            sl_msg_destroy(&msg);
            if (past)
                break;
            continue;
        }
        msgs[got++] = msg;
        msg = NULL;
        if (sl_msg_offset(msgs[got - 1]) + 1 >= end)
            break;
    }
    rc = 0;
    /* Ephemeral: nothing is kept at the broker, so a close that fails
     * loses nothing. */
    sl_unsubscribe(&sub, false);
    *out = msgs;
    *n = got;
    return 0;
fail:
    free(msgs);
    return rc;
}

cJSON *console_lineage(sl_client_t *client, const char *topic, uint64_t offset)
{
    sl_trace_t t;
    cJSON *o;

    memset(&t, 0, sizeof t);
    if (sl_trace(client, topic, offset, &t) != 0 || !t.derived) {
        sl_trace_clear(&t);
        return cJSON_CreateNull();
    }
    o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "source_topic", t.source_topic);
        console_add_u64(o, "source_offset", t.source_offset);
        cJSON_AddStringToObject(o, "route", t.route);
        cJSON_AddStringToObject(o, "mapping", t.mapping);
        console_add_u64(o, "table_version", t.lineage_version);
        console_add_u64(o, "mapping_version", t.mapping_version);
    }
    sl_trace_clear(&t);
    return o ? o : cJSON_CreateNull();
}
