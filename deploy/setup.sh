#!/usr/bin/env bash
#   setup.sh - one command to build and run sluice, or to build and test it.
#     bash deploy/setup.sh run [sluiced flags...]  deps, release build, then
#                                                  sluiced in the foreground
#     bash deploy/setup.sh test                    deps, build-test, meson test,
#                                                  last line "N passed, N failed"
#   Works from any directory; it changes to the repository root first.
#   It does not install sluice system-wide or create a service.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    echo "usage: bash deploy/setup.sh run [sluiced flags...] | test" >&2
    exit 2
}

# meson setup, or reconfigure when DIR is already a build dir.
configure() {
    local dir=$1
    shift
    if [[ -f "$dir/meson-private/coredata.dat" ]]; then
        meson setup --reconfigure "$dir" "$@"
    else
        meson setup "$dir" "$@"
    fi
}

do_run() {
    bash deploy/install-deps.sh
    configure build --buildtype=release
    ninja -C build
    mkdir -p ./var/sluice
    echo "subscribe (in another shell): ./build/adapters/cli/sluice sub 'demo.>'"
    echo "publish (one message a line): echo 'hello, sluice' | ./build/adapters/cli/sluice pub demo.hello"
    echo "all commands: ./build/adapters/cli/sluice help; sluiced now runs on tcp://127.0.0.1:5555, data in ./var/sluice, Ctrl-C stops it"
    exec ./build/broker/sluiced --data-dir ./var/sluice \
        --listen tcp://127.0.0.1:5555 "$@"
}

# Count results in meson's JSON-lines test log: prints "passed failed skipped".
count_results() {
    local log=$1
    if [[ ! -s "$log" ]]; then
        echo "0 0 0"
    elif command -v python3 >/dev/null 2>&1; then
        python3 - "$log" <<'PY'
import json, sys
passed = failed = skipped = 0
with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        try:
            result = json.loads(line).get("result", "")
        except ValueError:
            failed += 1          # a torn line is a run that did not finish
            continue
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:                    # FAIL, TIMEOUT, UNEXPECTEDPASS, ERROR, ...
            failed += 1
print(passed, failed, skipped)
PY
    else
        local p f s
        p=$(grep -Ec '"result": *"(OK|EXPECTEDFAIL)"' "$log" || true)
        s=$(grep -Ec '"result": *"SKIP"' "$log" || true)
        f=$(grep -Ec '"result": *"' "$log" || true)
        echo "$p $((f - p - s)) $s"
    fi
}

do_test() {
    local log=build-test/meson-logs/testlog.json
    bash deploy/install-deps.sh
    # Warnings are errors in every test build, CI or not.
    configure build-test -Dwerror=true
    rm -f "$log"
    local rc=0
    # A build failure still ends with the summary line (meson test then
    # runs nothing), so CI always sees the same last line.
    ninja -C build-test || echo "setup.sh: build failed" >&2
    meson test -C build-test --print-errorlogs --num-processes 2 || rc=$?
    local passed failed skipped
    read -r passed failed skipped < <(count_results "$log")
    local total=$((passed + failed + skipped))
    local line="$passed passed, $failed failed"
    if ((skipped > 0)); then
        line+=", $skipped skipped"
    fi
    if ((total == 0)); then
        echo "setup.sh: no tests ran (meson test exit $rc)" >&2
    elif ((failed == 0 && rc != 0)); then
        echo "setup.sh: meson test exited $rc" >&2
    fi
    echo "$line"
    if ((failed > 0 || passed == 0 || rc != 0)); then
        exit 1
    fi
    exit 0
}

case "${1:-}" in
run)
    shift
    do_run "$@"
    ;;
test)
    shift
    (($# == 0)) || usage
    do_test
    ;;
*)
    usage
    ;;
esac
