/*  sld_store - the broker's durable state in one LMDB environment: topic
 *  logs, topic metadata, producer sequences, msg-id dedup, subscriptions,
 *  and, when encrypted at rest, the data keys that seal records. Owns the
 *  MDB_env, the committed in-memory topic table, the producer cache, the
 *  keys (in locked memory) and the one write transaction's pending changes.
 *  Broker thread only. It does not decide who may write what, does not
 *  decode envelopes, and never resets or repairs data it cannot read.
 *
 *  Size: over 4,000 lines, far past the house's 1,200, and not one piece:
 *  environment and transactions, the topic log, idempotence, the vault,
 *  other modules' tables, trimming and the check live here together. Issue
 *  17 splits them under broker/store/; until then new store code goes in a
 *  file of its own (sld_pages, sld_guard, sld_seal show how).  */
#include "sld_store.h"
#include "sld_guard.h"
#include "sld_pages.h"
#include "sld_seal.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <xxhash.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/*  How the store works
 *  -------------------
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
 *    subs       name -> opaque config
 *    idents     identity name -> opaque record (sld_auth encodes it)
 *    registry   opaque key -> opaque value (sld_registry: schemas,
 *               subjects, topic bindings)
 *    cursors    name '\0' topic id u32 -> floor u64
 *    acked      name '\0' topic id u32 + offset u64 -> (empty)
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
 *  copy of each topic it touched (the "dirty" flag and `work` in s_topic_t,
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
#define S_SUB_KEY_MAX (SLD_SUB_NAME_MAX + 1 + 4 + 8)
#define S_DEDUP_KEY_MAX (8 + 4 + SLD_MSG_ID_MAX)
#define S_MAXDBS 16
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
typedef struct s_chunk s_chunk_t;
struct s_chunk {
    s_chunk_t *next;            /* older chunk of the same arena */
    size_t size, used;          /* bytes of data, bytes handed out */
    uint8_t data[];
};

/* Encrypted stores: records of topic ID below offset BELOW may be plain. */
typedef struct {
    uint32_t id;
    uint64_t below;
} s_plain_t;

typedef struct {
    sld_topic_info_t info;      /* committed state */
    sld_topic_info_t work;      /* the write txn's copy; valid while dirty */
    bool dirty;                 /* the write txn changed this topic */
    uint64_t trim_ok_below;     /* trim may delete below this offset: its
                                   pages were checked (0: none yet) */
    bool trim_blocked;          /* its head's pages are damaged: not trimmed */
} s_topic_t;

typedef struct {
    uint8_t id[SLC_PRODUCER_ID_LEN];
    uint64_t seq;               /* highest committed seq (0 = none) */
    uint64_t pending;           /* highest seq in the write txn; valid while dirty */
    bool dirty;                 /* the write txn recorded a seq for it */
    /* The write txn's open run, not yet in pseq (valid while run_n > 0):
     * seqs run_seq .. run_seq + run_n - 1 at offsets run_off .. of
     * run_topic. s_run_put writes it when it breaks or at flush. */
    uint64_t run_seq, run_off, run_n;
    uint32_t run_topic;
} s_producer_t;

struct sld_txn {
    sld_store_t *store;
    MDB_txn *mt;
    bool write;
    int err;                    /* sticky: first failure of a write; commit returns it */
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
    s_chunk_t *arena;           /* opened envelopes, valid until the txn ends */
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
            db_dedup_exp, db_subs, db_cursors, db_acked, db_idents, db_registry;
    char *dir;
    size_t page;                /* OS page size; map sizes are multiples of it */
    size_t map_size;            /* current map size */
    size_t map_size_max;        /* growth ceiling */
    uint64_t producer_window;
    uint8_t instance[16];
    s_topic_t *topics;          /* committed topics sorted by id */
    size_t ntopics, ctopics;
    uint32_t *name_slots;       /* open addressing: topic index + 1, 0 = empty */
    size_t name_cap;
    uint32_t next_id;           /* id the next created topic gets */
    s_producer_t *producers;    /* producer cache; indexes are stable */
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
     * key, msg-id hash key, then data key i at slot 1 + i (s_data_key). */
    uint8_t *secret;
    uint32_t secret_cap;        /* data keys the area has room for */
    uint32_t nkeys;             /* committed data keys = the current key id */
    s_plain_t *plain;           /* plain_below, sorted by id */
    size_t nplain;
    uint32_t format;            /* as the meta says */
    bool format_sums;           /* format 4 or 5: sum_below applies */
    s_plain_t *sums;            /* sum_below, sorted by id */
    size_t nsums;
    bool read_only;             /* opts->read_only */
    char *file;                 /* DIR/data.mdb */
    size_t psize;               /* LMDB's page size */
    size_t damage;              /* problems the start check found */
    uint8_t nonces[S_NONCE_POOL * SLD_SEAL_NONCE_LEN];
    size_t nonces_left;
    s_chunk_t *spare;           /* an arena chunk kept for the next txn */
    void (*on_commit)(void *, bool);    /* sld_store_on_commit */
    void *on_commit_arg;
};

/* ---------------------------------------------------------------- helpers */

static void *s_grow(void *p, size_t *cap, size_t need, size_t size)
{
    size_t n = *cap ? *cap : 8;
    void *q;
    if (need <= *cap)
        return p;
    while (n < need)
        n *= 2;
    if (n > SIZE_MAX / size)
        abort();
    q = realloc(p, n * size);
    if (!q) {
        fprintf(stderr, "sluiced: store: out of memory\n");
        abort();
    }
    *cap = n;
    return q;
}

/* Translate an LMDB failure; MAP_FULL is expected and not logged. A full
 * disk (a write that found no room) is storage full too, retryable: the
 * server then refuses publishes until sld_disk sees room again. */
static int s_mdb_fail(const char *what, int mrc)
{
    if (mrc == MDB_MAP_FULL)
        return SL_EFULL;
    if (mrc == ENOSPC || mrc == EDQUOT) {
        fprintf(stderr, "sluiced: store: %s: the disk is full (%s)\n", what, strerror(mrc));
        return SL_EFULL;
    }
    fprintf(stderr, "sluiced: store: %s: %s\n", what, mdb_strerror(mrc));
    return SL_ESTORE;
}

static int s_txn_renew(sld_txn_t *txn);

/* Same, and remember it: LMDB will not let the transaction go on anyway.
 * A write transaction fails its commit; a read transaction goes on in a
 * fresh LMDB transaction (s_txn_renew). */
static int s_txn_fail(sld_txn_t *txn, const char *what, int mrc)
{
    int rc = s_mdb_fail(what, mrc);
    if (txn->write && txn->err == 0)
        txn->err = rc;
    else if (!txn->write)
        (void) s_txn_renew(txn);
    return rc;
}

static MDB_val s_val(const void *p, size_t len)
{
    MDB_val v;
    v.mv_size = len;
    v.mv_data = (void *) p;
    return v;
}

static void s_msg_key(uint8_t k[S_MSG_KEY_LEN], uint32_t id, uint64_t offset)
{
    slc_put_be32(k, id);
    slc_put_be64(k + 4, offset);
}

static void s_pseq_key(uint8_t k[S_PSEQ_KEY_LEN], const uint8_t *pid, uint64_t seq)
{
    memcpy(k, pid, SLC_PRODUCER_ID_LEN);
    slc_put_be64(k + SLC_PRODUCER_ID_LEN, seq);
}

/* Key NAME '\0' ID for cursors (and the prefix of acked keys). */
static int s_sub_key(uint8_t *k, const char *name, uint32_t id, size_t *len)
{
    size_t n;
    if (!name)
        return SL_EINVAL;
    n = strnlen(name, SLD_SUB_NAME_MAX + 1);
    if (n == 0 || n > SLD_SUB_NAME_MAX)
        return SL_EINVAL;
    memcpy(k, name, n);
    k[n] = 0;
    slc_put_be32(k + n + 1, id);
    *len = n + 5;
    return 0;
}

/* The checksum of topic record R (its first S_TOPIC_LEGACY_LEN bytes)
 * stored under NAME (NLEN bytes): a damaged counter would hide records
 * or let retention delete ones it must keep. */
static void s_topic_sum(uint8_t out[8], const void *name, size_t nlen, const uint8_t *r)
{
    static const uint8_t key[crypto_shorthash_KEYBYTES] = "sluice topic v2";
    uint8_t buf[SLC_TOPIC_MAX + S_TOPIC_LEGACY_LEN];
    memcpy(buf, name, nlen);
    memcpy(buf + nlen, r, S_TOPIC_LEGACY_LEN);
    crypto_shorthash(out, buf, nlen + S_TOPIC_LEGACY_LEN, key);
}

/* The checksum the small databases' values end with (format 4 on):
 * BLAKE2b over database TAG, KEY and VAL (streamed, so nothing is
 * copied; these are written rarely), cut to 8 bytes. */
static void s_rec_sum(uint8_t out[S_SUM_LEN], const char *tag, const void *key, size_t klen,
                      const void *val, size_t vlen)
{
    crypto_generichash_state st;
    uint8_t full[crypto_generichash_BYTES_MIN];
    crypto_generichash_init(&st, NULL, 0, sizeof full);
    crypto_generichash_update(&st, (const uint8_t *) tag, strlen(tag) + 1);
    crypto_generichash_update(&st, key, klen);
    crypto_generichash_update(&st, val, vlen);
    crypto_generichash_final(&st, full, sizeof full);
    memcpy(out, full, S_SUM_LEN);
}

/* Strip and verify the checksum of value *V under KEY in database TAG
 * (a store of format 2 or 3 has none: V stays as it is). False when it
 * is missing or wrong. */
static bool s_rec_open(const sld_store_t *s, const char *tag, const MDB_val *key, MDB_val *v)
{
    uint8_t sum[S_SUM_LEN];
    if (!s->format_sums)
        return true;
    if (v->mv_size < S_SUM_LEN)
        return false;
    v->mv_size -= S_SUM_LEN;
    s_rec_sum(sum, tag, key->mv_data, key->mv_size, v->mv_data, v->mv_size);
    return memcmp(sum, (const uint8_t *) v->mv_data + v->mv_size, S_SUM_LEN) == 0;
}

/* Put KEY -> VAL and its checksum into database DBI (TAG) of write MT. */
static int s_rec_put(MDB_txn *mt, MDB_dbi dbi, const char *tag, MDB_val *key,
                     const void *val, size_t vlen)
{
    MDB_val v = s_val(NULL, vlen + S_SUM_LEN);
    int mrc = mdb_put(mt, dbi, key, &v, MDB_RESERVE);
    if (mrc == 0) {
        if (vlen)
            memcpy(v.mv_data, val, vlen);
        s_rec_sum((uint8_t *) v.mv_data + vlen, tag, key->mv_data, key->mv_size, val, vlen);
    }
    return mrc;
}

static void s_topic_encode(uint8_t r[S_TOPIC_REC_LEN], const sld_topic_info_t *t)
{
    r[0] = S_TOPIC_VERSION;
    slc_put_be32(r + 1, t->id);
    slc_put_be64(r + 5, t->first_offset);
    slc_put_be64(r + 13, t->next_offset);
    slc_put_be64(r + 21, t->messages);
    slc_put_be64(r + 29, t->bytes);
    slc_put_be64(r + 37, t->max_age_ms);
    slc_put_be64(r + 45, t->max_bytes);
    s_topic_sum(r + S_TOPIC_LEGACY_LEN, t->name, strlen(t->name), r);
}

/* Decode topic record K -> V into *T: version 2 with its checksum right,
 * or, when LEGACY (a store of format 2 or 3), version 1. */
static int s_topic_decode(const MDB_val *k, const MDB_val *v, sld_topic_info_t *t,
                          bool legacy)
{
    const uint8_t *r = v->mv_data;
    uint8_t sum[8];
    if (k->mv_size == 0 || k->mv_size > SLC_TOPIC_MAX || v->mv_size == 0)
        return SL_ESTORE;
    if (r[0] == S_TOPIC_VERSION && v->mv_size == S_TOPIC_REC_LEN) {
        s_topic_sum(sum, k->mv_data, k->mv_size, r);
        if (memcmp(sum, r + S_TOPIC_LEGACY_LEN, sizeof sum) != 0)
            return SL_ESTORE;
    } else if (!legacy || r[0] != S_TOPIC_VERSION_LEGACY
               || v->mv_size != S_TOPIC_LEGACY_LEN) {
        return SL_ESTORE;
    }
    memset(t, 0, sizeof *t);
    memcpy(t->name, k->mv_data, k->mv_size);
    t->id = slc_get_be32(r + 1);
    t->first_offset = slc_get_be64(r + 5);
    t->next_offset = slc_get_be64(r + 13);
    t->messages = slc_get_be64(r + 21);
    t->bytes = slc_get_be64(r + 29);
    t->max_age_ms = slc_get_be64(r + 37);
    t->max_bytes = slc_get_be64(r + 45);
    /* Offsets are contiguous from first to next. */
    if (t->id == 0 || strlen(t->name) != k->mv_size || t->first_offset > t->next_offset
        || t->messages != t->next_offset - t->first_offset)
        return SL_ESTORE;
    return 0;
}

static uint64_t s_hash(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static size_t s_round_page(size_t n, size_t page)
{
    return (n + page - 1) / page * page;
}

/* ------------------------------------------------------------------ keys */

static int s_refuse(const sld_store_t *s, const char *why)
{
    fprintf(stderr, "sluiced: store: %s/data.mdb: %s; refusing to open it "
            "(nothing was changed)\n", s->dir, why);
    return SL_ESTORE;
}

static uint8_t *s_master_key(const sld_store_t *s)
{
    return s->secret;
}

static uint8_t *s_msgid_key(const sld_store_t *s)
{
    return s->secret + SLD_SEAL_KEY_LEN;
}

/* Data key ID (1 ..): its slot in the secret area. */
static uint8_t *s_data_key(const sld_store_t *s, uint32_t id)
{
    assert(id >= 1 && id <= s->secret_cap);
    return s->secret + ((size_t) id + 1) * SLD_SEAL_KEY_LEN;
}

/* Make room for NEED data keys. A new area is allocated, the old one
 * copied, wiped and freed: rare (rotation), and no pointer into the area
 * is kept across calls. 0 or SL_ENOMEM. */
static int s_secret_grow(sld_store_t *s, uint32_t need)
{
    int rc = 0;
    uint32_t cap = s->secret_cap ? s->secret_cap : 4;
    size_t old_size = ((size_t) s->secret_cap + 2) * SLD_SEAL_KEY_LEN, size;
    uint8_t *area;

    if (need <= s->secret_cap && s->secret)
        goto fail;
    while (cap < need)
        cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
    size = ((size_t) cap + 2) * SLD_SEAL_KEY_LEN;
    area = sodium_malloc(size);
    if (!area) {
        rc = SL_ENOMEM;
        goto fail;
    }
    /* sodium_malloc already tries to mlock; say so when it cannot. */
    if (sodium_mlock(area, size) != 0)
        fprintf(stderr, "sluiced: store: could not lock the keys in memory (%s): "
                "they may be swapped out\n", strerror(errno));
    memset(area, 0, size);
    if (s->secret) {
        memcpy(area, s->secret, old_size);
        sodium_memzero(s->secret, old_size);
        sodium_free(s->secret);
    }
    s->secret = area;
    s->secret_cap = cap;
fail:
    return rc;
}

static void s_secret_free(sld_store_t *s)
{
    if (!s->secret)
        return;
    sodium_memzero(s->secret, ((size_t) s->secret_cap + 2) * SLD_SEAL_KEY_LEN);
    sodium_free(s->secret);
    s->secret = NULL;
    s->secret_cap = 0;
}

/* AD of data key ID's record: it belongs to this store, under this id. */
static void s_key_ad(const sld_store_t *s, uint8_t ad[S_KEY_AD_LEN], uint32_t id)
{
    memcpy(ad, s->instance, sizeof s->instance);
    slc_put_be32(ad + sizeof s->instance, id);
}

/* Draw a fresh random data key ID into its slot and write it, sealed with
 * the master key, to `keys` in MT. 0, SL_EINTERNAL, or *MRC the failing
 * mdb_put's code (the caller translates it). */
static int s_key_new(sld_store_t *s, MDB_txn *mt, uint32_t id, int *mrc)
{
    int rc;
    uint8_t rec[S_KEY_REC_LEN], ad[S_KEY_AD_LEN], k[4];
    MDB_val key, val;

    *mrc = 0;
    sld_seal_random(s_data_key(s, id), SLD_SEAL_KEY_LEN);
    sld_seal_random(rec, SLD_SEAL_NONCE_LEN);
    s_key_ad(s, ad, id);
    rc = sld_seal_encrypt(rec + SLD_SEAL_NONCE_LEN, s_data_key(s, id), SLD_SEAL_KEY_LEN,
                          ad, sizeof ad, rec, s_master_key(s));
    if (rc)
        goto fail;
    slc_put_be32(k, id);
    key = s_val(k, sizeof k);
    val = s_val(rec, sizeof rec);
    *mrc = mdb_put(mt, s->db_keys, &key, &val, MDB_NOOVERWRITE);
fail:
    if (rc || *mrc)
        sodium_memzero(s_data_key(s, id), SLD_SEAL_KEY_LEN);
    return rc;
}

static int s_bounds_put(sld_store_t *s, MDB_txn *mt, const char *key, int *mrc);

/* Encryption starts on this store: data key 1, plain_below from the
 * committed topics (their records so far are plain), format 5. */
static int s_keys_start(sld_store_t *s, MDB_txn *mt)
{
    int rc = 0, mrc;
    uint8_t fmt[4];
    MDB_val k, v;

    rc = s_key_new(s, mt, 1, &mrc);
    if (rc || mrc)
        goto fail;
    rc = s_bounds_put(s, mt, "plain_below", &mrc);
    if (rc || mrc)
        goto fail;
    s->format = S_FORMAT_SEALED;
    slc_put_be32(fmt, s->format);
    k = s_val("format", 6);
    v = s_val(fmt, sizeof fmt);
    mrc = mdb_put(mt, s->db_meta, &k, &v, 0);
    if (mrc)
        goto fail;
    s->nkeys = 1;
    s->format_sealed = true;
    fprintf(stderr, "sluiced: store: %s: encryption at rest begins (data key 1)%s\n",
            s->dir, s->ntopics ? "; records stored before stay plain" : "");
fail:
    if (rc == 0 && mrc)
        rc = s_mdb_fail("start encryption at rest", mrc);
    return rc;
}

/* Open every data key of `keys` with the master key. */
static int s_keys_unwrap(sld_store_t *s, MDB_txn *mt)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t ad[S_KEY_AD_LEN];
    uint32_t id = 0;

    mrc = mdb_cursor_open(mt, s->db_keys, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *rec = v.mv_data;
        /* Ids are handed out 1, 2, ... and never deleted. */
        if (k.mv_size != 4 || v.mv_size != S_KEY_REC_LEN
            || slc_get_be32(k.mv_data) != id + 1) {
            rc = s_refuse(s, "damaged data key record");
            goto fail;
        }
        id++;
        rc = s_secret_grow(s, id);
        if (rc)
            goto fail;
        s_key_ad(s, ad, id);
        if (sld_seal_decrypt(s_data_key(s, id), rec + SLD_SEAL_NONCE_LEN,
                             S_KEY_REC_LEN - SLD_SEAL_NONCE_LEN, ad, sizeof ad, rec,
                             s_master_key(s)) != 0) {
            /* Key 1 not opening is the wrong master key; a later one
             * not opening when key 1 did is damage. */
            rc = s_refuse(s, id == 1 ? "the key in the --encrypt-at-rest file does not "
                          "open this store's data keys: wrong key?"
                          : "a data key does not open with the key that opens the "
                          "others: damaged data key record");
            goto fail;
        }
    }
    if (mrc != MDB_NOTFOUND) {
        rc = s_mdb_fail("read data keys", mrc);
        goto fail;
    }
    s->nkeys = id;
fail:
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* Load meta KEY, per topic id u32 + offset u64 sorted by id, into *OUT.
 * A missing KEY is an empty list when OPTIONAL, else a refusal. */
static int s_bounds_load(sld_store_t *s, MDB_txn *mt, const char *key, bool optional,
                         s_plain_t **out, size_t *n)
{
    int rc = 0, mrc;
    MDB_val k = s_val(key, strlen(key)), v;
    const uint8_t *p;
    char why[96];

    mrc = mdb_get(mt, s->db_meta, &k, &v);
    if (mrc == MDB_NOTFOUND && optional)
        v = s_val("", 0);
    else if (mrc || v.mv_size % S_PLAIN_REC_LEN != 0) {
        snprintf(why, sizeof why, "no valid %s record", key);
        rc = s_refuse(s, why);
        goto fail;
    }
    *n = v.mv_size / S_PLAIN_REC_LEN;
    *out = calloc(*n + 1, sizeof **out);
    if (!*out) {
        rc = SL_ENOMEM;
        goto fail;
    }
    p = v.mv_data;
    for (size_t i = 0; i < *n; i++) {
        (*out)[i].id = slc_get_be32(p + i * S_PLAIN_REC_LEN);
        (*out)[i].below = slc_get_be64(p + i * S_PLAIN_REC_LEN + 4);
        if (i > 0 && (*out)[i].id <= (*out)[i - 1].id) {
            snprintf(why, sizeof why, "%s record out of order", key);
            rc = s_refuse(s, why);
            goto fail;
        }
    }
fail:
    return rc;
}

static int s_plain_load(sld_store_t *s, MDB_txn *mt)
{
    return s_bounds_load(s, mt, "plain_below", false, &s->plain, &s->nplain);
}

/* META KEY <- each committed topic's next offset (records below it are
 * what was stored so far). */
static int s_bounds_put(sld_store_t *s, MDB_txn *mt, const char *key, int *mrc)
{
    uint8_t *bounds = malloc(s->ntopics * S_PLAIN_REC_LEN + 1);
    MDB_val k = s_val(key, strlen(key)), v;
    if (!bounds)
        return SL_ENOMEM;
    for (size_t i = 0; i < s->ntopics; i++) {
        slc_put_be32(bounds + i * S_PLAIN_REC_LEN, s->topics[i].info.id);
        slc_put_be64(bounds + i * S_PLAIN_REC_LEN + 4, s->topics[i].info.next_offset);
    }
    v = s_val(bounds, s->ntopics * S_PLAIN_REC_LEN);
    *mrc = mdb_put(mt, s->db_meta, &k, &v, 0);
    free(bounds);
    return 0;
}

/* A store of format 2 (3) moves to 4 (5): its records so far keep
 * reading without a checksum (sum_below), every new one gets one, and
 * every topic record is rewritten with one. */
/* Give every value of DBI (TAG), written without one, its checksum. */
static int s_resum(MDB_txn *mt, MDB_dbi dbi, const char *tag)
{
    int mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t *copy = NULL;
    size_t n = 0, cap = 0;

    /* Copied out first: puts may move the pages a cursor walks. Each
     * entry: key length, value length (size_t each), key, value. */
    mrc = mdb_cursor_open(mt, dbi, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t need = n + 2 * sizeof(size_t) + k.mv_size + v.mv_size;
        if (need > cap) {
            size_t ncap = cap ? cap : 4096;
            while (ncap < need)
                ncap *= 2;
            uint8_t *p = realloc(copy, ncap);
            if (!p) {
                mrc = ENOMEM;
                break;
            }
            copy = p;
            cap = ncap;
        }
        memcpy(copy + n, &k.mv_size, sizeof(size_t));
        memcpy(copy + n + sizeof(size_t), &v.mv_size, sizeof(size_t));
        memcpy(copy + n + 2 * sizeof(size_t), k.mv_data, k.mv_size);
        memcpy(copy + n + 2 * sizeof(size_t) + k.mv_size, v.mv_data, v.mv_size);
        n = need;
    }
    if (cur)
        mdb_cursor_close(cur);
    if (mrc == MDB_NOTFOUND)
        mrc = 0;
    for (size_t at = 0; mrc == 0 && at < n;) {
        size_t klen, vlen;
        memcpy(&klen, copy + at, sizeof(size_t));
        memcpy(&vlen, copy + at + sizeof(size_t), sizeof(size_t));
        k = s_val(copy + at + 2 * sizeof(size_t), klen);
        mrc = s_rec_put(mt, dbi, tag, &k, copy + at + 2 * sizeof(size_t) + klen, vlen);
        at += 2 * sizeof(size_t) + klen + vlen;
    }
    free(copy);
    return mrc;
}

static int s_sums_start(sld_store_t *s, MDB_txn *mt)
{
    int rc, mrc = 0;
    uint8_t fmt[4], rec[S_TOPIC_REC_LEN];
    MDB_val k, v;
    /* Topic records get their checksum now: from format 4 on, one
     * without is damage. */
    for (size_t i = 0; i < s->ntopics && mrc == 0; i++) {
        s_topic_encode(rec, &s->topics[i].info);
        k = s_val(s->topics[i].info.name, strlen(s->topics[i].info.name));
        v = s_val(rec, sizeof rec);
        mrc = mdb_put(mt, s->db_topics, &k, &v, 0);
    }
    if (mrc == 0)
        mrc = s_resum(mt, s->db_subs, "subs");
    if (mrc == 0)
        mrc = s_resum(mt, s->db_idents, "idents");
    if (mrc == 0)
        mrc = s_resum(mt, s->db_registry, "registry");
    if (mrc == 0)
        mrc = s_resum(mt, s->db_cursors, "cursors");
    if (mrc == 0)
        mrc = s_resum(mt, s->db_acked, "acked");
    if (mrc == ENOMEM)
        return SL_ENOMEM;
    if (mrc)
        return s_mdb_fail("start checksums", mrc);
    rc = s_bounds_put(s, mt, "sum_below", &mrc);
    if (rc == 0 && mrc == 0) {
        s->format = s->format_sealed ? S_FORMAT_SEALED : S_FORMAT;
        slc_put_be32(fmt, s->format);
        k = s_val("format", 6);
        v = s_val(fmt, sizeof fmt);
        mrc = mdb_put(mt, s->db_meta, &k, &v, 0);
    }
    if (rc == 0 && mrc)
        rc = s_mdb_fail("start checksums", mrc);
    if (rc == 0) {
        s->format_sums = true;
        fprintf(stderr, "sluiced: store: %s: records now carry checksums (format %" PRIu32
                ")%s\n", s->dir, s->format, s->ntopics ? "; records stored before stay "
                "readable without one" : "");
    }
    return rc;
}

/* Data keys at open: refuse a mismatch between the store and MASTER (the
 * caller's key or NULL), start encryption on a store without keys, or
 * open the keys it has. */
static int s_load_keys(sld_store_t *s, MDB_txn *mt, const uint8_t *master)
{
    int rc = 0, mrc;
    MDB_stat st;

    mrc = mdb_stat(mt, s->db_keys, &st);
    if (mrc) {
        rc = s_mdb_fail("read data keys", mrc);
        goto fail;
    }
    if (st.ms_entries > 0 && !s->format_sealed) {
        rc = s_refuse(s, "data keys in a store whose format says it is not encrypted: "
                      "damaged");
        goto fail;
    }
    if (st.ms_entries == 0 && s->format_sealed) {
        rc = s_refuse(s, "store format says encrypted but there are no data keys: "
                      "damaged");
        goto fail;
    }
    /* Reading and checking only: a key does not start encryption. */
    if (st.ms_entries == 0 && s->read_only)
        goto fail;
    if (!master) {
        if (st.ms_entries > 0)
            rc = s_refuse(s, "this store is encrypted at rest: start with "
                          "--encrypt-at-rest KEYFILE");
        goto fail;
    }
    rc = sld_seal_init();
    if (rc == 0)
        rc = s_secret_grow(s, 1);
    if (rc)
        goto fail;
    memcpy(s_master_key(s), master, SLD_SEAL_KEY_LEN);
    rc = sld_seal_derive(s_msgid_key(s), 1, S_MSGID_CTX, master);
    if (rc)
        goto fail;
    rc = st.ms_entries == 0 ? s_keys_start(s, mt) : s_keys_unwrap(s, mt);
    if (rc == 0)
        rc = s_plain_load(s, mt);
fail:
    return rc;
}

/* ------------------------------------------------------------ topic table */

static void s_names_rebuild(sld_store_t *s)
{
    size_t cap = 16;
    while (cap < s->ntopics * 2)
        cap *= 2;
    free(s->name_slots);
    s->name_slots = calloc(cap, sizeof *s->name_slots);
    if (!s->name_slots) {
        fprintf(stderr, "sluiced: store: out of memory\n");
        abort();
    }
    s->name_cap = cap;
    for (size_t i = 0; i < s->ntopics; i++) {
        const char *name = s->topics[i].info.name;
        size_t h = (size_t) s_hash(name, strlen(name)) & (cap - 1);
        while (s->name_slots[h])
            h = (h + 1) & (cap - 1);
        s->name_slots[h] = (uint32_t) i + 1;
    }
}

static size_t s_topic_find_name(const sld_store_t *s, const char *name)
{
    size_t h;
    if (!s->name_cap)
        return S_NONE;
    h = (size_t) s_hash(name, strlen(name)) & (s->name_cap - 1);
    while (s->name_slots[h]) {
        size_t i = s->name_slots[h] - 1;
        if (strcmp(s->topics[i].info.name, name) == 0)
            return i;
        h = (h + 1) & (s->name_cap - 1);
    }
    return S_NONE;
}

static size_t s_topic_find_id(const sld_store_t *s, uint32_t id)
{
    size_t lo = 0, hi = s->ntopics;
    /* Ids are dense unless a future version deletes topics. */
    if (id >= 1 && id - 1 < s->ntopics && s->topics[id - 1].info.id == id)
        return id - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->topics[mid].info.id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->ntopics && s->topics[lo].info.id == id ? lo : S_NONE;
}

/* The topic as TXN sees it: its working copy in a write txn. NULL when unknown. */
static const sld_topic_info_t *s_topic_view(const sld_txn_t *txn, uint32_t id)
{
    const sld_store_t *s = txn->store;
    size_t i;
    if (txn->write && id >= s->next_id)
        return id - s->next_id < txn->nfresh ? &txn->fresh[id - s->next_id] : NULL;
    i = s_topic_find_id(s, id);
    if (i == S_NONE)
        return NULL;
    return txn->write && s->topics[i].dirty ? &s->topics[i].work : &s->topics[i].info;
}

/* The write txn's working copy of topic ID, made on first use. */
static sld_topic_info_t *s_topic_work(sld_txn_t *txn, uint32_t id)
{
    sld_store_t *s = txn->store;
    sld_topic_info_t *w = NULL;
    size_t i;
    assert(txn->write);
    if (txn->last_work && txn->last_id == id)
        return txn->last_work;
    if (id >= s->next_id) {
        if (id - s->next_id < txn->nfresh)
            w = &txn->fresh[id - s->next_id];
    } else if ((i = s_topic_find_id(s, id)) != S_NONE) {
        s_topic_t *t = &s->topics[i];
        if (!t->dirty) {
            txn->dirty = s_grow(txn->dirty, &txn->cdirty, txn->ndirty + 1, sizeof *txn->dirty);
            txn->dirty[txn->ndirty++] = i;
            t->work = t->info;
            t->dirty = true;
        }
        w = &t->work;
    }
    if (w) {
        txn->last_id = id;
        txn->last_work = w;
    }
    return w;
}

/* --------------------------------------------------------- producer cache */

static size_t s_prod_slot(const sld_store_t *s, const uint8_t *pid)
{
    return (size_t) s_hash(pid, SLC_PRODUCER_ID_LEN) & (s->prod_cap - 1);
}

static size_t s_prod_find(const sld_store_t *s, const uint8_t *pid)
{
    size_t h;
    if (!s->prod_cap)
        return S_NONE;
    h = s_prod_slot(s, pid);
    while (s->prod_slots[h]) {
        size_t i = s->prod_slots[h] - 1;
        if (memcmp(s->producers[i].id, pid, SLC_PRODUCER_ID_LEN) == 0)
            return i;
        h = (h + 1) & (s->prod_cap - 1);
    }
    return S_NONE;
}

static size_t s_prod_insert(sld_store_t *s, const uint8_t *pid, uint64_t seq)
{
    size_t i = s->nproducers, h;
    if ((s->nproducers + 1) * 2 > s->prod_cap) {
        size_t cap = s->prod_cap ? s->prod_cap * 2 : 64;
        uint32_t *slots = calloc(cap, sizeof *slots);
        if (!slots) {
            fprintf(stderr, "sluiced: store: out of memory\n");
            abort();
        }
        free(s->prod_slots);
        s->prod_slots = slots;
        s->prod_cap = cap;
        for (size_t j = 0; j < s->nproducers; j++) {
            h = s_prod_slot(s, s->producers[j].id);
            while (s->prod_slots[h])
                h = (h + 1) & (cap - 1);
            s->prod_slots[h] = (uint32_t) j + 1;
        }
    }
    s->producers = s_grow(s->producers, &s->cproducers, i + 1, sizeof *s->producers);
    memset(&s->producers[i], 0, sizeof s->producers[i]);
    memcpy(s->producers[i].id, pid, SLC_PRODUCER_ID_LEN);
    s->producers[i].seq = seq;
    h = s_prod_slot(s, pid);
    while (s->prod_slots[h])
        h = (h + 1) & (s->prod_cap - 1);
    s->prod_slots[h] = (uint32_t) i + 1;
    s->nproducers++;
    return i;
}

/* Highest stored seq of PID read from `producers` in MT (0 when none). */
static int s_prod_load(sld_store_t *s, MDB_txn *mt, const uint8_t *pid, uint64_t *seq)
{
    int rc = 0;
    MDB_val k = s_val(pid, SLC_PRODUCER_ID_LEN), v;
    int mrc = mdb_get(mt, s->db_producers, &k, &v);
    *seq = 0;
    if (mrc == MDB_NOTFOUND)
        goto fail;
    if (mrc) {
        rc = s_mdb_fail("read producer", mrc);
        goto fail;
    }
    if (v.mv_size != 8) {
        fprintf(stderr, "sluiced: store: damaged producer record\n");
        rc = SL_ESTORE;
        goto fail;
    }
    *seq = slc_get_be64(v.mv_data);
fail:
    return rc;
}

/* Highest seq of PID as TXN sees it; caches it when TXN is the write txn. */
static int s_prod_highest(sld_txn_t *txn, const uint8_t *pid, uint64_t *highest, size_t *index)
{
    int rc = 0;
    sld_store_t *s = txn->store;
    size_t i = s_prod_find(s, pid);
    uint64_t seq;
    *index = i;
    if (i != S_NONE) {
        const s_producer_t *p = &s->producers[i];
        *highest = txn->write && p->dirty ? p->pending : p->seq;
        goto fail;
    }
    rc = s_prod_load(s, txn->mt, pid, &seq);
    if (rc) {
        if (txn->write && txn->err == 0)
            txn->err = rc;
        goto fail;
    }
    /* Only the write txn sees the latest commit (see the essay). */
    if (txn->write)
        *index = s_prod_insert(s, pid, seq);
    *highest = seq;
fail:
    return rc;
}

/* ------------------------------------------------------------------- open */

/* Take DIR/sluiced.lock for this process (flock, released when the process
 * ends however it ends) and write our pid into it for the next one's
 * message. Two brokers on one data dir would each trust their own view of
 * offsets and producers. 0, SL_EBUSY or SL_ESYS. */
static int s_lock(sld_store_t *s, const char *dir)
{
    char path[PATH_MAX], pid[32] = "";
    if (snprintf(path, sizeof path, "%s/sluiced.lock", dir) >= (int) sizeof path)
        return SL_ESYS;
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        fprintf(stderr, "sluiced: store: open %s: %s\n", path, strerror(errno));
        return SL_ESYS;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ssize_t n = pread(s->lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (err == EWOULDBLOCK)
            fprintf(stderr, "sluiced: store: %s is in use by another sluiced%s%s%s; "
                    "one broker per data dir\n", dir, *pid ? " (pid " : "", pid,
                    *pid ? ")" : "");
        else
            fprintf(stderr, "sluiced: store: lock %s: %s\n", path, strerror(err));
        return err == EWOULDBLOCK ? SL_EBUSY : SL_ESYS;
    }
    int n = snprintf(pid, sizeof pid, "%ld\n", (long) getpid());
    if (ftruncate(s->lock_fd, 0) != 0 || pwrite(s->lock_fd, pid, (size_t) n, 0) != n)
        fprintf(stderr, "sluiced: store: could not write our pid to %s\n", path);
    return 0;
}

static int s_mkdirs(const char *dir)
{
    int rc = 0;
    char *path = strdup(dir);
    struct stat st;
    if (!path) {
        rc = SL_ENOMEM;
        goto fail;
    }
    for (char *c = path + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = 0;
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "sluiced: store: mkdir %s: %s\n", path, strerror(errno));
            rc = SL_ESYS;
            goto fail;
        }
        *c = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "sluiced: store: mkdir %s: %s\n", path, strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "sluiced: store: %s is not a directory\n", path);
        rc = SL_ESYS;
        goto fail;
    }
fail:
    free(path);
    return rc;
}

static int s_random(uint8_t *buf, size_t len)
{
    int rc = 0;
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "sluiced: store: getrandom: %s\n", strerror(errno));
            rc = SL_ESYS;
            goto fail;
        }
        got += (size_t) n;
    }
fail:
    return rc;
}

/* An existing store: its format must be ours and its instance id present. */
static int s_check_meta(sld_store_t *s, MDB_txn *mt)
{
    int rc = 0, mrc;
    MDB_val k, v;

    k = s_val("format", 6);
    mrc = mdb_get(mt, s->db_meta, &k, &v);
    if (mrc || v.mv_size != 4) {
        rc = s_refuse(s, "no store format recorded");
        goto fail;
    }
    s->format = slc_get_be32(v.mv_data);
    s->format_sealed = s->format == S_FORMAT_SEALED || s->format == S_FORMAT_SEALED_LEGACY;
    s->format_sums = s->format == S_FORMAT || s->format == S_FORMAT_SEALED;
    if (!s->format_sealed && !s->format_sums && s->format != S_FORMAT_LEGACY) {
        char why[96];
        snprintf(why, sizeof why, "store format %" PRIu32 ", this build reads formats "
                 "%d to %d", s->format, S_FORMAT_LEGACY, S_FORMAT_SEALED);
        rc = s_refuse(s, why);
        goto fail;
    }
    k = s_val("instance", 8);
    mrc = mdb_get(mt, s->db_meta, &k, &v);
    if (mrc || v.mv_size != sizeof s->instance) {
        rc = s_refuse(s, "no instance id recorded");
        goto fail;
    }
    memcpy(s->instance, v.mv_data, sizeof s->instance);
fail:
    return rc;
}

/* Create a new store's meta, or check an existing one's. */
static int s_load_meta(sld_store_t *s, MDB_txn *mt)
{
    int rc = 0, mrc;
    MDB_dbi main_dbi;
    MDB_stat st;
    MDB_val k, v;
    uint8_t fmt[4];
    bool fresh = false;

    mrc = mdb_dbi_open(mt, "meta", 0, &s->db_meta);
    if (mrc == MDB_NOTFOUND) {
        /* No meta: only a brand-new, empty environment may be initialised. */
        mrc = mdb_dbi_open(mt, NULL, 0, &main_dbi);
        if (mrc == 0)
            mrc = mdb_stat(mt, main_dbi, &st);
        if (mrc) {
            rc = s_refuse(s, mdb_strerror(mrc));
            goto fail;
        }
        if (st.ms_entries > 0) {
            rc = s_refuse(s, "holds data but no sluice metadata");
            goto fail;
        }
        fresh = true;
        mrc = mdb_dbi_open(mt, "meta", MDB_CREATE, &s->db_meta);
    }
    if (mrc) {
        rc = s_refuse(s, mdb_strerror(mrc));
        goto fail;
    }
    if (fresh) {
        rc = s_random(s->instance, sizeof s->instance);
        if (rc)
            goto fail;
        s->format = S_FORMAT;
        s->format_sums = true;
        slc_put_be32(fmt, S_FORMAT);
        k = s_val("format", 6);
        v = s_val(fmt, 4);
        mrc = mdb_put(mt, s->db_meta, &k, &v, 0);
        if (mrc == 0) {
            k = s_val("instance", 8);
            v = s_val(s->instance, sizeof s->instance);
            mrc = mdb_put(mt, s->db_meta, &k, &v, 0);
        }
        if (mrc)
            rc = s_mdb_fail("initialise meta", mrc);
    } else {
        rc = s_check_meta(s, mt);
    }
fail:
    return rc;
}

static int s_topic_cmp(const void *a, const void *b)
{
    uint32_t x = ((const s_topic_t *) a)->info.id, y = ((const s_topic_t *) b)->info.id;
    return x < y ? -1 : x > y;
}


/* Read DBI's last key (of LEN bytes) into LAST as the MDB_APPEND bound of
 * its appends (see the top of this file). 0 or a refusal. */
static int s_seed_last(sld_store_t *s, MDB_txn *mt, MDB_dbi dbi, const char *what,
                       uint8_t *last, size_t len, bool *has)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    char why[64];
    mrc = mdb_cursor_open(mt, dbi, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (mrc == 0 && k.mv_size == len) {
        memcpy(last, k.mv_data, len);
        *has = true;
    } else if (mrc == 0) {
        snprintf(why, sizeof why, "damaged %s key", what);
        rc = s_refuse(s, why);
    } else if (mrc != MDB_NOTFOUND) {
        snprintf(why, sizeof why, "read %s", what);
        rc = s_mdb_fail(why, mrc);
    }
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* Flags for a put of KEY (LEN bytes) into a database whose appends are
 * bounded by LAST / *HAS: MDB_APPEND above the bound, else DFLT. After the
 * put succeeds, s_append_done moves the bound. */
static unsigned s_append_flags(const uint8_t *key, uint8_t *last, size_t len,
                               bool *has, unsigned dflt)
{
    if (*has && memcmp(key, last, len) <= 0)
        return dflt;
    return MDB_APPEND;
}

/* After a successful put with FLAGS: an append raised the bound. */
static void s_append_done(unsigned flags, const uint8_t *key, uint8_t *last,
                          size_t len, bool *has)
{
    if (flags & MDB_APPEND) {
        memcpy(last, key, len);
        *has = true;
    }
}

static int s_load_topics(sld_store_t *s, MDB_txn *mt)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v;

    mrc = mdb_cursor_open(mt, s->db_topics, &cur);
    if (mrc) {
        rc = s_mdb_fail("open topics", mrc);
        goto fail;
    }
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        s->topics = s_grow(s->topics, &s->ctopics, s->ntopics + 1, sizeof *s->topics);
        memset(&s->topics[s->ntopics], 0, sizeof s->topics[0]);
        if (s_topic_decode(&k, &v, &s->topics[s->ntopics].info, !s->format_sums) != 0) {
            rc = s_refuse(s, "damaged topic record");
            goto fail;
        }
        s->ntopics++;
    }
    if (mrc != MDB_NOTFOUND) {
        rc = s_mdb_fail("read topics", mrc);
        goto fail;
    }
    if (s->ntopics > 1)
        qsort(s->topics, s->ntopics, sizeof *s->topics, s_topic_cmp);
    s->next_id = 1;
    for (size_t i = 0; i < s->ntopics; i++) {
        if (i > 0 && s->topics[i].info.id == s->topics[i - 1].info.id) {
            rc = s_refuse(s, "two topics share an id");
            goto fail;
        }
        s->next_id = s->topics[i].info.id + 1;
    }
    s_names_rebuild(s);

    /* Seed the MDB_APPEND bounds with the true last keys. */
    rc = s_seed_last(s, mt, s->db_msgs, "msgs", s->msgs_last, S_MSG_KEY_LEN,
                     &s->has_msgs_last);
    if (rc == 0)
        rc = s_seed_last(s, mt, s->db_pseq, "pseq", s->pseq_last, S_PSEQ_KEY_LEN,
                         &s->has_pseq_last);
fail:
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

static int s_load(sld_store_t *s, const uint8_t *seal_key)
{
    int rc = 0, mrc;
    MDB_txn *mt = NULL;
    const struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {
        { "topics", &s->db_topics },       { "msgs", &s->db_msgs },
        { "producers", &s->db_producers }, { "pseq", &s->db_pseq },
        { "dedup", &s->db_dedup },         { "dedup_exp", &s->db_dedup_exp },
        { "subs", &s->db_subs },           { "cursors", &s->db_cursors },
        { "acked", &s->db_acked },         { "idents", &s->db_idents },
        { "registry", &s->db_registry },
        { "keys", &s->db_keys },
    };

    mrc = mdb_txn_begin(s->env, NULL, 0, &mt);
    if (mrc) {
        rc = s_mdb_fail("begin", mrc);
        goto fail;
    }
    rc = s_load_meta(s, mt);
    if (rc)
        goto fail;
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        mrc = mdb_dbi_open(mt, dbs[i].name, MDB_CREATE, dbs[i].dbi);
        if (mrc) {
            rc = s_refuse(s, mdb_strerror(mrc));
            goto fail;
        }
    }
    rc = s_load_topics(s, mt);
    if (rc == 0 && !s->format_sums && !s->read_only)
        rc = s_sums_start(s, mt);
    if (rc == 0)
        rc = s_load_keys(s, mt, seal_key);
    if (rc == 0 && s->format_sums)
        rc = s_bounds_load(s, mt, "sum_below", true, &s->sums, &s->nsums);
    if (rc)
        goto fail;
    mrc = mdb_txn_commit(mt);
    mt = NULL;
    if (mrc)
        rc = s_mdb_fail("commit", mrc);
fail:
    if (mt)
        mdb_txn_abort(mt);
    return rc;
}

/* ------------------------------------------------------- damage at open */

/* The open's report of one problem (sld_pages_problem_fn): the first
 * S_START_SHOW are logged, all counted. */
static void s_open_problem(void *arg, const char *text)
{
    sld_store_t *s = arg;
    if (s->damage++ < S_START_SHOW)
        fprintf(stderr, "sluiced: store: %s: damaged: %s\n", s->file, text);
    else if (s->damage == S_START_SHOW + 1)
        fprintf(stderr, "sluiced: store: %s: damaged: (more problems not shown)\n",
                s->file);
}

/* Topic records as the structure walk meets them: id, first and next. */
typedef struct {
    uint8_t (*keys)[2][S_MSG_KEY_LEN];  /* ranges for the msgs walk */
    size_t n, cap;
} s_targets_t;

static int s_target_add(s_targets_t *t, uint32_t id, uint64_t from, uint64_t to)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 32;
        void *p = realloc(t->keys, cap * sizeof *t->keys);
        if (!p)
            return SL_ENOMEM;
        t->keys = p;
        t->cap = cap;
    }
    s_msg_key(t->keys[t->n][0], id, from);
    s_msg_key(t->keys[t->n][1], id, to);
    t->n++;
    return 0;
}

static int s_target_topic(const void *key, size_t klen, const void *val, size_t vlen,
                          void *arg)
{
    sld_topic_info_t t;
    MDB_val k = s_val(key, klen), v = s_val(val, vlen);
    int rc = 0;
    /* A damaged topic record is refused by the load that follows. */
    if (s_topic_decode(&k, &v, &t, true) == 0) {
        rc = s_target_add(arg, t.id, t.first_offset, t.first_offset);
        if (rc == 0)
            rc = s_target_add(arg, t.id, t.next_offset, t.next_offset);
    }
    return rc;
}

/* Check, with pread and before LMDB reads a page, every page a writer of
 * this store will touch: every database in full but `msgs`, and of `msgs`
 * every branch page and the leaves at each topic's head and tail (and at
 * the ends of the log) with their neighbours. MT (a read txn) pins the
 * pages being read. 0, SL_ESTORE (damaged: each problem logged), other
 * errors. */
static int s_structure(sld_store_t *s, MDB_txn *mt)
{
    int rc;
    long n = 0, found;
    sld_pages_t *pg = NULL;
    s_targets_t t = { 0 };
    size_t count;
    const char *const *names;

    rc = sld_pages_open(s->file, mdb_txn_id(mt), s_open_problem, s, &pg);
    if (rc == SL_ESTORE && pg)
        rc = 0;         /* problems in the main database: counted, walk on */
    if (rc)
        goto fail;
    names = sld_pages_names(pg, &count);
    for (size_t i = 0; i < count && n >= 0; i++)
        if (strcmp(names[i], "msgs") != 0)
            n = sld_pages_walk(pg, names[i], NULL, 0, 0,
                               strcmp(names[i], "topics") == 0 ? s_target_topic : NULL,
                               &t);
    /* The two ends of the whole log too: LMDB seeks to the last key. */
    if (n >= 0)
        n = s_target_add(&t, 0, 0, 0);
    if (n >= 0)
        n = s_target_add(&t, UINT32_MAX, UINT64_MAX, UINT64_MAX);
    if (n >= 0) {
        n = sld_pages_walk(pg, "msgs", t.keys, S_MSG_KEY_LEN, t.n, NULL, NULL);
        if (n == SL_ENOTFOUND)
            n = 0;
    }
    if (n >= 0)
        n = sld_pages_walk_free(pg);
    if (n < 0) {
        rc = (int) n;
        goto fail;
    }
    found = (long) sld_pages_problems(pg);
    if (found) {
        fprintf(stderr, "sluiced: store: %s: %ld problem%s in pages the broker writes "
                "to; refusing to open it (nothing was changed). `sluiced --check` "
                "reports the whole store; restore it from a backup\n", s->file, found,
                found == 1 ? "" : "s");
        rc = SL_ESTORE;
    }
fail:
    free(t.keys);
    sld_pages_destroy(&pg);
    return rc;
}

/* Before LMDB maps it: data.mdb's meta pages sound and the file as long
 * as the environment they describe (LMDB reads a page past the end of
 * the file as a SIGBUS). A missing or empty file is a new store. */
static int s_preflight(sld_store_t *s)
{
    sld_pages_t *pg = NULL;
    struct stat st;
    int rc = sld_pages_open(s->file, 0, s_open_problem, s, &pg);
    sld_pages_destroy(&pg);
    /* LMDB writes a new file's meta pages before anything else: an empty
     * data.mdb was cut short, and starting over in it would lose it all. */
    if (rc == SL_ENOTFOUND && stat(s->file, &st) == 0)
        return s_refuse(s, "the file is empty (cut short?); a new store has no data.mdb "
                        "yet: remove the empty file to start one");
    if (rc == SL_ENOTFOUND)
        return 0;
    if (rc == SL_ESTORE)
        rc = s_refuse(s, "damaged (the problems above)");
    return rc;
}

/* LMDB's own view, once it has opened the file: its last page in it. */
static int s_covers(sld_store_t *s)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat fst;
    int mrc = mdb_env_info(s->env, &info);
    if (mrc == 0)
        mrc = mdb_env_stat(s->env, &st);
    if (mrc)
        return s_mdb_fail("environment info", mrc);
    if (stat(s->file, &fst) != 0) {
        fprintf(stderr, "sluiced: store: stat %s: %s\n", s->file, strerror(errno));
        return SL_ESYS;
    }
    s->psize = st.ms_psize;
    if (((uint64_t) info.me_last_pgno + 1) * st.ms_psize > (uint64_t) fst.st_size) {
        char why[160];
        snprintf(why, sizeof why, "the file is %jd bytes but its last page (%zu) ends at "
                 "byte %" PRIu64 ": the file was cut short", (intmax_t) fst.st_size,
                 info.me_last_pgno, ((uint64_t) info.me_last_pgno + 1) * st.ms_psize);
        return s_refuse(s, why);
    }
    return 0;
}

/* LMDB's assertions abort the process; inside a guarded read one ends
 * that read instead (sld_guard). */
static void s_lmdb_assert(MDB_env *env, const char *msg)
{
    (void) env;
    sld_guard_escape(msg);
}

static void s_start_check(sld_store_t *s);

void sld_store_options_init(sld_store_options_t *opts)
{
    assert(opts);
    memset(opts, 0, sizeof *opts);
    opts->map_size = S_DEFAULT_MAP_SIZE;
    opts->map_size_max = S_DEFAULT_MAP_MAX;
    opts->sync = true;
    opts->producer_window = S_DEFAULT_PRODUCER_WINDOW;
}

int sld_store_open(const sld_store_options_t *opts, sld_store_t **out)
{
    int rc = 0, mrc;
    sld_store_t *s = NULL;
    char *file = NULL;
    struct stat st;
    MDB_envinfo info;
    long page;

    assert(opts && opts->dir && out);
    *out = NULL;
    s = calloc(1, sizeof *s);
    if (s)
        s->lock_fd = -1;
    if (!s || !(s->dir = strdup(opts->dir))
        || asprintf(&file, "%s/data.mdb", opts->dir) < 0 || !(s->file = strdup(file))) {
        rc = SL_ENOMEM;
        goto fail;
    }
    s->read_only = opts->read_only;
    page = sysconf(_SC_PAGESIZE);
    s->page = page > 0 ? (size_t) page : 4096;
    s->producer_window = opts->producer_window ? opts->producer_window
                                               : S_DEFAULT_PRODUCER_WINDOW;
    s->map_size = s_round_page(opts->map_size ? opts->map_size : S_DEFAULT_MAP_SIZE, s->page);
    rc = s_mkdirs(opts->dir);
    if (rc == 0 && opts->exclusive)
        rc = s_lock(s, opts->dir);
    if (rc == 0)
        rc = sld_seal_init();
    if (rc == 0)
        rc = sld_guard_init();
    if (rc == 0)
        rc = s_preflight(s);
    if (rc)
        goto fail;
    /* A map smaller than the file would hide data the file holds. */
    if (stat(file, &st) == 0 && (size_t) st.st_size > s->map_size)
        s->map_size = s_round_page((size_t) st.st_size, s->page);
    s->map_size_max = opts->map_size_max ? opts->map_size_max : S_DEFAULT_MAP_MAX;
    s->map_size_max = s->map_size_max / s->page * s->page;
    if (s->map_size_max < s->map_size)
        s->map_size_max = s->map_size;

    mrc = mdb_env_create(&s->env);
    if (mrc == 0)
        mrc = mdb_env_set_assert(s->env, s_lmdb_assert);
    if (mrc == 0)
        mrc = mdb_env_set_maxdbs(s->env, S_MAXDBS);
    if (mrc == 0)
        mrc = mdb_env_set_mapsize(s->env, s->map_size);
    if (mrc) {
        rc = s_mdb_fail("create environment", mrc);
        goto fail;
    }
    /* NOTLS: read txns belong to their handle, so a read txn may be open
     * while another one (or the write txn) is, on the same thread. */
    mrc = mdb_env_open(s->env, opts->dir, MDB_NOTLS | (opts->sync ? 0 : MDB_NOSYNC), 0600);
    if (mrc > 0) {
        fprintf(stderr, "sluiced: store: open %s: %s\n", file, strerror(mrc));
        rc = SL_ESYS;
        goto fail;
    }
    if (mrc) {
        rc = s_refuse(s, mdb_strerror(mrc));
        goto fail;
    }
    s->env_open = true;
    mrc = mdb_env_info(s->env, &info);
    if (mrc) {
        rc = s_mdb_fail("environment info", mrc);
        goto fail;
    }
    s->map_size = info.me_mapsize;
    if (s->map_size_max < s->map_size)
        s->map_size_max = s->map_size;
    rc = s_covers(s);
    if (rc)
        goto fail;
    for (int attempt = 0;; attempt++) {
        MDB_txn *pin = NULL;
        mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &pin);
        if (mrc) {
            rc = s_mdb_fail("begin", mrc);
            goto fail;
        }
        rc = s_structure(s, pin);
        mdb_txn_abort(pin);
        /* A writer elsewhere committed twice meanwhile: look again. */
        if (rc != SL_EBUSY || attempt == 10)
            break;
    }
    if (rc)
        goto fail;
    rc = s_load(s, opts->seal_key);
    if (rc)
        goto fail;
    if (!s->read_only)
        s_start_check(s);
    *out = s;
    s = NULL;
fail:
    free(file);
    sld_store_destroy(&s);
    return rc;
}

void sld_store_destroy(sld_store_t **self_p)
{
    sld_store_t *s;
    assert(self_p);
    s = *self_p;
    if (!s)
        return;
    assert(!s->writing && s->readers == 0);
    if (s->env_open) {
        /* With sync off this is the one fsync that makes the data last. */
        int mrc = mdb_env_sync(s->env, 1);
        if (mrc)
            s_mdb_fail("final sync", mrc);
    }
    if (s->env)
        mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd);      /* releases the flock */
    free(s->wtxn.dirty);
    free(s->wtxn.fresh);
    free(s->wtxn.pdirty);
    free(s->topics);
    free(s->name_slots);
    free(s->producers);
    free(s->prod_slots);
    free(s->dir);
    free(s->file);
    free(s->plain);
    free(s->sums);
    free(s->spare);             /* wiped when it was put aside */
    s_secret_free(s);
    free(s);
    *self_p = NULL;
}

void sld_store_instance_id(const sld_store_t *self, char hex[33])
{
    static const char digits[] = "0123456789abcdef";
    assert(self && hex);
    for (size_t i = 0; i < sizeof self->instance; i++) {
        hex[2 * i] = digits[self->instance[i] >> 4];
        hex[2 * i + 1] = digits[self->instance[i] & 15];
    }
    hex[32] = 0;
}

/* ----------------------------------------------------------- transactions */

int sld_store_begin(sld_store_t *self, bool write, sld_txn_t **out)
{
    int rc = 0, mrc;
    MDB_txn *mt = NULL;
    sld_txn_t *txn;

    assert(self && out);
    assert(!write || !self->writing);
    *out = NULL;
    if (write && self->read_only) {
        rc = SL_EINVAL;
        goto fail;
    }
    mrc = mdb_txn_begin(self->env, NULL, write ? 0 : MDB_RDONLY, &mt);
    if (mrc) {
        rc = s_mdb_fail("begin transaction", mrc);
        goto fail;
    }
    if (write) {
        txn = &self->wtxn;
        self->writing = true;
    } else {
        txn = calloc(1, sizeof *txn);
        if (!txn) {
            rc = SL_ENOMEM;
            goto fail;
        }
        self->readers++;
    }
    txn->store = self;
    txn->mt = mt;
    txn->write = write;
    txn->err = 0;
    txn->ndirty = txn->nfresh = txn->npdirty = 0;
    txn->last_work = NULL;
    txn->seal_id = self->nkeys;
    txn->logged = false;
    txn->why = "";
    txn->nretired = 0;
    mt = NULL;
    *out = txn;
fail:
    if (mt)
        mdb_txn_abort(mt);
    return rc;
}

/* Wipe TXN's opened envelopes and give the chunks back: one is kept for
 * the next transaction, the rest freed. */
static void s_arena_reset(sld_txn_t *txn)
{
    sld_store_t *s = txn->store;
    s_chunk_t *c = txn->arena, *next;
    for (; c; c = next) {
        next = c->next;
        sodium_memzero(c->data, c->used);
        if (!s->spare && c->size == S_CHUNK_SIZE) {
            c->next = NULL;
            s->spare = c;
        } else {
            free(c);
        }
    }
    txn->arena = NULL;
}

/* End TXN: abort what is still open, drop pending changes, release it. */
static void s_txn_release(sld_txn_t *txn)
{
    sld_store_t *s = txn->store;
    if (txn->rcur)
        mdb_cursor_close(txn->rcur);
    txn->rcur = NULL;
    if (txn->mt)
        mdb_txn_abort(txn->mt);
    txn->mt = NULL;
    for (size_t i = 0; i < txn->nretired; i++)
        mdb_txn_abort(txn->retired[i]);
    txn->nretired = 0;
    if (txn->arena)
        s_arena_reset(txn);
    /* Data keys a rotate made in a transaction that did not commit. */
    for (uint32_t id = s->nkeys + 1; id <= txn->seal_id; id++)
        sodium_memzero(s_data_key(s, id), SLD_SEAL_KEY_LEN);
    txn->seal_id = s->nkeys;
    if (!txn->write) {
        s->readers--;
        free(txn);
        return;
    }
    for (size_t i = 0; i < txn->ndirty; i++)
        s->topics[txn->dirty[i]].dirty = false;
    for (size_t i = 0; i < txn->npdirty; i++) {
        s->producers[txn->pdirty[i]].dirty = false;
        s->producers[txn->pdirty[i]].run_n = 0;
    }
    txn->ndirty = txn->nfresh = txn->npdirty = 0;
    txn->last_work = NULL;
    s->writing = false;
}

static int s_run_put(sld_txn_t *txn, s_producer_t *p);

/* Write each changed topic and producer once, just before mdb_txn_commit. */
static int s_txn_flush(sld_txn_t *txn)
{
    int rc = 0, mrc = 0;
    sld_store_t *s = txn->store;
    uint8_t rec[S_TOPIC_REC_LEN], seq[8];
    MDB_val k, v;

    for (size_t i = 0; i < txn->ndirty + txn->nfresh && mrc == 0; i++) {
        const sld_topic_info_t *t = i < txn->ndirty ? &s->topics[txn->dirty[i]].work
                                                    : &txn->fresh[i - txn->ndirty];
        s_topic_encode(rec, t);
        k = s_val(t->name, strlen(t->name));
        v = s_val(rec, sizeof rec);
        mrc = mdb_put(txn->mt, s->db_topics, &k, &v, 0);
    }
    /* Before anything else: after a failed put LMDB refuses every call
     * (MDB_BAD_TXN), which would hide a full map behind a storage error. */
    if (mrc)
        return s_txn_fail(txn, "write topics", mrc);
    for (size_t i = 0; i < txn->npdirty && rc == 0; i++)
        rc = s_run_put(txn, &s->producers[txn->pdirty[i]]);
    if (rc)
        return rc;
    for (size_t i = 0; i < txn->npdirty && mrc == 0; i++) {
        const s_producer_t *p = &s->producers[txn->pdirty[i]];
        if (p->pending <= p->seq)
            continue;
        slc_put_be64(seq, p->pending);
        k = s_val(p->id, SLC_PRODUCER_ID_LEN);
        v = s_val(seq, sizeof seq);
        mrc = mdb_put(txn->mt, s->db_producers, &k, &v, 0);
    }
    if (mrc)
        rc = s_txn_fail(txn, "write metadata", mrc);
    return rc;
}

/* The commit is durable: make the working copies the committed state. */
static void s_txn_apply(sld_txn_t *txn)
{
    sld_store_t *s = txn->store;
    for (size_t i = 0; i < txn->ndirty; i++) {
        s_topic_t *t = &s->topics[txn->dirty[i]];
        t->info = t->work;
        t->dirty = false;
    }
    for (size_t i = 0; i < txn->npdirty; i++) {
        s_producer_t *p = &s->producers[txn->pdirty[i]];
        if (p->pending > p->seq)
            p->seq = p->pending;
        p->dirty = false;
    }
    if (txn->nfresh) {
        /* Fresh ids are above every committed id: the array stays sorted. */
        s->topics = s_grow(s->topics, &s->ctopics, s->ntopics + txn->nfresh, sizeof *s->topics);
        for (size_t i = 0; i < txn->nfresh; i++) {
            memset(&s->topics[s->ntopics], 0, sizeof s->topics[0]);
            s->topics[s->ntopics++].info = txn->fresh[i];
        }
        s->next_id += (uint32_t) txn->nfresh;
        s_names_rebuild(s);
    }
    s->nkeys = txn->seal_id;    /* a rotate's key is now the current one */
    txn->ndirty = txn->nfresh = txn->npdirty = 0;
}

int sld_txn_commit(sld_txn_t **txn_p)
{
    int rc = 0, mrc;
    sld_txn_t *txn;

    assert(txn_p && *txn_p);
    txn = *txn_p;
    *txn_p = NULL;
    if (!txn->write)
        goto fail;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    rc = s_txn_flush(txn);
    if (rc)
        goto fail;
    if (txn->store->on_commit)
        txn->store->on_commit(txn->store->on_commit_arg, false);
    mrc = mdb_txn_commit(txn->mt);
    txn->mt = NULL;     /* freed by LMDB whatever the result */
    if (txn->store->on_commit)
        txn->store->on_commit(txn->store->on_commit_arg, true);
    if (mrc) {
        rc = s_mdb_fail("commit", mrc);
        goto fail;
    }
    s_txn_apply(txn);
fail:
    s_txn_release(txn);
    return rc;
}

const char *sld_txn_why(const sld_txn_t *txn)
{
    assert(txn);
    return txn->why;
}

bool sld_txn_verified(const sld_txn_t *txn)
{
    assert(txn);
    return txn->verified;
}

size_t sld_store_damage(const sld_store_t *self)
{
    assert(self);
    return self->damage;
}

void sld_txn_abort(sld_txn_t **txn_p)
{
    assert(txn_p);
    if (!*txn_p)
        return;
    s_txn_release(*txn_p);
    *txn_p = NULL;
}

void sld_store_on_commit(sld_store_t *self, void (*fn)(void *, bool), void *arg)
{
    self->on_commit = fn;
    self->on_commit_arg = arg;
}

int sld_store_grow(sld_store_t *self)
{
    int rc = 0, mrc;
    size_t next;
    MDB_envinfo info;

    assert(self);
    /* LMDB remaps: no transaction of this process may be open. */
    assert(!self->writing && self->readers == 0);
    if (self->map_size >= self->map_size_max) {
        rc = SL_EFULL;
        goto fail;
    }
    next = self->map_size > self->map_size_max / 2 ? self->map_size_max : self->map_size * 2;
    mrc = mdb_env_set_mapsize(self->env, next);
    if (mrc == 0)
        mrc = mdb_env_info(self->env, &info);
    if (mrc) {
        rc = s_mdb_fail("grow map", mrc);
        goto fail;
    }
    self->map_size = info.me_mapsize;
    fprintf(stderr, "sluiced: store: map grown to %zu MiB (ceiling %zu MiB)\n",
            self->map_size >> 20, self->map_size_max >> 20);
fail:
    return rc;
}

int sld_store_settle(sld_store_t *self)
{
    int rc, mrc;
    sld_txn_t *txn = NULL;
    MDB_val k = s_val("settle", 6), v = s_val("", 0);

    assert(self);
    rc = sld_store_begin(self, true, &txn);
    if (rc)
        return rc;
    mrc = mdb_put(txn->mt, self->db_meta, &k, &v, 0);
    if (mrc == 0)
        mrc = mdb_del(txn->mt, self->db_meta, &k, NULL);
    if (mrc) {
        sld_txn_abort(&txn);
        return s_mdb_fail("settle the freelist", mrc);
    }
    return sld_txn_commit(&txn);
}

void sld_store_set_map_max(sld_store_t *self, size_t map_size_max)
{
    assert(self);
    map_size_max = map_size_max / self->page * self->page;
    self->map_size_max = map_size_max > self->map_size ? map_size_max : self->map_size;
}

/* Pages on LMDB's freelist are reusable: count them so "used" means what
 * the next commits cannot take. The freelist (dbi 0) holds, per freeing
 * transaction, an array of page numbers whose first word is its length. */
static uint64_t s_free_pages(sld_store_t *self)
{
    MDB_txn *mt = NULL;
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    uint64_t pages = 0;
    if (mdb_txn_begin(self->env, NULL, MDB_RDONLY, &mt) != 0)
        return 0;
    if (mdb_cursor_open(mt, 0, &cur) == 0) {
        int mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
        while (mrc == 0) {
            if (val.mv_size >= sizeof(size_t))
                pages += *(const size_t *) val.mv_data;
            mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(mt);
    return pages;
}

void sld_store_usage(sld_store_t *self, uint64_t *used, uint64_t *map_size)
{
    MDB_envinfo info;
    MDB_stat st;
    assert(self);
    if (mdb_env_info(self->env, &info) != 0 || mdb_env_stat(self->env, &st) != 0) {
        info.me_last_pgno = 0;
        st.ms_psize = 0;
    }
    uint64_t pages = (uint64_t) info.me_last_pgno + 1;
    uint64_t free_pages = s_free_pages(self);
    if (used)
        *used = (pages > free_pages ? pages - free_pages : 0) * st.ms_psize;
    if (map_size)
        *map_size = self->map_size;
}

uint64_t sld_store_map_max(const sld_store_t *self)
{
    return self->map_size_max;
}

/* ----------------------------------------------------------------- topics */

int sld_store_topic_ensure(sld_txn_t *txn, const char *name, uint32_t *id)
{
    int rc = 0;
    sld_store_t *s;
    size_t i;
    sld_topic_info_t *t;

    assert(txn && txn->write && id);
    s = txn->store;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    rc = slc_topic_validate(name, true);
    if (rc)
        goto fail;
    i = s_topic_find_name(s, name);
    if (i != S_NONE) {
        *id = s->topics[i].info.id;
        goto fail;
    }
    for (i = 0; i < txn->nfresh; i++) {
        if (strcmp(txn->fresh[i].name, name) == 0) {
            *id = txn->fresh[i].id;
            goto fail;
        }
    }
    if ((uint64_t) s->next_id + txn->nfresh >= UINT32_MAX) {
        rc = SL_EFULL;
        goto fail;
    }
    txn->fresh = s_grow(txn->fresh, &txn->cfresh, txn->nfresh + 1, sizeof *txn->fresh);
    txn->last_work = NULL;      /* fresh may have moved */
    t = &txn->fresh[txn->nfresh];
    memset(t, 0, sizeof *t);
    t->id = s->next_id + (uint32_t) txn->nfresh;
    strcpy(t->name, name);
    txn->nfresh++;
    *id = t->id;
fail:
    return rc;
}

int sld_store_topic_set_retention(sld_txn_t *txn, uint32_t id,
                                  uint64_t max_age_ms, uint64_t max_bytes)
{
    int rc = 0;
    sld_topic_info_t *w;
    assert(txn && txn->write);
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    w = s_topic_work(txn, id);
    if (!w) {
        rc = SL_ENOTFOUND;
        goto fail;
    }
    w->max_age_ms = max_age_ms;
    w->max_bytes = max_bytes;
fail:
    return rc;
}

const sld_topic_info_t *sld_store_topic_by_id(const sld_store_t *self, uint32_t id)
{
    size_t i;
    assert(self);
    i = s_topic_find_id(self, id);
    return i == S_NONE ? NULL : &self->topics[i].info;
}

const sld_topic_info_t *sld_store_topic_by_name(const sld_store_t *self, const char *name)
{
    size_t i;
    assert(self);
    if (!name)
        return NULL;
    i = s_topic_find_name(self, name);
    return i == S_NONE ? NULL : &self->topics[i].info;
}

uint64_t sld_store_topic_next_offset(sld_txn_t *txn, uint32_t id)
{
    const sld_topic_info_t *t;
    assert(txn);
    t = s_topic_view(txn, id);
    return t ? t->next_offset : SLD_OFFSET_NONE;
}

size_t sld_store_topic_count(const sld_store_t *self)
{
    assert(self);
    return self->ntopics;
}

const sld_topic_info_t *sld_store_topic_at(const sld_store_t *self, size_t index)
{
    assert(self);
    return index < self->ntopics ? &self->topics[index].info : NULL;
}

/* --------------------------------------------------------------- messages */

/* A nonce never used before: random, drawn S_NONCE_POOL at a time. */
static void s_nonce(sld_store_t *s, uint8_t *nonce)
{
    if (s->nonces_left == 0) {
        sld_seal_random(s->nonces, sizeof s->nonces);
        s->nonces_left = S_NONCE_POOL;
    }
    s->nonces_left--;
    memcpy(nonce, s->nonces + s->nonces_left * SLD_SEAL_NONCE_LEN, SLD_SEAL_NONCE_LEN);
}

/* Associated data of record REC (its header is read) at (ID, OFFSET). */
static void s_record_ad(uint8_t ad[S_SEAL_AD_LEN], uint32_t id, uint64_t offset,
                        const uint8_t *rec)
{
    slc_put_be32(ad, id);
    slc_put_be64(ad + 4, offset);
    memcpy(ad + 12, rec, SLD_RECORD_HEADER);
}

/* Seal ENVELOPE (LEN bytes) into REC, the reserved value of (ID, OFFSET)
 * whose header is already written, with TXN's current data key. A failure
 * poisons TXN: the reserved value holds no valid record. */
static int s_seal_record(sld_txn_t *txn, uint32_t id, uint64_t offset, uint8_t *rec,
                         const void *envelope, size_t len)
{
    int rc;
    sld_store_t *s = txn->store;
    uint8_t ad[S_SEAL_AD_LEN];

    rec[SLD_RECORD_HEADER] = S_SEAL_MARK;
    slc_put_be32(rec + SLD_RECORD_HEADER + 1, txn->seal_id);
    s_nonce(s, rec + S_SEAL_NONCE_AT);
    s_record_ad(ad, id, offset, rec);
    rc = sld_seal_encrypt(rec + S_SEAL_BODY_AT, envelope, len, ad, sizeof ad,
                          rec + S_SEAL_NONCE_AT, s_data_key(s, txn->seal_id));
    if (rc) {
        fprintf(stderr, "sluiced: store: sealing record %" PRIu32 "/%" PRIu64
                " failed\n", id, offset);
        if (txn->err == 0)
            txn->err = rc;
    }
    return rc;
}

/* Open sealed record REC (LEN bytes) of (ID, OFFSET) into OUT (LEN -
 * SLD_RECORD_HEADER - SLD_RECORD_SEAL_OVERHEAD bytes) with data keys 1 ..
 * NKEYS. *KEY_ID is the key it names. 0 or SL_ESTORE. */
static int s_record_open(const sld_store_t *s, uint32_t nkeys, uint32_t id,
                         uint64_t offset, const uint8_t *rec, size_t len, uint8_t *out,
                         uint32_t *key_id)
{
    int rc = SL_ESTORE;
    uint8_t ad[S_SEAL_AD_LEN];

    *key_id = 0;
    if (len < SLD_RECORD_HEADER + SLD_RECORD_SEAL_OVERHEAD)
        goto fail;
    *key_id = slc_get_be32(rec + SLD_RECORD_HEADER + 1);
    if (*key_id == 0 || *key_id > nkeys)
        goto fail;
    s_record_ad(ad, id, offset, rec);
    if (sld_seal_decrypt(out, rec + S_SEAL_BODY_AT, len - S_SEAL_BODY_AT, ad, sizeof ad,
                         rec + S_SEAL_NONCE_AT, s_data_key(s, *key_id)) == 0)
        rc = 0;
fail:
    return rc;
}

/* Is (ID, OFFSET) below the bound BOUNDS (N entries sorted by id) sets
 * for its topic? A topic without an entry has no room below. */
static bool s_below(const s_plain_t *bounds, size_t n, uint32_t id, uint64_t offset)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bounds[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && bounds[lo].id == id && offset < bounds[lo].below;
}

/* May topic ID hold a plain record at OFFSET in an encrypted store? Only
 * below the bound of a topic that existed when encryption began. */
static bool s_plain_allowed(const sld_store_t *s, uint32_t id, uint64_t offset)
{
    return s_below(s->plain, s->nplain, id, offset);
}

/* May a record without a checksum lie at (ID, OFFSET)? In a store of
 * format 2 or 3 anywhere; else only below the topic's sum_below bound. */
static bool s_unsummed_allowed(const sld_store_t *s, uint32_t id, uint64_t offset)
{
    return !s->format_sums || s_below(s->sums, s->nsums, id, offset);
}

/* XXH3 (64 bits) of the first LEN bytes of plain record REC (header,
 * marker, envelope) seeded with its place (ID, OFFSET), into OUT. */
static void s_sum(uint8_t out[S_SUM_LEN], uint32_t id, uint64_t offset, const uint8_t *rec,
                  size_t len)
{
    /* The seed is the record's place: the same bytes elsewhere differ. */
    XXH64_hash_t h = XXH3_64bits_withSeed(rec, len, (uint64_t) id << 40 ^ offset ^ 0x73756d31u);
    slc_put_be64(out, h);
}

/* N bytes from TXN's arena, valid until TXN ends. NULL when out of memory. */
static uint8_t *s_arena_alloc(sld_txn_t *txn, size_t n)
{
    sld_store_t *s = txn->store;
    s_chunk_t *c = txn->arena;
    uint8_t *p;
    if (!c || c->size - c->used < n) {
        size_t size = n > S_CHUNK_SIZE ? n : S_CHUNK_SIZE;
        if (s->spare && s->spare->size >= size) {
            c = s->spare;
            s->spare = NULL;
        } else {
            if (size > SIZE_MAX - sizeof *c)
                return NULL;
            c = malloc(sizeof *c + size);
            if (!c)
                return NULL;
            c->size = size;
        }
        c->used = 0;
        c->next = txn->arena;
        txn->arena = c;
    }
    p = c->data + c->used;
    c->used += n;
    return p;
}

/* The envelope of record VAL at (ID, OFFSET), verified: a record with a
 * checksum once the checksum matches, a sealed one opened into TXN's
 * arena, one of the older kinds (no checksum, or plain in an encrypted
 * store) only where the store allows it. 0; SL_ESTORE with *WHY (static
 * text) and *KEY_ID (the data key a sealed record names, else 0);
 * SL_ENOMEM. Reads the record: guarded in read transactions. */
static int s_decode_record(sld_txn_t *txn, uint32_t id, uint64_t offset, const MDB_val *val,
                           const void **envelope, size_t *len, const char **why,
                           uint32_t *key_id)
{
    txn->verified = true;
    const sld_store_t *s = txn->store;
    const uint8_t *rec = val->mv_data;
    size_t n = val->mv_size;
    /* An empty envelope has no first byte: the older plain kind. */
    unsigned mark = n > SLD_RECORD_HEADER ? rec[SLD_RECORD_HEADER] : 0x100;
    uint8_t sum[S_SUM_LEN], *out;

    *why = NULL;
    *key_id = 0;
    if (mark == S_SUM_MARK) {
        if (n < SLD_RECORD_HEADER + SLD_RECORD_SUM_OVERHEAD) {
            *why = "is too short to hold its checksum";
            return SL_ESTORE;
        }
        s_sum(sum, id, offset, rec, n - S_SUM_LEN);
        if (memcmp(sum, rec + n - S_SUM_LEN, S_SUM_LEN) != 0) {
            *why = "fails its checksum: damaged, or moved from another topic or offset";
            return SL_ESTORE;
        }
        if (s->secret && !s_plain_allowed(s, id, offset)) {
            *why = "is not sealed but lies where only sealed records were written";
            return SL_ESTORE;
        }
        *envelope = rec + SLD_RECORD_HEADER + 1;
        *len = n - SLD_RECORD_HEADER - SLD_RECORD_SUM_OVERHEAD;
        return 0;
    }
    if (mark == S_SEAL_MARK) {
        if (!s->secret) {
            *why = "looks sealed but the store has no data keys";
            return SL_ESTORE;
        }
        if (n < SLD_RECORD_HEADER + SLD_RECORD_SEAL_OVERHEAD) {
            *why = "is too short to be a sealed record";
            return SL_ESTORE;
        }
        *len = n - SLD_RECORD_HEADER - SLD_RECORD_SEAL_OVERHEAD;
        /* One byte more so that an empty envelope still gets its own address. */
        out = s_arena_alloc(txn, *len + 1);
        if (!out)
            return SL_ENOMEM;
        if (s_record_open(s, txn->seal_id, id, offset, rec, n, out, key_id) != 0) {
            *why = "does not open: damaged, or moved from another topic, offset or time";
            return SL_ESTORE;
        }
        *envelope = out;
        return 0;
    }
    if (mark <= S_MARK_MAX) {
        *why = "starts with a marker byte no record has: damaged";
        return SL_ESTORE;
    }
    if (!s_unsummed_allowed(s, id, offset)) {
        *why = "has no checksum but lies where every record was written with one";
        return SL_ESTORE;
    }
    if (s->secret && !s_plain_allowed(s, id, offset)) {
        *why = "is not sealed but lies where only sealed records were written";
        return SL_ESTORE;
    }
    txn->verified = false;
    *envelope = rec + SLD_RECORD_HEADER;
    *len = n - SLD_RECORD_HEADER;
    return 0;
}

int sld_store_append(sld_txn_t *txn, uint32_t id, uint64_t ingest_us,
                     const void *envelope, size_t len, uint64_t *offset)
{
    int rc = 0, mrc;
    sld_store_t *s;
    sld_topic_info_t *w;
    uint8_t k[S_MSG_KEY_LEN];
    MDB_val key, val;
    unsigned flags = MDB_RESERVE;
    size_t extra;

    assert(txn && txn->write && (envelope || len == 0) && offset);
    assert(len <= SIZE_MAX - SLD_RECORD_HEADER - SLD_RECORD_SEAL_OVERHEAD);
    s = txn->store;
    /* A store that writes is of format 4 or 5, or sealed (3): no record
     * is written without a checksum or a seal. */
    extra = s->secret ? SLD_RECORD_SEAL_OVERHEAD : SLD_RECORD_SUM_OVERHEAD;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    w = s_topic_work(txn, id);
    if (!w) {
        rc = SL_ENOTFOUND;
        goto fail;
    }
    s_msg_key(k, id, w->next_offset);
    /* NOOVERWRITE: a record already at next_offset means damage, not a retry. */
    flags |= s_append_flags(k, s->msgs_last, sizeof k, &s->has_msgs_last,
                            MDB_NOOVERWRITE);
    key = s_val(k, sizeof k);
    val = s_val(NULL, SLD_RECORD_HEADER + extra + len);
    mrc = mdb_put(txn->mt, s->db_msgs, &key, &val, flags);
    if (mrc) {
        rc = s_txn_fail(txn, "append", mrc);
        goto fail;
    }
    slc_put_be64(val.mv_data, ingest_us);
    if (s->secret) {
        rc = s_seal_record(txn, id, w->next_offset, val.mv_data, envelope, len);
        if (rc)
            goto fail;
    } else {
        uint8_t *rec = val.mv_data;
        rec[SLD_RECORD_HEADER] = S_SUM_MARK;
        if (len)
            memcpy(rec + SLD_RECORD_HEADER + 1, envelope, len);
        s_sum(rec + SLD_RECORD_HEADER + 1 + len, id, w->next_offset, rec,
              SLD_RECORD_HEADER + 1 + len);
    }
    s_append_done(flags, k, s->msgs_last, sizeof k, &s->has_msgs_last);
    *offset = w->next_offset++;
    w->messages++;
    w->bytes += SLD_RECORD_HEADER + extra + len;
fail:
    return rc;
}

/* Look KEY up in msgs for a read transaction. Deliveries read a topic's
 * offsets one after the other: a read of the offset after the previous one
 * steps the transaction's cursor instead of searching from the root (when
 * STEP allows it; *STEPPED says whether it did). The next key is the
 * wanted one exactly when that offset exists. */
static int s_read_msg(sld_txn_t *txn, uint32_t id, uint64_t offset, MDB_val *key,
                      MDB_val *val, bool step, bool *stepped)
{
    int mrc;
    step = step && txn->rvalid && txn->rid == id && txn->roff + 1 == offset;
    *stepped = step;
    txn->rvalid = false;
    if (!txn->rcur) {
        mrc = mdb_cursor_open(txn->mt, txn->store->db_msgs, &txn->rcur);
        if (mrc)
            return mrc;
    }
    if (step) {
        MDB_val got;
        mrc = mdb_cursor_get(txn->rcur, &got, val, MDB_NEXT);
        if (mrc == 0 && (got.mv_size != key->mv_size
                         || memcmp(got.mv_data, key->mv_data, key->mv_size) != 0))
            mrc = MDB_NOTFOUND;
    }
    else
        mrc = mdb_cursor_get(txn->rcur, key, val, MDB_SET_KEY);
    if (mrc == 0) {
        txn->rvalid = true;
        txn->rid = id;
        txn->roff = offset;
    }
    return mrc;
}

/* Does value V lie where LMDB keeps values: inside its page, or as an
 * overflow run that starts right after its first page's header and is
 * long enough? A damaged node can give any size. Reads the page header
 * (guarded). Only when LMDB's pages are the system's, so that the map's
 * pages are aligned to them. */
static bool s_val_fits(const sld_store_t *s, const MDB_val *v)
{
    uintptr_t a = (uintptr_t) v->mv_data, page;
    const uint8_t *h;
    if (s->psize != s->page)
        return true;
    page = a & ~(uintptr_t) (s->psize - 1);
    if (a - page + v->mv_size <= s->psize)
        return true;
    h = (const uint8_t *) page;
    if (a - page != 16 || !((h[10] | h[11] << 8) & 0x04))     /* P_OVERFLOW */
        return false;
    uint32_t pages = (uint32_t) h[12] | (uint32_t) h[13] << 8 | (uint32_t) h[14] << 16
                   | (uint32_t) h[15] << 24;
    return (uint64_t) pages * s->psize >= (uint64_t) v->mv_size + 16;
}

/* One lookup of a record, run guarded in read transactions. */
typedef struct {
    sld_txn_t *txn;
    uint32_t id;
    uint64_t offset;
    bool decode;                /* verify it and find its envelope */
    bool step;                  /* may step the cursor from the last read */
    bool stepped;               /* it did */
    int mrc;                    /* LMDB's result of the lookup */
    int rc;                     /* 0, SL_ESTORE (why), SL_ENOMEM */
    const char *why;            /* static text */
    MDB_val val;
    uint64_t ingest;
    const void *env;
    size_t len;
    uint32_t key_id;
} s_lookup_t;

static int s_lookup_run(void *arg)
{
    s_lookup_t *l = arg;
    sld_txn_t *txn = l->txn;
    uint8_t k[S_MSG_KEY_LEN];
    MDB_val key;

    s_msg_key(k, l->id, l->offset);
    key = s_val(k, sizeof k);
    if (txn->write)
        l->mrc = mdb_get(txn->mt, txn->store->db_msgs, &key, &l->val);
    else
        l->mrc = s_read_msg(txn, l->id, l->offset, &key, &l->val, l->step, &l->stepped);
    if (l->mrc)
        return 0;
    if (l->val.mv_size < SLD_RECORD_HEADER) {
        l->rc = SL_ESTORE;
        l->why = "is shorter than its header";
        return 0;
    }
    if (!txn->write && !s_val_fits(txn->store, &l->val)) {
        l->rc = SL_ESTORE;
        l->why = "reaches past its page: a damaged page";
        return 0;
    }
    l->ingest = slc_get_be64(l->val.mv_data);
    if (l->decode)
        l->rc = s_decode_record(txn, l->id, l->offset, &l->val, &l->env, &l->len, &l->why,
                                &l->key_id);
    return 0;
}

/* TXN's LMDB transaction failed or faulted: LMDB refuses it from now on,
 * or it is in no state to go on. Keep it until TXN ends, so what it
 * returned stays valid, and go on in a fresh one. 0, or SL_EBUSY (TXN
 * keeps S_RETIRE_MAX already, or no transaction could begin). */
static int s_txn_renew(sld_txn_t *txn)
{
    MDB_txn *mt = NULL;
    int mrc;
    if (txn->rcur)
        mdb_cursor_close(txn->rcur);
    txn->rcur = NULL;
    txn->rvalid = false;
    if (txn->nretired == S_RETIRE_MAX)
        return SL_EBUSY;
    mrc = mdb_txn_begin(txn->store->env, NULL, MDB_RDONLY, &mt);
    if (mrc) {
        s_mdb_fail("begin after damage", mrc);
        return SL_EBUSY;
    }
    txn->retired[txn->nretired++] = txn->mt;
    txn->mt = mt;
    return 0;
}

/* Find record L->offset of topic L->id in TXN and, with L->decode,
 * verify it. 0; SL_ENOTFOUND (below the topic's first offset or at or
 * past its next); SL_ESTORE (TXN->why says why; logged once per txn);
 * SL_EBUSY; SL_ENOMEM. A write transaction is not guarded: the pages it
 * reads were checked before LMDB touched them (see the top of the file),
 * and an LMDB failure poisons it as any failed write does. */
static int s_lookup(sld_txn_t *txn, s_lookup_t *l)
{
    int rc = 0;
    const char *fault = NULL, *detail = NULL;

    l->txn = txn;
    for (int attempt = 0;; attempt++) {
        bool faulted = false;
        l->mrc = 0;
        l->rc = 0;
        l->why = NULL;
        l->key_id = 0;
        l->stepped = false;
        l->step = attempt == 0;
        if (txn->write)
            s_lookup_run(l);
        else
            faulted = sld_guard_call(s_lookup_run, l, &fault) != 0;
        if (!faulted && l->mrc == 0) {
            rc = l->rc;
            break;
        }
        if (!faulted && l->mrc == MDB_NOTFOUND) {
            const sld_topic_info_t *t = s_topic_view(txn, l->id);
            rc = SL_ENOTFOUND;
            if (t && l->offset >= t->first_offset && l->offset < t->next_offset) {
                rc = SL_ESTORE;
                l->why = "is missing: the topic's offsets reach past it but the B-tree "
                         "does not lead to it";
            }
            break;
        }
        /* LMDB failed (a damaged page: MDB_PAGE_NOTFOUND, MDB_CORRUPTED,
         * ...) or faulted: this LMDB transaction is done for. */
        l->why = faulted ? "made LMDB fault: a damaged page"
                         : "could not be read: LMDB failed on a damaged page";
        detail = faulted ? fault : mdb_strerror(l->mrc);
        if (txn->write) {
            s_txn_fail(txn, "read record", l->mrc);
            rc = SL_ESTORE;
            break;
        }
        rc = s_txn_renew(txn);
        if (rc)
            break;
        /* A cursor step goes through the neighbouring pages: from the
         * root, the record may still be found. */
        if (attempt == 0 && l->stepped)
            continue;
        rc = SL_ESTORE;
        break;
    }
    if (rc == SL_ESTORE) {
        txn->why = l->why;
        if (!txn->logged) {
            char key[32] = "";
            if (l->key_id)
                snprintf(key, sizeof key, " (data key %" PRIu32 ")", l->key_id);
            fprintf(stderr, "sluiced: store: record %" PRIu32 "/%" PRIu64 "%s %s%s%s%s\n",
                    l->id, l->offset, key, l->why, detail ? " (" : "", detail ? detail : "",
                    detail ? ")" : "");
            txn->logged = true;
        }
    } else if (rc == SL_EBUSY && !txn->logged) {
        fprintf(stderr, "sluiced: store: a read transaction met too many damaged pages; "
                "reads go on in the next\n");
        txn->logged = true;
    }
    return rc;
}

/* The raw record at (ID, OFFSET): *VAL, and its time *INGEST. */
static int s_record(sld_txn_t *txn, uint32_t id, uint64_t offset, MDB_val *val,
                    uint64_t *ingest)
{
    s_lookup_t l;
    int rc;
    memset(&l, 0, sizeof l);
    l.id = id;
    l.offset = offset;
    rc = s_lookup(txn, &l);
    if (rc == 0) {
        *val = l.val;
        *ingest = l.ingest;
    }
    return rc;
}

int sld_store_read(sld_txn_t *txn, uint32_t id, uint64_t offset,
                   const void **envelope, size_t *len, uint64_t *ingest_us)
{
    s_lookup_t l;
    int rc;
    assert(txn && envelope && len);
    memset(&l, 0, sizeof l);
    l.id = id;
    l.offset = offset;
    l.decode = true;
    rc = s_lookup(txn, &l);
    if (rc == 0) {
        *envelope = l.env;
        *len = l.len;
        if (ingest_us)
            *ingest_us = l.ingest;
    }
    return rc;
}

/* One range seek, run guarded in read transactions. */
typedef struct {
    MDB_cursor *cur;
    uint8_t k[S_MSG_KEY_LEN];
    int mrc;
    uint32_t id;
    uint64_t found;
} s_seek_t;

static int s_seek_run(void *arg)
{
    s_seek_t *q = arg;
    MDB_val key = s_val(q->k, sizeof q->k), val;
    q->mrc = mdb_cursor_get(q->cur, &key, &val, MDB_SET_RANGE);
    if (q->mrc == 0 && key.mv_size == S_MSG_KEY_LEN && slc_get_be32(key.mv_data) == q->id)
        q->found = slc_get_be64((const uint8_t *) key.mv_data + 4);
    return 0;
}

uint64_t sld_store_seek(sld_txn_t *txn, uint32_t id, uint64_t offset)
{
    s_seek_t q;
    bool faulted = false;

    assert(txn);
    memset(&q, 0, sizeof q);
    q.id = id;
    q.found = SLD_OFFSET_NONE;
    q.mrc = mdb_cursor_open(txn->mt, txn->store->db_msgs, &q.cur);
    if (q.mrc == 0) {
        s_msg_key(q.k, id, offset);
        if (txn->write)
            s_seek_run(&q);
        else
            faulted = sld_guard_call(s_seek_run, &q, NULL) != 0;
    }
    if (q.cur)
        mdb_cursor_close(q.cur);
    if (faulted || (q.mrc && q.mrc != MDB_NOTFOUND)) {
        q.found = SLD_OFFSET_NONE;
        if (txn->write)
            s_txn_fail(txn, "seek", q.mrc);
        else
            (void) s_txn_renew(txn);
        fprintf(stderr, "sluiced: store: seek in topic %" PRIu32 ": %s\n", id,
                faulted ? "LMDB faulted on a damaged page" : mdb_strerror(q.mrc));
    }
    return q.found;
}

uint64_t sld_store_offset_at_time(sld_txn_t *txn, uint32_t id, uint64_t time_us)
{
    const sld_topic_info_t *t;
    uint64_t lo, hi, at;
    MDB_val val;

    assert(txn);
    t = s_topic_view(txn, id);
    if (!t)
        return SLD_OFFSET_NONE;
    hi = t->next_offset;
    lo = sld_store_seek(txn, id, t->first_offset);
    if (lo == SLD_OFFSET_NONE || lo > hi)
        return hi;
    /* Lower bound: the first record whose time is not before TIME_US. A
     * record that cannot be read counts as "not before", which keeps the
     * answer inside [first, next). */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (s_record(txn, id, mid, &val, &at) == 0 && at < time_us)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The cheap part of sld_store_check, at open: the topic counters against
 * LMDB's count of records, and the first and last record of each topic
 * read and verified (guarded, as any read). What it finds is logged and
 * counted in s->damage; the store opens all the same. */
static void s_start_check(sld_store_t *s)
{
    sld_txn_t *txn = NULL;
    MDB_stat st;
    uint64_t total = 0;
    char text[SLC_TOPIC_MAX + 200];
    size_t before = s->damage;

    if (sld_store_begin(s, false, &txn) != 0)
        return;
    txn->logged = true;         /* s_open_problem logs */
    for (size_t i = 0; i < s->ntopics; i++)
        total += s->topics[i].info.messages;
    if (mdb_stat(txn->mt, s->db_msgs, &st) == 0 && st.ms_entries != total) {
        snprintf(text, sizeof text, "the topics count %" PRIu64 " records, the log holds "
                 "%zu", total, (size_t) st.ms_entries);
        s_open_problem(s, text);
    }
    for (size_t i = 0; i < s->ntopics && txn; i++) {
        const sld_topic_info_t *t = &s->topics[i].info;
        /* The first and last record read; none lies just outside them
         * (a topic record with wrong offsets would hide records). */
        uint64_t at[4] = { t->first_offset, t->next_offset - 1, t->next_offset,
                           t->first_offset - 1 };
        for (int k = 0; k < 4 && txn; k++) {
            const void *env;
            size_t len;
            int rc;
            if ((k < 2 && t->messages == 0) || (k == 3 && t->first_offset == 0))
                continue;
            rc = sld_store_read(txn, t->id, at[k], &env, &len, NULL);
            if (k >= 2 && rc != SL_ENOTFOUND && rc != SL_EBUSY) {
                snprintf(text, sizeof text, "topic %s: a record lies at offset %" PRIu64
                         ", outside the offsets its topic record gives (%" PRIu64 " to %"
                         PRIu64 ")", t->name, at[k], t->first_offset, t->next_offset);
                s_open_problem(s, text);
            } else if (k < 2 && rc == SL_ESTORE) {
                snprintf(text, sizeof text, "topic %s: record %" PRIu64 " %s", t->name,
                         at[k], sld_txn_why(txn));
                s_open_problem(s, text);
            } else if (rc == SL_EBUSY) {
                sld_txn_abort(&txn);
                if (sld_store_begin(s, false, &txn) == 0)
                    txn->logged = true;
            }
        }
    }
    sld_txn_abort(&txn);
    if (s->damage > before)
        fprintf(stderr, "sluiced: store: %s is DAMAGED: the start check found %zu "
                "problem%s. What reads is served; a record that does not read is "
                "dead-lettered (deliver.unreadable). `sluiced --check` reports the whole "
                "store\n", s->file, s->damage - before, s->damage - before == 1 ? "" : "s");
}

/* ------------------------------------------------------ encryption keys */

int sld_store_rotate_key(sld_txn_t *txn, uint32_t *key_id)
{
    int rc = 0, mrc = 0;
    sld_store_t *s;
    uint32_t next;

    assert(txn && txn->write && key_id);
    s = txn->store;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    if (!s->secret || txn->seal_id == UINT32_MAX) {
        rc = SL_EINVAL;
        goto fail;
    }
    next = txn->seal_id + 1;
    rc = s_secret_grow(s, next);
    if (rc == 0)
        rc = s_key_new(s, txn->mt, next, &mrc);
    if (rc == 0 && mrc)
        rc = s_txn_fail(txn, "rotate data key", mrc);
    if (rc)
        goto fail;
    /* Pending until commit (s_txn_apply); s_txn_release wipes it on abort. */
    txn->seal_id = next;
    *key_id = next;
fail:
    return rc;
}

uint32_t sld_store_seal_key_id(const sld_store_t *self)
{
    assert(self);
    return self->nkeys;
}

/* -------------------------------------------------------------- producers */

/* Find SEQ of producer PID among the runs of pseq visible to TXN: 1 and
 * *TOPIC_ID / *OFFSET, 0 when no run holds it, or an error. */
static int s_run_find(sld_txn_t *txn, const uint8_t *pid, uint64_t seq,
                      uint32_t *topic_id, uint64_t *offset)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    uint8_t k[S_PSEQ_KEY_LEN];
    MDB_val key, val;

    mrc = mdb_cursor_open(txn->mt, txn->store->db_pseq, &cur);
    if (mrc)
        goto done;
    /* The run holding SEQ is the last one that starts at or before it. */
    s_pseq_key(k, pid, seq);
    key = s_val(k, sizeof k);
    mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    if (mrc == 0 && memcmp(key.mv_data, k, sizeof k) != 0)
        mrc = mdb_cursor_get(cur, &key, &val, MDB_PREV);
    else if (mrc == MDB_NOTFOUND)
        mrc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
    if (mrc == MDB_NOTFOUND) {
        mrc = 0;
        goto done;
    }
    if (mrc)
        goto done;
    if (key.mv_size != S_PSEQ_KEY_LEN || val.mv_size != S_PSEQ_VAL_LEN) {
        fprintf(stderr, "sluiced: store: damaged producer index entry\n");
        rc = SL_ESTORE;
        goto done;
    }
    uint64_t first = slc_get_be64((const uint8_t *) key.mv_data + SLC_PRODUCER_ID_LEN);
    uint64_t n = slc_get_be64((const uint8_t *) val.mv_data + 12);
    if (memcmp(key.mv_data, pid, SLC_PRODUCER_ID_LEN) == 0 && first <= seq
        && seq - first < n) {
        *topic_id = slc_get_be32(val.mv_data);
        *offset = slc_get_be64((const uint8_t *) val.mv_data + 4) + (seq - first);
        rc = 1;
    }
done:
    if (mrc)
        rc = s_txn_fail(txn, "producer check", mrc);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

int sld_store_producer_check(sld_txn_t *txn, const uint8_t producer_id[16],
                             uint64_t seq, uint32_t *topic_id, uint64_t *offset)
{
    int rc;
    sld_store_t *s;
    uint64_t highest;
    size_t index;

    assert(txn && producer_id && topic_id && offset);
    s = txn->store;
    rc = txn->err;
    if (rc == 0)
        rc = s_prod_highest(txn, producer_id, &highest, &index);
    if (rc || seq > highest)
        goto fail;
    /* This write txn's open run first: it is not in pseq yet. */
    const s_producer_t *p = index != S_NONE ? &s->producers[index] : NULL;
    if (txn->write && p && p->dirty && p->run_n && p->run_seq <= seq
        && seq - p->run_seq < p->run_n) {
        *topic_id = p->run_topic;
        *offset = p->run_off + (seq - p->run_seq);
        rc = 1;
        goto fail;
    }
    rc = s_run_find(txn, producer_id, seq, topic_id, offset);
    if (rc == 0 && highest >= s->producer_window && seq <= highest - s->producer_window) {
        /* Forgotten by trim: it was stored, where is no longer known. */
        *topic_id = 0;
        *offset = SLD_OFFSET_NONE;
        rc = 1;
    }
    /* else: a gap inside the window (that seq was refused before): new. */
fail:
    return rc;
}

/* Write P's open run to pseq (write txn) and close it. 0 or the failure. */
static int s_run_put(sld_txn_t *txn, s_producer_t *p)
{
    sld_store_t *s = txn->store;
    uint8_t k[S_PSEQ_KEY_LEN], v[S_PSEQ_VAL_LEN];
    if (p->run_n == 0)
        return 0;
    s_pseq_key(k, p->id, p->run_seq);
    slc_put_be32(v, p->run_topic);
    slc_put_be64(v + 4, p->run_off);
    slc_put_be64(v + 12, p->run_n);
    p->run_n = 0;
    MDB_val key = s_val(k, sizeof k), val = s_val(v, sizeof v);
    /* One producer's runs ascend: mostly an append. */
    unsigned flags = s_append_flags(k, s->pseq_last, sizeof k, &s->has_pseq_last, 0);
    int mrc = mdb_put(txn->mt, s->db_pseq, &key, &val, flags);
    if (mrc)
        return s_txn_fail(txn, "record producer seq", mrc);
    s_append_done(flags, k, s->pseq_last, sizeof k, &s->has_pseq_last);
    return 0;
}

int sld_store_producer_record(sld_txn_t *txn, const uint8_t producer_id[16],
                              uint64_t seq, uint32_t topic_id, uint64_t offset)
{
    int rc = 0;
    sld_store_t *s;
    uint64_t highest;
    size_t index;
    s_producer_t *p;

    assert(txn && txn->write && producer_id);
    s = txn->store;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    rc = s_prod_highest(txn, producer_id, &highest, &index);
    if (rc)
        goto fail;
    assert(index != S_NONE);
    p = &s->producers[index];
    if (!p->dirty) {
        txn->pdirty = s_grow(txn->pdirty, &txn->cpdirty, txn->npdirty + 1, sizeof *txn->pdirty);
        txn->pdirty[txn->npdirty++] = index;
        p->dirty = true;
        p->pending = p->seq;
        p->run_n = 0;
    }
    /* The next seq at the next offset of the same topic extends the run;
     * anything else closes it and opens another. */
    if (p->run_n && seq == p->run_seq + p->run_n && topic_id == p->run_topic
        && offset == p->run_off + p->run_n)
        p->run_n++;
    else {
        rc = s_run_put(txn, p);
        if (rc)
            goto fail;
        p->run_seq = seq;
        p->run_off = offset;
        p->run_topic = topic_id;
        p->run_n = 1;
    }
    if (seq > p->pending)
        p->pending = seq;
fail:
    return rc;
}

uint64_t sld_store_producer_last_seq(sld_store_t *self, const uint8_t producer_id[16])
{
    uint64_t seq = 0;
    size_t i;
    MDB_txn *mt = NULL;
    int mrc;

    assert(self && producer_id);
    i = s_prod_find(self, producer_id);
    if (i != S_NONE) {
        seq = self->producers[i].seq;
        goto fail;
    }
    mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &mt);
    if (mrc) {
        s_mdb_fail("begin transaction", mrc);
        goto fail;
    }
    s_prod_load(self, mt, producer_id, &seq);
fail:
    if (mt)
        mdb_txn_abort(mt);
    return seq;
}

/* ------------------------------------------------------------ msg-id dedup */

/* Key ID + MSG_ID into K (*KLEN bytes). An encrypted store keeps a keyed
 * hash of the msg id instead: it is a header value. */
static int s_dedup_key(const sld_store_t *s, uint8_t *k, uint32_t id, const void *msg_id,
                       size_t len, size_t *klen)
{
    if (!msg_id || len == 0 || len > SLD_MSG_ID_MAX)
        return SL_EINVAL;
    slc_put_be32(k, id);
    if (s->secret) {
        *klen = 4 + SLD_SEAL_HASH_LEN;
        return sld_seal_hash(k + 4, msg_id, len, s_msgid_key(s));
    }
    memcpy(k + 4, msg_id, len);
    *klen = 4 + len;
    return 0;
}

int sld_store_dedup_check(sld_txn_t *txn, uint32_t id, const void *msg_id,
                          size_t len, uint64_t now_us, uint64_t window_us,
                          uint64_t *offset)
{
    int rc, mrc;
    uint8_t k[4 + SLD_MSG_ID_MAX];
    size_t klen;
    MDB_val key, val;
    uint64_t t;

    assert(txn && offset);
    rc = s_dedup_key(txn->store, k, id, msg_id, len, &klen);
    if (rc)
        goto fail;
    key = s_val(k, klen);
    mrc = mdb_get(txn->mt, txn->store->db_dedup, &key, &val);
    if (mrc == MDB_NOTFOUND)
        goto fail;
    if (mrc) {
        rc = s_txn_fail(txn, "dedup check", mrc);
        goto fail;
    }
    if (val.mv_size != S_DEDUP_VAL_LEN) {
        fprintf(stderr, "sluiced: store: damaged dedup entry\n");
        rc = SL_ESTORE;
        goto fail;
    }
    t = slc_get_be64(val.mv_data);
    /* Expired entries linger until trim; they no longer count. A time in
     * the future (clock stepped back) counts as within the window. */
    if (now_us < t || now_us - t < window_us) {
        *offset = slc_get_be64((const uint8_t *) val.mv_data + 8);
        rc = 1;
    }
fail:
    return rc;
}

int sld_store_dedup_record(sld_txn_t *txn, uint32_t id, const void *msg_id,
                           size_t len, uint64_t now_us, uint64_t offset)
{
    int rc, mrc;
    sld_store_t *s;
    uint8_t k[S_DEDUP_KEY_MAX], v[S_DEDUP_VAL_LEN];
    size_t klen;
    MDB_val key, val;

    assert(txn && txn->write);
    s = txn->store;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    /* dedup_exp key: time first, then the dedup key. An older dedup_exp
     * entry for the same msg id stays until trim, which skips it because
     * its time no longer matches the dedup entry. */
    slc_put_be64(k, now_us);
    rc = s_dedup_key(s, k + 8, id, msg_id, len, &klen);
    if (rc)
        goto fail;
    slc_put_be64(v, now_us);
    slc_put_be64(v + 8, offset);
    key = s_val(k + 8, klen);
    val = s_val(v, sizeof v);
    mrc = mdb_put(txn->mt, s->db_dedup, &key, &val, 0);
    if (mrc == 0) {
        key = s_val(k, 8 + klen);
        val = s_val(NULL, 0);
        mrc = mdb_put(txn->mt, s->db_dedup_exp, &key, &val, 0);
    }
    if (mrc)
        rc = s_txn_fail(txn, "dedup record", mrc);
fail:
    return rc;
}

/* ---------------------------------------------------------- subscriptions */

/* Delete every key of DBI that starts with PREFIX. */
static int s_del_prefix(sld_txn_t *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val key, val;

    mrc = mdb_cursor_open(txn->mt, dbi, &cur);
    while (mrc == 0) {
        /* Re-seek after each delete: simple, and never trips over a cursor
         * left on a page the delete merged away. */
        key = s_val(prefix, plen);
        mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
        if (mrc || key.mv_size < plen || memcmp(key.mv_data, prefix, plen) != 0)
            break;
        mrc = mdb_cursor_del(cur, 0);
    }
    if (mrc && mrc != MDB_NOTFOUND)
        rc = s_txn_fail(txn, "delete subscription state", mrc);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* Put VAL (VLEN bytes) and its checksum under KEY (1..MAX bytes) in DBI
 * (named TAG) inside write TXN; WHAT names the record in a failure. 0,
 * SL_EINVAL (key length), SL_EFULL, SL_ESTORE, or the transaction's
 * earlier failure. */
static int s_put_keyed(sld_txn_t *txn, MDB_dbi dbi, const char *tag, const void *key,
                       size_t klen, size_t max, const void *val, size_t vlen,
                       const char *what)
{
    int rc = 0, mrc;
    MDB_val k;

    assert(txn && txn->write && key && (val || vlen == 0));
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    if (klen == 0 || klen > max) {
        rc = SL_EINVAL;
        goto fail;
    }
    k = s_val(key, klen);
    mrc = s_rec_put(txn->mt, dbi, tag, &k, val, vlen);
    if (mrc)
        rc = s_txn_fail(txn, what, mrc);
fail:
    return rc;
}

int sld_store_sub_put(sld_txn_t *txn, const char *name, const void *config, size_t len)
{
    size_t n = name ? strnlen(name, SLD_SUB_NAME_MAX + 1) : 0;
    return s_put_keyed(txn, txn->store->db_subs, "subs", name ? name : "", n,
                       SLD_SUB_NAME_MAX, config, len, "store subscription");
}

int sld_store_sub_delete(sld_txn_t *txn, const char *name)
{
    int rc = 0, mrc;
    sld_store_t *s;
    size_t n;
    MDB_val key;

    assert(txn && txn->write);
    s = txn->store;
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    n = name ? strnlen(name, SLD_SUB_NAME_MAX + 1) : 0;
    if (n == 0 || n > SLD_SUB_NAME_MAX) {
        rc = SL_EINVAL;
        goto fail;
    }
    key = s_val(name, n);
    mrc = mdb_del(txn->mt, s->db_subs, &key, NULL);
    if (mrc && mrc != MDB_NOTFOUND) {
        rc = s_txn_fail(txn, "delete subscription", mrc);
        goto fail;
    }
    /* The prefix NAME '\0' covers cursors and acked of every topic, and of
     * no other subscription (names hold no '\0'). Cleaned even when the
     * subs entry was missing, so leftovers of a half-deleted one go too. */
    key = s_val(name, n + 1);
    rc = s_del_prefix(txn, s->db_cursors, key.mv_data, key.mv_size);
    if (rc == 0)
        rc = s_del_prefix(txn, s->db_acked, key.mv_data, key.mv_size);
    if (rc == 0 && mrc == MDB_NOTFOUND)
        rc = SL_ENOTFOUND;
fail:
    return rc;
}

/* Walk DBI (named TAG), whose keys are names of 1..MAX bytes, calling FN
 * for each in name order (subscriptions and identities) once its
 * checksum is verified. WHAT names them in errors. */
static int s_named_foreach(sld_txn_t *txn, MDB_dbi dbi, const char *tag, size_t max,
                           const char *what,
                           int (*fn)(const char *, const void *, size_t, void *), void *arg)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    char name[SLD_SUB_NAME_MAX + 1];

    assert(txn && fn && max <= SLD_SUB_NAME_MAX);
    mrc = mdb_cursor_open(txn->mt, dbi, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    while (mrc == 0) {
        if (key.mv_size == 0 || key.mv_size > max) {
            fprintf(stderr, "sluiced: store: damaged %s name\n", what);
            rc = SL_ESTORE;
            goto fail;
        }
        memcpy(name, key.mv_data, key.mv_size);
        name[key.mv_size] = 0;
        if (!s_rec_open(txn->store, tag, &key, &val)) {
            fprintf(stderr, "sluiced: store: %s %s: the stored record fails its checksum "
                    "(damaged); `sluiced --check` reports the store\n", what, name);
            rc = SL_ESTORE;
            goto fail;
        }
        rc = fn(name, val.mv_data, val.mv_size, arg);
        if (rc)
            goto fail;
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    if (mrc != MDB_NOTFOUND)
        rc = s_txn_fail(txn, what, mrc);
fail:
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

int sld_store_sub_foreach(sld_txn_t *txn, sld_store_sub_fn *fn, void *arg)
{
    return s_named_foreach(txn, txn->store->db_subs, "subs", SLD_SUB_NAME_MAX, "subscription",
                           fn, arg);
}

/* ------------------------------------------------------------ identities */

int sld_store_ident_put(sld_txn_t *txn, const char *name, const void *record, size_t len)
{
    size_t n = name ? strnlen(name, SLD_IDENT_NAME_MAX + 1) : 0;
    return s_put_keyed(txn, txn->store->db_idents, "idents", name ? name : "", n,
                       SLD_IDENT_NAME_MAX, record, len, "store identity");
}

int sld_store_ident_foreach(sld_txn_t *txn, sld_store_ident_fn *fn, void *arg)
{
    return s_named_foreach(txn, txn->store->db_idents, "idents", SLD_IDENT_NAME_MAX,
                           "identity", fn, arg);
}

/* -------------------------------------------------------------- registry */

int sld_store_reg_put(sld_txn_t *txn, const void *key, size_t klen,
                      const void *val, size_t vlen)
{
    return s_put_keyed(txn, txn->store->db_registry, "registry", key, klen, SLD_REG_KEY_MAX,
                       val, vlen, "store registry record");
}

int sld_store_reg_del(sld_txn_t *txn, const void *key, size_t klen)
{
    int rc = 0, mrc;
    MDB_val k;

    assert(txn && txn->write && key);
    if (txn->err) {
        rc = txn->err;
        goto fail;
    }
    if (klen == 0 || klen > SLD_REG_KEY_MAX) {
        rc = SL_EINVAL;
        goto fail;
    }
    k = s_val(key, klen);
    mrc = mdb_del(txn->mt, txn->store->db_registry, &k, NULL);
    if (mrc == MDB_NOTFOUND)
        rc = SL_ENOTFOUND;
    else if (mrc)
        rc = s_txn_fail(txn, "delete registry record", mrc);
fail:
    return rc;
}

int sld_store_reg_foreach(sld_txn_t *txn, sld_store_reg_fn *fn, void *arg)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val key, val;

    assert(txn && fn);
    mrc = mdb_cursor_open(txn->mt, txn->store->db_registry, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    while (mrc == 0) {
        if (!s_rec_open(txn->store, "registry", &key, &val)) {
            fprintf(stderr, "sluiced: store: a registry record fails its checksum "
                    "(damaged); `sluiced --check` reports the store\n");
            rc = SL_ESTORE;
            goto fail;
        }
        rc = fn(key.mv_data, key.mv_size, val.mv_data, val.mv_size, arg);
        if (rc)
            goto fail;
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    if (mrc != MDB_NOTFOUND)
        rc = s_txn_fail(txn, "list registry", mrc);
fail:
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

int sld_store_cursor_get(sld_txn_t *txn, const char *name, uint32_t id, uint64_t *floor)
{
    int rc, mrc;
    uint8_t k[S_SUB_KEY_MAX];
    size_t klen;
    MDB_val key, val;

    assert(txn && floor);
    rc = s_sub_key(k, name, id, &klen);
    if (rc)
        goto fail;
    key = s_val(k, klen);
    mrc = mdb_get(txn->mt, txn->store->db_cursors, &key, &val);
    if (mrc == MDB_NOTFOUND) {
        rc = SL_ENOTFOUND;
        goto fail;
    }
    if (mrc) {
        rc = s_txn_fail(txn, "read cursor", mrc);
        goto fail;
    }
    if (!s_rec_open(txn->store, "cursors", &key, &val) || val.mv_size != 8) {
        fprintf(stderr, "sluiced: store: damaged cursor of %s\n", name);
        rc = SL_ESTORE;
        goto fail;
    }
    *floor = slc_get_be64(val.mv_data);
fail:
    return rc;
}

int sld_store_cursor_put(sld_txn_t *txn, const char *name, uint32_t id, uint64_t floor)
{
    int rc, mrc;
    uint8_t k[S_SUB_KEY_MAX], v[8];
    size_t klen;
    MDB_val key;

    assert(txn && txn->write);
    rc = txn->err ? txn->err : s_sub_key(k, name, id, &klen);
    if (rc)
        goto fail;
    slc_put_be64(v, floor);
    key = s_val(k, klen);
    mrc = s_rec_put(txn->mt, txn->store->db_cursors, "cursors", &key, v, sizeof v);
    if (mrc)
        rc = s_txn_fail(txn, "store cursor", mrc);
fail:
    return rc;
}

static int s_acked_key(uint8_t *k, const char *name, uint32_t id, uint64_t offset, size_t *len)
{
    int rc = s_sub_key(k, name, id, len);
    if (rc == 0) {
        slc_put_be64(k + *len, offset);
        *len += 8;
    }
    return rc;
}

int sld_store_acked_put(sld_txn_t *txn, const char *name, uint32_t id, uint64_t offset)
{
    int rc, mrc;
    uint8_t k[S_SUB_KEY_MAX];
    size_t klen;
    MDB_val key;

    assert(txn && txn->write);
    rc = txn->err ? txn->err : s_acked_key(k, name, id, offset, &klen);
    if (rc)
        goto fail;
    key = s_val(k, klen);
    mrc = s_rec_put(txn->mt, txn->store->db_acked, "acked", &key, NULL, 0);
    if (mrc)
        rc = s_txn_fail(txn, "store ack", mrc);
fail:
    return rc;
}

int sld_store_acked_del(sld_txn_t *txn, const char *name, uint32_t id, uint64_t offset)
{
    int rc, mrc;
    uint8_t k[S_SUB_KEY_MAX];
    size_t klen;
    MDB_val key;

    assert(txn && txn->write);
    rc = txn->err ? txn->err : s_acked_key(k, name, id, offset, &klen);
    if (rc)
        goto fail;
    key = s_val(k, klen);
    mrc = mdb_del(txn->mt, txn->store->db_acked, &key, NULL);
    if (mrc && mrc != MDB_NOTFOUND)
        rc = s_txn_fail(txn, "delete ack", mrc);
fail:
    return rc;
}

int sld_store_acked_test(sld_txn_t *txn, const char *name, uint32_t id, uint64_t offset)
{
    int rc, mrc;
    uint8_t k[S_SUB_KEY_MAX];
    size_t klen;
    MDB_val key, val;

    assert(txn);
    rc = s_acked_key(k, name, id, offset, &klen);
    if (rc)
        goto fail;
    key = s_val(k, klen);
    mrc = mdb_get(txn->mt, txn->store->db_acked, &key, &val);
    if (mrc == 0 && !s_rec_open(txn->store, "acked", &key, &val)) {
        fprintf(stderr, "sluiced: store: damaged acked offset of %s\n", name);
        rc = SL_ESTORE;
    } else if (mrc == 0) {
        rc = 1;
    } else if (mrc != MDB_NOTFOUND) {
        rc = s_txn_fail(txn, "test ack", mrc);
    }
fail:
    return rc;
}

int sld_store_acked_foreach(sld_txn_t *txn, const char *name, uint32_t id,
                            uint64_t from, sld_store_offset_fn *fn, void *arg)
{
    int rc, mrc;
    uint8_t k[S_SUB_KEY_MAX];
    size_t klen, plen;
    MDB_cursor *cur = NULL;
    MDB_val key, val;

    assert(txn && fn);
    rc = s_acked_key(k, name, id, from, &klen);
    if (rc)
        goto fail;
    plen = klen - 8;
    mrc = mdb_cursor_open(txn->mt, txn->store->db_acked, &cur);
    key = s_val(k, klen);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    while (mrc == 0) {
        if (key.mv_size != klen || memcmp(key.mv_data, k, plen) != 0)
            goto fail;
        if (!s_rec_open(txn->store, "acked", &key, &val)) {
            fprintf(stderr, "sluiced: store: damaged acked offset of %s\n", name);
            rc = SL_ESTORE;
            goto fail;
        }
        rc = fn(slc_get_be64((const uint8_t *) key.mv_data + plen), arg);
        if (rc)
            goto fail;
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    if (mrc != MDB_NOTFOUND)
        rc = s_txn_fail(txn, "list acks", mrc);
fail:
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* -------------------------------------------------------------- retention */

/* Should the head record of T (ingest time INGEST_US) go? */
static bool s_over_limit(const sld_topic_info_t *t, uint64_t ingest_us, uint64_t now_us)
{
    if (t->max_bytes && t->bytes > t->max_bytes)
        return true;
    if (t->max_age_ms && now_us >= ingest_us) {
        uint64_t age_ms = (now_us - ingest_us) / 1000;
        return age_ms >= t->max_age_ms;
    }
    return false;
}

/* May trim delete topic I's record FIRST? Only once sld_pages has
 * checked, in the file (the last commit: this transaction has written
 * nothing yet), the leaves trim deletes from and their neighbours (a
 * delete may merge a page with one): LMDB would write through a damaged
 * page's garbage. Checks the next S_TRIM_CHECK records at a time; a
 * damaged head stops retention for the topic (logged once). */
static bool s_trim_checked(sld_store_t *s, size_t i, uint64_t first)
{
    s_topic_t *t = &s->topics[i];
    uint8_t r[2][S_MSG_KEY_LEN];
    sld_pages_t *pg = NULL;
    uint64_t end;
    long n;

    if (t->trim_blocked)
        return false;
    if (first < t->trim_ok_below)
        return true;
    end = first + S_TRIM_CHECK;
    s_msg_key(r[0], t->info.id, first);
    s_msg_key(r[1], t->info.id, end);
    n = sld_pages_open(s->file, 0, NULL, NULL, &pg);
    if (n == 0)
        n = sld_pages_walk(pg, "msgs", r, S_MSG_KEY_LEN, 1, NULL, NULL);
    sld_pages_destroy(&pg);
    if (n == 0) {
        t->trim_ok_below = end;
        return true;
    }
    if (n > 0 || n == SL_ESTORE) {
        t->trim_blocked = true;
        fprintf(stderr, "sluiced: store: topic %s: the pages at its head (offset %" PRIu64
                ") are damaged; retention stops for this topic. `sluiced --check` "
                "reports the store\n", t->info.name, first);
    }
    return false;
}

static int s_trim_topics(sld_txn_t *txn, uint64_t now_us, size_t *budget, size_t *trimmed)
{
    int rc = 0, mrc;
    sld_store_t *s = txn->store;
    size_t n = s->ntopics;
    MDB_val key, val;
    uint8_t k[S_MSG_KEY_LEN];
    uint64_t ingest;

    for (size_t step = 0; step < n && *budget > 0; step++) {
        size_t i = (s->trim_topic + step) % n;
        uint32_t id = s->topics[i].info.id;
        const sld_topic_info_t *t = &s->topics[i].info;
        sld_topic_info_t *w = NULL;
        if (!t->max_age_ms && !t->max_bytes)
            continue;
        while (*budget > 0 && t->messages > 0) {
            if (!s_trim_checked(s, i, t->first_offset))
                break;
            rc = s_record(txn, id, t->first_offset, &val, &ingest);
            if ((rc == SL_ESTORE && !txn->err) || rc == SL_ENOTFOUND) {
                /* The head does not read: never delete what we cannot see. */
                if (!s->topics[i].trim_blocked)
                    fprintf(stderr, "sluiced: store: topic %s: head record %" PRIu64
                            " does not read; retention stops for this topic. `sluiced "
                            "--check` reports the store\n", t->name, t->first_offset);
                s->topics[i].trim_blocked = true;
                rc = 0;
                break;
            }
            if (rc)
                goto fail;
            if (!s_over_limit(t, ingest, now_us))
                break;
            if (!w)
                t = w = s_topic_work(txn, id);
            w->bytes -= w->bytes < val.mv_size ? w->bytes : val.mv_size;
            s_msg_key(k, id, w->first_offset);
            key = s_val(k, sizeof k);
            mrc = mdb_del(txn->mt, s->db_msgs, &key, NULL);
            if (mrc) {
                rc = s_txn_fail(txn, "trim", mrc);
                goto fail;
            }
            w->first_offset++;
            w->messages--;
            (*budget)--;
            (*trimmed)++;
        }
        if (*budget == 0)
            s->trim_topic = i;  /* resume with this topic next time */
    }
fail:
    return rc;
}

static int s_trim_dedup(sld_txn_t *txn, uint64_t now_us, uint64_t window_us, size_t budget)
{
    int rc = 0, mrc;
    sld_store_t *s = txn->store;
    MDB_cursor *cur = NULL;
    MDB_val key, val, dkey, dval;
    uint64_t t;

    mrc = mdb_cursor_open(txn->mt, s->db_dedup_exp, &cur);
    while (mrc == 0 && budget-- > 0) {
        mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
        if (mrc)
            break;
        if (key.mv_size < 13 || key.mv_size > 12 + SLD_MSG_ID_MAX) {
            /* Never repair silently: stop here and let check() report it. */
            fprintf(stderr, "sluiced: store: damaged dedup_exp key; run --check\n");
            break;
        }
        t = slc_get_be64(key.mv_data);
        if (now_us < t || now_us - t < window_us)
            break;
        /* Remove the dedup entry only if it is this one, not a newer record
         * of the same msg id. Copy the key: the delete may move the page. */
        uint8_t dk[4 + SLD_MSG_ID_MAX];
        size_t dlen = key.mv_size - 8;
        memcpy(dk, (const uint8_t *) key.mv_data + 8, dlen);
        mrc = mdb_cursor_del(cur, 0);
        if (mrc)
            break;
        dkey = s_val(dk, dlen);
        mrc = mdb_get(txn->mt, s->db_dedup, &dkey, &dval);
        if (mrc == 0 && dval.mv_size == S_DEDUP_VAL_LEN && slc_get_be64(dval.mv_data) == t)
            mrc = mdb_del(txn->mt, s->db_dedup, &dkey, NULL);
        else if (mrc == MDB_NOTFOUND)
            mrc = 0;
    }
    if (mrc && mrc != MDB_NOTFOUND)
        rc = s_txn_fail(txn, "trim dedup", mrc);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* Next producer id after PID in byte order; false when PID is the last. */
static bool s_pid_next(uint8_t *pid)
{
    for (int i = SLC_PRODUCER_ID_LEN - 1; i >= 0; i--)
        if (++pid[i] != 0)
            return true;
    return false;
}

static int s_trim_pseq(sld_txn_t *txn, size_t budget)
{
    int rc = 0, mrc;
    sld_store_t *s = txn->store;
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    uint8_t at[S_PSEQ_KEY_LEN];
    uint64_t highest = 0, seq;
    size_t index;
    bool have_highest = false;

    memset(at, 0, sizeof at);
    if (s->has_pseq_resume)
        memcpy(at, s->pseq_resume, sizeof at);
    s->has_pseq_resume = false;
    mrc = mdb_cursor_open(txn->mt, s->db_pseq, &cur);
    while (mrc == 0 && budget-- > 0) {
        key = s_val(at, sizeof at);
        mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
        if (mrc)
            break;
        if (key.mv_size != S_PSEQ_KEY_LEN) {
            fprintf(stderr, "sluiced: store: damaged pseq key; run --check\n");
            mrc = MDB_NOTFOUND;
            break;
        }
        if (!have_highest || memcmp(key.mv_data, at, SLC_PRODUCER_ID_LEN) != 0) {
            rc = s_prod_highest(txn, key.mv_data, &highest, &index);
            if (rc)
                goto fail;
            have_highest = true;
        }
        memcpy(at, key.mv_data, sizeof at);
        /* A run goes when its last seq has left the window. */
        seq = slc_get_be64(at + SLC_PRODUCER_ID_LEN);
        if (val.mv_size == S_PSEQ_VAL_LEN)
            seq += slc_get_be64((const uint8_t *) val.mv_data + 12) - 1;
        if (highest >= s->producer_window && seq <= highest - s->producer_window) {
            mrc = mdb_cursor_del(cur, 0);
            continue;
        }
        /* The rest of this producer is inside its window: next producer. */
        memset(at + SLC_PRODUCER_ID_LEN, 0, 8);
        have_highest = false;
        if (!s_pid_next(at)) {
            mrc = MDB_NOTFOUND;
            break;
        }
    }
    if (mrc == 0) {
        memcpy(s->pseq_resume, at, sizeof at);
        s->has_pseq_resume = true;
    }
    if (mrc && mrc != MDB_NOTFOUND)
        rc = s_txn_fail(txn, "trim producer index", mrc);
fail:
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

int sld_store_trim(sld_store_t *self, uint64_t now_us, uint64_t dedup_window_us,
                   size_t max_records, size_t *trimmed)
{
    int rc;
    sld_txn_t *txn = NULL;
    size_t budget = max_records, count = 0;

    assert(self);
    if (trimmed)
        *trimmed = 0;
    rc = sld_store_begin(self, true, &txn);
    if (rc)
        goto fail;
    rc = s_trim_topics(txn, now_us, &budget, &count);
    if (rc == 0)
        rc = s_trim_dedup(txn, now_us, dedup_window_us, max_records);
    if (rc == 0)
        rc = s_trim_pseq(txn, max_records);
    if (rc)
        goto fail;
    rc = sld_txn_commit(&txn);
    if (rc == 0 && trimmed)
        *trimmed = count;
fail:
    sld_txn_abort(&txn);
    return rc;
}

/* ------------------------------------------------------------------ check */

typedef struct {
    sld_topic_info_t info;      /* as recorded in `topics` */
    uint64_t records, bytes;    /* as counted in `msgs` */
    uint64_t first, last;       /* lowest and highest stored offset */
} s_check_topic_t;

typedef struct {
    sld_store_t *store;
    FILE *out;
    size_t problems;
    s_check_topic_t *topics;    /* sorted by id */
    size_t ntopics, ctopics;
    uint64_t records;           /* in `msgs` */
    uint64_t plain, sealed;     /* records of each kind */
    uint64_t unsummed;          /* plain records without a checksum */
    uint8_t *buf;               /* an opened envelope; wiped at the end */
    size_t cbuf;
    sld_store_verify_fn *verify;
    s_check_topic_t *t;         /* the topic of the last record */
} s_check_t;

static void s_problem(s_check_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_problem(s_check_t *c, const char *fmt, ...)
{
    va_list ap;
    c->problems++;
    if (!c->out)
        return;
    fputs("problem: ", c->out);
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
}

/* A problem of data.mdb's structure (sld_pages_problem_fn). */
static void s_check_page_problem(void *arg, const char *text)
{
    s_problem(arg, "%s", text);
}

static s_check_topic_t *s_check_find(s_check_t *c, uint32_t id)
{
    size_t lo = 0, hi = c->ntopics;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->topics[mid].info.id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->ntopics && c->topics[lo].info.id == id ? &c->topics[lo] : NULL;
}

static int s_check_topic_cmp(const void *a, const void *b)
{
    uint32_t x = ((const s_check_topic_t *) a)->info.id;
    uint32_t y = ((const s_check_topic_t *) b)->info.id;
    return x < y ? -1 : x > y;
}

/* One record of `topics`, read from the file (sld_pages_record_fn). */
static int s_check_topic_rec(const void *key, size_t klen, const void *val, size_t vlen,
                             void *arg)
{
    s_check_t *c = arg;
    MDB_val k = s_val(key, klen), v = s_val(val, vlen);
    c->topics = s_grow(c->topics, &c->ctopics, c->ntopics + 1, sizeof *c->topics);
    memset(&c->topics[c->ntopics], 0, sizeof c->topics[0]);
    if (s_topic_decode(&k, &v, &c->topics[c->ntopics].info, !c->store->format_sums) == 0)
        c->ntopics++;
    else
        s_problem(c, "topic record '%.*s' is damaged", (int) (klen > 200 ? 200 : klen),
                  (const char *) key);
    return 0;
}

/* After the topics: in id order, ids unique, memory equal to the file. */
static void s_check_topics_done(sld_store_t *s, s_check_t *c)
{
    if (c->ntopics > 1)
        qsort(c->topics, c->ntopics, sizeof *c->topics, s_check_topic_cmp);
    for (size_t i = 0; i < c->ntopics; i++) {
        const sld_topic_info_t *t = &c->topics[i].info;
        const sld_topic_info_t *mem = sld_store_topic_by_id(s, t->id);
        if (i > 0 && t->id == c->topics[i - 1].info.id)
            s_problem(c, "topics %s and %s share id %" PRIu32,
                      c->topics[i - 1].info.name, t->name, t->id);
        /* Memory equals the last commit only when no write txn is open. */
        if (!s->writing && (!mem || memcmp(mem, t, sizeof *t) != 0))
            s_problem(c, "topic %s: in-memory metadata differs from the stored record",
                      t->name);
        c->topics[i].first = UINT64_MAX;
    }
}

/* Room for N bytes of opened envelope in C's buffer. */
static int s_check_room(s_check_t *c, size_t n)
{
    size_t cap = c->cbuf ? c->cbuf : 4096;
    uint8_t *p;
    if (n <= c->cbuf)
        return 0;
    while (cap < n)
        cap *= 2;
    p = malloc(cap);
    if (!p)
        return SL_ENOMEM;
    if (c->buf) {
        sodium_memzero(c->buf, c->cbuf);
        free(c->buf);
    }
    c->buf = p;
    c->cbuf = cap;
    return 0;
}

/* One record's envelope: its checksum verified or, sealed, opened (with
 * the store's keys), then given to VERIFY. 0, or SL_ENOMEM (problems are
 * counted, not returned). */
static int s_check_envelope(const sld_store_t *s, s_check_t *c, const s_check_topic_t *t,
                            uint64_t off, const uint8_t *rec, size_t n)
{
    int rc = 0;
    const uint8_t *env = rec + SLD_RECORD_HEADER;
    size_t len = n - SLD_RECORD_HEADER;
    unsigned mark = len ? rec[SLD_RECORD_HEADER] : 0x100;
    uint8_t sum[S_SUM_LEN];
    uint32_t key_id;

    if (mark == S_SEAL_MARK) {
        c->sealed++;
        if (!s->secret) {
            s_problem(c, "topic %s: record %" PRIu64 " looks sealed but the store has "
                      "no data keys", t->info.name, off);
            goto fail;
        }
        if (len < SLD_RECORD_SEAL_OVERHEAD) {
            s_problem(c, "topic %s: record %" PRIu64 " is too short to be sealed",
                      t->info.name, off);
            goto fail;
        }
        len -= SLD_RECORD_SEAL_OVERHEAD;
        rc = s_check_room(c, len + 1);
        if (rc)
            goto fail;
        if (s_record_open(s, s->nkeys, t->info.id, off, rec, n, c->buf, &key_id) != 0) {
            s_problem(c, "topic %s: record %" PRIu64 " (data key %" PRIu32 ") does not "
                      "open: damaged, or moved from another topic, offset or time",
                      t->info.name, off, key_id);
            goto fail;
        }
        env = c->buf;
    } else if (mark == S_SUM_MARK) {
        c->plain++;
        if (len < SLD_RECORD_SUM_OVERHEAD) {
            s_problem(c, "topic %s: record %" PRIu64 " is too short to hold its "
                      "checksum", t->info.name, off);
            goto fail;
        }
        s_sum(sum, t->info.id, off, rec, n - S_SUM_LEN);
        if (memcmp(sum, rec + n - S_SUM_LEN, S_SUM_LEN) != 0) {
            s_problem(c, "topic %s: record %" PRIu64 " fails its checksum: damaged, or "
                      "moved from another topic or offset", t->info.name, off);
            goto fail;
        }
        if (s->secret && !s_plain_allowed(s, t->info.id, off))
            s_problem(c, "topic %s: record %" PRIu64 " is not sealed but lies where "
                      "only sealed records were written", t->info.name, off);
        env = rec + SLD_RECORD_HEADER + 1;
        len -= SLD_RECORD_SUM_OVERHEAD;
    } else if (mark <= S_MARK_MAX) {
        s_problem(c, "topic %s: record %" PRIu64 " starts with a marker byte no record "
                  "has: damaged", t->info.name, off);
        goto fail;
    } else {
        c->plain++;
        c->unsummed++;
        if (!s_unsummed_allowed(s, t->info.id, off))
            s_problem(c, "topic %s: record %" PRIu64 " has no checksum but lies where "
                      "every record was written with one", t->info.name, off);
        if (s->secret && !s_plain_allowed(s, t->info.id, off))
            s_problem(c, "topic %s: record %" PRIu64 " is not sealed but lies where "
                      "only sealed records were written", t->info.name, off);
    }
    if (c->verify && c->verify(env, len) != 0)
        s_problem(c, "topic %s: record %" PRIu64 ": envelope does not decode",
                  t->info.name, off);
fail:
    return rc;
}

/* One record of `msgs`, read from the file (sld_pages_record_fn). */
static int s_check_msg_rec(const void *key, size_t klen, const void *val, size_t vlen,
                           void *arg)
{
    s_check_t *c = arg;
    s_check_topic_t *t = c->t;
    uint32_t id;
    uint64_t off;

    c->records++;
    if (klen != S_MSG_KEY_LEN) {
        s_problem(c, "message key of %zu bytes", klen);
        return 0;
    }
    id = slc_get_be32(key);
    off = slc_get_be64((const uint8_t *) key + 4);
    if (!t || t->info.id != id)
        t = c->t = s_check_find(c, id);
    if (!t) {
        s_problem(c, "record %" PRIu32 "/%" PRIu64 ": no such topic", id, off);
        return 0;
    }
    if (t->records > 0 && off != t->last + 1)
        s_problem(c, "topic %s: offsets %" PRIu64 "..%" PRIu64 " missing",
                  t->info.name, t->last + 1, off - 1);
    if (t->records == 0)
        t->first = off;
    t->last = off;
    t->records++;
    t->bytes += vlen;
    if (off >= t->info.next_offset)
        s_problem(c, "topic %s: record %" PRIu64 " at or past next offset %" PRIu64,
                  t->info.name, off, t->info.next_offset);
    if (vlen < SLD_RECORD_HEADER) {
        s_problem(c, "topic %s: record %" PRIu64 " has %zu bytes, no header",
                  t->info.name, off, vlen);
        return 0;
    }
    return s_check_envelope(c->store, c, t, off, val, vlen);
}

/* After the records: every topic's counters against what the log holds. */
static void s_check_msgs_done(s_check_t *c)
{
    for (size_t i = 0; i < c->ntopics; i++) {
        const s_check_topic_t *x = &c->topics[i];
        uint64_t first = x->records ? x->first : x->info.next_offset;
        if (x->records && x->last + 1 != x->info.next_offset)
            s_problem(c, "topic %s: offsets %" PRIu64 "..%" PRIu64 " missing",
                      x->info.name, x->last + 1, x->info.next_offset - 1);
        if (x->records != x->info.messages)
            s_problem(c, "topic %s: %" PRIu64 " messages recorded, %" PRIu64 " stored",
                      x->info.name, x->info.messages, x->records);
        if (x->bytes != x->info.bytes)
            s_problem(c, "topic %s: %" PRIu64 " bytes recorded, %" PRIu64 " stored",
                      x->info.name, x->info.bytes, x->bytes);
        if (first != x->info.first_offset)
            s_problem(c, "topic %s: first offset %" PRIu64 " recorded, %" PRIu64 " stored",
                      x->info.name, x->info.first_offset, first);
    }
}

/* Cursors and acked offsets: NAME '\0' id [offset] -> known sub and topic. */
static int s_check_subs(sld_store_t *s, MDB_txn *mt, s_check_t *c, bool acked)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v, sk, sv;
    const char *what = acked ? "acked offset" : "cursor";
    size_t tail = acked ? 13 : 5;

    mrc = mdb_cursor_open(mt, acked ? s->db_acked : s->db_cursors, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *p = k.mv_data;
        const s_check_topic_t *t;
        uint64_t at;
        int n;
        if (!s_rec_open(s, acked ? "acked" : "cursors", &k, &v)) {
            s_problem(c, "%s entry fails its checksum (damaged)", what);
            continue;
        }
        if (k.mv_size <= tail || p[k.mv_size - tail] != 0 || (!acked && v.mv_size != 8)) {
            s_problem(c, "damaged %s entry", what);
            continue;
        }
        n = (int) (k.mv_size - tail);
        t = s_check_find(c, slc_get_be32(p + n + 1));
        at = acked ? slc_get_be64(p + n + 5) : slc_get_be64(v.mv_data);
        sk = s_val(p, (size_t) n);
        mrc = mdb_get(mt, s->db_subs, &sk, &sv);
        if (mrc && mrc != MDB_NOTFOUND)
            break;
        if (mrc == MDB_NOTFOUND)
            s_problem(c, "%s of unknown subscription %.*s", what, n, (const char *) p);
        if (!t)
            s_problem(c, "subscription %.*s: %s on unknown topic %" PRIu32, n,
                      (const char *) p, what, slc_get_be32(p + n + 1));
        else if (acked ? at >= t->info.next_offset : at > t->info.next_offset)
            s_problem(c, "subscription %.*s: %s %" PRIu64 " past topic %s's next "
                      "offset %" PRIu64, n, (const char *) p, what, at, t->info.name,
                      t->info.next_offset);
    }
    if (mrc != MDB_NOTFOUND)
        rc = s_mdb_fail("check subscriptions", mrc);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* Every value of DBI (TAG: subscriptions, identities, registry) with
 * its checksum right. */
static int s_check_sums(sld_store_t *s, MDB_txn *mt, s_check_t *c, MDB_dbi dbi,
                        const char *tag)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v;

    mrc = mdb_cursor_open(mt, dbi, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if (!s_rec_open(s, tag, &k, &v))
            s_problem(c, "%s: the record '%.*s' fails its checksum (damaged)", tag,
                      (int) (k.mv_size > 100 ? 100 : k.mv_size), (const char *) k.mv_data);
    if (mrc != MDB_NOTFOUND)
        rc = s_mdb_fail("check records", mrc);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

static int s_check_pseq(sld_store_t *s, MDB_txn *mt, s_check_t *c)
{
    int rc = 0, mrc;
    MDB_cursor *cur = NULL;
    MDB_val k, v;

    mrc = mdb_cursor_open(mt, s->db_pseq, &cur);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const s_check_topic_t *t;
        uint64_t off;
        if (k.mv_size != S_PSEQ_KEY_LEN || v.mv_size != S_PSEQ_VAL_LEN) {
            s_problem(c, "damaged producer index entry");
            continue;
        }
        t = s_check_find(c, slc_get_be32(v.mv_data));
        off = slc_get_be64((const uint8_t *) v.mv_data + 4);
        uint64_t n = slc_get_be64((const uint8_t *) v.mv_data + 12);
        if (n == 0 || off + n < off)
            s_problem(c, "producer index run of %" PRIu64 " at offset %" PRIu64, n, off);
        else if (!t)
            s_problem(c, "producer index points at unknown topic %" PRIu32,
                      slc_get_be32(v.mv_data));
        else if (off + n > t->info.next_offset)
            s_problem(c, "producer index points at %s/%" PRIu64 ", never stored",
                      t->info.name, off + n - 1);
    }
    if (mrc != MDB_NOTFOUND)
        rc = s_mdb_fail("check producers", mrc);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* Walk every database of data.mdb with sld_pages in the snapshot MT
 * pins; the records of `topics` and `msgs` go to the logical checks.
 * *SOUND says whether the databases the LMDB-level checks read
 * (subscriptions, cursors, acked offsets, producer index) are well
 * formed. 0, SL_EBUSY (a writer moved on: pin again), or an error. */
static int s_check_pages(sld_store_t *s, MDB_txn *mt, s_check_t *c, bool *sound)
{
    static const char *const lmdb_read[] = { "subs", "cursors", "acked", "pseq", "idents",
                                             "registry" };
    sld_pages_t *pg = NULL;
    size_t count;
    const char *const *names;
    long n = 0;
    int rc;

    *sound = false;
    rc = sld_pages_open(s->file, mdb_txn_id(mt), s_check_page_problem, c, &pg);
    if (rc == SL_ESTORE && !pg)
        return 0;       /* reported: the file's metas are damaged */
    if (rc && rc != SL_ESTORE)
        return rc;
    /* A damaged main database may misplace every database LMDB opens. */
    *sound = rc == 0;
    n = sld_pages_walk(pg, "topics", NULL, 0, 0, s_check_topic_rec, c);
    if (n >= 0 || n == SL_ENOTFOUND) {
        s_check_topics_done(s, c);
        n = sld_pages_walk(pg, "msgs", NULL, 0, 0, s_check_msg_rec, c);
    }
    if (n >= 0 || n == SL_ENOTFOUND) {
        s_check_msgs_done(c);
        n = 0;
    }
    names = sld_pages_names(pg, &count);
    for (size_t i = 0; i < count && n >= 0; i++) {
        if (strcmp(names[i], "topics") == 0 || strcmp(names[i], "msgs") == 0)
            continue;
        n = sld_pages_walk(pg, names[i], NULL, 0, 0, NULL, NULL);
        for (size_t k = 0; n > 0 && k < sizeof lmdb_read / sizeof lmdb_read[0]; k++)
            if (strcmp(names[i], lmdb_read[k]) == 0)
                *sound = false;
    }
    if (n >= 0)
        n = sld_pages_walk_free(pg);
    sld_pages_destroy(&pg);
    return n < 0 ? (int) n : 0;
}

int sld_store_check(sld_store_t *self, sld_store_verify_fn *verify, FILE *out)
{
    int rc, mrc;
    MDB_txn *mt = NULL;
    MDB_stat st;
    s_check_t c;
    bool sound = false;

    assert(self);
    memset(&c, 0, sizeof c);
    c.store = self;
    c.out = out;
    c.verify = verify;
    st.ms_entries = 0;
    for (int attempt = 0;; attempt++) {
        mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &mt);
        if (mrc) {
            rc = s_mdb_fail("begin check", mrc);
            goto fail;
        }
        rc = s_check_pages(self, mt, &c, &sound);
        if (rc != SL_EBUSY || attempt == 10)
            break;
        mdb_txn_abort(mt);
        mt = NULL;
    }
    if (rc)
        goto fail;
    /* What LMDB reads below was found well formed; else it is skipped. */
    if (sound) {
        rc = s_check_subs(self, mt, &c, false);
        if (rc == 0)
            rc = s_check_subs(self, mt, &c, true);
        if (rc == 0)
            rc = s_check_pseq(self, mt, &c);
        if (rc == 0)
            rc = s_check_sums(self, mt, &c, self->db_subs, "subs");
        if (rc == 0)
            rc = s_check_sums(self, mt, &c, self->db_idents, "idents");
        if (rc == 0)
            rc = s_check_sums(self, mt, &c, self->db_registry, "registry");
        if (rc)
            goto fail;
        mrc = mdb_stat(mt, self->db_subs, &st);
        if (mrc) {
            rc = s_mdb_fail("check subscriptions", mrc);
            goto fail;
        }
    } else if (out) {
        fprintf(out, "store check: subscriptions, cursors, identities, the registry and "
                "the producer index not checked: their pages are damaged\n");
    }
    if (out && (self->secret || c.sealed))
        fprintf(out, "store check: %zu topics, %" PRIu64 " records (%" PRIu64 " plain, %"
                PRIu64 " sealed; data key %" PRIu32 " current), %zu subscriptions, "
                "%zu problems", c.ntopics, c.records, c.plain, c.sealed, self->nkeys,
                (size_t) st.ms_entries, c.problems);
    else if (out)
        fprintf(out, "store check: %zu topics, %" PRIu64 " records, %zu subscriptions, "
                "%zu problems", c.ntopics, c.records, (size_t) st.ms_entries, c.problems);
    if (out && c.unsummed)
        fprintf(out, "; %" PRIu64 " plain records stored before checksums (format %d) "
                "have none", c.unsummed, S_FORMAT);
    if (out)
        fputc('\n', out);
    rc = c.problems ? SL_ESTORE : 0;
fail:
    if (mt)
        mdb_txn_abort(mt);
    free(c.topics);
    if (c.buf) {
        sodium_memzero(c.buf, c.cbuf);
        free(c.buf);
    }
    return rc;
}
