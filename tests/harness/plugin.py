"""The template suite's pytest plugin (registered in pyproject.toml's
addopts): the rendered variants, the session's servers, figures printed at
the end of a run, and Hypothesis' profiles."""

import os
from collections.abc import Iterator

import pytest
from copier import run_copy
from hypothesis import settings as hypothesis_settings

from harness import docker as docker_env
from harness import servers
from harness.answers import REQUIRED_ANSWERS, VARIANTS
from harness.policy import require, skip_or_fail
from harness.template_repo import TEMPLATE_PATHS

__all__ = ["require", "skip_or_fail"]

# Under CI a property test explores the same examples on every run, so that a
# failure is one that any rerun reproduces; print_blob prints how to replay
# it. On a developer machine examples vary from run to run, to find more.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("dev")


def pytest_configure(config):
    # --hypothesis-profile (Hypothesis' own option) chooses one explicitly.
    if config.getoption("hypothesis_profile", None) is None:
        hypothesis_settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")


# --------------------------------------------------------------------------
# The template and its rendered variants
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Servers shared by the session
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def engine():
    """A usable Docker engine: a skip on a laptop without one, a failure under CI."""
    problem = docker_env.engine_problem()
    require(problem is None, problem)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> Iterator[servers.PostgresServer]:
    """A PostgreSQL server shared by the whole test session."""
    bindir = servers.find_postgres_bindir()
    require(bindir, f"PostgreSQL not found: {servers.POSTGRES_HINT}")
    with servers.PostgresServer(tmp_path_factory.mktemp("postgres"), bindir=bindir) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[servers.RedisServer]:
    """A Redis server shared by the whole test session."""
    executable = servers.find_redis_server()
    require(executable, f"redis-server not found: {servers.REDIS_HINT}")
    with servers.RedisServer(tmp_path_factory.mktemp("redis"), executable=executable) as server:
        yield server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[servers.S3Server]:
    """An S3 endpoint shared by the whole test session."""
    require(servers.moto_installed(), f"moto server not found: {servers.S3_HINT}")
    with servers.S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


# --------------------------------------------------------------------------
# Figures: measurements printed at the end of a run, never asserted
# --------------------------------------------------------------------------


@pytest.fixture
def figure(record_property):
    """figure(name, value): a measurement printed at the end of the run."""

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
