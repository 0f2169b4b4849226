"""The rendered services' monitoring (deploy/prometheus/): the scrape
configuration and the alert rules load in promtool, the rules' own unit
tests (alerts.test.yml, which the service ships) pass and make every alert
fire, the gate fails when an alert is broken, and the rules use only the
metrics the service exposes.

promtool is Debian's (package prometheus): a Prometheus 2 on Debian 12.
The same files are checked with the Prometheus 3 of the prom/prometheus
image (or its stand-in) by the test marked docker."""

import re
import shutil
import subprocess

import pytest
import yaml

from harness.answers import VARIANTS, answers_for
from harness.docker import docker, load_compose, server_image
from harness.policy import require

PROMETHEUS = "deploy/prometheus"
PROMTOOL_HINT = "promtool is not installed (Debian: apt-get install prometheus)"
# The official image, when the production compose file names none.
PROMETHEUS_IMAGE = "prom/prometheus:v3.5.0"

# Every metric the rules may use, with its labels: what the service exposes
# (the web containers' servicekit.metrics; the worker's
# metrics server) and Prometheus's own up. A rule that names anything else
# names a metric no target has, and never fires.
METRICS = {
    # web
    "django_http_request_duration_seconds_count": {"status", "view", "method"},
    "django_http_request_duration_seconds_bucket": {"view", "method", "status", "le"},
    "gunicorn_workers": set(),
    "readiness_check_ok": {"check"},
    "celery_queue_length": {"queue"},
    "backup_last_success_timestamp_seconds": set(),
    # worker
    "celery_tasks_total": {"task", "state"},
    "celery_task_duration_seconds_bucket": {"task", "le"},
    # Prometheus
    "up": set(),
}
# The labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
JOBS = {"web", "worker", "prometheus"}
CELERY_STATES = {"succeeded", "failed", "retried"}
ALERTS = {
    "WebDown",
    "WorkerDown",
    "NotReady",
    "HighErrorRatio",
    "HighLatencyP95",
    "QueueGrowing",
    "TasksFailing",
    "BackupTooOld",
}
# What the unit tests must make fire at least once.
REQUIRED_TO_FIRE = ALERTS

# PromQL's words that are not metric names.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def promtool():
    path = shutil.which("promtool")
    require(path, PROMTOOL_HINT)
    return path


def run_promtool(*args, cwd):
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def rules(path):
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alert_names(path):
    return [rule["alert"] for rule in rules(path) if "alert" in rule]


def failed_alerts(output):
    """The alerts promtool's output reports as failing their expectations."""
    return set(re.findall(r"alertname: (\w+), time:", output))


def metric_selectors(expression):
    """(metric, {label: value}) of every series selector of a PromQL expression."""
    # Durations, subquery steps and numbers are not names.
    text = re.sub(r"\[[^\]]*\]", " ", expression)
    # The label lists of by (...), without (...), on (...), ignoring (...).
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = []
    pattern = r"(?<![\w.:])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?"
    for name, matchers, call in re.findall(pattern, text):
        if call or name in KEYWORDS:
            continue
        labels = dict(re.findall(r'(\w+)\s*=~?\s*"([^"]*)"', matchers))
        found.append((name, labels))
    return found


def unknown_metrics(expression):
    """What an expression names that METRICS does not document."""
    problems = []
    for name, labels in metric_selectors(expression):
        if name not in METRICS:
            problems.append(f"unknown metric {name}")
            continue
        problems += [f"{name} has no label {label}" for label in set(labels) - METRICS[name] - TARGET_LABELS]
        if "job" in labels and labels["job"] not in JOBS:
            problems.append(f"no job {labels['job']}")
        if "state" in labels and not set(labels["state"].split("|")) <= CELERY_STATES:
            problems.append(f"celery_tasks_total has no state {labels['state']}")
    return problems


def render_root(directory):
    return directory.parents[1]


def prometheus_image(service):
    """The default of the production compose file's prometheus image, or PROMETHEUS_IMAGE."""
    spec = load_compose(service / "docker-compose.prod.yml")["services"].get("prometheus", {})
    match = re.fullmatch(r"\$\{PROMETHEUS_IMAGE:-([^}]+)\}", str(spec.get("image", "")))
    return match.group(1) if match else PROMETHEUS_IMAGE


@pytest.fixture(scope="module")
def rendered(render):
    return {variant: render(variant) / PROMETHEUS for variant in VARIANTS}


# --------------------------------------------------------------------------
# The scrape configuration
# --------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_configuration_and_its_rules_pass_promtool_check_config(rendered, variant):
    directory = rendered[variant]
    result = run_promtool("check", "config", "prometheus.yml", cwd=directory)
    assert result.returncode == 0, result.stdout + result.stderr
    # check config loads the rule files it names, relative to the file.
    assert "SUCCESS: 1 rule files found" in result.stdout
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_replica_of_web_and_worker_is_scraped(rendered, variant):
    config = yaml.safe_load((rendered[variant] / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "15s"
    slug = answers_for(variant).get("project_slug", "obc-management-system")
    assert config["global"]["external_labels"] == {"service": slug}
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == JOBS
    for name, port in (("web", 8000), ("worker", 9808)):
        job = jobs[name]
        assert job["metrics_path"] == "/metrics"
        # Each container's address, not one address in front of them all.
        assert job["dns_sd_configs"] == [{"names": [name], "type": "A", "port": port, "refresh_interval": "30s"}]


# --------------------------------------------------------------------------
# The rules and their unit tests
# --------------------------------------------------------------------------


def test_the_rules_pass_promtool_check_rules(rendered):
    result = run_promtool("check", "rules", "alerts.yml", cwd=rendered["defaults"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_every_alert_waits_and_says_how_bad_and_what(rendered):
    found = rules(rendered["defaults"] / "alerts.yml")
    assert sorted(rule["alert"] for rule in found) == sorted(ALERTS)
    for rule in found:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]


@pytest.mark.parametrize("variant", ["defaults", "s3-no-proxy-no-beat-sentry"])
def test_the_rules_unit_tests_pass(rendered, variant):
    result = run_promtool("test", "rules", "alerts.test.yml", cwd=rendered[variant])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_cover_every_alert_and_an_alert_that_must_stay_silent(rendered):
    tests = yaml.safe_load((rendered["defaults"] / "alerts.test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    assert {case["alertname"] for case in cases} == ALERTS
    assert {case["alertname"] for case in cases if case.get("exp_alerts")} >= REQUIRED_TO_FIRE
    assert any(case["alertname"] == "QueueGrowing" and not case.get("exp_alerts") for case in cases)


def test_the_unit_tests_make_every_alert_fire(rendered, tmp_path):
    # promtool says SUCCESS and names no alert when expectations are met;
    # with every expectation emptied, it names each alert that fired.
    shutil.copy(rendered["defaults"] / "alerts.yml", tmp_path)
    tests = yaml.safe_load((rendered["defaults"] / "alerts.test.yml").read_text())
    for test in tests["tests"]:
        for case in test.get("alert_rule_test", []):
            case["exp_alerts"] = []
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(tests))
    result = run_promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert failed_alerts(result.stdout + result.stderr) == REQUIRED_TO_FIRE, result.stdout


def test_a_broken_alert_fails_the_unit_tests(rendered, tmp_path):
    # The gate can fail: WebDown that fires for the containers that are up.
    rules_text = (rendered["defaults"] / "alerts.yml").read_text()
    broken = rules_text.replace('expr: up{job="web"} == 0', 'expr: up{job="web"} == 1')
    assert broken != rules_text
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(rendered["defaults"] / "alerts.test.yml", tmp_path)
    assert run_promtool("check", "rules", "alerts.yml", cwd=tmp_path).returncode == 0
    result = run_promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert failed_alerts(result.stdout + result.stderr) == {"WebDown"}, result.stdout


# --------------------------------------------------------------------------
# The metrics the rules name
# --------------------------------------------------------------------------


def test_the_rules_name_only_metrics_and_labels_the_service_exposes(rendered):
    problems = {
        rule["alert"]: unknown_metrics(rule["expr"])
        for rule in rules(rendered["defaults"] / "alerts.yml")
        if unknown_metrics(rule["expr"])
    }
    assert problems == {}
    used = {name for rule in rules(rendered["defaults"] / "alerts.yml") for name, _ in metric_selectors(rule["expr"])}
    assert used >= {"up", "readiness_check_ok", "celery_queue_length", "celery_tasks_total"}


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("max by (queue) (celery_queue_lenght) > 100", "unknown metric celery_queue_lenght"),
        ('sum(rate(celery_tasks_total{state="failure"}[5m]))', "celery_tasks_total has no state failure"),
        ('readiness_check_ok{name="database"} == 0', "readiness_check_ok has no label name"),
        ('up{job="celery"} == 0', "no job celery"),
    ],
)
def test_a_misspelt_metric_or_label_is_caught(expression, problem):
    assert unknown_metrics(expression) == [problem]


def test_the_reader_sees_every_selector():
    expression = (
        "histogram_quantile(0.95, sum by (le) (rate(django_http_request_duration_seconds_bucket[5m])))"
        " > 1 and deriv((max by (queue) (celery_queue_length))[15m:1m]) > 0"
        " or absent_over_time(backup_last_success_timestamp_seconds[26h])"
    )
    assert [name for name, _ in metric_selectors(expression)] == [
        "django_http_request_duration_seconds_bucket",
        "celery_queue_length",
        "backup_last_success_timestamp_seconds",
    ]


# --------------------------------------------------------------------------
# Prometheus 3: the image the compose file runs
# --------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.xdist_group("docker")
def test_prometheus_3_loads_the_configuration_and_passes_the_unit_tests(engine, rendered, tmp_path):
    image = server_image(prometheus_image(render_root(rendered["defaults"]))).name
    directory = tmp_path / "prometheus"
    shutil.copytree(rendered["defaults"], directory)
    for path in [directory, *directory.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    mount = ["--rm", "-v", f"{directory}:/etc/prometheus:ro", "-w", "/etc/prometheus", "--entrypoint", "promtool"]
    version = docker("run", *mount, image, "--version").stdout
    assert re.search(r"version 3\.", version), version
    checked = docker("run", *mount, image, "check", "config", "prometheus.yml", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    tested = docker("run", *mount, image, "test", "rules", "alerts.test.yml", check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
