"""``fairuse report usage --plot``: a tenant's daily hours against the daily-equivalent limit."""

from __future__ import annotations

from pathlib import Path

from fairuse.policy import Limits


def daily_limit_hours(metric: str, limits: Limits, seats: int) -> float:
    """The daily-equivalent limit: the per-seat daily hours of the policy times ``seats``.

    The policy's monthly allowance is hours/day x working days x seats, so the line is the pace
    that exactly uses it up on working days.
    """
    per_seat = limits.audio_hours_per_day if metric == "audio_hours" else limits.video_hours_per_day
    return per_seat * max(seats, 1)


def plot_usage(
    rows: list[dict], tenant: str, month: str, limits: Limits, seats: int, path: Path
) -> None:
    """Draw daily audio/video hours of ``rows`` (usage_daily report rows) and the limit lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for metric, color in (("audio_hours", "tab:blue"), ("video_hours", "tab:orange")):
        points = [(r["day"], float(r["amount"])) for r in rows if r["metric"] == metric]
        if not points:
            continue
        days, hours = zip(*points, strict=True)
        ax.bar(days, hours, label=f"{metric} (weighted)", color=color, alpha=0.7)
        limit = daily_limit_hours(metric, limits, seats)
        ax.axhline(limit, color=color, linestyle="--", label=f"{metric} limit {limit:g} h/day")
    ax.set_title(
        f"{tenant} {month}: daily usage vs daily-equivalent limit "
        f"(policy h/day per seat x {seats} seats)"
    )
    ax.set_ylabel("hours")
    ax.legend()
    ax.tick_params(axis="x", labelrotation=60)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
