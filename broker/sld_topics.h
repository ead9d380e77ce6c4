/*  sld_topics - topic policy over the store: which names a client may
 *  publish to, creation with the default retention, operator changes of
 *  retention, the background trim schedule and the TopicInfo listing.
 *  Borrows the store and metrics; broker thread only. Storage of records
 *  and metadata is the store's; this module decides, the store keeps.  */
#ifndef SLD_TOPICS_H
#define SLD_TOPICS_H
#include <stdbool.h>
#include <stdint.h>
#include "slc_codec.h"
#include "sld_metrics.h"
#include "sld_store.h"

typedef struct sld_topics sld_topics_t;

typedef struct {
    uint64_t max_age_ms;        /* retention given to new topics; 0 = unlimited */
    uint64_t max_bytes;
    uint32_t trim_interval_ms;  /* how often sld_topics_trim works */
    uint32_t trim_batch;        /* most records removed per pass */
    uint64_t dedup_window_ms;   /* msg-id dedup window */
} sld_topics_options_t;

/* 0 and *out (caller owns), or SL_ENOMEM. STORE, METRICS borrowed. */
int sld_topics_new(sld_store_t *store, sld_metrics_t *metrics,
                   const sld_topics_options_t *opts, sld_topics_t **out);
void sld_topics_destroy(sld_topics_t **self_p);

/* Topic NAME for a client's publish inside TXN, created with the default
 * retention when new. 0 and *id; SL_EINVAL (bad or reserved name) with
 * the reason in ERR; SL_EFULL / SL_ESTORE from the store. */
int sld_topics_resolve(sld_topics_t *self, sld_txn_t *txn, const char *name,
                       uint32_t *id, char *err, size_t errlen);

/* Operator: create NAME or change its retention (0 = the default); *id is
 * the topic's id. */
int sld_topics_create(sld_topics_t *self, sld_txn_t *txn, const char *name,
                      uint64_t max_age_ms, uint64_t max_bytes, uint32_t *id,
                      char *err, size_t errlen);

/* The dedup window for msg-id headers, in microseconds. */
uint64_t sld_topics_dedup_window_us(const sld_topics_t *self);

/* Run one bounded trim pass when one is due (no transaction may be open).
 * Returns ms until the next pass is due. */
int sld_topics_trim(sld_topics_t *self, uint64_t now_ms);

/* Fill *out (free with sld_topics_info_free) with every topic. 0/SL_ENOMEM. */
int sld_topics_info(sld_topics_t *self, Sluice__TopicInfo ***out, size_t *n);
void sld_topics_info_free(Sluice__TopicInfo ***out, size_t n);

#endif
