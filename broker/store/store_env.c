/*  store_env - the store's environment: open (lock the data dir, check
 *  and load it, move an older format to the current one) and close, the
 *  instance id, map growth, settling the freelist and usage. Broker
 *  thread only. It does not run transactions (store_txn.c), read or write
 *  records, or judge damage (store_check.c runs the open's checks).  */
#include "sld_store_int.h"
#include "sld_guard.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

void *sld_store__grow(void *p, size_t *cap, size_t need, size_t size)
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
int sld_store__mdb_fail(const char *what, int mrc)
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

int sld_store__refuse(const sld_store_t *s, const char *why)
{
    fprintf(stderr, "sluiced: store: %s/data.mdb: %s; refusing to open it "
            "(nothing was changed)\n", s->dir, why);
    return SL_ESTORE;
}

static size_t s_round_page(size_t n, size_t page)
{
    return (n + page - 1) / page * page;
}

/* ----------------------------------------------------------------- format */

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
        k = sld_store__val(copy + at + 2 * sizeof(size_t), klen);
        mrc = sld_store__rec_put(mt, dbi, tag, &k, copy + at + 2 * sizeof(size_t) + klen, vlen);
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
        sld_store__topic_encode(rec, &s->topics[i].info);
        k = sld_store__val(s->topics[i].info.name, strlen(s->topics[i].info.name));
        v = sld_store__val(rec, sizeof rec);
        mrc = mdb_put(mt, s->db_topics, &k, &v, 0);
    }
    if (mrc == 0)
        mrc = s_resum(mt, s->db_subs, "subs");
    if (mrc == 0)
        mrc = s_resum(mt, s->db_idents, "idents");
    if (mrc == 0)
        mrc = s_resum(mt, s->db_registry, "registry");
    if (mrc == 0)
        mrc = s_resum(mt, s->db_routes, "routes");
    if (mrc == 0)
        mrc = s_resum(mt, s->db_trace, "trace");
    if (mrc == 0)
        mrc = s_resum(mt, s->db_cursors, "cursors");
    if (mrc == 0)
        mrc = s_resum(mt, s->db_acked, "acked");
    if (mrc == ENOMEM)
        return SL_ENOMEM;
    if (mrc)
        return sld_store__mdb_fail("start checksums", mrc);
    rc = sld_store__bounds_put(s, mt, "sum_below", &mrc);
    if (rc == 0 && mrc == 0) {
        s->format = s->format_sealed ? S_FORMAT_SEALED : S_FORMAT;
        slc_put_be32(fmt, s->format);
        k = sld_store__val("format", 6);
        v = sld_store__val(fmt, sizeof fmt);
        mrc = mdb_put(mt, s->db_meta, &k, &v, 0);
    }
    if (rc == 0 && mrc)
        rc = sld_store__mdb_fail("start checksums", mrc);
    if (rc == 0) {
        s->format_sums = true;
        fprintf(stderr, "sluiced: store: %s: records now carry checksums (format %" PRIu32
                ")%s\n", s->dir, s->format, s->ntopics ? "; records stored before stay "
                "readable without one" : "");
    }
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

    k = sld_store__val("format", 6);
    mrc = mdb_get(mt, s->db_meta, &k, &v);
    if (mrc || v.mv_size != 4) {
        rc = sld_store__refuse(s, "no store format recorded");
        goto fail;
    }
    s->format = slc_get_be32(v.mv_data);
    s->format_sealed = s->format == S_FORMAT_SEALED || s->format == S_FORMAT_SEALED_LEGACY;
    s->format_sums = s->format == S_FORMAT || s->format == S_FORMAT_SEALED;
    if (!s->format_sealed && !s->format_sums && s->format != S_FORMAT_LEGACY) {
        char why[96];
        snprintf(why, sizeof why, "store format %" PRIu32 ", this build reads formats "
                 "%d to %d", s->format, S_FORMAT_LEGACY, S_FORMAT_SEALED);
        rc = sld_store__refuse(s, why);
        goto fail;
    }
    k = sld_store__val("instance", 8);
    mrc = mdb_get(mt, s->db_meta, &k, &v);
    if (mrc || v.mv_size != sizeof s->instance) {
        rc = sld_store__refuse(s, "no instance id recorded");
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
            rc = sld_store__refuse(s, mdb_strerror(mrc));
            goto fail;
        }
        if (st.ms_entries > 0) {
            rc = sld_store__refuse(s, "holds data but no sluice metadata");
            goto fail;
        }
        fresh = true;
        mrc = mdb_dbi_open(mt, "meta", MDB_CREATE, &s->db_meta);
    }
    if (mrc) {
        rc = sld_store__refuse(s, mdb_strerror(mrc));
        goto fail;
    }
    if (fresh) {
        rc = s_random(s->instance, sizeof s->instance);
        if (rc)
            goto fail;
        s->format = S_FORMAT;
        s->format_sums = true;
        slc_put_be32(fmt, S_FORMAT);
        k = sld_store__val("format", 6);
        v = sld_store__val(fmt, 4);
        mrc = mdb_put(mt, s->db_meta, &k, &v, 0);
        if (mrc == 0) {
            k = sld_store__val("instance", 8);
            v = sld_store__val(s->instance, sizeof s->instance);
            mrc = mdb_put(mt, s->db_meta, &k, &v, 0);
        }
        if (mrc)
            rc = sld_store__mdb_fail("initialise meta", mrc);
    } else {
        rc = s_check_meta(s, mt);
    }
fail:
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
        { "registry", &s->db_registry },   { "routes", &s->db_routes },
        { "trace", &s->db_trace },         { "keys", &s->db_keys },
        { "dlq", &s->db_dlq },
    };

    mrc = mdb_txn_begin(s->env, NULL, 0, &mt);
    if (mrc) {
        rc = sld_store__mdb_fail("begin", mrc);
        goto fail;
    }
    rc = s_load_meta(s, mt);
    if (rc)
        goto fail;
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        mrc = mdb_dbi_open(mt, dbs[i].name, MDB_CREATE, dbs[i].dbi);
        if (mrc) {
            rc = sld_store__refuse(s, mdb_strerror(mrc));
            goto fail;
        }
    }
    rc = sld_store__load_topics(s, mt);
    if (rc == 0 && !s->format_sums && !s->read_only)
        rc = s_sums_start(s, mt);
    if (rc == 0)
        rc = sld_store__load_keys(s, mt, seal_key);
    if (rc == 0 && s->format_sums)
        rc = sld_store__bounds_load(s, mt, "sum_below", true, &s->sums, &s->nsums);
    if (rc)
        goto fail;
    mrc = mdb_txn_commit(mt);
    mt = NULL;
    if (mrc)
        rc = sld_store__mdb_fail("commit", mrc);
fail:
    if (mt)
        mdb_txn_abort(mt);
    return rc;
}

/* LMDB's assertions abort the process; inside a guarded read one ends
 * that read instead (sld_guard). */
static void s_lmdb_assert(MDB_env *env, const char *msg)
{
    (void) env;
    sld_guard_escape(msg);
}

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
        rc = sld_store__preflight(s);
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
        rc = sld_store__mdb_fail("create environment", mrc);
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
        rc = sld_store__refuse(s, mdb_strerror(mrc));
        goto fail;
    }
    s->env_open = true;
    mrc = mdb_env_info(s->env, &info);
    if (mrc) {
        rc = sld_store__mdb_fail("environment info", mrc);
        goto fail;
    }
    s->map_size = info.me_mapsize;
    if (s->map_size_max < s->map_size)
        s->map_size_max = s->map_size;
    rc = sld_store__covers(s);
    if (rc)
        goto fail;
    for (int attempt = 0;; attempt++) {
        MDB_txn *pin = NULL;
        mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &pin);
        if (mrc) {
            rc = sld_store__mdb_fail("begin", mrc);
            goto fail;
        }
        rc = sld_store__structure(s, pin);
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
        sld_store__start_check(s);
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
            sld_store__mdb_fail("final sync", mrc);
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
    sld_store__secret_free(s);
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

/* -------------------------------------------------------------------- map */

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
        rc = sld_store__mdb_fail("grow map", mrc);
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
    MDB_val k = sld_store__val("settle", 6), v = sld_store__val("", 0);

    assert(self);
    rc = sld_store_begin(self, true, &txn);
    if (rc)
        return rc;
    mrc = mdb_put(txn->mt, self->db_meta, &k, &v, 0);
    if (mrc == 0)
        mrc = mdb_del(txn->mt, self->db_meta, &k, NULL);
    if (mrc) {
        sld_txn_abort(&txn);
        return sld_store__mdb_fail("settle the freelist", mrc);
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
