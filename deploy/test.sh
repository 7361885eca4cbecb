#!/usr/bin/env bash
# What `make test` runs: a fresh private broker on free ports, the whole pytest suite against it
# (FAIRUSE_KAFKA_BOOTSTRAP), then the broker stopped, also on Ctrl-C or failure. Exit status is
# pytest's. Arguments go to pytest. Concurrent runs do not meet: each has its own port and dir.
#
# Variables: TEST_KAFKA_PORT (default: a free port whose successor is free too),
# TEST_KAFKA_DATA_DIR (default var/test/kafka-<port>; removed after a passing run, kept with
# the broker's logs after a failing one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=.venv/bin/python
free_port_pair='
import socket
for _ in range(50):
    with socket.socket() as a:
        a.bind(("127.0.0.1", 0))
        port = a.getsockname()[1]
    with socket.socket() as b:
        try:
            b.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
    print(port)
    break
'
port="${TEST_KAFKA_PORT:-$("$python" -c "$free_port_pair")}"
export KAFKA_PORT="$port" KAFKA_CONTROLLER_PORT="$((port + 1))"
export KAFKA_DATA_DIR="${TEST_KAFKA_DATA_DIR:-$PWD/var/test/kafka-$port}"

status=1
finish() {
  trap '' PIPE # output may go to a closed pipe; stop the broker regardless
  deploy/kafka/stop.sh || true
  if ((status == 0)); then
    rm -rf "$KAFKA_DATA_DIR"
  else
    echo "test: broker logs in $KAFKA_DATA_DIR/logs" >&2
  fi
}
trap finish EXIT
trap 'exit 130' INT TERM

deploy/kafka/stop.sh
rm -rf "$KAFKA_DATA_DIR"
FAIRUSE_KAFKA_BOOTSTRAP="$(deploy/kafka/start.sh)"
export FAIRUSE_KAFKA_BOOTSTRAP
status=0
"$python" -m pytest "$@" || status=$?
exit "$status"
