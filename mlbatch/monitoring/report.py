"""The monitoring report people look at: one self-contained HTML file that leads with the answer.

First thing in the body: the status line (``summary.status_line``), then the
few grouped alerts, then the charts: performance (realized, and estimated when
the table has it) with each version's own holdout baseline, the top drifting
features ranked by the model's importance, the score distribution in each
version's own bins, then data quality and the per-feature table. Each chart
is a PNG (matplotlib, base64, so the file opens anywhere without a server)
with the data it draws embedded beside it as ``<script type="application/json">``.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from mlbatch.monitoring import charts
from mlbatch.monitoring.checks import MODEL, REALIZED, SCORE, DayResult
from mlbatch.monitoring.drift import ALERT, INFO, OK, WARN, Distribution
from mlbatch.monitoring.quality import QUALITY_METRICS
from mlbatch.monitoring.summary import (
    DRIFT_METRICS,
    ESTIMATED,
    Alert,
    feature_drift_rows,
    grouped_alerts,
    status_line,
)
from mlbatch.monitoring.table import read_history, report_key
from mlbatch.parameters import PREDICTIONS, MonitoredSource
from mlbatch.specs import ModelSpec
from mlbatch.storage import Storage

#: how many drifting features get a line in the drift chart (the most important ones)
TOP_FEATURES = 5
_STYLE = (
    "body{font-family:sans-serif;max-width:64em;margin:auto}td,th{padding:2px 8px}"
    ".status{font-size:1.3em;font-weight:bold;padding:.4em;border-left:.4em solid}"
    ".status.alert{border-color:#c62828}.status.ok{border-color:#2e7d32}"
    ".alert{color:#c62828;font-weight:bold}.warn{color:#f9a825}"
)


def _png(fig: Figure) -> str:
    import base64

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")  # "tight" keeps the outside legend in the image
    return base64.b64encode(buffer.getvalue()).decode()


def _chart(name: str, fig: Figure, data: dict[str, Any], alt: str) -> str:
    """The image and, right after it, the data it was drawn from (``id="data-<name>"``)."""
    payload = json.dumps(data, default=str).replace("</", "<\\/")
    return (
        f'<img alt="{html.escape(alt)}" data-plot="{html.escape(name)}" src="data:image/png;base64,{_png(fig)}">\n'
        f'<script type="application/json" id="data-{html.escape(name)}">{payload}</script>'
    )


def drifted_features(history: pd.DataFrame) -> list[str]:
    """Input features whose drift reached warn or alert on any date of the window, in table order."""
    rows = feature_drift_rows(history)
    return list(dict.fromkeys(rows[rows["verdict"].isin([WARN, ALERT])]["feature"]))


def latest_importance(days: list[DayResult]) -> dict[str, float]:
    """The importances of the newest version this run saw (the one the team acts on)."""
    return next((d.importance for d in reversed(days) if d.importance), {})


def ranked_by_importance(features: list[str], importance: dict[str, float], history: pd.DataFrame) -> list[str]:
    """Most important first; without importances, the most drifted (relative to its threshold) first."""
    rows = feature_drift_rows(history)
    worst = (rows["value"] / rows["threshold"]).groupby(rows["feature"]).max()
    return sorted(features, key=lambda f: (-importance.get(f, 0.0), -float(worst.get(f, 0.0))))


def _alerts_html(alerts: list[Alert]) -> str:
    if not alerts:
        return "<h2>Alerts</h2><p>none</p>"
    items = "".join(f"<li class='{a.severity}'>{html.escape(a.text)}</li>" for a in alerts)
    return f"<h2>Alerts</h2><ul>{items}</ul>"


def _performance_html(spec: ModelSpec, history: pd.DataFrame) -> str:
    primary = spec.validation.primary_metric
    data = charts.performance_data(history, primary, ESTIMATED, REALIZED)
    head = f"<h2>Performance: {html.escape(primary)}</h2>"
    if not data["realized"] and not data["estimated"]:
        return head + "<p>No labels for the scored dates yet, and no estimate.</p>"
    note = (
        "<p>Estimated performance comes from the scores alone: it sees a shift of the inputs, "
        "not a change of the label rule.</p>"
        if data["estimated"]
        else ""
    )
    return head + note + _chart("performance", charts.performance_figure(data), data, f"{primary} over time")


def _drift_html(history: pd.DataFrame, importance: dict[str, float]) -> str:
    drifted = drifted_features(history)
    top = ranked_by_importance(drifted, importance, history)[:TOP_FEATURES]
    parts = [f"<h2>Feature drift, by importance ({len(drifted)} drifted)</h2>"]
    if top:
        data = charts.drift_data(history, top, importance, DRIFT_METRICS)
        parts.append(_chart("drift", charts.drift_figure(data), data, "top drifting features over time"))
    score = history[(history["feature"] == SCORE) & (history["metric"] == "psi")]
    if not score.empty:
        data = charts.drift_data(history, [SCORE], {}, ("psi",))
        parts.append(_chart("score-psi", charts.drift_figure(data), data, "PSI of the score over time"))
    return "\n".join(parts)


def _score_html(days: list[DayResult]) -> str:
    by_version: dict[int, dict[dt.date, Distribution]] = {}
    for d in days:
        if d.score is not None and d.model_version is not None:
            by_version.setdefault(d.model_version, {})[d.date] = d.score
    if not by_version:
        return ""
    parts = ["<h2>Score distribution, each version in its own bins</h2>"]
    for version, observed in sorted(by_version.items()):
        shown = {day: observed[day] for day in sorted({min(observed), max(observed)})}
        data = charts.score_data(version, shown)
        parts.append(_chart(f"score-v{version}", charts.score_figure(data), data, f"scores of version {version}"))
    return "\n".join(parts)


def _quality_html(history: pd.DataFrame) -> str:
    rows = history[history["metric"].isin(QUALITY_METRICS) & history["verdict"].isin([WARN, ALERT])]
    if rows.empty:
        return "<h2>Data quality</h2><p>every feature complete, in range and of known categories.</p>"
    out = [
        "<h2>Data quality</h2><table><tr><th>date</th><th>feature</th><th>check</th><th>share</th>"
        "<th>alert at</th><th>verdict</th></tr>"
    ]
    for r in rows.sort_values(["date", "feature"]).itertuples():
        out.append(
            f"<tr><td>{r.date}</td><td>{html.escape(str(r.feature))}</td><td>{html.escape(str(r.metric))}</td>"
            f"<td>{r.value:.1%}</td><td>{r.threshold:.1%}</td><td class='{r.verdict}'>{r.verdict}</td></tr>"
        )
    return "\n".join([*out, "</table>"])


def render_html(
    spec: ModelSpec, start: dt.date, end: dt.date, history: pd.DataFrame, days: list[DayResult], reasons: list[str]
) -> str:
    """The report over ``history`` (the stored table for the window), with score bins from this run's dates.

    ``reasons`` (what asks for a retrain) are already among the grouped alerts, which come from the table.
    """
    history = history.sort_values(["date", "feature", "metric"])
    alerts = grouped_alerts(spec, history)
    status = status_line(spec, history, alerts)
    importance = latest_importance(days)
    kind = "alert" if status.startswith("ALERT") else "ok"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Monitoring {html.escape(spec.name)} {start} to {end}</title>",
        f"<style>{_STYLE}</style></head>",
        f"<body><p id='status' class='status {kind}'>{html.escape(status)}</p>",
        f"<h1>Monitoring {html.escape(spec.name)}: {start} to {end}</h1>",
        _alerts_html(alerts),
    ]
    unreadable = [f"{d.date}: {problem}" for d in days for problem in d.unreadable]
    if unreadable:
        parts.append("<h2>Unreadable input files (skipped)</h2><ul>")
        parts += [f"<li class='warn'>{html.escape(u)}</li>" for u in unreadable]
        parts.append("</ul>")
    parts += [_performance_html(spec, history), _drift_html(history, importance), _score_html(days)]
    parts += [_quality_html(history), _summary_table(history, importance), _staleness_html(history)]
    parts.append(_settings_html(spec))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _staleness_html(history: pd.DataFrame) -> str:
    age = history[(history["feature"] == MODEL)]
    if age.empty:
        return ""
    last = age.iloc[-1]
    return (
        f"<h2>Staleness</h2><p class='{last['verdict']}'>champion v{last['model_version']} is "
        f"{last['value']:.1f} days old (max {last['threshold']:.0f}): {last['verdict']}</p>"
    )


def _settings_html(spec: ModelSpec) -> str:
    m = spec.monitoring
    return (
        f"<h2>Settings</h2><p>drift by {m.drift_method} unless a feature says otherwise (PSI warn {m.psi_warn}, "
        f"alert {m.psi_alert}), thresholds widened for a small day at quantile {m.drift_noise_quantile}; reference: "
        f"{m.reference}; dataset drift when the importance-weighted share of drifted features reaches "
        f"{m.drift_share:.0%}; calendar features never alerted: {', '.join(m.calendar_features) or 'none'}; "
        f"realized {spec.validation.primary_metric} may drop {m.performance_tolerance} below the version's holdout; "
        f"champion max age {m.max_age_days} days.</p>"
    )


def _summary_table(history: pd.DataFrame, importance: dict[str, float]) -> str:
    drift = feature_drift_rows(history)
    if drift.empty:
        return "<p>No drift statistics in this window.</p>"
    out = [
        "<h2>Every feature</h2><table><tr><th>feature</th><th>importance</th><th>method</th><th>max</th>"
        "<th>worst verdict</th><th>first alert</th></tr>"
    ]
    features = ranked_by_importance(list(dict.fromkeys(drift["feature"])), importance, history)
    for feature in features:
        rows = drift[drift["feature"] == feature]
        alerts = rows[rows["verdict"] == ALERT]["date"]
        judged = (rows["verdict"] != INFO).any()
        worst = ALERT if not alerts.empty else WARN if (rows["verdict"] == WARN).any() else OK if judged else INFO
        first = str(alerts.min()) if not alerts.empty else "—"
        weight = f"{importance[feature]:.4f}" if feature in importance else "—"
        out.append(
            f"<tr><td>{html.escape(str(feature))}</td><td>{weight}</td><td>{html.escape(str(rows['metric'].iloc[0]))}"
            f"</td><td>{rows['value'].max():.3f}</td><td class='{worst}'>{worst if judged else 'not judged'}</td>"
            f"<td>{first}</td></tr>"
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
