"""Jinja filters used by copier.yml: derived defaults and answer validation.

Each ``*_error`` filter returns an empty string for a valid answer, or a
sentence saying what is wrong and what to type instead. copier shows that
sentence and asks again, or aborts a non-interactive run before writing
anything.
"""

from __future__ import annotations

import keyword
import re
import sys
import unicodedata

from jinja2.ext import Extension

# Top-level import names that a project package must not shadow: the
# service's own dependencies, the names the rendered layout already uses,
# and tooling that imports by name.
RESERVED_PACKAGE_NAMES = frozenset(
    {
        "asgiref",
        "boto3",
        "botocore",
        "celery",
        "common",
        "servicekit",
        "config",
        "django",
        "environ",
        "gunicorn",
        "kombu",
        "manage",
        "psycopg",
        "psycopg2",
        "pytest",
        "pytest_django",
        "redis",
        "sentry_sdk",
        "settings",
        "src",
        "storages",
        "test",
        "tests",
        "whitenoise",
    }
)

SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PACKAGE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s\"'<>\\]+@[^@\s\"'<>\\]+\.[^@\s\"'<>\\]+$")
# Free text ends up inside quoted strings (TOML, YAML, Python, Markdown):
# characters that would need escaping in any of them are refused.
UNSAFE_TEXT_RE = re.compile(r"[\"\\`${}<>\x00-\x1f\x7f]")


def slugify(value: object) -> str:
    """'OBC Management System' -> 'obc-management-system' (ASCII only)."""
    text = unicodedata.normalize("NFKD", str(value or "")).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return text.lstrip("0123456789-")[:50].rstrip("-")


def text_error(value: object, what: str, *, required: bool = True, limit: int = 100) -> str:
    text = str(value if value is not None else "")
    if not text:
        return f"{what} must not be empty." if required else ""
    if not text.strip():
        return f"{what} must not be empty." if required else f"{what} must be left empty or be text, not white space."
    if text != text.strip():
        return f"{what} must not start or end with white space."
    if len(text) > limit:
        return f"{what} must be at most {limit} characters long."
    if UNSAFE_TEXT_RE.search(text):
        return (
            f"{what} must not contain quotes, backslashes, backticks, $, braces, angle brackets or control characters."
        )
    return ""


def slug_error(value: object) -> str:
    slug = str(value or "")
    if not slug:
        return (
            "project_slug is required: type one, e.g. 'obc-management' (it could not be derived from the project name)."
        )
    if len(slug) > 50:
        return "project_slug must be at most 50 characters long."
    if not SLUG_RE.match(slug):
        return (
            "project_slug must be lower-case letters, digits and single hyphens, "
            "starting with a letter, e.g. 'obc-management'."
        )
    return ""


def package_error(value: object) -> str:
    name = str(value or "")
    if not name:
        return "package_name is required: type one, e.g. 'obc_management'."
    if len(name) > 50:
        return "package_name must be at most 50 characters long."
    if not PACKAGE_RE.match(name) or not name.isidentifier():
        return (
            "package_name must be a Python identifier of lower-case letters, digits and "
            "underscores, starting with a letter, e.g. 'obc_management'."
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"package_name '{name}' is a Python keyword; choose another, e.g. '{name}_service'."
    if name in RESERVED_PACKAGE_NAMES or name in sys.stdlib_module_names:
        return (
            f"package_name '{name}' would shadow the module of the same name that the service "
            f"imports; choose another, e.g. '{name}_service'."
        )
    return ""


def domain_error(value: object) -> str:
    domain = str(value or "")
    if not domain:
        return "domain is required: the public host name of the service, e.g. 'obcms.example.org'."
    if "://" in domain or "/" in domain or ":" in domain:
        return "domain must be a bare host name, without scheme, port or path: e.g. 'obcms.example.org'."
    if domain != domain.lower():
        return f"domain must be lower-case: '{domain.lower()}'."
    if len(domain) > 253:
        return "domain must be at most 253 characters long."
    labels = domain.split(".")
    if len(labels) < 2 or not all(LABEL_RE.match(label) for label in labels):
        return (
            "domain must be a fully qualified host name: labels of letters, digits and "
            "hyphens separated by dots, e.g. 'obcms.example.org'."
        )
    if labels[-1].isdigit():
        return "domain must be a host name, not an IP address."
    return ""


def email_error(value: object) -> str:
    email = str(value or "")
    if email and not EMAIL_RE.match(email):
        return "author_email must be an e-mail address such as 'team@example.org', or left empty."
    return ""


def int_range_error(value: object, what: str, low: int, high: int, meaning: str = "") -> str:
    try:
        number = int(str(value).strip())
    except ValueError:
        return f"{what} must be a whole number from {low} to {high}."
    if str(number) != str(value).strip() or not low <= number <= high:
        return f"{what} must be a whole number from {low} to {high}{meaning}."
    return ""


class TemplateFilters(Extension):
    """Registers the filters above with copier's Jinja environment."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.filters.update(
            slugify=slugify,
            text_error=text_error,
            slug_error=slug_error,
            package_error=package_error,
            domain_error=domain_error,
            email_error=email_error,
            int_range_error=int_range_error,
        )
