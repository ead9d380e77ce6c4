#!/bin/bash
# nats.sh - start and stop the nats-server that peer-nats measures, for
# tests/bench/compare. One server per DIR: JetStream on, file storage in
# DIR/jetstream (-sd DIR), clients on 127.0.0.1:PORT only, no monitoring
# port, log in DIR/nats.log, PID in DIR/pid. Touches nothing outside DIR.
# The file store's fsync interval stays the server default (2 minutes;
# nats-server 2.9.10 has no sync_interval option).
#   nats.sh start DIR PORT   start in the background, wait until it serves
#   nats.sh stop DIR         TERM the PID in DIR/pid, KILL after a timeout
#   nats.sh install          apt-get install nats-server libnats-dev
set -u

STOP_WAIT_S=20      # a clean JetStream shutdown flushes its stores
START_WAIT_S=20

die() {
    echo "nats.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: nats.sh start DIR PORT | stop DIR | install" >&2
    exit 64
}

# True while PID $1 is the nats-server started for DIR $2 and not a zombie
# (a container's init may never reap it).
ours() {
    local pid=$1 dir=$2 state
    read -r _ _ state _ 2> /dev/null < "/proc/$pid/stat" || return 1
    [ "$state" != Z ] || return 1
    tr '\0' ' ' 2> /dev/null < "/proc/$pid/cmdline" |
        grep -qF -- "-sd $dir -l " || return 1
}

# True while PID $1 exists and is not a zombie. Right after the fork its
# command line is still the shell's (the exec has not happened yet), so
# start() checks this, not ours(), to tell that the server exited.
alive() {
    local state
    read -r _ _ state _ 2> /dev/null < "/proc/$1/stat" || return 1
    [ "$state" != Z ]
}

# The PID in $1/pid if that process is still our server.
our_pid() {
    local dir=$1 pid
    [ -r "$dir/pid" ] || return 1
    read -r pid < "$dir/pid" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    ours "$pid" "$dir" || return 1
    echo "$pid"
}

start() {
    local dir=$1 port=$2 pid i
    [[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] ||
        die "bad port '$port'"
    command -v nats-server > /dev/null || die "nats-server not installed (nats.sh install)"
    mkdir -p "$dir" || die "cannot create $dir"
    dir=$(cd "$dir" && pwd) || die "cannot enter $dir"
    if pid=$(our_pid "$dir"); then
        die "a server started in $dir is still running (pid $pid)"
    fi
    rm -f "$dir/pid" "$dir/nats.log"
    nats-server -a 127.0.0.1 -p "$port" -js -sd "$dir" \
        -l "$dir/nats.log" < /dev/null > /dev/null 2>&1 &
    pid=$!
    echo "$pid" > "$dir/pid" || die "cannot write $dir/pid"
    # Ready is the server's own word that it listens on our address, not
    # just any open port: another process may hold PORT.
    for ((i = 0; i < START_WAIT_S * 10; i++)); do
        if ! alive "$pid"; then
            rm -f "$dir/pid"
            tail -n 5 "$dir/nats.log" >&2 2> /dev/null
            die "nats-server exited during start (see $dir/nats.log)"
        fi
        if ours "$pid" "$dir" &&
            grep -q "Listening for client connections on 127.0.0.1:$port" "$dir/nats.log" 2> /dev/null &&
            grep -q "Server is ready" "$dir/nats.log" 2> /dev/null &&
            (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
            return 0
        fi
        sleep 0.1
    done
    kill -KILL "$pid" 2> /dev/null
    rm -f "$dir/pid"
    die "nats-server did not accept connections within ${START_WAIT_S}s (see $dir/nats.log)"
}

stop() {
    local dir=$1 pid i
    [ -d "$dir" ] || die "no directory $dir"
    dir=$(cd "$dir" && pwd) || die "cannot enter $dir"
    if ! pid=$(our_pid "$dir"); then
        rm -f "$dir/pid"
        return 0
    fi
    kill -TERM "$pid" 2> /dev/null
    for ((i = 0; i < STOP_WAIT_S * 10; i++)); do
        ours "$pid" "$dir" || break
        sleep 0.1
    done
    if ours "$pid" "$dir"; then
        echo "nats.sh: pid $pid ignored TERM for ${STOP_WAIT_S}s, sending KILL" >&2
        kill -KILL "$pid" 2> /dev/null
        for ((i = 0; i < 50; i++)); do
            ours "$pid" "$dir" || break
            sleep 0.1
        done
    fi
    ours "$pid" "$dir" && die "pid $pid survived KILL"
    rm -f "$dir/pid"
    return 0
}

case "${1:-}" in
start)
    [ $# -eq 3 ] || usage
    start "$2" "$3"
    ;;
stop)
    [ $# -eq 2 ] || usage
    stop "$2"
    ;;
install)
    [ $# -eq 1 ] || usage
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server libnats-dev > /dev/null ||
        die "apt-get install nats-server libnats-dev failed"
    ;;
*)
    usage
    ;;
esac
