#!/bin/bash
# run.sh - the console-browser test (tests/console/meson.build): checks
# that node, Chromium, the built web app and playwright-core are there
# (else skips with 77, saying what is missing), then runs
# console_browser.mjs, which starts its own sluiced and sluice-console on
# loopback in a temporary directory and drives Chromium headless.
# Screenshots: BUILD/console-screenshots/*.png.
# Usage: run.sh BUILD_ROOT SOURCE_ROOT WEB_ROOT NODE_MODULES
set -uo pipefail

usage="usage: run.sh BUILD_ROOT SOURCE_ROOT WEB_ROOT NODE_MODULES
the web console's end-to-end browser test (docs/console.md, \"Tests\")"
if [ "${1:-}" = --help ]; then echo "$usage"; exit 0; fi
if [ $# -ne 4 ]; then echo "$usage" >&2; exit 64; fi
build=$1 src=$2 web=$3 modules=$4
here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}

skip() { echo "SKIP console-browser: $*"; exit 77; }
command -v node >/dev/null || skip "node is not installed (Debian: nodejs; deploy/install-deps.sh)"
[ -x "$chromium" ] || skip "$chromium not found (Debian: chromium; deploy/install-deps.sh)"
[ -f "$web/index.html" ] || skip "the web app is not built in $web (npm missing at meson setup?)"
[ -d "$modules/playwright-core" ] || skip "playwright-core is not in $modules (adapters/console/web/build.sh installs it)"
for p in broker/sluiced adapters/cli/sluice adapters/console/sluice-console; do
    [ -x "$build/$p" ] || { echo "FAIL console-browser: $build/$p is not built"; exit 1; }
done

exec node "$here/console_browser.mjs" "$build" "$src" "$web" "$modules" "$build/console-screenshots"
