/*  console_serve - `sluice-console serve`: its options, the identities of
 *  the tokens file (or the client options' own with --no-auth, loopback
 *  only) with one libsluice client each, the web root and the `sluice`
 *  program, the libmicrohttpd daemon (a small pool of internal threads:
 *  requests are handled in console_http.c), and the loop that keeps idle
 *  clients' sessions alive until SIGTERM. Main thread.  */
#include "console_serve.h"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "console_exec.h"
#include "console_http.h"
#include "console_int.h"
#include "http_common.h"

static const char s_usage[] =
    "Usage: sluice-console serve --listen ADDR:PORT (--tokens FILE | --no-auth)\n"
    "                            [--web-root DIR] [--sluice PATH] [--timeout SECS]\n"
    "                            [broker connection options]\n"
    "\n"
    "The web console of a sluice broker (docs/console.md): the web app and its\n"
    "JSON API under /api/. Each token acts at the broker as its identity, so\n"
    "the broker's grants decide what it may see and do.\n"
    "\n"
    "  --listen ADDR:PORT      where to listen (default 127.0.0.1:8090; port 0:\n"
    "                          any free port, logged in the `listening` line)\n"
    "  --tokens FILE           bearer tokens (`sluice-console token add`, the\n"
    "                          format of `sluice-http token add`)\n"
    "  --no-auth               no tokens: every request acts as the client\n"
    "                          options' identity; loopback addresses only\n"
    "  --web-root DIR          the built web app (default " CONSOLE_WEB_ROOT ")\n"
    "  --sluice PATH           the `sluice` program for fixtures and replays\n"
    "                          (default: beside this program, else PATH)\n"
    "  --timeout SECS          broker calls and `sluice` runs (default 30)\n"
    "  --help                  this text\n"
    "\n" HTTP_CLIENT_USAGE;

enum {
    S_OPT_LISTEN = HTTP_OPT_OWN, S_OPT_TOKENS, S_OPT_NO_AUTH, S_OPT_WEB_ROOT,
    S_OPT_SLUICE, S_OPT_TIMEOUT,
};

typedef struct {
    http_client_opts_t client;
    const char *listen;
    const char *tokens;
    bool no_auth;
    const char *web_root;
    const char *sluice;
    uint64_t timeout_s;
} s_opts_t;

static int s_parse(s_opts_t *o, int argc, char **argv, bool *help)
{
    static const struct option options[] = {
        HTTP_CLIENT_OPTIONS,
        { "listen", required_argument, NULL, S_OPT_LISTEN },
        { "tokens", required_argument, NULL, S_OPT_TOKENS },
        { "no-auth", no_argument, NULL, S_OPT_NO_AUTH },
        { "web-root", required_argument, NULL, S_OPT_WEB_ROOT },
        { "sluice", required_argument, NULL, S_OPT_SLUICE },
        { "timeout", required_argument, NULL, S_OPT_TIMEOUT },
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
        case S_OPT_WEB_ROOT: o->web_root = optarg; break;
        case S_OPT_SLUICE: o->sluice = optarg; break;
        case S_OPT_TIMEOUT:
            if (http_parse_u64(optarg, &o->timeout_s) || !o->timeout_s
                || o->timeout_s > 3600)
                return http_usage_error(prog, "--timeout takes 1 to 3600 seconds");
            break;
        default:
            return http_option_error(prog, argv, opt);
        }
    }
    if (optind < argc)
        return http_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    return HTTP_EXIT_OK;
}

/* The identity name of a --no-auth client: its certificate's file name
 * without ".cert" (admin.cert: "admin"), "(plaintext)" without one. */
static void s_cert_name(const char *cert, char *out, size_t len)
{
    const char *base = strrchr(cert, '/');
    size_t n;

    if (!*cert) {
        snprintf(out, len, "(plaintext)");
        return;
    }
    base = base ? base + 1 : cert;
    n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".cert") == 0)
        n -= 5;
    snprintf(out, len, "%.*s", (int)n, base);
}

/* The identities and their clients. */
static int s_identities(s_opts_t *o, console_t *con)
{
    char err[1024];
    sl_options_t so;
    size_t i;
    int rc;

    if (o->no_auth)
        con->nids = 1;
    else {
        rc = http_tokens_open(o->client.prog, o->tokens, &o->client.conn, &con->tokens);
        if (rc)
            return rc;
        con->nids = http_tokens_identities(con->tokens);
    }
    con->ids = calloc(con->nids, sizeof *con->ids);
    if (!con->ids)
        return HTTP_EXIT_FAILED;
    for (i = 0; i < con->nids; i++) {
        console_id_t *id = &con->ids[i];

        pthread_mutex_init(&id->lock, NULL);
        if (o->no_auth) {
            snprintf(id->cert, sizeof id->cert, "%s", o->client.conn.cert);
            s_cert_name(id->cert, id->name, sizeof id->name);
        }
        else {
            snprintf(id->cert, sizeof id->cert, "%s", http_tokens_cert(con->tokens, i));
            snprintf(id->name, sizeof id->name, "%s", http_tokens_name(con->tokens, i));
        }
        http_client_options(&o->client, id->cert[0] ? id->cert : NULL, &so);
        so.name = "sluice-console";
        so.connect_timeout_ms = (int)con->timeout_s * 1000;
        so.block_ms = 0;
        rc = sl_options_check(&so, err, sizeof err);
        if (rc == 0)
            rc = sl_client_new(&so, &id->client);
        if (rc) {
            fprintf(stderr, "%s: identity %s: %s (%s)\n", o->client.prog, id->name,
                    err, sl_strerror(rc));
            return rc == SL_EINVAL ? HTTP_EXIT_USAGE : HTTP_EXIT_FAILED;
        }
    }
    return HTTP_EXIT_OK;
}

static void s_destroy(console_t *con)
{
    size_t i;

    for (i = 0; con->ids && i < con->nids; i++) {
        sl_client_destroy(&con->ids[i].client);
        free(con->ids[i].marks);
        pthread_mutex_destroy(&con->ids[i].lock);
    }
    free(con->ids);
    http_tokens_destroy(&con->tokens);
}

/* The web root to serve: DIR when it holds index.html, else "" (then /
 * answers 503 saying how to build the app). */
static void s_web_root(console_t *con, const char *dir)
{
    char index[PATH_MAX + 16];
    struct stat st;

    snprintf(index, sizeof index, "%s/index.html", dir);
    if (stat(index, &st) == 0 && S_ISREG(st.st_mode))
        snprintf(con->web_root, sizeof con->web_root, "%s", dir);
    else
        http_log(HTTP_LOG_WARN, "no_web_root", "dir=%s msg=\"no index.html: "
                 "only /api/ is served\"", dir);
}

/* Keep idle clients' sessions alive: each client does its pending I/O
 * (heartbeats) when no request holds it. */
static void s_tick(console_t *con)
{
    size_t i;

    for (i = 0; i < con->nids; i++)
        if (pthread_mutex_trylock(&con->ids[i].lock) == 0) {
            sl_poll(con->ids[i].client, 0);
            pthread_mutex_unlock(&con->ids[i].lock);
        }
}

int console_serve_main(int argc, char **argv, const char *self_exe)
{
    s_opts_t o;
    console_t con;
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    struct MHD_OptionItem mo[8];
    struct MHD_Daemon *d = NULL;
    const union MHD_DaemonInfo *info;
    unsigned flags;
    bool help = false;
    size_t k = 0;
    int rc;

    memset(&o, 0, sizeof o);
    memset(&con, 0, sizeof con);
    o.client.prog = "sluice-console serve";
    o.listen = "127.0.0.1:8090";
    o.web_root = CONSOLE_WEB_ROOT;
    o.timeout_s = 30;
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
    con.timeout_s = (unsigned)o.timeout_s;
    snprintf(con.endpoint, sizeof con.endpoint, "%s", o.client.conn.endpoint);
    snprintf(con.server_key, sizeof con.server_key, "%s", o.client.conn.server_key);
    console_exec_find(o.sluice, self_exe, con.sluice, sizeof con.sluice);
    s_web_root(&con, o.web_root);
    rc = s_identities(&o, &con);
    if (rc)
        goto done;
    http_signals_catch();
    mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_EXTERNAL_LOGGER,
                                        (intptr_t)http_log_mhd, NULL };
    mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_SOCK_ADDR, 0, &sa };
    mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_NOTIFY_COMPLETED,
                                        (intptr_t)console_completed, &con };
    mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_CONNECTION_TIMEOUT, 120, NULL };
    /* A few threads: a fixtures run or a replay (seconds) of one user does
     * not hold up the others' pages. */
    mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_THREAD_POOL_SIZE, 4, NULL };
    mo[k++] = (struct MHD_OptionItem) { MHD_OPTION_END, 0, NULL };
    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    d = MHD_start_daemon(flags, 0, NULL, NULL, console_access, &con,
                         MHD_OPTION_ARRAY, mo, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "%s: cannot listen on %s (in use, or not an address of "
                "this host)\n", o.client.prog, o.listen);
        rc = HTTP_EXIT_FAILED;
        goto done;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    http_log(HTTP_LOG_INFO, "listening", "addr=%.*s port=%u auth=%s identities=%zu "
             "broker=%s web_root=%s sluice=%s", (int)(strrchr(o.listen, ':') - o.listen),
             o.listen, info ? (unsigned)info->port : 0, o.no_auth ? "none" : "tokens",
             con.nids, con.endpoint, con.web_root[0] ? con.web_root : "-", con.sluice);
    while (!http_stopping()) {
        struct timespec ts = { 0, 200 * 1000000 };

        nanosleep(&ts, NULL);
        s_tick(&con);
    }
    http_log(HTTP_LOG_INFO, "stopping", "%s", "");
    MHD_stop_daemon(d);
    http_log(HTTP_LOG_INFO, "stopped", "%s", "");
    rc = HTTP_EXIT_OK;
done:
    s_destroy(&con);
    return rc;
}
