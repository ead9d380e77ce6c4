/*  fuzz_pgoutput - libFuzzer target for sluice-pgcdc's pgoutput decoder
 *  (adapters/pgcdc/pgcdc_decode.c) and the events it feeds
 *  (pgcdc_event.c). Input: byte 0 = N, bytes 1..N a first message (a
 *  Relation, when it decodes as one, is put in the cache), the rest a
 *  second message. Checks: decoding ends; on success every string and
 *  column value lies inside the input; a change of the cached relation
 *  with its column count becomes one JSON object that parses whole, with
 *  the source, key, before and after members the docs promise, whatever
 *  its values hold. Single thread; no state between
 *  inputs.  */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pgcdc_decode.h"
#include "pgcdc_event.h"

/* Like assert, but kept under NDEBUG. */
#define S_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_pgoutput: %s:%d: check failed: %s\n", \
                    __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

static pgcdc_msg_t s_msg;

static void s_inside(const uint8_t *buf, size_t len, const void *p, size_t n)
{
    const uint8_t *q = p;
    S_CHECK(q >= buf && q + n <= buf + len);
}

static void s_check_tuple(const uint8_t *buf, size_t len, const pgcdc_tuple_t *t)
{
    for (uint16_t i = 0; i < t->ncols; i++)
        if (t->cols[i].kind == 't')
            s_inside(buf, len, t->cols[i].data, t->cols[i].len);
}

static int s_decode(const uint8_t *buf, size_t len)
{
    char err[256];
    int rc = pgcdc_decode(buf, len, &s_msg, err, sizeof err);
    if (rc < 0) {
        S_CHECK(err[0]);
        return rc;
    }
    if (s_msg.tag == 'R')
        for (uint16_t i = 0; i < s_msg.natts; i++)
            s_inside(buf, len, s_msg.atts[i].name, strlen(s_msg.atts[i].name) + 1);
    s_check_tuple(buf, len, &s_msg.old_tuple);
    s_check_tuple(buf, len, &s_msg.new_tuple);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = data[0];
    if (n > size - 1)
        n = size - 1;
    const uint8_t *first = data + 1, *second = data + 1 + n;
    size_t second_len = size - 1 - n;
    pgcdc_rels_t *rels = pgcdc_rels_new("fuzz");
    S_CHECK(rels);
    char err[512];
    if (s_decode(first, n) == 0 && s_msg.tag == 'R') {
        pgcdc_rel_t *rel;
        bool changed;
        (void) pgcdc_rels_put(rels, s_msg.relid, s_msg.nspname, s_msg.relname, s_msg.natts,
                              s_msg.atts, &rel, &changed, err, sizeof err);
    }
    if (s_decode(second, second_len) == 0
        && (s_msg.tag == 'I' || s_msg.tag == 'U' || s_msg.tag == 'D')) {
        pgcdc_rel_t *rel = pgcdc_rels_lookup(rels, s_msg.relid);
        const pgcdc_tuple_t *old = s_msg.old_kind ? &s_msg.old_tuple : NULL;
        const pgcdc_tuple_t *new_ = s_msg.has_new ? &s_msg.new_tuple : NULL;
        if (rel && (!old || old->ncols == rel->ncols) && (!new_ || new_->ncols == rel->ncols)) {
            pgcdc_source_t src = { .op = s_msg.tag == 'D' ? 'd' : 'u', .lsn = 1 };
            if (old && new_)
                (void) pgcdc_event_key_moved(rel, old, new_);
            char *json = pgcdc_event_json(rel, "fuzz", &src, old, s_msg.old_kind, new_);
            /* Whatever the values hold, the event is one JSON object
             * with its members: no value may change its structure. */
            if (json) {
                cJSON *e = cJSON_ParseWithOpts(json, NULL, 1);
                S_CHECK(e);
                S_CHECK(cJSON_GetObjectItem(e, "key") && cJSON_GetObjectItem(e, "after")
                        && cJSON_GetObjectItem(e, "before") && cJSON_GetObjectItem(e, "source"));
                cJSON_Delete(e);
            }
            free(json);
            char *schema = pgcdc_event_schema(rel);
            S_CHECK(schema);
            cJSON *sj = cJSON_Parse(schema);
            S_CHECK(sj);
            cJSON_Delete(sj);
            free(schema);
        }
    }
    pgcdc_rels_destroy(&rels);
    S_CHECK(rels == NULL);
    return 0;
}
