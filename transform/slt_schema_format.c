/*  slt_schema_format - the string checks that are not plain JSON: the
 *  formats date-time (RFC 3339), email and uuid, and "pattern", an
 *  ECMA-262 regular expression compiled by PCRE2 and matched with a step
 *  and a memory limit, so no pattern and no value can hold the caller's
 *  thread for long. Any thread. The only file of the schema module that
 *  calls PCRE2 (slt_schema_destroy frees its objects). Its one state is
 *  each thread's match data, made on the thread's first match and freed
 *  when the thread exits. It does not decide where a pattern or format
 *  applies: the validator and the compiler do.  */
#include "slt_schema_int.h"
#include "slc.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_RE_NEST_MAX 32        /* nested ( ) in a pattern */
#define S_RE_MATCH_LIMIT 1000000 /* pcre2_match steps for one value */
#define S_RE_HEAP_KIB 8192      /* pcre2_match's backtracking memory, KiB */
/* ECMA-262's reading: code points of UTF-8, $ only at the very end, \uhhhh. */
#define S_RE_OPTIONS (PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX \
                      | PCRE2_NEVER_BACKSLASH_C | PCRE2_NO_AUTO_CAPTURE)

const char *const slt_schema__formats[] = { "", "date-time", "email", "uuid" };

/* ---------------------------------------------------------------- formats */

static bool s_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* RFC 3339 date-time: 2024-02-29T23:59:60.5+01:00 (T/Z in either case). */
static bool s_is_datetime(const char *s, size_t len)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y, mo, d, h, mi, se, oh, om;
    size_t i = 19;
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't')
        || s[13] != ':' || s[16] != ':')
        return false;
    if (!s_digits(s, 4, &y) || !s_digits(s + 5, 2, &mo) || !s_digits(s + 8, 2, &d)
        || !s_digits(s + 11, 2, &h) || !s_digits(s + 14, 2, &mi)
        || !s_digits(s + 17, 2, &se))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        return false;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return false;
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z'))
        return i + 1 == len;
    if (i + 6 != len || (s[i] != '+' && s[i] != '-') || s[i + 3] != ':')
        return false;
    if (!s_digits(s + i + 1, 2, &oh) || !s_digits(s + i + 4, 2, &om))
        return false;
    return oh <= 23 && om <= 59;
}

/* A pragmatic address check: dot-atom local part @ a host name. No quoted
 * local parts, no [IP] literals, ASCII only. */
static bool s_is_email(const char *s, size_t len)
{
    static const char atext[] = "!#$%&'*+-/=?^_`{|}~";
    const char *at = memchr(s, '@', len);
    if (!at || at == s || at - s > 64 || (size_t) (at - s) + 1 >= len)
        return false;
    for (const char *c = s; c < at; c++) {
        bool alnum = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
                  || (*c >= '0' && *c <= '9');
        if (*c == '.') {
            if (c == s || c + 1 == at || c[1] == '.')
                return false;
        }
        else if (!alnum && (!*c || !strchr(atext, *c)))
            return false;
    }
    const char *host = at + 1, *end = s + len;
    if (end - host > 253)
        return false;
    size_t label = 0;
    for (const char *c = host; c <= end; c++) {
        if (c == end || *c == '.') {
            if (label == 0 || label > 63 || c[-1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool alnum = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
                  || (*c >= '0' && *c <= '9');
        if (!alnum && (*c != '-' || label == 0))
            return false;
        label++;
    }
    return true;
}

/* 8-4-4-4-12 hexadecimal digits, any version, either case. */
static bool s_is_uuid(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        }
        else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')
                   || (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    }
    return true;
}

bool slt_schema__format_ok(int format, const char *s, size_t len)
{
    bool ok = true;
    switch (format) {
    case SLT_SCHEMA_FMT_DATETIME: ok = s_is_datetime(s, len); break;
    case SLT_SCHEMA_FMT_EMAIL:    ok = s_is_email(s, len); break;
    case SLT_SCHEMA_FMT_UUID:     ok = s_is_uuid(s, len); break;
    default:                      break;
    }
    return ok;
}

/* --------------------------------------------------------------- patterns */

/* Where P holds "{,m}" outside an escape: glibc read it as {0,m}, ECMA-262
 * and PCRE2 read it as literal text. NULL when nowhere. */
static const char *s_pattern_open_count(const char *p)
{
    for (const char *q = strstr(p, "{,"); q; q = strstr(q + 1, "{,")) {
        size_t digits = strspn(q + 2, "0123456789");
        if (digits && q[2 + digits] == '}' && !(q > p && q[-1] == '\\'))
            return q;
    }
    return NULL;
}

int slt_schema__pattern_compile(slt_schema_node_t *n, const char *p,
                                char *err, size_t errlen)
{
    /* Stored schemas from before PCRE2 may hold it with the other meaning:
     * refuse rather than change what they accept. */
    if (s_pattern_open_count(p)) {
        slc_errf(err, errlen, "{,m} is literal text in ECMA-262: write {0,m}");
        return SL_EINVAL;
    }
    pcre2_compile_context *cctx = pcre2_compile_context_create(NULL);
    if (!cctx)
        return SL_ENOMEM;
    pcre2_set_parens_nest_limit(cctx, S_RE_NEST_MAX);
    int e;
    PCRE2_SIZE at;
    n->re = pcre2_compile((PCRE2_SPTR) p, PCRE2_ZERO_TERMINATED, S_RE_OPTIONS, &e, &at,
                          cctx);
    pcre2_compile_context_free(cctx);
    if (!n->re) {
        if (e == PCRE2_ERROR_HEAP_FAILED)
            return SL_ENOMEM;
        PCRE2_UCHAR msg[120];
        if (pcre2_get_error_message(e, msg, sizeof msg) < 0)
            snprintf((char *) msg, sizeof msg, "error %d", e);
        slc_errf(err, errlen, "not a regular expression: %s at offset %zu",
                 (const char *) msg, (size_t) at);
        return SL_EINVAL;
    }
    n->mctx = pcre2_match_context_create(NULL);
    n->pattern = strdup(p);
    if (!n->mctx || !n->pattern)
        return SL_ENOMEM;       /* slt_schema_destroy frees what was made */
    pcre2_set_match_limit(n->mctx, S_RE_MATCH_LIMIT);
    pcre2_set_heap_limit(n->mctx, S_RE_HEAP_KIB);
    /* Machine code where PCRE2 has a JIT for this CPU (several times
     * faster); where it has none, or fails here, pcre2_match interprets. */
    (void) pcre2_jit_compile(n->re, PCRE2_JIT_COMPLETE);
    return 0;
}

/* Each thread's match data, for a yes/no answer: pcre2_match_data_create
 * per match was half of a pattern's cost. The interpreter also keeps its
 * backtracking frames in it between matches. A compiled pattern is shared
 * by every thread; this is the only part of a match that is written. */
static pthread_key_t s_md_key;
static pthread_once_t s_md_once = PTHREAD_ONCE_INIT;
static int s_md_key_rc;
static __thread pcre2_match_data *s_md;

/* At the thread's exit: a match in a later destructor makes a new one. */
static void s_md_free(void *md)
{
    pcre2_match_data_free(md);
    s_md = NULL;
}

static void s_md_key_make(void)
{
    s_md_key_rc = pthread_key_create(&s_md_key, s_md_free);
}

/* This thread's match data, made on its first call (and freed when the
 * thread exits); NULL when there is no memory. */
static pcre2_match_data *s_md_get(void)
{
    if (s_md)
        return s_md;
    pthread_once(&s_md_once, s_md_key_make);
    if (s_md_key_rc != 0)
        return NULL;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (md && pthread_setspecific(s_md_key, md) != 0) {
        pcre2_match_data_free(md);
        md = NULL;
    }
    s_md = md;
    return md;
}

int slt_schema__pattern_match(const slt_schema_node_t *n, const char *s,
                              char *err, size_t errlen)
{
    pcre2_match_data *md = s_md_get();
    int rc = md ? pcre2_match(n->re, (PCRE2_SPTR) s, PCRE2_ZERO_TERMINATED, 0, 0, md,
                              n->mctx)
                : PCRE2_ERROR_NOMEMORY;
    /* The JIT counts its match limit its own way and has a smaller stack:
     * what it cannot decide, the interpreter answers, so that a value
     * fails for the same reason, in the same words, as without a JIT. */
    if (md && rc < 0 && rc != PCRE2_ERROR_NOMATCH)
        rc = pcre2_match(n->re, (PCRE2_SPTR) s, PCRE2_ZERO_TERMINATED, 0, PCRE2_NO_JIT,
                         md, n->mctx);
    if (rc >= 0)
        return 0;
    if (rc == PCRE2_ERROR_NOMATCH) {
        slc_errf(err, errlen, "does not match pattern %s", n->pattern);
        return SL_EINVAL;
    }
    PCRE2_UCHAR msg[100];
    /* The reason names the limits; the words must follow the numbers. */
    _Static_assert(S_RE_MATCH_LIMIT == 1000000, "the reason says a million steps");
    if (rc == PCRE2_ERROR_MATCHLIMIT)
        snprintf((char *) msg, sizeof msg, "too costly to match (over a million steps)");
    else if (rc == PCRE2_ERROR_HEAPLIMIT)
        snprintf((char *) msg, sizeof msg, "too costly to match (over %d MiB)",
                 S_RE_HEAP_KIB / 1024);
    else if (pcre2_get_error_message(rc, msg, sizeof msg) < 0)
        snprintf((char *) msg, sizeof msg, "error %d", rc);
    slc_errf(err, errlen, "cannot be checked against pattern %s: %s", n->pattern,
             (const char *) msg);
    return SL_EINVAL;
}
