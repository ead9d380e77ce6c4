/*  slc - the small common library linked by both the broker and the SDK:
 *  result-code names, topic names and patterns, the text rule of string
 *  fields, clocks, big-endian helpers.
 *  Pure functions; no state; any thread. The wire codec is in slc_codec.h.  */
#ifndef SLC_H
#define SLC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sluice_codes.h"

#define SLC_PROTOCOL_VERSION 1
#define SLC_TOPIC_MAX 255        /* longest topic name or pattern, bytes */
#define SLC_PRODUCER_ID_LEN 16

/* Static text for a result code (0, an SL_E* value, or its positive wire
 * form). Never NULL; unknown codes give "unknown error". */
const char *slc_strerror(int code);

/* True for the codes whose operation may succeed when simply retried. */
bool slc_retryable(int code);

/* Check a topic NAME: dot-separated words of [A-Za-z0-9_-], no empty word,
 * at most SLC_TOPIC_MAX bytes. Names whose first word starts with '_' belong
 * to the broker and pass only when ALLOW_RESERVED. 0 or SL_EINVAL. */
int slc_topic_validate(const char *name, bool allow_reserved);

/* Check a subscription PATTERN: like a topic name, where a word may also be
 * '*' (exactly one word) and the last word may be '>' (one or more words).
 * 0 or SL_EINVAL. */
int slc_pattern_validate(const char *pattern);

/* True when PATTERN (valid) contains no wildcard. */
bool slc_pattern_is_literal(const char *pattern);

/* True when TOPIC matches PATTERN. A wildcard in the first word never
 * matches a reserved ('_') topic: those are reached only by naming them. */
bool slc_pattern_match(const char *pattern, const char *topic);

/* True when every topic PATTERN (valid) can match is also matched by GRANT
 * (a valid pattern): the grant covers the subscription. Follows
 * slc_pattern_match, so a wildcard first word of GRANT never covers a
 * reserved ('_') first word of PATTERN. */
bool slc_pattern_covers(const char *grant, const char *pattern);

/* True when the LEN bytes at S are UTF-8 (RFC 3629: no overlong form, no
 * surrogate, nothing above U+10FFFF) and hold no NUL byte: what every
 * string field of a Frame must be (docs/protocol.md, "Names"). A C string
 * cannot hold the NUL, so a name that passed here is whole in C. */
bool slc_text_valid(const void *s, size_t len);

/* TEXT made one line of at most MAX bytes, into OUT (MAX + 1 bytes):
 * cut at a character boundary, each control character (C0, DEL, C1) a
 * space, each byte that is no UTF-8 character a '?'. What a nack's
 * reason becomes, in the SDK before it is sent and in the broker again
 * for other clients. Returns the length written. */
size_t slc_text_line(const char *text, char *out, size_t max);

/* printf FMT into ERR (ERRLEN bytes; nothing when ERR is NULL or ERRLEN
 * 0): the "why" text of functions that take an ERR buffer. */
void slc_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Make the array *ITEMS (of ELEM-byte items, *CAP allocated) hold at least
 * NEED items, doubling. On failure the array is untouched. 0 or SL_ENOMEM. */
int slc_grow(void **items, size_t *cap, size_t need, size_t elem);

/* Allocations freed together (one answer, one routing pass): zero it to
 * start; keep, alloc and strdup return NULL when out of memory (keep frees
 * P then). Single owner, any thread. */
typedef struct {
    void **v;
    size_t n, cap;
} slc_pool_t;
void *slc_pool_keep(slc_pool_t *pool, void *p);
void *slc_pool_alloc(slc_pool_t *pool, size_t size);       /* zeroed */
char *slc_pool_strdup(slc_pool_t *pool, const char *s);    /* NULL S: "" */
void slc_pool_free(slc_pool_t *pool);                      /* and zero it */

/* Add ID to the set *V (*N ids, *CAP allocated) unless it holds it
 * already; searched from the newest, the likeliest match. 0 or SL_ENOMEM. */
int slc_idset_add(uint32_t **v, size_t *n, size_t *cap, uint32_t id);

/* Wall clock in microseconds since the epoch, monotonic clock in ms. */
uint64_t slc_now_us(void);
uint64_t slc_mono_ms(void);

/* Home slot (before masking) of the key (TOPIC_ID, OFFSET) in the
 * open-addressing tables of in-flight and acked messages (broker and SDK).
 * Keys come and go in offset order, so runs of 16 consecutive offsets of a
 * topic share one home region and the table is walked a cache line after
 * another; the runs are spread by a multiplicative hash. Hashing each
 * offset apart made every entry its own cache miss (tables of megabytes). */
static inline size_t slc_offset_hash(uint32_t topic_id, uint64_t offset)
{
    uint64_t h = ((offset >> 4) ^ ((uint64_t) topic_id << 40)) * 0x9E3779B97F4A7C15ull;
    return (size_t) ((h >> 20) << 4 | (offset & 15));
}

static inline void slc_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24); p[1] = (uint8_t) (v >> 16);
    p[2] = (uint8_t) (v >> 8);  p[3] = (uint8_t) v;
}

static inline void slc_put_be64(uint8_t *p, uint64_t v)
{
    slc_put_be32(p, (uint32_t) (v >> 32));
    slc_put_be32(p + 4, (uint32_t) v);
}

static inline uint32_t slc_get_be32(const uint8_t *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
         | ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

static inline uint64_t slc_get_be64(const uint8_t *p)
{
    return ((uint64_t) slc_get_be32(p) << 32) | slc_get_be32(p + 4);
}

#endif
