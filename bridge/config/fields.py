"""The bottom of the configuration: constants, problem paths, field types and the base model.

Everything here is free of the configuration's structure; the models build on it.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationInfo,
    WithJsonSchema,
)

from bridge.webhook.signing import decode_secret

MIB = 1024 * 1024
ENV_PREFIX = "POPBRIDGE_"
"""Environment variables starting with this prefix override config keys."""

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""Mailbox and webhook names: safe as Prometheus label values and in file names."""

_SECRET_FILE_MAX_BYTES = 64 * 1024

Loc: TypeAlias = tuple[str | int, ...]


# --------------------------------------------------------------------------- problems


class _Problems(ValueError):
    """Raised inside validators to report problems at exact paths below the current model."""

    def __init__(self, problems: Sequence[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(f"{format_loc(loc)}: {msg}" for loc, msg in problems))
        self.problems = problems


def format_loc(loc: Loc) -> str:
    """Render a pydantic location tuple as ``mailboxes[0].webhooks[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "." in part or not part:
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


# --------------------------------------------------------------------------- field types


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base_dir")
    return Path(base) if base is not None else Path.cwd()


def _resolve(path: Path, info: ValidationInfo) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else _base_dir(info) / path


@dataclass(frozen=True)
class SecretFile:
    """A secret read from a file at load time; ``repr`` shows the path, never the content."""

    path: Path
    value: SecretStr


def read_secret_text(path: Path) -> str:
    """The secret in the file at ``path``: UTF-8, without the final line break, not empty.

    Raises ValueError saying what is wrong with the file, never its content.
    """
    try:
        # O_NONBLOCK: opening a FIFO (or a device) must not hang validate and run forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(path)
            if not stat.S_ISREG(mode):
                raise ValueError(
                    f"cannot read {path}: not a regular file (a FIFO, socket or device); "
                    "point it at a file that holds the secret"
                )
            data = fh.read(_SECRET_FILE_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"cannot read {path}: no such file; create it or fix the path") from None
    except IsADirectoryError:
        raise ValueError(f"cannot read {path}: it is a directory") from None
    except PermissionError:
        raise ValueError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > _SECRET_FILE_MAX_BYTES:
        raise ValueError(f"{path} is larger than {_SECRET_FILE_MAX_BYTES} bytes; not a secret file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    text = text.rstrip("\r\n")
    if not text:
        raise ValueError(f"{path} is empty")
    return text


def _read_secret_file(raw: object, info: ValidationInfo) -> SecretFile:
    if isinstance(raw, SecretFile):
        return raw
    if not isinstance(raw, str | Path) or not str(raw).strip():
        raise ValueError("must be a file path")
    path = _resolve(Path(raw), info)
    return SecretFile(path=path, value=SecretStr(read_secret_text(path)))


SecretFileField = Annotated[
    SecretFile,
    PlainValidator(_read_secret_file),
    PlainSerializer(lambda f: str(f.path), return_type=str),
    WithJsonSchema({"type": "string", "description": "path of a file holding the secret"}),
]


def _existing_file(path: Path, info: ValidationInfo) -> Path:
    path = _resolve(path, info)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    return path


ExistingFile = Annotated[Path, AfterValidator(_existing_file)]


def _absolute_dir(path: Path, info: ValidationInfo) -> Path:
    return _resolve(path, info)


ConfigPath = Annotated[Path, AfterValidator(_absolute_dir)]


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into host and port; raise ValueError."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"must be host:port, e.g. 127.0.0.1:9808, not {listen!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("write IPv6 addresses in brackets, e.g. [::1]:9808")
    return host, port


def _is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost.") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_webhook_secret(value: str) -> str | None:
    """Return why ``value`` is not a usable signing secret, or None. Never echoes it."""
    try:
        decode_secret(value)
    except ValueError as exc:
        return f"{exc}; the value is not shown"
    return None


# --------------------------------------------------------------------------- the base model


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        validate_default=False,
    )

    def _adopt_file_secret(self, field: str, file_field: str) -> list[tuple[Loc, str]]:
        """Copy a ``*_file`` secret into its plain field so callers read one place."""
        inline = getattr(self, field)
        from_file: SecretFile | None = getattr(self, file_field)
        if from_file is None:
            return []
        if inline is not None:
            return [((file_field,), f"set either {field} or {file_field}, not both")]
        # The model is frozen for callers; this runs once, inside validation.
        object.__setattr__(self, field, from_file.value)
        return []
