import pytest
from django.test import Client


@pytest.fixture
def behind_proxy(settings):
    settings.ALLOWED_HOSTS = ["service.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.FORWARDED_ALLOW_IPS = ["10.0.0.0/24"]
    return settings


def get(remote_addr):
    return Client(REMOTE_ADDR=remote_addr).get(
        "/admin/login/", HTTP_HOST="service.example.org", HTTP_X_FORWARDED_PROTO="https"
    )


def test_the_proxy_can_say_the_request_came_over_https(behind_proxy):
    assert get("10.0.0.7").status_code == 200


def test_anyone_else_claiming_https_is_redirected(behind_proxy):
    response = get("203.0.113.9")

    assert response.status_code == 301
    assert response["Location"] == "https://service.example.org/admin/login/"


def test_star_trusts_every_peer(behind_proxy):
    behind_proxy.FORWARDED_ALLOW_IPS = ["*"]

    assert get("203.0.113.9").status_code == 200
