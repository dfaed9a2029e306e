#!/usr/bin/env bash
# Serve the demo (used by `make run`, after migrate and seed_demo): a Celery worker and beat in the
# background, logging to var/celery-*.log, and the development server in the foreground. Ctrl-C,
# killing this script or the server exiting stops all three.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=.venv/bin
VAR_DIR="${COSTSWITCH_VAR_DIR:-var}"

# The embedded default broker (no REDIS_URL) keeps messages in these folders; kombu does not create them.
mkdir -p "$VAR_DIR/celery-broker" "$VAR_DIR/celery-processed"

pids=()
stop_background() {
    trap - EXIT INT TERM
    local pid _
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # A warm shutdown finishes the running tasks; give it 15 s, then stop what is left hard
    # (tasks are acked late, so an interrupted one is delivered again).
    for _ in $(seq 75); do
        alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && return
        sleep 0.2
    done
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap stop_background EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$BIN/celery" -A costswitch worker -l info --concurrency 2 >>"$VAR_DIR/celery-worker.log" 2>&1 &
pids+=("$!")
"$BIN/celery" -A costswitch beat -l info >>"$VAR_DIR/celery-beat.log" 2>&1 &
pids+=("$!")
echo "Celery worker (pid ${pids[0]}) and beat (pid ${pids[1]}) are logging to $VAR_DIR/celery-*.log"

# Started in the background and waited for, so a TERM to this script runs the trap at once
# (bash defers traps until a foreground child exits, and runserver would not).
"$BIN/python" manage.py runserver 127.0.0.1:8000 &
server=$!
pids+=("$server")
wait "$server"
