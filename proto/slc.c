/*  slc - result-code names, topic names and patterns, the text rule of
 *  string fields (UTF-8 without NUL), clocks.
 *  Stateless; safe from any thread.  */
#include "slc.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *slc_strerror(int code)
{
    if (code > 0)
        code = -code;
    switch (code) {
    case SL_OK:         return "success";
    case SL_EMALFORMED: return "malformed frame";
    case SL_ENOSESSION: return "no session: send hello first";
    case SL_EDENIED:    return "permission denied";
    case SL_ENOTFOUND:  return "not found";
    case SL_ECOMMAND:   return "unknown or unexpected command";
    case SL_EAUTH:      return "not admitted: the broker refused this client's key";
    case SL_ETIMEOUT:   return "timed out";
    case SL_ESTALE:     return "conflict: what this refers to has changed (a redelivered message, a newer version)";
    case SL_EEXIST:     return "already exists with a different definition";
    case SL_ETOOBIG:    return "too big";
    case SL_EINVAL:     return "invalid argument";
    case SL_EVERSION:   return "unsupported protocol version";
    case SL_EBUSY:      return "busy: limit reached, retry later";
    case SL_EINTERNAL:  return "internal error";
    case SL_ESTORE:     return "storage error";
    case SL_EUNAVAIL:   return "broker unavailable";
    case SL_ENOMEM:     return "out of memory";
    case SL_ESYS:       return "system call failed";
    case SL_EFULL:      return "storage full";
    default:            return "unknown error";
    }
}

bool slc_retryable(int code)
{
    if (code > 0)
        code = -code;
    return code == SL_ETIMEOUT || code == SL_EBUSY || code == SL_EUNAVAIL
        || code == SL_EFULL || code == SL_ENOSESSION;
}

static bool s_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Shared walk for names and patterns: words separated by single dots. */
static int s_validate(const char *s, bool pattern, bool allow_reserved)
{
    if (!s || !*s)
        return SL_EINVAL;
    size_t len = strnlen(s, SLC_TOPIC_MAX + 1);
    if (len > SLC_TOPIC_MAX)
        return SL_EINVAL;
    if (s[0] == '_' && !allow_reserved)
        return SL_EINVAL;
    const char *w = s;
    while (true) {
        const char *e = w;
        while (*e && *e != '.')
            e++;
        size_t wl = (size_t) (e - w);
        if (wl == 0)
            return SL_EINVAL;
        if (pattern && wl == 1 && (*w == '*' || *w == '>')) {
            if (*w == '>' && *e)
                return SL_EINVAL;       /* '>' only as the last word */
        }
        else
            for (const char *p = w; p < e; p++)
                if (!s_word_char(*p))
                    return SL_EINVAL;
        if (!*e)
            return 0;
        w = e + 1;
    }
}

int slc_topic_validate(const char *name, bool allow_reserved)
{
    return s_validate(name, false, allow_reserved);
}

int slc_pattern_validate(const char *pattern)
{
    return s_validate(pattern, true, true);
}

bool slc_pattern_is_literal(const char *pattern)
{
    for (const char *w = pattern; *w; ) {
        if ((w[0] == '*' || w[0] == '>') && (w[1] == '.' || w[1] == 0))
            return false;
        const char *dot = strchr(w, '.');
        if (!dot)
            break;
        w = dot + 1;
    }
    return true;
}

bool slc_pattern_match(const char *pattern, const char *topic)
{
    const char *p = pattern, *t = topic;
    bool first = true;
    while (true) {
        const char *pe = strchr(p, '.');
        size_t pl = pe ? (size_t) (pe - p) : strlen(p);
        const char *te = strchr(t, '.');
        size_t tl = te ? (size_t) (te - t) : strlen(t);
        bool wild = pl == 1 && (*p == '*' || *p == '>');
        if (wild && first && *t == '_')
            return false;
        if (pl == 1 && *p == '>')
            return tl > 0;
        if (!wild && (pl != tl || memcmp(p, t, pl) != 0))
            return false;
        if (!pe || !te)
            return !pe && !te;
        p = pe + 1;
        t = te + 1;
        first = false;
    }
}

int slc_grow(void **items, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need)
        ncap *= 2;
    void *nv = realloc(*items, ncap * elem);
    if (!nv)
        return SL_ENOMEM;
    *items = nv;
    *cap = ncap;
    return 0;
}

void *slc_pool_keep(slc_pool_t *pool, void *p)
{
    if (!p)
        return NULL;
    if (slc_grow((void **) &pool->v, &pool->cap, pool->n + 1, sizeof(void *)) != 0) {
        free(p);
        return NULL;
    }
    pool->v[pool->n++] = p;
    return p;
}

void *slc_pool_alloc(slc_pool_t *pool, size_t size)
{
    return slc_pool_keep(pool, calloc(1, size ? size : 1));
}

char *slc_pool_strdup(slc_pool_t *pool, const char *s)
{
    return slc_pool_keep(pool, strdup(s ? s : ""));
}

void slc_pool_free(slc_pool_t *pool)
{
    for (size_t i = 0; i < pool->n; i++)
        free(pool->v[i]);
    free(pool->v);
    pool->v = NULL;
    pool->n = pool->cap = 0;
}

int slc_idset_add(uint32_t **v, size_t *n, size_t *cap, uint32_t id)
{
    for (size_t i = *n; i > 0; i--)
        if ((*v)[i - 1] == id)
            return 0;
    int rc = slc_grow((void **) v, cap, *n + 1, sizeof **v);
    if (rc == 0)
        (*v)[(*n)++] = id;
    return rc;
}

uint64_t slc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

uint64_t slc_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

bool slc_pattern_covers(const char *grant, const char *pattern)
{
    const char *g = grant, *p = pattern;
    bool first = true;
    while (true) {
        size_t gl = strcspn(g, "."), pl = strcspn(p, ".");
        bool reserved = first && p[0] == '_';
        if (gl == 1 && g[0] == '>')
            return pl > 0 && !reserved;
        if (gl == 1 && g[0] == '*') {
            if ((pl == 1 && p[0] == '>') || reserved)
                return false;
        }
        else if (gl != pl || memcmp(g, p, gl) != 0)
            return false;
        g += gl;
        p += pl;
        if (!*g || !*p)
            return !*g && !*p;
        g++;
        p++;
        first = false;
    }
}

bool slc_text_valid(const void *s, size_t len)
{
    static const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    if (len == 0)
        return true;            /* S may be NULL then */
    const uint8_t *p = s, *end = p + len;
    while (p < end) {
        if (end - p >= 8) {     /* names are ASCII: eight bytes at a time */
            uint64_t w;
            memcpy(&w, p, 8);
            if (!(w & highs) && !((w - ones) & ~w & highs)) {  /* none >= 0x80, none 0 */
                p += 8;
                continue;
            }
        }
        uint8_t c = *p;
        if ((unsigned) c - 1u < 0x7fu) {        /* ASCII but NUL */
            p++;
            continue;
        }
        size_t n;               /* continuation bytes */
        uint32_t cp, min;       /* the code point, its smallest for N */
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1fu;
            min = 0x80;
        }
        else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0fu;
            min = 0x800;
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07u;
            min = 0x10000;
        }
        else
            return false;       /* NUL, a lone continuation, C0, C1, F5-FF */
        if ((size_t) (end - p) <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((p[k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;       /* overlong, beyond Unicode, a surrogate */
        p += n + 1;
    }
    return true;
}

/* Bytes of the UTF-8 character at S (LEFT bytes) when it is well formed,
 * else 0. */
static size_t s_char_len(const unsigned char *s, size_t left)
{
    size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2
             : s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    return n && n <= left && slc_text_valid(s, n) ? n : 0;
}

size_t slc_text_line(const char *text, char *out, size_t max)
{
    const unsigned char *s = (const unsigned char *) text;
    size_t len = strlen(text), o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = s_char_len(s + i, len - i);
        if (o + (n ? n : 1) > max)
            break;
        if (n == 0)
            out[o++] = '?';
        else if ((n == 1 && (s[i] < 0x20 || s[i] == 0x7F))
                 || (n == 2 && s[i] == 0xC2 && s[i + 1] < 0xA0))
            out[o++] = ' ';
        else {
            memcpy(out + o, s + i, n);
            o += n;
        }
        i += n ? n : 1;
    }
    out[o] = '\0';
    return o;
}

void slc_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
