/*  http_parse - routes, NDJSON batches, ack bodies, header rules and the
 *  JSON output buffer of `sluice-http serve` (http_parse.h). Pure: no
 *  libmicrohttpd, no I/O, no state; any thread. JSON is read with cJSON
 *  (Debian's libcjson), which checks each line once.  */
#include "http_parse.h"
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "sluice_codes.h"

void http_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------- out buffer */

void http_buf_init(http_buf_t *self)
{
    memset(self, 0, sizeof *self);
}

void http_buf_clear(http_buf_t *self)
{
    free(self->data);
    http_buf_init(self);
}

char *http_buf_take(http_buf_t *self, size_t *len)
{
    char *data = self->data;

    if (self->oom) {
        free(data);
        data = NULL;
    }
    else if (!data)
        data = calloc(1, 1);
    if (len)
        *len = data ? self->len : 0;
    http_buf_init(self);
    return data;
}

static bool s_reserve(http_buf_t *self, size_t more)
{
    size_t cap;
    char *p;

    if (self->oom)
        return false;
    if (self->len + more + 1 <= self->cap)
        return true;
    cap = self->cap ? self->cap : 256;
    while (cap < self->len + more + 1) {
        if (cap > SIZE_MAX / 2) {
            self->oom = true;
            return false;
        }
        cap *= 2;
    }
    p = realloc(self->data, cap);
    if (!p) {
        self->oom = true;
        return false;
    }
    self->data = p;
    self->cap = cap;
    return true;
}

void http_buf_add(http_buf_t *self, const void *data, size_t len)
{
    if (!s_reserve(self, len))
        return;
    if (len)
        memcpy(self->data + self->len, data, len);
    self->len += len;
    self->data[self->len] = '\0';
}

void http_buf_str(http_buf_t *self, const char *text)
{
    http_buf_add(self, text, strlen(text));
}

void http_buf_printf(http_buf_t *self, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !s_reserve(self, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(self->data + self->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    self->len += (size_t)n;
}

/* Length of the UTF-8 sequence at P (at most N bytes), 0 when invalid. */
static size_t s_utf8_len(const unsigned char *p, size_t n)
{
    size_t len, i;
    uint32_t cp;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

void http_buf_json_str(http_buf_t *self, const char *text, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0, run = 0;

    http_buf_add(self, "\"", 1);
    while (i < len) {
        unsigned char c = p[i];
        size_t u;
        char esc[8];

        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            run++;
            continue;
        }
        http_buf_add(self, p + i - run, run);
        run = 0;
        if (c >= 0x80) {
            u = s_utf8_len(p + i, len - i);
            if (u)
                http_buf_add(self, p + i, u);
            else
                http_buf_str(self, "\\ufffd");
            i += u ? u : 1;
            continue;
        }
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            http_buf_add(self, esc, 2);
        }
        else if (c == '\n')
            http_buf_str(self, "\\n");
        else if (c == '\t')
            http_buf_str(self, "\\t");
        else if (c == '\r')
            http_buf_str(self, "\\r");
        else {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            http_buf_add(self, esc, 6);
        }
        i++;
    }
    http_buf_add(self, p + i - run, run);
    http_buf_add(self, "\"", 1);
}

void http_buf_base64(http_buf_t *self, const void *data, size_t len)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    size_t i, o = 0, out = (len + 2) / 3 * 4;
    char *d;

    if (!s_reserve(self, out + 2))
        return;
    d = self->data + self->len;
    d[o++] = '"';
    for (i = 0; i + 2 < len; i += 3) {
        d[o++] = tab[p[i] >> 2];
        d[o++] = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        d[o++] = tab[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
        d[o++] = tab[p[i + 2] & 63];
    }
    if (i < len) {
        d[o++] = tab[p[i] >> 2];
        if (i + 1 < len) {
            d[o++] = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
            d[o++] = tab[(p[i + 1] & 15) << 2];
        }
        else {
            d[o++] = tab[(p[i] & 3) << 4];
            d[o++] = '=';
        }
        d[o++] = '=';
    }
    d[o++] = '"';
    self->len += o;
    self->data[self->len] = '\0';
}

/* ------------------------------------------------------------- routes */

/* Copy the segment [S, E) into OUT as a name. 0 or SL_EINVAL. */
static int s_name(const char *s, const char *e, char *out, size_t outlen,
                  const char *what, char *err, size_t errlen)
{
    size_t n = (size_t)(e - s);

    if (n == 0) {
        http_errf(err, errlen, "the %s name is empty", what);
        return SL_EINVAL;
    }
    if (n >= outlen) {
        http_errf(err, errlen, "the %s name is longer than %zu bytes", what,
               outlen - 1);
        return SL_EINVAL;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

int http_route_parse(const char *method, const char *path, http_route_t *out,
                     char *err, size_t errlen)
{
    static const char topics[] = "/v1/topics/";
    static const char subs[] = "/v1/subscriptions/";
    const char *s, *slash;
    int rc = 0;

    memset(out, 0, sizeof *out);
    out->allow = "GET";
    if (strcmp(path, "/healthz") == 0)
        out->kind = HTTP_ROUTE_HEALTHZ;
    else if (strcmp(path, "/readyz") == 0)
        out->kind = HTTP_ROUTE_READYZ;
    else if (strncmp(path, topics, sizeof topics - 1) == 0) {
        s = path + sizeof topics - 1;
        if (strchr(s, '/'))
            goto done;
        out->allow = "POST";
        rc = s_name(s, s + strlen(s), out->name, sizeof out->name, "topic",
                    err, errlen);
        if (rc == 0)
            out->kind = HTTP_ROUTE_PUBLISH;
    }
    else if (strncmp(path, subs, sizeof subs - 1) == 0) {
        s = path + sizeof subs - 1;
        slash = strchr(s, '/');
        if (!slash)
            goto done;
        if (strcmp(slash, "/messages") == 0)
            out->kind = HTTP_ROUTE_PULL;
        else if (strcmp(slash, "/ack") == 0)
            out->kind = HTTP_ROUTE_ACK, out->allow = "POST";
        else if (strcmp(slash, "/nack") == 0)
            out->kind = HTTP_ROUTE_NACK, out->allow = "POST";
        else
            goto done;
        rc = s_name(s, slash, out->name, sizeof out->name, "subscription",
                    err, errlen);
        if (rc)
            out->kind = HTTP_ROUTE_NONE;
    }
done:
    /* HEAD is GET without the body: libmicrohttpd drops it. */
    out->method_ok = strcmp(method, out->allow) == 0
                  || (strcmp(out->allow, "GET") == 0 && strcmp(method, "HEAD") == 0);
    return rc;
}

/* ------------------------------------------------------------- batches */

static bool s_blank(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    return true;
}

/* Parse DATA (LEN bytes) as one JSON text; NULL when it is not one.
 * *at (may be NULL) is the byte where parsing stopped. */
static cJSON *s_parse(const char *data, size_t len, size_t *at)
{
    const char *end = NULL;
    cJSON *doc;
    size_t i;

    if (len == 0)
        return NULL;
    doc = cJSON_ParseWithLengthOpts(data, len, &end, false);
    if (!doc) {
        /* cJSON reports the error position through a global; ours is
         * only for the message, so a rough position is fine. */
        if (at)
            *at = 0;
        return NULL;
    }
    /* Anything but blanks after the value is not one JSON text. */
    i = end ? (size_t)(end - data) : len;
    for (; i < len; i++)
        if (data[i] != ' ' && data[i] != '\t' && data[i] != '\r' && data[i] != '\n') {
            cJSON_Delete(doc);
            if (at)
                *at = i;
            return NULL;
        }
    return doc;
}

bool http_json_valid(const char *data, size_t len)
{
    cJSON *doc = s_parse(data, len, NULL);

    cJSON_Delete(doc);
    return doc != NULL;
}

/* The media type of CONTENT_TYPE (before ';', blanks trimmed) compared
 * without case with WANT. */
static bool s_media_is(const char *content_type, const char *want)
{
    size_t n, w = strlen(want);

    if (!content_type)
        return false;
    while (*content_type == ' ')
        content_type++;
    n = strcspn(content_type, "; \t");
    return n == w && strncasecmp(content_type, want, n) == 0;
}

bool http_content_type_is_json(const char *content_type)
{
    size_t n;

    if (!content_type)
        return false;
    if (s_media_is(content_type, "application/json"))
        return true;
    n = strcspn(content_type, "; \t");
    return n > 5 && strncasecmp(content_type + n - 5, "+json", 5) == 0;
}

bool http_content_type_is_ndjson(const char *content_type)
{
    return s_media_is(content_type, "application/x-ndjson")
        || s_media_is(content_type, "application/jsonl");
}

/* The key of line LINE (its parsed DOC) into ITEM. 0 or SL_EINVAL. */
static int s_line_key(const cJSON *doc, const char *key_field,
                      const char *idem_key, http_item_t *item, char *err,
                      size_t errlen)
{
    const cJSON *v;
    int n;

    if (key_field) {
        v = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, key_field)
                                : NULL;
        if (cJSON_IsString(v) && v->valuestring[0])
            n = snprintf(item->msg_id, sizeof item->msg_id, "%s", v->valuestring);
        else if (cJSON_IsNumber(v))
            n = snprintf(item->msg_id, sizeof item->msg_id, "%.17g", v->valuedouble);
        else {
            http_errf(err, errlen, "line %u: no key: the line must be an object "
                   "with member \"%s\" (a non-empty string or a number)",
                   item->line, key_field);
            return SL_EINVAL;
        }
        if (n < 0 || (size_t)n >= sizeof item->msg_id) {
            http_errf(err, errlen, "line %u: the key in \"%s\" is longer than %d "
                   "bytes", item->line, key_field, HTTP_MSG_ID_MAX);
            return SL_EINVAL;
        }
    }
    else if (idem_key)
        snprintf(item->msg_id, sizeof item->msg_id, "%s/%u", idem_key, item->line);
    return 0;
}

int http_ndjson_parse(const char *body, size_t len, const char *key_field,
                      const char *idem_key, size_t max_items,
                      http_item_t **items, size_t *n, uint32_t *bad_line,
                      char *err, size_t errlen)
{
    http_item_t *out = NULL, *grown;
    size_t cap = 0, count = 0, pos = 0, at;
    uint32_t line = 0;
    int rc = 0;

    *items = NULL;
    *n = 0;
    *bad_line = 0;
    while (pos < len) {
        const char *s = body + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - s) : len - pos;
        cJSON *doc;

        pos += l + (nl ? 1 : 0);
        line++;
        if (s_blank(s, l))
            continue;
        if (count == max_items) {
            http_errf(err, errlen, "more than %zu messages in one batch", max_items);
            rc = SL_ETOOBIG;
            goto fail;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            grown = realloc(out, cap * sizeof *out);
            if (!grown) {
                rc = SL_ENOMEM;
                goto fail;
            }
            out = grown;
        }
        at = 0;
        doc = s_parse(s, l, &at);
        if (!doc) {
            http_errf(err, errlen, "line %u is not JSON%s", line,
                   at ? " (more after the first value)" : "");
            rc = SL_EINVAL;
            *bad_line = line;
            goto fail;
        }
        memset(&out[count], 0, sizeof out[count]);
        out[count].data = s;
        out[count].len = l;
        /* A '\r' before the '\n' is the line end, not the payload. */
        while (out[count].len > 0 && s[out[count].len - 1] == '\r')
            out[count].len--;
        out[count].line = line;
        rc = s_line_key(doc, key_field, idem_key, &out[count], err, errlen);
        cJSON_Delete(doc);
        if (rc) {
            *bad_line = line;
            goto fail;
        }
        count++;
    }
    if (count == 0) {
        http_errf(err, errlen, "the batch holds no message (an NDJSON body has "
               "one JSON text per line)");
        rc = SL_EINVAL;
        goto fail;
    }
    *items = out;
    *n = count;
    return 0;
fail:
    free(out);
    return rc;
}

/* ------------------------------------------------------------ ack bodies */

int http_tokens_parse(const char *body, size_t len, size_t max,
                      char ***tokens, size_t *n, uint32_t *delay_ms,
                      char *err, size_t errlen)
{
    cJSON *doc = s_parse(body, len, NULL), *m, *t;
    size_t count = 0, i = 0, bytes = 0;
    char **out = NULL, *p;
    int rc = SL_EINVAL;

    *tokens = NULL;
    *n = 0;
    *delay_ms = 0;
    if (!cJSON_IsObject(doc)) {
        http_errf(err, errlen, "the body is not a JSON object: send "
               "{\"tokens\":[\"...\"]}");
        goto done;
    }
    cJSON_ArrayForEach(m, doc) {
        if (strcmp(m->string, "tokens") == 0) {
            if (!cJSON_IsArray(m)) {
                http_errf(err, errlen, "\"tokens\" is not an array of strings");
                goto done;
            }
        }
        else if (strcmp(m->string, "delay_ms") == 0) {
            if (!cJSON_IsNumber(m) || m->valuedouble < 0
                || m->valuedouble > 86400000.0
                || m->valuedouble != (double)(uint32_t)m->valuedouble) {
                http_errf(err, errlen, "\"delay_ms\" must be a whole number of "
                       "milliseconds from 0 to 86400000");
                goto done;
            }
            *delay_ms = (uint32_t)m->valuedouble;
        }
        else {
            http_errf(err, errlen, "unknown member \"%.64s\" (the body has "
                   "\"tokens\" and, for a nack, \"delay_ms\")", m->string);
            goto done;
        }
    }
    m = cJSON_GetObjectItemCaseSensitive(doc, "tokens");
    cJSON_ArrayForEach(t, m) {
        if (!cJSON_IsString(t) || !t->valuestring[0]
            || strlen(t->valuestring) > HTTP_TOKEN_MAX) {
            http_errf(err, errlen, "tokens[%zu] is not a token (a string of 1 "
                   "to %d characters)", count, HTTP_TOKEN_MAX);
            goto done;
        }
        count++;
        bytes += strlen(t->valuestring) + 1;
    }
    if (count == 0) {
        http_errf(err, errlen, "no tokens: send {\"tokens\":[\"...\"]}");
        goto done;
    }
    if (count > max) {
        http_errf(err, errlen, "%zu tokens: at most %zu per request", count, max);
        rc = SL_ETOOBIG;
        goto done;
    }
    out = malloc(count * sizeof *out + bytes);
    if (!out) {
        rc = SL_ENOMEM;
        goto done;
    }
    p = (char *)(out + count);
    cJSON_ArrayForEach(t, m) {
        size_t l = strlen(t->valuestring) + 1;

        memcpy(p, t->valuestring, l);
        out[i++] = p;
        p += l;
    }
    *tokens = out;
    *n = count;
    rc = 0;
done:
    cJSON_Delete(doc);
    return rc;
}

/* ------------------------------------------------------------- headers */

const char *http_bearer(const char *value)
{
    if (!value || strncasecmp(value, "Bearer ", 7) != 0)
        return NULL;
    value += 7;
    while (*value == ' ')
        value++;
    return *value ? value : NULL;
}

int http_header_key(const char *name, char *out, size_t outlen)
{
    static const char prefix[] = "sluice-header-";
    size_t i, n;

    if (strncasecmp(name, prefix, sizeof prefix - 1) != 0)
        return 0;
    name += sizeof prefix - 1;
    n = strlen(name);
    if (n == 0 || n >= outlen)
        return -1;
    for (i = 0; i < n; i++) {
        char c = name[i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
              || c == '_' || c == '.'))
            return -1;
        out[i] = c;
    }
    out[n] = '\0';
    return 1;
}

bool http_idem_key_valid(const char *key)
{
    size_t i;

    for (i = 0; key[i]; i++)
        if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
            return false;
    return i > 0 && i <= HTTP_IDEM_KEY_MAX;
}

/* --------------------------------------------------------- broker texts */

bool http_schema_errors(const char *text, http_buf_t *out)
{
    const char *p, *colon, *end, *sep;
    bool first = true;

    if (strncmp(text, "schema ", 7) != 0 || !(p = strstr(text, ": "))) {
        http_buf_str(out, "[{\"pointer\":\"\",\"rule\":");
        http_buf_json_str(out, text, strlen(text));
        http_buf_str(out, "}]");
        return false;
    }
    p += 2;
    http_buf_str(out, "[");
    /* "/p: rule; /q: rule": a reason starts with '/' or is the whole
     * document ("": the pointer is empty, the text starts with ": "). */
    while (*p) {
        end = p;
        for (;;) {
            sep = strstr(end, "; ");
            if (!sep || sep[2] == '/' || sep[2] == ':') {
                end = sep ? sep : p + strlen(p);
                break;
            }
            end = sep + 2;
        }
        colon = NULL;
        for (const char *q = p; q + 1 < end; q++)
            if (q[0] == ':' && q[1] == ' ') {
                colon = q;
                break;
            }
        http_buf_str(out, first ? "{\"pointer\":" : ",{\"pointer\":");
        first = false;
        if (colon && (*p == '/' || colon == p)) {
            http_buf_json_str(out, p, (size_t)(colon - p));
            http_buf_str(out, ",\"rule\":");
            http_buf_json_str(out, colon + 2, (size_t)(end - colon - 2));
        }
        else {
            http_buf_str(out, "\"\",\"rule\":");
            http_buf_json_str(out, p, (size_t)(end - p));
        }
        http_buf_str(out, "}");
        p = *end ? end + 2 : end;
    }
    http_buf_str(out, "]");
    return true;
}
