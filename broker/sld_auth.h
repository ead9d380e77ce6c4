/*  sld_auth - who may connect and what each identity may do: identities
 *  (a name bound to a CurveZMQ public key) with grants on topic patterns
 *  (and, for consume, on patterns of subscription names),
 *  kept in the store's `idents` table and in memory; the ZAP handler that
 *  admits connections by key. Owns the identities and the ZAP socket.
 *  Broker thread only. It does not know sessions or the wire protocol: the
 *  server asks it and acts on the answers (docs/security.md).  */
#ifndef SLD_AUTH_H
#define SLD_AUTH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "slc_codec.h"
#include "sld_store.h"

typedef struct sld_auth sld_auth_t;
typedef struct sld_ident sld_ident_t;

/* Permission bits (the wire's Permission enum). PUBLISH, SUBSCRIBE and
 * ADMIN grants match topics; a CONSUME grant matches durable subscription
 * NAMES (docs/security.md, "Subscription names"). */
#define SLD_PERM_PUBLISH 1u
#define SLD_PERM_SUBSCRIBE 2u
#define SLD_PERM_ADMIN 4u
#define SLD_PERM_CONSUME 8u
#define SLD_PERM_TOPIC 7u       /* the bits whose patterns match topics */
#define SLD_PERM_ALL 15u

/* Name of the identity the broker creates for its local operators (its
 * key is DATA/admin.cert) and of the one every plain-text client gets. */
#define SLD_AUTH_ADMIN "admin"
#define SLD_AUTH_PLAINTEXT "plaintext"

/* Load the identities of STORE (borrowed, must outlive the result). With
 * PLAINTEXT every session is the built-in full-rights identity
 * SLD_AUTH_PLAINTEXT and no ZAP handler runs. 0 and *out (caller owns),
 * SL_ESTORE (a record does not decode), SL_ENOMEM. */
int sld_auth_new(sld_store_t *store, bool plaintext, sld_auth_t **out);

/* Close the ZAP socket, wipe and free. NULL-safe; nulls *self_p. */
void sld_auth_destroy(sld_auth_t **self_p);

/* ------------------------------------------------------------------ ZAP */

/* Bind the ZAP handler in ZMQ context ZCTX (before any CURVE server socket
 * of that context binds: without a handler libzmq would admit every key).
 * 0 or SL_ESYS. */
int sld_auth_zap_bind(sld_auth_t *self, void *zctx);

/* The ZAP socket to poll for ZMQ_POLLIN (borrowed), NULL before bind. */
void *sld_auth_zap_socket(const sld_auth_t *self);

/* Called for each refused connection: the identity name the key belongs
 * to (NULL when unknown), the key in Z85, the peer address and why. */
typedef void (sld_auth_refused_fn)(void *arg, const char *name, const char *key_z85,
                                   const char *address, const char *why);

/* Answer every waiting ZAP request: a registered, unrevoked key is admitted
 * with its identity name as ZMQ User-Id; others get status 400 and REFUSED
 * is called. */
void sld_auth_zap_handle(sld_auth_t *self, sld_auth_refused_fn *refused, void *arg);

/* ------------------------------------------------------------ identities */

/* The identity NAME (committed state), or NULL. Borrowed: identities are
 * never freed while the auth lives, so the pointer stays valid. */
sld_ident_t *sld_auth_lookup(sld_auth_t *self, const char *name);

/* The identity plain-text sessions get (NULL unless PLAINTEXT). */
sld_ident_t *sld_auth_plaintext(sld_auth_t *self);

const char *sld_ident_name(const sld_ident_t *ident);
bool sld_ident_revoked(const sld_ident_t *ident);

/* Count an open session of IDENT (DELTA +1 / -1), for KeyList. */
void sld_ident_sessions(sld_ident_t *ident, int delta);

/* May IDENT use PERM (one SLD_PERM_* bit) on TOPIC (a topic name)? */
bool sld_ident_allows(const sld_ident_t *ident, uint32_t perm, const char *topic);

/* Does a grant of IDENT with PERM cover every topic PATTERN can match? */
bool sld_ident_covers(const sld_ident_t *ident, uint32_t perm, const char *pattern);

/* May IDENT use durable subscription NAME, of topic pattern PATTERN, whose
 * owner is OWNER ("" when it has none)? Using is attaching, acking,
 * nacking, crediting, resetting and removing. True for its owner, for a
 * consume grant matching NAME and for an admin grant covering PATTERN (so
 * admin on '>' may use every subscription to client topics). A subscription
 * without owner is not IDENT's by this rule: the server decides whether
 * IDENT may claim it. Attaching needs the subscribe grant on PATTERN too,
 * which this does not check. */
bool sld_ident_may_use_sub(const sld_ident_t *ident, const char *name, const char *pattern,
                           const char *owner);

/* ---------------------------------------------------------------- admin */
/* Changes are written in TXN and staged: lookups and the ZAP handler see
 * them only after sld_auth_committed(self, true). A second change of the
 * same identity in one transaction sees the first. Each returns 0, or an
 * error with its reason in ERR for the caller to send: SL_EINVAL,
 * SL_EEXIST, SL_ENOTFOUND; or SL_EFULL / SL_ESTORE / SL_ENOMEM, which doom
 * the transaction. */

/* Register NAME with KEY and no grants. Adding the same name with the same
 * key again is 0. */
int sld_auth_key_add(sld_auth_t *self, sld_txn_t *txn, const char *name,
                     const uint8_t key[32], char *err, size_t errlen);

/* Revoke NAME: refused from the next connection on. */
int sld_auth_key_revoke(sld_auth_t *self, sld_txn_t *txn, const char *name,
                        char *err, size_t errlen);

/* Add (REVOKE false) or remove PERMS on each pattern of GRANTS. */
int sld_auth_grant(sld_auth_t *self, sld_txn_t *txn, const char *name,
                   Sluice__Grant *const *grants, size_t n, bool revoke,
                   char *err, size_t errlen);

/* Make identity SLD_AUTH_ADMIN hold KEY with every permission on '>' and
 * the broker's own topics, creating it or replacing its key (and lifting a
 * revocation) as needed. *changed says whether anything was written. */
int sld_auth_ensure_admin(sld_auth_t *self, sld_txn_t *txn, const uint8_t key[32],
                          bool *changed);

/* After the transaction: OK = committed (staged changes take effect),
 * else they are dropped. Returns true when a committed change revoked an
 * identity (the server then closes its sessions). */
bool sld_auth_committed(sld_auth_t *self, bool ok);

/* Every identity (committed), for KeyListReply: *out holds N pointers
 * (caller frees with sld_auth_list_free). 0 or SL_ENOMEM. */
int sld_auth_list(sld_auth_t *self, Sluice__Identity ***out, size_t *n);
void sld_auth_list_free(Sluice__Identity ***out, size_t n);

#endif
