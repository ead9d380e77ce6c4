/*  file_tail_state - the tailer's state file and file fingerprints. One
 *  entry per file ever followed: its producer id, the fingerprint that
 *  recognises it (XXH3-64 of its first fp_len bytes), and the offset and
 *  record count the broker has durably acked up to. The file is JSON,
 *  replaced atomically (file_write_atomic). Main thread of `sluice-file
 *  tail`; owns only what load returns.  */
#ifndef FILE_TAIL_STATE_H
#define FILE_TAIL_STATE_H
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t id[16];             /* producer id: sequence = record number in the file */
    uint64_t fp;                /* XXH3-64 of the first FP_LEN bytes */
    uint32_t fp_len;            /* 1..--fingerprint-bytes */
    uint64_t offset;            /* bytes before it are acked (a record boundary) */
    uint64_t records;           /* records in those bytes (the last acked seq) */
    uint64_t dev, ino;          /* where it was last seen: a hint only */
    uint64_t seen_us;           /* last time it was read or matched */
    char path[PATH_MAX];        /* last path it had */
} file_tail_entry_t;

/* Read the state file PATH: *out (caller frees) holds *n entries; a
 * missing file is 0 entries. TOPIC must be the one the file was written
 * for. 0, or -1 with the reason in ERR (damaged, another topic). */
int file_tail_state_load(const char *path, const char *topic, file_tail_entry_t **out,
                         size_t *n, char *err, size_t errlen);

/* Replace PATH with N entries (V: array of pointers) for TOPIC, atomically
 * (a crash leaves the old or the new state). 0, or -1 with ERR. */
int file_tail_state_save(const char *path, const char *topic,
                         const file_tail_entry_t *const *v, size_t n,
                         char *err, size_t errlen);

/* XXH3-64 of the first LEN bytes of FD into *fp. 0, or -1 when the file
 * is shorter or cannot be read. */
int file_tail_fingerprint(int fd, uint32_t len, uint64_t *fp);

#endif
