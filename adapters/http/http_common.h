/*  http_common - what every `sluice-http` subcommand shares: the client
 *  options (--broker, --home, --cert, --server-key, --insecure-plaintext and
 *  the SLUICE_* variables, settled by sl_connect_resolve the way `sluice`
 *  settles them), the one-line log (`TIME LEVEL EVENT key=value...` on
 *  stderr), SIGTERM/SIGINT as a flag, and a few small parsers (among them
 *  --listen's address). Shared with sluice-console through
 *  adapter_token_lib (adapters/http/meson.build).
 *  Any thread may log (one write(2) per line); the rest is for the main
 *  thread. Includes only sluice.h of the project.  */
#ifndef HTTP_COMMON_H
#define HTTP_COMMON_H
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "sluice.h"

/* Exit codes of every subcommand (as `sluice`'s, docs/adapters.md). */
enum {
    HTTP_EXIT_OK = 0,
    HTTP_EXIT_FAILED = 1,       /* the run failed (cannot listen, bad file) */
    HTTP_EXIT_UNREACHABLE = 2,  /* the broker could not be reached at start */
    HTTP_EXIT_USAGE = 64,       /* bad command line */
};

/* Option ids of the client options; a subcommand's own start at
 * HTTP_OPT_OWN. */
enum {
    HTTP_OPT_BROKER = 256,
    HTTP_OPT_HOME,
    HTTP_OPT_CERT,
    HTTP_OPT_SERVER_KEY,
    HTTP_OPT_PLAINTEXT,
    HTTP_OPT_OWN = 300,
};

#define HTTP_CLIENT_OPTIONS                                          \
    { "broker", required_argument, NULL, HTTP_OPT_BROKER },          \
    { "home", required_argument, NULL, HTTP_OPT_HOME },              \
    { "cert", required_argument, NULL, HTTP_OPT_CERT },              \
    { "server-key", required_argument, NULL, HTTP_OPT_SERVER_KEY },  \
    { "insecure-plaintext", no_argument, NULL, HTTP_OPT_PLAINTEXT }, \
    { "help", no_argument, NULL, 'h' }

#define HTTP_CLIENT_USAGE                                                     \
    "Broker connection (as `sluice`, docs/cli.md):\n"                        \
    "  --broker ENDPOINT       default $SLUICE_BROKER, else the --home\n"      \
    "                          directory's endpoint file, else\n"              \
    "                          " SL_DEFAULT_ENDPOINT "\n"                       \
    "  --home DIR              the broker's data directory: DIR/server.pub,\n" \
    "                          DIR/admin.cert, DIR/endpoint ($SLUICE_HOME)\n"  \
    "  --cert FILE             this client's certificate ($SLUICE_CERT)\n"    \
    "  --server-key KEY|FILE   the broker's public key ($SLUICE_SERVER_KEY)\n" \
    "  --insecure-plaintext    no keys: a broker started with\n"              \
    "                          --insecure-plaintext\n"

/* The client options as typed, then as settled. */
typedef struct {
    const char *prog;           /* "sluice-http serve": for messages */
    sl_connect_args_t args;     /* as typed (strings borrowed from argv) */
    sl_connect_t conn;          /* after http_client_resolve */
} http_client_opts_t;

/* Handle OPT (one of HTTP_OPT_BROKER..HTTP_OPT_PLAINTEXT) with ARG.
 * Returns true when OPT was a client option. */
bool http_client_option(http_client_opts_t *self, int opt, const char *arg);

/* Settle the typed options and the environment (sl_connect_resolve).
 * HTTP_EXIT_OK, or HTTP_EXIT_USAGE after printing why. */
int http_client_resolve(http_client_opts_t *self);

/* Options for a client of SELF's endpoint and keys, with CERT (NULL = the
 * settled one) as its certificate. Strings borrowed from SELF and CERT. */
void http_client_options(const http_client_opts_t *self, const char *cert,
                         sl_options_t *out);

/* Print "PROG: MESSAGE\nTry 'PROG --help'." to stderr; HTTP_EXIT_USAGE. */
int http_usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The text of the option getopt_long just refused (for messages). */
const char *http_bad_option(char **argv, int opt, char *buf, size_t len);

/* getopt_long's ':' (OPT, a value missing) or an unknown option, as a
 * usage error of PROG: HTTP_EXIT_USAGE after printing it. */
int http_option_error(const char *prog, char **argv, int opt);

/* ------------------------------------------------------------- logging */

typedef enum { HTTP_LOG_INFO, HTTP_LOG_WARN, HTTP_LOG_ERROR } http_log_level_t;

/* One line to stderr: "2026-12-07T18:56:32.123Z info EVENT " then FMT
 * (key=value pairs by convention; a value with blanks is quoted by the
 * caller with http_log_quote). Thread-safe: one write(2). */
void http_log(http_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* TEXT as a log value: itself when it has no blank, '"' or control
 * character, else quoted with \" and \\ escapes, control characters as
 * '?'. Cut at LEN - 1 bytes. Returns BUF. */
const char *http_log_quote(const char *text, char *buf, size_t len);

/* libmicrohttpd's external logger (MHD_OPTION_EXTERNAL_LOGGER): its
 * messages as `warn http_server msg=...` lines. CLS unused. */
void http_log_mhd(void *cls, const char *fmt, va_list ap);

/* ------------------------------------------------------------- signals */

/* Make SIGTERM and SIGINT set the stop flag (a second one kills as usual)
 * and ignore SIGPIPE. */
void http_signals_catch(void);

/* True once SIGTERM or SIGINT arrived after http_signals_catch. */
bool http_stopping(void);

/* ------------------------------------------------------------- parsers */

/* Strict parsers, 0 or -1: decimal digits only; a size NUMBER[K|M|G][i][B]
 * (binary multiples, bare = bytes). */
int http_parse_u64(const char *text, uint64_t *out);
int http_parse_size(const char *text, uint64_t *out);

/* --listen ADDR:PORT ("[::1]:8080" for IPv6; port 0: any free one) into
 * SA / SALEN; *loopback says whether ADDR is 127.0.0.0/8 or ::1. 0, or -1
 * with the reason in ERR. */
int http_listen_addr(const char *text, struct sockaddr_storage *sa,
                     socklen_t *salen, bool *loopback, char *err, size_t errlen);

/* A server's --listen / --tokens / --no-auth as parsed: exactly one of
 * TOKENS and NO_AUTH, LISTEN resolved into SA / SALEN, and --no-auth only
 * on a loopback address. HTTP_EXIT_OK, or HTTP_EXIT_USAGE after printing
 * why. */
int http_server_check(const char *prog, const char *listen, const char *tokens,
                      bool no_auth, struct sockaddr_storage *sa, socklen_t *salen);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t http_now_ms(void);

#endif
