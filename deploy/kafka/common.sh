# Shared settings of the deploy/kafka scripts; sourced, not run.
# Every variable can be overridden from the environment (see README.md in this directory).

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_SCALA_VERSION="2.13"
LOG4J_VERSION="2.25.5" # the log4j2 of kafka-server 4.4.0; binds SLF4J 1.7 (Kafka's API) to it

KAFKA_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_CHECKOUT="$(cd "$KAFKA_SCRIPT_DIR/../.." && pwd)"

FAIRUSE_CACHE="${FAIRUSE_CACHE:-$HOME/.cache/fairuse}"
KAFKA_HOME="${KAFKA_HOME:-$FAIRUSE_CACHE/kafka-$KAFKA_VERSION}"
KAFKA_LIBS="$KAFKA_HOME/libs"
# The compiled readiness probe, per version of its source: a changed KafkaReady.java is compiled
# again (kafka_require_fetched) without fetching anything.
KAFKA_TOOLS="$KAFKA_HOME/tools-$(cksum <"$KAFKA_SCRIPT_DIR/KafkaReady.java" | cut -d' ' -f1)"
KAFKA_FETCHED_MARKER="$KAFKA_HOME/.fetched"

KAFKA_HOST="127.0.0.1"
# KAFKA_PORT=auto: start.sh picks free ports outside the ephemeral range (kafka_free_port).
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT_GIVEN="${KAFKA_CONTROLLER_PORT:+yes}" # else start.sh may choose another
if [[ "$KAFKA_PORT" == auto ]]; then
  KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-auto}"
else
  KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
fi
KAFKA_PORT_ATTEMPTS="${KAFKA_PORT_ATTEMPTS:-3}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$KAFKA_CHECKOUT/var/kafka}"
KAFKA_LOG_DIR="${KAFKA_LOG_DIR:-$KAFKA_DATA_DIR/logs}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}"
KAFKA_START_TIMEOUT_S="${KAFKA_START_TIMEOUT_S:-180}"
KAFKA_STOP_TIMEOUT_S="${KAFKA_STOP_TIMEOUT_S:-30}"

KAFKA_CONFIG="$KAFKA_DATA_DIR/server.properties"
KAFKA_PID_FILE="$KAFKA_DATA_DIR/kafka.pid"
KAFKA_BOOTSTRAP_FILE="$KAFKA_DATA_DIR/bootstrap" # "host:port" of the running broker

# Never fails: a closed stderr (e.g. `make run | head`) must not stop a cleanup half-way.
kafka_log() { echo "kafka: $*" >&2 || true; }
kafka_die() {
  kafka_log "error: $*"
  exit 1
}

# True if process $1 exists and is not a zombie (an unreaped corpse answers kill -0).
kafka_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != "Z" ]]
}

# The pid of this data dir's broker if that process is alive, else nothing (exit status 1).
kafka_running_pid() {
  [[ -f "$KAFKA_PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$KAFKA_PID_FILE")"
  [[ -n "$pid" ]] && kafka_alive "$pid" || return 1
  # Guard against a recycled pid: the process must be a JVM running our config.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$KAFKA_CONFIG" || return 1
  echo "$pid"
}

# True if something accepts TCP connections on $KAFKA_HOST:$1.
kafka_port_in_use() {
  (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null
}

# The local TCP ports of every socket on this host (any state, IPv4 and IPv6), one a line.
kafka_ports_taken() {
  local hex
  for hex in $(awk 'FNR > 1 { sub(/.*:/, "", $2); print $2 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
    echo "$((16#$hex))"
  done
}

# Print a port p such that p .. p+$1-1 (default 1) are all unused, chosen at random OUTSIDE the
# kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range): outgoing connections take
# their local ports from that range, so one of them cannot grab a port picked here between the
# check and the broker's bind. Only a process binding that very port explicitly can; start.sh
# retries on fresh ports then.
kafka_free_port() {
  local count="${1:-1}" low=32768 high=60999 range
  range="$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)" && read -r low high <<<"$range"
  # Candidates: 10000 .. low-1 and high+1 .. 65535 (ports below 10000 are left to services).
  local below=$((low - 10000 - count + 1)) above=$((65535 - high - count + 1))
  ((below > 0)) || below=0
  ((above > 0)) || above=0
  ((below + above > 0)) || kafka_die "no ports outside the ephemeral range $low-$high"
  local taken attempt pick port i
  taken=" $(kafka_ports_taken | sort -un | tr '\n' ' ') "
  for attempt in {1..200}; do
    pick=$(((RANDOM << 15 | RANDOM) % (below + above)))
    if ((pick < below)); then port=$((10000 + pick)); else port=$((high + 1 + pick - below)); fi
    for ((i = 0; i < count; i++)); do
      [[ "$taken" == *" $((port + i)) "* ]] && continue 2
    done
    echo "$port"
    return 0
  done
  kafka_die "no $count free adjacent ports outside the ephemeral range $low-$high"
}

# Run the readiness probe: a real metadata request, retried until the deadline.
#   kafka_probe BOOTSTRAP TIMEOUT_S [PID_TO_WATCH]
kafka_probe() {
  [[ -f "$KAFKA_TOOLS/KafkaReady.class" ]] || kafka_compile_probe
  java -cp "$KAFKA_TOOLS:$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$KAFKA_SCRIPT_DIR/log4j2-quiet.properties" \
    KafkaReady "$@"
}

# Serialise start/stop of one data dir (fd 9 stays open until the calling script exits; the
# broker itself must not inherit it: start it with 9>&-).
kafka_lock() {
  mkdir -p "$KAFKA_DATA_DIR"
  exec 9>"$KAFKA_DATA_DIR/.lock"
  flock -w 180 9 || kafka_die "another start/stop of $KAFKA_DATA_DIR is still running"
}

kafka_require_fetched() {
  [[ -f "$KAFKA_FETCHED_MARKER" ]] || "$KAFKA_SCRIPT_DIR/fetch.sh"
}

# Compile the readiness probe into KAFKA_TOOLS (atomically: concurrent starts may race here).
kafka_compile_probe() {
  command -v javac >/dev/null || kafka_die "javac (JDK 17+) is needed to build the readiness probe"
  local partial
  partial="$(mktemp -d "$KAFKA_HOME/tools.partial.XXXXXX")"
  javac -d "$partial" -cp "$KAFKA_LIBS/*" "$KAFKA_SCRIPT_DIR/KafkaReady.java" ||
    { rm -rf "$partial"; kafka_die "could not compile the readiness probe"; }
  mv -T "$partial" "$KAFKA_TOOLS" 2>/dev/null || rm -rf "$partial" # another start won the race
}
