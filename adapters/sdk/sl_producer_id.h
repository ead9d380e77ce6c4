/*  sl_producer_id - the producer id: read from its file (created with a
 *  random id on first use) and locked for as long as the client lives, or
 *  a random one for a client without a file. Owns nothing: the caller
 *  keeps the locked descriptor and closes it. Any thread (no state). Does
 *  not know the session or the broker; the broker learns the id in Hello.  */
#ifndef SL_PRODUCER_ID_H
#define SL_PRODUCER_ID_H
#include <stddef.h>
#include <stdint.h>
#include "slc.h"

/* LEN random bytes at BUF (getrandom). 0 or SL_ESYS. */
int sli_random_bytes(void *buf, size_t len);

/* Read the id in the file PATH into ID, or create the file with a random
 * one; the file stays locked (flock) while *FD, set on 0, is open: the
 * caller closes it when the client goes. 0, SL_EBUSY (another live client
 * holds the file), SL_EINVAL (the file holds no id), SL_ESYS; the reason
 * in ERR (ERRLEN bytes; may be NULL/0). */
int sli_producer_id_open(const char *path, uint8_t id[SLC_PRODUCER_ID_LEN],
                         int *fd, char *err, size_t errlen);

#endif
