/*  slt_route_index - the topic-word trie of a table's patterns: which
 *  routes' `match.topic` match a topic, in file order, without scanning
 *  the table. Built once by slt_route_compile; read by any number of
 *  evaluating threads (never changed after). Literal words are kept sorted
 *  per node (binary search), '*' and '>' have their own slots. It follows
 *  slc_pattern_match, including that a wildcard first word never matches a
 *  reserved ('_') topic. It does not evaluate predicates.  */
#include "slt_route_int.h"
#include "slc.h"
#include <stdlib.h>
#include <string.h>

struct slt_route_trie {
    char *word;                     /* literal word of this node (NULL: root or '*') */
    slt_route_trie_t **kids;        /* literal children, sorted by word */
    size_t nkids, capkids;
    slt_route_trie_t *star;         /* child for '*' */
    size_t *end, nend, capend;      /* routes whose pattern ends here */
    size_t *gt, ngt, capgt;         /* routes whose pattern ends here with '>' */
};

void slt_route__trie_free(slt_route_trie_t *tr)
{
    if (!tr)
        return;
    for (size_t k = 0; k < tr->nkids; k++)
        slt_route__trie_free(tr->kids[k]);
    slt_route__trie_free(tr->star);
    free(tr->kids);
    free(tr->end);
    free(tr->gt);
    free(tr->word);
    free(tr);
}

/* Position of word W (LEN bytes) among N's kids: *FOUND says whether it is there. */
static size_t s_find(const slt_route_trie_t *n, const char *w, size_t len, bool *found)
{
    size_t lo = 0, hi = n->nkids;
    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *kw = n->kids[mid]->word;
        size_t kl = strlen(kw);
        int c = memcmp(kw, w, kl < len ? kl : len);
        if (c == 0)
            c = kl < len ? -1 : kl > len ? 1 : 0;
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int s_push(size_t **a, size_t *n, size_t *cap, size_t v)
{
    if (slc_grow((void **) a, cap, *n + 1, sizeof **a) != 0)
        return SL_ENOMEM;
    (*a)[(*n)++] = v;
    return 0;
}

static int s_insert(slt_route_trie_t *root, const char *pat, size_t idx)
{
    slt_route_trie_t *n = root;
    const char *p = pat;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t) (dot - p) : strlen(p);
        if (len == 1 && p[0] == '>')
            return s_push(&n->gt, &n->ngt, &n->capgt, idx);
        slt_route_trie_t *next;
        if (len == 1 && p[0] == '*') {
            if (!n->star && !(n->star = calloc(1, sizeof *n->star)))
                return SL_ENOMEM;
            next = n->star;
        } else {
            bool found;
            size_t at = s_find(n, p, len, &found);
            if (!found) {
                if (slc_grow((void **) &n->kids, &n->capkids, n->nkids + 1, sizeof *n->kids) != 0)
                    return SL_ENOMEM;
                slt_route_trie_t *k = calloc(1, sizeof *k);
                if (!k || !(k->word = strndup(p, len))) {
                    free(k);
                    return SL_ENOMEM;
                }
                memmove(n->kids + at + 1, n->kids + at, (n->nkids - at) * sizeof *n->kids);
                n->kids[at] = k;
                n->nkids++;
            }
            next = n->kids[at];
        }
        n = next;
        if (!dot)
            return s_push(&n->end, &n->nend, &n->capend, idx);
        p = dot + 1;
    }
}

int slt_route__index(slt_route_table_t *t)
{
    t->trie = calloc(1, sizeof *t->trie);
    if (!t->trie)
        return SL_ENOMEM;
    for (size_t k = 0; k < t->n; k++)
        if (t->routes[k].pattern && s_insert(t->trie, t->routes[k].pattern, k) != 0)
            return SL_ENOMEM;
    return 0;
}

typedef struct {
    const char *w[SLC_TOPIC_MAX / 2 + 2];
    size_t len[SLC_TOPIC_MAX / 2 + 2];
    size_t n;
    size_t **idx, *cap, *cnt;
} s_walk_t;

static int s_append(s_walk_t *wk, const size_t *v, size_t n)
{
    if (n == 0)
        return 0;
    if (slc_grow((void **) wk->idx, wk->cap, *wk->cnt + n, sizeof **wk->idx) != 0)
        return SL_ENOMEM;
    memcpy(*wk->idx + *wk->cnt, v, n * sizeof *v);
    *wk->cnt += n;
    return 0;
}

static int s_walk(s_walk_t *wk, const slt_route_trie_t *n, size_t i)
{
    if (i == wk->n)
        return s_append(wk, n->end, n->nend);
    bool reserved = i == 0 && wk->w[0][0] == '_';
    int rc = 0;
    if (!reserved)
        rc = s_append(wk, n->gt, n->ngt);
    bool found;
    size_t at = rc == 0 ? s_find(n, wk->w[i], wk->len[i], &found) : 0;
    if (rc == 0 && found)
        rc = s_walk(wk, n->kids[at], i + 1);
    if (rc == 0 && n->star && !reserved)
        rc = s_walk(wk, n->star, i + 1);
    return rc;
}

static int s_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *) a, y = *(const size_t *) b;
    return x < y ? -1 : x > y;
}

int slt_route__lookup(const slt_route_table_t *t, const char *topic,
                      size_t **idx, size_t *cap, size_t *n)
{
    s_walk_t wk;
    *n = 0;
    if (!t->trie || !topic || !topic[0] || strlen(topic) > SLC_TOPIC_MAX)
        return 0;
    wk.n = 0;
    wk.idx = idx;
    wk.cap = cap;
    wk.cnt = n;
    for (const char *p = topic;;) {
        const char *dot = strchr(p, '.');
        if (wk.n == sizeof wk.w / sizeof wk.w[0])
            return 0;
        wk.w[wk.n] = p;
        wk.len[wk.n++] = dot ? (size_t) (dot - p) : strlen(p);
        if (!dot)
            break;
        p = dot + 1;
    }
    int rc = s_walk(&wk, t->trie, 0);
    if (rc == 0 && *n > 1)
        qsort(*idx, *n, sizeof **idx, s_cmp);
    return rc;
}
