"""_ffi - the cffi declarations of libsluice and where the library is found.

Owns the one ``ffi`` object and the loaded ``lib``; every other module of
the package calls C through them. ABI mode: nothing is compiled, so the
declarations below must match adapters/sdk/sluice.h field for field (the
test test_abi.py compares every size and offset with the C compiler's).
Any thread may import it; loading happens once, at first import.
"""
from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

import cffi

ffi = cffi.FFI()

# The declarations the package uses, in sluice.h's order and spelling.
CDEF = """
typedef struct sl_client sl_client_t;
typedef struct sl_sub sl_sub_t;
typedef struct sl_msg sl_msg_t;

const char *sl_strerror(int code);

typedef struct {
    const char *endpoint;
    const char *name;
    const char *producer_id_file;
    int linger_ms;
    int max_batch;
    size_t max_batch_bytes;
    int max_unacked;
    int block_ms;
    int heartbeat_ms;
    int dead_after_ms;
    int connect_timeout_ms;
    const char *server_key;
    const char *cert;
    const char *public_key;
    const char *secret_key;
} sl_options_t;

void sl_options_init(sl_options_t *opts);

typedef struct {
    const char *broker;
    const char *home;
    const char *cert;
    const char *server_key;
    bool plaintext;
} sl_connect_args_t;

typedef struct {
    char endpoint[512];
    char cert[4096];
    char server_key[4096];
    char home[4096];
    bool home_auto;
    bool broker_given;
} sl_connect_t;

int sl_connect_resolve(const sl_connect_args_t *args, sl_connect_t *out,
                       char *err, size_t errlen);
void sl_connect_apply(const sl_connect_t *conn, sl_options_t *opts);

int sl_client_new(const sl_options_t *opts, sl_client_t **out);
int sl_options_check(const sl_options_t *opts, char *err, size_t errlen);
int sl_client_connect(sl_client_t *self);
void sl_client_destroy(sl_client_t **self_p);
int sl_poll(sl_client_t *self, int timeout_ms);
bool sl_client_connected(const sl_client_t *self);
uint64_t sl_client_reconnects(const sl_client_t *self);
typedef enum {
    SL_AUTH_OK = 0,
    SL_AUTH_REFUSED = 1,
    SL_AUTH_HANDSHAKE = 2,
    SL_AUTH_MECHANISM = 3,
} sl_auth_t;

sl_auth_t sl_client_auth(const sl_client_t *self);
const char *sl_client_last_error(const sl_client_t *self);
const char *sl_client_public_key(const sl_client_t *self);
int sl_cert_create(const char *name, const char *cert_path,
                   const char *pub_path, char public_key[41], char *err,
                   size_t errlen);

typedef struct {
    const char *key;
    const char *value;
} sl_header_t;

typedef struct {
    const char *topic;
    const void *payload;
    size_t len;
    const char *content_type;
    const sl_header_t *headers;
    size_t nheaders;
    const char *msg_id;
} sl_message_t;

typedef struct {
    int rc;
    const char *text;
    const char *topic;
    uint64_t seq;
    uint64_t offset;
    bool duplicate;
} sl_confirm_t;

typedef void (sl_confirm_fn)(const sl_confirm_t *confirm, void *arg);

int sl_publish(sl_client_t *self, const sl_message_t *msg,
               sl_confirm_fn *cb, void *arg, uint64_t *seq);
int sl_publish_sync(sl_client_t *self, const sl_message_t *msg,
                    int timeout_ms, sl_confirm_t *out);
int sl_publish_transient(sl_client_t *self, const sl_message_t *msg);
int sl_flush(sl_client_t *self, int timeout_ms);
size_t sl_unconfirmed(const sl_client_t *self);

typedef enum {
    SL_START_DEFAULT = 0,
    SL_START_EARLIEST = 1,
    SL_START_LATEST = 2,
    SL_START_OFFSET = 3,
    SL_START_TIME = 4,
} sl_start_t;

typedef struct {
    const char *name;
    const char *pattern;
    bool ephemeral;
    sl_start_t start;
    uint64_t start_offset;
    uint64_t start_time_us;
    uint32_t credit;
    uint32_t ack_wait_ms;
    uint32_t max_deliver;
} sl_sub_options_t;

void sl_sub_options_init(sl_sub_options_t *opts);
int sl_subscribe(sl_client_t *self, const sl_sub_options_t *opts,
                 sl_sub_t **out);
int sl_sub_next(sl_sub_t *sub, int timeout_ms, sl_msg_t **out);
int sl_unsubscribe(sl_sub_t **sub_p, bool remove);
int sl_ack(sl_msg_t *msg);
int sl_ack_sync(sl_msg_t *msg, int timeout_ms);
int sl_nack(sl_msg_t *msg, uint32_t delay_ms);
int sl_nack_reason(sl_msg_t *msg, uint32_t delay_ms, const char *reason);
void sl_msg_destroy(sl_msg_t **msg_p);
const char *sl_msg_topic(const sl_msg_t *msg);
uint64_t sl_msg_offset(const sl_msg_t *msg);
const void *sl_msg_payload(const sl_msg_t *msg, size_t *len);
const char *sl_msg_content_type(const sl_msg_t *msg);
size_t sl_msg_header_count(const sl_msg_t *msg);
int sl_msg_header_at(const sl_msg_t *msg, size_t i,
                     const char **key, const char **value);
uint32_t sl_msg_attempt(const sl_msg_t *msg);
uint64_t sl_msg_ingest_us(const sl_msg_t *msg);
const char *sl_msg_subscription(const sl_msg_t *msg);

typedef struct {
    char name[256];
    uint64_t first_offset;
    uint64_t next_offset;
    uint64_t messages;
    uint64_t bytes;
    uint64_t max_age_ms;
    uint64_t max_bytes;
    char schema[272];
    uint64_t dlq_removed;
} sl_topic_info_t;

typedef struct {
    char name[256];
    char pattern[256];
    bool ephemeral;
    bool attached;
    uint64_t lag;
    uint32_t in_flight;
    uint64_t delivered;
    uint64_t redelivered;
    uint64_t dead_lettered;
    uint64_t acked;
    uint64_t cursor;
    uint64_t dropped;
    char owner[65];
} sl_sub_info_t;

int sl_topic_create(sl_client_t *self, const char *name,
                    uint64_t max_age_ms, uint64_t max_bytes);
int sl_stats(sl_client_t *self, sl_topic_info_t **topics, size_t *ntopics,
             sl_sub_info_t **subs, size_t *nsubs);
int sl_sub_remove(sl_client_t *self, const char *name);

typedef struct {
    uint32_t perms;
    const char *pattern;
} sl_grant_t;

int sl_key_add(sl_client_t *self, const char *name, const char *public_key);
int sl_key_revoke(sl_client_t *self, const char *name);
int sl_grant(sl_client_t *self, const char *name, const sl_grant_t *grants,
             size_t n, bool revoke);

int sl_schema_register(sl_client_t *self, const char *subject,
                       const char *schema, const char *compat, bool dry_run,
                       uint32_t *version, bool *existed);
int sl_topic_set_schema(sl_client_t *self, const char *topic,
                        const char *subject, uint32_t version,
                        const char *invalid);

void free(void *ptr);
"""
ffi.cdef(CDEF)

# The structs test_abi.py checks against the C compiler's layout.
CHECKED_STRUCTS = (
    "sl_options_t", "sl_connect_args_t", "sl_connect_t", "sl_header_t",
    "sl_message_t", "sl_confirm_t", "sl_sub_options_t", "sl_topic_info_t",
    "sl_sub_info_t", "sl_grant_t",
)


def _candidates() -> list[str]:
    """Where libsluice may be, in the order it is tried."""
    found: list[str] = []
    env = os.environ.get("SLUICE_LIB")
    if env:
        # An explicit choice is the only one: falling back to another
        # library would hide the mistake.
        return [env]
    here = Path(__file__).resolve().parent
    # A copy placed next to the package (a vendored install).
    found += [str(p) for p in sorted(here.glob("libsluice.so*"))]
    # Run from the source tree: adapters/python/sluice -> the repository
    # root, whose README builds into build/.
    root = here.parent.parent.parent
    lib = root / "build" / "adapters" / "sdk" / "libsluice.so.0"
    if lib.exists():
        found.append(str(lib))
    # Installed: the system loader's search path (ldconfig, LD_LIBRARY_PATH).
    found.append("libsluice.so.0")
    name = ctypes.util.find_library("sluice")
    if name:
        found.append(name)
    return found


def _load():
    errors = []
    for path in _candidates():
        try:
            return ffi.dlopen(path), path
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError(
        "sluice: cannot load libsluice (set SLUICE_LIB to the path of "
        "libsluice.so.0, or install libsluice): " + "; ".join(errors))


lib, LIB_PATH = _load()
