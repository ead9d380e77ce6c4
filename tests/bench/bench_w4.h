/*  bench_w4 - what sluice-bench's W4 (routing, issue 18 point 8) adds to a
 *  W1 run: the set-up through the SDK (the e-commerce schemas, the binding,
 *  the mapping and a generated 1,000-route table) and the check of the
 *  routing counters after the run. Called by sluice-bench's main thread.
 *  It does not start brokers, time anything or make the orders (those are
 *  peer_common's peer_w4_*, the same for every driver).  */
#ifndef BENCH_W4_H
#define BENCH_W4_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sluice.h"

/* Routes in the generated table; 3 of them match every order. */
#define BENCH_W4_ROUTES 1000

/* The topics of one run: PREFIX.shop.orders (published), .canonical.orders
 * (the mapped orders, subscribed), .audit.orders (the unchanged copies). */
typedef struct {
    char prefix[64];
    char orders[96];
    char canonical[96];
    char audit[96];
} bench_w4_topics_t;

/* Name the topics of a run with PREFIX (a topic word). */
void bench_w4_topics(bench_w4_topics_t *t, const char *prefix);

/* Register shop-a.order and canonical.order from SCHEMAS_DIR/schemas/,
 * bind T->orders to shop-a.order (invalid orders rejected), add the
 * mapping SCHEMAS_DIR/shop-a-to-canonical.yaml and apply the generated
 * table. 0, or an SDK code with the reason in ERR. */
int bench_w4_setup(sl_client_t *admin, const bench_w4_topics_t *t,
                   const char *schemas_dir, char *err, size_t errlen);

/* The orders, which ones are test orders and reading them back are
 * peer_common's (peer_w4_*), so that every driver publishes the same. */

/* After a run of COUNT originals: the broker's counters of the three
 * matching routes must say COUNT matched the drop route's topic, the test
 * orders dropped, every other one delivered once to each target, no error
 * or dead letter. Prints one line; 0 when they agree, SL_EINVAL when not,
 * another SDK code when the counters could not be read (reason in ERR). */
int bench_w4_check(sl_client_t *admin, const bench_w4_topics_t *t,
                   uint64_t count, char *err, size_t errlen);

/* Connect with OPTS (its connect timeout raised for applying the table)
 * and run bench_w4_setup (CHECK false) or bench_w4_check. 0, or -1 after
 * saying why on stderr. */
int bench_w4_admin(const sl_options_t *opts, const bench_w4_topics_t *t,
                   const char *schemas_dir, bool check, uint64_t count);

#endif
