import os
import secrets

import pytest
from django.db import DatabaseError, connection
from django.db.utils import load_backend
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from servicekit import health
from servicekit.cache import RedisCache


def test_liveness_answers_a_plain_http_probe_for_localhost(client, settings):
    # Production redirects to HTTPS and checks the host; a probe must pass anyway.
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["service.example.org"]

    response = client.get("/health/", HTTP_HOST="localhost")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readiness_checks_database_cache_and_broker(client):
    response = client.get("/ready/", HTTP_HOST="localhost")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": ["database", "cache", "broker"]}


@pytest.mark.django_db
def test_readiness_names_the_failed_dependency(client, monkeypatch):
    def database_down():
        raise ConnectionError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", database_down)

    response = client.get("/ready/", HTTP_HOST="localhost")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failed": ["database"]}


def payments_api_down():
    raise ConnectionError("payments API: connection refused")


def payments_api_up():
    pass


@pytest.mark.django_db
def test_readiness_runs_the_projects_own_checks(client, settings):
    settings.PROJECT_READY_CHECKS = {"payments-api": f"{__name__}.payments_api_up"}

    response = client.get("/ready/", HTTP_HOST="localhost")

    assert response.status_code == 200
    assert response.json()["checks"] == ["database", "cache", "broker", "payments-api"]

    settings.PROJECT_READY_CHECKS = {"payments-api": f"{__name__}.payments_api_down"}

    response = client.get("/ready/", HTTP_HOST="localhost")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failed": ["payments-api"]}


def test_other_pages_still_check_the_host(client, settings):
    settings.ALLOWED_HOSTS = ["service.example.org"]

    assert client.get("/admin/login/", HTTP_HOST="evil.example.com").status_code == 400


@pytest.mark.django_db
def test_metrics_are_served_to_any_host_and_count_requests_by_view():
    def served(view):
        text = Client().get("/metrics", HTTP_HOST="10.0.0.7:8000").content.decode()
        name = "django_http_request_duration_seconds_count"
        samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]
        return sum(sample.value for sample in samples if sample.name == name and sample.labels["view"] == view), text

    before, _ = served("admin:login")
    for _ in range(3):
        Client().get("/admin/login/")
    after, text = served("admin:login")

    assert after - before == 3
    assert "readiness_check_ok" in text
    assert "celery_queue_length" in text


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/ready/", "/metrics"])
def test_internal_probes_refuse_a_request_a_proxy_relayed(path):
    # The test client's peer, 127.0.0.1, is a trusted proxy (FORWARDED_ALLOW_IPS).
    assert Client().get(path).status_code == 200
    assert Client().get(path, HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 404
    # /health/ stays open to the proxy's own healthcheck.
    assert Client().get("/health/", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 200


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a Redis server: set REDIS_URL, as CI does")
def test_the_production_cache_counts_hits_and_misses():
    def counts():
        names = ("django_cache_get_total", "django_cache_get_hits_total", "django_cache_get_misses_total")
        return [REGISTRY.get_sample_value(name, {"backend": "redis"}) or 0 for name in names]

    cache = RedisCache(os.environ["REDIS_URL"], {})
    key = f"metrics-test-{secrets.token_hex(4)}"
    before = counts()
    assert cache.get(key, "absent") == "absent"
    cache.set(key, "here", timeout=10)
    assert cache.get(key) == "here"

    assert [after - earlier for after, earlier in zip(counts(), before, strict=True)] == [2, 1, 1]


@pytest.mark.django_db
def test_the_production_database_backend_times_each_statement():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL, as CI does")

    def count():
        return REGISTRY.get_sample_value("django_db_query_duration_seconds_count", {"alias": "timed"}) or 0

    timed = load_backend("servicekit.postgresql").DatabaseWrapper({**connection.settings_dict}, alias="timed")
    before = count()
    try:
        with timed.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.executemany("SELECT %s", [(1,), (2,)])
            with pytest.raises(DatabaseError):
                cursor.execute("SELECT no_such_column")
        # Django's check of a kept connection is not a statement of the service's.
        assert timed.is_usable()
    finally:
        timed.close()

    assert count() - before == 3
