#!/bin/sh
# redis.sh - start and stop the redis-server that peer-redis measures, for
# tests/bench/compare. start/stop touch nothing outside DIR: the AOF, the log
# and the pid file all live there. install brings the Debian packages and
# keeps the system's own redis instance from running on the benchmark machine.
#   redis.sh start DIR PORT   loopback server, AOF fsync'd on every write
#   redis.sh stop DIR         TERM the server in DIR/pid, KILL after 20 s
#   redis.sh install          apt-get install redis-server libhiredis-dev
set -u

die() {
    echo "redis.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: redis.sh start DIR PORT | stop DIR | install" >&2
    exit 64
}

# True while PID runs: a process that exited but is not yet reaped (a
# zombie) has stopped, whoever its parent is.
alive() {
    state=
    [ -n "$1" ] && read -r _ _ state _ <"/proc/$1/stat" 2>/dev/null
    [ -n "$state" ] && [ "$state" != Z ]
}

# True when PID is a running redis-server (a pid file can outlive its
# process, and the number can be reused).
is_redis() {
    alive "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = redis-server ]
}

start() {
    dir=$1 port=$2
    case $port in '' | *[!0-9]*) die "PORT must be a number, not '$port'" ;; esac
    mkdir -p "$dir" || die "cannot create $dir"
    dir=$(cd "$dir" && pwd) || die "cannot enter $dir"
    if [ -f "$dir/pid" ] && is_redis "$(cat "$dir/pid")"; then
        die "a server from $dir is already running (pid $(cat "$dir/pid"))"
    fi
    rm -f "$dir/pid"
    # The persistence flags are the benchmark's definition of durable Redis.
    # setsid: its own session, so the caller's terminal signals do not reach
    # it; in this non-interactive shell the child is no group leader, so
    # setsid execs in place and $! is redis-server's own pid.
    setsid redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
        --appendonly yes --appendfsync always --save '' \
        </dev/null >>"$dir/redis.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid" || die "cannot write $dir/pid"
    # Ready when PING answers PONG from this very process: another server
    # already on PORT must not pass for ours.
    tries=0
    while [ $tries -lt 300 ]; do
        alive "$pid" || {
            rm -f "$dir/pid"
            die "redis-server exited: $(tail -n 1 "$dir/redis.log" 2>/dev/null)"
        }
        if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
            served=$(redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null |
                sed -n 's/^process_id:\([0-9]*\).*/\1/p')
            [ "$served" = "$pid" ] && return 0
            stop "$dir"
            die "port $port is served by pid $served, not by ours"
        fi
        sleep 0.1
        tries=$((tries + 1))
    done
    stop "$dir"
    die "no PONG on port $port after 30 s (see $dir/redis.log)"
}

stop() {
    dir=$1
    [ -f "$dir/pid" ] || return 0
    pid=$(cat "$dir/pid")
    if ! is_redis "$pid"; then
        rm -f "$dir/pid"
        return 0
    fi
    # TERM: redis fsyncs the AOF and exits; KILL if it has not after 20 s.
    kill -TERM "$pid" 2>/dev/null
    tries=0
    while is_redis "$pid" && [ $tries -lt 200 ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    if is_redis "$pid"; then
        echo "redis.sh: pid $pid ignored TERM for 20 s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null
        tries=0
        while is_redis "$pid" && [ $tries -lt 50 ]; do
            sleep 0.1
            tries=$((tries + 1))
        done
        is_redis "$pid" && die "pid $pid survives KILL"
    fi
    rm -f "$dir/pid"
}

# True when the Debian service's own redis-server is running.
system_running() {
    if [ -d /run/systemd/system ]; then
        systemctl is-active --quiet redis-server 2>/dev/null
    else
        is_redis "$(cat /run/redis/redis-server.pid 2>/dev/null)"
    fi
}

# apt-get, quiet: its output goes to $log, shown only when it fails.
apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" >>"$log" 2>&1
}

install() {
    log=$(mktemp) || die "mktemp failed"
    was_installed=no
    dpkg-query -W -f='${Status}' redis-server 2>/dev/null | grep -q 'ok installed' &&
        was_installed=yes
    was_running=no
    system_running && was_running=yes
    if ! apt_get install -y -q redis-server libhiredis-dev; then
        # A machine that never ran apt-get update has no package lists.
        if ! { apt_get update -q && apt_get install -y -q redis-server libhiredis-dev; }; then
            cat "$log" >&2
            rm -f "$log"
            die "apt-get install failed"
        fi
    fi
    rm -f "$log"
    # Stop the instance this install started, and keep a fresh install's
    # service from starting at boot. One that ran before is not ours to stop.
    if [ $was_running = no ] && system_running; then
        if [ -d /run/systemd/system ]; then
            systemctl stop redis-server || die "cannot stop the system redis-server"
        else
            service redis-server stop >/dev/null 2>&1 ||
                die "cannot stop the system redis-server"
        fi
    fi
    if [ $was_installed = no ]; then
        systemctl disable --quiet redis-server >/dev/null 2>&1 ||
            update-rc.d redis-server disable >/dev/null 2>&1 ||
            die "cannot disable the system redis-server"
    fi
}

case ${1:-} in
start) [ $# -eq 3 ] || usage; start "$2" "$3" ;;
stop) [ $# -eq 2 ] || usage; stop "$2" ;;
install) [ $# -eq 1 ] || usage; install ;;
*) usage ;;
esac
