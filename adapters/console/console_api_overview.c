/*  console_api_overview - the API's broker-wide views (docs/console.md):
 *  whoami, the overview (counters, rates from the identity's previous
 *  sample, storage, alarms from _alerts, dead letters), topics with their
 *  publish rates, a topic's stored messages, subscriptions, and moving a
 *  subscription's cursor. On libmicrohttpd's threads; each handler holds
 *  its identity's lock (console_client) while it uses the client and the
 *  samples kept with it.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "console_int.h"
#include "console_json.h"
#include "console_read.h"
#include "http_common.h"

#define S_DEFAULT_LIMIT 20
#define S_MAX_LIMIT 200
#define S_READ_IDLE_MS 2000         /* a read gives up after this long without a message */
#define S_ALERTS_LOOKED_AT 200      /* the last _alerts events the overview reads */

static uint64_t s_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* (CUR - PREV) per second over DT_US; 0 when there is no interval. */
static double s_rate(uint64_t cur, uint64_t prev, uint64_t dt_us)
{
    if (dt_us == 0 || cur < prev)
        return 0;
    return (double)(cur - prev) * 1e6 / (double)dt_us;
}

void console_api_whoami(console_req_t *r)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "identity", r->id->name);
    console_ok(r, o);
}

/* ----------------------------------------------------------- overview */

typedef struct {
    cJSON *counters;
    uint64_t published, delivered, acked;
    bool have_used, have_map;
    uint64_t used, map;
} s_counters_t;

static void s_on_counter(const char *name, uint64_t value, void *arg)
{
    s_counters_t *c = arg;

    console_add_u64(c->counters, name, value);
    if (strcmp(name, "publish.stored") == 0)
        c->published = value;
    else if (strcmp(name, "deliver.first") == 0 || strcmp(name, "deliver.redelivered") == 0)
        c->delivered += value;
    else if (strcmp(name, "deliver.acked") == 0)
        c->acked = value;
    else if (strcmp(name, "storage.used_bytes") == 0)
        c->used = value, c->have_used = true;
    else if (strcmp(name, "storage.map_bytes") == 0)
        c->map = value, c->have_map = true;
}

/* The alarm's key in an _alerts event: its name, with the object it is
 * about ("storage:map", "subscription_lag:billing"). */
static void s_alert_key(const cJSON *ev, char *key, size_t len)
{
    const char *alert = console_in_str(ev, "alert");
    const char *what = console_in_str(ev, "kind");

    if (!what)
        what = console_in_str(ev, "subscription");
    if (!what)
        what = console_in_str(ev, "topic");
    if (!what)
        what = console_in_str(ev, "route");
    if (alert && strcmp(alert, "storage_alarm") == 0)
        alert = "storage";
    snprintf(key, len, "%s%s%s", alert ? alert : "?", what ? ":" : "", what ? what : "");
}

/* The latest state of each alert among the last events of _alerts:
 * [{"name","state":"raised|clear","since_us"}], raised ones first; []
 * when the identity may not read _alerts or it is empty. */
static cJSON *s_alarms(sl_client_t *client)
{
    cJSON *list = cJSON_CreateArray(), *raised = cJSON_CreateArray(), *a, *ev;
    console_topic_pos_t pos;
    sl_msg_t **msgs = NULL;
    size_t n = 0, i, j, len;
    uint64_t from;
    char key[512];

    if (console_topic_pos(client, "_alerts", &pos) != 0 || pos.next_offset == 0)
        goto done;
    from = pos.next_offset > S_ALERTS_LOOKED_AT ? pos.next_offset - S_ALERTS_LOOKED_AT : 0;
    if (from < pos.first_offset)
        from = pos.first_offset;
    if (console_read(client, "_alerts", from, pos.next_offset, S_ALERTS_LOOKED_AT,
                     S_READ_IDLE_MS, &msgs, &n) != 0)
        goto done;
    /* Newest first, so the first event seen of each key is its state. */
    for (i = n; i-- > 0;) {
        const char *payload = sl_msg_payload(msgs[i], &len);
        const char *state;
        bool seen = false;

        ev = cJSON_ParseWithLength(payload, len);
        state = console_in_str(ev, "state");
        if (!state) {
            cJSON_Delete(ev);
            continue;
        }
        s_alert_key(ev, key, sizeof key);
        for (j = 0; j < 2 && !seen; j++) {
            cJSON *it, *in = j ? raised : list;

            cJSON_ArrayForEach(it, in)
                if (strcmp(console_in_str(it, "name"), key) == 0)
                    seen = true;
        }
        if (!seen) {
            bool firing = strcmp(state, "firing") == 0;

            a = cJSON_CreateObject();
            cJSON_AddStringToObject(a, "name", key);
            cJSON_AddStringToObject(a, "state", firing ? "raised" : "clear");
            console_add_u64(a, "since_us", sl_msg_ingest_us(msgs[i]));
            cJSON_AddItemToArray(firing ? raised : list, a);
        }
        cJSON_Delete(ev);
    }
done:
    console_read_free(msgs, n);
    /* Raised first, then the cleared ones. */
    while ((a = cJSON_DetachItemFromArray(list, 0)) != NULL)
        cJSON_AddItemToArray(raised, a);
    cJSON_Delete(list);
    return raised;
}

/* Open sessions over every identity (sl_key_list, admin only), or -1. */
static int64_t s_connections(sl_client_t *client)
{
    sl_identity_t *ids = NULL;
    size_t n = 0, i;
    int64_t sum = 0;

    if (sl_key_list(client, &ids, &n) != 0)
        return -1;
    for (i = 0; i < n; i++)
        sum += ids[i].sessions;
    sl_identity_list_free(ids, n);
    return sum;
}

void console_api_overview(console_req_t *r)
{
    sl_client_t *client = console_client(r);
    console_id_t *id = r->id;
    s_counters_t c;
    sl_topic_info_t *topics = NULL;
    sl_sub_info_t *subs = NULL;
    size_t ntopics = 0, nsubs = 0, i;
    uint64_t now = s_mono_us(), dt, dead = 0;
    int64_t conns;
    cJSON *o, *rates, *storage;
    int rc;

    memset(&c, 0, sizeof c);
    o = cJSON_CreateObject();
    c.counters = cJSON_CreateObject();
    rc = sl_counters(client, s_on_counter, &c);
    if (rc == 0)
        rc = sl_stats(client, &topics, &ntopics, &subs, &nsubs);
    if (rc != 0) {
        cJSON_Delete(o);
        cJSON_Delete(c.counters);
        console_fail_sl(r, rc, "cannot read the broker's counters");
        return;
    }
    cJSON_AddStringToObject(o, "broker", r->con->endpoint);
    cJSON_AddStringToObject(o, "identity", id->name);
    dt = id->have_sample ? now - id->sample_us : 0;
    rates = cJSON_AddObjectToObject(o, "rates");
    cJSON_AddNumberToObject(rates, "publishes_per_s", s_rate(c.published, id->published, dt));
    cJSON_AddNumberToObject(rates, "deliveries_per_s", s_rate(c.delivered, id->delivered, dt));
    cJSON_AddNumberToObject(rates, "acks_per_s", s_rate(c.acked, id->acked, dt));
    id->have_sample = true;
    id->sample_us = now;
    id->published = c.published;
    id->delivered = c.delivered;
    id->acked = c.acked;
    cJSON_AddItemToObject(o, "counters", c.counters);
    console_add_u64(o, "topics", ntopics);
    console_add_u64(o, "subscriptions", nsubs);
    conns = s_connections(client);
    if (conns < 0)
        cJSON_AddNullToObject(o, "connections");
    else
        console_add_u64(o, "connections", (uint64_t)conns);
    if (c.have_used || c.have_map) {
        storage = cJSON_AddObjectToObject(o, "storage");
        if (c.have_used)
            console_add_u64(storage, "used_bytes", c.used);
        else
            cJSON_AddNullToObject(storage, "used_bytes");
        if (c.have_map)
            console_add_u64(storage, "map_bytes", c.map);
        else
            cJSON_AddNullToObject(storage, "map_bytes");
    }
    else
        cJSON_AddNullToObject(o, "storage");
    cJSON_AddItemToObject(o, "alarms", s_alarms(client));
    for (i = 0; i < ntopics; i++)
        if (strncmp(topics[i].name, "_dlq.", 5) == 0)
            dead += topics[i].messages > topics[i].dlq_removed
                  ? topics[i].messages - topics[i].dlq_removed : 0;
    console_add_u64(o, "dead_letters", dead);
    free(topics);
    free(subs);
    console_ok(r, o);
}

/* ------------------------------------------------------------- topics */

/* TOPIC's next_offset in the previous sample of ID, or false. */
static bool s_mark(const console_id_t *id, const char *topic, uint64_t *next)
{
    size_t i;

    for (i = 0; i < id->nmarks; i++)
        if (strcmp(id->marks[i].name, topic) == 0) {
            *next = id->marks[i].next_offset;
            return true;
        }
    return false;
}

void console_api_topics(console_req_t *r)
{
    sl_client_t *client = console_client(r);
    console_id_t *id = r->id;
    sl_topic_info_t *topics = NULL;
    console_topic_mark_t *marks;
    size_t n = 0, i;
    uint64_t now = s_mono_us(), dt = id->nmarks ? now - id->marks_us : 0, prev;
    cJSON *o, *list, *t;
    int rc = sl_stats(client, &topics, &n, NULL, NULL);

    if (rc != 0) {
        console_fail_sl(r, rc, "cannot list the topics");
        return;
    }
    o = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(o, "topics");
    for (i = 0; i < n; i++) {
        const sl_topic_info_t *ti = &topics[i];

        t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", ti->name);
        console_add_u64(t, "first_offset", ti->first_offset);
        console_add_u64(t, "next_offset", ti->next_offset);
        console_add_u64(t, "messages", ti->messages);
        console_add_u64(t, "bytes", ti->bytes);
        console_add_u64(t, "max_age_ms", ti->max_age_ms);
        console_add_u64(t, "max_bytes", ti->max_bytes);
        cJSON_AddStringToObject(t, "schema", ti->schema);
        cJSON_AddNumberToObject(t, "publishes_per_s", s_mark(id, ti->name, &prev)
                                ? s_rate(ti->next_offset, prev, dt) : 0);
        cJSON_AddItemToArray(list, t);
    }
    /* This sample becomes the previous one. */
    marks = n ? calloc(n, sizeof *marks) : NULL;
    if (marks || n == 0) {
        for (i = 0; i < n; i++) {
            snprintf(marks[i].name, sizeof marks[i].name, "%s", topics[i].name);
            marks[i].next_offset = topics[i].next_offset;
        }
        free(id->marks);
        id->marks = marks;
        id->nmarks = n;
        id->marks_us = now;
    }
    free(topics);
    console_ok(r, o);
}

/* ?from= and ?limit= into *from / *limit (FROM_SET says whether given).
 * False after answering 400. */
bool console_paging(console_req_t *r, uint64_t *from, bool *from_set, uint64_t *limit)
{
    const char *f = console_query(r, "from"), *l = console_query(r, "limit");

    *from_set = f != NULL;
    *limit = S_DEFAULT_LIMIT;
    if (f && http_parse_u64(f, from) != 0) {
        console_answer_error(r, 400, "invalid", "from= wants an offset, not '%s'", f);
        return false;
    }
    if (l && (http_parse_u64(l, limit) != 0 || *limit == 0 || *limit > S_MAX_LIMIT)) {
        console_answer_error(r, 400, "invalid", "limit= wants 1 to %d, not '%s'",
                             S_MAX_LIMIT, l);
        return false;
    }
    return true;
}

void console_api_topic_messages(console_req_t *r)
{
    const char *topic = r->seg[1];
    sl_client_t *client;
    console_topic_pos_t pos;
    sl_msg_t **msgs = NULL;
    uint64_t from = 0, limit, end;
    bool from_set;
    size_t n = 0, i;
    cJSON *o, *list, *m;
    int rc;

    if (!console_paging(r, &from, &from_set, &limit))
        return;
    client = console_client(r);
    rc = console_topic_pos(client, topic, &pos);
    if (rc == SL_ENOTFOUND) {
        console_fail(r, rc, "no topic %s that this identity may see", topic);
        return;
    }
    if (rc != 0) {
        console_fail_sl(r, rc, "cannot read the topic list");
        return;
    }
    if (!from_set)
        from = pos.next_offset > limit ? pos.next_offset - limit : 0;
    if (from < pos.first_offset)
        from = pos.first_offset;
    end = from + limit < pos.next_offset ? from + limit : pos.next_offset;
    rc = console_read(client, topic, from, end, (size_t)limit, S_READ_IDLE_MS, &msgs, &n);
    if (rc != 0) {
        console_fail_sl(r, rc, "cannot read the topic's messages");
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "topic", topic);
    console_add_u64(o, "first_offset", pos.first_offset);
    console_add_u64(o, "next_offset", pos.next_offset);
    list = cJSON_AddArrayToObject(o, "messages");
    for (i = 0; i < n; i++) {
        m = console_msg_json(msgs[i]);
        cJSON_ReplaceItemInObject(m, "lineage",
                                  console_lineage(client, topic, sl_msg_offset(msgs[i])));
        cJSON_AddItemToArray(list, m);
    }
    console_read_free(msgs, n);
    console_ok(r, o);
}

/* ------------------------------------------------------ subscriptions */

void console_api_subscriptions(console_req_t *r)
{
    sl_client_t *client = console_client(r);
    sl_sub_info_t *subs = NULL;
    size_t n = 0, i;
    cJSON *o, *list, *s;
    int rc = sl_stats(client, NULL, NULL, &subs, &n);

    if (rc != 0) {
        console_fail_sl(r, rc, "cannot list the subscriptions");
        return;
    }
    o = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(o, "subscriptions");
    for (i = 0; i < n; i++) {
        const sl_sub_info_t *si = &subs[i];

        s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "name", si->name);
        cJSON_AddStringToObject(s, "pattern", si->pattern);
        cJSON_AddStringToObject(s, "owner", si->owner);
        cJSON_AddBoolToObject(s, "ephemeral", si->ephemeral);
        cJSON_AddBoolToObject(s, "attached", si->attached);
        console_add_u64(s, "lag", si->lag);
        console_add_u64(s, "in_flight", si->in_flight);
        console_add_u64(s, "delivered", si->delivered);
        console_add_u64(s, "redelivered", si->redelivered);
        console_add_u64(s, "dead_lettered", si->dead_lettered);
        console_add_u64(s, "acked", si->acked);
        console_add_u64(s, "cursor", si->cursor);
        cJSON_AddItemToArray(list, s);
    }
    free(subs);
    console_ok(r, o);
}

void console_api_sub_seek(console_req_t *r)
{
    const char *name = r->seg[1], *topic = NULL, *to, *when;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->in, "topic");
    sl_start_t start;
    uint64_t offset = 0, time_us = 0;
    uint32_t moved = 0;
    cJSON *o;
    int rc;

    if (cJSON_IsString(t))
        topic = t->valuestring;
    else if (t && !cJSON_IsNull(t)) {
        console_answer_error(r, 400, "invalid", "\"topic\" is a topic name or null");
        return;
    }
    to = console_in_str(r->in, "to");
    when = console_in_str(r->in, "time");
    if (console_in_u64(r->in, "offset", &offset) == 0)
        start = SL_START_OFFSET;
    else if (when && console_time_parse(when, &time_us) == 0)
        start = SL_START_TIME;
    else if (to && strcmp(to, "earliest") == 0)
        start = SL_START_EARLIEST;
    else if (to && strcmp(to, "latest") == 0)
        start = SL_START_LATEST;
    else {
        console_answer_error(r, 400, "invalid", "give \"offset\": N, \"time\": "
                             "\"2026-12-07T12:00:00Z\" (RFC 3339), or \"to\": "
                             "\"earliest\" | \"latest\"");
        return;
    }
    rc = sl_sub_seek(console_client(r), name, topic, start, offset, time_us, &moved);
    if (rc != 0) {
        console_fail_sl(r, rc, "cannot move the subscription's cursor");
        return;
    }
    o = cJSON_CreateObject();
    console_add_u64(o, "moved", moved);
    console_ok(r, o);
}
