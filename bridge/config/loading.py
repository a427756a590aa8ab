"""Validation of a parsed file: interpolation, overrides, the model, and problem lines."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bridge.config.env import _apply_env_overrides, interpolate
from bridge.config.fields import Loc, _Problems, format_loc
from bridge.config.schema import _type_at
from bridge.errors import ConfigError

_M = TypeVar("_M", bound=BaseModel)


def _validate(
    root: type[_M], raw: dict[str, Any], env: Mapping[str, str], base_dir: Path, source: str
) -> _M:
    """Interpolate, override and validate ``raw`` as the model ``root``; raise ConfigError."""
    interpolated, problems = interpolate(raw, env)
    if problems:
        _fail(source, problems)
    override_problems, origins = _apply_env_overrides(root, interpolated, env)
    if override_problems:
        _fail(source, override_problems)
    try:
        return root.model_validate(interpolated, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = list(_describe(root, exc, origins))
    # Raised outside the except block so the ValidationError is not chained as context.
    _fail(source, problems)


def _fail(source: str, problems: list[str]) -> typing.NoReturn:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    message = f"{source}: {count} in the configuration:\n" + "\n".join(f"  {p}" for p in problems)
    raise ConfigError(message, problems)


def _describe(
    root: type[BaseModel], exc: ValidationError, origins: Mapping[str, str]
) -> Iterator[str]:
    """One line per problem; never the input value (it may be a secret)."""
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        shape = _shape(error.get("input"))  # the kind of value only: never the value itself
        inner = (error.get("ctx") or {}).get("error")
        if isinstance(inner, _Problems):
            for sub_loc, message in inner.problems:
                yield _with_origin(format_loc((*loc, *sub_loc)), message, origins)
            continue
        kind = error["type"]
        message = error["msg"]
        if kind == "missing":
            message = "required key is missing"
        elif kind == "extra_forbidden":
            declared = _type_at(root, loc[:-1])
            fields = (
                list(declared.model_fields)
                if isinstance(declared, type) and issubclass(declared, BaseModel)
                else []
            )
            close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
            message = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
        elif kind == "list_type":
            message = f"must be a list (one '- ' item per line), not {shape}"
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            message = f"must be a mapping ('key: value' lines), not {shape}"
        elif kind == "value_error" and message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        yield _with_origin(format_loc(loc), message, origins)


def _shape(value: object) -> str:
    """What kind of YAML value this is, for a message: ``a list``, ``a mapping``, ``text``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    return "text"


def _with_origin(path: str, message: str, origins: Mapping[str, str]) -> str:
    for key, var in origins.items():
        if path == key or path.startswith((key + ".", key + "[")):
            return f"{path}: {message} (value from environment variable {var})"
    return f"{path}: {message}"
