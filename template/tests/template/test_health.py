import pytest

from servicekit import health


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
