"""The ``attachments`` section, ``on_too_large`` and ``max_payload_bytes``, and what the app
builds from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.app import App, mailbox_policy, webhook_target
from bridge.attachments import DirStore, S3Store
from bridge.config import Config
from bridge.errors import ConfigError

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
S3_SECRET = "s3-secret-key-value-never-shown"


def config(
    attachments: dict[str, Any] | None = None, data_dir: str = "/var/lib/bridge", **hook: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "data_dir": data_dir,
        "webhooks": {"main": {"url": "https://example.com/hook", "secret": SECRET, **hook}},
        "mailboxes": [
            {
                "name": "support",
                "host": "pop.example.com",
                "username": "u",
                "password": "p",
                "webhooks": ["main"],
                "max_attachment_bytes": 1000,
            }
        ],
    }
    if attachments is not None:
        data["attachments"] = attachments
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data, env={})
    return info.value.problems


def test_default_too_large_policy_is_park_without_a_store_and_reference_with_one() -> None:
    """No store: a 413 parks; a store: a 413 sends by reference. Both overridable."""
    plain = Config.from_dict(config(), env={})
    assert plain.attachments is None
    assert webhook_target("main", plain.webhooks["main"]).on_too_large == "park"
    stored = Config.from_dict(config({"store": "dir"}), env={})
    assert webhook_target("main", stored.webhooks["main"], store=True).on_too_large == "reference"
    rejecting = Config.from_dict(config({"store": "dir"}, on_too_large="reject"), env={})
    assert webhook_target("main", rejecting.webhooks["main"], store=True).on_too_large == "reject"


def test_reference_without_a_store_is_a_config_error() -> None:
    """on_too_large: reference with no attachments store names the key and the way out."""
    assert problems(config(on_too_large="reference")) == [
        "webhooks.main.on_too_large: reference needs an attachments store (attachments: "
        "{store: dir} or s3); without one use park or reject"
    ]


def test_max_payload_bytes_reaches_the_target_and_has_a_floor() -> None:
    """max_payload_bytes is passed to the webhook target; below 1024 is refused."""
    cfg = Config.from_dict(config(max_payload_bytes=5_000_000), env={})
    assert webhook_target("main", cfg.webhooks["main"]).max_payload_bytes == 5_000_000
    assert problems(config(max_payload_bytes=10)) == [
        "webhooks.main.max_payload_bytes: Input should be greater than or equal to 1024"
    ]


def test_store_keeps_attachment_contents_for_the_claim_check() -> None:
    """With a store, the payload builder keeps contents; max_attachment_bytes picks what the
    claim check stores. Without one it omits them as before."""
    cfg = Config.from_dict(config(), env={})
    assert mailbox_policy(cfg.mailboxes[0]).payload_options.max_attachment_bytes == 1000
    policy = mailbox_policy(cfg.mailboxes[0], store=True)
    assert policy.payload_options.max_attachment_bytes is None


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"store": "s3"}, ["attachments.bucket: store: s3 needs a bucket"]),
        (
            {"store": "dir", "bucket": "bkt"},
            ["attachments.bucket: is an s3 setting; this store is dir"],
        ),
        (
            {"store": "s3", "bucket": "bkt", "path": "/x"},
            ["attachments.path: is a dir setting; this store is s3"],
        ),
        (
            {"store": "s3", "bucket": "bkt", "access_key_id": "AKIA"},
            [
                "attachments.access_key_id: set access_key_id and secret_access_key (or its "
                "_file) together, or neither to use the default AWS credential chain"
            ],
        ),
        (
            {"store": "s3", "bucket": "bkt", "url_expiry": 8 * 86400},
            ["attachments.url_expiry: Input should be less than or equal to 604800"],
        ),
        (
            {"store": "dir", "base_url": "ftp://x"},
            ["attachments.base_url: must be an absolute http:// or https:// URL"],
        ),
        ({"store": "nfs"}, ["attachments.store: Input should be 'dir' or 's3'"]),
        ({"store": "dir", "retention": "soon"}, None),
    ],
)
def test_attachments_section_errors_name_the_key(
    section: dict[str, Any], expected: list[str] | None
) -> None:
    """Each wrong attachments setting is one problem at its own key path."""
    found = problems(config(section))
    if expected is None:
        assert len(found) == 1
        assert found[0].startswith("attachments.retention:")
        assert "s, m, h, d or w" in found[0]
    else:
        assert found == expected


def test_s3_secret_from_a_file_is_never_shown(tmp_path: Path) -> None:
    """secret_access_key_file is read at load; repr, dumps and errors never hold the value."""
    secret_file = tmp_path / "s3-secret"
    secret_file.write_text(S3_SECRET + "\n")
    section = {
        "store": "s3",
        "bucket": "mail",
        "access_key_id": "popbridge",
        "secret_access_key_file": str(secret_file),
        "retention": "30d",
    }
    cfg = Config.from_dict(config(section), env={})
    assert cfg.attachments is not None
    assert cfg.attachments.secret_access_key is not None
    assert cfg.attachments.secret_access_key.get_secret_value() == S3_SECRET
    assert cfg.attachments.retention == 30 * 86400
    assert S3_SECRET not in repr(cfg) + str(cfg.model_dump())
    bad = problems(config({**section, "secret_access_key": S3_SECRET}))
    assert bad == [
        "attachments.secret_access_key_file: set either secret_access_key or "
        "secret_access_key_file, not both"
    ]
    assert S3_SECRET not in " ".join(bad)


def test_environment_overrides_reach_the_attachments_section() -> None:
    """POPBRIDGE_ATTACHMENTS__SECRET_ACCESS_KEY sets the key and drops the file twin."""
    section = {"store": "s3", "bucket": "mail", "access_key_id": "k", "secret_access_key": "x"}
    cfg = Config.from_dict(
        config(section), env={"POPBRIDGE_ATTACHMENTS__SECRET_ACCESS_KEY": S3_SECRET}
    )
    assert cfg.attachments is not None
    assert cfg.attachments.secret_access_key is not None
    assert cfg.attachments.secret_access_key.get_secret_value() == S3_SECRET


async def test_app_builds_the_configured_store(tmp_path: Path) -> None:
    """dir defaults to data_dir/attachments; s3 gets an S3Store; the app closes it."""
    app = App(Config.from_dict(config({"store": "dir"}, data_dir=str(tmp_path)), env={}))
    try:
        assert isinstance(app.store, DirStore)
        assert app.store.path == tmp_path / "attachments"
        poller = app.mailboxes["support"].poller
        assert poller.claim_check is not None
        assert poller.claim_check.store_above == 1000
        assert app.targets["main"].on_too_large == "reference"
    finally:
        await app.close()
    s3 = {"store": "s3", "bucket": "mail", "access_key_id": "k", "secret_access_key": S3_SECRET}
    app = App(Config.from_dict(config(s3, data_dir=str(tmp_path)), env={}))
    try:
        assert isinstance(app.store, S3Store)
        assert S3_SECRET not in repr(app.store)
    finally:
        await app.close()
    app = App(Config.from_dict(config(data_dir=str(tmp_path)), env={}))
    try:
        assert app.store is None
        assert app.mailboxes["support"].poller.claim_check is None
        assert app.targets["main"].on_too_large == "park"
    finally:
        await app.close()
