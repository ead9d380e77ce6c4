#!/bin/bash
#   test_install.sh - what `meson install` installs, checked in a DESTDIR:
#   the programs, libsluice with its header and pkg-config file, the systemd
#   unit, the broker's config and the man pages in the usual places; then a
#   program built from the installed header and .pc file alone links the
#   installed libsluice and runs, and the installed `sluice` runs on it.
#   Usage: test_install.sh BUILD_ROOT CC [SANITIZE_FLAG]. Installs only into
#   a temporary directory (meson install --destdir, --no-rebuild).
set -uo pipefail
build=${1:?usage: test_install.sh BUILD_ROOT CC [SANITIZE_FLAG]}
cc=${2:?}
san=${3:-}
tmp=$(mktemp -d /tmp/sluice-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

dest=$tmp/root
if ! meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$tmp/install.log" 2>&1; then
    echo "FAIL: meson install --destdir failed:" >&2
    cat "$tmp/install.log" >&2
    exit 1
fi
opt() { meson introspect --buildoptions "$build" \
        | /usr/bin/python3 -c "import json,sys; print([o['value'] for o in json.load(sys.stdin) if o['name']=='$1'][0])"; }
prefix=$(opt prefix)
libdir=$(opt libdir)
case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac
sysconfdir=$(opt sysconfdir)
case $sysconfdir in /*) ;; *) sysconfdir=$prefix/$sysconfdir ;; esac
root=$dest$prefix

want=(
    "$root/bin/sluice"
    "$root/bin/sluice-http"
    "$root/sbin/sluiced"
    "$dest$libdir/libsluice.so"
    "$dest$libdir/libsluice.so.0"
    "$dest$libdir/pkgconfig/libsluice.pc"
    "$root/include/sluice.h"
    "$root/include/sluice_codes.h"
    "$root/lib/systemd/system/sluiced.service"
    "$dest$sysconfdir/sluice/sluiced.cfg"
    "$root/share/man/man1/sluice.1"
    "$root/share/man/man8/sluiced.8"
    "$root/share/bash-completion/completions/sluice"
)
for f in "${want[@]}"; do
    [ -e "$f" ] || fail "meson install did not install ${f#"$dest"}"
done
for f in "$root/bin/sluice" "$root/bin/sluice-http" "$root/sbin/sluiced"; do
    [ -x "$f" ] || fail "${f#"$dest"} is not executable"
done
# The unit starts the installed broker with the installed config.
unit=$root/lib/systemd/system/sluiced.service
grep -q "^ExecStart=$prefix/sbin/sluiced --config $sysconfdir/sluice/sluiced.cfg " "$unit" \
    || fail "the installed unit does not start $prefix/sbin/sluiced with $sysconfdir/sluice/sluiced.cfg: $(grep ^ExecStart "$unit")"

# An application built from what is installed, through pkg-config only.
export PKG_CONFIG_PATH=$dest$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
if flags=$(pkg-config --cflags --libs libsluice 2>"$tmp/pc.err"); then
    cat >"$tmp/app.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <sluice.h>
int main(void)
{
    const char *s = sl_strerror(SL_ETOOBIG);
    printf("%s\n", s);
    return s && strlen(s) > 0 ? 0 : 1;
}
C
    # shellcheck disable=SC2086
    if ! $cc $san -o "$tmp/app" "$tmp/app.c" $flags 2>"$tmp/cc.err"; then
        fail "an application does not build from the installed header and libsluice.pc: $(cat "$tmp/cc.err")"
    elif ! out=$(LD_LIBRARY_PATH=$dest$libdir "$tmp/app"); then
        fail "the application built on the installed libsluice fails: $out"
    elif ! grep -qF "$dest$libdir/libsluice.so.0" <<<"$(LD_LIBRARY_PATH=$dest$libdir ldd "$tmp/app")"; then
        fail "the application did not load the installed libsluice"
    fi
else
    fail "pkg-config libsluice: $(cat "$tmp/pc.err")"
fi
# The installed CLI runs on the installed library.
LD_LIBRARY_PATH=$dest$libdir "$root/bin/sluice" --help >/dev/null \
    || fail "the installed sluice does not run on the installed libsluice"
"$root/sbin/sluiced" --version >/dev/null || fail "the installed sluiced --version fails"

if ((fails > 0)); then
    echo "--- installed files:" >&2
    (cd "$dest" && find . -type f -o -type l | sort) >&2
    exit 1
fi
echo "ok: $(cd "$dest" && find . -type f -o -type l | wc -l) files installed under $prefix; an application builds and runs from the installed header, .pc and library"
