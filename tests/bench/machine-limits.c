/*  machine-limits - what this machine allows, measured without a broker, so
 *  that a target sluice misses can be set against the hardware: the disk's
 *  sync latency in the pattern of one LMDB commit (data pages, fdatasync,
 *  then the meta page through an O_DSYNC descriptor), and one core's cost
 *  of the work W0 does per message (XSalsa20-Poly1305 as CurveZMQ boxes
 *  each frame, memcpy, a ZeroMQ message over loopback TCP). Owns its
 *  temporary files and removes them. Single thread except the ZeroMQ peer.
 *  Last line: "RESULT machine fdatasync_p50_us=N ..." for tests/bench/compare.  */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include <zmq.h>

enum {
    S_EXIT_OK = 0,
    S_EXIT_FAIL = 1,                /* a system or library call failed */
    S_EXIT_USAGE = 64,
};

#define S_PAGE 4096
/* Data pages per commit: a W1 commit holds a few hundred small records. */
#define S_COMMIT_PAGES 4
/* The data file's offsets wrap at this size. */
#define S_DATA_BYTES (64u << 20)
/* LMDB keeps two meta pages at the start of the data file and writes them
 * in turn; data pages follow them. */
#define S_META_PAGES 2
#define S_DEFAULT_SYNCS 2000
/* Seconds per CPU and ZeroMQ measurement (a tenth with --quick). */
#define S_CPU_SECONDS 1.0
#define S_ZMQ_MSG 64
/* A peer that stops answering ends the run instead of hanging it. */
#define S_ZMQ_TIMEOUT_MS 10000
#define S_RTT_MAX 1000000

typedef struct {
    const char *dir;                /* --dir, NULL = a fresh mkdtemp in /tmp */
    uint64_t syncs;                 /* --syncs: commits timed */
    bool quick;                     /* --quick: everything a tenth as long */
} s_config_t;

/* Percentiles of one set of samples, microseconds. */
typedef struct {
    size_t n;
    double p50, p90, p99, p999, max;
} s_stats_t;

typedef struct {
    s_stats_t fsync, meta, commit;
    double commits_s;
} s_disk_t;

typedef struct {
    double box_64k, box_300b;       /* MB/s of plaintext */
    double box_300b_ns;             /* one 300-byte box */
    double copy_small, copy_big;    /* MB/s */
    double copy_small_ns;           /* one 256-byte copy */
} s_cpu_t;

typedef struct {
    double msgs_s;                  /* one way, hwm 0 */
    uint64_t msgs;                  /* messages in the timed round */
    s_stats_t rtt;                  /* ping-pong round trips */
} s_zmq_t;

/* The ZeroMQ peer thread's side: its socket and its first error. */
typedef struct {
    void *sock;
    char err[160];
} s_peer_t;

static double s_now(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC always exists on Linux; if it fails, nothing here
     * can be measured. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("machine-limits: clock_gettime");
        abort();
    }
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int s_syserr(const char *call, const char *what)
{
    fprintf(stderr, "machine-limits: %s %s: %s\n", call, what ? what : "", strerror(errno));
    return -1;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile P (0-1] of the N sorted samples V. */
static double s_rank(const double *v, size_t n, double p)
{
    size_t k = (size_t) (p * (double) n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

/* Sorts V in place. */
static s_stats_t s_stats(double *v, size_t n)
{
    s_stats_t s = { .n = n };
    if (n == 0)
        return s;
    qsort(v, n, sizeof *v, s_cmp_double);
    s.p50 = s_rank(v, n, 0.50);
    s.p90 = s_rank(v, n, 0.90);
    s.p99 = s_rank(v, n, 0.99);
    s.p999 = s_rank(v, n, 0.999);
    s.max = v[n - 1];
    return s;
}

static void s_stats_print(const char *name, const s_stats_t *s)
{
    printf("  %-22s %7zu %8.1f %8.1f %8.1f %8.1f %8.1f\n", name, s->n, s->p50, s->p90,
           s->p99, s->p999, s->max);
}

/* ------------------------------------------------------------------ disk */

/* Writes which filesystem and device hold DIR, from /proc/self/mountinfo
 * (the longest mount point with DIR's device number that contains it). */
static int s_describe_fs(const char *dir, char *out, size_t size)
{
    int rc = -1;
    struct stat st;
    struct statfs sf;
    char real[PATH_MAX], line[4096], best_mnt[PATH_MAX] = "", best_type[64] = "",
         best_src[PATH_MAX] = "";
    size_t best_len = 0;
    FILE *f = NULL;

    if (!realpath(dir, real)) {
        s_syserr("realpath", dir);
        goto fail;
    }
    if (stat(real, &st) != 0) {
        s_syserr("stat", real);
        goto fail;
    }
    if (statfs(real, &sf) != 0) {
        s_syserr("statfs", real);
        goto fail;
    }
    f = fopen("/proc/self/mountinfo", "r");
    if (!f) {
        s_syserr("fopen", "/proc/self/mountinfo");
        goto fail;
    }
    while (fgets(line, sizeof line, f)) {
        unsigned maj, min;
        char mnt[PATH_MAX], type[64], src[PATH_MAX];
        const char *sep = strstr(line, " - ");
        size_t len;
        if (!sep || sscanf(line, "%*s %*s %u:%u %*s %4095s", &maj, &min, mnt) != 3
            || sscanf(sep + 3, "%63s %4095s", type, src) != 2)
            continue;
        len = strlen(mnt);
        if (maj != major(st.st_dev) || min != minor(st.st_dev) || len < best_len
            || strncmp(real, mnt, len) != 0
            || (len > 1 && real[len] != '/' && real[len] != '\0'))
            continue;
        best_len = len;
        snprintf(best_mnt, sizeof best_mnt, "%s", mnt);
        snprintf(best_type, sizeof best_type, "%s", type);
        snprintf(best_src, sizeof best_src, "%s", src);
    }
    if (ferror(f)) {
        s_syserr("fgets", "/proc/self/mountinfo");
        goto fail;
    }
    if (best_len > 0)
        snprintf(out, size, "%s on %s (device %u:%u, mounted at %s)", best_type, best_src,
                 major(st.st_dev), minor(st.st_dev), best_mnt);
    else
        snprintf(out, size, "filesystem type 0x%lx on device %u:%u (not in mountinfo)",
                 (unsigned long) sf.f_type, major(st.st_dev), minor(st.st_dev));
    rc = 0;
fail:
    if (f)
        fclose(f);
    return rc;
}

/* Write all of LEN bytes at OFF; -1 (errno set) on failure. */
static int s_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t) n;
        off += n;
    }
    return 0;
}

/* SYNCS commits in PATH, a new file. The file starts empty and grows,
 * as a fresh broker's store does (every bench run starts one); past
 * S_DATA_BYTES the writes wrap and overwrite. The meta page goes through
 * a second descriptor on the same file opened with O_DSYNC, as LMDB's
 * me_mfd does. */
static int s_disk_run(const char *path, uint64_t syncs, s_disk_t *out)
{
    int rc = -1, fd = -1, mfd = -1;
    double *fs = NULL, *meta = NULL, *commit = NULL, start, total;
    char *page = NULL;
    off_t off = S_META_PAGES * S_PAGE;
    uint64_t i;

    fs = calloc(syncs, sizeof *fs);
    meta = calloc(syncs, sizeof *meta);
    commit = calloc(syncs, sizeof *commit);
    if (!fs || !meta || !commit) {
        s_syserr("calloc", "samples");
        goto fail;
    }
    errno = posix_memalign((void **) &page, S_PAGE, S_PAGE);
    if (errno != 0) {
        page = NULL;
        s_syserr("posix_memalign", "page");
        goto fail;
    }
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        s_syserr("open", path);
        goto fail;
    }
    /* The two meta pages exist before the first commit, as in a store
     * LMDB has created. */
    memset(page, 0x4d, S_PAGE);
    for (int k = 0; k < S_META_PAGES; k++) {
        if (s_pwrite_all(fd, page, S_PAGE, (off_t) k * S_PAGE) != 0) {
            s_syserr("pwrite", path);
            goto fail;
        }
    }
    if (fsync(fd) != 0) {
        s_syserr("fsync", path);
        goto fail;
    }
    mfd = open(path, O_WRONLY | O_DSYNC | O_CLOEXEC);
    if (mfd < 0) {
        s_syserr("open O_DSYNC", path);
        goto fail;
    }
    start = s_now();
    for (i = 0; i < syncs; i++) {
        double t0 = s_now(), t1, t2, t3;
        for (int k = 0; k < S_COMMIT_PAGES; k++) {
            if (off + S_PAGE > (off_t) S_DATA_BYTES)
                off = S_META_PAGES * S_PAGE;
            memset(page, (int) (i + (uint64_t) k), 64);
            if (s_pwrite_all(fd, page, S_PAGE, off) != 0) {
                s_syserr("pwrite", path);
                goto fail;
            }
            off += S_PAGE;
        }
        t1 = s_now();
        if (fdatasync(fd) != 0) {
            s_syserr("fdatasync", path);
            goto fail;
        }
        t2 = s_now();
        if (s_pwrite_all(mfd, page, S_PAGE, (off_t) (i % S_META_PAGES) * S_PAGE) != 0) {
            s_syserr("pwrite O_DSYNC", path);
            goto fail;
        }
        t3 = s_now();
        fs[i] = (t2 - t1) * 1e6;
        meta[i] = (t3 - t2) * 1e6;
        commit[i] = (t3 - t0) * 1e6;
    }
    total = s_now() - start;
    out->commits_s = (double) syncs / total;
    out->fsync = s_stats(fs, syncs);
    out->meta = s_stats(meta, syncs);
    out->commit = s_stats(commit, syncs);
    rc = 0;
fail:
    if (mfd >= 0 && close(mfd) != 0 && rc == 0)
        rc = s_syserr("close", path);
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = s_syserr("close", path);
    if (fd >= 0 && unlink(path) != 0 && rc == 0)
        rc = s_syserr("unlink", path);
    free(page);
    free(commit);
    free(meta);
    free(fs);
    return rc;
}

static int s_disk(const s_config_t *cfg, s_disk_t *out)
{
    int rc = -1;
    char tmpdir[] = "/tmp/machine-limits.XXXXXX", path[PATH_MAX], fsdesc[2 * PATH_MAX + 128];
    const char *dir = cfg->dir;

    if (!dir) {
        if (!mkdtemp(tmpdir))
            return s_syserr("mkdtemp", tmpdir);
        dir = tmpdir;
    }
    if ((size_t) snprintf(path, sizeof path, "%s/machine-limits.%ld.data", dir,
                          (long) getpid()) >= sizeof path) {
        fprintf(stderr, "machine-limits: --dir %s is too long\n", dir);
        goto fail;
    }
    if (s_describe_fs(dir, fsdesc, sizeof fsdesc) != 0)
        goto fail;
    printf("disk: %s, %s\n", dir, fsdesc);
    printf("  one commit as LMDB makes it: %d x pwrite %d B at growing offsets (from an\n"
           "  empty file, wrapping at %u MiB), fdatasync, then pwrite %d B of the meta page\n"
           "  through a second descriptor with O_DSYNC; %" PRIu64 " commits back to back\n",
           S_COMMIT_PAGES, S_PAGE, S_DATA_BYTES >> 20, S_PAGE, cfg->syncs);
    if (s_disk_run(path, cfg->syncs, out) != 0)
        goto fail;
    printf("  %-22s %7s %8s %8s %8s %8s %8s\n", "microseconds", "samples", "p50", "p90", "p99",
           "p99.9", "max");
    s_stats_print("fdatasync", &out->fsync);
    s_stats_print("meta write (O_DSYNC)", &out->meta);
    s_stats_print("whole commit", &out->commit);
    printf("  back to back: %.0f commits/s\n", out->commits_s);
    rc = 0;
fail:
    if (dir == tmpdir && rmdir(tmpdir) != 0 && rc == 0)
        rc = s_syserr("rmdir", tmpdir);
    return rc;
}

/* ------------------------------------------------------------------- cpu */

/* MB/s (1e6 bytes) of crypto_box_easy_afternm over LEN-byte buffers for
 * about SECS; *ns is the time of one box. */
static int s_box(size_t len, double secs, double *mb_s, double *ns)
{
    int rc = -1;
    unsigned char pk_a[crypto_box_PUBLICKEYBYTES], sk_a[crypto_box_SECRETKEYBYTES],
        pk_b[crypto_box_PUBLICKEYBYTES], sk_b[crypto_box_SECRETKEYBYTES],
        k[crypto_box_BEFORENMBYTES], nonce[crypto_box_NONCEBYTES];
    unsigned char *m = malloc(len), *c = malloc(len + crypto_box_MACBYTES);
    /* Enough boxes between clock reads that reading it costs nothing. */
    uint64_t n = 0, batch = len >= 65536 ? 8 : 2048;
    double start, now;

    if (!m || !c) {
        s_syserr("malloc", "box buffers");
        goto fail;
    }
    if (crypto_box_keypair(pk_a, sk_a) != 0 || crypto_box_keypair(pk_b, sk_b) != 0
        || crypto_box_beforenm(k, pk_b, sk_a) != 0) {
        fprintf(stderr, "machine-limits: crypto_box_keypair/beforenm failed\n");
        goto fail;
    }
    randombytes_buf(m, len);
    randombytes_buf(nonce, sizeof nonce);
    start = now = s_now();
    do {
        for (uint64_t j = 0; j < batch; j++) {
            if (crypto_box_easy_afternm(c, m, len, nonce, k) != 0) {
                fprintf(stderr, "machine-limits: crypto_box_easy_afternm failed\n");
                goto fail;
            }
            sodium_increment(nonce, sizeof nonce);
        }
        n += batch;
        now = s_now();
    } while (now - start < secs);
    *mb_s = (double) n * (double) len / (now - start) / 1e6;
    *ns = (now - start) / (double) n * 1e9;
    rc = 0;
fail:
    free(c);
    free(m);
    return rc;
}

/* MB/s of memcpy of LEN bytes within a buffer of 2 x SPAN bytes (source
 * in the first half, destination in the second) for about SECS. */
static int s_copy(size_t len, size_t span, double secs, double *mb_s, double *ns)
{
    int rc = -1;
    char *buf = NULL;
    /* volatile: a call to the library's memcpy, as for a message whose
     * size is known only at run time, not moves the compiler inlines. */
    volatile size_t vlen = len;
    uint64_t n = 0, batch = len >= (1u << 20) ? 1 : 4096;
    size_t off = 0;
    double start, now;

    errno = posix_memalign((void **) &buf, 64, 2 * span);
    if (errno != 0) {
        buf = NULL;
        s_syserr("posix_memalign", "copy buffer");
        goto fail;
    }
    /* Touch every page before timing. */
    memset(buf, 0x5a, 2 * span);
    start = now = s_now();
    do {
        for (uint64_t j = 0; j < batch; j++) {
            memcpy(buf + span + off, buf + off, vlen);
            off += len;
            if (off + len > span)
                off = 0;
        }
        __asm__ volatile("" : : "r"(buf) : "memory");
        n += batch;
        now = s_now();
    } while (now - start < secs);
    *mb_s = (double) n * (double) len / (now - start) / 1e6;
    *ns = (now - start) / (double) n * 1e9;
    rc = 0;
fail:
    free(buf);
    return rc;
}

static int s_cpu(const s_config_t *cfg, s_cpu_t *out)
{
    double secs = cfg->quick ? S_CPU_SECONDS / 10 : S_CPU_SECONDS, ns;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (cores < 0)
        return s_syserr("sysconf", "_SC_NPROCESSORS_ONLN");
    printf("cpu: one thread (%ld cores online), about %.1f s a measurement\n", cores, secs);
    if (s_box(65536, secs, &out->box_64k, &ns) != 0)
        return -1;
    printf("  crypto_box_easy_afternm 64 KiB   %8.0f MB/s\n", out->box_64k);
    if (s_box(300, secs, &out->box_300b, &out->box_300b_ns) != 0)
        return -1;
    printf("  crypto_box_easy_afternm 300 B    %8.0f MB/s  (%.0f ns a box, %.0f boxes/s)\n",
           out->box_300b, out->box_300b_ns, 1e9 / out->box_300b_ns);
    if (s_copy(256, 128 << 10, secs, &out->copy_small, &out->copy_small_ns) != 0)
        return -1;
    printf("  memcpy 256 B within 256 KiB      %8.0f MB/s  (%.1f ns a copy)\n",
           out->copy_small, out->copy_small_ns);
    if (s_copy(64u << 20, 64u << 20, secs, &out->copy_big, &ns) != 0)
        return -1;
    printf("  memcpy 64 MiB                    %8.0f MB/s\n", out->copy_big);
    return 0;
}

/* ------------------------------------------------------------------- zmq */

/* Messages between the two threads: the first byte says what it is. */
enum {
    S_TAG_DATA = 'D',               /* count it */
    S_TAG_END = 'E',                /* answer with the count, 8 bytes */
    S_TAG_PING = 'P',               /* send it back */
    S_TAG_QUIT = 'Q',
};

static int s_zerr(const char *call, char *err, size_t size)
{
    if (err)
        snprintf(err, size, "%s: %s", call, zmq_strerror(zmq_errno()));
    else
        fprintf(stderr, "machine-limits: %s: %s\n", call, zmq_strerror(zmq_errno()));
    return -1;
}

static int s_zsend(void *sock, const void *buf, size_t len)
{
    while (zmq_send(sock, buf, len, 0) < 0) {
        if (zmq_errno() != EINTR)
            return -1;
    }
    return 0;
}

/* Bytes received (at most SIZE kept), -1 on error or time-out. */
static int s_zrecv(void *sock, void *buf, size_t size)
{
    int n;
    while ((n = zmq_recv(sock, buf, size, 0)) < 0) {
        if (zmq_errno() != EINTR)
            return -1;
    }
    return n;
}

static void *s_peer_main(void *arg)
{
    s_peer_t *peer = arg;
    unsigned char buf[S_ZMQ_MSG];
    uint64_t count = 0;

    for (;;) {
        int n = s_zrecv(peer->sock, buf, sizeof buf);
        if (n < 0) {
            s_zerr("zmq_recv (peer)", peer->err, sizeof peer->err);
            break;
        }
        if (n == 0)
            continue;
        if (buf[0] == S_TAG_DATA) {
            count++;
        } else if (buf[0] == S_TAG_END) {
            if (s_zsend(peer->sock, &count, sizeof count) != 0) {
                s_zerr("zmq_send (peer)", peer->err, sizeof peer->err);
                break;
            }
            count = 0;
        } else if (buf[0] == S_TAG_PING) {
            if (s_zsend(peer->sock, buf, (size_t) n) != 0) {
                s_zerr("zmq_send (peer)", peer->err, sizeof peer->err);
                break;
            }
        } else {
            break;
        }
    }
    return NULL;
}

/* Sends COUNT data messages and the end mark; *secs from the first send
 * to the peer's count coming back. */
static int s_zmq_round(void *sock, uint64_t count, double *secs)
{
    unsigned char msg[S_ZMQ_MSG];
    uint64_t got = 0;
    double start;

    memset(msg, 0, sizeof msg);
    msg[0] = S_TAG_DATA;
    start = s_now();
    for (uint64_t i = 0; i < count; i++) {
        if (s_zsend(sock, msg, sizeof msg) != 0)
            return s_zerr("zmq_send", NULL, 0);
    }
    msg[0] = S_TAG_END;
    if (s_zsend(sock, msg, 1) != 0)
        return s_zerr("zmq_send", NULL, 0);
    if (s_zrecv(sock, &got, sizeof got) != (int) sizeof got)
        return s_zerr("zmq_recv (the peer's count)", NULL, 0);
    *secs = s_now() - start;
    if (got != count) {
        fprintf(stderr, "machine-limits: sent %" PRIu64 " ZeroMQ messages, the peer got %"
                PRIu64 "\n", count, got);
        return -1;
    }
    return 0;
}

static int s_zmq_set(void *sock, int opt, int value, const char *name)
{
    if (zmq_setsockopt(sock, opt, &value, sizeof value) != 0)
        return s_zerr(name, NULL, 0);
    return 0;
}

static int s_zmq(const s_config_t *cfg, s_zmq_t *out)
{
    int rc = -1, prc;
    double secs = cfg->quick ? S_CPU_SECONDS / 10 : S_CPU_SECONDS, warm_s, t, start;
    uint64_t warm = cfg->quick ? 10000 : 100000;
    void *ctx = NULL, *sock = NULL;
    s_peer_t peer = { NULL, "" };
    pthread_t thread;
    bool started = false;
    char endpoint[256];
    size_t elen = sizeof endpoint;
    unsigned char msg[S_ZMQ_MSG];
    double *rtt = NULL;
    size_t nrtt = 0;

    ctx = zmq_ctx_new();
    if (!ctx) {
        s_zerr("zmq_ctx_new", NULL, 0);
        goto fail;
    }
    peer.sock = zmq_socket(ctx, ZMQ_PAIR);
    sock = zmq_socket(ctx, ZMQ_PAIR);
    if (!peer.sock || !sock) {
        s_zerr("zmq_socket", NULL, 0);
        goto fail;
    }
    if (s_zmq_set(peer.sock, ZMQ_RCVHWM, 0, "zmq_setsockopt ZMQ_RCVHWM") != 0
        || s_zmq_set(peer.sock, ZMQ_SNDHWM, 0, "zmq_setsockopt ZMQ_SNDHWM") != 0
        || s_zmq_set(peer.sock, ZMQ_LINGER, 0, "zmq_setsockopt ZMQ_LINGER") != 0
        || s_zmq_set(sock, ZMQ_RCVHWM, 0, "zmq_setsockopt ZMQ_RCVHWM") != 0
        || s_zmq_set(sock, ZMQ_SNDHWM, 0, "zmq_setsockopt ZMQ_SNDHWM") != 0
        || s_zmq_set(sock, ZMQ_LINGER, 0, "zmq_setsockopt ZMQ_LINGER") != 0
        || s_zmq_set(sock, ZMQ_RCVTIMEO, S_ZMQ_TIMEOUT_MS, "zmq_setsockopt ZMQ_RCVTIMEO") != 0)
        goto fail;
    if (zmq_bind(peer.sock, "tcp://127.0.0.1:*") != 0) {
        s_zerr("zmq_bind tcp://127.0.0.1:*", NULL, 0);
        goto fail;
    }
    if (zmq_getsockopt(peer.sock, ZMQ_LAST_ENDPOINT, endpoint, &elen) != 0) {
        s_zerr("zmq_getsockopt ZMQ_LAST_ENDPOINT", NULL, 0);
        goto fail;
    }
    if (zmq_connect(sock, endpoint) != 0) {
        s_zerr("zmq_connect", NULL, 0);
        goto fail;
    }
    prc = pthread_create(&thread, NULL, s_peer_main, &peer);
    if (prc != 0) {
        fprintf(stderr, "machine-limits: pthread_create: %s\n", strerror(prc));
        goto fail;
    }
    started = true;
    printf("zmq: PAIR to PAIR over %s, %d-byte messages, plain text, hwm 0, two threads\n"
           "  (and ZeroMQ's I/O thread)\n", endpoint, S_ZMQ_MSG);
    /* A first round connects and warms up, and sizes the timed one. */
    if (s_zmq_round(sock, warm, &warm_s) != 0)
        goto fail;
    out->msgs = (uint64_t) ((double) warm / warm_s * secs);
    if (out->msgs < warm)
        out->msgs = warm;
    if (s_zmq_round(sock, out->msgs, &t) != 0)
        goto fail;
    out->msgs_s = (double) out->msgs / t;
    printf("  one way       %10.0f msgs/s  (%" PRIu64 " messages in %.2f s)\n", out->msgs_s,
           out->msgs, t);

    rtt = calloc(S_RTT_MAX, sizeof *rtt);
    if (!rtt) {
        s_syserr("calloc", "round trips");
        goto fail;
    }
    memset(msg, 0, sizeof msg);
    msg[0] = S_TAG_PING;
    start = s_now();
    while (nrtt < S_RTT_MAX && s_now() - start < secs) {
        double t0 = s_now();
        if (s_zsend(sock, msg, sizeof msg) != 0) {
            s_zerr("zmq_send", NULL, 0);
            goto fail;
        }
        if (s_zrecv(sock, msg, sizeof msg) != S_ZMQ_MSG) {
            s_zerr("zmq_recv (ping)", NULL, 0);
            goto fail;
        }
        rtt[nrtt++] = (s_now() - t0) * 1e6;
    }
    out->rtt = s_stats(rtt, nrtt);
    printf("  ping-pong     round trip p50 %.1f us, p99 %.1f us, p99.9 %.1f us (%zu round trips)\n",
           out->rtt.p50, out->rtt.p99, out->rtt.p999, out->rtt.n);
    rc = 0;
fail:
    if (started) {
        msg[0] = S_TAG_QUIT;
        if (s_zsend(sock, msg, 1) != 0) {
            /* Without the quit mark the peer would wait for ever: stop
             * here rather than hang. */
            s_zerr("zmq_send (quit)", NULL, 0);
            exit(S_EXIT_FAIL);
        }
        prc = pthread_join(thread, NULL);
        if (prc != 0) {
            fprintf(stderr, "machine-limits: pthread_join: %s\n", strerror(prc));
            rc = -1;
        }
        if (peer.err[0]) {
            fprintf(stderr, "machine-limits: ZeroMQ peer: %s\n", peer.err);
            rc = -1;
        }
    }
    if (sock && zmq_close(sock) != 0)
        rc = s_zerr("zmq_close", NULL, 0);
    if (peer.sock && zmq_close(peer.sock) != 0)
        rc = s_zerr("zmq_close", NULL, 0);
    if (ctx && zmq_ctx_term(ctx) != 0)
        rc = s_zerr("zmq_ctx_term", NULL, 0);
    free(rtt);
    return rc;
}

/* --------------------------------------------------------------- options */

static const char s_usage[] =
    "usage: machine-limits [--dir DIR] [--syncs N] [--quick]\n"
    "\n"
    "What this machine allows, without a broker:\n"
    "  disk  the sync latency of one LMDB commit (4 x 4 KiB pwrite at growing\n"
    "        offsets, fdatasync, then the 4 KiB meta page through an O_DSYNC\n"
    "        descriptor), repeated back to back: p50/p90/p99/p99.9/max of the\n"
    "        fdatasync, of the meta write and of the whole commit, and commits/s\n"
    "  cpu   one thread: crypto_box_easy_afternm (XSalsa20-Poly1305, CurveZMQ's\n"
    "        per-frame box) on 64 KiB and on 300-byte buffers; memcpy of 256 B\n"
    "        within 256 KiB (cache-resident) and of 64 MiB\n"
    "  zmq   64-byte plain-text messages between two threads over\n"
    "        tcp://127.0.0.1 (PAIR): msgs/s one way with hwm 0, and the\n"
    "        ping-pong round trip\n"
    "\n"
    "  --dir DIR   directory for the disk test (a file is created and removed\n"
    "              there); default: a fresh directory under /tmp, removed after\n"
    "  --syncs N   commits to time (default 2000)\n"
    "  --quick     a tenth of everything (a smoke test, not a figure)\n"
    "  --help      this text\n"
    "\n"
    "The last line is: RESULT machine fdatasync_p50_us=N fdatasync_p99_us=N\n"
    "commit_p50_us=N commit_p99_us=N commit_p999_us=N box_64k_mb_s=N\n"
    "box_300b_mb_s=N memcpy_mb_s=N zmq_msgs_s=N zmq_rtt_us=N memcpy_64m_mb_s=N\n"
    "commits_s=N  (memcpy_mb_s is the 256-byte copy, zmq_rtt_us the p50)\n"
    "Exit: 0 ok, 1 a call failed (it is named), 64 usage.\n";

static int s_parse(int argc, char **argv, s_config_t *cfg, bool *help)
{
    enum { O_DIR = 256, O_SYNCS, O_QUICK };
    static const struct option options[] = {
        { "dir", required_argument, NULL, O_DIR },
        { "syncs", required_argument, NULL, O_SYNCS },
        { "quick", no_argument, NULL, O_QUICK },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool syncs_given = false;
    struct stat st;
    char *end;
    unsigned long long v;
    int opt;

    memset(cfg, 0, sizeof *cfg);
    *help = false;
    cfg->syncs = S_DEFAULT_SYNCS;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(s_usage, stdout);
            *help = true;
            return S_EXIT_OK;
        case O_DIR:
            if (!*optarg) {
                fprintf(stderr, "machine-limits: --dir wants a directory\n");
                return S_EXIT_USAGE;
            }
            if (stat(optarg, &st) != 0) {
                fprintf(stderr, "machine-limits: --dir %s: stat: %s\n", optarg,
                        strerror(errno));
                return S_EXIT_USAGE;
            }
            if (!S_ISDIR(st.st_mode)) {
                fprintf(stderr, "machine-limits: --dir %s is not a directory\n", optarg);
                return S_EXIT_USAGE;
            }
            cfg->dir = optarg;
            break;
        case O_SYNCS:
            errno = 0;
            v = strtoull(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end || errno != 0 || v < 1
                || v > 10000000) {
                fprintf(stderr, "machine-limits: --syncs wants a number from 1 to "
                        "10000000, not '%s'\n", optarg);
                return S_EXIT_USAGE;
            }
            cfg->syncs = v;
            syncs_given = true;
            break;
        case O_QUICK:
            cfg->quick = true;
            break;
        case ':':
            fprintf(stderr, "machine-limits: option '%s' needs a value\n", argv[optind - 1]);
            return S_EXIT_USAGE;
        default:
            fprintf(stderr, "machine-limits: unknown option '%s' (--help)\n",
                    argv[optind - 1]);
            return S_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "machine-limits: unexpected argument '%s' (--help)\n", argv[optind]);
        return S_EXIT_USAGE;
    }
    if (cfg->quick && !syncs_given)
        cfg->syncs = S_DEFAULT_SYNCS / 10;
    return S_EXIT_OK;
}

int main(int argc, char **argv)
{
    s_config_t cfg;
    s_disk_t disk = { 0 };
    s_cpu_t cpu = { 0 };
    s_zmq_t zq = { 0 };
    bool help;
    int rc = s_parse(argc, argv, &cfg, &help);

    if (rc != S_EXIT_OK || help)
        return rc;
    /* Results go to a pipe in compare: keep the order of lines with
     * stderr's. */
    if (setvbuf(stdout, NULL, _IOLBF, 0) != 0) {
        fprintf(stderr, "machine-limits: setvbuf failed\n");
        return S_EXIT_FAIL;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "machine-limits: sodium_init failed\n");
        return S_EXIT_FAIL;
    }
    if (s_disk(&cfg, &disk) != 0 || s_cpu(&cfg, &cpu) != 0 || s_zmq(&cfg, &zq) != 0)
        return S_EXIT_FAIL;
    printf("RESULT machine fdatasync_p50_us=%.0f fdatasync_p99_us=%.0f commit_p50_us=%.0f "
           "commit_p99_us=%.0f commit_p999_us=%.0f box_64k_mb_s=%.0f box_300b_mb_s=%.0f "
           "memcpy_mb_s=%.0f zmq_msgs_s=%.0f zmq_rtt_us=%.0f memcpy_64m_mb_s=%.0f "
           "commits_s=%.0f\n",
           disk.fsync.p50, disk.fsync.p99, disk.commit.p50, disk.commit.p99, disk.commit.p999,
           cpu.box_64k, cpu.box_300b, cpu.copy_small, zq.msgs_s, zq.rtt.p50, cpu.copy_big,
           disk.commits_s);
    if (fflush(stdout) != 0) {
        perror("machine-limits: stdout");
        return S_EXIT_FAIL;
    }
    return S_EXIT_OK;
}
