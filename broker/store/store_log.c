/*  store_log - the topic table (committed metadata in memory, the write
 *  txn's working copies, `topics`) and the topic logs (`msgs`): append,
 *  read (verified, guarded against damaged pages), seek, time index.
 *  The publish and deliver hot path lives here whole. Broker thread;
 *  reads also on the helper thread (sld_store.h, Threads). It does not
 *  trim (store_trim.c) or seal (store_vault.c).  */
#include "sld_store_int.h"
#include "sld_guard.h"

/* ------------------------------------------------------------ topic table */

/* The checksum of topic record R (its first S_TOPIC_LEGACY_LEN bytes)
 * stored under NAME (NLEN bytes): a damaged counter would hide records
 * or let retention delete ones it must keep. */
static void s_topic_sum(uint8_t out[8], const void *name, size_t nlen, const uint8_t *r)
{
    static const uint8_t key[crypto_shorthash_KEYBYTES] = "sluice topic v2";
    uint8_t buf[SLC_TOPIC_MAX + S_TOPIC_LEGACY_LEN];
    memcpy(buf, name, nlen);
    memcpy(buf + nlen, r, S_TOPIC_LEGACY_LEN);
    crypto_shorthash(out, buf, nlen + S_TOPIC_LEGACY_LEN, key);
}

void sld_store__topic_encode(uint8_t r[S_TOPIC_REC_LEN], const sld_topic_info_t *t)
{
    r[0] = S_TOPIC_VERSION;
    slc_put_be32(r + 1, t->id);
    slc_put_be64(r + 5, t->first_offset);
    slc_put_be64(r + 13, t->next_offset);
    slc_put_be64(r + 21, t->messages);
    slc_put_be64(r + 29, t->bytes);
    slc_put_be64(r + 37, t->max_age_ms);
    slc_put_be64(r + 45, t->max_bytes);
    s_topic_sum(r + S_TOPIC_LEGACY_LEN, t->name, strlen(t->name), r);
}

/* Decode topic record K -> V into *T: version 2 with its checksum right,
 * or, when LEGACY (a store of format 2 or 3), version 1. */
int sld_store__topic_decode(const MDB_val *k, const MDB_val *v, sld_topic_info_t *t,
                            bool legacy)
{
    const uint8_t *r = v->mv_data;
    uint8_t sum[8];
    if (k->mv_size == 0 || k->mv_size > SLC_TOPIC_MAX || v->mv_size == 0)
        return SL_ESTORE;
    if (r[0] == S_TOPIC_VERSION && v->mv_size == S_TOPIC_REC_LEN) {
        s_topic_sum(sum, k->mv_data, k->mv_size, r);
        if (memcmp(sum, r + S_TOPIC_LEGACY_LEN, sizeof sum) != 0)
            return SL_ESTORE;
    } else if (!legacy || r[0] != S_TOPIC_VERSION_LEGACY
               || v->mv_size != S_TOPIC_LEGACY_LEN) {
        return SL_ESTORE;
    }
    memset(t, 0, sizeof *t);
    memcpy(t->name, k->mv_data, k->mv_size);
    t->id = slc_get_be32(r + 1);
    t->first_offset = slc_get_be64(r + 5);
    t->next_offset = slc_get_be64(r + 13);
    t->messages = slc_get_be64(r + 21);
    t->bytes = slc_get_be64(r + 29);
    t->max_age_ms = slc_get_be64(r + 37);
    t->max_bytes = slc_get_be64(r + 45);
    /* Offsets are contiguous from first to next. */
    if (t->id == 0 || strlen(t->name) != k->mv_size || t->first_offset > t->next_offset
        || t->messages != t->next_offset - t->first_offset)
        return SL_ESTORE;
    return 0;
}

void sld_store__names_rebuild(sld_store_t *s)
{
    size_t cap = 16;
    while (cap < s->ntopics * 2)
        cap *= 2;
    free(s->name_slots);
    s->name_slots = calloc(cap, sizeof *s->name_slots);
    if (!s->name_slots) {
        fprintf(stderr, "sluiced: store: out of memory\n");
        abort();
    }
    s->name_cap = cap;
    for (size_t i = 0; i < s->ntopics; i++) {
        const char *name = s->topics[i].info.name;
        size_t h = (size_t) sld_store__hash(name, strlen(name)) & (cap - 1);
        while (s->name_slots[h])
            h = (h + 1) & (cap - 1);
        s->name_slots[h] = (uint32_t) i + 1;
    }
}

static size_t s_topic_find_name(const sld_store_t *s, const char *name)
{
    size_t h;
    if (!s->name_cap)
        return S_NONE;
    h = (size_t) sld_store__hash(name, strlen(name)) & (s->name_cap - 1);
    while (s->name_slots[h]) {
        size_t i = s->name_slots[h] - 1;
        if (strcmp(s->topics[i].info.name, name) == 0)
            return i;
        h = (h + 1) & (s->name_cap - 1);
    }
    return S_NONE;
}

static size_t s_topic_find_id(const sld_store_t *s, uint32_t id)
{
    size_t lo = 0, hi = s->ntopics;
    /* Ids are dense unless a future version deletes topics. */
    if (id >= 1 && id - 1 < s->ntopics && s->topics[id - 1].info.id == id)
        return id - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->topics[mid].info.id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->ntopics && s->topics[lo].info.id == id ? lo : S_NONE;
}

/* The topic as TXN sees it: its working copy in a write txn. NULL when unknown. */
const sld_topic_info_t *sld_store__topic_view(const sld_txn_t *txn, uint32_t id)
{
    const sld_store_t *s = txn->store;
    size_t i;
    if (txn->write && id >= s->next_id)
        return id - s->next_id < txn->nfresh ? &txn->fresh[id - s->next_id] : NULL;
    i = s_topic_find_id(s, id);
    if (i == S_NONE)
        return NULL;
    return txn->write && s->topics[i].dirty ? &s->topics[i].work : &s->topics[i].info;
}

/* The write txn's working copy of topic ID, made on first use. */
sld_topic_info_t *sld_store__topic_work(sld_txn_t *txn, uint32_t id)
{
    sld_store_t *s = txn->store;
    sld_topic_info_t *w = NULL;
    size_t i;
    assert(txn->write);
    if (txn->last_work && txn->last_id == id)
        return txn->last_work;
    if (id >= s->next_id) {
        if (id - s->next_id < txn->nfresh)
            w = &txn->fresh[id - s->next_id];
    } else if ((i = s_topic_find_id(s, id)) != S_NONE) {
        sld_store_topic_t *t = &s->topics[i];
        if (!t->dirty) {
            txn->dirty = sld_store__grow(txn->dirty, &txn->cdirty, txn->ndirty + 1,
                                         sizeof *txn->dirty);
            txn->dirty[txn->ndirty++] = i;
            t->work = t->info;
            t->dirty = true;
        }
        w = &t->work;
    }
    if (w) {
        txn->last_id = id;
        txn->last_work = w;
    }
    return w;
}

static int s_topic_cmp(const void *a, const void *b)
{
    uint32_t x = ((const sld_store_topic_t *) a)->info.id;
    uint32_t y = ((const sld_store_topic_t *) b)->info.id;
    return x < y ? -1 : x > y;
}

/* Read DBI's last key (of LEN bytes) into LAST as the MDB_APPEND bound of
 * its appends (see "Appends" in sld_store_int.h). 0 or a refusal. */
static int s_seed_last(sld_store_t *s, MDB_txn *mt, MDB_dbi dbi, const char *what,
                       uint8_t *last, size_t len, bool *has)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    char why[64];
    mrc = mdb_cursor_open(mt, dbi, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (mrc == 0 && k.mv_size == len) {
        memcpy(last, k.mv_data, len);
        *has = true;
    } else if (mrc == 0) {
        snprintf(why, sizeof why, "damaged %s key", what);
        rc = sld_store__refuse(s, why);
    } else if (mrc != MDB_NOTFOUND) {
        snprintf(why, sizeof why, "read %s", what);
        rc = sld_store__mdb_fail(why, mrc);
    }
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

int sld_store__load_topics(sld_store_t *s, MDB_txn *mt)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v;

    mrc = mdb_cursor_open(mt, s->db_topics, &cur);
    if (mrc) {
        rc = sld_store__mdb_fail("open topics", mrc);
        goto fail;
    }
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        s->topics = sld_store__grow(s->topics, &s->ctopics, s->ntopics + 1, sizeof *s->topics);
        memset(&s->topics[s->ntopics], 0, sizeof s->topics[0]);
        if (sld_store__topic_decode(&k, &v, &s->topics[s->ntopics].info, !s->format_sums) != 0) {
            rc = sld_store__refuse(s, "damaged topic record");
            goto fail;
        }
        s->ntopics++;
    }
    if (mrc != MDB_NOTFOUND) {
        rc = sld_store__mdb_fail("read topics", mrc);
        goto fail;
    }
    if (s->ntopics > 1)
        qsort(s->topics, s->ntopics, sizeof *s->topics, s_topic_cmp);
    s->next_id = 1;
    for (size_t i = 0; i < s->ntopics; i++) {
        if (i > 0 && s->topics[i].info.id == s->topics[i - 1].info.id) {
            rc = sld_store__refuse(s, "two topics share an id");
            goto fail;
        }
        s->next_id = s->topics[i].info.id + 1;
    }
    sld_store__names_rebuild(s);

    /* Seed the MDB_APPEND bounds with the true last keys. */
    rc = s_seed_last(s, mt, s->db_msgs, "msgs", s->msgs_last, S_MSG_KEY_LEN,
                     &s->has_msgs_last);
    if (rc == 0)
        rc = s_seed_last(s, mt, s->db_pseq, "pseq", s->pseq_last, S_PSEQ_KEY_LEN,
                         &s->has_pseq_last);
fail:
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* ----------------------------------------------------------------- topics */

int sld_store_topic_ensure(sld_txn_t *txn, const char *name, uint32_t *id)
{
    int rc = 0;
    sld_store_t *s;
    size_t i;
    sld_topic_info_t *t;

    assert(txn && txn->write && id);
    s = txn->store;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    rc = slc_topic_validate(name, true);
    if (rc)
        goto fail;
    i = s_topic_find_name(s, name);
    if (i != S_NONE) {
        *id = s->topics[i].info.id;
        goto fail;
    }
    for (i = 0; i < txn->nfresh; i++) {
        if (strcmp(txn->fresh[i].name, name) == 0) {
            *id = txn->fresh[i].id;
            goto fail;
        }
    }
    if ((uint64_t) s->next_id + txn->nfresh >= UINT32_MAX) {
        rc = SL_EFULL;
        goto fail;
    }
    txn->fresh = sld_store__grow(txn->fresh, &txn->cfresh, txn->nfresh + 1, sizeof *txn->fresh);
    txn->last_work = NULL;      /* fresh may have moved */
    t = &txn->fresh[txn->nfresh];
    memset(t, 0, sizeof *t);
    t->id = s->next_id + (uint32_t) txn->nfresh;
    strcpy(t->name, name);
    txn->nfresh++;
    *id = t->id;
fail:
    return rc;
}

int sld_store_topic_set_retention(sld_txn_t *txn, uint32_t id,
                                  uint64_t max_age_ms, uint64_t max_bytes)
{
    int rc = 0;
    sld_topic_info_t *w;
    assert(txn && txn->write);
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    w = sld_store__topic_work(txn, id);
    if (!w) {
        rc = SL_ENOTFOUND;
        goto fail;
    }
    w->max_age_ms = max_age_ms;
    w->max_bytes = max_bytes;
fail:
    return rc;
}

const sld_topic_info_t *sld_store_topic_by_id(const sld_store_t *self, uint32_t id)
{
    size_t i;
    assert(self);
    i = s_topic_find_id(self, id);
    return i == S_NONE ? NULL : &self->topics[i].info;
}

const sld_topic_info_t *sld_store_topic_by_name(const sld_store_t *self, const char *name)
{
    size_t i;
    assert(self);
    if (!name)
        return NULL;
    i = s_topic_find_name(self, name);
    return i == S_NONE ? NULL : &self->topics[i].info;
}

uint64_t sld_store_topic_next_offset(sld_txn_t *txn, uint32_t id)
{
    const sld_topic_info_t *t;
    assert(txn);
    t = sld_store__topic_view(txn, id);
    return t ? t->next_offset : SLD_OFFSET_NONE;
}

size_t sld_store_topic_count(const sld_store_t *self)
{
    assert(self);
    return self->ntopics;
}

/* --------------------------------------------------------------- messages */

const sld_topic_info_t *sld_store_topic_at(const sld_store_t *self, size_t index)
{
    assert(self);
    return index < self->ntopics ? &self->topics[index].info : NULL;
}
/* N bytes from TXN's arena, valid until TXN ends. NULL when out of memory. */
static uint8_t *s_arena_alloc(sld_txn_t *txn, size_t n)
{
    sld_store_t *s = txn->store;
    sld_store_chunk_t *c = txn->arena;
    uint8_t *p;
    if (!c || c->size - c->used < n) {
        size_t size = n > S_CHUNK_SIZE ? n : S_CHUNK_SIZE;
        if (s->spare && s->spare->size >= size) {
            c = s->spare;
            s->spare = NULL;
        } else {
            if (size > SIZE_MAX - sizeof *c)
                return NULL;
            c = malloc(sizeof *c + size);
            if (!c)
                return NULL;
            c->size = size;
        }
        c->used = 0;
        c->next = txn->arena;
        txn->arena = c;
    }
    p = c->data + c->used;
    c->used += n;
    return p;
}

/* The envelope of record VAL at (ID, OFFSET), verified: a record with a
 * checksum once the checksum matches, a sealed one opened into TXN's
 * arena, one of the older kinds (no checksum, or plain in an encrypted
 * store) only where the store allows it. 0; SL_ESTORE with *WHY (static
 * text) and *KEY_ID (the data key a sealed record names, else 0);
 * SL_ENOMEM. Reads the record: guarded in read transactions. */
static int s_decode_record(sld_txn_t *txn, uint32_t id, uint64_t offset, const MDB_val *val,
                           const void **envelope, size_t *len, const char **why,
                           uint32_t *key_id)
{
    txn->verified = true;
    const sld_store_t *s = txn->store;
    const uint8_t *rec = val->mv_data;
    size_t n = val->mv_size;
    /* An empty envelope has no first byte: the older plain kind. */
    unsigned mark = n > SLD_RECORD_HEADER ? rec[SLD_RECORD_HEADER] : 0x100;
    uint8_t sum[S_SUM_LEN], *out;

    *why = NULL;
    *key_id = 0;
    if (mark == S_SUM_MARK) {
        if (n < SLD_RECORD_HEADER + SLD_RECORD_SUM_OVERHEAD) {
            *why = "is too short to hold its checksum";
            return SL_ESTORE;
        }
        sld_store__sum(sum, id, offset, rec, n - S_SUM_LEN);
        if (memcmp(sum, rec + n - S_SUM_LEN, S_SUM_LEN) != 0) {
            *why = "fails its checksum: damaged, or moved from another topic or offset";
            return SL_ESTORE;
        }
        if (s->secret && !sld_store__plain_allowed(s, id, offset)) {
            *why = "is not sealed but lies where only sealed records were written";
            return SL_ESTORE;
        }
        *envelope = rec + SLD_RECORD_HEADER + 1;
        *len = n - SLD_RECORD_HEADER - SLD_RECORD_SUM_OVERHEAD;
        return 0;
    }
    if (mark == S_SEAL_MARK) {
        if (!s->secret) {
            *why = "looks sealed but the store has no data keys";
            return SL_ESTORE;
        }
        if (n < SLD_RECORD_HEADER + SLD_RECORD_SEAL_OVERHEAD) {
            *why = "is too short to be a sealed record";
            return SL_ESTORE;
        }
        *len = n - SLD_RECORD_HEADER - SLD_RECORD_SEAL_OVERHEAD;
        /* One byte more so that an empty envelope still gets its own address. */
        out = s_arena_alloc(txn, *len + 1);
        if (!out)
            return SL_ENOMEM;
        if (sld_store__record_open(s, txn->seal_id, id, offset, rec, n, out, key_id) != 0) {
            *why = "does not open: damaged, or moved from another topic, offset or time";
            return SL_ESTORE;
        }
        *envelope = out;
        return 0;
    }
    if (mark <= S_MARK_MAX) {
        *why = "starts with a marker byte no record has: damaged";
        return SL_ESTORE;
    }
    if (!sld_store__unsummed_allowed(s, id, offset)) {
        *why = "has no checksum but lies where every record was written with one";
        return SL_ESTORE;
    }
    if (s->secret && !sld_store__plain_allowed(s, id, offset)) {
        *why = "is not sealed but lies where only sealed records were written";
        return SL_ESTORE;
    }
    txn->verified = false;
    *envelope = rec + SLD_RECORD_HEADER;
    *len = n - SLD_RECORD_HEADER;
    return 0;
}

int sld_store_append(sld_txn_t *txn, uint32_t id, uint64_t ingest_us,
                     const void *envelope, size_t len, uint64_t *offset)
{
    int rc = 0, mrc;
    sld_store_t *s;
    sld_topic_info_t *w;
    uint8_t k[S_MSG_KEY_LEN];
    MDB_val key, val;
    unsigned flags = MDB_RESERVE;
    size_t extra;

    assert(txn && txn->write && (envelope || len == 0) && offset);
    assert(len <= SIZE_MAX - SLD_RECORD_HEADER - SLD_RECORD_SEAL_OVERHEAD);
    s = txn->store;
    /* A store that writes is of format 4 or 5, or sealed (3): no record
     * is written without a checksum or a seal. */
    extra = s->secret ? SLD_RECORD_SEAL_OVERHEAD : SLD_RECORD_SUM_OVERHEAD;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    w = sld_store__topic_work(txn, id);
    if (!w) {
        rc = SL_ENOTFOUND;
        goto fail;
    }
    sld_store__msg_key(k, id, w->next_offset);
    /* NOOVERWRITE: a record already at next_offset means damage, not a retry. */
    flags |= sld_store__append_flags(k, s->msgs_last, sizeof k, &s->has_msgs_last,
                                     MDB_NOOVERWRITE);
    key = sld_store__val(k, sizeof k);
    val = sld_store__val(NULL, SLD_RECORD_HEADER + extra + len);
    mrc = mdb_put(txn->mt, s->db_msgs, &key, &val, flags);
    if (mrc) {
        rc = sld_store__txn_fail(txn, "append", mrc);
        goto fail;
    }
    slc_put_be64(val.mv_data, ingest_us);
    if (s->secret) {
        rc = sld_store__seal_record(txn, id, w->next_offset, val.mv_data, envelope, len);
        if (rc)
            goto fail;
    } else {
        uint8_t *rec = val.mv_data;
        rec[SLD_RECORD_HEADER] = S_SUM_MARK;
        if (len)
            memcpy(rec + SLD_RECORD_HEADER + 1, envelope, len);
        sld_store__sum(rec + SLD_RECORD_HEADER + 1 + len, id, w->next_offset, rec,
                       SLD_RECORD_HEADER + 1 + len);
    }
    sld_store__append_done(flags, k, s->msgs_last, sizeof k, &s->has_msgs_last);
    *offset = w->next_offset++;
    w->messages++;
    w->bytes += SLD_RECORD_HEADER + extra + len;
fail:
    return rc;
}

/* Look KEY up in msgs for a read transaction. Deliveries read a topic's
 * offsets one after the other: a read of the offset after the previous one
 * steps the transaction's cursor instead of searching from the root (when
 * STEP allows it; *STEPPED says whether it did). The next key is the
 * wanted one exactly when that offset exists. */
static int s_read_msg(sld_txn_t *txn, uint32_t id, uint64_t offset, MDB_val *key,
                      MDB_val *val, bool step, bool *stepped)
{
    int mrc;
    step = step && txn->rvalid && txn->rid == id && txn->roff + 1 == offset;
    *stepped = step;
    txn->rvalid = false;
    if (!txn->rcur) {
        mrc = mdb_cursor_open(txn->mt, txn->store->db_msgs, &txn->rcur);
        if (mrc)
            return mrc;
    }
    if (step) {
        MDB_val got;
        mrc = mdb_cursor_get(txn->rcur, &got, val, MDB_NEXT);
        if (mrc == 0 && (got.mv_size != key->mv_size
                         || memcmp(got.mv_data, key->mv_data, key->mv_size) != 0))
            mrc = MDB_NOTFOUND;
    }
    else
        mrc = mdb_cursor_get(txn->rcur, key, val, MDB_SET_KEY);
    if (mrc == 0) {
        txn->rvalid = true;
        txn->rid = id;
        txn->roff = offset;
    }
    return mrc;
}

/* Does value V lie where LMDB keeps values: inside its page, or as an
 * overflow run that starts right after its first page's header and is
 * long enough? A damaged node can give any size. Reads the page header
 * (guarded). Only when LMDB's pages are the system's, so that the map's
 * pages are aligned to them. */
static bool s_val_fits(const sld_store_t *s, const MDB_val *v)
{
    uintptr_t a = (uintptr_t) v->mv_data, page;
    const uint8_t *h;
    if (s->psize != s->page)
        return true;
    page = a & ~(uintptr_t) (s->psize - 1);
    if (a - page + v->mv_size <= s->psize)
        return true;
    h = (const uint8_t *) page;
    if (a - page != 16 || !((h[10] | h[11] << 8) & 0x04))     /* P_OVERFLOW */
        return false;
    uint32_t pages = (uint32_t) h[12] | (uint32_t) h[13] << 8 | (uint32_t) h[14] << 16
                   | (uint32_t) h[15] << 24;
    return (uint64_t) pages * s->psize >= (uint64_t) v->mv_size + 16;
}

/* One lookup of a record, run guarded in read transactions. */
typedef struct {
    sld_txn_t *txn;
    uint32_t id;
    uint64_t offset;
    bool decode;                /* verify it and find its envelope */
    bool step;                  /* may step the cursor from the last read */
    bool stepped;               /* it did */
    int mrc;                    /* LMDB's result of the lookup */
    int rc;                     /* 0, SL_ESTORE (why), SL_ENOMEM */
    const char *why;            /* static text */
    MDB_val val;
    uint64_t ingest;
    const void *env;
    size_t len;
    uint32_t key_id;
} s_lookup_t;

static int s_lookup_run(void *arg)
{
    s_lookup_t *l = arg;
    sld_txn_t *txn = l->txn;
    uint8_t k[S_MSG_KEY_LEN];
    MDB_val key;

    sld_store__msg_key(k, l->id, l->offset);
    key = sld_store__val(k, sizeof k);
    if (txn->write)
        l->mrc = mdb_get(txn->mt, txn->store->db_msgs, &key, &l->val);
    else
        l->mrc = s_read_msg(txn, l->id, l->offset, &key, &l->val, l->step, &l->stepped);
    if (l->mrc)
        return 0;
    if (l->val.mv_size < SLD_RECORD_HEADER) {
        l->rc = SL_ESTORE;
        l->why = "is shorter than its header";
        return 0;
    }
    if (!txn->write && !s_val_fits(txn->store, &l->val)) {
        l->rc = SL_ESTORE;
        l->why = "reaches past its page: a damaged page";
        return 0;
    }
    l->ingest = slc_get_be64(l->val.mv_data);
    if (l->decode)
        l->rc = s_decode_record(txn, l->id, l->offset, &l->val, &l->env, &l->len, &l->why,
                                &l->key_id);
    return 0;
}

/* TXN's LMDB transaction failed or faulted: LMDB refuses it from now on,
 * or it is in no state to go on. Keep it until TXN ends, so what it
 * returned stays valid, and go on in a fresh one. 0, or SL_EBUSY (TXN
 * keeps S_RETIRE_MAX already, or no transaction could begin). */
int sld_store__txn_renew(sld_txn_t *txn)
{
    MDB_txn *mt = NULL;
    int mrc;
    if (txn->rcur)
        mdb_cursor_close(txn->rcur);
    txn->rcur = NULL;
    txn->rvalid = false;
    if (txn->nretired == S_RETIRE_MAX)
        return SL_EBUSY;
    mrc = mdb_txn_begin(txn->store->env, NULL, MDB_RDONLY, &mt);
    if (mrc) {
        sld_store__mdb_fail("begin after damage", mrc);
        return SL_EBUSY;
    }
    txn->retired[txn->nretired++] = txn->mt;
    txn->mt = mt;
    return 0;
}

/* Find record L->offset of topic L->id in TXN and, with L->decode,
 * verify it. 0; SL_ENOTFOUND (below the topic's first offset or at or
 * past its next); SL_ESTORE (TXN->why says why; logged once per txn);
 * SL_EBUSY; SL_ENOMEM. A write transaction is not guarded: the pages it
 * reads were checked before LMDB touched them (see "Damage" in sld_store_int.h),
 * and an LMDB failure poisons it as any failed write does. */
static int s_lookup(sld_txn_t *txn, s_lookup_t *l)
{
    int rc = 0;
    const char *fault = NULL, *detail = NULL;

    l->txn = txn;
    for (int attempt = 0;; attempt++) {
        bool faulted = false;
        l->mrc = 0;
        l->rc = 0;
        l->why = NULL;
        l->key_id = 0;
        l->stepped = false;
        l->step = attempt == 0;
        if (txn->write)
            s_lookup_run(l);
        else
            faulted = sld_guard_call(s_lookup_run, l, &fault) != 0;
        if (!faulted && l->mrc == 0) {
            rc = l->rc;
            break;
        }
        if (!faulted && l->mrc == MDB_NOTFOUND) {
            const sld_topic_info_t *t = sld_store__topic_view(txn, l->id);
            rc = SL_ENOTFOUND;
            if (t && l->offset >= t->first_offset && l->offset < t->next_offset) {
                rc = SL_ESTORE;
                l->why = "is missing: the topic's offsets reach past it but the B-tree "
                         "does not lead to it";
            }
            break;
        }
        /* LMDB failed (a damaged page: MDB_PAGE_NOTFOUND, MDB_CORRUPTED,
         * ...) or faulted: this LMDB transaction is done for. */
        l->why = faulted ? "made LMDB fault: a damaged page"
                         : "could not be read: LMDB failed on a damaged page";
        detail = faulted ? fault : mdb_strerror(l->mrc);
        if (txn->write) {
            sld_store__txn_fail(txn, "read record", l->mrc);
            rc = SL_ESTORE;
            break;
        }
        rc = sld_store__txn_renew(txn);
        if (rc)
            break;
        /* A cursor step goes through the neighbouring pages: from the
         * root, the record may still be found. */
        if (attempt == 0 && l->stepped)
            continue;
        rc = SL_ESTORE;
        break;
    }
    if (rc == SL_ESTORE) {
        txn->why = l->why;
        if (!txn->logged) {
            char key[32] = "";
            if (l->key_id)
                snprintf(key, sizeof key, " (data key %" PRIu32 ")", l->key_id);
            fprintf(stderr, "sluiced: store: record %" PRIu32 "/%" PRIu64 "%s %s%s%s%s\n",
                    l->id, l->offset, key, l->why, detail ? " (" : "", detail ? detail : "",
                    detail ? ")" : "");
            txn->logged = true;
        }
    } else if (rc == SL_EBUSY && !txn->logged) {
        fprintf(stderr, "sluiced: store: a read transaction met too many damaged pages; "
                "reads go on in the next\n");
        txn->logged = true;
    }
    return rc;
}

/* The raw record at (ID, OFFSET): *VAL, and its time *INGEST. */
int sld_store__record(sld_txn_t *txn, uint32_t id, uint64_t offset, MDB_val *val,
                      uint64_t *ingest)
{
    s_lookup_t l;
    int rc;
    memset(&l, 0, sizeof l);
    l.id = id;
    l.offset = offset;
    rc = s_lookup(txn, &l);
    if (rc == 0) {
        *val = l.val;
        *ingest = l.ingest;
    }
    return rc;
}

int sld_store_read(sld_txn_t *txn, uint32_t id, uint64_t offset,
                   const void **envelope, size_t *len, uint64_t *ingest_us)
{
    s_lookup_t l;
    int rc;
    assert(txn && envelope && len);
    memset(&l, 0, sizeof l);
    l.id = id;
    l.offset = offset;
    l.decode = true;
    rc = s_lookup(txn, &l);
    if (rc == 0) {
        *envelope = l.env;
        *len = l.len;
        if (ingest_us)
            *ingest_us = l.ingest;
    }
    return rc;
}

/* One range seek, run guarded in read transactions. */
typedef struct {
    MDB_cursor *cur;
    uint8_t k[S_MSG_KEY_LEN];
    int mrc;
    uint32_t id;
    uint64_t found;
} s_seek_t;

static int s_seek_run(void *arg)
{
    s_seek_t *q = arg;
    MDB_val key = sld_store__val(q->k, sizeof q->k), val;
    q->mrc = mdb_cursor_get(q->cur, &key, &val, MDB_SET_RANGE);
    if (q->mrc == 0 && key.mv_size == S_MSG_KEY_LEN && slc_get_be32(key.mv_data) == q->id)
        q->found = slc_get_be64((const uint8_t *) key.mv_data + 4);
    return 0;
}

uint64_t sld_store_seek(sld_txn_t *txn, uint32_t id, uint64_t offset)
{
    s_seek_t q;
    bool faulted = false;

    assert(txn);
    memset(&q, 0, sizeof q);
    q.id = id;
    q.found = SLD_OFFSET_NONE;
    q.mrc = mdb_cursor_open(txn->mt, txn->store->db_msgs, &q.cur);
    if (q.mrc == 0) {
        sld_store__msg_key(q.k, id, offset);
        if (txn->write)
            s_seek_run(&q);
        else
            faulted = sld_guard_call(s_seek_run, &q, NULL) != 0;
    }
    if (q.cur)
        mdb_cursor_close(q.cur);
    if (faulted || (q.mrc && q.mrc != MDB_NOTFOUND)) {
        q.found = SLD_OFFSET_NONE;
        if (txn->write)
            sld_store__txn_fail(txn, "seek", q.mrc);
        else
            (void) sld_store__txn_renew(txn);
        fprintf(stderr, "sluiced: store: seek in topic %" PRIu32 ": %s\n", id,
                faulted ? "LMDB faulted on a damaged page" : mdb_strerror(q.mrc));
    }
    return q.found;
}

uint64_t sld_store_offset_at_time(sld_txn_t *txn, uint32_t id, uint64_t time_us)
{
    const sld_topic_info_t *t;
    uint64_t lo, hi, at;
    MDB_val val;

    assert(txn);
    t = sld_store__topic_view(txn, id);
    if (!t)
        return SLD_OFFSET_NONE;
    hi = t->next_offset;
    lo = sld_store_seek(txn, id, t->first_offset);
    if (lo == SLD_OFFSET_NONE || lo > hi)
        return hi;
    /* Lower bound: the first record whose time is not before TIME_US. A
     * record that cannot be read counts as "not before", which keeps the
     * answer inside [first, next). */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (sld_store__record(txn, id, mid, &val, &at) == 0 && at < time_us)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
