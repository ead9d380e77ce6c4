/*  console_exec - the `sluice` CLI as a child process (console_exec.h).
 *  posix_spawn with a pipe for stdout+stderr, stdin from /dev/null, the
 *  working directory the caller's private temp dir, SLUICE_* variables
 *  removed from the environment (the options given are the whole truth).
 *  A run past its time limit is killed. Any thread.  */
#include "console_exec.h"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define S_OUTPUT_MAX (4u << 20)     /* output kept; the rest is read and dropped */
#define S_MAX_ARGS 48

int console_tmpdir(char *dir, size_t dirlen, char *err, size_t errlen)
{
    const char *base = getenv("TMPDIR");

    if (!base || !*base)
        base = "/tmp";
    snprintf(dir, dirlen, "%s/sluice-console-XXXXXX", base);
    /* mkdtemp makes it mode 0700: only this user reads the tables,
     * mappings and fixtures written there. */
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "cannot make a temporary directory in %s: %s",
                 base, strerror(errno));
        return SL_ESYS;
    }
    return 0;
}

static int s_remove(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    remove(path);
    return 0;
}

void console_tmpdir_remove(const char *dir)
{
    if (dir && *dir)
        nftw(dir, s_remove, 16, FTW_DEPTH | FTW_PHYS);
}

int console_write_file(const char *dir, const char *name, const char *text,
                       size_t len)
{
    char path[PATH_MAX];
    int fd, rc = 0;

    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return SL_ESYS;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return SL_ESYS;
    while (len > 0) {
        ssize_t k = write(fd, text, len);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rc = SL_ESYS;
            break;
        }
        text += k;
        len -= (size_t)k;
    }
    if (close(fd) != 0)
        rc = SL_ESYS;
    return rc;
}

void console_run_clear(console_run_t *run)
{
    free(run->output);
    memset(run, 0, sizeof *run);
}

void console_exec_find(const char *given, const char *self_exe, char *out,
                       size_t outlen)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    char *slash;

    /* Absolute: the CLI runs with its temporary directory as cwd. */
    if (given) {
        if (!strchr(given, '/') || !realpath(given, dir))
            snprintf(dir, sizeof dir, "%s", given);
        snprintf(out, outlen, "%s", dir);
        return;
    }
    snprintf(dir, sizeof dir, "%s", self_exe ? self_exe : "");
    slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        snprintf(path, sizeof path, "%s/sluice", dir);
        if (access(path, X_OK) == 0) {
            snprintf(out, outlen, "%s", path);
            return;
        }
        snprintf(path, sizeof path, "%s/../cli/sluice", dir);
        if (access(path, X_OK) == 0) {
            snprintf(out, outlen, "%s", path);
            return;
        }
    }
    snprintf(out, outlen, "sluice");
}

/* The environment without SLUICE_* (caller frees the array only). */
static char **s_env(void)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + 1, sizeof *env);
    if (!env)
        return NULL;
    for (n = 0; environ[n]; n++)
        if (strncmp(environ[n], "SLUICE_", 7) != 0)
            env[k++] = environ[n];
    return env;
}

static uint64_t s_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Read FD into RUN until EOF or DEADLINE (ms). True at EOF. */
static bool s_collect(int fd, console_run_t *run, uint64_t deadline)
{
    char buf[16384];

    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        uint64_t now = s_now_ms();
        ssize_t k;

        if (now >= deadline)
            return false;
        if (poll(&pfd, 1, (int)(deadline - now)) < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        k = read(fd, buf, sizeof buf);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return true;
        if (run->len + (size_t)k <= S_OUTPUT_MAX) {
            memcpy(run->output + run->len, buf, (size_t)k);
            run->len += (size_t)k;
        }
    }
}

int console_exec(const console_t *con, const console_id_t *id, const char *dir,
                 const char *const *args, console_run_t *out, char *err,
                 size_t errlen)
{
    const char *argv[S_MAX_ARGS];
    char timeout[16];
    posix_spawn_file_actions_t fa;
    char **env = NULL;
    int pipefd[2] = { -1, -1 }, status = 0, rc = 0;
    size_t n = 0, i;
    pid_t pid;
    bool eof;

    memset(out, 0, sizeof *out);
    argv[n++] = con->sluice;
    for (i = 0; args[i] && n < S_MAX_ARGS - 12; i++)
        argv[n++] = args[i];
    argv[n++] = "--broker";
    argv[n++] = con->endpoint;
    if (con->server_key[0]) {
        argv[n++] = "--server-key";
        argv[n++] = con->server_key;
        if (id->cert[0]) {
            argv[n++] = "--cert";
            argv[n++] = id->cert;
        }
    }
    else
        argv[n++] = "--insecure-plaintext";
    snprintf(timeout, sizeof timeout, "%u", con->timeout_s);
    argv[n++] = "--timeout";
    argv[n++] = timeout;
    argv[n] = NULL;

    out->output = malloc(S_OUTPUT_MAX + 1);
    env = s_env();
    if (!out->output || !env) {
        snprintf(err, errlen, "out of memory");
        rc = SL_ENOMEM;
        goto done;
    }
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot make a pipe: %s", strerror(errno));
        rc = SL_ESYS;
        goto done;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    posix_spawn_file_actions_addchdir_np(&fa, dir);
    rc = strchr(con->sluice, '/')
       ? posix_spawn(&pid, con->sluice, &fa, NULL, (char *const *)argv, env)
       : posix_spawnp(&pid, con->sluice, &fa, NULL, (char *const *)argv, env);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    pipefd[1] = -1;
    if (rc != 0) {
        snprintf(err, errlen, "cannot run %s: %s (give the CLI with --sluice PATH)",
                 con->sluice, strerror(rc));
        rc = SL_ESYS;
        goto done;
    }
    eof = s_collect(pipefd[0], out, s_now_ms() + (uint64_t)con->timeout_s * 1000u + 30000u);
    if (!eof) {
        kill(pid, SIGKILL);
        out->timed_out = true;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    out->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    out->output[out->len] = '\0';
done:
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    free(env);
    if (rc != 0)
        console_run_clear(out);
    return rc;
}
