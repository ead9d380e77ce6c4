/*  fuzz_map - libFuzzer target for slc_map. Input: MAPPING "\n---\n"
 *  DOCUMENT. The mapping is compiled without types and against a made-up
 *  schema (a hash of each path decides its existence and types, driving
 *  the checker and its suggestions); when it compiles and the document is
 *  JSON, it runs on it. Checks: ERR NUL-terminated inside its length and
 *  empty exactly on success, documented codes, an output whose JSON text
 *  parses back equal (every string built is valid UTF-8). One thread.  */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "slc_map.h"

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
    *types = (h >> 8) & SLC_MAP_T_ANY;
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

static void s_run(const slc_map_t *m, const json_t *doc, const json_t *meta)
{
    char err[S_ERR + S_GUARD];
    json_t *out = (json_t *) 1;
    bool dropped = true;
    memset(err, 0xA5, sizeof err);
    int rc = slc_map_eval(m, doc, meta, &out, &dropped, err, S_ERR);
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
    S_CHECK(json_is_object(out));
    char *text = json_dumps(out, JSON_COMPACT);
    S_CHECK(text != NULL);
    json_error_t e;
    json_t *back = json_loads(text, 0, &e);
    S_CHECK(back != NULL);
    S_CHECK(json_equal(back, out));
    json_decref(back);
    free(text);
    json_decref(out);
}

static void s_compile(const char *yaml, size_t len, slc_map_types_fn *types,
                      const json_t *doc, const json_t *meta)
{
    char err[S_ERR + S_GUARD], tiny[17 + S_GUARD];
    slc_map_t *m = (slc_map_t *) 1;
    memset(err, 0xA5, sizeof err);
    int rc = slc_map_compile(yaml, len, "fuzz.yaml", types, NULL, &m, err, S_ERR);
    S_CHECK(rc == 0 || rc == SL_EINVAL || rc == SL_ETOOBIG || rc == SL_ENOMEM);
    s_err_ok(err, rc);
    if (rc != 0) {
        S_CHECK(m == NULL);
        /* The same diagnostics cut to 16 characters, still terminated. */
        memset(tiny, 0xA5, sizeof tiny);
        S_CHECK(slc_map_compile(yaml, len, "fuzz.yaml", types, NULL, &m, tiny, 17) == rc);
        S_CHECK(memchr(tiny, '\0', 17) != NULL && strncmp(tiny, err, strlen(tiny)) == 0);
        for (int k = 17; k < 17 + S_GUARD; k++)
            S_CHECK((unsigned char) tiny[k] == 0xA5);
        return;
    }
    S_CHECK(m != NULL);
    S_CHECK(slc_map_name(m)[0] && slc_map_from(m)[0] && slc_map_to(m)[0]);
    if (doc)
        s_run(m, doc, meta);
    slc_map_destroy(&m);
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
    size_t ylen = sep ? (size_t) (sep - text) : size;
    json_t *doc = NULL, *meta = json_pack("{s:s, s:i, s:{s:s}, s:{s:s}}", "topic", "shop.orders",
                                          "offset", 7, "headers", "adapter", "http",
                                          "lineage", "route", "r1");
    S_CHECK(meta != NULL);
    if (sep) {
        json_error_t e;
        doc = json_loadb(sep + 5, size - ylen - 5, JSON_DECODE_ANY, &e);
    }
    s_compile(text, ylen, NULL, doc, meta);
    s_compile(text, ylen, s_types, doc, meta);
    json_decref(doc);
    json_decref(meta);
    return 0;
}
