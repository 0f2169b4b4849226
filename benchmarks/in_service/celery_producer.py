"""Sends N no-op tasks to the running worker and waits until all have run.

    python celery_producer.py N KIT     (Django settings from the environment)

Prints one JSON line: {"tasks": N, "seconds": end-to-end time, "send_seconds": ..., "broker": ...}.
The task is the example task `add` of the service's shared package KIT (pure,
a no-op in cost); its results go to the rendered result backend (Redis).
"""

import importlib
import json
import sys
import time

import django
from celery import current_app
from celery.result import ResultSet


def main():
    count, kit = int(sys.argv[1]), sys.argv[2]
    django.setup()
    add = importlib.import_module(f"{kit}.tasks").add
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
