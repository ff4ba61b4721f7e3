"""Every error this project raises on purpose.

One module, one base class: callers (the CLI, the flows, the tests) catch
``MlbatchError`` to tell an expected, explained failure from a bug, and the
narrow subclasses let them react to one kind (a conflict is retried or
skipped, a validation failure is reported, a bad parameter is refused
before anything is written). Each subclass also inherits the built-in that
fits, so code that only knows ``ValueError`` or ``FileNotFoundError`` still
behaves.
"""

from __future__ import annotations


class MlbatchError(Exception):
    """Raised for every expected failure of this project; the message is meant for a person."""


class ConfigError(MlbatchError, ValueError):
    """Raised when settings or a storage URI cannot be used (unknown scheme, missing bucket name)."""


class SpecError(MlbatchError, ValueError):
    """Raised when a model spec file is missing, malformed or refers to something that does not exist."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"invalid model spec {path}: " + "; ".join(problems))


class ParameterError(MlbatchError, ValueError):
    """Raised when a run parameter (date, model name, version, range) is malformed, before anything is written."""


class StorageError(MlbatchError, OSError):
    """Raised when the storage back end fails in a way retrying will not fix (access denied, no bucket)."""


class ObjectNotFoundError(StorageError, FileNotFoundError):
    """Raised when an object or partition that must exist does not."""

    def __init__(self, uri: str, what: str = "object") -> None:
        self.uri = uri
        super().__init__(f"{what} not found: {uri}")


class ConflictError(StorageError):
    """Raised when a create-only or compare-and-swap write loses: somebody else wrote first."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        self.reason = reason
        super().__init__(f"write conflict on {uri}: {reason}")


class DataValidationError(MlbatchError, ValueError):
    """Raised when input data breaks its contract; ``failures`` lists every failed check."""

    def __init__(self, source: str, failures: list[str]) -> None:
        self.source = source
        self.failures = failures
        super().__init__(f"data validation failed for {source}: " + "; ".join(failures))


class IntegrityError(MlbatchError):
    """Raised when a stored model artifact or card does not match its recorded checksum or signature."""


class SignatureError(IntegrityError):
    """Raised when a registry document is unsigned, or its signature fails, while a signing key is set."""


class RegistryError(MlbatchError):
    """Raised when a registry operation is not allowed (promote a rejected version, roll back with no history)."""


class EngineError(MlbatchError, ValueError):
    """Raised when the requested scoring engine cannot score a version (engine=onnx without a validated ONNX model)."""


class ScoringError(MlbatchError):
    """Raised when a scoring run ends with files (or a backfill with dates) that could not be scored.

    The good files or dates are still published; ``result`` is the run's summary, so an entry point can still
    show what was published (the CLI prints it and exits with its own code for a partial result).
    """

    def __init__(self, message: str, result: dict | None = None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[type[ScoringError], tuple[str, dict | None]]:
        """Pickled with its result: Prefect may store a failed run's exception and raise the copy."""
        return (type(self), (str(self), self.result))


class CandidateRejectedError(MlbatchError):
    """Raised by the CLI when a retrain finished but its candidate was rejected by a gate.

    The run itself succeeded (the rejected version and its verdict are registered), so the flow does not
    raise; a script still needs to tell "no new model" from success without parsing the summary.
    """

    def __init__(self, message: str, result: dict | None = None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[type[CandidateRejectedError], tuple[str, dict | None]]:
        return (type(self), (str(self), self.result))


class MonitoringError(MlbatchError, ValueError):
    """Raised when stored results cannot be monitored (a card without the fields drift or staleness need)."""


class PlatformMismatchError(EngineError):
    """Raised when a compiled model library was built for another platform than this machine's."""


class CompilerUnavailableError(EngineError):
    """Raised when a compiled model must be built here (no usable library) and no C compiler is installed."""
