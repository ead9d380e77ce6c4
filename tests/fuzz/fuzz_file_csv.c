/*  fuzz_file_csv - libFuzzer target for the CSV reader of `sluice-file
 *  import` (adapters/file/file_csv.c) and the typing of its rows into JSON
 *  (file_record.c). Input: the first byte picks the separator, the rest
 *  is the CSV text; bytes 2..N also serve as a JSON Schema for the typing
 *  when they parse. Checks: the reader always ends, each record moves
 *  forward inside the input, lines never go back, every field is
 *  NUL-terminated at its length; each record written back with RFC 4180
 *  quoting reads back as the same fields; every row typed by the first
 *  record as header is JSON that parses. Single thread; no state between
 *  inputs.  */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "file_csv.h"
#include "file_record.h"

/* Like assert, but kept under NDEBUG. */
#define S_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_file_csv: %s:%d: check failed: %s\n", \
                    __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

/* FIELDS written as one RFC 4180 record, every field quoted. Caller frees. */
static char *s_encode(const file_csv_field_t *f, size_t n, char sep, size_t *len)
{
    size_t cap = 2;
    for (size_t i = 0; i < n; i++)
        cap += 2 * f[i].len + 3;
    char *out = malloc(cap), *p = out;
    S_CHECK(out);
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = sep;
        *p++ = '"';
        for (size_t k = 0; k < f[i].len; k++) {
            if (f[i].ptr[k] == '"')
                *p++ = '"';
            *p++ = f[i].ptr[k];
        }
        *p++ = '"';
    }
    *p++ = '\n';
    *len = (size_t) (p - out);
    return out;
}

/* The re-encoded record reads back as the same fields. */
static void s_roundtrip(const file_csv_field_t *f, size_t n, char sep)
{
    size_t len, m, end;
    uint64_t line;
    char err[256];
    const file_csv_field_t *g;
    /* Keep a copy: the reader's fields live in its own buffer. */
    file_csv_field_t *copy = malloc(n * sizeof *copy);
    S_CHECK(copy);
    for (size_t i = 0; i < n; i++) {
        copy[i] = f[i];
        copy[i].ptr = malloc(f[i].len + 1);
        S_CHECK(copy[i].ptr);
        memcpy((char *) copy[i].ptr, f[i].ptr, f[i].len + 1);
    }
    char *text = s_encode(copy, n, sep, &len);
    file_csv_t *r = file_csv_new(text, len, sep);
    S_CHECK(r);
    S_CHECK(file_csv_next(r, &g, &m, &line, &end, err, sizeof err) == 1);
    S_CHECK(m == n && end == len && line == 1);
    for (size_t i = 0; i < n; i++)
        S_CHECK(g[i].len == copy[i].len && memcmp(g[i].ptr, copy[i].ptr, g[i].len) == 0);
    S_CHECK(file_csv_next(r, &g, &m, &line, &end, err, sizeof err) == 0);
    file_csv_destroy(&r);
    for (size_t i = 0; i < n; i++)
        free((char *) copy[i].ptr);
    free(copy);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char seps[] = ",;\t|";
    if (size < 1)
        return 0;
    char sep = seps[data[0] % 4];
    const char *text = (const char *) data + 1;
    size_t len = size - 1;
    char *schema = malloc(len + 1);
    S_CHECK(schema);
    memcpy(schema, text, len);
    schema[len] = '\0';
    file_record_t *rec = file_record_from_schema(schema);
    file_csv_t *r = file_csv_new(text, len, sep);
    S_CHECK(rec && r);
    const file_csv_field_t *f;
    size_t n, end, last_end = 0;
    uint64_t line, last_line = 0;
    char err[256];
    int k;
    bool header = false;
    while ((k = file_csv_next(r, &f, &n, &line, &end, err, sizeof err)) != 0) {
        S_CHECK(end > last_end && end <= len);
        S_CHECK(line >= last_line && line >= 1);
        last_end = end;
        last_line = line;
        if (k < 0) {
            S_CHECK(err[0]);
            continue;
        }
        S_CHECK(n >= 1);
        for (size_t i = 0; i < n; i++)
            S_CHECK(f[i].ptr[f[i].len] == '\0');
        s_roundtrip(f, n, sep);
        if (!header) {
            header = file_record_header(rec, f, n, err, sizeof err) == 0;
            if (!header)
                break;
            continue;
        }
        char *json = NULL;
        size_t jlen;
        if (file_record_json(rec, f, n, &json, &jlen, err, sizeof err) == 0) {
            cJSON *v = cJSON_ParseWithLength(json, jlen);
            S_CHECK(cJSON_IsObject(v));
            cJSON_Delete(v);
            free(json);
        }
    }
    file_csv_destroy(&r);
    file_record_destroy(&rec);
    free(schema);
    return 0;
}
