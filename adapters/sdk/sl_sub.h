/*  sl_sub - the subscriptions part of a client: subscribe / resubscribe,
 *  delivery queues, credit, acks, dedupe, and the sl_msg_t accessors (their
 *  public calls are in sluice.h); this header only creates and destroys
 *  the part. Client thread only. Knows the session and the key map.  */
#ifndef SL_SUB_H
#define SL_SUB_H
#include "sl_session.h"

typedef struct sli_subs sli_subs_t;

/* The subscriptions part on SESS (borrowed; outlives it), registered with
 * it. 0 and *out (caller owns), or SL_ENOMEM. */
int sli_subs_new(sli_session_t *sess, sli_subs_t **out);

/* A message listed rather than delivered (sl_dlq_list): the envelope ENV
 * (LEN bytes, copied) stored at OFFSET of TOPIC (copied; NULL or "": the
 * envelope's) with id TOPIC_ID; attempt 0, no subscription, nothing to ack.
 * 0 and *out (caller owns: sl_msg_destroy), SL_EMALFORMED, SL_ENOMEM. */
int sli_msg_detached(const char *topic, uint32_t topic_id, uint64_t offset, const void *env,
                     size_t len, sl_msg_t **out);

/* Detach every subscription (live messages keep theirs valid). NULL-safe;
 * sets *self_p to NULL. Before the session goes. */
void sli_subs_destroy(sli_subs_t **self_p);

#endif
