"""The deployment artefacts: Dockerfile, compose trial, Kubernetes manifests, metric names.

No Docker engine or Kubernetes cluster runs here, so:

- the image's command is tested without the image: the wheel is built from exactly what the
  Dockerfile copies, installed into a fresh virtual environment, and the Dockerfile's own
  ENTRYPOINT + CMD and HEALTHCHECK run against the real Dovecot, with the image's paths mapped
  into a temporary directory;
- the compose file and the Kubernetes manifests are parsed and cross-checked (labels and
  selectors, names, ports, paths, the config validated by :func:`bridge.config.load_config`
  with the example secrets);
- every metric name the alert rules and the dashboard use is checked against the /metrics of
  a running bridge.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bridge import __version__
from bridge.cli import build_parser
from bridge.config import Config, load_config
from bridge.webhook.signing import sign
from tests.dovecot import Dovecot, Pop3User, free_port
from tests.integration.kit import config_dict, make_message, write_config
from tests.receiver import WebhookReceiver
from tests.unit.test_alerts import (
    SCRAPE_METRICS,
    alert_rules,
    dashboard_exprs,
    promql_metric_names,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_DIR = ROOT / "deploy" / "compose"
K8S_DIR = ROOT / "deploy" / "kubernetes"
# The Docker default PATH, without this test run's virtualenv (which has `popbridge` too).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# ---------------------------------------------------------------------- Dockerfile parsing


@dataclass
class Stage:
    """One ``FROM`` stage: its base, name and instructions as (keyword, argument text)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        """The arguments of every ``keyword`` instruction, in order."""
        return [arg for key, arg in self.instructions if key == keyword]

    def last(self, keyword: str) -> str:
        """The argument of the last ``keyword`` instruction (the one that takes effect)."""
        found = self.all(keyword)
        assert found, f"no {keyword} in stage {self.name or self.base}"
        return found[-1]


def dockerfile_stages(text: str) -> list[Stage]:
    """Split a Dockerfile into stages, joining continuation lines and dropping comments."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    logical = ""
    lines: list[str] = []
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") and not logical:
            continue
        if raw.rstrip().endswith("\\"):
            logical += raw.rstrip()[:-1] + " "
            continue
        lines.append(logical + raw)
        logical = ""
    for line in lines:
        if not line.strip():
            continue
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            arg_name, _, default = rest.partition("=")
            args[arg_name] = default
        elif keyword == "FROM":
            parts = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), rest).split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        else:
            stages[-1].instructions.append((keyword, rest))
    return stages


def exec_form(argument: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails for the shell form."""
    value = json.loads(argument)
    assert isinstance(value, list), f"not exec form: {argument}"
    assert all(isinstance(item, str) for item in value)
    return value


def env_of(stage: Stage) -> dict[str, str]:
    """The ``ENV`` of a stage (``KEY=VALUE`` pairs, shell-quoted values allowed)."""
    env: dict[str, str] = {}
    for argument in stage.all("ENV"):
        for pair in shlex.split(argument):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def healthcheck_command(stage: Stage) -> list[str]:
    """The exec-form command of ``HEALTHCHECK [OPTIONS] CMD [...]``."""
    argument = stage.last("HEALTHCHECK")
    before, sep, command = argument.partition("CMD ")
    assert sep, argument
    assert all(option.startswith("--") for option in before.split()), before
    return exec_form(command)


def runtime_stage() -> Stage:
    """The last stage of the Dockerfile: the image that runs."""
    return dockerfile_stages(DOCKERFILE.read_text())[-1]


# ---------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multistage_slim_nonroot_and_exec_form() -> None:
    """The image: two slim stages, fixed non-root uid, exec-form commands, port, volume, stop."""
    stages = dockerfile_stages(DOCKERFILE.read_text())
    assert len(stages) >= 2
    assert all(re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", s.base) for s in stages)
    runtime = stages[-1]
    assert runtime.last("USER") == "10001:10001"
    assert exec_form(runtime.last("ENTRYPOINT")) == ["popbridge"]
    command = exec_form(runtime.last("CMD"))
    assert command[0] == "run"
    assert command[command.index("-c") + 1] == "/etc/popbridge/config.yaml"
    assert runtime.last("STOPSIGNAL") == "SIGTERM"
    assert runtime.last("EXPOSE") == "9808"
    assert exec_form(runtime.last("VOLUME")) == ["/var/lib/popbridge"]
    assert any("--from=build /opt/venv /opt/venv" in c for c in runtime.all("COPY"))
    env = env_of(runtime)
    assert env["POPBRIDGE_HTTP__LISTEN"] == "0.0.0.0:9808"
    assert env["POPBRIDGE_DATA_DIR"] == "/var/lib/popbridge"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    health = healthcheck_command(runtime)
    assert health[0] == "python"
    assert "/healthz" in health[-1]


def test_dockerignore_admits_exactly_what_the_build_copies() -> None:
    """.dockerignore excludes everything but the sources the build stage COPYs."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = build_context_sources()
    assert copied == admitted
    assert all((ROOT / source).exists() for source in copied)


def build_context_sources() -> set[str]:
    """What the build stage copies from the build context (``COPY`` without ``--from``)."""
    sources: set[str] = set()
    for argument in dockerfile_stages(DOCKERFILE.read_text())[0].all("COPY"):
        parts = argument.split()
        assert not parts[0].startswith("--"), argument
        sources.update(p.rstrip("/") for p in parts[:-1])
    return sources


@dataclass
class ImageRoot:
    """The image's filesystem paths mapped into a temporary directory."""

    venv: Path
    data: Path
    etc: Path
    tmp: Path
    port: int

    def map(self, value: str) -> str:
        """Rewrite the image's paths and listen address to their stand-ins here (one pass)."""
        places = {
            "/opt/venv": self.venv,
            "/var/lib/popbridge": self.data,
            "/etc/popbridge": self.etc,
            "/tmp": self.tmp,  # noqa: S108 - the image's TMPDIR, mapped to a private dir
        }
        pattern = "|".join(re.escape(path) for path in places)
        value = re.sub(rf"(?<![\w/])({pattern})(?=/|$|:)", lambda m: str(places[m.group(1)]), value)
        return value.replace("0.0.0.0:9808", f"127.0.0.1:{self.port}")

    def environment(self, stage: Stage) -> dict[str, str]:
        """The image's ENV (paths mapped), on a PATH that does not include this test's venv."""
        env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}
        for key, value in env_of(stage).items():
            env[key] = self.map(value.replace("$PATH", env["PATH"]))
        return env


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with popbridge installed from a wheel built like the Dockerfile does.

    The build context holds only what the Dockerfile's build stage copies, so a file the
    wheel needs but the Dockerfile forgets breaks this fixture as it would break the image.
    """
    base = tmp_path_factory.mktemp("image")
    context = base / "context"
    context.mkdir()
    for source in build_context_sources():
        src = ROOT / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, context / source)
    wheels = base / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "-w", str(wheels), str(context)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = wheels.glob("popbridge-*.whl")
    assert wheel.name.startswith(f"popbridge-{__version__}-")
    venv = base / "opt-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return venv


def _tree(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*")}


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_http(url: str, alive: Callable[[], bool], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert alive(), f"the server behind {url} exited"
        try:
            _get(url)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


async def _run(command: list[str], env: dict[str, str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(proc.wait(), 30)


@pytest.mark.dovecot
@pytest.mark.timeout(400)
async def test_image_entrypoint_runs_from_a_fresh_wheel(
    wheel_venv: Path,
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    """The Dockerfile's ENTRYPOINT + CMD, from the wheel: delivers, healthy, exits 0 on SIGTERM.

    The image's ENV is applied (paths mapped), so the listen address and data directory come
    from the image's overrides, not from the config file. The HEALTHCHECK command passes while
    the bridge runs and fails once it stopped; nothing is written inside the installed tree
    (a read-only root filesystem would allow it).
    """
    stage = runtime_stage()
    root = ImageRoot(
        venv=wheel_venv, data=tmp_path / "data", etc=tmp_path / "etc", tmp=tmp_path / "tmp",
        port=free_port(),
    )  # fmt: skip
    for directory in (root.data, root.etc, root.tmp):
        directory.mkdir()
    env = root.environment(stage)
    assert env["POPBRIDGE_DATA_DIR"] == str(root.data)
    assert env["HOME"] == str(root.data)
    command = [root.map(arg) for arg in exec_form(stage.last("ENTRYPOINT"))]
    command += [root.map(arg) for arg in exec_form(stage.last("CMD"))]
    executable = shutil.which(command[0], path=env["PATH"])
    assert executable == str(wheel_venv / "bin" / "popbridge"), env["PATH"]
    health = [root.map(arg) for arg in healthcheck_command(stage)]
    health[0] = shutil.which(health[0], path=env["PATH"]) or health[0]
    assert health[0] == str(wheel_venv / "bin" / "python")

    pop3_user.deliver_many(make_message(i) for i in range(3))
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "elsewhere")
    config["log"] = {"level": "info", "format": "console"}  # the image's env makes it JSON
    write_config(Path(command[command.index("-c") + 1]), config)
    before = _tree(wheel_venv)

    proc = await asyncio.create_subprocess_exec(
        executable, *command[1:], env=env, cwd=root.map(stage.last("WORKDIR")),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{root.port}"
    try:
        await asyncio.to_thread(_wait_http, base + "/healthz", lambda: proc.returncode is None)
        await receiver.wait_for(3, within=30)
        for _ in range(100):
            ready = (await asyncio.to_thread(_get, base + "/readyz"))[0] == 200
            if ready and pop3_user.count() == 0:
                break
            await asyncio.sleep(0.1)
        assert pop3_user.count() == 0
        assert await asyncio.to_thread(_get, base + "/healthz") == (200, b'{"status": "ok"}')
        assert (await asyncio.to_thread(_get, base + "/readyz"))[0] == 200
        assert await _run(health, env) == 0
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert len(receiver.distinct_webhook_ids()) == 3
    # JSON lines (the image sets POPBRIDGE_LOG__FORMAT=json), the password nowhere.
    events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert any(e.get("event") == "started" for e in events)
    assert pop3_user.password not in (out + err).decode()
    # The data went to the volume, not to the config file's data_dir.
    assert (root.data / "ledger.sqlite3").exists()
    assert not (tmp_path / "elsewhere").exists()
    assert _tree(wheel_venv) == before, "the process wrote inside the installed tree"
    assert await _run(health, env) != 0


# ---------------------------------------------------------------------- compose


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    return compose


def _bind_mounts(service: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            yield (COMPOSE_DIR / source).resolve(), target


def test_compose_has_every_service_and_every_file_it_mounts() -> None:
    """The trial starts Dovecot, seeding, bridge, receiver, Prometheus, Grafana; files exist."""
    compose = _compose()
    services = compose["services"]
    assert set(services) == {
        "dovecot", "mail-seed", "bridge", "receiver", "prometheus", "grafana",
    }  # fmt: skip
    for name, service in services.items():
        assert "image" in service, name
        for source, _ in _bind_mounts(service):
            assert source.exists(), f"{name}: {source} does not exist"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in compose["volumes"], (name, source)
        for secret in service.get("secrets", []):
            assert (COMPOSE_DIR / compose["secrets"][secret]["file"]).is_file()
    bridge = services["bridge"]
    assert (COMPOSE_DIR / bridge["build"]["context"] / bridge["build"]["dockerfile"]).resolve() == (
        DOCKERFILE
    )
    assert bridge["read_only"] is True
    assert bridge["tmpfs"] == ["/tmp"]  # noqa: S108 - the container's TMPDIR
    assert int(bridge["stop_grace_period"].rstrip("s")) > _compose_config().shutdown_grace
    assert bridge["depends_on"]["mail-seed"]["condition"] == "service_completed_successfully"
    assert list(Path(COMPOSE_DIR / "mail").glob("*.eml"))


def _compose_config() -> Config:
    """The compose bridge config, loaded with the compose secret files in their place."""
    compose = _compose()
    bridge = compose["services"]["bridge"]
    mounts = dict((target, source) for source, target in _bind_mounts(bridge))
    text = mounts["/etc/popbridge/config.yaml"].read_text()
    for secret in bridge["secrets"]:
        text = text.replace(
            f"/run/secrets/{secret}", str(COMPOSE_DIR / compose["secrets"][secret]["file"])
        )
    assert "/run/secrets/" not in text, "a secret file the bridge service does not mount"
    return Config.from_dict(yaml.safe_load(text), env={}, base_dir=COMPOSE_DIR)


def test_compose_config_validates_and_points_at_the_other_services() -> None:
    """The trial config validates; its mailbox and webhook name compose services and ports."""
    config = _compose_config()
    services = _compose()["services"]
    assert config.http.listen == "0.0.0.0:9808"
    (mailbox,) = config.mailboxes
    assert mailbox.host in services
    assert mailbox.password is not None
    assert mailbox.password.get_secret_value() == "pass"  # the dovecot image's static passdb
    (hook,) = config.webhooks.values()
    assert hook.url.startswith("http://receiver:8080/")
    assert "--port" in services["receiver"]["command"]
    assert services["receiver"]["command"][-1] == "8080"
    prometheus = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["bridge:9808"]
    mounted = {target for _, target in _bind_mounts(services["prometheus"])}
    assert set(prometheus["rule_files"]) <= mounted


def test_compose_grafana_provisions_the_dashboard_and_datasource() -> None:
    """Grafana's provisioning files point at the mounted dashboard and at Prometheus."""
    grafana = _compose()["services"]["grafana"]
    mounts = {target: source for source, target in _bind_mounts(grafana)}
    dashboards = [t for t in mounts if t.endswith(".json")]
    assert [mounts[t] for t in dashboards] == [ROOT / "deploy" / "grafana" / "bridge.json"]
    provider = yaml.safe_load(
        mounts["/etc/grafana/provisioning/dashboards/popbridge.yaml"].read_text()
    )
    (entry,) = provider["providers"]
    assert all(Path(t).parent == Path(entry["options"]["path"]) for t in dashboards)
    datasources = yaml.safe_load(
        mounts["/etc/grafana/provisioning/datasources/prometheus.yaml"].read_text()
    )
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "bridge.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert {"mailbox", "target"} <= set(variables)
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_compose_sample_mail_parses() -> None:
    """The seeded sample messages are well-formed mail with the headers the payload shows."""
    for path in sorted((COMPOSE_DIR / "mail").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for header in ("Message-ID", "From", "Subject", "Date"):
            assert message[header], (path.name, header)
        assert not message.defects, (path.name, message.defects)


def test_compose_receiver_accepts_bridge_signatures_and_refuses_others(tmp_path: Path) -> None:
    """The sample receiver verifies Standard Webhooks signatures made by bridge.webhook.signing."""
    secret = (COMPOSE_DIR / "secrets" / "webhook-secret").read_text().strip()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(COMPOSE_DIR / "receiver" / "receiver.py"),
         "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "WEBHOOK_SECRET_FILE": str(COMPOSE_DIR / "secrets" / "webhook-secret")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/hook"

    def post(body: bytes, signature: str, stamp: int) -> int:
        request = urllib.request.Request(
            url, data=body, method="POST",
            headers={"webhook-id": "msg_1", "webhook-timestamp": str(stamp),
                     "webhook-signature": signature, "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        _wait_http(url, lambda: proc.poll() is None)
        body = json.dumps({"mailbox": "demo", "subject": "hi", "from": []}).encode()
        now = int(time.time())
        good = sign([secret], "msg_1", now, body)
        assert post(body, good, now) == 204
        assert post(body + b" ", good, now) == 401
        other = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()
        assert post(body, sign([other], "msg_1", now, body), now) == 401
        assert post(body, sign([other, secret], "msg_1", now, body), now) == 204
        assert post(body, sign([secret], "msg_1", now - 3600, body), now - 3600) == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [line["subject"] for line in lines] == ["hi", "hi"]


# ---------------------------------------------------------------------- Kubernetes


def _manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in the kustomization, by kind."""
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    objects: dict[str, dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S_DIR / resource).read_text()):
            assert doc["kind"] not in objects, doc["kind"]
            assert doc["metadata"]["name"].startswith("popbridge")
            objects[doc["kind"]] = doc
    return objects


def _container() -> dict[str, Any]:
    containers: list[dict[str, Any]]
    containers = _manifests()["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


def _secrets_env() -> dict[str, str]:
    """secrets.env as kustomize reads it: KEY=VALUE lines, # comments."""
    pairs = {}
    for line in (K8S_DIR / "secrets.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def _k8s_config(tmp_path: Path) -> Config:
    """config.yaml loaded the way a pod sees it: Secret keys as files under the mount path."""
    objects = _manifests()
    pod = objects["StatefulSet"]["spec"]["template"]["spec"]
    secret_volume = next(v for v in pod["volumes"] if "secret" in v)
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    (generator,) = kustomization["secretGenerator"]
    assert secret_volume["secret"]["secretName"] == generator["name"]
    mount = next(m for m in _container()["volumeMounts"] if m["name"] == secret_volume["name"])
    for key, value in _secrets_env().items():
        (tmp_path / key).write_text(value)
    text = (K8S_DIR / "config.yaml").read_text().replace(mount["mountPath"] + "/", f"{tmp_path}/")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(text)
    return load_config(config_path, env={})


def test_kustomization_lists_every_manifest_and_generates_the_configmap() -> None:
    """Every YAML file in deploy/kubernetes is a resource or the generated config; tag = version."""
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    assert generator["files"] == ["config.yaml"]
    (secrets,) = kustomization["secretGenerator"]
    assert secrets["envs"] == ["secrets.env"]
    files = {p.name for p in K8S_DIR.glob("*.yaml")}
    assert files == {"kustomization.yaml", "config.yaml", *kustomization["resources"]}
    assert set(_manifests()) == {
        "Service", "StatefulSet", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule",
    }  # fmt: skip
    (image,) = kustomization["images"]
    assert image["name"] == _container()["image"]
    assert image["newTag"] == __version__
    pod = _manifests()["StatefulSet"]["spec"]["template"]["spec"]
    config_volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert config_volume["configMap"]["name"] == generator["name"]


def _kustomize(directory: Path) -> dict[str, dict[str, Any]]:
    """``kubectl kustomize`` output by kind (the objects kubectl apply -k would send)."""
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout
    return {doc["kind"]: doc for doc in yaml.safe_load_all(rendered)}


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed: kustomize not run"
)
def test_configmap_and_secret_are_generated_with_hashes_and_a_change_rolls_the_pods(
    tmp_path: Path,
) -> None:
    """kustomize names the ConfigMap and the Secret with a content hash and puts those names
    into the StatefulSet's pod template: a changed secret or config changes the pod template,
    so the pods roll."""
    objects = _kustomize(K8S_DIR)
    config_name = objects["ConfigMap"]["metadata"]["name"]
    secret_name = objects["Secret"]["metadata"]["name"]
    assert re.fullmatch(r"popbridge-config-[a-z0-9]{10}", config_name)
    assert re.fullmatch(r"popbridge-secrets-[a-z0-9]{10}", secret_name)
    assert set(objects["Secret"]["data"]) == set(_secrets_env())
    pod = objects["StatefulSet"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_name
    assert volumes["secrets"]["secret"]["secretName"] == secret_name

    copy = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, copy)
    env = (copy / "secrets.env").read_text()
    (copy / "secrets.env").write_text(env.replace("example-only-change-me", "a-new-password", 1))
    changed = _kustomize(copy)
    assert changed["Secret"]["metadata"]["name"] != secret_name
    assert changed["StatefulSet"]["spec"]["template"] != objects["StatefulSet"]["spec"]["template"]
    (copy / "config.yaml").write_text((copy / "config.yaml").read_text() + "\n# changed\n")
    assert _kustomize(copy)["ConfigMap"]["metadata"]["name"] != config_name


def test_labels_and_selectors_agree() -> None:
    """Service, StatefulSet, PDB and ServiceMonitor all select the pods the StatefulSet makes."""
    objects = _manifests()
    sts = objects["StatefulSet"]["spec"]
    pod_labels = sts["template"]["metadata"]["labels"]
    service = objects["Service"]

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    assert selects(sts["selector"]["matchLabels"], pod_labels)
    assert selects(service["spec"]["selector"], pod_labels)
    assert selects(objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"], pod_labels)
    monitor = objects["ServiceMonitor"]["spec"]
    assert selects(monitor["selector"]["matchLabels"], service["metadata"]["labels"])
    assert sts["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    # The job label the alert rules select on.
    assert service["metadata"]["labels"][monitor["jobLabel"]] == "popbridge"
    (endpoint,) = monitor["endpoints"]
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["port"] in port_names
    assert endpoint["path"] == "/metrics"
    container_ports = {p["name"]: p["containerPort"] for p in _container()["ports"]}
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in container_ports


def test_config_map_config_validates_with_the_example_secrets(tmp_path: Path) -> None:
    """config.yaml loads with the Secret's example values at the mounted paths; ports and
    data_dir match the pod spec."""
    config = _k8s_config(tmp_path)
    assert len(config.mailboxes) >= 2
    for mailbox in config.mailboxes:
        assert mailbox.password is not None
        assert mailbox.password.get_secret_value() == "example-only-change-me"
    container = _container()
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    claim = _manifests()["StatefulSet"]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    assert mounts[claim]["mountPath"] == str(config.data_dir)
    assert not mounts[claim].get("readOnly")
    assert {p["containerPort"] for p in container["ports"]} == {config.http.port}
    assert config.http.host == "0.0.0.0"


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in container args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], text)


def test_statefulset_shards_by_pod_ordinal() -> None:
    """args give `--shard POD_NAME/SHARD_COUNT`; the real CLI takes pod N of replicas."""
    sts = _manifests()["StatefulSet"]["spec"]
    container = _container()
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert int(env["SHARD_COUNT"]["value"]) == sts["replicas"]
    args = container["args"]
    config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert args[args.index("-c") + 1] == config_mount["mountPath"] + "/config.yaml"
    assert exec_form(runtime_stage().last("ENTRYPOINT")) == ["popbridge"]  # args follow it
    for ordinal in range(sts["replicas"]):
        values = {"POD_NAME": f"popbridge-{ordinal}", "SHARD_COUNT": env["SHARD_COUNT"]["value"]}
        expanded = [_expand(arg, values) for arg in args]
        parsed = build_parser().parse_args(expanded)
        assert parsed.command == "run"
        assert parsed.shard == (ordinal, sts["replicas"])


def test_statefulset_probes_grace_resources_and_security(tmp_path: Path) -> None:
    """Probes on /healthz and /readyz, a grace period above shutdown_grace, limits, hardening."""
    sts = _manifests()["StatefulSet"]["spec"]
    pod = sts["template"]["spec"]
    container = _container()
    port_names = {p["name"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in port_names
    grace = _k8s_config(tmp_path).shutdown_grace
    # Room after shutdown_grace for the final QUITs and closing the ledger.
    assert pod["terminationGracePeriodSeconds"] >= grace + 10
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert {"cpu", "memory"} <= set(resources["limits"])
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    pod_security = pod["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    uid, gid = runtime_stage().last("USER").split(":")
    assert (pod_security["runAsUser"], pod_security["runAsGroup"]) == (int(uid), int(gid))
    assert pod["automountServiceAccountToken"] is False
    # Every path the process writes is a volume, not the read-only root filesystem.
    mounted = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert mounted == {"/var/lib/popbridge", "/tmp"}  # noqa: S108 - the TMPDIR volume
    assert env_of(runtime_stage())["TMPDIR"] in mounted
    claims = sts["volumeClaimTemplates"]
    assert claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    pdb = _manifests()["PodDisruptionBudget"]["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


# ---------------------------------------------------------------------- metric names


def _exposition(text: str) -> tuple[set[str], dict[str, set[tuple[str, str]]]]:
    """Sample names, and the (label, value) pairs seen per sample name."""
    names: set[str] = set()
    labels: dict[str, set[tuple[str, str]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([A-Za-z_:][\w:]*)(\{(.*)\})? ", line)
        assert match, line
        name = match.group(1)
        names.add(name)
        pairs = re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or "")
        labels.setdefault(name, set()).update(pairs)
    return names, labels


def _literal_matchers(expr: str) -> Iterator[tuple[str, str, str]]:
    """(metric, label, value) for every ``label="value"`` equality matcher on a bridge metric."""
    for metric, body in re.findall(r"(bridge_\w+)\{([^}]*)\}", expr):
        for label, value in re.findall(r'(\w+)\s*=\s*"([^"$]*)"', body):
            if label not in ("job", "instance"):  # added by Prometheus when scraping
                yield metric, label, value


# Appear with the first event they count (metrics.mailbox_detail: essential), so a healthy
# bridge need not export them yet; with full detail they exist from start-up.
LAZY_WITH_ESSENTIAL = {"bridge_mailbox_errors_total", "bridge_oldest_undelivered_age_seconds"}


@pytest.mark.dovecot
@pytest.mark.parametrize("detail", ["full", "essential"])
async def test_every_metric_in_alerts_and_dashboard_is_exported(
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
    detail: str,
) -> None:
    """A running bridge's /metrics has every metric (and label value) the rules and the
    dashboard select; histogram queries use its _bucket/_sum/_count samples. With essential
    detail, only the families documented as appearing with their first event may be
    missing."""
    pop3_user.deliver_many(make_message(i) for i in range(2))
    port = free_port()
    config = config_dict(dovecot, pop3_user, receiver.url, tmp_path / "data")
    config["http"] = {"listen": f"127.0.0.1:{port}"}
    config["metrics"] = {"mailbox_detail": detail}
    cfg = write_config(tmp_path / "run.yaml", config)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "run", "-c", str(cfg),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await receiver.wait_for(2, within=30)
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert response.status == 200
                    text = await response.text()
                deleted = r"^bridge_messages_deleted_total(\{mailbox=\"inbox\"\})? 2.0"
                if re.search(deleted, text, re.M):
                    break
                await asyncio.sleep(0.1)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    names, labels = _exposition(text)
    assert "bridge_webhook_request_duration_seconds_bucket" in names

    exprs = [rule["expr"] for rule in alert_rules()] + list(dashboard_exprs())
    used = set().union(*(promql_metric_names(expr) for expr in exprs))
    assert len(used) > 15
    lazy = LAZY_WITH_ESSENTIAL if detail == "essential" else set()
    assert used - SCRAPE_METRICS - lazy - names == set(), "metrics used but not exported"
    for expr in exprs:
        for metric, label, value in _literal_matchers(expr):
            if metric in lazy and metric not in labels:
                continue
            assert (label, value) in labels[metric], f"{metric}{{{label}={value!r}}} in {expr}"
