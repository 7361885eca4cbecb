"""deploy/test.sh (`make test`) and deploy/run.sh (`make run`): what a user sees when things fail.

test.sh runs here on a tiny test file of its own, against its own fresh broker: a failing run
names the failing tests at the end and keeps the broker's logs and the failed tests' process
logs; a run that collects no test fails too.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from kafka_support import REPO_ROOT, free_port, scaled_s

DEMO_TESTS = """
def test_passes(tmp_path):
    (tmp_path / "worker.log").write_text("all fine\\n")


def test_fails(tmp_path):
    (tmp_path / "worker.log").write_text("the worker said why\\n")
    assert False, "the reason"
"""


def _test_sh(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run deploy/test.sh on ``tmp_path/test_demo.py`` with ``tests/conftest.py`` as a plugin."""
    (tmp_path / "test_demo.py").write_text(DEMO_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "TEST_"))}
    env.update(TEST_RUN_DIR=str(run_dir), PYTHONPATH=str(REPO_ROOT / "tests"))
    done = subprocess.run(
        [str(REPO_ROOT / "deploy" / "test.sh"), "-c", str(tmp_path / "pytest.ini"),
         "-p", "conftest", "-p", "no:cacheprovider", str(tmp_path / "test_demo.py"), *args],
        env=env, capture_output=True, text=True, timeout=scaled_s(300), check=False,
    )  # fmt: skip
    return done, run_dir


def test_a_failing_run_names_the_failed_tests_and_keeps_their_logs(tmp_path: Path) -> None:
    done, run_dir = _test_sh(tmp_path)

    assert done.returncode == 1, done.stderr
    summary = done.stderr[done.stderr.index("test: FAILED") :]
    assert "test: failing tests:\n  test_demo.py::test_fails\n" in summary
    assert "test_passes" not in summary
    assert f"tmp dirs of the failed tests (worker logs) in {run_dir}/tmp/" in summary
    assert f"broker logs in {run_dir}/kafka/logs" in summary
    kept = {log.resolve() for log in run_dir.glob("tmp/*/worker.log")}  # "...current" links
    assert [log.read_text() for log in kept] == ["the worker said why\n"]  # not the passing one
    assert (run_dir / "kafka" / "logs" / "server.log").stat().st_size > 0


def test_a_run_that_collects_no_test_fails(tmp_path: Path) -> None:
    done, run_dir = _test_sh(tmp_path, "-k", "no_such_test")

    assert done.returncode == 5, done.stderr
    assert "test: FAILED: pytest collected no tests (exit 5)" in done.stderr
    assert (run_dir / "kafka" / "logs").is_dir()


def test_make_run_on_a_busy_port_names_the_variable_to_change(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        env.update(
            KAFKA_PORT=str(port),
            RUN_DIR=str(tmp_path / "run"),
            FAIRUSE_WORKER_WEB_PORT=str(free_port()),  # 6066 may be a running worker's
        )

        done = subprocess.run(
            [str(REPO_ROOT / "deploy" / "run.sh")],
            env=env, capture_output=True, text=True, timeout=scaled_s(120), check=False,
        )  # fmt: skip

    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken by another process" in done.stderr
    assert "set KAFKA_PORT to a free port" in done.stderr
    assert "run: the Kafka broker did not start" in done.stderr
    assert "== worker" not in done.stdout  # nothing else was started
