"""Sends N no-op tasks to the running worker and waits until all have run.

    python celery_producer.py N     (Django settings from the environment)

Prints one JSON line: {"tasks": N, "seconds": end-to-end time, "acks_late": ...}.
The task is the rendered service's example task `add` (pure, a no-op in cost);
its results go to the rendered result backend (Redis).
"""

import json
import sys
import time

import django

django.setup()

from celery import current_app  # noqa: E402
from celery.result import ResultSet  # noqa: E402
from servicekit.tasks import add  # noqa: E402


def main():
    count = int(sys.argv[1])
    add.delay(0, 0).get(timeout=60)  # the worker is up and the connections are open
    start = time.perf_counter()
    results = ResultSet([add.delay(i, i) for i in range(count)])
    sent = time.perf_counter()
    values = results.join_native(timeout=300)
    end = time.perf_counter()
    assert values == [2 * i for i in range(count)], "missing or wrong results"
    print(
        json.dumps(
            {
                "tasks": count,
                "seconds": end - start,
                "send_seconds": sent - start,
                "broker": current_app.conf.broker_url.split("@")[-1],
            }
        )
    )


if __name__ == "__main__":
    main()
