#!/bin/bash
# rabbitmq.sh - a private RabbitMQ node for tests/bench/compare (peer-rabbitmq).
# Owns DIR only: data, logs, config, Erlang cookie (HOME=DIR), pid files, and
# the node's own epmd on a loopback port of its own; never uses or touches
# the system rabbitmq-server service, /etc/rabbitmq or /var/lib/rabbitmq.
#   rabbitmq.sh install          apt-get the server and librabbitmq-dev, and
#                                leave no system instance running
#   rabbitmq.sh start DIR PORT   AMQP on 127.0.0.1:PORT; silent on success
#   rabbitmq.sh stop DIR         rabbitmqctl stop, then TERM/KILL by pid
# Ports besides PORT (first free from PORT+1 up, saved in DIR/ports):
# epmd (RABBITMQ_BENCH_EPMD_PORT) and Erlang distribution
# (RABBITMQ_BENCH_DIST_PORT), both on 127.0.0.1. Start-up waits up to
# RABBITMQ_BENCH_START_S seconds (default 120).
set -u

RMQ_BIN=/usr/lib/rabbitmq/bin
NODE=sluicebench@localhost
# The wrapper in /usr/sbin su's to the rabbitmq user when run as root and
# cd's to /var/lib/rabbitmq: use the real scripts, as whoever we are.
SERVER="$RMQ_BIN/rabbitmq-server"
CTL="$RMQ_BIN/rabbitmqctl"

die() {
    echo "rabbitmq.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: rabbitmq.sh install | start DIR PORT | stop DIR" >&2
    exit 64
}

# True when PORT on 127.0.0.1 accepts a TCP connection.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# First port from $1 up that nobody listens on and is not in $2 (a list).
free_port() {
    local p=$1 taken=$2 i
    for ((i = 0; i < 200; i++, p++)); do
        [ "$p" -le 65535 ] || break
        case " $taken " in *" $p "*) continue ;; esac
        port_open "$p" || { echo "$p"; return 0; }
    done
    return 1
}

# True when PID is alive and its command line contains WORD (so a reused
# pid is never signalled).
pid_is() {
    local pid=$1 word=$2
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$word"
}

# Wait up to $2 tenths of a second for PID $1 to go.
wait_gone() {
    local pid=$1 n=$2
    while [ "$n" -gt 0 ] && [ -d "/proc/$pid" ]; do
        sleep 0.1
        n=$((n - 1))
    done
    [ ! -d "/proc/$pid" ]
}

# TERM, then KILL, the process in pid file $1 if it still is a $2.
end_pid() {
    local file=$1 word=$2 pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if pid_is "$pid" "$word"; then
        kill -TERM "$pid" 2>/dev/null
        wait_gone "$pid" 100 || { kill -KILL "$pid" 2>/dev/null; wait_gone "$pid" 50; }
    fi
    rm -f "$file"
}

# The environment every server and CLI call of this node runs with.
node_env() {
    local dir=$1 port=$2 epmd=$3 dist=$4
    export HOME="$dir"
    export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    export RABBITMQ_MNESIA_BASE="$dir/mnesia"
    export RABBITMQ_LOG_BASE="$dir/log"
    export RABBITMQ_PID_FILE="$dir/beam.pid"
    export RABBITMQ_NODENAME="$NODE"
    export RABBITMQ_USE_LONGNAME=false
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT="$port"
    export RABBITMQ_DIST_PORT="$dist"
    export ERL_EPMD_ADDRESS=127.0.0.1
    export ERL_EPMD_PORT="$epmd"
    export ERL_CRASH_DUMP="$dir/log/erl_crash.dump"
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

cmd_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq rabbitmq-server librabbitmq-dev >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1
        apt-get install -y -qq rabbitmq-server librabbitmq-dev >/dev/null ||
            die "apt-get install rabbitmq-server librabbitmq-dev failed"
    fi
    # The package starts and enables a system node where it may (systemd, or
    # sysvinit without a policy-rc.d that forbids it): stop and disable it.
    if [ -d /run/systemd/system ]; then
        systemctl disable --now rabbitmq-server.service >/dev/null 2>&1
    elif [ -x /etc/init.d/rabbitmq-server ]; then
        update-rc.d rabbitmq-server disable >/dev/null 2>&1
        if pgrep -u rabbitmq -f 'beam.*rabbit' >/dev/null 2>&1; then
            /etc/init.d/rabbitmq-server stop >/dev/null 2>&1
        fi
    fi
    if pgrep -u rabbitmq -f 'beam.*rabbit' >/dev/null 2>&1; then
        die "a system rabbitmq-server is still running (user rabbitmq); stop it"
    fi
    return 0
}

cmd_start() {
    local dir=$1 port=$2 epmd dist limit n pid
    case "$port" in '' | *[!0-9]*) usage ;; esac
    if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then usage; fi
    [ -x "$SERVER" ] || die "rabbitmq-server is not installed (rabbitmq.sh install)"
    mkdir -p "$dir" || die "cannot create $dir"
    dir=$(cd "$dir" && pwd) || die "cannot enter $dir"
    if [ -f "$dir/pid" ] && pid_is "$(cat "$dir/pid")" beam; then
        die "a node already runs from $dir (pid $(cat "$dir/pid"))"
    fi
    # Leftovers of a node from DIR that died without stop.
    end_pid "$dir/wrapper.pid" rabbitmq-server
    end_pid "$dir/epmd.pid" epmd
    rm -f "$dir/pid" "$dir/beam.pid"
    port_open "$port" && die "port $port is already in use"
    epmd=${RABBITMQ_BENCH_EPMD_PORT:-$(free_port $((port + 1)) "$port")} ||
        die "no free port for epmd above $port"
    dist=${RABBITMQ_BENCH_DIST_PORT:-$(free_port $((epmd + 1)) "$port $epmd")} ||
        die "no free port for Erlang distribution above $epmd"
    mkdir -p "$dir/mnesia" "$dir/log" || die "cannot create $dir/mnesia, $dir/log"
    printf 'PORT=%s\nEPMD_PORT=%s\nDIST_PORT=%s\n' "$port" "$epmd" "$dist" >"$dir/ports"
    : >"$dir/rabbitmq-env.conf"
    echo '[].' >"$dir/enabled_plugins"
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$port
loopback_users.guest = true
log.console = false
log.file.level = info
EOF
    node_env "$dir" "$port" "$epmd" "$dist"
    cd "$dir" || die "cannot enter $dir"

    # Our own epmd, in the foreground of its own session, so its pid is known
    # and stop ends exactly it.
    setsid epmd -address 127.0.0.1 -port "$epmd" </dev/null >"$dir/log/epmd.log" 2>&1 &
    echo $! >"$dir/epmd.pid"
    n=50
    until port_open "$epmd"; do
        n=$((n - 1))
        if [ "$n" -le 0 ] || ! [ -d "/proc/$(cat "$dir/epmd.pid")" ]; then
            end_pid "$dir/epmd.pid" epmd
            die "epmd did not start on 127.0.0.1:$epmd (see $dir/log/epmd.log)"
        fi
        sleep 0.1
    done

    # rabbitmq-server stays in the foreground (a shell that turns TERM into a
    # clean stop); setsid keeps our caller's signals and terminal off it.
    setsid "$SERVER" </dev/null >"$dir/log/startup.log" 2>&1 &
    echo $! >"$dir/wrapper.pid"
    limit=$((${RABBITMQ_BENCH_START_S:-120} * 10))
    n=0
    until port_open "$port"; do
        if ! [ -d "/proc/$(cat "$dir/wrapper.pid")" ] || [ "$n" -ge "$limit" ]; then
            echo "rabbitmq.sh: node did not accept AMQP on 127.0.0.1:$port; last log lines:" >&2
            tail -n 20 "$dir/log/startup.log" "$dir/log/$NODE.log" >&2 2>/dev/null
            cmd_stop "$dir"
            exit 1
        fi
        sleep 0.1
        n=$((n + 1))
    done
    pid=$(cat "$dir/beam.pid" 2>/dev/null)
    pid_is "$pid" beam || { cmd_stop "$dir"; die "no beam pid in $dir/beam.pid"; }
    echo "$pid" >"$dir/pid"
}

cmd_stop() {
    local dir=$1 PORT EPMD_PORT DIST_PORT pid
    [ -d "$dir" ] || die "no such directory: $dir"
    dir=$(cd "$dir" && pwd) || die "cannot enter $dir"
    [ -f "$dir/ports" ] || return 0   # never started here
    # shellcheck source=/dev/null  # written by cmd_start
    . "$dir/ports"
    node_env "$dir" "$PORT" "$EPMD_PORT" "$DIST_PORT"
    pid=$(cat "$dir/pid" "$dir/beam.pid" 2>/dev/null | head -n 1)
    if pid_is "$pid" beam; then
        # A clean stop first: queues close their files. Then wait for the VM.
        (cd "$dir" && timeout 60 "$CTL" -q -n "$NODE" stop) >/dev/null 2>&1
        wait_gone "$pid" 300
    fi
    [ -n "$pid" ] && echo "$pid" >"$dir/beam.pid"
    end_pid "$dir/beam.pid" beam
    end_pid "$dir/wrapper.pid" rabbitmq-server
    end_pid "$dir/epmd.pid" epmd
    rm -f "$dir/pid"
    return 0
}

case "${1:-}" in
install) [ $# -eq 1 ] || usage; cmd_install ;;
start) [ $# -eq 3 ] || usage; cmd_start "$2" "$3" ;;
stop) [ $# -eq 2 ] || usage; cmd_stop "$2" ;;
*) usage ;;
esac
