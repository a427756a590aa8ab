"""constraints.txt pins every package a full install pulls in (issue 16: reproducible
installs): the runtime dependencies, every extra (s3, test, lint) and theirs, recursively.
A dependency added to pyproject.toml without `make constraints` fails here, not in an image
build that silently takes whatever version is newest that day."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[canonicalize_name(name)] = version
    return pins


def _closure(root: str, extras: set[str]) -> set[str]:
    """Every distribution ``root[extras]`` needs, by the installed metadata."""
    seen: set[str] = set()
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        for spec in metadata.requires(name) or []:
            req = Requirement(spec)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            key = canonicalize_name(req.name)
            if key not in seen:
                seen.add(key)
                todo.append((req.name, set(req.extras)))
    return seen


def test_constraints_pin_every_dependency_of_a_full_install() -> None:
    extras = set(metadata.metadata("popbridge").get_all("Provides-Extra") or [])
    assert {"s3", "test", "lint"} <= extras
    needed = _closure("popbridge", extras)
    pins = _pins()
    missing = sorted(needed - set(pins))
    assert not missing, f"not pinned in constraints.txt (run `make constraints`): {missing}"


def test_the_pinned_versions_are_the_ones_installed() -> None:
    """The test environment is built from constraints.txt, so what runs is what is pinned."""
    pins = _pins()
    for name in _closure("popbridge", {"s3", "test", "lint"}):
        installed = metadata.version(name)
        assert re.sub(r"\.post0$", "", installed) == re.sub(r"\.post0$", "", pins[name]), (
            f"{name}: installed {installed}, constraints.txt pins {pins[name]}"
        )
