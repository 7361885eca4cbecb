"""Commands ``fairuse warehouse migrate``, ``sink``, ``report ...`` and ``sql``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from fairuse.errors import WarehouseError
from fairuse.settings import Settings, load_settings
from fairuse.warehouse import reports
from fairuse.warehouse.output import render
from fairuse.warehouse.result import QueryResult
from fairuse.warehouse.store import Reader


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    dsn = getattr(args, "dsn", None)
    if dsn:
        from dataclasses import replace

        settings = replace(settings, warehouse_dsn=dsn)
    return settings


def _migrate(args: argparse.Namespace) -> int:
    from fairuse.warehouse.client import connect
    from fairuse.warehouse.migrate import migrate
    from fairuse.warehouse.schema import render_all

    settings = _settings(args)
    ttl = settings.warehouse.events_ttl_days
    if args.print:
        sys.stdout.write(render_all(cluster=args.cluster, events_ttl_days=ttl))
        return 0
    client = connect(settings.resolved_warehouse_dsn)
    try:
        applied = migrate(client, events_ttl_days=ttl, cluster=args.cluster)
    finally:
        client.close()
    print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    return 0


def _sink(args: argparse.Namespace) -> int:
    from fairuse.warehouse.sink import run_sink

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # group joins are not news
    settings = _settings(args)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_sink(settings, stop, group_id=args.group, idle_exit_s=args.idle_exit)

    asyncio.run(main())
    return 0


def _print(result: QueryResult, args: argparse.Namespace, title: str) -> None:
    print(render(result, args.format, title))


def _policy_limits(settings: Settings, tenant: str, month: str) -> Any:
    from fairuse.policy import DEFAULT_POLICY, load_policy

    policy = load_policy(settings.policy_file) if settings.policy_file else DEFAULT_POLICY
    start, _ = reports.month_bounds(month)
    moment = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    return policy.limits_at(tenant, int(moment.timestamp() * 1000))[1]


def _report_usage(args: argparse.Namespace) -> int:
    settings = _settings(args)
    limits = _policy_limits(settings, args.tenant, args.month)
    with Reader(settings.resolved_warehouse_dsn) as reader:
        daily = reader.query(*reports.usage_daily(args.tenant, args.month, limits.timezone))
        totals = reader.query(*reports.usage_totals(args.tenant, args.month))
        if args.format == "table":
            _print(daily, args, f"Usage of {args.tenant} in {args.month} per local day")
            print()
            _print(totals, args, f"Totals of {args.tenant} in {args.month}")
        else:
            _print(daily, args, "")
        if args.plot:
            from fairuse.warehouse.plot import plot_usage

            seats = reader.query(*reports.seats(args.tenant, args.month)).rows
            seat_count = int(seats[0][0]) if seats and seats[0] else 0
            if not seat_count:
                seat_count = max((int(r[5]) for r in totals.rows), default=1)
            plot_usage(daily.dicts(), args.tenant, args.month, limits, seat_count, Path(args.plot))
            print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def _report_offenders(args: argparse.Namespace) -> int:
    with Reader(_settings(args).resolved_warehouse_dsn) as reader:
        result = reader.query(*reports.offenders(args.month, args.metric, args.top))
        _print(result, args, f"Top {args.top} offenders in {args.month}")
    return 0


def _report_violations(args: argparse.Namespace) -> int:
    with Reader(_settings(args).resolved_warehouse_dsn) as reader:
        found = reader.query(*reports.violations(args.tenant, args.month))
        _print(found, args, f"Violations of {args.tenant}")
        if args.format == "table":
            print()
            _print(reader.query(*reports.enforcement(args.tenant)), args, "Enforcement steps")
    return 0


def _report_notices(args: argparse.Namespace) -> int:
    with Reader(_settings(args).resolved_warehouse_dsn) as reader:
        found = reader.query(*reports.notices(args.tenant, args.month, args.kind))
        _print(found, args, f"Notices to {args.tenant} of records in {args.month} (UTC)")
    return 0


def _report_statements(args: argparse.Namespace) -> int:
    with Reader(_settings(args).resolved_warehouse_dsn) as reader:
        found = reader.query(*reports.statements(args.month, args.tenant))
        who = f" of {args.tenant}" if args.tenant else ""
        _print(found, args, f"Statements{who} for {args.month}, adjustments applied")
    return 0


def _latest_month(reader: Reader) -> str:
    """The month of the latest accrual or violation (the current UTC month if there is none)."""
    sql, params = reports.latest_month()
    rows = reader.query(sql, params).rows
    latest = str(rows[0][0]) if rows and rows[0] and rows[0][0] else ""
    return latest if latest > "1970-01" else dt.datetime.now(dt.UTC).strftime("%Y-%m")


def _report_summary(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with Reader(settings.resolved_warehouse_dsn) as reader:
        month = args.month or _latest_month(reader)
        sections = [
            (f"Top {args.top} offenders in {month}", reports.offenders(month, None, args.top)),
            (f"Violations in {month}", reports.month_violations(month)),
            (f"Enforcement in {month}", reports.month_enforcement(month)),
        ]
        if args.tenant:
            timezone = _policy_limits(settings, args.tenant, month).timezone
            sections += [
                (
                    f"Usage of {args.tenant} in {month} per local day",
                    reports.usage_daily(args.tenant, month, timezone),
                ),
                (f"Totals of {args.tenant} in {month}", reports.usage_totals(args.tenant, month)),
            ]
        out: dict[str, Any] = {}
        for title, query in sections:
            result = reader.query(*query)
            if args.format == "json":
                out[title] = result.dicts()
            else:
                _print(result, args, title)
                print()
        if args.format == "json":
            import json

            print(json.dumps(out))
    return 0


def _sql(args: argparse.Namespace) -> int:
    with Reader(_settings(args).resolved_warehouse_dsn) as reader:
        params: dict[str, str] = {}
        for item in args.param:
            name, sep, value = item.partition("=")
            if not sep or not name.isidentifier():
                raise WarehouseError(f"--param must be NAME=VALUE, got {item!r}")
            params[name] = value
        _print(reader.query(args.query, params), args, "")
    return 0


def _common(parser: argparse.ArgumentParser, formats: bool = True) -> None:
    parser.add_argument("--dsn", help="warehouse DSN (default: FAIRUSE_WAREHOUSE_DSN or chDB)")
    if formats:
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")


def register(subparsers: Any) -> None:
    """Add the warehouse, sink, report and sql subcommands."""
    warehouse = subparsers.add_parser("warehouse", help="manage the ClickHouse warehouse")
    wsub = warehouse.add_subparsers(dest="warehouse_command", required=True, metavar="ACTION")
    mig = wsub.add_parser("migrate", help="apply the schema's pending migrations (idempotent)")
    mig.add_argument("--cluster", help="render for a cluster: Replicated _local + Distributed")
    mig.add_argument("--print", action="store_true", help="print the SQL instead of applying it")
    _common(mig, formats=False)
    mig.set_defaults(func=_migrate)

    sink = subparsers.add_parser("sink", help="store the pipeline's topics in the warehouse")
    sink.add_argument("--group", default="fairuse-sink", help="consumer group id")
    sink.add_argument(
        "--idle-exit",
        type=float,
        metavar="SECONDS",
        help="stop once no message arrived for SECONDS and all is committed (for batch runs)",
    )
    _common(sink, formats=False)
    sink.set_defaults(func=_sink)

    report = subparsers.add_parser("report", help="analyst reports from the warehouse")
    rsub = report.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    usage = rsub.add_parser("usage", help="a tenant's daily usage in a month")
    usage.add_argument("--tenant", required=True)
    usage.add_argument("--month", required=True, help="YYYY-MM")
    usage.add_argument("--plot", metavar="FILE.png", help="also draw daily usage vs the limit")
    _common(usage)
    usage.set_defaults(func=_report_usage)
    off = rsub.add_parser("offenders", help="tenants furthest over their limits in a month")
    off.add_argument("--month", required=True, help="YYYY-MM")
    off.add_argument("--metric", choices=reports.METRIC_NAMES)
    off.add_argument("--top", type=int, default=10)
    _common(off)
    off.set_defaults(func=_report_offenders)
    vio = rsub.add_parser("violations", help="a tenant's violations and enforcement steps")
    vio.add_argument("--tenant", required=True)
    vio.add_argument("--month", help="YYYY-MM (default: all)")
    _common(vio)
    vio.set_defaults(func=_report_violations)
    notices = rsub.add_parser(
        "notices", help="proof of notice: whether and when each record reached the tenant"
    )
    notices.add_argument("--tenant", required=True)
    notices.add_argument("--month", required=True, help="YYYY-MM (UTC month of the record time)")
    notices.add_argument(
        "--kind", help="a kind or family, e.g. enforcement.notice or violation (default: all)"
    )
    _common(notices)
    notices.set_defaults(func=_report_notices)
    stm = rsub.add_parser(
        "statements", help="billing: closed periods of a month with their adjustments applied"
    )
    stm.add_argument("--month", required=True, help="YYYY-MM (monthly periods and their days)")
    stm.add_argument("--tenant", help="one tenant (default: all)")
    _common(stm)
    stm.set_defaults(func=_report_statements)
    summ = rsub.add_parser(
        "summary", help="offenders, violations and enforcement of a month in one go"
    )
    summ.add_argument("--month", help="YYYY-MM (default: the month of the latest data)")
    summ.add_argument("--tenant", help="also print this tenant's usage")
    summ.add_argument("--top", type=int, default=10)
    _common(summ)
    summ.set_defaults(func=_report_summary)

    sql = subparsers.add_parser("sql", help="run one read-only query on the warehouse")
    sql.add_argument("query", help='e.g. "SELECT count() FROM events WHERE tenant_id = {t:String}"')
    sql.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    _common(sql)
    sql.set_defaults(func=_sql)
