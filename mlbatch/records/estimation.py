"""Records of performance estimation (the card's calibration map) and of monitoring's alerts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlbatch.records.base import Record


class ScoreCalibration(Record):
    """What monitoring needs to estimate a day's performance from its score counts alone (no labels).

    ``knots_x``/``knots_y`` are the isotonic map from a raw score to the probability that the row is positive,
    fitted on the version's holdout (piecewise linear between knots, flat beyond them): a few dozen numbers, not a
    pickle. ``bin_scores`` is the mean holdout score of each bin of the card's ``profile["score_bins"]`` edges (the
    bins scoring counts), so a bin's probability is the map at that score. ``holdout_daily`` holds the estimate of
    each holdout day computed the same way, the baseline an estimated day is judged against.
    """

    method: Literal["isotonic"] = "isotonic"
    knots_x: list[float]
    knots_y: list[float]
    bin_scores: list[float]
    threshold: float = 0.5
    holdout_daily: list[dict[str, float | int | str | None]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _aligned(self) -> ScoreCalibration:
        if len(self.knots_x) != len(self.knots_y) or not self.knots_x:
            raise ValueError(f"calibration knots: {len(self.knots_x)} x and {len(self.knots_y)} y; expected equal, > 0")
        return self


Severity = Literal["warning", "critical"]


class Alert(BaseModel):
    """One signal's alert in one monitoring run: every date it covers, how bad, and one line for a person."""

    model_config = ConfigDict(frozen=True)

    signal: str
    severity: Severity
    dates: list[str]
    versions: list[int]
    summary: str
    #: the worst value and its threshold (e.g. the lowest window AUC and the AUC at which it alerts)
    value: float
    threshold: float
