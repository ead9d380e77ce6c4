/*  console_http - one request of `sluice-console serve`, on one of
 *  libmicrohttpd's threads: the body, the bearer token and the identity it
 *  maps to, the API's route table and the answers in the contract's shape
 *  (docs/console.md), and the static files of the web app (MIME types,
 *  index.html for unknown paths, no `..`, security headers). The handlers
 *  live in console_api_*.c. Reads the console_t only.  */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "console_int.h"
#include "console_http.h"
#include "http_token.h"

/* One connection's request state (MHD's con_cls). */
typedef struct {
    char *body;                 /* owned, NUL-terminated */
    size_t len;
    bool too_big;
} s_conn_t;

/* -------------------------------------------------------- route table */

typedef struct {
    const char *method;
    const char *path;           /* segments after /api/; '*' matches one */
    console_handler_fn *fn;
} s_route_t;

/* The order matters where a literal and '*' compete (routes/diff before
 * routes/VERSION). */
static const s_route_t s_routes[] = {
    { "GET", "whoami", console_api_whoami },
    { "GET", "overview", console_api_overview },
    { "GET", "topics", console_api_topics },
    { "GET", "topics/*/messages", console_api_topic_messages },
    { "GET", "subscriptions", console_api_subscriptions },
    { "POST", "subscriptions/*/seek", console_api_sub_seek },
    { "GET", "dlq", console_api_dlq },
    { "GET", "dlq/*/messages", console_api_dlq_messages },
    { "POST", "dlq/*/redrive", console_api_dlq_redrive },
    { "POST", "dlq/*/remove", console_api_dlq_remove },
    { "GET", "schemas", console_api_schemas },
    { "GET", "schemas/*", console_api_schema },
    { "GET", "mappings", console_api_mappings },
    { "GET", "mappings/*", console_api_mapping },
    { "POST", "mappings/*/test", console_api_mapping_test },
    { "GET", "routes", console_api_routes },
    { "GET", "routes/diff", console_api_routes_diff },
    { "GET", "routes/stats", console_api_routes_stats },
    { "GET", "routes/*", console_api_routes_version },
    { "POST", "routes/check", console_api_routes_check },
    { "POST", "routes/apply", console_api_routes_apply },
    { "POST", "routes/rollback", console_api_routes_rollback },
    { "GET", "audit", console_api_audit },
};

/* Does PATTERN match the request's segments? */
static bool s_match(const char *pattern, const console_req_t *r)
{
    char buf[128], *save = NULL, *word;
    size_t i = 0;

    snprintf(buf, sizeof buf, "%s", pattern);
    for (word = strtok_r(buf, "/", &save); word; word = strtok_r(NULL, "/", &save), i++)
        if (i >= r->nseg || (strcmp(word, "*") != 0 && strcmp(word, r->seg[i]) != 0))
            return false;
    return i == r->nseg;
}

/* ------------------------------------------------------------ answers */

static const char *s_code(int rc, unsigned *status)
{
    switch (rc) {
    case SL_EDENIED:   *status = 403; return "denied";
    case SL_ENOTFOUND: *status = 404; return "not_found";
    case SL_EINVAL:    *status = 400; return "invalid";
    case SL_ESTALE:
    case SL_EEXIST:    *status = 409; return "conflict";
    case SL_ETIMEOUT:  *status = 504; return "timeout";
    default:           *status = 502; return "broker";
    }
}

cJSON *console_error_obj(int rc, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    unsigned status;

    cJSON_AddStringToObject(o, "code", s_code(rc, &status));
    cJSON_AddStringToObject(o, "message", message);
    return o;
}

/* Answer STATUS {"error":{"code":CODE,"message":FMT...}}. */
static void s_verror(console_req_t *r, unsigned status, const char *code,
                     const char *fmt, va_list ap)
{
    char message[2048];
    cJSON *o = cJSON_CreateObject(), *e;

    vsnprintf(message, sizeof message, fmt, ap);
    e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_Delete(r->out);
    r->out = o;
    r->status = status;
}

void console_ok(console_req_t *r, cJSON *out)
{
    cJSON_Delete(r->out);
    r->out = out;
    r->status = 200;
}

void console_fail(console_req_t *r, int rc, const char *fmt, ...)
{
    unsigned status;
    const char *code = s_code(rc, &status);
    va_list ap;

    va_start(ap, fmt);
    s_verror(r, status, code, fmt, ap);
    va_end(ap);
}

void console_fail_sl(console_req_t *r, int rc, const char *what)
{
    const char *why = r->locked ? sl_client_last_error(r->id->client) : "";

    console_fail(r, rc, "%s: %s", what, why && *why ? why : sl_strerror(rc));
}

void console_answer_error(console_req_t *r, unsigned status, const char *code,
                          const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    s_verror(r, status, code, fmt, ap);
    va_end(ap);
}

void console_fail_run(console_req_t *r, int rc, const char *err)
{
    console_answer_error(r, 500, "failed", "%s (%s)", err, sl_strerror(rc));
}

sl_client_t *console_client(console_req_t *r)
{
    if (!r->locked) {
        pthread_mutex_lock(&r->id->lock);
        r->locked = true;
    }
    return r->id->client;
}

void console_release(console_req_t *r)
{
    if (r->locked) {
        pthread_mutex_unlock(&r->id->lock);
        r->locked = false;
    }
}

const char *console_query(console_req_t *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* ------------------------------------------------------------ sending */

static void s_security_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Content-Security-Policy", "default-src 'self'");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
}

/* Queue RESP (taken) with its type, no caching and the security headers. */
static enum MHD_Result s_queue(struct MHD_Connection *conn, unsigned status,
                               struct MHD_Response *resp, const char *type)
{
    enum MHD_Result ret;

    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    s_security_headers(resp);
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result s_send_json(struct MHD_Connection *conn, unsigned status,
                                   cJSON *out)
{
    char *text = out ? cJSON_PrintUnformatted(out) : strdup("{}");
    struct MHD_Response *resp;

    if (!text)
        return MHD_NO;
    resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(text);
    return s_queue(conn, status, resp, "application/json; charset=utf-8");
}

static enum MHD_Result s_send_text(struct MHD_Connection *conn, unsigned status,
                                   const char *text)
{
    return s_queue(conn, status, MHD_create_response_from_buffer(strlen(text),
                   (void *)text, MHD_RESPMEM_MUST_COPY), "text/plain; charset=utf-8");
}

/* ---------------------------------------------------------------- API */

/* The identity the request's bearer token maps to, or NULL. */
static console_id_t *s_auth(console_t *con, struct MHD_Connection *conn)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    int i;

    if (!con->tokens)
        return &con->ids[0];
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    i = http_tokens_lookup(con->tokens, h);
    return i < 0 ? NULL : &con->ids[i];
}

static enum MHD_Result s_api(console_t *con, struct MHD_Connection *conn,
                             const char *url, const char *method, s_conn_t *st)
{
    console_req_t r;
    char path[1024], *save = NULL, *word;
    bool path_known = false;
    size_t i;
    enum MHD_Result ret;

    memset(&r, 0, sizeof r);
    r.con = con;
    r.conn = conn;
    r.method = method;
    r.body = st->body ? st->body : "";
    r.body_len = st->len;
    snprintf(path, sizeof path, "%s", url + 4);
    for (word = strtok_r(path, "/", &save); word; word = strtok_r(NULL, "/", &save)) {
        if (r.nseg == CONSOLE_MAX_SEGS) {
            r.nseg++;
            break;
        }
        r.seg[r.nseg++] = word;
    }
    if (r.nseg == 1 && strcmp(r.seg[0], "health") == 0 && strcmp(method, "GET") == 0) {
        r.out = cJSON_CreateObject();
        cJSON_AddTrueToObject(r.out, "ok");
        cJSON_AddStringToObject(r.out, "version", CONSOLE_VERSION);
        r.status = 200;
        goto send;
    }
    r.id = s_auth(con, conn);
    if (!r.id) {
        console_answer_error(&r, 401, "unauthorized", "a valid token is needed: "
                             "send `Authorization: Bearer TOKEN` (tokens are made "
                             "with `sluice-console token add`)");
        goto send;
    }
    if (st->too_big) {
        console_answer_error(&r, 413, "invalid", "the request body is larger "
                             "than %u bytes", CONSOLE_MAX_BODY);
        goto send;
    }
    if (st->len > 0) {
        r.in = cJSON_ParseWithLength(r.body, r.body_len);
        if (!r.in || !cJSON_IsObject(r.in)) {
            console_answer_error(&r, 400, "invalid", "the request body is not "
                                 "a JSON object");
            goto send;
        }
    }
    else if (strcmp(method, "POST") == 0)
        r.in = cJSON_CreateObject();
    for (i = 0; i < sizeof s_routes / sizeof s_routes[0]; i++) {
        if (r.nseg > CONSOLE_MAX_SEGS || !s_match(s_routes[i].path, &r))
            continue;
        path_known = true;
        if (strcmp(s_routes[i].method, method) != 0)
            continue;
        r.status = 500;
        s_routes[i].fn(&r);
        console_release(&r);
        goto send;
    }
    if (path_known)
        console_answer_error(&r, 405, "invalid", "%s is not allowed on %s", method, url);
    else
        console_answer_error(&r, 404, "not_found", "no API path %s (docs/console.md "
                             "lists them)", url);
send:
    ret = s_send_json(conn, r.status ? r.status : 500, r.out);
    cJSON_Delete(r.out);
    cJSON_Delete(r.in);
    return ret;
}

/* ------------------------------------------------------------- static */

static const char *s_mime(const char *path)
{
    static const char *const types[][2] = {
        { ".html", "text/html; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" },
        { ".mjs", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" },
        { ".json", "application/json" },
        { ".map", "application/json" },
        { ".svg", "image/svg+xml" },
        { ".png", "image/png" },
        { ".jpg", "image/jpeg" },
        { ".jpeg", "image/jpeg" },
        { ".gif", "image/gif" },
        { ".webp", "image/webp" },
        { ".ico", "image/x-icon" },
        { ".woff", "font/woff" },
        { ".woff2", "font/woff2" },
        { ".ttf", "font/ttf" },
        { ".txt", "text/plain; charset=utf-8" },
        { ".wasm", "application/wasm" },
    };
    const char *dot = strrchr(path, '.');
    size_t i;

    if (dot && !strchr(dot, '/'))
        for (i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i][0]) == 0)
                return types[i][1];
    return "application/octet-stream";
}

/* Does URL have a ".." segment (after libmicrohttpd's unescaping)? */
static bool s_dotdot(const char *url)
{
    const char *p = url;

    while ((p = strstr(p, "..")) != NULL) {
        if ((p == url || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
            return true;
        p += 2;
    }
    return strchr(url, '\\') != NULL;
}

/* Open FILE under the web root when it is a regular file inside it. */
static int s_open_inside(const console_t *con, const char *file, struct stat *st)
{
    char real[PATH_MAX], root[PATH_MAX];
    size_t rl;
    int fd;

    if (!realpath(file, real) || !realpath(con->web_root, root))
        return -1;
    rl = strlen(root);
    if (strncmp(real, root, rl) != 0 || (real[rl] != '/' && real[rl] != '\0'))
        return -1;
    fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

static enum MHD_Result s_static(console_t *con, struct MHD_Connection *conn,
                                const char *url)
{
    char file[PATH_MAX + 1024];
    const char *served = url;
    struct MHD_Response *resp;
    struct stat st;
    enum MHD_Result ret;
    int fd = -1;

    if (s_dotdot(url))
        return s_send_text(conn, 400, "refused: a path with `..` (or a backslash)\n");
    if (!con->web_root[0])
        return s_send_text(conn, 503, "the web app is not here: no --web-root "
                           "directory with index.html. Build it with `ninja -C "
                           "BUILD` (adapters/console/web needs npm: see "
                           "docs/console.md) or give --web-root DIR; the JSON "
                           "API under /api/ works without it.\n");
    if (strcmp(url, "/") != 0) {
        snprintf(file, sizeof file, "%s%s", con->web_root, url);
        fd = s_open_inside(con, file, &st);
    }
    if (fd < 0) {
        /* The app's own paths (its hash router aside) all get index.html. */
        served = "/index.html";
        snprintf(file, sizeof file, "%s/index.html", con->web_root);
        fd = s_open_inside(con, file, &st);
    }
    if (fd < 0)
        return s_send_text(conn, 503, "the web root has no index.html: build the "
                           "web app (docs/console.md)\n");
    resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", s_mime(served));
    /* Vite names the files under assets/ by their hash: they never change. */
    MHD_add_response_header(resp, "Cache-Control", strncmp(served, "/assets/", 8) == 0
                            ? "public, max-age=31536000, immutable" : "no-cache");
    s_security_headers(resp);
    ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ------------------------------------------------------ the callbacks */

enum MHD_Result console_access(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    console_t *con = cls;
    s_conn_t *st = *con_cls;
    char *grown;

    (void) version;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (st->len + *upload_data_size > CONSOLE_MAX_BODY)
            st->too_big = true;
        else if ((grown = realloc(st->body, st->len + *upload_data_size + 1))) {
            st->body = grown;
            memcpy(st->body + st->len, upload_data, *upload_data_size);
            st->len += *upload_data_size;
            st->body[st->len] = '\0';
        }
        else
            st->too_big = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strncmp(url, "/api/", 5) == 0 || strcmp(url, "/api") == 0)
        return s_api(con, conn, url, method, st);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return s_send_text(conn, 405, "only GET and HEAD outside /api/\n");
    return s_static(con, conn, url);
}

void console_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                       enum MHD_RequestTerminationCode toe)
{
    s_conn_t *st = *con_cls;

    (void) cls;
    (void) conn;
    (void) toe;
    if (st) {
        free(st->body);
        free(st);
        *con_cls = NULL;
    }
}
