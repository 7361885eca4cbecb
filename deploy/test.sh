#!/usr/bin/env bash
# What `make test` runs: a fresh private broker on free ports, the whole pytest suite against it
# (FAIRUSE_KAFKA_BOOTSTRAP), then the broker stopped, also on Ctrl-C or failure. Exit status is
# pytest's. Arguments go to pytest. Concurrent runs do not meet: each has its own ports and dir.
#
# Ports: chosen by deploy/kafka/start.sh (KAFKA_PORT=auto) outside the kernel's ephemeral range,
# so no outgoing connection can take them before the broker binds; a port another process binds
# first is retried on fresh ports (KAFKA_PORT_ATTEMPTS, default 3).
#
# Variables: TEST_KAFKA_PORT (a fixed client port instead; the controller's is the next free one),
# TEST_RUN_DIR (default var/test/run-<UTC time>-<pid>): the broker's data and logs (kafka/, logs
# in kafka/logs/) and pytest's tmp_path of each test (tmp/), which holds the logs of the
# processes the test started (worker, sink, notifier, ingest, simulator, Prometheus); pytest removes it when the test passes
# (tmp_path_retention_policy=failed). Removed after a passing run, kept after a failing one, whose
# failing test ids are printed at the end; failures.txt there holds each failure's report,
# written as it happens (so a run cut short still says why).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=.venv/bin/python
run_dir="${TEST_RUN_DIR:-$PWD/var/test/run-$(date -u +%Y%m%dT%H%M%SZ)-$$}"
export FAIRUSE_TEST_RUN_DIR="$run_dir" # tests/conftest.py appends failing test ids there
export KAFKA_PORT="${TEST_KAFKA_PORT:-auto}" KAFKA_DATA_DIR="$run_dir/kafka"
unset KAFKA_CONTROLLER_PORT KAFKA_LOG_DIR # a development broker's settings are not ours

status=1
finish() {
  trap '' PIPE # output may go to a closed pipe; stop the broker regardless
  deploy/kafka/stop.sh || true
  local pid_file # private brokers of tests that were interrupted before their teardown
  for pid_file in "$run_dir"/tmp/*/*/kafka.pid "$run_dir"/tmp/*/kafka.pid; do
    [[ -f "$pid_file" ]] && KAFKA_DATA_DIR="$(dirname "$pid_file")" deploy/kafka/stop.sh || true
  done
  if ((status == 0)); then
    rm -rf "$run_dir"
    return
  fi
  {
    case "$status" in
      1) echo "test: FAILED (pytest exit 1)" ;;
      5) echo "test: FAILED: pytest collected no tests (exit 5)" ;;
      130) echo "test: interrupted" ;;
      *) echo "test: FAILED (exit $status: interrupted, internal or usage error)" ;;
    esac
    if [[ -s "$run_dir/failed-tests.txt" ]]; then
      echo "test: failing tests:"
      awk '!seen[$0]++ { print "  " $0 }' "$run_dir/failed-tests.txt"
      echo "test: their reports in $run_dir/failures.txt"
    fi
    if [[ -n "$(ls -A "$run_dir/tmp" 2>/dev/null)" ]]; then
      echo "test: tmp dirs of the failed tests (worker logs) in $run_dir/tmp/"
    fi
    echo "test: broker logs in $KAFKA_DATA_DIR/logs"
  } >&2 || true
}
trap finish EXIT
trap 'status=130; exit 130' INT TERM

deploy/kafka/stop.sh # a broker left in TEST_RUN_DIR by an interrupted run
rm -rf "$run_dir"
mkdir -p "$run_dir"
FAIRUSE_KAFKA_BOOTSTRAP="$(deploy/kafka/start.sh)"
export FAIRUSE_KAFKA_BOOTSTRAP
status=0
"$python" -m pytest --basetemp="$run_dir/tmp" -o tmp_path_retention_policy=failed "$@" ||
  status=$?
exit "$status"
