/*  http_parse - the pure parts of `sluice-http serve`: routes, NDJSON
 *  batches with their per-line idempotency keys, ack/nack bodies, the
 *  bearer header, message headers from request headers, the broker's
 *  schema refusal text as JSON, and a growable JSON output buffer.
 *  No libmicrohttpd, no sockets, no state between calls: any thread, and
 *  fuzzed by tests/fuzz/fuzz_http_ndjson.c.  */
#ifndef HTTP_PARSE_H
#define HTTP_PARSE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest msg-id the broker takes (its dedup key). */
#define HTTP_MSG_ID_MAX 256
/* Longest Idempotency-Key accepted: the batch form appends "/LINE". */
#define HTTP_IDEM_KEY_MAX 200

/* printf FMT into ERR (ERRLEN bytes; nothing when ERR is NULL or ERRLEN
 * is 0): the "why" text of the adapter's functions that take an ERR
 * buffer, serve's and push's alike. */
void http_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------- out buffer */

/* A growable byte buffer. Allocation failure sets OOM and drops later
 * appends: check once at the end. */
typedef struct {
    char *data;                 /* owned; NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
    bool oom;
} http_buf_t;

void http_buf_init(http_buf_t *self);
/* Free the data. */
void http_buf_clear(http_buf_t *self);
/* Hand the data over (caller frees; never NULL unless OOM) and reset. */
char *http_buf_take(http_buf_t *self, size_t *len);
void http_buf_add(http_buf_t *self, const void *data, size_t len);
void http_buf_str(http_buf_t *self, const char *text);
void http_buf_printf(http_buf_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* TEXT (LEN bytes) as a JSON string literal, quotes included; bytes that
 * are not UTF-8 become U+FFFD. */
void http_buf_json_str(http_buf_t *self, const char *text, size_t len);
/* LEN bytes as standard base64 inside quotes. */
void http_buf_base64(http_buf_t *self, const void *data, size_t len);

/* ------------------------------------------------------------- routes */

typedef enum {
    HTTP_ROUTE_NONE = 0,        /* no such path: 404 */
    HTTP_ROUTE_HEALTHZ,         /* GET /healthz */
    HTTP_ROUTE_READYZ,          /* GET /readyz */
    HTTP_ROUTE_PUBLISH,         /* POST /v1/topics/{topic} */
    HTTP_ROUTE_PULL,            /* GET /v1/subscriptions/{name}/messages */
    HTTP_ROUTE_ACK,             /* POST /v1/subscriptions/{name}/ack */
    HTTP_ROUTE_NACK,            /* POST /v1/subscriptions/{name}/nack */
} http_route_kind_t;

typedef struct {
    http_route_kind_t kind;
    char name[256];             /* the topic or subscription name */
    const char *allow;          /* the method the path takes ("GET", "POST") */
    bool method_ok;             /* METHOD is ALLOW (else 405) */
} http_route_t;

/* Match METHOD and PATH (decoded, without the query). Returns 0, or
 * SL_EINVAL with ERR when a name is empty or longer than 255 bytes. An
 * unknown path is kind HTTP_ROUTE_NONE, not an error. */
int http_route_parse(const char *method, const char *path, http_route_t *out,
                     char *err, size_t errlen);

/* ------------------------------------------------------------- batches */

/* One message of a request. Spans point into the request body. */
typedef struct {
    const char *data;           /* the payload bytes (in the body) */
    size_t len;
    uint32_t line;              /* 1-based line of the body; 0 for a single message */
    char msg_id[HTTP_MSG_ID_MAX + 1];   /* "" = none */
} http_item_t;

/* Split the NDJSON BODY (LEN bytes) into messages: one per line, each a
 * JSON text; blank lines (spaces, tabs, a '\r') are skipped but counted.
 * Keys: with KEY_FIELD (NULL = none) each line must be an object whose
 * top-level member KEY_FIELD is a string or a number, and that value is
 * the line's msg-id; else with IDEM_KEY (NULL = none) the msg-id of line N
 * is "IDEM_KEY/N". On 0, *items (caller frees) holds *n items (n >= 1).
 * SL_EINVAL with ERR ("line 3: ...") and *bad_line set for a line that is
 * not JSON or has no key, or a body without any line; SL_ETOOBIG when
 * more than MAX_ITEMS lines hold messages; SL_ENOMEM. */
int http_ndjson_parse(const char *body, size_t len, const char *key_field,
                      const char *idem_key, size_t max_items,
                      http_item_t **items, size_t *n, uint32_t *bad_line,
                      char *err, size_t errlen);

/* True when DATA (LEN bytes) is one JSON text (RFC 8259, any value,
 * surrounding blanks allowed). */
bool http_json_valid(const char *data, size_t len);

/* True when CONTENT_TYPE names JSON: application/json or a +json type,
 * parameters ignored, any case. */
bool http_content_type_is_json(const char *content_type);

/* True when CONTENT_TYPE is application/x-ndjson (or application/jsonl). */
bool http_content_type_is_ndjson(const char *content_type);

/* ------------------------------------------------------------ ack bodies */

#define HTTP_TOKEN_MAX 64       /* an ack token's longest text */

/* The body of an ack or nack: {"tokens":["...", ...]} with, for a nack,
 * an optional "delay_ms" (0 .. 86400000). Unknown members are refused.
 * On 0, *tokens (caller frees; one allocation) holds *n strings (n >= 1,
 * at most MAX). SL_EINVAL with ERR; SL_ETOOBIG over MAX tokens. */
int http_tokens_parse(const char *body, size_t len, size_t max,
                      char ***tokens, size_t *n, uint32_t *delay_ms,
                      char *err, size_t errlen);

/* ------------------------------------------------------------- headers */

/* The token of an "Authorization: Bearer TOKEN" value (borrowed from
 * VALUE), or NULL when VALUE is not that form. */
const char *http_bearer(const char *value);

/* The message header key for request header NAME when it is
 * "Sluice-Header-KEY" (any case): KEY lower-cased into OUT (OUTLEN bytes).
 * 1 when it is one, 0 when NAME is another header, -1 when KEY is empty,
 * too long or not letters, digits, '-', '_', '.'. */
int http_header_key(const char *name, char *out, size_t outlen);

/* An Idempotency-Key value: 1 to HTTP_IDEM_KEY_MAX printable ASCII
 * characters (no controls). */
bool http_idem_key_valid(const char *key);

/* --------------------------------------------------------- broker texts */

/* The broker's schema refusal "schema S@V: /p: rule; /q: rule" as a JSON
 * array of {"pointer":..,"rule":..} appended to OUT; a text of another
 * shape gives one item with pointer "" and the whole text as rule.
 * Returns true when TEXT is a schema refusal. */
bool http_schema_errors(const char *text, http_buf_t *out);

#endif
