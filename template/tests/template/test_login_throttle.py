import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db

PASSWORDS = {"alice": "correct horse battery staple", "bob": "another long passphrase"}


def log_in(username, password, address="203.0.113.9"):
    client = Client(REMOTE_ADDR=address)
    return client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"}).status_code


@pytest.fixture
def users():
    for username, password in PASSWORDS.items():
        get_user_model().objects.create_superuser(username, f"{username}@example.org", password)


# The test settings turn the throttle off: the test client's login() passes
# no request, which it needs.
@override_settings(AXES_ENABLED=True, AXES_FAILURE_LIMIT=3)
def test_failed_logins_lock_out_that_username_from_that_address_only(users):
    assert [log_in("alice", "a wrong guess") for _ in range(3)] == [200, 200, 429]

    assert log_in("alice", PASSWORDS["alice"]) == 429
    assert log_in("bob", PASSWORDS["bob"]) == 302
    assert log_in("alice", PASSWORDS["alice"], address="198.51.100.4") == 302


@override_settings(AXES_ENABLED=True, AXES_FAILURE_LIMIT=3)
def test_a_successful_login_clears_the_failures_before_it(users):
    assert [log_in("alice", "a wrong guess") for _ in range(2)] == [200, 200]
    assert log_in("alice", PASSWORDS["alice"]) == 302

    assert [log_in("alice", "a wrong guess") for _ in range(2)] == [200, 200]
