"""The one settings object.

Built once at an entry point (CLI command, flow run) and passed down; tests
construct it directly instead of patching globals. Reads, in order of
precedence: constructor arguments, environment variables, then an optional
dotenv file named by ``MLBATCH_ENV_FILE`` (default ``.env`` in the working
directory, ignored when absent).

Environment variables read (all optional):

- ``MLBATCH_STORAGE_ROOT``: where everything lives; ``data/lake`` (local), ``file:///abs/path``
  or ``s3://bucket/prefix``.
- ``MLBATCH_MODELS_DIR``: directory of model spec files (default ``models``).
- ``MLBATCH_S3_ENDPOINT_URL``, ``MLBATCH_S3_REGION``: S3 endpoint (for S3-compatible stores or moto) and region.
- ``MLBATCH_S3_SSE``: server-side encryption, ``AES256`` (default), ``aws:kms`` or ``none``.
- ``MLBATCH_S3_SSE_KMS_KEY_ID``: the KMS key when ``MLBATCH_S3_SSE=aws:kms``.
- ``MLBATCH_S3_MAX_ATTEMPTS``: botocore's retry budget for throttling and 5xx answers.
- ``MLBATCH_LOG_LEVEL``: log level of the project's loggers.
- ``MLBATCH_TIMEZONE``: timezone of the schedules and of logical dates.
- ``MLBATCH_TASK_RUNNER``: ``threads`` (default) or ``dask``; ``MLBATCH_DASK_ADDRESS`` an existing scheduler.
- ``MLBATCH_MAX_WORKERS``: files scored at once (scoring tasks in parallel) by the thread runner.
- ``MLBATCH_BATCH_WORKERS``: batches of one file scored at once by the thread runner (1 on Dask workers).
- ``MLBATCH_PREDICT_THREADS``: threads per prediction; default cores / batches scored at once (1 on Dask workers).
- ``MLBATCH_ENGINE``: scoring engine, ``auto`` (ONNX when validated), ``sklearn`` or ``onnx``.
- ``MLBATCH_ONNX_KERNEL``: tree kernel of the ONNX engine, ``onnx-extended`` (default) or ``onnxruntime``.
- ``MLBATCH_CARD_HMAC_KEY``: optional key that signs model cards; never put it in a file under version control.
- ``MLBATCH_RETRAIN_ON_ALERT``: emit the event that triggers retraining when monitoring alerts.
- ``MLBATCH_MONITOR_AFTER_SCORING``: the score flow runs the monitor flow on its date once published.

AWS credentials are never settings: boto3 and pyarrow take them from the
standard AWS chain (environment, shared config, instance role).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlbatch.errors import ConfigError
from mlbatch.onnx_kernels import ONNX_EXTENDED, OnnxKernel

DEFAULT_ENV_FILE = ".env"


class Settings(BaseSettings):
    """Runtime configuration shared by the CLI, the flows and the core modules."""

    model_config = SettingsConfigDict(
        env_prefix="MLBATCH_",
        env_file=DEFAULT_ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
    )

    storage_root: str = Field(
        default="data/lake",
        description="Root of all data: a local path, file:// URI or s3://bucket/prefix.",
    )
    models_dir: Path = Field(default=Path("models"), description="Directory holding one spec file per model.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint override (moto, MinIO).")
    s3_region: str = Field(default="us-east-1", description="AWS region of the bucket.")
    s3_sse: Literal["AES256", "aws:kms", "none"] = Field(
        default="AES256", description="Server-side encryption applied to every object written to S3."
    )
    s3_sse_kms_key_id: str | None = Field(default=None, description="KMS key id when s3_sse is aws:kms.")
    s3_max_attempts: int = Field(default=5, ge=1, le=20, description="botocore retry attempts (standard mode).")
    log_level: str = Field(default="INFO", description="Level of the project's loggers.")
    timezone: str = Field(default="UTC", description="Timezone of schedules and logical dates.")
    task_runner: Literal["threads", "dask"] = Field(default="threads", description="Task runner for scoring.")
    dask_address: str | None = Field(default=None, description="Existing Dask scheduler; None starts a LocalCluster.")
    # unset: one file per core with ONNX Runtime, one file with a batch per core with scikit-learn; set one and
    # the other fills the cores (``Parallelism.from_settings`` says why)
    max_workers: int | None = Field(
        default=None, ge=1, le=64, description="Files scored at once with the thread runner; None: by engine."
    )
    batch_workers: int | None = Field(
        default=None, ge=1, le=64, description="Batches of one file scored at once (threads runner; 1 on Dask)."
    )
    task_min_bytes: int = Field(
        default=32 * 2**20,
        ge=0,
        description="Input bytes per scoring task: smaller files are scored several to a task (0: a task per file).",
    )
    predict_threads: int | None = Field(
        default=None, ge=1, le=256, description="OpenMP threads per prediction; None: cores / concurrent files."
    )
    engine: Literal["auto", "sklearn", "onnx"] = Field(default="auto", description="Scoring engine.")
    onnx_kernel: OnnxKernel = Field(
        default=ONNX_EXTENDED, description="Tree kernel of one-thread ONNX sessions (see mlbatch.onnx_kernels)."
    )
    card_hmac_key: SecretStr | None = Field(default=None, description="Key signing model cards (optional).")
    retrain_on_alert: bool = Field(default=True, description="Emit the retrain event when monitoring alerts.")
    monitor_after_scoring: bool = Field(
        default=False, description="Run the monitor flow as a subflow after the score flow publishes its date."
    )

    def __init__(self, **values: Any) -> None:
        """Read ``MLBATCH_ENV_FILE`` now, not at import, and turn a bad value into one ``ConfigError``.

        An env file named explicitly must exist (a typo would otherwise silently fall back to the
        defaults); the default ``.env`` is optional.
        """
        if "_env_file" not in values:
            named = os.environ.get("MLBATCH_ENV_FILE")
            if named and not Path(named).is_file():
                raise ConfigError(f"MLBATCH_ENV_FILE={named!r}: no such file; expected a dotenv file")
            values["_env_file"] = named or DEFAULT_ENV_FILE
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    def as_env(self) -> dict[str, str]:
        """These settings as ``MLBATCH_*`` variables, for a child process (gate (c), workers)."""
        env = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if name == "models_dir":
                value = Path(value).resolve()
            if name == "storage_root" and "://" not in str(value):
                value = Path(value).resolve()
            env[f"MLBATCH_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return env

    def hmac_key(self) -> str | None:
        return self.card_hmac_key.get_secret_value() if self.card_hmac_key else None

    def storage(self):  # -> Storage; imported lazily so settings stay importable without boto3/pyarrow
        """Open the storage back end named by ``storage_root``."""
        from mlbatch.storage import open_storage

        return open_storage(self.storage_root, self)


def _describe(exc: ValidationError) -> str:
    """One line per bad setting, named as the variable a person sets, with the value and what was expected."""
    problems = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        shown = "" if name == "card_hmac_key" else f"={err.get('input')!r}"
        problems.append(f"MLBATCH_{name.upper()}{shown}: {err['msg']}")
    return "invalid settings: " + "; ".join(problems)
