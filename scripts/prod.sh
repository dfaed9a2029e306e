#!/usr/bin/env bash
# Run costswitch as production does, on one machine (`make prod`; README "Production"): migrations
# and static files first, then gunicorn (several worker processes), a Celery worker and Celery beat.
# PostgreSQL and Redis come from DATABASE_URL and REDIS_URL. TERM to this script stops all three
# gracefully (requests and tasks in flight finish first; Ctrl-C reaches gunicorn too, which then
# stops at once); if one of them exits on its own, the others are stopped too and the script fails,
# so a supervisor (systemd, a container) restarts the set.
#
# Options (environment): PORT or BIND (default 127.0.0.1:8000), WEB_CONCURRENCY (gunicorn workers),
# CELERY_CONCURRENCY (worker processes, default 2), RUN_CELERY_BEAT (1; set 0 on every machine but
# one: beat must run exactly once), COSTSWITCH_VAR_DIR (default var/), and deploy/gunicorn.conf.py's.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=.venv/bin

fail() {
    echo "prod: $*" >&2
    exit 2
}
case "${DATABASE_URL:-}" in
    postgres://* | postgresql://* | pgsql://*) ;;
    "") fail "DATABASE_URL is required, e.g. postgres://costswitch:PASSWORD@127.0.0.1:5432/costswitch" ;;
    *) fail "DATABASE_URL must point at PostgreSQL (postgres://...); the ledger needs its row locks" ;;
esac
[ -n "${REDIS_URL:-}" ] || fail "REDIS_URL is required (cache, Celery broker, rate limits), e.g. redis://127.0.0.1:6379/0"
[ -n "${SECRET_KEY:-}${SECRET_KEY_FILE:-}" ] || fail "SECRET_KEY or SECRET_KEY_FILE is required (50+ random characters)"

export DEBUG=0
VAR_DIR="${COSTSWITCH_VAR_DIR:-var}"
mkdir -p "$VAR_DIR"
COSTSWITCH_VAR_DIR="$(cd "$VAR_DIR" && pwd)"
export COSTSWITCH_VAR_DIR

# prometheus_client's multiprocess mode: every process writes its samples to files here and /metrics
# adds them up. Files of an earlier run would count as live, so each start begins empty.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$COSTSWITCH_VAR_DIR/prometheus}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -type f -delete

"$BIN/python" manage.py migrate --no-input
"$BIN/python" manage.py collectstatic --no-input --verbosity 0

pids=()
stop_all() {
    trap - EXIT INT TERM
    local pid _
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # gunicorn lets requests finish for its graceful_timeout (30 s) and the Celery worker finishes
    # its tasks; what still runs after 40 s is killed (tasks are acked late and run again).
    for _ in $(seq 200); do
        alive=0
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && return
        sleep 0.2
    done
    echo "prod: still running after 40 s, killing" >&2
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() {
    local name=$1
    shift
    "$@" &
    pids+=("$!")
    echo "prod: $name started (pid $!)"
}
start "celery worker" "$BIN/celery" -A costswitch worker -l info --concurrency "${CELERY_CONCURRENCY:-2}"
if [ "${RUN_CELERY_BEAT:-1}" != 0 ]; then
    start "celery beat" "$BIN/celery" -A costswitch beat -l info
fi
start "gunicorn" "$BIN/gunicorn" -c deploy/gunicorn.conf.py

# Waited for in the background, so a TERM to this script runs its trap at once.
status=0
wait -n || status=$?
echo "prod: a process exited on its own (status $status); stopping the others" >&2
exit $((status == 0 ? 1 : status))
