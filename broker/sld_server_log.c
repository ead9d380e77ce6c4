/*  sld_server_log - the log line of the server's files: UTC time, level,
 *  text, on stderr, filtered by broker/log_level. Apart from sld_server.c
 *  so that every server file may log without calling back into the file
 *  that wires them. Broker thread (the helper thread does not log). No
 *  state of its own; it does not count or audit anything.  */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include "sld_server_int.h"

void sld_server_log(const sld_server_t *self, int level, const char *fmt, ...)
{
    if (level > self->cfg.log_level)
        return;
    static const char *const names[] = { "error", "warn", "info", "debug" };
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", gmtime_r(&now, &tm));
    fprintf(stderr, "%sZ sluiced %s: ", when, names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
