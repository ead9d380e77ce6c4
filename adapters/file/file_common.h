/*  file_common - what the `sluice-file` commands share beyond the client
 *  options of adapters/http/http_common (which they link): the state
 *  directory, files written atomically (tmp, fsync, rename, fsync of the
 *  directory), lock files, JSON state files, hex ids, the option loop
 *  and the client every command makes. Main thread of each command; no state
 *  of its own.  */
#ifndef FILE_COMMON_H
#define FILE_COMMON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "http_common.h"
#include "sluice.h"

/* Exit codes (docs/adapters.md, "sluice-file"). */
enum {
    FILE_EXIT_OK = 0,
    FILE_EXIT_FAILED = 1,       /* the run failed: bad file, broker refusal */
    FILE_EXIT_UNREACHABLE = 2,  /* the broker could not be reached */
    FILE_EXIT_REJECTED = 3,     /* import: records were rejected (--strict, or
                                   some rejected: the summary lists them) */
    FILE_EXIT_USAGE = 64,
    FILE_EXIT_INTERRUPTED = 130,/* SIGINT/SIGTERM: run again to resume */
};

#define FILE_ID_HEX (2 * 16 + 1)

/* 16 bytes as 32 lower-case hex digits and a NUL into HEX. */
void file_hex(const uint8_t id[16], char hex[FILE_ID_HEX]);

/* The state directory: DIR when given, else $SLUICE_FILE_STATE, else
 * $XDG_STATE_HOME/sluice-file, else $HOME/.local/state/sluice-file;
 * created (mode 0700, with its parents) when missing. 0, or -1 with the
 * reason in ERR. */
int file_state_dir(const char *dir, char *out, size_t outlen, char *err, size_t errlen);

/* Replace PATH with LEN bytes of DATA so that a crash leaves either the
 * old or the new content: PATH.tmp written and fsync'd, renamed over
 * PATH, the directory fsync'd. 0, or -1 with the reason in ERR. */
int file_write_atomic(const char *path, const void *data, size_t len,
                      char *err, size_t errlen);

/* fsync the directory holding PATH. 0 or -1 (errno set). */
int file_fsync_dir(const char *path);

/* Make the client of CLIENT's settled options with PRODUCER_ID_FILE (NULL
 * = a random producer id) and NAME, and wait for the session. FILE_EXIT_OK
 * and *out (caller owns), or an exit code after logging why. */
int file_client_open(const http_client_opts_t *client, const char *name,
                     const char *producer_id_file, sl_client_t **out);

/* A command's own option OPT with its ARG (NULL for a flag) for CTX: 0,
 * or an exit code after printing why (http_usage_error). */
typedef int (file_option_fn)(int opt, const char *arg, void *ctx);

/* getopt_long over ARGV with OPTIONS (which list HTTP_CLIENT_OPTIONS):
 * the client options go to CLIENT, --help prints USAGE, an unknown one is
 * a usage error, every other goes to FN. 0 (optind is at the operands),
 * -1 after --help, or an exit code. */
int file_options(int argc, char **argv, const struct option *options,
                 http_client_opts_t *client, const char *usage,
                 file_option_fn *fn, void *ctx);

/* Take the lock file PATH (flock, created 0600) for the life of the
 * process: its descriptor, or -1 after logging BUSY when another process
 * holds it, or why it cannot be opened. */
int file_lock(const char *path, const char *busy);

/* The JSON file PATH parsed: the document (caller frees with
 * cJSON_Delete), or NULL with *missing (the file does not exist) or the
 * reason in ERR (cannot be read, not JSON). */
cJSON *file_json_load(const char *path, bool *missing, char *err, size_t errlen);

/* 64-bit numbers in JSON files as decimal strings (no double rounds
 * them): add V as KEY to O; read KEY of O into *v (0, or -1 when missing
 * or not a number). */
void file_json_add_u64(cJSON *o, const char *key, uint64_t v);
int file_json_u64(const cJSON *o, const char *key, uint64_t *v);

/* Parse a duration "30s", "5m", "2h", "1d" or bare seconds into *ms.
 * 0 or -1. */
int file_parse_duration(const char *text, uint64_t *ms);

/* One batch of SUB's messages into MSGS (room for MAX): waits up to
 * 200 ms for the first, then takes more until MAX or LINGER_MS after the
 * batch began, or a stop was asked (http_stopping). *n: how many (the
 * caller owns them). 0, or the receive's error code (logged; what was
 * taken before it is in MSGS). The sinks' batch loop. */
int file_receive_batch(sl_sub_t *sub, sl_msg_t **msgs, size_t max, uint64_t linger_ms,
                       size_t *n);

/* Wall clock in microseconds since the epoch. */
uint64_t file_now_us(void);

#endif
