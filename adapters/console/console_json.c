/*  console_json - messages as JSON, times, body reads (console_json.h).
 *  Pure functions; any thread. Base64 is libsodium's, JSON cJSON's.  */
#include "console_json.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool console_utf8(const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0, k, need;
    uint32_t cp;

    while (i < n) {
        unsigned char c = s[i];

        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            need = 1;
            cp = c & 0x1f;
        }
        else if ((c & 0xf0) == 0xe0) {
            need = 2;
            cp = c & 0x0f;
        }
        else if ((c & 0xf8) == 0xf0) {
            need = 3;
            cp = c & 0x07;
        }
        else
            return false;
        if (i + need >= n)
            return false;
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
        if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800)
            || (need == 3 && (cp < 0x10000 || cp > 0x10ffff))
            || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

cJSON *console_add_u64(cJSON *obj, const char *name, uint64_t v)
{
    return cJSON_AddNumberToObject(obj, name, (double)v);
}

/* The payload: text when it is UTF-8, else base64; and parsed when JSON. */
static void s_payload(cJSON *o, const char *p, size_t n)
{
    char *text, *b64;
    cJSON *parsed = NULL;
    size_t b64len;

    if (console_utf8(p, n) && (text = malloc(n + 1))) {
        memcpy(text, p, n);
        text[n] = '\0';
        cJSON_AddStringToObject(o, "payload", text);
        cJSON_AddStringToObject(o, "payload_encoding", "utf8");
        parsed = cJSON_ParseWithLength(text, n);
        free(text);
    }
    else {
        b64len = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
        b64 = malloc(b64len);
        if (b64)
            sodium_bin2base64(b64, b64len, (const unsigned char *)p, n,
                              sodium_base64_VARIANT_ORIGINAL);
        cJSON_AddStringToObject(o, "payload", b64 ? b64 : "");
        cJSON_AddStringToObject(o, "payload_encoding", "base64");
        free(b64);
    }
    cJSON_AddItemToObject(o, "json", parsed ? parsed : cJSON_CreateNull());
}

cJSON *console_msg_json(const sl_msg_t *msg)
{
    cJSON *o = cJSON_CreateObject(), *h;
    const char *key, *value;
    const void *payload;
    size_t len = 0, i, n;

    if (!o)
        return NULL;
    console_add_u64(o, "offset", sl_msg_offset(msg));
    console_add_u64(o, "ingest_us", sl_msg_ingest_us(msg));
    cJSON_AddStringToObject(o, "content_type", sl_msg_content_type(msg));
    h = cJSON_AddObjectToObject(o, "headers");
    n = sl_msg_header_count(msg);
    for (i = 0; h && i < n; i++)
        if (sl_msg_header_at(msg, i, &key, &value) == 0)
            cJSON_AddStringToObject(h, key, value);
    payload = sl_msg_payload(msg, &len);
    s_payload(o, payload, len);
    cJSON_AddNullToObject(o, "lineage");
    return o;
}

void console_time_format(uint64_t us, char *buf, size_t len)
{
    time_t secs = (time_t)(us / 1000000u);
    struct tm tm;
    char day[32];

    gmtime_r(&secs, &tm);
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03uZ", day, (unsigned)(us % 1000000u / 1000u));
}

int console_time_parse(const char *text, uint64_t *us)
{
    struct tm tm;
    const char *rest;
    uint64_t frac = 0, scale = 1000000;
    long offset_s = 0;
    time_t secs;

    memset(&tm, 0, sizeof tm);
    rest = text ? strptime(text, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return -1;
    if (*rest == '.') {
        rest++;
        if (*rest < '0' || *rest > '9')
            return -1;
        for (; *rest >= '0' && *rest <= '9'; rest++)
            if (scale > 1) {
                scale /= 10;
                frac += (uint64_t)(*rest - '0') * scale;
            }
    }
    if (*rest == 'Z' || *rest == 'z')
        rest++;
    else if ((*rest == '+' || *rest == '-') && strlen(rest) == 6 && rest[3] == ':') {
        int hh = atoi(rest + 1), mm = atoi(rest + 4);

        offset_s = (long)(hh * 3600 + mm * 60) * (*rest == '-' ? -1 : 1);
        rest += 6;
    }
    else
        return -1;
    if (*rest)
        return -1;
    secs = timegm(&tm);
    if (secs < 0 || (long)secs < offset_s)
        return -1;
    *us = (uint64_t)(secs - offset_s) * 1000000u + frac;
    return 0;
}

int console_in_u64(const cJSON *in, const char *key, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, key);

    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0
        || v->valuedouble != (double)(uint64_t)v->valuedouble)
        return -1;
    *out = (uint64_t)v->valuedouble;
    return 0;
}

const char *console_in_str(const cJSON *in, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}
