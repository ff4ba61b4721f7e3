"""The naive peer of ``bench_serve.py``: a minimal FastAPI endpoint calling the pipeline's ``predict_proba``.

What most first versions of a model service look like: unpickle the
pipeline, take ``{"rows": [...]}``, build a DataFrame, return the scores. No
checksum, no registry, no hot swap; one uvicorn worker.

    python bench/naive_serve.py MODEL.joblib PORT
"""

from __future__ import annotations

import sys
from typing import Any

import joblib
import pandas as pd
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()
pipeline = joblib.load(sys.argv[1])


class Rows(BaseModel):
    rows: list[dict[str, Any]]


@app.get("/health")
def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/predict")
def predict(request: Rows) -> dict[str, list[float]]:
    frame = pd.DataFrame(request.rows)
    return {"scores": pipeline.predict_proba(frame)[:, 1].tolist()}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
