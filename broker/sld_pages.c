/*  sld_pages - LMDB 0.9's file structure checked with pread (see
 *  sld_pages.h). Owns an fd and page buffers; one thread at a time; never
 *  calls LMDB and never maps the file, so no damage can fault it.  */
#include "sld_pages.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*  The file, as LMDB 0.9 writes it on a 64-bit little-endian host (the
 *  layout of mdb.c's MDB_page, MDB_node, MDB_meta and MDB_db; the data
 *  format is version 1 for all of 0.9.x):
 *
 *  page       pgno u64 @0, pad u16 @8, flags u16 @10, then lower u16 @12
 *             and upper u16 @14 (overflow pages: their page count, u32
 *             @12); node offsets, u16 each, from @16 up to lower; the
 *             nodes themselves packed from the page end down to upper.
 *  node       lo u16, hi u16, flags u16, ksize u16, key, data. Branch:
 *             the child's pgno is lo | hi << 16 | flags << 32, and node
 *             0's key is ignored (it stands for "everything below").
 *             Leaf: data size lo | hi << 16; F_BIGDATA: the data is the
 *             u64 number of the first of its overflow pages; F_SUBDATA
 *             (main database): the data is a database record.
 *  meta       pages 0 and 1 (flag P_META), after the page header: magic
 *             u32, version u32, address u64, map size u64, the records
 *             of the free list and of the main database, last pgno u64,
 *             txnid u64. The page size is the free list record's pad.
 *  database   pad u32, flags u16, depth u16, branch pages, leaf pages,
 *             overflow pages, entries, root pgno (u64 each; ~0: empty).
 *  free list  key: a txnid (u64, native order, compared as a number);
 *             value: a count n, then n page numbers (u64 each).
 *
 *  What LMDB trusts and we check: that a page is the page its number
 *  says and of the kind its parent expects, that every node offset and
 *  size stays inside its page (LMDB reads past it), that node flags are
 *  ones our databases use (F_DUPDATA on a database without sorted
 *  duplicates sends LMDB through a NULL pointer), that branch pages have
 *  the two keys LMDB asserts, that keys ascend inside the bounds their
 *  parents set (else searches miss records that are there), that child
 *  and overflow page numbers lie inside the environment, that overflow
 *  runs hold their values, that no page is reached twice, that the
 *  counts in the database records match, and that the free list is well
 *  formed and frees no page a tree uses (a writer would hand it out
 *  again). Leaves of a sparse walk that are not read stay unchecked: the
 *  caller guards its reads of them.  */

#define S_HDR 16
#define S_NODE 8
#define S_DB_LEN 48
#define S_META_AT S_HDR
#define S_META_LEN (8 + 8 + 8 + 2 * S_DB_LEN + 8 + 8)
#define S_MAGIC 0xBEEFC0DEu
#define S_VERSION 1u
#define S_P_BRANCH 0x01
#define S_P_LEAF 0x02
#define S_P_OVERFLOW 0x04
#define S_P_META 0x08
#define S_F_BIGDATA 0x01
#define S_F_SUBDATA 0x02
#define S_INVALID UINT64_MAX
#define S_MAX_DEPTH 32          /* LMDB's cursor stack */
#define S_MAXKEY 511            /* LMDB's default MDB_MAXKEYSIZE */
#define S_MIN_PSIZE 512
#define S_MAX_PSIZE 65536
#define S_INTEGERKEY 0x08

typedef struct {
    char *name;                 /* NULL for the free list and main database */
    uint16_t flags, depth;
    uint64_t branch, leaf, overflow, entries, root;
} s_db_t;

struct sld_pages {
    int fd;
    char *file;
    sld_pages_meta_t meta;
    s_db_t free_db, main_db;
    s_db_t *dbs;                /* named databases in key order */
    size_t ndbs, cdbs;
    const char **names;         /* dbs[i].name, for sld_pages_names */
    sld_pages_problem_fn *problem;
    void *arg;
    size_t problems;
    uint8_t *bufs;              /* one page per tree level */
    uint8_t *seen;              /* a bit per page met in a tree */
    uint8_t *value;             /* an overflow value read whole */
    size_t cvalue;
    uint64_t tail_from;         /* the first page past the file's end */
    uint8_t *tail_free;         /* while the free list is walked for the
                                   pages past the end: a bit per page from
                                   tail_from on, set when it is free */
};

/* One walk of one tree. */
typedef struct {
    sld_pages_t *p;
    const s_db_t *db;
    const char *what;           /* the database's name, for messages */
    bool integer;               /* free list: keys are native u64 */
    bool is_main;               /* main database: nodes are database records */
    long problems;              /* found in this tree */
    uint64_t branch, leaf, overflow, entries;
    uint8_t prev[S_MAXKEY];     /* the last key met, for the order check */
    size_t prevlen;
    bool has_prev;
    const uint8_t *targets;     /* sparse walk: key ranges (lo, hi pairs),
                                   sorted and disjoint; else NULL */
    size_t klen, ntargets;
    bool want_next;             /* sparse: the next leaf follows a target's */
    bool has_skipped;           /* sparse: the last leaf passed over */
    uint64_t skipped;
    uint8_t skip_lo[S_MAXKEY], skip_hi[S_MAXKEY];
    size_t skip_lolen, skip_hilen;
    bool skip_has_lo, skip_has_hi;
    sld_pages_record_fn *fn;
    void *arg;
    int stop;                   /* what FN returned to stop, or an error */
} s_walk_t;

static uint16_t s_le16(const uint8_t *b)
{
    return (uint16_t) (b[0] | b[1] << 8);
}

static uint32_t s_le32(const uint8_t *b)
{
    return (uint32_t) b[0] | (uint32_t) b[1] << 8 | (uint32_t) b[2] << 16
         | (uint32_t) b[3] << 24;
}

static uint64_t s_le64(const uint8_t *b)
{
    return (uint64_t) s_le32(b) | (uint64_t) s_le32(b + 4) << 32;
}

static void s_say(sld_pages_t *p, s_walk_t *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_say(sld_pages_t *p, s_walk_t *w, const char *fmt, ...)
{
    char text[320];
    va_list ap;
    p->problems++;
    if (w)
        w->problems++;
    if (!p->problem)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    p->problem(p->arg, text);
}

/* Read page PGNO (LEN bytes from its start) into BUF. 0, 1 when it could
 * not be read (reported), SL_ESYS. */
static int s_read(sld_pages_t *p, s_walk_t *w, uint64_t pgno, uint8_t *buf, size_t len)
{
    uint64_t at = pgno * p->meta.psize;
    size_t got = 0;
    if (pgno > p->meta.last_pgno) {
        s_say(p, w, "%s: page %" PRIu64 " lies past the environment's last page %" PRIu64,
              w ? w->what : "file", pgno, p->meta.last_pgno);
        return 1;
    }
    while (got < len) {
        ssize_t n = pread(p->fd, buf + got, len - got, (off_t) (at + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "sluiced: store: read %s: %s\n", p->file, strerror(errno));
            return SL_ESYS;
        }
        if (n == 0) {
            s_say(p, w, "%s: page %" PRIu64 " lies past the end of the file",
                  w ? w->what : "file", pgno);
            return 1;
        }
        got += (size_t) n;
    }
    return 0;
}

static void s_db_parse(const uint8_t *b, s_db_t *db)
{
    db->flags = s_le16(b + 4);
    db->depth = s_le16(b + 6);
    db->branch = s_le64(b + 8);
    db->leaf = s_le64(b + 16);
    db->overflow = s_le64(b + 24);
    db->entries = s_le64(b + 32);
    db->root = s_le64(b + 40);
}

/* ------------------------------------------------------------------ meta */

/* Meta page I of the file (BUF holds S_META_AT + S_META_LEN bytes read at
 * its offset): NULL when sound, else why not. */
static const char *s_meta_bad(const uint8_t *buf)
{
    const uint8_t *m = buf + S_META_AT;
    uint32_t psize = s_le32(m + 24);
    if (!(s_le16(buf + 10) & S_P_META))
        return "is not a meta page";
    if (s_le32(m) != S_MAGIC)
        return "has no LMDB magic number";
    if (s_le32(m + 4) != S_VERSION)
        return "is of another LMDB data format";
    if (psize < S_MIN_PSIZE || psize > S_MAX_PSIZE || (psize & (psize - 1)) != 0)
        return "has an impossible page size";
    return NULL;
}

static int s_read_metas(sld_pages_t *p, uint64_t txnid)
{
    uint8_t m[2][S_META_AT + S_META_LEN];
    uint64_t off = 0;
    int pick = -1;
    struct stat st;

    if (fstat(p->fd, &st) != 0) {
        fprintf(stderr, "sluiced: store: stat %s: %s\n", p->file, strerror(errno));
        return SL_ESYS;
    }
    p->meta.file_size = (uint64_t) st.st_size;
    if (st.st_size == 0)
        return SL_ENOTFOUND;
    for (int i = 0; i < 2; i++) {
        const char *bad;
        ssize_t n = pread(p->fd, m[i], sizeof m[i], (off_t) off);
        if (n != (ssize_t) sizeof m[i]) {
            s_say(p, NULL, "meta page %d lies past the end of the file (%" PRIu64
                  " bytes)", i, p->meta.file_size);
            return SL_ESTORE;
        }
        bad = s_meta_bad(m[i]);
        if (bad) {
            s_say(p, NULL, "meta page %d %s", i, bad);
            return SL_ESTORE;
        }
        /* LMDB finds meta 1 one page size (meta 0's) further on. */
        off = s_le32(m[0] + S_META_AT + 24);
    }
    uint64_t t0 = s_le64(m[0] + S_META_AT + 128);
    uint64_t t1 = s_le64(m[1] + S_META_AT + 128);
    if (s_le32(m[0] + S_META_AT + 24) != s_le32(m[1] + S_META_AT + 24))
        s_say(p, NULL, "the meta pages disagree on the page size");
    /* Commits write the two metas in turn, each one transaction on. */
    if (!(t0 == 0 && t1 == 0) && t0 != t1 + 1 && t1 != t0 + 1)
        s_say(p, NULL, "the meta pages are of transactions %" PRIu64 " and %" PRIu64
              ", not one apart: one is damaged", t0, t1);
    if (txnid)
        pick = t0 == txnid ? 0 : t1 == txnid ? 1 : -1;
    else
        pick = t1 > t0 ? 1 : 0;
    if (pick < 0)
        return SL_EBUSY;
    const uint8_t *meta = m[pick] + S_META_AT;
    p->meta.psize = s_le32(meta + 24);
    p->meta.last_pgno = s_le64(meta + 120);
    p->meta.txnid = pick ? t1 : t0;
    s_db_parse(meta + 24, &p->free_db);
    s_db_parse(meta + 24 + S_DB_LEN, &p->main_db);
    if (p->meta.last_pgno < 1 || p->meta.last_pgno > UINT64_MAX / p->meta.psize - 1) {
        s_say(p, NULL, "meta page %d: impossible last page %" PRIu64, pick,
              p->meta.last_pgno);
        return SL_ESTORE;
    }
    /* Pages past the end of the file are no damage when they are all
     * free: LMDB counts pages a commit took and gave back (its loose
     * pages) in the last page but never writes them. sld_pages_open
     * looks at the free list for them. */
    p->tail_from = p->meta.file_size / p->meta.psize;
    return p->problems ? SL_ESTORE : 0;
}

/* ----------------------------------------------------------------- trees */

static bool s_seen(const sld_pages_t *p, uint64_t pgno)
{
    return (p->seen[pgno >> 3] >> (pgno & 7)) & 1;
}

/* Mark pages PGNO .. PGNO + N - 1 met; false (reported) when one was met
 * before. */
static bool s_mark(s_walk_t *w, uint64_t pgno, uint64_t n)
{
    sld_pages_t *p = w->p;
    for (uint64_t i = 0; i < n; i++) {
        if (s_seen(p, pgno + i)) {
            s_say(p, w, "%s: page %" PRIu64 " is reached twice (a loop, or a page "
                  "shared between trees)", w->what, pgno + i);
            return false;
        }
        p->seen[(pgno + i) >> 3] |= (uint8_t) (1u << ((pgno + i) & 7));
    }
    return true;
}

static int s_cmp(const s_walk_t *w, const uint8_t *a, size_t alen, const uint8_t *b,
                 size_t blen)
{
    if (w->integer && alen == 8 && blen == 8) {
        uint64_t x = s_le64(a), y = s_le64(b);
        return x < y ? -1 : x > y;
    }
    size_t n = alen < blen ? alen : blen;
    int c = memcmp(a, b, n);
    return c ? c : (alen > blen) - (alen < blen);
}

/* Does a target range meet [LO, HI) (NULL: unbounded)? */
static bool s_targeted(const s_walk_t *w, const uint8_t *lo, size_t lolen,
                       const uint8_t *hi, size_t hilen)
{
    size_t a = 0, b = w->ntargets, k = w->klen;
    while (a < b) {     /* the first range whose upper end is >= LO */
        size_t mid = a + (b - a) / 2;
        if (lo && s_cmp(w, w->targets + (2 * mid + 1) * k, k, lo, lolen) < 0)
            a = mid + 1;
        else
            b = mid;
    }
    return a < w->ntargets
        && (!hi || s_cmp(w, w->targets + 2 * a * k, k, hi, hilen) < 0);
}

/* The overflow run at OPGNO holding a value of DSIZE bytes; *VAL gets the
 * value when WANT (else NULL). 0, 1 (a problem, reported), negative. */
static int s_overflow(s_walk_t *w, uint64_t opgno, size_t dsize, bool want,
                      const uint8_t **val)
{
    sld_pages_t *p = w->p;
    uint8_t hdr[S_HDR];
    uint64_t need = (S_HDR + (uint64_t) dsize + p->meta.psize - 1) / p->meta.psize, pages;
    int rc;

    *val = NULL;
    if (opgno < 2 || opgno > p->meta.last_pgno) {
        s_say(p, w, "%s: overflow page %" PRIu64 " outside the environment", w->what, opgno);
        return 1;
    }
    rc = s_read(p, w, opgno, hdr, sizeof hdr);
    if (rc)
        return rc;
    pages = s_le32(hdr + 12);
    if (s_le64(hdr) != opgno || s_le16(hdr + 10) != S_P_OVERFLOW || pages < need
        || pages > p->meta.last_pgno + 1 - opgno) {
        s_say(p, w, "%s: overflow page %" PRIu64 " is damaged (says page %" PRIu64
              ", flags 0x%x, %" PRIu64 " pages for a %zu-byte value)", w->what, opgno,
              s_le64(hdr), s_le16(hdr + 10), pages, dsize);
        return 1;
    }
    if (!s_mark(w, opgno, pages))
        return 1;
    w->overflow += pages;
    if (!want)
        return 0;
    if (dsize + 1 > p->cvalue) {
        uint8_t *v = realloc(p->value, dsize + 1);
        if (!v)
            return SL_ENOMEM;
        p->value = v;
        p->cvalue = dsize + 1;
    }
    /* The value follows the first page's header; the run is contiguous. */
    size_t got = 0;
    uint64_t at = opgno * p->meta.psize + S_HDR;
    while (got < dsize) {
        ssize_t n = pread(p->fd, p->value + got, dsize - got, (off_t) (at + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            s_say(p, w, "%s: overflow page %" PRIu64 " lies past the end of the file",
                  w->what, opgno);
            return n < 0 ? SL_ESYS : 1;
        }
        got += (size_t) n;
    }
    *val = p->value;
    return 0;
}

/* A database record in the main database: keep it when sound. */
static void s_main_record(s_walk_t *w, const uint8_t *key, size_t klen, const uint8_t *val)
{
    sld_pages_t *p = w->p;
    s_db_t db;
    s_db_parse(val, &db);
    if (p->ndbs == p->cdbs) {
        size_t n = p->cdbs ? 2 * p->cdbs : 16;
        s_db_t *d = realloc(p->dbs, n * sizeof *d);
        if (!d) {
            w->stop = SL_ENOMEM;
            return;
        }
        p->dbs = d;
        p->cdbs = n;
    }
    db.name = malloc(klen + 1);
    if (!db.name) {
        w->stop = SL_ENOMEM;
        return;
    }
    memcpy(db.name, key, klen);
    db.name[klen] = 0;
    if (strlen(db.name) != klen)
        s_say(p, w, "main database: a database name holds a NUL byte");
    p->dbs[p->ndbs++] = db;
}

/* Leaf node I (at OFF) of page PG; its key within [LO, HI). */
static int s_leaf_node(s_walk_t *w, const uint8_t *pg, uint64_t pgno, unsigned i,
                       unsigned off, const uint8_t *lo, size_t lolen, const uint8_t *hi,
                       size_t hilen)
{
    sld_pages_t *p = w->p;
    const uint8_t *node = pg + off, *key = node + S_NODE, *val;
    size_t psize = p->meta.psize, klen = s_le16(node + 6);
    size_t dsize = (size_t) s_le16(node) | (size_t) s_le16(node + 2) << 16;
    unsigned flags = s_le16(node + 4);
    unsigned allowed = w->is_main ? S_F_SUBDATA : S_F_BIGDATA;
    int rc;

    if (klen == 0 || klen > S_MAXKEY || off + S_NODE + klen > psize) {
        s_say(p, w, "%s: leaf page %" PRIu64 ", node %u: key of %zu bytes does not fit",
              w->what, pgno, i, klen);
        return 1;
    }
    if ((flags & ~allowed) || (w->is_main && flags != S_F_SUBDATA)) {
        s_say(p, w, "%s: leaf page %" PRIu64 ", node %u: flags 0x%x", w->what, pgno, i,
              flags);
        return 1;
    }
    if (off + S_NODE + klen + ((flags & S_F_BIGDATA) ? 8 : dsize) > psize) {
        s_say(p, w, "%s: leaf page %" PRIu64 ", node %u: a %zu-byte value reaches past "
              "the page", w->what, pgno, i, dsize);
        return 1;
    }
    if ((lo && s_cmp(w, key, klen, lo, lolen) < 0) || (hi && s_cmp(w, key, klen, hi, hilen) >= 0)
        || (w->has_prev && s_cmp(w, key, klen, w->prev, w->prevlen) <= 0)) {
        s_say(p, w, "%s: leaf page %" PRIu64 ", node %u: key out of order (a search "
              "would not find it)", w->what, pgno, i);
        return 1;
    }
    memcpy(w->prev, key, klen);
    w->prevlen = klen;
    w->has_prev = true;
    w->entries++;
    val = key + klen;
    if (w->is_main) {
        if (dsize != S_DB_LEN) {
            s_say(p, w, "main database: record of %zu bytes for a database", dsize);
            return 1;
        }
        s_main_record(w, key, klen, val);
        return 0;
    }
    if (flags & S_F_BIGDATA) {
        rc = s_overflow(w, s_le64(val), dsize, w->fn || w->integer, &val);
        if (rc)
            return rc;
    }
    if (w->integer) {
        /* Free list: a count, then that many page numbers. */
        uint64_t n = dsize >= 8 ? s_le64(val) : UINT64_MAX;
        if (klen != 8 || dsize % 8 != 0 || n > dsize / 8 - 1) {
            s_say(p, w, "free list: record of %zu bytes is damaged", dsize);
            return 1;
        }
        for (uint64_t k = 1; k <= n; k++) {
            uint64_t fp = s_le64(val + 8 * k);
            if (fp < 2 || fp > p->meta.last_pgno) {
                s_say(p, w, "free list: page %" PRIu64 " outside the environment", fp);
                return 1;
            }
            if (s_seen(p, fp)) {
                s_say(p, w, "free list: page %" PRIu64 " is free and in use", fp);
                return 1;
            }
            if (p->tail_free && fp >= p->tail_from)
                p->tail_free[(fp - p->tail_from) >> 3] |= (uint8_t) (1u << ((fp - p->tail_from) & 7));
        }
        return 0;
    }
    if (w->fn) {
        int stop = w->fn(key, klen, val, dsize, w->arg);
        if (stop)
            w->stop = stop;
    }
    return 0;
}

static int s_walk_page(s_walk_t *w, uint64_t pgno, unsigned level, const uint8_t *lo,
                       size_t lolen, const uint8_t *hi, size_t hilen);

/* Remember a leaf a sparse walk passes over, with its bounds: if the
 * next one is wanted, this one is its neighbour and is read too. */
static void s_skip(s_walk_t *w, uint64_t c, const uint8_t *lo, size_t lolen,
                   const uint8_t *hi, size_t hilen)
{
    w->has_skipped = true;
    w->skipped = c;
    w->skip_has_lo = lo != NULL;
    w->skip_has_hi = hi != NULL;
    w->skip_lolen = lo ? lolen : 0;
    w->skip_hilen = hi ? hilen : 0;
    if (lo)
        memcpy(w->skip_lo, lo, lolen);
    if (hi)
        memcpy(w->skip_hi, hi, hilen);
}

/* A branch node at LEVEL leads to child C, whose keys lie in [CLO, CHI).
 * A sparse walk reads, of the leaves, those that meet a target range and
 * the leaf before and after each run of them (the neighbours LMDB
 * merges with when a delete leaves a page nearly empty). */
static int s_child(s_walk_t *w, uint64_t c, unsigned level, const uint8_t *clo,
                   size_t clolen, const uint8_t *chi, size_t chilen)
{
    if (w->targets && level + 2 == w->db->depth) {
        bool hit = s_targeted(w, clo, clolen, chi, chilen);
        if (!hit && !w->want_next) {
            s_skip(w, c, clo, clolen, chi, chilen);
            return 0;
        }
        if (hit && w->has_skipped) {
            int rc;
            w->has_skipped = false;
            rc = s_walk_page(w, w->skipped, level + 1,
                             w->skip_has_lo ? w->skip_lo : NULL, w->skip_lolen,
                             w->skip_has_hi ? w->skip_hi : NULL, w->skip_hilen);
            if (rc < 0)
                return rc;
        }
        w->has_skipped = false;
        w->want_next = hit;
    }
    return s_walk_page(w, c, level + 1, clo, clolen, chi, chilen);
}

/* Page PGNO at LEVEL (0: the root) of W's tree; its keys lie in [LO, HI)
 * (NULL: unbounded). 0, or negative (an error; W->stop set). Problems
 * are counted in W. */
static int s_walk_page(s_walk_t *w, uint64_t pgno, unsigned level, const uint8_t *lo,
                       size_t lolen, const uint8_t *hi, size_t hilen)
{
    sld_pages_t *p = w->p;
    size_t psize = p->meta.psize;
    uint8_t *pg = p->bufs + (size_t) level * psize;
    bool leaf = level + 1 == w->db->depth;
    unsigned flags, lower, upper, n;
    int rc;

    if (pgno < 2) {
        s_say(p, w, "%s: a tree points at meta page %" PRIu64, w->what, pgno);
        return 0;
    }
    rc = s_read(p, w, pgno, pg, psize);
    if (rc)
        return rc < 0 ? (w->stop = rc) : 0;
    if (!s_mark(w, pgno, 1))
        return 0;
    flags = s_le16(pg + 10);
    lower = s_le16(pg + 12);
    upper = s_le16(pg + 14);
    if (s_le64(pg) != pgno || flags != (leaf ? S_P_LEAF : S_P_BRANCH)) {
        s_say(p, w, "%s: page %" PRIu64 " is not the %s page its parent expects (it "
              "says page %" PRIu64 ", flags 0x%x)", w->what, pgno, leaf ? "leaf" : "branch",
              s_le64(pg), flags);
        return 0;
    }
    n = lower >= S_HDR ? (lower - S_HDR) / 2 : 0;
    if (lower < S_HDR || (lower & 1) || upper < lower || upper > psize
        || n < (leaf ? 1u : w->integer ? 1u : 2u)) {
        s_say(p, w, "%s: %s page %" PRIu64 " has a damaged header (lower %u, upper %u)",
              w->what, leaf ? "leaf" : "branch", pgno, lower, upper);
        return 0;
    }
    if (leaf)
        w->leaf++;
    else
        w->branch++;
    for (unsigned i = 0; i < n && !w->stop; i++) {
        unsigned off = s_le16(pg + S_HDR + 2 * i);
        if (off < upper || (off & 1) || off + S_NODE > psize) {
            s_say(p, w, "%s: page %" PRIu64 ", node %u lies outside the page's node area",
                  w->what, pgno, i);
            return 0;
        }
        if (leaf) {
            rc = s_leaf_node(w, pg, pgno, i, off, lo, lolen, hi, hilen);
            if (rc < 0)
                return w->stop = rc;
            if (rc)
                return 0;
            continue;
        }
        const uint8_t *node = pg + off;
        size_t klen = s_le16(node + 6);
        uint64_t child = (uint64_t) s_le16(node) | (uint64_t) s_le16(node + 2) << 16
                       | (uint64_t) s_le16(node + 4) << 32;
        if (off + S_NODE + klen > psize || (i > 0 && (klen == 0 || klen > S_MAXKEY))) {
            s_say(p, w, "%s: branch page %" PRIu64 ", node %u: key of %zu bytes does not "
                  "fit", w->what, pgno, i, klen);
            return 0;
        }
        if (child < 2 || child > p->meta.last_pgno) {
            s_say(p, w, "%s: branch page %" PRIu64 ", node %u points at page %" PRIu64
                  ", outside the environment", w->what, pgno, i, child);
            continue;
        }
        /* Child I holds keys from its own key (node 0: the page's lower
         * bound) up to the next node's key (the last: the upper bound). */
        const uint8_t *clo = i ? node + S_NODE : lo, *chi = hi;
        size_t clolen = i ? klen : lolen, chilen = hilen;
        if (i > 0 && ((lo && s_cmp(w, clo, clolen, lo, lolen) < 0)
                      || (hi && s_cmp(w, clo, clolen, hi, hilen) >= 0))) {
            s_say(p, w, "%s: branch page %" PRIu64 ", node %u: key outside the range its "
                  "parent gives", w->what, pgno, i);
            return 0;
        }
        if (i + 1 < n) {
            unsigned noff = s_le16(pg + S_HDR + 2 * (i + 1));
            if (noff < upper || noff + S_NODE > psize
                || noff + S_NODE + s_le16(pg + noff + 6) > psize) {
                s_say(p, w, "%s: branch page %" PRIu64 ", node %u is damaged", w->what,
                      pgno, i + 1);
                return 0;
            }
            chi = pg + noff + S_NODE;
            chilen = s_le16(pg + noff + 6);
            if (i > 0 && s_cmp(w, chi, chilen, clo, clolen) <= 0) {
                s_say(p, w, "%s: branch page %" PRIu64 ", keys %u and %u out of order",
                      w->what, pgno, i, i + 1);
                return 0;
            }
        }
        rc = s_child(w, child, level, clo, clolen, chi, chilen);
        if (rc < 0)
            return rc;
    }
    return w->stop < 0 ? w->stop : 0;
}

static int s_range_cmp(const void *a, const void *b, void *klen)
{
    return memcmp(a, b, *(size_t *) klen);
}

/* Copy NKEYS ranges (KLEN-byte lo, hi pairs) sorted, overlapping ones
 * merged, into *OUT (caller frees); their count. */
static size_t s_ranges(const void *keys, size_t klen, size_t n, uint8_t **out)
{
    uint8_t *r = malloc(2 * klen * n + 1);
    size_t m = 0;
    *out = r;
    if (!r)
        return 0;
    memcpy(r, keys, 2 * klen * n);
    qsort_r(r, n, 2 * klen, s_range_cmp, &klen);
    for (size_t i = 0; i < n; i++) {
        uint8_t *lo = r + 2 * klen * i, *hi = lo + klen;
        uint8_t *last = r + 2 * klen * (m ? m - 1 : 0);
        if (memcmp(lo, hi, klen) > 0)
            memcpy(hi, lo, klen);
        if (m && memcmp(lo, last + klen, klen) <= 0) {
            if (memcmp(hi, last + klen, klen) > 0)
                memcpy(last + klen, hi, klen);
            continue;
        }
        memmove(r + 2 * klen * m++, lo, 2 * klen);
    }
    return m;
}

/* Walk tree DB. */
static long s_walk(sld_pages_t *p, const s_db_t *db, const char *what, bool integer,
                   bool is_main, const void *keys, size_t klen, size_t nkeys,
                   sld_pages_record_fn *fn, void *arg)
{
    s_walk_t w;
    uint8_t *sorted = NULL;
    long rc;

    memset(&w, 0, sizeof w);
    w.p = p;
    w.db = db;
    w.what = what;
    w.integer = integer;
    w.is_main = is_main;
    w.fn = fn;
    w.arg = arg;
    if (db->root == S_INVALID) {
        if (db->depth || db->entries || db->branch || db->leaf || db->overflow)
            s_say(p, &w, "%s: empty, but its record counts %" PRIu64 " entries",
                  what, db->entries);
        return w.problems;
    }
    if (db->depth < 1 || db->depth > S_MAX_DEPTH) {
        s_say(p, &w, "%s: impossible tree depth %u", what, db->depth);
        return w.problems;
    }
    if (keys) {
        if (klen == 0 || klen > S_MAXKEY)
            return SL_EINVAL;
        w.ntargets = s_ranges(keys, klen, nkeys, &sorted);
        if (!sorted)
            return SL_ENOMEM;
        w.targets = sorted;
        w.klen = klen;
    }
    rc = s_walk_page(&w, db->root, 0, NULL, 0, NULL, 0);
    free(sorted);
    if (w.stop)
        return w.stop;
    if (rc < 0)
        return rc;
    if (w.problems == 0 && w.branch != db->branch)
        s_say(p, &w, "%s: %" PRIu64 " branch pages, its record says %" PRIu64, what,
              w.branch, db->branch);
    if (w.problems == 0 && !w.targets && (w.leaf != db->leaf || w.overflow != db->overflow
                                          || w.entries != db->entries))
        s_say(p, &w, "%s: %" PRIu64 " leaf pages, %" PRIu64 " overflow pages and %" PRIu64
              " entries; its record says %" PRIu64 ", %" PRIu64 " and %" PRIu64, what,
              w.leaf, w.overflow, w.entries, db->leaf, db->overflow, db->entries);
    return w.problems;
}

/* ----------------------------------------------------------------- public */

/* The pages past the end of the file (if any) must all be on the free
 * list: else the file was cut short. 0, or SL_ENOMEM / a walk's error;
 * the finding is a problem said. */
static int s_tail_check(sld_pages_t *p)
{
    uint64_t last = p->meta.last_pgno, missing = 0, n;
    if (p->tail_from > last)
        return 0;
    n = last - p->tail_from + 1;
    /* The walk marks the free list's own pages met: put the marks back
     * after it, so that sld_pages_walk_free can walk it again. */
    size_t nseen = last / 8 + 1;
    uint8_t *seen = malloc(nseen);
    p->tail_free = calloc(n / 8 + 1, 1);
    if (!p->tail_free || !seen) {
        free(seen);
        free(p->tail_free);
        p->tail_free = NULL;
        return SL_ENOMEM;
    }
    memcpy(seen, p->seen, nseen);
    long w = s_walk(p, &p->free_db, "free list", true, false, NULL, 0, 0, NULL, NULL);
    memcpy(p->seen, seen, nseen);
    free(seen);
    for (uint64_t k = 0; w >= 0 && k < n; k++)
        if (!((p->tail_free[k >> 3] >> (k & 7)) & 1))
            missing++;
    free(p->tail_free);
    p->tail_free = NULL;
    if (w < 0)
        return (int) w;
    if (missing)
        s_say(p, NULL, "the file is %" PRIu64 " bytes but the environment's last page "
              "(%" PRIu64 ") ends at byte %" PRIu64 ", and %" PRIu64 " of the %" PRIu64
              " pages past the end are not free: the file was cut short",
              p->meta.file_size, last, (last + 1) * p->meta.psize, missing, n);
    return 0;
}

int sld_pages_open(const char *file, uint64_t txnid, sld_pages_problem_fn *problem,
                   void *arg, sld_pages_t **out)
{
    int rc = 0;
    sld_pages_t *p;
    long n;

    *out = NULL;
    p = calloc(1, sizeof *p);
    if (!p || !(p->file = strdup(file))) {
        free(p);
        return SL_ENOMEM;
    }
    p->problem = problem;
    p->arg = arg;
    p->fd = open(file, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0) {
        rc = errno == ENOENT ? SL_ENOTFOUND : SL_ESYS;
        if (rc == SL_ESYS)
            fprintf(stderr, "sluiced: store: open %s: %s\n", file, strerror(errno));
        goto fail;
    }
    rc = s_read_metas(p, txnid);
    if (rc)
        goto fail;
    p->bufs = malloc((size_t) p->meta.psize * (S_MAX_DEPTH + 1));
    p->seen = calloc(p->meta.last_pgno / 8 + 1, 1);
    if (!p->bufs || !p->seen) {
        rc = SL_ENOMEM;
        goto fail;
    }
    n = s_walk(p, &p->main_db, "main database", false, true, NULL, 0, 0, NULL, NULL);
    if (n < 0) {
        rc = (int) n;
        goto fail;
    }
    if (p->main_db.flags != 0)
        s_say(p, NULL, "main database: flags 0x%x", p->main_db.flags);
    rc = s_tail_check(p);
    if (rc)
        goto fail;
    for (size_t i = 0; i < p->ndbs; i++)
        if (p->dbs[i].flags != 0)
            s_say(p, NULL, "database %s: flags 0x%x (sluice opens none with flags)",
                  p->dbs[i].name, p->dbs[i].flags);
    p->names = calloc(p->ndbs + 1, sizeof *p->names);
    if (!p->names) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < p->ndbs; i++)
        p->names[i] = p->dbs[i].name;
    *out = p;
    return p->problems ? SL_ESTORE : 0;
fail:
    sld_pages_destroy(&p);
    return rc;
}

void sld_pages_destroy(sld_pages_t **self_p)
{
    sld_pages_t *p = *self_p;
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);
    for (size_t i = 0; i < p->ndbs; i++)
        free(p->dbs[i].name);
    free(p->dbs);
    free(p->names);
    free(p->bufs);
    free(p->seen);
    free(p->value);
    free(p->file);
    free(p);
    *self_p = NULL;
}

const sld_pages_meta_t *sld_pages_meta(const sld_pages_t *self)
{
    return &self->meta;
}

size_t sld_pages_problems(const sld_pages_t *self)
{
    return self->problems;
}

const char *const *sld_pages_names(const sld_pages_t *self, size_t *count)
{
    *count = self->names ? self->ndbs : 0;
    return self->names;
}

long sld_pages_walk(sld_pages_t *self, const char *name, const void *keys, size_t klen,
                    size_t nkeys, sld_pages_record_fn *fn, void *arg)
{
    if (!name)
        return s_walk(self, &self->main_db, "main database", false, true, keys, klen,
                      nkeys, NULL, NULL);
    for (size_t i = 0; self->names && i < self->ndbs; i++)
        if (strcmp(self->dbs[i].name, name) == 0)
            return s_walk(self, &self->dbs[i], name, false, false, keys, klen, nkeys,
                          fn, arg);
    return SL_ENOTFOUND;
}

long sld_pages_walk_free(sld_pages_t *self)
{
    if (!self->bufs)
        return 0;
    return s_walk(self, &self->free_db, "free list", true, false, NULL, 0, 0, NULL, NULL);
}
