/*  test_disk - a real disk that fills up under a running sluiced (issue 16
 *  item 4): the data dir is a small tmpfs, a filler file takes most of it,
 *  and publishes go on until the disk is full. They must be refused with a
 *  retryable 507 that says the disk is full, while acks and admin commands
 *  still commit into storage/disk_reserve; once the filler is gone,
 *  publishing resumes without a restart. Needs root to mount the tmpfs
 *  (CI runs as root); without it the test says so and is skipped. Raw
 *  protocol clients, so every reply is seen as it is. Single thread.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include "harness.h"

#define S_WAIT_MS 10000
#define S_FS_MIB 24
#define S_FREE_KIB 3072         /* what the filler leaves on the tmpfs */
#define S_PAYLOAD 4000
#define S_BATCH 50

static uint64_t s_corr = 100;

/* The tmpfs while mounted, so that a failed assertion does not leave it. */
static char s_mounted[256];

static int s_teardown(void **state)
{
    (void) state;
    if (s_mounted[0] && umount2(s_mounted, MNT_DETACH) != 0)
        fprintf(stderr, "test_disk: could not unmount %s\n", s_mounted);
    s_mounted[0] = 0;
    return 0;
}

/* Send F with a fresh corr; the reply of body BODY (caller frees) or fail. */
static Sluice__Frame *s_call(h_raw_t *r, Sluice__Frame *f, int body)
{
    f->corr = ++s_corr;
    assert_int_equal(h_raw_send(r, f), 0);
    uint64_t deadline = slc_mono_ms() + S_WAIT_MS;
    while (slc_mono_ms() < deadline) {
        Sluice__Frame *got = h_raw_recv(r, S_WAIT_MS);
        if (!got)
            break;
        if (got->corr == f->corr) {
            if ((int) got->body_case != body)
                fail_msg("expected %d, got %s (%s)", body, slc_frame_name(got),
                         got->error ? got->error->text : "");
            return got;
        }
        slc_frame_free(&got);
    }
    fail_msg("no reply to corr %llu", (unsigned long long) f->corr);
    return NULL;
}

/* Publish one batch of S_BATCH messages to TOPIC: the first non-zero
 * confirm code (and its text and retryable flag), or 0. */
static int s_publish(h_raw_t *r, const char *topic, char *text, size_t len, bool *retryable)
{
    static char payload[S_PAYLOAD];
    Sluice__Envelope env[S_BATCH], *envp[S_BATCH];
    Sluice__PublishBatch pb = SLUICE__PUBLISH_BATCH__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    memset(payload, 'd', sizeof payload);
    for (int i = 0; i < S_BATCH; i++) {
        sluice__envelope__init(&env[i]);
        env[i].topic = (char *) topic;
        env[i].payload.data = (uint8_t *) payload;
        env[i].payload.len = sizeof payload;
        envp[i] = &env[i];
    }
    pb.msgs = envp;
    pb.n_msgs = S_BATCH;
    f.body_case = SLUICE__FRAME__BODY_PUBLISH_BATCH;
    f.publish_batch = &pb;
    Sluice__Frame *r2 = s_call(r, &f, SLUICE__FRAME__BODY_PUBLISH_ACK);
    int code = 0;
    assert_int_equal(r2->publish_ack->n_confirms, S_BATCH);
    for (size_t i = 0; i < r2->publish_ack->n_confirms && !code; i++) {
        const Sluice__Confirm *c = r2->publish_ack->confirms[i];
        if (c->code) {
            code = c->code;
            snprintf(text, len, "%s", c->text ? c->text : "");
            *retryable = c->retryable;
        }
    }
    slc_frame_free(&r2);
    return code;
}

/* A filler file of the size that leaves S_FREE_KIB free on DIR's fs. */
static void s_fill(const char *path, const char *dir)
{
    struct statvfs vfs;
    assert_int_equal(statvfs(dir, &vfs), 0);
    uint64_t avail = (uint64_t) vfs.f_bavail * vfs.f_frsize;
    assert_true(avail > S_FREE_KIB * 1024);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    static char block[65536];
    for (uint64_t left = avail - S_FREE_KIB * 1024; left > 0;) {
        size_t n = left < sizeof block ? (size_t) left : sizeof block;
        assert_int_equal(fwrite(block, 1, n, f), n);
        left -= n;
    }
    assert_int_equal(fclose(f), 0);
}

static void test_disk_full_is_retryable(void **state)
{
    (void) state;
    const char *extra[] = { "--set", "storage/disk_reserve=2M", NULL };
    h_broker_t b;
    h_broker_init(&b, extra);
    char opts[64];
    snprintf(opts, sizeof opts, "size=%dm,mode=0700", S_FS_MIB);
    if (mount("tmpfs", b.dir, "tmpfs", 0, opts) != 0) {
        fprintf(stderr, "test_disk: cannot mount a tmpfs on %s (%s): needs root; skipped\n",
                b.dir, strerror(errno));
        h_broker_destroy(&b);
        skip();
    }
    snprintf(s_mounted, sizeof s_mounted, "%s", b.dir);
    assert_int_equal(h_broker_start(&b), 0);
    h_raw_t pub, sub;
    assert_int_equal(h_raw_open(&pub, b.endpoint), 0);
    assert_int_equal(h_raw_hello(&pub), 0);
    assert_int_equal(h_raw_open(&sub, b.endpoint), 0);
    assert_int_equal(h_raw_hello(&sub), 0);

    Sluice__Subscribe s = SLUICE__SUBSCRIBE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    s.name = "drain";
    s.pattern = "fill";
    s.start = SLUICE__START_KIND__START_EARLIEST;
    s.credit = 1;
    f.body_case = SLUICE__FRAME__BODY_SUBSCRIBE;
    f.subscribe = &s;
    Sluice__Frame *r = s_call(&sub, &f, SLUICE__FRAME__BODY_SUBSCRIBE_OK);
    uint32_t sub_id = r->subscribe_ok->sub_id;
    slc_frame_free(&r);

    char filler[300], text[512] = "";
    snprintf(filler, sizeof filler, "%s/filler", b.dir);
    s_fill(filler, b.dir);
    bool retryable = false;
    int code = 0, batches = 0;
    while (code == 0 && batches < 400) {
        code = s_publish(&pub, "fill", text, sizeof text, &retryable);
        batches++;
    }
    printf("disk: %d batches of %d x %d B, then code %d \"%s\" (retryable %d)\n", batches,
           S_BATCH, S_PAYLOAD, code, text, retryable);
    assert_int_equal(code, 507);
    assert_true(retryable);
    assert_non_null(strstr(text, "disk"));
    assert_true(batches > 1);

    /* Full: the consumer's ack still commits (its reply comes after the
     * commit), and so does an admin command. */
    Sluice__Frame *d = h_raw_expect(&sub, SLUICE__FRAME__BODY_DELIVER, S_WAIT_MS);
    assert_non_null(d);
    Sluice__AckItem item = SLUICE__ACK_ITEM__INIT;
    Sluice__AckItem *items[1] = { &item };
    Sluice__Ack ack = SLUICE__ACK__INIT;
    item.topic_id = d->deliver->msgs[0]->topic_id;
    item.offset = d->deliver->msgs[0]->offset;
    item.token = d->deliver->msgs[0]->token;
    slc_frame_free(&d);
    ack.sub_id = sub_id;
    ack.items = items;
    ack.n_items = 1;
    ack.credit = 1;
    Sluice__Frame fa = SLUICE__FRAME__INIT;
    fa.body_case = SLUICE__FRAME__BODY_ACK;
    fa.ack = &ack;
    r = s_call(&sub, &fa, SLUICE__FRAME__BODY_ACK_REPLY);
    assert_int_equal(r->ack_reply->n_refused, 0);
    slc_frame_free(&r);
    Sluice__TopicCreate tc = SLUICE__TOPIC_CREATE__INIT;
    Sluice__Frame ft = SLUICE__FRAME__INIT;
    tc.name = "created.while.full";
    ft.body_case = SLUICE__FRAME__BODY_TOPIC_CREATE;
    ft.topic_create = &tc;
    r = s_call(&pub, &ft, SLUICE__FRAME__BODY_OK);
    slc_frame_free(&r);
    /* Still full for publishes. */
    assert_int_equal(s_publish(&pub, "fill", text, sizeof text, &retryable), 507);

    /* Room again: publishing resumes by itself. */
    assert_int_equal(unlink(filler), 0);
    uint64_t deadline = slc_mono_ms() + S_WAIT_MS;
    do {
        usleep(100000);
        code = s_publish(&pub, "fill", text, sizeof text, &retryable);
    } while (code != 0 && slc_mono_ms() < deadline);
    assert_int_equal(code, 0);

    h_raw_close(&pub);
    h_raw_close(&sub);
    assert_int_equal(h_broker_stop(&b, SIGTERM), 0);
    assert_int_equal(umount(b.dir), 0);
    s_mounted[0] = 0;
    h_broker_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_disk_full_is_retryable, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
