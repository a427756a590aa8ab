"""The configuration: one YAML file, validated by pydantic.

Loading runs four steps, in this order:

1. parse the YAML (``yaml.safe_load`` semantics; duplicate keys are an error);
2. ``${VAR}`` interpolation in every string value (``$${`` writes a literal ``${``);
3. environment overrides: ``POPBRIDGE_<KEY>[__<KEY>...]`` (see :func:`apply_env_overrides`);
4. validation, which also reads every ``*_file`` secret and checks every reference.

Every problem becomes one line ``key.path: what is wrong`` in :attr:`ConfigError.problems`.
Secrets are :class:`pydantic.SecretStr`: ``repr``, ``str`` and ``model_dump`` never show
them, and error messages never contain a value. After validation the effective secret is
always in the plain field (``password``, ``token``, ``secret``, ``bearer_token``), whether it
came from the file, the environment or a ``*_file``. Every loaded config registers its
secrets with :mod:`bridge.redact`, so every sink scrubs them from then on.

The package, from the bottom up: :mod:`~bridge.config.fields` (constants, field types, the
base model), the sections (:mod:`~bridge.config.service`, :mod:`~bridge.config.webhook`,
:mod:`~bridge.config.mailbox`), :mod:`~bridge.config.schema` (walking declared types),
:mod:`~bridge.config.env` (interpolation, overrides), :mod:`~bridge.config.loading`
(validation and problem lines) and :mod:`~bridge.config.root` (:class:`Config` and the
functions bound to it). Import from ``bridge.config``; the modules are its layout, not its API.
"""

from bridge.config.env import interpolate
from bridge.config.fields import (
    ENV_PREFIX,
    MIB,
    NAME_PATTERN,
    SecretFile,
    format_loc,
    parse_listen,
    read_secret_text,
)
from bridge.config.mailbox import AuthMethod, MailboxConfig, OAuth2Config, TlsMode
from bridge.config.root import Config, apply_env_overrides, config_schema, load_config
from bridge.config.service import AttachmentsConfig, HttpConfig, LogConfig, MetricsConfig
from bridge.config.webhook import BasicAuthConfig, WebhookConfig

__all__ = [
    "ENV_PREFIX",
    "MIB",
    "NAME_PATTERN",
    "AttachmentsConfig",
    "AuthMethod",
    "BasicAuthConfig",
    "Config",
    "HttpConfig",
    "LogConfig",
    "MailboxConfig",
    "MetricsConfig",
    "OAuth2Config",
    "SecretFile",
    "TlsMode",
    "WebhookConfig",
    "apply_env_overrides",
    "config_schema",
    "format_loc",
    "interpolate",
    "load_config",
    "parse_listen",
    "read_secret_text",
]
