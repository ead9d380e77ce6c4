#!/usr/bin/env bash
#   install-deps.sh - install what sluice needs to build, test and run on
#   Debian 12 (bookworm): compiler, meson/ninja, protobuf-c, ZeroMQ/CZMQ,
#   LMDB, libsodium, cmocka, the sanitizer runtimes, clang with libFuzzer,
#   valgrind and the tools the tests call.
#   Idempotent: when every package is already installed it does not touch
#   apt at all. Runs as root, or through sudo when that exists.
#   It does not build sluice (deploy/setup.sh does).
set -euo pipefail

packages=(
    build-essential         # gcc, libc6-dev, make
    meson
    ninja-build
    pkg-config
    protobuf-c-compiler     # protoc-c, run by the build
    libprotobuf-c-dev
    libzmq3-dev
    libczmq-dev
    liblmdb-dev
    lmdb-utils              # mdb_stat / mdb_dump / mdb_copy (backups, docs/operations.md), for operators and tests
    libsodium-dev
    libxxhash-dev           # XXH3 checksums of stored records (broker/sld_store)
    libcjson-dev            # JSON documents: schemas, mappings, audit records
    libfyaml-dev            # YAML: mapping files (transform/slt_map)
    libpcre2-dev            # schema "pattern" regular expressions (transform/slt_schema)
    libcmocka-dev           # unit tests
    libasan8                # AddressSanitizer + LeakSanitizer runtime (build-asan)
    libubsan1               # UBSan runtime (build-asan)
    clang                   # the fuzz targets (tests/fuzz/run.sh)
    libclang-rt-14-dev      # libFuzzer and clang's sanitizer runtimes
    valgrind                # memory checks by hand (deploy/setup.sh)
    procps                  # ps, pkill for integration tests
    iproute2                # ss, for integration tests
    python3                 # setup.sh reads meson's test log with it
    python3-zmq             # tests/conformance: raw ZeroMQ client
    python3-protobuf        # tests/conformance: Frame encoding
    protobuf-compiler       # tests/conformance: protoc --python_out at build time
    libmicrohttpd-dev       # adapters/http: the HTTP server (sluice-http serve; TLS through GnuTLS)
    libgnutls28-dev         # adapters/http: TLS certificates for libmicrohttpd
    prometheus              # promtool: tests/integration/test_metrics.py checks /metrics' format
    libcurl4-openssl-dev    # adapters/http: webhook delivery (sluice-http push)
    curl                    # tests/http: every endpoint from the command line
    libsystemd-dev          # sluiced: sd_notify readiness (deploy/sluiced.service)
    wrk                     # tests/bench: HTTP ingest load
    python3-cffi            # adapters/python: the binding of libsluice
    python3-pytest          # adapters/python: its tests
    python3-pip             # pip install adapters/python
    python3-venv            # the venv docs/python.md installs the SDK into
    ca-certificates
    mosquitto               # tests/mqtt: the MQTT broker the tests start on loopback
    mosquitto-clients       # tests/mqtt: mosquitto_pub / mosquitto_sub as devices
    libmosquitto-dev        # adapters/mqtt: the MQTT client library (sluice-mqtt)
    chromium                # tests/console/browser: the web console's end-to-end test (headless)
    postgresql-15           # tests/pgcdc, tests/pgsink: initdb, postgres, pgbench, psql (servers of the tests' own)
    libpq-dev               # adapters/pgcdc, adapters/pgsink: libpq
)
# The console web app is built with npm (adapters/console/web/build.sh):
# Debian's nodejs and npm, unless a node is already installed (another
# node's npm would conflict with Debian's npm package).
if ! command -v node >/dev/null 2>&1; then
    packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$p")
    fi
done
if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#packages[@]} packages already installed"
    exit 0
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "install-deps: installing ${missing[*]}"
apt_env=(env DEBIAN_FRONTEND=noninteractive)
# Always refresh the lists first: a stale list names versions the mirror
# no longer has. One more refresh and retry covers a mirror that changed
# between the two commands.
install_once() {
    "${as_root[@]}" "${apt_env[@]}" apt-get update -q
    "${as_root[@]}" "${apt_env[@]}" apt-get install -y -q \
        --no-install-recommends "${missing[@]}"
}
if ! install_once; then
    echo "install-deps: apt-get failed; refreshing and retrying once" >&2
    sleep 5
    install_once
fi
# mosquitto's package enables and starts a system broker on port 1883.
# sluice does not use it (tests/mqtt starts its own on loopback ports):
# when this run installed it, stop and disable it again, so it neither
# holds the port nor is left as a failed unit when 1883 was taken.
if [[ " ${missing[*]} " == *" mosquitto "* ]]; then
    if [[ -d /run/systemd/system ]]; then
        "${as_root[@]}" systemctl disable --now mosquitto.service >/dev/null 2>&1 || true
        "${as_root[@]}" systemctl reset-failed mosquitto.service >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/mosquitto ]]; then
        "${as_root[@]}" /etc/init.d/mosquitto stop >/dev/null 2>&1 || true
    fi
fi
echo "install-deps: done"
