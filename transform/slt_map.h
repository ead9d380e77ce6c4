/*  slt_map - the mapping language (docs/mapping.md): compile a YAML mapping
 *  once, then turn JSON documents of its source schema into documents of
 *  its target schema. The broker runs it at ingest, the CLI on fixtures.
 *  A compiled mapping is immutable: any number of threads may evaluate the
 *  same one at once. It does not read files, know schemas (the caller gives
 *  a types callback) or publish anything.  */
#ifndef SLT_MAP_H
#define SLT_MAP_H
#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>
#include "sluice_codes.h"

/* Types a path may have, as a bit set: the answer of a types callback and
 * what the type checker tracks. NUMBER is any number, INTEGER an integer. */
#define SLT_MAP_T_STRING  (1u << 0)
#define SLT_MAP_T_NUMBER  (1u << 1)
#define SLT_MAP_T_INTEGER (1u << 2)
#define SLT_MAP_T_BOOLEAN (1u << 3)
#define SLT_MAP_T_OBJECT  (1u << 4)
#define SLT_MAP_T_ARRAY   (1u << 5)
#define SLT_MAP_T_NULL    (1u << 6)
#define SLT_MAP_T_ANY     ((1u << 7) - 1)

/* Limits (docs/mapping.md, "Limits"). */
#define SLT_MAP_YAML_MAX     (1u << 20)    /* bytes of a mapping file */
#define SLT_MAP_EXPR_MAX     (16u << 10)   /* bytes of one expression */
#define SLT_MAP_DEPTH_MAX    64            /* AST depth of one expression */
#define SLT_MAP_FIELDS_MAX   1024          /* target fields */
#define SLT_MAP_TARGET_DEPTH 16            /* names in one target path */
#define SLT_MAP_NAME_MAX     256           /* bytes of one target name */
#define SLT_MAP_ARGS_MAX     16            /* arguments of one call */
#define SLT_MAP_TABLES_MAX   64            /* tables */
#define SLT_MAP_ENTRIES_MAX  65536         /* table entries in all */
#define SLT_MAP_ERRORS_MAX   16            /* compile errors reported */
#define SLT_MAP_STR_MAX      (1u << 20)    /* bytes of a string built */
#define SLT_MAP_ARRAY_MAX    65536         /* elements of an array built */
#define SLT_MAP_STEPS_MAX    1000000       /* work units per evaluation */
#define SLT_MAP_BYTES_MAX    (16u << 20)   /* bytes produced per evaluation */
#define SLT_MAP_JSON_DEPTH   256           /* JSON nesting copied, compared, string() */

typedef struct slt_map slt_map_t;

/* The source schema, as seen by the type checker: set *TYPES to the
 * SLT_MAP_T_* bits PATH may have (0 counts as ANY) and return 0, or return
 * SL_ENOTFOUND when no document of the schema can have PATH. PATH is "$"
 * followed by ".name" (or ["name"] in JSON string syntax for names that
 * are not identifiers) and "[*]" (an array element, whatever index the
 * expression used), e.g. "$.items[*].sku", "$[\"content-type\"]". ARG is
 * the caller's. Any other return code aborts the compilation with it. */
typedef int (slt_map_types_fn)(void *arg, const char *path, unsigned *types);

/* Compile the mapping YAML (LEN bytes, need not be NUL-terminated; borrowed
 * for the call). ORIGIN (borrowed; NULL gives "<mapping>") names the file
 * in diagnostics and runtime errors. TYPES (may be NULL: then paths into the
 * document are not checked and have any type) and ARG describe the source
 * schema. On 0, *OUT is the compiled mapping (caller owns; destroy with
 * slt_map_destroy). Otherwise *OUT is NULL and ERR (ERRLEN bytes, may be
 * NULL) holds every diagnostic, one block of lines each: ORIGIN:LINE:COL,
 * the message, the mapping and field, the YAML line with a caret under
 * the column, and a hint when there is one. Returns SL_EINVAL when the
 * mapping is wrong, SL_ETOOBIG when LEN > SLT_MAP_YAML_MAX, SL_ENOMEM,
 * SL_ESYS when libsodium cannot start, or the code a TYPES call returned
 * other than 0 and SL_ENOTFOUND. */
int slt_map_compile(const char *yaml, size_t len, const char *origin,
                    slt_map_types_fn *types, void *arg, slt_map_t **out,
                    char *err, size_t errlen);

/* Destroy the mapping. NULL-safe; sets *SELF_P to NULL. */
void slt_map_destroy(slt_map_t **self_p);

/* The mapping's name, its "from" and "to" as SUBJECT@VERSION. Borrowed,
 * valid until the mapping is destroyed; never NULL. */
const char *slt_map_name(const slt_map_t *self);
const char *slt_map_from(const slt_map_t *self);
const char *slt_map_to(const slt_map_t *self);

/* Evaluate the mapping on DOC (any JSON value, usually an object) with
 * META ({"topic", "offset", "headers", "lineage"}, may be NULL: then every
 * $meta path is missing). DOC and META are borrowed for the call and not
 * changed. On 0, either *DROPPED is true (drop_if was true) and *OUT is
 * NULL, or *DROPPED is false and *OUT is a new object (caller owns:
 * cJSON_Delete) that shares no memory with DOC, META or the mapping: it
 * may outlive all three. Its keys are in the order of the mapping's
 * targets. Returns SL_EINVAL for a runtime error (a wrong type, division
 * by zero, a missing value where one is needed, an integer beyond 2^53, a
 * limit reached), with the mapping, target field, position and source
 * path in ERR, followed by " (topic T, offset N)" when META has a string
 * "topic" and a number "offset"; or SL_ENOMEM. On error *OUT is NULL and
 * *DROPPED false. */
int slt_map_eval(const slt_map_t *self, const cJSON *doc, const cJSON *meta,
                 cJSON **out, bool *dropped, char *err, size_t errlen);

/* ---- one expression outside a mapping file (routing predicates) */

typedef struct slt_map_expr slt_map_expr_t;

/* Compile the one expression TEXT (LEN bytes; borrowed for the call) of
 * the mapping language. ORIGIN (NULL: "<expr>") and LINE:COL (1-based;
 * where TEXT[0] sits in ORIGIN; EXACT when the file holds TEXT byte for
 * byte from there, so that offsets become columns) place diagnostics.
 * OWNER ("route 'x'") and LABEL ("where") name it in runtime errors.
 * WANT: the types the value must be able to have (SLT_MAP_T_BOOLEAN for a
 * predicate: a value the checker proves is not a boolean is an error;
 * SLT_MAP_T_ANY: anything). TYPES/ARG: the document's schema, as for
 * slt_map_compile (NULL: unchecked). On 0 *OUT owns the expression.
 * Otherwise ERR holds one line per error, "ORIGIN:LINE:COL: message"
 * (no trailing newline). SL_EINVAL, SL_ENOMEM, or what TYPES returned. */
int slt_map_expr_compile(const char *text, size_t len, const char *origin,
                         unsigned line, unsigned col, bool exact,
                         const char *owner, const char *label, unsigned want,
                         slt_map_types_fn *types, void *arg,
                         slt_map_expr_t **out, char *err, size_t errlen);

/* Whether the expression reads the document ($); false when it reads only
 * $meta and literals (the payload need not be parsed for it). */
bool slt_map_expr_uses_doc(const slt_map_expr_t *self);

/* Whether the expression, or any field or the drop_if of mapping SELF,
 * reads $meta (when not, $meta need not be built for it: only a runtime
 * error's " (topic T, offset N)" suffix reads META then). */
bool slt_map_expr_uses_meta(const slt_map_expr_t *self);
bool slt_map_uses_meta(const slt_map_t *self);

/* Evaluate the expression on DOC (may be NULL only when it does not use
 * the document) and META (may be NULL) into *RESULT, which must be a
 * boolean: a missing or other value is a runtime error. 0, or SL_EINVAL
 * with "OWNER: LABEL (ORIGIN:LINE:COL): reason (from PATH) (topic T,
 * offset N)" in ERR, or SL_ENOMEM. */
int slt_map_expr_eval_bool(const slt_map_expr_t *self, const cJSON *doc,
                           const cJSON *meta, bool *result,
                           char *err, size_t errlen);

/* Evaluate into *OUT (a new JSON value, caller owns): for tools. 0,
 * SL_EINVAL (a runtime error, as above; missing is one), SL_ENOMEM. */
int slt_map_expr_eval(const slt_map_expr_t *self, const cJSON *doc,
                      const cJSON *meta, cJSON **out, char *err, size_t errlen);

/* Destroy; NULL-safe; sets *SELF_P to NULL. */
void slt_map_expr_destroy(slt_map_expr_t **self_p);

#endif
