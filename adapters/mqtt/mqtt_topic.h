/*  mqtt_topic - MQTT topics and filters <-> sluice topics and patterns.
 *  Pure functions of their arguments: no state, no allocation, any thread.
 *  The rule (docs/adapters.md, "sluice-mqtt"): MQTT's '/' levels are
 *  sluice's '.' words; '+' is '*', '#' is '>'; a byte a sluice word cannot
 *  hold ([A-Za-z0-9-] only) is escaped with '_': '_' itself as "__", any
 *  other byte as '_' and two upper-case hex digits ('.' is "_2E", ' ' is
 *  "_20"), and an empty level as the word "_". The escaping is one-to-one,
 *  so sluice -> MQTT gives back exactly the MQTT topic. Fuzzed by
 *  tests/fuzz/fuzz_mqtt_topic.c.  */
#ifndef MQTT_TOPIC_H
#define MQTT_TOPIC_H
#include <stdbool.h>
#include <stddef.h>
#include "sluice_codes.h"

/* The longest sluice topic (proto/slc.h's SLC_TOPIC_MAX), bytes. */
#define MQTT_SLUICE_TOPIC_MAX 255

/* Translate MQTT topic name MQTT (no wildcards; 1..65535 bytes) into a
 * sluice topic: PREFIX (a valid sluice topic, or "" for none) then the
 * encoded levels, into OUT (OUTLEN bytes, caller's; "" on failure). 0, or
 * SL_EINVAL with the reason in ERR (ERRLEN bytes, may be NULL): an empty
 * topic, a '+' or '#', a bad prefix, or a result longer than
 * MQTT_SLUICE_TOPIC_MAX or OUTLEN - 1. */
int mqtt_topic_to_sluice(const char *prefix, const char *mqtt, char *out,
                         size_t outlen, char *err, size_t errlen);

/* Translate MQTT topic filter FILTER ('+' a whole level, '#' a whole last
 * level) into a sluice pattern under PREFIX, as mqtt_topic_to_sluice.
 * 0 or SL_EINVAL with the reason (a wildcard inside a level, '#' not
 * last). */
int mqtt_filter_to_sluice(const char *prefix, const char *filter, char *out,
                          size_t outlen, char *err, size_t errlen);

/* Translate sluice topic TOPIC back: its first STRIP words dropped, the
 * rest decoded, after MQTT prefix PREFIX ("" = none; else joined with
 * '/'). Into OUT (OUTLEN bytes; "" on failure). 0, or SL_EINVAL with the
 * reason: a word that is no escaping the encoder writes (which also
 * refuses '+', '#', '/' and NUL), fewer than STRIP + 1 words, the empty
 * MQTT topic, TOPIC over MQTT_SLUICE_TOPIC_MAX, OUT too small. */
int mqtt_topic_from_sluice(const char *topic, unsigned strip,
                           const char *prefix, char *out, size_t outlen,
                           char *err, size_t errlen);

/* True when some MQTT topic matches both filters A and B (valid filters):
 * an MQTT 5 broker may then send a message once per matching
 * subscription (mosquitto does), and the bridge would store it twice. */
bool mqtt_filters_overlap(const char *a, const char *b);

/* The adapter's one way to give a reason: FMT into ERR (ERRLEN bytes;
 * ERR may be NULL). Returns CODE (a negative SL_E* code), so a failure is
 * `return mqtt_errf(SL_E..., ...)`. Here because every file of the
 * adapter links this one. */
int mqtt_errf(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
