/*  sld_audit - audit records: queued as JSON text, appended to `_audit`
 *  by the write phase, mirrored to a JSON-lines file after the commit.
 *  A record is one JSON object: ts (RFC 3339, UTC, microseconds), ts_us,
 *  identity, action, target, result, detail, and for refused connections
 *  count. Broker thread only.
 *
 *  Refused handshakes cost an unauthenticated client nothing but a TCP
 *  connection, so they are tallied rather than recorded one by one: one
 *  process refused as fast as it could connect wrote ~78 KiB/s of records
 *  before. A tally is a pair (public key, peer address). Its first refusal
 *  is recorded at once (count 1), so a new key or address shows in the
 *  trail without delay; its later refusals are counted, and at the end of
 *  each interval (security/audit_refusal_interval) a tally that counted any
 *  becomes one record with the count and the time of its previous record.
 *  A pair quiet for a whole interval is forgotten: its next refusal is a
 *  first again. Every refusal is in exactly one record's count, so the
 *  counts add up to the auth.refused counter.
 *
 *  What one attacker can make is bounded: an address has at most
 *  SLD_AUDIT_REFUSAL_KEYS keys tallied apart, then one tally for any key of
 *  it; at most SLD_AUDIT_REFUSAL_PAIRS tallies live, then one for all
 *  others. Each tally makes at most two records per interval (its first
 *  and a summary), so one address makes at most 2 x (8 + 1) records per
 *  interval and every address together 2 x (256 + 1).  */
#include "sld_audit.h"
#include "sld_event.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "slt_doc.h"
#include "slc_codec.h"

typedef struct {
    char *json;                 /* the record (owned) */
    size_t len;
    uint64_t ts_us;
    bool change;                /* made by the current write attempt */
} s_record_t;

/* The refusals of one (key, address) pair since its last record. */
typedef struct {
    char key[41];               /* Z85, "" for a client that is not CURVE */
    char address[64];
    char name[72];              /* identity of the key, "" when unknown */
    char why[48];               /* reason of the latest refusal */
    bool any_key;               /* the tally of ADDRESS's keys past SLD_AUDIT_REFUSAL_KEYS */
    bool fresh;                 /* made in the current interval */
    uint64_t count;             /* refusals since the last record */
    uint64_t since_us;          /* time of the last record */
} s_tally_t;

struct sld_audit {
    int fd;                     /* mirror file, or -1 */
    s_record_t *v;
    size_t n, cap;
    uint64_t dropped;           /* records not queued since the last commit */
    uint8_t *buf;               /* envelope packing */
    size_t capbuf;
    uint64_t interval_us;       /* of the refusal summaries */
    uint64_t next_tick_us;      /* end of the current interval; 0 = nothing tallied */
    s_tally_t *tallies;         /* SLD_AUDIT_REFUSAL_PAIRS of them (owned) */
    size_t ntallies;
    s_tally_t others;           /* every pair past the table, when active */
    bool others_active;
};

int sld_audit_new(const char *mirror, uint32_t refusal_interval_ms, sld_audit_t **out)
{
    sld_audit_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->fd = -1;
    self->interval_us = (uint64_t) (refusal_interval_ms ? refusal_interval_ms : 60000) * 1000;
    self->tallies = calloc(SLD_AUDIT_REFUSAL_PAIRS, sizeof(s_tally_t));
    if (!self->tallies) {
        free(self);
        return SL_ENOMEM;
    }
    if (mirror && *mirror) {
        self->fd = open(mirror, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (self->fd < 0) {
            fprintf(stderr, "sluiced: cannot open audit file %s: %s\n", mirror, strerror(errno));
            free(self->tallies);
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
    free(self->tallies);
    if (self->fd >= 0)
        close(self->fd);
    free(self);
    *self_p = NULL;
}

/* TS_US as RFC 3339 UTC with microseconds into WHEN (40 bytes). */
static void s_when(uint64_t ts_us, char when[40])
{
    time_t secs = (time_t) (ts_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t k = strftime(when, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + k, 40 - k, ".%06" PRIu64 "Z", ts_us % 1000000);
}

/* The record as one line of JSON (caller frees), NULL when a name is not
 * UTF-8 or memory is short. COUNT 0 leaves the count out. */
static char *s_format(uint64_t ts_us, const char *identity, const char *action,
                      const char *target, const char *result, const char *detail,
                      uint64_t count)
{
    char when[40];
    s_when(ts_us, when);
    const char *text[] = { identity, action, target, result, detail };
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
        if (text[i] && !slt_doc_utf8(text[i], strlen(text[i])))
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
        && cJSON_AddStringToObject(o, "detail", detail ? detail : "")
        && (!count || cJSON_AddNumberToObject(o, "count", (double) count)))
        (void) slt_doc_encode(o, &json, NULL);
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

static void s_add(sld_audit_t *self, bool change, uint64_t now, const char *identity,
                  const char *action, const char *target, const char *result,
                  const char *detail, uint64_t count)
{
    /* Changes are never dropped: they are few and each was requested by
     * an admin. Events (denials, refusals) are bounded. */
    if (!change && self->n >= SLD_AUDIT_QUEUE_MAX) {
        self->dropped++;
        return;
    }
    char *json = s_format(now, identity, action, target, result, detail, count);
    if (!json)
        json = s_format(now, identity ? "(not UTF-8)" : NULL, action, "(not UTF-8)", result,
                        "a name in this record was not valid UTF-8", count);
    if (!json) {
        self->dropped++;
        return;
    }
    s_push(self, change, json, now);
}

void sld_audit_add(sld_audit_t *self, bool change, const char *identity,
                   const char *action, const char *target, const char *result,
                   const char *detail)
{
    s_add(self, change, slc_now_us(), identity, action, target, result, detail, 0);
}

/* ------------------------------------------------------ refused handshakes */

/* Queue the record of tally T at NOW: its first refusal (FIRST, with NOTE
 * saying what is tallied from now on, or NULL) or the summary of its
 * count. */
static void s_tally_record(sld_audit_t *self, const s_tally_t *t, uint64_t now, bool first,
                           const char *note)
{
    char detail[400], since[40];
    const char *key = t->key[0] ? t->key : "(none)";
    bool others = t == &self->others;
    s_when(t->since_us, since);
    if (first)
        snprintf(detail, sizeof detail, "%s; public key %s%s%s", t->why, key,
                 note ? "; " : "", note ? note : "");
    else if (others)
        snprintf(detail, sizeof detail, "%s; %" PRIu64 " refusals since %s of key and address "
                 "pairs past the %d tallied apart (the latest: public key %s from %s)", t->why,
                 t->count, since, SLD_AUDIT_REFUSAL_PAIRS, key, t->address);
    else if (t->any_key)
        snprintf(detail, sizeof detail, "%s; %" PRIu64 " refusals since %s of keys past the %d "
                 "this address has tallied apart (the latest: public key %s)", t->why, t->count,
                 since, SLD_AUDIT_REFUSAL_KEYS, key);
    else
        snprintf(detail, sizeof detail, "%s; public key %s; %" PRIu64 " refusals since %s",
                 t->why, key, t->count, since);
    /* A summary of several keys names no identity. */
    const char *name = t->name[0] && (first || !(others || t->any_key)) ? t->name : NULL;
    s_add(self, false, now, name, "connect", others && !first ? "(other addresses)" : t->address,
          "refused", detail, first ? 1 : t->count);
}

static void s_tally_note(s_tally_t *t, const char *name, const char *key, const char *why)
{
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    snprintf(t->key, sizeof t->key, "%s", key ? key : "");
    snprintf(t->why, sizeof t->why, "%s", why ? why : "refused");
}

bool sld_audit_refused(sld_audit_t *self, uint64_t now_us, const char *name,
                       const char *key, const char *address, const char *why)
{
    key = key ? key : "";
    address = address ? address : "";
    s_tally_t *any = NULL, *t = NULL;
    size_t keys = 0;
    for (size_t i = 0; i < self->ntallies; i++) {
        s_tally_t *c = &self->tallies[i];
        if (strcmp(c->address, address) != 0)
            continue;
        if (c->any_key)
            any = c;
        else if (strcmp(c->key, key) == 0) {
            t = c;
            break;
        }
        else
            keys++;
    }
    bool room = keys < SLD_AUDIT_REFUSAL_KEYS && self->ntallies < SLD_AUDIT_REFUSAL_PAIRS;
    if (!t && !room)
        t = any ? any : (self->others_active && self->ntallies >= SLD_AUDIT_REFUSAL_PAIRS)
                        ? &self->others : NULL;
    if (t) {
        t->count++;
        s_tally_note(t, t->any_key || t == &self->others ? NULL : name, key, why);
        if (t == &self->others)
            snprintf(t->address, sizeof t->address, "%s", address);
        return false;
    }
    /* A first: a new pair, the first key of an address past its limit, or
     * the first pair past the table. */
    const char *note = NULL;
    char text[160];
    if (room)
        t = &self->tallies[self->ntallies++];
    else if (self->ntallies < SLD_AUDIT_REFUSAL_PAIRS) {
        t = &self->tallies[self->ntallies++];
        snprintf(text, sizeof text, "%d keys of this address are tallied apart already: its "
                 "refusals of any other key are summed up together", SLD_AUDIT_REFUSAL_KEYS);
        note = text;
    }
    else {
        t = &self->others;
        self->others_active = true;
        snprintf(text, sizeof text, "%d key and address pairs are tallied already: refusals "
                 "of any other pair are summed up together", SLD_AUDIT_REFUSAL_PAIRS);
        note = text;
    }
    memset(t, 0, sizeof *t);
    snprintf(t->address, sizeof t->address, "%s", address);
    t->any_key = note && t != &self->others;
    t->fresh = true;
    t->since_us = now_us;
    s_tally_note(t, name, key, why);
    s_tally_record(self, t, now_us, true, note);
    if (!self->next_tick_us)
        self->next_tick_us = now_us + self->interval_us;
    return true;
}

/* End of an interval for T: its summary when it counted any; false when it
 * was quiet for a whole interval and is to be forgotten. */
static bool s_tally_tick(sld_audit_t *self, s_tally_t *t, uint64_t now)
{
    if (t->count) {
        s_tally_record(self, t, now, false, NULL);
        t->count = 0;
        t->since_us = now;
    }
    else if (!t->fresh)
        return false;
    t->fresh = false;
    return true;
}

long sld_audit_tick(sld_audit_t *self, uint64_t now_us)
{
    if (!self->next_tick_us)
        return 60000;
    /* The wall clock went back: start the interval again rather than wait
     * for the old end. */
    if (now_us + self->interval_us < self->next_tick_us)
        self->next_tick_us = now_us + self->interval_us;
    if (now_us < self->next_tick_us)
        return (long) ((self->next_tick_us - now_us + 999) / 1000);
    size_t k = 0;
    for (size_t i = 0; i < self->ntallies; i++)
        if (s_tally_tick(self, &self->tallies[i], now_us))
            self->tallies[k++] = self->tallies[i];
    self->ntallies = k;
    if (self->others_active)
        self->others_active = s_tally_tick(self, &self->others, now_us);
    self->next_tick_us = k || self->others_active ? now_us + self->interval_us : 0;
    return self->next_tick_us ? (long) (self->interval_us / 1000) : 60000;
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
                              "failed", detail, 0);
        if (json) {
            s_push(self, false, json, slc_now_us());
            self->dropped = 0;
        }
    }
    if (self->n == 0)
        return 0;
    uint32_t id;
    rc = sld_store_topic_ensure(txn, SLD_AUDIT_TOPIC, &id);
    for (size_t i = 0; rc == 0 && i < self->n; i++)
        rc = sld_event_append(txn, id, SLD_AUDIT_TOPIC, self->v[i].json, self->v[i].len,
                              self->v[i].ts_us, &self->buf, &self->capbuf);
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
