"""Jinja filters used by copier.yml: derived defaults and answer validation.

Each ``*_error`` filter returns an empty string for a valid answer, or a
sentence saying what is wrong and what to type instead. copier shows that
sentence and asks again, or aborts a non-interactive run before writing
anything.

Free text (the project's name, description and authors) may contain any
printable character: the quoting filters (``py_str``, ``toml_str``,
``dotenv_str``, ``md_text``, ``mailbox``) write it where it is rendered so
that each file reads it back exactly as it was typed.
"""

from __future__ import annotations

import json
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

# Compose project names, image names and repositories may start with a digit
# ("3d-print-shop"); Python packages may not.
SLUG_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# Slugs that YAML (1.1 or 1.2) reads as a number, a boolean or null: the
# compose files' `name: <slug>` would not be a name.
YAML_NOT_TEXT_RE = re.compile(r"^([0-9]+(e[0-9]+)?|0o[0-7]+|0x[0-9a-f]+|0b[01]+|y|n|yes|no|on|off|true|false|null)$")
PACKAGE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s\"'<>\\]+@[^@\s\"'<>\\]+\.[^@\s\"'<>\\]+$")
# Free text is rendered on one line of each file, and shown in the terminal:
# line breaks, tabs and other control characters (C0, DEL, C1) have no
# place there. Every printable character is fine; the quoting filters below
# escape it.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Line and paragraph separators count as line breaks for Python and YAML.
LINE_BREAK_RE = re.compile(r"[\u2028\u2029\x85]")
# RFC 5322 "atext" and spaces: a display name made of these needs no quotes.
MAILBOX_ATOMS_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ \u0080-\U0010ffff-]+$")
# Characters that mean something in Markdown inline text, and an HTML
# entity reference (which a Markdown renderer would decode).
MARKDOWN_SPECIAL_RE = re.compile(r"[\\`*_\[\]<>|~#]|&(?=#?\w+;)")
# What starts a list, a heading underline or a thematic break at the start
# of a line.
MARKDOWN_BLOCK_START_RE = re.compile(r"^([+=-]|[0-9]+(?=[.)]))")


def slugify(value: object) -> str:
    """'OBC Management System' -> 'obc-management-system', '3D Print Shop' -> '3d-print-shop' (ASCII only)."""
    text = unicodedata.normalize("NFKD", str(value or "")).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    slug = text[:50].rstrip("-")
    # "42" or "Yes" would be a number or a boolean in YAML: "42-service".
    return f"{slug}-service" if YAML_NOT_TEXT_RE.match(slug) else slug


def package_from_slug(value: object) -> str:
    """The default package name for a slug: a valid one, or '' if there is none.

    'obc-management' -> 'obc_management'. A Python package cannot start with
    a digit, so leading words of digits move to the end, where they keep
    their meaning ('3d-print-shop' -> 'print_shop_3d', '2024-census' ->
    'census_2024'); a slug of digits only gets a 'service_' prefix. A name
    that is a keyword or would shadow a module gets a '_service' suffix
    ('django' -> 'django_service'), as package_error suggests.
    """
    words = [word for word in str(value or "").split("-") if word]
    if not words:
        return ""
    lead = 0
    while lead < len(words) and words[lead][0].isdigit():
        lead += 1
    words = ["service", *words] if lead == len(words) else words[lead:] + words[:lead]
    for name in ("_".join(words), "_".join([*words, "service"])):
        if not package_error(name):
            return name
    return ""


def text_error(value: object, what: str, *, required: bool = True, limit: int = 100) -> str:
    text = str(value if value is not None else "")
    if not text:
        return f"{what} must not be empty." if required else ""
    if CONTROL_RE.search(text) or LINE_BREAK_RE.search(text):
        return (
            f"{what} must be one line of text: line breaks, tabs and other control characters "
            "cannot be shown on the one line where it is rendered."
        )
    if not text.strip():
        return f"{what} must not be empty." if required else f"{what} must be left empty or be text, not white space."
    if text != text.strip():
        return f"{what} must not start or end with white space."
    if len(text) > limit:
        return f"{what} must be at most {limit} characters long."
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
            "starting and ending with a letter or digit, e.g. 'obc-management'."
        )
    if YAML_NOT_TEXT_RE.match(slug):
        return (
            f"project_slug '{slug}' would be read as a number, true/false or null in the YAML files "
            f"it names (docker-compose.yml); add a word, e.g. '{slug}-service'."
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
    """For the count questions, which copier asks as text so that a wrong answer
    ("four", "2.5") gets this sentence rather than copier's bare "Invalid input".
    """
    text = str(value)
    # Written as the number is rendered: no sign, no leading zero ("05" is
    # not a Python literal).
    if not re.fullmatch(r"0|-?[1-9][0-9]*", text) or not low <= int(text) <= high:
        return f"{what} must be a whole number from {low} to {high}{meaning}, got {text!r}."
    return ""


def py_str(value: object) -> str:
    """A Python string literal of value, quoted as ruff's formatter would quote it."""
    text = str(value)
    quote = "'" if text.count('"') > text.count("'") else '"'
    escaped = text.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return quote + escaped + quote


def toml_str(value: object) -> str:
    """A TOML string of value: a literal string when that needs no escapes."""
    text = str(value)
    if "'" not in text and '"' in text:
        return "'" + text + "'"
    return json.dumps(text, ensure_ascii=False)


def dotenv_str(value: object) -> str:
    """A double-quoted value for .env as Docker Compose reads it: backslash,
    double quote and $ (which would start a variable reference) escaped."""
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def md_text(value: object) -> str:
    """value as Markdown text: what would format, link, become HTML or start a block is escaped."""

    def escape_block_start(match):
        # "1." is escaped as "1\.", the others with a backslash before.
        start = match.group(0)
        return start + "\\" if start[0].isdigit() else "\\" + start

    text = MARKDOWN_SPECIAL_RE.sub(lambda match: "\\" + match.group(0), str(value))
    return MARKDOWN_BLOCK_START_RE.sub(escape_block_start, text)


def mailbox(name: object, address: object) -> str:
    """'Name <address>' for a From header, with the name quoted when RFC 5322 needs it."""
    text = str(name)
    if not MAILBOX_ATOMS_RE.match(text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{text} <{address}>"


class TemplateFilters(Extension):
    """Registers the filters above with copier's Jinja environment."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.filters.update(
            slugify=slugify,
            package_from_slug=package_from_slug,
            text_error=text_error,
            slug_error=slug_error,
            package_error=package_error,
            domain_error=domain_error,
            email_error=email_error,
            int_range_error=int_range_error,
            py_str=py_str,
            toml_str=toml_str,
            dotenv_str=dotenv_str,
            md_text=md_text,
            mailbox=mailbox,
        )
