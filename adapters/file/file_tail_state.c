/*  file_tail_state - the state file as JSON (cJSON):
 *  {"version":1,"topic":T,"files":[{"id","fp","fp_len","offset","records",
 *  "dev","ino","seen_us","path"}]}, 64-bit numbers as decimal strings so
 *  no double rounds them.  */
#include "file_tail_state.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include "file_common.h"

int file_tail_fingerprint(int fd, uint32_t len, uint64_t *fp)
{
    char buf[65536];
    if (len == 0 || len > sizeof buf)
        return -1;
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t) got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t) n;
    }
    *fp = XXH3_64bits(buf, len);
    return 0;
}

static int s_unhex(const char *s, uint8_t *out, size_t n)
{
    if (!s || strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t) v;
    }
    return 0;
}

int file_tail_state_save(const char *path, const char *topic,
                         const file_tail_entry_t *const *v, size_t n,
                         char *err, size_t errlen)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *files = cJSON_AddArrayToObject(root, "files");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(root, "topic", topic);
    for (size_t i = 0; files && i < n; i++) {
        const file_tail_entry_t *e = v[i];
        cJSON *o = cJSON_CreateObject();
        char hex[FILE_ID_HEX];
        file_hex(e->id, hex);
        cJSON_AddStringToObject(o, "id", hex);
        file_json_add_u64(o, "fp", e->fp);
        cJSON_AddNumberToObject(o, "fp_len", e->fp_len);
        file_json_add_u64(o, "offset", e->offset);
        file_json_add_u64(o, "records", e->records);
        file_json_add_u64(o, "dev", e->dev);
        file_json_add_u64(o, "ino", e->ino);
        file_json_add_u64(o, "seen_us", e->seen_us);
        cJSON_AddStringToObject(o, "path", e->path);
        cJSON_AddItemToArray(files, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = file_write_atomic(path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}

int file_tail_state_load(const char *path, const char *topic, file_tail_entry_t **out,
                         size_t *n, char *err, size_t errlen)
{
    int rc = -1;
    bool missing;
    file_tail_entry_t *v = NULL;
    *out = NULL;
    *n = 0;
    cJSON *root = file_json_load(path, &missing, err, errlen);
    if (!root)
        return missing ? 0 : -1;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "topic");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    if (!cJSON_IsString(t) || !cJSON_IsArray(files)) {
        snprintf(err, errlen, "%s is not a sluice-file tail state file", path);
        goto fail;
    }
    if (strcmp(t->valuestring, topic) != 0) {
        snprintf(err, errlen, "%s is the state of topic %s, not %s: give each "
                 "topic its own --state", path, t->valuestring, topic);
        goto fail;
    }
    size_t count = (size_t) cJSON_GetArraySize(files), i = 0;
    v = calloc(count ? count : 1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory reading %s", path);
        goto fail;
    }
    const cJSON *o;
    cJSON_ArrayForEach(o, files) {
        file_tail_entry_t *e = &v[i];
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
        const cJSON *fl = cJSON_GetObjectItemCaseSensitive(o, "fp_len");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "path");
        if (!cJSON_IsString(id) || s_unhex(id->valuestring, e->id, 16) != 0
            || !cJSON_IsNumber(fl) || fl->valuedouble < 1 || fl->valuedouble > 65536
            || file_json_u64(o, "fp", &e->fp) || file_json_u64(o, "offset", &e->offset)
            || file_json_u64(o, "records", &e->records) || file_json_u64(o, "dev", &e->dev)
            || file_json_u64(o, "ino", &e->ino) || file_json_u64(o, "seen_us", &e->seen_us)
            || !cJSON_IsString(p)) {
            snprintf(err, errlen, "%s: entry %zu is damaged", path, i + 1);
            goto fail;
        }
        e->fp_len = (uint32_t) fl->valuedouble;
        snprintf(e->path, sizeof e->path, "%s", p->valuestring);
        i++;
    }
    *out = v;
    *n = i;
    v = NULL;
    rc = 0;
fail:
    free(v);
    cJSON_Delete(root);
    return rc;
}
