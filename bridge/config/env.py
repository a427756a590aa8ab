"""The environment's part: ``${VAR}`` interpolation and ``POPBRIDGE_...`` overrides."""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from bridge.config.fields import ENV_PREFIX, Loc, format_loc
from bridge.config.schema import _type_at

_SECRET_PAIRS = {
    "client_secret": "client_secret_file",
    "refresh_token": "refresh_token_file",
    "password": "password_file",
    "secret": "secret_file",
    "token": "token_file",
    "bearer_token": "bearer_token_file",
    "secret_access_key": "secret_access_key_file",
}
"""A secret and its ``*_file`` twin; setting one from the environment drops the other."""

# --------------------------------------------------------------------------- interpolation

_VAR = re.compile(r"\$(\$?)\{([^}]*)\}|\$\{")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def interpolate(value: Any, env: Mapping[str, str], loc: Loc = ()) -> tuple[Any, list[str]]:
    """Replace ``${VAR}`` in every string below ``value``; ``$${`` is a literal ``${``.

    Returns the new value and one problem line per missing or malformed variable.
    """
    problems: list[str] = []

    def walk(node: Any, where: Loc) -> Any:
        if isinstance(node, str):
            return substitute(node, where)
        if isinstance(node, dict):
            return {key: walk(item, (*where, str(key))) for key, item in node.items()}
        if isinstance(node, list):
            return [walk(item, (*where, index)) for index, item in enumerate(node)]
        return node

    def substitute(text: str, where: Loc) -> str:
        if "$" not in text:
            return text

        def replace(match: re.Match[str]) -> str:
            escaped, name = match.group(1), match.group(2)
            if name is None:
                problems.append(
                    f"{format_loc(where)}: unterminated '${{' (write $${{ for a literal ${{)"
                )
                return match.group(0)
            if escaped:
                return "${" + name + "}"
            if not _VAR_NAME.match(name):
                problems.append(f"{format_loc(where)}: ${{{name}}} is not a valid variable name")
                return match.group(0)
            if name not in env:
                problems.append(
                    f"{format_loc(where)}: environment variable {name} is not set; "
                    f"export {name}=... or write the value (or a *_file) in the file"
                )
                return match.group(0)
            return env[name]

        return _VAR.sub(replace, text)

    return walk(value, loc), problems


# --------------------------------------------------------------------------- env overrides


def _env_key(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def _apply_env_overrides(
    root: type[BaseModel], raw: dict[str, Any], env: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """Apply ``POPBRIDGE_...`` variables to the parsed file of model ``root``, in place.

    The scheme is described at :func:`bridge.config.apply_env_overrides`. Returns problem
    lines and a map from the key path set to the variable that set it.
    """
    problems: list[str] = []
    origins: dict[str, str] = {}
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX):
            continue
        segments = var[len(ENV_PREFIX) :].split("__")
        if segments[0].lower() not in root.model_fields:
            continue
        error = _apply_one(root, raw, segments, env[var], var, origins)
        if error:
            problems.append(f"{var}: {error}")
    return problems, origins


def _apply_one(
    root: type[BaseModel],
    raw: dict[str, Any],
    segments: list[str],
    value: str,
    var: str,
    origins: dict[str, str],
) -> str | None:
    if any(not s for s in segments):
        return "empty level in the name (three or more underscores in a row?)"
    node: Any = raw
    loc: Loc = ()
    for depth, segment in enumerate(segments):
        declared = _type_at(root, loc)
        last = depth == len(segments) - 1
        key: str | int
        if typing.get_origin(declared) is list and isinstance(node, list):
            matches = [
                i
                for i, item in enumerate(node)
                if isinstance(item, dict) and _env_key(str(item.get("name", ""))) == segment
            ]
            if len(matches) != 1:
                return (
                    f"no mailbox named like {segment!r} in the file; mailboxes are addressed "
                    "by name in upper case, e.g. POPBRIDGE_MAILBOXES__SUPPORT__PASSWORD_FILE"
                    if not matches
                    else f"{segment!r} matches more than one mailbox"
                )
            key = matches[0]
        elif typing.get_origin(declared) is dict and isinstance(node, dict):
            names = [k for k in node if _env_key(str(k)) == segment]
            if len(names) != 1:
                return (
                    f"no webhook named like {segment!r} in the file"
                    if not names
                    else f"{segment!r} matches more than one webhook"
                )
            key = names[0]
        elif isinstance(node, dict):
            key = segment.lower()
            if key == "headers":
                return "headers cannot be set from the environment; use ${VAR} in the file"
        else:
            return f"{format_loc(loc)} is not a mapping in the file"
        loc = (*loc, key)
        if last:
            target = _type_at(root, loc)
            existing = node[key] if isinstance(node, dict) and key in node else None
            if (
                isinstance(existing, dict)
                or (isinstance(target, type) and issubclass(target, BaseModel))
                or typing.get_origin(target) is dict
            ):
                return f"{format_loc(loc)} is a mapping; set its keys one by one"
            new: Any = value
            if typing.get_origin(target) is list:
                new = [item.strip() for item in value.split(",") if item.strip()]
            assert isinstance(key, str)  # a leaf is always a key of a mapping
            node[key] = new
            twin = _SECRET_PAIRS.get(key) or {v: k for k, v in _SECRET_PAIRS.items()}.get(key)
            if twin is not None:
                node.pop(twin, None)
            origins[format_loc(loc)] = var
            return None
        if isinstance(node, dict) and key not in node:
            declared_here = _type_at(root, loc)
            if not (isinstance(declared_here, type) and issubclass(declared_here, BaseModel)):
                return f"{format_loc(loc)} is not in the file"
            node[key] = {}
        node = node[key]
    return None
