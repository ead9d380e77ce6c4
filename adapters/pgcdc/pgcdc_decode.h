/*  pgcdc_decode - the pgoutput (protocol version 1) message decoder:
 *  one logical replication message (the payload of a CopyData 'w' frame
 *  after its 25-byte header) into a pgcdc_msg_t. Pure: no I/O, no
 *  allocation, no state between calls; strings and column values point
 *  into the caller's buffer. Any thread. Fuzzed (tests/fuzz/fuzz_pgoutput.c).
 *  It does not know relations: pgcdc_event pairs tuples with columns.  */
#ifndef PGCDC_DECODE_H
#define PGCDC_DECODE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGCDC_MAX_COLS 1664     /* PostgreSQL's MaxTupleAttributeNumber */

typedef struct {
    char kind;                  /* 'n' null, 'u' unchanged TOAST, 't' text */
    const char *data;           /* 't': LEN bytes (not NUL-terminated) */
    uint32_t len;
} pgcdc_value_t;

typedef struct {
    uint16_t ncols;
    pgcdc_value_t cols[PGCDC_MAX_COLS];
} pgcdc_tuple_t;

typedef struct {
    uint8_t flags;              /* 1: part of the key (replica identity) */
    const char *name;           /* NUL-terminated, in the buffer */
    uint32_t type_oid;
    int32_t typmod;
} pgcdc_column_t;

typedef struct {
    char tag;                   /* 'B','C','R','I','U','D','T','M','Y','O' */
    /* B (begin) / C (commit) */
    uint64_t final_lsn;         /* B: the commit record's LSN; C: commit_lsn */
    uint64_t end_lsn;           /* C: the end of the commit record */
    int64_t commit_time;        /* B, C: microseconds since 2000-01-01 UTC */
    uint32_t xid;               /* B */
    /* R (relation), I/U/D (changes), T (truncate) */
    uint32_t relid;
    const char *nspname;        /* R, Y */
    const char *relname;        /* R, Y (the type's name) */
    char replident;             /* R: 'd', 'n', 'f' or 'i' */
    uint16_t natts;             /* R */
    pgcdc_column_t atts[PGCDC_MAX_COLS];
    char old_kind;              /* U, D: 'K' key only, 'O' whole old row, 0 none */
    pgcdc_tuple_t old_tuple;
    bool has_new;               /* I, U */
    pgcdc_tuple_t new_tuple;
    uint32_t nrels;             /* T */
    const uint8_t *relids;      /* T: NRELS big-endian uint32 */
    /* M (logical message) */
    bool transactional;
    uint64_t msg_lsn;
    const char *prefix;
    const char *content;
    uint32_t content_len;
} pgcdc_msg_t;

/* Decode BUF (LEN bytes, borrowed: OUT points into it) into *OUT (a large
 * struct: keep one on the heap). 0, or -1 with the reason in ERR when the
 * message is truncated, malformed or of an unknown type. */
int pgcdc_decode(const uint8_t *buf, size_t len, pgcdc_msg_t *out,
                 char *err, size_t errlen);

/* Big-endian readers, shared with the CopyBoth framing of pgcdc_stream. */
uint64_t pgcdc_get64(const uint8_t *p);
uint32_t pgcdc_get32(const uint8_t *p);
void pgcdc_put64(uint8_t *p, uint64_t v);

#endif
