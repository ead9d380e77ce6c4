/*  sld_store_int - what the files of the store share, and nothing outside
 *  broker/store/ includes: the struct sld_store and struct sld_txn
 *  definitions, key and record layouts, and the internal functions one
 *  store file calls in another (sld_store__verb). Threads as sld_store.h
 *  says. The design essay below is the map of the module; each file's
 *  header says which part it owns.  */
#ifndef SLD_STORE_INT_H
#define SLD_STORE_INT_H
#include "sld_store.h"
#include "sld_seal.h"

#include <assert.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <xxhash.h>

/*  How the store works
 *  -------------------
 *
 *  Files. One public header (broker/sld_store.h), this private one, and
 *  one file per concern under broker/store/:
 *    store_env.c    open and close, the data dir's lock, format and its
 *                   migration, instance id, map growth, settle, usage
 *    store_txn.c    transactions: begin, flush, sync, commit, abort
 *    store_log.c    the topic table (in memory and `topics`) and the log
 *                   (`msgs`): append, read, seek, time index
 *    store_idem.c   idempotence: producer runs (`producers`, `pseq`), the
 *                   msg-id window (`dedup`, `dedup_exp`) and their trim
 *    store_vault.c  encryption at rest: data keys (`keys`), sealing and
 *                   opening records, plain_below / sum_below bounds, rotate
 *    store_trim.c   retention: one trim pass over topics, dedup, producers
 *    store_table.c  the checksummed named tables other modules keep their
 *                   records in (sld_table_*)
 *    store_check.c  sld_store_check (--check) and the damage checks of the
 *                   open, beside the engine as mdb_stat is beside mdb.c
 *  Internal functions are named sld_store__verb; S_ constants are this
 *  header's.
 *
 *  Databases. One environment in the data dir, named databases whose keys
 *  are big-endian so that LMDB's byte order is the order we walk in:
 *
 *    meta       "format" -> u32 (4; 5 once encrypted at rest; 2 and 3
 *               are the same before records had checksums);
 *               "instance" -> 16 random bytes; "plain_below" (formats 3
 *               and 5) -> per topic id u32 + offset u64: records below it
 *               may be plain (written before encryption began), none
 *               above; "sum_below" (formats 4 and 5), the same for
 *               records without a checksum (written before format 4)
 *    topics     name -> version u8 (2), id u32, first, next, messages,
 *               bytes, max_age_ms, max_bytes (u64 each), checksum (8:
 *               SipHash of the name and the bytes before it; version 1,
 *               formats 2 and 3 only, has none)
 *    msgs       topic id u32 + offset u64 -> ingest_us u64 + 0x01 +
 *               envelope + checksum (8); or, sealed: ingest_us u64 +
 *               0x00 + data key id u32 + nonce (24) + sealed envelope +
 *               tag (16); or, stored before format 4: ingest_us u64 +
 *               envelope
 *    producers  producer id (16) -> highest stored seq u64
 *    pseq       producer id + first seq u64 -> topic id u32 + first
 *               offset u64 + count u64: a run of COUNT consecutive seqs
 *               stored at consecutive offsets of one topic
 *    dedup      topic id u32 + msg id -> time_us u64 + offset u64
 *    dedup_exp  time_us u64 + topic id u32 + msg id -> (empty)
 *               (encrypted stores: a keyed hash of the msg id, 32 bytes)
 *    subs       name -> opaque config (sld_subrec encodes it)
 *    idents     identity name -> opaque record (sld_auth encodes it)
 *    registry   opaque key -> opaque value (sld_registry: schemas,
 *               subjects, topic bindings)
 *    routes     table version u32 BE -> opaque record (sld_routes: the
 *               routing tables; created on open, so older stores gain it)
 *    trace      topic id u32 BE + offset u64 BE -> opaque record (sld_trace:
 *               what routing did with that message; created on open; trim
 *               deletes it with the message)
 *    dlq        topic id u32 BE + offset u64 BE -> (empty) (sld_dlq: a dead
 *               letter removed from listing; created on open; trim deletes
 *               it with the message)
 *    cursors    name '\0' topic id u32 -> floor u64 (sld_subrec)
 *    acked      name '\0' topic id u32 + offset u64 -> (empty) (sld_subrec)
 *               (the named tables above are those of store_table.c:
 *               the store keeps each value with a checksum, the module
 *               named owns the record format; --check still knows the
 *               key layout of cursors and acked to check them)
 *    keys       data key id u32 -> nonce (24) + data key sealed with the
 *               master key (32 + tag 16), associated data instance id +
 *               key id u32 (format 3 only; ids 1, 2, ... none deleted)
 *
 *  Topic ids are handed out as max id + 1; topics are never deleted, so an
 *  id is never reused.
 *
 *  Two copies of topic metadata. Every append changes its topic's counters;
 *  writing the topic record on each append would double the B-tree work of
 *  the hot path. So the store keeps the committed metadata in memory (what
 *  sld_store_topic_by_id returns) and the write transaction keeps a working
 *  copy of each topic it touched (the "dirty" flag and `work` in sld_store_topic_t,
 *  plus `fresh` for topics it created). At commit the working copies are
 *  written to `topics` once each, then mdb_txn_commit runs, and only when it
 *  returned 0 do they become the committed copy. An abort just drops them,
 *  so an aborted transaction leaves no trace in memory either.
 *
 *  Producers. The broker asks "have I stored (producer, seq)?" for every
 *  publish. Sequences grow, so nearly every answer is "seq is above the
 *  highest one stored: new", which the producer cache answers from a hash
 *  without touching LMDB. The cache is filled lazily from `producers` and
 *  only from a write transaction or a fresh read: a read transaction that
 *  began before the last commit could otherwise cache a stale, lower
 *  highest seq and let a resend be stored twice. Only at or below the
 *  highest seq do we look in `pseq`; an entry older than the producer
 *  window that trim already removed answers "duplicate, offset unknown".
 *  `pseq` holds runs, not one entry per seq: consecutive seqs of one
 *  producer stored at consecutive offsets of one topic (a batch, nearly
 *  always) are one entry, keyed by the run's first seq. The write
 *  transaction keeps each producer's open run in the cache and writes it
 *  when the run breaks and at flush; a lookup first asks that open run,
 *  then takes the last entry at or before (producer, seq). Trim drops a
 *  run once its last seq has left the window.
 *
 *  Appends. One mdb_put with MDB_RESERVE (the record is written straight
 *  into the page, no temporary buffer). We keep an upper bound of the last
 *  key in `msgs`, and one in `pseq` (a producer's sequences ascend); a key
 *  above it may use MDB_APPEND, which skips the search from the root and
 *  fills pages completely instead of splitting them in half. A bound only
 *  ever grows (an abort or a trim makes it pessimistic, never wrong).
 *
 *  Map growth. MDB_MAP_FULL anywhere becomes SL_EFULL and poisons the
 *  transaction (LMDB refuses further use anyway). The caller aborts, calls
 *  sld_store_grow, which doubles the map up to the ceiling with no
 *  transaction open, and redoes the work. Past the ceiling writes keep
 *  failing with SL_EFULL while reads go on.
 *
 *  Trim. One write transaction, bounded by max_records per kind of entry:
 *  heads of topics over their age or size limit (round robin over topics so
 *  one big topic cannot starve the others), expired dedup entries in time
 *  order through `dedup_exp`, and `pseq` entries that fell out of the
 *  producer window (the walk resumes where the previous call stopped).
 *
 *  Encryption at rest (optional: opts->seal_key). What it protects is the
 *  content of messages on disk and in backups: envelopes (payload and
 *  headers) are sealed with XChaCha20-Poly1305, and msg ids, a header
 *  value, are stored as keyed hashes. Names of topics, subscriptions and
 *  identities, producer ids, offsets, ingest times and record sizes stay
 *  plain: the store needs them to work without the key in the hot path,
 *  and time seeks binary-search the plain ingest time.
 *    Keys. The operator's master key (the KEYFILE) never seals a record;
 *  it wraps random data keys, kept in `keys`. A record names the data key
 *  that sealed it, so rotation (a new data key, max id + 1) needs no
 *  rewrite: old records keep opening with their old key. Rotation is a
 *  pending change like any other: the new key goes into `keys` inside the
 *  write transaction, appends later in that same transaction already use
 *  it (they commit or vanish together with it), and only a commit makes it
 *  the store's current key; an abort wipes it. The msg-id hash key is
 *  derived from the master key (crypto_kdf), not from a data key, so a
 *  resent msg id hashes the same across rotations. All keys live in one
 *  sodium_malloc'd, mlocked area, wiped when the store closes. Changing
 *  the master key itself (rewrapping) is not supported.
 *    A record. Sealed records keep the plain 8-byte ingest time, then a
 *  0x00 marker: a plain envelope never starts with 0x00 (the codec refuses
 *  field number 0), so one byte tells the two apart and a store that was
 *  plain before keeps its old records readable. The associated data is
 *  topic id + offset + the 8 header bytes: a sealed record copied to
 *  another topic or offset, or with its time changed, does not open.
 *  `plain_below` closes the other door: once encrypted, a plain record at
 *  or above its topic's bound (or in a topic created later) is refused,
 *  so a forged plain record cannot stand in for a sealed one.
 *    Format. The first open with a master key makes data key 1 and moves
 *  the store to format 3, so a build that knows nothing of sealing refuses
 *  the store instead of serving ciphertext. Open without the key refuses
 *  a format-3 store, and a master key that does not open data key 1 is a
 *  wrong key: refused, nothing changed.
 *    Reads. sld_store_read's result must stay valid until the transaction
 *  ends, and callers hold many at once (a Deliver frame), so opened
 *  envelopes go to an arena owned by the transaction: chunks wiped and
 *  released (one kept for the next transaction) when it ends. Appends seal
 *  straight into the MDB_RESERVE'd value; nonces are drawn from the CSPRNG
 *  64 at a time. Without a key none of this runs: one test of `secret` in
 *  append and read, no allocation.
 *
 *  Checksums. A plain record ends with 8 bytes of XXH3 (libxxhash) over
 *  its header, marker and envelope, seeded with its topic id and offset:
 *  a flipped bit anywhere in it, or a record that appears at another key
 *  because its key was damaged, fails the check and is reported, never
 *  served. (A sealed record's AEAD tag does the same, with the same
 *  associated data.) XXH3 rather than libsodium's SipHash or BLAKE2b: on
 *  W1 SipHash cost 5-7% (two hashes a message, 130 ns each), XXH3 nothing
 *  measurable (docs/performance.md); a checksum needs no key. The 0x01
 *  marker works as the seal's 0x00 does: an envelope never starts with a
 *  byte below 0x08 (field number 0), so records written before format 4
 *  are told apart by their first byte,
 *  and `sum_below` keeps a damaged marker from passing a new record off
 *  as an old one: at or above its topic's bound, a record without a
 *  checksum is damage. Format 4 (5 when sealed) makes a build that knows
 *  nothing of checksums refuse the store instead of serving checksums as
 *  envelope bytes.
 *
 *  Damage. LMDB 0.9 trusts its file: a page with a wrong node offset,
 *  size or flag makes it read past the file (SIGBUS), through a NULL
 *  pointer, or into an assertion that aborts, and a writer that touches
 *  such a page corrupts memory. So nothing reaches LMDB unchecked:
 *  before mdb_env_open, sld_pages checks that data.mdb reaches the
 *  environment's last page and that the meta pages are sound; then it
 *  reads, with pread, every page a writer will touch (every page of every
 *  database but the leaves of `msgs`, and of those the ones at each
 *  topic's head and tail), and a damaged one refuses the open. The leaves
 *  inside the topic logs are only ever read, and only in read
 *  transactions: each such read runs under sld_guard, which turns a
 *  fault or an LMDB assertion into SL_ESTORE for that record; the read
 *  transaction then keeps its dead LMDB transaction (what it returned
 *  stays valid) and goes on in a fresh one. Retention deletes at a
 *  topic's head, so trim first has sld_pages check the leaves it will
 *  delete from (and their neighbours, which a delete may merge with).
 *  A key that is missing between a topic's first and next offset is
 *  damage too (the B-tree no longer leads to it), not "trimmed".
 *
 *  Allocation. The bookkeeping arrays are small and grow rarely; failing
 *  half way through applying a commit would leave memory disagreeing with
 *  disk, so, as Redis does, they abort the process on out-of-memory.  */

#define S_FORMAT_LEGACY 2        /* pseq holds runs (1 held one entry per seq) */
#define S_FORMAT_SEALED_LEGACY 3 /* 2 + data keys: records may be sealed */
#define S_FORMAT 4               /* 2 + plain records carry a checksum */
#define S_FORMAT_SEALED 5        /* 3 + 4 */
#define S_TOPIC_VERSION_LEGACY 1 /* 53 bytes, no checksum (formats 2 and 3) */
#define S_TOPIC_VERSION 2        /* the same and a checksum */
#define S_TOPIC_LEGACY_LEN 53
#define S_TOPIC_REC_LEN (S_TOPIC_LEGACY_LEN + 8)
#define S_MSG_KEY_LEN 12
#define S_PSEQ_KEY_LEN (SLC_PRODUCER_ID_LEN + 8)
#define S_PSEQ_VAL_LEN 20
#define S_DEDUP_VAL_LEN 16
#define S_DEDUP_KEY_MAX (8 + 4 + SLD_MSG_ID_MAX)
#define S_MAXDBS 24
#define S_DEFAULT_MAP_SIZE ((size_t) 64 << 20)
#define S_DEFAULT_MAP_MAX ((size_t) 16 << 30)
#define S_DEFAULT_PRODUCER_WINDOW 1000000
#define S_NONE SIZE_MAX
#define S_SEAL_MARK 0x00         /* first byte after the header of a sealed record */
#define S_SUM_MARK 0x01          /* ... of a plain record with a checksum */
#define S_MARK_MAX 0x07          /* an envelope never starts with a byte up to here */
#define S_SUM_LEN 8
#define S_RETIRE_MAX 16          /* dead LMDB txns one read txn may keep */
#define S_TRIM_CHECK 65536       /* records of a topic's head checked per trim walk */
#define S_START_SHOW 20          /* problems the open logs one by one */
#define S_SEAL_AD_LEN 20         /* topic id u32 + offset u64 + header */
#define S_SEAL_NONCE_AT (SLD_RECORD_HEADER + 1 + 4)
#define S_SEAL_BODY_AT (S_SEAL_NONCE_AT + SLD_SEAL_NONCE_LEN)
#define S_KEY_REC_LEN (SLD_SEAL_NONCE_LEN + SLD_SEAL_KEY_LEN + SLD_SEAL_TAG_LEN)
#define S_KEY_AD_LEN 20          /* instance id + key id u32 */
#define S_PLAIN_REC_LEN 12       /* plain_below entry: topic id u32 + offset u64 */
#define S_MSGID_CTX "sldmsgid"   /* crypto_kdf context of the msg-id hash key */
#define S_NONCE_POOL 64          /* nonces drawn per CSPRNG call */
#define S_CHUNK_SIZE ((size_t) 64 << 10)

_Static_assert(SLD_RECORD_SEAL_OVERHEAD == 1 + 4 + SLD_SEAL_NONCE_LEN + SLD_SEAL_TAG_LEN,
               "sealed record layout");
_Static_assert(4 + SLD_SEAL_HASH_LEN <= 4 + SLD_MSG_ID_MAX, "dedup key buffers");
_Static_assert(SLD_RECORD_SUM_OVERHEAD == 1 + S_SUM_LEN, "checksummed record layout");
_Static_assert(crypto_shorthash_BYTES == S_SUM_LEN && crypto_shorthash_KEYBYTES == 16,
               "SipHash-2-4");

/* One chunk of a transaction's arena of opened (decrypted) envelopes. */
typedef struct sld_store_chunk sld_store_chunk_t;
struct sld_store_chunk {
    sld_store_chunk_t *next;    /* older chunk of the same arena */
    size_t size, used;          /* bytes of data, bytes handed out */
    uint8_t data[];
};

/* Encrypted stores: records of topic ID below offset BELOW may be plain. */
typedef struct {
    uint32_t id;
    uint64_t below;
} sld_store_bound_t;

typedef struct {
    sld_topic_info_t info;      /* committed state */
    sld_topic_info_t work;      /* the write txn's copy; valid while dirty */
    bool dirty;                 /* the write txn changed this topic */
    uint64_t trim_ok_below;     /* trim may delete below this offset: its
                                   pages were checked (0: none yet) */
    bool trim_blocked;          /* its head's pages are damaged: not trimmed */
} sld_store_topic_t;

typedef struct {
    uint8_t id[SLC_PRODUCER_ID_LEN];
    uint64_t seq;               /* highest committed seq (0 = none) */
    uint64_t pending;           /* highest seq in the write txn; valid while dirty */
    bool dirty;                 /* the write txn recorded a seq for it */
    /* The write txn's open run, not yet in pseq (valid while run_n > 0):
     * seqs run_seq .. run_seq + run_n - 1 at offsets run_off .. of
     * run_topic. sld_store__run_put writes it when it breaks or at flush. */
    uint64_t run_seq, run_off, run_n;
    uint32_t run_topic;
} sld_store_producer_t;

struct sld_txn {
    sld_store_t *store;
    MDB_txn *mt;
    bool write;
    int err;                    /* sticky: first failure of a write; commit returns it */
    bool flushed;               /* sld_txn_flush wrote the working metadata */
    bool synced;                /* sld_txn_sync_lmdb committed it to LMDB */
    size_t *dirty;              /* indexes into store->topics touched here */
    size_t ndirty, cdirty;
    sld_topic_info_t *fresh;    /* topics created here, id = store->next_id + i */
    size_t nfresh, cfresh;
    size_t *pdirty;             /* indexes into store->producers touched here */
    size_t npdirty, cpdirty;
    uint32_t last_id;           /* append fast path: last topic looked up */
    sld_topic_info_t *last_work;
    MDB_cursor *rcur;           /* read txns: msgs cursor, at (rid, roff) when rvalid */
    uint32_t rid;
    uint64_t roff;
    bool rvalid;
    uint32_t seal_id;           /* data key appends use; > store->nkeys after a rotate */
    bool logged;                /* a record that did not read was logged */
    const char *why;            /* why the last read failed (static), or "" */
    bool verified;              /* the last record read had a checksum or seal */
    sld_store_chunk_t *arena;           /* opened envelopes, valid until the txn ends */
    MDB_txn *retired[S_RETIRE_MAX];     /* read txns: dead ones, kept until
                                           the end (what they returned
                                           stays valid) */
    size_t nretired;
};

struct sld_store {
    MDB_env *env;
    int lock_fd;                /* DIR/sluiced.lock, flocked (exclusive stores); else -1 */
    bool env_open;              /* mdb_env_open succeeded: close needs a sync */
    MDB_dbi db_meta, db_topics, db_msgs, db_producers, db_pseq, db_dedup,
            db_dedup_exp, db_subs, db_cursors, db_acked, db_idents, db_registry,
            db_routes, db_trace, db_dlq;
    char *dir;
    size_t page;                /* OS page size; map sizes are multiples of it */
    size_t map_size;            /* current map size */
    size_t map_size_max;        /* growth ceiling */
    uint64_t producer_window;
    uint8_t instance[16];
    sld_store_topic_t *topics;          /* committed topics sorted by id */
    size_t ntopics, ctopics;
    uint32_t *name_slots;       /* open addressing: topic index + 1, 0 = empty */
    size_t name_cap;
    uint32_t next_id;           /* id the next created topic gets */
    sld_store_producer_t *producers;    /* producer cache; indexes are stable */
    size_t nproducers, cproducers;
    uint32_t *prod_slots;       /* open addressing: producer index + 1 */
    size_t prod_cap;
    uint8_t msgs_last[S_MSG_KEY_LEN];   /* upper bound of the last msgs key */
    bool has_msgs_last;
    uint8_t pseq_last[S_PSEQ_KEY_LEN];  /* upper bound of the last pseq key */
    bool has_pseq_last;
    sld_txn_t wtxn;             /* the one write transaction, reused */
    bool writing;               /* wtxn is open */
    int readers;                /* open read transactions */
    size_t trim_topic;          /* round robin start of the next trim */
    uint8_t pseq_resume[S_PSEQ_KEY_LEN];    /* where the next pseq trim walk starts */
    bool has_pseq_resume;
    MDB_dbi db_keys;            /* data keys (format 3) */
    bool format_sealed;         /* meta says format 3 */
    /* Encryption at rest; secret is NULL when off. sodium_malloc'd: master
     * key, msg-id hash key, then data key i at slot 1 + i (sld_store__data_key). */
    uint8_t *secret;
    uint32_t secret_cap;        /* data keys the area has room for */
    uint32_t nkeys;             /* committed data keys = the current key id */
    sld_store_bound_t *plain;           /* plain_below, sorted by id */
    size_t nplain;
    uint32_t format;            /* as the meta says */
    bool format_sums;           /* format 4 or 5: sum_below applies */
    sld_store_bound_t *sums;            /* sum_below, sorted by id */
    size_t nsums;
    bool read_only;             /* opts->read_only */
    char *file;                 /* DIR/data.mdb */
    size_t psize;               /* LMDB's page size */
    size_t damage;              /* problems the start check found */
    uint8_t nonces[S_NONCE_POOL * SLD_SEAL_NONCE_LEN];
    size_t nonces_left;
    sld_store_chunk_t *spare;           /* an arena chunk kept for the next txn */
};

/* ---------------------------------------------------- store_env.c: helpers */

/* P grown to hold NEED items of SIZE (capacity *CAP, doubling); aborts the
 * process when out of memory (see Allocation above). */
void *sld_store__grow(void *p, size_t *cap, size_t need, size_t size);

/* Translate an LMDB failure; MAP_FULL is expected and not logged. A full
 * disk (a write that found no room) is storage full too, retryable: the
 * server then refuses publishes until sld_disk sees room again. */
int sld_store__mdb_fail(const char *what, int mrc);

/* Log that the open refuses the store, and why: SL_ESTORE. */
int sld_store__refuse(const sld_store_t *s, const char *why);

/* ------------------------------------------------------------ store_txn.c */

/* Translate and remember an LMDB failure of TXN: a write transaction
 * fails its commit; a read transaction goes on in a fresh LMDB
 * transaction (sld_store__txn_renew). Returns the SL_E code. */
int sld_store__txn_fail(sld_txn_t *txn, const char *what, int mrc);

/* ------------------------------------------------------------ store_log.c */

/* Topic record of T (S_TOPIC_REC_LEN bytes, version 2, checksummed). */
void sld_store__topic_encode(uint8_t r[S_TOPIC_REC_LEN], const sld_topic_info_t *t);
/* Decode topic record K -> V into *T: version 2 with its checksum right,
 * or, when LEGACY (a store of format 2 or 3), version 1. 0 or SL_ESTORE. */
int sld_store__topic_decode(const MDB_val *k, const MDB_val *v, sld_topic_info_t *t,
                            bool legacy);
/* Rebuild the name index of the committed topics. */
void sld_store__names_rebuild(sld_store_t *s);
/* The topic as TXN sees it: its working copy in a write txn. NULL when unknown. */
const sld_topic_info_t *sld_store__topic_view(const sld_txn_t *txn, uint32_t id);
/* The write txn's working copy of topic ID, made on first use. NULL when unknown. */
sld_topic_info_t *sld_store__topic_work(sld_txn_t *txn, uint32_t id);
/* Load `topics` into memory and seed the MDB_APPEND bounds (open). */
int sld_store__load_topics(sld_store_t *s, MDB_txn *mt);
/* TXN's LMDB read transaction failed or faulted: keep it until TXN ends
 * and go on in a fresh one. 0, or SL_EBUSY. */
int sld_store__txn_renew(sld_txn_t *txn);
/* The raw record at (ID, OFFSET): *VAL, and its time *INGEST; not
 * verified. Errors as sld_store_read. */
int sld_store__record(sld_txn_t *txn, uint32_t id, uint64_t offset, MDB_val *val,
                      uint64_t *ingest);

/* ---------------------------------------------------------- store_vault.c */

/* Wipe and free the key area (close). */
void sld_store__secret_free(sld_store_t *s);
/* Load meta KEY, per topic id u32 + offset u64 sorted by id, into *OUT.
 * A missing KEY is an empty list when OPTIONAL, else a refusal. */
int sld_store__bounds_load(sld_store_t *s, MDB_txn *mt, const char *key, bool optional,
                           sld_store_bound_t **out, size_t *n);
/* META KEY <- each committed topic's next offset. 0 or SL_ENOMEM; *MRC
 * the put's LMDB code. */
int sld_store__bounds_put(sld_store_t *s, MDB_txn *mt, const char *key, int *mrc);
/* Data keys at open: refuse a mismatch between the store and MASTER (the
 * caller's key or NULL), start encryption on a store without keys, or
 * open the keys it has. */
int sld_store__load_keys(sld_store_t *s, MDB_txn *mt, const uint8_t *master);
/* Seal ENVELOPE (LEN bytes) into REC, the reserved value of (ID, OFFSET)
 * whose header is already written, with TXN's current data key. A failure
 * poisons TXN. */
int sld_store__seal_record(sld_txn_t *txn, uint32_t id, uint64_t offset, uint8_t *rec,
                           const void *envelope, size_t len);
/* Open sealed record REC (LEN bytes) of (ID, OFFSET) into OUT with data
 * keys 1 .. NKEYS. *KEY_ID is the key it names. 0 or SL_ESTORE. */
int sld_store__record_open(const sld_store_t *s, uint32_t nkeys, uint32_t id,
                           uint64_t offset, const uint8_t *rec, size_t len, uint8_t *out,
                           uint32_t *key_id);
/* Is (ID, OFFSET) below the bound BOUNDS (N entries sorted by id) sets
 * for its topic? A topic without an entry has no room below. */
bool sld_store__below(const sld_store_bound_t *bounds, size_t n, uint32_t id,
                      uint64_t offset);

/* ----------------------------------------------------------- store_idem.c */

/* Write P's open run to pseq (write txn) and close it. 0 or the failure. */
int sld_store__run_put(sld_txn_t *txn, sld_store_producer_t *p);
/* Trim, in write TXN, at most BUDGET expired dedup entries / pseq runs
 * that left the producer window. 0 or the failure. */
int sld_store__trim_dedup(sld_txn_t *txn, uint64_t now_us, uint64_t window_us,
                          size_t budget);
int sld_store__trim_pseq(sld_txn_t *txn, size_t budget);

/* ---------------------------------------------------------- store_table.c */

/* Strip and verify the checksum of value *V under KEY in database TAG
 * (a store of format 2 or 3 has none: V stays as it is). False when it
 * is missing or wrong. */
bool sld_store__rec_open(const sld_store_t *s, const char *tag, const MDB_val *key,
                         MDB_val *v);
/* Put KEY -> VAL and its checksum into database DBI (TAG) of write MT:
 * LMDB's code. */
int sld_store__rec_put(MDB_txn *mt, MDB_dbi dbi, const char *tag, MDB_val *key,
                       const void *val, size_t vlen);

/* ---------------------------------------------------------- store_check.c */

/* Damage checks of the open, in order: the file before LMDB maps it
 * (preflight), LMDB's view of its length (covers), every page a writer
 * touches (structure, under read txn MT), and after the load the cheap
 * part of sld_store_check (start_check: logged and counted, never
 * refuses). */
int sld_store__preflight(sld_store_t *s);
int sld_store__covers(sld_store_t *s);
int sld_store__structure(sld_store_t *s, MDB_txn *mt);
void sld_store__start_check(sld_store_t *s);

/* ------------------------------------------------------ small and inline */

static inline MDB_val sld_store__val(const void *p, size_t len)
{
    MDB_val v;
    v.mv_size = len;
    v.mv_data = (void *) p;
    return v;
}

static inline void sld_store__msg_key(uint8_t k[S_MSG_KEY_LEN], uint32_t id, uint64_t offset)
{
    slc_put_be32(k, id);
    slc_put_be64(k + 4, offset);
}

static inline void sld_store__pseq_key(uint8_t k[S_PSEQ_KEY_LEN], const uint8_t *pid,
                                       uint64_t seq)
{
    memcpy(k, pid, SLC_PRODUCER_ID_LEN);
    slc_put_be64(k + SLC_PRODUCER_ID_LEN, seq);
}

static inline uint64_t sld_store__hash(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* Flags for a put of KEY (LEN bytes) into a database whose appends are
 * bounded by LAST / *HAS: MDB_APPEND above the bound, else DFLT. After the
 * put succeeds, sld_store__append_done moves the bound. */
static inline unsigned sld_store__append_flags(const uint8_t *key, uint8_t *last, size_t len,
                                               bool *has, unsigned dflt)
{
    if (*has && memcmp(key, last, len) <= 0)
        return dflt;
    return MDB_APPEND;
}

/* After a successful put with FLAGS: an append raised the bound. */
static inline void sld_store__append_done(unsigned flags, const uint8_t *key, uint8_t *last,
                                          size_t len, bool *has)
{
    if (flags & MDB_APPEND) {
        memcpy(last, key, len);
        *has = true;
    }
}

static inline uint8_t *sld_store__master_key(const sld_store_t *s)
{
    return s->secret;
}

static inline uint8_t *sld_store__msgid_key(const sld_store_t *s)
{
    return s->secret + SLD_SEAL_KEY_LEN;
}

/* Data key ID (1 ..): its slot in the secret area. */
static inline uint8_t *sld_store__data_key(const sld_store_t *s, uint32_t id)
{
    assert(id >= 1 && id <= s->secret_cap);
    return s->secret + ((size_t) id + 1) * SLD_SEAL_KEY_LEN;
}

/* XXH3 (64 bits) of the first LEN bytes of plain record REC (header,
 * marker, envelope) seeded with its place (ID, OFFSET), into OUT. */
static inline void sld_store__sum(uint8_t out[S_SUM_LEN], uint32_t id, uint64_t offset,
                                  const uint8_t *rec, size_t len)
{
    /* The seed is the record's place: the same bytes elsewhere differ. */
    XXH64_hash_t h = XXH3_64bits_withSeed(rec, len, (uint64_t) id << 40 ^ offset ^ 0x73756d31u);
    slc_put_be64(out, h);
}

/* May topic ID hold a plain record at OFFSET in an encrypted store? Only
 * below the bound of a topic that existed when encryption began. */
static inline bool sld_store__plain_allowed(const sld_store_t *s, uint32_t id,
                                            uint64_t offset)
{
    return sld_store__below(s->plain, s->nplain, id, offset);
}

/* May a record without a checksum lie at (ID, OFFSET)? In a store of
 * format 2 or 3 anywhere; else only below the topic's sum_below bound. */
static inline bool sld_store__unsummed_allowed(const sld_store_t *s, uint32_t id,
                                               uint64_t offset)
{
    return !s->format_sums || sld_store__below(s->sums, s->nsums, id, offset);
}

#endif
