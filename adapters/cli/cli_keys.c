/*  cli_keys - the security subcommands of `sluice`: keygen (writes a key
 *  pair, talks to no broker), keys add/list/revoke, grant, revoke-grant
 *  and rotate-key (one admin request each through the SDK). The broker
 *  decides who may do what; this file only shapes requests and answers.
 *  Single-threaded. The secret key never passes through this file: the
 *  SDK writes it straight to the certificate file.  */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

enum {
    S_OPT_JSON = CLI_OPT_OWN, S_OPT_OUT, S_OPT_PUBLISH, S_OPT_SUBSCRIBE,
    S_OPT_ADMIN, S_OPT_CONSUME,
};

/* Every permission by its name, in the order they are shown. */
static const struct { uint32_t bit; const char *name; } s_perm_names[] = {
    { SL_PERM_PUBLISH, "publish" }, { SL_PERM_SUBSCRIBE, "subscribe" },
    { SL_PERM_ADMIN, "admin" }, { SL_PERM_CONSUME, "consume" },
};
#define S_PERM_ALL (SL_PERM_PUBLISH | SL_PERM_SUBSCRIBE | SL_PERM_ADMIN | SL_PERM_CONSUME)

/* Longest identity name keygen takes: it becomes a file name. */
#define S_KEYGEN_NAME_MAX 64

typedef struct {
    bool json;                      /* --json */
    const char *out;                /* keygen --out DIR */
    sl_grant_t *grants;             /* grant --publish/--subscribe/--admin/--consume, owned
                                       array; patterns borrowed from argv */
    size_t ngrants;
} s_keys_t;

/* Add PERM on PATTERN, merged into an earlier grant of the same pattern. */
static void s_grant_add(s_keys_t *self, uint32_t perm, const char *pattern)
{
    size_t i;

    for (i = 0; i < self->ngrants; i++)
        if (strcmp(self->grants[i].pattern, pattern) == 0) {
            self->grants[i].perms |= perm;
            return;
        }
    self->grants = cli_xrealloc(self->grants,
                                (self->ngrants + 1) * sizeof *self->grants);
    self->grants[self->ngrants].perms = perm;
    self->grants[self->ngrants].pattern = pattern;
    self->ngrants++;
}

static int s_on_option(void *self_, cli_ctx_t *ctx, int opt, const char *arg)
{
    s_keys_t *self = self_;

    switch (opt) {
    case S_OPT_JSON:
        self->json = true;
        return CLI_EXIT_OK;
    case S_OPT_OUT:
        if (!*arg)
            return cli_usage_error(ctx, "--out needs a directory");
        self->out = arg;
        return CLI_EXIT_OK;
    case S_OPT_PUBLISH:
    case S_OPT_SUBSCRIBE:
    case S_OPT_ADMIN:
    case S_OPT_CONSUME:
        if (!*arg)
            return cli_usage_error(ctx, "a permission needs a topic pattern "
                                   "(shop.>, audit.*, >)");
        s_grant_add(self, opt == S_OPT_PUBLISH ? SL_PERM_PUBLISH
                        : opt == S_OPT_SUBSCRIBE ? SL_PERM_SUBSCRIBE
                        : opt == S_OPT_ADMIN ? SL_PERM_ADMIN
                        : SL_PERM_CONSUME, arg);
        return CLI_EXIT_OK;
    default:
        return cli_usage_error(ctx, "unexpected option");
    }
}

/* "publish+subscribe" for a permission set. */
static void s_perms_text(uint32_t perms, char *buf, size_t len)
{
    size_t i, used = 0;

    buf[0] = '\0';
    for (i = 0; i < sizeof s_perm_names / sizeof s_perm_names[0]; i++)
        if (perms & s_perm_names[i].bit) {
            used += (size_t)snprintf(buf + used, len - used, "%s%s",
                                     used ? "+" : "", s_perm_names[i].name);
            if (used >= len)
                return;
        }
    if ((perms & ~(uint32_t)S_PERM_ALL) && used < len)
        snprintf(buf + used, len - used, "%s0x%" PRIx32, used ? "+" : "",
                 perms & ~(uint32_t)S_PERM_ALL);
}

/* "publish shop.> · subscribe audit.*", or "-" for none. Caller frees. */
static char *s_grants_text(const sl_grant_t *g, size_t n)
{
    char perms[64];
    char *text = cli_xstrdup(n ? "" : "-");
    char *next;
    size_t i;

    for (i = 0; i < n; i++) {
        s_perms_text(g[i].perms, perms, sizeof perms);
        if (asprintf(&next, "%s%s%s %s", text, i ? " \u00b7 " : "", perms,
                     g[i].pattern) < 0) {
            fputs("sluice: out of memory\n", stderr);
            exit(CLI_EXIT_FAILED);
        }
        free(text);
        text = next;
    }
    return text;
}

static int s_finish_stdout(const cli_ctx_t *ctx)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sluice %s: cannot write to stdout\n", ctx->cmd);
        return CLI_EXIT_FAILED;
    }
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------- keygen */

static const char s_keygen_usage[] =
    "usage: sluice keygen NAME [--out DIR]\n"
    "\n"
    "Generate a CurveZMQ key pair for client NAME: DIR/NAME.cert holds both\n"
    "keys (mode 0600; give it to the client with --cert), DIR/NAME.pub the\n"
    "public key (register it with `sluice keys add NAME DIR/NAME.pub`).\n"
    "Prints the public key. Never replaces a file. Talks to no broker.\n"
    "\n"
    "  --out DIR               where to write (default: the current directory)\n";

/* NAME becomes a file name: letters, digits, '_', '-', '.', '@', and not
 * starting with '.' or '-'. */
static bool s_keygen_name_ok(const char *name)
{
    size_t len = strlen(name), i;

    if (len == 0 || len > S_KEYGEN_NAME_MAX || name[0] == '.' || name[0] == '-')
        return false;
    for (i = 0; i < len; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z')
              || (name[i] >= 'A' && name[i] <= 'Z')
              || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'
              || name[i] == '-' || name[i] == '.' || name[i] == '@'))
            return false;
    return true;
}

int cli_keygen(int argc, char **argv)
{
    static const struct option options[] = {
        { "out", required_argument, NULL, S_OPT_OUT },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    s_keys_t self = { 0 };
    cli_ctx_t ctx;
    char cert[PATH_MAX], pub[PATH_MAX], key[41], err[512];
    const char *name, *dir;
    int rc;

    cli_ctx_init(&ctx, "keygen", s_keygen_usage);
    ctx.offline = true;
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, 1, 1, &rc))
        return rc;
    name = ctx.pos[0];
    if (!s_keygen_name_ok(name))
        return cli_usage_error(&ctx, "NAME is 1-%d characters of [A-Za-z0-9_.@-],"
                               " not starting with '.' or '-'",
                               S_KEYGEN_NAME_MAX);
    dir = self.out ? self.out : ".";
    if (snprintf(cert, sizeof cert, "%s/%s.cert", dir, name) >= (int)sizeof cert
        || snprintf(pub, sizeof pub, "%s/%s.pub", dir, name) >= (int)sizeof pub)
        return cli_usage_error(&ctx, "--out path too long");
    rc = sl_cert_create(name, cert, pub, key, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "sluice keygen: %s\n", err);
        return rc == SL_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
    }
    printf("%s\n", key);
    fprintf(stderr, "wrote %s (key pair, mode 0600) and %s (public key)\n"
            "register it at the broker: sluice keys add %s %s\n",
            cert, pub, name, pub);
    return s_finish_stdout(&ctx);
}

/* --------------------------------------------------------------- keys */

static const char s_keys_add_usage[] =
    "usage: sluice keys add NAME PUBKEY|FILE [OPTIONS]\n"
    "\n"
    "Register client NAME with its public key: 40 Z85 characters, or a file\n"
    "holding it (NAME.pub from `sluice keygen`, or a certificate: only its\n"
    "public key is read and sent). The new identity may do nothing until\n"
    "`sluice grant` gives it permissions. Needs the admin permission.\n"
    "\n"
    CLI_COMMON_USAGE;

static const char s_keys_list_usage[] =
    "usage: sluice keys list [--json] [OPTIONS]\n"
    "\n"
    "List the registered identities: name, public key, state (active or\n"
    "revoked), open sessions, and grants (\"publish shop.> \u00b7 subscribe\n"
    "audit.*\"; '-' = none). Needs the admin permission.\n"
    "\n"
    "  --json                  one JSON object {\"keys\": [...]}\n"
    CLI_COMMON_USAGE;

static const char s_keys_revoke_usage[] =
    "usage: sluice keys revoke NAME [OPTIONS]\n"
    "\n"
    "Revoke NAME: its key is refused from now on and its open connections\n"
    "are closed. It stays listed, revoked. Needs the admin permission.\n"
    "\n"
    CLI_COMMON_USAGE;

/* The shape of the one-request commands: parse, connect, run FN. */
typedef int (s_run_fn)(cli_ctx_t *ctx, s_keys_t *self, sl_client_t *client);

static int s_run(const char *cmd, const char *usage, int argc, char **argv,
                 const struct option *options, int npos, s_run_fn *fn)
{
    s_keys_t self = { 0 };
    cli_ctx_t ctx;
    sl_client_t *client = NULL;
    int rc;

    cli_ctx_init(&ctx, cmd, usage);
    if (!cli_parse(&ctx, argc, argv, options, s_on_option, &self, npos, npos,
                   &rc))
        goto fail;
    rc = cli_connect(&ctx, NULL, &client);
    if (rc != CLI_EXIT_OK)
        goto fail;
    rc = fn(&ctx, &self, client);
fail:
    sl_client_destroy(&client);
    free(self.grants);
    return rc;
}

static int s_keys_add(cli_ctx_t *ctx, s_keys_t *self, sl_client_t *client)
{
    const char *name = ctx->pos[0];
    int rc;

    (void)self;
    rc = sl_key_add(client, name, ctx->pos[1]);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot add key '%s'", name);
    fprintf(stderr, "key %s added; it may do nothing yet: sluice grant %s "
            "--publish PATTERN --subscribe PATTERN\n", name, name);
    return CLI_EXIT_OK;
}

int cli_keys_add(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    return s_run("keys add", s_keys_add_usage, argc, argv, options, 2,
                 s_keys_add);
}

static int s_keys_revoke(cli_ctx_t *ctx, s_keys_t *self, sl_client_t *client)
{
    const char *name = ctx->pos[0];
    int rc;

    (void)self;
    rc = sl_key_revoke(client, name);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot revoke key '%s'", name);
    fprintf(stderr, "key %s revoked\n", name);
    return CLI_EXIT_OK;
}

int cli_keys_revoke(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    return s_run("keys revoke", s_keys_revoke_usage, argc, argv, options, 1,
                 s_keys_revoke);
}

static int s_identity_cmp(const void *a, const void *b)
{
    return strcmp(((const sl_identity_t *)a)->name,
                  ((const sl_identity_t *)b)->name);
}

static void s_keys_json(const sl_identity_t *ids, size_t n, FILE *out)
{
    size_t i, g, k;
    bool first;

    fputs("{\"keys\":[", out);
    for (i = 0; i < n; i++) {
        fputs(i ? ",{\"name\":" : "{\"name\":", out);
        cli_json_string(out, ids[i].name);
        fputs(",\"public_key\":", out);
        cli_json_string(out, ids[i].public_key);
        fprintf(out, ",\"revoked\":%s,\"created_us\":%" PRIu64
                ",\"revoked_us\":%" PRIu64 ",\"sessions\":%" PRIu32
                ",\"grants\":[", ids[i].revoked ? "true" : "false",
                ids[i].created_us, ids[i].revoked_us, ids[i].sessions);
        for (g = 0; g < ids[i].ngrants; g++) {
            fputs(g ? ",{\"pattern\":" : "{\"pattern\":", out);
            cli_json_string(out, ids[i].grants[g].pattern);
            fputs(",\"perms\":[", out);
            first = true;
            for (k = 0; k < sizeof s_perm_names / sizeof s_perm_names[0]; k++)
                if (ids[i].grants[g].perms & s_perm_names[k].bit) {
                    fprintf(out, "%s\"%s\"", first ? "" : ",", s_perm_names[k].name);
                    first = false;
                }
            fputs("]}", out);
        }
        fputs("]}", out);
    }
    fputs("]}\n", out);
}

static int s_keys_list(cli_ctx_t *ctx, s_keys_t *self, sl_client_t *client)
{
    static const char *const headers[] = {
        "NAME", "PUBLIC-KEY", "STATE", "SESSIONS", "GRANTS",
    };
    sl_identity_t *ids = NULL;
    cli_table_t *table;
    size_t n = 0, i;
    char *grants;
    int rc;

    rc = sl_key_list(client, &ids, &n);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot list keys");
    if (n)
        qsort(ids, n, sizeof *ids, s_identity_cmp);
    if (self->json) {
        s_keys_json(ids, n, stdout);
    } else {
        table = cli_table_new(5, headers, "lllrl");
        for (i = 0; i < n; i++) {
            cli_table_cell(table, "%s", ids[i].name);
            cli_table_cell(table, "%s", ids[i].public_key);
            cli_table_cell(table, "%s", ids[i].revoked ? "revoked" : "active");
            cli_table_cell(table, "%" PRIu32, ids[i].sessions);
            grants = s_grants_text(ids[i].grants, ids[i].ngrants);
            cli_table_cell(table, "%s", grants);
            free(grants);
        }
        cli_table_print(table, stdout);
        cli_table_destroy(&table);
    }
    sl_identity_list_free(ids, n);
    return s_finish_stdout(ctx);
}

int cli_keys_list(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { "json", no_argument, NULL, S_OPT_JSON },
        { NULL, 0, NULL, 0 },
    };
    return s_run("keys list", s_keys_list_usage, argc, argv, options, 0,
                 s_keys_list);
}

/* -------------------------------------------------------------- grant */

static const char s_grant_usage[] =
    "usage: sluice grant NAME [--publish PATTERN]... [--subscribe PATTERN]...\n"
    "                    [--admin PATTERN]... [--consume PATTERN]... [OPTIONS]\n"
    "\n"
    "Give identity NAME permissions on topic patterns ('*' one word, '>' the\n"
    "rest). Each option may be repeated; at least one is needed. Needs the\n"
    "admin permission.\n"
    "\n"
    "  --publish PATTERN       may publish to matching topics\n"
    "  --subscribe PATTERN     may subscribe to matching topics\n"
    "  --admin PATTERN         may administer (keys, grants, topics,\n"
    "                          subscriptions, audit: the admin commands need\n"
    "                          it on '>')\n"
    "  --consume PATTERN       may attach to, ack and remove the durable\n"
    "                          subscriptions whose NAMES match, whoever\n"
    "                          created them (attaching also needs --subscribe\n"
    "                          on their topics)\n"
    CLI_COMMON_USAGE;

static const char s_revoke_grant_usage[] =
    "usage: sluice revoke-grant NAME [--publish PATTERN]...\n"
    "                           [--subscribe PATTERN]... [--admin PATTERN]...\n"
    "                           [--consume PATTERN]... [OPTIONS]\n"
    "\n"
    "Take permissions away from identity NAME: each option removes that\n"
    "permission from NAME's grant with exactly that pattern. Needs the admin\n"
    "permission.\n"
    "\n"
    "  --publish PATTERN       no more publishing under PATTERN\n"
    "  --subscribe PATTERN     no more subscribing under PATTERN\n"
    "  --admin PATTERN         no more administering under PATTERN\n"
    "  --consume PATTERN       no more using others' subscriptions named\n"
    "                          under PATTERN\n"
    CLI_COMMON_USAGE;

static const struct option s_grant_options[] = {
    CLI_COMMON_OPTIONS,
    { "publish", required_argument, NULL, S_OPT_PUBLISH },
    { "subscribe", required_argument, NULL, S_OPT_SUBSCRIBE },
    { "admin", required_argument, NULL, S_OPT_ADMIN },
    { "consume", required_argument, NULL, S_OPT_CONSUME },
    { NULL, 0, NULL, 0 },
};

static int s_grant_change(cli_ctx_t *ctx, s_keys_t *self, sl_client_t *client,
                          bool revoke)
{
    const char *name = ctx->pos[0];
    char *text;
    int rc;

    rc = sl_grant(client, name, self->grants, self->ngrants, revoke);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot %s '%s'",
                        revoke ? "revoke permissions of" : "grant", name);
    text = s_grants_text(self->grants, self->ngrants);
    fprintf(stderr, "%s %s: %s\n", revoke ? "revoked from" : "granted to",
            name, text);
    free(text);
    return CLI_EXIT_OK;
}

static int s_grant(cli_ctx_t *ctx, s_keys_t *self, sl_client_t *client)
{
    return s_grant_change(ctx, self, client, false);
}

static int s_revoke_grant(cli_ctx_t *ctx, s_keys_t *self, sl_client_t *client)
{
    return s_grant_change(ctx, self, client, true);
}

/* Like s_run, but refuses an empty change before connecting. */
static int s_run_grant(const char *cmd, const char *usage, int argc,
                       char **argv, s_run_fn *fn)
{
    s_keys_t self = { 0 };
    cli_ctx_t ctx;
    sl_client_t *client = NULL;
    int rc;

    cli_ctx_init(&ctx, cmd, usage);
    if (!cli_parse(&ctx, argc, argv, s_grant_options, s_on_option, &self, 1,
                   1, &rc))
        goto fail;
    if (self.ngrants == 0) {
        rc = cli_usage_error(&ctx, "give at least one of --publish, "
                             "--subscribe, --admin, --consume");
        goto fail;
    }
    rc = cli_connect(&ctx, NULL, &client);
    if (rc != CLI_EXIT_OK)
        goto fail;
    rc = fn(&ctx, &self, client);
fail:
    sl_client_destroy(&client);
    free(self.grants);
    return rc;
}

int cli_grant(int argc, char **argv)
{
    return s_run_grant("grant", s_grant_usage, argc, argv, s_grant);
}

int cli_revoke_grant(int argc, char **argv)
{
    return s_run_grant("revoke-grant", s_revoke_grant_usage, argc, argv,
                       s_revoke_grant);
}

/* --------------------------------------------------------- rotate-key */

static const char s_rotate_key_usage[] =
    "usage: sluice rotate-key [OPTIONS]\n"
    "\n"
    "Have the broker seal new records with a fresh data key (encryption at\n"
    "rest); records already stored stay readable. Prints the new key's id.\n"
    "Needs the admin permission.\n"
    "\n"
    CLI_COMMON_USAGE;

static int s_rotate_key(cli_ctx_t *ctx, s_keys_t *self, sl_client_t *client)
{
    uint32_t id = 0;
    int rc;

    (void)self;
    rc = sl_rotate_key(client, &id);
    if (rc != 0)
        return cli_fail(ctx, rc, "cannot rotate the data key");
    printf("%" PRIu32 "\n", id);
    fprintf(stderr, "data key rotated: new records are sealed with key %"
            PRIu32 "\n", id);
    return s_finish_stdout(ctx);
}

int cli_rotate_key(int argc, char **argv)
{
    static const struct option options[] = {
        CLI_COMMON_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    return s_run("rotate-key", s_rotate_key_usage, argc, argv, options, 0,
                 s_rotate_key);
}
