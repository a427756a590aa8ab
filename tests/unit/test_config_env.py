"""Environment overrides: POPBRIDGE_<KEY>__<KEY>... on top of the YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.config import Config, apply_env_overrides
from bridge.errors import ConfigError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


def config_dict() -> dict[str, Any]:
    return {
        "webhooks": {
            "main": {"url": "https://example.com/hook", "secret": SECRET},
            "audit-log": {"url": "https://audit.test/", "secret": SECRET},
        },
        "mailboxes": [
            {"name": "support", "host": "pop.example.com", "username": "s",
             "password": "file-pw", "webhooks": ["main"]},
            {"name": "sales-eu.2", "host": "pop.example.com", "username": "t",
             "password": "file-pw", "webhooks": ["main"]},
        ],
    }  # fmt: skip


def load(env: dict[str, str]) -> Config:
    return Config.from_dict(config_dict(), env=env)


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(env)
    return info.value.problems


def test_top_level_and_nested_keys() -> None:
    """POPBRIDGE_DATA_DIR and POPBRIDGE_HTTP__LISTEN set data_dir and http.listen."""
    config = load({"POPBRIDGE_DATA_DIR": "/srv/bridge", "POPBRIDGE_HTTP__LISTEN": "0.0.0.0:9100",
                   "POPBRIDGE_LOG__LEVEL": "debug",
                   "POPBRIDGE_MAX_CONCURRENT_SESSIONS": "3"})  # fmt: skip
    assert config.data_dir == Path("/srv/bridge")
    assert config.http.listen == "0.0.0.0:9100"
    assert config.log.level == "debug"
    assert config.max_concurrent_sessions == 3


def test_mailbox_keys_by_name_including_punctuation() -> None:
    """A mailbox is chosen by its name in upper case, with - and . written as _."""
    config = load({
        "POPBRIDGE_MAILBOXES__SUPPORT__PASSWORD": "env-pw",
        "POPBRIDGE_MAILBOXES__SALES_EU_2__PORT": "1995",
        "POPBRIDGE_MAILBOXES__SALES_EU_2__TLS_VERIFY": "false",
    })  # fmt: skip
    support, sales = config.mailboxes
    assert support.password is not None
    assert support.password.get_secret_value() == "env-pw"
    assert sales.password is not None
    assert sales.password.get_secret_value() == "file-pw"
    assert sales.port == 1995
    assert sales.tls_verify is False


def test_webhook_keys_by_name() -> None:
    """POPBRIDGE_WEBHOOKS__AUDIT_LOG__SECRET sets the secret of webhook 'audit-log'."""
    config = load({"POPBRIDGE_WEBHOOKS__AUDIT_LOG__SECRET": OTHER_SECRET,
                   "POPBRIDGE_WEBHOOKS__MAIN__TIMEOUT": "5"})  # fmt: skip
    secret = config.webhooks["audit-log"].secret
    assert secret is not None
    assert secret.get_secret_value() == OTHER_SECRET
    assert config.webhooks["main"].timeout == 5


def test_list_of_names_is_comma_separated() -> None:
    """A list of webhook names is written comma-separated."""
    config = load({"POPBRIDGE_MAILBOXES__SUPPORT__WEBHOOKS": "main, audit-log"})
    assert config.mailboxes[0].webhooks == ["main", "audit-log"]


def test_setting_a_secret_drops_its_file_twin_and_vice_versa(tmp_path: Path) -> None:
    """An env password replaces the file's password_file; an env password_file its password."""
    (tmp_path / "pw").write_text("pw-from-file\n")
    data = config_dict()
    data["mailboxes"][0] = {**data["mailboxes"][0], "password_file": str(tmp_path / "pw")}
    del data["mailboxes"][0]["password"]
    config = Config.from_dict(data, env={"POPBRIDGE_MAILBOXES__SUPPORT__PASSWORD": "env-pw"})
    assert config.mailboxes[0].password is not None
    assert config.mailboxes[0].password.get_secret_value() == "env-pw"
    assert config.mailboxes[0].password_file is None
    config = load({"POPBRIDGE_MAILBOXES__SUPPORT__PASSWORD_FILE": str(tmp_path / "pw")})
    assert config.mailboxes[0].password is not None
    assert config.mailboxes[0].password.get_secret_value() == "pw-from-file"


def test_sections_missing_from_the_file_are_created() -> None:
    """POPBRIDGE_LOG__FORMAT works even when the file has no log section."""
    assert load({"POPBRIDGE_LOG__FORMAT": "json"}).log.format == "json"


def test_a_list_or_mapping_missing_from_the_file_is_not_invented() -> None:
    """Overriding inside mailboxes or webhooks needs them in the file; nothing is made up."""
    data = config_dict()
    del data["webhooks"]
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data, env={"POPBRIDGE_WEBHOOKS__MAIN__URL": "https://x.test/"})
    assert info.value.problems == ["POPBRIDGE_WEBHOOKS__MAIN__URL: webhooks is not in the file"]


def test_unrelated_prefixed_variables_are_ignored() -> None:
    """Variables whose first level is not a config key (POPBRIDGE_CORPUS) are not overrides."""
    config = load({"POPBRIDGE_CORPUS": "/some/dir", "POPBRIDGE_CONFIG": "/etc/x.yaml"})
    assert config.mailboxes[0].name == "support"


def test_env_values_are_not_interpolated() -> None:
    """An override value is taken literally: ${...} in it is not expanded."""
    config = load({"POPBRIDGE_MAILBOXES__SUPPORT__USERNAME": "${HOME}"})
    assert config.mailboxes[0].username == "${HOME}"


def test_invalid_override_value_names_the_variable() -> None:
    """A bad value from the environment is reported at its key path, naming the variable."""
    assert problems({"POPBRIDGE_MAILBOXES__SUPPORT__PORT": "nope"}) == [
        "mailboxes[0].port: Input should be a valid integer, unable to parse string as an "
        "integer (value from environment variable POPBRIDGE_MAILBOXES__SUPPORT__PORT)"
    ]


def test_unknown_key_from_environment_suggests_the_right_one() -> None:
    """A typo in a nested override is an unknown key with a suggestion and the variable."""
    assert problems({"POPBRIDGE_HTTP__LISTN": "x"}) == [
        "http.listn: unknown key; did you mean 'listen'? (value from environment variable "
        "POPBRIDGE_HTTP__LISTN)"
    ]


@pytest.mark.parametrize(
    ("var", "expected"),
    [
        (
            "POPBRIDGE_MAILBOXES__NOPE__PASSWORD",
            "no mailbox named like 'NOPE' in the file; mailboxes are addressed by name in upper "
            "case, e.g. POPBRIDGE_MAILBOXES__SUPPORT__PASSWORD_FILE",
        ),
        ("POPBRIDGE_WEBHOOKS__NOPE__URL", "no webhook named like 'NOPE' in the file"),
        ("POPBRIDGE_HTTP", "http is a mapping; set its keys one by one"),
        ("POPBRIDGE_MAILBOXES__SUPPORT", "mailboxes[0] is a mapping; set its keys one by one"),
        ("POPBRIDGE_WEBHOOKS__MAIN__HEADERS__X_KEY",
         "headers cannot be set from the environment; use ${VAR} in the file"),
        ("POPBRIDGE_HTTP____LISTEN", "empty level in the name (three or more underscores in a "
         "row?)"),
    ],
)  # fmt: skip
def test_override_that_cannot_apply_is_an_error(var: str, expected: str) -> None:
    """Overrides that match nothing, or a whole section, are errors naming the variable."""
    assert problems({var: "x"}) == [f"{var}: {expected}"]


def test_apply_env_overrides_reports_origins() -> None:
    """apply_env_overrides edits the raw mapping and records which variable set which key."""
    raw = config_dict()
    found, origins = apply_env_overrides(raw, {"POPBRIDGE_HTTP__LISTEN": ":1"})
    assert found == []
    assert raw["http"] == {"listen": ":1"}
    assert origins == {"http.listen": "POPBRIDGE_HTTP__LISTEN"}
