"""Loading spec files: one YAML file per model in ``models/``, every problem named with its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mlbatch.errors import ParameterError, SpecError
from mlbatch.specs.model import NAME, ModelSpec


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at ``loc`` accepts, so an unknown-key message can say what was expected."""
    model: Any = ModelSpec
    for part in loc:
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return sorted(f.alias or n for n, f in model.model_fields.items())


def _format_errors(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1])
            msg = "unknown key" + (f"; expected one of {', '.join(allowed)}" if allowed else "")
        elif err["type"] == "missing":
            msg = "required key is missing"
        problems.append(f"{loc}: {msg}" if loc else msg)  # a whole-spec check names its keys itself
    return problems


def load_spec(path: str | Path, *, resolve_estimator: bool = True) -> ModelSpec:
    """Load and validate one spec file.

    ``resolve_estimator=False`` skips the checks that import the estimator's
    class (its import path, its parameters, ``native`` support). Why: scoring,
    monitoring and registry operations use the stored model, not the
    estimator section, and importing scikit-learn only to check it costs a
    scoring process memory and start-up time, for nothing when ONNX Runtime
    scores.
    Retraining (and the test that loads every shipped spec) keeps the full check.

    Raises:
        SpecError: naming the file and every offending key.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(str(path), ["file does not exist"]) from None
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [f"not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise SpecError(str(path), ["expected a mapping of keys at the top level"])
    try:
        spec = ModelSpec.model_validate(raw, context={"resolve_estimator": resolve_estimator})
    except ValidationError as exc:
        raise SpecError(str(path), _format_errors(exc)) from None
    if spec.name != path.stem:
        raise SpecError(str(path), [f"name: {spec.name!r} must match the file name {path.stem!r}"])
    return spec


def spec_names(models_dir: str | Path) -> list[str]:
    return sorted(p.stem for p in Path(models_dir).glob("*.yaml"))


def get_spec(models_dir: str | Path, name: str, *, resolve_estimator: bool = True) -> ModelSpec:
    """The spec called ``name``; an unknown name lists the known ones (``resolve_estimator``: see ``load_spec``)."""
    if not NAME.match(name or ""):
        raise ParameterError(f"invalid model name {name!r}: expected lowercase letters, digits, '_' or '-'")
    path = Path(models_dir) / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(spec_names(models_dir)) or "none"
        raise ParameterError(f"unknown model {name!r}: no {path}; known models: {known}")
    return load_spec(path, resolve_estimator=resolve_estimator)
