/*  file_csv - an RFC 4180 CSV reader over a buffer in memory: quoted
 *  fields, doubled quotes, CRLF or LF line ends, newlines inside quotes.
 *  Owns the unescaped copy of the current record's fields; borrows the
 *  input. Any thread (one reader per thread). Knows nothing of JSON or
 *  schemas (file_record does the typing); tests/fuzz/fuzz_file_csv.c.  */
#ifndef FILE_CSV_H
#define FILE_CSV_H
#include <stddef.h>
#include <stdint.h>

typedef struct file_csv file_csv_t;

typedef struct {
    const char *ptr;            /* the field's text, unescaped, NUL-terminated;
                                   borrowed: valid until the next file_csv_next */
    size_t len;
    int quoted;                 /* the field was in quotes ("" is not empty-unquoted) */
} file_csv_field_t;

/* A reader of DATA (LEN bytes, borrowed: must outlive the reader) with
 * field separator SEP (',' for RFC 4180). NULL when out of memory. */
file_csv_t *file_csv_new(const char *data, size_t len, char sep);

/* NULL-safe; sets *self_p to NULL. */
void file_csv_destroy(file_csv_t **self_p);

/* The next record: *fields (borrowed, valid until the next call) holds *n
 * fields, *line the 1-based line its first field starts on, *end the byte
 * offset just past it. 1 = a record, 0 = end of input, -1 = a malformed
 * record (text after a closing quote, or a quote left open at the end of
 * the input): ERR says why and where; the reader went on to the next
 * line, so calling again continues. A blank line is no record. */
int file_csv_next(file_csv_t *self, const file_csv_field_t **fields, size_t *n,
                  uint64_t *line, size_t *end, char *err, size_t errlen);

#endif
