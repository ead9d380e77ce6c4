/*  sld_routes - routing table versions, the live compiled table, staged
 *  changes and counters (see sld_routes.h).
 *
 *  Records in the store's `routes` table: version u32 big-endian ->
 *  RoutesInfo{version, yaml, applied_us, identity, routes, rollback_of}.
 *  The live version is the highest. Every version's metadata stays in
 *  memory (for lists); YAML is read from the store when asked for.
 *
 *  The live table borrows the compiled mappings it names; those are this
 *  module's own copies (compiled from the registry's YAML, each with the
 *  registry's version of it, for lineage), so a mapping
 *  replaced or removed in the registry never leaves the table pointing at
 *  freed memory. When the registry's mappings change, the live table is
 *  compiled again after the commit; if it no longer compiles it keeps its
 *  copies (and says so in the log).  */
#include "sld_routes.h"
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slt_map_schema.h"

typedef struct {
    uint32_t version;
    uint64_t applied_us;
    char identity[SLD_IDENT_NAME_MAX + 1];
    uint32_t rollback_of;
    uint32_t nroutes;
} s_meta_t;

/* A compiled version with the mappings it borrows and its counters. */
typedef struct {
    slt_route_table_t *table;
    char *yaml;                 /* kept to compile again (owned) */
    size_t len;
    uint32_t version;
    uint64_t applied_us;
    char **names;               /* mapping names (owned) */
    slt_map_t **maps;           /* their compiled copies (owned) */
    uint32_t *mapvers;          /* the registry's version each copy is of */
    size_t nmaps, capmaps;
    uint64_t (*counts)[SLD_ROUTE_NCOUNTERS];  /* per route */
} s_compiled_t;

struct sld_routes {
    sld_store_t *store;
    sld_registry_t *registry;
    s_meta_t *metas;            /* committed versions, ascending */
    size_t nmetas, capmetas;
    s_compiled_t *live;         /* NULL: none */
    s_meta_t *staged;           /* versions written in the open txn */
    size_t nstaged, capstaged;
    s_compiled_t *next;         /* the last staged version, compiled */
    uint64_t (*pend)[SLD_ROUTE_NCOUNTERS];    /* the open txn's counts */
    size_t npend;
    uint64_t unrouted, pend_unrouted;
    uint64_t reg_gen;
    uint64_t gen;               /* changes of the live table (sld_routes_gen) */
};

static void s_compiled_free(s_compiled_t **c_p)
{
    s_compiled_t *c = *c_p;
    if (!c)
        return;
    slt_route_destroy(&c->table);
    for (size_t i = 0; i < c->nmaps; i++) {
        free(c->names[i]);
        slt_map_destroy(&c->maps[i]);
    }
    free(c->names);
    free(c->maps);
    free(c->mapvers);
    free(c->counts);
    free(c->yaml);
    free(c);
    *c_p = NULL;
}

/* ------------------------------------------------------------ compiling */

typedef struct {
    sld_routes_t *self;
    s_compiled_t *into;
    char **refs;                /* subjects handed to the compiler */
    size_t nrefs, caprefs;
} s_resolve_t;

/* Make *P room for N items of SIZE bytes (kept as it was on failure). */
static int s_fit(void **p, size_t n, size_t size)
{
    void *q = realloc(*p, n * size);
    if (!q)
        return SL_ENOMEM;
    *p = q;
    return 0;
}

static int s_res_mapping(void *arg, const char *name, const slt_map_t **map)
{
    s_resolve_t *r = arg;
    s_compiled_t *c = r->into;
    for (size_t i = 0; i < c->nmaps; i++)
        if (strcmp(c->names[i], name) == 0) {
            *map = c->maps[i];
            return 0;
        }
    Sluice__MappingInfo info;
    if (sld_registry_map_get(r->self->registry, name, &info) != 0)
        return SL_ENOTFOUND;
    slt_map_t *m = NULL;
    char *copy = strdup(name);
    /* names sets the capacity; maps and mapvers follow it. */
    if (!copy || slc_grow((void **) &c->names, &c->capmaps, c->nmaps + 1, sizeof(char *)) != 0
        || s_fit((void **) &c->maps, c->capmaps, sizeof(slt_map_t *)) != 0
        || s_fit((void **) &c->mapvers, c->capmaps, sizeof(uint32_t)) != 0) {
        free(copy);
        return SL_ENOMEM;
    }
    /* Checked against its schema when it was registered. */
    int rc = slt_map_compile(info.yaml, strlen(info.yaml), name, NULL, NULL, &m, NULL, 0);
    if (rc) {
        free(copy);
        return rc == SL_ENOMEM ? rc : SL_ENOTFOUND;
    }
    c->names[c->nmaps] = copy;
    c->mapvers[c->nmaps] = info.version;
    c->maps[c->nmaps++] = m;
    *map = m;
    return 0;
}

static int s_res_schema(void *arg, const char *topic, slt_map_types_fn **types,
                        void **types_arg, const char **subject)
{
    s_resolve_t *r = arg;
    const slt_schema_t *schema;
    char ref[SLD_SUBJECT_MAX + 16];
    if (sld_registry_topic_schema(r->self->registry, topic, &schema, ref, sizeof ref) != 0)
        return SL_ENOTFOUND;
    char *copy = strdup(ref);
    if (!copy || slc_grow((void **) &r->refs, &r->caprefs, r->nrefs + 1, sizeof(char *)) != 0) {
        free(copy);
        return SL_ENOMEM;
    }
    r->refs[r->nrefs++] = copy;
    *types = slt_map_schema_types;
    *types_arg = (void *) schema;
    *subject = copy;
    return 0;
}

/* Compile YAML (LEN bytes) with copies of the mappings it names. 0 and
 * *out, or the compiler's code with every error in ERR. */
static int s_compile(sld_routes_t *self, const char *yaml, size_t len, s_compiled_t **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    if (len > SLT_ROUTE_YAML_MAX) {
        slc_errf(err, errlen, "routing table of %zu bytes is over the limit of %u bytes", len,
                 SLT_ROUTE_YAML_MAX);
        return SL_ETOOBIG;
    }
    s_compiled_t *c = calloc(1, sizeof *c);
    if (!c || !(c->yaml = malloc(len + 1))) {
        free(c);
        return SL_ENOMEM;
    }
    memcpy(c->yaml, yaml, len);
    c->yaml[len] = 0;
    c->len = len;
    s_resolve_t r = { self, c, NULL, 0, 0 };
    slt_route_resolver_t resolver = { s_res_mapping, s_res_schema, &r };
    int rc = slt_route_compile(yaml, len, "routes.yaml", &resolver, &c->table, err, errlen);
    for (size_t i = 0; i < r.nrefs; i++)
        free(r.refs[i]);
    free(r.refs);
    size_t n = rc == 0 ? slt_route_count(c->table) : 0;
    if (rc == 0 && n && !(c->counts = calloc(n, sizeof *c->counts)))
        rc = SL_ENOMEM;
    if (rc) {
        s_compiled_free(&c);
        return rc;
    }
    *out = c;
    return 0;
}

/* -------------------------------------------------------------- records */

static void s_key(uint8_t key[4], uint32_t v)
{
    key[0] = (uint8_t) (v >> 24);
    key[1] = (uint8_t) (v >> 16);
    key[2] = (uint8_t) (v >> 8);
    key[3] = (uint8_t) v;
}

static int s_meta_push(s_meta_t **v, size_t *n, size_t *cap, const Sluice__RoutesInfo *ri)
{
    if (slc_grow((void **) v, cap, *n + 1, sizeof(s_meta_t)) != 0)
        return SL_ENOMEM;
    s_meta_t *m = &(*v)[(*n)++];
    memset(m, 0, sizeof *m);
    m->version = ri->version;
    m->applied_us = ri->applied_us;
    snprintf(m->identity, sizeof m->identity, "%s", ri->identity ? ri->identity : "");
    m->rollback_of = ri->rollback_of;
    m->nroutes = ri->routes;
    return 0;
}

typedef struct {
    sld_routes_t *self;
    Sluice__RoutesInfo *last;   /* the highest version's record (owned) */
} s_load_t;

static int s_load_one(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    s_load_t *l = arg;
    (void) key;
    Sluice__RoutesInfo *ri = sluice__routes_info__unpack(NULL, vlen, val);
    if (!ri || klen != 4) {
        fprintf(stderr, "sluiced: routes: a stored routing table does not decode\n");
        if (ri)
            sluice__routes_info__free_unpacked(ri, NULL);
        return SL_ESTORE;
    }
    int rc = s_meta_push(&l->self->metas, &l->self->nmetas, &l->self->capmetas, ri);
    if (l->last)
        sluice__routes_info__free_unpacked(l->last, NULL);
    l->last = ri;
    return rc;
}

int sld_routes_new(sld_store_t *store, sld_registry_t *registry, sld_routes_t **out)
{
    sld_txn_t *txn = NULL;
    s_load_t l = { NULL, NULL };
    sld_routes_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->store = store;
    self->registry = registry;
    self->reg_gen = sld_registry_mappings_gen(registry);
    l.self = self;
    int rc = sld_store_begin(store, false, &txn);
    if (rc == 0)
        rc = sld_table_foreach(txn, SLD_TABLE_ROUTES, NULL, 0, s_load_one, &l);
    sld_txn_abort(&txn);
    if (rc == 0 && l.last) {
        char err[4096];
        s_compiled_t *c = NULL;
        int crc = s_compile(self, l.last->yaml, strlen(l.last->yaml), &c, err, sizeof err);
        if (crc == SL_ENOMEM)
            rc = crc;
        else if (crc)
            fprintf(stderr, "sluiced: routes: the live routing table (version %u) no longer "
                    "compiles; routing is off until a table is applied:\n%s\n",
                    l.last->version, err);
        else {
            c->version = l.last->version;
            c->applied_us = l.last->applied_us;
            self->live = c;
        }
    }
    if (l.last)
        sluice__routes_info__free_unpacked(l.last, NULL);
    if (rc) {
        sld_routes_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

void sld_routes_destroy(sld_routes_t **self_p)
{
    sld_routes_t *self = *self_p;
    if (!self)
        return;
    s_compiled_free(&self->live);
    s_compiled_free(&self->next);
    free(self->metas);
    free(self->staged);
    free(self->pend);
    free(self);
    *self_p = NULL;
}

/* ----------------------------------------------------------------- live */

const slt_route_table_t *sld_routes_live(const sld_routes_t *self)
{
    return self->live && slt_route_count(self->live->table) ? self->live->table : NULL;
}

uint64_t sld_routes_gen(const sld_routes_t *self)
{
    return self->gen;
}

uint32_t sld_routes_version(const sld_routes_t *self)
{
    return self->nmetas ? self->metas[self->nmetas - 1].version : 0;
}

const slt_map_t *sld_routes_mapping(const sld_routes_t *self, const char *name)
{
    const s_compiled_t *c = self->live;
    for (size_t i = 0; c && name && i < c->nmaps; i++)
        if (strcmp(c->names[i], name) == 0)
            return c->maps[i];
    return NULL;
}

uint32_t sld_routes_mapping_version(const sld_routes_t *self, const slt_map_t *map)
{
    const s_compiled_t *c = self->live;
    for (size_t i = 0; c && map && i < c->nmaps; i++)
        if (c->maps[i] == map)
            return c->mapvers[i];
    return 0;
}

void sld_routes_count(sld_routes_t *self, size_t route, sld_route_counter_t which, uint64_t n)
{
    size_t nroutes = self->live ? slt_route_count(self->live->table) : 0;
    if (route >= nroutes)
        return;
    if (self->npend < nroutes) {
        void *p = realloc(self->pend, nroutes * sizeof *self->pend);
        if (!p)
            return;             /* a counter lost, nothing else */
        self->pend = p;
        memset(self->pend + self->npend, 0, (nroutes - self->npend) * sizeof *self->pend);
        self->npend = nroutes;
    }
    self->pend[route][which] += n;
}

void sld_routes_count_unrouted(sld_routes_t *self)
{
    self->pend_unrouted++;
}

/* -------------------------------------------------------------- changes */

/* The version the next change follows: the last staged, else the live. */
static uint32_t s_current(const sld_routes_t *self)
{
    return self->nstaged ? self->staged[self->nstaged - 1].version : sld_routes_version(self);
}

static const slt_route_table_t *s_current_table(const sld_routes_t *self)
{
    return self->nstaged ? (self->next ? self->next->table : NULL)
                         : (self->live ? self->live->table : NULL);
}

int sld_routes_apply(sld_routes_t *self, sld_txn_t *txn, const char *yaml, size_t len,
                     const char *identity, uint32_t expect, uint32_t rollback_of,
                     bool dry_run, uint32_t *version, bool *changed, char **diff,
                     char *err, size_t errlen)
{
    s_compiled_t *c = NULL;
    uint32_t cur = s_current(self);
    *version = cur;
    *changed = false;
    *diff = NULL;
    if (expect && expect != cur) {
        slc_errf(err, errlen, "expect_version %u: the live routing table is version %u "
                 "(someone applied in between); look at it and apply again", expect, cur);
        return SL_ESTALE;
    }
    int rc = s_compile(self, yaml ? yaml : "", yaml ? len : 0, &c, err, errlen);
    if (rc)
        return rc;
    const slt_route_table_t *old = s_current_table(self);
    *diff = slt_route_diff(old, c->table);
    *changed = !(cur && old && slt_route_equal(old, c->table));
    if (dry_run || !*changed) {
        s_compiled_free(&c);
        return 0;
    }
    Sluice__RoutesInfo ri = SLUICE__ROUTES_INFO__INIT;
    ri.version = cur + 1;
    ri.yaml = c->yaml;
    ri.applied_us = slc_now_us();
    ri.identity = (char *) (identity ? identity : "");
    ri.routes = (uint32_t) slt_route_count(c->table);
    ri.rollback_of = rollback_of;
    size_t vlen = sluice__routes_info__get_packed_size(&ri);
    uint8_t *buf = malloc(vlen + 1), key[4];
    if (!buf) {
        s_compiled_free(&c);
        return SL_ENOMEM;
    }
    sluice__routes_info__pack(&ri, buf);
    s_key(key, ri.version);
    rc = sld_table_put(txn, SLD_TABLE_ROUTES, key, 4, buf, vlen);
    free(buf);
    if (rc == 0)
        rc = s_meta_push(&self->staged, &self->nstaged, &self->capstaged, &ri);
    if (rc) {
        s_compiled_free(&c);
        return rc;
    }
    c->version = ri.version;
    c->applied_us = ri.applied_us;
    s_compiled_free(&self->next);
    self->next = c;
    *version = ri.version;
    return 0;
}

int sld_routes_rollback(sld_routes_t *self, sld_txn_t *txn, uint32_t k, const char *identity,
                        uint32_t expect, uint32_t *version, bool *changed, char **diff,
                        char *err, size_t errlen)
{
    uint8_t key[4];
    const void *val;
    size_t vlen;
    *version = s_current(self);
    *changed = false;
    *diff = NULL;
    s_key(key, k);
    int rc = k ? sld_table_get(txn, SLD_TABLE_ROUTES, key, 4, &val, &vlen) : SL_ENOTFOUND;
    if (rc == SL_ENOTFOUND)
        slc_errf(err, errlen, "no routing table version %u (the latest is %u)", k, *version);
    if (rc)
        return rc;
    Sluice__RoutesInfo *ri = sluice__routes_info__unpack(NULL, vlen, val);
    if (!ri)
        return SL_ESTORE;
    char *yaml = strdup(ri->yaml ? ri->yaml : "");
    sluice__routes_info__free_unpacked(ri, NULL);
    if (!yaml)
        return SL_ENOMEM;
    rc = sld_routes_apply(self, txn, yaml, strlen(yaml), identity, expect, k, false, version,
                          changed, diff, err, errlen);
    free(yaml);
    return rc;
}

/* Carry the counters of routes that keep their name from OLD to NEW. */
static void s_carry(const s_compiled_t *old, s_compiled_t *c)
{
    size_t n = slt_route_count(old->table), m = slt_route_count(c->table);
    zhashx_t *names = zhashx_new();
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        zhashx_insert(names, slt_route_name(old->table, i), (void *) (uintptr_t) (i + 1));
    for (size_t j = 0; j < m; j++) {
        uintptr_t i = (uintptr_t) zhashx_lookup(names, slt_route_name(c->table, j));
        if (i)
            memcpy(c->counts[j], old->counts[i - 1], sizeof c->counts[j]);
    }
    zhashx_destroy(&names);
}

/* The registry's mappings changed: compile the live table again with
 * fresh copies; keep the old copies when it no longer compiles. */
static void s_recompile(sld_routes_t *self)
{
    char err[4096];
    s_compiled_t *c = NULL;
    if (!self->live)
        return;
    int rc = s_compile(self, self->live->yaml, self->live->len, &c, err, sizeof err);
    if (rc) {
        fprintf(stderr, "sluiced: routes: after a mapping change the live routing table "
                "(version %u) does not compile; it keeps the mappings it had:\n%s\n",
                self->live->version, err);
        return;
    }
    c->version = self->live->version;
    c->applied_us = self->live->applied_us;
    s_carry(self->live, c);
    s_compiled_free(&self->live);
    self->live = c;
    self->gen++;
}

void sld_routes_committed(sld_routes_t *self, bool ok)
{
    if (ok) {
        size_t n = self->live ? slt_route_count(self->live->table) : 0;
        for (size_t i = 0; i < self->npend && i < n; i++)
            for (int k = 0; k < SLD_ROUTE_NCOUNTERS; k++)
                self->live->counts[i][k] += self->pend[i][k];
        self->unrouted += self->pend_unrouted;
        if (self->nstaged || self->next)
            self->gen++;
        for (size_t i = 0; i < self->nstaged; i++) {
            if (slc_grow((void **) &self->metas, &self->capmetas, self->nmetas + 1,
                         sizeof(s_meta_t)) == 0)
                self->metas[self->nmetas++] = self->staged[i];
        }
        if (self->next) {
            if (self->live)
                s_carry(self->live, self->next);
            s_compiled_free(&self->live);
            self->live = self->next;
            self->next = NULL;
        }
    }
    s_compiled_free(&self->next);
    self->nstaged = 0;
    self->pend_unrouted = 0;
    if (self->pend)
        memset(self->pend, 0, self->npend * sizeof *self->pend);
    uint64_t gen = sld_registry_mappings_gen(self->registry);
    if (gen != self->reg_gen) {
        self->reg_gen = gen;
        s_recompile(self);
    }
}

bool sld_routes_uses_mapping(const sld_routes_t *self, const char *name, char *why,
                             size_t whylen)
{
    /* The staged table first: it is the one that goes live at the commit. */
    const s_compiled_t *cs[2] = { self->next, self->live };
    for (int k = 0; k < 2 && name; k++) {
        const slt_route_table_t *t = cs[k] ? cs[k]->table : NULL;
        size_t n = t ? slt_route_count(t) : 0, users = 0, shown = 0, len = 0;
        char list[400] = "";
        for (size_t i = 0; i < n; i++) {
            const char *m = slt_route_mapping(t, i);
            if (!m || strcmp(m, name) != 0)
                continue;
            users++;
            /* The names that fit, with room left for " and N more". */
            if (len + SLT_ROUTE_NAME_MAX + 24 < sizeof list) {
                len += (size_t) snprintf(list + len, sizeof list - len, "%s%s",
                                         shown ? ", " : "", slt_route_name(t, i));
                shown++;
            }
        }
        if (users > shown)
            snprintf(list + len, sizeof list - len, " and %zu more", users - shown);
        if (!users)
            continue;
        slc_errf(why, whylen, "mapping %s is used by route%s %s of the %s routing table "
                 "(version %u)", name, users > 1 ? "s" : "", list,
                 cs[k] == self->live ? "live" : "staged", cs[k]->version);
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------- reads */

static Sluice__RoutesInfo *s_info(const s_meta_t *m)
{
    Sluice__RoutesInfo *ri = calloc(1, sizeof *ri);
    if (!ri)
        return NULL;
    sluice__routes_info__init(ri);
    ri->version = m->version;
    ri->applied_us = m->applied_us;
    ri->identity = strdup(m->identity);
    ri->yaml = strdup("");
    ri->routes = m->nroutes;
    ri->rollback_of = m->rollback_of;
    if (!ri->identity || !ri->yaml) {
        sld_routes_info_free(&ri);
        return NULL;
    }
    return ri;
}

void sld_routes_info_free(Sluice__RoutesInfo **info_p)
{
    Sluice__RoutesInfo *ri = *info_p;
    if (!ri)
        return;
    free(ri->identity);
    free(ri->yaml);
    free(ri);
    *info_p = NULL;
}

int sld_routes_get(sld_routes_t *self, uint32_t v, Sluice__RoutesInfo **out)
{
    const s_meta_t *m = NULL;
    if (v == 0 && self->nmetas)
        m = &self->metas[self->nmetas - 1];
    for (size_t i = 0; !m && i < self->nmetas; i++)
        if (self->metas[i].version == v)
            m = &self->metas[i];
    if (!m)
        return SL_ENOTFOUND;
    sld_txn_t *txn = NULL;
    uint8_t key[4];
    const void *val;
    size_t vlen;
    s_key(key, m->version);
    int rc = sld_store_begin(self->store, false, &txn);
    if (rc == 0)
        rc = sld_table_get(txn, SLD_TABLE_ROUTES, key, 4, &val, &vlen);
    Sluice__RoutesInfo *stored = rc == 0 ? sluice__routes_info__unpack(NULL, vlen, val) : NULL;
    sld_txn_abort(&txn);
    if (rc)
        return rc == SL_ENOTFOUND ? SL_ESTORE : rc;
    if (!stored)
        return SL_ESTORE;
    Sluice__RoutesInfo *ri = s_info(m);
    if (ri) {
        free(ri->yaml);
        ri->yaml = strdup(stored->yaml ? stored->yaml : "");
    }
    sluice__routes_info__free_unpacked(stored, NULL);
    if (!ri || !ri->yaml) {
        sld_routes_info_free(&ri);
        return SL_ENOMEM;
    }
    *out = ri;
    return 0;
}

int sld_routes_list(sld_routes_t *self, Sluice__RoutesInfo ***out, size_t *n,
                    uint32_t *live)
{
    *out = NULL;
    *n = 0;
    *live = sld_routes_version(self);
    if (!self->nmetas)
        return 0;
    Sluice__RoutesInfo **v = calloc(self->nmetas, sizeof *v);
    if (!v)
        return SL_ENOMEM;
    for (size_t i = 0; i < self->nmetas; i++)
        if (!(v[i] = s_info(&self->metas[i]))) {
            sld_routes_list_free(&v, i);
            return SL_ENOMEM;
        }
    *out = v;
    *n = self->nmetas;
    return 0;
}

void sld_routes_list_free(Sluice__RoutesInfo ***out, size_t n)
{
    for (size_t i = 0; *out && i < n; i++)
        sld_routes_info_free(&(*out)[i]);
    free(*out);
    *out = NULL;
}

int sld_routes_stats(const sld_routes_t *self, Sluice__RoutingStats **out)
{
    size_t n = self->live ? slt_route_count(self->live->table) : 0;
    Sluice__RoutingStats *rs = calloc(1, sizeof *rs);
    Sluice__RouteStats *items = n ? calloc(n, sizeof *items) : NULL;
    Sluice__RouteStats **ptrs = n ? calloc(n, sizeof *ptrs) : NULL;
    if (!rs || (n && (!items || !ptrs))) {
        free(rs);
        free(items);
        free(ptrs);
        return SL_ENOMEM;
    }
    sluice__routing_stats__init(rs);
    rs->version = sld_routes_version(self);
    rs->applied_us = self->nmetas ? self->metas[self->nmetas - 1].applied_us : 0;
    rs->unrouted = self->unrouted;
    for (size_t i = 0; i < n; i++) {
        Sluice__RouteStats *r = &items[i];
        sluice__route_stats__init(r);
        r->name = (char *) slt_route_name(self->live->table, i);
        r->matched = self->live->counts[i][SLD_ROUTE_MATCHED];
        r->delivered = self->live->counts[i][SLD_ROUTE_DELIVERED];
        r->dropped = self->live->counts[i][SLD_ROUTE_DROPPED];
        r->dead_lettered = self->live->counts[i][SLD_ROUTE_DLQ];
        r->errors = self->live->counts[i][SLD_ROUTE_ERRORS];
        ptrs[i] = r;
    }
    rs->routes = ptrs;
    rs->n_routes = n;
    *out = rs;
    return 0;
}

void sld_routes_stats_free(Sluice__RoutingStats **out_p)
{
    Sluice__RoutingStats *rs = *out_p;
    if (!rs)
        return;
    free(rs->n_routes ? rs->routes[0] : NULL);
    free(rs->routes);
    free(rs);
    *out_p = NULL;
}
