/*  fuzz_config - libFuzzer target for the broker's settings
 *  (broker/sld_config.h): the input as a config file (mode 0600) through
 *  sld_config_load, each input line as "key=value" through sld_config_set,
 *  and the lines as a command line through sld_config_args (--config is
 *  left out: it would read any path). Checks the documented contract: a
 *  failure leaves CFG unchanged and says why; a loaded result keeps the
 *  two-setting rules; sld_config_print writes what sld_config_load reads
 *  back unchanged. One temp dir per process (removed at exit); single
 *  thread.  */
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sld_config.h"
#include "sluice_codes.h"

#define S_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_config: %s:%d: check failed: %s\n", \
                    __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

#define S_LINES_MAX 32                  /* lines used as settings or argv */

/* libFuzzer passes no context to the callback, so the paths are file
 * scope; set once in LLVMFuzzerInitialize, never changed after. */
static char s_dir[PATH_MAX];
static char s_input[PATH_MAX];          /* the input as a config file */
static char s_printed[PATH_MAX];        /* sld_config_print output */
static FILE *s_devnull;                 /* --help / --version output */

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove(path);
}

static void s_cleanup(void)
{
    if (s_dir[0])
        nftw(s_dir, s_rm, 8, FTW_DEPTH | FTW_PHYS);
}

static void s_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    S_CHECK(f);
    S_CHECK(size == 0 || fwrite(data, 1, size, f) == size);
    S_CHECK(fclose(f) == 0);
}

/* Print CFG, load the text over the defaults, print again: the two texts
 * must be equal (and the load must succeed). */
static void s_check_roundtrip(const sld_config_t *cfg)
{
    char *text1 = NULL, *text2 = NULL, err[512] = "";
    size_t len1 = 0, len2 = 0;
    FILE *out = open_memstream(&text1, &len1);
    S_CHECK(out);
    sld_config_print(cfg, out);
    S_CHECK(!ferror(out));
    S_CHECK(fclose(out) == 0);
    s_write_file(s_printed, text1, len1);

    sld_config_t back;
    sld_config_defaults(&back);
    int rc = sld_config_load(&back, s_printed, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "fuzz_config: printed config does not load: %s\n"
                "--- printed:\n%s---\n", err, text1);
        abort();
    }
    out = open_memstream(&text2, &len2);
    S_CHECK(out);
    sld_config_print(&back, out);
    S_CHECK(fclose(out) == 0);
    if (len1 != len2 || memcmp(text1, text2, len1) != 0) {
        fprintf(stderr, "fuzz_config: print/load/print differs\n"
                "--- first:\n%s--- second:\n%s---\n", text1, text2);
        abort();
    }
    free(text1);
    free(text2);
}

static void s_check_rules(const sld_config_t *cfg)
{
    S_CHECK(cfg->map_size_max >= cfg->map_size);
    S_CHECK(cfg->max_message_bytes <= cfg->max_frame_bytes);
}

static void s_fuzz_load(const uint8_t *data, size_t size)
{
    sld_config_t cfg, before;
    char err[512] = "";
    sld_config_defaults(&cfg);
    memcpy(&before, &cfg, sizeof cfg);
    s_write_file(s_input, data, size);
    int rc = sld_config_load(&cfg, s_input, err, sizeof err);
    if (rc != 0) {
        S_CHECK(rc == SL_EINVAL);
        S_CHECK(memcmp(&cfg, &before, sizeof cfg) == 0);
        S_CHECK(err[0] != 0);
        return;
    }
    s_check_rules(&cfg);
    s_check_roundtrip(&cfg);
}

/* LINE is "key=value" (no '=': an empty value). ERR sizes vary with the
 * line number so that truncation and a NULL ERR are covered too. */
static void s_fuzz_set(sld_config_t *cfg, char *line, size_t n)
{
    static const size_t err_lens[] = { 512, 0, 1, 9 };
    size_t err_len = err_lens[n % 4];
    char err[512] = "";
    char *value = strchr(line, '=');
    if (value)
        *value++ = 0;
    else
        value = line + strlen(line);
    sld_config_t before;
    memcpy(&before, cfg, sizeof before);
    int rc = sld_config_set(cfg, line, value, err_len ? err : NULL, err_len);
    if (rc != 0) {
        S_CHECK(rc == SL_EINVAL);
        S_CHECK(memcmp(cfg, &before, sizeof before) == 0);
        S_CHECK(err_len <= 1 || err[0] != 0);
        S_CHECK(err_len == 0 || strlen(err) < err_len);
        return;
    }
    /* Setting the same text again changes nothing more. */
    sld_config_t again;
    memcpy(&again, cfg, sizeof again);
    S_CHECK(sld_config_set(&again, line, value, NULL, 0) == 0);
    S_CHECK(memcmp(&again, cfg, sizeof again) == 0);
}

static bool s_is_config_flag(const char *arg)
{
    return strncmp(arg, "--config", 8) == 0 && (arg[8] == 0 || arg[8] == '=');
}

static void s_fuzz_args(char **lines, size_t n)
{
    char *argv[S_LINES_MAX + 2];
    int argc = 0;
    argv[argc++] = (char *) "sluiced";
    for (size_t i = 0; i < n; i++)
        if (!s_is_config_flag(lines[i]))
            argv[argc++] = lines[i];
    argv[argc] = NULL;
    sld_config_t cfg;
    sld_action_t action = SLD_RUN;
    char err[512] = "";
    sld_config_defaults(&cfg);
    int rc = sld_config_args(&cfg, argc, argv, &action, s_devnull, err, sizeof err);
    if (rc != 0) {
        S_CHECK(rc == SL_EINVAL);
        S_CHECK(err[0] != 0);
        return;
    }
    S_CHECK(action == SLD_RUN || action == SLD_HELP || action == SLD_VERSION
            || action == SLD_CHECK || action == SLD_PRINT_CONFIG);
    s_check_rules(&cfg);
    s_check_roundtrip(&cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc; (void) argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(s_dir, sizeof s_dir, "%s/sluice-fuzz-config.XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s_dir)) {
        perror("fuzz_config: mkdtemp");
        exit(1);
    }
    atexit(s_cleanup);
    /* The directory is 0700 and the files are created under umask 077:
     * sld_config_load refuses a world-writable file. */
    umask(077);
    snprintf(s_input, sizeof s_input, "%s/input.cfg", s_dir);
    snprintf(s_printed, sizeof s_printed, "%s/printed.cfg", s_dir);
    s_devnull = fopen("/dev/null", "w");
    if (!s_devnull) {
        perror("fuzz_config: /dev/null");
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_fuzz_load(data, size);

    /* The same bytes as lines: settings, then a command line. */
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *lines[S_LINES_MAX];
    size_t n = 0;
    for (char *p = buf; p && n < S_LINES_MAX; n++) {
        lines[n] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = 0;
    }
    /* sld_config_set gets a copy: s_fuzz_set cuts the line at '='. */
    sld_config_t cfg;
    sld_config_defaults(&cfg);
    for (size_t i = 0; i < n; i++) {
        char *copy = strdup(lines[i]);
        S_CHECK(copy);
        s_fuzz_set(&cfg, copy, i);
        free(copy);
    }
    s_fuzz_args(lines, n);
    free(buf);
    return 0;
}
