/*  console_read - reading a topic's stored messages for the console: an
 *  ephemeral subscription on the exact topic from an offset (it reads the
 *  store and keeps no state at the broker), taken down again; and the
 *  lineage of a message from the broker's routing trace. On the thread
 *  that holds the client's lock.  */
#ifndef CONSOLE_READ_H
#define CONSOLE_READ_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include "sluice.h"

/* One topic's place: from sl_stats. */
typedef struct {
    uint64_t first_offset;
    uint64_t next_offset;
    uint64_t messages;
} console_topic_pos_t;

/* TOPIC's offsets as the broker lists it to this identity. 0,
 * SL_ENOTFOUND (not listed: no such topic, or no grant on it), or the
 * sl_stats code. */
int console_topic_pos(sl_client_t *client, const char *topic, console_topic_pos_t *out);

/* The stored messages of TOPIC with offsets in [FROM, END), at most MAX,
 * oldest first, into *out (caller frees each with sl_msg_destroy, then the
 * array with free) and *n. Stops at END, at MAX, or after TIMEOUT_MS
 * without a message (what came is returned). 0 or the sl_subscribe code
 * (SL_EDENIED without a subscribe grant). */
int console_read(sl_client_t *client, const char *topic, uint64_t from,
                 uint64_t end, size_t max, int timeout_ms, sl_msg_t ***out,
                 size_t *n);

/* Free what console_read gave. NULL-safe. */
void console_read_free(sl_msg_t **msgs, size_t n);

/* The lineage of TOPIC@OFFSET (sl_trace) as {"source_topic",
 * "source_offset","route","mapping","table_version","mapping_version"},
 * or a JSON null when it was not made by a route or the trace is not
 * available. Caller owns. */
cJSON *console_lineage(sl_client_t *client, const char *topic, uint64_t offset);

#endif
