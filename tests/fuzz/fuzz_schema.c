/*  fuzz_schema - libFuzzer target for slt_schema and slt_doc. The input is
 *  SCHEMA "\n\n" DOCUMENT (no separator: all schema, no document). A schema
 *  that compiles must compile again from its canonical text to the same
 *  text, be FULL-compatible with that second compilation, and give the
 *  same verdict on the document; reasons stay within MAX and are
 *  NUL-terminated. The document is also decoded as each content type, and
 *  each decoded document must survive slt_doc_encode and slt_doc_parse
 *  unchanged. Single thread; no state between inputs.  */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slt_doc.h"
#include "slt_schema.h"

#define S_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_schema: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

#define S_MAX 4

/* The first N of ERRS are terminated; the rest are untouched ('x'). */
static void s_errs_ok(const slt_schema_error_t *errs, size_t n)
{
    S_CHECK(n <= S_MAX);
    for (size_t i = 0; i < S_MAX; i++) {
        bool used = i < n;
        S_CHECK(!used || memchr(errs[i].pointer, 0, sizeof errs[i].pointer));
        S_CHECK(!used || memchr(errs[i].rule, 0, sizeof errs[i].rule));
        S_CHECK(!used || errs[i].rule[0]);
        S_CHECK(used || errs[i].rule[0] == 'x');
    }
}

static int s_validate(const slt_schema_t *s, const cJSON *doc)
{
    slt_schema_error_t errs[S_MAX];
    size_t n = 99;
    memset(errs, 'x', sizeof errs);
    int rc = slt_schema_validate(s, doc, errs, S_MAX, &n);
    S_CHECK(rc == 0 || rc == SL_EINVAL);
    S_CHECK((rc == 0) == (n == 0));
    s_errs_ok(errs, n);
    S_CHECK(slt_schema_validate(s, doc, NULL, 0, &n) == rc && n == 0);
    return rc;
}

static void s_types(const slt_schema_t *s, const char *doc, size_t len)
{
    /* The document's first line as a type path. */
    char path[64];
    size_t n = 0;
    while (n < len && n + 1 < sizeof path && doc[n] != '\n')
        n++;
    memcpy(path, doc, n);
    path[n] = '\0';
    unsigned t = 0;
    int rc = slt_schema_type_at(s, path, &t);
    S_CHECK(rc == 0 || rc == SL_ENOTFOUND || rc == SL_EINVAL);
    S_CHECK(rc != 0 || (t && !(t & ~SLC_JSON_ANY)));
}

/* A and B are the same document: same types, numbers equal as doubles,
 * same strings, members in the same order (encode and parse keep it).
 * Not cJSON_Compare: its time doubles with each level of nested objects,
 * and documents nest up to SLT_DOC_DEPTH_MAX. */
static bool s_same(const cJSON *a, const cJSON *b)
{
    if ((a->type & 0xFF) != (b->type & 0xFF))
        return false;
    if (cJSON_IsNumber(a))
        return a->valuedouble == b->valuedouble;
    if (cJSON_IsString(a))
        return !strcmp(a->valuestring, b->valuestring);
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next)
        if ((cJSON_IsObject(a) && strcmp(x->string, y->string)) || !s_same(x, y))
            return false;
    return !x && !y;
}

static void s_decode(const char *doc, size_t len)
{
    static const char *const types[] = {
        "application/json", "application/x-ndjson", "text/csv", "text/logfmt",
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        cJSON *docs[8];
        size_t n = 99;
        char err[128];
        memset(err, 'x', sizeof err);
        int rc = slt_doc_decode(types[i], doc, len, docs, 8, &n, err, sizeof err);
        S_CHECK(rc == 0 || rc == SL_EINVAL || rc == SL_ETOOBIG);
        S_CHECK(rc == 0 || (n == 0 && memchr(err, 0, sizeof err)));
        for (size_t k = 0; k < n; k++) {
            char *text = NULL;
            size_t tl = 0;
            S_CHECK(slt_doc_encode(docs[k], &text, &tl) == 0);
            cJSON *back = NULL;
            char why[128] = "";
            if (slt_doc_parse(text, tl, &back, why, sizeof why) != 0)
                fprintf(stderr, "fuzz_schema: encoded %.100s does not parse: %s\n",
                        text, why);
            S_CHECK(back && s_same(back, docs[k]));
            cJSON_Delete(back);
            free(text);
            cJSON_Delete(docs[k]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *) data;
    const char *sep = NULL;
    for (size_t i = 0; i + 1 < size && !sep; i++)
        if (text[i] == '\n' && text[i + 1] == '\n')
            sep = text + i;
    size_t slen = sep ? (size_t) (sep - text) : size;
    const char *doc = sep ? sep + 2 : NULL;
    size_t dlen = sep ? size - slen - 2 : 0;
    slt_schema_t *s = NULL, *again = NULL;
    char err[256];
    memset(err, 'x', sizeof err);

    if (doc)
        s_decode(doc, dlen);
    int rc = slt_schema_compile(text, slen, &s, err, sizeof err);
    S_CHECK(rc == 0 || rc == SL_EINVAL || rc == SL_ETOOBIG);
    if (rc) {
        S_CHECK(!s && memchr(err, 0, sizeof err) && err[0]);
        return 0;
    }
    const char *canon = slt_schema_text(s);
    S_CHECK(slt_schema_compile(canon, strlen(canon), &again, err, sizeof err) == 0);
    S_CHECK(!strcmp(slt_schema_text(again), canon));

    slt_schema_error_t errs[S_MAX];
    size_t n = 99;
    memset(errs, 'x', sizeof errs);
    rc = slt_schema_compatible(s, again, SLC_COMPAT_FULL, errs, S_MAX, &n);
    if (rc)
        fprintf(stderr, "fuzz_schema: not compatible with itself: %s: %s\n",
                n ? errs[0].pointer : "", n ? errs[0].rule : "");
    S_CHECK(rc == 0 && n == 0);
    S_CHECK(slt_schema_compatible(s, s, SLC_COMPAT_FULL, NULL, 0, &n) == 0);

    if (doc) {
        cJSON *j = NULL;
        if (slt_doc_parse(doc, dlen, &j, NULL, 0) == 0) {
            S_CHECK(s_validate(s, j) == s_validate(again, j));
            cJSON_Delete(j);
        }
        s_types(s, doc, dlen);
    }
    slt_schema_destroy(&s);
    slt_schema_destroy(&again);
    S_CHECK(!s && !again);
    return 0;
}
