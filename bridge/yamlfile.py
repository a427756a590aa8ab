"""Parse the config file's YAML, and say what is wrong with it the way a person would.

PyYAML's own messages (``mapping values are not allowed here``, ``expected <block end>,
but found '-'``) describe its parser, not the mistake. :func:`parse_yaml` keeps only the
place (1-based line and column) and puts a short hint in their stead. A hint never quotes
the text of the file: a broken line may hold a password.
"""

from __future__ import annotations

from typing import Any

import yaml

from bridge.errors import ConfigError

__all__ = ["parse_yaml", "yaml_hint"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one silently."""


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one mapping (``first`` is where it was given first)."""

    def __init__(self, key: object, first: yaml.Mark, again: yaml.Mark) -> None:
        super().__init__(None, None, f"found duplicate key {key!r}", again)
        self.key = key
        self.first = first


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    where: dict[Any, yaml.Mark] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key in mapping:
            raise _DuplicateKeyError(key, where[key], key_node.start_mark)
        mapping[key] = loader.construct_object(value_node)
        where[key] = key_node.start_mark
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_INDENT = "the indentation of this line does not match the lines above it (indent with spaces)"

# (words in PyYAML's problem, words in its context or "", our hint, point at the context?)
_HINTS: tuple[tuple[str, str, str, bool], ...] = (
    ("found character '\\t'", "", "a tab character: YAML indents with spaces only", False),
    ("tab character", "", "a tab character: YAML indents with spaces only", False),
    (
        "end of stream",
        "quoted scalar",
        "this quoted value is never closed: add the closing quote",
        True,
    ),
    ("end of stream", "", "the file ends in the middle of a value (an unclosed [ or {?)", False),
    (
        "found unknown escape character",
        "",
        "an unknown backslash escape in a double-quoted value: use single quotes, "
        "or write \\\\ for a backslash",
        False,
    ),
    (
        "mapping values are not allowed here",
        "",
        "a ':' where no key may start: check this line's indentation, "
        "or put the value in quotes if it contains ': '",
        False,
    ),
    (
        "could not find expected ':'",
        "",
        "a line without 'key: value' inside a mapping: add the ': ', or fix the indentation",
        True,
    ),
    ("expected ',' or '}'", "", "an inline mapping { ... } is not closed, or lacks a comma", False),
    ("expected ',' or ']'", "", "an inline list [ ... ] is not closed, or lacks a comma", False),
    (
        "did not find expected '-' indicator",
        "",
        "this list item (- ...) is not indented like the items above it",
        False,
    ),
    ("did not find expected key", "", _INDENT, False),
    ("expected <block end>", "", _INDENT, False),
    (
        "found undefined alias",
        "",
        "a value starting with '*' refers to an undefined anchor: put the value in quotes",
        False,
    ),
    (
        "could not determine a constructor for the tag",
        "",
        "a value starting with '!' is read as a YAML tag: put the value in quotes",
        False,
    ),
    (
        "found undefined tag handle",
        "",
        "a value starting with '!' is read as a YAML tag: put the value in quotes",
        False,
    ),
    (
        "that cannot start any token",
        "",
        "a value cannot start with this character (` @ % or similar): put the value in quotes",
        False,
    ),
    (
        "expected a comment or a line break",
        "",
        "text after a quoted value: put the whole value in quotes",
        False,
    ),
    ("expected the node content", "", "a value is missing or malformed here", False),
)


def yaml_hint(exc: yaml.MarkedYAMLError) -> tuple[yaml.Mark | None, str]:
    """Where a YAML error is (the most useful mark) and a short hint about it."""
    if isinstance(exc, _DuplicateKeyError):
        return exc.problem_mark, (
            f"key {exc.key!r} is given twice in this mapping "
            f"(first on line {exc.first.line + 1}): keep one"
        )
    problem = exc.problem or ""
    context = exc.context or ""
    for words, context_words, hint, at_context in _HINTS:
        if words in problem and context_words in context:
            mark = exc.context_mark if at_context and exc.context_mark else exc.problem_mark
            return mark, hint
    return exc.problem_mark or exc.context_mark, (
        "not valid YAML here: check the indentation and the quoting of this line and the one above"
    )


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """The config file's top-level mapping; :class:`ConfigError` says where and what is wrong."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark, hint = yaml_hint(exc)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = f"{where}YAML syntax error: {hint}"
        raise ConfigError(f"{source}: {problem}", [problem]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        problem = (
            f"line {line}: not a text character (code {exc.character!r}): "
            "the file must be UTF-8 text without control characters"
        )
        raise ConfigError(f"{source}: {problem}", [problem]) from None
    except yaml.YAMLError:
        problem = "YAML syntax error: the file is not valid YAML"
        raise ConfigError(f"{source}: {problem}", [problem]) from None
    if data is None:
        raise ConfigError(f"{source}: the file is empty", ["the file is empty"])
    if not isinstance(data, dict):
        problem = "the top level must be a mapping of keys (data_dir, webhooks, mailboxes, ...)"
        raise ConfigError(f"{source}: {problem}", [problem])
    return data
