/*  sld_subrec - a durable subscription's records (configuration, cursors,
 *  acked offsets) over the store's named tables. Owns the key layouts:
 *  subs: NAME; cursors: NAME '\0' topic id u32 -> floor u64; acked:
 *  NAME '\0' topic id u32 + offset u64 -> (empty). Broker thread only.
 *  It neither decodes the configuration (delivery does) nor keeps state.  */
#include "sld_subrec.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* NAME '\0' topic id u32 + offset u64: the longest key. */
#define S_KEY_MAX (SLD_SUB_NAME_MAX + 1 + 4 + 8)

/* Length of subscription name NAME, 0 when NULL, empty or too long. */
static size_t s_name_len(const char *name)
{
    size_t n = name ? strnlen(name, SLD_SUB_NAME_MAX + 1) : 0;
    return n > SLD_SUB_NAME_MAX ? 0 : n;
}

/* Key NAME '\0' ID for cursors (and the prefix of acked keys). */
static int s_sub_key(uint8_t *k, const char *name, uint32_t id, size_t *len)
{
    size_t n = s_name_len(name);
    if (n == 0)
        return SL_EINVAL;
    memcpy(k, name, n);
    k[n] = 0;
    slc_put_be32(k + n + 1, id);
    *len = n + 5;
    return 0;
}

static int s_acked_key(uint8_t *k, const char *name, uint32_t id, uint64_t offset, size_t *len)
{
    int rc = s_sub_key(k, name, id, len);
    if (rc == 0) {
        slc_put_be64(k + *len, offset);
        *len += 8;
    }
    return rc;
}

int sld_subrec_put(sld_txn_t *txn, const char *name, const void *config, size_t len)
{
    size_t n = s_name_len(name);
    assert(txn);
    if (n == 0)
        return SL_EINVAL;
    return sld_table_put(txn, SLD_TABLE_SUBS, name, n, config, len);
}

int sld_subrec_delete(sld_txn_t *txn, const char *name)
{
    int rc, found;
    size_t n = s_name_len(name);

    assert(txn);
    if (n == 0)
        return SL_EINVAL;
    found = sld_table_del(txn, SLD_TABLE_SUBS, name, n);
    if (found && found != SL_ENOTFOUND)
        return found;
    /* The prefix NAME '\0' covers cursors and acked of every topic, and of
     * no other subscription (names hold no '\0'). Cleaned even when the
     * subs entry was missing, so leftovers of a half-deleted one go too. */
    rc = sld_table_del_prefix(txn, SLD_TABLE_CURSORS, name, n + 1);
    if (rc == 0)
        rc = sld_table_del_prefix(txn, SLD_TABLE_ACKED, name, n + 1);
    if (rc == 0)
        rc = found;
    return rc;
}

typedef struct {
    sld_subrec_fn *fn;
    void *arg;
} s_walk_t;

static int s_sub_one(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    const s_walk_t *w = arg;
    char name[SLD_SUB_NAME_MAX + 1];
    if (klen == 0 || klen > SLD_SUB_NAME_MAX) {
        fprintf(stderr, "sluiced: store: damaged subscription name\n");
        return SL_ESTORE;
    }
    memcpy(name, key, klen);
    name[klen] = 0;
    return w->fn(name, val, vlen, w->arg);
}

int sld_subrec_foreach(sld_txn_t *txn, sld_subrec_fn *fn, void *arg)
{
    s_walk_t w = { fn, arg };
    assert(txn && fn);
    return sld_table_foreach(txn, SLD_TABLE_SUBS, NULL, 0, s_sub_one, &w);
}

int sld_subrec_cursor_get(sld_txn_t *txn, const char *name, uint32_t id, uint64_t *floor)
{
    int rc;
    uint8_t k[S_KEY_MAX];
    size_t klen, vlen;
    const void *val;

    assert(txn && floor);
    rc = s_sub_key(k, name, id, &klen);
    if (rc == 0)
        rc = sld_table_get(txn, SLD_TABLE_CURSORS, k, klen, &val, &vlen);
    if (rc == 0 && vlen != 8) {
        fprintf(stderr, "sluiced: store: damaged cursor of %s\n", name);
        rc = SL_ESTORE;
    }
    if (rc == 0)
        *floor = slc_get_be64(val);
    return rc;
}

int sld_subrec_cursor_put(sld_txn_t *txn, const char *name, uint32_t id, uint64_t floor)
{
    int rc;
    uint8_t k[S_KEY_MAX], v[8];
    size_t klen;

    assert(txn);
    rc = s_sub_key(k, name, id, &klen);
    if (rc)
        return rc;
    slc_put_be64(v, floor);
    return sld_table_put(txn, SLD_TABLE_CURSORS, k, klen, v, sizeof v);
}

int sld_subrec_acked_put(sld_txn_t *txn, const char *name, uint32_t id, uint64_t offset)
{
    int rc;
    uint8_t k[S_KEY_MAX];
    size_t klen;

    assert(txn);
    rc = s_acked_key(k, name, id, offset, &klen);
    if (rc)
        return rc;
    return sld_table_put(txn, SLD_TABLE_ACKED, k, klen, NULL, 0);
}

int sld_subrec_acked_del(sld_txn_t *txn, const char *name, uint32_t id, uint64_t offset)
{
    int rc;
    uint8_t k[S_KEY_MAX];
    size_t klen;

    assert(txn);
    rc = s_acked_key(k, name, id, offset, &klen);
    if (rc == 0)
        rc = sld_table_del(txn, SLD_TABLE_ACKED, k, klen);
    return rc == SL_ENOTFOUND ? 0 : rc;
}

int sld_subrec_acked_clear(sld_txn_t *txn, const char *name, uint32_t id)
{
    int rc;
    uint8_t k[S_KEY_MAX];
    size_t klen;

    assert(txn);
    rc = s_sub_key(k, name, id, &klen);
    if (rc == 0)
        rc = sld_table_del_prefix(txn, SLD_TABLE_ACKED, k, klen);
    return rc;
}

int sld_subrec_acked_test(sld_txn_t *txn, const char *name, uint32_t id, uint64_t offset)
{
    int rc;
    uint8_t k[S_KEY_MAX];
    size_t klen, vlen;
    const void *val;

    assert(txn);
    rc = s_acked_key(k, name, id, offset, &klen);
    if (rc == 0)
        rc = sld_table_get(txn, SLD_TABLE_ACKED, k, klen, &val, &vlen);
    if (rc == 0)
        return 1;
    return rc == SL_ENOTFOUND ? 0 : rc;
}

typedef struct {
    sld_subrec_offset_fn *fn;
    void *arg;
    size_t klen;                /* every acked key of this (name, topic) */
    bool odd;                   /* met a key of another length: stopped */
} s_acked_walk_t;

static int s_acked_one(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_acked_walk_t *w = arg;
    (void) val;
    (void) vlen;
    if (klen != w->klen) {
        w->odd = true;
        return 1;
    }
    return w->fn(slc_get_be64((const uint8_t *) key + klen - 8), w->arg);
}

int sld_subrec_acked_foreach(sld_txn_t *txn, const char *name, uint32_t id,
                             uint64_t from, sld_subrec_offset_fn *fn, void *arg)
{
    int rc;
    uint8_t k[S_KEY_MAX];
    s_acked_walk_t w = { fn, arg, 0, false };

    assert(txn && fn);
    rc = s_acked_key(k, name, id, from, &w.klen);
    if (rc == 0)
        rc = sld_table_foreach_from(txn, SLD_TABLE_ACKED, k, w.klen, w.klen - 8,
                                    s_acked_one, &w);
    /* A key of another length ends the walk, as the end of the prefix does. */
    return w.odd ? 0 : rc;
}
