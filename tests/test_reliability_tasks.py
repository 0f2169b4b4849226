"""Tasks survive their worker: a real Celery worker over a real Redis, with
production settings, killed, stopped and cut off from its broker mid-work.

The tasks come from a project-owned app, added the way a service owner adds
one (an app under src/ listed in PROJECT_APPS). Each task sleeps, then counts
its completion in Redis under its task id, so that the test can tell which
tasks ran, which ran twice and which were lost.

How Redis gives back the tasks of a worker that died (kombu's Redis transport):
a message delivered to a worker stays in the ``unacked`` hash, indexed by its
delivery time in ``unacked_index``, until the worker acknowledges it (late:
after the task ran). A worker that is killed never does. Any worker puts such
a message back on its queue once it is older than the visibility timeout, in
a sweep that it runs when it starts and then every 100 s (kombu's
``unacked_restore_interval`` times ``unacked_restore_throttle``). A warm
shutdown instead finishes the running tasks and puts back the messages it had
reserved at once.
"""

import json
import signal
import time
import uuid

import pytest
import redis

from harness import processes, servers
from harness.answers import answers_for
from harness.policy import require
from harness.service import log_of, prepare_service, wait_for

pytestmark = [pytest.mark.service, pytest.mark.reliability]

TASKS = 24
TASK_SECONDS = 3
CONCURRENCY = 4
# Short limits keep the test short: a lost task comes back after
# VISIBILITY_TIMEOUT, which production settings require to exceed the hard
# time limit (so that Redis never delivers a running task twice).
TIME_LIMITS = {"CELERY_TASK_TIME_LIMIT": 15, "CELERY_TASK_SOFT_TIME_LIMIT": 12}
VISIBILITY_TIMEOUT = 20

STARTED, COMPLETED = "reliability:started", "reliability:completed"

APP_TASKS = f'''"""Tasks for the template's reliability tests: slow, idempotent, counted."""

import time

import redis
from celery import shared_task
from django.conf import settings


@shared_task(bind=True, ignore_result=True)
def slow(self, seconds):
    """Sleeps, then counts one more completion of this task id."""
    counters = redis.Redis.from_url(settings.REDIS_URL)
    counters.hincrby("{STARTED}", self.request.id, 1)
    time.sleep(seconds)
    counters.hincrby("{COMPLETED}", self.request.id, 1)
'''


@pytest.fixture(scope="module")
def service(render, tmp_path_factory):
    path = tmp_path_factory.mktemp("run-reliability-tasks") / "service"
    service = prepare_service(render("defaults"), path, answers_for("defaults"))
    # The service owner's way to add tasks: an app of its own in PROJECT_APPS.
    app = path / "src" / "reliability"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "tasks.py").write_text(APP_TASKS)
    project = path / "src" / service.package / "settings" / "project.py"
    settings = project.read_text()
    assert "PROJECT_APPS = []" in settings
    project.write_text(settings.replace("PROJECT_APPS = []", 'PROJECT_APPS = ["reliability"]'))
    yield service
    service.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A Redis of this module's own: the tests stop and restart it."""
    executable = servers.find_redis_server()
    require(executable, f"redis-server not found: {servers.REDIS_HINT}")
    with servers.RedisServer(tmp_path_factory.mktemp("broker"), executable=executable) as server:
        yield server


@pytest.fixture
def env(service, broker, postgres_server, tmp_path):
    redis.Redis.from_url(broker.url).flushall()  # No messages or counts from an earlier test.
    return service.production_env(
        postgres_server.url,
        broker.url,
        CELERY_VISIBILITY_TIMEOUT=VISIBILITY_TIMEOUT,
        CELERY_WORKER_ALIVE_FILE=tmp_path / "worker.alive",
        **TIME_LIMITS,
    )


class Counts:
    """What the tasks recorded in Redis, per task id."""

    def __init__(self, url):
        self.client = redis.Redis.from_url(url, decode_responses=True)

    def started(self):
        return {key: int(value) for key, value in self.client.hgetall(STARTED).items()}

    def completed(self):
        return {key: int(value) for key, value in self.client.hgetall(COMPLETED).items()}

    def running(self):
        completed = self.completed()
        return {task for task in self.started() if task not in completed}

    def unacked_delivery_times(self):
        """When each message that no worker acknowledged yet was delivered."""
        return [score for _, score in self.client.zrange("unacked_index", 0, -1, withscores=True)]


def send(service, env, count, seconds=TASK_SECONDS):
    """Sends `count` tasks as the service's own code would; returns their ids."""
    code = (
        "import json, django; django.setup(); from reliability.tasks import slow;"
        f"print(json.dumps([slow.delay({seconds}).id for _ in range({count})]))"
    )
    return json.loads(service.python(code, env=env).stdout)


def start_worker(service, env, name):
    return service.start_worker(
        env,
        f"--concurrency={CONCURRENCY}",
        f"--hostname={name}@%h",
        log_name=f"worker-{name}-{uuid.uuid4().hex[:6]}",
    )


def wait_until_busy(counts, worker):
    """Waits until the worker finished some tasks and runs as many as it can; returns their ids."""

    def busy():
        assert worker.poll() is None, log_of(worker)
        running = counts.running()
        return len(counts.completed()) >= CONCURRENCY and len(running) == CONCURRENCY and running

    return wait_for(busy, timeout=60, interval=0.1, message="tasks to be running")


def wait_until_all_completed(counts, task_ids, worker, timeout):
    def done():
        assert worker.poll() is None, log_of(worker)
        return set(task_ids) <= set(counts.completed())

    wait_for(done, timeout=timeout, interval=0.5, message=f"all {len(task_ids)} tasks to complete")


def tally(task_ids, counts):
    completed = counts.completed()
    done = [task for task in task_ids if task in completed]
    twice = [task for task in done if completed[task] > 1]
    return f"{len(task_ids)} / {len(done)} / {len(task_ids) - len(done)} (ran twice: {len(twice)})"


def test_tasks_of_a_killed_worker_run_on_a_new_worker(service, broker, env, figure):
    counts = Counts(broker.url)
    task_ids = send(service, env, TASKS)
    worker = start_worker(service, env, "doomed")
    wait_until_busy(counts, worker)

    # The whole worker at once, as the OOM killer or a lost node would:
    # the main process and its pool processes, with no chance to clean up.
    # (stop returns once every process of the worker is gone: the counts
    # below are final.)
    assert service.stop(worker, signal.SIGKILL) == -signal.SIGKILL
    lost_in_flight = counts.running()
    assert lost_in_flight
    delivered = counts.unacked_delivery_times()
    assert len(delivered) >= len(lost_in_flight)  # Still owed to the queue, not gone.

    # Their messages go back to the queue once older than the visibility
    # timeout, in the sweep a worker runs when it starts: start the new worker
    # then, rather than wait up to 100 s for a running worker's next sweep.
    wait_for(
        lambda: time.time() > max(delivered) + VISIBILITY_TIMEOUT + 1,
        timeout=VISIBILITY_TIMEOUT + 30,
        interval=0.5,
        message="the lost messages to outlive the visibility timeout",
    )
    replacement = start_worker(service, env, "replacement")
    wait_until_all_completed(counts, task_ids, replacement, timeout=60 + TASKS * TASK_SECONDS / CONCURRENCY)

    ran_again = log_of(replacement)
    assert all(f"reliability.tasks.slow[{task}] succeeded" in ran_again for task in lost_in_flight)
    figure("tasks, worker SIGKILLed mid-run: in flight at the kill", len(lost_in_flight))
    figure("tasks, worker SIGKILLed mid-run: sent / completed / lost", tally(task_ids, counts))
    assert counts.unacked_delivery_times() == []
    assert service.stop(replacement, signal.SIGTERM) == 0


def test_warm_shutdown_finishes_the_running_tasks_and_requeues_the_rest(service, broker, env, figure):
    counts = Counts(broker.url)
    task_ids = send(service, env, TASKS)
    worker = start_worker(service, env, "leaving")
    running_at_signal = wait_until_busy(counts, worker)

    # SIGTERM to the main process alone, as `docker stop` sends it.
    assert processes.stop(worker, signal.SIGTERM, timeout=TASK_SECONDS + 30, group=False) == 0, log_of(worker)

    # Every task that was running finished before the worker left, and
    # nothing it had taken is left unacknowledged: the rest is on the queue.
    assert running_at_signal <= set(counts.completed())
    assert counts.unacked_delivery_times() == []
    completed_by_first = len(counts.completed())

    successor = start_worker(service, env, "successor")
    wait_until_all_completed(counts, task_ids, successor, timeout=60 + TASKS * TASK_SECONDS / CONCURRENCY)

    figure("tasks, worker SIGTERMed mid-run: running at the signal, all finished", len(running_at_signal))
    figure("tasks, worker SIGTERMed mid-run: completed before / after the restart", f"{completed_by_first} / {TASKS}")
    figure("tasks, worker SIGTERMed mid-run: sent / completed / lost", tally(task_ids, counts))
    assert all(count == 1 for count in counts.completed().values())
    assert service.stop(successor, signal.SIGTERM) == 0


def test_worker_reconnects_after_a_redis_restart_and_goes_on_consuming(service, broker, env, figure):
    counts = Counts(broker.url)
    worker = start_worker(service, env, "steadfast")
    before = send(service, env, CONCURRENCY, seconds=1)
    wait_until_all_completed(counts, before, worker, timeout=60)

    broker.stop()
    wait_for(lambda: "Connection to broker lost" in log_of(worker), timeout=60, message="the worker to miss its broker")
    broker.start()  # Same port, and empty: this Redis keeps nothing on disk.

    after = send(service, env, TASKS, seconds=1)
    wait_until_all_completed(counts, after, worker, timeout=90)

    figure("tasks, Redis restarted under an idle worker: sent after / completed / lost", tally(after, counts))
    assert worker.poll() is None  # The same process, never restarted, that lost its broker...
    log = log_of(worker)
    assert log.count("Connected to redis://") == 2, log  # ...and connected again.
    assert service.stop(worker, signal.SIGTERM) == 0
