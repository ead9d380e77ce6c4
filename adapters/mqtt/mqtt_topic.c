/*  mqtt_topic - MQTT topics and filters <-> sluice topics and patterns
 *  (the rule is in mqtt_topic.h). Pure: no state, any thread. The encoder
 *  writes one level at a time; the decoder accepts only what the encoder
 *  writes (upper-case hex, no escape of a byte that needs none), so each
 *  sluice topic names at most one MQTT topic and back.  */
#include "mqtt_topic.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char s_hex[] = "0123456789ABCDEF";

int mqtt_errf(int code, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static bool s_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9') || c == '-';
}

/* A sluice word character ([A-Za-z0-9_-]). */
static bool s_word_char(unsigned char c)
{
    return s_plain(c) || c == '_';
}

/* PREFIX: "" or dot-separated non-empty words of [A-Za-z0-9_-]. */
static bool s_prefix_ok(const char *prefix)
{
    bool empty_word = true;

    if (!prefix[0])
        return true;
    for (const char *p = prefix; *p; p++) {
        if (*p == '.') {
            if (empty_word)
                return false;
            empty_word = true;
        } else if (s_word_char((unsigned char) *p)) {
            empty_word = false;
        } else {
            return false;
        }
    }
    return !empty_word;
}

/* Output cursor: appends bounded by the smaller of OUTLEN - 1 and the
 * longest sluice topic. */
typedef struct {
    char *out;
    size_t len;
    size_t cap;
} s_buf_t;

static bool s_put(s_buf_t *b, char c)
{
    if (b->len >= b->cap)
        return false;
    b->out[b->len++] = c;
    return true;
}

static int s_encode(const char *prefix, const char *mqtt, bool filter,
                    char *out, size_t outlen, char *err, size_t errlen)
{
    s_buf_t b = { out, 0, 0 };
    const char *what = filter ? "filter" : "topic";
    const char *level = mqtt;

    if (!outlen)
        return mqtt_errf(SL_EINVAL, err, errlen, "no room for the sluice topic");
    b.cap = outlen - 1 < MQTT_SLUICE_TOPIC_MAX ? outlen - 1 : MQTT_SLUICE_TOPIC_MAX;
    out[0] = '\0';
    if (!s_prefix_ok(prefix))
        return mqtt_errf(SL_EINVAL, err, errlen, "prefix '%s' is no sluice topic "
                         "(dot-separated words of A-Z a-z 0-9 _ -)", prefix);
    if (!mqtt[0])
        return mqtt_errf(SL_EINVAL, err, errlen, "empty MQTT %s", what);
    for (const char *p = prefix; *p; p++)
        s_put(&b, *p);
    for (;;) {
        size_t n = strcspn(level, "/");

        if (b.len && !s_put(&b, '.'))
            goto too_long;
        if (filter && n == 1 && (level[0] == '+' || level[0] == '#')) {
            if (level[0] == '#' && level[1])
                return mqtt_errf(SL_EINVAL, err, errlen, "'#' must be the last level "
                                 "of MQTT filter '%s'", mqtt);
            if (!s_put(&b, level[0] == '+' ? '*' : '>'))
                goto too_long;
        } else if (n == 0) {
            if (!s_put(&b, '_'))
                goto too_long;
        } else {
            for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) level[i];
                bool ok;

                if (c == '+' || c == '#')
                    return mqtt_errf(SL_EINVAL, err, errlen, filter
                                     ? "'%c' must be a whole level in MQTT filter '%s'"
                                     : "'%c' in MQTT topic name '%s' (wildcards belong "
                                       "in filters)", c, mqtt);
                if (s_plain(c))
                    ok = s_put(&b, (char) c);
                else if (c == '_')
                    ok = s_put(&b, '_') && s_put(&b, '_');
                else
                    ok = s_put(&b, '_') && s_put(&b, s_hex[c >> 4])
                        && s_put(&b, s_hex[c & 15]);
                if (!ok)
                    goto too_long;
            }
        }
        if (!level[n])
            break;
        level += n + 1;
    }
    out[b.len] = '\0';
    return 0;
too_long:
    out[0] = '\0';
    return mqtt_errf(SL_EINVAL, err, errlen, "MQTT %s '%.64s%s' gives a sluice topic "
                     "longer than %zu bytes", what, mqtt, strlen(mqtt) > 64 ? "..." : "",
                     b.cap);
}

/* S_ENCODE, with OUT emptied on failure (the encoder stops mid-way). */
static int s_encode_all(const char *prefix, const char *mqtt, bool filter, char *out,
                        size_t outlen, char *err, size_t errlen)
{
    int rc = s_encode(prefix, mqtt, filter, out, outlen, err, errlen);

    if (rc < 0 && outlen)
        out[0] = '\0';
    return rc;
}

int mqtt_topic_to_sluice(const char *prefix, const char *mqtt, char *out,
                         size_t outlen, char *err, size_t errlen)
{
    return s_encode_all(prefix, mqtt, false, out, outlen, err, errlen);
}

int mqtt_filter_to_sluice(const char *prefix, const char *filter, char *out,
                          size_t outlen, char *err, size_t errlen)
{
    return s_encode_all(prefix, filter, true, out, outlen, err, errlen);
}

static int s_hexval(char c)
{
    const char *p = c ? strchr(s_hex, c) : NULL;

    return p ? (int) (p - s_hex) : -1;
}

/* Decode word W (N bytes) into B. 0, -1 when it is no escaping the
 * encoder writes, -2 when B is full. */
static int s_decode_word(const char *w, size_t n, s_buf_t *b)
{
    if (n == 1 && w[0] == '_')
        return 0;                               /* an empty level */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) w[i];
        int hi, lo;

        if (s_plain(c)) {
            if (!s_put(b, (char) c))
                return -2;
            continue;
        }
        if (c != '_' || i + 1 >= n)
            return -1;
        if (w[i + 1] == '_') {
            if (!s_put(b, '_'))
                return -2;
            i++;
            continue;
        }
        if (i + 2 >= n || (hi = s_hexval(w[i + 1])) < 0 || (lo = s_hexval(w[i + 2])) < 0)
            return -1;
        c = (unsigned char) (hi << 4 | lo);
        /* Only bytes the encoder escapes: not NUL, '/', a plain byte, '_',
         * nor the wildcards a topic name cannot hold. */
        if (c == 0 || c == '/' || s_plain(c) || c == '_' || c == '+' || c == '#')
            return -1;
        if (!s_put(b, (char) c))
            return -2;
        i += 2;
    }
    return 0;
}

bool mqtt_filters_overlap(const char *a, const char *b)
{
    for (;;) {
        size_t na = strcspn(a, "/"), nb = strcspn(b, "/");

        if ((na == 1 && a[0] == '#') || (nb == 1 && b[0] == '#'))
            return true;
        if (!(na == 1 && a[0] == '+') && !(nb == 1 && b[0] == '+')
            && (na != nb || memcmp(a, b, na) != 0))
            return false;
        a += na;
        b += nb;
        if (!*a || !*b) {
            /* One ended: "x/#" also matches "x", nothing else is left. */
            const char *rest = *a ? a : b;

            return !*rest || strcmp(rest, "/#") == 0;
        }
        a++;
        b++;
    }
}

static int s_decode(const char *topic, unsigned strip, const char *prefix, char *out,
                    size_t outlen, char *err, size_t errlen)
{
    s_buf_t b = { out, 0, 0 };
    const char *word = topic;
    unsigned skipped = 0;
    bool any = false;

    if (!outlen)
        return mqtt_errf(SL_EINVAL, err, errlen, "no room for the MQTT topic");
    b.cap = outlen - 1;
    out[0] = '\0';
    if (strlen(topic) > MQTT_SLUICE_TOPIC_MAX)
        return mqtt_errf(SL_EINVAL, err, errlen, "sluice topic '%.64s...' is longer "
                         "than %d bytes", topic, MQTT_SLUICE_TOPIC_MAX);
    for (const char *p = prefix; *p; p++)
        if (!s_put(&b, *p))
            goto too_long;
    for (;;) {
        size_t n = strcspn(word, ".");

        if (n == 0)
            return mqtt_errf(SL_EINVAL, err, errlen, "sluice topic '%s' has an empty "
                             "word", topic);
        if (skipped < strip) {
            for (size_t i = 0; i < n; i++)
                if (!s_word_char((unsigned char) word[i]))
                    return mqtt_errf(SL_EINVAL, err, errlen, "word '%.*s' of sluice "
                                     "topic '%s' is no sluice word", (int) n, word,
                                     topic);
            skipped++;
        } else {
            int drc;

            if ((b.len || any) && !s_put(&b, '/'))
                goto too_long;
            drc = s_decode_word(word, n, &b);
            if (drc == -2)
                goto too_long;
            if (drc < 0) {
                out[0] = '\0';
                return mqtt_errf(SL_EINVAL, err, errlen, "word '%.*s' of sluice topic "
                                 "'%s' is no escaped MQTT level (docs/adapters.md, "
                                 "sluice-mqtt)", (int) n, word, topic);
            }
            any = true;
        }
        if (!word[n])
            break;
        word += n + 1;
    }
    if (!any) {
        out[0] = '\0';
        return mqtt_errf(SL_EINVAL, err, errlen, "sluice topic '%s' has no word left "
                         "after dropping %u", topic, strip);
    }
    if (b.len == 0)
        return mqtt_errf(SL_EINVAL, err, errlen, "sluice topic '%s' names the empty "
                         "MQTT topic, which MQTT does not allow", topic);
    out[b.len] = '\0';
    return 0;
too_long:
    out[0] = '\0';
    return mqtt_errf(SL_EINVAL, err, errlen, "the MQTT topic for '%s' is longer than "
                     "%zu bytes", topic, b.cap);
}

int mqtt_topic_from_sluice(const char *topic, unsigned strip,
                           const char *prefix, char *out, size_t outlen,
                           char *err, size_t errlen)
{
    int rc = s_decode(topic, strip, prefix, out, outlen, err, errlen);

    if (rc < 0 && outlen)
        out[0] = '\0';
    return rc;
}
