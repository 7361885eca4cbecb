"""Inline SVG charts (no script, no CDN): a standing bar and a month's daily history. Pure."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

OK, WARN, OVER, INK, PACE = "#1b5e20", "#8a4b00", "#b71c1c", "#1f2933", "#0b57d0"


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def status_of(observed: float, limit: float, warning_ratio: float) -> str:
    """``ok``, ``warning`` (at or over the warning line) or ``over`` (past the limit)."""
    if limit and observed > limit:
        return "over"
    if limit and observed >= warning_ratio * limit:
        return "warning"
    return "ok"


def standing_bar(observed: float, limit: float, warning_ratio: float, label: str) -> Markup:
    """A horizontal bar of ``observed`` against ``limit`` with the warning line dashed."""
    width, height = 300.0, 28.0
    scale = max(limit, observed, 1e-9) * 1.05
    fill = {"ok": OK, "warning": WARN, "over": OVER}[status_of(observed, limit, warning_ratio)]
    bar = width * observed / scale
    limit_x = width * limit / scale
    warn_x = width * warning_ratio * limit / scale
    return Markup(
        f'<svg class="bar" viewBox="0 0 {_n(width)} {_n(height)}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="none">'
        f'<rect x="0" y="4" width="{_n(width)}" height="20" fill="#e4e7eb"/>'
        f'<rect class="fill" x="0" y="4" width="{_n(bar)}" height="20" fill="{fill}"/>'
        f'<line class="warning-line" x1="{_n(warn_x)}" x2="{_n(warn_x)}" y1="0" y2="28" '
        f'stroke="{WARN}" stroke-width="2" stroke-dasharray="3 2"/>'
        f'<line class="limit-line" x1="{_n(limit_x)}" x2="{_n(limit_x)}" y1="0" y2="28" '
        f'stroke="{INK}" stroke-width="2"/></svg>'
    )


def history_chart(
    amounts: list[float], limit: float, monthly: bool, label: str, unit: str
) -> Markup:
    """Daily bars for each day of the month (``amounts[i]`` = day i+1). A monthly limit adds the
    running total and the pace line (limit × elapsed share of the month); a daily limit is a
    horizontal line."""
    width, height, pad = 600.0, 220.0, 28.0
    days = max(len(amounts), 1)
    running: list[float] = []
    total = 0.0
    for amount in amounts:
        total += amount
        running.append(total)
    top = max([limit, *(running if monthly else amounts), 1e-9]) * 1.08
    step = (width - pad) / days

    def y(value: float) -> float:
        return height - pad - (height - 2 * pad) * value / top

    parts = [
        f'<svg class="history" viewBox="0 0 {_n(width)} {_n(height)}" role="img" '
        f'aria-label="{escape(label)}">',
        f'<text x="{_n(pad)}" y="16" font-size="12" fill="{INK}">{escape(unit)}, axis up to '
        f"{top:,.1f}</text>",
        f'<line x1="{_n(pad)}" x2="{_n(width)}" y1="{_n(y(0))}" y2="{_n(y(0))}" stroke="{INK}"/>',
    ]
    for index, amount in enumerate(amounts):
        x = pad + index * step
        parts.append(
            f'<rect class="day" x="{_n(x + 1)}" y="{_n(y(amount))}" '
            f'width="{_n(max(step - 2, 1))}" height="{_n(y(0) - y(amount))}" fill="{OK}">'
            f"<title>day {index + 1}: {_n(amount)} {escape(unit)}</title></rect>"
        )
        if index % 5 == 0 or index == days - 1:
            parts.append(
                f'<text x="{_n(x + step / 2)}" y="{_n(height - 8)}" font-size="11" '
                f'text-anchor="middle" fill="{INK}">{index + 1}</text>'
            )
    if monthly:
        points = " ".join(f"{_n(pad + (i + 1) * step)},{_n(y(v))}" for i, v in enumerate(running))
        parts.append(
            f'<polyline class="running" points="{_n(pad)},{_n(y(0))} {points}" fill="none" '
            f'stroke="{INK}" stroke-width="2"/>'
        )
        parts.append(
            f'<line class="pace-line" x1="{_n(pad)}" y1="{_n(y(0))}" x2="{_n(width)}" '
            f'y2="{_n(y(limit))}" stroke="{PACE}" stroke-width="2" stroke-dasharray="6 4"/>'
        )
    else:
        parts.append(
            f'<line class="limit-line" x1="{_n(pad)}" x2="{_n(width)}" y1="{_n(y(limit))}" '
            f'y2="{_n(y(limit))}" stroke="{OVER}" stroke-width="2" stroke-dasharray="6 4"/>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
