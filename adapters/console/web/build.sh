#!/bin/bash
# build.sh - build the console web app into OUTDIR (issue 20, point 3).
# Copies the app's sources to a scratch directory beside OUTDIR (OUTDIR.npm,
# in the build tree: node_modules never lands in the source tree), installs
# the locked dependencies there with `npm ci` (again only when
# package-lock.json changed), then `vite build --outDir OUTDIR`. Run by
# adapters/console/web/meson.build; by hand: build.sh /tmp/console-dist.
# The scratch directory's node_modules also holds playwright-core, which the
# browser test (tests/console/browser/run.sh) uses.
set -euo pipefail

usage="usage: build.sh OUTDIR
builds the console web app (Vite) into OUTDIR; needs node and npm"
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then echo "$usage"; exit 0; fi
if [ $# -ne 1 ]; then echo "$usage" >&2; exit 64; fi
src=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
work="$out.npm"

command -v npm >/dev/null || { echo "build.sh: npm not found (Debian: apt-get install nodejs npm)" >&2; exit 1; }
mkdir -p "$work"
rm -rf "$work/src"
cp -R "$src/src" "$work/src"
cp "$src/index.html" "$src/vite.config.js" "$src/package.json" "$work/"
if ! cmp -s "$src/package-lock.json" "$work/package-lock.json" || [ ! -d "$work/node_modules" ]; then
    cp "$src/package-lock.json" "$work/"
    (cd "$work" && npm ci --no-audit --no-fund --loglevel=error) || {
        echo "build.sh: npm ci failed in $work (is the npm registry reachable?)" >&2
        rm -f "$work/package-lock.json"
        exit 1
    }
fi
cd "$work"
./node_modules/.bin/vite build --logLevel warn --emptyOutDir --outDir "$out"
touch "$out"
