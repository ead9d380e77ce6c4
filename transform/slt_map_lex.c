/*  slt_map_lex - the tokens of one mapping expression (docs/mapping.md,
 *  "Grammar"). Owns nothing: names point into the text, decoded strings go
 *  to the mapping's arena. Reports the first bad character with a hint for
 *  the usual slips (=, &&, ||, !, single quotes). Compile time only; any
 *  thread that owns the mapping being compiled.  */
#include "slt_map_int.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *slt_map__tok_name(int kind)
{
    static const char *const names[] = {
        [SLC_TK_EOF] = "end of expression", [SLC_TK_INT] = "number",
        [SLC_TK_REAL] = "number", [SLC_TK_STR] = "string",
        [SLC_TK_NAME] = "name", [SLC_TK_ROOT] = "'$'",
        [SLC_TK_META] = "'$meta'", [SLC_TK_DOT] = "'.'",
        [SLC_TK_COMMA] = "','", [SLC_TK_COLON] = "':'",
        [SLC_TK_ARROW] = "'=>'", [SLC_TK_LPAREN] = "'('",
        [SLC_TK_RPAREN] = "')'", [SLC_TK_LBRACK] = "'['",
        [SLC_TK_RBRACK] = "']'", [SLC_TK_LBRACE] = "'{'",
        [SLC_TK_RBRACE] = "'}'", [SLC_TK_PLUS] = "'+'",
        [SLC_TK_MINUS] = "'-'", [SLC_TK_STAR] = "'*'",
        [SLC_TK_SLASH] = "'/'", [SLC_TK_PCT] = "'%'",
        [SLC_TK_EQ] = "'=='", [SLC_TK_NE] = "'!='", [SLC_TK_LT] = "'<'",
        [SLC_TK_LE] = "'<='", [SLC_TK_GT] = "'>'", [SLC_TK_GE] = "'>='",
        [SLC_TK_QQ] = "'?\?'", [SLC_TK_AND] = "'and'", [SLC_TK_OR] = "'or'",
        [SLC_TK_NOT] = "'not'", [SLC_TK_IF] = "'if'",
        [SLC_TK_THEN] = "'then'", [SLC_TK_ELSE] = "'else'",
        [SLC_TK_TRUE] = "'true'", [SLC_TK_FALSE] = "'false'",
        [SLC_TK_NULL] = "'null'", [SLC_TK_ASSIGN] = "'='",
    };
    if (kind < 0 || (size_t) kind >= sizeof names / sizeof names[0] || !names[kind])
        return "token";
    return names[kind];
}

static bool s_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool s_name_char(char c)
{
    return s_name_start(c) || (c >= '0' && c <= '9');
}

static bool s_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int s_keyword(const char *s, size_t n)
{
    static const struct { const char *word; int kind; } words[] = {
        { "and", SLC_TK_AND }, { "or", SLC_TK_OR }, { "not", SLC_TK_NOT },
        { "if", SLC_TK_IF }, { "then", SLC_TK_THEN }, { "else", SLC_TK_ELSE },
        { "true", SLC_TK_TRUE }, { "false", SLC_TK_FALSE },
        { "null", SLC_TK_NULL },
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i].word) == n && memcmp(words[i].word, s, n) == 0)
            return words[i].kind;
    return SLC_TK_NAME;
}

static int s_hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned) (c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned) (c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned) (c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t s_utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char) (0xC0 | (cp >> 6));
        o[1] = (char) (0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char) (0xE0 | (cp >> 12));
        o[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char) (0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char) (0xF0 | (cp >> 18));
    o[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char) (0x80 | (cp & 0x3F));
    return 4;
}

/* A "..." literal starting at T[*I]; JSON escapes. The decoded text is
 * never longer than the source, so one buffer of the source's size does. */
static int s_string(slt_map_cc_t *cc, const char *t, size_t len, size_t *i,
                    slt_map_tok_t *tok)
{
    int rc = 0;
    size_t start = *i, k = start + 1;
    size_t end = k;
    while (end < len && t[end] != '"') {
        if (t[end] == '\\')
            end++;
        end++;
    }
    if (end >= len) {
        rc = slt_map__error(cc, (uint32_t) start, "close it with '\"'",
                            "unterminated string");
        goto fail;
    }
    char *o = slt_map__alloc(&cc->m->arena, end - k + 1);
    if (!o) {
        rc = SL_ENOMEM;
        goto fail;
    }
    size_t n = 0;
    while (k < end) {
        unsigned char c = (unsigned char) t[k];
        if (c < 0x20 || c == 0x7F) {
            rc = slt_map__error(cc, (uint32_t) k, "write it as an escape, e.g. \\n or \\t",
                                "control character in a string");
            goto fail;
        }
        if (c != '\\') {
            o[n++] = (char) c;
            k++;
            continue;
        }
        char e = t[k + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char out[] = "\"\\/\b\f\n\r\t";
            o[n++] = out[simple - "\"\\/bfnrt"];
            k += 2;
            continue;
        }
        unsigned cp = 0, lo = 0;
        if (e != 'u' || k + 6 > end || s_hex4(t + k + 2, &cp) != 0) {
            rc = slt_map__error(cc, (uint32_t) k,
                                "escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX",
                                "bad escape in a string");
            goto fail;
        }
        size_t used = 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (k + 12 > end || t[k + 6] != '\\' || t[k + 7] != 'u'
                || s_hex4(t + k + 8, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                rc = slt_map__error(cc, (uint32_t) k, "a \\uD800-\\uDBFF escape must be followed by \\uDC00-\\uDFFF",
                                    "lone surrogate in a string");
                goto fail;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            used = 12;
        } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
            rc = slt_map__error(cc, (uint32_t) k, NULL,
                                cp ? "lone surrogate in a string"
                                   : "\\u0000 is not allowed in a string");
            goto fail;
        }
        n += s_utf8_put(o + n, cp);
        k += used;
    }
    o[n] = '\0';
    tok->kind = SLC_TK_STR;
    tok->s = o;
    tok->n = n;
    *i = end + 1;
fail:
    return rc;
}

static int s_number(slt_map_cc_t *cc, const char *t, size_t len, size_t *i,
                    slt_map_tok_t *tok)
{
    int rc = 0;
    size_t k = *i;
    bool real = false;
    char buf[64];
    while (k < len && s_digit(t[k]))
        k++;
    /* "1.x" is not a number: the dot must be followed by a digit, so that
     * "[0].a" and "x.1" stay steps. */
    if (k + 1 < len && t[k] == '.' && s_digit(t[k + 1])) {
        real = true;
        k++;
        while (k < len && s_digit(t[k]))
            k++;
    }
    if (k < len && (t[k] == 'e' || t[k] == 'E')) {
        size_t e = k + 1;
        if (e < len && (t[e] == '+' || t[e] == '-'))
            e++;
        if (e < len && s_digit(t[e])) {
            real = true;
            k = e;
            while (k < len && s_digit(t[k]))
                k++;
        }
    }
    if (k < len && s_name_char(t[k])) {
        rc = slt_map__error(cc, (uint32_t) *i, NULL, "bad number '%.*s'",
                            (int) (k - *i + 1), t + *i);
        goto fail;
    }
    if (k - *i >= sizeof buf) {
        rc = slt_map__error(cc, (uint32_t) *i, NULL, "number too long");
        goto fail;
    }
    memcpy(buf, t + *i, k - *i);
    buf[k - *i] = '\0';
    errno = 0;
    if (real) {
        tok->kind = SLC_TK_REAL;
        tok->d = strtod_l(buf, NULL, cc->m->c_locale);
        if (errno == ERANGE && (tok->d > 1 || tok->d < -1)) {
            rc = slt_map__error(cc, (uint32_t) *i, NULL, "number out of range");
            goto fail;
        }
    } else {
        tok->kind = SLC_TK_INT;
        tok->i = strtoll(buf, NULL, 10);
        if (errno == ERANGE || tok->i > SLT_MAP_INT_LIMIT) {
            rc = slt_map__error(cc, (uint32_t) *i, "integers are exact up to 2^53 "
                                "(9007199254740992); write a larger number as a float, 1e16",
                                "integer out of range");
            goto fail;
        }
    }
    *i = k;
fail:
    return rc;
}

/* Hints for characters people type from other languages. */
static const char *s_stray_hint(const char *t, size_t len, size_t i)
{
    char c = t[i], d = i + 1 < len ? t[i + 1] : '\0';
    if (c == '=')
        return "use '==' to compare";
    if (c == '&' && d == '&')
        return "use 'and'";
    if (c == '|' && d == '|')
        return "use 'or'";
    if (c == '!')
        return "use 'not' (or '!=' to compare)";
    if (c == '\'')
        return "strings use double quotes: \"text\"";
    if (c == '?')
        return "use '?\?' for a default, or 'if C then A else B'";
    return NULL;
}

int slt_map__lex(slt_map_cc_t *cc, const char *t, size_t len,
                 slt_map_tok_t **toks, size_t *ntoks)
{
    int rc = 0;
    slt_map_tok_t *v = NULL;
    size_t n = 0, cap = 0, i = 0;
    *toks = NULL;
    *ntoks = 0;
    for (;;) {
        while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
            i++;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            slt_map_tok_t *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                rc = SL_ENOMEM;
                goto fail;
            }
            v = nv;
        }
        slt_map_tok_t *tok = &v[n];
        memset(tok, 0, sizeof *tok);
        tok->pos = (uint32_t) i;
        if (i >= len) {
            /* Just after the last token, not after trailing blanks (a
             * literal block ends in a line break). */
            tok->pos = n ? v[n - 1].pos + v[n - 1].len : 0;
            tok->kind = SLC_TK_EOF;
            n++;
            break;
        }
        char c = t[i], d = i + 1 < len ? t[i + 1] : '\0';
        size_t start = i;
        if (s_name_start(c)) {
            while (i < len && s_name_char(t[i]))
                i++;
            tok->kind = s_keyword(t + start, i - start);
            tok->s = t + start;
            tok->n = i - start;
        } else if (s_digit(c)) {
            rc = s_number(cc, t, len, &i, tok);
        } else if (c == '"') {
            rc = s_string(cc, t, len, &i, tok);
        } else if (c == '$') {
            i++;
            size_t w = i;
            while (i < len && s_name_char(t[i]))
                i++;
            if (i == w) {
                tok->kind = SLC_TK_ROOT;
            } else if (i - w == 4 && memcmp(t + w, "meta", 4) == 0) {
                tok->kind = SLC_TK_META;
            } else {
                rc = slt_map__error(cc, (uint32_t) start,
                                    "document paths start with '$.' and message metadata with '$meta.'",
                                    "unknown root '$%.*s'", (int) (i - w), t + w);
            }
        } else {
            static const char singles[] = ".,:()[]{}+-*/%";
            static const int kinds[] = {
                SLC_TK_DOT, SLC_TK_COMMA, SLC_TK_COLON, SLC_TK_LPAREN,
                SLC_TK_RPAREN, SLC_TK_LBRACK, SLC_TK_RBRACK, SLC_TK_LBRACE,
                SLC_TK_RBRACE, SLC_TK_PLUS, SLC_TK_MINUS, SLC_TK_STAR,
                SLC_TK_SLASH, SLC_TK_PCT,
            };
            i += 2;
            if (c == '=' && d == '=')
                tok->kind = SLC_TK_EQ;
            else if (c == '=' && d == '>')
                tok->kind = SLC_TK_ARROW;
            else if (c == '!' && d == '=')
                tok->kind = SLC_TK_NE;
            else if (c == '<' && d == '=')
                tok->kind = SLC_TK_LE;
            else if (c == '>' && d == '=')
                tok->kind = SLC_TK_GE;
            else if (c == '?' && d == '?')
                tok->kind = SLC_TK_QQ;
            else {
                i--;
                const char *one = c ? strchr(singles, c) : NULL;
                if (one)
                    tok->kind = kinds[one - singles];
                else if (c == '<')
                    tok->kind = SLC_TK_LT;
                else if (c == '>')
                    tok->kind = SLC_TK_GT;
                else if (c == '=' && n >= 2 && v[n - 1].kind == SLC_TK_NAME
                         && v[n - 2].kind == SLC_TK_NAME && v[n - 2].n == 3
                         && memcmp(v[n - 2].s, "let", 3) == 0)
                    tok->kind = SLC_TK_ASSIGN;  /* let NAME = ...: elsewhere '=' is a typo */
                else if ((unsigned char) c >= 0x21 && (unsigned char) c < 0x7F)
                    rc = slt_map__error(cc, (uint32_t) start, s_stray_hint(t, len, start),
                                        "unexpected character '%c'", c);
                else
                    rc = slt_map__error(cc, (uint32_t) start, NULL,
                                        "unexpected character (byte 0x%02x)",
                                        (unsigned) (unsigned char) c);
            }
        }
        if (rc != 0)
            goto fail;
        tok->len = (uint32_t) (i - start);
        n++;
    }
    *toks = v;
    *ntoks = n;
    v = NULL;
fail:
    free(v);
    return rc;
}
