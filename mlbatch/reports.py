"""Human-readable reports (markdown and tables) for the Prefect UI; pure functions of results."""

from __future__ import annotations

import math
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def metrics_rows(candidate: dict[str, float], champion: dict[str, float] | None) -> list[dict[str, str]]:
    rows = []
    for name, value in candidate.items():
        if name == "rows":
            continue
        champ = (champion or {}).get(name)
        rows.append({"metric": name, "candidate": _fmt(value), "champion": _fmt(champ)})
    return rows


def retrain_markdown(
    model: str, version: int, verdict: dict[str, Any], promoted: bool, card: dict[str, Any], note: str
) -> str:
    metrics = card["metrics"]
    lines = [
        f"# Retrain {model}: version {version} {'promoted' if promoted else verdict['status']}",
        "",
        f"- window: {card['data']['window_start']} to {card['data']['window_end']} "
        f"({card['data']['rows_train']} training rows, {card['data']['rows_holdout']} holdout rows)",
        f"- champion compared: {metrics['champion_version'] if metrics['champion_version'] else 'none'}",
        f"- decision: {note}",
        "",
        "| metric | candidate | champion |",
        "|---|---|---|",
    ]
    for row in metrics_rows(metrics["candidate"], metrics["champion"]):
        lines.append(f"| {row['metric']} | {row['candidate']} | {row['champion']} |")
    lines += ["", "| gate | verdict | detail |", "|---|---|---|"]
    for gate in verdict["gates"]:
        outcome = "pass" if gate["passed"] else "**FAIL**" if gate.get("required", True) else "warn (not required)"
        lines.append(f"| {gate['gate']} | {outcome} | {gate['detail']} |")
    return "\n".join(lines)


def validation_failure_markdown(model: str, failures: list[str]) -> str:
    lines = [f"# Retrain {model}: data validation failed, nothing registered", "", "| failed check |", "|---|"]
    lines += [f"| {f} |" for f in failures]
    return "\n".join(lines)
