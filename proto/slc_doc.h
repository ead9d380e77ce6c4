/*  slc_doc - turn a message body into JSON documents by its content type
 *  (JSON, NDJSON, CSV, logfmt) so that a schema can check it, and write a
 *  document back as compact JSON. The broker stores every body exactly as
 *  received (format preservation): decoding is only for checking, and
 *  only messages it derives (mappings) are JSON. Pure functions; any
 *  thread. Values are not converted: CSV and logfmt give strings.  */
#ifndef SLC_DOC_H
#define SLC_DOC_H
#include <stddef.h>
#include <jansson.h>
#include "sluice_codes.h"

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
 * On 0, DOCS[0 .. *NDOCS) hold the documents (caller owns each reference:
 * json_decref). Returns SL_EINVAL when the body is malformed (ERR, may be
 * NULL, names the line and the byte column, both from 1), SL_ETOOBIG when
 * it holds more than MAX documents, SL_ENOMEM. On failure *NDOCS is 0 and
 * DOCS holds nothing. Text must be UTF-8 without NUL bytes. */
int slc_doc_decode(const char *content_type, const void *data, size_t len,
                   json_t **docs, size_t max, size_t *ndocs,
                   char *err, size_t errlen);

/* DOC (borrowed) as compact JSON in *OUT (caller owns: free) and its
 * length, without the NUL, in *LEN (may be NULL). Object keys keep their
 * order. 0 or SL_ENOMEM (*OUT is then NULL). */
int slc_doc_encode(const json_t *doc, char **out, size_t *len);

#endif
