/*  sld_commands - the command table, dispatch and permissions (see
 *  sld_commands.h). Per session the protocol is a table of state x
 *  command -> row; a peer without a session may only say Hello. The
 *  table is indexed by Frame.body case: one array lookup per frame.
 *  Broker thread only. What each command does lives with its concern
 *  (sld_session, sld_ingest, sld_consume, sld_admin).  */
#include "sld_commands.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "sld_session.h"

#define S_ROW(body, nm, ph, pm, h, ap, act, wh, obj) \
    [SLUICE__FRAME__BODY_##body] = { nm, SLD_CMD_##ph, SLD_CMD_##pm, h, ap, act, wh, obj }

/* State READY x command -> row. Commands not listed are unexpected: the
 * broker's replies, and bodies of a later protocol version. */
static const sld_command_t s_table[] = {
    S_ROW(HELLO, "hello", IMMEDIATE, ANY, sld_session_on_hello, NULL, "hello", NULL, NULL),
    S_ROW(HEARTBEAT, "heartbeat", IMMEDIATE, ANY, sld_session_on_heartbeat, NULL,
          "heartbeat", NULL, NULL),
    S_ROW(PUBLISH, "publish", WRITE, PUBLISH, sld_ingest_on_publish, sld_ingest_apply,
          "publish", "publish to", NULL),
    S_ROW(PUBLISH_BATCH, "publish_batch", WRITE, PUBLISH, sld_ingest_on_publish,
          sld_ingest_apply, "publish", "publish to", NULL),
    S_ROW(SUBSCRIBE, "subscribe", IMMEDIATE, SUBSCRIBE, sld_consume_on_subscribe, NULL,
          "subscribe", "subscribe to", NULL),
    S_ROW(CREDIT, "credit", IMMEDIATE, SUB_USE, sld_consume_on_credit, NULL, "credit",
          "use its subscription to", NULL),
    S_ROW(ACK, "ack", IMMEDIATE, SUB_USE, sld_consume_on_ack, NULL, "ack",
          "use its subscription to", NULL),
    S_ROW(NACK, "nack", IMMEDIATE, SUB_USE, sld_consume_on_ack, NULL, "nack",
          "use its subscription to", NULL),
    S_ROW(UNSUBSCRIBE, "unsubscribe", IMMEDIATE, SUB_USE, sld_consume_on_unsubscribe, NULL,
          "unsubscribe", "use its subscription to", NULL),
    S_ROW(SUB_REMOVE, "sub_remove", IMMEDIATE, SUB_REMOVE, sld_consume_on_sub_remove, NULL,
          "sub.remove", "remove", NULL),
    S_ROW(STATS, "stats", IMMEDIATE, ANY, sld_admin_on_stats, NULL, "stats", NULL, NULL),
    S_ROW(TOPIC_CREATE, "topic_create", WRITE, TOPIC_ADMIN, NULL,
          sld_admin_apply_topic_create, "topic.create", "create topic", NULL),
    S_ROW(TOPIC_SET, "topic_set", WRITE, TOPIC_ADMIN, NULL, sld_admin_apply_registry,
          "topic.set", "bind a schema to topic", NULL),
    S_ROW(KEY_ADD, "key_add", WRITE, ADMIN, NULL, sld_admin_apply_keys, "keys.add",
          "administer", "keys and grants"),
    S_ROW(KEY_REVOKE, "key_revoke", WRITE, ADMIN, NULL, sld_admin_apply_keys, "keys.revoke",
          "administer", "keys and grants"),
    S_ROW(KEY_LIST, "key_list", IMMEDIATE, ADMIN, sld_admin_on_key_list, NULL, "keys.list",
          "administer", "keys and grants"),
    S_ROW(GRANT_CHANGE, "grant_change", WRITE, ADMIN, NULL, sld_admin_apply_keys,
          "grant.add", "administer", "keys and grants"),
    S_ROW(ROTATE_KEY, "rotate_key", WRITE, ADMIN, NULL, sld_admin_apply_keys, "rotate-key",
          "administer", "keys and grants"),
    S_ROW(SCHEMA_REGISTER, "schema_register", WRITE, ADMIN, NULL, sld_admin_apply_registry,
          "schema.register", "register schema", NULL),
    S_ROW(SCHEMA_GET, "schema_get", IMMEDIATE, ANY, sld_admin_on_schema_read, NULL,
          "schema.get", NULL, NULL),
    S_ROW(SCHEMA_LIST, "schema_list", IMMEDIATE, ANY, sld_admin_on_schema_read, NULL,
          "schema.list", NULL, NULL),
    S_ROW(MAPPING_ADD, "mapping_add", WRITE, ADMIN, NULL, sld_admin_apply_registry,
          "mapping.add", "change", "mappings"),
    S_ROW(MAPPING_REMOVE, "mapping_remove", WRITE, ADMIN, NULL, sld_admin_apply_registry,
          "mapping.remove", "change", "mappings"),
    S_ROW(MAPPING_GET, "mapping_get", IMMEDIATE, ANY, sld_admin_on_mapping_read, NULL,
          "mapping.get", NULL, NULL),
    S_ROW(MAPPING_LIST, "mapping_list", IMMEDIATE, ANY, sld_admin_on_mapping_read, NULL,
          "mapping.list", NULL, NULL),
    S_ROW(ROUTES_APPLY, "routes_apply", WRITE, ADMIN, NULL, sld_admin_apply_routes,
          "routes.apply", "change", "the routing table"),
    S_ROW(ROUTES_ROLLBACK, "routes_rollback", WRITE, ADMIN, NULL, sld_admin_apply_routes,
          "routes.rollback", "change", "the routing table"),
    S_ROW(ROUTES_GET, "routes_get", IMMEDIATE, ANY, sld_admin_on_routes_read, NULL,
          "routes.get", NULL, NULL),
    S_ROW(ROUTES_LIST, "routes_list", IMMEDIATE, ANY, sld_admin_on_routes_read, NULL,
          "routes.list", NULL, NULL),
    S_ROW(TRACE, "trace", IMMEDIATE, SUBSCRIBE, sld_admin_on_trace, NULL, "trace",
          "trace messages of", NULL),
    S_ROW(ROUTES_BACKFILL, "routes_backfill", WRITE, TOPIC_ADMIN, NULL,
          sld_route_backfill_apply, "routes.backfill", "backfill routes on topic", NULL),
    S_ROW(SUB_SEEK, "sub_seek", WRITE, SUB_REMOVE, NULL, sld_admin_apply_sub_seek,
          "subscription.seek", "seek", NULL),
    S_ROW(DLQ_LIST, "dlq_list", IMMEDIATE, SUBSCRIBE, sld_admin_on_dlq_list, NULL, "dlq.list",
          "list dead letters of", NULL),
    S_ROW(DLQ_REMOVE, "dlq_remove", WRITE, TOPIC_ADMIN, NULL, sld_admin_apply_dlq_remove,
          "dlq.remove", "remove dead letters of", NULL),
};
#define S_TABLE_SIZE (sizeof s_table / sizeof s_table[0])

const sld_command_t *sld_commands_lookup(unsigned cmd)
{
    return cmd < S_TABLE_SIZE && s_table[cmd].name ? &s_table[cmd] : NULL;
}

unsigned sld_commands_size(void)
{
    return (unsigned) S_TABLE_SIZE;
}

/* ---------------------------------------------------------- refusals */

/* The top-level "name:" of mapping YAML TEXT into OUT ("" when none): the
 * target of a refused MappingAdd, which is refused before it is parsed. */
static void s_yaml_name(const char *text, char *out, size_t len)
{
    out[0] = 0;
    const char *line = text;
    while (line && *line) {
        if (strncmp(line, "name:", 5) == 0) {
            const char *v = line + 5;
            v += strspn(v, " \t\"'");
            size_t n = strcspn(v, " \t\r\n\"'#");
            snprintf(out, len, "%.*s", (int) (n < len ? n : len - 1), v);
            return;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
}

/* The arguments of command F as audit text into OUT: names, keys, limits,
 * sizes. Never secret material (a public key is none); a schema's or a
 * mapping's text only by its size. */
static void s_args(const Sluice__Frame *f, char *out, size_t len)
{
    static const char *const starts[] = { "default", "earliest", "latest", "offset", "time" };
    char key[41] = "";
    out[0] = 0;
    switch (f->body_case) {
    case SLUICE__FRAME__BODY_SUBSCRIBE: {
        const Sluice__Subscribe *sub = f->subscribe;
        unsigned k = (unsigned) sub->start < 5 ? (unsigned) sub->start : 0;
        char at[40] = "";
        if (sub->start == SLUICE__START_KIND__START_OFFSET)
            snprintf(at, sizeof at, " %" PRIu64, sub->start_offset);
        else if (sub->start == SLUICE__START_KIND__START_TIME)
            snprintf(at, sizeof at, " %" PRIu64 " us", sub->start_time_us);
        if (sub->ephemeral)
            snprintf(out, len, "ephemeral subscription, pattern %s, start %s%s",
                     sub->pattern ? sub->pattern : "", starts[k], at);
        else
            snprintf(out, len, "durable subscription \"%s\", pattern %s, start %s%s",
                     sub->name ? sub->name : "", sub->pattern ? sub->pattern : "", starts[k], at);
        break;
    }
    case SLUICE__FRAME__BODY_TRACE:
        snprintf(out, len, "topic %s, offset %" PRIu64,
                 f->trace->topic ? f->trace->topic : "", f->trace->offset);
        break;
    case SLUICE__FRAME__BODY_DLQ_LIST:
        snprintf(out, len, "topic %s, from %" PRIu64 ", max %u",
                 f->dlq_list->topic ? f->dlq_list->topic : "", f->dlq_list->from,
                 f->dlq_list->max);
        break;
    case SLUICE__FRAME__BODY_DLQ_REMOVE:
        snprintf(out, len, "offset %" PRIu64, f->dlq_remove->offset);
        break;
    case SLUICE__FRAME__BODY_SUB_SEEK: {
        const Sluice__SubSeek *ss = f->sub_seek;
        unsigned k = (unsigned) ss->start < 5 ? (unsigned) ss->start : 0;
        snprintf(out, len, "subscription \"%.200s\", topic %.255s, start %s, offset %" PRIu64
                 ", time %" PRIu64 " us", ss->name ? ss->name : "",
                 ss->topic && ss->topic[0] ? ss->topic : "(every one)", starts[k], ss->offset,
                 ss->time_us);
        break;
    }
    case SLUICE__FRAME__BODY_CREDIT:
        snprintf(out, len, "subscription id %u, credit %u", f->credit->sub_id,
                 f->credit->credit);
        break;
    case SLUICE__FRAME__BODY_ACK:
        snprintf(out, len, "subscription id %u, %zu items", f->ack->sub_id, f->ack->n_items);
        break;
    case SLUICE__FRAME__BODY_NACK:
        snprintf(out, len, "subscription id %u, %zu items, delay %u ms", f->nack->sub_id,
                 f->nack->n_items, f->nack->delay_ms);
        break;
    case SLUICE__FRAME__BODY_UNSUBSCRIBE:
        snprintf(out, len, "subscription id %u%s", f->unsubscribe->sub_id,
                 f->unsubscribe->remove ? ", remove it" : "");
        break;
    case SLUICE__FRAME__BODY_SUB_REMOVE:
        snprintf(out, len, "subscription \"%s\"", f->sub_remove->name ? f->sub_remove->name : "");
        break;
    case SLUICE__FRAME__BODY_TOPIC_CREATE:
        snprintf(out, len, "max_age_ms %" PRIu64 ", max_bytes %" PRIu64,
                 f->topic_create->max_age_ms, f->topic_create->max_bytes);
        break;
    case SLUICE__FRAME__BODY_TOPIC_SET: {
        const Sluice__TopicSet *ts = f->topic_set;
        snprintf(out, len, "schema %s@%u, invalid: %s",
                 ts->subject && *ts->subject ? ts->subject : "(none)", ts->version,
                 ts->invalid && *ts->invalid ? ts->invalid : "reject");
        break;
    }
    case SLUICE__FRAME__BODY_SCHEMA_REGISTER:
        snprintf(out, len, "subject %s, compat %s, %zu bytes of schema%s",
                 f->schema_register->subject ? f->schema_register->subject : "",
                 f->schema_register->compat && *f->schema_register->compat
                     ? f->schema_register->compat : "(default)",
                 f->schema_register->schema ? strlen(f->schema_register->schema) : 0,
                 f->schema_register->dry_run ? ", dry run" : "");
        break;
    case SLUICE__FRAME__BODY_MAPPING_ADD:
        snprintf(out, len, "%zu bytes of YAML",
                 f->mapping_add->yaml ? strlen(f->mapping_add->yaml) : 0);
        break;
    case SLUICE__FRAME__BODY_MAPPING_REMOVE:
        snprintf(out, len, "mapping \"%s\"",
                 f->mapping_remove->name ? f->mapping_remove->name : "");
        break;
    case SLUICE__FRAME__BODY_ROUTES_APPLY:
        snprintf(out, len, "%zu bytes of YAML, expect_version %u%s",
                 f->routes_apply->yaml ? strlen(f->routes_apply->yaml) : 0,
                 f->routes_apply->expect_version, f->routes_apply->dry_run ? ", dry run" : "");
        break;
    case SLUICE__FRAME__BODY_ROUTES_ROLLBACK:
        snprintf(out, len, "to version %u, expect_version %u", f->routes_rollback->version,
                 f->routes_rollback->expect_version);
        break;
    case SLUICE__FRAME__BODY_ROUTES_BACKFILL:
        snprintf(out, len, "route \"%.128s\", from offset %" PRIu64 " / time %" PRIu64
                 " us, until %" PRIu64 ", max %u",
                 f->routes_backfill->route ? f->routes_backfill->route : "",
                 f->routes_backfill->from_offset, f->routes_backfill->from_time_us,
                 f->routes_backfill->until_offset, f->routes_backfill->max);
        break;
    case SLUICE__FRAME__BODY_KEY_ADD:
        if (f->key_add->public_key.len == 32)
            zmq_z85_encode(key, f->key_add->public_key.data, 32);
        else
            snprintf(key, sizeof key, "(%zu bytes, not a key)", f->key_add->public_key.len);
        snprintf(out, len, "identity \"%s\", public key %s",
                 f->key_add->name ? f->key_add->name : "", key);
        break;
    case SLUICE__FRAME__BODY_KEY_REVOKE:
        snprintf(out, len, "identity \"%s\"", f->key_revoke->name ? f->key_revoke->name : "");
        break;
    case SLUICE__FRAME__BODY_GRANT_CHANGE: {
        int k = snprintf(out, len, "identity \"%s\", %s ",
                         f->grant_change->name ? f->grant_change->name : "",
                         f->grant_change->revoke ? "take away" : "grant");
        if (k > 0 && (size_t) k < len)
            sld_admin_grants_text(f->grant_change, out + k, len - (size_t) k);
        break;
    }
    default:                            /* KeyList, RotateKey: none */
        snprintf(out, len, "no arguments");
        break;
    }
}

/* The target a refused admin command F is audited with: the topic, the
 * subject, the mapping, the identity (BUF holds what is made up). */
static const char *s_target(const Sluice__Frame *f, char *buf, size_t len)
{
    const char *target;
    switch (f->body_case) {
    case SLUICE__FRAME__BODY_TOPIC_CREATE:
        return f->topic_create->name;
    case SLUICE__FRAME__BODY_TOPIC_SET:
        return f->topic_set->topic;
    case SLUICE__FRAME__BODY_ROUTES_BACKFILL:
        return f->routes_backfill->topic;
    case SLUICE__FRAME__BODY_DLQ_REMOVE:
        return f->dlq_remove->topic;
    case SLUICE__FRAME__BODY_SCHEMA_REGISTER:
        return f->schema_register->subject;
    case SLUICE__FRAME__BODY_MAPPING_ADD:
    case SLUICE__FRAME__BODY_MAPPING_REMOVE:
        if (f->body_case == SLUICE__FRAME__BODY_MAPPING_ADD)
            s_yaml_name(f->mapping_add->yaml ? f->mapping_add->yaml : "", buf, len);
        else
            snprintf(buf, len, "%s", f->mapping_remove->name ? f->mapping_remove->name : "");
        return buf[0] ? buf : "(mapping)";
    case SLUICE__FRAME__BODY_ROUTES_APPLY:
    case SLUICE__FRAME__BODY_ROUTES_ROLLBACK:
        return "routing table";
    default:
        target = f->body_case == SLUICE__FRAME__BODY_KEY_ADD ? f->key_add->name
               : f->body_case == SLUICE__FRAME__BODY_KEY_REVOKE ? f->key_revoke->name
               : f->body_case == SLUICE__FRAME__BODY_GRANT_CHANGE ? f->grant_change->name
               : f->body_case == SLUICE__FRAME__BODY_KEY_LIST ? "(identities)"
               : "at-rest data key";
        return target ? target : "";
    }
}

/* The subscription id a subscription command F names. */
static uint32_t s_sub_id(const Sluice__Frame *f)
{
    switch (f->body_case) {
    case SLUICE__FRAME__BODY_CREDIT: return f->credit->sub_id;
    case SLUICE__FRAME__BODY_ACK: return f->ack->sub_id;
    case SLUICE__FRAME__BODY_NACK: return f->nack->sub_id;
    default: return f->unsubscribe->sub_id;
    }
}

/* Refuse F (403) and audit it: ACTION, TARGET, F's arguments and NEED (the
 * grant it lacked); answered "identity "NAME" may not WHAT OBJECT: no
 * grant covers it". */
static void s_deny_cmd(sld_server_t *self, const sld_peer_t *peer, const Sluice__Frame *f,
                       const char *action, const char *target, const char *need,
                       const char *what, const char *object)
{
    char args[768], detail[1024];
    char text[SLC_TOPIC_MAX + SLD_IDENT_NAME_MAX + 96];
    s_args(f, args, sizeof args);
    snprintf(detail, sizeof detail, "%s; needs %.200s", args, need);
    snprintf(text, sizeof text, "identity \"%s\" may not %s %s: no grant covers it",
             sld_ident_name(peer->session->ident), what, object ? object : "");
    sld_session_deny(self, peer, f->corr, action, target, detail, text);
}

/* Refuse F (403), aimed at durable subscription REF which PEER's identity
 * may not use (sld_ident_may_use_sub), and audit it as ACTION with the
 * subscription's name as target; answered "may not WHAT subscription
 * NAME: whose it is; needs ...". */
static void s_deny_sub(sld_server_t *self, const sld_peer_t *peer, const Sluice__Frame *f,
                       const char *action, const sld_sub_ref_t *ref, const char *what)
{
    char args[768], need[2 * SLC_TOPIC_MAX + 96], whose[SLD_IDENT_NAME_MAX + 32];
    char detail[2048], text[3 * SLC_TOPIC_MAX + 256];
    if (ref->owner[0])
        snprintf(whose, sizeof whose, "it belongs to \"%s\"", ref->owner);
    else
        snprintf(whose, sizeof whose, "it has no owner");
    snprintf(need, sizeof need, "consume on %s or admin on %s (its pattern)", ref->name,
             ref->pattern);
    s_args(f, args, sizeof args);
    snprintf(detail, sizeof detail, "%s; %s; needs %s%s%s", args, whose,
             ref->owner[0] ? "to be its owner, " : "", need,
             ref->owner[0] ? "" : ", or subscribe on its pattern to claim it");
    snprintf(text, sizeof text, "identity \"%s\" may not %s subscription %s: %s; needs %s",
             sld_ident_name(peer->session->ident), what, ref->name, whose, need);
    sld_session_deny(self, peer, f->corr, action, ref->name, detail, text);
}

/* May PEER's identity send F, whose row is CMD? Publishes are checked per
 * message where they are handled; malformed names pass here and get their
 * 422 from the handler. A refusal is answered (403) and audited here, with
 * the command, its arguments and its target. */
static bool s_permitted(sld_server_t *self, const sld_peer_t *peer, const sld_command_t *cmd,
                        const Sluice__Frame *f)
{
    const sld_ident_t *id = peer->session->ident;
    const char *p = NULL, *target = NULL;
    char need[SLC_TOPIC_MAX + 32], name[SLC_TOPIC_MAX + 1];
    sld_sub_ref_t ref;
    switch (cmd->perm) {
    case SLD_CMD_ANY:
    case SLD_CMD_PUBLISH:
        return true;
    case SLD_CMD_SUBSCRIBE:
        if (f->body_case == SLUICE__FRAME__BODY_TRACE
            || f->body_case == SLUICE__FRAME__BODY_DLQ_LIST) {
            /* Trace and DlqList read one topic's messages: subscribe on it. */
            p = f->body_case == SLUICE__FRAME__BODY_TRACE ? f->trace->topic
                                                          : f->dlq_list->topic;
            if (!p || slc_topic_validate(p, true) != 0
                || sld_ident_covers(id, SLD_PERM_SUBSCRIBE, p))
                return true;
            snprintf(need, sizeof need, "subscribe on %s", p);
            s_deny_cmd(self, peer, f, cmd->action, p, need, cmd->what, p);
            return false;
        }
        p = f->subscribe->pattern;
        if (!p || slc_pattern_validate(p) != 0)
            return true;
        if (!sld_ident_covers(id, SLD_PERM_SUBSCRIBE, p)) {
            snprintf(need, sizeof need, "subscribe on %s", p);
            s_deny_cmd(self, peer, f, cmd->action, p, need, cmd->what, p);
            return false;
        }
        /* A new durable name is the subscriber's (sld_consume_on_subscribe).
         * An existing one is attached to by who may use it, or claimed by a
         * subscriber of its whole pattern when it has no owner. */
        if (f->subscribe->ephemeral || !f->subscribe->name
            || sld_delivery_lookup(self->delivery, NULL, 0, f->subscribe->name, &ref) != 0
            || sld_ident_may_use_sub(id, ref.name, ref.pattern, ref.owner)
            || (!ref.owner[0] && sld_ident_covers(id, SLD_PERM_SUBSCRIBE, ref.pattern)))
            return true;
        s_deny_sub(self, peer, f, cmd->action, &ref, "attach to");
        return false;
    case SLD_CMD_SUB_USE:
        /* The identity must still cover the pattern and, for a durable
         * subscription, still may use it (a grant may have been revoked
         * since it attached). An unknown id passes and gets its 404 from
         * the handler. */
        if (sld_delivery_lookup(self->delivery, peer->session, s_sub_id(f), NULL, &ref) != 0)
            return true;
        p = ref.pattern;
        if (!sld_ident_covers(id, SLD_PERM_SUBSCRIBE, p)) {
            snprintf(need, sizeof need, "subscribe on %s", p);
            s_deny_cmd(self, peer, f, cmd->action, p, need, cmd->what, p);
            return false;
        }
        if (ref.ephemeral || sld_ident_may_use_sub(id, ref.name, ref.pattern, ref.owner))
            return true;
        s_deny_sub(self, peer, f, cmd->action, &ref, "use");
        return false;
    case SLD_CMD_SUB_REMOVE:
        target = f->body_case == SLUICE__FRAME__BODY_SUB_SEEK ? f->sub_seek->name
                                                              : f->sub_remove->name;
        target = target ? target : "";
        if (sld_delivery_lookup(self->delivery, NULL, 0, target, &ref) != 0
            || sld_ident_may_use_sub(id, ref.name, ref.pattern, ref.owner))
            return true;
        s_deny_sub(self, peer, f, cmd->action, &ref, cmd->what);
        return false;
    case SLD_CMD_TOPIC_ADMIN:
        /* DlqRemove names the broker's own _dlq. topics. */
        p = s_target(f, name, sizeof name);
        if (!p || slc_topic_validate(p, f->body_case == SLUICE__FRAME__BODY_DLQ_REMOVE) != 0
            || sld_ident_allows(id, SLD_PERM_ADMIN, p))
            return true;
        snprintf(need, sizeof need, "admin on %s", p);
        s_deny_cmd(self, peer, f, cmd->action, p, need, cmd->what, p);
        return false;
    case SLD_CMD_ADMIN:
        if (sld_ident_covers(id, SLD_PERM_ADMIN, ">"))
            return true;
        target = s_target(f, name, sizeof name);
        s_deny_cmd(self, peer, f, sld_command_action(cmd, f), target, "admin on >", cmd->what,
                   cmd->object ? cmd->object : target);
        return false;
    }
    return true;
}

/* --------------------------------------------------------- dispatch */

static int s_unexpected(sld_server_t *self, const sld_peer_t *peer, const Sluice__Frame *f)
{
    char text[96];
    if (f->body_case == SLUICE__FRAME__BODY__NOT_SET)
        snprintf(text, sizeof text, "unknown command (not in protocol version %d)",
                 SLC_PROTOCOL_VERSION);
    else
        snprintf(text, sizeof text, "%s is sent by the broker, not to it", slc_frame_name(f));
    return sld_session_error(self, peer, f->corr, SL_ECOMMAND, text);
}

/* Keep *F_P (taken) from PEER for the write phase, with its encoding. */
static int s_keep(sld_server_t *self, const sld_peer_t *peer, const sld_command_t *cmd,
                  Sluice__Frame **f_p)
{
    if (slc_grow((void **) &self->writes, &self->capwrites, self->nwrites + 1,
               sizeof(sld_write_t)) != 0)
        return sld_session_error(self, peer, (*f_p)->corr, SL_ENOMEM, NULL);
    sld_write_t *w = &self->writes[self->nwrites++];
    memcpy(w->id, peer->id, peer->id_len);
    w->id_len = peer->id_len;
    w->session = peer->session;
    w->frame = *f_p;
    w->cmd = cmd;
    *f_p = NULL;
    zmq_msg_init(&w->raw);
    if (peer->raw)
        zmq_msg_move(&w->raw, peer->raw);
    return 0;
}

int sld_commands_dispatch(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    const sld_command_t *cmd = sld_commands_lookup((unsigned) f->body_case);
    int rc;
    if (!peer->session) {
        /* State NEW (no session) x command: Hello opens one, the rest get 401. */
        if (f->body_case == SLUICE__FRAME__BODY_HELLO)
            rc = sld_session_on_hello(self, peer, f_p);
        else if (cmd)
            rc = sld_session_error(self, peer, f->corr, SL_ENOSESSION,
                                   "no session: send hello first (the broker may have "
                                   "restarted)");
        else
            rc = s_unexpected(self, peer, f);
    }
    else {
        peer->session->last_seen_ms = slc_mono_ms();
        if (!cmd)
            rc = s_unexpected(self, peer, f);
        else if (!s_permitted(self, peer, cmd, f))
            rc = SL_EDENIED;
        else {
            rc = cmd->handler ? cmd->handler(self, peer, f_p) : 0;
            if (rc == 0 && cmd->phase == SLD_CMD_WRITE && *f_p)
                rc = s_keep(self, peer, cmd, f_p);
        }
    }
    slc_frame_free(f_p);
    return rc;
}
