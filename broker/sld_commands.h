/*  sld_commands - the protocol as data: one row per command a client may
 *  send (Frame.body), with its handler, its phase (answered at once, or
 *  kept for the turn's write transaction and applied there) and the
 *  permission it needs; dispatch of a received frame by session state x
 *  command, and the permission check with its audited 403. Broker thread
 *  only. It does not do what a command does (ingest, consume, admin,
 *  session files) nor commit anything (sld_groupcommit).  */
#ifndef SLD_COMMANDS_H
#define SLD_COMMANDS_H
#include <stdbool.h>
#include <stddef.h>
#include "sld_server_int.h"

/* When a command takes effect. */
typedef enum {
    SLD_CMD_IMMEDIATE,          /* answered while the turn reads frames */
    SLD_CMD_WRITE,              /* kept, applied in the turn's write transaction,
                                 * answered after its commit */
} sld_cmd_phase_t;

/* What a command needs of the sender's identity. */
typedef enum {
    SLD_CMD_ANY,                /* any session */
    SLD_CMD_PUBLISH,            /* publish on each message's topic: checked per
                                 * message by ingest (a batch is partly refused) */
    SLD_CMD_SUBSCRIBE,          /* subscribe on the pattern; attaching to an existing
                                 * durable name takes using it (or claiming it) */
    SLD_CMD_SUB_USE,            /* the subscription by id: its pattern still covered,
                                 * a durable one still usable */
    SLD_CMD_SUB_REMOVE,         /* the durable subscription by name (SubRemove,
                                 * SubSeek): may use it */
    SLD_CMD_TOPIC_ADMIN,        /* admin on the topic the command names */
    SLD_CMD_ADMIN,              /* admin on ">" */
} sld_cmd_perm_t;

/* The immediate stage of *F_P from PEER (a session, permitted). For an
 * IMMEDIATE row: answer it; the dispatcher frees the frame. For a WRITE
 * row, a check before the frame is kept: 0 keeps it for the write phase,
 * a negative code (already answered) drops it; a handler that completes
 * the command itself (a transient publish) frees the frame, nulls *f_p and
 * returns 0. 0, or the negative code already answered to the peer. */
typedef int (sld_cmd_handler_fn)(sld_server_t *self, const sld_peer_t *peer,
                                 Sluice__Frame **f_p);

/* The write stage: apply kept frame W in TXN, queue its reply. REFUSE:
 * storage is full (publishes nacked); FAIL != 0: the transaction failed, no
 * TXN, answer every request with FAIL. 0 or a code dooming TXN. */
typedef int (sld_cmd_apply_fn)(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                               bool refuse, int fail);

struct sld_command {
    const char *name;           /* the Frame.body field: "topic_create" */
    sld_cmd_phase_t phase;
    sld_cmd_perm_t perm;
    sld_cmd_handler_fn *handler; /* immediate stage (WRITE: NULL keeps every frame) */
    sld_cmd_apply_fn *apply;    /* write stage (phase WRITE only) */
    const char *action;         /* audit action ("topic.create") */
    const char *what;           /* a refusal's verb ("create topic") */
    const char *object;         /* and its object; NULL: the command's target */
};

/* The row of body case CMD (a Sluice__Frame__BodyCase), or NULL when a
 * client may not send it (a reply, or unknown). Borrowed, static. */
const sld_command_t *sld_commands_lookup(unsigned cmd);

/* One past the highest body case the table has room for (for tests). */
unsigned sld_commands_size(void);

/* The audit action of F, whose row is CMD: the row's, a GrantChange's by
 * its direction. */
static inline const char *sld_command_action(const sld_command_t *cmd, const Sluice__Frame *f)
{
    if (f->body_case == SLUICE__FRAME__BODY_GRANT_CHANGE && f->grant_change->revoke)
        return "grant.revoke";
    return cmd->action;
}

/* Handle received frame *F_P from PEER: without a session only Hello is
 * accepted (401 otherwise); with one, the permission, then the row's
 * handler, or kept for the write phase. *f_p is taken (kept or freed).
 * 0, or the negative code already answered to the peer. */
int sld_commands_dispatch(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);

#endif
