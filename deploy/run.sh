#!/usr/bin/env bash
# The main job on the embedded defaults (what `make run` runs): start a fresh local broker,
# create the topics, run the recorder-fleet simulator for a bounded number of events, and show
# what reached Kafka (per-tenant counts by event type). Stops the broker it started when it
# ends, also on Ctrl-C or an error.
#
# Variables: RUN_EVENTS (default 100000), RUN_SEED (default 1), KAFKA_PORT (default 19092),
# RUN_KAFKA_DATA_DIR (default var/run/kafka; wiped at the start of every run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export KAFKA_DATA_DIR="${RUN_KAFKA_DATA_DIR:-$PWD/var/run/kafka}"
export KAFKA_PORT="${KAFKA_PORT:-19092}"
events="${RUN_EVENTS:-100000}"
seed="${RUN_SEED:-1}"
fairuse=.venv/bin/fairuse

stop_broker() {
  trap '' PIPE # stdout may be a closed pipe (`make run | head`); stop the broker regardless
  deploy/kafka/stop.sh || true
}
trap stop_broker EXIT
trap 'echo "run: interrupted" >&2; exit 130' INT TERM

# A leftover broker of an interrupted run holds old data: stop it, then start from empty.
deploy/kafka/stop.sh
rm -rf "$KAFKA_DATA_DIR"
FAIRUSE_KAFKA_BOOTSTRAP="$(deploy/kafka/start.sh)"
export FAIRUSE_KAFKA_BOOTSTRAP

echo "== topics on $FAIRUSE_KAFKA_BOOTSTRAP"
"$fairuse" topics create
echo "== simulate: $events events, seed $seed"
"$fairuse" simulate --events "$events" --seed "$seed"
echo "== what reached Kafka"
"$fairuse" inspect events --from-beginning --timeout 120
