/*  slt_map_schema - the bridge between the mapping type checker and the
 *  schema registry: a slt_map_types_fn that answers from a compiled JSON
 *  Schema, so a mapping is checked against its `from` schema when it is
 *  registered (broker) or tested (CLI). Stateless; any thread.  */
#ifndef SLT_MAP_SCHEMA_H
#define SLT_MAP_SCHEMA_H
#include <stddef.h>
#include <stdint.h>
#include "slt_map.h"
#include "slt_schema.h"

/* A slt_map_types_fn over the slt_schema_t ARG (borrowed): the mapping's
 * "$.items[*].sku" is the schema's "items[*].sku"; a path written with
 * ["name"] syntax is not translated and may be anything. */
int slt_map_schema_types(void *arg, const char *path, unsigned *types);

/* The `from` and `to` of mapping YAML (LEN bytes) into FROM and TO (LEN
 * bytes each, "" when absent), read without compiling it, so that the
 * mapping can then be compiled once, against its source schema, and every
 * problem reported together. 0, or SL_EINVAL when YAML does not parse (the
 * compiler then says why). */
int slt_map_peek(const char *yaml, size_t len, char *from, char *to, size_t reflen);

/* Split "SUBJECT@VERSION" (REF) into SUBJECT (LEN bytes) and *version
 * (0 when REF has no "@N"). 0 or SL_EINVAL. */
int slc_subject_ref(const char *ref, char *subject, size_t len, uint32_t *version);

#endif
