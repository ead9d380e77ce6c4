/*  http_common - client options, the log line, signals and small parsers
 *  shared by `sluice-http serve`, `push` and `token`. The only mutable
 *  file-scope state is the stop flag the signal handler sets (a handler
 *  has nowhere else to write). Logging may be called from any thread.  */
#include "http_common.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop;

bool http_client_option(http_client_opts_t *self, int opt, const char *arg)
{
    switch (opt) {
    case HTTP_OPT_BROKER:     self->args.broker = arg; return true;
    case HTTP_OPT_HOME:       self->args.home = arg; return true;
    case HTTP_OPT_CERT:       self->args.cert = arg; return true;
    case HTTP_OPT_SERVER_KEY: self->args.server_key = arg; return true;
    case HTTP_OPT_PLAINTEXT:  self->args.plaintext = true; return true;
    default:                  return false;
    }
}

int http_client_resolve(http_client_opts_t *self)
{
    char err[512] = "";
    int rc = sl_connect_resolve(&self->args, &self->conn, err, sizeof err);

    if (rc == 0)
        return HTTP_EXIT_OK;
    return http_usage_error(self->prog, "%s (%s)", err[0] ? err : sl_strerror(rc),
                            sl_strerror(rc));
}

void http_client_options(const http_client_opts_t *self, const char *cert,
                         sl_options_t *out)
{
    sl_options_init(out);
    sl_connect_apply(&self->conn, out);
    if (cert)
        out->cert = cert;
}

int http_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    return HTTP_EXIT_USAGE;
}

const char *http_bad_option(char **argv, int opt, char *buf, size_t len)
{
    if (opt > 0 && opt < 256)
        snprintf(buf, len, "-%c", opt);
    else
        snprintf(buf, len, "%s", argv[optind - 1]);
    return buf;
}

int http_option_error(const char *prog, char **argv, int opt)
{
    char bad[128];

    return http_usage_error(prog, opt == ':' ? "option '%s' needs a value"
                            : "unknown option '%s'",
                            http_bad_option(argv, optopt, bad, sizeof bad));
}

/* ------------------------------------------------------------- logging */

void http_log(http_log_level_t level, const char *event, const char *fmt, ...)
{
    static const char *const names[] = { "info", "warn", "error" };
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int k;
    va_list ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof line - n, ".%03dZ %s %s ",
                 (int)(tv.tv_usec / 1000), names[level], event);
    n += k > 0 ? (size_t)k : 0;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (k > 0)
        n += (size_t)k < sizeof line - n - 1 ? (size_t)k : sizeof line - n - 2;
    while (n > 0 && line[n - 1] == ' ')
        n--;
    line[n++] = '\n';
    /* One write so lines of several threads never interleave; a log that
     * cannot be written has nowhere to report that. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

const char *http_log_quote(const char *text, char *buf, size_t len)
{
    size_t i, n = 0;
    bool plain = *text != '\0';

    for (i = 0; text[i] && plain; i++)
        plain = (unsigned char)text[i] > ' ' && text[i] != '"' && text[i] != 0x7f;
    if (plain) {
        snprintf(buf, len, "%s", text);
        return buf;
    }
    if (len < 3) {
        buf[0] = '\0';
        return buf;
    }
    buf[n++] = '"';
    for (i = 0; text[i] && n + 3 < len; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c == '"' || c == '\\')
            buf[n++] = '\\';
        buf[n++] = c < ' ' || c == 0x7f ? '?' : (char)c;
    }
    buf[n++] = '"';
    buf[n] = '\0';
    return buf;
}

void http_log_mhd(void *cls, const char *fmt, va_list ap)
{
    char text[512], q[600];
    size_t n;

    (void) cls;
    vsnprintf(text, sizeof text, fmt, ap);
    n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = '\0';
    http_log(HTTP_LOG_WARN, "http_server", "msg=%s", http_log_quote(text, q, sizeof q));
}

/* ------------------------------------------------------------- signals */

static void s_on_signal(int sig)
{
    s_stop = 1;
    signal(sig, SIG_DFL);       /* a second one kills as usual */
}

void http_signals_catch(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool http_stopping(void)
{
    return s_stop != 0;
}

/* ------------------------------------------------------------- parsers */

int http_listen_addr(const char *text, struct sockaddr_storage *sa,
                         socklen_t *salen, bool *loopback, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(text, ':'), *h = text;
    size_t hl;
    uint64_t port;
    struct addrinfo hints, *res = NULL;
    int rc;

    if (!colon || http_parse_u64(colon + 1, &port) || port > 65535) {
        snprintf(err, errlen, "--listen %s: expected ADDR:PORT, e.g. "
                 "127.0.0.1:8080", text);
        return -1;
    }
    hl = (size_t)(colon - text);
    if (hl >= 2 && text[0] == '[' && text[hl - 1] == ']')
        h++, hl -= 2;
    if (hl == 0 || hl >= sizeof host) {
        snprintf(err, errlen, "--listen %s: no address before the port", text);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc || !res) {
        snprintf(err, errlen, "--listen %s: %s", text, gai_strerror(rc));
        return -1;
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *salen = res->ai_addrlen;
    freeaddrinfo(res);
    if (sa->ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;

        in->sin_port = htons((uint16_t)port);
        *loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

        in6->sin6_port = htons((uint16_t)port);
        *loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)
                 || (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)
                     && in6->sin6_addr.s6_addr[12] == 127);
    }
    return 0;
}


int http_parse_u64(const char *text, uint64_t *out)
{
    uint64_t v = 0;

    if (!text || !*text)
        return -1;
    for (; *text; text++) {
        if (*text < '0' || *text > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*text - '0');
    }
    *out = v;
    return 0;
}

int http_parse_size(const char *text, uint64_t *out)
{
    char num[32];
    size_t n = strspn(text, "0123456789");
    const char *unit = text + n;
    uint64_t v, mul = 1;

    if (n == 0 || n >= sizeof num)
        return -1;
    memcpy(num, text, n);
    num[n] = '\0';
    if (http_parse_u64(num, &v) < 0)
        return -1;
    switch (*unit) {
    case 'K': case 'k': mul = 1ull << 10; unit++; break;
    case 'M': case 'm': mul = 1ull << 20; unit++; break;
    case 'G': case 'g': mul = 1ull << 30; unit++; break;
    default: break;
    }
    if (mul > 1 && *unit == 'i')
        unit++;
    if (*unit == 'B')
        unit++;
    if (*unit || (v && mul > UINT64_MAX / v))
        return -1;
    *out = v * mul;
    return 0;
}

int http_server_check(const char *prog, const char *listen, const char *tokens,
                      bool no_auth, struct sockaddr_storage *sa, socklen_t *salen)
{
    char err[512];
    bool loopback = false;

    if (!tokens == !no_auth)
        return http_usage_error(prog, "give --tokens FILE, or --no-auth for a "
                                "loopback address");
    if (http_listen_addr(listen, sa, salen, &loopback, err, sizeof err) < 0)
        return http_usage_error(prog, "%s", err);
    if (no_auth && !loopback)
        return http_usage_error(prog, "--no-auth is refused on %s, which is not "
                                "a loopback address: give --tokens FILE", listen);
    return HTTP_EXIT_OK;
}

uint64_t http_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
