"""The rendered vulnerability gate (scripts/audit.py, `make audit`) against a
vulnerability database of the suite's own.

pip-audit is the suite's (the `test` group pins the version the services'
dev lock does); its OSV queries go to harness.osv on 127.0.0.1, which knows
one vulnerability, in Django 5.2, fixed in 5.2.1. Every other address is
made unreachable, so that a lookup anywhere else (osv.dev, PyPI) fails the
test instead of passing it silently.

tests/locks/ holds real uv output (uv 0.13.9): production.txt locks
Django==5.2.19, production-django-5.2.txt Django==5.2, dev.txt locks
`-r production.in` and pytest==9.2.0, each compiled as the services do:
uv pip compile --universal --python-version 3.13 --generate-hashes
--output-file requirements/<name>.txt requirements/<name>.in
"""

import datetime
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness.answers import PYTHON_VERSION
from harness.osv import OsvServer
from harness.servers import free_port
from harness.service import service_venv

LOCKS = Path(__file__).parent / "locks"
VULN_ID = "GHSA-0000-test-0001"
VULN_ALIAS = "PYSEC-0000-1"
# One record of the OSV schema, as osv.dev serves them (made-up ids).
RECORDS = [
    {
        "schema_version": "1.6.0",
        "id": VULN_ID,
        "aliases": [VULN_ALIAS],
        "summary": "The suite's own vulnerability",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "django"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "5.2"}, {"fixed": "5.2.1"}]}],
                "versions": ["5.2"],
            }
        ],
    }
]
# A proxy nothing listens on: every request but the fixture database's.
NOWHERE = f"http://127.0.0.1:{free_port()}"
TODAY = datetime.date.today()


def pins(lock: Path) -> list[tuple[str, str]]:
    """The name==version pairs of a lock that apply everywhere (no environment marker)."""
    return re.findall(r"^([\w.-]+)==(\S+) \\$", lock.read_text(), re.M)


@pytest.fixture
def service(render, tmp_path):
    """A rendered service of this test's own, with clean locks."""
    path = tmp_path / "service"
    shutil.copytree(render(), path)
    for name in ("production.txt", "dev.txt"):
        shutil.copy(LOCKS / name, path / "requirements" / name)
    return path


@pytest.fixture
def osv():
    with OsvServer(RECORDS) as server:
        yield server


def gate(service: Path, osv_url: str, *command: str) -> subprocess.CompletedProcess:
    """Runs the gate (scripts/audit.py unless a command is given) against the database at osv_url."""
    env = {
        **os.environ,
        "PIP_AUDIT_OSV_URL": osv_url,
        "HTTP_PROXY": NOWHERE,
        "HTTPS_PROXY": NOWHERE,
        "http_proxy": NOWHERE,
        "https_proxy": NOWHERE,
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
        # pip-audit's HTTP cache, out of the user's.
        "XDG_CACHE_HOME": str(service / ".cache"),
    }
    command = command or (sys.executable, "scripts/audit.py")
    return subprocess.run(command, cwd=service, env=env, capture_output=True, text=True, timeout=120)


def accept(service: Path, **entry: object) -> None:
    """Writes one [[ignore]] entry in the service's ignore file (TOML values as given: dates unquoted)."""
    lines = [f"{key} = {value}" for key, value in entry.items()]
    (service / "requirements/audit-ignore.toml").write_text("[[ignore]]\n" + "\n".join(lines) + "\n")


def make_vulnerable(service: Path, lock: str = "production.txt") -> None:
    shutil.copy(LOCKS / "production-django-5.2.txt", service / "requirements" / lock)


def test_the_ignore_file_ships_empty_with_a_valid_example(service):
    text = (service / "requirements/audit-ignore.toml").read_text()
    assert tomllib.loads(text) == {}
    example = text.split("# [[ignore]]\n", 1)[1]
    entry = tomllib.loads("[[ignore]]\n" + example.replace("# ", ""))["ignore"][0]
    assert entry.keys() == {"id", "reason", "expires"}
    assert type(entry["expires"]) is datetime.date


def test_clean_locks_pass_and_every_pin_is_looked_up(service, osv):
    result = gate(service, osv.query_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "requirements/production.txt: no known vulnerability in 3 packages" in result.stdout
    assert "requirements/dev.txt: no known vulnerability in 8 packages" in result.stdout
    # Both locks, every pin, from the fixture database: tzdata and colorama
    # are Windows-only (`; sys_platform == 'win32'`) and not looked up here.
    expected = pins(LOCKS / "production.txt") + pins(LOCKS / "dev.txt")
    assert sorted(osv.queries) == sorted(expected)
    assert ("django", "5.2.19") in osv.queries


@pytest.mark.parametrize("lock", ["production.txt", "dev.txt"])
def test_a_known_vulnerability_fails_naming_lock_package_and_fix(service, osv, lock):
    make_vulnerable(service, lock)
    result = gate(service, osv.query_url)
    assert result.returncode == 1, result.stdout + result.stderr
    finding = f"requirements/{lock}: django 5.2: "
    assert [line for line in result.stdout.splitlines() if line.startswith(finding)] == [
        f"{finding}{VULN_ALIAS} ({VULN_ID}), fixed in: 5.2.1"
    ], result.stdout
    assert "Known vulnerabilities: 1." in result.stderr


@pytest.mark.parametrize("vuln_id", [VULN_ID, VULN_ALIAS])
@pytest.mark.parametrize("days_left", [0, 30])
def test_an_accepted_vulnerability_passes_until_its_expiry_date(service, osv, vuln_id, days_left):
    make_vulnerable(service)
    expires = TODAY + datetime.timedelta(days=days_left)
    accept(service, id=f'"{vuln_id}"', reason='"Not reachable: reviewed by the suite"', expires=expires)
    result = gate(service, osv.query_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"accepted until {expires}: {vuln_id}: Not reachable: reviewed by the suite" in result.stdout
    assert "requirements/production.txt: no known vulnerability in 3 packages" in result.stdout


def test_an_expired_acceptance_fails_again(service, osv):
    make_vulnerable(service)
    expired = TODAY - datetime.timedelta(days=1)
    accept(service, id=f'"{VULN_ID}"', reason='"Not reachable: reviewed by the suite"', expires=expired)
    result = gate(service, osv.query_url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"the acceptance of {VULN_ID} expired on {expired}: review it again" in result.stderr
    # No longer accepted: the vulnerability is reported again.
    assert f"requirements/production.txt: django 5.2: {VULN_ALIAS} ({VULN_ID})" in result.stdout


def test_an_expired_acceptance_fails_even_once_the_package_is_fixed(service, osv):
    accept(service, id=f'"{VULN_ID}"', reason='"Not reachable"', expires=TODAY - datetime.timedelta(days=1))
    result = gate(service, osv.query_url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"the acceptance of {VULN_ID} expired on" in result.stderr


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"id": f'"{VULN_ID}"', "expires": "2999-12-31"}, f"entry 1 ({VULN_ID}): no reason"),
        ({"id": f'"{VULN_ID}"', "reason": '"  "', "expires": "2999-12-31"}, f"entry 1 ({VULN_ID}): no reason"),
        ({"reason": '"Not reachable"', "expires": "2999-12-31"}, "entry 1: no id"),
        ({"id": f'"{VULN_ID}"', "reason": '"Not reachable"'}, f"entry 1 ({VULN_ID}): expires must be a date"),
        (
            {"id": f'"{VULN_ID}"', "reason": '"Not reachable"', "expires": '"2999-12-31"'},
            f"entry 1 ({VULN_ID}): expires must be a date",
        ),
        (
            {"id": f'"{VULN_ID}"', "reason": '"Not reachable"', "expires": "2999-12-31T00:00:00"},
            f"entry 1 ({VULN_ID}): expires must be a date",
        ),
        (
            {"id": f'"{VULN_ID}"', "reason": '"Not reachable"', "expires": "2999-12-31", "expire": "2999-12-31"},
            f"entry 1 ({VULN_ID}): unknown keys ['expire']",
        ),
    ],
    ids=["no-reason", "blank-reason", "no-id", "no-expires", "quoted-expires", "datetime-expires", "unknown-key"],
)
def test_an_incomplete_entry_is_refused_and_nothing_is_audited(service, osv, entry, problem):
    make_vulnerable(service)
    accept(service, **entry)
    result = gate(service, osv.query_url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"requirements/audit-ignore.toml, {problem}" in result.stderr
    assert osv.queries == []


def test_an_unreachable_database_fails_the_gate(service):
    result = gate(service, f"http://127.0.0.1:{free_port()}/v1/query")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "requirements/production.txt: pip-audit failed" in result.stderr
    assert "no known vulnerability" not in result.stdout


def test_make_audit_runs_the_gate_in_the_services_venv(service):
    dry_run = subprocess.run(["make", "-n", "audit"], cwd=service, capture_output=True, text=True, check=True)
    assert dry_run.stdout.splitlines()[-1] == ".venv/bin/python scripts/audit.py"


@pytest.mark.service
def test_the_rendered_locks_are_audited_by_the_pip_audit_they_lock(render, tmp_path):
    """The service's own locks and its own pip-audit (dev.txt's): clean
    against a database that knows nothing of them; failing once the database
    knows the locked Django."""
    path = tmp_path / "service"
    shutil.copytree(render("defaults"), path)
    python = str(service_venv(path, PYTHON_VERSION) / "python")
    django = re.search(r"^django==(\S+) ", (path / "requirements/production.txt").read_text(), re.M).group(1)

    with OsvServer(RECORDS) as clean:
        result = gate(path, clean.query_url, python, "scripts/audit.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^requirements/production.txt: no known vulnerability in \d+ packages$", result.stdout, re.M)
    assert re.search(r"^requirements/dev.txt: no known vulnerability in \d+ packages$", result.stdout, re.M)
    # Every package of both locks was looked up (those without a marker).
    queried = {(name.lower(), version) for name, version in clean.queries}
    expected = {
        (name.lower(), version)
        for lock in ("production.txt", "dev.txt")
        for name, version in pins(path / "requirements" / lock)
    }
    assert expected <= queried

    record = {**RECORDS[0], "affected": [{**RECORDS[0]["affected"][0], "versions": [django]}]}
    record["affected"][0]["ranges"] = [{"type": "ECOSYSTEM", "events": [{"introduced": django}, {"fixed": "99"}]}]
    with OsvServer([record]) as knowing:
        result = gate(path, knowing.query_url, python, "scripts/audit.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"requirements/production.txt: django {django}: {VULN_ALIAS} ({VULN_ID}), fixed in: 99" in result.stdout
    assert f"requirements/dev.txt: django {django}: {VULN_ALIAS} ({VULN_ID}), fixed in: 99" in result.stdout
