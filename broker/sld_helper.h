/*  sld_helper - a second thread that runs one job when asked, for work the
 *  broker thread hands over while it is itself blocked (a commit waiting
 *  for the disk). The caller decides what the job may touch; start and
 *  wait are the hand-over points (a mutex: everything written before start
 *  is seen by the job, everything the job wrote is seen after wait).  */
#ifndef SLD_HELPER_H
#define SLD_HELPER_H

typedef struct sld_helper sld_helper_t;

/* Start the thread, which will run FN(ARG) at each sld_helper_start.
 * 0 and *out (caller owns), SL_ENOMEM or SL_ESYS. */
int sld_helper_new(void (*fn)(void *arg), void *arg, sld_helper_t **out);

/* Stop and join the thread (a job under way finishes first). NULL-safe. */
void sld_helper_destroy(sld_helper_t **self_p);

/* Run the job once on the helper thread; returns at once. At most one job
 * runs: start only after the last one was waited for. */
void sld_helper_start(sld_helper_t *self);

/* Return once the job started last has ended. */
void sld_helper_wait(sld_helper_t *self);

#endif
