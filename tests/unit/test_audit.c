/*  test_audit - sld_audit's tally of refused handshakes: the first refusal
 *  of a (key, address) is a record at once, repeats one record per
 *  interval with their count, quiet pairs are forgotten, and what any
 *  number of keys and addresses can make is bounded. Records are read back
 *  from the JSON-lines mirror (no store needed); the clock is the test's.
 *  Writes one file under /tmp and removes it; single thread.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sld_audit.h"
#include "sluice_codes.h"

#define S_SEC 1000000ull
#define S_T0 (1796121856ull * S_SEC)    /* 2026-12-01 */

typedef struct {
    char path[64];
    sld_audit_t *audit;
} s_fixture_t;

static void s_open(s_fixture_t *f, uint32_t interval_ms)
{
    snprintf(f->path, sizeof f->path, "/tmp/test_audit_%d.jsonl", (int) getpid());
    unlink(f->path);
    assert_int_equal(sld_audit_new(f->path, interval_ms, &f->audit), 0);
}

static void s_close(s_fixture_t *f)
{
    sld_audit_destroy(&f->audit);
    assert_null(f->audit);
    unlink(f->path);
}

/* Commit what is queued (mirrored to the file) and return the file's
 * lines holding FRAGMENT: how many, and the sum of their counts. */
static size_t s_records(s_fixture_t *f, const char *fragment, uint64_t *sum)
{
    sld_audit_committed(f->audit, true);
    FILE *in = fopen(f->path, "r");
    assert_non_null(in);
    char line[2048];
    size_t n = 0;
    *sum = 0;
    while (fgets(line, sizeof line, in))
        if (strstr(line, fragment)) {
            n++;
            const char *c = strstr(line, "\"count\":");
            assert_non_null(c);
            *sum += strtoull(c + 8, NULL, 10);
        }
    fclose(in);
    return n;
}

static void s_key(int i, char key[41])
{
    snprintf(key, 41, "K%039d", i);
}

/* One key from one address, 1,000 times in a second: one record at once,
 * one summary at the end of the interval, the counts add up. */
static void test_first_then_summary(void **state)
{
    (void) state;
    s_fixture_t f;
    uint64_t sum;
    s_open(&f, 60000);
    assert_true(sld_audit_refused(f.audit, S_T0, NULL, "KEY", "10.0.0.1", "key not registered"));
    for (int i = 1; i < 1000; i++)
        assert_false(sld_audit_refused(f.audit, S_T0 + (uint64_t) i * 1000, NULL, "KEY",
                                       "10.0.0.1", "key not registered"));
    assert_int_equal(s_records(&f, "\"action\":\"connect\"", &sum), 1);
    assert_int_equal(sum, 1);
    /* Not before the interval ends; then the summary. */
    assert_true(sld_audit_tick(f.audit, S_T0 + 30 * S_SEC) > 0);
    assert_int_equal(s_records(&f, "\"action\":\"connect\"", &sum), 1);
    sld_audit_tick(f.audit, S_T0 + 60 * S_SEC);
    assert_int_equal(s_records(&f, "\"action\":\"connect\"", &sum), 2);
    assert_int_equal(sum, 1000);
    assert_int_equal(s_records(&f, "999 refusals since 2026-12-01T", &sum), 1);
    /* A quiet interval makes no record, and the next one forgets the pair:
     * its next refusal is a first again. */
    sld_audit_tick(f.audit, S_T0 + 120 * S_SEC);
    assert_int_equal(s_records(&f, "\"action\":\"connect\"", &sum), 2);
    assert_true(sld_audit_refused(f.audit, S_T0 + 121 * S_SEC, "bob", "KEY", "10.0.0.1",
                                  "key revoked"));
    assert_int_equal(s_records(&f, "\"identity\":\"bob\"", &sum), 1);
    s_close(&f);
}

/* 100 keys from one address: 8 tallied apart, the rest together; 1,000
 * addresses: 256 tallies, then one for all others. Records per interval
 * stay within 2 x (tallies + 1), and every refusal is in one count. */
static void test_bounded(void **state)
{
    (void) state;
    s_fixture_t f;
    uint64_t sum;
    char key[41], addr[32];
    s_open(&f, 1000);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 100; i++) {
            s_key(i, key);
            sld_audit_refused(f.audit, S_T0 + (uint64_t) round * 1000, NULL, key, "10.0.0.1",
                              "key not registered");
        }
    sld_audit_tick(f.audit, S_T0 + S_SEC);
    size_t n = s_records(&f, "\"target\":\"10.0.0.1\"", &sum);
    assert_int_equal(sum, 300);
    /* 8 keys and the shared tally: a first and a summary each. */
    assert_int_equal(n, 2 * (SLD_AUDIT_REFUSAL_KEYS + 1));
    assert_int_equal(s_records(&f, "summed up together", &sum), 1);

    s_close(&f);
    s_open(&f, 1000);
    uint64_t total = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(addr, sizeof addr, "10.1.%d.%d", i / 256, i % 256);
        for (int k = 0; k < 3; k++) {
            s_key(k, key);
            sld_audit_refused(f.audit, S_T0, NULL, key, addr, "key not registered");
            total++;
        }
    }
    sld_audit_tick(f.audit, S_T0 + S_SEC);
    n = s_records(&f, "\"action\":\"connect\"", &sum);
    assert_int_equal(sum, total);
    assert_true(n <= 2 * (SLD_AUDIT_REFUSAL_PAIRS + 1));
    assert_int_equal(s_records(&f, "(other addresses)", &sum), 1);
    s_close(&f);
}

/* Other records are unchanged: no count. */
static void test_plain_records(void **state)
{
    (void) state;
    s_fixture_t f;
    s_open(&f, 1000);
    sld_audit_add(f.audit, false, "alice", "keys.add", "mallory", "denied", "public key X");
    sld_audit_committed(f.audit, true);
    FILE *in = fopen(f.path, "r");
    assert_non_null(in);
    char line[1024];
    assert_non_null(fgets(line, sizeof line, in));
    fclose(in);
    assert_non_null(strstr(line, "\"identity\":\"alice\",\"action\":\"keys.add\","
                                 "\"target\":\"mallory\",\"result\":\"denied\","
                                 "\"detail\":\"public key X\"}"));
    s_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_then_summary),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_plain_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
