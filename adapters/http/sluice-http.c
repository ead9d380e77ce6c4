/*  sluice-http - the HTTP adapter's program: `serve` (HTTP ingest and
 *  pull, http_serve.c), `push` (the webhook sink, http_push.c) and `token
 *  add` (http_token.c). This file only dispatches and prints --help.
 *  Main thread.  */
#include <stdio.h>
#include <string.h>
#include "http_common.h"
#include "http_push.h"
#include "http_serve.h"
#include "http_token.h"

static const char s_usage[] =
    "Usage: sluice-http COMMAND [options]\n"
    "\n"
    "The HTTP adapter of sluice: its own process on libsluice\n"
    "(docs/adapters.md).\n"
    "\n"
    "Commands:\n"
    "  serve        HTTP ingest (POST /v1/topics/TOPIC) and pull\n"
    "               (GET /v1/subscriptions/NAME/messages, ack, nack)\n"
    "  push         deliver a subscription's messages as signed webhooks\n"
    "  token add    make a bearer token for `serve --tokens`\n"
    "\n"
    "`sluice-http COMMAND --help` tells more. Every command that talks to\n"
    "the broker takes --broker, --home, --cert, --server-key and\n"
    "--insecure-plaintext, and the SLUICE_* variables, as `sluice` does.\n";

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0
        || strcmp(cmd, "help") == 0) {
        fputs(s_usage, cmd ? stdout : stderr);
        return cmd ? HTTP_EXIT_OK : HTTP_EXIT_USAGE;
    }
    if (strcmp(cmd, "serve") == 0)
        return http_serve_main(argc - 1, argv + 1);
    if (strcmp(cmd, "push") == 0)
        return http_push_main(argc - 1, argv + 1);
    if (strcmp(cmd, "token") == 0)
        return http_token_main(argc - 1, argv + 1);
    fprintf(stderr, "sluice-http: unknown command '%s'\nTry 'sluice-http --help'.\n",
            cmd);
    return HTTP_EXIT_USAGE;
}
