/*  mqtt_config - the bridges to run: defaults, the YAML file (libfyaml),
 *  the checks every source of configuration goes through. Owns its
 *  strings; main thread only. The file's keys are the flags' names with
 *  '_' (docs/adapters.md, "sluice-mqtt"); an unknown key is an error, so a
 *  typo never silently leaves a default in place.  */
#include "mqtt_config.h"
#include <libfyaml.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mqtt_topic.h"

#define S_MAX_RULES 256

int mqtt_config_set(char **slot, const char *value)
{
    char *copy = value ? strdup(value) : NULL;

    if (value && !copy)
        return SL_ENOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

mqtt_bridge_cfg_t *mqtt_config_add(mqtt_config_t *self, const char *name)
{
    mqtt_bridge_cfg_t *grown = realloc(self->bridges, (self->n + 1) * sizeof *grown);
    mqtt_bridge_cfg_t *b;
    char id[300];

    if (!grown)
        return NULL;
    self->bridges = grown;
    b = &grown[self->n];
    memset(b, 0, sizeof *b);
    snprintf(id, sizeof id, "sluice-%s", name);
    if (mqtt_config_set(&b->name, name) < 0 || mqtt_config_set(&b->host, "127.0.0.1") < 0
        || mqtt_config_set(&b->client_id, id) < 0) {
        free(b->name);
        free(b->host);
        return NULL;
    }
    b->port = 1883;
    b->keepalive = 60;
    b->out_window = 100;
    b->backoff_max_ms = 10000;
    self->n++;
    return b;
}

int mqtt_config_add_in(mqtt_bridge_cfg_t *b, const char *filter, int qos,
                       const char *prefix)
{
    mqtt_in_rule_t *grown = realloc(b->in, (b->nin + 1) * sizeof *grown);
    mqtt_in_rule_t *r;

    if (!grown)
        return SL_ENOMEM;
    b->in = grown;
    r = &grown[b->nin];
    memset(r, 0, sizeof *r);
    r->qos = qos;
    b->nin++;
    return mqtt_config_set(&r->filter, filter) < 0
        || mqtt_config_set(&r->prefix, prefix) < 0 ? SL_ENOMEM : 0;
}

int mqtt_config_add_out(mqtt_bridge_cfg_t *b, const char *pattern,
                        const char *subscription, int qos, unsigned strip,
                        const char *prefix, bool retain, unsigned ack_wait_ms)
{
    mqtt_out_rule_t *grown = realloc(b->out, (b->nout + 1) * sizeof *grown);
    mqtt_out_rule_t *r;

    if (!grown)
        return SL_ENOMEM;
    b->out = grown;
    r = &grown[b->nout];
    memset(r, 0, sizeof *r);
    r->qos = qos;
    r->strip = strip;
    r->retain = retain;
    r->ack_wait_ms = ack_wait_ms;
    b->nout++;
    return mqtt_config_set(&r->pattern, pattern) < 0
        || mqtt_config_set(&r->subscription, subscription) < 0
        || mqtt_config_set(&r->prefix, prefix) < 0 ? SL_ENOMEM : 0;
}

void mqtt_config_clear(mqtt_config_t *self)
{
    for (size_t i = 0; i < self->n; i++) {
        mqtt_bridge_cfg_t *b = &self->bridges[i];

        for (size_t j = 0; j < b->nin; j++) {
            free(b->in[j].filter);
            free(b->in[j].prefix);
        }
        for (size_t j = 0; j < b->nout; j++) {
            free(b->out[j].pattern);
            free(b->out[j].subscription);
            free(b->out[j].prefix);
        }
        free(b->in);
        free(b->out);
        free(b->name);
        free(b->host);
        free(b->client_id);
        free(b->username);
        free(b->password_file);
        free(b->producer_id_file);
    }
    free(self->bridges);
    self->bridges = NULL;
    self->n = 0;
}

/* ------------------------------------------------------------ the file */

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} s_ctx_t;

static int s_line(struct fy_node *n)
{
    struct fy_token *t = n ? fy_node_get_scalar_token(n) : NULL;
    const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;

    return m ? m->line + 1 : 0;
}

/* The scalar text of N, or NULL when N is no scalar. Borrowed from the
 * document. */
static const char *s_scalar(struct fy_node *n)
{
    if (!n || fy_node_is_alias(n) || fy_node_get_type(n) != FYNT_SCALAR)
        return NULL;
    return fy_node_get_scalar0(n);
}

static int s_bad(s_ctx_t *c, struct fy_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_bad(s_ctx_t *c, struct fy_node *at, const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return mqtt_errf(SL_EINVAL, c->err, c->errlen, "%s:%d: %s", c->path, s_line(at),
                     what);
}

static int s_int(s_ctx_t *c, struct fy_node *key, struct fy_node *v, long lo,
                 long hi, long *out)
{
    const char *s = s_scalar(v);
    char *end = NULL;
    long n;

    if (!s || !*s)
        return s_bad(c, key, "'%s' wants a number from %ld to %ld", s_scalar(key), lo, hi);
    n = strtol(s, &end, 10);
    if (*end || n < lo || n > hi)
        return s_bad(c, key, "'%s: %s' wants a number from %ld to %ld", s_scalar(key), s,
                     lo, hi);
    *out = n;
    return 0;
}

static int s_str(s_ctx_t *c, struct fy_node *key, struct fy_node *v, char **slot)
{
    const char *s = s_scalar(v);

    if (!s)
        return s_bad(c, key, "'%s' wants a text value", s_scalar(key));
    if (mqtt_config_set(slot, s) < 0)
        return mqtt_errf(SL_ENOMEM, c->err, c->errlen, "out of memory");
    return 0;
}

static int s_bool(s_ctx_t *c, struct fy_node *key, struct fy_node *v, bool *out)
{
    const char *s = s_scalar(v);

    if (s && strcmp(s, "true") == 0)
        *out = true;
    else if (s && strcmp(s, "false") == 0)
        *out = false;
    else
        return s_bad(c, key, "'%s' wants true or false", s_scalar(key));
    return 0;
}

/* Each pair of mapping M as (key text, key node, value node); the walk
 * stops at the first non-zero return of FN. */
typedef int (s_pair_fn)(s_ctx_t *c, const char *k, struct fy_node *key,
                        struct fy_node *v, void *arg);

static int s_each(s_ctx_t *c, struct fy_node *m, struct fy_node *at, const char *what,
                  s_pair_fn *fn, void *arg)
{
    struct fy_node_pair *pr;
    void *it = NULL;

    if (!m || fy_node_is_alias(m) || fy_node_get_type(m) != FYNT_MAPPING)
        return s_bad(c, at, "%s must be a mapping of keys and values", what);
    while ((pr = fy_node_mapping_iterate(m, &it))) {
        struct fy_node *key = fy_node_pair_key(pr);
        const char *k = s_scalar(key);
        int rc;

        if (!k)
            return s_bad(c, at, "a key of %s is not a plain word", what);
        rc = fn(c, k, key, fy_node_pair_value(pr), arg);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_unknown(s_ctx_t *c, struct fy_node *key, const char *k, const char *keys)
{
    return s_bad(c, key, "unknown key '%s' (known: %s)", k, keys);
}

static int s_in_pair(s_ctx_t *c, const char *k, struct fy_node *key, struct fy_node *v,
                     void *arg)
{
    mqtt_in_rule_t *r = arg;
    long n;

    if (strcmp(k, "filter") == 0)
        return s_str(c, key, v, &r->filter);
    if (strcmp(k, "prefix") == 0)
        return s_str(c, key, v, &r->prefix);
    if (strcmp(k, "qos") == 0) {
        if (s_int(c, key, v, 0, 2, &n) < 0)
            return SL_EINVAL;
        r->qos = (int) n;
        return 0;
    }
    return s_unknown(c, key, k, "filter, qos, prefix");
}

static int s_out_pair(s_ctx_t *c, const char *k, struct fy_node *key, struct fy_node *v,
                      void *arg)
{
    mqtt_out_rule_t *r = arg;
    long n;

    if (strcmp(k, "pattern") == 0)
        return s_str(c, key, v, &r->pattern);
    if (strcmp(k, "subscription") == 0)
        return s_str(c, key, v, &r->subscription);
    if (strcmp(k, "prefix") == 0)
        return s_str(c, key, v, &r->prefix);
    if (strcmp(k, "retain") == 0)
        return s_bool(c, key, v, &r->retain);
    if (strcmp(k, "qos") == 0 || strcmp(k, "strip") == 0 || strcmp(k, "ack_wait_ms") == 0) {
        if (s_int(c, key, v, 0, k[0] == 'q' ? 2 : k[0] == 's' ? 64 : 3600000, &n) < 0)
            return SL_EINVAL;
        if (k[0] == 'q')
            r->qos = (int) n;
        else if (k[0] == 's')
            r->strip = (unsigned) n;
        else
            r->ack_wait_ms = (unsigned) n;
        return 0;
    }
    return s_unknown(c, key, k, "pattern, subscription, qos, strip, prefix, retain, "
                     "ack_wait_ms");
}

/* Every item of sequence V (the value of KEY) added to B's in or out
 * rules and filled by its pairs. */
static int s_rules(s_ctx_t *c, struct fy_node *key, struct fy_node *v,
                   mqtt_bridge_cfg_t *b, bool in)
{
    struct fy_node *item;
    void *it = NULL;

    if (!v || fy_node_is_alias(v) || fy_node_get_type(v) != FYNT_SEQUENCE)
        return s_bad(c, key, "'%s' wants a list of rules ('- filter: ...')",
                     in ? "in" : "out");
    if (fy_node_sequence_item_count(v) > S_MAX_RULES)
        return s_bad(c, key, "more than %d rules", S_MAX_RULES);
    while ((item = fy_node_sequence_iterate(v, &it))) {
        int rc = in ? mqtt_config_add_in(b, NULL, 1, "mqtt")
                    : mqtt_config_add_out(b, NULL, NULL, 1, 0, "", false, 0);

        if (rc < 0)
            return mqtt_errf(SL_ENOMEM, c->err, c->errlen, "out of memory");
        rc = in ? s_each(c, item, key, "an in rule", s_in_pair, &b->in[b->nin - 1])
                : s_each(c, item, key, "an out rule", s_out_pair, &b->out[b->nout - 1]);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_bridge_pair(s_ctx_t *c, const char *k, struct fy_node *key,
                         struct fy_node *v, void *arg)
{
    mqtt_bridge_cfg_t *b = arg;
    const char *ints[] = { "port", "keepalive", "out_window", "backoff_max_ms" };
    const long hi[] = { 65535, 65535, 65535, 3600000 };
    int *slots[] = { &b->port, &b->keepalive, &b->out_window, &b->backoff_max_ms };
    long n;

    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        if (strcmp(k, ints[i]) == 0) {
            if (s_int(c, key, v, 1, hi[i], &n) < 0)
                return SL_EINVAL;
            *slots[i] = (int) n;
            return 0;
        }
    }
    if (strcmp(k, "name") == 0)
        return 0;                       /* read first, by s_bridge */
    if (strcmp(k, "host") == 0)
        return s_str(c, key, v, &b->host);
    if (strcmp(k, "client_id") == 0)
        return s_str(c, key, v, &b->client_id);
    if (strcmp(k, "username") == 0)
        return s_str(c, key, v, &b->username);
    if (strcmp(k, "password_file") == 0)
        return s_str(c, key, v, &b->password_file);
    if (strcmp(k, "producer_id_file") == 0)
        return s_str(c, key, v, &b->producer_id_file);
    if (strcmp(k, "in") == 0 || strcmp(k, "out") == 0)
        return s_rules(c, key, v, b, k[0] == 'i');
    return s_unknown(c, key, k, "name, host, port, client_id, username, password_file, "
                     "keepalive, producer_id_file, out_window, backoff_max_ms, in, out");
}

static int s_bridge(s_ctx_t *c, mqtt_config_t *cfg, struct fy_node *item,
                    struct fy_node *at, const char *state_dir)
{
    struct fy_node *nn = item && fy_node_get_type(item) == FYNT_MAPPING
                         ? fy_node_mapping_lookup_by_string(item, "name", FY_NT) : NULL;
    const char *name = s_scalar(nn);
    mqtt_bridge_cfg_t *b;
    char pid[4096];

    if (!name || !*name)
        return s_bad(c, item ? item : at, "every bridge needs 'name:'");
    b = mqtt_config_add(cfg, name);
    if (!b)
        return mqtt_errf(SL_ENOMEM, c->err, c->errlen, "out of memory");
    snprintf(pid, sizeof pid, "%s/%s.producer", state_dir, name);
    if (mqtt_config_set(&b->producer_id_file, pid) < 0)
        return mqtt_errf(SL_ENOMEM, c->err, c->errlen, "out of memory");
    return s_each(c, item, at, "a bridge", s_bridge_pair, b);
}

static int s_root_pair(s_ctx_t *c, const char *k, struct fy_node *key, struct fy_node *v,
                       void *arg)
{
    void **a = arg;
    struct fy_node *item;
    void *it = NULL;

    if (strcmp(k, "bridges") != 0)
        return s_unknown(c, key, k, "bridges");
    if (!v || fy_node_is_alias(v) || fy_node_get_type(v) != FYNT_SEQUENCE)
        return s_bad(c, key, "'bridges' wants a list ('- name: ...')");
    while ((item = fy_node_sequence_iterate(v, &it))) {
        int rc = s_bridge(c, a[0], item, key, a[1]);

        if (rc)
            return rc;
    }
    return 0;
}

int mqtt_config_load(mqtt_config_t *self, const char *path, const char *state_dir,
                     char *err, size_t errlen)
{
    struct fy_parse_cfg pcfg = { .flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 };
    struct fy_document *doc;
    s_ctx_t c = { path, err, errlen };
    void *arg[2] = { self, (void *) state_dir };
    int rc;
    FILE *f = fopen(path, "r");

    if (!f)
        return mqtt_errf(SL_ESYS, err, errlen, "cannot read %s: %m", path);
    fclose(f);
    doc = fy_document_build_from_file(&pcfg, path);
    if (!doc)
        return mqtt_errf(SL_EINVAL, err, errlen, "%s is not valid YAML (check it with a "
                         "YAML linter; docs/adapters.md shows the format)", path);
    rc = s_each(&c, fy_document_root(doc), NULL, "the file", s_root_pair, arg);
    fy_document_destroy(doc);
    return rc;
}

/* ----------------------------------------------------------- the checks */

/* What is wrong with B, as text into WHY; "" when nothing is. */
static void s_check_bridge(const mqtt_bridge_cfg_t *b, char *why, size_t len)
{
    char out[MQTT_SLUICE_TOPIC_MAX + 1], t[300];

    why[0] = '\0';
    if (b->nin + b->nout == 0)
        snprintf(why, len, "no in or out rule: give --in or --out (or 'in:' / 'out:' "
                 "in the file)");
    else if (!*b->client_id || strlen(b->client_id) > 65535)
        snprintf(why, len, "client_id must be 1 to 65535 bytes");
    for (size_t i = 0; i < b->nin && !why[0]; i++) {
        const mqtt_in_rule_t *r = &b->in[i];

        if (!r->filter)
            snprintf(why, len, "in rule %zu has no filter", i + 1);
        else if (mqtt_filter_to_sluice(r->prefix, r->filter, out, sizeof out, t, sizeof t))
            snprintf(why, len, "in rule '%s': %s", r->filter, t);
        else if (!r->prefix[0] && (out[0] == '_' || out[0] == '>' || out[0] == '*'))
            snprintf(why, len, "in rule '%s' without a prefix could name sluice topics "
                     "starting with '_' (the broker's own): give a prefix", r->filter);
        for (size_t j = 0; j < i && !why[0]; j++)
            if (b->in[j].filter && mqtt_filters_overlap(b->in[j].filter, r->filter))
                snprintf(why, len, "in rules '%s' and '%s' overlap: the MQTT broker may "
                         "send a message matching both twice, and it would be stored "
                         "twice; make the filters disjoint", b->in[j].filter, r->filter);
    }
    for (size_t i = 0; i < b->nout && !why[0]; i++) {
        const mqtt_out_rule_t *r = &b->out[i];

        if (!r->pattern || !*r->pattern)
            snprintf(why, len, "out rule %zu has no pattern", i + 1);
        else if (!r->subscription || !*r->subscription)
            snprintf(why, len, "out rule '%s' has no subscription name", r->pattern);
        else if (strchr(r->prefix, '+') || strchr(r->prefix, '#'))
            snprintf(why, len, "out prefix '%s' holds a wildcard", r->prefix);
        for (size_t j = 0; j < i && !why[0]; j++)
            if (strcmp(b->out[j].subscription, r->subscription) == 0)
                snprintf(why, len, "subscription '%s' is used by two out rules",
                         r->subscription);
    }
}

int mqtt_config_check(const mqtt_config_t *self, char *err, size_t errlen)
{
    char why[512];

    if (self->n == 0)
        return mqtt_errf(SL_EINVAL, err, errlen, "no bridge configured: give --in/--out "
                         "or --config");
    for (size_t i = 0; i < self->n; i++) {
        const mqtt_bridge_cfg_t *b = &self->bridges[i];

        s_check_bridge(b, why, sizeof why);
        if (why[0])
            return mqtt_errf(SL_EINVAL, err, errlen, "bridge '%s': %s", b->name, why);
        for (size_t j = 0; j < i; j++) {
            const mqtt_bridge_cfg_t *o = &self->bridges[j];

            if (strcmp(o->name, b->name) == 0)
                return mqtt_errf(SL_EINVAL, err, errlen, "two bridges are named '%s'",
                                 b->name);
            if (strcmp(o->client_id, b->client_id) == 0 && strcmp(o->host, b->host) == 0
                && o->port == b->port)
                return mqtt_errf(SL_EINVAL, err, errlen, "bridges '%s' and '%s' use the "
                                 "same MQTT client id '%s': the broker would disconnect "
                                 "one for the other", o->name, b->name, b->client_id);
        }
    }
    return 0;
}
