"""The answers the suite renders the template with, and the names they
produce in a rendered service. Every test and helper takes these names from
here, so that a renamed package or domain is one edit."""

import os
from pathlib import Path

# The template repository's root.
ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI") == "true"

# The template's own package inside every rendered service (src/<KIT>/):
# health probes, example tasks, CPU detection.
KIT = "servicekit"

# Answers every render needs: the questions without a default.
REQUIRED_ANSWERS = {"project_name": "OBC Management System", "domain": "obcms.example.org"}
DOMAIN = REQUIRED_ANSWERS["domain"]
# The Django project package the default answers derive from project_name.
PACKAGE = "obc_management_system"
# The Python version the template renders when none is asked for.
PYTHON_VERSION = "3.13"

# The answer combinations the suite renders. Each must work end to end.
VARIANTS = {
    "defaults": {},
    "s3-no-proxy-no-beat-sentry": {
        # A name with an apostrophe (in the default description and sender
        # too): every file that shows it must escape it.
        "project_name": "Women's Health Registry",
        "project_slug": "womens-health-registry",
        "package_name": "womens_health",
        "media_backend": "s3",
        "reverse_proxy": "none",
        "use_celery_beat": False,
        "use_sentry": True,
        # And OpenTelemetry: a variant whose own suite runs (test_service.py).
        "use_opentelemetry": True,
    },
    # A package that sorts before the template's own (servicekit) and
    # before the default's: import blocks must be sorted for either.
    "explicit-workers": {
        "project_slug": "acme-orders",
        "package_name": "acme_orders",
        "web_workers": 5,
        "web_threads": 4,
        "celery_concurrency": 3,
        "author_name": "Platform Team",
        "author_email": "platform@example.org",
    },
    "python312-postgres16": {"python_version": "3.12", "postgres_version": "16"},
    "postgres18-s3-caddy": {"postgres_version": "18", "media_backend": "s3"},
}


def answers_for(name):
    """Every answer a variant is rendered with (the required ones included)."""
    return {**REQUIRED_ANSWERS, **VARIANTS[name]}


def package_of(answers):
    """The Django project package a service rendered with these answers has."""
    return answers.get("package_name", PACKAGE)


def python_version_of(answers):
    return answers.get("python_version", PYTHON_VERSION)
