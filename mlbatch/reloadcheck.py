"""Entry point of gate (c): ``python -m mlbatch.reloadcheck MODEL VERSION FEATURES.parquet OUT.npy``.

Runs in a fresh interpreter with settings from the environment, loads the
version through the registry (checksum verified) and writes its scores.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from mlbatch.registry import Registry
from mlbatch.settings import Settings
from mlbatch.specs import get_spec
from mlbatch.training import predict_scores


def main(argv: list[str]) -> int:
    model, version, features, out = argv
    settings = Settings()
    spec = get_spec(settings.models_dir, model)
    pipeline = Registry(settings.storage(), model, settings.hmac_key()).load(int(version))
    np.save(out, predict_scores(pipeline, pd.read_parquet(features), spec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
