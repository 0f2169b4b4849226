"""Logs, request IDs and metrics of the rendered service's production stack,
on a real Docker engine, scraped by a real Prometheus.

The stack runs with the compose file's `monitoring` profile: its Prometheus
(the official image, or a stand-in from Debian's package) loads the
rendered deploy/prometheus/ configuration and scrapes web and the worker.
The service under test gets one view and one task of its own
(observability_probe below): the view logs a line and queues the task, the
task logs a line and retries once, so that a request can be followed from
the proxy to the second run of its task.

Every log line is parsed as JSON, never matched with a regular expression.
"""

from __future__ import annotations

import concurrent.futures
import json
import secrets
import shutil
import time
import urllib.parse
import urllib.request

import pytest

from harness.answers import answers_for, package_of
from harness.servers import free_port
from harness.service import wait_for
from harness.stack import HttpsStack, operated_stack

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("docker")]

VARIANT = "explicit-workers"  # 5 gunicorn workers, Caddy, beat
PACKAGE = package_of(answers_for(VARIANT))
PROBE_TASK = f"{PACKAGE}.observability_probe.probe_task"

PROBE_MODULE = """
import logging
import os

from celery import shared_task
from django.http import JsonResponse

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=1)
def probe_task(self, marker):
    logger.info("probe task %s, run %s", marker, self.request.retries + 1)
    if self.request.retries == 0:
        raise self.retry(countdown=0)


def probe_view(request):
    marker = request.GET.get("marker", "")
    logger.info("probe view %s", marker)
    probe_task.delay(marker)
    return JsonResponse({"pid": os.getpid()})
"""

# The services of the app and the proxy: each writes only JSON lines.
JSON_SERVICES = ["proxy", "web", "worker", "beat", "migrate"]


class ObservedStack(HttpsStack):
    prometheus_port: int

    def log_lines(self, service: str) -> list[dict]:
        """Every line the service's containers wrote, parsed as JSON (a line
        that is not JSON fails the test that reads it)."""
        output = self.compose("logs", "--no-color", "--no-log-prefix", service).stdout
        lines = []
        for line in output.splitlines():
            # Compose's log printer starts lines with "erase line" (ESC [2K).
            line = line.removeprefix("\x1b[2K")
            if line.strip():
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    raise AssertionError(f"{service} wrote a line that is not JSON: {line!r}") from None
        return lines

    def query(self, expression: str) -> list[dict]:
        """The result of a PromQL query, from the stack's Prometheus."""
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, expression: str) -> float:
        result = self.query(f"sum({expression}) or vector(0)")
        return float(result[0]["value"][1])

    def probe(self, marker: str, headers: dict[str, str] | None = None):
        status, response_headers, body = self.request("GET", f"/probe/?marker={marker}", headers)
        assert status == 200, body
        return response_headers, json.loads(body)


@pytest.fixture(scope="module")
def stack(render, tmp_path_factory):
    rendered = tmp_path_factory.mktemp("observed") / "rendered"
    shutil.copytree(render(VARIANT), rendered, symlinks=True)
    package = rendered / "src" / PACKAGE
    (package / "observability_probe.py").write_text(PROBE_MODULE)
    urls = package / "urls.py"
    urls.write_text(
        f"from {PACKAGE}.observability_probe import probe_view\n"
        + urls.read_text().replace("urlpatterns = [", "urlpatterns = [\n    path('probe/', probe_view, name='probe'),")
    )
    settings = package / "settings" / "project.py"
    settings.write_text(settings.read_text() + f'\nCELERY_IMPORTS = ["{PACKAGE}.observability_probe"]\n')

    directory = tmp_path_factory.mktemp("observability")
    prometheus_port = free_port()
    with operated_stack(
        rendered,
        directory,
        "observability",
        ObservedStack,
        COMPOSE_PROFILES="monitoring",
        PROMETHEUS_PORT=str(prometheus_port),
    ) as project:
        project.prometheus_port = prometheus_port
        project.trust_caddy(directory / "caddy-root.crt")
        yield project


def lines_with(lines: list[dict], text: str) -> list[dict]:
    return [line for line in lines if text in str(line.get("message", ""))]


def test_one_request_is_followed_from_the_proxy_to_both_runs_of_its_task(stack):
    marker = secrets.token_hex(6)
    headers, _ = stack.probe(marker)
    request_id = headers["x-request-id"]

    def task_ran_twice():
        runs = lines_with(stack.log_lines("worker"), f"probe task {marker}")
        return runs if len(runs) == 2 else None

    runs = wait_for(task_ran_twice, timeout=60, interval=1, message="the probe task's two runs in the worker's log")
    for run in runs:
        assert (run["request_id"], run["task_name"]) == (request_id, PROBE_TASK), run
        assert run["level"] == "INFO" and run["logger"] == f"{PACKAGE}.observability_probe"
    assert runs[0]["task_id"] == runs[1]["task_id"]
    assert [run["message"][-5:] for run in runs] == ["run 1", "run 2"]

    (proxy_line,) = [line for line in stack.log_lines("proxy") if marker in line.get("request", {}).get("uri", "")]
    assert proxy_line["request_id"] == request_id
    assert (proxy_line["level"], proxy_line["message"]) == ("info", "handled request")

    web = stack.log_lines("web")
    (view_line,) = lines_with(web, f"probe view {marker}")
    assert view_line["request_id"] == request_id
    assert (view_line["method"], view_line["path"]) == ("GET", "/probe/")
    (access_line,) = [
        line for line in web if line["logger"] == "gunicorn.access" and line.get("request_id") == request_id
    ]
    assert (access_line["method"], access_line["path"], access_line["status"]) == ("GET", "/probe/", 200)
    assert access_line["duration"] > 0
    # The client as Caddy saw it, not Caddy's own address.
    assert access_line["client"] == view_line["client"] == proxy_line["request"]["client_ip"]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("3f2b8c1e-6a0d-4c55-9b8e-2d7f1a9c0e42", True),
        ("checkout.7:retry_2", True),
        ("two words", False),
        ("x" * 1024, False),
        ("tab\there", False),
    ],
    ids=["uuid", "own-format", "spaces", "1-KiB", "control-character"],
)
def test_a_client_request_id_is_kept_when_well_formed_and_replaced_otherwise(stack, sent, kept):
    marker = secrets.token_hex(6)
    headers, _ = stack.probe(marker, {"X-Request-ID": sent})
    returned = headers["x-request-id"]

    assert (returned == sent) is kept
    assert len(returned) <= 128 and " " not in returned and "\t" not in returned
    (proxy_line,) = wait_for(
        lambda: [line for line in stack.log_lines("proxy") if marker in line.get("request", {}).get("uri", "")],
        timeout=10,
        message="the proxy's access line",
    )
    assert proxy_line["request_id"] == returned
    (view_line,) = lines_with(stack.log_lines("web"), f"probe view {marker}")
    assert view_line["request_id"] == returned


def test_every_line_the_app_and_the_proxy_log_is_json(stack):
    # Something in every log first: a request, a task, beat's ticks.
    stack.probe(secrets.token_hex(6))
    for service in JSON_SERVICES:
        lines = stack.log_lines(service)
        assert lines, f"{service} logged nothing"
        for line in lines:
            # Caddy logs its first lines before it reads its log settings.
            keys = ("ts", "level", "msg") if service == "proxy" and "msg" in line else ("time", "level", "message")
            assert all(key in line for key in keys), (service, line)
            if service != "proxy":
                assert "logger" in line, (service, line)


def test_metrics_are_refused_through_the_proxy_and_served_inside_the_stack(stack):
    for path in ["/metrics", "/metrics/", "/ready/"]:
        assert stack.request("GET", path)[0] == 404, path
    fetch = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/metrics').read().decode())"
    inside = stack.exec("web", "python", "-c", fetch)
    assert "django_http_request_duration_seconds_bucket" in inside
    assert "readiness_check_ok" in inside


def test_prometheus_counts_every_request_and_task_across_gunicorn_workers(stack, figure):
    def targets_up():
        return stack.value('up{job="web"}') == 1 and stack.value('up{job="worker"}') == 1

    wait_for(targets_up, timeout=90, interval=2, message="Prometheus scraping web and the worker")
    assert stack.value("gunicorn_workers") == 5
    # Each scrape's readiness checks and last-backup read are statements of web's.
    assert stack.value('django_db_query_duration_seconds_count{job="web",alias="default"}') > 0

    requests = 'django_http_request_duration_seconds_count{view="probe",status="200"}'
    succeeded = f'celery_tasks_total{{task="{PROBE_TASK}",state="succeeded"}}'
    retried = f'celery_tasks_total{{task="{PROBE_TASK}",state="retried"}}'
    # Settled: the earlier tests' tasks have run and been scraped.
    wait_for(lambda: stack.value(succeeded) == stack.value(retried), timeout=60, interval=2, message="settled counts")
    before = {name: stack.value(name) for name in (requests, succeeded, retried)}

    count = 30
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: stack.probe(secrets.token_hex(6))[1], range(count)))
    workers = {answer["pid"] for answer in answers}
    figure("gunicorn workers that served the 30 requests", str(len(workers)))
    assert len(workers) >= 2

    def moved():
        return all(stack.value(name) - before[name] >= count for name in before)

    wait_for(moved, timeout=120, interval=3, message="the counters moved by the requests and tasks made")
    # A scrape later (every 15 s): exactly that many, none counted twice.
    time.sleep(20)
    for name in before:
        assert stack.value(name) - before[name] == count, name


def test_the_queue_length_rises_while_the_worker_is_stopped_and_falls_after(stack):
    queue = 'max(celery_queue_length{queue="celery"})'
    wait_for(lambda: stack.value(queue) == 0, timeout=60, interval=2, message="an empty queue")
    stack.compose("stop", "worker", timeout=400)
    try:
        for _ in range(8):
            stack.probe(secrets.token_hex(6))
        wait_for(lambda: stack.value(queue) >= 8, timeout=60, interval=2, message="the queue length of 8 waiting tasks")
    finally:
        stack.compose("start", "worker", timeout=300)
    wait_for(lambda: stack.value(queue) == 0, timeout=120, interval=2, message="the queue drained by the worker")


def test_the_last_backup_is_a_metric(stack):
    now = time.time()
    value = wait_for(
        lambda: stack.value("backup_last_success_timestamp_seconds"),
        timeout=180,
        interval=3,
        message="backup_last_success_timestamp_seconds (the scheduler's first backup)",
    )
    # The first full backup, which the scheduler took when the stack started.
    assert now - 900 < value <= now + 180
