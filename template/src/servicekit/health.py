"""Liveness and readiness.

/health/ says the process answers; it checks nothing else, so an outage of
a dependency never gets healthy web containers restarted.
/ready/ says whether the service can do its work: it checks the database,
the cache and the broker, and the service's own dependencies listed in
settings.PROJECT_READY_CHECKS (name -> dotted path of a callable that raises
when its dependency is unusable). The checks run side by side within one
deadline, and /ready/ answers 503 with the names of the failed checks when
one fails or hangs (details go to the log).
"""

import functools
import logging
from concurrent.futures import ThreadPoolExecutor, wait

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import Error as DatabaseError
from django.db import connection
from django.http import JsonResponse
from django.utils.module_loading import import_string
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

BROKER_TIMEOUT = 2.0
# The checks run side by side: /ready/ answers within this, whatever hangs,
# under the 5 s timeout of the compose healthcheck.
READY_DEADLINE = 4.0
_checks_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readiness")


def liveness(request):
    return JsonResponse({"status": "ok"})


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_cache():
    cache.set("readiness-probe", "ok", timeout=10)
    if cache.get("readiness-probe") != "ok":
        raise RuntimeError("the cache did not return the value just written")


@functools.cache
def redis_client(url):
    # One client per process and URL: its pool keeps connections between
    # probes (opening one per probe was most of the probe's time), hands one
    # to each thread, and replaces those a Redis restart closed. The timeouts
    # and no retries free the probe's thread within BROKER_TIMEOUT when Redis
    # hangs (redis-py retries ten times by default).
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=BROKER_TIMEOUT,
        socket_timeout=BROKER_TIMEOUT,
        retry=Retry(NoBackoff(), retries=0),
    )


def redis_broker_url():
    """Celery's broker URL when the broker is Redis, else None."""
    from celery import current_app

    url = current_app.conf.broker_url or ""
    return url if url.startswith(("redis://", "rediss://")) else None


def check_broker():
    from celery import current_app

    if url := redis_broker_url():
        redis_client(url).ping()
        return
    # Any other transport: connect and disconnect through kombu.
    options = {"socket_connect_timeout": BROKER_TIMEOUT, "socket_timeout": BROKER_TIMEOUT}
    with current_app.connection_for_write(transport_options=options) as conn:
        # kombu takes the timeout in seconds as a float; its type stubs say int.
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT)  # type: ignore[arg-type]


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


def all_checks():
    """The template's checks, then the service's own (PROJECT_READY_CHECKS)."""
    project = {name: import_string(path) for name, path in settings.PROJECT_READY_CHECKS.items()}
    return CHECKS | project


def _run_check(check):
    try:
        check()
    finally:
        # This thread's own database connection stays open for the next probe,
        # unless it failed or is older than CONN_MAX_AGE.
        connection.close_if_unusable_or_obsolete()


def run_checks():
    """name -> whether the check passed within READY_DEADLINE."""
    checks = all_checks()
    futures = {name: _checks_pool.submit(_run_check, check) for name, check in checks.items()}
    done, _ = wait(futures.values(), timeout=READY_DEADLINE)
    results = {}
    for name, future in futures.items():
        if future not in done:
            logger.error("Readiness check timed out after %s s: %s", READY_DEADLINE, name)
            results[name] = False
        elif (error := future.exception()) is not None:
            # The details go to the log, not to whoever can reach the probe.
            logger.error("Readiness check failed: %s", name, exc_info=error)
            results[name] = False
        else:
            results[name] = True
    return results


def readiness(request):
    results = run_checks()
    failed = [name for name, ok in results.items() if not ok]
    if failed:
        return JsonResponse({"status": "unavailable", "failed": failed}, status=503)
    return JsonResponse({"status": "ok", "checks": list(results)})


def queue_lengths():
    """queue -> messages waiting in the broker, for a Redis broker (empty
    for any other, or when Redis does not answer: the readiness checks say
    that). Kombu keeps a queue's messages of each priority in a list of its
    own: they are added up."""
    from celery import current_app

    url = redis_broker_url()
    if url is None:
        return {}
    queues = [queue.name for queue in current_app.conf.task_queues or []] or [current_app.conf.task_default_queue]
    separator = "\x06\x16"
    steps = [step for step in current_app.conf.broker_transport_options.get("priority_steps", [0, 3, 6, 9]) if step]
    client = redis_client(url)
    try:
        with client.pipeline(transaction=False) as pipeline:
            for queue in queues:
                pipeline.llen(queue)
                for step in steps:
                    pipeline.llen(f"{queue}{separator}{step}")
            lengths = pipeline.execute()
    except redis.RedisError:
        return {}
    per_queue = len(steps) + 1
    return {queue: sum(lengths[index * per_queue : (index + 1) * per_queue]) for index, queue in enumerate(queues)}


def last_backup():
    """Unix time of the end of the newest full backup, as the backup service
    recorded it (docker/postgres/repository.sh: a setting of this database);
    None when none is recorded, or the database does not answer."""
    if connection.vendor != "postgresql":
        return None
    query = """
        SELECT split_part(setting, '=', 2)
        FROM pg_db_role_setting, unnest(setconfig) AS setting
        WHERE setrole = 0
          AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND setting LIKE 'servicekit.last_backup=%'
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            row = cursor.fetchone()
    except DatabaseError:
        logger.warning("The time of the last backup could not be read", exc_info=True)
        return None
    return float(row[0]) if row and row[0] else None
