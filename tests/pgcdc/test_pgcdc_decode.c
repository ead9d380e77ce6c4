/*  test_pgcdc_decode - the pgoutput decoder and the event builder of
 *  sluice-pgcdc on hand-made protocol version 1 messages: relation,
 *  begin/commit, insert/update/delete tuples with null, unchanged TOAST
 *  and text values; every truncation of a valid message refused; values
 *  typed as docs/adapters.md says; topic words escaped.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include "pgcdc_decode.h"
#include "pgcdc_event.h"

typedef struct {
    uint8_t b[512];
    size_t n;
} s_buf_t;

static void s_u8(s_buf_t *b, uint8_t v) { b->b[b->n++] = v; }
static void s_u16(s_buf_t *b, uint16_t v) { s_u8(b, (uint8_t) (v >> 8)); s_u8(b, (uint8_t) v); }
static void s_u32(s_buf_t *b, uint32_t v) { s_u16(b, (uint16_t) (v >> 16)); s_u16(b, (uint16_t) v); }
static void s_u64(s_buf_t *b, uint64_t v) { s_u32(b, (uint32_t) (v >> 32)); s_u32(b, (uint32_t) v); }
static void s_str(s_buf_t *b, const char *s) { memcpy(b->b + b->n, s, strlen(s) + 1); b->n += strlen(s) + 1; }
static void s_text(s_buf_t *b, const char *s) { s_u8(b, 't'); s_u32(b, (uint32_t) strlen(s)); memcpy(b->b + b->n, s, strlen(s)); b->n += strlen(s); }

/* R: accounts(id int4 key, name text, amount numeric, big int8, meta jsonb) */
static void s_relation(s_buf_t *b)
{
    s_u8(b, 'R'); s_u32(b, 16384); s_str(b, "public"); s_str(b, "my table"); s_u8(b, 'd');
    s_u16(b, 5);
    const char *names[] = { "id", "name", "amount", "big", "meta" };
    uint32_t types[] = { 23, 25, 1700, 20, 3802 };
    for (int i = 0; i < 5; i++) {
        s_u8(b, i == 0); s_str(b, names[i]); s_u32(b, types[i]); s_u32(b, (uint32_t) -1);
    }
}

static pgcdc_msg_t *s_msg;

static void test_relation_and_insert(void **state)
{
    (void) state;
    char err[256];
    s_buf_t b = { .n = 0 };
    s_relation(&b);
    assert_int_equal(pgcdc_decode(b.b, b.n, s_msg, err, sizeof err), 0);
    assert_int_equal(s_msg->tag, 'R');
    assert_string_equal(s_msg->relname, "my table");
    assert_int_equal(s_msg->natts, 5);
    assert_int_equal(s_msg->atts[0].flags, 1);
    assert_int_equal(s_msg->atts[2].type_oid, 1700);

    pgcdc_rels_t *rels = pgcdc_rels_new("shop");
    pgcdc_rel_t *rel;
    bool changed;
    assert_int_equal(pgcdc_rels_put(rels, s_msg->relid, s_msg->nspname, s_msg->relname,
                                    s_msg->natts, s_msg->atts, &rel, &changed, err, sizeof err), 0);
    assert_true(changed);
    assert_string_equal(rel->topic, "pg.shop.public.my-20table");
    /* The same columns again: not a change (no new schema version). */
    assert_int_equal(pgcdc_rels_put(rels, s_msg->relid, s_msg->nspname, s_msg->relname,
                                    s_msg->natts, s_msg->atts, &rel, &changed, err, sizeof err), 0);
    assert_false(changed);

    s_buf_t i = { .n = 0 };
    s_u8(&i, 'I'); s_u32(&i, 16384); s_u8(&i, 'N'); s_u16(&i, 5);
    s_text(&i, "7"); s_u8(&i, 'n'); s_text(&i, "12.50"); s_text(&i, "9007199254740993");
    s_text(&i, "{\"a\": [1, 2]}");
    assert_int_equal(pgcdc_decode(i.b, i.n, s_msg, err, sizeof err), 0);
    assert_true(s_msg->has_new);
    pgcdc_source_t src = { .op = 'c', .lsn = 0x16B3748, .commit_lsn = 0x10016B37A0ULL,
                           .xid = 123, .commit_time_us = 1000000, .index = 2 };
    char *json = pgcdc_event_json(rel, "shop", &src, NULL, 0, &s_msg->new_tuple);
    assert_non_null(json);
    cJSON *e = cJSON_Parse(json);
    assert_non_null(e);
    cJSON *s = cJSON_GetObjectItem(e, "source");
    assert_string_equal(cJSON_GetObjectItem(s, "lsn")->valuestring, "0/16B3748");
    assert_string_equal(cJSON_GetObjectItem(s, "commit_lsn")->valuestring, "10/16B37A0");
    assert_string_equal(cJSON_GetObjectItem(s, "commit_time")->valuestring,
                        "1970-01-01T00:00:01.000000Z");
    assert_int_equal(cJSON_GetObjectItem(s, "index")->valueint, 2);
    cJSON *after = cJSON_GetObjectItem(e, "after");
    assert_int_equal(cJSON_GetObjectItem(after, "id")->valueint, 7);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(after, "name")));
    assert_string_equal(cJSON_GetObjectItem(after, "amount")->valuestring, "12.50");
    assert_string_equal(cJSON_GetObjectItem(after, "big")->valuestring, "9007199254740993");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(after, "meta"), "a")), 2);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "key"), "id")->valueint, 7);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "before")));
    assert_null(cJSON_GetObjectItem(e, "unchanged_toast"));
    cJSON_Delete(e);
    free(json);

    /* A value can never change the event's structure: a json text that
     * does not parse whole is sent as a string. */
    s_buf_t bad = { .n = 0 };
    s_u8(&bad, 'I'); s_u32(&bad, 16384); s_u8(&bad, 'N'); s_u16(&bad, 5);
    s_text(&bad, "8"); s_text(&bad, "x"); s_text(&bad, "1"); s_text(&bad, "007");
    s_text(&bad, "2}}, \"op\": \"d\"");
    assert_int_equal(pgcdc_decode(bad.b, bad.n, s_msg, err, sizeof err), 0);
    json = pgcdc_event_json(rel, "shop", &src, NULL, 0, &s_msg->new_tuple);
    e = cJSON_ParseWithOpts(json, NULL, 1);
    assert_non_null(e);
    assert_string_equal(cJSON_GetObjectItem(e, "op")->valuestring, "c");
    after = cJSON_GetObjectItem(e, "after");
    assert_string_equal(cJSON_GetObjectItem(after, "meta")->valuestring, "2}}, \"op\": \"d\"");
    assert_string_equal(cJSON_GetObjectItem(after, "big")->valuestring, "007");
    cJSON_Delete(e);
    free(json);

    /* Update with an unchanged TOAST column, old key different: moved. */
    s_buf_t u = { .n = 0 };
    s_u8(&u, 'U'); s_u32(&u, 16384); s_u8(&u, 'K'); s_u16(&u, 5);
    s_text(&u, "6"); s_u8(&u, 'n'); s_u8(&u, 'n'); s_u8(&u, 'n'); s_u8(&u, 'n');
    s_u8(&u, 'N'); s_u16(&u, 5);
    s_text(&u, "7"); s_u8(&u, 'u'); s_text(&u, "1"); s_text(&u, "5"); s_text(&u, "null");
    assert_int_equal(pgcdc_decode(u.b, u.n, s_msg, err, sizeof err), 0);
    assert_int_equal(s_msg->old_kind, 'K');
    assert_true(pgcdc_event_key_moved(rel, &s_msg->old_tuple, &s_msg->new_tuple));
    src.op = 'u';
    json = pgcdc_event_json(rel, "shop", &src, NULL, 0, &s_msg->new_tuple);
    e = cJSON_Parse(json);
    cJSON *toast = cJSON_GetObjectItem(e, "unchanged_toast");
    assert_int_equal(cJSON_GetArraySize(toast), 1);
    assert_string_equal(cJSON_GetArrayItem(toast, 0)->valuestring, "name");
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "after"), "name"));
    cJSON_Delete(e);
    free(json);

    /* Delete: the key from the old tuple. */
    src.op = 'd';
    json = pgcdc_event_json(rel, "shop", &src, &s_msg->old_tuple, 'K', NULL);
    e = cJSON_Parse(json);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "key"), "id")->valueint, 6);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "after")));
    cJSON_Delete(e);
    free(json);
    pgcdc_rels_destroy(&rels);
    assert_null(rels);
}

static void test_begin_commit(void **state)
{
    (void) state;
    char err[256];
    s_buf_t b = { .n = 0 };
    s_u8(&b, 'B'); s_u64(&b, 0x16B37A0); s_u64(&b, 5); s_u32(&b, 99);
    assert_int_equal(pgcdc_decode(b.b, b.n, s_msg, err, sizeof err), 0);
    assert_int_equal(s_msg->final_lsn, 0x16B37A0);
    assert_int_equal(s_msg->xid, 99);
    s_buf_t c = { .n = 0 };
    s_u8(&c, 'C'); s_u8(&c, 0); s_u64(&c, 0x16B37A0); s_u64(&c, 0x16B37D0); s_u64(&c, 5);
    assert_int_equal(pgcdc_decode(c.b, c.n, s_msg, err, sizeof err), 0);
    assert_int_equal(s_msg->end_lsn, 0x16B37D0);
    /* Trailing garbage and unknown types are refused. */
    c.b[c.n++] = 0;
    assert_int_equal(pgcdc_decode(c.b, c.n, s_msg, err, sizeof err), -1);
    assert_non_null(strstr(err, "trailing"));
    uint8_t z = 'Z';
    assert_int_equal(pgcdc_decode(&z, 1, s_msg, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown pgoutput message type"));
}

static void test_truncations_refused(void **state)
{
    (void) state;
    char err[256];
    s_buf_t b = { .n = 0 };
    s_relation(&b);
    for (size_t n = 0; n < b.n; n++)
        assert_int_equal(pgcdc_decode(b.b, n, s_msg, err, sizeof err), -1);
    s_buf_t i = { .n = 0 };
    s_u8(&i, 'I'); s_u32(&i, 1); s_u8(&i, 'N'); s_u16(&i, 2); s_text(&i, "abc"); s_u8(&i, 'u');
    assert_int_equal(pgcdc_decode(i.b, i.n, s_msg, err, sizeof err), 0);
    for (size_t n = 0; n < i.n; n++)
        assert_int_equal(pgcdc_decode(i.b, n, s_msg, err, sizeof err), -1);
    i.b[i.n - 1] = 'x';                 /* not a column kind */
    assert_int_equal(pgcdc_decode(i.b, i.n, s_msg, err, sizeof err), -1);
}

static void test_topic_word_and_lsn(void **state)
{
    (void) state;
    char buf[32] = "pg.";
    assert_int_equal(pgcdc_topic_word(buf, sizeof buf, "Order-Items.v2"), 0);
    assert_string_equal(buf, "pg.Order-2dItems-2ev2");
    char small[8] = "";
    assert_int_equal(pgcdc_topic_word(small, sizeof small, "abcdefgh"), -1);
    uint64_t lsn;
    assert_int_equal(pgcdc_lsn_parse("16/B374D848", &lsn), 0);
    assert_int_equal(lsn, 0x16B374D848ULL);
    assert_int_equal(pgcdc_lsn_parse("16/B374D848x", &lsn), -1);
    char text[24];
    assert_string_equal(pgcdc_lsn_text(lsn, text, sizeof text), "16/B374D848");
}

int main(void)
{
    s_msg = malloc(sizeof *s_msg);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relation_and_insert),
        cmocka_unit_test(test_begin_commit),
        cmocka_unit_test(test_truncations_refused),
        cmocka_unit_test(test_topic_word_and_lsn),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(s_msg);
    return rc;
}
