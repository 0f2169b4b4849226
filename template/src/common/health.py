"""Liveness and readiness.

/health/ says the process answers; it checks nothing else, so an outage of
a dependency never gets healthy web containers restarted.
/ready/ says whether the service can do its work: it checks the database,
the cache and the broker, each with a short timeout, and answers 503 with
the names of the failed checks when one fails (details go to the log).
"""

import logging

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)

BROKER_TIMEOUT = 2.0


def liveness(request):
    return JsonResponse({"status": "ok"})


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_cache():
    cache.set("readiness-probe", "ok", timeout=10)
    if cache.get("readiness-probe") != "ok":
        raise RuntimeError("the cache did not return the value just written")


def check_broker():
    from celery import current_app

    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT)


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


def readiness(request):
    failed = []
    for name, check in CHECKS.items():
        try:
            check()
        except Exception:  # whatever the failure, the service is not ready
            # The details go to the log, not to whoever can reach the probe.
            logger.exception("Readiness check failed: %s", name)
            failed.append(name)
    if failed:
        return JsonResponse({"status": "unavailable", "failed": failed}, status=503)
    return JsonResponse({"status": "ok", "checks": list(CHECKS)})
