#!/usr/bin/env bash
# Start the local single-node Kafka (KRaft) broker and wait until it answers a metadata request.
# Reuses a broker already running for the same data dir. Prints the bootstrap address on stdout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bootstrap="$KAFKA_HOST:$KAFKA_PORT"
kafka_lock

if pid="$(kafka_running_pid)"; then
  running="$(cat "$KAFKA_BOOTSTRAP_FILE" 2>/dev/null || echo "?")"
  [[ "$running" == "$bootstrap" ]] ||
    kafka_die "the broker of $KAFKA_DATA_DIR already runs (pid $pid) on $running, not $bootstrap"
  kafka_probe "$bootstrap" 10 "$pid" >/dev/null ||
    kafka_die "the broker of $KAFKA_DATA_DIR runs (pid $pid) but does not answer on $bootstrap"
  kafka_log "reusing the running broker (pid $pid) on $bootstrap"
  echo "$bootstrap"
  exit 0
fi

for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
  if kafka_port_in_use "$port"; then
    kafka_die "port $port on $KAFKA_HOST is taken by another process (not the broker of" \
      "$KAFKA_DATA_DIR); stop it or choose KAFKA_PORT / KAFKA_CONTROLLER_PORT"
  fi
done

kafka_require_fetched
command -v java >/dev/null || kafka_die "java (17+) is not on PATH"
mkdir -p "$KAFKA_DATA_DIR/data" "$KAFKA_LOG_DIR"
sed -e "s|@HOST@|$KAFKA_HOST|g" -e "s|@PORT@|$KAFKA_PORT|g" \
  -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@DATA_DIR@|$KAFKA_DATA_DIR|g" \
  "$KAFKA_SCRIPT_DIR/server.properties.template" >"$KAFKA_CONFIG"
if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then
  # Appended: a property set again here overrides the template's (the last occurrence wins).
  [[ -f "$KAFKA_EXTRA_CONFIG" ]] || kafka_die "KAFKA_EXTRA_CONFIG: no file $KAFKA_EXTRA_CONFIG"
  printf '\n# from KAFKA_EXTRA_CONFIG=%s\n' "$KAFKA_EXTRA_CONFIG" >>"$KAFKA_CONFIG"
  cat "$KAFKA_EXTRA_CONFIG" >>"$KAFKA_CONFIG"
fi

classpath="$KAFKA_LIBS/*"
java_opts=(-Dlog4j2.configurationFile="$KAFKA_SCRIPT_DIR/log4j2.properties"
  -Dkafka.logs.dir="$KAFKA_LOG_DIR" -Djava.awt.headless=true)

if [[ ! -f "$KAFKA_DATA_DIR/data/meta.properties" ]]; then
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  kafka_log "formatting storage in $KAFKA_DATA_DIR/data (cluster $cluster_id)"
  scram_args=() # KAFKA_SCRAM_CREDENTIALS: one 'SCRAM-SHA-512=[name=u,password=p]' per line
  while IFS= read -r credential; do
    if [[ -n "$credential" ]]; then scram_args+=(--add-scram "$credential"); fi
  done <<<"${KAFKA_SCRAM_CREDENTIALS:-}"
  java -cp "$classpath" -Dlog4j2.configurationFile="$KAFKA_SCRIPT_DIR/log4j2-quiet.properties" \
    kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$KAFKA_CONFIG" --ignore-formatted "${scram_args[@]}" \
    >"$KAFKA_LOG_DIR/format.out" 2>&1 ||
    { cat "$KAFKA_LOG_DIR/format.out" >&2; kafka_die "formatting storage failed"; }
fi

kafka_log "starting Kafka $KAFKA_VERSION on $bootstrap (data $KAFKA_DATA_DIR, logs $KAFKA_LOG_DIR)"
# setsid: the broker outlives this script and is not hit by the terminal's Ctrl-C; stop.sh ends it.
# shellcheck disable=SC2086 # KAFKA_HEAP_OPTS holds several options
setsid java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -cp "$classpath" \
  "${java_opts[@]}" kafka.Kafka "$KAFKA_CONFIG" >"$KAFKA_LOG_DIR/kafka.out" 2>&1 </dev/null 9>&- &
pid=$!
echo "$pid" >"$KAFKA_PID_FILE"
echo "$bootstrap" >"$KAFKA_BOOTSTRAP_FILE"

probe_status=0
kafka_probe "$bootstrap" "$KAFKA_START_TIMEOUT_S" "$pid" >/dev/null 2>&1 || probe_status=$?
if ((probe_status != 0)); then
  if ((probe_status == 3)); then
    kafka_log "the broker process exited during startup; last log lines:"
  else
    kafka_log "the broker did not come up within ${KAFKA_START_TIMEOUT_S}s; last log lines:"
  fi
  tail -n 30 "$KAFKA_LOG_DIR/kafka.out" "$KAFKA_LOG_DIR/server.log" >&2 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  for _ in {1..50}; do kafka_alive "$pid" && sleep 0.2 || break; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$KAFKA_PID_FILE" "$KAFKA_BOOTSTRAP_FILE"
  kafka_die "Kafka did not start on $bootstrap (full logs in $KAFKA_LOG_DIR)"
fi
kafka_log "ready on $bootstrap (pid $pid)"
echo "$bootstrap"
