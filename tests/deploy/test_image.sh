#!/bin/bash
#   test_image.sh - builds the container image of deploy/Dockerfile, starts
#   it, and waits for its HEALTHCHECK (`sluice stats` inside) to report
#   healthy; then checks deploy/compose.yaml parses. Usage: test_image.sh
#   SOURCE_ROOT. Skips (77), saying why, when no container runtime works
#   here (docker or podman missing, or no daemon) or the base image
#   debian:12 is neither present nor pullable (no registry access). Removes
#   only the container and image it made.
set -uo pipefail
src=${1:?usage: test_image.sh SOURCE_ROOT}
rt=
for c in docker podman; do
    if command -v "$c" >/dev/null 2>&1 && timeout 20 "$c" info >/dev/null 2>&1; then
        rt=$c
        break
    fi
done
if [ -z "$rt" ]; then
    echo "SKIP: no working container runtime (docker or podman with a running daemon): the image is not built"
    exit 77
fi
if ! timeout 30 "$rt" image inspect debian:12 >/dev/null 2>&1 \
   && ! timeout 300 "$rt" pull debian:12 >/dev/null 2>&1; then
    echo "SKIP: $rt works but debian:12 is not present and cannot be pulled (no registry access)"
    exit 77
fi
tag=sluice-test:$$
name=sluice-test-$$
cleanup() {
    "$rt" rm -f "$name" >/dev/null 2>&1
    "$rt" rmi -f "$tag" >/dev/null 2>&1
}
trap cleanup EXIT
if ! "$rt" build -f "$src/deploy/Dockerfile" -t "$tag" "$src"; then
    echo "FAIL: $rt build of deploy/Dockerfile failed"
    exit 1
fi
user=$("$rt" image inspect -f '{{.Config.User}}' "$tag")
if [ -z "$user" ] || [ "$user" = root ] || [ "$user" = 0 ]; then
    echo "FAIL: the image runs as root (User='$user')"
    exit 1
fi
"$rt" run -d --name "$name" "$tag" >/dev/null || { echo "FAIL: $rt run failed"; exit 1; }
state=
for _ in $(seq 60); do
    state=$("$rt" inspect -f '{{.State.Health.Status}}' "$name" 2>/dev/null)
    [ "$state" = healthy ] && break
    sleep 2
done
if [ "$state" != healthy ]; then
    echo "FAIL: the container is not healthy after 120 s (state '$state'); its log:"
    "$rt" logs "$name" 2>&1 | tail -n 30
    exit 1
fi
if command -v docker >/dev/null 2>&1 && [ "$rt" = docker ] && docker compose version >/dev/null 2>&1; then
    docker compose -f "$src/deploy/compose.yaml" config -q || { echo "FAIL: deploy/compose.yaml does not parse"; exit 1; }
fi
echo "ok: image builds, runs as '$user', healthy"
