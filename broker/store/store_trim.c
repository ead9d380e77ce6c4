/*  store_trim - retention: one bounded write transaction that deletes
 *  the heads of topics over their age or size limit (after sld_pages has
 *  checked the pages it deletes from) with their trace records and
 *  removed dead-letter marks, then expired dedup entries and producer
 *  runs (store_idem.c). Broker thread only, between loop turns. It
 *  never deletes what it cannot read.  */
#include "sld_store_int.h"
#include "sld_pages.h"

/* Should the head record of T (ingest time INGEST_US) go? */
static bool s_over_limit(const sld_topic_info_t *t, uint64_t ingest_us, uint64_t now_us)
{
    if (t->max_bytes && t->bytes > t->max_bytes)
        return true;
    if (t->max_age_ms && now_us >= ingest_us) {
        uint64_t age_ms = (now_us - ingest_us) / 1000;
        return age_ms >= t->max_age_ms;
    }
    return false;
}

/* May trim delete topic I's record FIRST? Only once sld_pages has
 * checked, in the file (the last commit: this transaction has written
 * nothing yet), the leaves trim deletes from and their neighbours (a
 * delete may merge a page with one): LMDB would write through a damaged
 * page's garbage. Checks the next S_TRIM_CHECK records at a time; a
 * damaged head stops retention for the topic (logged once). */
static bool s_trim_checked(sld_store_t *s, size_t i, uint64_t first)
{
    sld_store_topic_t *t = &s->topics[i];
    uint8_t r[2][S_MSG_KEY_LEN];
    sld_pages_t *pg = NULL;
    uint64_t end;
    long n;

    if (t->trim_blocked)
        return false;
    if (first < t->trim_ok_below)
        return true;
    end = first + S_TRIM_CHECK;
    sld_store__msg_key(r[0], t->info.id, first);
    sld_store__msg_key(r[1], t->info.id, end);
    n = sld_pages_open(s->file, 0, NULL, NULL, &pg);
    if (n == 0)
        n = sld_pages_walk(pg, "msgs", r, S_MSG_KEY_LEN, 1, NULL, NULL);
    sld_pages_destroy(&pg);
    if (n == 0) {
        t->trim_ok_below = end;
        return true;
    }
    if (n > 0 || n == SL_ESTORE) {
        t->trim_blocked = true;
        fprintf(stderr, "sluiced: store: topic %s: the pages at its head (offset %" PRIu64
                ") are damaged; retention stops for this topic. `sluiced --check` "
                "reports the store\n", t->info.name, first);
    }
    return false;
}

static int s_trim_topics(sld_txn_t *txn, uint64_t now_us, size_t *budget, size_t *trimmed)
{
    int rc = 0, mrc;
    sld_store_t *s = txn->store;
    size_t n = s->ntopics;
    MDB_val key, val;
    uint8_t k[S_MSG_KEY_LEN];
    uint64_t ingest;

    for (size_t step = 0; step < n && *budget > 0; step++) {
        size_t i = (s->trim_topic + step) % n;
        uint32_t id = s->topics[i].info.id;
        const sld_topic_info_t *t = &s->topics[i].info;
        sld_topic_info_t *w = NULL;
        if (!t->max_age_ms && !t->max_bytes)
            continue;
        while (*budget > 0 && t->messages > 0) {
            if (!s_trim_checked(s, i, t->first_offset))
                break;
            rc = sld_store__record(txn, id, t->first_offset, &val, &ingest);
            if ((rc == SL_ESTORE && !txn->err) || rc == SL_ENOTFOUND) {
                /* The head does not read: never delete what we cannot see. */
                if (!s->topics[i].trim_blocked)
                    fprintf(stderr, "sluiced: store: topic %s: head record %" PRIu64
                            " does not read; retention stops for this topic. `sluiced "
                            "--check` reports the store\n", t->name, t->first_offset);
                s->topics[i].trim_blocked = true;
                rc = 0;
                break;
            }
            if (rc)
                goto fail;
            if (!s_over_limit(t, ingest, now_us))
                break;
            if (!w)
                t = w = sld_store__topic_work(txn, id);
            w->bytes -= w->bytes < val.mv_size ? w->bytes : val.mv_size;
            sld_store__msg_key(k, id, w->first_offset);
            key = sld_store__val(k, sizeof k);
            mrc = mdb_del(txn->mt, s->db_msgs, &key, NULL);
            /* The message's routing trace (sld_trace) and its removed
             * mark (sld_dlq) go with it. */
            if (mrc == 0) {
                mrc = mdb_del(txn->mt, s->db_trace, &key, NULL);
                if (mrc == MDB_NOTFOUND)
                    mrc = 0;
            }
            if (mrc == 0) {
                mrc = mdb_del(txn->mt, s->db_dlq, &key, NULL);
                if (mrc == MDB_NOTFOUND)
                    mrc = 0;
            }
            if (mrc) {
                rc = sld_store__txn_fail(txn, "trim", mrc);
                goto fail;
            }
            w->first_offset++;
            w->messages--;
            (*budget)--;
            (*trimmed)++;
        }
        if (*budget == 0)
            s->trim_topic = i;  /* resume with this topic next time */
    }
fail:
    return rc;
}

int sld_store_trim(sld_store_t *self, uint64_t now_us, uint64_t dedup_window_us,
                   size_t max_records, size_t *trimmed)
{
    int rc;
    sld_txn_t *txn = NULL;
    size_t budget = max_records, count = 0;

    assert(self);
    if (trimmed)
        *trimmed = 0;
    rc = sld_store_begin(self, true, &txn);
    if (rc)
        goto fail;
    rc = s_trim_topics(txn, now_us, &budget, &count);
    if (rc == 0)
        rc = sld_store__trim_dedup(txn, now_us, dedup_window_us, max_records);
    if (rc == 0)
        rc = sld_store__trim_pseq(txn, max_records);
    if (rc)
        goto fail;
    rc = sld_txn_commit(&txn);
    if (rc == 0 && trimmed)
        *trimmed = count;
fail:
    sld_txn_abort(&txn);
    return rc;
}
