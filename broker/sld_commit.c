/*  sld_commit - the commit coordinator (see sld_commit.h): participants in
 *  registration order, the two-step commit, and the helper thread that
 *  runs the pump-ahead while the broker thread waits for the disk.
 *  Broker thread only (the job itself runs on the helper thread).
 *
 *  While LMDB writes and syncs a commit this thread only waits, so the
 *  helper thread sends, meanwhile, what subscriptions can take of the
 *  commits before it (the store's committed state is still theirs); this
 *  thread touches neither the delivery state nor the socket until the
 *  helper is done, and the store's in-memory state takes the commit only
 *  after that (sld_txn_sync_apply).  */
#include "sld_commit.h"
#include <stdlib.h>
#include "slc.h"
#include "sld_helper.h"

struct sld_commit {
    sld_commit_participant_t *parts;
    size_t nparts, capparts;
    sld_commit_ahead_t ahead;   /* run == NULL: none */
    sld_helper_t *helper;       /* runs s_run_ahead */
    uint64_t ahead_now;         /* the job's clock, set before the start */
};

static void s_run_ahead(void *arg)
{
    sld_commit_t *self = arg;
    self->ahead.run(self->ahead.arg, self->ahead_now);
}

int sld_commit_new(const sld_commit_ahead_t *ahead, sld_commit_t **out)
{
    *out = NULL;
    sld_commit_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    int rc = 0;
    if (ahead && ahead->run) {
        self->ahead = *ahead;
        rc = sld_helper_new(s_run_ahead, self, &self->helper);
    }
    if (rc) {
        free(self);
        return rc;
    }
    *out = self;
    return 0;
}

void sld_commit_destroy(sld_commit_t **self_p)
{
    sld_commit_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    sld_helper_destroy(&self->helper);
    free(self->parts);
    free(self);
    *self_p = NULL;
}

int sld_commit_add(sld_commit_t *self, const sld_commit_participant_t *p)
{
    int rc = slc_grow((void **) &self->parts, &self->capparts, self->nparts + 1,
                      sizeof *self->parts);
    if (rc == 0)
        self->parts[self->nparts++] = *p;
    return rc;
}

int sld_commit_persist(sld_commit_t *self, sld_txn_t *txn)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < self->nparts; i++)
        if (self->parts[i].persist)
            rc = self->parts[i].persist(self->parts[i].arg, txn);
    return rc;
}

static void s_committed(sld_commit_t *self, bool ok)
{
    for (size_t i = 0; i < self->nparts; i++)
        if (self->parts[i].committed)
            self->parts[i].committed(self->parts[i].arg, ok);
}

void sld_commit_abort(sld_commit_t *self, sld_txn_t **txn_p)
{
    sld_txn_abort(txn_p);
    s_committed(self, false);
}

int sld_commit_finish(sld_commit_t *self, sld_txn_t **txn_p, bool ahead)
{
    int rc = sld_txn_flush(*txn_p);
    if (rc) {
        sld_txn_abort(txn_p);
        s_committed(self, false);
        return rc;
    }
    bool running = ahead && self->helper && self->ahead.ready(self->ahead.arg);
    if (running) {
        self->ahead_now = slc_mono_ms();
        sld_helper_start(self->helper);
        sld_txn_sync_lmdb(*txn_p);
        sld_helper_wait(self->helper);
        rc = sld_txn_sync_apply(txn_p);
    }
    else
        rc = sld_txn_sync(txn_p);
    s_committed(self, rc == 0);
    return rc;
}
