"""deploy/kafka start/stop/status on a private broker (own ports, own data dir)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from fairuse.kafka import client_kwargs
from fairuse.settings import KafkaSettings
from fairuse.topics import create_topics
from kafka_support import scaled_s

STATUS_RUNNING, STATUS_NOT_ANSWERING, STATUS_STOPPED = 0, 1, 3


def _produce(settings: KafkaSettings, value: bytes) -> None:
    async def produce() -> None:
        producer = AIOKafkaProducer(acks="all", **client_kwargs(settings))
        await producer.start()
        try:
            await producer.send_and_wait(settings.topic("events"), value, key=b"tenant-a")
        finally:
            await producer.stop()

    asyncio.run(produce())


def _read_all(settings: KafkaSettings) -> list[bytes]:
    """Every record of the events topic (which holds at least one)."""

    async def read() -> list[bytes]:
        consumer = AIOKafkaConsumer(
            settings.topic("events"), auto_offset_reset="earliest", **client_kwargs(settings)
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + scaled_s(40)
            found: list[bytes] = []
            while not found and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                found = [record.value for records in batches.values() for record in records]
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_start_status_restart_keeps_data_stop(broker_scripts) -> None:
    started = broker_scripts.run("start")
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == broker_scripts.bootstrap
    assert "formatting storage" in started.stderr

    status = broker_scripts.run("status")
    assert status.returncode == STATUS_RUNNING
    assert status.stdout.startswith("running pid=")

    settings = KafkaSettings(bootstrap=broker_scripts.bootstrap, events_partitions=2)
    create_topics(settings)
    _produce(settings, b"kept across restarts")

    again = broker_scripts.run("start")
    assert again.returncode == 0, again.stderr
    assert "reusing the running broker" in again.stderr

    stopped = broker_scripts.run("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert broker_scripts.run("status").returncode == STATUS_STOPPED

    restarted = broker_scripts.run("start")
    assert restarted.returncode == 0, restarted.stderr
    assert "formatting storage" not in restarted.stderr
    assert _read_all(settings) == [b"kept across restarts"]

    assert broker_scripts.run("stop").returncode == 0
    assert broker_scripts.run("status").stdout.startswith("stopped")


def test_a_port_taken_by_another_process_is_a_clear_error(broker_scripts) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", broker_scripts.port))
        squatter.listen()

        started = broker_scripts.run("start")

    assert started.returncode != 0
    assert f"port {broker_scripts.port} on 127.0.0.1 is taken by another process" in started.stderr
    assert "set KAFKA_PORT to a free port" in started.stderr  # a port given is never changed


def _ephemeral_ports() -> range:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def test_a_controller_port_lost_before_the_bind_is_retried_on_a_fresh_port(
    broker_scripts,
) -> None:
    del broker_scripts.env["KAFKA_CONTROLLER_PORT"]  # not given: start.sh may move it
    controller = broker_scripts.port + 1
    with socket.socket() as client:
        # Bound, not listening: what an outgoing connection holds. The check before the start
        # sees nothing; the broker's own bind fails.
        client.bind(("127.0.0.1", controller))

        started = broker_scripts.run("start")

    assert started.returncode == 0, started.stderr
    assert (
        f"port {controller} on 127.0.0.1 was taken by another process; retrying on fresh ports"
        " (attempt 2 of 3)" in started.stderr
    )
    assert started.stdout.strip() == broker_scripts.bootstrap  # the client port given is kept
    config = (broker_scripts.data_dir / "server.properties").read_text()
    assert f"CONTROLLER://127.0.0.1:{controller}" not in config
    assert broker_scripts.run("status").returncode == STATUS_RUNNING


def test_automatic_ports_lie_outside_the_ephemeral_range(broker_scripts) -> None:
    broker_scripts.env["KAFKA_PORT"] = "auto"
    del broker_scripts.env["KAFKA_CONTROLLER_PORT"]

    started = broker_scripts.run("start")

    assert started.returncode == 0, started.stderr
    port = int(started.stdout.strip().rsplit(":", 1)[1])
    assert port not in _ephemeral_ports() and port + 1 not in _ephemeral_ports()
    status = broker_scripts.run("status")
    assert status.stdout.startswith("running pid="), status.stdout
    assert f"bootstrap=127.0.0.1:{port}" in status.stdout


def test_a_lost_port_is_retried_on_another_pair_then_given_up(
    broker_scripts, tmp_path: Path
) -> None:
    # An extra listener on a port someone else holds: every attempt loses its bind, so every
    # attempt shows the retry on a fresh pair.
    broker_scripts.env.update(KAFKA_PORT="auto", KAFKA_PORT_ATTEMPTS="2")
    del broker_scripts.env["KAFKA_CONTROLLER_PORT"]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        held = holder.getsockname()[1]
        extra = tmp_path / "extra-listener.properties"
        extra.write_text(
            "listeners=PLAINTEXT://@HOST@:@PORT@,CONTROLLER://@HOST@:@CONTROLLER_PORT@,"
            f"EXTRA://@HOST@:{held}\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
            "EXTRA:PLAINTEXT\n"
        )
        broker_scripts.env["KAFKA_EXTRA_CONFIG"] = str(extra)

        started = broker_scripts.run("start")

    assert started.returncode != 0
    tried = re.findall(r"starting Kafka \S+ on 127\.0\.0\.1:(\d+)", started.stderr)
    assert len(tried) == 2 and tried[0] != tried[1], started.stderr
    assert (
        f"port {held} on 127.0.0.1 was taken by another process; retrying on fresh ports"
        " (attempt 2 of 2)" in started.stderr
    )
    assert "gave up after 2 attempts on fresh ports (KAFKA_PORT_ATTEMPTS)" in started.stderr
    assert broker_scripts.run("status").returncode == STATUS_STOPPED


def test_a_broker_that_cannot_start_reports_why_with_the_log_tail(broker_scripts) -> None:
    broker_scripts.env["KAFKA_HEAP_OPTS"] = "-Xmx1m"  # the JVM refuses to start

    started = broker_scripts.run("start")

    assert started.returncode != 0
    assert "the broker process exited during startup" in started.stderr
    assert "heap" in started.stderr.lower()  # the JVM's own complaint, from the log tail
    assert broker_scripts.run("status").returncode == STATUS_STOPPED


def _alive(pid: int) -> bool:
    """Exists and is not a zombie waiting for its parent (whoever that is) to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_a_hung_broker_is_reported_and_killed_after_the_stop_timeout(broker_scripts) -> None:
    assert broker_scripts.run("start").returncode == 0
    pid = int((broker_scripts.data_dir / "kafka.pid").read_text())
    os.kill(pid, signal.SIGSTOP)  # frozen: answers nothing, ignores SIGTERM until killed
    try:
        broker_scripts.env["KAFKA_STATUS_TIMEOUT_S"] = "3"
        status = broker_scripts.run("status")
        assert status.returncode == STATUS_NOT_ANSWERING
        assert status.stdout.startswith(f"not answering pid={pid}")

        broker_scripts.env["KAFKA_STOP_TIMEOUT_S"] = "2"
        stopped = broker_scripts.run("stop")
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGCONT)

    assert stopped.returncode == 0
    assert f"no clean shutdown within 2s; killing pid {pid}" in stopped.stderr
    assert not _alive(pid)
    assert broker_scripts.run("status").returncode == STATUS_STOPPED


def test_a_broker_not_ready_before_the_deadline_is_stopped_again(broker_scripts) -> None:
    broker_scripts.env["KAFKA_START_TIMEOUT_S"] = "0"

    started = broker_scripts.run("start")

    assert started.returncode != 0
    assert "the broker did not come up within 0s" in started.stderr
    assert broker_scripts.run("status").returncode == STATUS_STOPPED
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", broker_scripts.port))  # the port is free again
