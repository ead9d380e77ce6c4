/*  cli_routes_replay - `sluice routes diff A [B] --replay TOPIC [--last N]`:
 *  what an edit of the routing table would do to real traffic. Reads the
 *  last N stored messages of TOPIC through an ephemeral subscription (the
 *  broker stores nothing for it), fetches the mappings and schemas both
 *  tables need from the broker's registry, routes every message through
 *  both tables offline (cli_route_run.c: the engines the broker runs) and
 *  prints each message whose route set or output differs, then a summary
 *  by route. Writes nothing anywhere. Single-threaded; called from
 *  cli_routes.c, which resolves the operands.  */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "cli_route_run.h"
#include "slc.h"
#include "slt_doc.h"

#define S_ERR_MAX 16384
#define S_WAIT_MS 200           /* one sl_sub_next wait */
#define S_SHOW_MAX 160          /* bytes of a document shown on a + / - line */
#define S_DIFFS_MAX 4           /* field differences shown on a ~ line */

typedef struct {
    cli_ctx_t *ctx;
    sl_client_t *client;
    cli_route_world_t rw;
    slt_route_table_t *before, *after;
    /* the summary: per route name, messages gained, lost, changed */
    char **names;
    uint64_t (*counts)[3];
    size_t nnames;
    uint64_t replayed, changed;
} s_replay_t;

enum { S_GAINED, S_LOST, S_CHANGED };

/* ------------------------------------------------- mappings and schemas */

/* Schema REF (SUBJECT@VERSION) from the broker's registry. */
static char *s_schema_text(void *arg, const char *ref, size_t *len)
{
    s_replay_t *r = arg;
    char subject[512];
    uint64_t version = 0;
    const char *at = strrchr(ref, '@');
    if (!at || (size_t) (at - ref) >= sizeof subject || cli_parse_u64(at + 1, &version) != 0
        || version > UINT32_MAX) {
        fprintf(stderr, "sluice %s: schema '%s' is not SUBJECT@VERSION\n", r->ctx->cmd, ref);
        return NULL;
    }
    memcpy(subject, ref, (size_t) (at - ref));
    subject[at - ref] = '\0';
    sl_schema_info_t info;
    int rc = sl_schema_get(r->client, subject, (uint32_t) version, &info);
    if (rc != 0) {
        fprintf(stderr, "sluice %s: cannot fetch schema %s: %s\n", r->ctx->cmd, ref,
                cli_code_name(rc));
        return NULL;
    }
    char *text = info.schema;
    info.schema = NULL;
    sl_schema_info_clear(&info);
    *len = text ? strlen(text) : 0;
    return text;
}

/* Fetch every mapping TABLE names that the world does not hold yet. One
 * that is missing is said here; compiling the table then refuses it. */
static void s_fetch_mappings(s_replay_t *r, const slt_route_table_t *table)
{
    char origin[300];
    for (size_t i = 0; table && i < slt_route_count(table); i++) {
        const char *name = slt_route_mapping(table, i);
        if (!name || cli_route_find_mapping(&r->rw, name))
            continue;
        sl_mapping_info_t info;
        int rc = sl_mapping_get(r->client, name, &info);
        if (rc != 0) {
            fprintf(stderr, "sluice %s: cannot fetch mapping %s: %s\n", r->ctx->cmd, name,
                    cli_code_name(rc));
            continue;
        }
        snprintf(origin, sizeof origin, "mapping %s", name);
        if (info.yaml)
            (void) cli_route_add_mapping(&r->rw, info.yaml, strlen(info.yaml), origin);
        sl_mapping_info_clear(&info);
    }
}

/* Compile YAML (WHAT names it) twice: first without resolving, to learn
 * the mappings it names, then against them. CLI_EXIT_OK or NOTRUN. */
static int s_compile(s_replay_t *r, const char *yaml, const char *what, slt_route_table_t **out)
{
    slt_route_resolver_t none = { NULL, NULL, NULL }, resolver = cli_route_resolver(&r->rw);
    slt_route_table_t *bare = NULL;
    char *err = cli_xmalloc(S_ERR_MAX);
    int rc = CLI_EXIT_OK;
    err[0] = '\0';
    int crc = slt_route_compile(yaml, strlen(yaml), what, &none, &bare, err, S_ERR_MAX);
    if (crc == 0) {
        s_fetch_mappings(r, bare);
        err[0] = '\0';
        crc = slt_route_compile(yaml, strlen(yaml), what, &resolver, out, err, S_ERR_MAX);
    }
    if (crc != 0) {
        fprintf(stderr, "%s%ssluice %s: %s does not compile with the broker's mappings "
                "(%s): nothing replayed\n", err, *err && err[strlen(err) - 1] != '\n' ? "\n" : "",
                r->ctx->cmd, what, cli_code_name(crc));
        rc = CLI_EXIT_NOTRUN;
    }
    slt_route_destroy(&bare);
    free(err);
    return rc;
}

/* ---------------------------------------------------- comparing outcomes */

static bool s_in(char *const *set, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i], name) == 0)
            return true;
    return false;
}

static void s_count(s_replay_t *r, const char *route, int what)
{
    size_t i = 0;
    while (i < r->nnames && strcmp(r->names[i], route) != 0)
        i++;
    if (i == r->nnames) {
        r->names = cli_xrealloc(r->names, (i + 1) * sizeof *r->names);
        r->counts = cli_xrealloc(r->counts, (i + 1) * sizeof *r->counts);
        r->names[i] = cli_xstrdup(route);
        memset(r->counts[i], 0, sizeof r->counts[i]);
        r->nnames++;
    }
    r->counts[i][what]++;
}

/* A growing text: the lines printed under a message that changes. */
typedef struct {
    char *buf;
    size_t len;
    int diffs;                  /* field differences on the current ~ line */
} s_text_t;

static void s_add(s_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_add(s_text_t *t, const char *fmt, ...)
{
    char piece[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(piece, sizeof piece, fmt, ap);
    va_end(ap);
    size_t n = strlen(piece);
    t->buf = cli_xrealloc(t->buf, t->len + n + 1);
    memcpy(t->buf + t->len, piece, n + 1);
    t->len += n;
}

/* V as compact JSON, cut to S_SHOW_MAX bytes. Caller frees. */
static char *s_show(const cJSON *v)
{
    char *text = NULL;
    if (!v || slt_doc_encode(v, &text, NULL) != 0)
        return cli_xstrdup("(nothing)");
    if (strlen(text) > S_SHOW_MAX)
        strcpy(text + S_SHOW_MAX - 3, "...");
    return text;
}

/* The fields where A (before) and B (after) differ: "/path: old -> new". */
static void s_json_diff(s_text_t *t, const char *path, const cJSON *a, const cJSON *b)
{
    char sub[1024];
    if (cJSON_Compare(a, b, true) || t->diffs > S_DIFFS_MAX)
        return;
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        const cJSON *v;
        cJSON_ArrayForEach(v, a) {
            snprintf(sub, sizeof sub, "%s/%s", path, v->string);
            s_json_diff(t, sub, v, cJSON_GetObjectItemCaseSensitive(b, v->string));
        }
        cJSON_ArrayForEach(v, b)
            if (!cJSON_GetObjectItemCaseSensitive(a, v->string)) {
                snprintf(sub, sizeof sub, "%s/%s", path, v->string);
                s_json_diff(t, sub, NULL, v);
            }
        return;
    }
    if (++t->diffs > S_DIFFS_MAX) {
        s_add(t, "; ...");
        return;
    }
    char *old = a ? s_show(a) : cli_xstrdup("(none)"), *new = b ? s_show(b) : cli_xstrdup("(none)");
    s_add(t, "%s%s: %s -> %s", t->diffs > 1 ? "; " : "", *path ? path : "/", old, new);
    free(old);
    free(new);
}

static bool s_leg_equal(const cli_route_leg_t *a, const cli_route_leg_t *b)
{
    if (a->text || b->text)
        return a->text && b->text && strcmp(a->text, b->text) == 0;
    return cJSON_Compare(a->doc, b->doc, true);
}

static void s_leg_line(s_text_t *t, char sign, const char *route, const cli_route_leg_t *l)
{
    if (l->text) {
        s_add(t, "    %c %s: %s \"%s\"\n", sign, route, l->topic, l->text);
        return;
    }
    char *doc = s_show(l->doc);
    s_add(t, "    %c %s: %s %s\n", sign, route, l->topic, doc);
    free(doc);
}

/* The legs ROUTE made before (B) and after (A) as lines of T, paired by
 * target topic in the order made. Whether any differ. */
static bool s_route_legs(s_text_t *t, const char *route, const cli_route_outcome_t *b,
                         const cli_route_outcome_t *a)
{
    bool differs = false;
    bool *used = calloc(a->nlegs + 1, sizeof *used);
    for (size_t i = 0; i < b->nlegs; i++) {
        const cli_route_leg_t *lb = &b->legs[i];
        if (strcmp(lb->route, route) != 0)
            continue;
        size_t j = 0;
        while (j < a->nlegs && (used[j] || strcmp(a->legs[j].route, route) != 0
                                || strcmp(a->legs[j].topic, lb->topic) != 0))
            j++;
        if (j == a->nlegs) {
            s_leg_line(t, '-', route, lb);
            differs = true;
            continue;
        }
        used[j] = true;
        if (s_leg_equal(lb, &a->legs[j]))
            continue;
        differs = true;
        if (lb->text || a->legs[j].text) {
            s_leg_line(t, '-', route, lb);
            s_leg_line(t, '+', route, &a->legs[j]);
            continue;
        }
        s_add(t, "    ~ %s: %s ", route, lb->topic);
        t->diffs = 0;
        s_json_diff(t, "", lb->doc, a->legs[j].doc);
        s_add(t, "\n");
    }
    for (size_t j = 0; j < a->nlegs; j++)
        if (!used[j] && strcmp(a->legs[j].route, route) == 0) {
            s_leg_line(t, '+', route, &a->legs[j]);
            differs = true;
        }
    free(used);
    return differs;
}

static void s_set(s_text_t *t, const cli_route_outcome_t *o)
{
    s_add(t, "[");
    for (size_t i = 0; i < o->nfired; i++)
        s_add(t, "%s%s", i ? ", " : "", o->fired[i]);
    s_add(t, "]");
}

/* Compare what the two tables do with the message at OFFSET; print it
 * when anything differs, and count. */
static void s_compare(s_replay_t *r, const char *topic, uint64_t offset,
                      const cli_route_outcome_t *b, const cli_route_outcome_t *a)
{
    s_text_t lines = { 0 }, head = { 0 };
    bool differs = false;
    for (int side = 0; side < 2; side++) {
        const cli_route_outcome_t *o = side ? a : b;
        for (size_t i = 0; i < o->nfired; i++) {
            const char *route = o->fired[i];
            bool inb = s_in(b->fired, b->nfired, route), ina = s_in(a->fired, a->nfired, route);
            if (side == 1 && inb)
                continue;       /* seen from the before side */
            bool legs = s_route_legs(&lines, route, b, a);
            if (inb && ina && legs)
                s_count(r, route, S_CHANGED);
            else if (inb && !ina)
                s_count(r, route, S_LOST);
            else if (!inb && ina)
                s_count(r, route, S_GAINED);
            differs = differs || legs || !inb || !ina;
        }
    }
    r->replayed++;
    if (differs) {
        r->changed++;
        s_add(&head, "%s offset %" PRIu64 ": ", topic, offset);
        s_set(&head, b);
        s_add(&head, " -> ");
        s_set(&head, a);
        printf("%s\n%s", head.buf, lines.buf ? lines.buf : "");
    }
    free(head.buf);
    free(lines.buf);
}

/* ------------------------------------------------------ the messages */

static cJSON *s_headers(const sl_msg_t *msg)
{
    cJSON *h = cJSON_CreateObject();
    const char *key, *value;
    for (size_t i = 0; i < sl_msg_header_count(msg); i++)
        if (sl_msg_header_at(msg, i, &key, &value) == 0)
            cJSON_AddStringToObject(h, key, value);
    return h;
}

static int s_replay_one(s_replay_t *r, const sl_msg_t *msg)
{
    cli_route_outcome_t b = { 0 }, a = { 0 };
    size_t len = 0;
    const void *payload = sl_msg_payload(msg, &len);
    const char *ct = sl_msg_content_type(msg);
    cJSON *headers = s_headers(msg);
    cli_route_input_t in = { sl_msg_topic(msg), payload, len, ct && *ct ? ct : NULL, headers,
                             sl_msg_offset(msg) };
    int rc = r->before ? cli_route_message(&r->rw, r->before, &in, &b) : 0;
    if (rc == 0)
        rc = cli_route_message(&r->rw, r->after, &in, &a);
    if (rc == 0)
        s_compare(r, in.topic, in.offset, &b, &a);
    cli_route_outcome_free(&b);
    cli_route_outcome_free(&a);
    cJSON_Delete(headers);
    return rc;
}

/* Read offsets FROM .. TO-1 of TOPIC and replay each. */
static int s_read(s_replay_t *r, const char *topic, uint64_t from, uint64_t to)
{
    cli_ctx_t *ctx = r->ctx;
    sl_sub_options_t opts;
    sl_sub_t *sub = NULL;
    sl_msg_t *msg = NULL;
    sl_sub_options_init(&opts);
    opts.pattern = topic;
    opts.ephemeral = true;      /* no cursor, no acks: nothing is written */
    opts.start = SL_START_OFFSET;
    opts.start_offset = from;
    int rc = sl_subscribe(r->client, &opts, &sub);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot read %s", topic) == CLI_EXIT_UNREACHABLE
                   ? CLI_EXIT_UNREACHABLE : CLI_EXIT_NOTRUN;
    double last = cli_now();
    uint64_t next = from;
    while (next < to) {
        rc = sl_sub_next(sub, S_WAIT_MS, &msg);
        if (rc == SL_ETIMEOUT || rc == SL_EUNAVAIL || rc == SL_ENOSESSION) {
            if (rc != SL_ETIMEOUT)
                poll(NULL, 0, S_WAIT_MS);
            if (cli_now() - last < ctx->timeout_s)
                continue;
            fprintf(stderr, "sluice %s: no message of %s came for %g s (read up to offset %"
                    PRIu64 " of %" PRIu64 "): nothing replayed\n", ctx->cmd, topic,
                    ctx->timeout_s, next, to);
            rc = CLI_EXIT_UNREACHABLE;
            goto done;
        }
        if (rc != 0) {
            rc = cli_fail(ctx, rc, "cannot read %s", topic) == CLI_EXIT_UNREACHABLE
                     ? CLI_EXIT_UNREACHABLE : CLI_EXIT_NOTRUN;
            goto done;
        }
        last = cli_now();
        uint64_t offset = sl_msg_offset(msg);
        if (offset < to && s_replay_one(r, msg) != 0) {
            fprintf(stderr, "sluice %s: out of memory\n", ctx->cmd);
            rc = CLI_EXIT_NOTRUN;
            goto done;
        }
        next = offset + 1;
        sl_msg_destroy(&msg);
    }
    rc = CLI_EXIT_OK;
done:
    sl_msg_destroy(&msg);
    if (sub)
        (void) sl_unsubscribe(&sub, false);
    return rc;
}

static void s_summary(const s_replay_t *r)
{
    static const char *const headers[] = { "ROUTE", "GAINED", "LOST", "CHANGED" };
    if (r->nnames) {
        cli_table_t *table = cli_table_new(4, headers, "lrrr");
        for (size_t i = 0; i < r->nnames; i++) {
            cli_table_cell(table, "%s", r->names[i]);
            for (int k = 0; k < 3; k++)
                cli_table_cell(table, "%" PRIu64, r->counts[i][k]);
        }
        printf("\n");
        cli_table_print(table, stdout);
        cli_table_destroy(&table);
    }
    printf("%" PRIu64 " message%s replayed, %" PRIu64 " would change\n", r->replayed,
           r->replayed == 1 ? "" : "s", r->changed);
}

int cli_routes_replay(cli_ctx_t *ctx, sl_client_t *client, const char *before,
                      const char *before_what, const char *after, const char *after_what,
                      const char *topic, uint64_t last)
{
    s_replay_t r = { .ctx = ctx, .client = client };
    sl_topic_info_t *topics = NULL;
    size_t ntopics = 0;
    r.rw.cmd = ctx->cmd;
    r.rw.schema_text = s_schema_text;
    r.rw.arg = &r;
    int rc = before ? s_compile(&r, before, before_what, &r.before) : CLI_EXIT_OK;
    if (rc == CLI_EXIT_OK)
        rc = s_compile(&r, after, after_what, &r.after);
    if (rc != CLI_EXIT_OK)
        goto done;
    int src = sl_stats(client, &topics, &ntopics, NULL, NULL);
    if (src != 0) {
        rc = cli_fail(ctx, src, "cannot read the topics") == CLI_EXIT_UNREACHABLE
                 ? CLI_EXIT_UNREACHABLE : CLI_EXIT_NOTRUN;
        goto done;
    }
    size_t t = 0;
    while (t < ntopics && strcmp(topics[t].name, topic) != 0)
        t++;
    if (t == ntopics) {
        fprintf(stderr, "sluice %s: no topic %s at the broker: nothing replayed\n", ctx->cmd,
                topic);
        rc = CLI_EXIT_NOTRUN;
        goto done;
    }
    uint64_t to = topics[t].next_offset, first = topics[t].first_offset;
    uint64_t from = to - first > last ? to - last : first;
    char *diff = slt_route_diff(r.before, r.after);
    printf("--- %s\n+++ %s\n%s%s", before_what, after_what, diff ? diff : "",
           diff && *diff && diff[strlen(diff) - 1] != '\n' ? "\n" : "");
    free(diff);
    printf("replaying %s, offsets %" PRIu64 "..%" PRIu64 " (%" PRIu64 " message%s)\n",
           topic, from, to ? to - 1 : 0, to - from, to - from == 1 ? "" : "s");
    fflush(stdout);
    rc = to > from ? s_read(&r, topic, from, to) : CLI_EXIT_OK;
    if (rc == CLI_EXIT_OK) {
        s_summary(&r);
        rc = r.changed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sluice %s: cannot write to stdout\n", ctx->cmd);
        rc = CLI_EXIT_NOTRUN;
    }
done:
    free(topics);
    slt_route_destroy(&r.before);
    slt_route_destroy(&r.after);
    cli_route_world_free(&r.rw);
    for (size_t i = 0; i < r.nnames; i++)
        free(r.names[i]);
    free(r.names);
    free(r.counts);
    return rc;
}
