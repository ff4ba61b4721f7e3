"""Every markdown text the project shows people (Prefect artifacts), rendered here and nowhere else.

Pure functions of results: the tasks decide when an artifact is made, these
decide what it says.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from mlbatch.monitoring.checks import DATASET, SCORE, DayResult, summarize
from mlbatch.monitoring.drift import ALERT
from mlbatch.monitoring.performance import ESTIMATED, REALIZED
from mlbatch.monitoring.quality import QUALITY_METRICS
from mlbatch.monitoring.summary import DRIFT_METRICS, PSEUDO, grouped_alerts, status_line
from mlbatch.records import HistoryEntry, Manifest, ModelCard, Verdict
from mlbatch.specs import ModelSpec


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def metrics_rows(candidate: dict[str, float | None], champion: dict[str, float | None] | None) -> list[dict[str, str]]:
    """The candidate's and champion's holdout metrics side by side (the retrain's table artifact)."""
    rows = []
    for name, value in candidate.items():
        if name == "rows":
            continue
        champ = (champion or {}).get(name)
        rows.append({"metric": name, "candidate": _fmt(value), "champion": _fmt(champ)})
    return rows


def retrain_markdown(model: str, version: int, verdict: Verdict, promoted: bool, card: ModelCard, note: str) -> str:
    metrics, data = card.metrics, card.data
    lines = [
        f"# Retrain {model}: version {version} {'promoted' if promoted else verdict.status}",
        "",
        f"- window: {data.window_start} to {data.window_end} "
        f"({data.rows_train} training rows, {data.rows_holdout} holdout rows)"
        if data
        else "- window: —",
        f"- champion compared: {metrics.champion_version or 'none'}",
        f"- decision: {note}",
        "",
        "| metric | candidate | champion |",
        "|---|---|---|",
    ]
    for row in metrics_rows(metrics.candidate, metrics.champion):
        lines.append(f"| {row['metric']} | {row['candidate']} | {row['champion']} |")
    lines += ["", "| gate | verdict | detail |", "|---|---|---|"]
    for gate in verdict.gates:
        outcome = "pass" if gate.passed else "**FAIL**" if gate.required else "warn (not required)"
        lines.append(f"| {gate.gate} | {outcome} | {gate.detail} |")
    return "\n".join(lines)


def validation_failure_markdown(model: str, failures: list[str]) -> str:
    lines = [f"# Retrain {model}: data validation failed, nothing registered", "", "| failed check |", "|---|"]
    lines += [f"| {f} |" for f in failures]
    return "\n".join(lines)


def scoring_markdown(model: str, day: dt.date, manifest: Manifest, rate: float, output: str) -> str:
    files = manifest.files
    lines = [
        f"# Scoring {model} {day}",
        "",
        f"- model version: {manifest.model_version} (engines: {', '.join(manifest.engines) or '—'})",
        f"- rows scored: {manifest.rows_out:,} from {len(files)} files ({rate:,.0f} rows/s)",
        f"- missing values scored: {sum(f.missing_values for f in files):,}; "
        f"unseen categories scored: {sum(f.unseen_categories for f in files):,}",
        f"- files quarantined: {len(manifest.errors)}",
        f"- output: `{output}`",
    ]
    lines += [f"  - {err.input}: {err.reason}" for err in manifest.errors]
    lines.append(f"- data quality: {'; '.join(f'{q.verdict}: {q.describe()}' for q in manifest.quality) or 'ok'}")
    return "\n".join(lines)


def alias_markdown(model: str, entry: HistoryEntry) -> str:
    return (
        f"# {model}: champion {entry.from_version} → {entry.to_version}\n\n"
        f"- action: {entry.action}\n- reason: {entry.reason}\n- at: {entry.at}"
    )


def report_location(public_url: str | None, model: str, report_uri: str) -> str:
    """Where a person opens a monitoring report: the web service's ``/reports`` URL if it has a public one.

    A ``file://`` or ``s3://`` URI in a Prefect artifact is text no browser opens
    from the UI; ``mlbatch serve`` serves the same file read-only (docs/serving.md).
    """
    if not public_url:
        return report_uri
    return f"{public_url.rstrip('/')}/reports/{model}/{report_uri.rsplit('/', 1)[-1]}"


def _performance(day: DayResult, signal: str, metric: str, missing: str) -> str:
    """The day's value of a performance signal and its window's mean and verdict, e.g. ``0.7712 (0.7650 ok)``."""
    cells = {r.metric: r for r in day.rows if r.feature == signal}
    if metric not in cells:
        return missing
    window = cells.get(f"window_{metric}")
    judged = f" ({window.value:.4f} {window.verdict})" if window else ""
    return f"{cells[metric].value:.4f}{judged}"


def monitoring_markdown(
    spec: ModelSpec, days: list[DayResult], reasons: list[str], report_uri: str | None, event: str
) -> str:
    """The status line and headline figures first, then per date the worst verdict of each kind."""
    history = summarize(days)
    alerts = grouped_alerts(spec, history)
    primary = spec.validation.primary_metric
    realized = history[(history["feature"] == REALIZED) & (history["metric"] == primary)]["value"]
    quality = history[history["metric"].isin(QUALITY_METRICS) & (history["verdict"] == ALERT)]
    lines = [
        f"# Monitoring {spec.name}",
        "",
        f"**{status_line(spec, history, alerts)}**",
        "",
        f"- dates monitored: {history['date'].nunique() if not history.empty else 0}",
        f"- mean realized {primary}: {_fmt(float(realized.mean())) if len(realized) else '—'} "
        f"({len(realized)} labelled days)",
        f"- data-quality alerts: {len(quality)} (feature-days)",
        f"- report: {report_uri or '—'}",
        f"- alert event: {event}",
        "",
        "| date | version | estimated AUC (window) | realized (window) | drifting features (alert) | dataset drift "
        "| score PSI | data quality | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in days:
        feats = [
            r.feature for r in d.rows if r.metric in DRIFT_METRICS and r.feature not in PSEUDO and r.verdict == ALERT
        ]
        bad = [
            f"{r.feature} {r.metric} {r.value:.0%}"
            for r in d.rows
            if r.metric in QUALITY_METRICS and r.verdict == ALERT
        ]
        dataset = next((r for r in d.rows if r.feature == DATASET), None)
        score = next((r for r in d.rows if r.feature == SCORE), None)
        lines.append(
            f"| {d.date} | {d.model_version or '—'} | {_performance(d, ESTIMATED, 'roc_auc', 'no score bins')} | "
            f"{_performance(d, REALIZED, primary, 'no labels')} | {', '.join(feats) or '—'} | "
            f"{f'{dataset.value:.0%} {dataset.verdict}' if dataset else '—'} | "
            f"{f'{score.value:.3f} {score.verdict}' if score else '—'} | {', '.join(bad) or '—'} | {d.note or ''} |"
        )
    lines += ["", "## Alerts", ""] + ([f"- {a.text}" for a in alerts] or ["- none"])
    if reasons:
        lines += ["", "## Asking for a retrain", "", *[f"- {r}" for r in reasons]]
    unreadable = [f"- {d.date}: {problem}" for d in days for problem in d.unreadable]
    if unreadable:
        lines += ["", "## Unreadable input files (skipped)", "", *unreadable]
    return "\n".join(lines)
