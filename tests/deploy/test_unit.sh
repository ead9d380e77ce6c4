#!/bin/bash
#   test_unit.sh - deploy/sluiced.service as meson configured it (BUILD_ROOT/
#   sluiced.service) passes `systemd-analyze verify`, and its offline
#   `systemd-analyze security` exposure stays at or below 2.0 (docs/deploy.md
#   records the figure). Usage: test_unit.sh BUILD_ROOT SLUICED. The unit
#   names the installed sluiced, which does not exist before meson install,
#   so it is checked in a temporary copy whose ExecStart names the built one.
#   Skips (77) without systemd-analyze. Starts nothing.
set -uo pipefail
build=${1:?usage: test_unit.sh BUILD_ROOT SLUICED}
sluiced=$(realpath "${2:?}")
unit=$build/sluiced.service
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze is not installed (Debian package systemd): the unit is not checked"
    exit 77
fi
[ -f "$unit" ] || { echo "FAIL: $unit missing (meson configure_file)"; exit 1; }
grep -q '@[a-z]*@' "$unit" && { echo "FAIL: $unit has unfilled @...@ placeholders"; exit 1; }
grep -qx 'Type=notify' "$unit" || { echo "FAIL: the unit is not Type=notify"; exit 1; }
tmp=$(mktemp -d /tmp/sluice-unit-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
sed -E "s|^ExecStart=[^ ]+/sluiced |ExecStart=$sluiced |" "$unit" > "$tmp/sluiced.service"
grep -q "^ExecStart=$sluiced " "$tmp/sluiced.service" || { echo "FAIL: no ExecStart=.../sluiced in $unit"; exit 1; }
# --man=no: the man page is installed by meson install, not present here.
out=$(cd "$tmp" && systemd-analyze verify --man=no ./sluiced.service 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
    echo "FAIL: systemd-analyze verify (exit $rc):"
    echo "$out"
    exit 1
fi
sec=$(cd "$tmp" && systemd-analyze security --offline=yes ./sluiced.service 2>&1)
score=$(grep -oE 'Overall exposure level for sluiced.service: [0-9.]+' <<<"$sec" | awk '{print $NF}')
if [ -z "$score" ]; then
    echo "FAIL: systemd-analyze security --offline=yes gave no score:"
    echo "$sec"
    exit 1
fi
if ! awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
    echo "FAIL: exposure $score is above 2.0; what is exposed:"
    grep '^✗' <<<"$sec"
    exit 1
fi
echo "ok: systemd-analyze verify clean; security exposure $score (offline)"
