"""The config file's YAML mistakes and shape mistakes: where, and a hint in plain words."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bridge.config import load_config
from bridge.errors import ConfigError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HEAD = f"""\
data_dir: /tmp/x
webhooks:
  main:
    url: https://example.com/hook
    secret: {SECRET}
"""

MAILBOX = "mailboxes:\n  - {name: a, host: h, username: u, password: p, webhooks: [main]}\n"


def problem_for(tmp_path: Path, text: str) -> tuple[str, str]:
    """The one problem of a config file, and the whole message."""
    path = tmp_path / "config.yaml"
    path.write_text(HEAD + textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert str(info.value).startswith(f"{path}: ")
    return problem, str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'mailboxes:\n  - name: a\n    password: "hunter2 secret\n    webhooks: [main]\n',
            "line 8, column 15: YAML syntax error: this quoted value is never closed: "
            "add the closing quote",
        ),
        (
            "mailboxes:\n  - name: a\n\thost: h\n",
            "line 8, column 1: YAML syntax error: a tab character: YAML indents with spaces only",
        ),
        (
            "mailboxes:\n  - name: a\n    host: h\n     username: u\n",
            "line 9, column 14: YAML syntax error: a ':' where no key may start: check this "
            "line's indentation, or put the value in quotes if it contains ': '",
        ),
        (
            "mailboxes:\n  - name: a\n    host: h\n  username: u\n",
            "line 9, column 3: YAML syntax error: the indentation of this line does not match "
            "the lines above it (indent with spaces)",
        ),
        (
            "mailboxes: [a, b\n",
            "line 7, column 1: YAML syntax error: an inline list [ ... ] is not closed, "
            "or lacks a comma",
        ),
        (
            "mailboxes:\n  - name: a\n    password: @secret\n",
            "line 8, column 15: YAML syntax error: a value cannot start with this character "
            "(` @ % or similar): put the value in quotes",
        ),
        (
            "mailboxes:\n  - name: a\n    password: *secret\n",
            "line 8, column 15: YAML syntax error: a value starting with '*' refers to an "
            "undefined anchor: put the value in quotes",
        ),
    ],
    ids=[
        "unclosed-quote",
        "tab",
        "over-indented",
        "under-indented",
        "unclosed-list",
        "at-sign",
        "star",
    ],
)
def test_yaml_syntax_error_names_the_place_and_gives_a_hint(
    tmp_path: Path, text: str, expected: str
) -> None:
    """A YAML mistake is reported as file, line, column and a hint, not PyYAML's own words."""
    problem, message = problem_for(tmp_path, text)
    assert problem == expected
    for pyyaml_words in ("while scanning", "mapping values", "expected <block end>", "found"):
        assert pyyaml_words not in message


def test_yaml_error_never_quotes_the_broken_line(tmp_path: Path) -> None:
    """An unclosed quote in a password line must not put the password in the error."""
    _, message = problem_for(tmp_path, 'mailboxes:\n  - password: "hunter2 secret\n')
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "mailboxes:\n  name: a\n  host: h\n  username: u\n  password: p\n  webhooks: [main]\n",
            "mailboxes: must be a list (one '- ' item per line), not a mapping",
        ),
        (
            "mailboxes:\n  - name: a\n    host: h\n    username: u\n    password: p\n"
            "    webhooks: {main: 1}\n",
            "mailboxes[0].webhooks: must be a list (one '- ' item per line), not a mapping",
        ),
        (
            "mailboxes:\n  - support\n",
            "mailboxes[0]: must be a mapping ('key: value' lines), not text",
        ),
        (MAILBOX + "http: [a]\n", "http: must be a mapping ('key: value' lines), not a list"),
    ],
)
def test_wrong_shape_says_list_or_mapping_without_class_names(
    tmp_path: Path, text: str, expected: str
) -> None:
    """A mapping where a list is expected (and the reverse) is said in YAML's words."""
    problem, message = problem_for(tmp_path, text)
    assert problem == expected
    assert "Config" not in message
    assert "instance of" not in message
