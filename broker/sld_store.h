/*  sld_store - the broker's durable state in one LMDB environment: topic logs,
 *  topic metadata, producer sequences, msg-id dedup windows, and named
 *  tables other modules keep their records in; every record checksummed,
 *  optionally sealed at rest, damage reported and never served. Owns the
 *  MDB_env, an in-memory copy of each topic's metadata (equal to the
 *  committed state: a write transaction's changes reach it on commit) and
 *  the encryption keys. Broker thread, with one exception (see Threads).
 *  It knows nothing of sessions, delivery or the wire.
 *
 *  Threads. Everything is for the broker thread (one write transaction at
 *  a time; read transactions never outlive a loop turn), except that while
 *  the broker thread is inside sld_txn_sync_lmdb (LMDB writing and syncing
 *  a commit: it calls nothing else meanwhile) ONE other thread, the
 *  server's helper running sld_delivery_pump_ahead, may call:
 *  sld_store_begin (read only), sld_store_read, sld_txn_why,
 *  sld_txn_verified, sld_txn_abort / sld_txn_commit of that read
 *  transaction, sld_store_topic_by_id / _by_name / _count / _at. Safe
 *  because: the store is opened MDB_NOTLS, so a read transaction may run
 *  on any thread beside the write one and sees the commit before; the
 *  committed in-memory state (topics, data keys, bounds) changes only in
 *  sld_txn_sync_apply, which the broker thread calls after it has waited
 *  for the helper; the write transaction's pending changes live apart
 *  (working copies) and the LMDB commit touches no in-memory state; what a
 *  read transaction shares with others (the reader count, the spare arena
 *  chunk) is touched only by read transactions, which are then all the
 *  helper's. sld_txn_sync (apply included) or sld_txn_commit must therefore
 *  not run while the helper reads.  */
#ifndef SLD_STORE_H
#define SLD_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "slc.h"

typedef struct sld_store sld_store_t;
typedef struct sld_txn sld_txn_t;

/* Bytes before the envelope in a stored record: u64 ingest time (µs, BE). */
#define SLD_RECORD_HEADER 8
/* Bytes a sealed record adds after the header: 0x00 marker, u32 data key
 * id, 24-byte nonce, 16-byte tag (encrypted stores; see store/sld_store_int.h). */
#define SLD_RECORD_SEAL_OVERHEAD 45
/* Bytes a plain record adds: 0x01 marker after the header, 8-byte
 * checksum after the envelope (stores of format 4; see store/sld_store_int.h). */
#define SLD_RECORD_SUM_OVERHEAD 9
#define SLD_OFFSET_NONE UINT64_MAX
/* Longest msg id the dedup functions take, bytes (longer: SL_EINVAL). */
#define SLD_MSG_ID_MAX 256
typedef struct {
    const char *dir;            /* data directory; created if missing */
    size_t map_size;            /* initial LMDB map size; default 64 MiB */
    size_t map_size_max;        /* ceiling for growth; default 16 GiB */
    bool sync;                  /* fsync on commit; default true */
    uint64_t producer_window;   /* sequences remembered per producer; default 1,000,000 */
    bool exclusive;             /* hold DIR/sluiced.lock: one broker per data dir;
                                   default false (readers such as --check) */
    const uint8_t *seal_key;    /* 32-byte master key (sld_seal_key_load): seal
                                   records at rest; borrowed during
                                   sld_store_open only (the store keeps a
                                   locked copy); default NULL = off */
    bool read_only;             /* to read and check (sluiced --check): no
                                   write transactions, and a store of an
                                   older format is not moved to the
                                   current one; default false */
} sld_store_options_t;

/* What the broker knows about one topic (committed state). */
typedef struct {
    uint32_t id;                /* stable, never reused; starts at 1 (0 is never a topic) */
    char name[SLC_TOPIC_MAX + 1];
    uint64_t first_offset;      /* oldest stored offset (== next_offset when empty) */
    uint64_t next_offset;       /* offset the next append gets; offsets start at 0 */
    uint64_t messages;          /* stored records */
    uint64_t bytes;             /* stored record bytes (header + envelope, and
                                   SLD_RECORD_SEAL_OVERHEAD when sealed or
                                   SLD_RECORD_SUM_OVERHEAD with a checksum) */
    uint64_t max_age_ms;        /* retention by age; 0 = unlimited */
    uint64_t max_bytes;         /* retention by size; 0 = unlimited */
} sld_topic_info_t;

void sld_store_options_init(sld_store_options_t *opts);

/* Open (creating when absent) the store in opts->dir. Refuses a data dir
 * written by an incompatible format or damaged: SL_ESTORE with the reason
 * logged to stderr. Damaged means: data.mdb shorter than the environment
 * it holds, damaged meta pages, or a damaged page in any structure a
 * writer touches (every page but the leaves inside topic logs, which
 * readers meet guarded: see sld_store_read); each problem is logged.
 * Then the cheap part of sld_store_check runs (topic counters, the first
 * and last record of each topic): what it finds is logged as damage and
 * counted (sld_store_damage) but the store opens, so what still reads can
 * be served. With opts->exclusive, a data dir another process holds so is
 * SL_EBUSY (its pid logged).
 * Checksums: a store written before records had them (format 2) moves to
 * format 4 at its first open that is not read_only: records stored
 * before stay readable without one, every new one has one, and a build
 * that knows nothing of checksums refuses the store from then on.
 * Encryption at rest: with opts->seal_key, a store without data keys gets
 * data key 1 (records already stored stay plain and readable; every new
 * one is sealed); a store with data keys must open them with that key, or
 * the open is refused (SL_ESTORE, "wrong key?" logged). Without
 * opts->seal_key a store that has data keys is refused (SL_ESTORE).
 * Nothing is changed by a refused open.
 * 0 and *out (caller owns), SL_ESYS, SL_ESTORE, SL_EBUSY, SL_ENOMEM,
 * SL_EINTERNAL (libsodium would not start). */
int sld_store_open(const sld_store_options_t *opts, sld_store_t **out);

/* Close the environment (after a final sync). NULL-safe; nulls *self_p. */
void sld_store_destroy(sld_store_t **self_p);

/* Random 16-byte id of this data dir, made on first open (hex in *hex, 33 B). */
void sld_store_instance_id(const sld_store_t *self, char hex[33]);

/* ---------------------------------------------------------- transactions */

/* Begin a write (WRITE) or read transaction. At most one write transaction
 * is open at a time. 0 and *out (caller owns: commit or abort), SL_ESTORE,
 * SL_EINVAL (a write transaction on a read_only store). */
int sld_store_begin(sld_store_t *self, bool write, sld_txn_t **out);

/* Why the last read of TXN that returned SL_ESTORE failed ("fails its
 * checksum", ...): static text, or "" when none failed. */
const char *sld_txn_why(const sld_txn_t *txn);

/* Whether the record the last successful sld_store_read in TXN returned
 * carried a checksum or a seal that verified. False for a record stored
 * before format 4 without one: nothing vouches for its bytes. */
bool sld_txn_verified(const sld_txn_t *txn);

/* Problems the start check found (0: none seen; sld_store_check looks at
 * everything). */
size_t sld_store_damage(const sld_store_t *self);

/* Commit and free *txn_p (always, whatever the result); applies the
 * transaction's topic-metadata changes (and a rotated data key) to the
 * in-memory state on success. Every envelope sld_store_read returned in
 * the transaction becomes invalid, as on abort. The same as
 * sld_txn_flush, then (when it returned 0) sld_txn_sync; on a flush
 * failure the transaction is aborted here.
 * 0, SL_EFULL (map full: nothing was written, see sld_store_grow),
 * SL_ESTORE. */
int sld_txn_commit(sld_txn_t **txn_p);

/* A commit in two steps, for a caller that has work to overlap with the
 * disk (the server's pump-ahead on the helper thread).
 *
 * sld_txn_flush: everything before LMDB's commit: returns TXN's sticky
 * error if a write failed before, else writes each changed topic record
 * and producer entry once (the working metadata). TXN stays the caller's:
 * on 0 call sld_txn_sync (nothing else in TXN after it); on error call
 * sld_txn_abort (nothing reaches the disk). 0 for a read transaction.
 * 0, SL_EFULL, SL_ESTORE.
 *
 * sld_txn_sync: mdb_txn_commit (LMDB writes and, with opts->sync, fsyncs),
 * then, when that succeeded, makes the transaction's metadata the
 * committed in-memory state (sld_store_topic_by_id & co., the producers'
 * highest seqs, a rotated data key), and frees *txn_p always. Every
 * envelope sld_store_read returned in TXN becomes invalid.
 * 0, SL_EFULL (nothing was written), SL_ESTORE.
 *
 * sld_txn_sync is sld_txn_sync_lmdb then sld_txn_sync_apply. Another
 * thread may read the store while LMDB writes (see Threads at the top), but
 * not while the committed state changes: a caller that runs a reader
 * across the commit calls sld_txn_sync_lmdb (LMDB commit only; TXN stays
 * the caller's, the in-memory state is untouched; returns as
 * sld_txn_sync), waits for the reader, then sld_txn_sync_apply (applies
 * when the LMDB commit succeeded, frees *txn_p always, returns the LMDB
 * commit's result). */
int sld_txn_flush(sld_txn_t *txn);
int sld_txn_sync(sld_txn_t **txn_p);
int sld_txn_sync_lmdb(sld_txn_t *txn);
int sld_txn_sync_apply(sld_txn_t **txn_p);

/* Abort and free; discards the transaction's metadata changes. NULL-safe. */
void sld_txn_abort(sld_txn_t **txn_p);

/* Every write function below returns SL_EFULL when LMDB reports the map
 * full; the transaction is then unusable: abort it, call sld_store_grow and,
 * if that returned 0, redo the work in a new transaction. */

/* Grow the map (doubling, capped at map_size_max). Call with no transaction
 * open. 0 when it grew, SL_EFULL when already at the ceiling, SL_ESTORE. */
int sld_store_grow(sld_store_t *self);

/* LMDB reuses the pages a commit freed only once another commit has
 * followed it, so after a retention pass on a full map every write can fail
 * with SL_EFULL while the freelist is large. This commits a transaction
 * that changes nothing stored but still counts as a commit (it writes and
 * removes a key in the meta table), and the next one can use those pages.
 * Call with no transaction open. 0, SL_EFULL (not even that fitted),
 * SL_ESTORE. */
int sld_store_settle(sld_store_t *self);

/* Raise (or lower, not below the current size) the ceiling at run time. */
void sld_store_set_map_max(sld_store_t *self, size_t map_size_max);

/* ---------------------------------------------------------------- topics */

/* Find topic NAME, creating it inside TXN (a write txn) when absent.
 * *id is its id. 0, SL_EINVAL (bad name: reserved names are allowed here,
 * the caller decides who may use them), SL_EFULL, SL_ESTORE. */
int sld_store_topic_ensure(sld_txn_t *txn, const char *name, uint32_t *id);

/* Set retention of topic ID (0 = unlimited). 0, SL_ENOTFOUND, SL_EFULL. */
int sld_store_topic_set_retention(sld_txn_t *txn, uint32_t id,
                                  uint64_t max_age_ms, uint64_t max_bytes);

/* Committed metadata of topic ID / NAME: borrowed, valid until the next
 * commit. NULL when unknown. */
const sld_topic_info_t *sld_store_topic_by_id(const sld_store_t *self, uint32_t id);
const sld_topic_info_t *sld_store_topic_by_name(const sld_store_t *self, const char *name);

/* Offset the next append to topic ID would get inside TXN (sees the txn's
 * own appends). SLD_OFFSET_NONE when the topic is unknown. */
uint64_t sld_store_topic_next_offset(sld_txn_t *txn, uint32_t id);

/* Number of topics and iteration in id order: *index from 0 upward.
 * Returns the topic (borrowed, as above) or NULL past the end. */
size_t sld_store_topic_count(const sld_store_t *self);
const sld_topic_info_t *sld_store_topic_at(const sld_store_t *self, size_t index);

/* -------------------------------------------------------------- messages */

/* Append one record to topic ID inside TXN: the stored value is the
 * SLD_RECORD_HEADER bytes (INGEST_US) followed by ENVELOPE (LEN bytes,
 * borrowed, copied); in an encrypted store ENVELOPE is sealed with TXN's
 * current data key (SLD_RECORD_SEAL_OVERHEAD bytes more). *offset is its
 * offset. 0, SL_ENOTFOUND, SL_EFULL, SL_ESTORE, SL_EINTERNAL (sealing
 * failed; the transaction is then unusable, abort it). */
int sld_store_append(sld_txn_t *txn, uint32_t id, uint64_t ingest_us,
                     const void *envelope, size_t len, uint64_t *offset);

/* Read the record at OFFSET of topic ID: *envelope / *len the envelope
 * (borrowed, valid until TXN ends: it points into the map, or, for a
 * sealed record, into plaintext TXN owns and wipes when it ends; any
 * number of reads may be held at once), *ingest_us its time (may be NULL).
 * The record is verified first: its checksum, or its seal.
 * 0; SL_ENOTFOUND: OFFSET is below the topic's first offset (trimmed) or
 * at or past its next (never stored); SL_ESTORE: the record should be
 * there and cannot be read, or does not verify (missing, damaged, a
 * checksum or seal that fails, or LMDB failed or faulted on the way to
 * it: sld_txn_why says which; logged, once per transaction); SL_EBUSY:
 * TXN met too much damage to go on, nothing was read: end it and try in a
 * new one; SL_ENOMEM.
 * A read transaction survives damage: when LMDB fails or faults on a
 * damaged page, TXN keeps what it returned so far valid and goes on in a
 * fresh LMDB transaction (of the latest commit). */
int sld_store_read(sld_txn_t *txn, uint32_t id, uint64_t offset,
                   const void **envelope, size_t *len, uint64_t *ingest_us);

/* First stored offset >= OFFSET of topic ID (skips trimmed gaps), or
 * SLD_OFFSET_NONE when there is none. */
uint64_t sld_store_seek(sld_txn_t *txn, uint32_t id, uint64_t offset);

/* First offset of topic ID whose ingest time is >= TIME_US (binary search);
 * next_offset when every record is older. */
uint64_t sld_store_offset_at_time(sld_txn_t *txn, uint32_t id, uint64_t time_us);

/* ------------------------------------------------------------- producers */

/* Look up (PRODUCER_ID, SEQ). Returns 0 when new, 1 when already stored:
 * then *topic_id / *offset name the original (topic 0 and offset
 * SLD_OFFSET_NONE when SEQ is older than the producer window and its entry
 * was trimmed). Negative on error. A seq above the producer's highest is
 * known new without a lookup; a seq inside the window that was never
 * recorded (a gap: that publish was refused) is new. Works in a read txn
 * too. */
int sld_store_producer_check(sld_txn_t *txn, const uint8_t producer_id[16],
                             uint64_t seq, uint32_t *topic_id, uint64_t *offset);

/* Record that (PRODUCER_ID, SEQ) is stored at (TOPIC_ID, OFFSET) (write
 * txn). The producer's highest seq becomes visible to others on commit.
 * 0, SL_EFULL, SL_ESTORE. */
int sld_store_producer_record(sld_txn_t *txn, const uint8_t producer_id[16],
                              uint64_t seq, uint32_t topic_id, uint64_t offset);

/* Highest committed sequence of PRODUCER_ID (0 when unknown). */
uint64_t sld_store_producer_last_seq(sld_store_t *self, const uint8_t producer_id[16]);

/* --------------------------------------------------------- msg-id dedup */

/* Was MSG_ID (LEN bytes) stored on topic ID within the last WINDOW_US
 * before NOW_US? 1 and *offset when it was, 0 when not, negative on error
 * (SL_EINVAL when LEN is 0 or above SLD_MSG_ID_MAX). An encrypted store
 * keeps a keyed hash of MSG_ID, never the id itself; entries recorded
 * before encryption began are not found. */
int sld_store_dedup_check(sld_txn_t *txn, uint32_t id, const void *msg_id,
                          size_t len, uint64_t now_us, uint64_t window_us,
                          uint64_t *offset);

/* Remember MSG_ID on topic ID at NOW_US for OFFSET (write txn; replaces an
 * older entry for the same id). 0, SL_EINVAL, SL_EFULL, SL_ESTORE. */
int sld_store_dedup_record(sld_txn_t *txn, uint32_t id, const void *msg_id,
                           size_t len, uint64_t now_us, uint64_t offset);

/* ---------------------------------------------------------- named tables */

/* The named tables other modules keep their records in. The record
 * formats are the modules' (sld_subrec, sld_auth, sld_registry); the
 * store keeps each value with a checksum, verified on every read, and
 * answers in key order (byte order of the keys). The names are LMDB
 * database names of the store format: never renamed. */
typedef enum {
    SLD_TABLE_SUBS,             /* "subs": subscription name -> config (sld_subrec) */
    SLD_TABLE_CURSORS,          /* "cursors": name '\0' topic id -> acked floor (sld_subrec) */
    SLD_TABLE_ACKED,            /* "acked": name '\0' topic id offset -> "" (sld_subrec) */
    SLD_TABLE_IDENTS,           /* "idents": identity name -> record (sld_auth) */
    SLD_TABLE_REGISTRY,         /* "registry": key -> value (sld_registry) */
    SLD_TABLE_ROUTES,           /* "routes": table version u32 BE -> record (sld_routes) */
    SLD_TABLE_TRACE,            /* "trace": topic id u32 BE + offset u64 BE -> what
                                   routing did with that message (sld_trace); retention
                                   deletes a message's record with the message */
    SLD_TABLE_DLQ,              /* "dlq": topic id u32 BE + offset u64 BE -> "": dead
                                   letters removed (sld_dlq); retention deletes a
                                   mark with its message */
} sld_table_t;

/* Longest key of a named table, bytes (LMDB's limit). */
#define SLD_TABLE_KEY_MAX 511

/* Put KEY (KLEN bytes, 1..SLD_TABLE_KEY_MAX) -> VAL (VLEN bytes, may be
 * 0) into TABLE inside write TXN, replacing any earlier value; both
 * borrowed, copied. 0, SL_EINVAL (key length), SL_EFULL, SL_ESTORE, or
 * TXN's earlier failure. */
int sld_table_put(sld_txn_t *txn, sld_table_t table, const void *key, size_t klen,
                  const void *val, size_t vlen);

/* Look KEY up in TABLE (any txn): 0 and *val / *vlen (borrowed: valid
 * until TXN ends or, in a write txn, its next write), SL_ENOTFOUND,
 * SL_EINVAL (key length), SL_ESTORE (the value fails its checksum:
 * logged, or LMDB failed). */
int sld_table_get(sld_txn_t *txn, sld_table_t table, const void *key, size_t klen,
                  const void **val, size_t *vlen);

/* Delete KEY from TABLE inside write TXN. 0, SL_ENOTFOUND (not there;
 * TXN goes on), SL_EINVAL, SL_EFULL, SL_ESTORE, or TXN's earlier failure. */
int sld_table_del(sld_txn_t *txn, sld_table_t table, const void *key, size_t klen);

/* Delete every key of TABLE that starts with PREFIX (PLEN bytes,
 * 1..SLD_TABLE_KEY_MAX) inside write TXN; none is 0. 0, SL_EINVAL,
 * SL_EFULL, SL_ESTORE, or TXN's earlier failure. */
int sld_table_del_prefix(sld_txn_t *txn, sld_table_t table, const void *prefix,
                         size_t plen);

/* Call FN for each record of TABLE whose key starts with PREFIX (PLEN
 * bytes; 0: every record), in key order; KEY and VAL are borrowed for the
 * call. FN returning non-zero stops the walk and that value is returned.
 * FN must not write to TABLE (collect, then change after the walk).
 * 0, SL_EINVAL, SL_ESTORE (a value fails its checksum: logged, the walk
 * stops there; or LMDB failed). foreach_from starts at the first key >=
 * FROM (FLEN bytes) and walks the keys that start with FROM's first PLEN
 * bytes (PLEN <= FLEN). */
typedef int (sld_table_fn)(const void *key, size_t klen, const void *val, size_t vlen,
                           void *arg);
int sld_table_foreach(sld_txn_t *txn, sld_table_t table, const void *prefix, size_t plen,
                      sld_table_fn *fn, void *arg);
int sld_table_foreach_from(sld_txn_t *txn, sld_table_t table, const void *from,
                           size_t flen, size_t plen, sld_table_fn *fn, void *arg);

/* Key limits of the records other modules keep in the tables. */
/* Longest subscription name, bytes (longer or empty: SL_EINVAL). */
#define SLD_SUB_NAME_MAX 255
/* Longest identity name, bytes (longer or empty: SL_EINVAL). */
#define SLD_IDENT_NAME_MAX 64
/* Longest registry key, bytes. */
#define SLD_REG_KEY_MAX SLD_TABLE_KEY_MAX

/* ------------------------------------------------------------- retention */

/* Trim, in its own write transaction, at most MAX_RECORDS records from the
 * heads of topics over their age or size limit, expired dedup entries and
 * producer index entries older than the producer window. *trimmed (may be
 * NULL) counts removed records. The pages a topic's head is deleted from
 * are checked first: a topic whose head is damaged is not trimmed again
 * (logged once). Call between loop turns with no transaction open. 0,
 * SL_EFULL, SL_ESTORE. */
int sld_store_trim(sld_store_t *self, uint64_t now_us, uint64_t dedup_window_us,
                   size_t max_records, size_t *trimmed);

/* ----------------------------------------------------- encryption at rest */

/* Make a new data key (current id + 1) in TXN (a write txn): appends later
 * in TXN already seal with it; after commit every new record does, while
 * older records keep opening with the keys that sealed them. An abort
 * leaves the previous key current. *key_id is the new id. 0, SL_EINVAL
 * (the store is not encrypted), SL_ENOMEM, SL_EFULL, SL_ESTORE. */
int sld_store_rotate_key(sld_txn_t *txn, uint32_t *key_id);

/* Id of the data key new records are sealed with (committed state);
 * 0 when the store is not encrypted. */
uint32_t sld_store_seal_key_id(const sld_store_t *self);

/* ----------------------------------------------------------------- check */

/* Verify the store: every page of data.mdb that is in use well formed
 * (sld_pages), every record readable, its checksum or seal good and a
 * decodable envelope (by VERIFY, may be NULL: returns 0 when a record's
 * envelope is fine; sealed records are opened first), topic counters
 * equal to the records, every cursor <= its topic's next offset, producer
 * index entries pointing at stored or trimmed offsets. Records are read
 * from the file, not through LMDB, so damage is reported, never a fault.
 * Prints a summary (in an encrypted store with the plain and sealed
 * record counts and the current data key; records without a checksum,
 * stored before format 4, are counted) and each problem to OUT. 0 when
 * clean, SL_ESTORE otherwise, SL_ENOMEM. */
#include <stdio.h>
typedef int (sld_store_verify_fn)(const void *envelope, size_t len);
int sld_store_check(sld_store_t *self, sld_store_verify_fn *verify, FILE *out);

/* Map usage: bytes in use (pages on LMDB's freelist, reusable, are not
 * counted) and the current map size. Walks the freelist: not for every
 * message. */
void sld_store_usage(sld_store_t *self, uint64_t *used, uint64_t *map_size);

/* The growth ceiling in force (storage/map_size_max, page-rounded). */
uint64_t sld_store_map_max(const sld_store_t *self);

#endif
