/*  peer_common - what the peer drivers of tests/bench/compare share: the
 *  workloads and their options, the payload stamp (sequence + send time),
 *  a latency record with percentiles, a seen-set that checks each message
 *  arrived once, and the one RESULT line compare reads. One thread owns
 *  each object; nothing global. Not used by the broker or the SDK.  */
#ifndef PEER_COMMON_H
#define PEER_COMMON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The smallest payload: u32 sequence + u64 CLOCK_MONOTONIC ns (W3's
 * 12-byte variant is exactly this). */
#define PEER_STAMP_BYTES 12

typedef enum { PEER_W0, PEER_W1, PEER_W1_LAT, PEER_W2, PEER_W4 } peer_workload_t;

typedef struct {
    peer_workload_t workload;
    const char *name;       /* "W0", "W1", "W1-lat", "W2", "W4" */
    const char *server;     /* --server, the peer's URL/host:port */
    uint64_t count;         /* messages in all */
    size_t size;            /* payload bytes, >= PEER_STAMP_BYTES */
    double rate;            /* W1-lat: messages per second */
    double secs;            /* W1-lat: seconds */
    unsigned streams;       /* W2: producers = subscriptions = topics */
    unsigned window;        /* unconfirmed publishes in flight per producer */
} peer_opts_t;

/* Parse "DRIVER WORKLOAD [--server S] [--count N] [--size B] [--rate R]
 * [--streams K] [--window W]" with the defaults per workload
 * (W0 1,000,000 x 64 B; W1 200,000 x 256 B; W1-lat 5,000/s for 10 s x
 * 256 B; W2 400,000 x 256 B over 8 streams; window 1,000). W3 is W1 with
 * --size 1024 or --size 12. DEFAULT_SERVER is used without --server.
 * 0 ok, 1 --help printed, -1 usage error printed. */
int peer_opts_parse(int argc, char **argv, const char *driver,
                    const char *default_server, peer_opts_t *o);

/* CLOCK_MONOTONIC in ns. */
uint64_t peer_now_ns(void);

/* Fill BUF (SIZE bytes) with SEQ, the time now, and filler. */
void peer_stamp(uint8_t *buf, size_t size, uint64_t seq);

/* The same with the time SENT_NS. A paced run (W1-lat) stamps the time a
 * message was due, not when it went, so that a producer held back by the
 * broker adds that wait to the latency instead of hiding it (coordinated
 * omission); every driver and sluice-bench do the same. */
void peer_stamp_at(uint8_t *buf, size_t size, uint64_t seq, uint64_t sent_ns);

/* When message I of a run paced at RATE per second from T0_NS is due. */
uint64_t peer_due_ns(uint64_t t0_ns, uint64_t i, double rate);

/* Sleep until CLOCK_MONOTONIC NS; 0, or -1 (said on stderr). */
int peer_sleep_until(uint64_t ns);

/* W0 measures throughput only: the time goes on one message in
 * PEER_W0_STAMP_EVERY (the others carry 0), and a receiver reads the clock
 * for those and for the run's last message only. A clock read per message
 * on each side cost ~5% of the machine at 2 M msgs/s; sluice-bench does
 * the same. */
#define PEER_W0_STAMP_EVERY 64
void peer_stamp_w0(uint8_t *buf, size_t size, uint64_t seq);

/* The time a message stamped SENT_NS was received: the clock when SENT_NS
 * is set or LAST (the run's last message) is true, else 0, unread. */
uint64_t peer_rx_ns(uint64_t sent_ns, bool last);

/* Read a stamp back; false when LEN is too short. */
bool peer_unstamp(const uint8_t *buf, size_t len, uint64_t *seq, uint64_t *sent_ns);

/* W4 (issue 18, routing): the orders every driver publishes, shop A's
 * JSON (schemas/ecommerce/schemas/shop-a.order@1.json, ~300 bytes). One
 * in PEER_W4_TEST_EVERY is a test order ("test": true) the routes drop. */
#define PEER_W4_TEST_EVERY 20
#define PEER_W4_ORDER_MAX 512
bool peer_w4_is_test(uint64_t seq);
/* The orders of COUNT that are not test orders. */
uint64_t peer_w4_expected(uint64_t count);
/* Write order SEQ stamped SENT_NS (its id is "SEQ-SENT_NS") into BUF
 * (PEER_W4_ORDER_MAX bytes); its length. */
size_t peer_w4_order(char *buf, uint64_t seq, uint64_t sent_ns);
/* SEQ and SENT_NS back from an order as published (its "id") or as
 * mapped to the canonical order ("order_id": "a-" + id); false when the
 * payload is neither. */
bool peer_w4_parse(const char *payload, size_t len, uint64_t *seq, uint64_t *sent_ns);

/* Latencies in microseconds, up to a fixed number of samples. */
typedef struct peer_lat peer_lat_t;
peer_lat_t *peer_lat_new(size_t max);
void peer_lat_destroy(peer_lat_t **self_p);
/* A message without a time (SENT_NS 0, see peer_stamp_w0) adds nothing. */
void peer_lat_add(peer_lat_t *self, uint64_t sent_ns, uint64_t now_ns);
/* The P-th percentile (0 < P < 100) in us; 0 without samples. Sorts. */
double peer_lat_pct(peer_lat_t *self, double p);

/* Which of COUNT sequence numbers arrived, and how often. */
typedef struct peer_seen peer_seen_t;
peer_seen_t *peer_seen_new(uint64_t count);
void peer_seen_destroy(peer_seen_t **self_p);
/* Record SEQ; false (and counted in dups) when it arrived before or is out
 * of range (not a message of this run). */
bool peer_seen_add(peer_seen_t *self, uint64_t seq);
uint64_t peer_seen_unique(const peer_seen_t *self);
uint64_t peer_seen_dups(const peer_seen_t *self);

/* Print the one line compare reads:
 * RESULT broker=B workload=W size=S msgs_per_s=N p50_us=N p99_us=N
 *        p999_us=N lost=N dups=N durability="TEXT"
 * LAT may be NULL (no percentiles: 0). DURABILITY must not hold '"'. */
void peer_result(const peer_opts_t *o, const char *broker, double msgs_per_s,
                 peer_lat_t *lat, uint64_t lost, uint64_t dups, const char *durability);

#endif
