"""Start-up cost: what `validate` and an idle `once` import.

aiohttp takes 100-300 ms to import; `validate` never needs it, and `once` needs it only when a
message is to be posted. Each check runs in a fresh interpreter, where sys.modules is honest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.kit import SECRET

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return set(out.stdout.split())


def test_config_does_not_import_aiohttp() -> None:
    """bridge.config checks webhook secrets through bridge.webhook.signing without loading
    the HTTP client (and with it aiohttp)."""
    loaded = _loaded_after("import bridge.config")
    assert "bridge.webhook.signing" in loaded
    assert "aiohttp" not in loaded
    assert "bridge.webhook.client" not in loaded


def test_validate_command_does_not_import_aiohttp(tmp_path: Path) -> None:
    """`popbridge validate` loads the config and nothing of the service."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""data_dir: {tmp_path}
webhooks: {{main: {{url: "http://127.0.0.1:9/h", secret: "{SECRET}"}}}}
mailboxes:
  - {{name: a, host: 127.0.0.1, tls: none, allow_insecure_auth: true, username: u,
      password: p, webhooks: [main]}}
"""
    )
    loaded = _loaded_after(
        f"from bridge.cli import main\nassert main(['validate', '-c', {str(config)!r}]) == 0"
    )
    assert "aiohttp" not in loaded
    assert "bridge.app" not in loaded


def test_building_the_app_does_not_import_aiohttp(tmp_path: Path) -> None:
    """The service's objects can be built (as `once` does before any session) without
    aiohttp; it is imported with the first POST."""
    loaded = _loaded_after(
        "from bridge.app import App\n"
        "from bridge.config import Config\n"
        f"App(Config.from_dict({{'data_dir': {str(tmp_path)!r}, "
        f"'webhooks': {{'main': {{'url': 'http://127.0.0.1:9/h', 'secret': {SECRET!r}}}}}, "
        "'mailboxes': [{'name': 'a', 'host': '127.0.0.1', 'tls': 'none', "
        "'allow_insecure_auth': True, 'username': 'u', 'password': 'p', "
        "'webhooks': ['main']}]}, env={}))"
    )
    assert "bridge.app" in loaded
    assert "aiohttp" not in loaded
