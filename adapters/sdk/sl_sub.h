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

/* Detach every subscription (live messages keep theirs valid). NULL-safe;
 * sets *self_p to NULL. Before the session goes. */
void sli_subs_destroy(sli_subs_t **self_p);

#endif
