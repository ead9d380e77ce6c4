/*  test_cert - slc_cert: key pairs written and read back, the file modes
 *  and the no-overwrite rule, keys given as Z85 text or as files, and what
 *  is refused (group-readable secrets, garbage, mismatched halves). Also
 *  checks that czmq's zcert_load reads our certificate. Each test works
 *  in its own temporary directory, removed at the end.  */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <czmq.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "slc_cert.h"

typedef struct {
    char dir[64];
    char cert[128];
    char pub[128];
} fx_t;

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test_cert.XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->cert, sizeof fx->cert, "%s/alice.cert", fx->dir);
    snprintf(fx->pub, sizeof fx->pub, "%s/alice.pub", fx->dir);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    DIR *d = opendir(fx->dir);
    if (d) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(path, sizeof path, "%s/%s", fx->dir, e->d_name);
                unlink(path);
            }
        closedir(d);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void s_write(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static char *s_read(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int s_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_round_trip(void **state)
{
    fx_t *fx = *state;
    slc_cert_t c, got;
    char err[256] = "";
    assert_int_equal(slc_cert_generate(&c), 0);
    assert_true(c.has_secret);
    assert_int_equal(slc_cert_save(&c, "alice", fx->cert, fx->pub, err,
                                   sizeof err), 0);

    struct stat st;
    assert_int_equal(stat(fx->cert, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(fx->pub, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(s_entries(fx->dir), 2);      /* no temporary left */

    char z85[41];
    slc_key_z85(c.public_key, z85);
    assert_int_equal(strlen(z85), 40);
    char want[64];
    snprintf(want, sizeof want, "%s\n", z85);
    assert_string_equal(s_read(fx->pub), want);
    const char *text = s_read(fx->cert);
    assert_non_null(strstr(text, "    name = \"alice\"\n"));
    assert_non_null(strstr(text, "curve\n    public-key = \""));

    assert_int_equal(slc_cert_load(fx->cert, &got, err, sizeof err), 0);
    assert_true(got.has_secret);
    assert_memory_equal(got.public_key, c.public_key, 32);
    assert_memory_equal(got.secret_key, c.secret_key, 32);

    assert_int_equal(slc_cert_load(fx->pub, &got, err, sizeof err), 0);
    assert_false(got.has_secret);
    assert_memory_equal(got.public_key, c.public_key, 32);

    /* czmq reads the same file: same keys, same name. */
    zcert_t *z = zcert_load(fx->cert);
    assert_non_null(z);
    assert_memory_equal(zcert_public_key(z), c.public_key, 32);
    assert_memory_equal(zcert_secret_key(z), c.secret_key, 32);
    assert_string_equal(zcert_meta(z, "name"), "alice");
    zcert_destroy(&z);

    slc_cert_wipe(&c);
    slc_cert_wipe(&got);
    static const uint8_t zero[sizeof c] = { 0 };
    assert_memory_equal(&c, zero, sizeof c);
}

/* A certificate czmq wrote is one we read. */
static void test_czmq_cert(void **state)
{
    fx_t *fx = *state;
    zcert_t *z = zcert_new();
    assert_non_null(z);
    zcert_set_meta(z, "name", "bob");
    assert_int_equal(zcert_save_secret(z, fx->cert), 0);
    slc_cert_t got;
    char err[256] = "";
    assert_int_equal(slc_cert_load(fx->cert, &got, err, sizeof err), 0);
    assert_true(got.has_secret);
    assert_memory_equal(got.public_key, zcert_public_key(z), 32);
    assert_memory_equal(got.secret_key, zcert_secret_key(z), 32);
    /* Its public half alone. */
    assert_int_equal(zcert_save_public(z, fx->pub), 0);
    assert_int_equal(slc_cert_load(fx->pub, &got, err, sizeof err), 0);
    assert_false(got.has_secret);
    assert_memory_equal(got.public_key, zcert_public_key(z), 32);
    zcert_destroy(&z);
}

static void test_mode_refused(void **state)
{
    fx_t *fx = *state;
    slc_cert_t c, got;
    char err[256] = "";
    assert_int_equal(slc_cert_generate(&c), 0);
    assert_int_equal(slc_cert_save(&c, "alice", fx->cert, NULL, err,
                                   sizeof err), 0);
    assert_int_equal(chmod(fx->cert, 0644), 0);
    assert_int_equal(slc_cert_load(fx->cert, &got, err, sizeof err),
                     SL_EDENIED);
    assert_false(got.has_secret);                 /* wiped */
    char want[512];
    snprintf(want, sizeof want, "%s is readable by group or others "
             "(mode 0644); chmod 600 %s", fx->cert, fx->cert);
    assert_string_equal(err, want);
    assert_int_equal(chmod(fx->cert, 0660), 0);
    assert_int_equal(slc_cert_load(fx->cert, &got, err, sizeof err),
                     SL_EDENIED);
    /* The public key of such a file may still be read: it is no secret. */
    uint8_t key[32];
    assert_int_equal(slc_key_parse(fx->cert, key, err, sizeof err), 0);
    assert_memory_equal(key, c.public_key, 32);
    /* A public key alone may be world-readable. */
    assert_int_equal(slc_cert_save(&c, "alice", NULL, fx->pub, err,
                                   sizeof err), 0);
    assert_int_equal(slc_cert_load(fx->pub, &got, err, sizeof err), 0);
    slc_cert_wipe(&c);
}

static void test_no_overwrite(void **state)
{
    fx_t *fx = *state;
    slc_cert_t a, b;
    char err[256] = "", before[4096];
    assert_int_equal(slc_cert_generate(&a), 0);
    assert_int_equal(slc_cert_generate(&b), 0);
    assert_int_equal(slc_cert_save(&a, "alice", fx->cert, fx->pub, err,
                                   sizeof err), 0);
    snprintf(before, sizeof before, "%s", s_read(fx->cert));
    assert_int_equal(slc_cert_save(&b, "alice", fx->cert, fx->pub, err,
                                   sizeof err), SL_EEXIST);
    assert_non_null(strstr(err, "exists"));
    assert_string_equal(s_read(fx->cert), before);

    /* Only the .pub exists: the certificate is not written either. */
    assert_int_equal(unlink(fx->cert), 0);
    assert_int_equal(slc_cert_save(&b, "alice", fx->cert, fx->pub, err,
                                   sizeof err), SL_EEXIST);
    assert_int_equal(access(fx->cert, F_OK), -1);
    assert_int_equal(s_entries(fx->dir), 1);

    /* A directory that does not exist. */
    char path[256];
    snprintf(path, sizeof path, "%s/nope/x.cert", fx->dir);
    assert_int_equal(slc_cert_save(&b, "x", path, NULL, err, sizeof err),
                     SL_ESYS);
    assert_non_null(strstr(err, "No such file"));
    /* Names that do not fit the file. */
    assert_int_equal(slc_cert_save(&b, "a\"b", fx->cert, NULL, err,
                                   sizeof err), SL_EINVAL);
    assert_int_equal(slc_cert_save(&b, "", fx->cert, NULL, err, sizeof err),
                     SL_EINVAL);
    slc_cert_wipe(&a);
    slc_cert_wipe(&b);
}

static void test_key_parse(void **state)
{
    fx_t *fx = *state;
    slc_cert_t c;
    char err[256] = "", z85[41];
    uint8_t key[32];
    assert_int_equal(slc_cert_generate(&c), 0);
    slc_key_z85(c.public_key, z85);

    /* Z85 text. */
    assert_int_equal(slc_key_parse(z85, key, err, sizeof err), 0);
    assert_memory_equal(key, c.public_key, 32);

    /* A .pub file, with or without its newline, and a certificate. */
    assert_int_equal(slc_cert_save(&c, "alice", fx->cert, fx->pub, err,
                                   sizeof err), 0);
    memset(key, 0, sizeof key);
    assert_int_equal(slc_key_parse(fx->pub, key, err, sizeof err), 0);
    assert_memory_equal(key, c.public_key, 32);
    char path[256];
    snprintf(path, sizeof path, "%s/bare.pub", fx->dir);
    s_write(path, z85, 0644);
    memset(key, 0, sizeof key);
    assert_int_equal(slc_key_parse(path, key, err, sizeof err), 0);
    assert_memory_equal(key, c.public_key, 32);
    memset(key, 0, sizeof key);
    assert_int_equal(slc_key_parse(fx->cert, key, err, sizeof err), 0);
    assert_memory_equal(key, c.public_key, 32);
    slc_cert_wipe(&c);
}

static void test_garbage(void **state)
{
    fx_t *fx = *state;
    char err[256] = "";
    uint8_t key[32];
    slc_cert_t got;

    assert_int_equal(slc_key_parse("hello", key, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "neither a 40-character Z85 key nor"));
    assert_int_equal(slc_key_parse("", key, err, sizeof err), SL_EINVAL);
    /* 40 characters, one of them not Z85. */
    assert_int_equal(slc_key_parse("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf~",
                                   key, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "character 40"));
    /* Valid characters whose group overflows 32 bits. */
    assert_int_equal(slc_key_decode("########################################",
                                    key, err, sizeof err), SL_EINVAL);

    char path[256];
    snprintf(path, sizeof path, "%s/junk", fx->dir);
    s_write(path, "this is not a certificate\n", 0600);
    assert_int_equal(slc_cert_load(path, &got, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, path));
    assert_int_equal(slc_key_parse(path, key, err, sizeof err), SL_EINVAL);

    s_write(path, "curve\n    public-key = \"short\"\n", 0600);
    assert_int_equal(slc_cert_load(path, &got, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "public-key"));

    s_write(path, "curve\n  public-key = \"x\"\n", 0600);
    assert_int_equal(slc_cert_load(path, &got, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "indentation"));

    /* Halves of two different key pairs. */
    slc_cert_t a, b;
    char pa[41], sb[41], text[256];
    assert_int_equal(slc_cert_generate(&a), 0);
    assert_int_equal(slc_cert_generate(&b), 0);
    slc_key_z85(a.public_key, pa);
    slc_key_z85(b.secret_key, sb);
    snprintf(text, sizeof text, "curve\n    public-key = \"%s\"\n"
             "    secret-key = \"%s\"\n", pa, sb);
    s_write(path, text, 0600);
    assert_int_equal(slc_cert_load(path, &got, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "does not belong"));
    slc_cert_wipe(&a);
    slc_cert_wipe(&b);

    snprintf(path, sizeof path, "%s/missing.cert", fx->dir);
    assert_int_equal(slc_cert_load(path, &got, err, sizeof err), SL_ENOTFOUND);
    assert_int_equal(slc_cert_load(fx->dir, &got, err, sizeof err), SL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_czmq_cert, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_mode_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_no_overwrite, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_key_parse, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_garbage, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
