/*  store_table - the named tables other modules keep their records in
 *  (subscriptions, cursors, acked offsets: sld_subrec; identities:
 *  sld_auth; the schema registry: sld_registry; routing tables:
 *  sld_routes): put, get, delete,
 *  delete by prefix, walk by prefix, every value with its checksum.
 *  Broker thread only. It knows nothing of what the records mean: their
 *  formats are the modules' own.  */
#include "sld_store_int.h"

/* The checksum the small databases' values end with (format 4 on):
 * BLAKE2b over database TAG, KEY and VAL (streamed, so nothing is
 * copied; these are written rarely), cut to 8 bytes. */
static void s_rec_sum(uint8_t out[S_SUM_LEN], const char *tag, const void *key, size_t klen,
                      const void *val, size_t vlen)
{
    crypto_generichash_state st;
    uint8_t full[crypto_generichash_BYTES_MIN];
    crypto_generichash_init(&st, NULL, 0, sizeof full);
    crypto_generichash_update(&st, (const uint8_t *) tag, strlen(tag) + 1);
    crypto_generichash_update(&st, key, klen);
    crypto_generichash_update(&st, val, vlen);
    crypto_generichash_final(&st, full, sizeof full);
    memcpy(out, full, S_SUM_LEN);
}

/* Strip and verify the checksum of value *V under KEY in database TAG
 * (a store of format 2 or 3 has none: V stays as it is). False when it
 * is missing or wrong. */
bool sld_store__rec_open(const sld_store_t *s, const char *tag, const MDB_val *key, MDB_val *v)
{
    uint8_t sum[S_SUM_LEN];
    if (!s->format_sums)
        return true;
    if (v->mv_size < S_SUM_LEN)
        return false;
    v->mv_size -= S_SUM_LEN;
    s_rec_sum(sum, tag, key->mv_data, key->mv_size, v->mv_data, v->mv_size);
    return memcmp(sum, (const uint8_t *) v->mv_data + v->mv_size, S_SUM_LEN) == 0;
}

/* Put KEY -> VAL and its checksum into database DBI (TAG) of write MT. */
int sld_store__rec_put(MDB_txn *mt, MDB_dbi dbi, const char *tag, MDB_val *key,
                       const void *val, size_t vlen)
{
    MDB_val v = sld_store__val(NULL, vlen + S_SUM_LEN);
    int mrc = mdb_put(mt, dbi, key, &v, MDB_RESERVE);
    if (mrc == 0) {
        if (vlen)
            memcpy(v.mv_data, val, vlen);
        s_rec_sum((uint8_t *) v.mv_data + vlen, tag, key->mv_data, key->mv_size, val, vlen);
    }
    return mrc;
}

/* ------------------------------------------------------------ the tables */

/* TABLE's database, and *TAG, the name its checksums are keyed with. */
static MDB_dbi s_dbi(const sld_store_t *s, sld_table_t table, const char **tag)
{
    switch (table) {
    case SLD_TABLE_SUBS:
        *tag = "subs";
        return s->db_subs;
    case SLD_TABLE_CURSORS:
        *tag = "cursors";
        return s->db_cursors;
    case SLD_TABLE_ACKED:
        *tag = "acked";
        return s->db_acked;
    case SLD_TABLE_IDENTS:
        *tag = "idents";
        return s->db_idents;
    case SLD_TABLE_REGISTRY:
        *tag = "registry";
        return s->db_registry;
    case SLD_TABLE_ROUTES:
        *tag = "routes";
        return s->db_routes;
    case SLD_TABLE_TRACE:
        *tag = "trace";
        return s->db_trace;
    case SLD_TABLE_DLQ:
        *tag = "dlq";
        return s->db_dlq;
    }
    assert(!"unknown table");
    *tag = "";
    return 0;
}

/* Log that the value under KEY in TAG fails its checksum: SL_ESTORE.
 * Keys are names or binary: printable bytes as they are, others \xNN. */
static int s_damaged(const char *tag, const void *key, size_t klen)
{
    char text[4 * 64 + 4];
    const uint8_t *k = key;
    size_t n = 0;
    for (size_t i = 0; i < klen && i < 64; i++) {
        if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\')
            text[n++] = (char) k[i];
        else
            n += (size_t) snprintf(text + n, sizeof text - n, "\\x%02x", k[i]);
    }
    text[n] = 0;
    fprintf(stderr, "sluiced: store: %s: the record '%s%s' fails its checksum (damaged); "
            "`sluiced --check` reports the store\n", tag, text, klen > 64 ? "..." : "");
    return SL_ESTORE;
}

/* What every table call checks first: a write TXN not already failed
 * (WRITE), a key of 1..SLD_TABLE_KEY_MAX bytes (KLEN; 0 allowed with
 * EMPTY_OK); then TABLE's database and tag. 0 or the code to return. */
static int s_enter(sld_txn_t *txn, sld_table_t table, size_t klen, bool write, bool empty_ok,
                   MDB_dbi *dbi, const char **tag)
{
    if (write && txn->err)
        return txn->err;
    if ((klen == 0 && !empty_ok) || klen > SLD_TABLE_KEY_MAX)
        return SL_EINVAL;
    *dbi = s_dbi(txn->store, table, tag);
    return 0;
}

/* LMDB failed (MRC) doing VERB in TAG: the transaction is doomed. */
static int s_failed(sld_txn_t *txn, const char *verb, const char *tag, int mrc)
{
    char what[32];
    snprintf(what, sizeof what, "%s %s", verb, tag);
    return sld_store__txn_fail(txn, what, mrc);
}

int sld_table_put(sld_txn_t *txn, sld_table_t table, const void *key, size_t klen,
                  const void *val, size_t vlen)
{
    const char *tag;
    MDB_dbi dbi;

    assert(txn && txn->write && (key || klen == 0) && (val || vlen == 0));
    int rc = s_enter(txn, table, klen, true, false, &dbi, &tag);
    if (rc)
        return rc;
    MDB_val k = sld_store__val(key, klen);
    int mrc = sld_store__rec_put(txn->mt, dbi, tag, &k, val, vlen);
    return mrc ? s_failed(txn, "write", tag, mrc) : 0;
}

int sld_table_get(sld_txn_t *txn, sld_table_t table, const void *key, size_t klen,
                  const void **val, size_t *vlen)
{
    const char *tag;
    MDB_dbi dbi;
    MDB_val v;

    assert(txn && (key || klen == 0) && val && vlen);
    int rc = s_enter(txn, table, klen, false, false, &dbi, &tag);
    if (rc)
        return rc;
    MDB_val k = sld_store__val(key, klen);
    int mrc = mdb_get(txn->mt, dbi, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return SL_ENOTFOUND;
    if (mrc)
        return s_failed(txn, "read", tag, mrc);
    if (!sld_store__rec_open(txn->store, tag, &k, &v))
        return s_damaged(tag, key, klen);
    *val = v.mv_data;
    *vlen = v.mv_size;
    return 0;
}

int sld_table_del(sld_txn_t *txn, sld_table_t table, const void *key, size_t klen)
{
    const char *tag;
    MDB_dbi dbi;

    assert(txn && txn->write && (key || klen == 0));
    int rc = s_enter(txn, table, klen, true, false, &dbi, &tag);
    if (rc)
        return rc;
    MDB_val k = sld_store__val(key, klen);
    int mrc = mdb_del(txn->mt, dbi, &k, NULL);
    if (mrc == MDB_NOTFOUND)
        return SL_ENOTFOUND;
    return mrc ? s_failed(txn, "delete in", tag, mrc) : 0;
}

int sld_table_del_prefix(sld_txn_t *txn, sld_table_t table, const void *prefix,
                         size_t plen)
{
    const char *tag;
    MDB_dbi dbi;
    MDB_cursor *cur = NULL;
    MDB_val key, val;

    assert(txn && txn->write && (prefix || plen == 0));
    int rc = s_enter(txn, table, plen, true, false, &dbi, &tag);
    if (rc)
        return rc;
    int mrc = mdb_cursor_open(txn->mt, dbi, &cur);
    while (mrc == 0) {
        /* Re-seek after each delete: simple, and never trips over a cursor
         * left on a page the delete merged away. */
        key = sld_store__val(prefix, plen);
        mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
        if (mrc || key.mv_size < plen || memcmp(key.mv_data, prefix, plen) != 0)
            break;
        mrc = mdb_cursor_del(cur, 0);
    }
    if (mrc && mrc != MDB_NOTFOUND)
        rc = s_failed(txn, "delete in", tag, mrc);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

int sld_table_foreach_from(sld_txn_t *txn, sld_table_t table, const void *from,
                           size_t flen, size_t plen, sld_table_fn *fn, void *arg)
{
    const char *tag;
    MDB_dbi dbi;
    MDB_cursor *cur = NULL;
    MDB_val key, val;

    assert(txn && fn && (from || flen == 0) && plen <= flen);
    int rc = s_enter(txn, table, flen, false, true, &dbi, &tag);
    if (rc)
        return rc;
    int mrc = mdb_cursor_open(txn->mt, dbi, &cur);
    key = sld_store__val(from, flen);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &key, &val, flen ? MDB_SET_RANGE : MDB_FIRST);
    while (mrc == 0) {
        if (key.mv_size < plen || (plen && memcmp(key.mv_data, from, plen) != 0)) {
            mrc = MDB_NOTFOUND;     /* past the prefix: done */
            break;
        }
        if (!sld_store__rec_open(txn->store, tag, &key, &val)) {
            rc = s_damaged(tag, key.mv_data, key.mv_size);
            goto fail;
        }
        rc = fn(key.mv_data, key.mv_size, val.mv_data, val.mv_size, arg);
        if (rc)
            goto fail;
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    if (mrc != MDB_NOTFOUND)
        rc = s_failed(txn, "list", tag, mrc);
fail:
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

int sld_table_foreach(sld_txn_t *txn, sld_table_t table, const void *prefix, size_t plen,
                      sld_table_fn *fn, void *arg)
{
    return sld_table_foreach_from(txn, table, prefix, plen, plen, fn, arg);
}
