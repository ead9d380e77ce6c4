#!/bin/bash
#   test_image_libs.sh - deploy/Dockerfile's runtime stage installs every
#   Debian package whose library the built programs load (readelf NEEDED,
#   mapped to packages with dpkg -S), so a new dependency of sluiced, sluice,
#   sluice-http or libsluice cannot leave the image broken while no container
#   runtime is here to build it. libc6 is in debian:12 already; libsystemd0 is
#   not needed (the image builds with -Dsystemd=disabled), nor are the
#   sanitizer runtimes of an ASan/UBSan build.
#   Usage: test_image_libs.sh SOURCE_ROOT BINARY... Skips (77) without dpkg.
set -uo pipefail
src=${1:?usage: test_image_libs.sh SOURCE_ROOT BINARY...}
shift
command -v dpkg >/dev/null 2>&1 || { echo "SKIP: no dpkg: not a Debian system"; exit 77; }
# The runtime stage's apt-get install list: the lines after the last FROM.
listed=$(awk '/^FROM / { buf = "" } { buf = buf "\n" $0 } END { print buf }' "$src/deploy/Dockerfile" \
         | sed -n '/apt-get install/,/rm -rf/p' | tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | sort -u)
[ -n "$listed" ] || { echo "FAIL: no apt-get install list in the Dockerfile's runtime stage"; exit 1; }
fails=0
for bin in "$@"; do
    for so in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        case $so in libasan.so*|libubsan.so*|libsluice.so*|libc.so*|libm.so*|ld-linux*|libpthread.so*|libdl.so*|libsystemd.so*) continue ;; esac
        pkg=$(dpkg -S "*/$so" 2>/dev/null | head -n 1 | cut -d: -f1)
        if [ -z "$pkg" ]; then
            echo "FAIL: $(basename "$bin") needs $so, which no installed Debian package provides"
            fails=$((fails + 1))
        elif ! grep -qx "$pkg" <<<"$listed"; then
            echo "FAIL: $(basename "$bin") needs $so from $pkg, which deploy/Dockerfile's runtime stage does not install"
            fails=$((fails + 1))
        fi
    done
done
((fails == 0)) || exit 1
echo "ok: every library the programs load comes from a package the runtime stage installs"
