/*  sld_helper - see sld_helper.h. One mutex and one condition variable:
 *  STARTED counts the jobs asked for, DONE the jobs ended.  */
#include "sld_helper.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include "slc.h"

struct sld_helper {
    void (*fn)(void *arg);
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t started, done;
    bool stop;
};

static void *s_run(void *arg)
{
    sld_helper_t *self = arg;
    pthread_mutex_lock(&self->mu);
    while (true) {
        while (!self->stop && self->done == self->started)
            pthread_cond_wait(&self->cv, &self->mu);
        if (self->stop)
            break;
        pthread_mutex_unlock(&self->mu);
        self->fn(self->arg);
        pthread_mutex_lock(&self->mu);
        self->done++;
        pthread_cond_broadcast(&self->cv);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

int sld_helper_new(void (*fn)(void *arg), void *arg, sld_helper_t **out)
{
    *out = NULL;
    sld_helper_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->fn = fn;
    self->arg = arg;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) {
        pthread_cond_destroy(&self->cv);
        pthread_mutex_destroy(&self->mu);
        free(self);
        return SL_ESYS;
    }
    *out = self;
    return 0;
}

void sld_helper_destroy(sld_helper_t **self_p)
{
    sld_helper_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    pthread_mutex_lock(&self->mu);
    self->stop = true;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    pthread_join(self->thread, NULL);
    pthread_cond_destroy(&self->cv);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

void sld_helper_start(sld_helper_t *self)
{
    pthread_mutex_lock(&self->mu);
    self->started++;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
}

void sld_helper_wait(sld_helper_t *self)
{
    pthread_mutex_lock(&self->mu);
    while (self->done != self->started)
        pthread_cond_wait(&self->cv, &self->mu);
    pthread_mutex_unlock(&self->mu);
}
