#!/bin/bash
#   test_man.sh - the man pages render without a groff warning, and say what
#   the programs' --help says: every long option of `sluiced --help` is in
#   sluiced.8; every command and connection option of `sluice --help` is in
#   sluice.1. Usage: test_man.sh SOURCE_ROOT SLUICED SLUICE. Skips (77)
#   without groff. Reads only; starts no broker.
set -uo pipefail
src=${1:?usage: test_man.sh SOURCE_ROOT SLUICED SLUICE}
sluiced=${2:?}
sluice=${3:?}
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

if ! command -v groff >/dev/null 2>&1; then
    echo "SKIP: groff is not installed: cannot render the man pages"
    exit 77
fi
for page in "$src/docs/man/sluiced.8" "$src/docs/man/sluice.1"; do
    warn=$(LC_ALL=C groff -man -ww -z "$page" 2>&1)
    [ -z "$warn" ] || fail "$page: groff warns: $warn"
    # What a reader sees, with roff's hyphen escapes resolved.
    text=$(LC_ALL=C MANWIDTH=200 groff -man -Tascii -P-c -P-b -P-u "$page" 2>/dev/null)
    [ -n "$text" ] || fail "$page renders empty"
    case $page in
    *.8) sluiced_text=$text ;;
    *.1) sluice_text=$text ;;
    esac
done

# sluiced: every --option the help names.
opts=$("$sluiced" --help | grep -oE '^ +(-h, )?--[a-z-]+' | grep -oE -- '--[a-z-]+' | sort -u)
[ -n "$opts" ] || fail "sluiced --help lists no options"
for o in $opts; do
    grep -qF -- "$o" <<<"$sluiced_text" || fail "sluiced.8 does not document $o (sluiced --help does)"
done
grep -qF "sluice $("$sluiced" --version | awk '{print $2}')" <<<"$sluiced_text" \
    || fail "sluiced.8 names another version than sluiced --version"

# sluice: every command word of the "Commands:" block, every connection option.
help=$("$sluice" --help)
cmds=$(awk '/^Commands:/ { f = 1; next } /^$/ { f = 0 } f' <<<"$help" \
       | awk '{ print $1 }' | sort -u)
[ -n "$cmds" ] || fail "sluice --help lists no commands"
for c in $cmds; do
    [ "$c" = help ] && continue
    grep -qE -- "(^| )$c( |$|,)" <<<"$sluice_text" || fail "sluice.1 does not document the command '$c'"
done
copts=$(awk '/^Connection options/ { f = 1; next } /^$/ { f = 0 } f' <<<"$help" \
        | grep -oE '^ +--[a-z-]+' | tr -d ' ' | sort -u)
[ -n "$copts" ] || fail "sluice --help lists no connection options"
for o in $copts; do
    grep -qF -- "$o" <<<"$sluice_text" || fail "sluice.1 does not document $o"
done

if ((fails > 0)); then
    echo "$fails failure(s)" >&2
    exit 1
fi
echo "ok: both pages render cleanly; $(wc -w <<<"$opts") sluiced options, $(wc -w <<<"$cmds") sluice commands, $(wc -w <<<"$copts") connection options documented"
