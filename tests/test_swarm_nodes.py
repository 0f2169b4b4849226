"""The rendered service on a Docker Swarm of two nodes: this engine (the
manager, labelled for the data services and the proxy) and a second Docker
engine in a privileged container (tests/offline/swarm-node), joined as a
worker over Docker's default bridge. The service keeps its media files in a
bucket (media_backend s3), as one on more than one host must; nothing is
uploaded here, so the bucket is never reached.

The tests run in file order: the deploy spreads web over both nodes; the
second node is drained for maintenance under steady load; then it is lost
at once (its engine killed) under the same load.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from harness.answers import answers_for
from harness.docker import docker
from harness.swarm import Deployment, deployed_service, second_node, swarm, under_load

pytestmark = [pytest.mark.docker, pytest.mark.reliability, pytest.mark.xdist_group("docker")]


@dataclass
class Cluster:
    deployment: Deployment
    # The second node's host name (its container's name) and node id.
    worker: str
    worker_id: str

    def web_hosts(self) -> list[str]:
        """The host names of the nodes where web's tasks run."""
        return sorted(task["Node"] for task in self.deployment.running("web"))


@pytest.fixture(scope="module")
def cluster(render, tmp_path_factory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("swarm-nodes")
    answers = {**answers_for("defaults"), "media_backend": "s3"}
    rendered = render("defaults", media_backend="s3")
    values = {"WEB_REPLICAS": "2", "WORKER_REPLICAS": "1", "AWS_STORAGE_BUCKET_NAME": "media"}
    with swarm() as manager, deployed_service(rendered, answers, directory, manager, **values) as deployment:
        name = f"{deployment.stack}-node2"
        with second_node(name, [deployment.images["v1"]]) as worker_id:
            yield Cluster(deployment, name, worker_id)


def test_web_spreads_over_both_nodes_and_answers_through_the_proxy(cluster, figure):
    deployment = cluster.deployment
    started = time.monotonic()
    result = deployment.deploy(deployment.images["v1"])
    figure("swarm, 2 nodes: first deploy, every service converged", f"{time.monotonic() - started:.0f} s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    hosts = cluster.web_hosts()
    assert len(hosts) == 2 and cluster.worker in hosts and len(set(hosts)) == 2, hosts
    # The proxy, on this node, reaches web on the other one over the overlay
    # network: every request answered, by one replica or the other.
    answers = [deployment.get("/admin/login/")[0] for _ in range(40)]
    assert answers == [200] * 40


def test_a_drained_node_hands_its_tasks_over_without_a_failed_request(cluster, figure):
    deployment = cluster.deployment
    drained = under_load(
        deployment,
        lambda: docker("node", "update", "--availability=drain", cluster.worker_id),
        lambda: cluster.web_hosts() and cluster.worker not in cluster.web_hosts() and len(cluster.web_hosts()) == 2,
        "web's tasks moved off the drained node",
    )
    figure("swarm, 2 nodes: a drained node's web task running elsewhere after", f"{drained.seconds:.0f} s")
    figure("swarm, 2 nodes: requests while a node was drained (sent / failed)", drained.load.summary())
    assert drained.load.failed() == []
    assert len(drained.load.answers) >= 20


def test_a_lost_node_is_replaced_by_the_other(cluster, figure):
    deployment = cluster.deployment
    docker("node", "update", "--availability=active", cluster.worker_id)
    # Back on both nodes: scaled down and up, the new task goes where web has none.
    docker("service", "scale", "--detach=false", f"{deployment.stack}_web=1", timeout=300)
    docker("service", "scale", "--detach=false", f"{deployment.stack}_web=2", timeout=300)
    assert cluster.worker in cluster.web_hosts(), cluster.web_hosts()

    lost = under_load(
        deployment,
        lambda: docker("kill", cluster.worker),
        lambda: len(cluster.web_hosts()) == 2 and cluster.worker not in cluster.web_hosts(),
        "web's lost task replaced on this node",
    )
    figure("swarm, 2 nodes: a lost node's web task replaced after", f"{lost.seconds:.0f} s")
    figure("swarm, 2 nodes: requests while a node was lost (sent / failed)", lost.load.summary())
    # Requests sent to the lost node's replica until the swarm saw it gone
    # may fail; once it is replaced, every request succeeds.
    replaced = lost.started + lost.seconds
    assert lost.load.failed(since=replaced) == []
    assert len([answer for answer in lost.load.answers if answer[0] >= replaced]) >= 10
