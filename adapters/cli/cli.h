/*  cli - what the source files of the `sluice` command share: the common
 *  options (--broker, --timeout, the keys: --cert, --server-key, --home,
 *  --insecure-plaintext; --help) and their parser, before or after the
 *  command; connecting, turning SDK result codes into messages and exit
 *  codes, parsing numbers, sizes, durations and times, aligned tables and
 *  JSON strings.
 *  Single-threaded program. The only mutable file-scope state is the SIGINT
 *  flag owned by sluice.c (see cli_interrupted). Uses only sluice.h.  */
#ifndef CLI_H
#define CLI_H
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "sluice.h"

/* Exit codes of every subcommand (docs/cli.md). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1,            /* some messages or the request failed */
    CLI_EXIT_UNREACHABLE = 2,       /* broker unreachable or no progress in time */
    CLI_EXIT_NOTRUN = 2,            /* routes test (offline): nothing could be
                                       tested (a file unreadable or invalid) */
    CLI_EXIT_AUTH = 3,              /* the broker did not admit our key (SL_EAUTH) */
    CLI_EXIT_USAGE = 64,            /* bad command line (EX_USAGE) */
    CLI_EXIT_INTERRUPTED = 130,     /* stopped by SIGINT, after a clean close */
};

/* Option ids. Every subcommand takes the common ones; its own options are
 * numbered from CLI_OPT_OWN so the ids never collide with short options. */
enum {
    CLI_OPT_BROKER = 256,
    CLI_OPT_TIMEOUT,
    CLI_OPT_CERT,
    CLI_OPT_SERVER_KEY,
    CLI_OPT_HOME,
    CLI_OPT_PLAINTEXT,
    CLI_OPT_OWN = 300,
};

#define CLI_COMMON_OPTIONS                                          \
    { "broker", required_argument, NULL, CLI_OPT_BROKER },          \
    { "timeout", required_argument, NULL, CLI_OPT_TIMEOUT },        \
    { "cert", required_argument, NULL, CLI_OPT_CERT },              \
    { "server-key", required_argument, NULL, CLI_OPT_SERVER_KEY },  \
    { "home", required_argument, NULL, CLI_OPT_HOME },              \
    { "insecure-plaintext", no_argument, NULL, CLI_OPT_PLAINTEXT }, \
    { "help", no_argument, NULL, 'h' }

/* The common options' lines for a subcommand's --help text: the key
 * options alone (for commands that explain --timeout their own way), or
 * all of them. */
#define CLI_KEY_USAGE                                                         \
    "  --cert FILE             this client's certificate ($SLUICE_CERT)\n"    \
    "  --server-key KEY|FILE   the broker's public key ($SLUICE_SERVER_KEY)\n" \
    "  --home DIR              the broker's data directory: DIR/server.pub,\n" \
    "                          DIR/admin.cert, DIR/endpoint ($SLUICE_HOME;\n"  \
    "                          default ./var/sluice when it has server.pub)\n" \
    "  --insecure-plaintext    no keys: a broker started with\n"              \
    "                          --insecure-plaintext\n"

#define CLI_COMMON_USAGE                                                      \
    "  --broker ENDPOINT       default $SLUICE_BROKER, else the --home\n"      \
    "                          directory's endpoint file, else\n"              \
    "                          " SL_DEFAULT_ENDPOINT "\n"                       \
    "  --timeout SECONDS       give up after this long (default 30)\n"        \
    CLI_KEY_USAGE

#define CLI_DEFAULT_TIMEOUT_S 30.0

typedef struct {
    const char *cmd;                /* "pub", "topic create": for messages */
    const char *usage;              /* the subcommand's --help text */
    const char *broker;             /* before cli_parse settles it: --broker or
                                       NULL; after: --broker, else $SLUICE_BROKER,
                                       else the home's endpoint file, else
                                       default (sl_connect_resolve) */
    double timeout_s;               /* --timeout, default 30 */
    bool timeout_given;             /* --timeout was on the command line */
    char **pos;                     /* positional arguments after parsing (borrowed argv) */
    int npos;                       /* how many */
    bool offline;                   /* set before cli_parse: talks to no broker,
                                       so no keys are looked up */
    bool broker_given;              /* after cli_parse: --broker or $SLUICE_BROKER */
    const char *cert_opt;           /* --cert as given, or NULL */
    const char *server_key_opt;     /* --server-key as given, or NULL */
    const char *home_opt;           /* --home as given, or NULL */
    bool plaintext;                 /* --insecure-plaintext */
    /* after cli_parse: what cli_connect uses (see docs/cli.md for the order) */
    sl_connect_t conn;              /* the settled endpoint and keys */
    const char *cert;               /* client certificate file, or NULL */
    const char *server_key;         /* broker key or its file, or NULL = plain text */
    const char *home;               /* data directory the keys came from, or NULL */
    bool home_auto;                 /* home is SL_DEFAULT_HOME, found, not asked for */
    sl_client_t *client;            /* set by cli_connect, borrowed: lets cli_fail
                                       show the broker's reason; the command
                                       destroys the client after its last
                                       cli_fail */
} cli_ctx_t;

/* Handles one subcommand-specific option OPT with argument ARG (NULL for
 * flags). Returns 0, or CLI_EXIT_USAGE after printing why. */
typedef int (cli_option_fn)(void *self, cli_ctx_t *ctx, int opt,
                            const char *arg);

/* Fill CTX for subcommand CMD with --help text USAGE (both static). */
void cli_ctx_init(cli_ctx_t *ctx, const char *cmd, const char *usage);

/* Parse ARGV (ARGV[0] is the subcommand's name) with OPTIONS, which must
 * hold CLI_COMMON_OPTIONS unless CTX->offline; own options go to FN with
 * SELF. Checks that between MIN_POS and MAX_POS positional arguments are
 * left, then (unless offline) settles the keys and the endpoint with
 * sl_connect_resolve: flags, then $SLUICE_*, then SL_DEFAULT_HOME. Returns
 * true when the command should run; false with *exit_code set when it should not (CLI_EXIT_OK
 * after --help, CLI_EXIT_USAGE after a usage message, CLI_EXIT_FAILED when
 * the home's endpoint file cannot be read). */
bool cli_parse(cli_ctx_t *ctx, int argc, char **argv,
               const struct option *options, cli_option_fn *fn, void *self,
               int min_pos, int max_pos, int *exit_code);

/* The connection options typed before the command (`sluice --broker EP
 * pub T`): scans ARGV[1..] while it holds CLI_COMMON_OPTIONS, as
 * "--opt VALUE", "--opt=VALUE" or an abbreviation getopt_long accepts.
 * Checks only names and whether a value is there; the command's own parse
 * checks the values. Returns CLI_EXIT_OK with *FIRST the index of the
 * first word after them (the command; ARGC when none follows) and *HELP
 * set when --help or -h was among them; or CLI_EXIT_USAGE after a message
 * on stderr naming the first option that may not come before the command
 * (an unknown one, a command's own, a "--"), or one missing its value. */
int cli_parse_leading(int argc, char **argv, int *first, bool *help);

/* ARGV rearranged for running the command whose WORDS words (1 or 2)
 * start at ARGV[FIRST] (FIRST from cli_parse_leading): ARGV[0], the
 * command words, the leading options ARGV[1..FIRST), then the rest. The
 * leading options thus act as if typed right after the command, and one
 * typed again later on the line wins. ARGC words and a NULL; caller frees
 * the array, the strings stay ARGV's. Never NULL (aborts when out of
 * memory). */
char **cli_leading_argv(int argc, char **argv, int first, int words);

/* Print "sluice CMD: MESSAGE" and a hint to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const cli_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Timeout in ms for SDK calls, at least 1. */
int cli_timeout_ms(const cli_ctx_t *ctx);

/* Print "sluice: broker X not reachable after N s" (plus DETAIL when not
 * NULL) and return CLI_EXIT_UNREACHABLE. */
int cli_unreachable(const cli_ctx_t *ctx, const char *detail);

/* Report SDK result RC for the action described by FMT and return the exit
 * code: SL_ETIMEOUT and SL_EUNAVAIL print the unreachable message and give
 * CLI_EXIT_UNREACHABLE; SL_EAUTH explains the refusal and gives
 * CLI_EXIT_AUTH; anything else prints the code's name and text, and the
 * broker's reason when ctx->client has one, and gives CLI_EXIT_FAILED. */
int cli_fail(const cli_ctx_t *ctx, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "SL_ETOOBIG" for SL_ETOOBIG; "SL_E?" for a code sluice_codes.h lacks. */
const char *cli_code_name(int rc);

/* Fill OPTS (may be NULL for the defaults) from CTX (endpoint, keys),
 * create a client and wait for the broker's Hello answer, at most
 * --timeout. Returns CLI_EXIT_OK and *out (caller owns; ctx->client
 * borrows it), or an exit code after a message: CLI_EXIT_USAGE for a bad
 * key or endpoint, CLI_EXIT_FAILED for an unreadable or group-readable
 * certificate, CLI_EXIT_AUTH when the broker refused the key. */
int cli_connect(cli_ctx_t *ctx, sl_options_t *opts, sl_client_t **out);

/* CLOCK_MONOTONIC in seconds. */
double cli_now(void);

/* Strict parsers; each returns 0 or -1 (nothing printed).
 * u64: decimal digits only. seconds: a positive number, fractions allowed.
 * duration: NUMBER[ms|s|m|h|d], bare = seconds, result in ms.
 * size: NUMBER[K|M|G|T][i][B] (binary multiples), bare = bytes. */
int cli_parse_u64(const char *text, uint64_t *out);
int cli_parse_seconds(const char *text, double *out);
int cli_parse_duration_ms(const char *text, uint64_t *out);
int cli_parse_size(const char *text, uint64_t *out);

/* A point in time, in microseconds since the epoch: RFC 3339
 * (2024-05-01T12:00:00Z, fractions and +02:00 offsets allowed; a bare date
 * is its midnight UTC), a duration before NOW_US (10m, 2h, 7d: as
 * cli_parse_duration_ms), or @MICROSECONDS. 0 or -1. */
int cli_parse_time_us(const char *text, uint64_t now_us, uint64_t *out);

/* Format US (microseconds since the epoch) as RFC 3339 UTC with
 * milliseconds: 2024-05-01T12:00:00.123Z (25 bytes with the NUL). */
void cli_format_time(uint64_t us, char *buf, size_t len);

/* Allocations of the command's own bookkeeping cannot usefully fail: these
 * print "out of memory" and exit(1) instead of returning NULL. */
void *cli_xmalloc(size_t size);
void *cli_xrealloc(void *ptr, size_t size);
char *cli_xstrdup(const char *text);

/* The whole of PATH ("-" = stdin) as a NUL-terminated string (caller
 * frees; its length in *LEN, may be NULL), or NULL with errno set (EFBIG
 * when it is larger than MAX bytes). */
char *cli_read_file(const char *path, size_t max, size_t *len);

/* The shape of a one-request subcommand: parse ARGV with OPTIONS (own
 * options to ON_OPTION with SELF), connect, run FN. Returns FN's exit code,
 * or the parse's or connect's. */
typedef int (cli_request_fn)(cli_ctx_t *ctx, void *self, sl_client_t *client);
int cli_run_request(const char *cmd, const char *usage, int argc, char **argv,
                    const struct option *options, cli_option_fn *on_option, void *self,
                    int minpos, int maxpos, cli_request_fn *fn);

/* An aligned text table: cells are added left to right, row after row. */
typedef struct cli_table cli_table_t;

/* New table of NCOLS columns named HEADERS (static strings); ALIGN has one
 * letter per column, 'l' or 'r'. Never NULL (aborts when out of memory). */
cli_table_t *cli_table_new(size_t ncols, const char *const *headers,
                           const char *align);

/* Append one cell formatted like printf (copied). */
void cli_table_cell(cli_table_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Write header and rows with columns padded to their widest cell. */
void cli_table_print(const cli_table_t *self, FILE *out);

/* NULL-safe; sets *self_p to NULL. */
void cli_table_destroy(cli_table_t **self_p);

/* Write TEXT as a JSON string literal, quotes included. */
void cli_json_string(FILE *out, const char *text);

/* Top-level field KEY of the JSON object JSON (LEN bytes) into OUT
 * (OUTLEN bytes, truncated): a string decoded (\u escapes as UTF-8),
 * anything else as its JSON text (a number, true, null, an object). 1
 * found, 0 absent, -1 the text is not a JSON object. *IS_STRING (may be
 * NULL) says whether the value was a string. */
int cli_json_field(const char *json, size_t len, const char *key, char *out,
                   size_t outlen, bool *is_string);

/* True once SIGINT arrived after cli_catch_sigint (sluice.c). */
bool cli_interrupted(void);

/* Make SIGINT set the flag once (a second SIGINT kills as usual). For the
 * commands that can stop cleanly: pub, sub. */
void cli_catch_sigint(void);

/* The subcommands; each gets ARGV with ARGV[0] its own name. */
int cli_pub(int argc, char **argv);
int cli_sub(int argc, char **argv);
int cli_topics(int argc, char **argv);
int cli_stats(int argc, char **argv);
int cli_topic_create(int argc, char **argv);
int cli_sub_rm(int argc, char **argv);
int cli_keygen(int argc, char **argv);
int cli_keys_add(int argc, char **argv);
int cli_keys_list(int argc, char **argv);
int cli_keys_revoke(int argc, char **argv);
int cli_grant(int argc, char **argv);
int cli_revoke_grant(int argc, char **argv);
int cli_rotate_key(int argc, char **argv);
int cli_audit(int argc, char **argv);
int cli_schema_register(int argc, char **argv);
int cli_schema_check(int argc, char **argv);
int cli_schema_list(int argc, char **argv);
int cli_schema_show(int argc, char **argv);
int cli_topic_set(int argc, char **argv);
int cli_mapping_add(int argc, char **argv);
int cli_mapping_list(int argc, char **argv);
int cli_mapping_show(int argc, char **argv);
int cli_mapping_rm(int argc, char **argv);
int cli_mapping_test(int argc, char **argv);
int cli_routes_apply(int argc, char **argv);
int cli_routes_list(int argc, char **argv);
int cli_routes_show(int argc, char **argv);
int cli_routes_diff(int argc, char **argv);
int cli_routes_rollback(int argc, char **argv);
int cli_routes_backfill(int argc, char **argv);
int cli_trace(int argc, char **argv);
int cli_sub_seek(int argc, char **argv);
int cli_dlq_list(int argc, char **argv);
int cli_dlq_rm(int argc, char **argv);
int cli_dlq_redrive(int argc, char **argv);
int cli_routes_test(int argc, char **argv);

/* Run fixture file FILE (docs/routing.md, "Fixtures") offline against the
 * table ROUTES (NULL: the fixture's `routes:`), with mappings from DIR
 * MAPPINGS and schemas from DIR SCHEMAS (NULL: the fixture's own keys, or
 * none). Prints PASS / FAIL per case on stdout, reasons on stderr, "sluice
 * CMD: ..." in messages. CLI_EXIT_OK, CLI_EXIT_FAILED (a case failed) or
 * CLI_EXIT_NOTRUN (nothing tested). cli_routes_test.c. */
int cli_routes_fixtures(const char *cmd, const char *file, const char *routes,
                        const char *mappings, const char *schemas);

/* `routes diff --replay`: route the last LAST stored messages of TOPIC
 * (read through an ephemeral subscription: nothing is written) through
 * table BEFORE (YAML; NULL: no table) and AFTER, offline with the broker's
 * mappings and schemas; print every message whose route set or output
 * differs and a summary by route. BEFORE_WHAT / AFTER_WHAT name the sides.
 * CLI_EXIT_OK (nothing would change), CLI_EXIT_FAILED (something would),
 * CLI_EXIT_NOTRUN (nothing replayed; said why). cli_routes_replay.c. */
int cli_routes_replay(cli_ctx_t *ctx, sl_client_t *client, const char *before,
                      const char *before_what, const char *after, const char *after_what,
                      const char *topic, uint64_t last);

#endif
