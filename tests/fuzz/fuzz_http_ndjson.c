/*  fuzz_http_ndjson - libFuzzer target for the request parsing of
 *  `sluice-http serve` (adapters/http/http_parse.c): NDJSON batches with
 *  their per-line keys, ack/nack bodies, routes, Sluice-Header-* names,
 *  the bearer header, Idempotency-Key, the broker's schema text, and the
 *  JSON writer. Input: a first line of options "KEYFIELD\tIDEMKEY" (each
 *  may be empty), then the body. Checks the documented invariants: every
 *  item is one JSON text inside the body, lines rise, keys fit the
 *  broker's msg-id, and everything the JSON writer makes parses back.
 *  Single thread; no state between inputs.  */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http_parse.h"

/* Like assert, but kept under NDEBUG. */
#define S_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_http_ndjson: %s:%d: check failed: %s\n", \
                    __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

/* TEXT written as a JSON string must parse back as one JSON text. */
static void s_json_roundtrip(const char *text, size_t len)
{
    http_buf_t b;

    http_buf_init(&b);
    http_buf_str(&b, "[");
    http_buf_json_str(&b, text, len);
    http_buf_str(&b, ",");
    http_buf_base64(&b, text, len);
    http_buf_str(&b, "]");
    S_CHECK(!b.oom);
    S_CHECK(http_json_valid(b.data, b.len));
    http_buf_clear(&b);
}

static void s_ndjson(const char *body, size_t len, const char *key_field,
                     const char *idem)
{
    http_item_t *items = NULL;
    size_t n = 0, i;
    uint32_t bad = 0, last = 0;
    char err[512];
    int rc;

    rc = http_ndjson_parse(body, len, key_field, idem, 1000, &items, &n, &bad,
                           err, sizeof err);
    if (rc) {
        S_CHECK(items == NULL && n == 0);
        S_CHECK(err[0] != '\0');
        return;
    }
    S_CHECK(n >= 1 && n <= 1000);
    for (i = 0; i < n; i++) {
        const http_item_t *it = &items[i];

        S_CHECK(it->data >= body && it->data + it->len <= body + len);
        S_CHECK(memchr(it->data, '\n', it->len) == NULL);
        S_CHECK(it->line > last);
        last = it->line;
        S_CHECK(http_json_valid(it->data, it->len));
        S_CHECK(strlen(it->msg_id) <= HTTP_MSG_ID_MAX);
        if (key_field)
            S_CHECK(it->msg_id[0] != '\0');
        else if (idem)
            S_CHECK(strncmp(it->msg_id, idem, strlen(idem)) == 0);
        else
            S_CHECK(it->msg_id[0] == '\0');
    }
    free(items);
}

static void s_tokens(const char *body, size_t len)
{
    char **tokens = NULL, err[256];
    size_t n = 0, i;
    uint32_t delay = 0;

    if (http_tokens_parse(body, len, 100, &tokens, &n, &delay, err, sizeof err) == 0) {
        S_CHECK(n >= 1 && n <= 100 && delay <= 86400000u);
        for (i = 0; i < n; i++)
            S_CHECK(tokens[i][0] && strlen(tokens[i]) <= HTTP_TOKEN_MAX);
        free(tokens);
    }
    else
        S_CHECK(tokens == NULL && n == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1), *nl, *tab, *body, *text;
    const char *key_field = NULL, *idem = NULL, *bearer;
    http_route_t route;
    http_buf_t b;
    char key[64], err[256];
    size_t blen;
    int r;

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    nl = memchr(copy, '\n', size);
    body = nl ? nl + 1 : copy + size;
    blen = size - (size_t)(body - copy);
    if (nl) {
        *nl = '\0';
        tab = strchr(copy, '\t');
        if (tab) {
            *tab = '\0';
            if (tab[1])
                idem = tab + 1;
        }
        if (copy[0])
            key_field = copy;
    }
    if (idem && !http_idem_key_valid(idem))
        idem = NULL;
    s_ndjson(body, blen, key_field, idem);
    s_tokens(body, blen);
    s_json_roundtrip(body, blen);

    /* The rest read the body as one C string (headers and paths are). */
    text = body;
    if (http_route_parse("POST", text, &route, err, sizeof err) == 0
        && route.kind != HTTP_ROUTE_NONE && route.kind != HTTP_ROUTE_HEALTHZ
        && route.kind != HTTP_ROUTE_READYZ)
        S_CHECK(route.name[0] != '\0' && strlen(route.name) < sizeof route.name);
    r = http_header_key(text, key, sizeof key);
    if (r == 1)
        S_CHECK(key[0] && strlen(key) < sizeof key);
    bearer = http_bearer(text);
    if (bearer)
        S_CHECK(bearer >= text && bearer < text + strlen(text) && *bearer);
    (void) http_content_type_is_json(text);
    (void) http_content_type_is_ndjson(text);
    http_buf_init(&b);
    http_schema_errors(text, &b);
    S_CHECK(!b.oom && http_json_valid(b.data, b.len));
    http_buf_clear(&b);
    free(copy);
    return 0;
}
