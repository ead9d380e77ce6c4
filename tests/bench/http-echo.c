/*  http-echo - the bare libmicrohttpd server `tests/bench/http-bench`
 *  measures sluice-http against: the same daemon flags as `sluice-http
 *  serve` (one internal polling thread on poll(), suspend/resume allowed), reads each
 *  request's body and answers 200 with it. The ceiling an HTTP ingest on
 *  libmicrohttpd can reach on this machine. A benchmark tool, not a test.
 *  Usage: http-echo PORT (0: a free port, printed). Stops on SIGTERM.  */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *data;
    size_t len;
} s_body_t;

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void) sig;
    s_stop = 1;
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    s_body_t *b = *con_cls;
    struct MHD_Response *resp;
    enum MHD_Result ret;

    (void) cls, (void) url, (void) method, (void) version;
    if (!b) {
        *con_cls = b = calloc(1, sizeof *b);
        return b ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        char *p = realloc(b->data, b->len + *upload_size);

        if (!p)
            return MHD_NO;
        memcpy(p + b->len, upload, *upload_size);
        b->data = p;
        b->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    resp = MHD_create_response_from_buffer(b->len, b->data, MHD_RESPMEM_MUST_FREE);
    b->data = NULL;
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    s_body_t *b = *con_cls;

    (void) cls, (void) conn, (void) toe;
    if (b) {
        free(b->data);
        free(b);
    }
    *con_cls = NULL;
}

int main(int argc, char **argv)
{
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    int port = argc > 1 ? atoi(argv[1]) : 0;

    signal(SIGTERM, s_on_signal);
    signal(SIGINT, s_on_signal);
    signal(SIGPIPE, SIG_IGN);
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL
                         | MHD_ALLOW_SUSPEND_RESUME,
                         (uint16_t)port, NULL, NULL, s_access, NULL,
                         MHD_OPTION_NOTIFY_COMPLETED, s_completed, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "http-echo: cannot listen on port %d\n", port);
        return 1;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("port=%u\n", info ? (unsigned)info->port : 0);
    fflush(stdout);
    while (!s_stop)
        pause();
    MHD_stop_daemon(d);
    return 0;
}
