/*  cli_common - the helpers every `sluice` subcommand shares: option
 *  parsing around getopt_long, connecting with the --timeout rule, error
 *  reporting with exit codes, number/size/duration parsing, aligned tables
 *  and JSON strings. Single-threaded; keeps no state between calls.  */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"

/* ----------------------------------------------------------- options */

void cli_ctx_init(cli_ctx_t *ctx, const char *cmd, const char *usage)
{
    const char *env = getenv("SLUICE_BROKER");

    memset(ctx, 0, sizeof *ctx);
    ctx->cmd = cmd;
    ctx->usage = usage;
    ctx->broker = env && *env ? env : SL_DEFAULT_ENDPOINT;
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
    optind = 1;
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
    return true;
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

int cli_fail(const cli_ctx_t *ctx, int rc, const char *fmt, ...)
{
    va_list ap;

    if (rc == SL_ETIMEOUT || rc == SL_EUNAVAIL)
        return cli_unreachable(ctx, NULL);
    fprintf(stderr, "sluice %s: ", ctx->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s (%d): %s\n", cli_code_name(rc), -rc,
            sl_strerror(rc));
    return CLI_EXIT_FAILED;
}

int cli_connect(const cli_ctx_t *ctx, sl_options_t *opts, sl_client_t **out)
{
    sl_options_t defaults;
    sl_client_t *client = NULL;
    int rc;

    if (!opts) {
        sl_options_init(&defaults);
        opts = &defaults;
    }
    opts->endpoint = ctx->broker;
    opts->name = "sluice-cli";
    opts->connect_timeout_ms = cli_timeout_ms(ctx);
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
    if (rc != 0) {
        rc = cli_fail(ctx, rc, "cannot connect to %s", ctx->broker);
        goto fail;
    }
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
    const unsigned char *p;

    fputc('"', out);
    for (p = (const unsigned char *)text; *p; p++) {
        switch (*p) {
        case '"':  fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}
