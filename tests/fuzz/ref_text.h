/*  ref_text - a naive reference for slc_text_valid, for the fuzz targets
 *  that compare against it: written from the Unicode standard's table of
 *  well-formed UTF-8 byte sequences (Table 3-7), not from proto/slc.c, and
 *  without NUL. Header only; no state.  */
#ifndef REF_TEXT_H
#define REF_TEXT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool ref_text_valid(const uint8_t *s, size_t n)
{
    /* First byte range, bytes that follow, range of the second byte (any
     * later one is 80..BF). */
    static const struct { uint8_t lo, hi, more, lo2, hi2; } rows[] = {
        { 0x01, 0x7f, 0, 0, 0 },
        { 0xc2, 0xdf, 1, 0x80, 0xbf },
        { 0xe0, 0xe0, 2, 0xa0, 0xbf },
        { 0xe1, 0xec, 2, 0x80, 0xbf },
        { 0xed, 0xed, 2, 0x80, 0x9f },
        { 0xee, 0xef, 2, 0x80, 0xbf },
        { 0xf0, 0xf0, 3, 0x90, 0xbf },
        { 0xf1, 0xf3, 3, 0x80, 0xbf },
        { 0xf4, 0xf4, 3, 0x80, 0x8f },
    };
    size_t i = 0;
    while (i < n) {
        size_t r = 0;
        while (r < sizeof rows / sizeof rows[0] && !(s[i] >= rows[r].lo && s[i] <= rows[r].hi))
            r++;
        if (r == sizeof rows / sizeof rows[0] || n - i <= rows[r].more)
            return false;
        for (size_t k = 1; k <= rows[r].more; k++) {
            uint8_t lo = k == 1 ? rows[r].lo2 : 0x80, hi = k == 1 ? rows[r].hi2 : 0xbf;
            if (s[i + k] < lo || s[i + k] > hi)
                return false;
        }
        i += 1 + rows[r].more;
    }
    return true;
}
#endif
