/*  sld_commit - the commit coordinator: the modules that write in the
 *  ingest transaction register as participants {persist(txn),
 *  committed(ok)}; the coordinator runs their persists in order, commits in
 *  two steps (flush, then LMDB's sync) and, between them, runs a job on its
 *  helper thread (the delivery pump-ahead) while this thread waits for the
 *  disk; then tells every participant the outcome. The store never calls
 *  back up. Owns the participant list and the helper thread. Broker thread
 *  only. It knows nothing of frames, sessions or the wire.  */
#ifndef SLD_COMMIT_H
#define SLD_COMMIT_H
#include <stdbool.h>
#include <stdint.h>
#include "sld_store.h"

typedef struct sld_commit sld_commit_t;

/* One module that writes in the transaction. Either function may be NULL. */
typedef struct {
    /* Write the module's pending state into TXN (a write transaction).
     * 0, or a code that dooms the transaction (SL_EFULL, SL_ESTORE,
     * SL_ENOMEM): the coordinator's caller aborts it. */
    int (*persist)(void *arg, sld_txn_t *txn);
    /* The transaction that carried the persists committed (OK) or was
     * aborted / failed to commit (!OK). */
    void (*committed)(void *arg, bool ok);
    void *arg;
} sld_commit_participant_t;

/* The job run on the helper thread while LMDB writes and syncs: READY(ARG)
 * says on the broker thread whether there is anything to do (no thread
 * hand-over when not); RUN(ARG, NOW_MS) runs on the helper thread and may
 * read the store as of the commit before (sld_store.h, "Threads"). */
typedef struct {
    bool (*ready)(void *arg);
    void (*run)(void *arg, uint64_t now_ms);
    void *arg;
} sld_commit_ahead_t;

/* A coordinator with no participants and, when AHEAD is not NULL (copied),
 * a helper thread for it. 0 and *out (caller owns), SL_ENOMEM, SL_ESYS. */
int sld_commit_new(const sld_commit_ahead_t *ahead, sld_commit_t **out);

/* Stop the helper thread and free. NULL-safe; nulls *self_p. */
void sld_commit_destroy(sld_commit_t **self_p);

/* Register P (copied) after those registered before: persists and
 * committeds run in registration order. 0 or SL_ENOMEM. */
int sld_commit_add(sld_commit_t *self, const sld_commit_participant_t *p);

/* Every participant's persist into TXN, in order, up to the first failure,
 * which is returned (0 when all succeeded). */
int sld_commit_persist(sld_commit_t *self, sld_txn_t *txn);

/* Abort *txn_p (NULL-safe, nulled) and tell every participant !ok. */
void sld_commit_abort(sld_commit_t *self, sld_txn_t **txn_p);

/* Commit *txn_p (taken, always freed and nulled): flush; with AHEAD and a
 * ready job, start it on the helper thread; LMDB commit and sync; wait for
 * the job; make the commit the store's in-memory state; then tell every
 * participant the outcome. 0, SL_EFULL (map full: nothing written),
 * SL_ESTORE. */
int sld_commit_finish(sld_commit_t *self, sld_txn_t **txn_p, bool ahead);

#endif
