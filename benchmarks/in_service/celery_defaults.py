"""The rendered Celery app with Celery's own defaults for delivery.

Started as `celery --app=celery_defaults worker ...` (this directory
on PYTHONPATH) beside the rendered app, to compare the rendered worker settings
(late acks, requeue on a lost worker, prefetch 1, recycled processes) with
Celery's defaults on the same broker, the same concurrency and the same
command line.
"""

import importlib
import os

package = os.environ["BENCH_PACKAGE"]
app = importlib.import_module(f"{package}.celery").app

app.conf.update(
    task_acks_late=False,
    task_reject_on_worker_lost=None,
    worker_prefetch_multiplier=4,
    worker_max_tasks_per_child=None,
)
