/*  sld_auth - identities, grants and the ZAP handler.
 *
 *  Identities are few (one per application or operator), so they live in a
 *  plain array of separately allocated structs: a session keeps a pointer
 *  to its identity, and an identity is never freed or moved while the auth
 *  lives (revoked ones stay, for the audit trail and KeyList).
 *
 *  Admin changes follow the store's rule that memory changes only after a
 *  commit: each change works on a staged copy of the identity (taken on the
 *  first change in the transaction, so a second change builds on the
 *  first), writes the encoded copy into the transaction, and the copy
 *  replaces the committed identity in sld_auth_committed. The ZAP handler
 *  and every permission check read committed identities only.
 *
 *  ZAP (RFC 27): libzmq asks, over inproc://zeromq.zap.01 in the broker's
 *  context, whether a CURVE client key may connect. The handler runs in the
 *  broker thread between loop turns; libzmq keeps the handshake waiting
 *  until the answer comes. The identity name goes back as the User-Id, which
 *  libzmq then attaches to every message of that connection.  */
#include "sld_auth.h"
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <zmq.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_ZAP_PARTS 7           /* version, id, domain, address, routing id, mechanism, key */

typedef struct {
    uint32_t perms;
    char pattern[SLC_TOPIC_MAX + 1];
} s_grant_t;

struct sld_ident {
    char name[SLD_IDENT_NAME_MAX + 1];
    uint8_t key[32];
    bool revoked;
    uint64_t created_us;
    uint64_t revoked_us;
    s_grant_t *grants;
    size_t ngrants, capgrants;
    uint32_t sessions;          /* open sessions (the server counts) */
};

typedef struct {
    sld_ident_t *target;        /* committed identity, NULL for a new one */
    sld_ident_t work;           /* the changed copy (owns its grants) */
} s_stage_t;

struct sld_auth {
    sld_store_t *store;
    sld_ident_t **idents;       /* committed, in creation order (owned) */
    size_t nidents, capidents;
    s_stage_t *staged;          /* changes of the open transaction */
    size_t nstaged, capstaged;
    bool plaintext;
    sld_ident_t plain;          /* every plain-text session's identity */
    void *zap;                  /* ZAP REP socket, NULL before bind */
};

/* ----------------------------------------------------------- identities */

static void s_ident_clear(sld_ident_t *ident)
{
    free(ident->grants);
    ident->grants = NULL;
    ident->ngrants = ident->capgrants = 0;
}

/* Copy SRC into DST (which owns nothing yet): grants deep. */
static int s_ident_copy(sld_ident_t *dst, const sld_ident_t *src)
{
    *dst = *src;
    dst->grants = NULL;
    dst->capgrants = 0;
    if (src->ngrants == 0)
        return 0;
    dst->grants = malloc(src->ngrants * sizeof(s_grant_t));
    if (!dst->grants) {
        dst->ngrants = 0;
        return SL_ENOMEM;
    }
    memcpy(dst->grants, src->grants, src->ngrants * sizeof(s_grant_t));
    dst->capgrants = src->ngrants;
    return 0;
}

static int s_grant_add(sld_ident_t *ident, uint32_t perms, const char *pattern)
{
    for (size_t i = 0; i < ident->ngrants; i++)
        if (strcmp(ident->grants[i].pattern, pattern) == 0) {
            ident->grants[i].perms |= perms;
            return 0;
        }
    int rc = slc_grow((void **) &ident->grants, &ident->capgrants, ident->ngrants + 1,
                      sizeof(s_grant_t));
    if (rc)
        return rc;
    s_grant_t *g = &ident->grants[ident->ngrants++];
    g->perms = perms;
    snprintf(g->pattern, sizeof g->pattern, "%s", pattern);
    return 0;
}

static void s_grant_remove(sld_ident_t *ident, uint32_t perms, const char *pattern)
{
    for (size_t i = 0; i < ident->ngrants; i++)
        if (strcmp(ident->grants[i].pattern, pattern) == 0) {
            ident->grants[i].perms &= ~perms;
            if (ident->grants[i].perms == 0) {
                memmove(&ident->grants[i], &ident->grants[i + 1],
                        (ident->ngrants - i - 1) * sizeof(s_grant_t));
                ident->ngrants--;
            }
            return;
        }
}

/* Fill MSG (its grants in G / GP, N entries each) from IDENT: borrowed
 * pointers into IDENT. */
static void s_to_msg(const sld_ident_t *ident, Sluice__Identity *msg, Sluice__Grant *g,
                     Sluice__Grant **gp)
{
    sluice__identity__init(msg);
    msg->name = (char *) ident->name;
    msg->public_key.data = (uint8_t *) ident->key;
    msg->public_key.len = sizeof ident->key;
    msg->revoked = ident->revoked;
    msg->created_us = ident->created_us;
    msg->revoked_us = ident->revoked_us;
    for (size_t i = 0; i < ident->ngrants; i++) {
        sluice__grant__init(&g[i]);
        g[i].perms = ident->grants[i].perms;
        g[i].pattern = (char *) ident->grants[i].pattern;
        gp[i] = &g[i];
    }
    msg->n_grants = ident->ngrants;
    msg->grants = gp;
    msg->sessions = ident->sessions;
}

/* ------------------------------------------------------------- records */

/* Identity NAME's record (RECORD, LEN bytes, what s_write encodes) in the
 * store's "idents" table, replacing any earlier one. Identities are never
 * deleted (a revoked one stays for the audit trail). 0, SL_EINVAL (name
 * empty or longer than SLD_IDENT_NAME_MAX), SL_EFULL, SL_ESTORE. */
static int s_ident_put(sld_txn_t *txn, const char *name, const void *record, size_t len)
{
    size_t n = name ? strnlen(name, SLD_IDENT_NAME_MAX + 1) : 0;
    if (n == 0 || n > SLD_IDENT_NAME_MAX)
        return SL_EINVAL;
    return sld_table_put(txn, SLD_TABLE_IDENTS, name, n, record, len);
}

typedef int (s_ident_fn)(const char *name, const void *record, size_t len, void *arg);

typedef struct {
    s_ident_fn *fn;
    void *arg;
} s_ident_walk_t;

static int s_ident_one(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    const s_ident_walk_t *w = arg;
    char name[SLD_IDENT_NAME_MAX + 1];
    if (klen == 0 || klen > SLD_IDENT_NAME_MAX) {
        fprintf(stderr, "sluiced: store: damaged identity name\n");
        return SL_ESTORE;
    }
    memcpy(name, key, klen);
    name[klen] = 0;
    return w->fn(name, val, vlen, w->arg);
}

/* Call FN for each stored identity in name order (NAME and RECORD
 * borrowed for the call); FN returning non-zero stops the walk and that
 * value is returned. SL_ESTORE for a damaged record (logged). */
static int s_ident_foreach(sld_txn_t *txn, s_ident_fn *fn, void *arg)
{
    s_ident_walk_t w = { fn, arg };
    return sld_table_foreach(txn, SLD_TABLE_IDENTS, NULL, 0, s_ident_one, &w);
}

static int s_write(sld_txn_t *txn, const sld_ident_t *ident)
{
    int rc = SL_ENOMEM;
    Sluice__Identity msg;
    Sluice__Grant *g = calloc(ident->ngrants + 1, sizeof(Sluice__Grant));
    Sluice__Grant **gp = calloc(ident->ngrants + 1, sizeof(Sluice__Grant *));
    uint8_t *buf = NULL;
    if (!g || !gp)
        goto fail;
    s_to_msg(ident, &msg, g, gp);
    msg.sessions = 0;               /* not stored: a live count */
    size_t len = sluice__identity__get_packed_size(&msg);
    buf = malloc(len + 1);
    if (!buf)
        goto fail;
    sluice__identity__pack(&msg, buf);
    rc = s_ident_put(txn, ident->name, buf, len);
fail:
    free(g);
    free(gp);
    free(buf);
    return rc;
}

static int s_from_record(const char *name, const void *record, size_t len,
                         sld_ident_t *ident)
{
    int rc = 0;
    Sluice__Identity *msg = sluice__identity__unpack(NULL, len, record);
    memset(ident, 0, sizeof *ident);
    if (!msg || msg->public_key.len != sizeof ident->key) {
        fprintf(stderr, "sluiced: store: identity \"%s\" does not decode\n", name);
        rc = SL_ESTORE;
        goto fail;
    }
    snprintf(ident->name, sizeof ident->name, "%s", name);
    memcpy(ident->key, msg->public_key.data, sizeof ident->key);
    ident->revoked = msg->revoked;
    ident->created_us = msg->created_us;
    ident->revoked_us = msg->revoked_us;
    for (size_t i = 0; rc == 0 && i < msg->n_grants; i++) {
        const char *p = msg->grants[i]->pattern;
        if (!p || slc_pattern_validate(p) != 0) {
            fprintf(stderr, "sluiced: store: identity \"%s\" has a bad grant pattern\n", name);
            rc = SL_ESTORE;
        }
        else
            rc = s_grant_add(ident, msg->grants[i]->perms & SLD_PERM_ALL, p);
    }
fail:
    if (msg)
        sluice__identity__free_unpacked(msg, NULL);
    if (rc)
        s_ident_clear(ident);
    return rc;
}

static int s_load_one(const char *name, const void *record, size_t len, void *arg)
{
    sld_auth_t *self = arg;
    sld_ident_t *ident = calloc(1, sizeof *ident);
    int rc = ident ? s_from_record(name, record, len, ident) : SL_ENOMEM;
    if (rc == 0)
        rc = slc_grow((void **) &self->idents, &self->capidents, self->nidents + 1,
                      sizeof(sld_ident_t *));
    if (rc) {
        if (ident)
            s_ident_clear(ident);
        free(ident);
        return rc;
    }
    self->idents[self->nidents++] = ident;
    return 0;
}

int sld_auth_new(sld_store_t *store, bool plaintext, sld_auth_t **out)
{
    int rc = SL_ENOMEM;
    sld_txn_t *txn = NULL;
    sld_auth_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->store = store;
    self->plaintext = plaintext;
    if (plaintext) {
        snprintf(self->plain.name, sizeof self->plain.name, "%s", SLD_AUTH_PLAINTEXT);
        rc = s_grant_add(&self->plain, SLD_PERM_ALL, ">");
        if (rc == 0)
            rc = s_grant_add(&self->plain, SLD_PERM_SUBSCRIBE | SLD_PERM_ADMIN, "_audit");
        if (rc == 0)
            rc = s_grant_add(&self->plain, SLD_PERM_SUBSCRIBE | SLD_PERM_ADMIN, "_dlq.>");
        if (rc == 0)
            rc = s_grant_add(&self->plain, SLD_PERM_SUBSCRIBE | SLD_PERM_ADMIN, "_advisory.>");
        if (rc == 0)
            rc = s_grant_add(&self->plain, SLD_PERM_SUBSCRIBE | SLD_PERM_ADMIN, "_alerts");
        if (rc)
            goto fail;
    }
    rc = sld_store_begin(store, false, &txn);
    if (rc == 0)
        rc = s_ident_foreach(txn, s_load_one, self);
    sld_txn_abort(&txn);
    if (rc)
        goto fail;
    *out = self;
    return 0;
fail:
    sld_auth_destroy(&self);
    return rc;
}

void sld_auth_destroy(sld_auth_t **self_p)
{
    sld_auth_t *self = *self_p;
    if (!self)
        return;
    if (self->zap)
        zmq_close(self->zap);
    sld_auth_committed(self, false);
    free(self->staged);
    for (size_t i = 0; i < self->nidents; i++) {
        s_ident_clear(self->idents[i]);
        free(self->idents[i]);
    }
    free(self->idents);
    s_ident_clear(&self->plain);
    free(self);
    *self_p = NULL;
}

sld_ident_t *sld_auth_lookup(sld_auth_t *self, const char *name)
{
    for (size_t i = 0; name && i < self->nidents; i++)
        if (strcmp(self->idents[i]->name, name) == 0)
            return self->idents[i];
    return NULL;
}

sld_ident_t *sld_auth_plaintext(sld_auth_t *self)
{
    return self->plaintext ? &self->plain : NULL;
}

const char *sld_ident_name(const sld_ident_t *ident)
{
    return ident->name;
}

bool sld_ident_revoked(const sld_ident_t *ident)
{
    return ident->revoked;
}

void sld_ident_sessions(sld_ident_t *ident, int delta)
{
    if (delta < 0 && ident->sessions == 0)
        return;
    ident->sessions = (uint32_t) ((int64_t) ident->sessions + delta);
}

bool sld_ident_allows(const sld_ident_t *ident, uint32_t perm, const char *topic)
{
    if (ident->revoked || !topic)
        return false;
    for (size_t i = 0; i < ident->ngrants; i++)
        if ((ident->grants[i].perms & perm) && slc_pattern_match(ident->grants[i].pattern, topic))
            return true;
    return false;
}

bool sld_ident_covers(const sld_ident_t *ident, uint32_t perm, const char *pattern)
{
    if (ident->revoked || !pattern)
        return false;
    for (size_t i = 0; i < ident->ngrants; i++)
        if ((ident->grants[i].perms & perm) && slc_pattern_covers(ident->grants[i].pattern, pattern))
            return true;
    return false;
}

bool sld_ident_may_use_sub(const sld_ident_t *ident, const char *name, const char *pattern,
                           const char *owner)
{
    if (ident->revoked || !name || !pattern)
        return false;
    if (owner && owner[0] && strcmp(owner, ident->name) == 0)
        return true;
    return sld_ident_allows(ident, SLD_PERM_CONSUME, name)
        || sld_ident_covers(ident, SLD_PERM_ADMIN, pattern);
}

/* ------------------------------------------------------------------ ZAP */

int sld_auth_zap_bind(sld_auth_t *self, void *zctx)
{
    assert(!self->plaintext && !self->zap);
    self->zap = zmq_socket(zctx, ZMQ_REP);
    if (!self->zap)
        return SL_ESYS;
    int linger = 0;
    zmq_setsockopt(self->zap, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(self->zap, S_ZAP_ENDPOINT) != 0) {
        fprintf(stderr, "sluiced: cannot start the ZAP handler: %s\n", zmq_strerror(zmq_errno()));
        zmq_close(self->zap);
        self->zap = NULL;
        return SL_ESYS;
    }
    return 0;
}

void *sld_auth_zap_socket(const sld_auth_t *self)
{
    return self->zap;
}

static const sld_ident_t *s_by_key(const sld_auth_t *self, const uint8_t *key)
{
    for (size_t i = 0; i < self->nidents; i++)
        if (sodium_memcmp(self->idents[i]->key, key, 32) == 0)
            return self->idents[i];
    return NULL;
}

static void s_zap_reply(void *zap, zmq_msg_t *id, const char *code, const char *text,
                        const char *user)
{
    zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(zap, zmq_msg_data(id), zmq_msg_size(id), ZMQ_SNDMORE);
    zmq_send(zap, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(zap, "", 0, 0);
}

void sld_auth_zap_handle(sld_auth_t *self, sld_auth_refused_fn *refused, void *arg)
{
    if (!self->zap)
        return;
    while (true) {
        zmq_msg_t part[S_ZAP_PARTS];
        int n = 0;
        bool more = true;
        for (int i = 0; i < S_ZAP_PARTS; i++)
            zmq_msg_init(&part[i]);
        while (more) {
            zmq_msg_t *m = &part[n < S_ZAP_PARTS ? n : S_ZAP_PARTS - 1];
            if (n >= S_ZAP_PARTS) {
                zmq_msg_close(m);
                zmq_msg_init(m);
            }
            if (zmq_msg_recv(m, self->zap, n == 0 ? ZMQ_DONTWAIT : 0) < 0)
                break;
            n++;
            more = zmq_msg_more(m);
        }
        if (n == 0) {
            for (int i = 0; i < S_ZAP_PARTS; i++)
                zmq_msg_close(&part[i]);
            return;
        }
        /* A REP socket must answer whatever came; a request that is not
         * six or seven parts still gets a (refusing) reply. */
        char address[64] = "", z85[41] = "";
        const char *mech = n >= 6 ? zmq_msg_data(&part[5]) : "";
        size_t mlen = n >= 6 ? zmq_msg_size(&part[5]) : 0;
        if (n >= 4)
            snprintf(address, sizeof address, "%.*s", (int) zmq_msg_size(&part[3]),
                     (const char *) zmq_msg_data(&part[3]));
        const sld_ident_t *ident = NULL;
        const char *why = "not a CURVE client";
        if (n == S_ZAP_PARTS && mlen == 5 && memcmp(mech, "CURVE", 5) == 0
            && zmq_msg_size(&part[6]) == 32) {
            const uint8_t *key = zmq_msg_data(&part[6]);
            zmq_z85_encode(z85, key, 32);
            ident = s_by_key(self, key);
            why = !ident ? "key not registered" : ident->revoked ? "key revoked" : NULL;
        }
        if (!why)
            s_zap_reply(self->zap, &part[1], "200", "OK", ident->name);
        else {
            s_zap_reply(self->zap, &part[1], "400", why, "");
            if (refused)
                refused(arg, ident ? ident->name : NULL, z85, address, why);
        }
        for (int i = 0; i < S_ZAP_PARTS; i++)
            zmq_msg_close(&part[i]);
    }
}

/* --------------------------------------------------------------- staging */

/* The staged copy of NAME, staging it now if needed. A name nobody has is
 * staged fresh when CREATE, else *work is NULL. */
static int s_stage(sld_auth_t *self, const char *name, bool create, sld_ident_t **work)
{
    *work = NULL;
    for (size_t i = 0; i < self->nstaged; i++)
        if (strcmp(self->staged[i].work.name, name) == 0) {
            *work = &self->staged[i].work;
            return 0;
        }
    sld_ident_t *target = sld_auth_lookup(self, name);
    if (!target && !create)
        return 0;
    int rc = slc_grow((void **) &self->staged, &self->capstaged, self->nstaged + 1,
                      sizeof(s_stage_t));
    if (rc)
        return rc;
    s_stage_t *st = &self->staged[self->nstaged];
    st->target = target;
    if (target)
        rc = s_ident_copy(&st->work, target);
    else {
        memset(&st->work, 0, sizeof st->work);
        snprintf(st->work.name, sizeof st->work.name, "%s", name);
        st->work.created_us = slc_now_us();
    }
    if (rc)
        return rc;
    self->nstaged++;
    *work = &st->work;
    return 0;
}

static int s_check_name(const char *name, char *err, size_t errlen)
{
    size_t n = name ? strlen(name) : 0;
    bool ok = n > 0 && n <= SLD_IDENT_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
          || c == '-' || c == '_' || c == '.' || c == '@';
    }
    if (!ok) {
        slc_errf(err, errlen, "identity names are 1-64 characters of [A-Za-z0-9._@-]");
        return SL_EINVAL;
    }
    if (strcmp(name, SLD_AUTH_PLAINTEXT) == 0) {
        slc_errf(err, errlen, "\"plaintext\" is reserved for plain-text sessions");
        return SL_EINVAL;
    }
    return 0;
}

/* Is KEY held by an identity other than NAME (committed or staged)? */
static bool s_key_taken(const sld_auth_t *self, const char *name, const uint8_t key[32])
{
    for (size_t i = 0; i < self->nstaged; i++)
        if (strcmp(self->staged[i].work.name, name) != 0
            && sodium_memcmp(self->staged[i].work.key, key, 32) == 0)
            return true;
    const sld_ident_t *other = s_by_key(self, key);
    return other && strcmp(other->name, name) != 0;
}

int sld_auth_key_add(sld_auth_t *self, sld_txn_t *txn, const char *name,
                     const uint8_t key[32], char *err, size_t errlen)
{
    sld_ident_t *work;
    int rc = s_check_name(name, err, errlen);
    if (rc)
        return rc;
    if (s_key_taken(self, name, key)) {
        slc_errf(err, errlen, "this public key is already registered under another name");
        return SL_EEXIST;
    }
    rc = s_stage(self, name, true, &work);
    if (rc)
        return rc;
    bool fresh = work->created_us && sodium_is_zero(work->key, sizeof work->key);
    if (!fresh) {
        if (work->revoked) {
            slc_errf(err, errlen, "this identity was revoked; register the key under a new name");
            return SL_EEXIST;
        }
        if (sodium_memcmp(work->key, key, 32) != 0) {
            slc_errf(err, errlen,
                     "this name is registered with another key; revoke it or choose a new name");
            return SL_EEXIST;
        }
        return 0;
    }
    memcpy(work->key, key, 32);
    return s_write(txn, work);
}

int sld_auth_key_revoke(sld_auth_t *self, sld_txn_t *txn, const char *name,
                        char *err, size_t errlen)
{
    sld_ident_t *work;
    int rc = s_stage(self, name ? name : "", false, &work);
    if (rc)
        return rc;
    if (!work || sodium_is_zero(work->key, sizeof work->key)) {
        slc_errf(err, errlen, "no identity by that name");
        return SL_ENOTFOUND;
    }
    if (work->revoked)
        return 0;
    work->revoked = true;
    work->revoked_us = slc_now_us();
    return s_write(txn, work);
}

int sld_auth_grant(sld_auth_t *self, sld_txn_t *txn, const char *name,
                   Sluice__Grant *const *grants, size_t n, bool revoke,
                   char *err, size_t errlen)
{
    sld_ident_t *work;
    if (n == 0) {
        slc_errf(err, errlen,
                 "no permission given: use --publish, --subscribe, --admin or --consume");
        return SL_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!grants[i]->pattern || slc_pattern_validate(grants[i]->pattern) != 0) {
            slc_errf(err, errlen,
                     "invalid pattern: dot-separated words, '*' one word, '>' the rest");
            return SL_EINVAL;
        }
        if ((grants[i]->perms & SLD_PERM_ALL) == 0 || (grants[i]->perms & ~SLD_PERM_ALL)) {
            slc_errf(err, errlen, "permissions are publish, subscribe, admin and consume");
            return SL_EINVAL;
        }
    }
    int rc = s_stage(self, name ? name : "", false, &work);
    if (rc)
        return rc;
    if (!work || sodium_is_zero(work->key, sizeof work->key)) {
        slc_errf(err, errlen, "no identity by that name: add its key first (sluice keys add)");
        return SL_ENOTFOUND;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (revoke)
            s_grant_remove(work, grants[i]->perms, grants[i]->pattern);
        else
            rc = s_grant_add(work, grants[i]->perms, grants[i]->pattern);
    }
    return rc ? rc : s_write(txn, work);
}

int sld_auth_ensure_admin(sld_auth_t *self, sld_txn_t *txn, const uint8_t key[32],
                          bool *changed)
{
    static const struct {
        uint32_t perms;
        const char *pattern;
    } want[] = {
        /* Not consume: admin on '>' may use every subscription already,
         * and stores made before consume existed keep the same grants. */
        { SLD_PERM_TOPIC, ">" },
        { SLD_PERM_SUBSCRIBE | SLD_PERM_ADMIN, "_audit" },
        { SLD_PERM_SUBSCRIBE | SLD_PERM_ADMIN, "_dlq.>" },
        { SLD_PERM_SUBSCRIBE | SLD_PERM_ADMIN, "_advisory.>" },
        { SLD_PERM_SUBSCRIBE | SLD_PERM_ADMIN, "_alerts" },
    };
    sld_ident_t *work;
    *changed = false;
    int rc = s_stage(self, SLD_AUTH_ADMIN, true, &work);
    if (rc)
        return rc;
    if (sodium_memcmp(work->key, key, 32) != 0 || work->revoked) {
        memcpy(work->key, key, 32);
        work->revoked = false;
        work->revoked_us = 0;
        *changed = true;
    }
    for (size_t i = 0; rc == 0 && i < sizeof want / sizeof want[0]; i++)
        for (uint32_t bit = 1; rc == 0 && bit <= SLD_PERM_ADMIN; bit <<= 1)
            if ((want[i].perms & bit) && !sld_ident_covers(work, bit, want[i].pattern)) {
                rc = s_grant_add(work, want[i].perms, want[i].pattern);
                *changed = true;
            }
    if (rc == 0 && *changed)
        rc = s_write(txn, work);
    return rc;
}

bool sld_auth_committed(sld_auth_t *self, bool ok)
{
    bool revoked = false;
    for (size_t i = 0; i < self->nstaged; i++) {
        s_stage_t *st = &self->staged[i];
        if (!ok) {
            s_ident_clear(&st->work);
            continue;
        }
        if (st->work.revoked && (!st->target || !st->target->revoked))
            revoked = true;
        if (st->target) {
            uint32_t sessions = st->target->sessions;
            s_ident_clear(st->target);
            *st->target = st->work;
            st->target->sessions = sessions;
            continue;
        }
        sld_ident_t *ident = malloc(sizeof *ident);
        if (!ident || slc_grow((void **) &self->idents, &self->capidents, self->nidents + 1,
                               sizeof(sld_ident_t *)) != 0) {
            /* Committed but not in memory: it takes effect at the next
             * start. Rare enough (out of memory) to only log. */
            fprintf(stderr, "sluiced: out of memory adding identity %s\n", st->work.name);
            s_ident_clear(&st->work);
            free(ident);
            continue;
        }
        *ident = st->work;
        ident->sessions = 0;
        self->idents[self->nidents++] = ident;
    }
    self->nstaged = 0;
    return revoked;
}

int sld_auth_list(sld_auth_t *self, Sluice__Identity ***out, size_t *n)
{
    *n = 0;
    *out = calloc(self->nidents + 1, sizeof(Sluice__Identity *));
    if (!*out)
        return SL_ENOMEM;
    for (size_t i = 0; i < self->nidents; i++) {
        const sld_ident_t *ident = self->idents[i];
        /* One block: the message, its grants and their pointers. */
        size_t ng = ident->ngrants;
        char *block = calloc(1, sizeof(Sluice__Identity) + ng * sizeof(Sluice__Grant)
                                + (ng + 1) * sizeof(Sluice__Grant *));
        if (!block) {
            sld_auth_list_free(out, *n);
            return SL_ENOMEM;
        }
        Sluice__Identity *msg = (Sluice__Identity *) block;
        Sluice__Grant *g = (Sluice__Grant *) (block + sizeof(Sluice__Identity));
        Sluice__Grant **gp = (Sluice__Grant **) (block + sizeof(Sluice__Identity)
                                                 + ng * sizeof(Sluice__Grant));
        s_to_msg(ident, msg, g, gp);
        (*out)[(*n)++] = msg;
    }
    return 0;
}

void sld_auth_list_free(Sluice__Identity ***out, size_t n)
{
    if (!out || !*out)
        return;
    for (size_t i = 0; i < n; i++)
        free((*out)[i]);
    free(*out);
    *out = NULL;
}
