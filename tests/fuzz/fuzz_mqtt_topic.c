/*  fuzz_mqtt_topic - libFuzzer target for sluice-mqtt's topic translation
 *  (adapters/mqtt/mqtt_topic.c). Input: one byte of options (bit 0: treat
 *  the text as a filter; bits 1-3: words to strip going back; bit 4: a
 *  prefix), then the text (cut at the first NUL). Checks the documented
 *  invariants: what comes out is a valid sluice topic or pattern of
 *  [A-Za-z0-9_-] words within 255 bytes; an MQTT topic that translates
 *  comes back byte for byte; a sluice topic that translates back
 *  translates forward to itself (the escaping is one-to-one); failures
 *  leave an empty output and a reason. Single thread; no state.  */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mqtt_topic.h"

#define S_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_mqtt_topic: %s:%d: check failed: %s\n", \
                    __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

/* A sluice topic (or pattern when WILD) as slc_topic_validate /
 * slc_pattern_validate define it: words of [A-Za-z0-9_-], '*' a whole
 * word, '>' the whole last word. */
static bool s_sluice_ok(const char *t, bool wild)
{
    size_t len = strlen(t);
    const char *w = t;

    if (len == 0 || len > MQTT_SLUICE_TOPIC_MAX)
        return false;
    for (;;) {
        size_t n = strcspn(w, ".");

        if (n == 0)
            return false;
        if (wild && n == 1 && (w[0] == '*' || w[0] == '>')) {
            if (w[0] == '>' && w[1])
                return false;
        } else {
            for (size_t i = 0; i < n; i++) {
                char c = w[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                      || (c >= '0' && c <= '9') || c == '-' || c == '_'))
                    return false;
            }
        }
        if (!w[n])
            return true;
        w += n + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[70000], out[300], back[70000], again[300], err[300];
    const char *prefix;
    bool filter;
    unsigned strip;
    size_t n;

    if (size < 1 || size - 1 >= sizeof text)
        return 0;
    filter = data[0] & 1;
    strip = (data[0] >> 1) & 7;
    prefix = data[0] & 16 ? "iot.plant-1" : "";
    n = size - 1;
    memcpy(text, data + 1, n);
    text[n] = '\0';

    /* MQTT -> sluice, and back. */
    err[0] = '\0';
    if ((filter ? mqtt_filter_to_sluice : mqtt_topic_to_sluice)(prefix, text, out,
                                                               sizeof out, err,
                                                               sizeof err) == 0) {
        S_CHECK(s_sluice_ok(out, filter));
        if (!filter) {
            unsigned words = prefix[0] ? 2 : 0;

            S_CHECK(mqtt_topic_from_sluice(out, words, "", back, sizeof back, err,
                                           sizeof err) == 0);
            S_CHECK(strcmp(back, text) == 0);
        }
    } else {
        S_CHECK(out[0] == '\0' && err[0] != '\0');
    }

    /* sluice -> MQTT, and forward again. */
    err[0] = '\0';
    if (mqtt_topic_from_sluice(text, strip, "", back, sizeof back, err, sizeof err) == 0) {
        const char *rest = text;

        for (unsigned i = 0; i < strip; i++)
            rest = strchr(rest, '.') + 1;
        S_CHECK(mqtt_topic_to_sluice("", back, again, sizeof again, err, sizeof err) == 0);
        S_CHECK(strcmp(again, rest) == 0);
    } else {
        S_CHECK(back[0] == '\0' && err[0] != '\0');
    }
    return 0;
}
