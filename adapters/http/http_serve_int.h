/*  http_serve_int - what `serve`'s two files share: the server's settings
 *  and state (http_serve.c makes them) and the request handler
 *  (http_handler.c) libmicrohttpd calls on its thread. The struct is
 *  read-only once the daemon runs, but for the atomics.  */
#ifndef HTTP_SERVE_INT_H
#define HTTP_SERVE_INT_H
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "http_broker.h"
#include "http_token.h"

typedef struct {
    http_broker_t *broker;      /* owned by http_serve.c */
    http_tokens_t *tokens;      /* NULL with --no-auth */
    uint64_t max_body;          /* --max-body */
    uint32_t max_inflight;      /* --max-inflight */
    uint32_t max_batch;         /* messages per NDJSON request */
    atomic_uint inflight;       /* requests counted against max_inflight */
    atomic_bool draining;       /* SIGTERM: new requests get 503 */
    atomic_uint_fast64_t next_req;
} http_server_t;

/* libmicrohttpd's access handler and completion callback; CLS is the
 * http_server_t. */
enum MHD_Result http_handler_access(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version, const char *upload_data,
                                    size_t *upload_data_size, void **con_cls);
void http_handler_completed(void *cls, struct MHD_Connection *conn,
                            void **con_cls, enum MHD_RequestTerminationCode toe);

#endif
