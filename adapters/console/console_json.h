/*  console_json - small pure helpers of the console's JSON API: a stored
 *  message as the contract's JSON object (payload as UTF-8 text or base64,
 *  parsed JSON, headers), RFC 3339 times both ways, and typed reads of
 *  request bodies. No state; any thread.  */
#ifndef CONSOLE_JSON_H
#define CONSOLE_JSON_H
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sluice.h"

/* MSG (borrowed) as {"offset","ingest_us","content_type","headers",
 * "payload","payload_encoding","json","lineage":null}. Caller owns; NULL
 * when out of memory. */
cJSON *console_msg_json(const sl_msg_t *msg);

/* True when the N bytes at P are valid UTF-8 without NUL. */
bool console_utf8(const void *p, size_t n);

/* US (microseconds since the epoch) as "2026-12-07T19:04:58.978Z". */
void console_time_format(uint64_t us, char *buf, size_t len);

/* An RFC 3339 time ("2026-12-07T19:04:58Z", fractions and +HH:MM offsets
 * allowed) into microseconds since the epoch. 0 or -1. */
int console_time_parse(const char *text, uint64_t *us);

/* Body field KEY: a non-negative integer (0, or -1 when absent or not
 * one), a string (NULL when absent or not one). */
int console_in_u64(const cJSON *in, const char *key, uint64_t *out);
const char *console_in_str(const cJSON *in, const char *key);

/* Add NAME = V as a JSON number (exact up to 2^53). */
cJSON *console_add_u64(cJSON *obj, const char *name, uint64_t v);

#endif
