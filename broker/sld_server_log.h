/*  sld_server_log - where the broker's log goes and how a line looks: text
 *  (the default) or one JSON object per line, on stderr or in --log-file.
 *  main() owns the sld_log_t (open after the config, reopen on SIGUSR1,
 *  destroy last); the server's files log through sld_server_log
 *  (sld_server_int.h), which writes to stderr, wherever that now points.  */
#ifndef SLD_SERVER_LOG_H
#define SLD_SERVER_LOG_H
#include <stdbool.h>
#include <stddef.h>
#include "sld_config.h"

typedef struct sld_log sld_log_t;

/* Point stderr where CFG says (borrowed; read now only): at
 * cfg->log_file when set (opened for append, created mode 0640), and in
 * json format through a pipe whose reader thread writes each line that is
 * not JSON already (modules that fprintf to stderr, libzmq) as a JSON
 * object, so the destination holds JSON only. 0 and *out (caller owns), or
 * SL_ESYS (file, pipe or thread) / SL_ENOMEM with a message in ERR;
 * stderr is unchanged then. */
int sld_log_open(const sld_config_t *cfg, sld_log_t **out, char *err, size_t errlen);

/* Reopen the log file (after logrotate moved it) and say so in the new
 * file. 0; SL_EINVAL when there is no log file (said on stderr); SL_ESYS
 * with a message in ERR when it cannot be opened (the old one stays). */
int sld_log_reopen(sld_log_t *self, char *err, size_t errlen);

/* Write one line at LEVEL (0 error .. 3 debug) from MODULE in the format
 * SELF was opened with, whatever the log level (main()'s lifecycle lines). */
void sld_log_line(const sld_log_t *self, int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Drain the pipe, put stderr back on the destination, free SELF. NULL-safe;
 * sets *self_p to NULL. */
void sld_log_destroy(sld_log_t **self_p);

#endif
