/*  sld_pages - reads an LMDB 0.9 data file page by page with pread and
 *  checks its structure: the meta pages, every B-tree page (header, node
 *  offsets and sizes, flags, key order and bounds, depth, child page
 *  numbers, counts), overflow pages and the free-page list. LMDB trusts
 *  its file, so sld_store runs this before LMDB touches pages it did not
 *  write itself. Owns its file descriptor and buffers; one thread at a
 *  time. No LMDB calls and no mmap: a damaged page here is a reported
 *  problem, never a fault. It knows nothing of sluice's records.  */
#ifndef SLD_PAGES_H
#define SLD_PAGES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "slc.h"

typedef struct sld_pages sld_pages_t;

/* The meta page in force. */
typedef struct {
    uint32_t psize;             /* page size the file was written with */
    uint64_t last_pgno;         /* last page the environment uses */
    uint64_t txnid;             /* transaction that wrote this meta */
    uint64_t file_size;         /* bytes of the file when it was read */
} sld_pages_meta_t;

/* Told each problem found, as one line of text (borrowed for the call). */
typedef void (sld_pages_problem_fn)(void *arg, const char *text);

/* Given each record of a walked database in key order; KEY and VAL are
 * borrowed for the call. Non-zero stops the walk and is returned. */
typedef int (sld_pages_record_fn)(const void *key, size_t klen, const void *val,
                                  size_t vlen, void *arg);

/* Open FILE (an LMDB data.mdb) and read its meta pages: the one of
 * transaction TXNID, or with TXNID 0 the newer one, as LMDB picks it.
 * Checks both metas (magic, version, page size, transaction ids one
 * apart) and that the file reaches the environment's last page, or that
 * every page past its end is on the free list (LMDB counts pages a commit
 * took and gave back unwritten in its last page), then
 * reads the main database (the list of named databases) in full.
 * PROBLEM(ARG, text) (may be NULL) hears each problem.
 * 0 and *out (caller owns; sound so far); SL_ESTORE and *out when the
 * main database has problems (reported; *out still walks what it can);
 * SL_ESTORE and *out NULL when the metas are damaged or the file is cut
 * short (reported); SL_ENOTFOUND when FILE is missing or empty (a new
 * environment); SL_EBUSY when no meta is of TXNID (the environment moved
 * on: try again); SL_ESYS, SL_ENOMEM. */
int sld_pages_open(const char *file, uint64_t txnid, sld_pages_problem_fn *problem,
                   void *arg, sld_pages_t **out);

/* Close the file, free the buffers. NULL-safe; nulls *self_p. */
void sld_pages_destroy(sld_pages_t **self_p);

/* The meta page in force: borrowed, valid until destroy. */
const sld_pages_meta_t *sld_pages_meta(const sld_pages_t *self);

/* Problems found since open. */
size_t sld_pages_problems(const sld_pages_t *self);

/* Check named database NAME (NULL: the main database). With RANGES
 * NULL, every page. Otherwise every branch page but, of the leaves, only
 * those holding keys of the NRANGES ranges (pairs of KLEN-byte keys, low
 * and high end, both included; any order) and the leaf before and after
 * each run of them: a database too big to read whole, where those are
 * the leaves a writer will touch (a run of deletes merges a page with a
 * neighbour). FN (may be NULL) gets every record of every leaf checked.
 * Returns the number of problems found in NAME (0 = sound), SL_ENOTFOUND
 * when there is no such database, SL_EINVAL (KLEN 0 or over 511),
 * SL_ENOMEM, SL_ESYS, or what FN returned. */
long sld_pages_walk(sld_pages_t *self, const char *name, const void *ranges, size_t klen,
                    size_t nranges, sld_pages_record_fn *fn, void *arg);

/* Check the free-page list: records well formed, every listed page in
 * the environment and not in a tree walked so far. Number of problems,
 * SL_ENOMEM or SL_ESYS. */
long sld_pages_walk_free(sld_pages_t *self);

/* Names of the named databases, in key order: *count of them, each
 * borrowed until destroy. */
const char *const *sld_pages_names(const sld_pages_t *self, size_t *count);

#endif
