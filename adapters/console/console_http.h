/*  console_http - libmicrohttpd's callbacks for `sluice-console serve`
 *  (console_http.c): the access handler (CLS is the console_t) and the
 *  completion callback that frees a request's body. MHD's threads.  */
#ifndef CONSOLE_HTTP_H
#define CONSOLE_HTTP_H
#include <microhttpd.h>

enum MHD_Result console_access(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls);

void console_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                       enum MHD_RequestTerminationCode toe);

#endif
