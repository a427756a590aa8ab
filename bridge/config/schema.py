"""Walking the models' declared types, from a root model down a problem path."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel

from bridge.config.fields import Loc


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and Optional to the type that holds the structure."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _type_at(root: type[BaseModel], loc: Loc) -> Any:
    """The (unwrapped) declared type at ``loc`` below the model ``root``, or None."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        elif origin is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif origin is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    return _unwrap(current)
