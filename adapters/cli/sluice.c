/*  sluice - the command for people and scripts: publish lines, print a
 *  subscription, list topics and statistics, create topics, remove
 *  subscriptions, manage keys, grants, the audit trail, schemas, mappings,
 *  routing tables, dead letters and cursors. This file only
 *  dispatches to the subcommands (cli_*.c), handing them the connection
 *  options typed before the command, and owns the SIGINT flag.
 *  Single-threaded. Talks to the broker only through libsluice (sluice.h);
 *  docs/cli.md is the reference.  */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"          /* meson passes its project version */
#endif

/* The one piece of mutable file-scope state in the command: a signal
 * handler can only tell the program something through a volatile
 * sig_atomic_t, so pub and sub poll this flag to stop cleanly. */
static volatile sig_atomic_t s_interrupted;

static void s_on_sigint(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

bool cli_interrupted(void)
{
    return s_interrupted != 0;
}

void cli_catch_sigint(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_sigint;
    /* One-shot: a second Ctrl-C kills at once if the clean stop hangs.
     * No SA_RESTART, so a blocking poll returns EINTR and sees the flag. */
    sa.sa_flags = (int)SA_RESETHAND;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        perror("sluice: sigaction");    /* Ctrl-C then just kills: harmless */
}

static const char s_usage[] =
    "usage: sluice [CONNECTION OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "Commands:\n"
    "  pub TOPIC               publish stdin (or --file), one message per line\n"
    "  sub TOPIC               print messages, one payload per line\n"
    "  topics                  list topics\n"
    "  stats                   topics, subscriptions and broker counters\n"
    "  topic create NAME       create a topic or change its retention\n"
    "  topic set NAME --schema SUBJECT[@N]  validate publishes to NAME\n"
    "  schema register SUBJECT FILE  register a JSON Schema version\n"
    "  schema check SUBJECT FILE     would it be accepted? (registers nothing)\n"
    "  schema list             subjects and their latest versions\n"
    "  schema show SUBJECT[@N] print a schema version\n"
    "  mapping add FILE        register a mapping (YAML)\n"
    "  mapping list|show NAME|rm NAME  the registered mappings\n"
    "  mapping test FILE.test.yaml [--schemas DIR]  run a mapping's fixtures\n"
    "  routes apply FILE       make FILE the next routing table version\n"
    "  routes list|show [N]    the table's versions; one version's YAML\n"
    "  routes diff A [B]       two versions or files, or one against the live\n"
    "  routes rollback N       a new version with version N's table\n"
    "  routes backfill ROUTE   run one route over a topic's stored messages\n"
    "  routes test FIXTURES    run routing fixtures offline (no broker)\n"
    "  trace TOPIC OFFSET      what routing did with one message\n"
    "  dlq list TOPIC          the dead letters of a _dlq. topic not removed\n"
    "  dlq rm TOPIC OFFSET...  remove dead letters\n"
    "  dlq redrive TOPIC (OFFSET...|--all)  publish them back, then remove them\n"
    "  sub seek NAME --offset N|--time T|--earliest|--latest  move a cursor\n"
    "  sub-rm NAME             delete a durable subscription and its cursor\n"
    "  keygen NAME             write a key pair: NAME.cert and NAME.pub\n"
    "  keys add NAME PUBKEY    register a client's public key (or its file)\n"
    "  keys list               list identities, their state and grants\n"
    "  keys revoke NAME        refuse NAME's key from now on\n"
    "  grant NAME              give NAME permissions on topic patterns\n"
    "  revoke-grant NAME       take permissions away from NAME\n"
    "  audit                   print the broker's audit trail\n"
    "  rotate-key              seal new records with a fresh data key\n"
    "  help [COMMAND]          this text, or the usage of COMMAND\n"
    "\n"
    "Connection options, which every command that talks to the broker takes\n"
    "(all but keygen), before or after the command; given both before and\n"
    "after it, the one after wins:\n"
    "  --broker ENDPOINT       broker to talk to (default $SLUICE_BROKER, else\n"
    "                          the --home directory's endpoint file, else\n"
    "                          " SL_DEFAULT_ENDPOINT ")\n"
    "  --timeout SECONDS       give up when the broker is unreachable or makes\n"
    "                          no progress for this long (default 30)\n"
    CLI_KEY_USAGE
    "  --help                  usage of the command\n"
    "\n"
    "sluice --version prints the version; bash completion is installed as\n"
    "share/bash-completion/completions/sluice.\n"
    "\n"
    "Without key options or $SLUICE_CERT / $SLUICE_SERVER_KEY / $SLUICE_HOME,\n"
    "the keys of " SL_DEFAULT_HOME " are used when it holds server.pub; else\n"
    "the connection is plain text.\n"
    "\n"
    "Exit codes: 0 ok, 1 failed, 2 broker unreachable or timeout, 3 key\n"
    "refused, 64 usage, 130 interrupted. 'sluice COMMAND --help' for details;\n"
    "docs/cli.md.\n";

typedef struct {
    const char *name;               /* first word(s) on the command line */
    const char *sub;                /* second word, or NULL */
    int (*run)(int argc, char **argv);
} s_command_t;

static const s_command_t s_commands[] = {
    { "pub", NULL, cli_pub },
    { "sub", "seek", cli_sub_seek },    /* before `sub TOPIC` */
    { "sub", NULL, cli_sub },
    { "topics", NULL, cli_topics },
    { "stats", NULL, cli_stats },
    { "topic", "create", cli_topic_create },
    { "topic", "set", cli_topic_set },
    { "schema", "register", cli_schema_register },
    { "schema", "check", cli_schema_check },
    { "schema", "list", cli_schema_list },
    { "schema", "show", cli_schema_show },
    { "mapping", "add", cli_mapping_add },
    { "mapping", "list", cli_mapping_list },
    { "mapping", "show", cli_mapping_show },
    { "mapping", "rm", cli_mapping_rm },
    { "mapping", "test", cli_mapping_test },
    { "routes", "apply", cli_routes_apply },
    { "routes", "list", cli_routes_list },
    { "routes", "show", cli_routes_show },
    { "routes", "diff", cli_routes_diff },
    { "routes", "rollback", cli_routes_rollback },
    { "routes", "backfill", cli_routes_backfill },
    { "routes", "test", cli_routes_test },
    { "trace", NULL, cli_trace },
    { "dlq", "list", cli_dlq_list },
    { "dlq", "rm", cli_dlq_rm },
    { "dlq", "redrive", cli_dlq_redrive },
    { "sub-rm", NULL, cli_sub_rm },
    { "keygen", NULL, cli_keygen },
    { "keys", "add", cli_keys_add },
    { "keys", "list", cli_keys_list },
    { "keys", "revoke", cli_keys_revoke },
    { "grant", NULL, cli_grant },
    { "revoke-grant", NULL, cli_revoke_grant },
    { "audit", NULL, cli_audit },
    { "rotate-key", NULL, cli_rotate_key },
};

#define S_NCOMMANDS (sizeof s_commands / sizeof s_commands[0])

/* The entry for ARGV (a command word, maybe followed by a second word);
 * *words says how many words it used. NULL when unknown. */
static const s_command_t *s_lookup(int argc, char **argv, int *words)
{
    size_t i;

    for (i = 0; i < S_NCOMMANDS; i++) {
        if (strcmp(argv[0], s_commands[i].name) != 0)
            continue;
        if (!s_commands[i].sub) {
            *words = 1;
            return &s_commands[i];
        }
        if (argc > 1 && strcmp(argv[1], s_commands[i].sub) == 0) {
            *words = 2;
            return &s_commands[i];
        }
    }
    return NULL;
}

/* `sluice help [COMMAND]`, ARGV[0] being "help": the list of commands on
 * stdout, or COMMAND's own --help. */
static int s_help(int argc, char **argv)
{
    const s_command_t *cmd;
    char *help_argv[3];
    int words = 0;

    if (argc == 1) {
        fputs(s_usage, stdout);
        return CLI_EXIT_OK;
    }
    cmd = s_lookup(argc - 1, argv + 1, &words);
    if (!cmd) {
        fprintf(stderr, "sluice: unknown command '%s'\n", argv[1]);
        return CLI_EXIT_USAGE;
    }
    help_argv[0] = argv[words];
    help_argv[1] = (char *)"--help";
    help_argv[2] = NULL;
    return cmd->run(2, help_argv);
}

/* WORD is no command: say so, with the subcommands when it is the first
 * word of a two-word command. */
static int s_unknown(const char *word)
{
    if (strcmp(word, "topic") == 0)
        fputs("sluice: 'topic' needs a subcommand: topic create NAME, "
              "topic set NAME --schema SUBJECT\n", stderr);
    else if (strcmp(word, "mapping") == 0)
        fputs("sluice: 'mapping' needs a subcommand: mapping add FILE, mapping list, "
              "mapping show NAME, mapping rm NAME, mapping test FILE\n", stderr);
    else if (strcmp(word, "schema") == 0)
        fputs("sluice: 'schema' needs a subcommand: schema register SUBJECT FILE, "
              "schema check SUBJECT FILE, schema list, schema show SUBJECT[@N]\n", stderr);
    else if (strcmp(word, "routes") == 0)
        fputs("sluice: 'routes' needs a subcommand: routes apply FILE, routes list, "
              "routes show [N], routes diff A [B], routes rollback N, "
              "routes test FIXTURES\n", stderr);
    else if (strcmp(word, "dlq") == 0)
        fputs("sluice: 'dlq' needs a subcommand: dlq list TOPIC, dlq rm TOPIC OFFSET..., "
              "dlq redrive TOPIC (OFFSET... | --all)\n", stderr);
    else if (strcmp(word, "keys") == 0)
        fputs("sluice: 'keys' needs a subcommand: keys add NAME PUBKEY, "
              "keys list, keys revoke NAME\n", stderr);
    else
        fprintf(stderr, "sluice: unknown command '%s'\n", word);
    fputs("Try 'sluice --help'.\n", stderr);
    return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    const s_command_t *cmd;
    char **run_argv = NULL;
    bool help = false;
    int first = 1, words = 0, rc;

    /* A closed stdout (sluice sub | head) must come back as EPIPE from
     * fwrite so sub can stop without acking the unwritten message. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        perror("sluice: signal");

    if (argc < 2) {
        fputs(s_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("sluice %s\n", SLUICE_VERSION);
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
    }
    rc = cli_parse_leading(argc, argv, &first, &help);
    if (rc != CLI_EXIT_OK)
        goto done;
    if (help) {
        fputs(s_usage, stdout);
        goto done;
    }
    if (first == argc) {
        fputs("sluice: a command must follow the options\n"
              "Try 'sluice --help'.\n", stderr);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    /* Help talks to no broker: connection options before it are ignored,
     * so `sluice --home DIR help pub` shows pub's usage like `help pub`. */
    if (strcmp(argv[first], "help") == 0) {
        rc = s_help(argc - first, argv + first);
        goto done;
    }
    cmd = s_lookup(argc - first, argv + first, &words);
    if (!cmd) {
        rc = s_unknown(argv[first]);
        goto done;
    }
    /* The options before the command are handed to it as if typed right
     * after its name; a command that takes none (keygen) refuses them as
     * it refuses them there. */
    run_argv = cli_leading_argv(argc, argv, first, words);
    rc = cmd->run(argc - words, run_argv + words);
done:
    free(run_argv);
    return rc;
}
