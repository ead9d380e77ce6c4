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

#endif
