#!/usr/bin/env bash
# The main job on the embedded defaults (what `make run` runs): a fresh local broker and topics,
# the streaming worker, the recorder-fleet simulator for a bounded stretch of event time, then
# the warehouse sink into the embedded chDB store, and the usage and violation report from it.
# Stops everything it started when it ends, also on Ctrl-C or an error.
#
# Variables: RUN_MONTH (the month simulated and reported, default 2026-11), RUN_TENANTS
# (default 12), RUN_SEED (default 1), RUN_TENANT (whose daily usage the report shows, default
# tenant-003),
# KAFKA_PORT (default 19092; if that port is busy the run stops and says so: set another, or
# KAFKA_PORT=auto for free ports; the controller's port, the next one, moves by itself if taken),
# RUN_DIR (default var/run; wiped at the start of every run),
# FAIRUSE_WORKER_WEB_PORT (the worker's HTTP port, default 6066).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

run_dir="${RUN_DIR:-$PWD/var/run}"
export KAFKA_DATA_DIR="$run_dir/kafka"
export KAFKA_PORT="${KAFKA_PORT:-19092}"
export FAIRUSE_DATA_DIR="$run_dir"
month="${RUN_MONTH:-2026-11}"
tenants="${RUN_TENANTS:-12}"
seed="${RUN_SEED:-1}"
tenant="${RUN_TENANT:-tenant-003}"
fairuse=.venv/bin/fairuse
worker_pid=""

stop_all() {
  if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
    kill -TERM "$worker_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$worker_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$worker_pid" 2>/dev/null || true
  fi
  deploy/kafka/stop.sh >/dev/null 2>&1 || true
}
trap stop_all EXIT
trap 'echo "run: interrupted" >&2; exit 130' INT TERM
trap '' PIPE  # `make run | head` must still reach the clean-up

# A leftover broker of an interrupted run holds old data: stop it, then start from empty.
deploy/kafka/stop.sh
rm -rf "$run_dir"
mkdir -p "$run_dir"
web_port="${FAIRUSE_WORKER_WEB_PORT:-6066}"
if (exec 3<>"/dev/tcp/127.0.0.1/$web_port") 2>/dev/null; then
  echo "run: port $web_port (the worker's HTTP port) is taken by another process; set" \
    "FAIRUSE_WORKER_WEB_PORT to a free port, e.g. FAIRUSE_WORKER_WEB_PORT=$((web_port + 100))" >&2
  exit 1
fi
FAIRUSE_KAFKA_BOOTSTRAP="$(deploy/kafka/start.sh)" ||
  { echo "run: the Kafka broker did not start (why: above)" >&2; exit 1; }
export FAIRUSE_KAFKA_BOOTSTRAP

echo "== topics on $FAIRUSE_KAFKA_BOOTSTRAP"
"$fairuse" topics create

echo "== worker (log: $run_dir/worker.log)"
"$fairuse" worker >"$run_dir/worker.log" 2>&1 &
worker_pid=$!

days=$(.venv/bin/python -c "import calendar,sys; y,m=map(int,sys.argv[1].split('-')); print(calendar.monthrange(y,m)[1])" "$month")
echo "== simulate: $tenants tenants, the whole of $month ($days days of event time), seed $seed"
"$fairuse" simulate --tenants "$tenants" --start "$month-01" --duration "${days}d" --seed "$seed" --faults

echo "== what reached Kafka"
"$fairuse" inspect events --from-beginning --timeout 120

echo "== waiting for the worker to process every event"
deadline=$((SECONDS + 900))
until "$fairuse" topics lag --group fairuse-worker --wait 10 2>/dev/null; do
  if ! kill -0 "$worker_pid" 2>/dev/null; then
    echo "run: the worker stopped before it processed every event; its log ends with:" >&2
    tail -n 30 "$run_dir/worker.log" >&2
    exit 1
  fi
  if ((SECONDS > deadline)); then
    echo "run: the worker did not catch up within 900 s; its log ends with:" >&2
    tail -n 30 "$run_dir/worker.log" >&2
    exit 1
  fi
done

echo "== sink: every topic into the embedded warehouse ($run_dir/warehouse)"
"$fairuse" sink --idle-exit 5

echo "== report"
"$fairuse" report summary --month "$month" --tenant "$tenant"
