/*  sl_pub - the publishing part of a client: unconfirmed ring, batches,
 *  confirms, retries, transient batches. The public calls (sl_publish,
 *  sl_flush, ...) are in sluice.h; this header only creates and destroys
 *  the part. Client thread only. Knows the session, nothing else.  */
#ifndef SL_PUB_H
#define SL_PUB_H
#include "sl_session.h"

typedef struct sli_pub sli_pub_t;

/* A publishing part on SESS (borrowed; outlives it), registered with it.
 * 0 and *out (caller owns), or SL_ENOMEM. */
int sli_pub_new(sli_session_t *sess, sli_pub_t **out);

/* Free every unconfirmed message (their callbacks are not called).
 * NULL-safe; sets *self_p to NULL. Before the session goes. */
void sli_pub_destroy(sli_pub_t **self_p);

#endif
