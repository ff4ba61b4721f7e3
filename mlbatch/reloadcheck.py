"""Entry point of the reload gate: ``python -m mlbatch.reloadcheck MODEL VERSION FEATURES.parquet OUT.npy``.

Runs in a fresh interpreter, with the settings its parent passed in the
environment (read once, here, at the entry point), loads the version through
the registry (checksum verified) and writes its scores.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from mlbatch.engines.scikit_learn import pipeline_scores
from mlbatch.features import model_input
from mlbatch.lake import Lake
from mlbatch.settings import Settings


def main(argv: list[str]) -> int:
    model, version, features, out = argv
    lake = Lake(Settings())
    spec = lake.spec(model, resolve_estimator=True)
    pipeline = lake.registry(model).load(int(version))
    np.save(out, pipeline_scores(pipeline, model_input(pd.read_parquet(features), spec), spec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
