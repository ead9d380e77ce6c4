/*  store_idem - idempotence: the producer cache and runs (`producers`,
 *  `pseq`), the msg-id dedup window (`dedup`, `dedup_exp`), and trimming
 *  both. Broker thread only. It does not decide what a duplicate gets
 *  answered; the server does.  */
#include "sld_store_int.h"

/* --------------------------------------------------------- producer cache */

static size_t s_prod_slot(const sld_store_t *s, const uint8_t *pid)
{
    return (size_t) sld_store__hash(pid, SLC_PRODUCER_ID_LEN) & (s->prod_cap - 1);
}

static size_t s_prod_find(const sld_store_t *s, const uint8_t *pid)
{
    size_t h;
    if (!s->prod_cap)
        return S_NONE;
    h = s_prod_slot(s, pid);
    while (s->prod_slots[h]) {
        size_t i = s->prod_slots[h] - 1;
        if (memcmp(s->producers[i].id, pid, SLC_PRODUCER_ID_LEN) == 0)
            return i;
        h = (h + 1) & (s->prod_cap - 1);
    }
    return S_NONE;
}

static size_t s_prod_insert(sld_store_t *s, const uint8_t *pid, uint64_t seq)
{
    size_t i = s->nproducers, h;
    if ((s->nproducers + 1) * 2 > s->prod_cap) {
        size_t cap = s->prod_cap ? s->prod_cap * 2 : 64;
        uint32_t *slots = calloc(cap, sizeof *slots);
        if (!slots) {
            fprintf(stderr, "sluiced: store: out of memory\n");
            abort();
        }
        free(s->prod_slots);
        s->prod_slots = slots;
        s->prod_cap = cap;
        for (size_t j = 0; j < s->nproducers; j++) {
            h = s_prod_slot(s, s->producers[j].id);
            while (s->prod_slots[h])
                h = (h + 1) & (cap - 1);
            s->prod_slots[h] = (uint32_t) j + 1;
        }
    }
    s->producers = sld_store__grow(s->producers, &s->cproducers, i + 1, sizeof *s->producers);
    memset(&s->producers[i], 0, sizeof s->producers[i]);
    memcpy(s->producers[i].id, pid, SLC_PRODUCER_ID_LEN);
    s->producers[i].seq = seq;
    h = s_prod_slot(s, pid);
    while (s->prod_slots[h])
        h = (h + 1) & (s->prod_cap - 1);
    s->prod_slots[h] = (uint32_t) i + 1;
    s->nproducers++;
    return i;
}

/* Highest stored seq of PID read from `producers` in MT (0 when none). */
static int s_prod_load(sld_store_t *s, MDB_txn *mt, const uint8_t *pid, uint64_t *seq)
{
    int rc = 0;
    MDB_val k = sld_store__val(pid, SLC_PRODUCER_ID_LEN), v;
    int mrc = mdb_get(mt, s->db_producers, &k, &v);
    *seq = 0;
    if (mrc == MDB_NOTFOUND)
        goto fail;
    if (mrc) {
        rc = sld_store__mdb_fail("read producer", mrc);
        goto fail;
    }
    if (v.mv_size != 8) {
        fprintf(stderr, "sluiced: store: damaged producer record\n");
        rc = SL_ESTORE;
        goto fail;
    }
    *seq = slc_get_be64(v.mv_data);
fail:
    return rc;
}

/* Highest seq of PID as TXN sees it; caches it when TXN is the write txn. */
static int s_prod_highest(sld_txn_t *txn, const uint8_t *pid, uint64_t *highest, size_t *index)
{
    int rc = 0;
    sld_store_t *s = txn->store;
    size_t i = s_prod_find(s, pid);
    uint64_t seq;
    *index = i;
    if (i != S_NONE) {
        const sld_store_producer_t *p = &s->producers[i];
        *highest = txn->write && p->dirty ? p->pending : p->seq;
        goto fail;
    }
    rc = s_prod_load(s, txn->mt, pid, &seq);
    if (rc) {
        if (txn->write && txn->err == 0)
            txn->err = rc;
        goto fail;
    }
    /* Only the write txn sees the latest commit (see the essay). */
    if (txn->write)
        *index = s_prod_insert(s, pid, seq);
    *highest = seq;
fail:
    return rc;
}

/* -------------------------------------------------------------- producers */

/* Find SEQ of producer PID among the runs of pseq visible to TXN: 1 and
 * *TOPIC_ID / *OFFSET, 0 when no run holds it, or an error. */
static int s_run_find(sld_txn_t *txn, const uint8_t *pid, uint64_t seq,
                      uint32_t *topic_id, uint64_t *offset)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    uint8_t k[S_PSEQ_KEY_LEN];
    MDB_val key, val;

    mrc = mdb_cursor_open(txn->mt, txn->store->db_pseq, &cur);
    if (mrc)
        goto done;
    /* The run holding SEQ is the last one that starts at or before it. */
    sld_store__pseq_key(k, pid, seq);
    key = sld_store__val(k, sizeof k);
    mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (mrc == 0 && memcmp(key.mv_data, k, sizeof k) != 0)
        mrc = mdb_cursor_get(cur, &key, &val, MDB_PREV);
    else if (mrc == MDB_NOTFOUND)
        mrc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
    if (mrc == MDB_NOTFOUND) {
        mrc = 0;
        goto done;
    }
    if (mrc)
        goto done;
    if (key.mv_size != S_PSEQ_KEY_LEN || val.mv_size != S_PSEQ_VAL_LEN) {
        fprintf(stderr, "sluiced: store: damaged producer index entry\n");
        rc = SL_ESTORE;
        goto done;
    }
    uint64_t first = slc_get_be64((const uint8_t *) key.mv_data + SLC_PRODUCER_ID_LEN);
    uint64_t n = slc_get_be64((const uint8_t *) val.mv_data + 12);
    if (memcmp(key.mv_data, pid, SLC_PRODUCER_ID_LEN) == 0 && first <= seq
        && seq - first < n) {
        *topic_id = slc_get_be32(val.mv_data);
        *offset = slc_get_be64((const uint8_t *) val.mv_data + 4) + (seq - first);
        rc = 1;
    }
done:
    if (mrc)
        rc = sld_store__txn_fail(txn, "producer check", mrc);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

int sld_store_producer_check(sld_txn_t *txn, const uint8_t producer_id[16],
                             uint64_t seq, uint32_t *topic_id, uint64_t *offset)
{
    int rc;
    sld_store_t *s;
    uint64_t highest;
    size_t index;

    assert(txn && producer_id && topic_id && offset);
    s = txn->store;
    rc = txn->err;
    if (rc == 0)
        rc = s_prod_highest(txn, producer_id, &highest, &index);
    if (rc || seq > highest)
        goto fail;
    /* This write txn's open run first: it is not in pseq yet. */
    const sld_store_producer_t *p = index != S_NONE ? &s->producers[index] : NULL;
    if (txn->write && p && p->dirty && p->run_n && p->run_seq <= seq
        && seq - p->run_seq < p->run_n) {
        *topic_id = p->run_topic;
        *offset = p->run_off + (seq - p->run_seq);
        rc = 1;
        goto fail;
    }
    rc = s_run_find(txn, producer_id, seq, topic_id, offset);
    if (rc == 0 && highest >= s->producer_window && seq <= highest - s->producer_window) {
        /* Forgotten by trim: it was stored, where is no longer known. */
        *topic_id = 0;
        *offset = SLD_OFFSET_NONE;
        rc = 1;
    }
    /* else: a gap inside the window (that seq was refused before): new. */
fail:
    return rc;
}

/* Write P's open run to pseq (write txn) and close it. 0 or the failure. */
int sld_store__run_put(sld_txn_t *txn, sld_store_producer_t *p)
{
    sld_store_t *s = txn->store;
    uint8_t k[S_PSEQ_KEY_LEN], v[S_PSEQ_VAL_LEN];
    if (p->run_n == 0)
        return 0;
    sld_store__pseq_key(k, p->id, p->run_seq);
    slc_put_be32(v, p->run_topic);
    slc_put_be64(v + 4, p->run_off);
    slc_put_be64(v + 12, p->run_n);
    p->run_n = 0;
    MDB_val key = sld_store__val(k, sizeof k), val = sld_store__val(v, sizeof v);
    /* One producer's runs ascend: mostly an append. */
    unsigned flags = sld_store__append_flags(k, s->pseq_last, sizeof k, &s->has_pseq_last, 0);
    int mrc = mdb_put(txn->mt, s->db_pseq, &key, &val, flags);
    if (mrc)
        return sld_store__txn_fail(txn, "record producer seq", mrc);
    sld_store__append_done(flags, k, s->pseq_last, sizeof k, &s->has_pseq_last);
    return 0;
}

int sld_store_producer_record(sld_txn_t *txn, const uint8_t producer_id[16],
                              uint64_t seq, uint32_t topic_id, uint64_t offset)
{
    int rc = 0;
    sld_store_t *s;
    uint64_t highest;
    size_t index;
    sld_store_producer_t *p;

    assert(txn && txn->write && producer_id);
    s = txn->store;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    rc = s_prod_highest(txn, producer_id, &highest, &index);
    if (rc)
        goto fail;
    assert(index != S_NONE);
    p = &s->producers[index];
    if (!p->dirty) {
        txn->pdirty = sld_store__grow(txn->pdirty, &txn->cpdirty, txn->npdirty + 1,
                                      sizeof *txn->pdirty);
        txn->pdirty[txn->npdirty++] = index;
        p->dirty = true;
        p->pending = p->seq;
        p->run_n = 0;
    }
    /* The next seq at the next offset of the same topic extends the run;
     * anything else closes it and opens another. */
    if (p->run_n && seq == p->run_seq + p->run_n && topic_id == p->run_topic
        && offset == p->run_off + p->run_n)
        p->run_n++;
    else {
        rc = sld_store__run_put(txn, p);
        if (rc)
            goto fail;
        p->run_seq = seq;
        p->run_off = offset;
        p->run_topic = topic_id;
        p->run_n = 1;
    }
    if (seq > p->pending)
        p->pending = seq;
fail:
    return rc;
}

uint64_t sld_store_producer_last_seq(sld_store_t *self, const uint8_t producer_id[16])
{
    uint64_t seq = 0;
    size_t i;
    MDB_txn *mt = NULL;
    int mrc;

    assert(self && producer_id);
    i = s_prod_find(self, producer_id);
    if (i != S_NONE) {
        seq = self->producers[i].seq;
        goto fail;
    }
    mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &mt);
    if (mrc) {
        sld_store__mdb_fail("begin transaction", mrc);
        goto fail;
    }
    s_prod_load(self, mt, producer_id, &seq);
fail:
    if (mt)
        mdb_txn_abort(mt);
    return seq;
}

/* ----------------------------------------------------------- msg-id dedup */

/* Key ID + MSG_ID into K (*KLEN bytes). An encrypted store keeps a keyed
 * hash of the msg id instead: it is a header value. */
static int s_dedup_key(const sld_store_t *s, uint8_t *k, uint32_t id, const void *msg_id,
                       size_t len, size_t *klen)
{
    if (!msg_id || len == 0 || len > SLD_MSG_ID_MAX)
        return SL_EINVAL;
    slc_put_be32(k, id);
    if (s->secret) {
        *klen = 4 + SLD_SEAL_HASH_LEN;
        return sld_seal_hash(k + 4, msg_id, len, sld_store__msgid_key(s));
    }
    memcpy(k + 4, msg_id, len);
    *klen = 4 + len;
    return 0;
}

int sld_store_dedup_check(sld_txn_t *txn, uint32_t id, const void *msg_id,
                          size_t len, uint64_t now_us, uint64_t window_us,
                          uint64_t *offset)
{
    int rc, mrc;
    uint8_t k[4 + SLD_MSG_ID_MAX];
    size_t klen;
    MDB_val key, val;
    uint64_t t;

    assert(txn && offset);
    rc = s_dedup_key(txn->store, k, id, msg_id, len, &klen);
    if (rc)
        goto fail;
    key = sld_store__val(k, klen);
    mrc = mdb_get(txn->mt, txn->store->db_dedup, &key, &val);
    if (mrc == MDB_NOTFOUND)
        goto fail;
    if (mrc) {
        rc = sld_store__txn_fail(txn, "dedup check", mrc);
        goto fail;
    }
    if (val.mv_size != S_DEDUP_VAL_LEN) {
        fprintf(stderr, "sluiced: store: damaged dedup entry\n");
        rc = SL_ESTORE;
        goto fail;
    }
    t = slc_get_be64(val.mv_data);
    /* Expired entries linger until trim; they no longer count. A time in
     * the future (clock stepped back) counts as within the window. */
    if (now_us < t || now_us - t < window_us) {
        *offset = slc_get_be64((const uint8_t *) val.mv_data + 8);
        rc = 1;
    }
fail:
    return rc;
}

int sld_store_dedup_record(sld_txn_t *txn, uint32_t id, const void *msg_id,
                           size_t len, uint64_t now_us, uint64_t offset)
{
    int rc, mrc;
    sld_store_t *s;
    uint8_t k[S_DEDUP_KEY_MAX], v[S_DEDUP_VAL_LEN];
    size_t klen;
    MDB_val key, val;

    assert(txn && txn->write);
    s = txn->store;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    /* dedup_exp key: time first, then the dedup key. An older dedup_exp
     * entry for the same msg id stays until trim, which skips it because
     * its time no longer matches the dedup entry. */
    slc_put_be64(k, now_us);
    rc = s_dedup_key(s, k + 8, id, msg_id, len, &klen);
    if (rc)
        goto fail;
    slc_put_be64(v, now_us);
    slc_put_be64(v + 8, offset);
    key = sld_store__val(k + 8, klen);
    val = sld_store__val(v, sizeof v);
    mrc = mdb_put(txn->mt, s->db_dedup, &key, &val, 0);
    if (mrc == 0) {
        key = sld_store__val(k, 8 + klen);
        val = sld_store__val(NULL, 0);
        mrc = mdb_put(txn->mt, s->db_dedup_exp, &key, &val, 0);
    }
    if (mrc)
        rc = sld_store__txn_fail(txn, "dedup record", mrc);
fail:
    return rc;
}

/* ------------------------------------------------------------------- trim */

int sld_store__trim_dedup(sld_txn_t *txn, uint64_t now_us, uint64_t window_us, size_t budget)
{
    int rc = 0, mrc;
    sld_store_t *s = txn->store;
    MDB_cursor *cur = NULL;
    MDB_val key, val, dkey, dval;
    uint64_t t;

    mrc = mdb_cursor_open(txn->mt, s->db_dedup_exp, &cur);
    while (mrc == 0 && budget-- > 0) {
        mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
        if (mrc)
            break;
        if (key.mv_size < 13 || key.mv_size > 12 + SLD_MSG_ID_MAX) {
            /* Never repair silently: stop here and let check() report it. */
            fprintf(stderr, "sluiced: store: damaged dedup_exp key; run --check\n");
            break;
        }
        t = slc_get_be64(key.mv_data);
        if (now_us < t || now_us - t < window_us)
            break;
        /* Remove the dedup entry only if it is this one, not a newer record
         * of the same msg id. Copy the key: the delete may move the page. */
        uint8_t dk[4 + SLD_MSG_ID_MAX];
        size_t dlen = key.mv_size - 8;
        memcpy(dk, (const uint8_t *) key.mv_data + 8, dlen);
        mrc = mdb_cursor_del(cur, 0);
        if (mrc)
            break;
        dkey = sld_store__val(dk, dlen);
        mrc = mdb_get(txn->mt, s->db_dedup, &dkey, &dval);
        if (mrc == 0 && dval.mv_size == S_DEDUP_VAL_LEN && slc_get_be64(dval.mv_data) == t)
            mrc = mdb_del(txn->mt, s->db_dedup, &dkey, NULL);
        else if (mrc == MDB_NOTFOUND)
            mrc = 0;
    }
    if (mrc && mrc != MDB_NOTFOUND)
        rc = sld_store__txn_fail(txn, "trim dedup", mrc);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* Next producer id after PID in byte order; false when PID is the last. */
static bool s_pid_next(uint8_t *pid)
{
    for (int i = SLC_PRODUCER_ID_LEN - 1; i >= 0; i--)
        if (++pid[i] != 0)
            return true;
    return false;
}

int sld_store__trim_pseq(sld_txn_t *txn, size_t budget)
{
    int rc = 0, mrc;
    sld_store_t *s = txn->store;
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    uint8_t at[S_PSEQ_KEY_LEN];
    uint64_t highest = 0, seq;
    size_t index;
    bool have_highest = false;

    memset(at, 0, sizeof at);
    if (s->has_pseq_resume)
        memcpy(at, s->pseq_resume, sizeof at);
    s->has_pseq_resume = false;
    mrc = mdb_cursor_open(txn->mt, s->db_pseq, &cur);
    while (mrc == 0 && budget-- > 0) {
        key = sld_store__val(at, sizeof at);
        mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
        if (mrc)
            break;
        if (key.mv_size != S_PSEQ_KEY_LEN) {
            fprintf(stderr, "sluiced: store: damaged pseq key; run --check\n");
            mrc = MDB_NOTFOUND;
            break;
        }
        if (!have_highest || memcmp(key.mv_data, at, SLC_PRODUCER_ID_LEN) != 0) {
            rc = s_prod_highest(txn, key.mv_data, &highest, &index);
            if (rc)
                goto fail;
            have_highest = true;
        }
        memcpy(at, key.mv_data, sizeof at);
        /* A run goes when its last seq has left the window. */
        seq = slc_get_be64(at + SLC_PRODUCER_ID_LEN);
        if (val.mv_size == S_PSEQ_VAL_LEN)
            seq += slc_get_be64((const uint8_t *) val.mv_data + 12) - 1;
        if (highest >= s->producer_window && seq <= highest - s->producer_window) {
            mrc = mdb_cursor_del(cur, 0);
            continue;
        }
        /* The rest of this producer is inside its window: next producer. */
        memset(at + SLC_PRODUCER_ID_LEN, 0, 8);
        have_highest = false;
        if (!s_pid_next(at)) {
            mrc = MDB_NOTFOUND;
            break;
        }
    }
    if (mrc == 0) {
        memcpy(s->pseq_resume, at, sizeof at);
        s->has_pseq_resume = true;
    }
    if (mrc && mrc != MDB_NOTFOUND)
        rc = sld_store__txn_fail(txn, "trim producer index", mrc);
fail:
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}
