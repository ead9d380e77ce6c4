/*  sl_util - the few one-liners every libsluice file uses: the log line,
 *  min, and the time left before a deadline. Header only (static inline):
 *  it adds no edge to the SDK's call graph. Any thread; no state. Owns
 *  nothing and knows no module of the SDK.  */
#ifndef SL_UTIL_H
#define SL_UTIL_H
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include "slc.h"

#define SLI_LOG(...) do { fprintf(stderr, "libsluice: " __VA_ARGS__); \
                          fputc('\n', stderr); } while (0)

#define SLI_ERROR_MAX 256                     /* sl_client_last_error text */

static inline uint64_t sli_min(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Milliseconds left until DEADLINE (mono ms) for a wait of TIMEOUT_MS:
 * -1 (no limit) for a negative timeout, 0 once it has passed. */
static inline int sli_remaining(uint64_t deadline, int timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    uint64_t now = slc_mono_ms();
    if (now >= deadline)
        return 0;
    uint64_t left = deadline - now;
    return left > INT_MAX ? INT_MAX : (int) left;
}

#endif
