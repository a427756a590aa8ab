"""The config file: loading, defaults, secrets, interpolation and the shape of its errors."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bridge.config import Config, config_schema, format_loc, load_config, parse_listen
from bridge.errors import ConfigError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def minimal(**mailbox: Any) -> dict[str, Any]:
    """A small valid config as a dict; keyword arguments change the one mailbox."""
    box: dict[str, Any] = {
        "name": "support",
        "host": "pop.example.com",
        "username": "support@example.com",
        "password": "hunter2-pass",
        "webhooks": ["main"],
    }
    box.update(mailbox)
    return {
        "data_dir": "/var/lib/bridge",
        "webhooks": {"main": {"url": "https://example.com/hook", "secret": SECRET}},
        "mailboxes": [box],
    }


def problems_of(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data, env=env or {})
    return info.value.problems


ISSUE_EXAMPLE = """\
data_dir: /var/lib/bridge          # ledger and dead letters
http: {listen: "127.0.0.1:9808"}   # /metrics, /healthz, /readyz
webhooks:
  main:
    url: https://example.com/hook
    secret: ${WEBHOOK_SECRET}      # whsec_..., or secret_file
    timeout: 15
mailboxes:
  - name: support
    host: pop.example.com
    port: 995
    tls: implicit                  # implicit | starttls | none
    ca_file: CA_FILE
    username: support@example.com
    password_file: PASSWORD_FILE
    auth: auto                     # auto | user | apop | plain | login | xoauth2
    poll_interval: 60
    webhooks: [main]
"""


# --------------------------------------------------------------------------- loading


def test_issue_example_loads_with_every_public_name(tmp_path: Path) -> None:
    """The YAML from issue 6 is valid as written: its key names are the public interface."""
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "pw").write_text("s3cret-pw\n")
    text = ISSUE_EXAMPLE.replace("CA_FILE", str(tmp_path / "ca.pem")).replace(
        "PASSWORD_FILE", str(tmp_path / "pw")
    )
    config = load_config(write(tmp_path, text), env={"WEBHOOK_SECRET": SECRET})
    box = config.mailboxes[0]
    assert config.data_dir == Path("/var/lib/bridge")
    assert (config.http.host, config.http.port) == ("127.0.0.1", 9808)
    assert config.webhooks["main"].url == "https://example.com/hook"
    assert config.webhooks["main"].secret is not None
    assert config.webhooks["main"].secret.get_secret_value() == SECRET
    assert config.webhooks["main"].timeout == 15
    assert (box.name, box.host, box.port, box.tls, box.auth) == (
        "support", "pop.example.com", 995, "implicit", "auto"
    )  # fmt: skip
    assert box.ca_file == tmp_path / "ca.pem"
    assert box.password is not None
    assert box.password.get_secret_value() == "s3cret-pw"  # trailing newline stripped
    assert box.poll_interval == 60
    assert box.webhooks == ["main"]


def test_defaults_are_safe_and_documented_values() -> None:
    """Unset keys get the documented defaults: TLS on, verification on, no plain-text auth."""
    config = Config.from_dict(minimal(), env={})
    box = config.mailboxes[0]
    hook = config.webhooks["main"]
    assert (box.tls, box.port, box.tls_verify, box.allow_insecure_auth) == (
        "implicit", 995, True, False
    )  # fmt: skip
    assert config.http.listen == "127.0.0.1:9808"
    assert (config.max_concurrent_sessions, config.shutdown_grace) == (8, 25.0)
    assert (config.log.level, config.log.format) == ("info", "auto")
    assert (hook.timeout, hook.max_attempts, hook.backoff_initial, hook.backoff_max) == (
        15.0, 4, 0.5, 30.0
    )  # fmt: skip
    assert (hook.breaker_failures, hook.breaker_cooldown) == (5, 30.0)
    assert box.max_message_bytes == 50 * 1024 * 1024
    assert (box.oversize_policy, box.reject_policy) == ("park", "park")
    assert (box.session_max_messages, box.session_max_bytes, box.session_max_seconds) == (
        500, 512 * 1024 * 1024, 300.0
    )  # fmt: skip
    assert (box.delivery_concurrency, box.strict_order, box.include_raw) == (4, False, False)
    assert (box.connect_timeout, box.command_timeout) == (30.0, 60.0)
    assert box.max_attachment_bytes is None
    assert (box.login_backoff_auth, box.login_backoff_in_use) == (1800.0, 30.0)


@pytest.mark.parametrize(("tls", "port"), [("implicit", 995), ("starttls", 110), ("none", 110)])
def test_port_defaults_follow_tls_mode(tls: str, port: int) -> None:
    """Without an explicit port, implicit TLS uses 995 and the others 110."""
    config = Config.from_dict(minimal(tls=tls, allow_insecure_auth=True), env={})
    assert config.mailboxes[0].port == port


def test_explicit_port_wins_over_tls_default() -> None:
    """An explicit port is kept whatever the TLS mode."""
    assert Config.from_dict(minimal(tls="starttls", port=1110), env={}).mailboxes[0].port == 1110


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    """password_file, ca_file and data_dir may be relative to the file's directory."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text("pw-from-file")
    (tmp_path / "ca.pem").write_text("x")
    path = write(
        tmp_path,
        f"""\
        data_dir: state
        webhooks: {{main: {{url: "https://example.com/", secret: "{SECRET}"}}}}
        mailboxes:
          - {{name: a, host: h, username: u, password_file: secrets/pw, ca_file: ca.pem,
              webhooks: [main]}}
        """,
    )
    config = load_config(path, env={})
    assert config.data_dir == tmp_path / "state"
    assert config.mailboxes[0].ca_file == tmp_path / "ca.pem"
    assert config.mailboxes[0].password is not None
    assert config.mailboxes[0].password.get_secret_value() == "pw-from-file"


def test_mailbox_lookup_by_name() -> None:
    """Config.mailbox finds a mailbox by name and raises KeyError for an unknown one."""
    config = Config.from_dict(minimal(), env={})
    assert config.mailbox("support").host == "pop.example.com"
    with pytest.raises(KeyError):
        config.mailbox("nope")


# --------------------------------------------------------------------------- interpolation


def test_env_interpolation_in_nested_strings_and_lists() -> None:
    """${VAR} is replaced in every string value, inside mappings and lists."""
    data = minimal(host="${POP_HOST}", webhooks=["${TARGET}"])
    data["webhooks"]["main"]["url"] = "https://${HOOK_HOST}/in"
    config = Config.from_dict(data, env={"POP_HOST": "mx.test", "TARGET": "main",
                                         "HOOK_HOST": "hooks.test"})  # fmt: skip
    assert config.mailboxes[0].host == "mx.test"
    assert config.mailboxes[0].webhooks == ["main"]
    assert config.webhooks["main"].url == "https://hooks.test/in"


def test_interpolated_numbers_are_converted() -> None:
    """A number written as ${VAR} is validated as a number."""
    assert Config.from_dict(minimal(port="${P}"), env={"P": "1995"}).mailboxes[0].port == 1995


def test_missing_variable_names_key_path_and_variable() -> None:
    """A missing variable is an error naming where it is used and which variable it is."""
    data = minimal()
    data["webhooks"]["main"]["secret"] = "${WEBHOOK_SECRET}"
    assert problems_of(data) == [
        "webhooks.main.secret: environment variable WEBHOOK_SECRET is not set; "
        "export WEBHOOK_SECRET=... or write the value (or a *_file) in the file"
    ]


def test_double_dollar_escapes_interpolation() -> None:
    """$${X} is the literal text ${X}; no variable is looked up."""
    config = Config.from_dict(minimal(username="$${NOT_A_VAR}"), env={})
    assert config.mailboxes[0].username == "${NOT_A_VAR}"


def test_unterminated_and_malformed_references_are_errors() -> None:
    """'${' without '}' and ${bad name} are reported, with the key path."""
    problems = problems_of(minimal(username="${OPEN", host="${a b}"))
    assert problems == [
        "mailboxes[0].host: ${a b} is not a valid variable name",
        "mailboxes[0].username: unterminated '${' (write $${ for a literal ${)",
    ]


# --------------------------------------------------------------------------- secret files


def test_secret_files_are_read_for_every_secret(tmp_path: Path) -> None:
    """Every secret has a *_file twin whose content (trailing newline stripped) is used."""
    files = {}
    for name, content in [("pw", "pw1\r\n"), ("tok", "tok1\n"), ("hook", SECRET + "\n"),
                          ("bearer", "b-token\n"), ("basic", "basic-pw\n")]:  # fmt: skip
        files[name] = tmp_path / name
        files[name].write_text(content)
    data = minimal(password=None, password_file=str(files["pw"]), token_file=str(files["tok"]))
    del data["mailboxes"][0]["password"]
    data["webhooks"]["main"] = {"url": "https://example.com/", "secret_file": str(files["hook"]),
                                "bearer_token_file": str(files["bearer"])}  # fmt: skip
    data["webhooks"]["other"] = {
        "url": "https://example.com/",
        "secret": OTHER_SECRET,
        "basic_auth": {"username": "u", "password_file": str(files["basic"])},
    }
    config = Config.from_dict(data, env={})
    box, main, other = config.mailboxes[0], config.webhooks["main"], config.webhooks["other"]
    assert box.password is not None
    assert box.password.get_secret_value() == "pw1"
    assert box.token is not None
    assert box.token.get_secret_value() == "tok1"
    assert main.secret is not None
    assert main.secret.get_secret_value() == SECRET
    assert main.bearer_token is not None
    assert main.bearer_token.get_secret_value() == "b-token"
    assert other.basic_auth is not None
    assert other.basic_auth.password is not None
    assert other.basic_auth.password.get_secret_value() == "basic-pw"
    assert box.password_file is not None
    assert box.password_file.path == files["pw"]


def test_missing_secret_file_names_key_and_file(tmp_path: Path) -> None:
    """A missing *_file is reported at its key path with the file name."""
    data = minimal(password_file=str(tmp_path / "absent"))
    del data["mailboxes"][0]["password"]
    assert problems_of(data) == [f"mailboxes[0].password_file: cannot read {tmp_path}/absent: "
                                 "no such file; create it or fix the path"]  # fmt: skip


def test_unreadable_secret_file_is_an_error_without_content(tmp_path: Path) -> None:
    """A directory, or an empty file, is refused; the message never shows file content."""
    (tmp_path / "empty").write_text("\n")
    data = minimal(password_file=str(tmp_path), token_file=str(tmp_path / "empty"))
    del data["mailboxes"][0]["password"]
    assert problems_of(data) == [
        f"mailboxes[0].password_file: cannot read {tmp_path}: it is a directory",
        f"mailboxes[0].token_file: {tmp_path}/empty is empty",
    ]


def test_secret_file_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """A *_file that is a FIFO is an error, not a hang (it hung validate and run forever)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    data = minimal(password_file=str(fifo))
    del data["mailboxes"][0]["password"]
    (problem,) = problems_of(data)
    assert problem.startswith(f"mailboxes[0].password_file: cannot read {fifo}: not a regular")


def test_secret_and_its_file_together_is_an_error(tmp_path: Path) -> None:
    """Setting password and password_file at once is ambiguous and refused."""
    (tmp_path / "pw").write_text("x")
    assert problems_of(minimal(password_file=str(tmp_path / "pw"))) == [
        "mailboxes[0].password_file: set either password or password_file, not both"
    ]


def test_webhook_secret_content_of_file_is_checked_without_echo(tmp_path: Path) -> None:
    """A secret_file whose content is not whsec_ is refused; the content is not shown."""
    (tmp_path / "hook").write_text("not-a-real-secret-value\n")
    data = minimal()
    data["webhooks"]["main"] = {"url": "https://x.test/", "secret_file": str(tmp_path / "hook")}
    (problem,) = problems_of(data)
    assert problem.startswith("webhooks.main.secret_file: the content of ")
    assert "whsec_" in problem
    assert "not-a-real-secret-value" not in problem


# --------------------------------------------------------------------------- secrets stay hidden


def test_secrets_never_show_in_repr_str_or_dumps(tmp_path: Path) -> None:
    """repr, str, model_dump and model_dump_json never contain a secret value."""
    (tmp_path / "tok").write_text("token-from-file-xyz")
    data = minimal(password="pw-inline-xyz", token_file=str(tmp_path / "tok"))
    data["webhooks"]["main"].update(
        secrets=[OTHER_SECRET], headers={"X-Api-Key": "header-key-xyz"},
        basic_auth={"username": "u", "password": "basic-pw-xyz"},
    )  # fmt: skip
    config = Config.from_dict(data, env={})
    texts = [repr(config), str(config), str(config.model_dump()),
             config.model_dump_json(), json.dumps(config.model_dump(mode="json"))]  # fmt: skip
    for text in texts:
        for secret in ("pw-inline-xyz", "token-from-file-xyz", SECRET, OTHER_SECRET,
                       "header-key-xyz", "basic-pw-xyz", SECRET[6:]):  # fmt: skip
            assert secret not in text
    assert config.webhooks["main"].headers["X-Api-Key"].get_secret_value() == "header-key-xyz"


def test_invalid_webhook_secret_is_never_echoed() -> None:
    """A malformed secret is an error that names the key but never contains the value."""
    data = minimal()
    data["webhooks"]["main"]["secret"] = "whsec_this is not base64!!"
    data["webhooks"]["main"]["secrets"] = [SECRET, "plain-secret-value"]
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data, env={})
    assert [p.split(":")[0] for p in info.value.problems] == [
        "webhooks.main.secret", "webhooks.main.secrets[1]"
    ]  # fmt: skip
    everything = str(info.value) + repr(info.value) + " ".join(info.value.problems)
    assert "this is not base64" not in everything
    assert "plain-secret-value" not in everything
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_signing_secrets_lists_primary_first_without_duplicates() -> None:
    """signing_secrets() gives every configured secret once, the primary one first."""
    data = minimal()
    data["webhooks"]["main"]["secrets"] = [OTHER_SECRET, SECRET]
    hook = Config.from_dict(data, env={}).webhooks["main"]
    assert [s.get_secret_value() for s in hook.signing_secrets()] == [SECRET, OTHER_SECRET]


def test_a_webhook_needs_a_signing_secret() -> None:
    """A target without any secret is refused: every request is signed."""
    data = minimal()
    del data["webhooks"]["main"]["secret"]
    (problem,) = problems_of(data)
    assert problem.startswith("webhooks.main.secret: a signing secret is required")


def test_secrets_list_alone_is_enough() -> None:
    """secrets: [...] without secret is a valid way to configure signing."""
    data = minimal()
    data["webhooks"]["main"] = {"url": "https://x.test/", "secrets": [SECRET, OTHER_SECRET]}
    hook = Config.from_dict(data, env={}).webhooks["main"]
    assert len(hook.signing_secrets()) == 2


# --------------------------------------------------------------------------- rules


def test_plain_text_credentials_need_explicit_opt_in() -> None:
    """tls: none with a password is refused unless allow_insecure_auth: true; the fix is named."""
    (problem,) = problems_of(minimal(tls="none"))
    assert problem.startswith("mailboxes[0].tls: ")
    assert "allow_insecure_auth: true" in problem
    config = Config.from_dict(minimal(tls="none", allow_insecure_auth=True), env={})
    assert config.mailboxes[0].tls == "none"


@pytest.mark.parametrize(
    ("auth", "remove", "expected"),
    [
        ("xoauth2", None, "mailboxes[0].token: auth: xoauth2 needs token, token_file or oauth2"),
        (
            "oauthbearer",
            None,
            "mailboxes[0].token: auth: oauthbearer needs token, token_file or oauth2",
        ),
        ("apop", "password", "mailboxes[0].password: auth: apop needs password or password_file"),
    ],
)
def test_auth_method_needs_matching_credentials(auth: str, remove: str | None,
                                                expected: str) -> None:  # fmt: skip
    """Each auth method demands the credential it uses."""
    data = minimal(auth=auth)
    if remove:
        del data["mailboxes"][0][remove]
        data["mailboxes"][0]["token"] = "tok"
    assert problems_of(data) == [expected]


def test_auto_auth_needs_some_credential() -> None:
    """auth: auto without password or token is refused with a hint."""
    data = minimal()
    del data["mailboxes"][0]["password"]
    (problem,) = problems_of(data)
    assert problem.startswith("mailboxes[0].password: set password_file")


def test_mailbox_names_must_be_unique_and_label_safe() -> None:
    """Names are unique and restricted to [A-Za-z0-9_.-] (they are metric labels)."""
    data = minimal()
    data["mailboxes"].append(dict(data["mailboxes"][0]))
    assert problems_of(data) == ["mailboxes[1].name: 'support' is already used by mailboxes[0]"]
    (problem,) = problems_of(minimal(name="sales team"))
    assert problem.startswith("mailboxes[0].name: String should match pattern")


def test_webhook_names_must_be_label_safe() -> None:
    """A webhook name with a space is refused at its path."""
    data = minimal(webhooks=["main"])
    data["webhooks"]["bad name"] = {"url": "https://x.test/", "secret": SECRET}
    (problem,) = problems_of(data)
    assert problem.startswith("webhooks.bad name: webhook names may only use")


def test_undefined_webhook_reference_names_list_position_and_suggests() -> None:
    """Every mailbox webhooks entry must name a defined target; the error says which entry."""
    data = minimal(webhooks=["main", "mian", "zzz"])
    assert problems_of(data) == [
        "mailboxes[0].webhooks[1]: no webhook named 'mian'; did you mean 'main'?",
        "mailboxes[0].webhooks[2]: no webhook named 'zzz' (defined: main)",
    ]


def test_duplicate_webhook_reference_is_an_error() -> None:
    """Posting the same message twice to one target is refused."""
    assert problems_of(minimal(webhooks=["main", "main"])) == [
        "mailboxes[0].webhooks[1]: 'main' is listed twice"
    ]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("port", 0, "mailboxes[0].port: Input should be greater than or equal to 1"),
        ("port", "x", "mailboxes[0].port: Input should be a valid integer, unable to parse "
         "string as an integer"),
        ("tls", "ssl", "mailboxes[0].tls: Input should be 'implicit', 'starttls' or 'none'"),
        ("auth", "cram", "mailboxes[0].auth: Input should be 'auto', 'user', 'apop', 'plain', "
         "'login', 'xoauth2' or 'oauthbearer'"),
        ("poll_interval", 0, "mailboxes[0].poll_interval: Input should be greater than or "
         "equal to 1"),
        ("host", "pop.example.com/x", "mailboxes[0].host: must be a host name or address, "
         "without spaces, scheme or path"),
        ("oversize_policy", "drop", "mailboxes[0].oversize_policy: Input should be 'park' or "
         "'headers_only'"),
        ("webhooks", [], "mailboxes[0].webhooks: List should have at least 1 item after "
         "validation, not 0"),
    ],
)  # fmt: skip
def test_bad_mailbox_values_name_the_key_path(key: str, value: Any, expected: str) -> None:
    """Each wrong value gives one line naming mailboxes[i].key and what is expected."""
    assert problems_of(minimal(**{key: value})) == [expected]


def test_bad_webhook_values_name_the_key_path() -> None:
    """Wrong webhook settings are reported under webhooks.<name>.<key>."""
    data = minimal()
    data["webhooks"]["main"].update(
        url="ftp://x.test/", timeout=0, backoff_initial=5, backoff_max=1,
        headers={"Content-Type": "text/plain", "Bad Header": "v", "X-Ok": "a\nb"},
    )  # fmt: skip
    assert problems_of(data) == [
        "webhooks.main.url: must be an http:// or https:// URL",
        "webhooks.main.timeout: Input should be greater than 0",
        "webhooks.main.headers.Content-Type: is set by the bridge and cannot be overridden",
        "webhooks.main.headers.Bad Header: is not a valid HTTP header name",
        "webhooks.main.headers.X-Ok: value contains CR, LF or NUL",
    ]


def test_url_credentials_and_auth_conflicts_are_refused() -> None:
    """Credentials in the URL, Authorization in headers and bearer+basic are all refused."""
    data = minimal()
    data["webhooks"]["main"]["url"] = "https://user:pw@x.test/"
    data["webhooks"]["main"]["headers"] = {"authorization": "Bearer x"}
    assert problems_of(data) == [
        "webhooks.main.url: must not contain credentials; use basic_auth or bearer_token",
        "webhooks.main.headers.authorization: set bearer_token or basic_auth instead",
    ]
    data = minimal()
    data["webhooks"]["main"].update(bearer_token="t", basic_auth={"username": "u",
                                                                  "password": "p"})  # fmt: skip
    assert problems_of(data) == [
        "webhooks.main.basic_auth: set either bearer_token or basic_auth, not both"
    ]


def test_client_key_needs_client_cert_and_files_must_exist(tmp_path: Path) -> None:
    """ca_file/client_cert/client_key must exist; a key without a certificate is refused."""
    (tmp_path / "key.pem").write_text("k")
    assert problems_of(minimal(ca_file=str(tmp_path / "nope.pem"))) == [
        f"mailboxes[0].ca_file: {tmp_path}/nope.pem does not exist or is not a file"
    ]
    assert problems_of(minimal(client_key=str(tmp_path / "key.pem"))) == [
        "mailboxes[0].client_key: needs client_cert"
    ]


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("127.0.0.1:9808", "127.0.0.1", 9808), ("[::1]:0", "::1", 0), (":9808", "", 9808)],
)
def test_listen_address_parsing(listen: str, host: str, port: int) -> None:
    """http.listen accepts host:port, [v6]:port and :port (all interfaces)."""
    assert parse_listen(listen) == (host, port)


@pytest.mark.parametrize("listen", ["9808", "localhost", "::1:9808", "h:70000", "h:-1"])
def test_bad_listen_address_is_refused(listen: str) -> None:
    """Malformed http.listen values are errors at http.listen."""
    data = minimal()
    data["http"] = {"listen": listen}
    (problem,) = problems_of(data)
    assert problem.startswith("http.listen: ")


def test_mailboxes_and_webhooks_are_required() -> None:
    """An empty config names both missing top-level keys."""
    assert problems_of({}) == [
        "webhooks: required key is missing",
        "mailboxes: required key is missing",
    ]


# --------------------------------------------------------------------------- unknown keys


def test_unknown_keys_are_rejected_with_a_suggestion() -> None:
    """Typos are errors at their path, with the closest valid key suggested."""
    data = minimal(pasword="x", poll_intervall=5)
    data["http"] = {"listn": "x"}
    data["webhooks"]["main"]["timout"] = 3
    data["dat_dir"] = "/x"
    assert problems_of(data) == [
        "http.listn: unknown key; did you mean 'listen'?",
        "webhooks.main.timout: unknown key; did you mean 'timeout'?",
        "mailboxes[0].pasword: unknown key; did you mean 'password'?",
        "mailboxes[0].poll_intervall: unknown key; did you mean 'poll_interval'?",
        "dat_dir: unknown key; did you mean 'data_dir'?",
    ]


def test_unknown_key_without_close_match_has_no_suggestion() -> None:
    """An unrelated unknown key is reported plainly."""
    assert problems_of(minimal(zzzzzz=1)) == ["mailboxes[0].zzzzzz: unknown key"]


# --------------------------------------------------------------------------- file-level errors


def test_error_message_names_the_file_and_lists_every_problem(tmp_path: Path) -> None:
    """str(ConfigError) names the file, counts the problems and lists one per line."""
    path = write(
        tmp_path,
        f"""\
        webhooks: {{main: {{url: "https://x.test/", secret: "{SECRET}"}}}}
        mailboxes:
          - {{name: a, host: h, username: u, password: p, webhooks: [main], port: 0}}
          - {{name: b, host: h, username: u, password: p, webhooks: [main], tls: plain}}
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems == [
        "mailboxes[0].port: Input should be greater than or equal to 1",
        "mailboxes[1].tls: Input should be 'implicit', 'starttls' or 'none'",
    ]
    assert str(info.value).splitlines() == [
        f"{path}: 2 problems in the configuration:",
        "  mailboxes[0].port: Input should be greater than or equal to 1",
        "  mailboxes[1].tls: Input should be 'implicit', 'starttls' or 'none'",
    ]


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    """A YAML syntax error says where (1-based line and column) and names the file."""
    path = write(tmp_path, "webhooks:\n  main: {url: x\nmailboxes: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert problem == (
        "line 3, column 10: YAML syntax error: "
        "an inline mapping { ... } is not closed, or lacks a comma"
    )
    assert str(info.value).startswith(f"{path}: line 3, column 10: ")


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    """A key given twice in one mapping is refused instead of silently keeping the last."""
    path = write(tmp_path, "data_dir: /a\ndata_dir: /b\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems == [
        "line 2, column 1: YAML syntax error: "
        "key 'data_dir' is given twice in this mapping (first on line 1): keep one"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "the file is empty"), ("- a\n- b\n", "the top level must be a mapping")],
)
def test_empty_or_non_mapping_file_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    """An empty file or a top-level list cannot be a config."""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert info.value.problems[0].startswith(expected)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist raises ConfigError naming it."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml", env={})
    assert str(info.value) == f"{tmp_path}/nope.yaml: cannot read the config file: " \
        "No such file or directory"  # fmt: skip


def test_load_config_uses_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without env=, interpolation reads the process environment."""
    monkeypatch.setenv("TEST_POP_HOST", "from-environ.test")
    path = write(
        tmp_path,
        f"""\
        webhooks: {{main: {{url: "https://x.test/", secret: "{SECRET}"}}}}
        mailboxes: [{{name: a, host: "${{TEST_POP_HOST}}", username: u, password: p,
                      webhooks: [main]}}]
        """,
    )
    assert load_config(path).mailboxes[0].host == "from-environ.test"


# --------------------------------------------------------------------------- schema and helpers


def test_config_schema_describes_every_key_and_marks_secrets() -> None:
    """config_schema() is JSON Schema with each public key; secrets are write-only."""
    schema = config_schema()
    json.dumps(schema)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["properties"]) == {
        "data_dir", "http", "log", "metrics", "max_concurrent_sessions", "shutdown_grace",
        "webhooks", "oauth2", "mailboxes", "attachments",
    }  # fmt: skip
    mailbox = schema["$defs"]["MailboxConfig"]["properties"]
    for key in ("name", "host", "port", "tls", "ca_file", "username", "password_file", "auth",
                "poll_interval", "webhooks", "token_file", "allow_insecure_auth"):  # fmt: skip
        assert key in mailbox
    assert mailbox["password"]["anyOf"][0]["writeOnly"] is True
    assert mailbox["tls"]["enum"] == ["implicit", "starttls", "none"]
    assert schema["$defs"]["MailboxConfig"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        (("mailboxes", 0, "port"), "mailboxes[0].port"),
        (("webhooks", "main", "secrets", 1), "webhooks.main.secrets[1]"),
        (("webhooks", "v2.hook", "url"), "webhooks['v2.hook'].url"),
        ((), "(top level)"),
    ],
)
def test_format_loc_renders_pydantic_locations(loc: tuple[str | int, ...], text: str) -> None:
    """Pydantic loc tuples become the documented key-path form."""
    assert format_loc(loc) == text


def test_config_is_immutable() -> None:
    """A loaded config cannot be changed by accident."""
    config = Config.from_dict(minimal(), env={})
    with pytest.raises(ValueError, match="frozen"):
        config.mailboxes[0].port = 1  # type: ignore[misc]


def test_metrics_mailbox_detail_defaults_to_essential_and_rejects_typos() -> None:
    """metrics.mailbox_detail is essential unless set; full is accepted; anything else is
    an error naming the key."""
    assert Config.from_dict(minimal(), env={}).metrics.mailbox_detail == "essential"
    full = Config.from_dict({**minimal(), "metrics": {"mailbox_detail": "full"}}, env={})
    assert full.metrics.mailbox_detail == "full"
    with pytest.raises(ConfigError, match=r"metrics\.mailbox_detail"):
        Config.from_dict({**minimal(), "metrics": {"mailbox_detail": "all"}}, env={})


def test_keep_defaults_to_deleting_and_keep_days_loads_with_keep() -> None:
    """Without keep a delivered message is deleted (the default); keep_days is read with keep."""
    box = Config.from_dict(minimal(), env={}).mailboxes[0]
    assert (box.keep, box.keep_days) == (False, None)
    box = Config.from_dict(minimal(keep=True, keep_days="${DAYS}"), env={"DAYS": "30"}).mailboxes[0]
    assert (box.keep, box.keep_days) == (True, 30)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"keep_days": 30}, "mailboxes[0].keep_days: only applies with keep: true (delivered "
         "messages are deleted at once without it); set keep: true, or remove keep_days"),
        ({"keep": False, "keep_days": 30}, "mailboxes[0].keep_days: only applies with keep: "
         "true (delivered messages are deleted at once without it); set keep: true, or remove "
         "keep_days"),
        ({"keep": True, "keep_days": 0}, "mailboxes[0].keep_days: must be a whole number of "
         "days, 1 or more (got 0); to delete delivered messages at once, remove keep and "
         "keep_days"),
        ({"keep": True, "keep_days": -3}, "mailboxes[0].keep_days: must be a whole number of "
         "days, 1 or more (got -3); to delete delivered messages at once, remove keep and "
         "keep_days"),
        ({"keep": True, "keep_days": True}, "mailboxes[0].keep_days: must be a number of days "
         "(keep_days: 30), not true or false"),
        ({"keep": True, "keep_days": 1.5}, "mailboxes[0].keep_days: Input should be a valid "
         "integer, got a number with a fractional part"),
        ({"keep": "sometimes"}, "mailboxes[0].keep: Input should be a valid boolean, unable to "
         "interpret input"),
    ],
)  # fmt: skip
def test_bad_keep_settings_say_what_to_do(settings: dict[str, Any], expected: str) -> None:
    """keep_days without keep, or not a positive whole number of days, is one line naming the
    key and the fix."""
    assert problems_of(minimal(**settings)) == [expected]


def test_keep_keys_are_in_the_config_schema() -> None:
    """`popbridge schema config` describes keep (boolean) and keep_days (integer or null)."""
    box = config_schema()["$defs"]["MailboxConfig"]["properties"]
    assert box["keep"]["type"] == "boolean"
    assert box["keep"]["default"] is False
    assert {s["type"] for s in box["keep_days"]["anyOf"]} == {"integer", "null"}
