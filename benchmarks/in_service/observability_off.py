"""observability_on without the service's observability: no request metrics
(servicekit's middleware, its timing PostgreSQL backend, the counting
Redis cache), no RequestIDMiddleware, and no request fields on
Django's log lines.
Started with LOG_FORMAT=text and without PROMETHEUS_MULTIPROC_DIR.

    DJANGO_SETTINGS_MODULE=observability_off BENCH_PACKAGE=<package>

Each entry taken out must be there: a renamed one stops start-up, rather than
leaving this side with the observability it is meant to be without.
"""

import copy

from django.core.exceptions import ImproperlyConfigured
from observability_on import *  # noqa: F403
from observability_on import CACHES, DATABASES, LOGGING, MIDDLEWARE

REMOVED_MIDDLEWARE = [
    "servicekit.metrics.RequestMetricsMiddleware",
    "servicekit.middleware.RequestIDMiddleware",
]
DATABASE_ENGINES = {"servicekit.postgresql": "django.db.backends.postgresql"}
CACHE_BACKENDS = {"servicekit.cache.RedisCache": "django.core.cache.backends.redis.RedisCache"}


def _without(entries, removed, setting):
    missing = [entry for entry in removed if entry not in entries]
    if missing:
        raise ImproperlyConfigured(f"{setting} has no {', '.join(missing)}: update benchmarks/in_service/{__name__}.py")
    return [entry for entry in entries if entry not in removed]


def _replaced(value, replacements, setting):
    if value not in replacements:
        raise ImproperlyConfigured(f"{setting} is {value!r}: update benchmarks/in_service/{__name__}.py")
    return replacements[value]


MIDDLEWARE = _without(MIDDLEWARE, REMOVED_MIDDLEWARE, "MIDDLEWARE")

DATABASES = copy.deepcopy(DATABASES)
DATABASES["default"]["ENGINE"] = _replaced(DATABASES["default"]["ENGINE"], DATABASE_ENGINES, "DATABASES ENGINE")
CACHES = copy.deepcopy(CACHES)
CACHES["default"]["BACKEND"] = _replaced(CACHES["default"]["BACKEND"], CACHE_BACKENDS, "CACHES BACKEND")

# Django's console handler as it was before the request fields: no filter.
LOGGING = copy.deepcopy(LOGGING)
LOGGING["handlers"]["console"]["filters"] = _without(LOGGING["handlers"]["console"]["filters"], ["context"], "filters")
del LOGGING["filters"]["context"]
