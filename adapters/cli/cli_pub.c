/*  cli_pub - `sluice pub TOPIC`: every line of stdin (or --file) becomes
 *  one durable message; the command waits for every confirm and exits 0
 *  only when every line is stored (a resend confirmed as duplicate counts
 *  as stored). Owns its line reader and the table of lines awaiting
 *  confirm. Single-threaded. Retries and reconnects are the SDK's job;
 *  this file only decides when waiting has lasted too long.  */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

/* Lines published and not yet confirmed, at most. Large enough for the
 * broker to commit thousands of messages per fsync, small enough that the
 * table of line numbers stays small. */
#define S_WINDOW 10000

/* Per-line error messages printed at most; the summary still counts all.
 * A bad topic name fails every line, and a million identical lines would
 * bury the summary. */
#define S_MAX_ERRORS_SHOWN 100

/* Lines read between two non-blocking sl_poll calls while input is fast:
 * confirms must be handled long before the window fills. */
#define S_POLL_EVERY 256

enum {
    S_OPT_FILE = CLI_OPT_OWN, S_OPT_CONTENT_TYPE, S_OPT_HEADER,
    S_OPT_PRODUCER_ID_FILE,
};

typedef struct s_pub s_pub_t;

/* One line awaiting its confirm; its address is the callback's ARG. */
typedef struct {
    s_pub_t *pub;                   /* back pointer for the callback */
    uint64_t line;                  /* 1-based input line number */
    size_t len;                     /* payload bytes, for error messages */
    bool busy;                      /* published, confirm not yet seen */
} s_slot_t;

struct s_pub {
    const cli_ctx_t *ctx;           /* borrowed */
    const char *topic;              /* borrowed argv */
    const char *file;               /* --file, NULL = stdin */
    const char *content_type;       /* --content-type, NULL = none */
    const char *producer_id_file;   /* --producer-id-file, NULL = fresh id */
    sl_header_t *headers;           /* --header, owned array; keys owned */
    size_t nheaders;
    s_slot_t *slots;                /* S_WINDOW slots, owned */
    size_t next_slot;               /* where the search for a free slot starts */
    size_t pending;                 /* busy slots */
    uint64_t lines;                 /* lines read and handed to sl_publish */
    uint64_t stored;                /* confirmed as newly stored */
    uint64_t duplicates;            /* confirmed as stored before (resends) */
    uint64_t failed;                /* refused by the SDK or nacked */
    uint64_t confirms;              /* callbacks seen: the progress measure */
    uint64_t errors_shown;          /* per-line messages printed */
};

/* A line reader over a file descriptor. Not getline: pub must keep
 * running the SDK (heartbeats, batches, confirms) while stdin is idle, so
 * it waits for input with poll(), and stdio's hidden buffer would hide
 * complete lines from poll(). Lines of any length are kept whole. */
typedef struct {
    int fd;
    char *buf;                      /* owned */
    size_t cap;                     /* bytes allocated */
    size_t start;                   /* first byte not yet returned */
    size_t scan;                    /* no '\n' in [start, scan) */
    size_t end;                     /* bytes held */
    bool eof;                       /* read() returned 0 */
} s_reader_t;

static int s_reader_open(s_reader_t *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->fd = STDIN_FILENO;
    if (path && strcmp(path, "-") != 0) {
        r->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0)
            return -1;
    }
    r->cap = 64 * 1024;
    r->buf = cli_xmalloc(r->cap);
    return 0;
}

static void s_reader_close(s_reader_t *r)
{
    if (r->fd > STDIN_FILENO)
        close(r->fd);           /* read-only: nothing to lose on error */
    free(r->buf);
    r->buf = NULL;
}

/* 1 with the next line in *line and *len (without its '\n'; valid until the
 * next s_reader_fill), 0 when no whole line is buffered yet, -1 at the end
 * of input. A last line without '\n' is still a line. */
static int s_reader_line(s_reader_t *r, char **line, size_t *len)
{
    char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);

    if (nl) {
        *line = r->buf + r->start;
        *len = (size_t)(nl - *line);
        r->start = r->scan = (size_t)(nl - r->buf) + 1;
        return 1;
    }
    r->scan = r->end;
    if (!r->eof)
        return 0;
    if (r->end > r->start) {
        *line = r->buf + r->start;
        *len = r->end - r->start;
        r->start = r->scan = r->end;
        return 1;
    }
    return -1;
}

/* Read what is there (the caller polled). 0, or -1 with errno (ENOMEM
 * when a line outgrows memory). EINTR is not an error: the caller loops. */
static int s_reader_fill(s_reader_t *r)
{
    ssize_t n;
    char *bigger;

    /* Move the partial line to the front when it frees real space. */
    if (r->start > 0 && (r->end == r->cap || r->start >= r->cap / 2)) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->scan -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap) {
        /* Sized by the input, so checked rather than aborting. */
        bigger = realloc(r->buf, r->cap * 2);
        if (!bigger) {
            errno = ENOMEM;
            return -1;
        }
        r->buf = bigger;
        r->cap *= 2;
    }
    n = read(r->fd, r->buf + r->end, r->cap - r->end);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -1;
    if (n == 0)
        r->eof = true;
    r->end += (size_t)n;
    return 0;
}

/* ---------------------------------------------------------- publishing */

static void s_line_error(s_pub_t *self, uint64_t line, size_t len, int rc,
                         const char *text)
{
    self->errors_shown++;
    if (self->errors_shown > S_MAX_ERRORS_SHOWN)
        return;
    fprintf(stderr, "sluice pub: line %" PRIu64 " (%zu bytes) not stored: "
            "%s (%d) %s%s%s\n", line, len, cli_code_name(rc), -rc,
            sl_strerror(rc), text && *text ? ": " : "", text ? text : "");
    if (self->errors_shown == S_MAX_ERRORS_SHOWN)
        fputs("sluice pub: further per-line errors are not shown; the "
              "summary counts them\n", stderr);
}

static void s_on_confirm(const sl_confirm_t *confirm, void *arg)
{
    s_slot_t *slot = arg;
    s_pub_t *self = slot->pub;

    assert(slot->busy);
    slot->busy = false;
    self->pending--;
    self->confirms++;
    if (confirm->rc == 0 && confirm->duplicate)
        self->duplicates++;
    else if (confirm->rc == 0)
        self->stored++;
    else {
        self->failed++;
        s_line_error(self, slot->line, slot->len, confirm->rc, confirm->text);
    }
}

/* A free slot; there is one because pending < S_WINDOW. */
static s_slot_t *s_slot_take(s_pub_t *self)
{
    size_t i, at;

    assert(self->pending < S_WINDOW);
    for (i = 0; i < S_WINDOW; i++) {
        at = (self->next_slot + i) % S_WINDOW;
        if (!self->slots[at].busy) {
            self->next_slot = (at + 1) % S_WINDOW;
            return &self->slots[at];
        }
    }
    abort();                        /* pending count and slots disagree: a bug */
}

/* Hand one line to the SDK. A line the SDK refuses (too big) is counted
 * and reported and the run goes on; other codes are returned. */
static int s_publish_line(s_pub_t *self, sl_client_t *client,
                          const char *line, size_t len)
{
    s_slot_t *slot = s_slot_take(self);
    sl_message_t msg = {
        .topic = self->topic,
        .payload = line,
        .len = len,
        .content_type = self->content_type,
        .headers = self->headers,
        .nheaders = self->nheaders,
    };
    int rc;

    self->lines++;
    slot->line = self->lines;
    slot->len = len;
    /* Busy before the call: should the SDK ever confirm inside
     * sl_publish, the callback must find the slot taken. */
    slot->busy = true;
    self->pending++;
    rc = sl_publish(client, &msg, s_on_confirm, slot, NULL);
    if (rc == 0)
        return 0;
    slot->busy = false;
    self->pending--;
    if (rc == SL_EINVAL || rc == SL_ETOOBIG) {
        self->failed++;
        s_line_error(self, slot->line, len, rc, NULL);
        return 0;
    }
    return rc;
}

/* ------------------------------------------------------------- options */

static int s_on_option(void *self_, cli_ctx_t *ctx, int opt, const char *arg)
{
    s_pub_t *self = self_;
    const char *eq;
    sl_header_t *h;

    switch (opt) {
    case S_OPT_FILE:
        self->file = arg;
        return CLI_EXIT_OK;
    case S_OPT_CONTENT_TYPE:
        self->content_type = arg;
        return CLI_EXIT_OK;
    case S_OPT_PRODUCER_ID_FILE:
        if (!*arg)
            return cli_usage_error(ctx, "--producer-id-file needs a path");
        self->producer_id_file = arg;
        return CLI_EXIT_OK;
    case S_OPT_HEADER:
        eq = strchr(arg, '=');
        if (!eq || eq == arg)
            return cli_usage_error(ctx, "--header wants KEY=VALUE, not '%s'",
                                   arg);
        self->headers = cli_xrealloc(self->headers,
                                     (self->nheaders + 1) * sizeof *h);
        h = &self->headers[self->nheaders++];
        h->key = strndup(arg, (size_t)(eq - arg));
        if (!h->key) {
            self->nheaders--;
            fputs("sluice: out of memory\n", stderr);
            return CLI_EXIT_FAILED;
        }
        h->value = eq + 1;
        return CLI_EXIT_OK;
    default:
        return cli_usage_error(ctx, "unexpected option");
    }
}

static void s_pub_free(s_pub_t *self)
{
    size_t i;

    for (i = 0; i < self->nheaders; i++)
        free((char *)self->headers[i].key);
    free(self->headers);
    free(self->slots);
    self->headers = NULL;
    self->slots = NULL;
}

static const char s_usage[] =
    "usage: sluice pub TOPIC [--file FILE] [--content-type TYPE]\n"
    "                  [--header KEY=VALUE]... [--producer-id-file FILE]\n"
    "                  [--broker ENDPOINT] [--timeout SECONDS]\n"
    "\n"
    "Publish each line of standard input (or FILE) as one durable message on\n"
    "TOPIC, without its newline. Waits until the broker has stored every\n"
    "line and prints a summary on stderr. A broker restart is survived: the\n"
    "client reconnects and resends, and resends are stored once.\n"
    "\n"
    "  --file FILE             read FILE instead of stdin ('-' = stdin)\n"
    "  --content-type TYPE     content type of every message\n"
    "  --header KEY=VALUE      add a header to every message (repeatable)\n"
    "  --producer-id-file FILE keep the producer id and sequence in FILE so\n"
    "                          that a later run continues the same producer\n"
    "  --broker ENDPOINT       default $SLUICE_BROKER, else the --home\n"
    "                          directory's endpoint file, else\n"
    "                          " SL_DEFAULT_ENDPOINT "\n"
    "  --timeout SECONDS       give up when no message was confirmed for this\n"
    "                          long while some await confirm (default 30)\n"
    CLI_KEY_USAGE
    "\n"
    "Exit: 0 every line stored, 1 some line refused (each reported with its\n"
    "line number), 2 broker unreachable or no progress, 3 key refused,\n"
    "64 usage, 130 interrupted (after waiting for the lines already sent).\n";

int cli_pub(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "file", required_argument, NULL, S_OPT_FILE },
        { "content-type", required_argument, NULL, S_OPT_CONTENT_TYPE },
        { "header", required_argument, NULL, S_OPT_HEADER },
        { "producer-id-file", required_argument, NULL, S_OPT_PRODUCER_ID_FILE },
        { NULL, 0, NULL, 0 },
    };
    s_pub_t self = { 0 };
    s_reader_t reader = { .fd = -1 };
    cli_ctx_t ctx;
    sl_options_t opts;
    sl_client_t *client = NULL;
    struct pollfd pfd;
    bool input_done = false, interrupted = false, read_failed = false;
    uint64_t seen_confirms = 0;
    unsigned since_poll = 0;
    double t0, now, last_progress;
    char detail[128];
    char *line;
    size_t len;
    int rc, r, n;

    cli_ctx_init(&ctx, "pub", s_usage);
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, 1, 1, &rc))
        goto fail;
    self.ctx = &ctx;
    self.topic = ctx.pos[0];
    self.slots = cli_xmalloc(S_WINDOW * sizeof *self.slots);
    memset(self.slots, 0, S_WINDOW * sizeof *self.slots);
    for (n = 0; n < S_WINDOW; n++)
        self.slots[n].pub = &self;

    /* Open the input before connecting: a typo in --file should not wait
     * for a broker. */
    if (s_reader_open(&reader, self.file) != 0) {
        fprintf(stderr, "sluice pub: cannot open '%s': %s\n", self.file,
                strerror(errno));
        rc = CLI_EXIT_FAILED;
        goto fail;
    }
    sl_options_init(&opts);
    opts.producer_id_file = self.producer_id_file;
    /* Our window stays far below max_unacked, so sl_publish only blocks
     * when the SDK cannot send at all; then it may block as long as we
     * would wait for progress anyway. */
    opts.block_ms = cli_timeout_ms(&ctx);
    rc = cli_connect(&ctx, &opts, &client);
    if (rc != CLI_EXIT_OK)
        goto fail;
    cli_catch_sigint();

    t0 = last_progress = cli_now();
    while (!input_done || self.pending > 0) {
        if (!input_done && cli_interrupted()) {
            input_done = interrupted = true;
            continue;
        }
        rc = 0;
        if (!input_done && self.pending < S_WINDOW) {
            r = s_reader_line(&reader, &line, &len);
            if (r == 1) {
                rc = s_publish_line(&self, client, line, len);
                if (rc == SL_EBUSY)
                    goto no_progress;
                if (rc != 0) {
                    rc = cli_fail(&ctx, rc, "cannot publish line %" PRIu64,
                                  self.lines);
                    goto fail;
                }
                if (++since_poll < S_POLL_EVERY)
                    continue;
                since_poll = 0;
                rc = sl_poll(client, 0);
            } else if (r < 0) {
                input_done = true;
            } else {
                /* Wait for input, briefly when confirms are due so the
                 * SDK sends its batch and takes the confirms in time. */
                pfd.fd = reader.fd;
                pfd.events = POLLIN;
                pfd.revents = 0;
                n = poll(&pfd, 1, self.pending ? 5 : 100);
                if (n > 0 && s_reader_fill(&reader) != 0) {
                    fprintf(stderr, "sluice pub: cannot read %s: %s\n",
                            self.file ? self.file : "stdin", strerror(errno));
                    input_done = read_failed = true;
                } else if (n < 0 && errno != EINTR) {
                    perror("sluice pub: poll");
                    input_done = read_failed = true;
                }
                rc = sl_poll(client, 0);
            }
        } else if (!input_done) {
            rc = sl_poll(client, 100);      /* window full: wait for confirms */
        } else {
            rc = sl_flush(client, 200);     /* input done: wait for the rest */
            if (rc == SL_ETIMEOUT)
                rc = 0;
        }
        /* While the broker is away the SDK may say so; that is not fatal
         * (it reconnects and resends): the progress clock decides. */
        if (rc < 0 && rc != SL_ETIMEOUT && rc != SL_EUNAVAIL
            && rc != SL_ENOSESSION && !cli_interrupted()) {
            rc = cli_fail(&ctx, rc, "talking to the broker failed");
            goto fail;
        }
        if (rc == SL_EUNAVAIL || rc == SL_ENOSESSION)
            poll(NULL, 0, 10);      /* such a call may return at once: no spin */
        now = cli_now();
        if (self.pending == 0 || self.confirms != seen_confirms) {
            seen_confirms = self.confirms;
            last_progress = now;
        } else if (now - last_progress >= ctx.timeout_s) {
            goto no_progress;
        }
    }

    now = cli_now();
    if (self.failed == 0 && !read_failed && !interrupted)
        fprintf(stderr, "published %" PRIu64 " messages to %s (%" PRIu64
                " stored, %" PRIu64 " duplicates) in %.2f s\n",
                self.stored + self.duplicates, self.topic, self.stored,
                self.duplicates, now - t0);
    else
        fprintf(stderr, "published %" PRIu64 " of %" PRIu64 " messages to %s"
                " (%" PRIu64 " stored, %" PRIu64 " duplicates, %" PRIu64
                " failed) in %.2f s%s%s\n",
                self.stored + self.duplicates, self.lines, self.topic,
                self.stored, self.duplicates, self.failed, now - t0,
                read_failed ? "; input not read to the end" : "",
                interrupted ? "; interrupted" : "");
    if (self.failed > 0 || read_failed)
        rc = CLI_EXIT_FAILED;
    else if (interrupted)
        rc = CLI_EXIT_INTERRUPTED;
    else
        rc = CLI_EXIT_OK;
    goto fail;

no_progress:
    snprintf(detail, sizeof detail, "(no confirm for %g s: %" PRIu64 " of %"
             PRIu64 " lines confirmed)", ctx.timeout_s, self.confirms,
             self.lines);
    rc = cli_unreachable(&ctx, detail);
fail:
    sl_client_destroy(&client);
    s_reader_close(&reader);
    s_pub_free(&self);
    return rc;
}
