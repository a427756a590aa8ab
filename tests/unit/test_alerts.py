"""The Prometheus alert rules and the Grafana dashboard, checked with the real ``promtool``.

``promtool`` comes from the Debian package ``prometheus`` (``make test`` installs it when run
as root). When it is missing these tests fail with an install hint; they never skip.

Run as a script to regenerate deploy/kubernetes/prometheusrule.yaml from alerts.yml::

    python -m tests.unit.test_alerts
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "alerts_test.yml"
PROMETHEUS_RULE = ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml"
COMPOSE_PROMETHEUS = ROOT / "deploy" / "compose" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "bridge.json"
OPERATIONS = ROOT / "docs" / "operations.md"
METRICS_DOC = ROOT / "docs" / "metrics.md"

RUNBOOK_BASE = "https://github.com/popbridge/popbridge/blob/main/docs/operations.md#"
PROMTOOL_HINT = (
    "promtool is not installed. It comes with the Debian/Ubuntu package 'prometheus': "
    "'apt-get install --no-install-recommends prometheus' (as root), or run 'make test', which "
    "installs it when run as root."
)
# Metrics Prometheus itself creates for every scrape target, not exported by the bridge.
SCRAPE_METRICS = frozenset({"up"})

# ---------------------------------------------------------------------- helpers (also used by
# tests/integration/test_deploy.py)

_PROMQL_WORDS = frozenset(
    {
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
        "bool", "offset", "inf", "nan", "atan2",
    }
)  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords and labels left out).

    Grafana's ``$var`` / ``${var}`` / ``$__rate_interval`` are ignored, as are label matchers
    ``{...}``, ranges ``[...]`` and grouping label lists ``by (...)``.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$:])[A-Za-z_:][\w:]*", text):
        word = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or word.lower() in _PROMQL_WORDS:
            continue  # a function or aggregation call, or a keyword
        names.add(word)
    return names


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule in alerts.yml."""
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard_exprs() -> Iterator[str]:
    """Every PromQL expression in the dashboard: panel targets and template variable queries."""
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"]
        match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
        assert match, f"unsupported variable query {query!r}"
        yield match.group(1)


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's template variables so Prometheus can parse the expression."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool; fail (never skip) with an install hint when it is missing."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(PROMTOOL_HINT, pytrace=False)
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub generates for the headings of a Markdown document."""
    anchors = set()
    in_fence = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        title = re.sub(r"[^\w\- ]", "", title)
        anchors.add(title.replace(" ", "-"))
    return anchors


def render_prometheusrule() -> str:
    """deploy/kubernetes/prometheusrule.yaml as it must be: alerts.yml in a PrometheusRule."""
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "popbridge", "labels": {"app.kubernetes.io/name": "popbridge"}},
        "spec": yaml.safe_load(ALERTS.read_text()),
    }
    head = (
        "# GENERATED from deploy/prometheus/alerts.yml for the prometheus-operator; do not edit.\n"
        "# Regenerate: python -m tests.unit.test_alerts   (tests/unit/test_alerts.py checks it)\n"
    )
    return head + yaml.safe_dump(doc, sort_keys=False, width=100)


# ---------------------------------------------------------------------- promtool


def test_alert_rules_pass_promtool_check() -> None:
    """alerts.yml is valid Prometheus rule syntax (promtool check rules)."""
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_alert_unit_tests_pass() -> None:
    """Every alert fires and stays quiet exactly as deploy/prometheus/tests specifies."""
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    """The promtool tests cover each alert at least once firing and once quiet."""
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    assert tests["rule_files"] == ["../alerts.yml"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"
    assert (firing | quiet) - names == set(), "tests for alerts that do not exist"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every dashboard query parses in Prometheus once Grafana's variables are filled in."""
    rules = [
        {"record": f"popbridge:dashboard_query_{i}", "expr": grafana_to_promql(expr)}
        for i, expr in enumerate(dashboard_exprs())
    ]
    assert len(rules) > 20
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, f"{DASHBOARD}: {result.stdout}{result.stderr}"


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    """The compose trial's prometheus.yml passes promtool, with the real alerts.yml loaded."""
    config = yaml.safe_load(COMPOSE_PROMETHEUS.read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/alerts.yml"]
    config["rule_files"] = [str(ALERTS)]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    result = promtool("check", "config", str(local))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert jobs == ["popbridge"], "alerts.yml selects job=popbridge"


# ---------------------------------------------------------------------- content


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_summary_description_severity_and_runbook(rule: dict[str, Any]) -> None:
    """Each alert says what is wrong, how bad, and links its own runbook section."""
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["summary"].strip()
    assert len(annotations["description"]) > 40
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["alert"].startswith("Popbridge")
    url = annotations["runbook_url"]
    assert url == RUNBOOK_BASE + rule["alert"].lower()
    anchor = url.rsplit("#", 1)[1]
    assert anchor in github_anchors(OPERATIONS.read_text()), f"no '### {rule['alert']}' section"


def test_alert_names_are_unique() -> None:
    """No two rules share an alert name (the runbook anchors would collide)."""
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))


def test_alerts_and_dashboard_use_only_documented_metrics() -> None:
    """Every metric name in the rules and the dashboard is in docs/metrics.md (or is ``up``).

    The integration test tests/integration/test_deploy.py checks the same names against a
    running bridge's /metrics.
    """
    documented = set(re.findall(r"^\| `(bridge_\w+)` \|", METRICS_DOC.read_text(), re.M))
    assert len(documented) > 15
    histograms = {name for name in documented if name.endswith("_seconds")}
    allowed = documented | SCRAPE_METRICS
    allowed |= {f"{name}_{suffix}" for name in histograms for suffix in ("bucket", "sum", "count")}
    used: set[str] = set()
    for rule in alert_rules():
        used |= promql_metric_names(rule["expr"])
    for expr in dashboard_exprs():
        used |= promql_metric_names(expr)
    assert used - allowed == set()
    assert "bridge_webhook_request_duration_seconds_bucket" in used


def test_promql_metric_names_extracts_selectors_only() -> None:
    """The name extractor the metric checks rely on ignores functions, labels and variables."""
    expr = (
        'histogram_quantile(0.9, sum by (target, le) (rate(x_bucket{target=~"$target"}'
        "[$__rate_interval]))) / on (job) group_left y and time() - z offset 5m > bool 0"
    )
    assert promql_metric_names(expr) == {"x_bucket", "y", "z"}
    assert promql_metric_names('absent(up{job="popbridge"})') == {"up"}


def test_prometheusrule_matches_alerts_yml() -> None:
    """The prometheus-operator PrometheusRule carries exactly the rules of alerts.yml."""
    assert PROMETHEUS_RULE.read_text() == render_prometheusrule(), (
        "deploy/kubernetes/prometheusrule.yaml is stale: run python -m tests.unit.test_alerts"
    )


if __name__ == "__main__":
    PROMETHEUS_RULE.write_text(render_prometheusrule())
    print(f"wrote {PROMETHEUS_RULE.relative_to(ROOT)}", file=sys.stderr)
