/*  harness - runs a real sluiced for integration tests: a temporary data
 *  dir, a loopback port chosen by the kernel, start / SIGTERM / SIGKILL /
 *  restart on the same dir and port, and a raw protocol client (one DEALER
 *  socket speaking Frames) for tests that need to send exactly what they
 *  mean, bad input included. One test thread; no global state.  */
#ifndef HARNESS_H
#define HARNESS_H
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "slc_codec.h"
#include "sluice.h"

typedef struct {
    char dir[256];              /* temporary data dir (removed by h_broker_destroy) */
    char endpoint[64];          /* tcp://127.0.0.1:PORT, fixed after the first start */
    char log[300];              /* broker stderr, appended across restarts */
    char extra[8][128];         /* extra sluiced arguments (e.g. "--set=delivery/ack_wait=300") */
    int nextra;
    bool secure;                /* CurveZMQ (the default of sluiced); else the
                                   harness adds --insecure-plaintext */
    pid_t pid;
} h_broker_t;

/* Prepare a broker in a fresh temp dir; EXTRA args may be NULL-terminated
 * list. Does not start it. Tests of everything but security run it with
 * --insecure-plaintext; h_broker_init_secure leaves sluiced's default
 * (CurveZMQ, keys in the data dir, default deny). */
void h_broker_init(h_broker_t *b, const char *const *extra);
void h_broker_init_secure(h_broker_t *b, const char *const *extra);

/* Start sluiced (same dir; same port after the first start) and wait until
 * it listens. 0 or -1 (the log says why). */
int h_broker_start(h_broker_t *b);

/* Stop with SIGTERM (graceful) or SIGKILL, and reap (a broker still alive
 * 30 s after the signal is killed). Returns the exit status from waitpid
 * (0 for a clean exit; 128 + N for signal N). A sanitizer or valgrind
 * report in the broker's log, or a crash on SIGTERM, ends the test program
 * with exit status 1 after printing the report. */
int h_broker_stop(h_broker_t *b, int sig);

/* Stop if running (SIGTERM, so leak checkers see the exit; checked as
 * above), remove the temp dir. */
void h_broker_destroy(h_broker_t *b);

/* Run a command line with /bin/sh, stdin from IN (may be NULL = /dev/null);
 * capture stdout into OUT (malloc'd, caller frees; may be NULL). Returns the
 * exit status (or -1). */
int h_run(const char *cmd, const char *in, char **out);

/* Run `CLI ARGS SUFFIX 2>&1` (ARGS printf'd from FMT; SUFFIX may be NULL,
 * e.g. "--broker EP") with IN on stdin (may be NULL); print "$ sluice ARGS
 * -> STATUS" and the output for the test log; the output into *OUT
 * (malloc'd, caller frees; OUT may be NULL). Returns the exit status. */
int h_cli_v(const char *cli, const char *in, const char *suffix, char **out,
            const char *fmt, va_list ap);

/* The broker's counter NAME, asked through client C; UINT64_MAX when the
 * request fails or the broker has no such counter. */
uint64_t h_counter(sl_client_t *c, const char *name);

/* Path of a built program ("broker/sluiced", "adapters/cli/sluice"). */
const char *h_build_path(const char *rel, char *buf, size_t len);

/* ------------------------------------------------------------- raw client */

typedef struct {
    void *ctx;
    void *sock;
} h_raw_t;

int h_raw_open(h_raw_t *r, const char *endpoint);
void h_raw_close(h_raw_t *r);

/* Send one frame / raw bytes. 0 or -1. */
int h_raw_send(h_raw_t *r, const Sluice__Frame *f);
int h_raw_send_bytes(h_raw_t *r, const void *data, size_t len);

/* Receive the next frame within TIMEOUT_MS, skipping heartbeats. Returns
 * the decoded frame (caller frees with slc_frame_free) or NULL. */
Sluice__Frame *h_raw_recv(h_raw_t *r, int timeout_ms);

/* Receive until a frame of body CASE arrives (others are dropped). */
Sluice__Frame *h_raw_expect(h_raw_t *r, int body_case, int timeout_ms);

/* Send F with the next corr (*CORR + 1, kept in *CORR) and return the reply
 * that echoes it (caller frees; frames with other corrs, such as
 * deliveries, are dropped), or NULL when sending fails or none comes
 * within 5 s of the last frame. */
Sluice__Frame *h_raw_request(h_raw_t *r, uint64_t *corr, Sluice__Frame *f);

/* Hello with protocol version 1; returns 0 on HelloOk. */
int h_raw_hello(h_raw_t *r);

/* Every message stored on TOPIC (up to MAX) into OUT (caller frees them
 * with h_envelopes_free), read from the start through an ephemeral
 * subscription on a connection of its own to ENDPOINT, until the broker
 * has sent nothing for 400 ms. 0 with *N, or -1 with ERR saying why. */
int h_raw_read_topic(const char *endpoint, const char *topic, Sluice__Envelope **out,
                     size_t max, size_t *n, char *err, size_t errlen);

/* Free the N envelopes of V. */
void h_envelopes_free(Sluice__Envelope **v, size_t n);

/* h_raw_request of admin frame F whose reply must not be an Error: the
 * reply (caller frees) or NULL with ERR saying why (no reply in time, or
 * the refusal's code and text). */
Sluice__Frame *h_raw_admin(h_raw_t *r, uint64_t *corr, Sluice__Frame *f, char *err,
                           size_t errlen);

/* SchemaRegister SUBJECT with SCHEMA (JSON text), through h_raw_admin.
 * 0, or -1 with ERR. */
int h_raw_schema_register(h_raw_t *r, uint64_t *corr, const char *subject,
                          const char *schema, char *err, size_t errlen);

/* RoutesApply YAML: 0 with *VERSION (the new live version; VERSION may be
 * NULL), or -1 with ERR. */
int h_raw_routes_apply(h_raw_t *r, uint64_t *corr, const char *yaml, uint32_t *version,
                       char *err, size_t errlen);

/* Publish PAYLOAD (text) on TOPIC and wait for its confirm: 0 with
 * *OFFSET, or -1 with ERR (no reply, or the confirm's code and text). */
int h_raw_publish(h_raw_t *r, uint64_t *corr, const char *topic, const char *payload,
                  uint64_t *offset, char *err, size_t errlen);

/* The value of E's header KEY, or NULL. */
const char *h_envelope_header(const Sluice__Envelope *e, const char *key);

#endif
