/*  sld_registry - the schema registry: subjects with numbered versions of a
 *  JSON Schema (compiled once, kept compiled), each subject's compatibility
 *  mode, and topics bound to a subject so that every publish to them is
 *  validated when it is stored. Owns the compiled schemas and the bindings;
 *  records live in the store's `registry` table. Broker thread only, but
 *  for sld_registry_check_bound and sld_registry_validate_bound (pure: any
 *  thread, on what a resolve gave on the broker thread; sld_route_prep).
 *  It does not decide who may register (the server checks grants).  */
#ifndef SLD_REGISTRY_H
#define SLD_REGISTRY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "slc_codec.h"
#include "sld_store.h"

typedef struct sld_registry sld_registry_t;

/* Longest subject name, bytes. */
#define SLD_SUBJECT_MAX 200

/* Load and compile every stored version of STORE (borrowed, must outlive
 * the result). 0 and *out (caller owns), SL_ESTORE (a stored record does
 * not decode or compile: reason on stderr), SL_ENOMEM. */
int sld_registry_new(sld_store_t *store, sld_registry_t **out);
void sld_registry_destroy(sld_registry_t **self_p);

/* ---------------------------------------------------------------- admin */
/* Changes are written in TXN and staged: they take effect (for lookups and
 * validation) after sld_registry_committed(self, true). On refusal ERR
 * (ERRLEN bytes) holds every reason. */

/* Register TEXT (LEN bytes) as the next version of SUBJECT. COMPAT (NULL or
 * "" = keep the subject's mode; BACKWARD for a new subject) sets the mode
 * the check uses. A text equal to the latest version is not stored again:
 * *existed. With DRY_RUN nothing is written. 0 and *version; SL_EINVAL (bad
 * subject, schema or mode; or incompatible: every reason in ERR), SL_EFULL,
 * SL_ESTORE, SL_ENOMEM. */
int sld_registry_register(sld_registry_t *self, sld_txn_t *txn, const char *subject,
                          const char *text, size_t len, const char *compat,
                          bool dry_run, uint32_t *version, bool *existed,
                          char *err, size_t errlen);

/* Bind TOPIC to SUBJECT@VERSION (0 = the latest at each publish); INVALID
 * "reject" (or NULL/"") or "dlq". An empty SUBJECT removes the binding.
 * 0, SL_EINVAL, SL_ENOTFOUND (no such subject or version), SL_EFULL,
 * SL_ESTORE. */
int sld_registry_bind(sld_registry_t *self, sld_txn_t *txn, const char *topic,
                      const char *subject, uint32_t version, const char *invalid,
                      char *err, size_t errlen);

/* After the transaction: OK = committed (staged changes take effect), else
 * they are dropped. */
void sld_registry_committed(sld_registry_t *self, bool ok);

/* ---------------------------------------------------------------- reads */

/* SUBJECT@VERSION (0 = latest) into OUT (strings borrowed until the next
 * committed change). 0 or SL_ENOTFOUND. */
int sld_registry_get(sld_registry_t *self, const char *subject, uint32_t version,
                     Sluice__SchemaInfo *out);

/* The latest version of every subject, schema text left empty: *out holds
 * N pointers (caller frees with sld_registry_list_free). 0 or SL_ENOMEM. */
int sld_registry_list(sld_registry_t *self, Sluice__SchemaInfo ***out, size_t *n);
void sld_registry_list_free(Sluice__SchemaInfo ***out, size_t n);

/* ------------------------------------------------------------- mappings */

/* Add (or replace) the mapping in YAML (LEN bytes): compiled, its `from`
 * and `to` schemas must be registered, and its paths and types are checked
 * against `from` (docs/mapping.md). A new name is version 1; a text other
 * than the current one under a name (or one removed) is the next version;
 * the current text again changes nothing (its version in *info). *info
 * (strings borrowed until the next change) names it. 0; SL_EINVAL (ERR holds the diagnostics, line:column
 * with a caret), SL_ENOTFOUND (a schema it names is not registered),
 * SL_EFULL, SL_ESTORE, SL_ENOMEM. Staged like the other changes. */
int sld_registry_map_add(sld_registry_t *self, sld_txn_t *txn, const char *yaml, size_t len,
                         Sluice__MappingInfo *info, char *err, size_t errlen);

/* Remove mapping NAME (its last version is kept, for a later add). 0,
 * SL_ENOTFOUND, SL_EFULL, SL_ESTORE. */
int sld_registry_map_remove(sld_registry_t *self, sld_txn_t *txn, const char *name,
                            char *err, size_t errlen);

/* Mapping NAME with its YAML (borrowed until the next committed change).
 * 0 or SL_ENOTFOUND. */
int sld_registry_map_get(sld_registry_t *self, const char *name, Sluice__MappingInfo *out);

/* Every mapping, YAML left empty (caller frees with
 * sld_registry_map_list_free). 0 or SL_ENOMEM. */
int sld_registry_map_list(sld_registry_t *self, Sluice__MappingInfo ***out, size_t *n);
void sld_registry_map_list_free(Sluice__MappingInfo ***out, size_t n);

/* Bumped by every committed mapping change (add, replace, remove): a
 * holder of compiled copies of mappings (sld_routes) compiles again when
 * it moved. */
uint64_t sld_registry_mappings_gen(const sld_registry_t *self);

/* ------------------------------------------------------------- routing */
/* Reads for the routing table's compiler and its evaluation at ingest
 * (sld_routes). Committed state only. */

/* The schema TOPIC is bound to, resolved to a version (the binding's, or
 * the latest now): 0 with *schema (borrowed until the next committed
 * change) and SUBJECT@VERSION in REF (REFLEN bytes), or SL_ENOTFOUND. */
struct slt_schema;
int sld_registry_topic_schema(sld_registry_t *self, const char *topic,
                              const struct slt_schema **schema, char *ref, size_t reflen);

/* TOPIC's binding as text into REF (REFLEN bytes): "SUBJECT@VERSION" when
 * pinned, "SUBJECT@latest" when it follows the latest; "" when not bound
 * (the stats' TopicInfo.schema). */
void sld_registry_binding(sld_registry_t *self, const char *topic, char *ref, size_t reflen);

/* Validate DOC against schema REF ("SUBJECT@VERSION", 0 or no "@": the
 * latest). 0; SL_EINVAL with the failures (JSON pointer: rule) in ERR;
 * SL_ENOTFOUND (no such schema: ERR says which). */
int sld_registry_validate_ref(sld_registry_t *self, const char *ref, const cJSON *doc,
                              char *err, size_t errlen);

/* ----------------------------------------------------------- validation */

/* Is any topic bound? (The ingest path asks this first: nothing else is
 * done for a broker without bindings.) */
bool sld_registry_any(const sld_registry_t *self);

/* Validate a message to TOPIC: PAYLOAD (LEN bytes) decoded by CONTENT_TYPE
 * (docs/schemas.md), each document against the bound schema. 0 when valid
 * or TOPIC is not bound; SL_EINVAL when invalid (ERR: the JSON pointers of
 * the first failures and the rules broken; *dlq: the binding asks for the
 * message to go to _dlq.schema.<topic>). */
int sld_registry_check(sld_registry_t *self, const char *topic, const char *content_type,
                       const void *payload, size_t len, bool *dlq,
                       char *err, size_t errlen);

/* sld_registry_check that also gives the parsed payload, so that it is not
 * parsed again (routing): when valid and the payload is one document,
 * *DOC (DOC may be NULL; set it to NULL before) is that document (caller
 * owns: cJSON_Delete); otherwise *DOC is left as it was. */
int sld_registry_check_doc(sld_registry_t *self, const char *topic, const char *content_type,
                           const void *payload, size_t len, bool *dlq, cJSON **doc,
                           char *err, size_t errlen);

/* ------------------------------------------- checks off the broker thread */
/* The checks above are a lookup (broker thread: the hash tables are not
 * safe to read from two threads, a lookup writes a cursor) and a pure
 * part. sld_route_prep resolves on the broker thread and runs the pure
 * part on its worker; the checks above are the same two calls, so the
 * results and texts are the same bytes. */

/* A schema resolved: SCHEMA NULL means none (a topic not bound). Every
 * pointer is borrowed until the next committed change (sld_registry_gen
 * moves then). */
typedef struct {
    const struct slt_schema *schema;
    const char *subject;        /* its subject's name */
    uint32_t version;
    bool dlq;                   /* a binding's: invalid messages go to _dlq.schema.<topic> */
} sld_registry_bound_t;

/* Bumped by every committed change (versions, modes, bindings, mappings):
 * what a resolve gave stays valid while it does not move. */
uint64_t sld_registry_gen(const sld_registry_t *self);

/* The schema TOPIC is bound to into *OUT (OUT->schema NULL: none). Broker
 * thread. */
void sld_registry_resolve(sld_registry_t *self, const char *topic, sld_registry_bound_t *out);

/* sld_registry_check_doc's check against B: 0 when valid or B has no
 * schema; SL_EINVAL (ERR), SL_ENOMEM; *DOC as there. Any thread (reads B
 * and its schema only). */
int sld_registry_check_bound(const sld_registry_bound_t *b, const char *content_type,
                             const void *payload, size_t len, cJSON **doc,
                             char *err, size_t errlen);

/* Schema REF ("SUBJECT@VERSION", 0 or no "@": the latest) into *OUT: 0, or
 * SL_ENOTFOUND with sld_registry_validate_ref's text in ERR. Broker thread. */
int sld_registry_resolve_ref(sld_registry_t *self, const char *ref, sld_registry_bound_t *out,
                             char *err, size_t errlen);

/* sld_registry_validate_ref's validation against resolved B (B->schema not
 * NULL): 0 or SL_EINVAL with the failures in ERR. Any thread. */
int sld_registry_validate_bound(const sld_registry_bound_t *b, const cJSON *doc,
                                char *err, size_t errlen);

#endif
