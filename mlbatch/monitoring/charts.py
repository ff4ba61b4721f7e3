"""The report's charts: each is the data it draws (embedded as JSON beside it) and a matplotlib figure of that data.

Why the data first: the figure is drawn from exactly the dictionary the page
embeds, so what a test (or a person with a JSON viewer) reads is what the
chart shows: per-version baselines, per-version score bins. Every time axis
marks the dates a new version took over; legends sit outside the axes, never
on the data. Matplotlib through ``Figure`` only (no ``pyplot``, no global state).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib.figure import Figure

from mlbatch.monitoring.drift import ALERT, WARN, Distribution

COLORS = {"ok": "#2e7d32", "warn": "#f9a825", "alert": "#c62828", "info": "#607d8b"}
_LINES = ["#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#4e342e", "#ad1457"]


def _num(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def version_changes(history: pd.DataFrame) -> list[dict[str, Any]]:
    """The first date of each version in the window (the first version too), in date order."""
    if history.empty:
        return []
    per_day = history.sort_values("date").groupby("date")["model_version"].max()
    out, last = [], None
    for day, version in per_day.items():
        if version != last:
            out.append({"date": str(day), "version": int(version)})
            last = version
    return out


def _points(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "date": str(r.date),
            "version": int(r.model_version),
            "value": _num(r.value),
            "threshold": _num(r.threshold),
            "verdict": r.verdict,
        }
        for r in rows.sort_values("date").itertuples()
    ]


def performance_data(history: pd.DataFrame, primary: str, estimated: str, realized: str) -> dict[str, Any]:
    """Realized (and estimated) metric per day, and per version its own holdout baseline over the dates it scored."""
    pick = history[history["metric"] == primary]
    base = history[(history["feature"] == realized) & (history["metric"] == f"holdout_{primary}")]
    baselines = []
    for version, rows in base.groupby("model_version"):
        baselines.append(
            {
                "version": int(version),
                "baseline": _num(rows["value"].iloc[-1]),
                "start": str(rows["date"].min()),
                "end": str(rows["date"].max()),
            }
        )
    return {
        "metric": primary,
        "realized": _judged(_points(pick[pick["feature"] == realized]), history, realized, primary),
        "estimated": _judged(_points(pick[pick["feature"] == estimated]), history, estimated, primary),
        "baselines": sorted(baselines, key=lambda b: b["start"]),
        "version_changes": version_changes(history),
    }


def _judged(points: list[dict[str, Any]], history: pd.DataFrame, feature: str, primary: str) -> list[dict[str, Any]]:
    """Each day's point with the verdict and alert line of its rolling window (the day's own row is information)."""
    window = history[(history["feature"] == feature) & (history["metric"] == f"window_{primary}")]
    by_day = {str(r.date): r for r in window.itertuples()}
    for point in points:
        judged = by_day.get(point["date"])
        if judged is not None:
            point.update(verdict=judged.verdict, threshold=_num(judged.threshold), window=_num(judged.value))
    return points


def drift_data(
    history: pd.DataFrame, features: list[str], importance: dict[str, float], metrics: tuple[str, ...]
) -> dict[str, Any]:
    """Each feature's drift (rows of ``metrics``) over time as a multiple of its alert threshold (1: alert)."""
    out = []
    for feature in features:
        rows = history[(history["feature"] == feature) & history["metric"].isin(metrics)]
        points = _points(rows)
        for p in points:
            p["ratio"] = p["value"] / p["threshold"] if p["value"] is not None and p["threshold"] else None
        method = str(rows["metric"].iloc[0]) if len(rows) else ""
        out.append({"feature": feature, "method": method, "importance": importance.get(feature), "points": points})
    return {"features": out, "version_changes": version_changes(history)}


def score_data(version: int, observed: dict[dt.date, Distribution]) -> dict[str, Any]:
    """One version's score bins: its own reference shares and the shares of the days it scored."""
    first = next(iter(observed.values()))
    labels = first.labels[:-1]  # scores are never null
    reference = first.expected[:-1] / max(first.expected[:-1].sum(), 1e-12)
    days = {str(day): (d.actual[:-1] / max(d.actual[:-1].sum(), 1)).round(6).tolist() for day, d in observed.items()}
    return {"version": version, "bins": labels, "reference": reference.round(6).tolist(), "days": days}


# ---- figures ---------------------------------------------------------------------------------------------
def _dates(values: list[str]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(list(values)))


def _time_axis(ax: Any, all_dates: list[str], changes: list[dict[str, Any]]) -> None:
    """Date ticks, and a dotted vertical line with ``vN`` at each version change after the first."""
    if not all_dates:
        return
    dates = _dates(all_dates)
    span = max((dates.max() - dates.min()).days, 1)
    if span == 1 or dates.min() == dates.max():
        # one date: left alone, matplotlib widens a zero-width date axis to years and ticks each day of them
        ax.set_xlim(dates.min() - pd.Timedelta(days=1), dates.max() + pd.Timedelta(days=1))
    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, span // 10)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    for change in changes[1:]:
        at = pd.Timestamp(change["date"])
        ax.axvline(at, color="#555", linestyle=":", linewidth=1)
        ax.annotate(f"v{change['version']}", (at, 1), xycoords=("data", "axes fraction"), fontsize=7, va="bottom")


def _legend_outside(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def performance_figure(data: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(8.0, 2.8))
    ax = fig.subplots()
    every: list[str] = []
    for name, color, style in (("realized", "#1565c0", "-"), ("estimated", "#6a1b9a", "--")):
        points = [p for p in data[name] if p["value"] is not None]
        if not points:
            continue
        dates = _dates([p["date"] for p in points])
        every += [p["date"] for p in points]
        ax.plot(dates, [p["value"] for p in points], style, marker="o", markersize=3, color=color, label=name)
        for verdict in (WARN, ALERT):
            hit = [i for i, p in enumerate(points) if p["verdict"] == verdict]
            if hit:
                ax.scatter(dates[hit], [points[i]["value"] for i in hit], color=COLORS[verdict], zorder=3, s=18)
        limits = [(d, p["threshold"]) for d, p in zip(dates, points, strict=True) if p["threshold"] is not None]
        if name == "realized" and limits:
            ax.plot([d for d, _ in limits], [t for _, t in limits], ":", color=COLORS[ALERT], label="alert below")
    for i, b in enumerate(data["baselines"]):
        if b["baseline"] is None:
            continue
        start, end = pd.Timestamp(b["start"]) - pd.Timedelta(hours=12), pd.Timestamp(b["end"]) + pd.Timedelta(hours=12)
        ax.hlines(
            b["baseline"],
            start,
            end,
            colors="#2e7d32",
            linestyles="--",
            linewidth=1.2,
            label="holdout baseline (per version)" if i == 0 else None,
        )
    ax.set_title(f"{data['metric']}: realized and estimated, each version against its own holdout", pad=14)
    ax.set_ylabel(data["metric"])
    _time_axis(ax, every, data["version_changes"])
    _legend_outside(ax)
    fig.autofmt_xdate()
    return fig


def drift_figure(data: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(8.0, 2.8))
    ax = fig.subplots()
    every: list[str] = []
    for i, item in enumerate(data["features"]):
        points = [p for p in item["points"] if p["ratio"] is not None]
        if not points:
            continue
        every += [p["date"] for p in points]
        weight = f", importance {item['importance']:.3f}" if item["importance"] is not None else ""
        ax.plot(
            _dates([p["date"] for p in points]),
            [p["ratio"] for p in points],
            marker="o",
            markersize=3,
            color=_LINES[i % len(_LINES)],
            label=f"{item['feature']} ({item['method']}{weight})",
        )
    ax.axhline(1.0, color=COLORS[ALERT], linestyle="--", linewidth=1, label="alert")
    ax.set_title("top drifting features by importance (drift / its alert threshold)", pad=14)
    ax.set_ylabel("drift / alert threshold")
    _time_axis(ax, every, data["version_changes"])
    _legend_outside(ax)
    fig.autofmt_xdate()
    return fig


def score_figure(data: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(8.0, 2.8))
    ax = fig.subplots()
    x = np.arange(len(data["bins"]))
    width = 0.8 / (1 + len(data["days"]))
    ax.bar(x, data["reference"], width, label=f"v{data['version']} reference (holdout)")
    for i, (day, shares) in enumerate(data["days"].items(), start=1):
        ax.bar(x + i * width, shares, width, label=day)
    ax.set_xticks(x + width * len(data["days"]) / 2, data["bins"], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    ax.set_title(f"score distribution of version {data['version']}, in its own bins")
    _legend_outside(ax)
    return fig
