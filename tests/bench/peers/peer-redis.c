/*  peer-redis - the Redis driver of tests/bench/compare: one workload per run
 *  against a running redis-server (start one with redis.sh), one RESULT line.
 *  W0 is PUBLISH/SUBSCRIBE; W1, W1-lat and W2 are Streams: XADD, and a
 *  consumer group per stream read with XREADGROUP and acknowledged with XACK.
 *  W4 (issue 18, routing) is W1 through one Lua script per order (s_w4_lua):
 *  it stores the order, looks up the routes of its topic, drops test orders,
 *  maps the rest to canonical orders with cjson and copies them to an audit
 *  stream, atomically; the consumer group reads the canonical stream.
 *  The main thread connects and prepares; every producer and consumer is one
 *  thread owning one hiredis context. It never starts or configures the server.  */
#include "peer_common.h"
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_DEFAULT_SERVER "127.0.0.1:6379"
#define S_GROUP "g"
#define S_CONSUMER "c"
/* XREADGROUP BLOCK: short, so a consumer notices the end of a lossy run. */
#define S_BLOCK_MS 100
/* With the producer done, this long without a new message means the rest is lost. */
#define S_IDLE_NS (3 * 1000000000ull)
/* A server that owes replies and sends nothing this long has failed. */
#define S_STALL_NS (30 * 1000000000ull)
#define S_TEXT_MAX 1536
/* W4: routes in the routes hash (3 of them on the orders' topic). */
#define S_W4_ROUTES 1000

/* W4's script. KEYS: the routes hash (topic -> comma list of route names),
 * the orders stream, the canonical stream, the audit stream; ARGV: the
 * topic, the order. The routes are those of sluice-bench's W4 table
 * (tests/bench/bench_w4.c), the mapping schemas/ecommerce/
 * shop-a-to-canonical.yaml written in Lua; Redis has no schema check. */
static const char s_w4_lua[] =
    "local function trim(s) return (string.gsub(s, '^%s*(.-)%s*$', '%1')) end\n"
    "local function days(y, m, d)\n"
    "  if m <= 2 then y = y - 1 end\n"
    "  local era = math.floor(y / 400)\n"
    "  local yoe = y - era * 400\n"
    "  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1\n"
    "  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468\n"
    "end\n"
    "local function utc(t)\n"
    "  local y, mo, d, h, mi, sec, frac, z = string.match(t,\n"
    "    '^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)(%.?%d*)(.*)$')\n"
    "  local off = 0\n"
    "  if z ~= 'Z' then\n"
    "    local sign, zh, zm = string.match(z, '^([+-])(%d+):(%d+)$')\n"
    "    off = (tonumber(zh) * 60 + tonumber(zm)) * 60\n"
    "    if sign == '-' then off = -off end\n"
    "  end\n"
    "  local t2 = days(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + h * 3600 + mi * 60 + sec - off\n"
    "  local z2 = math.floor(t2 / 86400)\n"
    "  local r = t2 - z2 * 86400\n"
    "  z2 = z2 + 719468\n"
    "  local era = math.floor(z2 / 146097)\n"
    "  local doe = z2 - era * 146097\n"
    "  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)\n"
    "  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))\n"
    "  local mp = math.floor((5 * doy + 2) / 153)\n"
    "  local dd = doy - math.floor((153 * mp + 2) / 5) + 1\n"
    "  local mm = mp < 10 and mp + 3 or mp - 9\n"
    "  local yy = yoe + era * 400\n"
    "  if mm <= 2 then yy = yy + 1 end\n"
    "  return string.format('%04d-%02d-%02dT%02d:%02d:%02d%sZ', yy, mm, dd,\n"
    "    math.floor(r / 3600), math.floor(r % 3600 / 60), r % 60, frac)\n"
    "end\n"
    "local order = ARGV[2]\n"
    "redis.call('XADD', KEYS[2], '*', 'd', order)\n"
    "local routes = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not routes then return 0 end\n"
    "local o = cjson.decode(order)\n"
    "for name in string.gmatch(routes, '[^,]+') do\n"
    "  if name == 'drop-tests' then\n"
    "    if o.test == true then return 1 end\n"
    "  elseif name == 'canonical' then\n"
    "    local n = o.buyer.name\n"
    "    if n == nil or n == cjson.null or trim(n) == '' then n = cjson.null else n = trim(n) end\n"
    "    local lines = {}\n"
    "    for i, l in ipairs(o.lines) do lines[i] = {sku = string.upper(trim(l.sku)), qty = l.qty} end\n"
    "    redis.call('XADD', KEYS[3], '*', 'd', cjson.encode({\n"
    "      order_id = 'a-' .. o.id, source = 'shop-a',\n"
    "      customer = {email = string.lower(trim(o.buyer.email)), name = n},\n"
    "      amount_cents = math.floor(o.total * 100 + 0.5),\n"
    "      currency = string.upper(trim(o.currency or 'eur')),\n"
    "      lines = lines, placed_at = utc(o.created_at)}))\n"
    "  elseif name == 'audit' then\n"
    "    redis.call('XADD', KEYS[4], '*', 'd', order)\n"
    "  end\n"
    "end\n"
    "return 2\n";

/* Return codes of this file; main turns them into exit codes. */
enum {
    S_OK = 0,
    S_EREPLY = -1,   /* an error reply, or a reply of the wrong shape */
    S_EIO = -2,      /* the connection failed or stalled during the run */
    S_ECONNECT = -3, /* the server could not be reached at all */
    S_ENOMEM = -4,
    S_EUSAGE = -5,   /* a --server that is not HOST:PORT */
};

/* One stream (W0: the channel) with its producer and its consumer. The
 * producer thread writes the producer fields, then sets `produced`; the
 * consumer thread writes the consumer fields; main reads all after joining. */
typedef struct {
    const peer_opts_t *o;       /* borrowed from main */
    char key[48];               /* stream key, or W0's channel (W4: the
                                   canonical stream, which is consumed) */
    uint64_t count;             /* messages on this lane */
    uint64_t expect;            /* messages the consumer gets (W4: the
                                   orders that are not test orders) */
    char sha[41];               /* W4: the script's SHA1 */
    redisContext *pub;          /* producer's connection (owned) */
    redisContext *sub;          /* consumer's connection (owned) */
    uint64_t first_ns;          /* producer: first command appended */
    uint64_t last_ns;           /* producer: last reply received */
    uint64_t acked;             /* producer: replies received */
    uint64_t unheard;           /* W0: PUBLISH replies that counted no subscriber */
    int prc;                    /* producer's result */
    atomic_bool produced;       /* producer finished, well or not */
    peer_seen_t *seen;          /* consumer: which sequence numbers arrived */
    peer_lat_t *lat;            /* consumer: W1-lat latencies, else NULL */
    uint64_t bad;               /* consumer: payloads short or out of range */
    uint64_t done_ns;           /* consumer: last message read (streams: and acked) */
    int crc;                    /* consumer's result */
    pthread_t producer, consumer;
    bool producer_started, consumer_started;
} s_lane_t;

static int s_io_error(const redisContext *c, const char *what)
{
    fprintf(stderr, "peer-redis: %s: %s\n", what, c->errstr[0] ? c->errstr : "I/O error");
    return S_EIO;
}

/* R is not the WANTED shape: say what came instead. Always S_EREPLY. */
static int s_unexpected(const redisReply *r, const char *what, const char *wanted)
{
    if (r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "peer-redis: %s: %s\n", what, r->str);
    else
        fprintf(stderr, "peer-redis: %s: reply of type %d, not %s\n", what, r->type, wanted);
    return S_EREPLY;
}

/* S_OK when R has TYPE (a REDIS_REPLY_*), else s_unexpected's S_EREPLY. */
static int s_expect(const redisReply *r, int type, const char *what)
{
    static const char *names[] = { "?", "a string", "an array", "an integer", "nil",
                                   "a status", "an error" };
    if (r->type == type)
        return S_OK;
    return s_unexpected(r, what, type > 0 && type <= 6 ? names[type] : names[0]);
}

/* Connect to HOST:PORT; *out (caller owns) on S_OK. S_ECONNECT when the
 * server cannot be reached. */
static int s_connect(const char *host, int port, redisContext **out)
{
    int rc = S_OK;
    struct timeval connect_tv = { 5, 0 }, io_tv = { 30, 0 };
    redisContext *c = redisConnectWithTimeout(host, port, connect_tv);
    *out = NULL;
    if (!c) {
        rc = S_ENOMEM;
        goto fail;
    }
    if (c->err) {
        fprintf(stderr, "peer-redis: cannot reach %s:%d: %s\n", host, port, c->errstr);
        rc = S_ECONNECT;
        goto fail;
    }
    /* Bounds blocking writes and the setup commands; the run loops wait in
     * ppoll with their own limits. */
    if (redisSetTimeout(c, io_tv) != REDIS_OK) {
        rc = s_io_error(c, "set timeout");
        goto fail;
    }
    *out = c;
    c = NULL;
fail:
    if (c)
        redisFree(c);
    return rc;
}

/* Run one command (ARGC text arguments) and wait for its reply, which must
 * have TYPE. On S_OK *out holds the reply (caller frees) when OUT is given. */
static int s_command(redisContext *c, int type, const char *what, int argc,
                     const char **argv, redisReply **out)
{
    int rc = S_OK;
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (out)
        *out = NULL;
    if (!r) {
        rc = s_io_error(c, what);
        goto fail;
    }
    if ((rc = s_expect(r, type, what)))
        goto fail;
    if (out) {
        *out = r;
        r = NULL;
    }
fail:
    if (r)
        freeReplyObject(r);
    return rc;
}

/* Send everything appended on C, then return the next reply, waiting up to
 * WAIT_NS for it (0: take only what has arrived). S_OK with *out set
 * (caller frees) or NULL when nothing came in time; S_EIO on a failed
 * connection. hiredis's own redisGetReply would block without a limit. */
static int s_reply(redisContext *c, uint64_t wait_ns, redisReply **out)
{
    int rc = S_OK;
    int written = 0;
    void *r = NULL;
    uint64_t until = peer_now_ns() + wait_ns;
    *out = NULL;
    while (!written && rc == S_OK)
        if (redisBufferWrite(c, &written) != REDIS_OK)
            rc = s_io_error(c, "send");
    if (rc == S_OK && redisGetReplyFromReader(c, &r) != REDIS_OK)
        rc = s_io_error(c, "reply");
    while (rc == S_OK && !r) {
        uint64_t now = peer_now_ns(), left = until > now ? until - now : 0;
        struct timespec ts = { (time_t) (left / 1000000000u), (long) (left % 1000000000u) };
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        int n = ppoll(&p, 1, &ts, NULL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "peer-redis: poll: %s\n", strerror(errno));
            rc = S_EIO;
            goto fail;
        }
        if (n == 0)
            break;
        if (redisBufferRead(c) != REDIS_OK || redisGetReplyFromReader(c, &r) != REDIS_OK)
            rc = s_io_error(c, "receive");
    }
    if (rc == S_OK)
        *out = r;
fail:
    return rc;
}

/* Check one producer reply: XADD answers the new entry's ID, PUBLISH the
 * number of subscribers that got the message. */
static int s_produced_one(s_lane_t *self, const redisReply *r)
{
    int rc = S_OK;
    if (self->o->workload == PEER_W0) {
        if ((rc = s_expect(r, REDIS_REPLY_INTEGER, "PUBLISH")))
            goto fail;
        if (r->integer < 1)
            self->unheard++;
    } else if (self->o->workload == PEER_W4) {
        if ((rc = s_expect(r, REDIS_REPLY_INTEGER, "EVALSHA")))
            goto fail;
    } else if ((rc = s_expect(r, REDIS_REPLY_STRING, "XADD")))
        goto fail;
    self->acked++;
    self->last_ns = peer_now_ns();
fail:
    return rc;
}

/* Producer thread: COUNT stamped messages, pipelined, with at most a window
 * of replies outstanding (W0: window x 10); W1-lat paces them at opts.rate.
 * A message counts only once its reply is in. */
static void *s_produce(void *arg)
{
    s_lane_t *self = arg;
    const peer_opts_t *o = self->o;
    int rc = S_OK;
    bool w0 = o->workload == PEER_W0;
    uint64_t window = w0 ? (uint64_t) o->window * 10 : o->window;
    double gap_ns = o->workload == PEER_W1_LAT ? 1e9 / o->rate : 0;
    uint64_t sent = 0;
    redisReply *r = NULL;
    bool w4 = o->workload == PEER_W4;
    uint8_t *buf = malloc(w4 ? PEER_W4_ORDER_MAX : o->size);
    const char *argv[9];
    size_t lens[9];
    int argc;
    if (!buf) {
        rc = S_ENOMEM;
        goto fail;
    }
    if (w4) {
        argc = 9;
        argv[0] = "EVALSHA", argv[1] = self->sha, argv[2] = "4";
        argv[3] = "peer-redis:w4:routes", argv[4] = "peer-redis:w4:orders";
        argv[5] = self->key, argv[6] = "peer-redis:w4:audit";
        argv[7] = "shop.orders", argv[8] = (const char *) buf;
    } else if (w0) {
        argc = 3;
        argv[0] = "PUBLISH", argv[1] = self->key, argv[2] = (const char *) buf;
    } else {
        argc = 5;
        argv[0] = "XADD", argv[1] = self->key, argv[2] = "*", argv[3] = "d";
        argv[4] = (const char *) buf;
    }
    for (int i = 0; i < argc - 1; i++)
        lens[i] = strlen(argv[i]);
    lens[argc - 1] = o->size;
    self->first_ns = peer_now_ns();
    while (self->acked < self->count) {
        uint64_t now = peer_now_ns(), wait = S_STALL_NS;
        bool pacing = false;
        while (sent < self->count && sent - self->acked < window) {
            uint64_t due = gap_ns > 0 ? peer_due_ns(self->first_ns, sent, o->rate) : 0;
            if (due > now) {
                pacing = true;
                wait = due - now;
                break;
            }
            if (w4)
                lens[argc - 1] = peer_w4_order((char *) buf, sent, peer_now_ns());
            else if (gap_ns > 0)
                peer_stamp_at(buf, o->size, sent, due);
            else if (w0)
                peer_stamp_w0(buf, o->size, sent);
            else
                peer_stamp(buf, o->size, sent);
            if (redisAppendCommandArgv(self->pub, argc, argv, lens) != REDIS_OK) {
                rc = s_io_error(self->pub, "append");
                goto fail;
            }
            sent++;
        }
        if ((rc = s_reply(self->pub, wait, &r)))
            goto fail;
        if (!r && !pacing) {
            fprintf(stderr, "peer-redis: %s: no reply in %llu s\n", self->key,
                    S_STALL_NS / 1000000000ull);
            rc = S_EIO;
            goto fail;
        }
        while (r) {
            if ((rc = s_produced_one(self, r)))
                goto fail;
            freeReplyObject(r);
            r = NULL;
            if ((rc = s_reply(self->pub, 0, &r)))
                goto fail;
        }
    }
fail:
    if (r)
        freeReplyObject(r);
    free(buf);
    self->prc = rc;
    atomic_store(&self->produced, true);
    return NULL;
}

/* Record one delivered PAYLOAD, received at NOW: its stamp, once, and in
 * W1-lat its latency. With NOW 0 (W0) the clock is read only for a stamped
 * message or the last (peer_rx_ns). Returns the time used, 0 when none was
 * read. */
static uint64_t s_deliver(s_lane_t *self, const redisReply *payload, uint64_t now)
{
    uint64_t seq, sent_ns;
    bool ok;
    if (self->o->workload == PEER_W4)
        ok = payload->type == REDIS_REPLY_STRING
             && peer_w4_parse(payload->str, payload->len, &seq, &sent_ns)
             && !peer_w4_is_test(seq);
    else
        ok = payload->type == REDIS_REPLY_STRING && payload->len == self->o->size
             && peer_unstamp((const uint8_t *) payload->str, payload->len, &seq, &sent_ns);
    if (!ok || seq >= self->count) {
        self->bad++;
        return now;
    }
    if (!now)
        now = peer_rx_ns(sent_ns, peer_seen_unique(self->seen) + 1 >= self->expect);
    if (peer_seen_add(self->seen, seq) && self->lat && now)
        peer_lat_add(self->lat, sent_ns, now);
    return now;
}

/* True when the consumer should stop waiting: the producer failed, or it is
 * done and nothing new came for S_IDLE_NS. */
static bool s_give_up(s_lane_t *self, uint64_t last_msg_ns)
{
    if (!atomic_load(&self->produced))
        return false;
    return self->prc != S_OK || peer_now_ns() - last_msg_ns > S_IDLE_NS;
}

/* W0 subscriber thread: the SUBSCRIBE was confirmed by main before any
 * publish; read "message" pushes until all arrived or the rest is lost. */
static void *s_subscribe(void *arg)
{
    s_lane_t *self = arg;
    int rc = S_OK;
    redisReply *r = NULL;
    uint64_t last_msg_ns = peer_now_ns();
    while (peer_seen_unique(self->seen) < self->expect) {
        if ((rc = s_reply(self->sub, (uint64_t) S_BLOCK_MS * 1000000u, &r)))
            goto fail;
        if (!r) {
            if (s_give_up(self, last_msg_ns))
                break;
            continue;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3
            || r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message")) {
            rc = s_unexpected(r, "subscriber", "a message push");
            goto fail;
        }
        uint64_t now = s_deliver(self, r->element[2], 0);
        if (now)
            last_msg_ns = self->done_ns = now;
        freeReplyObject(r);
        r = NULL;
    }
fail:
    if (r)
        freeReplyObject(r);
    self->crc = rc;
    return NULL;
}

/* Take the entries of one XREADGROUP reply R: record each payload and put
 * its ID into ACK/ACKLEN from index 3 on (borrowed from R). *n = IDs. */
static int s_take_entries(s_lane_t *self, const redisReply *r, uint64_t now,
                          const char **ack, size_t *acklen, size_t max, size_t *n)
{
    int rc = S_OK;
    const redisReply *entries;
    *n = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1
        || r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2
        || r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
        rc = s_unexpected(r, "XREADGROUP", "[[key, entries]]");
        goto fail;
    }
    entries = r->element[0]->element[1];
    if (entries->elements > max) {
        fprintf(stderr, "peer-redis: XREADGROUP: %zu entries for COUNT %zu\n",
                entries->elements, max);
        rc = S_EREPLY;
        goto fail;
    }
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING) {
            fprintf(stderr, "peer-redis: XREADGROUP: an entry is not [id, fields]\n");
            rc = S_EREPLY;
            goto fail;
        }
        const redisReply *fields = e->element[1];
        if (fields->type == REDIS_REPLY_ARRAY && fields->elements == 2)
            s_deliver(self, fields->element[1], now);
        else
            self->bad++;    /* deleted entry (nil) or not our one field */
        ack[3 + i] = e->element[0]->str;
        acklen[3 + i] = e->element[0]->len;
    }
    *n = entries->elements;
fail:
    return rc;
}

/* Streams consumer thread: XREADGROUP ... COUNT window BLOCK 100 STREAMS key >,
 * then one XACK with every ID of that read, sent together with the next
 * XREADGROUP. Done when all arrived and the last XACK is answered. */
static void *s_consume(void *arg)
{
    s_lane_t *self = arg;
    int rc = S_OK;
    size_t max = self->o->window, pending = 0;
    char count_arg[24], block_arg[24];
    const char *rd[] = { "XREADGROUP", "GROUP", S_GROUP, S_CONSUMER, "COUNT", count_arg,
                         "BLOCK", block_arg, "STREAMS", self->key, ">" };
    const char **ack = malloc((3 + max) * sizeof *ack);
    size_t *acklen = malloc((3 + max) * sizeof *acklen);
    redisReply *r = NULL;
    uint64_t last_msg_ns = peer_now_ns();
    if (!ack || !acklen) {
        rc = S_ENOMEM;
        goto fail;
    }
    snprintf(count_arg, sizeof count_arg, "%zu", max);
    snprintf(block_arg, sizeof block_arg, "%d", S_BLOCK_MS);
    ack[0] = "XACK", ack[1] = self->key, ack[2] = S_GROUP;
    for (int i = 0; i < 3; i++)
        acklen[i] = strlen(ack[i]);
    for (;;) {
        bool more = peer_seen_unique(self->seen) < self->expect && !(pending == 0
                    && s_give_up(self, last_msg_ns));
        size_t n;
        if (more && redisAppendCommandArgv(self->sub, 11, rd, NULL) != REDIS_OK) {
            rc = s_io_error(self->sub, "append");
            goto fail;
        }
        if (pending) {
            if ((rc = s_reply(self->sub, S_STALL_NS, &r)))
                goto fail;
            if (!r) {
                fprintf(stderr, "peer-redis: %s: XACK unanswered\n", self->key);
                rc = S_EIO;
                goto fail;
            }
            if ((rc = s_expect(r, REDIS_REPLY_INTEGER, "XACK")))
                goto fail;
            if ((size_t) r->integer != pending) {
                fprintf(stderr, "peer-redis: XACK acknowledged %lld of %zu\n", r->integer, pending);
                rc = S_EREPLY;
                goto fail;
            }
            freeReplyObject(r);
            r = NULL;
            pending = 0;
            self->done_ns = peer_now_ns();
        }
        if (!more)
            break;
        if ((rc = s_reply(self->sub, S_STALL_NS, &r)))
            goto fail;
        if (!r) {
            fprintf(stderr, "peer-redis: %s: XREADGROUP unanswered\n", self->key);
            rc = S_EIO;
            goto fail;
        }
        if (r->type == REDIS_REPLY_NIL) {   /* BLOCK ran out */
            freeReplyObject(r);
            r = NULL;
            continue;
        }
        uint64_t now = peer_now_ns();
        if ((rc = s_take_entries(self, r, now, ack, acklen, max, &n)))
            goto fail;
        if (n) {
            /* The IDs point into R: append (which copies them) before freeing. */
            if (redisAppendCommandArgv(self->sub, (int) (3 + n), ack, acklen) != REDIS_OK) {
                rc = s_io_error(self->sub, "append");
                goto fail;
            }
            pending = n;
            last_msg_ns = now;
        }
        freeReplyObject(r);
        r = NULL;
    }
fail:
    if (r)
        freeReplyObject(r);
    free(ack);
    free(acklen);
    self->crc = rc;
    return NULL;
}

/* Split "HOST:PORT" (the last colon) into HOST (HOST_MAX bytes) and *port. */
static int s_parse_server(const char *server, char *host, size_t host_max, int *port)
{
    int rc = S_OK;
    const char *colon = strrchr(server, ':');
    char *end;
    long p;
    if (!colon || colon == server || (size_t) (colon - server) >= host_max) {
        rc = S_EUSAGE;
        goto fail;
    }
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || errno || p < 1 || p > 65535) {
        rc = S_EUSAGE;
        goto fail;
    }
    memcpy(host, server, (size_t) (colon - server));
    host[colon - server] = '\0';
    *port = (int) p;
fail:
    if (rc)
        fprintf(stderr, "peer-redis: --server wants HOST:PORT, not '%s'\n", server);
    return rc;
}

/* Fill TEXT with what a counted message means on this server, read from the
 * server itself so the line never claims more than it was configured for. */
static int s_durability(redisContext *c, const peer_opts_t *o, char *text, size_t max)
{
    int rc = S_OK;
    redisReply *info = NULL, *aof = NULL, *fsync = NULL;
    const char *info_argv[] = { "INFO", "server" };
    const char *aof_argv[] = { "CONFIG", "GET", "appendonly" };
    const char *fsync_argv[] = { "CONFIG", "GET", "appendfsync" };
    char version[32] = "?";
    const char *v;
    if ((rc = s_command(c, REDIS_REPLY_STRING, "INFO", 2, info_argv, &info))
        || (rc = s_command(c, REDIS_REPLY_ARRAY, "CONFIG GET", 3, aof_argv, &aof))
        || (rc = s_command(c, REDIS_REPLY_ARRAY, "CONFIG GET", 3, fsync_argv, &fsync)))
        goto fail;
    if (aof->elements != 2 || fsync->elements != 2 || aof->element[1]->type != REDIS_REPLY_STRING
        || fsync->element[1]->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "peer-redis: CONFIG GET: unexpected reply\n");
        rc = S_EREPLY;
        goto fail;
    }
    if (!(v = strstr(info->str, "redis_version:"))
        || sscanf(v, "redis_version:%31[^\r\n]", version) != 1)
        snprintf(version, sizeof version, "?");
    const char *appendonly = aof->element[1]->str, *appendfsync = fsync->element[1]->str;
    if (o->workload == PEER_W0)
        snprintf(text, max, "none: redis %s PUBLISH/SUBSCRIBE keeps nothing and has no "
                 "acknowledgement, a subscriber gets what is published while it is "
                 "connected; publishes pipelined, at most %u replies outstanding",
                 version, o->window * 10);
    else if (o->workload == PEER_W4 && !strcmp(appendonly, "yes")
             && !strcmp(appendfsync, "always"))
        snprintf(text, max, "fsync before ack: redis %s appendonly yes appendfsync always; "
                 "one EVALSHA per order runs a Lua script atomically: XADD the order, HGET "
                 "its topic's routes from a hash of %d routes (an exact-topic lookup: no "
                 "topic patterns, which favours redis), cjson.decode, drop test orders, "
                 "map to the canonical order in Lua (no schema check: redis has none), "
                 "cjson.encode and XADD it, XADD the order unchanged to the audit stream; "
                 "the script's writes reach the AOF together and are fdatasynced before "
                 "its reply. At most %u EVALSHAs unanswered; the consumer group reads the "
                 "canonical stream as in W1", version, S_W4_ROUTES, o->window);
    else if (!strcmp(appendonly, "yes") && !strcmp(appendfsync, "always"))
        snprintf(text, max, "fsync before ack: redis %s appendonly yes appendfsync always; "
                 "an XADD counts when its reply arrives, and redis writes and fdatasyncs "
                 "the AOF once per event-loop pass, for the commands of all clients in "
                 "that pass (group commit), before sending any of their replies; at most "
                 "%u XADDs unanswered per producer. Consumer group: XREADGROUP COUNT %u "
                 "BLOCK %d >, then one XACK carrying every ID of that read, pipelined with "
                 "the next XREADGROUP; reads (logged as XCLAIM) and XACKs are fsynced the "
                 "same way", version, o->window, o->window, S_BLOCK_MS);
    else {
        fprintf(stderr, "peer-redis: warning: server has appendonly %s appendfsync %s, "
                "so acks are not fsynced\n", appendonly, appendfsync);
        snprintf(text, max, "NOT fsynced per ack: redis %s appendonly %s appendfsync %s; "
                 "an XADD counts when its reply arrives",
                 version, appendonly, appendfsync);
    }
fail:
    if (info)
        freeReplyObject(info);
    if (aof)
        freeReplyObject(aof);
    if (fsync)
        freeReplyObject(fsync);
    return rc;
}

/* W4: fresh orders and audit streams, the routes hash (the orders' topic
 * with its three routes, and S_W4_ROUTES - 3 filler topics with one route
 * each) and the script loaded (its SHA1 in LANE->sha). */
static int s_w4_prepare(s_lane_t *lane)
{
    int rc = S_OK, n = 0;
    redisReply *r = NULL;
    const char *del[] = { "DEL", "peer-redis:w4:orders", "peer-redis:w4:audit",
                          "peer-redis:w4:routes" };
    const char *load[] = { "SCRIPT", "LOAD", s_w4_lua };
    enum { S_FILLERS = S_W4_ROUTES - 3 };
    const char **hset = malloc((3 + 2 * (S_FILLERS + 1)) * sizeof *hset);
    char (*names)[2][32] = malloc(S_FILLERS * sizeof *names);
    if (!hset || !names) {
        rc = S_ENOMEM;
        goto fail;
    }
    hset[n++] = "HSET", hset[n++] = "peer-redis:w4:routes";
    hset[n++] = "shop.orders", hset[n++] = "drop-tests,canonical,audit";
    for (int i = 0; i < S_FILLERS; i++) {
        snprintf(names[i][0], sizeof names[i][0], "tenant%d.orders", i);
        snprintf(names[i][1], sizeof names[i][1], "f%d", i);
        hset[n++] = names[i][0], hset[n++] = names[i][1];
    }
    if ((rc = s_command(lane->pub, REDIS_REPLY_INTEGER, "DEL", 4, del, NULL))
        || (rc = s_command(lane->pub, REDIS_REPLY_INTEGER, "HSET", n, hset, NULL))
        || (rc = s_command(lane->pub, REDIS_REPLY_STRING, "SCRIPT LOAD", 3, load, &r)))
        goto fail;
    snprintf(lane->sha, sizeof lane->sha, "%s", r->str);
fail:
    if (r)
        freeReplyObject(r);
    free(hset);
    free(names);
    return rc;
}

/* Connect LANE's two connections and make its stream fresh (DEL, XGROUP
 * CREATE ... MKSTREAM), or for W0 subscribe before anything is published. */
static int s_lane_prepare(s_lane_t *lane, const char *host, int port)
{
    int rc = S_OK;
    redisReply *r = NULL;
    if ((rc = s_connect(host, port, &lane->pub)) || (rc = s_connect(host, port, &lane->sub)))
        goto fail;
    if (lane->o->workload == PEER_W0) {
        const char *argv[] = { "SUBSCRIBE", lane->key };
        if ((rc = s_command(lane->sub, REDIS_REPLY_ARRAY, "SUBSCRIBE", 2, argv, &r)))
            goto fail;
        if (r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING
            || strcmp(r->element[0]->str, "subscribe")) {
            fprintf(stderr, "peer-redis: SUBSCRIBE: unexpected confirmation\n");
            rc = S_EREPLY;
            goto fail;
        }
    } else {
        const char *del[] = { "DEL", lane->key };
        const char *create[] = { "XGROUP", "CREATE", lane->key, S_GROUP, "0", "MKSTREAM" };
        if ((rc = s_command(lane->pub, REDIS_REPLY_INTEGER, "DEL", 2, del, NULL))
            || (rc = s_command(lane->pub, REDIS_REPLY_STATUS, "XGROUP CREATE", 6, create, NULL)))
            goto fail;
        if (lane->o->workload == PEER_W4 && (rc = s_w4_prepare(lane)))
            goto fail;
    }
fail:
    if (r)
        freeReplyObject(r);
    return rc;
}

/* After a clean run: check every lane and print the RESULT line. S_OK when
 * every message arrived exactly once, 1 on loss, duplicates or foreign
 * payloads, S_EREPLY when a producer's count of replies is short. */
static int s_report(const peer_opts_t *o, s_lane_t *lanes, const char *durability)
{
    int rc = S_OK;
    uint64_t start = UINT64_MAX, end = 0, unique = 0, lost = 0, dups = 0, bad = 0;
    double secs;
    for (unsigned i = 0; i < o->streams; i++) {
        s_lane_t *lane = &lanes[i];
        if (lane->acked != lane->count) {
            fprintf(stderr, "peer-redis: %s: %" PRIu64 " of %" PRIu64 " acknowledged\n",
                    lane->key, lane->acked, lane->count);
            rc = S_EREPLY;
            goto fail;
        }
        if (lane->unheard)
            fprintf(stderr, "peer-redis: %s: %" PRIu64 " publishes reached no subscriber\n",
                    lane->key, lane->unheard);
        start = lane->first_ns < start ? lane->first_ns : start;
        end = lane->last_ns > end ? lane->last_ns : end;
        end = lane->done_ns > end ? lane->done_ns : end;
        unique += o->workload == PEER_W4 ? lane->acked : peer_seen_unique(lane->seen);
        lost += lane->expect - peer_seen_unique(lane->seen);
        dups += peer_seen_dups(lane->seen);
        bad += lane->bad;
    }
    secs = end > start ? (double) (end - start) / 1e9 : 0;
    peer_result(o, "redis", secs > 0 ? (double) unique / secs : 0, lanes[0].lat, lost, dups,
                durability);
    if (bad)
        fprintf(stderr, "peer-redis: %" PRIu64 " payloads were not ours\n", bad);
    if (lost || dups || bad)
        rc = 1;
fail:
    return rc;
}

/* Run the workload in O against HOST:PORT: prepare every lane, start the
 * consumers, then the producers, join all, report. s_report's codes, or a
 * negative S_E* code when the run itself failed. */
static int s_run(const peer_opts_t *o, const char *host, int port)
{
    int rc = S_OK;
    unsigned k = o->streams;
    s_lane_t *lanes = calloc(k, sizeof *lanes);
    char durability[S_TEXT_MAX];
    if (!lanes) {
        rc = S_ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < k; i++) {
        s_lane_t *lane = &lanes[i];
        lane->o = o;
        lane->count = o->count / k + (i < o->count % k);
        lane->expect = o->workload == PEER_W4 ? peer_w4_expected(lane->count) : lane->count;
        atomic_init(&lane->produced, false);
        if (o->workload == PEER_W0)
            snprintf(lane->key, sizeof lane->key, "peer-redis:w0");
        else if (o->workload == PEER_W4)
            snprintf(lane->key, sizeof lane->key, "peer-redis:w4:canonical");
        else
            snprintf(lane->key, sizeof lane->key, "peer-redis:stream:%u", i);
        if (!(lane->seen = peer_seen_new(lane->count))
            || (o->workload == PEER_W1_LAT && !(lane->lat = peer_lat_new(lane->count)))) {
            rc = S_ENOMEM;
            goto fail;
        }
        if ((rc = s_lane_prepare(lane, host, port)))
            goto fail;
    }
    if ((rc = s_durability(lanes[0].pub, o, durability, sizeof durability)))
        goto fail;
    for (unsigned i = 0; i < k && !rc; i++) {
        int err = pthread_create(&lanes[i].consumer, NULL,
                                 o->workload == PEER_W0 ? s_subscribe : s_consume, &lanes[i]);
        if (err)
            rc = S_ENOMEM;
        lanes[i].consumer_started = !err;
    }
    for (unsigned i = 0; i < k && !rc; i++) {
        int err = pthread_create(&lanes[i].producer, NULL, s_produce, &lanes[i]);
        if (err)
            rc = S_ENOMEM;
        lanes[i].producer_started = !err;
    }
    if (rc)
        fprintf(stderr, "peer-redis: cannot start threads\n");
fail:
    /* Join whatever started. A lane whose producer never ran is marked
     * failed, so its consumer stops at once instead of waiting it out. */
    for (unsigned i = 0; lanes && i < k; i++) {
        s_lane_t *lane = &lanes[i];
        if (!lane->producer_started) {
            lane->prc = S_ENOMEM;
            atomic_store(&lane->produced, true);
        } else if (pthread_join(lane->producer, NULL) == 0 && lane->prc && !rc) {
            rc = lane->prc;
        }
        if (lane->consumer_started && pthread_join(lane->consumer, NULL) == 0 && lane->crc
            && !rc)
            rc = lane->crc;
    }
    if (!rc)
        rc = s_report(o, lanes, durability);
    for (unsigned i = 0; lanes && i < k; i++) {
        if (lanes[i].pub)
            redisFree(lanes[i].pub);
        if (lanes[i].sub)
            redisFree(lanes[i].sub);
        peer_seen_destroy(&lanes[i].seen);
        peer_lat_destroy(&lanes[i].lat);
    }
    free(lanes);
    return rc;
}

int main(int argc, char **argv)
{
    peer_opts_t o;
    char host[256];
    int port, rc = peer_opts_parse(argc, argv, "peer-redis", S_DEFAULT_SERVER, &o);
    if (rc)
        return rc > 0 ? 0 : 64;
    if (s_parse_server(o.server, host, sizeof host, &port))
        return 64;
    rc = s_run(&o, host, port);
    if (rc == S_ECONNECT)
        return 2;
    if (rc == S_ENOMEM)
        fprintf(stderr, "peer-redis: out of memory\n");
    return rc ? 1 : 0;
}
