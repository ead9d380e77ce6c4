/*  http_broker_int - the broker thread's state, shared by its files:
 *  http_broker.c (thread, queue, clients, publishing) and http_pull.c
 *  (subscriptions, leases of pulled messages, pull, ack, nack). Broker
 *  thread only, except the fields marked as locked or atomic.  */
#ifndef HTTP_BROKER_INT_H
#define HTTP_BROKER_INT_H
#include <pthread.h>
#include <stdatomic.h>
#include "http_broker.h"

/* Messages the SDK may hold ahead of a pull, per subscription. */
#define HTTP_PULL_CREDIT 256

typedef struct s_pub s_pub_t;
typedef struct http_sub http_sub_t;

/* One client: one identity's connection. */
typedef struct {
    sl_client_t *client;        /* owned */
    char name[256];             /* the identity, for the log */
    bool connected;             /* last seen state, for the log */
    http_sub_t *subs;           /* subscriptions pulled through it (owned list) */
    s_pub_t *pubs;              /* publish requests with confirms to come (owned) */
} http_conn_t;

struct http_broker {
    pthread_t thread;
    bool started;               /* the thread runs (main thread's view) */
    pthread_mutex_t mu;         /* guards QUEUE, TAIL, CLOSED, WOKEN */
    http_job_t *queue;          /* submitted, not yet taken */
    http_job_t *tail;
    bool closed;                /* no more jobs: submit refuses */
    bool woken;                 /* WAKE_FD written since the last take */
    int wake_fd;                /* eventfd: a job came (or stop); the
                                   thread sleeps on it and its client */
    atomic_bool stopping;       /* stop asked: refuse new work, drain */
    atomic_bool ready;          /* every client connected */
    http_conn_t *conns;         /* NCONNS, owned */
    size_t nconns;
    uint32_t publish_timeout_ms;
    uint32_t drain_ms;
    uint64_t next_lease_check;  /* ms */
    uint64_t lease_seq;         /* makes tokens unique */
};

/* Answer JOB: log its outcome when not 2xx, call done. */
void http_broker_answer(http_job_t *job);

/* http_pull.c: run a pull, ack or nack job on CONN. */
void http_pull_job(http_broker_t *self, http_conn_t *conn, http_job_t *job);
void http_ack_job(http_broker_t *self, http_conn_t *conn, http_job_t *job);

/* Hand messages to waiting pulls, answer those past their deadline, give
 * back leases past their ack wait. Every loop turn. */
void http_pull_service(http_broker_t *self, http_conn_t *conn, uint64_t now);

/* Answer every waiting pull (stopping: what they have), nack nothing:
 * leases are dropped, so their messages are redelivered by the broker.
 * Then unsubscribe. */
void http_pull_close(http_broker_t *self, http_conn_t *conn);

#endif
