/*  sld_registry - subjects, versions and topic bindings.
 *
 *  Records in the store's `registry` table (keys start with a kind byte so
 *  one table serves all three, and a walk meets each kind in one run):
 *
 *    'b' topic                       -> TopicSet (the binding)
 *    'm' mapping name                -> MappingInfo{name, from, to, yaml,
 *                                       created_us, version}; a removed
 *                                       mapping leaves {name, version} with
 *                                       an empty yaml, so that adding it
 *                                       again goes on from that version
 *    's' subject                     -> SchemaInfo{subject, compat, versions}
 *    'v' subject '\0' version u32 BE -> SchemaInfo{subject, version, schema,
 *                                       created_us}
 *
 *  In memory every version stays compiled (slt_schema), so validating a
 *  publish is a hash lookup of its topic, a decode and a walk of the
 *  compiled schema. Subjects are never deleted, so a binding may keep a
 *  pointer to its subject. Changes are staged like sld_auth's: written in
 *  the transaction, applied to memory in sld_registry_committed.
 *
 *  Mappings are versioned by name: adding a different text under a name
 *  is its version N+1 (an equal text changes nothing), so a derived
 *  message's lineage (mapping, version) names one text. A record stored
 *  before versions existed (version 0) reads as version 1.  */
#include "sld_registry.h"
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "slt_doc.h"
#include "slt_map.h"
#include "slt_map_schema.h"
#include "slt_schema.h"

#define S_ERRORS_MAX 8          /* failures named in one refusal */
#define S_DOCS_MAX 1000         /* documents in one message (NDJSON, CSV) */

typedef struct {
    uint32_t version;
    uint64_t created_us;
    slt_schema_t *schema;       /* owned */
} s_version_t;

typedef struct {
    char name[SLD_SUBJECT_MAX + 1];
    slc_compat_t compat;
    s_version_t *v;             /* v[i].version == i + 1 */
    size_t n, cap;
} s_subject_t;

typedef struct {
    char topic[SLC_TOPIC_MAX + 1];
    s_subject_t *subject;       /* borrowed: subjects live as long as the registry */
    uint32_t version;           /* 0 = latest */
    bool dlq;
} s_binding_t;

/* A registered mapping, compiled. */
typedef struct {
    char name[SLT_MAP_NAME_MAX + 1];
    char *yaml;                 /* as registered (owned) */
    uint64_t created_us;
    uint32_t version;           /* 1, 2, ... per name */
    slt_map_t *map;             /* owned */
} s_mapping_t;

/* One staged change. */
typedef enum { S_OP_VERSION, S_OP_BIND, S_OP_MAP_ADD, S_OP_MAP_REMOVE } s_op_kind_t;

typedef struct {
    s_op_kind_t kind;
    s_mapping_t *mapping;       /* S_OP_MAP_ADD: owned until committed */
    char name[SLT_MAP_NAME_MAX + 1];    /* subject, topic (binding) or mapping name */
    slc_compat_t compat;
    uint32_t version;           /* new version (0 = only the mode changed) */
    uint64_t created_us;
    slt_schema_t *schema;       /* owned until committed */
    char subject[SLD_SUBJECT_MAX + 1];  /* binding: "" = remove */
    bool dlq;
} s_op_t;

struct sld_registry {
    sld_store_t *store;
    zhashx_t *subjects;         /* name -> s_subject_t (owned) */
    zhashx_t *bindings;         /* topic -> s_binding_t (owned) */
    zhashx_t *mappings;         /* name -> s_mapping_t (owned) */
    zhashx_t *removed;          /* name -> last version (uintptr_t) of a removed mapping */
    uint64_t mappings_gen;      /* committed mapping changes */
    uint64_t gen;               /* committed changes of any kind (sld_registry_gen) */
    s_op_t *ops;
    size_t nops, capops;
};

/* ------------------------------------------------------------- records */

static size_t s_key(uint8_t *key, char kind, const char *name, uint32_t version)
{
    size_t n = strlen(name);
    key[0] = (uint8_t) kind;
    memcpy(key + 1, name, n);
    if (kind != 'v')
        return 1 + n;
    key[1 + n] = 0;
    slc_put_be32(key + 2 + n, version);
    return 6 + n;
}

static int s_put_info(sld_txn_t *txn, const uint8_t *key, size_t klen,
                      const Sluice__SchemaInfo *info)
{
    size_t len = sluice__schema_info__get_packed_size(info);
    uint8_t *buf = malloc(len + 1);
    if (!buf)
        return SL_ENOMEM;
    sluice__schema_info__pack(info, buf);
    int rc = sld_table_put(txn, SLD_TABLE_REGISTRY, key, klen, buf, len);
    free(buf);
    return rc;
}

/* Free an array of N separately allocated items and the array. */
static void s_free_list(void ***out, size_t n)
{
    if (!out || !*out)
        return;
    for (size_t i = 0; i < n; i++)
        free((*out)[i]);
    free(*out);
    *out = NULL;
}

static void s_subject_free(void **item)
{
    s_subject_t *s = *item;
    for (size_t i = 0; s && i < s->n; i++)
        slt_schema_destroy(&s->v[i].schema);
    if (s)
        free(s->v);
    free(s);
    *item = NULL;
}

static void s_binding_free(void **item)
{
    free(*item);
    *item = NULL;
}

static void s_mapping_free(void **item)
{
    s_mapping_t *m = *item;
    if (m) {
        slt_map_destroy(&m->map);
        free(m->yaml);
        free(m);
    }
    *item = NULL;
}

static s_subject_t *s_subject(sld_registry_t *self, const char *name, bool create)
{
    s_subject_t *s = zhashx_lookup(self->subjects, name);
    if (s || !create)
        return s;
    if (strlen(name) > SLD_SUBJECT_MAX)
        return NULL;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    memcpy(s->name, name, strlen(name) + 1);
    s->compat = SLC_COMPAT_BACKWARD;
    zhashx_insert(self->subjects, s->name, s);
    return s;
}

static int s_add_version(s_subject_t *s, uint32_t version, uint64_t created_us,
                         slt_schema_t **schema)
{
    if (version != s->n + 1)
        return SL_ESTORE;
    int rc = slc_grow((void **) &s->v, &s->cap, s->n + 1, sizeof(s_version_t));
    if (rc)
        return rc;
    s->v[s->n++] = (s_version_t) { version, created_us, *schema };
    *schema = NULL;
    return 0;
}

static int s_set_binding(sld_registry_t *self, const char *topic, s_subject_t *subject,
                         uint32_t version, bool dlq)
{
    if (!subject) {
        zhashx_delete(self->bindings, topic);
        return 0;
    }
    s_binding_t *b = zhashx_lookup(self->bindings, topic);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b)
            return SL_ENOMEM;
        snprintf(b->topic, sizeof b->topic, "%.*s", SLC_TOPIC_MAX, topic);   /* validated: <= 255 */
        zhashx_insert(self->bindings, b->topic, b);
    }
    b->subject = subject;
    b->version = version;
    b->dlq = dlq;
    return 0;
}

static int s_mapping_compile(sld_registry_t *self, const char *yaml, size_t len,
                             s_mapping_t **out, char *err, size_t errlen);

/* Load pass: versions and subjects ('s', 'v'), or bindings and mappings
 * ('b', 'm'). */
typedef struct {
    sld_registry_t *self;
    bool bindings;
} s_load_t;

static int s_load_one(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_load_t *l = arg;
    const uint8_t *k = key;
    char cause[512] = "";
    int rc = 0;
    /* Bindings and mappings name subjects: the second pass. */
    if ((k[0] == 'b' || k[0] == 'm') != l->bindings)
        return 0;
    if (k[0] == 'm') {
        Sluice__MappingInfo *mi = sluice__mapping_info__unpack(NULL, vlen, val);
        s_mapping_t *m = NULL;
        if (mi && mi->name && mi->yaml && !*mi->yaml) {
            /* A removed mapping: only its last version is kept. */
            zhashx_update(l->self->removed, mi->name,
                          (void *) (uintptr_t) (mi->version ? mi->version : 1));
            sluice__mapping_info__free_unpacked(mi, NULL);
            return 0;
        }
        rc = mi && mi->yaml ? s_mapping_compile(l->self, mi->yaml, strlen(mi->yaml), &m,
                                                cause, sizeof cause) : SL_ESTORE;
        if (rc == 0) {
            m->created_us = mi->created_us;
            m->version = mi->version ? mi->version : 1;
            zhashx_update(l->self->mappings, m->name, m);
        }
        else
            fprintf(stderr, "sluiced: store: mapping \"%s\" no longer compiles: %s\n",
                    mi && mi->name ? mi->name : "?", cause);
        if (mi)
            sluice__mapping_info__free_unpacked(mi, NULL);
        return rc ? SL_ESTORE : 0;
    }
    if (k[0] == 'b') {
        Sluice__TopicSet *ts = sluice__topic_set__unpack(NULL, vlen, val);
        s_subject_t *s = ts && ts->subject ? s_subject(l->self, ts->subject, false) : NULL;
        if (!s)
            rc = SL_ESTORE;
        else
            rc = s_set_binding(l->self, ts->topic, s, ts->version,
                               ts->invalid && strcmp(ts->invalid, "dlq") == 0);
        if (ts)
            sluice__topic_set__free_unpacked(ts, NULL);
        if (rc)
            fprintf(stderr, "sluiced: store: a topic binding does not decode\n");
        return rc;
    }
    Sluice__SchemaInfo *info = sluice__schema_info__unpack(NULL, vlen, val);
    s_subject_t *s = info && info->subject ? s_subject(l->self, info->subject, true) : NULL;
    if (!s)
        rc = SL_ESTORE;
    else if (k[0] == 's')
        rc = slc_compat_parse(info->compat, &s->compat);
    else if (k[0] == 'v') {
        slt_schema_t *schema = NULL;
        rc = slt_schema_compile(info->schema, strlen(info->schema), &schema, cause, sizeof cause);
        if (rc == 0)
            rc = s_add_version(s, info->version, info->created_us, &schema);
        slt_schema_destroy(&schema);
    }
    if (rc)
        fprintf(stderr, "sluiced: store: registry record of \"%s\" is damaged %s\n",
                info && info->subject ? info->subject : "?", cause);
    if (info)
        sluice__schema_info__free_unpacked(info, NULL);
    (void) klen;
    return rc ? SL_ESTORE : 0;
}

int sld_registry_new(sld_store_t *store, sld_registry_t **out)
{
    int rc = SL_ENOMEM;
    sld_txn_t *txn = NULL;
    sld_registry_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->store = store;
    self->subjects = zhashx_new();
    self->bindings = zhashx_new();
    self->mappings = zhashx_new();
    self->removed = zhashx_new();
    if (!self->subjects || !self->bindings || !self->mappings || !self->removed)
        goto fail;
    zhashx_set_destructor(self->subjects, s_subject_free);
    zhashx_set_destructor(self->bindings, s_binding_free);
    zhashx_set_destructor(self->mappings, s_mapping_free);
    rc = sld_store_begin(store, false, &txn);
    s_load_t l = { self, false };
    if (rc == 0)
        rc = sld_table_foreach(txn, SLD_TABLE_REGISTRY, NULL, 0, s_load_one, &l);
    l.bindings = true;
    if (rc == 0)
        rc = sld_table_foreach(txn, SLD_TABLE_REGISTRY, NULL, 0, s_load_one, &l);
    sld_txn_abort(&txn);
    if (rc)
        goto fail;
    *out = self;
    return 0;
fail:
    sld_registry_destroy(&self);
    return rc;
}

void sld_registry_destroy(sld_registry_t **self_p)
{
    sld_registry_t *self = *self_p;
    if (!self)
        return;
    sld_registry_committed(self, false);
    free(self->ops);
    zhashx_destroy(&self->mappings);
    zhashx_destroy(&self->removed);
    zhashx_destroy(&self->bindings);
    zhashx_destroy(&self->subjects);
    free(self);
    *self_p = NULL;
}

/* --------------------------------------------------------------- admin */

static int s_check_name(const char *name, size_t max, const char *what, char *err, size_t errlen)
{
    size_t n = name ? strlen(name) : 0;
    bool ok = n > 0 && n <= max;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
          || c == '-' || c == '_' || c == '.';
    }
    if (!ok)
        slc_errf(err, errlen, "%s names are 1-%zu characters of [A-Za-z0-9._-]", what, max);
    return ok ? 0 : SL_EINVAL;
}

/* The newest version of SUBJECT counting staged ones, and its schema. */
static uint32_t s_latest(const sld_registry_t *self, const s_subject_t *s, const char *subject,
                         const slt_schema_t **schema)
{
    uint32_t latest = s ? (uint32_t) s->n : 0;
    *schema = latest ? s->v[latest - 1].schema : NULL;
    for (size_t i = 0; i < self->nops; i++)
        if (self->ops[i].kind == S_OP_VERSION && self->ops[i].version
            && strcmp(self->ops[i].name, subject) == 0) {
            latest = self->ops[i].version;
            *schema = self->ops[i].schema;
        }
    return latest;
}

static void s_list_errors(char *err, size_t errlen, const char *head,
                          const slt_schema_error_t *errs, size_t n)
{
    size_t k = (size_t) snprintf(err, errlen, "%s", head);
    for (size_t i = 0; i < n && k < errlen; i++)
        k += (size_t) snprintf(err + k, errlen - k, "%s%s: %s", i ? "; " : "",
                               errs[i].pointer[0] ? errs[i].pointer : "/", errs[i].rule);
}

int sld_registry_register(sld_registry_t *self, sld_txn_t *txn, const char *subject,
                          const char *text, size_t len, const char *compat,
                          bool dry_run, uint32_t *version, bool *existed,
                          char *err, size_t errlen)
{
    slt_schema_t *schema = NULL;
    slt_schema_error_t errs[S_ERRORS_MAX];
    size_t nerrs = 0;
    char cause[512] = "";
    uint8_t key[SLD_REG_KEY_MAX + 1];
    *existed = false;
    *version = 0;
    int rc = s_check_name(subject, SLD_SUBJECT_MAX, "subject", err, errlen);
    if (rc)
        return rc;
    s_subject_t *s = s_subject(self, subject, false);
    slc_compat_t mode = s ? s->compat : SLC_COMPAT_BACKWARD;
    bool set_mode = compat && *compat;
    if (set_mode && slc_compat_parse(compat, &mode) != 0) {
        slc_errf(err, errlen, "unknown compatibility mode \"%s\": BACKWARD, FORWARD, FULL or NONE",
                 compat);
        return SL_EINVAL;
    }
    rc = slt_schema_compile(text, len, &schema, cause, sizeof cause);
    if (rc) {
        slc_errf(err, errlen, "the schema does not compile: %s", cause);
        return SL_EINVAL;
    }
    const slt_schema_t *prev = NULL;
    uint32_t latest = s_latest(self, s, subject, &prev);
    if (prev && strcmp(slt_schema_text(prev), slt_schema_text(schema)) == 0) {
        *existed = true;
        *version = latest;
        slt_schema_destroy(&schema);
        if (dry_run || !set_mode || (s && mode == s->compat))
            return 0;
    }
    else if (prev && slt_schema_compatible(prev, schema, mode, errs, S_ERRORS_MAX, &nerrs) != 0) {
        char head[SLD_SUBJECT_MAX + 96];
        snprintf(head, sizeof head, "incompatible with %s@%u (%s): ", subject, latest,
                 slc_compat_name(mode));
        s_list_errors(err, errlen, head, errs, nerrs);
        slt_schema_destroy(&schema);
        return SL_EINVAL;
    }
    else
        *version = latest + 1;
    if (dry_run) {
        slt_schema_destroy(&schema);
        return 0;
    }
    rc = slc_grow((void **) &self->ops, &self->capops, self->nops + 1, sizeof(s_op_t));
    if (rc) {
        slt_schema_destroy(&schema);
        return rc;
    }
    s_op_t *op = &self->ops[self->nops++];
    memset(op, 0, sizeof *op);
    snprintf(op->name, sizeof op->name, "%s", subject);
    /* A new version, or (schema unchanged) only a new mode. */
    op->compat = mode;
    op->version = *existed ? 0 : *version;
    op->created_us = slc_now_us();
    op->schema = schema;
    if (!*existed) {
        Sluice__SchemaInfo info = SLUICE__SCHEMA_INFO__INIT;
        info.subject = (char *) subject;
        info.version = op->version;
        info.schema = (char *) slt_schema_text(schema);
        info.created_us = op->created_us;
        rc = s_put_info(txn, key, s_key(key, 'v', subject, op->version), &info);
    }
    if (rc == 0) {
        Sluice__SchemaInfo meta = SLUICE__SCHEMA_INFO__INIT;
        meta.subject = (char *) subject;
        meta.compat = (char *) slc_compat_name(mode);
        meta.versions = *version;
        rc = s_put_info(txn, key, s_key(key, 's', subject, 0), &meta);
    }
    return rc;
}

int sld_registry_bind(sld_registry_t *self, sld_txn_t *txn, const char *topic,
                      const char *subject, uint32_t version, const char *invalid,
                      char *err, size_t errlen)
{
    uint8_t key[SLD_REG_KEY_MAX + 1];
    bool unbind = !subject || !*subject;
    bool dlq = invalid && strcmp(invalid, "dlq") == 0;
    if (!topic || slc_topic_validate(topic, false) != 0) {
        slc_errf(err, errlen, "invalid topic name");
        return SL_EINVAL;
    }
    if (invalid && *invalid && !dlq && strcmp(invalid, "reject") != 0) {
        slc_errf(err, errlen, "--invalid is reject or dlq, not \"%s\"", invalid);
        return SL_EINVAL;
    }
    if (!unbind) {
        const slt_schema_t *latest_schema;
        s_subject_t *s = s_subject(self, subject, false);
        uint32_t latest = s_latest(self, s, subject, &latest_schema);
        if (latest == 0 || version > latest) {
            slc_errf(err, errlen, version ? "no schema %s@%u: register it first"
                                          : "no schema %s: register it first", subject, version);
            return SL_ENOTFOUND;
        }
    }
    int rc = slc_grow((void **) &self->ops, &self->capops, self->nops + 1, sizeof(s_op_t));
    if (rc)
        return rc;
    s_op_t *op = &self->ops[self->nops++];
    memset(op, 0, sizeof *op);
    op->kind = S_OP_BIND;
    snprintf(op->name, sizeof op->name, "%s", topic);
    snprintf(op->subject, sizeof op->subject, "%s", unbind ? "" : subject);
    op->version = version;
    op->dlq = dlq;
    size_t klen = s_key(key, 'b', topic, 0);
    if (unbind) {
        rc = sld_table_del(txn, SLD_TABLE_REGISTRY, key, klen);
        return rc == SL_ENOTFOUND ? 0 : rc;
    }
    Sluice__TopicSet ts = SLUICE__TOPIC_SET__INIT;
    ts.topic = (char *) topic;
    ts.subject = (char *) subject;
    ts.version = version;
    ts.invalid = dlq ? "dlq" : "reject";
    size_t len = sluice__topic_set__get_packed_size(&ts);
    uint8_t *buf = malloc(len + 1);
    if (!buf)
        return SL_ENOMEM;
    sluice__topic_set__pack(&ts, buf);
    rc = sld_table_put(txn, SLD_TABLE_REGISTRY, key, klen, buf, len);
    free(buf);
    return rc;
}

void sld_registry_committed(sld_registry_t *self, bool ok)
{
    if (ok && self->nops)
        self->gen++;
    for (size_t i = 0; i < self->nops; i++) {
        s_op_t *op = &self->ops[i];
        if (op->kind == S_OP_MAP_ADD || op->kind == S_OP_MAP_REMOVE) {
            if (ok)
                self->mappings_gen++;
            if (ok && op->kind == S_OP_MAP_ADD) {
                zhashx_delete(self->removed, op->name);
                zhashx_update(self->mappings, op->mapping->name, op->mapping);
                op->mapping = NULL;
            }
            else if (ok) {
                zhashx_delete(self->mappings, op->name);
                zhashx_update(self->removed, op->name, (void *) (uintptr_t) op->version);
            }
            s_mapping_free((void **) &op->mapping);
            continue;
        }
        if (ok && op->kind == S_OP_VERSION) {
            s_subject_t *s = s_subject(self, op->name, true);
            if (s) {
                s->compat = op->compat;
                if (op->schema && s_add_version(s, op->version, op->created_us, &op->schema) != 0)
                    fprintf(stderr, "sluiced: registry: %s@%u not applied in memory\n",
                            op->name, op->version);
            }
        }
        else if (ok)
            s_set_binding(self, op->name, op->subject[0] ? s_subject(self, op->subject, false)
                                                         : NULL, op->version, op->dlq);
        slt_schema_destroy(&op->schema);
    }
    self->nops = 0;
}

/* ------------------------------------------------------------- mappings */

/* The schema of SUBJECT@VERSION (VERSION 0 = latest), committed or staged
 * in the open transaction; NULL when there is none. */
static const slt_schema_t *s_schema_of(sld_registry_t *self, const char *subject,
                                       uint32_t version)
{
    s_subject_t *s = s_subject(self, subject, false);
    const slt_schema_t *latest;
    uint32_t n = s_latest(self, s, subject, &latest);
    if (version == 0)
        return n ? latest : NULL;
    if (s && version <= s->n)
        return s->v[version - 1].schema;
    for (size_t i = 0; i < self->nops; i++)
        if (self->ops[i].kind == S_OP_VERSION && self->ops[i].version == version
            && strcmp(self->ops[i].name, subject) == 0)
            return self->ops[i].schema;
    return NULL;
}

/* Compile YAML once, against its `from` schema (found by peeking at the
 * YAML), so that syntax, names, paths and types are reported together. */
static int s_mapping_compile(sld_registry_t *self, const char *yaml, size_t len,
                             s_mapping_t **out, char *err, size_t errlen)
{
    slt_map_t *map = NULL;
    char subject[SLD_SUBJECT_MAX + 1], from_ref[512], to_ref[512];
    uint32_t version;
    const slt_schema_t *from = NULL;
    int rc = 0;
    /* A YAML that does not parse, or names no valid schema, is left to the
     * compiler to explain; a valid reference to a missing schema is ours. */
    if (slt_map_peek(yaml, len, from_ref, to_ref, sizeof from_ref) == 0) {
        if (slc_subject_ref(from_ref, subject, sizeof subject, &version) == 0
            && !(from = s_schema_of(self, subject, version))) {
            slc_errf(err, errlen, "from: no schema %s registered", from_ref);
            return SL_ENOTFOUND;
        }
        if (slc_subject_ref(to_ref, subject, sizeof subject, &version) == 0
            && !s_schema_of(self, subject, version)) {
            slc_errf(err, errlen, "to: no schema %s registered", to_ref);
            return SL_ENOTFOUND;
        }
    }
    rc = slt_map_compile(yaml, len, NULL, from ? slt_map_schema_types : NULL, (void *) from,
                         &map, err, errlen);
    if (rc)
        return rc == SL_ENOMEM ? rc : SL_EINVAL;
    s_mapping_t *m = calloc(1, sizeof *m);
    char *copy = malloc(len + 1);
    if (!m || !copy) {
        free(m);
        free(copy);
        slt_map_destroy(&map);
        return SL_ENOMEM;
    }
    memcpy(copy, yaml, len);
    copy[len] = 0;
    snprintf(m->name, sizeof m->name, "%s", slt_map_name(map));
    m->yaml = copy;
    m->map = map;
    m->created_us = slc_now_us();
    *out = m;
    return 0;
}

/* The newest version of mapping NAME counting staged changes (0: never
 * added), and *cur the mapping under the name now (NULL: none; removed). */
static uint32_t s_map_latest(const sld_registry_t *self, const char *name,
                             const s_mapping_t **cur)
{
    const s_mapping_t *m = zhashx_lookup(self->mappings, name);
    uint32_t v = m ? m->version : (uint32_t) (uintptr_t) zhashx_lookup(self->removed, name);
    for (size_t i = 0; i < self->nops; i++) {
        const s_op_t *op = &self->ops[i];
        if ((op->kind != S_OP_MAP_ADD && op->kind != S_OP_MAP_REMOVE)
            || strcmp(op->name, name) != 0)
            continue;
        m = op->kind == S_OP_MAP_ADD ? op->mapping : NULL;
        v = op->kind == S_OP_MAP_ADD ? op->mapping->version : op->version;
    }
    *cur = m;
    return v;
}

static void s_map_info(const s_mapping_t *m, Sluice__MappingInfo *out, bool yaml)
{
    sluice__mapping_info__init(out);
    out->name = (char *) m->name;
    out->from = (char *) slt_map_from(m->map);
    out->to = (char *) slt_map_to(m->map);
    out->yaml = yaml ? m->yaml : "";
    out->created_us = m->created_us;
    out->version = m->version;
}

int sld_registry_map_add(sld_registry_t *self, sld_txn_t *txn, const char *yaml, size_t len,
                         Sluice__MappingInfo *info, char *err, size_t errlen)
{
    uint8_t key[SLD_REG_KEY_MAX + 1];
    s_mapping_t *m = NULL;
    const s_mapping_t *cur = NULL;
    int rc = s_mapping_compile(self, yaml, len, &m, err, errlen);
    if (rc)
        return rc;
    if (strlen(m->name) + 1 > SLD_REG_KEY_MAX
        || s_check_name(m->name, SLT_MAP_NAME_MAX, "mapping", err, errlen) != 0) {
        s_mapping_free((void **) &m);
        return SL_EINVAL;
    }
    m->version = s_map_latest(self, m->name, &cur) + 1;
    if (cur && strcmp(cur->yaml, m->yaml) == 0) {
        /* The same text again: its version stays, nothing is written. */
        s_map_info(cur, info, true);
        s_mapping_free((void **) &m);
        return 0;
    }
    rc = slc_grow((void **) &self->ops, &self->capops, self->nops + 1, sizeof(s_op_t));
    if (rc) {
        s_mapping_free((void **) &m);
        return rc;
    }
    s_op_t *op = &self->ops[self->nops++];
    memset(op, 0, sizeof *op);
    op->kind = S_OP_MAP_ADD;
    op->mapping = m;
    snprintf(op->name, sizeof op->name, "%s", m->name);
    sluice__mapping_info__init(info);
    info->name = m->name;
    info->from = (char *) slt_map_from(m->map);
    info->to = (char *) slt_map_to(m->map);
    info->yaml = m->yaml;
    info->created_us = m->created_us;
    info->version = m->version;
    size_t vlen = sluice__mapping_info__get_packed_size(info);
    uint8_t *buf = malloc(vlen + 1);
    if (!buf)
        return SL_ENOMEM;
    sluice__mapping_info__pack(info, buf);
    rc = sld_table_put(txn, SLD_TABLE_REGISTRY, key, s_key(key, 'm', m->name, 0), buf, vlen);
    free(buf);
    return rc;
}

int sld_registry_map_remove(sld_registry_t *self, sld_txn_t *txn, const char *name,
                            char *err, size_t errlen)
{
    uint8_t key[SLD_REG_KEY_MAX + 1];
    const s_mapping_t *cur = NULL;
    uint32_t version = name ? s_map_latest(self, name, &cur) : 0;
    if (!cur) {
        slc_errf(err, errlen, "no mapping named \"%s\"", name ? name : "");
        return SL_ENOTFOUND;
    }
    int rc = slc_grow((void **) &self->ops, &self->capops, self->nops + 1, sizeof(s_op_t));
    if (rc)
        return rc;
    s_op_t *op = &self->ops[self->nops++];
    memset(op, 0, sizeof *op);
    op->kind = S_OP_MAP_REMOVE;
    op->version = version;
    snprintf(op->name, sizeof op->name, "%s", name);
    /* What stays: the name and its last version (a later add goes on). */
    Sluice__MappingInfo gone = SLUICE__MAPPING_INFO__INIT;
    gone.name = op->name;
    gone.yaml = "";
    gone.version = version;
    size_t vlen = sluice__mapping_info__get_packed_size(&gone);
    uint8_t *buf = malloc(vlen + 1);
    if (!buf)
        return SL_ENOMEM;
    sluice__mapping_info__pack(&gone, buf);
    rc = sld_table_put(txn, SLD_TABLE_REGISTRY, key, s_key(key, 'm', name, 0), buf, vlen);
    free(buf);
    return rc;
}

int sld_registry_map_get(sld_registry_t *self, const char *name, Sluice__MappingInfo *out)
{
    const s_mapping_t *m = name ? zhashx_lookup(self->mappings, name) : NULL;
    if (!m)
        return SL_ENOTFOUND;
    s_map_info(m, out, true);
    return 0;
}

int sld_registry_map_list(sld_registry_t *self, Sluice__MappingInfo ***out, size_t *n)
{
    *n = 0;
    *out = calloc(zhashx_size(self->mappings) + 1, sizeof(Sluice__MappingInfo *));
    if (!*out)
        return SL_ENOMEM;
    for (s_mapping_t *m = zhashx_first(self->mappings); m; m = zhashx_next(self->mappings)) {
        Sluice__MappingInfo *info = malloc(sizeof *info);
        if (!info) {
            sld_registry_map_list_free(out, *n);
            return SL_ENOMEM;
        }
        s_map_info(m, info, false);
        (*out)[(*n)++] = info;
    }
    return 0;
}

void sld_registry_map_list_free(Sluice__MappingInfo ***out, size_t n)
{
    s_free_list((void ***) out, n);
}

/* ---------------------------------------------------------------- reads */

int sld_registry_get(sld_registry_t *self, const char *subject, uint32_t version,
                     Sluice__SchemaInfo *out)
{
    s_subject_t *s = subject ? s_subject(self, subject, false) : NULL;
    if (!s || s->n == 0 || version > s->n)
        return SL_ENOTFOUND;
    const s_version_t *v = &s->v[(version ? version : s->n) - 1];
    sluice__schema_info__init(out);
    out->subject = s->name;
    out->version = v->version;
    out->schema = (char *) slt_schema_text(v->schema);
    out->compat = (char *) slc_compat_name(s->compat);
    out->created_us = v->created_us;
    out->versions = (uint32_t) s->n;
    return 0;
}

int sld_registry_list(sld_registry_t *self, Sluice__SchemaInfo ***out, size_t *n)
{
    *n = 0;
    *out = calloc(zhashx_size(self->subjects) + 1, sizeof(Sluice__SchemaInfo *));
    if (!*out)
        return SL_ENOMEM;
    for (s_subject_t *s = zhashx_first(self->subjects); s; s = zhashx_next(self->subjects)) {
        Sluice__SchemaInfo *info = malloc(sizeof *info);
        if (!info || s->n == 0) {
            free(info);
            if (s->n == 0)
                continue;
            sld_registry_list_free(out, *n);
            return SL_ENOMEM;
        }
        /* Filled here, not by sld_registry_get: a lookup would move the
         * hash's cursor under this walk. */
        const s_version_t *v = &s->v[s->n - 1];
        sluice__schema_info__init(info);
        info->subject = s->name;
        info->version = v->version;
        info->schema = "";
        info->compat = (char *) slc_compat_name(s->compat);
        info->created_us = v->created_us;
        info->versions = (uint32_t) s->n;
        (*out)[(*n)++] = info;
    }
    return 0;
}

void sld_registry_list_free(Sluice__SchemaInfo ***out, size_t n)
{
    s_free_list((void ***) out, n);
}

/* ----------------------------------------------------------- validation */

bool sld_registry_any(const sld_registry_t *self)
{
    return zhashx_size(self->bindings) > 0;
}

int sld_registry_check(sld_registry_t *self, const char *topic, const char *content_type,
                       const void *payload, size_t len, bool *dlq,
                       char *err, size_t errlen)
{
    return sld_registry_check_doc(self, topic, content_type, payload, len, dlq, NULL,
                                  err, errlen);
}

void sld_registry_resolve(sld_registry_t *self, const char *topic, sld_registry_bound_t *out)
{
    memset(out, 0, sizeof *out);
    s_binding_t *b = topic ? zhashx_lookup(self->bindings, topic) : NULL;
    if (!b || b->subject->n == 0)
        return;
    out->version = b->version && b->version <= b->subject->n ? b->version
                                                              : (uint32_t) b->subject->n;
    out->schema = b->subject->v[out->version - 1].schema;
    out->subject = b->subject->name;
    out->dlq = b->dlq;
}

int sld_registry_check_doc(sld_registry_t *self, const char *topic, const char *content_type,
                           const void *payload, size_t len, bool *dlq, cJSON **doc,
                           char *err, size_t errlen)
{
    sld_registry_bound_t b;
    sld_registry_resolve(self, topic, &b);
    *dlq = b.dlq;
    return sld_registry_check_bound(&b, content_type, payload, len, doc, err, errlen);
}

int sld_registry_check_bound(const sld_registry_bound_t *b, const char *content_type,
                             const void *payload, size_t len, cJSON **doc,
                             char *err, size_t errlen)
{
    cJSON **docs = NULL;
    size_t ndocs = 0, nerrs = 0;
    slt_schema_error_t errs[S_ERRORS_MAX];
    char cause[512] = "";
    int rc = 0;
    if (!b->schema)
        return 0;
    /* Most payloads are one document: room for one first, on the stack
     * (an 8 KiB calloc per message cost more than the check); more than
     * one (NDJSON, CSV) decodes again with room for all. */
    cJSON *one[1] = { NULL };
    docs = one;
    rc = slt_doc_decode(content_type && *content_type ? content_type : NULL, payload, len,
                        docs, 1, &ndocs, cause, sizeof cause);
    if (rc == SL_ETOOBIG) {
        docs = calloc(S_DOCS_MAX, sizeof(cJSON *));
        if (!docs)
            return SL_ENOMEM;
        rc = slt_doc_decode(content_type && *content_type ? content_type : NULL, payload,
                            len, docs, S_DOCS_MAX, &ndocs, cause, sizeof cause);
    }
    if (rc) {
        slc_errf(err, errlen, "schema %s@%u: the payload does not decode: %s",
                 b->subject, b->version, cause);
        rc = SL_EINVAL;
        goto fail;
    }
    for (size_t i = 0; i < ndocs; i++) {
        if (slt_schema_validate(b->schema, docs[i], errs, S_ERRORS_MAX, &nerrs) == 0)
            continue;
        char head[SLD_SUBJECT_MAX + 64];
        if (ndocs > 1)
            snprintf(head, sizeof head, "schema %s@%u, document %zu: ", b->subject,
                     b->version, i + 1);
        else
            snprintf(head, sizeof head, "schema %s@%u: ", b->subject, b->version);
        s_list_errors(err, errlen, head, errs, nerrs);
        rc = SL_EINVAL;
        break;
    }
    if (rc == 0 && doc && ndocs == 1) {
        *doc = docs[0];                 /* the caller's now: parsed once */
        docs[0] = NULL;
    }
fail:
    for (size_t i = 0; i < ndocs; i++)
        cJSON_Delete(docs[i]);
    if (docs != one)
        free(docs);
    return rc;
}

uint64_t sld_registry_gen(const sld_registry_t *self)
{
    return self->gen;
}

/* ------------------------------------------------------------- routing */

uint64_t sld_registry_mappings_gen(const sld_registry_t *self)
{
    return self->mappings_gen;
}

int sld_registry_topic_schema(sld_registry_t *self, const char *topic,
                              const struct slt_schema **schema, char *ref, size_t reflen)
{
    s_binding_t *b = topic ? zhashx_lookup(self->bindings, topic) : NULL;
    if (!b || b->subject->n == 0)
        return SL_ENOTFOUND;
    uint32_t version = b->version && b->version <= b->subject->n ? b->version
                                                                  : (uint32_t) b->subject->n;
    *schema = b->subject->v[version - 1].schema;
    snprintf(ref, reflen, "%s@%u", b->subject->name, version);
    return 0;
}

void sld_registry_binding(sld_registry_t *self, const char *topic, char *ref, size_t reflen)
{
    const s_binding_t *b = topic ? zhashx_lookup(self->bindings, topic) : NULL;
    if (!b)
        snprintf(ref, reflen, "%s", "");
    else if (b->version)
        snprintf(ref, reflen, "%s@%u", b->subject->name, b->version);
    else
        snprintf(ref, reflen, "%s@latest", b->subject->name);
}

int sld_registry_resolve_ref(sld_registry_t *self, const char *ref, sld_registry_bound_t *out,
                             char *err, size_t errlen)
{
    char subject[SLD_SUBJECT_MAX + 1];
    uint32_t version = 0;
    s_subject_t *s = NULL;
    memset(out, 0, sizeof *out);
    if (slc_subject_ref(ref, subject, sizeof subject, &version) == 0)
        s = s_subject(self, subject, false);
    if (!s || s->n == 0 || version > s->n) {
        slc_errf(err, errlen, "no schema %s registered", ref ? ref : "");
        return SL_ENOTFOUND;
    }
    out->version = version ? version : (uint32_t) s->n;
    out->schema = s->v[out->version - 1].schema;
    out->subject = s->name;
    return 0;
}

int sld_registry_validate_bound(const sld_registry_bound_t *b, const cJSON *doc,
                                char *err, size_t errlen)
{
    slt_schema_error_t errs[S_ERRORS_MAX];
    size_t nerrs = 0;
    if (slt_schema_validate(b->schema, doc, errs, S_ERRORS_MAX, &nerrs) == 0)
        return 0;
    char head[SLD_SUBJECT_MAX + 64];
    snprintf(head, sizeof head, "schema %s@%u: ", b->subject, b->version);
    s_list_errors(err, errlen, head, errs, nerrs);
    return SL_EINVAL;
}

int sld_registry_validate_ref(sld_registry_t *self, const char *ref, const cJSON *doc,
                              char *err, size_t errlen)
{
    sld_registry_bound_t b;
    int rc = sld_registry_resolve_ref(self, ref, &b, err, errlen);
    return rc ? rc : sld_registry_validate_bound(&b, doc, err, errlen);
}
