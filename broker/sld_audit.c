/*  sld_audit - audit records: queued as JSON text, appended to `_audit`
 *  by the write phase, mirrored to a JSON-lines file after the commit.
 *  A record is one JSON object: ts (RFC 3339, UTC, microseconds), ts_us,
 *  identity, action, target, result, detail. Broker thread only.  */
#include "sld_audit.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "slc_doc.h"
#include "slc_codec.h"

typedef struct {
    char *json;                 /* the record (owned) */
    size_t len;
    uint64_t ts_us;
    bool change;                /* made by the current write attempt */
} s_record_t;

struct sld_audit {
    int fd;                     /* mirror file, or -1 */
    s_record_t *v;
    size_t n, cap;
    uint64_t dropped;           /* records not queued since the last commit */
    uint8_t *buf;               /* envelope packing */
    size_t capbuf;
};

int sld_audit_new(const char *mirror, sld_audit_t **out)
{
    sld_audit_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->fd = -1;
    if (mirror && *mirror) {
        self->fd = open(mirror, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (self->fd < 0) {
            fprintf(stderr, "sluiced: cannot open audit file %s: %s\n", mirror, strerror(errno));
            free(self);
            return SL_ESYS;
        }
    }
    *out = self;
    return 0;
}

static void s_free_record(s_record_t *r)
{
    free(r->json);
    r->json = NULL;
}

void sld_audit_destroy(sld_audit_t **self_p)
{
    sld_audit_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        s_free_record(&self->v[i]);
    free(self->v);
    free(self->buf);
    if (self->fd >= 0)
        close(self->fd);
    free(self);
    *self_p = NULL;
}

static char *s_format(uint64_t ts_us, const char *identity, const char *action,
                      const char *target, const char *result, const char *detail)
{
    char when[40];
    time_t secs = (time_t) (ts_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + k, sizeof when - k, ".%06" PRIu64 "Z", ts_us % 1000000);
    const char *text[] = { identity, action, target, result, detail };
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
        if (text[i] && !slc_doc_utf8(text[i], strlen(text[i])))
            return NULL;    /* a client-supplied name that is not UTF-8 never lands */
    char *json = NULL;
    cJSON *o = cJSON_CreateObject();
    /* Compact, one line, keys in this order. */
    if (o && cJSON_AddStringToObject(o, "ts", when)
        && cJSON_AddNumberToObject(o, "ts_us", (double) ts_us)
        && (identity ? cJSON_AddStringToObject(o, "identity", identity)
                     : cJSON_AddNullToObject(o, "identity"))
        && cJSON_AddStringToObject(o, "action", action)
        && cJSON_AddStringToObject(o, "target", target ? target : "")
        && cJSON_AddStringToObject(o, "result", result)
        && cJSON_AddStringToObject(o, "detail", detail ? detail : ""))
        (void) slc_doc_encode(o, &json, NULL);
    cJSON_Delete(o);
    return json;
}

static void s_push(sld_audit_t *self, bool change, char *json, uint64_t ts_us)
{
    if (slc_grow((void **) &self->v, &self->cap, self->n + 1, sizeof(s_record_t)) != 0) {
        free(json);
        self->dropped++;
        return;
    }
    self->v[self->n++] = (s_record_t) { json, strlen(json), ts_us, change };
}

void sld_audit_add(sld_audit_t *self, bool change, const char *identity,
                   const char *action, const char *target, const char *result,
                   const char *detail)
{
    /* Changes are never dropped: they are few and each was requested by
     * an admin. Events (denials, refusals) are bounded. */
    if (!change && self->n >= SLD_AUDIT_QUEUE_MAX) {
        self->dropped++;
        return;
    }
    uint64_t now = slc_now_us();
    char *json = s_format(now, identity, action, target, result, detail);
    if (!json)
        json = s_format(now, identity ? "(not UTF-8)" : NULL, action, "(not UTF-8)", result,
                        "a name in this record was not valid UTF-8");
    if (!json) {
        self->dropped++;
        return;
    }
    s_push(self, change, json, now);
}

void sld_audit_attempt(sld_audit_t *self)
{
    size_t k = 0;
    for (size_t i = 0; i < self->n; i++) {
        if (self->v[i].change)
            s_free_record(&self->v[i]);
        else
            self->v[k++] = self->v[i];
    }
    self->n = k;
}

bool sld_audit_dirty(const sld_audit_t *self)
{
    return self->n > 0 || self->dropped > 0;
}

int sld_audit_write(sld_audit_t *self, sld_txn_t *txn, uint32_t *topic_id)
{
    int rc = 0;
    *topic_id = 0;
    if (self->dropped) {
        char detail[96];
        snprintf(detail, sizeof detail, "%" PRIu64 " audit records were dropped: queue full",
                 self->dropped);
        char *json = s_format(slc_now_us(), NULL, "audit.overflow", SLD_AUDIT_TOPIC,
                              "failed", detail);
        if (json) {
            s_push(self, false, json, slc_now_us());
            self->dropped = 0;
        }
    }
    if (self->n == 0)
        return 0;
    uint32_t id;
    rc = sld_store_topic_ensure(txn, SLD_AUDIT_TOPIC, &id);
    for (size_t i = 0; rc == 0 && i < self->n; i++) {
        Sluice__Envelope e = SLUICE__ENVELOPE__INIT;
        e.topic = SLD_AUDIT_TOPIC;
        e.content_type = "application/json";
        e.payload.data = (uint8_t *) self->v[i].json;
        e.payload.len = self->v[i].len;
        e.ingest_ts_us = self->v[i].ts_us;
        e.source = "sluiced";
        size_t len = sluice__envelope__get_packed_size(&e);
        rc = slc_grow((void **) &self->buf, &self->capbuf, len + 1, 1);
        if (rc)
            break;
        sluice__envelope__pack(&e, self->buf);
        uint64_t offset;
        rc = sld_store_append(txn, id, self->v[i].ts_us, self->buf, len, &offset);
    }
    if (rc == 0)
        *topic_id = id;
    return rc;
}

void sld_audit_committed(sld_audit_t *self, bool ok)
{
    if (!ok) {
        sld_audit_attempt(self);
        return;
    }
    for (size_t i = 0; i < self->n; i++) {
        if (self->fd >= 0) {
            /* One write per line with O_APPEND: lines never interleave. A
             * failed mirror write loses only the mirror's copy. */
            self->v[i].json[self->v[i].len] = 0;
            char *line = malloc(self->v[i].len + 2);
            if (line) {
                memcpy(line, self->v[i].json, self->v[i].len);
                line[self->v[i].len] = '\n';
                if (write(self->fd, line, self->v[i].len + 1) < 0)
                    fprintf(stderr, "sluiced: audit file write failed: %s\n", strerror(errno));
                free(line);
            }
        }
        s_free_record(&self->v[i]);
    }
    self->n = 0;
}
