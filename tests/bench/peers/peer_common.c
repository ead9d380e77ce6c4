/*  peer_common - shared parts of the peer drivers (peer_common.h).  */
#include "peer_common.h"
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct peer_lat {
    uint32_t *us;
    size_t n, max;
};

struct peer_seen {
    uint8_t *hits;
    uint64_t count, unique, dups;
};

static int s_num(const char *driver, const char *name, const char *text, double min,
                 double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno || v < min) {
        fprintf(stderr, "%s: %s wants a number >= %g, not '%s'\n", driver, name, min, text);
        return -1;
    }
    *out = v;
    return 0;
}

int peer_opts_parse(int argc, char **argv, const char *driver,
                    const char *default_server, peer_opts_t *o)
{
    static const struct option options[] = {
        { "server", required_argument, NULL, 's' },
        { "count", required_argument, NULL, 'n' },
        { "size", required_argument, NULL, 'b' },
        { "rate", required_argument, NULL, 'r' },
        { "streams", required_argument, NULL, 'k' },
        { "window", required_argument, NULL, 'w' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    double count = -1, size = -1, rate = 5000, streams = 8, window = 1000;
    int c;
    memset(o, 0, sizeof *o);
    o->server = default_server;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 's': o->server = optarg; break;
        case 'n': rc = s_num(driver, "--count", optarg, 1, &count); break;
        case 'b': rc = s_num(driver, "--size", optarg, PEER_STAMP_BYTES, &size); break;
        case 'r': rc = s_num(driver, "--rate", optarg, 1, &rate); break;
        case 'k': rc = s_num(driver, "--streams", optarg, 1, &streams); break;
        case 'w': rc = s_num(driver, "--window", optarg, 1, &window); break;
        case 'h':
            printf("usage: %s W0|W1|W1-lat|W2|W4 [--server S] [--count N] [--size B]\n"
                   "       [--rate R] [--streams K] [--window W]\n"
                   "One run against a running server (default %s); prints\n"
                   "RESULT broker=... workload=... msgs_per_s=... (see peer_common.h).\n"
                   "W3 is W1 with --size 1024 or --size 12. W4 publishes JSON orders\n"
                   "(~300 B, --size ignored) through the broker's routing set-up.\n",
                   driver, default_server);
            return 1;
        default: rc = -1; break;
        }
        if (rc)
            return -1;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "%s: name one workload: W0, W1, W1-lat or W2 (--help)\n", driver);
        return -1;
    }
    const char *w = argv[optind];
    if (!strcmp(w, "W0"))
        o->workload = PEER_W0, o->count = 1000000, o->size = 64;
    else if (!strcmp(w, "W1"))
        o->workload = PEER_W1, o->count = 200000, o->size = 256;
    else if (!strcmp(w, "W1-lat"))
        o->workload = PEER_W1_LAT, o->size = 256;
    else if (!strcmp(w, "W2"))
        o->workload = PEER_W2, o->count = 400000, o->size = 256;
    else if (!strcmp(w, "W4"))
        o->workload = PEER_W4, o->count = 200000, o->size = 300;
    else {
        fprintf(stderr, "%s: unknown workload '%s' (W0, W1, W1-lat, W2, W4)\n", driver, w);
        return -1;
    }
    o->name = w;
    o->rate = rate;
    o->secs = 10;
    if (o->workload == PEER_W1_LAT)
        o->count = (uint64_t) (rate * o->secs);
    if (count > 0)
        o->count = (uint64_t) count;
    if (size > 0 && o->workload != PEER_W4)
        o->size = (size_t) size;
    o->streams = o->workload == PEER_W2 ? (unsigned) streams : 1;
    o->window = (unsigned) window;
    if (o->count > UINT32_MAX) {
        fprintf(stderr, "%s: --count above %" PRIu32 "\n", driver, UINT32_MAX);
        return -1;
    }
    return 0;
}

uint64_t peer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

void peer_stamp(uint8_t *buf, size_t size, uint64_t seq)
{
    peer_stamp_at(buf, size, seq, peer_now_ns());
}

void peer_stamp_w0(uint8_t *buf, size_t size, uint64_t seq)
{
    peer_stamp_at(buf, size, seq, seq % PEER_W0_STAMP_EVERY ? 0 : peer_now_ns());
}

uint64_t peer_rx_ns(uint64_t sent_ns, bool last)
{
    return sent_ns || last ? peer_now_ns() : 0;
}

void peer_stamp_at(uint8_t *buf, size_t size, uint64_t seq, uint64_t sent_ns)
{
    uint32_t s = (uint32_t) seq;
    memcpy(buf, &s, 4);
    memcpy(buf + 4, &sent_ns, 8);
    if (size > PEER_STAMP_BYTES)
        memset(buf + PEER_STAMP_BYTES, 'x', size - PEER_STAMP_BYTES);
}

uint64_t peer_due_ns(uint64_t t0_ns, uint64_t i, double rate)
{
    return t0_ns + (uint64_t) ((double) i * 1e9 / rate);
}

int peer_sleep_until(uint64_t ns)
{
    struct timespec ts = { .tv_sec = (time_t) (ns / 1000000000u),
                           .tv_nsec = (long) (ns % 1000000000u) };
    int err;
    while ((err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
        ;
    if (err) {
        fprintf(stderr, "clock_nanosleep: %s\n", strerror(err));
        return -1;
    }
    return 0;
}

bool peer_unstamp(const uint8_t *buf, size_t len, uint64_t *seq, uint64_t *sent_ns)
{
    uint32_t s;
    if (len < PEER_STAMP_BYTES)
        return false;
    memcpy(&s, buf, 4);
    memcpy(sent_ns, buf + 4, 8);
    *seq = s;
    return true;
}

peer_lat_t *peer_lat_new(size_t max)
{
    peer_lat_t *self = calloc(1, sizeof *self);
    if (self && !(self->us = malloc((max ? max : 1) * sizeof *self->us))) {
        free(self);
        self = NULL;
    }
    if (self)
        self->max = max;
    return self;
}

void peer_lat_destroy(peer_lat_t **self_p)
{
    if (!*self_p)
        return;
    free((*self_p)->us);
    free(*self_p);
    *self_p = NULL;
}

void peer_lat_add(peer_lat_t *self, uint64_t sent_ns, uint64_t now_ns)
{
    if (sent_ns && self->n < self->max)
        self->us[self->n++] = now_ns > sent_ns ? (uint32_t) ((now_ns - sent_ns) / 1000) : 0;
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

double peer_lat_pct(peer_lat_t *self, double p)
{
    if (!self || !self->n)
        return 0;
    qsort(self->us, self->n, sizeof *self->us, s_cmp_u32);
    size_t i = (size_t) (p / 100.0 * (double) self->n);
    return self->us[i < self->n ? i : self->n - 1];
}

peer_seen_t *peer_seen_new(uint64_t count)
{
    peer_seen_t *self = calloc(1, sizeof *self);
    if (self && !(self->hits = calloc(count ? count : 1, 1))) {
        free(self);
        self = NULL;
    }
    if (self)
        self->count = count;
    return self;
}

void peer_seen_destroy(peer_seen_t **self_p)
{
    if (!*self_p)
        return;
    free((*self_p)->hits);
    free(*self_p);
    *self_p = NULL;
}

bool peer_seen_add(peer_seen_t *self, uint64_t seq)
{
    /* A sequence out of range is not one we sent: counted as a duplicate
     * too, so that it fails the run the same way. */
    if (seq >= self->count || self->hits[seq]) {
        self->dups++;
        return false;
    }
    self->hits[seq] = 1;
    self->unique++;
    return true;
}

uint64_t peer_seen_unique(const peer_seen_t *self)
{
    return self->unique;
}

uint64_t peer_seen_dups(const peer_seen_t *self)
{
    return self->dups;
}

void peer_result(const peer_opts_t *o, const char *broker, double msgs_per_s,
                 peer_lat_t *lat, uint64_t lost, uint64_t dups, const char *durability)
{
    double p50 = peer_lat_pct(lat, 50), p99 = peer_lat_pct(lat, 99),
           p999 = peer_lat_pct(lat, 99.9);
    printf("RESULT broker=%s workload=%s size=%zu msgs_per_s=%.0f p50_us=%.0f "
           "p99_us=%.0f p999_us=%.0f lost=%" PRIu64 " dups=%" PRIu64
           " durability=\"%s\"\n", broker, o->name, o->size, msgs_per_s, p50, p99,
           p999, lost, dups, durability);
    fflush(stdout);
}

bool peer_w4_is_test(uint64_t seq)
{
    return seq % PEER_W4_TEST_EVERY == PEER_W4_TEST_EVERY - 1;
}

uint64_t peer_w4_expected(uint64_t count)
{
    return count - count / PEER_W4_TEST_EVERY;
}

size_t peer_w4_order(char *buf, uint64_t seq, uint64_t sent_ns)
{
    unsigned s = (unsigned) seq;
    int n = snprintf(buf, PEER_W4_ORDER_MAX,
                     "{\"id\":\"%u-%" PRIu64 "\",\"buyer\":{\"email\":\" Customer%u@"
                     "Example.com \",\"name\":\"Customer %u\"},\"total\":%u.%02u,"
                     "\"currency\":\"eur\",\"created_at\":\"2026-12-07T18:13:26+01:00\","
                     "\"lines\":[{\"sku\":\"tee-blue-m\",\"qty\":2,\"price\":19.95},"
                     "{\"sku\":\"mug-01\",\"qty\":1,\"price\":20.0},{\"sku\":\"sticker-%u\","
                     "\"qty\":%u,\"price\":0.5}],\"test\":%s}",
                     s, sent_ns, s % 1000, s % 1000, 60 + s % 100, s % 100, s % 50,
                     1 + s % 5, peer_w4_is_test(seq) ? "true" : "false");
    if (n < 0)
        return 0;
    return (size_t) n < PEER_W4_ORDER_MAX ? (size_t) n : PEER_W4_ORDER_MAX - 1;
}

/* The string value of FIELD in the JSON text P (NUL-terminated): a pointer
 * just past its opening quote, or NULL. */
static const char *s_json_str(const char *p, const char *field)
{
    size_t n = strlen(field);
    while ((p = strstr(p, field)) != NULL) {
        const char *q = p + n;
        p = q;
        q += strspn(q, " \t\r\n");
        if (*q++ != ':')
            continue;
        q += strspn(q, " \t\r\n");
        if (*q == '"')
            return q + 1;
    }
    return NULL;
}

bool peer_w4_parse(const char *payload, size_t len, uint64_t *seq, uint64_t *sent_ns)
{
    char buf[PEER_W4_ORDER_MAX * 2], *end;
    const char *p;
    if (len >= sizeof buf)
        return false;
    memcpy(buf, payload, len);
    buf[len] = '\0';
    if ((p = s_json_str(buf, "\"order_id\""))) {
        if (strncmp(p, "a-", 2) != 0)
            return false;
        p += 2;
    } else if (!(p = s_json_str(buf, "\"id\"")))
        return false;
    errno = 0;
    *seq = strtoull(p, &end, 10);
    if (end == p || *end != '-' || errno)
        return false;
    p = end + 1;
    *sent_ns = strtoull(p, &end, 10);
    return end != p && *end == '"' && !errno;
}
