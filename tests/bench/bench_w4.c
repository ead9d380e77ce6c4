/*  bench_w4 - W4's set-up and check for sluice-bench (bench_w4.h).
 *  The table: BENCH_W4_ROUTES routes of which three match PREFIX.shop.orders
 *  (drop the test orders; map the rest to canonical orders, continue; copy
 *  them unchanged to the audit topic), the others filler on topics the
 *  run never publishes to, shaped to share words with the matching ones
 *  so that the broker's topic index does real work. Main thread only; the
 *  orders themselves are peer_common's.  */
#include "bench_w4.h"
#include "peers/peer_common.h"
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The three matching routes sit at this position of the table: fillers
 * come before and after them, as in a table that grew over time. */
#define S_MATCH_AT 400

void bench_w4_topics(bench_w4_topics_t *t, const char *prefix)
{
    snprintf(t->prefix, sizeof t->prefix, "%s", prefix);
    snprintf(t->orders, sizeof t->orders, "%s.shop.orders", prefix);
    snprintf(t->canonical, sizeof t->canonical, "%s.canonical.orders", prefix);
    snprintf(t->audit, sizeof t->audit, "%s.audit.orders", prefix);
}

/* ------------------------------------------------------------- set-up */

/* The whole file PATH, NUL-terminated, in *OUT (caller frees). */
static int s_slurp(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    *out = NULL;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return SL_EINVAL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0
        || !(buf = malloc((size_t)n + 1)) || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        snprintf(err, errlen, "%s: cannot read", path);
        free(buf);
        fclose(f);
        return SL_EINVAL;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* Register SUBJECT from DIR/schemas/SUBJECT@1.json; its version in *V. */
static int s_schema(sl_client_t *c, const char *dir, const char *subject,
                    uint32_t *v, char *err, size_t errlen)
{
    char path[512], *text;
    bool existed;
    int rc;

    snprintf(path, sizeof path, "%s/schemas/%s@1.json", dir, subject);
    rc = s_slurp(path, &text, err, errlen);
    if (rc != 0)
        return rc;
    rc = sl_schema_register(c, subject, text, NULL, false, v, &existed);
    free(text);
    if (rc != 0)
        snprintf(err, errlen, "register %s: %s: %s", subject, sl_strerror(rc),
                 sl_client_last_error(c));
    return rc;
}

/* Append to *BUF (size *CAP, used *LEN); false when out of memory. */
static bool s_append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool s_append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *nb;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return false;
        if ((size_t)n < *cap - *len) {
            *len += (size_t)n;
            return true;
        }
        nb = realloc(*buf, *cap * 2 + (size_t)n);
        if (!nb)
            return false;
        *buf = nb;
        *cap = *cap * 2 + (size_t)n;
    }
}

/* Filler route I: never matches PREFIX.shop.orders, but shares its first
 * word, and some its second, so the index is walked, not skipped. Targets
 * are PREFIX.out.I, which no pattern matches (no static cycle). */
static bool s_filler(char **buf, size_t *len, size_t *cap, const char *p, unsigned i)
{
    switch (i % 5) {
    case 0:
        return s_append(buf, len, cap, "  - name: %s-f%u\n    match: { topic: \"%s.shop.orders.v%u\" }\n"
                        "    to: %s.out.%u\n", p, i, p, i, p, i);
    case 1:
        return s_append(buf, len, cap, "  - name: %s-f%u\n    match: { topic: \"%s.tenant%u.orders\", "
                        "where: \"$.total > 100\" }\n    to: %s.out.%u\n", p, i, p, i, p, i);
    case 2:
        return s_append(buf, len, cap, "  - name: %s-f%u\n    match: { topic: \"%s.shop.*.r%u\" }\n"
                        "    to: %s.out.%u\n    continue: true\n", p, i, p, i, p, i);
    case 3:
        return s_append(buf, len, cap, "  - name: %s-f%u\n    match: { topic: \"%s.region%u.>\" }\n"
                        "    to: [%s.out.%u, %s.out.%ux]\n", p, i, p, i, p, i, p, i);
    default:
        return s_append(buf, len, cap, "  - name: %s-f%u\n    match: { topic: \"%s.shop.returns%u\", "
                        "where: '$.region == \"EU\"' }\n    action: drop\n", p, i, p, i);
    }
}

/* The table: fillers, the three matching routes at S_MATCH_AT, fillers. */
static char *s_table(const bench_w4_topics_t *t, size_t *lenp)
{
    size_t len = 0, cap = 256 * 1024;
    char *buf = malloc(cap);
    const char *p = t->prefix;
    unsigned i, f = 0;
    bool ok = buf != NULL;

    if (ok)
        ok = s_append(&buf, &len, &cap, "# sluice-bench W4: %d routes, 3 match %s\nroutes:\n",
                      BENCH_W4_ROUTES, t->orders);
    for (i = 0; ok && i < BENCH_W4_ROUTES; i++) {
        if (i == S_MATCH_AT)
            ok = s_append(&buf, &len, &cap,
                          "  - name: %s-drop-tests\n    match: { topic: \"%s\", where: \"$.test == true\" }\n"
                          "    action: drop\n", p, t->orders);
        else if (i == S_MATCH_AT + 1)
            ok = s_append(&buf, &len, &cap,
                          "  - name: %s-canonical\n    match: { topic: \"%s\" }\n"
                          "    map: shop-a-to-canonical\n    to: %s\n    continue: true\n",
                          p, t->orders, t->canonical);
        else if (i == S_MATCH_AT + 2)
            ok = s_append(&buf, &len, &cap,
                          "  - name: %s-audit\n    match: { topic: \"%s\" }\n    to: %s\n",
                          p, t->orders, t->audit);
        else
            ok = s_filler(&buf, &len, &cap, p, f++);
    }
    if (!ok) {
        free(buf);
        return NULL;
    }
    *lenp = len;
    return buf;
}

int bench_w4_setup(sl_client_t *admin, const bench_w4_topics_t *t,
                   const char *schemas_dir, char *err, size_t errlen)
{
    char path[512], *yaml = NULL, *diff = NULL;
    uint32_t from_v, to_v, version;
    size_t len;
    int rc;

    rc = s_schema(admin, schemas_dir, "shop-a.order", &from_v, err, errlen);
    if (rc == 0)
        rc = s_schema(admin, schemas_dir, "canonical.order", &to_v, err, errlen);
    if (rc != 0)
        return rc;
    rc = sl_topic_set_schema(admin, t->orders, "shop-a.order", from_v, "reject");
    if (rc != 0) {
        snprintf(err, errlen, "bind %s: %s: %s", t->orders, sl_strerror(rc),
                 sl_client_last_error(admin));
        return rc;
    }
    snprintf(path, sizeof path, "%s/shop-a-to-canonical.yaml", schemas_dir);
    rc = s_slurp(path, &yaml, err, errlen);
    if (rc != 0)
        return rc;
    rc = sl_mapping_add(admin, yaml, NULL);
    free(yaml);
    if (rc != 0) {
        snprintf(err, errlen, "mapping %s: %s: %s", path, sl_strerror(rc),
                 sl_client_last_error(admin));
        return rc;
    }
    yaml = s_table(t, &len);
    if (!yaml) {
        snprintf(err, errlen, "out of memory for the table");
        return SL_ENOMEM;
    }
    rc = sl_routes_apply(admin, yaml, len, false, 0, &version, &diff, NULL);
    free(yaml);
    free(diff);
    if (rc != 0) {
        snprintf(err, errlen, "routes apply: %s: %s", sl_strerror(rc),
                 sl_client_last_error(admin));
        return rc;
    }
    return 0;
}

/* ------------------------------------------------------------- check */

int bench_w4_check(sl_client_t *admin, const bench_w4_topics_t *t,
                   uint64_t count, char *err, size_t errlen)
{
    sl_routing_stats_t st;
    const sl_route_stats_t *drop = NULL, *map = NULL, *audit = NULL;
    char name[3][160];
    uint64_t tests = count - peer_w4_expected(count), want = peer_w4_expected(count);
    uint64_t errors = 0;
    size_t i;
    bool ok;
    int rc;

    memset(&st, 0, sizeof st);
    rc = sl_routing_stats(admin, &st);
    if (rc != 0) {
        snprintf(err, errlen, "routing stats: %s: %s", sl_strerror(rc),
                 sl_client_last_error(admin));
        return rc;
    }
    snprintf(name[0], sizeof name[0], "%s-drop-tests", t->prefix);
    snprintf(name[1], sizeof name[1], "%s-canonical", t->prefix);
    snprintf(name[2], sizeof name[2], "%s-audit", t->prefix);
    for (i = 0; i < st.nroutes; i++) {
        const sl_route_stats_t *r = &st.routes[i];
        if (strcmp(r->name, name[0]) == 0)
            drop = r;
        else if (strcmp(r->name, name[1]) == 0)
            map = r;
        else if (strcmp(r->name, name[2]) == 0)
            audit = r;
        errors += r->errors + r->dead_lettered;
    }
    ok = drop && map && audit && drop->dropped == tests && map->delivered == want
         && audit->delivered == want && errors == 0;
    printf("  routing v%" PRIu32 " (%zu routes): dropped %" PRIu64 ", mapped %" PRIu64
           ", audited %" PRIu64 ", errors + dead letters %" PRIu64 " (want %" PRIu64
           ", %" PRIu64 ", %" PRIu64 ", 0)\n", st.version, st.nroutes,
           drop ? drop->dropped : 0, map ? map->delivered : 0,
           audit ? audit->delivered : 0, errors, tests, want, want);
    sl_routing_stats_clear(&st);
    if (!ok) {
        snprintf(err, errlen, "the routing counters do not match the run");
        return SL_EINVAL;
    }
    return 0;
}

int bench_w4_admin(const sl_options_t *opts, const bench_w4_topics_t *t,
                   const char *schemas_dir, bool check, uint64_t count)
{
    sl_options_t o = *opts;
    sl_client_t *client = NULL;
    char err[4096] = "";
    int rc;

    o.connect_timeout_ms = 30000;       /* applying 1,000 routes */
    rc = sl_client_new(&o, &client);
    if (rc == 0)
        rc = sl_client_connect(client);
    if (rc != 0)
        snprintf(err, sizeof err, "connect: %s", sl_strerror(rc));
    else if (check)
        rc = bench_w4_check(client, t, count, err, sizeof err);
    else
        rc = bench_w4_setup(client, t, schemas_dir, err, sizeof err);
    sl_client_destroy(&client);
    if (rc != 0)
        fprintf(stderr, "sluice-bench: W4 %s: %s\n", check ? "check" : "set-up", err);
    return rc != 0 ? -1 : 0;
}
