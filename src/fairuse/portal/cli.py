"""Commands ``fairuse portal`` (serve the customer portal) and ``fairuse portal link``."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from typing import Any

from fairuse.errors import ConfigError
from fairuse.portal.links import ADMIN, parse_ttl, sign
from fairuse.settings import Settings, load_settings


def portal_link(settings: Settings, tenant: str, ttl_s: int, now: float) -> str:
    """The signed URL of ``tenant``'s portal (``*``: every tenant) valid for ``ttl_s``."""
    token = sign(settings.portal.secret or "", tenant, int(now) + ttl_s)
    return f"{settings.portal.public_url.rstrip('/')}/p/{token}/"


def _link(args: argparse.Namespace) -> int:
    if bool(args.tenant) == bool(args.admin):
        raise ConfigError("give either --tenant T or --admin")
    settings = load_settings()
    print(
        portal_link(
            settings, ADMIN if args.admin else args.tenant, parse_ttl(args.ttl), time.time()
        )
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from fairuse.policy import DEFAULT_POLICY, load_policy
    from fairuse.portal.app import Portal, build_app

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = load_settings()
    if args.port is not None:
        settings = replace(settings, portal=replace(settings.portal, port=args.port))
    if not settings.portal.secret:
        raise ConfigError("set FAIRUSE_PORTAL_SECRET (the key that signs portal links)")
    path = args.policy or settings.policy_file
    policy = load_policy(path) if path else DEFAULT_POLICY
    app = build_app(Portal(settings, policy))
    web.run_app(
        app, host=settings.portal.host, port=settings.portal.port, access_log=None, print=None
    )
    return 0


def register(subparsers: Any) -> None:
    """Add ``fairuse portal`` and ``fairuse portal link``."""
    portal = subparsers.add_parser(
        "portal", help="the customer usage portal (signed links; standing, history, notices)"
    )
    portal.add_argument("--port", type=int, help="default: FAIRUSE_PORTAL_PORT (6069)")
    portal.add_argument("--policy", metavar="FILE", help="default: FAIRUSE_POLICY_FILE")
    portal.set_defaults(func=_serve)
    sub = portal.add_subparsers(dest="portal_command", metavar="link")
    link = sub.add_parser("link", help="print a signed, expiring portal URL")
    link.add_argument("--tenant", help="the tenant the link shows")
    link.add_argument("--admin", action="store_true", help="a link to every tenant (with a picker)")
    link.add_argument(
        "--ttl", default="12h", help="how long the link works: 12h, 30m, 7d (default 12h)"
    )
    link.set_defaults(func=_link)
