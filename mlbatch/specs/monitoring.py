"""The monitoring section of a model spec: drift methods and thresholds, data-quality limits, alerting policy.

Its own module because it is the section monitoring engineers tune most, and the largest.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlbatch.specs.sections import _Strict

#: the drift measures a feature can be judged by (``monitoring.drift_method`` and per feature ``monitoring.drift``)
DriftMethod = Literal["psi", "jensen_shannon", "wasserstein"]


class FeatureDriftSpec(_Strict):
    """How one feature's drift is measured and when it warns or alerts (defaults: the method's own, see
    ``monitoring.drift.DEFAULT_THRESHOLDS``; ``psi`` uses ``psi_warn``/``psi_alert``)."""

    method: DriftMethod = "psi"
    warn: float | None = Field(default=None, gt=0)
    alert: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> FeatureDriftSpec:
        if self.warn is not None and self.alert is not None and self.warn > self.alert:
            raise ValueError(f"warn ({self.warn}) must not exceed alert ({self.alert})")
        return self


class QualitySpec(_Strict):
    """Data-quality limits: a share of a day's rows beyond which a feature alerts (warn at half of it).

    Judged by scoring (recorded in the manifest) and by monitoring (one row per feature per day), apart from drift:
    a feature that goes missing is broken data, not a changed world, and retraining on it would not help.
    """

    null_excess_alert: float = Field(
        default=0.3, gt=0, le=1, description="Null share above the reference's null rate that alerts."
    )
    out_of_range_alert: float = Field(
        default=0.2, gt=0, le=1, description="Share of a numeric feature's values outside the reference's min-max."
    )
    unseen_alert: float = Field(
        default=0.1, gt=0, le=1, description="Share of a categorical feature's values the reference never saw."
    )


class MonitoringSpec(_Strict):
    after_scoring: bool = Field(
        default=False,
        description="Monitor each published date right after scoring (nightly runs, ad hoc runs and backfills).",
    )
    psi_warn: float = Field(default=0.1, gt=0)
    psi_alert: float = Field(default=0.2, gt=0)
    drift_share: float = Field(default=0.5, gt=0, le=1, description="Share of alerting features = dataset drift.")
    max_age_days: int = Field(default=42, ge=1, description="Champion older than this is stale.")
    retrain_cooldown_days: float = Field(
        default=7,
        ge=0,
        description="No retrain event while the newest version is younger than this (0: an event on every alert).",
    )
    performance_tolerance: float = Field(default=0.05, ge=0, description="Allowed drop of the realized metric.")
    performance_noise_z: float = Field(
        default=2.0,
        ge=0,
        le=10,
        description="Standard errors of the day's AUC added to the tolerance, so a small day's noise does not alert.",
    )
    performance_window_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="Realized and estimated performance are judged on the mean of the last this many days, "
        "so one small noisy day does not alert.",
    )
    labels_path: str | None = Field(default=None, description="Separate labels dataset; default: the input itself.")
    unjudged_features: list[str] = Field(
        default_factory=list,
        description="Features whose PSI is recorded but never judged (e.g. weekly seasonal against a mixed reference).",
    )
    calendar_features: list[str] = Field(
        default_factory=list,
        description="Calendar fields (day_of_week, month): drift recorded, never alerted, left out of dataset drift.",
    )
    drift_method: DriftMethod = Field(default="psi", description="How each feature's drift is measured by default.")
    drift: dict[str, FeatureDriftSpec] = Field(
        default_factory=dict, description="Per feature: its own method and thresholds."
    )
    drift_noise_quantile: float = Field(
        default=0.999,
        ge=0,
        lt=1,
        description="Widen each threshold by the drift a day of its size shows by chance at this quantile; 0: off.",
    )
    reference: Literal["card", "trailing", "trailing_weekday"] = Field(
        default="card",
        description="Drift reference: the card's training profile, or the days the same version scored before.",
    )
    reference_days: int = Field(default=28, ge=1, le=366, description="Days a trailing reference looks back.")
    quality: QualitySpec = Field(default_factory=QualitySpec)

    def drift_of(self, feature: str) -> FeatureDriftSpec:
        """The method and thresholds of ``feature``: its own entry, else the default method's."""
        return self.drift.get(feature) or FeatureDriftSpec(method=self.drift_method)
