/*  sld_topicstats - what the store does not keep about a topic but
 *  operators ask for: payload bytes published to it and when it was last
 *  published to, since the broker started. Indexed by topic id (ids are
 *  small and never reused). Numbers of a write attempt are pending until
 *  its commit: an aborted or retried attempt counts nothing. Owned by the
 *  server; read by the metrics snapshot and the alert rules. Broker
 *  thread only; it persists nothing.  */
#ifndef SLD_TOPICSTATS_H
#define SLD_TOPICSTATS_H
#include <stdbool.h>
#include <stdint.h>

typedef struct sld_topicstats sld_topicstats_t;

/* 0 and *out (caller owns), or SL_ENOMEM. */
int sld_topicstats_new(sld_topicstats_t **out);
/* NULL-safe; nulls *self_p. */
void sld_topicstats_destroy(sld_topicstats_t **self_p);

/* A write attempt begins: forget what the last one left pending. */
void sld_topicstats_attempt(sld_topicstats_t *self);

/* The open attempt published one message of BYTES payload bytes to topic
 * ID. 0 or SL_ENOMEM (the message is then not counted). */
int sld_topicstats_add(sld_topicstats_t *self, uint32_t id, uint64_t bytes);

/* The attempt committed at NOW_MS (monotonic): its numbers count. */
void sld_topicstats_committed(sld_topicstats_t *self, uint64_t now_ms);

/* Payload bytes published to topic ID since the start (0: none). */
uint64_t sld_topicstats_bytes(const sld_topicstats_t *self, uint32_t id);

/* When topic ID was last published to (monotonic ms), 0 when not since
 * the start. */
uint64_t sld_topicstats_last_ms(const sld_topicstats_t *self, uint32_t id);

#endif
