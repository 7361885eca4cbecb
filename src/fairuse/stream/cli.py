"""``fairuse worker`` (the streaming worker) and ``fairuse policy publish FILE``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from fairuse.policy import DEFAULT_POLICY, Policy, load_policy, policy_fingerprint
from fairuse.policy_cli import policy_actions
from fairuse.settings import Settings, load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fairuse worker`` and ``fairuse policy publish``."""
    worker = subparsers.add_parser(
        "worker",
        help="run the streaming worker (Faust) over the events topic",
        description="Consume the events topic, run the ledger, publish usage, violations, "
        "enforcement and dead letters, and serve live usage over HTTP. Settings come from "
        "FAIRUSE_* variables (docs/streaming.md); the options below override them.",
    )
    worker.add_argument(
        "--policy",
        type=Path,
        help="policy file (default: FAIRUSE_POLICY_FILE "
        "or the packaged policy); a policy published to the topic replaces it",
    )
    worker.add_argument("--web-port", type=int, help="HTTP port (FAIRUSE_WORKER_WEB_PORT)")
    worker.add_argument("--web-host", help="HTTP bind address (FAIRUSE_WORKER_WEB_HOST)")
    worker.add_argument("--app-id", help="consumer group / app id (FAIRUSE_WORKER_APP_ID)")
    worker.add_argument("--loglevel", default="warning", help="log level (default: warning)")
    worker.set_defaults(func=run_worker)

    publish = policy_actions(subparsers).add_parser(
        "publish",
        help="validate a policy file and publish it to the policy topic",
        description="Validate a policy file and publish it to the compacted policy topic; "
        "running workers apply it without a restart. Exit 2 with the offending line if bad.",
    )
    publish.add_argument("file", type=Path, help="policy file (TOML)")
    publish.set_defaults(func=run_publish)


def _worker_settings(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    overrides = {
        name: value
        for name, value in (
            ("web_port", args.web_port),
            ("web_host", args.web_host),
            ("app_id", args.app_id),
        )
        if value is not None
    }
    return dataclasses.replace(settings, worker=dataclasses.replace(settings.worker, **overrides))


def _initial_policy(args: argparse.Namespace, settings: Settings) -> Policy:
    path = args.policy or settings.policy_file
    return load_policy(path) if path else DEFAULT_POLICY


def run_worker(args: argparse.Namespace) -> int:
    """Run the worker until interrupted."""
    import faust

    from fairuse.stream.app import changelog_specs, create_worker
    from fairuse.topics import create_topics

    settings = _worker_settings(args)
    policy = _initial_policy(args, settings)
    create_topics(settings.kafka, changelog_specs(settings))
    _use_uvloop_if_installed()
    worker = create_worker(settings, policy)
    faust_worker = faust.Worker(worker.app, loglevel=args.loglevel, quiet=True)
    if not sys.stdout.isatty():
        faust_worker.spinner = None  # no terminal control codes in a log file
    faust_worker.execute_from_commandline()
    return 0


def _use_uvloop_if_installed() -> None:
    """uvloop's event loop when the package is installed (a third more events/s, see
    docs/streaming.md); the standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_publish(args: argparse.Namespace) -> int:
    """Validate ``args.file`` and publish it."""
    from fairuse.stream.policy_feed import publish_policy

    settings = load_settings()
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        from fairuse.errors import PolicyError

        raise PolicyError(f"cannot read policy file {args.file}: {exc}") from exc
    policy = asyncio.run(publish_policy(settings.kafka, text, str(args.file)))
    print(
        f"published {args.file} (fingerprint {policy_fingerprint(policy)}) "
        f"to {settings.kafka.topic('policy')}"
    )
    return 0
