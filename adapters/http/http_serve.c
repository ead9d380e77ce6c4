/*  http_serve - `sluice-http serve`: its options, the clients it opens
 *  (one per identity of the tokens file, or the client options' own with
 *  --no-auth), the libmicrohttpd daemon, and the clean stop on SIGTERM:
 *  stop accepting, refuse new requests with 503, let the broker thread
 *  answer what is in flight (after its confirms, or 503), then close.
 *  Main thread; requests are handled in http_handler.c.  */
#include "http_serve.h"
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "http_common.h"
#include "http_serve_int.h"

static const char s_usage[] =
    "Usage: sluice-http serve [--listen ADDR:PORT] (--tokens FILE | --no-auth)\n"
    "                         [options] [broker connection options]\n"
    "\n"
    "HTTP ingest and pull for a sluice broker (docs/adapters.md):\n"
    "  POST /v1/topics/TOPIC                    one message, or NDJSON lines\n"
    "  GET  /v1/subscriptions/NAME/messages     long-poll pull\n"
    "  POST /v1/subscriptions/NAME/ack | nack   settle pulled messages\n"
    "  GET  /healthz, /readyz\n"
    "200 is sent only after the broker's durable ack.\n"
    "\n"
    "  --listen ADDR:PORT      where to listen (default 127.0.0.1:8080; port 0:\n"
    "                          any free port, logged in the `listening` line)\n"
    "  --tokens FILE           bearer tokens (`sluice-http token add`): each\n"
    "                          maps to a broker identity whose grants apply\n"
    "  --no-auth               no tokens: every request acts as the client\n"
    "                          options' identity; loopback addresses only\n"
    "  --tls-cert FILE         serve HTTPS with this certificate (PEM) ...\n"
    "  --tls-key FILE          ... and its key\n"
    "  --max-inflight N        requests in flight at most (default 1024);\n"
    "                          beyond: 429 with Retry-After\n"
    "  --max-body BYTES        largest request body (default 16MiB): 413\n"
    "  --max-batch N           most messages in one NDJSON request (default 10000)\n"
    "  --publish-timeout SECS  answer 503 when the broker has not confirmed a\n"
    "                          request by then (default 10)\n"
    "  --help                  this text\n"
    "\n" HTTP_CLIENT_USAGE;

enum {
    S_OPT_LISTEN = HTTP_OPT_OWN, S_OPT_TOKENS, S_OPT_NO_AUTH, S_OPT_TLS_CERT,
    S_OPT_TLS_KEY, S_OPT_MAX_INFLIGHT, S_OPT_MAX_BODY, S_OPT_MAX_BATCH,
    S_OPT_PUBLISH_TIMEOUT,
};

typedef struct {
    http_client_opts_t client;
    const char *listen;
    const char *tokens;
    bool no_auth;
    const char *tls_cert;
    const char *tls_key;
    uint64_t max_inflight;
    uint64_t max_body;
    uint64_t max_batch;
    uint64_t publish_timeout_s;
} s_opts_t;

static int s_parse(s_opts_t *o, int argc, char **argv, bool *help)
{
    static const struct option options[] = {
        HTTP_CLIENT_OPTIONS,
        { "listen", required_argument, NULL, S_OPT_LISTEN },
        { "tokens", required_argument, NULL, S_OPT_TOKENS },
        { "no-auth", no_argument, NULL, S_OPT_NO_AUTH },
        { "tls-cert", required_argument, NULL, S_OPT_TLS_CERT },
        { "tls-key", required_argument, NULL, S_OPT_TLS_KEY },
        { "max-inflight", required_argument, NULL, S_OPT_MAX_INFLIGHT },
        { "max-body", required_argument, NULL, S_OPT_MAX_BODY },
        { "max-batch", required_argument, NULL, S_OPT_MAX_BATCH },
        { "publish-timeout", required_argument, NULL, S_OPT_PUBLISH_TIMEOUT },
        { NULL, 0, NULL, 0 },
    };
    const char *prog = o->client.prog;
    int opt;

    opterr = 0;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        if (http_client_option(&o->client, opt, optarg))
            continue;
        switch (opt) {
        case 'h': *help = true; return HTTP_EXIT_OK;
        case S_OPT_LISTEN: o->listen = optarg; break;
        case S_OPT_TOKENS: o->tokens = optarg; break;
        case S_OPT_NO_AUTH: o->no_auth = true; break;
        case S_OPT_TLS_CERT: o->tls_cert = optarg; break;
        case S_OPT_TLS_KEY: o->tls_key = optarg; break;
        case S_OPT_MAX_INFLIGHT:
            if (http_parse_u64(optarg, &o->max_inflight) || !o->max_inflight
                || o->max_inflight > 1000000)
                return http_usage_error(prog, "--max-inflight takes 1 to 1000000");
            break;
        case S_OPT_MAX_BODY:
            if (http_parse_size(optarg, &o->max_body) || !o->max_body
                || o->max_body > (1ull << 30))
                return http_usage_error(prog, "--max-body takes a size from 1 "
                                        "byte to 1GiB (e.g. 16MiB)");
            break;
        case S_OPT_MAX_BATCH:
            if (http_parse_u64(optarg, &o->max_batch) || !o->max_batch
                || o->max_batch > 100000)
                return http_usage_error(prog, "--max-batch takes 1 to 100000");
            break;
        case S_OPT_PUBLISH_TIMEOUT:
            if (http_parse_u64(optarg, &o->publish_timeout_s)
                || !o->publish_timeout_s || o->publish_timeout_s > 3600)
                return http_usage_error(prog, "--publish-timeout takes 1 to "
                                        "3600 seconds");
            break;
        default:
            return http_option_error(prog, argv, opt);
        }
    }
    if (optind < argc)
        return http_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    if (!o->tls_cert != !o->tls_key)
        return http_usage_error(prog, "--tls-cert and --tls-key go together");
    return HTTP_EXIT_OK;
}

/* The whole of PATH, NUL-terminated (caller frees), or NULL with errno. */
static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1 << 20)
        && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
            errno = EIO;
        }
        else
            buf[n] = '\0';
    }
    fclose(f);
    return buf;
}

/* The clients: one per identity of the tokens file, or one. */
static int s_clients(s_opts_t *o, http_server_t *srv, sl_options_t **opts,
                     const char ***names, size_t *n)
{
    char err[1024];
    size_t i;
    int rc;

    if (o->no_auth) {
        *n = 1;
        *opts = calloc(1, sizeof **opts);
        *names = calloc(1, sizeof **names);
        if (!*opts || !*names)
            return HTTP_EXIT_FAILED;
        http_client_options(&o->client, NULL, &(*opts)[0]);
        (*names)[0] = o->client.conn.cert[0] ? o->client.conn.cert : "(plaintext)";
    }
    else {
        rc = http_tokens_open(o->client.prog, o->tokens, &o->client.conn, &srv->tokens);
        if (rc)
            return rc;
        *n = http_tokens_identities(srv->tokens);
        *opts = calloc(*n, sizeof **opts);
        *names = calloc(*n, sizeof **names);
        if (!*opts || !*names)
            return HTTP_EXIT_FAILED;
        for (i = 0; i < *n; i++) {
            http_client_options(&o->client, http_tokens_cert(srv->tokens, i),
                                &(*opts)[i]);
            (*names)[i] = http_tokens_name(srv->tokens, i);
        }
    }
    for (i = 0; i < *n; i++) {
        sl_options_t *so = &(*opts)[i];

        so->name = "sluice-http";
        so->block_ms = 0;               /* the broker thread never blocks */
        /* A publish leaves at the broker thread's next turn, not after a
         * linger: the jobs the thread took together make the batch, and
         * a lone request does not wait for company (http_broker.c). */
        so->linger_ms = 0;
        so->heartbeat_ms = 500;         /* a lost broker is seen within 2 s */
        so->dead_after_ms = 2000;
        so->connect_timeout_ms = 5000;
        rc = sl_options_check(so, err, sizeof err);
        if (rc) {
            fprintf(stderr, "%s: identity %s: %s (%s)\n", o->client.prog,
                    (*names)[i], err, sl_strerror(rc));
            return rc == SL_EINVAL ? HTTP_EXIT_USAGE : HTTP_EXIT_FAILED;
        }
    }
    return HTTP_EXIT_OK;
}

/* Wait until every counted request has been answered, at most MS. */
static void s_wait_idle(http_server_t *srv, unsigned ms)
{
    struct timespec ts = { 0, 20 * 1000000 };
    unsigned i;

    for (i = 0; i < ms / 20 && atomic_load(&srv->inflight) > 0; i++)
        nanosleep(&ts, NULL);
}

int http_serve_main(int argc, char **argv)
{
    s_opts_t o;
    http_server_t srv;
    http_broker_config_t bc;
    sl_options_t *opts = NULL;
    const char **names = NULL;
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    struct MHD_OptionItem mo[10];
    struct MHD_Daemon *d = NULL;
    const union MHD_DaemonInfo *info;
    MHD_socket listen_fd;
    char *tls_cert = NULL, *tls_key = NULL, err[512];
    unsigned flags;
    bool help = false;
    size_t n = 0, k = 0;
    int rc;

    memset(&o, 0, sizeof o);
    memset(&srv, 0, sizeof srv);
    o.client.prog = "sluice-http serve";
    o.listen = "127.0.0.1:8080";
    o.max_inflight = 1024;
    o.max_body = 16u << 20;
    o.max_batch = 10000;
    o.publish_timeout_s = 10;
    rc = s_parse(&o, argc, argv, &help);
    if (rc || help) {
        if (help)
            fputs(s_usage, stdout);
        return rc;
    }
    rc = http_server_check(o.client.prog, o.listen, o.tokens, o.no_auth, &sa, &salen);
    if (rc)
        return rc;
    rc = http_client_resolve(&o.client);
    if (rc)
        return rc;
    if (o.tls_cert && (!(tls_cert = s_slurp(o.tls_cert)) || !(tls_key = s_slurp(o.tls_key)))) {
        fprintf(stderr, "%s: cannot read %s: %s\n", o.client.prog,
                tls_cert ? o.tls_key : o.tls_cert, strerror(errno));
        rc = HTTP_EXIT_FAILED;
        goto done;
    }
    rc = s_clients(&o, &srv, &opts, &names, &n);
    if (rc)
        goto done;
    srv.max_body = o.max_body;
    srv.max_inflight = (uint32_t)o.max_inflight;
    srv.max_batch = (uint32_t)o.max_batch;
    atomic_init(&srv.inflight, 0);
    atomic_init(&srv.draining, false);
    atomic_init(&srv.next_req, 0);
    http_signals_catch();
    memset(&bc, 0, sizeof bc);
    bc.clients = opts;
    bc.names = names;
    bc.nclients = n;
    bc.publish_timeout_ms = (uint32_t)o.publish_timeout_s * 1000;
    bc.drain_ms = 10000;
    if (http_broker_new(&bc, &srv.broker, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", o.client.prog, err);
        rc = HTTP_EXIT_FAILED;
        goto done;
    }
    /* The logger first: libmicrohttpd uses its own until it sees it. */
    mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_EXTERNAL_LOGGER,
                                        (intptr_t)http_log_mhd, NULL };
    mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_SOCK_ADDR, 0, &sa };
    mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_NOTIFY_COMPLETED,
                                        (intptr_t)http_handler_completed, &srv };
    mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_CONNECTION_TIMEOUT, 60, NULL };
    if (tls_cert) {
        mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_MEM_CERT, 0, tls_cert };
        mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_MEM_KEY, 0, tls_key };
    }
    mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_END, 0, NULL };
    /* poll(), not epoll: libmicrohttpd 0.9.75 with epoll stalled to a few
     * hundred requests/s beyond ~100 keep-alive connections under wrk
     * (tests/bench/http-bench), poll() did not. */
    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL
          | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (tls_cert)
        flags |= MHD_USE_TLS;
    d = MHD_start_daemon(flags, 0, NULL, NULL, http_handler_access, &srv,
                         MHD_OPTION_ARRAY, mo, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "%s: cannot listen on %s (in use, not an address of "
                "this host, or a bad TLS certificate or key)\n", o.client.prog,
                o.listen);
        rc = HTTP_EXIT_FAILED;
        goto done;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    http_log(HTTP_LOG_INFO, "listening", "addr=%.*s port=%u tls=%s auth=%s "
             "identities=%zu broker=%s", (int)(strrchr(o.listen, ':') - o.listen),
             o.listen, info ? (unsigned)info->port : 0, tls_cert ? "on" : "off",
             o.no_auth ? "none" : "tokens", n, o.client.conn.endpoint);
    while (!http_stopping()) {
        struct timespec ts = { 0, 100 * 1000000 };

        nanosleep(&ts, NULL);
    }
    http_log(HTTP_LOG_INFO, "stopping", "inflight=%u", atomic_load(&srv.inflight));
    /* New connections are no longer taken; requests on open ones get 503;
     * the broker thread answers everything in flight before it ends. */
    atomic_store(&srv.draining, true);
    listen_fd = MHD_quiesce_daemon(d);
    http_broker_stop(srv.broker);
    s_wait_idle(&srv, 2000);
    MHD_stop_daemon(d);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);       /* ours after quiesce; nothing to lose */
    http_log(HTTP_LOG_INFO, "stopped", "requests=%" PRIu64,
             (uint64_t)atomic_load(&srv.next_req));
    rc = HTTP_EXIT_OK;
done:
    http_broker_destroy(&srv.broker);
    http_tokens_destroy(&srv.tokens);
    free(opts);
    free(names);
    free(tls_cert);
    free(tls_key);
    return rc;
}
