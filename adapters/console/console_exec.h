/*  console_exec - running the `sluice` CLI for what only it does offline
 *  (mapping fixtures, routing fixtures, the replay diff, the diff of two
 *  versions): posix_spawn without a shell, in a private temporary
 *  directory (mkdtemp, mode 0700, removed afterwards), with the calling
 *  identity's connection options, stdout and stderr captured together,
 *  and a time limit. Any thread; no shared state.  */
#ifndef CONSOLE_EXEC_H
#define CONSOLE_EXEC_H
#include <stdbool.h>
#include <stddef.h>
#include "console_int.h"

/* What one run gave. */
typedef struct {
    int exit_code;              /* the program's exit status; -1 when killed */
    bool timed_out;             /* killed after the time limit */
    char *output;               /* stdout and stderr, NUL-terminated (owned) */
    size_t len;
} console_run_t;

/* A fresh private directory into DIR (DIRLEN bytes). 0 or SL_ESYS with
 * the reason in ERR. */
int console_tmpdir(char *dir, size_t dirlen, char *err, size_t errlen);

/* Remove DIR and everything below it. */
void console_tmpdir_remove(const char *dir);

/* Write LEN bytes of TEXT to DIR/NAME (mode 0600). 0 or SL_ESYS. */
int console_write_file(const char *dir, const char *name, const char *text,
                       size_t len);

/* Run `sluice ARGS... CONNECTION-OPTIONS` (ARGS NULL-terminated, borrowed)
 * in directory DIR as identity ID of CON, for at most CON's timeout plus
 * 30 s. 0 and *out (free with console_run_clear) when it ran, whatever its
 * exit; SL_ESYS (cannot start it) or SL_ENOMEM with the reason in ERR. */
int console_exec(const console_t *con, const console_id_t *id, const char *dir,
                 const char *const *args, console_run_t *out, char *err,
                 size_t errlen);

void console_run_clear(console_run_t *run);

/* The `sluice` program to run, into OUT (OUTLEN bytes): GIVEN when not
 * NULL, else `sluice` beside SELF_EXE, else the build tree's ../cli/sluice
 * beside it, else "sluice" (looked up in PATH). */
void console_exec_find(const char *given, const char *self_exe, char *out,
                       size_t outlen);

#endif
