/*  test_push_sign - http_sign (adapters/http/http_sign.c), the signing of
 *  `sluice-http push`: the Standard Webhooks test vector, one signature
 *  per secret in file order, and the secret file's refusals with their
 *  line numbers. Writes its files in a temporary directory; no broker,
 *  no network (tests/http/test_push.py drives the real thing).  */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sluice.h"
#include "http_sign.h"

/* The convention's published example (standard-webhooks, spec tests). */
#define V_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define V_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define V_TS 1614265330u
#define V_BODY "{\"test\": 2432232314}"
#define V_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
/* 32 bytes of 0x01, and its signature of the same message. */
#define K2_SECRET "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="

static char s_dir[64];

static int s_setup(void **state)
{
    (void) state;
    snprintf(s_dir, sizeof s_dir, "/tmp/test_push_sign.XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void) state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write TEXT to a file in the temporary directory; its path in PATH. */
static void s_file(char *path, size_t len, const char *text)
{
    static int n;
    snprintf(path, len, "%s/secrets.%d", s_dir, n++);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static http_sign_t *s_load(const char *text)
{
    char path[128], err[256] = "";
    http_sign_t *sign = NULL;
    s_file(path, sizeof path, text);
    assert_int_equal(http_sign_load(path, &sign, err, sizeof err), 0);
    assert_non_null(sign);
    return sign;
}

/* Loading TEXT fails with RC and a reason holding WORDS. */
static void s_refused(const char *text, int rc, const char *words)
{
    char path[128], err[256] = "";
    http_sign_t *sign = NULL;
    s_file(path, sizeof path, text);
    assert_int_equal(http_sign_load(path, &sign, err, sizeof err), rc);
    assert_null(sign);
    if (!strstr(err, words))
        fail_msg("reason '%s' does not say '%s'", err, words);
}

static void test_vector(void **state)
{
    (void) state;
    char out[HTTP_SIGN_HEADER_MAX];
    http_sign_t *sign = s_load("# the example\n\n  " V_SECRET " \r\n");
    assert_int_equal(http_sign_count(sign), 1);
    assert_int_equal(http_sign_header(sign, V_ID, V_TS, V_BODY,
                                      strlen(V_BODY), out, sizeof out), 0);
    assert_string_equal(out, V_SIG);
    /* Another timestamp, another signature. */
    assert_int_equal(http_sign_header(sign, V_ID, V_TS + 1, V_BODY,
                                      strlen(V_BODY), out, sizeof out), 0);
    assert_string_not_equal(out, V_SIG);
    http_sign_destroy(&sign);
    assert_null(sign);
    http_sign_destroy(&sign);
}

static void test_rotation(void **state)
{
    (void) state;
    char out[HTTP_SIGN_HEADER_MAX], one[HTTP_SIGN_HEADER_MAX];
    http_sign_t *both = s_load(K2_SECRET "\n" V_SECRET "\n");
    http_sign_t *k2 = s_load(K2_SECRET "\n");
    assert_int_equal(http_sign_count(both), 2);
    assert_int_equal(http_sign_header(both, V_ID, V_TS, V_BODY,
                                      strlen(V_BODY), out, sizeof out), 0);
    assert_int_equal(http_sign_header(k2, V_ID, V_TS, V_BODY,
                                      strlen(V_BODY), one, sizeof one), 0);
    /* File order, one space between. */
    char want[2 * HTTP_SIGN_HEADER_MAX];
    snprintf(want, sizeof want, "%s %s", one, V_SIG);
    assert_string_equal(out, want);
    /* Too small a buffer is refused, not cut. */
    assert_int_equal(http_sign_header(both, V_ID, V_TS, V_BODY,
                                      strlen(V_BODY), out, 60), SL_ETOOBIG);
    /* An empty body signs "id.ts." */
    assert_int_equal(http_sign_header(k2, V_ID, V_TS, NULL, 0, out,
                                      sizeof out), 0);
    assert_string_not_equal(out, one);
    http_sign_destroy(&both);
    http_sign_destroy(&k2);
}

static void test_refusals(void **state)
{
    (void) state;
    char err[256];
    http_sign_t *sign = NULL;
    s_refused("# nothing\n\n", SL_EINVAL, "holds no secret");
    s_refused("# one\nMfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", SL_EINVAL,
              "line 2 does not start with whsec_");
    s_refused(V_SECRET "\nwhsec_not*base64\n", SL_EINVAL,
              "line 2 is not whsec_ and standard base64");
    s_refused("whsec_AQEBAQEBAQEBAQEBAQEBAQ==\n", SL_EINVAL,
              "line 1 decodes to a key outside 24 to 64 bytes");
    /* URL-safe base64 is not the convention's. */
    s_refused("whsec_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_\n", SL_EINVAL,
              "line 1 is not whsec_");
    s_refused(V_SECRET "\n" V_SECRET "\n" V_SECRET "\n" V_SECRET "\n"
              V_SECRET "\n" V_SECRET "\n" V_SECRET "\n" V_SECRET "\n"
              V_SECRET "\n", SL_EINVAL, "more than 8 secrets");
    char path[128];
    snprintf(path, sizeof path, "%s/missing", s_dir);
    assert_int_equal(http_sign_load(path, &sign, err, sizeof err), SL_ESYS);
    assert_non_null(strstr(err, "cannot read secret file"));
    assert_null(sign);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
