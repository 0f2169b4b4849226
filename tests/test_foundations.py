"""What a Django team expects from the first day: e-mail it can read in
development."""

import subprocess

import pytest

from harness.answers import python_version_of
from harness.service import make, variant_service

pytestmark = pytest.mark.service

SEND_MAIL = """
import django
django.setup()
from django.core.mail import send_mail

send_mail("Reset your password", "Follow https://example.org/reset/abc to choose a new one.", None, ["ada@example.org"])
"""


@pytest.fixture(scope="module")
def service(render, tmp_path_factory):
    yield from variant_service(render, tmp_path_factory, "defaults", prefix="foundations")


def test_mail_sent_in_development_is_kept_in_a_git_ignored_directory_that_make_mail_shows(service):
    python_version = python_version_of(service.answers)
    before = make(service.path, "mail", python_version=python_version)
    assert before.returncode == 0, before.stderr
    assert "No e-mail yet" in before.stdout

    service.python(SEND_MAIL, env=service.env(DJANGO_SETTINGS_MODULE=f"{service.package}.settings.development"))

    [message] = (service.path / ".mail").glob("*.log")
    assert "Subject: Reset your password" in message.read_text()
    shown = make(service.path, "mail", python_version=python_version)
    assert shown.returncode == 0, shown.stderr
    assert "To: ada@example.org" in shown.stdout
    assert "https://example.org/reset/abc" in shown.stdout
    # Never committed by accident.
    subprocess.run(["git", "init", "--quiet"], cwd=service.path, check=True)
    ignored = subprocess.run(["git", "check-ignore", "--quiet", message], cwd=service.path)
    assert ignored.returncode == 0
