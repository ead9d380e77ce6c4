/*  sluice-file - the file adapter's program: `import` (file_import.c),
 *  `tail` (file_tail.c) and `sink` (file_sink.c). This file only
 *  dispatches and prints --help. Main thread.  */
#include <stdio.h>
#include <string.h>
#include "file_common.h"
#include "file_import.h"
#include "file_sink.h"
#include "file_tail.h"

static const char s_usage[] =
    "Usage: sluice-file COMMAND [options]\n"
    "\n"
    "The file adapter of sluice: its own process on libsluice\n"
    "(docs/adapters.md, \"sluice-file\").\n"
    "\n"
    "Commands:\n"
    "  import       publish the records of NDJSON, CSV or text files, once:\n"
    "               a run stopped anywhere resumes where it stopped\n"
    "  tail         follow growing log files (rotation by rename or\n"
    "               copytruncate) into a topic, every line once\n"
    "  sink         write a durable subscription to rotated files, every\n"
    "               message once\n"
    "\n"
    "`sluice-file COMMAND --help` tells more. Every command takes --broker,\n"
    "--home, --cert, --server-key and --insecure-plaintext, and the\n"
    "SLUICE_* variables, as `sluice` does.\n";

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (!cmd || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0
        || strcmp(cmd, "help") == 0) {
        fputs(s_usage, cmd ? stdout : stderr);
        return cmd ? FILE_EXIT_OK : FILE_EXIT_USAGE;
    }
    if (strcmp(cmd, "import") == 0)
        return file_import_main(argc - 1, argv + 1);
    if (strcmp(cmd, "tail") == 0)
        return file_tail_main(argc - 1, argv + 1);
    if (strcmp(cmd, "sink") == 0)
        return file_sink_main(argc - 1, argv + 1);
    fprintf(stderr, "sluice-file: unknown command '%s'\nTry 'sluice-file --help'.\n",
            cmd);
    return FILE_EXIT_USAGE;
}
