/*  store_vault - encryption at rest: the master key's data keys (`keys`,
 *  in sodium-locked memory), sealing and opening records, the msg-id
 *  hash key, the plain_below / sum_below bounds, key rotation. Broker
 *  thread; opening records also on the helper thread. It knows nothing
 *  of where records live; sld_seal does the cryptography.  */
#include "sld_store_int.h"
#include <errno.h>

/* ------------------------------------------------------------------- keys */

/* Make room for NEED data keys. A new area is allocated, the old one
 * copied, wiped and freed: rare (rotation), and no pointer into the area
 * is kept across calls. 0 or SL_ENOMEM. */
static int s_secret_grow(sld_store_t *s, uint32_t need)
{
    int rc = 0;
    uint32_t cap = s->secret_cap ? s->secret_cap : 4;
    size_t old_size = ((size_t) s->secret_cap + 2) * SLD_SEAL_KEY_LEN, size;
    uint8_t *area;

    if (need <= s->secret_cap && s->secret)
        goto fail;
    while (cap < need)
        cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
    size = ((size_t) cap + 2) * SLD_SEAL_KEY_LEN;
    area = sodium_malloc(size);
    if (!area) {
        rc = SL_ENOMEM;
        goto fail;
    }
    /* sodium_malloc already tries to mlock; say so when it cannot. */
    if (sodium_mlock(area, size) != 0)
        fprintf(stderr, "sluiced: store: could not lock the keys in memory (%s): "
                "they may be swapped out\n", strerror(errno));
    memset(area, 0, size);
    if (s->secret) {
        memcpy(area, s->secret, old_size);
        sodium_memzero(s->secret, old_size);
        sodium_free(s->secret);
    }
    s->secret = area;
    s->secret_cap = cap;
fail:
    return rc;
}

void sld_store__secret_free(sld_store_t *s)
{
    if (!s->secret)
        return;
    sodium_memzero(s->secret, ((size_t) s->secret_cap + 2) * SLD_SEAL_KEY_LEN);
    sodium_free(s->secret);
    s->secret = NULL;
    s->secret_cap = 0;
}

/* AD of data key ID's record: it belongs to this store, under this id. */
static void s_key_ad(const sld_store_t *s, uint8_t ad[S_KEY_AD_LEN], uint32_t id)
{
    memcpy(ad, s->instance, sizeof s->instance);
    slc_put_be32(ad + sizeof s->instance, id);
}

/* Draw a fresh random data key ID into its slot and write it, sealed with
 * the master key, to `keys` in MT. 0, SL_EINTERNAL, or *MRC the failing
 * mdb_put's code (the caller translates it). */
static int s_key_new(sld_store_t *s, MDB_txn *mt, uint32_t id, int *mrc)
{
    int rc;
    uint8_t rec[S_KEY_REC_LEN], ad[S_KEY_AD_LEN], k[4];
    MDB_val key, val;

    *mrc = 0;
    sld_seal_random(sld_store__data_key(s, id), SLD_SEAL_KEY_LEN);
    sld_seal_random(rec, SLD_SEAL_NONCE_LEN);
    s_key_ad(s, ad, id);
    rc = sld_seal_encrypt(rec + SLD_SEAL_NONCE_LEN, sld_store__data_key(s, id), SLD_SEAL_KEY_LEN,
                          ad, sizeof ad, rec, sld_store__master_key(s));
    if (rc)
        goto fail;
    slc_put_be32(k, id);
    key = sld_store__val(k, sizeof k);
    val = sld_store__val(rec, sizeof rec);
    *mrc = mdb_put(mt, s->db_keys, &key, &val, MDB_NOOVERWRITE);
fail:
    if (rc || *mrc)
        sodium_memzero(sld_store__data_key(s, id), SLD_SEAL_KEY_LEN);
    return rc;
}

/* Encryption starts on this store: data key 1, plain_below from the
 * committed topics (their records so far are plain), format 5. */
static int s_keys_start(sld_store_t *s, MDB_txn *mt)
{
    int rc = 0, mrc;
    uint8_t fmt[4];
    MDB_val k, v;

    rc = s_key_new(s, mt, 1, &mrc);
    if (rc || mrc)
        goto fail;
    rc = sld_store__bounds_put(s, mt, "plain_below", &mrc);
    if (rc || mrc)
        goto fail;
    s->format = S_FORMAT_SEALED;
    slc_put_be32(fmt, s->format);
    k = sld_store__val("format", 6);
    v = sld_store__val(fmt, sizeof fmt);
    mrc = mdb_put(mt, s->db_meta, &k, &v, 0);
    if (mrc)
        goto fail;
    s->nkeys = 1;
    s->format_sealed = true;
    fprintf(stderr, "sluiced: store: %s: encryption at rest begins (data key 1)%s\n",
            s->dir, s->ntopics ? "; records stored before stay plain" : "");
fail:
    if (rc == 0 && mrc)
        rc = sld_store__mdb_fail("start encryption at rest", mrc);
    return rc;
}

/* Open every data key of `keys` with the master key. */
static int s_keys_unwrap(sld_store_t *s, MDB_txn *mt)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t ad[S_KEY_AD_LEN];
    uint32_t id = 0;

    mrc = mdb_cursor_open(mt, s->db_keys, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *rec = v.mv_data;
        /* Ids are handed out 1, 2, ... and never deleted. */
        if (k.mv_size != 4 || v.mv_size != S_KEY_REC_LEN
            || slc_get_be32(k.mv_data) != id + 1) {
            rc = sld_store__refuse(s, "damaged data key record");
            goto fail;
        }
        id++;
        rc = s_secret_grow(s, id);
        if (rc)
            goto fail;
        s_key_ad(s, ad, id);
        if (sld_seal_decrypt(sld_store__data_key(s, id), rec + SLD_SEAL_NONCE_LEN,
                             S_KEY_REC_LEN - SLD_SEAL_NONCE_LEN, ad, sizeof ad, rec,
                             sld_store__master_key(s)) != 0) {
            /* Key 1 not opening is the wrong master key; a later one
             * not opening when key 1 did is damage. */
            rc = sld_store__refuse(s, id == 1 ? "the key in the --encrypt-at-rest file does not "
                                   "open this store's data keys: wrong key?"
                                   : "a data key does not open with the key that opens the "
                                   "others: damaged data key record");
            goto fail;
        }
    }
    if (mrc != MDB_NOTFOUND) {
        rc = sld_store__mdb_fail("read data keys", mrc);
        goto fail;
    }
    s->nkeys = id;
fail:
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* Load meta KEY, per topic id u32 + offset u64 sorted by id, into *OUT.
 * A missing KEY is an empty list when OPTIONAL, else a refusal. */
int sld_store__bounds_load(sld_store_t *s, MDB_txn *mt, const char *key, bool optional,
                           sld_store_bound_t **out, size_t *n)
{
    int rc = 0, mrc;
    MDB_val k = sld_store__val(key, strlen(key)), v;
    const uint8_t *p;
    char why[96];

    mrc = mdb_get(mt, s->db_meta, &k, &v);
    if (mrc == MDB_NOTFOUND && optional)
        v = sld_store__val("", 0);
    else if (mrc || v.mv_size % S_PLAIN_REC_LEN != 0) {
        snprintf(why, sizeof why, "no valid %s record", key);
        rc = sld_store__refuse(s, why);
        goto fail;
    }
    *n = v.mv_size / S_PLAIN_REC_LEN;
    *out = calloc(*n + 1, sizeof **out);
    if (!*out) {
        rc = SL_ENOMEM;
        goto fail;
    }
    p = v.mv_data;
    for (size_t i = 0; i < *n; i++) {
        (*out)[i].id = slc_get_be32(p + i * S_PLAIN_REC_LEN);
        (*out)[i].below = slc_get_be64(p + i * S_PLAIN_REC_LEN + 4);
        if (i > 0 && (*out)[i].id <= (*out)[i - 1].id) {
            snprintf(why, sizeof why, "%s record out of order", key);
            rc = sld_store__refuse(s, why);
            goto fail;
        }
    }
fail:
    return rc;
}

static int s_plain_load(sld_store_t *s, MDB_txn *mt)
{
    return sld_store__bounds_load(s, mt, "plain_below", false, &s->plain, &s->nplain);
}

/* META KEY <- each committed topic's next offset (records below it are
 * what was stored so far). */
int sld_store__bounds_put(sld_store_t *s, MDB_txn *mt, const char *key, int *mrc)
{
    uint8_t *bounds = malloc(s->ntopics * S_PLAIN_REC_LEN + 1);
    MDB_val k = sld_store__val(key, strlen(key)), v;
    if (!bounds)
        return SL_ENOMEM;
    for (size_t i = 0; i < s->ntopics; i++) {
        slc_put_be32(bounds + i * S_PLAIN_REC_LEN, s->topics[i].info.id);
        slc_put_be64(bounds + i * S_PLAIN_REC_LEN + 4, s->topics[i].info.next_offset);
    }
    v = sld_store__val(bounds, s->ntopics * S_PLAIN_REC_LEN);
    *mrc = mdb_put(mt, s->db_meta, &k, &v, 0);
    free(bounds);
    return 0;
}

/* Data keys at open: refuse a mismatch between the store and MASTER (the
 * caller's key or NULL), start encryption on a store without keys, or
 * open the keys it has. */
int sld_store__load_keys(sld_store_t *s, MDB_txn *mt, const uint8_t *master)
{
    int rc = 0, mrc;
    MDB_stat st;

    mrc = mdb_stat(mt, s->db_keys, &st);
    if (mrc) {
        rc = sld_store__mdb_fail("read data keys", mrc);
        goto fail;
    }
    if (st.ms_entries > 0 && !s->format_sealed) {
        rc = sld_store__refuse(s, "data keys in a store whose format says it is not encrypted: "
                               "damaged");
        goto fail;
    }
    if (st.ms_entries == 0 && s->format_sealed) {
        rc = sld_store__refuse(s, "store format says encrypted but there are no data keys: "
                               "damaged");
        goto fail;
    }
    /* Reading and checking only: a key does not start encryption. */
    if (st.ms_entries == 0 && s->read_only)
        goto fail;
    if (!master) {
        if (st.ms_entries > 0)
            rc = sld_store__refuse(s, "this store is encrypted at rest: start with "
                                   "--encrypt-at-rest KEYFILE");
        goto fail;
    }
    rc = sld_seal_init();
    if (rc == 0)
        rc = s_secret_grow(s, 1);
    if (rc)
        goto fail;
    memcpy(sld_store__master_key(s), master, SLD_SEAL_KEY_LEN);
    rc = sld_seal_derive(sld_store__msgid_key(s), 1, S_MSGID_CTX, master);
    if (rc)
        goto fail;
    rc = st.ms_entries == 0 ? s_keys_start(s, mt) : s_keys_unwrap(s, mt);
    if (rc == 0)
        rc = s_plain_load(s, mt);
fail:
    return rc;
}

/* ---------------------------------------------------------------- records */

/* A nonce never used before: random, drawn S_NONCE_POOL at a time. */
static void s_nonce(sld_store_t *s, uint8_t *nonce)
{
    if (s->nonces_left == 0) {
        sld_seal_random(s->nonces, sizeof s->nonces);
        s->nonces_left = S_NONCE_POOL;
    }
    s->nonces_left--;
    memcpy(nonce, s->nonces + s->nonces_left * SLD_SEAL_NONCE_LEN, SLD_SEAL_NONCE_LEN);
}

/* Associated data of record REC (its header is read) at (ID, OFFSET). */
static void s_record_ad(uint8_t ad[S_SEAL_AD_LEN], uint32_t id, uint64_t offset,
                        const uint8_t *rec)
{
    slc_put_be32(ad, id);
    slc_put_be64(ad + 4, offset);
    memcpy(ad + 12, rec, SLD_RECORD_HEADER);
}

/* Seal ENVELOPE (LEN bytes) into REC, the reserved value of (ID, OFFSET)
 * whose header is already written, with TXN's current data key. A failure
 * poisons TXN: the reserved value holds no valid record. */
int sld_store__seal_record(sld_txn_t *txn, uint32_t id, uint64_t offset, uint8_t *rec,
                           const void *envelope, size_t len)
{
    int rc;
    sld_store_t *s = txn->store;
    uint8_t ad[S_SEAL_AD_LEN];

    rec[SLD_RECORD_HEADER] = S_SEAL_MARK;
    slc_put_be32(rec + SLD_RECORD_HEADER + 1, txn->seal_id);
    s_nonce(s, rec + S_SEAL_NONCE_AT);
    s_record_ad(ad, id, offset, rec);
    rc = sld_seal_encrypt(rec + S_SEAL_BODY_AT, envelope, len, ad, sizeof ad,
                          rec + S_SEAL_NONCE_AT, sld_store__data_key(s, txn->seal_id));
    if (rc) {
        fprintf(stderr, "sluiced: store: sealing record %" PRIu32 "/%" PRIu64
                " failed\n", id, offset);
        if (txn->err == 0)
            txn->err = rc;
    }
    return rc;
}

/* Open sealed record REC (LEN bytes) of (ID, OFFSET) into OUT (LEN -
 * SLD_RECORD_HEADER - SLD_RECORD_SEAL_OVERHEAD bytes) with data keys 1 ..
 * NKEYS. *KEY_ID is the key it names. 0 or SL_ESTORE. */
int sld_store__record_open(const sld_store_t *s, uint32_t nkeys, uint32_t id,
                           uint64_t offset, const uint8_t *rec, size_t len, uint8_t *out,
                           uint32_t *key_id)
{
    int rc = SL_ESTORE;
    uint8_t ad[S_SEAL_AD_LEN];

    *key_id = 0;
    if (len < SLD_RECORD_HEADER + SLD_RECORD_SEAL_OVERHEAD)
        goto fail;
    *key_id = slc_get_be32(rec + SLD_RECORD_HEADER + 1);
    if (*key_id == 0 || *key_id > nkeys)
        goto fail;
    s_record_ad(ad, id, offset, rec);
    if (sld_seal_decrypt(out, rec + S_SEAL_BODY_AT, len - S_SEAL_BODY_AT, ad, sizeof ad,
                         rec + S_SEAL_NONCE_AT, sld_store__data_key(s, *key_id)) == 0)
        rc = 0;
fail:
    return rc;
}

/* Is (ID, OFFSET) below the bound BOUNDS (N entries sorted by id) sets
 * for its topic? A topic without an entry has no room below. */
bool sld_store__below(const sld_store_bound_t *bounds, size_t n, uint32_t id, uint64_t offset)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bounds[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && bounds[lo].id == id && offset < bounds[lo].below;
}

/* --------------------------------------------------------------- rotation */

int sld_store_rotate_key(sld_txn_t *txn, uint32_t *key_id)
{
    int rc = 0, mrc = 0;
    sld_store_t *s;
    uint32_t next;

    assert(txn && txn->write && key_id);
    s = txn->store;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    if (!s->secret || txn->seal_id == UINT32_MAX) {
        rc = SL_EINVAL;
        goto fail;
    }
    next = txn->seal_id + 1;
    rc = s_secret_grow(s, next);
    if (rc == 0)
        rc = s_key_new(s, txn->mt, next, &mrc);
    if (rc == 0 && mrc)
        rc = sld_store__txn_fail(txn, "rotate data key", mrc);
    if (rc)
        goto fail;
    /* Pending until commit (s_txn_apply); s_txn_release wipes it on abort. */
    txn->seal_id = next;
    *key_id = next;
fail:
    return rc;
}

uint32_t sld_store_seal_key_id(const sld_store_t *self)
{
    assert(self);
    return self->nkeys;
}
