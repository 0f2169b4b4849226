import pytest
from django.test import Client

from servicekit.proxy import TrustedProxies


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


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # The proxy appended the address it saw; the client wrote the rest.
        ("10.0.0.7", "192.0.2.66, 203.0.113.9", "203.0.113.9"),
        # Proxies in a chain are skipped, from the right.
        ("10.0.0.7", "203.0.113.9, 10.0.0.8", "203.0.113.9"),
        # Anyone else's X-Forwarded-For is their own claim.
        ("203.0.113.9", "192.0.2.66", "203.0.113.9"),
        # A malformed entry: the last address a proxy vouched for.
        ("10.0.0.7", "203.0.113.9, not-an-address", "10.0.0.7"),
        ("10.0.0.7", "", "10.0.0.7"),
    ],
)
def test_the_client_is_the_nearest_address_that_is_not_a_proxy(peer, forwarded_for, client):
    assert TrustedProxies("10.0.0.0/24").client(peer, forwarded_for) == client
