/*  sluice-console - the web console's program: `serve` (the web app and
 *  its JSON API, console_serve.c) and `token add` (the tokens file, shared
 *  with sluice-http: adapters/http/http_token.c). This file only
 *  dispatches and prints --help and --version. Main thread.  */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <limits.h>
#include "console_serve.h"
#include "http_common.h"
#include "http_token.h"

static const char s_usage[] =
    "Usage: sluice-console COMMAND [options]\n"
    "\n"
    "The web console of sluice: its own process on libsluice, serving a web\n"
    "app and a JSON API (docs/console.md).\n"
    "\n"
    "Commands:\n"
    "  serve        serve the console (--listen, --tokens | --no-auth, ...)\n"
    "  token add    make a bearer token for `serve --tokens`\n"
    "\n"
    "  --help       this text\n"
    "  --version    the version\n"
    "\n"
    "`sluice-console COMMAND --help` tells more. `serve` takes --broker,\n"
    "--home, --cert, --server-key and --insecure-plaintext, and the SLUICE_*\n"
    "variables, as `sluice` does.\n";

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;
    char self[PATH_MAX];
    ssize_t n;

    if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0
        || strcmp(cmd, "help") == 0) {
        fputs(s_usage, cmd ? stdout : stderr);
        return cmd ? HTTP_EXIT_OK : HTTP_EXIT_USAGE;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("sluice-console %s\n", CONSOLE_VERSION);
        return HTTP_EXIT_OK;
    }
    if (strcmp(cmd, "serve") == 0) {
        n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0) {
            snprintf(self, sizeof self, "%s", argv[0]);
            n = (ssize_t)strlen(self);
        }
        self[n] = '\0';
        return console_serve_main(argc - 1, argv + 1, self);
    }
    if (strcmp(cmd, "token") == 0)
        return http_token_run("sluice-console", argc - 1, argv + 1);
    fprintf(stderr, "sluice-console: unknown command '%s'\nTry 'sluice-console "
            "--help'.\n", cmd);
    return HTTP_EXIT_USAGE;
}
