"""What every benchmark's ``--json`` carries besides its numbers: which benchmark, its arguments, the machine.

Why: ``bench/report.py`` renders docs/performance.md from these files alone,
so each file must say how it was produced (to reproduce it) and where (the
numbers mean little without the cores, memory and library versions).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: libraries whose version changes the numbers (the engines, the Parquet reader and writer, the orchestrator)
PACKAGES = ("scikit-learn", "onnxruntime", "onnx-extended", "pyarrow", "numpy", "pandas", "prefect")


def machine() -> dict[str, Any]:
    """Cores, memory, load, Python and the versions of the libraries that change the numbers."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return {
        "processor": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30),
        "python": platform.python_version(),
        "packages": versions,
        # how busy the machine was when the run ended: on a shared machine it says how much to trust the rates
        "load_average": [round(x, 1) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def write(path: Path, benchmark: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` as the JSON of ``benchmark``, with the command's arguments and the machine."""
    doc = {"benchmark": benchmark, "argv": _argv_without_json(sys.argv[1:]), "host": machine(), **payload}
    path.write_text(json.dumps(doc, indent=2) + "\n")


def _argv_without_json(argv: list[str]) -> list[str]:
    """The arguments that shaped the run; where its JSON went does not (``--json PATH`` or ``--json=PATH``)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            kept.append(arg)
    return kept
