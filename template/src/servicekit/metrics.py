"""Prometheus metrics: what the service exposes on /metrics, and the Celery
worker on its own port.

The cache counters are django-prometheus's (servicekit.cache counts them).
This module has:

- django_http_request_duration_seconds{view,method,status}: every request,
  timed from the first middleware (RequestMetricsMiddleware); its _count
  is the number of requests. One histogram rather than django-prometheus's
  middleware, which updates a dozen metrics per request: in multiprocess
  mode each update is a write to a shared file, and together they cost more
  than a tenth of a short request's time.
- django_db_query_duration_seconds{alias}: every statement, timed by
  production's database backend (servicekit.postgresql); its _count is the
  number of statements. django-prometheus's backend, which creates a cursor
  class for each cursor and also counts Django's health check of a kept
  connection, added 16 % to the instructions of a one-query ORM call; this
  wrapper adds 5 %;
- gunicorn_workers: the gunicorn workers alive in this container;
- celery_tasks_total{task,state} and celery_task_duration_seconds{task}, from
  the worker (servicekit.taskevents);
- at each scrape, celery_queue_length{queue} (the messages waiting in the
  broker, which a stopped worker cannot report), readiness_check_ok{check}
  (the checks of /ready/) and backup_last_success_timestamp_seconds (as
  the backup service records it).

gunicorn's workers and Celery's pool processes are separate processes: with
PROMETHEUS_MULTIPROC_DIR set (the image sets it, on the in-memory /tmp), each
writes its values to files there and a scrape adds them up, so that every
request is counted whichever worker served it. The directory is emptied when
gunicorn or the worker starts (gunicorn.conf.py, servicekit.taskevents).
"""

import functools
import shutil
import time
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.django import PrometheusDjangoView

from . import health
from .env import env

# prometheus-client reads the same variable when it is imported.
MULTIPROCESS_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
# The paths servicekit.middleware.ProbeMiddleware answers itself.
PROBE_PATHS = frozenset({"/health/", "/ready/", "/metrics"})

# Labelled metrics write nothing until a label's first value: importing this
# module creates no file in the directory.
REQUEST_DURATION = Histogram(
    "django_http_request_duration_seconds",
    "Requests, by view, method and status, and how long Django took to answer them.",
    ["view", "method", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf")),
)
QUERY_DURATION = Histogram(
    "django_db_query_duration_seconds",
    "Database statements, by database alias, and how long they took.",
    ["alias"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf")),
)
TASKS = Counter("celery_tasks", "Celery tasks that ended, by task and state.", ["task", "state"])
TASK_DURATION = Histogram(
    "celery_task_duration_seconds",
    "How long Celery tasks ran, by task.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, float("inf")),
)


def create_directory():
    if MULTIPROCESS_DIR:
        Path(MULTIPROCESS_DIR).mkdir(parents=True, exist_ok=True)


def reset_directory():
    """Empties PROMETHEUS_MULTIPROC_DIR, in the process that starts the
    others, before it starts them: a previous run's counts would be added
    to this run's."""
    if MULTIPROCESS_DIR:
        shutil.rmtree(MULTIPROCESS_DIR, ignore_errors=True)
    create_directory()


def gunicorn_worker_started():
    """Counts this process in gunicorn_workers, until process_exited(pid)."""
    Gauge("gunicorn_workers", "gunicorn workers alive in this container.", multiprocess_mode="livesum").set(1)


def process_exited(pid):
    """Drops a dead process's live gauges (gunicorn_workers)."""
    if MULTIPROCESS_DIR:
        multiprocess.mark_process_dead(pid)


class ScrapeTimeCollector:
    """The values read when Prometheus scrapes: the broker's queue lengths,
    the readiness checks and the last backup."""

    def describe(self):
        # Nothing is collected when the collector is registered.
        return []

    def collect(self):
        queues = GaugeMetricFamily("celery_queue_length", "Messages waiting in each Celery queue.", labels=["queue"])
        for queue, length in health.queue_lengths().items():
            queues.add_metric([queue], length)
        yield queues

        ready = GaugeMetricFamily("readiness_check_ok", "Whether each check of /ready/ passes.", labels=["check"])
        for check, ok in health.run_checks().items():
            ready.add_metric([check], 1 if ok else 0)
        yield ready

        last_backup = health.last_backup()
        if last_backup is not None:
            yield GaugeMetricFamily(
                "backup_last_success_timestamp_seconds",
                "When the newest full backup ended (Unix time).",
                value=last_backup,
            )


class SingleProcessCollector:
    """The default registry's metrics, without PROMETHEUS_MULTIPROC_DIR
    (development: one process)."""

    def describe(self):
        return []

    def collect(self):
        yield from REGISTRY.collect()


def process_registry():
    """The values of every process of this container (or of this process alone)."""
    combined = CollectorRegistry()
    if MULTIPROCESS_DIR:
        create_directory()
        multiprocess.MultiProcessCollector(combined)
    else:
        combined.register(SingleProcessCollector())
    return combined


@functools.cache
def _metrics_view():
    combined = process_registry()
    combined.register(ScrapeTimeCollector())
    return PrometheusDjangoView.as_view(registry=combined)


def view(request):
    """/metrics, in Prometheus's text format: web's processes, and the
    scrape-time values."""
    return _metrics_view()(request)


def serve_worker_metrics(port):
    """The Celery worker's metrics (its pool processes' values added up), on
    a port of their own: the worker has no web server."""
    start_http_server(port, registry=process_registry())


def time_query(execute, sql, params, many, context):
    """A database execute wrapper (Django's execute_wrappers): times the
    statement, failed or not."""
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        QUERY_DURATION.labels(context["connection"].alias).observe(time.perf_counter() - started)


# Methods that label requests as they are; any other is "other", so that a
# client cannot create series at will.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetricsMiddleware:
    """Times each request and counts it by view (its URL pattern's name, or
    its dotted path), method and status. A probe counts under its path; a
    request that matched no URL under "<unresolved>"."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match is not None:
            view = match.view_name
        elif request.path_info in PROBE_PATHS:
            view = request.path_info
        else:
            view = "<unresolved>"
        method = request.method if request.method in METHODS else "other"
        REQUEST_DURATION.labels(view, method, str(response.status_code)).observe(time.perf_counter() - started)
        return response
