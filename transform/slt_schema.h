/*  slt_schema - a JSON Schema subset: compile a schema once, validate
 *  documents against it, compare two versions for compatibility, and ask
 *  which JSON types a path may hold (for the mapping type-checker).
 *  A compiled schema is immutable: any thread may use it concurrently.
 *  It does not fetch remote $refs, apply defaults or store schemas (the
 *  broker's registry does); docs/schemas.md lists the subset.  */
#ifndef SLT_SCHEMA_H
#define SLT_SCHEMA_H
#include <stddef.h>
#include <cjson/cJSON.h>
#include "sluice_codes.h"

#define SLT_SCHEMA_TEXT_MAX (1024 * 1024) /* largest schema document, bytes */
#define SLT_SCHEMA_DEPTH_MAX 64     /* deepest JSON nesting of a schema */
#define SLT_SCHEMA_DOC_DEPTH_MAX 128 /* deepest document nesting validated */
#define SLT_SCHEMA_COMPAT_DEPTH_MAX 256 /* deepest compatibility walk */

/* JSON types as bits, for slt_schema_type_at. INTEGER is a number with no
 * fractional part; a schema "number" therefore gives NUMBER|INTEGER. */
#define SLC_JSON_STRING  0x01u
#define SLC_JSON_NUMBER  0x02u
#define SLC_JSON_INTEGER 0x04u
#define SLC_JSON_BOOLEAN 0x08u
#define SLC_JSON_OBJECT  0x10u
#define SLC_JSON_ARRAY   0x20u
#define SLC_JSON_NULL    0x40u
#define SLC_JSON_ANY     0x7fu

typedef struct slt_schema slt_schema_t;

/* One reason a document is invalid or two schemas are incompatible. */
typedef struct {
    char pointer[256];  /* RFC 6901 pointer ("" = the whole); cut if longer */
    char rule[200];     /* readable reason; cut if longer */
} slt_schema_error_t;

typedef enum {
    SLC_COMPAT_BACKWARD = 0,    /* new schema accepts all the old one did */
    SLC_COMPAT_FORWARD,         /* old schema accepts all the new one does */
    SLC_COMPAT_FULL,            /* both */
    SLC_COMPAT_NONE             /* no check */
} slc_compat_t;

/* Compile the JSON Schema document TEXT (LEN bytes, borrowed; need not be
 * NUL-terminated). TEXT is read by slt_doc_parse, so what it refuses in a
 * document (duplicate keys, "\u0000", integers beyond 2^53) is "not JSON"
 * here too. Every keyword outside the subset is refused, naming it
 * and its JSON pointer, and so is a malformed value, an unresolvable or
 * non-local $ref, or a $ref chain that never reaches a schema. "pattern" is
 * an ECMA-262 regular expression as PCRE2 reads it (UTF-8 code points, $
 * only at the end, \uhhhh; docs/schemas.md says where the two differ),
 * matched with bounded steps and memory.
 * Returns 0 and *OUT (caller owns: slt_schema_destroy), or SL_ETOOBIG
 * (more than SLT_SCHEMA_TEXT_MAX bytes), SL_EINVAL (not JSON, nested deeper
 * than SLT_SCHEMA_DEPTH_MAX, or not a schema of the subset), SL_ENOMEM. On
 * failure *OUT is NULL and ERR (ERRLEN bytes, may be NULL) says why. */
int slt_schema_compile(const char *text, size_t len, slt_schema_t **out,
                       char *err, size_t errlen);

/* Free the schema. NULL-safe; sets *SELF_P to NULL. */
void slt_schema_destroy(slt_schema_t **self_p);

/* Canonical compact JSON of the schema (keys sorted by byte value, no
 * spaces; an integral number up to 2^53 in digits, any other the shorter
 * of 15 or 17 significant digits that reads back): equal schemas give
 * equal text, and compiling it gives the same schema.
 * Borrowed, valid until the schema is destroyed. */
const char *slt_schema_text(const slt_schema_t *self);

/* Validate DOC (borrowed: a document from slt_doc_parse, or one built with
 * cJSON's functions) against the schema. Returns 0 when it is valid,
 * SL_EINVAL when not. Up to MAX reasons (ERRS may be NULL when MAX is 0)
 * are written in document order: missing required properties (by name)
 * at the pointer of their object, then each member in the document's
 * order, the checks of one value in keyword order (type first; a wrong
 * type stops the checks of that value). *NERRS (may be NULL) is the
 * number written;
 * when it equals MAX there may be more. With MAX 0 it stops at the first
 * failure. Numbers are compared as doubles; "integer" is a number with no
 * fraction (1.0 is one). Allocates only a pattern's match data. */
int slt_schema_validate(const slt_schema_t *self, const cJSON *doc,
                        slt_schema_error_t *errs, size_t max, size_t *nerrs);

/* Check that NEWER may follow OLDER under MODE (both borrowed). BACKWARD
 * proves every document OLDER accepts is accepted by NEWER, except that a
 * newly required property with a "default" is allowed (its reader fills
 * it); FORWARD proves the reverse; FULL both; NONE accepts anything. What
 * cannot be proved (a changed pattern, an added enum) counts as a break.
 * Returns 0 when compatible, SL_EINVAL when not, SL_ENOMEM. Every reason
 * found (up to MAX, *NERRS as for slt_schema_validate) has a schema path
 * such as "/properties/email" and a rule that starts with "BACKWARD: " or
 * "FORWARD: ". A $ref shared by several paths is reported at the first. */
int slt_schema_compatible(const slt_schema_t *older, const slt_schema_t *newer,
                          slc_compat_t mode, slt_schema_error_t *errs,
                          size_t max, size_t *nerrs);

/* "BACKWARD", "FORWARD", "FULL" or "NONE" (static text); "?" for others. */
const char *slc_compat_name(slc_compat_t mode);

/* Parse NAME (any case) into *MODE. 0 or SL_EINVAL. */
int slc_compat_parse(const char *name, slc_compat_t *mode);

/* The JSON types the value at PATH may have, as SLC_JSON_* bits in *TYPES.
 * PATH is dotted with [*] or [N] for array elements ("buyer.email",
 * "items[*].sku", "" = the whole document); a key cannot contain '.', '['
 * or ']'. *TYPES is SLC_JSON_ANY where the schema does not say (an open
 * object, no "type"). Returns 0, SL_ENOTFOUND when the schema says PATH
 * cannot exist (a closed object without that property, an array that must
 * be shorter, a false schema), SL_EINVAL for a malformed PATH. */
int slt_schema_type_at(const slt_schema_t *self, const char *path,
                       unsigned *types);

#endif
