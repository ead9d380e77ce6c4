#!/bin/bash
#   adapter_example.sh - the adapter of docs/adapters.md ("Writing an
#   adapter"), compiled from the page as written and run against a real
#   broker, so the guide cannot drift: a file dropped is stored and
#   deleted, the same name again is answered from the dedup window, SIGTERM
#   exits 0. Usage: adapter_example.sh SOURCE_ROOT BUILD_ROOT CC [CFLAGS]
#   (CFLAGS: the build's -fsanitize=..., if any). Starts the
#   broker on a free loopback port in a temporary directory, stops it by PID.
set -uo pipefail

src=${1:?usage: adapter_example.sh SOURCE_ROOT BUILD_ROOT CC}
build=${2:?usage: adapter_example.sh SOURCE_ROOT BUILD_ROOT CC}
cc=${3:-cc}
cflags=${4:-}
tmp=$(mktemp -d /tmp/sluice-adapter-example-XXXXXX)
broker_pid=
adapter_pid=

cleanup() {
    for p in $adapter_pid $broker_pid; do
        kill -TERM "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in out.log sluiced.log; do
        [ -f "$tmp/$f" ] && { echo "--- $f:" >&2; tail -n 20 "$tmp/$f" >&2; }
    done
    exit 1
}

awk '/<!-- adapter-example:begin/ { f = 1; next }
     /<!-- adapter-example:end/ { f = 0 }
     f && !/^```/' "$src/docs/adapters.md" >"$tmp/dir2sluice.c"
lines=$(wc -l <"$tmp/dir2sluice.c")
[ "$lines" -gt 20 ] || fail "docs/adapters.md has no adapter-example block"
[ "$lines" -lt 100 ] || fail "the example has $lines lines: the guide promises under 100"
# shellcheck disable=SC2086 # CFLAGS is a list of words
"$cc" $cflags -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -o "$tmp/dir2sluice" \
    "$tmp/dir2sluice.c" -I"$src/adapters/sdk" -I"$src/proto" \
    -L"$build/adapters/sdk" -lsluice -Wl,-rpath,"$build/adapters/sdk" \
    2>"$tmp/cc.log" || { cat "$tmp/cc.log" >&2; fail "the example does not compile"; }

export SLUICE_HOME=$tmp/data
unset SLUICE_BROKER SLUICE_CERT SLUICE_SERVER_KEY
"$build/broker/sluiced" --data-dir "$SLUICE_HOME" --listen 'tcp://127.0.0.1:*' \
    >"$tmp/sluiced.log" 2>&1 &
broker_pid=$!
for _ in $(seq 100); do
    [ -s "$SLUICE_HOME/endpoint" ] && [ -s "$SLUICE_HOME/server.pub" ] && break
    sleep 0.1
done
[ -s "$SLUICE_HOME/endpoint" ] || fail "the broker did not start"

mkdir "$tmp/drop"
echo '{"a":1}' >"$tmp/drop/one.json"
"$tmp/dir2sluice" "$tmp/drop" files --home "$SLUICE_HOME" >"$tmp/out.log" 2>&1 &
adapter_pid=$!
wait_for() {
    for _ in $(seq 100); do
        grep -qF "$1" "$tmp/out.log" && return 0
        sleep 0.1
    done
    fail "no '$1' in the adapter's output"
}
wait_for "one.json stored at files@0"
[ -e "$tmp/drop/one.json" ] && fail "the stored file was not deleted"
echo '{"a":1}' >"$tmp/drop/one.json"
wait_for "one.json stored at files@0 (before)"
echo '{"b":2}' >"$tmp/drop/two.json"
wait_for "two.json stored at files@1"
kill -TERM "$adapter_pid"
wait "$adapter_pid"
rc=$?
adapter_pid=
[ "$rc" -eq 0 ] || fail "SIGTERM: exit $rc, not 0"
n=$("$build/adapters/cli/sluice" stats --json | /usr/bin/python3 -c '
import json, sys
print(sum(t["messages"] for t in json.load(sys.stdin)["topics"] if t["name"] == "files"))')
[ "$n" = 2 ] || fail "topic files holds $n messages, not 2"
echo "docs/adapters.md example: compiled ($lines lines), stored two files once each"
