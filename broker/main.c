/*  sluiced - the sluice broker daemon: parse the configuration, wire the
 *  log and the server, serve until SIGTERM or SIGINT; SIGHUP re-reads the
 *  config file and flags and applies what can change at run time; SIGUSR1
 *  reopens --log-file. Nothing else.
 *  Signals arrive through a signalfd the server polls, so no handler and
 *  no global flag is needed.  */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include "slc_codec.h"
#include <sodium.h>
#include "sld_config.h"
#include "sld_seal.h"
#include "sld_server.h"
#include "sld_server_log.h"
#include "sld_store.h"
#ifdef SLUICE_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static int s_verify_envelope(const void *envelope, size_t len)
{
    Sluice__Envelope *e = NULL;
    int rc = slc_envelope_decode(envelope, len, &e);
    slc_envelope_free(&e);
    return rc;
}

static int s_check(const sld_config_t *cfg)
{
    sld_store_options_t so;
    sld_store_options_init(&so);
    so.dir = cfg->data_dir;
    so.map_size = cfg->map_size;
    so.map_size_max = cfg->map_size_max;
    so.sync = cfg->sync;
    so.read_only = true;        /* a check never changes the store */
    sld_store_t *store = NULL;
    uint8_t *key = NULL;
    char why[512];
    if (cfg->encrypt_at_rest[0]) {
        key = sld_seal_init() == 0 ? sodium_malloc(SLD_SEAL_KEY_LEN) : NULL;
        if (!key || sld_seal_key_load(cfg->encrypt_at_rest, key, why, sizeof why) != 0) {
            fprintf(stderr, "sluiced: --encrypt-at-rest: %s\n", key ? why : "out of memory");
            sodium_free(key);
            return 1;
        }
        so.seal_key = key;
    }
    int rc = sld_store_open(&so, &store);
    sodium_free(key);
    if (rc != 0) {
        fprintf(stderr, "sluiced: cannot open the store in %s\n", cfg->data_dir);
        if (rc == SL_ESTORE)
            printf("store check: the store does not open (why is on stderr: damage, "
                   "or a wrong or missing key)\n");
        return 1;
    }
    rc = sld_store_check(store, s_verify_envelope, stdout);
    sld_store_destroy(&store);
    return rc == 0 ? 0 : 1;
}

/* Keep freed frame buffers for reuse. A publish batch arrives in a buffer
 * of up to a few MB (ZeroMQ allocates it; with CurveZMQ a zeroed one for
 * the plain text too) and lives until its commit. glibc's default serves
 * such sizes with fresh mmaps, or trims them from the heap once freed, so
 * every batch faulted its pages in again: with 1 KiB messages that doubled
 * the broker's CPU per message. Fixed thresholds keep up to 64 MiB of
 * free heap for the next batches instead (memory the limits bound anyway:
 * max_frame_bytes, max_inflight). */
static void s_malloc_tune(void)
{
#ifdef __GLIBC__
    if (mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) != 1
        || mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024) != 1)
        fprintf(stderr, "sluiced: mallopt failed; running with malloc's defaults\n");
#endif
}

/* Raise the soft open-file limit to the hard one, and say what it is. Each
 * connection holds a descriptor from its accept on, before any handshake:
 * at the usual soft limit of 1,024, 1,500 idle sockets left libzmq's
 * listener failing accept() with EMFILE in a busy loop (the socket stays
 * readable), at 100% CPU, slowing every client 70-87 times. The hard limit
 * is the administrator's (ulimit -Hn, systemd LimitNOFILE=). */
static void s_raise_nofile(const sld_config_t *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("sluiced: getrlimit(RLIMIT_NOFILE)");
        return;
    }
    rlim_t was = rl.rlim_cur, want = rl.rlim_max;
    if (want == RLIM_INFINITY) {
        /* Linux caps descriptors at fs.nr_open, whatever the hard limit. */
        unsigned long long nr_open = 0;
        FILE *f = fopen("/proc/sys/fs/nr_open", "r");
        if (!f || fscanf(f, "%llu", &nr_open) != 1)
            nr_open = 1048576;
        if (f)
            fclose(f);
        want = (rlim_t) nr_open;
    }
    if (want > was) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            fprintf(stderr, "sluiced: open-file limit raised from %" PRIu64 " to %" PRIu64
                    " (the hard limit)\n", (uint64_t) was, (uint64_t) want);
        else {
            fprintf(stderr, "sluiced: cannot raise the open-file limit from %" PRIu64 ": %s\n",
                    (uint64_t) was, strerror(errno));
            want = was;
        }
    }
    else
        fprintf(stderr, "sluiced: open-file limit %" PRIu64 " (the hard limit)\n",
                (uint64_t) was);
    /* Room for every allowed session plus the store, the listener and
     * libzmq's own descriptors, and for connections waiting in the
     * handshake (limits/handshake_timeout bounds how long each holds one). */
    uint64_t need = 2 * (uint64_t) cfg->max_connections + 256;
    if ((uint64_t) want < need)
        fprintf(stderr, "sluiced: warning: open-file limit %" PRIu64 " is below 2 x "
                "limits/max_connections + 256 = %" PRIu64 ": raise the hard limit (ulimit -Hn, "
                "systemd LimitNOFILE=) or lower max_connections (docs/security.md)\n",
                (uint64_t) want, need);
}

/* Tell the service manager (Type=notify, deploy/sluiced.service) how far
 * the broker is: READY=1 once the store is open and the endpoint bound,
 * RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on the way out.
 * Without $NOTIFY_SOCKET, or built without libsystemd, it does nothing. */
static void s_notify(const char *state)
{
#ifdef SLUICE_HAVE_SYSTEMD
    int rc = sd_notify(0, state);
    if (rc < 0)
        fprintf(stderr, "sluiced: cannot tell the service manager %s: %s\n", state,
                strerror(-rc));
#else
    (void) state;
#endif
}

int main(int argc, char **argv)
{
    sld_config_t cfg;
    sld_action_t action;
    char err[512];
    if (sld_config_args(&cfg, argc, argv, &action, stdout, err, sizeof err) != 0) {
        fprintf(stderr, "sluiced: %s\n(sluiced --help lists the options)\n", err);
        return 64;
    }
    switch (action) {
    case SLD_HELP:
    case SLD_VERSION:
        return 0;
    case SLD_PRINT_CONFIG:
        sld_config_print(&cfg, stdout);
        return 0;
    case SLD_CHECK:
        return s_check(&cfg);
    case SLD_NEW_KEY:
        if (sld_seal_key_create(cfg.encrypt_at_rest, err, sizeof err) != 0) {
            fprintf(stderr, "sluiced: --new-key: %s\n", err);
            return 1;
        }
        printf("wrote a new at-rest key to %s (mode 0600); start with "
               "--encrypt-at-rest %s\n", cfg.encrypt_at_rest, cfg.encrypt_at_rest);
        return 0;
    case SLD_RUN:
        break;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
        perror("sluiced: sigprocmask");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    sld_log_t *log = NULL;
    if (sld_log_open(&cfg, &log, err, sizeof err) != 0) {
        fprintf(stderr, "sluiced: %s\n", err);
        return 1;
    }
    s_malloc_tune();                    /* after the log: it may say something */
    s_raise_nofile(&cfg);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) {
        perror("sluiced: signalfd");
        sld_log_destroy(&log);
        return 1;
    }
    sld_server_t *server = NULL;
    if (sld_server_new(&cfg, &server) != 0) {
        close(sfd);
        sld_log_destroy(&log);
        return 1;
    }
    s_notify("READY=1");
    int rc;
    while ((rc = sld_server_run(server, sfd)) == 0) {
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof si) != (ssize_t) sizeof si)
            continue;
        if (si.ssi_signo == SIGUSR1) {
            if (sld_log_reopen(log, err, sizeof err) == SL_ESYS)
                sld_log_line(log, 0, "log", "SIGUSR1: %s", err);
            continue;
        }
        if (si.ssi_signo != SIGHUP)
            break;
        s_notify("RELOADING=1");
        sld_config_t fresh;
        sld_action_t again;
        if (sld_config_args(&fresh, argc, argv, &again, stdout, err, sizeof err) != 0)
            fprintf(stderr, "sluiced: reload refused, settings unchanged: %s\n", err);
        else
            sld_server_reload(server, &fresh);
        s_notify("READY=1");
    }
    s_notify("STOPPING=1");
    fprintf(stderr, "sluiced: shutting down: every acked message is committed\n");
    sld_server_destroy(&server);
    sld_log_destroy(&log);
    close(sfd);
    return rc == 0 ? 0 : 1;
}
