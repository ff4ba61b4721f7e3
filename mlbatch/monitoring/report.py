"""The monitoring report people look at: one self-contained HTML file, plus the markdown verdicts for Prefect.

The plots are PNGs rendered by matplotlib and embedded as base64, so the
report is a single file that opens from S3, a laptop or an e-mail without a
server, and renders the same everywhere. Matplotlib is used through
``Figure`` directly (no ``pyplot``), which needs no GUI backend and keeps no
global state between reports.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math

import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib.figure import Figure

from mlbatch.monitoring.checks import MODEL, REALIZED, SCORE, DayResult
from mlbatch.monitoring.drift import ALERT, INFO, OK, WARN, Distribution
from mlbatch.monitoring.table import read_history, report_key
from mlbatch.parameters import PREDICTIONS, MonitoredSource
from mlbatch.specs import ModelSpec
from mlbatch.storage import Storage

_COLORS = {"ok": "#2e7d32", "warn": "#f9a825", "alert": "#c62828", "info": "#607d8b"}


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _img(fig: Figure, alt: str, **data: str) -> str:
    attrs = " ".join(f'data-{k}="{html.escape(v)}"' for k, v in data.items())
    return f'<img alt="{html.escape(alt)}" {attrs} src="data:image/png;base64,{_png(fig)}">'


def drifted_features(history: pd.DataFrame) -> list[str]:
    """Input features whose PSI reached warn or alert on any date of the window, in table order."""
    psi = history[(history["metric"] == "psi") & ~history["feature"].isin([SCORE])]
    flagged = psi[psi["verdict"].isin([WARN, ALERT])]
    return list(dict.fromkeys(flagged["feature"]))


def _line_plot(frame: pd.DataFrame, title: str, ylabel: str, lines: dict[str, float]) -> Figure:
    fig = Figure(figsize=(6.4, 2.6))
    ax = fig.subplots()
    dates = pd.to_datetime(frame["date"])
    ax.plot(dates, frame["value"], marker="o", color="#1565c0")
    for label, y in lines.items():
        if y is not None and not math.isnan(y):
            ax.axhline(y, linestyle="--", linewidth=1, color=_COLORS.get(label.split()[0], "#555"), label=label)
    for verdict, color in _COLORS.items():
        hit = frame["verdict"] == verdict
        if hit.any() and verdict in (WARN, ALERT):
            ax.scatter(dates[hit], frame["value"][hit], color=color, zorder=3)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    span = max((dates.max() - dates.min()).days, 1) if len(dates) else 1
    if len(dates) and span == 1:
        # one date (every nightly run): left alone, matplotlib widens a zero-width date axis to four years, and
        # the day locator then draws a tick for each of its ~1,500 days, slowly and with a warning per plot
        ax.set_xlim(dates.min() - pd.Timedelta(days=1), dates.max() + pd.Timedelta(days=1))
    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, span // 10)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    if lines:
        ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    return fig


def _score_plot(reference: Distribution, observed: dict[dt.date, Distribution]) -> Figure:
    fig = Figure(figsize=(7.2, 3.0))
    ax = fig.subplots()
    labels = reference.labels[:-1]  # scores are never null
    x = np.arange(len(labels))
    width = 0.8 / (1 + len(observed))
    ax.bar(x, reference.expected[:-1] / max(reference.expected[:-1].sum(), 1e-12), width, label="reference (holdout)")
    for i, (day, dist) in enumerate(observed.items(), start=1):
        actual = dist.actual[:-1]
        ax.bar(x + i * width, actual / max(actual.sum(), 1), width, label=str(day))
    ax.set_xticks(x + width * len(observed) / 2, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    ax.set_title("score distribution vs reference")
    ax.legend(fontsize=8)
    return fig


def render_html(
    spec: ModelSpec, start: dt.date, end: dt.date, history: pd.DataFrame, days: list[DayResult], reasons: list[str]
) -> str:
    """The report over ``history`` (the stored table for the window), with score bins from this run's dates."""
    m = spec.monitoring
    history = history.sort_values(["date", "feature", "metric"])
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Monitoring {html.escape(spec.name)} {start} to {end}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}td,th{padding:2px 8px}"
        ".alert{color:#c62828;font-weight:bold}.warn{color:#f9a825}</style></head><body>",
        f"<h1>Monitoring {html.escape(spec.name)}: {start} to {end}</h1>",
        f"<p>PSI warn at {m.psi_warn}, alert at {m.psi_alert}; dataset drift when at least {m.drift_share:.0%} "
        f"of features alert; realized {spec.validation.primary_metric} may drop {m.performance_tolerance} below "
        f"the holdout; champion max age {m.max_age_days} days.</p>",
    ]
    parts.append("<h2>Alerts</h2><ul>" + "".join(f"<li class='alert'>{html.escape(r)}</li>" for r in reasons))
    parts.append("</ul>" if reasons else "<li>none</li></ul>")
    unreadable = [f"{d.date}: {problem}" for d in days for problem in d.unreadable]
    if unreadable:
        parts.append("<h2>Unreadable input files (skipped)</h2><ul>")
        parts += [f"<li class='warn'>{html.escape(u)}</li>" for u in unreadable]
        parts.append("</ul>")

    drifted = drifted_features(history)
    parts.append(f"<h2>Input drift per feature ({len(drifted)} drifted)</h2>")
    for feature in drifted:
        rows = history[(history["feature"] == feature) & (history["metric"] == "psi")]
        fig = _line_plot(rows, f"PSI of {feature}", "PSI", {f"warn {m.psi_warn}": m.psi_warn, "alert": m.psi_alert})
        parts.append(_img(fig, f"PSI of {feature} over time", feature=feature))
    parts.append(_summary_table(history))

    parts.append("<h2>Score drift</h2>")
    score_rows = history[(history["feature"] == SCORE) & (history["metric"] == "psi")]
    if not score_rows.empty:
        fig = _line_plot(score_rows, "PSI of the score", "PSI", {"warn": m.psi_warn, "alert": m.psi_alert})
        parts.append(_img(fig, "PSI of the score over time", plot="score-psi"))
    scored = [d for d in days if d.score is not None]
    if scored:
        shown = {d.date: d.score for d in (scored[0], scored[-1])}
        parts.append(_img(_score_plot(scored[-1].score, shown), "score distribution vs reference", plot="score"))

    primary = spec.validation.primary_metric
    realized = history[(history["feature"] == REALIZED) & (history["metric"] == primary)]
    parts.append(f"<h2>Realized {html.escape(primary)}</h2>")
    if realized.empty:
        parts.append("<p>No labels for the scored dates yet.</p>")
    else:
        holdout = history[(history["feature"] == REALIZED) & (history["metric"] == f"holdout_{primary}")]["value"]
        # the verdict is on the window (monitoring.performance): its row carries the threshold
        window = history[(history["feature"] == REALIZED) & (history["metric"] == f"window_{primary}")]["threshold"]
        lines = {"holdout": float(holdout.iloc[-1]), "alert": float(window.iloc[-1]) if len(window) else math.nan}
        fig = _line_plot(realized, f"realized {primary}", primary, lines)
        parts.append(_img(fig, f"realized {primary} over time", plot="realized"))

    age = history[(history["feature"] == MODEL)]
    if not age.empty:
        last = age.iloc[-1]
        parts.append(
            f"<h2>Staleness</h2><p class='{last['verdict']}'>champion v{last['model_version']} is "
            f"{last['value']:.1f} days old (max {last['threshold']:.0f}): {last['verdict']}</p>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _summary_table(history: pd.DataFrame) -> str:
    psi = history[(history["metric"] == "psi") & (history["feature"] != SCORE)]
    if psi.empty:
        return "<p>No drift statistics in this window.</p>"
    out = ["<table><tr><th>feature</th><th>max PSI</th><th>worst verdict</th><th>first alert</th></tr>"]
    for feature, rows in psi.groupby("feature", sort=False):
        alerts = rows[rows["verdict"] == ALERT]["date"]
        judged = (rows["verdict"] != INFO).any()
        worst = ALERT if not alerts.empty else WARN if (rows["verdict"] == WARN).any() else OK if judged else INFO
        first = str(alerts.min()) if not alerts.empty else "—"
        out.append(
            f"<tr><td>{html.escape(str(feature))}</td><td>{rows['value'].max():.3f}</td>"
            f"<td class='{worst}'>{worst if judged else 'not judged'}</td><td>{first}</td></tr>"
        )
    return "\n".join([*out, "</table>"])


#: the report shows at least this many days of history, so a nightly one-date run still shows a trend
REPORT_LOOKBACK_DAYS = 30


def publish_report(
    storage: Storage,
    spec: ModelSpec,
    start: dt.date,
    end: dt.date,
    days: list[DayResult],
    reasons: list[str],
    source: MonitoredSource = PREDICTIONS,
) -> str:
    """Render the report over the stored table (this run's dates and the lookback) and store it; returns its key."""
    window_start = min(start, end - dt.timedelta(days=REPORT_LOOKBACK_DAYS - 1))
    history = read_history(storage, spec.name, window_start, end, source)
    key = report_key(spec.name, start, end, source)
    storage.write_bytes(key, render_html(spec, start, end, history, days, reasons).encode())
    return key
