/*  store_txn - transactions: begin, the commit in its steps (flush the
 *  working metadata, LMDB's commit, apply to the committed in-memory
 *  state), abort, and what a transaction owns (the arena of opened
 *  envelopes, retired LMDB read txns). Broker thread; a read transaction
 *  also on the helper thread (sld_store.h, Threads). It does not read or
 *  write records itself.  */
#include "sld_store_int.h"

/* Same, and remember it: LMDB will not let the transaction go on anyway.
 * A write transaction fails its commit; a read transaction goes on in a
 * fresh LMDB transaction (sld_store__txn_renew). */
int sld_store__txn_fail(sld_txn_t *txn, const char *what, int mrc)
{
    int rc = sld_store__mdb_fail(what, mrc);
    if (txn->write && txn->err == 0)
        txn->err = rc;
    else if (!txn->write)
        (void) sld_store__txn_renew(txn);
    return rc;
}

/* ----------------------------------------------------------- transactions */

int sld_store_begin(sld_store_t *self, bool write, sld_txn_t **out)
{
    int rc = 0, mrc;
    MDB_txn *mt = NULL;
    sld_txn_t *txn;

    assert(self && out);
    assert(!write || !self->writing);
    *out = NULL;
    if (write && self->read_only) {
        rc = SL_EINVAL;
        goto fail;
    }
    mrc = mdb_txn_begin(self->env, NULL, write ? 0 : MDB_RDONLY, &mt);
    if (mrc) {
        rc = sld_store__mdb_fail("begin transaction", mrc);
        goto fail;
    }
    if (write) {
        txn = &self->wtxn;
        self->writing = true;
    } else {
        txn = calloc(1, sizeof *txn);
        if (!txn) {
            rc = SL_ENOMEM;
            goto fail;
        }
        self->readers++;
    }
    txn->store = self;
    txn->mt = mt;
    txn->write = write;
    txn->err = 0;
    txn->flushed = txn->synced = false;
    txn->ndirty = txn->nfresh = txn->npdirty = 0;
    txn->last_work = NULL;
    txn->seal_id = self->nkeys;
    txn->logged = false;
    txn->why = "";
    txn->nretired = 0;
    mt = NULL;
    *out = txn;
fail:
    if (mt)
        mdb_txn_abort(mt);
    return rc;
}

/* Wipe TXN's opened envelopes and give the chunks back: one is kept for
 * the next transaction, the rest freed. */
static void s_arena_reset(sld_txn_t *txn)
{
    sld_store_t *s = txn->store;
    sld_store_chunk_t *c = txn->arena, *next;
    for (; c; c = next) {
        next = c->next;
        sodium_memzero(c->data, c->used);
        if (!s->spare && c->size == S_CHUNK_SIZE) {
            c->next = NULL;
            s->spare = c;
        } else {
            free(c);
        }
    }
    txn->arena = NULL;
}

/* End TXN: abort what is still open, drop pending changes, release it. */
static void s_txn_release(sld_txn_t *txn)
{
    sld_store_t *s = txn->store;
    if (txn->rcur)
        mdb_cursor_close(txn->rcur);
    txn->rcur = NULL;
    if (txn->mt)
        mdb_txn_abort(txn->mt);
    txn->mt = NULL;
    for (size_t i = 0; i < txn->nretired; i++)
        mdb_txn_abort(txn->retired[i]);
    txn->nretired = 0;
    if (txn->arena)
        s_arena_reset(txn);
    /* Data keys a rotate made in a transaction that did not commit. */
    for (uint32_t id = s->nkeys + 1; id <= txn->seal_id; id++)
        sodium_memzero(sld_store__data_key(s, id), SLD_SEAL_KEY_LEN);
    txn->seal_id = s->nkeys;
    if (!txn->write) {
        s->readers--;
        free(txn);
        return;
    }
    for (size_t i = 0; i < txn->ndirty; i++)
        s->topics[txn->dirty[i]].dirty = false;
    for (size_t i = 0; i < txn->npdirty; i++) {
        s->producers[txn->pdirty[i]].dirty = false;
        s->producers[txn->pdirty[i]].run_n = 0;
    }
    txn->ndirty = txn->nfresh = txn->npdirty = 0;
    txn->last_work = NULL;
    s->writing = false;
}

/* Write each changed topic and producer once, just before mdb_txn_commit. */
static int s_txn_flush(sld_txn_t *txn)
{
    int rc = 0, mrc = 0;
    sld_store_t *s = txn->store;
    uint8_t rec[S_TOPIC_REC_LEN], seq[8];
    MDB_val k, v;

    for (size_t i = 0; i < txn->ndirty + txn->nfresh && mrc == 0; i++) {
        const sld_topic_info_t *t = i < txn->ndirty ? &s->topics[txn->dirty[i]].work
                                                    : &txn->fresh[i - txn->ndirty];
        sld_store__topic_encode(rec, t);
        k = sld_store__val(t->name, strlen(t->name));
        v = sld_store__val(rec, sizeof rec);
        mrc = mdb_put(txn->mt, s->db_topics, &k, &v, 0);
    }
    /* Before anything else: after a failed put LMDB refuses every call
     * (MDB_BAD_TXN), which would hide a full map behind a storage error. */
    if (mrc)
        return sld_store__txn_fail(txn, "write topics", mrc);
    for (size_t i = 0; i < txn->npdirty && rc == 0; i++)
        rc = sld_store__run_put(txn, &s->producers[txn->pdirty[i]]);
    if (rc)
        return rc;
    for (size_t i = 0; i < txn->npdirty && mrc == 0; i++) {
        const sld_store_producer_t *p = &s->producers[txn->pdirty[i]];
        if (p->pending <= p->seq)
            continue;
        slc_put_be64(seq, p->pending);
        k = sld_store__val(p->id, SLC_PRODUCER_ID_LEN);
        v = sld_store__val(seq, sizeof seq);
        mrc = mdb_put(txn->mt, s->db_producers, &k, &v, 0);
    }
    if (mrc)
        rc = sld_store__txn_fail(txn, "write metadata", mrc);
    return rc;
}

/* The commit is durable: make the working copies the committed state. */
static void s_txn_apply(sld_txn_t *txn)
{
    sld_store_t *s = txn->store;
    for (size_t i = 0; i < txn->ndirty; i++) {
        sld_store_topic_t *t = &s->topics[txn->dirty[i]];
        t->info = t->work;
        t->dirty = false;
    }
    for (size_t i = 0; i < txn->npdirty; i++) {
        sld_store_producer_t *p = &s->producers[txn->pdirty[i]];
        if (p->pending > p->seq)
            p->seq = p->pending;
        p->dirty = false;
    }
    if (txn->nfresh) {
        /* Fresh ids are above every committed id: the array stays sorted. */
        s->topics = sld_store__grow(s->topics, &s->ctopics, s->ntopics + txn->nfresh,
                                    sizeof *s->topics);
        for (size_t i = 0; i < txn->nfresh; i++) {
            memset(&s->topics[s->ntopics], 0, sizeof s->topics[0]);
            s->topics[s->ntopics++].info = txn->fresh[i];
        }
        s->next_id += (uint32_t) txn->nfresh;
        sld_store__names_rebuild(s);
    }
    s->nkeys = txn->seal_id;    /* a rotate's key is now the current one */
    txn->ndirty = txn->nfresh = txn->npdirty = 0;
}

/* ----------------------------------------------------------------- commit */

int sld_txn_flush(sld_txn_t *txn)
{
    int rc = 0;

    assert(txn);
    if (!txn->write)
        goto fail;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    rc = s_txn_flush(txn);
    if (rc == 0)
        txn->flushed = true;
fail:
    return rc;
}

int sld_txn_sync_lmdb(sld_txn_t *txn)
{
    int rc = 0, mrc;

    assert(txn);
    if (!txn->write)
        goto fail;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    /* Programmer error: the working metadata never reached LMDB. */
    assert(txn->flushed && txn->mt);
    mrc = mdb_txn_commit(txn->mt);
    txn->mt = NULL;     /* freed by LMDB whatever the result */
    if (mrc) {
        rc = sld_store__mdb_fail("commit", mrc);
        txn->err = rc;
        goto fail;
    }
    txn->synced = true;
fail:
    return rc;
}

int sld_txn_sync_apply(sld_txn_t **txn_p)
{
    int rc = 0;
    sld_txn_t *txn;

    assert(txn_p && *txn_p);
    txn = *txn_p;
    *txn_p = NULL;
    if (txn->write && txn->synced)
        s_txn_apply(txn);
    else if (txn->write)
        rc = txn->err ? txn->err : SL_EINTERNAL;
    s_txn_release(txn);
    return rc;
}

int sld_txn_sync(sld_txn_t **txn_p)
{
    assert(txn_p && *txn_p);
    (void) sld_txn_sync_lmdb(*txn_p);
    return sld_txn_sync_apply(txn_p);
}

int sld_txn_commit(sld_txn_t **txn_p)
{
    int rc;
    sld_txn_t *txn;

    assert(txn_p && *txn_p);
    txn = *txn_p;
    rc = sld_txn_flush(txn);
    if (rc) {
        sld_txn_abort(txn_p);
        return rc;
    }
    (void) sld_txn_sync_lmdb(txn);
    return sld_txn_sync_apply(txn_p);
}

const char *sld_txn_why(const sld_txn_t *txn)
{
    assert(txn);
    return txn->why;
}

bool sld_txn_verified(const sld_txn_t *txn)
{
    assert(txn);
    return txn->verified;
}

void sld_txn_abort(sld_txn_t **txn_p)
{
    assert(txn_p);
    if (!*txn_p)
        return;
    s_txn_release(*txn_p);
    *txn_p = NULL;
}
