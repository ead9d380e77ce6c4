/*  fuzz_cert - libFuzzer target for the key and certificate parsers that
 *  read operator input: slc_key_decode (a Z85 key as text), slc_key_parse
 *  (text or a file) and slc_cert_load (a certificate file, ZPL). The input
 *  is written to a private file and parsed both ways; a parse that succeeds
 *  must give a key that encodes back to 40 Z85 characters and decodes to
 *  itself. Single thread; one scratch file per process.  */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "slc_cert.h"

#define S_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_cert: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

static char s_path[64];

/* A parsed key must survive encode -> decode unchanged. */
static void s_round_trip(const uint8_t key[SLC_KEY_LEN])
{
    char z85[SLC_Z85_LEN + 1];
    uint8_t back[SLC_KEY_LEN];
    char err[256];
    slc_key_z85(key, z85);
    S_CHECK(strlen(z85) == SLC_Z85_LEN);
    S_CHECK(slc_key_decode(z85, back, err, sizeof err) == 0);
    S_CHECK(memcmp(back, key, SLC_KEY_LEN) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    uint8_t key[SLC_KEY_LEN];
    slc_cert_t cert;
    if (!s_path[0])
        snprintf(s_path, sizeof s_path, "/tmp/fuzz_cert.%d", (int) getpid());
    /* As text (an inner NUL just ends it). */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    if (slc_key_decode(text, key, err, sizeof err) == 0)
        s_round_trip(key);
    /* As a file, private so that a secret in it is accepted. */
    int fd = open(s_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        ssize_t n = write(fd, data, size);
        close(fd);
        if (n == (ssize_t) size) {
            if (slc_key_parse(s_path, key, err, sizeof err) == 0)
                s_round_trip(key);
            memset(&cert, 0, sizeof cert);
            if (slc_cert_load(s_path, &cert, err, sizeof err) == 0) {
                s_round_trip(cert.public_key);
                slc_cert_wipe(&cert);
            }
        }
        unlink(s_path);
    }
    free(text);
    return 0;
}
