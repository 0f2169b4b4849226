"""The rendered service on Docker Swarm, on a real engine: deploy/swarm/ and
scripts/swarm.sh, run as an operator runs them (`make swarm-deploy`), on a
one-node swarm that this module initialises and leaves again (unless the
engine was in a swarm already).

One deployment (the defaults variant: Caddy, media in a volume, beat) serves
the module, and the tests run in file order, each starting from where the
last one left it: the first deploy, a killed web task, a rolling update
under load, an update whose image is broken, three workers of which one is
killed, two deploys at once of an image with a new migration, and a second
node, which the next deploy refuses while media files are in a volume
(test_swarm_nodes.py runs a service on two nodes).

The images are the service's own build with a marker file in its static
files (release.txt: "v1", "v2", ...), so that each response through the
proxy says which image served it. The tasks and the migration counted by
the tests come from a project app added the way a service owner adds one.
The figures (requests sent and failed, the rollback's time) are printed at
the end of the run.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from harness import service as service_tools
from harness.answers import DOMAIN, REQUIRED_ANSWERS, answers_for
from harness.docker import docker
from harness.swarm import COMPLETED, Deployment, deployed_service, second_node, swarm, under_load

pytestmark = [pytest.mark.docker, pytest.mark.reliability, pytest.mark.xdist_group("docker")]

TASK_SECONDS = 2
# A lost task comes back after the visibility timeout, which must exceed
# the hard time limit (so that Redis never hands out a running task twice).
TASK_LIMITS = {"CELERY_TASK_TIME_LIMIT": "15", "CELERY_TASK_SOFT_TIME_LIMIT": "12", "CELERY_VISIBILITY_TIMEOUT": "20"}


@pytest.fixture(scope="module")
def deployment(render, tmp_path_factory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("swarm")
    values = {"WEB_REPLICAS": "2", "WORKER_REPLICAS": "1", **TASK_LIMITS}
    with (
        swarm() as node,
        deployed_service(render("defaults"), answers_for("defaults"), directory, node, **values) as deployment,
    ):
        yield deployment


def test_a_deploy_refuses_what_it_cannot_run_and_names_it(deployment):
    # A secret left in .env, where Swarm would put it in the environment.
    refused = deployment.deploy(deployment.images["v1"], SECRET_KEY="x" * 50)
    assert refused.returncode != 0
    assert (
        f"SECRET_KEY is set in .env: on Swarm it is the Docker secret {deployment.slug}-secret-key" in refused.stderr
    ), refused.stderr
    assert "nothing was deployed" in refused.stderr
    assert docker("stack", "ls", "--format", "{{.Name}}").stdout.split().count(deployment.stack) == 0


def test_the_stack_converges_healthy_and_answers_through_the_proxy(deployment, figure):
    started = time.monotonic()
    result = deployment.deploy(deployment.images["v1"])
    figure("swarm: first deploy, every service converged", f"{time.monotonic() - started:.0f} s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every service has converged" in result.stdout

    for service, replicas in {"web": 2, "worker": 1, "beat": 1, "proxy": 1, "db": 1, "redis": 1, "cache": 1}.items():
        running = deployment.running(service)
        assert len(running) == replicas, (service, deployment.tasks(service))
    # The job ran to completion once (after failed attempts, when the
    # database was not up yet).
    jobs = deployment.tasks("migrate")
    assert [job["CurrentState"].split()[0] for job in jobs].count("Complete") == 1, jobs
    for container in deployment.containers("web"):
        health = docker("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()
        assert health == "healthy"

    assert deployment.get("/health/")[0] == 200
    assert deployment.get("/static/release.txt") == (200, b"v1\n")
    # /ready/ is for the orchestrator, not the internet: the proxy refuses
    # it, and web answers it on its own network.
    assert deployment.get("/ready/")[0] == 404
    ready = deployment.exec(
        "web", "python", "-c",
        "import http.client; c = http.client.HTTPConnection('127.0.0.1', 8000); c.request('GET', '/ready/');"
        "print(c.getresponse().status)",
    )  # fmt: skip
    assert ready.strip() == "200"

    # .env's values arrive as Docker Compose reads them: a quoted one unquoted.
    sender = deployment.shell("from django.conf import settings; print(settings.DEFAULT_FROM_EMAIL)")
    assert sender == f"{REQUIRED_ANSWERS['project_name']} <noreply@{DOMAIN}>"

    # The secrets are files under /run/secrets/, not environment variables.
    environment = deployment.spec("web")["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
    assert "SECRET_KEY_FILE=/run/secrets/secret-key" in environment
    # .env's lines for them are empty, which the settings take for unset.
    assert not [line for line in environment if line.partition("=")[0] in deployment.secrets and line.partition("=")[2]]
    for value in deployment.secrets.values():
        assert value not in json.dumps(deployment.spec("web"))


def test_a_killed_web_task_is_replaced_while_requests_go_on_succeeding(deployment, figure):
    before = {task["ID"] for task in deployment.running("web")}
    killed = under_load(
        deployment,
        lambda: docker("kill", deployment.containers("web")[0]),
        lambda: len(deployment.running("web")) == 2 and {task["ID"] for task in deployment.running("web")} != before,
        "a new web task",
    )
    figure("swarm: killed web task replaced after", f"{killed.seconds:.0f} s")
    figure("swarm: requests while a web task was killed and replaced (sent / failed)", killed.load.summary())
    assert killed.load.failed() == []
    assert len(killed.load.answers) >= 20


def test_a_rolling_update_under_load_fails_no_request(deployment, figure):
    update = under_load(deployment, lambda: deployment.deploy(deployment.images["v2"]))
    result, load = update.outcome, update.load
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figure("swarm: rolling update of every app service", f"{update.seconds:.0f} s")
    figure("swarm: requests during the rolling update (sent / failed)", load.summary())
    assert load.failed() == []
    # Served by the old image, then by the new one.
    assert load.releases()[0] == "v1" and load.releases()[-1] == "v2", load.releases()
    assert all(task["Image"].startswith(deployment.images["v2"]) for task in deployment.running("web"))


def test_an_update_whose_image_fails_its_healthcheck_is_rolled_back_unseen(deployment, figure):
    update = under_load(deployment, lambda: deployment.deploy(deployment.images["broken"]))
    result, load = update.outcome, update.load
    figure("swarm: a deploy of a broken image, until rolled back", f"{update.seconds:.0f} s")
    figure("swarm: requests during the failed update (sent / failed)", load.summary())
    assert result.returncode != 0
    assert f"{deployment.stack}_web" in result.stderr and "rolled back" in result.stderr, result.stderr
    web = deployment.spec("web")
    assert web["UpdateStatus"]["State"] == "rollback_completed"
    assert web["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith(deployment.images["v2"])
    # Traffic never saw it.
    assert "broken" not in load.releases()
    assert load.failed() == []


def test_three_workers_lose_no_task_when_one_is_killed(deployment, figure):
    result = deployment.deploy(deployment.images["v2"], WORKER_REPLICAS="3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(deployment.running("worker")) == 3
    deployment.redis("del", COMPLETED)

    sent = json.loads(
        deployment.shell(
            "import json; from swarmcheck.tasks import slow; "
            f"print(json.dumps([slow.delay({TASK_SECONDS}).id for _ in range(30)]))"
        )
    )
    time.sleep(TASK_SECONDS + 1)
    docker("kill", deployment.containers("worker")[0])

    def completed() -> dict[str, int]:
        lines = deployment.redis("hgetall", COMPLETED).split()
        return {key: int(value) for key, value in zip(lines[::2], lines[1::2], strict=True)}

    started = time.monotonic()
    counts = service_tools.wait_for(
        lambda: len(completed()) == len(sent) and completed(), timeout=300, interval=2, message="every task"
    )
    figure("swarm: 30 tasks over 3 workers, one killed: all done after", f"{time.monotonic() - started:.0f} s")
    assert set(counts) == set(sent)
    assert set(counts.values()) == {1}


def test_two_deploys_at_once_migrate_once_and_both_converge(deployment):
    image = deployment.images["v3"]
    results: list[subprocess.CompletedProcess[str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(deployment.deploy(image, WORKER_REPLICAS="3"))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for result in results:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert deployment.sql("select count(*) from swarm_migration_runs") == "1"
    assert deployment.sql("select count(*) from django_migrations where app = 'swarmcheck'") == "1"
    for service in ("web", "worker", "beat"):
        assert all(task["Image"].startswith(image) for task in deployment.running(service)), service
    assert deployment.get("/static/release.txt") == (200, b"v3\n")


def test_a_second_node_is_refused_while_media_files_are_in_a_volume(deployment):
    """A volume is one host's: web on another node would not see the files."""
    with second_node(f"{deployment.stack}-node2", []):
        refused = deployment.deploy(deployment.images["v2"])
    assert refused.returncode != 0
    assert "this swarm has 2 nodes, and the media files are in a volume" in refused.stderr, refused.stderr
    assert "media_backend=s3" in refused.stderr and "nothing was deployed" in refused.stderr
    # Still the last deploy's image.
    web = deployment.spec("web")["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert web.startswith(deployment.images["v3"])
