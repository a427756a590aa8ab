"""docs/config.md and the config schema say the same: every documented key exists, every key
is documented, and a documented default is the default the code uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import config_schema

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"

# docs/config.md section heading -> path of that object in the schema
SECTIONS = {
    "Top level": (),
    "`http`": ("http",),
    "`log`": ("log",),
    "`webhooks.<name>`": ("webhooks", "*"),
    "`webhooks.<name>.basic_auth`": ("webhooks", "*", "basic_auth"),
    "`mailboxes[]`": ("mailboxes", "*"),
    "OAuth 2 clients": ("oauth2", "*"),
    "`attachments`": ("attachments",),
}


def _documented() -> dict[str, dict[str, str]]:
    """Section -> {key: default column} from the docs' tables."""
    tables: dict[str, dict[str, str]] = {}
    section = None
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"#{2,3} (.+)$", line)
        if heading:
            section = heading.group(1).strip() if heading.group(1).strip() in SECTIONS else None
            continue
        row = re.match(r"\| `([a-z0-9_]+)` \| ([^|]*) \|", line)
        if section and row:
            tables.setdefault(section, {})[row.group(1)] = row.group(2).strip()
    return tables


def _object(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The schema object at ``path`` (``*`` steps into a list's items or a map's values)."""

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in node:
            return resolve(schema["$defs"][node["$ref"].rsplit("/", 1)[1]])
        if "anyOf" in node:
            return resolve(next(n for n in node["anyOf"] if n.get("type") != "null"))
        return node

    node = resolve(schema)
    for step in path:
        if step == "*":
            node = resolve(node.get("items") or node["additionalProperties"])
        else:
            node = resolve(node["properties"][step])
    return node


def test_every_section_is_found() -> None:
    """The parser below reads every section (a renamed heading must not silence the test)."""
    assert set(_documented()) == set(SECTIONS)


@pytest.mark.parametrize("section", list(SECTIONS))
def test_documented_keys_are_exactly_the_schema_keys(section: str) -> None:
    """Every key in the docs' table exists in the schema, and every schema key is documented."""
    properties = _object(config_schema(), SECTIONS[section])["properties"]
    assert set(_documented()[section]) == set(properties)


@pytest.mark.parametrize("section", list(SECTIONS))
def test_documented_defaults_are_the_code_defaults(section: str) -> None:
    """A default written as one literal (`15`, `true`, `/var/lib/popbridge`) is the schema's
    default; "required" keys are required in the schema."""
    node = _object(config_schema(), SECTIONS[section])
    required = set(node.get("required", []))
    checked = 0
    for key, default in _documented()[section].items():
        literal = re.fullmatch(r"`([^`]*)`(?: \(.*\))?", default)
        if default == "required":
            assert key in required, key
        elif literal and literal.group(1).startswith("data_dir/"):
            continue  # a default derived from data_dir: not a literal in the schema
        elif literal:
            prop = node["properties"][key]
            assert "default" in prop, f"{key}: the schema publishes no default"
            assert yaml.safe_load(literal.group(1)) == prop["default"], key
            checked += 1
        else:
            assert key not in required, key
    assert checked or section == "`webhooks.<name>.basic_auth`"


def test_webhook_target_defaults_are_the_config_defaults() -> None:
    """The Python API's WebhookTarget defaults are the config file's defaults (one story)."""
    import dataclasses

    from bridge.webhook import WebhookTarget

    defaults = {f.name: f.default for f in dataclasses.fields(WebhookTarget)}
    config = _object(config_schema(), ("webhooks", "*"))["properties"]
    for name in ("timeout", "max_attempts", "backoff_initial", "backoff_max", "breaker_cooldown"):
        assert defaults[name] == config[name]["default"], name
    assert defaults["breaker_threshold"] == config["breaker_failures"]["default"]
