"""The deployments' per-model schedules, written into ``prefect.yaml`` from each spec's ``schedule:`` section.

One deployment per job serves every model: the form's ``model`` field picks
one for an ad-hoc run, and each scheduled run carries its model in the
schedule's own ``parameters``. So adding a spec file schedules a model
without copying YAML by hand: ``mlbatch deployments`` rewrites the regions
between the ``# >>> mlbatch deployments: <job>`` and ``# <<< mlbatch
deployments`` lines of each deployment file, and ``--check`` (run by the unit
tests) fails while a file is out of date. Everything outside those regions
stays hand-written, comments included.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from mlbatch.errors import ConfigError
from mlbatch.specs import ModelSpec, load_spec, spec_names

#: the deployment files this project ships, relative to the checkout
DEPLOYMENT_FILES = ("prefect.yaml", "prefect-docker.yaml")
_START = re.compile(r"^(?P<indent> *)# >>> mlbatch deployments: (?P<job>[a-z-]+) schedules\b.*$")
_END = "# <<< mlbatch deployments"
_JOBS = ("scoring", "retraining")


@dataclass(frozen=True)
class FileStatus:
    """One deployment file: whether its generated regions matched the specs, and whether it was rewritten."""

    path: str
    up_to_date: bool
    written: bool = False


def load_specs(models_dir: str | Path) -> list[ModelSpec]:
    """Every spec in ``models_dir``, validated without importing estimators (a schedule needs none)."""
    return [load_spec(Path(models_dir) / f"{name}.yaml", resolve_estimator=False) for name in spec_names(models_dir)]


def schedule_lines(job: str, specs: list[ModelSpec]) -> list[str]:
    """The ``schedules:`` key of one job's deployment, one entry per model that has a schedule for it.

    Each entry's ``slug`` keeps its identity across ``prefect deploy`` runs (a
    paused schedule stays paused), and its ``parameters`` name the model.
    """
    entries: list[list[str]] = []
    for spec in specs:
        plan = spec.schedule
        if job == "scoring" and plan.scoring_cron is not None:
            head = [f"- cron: {json.dumps(plan.scoring_cron)}"]
        elif job == "retraining" and plan.retrain_every_days is not None:
            head = [
                f"- interval: {plan.retrain_every_days * 86_400}  # {plan.retrain_every_days} days",
                f'  anchor_date: "{plan.retrain_anchor.isoformat()}"',
            ]
        else:
            continue
        entries.append(
            [
                *head,
                "  timezone: *timezone",
                f"  slug: {job}-{spec.name}",
                f"  parameters: {{model: {spec.name}}}",
                "  active: true",
            ]
        )
    if not entries:
        return ["schedules: []"]
    return ["schedules:", *[f"  {line}" for entry in entries for line in entry]]


def render(text: str, specs: list[ModelSpec], path: str = "prefect.yaml") -> str:
    """``text`` with every generated region replaced by the schedules of ``specs``.

    Raises:
        ConfigError: a region without its end line, or for an unknown job.
    """
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        start = _START.match(line)
        if start is None:
            continue
        job, indent = start["job"], start["indent"]
        if job not in _JOBS:
            raise ConfigError(f"{path}:{i}: unknown job {job!r} in a generated region; expected one of {_JOBS}")
        end = next((j for j in range(i, len(lines)) if lines[j].strip() == _END), None)
        if end is None:
            raise ConfigError(f"{path}:{i}: generated region of {job} has no closing line {_END!r}")
        out += [indent + generated for generated in schedule_lines(job, specs)]
        i = end
    return "\n".join(out) + "\n"


def sync(models_dir: str | Path, files: list[Path], *, write: bool) -> list[FileStatus]:
    """Compare (and with ``write``, rewrite) each deployment file against the specs in ``models_dir``."""
    specs = load_specs(models_dir)
    statuses = []
    for path in files:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such deployment file") from None
        wanted = render(text, specs, str(path))
        up_to_date = wanted == text
        if write and not up_to_date:
            path.write_text(wanted)
        statuses.append(FileStatus(str(path), up_to_date, write and not up_to_date))
    return statuses
