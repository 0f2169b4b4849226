"""Shared fixtures: the template snapshot, rendered variants, and policy for
tests whose tools are missing (skip on a laptop, fail under CI)."""

import os
from pathlib import Path

import pytest
from copier import run_copy
from servers import postgres_server, redis_server, s3_server, skip_or_fail  # noqa: F401 - fixtures
from template_repo import TEMPLATE_PATHS

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"

# Answers every render needs: the questions without a default.
REQUIRED_ANSWERS = {"project_name": "OBC Management System", "domain": "obcms.example.org"}

# The answer combinations the suite renders. Each must work end to end.
VARIANTS = {
    "defaults": {},
    "s3-no-proxy-no-beat-sentry": {
        "media_backend": "s3",
        "reverse_proxy": "none",
        "use_celery_beat": False,
        "use_sentry": True,
    },
    "explicit-workers": {
        "project_slug": "obcms",
        "package_name": "obc_management",
        "web_workers": 5,
        "web_threads": 4,
        "celery_concurrency": 3,
        "author_name": "Platform Team",
        "author_email": "platform@example.org",
    },
    "python312-postgres16": {"python_version": "3.12", "postgres_version": "16"},
    "postgres18-s3-caddy": {"postgres_version": "18", "media_backend": "s3"},
}


def require(condition, reason):
    """Skip a test whose tool is missing on a developer machine; never under CI."""
    if not condition:
        skip_or_fail(reason)


@pytest.fixture(scope="session")
def copier_template_paths():
    """What pytest-copier snapshots into its tagged template repository."""
    return TEMPLATE_PATHS


class Renderer:
    """Renders the template snapshot once per answer set, for the session."""

    def __init__(self, template, tmp_path_factory):
        self.template = template
        self.tmp_path_factory = tmp_path_factory
        self.cache = {}

    def __call__(self, name="defaults", **answers):
        answers = {**REQUIRED_ANSWERS, **VARIANTS.get(name, {}), **answers}
        key = (name, tuple(sorted(answers.items())))
        if key not in self.cache:
            dst = self.tmp_path_factory.mktemp(f"service-{name}")
            run_copy(str(self.template), dst, data=answers, defaults=True, unsafe=True, quiet=True)
            self.cache[key] = dst
        return self.cache[key]


@pytest.fixture(scope="session")
def render(copier_template, tmp_path_factory):
    """render(variant_name, **answers) -> path of the rendered service."""
    return Renderer(copier_template, tmp_path_factory)


def answers_for(name):
    return {**REQUIRED_ANSWERS, **VARIANTS[name]}


@pytest.fixture
def figure(record_property):
    """figure(name, value): a measurement printed at the end of the run, never asserted."""

    def record(name, value):
        record_property(f"figure: {name}", value)

    return record


def pytest_terminal_summary(terminalreporter):
    figures = [
        (name.removeprefix("figure: "), value)
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", [])
        if name.startswith("figure: ")
    ]
    if figures:
        terminalreporter.section("figures")
        for name, value in sorted(figures):
            terminalreporter.write_line(f"{name}: {value}")
