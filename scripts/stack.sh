#!/usr/bin/env bash
# Runs the docker-compose.yml topology as plain processes, with the same config files
# (deploy/*.toml) and the same first-start step (deploy/init.sh): pedigree-server, one
# `pedigree witness serve`, one `pedigree monitor`.
#
#   scripts/stack.sh start DIR   prepare DIR, start the three, wait until healthy
#   scripts/stack.sh stop DIR    SIGTERM each, wait for it to exit
#
# Binaries come from $PEDIGREE_BIN (default: target/release of this checkout, or
# $CARGO_TARGET_DIR/release). Ports: $PEDIGREE_STACK_SERVER_PORT (8080) and
# $PEDIGREE_STACK_WITNESS_PORT (7380), applied through the same environment overrides
# the compose file uses. Logs go to DIR/logs, process ids to DIR/run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
dir=${2:-}
if [[ -z $cmd || -z $dir ]]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi
export PEDIGREE_BIN=${PEDIGREE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release}
server_port=${PEDIGREE_STACK_SERVER_PORT:-8080}
witness_port=${PEDIGREE_STACK_WITNESS_PORT:-7380}
services=(pedigree-server pedigree-witness pedigree-monitor)

healthy() { # healthy SERVICE
    case $1 in
    pedigree-server) curl -fsS -o /dev/null "http://127.0.0.1:$server_port/healthz" ;;
    pedigree-witness) curl -fsS -o /dev/null "http://127.0.0.1:$witness_port/healthz" ;;
    # The monitor has no port: healthy once a pass has written its state file.
    pedigree-monitor) [[ -s monitor-state/state.json ]] ;;
    esac
}

alive() { [[ -f run/$1.pid ]] && kill -0 "$(cat "run/$1.pid")" 2>/dev/null; }

start() {
    mkdir -p "$dir"
    cd "$dir"
    mkdir -p logs run monitor-state
    "$repo/deploy/init.sh" "$repo/deploy"
    local origin_hash
    origin_hash=$(sed -n 's/^origin = "\(.*\)"$/\1/p' public/server.effective.toml | tr -d '\n' | sha256sum | cut -d' ' -f1)
    export PEDIGREE_LISTEN=127.0.0.1:$server_port
    export PEDIGREE_WITNESS=w1=http://127.0.0.1:$witness_port=public/witness.vkey
    export PEDIGREE_WITNESS_LISTEN=127.0.0.1:$witness_port
    export PEDIGREE_MONITOR_LOG=http://127.0.0.1:$server_port
    export PEDIGREE_MONITOR_PEER=http://127.0.0.1:$witness_port/$origin_hash
    for s in "${services[@]}"; do
        if alive "$s"; then
            echo "$s is already running (pid $(cat "run/$s.pid"))" >&2
            exit 1
        fi
    done
    "$PEDIGREE_BIN/pedigree-server" --config "$repo/deploy/server.toml" \
        > logs/pedigree-server.out 2> logs/pedigree-server.log &
    echo $! > run/pedigree-server.pid
    "$PEDIGREE_BIN/pedigree" witness serve --config "$repo/deploy/witness.toml" \
        > logs/pedigree-witness.out 2> logs/pedigree-witness.log &
    echo $! > run/pedigree-witness.pid
    # The monitor's first pass needs the server: start it once the server answers.
    wait_healthy pedigree-server
    "$PEDIGREE_BIN/pedigree" monitor --config "$repo/deploy/monitor.toml" \
        > logs/pedigree-monitor.out 2> logs/pedigree-monitor.log &
    echo $! > run/pedigree-monitor.pid
    for s in "${services[@]}"; do wait_healthy "$s"; done
    echo "stack running in $dir: server http://127.0.0.1:$server_port, witness http://127.0.0.1:$witness_port"
}

wait_healthy() { # wait_healthy SERVICE: up to 30 s
    local i
    for ((i = 0; i < 300; i++)); do
        if healthy "$1"; then
            echo "$1 healthy (pid $(cat "run/$1.pid"))"
            return 0
        fi
        if ! alive "$1"; then
            echo "$1 exited; its log:" >&2
            tail -n 20 "logs/$1.log" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    echo "$1 not healthy after 30 s" >&2
    exit 1
}

stop() {
    cd "$dir"
    local s pid i status=0
    for s in pedigree-monitor pedigree-witness pedigree-server; do
        alive "$s" || continue
        pid=$(cat "run/$s.pid")
        kill -TERM "$pid"
        for ((i = 0; i < 400; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$s (pid $pid) did not stop within 40 s" >&2
            status=1
        else
            echo "$s stopped"
        fi
        rm -f "run/$s.pid"
    done
    return $status
}

case $cmd in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
