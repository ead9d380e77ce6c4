/*  fuzz_map - libFuzzer target for slt_map. Input: MAPPING "\n---\n"
 *  DOCUMENT. The mapping is compiled without types and against a made-up
 *  schema (a hash of each path decides its existence and types, driving
 *  the checker and its suggestions); when it compiles and the document is
 *  JSON (slt_doc_parse), it runs on it. Checks: ERR NUL-terminated inside
 *  its length and empty exactly on success, documented codes, an output
 *  that owns all its memory (no cJSON reference node survives; ASan sees
 *  the rest, the document being freed before the output is read) and
 *  whose JSON text (slt_doc_encode) parses back equal (every string built
 *  is valid UTF-8, every number representable). One thread.  */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "slt_doc.h"
#include "slt_map.h"

#define S_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_map: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

#define S_ERR 4096                  /* ERR given to the library */
#define S_GUARD 64                  /* bytes after it that must stay untouched */

/* A schema that is the same for the same path: FNV-1a of the path. */
static int s_types(void *arg, const char *path, unsigned *types)
{
    uint32_t h = 2166136261u;
    (void) arg;
    for (const char *p = path; *p; p++)
        h = (h ^ (uint8_t) *p) * 16777619u;
    if (strcmp(path, "$") != 0 && h % 4 == 0)
        return SL_ENOTFOUND;
    *types = (h >> 8) & SLT_MAP_T_ANY;
    return 0;
}

static void s_err_ok(const char *err, int rc)
{
    const unsigned char *g = (const unsigned char *) err + S_ERR;
    S_CHECK(memchr(err, '\0', S_ERR) != NULL);
    for (int k = 0; k < S_GUARD; k++)
        S_CHECK(g[k] == 0xA5);
    S_CHECK((rc == 0) == (err[0] == '\0'));
}

/* Nothing in J borrows: no reference node, no constant key. */
static void s_owns_all(const cJSON *j)
{
    const cJSON *e;
    S_CHECK(!(j->type & (cJSON_IsReference | cJSON_StringIsConst)));
    cJSON_ArrayForEach(e, j)
        s_owns_all(e);
}

/* Evaluate M on a fresh parse of DOC (LEN bytes) with META; the document
 * is freed before the output is looked at. */
static void s_run(const slt_map_t *m, const char *doc, size_t len, const cJSON *meta)
{
    char err[S_ERR + S_GUARD];
    cJSON *d = NULL, *out = (cJSON *) 1, *back = NULL;
    bool dropped = true;
    char *text = NULL;
    size_t tlen = 0;
    S_CHECK(slt_doc_parse(doc, len, &d, NULL, 0) == 0);
    memset(err, 0xA5, sizeof err);
    int rc = slt_map_eval(m, d, meta, &out, &dropped, err, S_ERR);
    cJSON_Delete(d);
    S_CHECK(rc == 0 || rc == SL_EINVAL || rc == SL_ENOMEM);
    s_err_ok(err, rc);
    if (rc != 0) {
        S_CHECK(out == NULL && !dropped);
        return;
    }
    if (dropped) {
        S_CHECK(out == NULL);
        return;
    }
    S_CHECK(cJSON_IsObject(out));
    s_owns_all(out);
    S_CHECK(slt_doc_encode(out, &text, &tlen) == 0);
    S_CHECK(slt_doc_parse(text, tlen, &back, NULL, 0) == 0);
    S_CHECK(cJSON_Compare(back, out, true));
    cJSON_Delete(back);
    free(text);
    cJSON_Delete(out);
}

static void s_compile(const char *yaml, size_t len, slt_map_types_fn *types,
                      const char *doc, size_t dlen, const cJSON *meta)
{
    char err[S_ERR + S_GUARD], tiny[17 + S_GUARD];
    slt_map_t *m = (slt_map_t *) 1;
    memset(err, 0xA5, sizeof err);
    int rc = slt_map_compile(yaml, len, "fuzz.yaml", types, NULL, &m, err, S_ERR);
    S_CHECK(rc == 0 || rc == SL_EINVAL || rc == SL_ETOOBIG || rc == SL_ENOMEM);
    s_err_ok(err, rc);
    if (rc != 0) {
        S_CHECK(m == NULL);
        /* The same diagnostics cut to 16 characters, still terminated. */
        memset(tiny, 0xA5, sizeof tiny);
        S_CHECK(slt_map_compile(yaml, len, "fuzz.yaml", types, NULL, &m, tiny, 17) == rc);
        S_CHECK(memchr(tiny, '\0', 17) != NULL && strncmp(tiny, err, strlen(tiny)) == 0);
        for (int k = 17; k < 17 + S_GUARD; k++)
            S_CHECK((unsigned char) tiny[k] == 0xA5);
        return;
    }
    S_CHECK(m != NULL);
    S_CHECK(slt_map_name(m)[0] && slt_map_from(m)[0] && slt_map_to(m)[0]);
    if (doc)
        s_run(m, doc, dlen, meta);
    slt_map_destroy(&m);
    S_CHECK(m == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *) data;
    const char *sep = NULL;
    for (size_t k = 0; k + 5 <= size && !sep; k++)
        if (memcmp(text + k, "\n---\n", 5) == 0)
            sep = text + k;
    static const char meta_text[] = "{\"topic\": \"shop.orders\", \"offset\": 7,"
        " \"headers\": {\"adapter\": \"http\"}, \"lineage\": {\"route\": \"r1\"}}";
    size_t ylen = sep ? (size_t) (sep - text) : size;
    const char *doc = NULL;
    size_t dlen = 0;
    cJSON *meta = NULL, *probe = NULL;
    S_CHECK(slt_doc_parse(meta_text, sizeof meta_text - 1, &meta, NULL, 0) == 0);
    /* Only a document that parses is run (each run parses its own copy). */
    if (sep && slt_doc_parse(sep + 5, size - ylen - 5, &probe, NULL, 0) == 0) {
        doc = sep + 5;
        dlen = size - ylen - 5;
    }
    cJSON_Delete(probe);
    s_compile(text, ylen, NULL, doc, dlen, meta);
    s_compile(text, ylen, s_types, doc, dlen, meta);
    cJSON_Delete(meta);
    return 0;
}
