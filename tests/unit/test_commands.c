/*  test_commands - the broker's command table (sld_commands) against the
 *  protocol: every Frame.body a client may send has exactly one row, with
 *  a handler, a phase and a permission; the broker's own replies have
 *  none; a body added to sluice.proto without a row fails here. The rows
 *  are also read against docs/protocol.md's Commands table: each command
 *  listed there has a row, and where the table states who may send it
 *  ("admin on `>`", "admin on the topic", "any session") the row agrees.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "sld_commands.h"

#ifndef SOURCE_ROOT
#define SOURCE_ROOT "."
#endif
#define PROTOCOL_MD SOURCE_ROOT "/docs/protocol.md"

/* Bodies only the broker sends: a client sending one gets 405. */
static const char *const s_replies[] = {
    "hello_ok", "publish_ack", "subscribe_ok", "deliver", "ack_reply", "stats_reply", "ok",
    "error", "key_list_reply", "rotate_key_reply", "schema_register_reply", "schema_info",
    "schema_list_reply", "mapping_info", "mapping_list_reply", "routes_apply_reply",
    "routes_info", "routes_list_reply", "trace_reply", "routes_backfill_reply",
    "sub_seek_reply", "dlq_list_reply",
};

/* Commands that write the store: kept for the turn's write transaction
 * and answered after its commit (docs/protocol.md, "Publish and
 * confirms"; the admin changes are audited in the same transaction). */
static const char *const s_writers[] = {
    "publish", "publish_batch", "topic_create", "topic_set", "key_add", "key_revoke",
    "grant_change", "rotate_key", "schema_register", "mapping_add", "mapping_remove",
    "routes_apply", "routes_rollback", "routes_backfill", "sub_seek", "dlq_remove",
};

static bool s_in(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

/* The Frame.body field for body case CMD, or NULL. */
static const ProtobufCFieldDescriptor *s_body_field(unsigned cmd)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&sluice__frame__descriptor, cmd);
    return fd && (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ? fd : NULL;
}

static void test_every_body_has_its_row(void **state)
{
    (void) state;
    const ProtobufCMessageDescriptor *d = &sluice__frame__descriptor;
    size_t nbodies = 0, nrows = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (!(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        nbodies++;
        const sld_command_t *row = sld_commands_lookup(fd->id);
        bool reply = s_in(fd->name, s_replies, sizeof s_replies / sizeof s_replies[0]);
        if (reply) {
            if (row)
                fail_msg("%s is sent by the broker but has a command row", fd->name);
            continue;
        }
        if (!row)
            fail_msg("Frame.body %s (%u) has no row in the command table", fd->name, fd->id);
        nrows++;
        assert_string_equal(row->name, fd->name);
        assert_non_null(row->action);
        assert_true(row->perm >= SLD_CMD_ANY && row->perm <= SLD_CMD_ADMIN);
        bool writes = s_in(fd->name, s_writers, sizeof s_writers / sizeof s_writers[0]);
        if (writes) {
            assert_int_equal(row->phase, SLD_CMD_WRITE);
            assert_non_null(row->apply);
        }
        else {
            assert_int_equal(row->phase, SLD_CMD_IMMEDIATE);
            assert_non_null(row->handler);
            assert_null(row->apply);
        }
        /* A refusal names what was refused. */
        if (row->perm != SLD_CMD_ANY && row->perm != SLD_CMD_PUBLISH)
            assert_non_null(row->what);
    }
    assert_true(nbodies > 0);
    /* Every row is a body a client may send: exactly one per command. */
    size_t counted = 0;
    for (unsigned cmd = 0; cmd < sld_commands_size(); cmd++) {
        const sld_command_t *row = sld_commands_lookup(cmd);
        if (!row)
            continue;
        const ProtobufCFieldDescriptor *fd = s_body_field(cmd);
        if (!fd)
            fail_msg("row %s (%u) is no Frame.body", row->name, cmd);
        counted++;
    }
    assert_int_equal(counted, nrows);
    assert_int_equal(nrows + sizeof s_replies / sizeof s_replies[0], nbodies);
    assert_null(sld_commands_lookup(SLUICE__FRAME__BODY__NOT_SET));
    assert_null(sld_commands_lookup(sld_commands_size()));
    assert_null(sld_commands_lookup(~0u));
}

/* The row whose body's message type is TYPE ("TopicCreate"), or NULL. */
static const sld_command_t *s_row_of_type(const char *type, size_t len)
{
    const ProtobufCMessageDescriptor *d = &sluice__frame__descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        const ProtobufCMessageDescriptor *md = fd->descriptor;
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && md
            && strlen(md->short_name) == len && strncmp(md->short_name, type, len) == 0)
            return sld_commands_lookup(fd->id);
    }
    return NULL;
}

static void test_protocol_md_commands(void **state)
{
    (void) state;
    FILE *fp = fopen(PROTOCOL_MD, "r");
    assert_non_null(fp);
    char line[4096];
    bool in = false;
    size_t listed = 0, admin = 0, topic = 0, any = 0;
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "## ", 3) == 0) {
            in = strncmp(line, "## Commands", 11) == 0;
            continue;
        }
        if (!in || strncmp(line, "| `", 3) != 0)
            continue;
        const char *name = line + 3;
        size_t len = strcspn(name, "{`/ ");
        const sld_command_t *row = s_row_of_type(name, len);
        if (!row)
            fail_msg("docs/protocol.md lists %.*s, which has no command row", (int) len, name);
        listed++;
        /* The notes: the third column. */
        const char *notes = strchr(line + 1, '|');
        notes = notes ? strchr(notes + 1, '|') : NULL;
        assert_non_null(notes);
        if (strstr(notes, "; admin on `>`") || strncmp(notes, "| admin on `>`", 14) == 0) {
            assert_int_equal(row->perm, SLD_CMD_ADMIN);
            admin++;
        }
        if (strstr(notes, "admin on the topic")) {
            assert_int_equal(row->perm, SLD_CMD_TOPIC_ADMIN);
            topic++;
        }
        if (strstr(notes, "any session")) {
            assert_int_equal(row->perm, SLD_CMD_ANY);
            any++;
        }
    }
    fclose(fp);
    /* The table lists each command once, Publish twice (durable and
     * transient); the checks above did run. */
    size_t rows = 0;
    for (unsigned cmd = 0; cmd < sld_commands_size(); cmd++)
        rows += sld_commands_lookup(cmd) != NULL;
    assert_int_equal(listed, rows + 1);
    assert_true(admin >= 8 && topic >= 2 && any >= 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_body_has_its_row),
        cmocka_unit_test(test_protocol_md_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
