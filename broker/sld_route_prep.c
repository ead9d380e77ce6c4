/*  sld_route_prep - see sld_route_prep.h. Broker thread, but for s_job and
 *  what it calls, which run on the workers and on the broker thread at
 *  once, each on its own contiguous share of the turn's envelopes.
 *
 *  A turn: begin (the live table, its version and generation, the
 *  registry's generation; the `to` schemas of the table's mappings
 *  resolved), add (every publish envelope in apply order; its topic's
 *  binding resolved here, on the broker thread), run (the shares: the
 *  workers start, the broker thread does its own, then waits for them),
 *  take (in the transaction, by envelope: a cursor, since the frames are
 *  applied in the order they were added), end (free).
 *
 *  What the shares may touch, audited function by function:
 *  - slt_doc_decode, slt_doc_print (transform/slt_doc.c, slt_doc_json.c):
 *    no static state (localeconv() is only read); cJSON's allocator hooks
 *    are read, never set here (slt_arena installs them once per process,
 *    with pthread_once: create arenas before the first run, and a worker
 *    that is to allocate in one must enter an arena of its own).
 *    cJSON_ParseWithLengthOpts (Debian's cJSON 1.7.15; now only slt_doc's
 *    slow path) writes its global `global_error` on every call
 *    without a lock: a race on a value nobody in sluice reads
 *    (cJSON_GetErrorPtr is never called; slt_doc takes the position from
 *    return_parse_end, a local): harmless in practice, and unseen by
 *    ThreadSanitizer (Debian's libcjson is not instrumented).
 *  - slt_schema_validate and slt_schema__pattern_match: the compiled
 *    schema is read only; PCRE2's compiled (JIT) code and match context
 *    are read only by pcre2_match; the match data is each thread's own
 *    (a __thread pointer, freed by a pthread key at thread exit): it must
 *    stay per thread, not per schema, for this file to stay safe.
 *  - slt_route_eval_given (index lookup, predicates, mappings: slt_map_*):
 *    the table is immutable (slt_route.h); the only static in the
 *    evaluation is slt_map_expr.c's `null_doc`, never written; `now()` in
 *    a mapping reads the clock, so a mapping that uses it gives the time
 *    of the prep, a few microseconds before the transaction.
 *  - sld_registry_check_bound / sld_registry_validate_bound: pure. The
 *    registry's lookups are NOT safe here (CZMQ's zhashx_lookup writes the
 *    hash's cached_index, which two lookups at once would read across,
 *    and rehashes the whole table when a chain grows long): every lookup
 *    is done on the broker thread, before the run
 *    (bindings in sld_route_prep_add, `to` schemas in begin).
 *  - $meta: the evaluation asks for it through s_no_meta, which refuses:
 *    such a message (and one with a FAILED step, whose text names the
 *    offset) is routed inline in the transaction.
 *  Counters (sld_routes_count, metrics), the store, the trace, sessions:
 *  only the transaction, on the broker thread, touches them.  */
#include "sld_route_prep.h"
#include <stdlib.h>
#include <string.h>
#include "slc.h"
#include "sld_helper.h"
#include "slt_doc.h"

/* One envelope of the turn. */
typedef struct {
    const Sluice__Envelope *env;
    sld_registry_bound_t bound; /* its topic's schema (resolved in add) */
    bool todo;                  /* to prepare */
    bool ready;                 /* P holds a result */
    sld_route_prepared_t p;
} s_slot_t;

/* A mapping's `to` schema, resolved on the broker thread. */
typedef struct {
    const char *to;             /* borrowed from the live table's mapping */
    int rc;                     /* 0, or SL_ENOTFOUND with WHY */
    sld_registry_bound_t b;
    char why[SLD_ROUTE_PREP_OUT_WHY_MAX];
} s_ref_t;

typedef struct {
    sld_route_prep_t *prep;
    sld_helper_t *helper;
    size_t from, to;            /* its share: positions in the todo array */
} s_worker_t;

struct sld_route_prep {
    s_worker_t *workers;
    unsigned nworkers;
    s_slot_t *slots;            /* this turn's envelopes, in apply order */
    size_t nslots, capslots;
    size_t *todo;               /* indexes of the slots to prepare */
    size_t ntodo, captodo;
    size_t cursor;              /* where take looks first */
    bool begun;                 /* between begin and end */
    bool active;                /* run prepared something */
    bool any_bound;             /* the registry binds some topic */
    const slt_route_table_t *table;     /* live at begin, or NULL */
    uint32_t version;
    uint64_t routes_gen, reg_gen;
    s_ref_t *refs;              /* `to` schemas of TABLE's mappings */
    size_t nrefs, caprefs;
    const slt_route_table_t *refs_table;    /* what REFS were resolved for */
    uint64_t refs_routes_gen, refs_reg_gen;
    bool refs_ok;
    /* for s_resolve's one-entry memory: a batch mostly repeats one topic */
    const char *last_topic;
    sld_registry_bound_t last_bound;
    sld_registry_t *registry;
};

/* ------------------------------------------------------------ the work */

/* slt_route_given_t's meta_fn: no $meta before the transaction. */
static const cJSON *s_no_meta(void *arg)
{
    *(bool *) arg = true;
    return NULL;
}

static const s_ref_t *s_ref(const sld_route_prep_t *self, const char *to)
{
    for (size_t i = 0; i < self->nrefs; i++)
        if (strcmp(self->refs[i].to, to) == 0)
            return &self->refs[i];
    return NULL;
}

/* Free what P holds for this turn; keep its arrays for the next. */
static void s_clear(sld_route_prepared_t *p)
{
    free(p->why);
    p->why = NULL;
    cJSON_Delete(p->doc);
    p->doc = NULL;
    for (size_t i = 0; i < p->res.nsteps; i++) {
        cJSON_Delete(p->res.steps[i].output);
        p->res.steps[i].output = NULL;
        free(p->res.steps[i].reason);
        p->res.steps[i].reason = NULL;
        if (i < p->capouts) {
            free(p->outs[i].why);
            free(p->outs[i].json);
            memset(&p->outs[i], 0, sizeof p->outs[i]);
        }
    }
    p->res.nsteps = 0;
    p->res.decoded = false;
    p->check = 0;
    p->dlq = false;
    p->routed = false;
}

/* Each mapped output of P's steps: its `to` verdict and its bytes. 0, or
 * nonzero when the evaluation cannot be used (routed inline). */
static int s_outputs(const sld_route_prep_t *self, sld_route_prepared_t *p)
{
    size_t cap = p->capouts;
    if (slc_grow((void **) &p->outs, &p->capouts, p->res.nsteps, sizeof *p->outs) != 0)
        return SL_ENOMEM;
    /* Kept zeroed where unused, so that s_clear frees only what is set. */
    if (p->capouts > cap)
        memset(p->outs + cap, 0, (p->capouts - cap) * sizeof *p->outs);
    for (size_t i = 0; i < p->res.nsteps; i++) {
        slt_route_step_t *st = &p->res.steps[i];
        if (st->outcome == SLT_ROUTE_FAILED)
            return SL_EINVAL;           /* its text names the offset */
        if (st->outcome != SLT_ROUTE_FIRED || !st->output)
            continue;
        sld_route_prep_out_t *o = &p->outs[i];
        char why[SLD_ROUTE_PREP_OUT_WHY_MAX];
        const char *to = st->map ? slt_map_to(st->map) : NULL;
        o->mapped = true;
        if (to) {
            const s_ref_t *r = s_ref(self, to);
            if (!r)
                return SL_ENOTFOUND;    /* not resolved ahead: inline */
            o->rc = r->rc ? r->rc : sld_registry_validate_bound(&r->b, st->output, why,
                                                                 sizeof why);
            if (o->rc) {
                o->why = strdup(r->rc ? r->why : why);
                if (!o->why)
                    return SL_ENOMEM;
                continue;
            }
        }
        int rc = slt_doc_print(st->output, &o->json, &o->len);
        if (rc)
            return rc;
    }
    return 0;
}

/* Prepare slot S. Any thread (see the file's header). */
static void s_one(const sld_route_prep_t *self, s_slot_t *s)
{
    const Sluice__Envelope *e = s->env;
    sld_route_prepared_t *p = &s->p;
    const char *ct = e->content_type && *e->content_type ? e->content_type : NULL;
    char why[SLD_ROUTE_PREP_WHY_MAX];
    cJSON *doc = NULL;
    int rc = sld_registry_check_bound(&s->bound, e->content_type, e->payload.data,
                                      e->payload.len, self->table ? &doc : NULL,
                                      why, sizeof why);
    if (rc == SL_EINVAL) {
        p->check = rc;
        p->dlq = s->bound.dlq;
        p->why = strdup(why);
        s->ready = p->why != NULL;
        return;
    }
    if (rc)
        return;                         /* out of memory: inline */
    p->doc = doc;
    s->ready = true;
    if (!self->table)
        return;
    bool meta = false;
    slt_route_msg_t msg = { e->topic, e->payload.data, e->payload.len, ct, NULL };
    slt_route_given_t given = { doc, s_no_meta, &meta };
    rc = slt_route_eval_given(self->table, &msg, &given, &p->res);
    if (rc == 0 && !meta)
        rc = s_outputs(self, p);
    /* The outputs are printed: their trees go now, on this thread. */
    for (size_t i = 0; i < p->res.nsteps; i++) {
        cJSON_Delete(p->res.steps[i].output);
        p->res.steps[i].output = NULL;
    }
    if (rc || meta) {
        /* Inline in the transaction: the check stands, the document with it. */
        for (size_t i = 0; i < p->res.nsteps && i < p->capouts; i++) {
            free(p->outs[i].why);
            free(p->outs[i].json);
            memset(&p->outs[i], 0, sizeof p->outs[i]);
        }
        return;
    }
    p->routed = true;
    cJSON_Delete(p->doc);
    p->doc = NULL;
}

static void s_share(sld_route_prep_t *self, size_t from, size_t to)
{
    for (size_t k = from; k < to; k++)
        s_one(self, &self->slots[self->todo[k]]);
}

static void s_job(void *arg)
{
    s_worker_t *w = arg;
    s_share(w->prep, w->from, w->to);
}

/* ------------------------------------------------------------ the turn */

int sld_route_prep_new(unsigned workers, sld_route_prep_t **out)
{
    *out = NULL;
    if (workers < 1 || workers > SLD_ROUTE_PREP_THREADS_MAX)
        return SL_EINVAL;
    sld_route_prep_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    int rc = 0;
    self->workers = calloc(workers, sizeof *self->workers);
    if (!self->workers)
        rc = SL_ENOMEM;
    for (unsigned i = 0; rc == 0 && i < workers; i++) {
        self->workers[i].prep = self;
        rc = sld_helper_new(s_job, &self->workers[i], &self->workers[i].helper);
        if (rc == 0)
            self->nworkers++;
    }
    if (rc) {
        sld_route_prep_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

void sld_route_prep_destroy(sld_route_prep_t **self_p)
{
    sld_route_prep_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (unsigned i = 0; i < self->nworkers; i++)
        sld_helper_destroy(&self->workers[i].helper);
    sld_route_prep_end(self);
    for (size_t i = 0; i < self->capslots; i++) {
        slt_route_result_free(&self->slots[i].p.res);
        free(self->slots[i].p.outs);
    }
    free(self->slots);
    free(self->todo);
    free(self->refs);
    free(self->workers);
    free(self);
    *self_p = NULL;
}

/* The `to` schema of every mapping TABLE's routes name, unless already
 * resolved for this table and registry. */
static int s_refs(sld_route_prep_t *self, sld_registry_t *registry, sld_routes_t *routes)
{
    if (self->refs_ok && self->refs_table == self->table
        && self->refs_routes_gen == self->routes_gen && self->refs_reg_gen == self->reg_gen)
        return 0;
    self->refs_ok = false;
    self->nrefs = 0;
    size_t n = slt_route_count(self->table);
    for (size_t i = 0; i < n; i++) {
        const slt_map_t *map = sld_routes_mapping(routes, slt_route_mapping(self->table, i));
        const char *to = map ? slt_map_to(map) : NULL;
        if (!to || s_ref(self, to))
            continue;
        if (slc_grow((void **) &self->refs, &self->caprefs, self->nrefs + 1,
                     sizeof *self->refs) != 0)
            return SL_ENOMEM;
        s_ref_t *r = &self->refs[self->nrefs++];
        r->to = to;
        r->why[0] = '\0';
        r->rc = sld_registry_resolve_ref(registry, to, &r->b, r->why, sizeof r->why);
    }
    self->refs_table = self->table;
    self->refs_routes_gen = self->routes_gen;
    self->refs_reg_gen = self->reg_gen;
    self->refs_ok = true;
    return 0;
}

int sld_route_prep_begin(sld_route_prep_t *self, sld_registry_t *registry,
                         sld_routes_t *routes)
{
    sld_route_prep_end(self);
    self->registry = registry;
    self->table = sld_routes_live(routes);
    self->version = sld_routes_version(routes);
    self->routes_gen = sld_routes_gen(routes);
    self->reg_gen = sld_registry_gen(registry);
    self->any_bound = sld_registry_any(registry);
    self->last_topic = NULL;
    if (self->table && s_refs(self, registry, routes) != 0)
        return SL_ENOMEM;
    self->begun = self->table || self->any_bound;
    return 0;
}

void sld_route_prep_add(sld_route_prep_t *self, const Sluice__Envelope *e, uint32_t max_bytes)
{
    if (!self->begun)
        return;
    size_t cap = self->capslots;
    if (slc_grow((void **) &self->slots, &self->capslots, self->nslots + 1,
                 sizeof *self->slots) != 0) {
        sld_route_prep_end(self);       /* nothing prepared this turn */
        return;
    }
    /* New room starts zeroed: a slot's arrays are kept across turns. */
    memset(self->slots + cap, 0, (self->capslots - cap) * sizeof *self->slots);
    s_slot_t *s = &self->slots[self->nslots++];
    s->env = e;
    s->todo = s->ready = false;
    memset(&s->bound, 0, sizeof s->bound);
    if (!e->topic || e->payload.len > max_bytes)
        return;
    if (self->any_bound) {
        if (!(self->last_topic && strcmp(self->last_topic, e->topic) == 0)) {
            sld_registry_resolve(self->registry, e->topic, &self->last_bound);
            self->last_topic = e->topic;
        }
        s->bound = self->last_bound;
    }
    s->todo = self->table || s->bound.schema;
}

void sld_route_prep_run(sld_route_prep_t *self)
{
    if (!self->begun)
        return;
    self->ntodo = 0;
    for (size_t i = 0; i < self->nslots; i++)
        if (self->slots[i].todo) {
            if (slc_grow((void **) &self->todo, &self->captodo, self->ntodo + 1,
                         sizeof *self->todo) != 0)
                return;
            self->todo[self->ntodo++] = i;
        }
    if (self->ntodo < SLD_ROUTE_PREP_MIN)
        return;
    /* Equal shares; the broker thread takes the last (and waits). */
    size_t parts = self->nworkers + 1, at = 0;
    for (unsigned i = 0; i < self->nworkers; i++) {
        s_worker_t *w = &self->workers[i];
        w->from = at;
        w->to = at + self->ntodo / parts + (i < self->ntodo % parts ? 1 : 0);
        at = w->to;
        sld_helper_start(w->helper);
    }
    s_share(self, at, self->ntodo);
    for (unsigned i = 0; i < self->nworkers; i++)
        sld_helper_wait(self->workers[i].helper);
    self->active = true;
    self->cursor = 0;
}

const sld_route_prepared_t *sld_route_prep_take(sld_route_prep_t *self,
                                                const sld_registry_t *registry,
                                                const sld_routes_t *routes,
                                                const Sluice__Envelope *e, bool *routed)
{
    *routed = false;
    if (!self->active || self->reg_gen != sld_registry_gen(registry))
        return NULL;
    /* Frames are applied in the order they were added: the next slot, or
     * one a little further (messages refused before their check). */
    const s_slot_t *s = NULL;
    for (size_t k = 0; k < self->nslots && !s; k++) {
        size_t i = (self->cursor + k) % self->nslots;
        if (self->slots[i].env == e) {
            s = &self->slots[i];
            self->cursor = i + 1;
        }
    }
    if (!s || !s->ready)
        return NULL;
    *routed = s->p.routed && self->table && self->table == sld_routes_live(routes)
              && self->version == sld_routes_version(routes)
              && self->routes_gen == sld_routes_gen(routes);
    return &s->p;
}

bool sld_route_prep_active(const sld_route_prep_t *self)
{
    return self->active;
}

void sld_route_prep_end(sld_route_prep_t *self)
{
    for (size_t i = 0; i < self->nslots; i++)
        if (self->slots[i].todo)
            s_clear(&self->slots[i].p);
    self->nslots = 0;
    self->ntodo = 0;
    self->begun = self->active = false;
    self->cursor = 0;
    self->last_topic = NULL;
}
