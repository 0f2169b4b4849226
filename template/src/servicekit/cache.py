"""Django's Redis cache, counted for /metrics.

django-prometheus's own Redis backends need django-redis; this one is
Django's built-in backend, counting its reads in django-prometheus's
counters (django_cache_get_total, its hits and misses, and the reads that
failed), labelled backend="redis".
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django_prometheus.cache.metrics import (
    django_cache_get_fail_total,
    django_cache_get_total,
    django_cache_hits_total,
    django_cache_misses_total,
)

LABEL = "redis"
_MISSING = object()


class RedisCache(DjangoRedisCache):
    def get(self, key, default=None, version=None):
        django_cache_get_total.labels(LABEL).inc()
        try:
            value = super().get(key, _MISSING, version)
        except Exception:
            django_cache_get_fail_total.labels(LABEL).inc()
            raise
        if value is _MISSING:
            django_cache_misses_total.labels(LABEL).inc()
            return default
        django_cache_hits_total.labels(LABEL).inc()
        return value
