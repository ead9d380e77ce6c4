/*  sld_audit - the audit trail: every admin change, refused connection and
 *  denial becomes a JSON record appended to the `_audit` topic (in the
 *  write transaction of the loop turn) and, optionally, to a JSON-lines
 *  file after the commit. Owns the queue of records not yet committed, the
 *  mirror file and the tally of refused handshakes. Broker thread only. It
 *  does not decide what is denied, nor how long `_audit` keeps records (the
 *  topic's retention, set by the server from security/audit_retention).  */
#ifndef SLD_AUDIT_H
#define SLD_AUDIT_H
#include <stdbool.h>
#include <stdint.h>
#include "sld_store.h"

typedef struct sld_audit sld_audit_t;

#define SLD_AUDIT_TOPIC "_audit"

/* Records waiting beyond this many are counted, not kept; one record then
 * says how many were dropped (a client hammering denied commands must not
 * grow the broker's memory). */
#define SLD_AUDIT_QUEUE_MAX 10000

/* Refused handshakes are tallied per (public key, peer address). At most
 * this many pairs are tracked; refusals of further pairs are summed up
 * together in one tally for all of them. */
#define SLD_AUDIT_REFUSAL_PAIRS 256

/* At most this many keys of one address are tracked apart; the address's
 * further keys share one tally ("any key" from that address). */
#define SLD_AUDIT_REFUSAL_KEYS 8

/* MIRROR: path of a JSON-lines file to append each committed record to
 * (created mode 0600), or NULL. REFUSAL_INTERVAL_MS (> 0): how often the
 * tallies of refused handshakes become records (sld_audit_tick). 0 and
 * *out (caller owns), SL_ESYS (the file cannot be opened: reason on
 * stderr), SL_ENOMEM. */
int sld_audit_new(const char *mirror, uint32_t refusal_interval_ms, sld_audit_t **out);

/* Close the mirror. NULL-safe; nulls *self_p. */
void sld_audit_destroy(sld_audit_t **self_p);

/* Queue a record. IDENTITY (who; NULL for an unknown key), ACTION (e.g.
 * "keys.add", "publish", "connect"), TARGET (topic, identity, pattern),
 * RESULT ("ok", "denied", "refused", "failed") and DETAIL (free text, may be
 * NULL) are copied. A record made inside the write phase with CHANGE true
 * belongs to that attempt: it is dropped when the attempt is abandoned
 * (sld_audit_attempt, or a failed commit) and made again by the retry. */
void sld_audit_add(sld_audit_t *self, bool change, const char *identity,
                   const char *action, const char *target, const char *result,
                   const char *detail);

/* A connection was refused at the handshake at NOW_US (wall clock): NAME is
 * the identity KEY belongs to (NULL when unknown), KEY the client's public
 * key in Z85 ("" for a client that is not CURVE), ADDRESS the peer's IP
 * address, WHY the reason; all copied. The first refusal of a pair (KEY,
 * ADDRESS) is queued as a "connect" record at once, with "count":1; later
 * ones are only counted, and sld_audit_tick turns the count into one
 * record per interval. Returns true when a record was queued now. */
bool sld_audit_refused(sld_audit_t *self, uint64_t now_us, const char *name,
                       const char *key, const char *address, const char *why);

/* At NOW_US (wall clock): when an interval has ended, queue one summary
 * record for each tally that counted refusals in it, and forget the pairs
 * quiet for a whole interval. Returns the milliseconds until the next
 * interval ends (60000 when nothing is tallied). */
long sld_audit_tick(sld_audit_t *self, uint64_t now_us);

/* Start of a write-phase attempt: forget the change records of an earlier
 * attempt. */
void sld_audit_attempt(sld_audit_t *self);

/* Anything queued? (The loop then commits even without other writes.) */
bool sld_audit_dirty(const sld_audit_t *self);

/* Append every queued record to `_audit` in TXN (a write txn); *topic_id is
 * the topic's id (0 when nothing was written). 0, SL_EFULL, SL_ESTORE,
 * SL_ENOMEM. */
int sld_audit_write(sld_audit_t *self, sld_txn_t *txn, uint32_t *topic_id);

/* After the commit. OK: mirror the records to the file and forget them.
 * Not OK: change records are dropped, the others stay queued. */
void sld_audit_committed(sld_audit_t *self, bool ok);

#endif
