#!/usr/bin/env bash
# Report the local broker of KAFKA_DATA_DIR. Exit 0: running and answering (prints the bootstrap
# address); 1: running but not answering; 3: not running.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if ! pid="$(kafka_running_pid)"; then
  echo "stopped (data $KAFKA_DATA_DIR)"
  exit 3
fi
bootstrap="$(cat "$KAFKA_BOOTSTRAP_FILE" 2>/dev/null || echo "$KAFKA_HOST:$KAFKA_PORT")"
if answer="$(kafka_probe "$bootstrap" "${KAFKA_STATUS_TIMEOUT_S:-30}" "$pid" 2>&1)"; then
  echo "running pid=$pid bootstrap=$bootstrap $answer"
  exit 0
fi
echo "not answering pid=$pid bootstrap=$bootstrap: $answer"
exit 1
