"""Command ``fairuse notify``: the notifier service."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from fairuse.errors import ConfigError
from fairuse.settings import Settings, load_settings


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run the notifier and its HTTP port until ``stop`` is set."""
    from fairuse.notify.service import Notifier
    from fairuse.notify.subscriptions import SubscriptionFile
    from fairuse.notify.web import web_app

    config = settings.notify
    if config.subscriptions is None:
        raise ConfigError("set FAIRUSE_NOTIFY_SUBSCRIPTIONS (or --subscriptions) to a TOML file")
    notifier = Notifier(settings, SubscriptionFile(config.subscriptions))
    runner = web.AppRunner(web_app(notifier.metrics, notifier.problems), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.web_host, config.web_port).start()
        logging.getLogger(__name__).info(
            "notifier serving /healthz, /readyz, /metrics on %s:%d", config.web_host,
            config.web_port,
        )  # fmt: skip
        await notifier.run(stop)
    finally:
        await runner.cleanup()


def _notify(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = load_settings()
    notify = settings.notify
    if args.subscriptions:
        notify = replace(notify, subscriptions=Path(args.subscriptions))
    if args.web_port is not None:
        notify = replace(notify, web_port=args.web_port)
    settings = replace(settings, notify=notify)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(main())
    return 0


def register(subparsers: Any) -> None:
    """Add ``fairuse notify``."""
    notify = subparsers.add_parser(
        "notify", help="deliver violations and enforcement to subscribers (webhooks, e-mail)"
    )
    notify.add_argument(
        "--subscriptions", metavar="FILE", help="default: FAIRUSE_NOTIFY_SUBSCRIPTIONS"
    )
    notify.add_argument("--web-port", type=int, help="default: FAIRUSE_NOTIFY_WEB_PORT (6068)")
    notify.set_defaults(func=_notify)
