/*  sld_server - the broker: one ROUTER socket, the poll loop, sessions and
 *  the protocol (state x command -> action), group commit. Owns every
 *  broker module (metrics, audit, store, disk, auth, registry, topics,
 *  delivery, commit coordinator, monitor) and the ZeroMQ context.
 *  Broker thread only: create, run and destroy on one thread. It does not
 *  parse the command line (main.c does) or handle signals beyond polling
 *  the descriptor it is given. Its files share sld_server_int.h.  */
#ifndef SLD_SERVER_H
#define SLD_SERVER_H
#include "sld_config.h"

typedef struct sld_server sld_server_t;

/* Open the store in cfg->data_dir and bind cfg->listen. CFG is copied.
 * 0 and *out (caller owns), SL_ESTORE (store refused: reason on stderr),
 * SL_ESYS (bind failed: reason on stderr), SL_ENOMEM. */
int sld_server_new(const sld_config_t *cfg, sld_server_t **out);

/* Serve until STOP_FD (e.g. a signalfd; -1 = none) becomes readable; the
 * caller reads it (and may call this again). Every acked message is
 * committed before this returns. 0 or SL_ESYS. */
int sld_server_run(sld_server_t *self, int stop_fd);

/* Apply the settings of CFG that can change while running: the storage
 * ceiling (storage/map_size_max: publishes refused as "storage full"
 * resume at once when it is raised) and broker/log_level. Others are logged
 * as needing a restart when they differ. */
void sld_server_reload(sld_server_t *self, const sld_config_t *cfg);

/* One turn of the loop: wait at most TIMEOUT_MS for frames, handle what
 * arrived (group commit included), pump deliveries and timers. For tests
 * and fuzzing, which drive the broker without a thread. 0 or SL_ESYS. */
int sld_server_step(sld_server_t *self, int timeout_ms);

/* Close the socket and the store. NULL-safe; nulls *self_p. */
void sld_server_destroy(sld_server_t **self_p);

/* The bound endpoint (with the real port when the config asked for :0 or
 * '*'). Borrowed, valid until destroy. */
const char *sld_server_endpoint(const sld_server_t *self);

#endif
