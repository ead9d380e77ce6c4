/*  console_serve - `sluice-console serve` (console_serve.c): options,
 *  identities and their clients, the HTTP daemon, the stop on SIGTERM.
 *  Main thread.  */
#ifndef CONSOLE_SERVE_H
#define CONSOLE_SERVE_H

/* Run `serve` with ARGV[0] = "serve"; SELF_EXE is this program's path
 * (to find `sluice` beside it). Exit code (HTTP_EXIT_*). */
int console_serve_main(int argc, char **argv, const char *self_exe);

#endif
