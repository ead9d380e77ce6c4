/*  cli_common - the helpers every `sluice` subcommand shares: option
 *  parsing around getopt_long (and the connection options typed before
 *  the command, moved behind it), finding the keys (flags, environment, the
 *  broker's data directory), connecting with the --timeout rule, error
 *  reporting with exit codes, number/size/duration/time parsing, aligned
 *  tables, JSON strings out and flat JSON fields in. Single-threaded; keeps
 *  no state between calls.  */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "slt_doc.h"

/* ----------------------------------------------------------- options */

void cli_ctx_init(cli_ctx_t *ctx, const char *cmd, const char *usage)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->cmd = cmd;
    ctx->usage = usage;
    ctx->timeout_s = CLI_DEFAULT_TIMEOUT_S;
}

int cli_usage_error(const cli_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "sluice %s: ", ctx->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'sluice %s --help'.\n", ctx->cmd);
    return CLI_EXIT_USAGE;
}

/* Settle the keys and the endpoint by the SDK's rule (sluice.h, "where to
 * connect"); its reasons are this command's usage errors. */
static int s_resolve(cli_ctx_t *ctx)
{
    sl_connect_args_t args = {
        .broker = ctx->broker, .home = ctx->home_opt, .cert = ctx->cert_opt,
        .server_key = ctx->server_key_opt, .plaintext = ctx->plaintext,
    };
    char why[512];
    int rc = sl_connect_resolve(&args, &ctx->conn, why, sizeof why);

    if (rc == SL_ESYS) {
        fprintf(stderr, "sluice %s: %s\n", ctx->cmd, why);
        return CLI_EXIT_FAILED;
    }
    if (rc != 0)
        return cli_usage_error(ctx, "%s", why);
    ctx->broker = ctx->conn.endpoint;
    ctx->broker_given = ctx->conn.broker_given;
    ctx->cert = ctx->conn.cert[0] ? ctx->conn.cert : NULL;
    ctx->server_key = ctx->conn.server_key[0] ? ctx->conn.server_key : NULL;
    ctx->home = ctx->conn.home[0] ? ctx->conn.home : NULL;
    ctx->home_auto = ctx->conn.home_auto;
    return CLI_EXIT_OK;
}

/* The text of the option getopt just refused, for the message: a long
 * option is the whole argv word, a short one is its letter. */
static void s_bad_option(char *buf, size_t len, char **argv, int opt)
{
    if (opt > 0 && opt < 256)
        snprintf(buf, len, "-%c", opt);
    else
        snprintf(buf, len, "%s", argv[optind - 1]);
}

bool cli_parse(cli_ctx_t *ctx, int argc, char **argv,
               const struct option *options, cli_option_fn *fn, void *self,
               int min_pos, int max_pos, int *exit_code)
{
    char bad[128];
    int opt;

    /* ':' first: report a missing argument as ':' and print our own
     * messages (opterr = 0) so every usage error has the same shape. */
    opterr = 0;
    /* 0, not 1: glibc re-reads the optstring's ordering only on 0, and
     * cli_parse_leading scanned with '+' (stop at the first non-option);
     * this scan must permute so options may follow the positionals. */
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(ctx->usage, stdout);
            *exit_code = CLI_EXIT_OK;
            return false;
        case CLI_OPT_BROKER:
            if (!*optarg) {
                *exit_code = cli_usage_error(ctx, "--broker needs an endpoint");
                return false;
            }
            ctx->broker = optarg;
            break;
        case CLI_OPT_CERT:
        case CLI_OPT_SERVER_KEY:
        case CLI_OPT_HOME:
            if (!*optarg) {
                s_bad_option(bad, sizeof bad, argv, opt);
                *exit_code = cli_usage_error(ctx, "option '%s' needs a value",
                                             bad);
                return false;
            }
            if (opt == CLI_OPT_CERT)
                ctx->cert_opt = optarg;
            else if (opt == CLI_OPT_SERVER_KEY)
                ctx->server_key_opt = optarg;
            else
                ctx->home_opt = optarg;
            break;
        case CLI_OPT_PLAINTEXT:
            ctx->plaintext = true;
            break;
        case CLI_OPT_TIMEOUT:
            if (cli_parse_seconds(optarg, &ctx->timeout_s) != 0) {
                *exit_code = cli_usage_error(ctx,
                    "--timeout wants a positive number of seconds, not '%s'",
                    optarg);
                return false;
            }
            ctx->timeout_given = true;
            break;
        case ':':
            s_bad_option(bad, sizeof bad, argv, optopt);
            *exit_code = cli_usage_error(ctx, "option '%s' needs a value", bad);
            return false;
        case '?':
            s_bad_option(bad, sizeof bad, argv, optopt);
            *exit_code = cli_usage_error(ctx, "unknown option '%s'", bad);
            return false;
        default:
            *exit_code = fn ? fn(self, ctx, opt, optarg) : CLI_EXIT_USAGE;
            if (*exit_code != CLI_EXIT_OK)
                return false;
            break;
        }
    }
    ctx->pos = argv + optind;
    ctx->npos = argc - optind;
    if (ctx->npos < min_pos) {
        *exit_code = cli_usage_error(ctx, "missing argument");
        return false;
    }
    if (ctx->npos > max_pos) {
        *exit_code = cli_usage_error(ctx, "unexpected argument '%s'",
                                     ctx->pos[max_pos]);
        return false;
    }
    if (!ctx->offline) {
        *exit_code = s_resolve(ctx);
        if (*exit_code != CLI_EXIT_OK)
            return false;
    }
    return true;
}

/* The options that may come before the command. Derived from the one
 * table every broker-talking command parses, so the two cannot disagree
 * about names or which take a value. */
static const struct option s_leading_options[] = {
    CLI_COMMON_OPTIONS,
    { NULL, 0, NULL, 0 },
};

/* Say that WORD may not come before the command, and which may. */
static int s_leading_refused(const char *word)
{
    const struct option *o;
    const char *sep = " ";

    fprintf(stderr, "sluice: '%s' cannot come before the command; only the "
            "connection options can:", word);
    for (o = s_leading_options; o->name; o++) {
        if (o->val == 'h')
            continue;
        fprintf(stderr, "%s--%s", sep, o->name);
        sep = ", ";
    }
    fputs(".\nA command's own options go after it; see 'sluice COMMAND "
          "--help'.\n", stderr);
    return CLI_EXIT_USAGE;
}

int cli_parse_leading(int argc, char **argv, int *first, bool *help)
{
    char bad[128];
    int opt, before, rc = CLI_EXIT_OK;

    *help = false;
    opterr = 0;
    /* '+': stop at the first word that is not an option, the command, so
     * nothing after it is looked at here. optind 0 makes glibc read the
     * '+' even when getopt ran before in this process. */
    optind = 0;
    for (;;) {
        before = optind > 0 ? optind : 1;
        opt = getopt_long(argc, argv, "+:h", s_leading_options, NULL);
        if (opt == -1)
            break;
        /* The connection options themselves are only stepped over: the
         * command's cli_parse reads them, values checked there once. */
        if (opt == 'h') {
            /* As before: `sluice --help` ignores whatever follows. */
            *help = true;
            goto done;
        }
        else if (opt == ':') {
            s_bad_option(bad, sizeof bad, argv, optopt);
            fprintf(stderr, "sluice: option '%s' needs a value\n"
                    "Try 'sluice --help'.\n", bad);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        else if (opt == '?' && optopt >= CLI_OPT_BROKER) {
            /* A known flag given a value: --insecure-plaintext=yes. */
            fprintf(stderr, "sluice: option '%s' takes no value\n"
                    "Try 'sluice --help'.\n", argv[optind - 1]);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        else if (opt == '?') {
            s_bad_option(bad, sizeof bad, argv, optopt);
            rc = s_leading_refused(bad);
            goto done;
        }
    }
    /* getopt stops at a non-option without moving past it, and moves past
     * only a "--" that ends the options. Moved behind the command, that
     * "--" would turn the command's own options into positionals, so it
     * is refused (before, it was an unknown command). */
    if (optind > before) {
        rc = s_leading_refused("--");
        goto done;
    }
    *first = optind;
done:
    return rc;
}

char **cli_leading_argv(int argc, char **argv, int first, int words)
{
    char **out = cli_xmalloc(((size_t)argc + 1) * sizeof *out);
    int n = 0, i;

    assert(first >= 1 && words >= 1 && first + words <= argc);
    out[n++] = argv[0];
    for (i = first; i < first + words; i++)
        out[n++] = argv[i];
    /* Right after the command words, so every option typed after the
     * command comes later and wins (getopt_long applies them in order). */
    for (i = 1; i < first; i++)
        out[n++] = argv[i];
    for (i = first + words; i < argc; i++)
        out[n++] = argv[i];
    out[n] = NULL;
    return out;
}

int cli_timeout_ms(const cli_ctx_t *ctx)
{
    double ms = ctx->timeout_s * 1000.0;

    if (ms < 1)
        return 1;
    if (ms > (double)INT32_MAX)
        return INT32_MAX;
    return (int)ms;
}

/* ------------------------------------------------------------ errors */

const char *cli_code_name(int rc)
{
    switch (rc) {
    case SL_OK:         return "SL_OK";
    case SL_EMALFORMED: return "SL_EMALFORMED";
    case SL_ENOSESSION: return "SL_ENOSESSION";
    case SL_EDENIED:    return "SL_EDENIED";
    case SL_ENOTFOUND:  return "SL_ENOTFOUND";
    case SL_ECOMMAND:   return "SL_ECOMMAND";
    case SL_EAUTH:      return "SL_EAUTH";
    case SL_ETIMEOUT:   return "SL_ETIMEOUT";
    case SL_ESTALE:     return "SL_ESTALE";
    case SL_EEXIST:     return "SL_EEXIST";
    case SL_ETOOBIG:    return "SL_ETOOBIG";
    case SL_EINVAL:     return "SL_EINVAL";
    case SL_EVERSION:   return "SL_EVERSION";
    case SL_EBUSY:      return "SL_EBUSY";
    case SL_EINTERNAL:  return "SL_EINTERNAL";
    case SL_ESTORE:     return "SL_ESTORE";
    case SL_EUNAVAIL:   return "SL_EUNAVAIL";
    case SL_ENOMEM:     return "SL_ENOMEM";
    case SL_ESYS:       return "SL_ESYS";
    case SL_EFULL:      return "SL_EFULL";
    default:            return "SL_E?";
    }
}

int cli_unreachable(const cli_ctx_t *ctx, const char *detail)
{
    fprintf(stderr, "sluice: broker %s not reachable after %g s%s%s\n",
            ctx->broker, ctx->timeout_s, detail ? " " : "",
            detail ? detail : "");
    return CLI_EXIT_UNREACHABLE;
}

/* Why the broker did not admit CLIENT, in the terms of this command's
 * options. */
static int s_refused(const cli_ctx_t *ctx, const sl_client_t *client)
{
    const char *key = sl_client_public_key(client);

    switch (sl_client_auth(client)) {
    case SL_AUTH_REFUSED:
        /* Quoted: Z85 has shell characters but no quote. A key that
         * starts with '-' would be taken for an option without "--". */
        fprintf(stderr, "sluice %s: the broker refused this client's key (not "
                "registered or revoked); register it with `sluice keys add "
                "NAME %s'%s'`\n", ctx->cmd, key[0] == '-' ? "-- " : "", key);
        break;
    case SL_AUTH_MECHANISM:
        if (!ctx->server_key)
            fprintf(stderr, "sluice %s: the broker at %s requires keys: give "
                    "--home DIR (its data directory), or --cert FILE and "
                    "--server-key KEY|FILE\n", ctx->cmd, ctx->broker);
        else
            fprintf(stderr, "sluice %s: the broker at %s does not use CURVE "
                    "(started with --insecure-plaintext?): use "
                    "--insecure-plaintext\n", ctx->cmd, ctx->broker);
        break;
    default:
        fprintf(stderr, "sluice %s: %s; check --server-key (the broker's "
                "DATA/server.pub)\n", ctx->cmd, sl_client_last_error(client));
        break;
    }
    if (ctx->home_auto)
        fprintf(stderr, "sluice %s: (the keys came from %s, found in the "
                "current directory; --home, --cert, --server-key or "
                "--insecure-plaintext choose otherwise)\n", ctx->cmd,
                SL_DEFAULT_HOME);
    return CLI_EXIT_AUTH;
}

int cli_fail(const cli_ctx_t *ctx, int rc, const char *fmt, ...)
{
    const char *why = ctx->client ? sl_client_last_error(ctx->client) : "";
    va_list ap;

    if (rc == SL_ETIMEOUT || rc == SL_EUNAVAIL)
        return cli_unreachable(ctx, NULL);
    if (rc == SL_EAUTH && ctx->client)
        return s_refused(ctx, ctx->client);
    fprintf(stderr, "sluice %s: ", ctx->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s (%d): %s%s%s\n", cli_code_name(rc), -rc,
            sl_strerror(rc), *why ? ": " : "", why);
    return CLI_EXIT_FAILED;
}

int cli_connect(cli_ctx_t *ctx, sl_options_t *opts, sl_client_t **out)
{
    sl_options_t defaults;
    sl_client_t *client = NULL;
    char why[512];
    int rc;

    if (!opts) {
        sl_options_init(&defaults);
        opts = &defaults;
    }
    sl_connect_apply(&ctx->conn, opts);
    opts->name = "sluice-cli";
    opts->connect_timeout_ms = cli_timeout_ms(ctx);
    /* sl_client_new only says that the keys are bad; this says why. */
    rc = sl_options_check(opts, why, sizeof why);
    if (rc != 0) {
        fprintf(stderr, "sluice %s: %s\n", ctx->cmd, why);
        rc = rc == SL_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
        goto fail;
    }
    rc = sl_client_new(opts, &client);
    if (rc == SL_EINVAL) {
        rc = cli_usage_error(ctx, "invalid broker endpoint '%s'", ctx->broker);
        goto fail;
    }
    if (rc == SL_ESYS && opts->producer_id_file) {
        fprintf(stderr, "sluice %s: cannot read or write producer id file "
                "'%s'\n", ctx->cmd, opts->producer_id_file);
        rc = CLI_EXIT_FAILED;
        goto fail;
    }
    if (rc != 0) {
        rc = cli_fail(ctx, rc, "cannot create client");
        goto fail;
    }
    rc = sl_client_connect(client);
    if (rc == SL_EVERSION) {
        fprintf(stderr, "sluice: broker %s speaks another protocol version\n",
                ctx->broker);
        rc = CLI_EXIT_UNREACHABLE;
        goto fail;
    }
    if (rc == SL_EAUTH) {
        rc = s_refused(ctx, client);
        goto fail;
    }
    if (rc != 0) {
        rc = cli_fail(ctx, rc, "cannot connect to %s", ctx->broker);
        goto fail;
    }
    ctx->client = client;
    *out = client;
    return CLI_EXIT_OK;
fail:
    sl_client_destroy(&client);
    return rc;
}

double cli_now(void)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC cannot fail on Linux; a zero time would only make a
     * timeout fire early, never hang. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ----------------------------------------------------------- parsing */

int cli_parse_u64(const char *text, uint64_t *out)
{
    char *end;
    unsigned long long v;

    /* strtoull accepts "-1" and leading spaces; a count or offset that
     * wraps around is never what the user meant. */
    if (!text || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || *end)
        return -1;
    *out = v;
    return 0;
}

/* A non-negative finite number at the start of TEXT; *end after it. */
static int s_parse_number(const char *text, double *out, char **end)
{
    double v;

    if (!text || !((*text >= '0' && *text <= '9') || *text == '.'))
        return -1;
    errno = 0;
    v = strtod(text, end);
    if (errno != 0 || *end == text || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_seconds(const char *text, double *out)
{
    char *end;
    double v;

    if (s_parse_number(text, &v, &end) != 0 || *end || v <= 0)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_duration_ms(const char *text, uint64_t *out)
{
    static const struct { const char *suffix; double ms; } units[] = {
        { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
        { "h", 3600000 }, { "d", 86400000 },
    };
    char *end;
    double v;
    size_t i;

    if (s_parse_number(text, &v, &end) != 0)
        return -1;
    for (i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            v *= units[i].ms;
            if (v >= 1.8e19)
                return -1;
            *out = (uint64_t)v;
            return 0;
        }
    }
    return -1;
}

int cli_parse_size(const char *text, uint64_t *out)
{
    static const char prefixes[] = "KMGT";
    char *end;
    const char *p;
    double v;

    if (s_parse_number(text, &v, &end) != 0)
        return -1;
    if (strcmp(end, "B") == 0)
        end++;
    if (*end) {
        p = strchr(prefixes, *end >= 'a' ? *end - 'a' + 'A' : *end);
        if (!p || !*p)
            return -1;
        v *= (double)(1ull << (10 * (p - prefixes + 1)));
        end++;
        if (*end == 'i')
            end++;
        if (*end == 'B')
            end++;
        if (*end)
            return -1;
    }
    if (v >= 1.8e19)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* N digits at *P into *OUT; advances *P. */
static int s_digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/* RFC 3339: YYYY-MM-DD[(T|t| )HH:MM:SS[.frac](Z|z|+HH:MM|-HH:MM)]. */
static int s_parse_rfc3339(const char *p, uint64_t *out)
{
    struct tm tm;
    int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
    uint64_t frac_us = 0, scale = 100000;
    time_t t;

    memset(&tm, 0, sizeof tm);
    if (s_digits(&p, 4, &y) || *p++ != '-' || s_digits(&p, 2, &mo)
        || *p++ != '-' || s_digits(&p, 2, &d))
        return -1;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return -1;
        p++;
        if (s_digits(&p, 2, &h) || *p++ != ':' || s_digits(&p, 2, &mi)
            || *p++ != ':' || s_digits(&p, 2, &sec))
            return -1;
        if (*p == '.') {
            p++;
            if (*p < '0' || *p > '9')
                return -1;
            for (; *p >= '0' && *p <= '9'; p++) {
                frac_us += (uint64_t)(*p - '0') * scale;
                scale /= 10;
            }
        }
        if (*p == 'Z' || *p == 'z')
            p++;
        else if (*p == '+' || *p == '-') {
            sign = *p++ == '+' ? 1 : -1;
            if (s_digits(&p, 2, &oh) || *p++ != ':' || s_digits(&p, 2, &om))
                return -1;
        }
        else
            return -1;
        if (*p)
            return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60
        || oh > 23 || om > 59)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    t -= (time_t)sign * (oh * 3600 + om * 60);
    if (t < 0)
        return -1;
    *out = (uint64_t)t * 1000000u + frac_us;
    return 0;
}

int cli_parse_time_us(const char *text, uint64_t now_us, uint64_t *out)
{
    uint64_t v;

    if (!text || !*text)
        return -1;
    if (text[0] == '@')
        return cli_parse_u64(text + 1, out);
    if (cli_parse_duration_ms(text, &v) == 0) {
        *out = v * 1000 >= now_us ? 0 : now_us - v * 1000;
        return 0;
    }
    return s_parse_rfc3339(text, out);
}

void cli_format_time(uint64_t us, char *buf, size_t len)
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;

    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, len, "@%llu", (unsigned long long)us);
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (unsigned)(us / 1000u % 1000u));
}

/* ------------------------------------------------------------ memory */

static void s_oom(void)
{
    fputs("sluice: out of memory\n", stderr);
    exit(CLI_EXIT_FAILED);
}

void *cli_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (!p)
        s_oom();
    return p;
}

void *cli_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (!p)
        s_oom();
    return p;
}

char *cli_xstrdup(const char *text)
{
    char *p = strdup(text);

    if (!p)
        s_oom();
    return p;
}

/* ------------------------------------------------------------- table */

struct cli_table {
    size_t ncols;                   /* columns per row */
    const char *const *headers;     /* borrowed static names */
    const char *align;              /* 'l' / 'r' per column, borrowed */
    char **cells;                   /* row-major, owned */
    size_t ncells;                  /* cells added so far */
    size_t cap;                     /* allocated cells */
};

cli_table_t *cli_table_new(size_t ncols, const char *const *headers,
                           const char *align)
{
    cli_table_t *self = cli_xmalloc(sizeof *self);

    self->ncols = ncols;
    self->headers = headers;
    self->align = align;
    self->cells = NULL;
    self->ncells = 0;
    self->cap = 0;
    return self;
}

void cli_table_cell(cli_table_t *self, const char *fmt, ...)
{
    va_list ap;
    char *cell;

    if (self->ncells == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 64;
        self->cells = cli_xrealloc(self->cells, self->cap * sizeof *self->cells);
    }
    va_start(ap, fmt);
    if (vasprintf(&cell, fmt, ap) < 0)
        s_oom();
    va_end(ap);
    self->cells[self->ncells++] = cell;
}

static void s_table_row(const cli_table_t *self, const size_t *width,
                        const char *const *row, FILE *out)
{
    size_t c;
    int pad;

    for (c = 0; c < self->ncols; c++) {
        pad = (int)width[c];
        if (c + 1 == self->ncols && self->align[c] != 'r')
            fputs(row[c], out);     /* no trailing blanks */
        else if (self->align[c] == 'r')
            fprintf(out, "%*s", pad, row[c]);
        else
            fprintf(out, "%-*s", pad, row[c]);
        fputs(c + 1 == self->ncols ? "\n" : "  ", out);
    }
}

void cli_table_print(const cli_table_t *self, FILE *out)
{
    size_t *width = cli_xmalloc(self->ncols * sizeof *width);
    size_t nrows = self->ncells / self->ncols;
    size_t r, c, len;

    for (c = 0; c < self->ncols; c++)
        width[c] = strlen(self->headers[c]);
    for (r = 0; r < nrows; r++) {
        for (c = 0; c < self->ncols; c++) {
            len = strlen(self->cells[r * self->ncols + c]);
            if (len > width[c])
                width[c] = len;
        }
    }
    s_table_row(self, width, self->headers, out);
    for (r = 0; r < nrows; r++)
        s_table_row(self, width,
                    (const char *const *)self->cells + r * self->ncols, out);
    free(width);
}

void cli_table_destroy(cli_table_t **self_p)
{
    cli_table_t *self;
    size_t i;

    if (!self_p || !*self_p)
        return;
    self = *self_p;
    for (i = 0; i < self->ncells; i++)
        free(self->cells[i]);
    free(self->cells);
    free(self);
    *self_p = NULL;
}

/* -------------------------------------------------------------- json */

void cli_json_string(FILE *out, const char *text)
{
    cJSON *item = cJSON_CreateString(text);
    char *json = NULL;
    if (!item || slt_doc_encode(item, &json, NULL) != 0)
        s_oom();
    fputs(json, out);
    free(json);
    cJSON_Delete(item);
}

int cli_json_field(const char *json, size_t len, const char *key, char *out,
                   size_t outlen, bool *is_string)
{
    int rc = -1;
    cJSON *doc = NULL;
    char *text = NULL;
    if (slt_doc_parse(json, len, &doc, NULL, 0) != 0 || !cJSON_IsObject(doc))
        goto done;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
    rc = v ? 1 : 0;
    if (!v)
        goto done;
    if (is_string)
        *is_string = cJSON_IsString(v);
    if (cJSON_IsString(v))
        snprintf(out, outlen, "%s", v->valuestring);
    else if (slt_doc_encode(v, &text, NULL) == 0)
        snprintf(out, outlen, "%s", text);
    else
        rc = -1;
done:
    free(text);
    cJSON_Delete(doc);
    return rc;
}

char *cli_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    if (!f)
        return NULL;
    while (true) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = cli_xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0 || n > max)
            break;
    }
    bool bad = ferror(f) || n > max;
    if (f != stdin)
        fclose(f);
    if (bad) {
        free(buf);
        errno = n > max ? EFBIG : EIO;
        return NULL;
    }
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

int cli_run_request(const char *cmd, const char *usage, int argc, char **argv,
                    const struct option *options, cli_option_fn *on_option, void *self,
                    int minpos, int maxpos, cli_request_fn *fn)
{
    cli_ctx_t ctx;
    sl_client_t *client = NULL;
    int rc;
    cli_ctx_init(&ctx, cmd, usage);
    if (!cli_parse(&ctx, argc, argv, options, on_option, self, minpos, maxpos, &rc))
        return rc;
    rc = cli_connect(&ctx, NULL, &client);
    if (rc == CLI_EXIT_OK)
        rc = fn(&ctx, self, client);
    sl_client_destroy(&client);
    return rc;
}
