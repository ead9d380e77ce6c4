/*  file_progress - the progress of a long run on stderr: on a terminal a
 *  one-line bar redrawn in place (records, bytes, rate, ETA), otherwise a
 *  plain line every few seconds. Owns its counters and the clock; writes
 *  nothing else. Main thread of the command that made it.  */
#ifndef FILE_PROGRESS_H
#define FILE_PROGRESS_H
#include <stdbool.h>
#include <stdint.h>

typedef struct file_progress file_progress_t;

/* Progress of LABEL (copied) over TOTAL bytes (0 = unknown: no ETA).
 * MODE: "auto" (a bar on a terminal, lines otherwise), "bar", "lines",
 * "none". NULL when out of memory. */
file_progress_t *file_progress_new(const char *label, uint64_t total, const char *mode);

/* NULL-safe; sets *self_p to NULL. */
void file_progress_destroy(file_progress_t **self_p);

/* RECORDS done and BYTES read so far; redraws when due (a bar every
 * 200 ms, a line every 5 s). Cheap to call per record. */
void file_progress_update(file_progress_t *self, uint64_t records, uint64_t bytes);

/* The last redraw, and the bar's line ended. */
void file_progress_done(file_progress_t *self, uint64_t records, uint64_t bytes);

#endif
