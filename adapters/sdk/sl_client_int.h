/*  sl_client_int - what an sl_client_t is: the handles of its parts. Read
 *  by the parts' public entry points (sl_publish finds its sli_pub_t here);
 *  only sl_client.c creates and destroys them. Private to adapters/sdk,
 *  never installed. Client thread only. Holds no state of its own but the
 *  producer id file's descriptor, which carries the file's lock.  */
#ifndef SL_CLIENT_INT_H
#define SL_CLIENT_INT_H
#include "sluice.h"

typedef struct sli_session sli_session_t;
typedef struct sli_pub sli_pub_t;
typedef struct sli_subs sli_subs_t;

struct sl_client {
    sli_session_t *sess;        /* the connection and its turn (sl_session.c) */
    sli_pub_t *pub;             /* publishing (sl_pub.c) */
    sli_subs_t *subs;           /* subscriptions (sl_sub.c) */
    int id_fd;                  /* locked producer id file, or -1 */
};

/* Copy what REPLY (borrowed, of the expected case) says to the caller's
 * places in ARG. 0 or a code (SL_ENOMEM), after which the caller's places
 * hold nothing to free. */
struct Sluice__Frame;
typedef int sli_admin_copy_fn(const struct Sluice__Frame *reply, void *arg);

/* One admin call (sl_admin.c): a request of Frame body case BODY carrying
 * MSG (borrowed), resent after a reconnect; a reply of case EXPECT handed
 * to COPY (NULL: nothing to copy) with ARG. 0, the broker's code (its text
 * in the sticky last error), SL_EMALFORMED for another reply, or what COPY
 * returns. */
int sli_admin_call(sl_client_t *client, int body, void *msg, int expect,
                   sli_admin_copy_fn *copy, void *arg);

#endif
