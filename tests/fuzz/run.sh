#!/usr/bin/env bash
#   run.sh - build the libFuzzer targets (build-fuzz, clang, ASan + UBSan)
#   and run each one for a bounded time over a throw-away copy of its corpus,
#   so the repository never grows. CI runs it short; README.md says how to
#   run long campaigns. First replays each target's crash-* regression
#   inputs. Exits 1 on any crash, leak, timeout or regression, naming the
#   target and where the reproducer was kept.
#   Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]   (default 20 s, all)
set -euo pipefail

secs=${1:-20}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${SLUICE_FUZZ_BUILD:-$root/build-fuzz}
keep=${SLUICE_FUZZ_ARTIFACTS:-$build/fuzz-artifacts}
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=(fuzz_frame fuzz_topic fuzz_config fuzz_dispatch fuzz_cert fuzz_schema fuzz_map fuzz_routes fuzz_http_ndjson fuzz_mqtt_topic fuzz_file_csv fuzz_pgoutput)
fi
if ! [[ "$secs" =~ ^[0-9]+$ ]] || ((secs == 0)); then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi

# --- toolchain: clang and its libFuzzer runtime ---------------------------
if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang not found; on Debian 12: apt-get install clang libclang-rt-14-dev" >&2
    exit 1
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void) d; (void) n; return 0; }' \
    > "$probe/probe.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe/probe.c" -o "$probe/probe" \
        >"$probe/log" 2>&1; then
    echo "fuzz: clang cannot link a libFuzzer target (-fsanitize=fuzzer):" >&2
    sed 's/^/  /' "$probe/log" | head -5 >&2
    echo "fuzz: on Debian 12 the runtime is in libclang-rt-14-dev" >&2
    exit 1
fi

# --- build ----------------------------------------------------------------
if [[ ! -f "$build/build.ninja" ]]; then
    (cd "$root" && CC=clang meson setup "$build" -Dfuzz=true \
        -Db_sanitize=address,undefined -Db_lundef=false) >"$probe/setup.log" 2>&1 || {
        echo "fuzz: meson setup $build failed:" >&2
        tail -20 "$probe/setup.log" >&2
        exit 1
    }
fi
ninja_targets=()
for t in "${targets[@]}"; do
    ninja_targets+=("tests/fuzz/$t")
done
if ! ninja -C "$build" "${ninja_targets[@]}" >"$probe/build.log" 2>&1; then
    echo "fuzz: build failed (is $build configured with -Dfuzz=true?):" >&2
    tail -30 "$probe/build.log" >&2
    exit 1
fi

# UBSan only reports and goes on unless told to stop; libFuzzer must see it.
# (-close_fd_mask=1 below: CZMQ's zconfig logs every parse error on stdout;
# libFuzzer and the sanitizers report on stderr.)
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
# A known leak inside libfyaml (see lsan.supp), not in our code.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/lsan.supp:print_suppressions=0}

failed=0
work=$(mktemp -d)
trap 'rm -rf "$probe" "$work"' EXIT

# Print why TARGET failed (the log's report) and keep its reproducers.
report() {
    local t=$1 log=$2 what=$3 dir=$4
    echo "FAIL $t: $what"
    # The report without libFuzzer's and libc's own frames.
    grep -E 'ERROR|SUMMARY|check failed|^fuzz_[a-z]+:|#[0-9]+ 0x' "$log" \
        | grep -vE ' in (fuzzer::|__sanitizer_print|__libc_|__pthread_kill|(_start|raise|abort|main) )|libc\.so' \
        | head -40 || true
    mkdir -p "$keep/$t"
    cp "$log" "$keep/$t/" 2>/dev/null || true
    local found=0
    for a in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* "$dir"/slow-unit-*; do
        [[ -e "$a" ]] || continue
        cp "$a" "$keep/$t/"
        echo "  reproducer: $keep/$t/$(basename "$a")"
        echo "  replay:     $build/tests/fuzz/$t $keep/$t/$(basename "$a")"
        found=1
    done
    ((found)) || echo "  log: $keep/$t/$(basename "$log")"
}

for t in "${targets[@]}"; do
    bin="$build/tests/fuzz/$t"
    src="$here/corpus/$t"
    tw="$work/$t"
    mkdir -p "$tw/corpus" "$tw/tmp" "$tw/out"
    [[ -d "$src" ]] && cp -R "$src"/. "$tw/corpus/"
    dict=()
    [[ -f "$here/$t.dict" ]] && dict=("-dict=$here/$t.dict")

    # Regression inputs first, each in its own process (a fresh broker for
    # fuzz_dispatch): every one must now pass.
    bad=0
    for r in "$src"/crash-*; do
        [[ -e "$r" ]] || continue
        if ! (cd "$tw/out" && TMPDIR="$tw/tmp" timeout -k 10 60 \
                "$bin" -rss_limit_mb=2048 -timeout=10 "$r") >"$tw/regress.log" 2>&1; then
            mv "$tw/regress.log" "$tw/regress-${r##*/}.log"
            report "$t" "$tw/regress-${r##*/}.log" "regression input still fails: $r" "$tw/none"
            echo "  replay:     $bin $r"
            bad=$((bad + 1))
        fi
    done
    if ((bad)); then
        echo "$t: FAIL ($bad regression input(s) still fail)"
        failed=1
        continue
    fi

    before=$(find "$tw/corpus" -type f | wc -l)
    set +e
    (cd "$tw/out" && TMPDIR="$tw/tmp" timeout -k 10 $((secs + 120)) "$bin" \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -detect_leaks=1 \
        -print_final_stats=1 -close_fd_mask=1 -artifact_prefix="$tw/out/" "${dict[@]}" \
        "$tw/corpus") >"$tw/fuzz.log" 2>&1
    rc=$?
    set -e
    after=$(find "$tw/corpus" -type f | wc -l)
    # A run that died has no DONE line: that must reach the rc check below,
    # not end this script (set -e with pipefail) before it says FAIL.
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$tw/fuzz.log" | tail -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tw/fuzz.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$tw/fuzz.log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$tw/fuzz.log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' <<<"$done_line" || true)
    if ((rc != 0)); then
        what="libFuzzer exit $rc"
        ((rc == 124 || rc == 137)) && what="hung past $((secs + 120)) s (killed)"
        report "$t" "$tw/fuzz.log" "$what" "$tw/out"
        echo "$t: FAIL after ${execs:-?} execs"
        failed=1
        continue
    fi
    echo "$t: ok ${execs:-?} execs in ${secs}s (${rate:-?}/s), ${cov:-cov ?}," \
         "corpus $before -> $after, peak rss ${rss:-?} MB"
done

if ((failed)); then
    echo "fuzz: FAILED (reproducers and logs under $keep)" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets clean"
