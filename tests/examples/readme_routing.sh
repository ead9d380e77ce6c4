#!/bin/bash
#   readme_routing.sh - runs README.md's routing walk-through, line by line,
#   exactly as written, so the README cannot drift: usage
#   readme_routing.sh SOURCE_ROOT BUILD_ROOT. Works in a temporary copy of
#   schemas/ with build/ linked to BUILD_ROOT; the broker line gets a free
#   loopback port (--listen tcp://127.0.0.1:*) and is stopped by its PID.
#   Then checks what a reader is told to expect (the pasted `sub` output, the
#   test order dropped, version 1 live). It does not build anything.
set -uo pipefail

src=${1:?usage: readme_routing.sh SOURCE_ROOT BUILD_ROOT}
build=${2:?usage: readme_routing.sh SOURCE_ROOT BUILD_ROOT}
tmp=$(mktemp -d /tmp/sluice-readme-XXXXXX)
broker_pid=

cleanup() {
    if [ -n "$broker_pid" ]; then
        kill -TERM "$broker_pid" 2>/dev/null
        wait "$broker_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    [ -f "$tmp/sluiced.log" ] && { echo "--- broker log:" >&2; tail -n 20 "$tmp/sluiced.log" >&2; }
    exit 1
}

# The lines between the markers, without the ``` fences.
block=$(awk '/<!-- readme-routing:begin/ { f = 1; next }
             /<!-- readme-routing:end/ { f = 0 }
             f && !/^```/' "$src/README.md")
# The pasted output: the fenced block after the output marker.
expected=$(awk '/<!-- readme-routing:output/ { f = 1; next }
                f && /^```/ { if (++n == 2) exit; next }
                f && n == 1' "$src/README.md")
[ -n "$block" ] || fail "README.md has no readme-routing block"
[ -n "$expected" ] || fail "README.md has no readme-routing:output block"

ln -s "$build" "$tmp/build"
cp -r "$src/schemas" "$tmp/schemas"
cd "$tmp" || fail "cannot enter $tmp"

n=0
while IFS= read -r line; do
    n=$((n + 1))
    case "$line" in
    '' | '#'*) continue ;;
    esac
    echo "\$ $line"
    out="$tmp/out.$n"
    if [[ "$line" == sluiced\ * ]]; then
        # The broker: backgrounded as written, on a free port instead of
        # 5555; wait until it wrote its endpoint (sluice reads it there).
        cmd=${line%%&*}
        eval "$cmd --listen 'tcp://127.0.0.1:*' &"
        broker_pid=$!
        for _ in $(seq 100); do
            [ -s "$SLUICE_HOME/endpoint" ] && [ -s "$SLUICE_HOME/server.pub" ] && break
            kill -0 "$broker_pid" 2>/dev/null || fail "line $n: the broker exited"
            sleep 0.1
        done
        [ -s "$SLUICE_HOME/endpoint" ] || fail "line $n: the broker did not start"
        continue
    fi
    eval "$line" >"$out" 2>"$out.err"
    rc=$?
    cat "$out" "$out.err"
    [ "$rc" -eq 0 ] || fail "line $n exited $rc: $line"
    case "$line" in
    'sluice routes test '*) routes_test=$out ;;
    'sluice routes apply '*) apply=$out ;;
    'sluice sub '*) sub=$out ;;
    'sluice routes list'*) list=$out ;;
    esac
done <<<"$block"

[ -n "$broker_pid" ] || fail "the README never starts the broker"
for v in routes_test apply sub list; do
    [ -n "${!v:-}" ] || fail "the README lost its '$v' command"
done

# What the README tells the reader to expect.
grep -q '^11 passed, 0 failed' "$routes_test" || fail "routes test: not '11 passed, 0 failed'"
grep -q '^+ eu-orders-a$' "$apply" || fail "routes apply: no '+ eu-orders-a' in the diff"
grep -q '^version 1 is live$' "$apply" || fail "routes apply: not 'version 1 is live'"
[ "$(cat "$sub")" == "$expected" ] ||
    fail "sub printed$(printf '\n%s\n' "$(cat "$sub")")but the README shows$(printf '\n%s' "$expected")"
grep -qE '^\*[[:space:]]+1[[:space:]]' "$list" || fail "routes list: version 1 is not live"

# The test order was dropped: one message on each target, the EU order's.
sluice=$tmp/build/adapters/cli/sluice
"$sluice" stats >"$tmp/stats" 2>&1 || fail "sluice stats failed"
grep -qE '^canonical\.orders\.eu +1 ' "$tmp/stats" || fail "canonical.orders.eu does not hold exactly 1 message"
grep -qE '^orders\.archive +1 ' "$tmp/stats" || fail "orders.archive does not hold exactly 1 message (the test order was not dropped?)"
grep -qE '^drop-test-orders-a +1 +0 +1 ' "$tmp/stats" || fail "the route drop-test-orders-a did not drop 1 message"
echo "README routing walk-through: every line ran and showed what the README says"
