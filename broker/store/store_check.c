/*  store_check - the store's checks: sld_store_check (sluiced --check:
 *  every page, record, counter, cursor and producer run) and the open's
 *  damage checks (the file before LMDB maps it, the pages a writer
 *  touches, the cheap start check). Broker thread, or the --check
 *  process. It reports damage, never repairs it; records are read from
 *  the file with sld_pages, not through LMDB.  */
#include "sld_store_int.h"
#include "sld_pages.h"
#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>

/* --------------------------------------------------------- damage at open */

/* The open's report of one problem (sld_pages_problem_fn): the first
 * S_START_SHOW are logged, all counted. */
static void s_open_problem(void *arg, const char *text)
{
    sld_store_t *s = arg;
    if (s->damage++ < S_START_SHOW)
        fprintf(stderr, "sluiced: store: %s: damaged: %s\n", s->file, text);
    else if (s->damage == S_START_SHOW + 1)
        fprintf(stderr, "sluiced: store: %s: damaged: (more problems not shown)\n",
                s->file);
}

/* Topic records as the structure walk meets them: id, first and next. */
typedef struct {
    uint8_t (*keys)[2][S_MSG_KEY_LEN];  /* ranges for the msgs walk */
    size_t n, cap;
} s_targets_t;

static int s_target_add(s_targets_t *t, uint32_t id, uint64_t from, uint64_t to)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 32;
        void *p = realloc(t->keys, cap * sizeof *t->keys);
        if (!p)
            return SL_ENOMEM;
        t->keys = p;
        t->cap = cap;
    }
    sld_store__msg_key(t->keys[t->n][0], id, from);
    sld_store__msg_key(t->keys[t->n][1], id, to);
    t->n++;
    return 0;
}

static int s_target_topic(const void *key, size_t klen, const void *val, size_t vlen,
                          void *arg)
{
    sld_topic_info_t t;
    MDB_val k = sld_store__val(key, klen), v = sld_store__val(val, vlen);
    int rc = 0;
    /* A damaged topic record is refused by the load that follows. */
    if (sld_store__topic_decode(&k, &v, &t, true) == 0) {
        rc = s_target_add(arg, t.id, t.first_offset, t.first_offset);
        if (rc == 0)
            rc = s_target_add(arg, t.id, t.next_offset, t.next_offset);
    }
    return rc;
}

/* Check, with pread and before LMDB reads a page, every page a writer of
 * this store will touch: every database in full but `msgs`, and of `msgs`
 * every branch page and the leaves at each topic's head and tail (and at
 * the ends of the log) with their neighbours. MT (a read txn) pins the
 * pages being read. 0, SL_ESTORE (damaged: each problem logged), other
 * errors. */
int sld_store__structure(sld_store_t *s, MDB_txn *mt)
{
    int rc;
    long n = 0, found;
    sld_pages_t *pg = NULL;
    s_targets_t t = { 0 };
    size_t count;
    const char *const *names;

    rc = sld_pages_open(s->file, mdb_txn_id(mt), s_open_problem, s, &pg);
    if (rc == SL_ESTORE && pg)
        rc = 0;         /* problems in the main database: counted, walk on */
    if (rc)
        goto fail;
    names = sld_pages_names(pg, &count);
    for (size_t i = 0; i < count && n >= 0; i++)
        if (strcmp(names[i], "msgs") != 0)
            n = sld_pages_walk(pg, names[i], NULL, 0, 0,
                               strcmp(names[i], "topics") == 0 ? s_target_topic : NULL,
                               &t);
    /* The two ends of the whole log too: LMDB seeks to the last key. */
    if (n >= 0)
        n = s_target_add(&t, 0, 0, 0);
    if (n >= 0)
        n = s_target_add(&t, UINT32_MAX, UINT64_MAX, UINT64_MAX);
    if (n >= 0) {
        n = sld_pages_walk(pg, "msgs", t.keys, S_MSG_KEY_LEN, t.n, NULL, NULL);
        if (n == SL_ENOTFOUND)
            n = 0;
    }
    if (n >= 0)
        n = sld_pages_walk_free(pg);
    if (n < 0) {
        rc = (int) n;
        goto fail;
    }
    found = (long) sld_pages_problems(pg);
    if (found) {
        fprintf(stderr, "sluiced: store: %s: %ld problem%s in pages the broker writes "
                "to; refusing to open it (nothing was changed). `sluiced --check` "
                "reports the whole store; restore it from a backup\n", s->file, found,
                found == 1 ? "" : "s");
        rc = SL_ESTORE;
    }
fail:
    free(t.keys);
    sld_pages_destroy(&pg);
    return rc;
}

/* Before LMDB maps it: data.mdb's meta pages sound and the file as long
 * as the environment they describe (LMDB reads a page past the end of
 * the file as a SIGBUS). A missing or empty file is a new store. */
int sld_store__preflight(sld_store_t *s)
{
    sld_pages_t *pg = NULL;
    struct stat st;
    int rc = sld_pages_open(s->file, 0, s_open_problem, s, &pg);
    sld_pages_destroy(&pg);
    /* LMDB writes a new file's meta pages before anything else: an empty
     * data.mdb was cut short, and starting over in it would lose it all. */
    if (rc == SL_ENOTFOUND && stat(s->file, &st) == 0)
        return sld_store__refuse(s, "the file is empty (cut short?); a new store has no data.mdb "
                                 "yet: remove the empty file to start one");
    if (rc == SL_ENOTFOUND)
        return 0;
    if (rc == SL_ESTORE)
        rc = sld_store__refuse(s, "damaged (the problems above)");
    return rc;
}

/* LMDB's own view, once it has opened the file: its last page in it. */
int sld_store__covers(sld_store_t *s)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat fst;
    int mrc = mdb_env_info(s->env, &info);
    if (mrc == 0)
        mrc = mdb_env_stat(s->env, &st);
    if (mrc)
        return sld_store__mdb_fail("environment info", mrc);
    if (stat(s->file, &fst) != 0) {
        fprintf(stderr, "sluiced: store: stat %s: %s\n", s->file, strerror(errno));
        return SL_ESYS;
    }
    s->psize = st.ms_psize;
    if (((uint64_t) info.me_last_pgno + 1) * st.ms_psize > (uint64_t) fst.st_size) {
        /* No damage when every page past the end is free (pages a commit
         * took and gave back, never written): sld_pages looks. */
        sld_pages_t *pg = NULL;
        int prc = sld_pages_open(s->file, info.me_last_txnid, s_open_problem, s, &pg);
        sld_pages_destroy(&pg);
        if (prc == 0)
            return 0;
        char why[160];
        snprintf(why, sizeof why, "the file is %jd bytes but its last page (%zu) ends at "
                 "byte %" PRIu64 ": the file was cut short", (intmax_t) fst.st_size,
                 info.me_last_pgno, ((uint64_t) info.me_last_pgno + 1) * st.ms_psize);
        return sld_store__refuse(s, why);
    }
    return 0;
}

/* The cheap part of sld_store_check, at open: the topic counters against
 * LMDB's count of records, and the first and last record of each topic
 * read and verified (guarded, as any read). What it finds is logged and
 * counted in s->damage; the store opens all the same. */
void sld_store__start_check(sld_store_t *s)
{
    sld_txn_t *txn = NULL;
    MDB_stat st;
    uint64_t total = 0;
    char text[SLC_TOPIC_MAX + 200];
    size_t before = s->damage;

    if (sld_store_begin(s, false, &txn) != 0)
        return;
    txn->logged = true;         /* s_open_problem logs */
    for (size_t i = 0; i < s->ntopics; i++)
        total += s->topics[i].info.messages;
    if (mdb_stat(txn->mt, s->db_msgs, &st) == 0 && st.ms_entries != total) {
        snprintf(text, sizeof text, "the topics count %" PRIu64 " records, the log holds "
                 "%zu", total, (size_t) st.ms_entries);
        s_open_problem(s, text);
    }
    for (size_t i = 0; i < s->ntopics && txn; i++) {
        const sld_topic_info_t *t = &s->topics[i].info;
        /* The first and last record read; none lies just outside them
         * (a topic record with wrong offsets would hide records). */
        uint64_t at[4] = { t->first_offset, t->next_offset - 1, t->next_offset,
                           t->first_offset - 1 };
        for (int k = 0; k < 4 && txn; k++) {
            const void *env;
            size_t len;
            int rc;
            if ((k < 2 && t->messages == 0) || (k == 3 && t->first_offset == 0))
                continue;
            rc = sld_store_read(txn, t->id, at[k], &env, &len, NULL);
            if (k >= 2 && rc != SL_ENOTFOUND && rc != SL_EBUSY) {
                snprintf(text, sizeof text, "topic %s: a record lies at offset %" PRIu64
                         ", outside the offsets its topic record gives (%" PRIu64 " to %"
                         PRIu64 ")", t->name, at[k], t->first_offset, t->next_offset);
                s_open_problem(s, text);
            } else if (k < 2 && rc == SL_ESTORE) {
                snprintf(text, sizeof text, "topic %s: record %" PRIu64 " %s", t->name,
                         at[k], sld_txn_why(txn));
                s_open_problem(s, text);
            } else if (rc == SL_EBUSY) {
                sld_txn_abort(&txn);
                if (sld_store_begin(s, false, &txn) == 0)
                    txn->logged = true;
            }
        }
    }
    sld_txn_abort(&txn);
    if (s->damage > before)
        fprintf(stderr, "sluiced: store: %s is DAMAGED: the start check found %zu "
                "problem%s. What reads is served; a record that does not read is "
                "dead-lettered (deliver.unreadable). `sluiced --check` reports the whole "
                "store\n", s->file, s->damage - before, s->damage - before == 1 ? "" : "s");
}

/* ------------------------------------------------------------------ check */

size_t sld_store_damage(const sld_store_t *self)
{
    assert(self);
    return self->damage;
}
typedef struct {
    sld_topic_info_t info;      /* as recorded in `topics` */
    uint64_t records, bytes;    /* as counted in `msgs` */
    uint64_t first, last;       /* lowest and highest stored offset */
} s_check_topic_t;

typedef struct {
    sld_store_t *store;
    FILE *out;
    size_t problems;
    s_check_topic_t *topics;    /* sorted by id */
    size_t ntopics, ctopics;
    uint64_t records;           /* in `msgs` */
    uint64_t plain, sealed;     /* records of each kind */
    uint64_t unsummed;          /* plain records without a checksum */
    uint8_t *buf;               /* an opened envelope; wiped at the end */
    size_t cbuf;
    sld_store_verify_fn *verify;
    s_check_topic_t *t;         /* the topic of the last record */
} s_check_t;

static void s_problem(s_check_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_problem(s_check_t *c, const char *fmt, ...)
{
    va_list ap;
    c->problems++;
    if (!c->out)
        return;
    fputs("problem: ", c->out);
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
}

/* A problem of data.mdb's structure (sld_pages_problem_fn). */
static void s_check_page_problem(void *arg, const char *text)
{
    s_problem(arg, "%s", text);
}

static s_check_topic_t *s_check_find(s_check_t *c, uint32_t id)
{
    size_t lo = 0, hi = c->ntopics;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->topics[mid].info.id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->ntopics && c->topics[lo].info.id == id ? &c->topics[lo] : NULL;
}

static int s_check_topic_cmp(const void *a, const void *b)
{
    uint32_t x = ((const s_check_topic_t *) a)->info.id;
    uint32_t y = ((const s_check_topic_t *) b)->info.id;
    return x < y ? -1 : x > y;
}

/* One record of `topics`, read from the file (sld_pages_record_fn). */
static int s_check_topic_rec(const void *key, size_t klen, const void *val, size_t vlen,
                             void *arg)
{
    s_check_t *c = arg;
    MDB_val k = sld_store__val(key, klen), v = sld_store__val(val, vlen);
    c->topics = sld_store__grow(c->topics, &c->ctopics, c->ntopics + 1, sizeof *c->topics);
    memset(&c->topics[c->ntopics], 0, sizeof c->topics[0]);
    if (sld_store__topic_decode(&k, &v, &c->topics[c->ntopics].info, !c->store->format_sums) == 0)
        c->ntopics++;
    else
        s_problem(c, "topic record '%.*s' is damaged", (int) (klen > 200 ? 200 : klen),
                  (const char *) key);
    return 0;
}

/* After the topics: in id order, ids unique, memory equal to the file. */
static void s_check_topics_done(sld_store_t *s, s_check_t *c)
{
    if (c->ntopics > 1)
        qsort(c->topics, c->ntopics, sizeof *c->topics, s_check_topic_cmp);
    for (size_t i = 0; i < c->ntopics; i++) {
        const sld_topic_info_t *t = &c->topics[i].info;
        const sld_topic_info_t *mem = sld_store_topic_by_id(s, t->id);
        if (i > 0 && t->id == c->topics[i - 1].info.id)
            s_problem(c, "topics %s and %s share id %" PRIu32,
                      c->topics[i - 1].info.name, t->name, t->id);
        /* Memory equals the last commit only when no write txn is open. */
        if (!s->writing && (!mem || memcmp(mem, t, sizeof *t) != 0))
            s_problem(c, "topic %s: in-memory metadata differs from the stored record",
                      t->name);
        c->topics[i].first = UINT64_MAX;
    }
}

/* Room for N bytes of opened envelope in C's buffer. */
static int s_check_room(s_check_t *c, size_t n)
{
    size_t cap = c->cbuf ? c->cbuf : 4096;
    uint8_t *p;
    if (n <= c->cbuf)
        return 0;
    while (cap < n)
        cap *= 2;
    p = malloc(cap);
    if (!p)
        return SL_ENOMEM;
    if (c->buf) {
        sodium_memzero(c->buf, c->cbuf);
        free(c->buf);
    }
    c->buf = p;
    c->cbuf = cap;
    return 0;
}

/* One record's envelope: its checksum verified or, sealed, opened (with
 * the store's keys), then given to VERIFY. 0, or SL_ENOMEM (problems are
 * counted, not returned). */
static int s_check_envelope(const sld_store_t *s, s_check_t *c, const s_check_topic_t *t,
                            uint64_t off, const uint8_t *rec, size_t n)
{
    int rc = 0;
    const uint8_t *env = rec + SLD_RECORD_HEADER;
    size_t len = n - SLD_RECORD_HEADER;
    unsigned mark = len ? rec[SLD_RECORD_HEADER] : 0x100;
    uint8_t sum[S_SUM_LEN];
    uint32_t key_id;

    if (mark == S_SEAL_MARK) {
        c->sealed++;
        if (!s->secret) {
            s_problem(c, "topic %s: record %" PRIu64 " looks sealed but the store has "
                      "no data keys", t->info.name, off);
            goto fail;
        }
        if (len < SLD_RECORD_SEAL_OVERHEAD) {
            s_problem(c, "topic %s: record %" PRIu64 " is too short to be sealed",
                      t->info.name, off);
            goto fail;
        }
        len -= SLD_RECORD_SEAL_OVERHEAD;
        rc = s_check_room(c, len + 1);
        if (rc)
            goto fail;
        if (sld_store__record_open(s, s->nkeys, t->info.id, off, rec, n, c->buf, &key_id) != 0) {
            s_problem(c, "topic %s: record %" PRIu64 " (data key %" PRIu32 ") does not "
                      "open: damaged, or moved from another topic, offset or time",
                      t->info.name, off, key_id);
            goto fail;
        }
        env = c->buf;
    } else if (mark == S_SUM_MARK) {
        c->plain++;
        if (len < SLD_RECORD_SUM_OVERHEAD) {
            s_problem(c, "topic %s: record %" PRIu64 " is too short to hold its "
                      "checksum", t->info.name, off);
            goto fail;
        }
        sld_store__sum(sum, t->info.id, off, rec, n - S_SUM_LEN);
        if (memcmp(sum, rec + n - S_SUM_LEN, S_SUM_LEN) != 0) {
            s_problem(c, "topic %s: record %" PRIu64 " fails its checksum: damaged, or "
                      "moved from another topic or offset", t->info.name, off);
            goto fail;
        }
        if (s->secret && !sld_store__plain_allowed(s, t->info.id, off))
            s_problem(c, "topic %s: record %" PRIu64 " is not sealed but lies where "
                      "only sealed records were written", t->info.name, off);
        env = rec + SLD_RECORD_HEADER + 1;
        len -= SLD_RECORD_SUM_OVERHEAD;
    } else if (mark <= S_MARK_MAX) {
        s_problem(c, "topic %s: record %" PRIu64 " starts with a marker byte no record "
                  "has: damaged", t->info.name, off);
        goto fail;
    } else {
        c->plain++;
        c->unsummed++;
        if (!sld_store__unsummed_allowed(s, t->info.id, off))
            s_problem(c, "topic %s: record %" PRIu64 " has no checksum but lies where "
                      "every record was written with one", t->info.name, off);
        if (s->secret && !sld_store__plain_allowed(s, t->info.id, off))
            s_problem(c, "topic %s: record %" PRIu64 " is not sealed but lies where "
                      "only sealed records were written", t->info.name, off);
    }
    if (c->verify && c->verify(env, len) != 0)
        s_problem(c, "topic %s: record %" PRIu64 ": envelope does not decode",
                  t->info.name, off);
fail:
    return rc;
}

/* One record of `msgs`, read from the file (sld_pages_record_fn). */
static int s_check_msg_rec(const void *key, size_t klen, const void *val, size_t vlen,
                           void *arg)
{
    s_check_t *c = arg;
    s_check_topic_t *t = c->t;
    uint32_t id;
    uint64_t off;

    c->records++;
    if (klen != S_MSG_KEY_LEN) {
        s_problem(c, "message key of %zu bytes", klen);
        return 0;
    }
    id = slc_get_be32(key);
    off = slc_get_be64((const uint8_t *) key + 4);
    if (!t || t->info.id != id)
        t = c->t = s_check_find(c, id);
    if (!t) {
        s_problem(c, "record %" PRIu32 "/%" PRIu64 ": no such topic", id, off);
        return 0;
    }
    if (t->records > 0 && off != t->last + 1)
        s_problem(c, "topic %s: offsets %" PRIu64 "..%" PRIu64 " missing",
                  t->info.name, t->last + 1, off - 1);
    if (t->records == 0)
        t->first = off;
    t->last = off;
    t->records++;
    t->bytes += vlen;
    if (off >= t->info.next_offset)
        s_problem(c, "topic %s: record %" PRIu64 " at or past next offset %" PRIu64,
                  t->info.name, off, t->info.next_offset);
    if (vlen < SLD_RECORD_HEADER) {
        s_problem(c, "topic %s: record %" PRIu64 " has %zu bytes, no header",
                  t->info.name, off, vlen);
        return 0;
    }
    return s_check_envelope(c->store, c, t, off, val, vlen);
}

/* After the records: every topic's counters against what the log holds. */
static void s_check_msgs_done(s_check_t *c)
{
    for (size_t i = 0; i < c->ntopics; i++) {
        const s_check_topic_t *x = &c->topics[i];
        uint64_t first = x->records ? x->first : x->info.next_offset;
        if (x->records && x->last + 1 != x->info.next_offset)
            s_problem(c, "topic %s: offsets %" PRIu64 "..%" PRIu64 " missing",
                      x->info.name, x->last + 1, x->info.next_offset - 1);
        if (x->records != x->info.messages)
            s_problem(c, "topic %s: %" PRIu64 " messages recorded, %" PRIu64 " stored",
                      x->info.name, x->info.messages, x->records);
        if (x->bytes != x->info.bytes)
            s_problem(c, "topic %s: %" PRIu64 " bytes recorded, %" PRIu64 " stored",
                      x->info.name, x->info.bytes, x->bytes);
        if (first != x->info.first_offset)
            s_problem(c, "topic %s: first offset %" PRIu64 " recorded, %" PRIu64 " stored",
                      x->info.name, x->info.first_offset, first);
    }
}

/* Cursors and acked offsets: NAME '\0' id [offset] -> known sub and topic. */
static int s_check_subs(sld_store_t *s, MDB_txn *mt, s_check_t *c, bool acked)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v, sk, sv;
    const char *what = acked ? "acked offset" : "cursor";
    size_t tail = acked ? 13 : 5;

    mrc = mdb_cursor_open(mt, acked ? s->db_acked : s->db_cursors, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *p = k.mv_data;
        const s_check_topic_t *t;
        uint64_t at;
        int n;
        if (!sld_store__rec_open(s, acked ? "acked" : "cursors", &k, &v)) {
            s_problem(c, "%s entry fails its checksum (damaged)", what);
            continue;
        }
        if (k.mv_size <= tail || p[k.mv_size - tail] != 0 || (!acked && v.mv_size != 8)) {
            s_problem(c, "damaged %s entry", what);
            continue;
        }
        n = (int) (k.mv_size - tail);
        t = s_check_find(c, slc_get_be32(p + n + 1));
        at = acked ? slc_get_be64(p + n + 5) : slc_get_be64(v.mv_data);
        sk = sld_store__val(p, (size_t) n);
        mrc = mdb_get(mt, s->db_subs, &sk, &sv);
        if (mrc && mrc != MDB_NOTFOUND)
            break;
        if (mrc == MDB_NOTFOUND)
            s_problem(c, "%s of unknown subscription %.*s", what, n, (const char *) p);
        if (!t)
            s_problem(c, "subscription %.*s: %s on unknown topic %" PRIu32, n,
                      (const char *) p, what, slc_get_be32(p + n + 1));
        else if (acked ? at >= t->info.next_offset : at > t->info.next_offset)
            s_problem(c, "subscription %.*s: %s %" PRIu64 " past topic %s's next "
                      "offset %" PRIu64, n, (const char *) p, what, at, t->info.name,
                      t->info.next_offset);
    }
    if (mrc != MDB_NOTFOUND)
        rc = sld_store__mdb_fail("check subscriptions", mrc);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* Every value of DBI (TAG: subscriptions, identities, registry) with
 * its checksum right. */
static int s_check_sums(sld_store_t *s, MDB_txn *mt, s_check_t *c, MDB_dbi dbi,
                        const char *tag)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v;

    mrc = mdb_cursor_open(mt, dbi, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if (!sld_store__rec_open(s, tag, &k, &v))
            s_problem(c, "%s: the record '%.*s' fails its checksum (damaged)", tag,
                      (int) (k.mv_size > 100 ? 100 : k.mv_size), (const char *) k.mv_data);
    if (mrc != MDB_NOTFOUND)
        rc = sld_store__mdb_fail("check records", mrc);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

static int s_check_pseq(sld_store_t *s, MDB_txn *mt, s_check_t *c)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v;

    mrc = mdb_cursor_open(mt, s->db_pseq, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const s_check_topic_t *t;
        uint64_t off;
        if (k.mv_size != S_PSEQ_KEY_LEN || v.mv_size != S_PSEQ_VAL_LEN) {
            s_problem(c, "damaged producer index entry");
            continue;
        }
        t = s_check_find(c, slc_get_be32(v.mv_data));
        off = slc_get_be64((const uint8_t *) v.mv_data + 4);
        uint64_t n = slc_get_be64((const uint8_t *) v.mv_data + 12);
        if (n == 0 || off + n < off)
            s_problem(c, "producer index run of %" PRIu64 " at offset %" PRIu64, n, off);
        else if (!t)
            s_problem(c, "producer index points at unknown topic %" PRIu32,
                      slc_get_be32(v.mv_data));
        else if (off + n > t->info.next_offset)
            s_problem(c, "producer index points at %s/%" PRIu64 ", never stored",
                      t->info.name, off + n - 1);
    }
    if (mrc != MDB_NOTFOUND)
        rc = sld_store__mdb_fail("check producers", mrc);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* Walk every database of data.mdb with sld_pages in the snapshot MT
 * pins; the records of `topics` and `msgs` go to the logical checks.
 * *SOUND says whether the databases the LMDB-level checks read
 * (subscriptions, cursors, acked offsets, producer index) are well
 * formed. 0, SL_EBUSY (a writer moved on: pin again), or an error. */
static int s_check_pages(sld_store_t *s, MDB_txn *mt, s_check_t *c, bool *sound)
{
    static const char *const lmdb_read[] = { "subs", "cursors", "acked", "pseq", "idents",
                                             "registry", "routes", "trace", "dlq" };
    sld_pages_t *pg = NULL;
    size_t count;
    const char *const *names;
    long n = 0;
    int rc;

    *sound = false;
    rc = sld_pages_open(s->file, mdb_txn_id(mt), s_check_page_problem, c, &pg);
    if (rc == SL_ESTORE && !pg)
        return 0;       /* reported: the file's metas are damaged */
    if (rc && rc != SL_ESTORE)
        return rc;
    /* A damaged main database may misplace every database LMDB opens. */
    *sound = rc == 0;
    n = sld_pages_walk(pg, "topics", NULL, 0, 0, s_check_topic_rec, c);
    if (n >= 0 || n == SL_ENOTFOUND) {
        s_check_topics_done(s, c);
        n = sld_pages_walk(pg, "msgs", NULL, 0, 0, s_check_msg_rec, c);
    }
    if (n >= 0 || n == SL_ENOTFOUND) {
        s_check_msgs_done(c);
        n = 0;
    }
    names = sld_pages_names(pg, &count);
    for (size_t i = 0; i < count && n >= 0; i++) {
        if (strcmp(names[i], "topics") == 0 || strcmp(names[i], "msgs") == 0)
            continue;
        n = sld_pages_walk(pg, names[i], NULL, 0, 0, NULL, NULL);
        for (size_t k = 0; n > 0 && k < sizeof lmdb_read / sizeof lmdb_read[0]; k++)
            if (strcmp(names[i], lmdb_read[k]) == 0)
                *sound = false;
    }
    if (n >= 0)
        n = sld_pages_walk_free(pg);
    sld_pages_destroy(&pg);
    return n < 0 ? (int) n : 0;
}

int sld_store_check(sld_store_t *self, sld_store_verify_fn *verify, FILE *out)
{
    int rc, mrc;
    MDB_txn *mt = NULL;
    MDB_stat st;
    s_check_t c;
    bool sound = false;

    assert(self);
    memset(&c, 0, sizeof c);
    c.store = self;
    c.out = out;
    c.verify = verify;
    st.ms_entries = 0;
    for (int attempt = 0;; attempt++) {
        mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &mt);
        if (mrc) {
            rc = sld_store__mdb_fail("begin check", mrc);
            goto fail;
        }
        rc = s_check_pages(self, mt, &c, &sound);
        if (rc != SL_EBUSY || attempt == 10)
            break;
        mdb_txn_abort(mt);
        mt = NULL;
    }
    if (rc)
        goto fail;
    /* What LMDB reads below was found well formed; else it is skipped. */
    if (sound) {
        rc = s_check_subs(self, mt, &c, false);
        if (rc == 0)
            rc = s_check_subs(self, mt, &c, true);
        if (rc == 0)
            rc = s_check_pseq(self, mt, &c);
        if (rc == 0)
            rc = s_check_sums(self, mt, &c, self->db_subs, "subs");
        if (rc == 0)
            rc = s_check_sums(self, mt, &c, self->db_idents, "idents");
        if (rc == 0)
            rc = s_check_sums(self, mt, &c, self->db_registry, "registry");
        if (rc == 0)
            rc = s_check_sums(self, mt, &c, self->db_routes, "routes");
        if (rc == 0)
            rc = s_check_sums(self, mt, &c, self->db_trace, "trace");
        if (rc == 0)
            rc = s_check_sums(self, mt, &c, self->db_dlq, "dlq");
        if (rc)
            goto fail;
        mrc = mdb_stat(mt, self->db_subs, &st);
        if (mrc) {
            rc = sld_store__mdb_fail("check subscriptions", mrc);
            goto fail;
        }
    } else if (out) {
        fprintf(out, "store check: subscriptions, cursors, identities, the registry, the routing "
                "tables and the producer index not checked: their pages are damaged\n");
    }
    if (out && (self->secret || c.sealed))
        fprintf(out, "store check: %zu topics, %" PRIu64 " records (%" PRIu64 " plain, %"
                PRIu64 " sealed; data key %" PRIu32 " current), %zu subscriptions, "
                "%zu problems", c.ntopics, c.records, c.plain, c.sealed, self->nkeys,
                (size_t) st.ms_entries, c.problems);
    else if (out)
        fprintf(out, "store check: %zu topics, %" PRIu64 " records, %zu subscriptions, "
                "%zu problems", c.ntopics, c.records, (size_t) st.ms_entries, c.problems);
    if (out && c.unsummed)
        fprintf(out, "; %" PRIu64 " plain records stored before checksums (format %d) "
                "have none", c.unsummed, S_FORMAT);
    if (out)
        fputc('\n', out);
    rc = c.problems ? SL_ESTORE : 0;
fail:
    if (mt)
        mdb_txn_abort(mt);
    free(c.topics);
    if (c.buf) {
        sodium_memzero(c.buf, c.cbuf);
        free(c.buf);
    }
    return rc;
}
