#!/usr/bin/env bash
# Stop the local broker of KAFKA_DATA_DIR: SIGTERM (clean shutdown), SIGKILL after the timeout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ -d "$KAFKA_DATA_DIR" ]] && kafka_lock
if ! pid="$(kafka_running_pid)"; then
  rm -f "$KAFKA_PID_FILE" "$KAFKA_BOOTSTRAP_FILE"
  kafka_log "not running (data $KAFKA_DATA_DIR)"
  exit 0
fi
kafka_log "stopping the broker (pid $pid)"
kill -TERM "$pid" 2>/dev/null || true
deadline=$((SECONDS + KAFKA_STOP_TIMEOUT_S))
while kafka_alive "$pid" && ((SECONDS < deadline)); do
  sleep 0.2
done
if kafka_alive "$pid"; then
  kafka_log "no clean shutdown within ${KAFKA_STOP_TIMEOUT_S}s; killing pid $pid"
  kill -KILL "$pid" 2>/dev/null || true
  while kafka_alive "$pid"; do sleep 0.1; done
fi
rm -f "$KAFKA_PID_FILE" "$KAFKA_BOOTSTRAP_FILE"
kafka_log "stopped"
