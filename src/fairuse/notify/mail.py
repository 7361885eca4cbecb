"""E-mail notices: the text of each record kind (pure) and sending over SMTP (aiosmtplib).

The advance notice is the policy's "electronic advance notice". Every message says what was
exceeded, when, observed against the limit; what follows, from when; and how to announce high
traffic in advance. Enforcement records cite their strikes by violation id only, so the details
come from the cited violations the notifier has seen (see docs/notifications.md).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib

from fairuse.settings import NotifySettings

_METRIC_NAMES = {
    "audio_hours": "audio recording hours",
    "video_hours": "video recording hours",
    "api_calls": "API calls",
    "stored_calls_per_user": "stored calls per named user",
}
_ACTIONS = {
    "throttle": "the service is throttled down",
    "charge": "charges apply to the excess usage",
}


def _when(ms: Any) -> str:
    if not isinstance(ms, int):
        return "(unknown time)"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _amount(value: Any, unit: Any) -> str:
    text = f"{value:,.2f}".rstrip("0").rstrip(".") if isinstance(value, int | float) else value
    return f"{text} {str(unit).replace('_', ' ')}"


def _violation_line(v: Mapping[str, Any]) -> str:
    metric = _METRIC_NAMES.get(v.get("metric", ""), str(v.get("metric")))
    return (
        f"{metric} in {v.get('period')}: {_amount(v.get('observed'), v.get('unit'))} observed "
        f"against a limit of {_amount(v.get('limit'), v.get('unit'))} "
        f"({v.get('seats')} named users), {v.get('status')} at {_when(v.get('ts'))}"
    )


def _violation(record: Mapping[str, Any], tenant: str) -> tuple[str, list[str]]:
    status, period = record.get("status"), record.get("period")
    metric = _METRIC_NAMES.get(record.get("metric", ""), str(record.get("metric")))
    what = _violation_line(record)
    if status == "warning":
        return f"Fair usage warning: {metric} of {tenant} near the limit in {period}", [
            f"Usage of {tenant} is close to its Fair Usage Policy limit: {what}.",
            "Nothing follows yet. An exceeded period counts as a strike; repeated excess leads "
            "to an advance notice and then to throttling or charges.",
        ]
    if status == "excused":
        return f"Fair usage: {metric} of {tenant} over the limit in {period}, announced", [
            f"Usage of {tenant} went over its limit inside a high-traffic period you announced: "
            f"{what}.",
            "Nothing follows: an announced period does not count as a strike.",
        ]
    return f"Fair usage exceeded: {metric} of {tenant} in {period}", [
        f"Usage of {tenant} exceeded its Fair Usage Policy limit: {what}.",
        "This period counts as a strike. Repeated excess leads to an advance notice and then to "
        "throttling of the service or charges for the excess usage.",
    ]


def _strike_lines(record: Mapping[str, Any], cited: Mapping[str, Mapping[str, Any]]) -> str:
    """The strikes of an enforcement step: from the record's own ``metrics`` when it carries
    them (issue 9), else from the cited violations the notifier has seen, else by id."""
    own = [m for m in record.get("metrics", []) if isinstance(m, Mapping)]
    if own:
        lines = [f"- {_violation_line({'status': 'exceeded', **m})}" for m in own]
        return "Exceeded limits (the strikes):\n" + "\n".join(lines)
    strikes = [s for s in record.get("strikes", []) if isinstance(s, str)]
    lines = [f"- {_violation_line(cited[s])}" for s in strikes if s in cited]
    unseen = [s for s in strikes if s not in cited]
    if unseen:
        lines.append(
            f"- {len(unseen)} more exceeded period(s) (violation ids {', '.join(unseen)}), "
            "sent to you as violation notices"
        )
    return "Exceeded limits (the strikes):\n" + "\n".join(lines)


def _enforcement(
    record: Mapping[str, Any], tenant: str, cited: Mapping[str, Mapping[str, Any]]
) -> tuple[str, list[str]]:
    action, step = str(record.get("action")), record.get("kind")
    follows = _ACTIONS.get(action, action)
    effective = _when(record.get("effective_at"))
    if step == "notice":
        return f"Advance notice: {action} for {tenant} from {effective}", [
            f"This is the electronic advance notice of the Fair Usage Policy for {tenant}: usage "
            f"exceeded its limits repeatedly, most recently at {_when(record.get('ts'))}.",
            _strike_lines(record, cited),
            f"What follows: if usage exceeds a limit again on or after {effective}, {follows} "
            "from that moment.",
        ]
    if step == "lapsed":
        return f"Fair usage: the advance notice to {tenant} has lapsed", [
            f"No limit was exceeded again in time: the advance notice of {action} to {tenant} "
            f"lapsed at {_when(record.get('ts'))}. Earlier excess no longer counts.",
            "Nothing follows.",
        ]
    if step == "lifted":
        return f"Fair usage: {action} of {tenant} lifted", [
            f"The {action} of {tenant} was lifted at {_when(record.get('ts'))}.",
            "Nothing follows: the service runs as usual.",
        ]
    until = record.get("until")
    ends = f" until {_when(until)}" if isinstance(until, int) else ""
    return f"Fair usage action: {action} for {tenant} from {effective}", [
        f"After the advance notice, usage of {tenant} exceeded its limits again at "
        f"{_when(record.get('ts'))}.",
        _strike_lines(record, cited),
        f"What follows: from {effective}{ends}, {follows}.",
    ]


def _other(record: Mapping[str, Any], kind: str, tenant: str) -> tuple[str, list[str]]:
    fields = "\n".join(f"- {name}: {value}" for name, value in record.items())
    return f"Fair usage {kind} for {tenant}", [f"A {kind} record for {tenant}:", fields]


def compose(
    record: Mapping[str, Any],
    kind: str,
    *,
    sender: str,
    recipient: str,
    prior_notice: str,
    cited: Mapping[str, Mapping[str, Any]],
    record_id: str,
) -> EmailMessage:
    """The e-mail (plain text and HTML alternative) for ``record`` of ``kind``; ``cited`` holds
    the violations the notifier has seen, by id (an enforcement step names its strikes only)."""
    tenant = str(record.get("tenant_id"))
    if kind.startswith("violation."):
        subject, paragraphs = _violation(record, tenant)
    elif kind.startswith("enforcement."):
        subject, paragraphs = _enforcement(record, tenant, cited)
    else:
        subject, paragraphs = _other(record, kind, tenant)
    paragraphs = [
        *paragraphs,
        f"High traffic ahead? {prior_notice}",
        f"Reference: {kind} {record_id}",
    ]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = recipient
    message["Message-ID"] = make_msgid(idstring=record_id)
    message["X-Fairuse-Record-Id"] = record_id
    message.set_content("\n\n".join(paragraphs) + "\n")
    body = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>\n" for p in paragraphs)
    message.add_alternative(f"<html><body>\n{body}</body></html>\n", subtype="html")
    return message


async def send(message: EmailMessage, settings: NotifySettings) -> str:
    """Send ``message`` over SMTP; the server's reply (``"250 ..."``). Raises
    :class:`aiosmtplib.SMTPException` or OSError on failure."""
    _, reply = await aiosmtplib.send(
        message,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        use_tls=settings.smtp_tls == "tls",
        start_tls=settings.smtp_tls == "starttls",
        username=settings.smtp_username,
        password=settings.smtp_password,
        timeout=settings.smtp_timeout_s,
    )
    return f"250 {reply}"  # a DATA answer other than 250 raises
