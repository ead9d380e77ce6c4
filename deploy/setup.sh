#!/usr/bin/env bash
#   setup.sh - one command to build and run sluice, or to build and test it.
#     bash deploy/setup.sh run [sluiced flags...]  deps, release build, then
#                                                  sluiced in the foreground
#     bash deploy/setup.sh test                    deps, build-test, meson test,
#                                                  then the same suite again in
#                                                  build-asan (ASan, LSan, UBSan),
#                                                  then each libFuzzer target for
#                                                  SLUICE_FUZZ_SECONDS (default 30)
#                                                  in build-fuzz; last line
#                                                  "N passed, N failed" summed
#                                                  over all three (a fuzz target
#                                                  counts as one test)
#   Works from any directory; it changes to the repository root first.
#   It does not install sluice system-wide or create a service.
#
#   Memory checks by hand (valgrind; slow, so not in CI):
#     unit tests:   meson test -C build-test --suite unit \
#                     --wrap='valgrind --leak-check=full --error-exitcode=1'
#     the broker in every integration test (the harness runs sluiced under
#     $SLUICE_TEST_WRAP and fails the test on any report in its log):
#       SLUICE_TEST_WRAP='valgrind --leak-check=full --error-exitcode=9' \
#         meson test -C build-test --suite integration -t 4
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
    echo "the connection is encrypted (CurveZMQ); sluice finds the broker's key and the local admin key in ./var/sluice (docs/security.md)"
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

# Build DIR and run the whole meson suite in it; the caller sets the
# environment. Prints "passed failed skipped exit" for DIR on stdout, the
# build and test output on stderr.
run_suite() {
    local dir=$1 rc=0
    local log=$dir/meson-logs/testlog.json
    rm -f "$log"
    # A build failure still ends with the summary line (meson test then
    # runs nothing), so CI always sees the same last line.
    ninja -C "$dir" >&2 || echo "setup.sh: $dir: build failed" >&2
    meson test -C "$dir" --print-errorlogs --num-processes 2 >&2 || rc=$?
    local passed failed skipped
    read -r passed failed skipped < <(count_results "$log")
    if ((passed + failed + skipped == 0)); then
        echo "setup.sh: $dir: no tests ran (meson test exit $rc)" >&2
    elif ((failed == 0 && rc != 0)); then
        echo "setup.sh: $dir: meson test exited $rc" >&2
    fi
    echo "setup.sh: $dir: $passed passed, $failed failed, $skipped skipped" >&2
    echo "$passed $failed $skipped $rc"
}

# Run every fuzz target for SECS seconds; prints "passed failed" on stdout
# (one per target; a build that fails counts as one failure), the fuzzer's
# own report on stderr.
run_fuzz() {
    local secs=$1 out rc=0 passed failed
    out=$(bash tests/fuzz/run.sh "$secs" 2>&1) || rc=$?
    printf '%s\n' "$out" >&2
    passed=$(grep -cE '^fuzz_[a-z_]+: ok ' <<<"$out" || true)
    failed=$(grep -cE '^fuzz_[a-z_]+: FAIL' <<<"$out" || true)
    # run.sh exits non-zero on any failure, and says "all N targets clean"
    # only when every target ran: a run that stopped early is a failure
    # even if the targets it got to passed.
    if ((passed + failed == 0)) || { ((rc != 0)) && ((failed == 0)); } \
        || { ((rc == 0)) && ! grep -qE '^fuzz: all [0-9]+ targets clean' <<<"$out"; }; then
        failed=$((failed + 1))
        echo "setup.sh: fuzz: run.sh stopped early (exit $rc)" >&2
    fi
    echo "setup.sh: fuzz: $passed passed, $failed failed" >&2
    echo "$passed $failed"
}

do_test() {
    bash deploy/install-deps.sh
    # Warnings are errors in every test build, CI or not.
    configure build-test -Dwerror=true
    local p1 f1 s1 rc1 p2 f2 s2 rc2
    read -r p1 f1 s1 rc1 < <(run_suite build-test)
    # The same suite once more with AddressSanitizer (+ LeakSanitizer) and
    # UBSan. Every report aborts the process it is in: a test program then
    # fails by itself, and the integration harness fails a test whose
    # sluiced child left a report in its log (it stops brokers with
    # SIGTERM, so leaks at exit are checked too).
    configure build-asan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debug -Dwerror=true
    read -r p2 f2 s2 rc2 < <(
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            run_suite build-asan)
    # Then the fuzz targets (tests/fuzz/run.sh): regression inputs first,
    # then a short bounded run each; any crash, leak or hang fails.
    local p3 f3
    read -r p3 f3 < <(run_fuzz "${SLUICE_FUZZ_SECONDS:-30}")
    local passed=$((p1 + p2 + p3)) failed=$((f1 + f2 + f3)) skipped=$((s1 + s2))
    # The last line is exactly "N passed, N failed"; skipped tests (each
    # says why in the log, e.g. no container runtime) on the line before.
    if ((skipped > 0)); then
        echo "setup.sh: $skipped skipped (not counted as passed or failed)"
    fi
    echo "$passed passed, $failed failed"
    # Each run must have run something and exited 0.
    if ((failed > 0 || p1 == 0 || p2 == 0 || rc1 != 0 || rc2 != 0)); then
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
