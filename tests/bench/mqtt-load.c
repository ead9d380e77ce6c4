/*  mqtt-load - the device side of tests/bench/mqtt-bench: publishes N
 *  messages of SIZE bytes (the message number, then 'x's: each one unique)
 *  to TOPIC at QoS, keeping at most INFLIGHT awaiting their PUBACK /
 *  PUBCOMP, and exits once the MQTT broker acked every one; prints
 *  "N messages in S s: R msg/s". Not mosquitto_pub -l: at the end of its
 *  input it stops at the first PUBACK carrying the last message's packet
 *  id, so past 65,535 lines it quits early, the rest unsent (2.0.11's
 *  client/pub_client.c). A benchmark tool, not a test; one thread.  */
#include <mosquitto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    long acked;
} s_state_t;

static void s_on_publish(struct mosquitto *mosq, void *arg, int mid)
{
    s_state_t *st = arg;

    (void) mosq;
    (void) mid;
    st->acked++;
}

static double s_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    s_state_t st = { 0 };
    struct mosquitto *mosq;
    long n, size, sent = 0;
    int port, qos, inflight, rc = 1;
    char *payload;
    double t0;

    if (argc != 8 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc == 2 ? stdout : stderr, "usage: mqtt-load HOST PORT TOPIC N SIZE "
                "QOS INFLIGHT\nPublishes N unique messages of SIZE bytes to TOPIC at QOS "
                "(at most INFLIGHT unacked)\nand exits when all are acked; prints the "
                "rate.\n");
        return argc == 2 ? 0 : 64;
    }
    port = atoi(argv[2]);
    n = atol(argv[4]);
    size = atol(argv[5]);
    qos = atoi(argv[6]);
    inflight = atoi(argv[7]);
    if (n < 1 || size < 16 || size > 1 << 20 || qos < 0 || qos > 2 || inflight < 1) {
        fprintf(stderr, "mqtt-load: N >= 1, 16 <= SIZE <= 1 MiB, QOS 0-2, INFLIGHT >= 1\n");
        return 64;
    }
    payload = malloc((size_t) size + 1);
    if (!payload)
        return 1;
    memset(payload, 'x', (size_t) size);
    mosquitto_lib_init();
    mosq = mosquitto_new(NULL, true, &st);
    if (!mosq)
        goto out;
    mosquitto_max_inflight_messages_set(mosq, (unsigned) inflight);
    mosquitto_publish_callback_set(mosq, s_on_publish);
    if (mosquitto_connect(mosq, argv[1], port, 60) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "mqtt-load: cannot connect to %s:%d\n", argv[1], port);
        goto out;
    }
    t0 = s_now();
    while (st.acked < n) {
        /* Keep INFLIGHT in flight; libmosquitto would queue the rest. */
        while (sent < n && sent - st.acked < inflight) {
            int len = snprintf(payload, (size_t) size + 1, "%ld", sent);

            payload[len] = 'x';
            if (mosquitto_publish(mosq, NULL, argv[3], (int) size, payload, qos, false)
                    != MOSQ_ERR_SUCCESS) {
                fprintf(stderr, "mqtt-load: publish failed at message %ld\n", sent);
                goto out;
            }
            sent++;
        }
        if (mosquitto_loop(mosq, 100, 1) != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "mqtt-load: connection lost after %ld acks\n", st.acked);
            goto out;
        }
    }
    t0 = s_now() - t0;
    printf("%ld messages in %.2f s: %.0f msg/s\n", n, t0, (double) n / t0);
    mosquitto_disconnect(mosq);
    rc = 0;
out:
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    free(payload);
    return rc;
}
