"""The harness's own rules: how processes are stopped, which Hypothesis
profile runs, how a compose file's images are read."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from hypothesis import settings

from harness import processes
from harness.docker import ImageError, compose_images, stand_in_name, without_digest

# A parent that starts a child in its own process group and ignores SIGTERM:
# what a server with helper processes, or a hung one, looks like.
FAMILY = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(child.pid, flush=True)
time.sleep(300)
"""


def family():
    parent = subprocess.Popen([sys.executable, "-c", FAMILY], stdout=subprocess.PIPE, text=True, start_new_session=True)
    return parent, int(parent.stdout.readline())


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it only waits for its parent to read its status.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_stop_kills_a_process_that_ignores_its_signal_and_everything_it_started():
    parent, child = family()
    assert processes.stop(parent, signal.SIGTERM, timeout=1) == -signal.SIGKILL
    assert not alive(child)


def test_sigkill_returns_once_the_whole_group_is_gone():
    parent, child = family()
    assert processes.stop(parent, signal.SIGKILL) == -signal.SIGKILL
    assert not alive(child)


def test_stop_never_signals_a_group_the_process_does_not_lead():
    # Started in the test's own group: only the process itself is signalled,
    # or the test run would be killed with it.
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    assert not processes.leads_its_group(process)
    assert processes.stop(process, signal.SIGKILL) == -signal.SIGKILL


def test_hypothesis_is_derandomized_exactly_under_ci():
    assert settings.default.derandomize is (os.environ.get("CI") == "true")


def test_compose_images_reads_the_variables_and_refuses_a_fixed_image(tmp_path):
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(
        textwrap.dedent(
            """\
            services:
              web:
                image: ${IMAGE:-app:latest}
                build: {context: ., args: {PYTHON_IMAGE: "${PYTHON_IMAGE:-python:3.13-slim-trixie}"}}
              db:
                image: ${POSTGRES_IMAGE:-postgres:17}
            """
        )
    )
    assert compose_images(compose) == {"PYTHON_IMAGE": "python:3.13-slim-trixie", "POSTGRES_IMAGE": "postgres:17"}
    compose.write_text(compose.read_text() + "  redis:\n    image: redis:7.4\n")
    with pytest.raises(ImageError, match="redis"):
        compose_images(compose)


def test_a_default_pinned_by_digest_keeps_its_digest_and_its_stand_in_drops_it(tmp_path):
    digest = "sha256:" + "ab" * 32
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(f"services:\n  db:\n    image: ${{POSTGRES_IMAGE:-postgres:17@{digest}}}\n")
    assert compose_images(compose) == {"POSTGRES_IMAGE": f"postgres:17@{digest}"}
    assert without_digest(f"127.0.0.1:5000/postgres:17@{digest}") == "127.0.0.1:5000/postgres:17"
    assert without_digest("postgres:17") == "postgres:17"
    assert stand_in_name(f"postgres:17@{digest}") == "localhost/template-standin/postgres:17"
