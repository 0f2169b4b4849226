"""Figure 7: Celery end to end, the rendered worker settings against Celery's defaults."""

import json
import signal

from benchmarks.measure import alternate, log, median
from benchmarks.results import Figure
from benchmarks.stack import IN_SERVICE, Stack
from harness.answers import KIT
from harness.service import wait_for


def run(stack: Stack, rounds, tasks):
    service = stack.service

    def measure(name):
        """A new worker, the queue purged; the seconds `tasks` tasks took end to end."""
        alive = stack.work / f"worker-{name}.alive"
        env = stack.env(CELERY_WORKER_ALIVE_FILE=alive, BENCH_PACKAGE=stack.package)
        app = stack.package if name == "rendered" else "celery_defaults"
        service.python("import django; django.setup(); from celery import current_app as a; a.control.purge()", env=env)
        worker = service.start_worker(env, app=app, log_name=f"worker-{name}")
        try:
            wait_for(alive.exists, timeout=120, message=f"the {name} worker")
            producer = IN_SERVICE / "celery_producer.py"
            out = service.run(service.bin / "python", producer, tasks, KIT, env=env, timeout=600)
            result = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            service.stop(worker, signal.SIGTERM, timeout=60)
        log(f"celery ({name}): {tasks} tasks in {result['seconds']:.2f} s")
        return result["seconds"]

    log(f"celery: {rounds} rounds of {tasks} tasks, rendered settings / Celery defaults")
    runs = alternate(rounds, rendered=lambda: measure("rendered"), defaults=lambda: measure("defaults"))
    rendered, defaults = median(runs["rendered"]), median(runs["defaults"])
    return [
        Figure(
            key="celery",
            title=f"Celery: {tasks:,} no-op tasks end to end, rendered worker settings "
            f"(late acks, prefetch 1; concurrency {stack.available_cpus()})",
            compared_with="Celery's defaults (early acks, prefetch 4), same broker and concurrency",
            value=f"{tasks / rendered:.0f} vs {tasks / defaults:.0f} tasks/s",
            ratio=defaults / rendered,
            target="report the ratio; explain the trade-off",
            samples=runs,
        )
    ]
