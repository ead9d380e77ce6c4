/*  file_record - a CSV record as a JSON object: the header row names the
 *  members, the topic's bound schema (if any) types them. Owns the column
 *  names and types; borrows the client only while loading the schema.
 *  Main thread of `sluice-file import`. Does not read CSV (file_csv) and
 *  does not validate against the schema: the broker does that.  */
#ifndef FILE_RECORD_H
#define FILE_RECORD_H
#include <stddef.h>
#include "file_csv.h"
#include "sluice.h"

typedef struct file_record file_record_t;

/* A typer for TOPIC: when the topic exists and has a schema bound, its
 * top-level "properties" types are fetched through CLIENT (borrowed,
 * used only here). *out (caller owns) on 0; else SL_ENOMEM or the code
 * of the broker call, with the reason in ERR. *schema (SCHEMA_LEN bytes,
 * may be NULL) says which schema was used ("" when none). */
int file_record_new(sl_client_t *client, const char *topic, file_record_t **out,
                    char *schema, size_t schema_len, char *err, size_t errlen);

/* A typer from JSON Schema text SCHEMA (NULL = none: every field a
 * string), for tests and for a schema given on the command line. */
file_record_t *file_record_from_schema(const char *schema);

/* NULL-safe; sets *self_p to NULL. */
void file_record_destroy(file_record_t **self_p);

/* Take the header row: N field names (copied). 0, or -1 with the reason
 * in ERR (an empty or repeated name). */
int file_record_header(file_record_t *self, const file_csv_field_t *fields, size_t n,
                       char *err, size_t errlen);

/* The record of N FIELDS as compact JSON: *json (caller frees) of *len
 * bytes. Each field is the first of the types its column's schema allows
 * that the text is: null (empty, unquoted), integer, number, boolean
 * (true/false in any case), else a string. 0, or -1 with the reason in
 * ERR (not as many fields as the header). */
int file_record_json(file_record_t *self, const file_csv_field_t *fields, size_t n,
                     char **json, size_t *len, char *err, size_t errlen);

#endif
