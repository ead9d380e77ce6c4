/*  sl_dlq - cursors and dead letters (sluice.h, "cursors, dead letters";
 *  docs/operations.md, "Dead letters and cursors"): sl_sub_seek,
 *  sl_dlq_list and sl_dlq_remove are one admin call each (sli_admin_call);
 *  sl_dlq_redrive is the client's own: list the one dead letter, publish it
 *  back where it came from with a msg_id the broker dedups, then remove
 *  it. Owns nothing beyond each call. Client thread only.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sl_client_int.h"
#include "sl_session.h"
#include "sl_sub.h"

#define S_LIST_MAX 1000
#define S_DLQ_PREFIX "_dlq."
#define S_SCHEMA_PREFIX "_dlq.schema."
#define S_REDRIVE_TIMEOUT_MS 30000

static bool s_dlq_topic(const char *topic)
{
    return topic && strncmp(topic, S_DLQ_PREFIX, strlen(S_DLQ_PREFIX)) == 0
        && slc_topic_validate(topic, true) == 0;
}

/* ------------------------------------------------------------------ seek */

static int s_moved_copy(const Sluice__Frame *reply, void *arg)
{
    uint32_t *moved = arg;
    if (moved)
        *moved = reply->sub_seek_reply->moved;
    return 0;
}

int sl_sub_seek(sl_client_t *self, const char *name, const char *topic,
                sl_start_t start, uint64_t offset, uint64_t time_us, uint32_t *moved)
{
    if (moved)
        *moved = 0;
    if (!name || !*name || (topic && *topic && slc_topic_validate(topic, true) != 0)
        || (start != SL_START_OFFSET && start != SL_START_TIME && start != SL_START_EARLIEST
            && start != SL_START_LATEST))
        return SL_EINVAL;
    Sluice__SubSeek ss = SLUICE__SUB_SEEK__INIT;
    ss.name = (char *) name;
    ss.topic = (char *) (topic ? topic : "");
    ss.start = (Sluice__StartKind) start;
    ss.offset = offset;
    ss.time_us = time_us;
    return sli_admin_call(self, SLUICE__FRAME__BODY_SUB_SEEK, &ss,
                          SLUICE__FRAME__BODY_SUB_SEEK_REPLY, s_moved_copy, moved);
}

/* ------------------------------------------------------------------ list */

typedef struct {
    sl_msg_t ***out;
    size_t *n;
    uint64_t *next;
    uint64_t *remaining;
} s_list_out_t;

static void s_msgs_free(sl_msg_t **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        sl_msg_destroy(&v[i]);
    free(v);
}

static int s_list_copy(const Sluice__Frame *reply, void *arg)
{
    const s_list_out_t *o = arg;
    const Sluice__DlqListReply *r = reply->dlq_list_reply;
    sl_msg_t **v = calloc(r->n_items + 1, sizeof *v);
    size_t n = 0;
    int rc = v ? 0 : SL_ENOMEM;
    for (; rc == 0 && n < r->n_items; n++) {
        const Sluice__Delivery *d = r->items[n];
        rc = sli_msg_detached(d->topic, d->topic_id, d->offset, d->envelope.data,
                              d->envelope.len, &v[n]);
    }
    if (rc) {
        s_msgs_free(v, n);
        return rc;
    }
    *o->out = v;
    *o->n = n;
    if (o->next)
        *o->next = r->next;
    if (o->remaining)
        *o->remaining = r->remaining;
    return 0;
}

int sl_dlq_list(sl_client_t *self, const char *topic, uint64_t from, uint32_t max,
                sl_msg_t ***out, size_t *n, uint64_t *next, uint64_t *remaining)
{
    if (!out || !n)
        return SL_EINVAL;
    *out = NULL;
    *n = 0;
    if (!s_dlq_topic(topic) || max > S_LIST_MAX)
        return SL_EINVAL;
    Sluice__DlqList dl = SLUICE__DLQ_LIST__INIT;
    dl.topic = (char *) topic;
    dl.from = from;
    dl.max = max;
    s_list_out_t o = { out, n, next, remaining };
    return sli_admin_call(self, SLUICE__FRAME__BODY_DLQ_LIST, &dl,
                          SLUICE__FRAME__BODY_DLQ_LIST_REPLY, s_list_copy, &o);
}

int sl_dlq_remove(sl_client_t *self, const char *topic, uint64_t offset)
{
    if (!s_dlq_topic(topic))
        return SL_EINVAL;
    Sluice__DlqRemove dr = SLUICE__DLQ_REMOVE__INIT;
    dr.topic = (char *) topic;
    dr.offset = offset;
    return sli_admin_call(self, SLUICE__FRAME__BODY_DLQ_REMOVE, &dr,
                          SLUICE__FRAME__BODY_OK, NULL, NULL);
}

/* --------------------------------------------------------------- redrive */

/* Headers the dead-lettering added (dlq-*) and the old msg-id: not
 * published again. */
static bool s_dropped_header(const char *key)
{
    return strncmp(key, "dlq-", 4) == 0 || strcmp(key, "msg-id") == 0
        || strcmp(key, "sluice-redriven-from") == 0;
}

/* Where dead letter M of TOPIC came from into TO (TOLEN bytes), or a code
 * with the reason in the last error. */
static int s_origin(sl_client_t *self, const char *topic, const sl_msg_t *m, char *to,
                    size_t tolen)
{
    const char *from = NULL;
    if (strcmp(topic, "_dlq.routes") == 0) {
        sli_error_set(self->sess, "%s legs are not redriven: publishing the source again "
                      "would route it again; use `sluice routes backfill`", topic);
        return SL_EINVAL;
    }
    if (strncmp(topic, S_SCHEMA_PREFIX, strlen(S_SCHEMA_PREFIX)) == 0)
        from = topic + strlen(S_SCHEMA_PREFIX);
    else
        from = sl_msg_header(m, "dlq-topic");
    if (!from || !*from || slc_topic_validate(from, false) != 0) {
        sli_error_set(self->sess, "%s@%" PRIu64 ": no original topic to redrive to (the "
                      "dlq-topic header is %s)", topic, sl_msg_offset(m),
                      from && *from ? from : "missing");
        return SL_EINVAL;
    }
    snprintf(to, tolen, "%s", from);
    return 0;
}

int sl_dlq_redrive(sl_client_t *self, const char *topic, uint64_t offset,
                   char *to, size_t to_len, uint64_t *new_offset)
{
    sl_msg_t **msgs = NULL;
    sl_header_t *hs = NULL;
    size_t n = 0;
    char origin[SLC_TOPIC_MAX + 1], from[SLC_TOPIC_MAX + 32], msg_id[SLC_TOPIC_MAX + 48];
    if (to && to_len)
        to[0] = 0;
    if (!s_dlq_topic(topic))
        return SL_EINVAL;
    int rc = sl_dlq_list(self, topic, offset, 1, &msgs, &n, NULL, NULL);
    if (rc == 0 && (n == 0 || sl_msg_offset(msgs[0]) != offset)) {
        sli_error_set(self->sess, "no dead letter %s@%" PRIu64 " to redrive: not stored, or "
                      "removed (redriven) already", topic, offset);
        rc = SL_ENOTFOUND;
    }
    if (rc == 0)
        rc = s_origin(self, topic, msgs[0], origin, sizeof origin);
    size_t nh = rc ? 0 : sl_msg_header_count(msgs[0]), k = 0;
    if (rc == 0 && !(hs = calloc(nh + 1, sizeof *hs)))
        rc = SL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < nh; i++) {
        const char *key, *value;
        if (sl_msg_header_at(msgs[0], i, &key, &value) == 0 && !s_dropped_header(key))
            hs[k++] = (sl_header_t) { key, value };
    }
    if (rc == 0) {
        snprintf(from, sizeof from, "%s@%" PRIu64, topic, offset);
        snprintf(msg_id, sizeof msg_id, "redrive:%s", from);
        hs[k++] = (sl_header_t) { "sluice-redriven-from", from };
        sl_message_t msg = { 0 };
        size_t len = 0;
        msg.topic = origin;
        msg.payload = sl_msg_payload(msgs[0], &len);
        msg.len = len;
        msg.content_type = sl_msg_content_type(msgs[0])[0] ? sl_msg_content_type(msgs[0])
                                                           : NULL;
        msg.headers = hs;
        msg.nheaders = k;
        msg.msg_id = msg_id;
        sl_confirm_t c;
        rc = sl_publish_sync(self, &msg, S_REDRIVE_TIMEOUT_MS, &c);
        if (rc) {
            char why[SLI_ERROR_MAX];
            snprintf(why, sizeof why, "%s", sl_client_last_error(self));
            sli_error_set(self->sess, "redrive of %s to %s: the publish failed (%s)%s%s", from,
                          origin, sl_strerror(rc), why[0] ? ": " : "", why);
        }
        else {
            if (to && to_len)
                snprintf(to, to_len, "%s", origin);
            if (new_offset)
                *new_offset = c.offset;
            /* A failure here leaves the dead letter listed; redriving it
             * again within the dedup window stores nothing twice. */
            rc = sl_dlq_remove(self, topic, offset);
        }
    }
    free(hs);
    s_msgs_free(msgs, n);
    return rc;
}
