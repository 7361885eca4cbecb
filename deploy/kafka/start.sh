#!/usr/bin/env bash
# Start the local single-node Kafka (KRaft) broker and wait until it answers a metadata request.
# Reuses a broker already running for the same data dir. Prints the bootstrap address on stdout.
#
# Ports: KAFKA_PORT=auto picks a free pair outside the ephemeral range; a port taken before the
# broker binds it (another process got there first) is retried on fresh ports, up to
# KAFKA_PORT_ATTEMPTS times. A port given explicitly is never changed: if it is taken, the error
# names the variable to change. The controller port, unless given, moves like an automatic one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

kafka_lock

if pid="$(kafka_running_pid)"; then
  running="$(cat "$KAFKA_BOOTSTRAP_FILE" 2>/dev/null || echo "?")"
  [[ "$KAFKA_PORT" == auto || "$running" == "$KAFKA_HOST:$KAFKA_PORT" ]] ||
    kafka_die "the broker of $KAFKA_DATA_DIR already runs (pid $pid) on $running, not" \
      "$KAFKA_HOST:$KAFKA_PORT"
  kafka_probe "$running" 60 "$pid" >/dev/null ||
    kafka_die "the broker of $KAFKA_DATA_DIR runs (pid $pid) but does not answer on $running"
  kafka_log "reusing the running broker (pid $pid) on $running"
  echo "$running"
  exit 0
fi

auto_port=false auto_controller=false
[[ "$KAFKA_PORT" == auto ]] && auto_port=true
[[ "$KAFKA_CONTROLLER_PORT" == auto || -z "$KAFKA_CONTROLLER_PORT_GIVEN" ]] && auto_controller=true

# Why a port cannot be used, for the ports given explicitly: names the variable to change.
port_taken_die() {
  local port="$1" variable="$2"
  kafka_die "port $port on $KAFKA_HOST is taken by another process (not the broker of" \
    "$KAFKA_DATA_DIR); stop it or set $variable to a free port (e.g. $variable=$((port + 100)))," \
    "or KAFKA_PORT=auto to let start.sh pick free ports"
}

# Choose the ports of attempt $1: automatic ones fresh each time, explicit ones kept.
choose_ports() {
  if $auto_port; then
    KAFKA_PORT="$(kafka_free_port 2)"
    $auto_controller && KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
  elif $auto_controller && { (($1 > 1)) || [[ "$KAFKA_CONTROLLER_PORT" == auto ]]; }; then
    KAFKA_CONTROLLER_PORT="$(kafka_free_port 1)"
  fi
  bootstrap="$KAFKA_HOST:$KAFKA_PORT"
}

# A port is taken (before the start, or lost to another process during it): give up if it was
# given explicitly, else say so and let the loop retry on fresh ports.
port_lost() {
  local port="$1" attempt="$2"
  if [[ "$port" == "$KAFKA_PORT" ]] && ! $auto_port; then port_taken_die "$port" KAFKA_PORT; fi
  if [[ "$port" == "$KAFKA_CONTROLLER_PORT" ]] && ! $auto_controller; then
    port_taken_die "$port" KAFKA_CONTROLLER_PORT
  fi
  if ((attempt >= KAFKA_PORT_ATTEMPTS)); then
    kafka_die "port $port on $KAFKA_HOST was taken by another process; gave up after" \
      "$KAFKA_PORT_ATTEMPTS attempts on fresh ports (KAFKA_PORT_ATTEMPTS)"
  fi
  kafka_log "port $port on $KAFKA_HOST was taken by another process; retrying on fresh ports" \
    "(attempt $((attempt + 1)) of $KAFKA_PORT_ATTEMPTS)"
}

kafka_require_fetched
command -v java >/dev/null || kafka_die "java (17+) is not on PATH"
mkdir -p "$KAFKA_DATA_DIR/data" "$KAFKA_LOG_DIR"
classpath="$KAFKA_LIBS/*"
java_opts=(-Dlog4j2.configurationFile="$KAFKA_SCRIPT_DIR/log4j2.properties"
  -Dkafka.logs.dir="$KAFKA_LOG_DIR" -Djava.awt.headless=true)

# The template (and KAFKA_EXTRA_CONFIG) with this attempt's @HOST@, @PORT@, @CONTROLLER_PORT@,
# @DATA_DIR@ filled in.
write_config() {
  local extra="${KAFKA_EXTRA_CONFIG:-}"
  [[ -z "$extra" || -f "$extra" ]] || kafka_die "KAFKA_EXTRA_CONFIG: no file $extra"
  {
    cat "$KAFKA_SCRIPT_DIR/server.properties.template"
    if [[ -n "$extra" ]]; then
      # Appended: a property set again here overrides the template's (the last occurrence wins).
      printf '\n# from KAFKA_EXTRA_CONFIG=%s\n' "$extra"
      cat "$extra"
    fi
  } | sed -e "s|@HOST@|$KAFKA_HOST|g" -e "s|@PORT@|$KAFKA_PORT|g" \
    -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@DATA_DIR@|$KAFKA_DATA_DIR|g" \
    >"$KAFKA_CONFIG"
}

format_storage() {
  [[ ! -f "$KAFKA_DATA_DIR/data/meta.properties" ]] || return 0
  local cluster_id=- credential scram_args=()
  while [[ "$cluster_id" == -* ]]; do # a leading '-' would read as an option of the tool
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  kafka_log "formatting storage in $KAFKA_DATA_DIR/data (cluster $cluster_id)"
  # KAFKA_SCRAM_CREDENTIALS: one 'SCRAM-SHA-512=[name=u,password=p]' per line
  while IFS= read -r credential; do
    if [[ -n "$credential" ]]; then scram_args+=(--add-scram "$credential"); fi
  done <<<"${KAFKA_SCRAM_CREDENTIALS:-}"
  java -cp "$classpath" -Dlog4j2.configurationFile="$KAFKA_SCRIPT_DIR/log4j2-quiet.properties" \
    kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$KAFKA_CONFIG" --ignore-formatted "${scram_args[@]}" \
    >"$KAFKA_LOG_DIR/format.out" 2>&1 ||
    { cat "$KAFKA_LOG_DIR/format.out" >&2; kafka_die "formatting storage failed"; }
}

# Start the broker detached and wait for its answer. Sets pid, probe_status (0 ready, 2 no answer
# before the deadline, 3 the process exited) and lost_port (the port it could not bind, if any).
launch() {
  local log_lines=0
  [[ ! -f "$KAFKA_LOG_DIR/server.log" ]] || log_lines="$(wc -l <"$KAFKA_LOG_DIR/server.log")"
  kafka_log "starting Kafka $KAFKA_VERSION on $bootstrap (controller port $KAFKA_CONTROLLER_PORT," \
    "data $KAFKA_DATA_DIR, logs $KAFKA_LOG_DIR)"
  # setsid: the broker outlives this script and is not hit by the terminal's Ctrl-C; stop.sh ends it.
  # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS holds several options
  setsid java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -cp "$classpath" \
    "${java_opts[@]}" kafka.Kafka "$KAFKA_CONFIG" >"$KAFKA_LOG_DIR/kafka.out" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$KAFKA_PID_FILE"
  echo "$bootstrap" >"$KAFKA_BOOTSTRAP_FILE"
  probe_status=0
  kafka_probe "$bootstrap" "$KAFKA_START_TIMEOUT_S" "$pid" >/dev/null 2>&1 || probe_status=$?
  lost_port=""
  if ((probe_status == 3)); then # only this start's log lines: server.log is appended to
    lost_port="$(tail -n "+$((log_lines + 1))" "$KAFKA_LOG_DIR/server.log" 2>/dev/null |
      grep -o 'failed to bind to [^ :]*:[0-9]*' | tail -n 1 | sed 's/.*://')" || true
  fi
}

for ((attempt = 1; ; attempt++)); do
  choose_ports "$attempt"
  taken=""
  for port in "$KAFKA_CONTROLLER_PORT" "$KAFKA_PORT"; do
    if kafka_port_in_use "$port"; then taken="$port"; fi
  done
  if [[ -n "$taken" ]]; then
    port_lost "$taken" "$attempt"
    continue
  fi
  write_config
  format_storage
  launch
  if [[ -n "$lost_port" ]]; then
    rm -f "$KAFKA_PID_FILE" "$KAFKA_BOOTSTRAP_FILE"
    port_lost "$lost_port" "$attempt"
    continue
  fi
  break
done

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
