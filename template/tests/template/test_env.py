import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from servicekit.env import Env


def test_empty_is_the_same_as_unset():
    env = Env({"TIMEOUT": "", "DEBUG": "  ", "HOSTS": ""})

    assert env.int("TIMEOUT", default=30) == 30
    assert env.int("MISSING", default=30) == 30
    assert env.bool("DEBUG", default=True) is True
    assert env.list("HOSTS", default=["example.org"]) == ["example.org"]
    assert env.str("NAME", default=None) is None


@pytest.mark.parametrize("variables", [{}, {"SECRET_KEY": ""}, {"SECRET_KEY": " "}])
def test_a_required_variable_unset_or_empty_is_named(variables):
    with pytest.raises(ImproperlyConfigured, match="Set the SECRET_KEY environment variable"):
        Env(variables).str("SECRET_KEY")


def test_values_are_read_as_their_type():
    env = Env({"WORKERS": " 4 ", "RATE": "0.5", "DEBUG": "Off", "HOSTS": "a.example,b.example", "ROOT": "/srv/static"})

    assert env.int("WORKERS", default=1) == 4
    assert env.float("RATE", default=0.0) == 0.5
    assert env.bool("DEBUG", default=True) is False
    assert env.list("HOSTS") == ["a.example", "b.example"]
    assert env.path("ROOT") == Path("/srv/static")


@pytest.mark.parametrize(
    ("reader", "value", "message"),
    [
        (lambda env: env.int("WORKERS", default=1), "abc", "WORKERS must be a whole number, got 'abc'."),
        (lambda env: env.int("WORKERS", default=1, minimum=1), "0", "WORKERS must be at least 1, got 0."),
        (lambda env: env.bool("WORKERS", default=False), "maybe", "WORKERS must be true or false"),
        (lambda env: env.float("WORKERS", default=1.0), "fast", "WORKERS must be a number"),
        (
            lambda env: env.url("WORKERS", ["redis", "rediss"]),
            "localhost:6379",
            "WORKERS must be a URL starting with redis:// or rediss://.",
        ),
    ],
)
def test_a_value_that_cannot_be_read_is_named_never_replaced_by_the_default(reader, value, message):
    with pytest.raises(ImproperlyConfigured) as error:
        reader(Env({"WORKERS": value}))

    assert str(error.value).startswith(message)


def test_urls_become_django_settings():
    env = Env({"DATABASE_URL": "postgres://app:secret@db:5432/app", "EMAIL_URL": "smtp+tls://me:pw@mail.example:587"})

    database = env.database("DATABASE_URL", ["postgres"])
    assert (database["ENGINE"], database["HOST"], database["NAME"]) == ("django.db.backends.postgresql", "db", "app")
    email = env.email("EMAIL_URL")
    assert (email["EMAIL_HOST"], email["EMAIL_PORT"], email["EMAIL_USE_TLS"]) == ("mail.example", 587, True)
    assert env.database("OTHER_URL", ["postgres"], default={"ENGINE": "sqlite"}) == {"ENGINE": "sqlite"}


def test_development_settings_follow_the_rule(settings):
    # DEBUG= used to mean false in development; empty now means the default there too.
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps([settings.DEBUG, settings.CELERY_TASK_TIME_LIMIT, settings.DATABASES['default']['ENGINE']]))"
    )
    development = settings.SETTINGS_MODULE.rpartition(".")[0] + ".development"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": development, "DEBUG": "", "CELERY_TASK_TIME_LIMIT": ""}
    env["DATABASE_URL"] = ""
    result = subprocess.run(  # noqa: S603 - a fixed command line
        [sys.executable, "-c", code], cwd=Path(__file__).parents[2] / "src", env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, 300, "django.db.backends.sqlite3"]


def test_a_url_whose_password_is_not_encoded_is_refused_without_showing_it():
    env = Env({"DATABASE_URL": "postgres://app:first#second@db:5432/app"})

    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL is not a valid URL") as error:
        env.database("DATABASE_URL", ["postgres"])

    assert "first" not in str(error.value) and "second" not in str(error.value)


def test_a_variable_can_come_from_a_file(tmp_path):
    secret = tmp_path / "secret-key"
    secret.write_text("from-a-file\n")
    env = Env({"SECRET_KEY_FILE": str(secret), "WORKERS_FILE": str(tmp_path / "workers")})
    (tmp_path / "workers").write_text(" 3 ")

    assert env.str("SECRET_KEY") == "from-a-file"
    assert env.int("WORKERS", default=1) == 3


def test_a_variable_and_its_file_together_are_refused(tmp_path):
    (tmp_path / "key").write_text("from-a-file")
    env = Env({"SECRET_KEY": "from-the-environment", "SECRET_KEY_FILE": str(tmp_path / "key")})

    with pytest.raises(ImproperlyConfigured, match="Set SECRET_KEY or SECRET_KEY_FILE, not both") as error:
        env.str("SECRET_KEY")

    assert "from-" not in str(error.value)


@pytest.mark.parametrize(("content", "problem"), [(None, "cannot be read: No such file"), ("\n", "which is empty")])
def test_a_file_that_holds_nothing_is_named_not_taken_for_unset(tmp_path, content, problem):
    path = tmp_path / "database-url"
    if content is not None:
        path.write_text(content)

    with pytest.raises(ImproperlyConfigured) as error:
        Env({"DATABASE_URL_FILE": str(path)}).str("DATABASE_URL", default="sqlite://")

    assert str(error.value).startswith(f"DATABASE_URL_FILE names {path}, ")
    assert problem in str(error.value)


def test_the_error_for_a_required_variable_mentions_its_file():
    with pytest.raises(ImproperlyConfigured, match="or SECRET_KEY_FILE to a file that holds it"):
        Env({}).str("SECRET_KEY")
