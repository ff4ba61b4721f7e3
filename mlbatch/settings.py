"""The one settings object.

Built once at an entry point (a CLI command; a deployed flow run reads its
worker's environment once) and passed down; tests construct it directly
instead of patching globals. Reads, in order of precedence: constructor
arguments, environment variables, then an optional dotenv file named by
``MLBATCH_ENV_FILE`` (default ``.env`` in the working directory, ignored when
absent).

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
- ``MLBATCH_TASK_RUNNER``: where a night's files are scored, ``threads`` (default) or ``dask``;
  ``MLBATCH_DASK_ADDRESS`` an existing scheduler.
- ``MLBATCH_ENGINE``: scoring engine, ``auto`` (the fastest validated: compiled, ONNX, scikit-learn),
  ``compiled``, ``sklearn`` or ``onnx``.
- ``MLBATCH_CARD_HMAC_KEY``: optional key that signs model cards; never put it in a file under version control.
- ``MLBATCH_RETRAIN_ON_ALERT``: emit the event that triggers retraining when monitoring alerts.
- ``MLBATCH_SERVING__*``: the web service (host, port, API key digests, capture...), docs/serving.md.
- ``MLBATCH_PUBLIC_URL``: where that service is reachable from a browser; monitoring artifacts link reports there.
- ``MLBATCH_TUNING__*``: performance knobs, documented in docs/performance.md only; the defaults pick
  files, batches and threads from the engine and the cores.

AWS credentials are never settings: boto3 and pyarrow take them from the
standard AWS chain (environment, shared config, instance role).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlbatch.errors import ConfigError
from mlbatch.storage.base import S3Options

DEFAULT_ENV_FILE = ".env"
EngineChoice = Literal["auto", "compiled", "sklearn", "onnx"]
ENGINES: tuple[str, ...] = get_args(EngineChoice)
OnnxKernel = Literal["onnx-extended", "onnxruntime"]
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
]


class Tuning(BaseModel):
    """Performance knobs; unset, each is derived from the engine and the cores (``parallel.Parallelism``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_workers: int | None = Field(default=None, ge=1, le=64, description="Files scored at once (threads).")
    batch_workers: int | None = Field(default=None, ge=1, le=64, description="Batches of one file scored at once.")
    predict_threads: int | None = Field(default=None, ge=1, le=256, description="Threads per prediction.")
    onnx_kernel: OnnxKernel = Field(default="onnx-extended", description="Tree kernel of one-thread ONNX sessions.")
    memory_pool: Literal["jemalloc", "mimalloc", "system", "default"] = Field(
        default="jemalloc", description="pyarrow's allocator while scoring; default leaves pyarrow's choice."
    )


class Serving(BaseModel):
    """How ``mlbatch serve`` listens, authenticates, swaps models and captures requests (docs/serving.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="Address to listen on; behind a proxy, keep loopback.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port (0: any free port).")
    workers: int = Field(default=1, ge=1, le=64, description="Server processes, each with its own model copy.")
    api_key_hashes: str = Field(default="", description="Comma-separated SHA-256 hex digests of accepted API keys.")
    api_key_file: Path | None = Field(default=None, description="File of accepted key digests, one a line.")
    poll_seconds: float = Field(default=5.0, gt=0, le=3600, description="Seconds between checks of the alias.")
    max_rows: int = Field(default=5_000, ge=1, description="Rows one request may carry.")
    max_body_bytes: int = Field(default=8 * 2**20, ge=1024, description="Bytes one request body may carry.")
    predict_threads: int = Field(default=1, ge=1, le=64, description="Threads per prediction.")
    capture: bool = Field(default=False, description="Append inputs and responses to captures/<model>/dt=.../.")
    capture_flush_rows: int = Field(default=10_000, ge=1, description="Rows buffered before a capture file is written.")
    capture_flush_seconds: float = Field(default=60.0, gt=0, description="Longest a captured row waits in memory.")
    capture_exclude: str = Field(default="", description="Comma-separated input columns never captured.")
    access_log: bool = Field(default=False, description="uvicorn's access log (no bodies, no headers).")

    @property
    def excluded_columns(self) -> list[str]:
        return [c.strip() for c in self.capture_exclude.split(",") if c.strip()]


class Settings(BaseSettings):
    """Runtime configuration shared by the CLI, the flows and the core modules."""

    model_config = SettingsConfigDict(
        env_prefix="MLBATCH_",
        env_file=DEFAULT_ENV_FILE,
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
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
    log_level: LogLevel = Field(default="INFO", description="Level of the project's loggers (any case).")
    timezone: str = Field(default="UTC", description="Timezone of schedules and logical dates (an IANA name).")
    task_runner: Literal["threads", "dask"] = Field(default="threads", description="Where a night's files are scored.")
    dask_address: str | None = Field(default=None, description="Existing Dask scheduler; None starts a LocalCluster.")
    engine: EngineChoice = Field(default="auto", description="Scoring engine.")
    card_hmac_key: SecretStr | None = Field(default=None, description="Key signing model cards (optional).")
    retrain_on_alert: bool = Field(default=True, description="Emit the retrain event when monitoring alerts.")
    tuning: Tuning = Field(default_factory=Tuning, description="Performance knobs (docs/performance.md).")
    serving: Serving = Field(default_factory=Serving, description="The web service (docs/serving.md).")
    public_url: str | None = Field(
        default=None, description="Where the web service is reachable from a browser; artifacts link reports there."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        """A typo here would fail only when a scheduled run derives its date; refuse it when settings are read."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown timezone; expected an IANA name such as UTC or Europe/Amsterdam") from None
        return value

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

    @property
    def s3(self) -> S3Options:
        """The S3 options of ``storage_root`` (used only when it is an ``s3://`` root)."""
        return S3Options(
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            sse=self.s3_sse,
            sse_kms_key_id=self.s3_sse_kms_key_id,
            max_attempts=self.s3_max_attempts,
        )

    def as_env(self) -> dict[str, str]:
        """These settings as ``MLBATCH_*`` variables, for a child process (the reload gate, a worker)."""
        env = {}
        for name, value in self.model_dump().items():
            if name in ("tuning", "serving"):
                group = {
                    k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items() if v is not None
                }
                env.update({f"MLBATCH_{name.upper()}__{k.upper()}": v for k, v in group.items()})
                continue
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

    def with_serving(self, **overrides: Any) -> Settings:
        """These settings with some ``serving`` values replaced (the ``serve`` command's flags), checked again."""
        try:
            serving = Serving.model_validate({**self.serving.model_dump(), **overrides})
        except ValidationError as exc:
            raise ConfigError(_describe(exc, prefix="MLBATCH_SERVING__")) from None
        return self.model_copy(update={"serving": serving})

    def hmac_key(self) -> str | None:
        return self.card_hmac_key.get_secret_value() if self.card_hmac_key else None


def _describe(exc: ValidationError, prefix: str = "MLBATCH_") -> str:
    """One line per bad setting, named as the variable a person sets, with the value and what was expected."""
    problems = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]] or ["?"]
        name = prefix + "__".join(p.upper() for p in loc)
        shown = "" if loc[0] == "card_hmac_key" else f"={err.get('input')!r}"
        problems.append(f"{name}{shown}: {err['msg']}")
    return "invalid settings: " + "; ".join(problems)
