"""The one way the service reads its environment, with one rule for every value.

- Unset and empty are the same: ``NAME=`` in .env (which Docker Compose passes
  on as an empty string) means "not set", so the default applies.
- Without a default, a variable that is not set stops start-up with an error
  naming it.
- A value that is set but is not what was asked for (``DEBUG=maybe``,
  ``GUNICORN_TIMEOUT=abc``) stops start-up with an error naming it; it never
  falls back to the default.
- Any variable can come from a file instead: ``SECRET_KEY_FILE=/run/secrets/
  secret-key`` reads SECRET_KEY from that file (Docker and Kubernetes mount
  secrets as files, which keeps them out of the environment). Setting both
  NAME and NAME_FILE is an error naming them.

Settings, gunicorn.conf.py and the Celery app all read through ``env``, so the
rule is the same in every process. It raises ImproperlyConfigured, Django's
error for bad settings, but needs no Django set-up (gunicorn reads its config
before loading Django).
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

REQUIRED = object()
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})


class Env:
    """Typed readers of environment variables: str, bool, int, float, list, path, url,
    database and email, each taking the variable's name and an optional default."""

    def __init__(self, variables=os.environ):
        self.variables = variables

    def value(self, name, default):
        """The variable's text (or its file's, with NAME_FILE) without
        surrounding white space, or None to use the default."""
        text = self.variables.get(name, "").strip()
        path = self.variables.get(f"{name}_FILE", "").strip()
        if path:
            if text:
                raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both: they would disagree one day.")
            text = self.file(name, path)
        if text:
            return text
        if default is REQUIRED:
            raise ImproperlyConfigured(
                f"Set the {name} environment variable, or {name}_FILE to a file that holds it (see .env.example)."
            )
        return None

    @staticmethod
    def file(name, path):
        """The text of NAME_FILE's file. A file that is missing, unreadable
        or empty is an error: it names a secret that was not mounted."""
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = (error.strerror or str(error)) if isinstance(error, OSError) else "not UTF-8 text"
            raise ImproperlyConfigured(f"{name}_FILE names {path}, which cannot be read: {reason}.") from None
        if not text:
            raise ImproperlyConfigured(f"{name}_FILE names {path}, which is empty.")
        return text

    def str(self, name, default=REQUIRED):
        text = self.value(name, default)
        return default if text is None else text

    def bool(self, name, default=REQUIRED):
        text = self.value(name, default)
        if text is None:
            return default
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise ImproperlyConfigured(f"{name} must be true or false, got {text!r}.")

    def int(self, name, default=REQUIRED, minimum=None):
        return self._number(int, "a whole number", name, default, minimum)

    def float(self, name, default=REQUIRED, minimum=None):
        return self._number(float, "a number", name, default, minimum)

    def _number(self, kind, description, name, default, minimum):
        text = self.value(name, default)
        if text is None:
            return default
        try:
            number = kind(text)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be {description}, got {text!r}.") from None
        if minimum is not None and number < minimum:
            raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}.")
        return number

    def list(self, name, default=REQUIRED):
        """Comma-separated items, taken as written (the settings check them)."""
        text = self.value(name, default)
        return default if text is None else text.split(",")

    def path(self, name, default=REQUIRED):
        text = self.value(name, default)
        return default if text is None else Path(text)

    def url(self, name, schemes, default=REQUIRED):
        """A URL whose scheme is one of ``schemes``, e.g. ["redis", "rediss"]."""
        text = self.value(name, default)
        if text is None:
            return default
        scheme, separator, _ = text.partition("://")
        if not separator or scheme not in schemes:
            expected = " or ".join(f"{scheme}://" for scheme in schemes)
            raise ImproperlyConfigured(f"{name} must be a URL starting with {expected}.")
        self._check_url(name, text)
        return text

    @staticmethod
    def _check_url(name, url):
        """Refuses a URL whose password (or user name) holds a character that
        ends that part early: it would be read as the host, port, path or
        fragment, and the error would then show part of the password. The
        message never includes the URL."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError when the port is not a number
        except ValueError:
            broken = True
        else:
            # More than one "@" leaves it to each parser to guess which one ends the password.
            broken = "#" in url or parts.netloc.count("@") > 1 or "@" in parts.path or "@" in parts.query
        if broken:
            raise ImproperlyConfigured(
                f"{name} is not a valid URL: a '/', '#', '?' or '@' in its user name or password must be "
                "percent-encoded (%2F, %23, %3F, %40), e.g. with urllib.parse.quote(password, safe='')."
            )

    def database(self, name, schemes, default=REQUIRED):
        """Django's DATABASES entry for a database URL."""
        if self.value(name, default) is None:
            return default
        return self._parsed(name, environ.Env.db_url_config, self.url(name, schemes))

    def email(self, name, default=REQUIRED):
        """Django's e-mail settings (EMAIL_BACKEND, EMAIL_HOST, ...) for an e-mail URL."""
        text = self.value(name, default)
        if text is None:
            return default
        self._check_url(name, text)
        return self._parsed(name, environ.Env.email_url_config, text)

    @staticmethod
    def _parsed(name, parse, url):
        # The parser's own message may quote the URL, password included.
        try:
            return parse(url)
        except KeyError:
            raise ImproperlyConfigured(f"{name} has a scheme that is not supported.") from None
        except ValueError:
            raise ImproperlyConfigured(f"{name} is not a valid URL.") from None


env = Env()
