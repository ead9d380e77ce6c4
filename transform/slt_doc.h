/*  slt_doc - turn a message body into JSON documents by its content type
 *  (JSON, NDJSON, CSV, logfmt) so that a schema can check it, and write a
 *  document back as compact JSON. The broker stores every body exactly as
 *  received (format preservation): decoding is only for checking, and
 *  only messages it derives (mappings) are JSON. Pure functions; any
 *  thread. Values are not converted: CSV and logfmt give strings.  */
#ifndef SLT_DOC_H
#define SLT_DOC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "sluice_codes.h"

/* JSON documents are cJSON trees (Debian libcjson): numbers are IEEE
 * doubles, as in JavaScript and I-JSON (RFC 7493). So that no value is
 * changed on its way through, an integer written without fraction or
 * exponent whose magnitude exceeds 2^53 is refused at parse time (send
 * such identifiers as strings). Strings are NUL-terminated UTF-8;
 * "\u0000" is refused. Object keys keep their order. */
#define SLT_DOC_INT_LIMIT 9007199254740992.0    /* 2^53 */
#define SLT_DOC_DEPTH_MAX 512                   /* nesting of a document */

/* Parse LEN bytes at DATA (borrowed; need not be NUL-terminated) as one
 * JSON text (any value at the top; surrounding white space allowed).
 * Refused with SL_EINVAL: malformed JSON, invalid UTF-8, duplicate
 * object keys, "\u0000", integers beyond 2^53, nesting deeper than
 * SLT_DOC_DEPTH_MAX; ERR (may be NULL) then says "line L, column C:
 * reason" (both from 1; the column counts bytes). On 0 *OUT owns the
 * document (cJSON_Delete). SL_ENOMEM. */
int slt_doc_parse(const char *data, size_t len, cJSON **out,
                  char *err, size_t errlen);

/* True when the LEN bytes at S are UTF-8 without NUL bytes (no overlong
 * forms, surrogates or code points past U+10FFFF). */
bool slt_doc_utf8(const char *s, size_t len);

/* True when J is a number with an integral value of magnitude at most
 * 2^53 (exactly carried); *V (may be NULL) is then that value. */
bool slt_doc_int(const cJSON *j, int64_t *v);

/* Decode LEN bytes at DATA (borrowed; need not be NUL-terminated) as
 * CONTENT_TYPE, whose parameters (";charset=...") and case are ignored:
 *   application/json       one JSON value (duplicate object keys refused)
 *   application/x-ndjson   one JSON value per non-blank line
 *   (or application/ndjson)
 *   text/csv               RFC 4180: a header row of unique, non-empty
 *                          names, then one object of strings per row
 *                          (quoted fields, "" for a quote, CRLF or LF;
 *                          blank lines skipped; a UTF-8 BOM is skipped)
 *   text/logfmt            one object per non-blank line: key=value,
 *                          key="quoted \"value\"" (escapes \" \\ \n \r \t),
 *                          a bare key is true; a repeated key keeps the last
 * NULL, empty or any other content type means application/json.
 * On 0, DOCS[0 .. *NDOCS) hold the documents (caller owns each:
 * cJSON_Delete). Returns SL_EINVAL when the body is malformed (ERR, may be
 * NULL, names the line and the byte column, both from 1), SL_ETOOBIG when
 * it holds more than MAX documents, SL_ENOMEM. On failure *NDOCS is 0 and
 * DOCS holds nothing. Text must be UTF-8 without NUL bytes. */
int slt_doc_decode(const char *content_type, const void *data, size_t len,
                   cJSON **docs, size_t max, size_t *ndocs,
                   char *err, size_t errlen);

/* DOC (borrowed) as compact JSON in *OUT (caller owns: free) and its
 * length, without the NUL, in *LEN (may be NULL). Object keys keep their
 * order; numbers as slt_doc_number writes them. 0, SL_EINVAL (a number that is
 * not finite, or nesting deeper than SLT_DOC_DEPTH_MAX) or SL_ENOMEM;
 * *OUT is NULL on failure. */
int slt_doc_encode(const cJSON *doc, char **out, size_t *len);

/* slt_doc_encode with FLAGS: SLT_DOC_SORTED writes object keys sorted by
 * byte value (canonical texts) instead of in their order. */
#define SLT_DOC_SORTED 1u
int slt_doc_encode_ex(const cJSON *doc, unsigned flags, char **out, size_t *len);

/* The JSON text of number D into BUF (LEN >= 32): an integer up to 2^53 in
 * digits; any other the fewest of 15, 16 or 17 significant digits that read
 * back as D, with ".0" added to a whole number past 2^53 so that it reads
 * back as a real (slt_doc_parse refuses such integers); "null" when D is
 * not finite. */
void slt_doc_number(double d, char *buf, size_t len);

/* DOC (borrowed) as exactly the bytes cJSON_PrintUnformatted gives for it
 * (cJSON 1.7's number format: %d, %1.15g or %1.17g; its escapes), without
 * its printf/sscanf round trip for integers: for texts that must not
 * change (derived messages). *OUT (caller owns: free), *LEN (may be NULL)
 * its length without the NUL. 0, SL_EINVAL (an invalid node, nesting
 * deeper than SLT_DOC_DEPTH_MAX) or SL_ENOMEM; *OUT NULL on failure. */
int slt_doc_print(const cJSON *doc, char **out, size_t *len);

#endif
