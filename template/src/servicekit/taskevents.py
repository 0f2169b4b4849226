"""Celery's side of logging and metrics, connected in every process that
loads the service's Celery app (its celery.py imports this module).

- A task sent while a request is served (or while another task runs, a
  retry included) carries the request's ID in its message headers; its log
  lines in the worker carry that ID, the task's name and its id.
- Celery leaves logging to Django's LOGGING setting (servicekit.logs), so
  that the worker and beat log in the service's format.
- The worker counts the tasks that end by name and state, and how long
  they ran (servicekit.metrics), and serves those on WORKER_METRICS_PORT.
"""

import time
from contextvars import Token
from typing import Any

from celery import signals

from . import context, metrics
from .env import env

REQUEST_ID_HEADER = "request_id"
# Celery's task states -> the state label of celery_tasks_total.
STATES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}

# task id -> when it started, and the token that ends its log fields.
_started: dict[str, tuple[float, Token[dict[str, Any]]]] = {}


@signals.setup_logging.connect
def keep_django_logging(**kwargs):
    """Connected, this signal stops Celery from replacing the log handlers
    with its own: Django's LOGGING configures them."""


@signals.before_task_publish.connect
def send_request_id(headers=None, **kwargs):
    request_id = context.request_id()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


@signals.task_prerun.connect
def task_started(task_id=None, task=None, **kwargs):
    request = task.request
    # A worker finds the message's own headers on the task's request; a task
    # applied locally has them under `headers`, and one run eagerly
    # (development, tests) has the calling request's ID in the context.
    request_id = (
        getattr(request, REQUEST_ID_HEADER, None)
        or (getattr(request, "headers", None) or {}).get(REQUEST_ID_HEADER)
        or context.request_id()
    )
    token = context.bind(request_id=request_id, task_name=task.name, task_id=task_id)
    _started[task_id] = (time.monotonic(), token)


@signals.task_postrun.connect
def task_ended(task_id=None, task=None, state=None, **kwargs):
    if task_id in _started:
        started, token = _started.pop(task_id)
        metrics.TASK_DURATION.labels(task.name).observe(time.monotonic() - started)
        context.reset(token)
    metrics.TASKS.labels(task.name, STATES.get(state, str(state).lower())).inc()


@signals.worker_init.connect
def serve_metrics(**kwargs):
    # Before the pool's processes start: counts from a previous run of this
    # container would be added to this run's.
    metrics.reset_directory()
    metrics.serve_worker_metrics(env.int("WORKER_METRICS_PORT", default=9808, minimum=1))
